/* A train job's params (job_train.h), read the same way when the job is submitted and when it
 * runs, so whatever run accepts was checked with a 4xx before the job was queued. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "data/dataset.h"
#include "job_kind.h"
#include "job_train.h"
#include "json_text.h"
#include "models.h"
#include "policy/policy.h"

static const char *const names[] = {
    "dataset", "split", "val_split",  "model",     "policy",   "epochs",
    "steps",   "batch", "seed",       "optimizer", "schedule", "label_smoothing",
    "ema",     "clip",  "eval_every", "output",    NULL};
/* Diversity's: both runs are measured on the training split and nothing is registered. */
static const char *const diversity_names[] = {
    "dataset", "split",     "model",    "policy",          "epochs", "steps", "batch",
    "seed",    "optimizer", "schedule", "label_smoothing", "clip",   NULL};
/* Affinity-diversity's: diversity's with the val split the scores are measured on, and the
 * policies (read by the kind) in place of the policy. */
static const char *const affinity_diversity_names[] = {
    "dataset", "split", "val_split", "model",    "policies",        "level", "epochs", "steps",
    "batch",   "seed",  "optimizer", "schedule", "label_smoothing", "clip",  NULL};
/* A search trial's (server/search_objective.c): train's without output, nothing being
 * registered, and eval_every, the trial's metric being read after every epoch. */
static const char *const trial_names[] = {
    "dataset", "split",     "val_split", "model",           "policy", "epochs", "steps", "batch",
    "seed",    "optimizer", "schedule",  "label_smoothing", "ema",    "clip",   NULL};
/* FixMatch's and supervised's (server/job_fixmatch.c): train's with the unlabeled split and
 * FixMatch's settings. */
static const char *const fixmatch_names[] = {
    "dataset",   "split",  "val_split", "unlabeled_split", "model", "policy",
    "strong",    "epochs", "steps",     "batch",           "mu",    "tau",
    "lambda_u",  "seed",   "optimizer", "schedule",        "ema",   "eval_every",
    "ctaugment", "output", NULL};
/* Self-training's student (server/job_self_training.c): train's without output, the kind
 * registering each round's student under a name of its own. */
static const char *const self_training_names[] = {
    "dataset", "split", "val_split",  "model",     "policy",   "epochs",
    "steps",   "batch", "seed",       "optimizer", "schedule", "label_smoothing",
    "ema",     "clip",  "eval_every", NULL};
static const char *const *const kind_names[] = {
    [JOB_TRAIN_FOR_TRAIN] = names,
    [JOB_TRAIN_FOR_DIVERSITY] = diversity_names,
    [JOB_TRAIN_FOR_AFFINITY_DIVERSITY] = affinity_diversity_names,
    [JOB_TRAIN_FOR_TRIAL] = trial_names,
    [JOB_TRAIN_FOR_FIXMATCH] = fixmatch_names,
    [JOB_TRAIN_FOR_SUPERVISED] = fixmatch_names,
    [JOB_TRAIN_FOR_SELF_TRAINING] = self_training_names,
};
static const char *const optimizer_names[] = {
    "name", "lr", "momentum", "nesterov", "weight_decay", "exclude_no_decay", "betas", "eps", NULL};
static const char *const schedule_names[] = {
    "name", "warmup_epochs", "warmup_steps", "milestones", "step_size", "gamma", "min_lr", NULL};

/* CIFAR-10's channel statistics (torchvision's usual Normalize for it), which the zoo models are
 * trained with whatever the dataset: fixed, so the transform is known before any image is read
 * and a resumed job cannot compute another one. */
static const float cifar_mean[3] = {0.4914f, 0.4822f, 0.4465f};
static const float cifar_std[3] = {0.2470f, 0.2435f, 0.2616f};

