/* The job kinds "fixmatch" and "supervised" (job_fixmatch.h): the train kind's run (job_train.h:
 * model, plans, optimiser, EMA, epochs over the labeled split, evaluation, checkpoints,
 * registration) with FixMatch's step in place of the supervised one.
 *
 * Params are train's (a labeled "split", the "val_split" the test accuracy is measured on,
 * required, "model", "policy" for the weak view, the budget, "batch", "optimizer", "schedule",
 * "ema", "eval_every", "output") with "unlabeled_split", "mu", "tau", "lambda_u" and "strong"
 * (the strong view's policy), and FixMatch's defaults where train has others: the weak view
 * "fixmatch-weak", SGD with lr 0.03, Nesterov momentum 0.9 and weight decay 5e-4 on all but
 * BatchNorm's and the biases, the schedule "fixmatch" (lr cos(7 pi k / 16 K)), EMA 0.999.
 *
 * An epoch is a pass over the labeled split (train's), so fixmatch and supervised given the same
 * params run the same steps. Each step takes the next mu B images of the unlabeled split from
 * two loaders that walk it in the same shuffled order, one giving the weak view and one the
 * strong view (options.view 1: the weak policy and the strong one drawn on streams of their own):
 * step k reads the unlabeled split's epoch k / U at batch k % U (U its full batches of mu B), a
 * function of k alone, so a run resumed at an epoch boundary reads the batches it would have.
 *
 * "supervised" (Oliver et al. 2018's baseline) is the same code with mu = 0: the labeled loss
 * alone, on the same labeled split, model, budget and optimiser. It takes fixmatch's params, so
 * one params object runs both, and reads but does not use the unlabeled ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "job_classify.h"
#include "job_fixmatch.h"
#include "job_kind.h"
#include "job_train.h"
#include "policy/policy.h"

#define FIXMATCH_MAX_MU      64
#define FIXMATCH_MAX_FORWARD 16384

/* ---- Params --------------------------------------------------------------------------------- */

/* params with FixMatch's defaults where they are absent (a new reference). An optimizer or a
 * schedule object given without a name (or with the default's) gets the default's members it
 * lacks; one of another kind is left as given. */
static json_t *with_defaults(const json_t *params)
{
    json_t *out = json_deep_copy(params);
    json_t *defaults = json_pack("{s:s, s:f, s:{s:s, s:f, s:f, s:b, s:f, s:b}, s:{s:s}}", "policy",
                                 "fixmatch-weak", "ema", 0.999, "optimizer", "name", "sgd", "lr",
                                 0.03, "momentum", 0.9, "nesterov", 1, "weight_decay", 5e-4,
                                 "exclude_no_decay", 1, "schedule", "name", "fixmatch");
    if (!out || !defaults || !json_is_object(out)) {
        json_decref(defaults);
        return out;
    }
    const char *key;
    json_t *value;
    json_object_foreach(defaults, key, value)
    {
        json_t *given = json_object_get(out, key);
        if (!given) {
            json_object_set(out, key, value);
            continue;
        }
        const char *name = json_string_value(json_object_get(given, "name"));
        const char *def = json_string_value(json_object_get(value, "name"));
        if (json_is_object(given) && (!name || (def && strcmp(name, def) == 0)))
            json_object_update_missing(given, value);
    }
    json_decref(defaults);
    return out;
}

/* The strong view's policy: the weak policy, then the strong one, which is checked alone first
 * so that a refusal names its own pointer (params.strong/...). */
static int read_strong(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *strong = json_object_get(params, "strong");
    json_t *def = NULL;
    if (!strong) strong = def = json_string("fixmatch-strong");
    if (json_is_string(strong) && strcmp(json_string_value(strong), "ctaugment") == 0) {
        json_decref(def);
        return eng_fail(err, ENG_INVALID,
                        "params.strong: \"ctaugment\" is not available yet; give a policy "
                        "(default \"fixmatch-strong\", FixMatch's RandAugment with Cutout)");
    }
    struct policy *alone;
    int rc = job_classify_policy(strong, "strong", &alone, err);
    policy_free(alone);
    json_t *both =
        rc == 0 ? json_pack("{s:[O, O]}", "seq", json_object_get(params, "policy"), strong) : NULL;
    json_decref(def);
    if (rc) return -1;
    if (!both) return eng_no_memory(err);
    rc = job_classify_policy(both, "strong", &p->semi.strong, err);
    json_decref(both);
    return rc;
}

