/* The job kind "self-training" (job_self_training.h): rounds of teachers labeling an unlabeled
 * split and a student learning from the labeled and pseudo-labeled images, each round's student
 * registered and the next round's teacher.
 *
 * A round is a labelling (job_self_training_label.c) and a training run (job_train_run.c, the
 * train kind's own loop, its checkpoints included) on a split of the labeled images and the kept
 * pseudo-labeled ones, with soft targets through the run's targets hook. The job's checkpoint is
 * the run's, with the round, the rounds done, the labelling's summary and its labels file as
 * extra members; after the labelling, {"round", "rounds", "labels"}; after a round's student is
 * registered, {"round": next, "rounds": [...]} alone. A resumed round reads the teachers'
 * probabilities from the labels file its checkpoint names (job_self_training_probs.c) rather than
 * running the teachers again (it does, as the same teachers on the same split give the same
 * probabilities, when the file is unusable or the checkpoint an older version's names none), and
 * checks the summary against its checkpoint's before it goes on from the run's last epoch, so a
 * round is never lost nor done twice. A kill between a student's registration and the checkpoint
 * after it leaves the model there: the resumed round finds it registered by this job (its
 * training.json, job_train_model_register) and goes on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "job_kind.h"
#include "job_self_training.h"
#include "job_train.h"
#include "models.h"

#define DEFAULT_THRESHOLD 0.3       /* Noisy Student's on ImageNet */
#define MAX_PER_CLASS     100000000 /* K times the classes: the student's pseudo-labeled images */
#define MAX_TEMPERATURE   100.0
#define MIN_TEMPERATURE   0.01

static const char *const names[] = {"teacher",
                                    "dataset",
                                    "split",
                                    "unlabeled_split",
                                    "val_split",
                                    "model",
                                    "policy",
                                    "labels",
                                    "temperature",
                                    "threshold",
                                    "per_class",
                                    "rounds",
                                    "dropout",
                                    "stochastic_depth",
                                    "epochs",
                                    "steps",
                                    "batch",
                                    "seed",
                                    "optimizer",
                                    "schedule",
                                    "label_smoothing",
                                    "ema",
                                    "clip",
                                    "eval_every",
                                    "output",
                                    NULL};
/* The student's: what job_train_params reads for JOB_TRAIN_FOR_SELF_TRAINING. */
static const char *const student_names[] = {"dataset", "split",     "val_split",  "model",
                                            "policy",  "epochs",    "steps",      "batch",
                                            "seed",    "optimizer", "schedule",   "label_smoothing",
                                            "ema",     "clip",      "eval_every", NULL};

struct self_training {
    struct self_training_params sp;
    json_t *teachers;          /* round 1's: an array of names */
    json_t *student;           /* the student's train params */
    struct job_train_params p; /* the student's, on the labeled split (checks, the dataset) */
};

/* The student's train params: params' members of student_names (the model object copied, to
 * take the noise), with Noisy Student's noise as the default policy: RandAugment, 2 ops at
 * magnitude 27 of torchvision's 31 bins. */
static json_t *student_params(const json_t *params)
{
    json_t *student = json_object();
    for (size_t i = 0; student && student_names[i]; i++) {
        json_t *v = json_object_get(params, student_names[i]);
        if (v && !strcmp(student_names[i], "model")) {
            if (json_object_set_new(student, "model", json_deep_copy(v))) {
                json_decref(student);
                return NULL;
            }
        } else if (v) {
            json_object_set(student, student_names[i], v);
        }
    }
    if (student && !json_object_get(params, "policy"))
        json_object_set_new(student, "policy",
                            json_pack("{s:s, s:i, s:i}", "preset", "randaugment", "n", 2, "m", 27));
    return student;
}

/* params.teacher, a model's name or a list of them, as a list. */
static int read_teachers(struct self_training *st, const json_t *params, struct eng_error *err)
{
    const json_t *t = json_object_get(params, "teacher"), *v;
    size_t i;
    if (json_is_string(t)) return (st->teachers = json_pack("[O]", t)) ? 0 : eng_no_memory(err);
    if (!json_is_array(t) || json_array_size(t) < 1 ||
        json_array_size(t) > SELF_TRAINING_MAX_TEACHERS)
        return eng_fail(err, ENG_INVALID,
                        "params.teacher: required: a repository model's name, or a list of 1 to "
                        "%d (an ensemble: the mean of their probabilities)",
                        SELF_TRAINING_MAX_TEACHERS);
    json_array_foreach(t, i, v) if (!json_is_string(v) || !*json_string_value(v)) return eng_fail(
        err, ENG_INVALID, "params.teacher/%zu: must be a model's name", i);
    st->teachers = json_incref((json_t *)t);
    return 0;
}