/* err's message (an engine refusal) as params.<field>'s, after what (may be ""). */
static int refuse_as(struct eng_error *err, const char *field, const char *what)
{
    char message[sizeof err->message];
    snprintf(message, sizeof message, "%s", err->message);
    return eng_fail(err, ENG_INVALID, "params.%s: %s%s", field, what, message);
}

static int refuse(struct eng_error *err, const char *field)
{
    return refuse_as(err, field, "");
}

/* An optional boolean member of obj (named prefix.name in errors). */
static int get_bool(const json_t *obj, const char *prefix, const char *name, bool *out,
                    struct eng_error *err)
{
    const json_t *v = json_object_get(obj, name);
    if (!v) return 0;
    if (!json_is_boolean(v))
        return eng_fail(err, ENG_INVALID, "params.%s.%s: must be true or false", prefix, name);
    *out = json_is_true(v);
    return 0;
}

/* An optional object member of params; *obj NULL when absent. */
static int get_object(const json_t *params, const char *name, const char *const known[],
                      const json_t **obj, struct eng_error *err)
{
    char prefix[32];
    *obj = json_object_get(params, name);
    if (!*obj) return 0;
    if (!json_is_object(*obj))
        return eng_fail(err, ENG_INVALID, "params.%s: must be an object", name);
    snprintf(prefix, sizeof prefix, "params.%s.", name);
    return json_check_members(*obj, known, prefix, "member", err);
}

/* The kind named by obj's "name" (default def) through named(). */
static const char *kind_name(const json_t *obj, const char *def)
{
    const json_t *v = json_object_get(obj, "name");
    return v ? json_string_value(v) : def;
}

static int read_optimizer(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *o;
    enum train_optim_kind kind;
    const char *name;
    if (get_object(params, "optimizer", optimizer_names, &o, err)) return -1;
    if (!(name = kind_name(o, "sgd")))
        return eng_fail(err, ENG_INVALID, "params.optimizer.name: must be a string");
    if (train_optim_kind_named(name, &kind, err)) return refuse(err, "optimizer.name");
    p->optim = train_optim_defaults(kind);
    if (job_param_real(params, "optimizer.lr", 0, 0.1, 1e-12, 1e3, &p->schedule.lr, err) ||
        job_param_real(params, "optimizer.momentum", 0, p->optim.momentum, 0, 1, &p->optim.momentum,
                       err) ||
        job_param_real(params, "optimizer.weight_decay", 0, p->optim.weight_decay, 0, 1,
                       &p->optim.weight_decay, err) ||
        job_param_real(params, "optimizer.eps", 0, p->optim.eps, 1e-30, 1, &p->optim.eps, err) ||
        get_bool(o, "optimizer", "nesterov", &p->optim.nesterov, err) ||
        get_bool(o, "optimizer", "exclude_no_decay", &p->optim.exclude_no_decay, err))
        return -1;
    const json_t *betas = json_object_get(o, "betas");
    if (betas) {
        if (json_array_size(betas) != 2 || !json_is_number(json_array_get(betas, 0)) ||
            !json_is_number(json_array_get(betas, 1)))
            return eng_fail(err, ENG_INVALID, "params.optimizer.betas: must be [beta1, beta2]");
        p->optim.beta1 = json_number_value(json_array_get(betas, 0));
        p->optim.beta2 = json_number_value(json_array_get(betas, 1));
    }
    if (train_optim_check(&p->optim, err)) return refuse(err, "optimizer");
    return 0;
}

/* The warm-up in steps: warmup_steps, or warmup_epochs of the split's batches (rounded). */
static int read_warmup(struct job_train_params *p, const json_t *params, const json_t *o,
                       struct eng_error *err)
{
    long per_epoch = (long)p->batches;
    double epochs;
    long long steps;
    if (json_object_get(o, "warmup_epochs") && json_object_get(o, "warmup_steps"))
        return eng_fail(err, ENG_INVALID,
                        "params.schedule.warmup_steps: give warmup_epochs or warmup_steps, not "
                        "both");
    if (job_param_real(params, "schedule.warmup_epochs", 0, 0, 0,
                       (double)p->steps / (double)per_epoch, &epochs, err) ||
        job_param_int(params, "schedule.warmup_steps", 0, (long long)(epochs * per_epoch + 0.5), 0,
                      p->steps, &steps, err))
        return -1;
    p->schedule.warmup = (long)steps;
    return 0;
}