int job_fixmatch_params(struct job_train_params *p, const json_t *params, enum job_train_for kind,
                        struct eng_error *err)
{
    long long mu;
    const json_t *v = json_object_get(params, "unlabeled_split");
    if (kind == JOB_TRAIN_FOR_FIXMATCH && !v)
        return eng_fail(err, ENG_INVALID,
                        "params.unlabeled_split: required: the split of unlabeled images");
    if (v) {
        const char *name = json_string_value(v);
        p->semi.unlabeled = name ? dataset_split(p->data.dataset, name) : NULL;
        if (!p->semi.unlabeled)
            return eng_fail(err, ENG_INVALID,
                            "params.unlabeled_split: must name a split of dataset %s",
                            p->data.dataset_id);
    }
    if (job_param_int(params, "mu", 0, 7, 1, FIXMATCH_MAX_MU, &mu, err) ||
        job_param_real(params, "tau", 0, 0.95, 0, 1, &p->semi.tau, err) ||
        job_param_real(params, "lambda_u", 0, 1, 0, 1e3, &p->semi.lambda_u, err) ||
        read_strong(p, params, err))
        return -1;
    if (p->batch * (1 + 2 * (size_t)mu) > FIXMATCH_MAX_FORWARD)
        return eng_fail(err, ENG_INVALID,
                        "params.mu: batch x (1 + 2 mu) images make a training forward, at most "
                        "%d",
                        FIXMATCH_MAX_FORWARD);
    if (p->semi.unlabeled && p->semi.unlabeled->count < p->batch * (size_t)mu)
        return eng_fail(err, ENG_INVALID,
                        "params.mu: a step takes batch x mu = %zu unlabeled images, more than "
                        "the %zu of split %s",
                        p->batch * (size_t)mu, p->semi.unlabeled->count, p->semi.unlabeled->name);
    if (kind == JOB_TRAIN_FOR_SUPERVISED) return 0;
    p->semi.mu = (size_t)mu;
    p->forward_batch = p->batch * (1 + 2 * p->semi.mu);
    return 0;
}

/* ---- The run -------------------------------------------------------------------------------- */

/* A loader over the unlabeled split that runs on across its epochs (full batches of mu B). */
struct stream {
    struct data_loader *l;
    uint32_t view;
    long epoch, next; /* the open loader's epoch and next batch */
};

struct fixmatch_run {
    struct fixmatch_config c;
    struct stream weak, strong;
    size_t image; /* floats per image */
    float *input; /* a forward's images: labeled, weak, strong */
    int32_t *pseudo;
    float *mask;
    /* This epoch's sums, reset after each (a resumed epoch starts over). */
    struct {
        size_t unlabeled, masked, hidden, hidden_correct, masked_hidden, masked_correct;
        double unlabeled_loss;
        long steps;
    } sums;
};

/* The next batch of s for step k: the unlabeled split's epoch k / U, batch k % U. */
static int stream_next(struct job_train_run *r, struct stream *s, long k, struct data_batch *b,
                       struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    size_t per = p->batch * p->semi.mu;
    long batches = (long)(p->semi.unlabeled->count / per), epoch = k / batches, at = k % batches;
    if (!s->l || s->epoch != epoch || s->next != at) {
        data_loader_free(s->l);
        struct data_loader_options o = {.dataset = p->data.dataset,
                                        .split = p->semi.unlabeled,
                                        .policy = s->view ? p->semi.strong : p->policy,
                                        .preprocess = &p->preprocess,
                                        .seed = p->data.seed,
                                        .epoch = (uint32_t)epoch,
                                        .batch = per,
                                        .shuffle = 1,
                                        .drop_last = 1,
                                        .first_batch = (size_t)at,
                                        .view = s->view,
                                        .threads = job_ctx_threads(r->ctx)};
        if (!(s->l = data_loader_new(&o, err))) return -1;
        s->epoch = epoch;
    }
    int got = data_loader_next(s->l, b, err);
    if (got < 0) return -1;
    if (got == 0) return eng_fail(err, ENG_INTERNAL, "the unlabeled split's loader ended early");
    s->next = at + 1;
    return 0;
}