/* Noisy Student's model noise: params.dropout and params.stochastic_depth, drop probabilities
 * in [0, 1), become the student's zoo arguments (train.h's "Noise"), set in its model object
 * (student_params' copy); the teachers label without noise (eval mode). */
static int student_noise(const json_t *params, json_t *student, struct eng_error *err)
{
    static const char *const keys[] = {"dropout", "stochastic_depth"};
    json_t *model = json_object_get(student, "model");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const json_t *v = json_object_get(params, keys[i]);
        double p = json_number_value(v);
        if (!v) continue;
        if (!json_is_number(v) || !(p >= 0 && (float)p < 1)) /* the zoo's floats */
            return eng_fail(err, ENG_INVALID,
                            "params.%s: must be a number in [0, 1), the student's drop "
                            "probability",
                            keys[i]);
        if (json_object_get(model, keys[i]))
            return eng_fail(err, ENG_INVALID,
                            "params.model.%s: the student's %s is params.%s; give it once", keys[i],
                            keys[i], keys[i]);
        /* Not an object: train_zoo_parse refuses the model next. */
        if (json_is_object(model) && json_object_set(model, keys[i], (json_t *)v))
            return eng_no_memory(err);
    }
    /* Said here rather than as the zoo's refusal of the model object, to name this param. */
    struct train_zoo_spec spec;
    struct eng_error ignored;
    if (json_number_value(json_object_get(params, "stochastic_depth")) > 0 &&
        train_zoo_parse(json_object_get(params, "model"), &spec, &ignored) == 0 &&
        spec.family == TRAIN_ZOO_SMALL_CNN)
        return eng_fail(err, ENG_INVALID,
                        "params.stochastic_depth: the student %s has no residual blocks to drop "
                        "(the CIFAR ResNets, WRN and torchvision's ResNets have them)",
                        spec.arch);
    return 0;
}

/* Round k's model: "<output>-round<k>". */
static void round_name(const char *output, long k, char *out, size_t size)
{
    snprintf(out, size, "%s-round%ld", output, k);
}

static int read_own(struct self_training_params *sp, const json_t *params, struct eng_error *err)
{
    const json_t *labels = json_object_get(params, "labels");
    long long per_class, rounds, seed;
    char last[96];
    sp->dataset_id = json_string_value(json_object_get(params, "dataset"));
    sp->unlabeled = json_string_value(json_object_get(params, "unlabeled_split"));
    sp->output = json_string_value(json_object_get(params, "output"));
    if (!sp->unlabeled || !*sp->unlabeled)
        return eng_fail(err, ENG_INVALID,
                        "params.unlabeled_split: required: the split the teachers label");
    if (labels && !json_is_string(labels))
        return eng_fail(err, ENG_INVALID, "params.labels: must be \"soft\" or \"hard\"");
    sp->soft = !labels || strcmp(json_string_value(labels), "soft") == 0;
    if (labels && !sp->soft && strcmp(json_string_value(labels), "hard") != 0)
        return eng_fail(err, ENG_INVALID, "params.labels: must be \"soft\" or \"hard\"");
    if (!sp->soft && json_object_get(params, "temperature"))
        return eng_fail(err, ENG_INVALID,
                        "params.temperature: only for soft labels (\"labels\": \"soft\")");
    if (job_param_real(params, "temperature", 0, 1, MIN_TEMPERATURE, MAX_TEMPERATURE,
                       &sp->temperature, err) ||
        job_param_real(params, "threshold", 0, DEFAULT_THRESHOLD, 0, 1, &sp->threshold, err) ||
        job_param_int(params, "per_class", 0, 0, 1, MAX_PER_CLASS, &per_class, err) ||
        job_param_int(params, "rounds", 0, 1, 1, SELF_TRAINING_MAX_ROUNDS, &rounds, err) ||
        job_param_int(params, "seed", 0, 0, 0, (long long)UINT32_MAX, &seed, err))
        return -1;
    sp->per_class = (size_t)per_class;
    sp->rounds = (long)rounds;
    sp->seed = (uint64_t)seed;
    round_name(sp->output ? sp->output : "", sp->rounds, last, sizeof last);
    if (!sp->output || !models_valid_name(sp->output) || !models_valid_name(last))
        return eng_fail(err, ENG_INVALID,
                        "params.output: required: a model name (A-Z, a-z, 0-9, '_', '.' and '-', "
                        "not starting with '.') short enough for \"-round%ld\" after it in 64 "
                        "characters; round k's student is registered as <output>-round<k>",
                        sp->rounds);
    return 0;
}