/* The schedule, over the run's steps; its epochs (warm-up, milestones, step size) become steps,
 * the unit the job steps the schedule in. */
static int read_schedule(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *o;
    const char *name;
    long long step_size;
    long per_epoch = (long)p->batches;
    if (get_object(params, "schedule", schedule_names, &o, err)) return -1;
    if (!(name = kind_name(o, "constant")))
        return eng_fail(err, ENG_INVALID, "params.schedule.name: must be a string");
    if (train_lr_kind_named(name, &p->schedule.kind, err)) return refuse(err, "schedule.name");
    if (read_warmup(p, params, o, err) ||
        job_param_int(params, "schedule.step_size", 0, 1, 1, p->epochs, &step_size, err) ||
        job_param_real(params, "schedule.gamma", 0, 0.1, 1e-12, 1, &p->schedule.gamma, err) ||
        job_param_real(params, "schedule.min_lr", 0, 0, 0, p->schedule.lr, &p->schedule.min_lr,
                       err))
        return -1;
    p->schedule.step_size = (long)step_size * per_epoch;
    const json_t *milestones = json_object_get(o, "milestones"), *m;
    size_t i;
    if (milestones &&
        (!json_is_array(milestones) || json_array_size(milestones) > TRAIN_MAX_MILESTONES))
        return eng_fail(err, ENG_INVALID,
                        "params.schedule.milestones: must be a list of at most %d epochs",
                        TRAIN_MAX_MILESTONES);
    json_array_foreach(milestones, i, m)
    {
        if (!json_is_integer(m) || json_integer_value(m) < 1 || json_integer_value(m) > p->epochs)
            return eng_fail(err, ENG_INVALID,
                            "params.schedule.milestones: each must be a whole number of epochs "
                            "in [1, %ld]",
                            p->epochs);
        p->schedule.milestones[p->schedule.n_milestones++] =
            (long)json_integer_value(m) * per_epoch;
    }
    if (train_schedule_check(&p->schedule, p->steps, err)) return refuse(err, "schedule");
    return 0;
}

static const char *const finetune_names[] = {"name", "classes", "freeze", NULL};

/* The input shape of a batch of the fine-tuned model: its one input, NCHW, of the preprocess's
 * fixed crop. */
static int finetune_input(struct job_train_params *p, const char *name, struct eng_error *err)
{
    const struct classify_preprocess *pp = model_preprocess(p->data.model);
    if (pp->nhwc || pp->crop_height <= 0 || pp->crop_width <= 0)
        return eng_fail(err, ENG_INVALID,
                        "params.model: model %s needs an NCHW input and a \"crop\" in its "
                        "preprocess to be trained (batches of one fixed shape)",
                        name);
    p->preprocess = *pp;
    p->input = model_image_shape(pp, p->batch, pp->crop_height, pp->crop_width);
    p->input.name = nn_graph_input(model_graph(p->data.model), 0)->name;
    return 0;
}

/* A repository model to fine-tune: "name" or {"name", "classes", "freeze"}. Its output is the
 * logits the cross-entropy loss takes, so a model whose config says it gives probabilities (a
 * Softmax at its end) is refused. */