/* An unlabeled image's hidden label as the model's class (the dataset's label), or -1. */
static int hidden_label(const struct job_train_run *r, uint32_t index)
{
    int label = dataset_label(r->p->data.dataset, index);
    if (label < 0 || !r->p->data.class_map) return label;
    return r->p->data.class_map[label];
}

/* The pseudo-labels' tallies of a step, against the weak batch's hidden labels. */
static void tally(struct job_train_run *r, struct fixmatch_run *f, const struct data_batch *weak,
                  const struct fixmatch_stats *s)
{
    size_t u = f->c.mu * f->c.batch;
    f->sums.unlabeled += u;
    f->sums.masked += s->masked;
    f->sums.unlabeled_loss += s->unlabeled_loss;
    f->sums.steps++;
    for (size_t i = 0; i < u; i++) {
        int y = hidden_label(r, weak->indices[i]);
        if (y < 0) continue;
        int right = f->pseudo[i] == y, in = f->mask[i] > 0;
        f->sums.hidden++;
        f->sums.hidden_correct += (size_t)right;
        f->sums.masked_hidden += (size_t)in;
        f->sums.masked_correct += (size_t)(in && right);
    }
}

static int step(struct job_train_run *r, const struct data_batch *b, const int32_t *labels, long k,
                double *loss, size_t *correct, struct eng_error *err)
{
    struct fixmatch_run *f = r->user;
    const struct job_train_params *p = r->p;
    size_t n = p->batch * f->image, u = p->batch * p->semi.mu * f->image;
    struct data_batch weak = {0}, strong;
    memcpy(f->input, b->inputs, n * sizeof *f->input);
    if (p->semi.mu) {
        if (stream_next(r, &f->weak, k, &weak, err)) return -1;
        memcpy(f->input + n, weak.inputs, u * sizeof *f->input);
        if (stream_next(r, &f->strong, k, &strong, err)) return -1;
        memcpy(f->input + n + u, strong.inputs, u * sizeof *f->input);
    }
    const float *logits;
    struct fixmatch_stats s;
    if (fixmatch_step(&f->c, r->plan, r->optim, r->ema, f->input, labels,
                      train_schedule_lr(&p->schedule, k, p->steps), r->dlogits, f->pseudo, f->mask,
                      &logits, &s, err))
        return -1;
    /* The epoch's train_loss is the mean of the steps' whole loss (weighted by B, as train's). */
    *loss = s.loss;
    *correct += s.labeled_correct;
    if (p->semi.mu) tally(r, f, &weak, &s);
    return 0;
}

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : NAN;
}

static int epoch_end(struct job_train_run *r, json_t *row, struct eng_error *err)
{
    struct fixmatch_run *f = r->user;
    if (r->p->semi.mu == 0) return 0;
    double mask_rate = ratio(f->sums.masked, f->sums.unlabeled),
           pseudo = ratio(f->sums.hidden_correct, f->sums.hidden),
           masked_pseudo = ratio(f->sums.masked_correct, f->sums.masked_hidden),
           unlabeled_loss = f->sums.unlabeled_loss / (double)f->sums.steps;
    memset(&f->sums, 0, sizeof f->sums);
    if (json_object_set_new(row, "mask_rate", job_train_number(mask_rate)) ||
        json_object_set_new(row, "pseudo_label_accuracy", job_train_number(pseudo)) ||
        json_object_set_new(row, "masked_pseudo_label_accuracy", job_train_number(masked_pseudo)) ||
        json_object_set_new(row, "unlabeled_loss", job_train_number(unlabeled_loss)))
        return eng_no_memory(err);
    job_ctx_metric(r->ctx, "mask_rate", mask_rate, r->epoch);
    job_ctx_metric(r->ctx, "unlabeled_loss", unlabeled_loss, r->epoch);
    if (isfinite(pseudo)) job_ctx_metric(r->ctx, "pseudo_label_accuracy", pseudo, r->epoch);
    job_ctx_log(r->ctx, "epoch %ld: mask rate %.4f, pseudo-label accuracy %.4f (%.4f above tau)",
                r->epoch, mask_rate, pseudo, masked_pseudo);
    return 0;
}