/* The unlabeled split: images, none of them in the labeled split (a labeled image's target is
 * its label; the student's soft targets are found by image). */
static int check_unlabeled(const struct self_training *st, struct eng_error *err)
{
    const struct data_split *u = dataset_split(st->p.data.dataset, st->sp.unlabeled),
                            *l = st->p.data.split;
    if (!u)
        return eng_fail(err, ENG_INVALID, "params.unlabeled_split: dataset %s has no split %.64s",
                        st->sp.dataset_id, st->sp.unlabeled);
    if (u->count == 0)
        return eng_fail(err, ENG_INVALID, "params.unlabeled_split: split %s has no images",
                        u->name);
    /* The student's split holds K a class: bounded as a train run's steps are. */
    size_t classes = dataset_class_count(st->p.data.dataset);
    if (st->sp.per_class > MAX_PER_CLASS / classes)
        return eng_fail(err, ENG_INVALID,
                        "params.per_class: %zu a class of %zu classes is more than %d images",
                        st->sp.per_class, classes, MAX_PER_CLASS);
    /* Both ascending: one merge. */
    for (size_t i = 0, j = 0; i < u->count && j < l->count;) {
        if (u->indices[i] == l->indices[j])
            return eng_fail(err, ENG_INVALID,
                            "params.unlabeled_split: split %s shares images with split %s (%s "
                            "first); the unlabeled images must be others",
                            u->name, l->name, dataset_source(st->p.data.dataset, u->indices[i]));
        if (u->indices[i] < l->indices[j])
            i++;
        else
            j++;
    }
    return 0;
}

/* Everything validate and run share: the kind's params, the student's (train's code) on the
 * labeled split, the unlabeled split. Released by close_all. */
static int read_all(struct self_training *st, const struct app *app, const json_t *params,
                    struct eng_error *err)
{
    memset(st, 0, sizeof *st);
    if (job_params_known(params, names, err) || read_own(&st->sp, params, err) ||
        read_teachers(st, params, err))
        return -1;
    /* A repository model's name (train fine-tunes one) is no student: Noisy Student's is
     * trained from scratch, its soft targets in the dataset's class order. */
    const json_t *model = json_object_get(params, "model");
    if (json_is_string(model) || json_object_get(model, "name"))
        return eng_fail(err, ENG_INVALID,
                        "params.model: the student is a zoo model ({\"arch\": ..., \"classes\": "
                        "...}), trained from scratch as Noisy Student's");
    if (!(st->student = student_params(params))) return eng_no_memory(err);
    return student_noise(params, st->student, err) ||
                   job_train_params_open(&st->p, app, st->student, JOB_TRAIN_FOR_SELF_TRAINING,
                                         err) ||
                   check_unlabeled(st, err)
               ? -1
               : 0;
}

static void close_all(struct self_training *st)
{
    job_train_params_close(&st->p);
    json_decref(st->teachers);
    json_decref(st->student);
}

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct self_training st;
    int rc = read_all(&st, app, params, err);
    size_t i;
    const json_t *t;
    json_array_foreach(rc == 0 ? st.teachers : NULL, i, t)
    {
        struct job_classify jc;
        rc = self_training_teacher_open(
            &jc, app, &st.sp, json_string_value(t),
            json_is_array(json_object_get(params, "teacher")) ? (long)i : -1, err);
        job_classify_close(&jc);
        if (rc) break;
    }
    for (long k = 1; rc == 0 && k <= st.sp.rounds; k++) {
        char name[96];
        round_name(st.sp.output, k, name, sizeof name);
        struct model *m = models_acquire(app->models, name);
        if (m) {
            model_release(m);
            rc = eng_fail(err, ENG_CONFLICT, "params.output: a model named %s exists", name);
        }
    }
    close_all(&st);
    return rc;
}

