/* The job kinds "fixmatch" and "supervised" (job_fixmatch.h): the train kind's run (job_train.h:
 * model, plans, optimiser, EMA, epochs over the labeled split, evaluation, checkpoints,
 * registration) with FixMatch's step in place of the supervised one.
 *
 * Params are train's (a labeled "split", the "val_split" the test accuracy is measured on,
 * required, "model", "policy" for the weak view, the budget, "batch", "optimizer", "schedule",
 * "ema", "eval_every", "output") with "unlabeled_split", "mu", "tau", "lambda_u", "strong"
 * (the strong view's policy, or "ctaugment") and "ctaugment", and FixMatch's defaults where train
 * has others: the weak view "fixmatch-weak", SGD with lr 0.03, Nesterov momentum 0.9 and
 * weight decay 5e-4 on all but BatchNorm's and the biases, the schedule "fixmatch"
 * (lr cos(7 pi k / 16 K)), EMA 0.999.
 *
 * An epoch is a pass over the labeled split (train's), so fixmatch and supervised given the same
 * params run the same steps. Each step takes the next mu B images of the unlabeled split from
 * two loaders that walk it in the same shuffled order, one giving the weak view and one the
 * strong view (options.view 1: the weak policy and the strong one drawn on streams of their own):
 * step k reads the unlabeled split's epoch k / U at batch k % U (U its full batches of mu B), a
 * function of k alone, so a run resumed at an epoch boundary reads the batches it would have.
 *
 * "strong": "ctaugment" has no strong loader: the step makes the strong views itself, and the
 * labeled images' probes, from a CTAugment state the probes teach (job_fixmatch.h's CTAugment
 * section), kept in the checkpoint (its "ctaugment" member) so a resumed run goes on with the
 * rates it had. params.ctaugment holds the state's settings, or "from", a /v1/ctaugment state to
 * start from (its settings and rates, read when the job starts: a job started again before its
 * first checkpoint reads it again), and "save", which stores the learnt state at the end as the
 * /v1/ctaugment state whose id is the job's: a new state rather than "from"'s, so feedback a
 * client sent to that one meanwhile is never overwritten. The result carries the state as
 * GET /v1/ctaugment/{id} shows one, with each bin's count of feedbacks.
 *
 * "supervised" (Oliver et al. 2018's baseline) is the same code with mu = 0: the labeled loss
 * alone, on the same labeled split, model, budget and optimiser. It takes fixmatch's params, so
 * one params object runs both, and reads but does not use the unlabeled ones (nor CTAugment's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ctaugment_store.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "job_classify.h"
#include "job_fixmatch.h"
#include "job_kind.h"
#include "job_train.h"
#include "json_text.h"
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

/* params.ctaugment into p->semi: CTAugment's settings (absent members the reference's), checked as
 * POST /v1/ctaugment checks them; or "from", a /v1/ctaugment state to start from, whose own
 * settings apply (validate checks that it exists); and "save". */
static int read_ctaugment(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    static const char *const names[] = {"depth", "decay", "threshold", "from", "save", NULL};
    const json_t *given = json_object_get(params, "ctaugment");
    const json_t *from = json_object_get(given, "from"), *save = json_object_get(given, "save");
    long long depth;
    if (given && !json_is_object(given))
        return eng_fail(err, ENG_INVALID,
                        "params.ctaugment: must be an object: {\"depth\", \"decay\", "
                        "\"threshold\", \"from\", \"save\"}, each optional");
    if (given && json_check_members(given, names, "params.ctaugment.", "member", err)) return -1;
    if (from && !json_is_string(from))
        return eng_fail(err, ENG_INVALID,
                        "params.ctaugment.from: must be the id of a CTAugment state "
                        "(GET /v1/ctaugment lists them)");
    if (from && json_object_size(given) > 1 + (save != NULL))
        return eng_fail(err, ENG_INVALID,
                        "params.ctaugment.from: the state's own depth, decay and threshold apply: "
                        "give them only without from");
    if (save && !json_is_boolean(save))
        return eng_fail(err, ENG_INVALID, "params.ctaugment.save: must be true or false");
    p->semi.ctaugment = 1;
    p->semi.cta_from = json_string_value(from);
    p->semi.cta_save = json_is_true(save);
    if (job_param_int(params, "ctaugment.depth", 0, CTAUG_DEFAULTS.depth, 1, CTAUG_MAX_DEPTH,
                      &depth, err) ||
        job_param_real(params, "ctaugment.decay", 0, CTAUG_DEFAULTS.decay, 0, 1, &p->semi.cta.decay,
                       err) ||
        job_param_real(params, "ctaugment.threshold", 0, CTAUG_DEFAULTS.threshold, 0, 1,
                       &p->semi.cta.threshold, err))
        return -1;
    p->semi.cta.depth = (int)depth;
    /* The engine's own check (decay in the open interval): "ctaugment decay: ..." names it. */
    struct ctaug *c = ctaug_new(&p->semi.cta, err);
    if (!c) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message + strlen("ctaugment "));
        return eng_fail(err, ENG_INVALID, "params.ctaugment.%s", why);
    }
    ctaug_free(c);
    return 0;
}

