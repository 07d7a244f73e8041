/* Reading the search kind's params (job_search.h). The affinity objective's model, dataset and
 * split are opened by job_classify_open, as the affinity kind opens them, from params of that
 * kind's shape made of the search's ("splits": {"val"} becomes "split"); its messages are then
 * given the search's field names. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "job_kind.h"
#include "job_search.h"
#include "json_text.h"
#include "policy/policy.h"
#include "policy_store.h"
#include "saved_policies.h"
#include "search/search.h"
#include "search_early.h"
#include "search_objective.h"

static const char *const names[] = {
    "space", "algorithm", "objective",  "budget",  "parallel",       "dataset", "splits",
    "model", "seed",      "batch_size", "save_as", "early_stopping", NULL};
static const char *const budget_names[] = {"trials", "seconds", "images", NULL};
static const char *const split_names[] = {"val", NULL};

/* err's message under the field it is about: `old` (a prefix the message may start with, NULL:
 * none) replaced by `field`. Returns -1. */
static int name_field(struct eng_error *err, const char *old, const char *field)
{
    char rest[sizeof err->message];
    size_t skip = old && strncmp(err->message, old, strlen(old)) == 0 ? strlen(old) : 0;
    snprintf(rest, sizeof rest, "%s", err->message + skip + strspn(err->message + skip, " "));
    return eng_fail(err, err->code, "%s: %s", field, rest);
}

/* params.algorithm: a name, or {"name": ..., its settings}. */
static int read_algorithm(struct job_search_params *p, const json_t *params, uint64_t seed,
                          struct eng_error *err)
{
    const json_t *a = json_object_get(params, "algorithm");
    if (json_is_object(a)) {
        p->algorithm = json_string_value(json_object_get(a, "name"));
        p->settings = json_deep_copy(a);
        if (!p->settings) return eng_no_memory(err);
        json_object_del(p->settings, "name");
    } else {
        p->algorithm = json_string_value(a);
    }
    if (!p->algorithm)
        return eng_fail(err, ENG_INVALID,
                        "params.algorithm: required: \"grid\", \"random\", \"evolution\" or "
                        "\"tpe\", or {\"name\": one of them, ...its settings}");
    /* The algorithm checks its settings and the space's dimensions when it is made. */
    struct search_view view = search_space_view(p->space);
    struct search_algo *algo = search_algo_new(p->algorithm, p->settings, &view, seed, err);
    search_algo_free(algo);
    return algo ? 0 : name_field(err, NULL, "params.algorithm");
}

static int read_budget(struct job_search_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *budget = json_object_get(params, "budget");
    long long trials, images;
    if (json_is_object(budget) &&
        json_check_members(budget, budget_names, "params.budget.", "budget", err))
        return -1;
    if (!json_is_object(budget) ||
        !(json_object_get(budget, "trials") || json_object_get(budget, "seconds") ||
          json_object_get(budget, "images")))
        return eng_fail(err, ENG_INVALID,
                        "params.budget: required: any of {\"trials\": N, \"seconds\": S, "
                        "\"images\": I}");
    if (job_param_int(params, "budget.trials", 0, JOB_SEARCH_MAX_TRIALS, 1, JOB_SEARCH_MAX_TRIALS,
                      &trials, err) ||
        job_param_real(params, "budget.seconds", 0, 0, 0, JOB_SEARCH_MAX_SECONDS, &p->seconds,
                       err) ||
        job_param_int(params, "budget.images", 0, 0, 1, JOB_SEARCH_MAX_IMAGES, &images, err))
        return -1;
    if (images && p->objective.kind == SEARCH_OBJECTIVE_AFFINITY)
        return eng_fail(err, ENG_INVALID,
                        "params.budget.images: the affinity objective trains nothing, so its "
                        "trials use no training images; give trials or seconds");
    p->images = (uint64_t)images;
    if (json_object_get(budget, "seconds") && p->seconds <= 0)
        return eng_fail(err, ENG_INVALID, "params.budget.seconds: must be more than 0");
    p->trials = (size_t)trials;
    return 0;
}

/* Successive halving's first rung waits for every trial, so its budget is a count of trials
 * (all asked at once), which its settings carry to each trial. */
static int read_sync(struct job_search_params *p, const json_t *params, struct eng_error *err)
{
    const json_t *budget = json_object_get(params, "budget");
    if (!p->early_on || !p->early.sync) return 0;
    if (!json_object_get(budget, "trials") || json_object_get(budget, "seconds") ||
        json_object_get(budget, "images"))
        return eng_fail(err, ENG_INVALID,
                        "params.budget: successive halving takes {\"trials\": N} alone: its "
                        "first rung waits for all N trials");
    if (p->trials > SEARCH_EARLY_MAX_SYNC_TRIALS)
        return eng_fail(err, ENG_INVALID,
                        "params.budget.trials: at most %d with successive halving (got %zu)",
                        SEARCH_EARLY_MAX_SYNC_TRIALS, p->trials);
    p->early.trials = p->trials;
    return 0;
}

/* The objective (search_objective.c), its early stopping (search_early.c), and the trials at
 * once. */