/* ---- A round ------------------------------------------------------------------------------- */

struct round {
    struct self_training *st;
    struct job_ctx *ctx;
    const json_t *params;
    long k;
    json_t *teachers, *pseudo;
    char name[96], phase[64];
    char labels[SELF_TRAINING_PROBS_FILE]; /* the file of the teachers' probabilities */
};

/* The student as round k's model; its card is train's with the round's part. */
static int register_student(const struct round *rd, struct job_train_run *r, struct eng_error *err)
{
    void *onnx = NULL;
    size_t size;
    json_t *card = job_train_card(r, rd->st->student);
    int rc = card ? 0 : eng_no_memory(err);
    if (rc == 0 && json_object_set_new(card, "self_training",
                                       json_pack("{s:I, s:O, s:O, s:O}", "round", (json_int_t)rd->k,
                                                 "teachers", rd->teachers, "pseudo", rd->pseudo,
                                                 "params", rd->params)) != 0)
        rc = eng_no_memory(err);
    if (rc == 0) rc = job_train_model_onnx(r->graph, r->plan, r->ema, &onnx, &size, err);
    if (rc == 0) rc = job_train_model_register(rd->ctx, r->p, onnx, size, card, err);
    free(onnx);
    json_decref(card);
    return rc;
}

/* The round's metrics as round-<k>-metrics.csv after each epoch: the metric prefix, "round-<k>.",
 * names it. */
static int write_csv(struct job_train_run *r, struct eng_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s-metrics.csv", (int)strlen(r->metric_prefix) - 1,
             r->metric_prefix);
    return job_train_run_csv(r, name, err);
}

/* What a round's result row says of its student: the last epoch's test metrics. */
static json_t *round_row(const struct round *rd, const struct job_train_run *r)
{
    const json_t *last = json_array_get(r->metrics, json_array_size(r->metrics) - 1);
    return json_pack("{s:I, s:s, s:O, s:O, s:o, s:o, s:I, s:I, s:f}", "round", (json_int_t)rd->k,
                     "model", rd->name, "teachers", rd->teachers, "pseudo", rd->pseudo,
                     "val_accuracy", job_train_number(job_train_metric(last, "val_accuracy")),
                     "val_loss", job_train_number(job_train_metric(last, "val_loss")), "epochs",
                     (json_int_t)r->p->epochs, "steps", (json_int_t)r->p->steps, "duration_seconds",
                     r->seconds);
}

/* The student's training run on the round's split, resumed from saved (NULL: from the start),
 * registered; its row appended to rows. */
static int train_student(struct round *rd, struct self_training_labels *l, json_t *rows,
                         const json_t *saved, struct eng_error *err)
{
    struct self_training *st = rd->st;
    struct job_train_params p = {0};
    char prefix[32];
    double span = 1.0 / (double)st->sp.rounds;
    snprintf(prefix, sizeof prefix, "round-%ld.", rd->k);
    json_t *extra = json_pack("{s:I, s:O, s:O, s:s}", "round", (json_int_t)rd->k, "rounds", rows,
                              "pseudo", rd->pseudo, "labels", rd->labels);
    struct job_train_run r = {.ctx = rd->ctx,
                              .p = &p,
                              .phase = rd->phase,
                              .metric_prefix = prefix,
                              .progress_base = span * ((double)rd->k - 0.9),
                              .progress_span = 0.9 * span,
                              .artifacts = write_csv,
                              .user = l,
                              .targets = st->sp.soft ? self_training_targets : NULL,
                              .extra = extra};
    int rc = extra ? job_train_params_open_split(&p, job_ctx_app(rd->ctx), st->student,
                                                 JOB_TRAIN_FOR_SELF_TRAINING, &l->student, err)
                   : eng_no_memory(err);
    p.output = rd->name;
    r.policy = p.policy;
    if (rc == 0)
        rc = job_train_run_open(&r, err) || (saved && job_train_run_restore(&r, saved, err)) ||
                     job_train_run_epochs(&r, err) || register_student(rd, &r, err)
                 ? -1
                 : 0;
    json_t *row = rc == 0 ? round_row(rd, &r) : NULL;
    if (rc == 0 && (!row || json_array_append_new(rows, row) != 0)) rc = eng_no_memory(err);
    if (rc == 0) {
        double accuracy = job_train_real(json_object_get(row, "val_accuracy"));
        job_ctx_metric(rd->ctx, "val_accuracy", accuracy, rd->k);
        job_ctx_log(rd->ctx, "round %ld: student %s, test accuracy %.4f", rd->k, rd->name,
                    accuracy);
    }
    job_train_run_close(&r);
    job_train_params_close(&p);
    json_decref(extra);
    return rc;
}

