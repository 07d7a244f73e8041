/* A search trial's run for the objectives that train (search_objective.h).
 *
 * val_accuracy is a thin layer over the train kind's training run (job_train_run.c): the run with
 * the trial's policy, its val split evaluated after every epoch (a "val_accuracy" metric event
 * each, the run's own), its checkpoint after every epoch, nothing registered. After each epoch's
 * metrics the judge, when there is one, says whether the trial goes on; a trial it stops keeps
 * that in its checkpoint, so a resumed one does not train past its stop.
 *
 * affinity-diversity is the affinity-diversity kind's run for the trial's one policy (its clean
 * run, its policy run, both scores: job_affinity_diversity.c), whose two scores the trial
 * combines with the weights. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "job_affinity_diversity.h"
#include "job_kind.h"
#include "job_search.h"
#include "job_train.h"
#include "jobs.h"
#include "json_text.h"
#include "search_early.h"
#include "search_objective.h"

/* How long a trial waiting at a rung sleeps between looks at its siblings. */
#define WAIT_MS 200

static const char *const names[] = {"objective", "trial",          "policy", "train",
                                    "weights",   "early_stopping", NULL};

/* The val accuracy after each epoch of the run's metrics. */
static json_t *curve(const json_t *metrics)
{
    json_t *a = json_array();
    size_t i;
    const json_t *row;
    json_array_foreach(metrics, i, row)
    {
        if (a &&
            json_array_append_new(a, job_train_number(job_train_metric(row, "val_accuracy")))) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

struct val_accuracy {
    const json_t *params;
    const struct search_trial_judge *judge;
    int waits; /* the judge said wait: the run ends waiting */
};

/* The reason a waiting trial's state event gives. */
static const char waiting[] = "it reached a rung of its successive halving, which waits for "
                              "the rung's other trials";

/* The judge's word on epoch r->epoch, kept in the checkpoint: "stopped" (the run ends here for
 * good) or "waiting" (it ends after this epoch's checkpoint, waiting: a resumed run asks again). */
static int judge_epoch(struct val_accuracy *v, struct job_train_run *r, struct eng_error *err)
{
    enum search_asha_decision d;
    json_t *epochs = curve(r->metrics);
    int rc = epochs
                 ? v->judge->at_epoch(v->judge->user, r->ctx, v->params, r->epoch, epochs, &d, err)
                 : eng_no_memory(err);
    json_decref(epochs);
    if (rc != 0) return -1;
    r->stop = d != SEARCH_ASHA_CONTINUE;
    v->waits = d == SEARCH_ASHA_WAIT;
    if (d == SEARCH_ASHA_STOP) job_ctx_log(r->ctx, "stopped early after epoch %ld", r->epoch);
    if (v->waits)
        job_ctx_log(r->ctx, "waiting after epoch %ld for the other trials of its rung", r->epoch);
    return json_object_set_new(r->extra, "stopped", json_boolean(d == SEARCH_ASHA_STOP)) ||
                   json_object_set_new(r->extra, "waiting", json_boolean(v->waits))
               ? eng_no_memory(err)
               : 0;
}

/* After each epoch: metrics.csv, then the judge's word. */
static int at_epoch(struct job_train_run *r, struct eng_error *err)
{
    struct val_accuracy *v = r->user;
    if (job_train_run_csv(r, "metrics.csv", err)) return -1;
    return v->judge ? judge_epoch(v, r, err) : 0;
}

static int run_val_accuracy(struct job_ctx *ctx, const json_t *params,
                            const struct search_trial_judge *judge, json_t **result,
                            struct eng_error *err)
{
    struct job_train_params p;
    memset(&p, 0, sizeof p);
    struct val_accuracy v = {params, judge, 0};
    struct job_train_run r = {.ctx = ctx,
                              .p = &p,
                              .phase = "trial",
                              .progress_span = 1,
                              .artifacts = at_epoch,
                              .user = &v,
                              .extra = json_pack("{s:b, s:b}", "stopped", 0, "waiting", 0)};
    const json_t *saved = job_ctx_restored(ctx);
    json_t *train = json_deep_copy(json_object_get(params, "train"));
    int rc =
        train && r.extra && json_object_set(train, "policy", json_object_get(params, "policy")) == 0
            ? 0
            : eng_no_memory(err);
    if (rc == 0) rc = job_train_params_open(&p, job_ctx_app(ctx), train, JOB_TRAIN_FOR_TRIAL, err);
    r.policy = p.policy;
    if (rc == 0)
        rc = job_train_run_open(&r, err) || (saved && job_train_run_restore(&r, saved, err)) ? -1
                                                                                             : 0;
    if (rc == 0 && saved && json_is_true(json_object_get(saved, "stopped"))) {
        r.stop = 1;
        rc = json_object_set_new(r.extra, "stopped", json_true()) ? eng_no_memory(err) : 0;
    }
    /* Woken at its rung (or queued again before the rung was decided): the judge again. */
    if (rc == 0 && saved && judge && json_is_true(json_object_get(saved, "waiting")))
        rc = judge_epoch(&v, &r, err);
    if (rc == 0) rc = job_train_run_epochs(&r, err);
    if (rc == 0 && v.waits) rc = job_ctx_wait(ctx, waiting, err);
    if (rc == 0) {
        const json_t *last = json_array_get(r.metrics, json_array_size(r.metrics) - 1);
        double steps = job_train_metric(last, "steps");
        *result = json_pack("{s:o, s:o, s:I, s:b, s:I, s:O, s:f}", "value",
                            job_train_number(job_train_metric(last, "val_accuracy")), "epochs",
                            curve(r.metrics), "images", (json_int_t)(steps * (double)p.batch),
                            "stopped", r.stop, "steps", (json_int_t)steps, "final", last,
                            "duration_seconds", r.seconds);
        rc = *result ? 0 : eng_no_memory(err);
    }
    /* The checkpoint files are kept only for a trial that will run again (as train's). */
    if ((rc == 0 || !job_ctx_resumes(ctx)) && !v.waits) job_train_remove_states(ctx);
    job_train_run_close(&r);
    job_train_params_close(&p);
    json_decref(r.extra);
    json_decref(train);
    return rc;
}

/* The affinity-diversity kind's params for the trial: its training params and the one policy. */
static json_t *affinity_diversity_params(const json_t *params)
{
    json_t *ad = json_deep_copy(json_object_get(params, "train"));
    if (ad && json_object_set_new(ad, "policies",
                                  json_pack("[O]", json_object_get(params, "policy"))) != 0) {
        json_decref(ad);
        return NULL;
    }
    return ad;
}

int search_trial_clean_dir(const struct app *app, const char *search, char *out, size_t size)
{
    char artifacts[4096];
    if (jobs_artifacts_path(app, search, artifacts, sizeof artifacts) != 0) return -1;
    char *slash = strrchr(artifacts, '/');
    int n = snprintf(out, size, "%.*s/clean-run", (int)(slash ? slash - artifacts : 0), artifacts);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static int run_affinity_diversity(struct job_ctx *ctx, const json_t *params, json_t **result,
                                  struct eng_error *err)
{
    json_t *ad = affinity_diversity_params(params), *out = NULL;
    double wa, wd, affinity, diversity;
    long long batch;
    char clean[4096];
    /* A search's trials share its clean run; a trial alone (objective-trial) runs its own. */
    const char *parent = job_ctx_parent(ctx);
    if (!ad) return eng_no_memory(err);
    if (parent && search_trial_clean_dir(job_ctx_app(ctx), parent, clean, sizeof clean) != 0) {
        json_decref(ad);
        return eng_fail(err, ENG_INTERNAL, "the search's folder path is too long");
    }
    /* The trial's params state the batch (search_objective_trial_params): the images it used. */
    int rc =
        job_param_real(params, "weights.affinity", 1, 0, 0, 1000, &wa, err) ||
                job_param_real(params, "weights.diversity", 1, 0, 0, 1000, &wd, err) ||
                job_param_int(params, "train.batch", 1, 0, 2, JOB_TRAIN_MAX_BATCH, &batch, err) ||
                job_affinity_diversity_run(ctx, ad, parent ? clean : NULL, &out, err)
            ? -1
            : 0;
    if (rc == 0) {
        const json_t *row = json_array_get(json_object_get(out, "policies"), 0);
        affinity = job_train_metric(row, "affinity");
        diversity = job_train_metric(row, "diversity");
        json_int_t steps = json_integer_value(json_object_get(out, "steps"));
        /* Its runs' images: the policy run's, and the clean run's when it is its own. */
        *result = json_pack(
            "{s:o, s:o, s:o, s:{s:f, s:f}, s:I, s:O, s:O, s:O, s:O, s:O, s:O}", "value",
            job_train_number(wa * affinity + wd * diversity), "affinity",
            job_train_number(affinity), "diversity", job_train_number(diversity), "weights",
            "affinity", wa, "diversity", wd, "images", (parent ? 1 : 2) * steps * (json_int_t)batch,
            "accuracy", json_object_get(row, "accuracy"), "gain", json_object_get(row, "gain"),
            "augmented_accuracy", json_object_get(row, "augmented_accuracy"), "clean",
            json_object_get(out, "clean"), "steps", json_object_get(out, "steps"),
            "duration_seconds", json_object_get(out, "duration_seconds"));
        rc = *result ? 0 : eng_no_memory(err);
    }
    json_decref(out);
    json_decref(ad);
    return rc;
}

int search_trial_check(const struct app *app, const json_t *params, struct eng_error *err)
{
    const char *objective = json_string_value(json_object_get(params, "objective"));
    const json_t *early = json_object_get(params, "early_stopping");
    struct search_early e;
    struct job_train_params p;
    memset(&p, 0, sizeof p);
    int val_accuracy = objective && strcmp(objective, "val_accuracy") == 0;
    if (job_params_known(params, names, err) || (early && search_early_from_json(&e, early, err)))
        return -1;
    if (!val_accuracy && !(objective && strcmp(objective, "affinity-diversity") == 0))
        return eng_fail(err, ENG_INVALID,
                        "params.objective: required: \"val_accuracy\" or \"affinity-diversity\"");
    /* Both objectives' training params, with the policy, are a subset of a val_accuracy run's. */
    json_t *train = json_deep_copy(json_object_get(params, "train"));
    int rc = train && json_object_set(train, "policy", json_object_get(params, "policy")) == 0
                 ? job_train_params_open(&p, app, train, JOB_TRAIN_FOR_TRIAL, err)
                 : eng_no_memory(err);
    job_train_params_close(&p);
    json_decref(train);
    return rc;
}

int search_trial_run(struct job_ctx *ctx, const json_t *params, const struct search_trial_judge *j,
                     json_t **result, struct eng_error *err)
{
    const char *objective = json_string_value(json_object_get(params, "objective"));
    if (job_params_known(params, names, err)) return -1;
    if (objective && strcmp(objective, "val_accuracy") == 0)
        return run_val_accuracy(ctx, params, j, result, err);
    if (objective && strcmp(objective, "affinity-diversity") == 0)
        return run_affinity_diversity(ctx, params, result, err);
    return eng_fail(err, ENG_INVALID,
                    "params.objective: required: \"val_accuracy\" or \"affinity-diversity\"");
}

/* Successive halving's judge: every trial's curve from the store, its own as it stands. */
static int sync_judge(struct job_ctx *ctx, const struct search_early *e, size_t trial, long epoch,
                      const json_t *epochs, enum search_asha_decision *decision,
                      struct eng_error *err)
{
    json_t *records = NULL, *all = NULL;
    if (trial >= e->trials)
        return eng_fail(err, ENG_INVALID, "params.trial: past the %zu trials of its search",
                        e->trials);
    int rc = job_ctx_siblings(ctx, e->trials, &records, err) ||
                     search_early_siblings(records, e->trials, &all, err)
                 ? -1
                 : 0;
    if (rc == 0 &&
        json_array_set_new(all, trial, json_pack("{s:O, s:b}", "epochs", epochs, "final", 0)) != 0)
        rc = eng_no_memory(err);
    /* A sibling without a record may be one the search has not queued yet (it queues them all at
     * its start) or one it never will (its point gave no policy): the search, which knows,
     * decides then, waking this one. */
    if (rc == 0 && json_array_size(records) + 1 < e->trials)
        *decision = SEARCH_ASHA_WAIT;
    else if (rc == 0)
        rc = search_early_decide_sync_json(e, all, trial, (unsigned)epoch, decision, err);
    json_decref(records);
    json_decref(all);
    return rc;
}

/* Early stopping's judge for a search's child: the siblings' curves from the store
 * (job_ctx_siblings). ASHA looks again while an earlier trial is below the rung
 * (search_early.h); successive halving answers WAIT at once. */
static int siblings_judge(void *user, struct job_ctx *ctx, const json_t *params, long epoch,
                          const json_t *epochs, enum search_asha_decision *decision,
                          struct eng_error *err)
{
    (void)user;
    struct search_early e;
    json_int_t trial = json_integer_value(json_object_get(params, "trial"));
    if (search_early_from_json(&e, json_object_get(params, "early_stopping"), err)) return -1;
    if (e.sync) return sync_judge(ctx, &e, (size_t)trial, epoch, epochs, decision, err);
    for (int waited = 0;; waited = 1) {
        json_t *records = NULL, *siblings = NULL;
        /* Newest first: the trials after this one (at most the parallel ones) come first. */
        int rc =
            job_ctx_siblings(ctx, (size_t)trial + JOB_SEARCH_MAX_PARALLEL + 1, &records, err) ||
                    search_early_siblings(records, (size_t)trial, &siblings, err) ||
                    search_early_decide_json(&e, siblings, epochs, (unsigned)epoch, decision, err)
                ? -1
                : 0;
        json_decref(records);
        json_decref(siblings);
        if (rc != 0) return -1;
        if (*decision != SEARCH_ASHA_WAIT) return 0;
        if (!waited)
            job_ctx_log(ctx, "waiting at epoch %ld for an earlier trial to reach it", epoch);
        if (job_ctx_cancelled(ctx, err)) return -1;
        nanosleep(&(struct timespec){0, WAIT_MS * 1000000L}, NULL);
    }
}

int search_trial_child(struct job_ctx *ctx, const json_t *params, json_t **result,
                       struct eng_error *err)
{
    struct search_trial_judge j = {siblings_judge, NULL};
    int early = json_object_get(params, "early_stopping") != NULL;
    return search_trial_run(ctx, params, early ? &j : NULL, result, err);
}
