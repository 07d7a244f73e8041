/* Reading a search's objective (search_objective.h). The objectives that train are checked by
 * the train kind's own params code (job_train_params_open) on the train-kind params a trial's
 * run is given, made of the search's: dataset, splits.train as split, splits.val as val_split,
 * model, seed, and the objective's settings; its messages are then given the search's field
 * names, so nothing of the train kind's checks is written twice. */
#include <stdio.h>
#include <string.h>

#include "job_kind.h"
#include "job_train.h"
#include "json_text.h"
#include "search_objective.h"

/* The budget a trial trains for when the objective gives neither epochs nor steps. */
#define DEFAULT_EPOCHS 5

static const char *const objective_names[] = {"affinity", "val_accuracy", "affinity-diversity"};

/* The members of params.objective per objective (affinity takes none but its name); the training
 * ones are the train kind's, whose checks they go through. */
static const char *const val_accuracy_members[] = {
    "name",     "epochs",          "steps", "batch", "optimizer",
    "schedule", "label_smoothing", "ema",   "clip",  NULL};
static const char *const affinity_diversity_members[] = {
    "name",      "weights",  "epochs",          "steps", "batch",
    "optimizer", "schedule", "label_smoothing", "clip",  NULL};
static const char *const affinity_members[] = {"name", NULL};
static const char *const *const members[] = {
    [SEARCH_OBJECTIVE_AFFINITY] = affinity_members,
    [SEARCH_OBJECTIVE_VAL_ACCURACY] = val_accuracy_members,
    [SEARCH_OBJECTIVE_AFFINITY_DIVERSITY] = affinity_diversity_members,
};
static const char *const split_names[] = {"train", "val", NULL};
static const char *const weight_names[] = {"affinity", "diversity", NULL};

/* The train-kind params a search's params become, and the search's name for each in messages;
 * the others are the objective's (params.objective.<name>). */
static const struct {
    const char *train, *search;
} fields[] = {
    {"dataset", "params.dataset"},
    {"split", "params.splits.train"},
    {"val_split", "params.splits.val"},
    {"model", "params.model"},
    {"seed", "params.seed"},
};
#define FIELDS (sizeof fields / sizeof fields[0])

/* err's message, which names a train-kind param ("params.<name>[.<member>]: ..."), naming the
 * search's field instead. Returns -1. */
static int rename_field(struct eng_error *err)
{
    static const char prefix[] = "params.";
    char message[sizeof err->message];
    snprintf(message, sizeof message, "%s", err->message);
    if (strncmp(message, prefix, sizeof prefix - 1) != 0) return -1;
    const char *name = message + sizeof prefix - 1;
    size_t len = strcspn(name, ".:");
    for (size_t i = 0; i < FIELDS; i++)
        if (strlen(fields[i].train) == len && strncmp(name, fields[i].train, len) == 0)
            return eng_fail(err, err->code, "%s%s", fields[i].search, name + len);
    return eng_fail(err, err->code, "params.objective.%s", name);
}

/* params.objective's kind and settings (an object; NULL for a name alone). */
static int read_kind(struct search_objective *o, const json_t *params, const json_t **settings,
                     struct eng_error *err)
{
    const json_t *v = json_object_get(params, "objective");
    *settings = json_is_object(v) ? v : NULL;
    const char *name = json_string_value(*settings ? json_object_get(v, "name") : v);
    for (size_t k = 0; name && k < sizeof objective_names / sizeof objective_names[0]; k++)
        if (strcmp(name, objective_names[k]) == 0) {
            o->kind = (enum search_objective_kind)k;
            o->name = objective_names[k];
            return *settings ? json_check_members(*settings, members[k], "params.objective.",
                                                  "member", err)
                             : 0;
        }
    return eng_fail(err, ENG_INVALID,
                    "params.objective%s: required: \"affinity\", \"val_accuracy\" or "
                    "\"affinity-diversity\", or {\"name\": one of them, ...its settings}",
                    *settings ? ".name" : "");
}

/* affinity-diversity's weights: {"affinity": wa, "diversity": wd}, each in [0, 1000] (1 when
 * absent), not both 0. */
static int read_weights(struct search_objective *o, const json_t *params, struct eng_error *err)
{
    const json_t *w = json_object_get(json_object_get(params, "objective"), "weights");
    if (w && !json_is_object(w))
        return eng_fail(err, ENG_INVALID,
                        "params.objective.weights: must be {\"affinity\": wa, \"diversity\": wd}");
    if ((w && json_check_members(w, weight_names, "params.objective.weights.", "weight", err)) ||
        job_param_real(params, "objective.weights.affinity", 0, 1, 0, 1000, &o->weights[0], err) ||
        job_param_real(params, "objective.weights.diversity", 0, 1, 0, 1000, &o->weights[1], err))
        return -1;
    if (o->weights[0] == 0 && o->weights[1] == 0)
        return eng_fail(err, ENG_INVALID,
                        "params.objective.weights: at least one weight must be more than 0");
    return 0;
}