/* The teachers' probabilities of round rd->k into l: from file `named` when the job's checkpoint
 * names one (an earlier attempt labelled the round) and it holds them; else the teachers' pass,
 * saved as this attempt's file, which a checkpoint then names (the run's next one when it has
 * one already). The file's name into rd->labels. */
static int teach_or_reuse(struct round *rd, struct self_training_labels *l, const json_t *rows,
                          const char *named, int run_saved, struct eng_error *err)
{
    if (named) {
        struct eng_error why = {0};
        snprintf(rd->labels, sizeof rd->labels, "%s", named);
        if (self_training_probs_load(rd->ctx, rd->labels, l, &why) == 0) {
            job_ctx_log(rd->ctx, "round %ld: the teachers' labels from %s, not labeled again",
                        rd->k, rd->labels);
            return 0;
        }
        job_ctx_log(rd->ctx, "round %ld: %s; the teachers label again", rd->k, why.message);
    }
    self_training_probs_file(rd->ctx, rd->k, rd->labels);
    if (self_training_teach(rd->ctx, &rd->st->sp, rd->teachers, l, err) ||
        self_training_probs_save(rd->ctx, rd->labels, l, err))
        return -1;
    if (run_saved) return 0;
    json_t *state = json_pack("{s:I, s:O, s:s}", "round", (json_int_t)rd->k, "rounds", rows,
                              "labels", rd->labels);
    double fraction = ((double)rd->k - 0.9) / (double)rd->st->sp.rounds;
    int rc =
        state ? job_ctx_checkpoint(rd->ctx, state, fraction, "labeled", err) : eng_no_memory(err);
    json_decref(state);
    return rc;
}

/* Round rd->k: the labelling (from file named when not NULL), then the student, from saved when
 * it is this round's run's checkpoint; then the checkpoint of the rounds done. */
static int run_round(struct round *rd, json_t *rows, const json_t *saved, const char *named,
                     struct eng_error *err)
{
    struct self_training *st = rd->st;
    struct self_training_labels l;
    char artifact[64];
    snprintf(artifact, sizeof artifact, "round-%ld-pseudo-labels.jsonl", rd->k);
    snprintf(rd->phase, sizeof rd->phase, "round %ld of %ld", rd->k, st->sp.rounds);
    round_name(st->sp.output, rd->k, rd->name, sizeof rd->name);
    if (rd->k > 1) {
        char teacher[96];
        round_name(st->sp.output, rd->k - 1, teacher, sizeof teacher);
        rd->teachers = json_pack("[s]", teacher);
    } else {
        rd->teachers = json_incref(st->teachers);
    }
    if (!rd->teachers) return eng_no_memory(err);
    job_ctx_progress(rd->ctx, (double)(rd->k - 1) / (double)st->sp.rounds, "labeling");
    int rc = self_training_labels_open(&l, &st->sp, st->p.data.dataset, err);
    if (rc == 0) rc = teach_or_reuse(rd, &l, rows, named, saved != NULL, err);
    if (rc == 0)
        rc = self_training_labels_finish(rd->ctx, &st->sp, st->p.data.dataset, st->p.data.split,
                                         artifact, &l, err);
    if (rc == 0 && !(rd->pseudo = self_training_labels_json(&l, st->p.data.dataset)))
        rc = eng_no_memory(err);
    if (rc == 0) {
        job_ctx_log(rd->ctx,
                    "round %ld: %zu of %zu unlabeled images kept, %zu after balancing, %zu with "
                    "copies",
                    rd->k, l.kept, l.n, l.used, l.images);
        job_ctx_metric(rd->ctx, "pseudo_kept", (double)l.kept, rd->k);
    }
    if (rc == 0 && saved && !json_equal(json_object_get(saved, "pseudo"), rd->pseudo))
        rc = eng_fail(err, ENG_INTERNAL,
                      "round %ld's pseudo-labels differ from those its checkpoint trained on (a "
                      "teacher changed?); start a new job",
                      rd->k);
    if (rc == 0) rc = train_student(rd, &l, rows, saved, err);
    json_t *state =
        rc == 0 ? json_pack("{s:I, s:O}", "round", (json_int_t)rd->k + 1, "rounds", rows) : NULL;
    if (rc == 0)
        rc = state ? job_ctx_checkpoint(rd->ctx, state, (double)rd->k / (double)st->sp.rounds,
                                        "round done", err)
                   : eng_no_memory(err);
    /* The round's checkpoint and labels files go once the checkpoint after it names none. */
    if (rc == 0) {
        job_train_remove_states(rd->ctx);
        self_training_probs_remove(rd->ctx, rd->k);
    }
    json_decref(state);
    self_training_labels_free(&l);
    json_decref(rd->teachers);
    json_decref(rd->pseudo);
    return rc;
}

