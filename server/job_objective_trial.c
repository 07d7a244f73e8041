/* The debug kind "objective-trial" (debug_routes only): one search trial of an objective that
 * trains (search_objective.h), run as a job of its own, with its siblings' curves scripted in
 * params.siblings (the curves of trials 0..trial-1, each {"epochs": [...]}, all finished) for
 * early stopping to judge it by. It is how the tests run a trial's function and its early stop
 * alone: with the same code a search's trial runs, but the curves given rather than read from
 * the search's other trials. */
#include <string.h>

#include "job_kind.h"
#include "search_early.h"
#include "search_objective.h"

/* Its params: a trial's, and the scripted siblings. */
static json_t *trial_params(const json_t *params, const json_t **siblings, struct eng_error *err)
{
    *siblings = json_object_get(params, "siblings");
    if (*siblings && !json_is_array(*siblings)) {
        eng_fail(err, ENG_INVALID, "params.siblings: must be a list of {\"epochs\": [...]}");
        return NULL;
    }
    json_t *t = json_copy((json_t *)params);
    if (!t) eng_no_memory(err);
    if (t) json_object_del(t, "siblings");
    return t;
}

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    const json_t *siblings;
    json_t *t = trial_params(params, &siblings, err);
    int rc = t ? search_trial_check(app, t, err) : -1;
    json_decref(t);
    return rc;
}

/* Decides from the scripted siblings, every one of them finished. */
static int judge(void *user, struct job_ctx *ctx, const json_t *params, long epoch,
                 const json_t *epochs, enum search_asha_decision *decision, struct eng_error *err)
{
    (void)ctx;
    const json_t *scripted = user;
    struct search_early e;
    enum search_asha_decision d;
    json_t *siblings = json_array();
    size_t i;
    const json_t *s;
    int rc = siblings ? 0 : eng_no_memory(err);
    json_array_foreach(scripted, i, s)
    {
        if (rc == 0 &&
            json_array_append_new(siblings, json_pack("{s:O, s:b}", "epochs",
                                                      json_object_get(s, "epochs"), "final", 1)))
            rc = eng_no_memory(err);
    }
    if (rc == 0 && search_early_from_json(&e, json_object_get(params, "early_stopping"), err))
        rc = -1;
    /* Successive halving waits for every trial of its search: a lone trial has none. */
    if (rc == 0 && e.sync)
        rc = eng_fail(err, ENG_INVALID,
                      "params.early_stopping.trials: successive halving needs its search");
    if (rc == 0) rc = search_early_decide_json(&e, siblings, epochs, (unsigned)epoch, &d, err);
    json_decref(siblings);
    if (rc == 0) *decision = d;
    return rc;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    const json_t *siblings;
    json_t *t = trial_params(params, &siblings, err);
    struct search_trial_judge j = {judge, (void *)siblings};
    int early = json_object_get(params, "early_stopping") != NULL;
    int rc = t ? search_trial_run(ctx, t, early ? &j : NULL, result, err) : -1;
    json_decref(t);
    return rc;
}

const struct job_kind job_kind_objective_trial = {
    .name = "objective-trial",
    .help = "one search trial of val_accuracy or affinity-diversity, its siblings' curves "
            "scripted (tests)",
    .flags = JOB_KIND_DEBUG,
    .validate = validate,
    .run = run,
};