static const char *const extra_columns[] = {"mask_rate", "pseudo_label_accuracy",
                                            "masked_pseudo_label_accuracy", "unlabeled_loss", NULL};

static int run_kind(struct job_ctx *ctx, const json_t *given, enum job_train_for kind,
                    json_t **result, struct eng_error *err)
{
    json_t *params = with_defaults(given);
    struct job_train_params p;
    struct fixmatch_run f = {.weak = {.view = 0}, .strong = {.view = 1}};
    struct job_train_run r = {.ctx = ctx,
                              .p = &p,
                              .phase = kind == JOB_TRAIN_FOR_FIXMATCH ? "fixmatch" : "supervised",
                              .progress_span = 1,
                              .step = step,
                              .epoch_end = epoch_end,
                              .user = &f};
    int rc = params ? job_train_params_open_job(&p, ctx, params, kind, err) : eng_no_memory(err);
    if (rc == 0) {
        r.policy = p.policy;
        r.extra_columns = p.semi.mu ? extra_columns : NULL;
        f.c = (struct fixmatch_config){.batch = p.batch,
                                       .mu = p.semi.mu,
                                       .classes = p.classes,
                                       .tau = p.semi.tau,
                                       .lambda_u = p.semi.lambda_u};
        f.image = (size_t)(p.input.dims[1] * p.input.dims[2] * p.input.dims[3]);
        f.input = malloc(p.forward_batch * f.image * sizeof *f.input);
        f.pseudo = malloc((p.semi.mu * p.batch + 1) * sizeof *f.pseudo);
        f.mask = malloc((p.semi.mu * p.batch + 1) * sizeof *f.mask);
        if (!f.input || !f.pseudo || !f.mask) rc = eng_no_memory(err);
    }
    if (rc == 0)
        rc = job_train_kind_run(&r, params, result, err);
    else
        job_train_run_close(&r);
    data_loader_free(f.weak.l);
    data_loader_free(f.strong.l);
    free(f.input);
    free(f.pseudo);
    free(f.mask);
    if (params) job_train_params_close(&p);
    json_decref(params);
    return rc;
}

static int validate_kind(const struct app *app, const json_t *given, enum job_train_for kind,
                         struct eng_error *err)
{
    json_t *params = with_defaults(given);
    if (!params) return eng_no_memory(err);
    struct job_train_params p;
    int rc = job_train_params_open(&p, app, params, kind, err);
    job_train_params_close(&p);
    json_decref(params);
    return rc;
}

static int validate_fixmatch(const struct app *app, const json_t *params, struct eng_error *err)
{
    return validate_kind(app, params, JOB_TRAIN_FOR_FIXMATCH, err);
}

static int run_fixmatch(struct job_ctx *ctx, const json_t *params, json_t **result,
                        struct eng_error *err)
{
    return run_kind(ctx, params, JOB_TRAIN_FOR_FIXMATCH, result, err);
}

static int validate_supervised(const struct app *app, const json_t *params, struct eng_error *err)
{
    return validate_kind(app, params, JOB_TRAIN_FOR_SUPERVISED, err);
}

static int run_supervised(struct job_ctx *ctx, const json_t *params, json_t **result,
                          struct eng_error *err)
{
    return run_kind(ctx, params, JOB_TRAIN_FOR_SUPERVISED, result, err);
}

const struct job_kind job_kind_fixmatch = {
    .name = "fixmatch",
    .help = "FixMatch (Sohn et al. 2020): a zoo model trained on a labeled split and an "
            "unlabeled one (pseudo-labels of weak views above tau teach the strong views), "
            "its EMA evaluated on the val split each epoch, and registered",
    .validate = validate_fixmatch,
    .run = run_fixmatch,
};

const struct job_kind job_kind_supervised = {
    .name = "supervised",
    .help = "fixmatch's baseline: the same params, model, labeled split and budget, trained on "
            "the labeled split alone",
    .validate = validate_supervised,
    .run = run_supervised,
};