static int read_finetune(struct job_train_params *p, const json_t *params, const json_t *model,
                         struct eng_error *err)
{
    const json_t *name_v = json_is_string(model) ? model : json_object_get(model, "name");
    const char *name = json_string_value(name_v);
    long long classes = 0;
    if (json_is_object(model) &&
        (json_check_members(model, finetune_names, "params.model.", "member", err) ||
         job_param_int(params, "model.classes", 0, 0, 1, 100000, &classes, err)))
        return -1;
    if (!name || !*name)
        return eng_fail(err, ENG_INVALID, "params.model.name: required: a repository model");
    if (job_classify_open_model(&p->data, name, classes == 0, err)) return -1;
    const struct nn_graph *g = model_graph(p->data.model);
    const struct nn_tensor_info *out = nn_graph_output(g, 0);
    size_t dataset_classes = dataset_class_count(p->data.dataset);
    if (model_scores_are_probabilities(p->data.model))
        return eng_fail(err, ENG_INVALID,
                        "params.model: model %s gives probabilities (output_kind); training "
                        "needs a model that gives logits",
                        name);
    if (nn_graph_output_count(g) != 1 || out->rank < 1 || out->dims[out->rank - 1] < 1)
        return eng_fail(err, ENG_INVALID,
                        "params.model: model %s needs one output of class scores to be trained",
                        name);
    /* What the training plan and the new head would refuse once the job runs, known now. */
    char what[128]; /* a model name is at most 64 bytes */
    snprintf(what, sizeof what, "model %s cannot be trained: ", name);
    if (train_plan_check(g, err)) return refuse_as(err, "model", what);
    snprintf(what, sizeof what, "model %s has no head to replace: ", name);
    if (classes && train_model_head_check(g, err)) return refuse_as(err, "model.classes", what);
    p->classes = classes ? (size_t)classes : (size_t)out->dims[out->rank - 1];
    if (classes && p->classes != dataset_classes)
        return eng_fail(err, ENG_INVALID,
                        "params.model.classes: must be %zu, the class count of dataset %s",
                        dataset_classes, p->data.dataset_id);
    if (p->classes != dataset_classes)
        return eng_fail(err, ENG_INVALID,
                        "params.model: dataset %s has %zu classes and model %s has %zu outputs; "
                        "give \"classes\" for a new head",
                        p->data.dataset_id, dataset_classes, name, p->classes);
    p->new_head = (int)classes;
    p->freeze = json_is_object(model) ? json_object_get(model, "freeze") : NULL;
    const char **frozen = NULL;
    size_t n;
    if (train_model_frozen(g, p->freeze, &frozen, &n, err)) return refuse(err, "model.freeze");
    free(frozen);
    return finetune_input(p, name, err);
}

/* The model: a zoo spec whose classes are the dataset's, for 3-channel images, or a repository
 * model to fine-tune. */
static int read_model(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *model = json_object_get(params, "model");
    if (json_is_string(model) || json_object_get(model, "name"))
        return read_finetune(p, params, model, err);
    if (!json_is_object(model))
        return eng_fail(err, ENG_INVALID,
                        "params.model: required: a zoo model ({\"arch\": ..., \"classes\": ...}) "
                        "or a repository model's name");
    if (train_zoo_parse(model, &p->model, err)) return refuse(err, "model");
    size_t classes = dataset_class_count(p->data.dataset);
    if ((size_t)p->model.classes != classes)
        return eng_fail(err, ENG_INVALID,
                        "params.model.classes: must be %zu, the class count of dataset %s", classes,
                        p->data.dataset_id);
    if (p->model.channels != 3)
        return eng_fail(err, ENG_INVALID, "params.model.channels: must be 3 (RGB images)");
    int side = p->model.size;
    p->classes = classes;
    p->preprocess = (struct classify_preprocess){.resize = side,
                                                 .crop_height = side,
                                                 .crop_width = side,
                                                 .bilinear = 1,
                                                 .scale = 1.0f / 255,
                                                 .channels = 3};
    memcpy(p->preprocess.mean, cifar_mean, sizeof cifar_mean);
    memcpy(p->preprocess.std, cifar_std, sizeof cifar_std);
    p->input = (struct nn_tensor_info){.name = "input",
                                       .dtype = NN_FLOAT,
                                       .rank = 4,
                                       .dims = {(int64_t)p->batch, p->model.channels, side, side}};
    return 0;
}