/* Where to start: the checkpoint's round and rounds done, the run's checkpoint when it is one (it
 * has an epoch), and the round's labels file when it names one. */
static int restore(const json_t *saved, long *round, json_t **rows, const json_t **run,
                   const char **labels, long rounds, struct eng_error *err)
{
    json_int_t k;
    json_t *done;
    if (json_unpack((json_t *)saved, "{s:I, s:o}", "round", &k, "rounds", &done) != 0 ||
        !json_is_array(done) || k < 1 || k > rounds + 1 || json_array_size(done) != (size_t)k - 1)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not self-training's");
    *round = (long)k;
    *run = json_object_get(saved, "epoch") ? saved : NULL;
    *labels = json_string_value(json_object_get(saved, "labels"));
    if (*labels &&
        (strlen(*labels) >= SELF_TRAINING_PROBS_FILE || strchr(*labels, '/') || **labels == '.'))
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not self-training's");
    json_decref(*rows);
    return (*rows = json_deep_copy(done)) ? 0 : eng_no_memory(err);
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct self_training st;
    const json_t *saved = job_ctx_restored(ctx), *run_saved = NULL;
    const char *labels = NULL;
    json_t *rows = json_array();
    long k = 1;
    int rc = read_all(&st, job_ctx_app(ctx), params, err);
    if (rc == 0 && !rows) rc = eng_no_memory(err);
    if (rc == 0 && saved) rc = restore(saved, &k, &rows, &run_saved, &labels, st.sp.rounds, err);
    if (rc == 0 && k > 1) job_ctx_log(ctx, "resuming at round %ld of %ld", k, st.sp.rounds);
    for (; rc == 0 && k <= st.sp.rounds; k++, run_saved = NULL, labels = NULL) {
        struct round rd = {.st = &st, .ctx = ctx, .params = params, .k = k};
        rc = run_round(&rd, rows, run_saved, labels, err);
    }
    if (rc == 0) {
        const json_t *last = json_array_get(rows, json_array_size(rows) - 1);
        *result = json_pack("{s:O, s:O, s:O}", "model", json_object_get(last, "model"),
                            "val_accuracy", json_object_get(last, "val_accuracy"), "rounds", rows);
        if (!*result) rc = eng_no_memory(err);
    }
    if (rc == 0) rc = job_classify_write_result(ctx, *result, err);
    if (rc != 0 && !job_ctx_resumes(ctx)) {
        job_train_remove_states(ctx);
        self_training_probs_remove(ctx, st.sp.rounds);
    }
    if (rc != 0 && *result) {
        json_decref(*result);
        *result = NULL;
    }
    json_decref(rows);
    close_all(&st);
    return rc;
}

const struct job_kind job_kind_self_training = {
    .name = "self-training",
    .help = "Noisy Student self-training: teachers (repository models) pseudo-label an unlabeled "
            "split, a zoo student learns from the labeled and pseudo-labeled images under a "
            "strong policy and, for each round, is registered and becomes the next teacher",
    .validate = validate,
    .run = run,
};