static int read_objective(struct job_search_params *p, const struct app *app, const json_t *params,
                          struct eng_error *err)
{
    long long parallel;
    if (search_objective_open(&p->objective, app, params, err) ||
        search_early_open(&p->early, &p->early_on, params, &p->objective, err) ||
        job_param_int(params, "parallel", 0, 1, 1, JOB_SEARCH_MAX_PARALLEL, &parallel, err))
        return -1;
    p->parallel = (int)parallel;
    return 0;
}

/* The affinity kind's params for the objective: model, dataset, split (splits.val), seed,
 * batch_size. */
static int open_objective(struct job_search_params *p, const struct app *app, const json_t *params,
                          struct eng_error *err)
{
    const json_t *splits = json_object_get(params, "splits");
    if (!json_is_object(splits) || !json_is_string(json_object_get(splits, "val")))
        return eng_fail(err, ENG_INVALID,
                        "params.splits: required: {\"val\": the labeled split trials are scored "
                        "on}");
    if (json_check_members(splits, split_names, "params.splits.", "split", err)) return -1;
    p->classify = json_object();
    if (!p->classify) return eng_no_memory(err);
    static const char *const shared[] = {"model", "dataset", "seed", "batch_size"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        if (json_object_get(params, shared[i]))
            json_object_set(p->classify, shared[i], json_object_get(params, shared[i]));
    json_object_set(p->classify, "split", json_object_get(splits, "val"));
    if (job_classify_open(&p->jc, app, p->classify, 1, err) == 0) return 0;
    return strncmp(err->message, "params.split:", 13) == 0
               ? name_field(err, "params.split:", "params.splits.val")
               : -1;
}

/* Every objective scores an image model on an image dataset, so a space that may give an audio
 * policy is refused here, rather than by each of its trials failing. The check at compile has
 * parsed every option of the space (search_space_domains), so this costs no more parses. */
static int image_space(const struct search_space *space, const char *objective,
                       struct eng_error *err)
{
    unsigned audio = search_space_domains(space) & ~POLICY_IMAGE;
    if (!audio) return 0;
    return eng_fail(err, ENG_INVALID,
                    "params.space: %s; the %s objective scores an image model, so its space must "
                    "give image policies only",
                    search_space_domain_source(space, audio & -audio), objective);
}

/* Every objective scores a trial's policy on one view per image (a model's input), so a space
 * that may give a policy of several views is refused here, like an audio one. */
static int one_view_space(const struct search_space *space, const char *objective,
                          struct eng_error *err)
{
    const char *views = search_space_views_source(space);
    if (!views) return 0;
    return eng_fail(err, ENG_INVALID,
                    "params.space: %s; the %s objective takes one view per image, so its space "
                    "must give policies of one view",
                    views, objective);
}

/* save_as: a name a policy may be saved as and, when unused is set, that no saved policy has
 * now. */
static int read_save_as(struct job_search_params *p, const struct app *app, const json_t *params,
                        int unused, struct eng_error *err)
{
    const json_t *v = json_object_get(params, "save_as");
    if (!v) return 0;
    p->save_as = json_string_value(v);
    if (!p->save_as)
        return eng_fail(err, ENG_INVALID, "params.save_as: must be a saved policy's name");
    if (saved_policies_check_name(p->save_as, err))
        return name_field(err, "name:", "params.save_as");
    struct policy_record r;
    if (!unused) return 0;
    if (policy_store_get(app->storage, p->save_as, &r, err) == 0) {
        policy_record_clear(&r);
        return eng_fail(err, ENG_CONFLICT,
                        "params.save_as: a policy named %s is saved already; delete it first or "
                        "choose another name",
                        p->save_as);
    }
    return err->code == ENG_NOT_FOUND ? 0 : -1;
}

int job_search_params_open(struct job_search_params *p, const struct app *app, const json_t *params,
                           int queueing, struct eng_error *err)
{
    memset(p, 0, sizeof *p);
    if (job_params_known(params, names, err) || read_objective(p, app, params, err) ||
        read_budget(p, params, err) || read_sync(p, params, err))
        return -1;
    const json_t *space = json_object_get(params, "space");
    if (!space) return eng_fail(err, ENG_INVALID, "params.space: required: a search space");
    p->space = search_space_compile(space, err);
    if (!p->space) return name_field(err, NULL, "params.space");
    if (image_space(p->space, p->objective.name, err) ||
        one_view_space(p->space, p->objective.name, err))
        return -1;
    if (p->objective.kind != SEARCH_OBJECTIVE_AFFINITY) {
        long long seed;
        /* The objectives that train took the model, dataset and splits with their training
         * params; the seed is the algorithm's too (jc holds it, nothing else). */
        if (job_param_int(params, "seed", 0, 0, 0, (long long)POLICY_MAX_SEED, &seed, err))
            return -1;
        p->jc.seed = (uint64_t)seed;
        return read_algorithm(p, params, p->jc.seed, err) ||
                       read_save_as(p, app, params, queueing, err)
                   ? -1
                   : 0;
    }
    return open_objective(p, app, params, err) || read_algorithm(p, params, p->jc.seed, err) ||
                   read_save_as(p, app, params, queueing, err)
               ? -1
               : 0;
}

void job_search_params_close(struct job_search_params *p)
{
    search_space_free(p->space);
    search_objective_close(&p->objective);
    json_decref(p->settings);
    job_classify_close(&p->jc);
    json_decref(p->classify);
    memset(p, 0, sizeof *p);
}
