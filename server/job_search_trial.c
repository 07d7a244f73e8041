/* The internal job kind "search-trial": one trial of a search (server/job_search.c), a child job
 * of the search, which queues it and runs it on its own threads (job_children.h). Its params are
 * {"objective", "policy" (the trial's concrete policy document), "trial" (its number), and what
 * the objective needs}; its result {"value", "images" (training images used), "epochs" (the
 * metric per epoch, for an objective that trains), ...the objective's details}.
 *
 * An objective is a row of the table below: its name and a run function with a kind's contract
 * (job_kind.h), which checkpoints as any kind does, so a trial interrupted mid-way resumes from
 * its own checkpoint. A new objective is a row here, and its params in job_search_params.c.
 *
 * affinity (Lim et al. 2019's density matching): the accuracy on the val split, with the policy
 * applied once per image at the seed, of a model trained on clean data; the affinity kind's
 * accuracy, counted by the same code (job_affinity_count over job_classify_pass). Its params are
 * the affinity kind's model, dataset, split, seed and batch_size; its checkpoint, after every
 * batch, the next batch and the counts so far. */
#include <string.h>

#include "job_affinity.h"
#include "job_classify.h"
#include "job_kind.h"
#include "policy/policy.h"

struct objective {
    const char *name;
    int (*run)(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err);
};

struct affinity_trial {
    struct job_ctx *ctx;
    struct job_classify jc;
    uint64_t correct, count;
    size_t batches;
};

static int affinity_batch(void *arg, const struct data_batch *b, const float *probs, size_t classes,
                          struct eng_error *err)
{
    struct affinity_trial *t = arg;
    job_affinity_count(&t->jc, b, probs, classes, &t->correct, &t->count);
    size_t next = b->number + 1;
    json_t *state = json_pack("{s:I, s:I, s:I}", "batch", (json_int_t)next, "correct",
                              (json_int_t)t->correct, "count", (json_int_t)t->count);
    int rc = state ? job_ctx_checkpoint(t->ctx, state, (double)next / (double)t->batches,
                                        "affinity", err)
                   : eng_no_memory(err);
    json_decref(state);
    return rc;
}

static int affinity_run(struct job_ctx *ctx, const json_t *params, json_t **result,
                        struct eng_error *err)
{
    struct affinity_trial t = {.ctx = ctx};
    struct policy *policy = NULL;
    json_int_t next = 0, correct = 0, count = 0;
    const json_t *saved = job_ctx_restored(ctx);
    int rc = job_classify_open(&t.jc, job_ctx_app(ctx), params, 1, err);
    if (rc == 0)
        rc = job_classify_policy(json_object_get(params, "policy"), "policy", &policy, err);
    if (rc == 0 && !policy) rc = eng_fail(err, ENG_INVALID, "params.policy: required");
    if (rc == 0 && saved &&
        (json_unpack((json_t *)saved, "{s:I, s:I, s:I}", "batch", &next, "correct", &correct,
                     "count", &count) != 0 ||
         next < 0 || correct < 0 || count < correct))
        rc = eng_fail(err, ENG_INTERNAL, "the checkpoint is not an affinity trial's");
    if (rc == 0) {
        t.correct = (uint64_t)correct;
        t.count = (uint64_t)count;
        t.batches = job_classify_batches(&t.jc);
        if (next) job_ctx_log(ctx, "resuming at batch %lld", (long long)next + 1);
        rc =
            job_classify_pass(ctx, &t.jc, policy, t.jc.seed, (size_t)next, affinity_batch, &t, err);
    }
    if (rc == 0 && t.count == 0)
        rc = eng_fail(err, ENG_INVALID, "params.split: split %s has no labeled image",
                      t.jc.split->name);
    if (rc == 0) {
        *result =
            json_pack("{s:f, s:i, s:I, s:I}", "value", (double)t.correct / (double)t.count,
                      "images", 0, "correct", (json_int_t)t.correct, "count", (json_int_t)t.count);
        if (!*result) rc = eng_no_memory(err);
    }
    policy_free(policy);
    job_classify_close(&t.jc);
    return rc;
}

static const struct objective objectives[] = {
    {"affinity", affinity_run},
};

#define OBJECTIVE_COUNT (sizeof objectives / sizeof objectives[0])

/* The objective params.objective names: NULL with err when none does. */
static const struct objective *objective_of(const json_t *params, struct eng_error *err)
{
    const char *name = json_string_value(json_object_get(params, "objective"));
    for (size_t i = 0; name && i < OBJECTIVE_COUNT; i++)
        if (strcmp(objectives[i].name, name) == 0) return &objectives[i];
    eng_fail(err, ENG_INVALID, "params.objective: no trial objective \"%s\"", name ? name : "");
    return NULL;
}

/* Queued by a search only (no request submits one), so this is a check of the objective alone:
 * the run refuses the rest. */
static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    (void)app;
    return objective_of(params, err) ? 0 : -1;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    const struct objective *o = objective_of(params, err);
    return o ? o->run(ctx, params, result, err) : -1;
}

const struct job_kind job_kind_search_trial = {
    .name = "search-trial",
    .help = "one trial of a search: its policy scored by the search's objective",
    .flags = JOB_KIND_INTERNAL,
    .validate = validate,
    .run = run,
};