/* The strong view: "ctaugment", or a policy: the weak policy, then the strong one, which is
 * checked alone first so that a refusal names its own pointer (params.strong/...). */
static int read_strong(struct job_train_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *strong = json_object_get(params, "strong");
    if (json_is_string(strong) && strcmp(json_string_value(strong), "ctaugment") == 0)
        return read_ctaugment(p, params, err);
    if (json_object_get(params, "ctaugment"))
        return eng_fail(err, ENG_INVALID,
                        "params.ctaugment: CTAugment's settings, for \"strong\": \"ctaugment\" "
                        "only");
    json_t *def = NULL;
    if (!strong) strong = def = json_string("fixmatch-strong");
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
    struct stream weak, strong; /* strong: not with CTAugment, whose views the step makes */
    size_t image;               /* floats per image */
    float *input;               /* a forward's images: labeled, weak, strong */
    int32_t *pseudo;
    float *mask;
    /* With CTAugment (cta.state not NULL): the step's policies (mu B strong, B probes), its
     * probes' images, and the checkpoint's extra member holding the state. */
    struct fixmatch_cta cta;
    struct ctaug_policy *strong_policies, *probe_policies;
    float *probes;
    json_t *extra;
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

/* Step k's CTAugment (job_fixmatch.h): the strong views of the weak batch's images into the
 * forward's input (at strong), then the labeled batch b's probes, classified and fed back. */
static int cta_step(struct job_train_run *r, struct fixmatch_run *f, const struct data_batch *b,
                    const struct data_batch *weak, const int32_t *labels, long k, float *strong,
                    struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    int threads = job_ctx_threads(r->ctx);
    /* The images' weak views as their loaders make them: the strong loader's of the unlabeled
     * images (view 1), and the very inputs of the labeled ones (view 0, b's epoch). */
    struct data_loader_options unlabeled = {.dataset = p->data.dataset,
                                            .split = p->semi.unlabeled,
                                            .policy = p->policy,
                                            .preprocess = &p->preprocess,
                                            .seed = p->data.seed,
                                            .epoch = weak->epoch,
                                            .view = 1},
                               labeled = unlabeled;
    labeled.split = p->data.split;
    labeled.policy = r->policy;
    labeled.epoch = b->epoch;
    labeled.view = 0;
    const float *logits;
    return fixmatch_cta_views(f->cta.state, &unlabeled, weak->indices, weak->size, 0, k, threads,
                              f->strong_policies, strong, f->image, err) ||
                   fixmatch_cta_views(f->cta.state, &labeled, b->indices, b->size, 1, k, threads,
                                      f->probe_policies, f->probes, f->image, err) ||
                   job_train_run_classify(r, f->probes, &logits, err) ||
                   fixmatch_cta_feedback(&f->cta, f->probe_policies, logits, labels, b->size,
                                         p->classes, err)
               ? -1
               : 0;
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
        if (f->cta.state ? cta_step(r, f, b, &weak, labels, k, f->input + n + u, err)
                         : stream_next(r, &f->strong, k, &strong, err))
            return -1;
        if (!f->cta.state) memcpy(f->input + n + u, strong.inputs, u * sizeof *f->input);
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

static double ratio_of(double a, long b)
{
    return b ? a / (double)b : NAN;
}

static double ratio(size_t a, size_t b)
{
    return ratio_of((double)a, (long)b);
}

/* The epoch's CTAugment measures into row (its probes' mean proximity) and its state into the
 * checkpoint's extra member, which the checkpoint after this hook saves. */
static int cta_epoch_end(struct job_train_run *r, struct fixmatch_run *f, json_t *row,
                         struct eng_error *err)
{
    double proximity = ratio_of(f->cta.proximity, f->cta.probes);
    f->cta.probes = 0;
    f->cta.proximity = 0;
    if (json_object_set_new(row, "probe_proximity", job_train_number(proximity)) ||
        json_object_set_new(f->extra, "ctaugment", fixmatch_cta_to_json(&f->cta)))
        return eng_no_memory(err);
    job_ctx_metric(r->ctx, "probe_proximity", proximity, r->epoch);
    return 0;
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
    return f->cta.state ? cta_epoch_end(r, f, row, err) : 0;
}

static const char *const extra_columns[] = {"mask_rate", "pseudo_label_accuracy",
                                            "masked_pseudo_label_accuracy", "unlabeled_loss", NULL};
static const char *const cta_columns[] = {
    "mask_rate",      "pseudo_label_accuracy", "masked_pseudo_label_accuracy",
    "unlabeled_loss", "probe_proximity",       NULL};

/* The state of /v1/ctaugment/{id} into *out (NULL only for the check validate makes): ENG_NOT_FOUND
 * naming params.ctaugment.from when there is none. */
static int cta_from_store(const struct app *app, const char *id, struct ctaug **out,
                          struct eng_error *err)
{
    struct ctaugment_record r;
    if (ctaugment_store_get(app->storage, id, &r, err)) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        return eng_fail(err, err->code, "params.ctaugment.from: %s", why);
    }
    int rc = 0;
    if (out && !(*out = ctaug_from_json(r.state, err))) rc = -1;
    ctaugment_record_clear(&r);
    return rc;
}

/* "save": the learnt state as the /v1/ctaugment state whose id is the job's (so an end done again
 * after a crash replaces the state it saved rather than making another), named in the result's
 * ctaugment member. */
static json_t *replace_state(const json_t *old, void *ctx, struct eng_error *err)
{
    (void)old, (void)err;
    return json_incref(ctx);
}

static int cta_save(struct job_ctx *ctx, const struct fixmatch_cta *c, json_t *result,
                    struct eng_error *err)
{
    struct ctaugment_record r = {.state = ctaug_to_json(c->state)}, saved;
    snprintf(r.id, sizeof r.id, "%s", job_ctx_id(ctx));
    struct storage *st = job_ctx_app(ctx)->storage;
    int rc = r.state ? ctaugment_store_create(st, &r, err) : eng_no_memory(err);
    if (rc && err->code == ENG_CONFLICT) {
        rc = ctaugment_store_update(st, r.id, replace_state, r.state, &saved, err);
        if (rc == 0) ctaugment_record_clear(&saved);
    }
    if (rc == 0 &&
        json_object_set_new(json_object_get(result, "ctaugment"), "id", json_string(r.id)))
        rc = eng_no_memory(err);
    json_decref(r.state);
    return rc;
}

/* With "strong": "ctaugment" (and unlabeled images to use it on): the state, from the checkpoint
 * the job resumes from, from the store or new, and the step's buffers. */
static int cta_open(struct job_ctx *ctx, const struct job_train_params *p, struct fixmatch_run *f,
                    struct eng_error *err)
{
    const json_t *saved = json_object_get(job_ctx_restored(ctx), "ctaugment");
    if (job_ctx_restored(ctx) && !saved)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint has no CTAugment state");
    if (saved              ? fixmatch_cta_from_json(&f->cta, saved, err)
        : p->semi.cta_from ? cta_from_store(job_ctx_app(ctx), p->semi.cta_from, &f->cta.state, err)
                           : !(f->cta.state = ctaug_new(&p->semi.cta, err)))
        return -1;
    f->strong_policies = malloc(p->semi.mu * p->batch * sizeof *f->strong_policies);
    f->probe_policies = malloc(p->batch * sizeof *f->probe_policies);
    f->probes = malloc(p->batch * f->image * sizeof *f->probes);
    f->extra = json_object();
    return f->strong_policies && f->probe_policies && f->probes && f->extra ? 0
                                                                            : eng_no_memory(err);
}

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
        r.extra_columns = !p.semi.mu ? NULL : p.semi.ctaugment ? cta_columns : extra_columns;
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
    if (rc == 0 && p.semi.mu && p.semi.ctaugment) {
        rc = cta_open(ctx, &p, &f, err);
        r.extra = f.extra;
    }
    if (rc == 0)
        rc = job_train_kind_run(&r, params, result, err);
    else
        job_train_run_close(&r);
    /* The result carries the learnt state, as GET /v1/ctaugment/{id} shows one, and its counts. */
    if (rc == 0 && f.cta.state &&
        (json_object_set_new(*result, "ctaugment", fixmatch_cta_to_json(&f.cta))
             ? eng_no_memory(err)
         : p.semi.cta_save ? cta_save(ctx, &f.cta, *result, err)
                           : 0)) {
        json_decref(*result);
        *result = NULL;
        rc = -1;
    }
    data_loader_free(f.weak.l);
    data_loader_free(f.strong.l);
    ctaug_free(f.cta.state);
    free(f.strong_policies);
    free(f.probe_policies);
    free(f.probes);
    json_decref(f.extra);
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
    if (rc == 0 && p.semi.cta_from) rc = cta_from_store(app, p.semi.cta_from, NULL, err);
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