/* The output model's name, which must be free in the repository. */
static int read_output(struct job_train_params *p, const struct app *app, const struct job_ctx *job,
                       const json_t *params, struct eng_error *err)
{
    p->output = json_string_value(json_object_get(params, "output"));
    if (!p->output || !models_valid_name(p->output))
        return eng_fail(err, ENG_INVALID,
                        "params.output: required: a model name (1 to 64 of A-Z, a-z, 0-9, '_', "
                        "'.' and '-', not starting with '.')");
    struct model *m = models_acquire(app->models, p->output);
    if (!m) return 0;
    model_release(m);
    /* This very job's, registered by an attempt killed before its end was recorded: the run
     * goes on, and its registration finds it there (job_train_model_register). */
    if (job && job_train_model_registered_by(job, p->output)) return 0;
    return eng_fail(err, ENG_CONFLICT, "params.output: a model named %s exists", p->output);
}

/* val_split: another labeled split of the dataset, or none. */
static int read_val(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *v = json_object_get(params, "val_split");
    if (!v) return 0;
    const char *name = json_string_value(v);
    p->val = name ? dataset_split(p->data.dataset, name) : NULL;
    if (!p->val || !p->val->labeled)
        return eng_fail(err, ENG_INVALID,
                        "params.val_split: must name a labeled split of dataset %s",
                        p->data.dataset_id);
    return 0;
}

/* The budget: epochs, or steps (optimiser steps, the last epoch partial when they are not a
 * whole number of epochs), exactly one; p->epochs and p->steps both set from it. */
static int read_budget(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *epochs = json_object_get(params, "epochs"),
                 *steps = json_object_get(params, "steps");
    long long n;
    long per_epoch = (long)p->batches;
    if (epochs && steps)
        return eng_fail(err, ENG_INVALID, "params.steps: give epochs or steps, not both");
    if (!epochs && !steps)
        return eng_fail(err, ENG_INVALID,
                        "params.epochs: required: epochs (1 to %d) or steps (1 to %d)",
                        JOB_TRAIN_MAX_EPOCHS, JOB_TRAIN_MAX_STEPS);
    if (epochs) {
        if (job_param_int(params, "epochs", 1, 0, 1, JOB_TRAIN_MAX_EPOCHS, &n, err)) return -1;
        p->epochs = (long)n;
        p->steps = p->epochs * per_epoch;
        return 0;
    }
    if (job_param_int(params, "steps", 1, 0, 1, JOB_TRAIN_MAX_STEPS, &n, err)) return -1;
    p->steps = (long)n;
    p->epochs = (p->steps + per_epoch - 1) / per_epoch;
    if (p->epochs > JOB_TRAIN_MAX_EPOCHS)
        return eng_fail(err, ENG_INVALID,
                        "params.steps: %ld steps of %ld per epoch are more than %d epochs",
                        p->steps, per_epoch, JOB_TRAIN_MAX_EPOCHS);
    return 0;
}

/* The params, with job the running job (NULL for validate) and split the training split (NULL:
 * the one params names). */