/* The train-kind params of a trial's run, from the search's params and the objective's
 * settings. */
static int make_train(struct search_objective *o, const json_t *params, const json_t *settings,
                      struct eng_error *err)
{
    const json_t *splits = json_object_get(params, "splits");
    if (!json_is_object(splits) || !json_is_string(json_object_get(splits, "train")) ||
        !json_is_string(json_object_get(splits, "val")))
        return eng_fail(err, ENG_INVALID,
                        "params.splits: required: {\"train\": the split a trial trains on, "
                        "\"val\": the labeled split it is scored on}");
    if (json_check_members(splits, split_names, "params.splits.", "split", err)) return -1;
    if (json_object_get(params, "batch_size"))
        return eng_fail(err, ENG_INVALID,
                        "params.batch_size: the affinity objective's; a trial's training batch is "
                        "params.objective.batch");
    if (!(o->train = json_object())) return eng_no_memory(err);
    int rc = 0;
    for (size_t i = 0; i < FIELDS; i++) {
        const char *name = fields[i].search + strlen("params.");
        const json_t *v = strncmp(name, "splits.", 7) == 0 ? json_object_get(splits, name + 7)
                                                           : json_object_get(params, name);
        if (v) rc |= json_object_set(o->train, fields[i].train, (json_t *)v);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)settings, key, v)
    {
        if (strcmp(key, "name") != 0 && strcmp(key, "weights") != 0)
            rc |= json_object_set(o->train, key, v);
    }
    if (!json_object_get(o->train, "epochs") && !json_object_get(o->train, "steps"))
        rc |= json_object_set_new(o->train, "epochs", json_integer(DEFAULT_EPOCHS));
    return rc ? eng_no_memory(err) : 0;
}

/* Checks the trial runs' params as their kinds will read them, and takes their budget. */
static int check_train(struct search_objective *o, const struct app *app, struct eng_error *err)
{
    struct job_train_params p;
    enum job_train_for kind = o->kind == SEARCH_OBJECTIVE_VAL_ACCURACY
                                  ? JOB_TRAIN_FOR_TRIAL
                                  : JOB_TRAIN_FOR_AFFINITY_DIVERSITY;
    int rc = job_train_params_open(&p, app, o->train, kind, err);
    /* Stated in the trial's params: its run counts the images it used from it. */
    if (rc == 0 && !json_object_get(o->train, "batch") &&
        json_object_set_new(o->train, "batch", json_integer((json_int_t)p.batch)) != 0)
        rc = eng_no_memory(err);
    if (rc == 0) {
        o->epochs = p.epochs;
        /* affinity-diversity's trial trains twice: the clean run and the policy's. */
        o->images = (uint64_t)p.steps * p.batch * (kind == JOB_TRAIN_FOR_TRIAL ? 1 : 2);
    }
    job_train_params_close(&p);
    return rc ? rename_field(err) : 0;
}

int search_objective_open(struct search_objective *o, const struct app *app, const json_t *params,
                          struct eng_error *err)
{
    const json_t *settings;
    memset(o, 0, sizeof *o);
    if (read_kind(o, params, &settings, err)) return -1;
    if (o->kind == SEARCH_OBJECTIVE_AFFINITY) return 0;
    return (o->kind == SEARCH_OBJECTIVE_AFFINITY_DIVERSITY && read_weights(o, params, err)) ||
                   make_train(o, params, settings, err) || check_train(o, app, err)
               ? -1
               : 0;
}

void search_objective_close(struct search_objective *o)
{
    json_decref(o->train);
    memset(o, 0, sizeof *o);
}

json_t *search_objective_trial_params(const struct search_objective *o, const json_t *early,
                                      const json_t *policy, size_t trial)
{
    json_t *t = json_pack("{s:s, s:I, s:O, s:O}", "objective", o->name, "trial", (json_int_t)trial,
                          "policy", policy, "train", o->train);
    if (t && o->kind == SEARCH_OBJECTIVE_AFFINITY_DIVERSITY &&
        json_object_set_new(
            t, "weights",
            json_pack("{s:f, s:f}", "affinity", o->weights[0], "diversity", o->weights[1])) != 0) {
        json_decref(t);
        return NULL;
    }
    if (t && early && json_object_set(t, "early_stopping", (json_t *)early) != 0) {
        json_decref(t);
        return NULL;
    }
    return t;
}