static int open_params(struct job_train_params *p, const struct app *app, const struct job_ctx *job,
                       const json_t *params, enum job_train_for kind,
                       const struct data_split *split, struct eng_error *err)
{
    memset(p, 0, sizeof *p);
    long long batch, eval_every;
    if (job_params_known(params, kind_names[kind], err) ||
        job_classify_open_dataset(&p->data, app, params, 1, err))
        return -1;
    if (split) p->data.split = split;
    if (read_val(p, params, err) || read_model(p, params, err) ||
        ((kind == JOB_TRAIN_FOR_TRAIN || kind >= JOB_TRAIN_FOR_FIXMATCH) &&
         read_output(p, app, job, params, err)) ||
        job_classify_policy(json_object_get(params, "policy"), "policy", &p->policy, err))
        return -1;
    if (kind == JOB_TRAIN_FOR_DIVERSITY && !p->policy)
        return eng_fail(err, ENG_INVALID,
                        "params.policy: required: the policy whose diversity is measured");
    if (kind == JOB_TRAIN_FOR_AFFINITY_DIVERSITY && !p->val)
        return eng_fail(err, ENG_INVALID,
                        "params.val_split: required: the labeled split affinity and accuracy are "
                        "measured on");
    if (kind == JOB_TRAIN_FOR_TRIAL && !p->val)
        return eng_fail(err, ENG_INVALID,
                        "params.val_split: required: the labeled split a trial is scored on");
    if (kind >= JOB_TRAIN_FOR_FIXMATCH && !p->val)
        return eng_fail(err, ENG_INVALID,
                        "params.val_split: required: the labeled split the test accuracy is "
                        "measured on");
    if (kind == JOB_TRAIN_FOR_SELF_TRAINING && !p->val)
        return eng_fail(err, ENG_INVALID,
                        "params.val_split: required: the labeled split each round's student is "
                        "tested on");
    if (job_param_int(params, "batch", 0, 64, 2, JOB_TRAIN_MAX_BATCH, &batch, err) ||
        job_param_int(params, "eval_every", 0, 1, 1, JOB_TRAIN_MAX_EPOCHS, &eval_every, err) ||
        job_param_real(params, "label_smoothing", 0, 0, 0, 1, &p->label_smoothing, err) ||
        job_param_real(params, "ema", 0, 0, 0, 0.999999, &p->ema, err) ||
        job_param_real(params, "clip", 0, 0, 0, 1e9, &p->clip, err))
        return -1;
    p->batch = p->forward_batch = (size_t)batch;
    p->input.dims[0] = (int64_t)batch;
    if (kind >= JOB_TRAIN_FOR_FIXMATCH && job_fixmatch_params(p, params, kind, err)) return -1;
    p->eval_every = (long)eval_every;
    /* Batches of one fixed size (the plan's), the last short one dropped. */
    p->batches = p->data.split->count / p->batch;
    if (p->batches == 0)
        return eng_fail(err, ENG_INVALID,
                        "params.batch: %zu is more than the %zu images of split %s (batches are "
                        "full, the last short one dropped)",
                        p->batch, p->data.split->count, p->data.split->name);
    if (read_budget(p, params, err) || read_optimizer(p, params, err) ||
        read_schedule(p, params, err))
        return -1;
    /* Affinity-diversity reads each model's val metrics once, after its last epoch. */
    if (kind == JOB_TRAIN_FOR_AFFINITY_DIVERSITY) p->eval_every = p->epochs;
    /* A search trial's metric is the val accuracy after every epoch. */
    if (kind == JOB_TRAIN_FOR_TRIAL) p->eval_every = 1;
    return 0;
}

int job_train_params_open_split(struct job_train_params *p, const struct app *app,
                                const json_t *params, enum job_train_for kind,
                                const struct data_split *split, struct eng_error *err)
{
    return open_params(p, app, NULL, params, kind, split, err);
}

int job_train_params_open(struct job_train_params *p, const struct app *app, const json_t *params,
                          enum job_train_for kind, struct eng_error *err)
{
    return open_params(p, app, NULL, params, kind, NULL, err);
}

int job_train_params_open_job(struct job_train_params *p, const struct job_ctx *job,
                              const json_t *params, enum job_train_for kind, struct eng_error *err)
{
    return open_params(p, job_ctx_app(job), job, params, kind, NULL, err);
}

void job_train_params_close(struct job_train_params *p)
{
    policy_free(p->policy);
    policy_free(p->semi.strong);
    job_classify_close(&p->data);
    memset(p, 0, sizeof *p);
}
