/* A search's objective: how its trials are scored (issue 18), read from the search's params
 * (search_objective.c), and the trial runs of the objectives that train (search_trial_run.c).
 *
 *   affinity            the accuracy on splits.val, with the trial's policy applied, of the
 *                       repository model params.model trained on clean data (job_search.c scores
 *                       it; nothing is trained, so it has no epochs and uses no training images).
 *   val_accuracy        params.model (a zoo model or a repository model, as the train kind takes
 *                       it) trained with the trial's policy on splits.train for the objective's
 *                       epochs or steps, evaluated on splits.val after every epoch: the value is
 *                       the last epoch's val accuracy (the AutoAugment/RandAugment protocol
 *                       reports the final model's, not the best epoch's, which would pick an
 *                       epoch on the split it then reports).
 *   affinity-diversity  the affinity-diversity kind's two scores for the trial's policy (a clean
 *                       run and a run with the policy, same seed and budget), combined as
 *                       weights.affinity * affinity + weights.diversity * diversity, both ratios
 *                       to the clean run's own figure (1 for Identity), so the weights compare
 *                       like with like.
 *
 * A trial's run is a job's run (job_kind.h) over the trial's params, which
 * search_objective_trial_params makes: {"objective", "trial", "policy", "train": the train-kind
 * params of its training run, and "weights" for affinity-diversity}. Its result:
 * {"value", "epochs": [the metric after each epoch], "images": the training images it used,
 * "stopped": whether early stopping ended it, ...the objective's details}. */
#ifndef AUGSERVE_SEARCH_OBJECTIVE_H
#define AUGSERVE_SEARCH_OBJECTIVE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "search/search.h"

struct app;
struct job_ctx;

enum search_objective_kind {
    SEARCH_OBJECTIVE_AFFINITY,
    SEARCH_OBJECTIVE_VAL_ACCURACY,
    SEARCH_OBJECTIVE_AFFINITY_DIVERSITY,
};

struct search_objective {
    enum search_objective_kind kind;
    const char *name;
    /* The objectives that train: the train-kind params of a trial's run (dataset, split,
     * val_split, model, seed and the objective's budget and hyperparameters), without the
     * policy. NULL for affinity. */
    json_t *train;
    double weights[2]; /* affinity-diversity's: affinity's, diversity's */
    long epochs;       /* a trial's epochs (the last partial with a budget in steps); 0: none */
    uint64_t images;   /* the training images a whole trial uses */
};

/* Reads params.objective (a name, or {"name": ..., its settings}) with the params it needs
 * (dataset, splits, model, seed), checking the training run's params as the train kind does
 * (job_train_params.c) with its messages naming the search's fields (params.objective.epochs,
 * params.splits.train). 0, or -1 with err. Release with search_objective_close, after a failure
 * too. */
int search_objective_open(struct search_objective *o, const struct app *app, const json_t *params,
                          struct eng_error *err);
void search_objective_close(struct search_objective *o);

/* Trial `trial`'s params for policy (a concrete document) and, when early is not NULL, the
 * early stopping settings its run judges its epochs by (search_early.h); NULL when memory runs
 * out. Not for affinity. */
json_t *search_objective_trial_params(const struct search_objective *o, const json_t *early,
                                      const json_t *policy, size_t trial);

/* ---- A trial's run (search_trial_run.c) ----------------------------------------------------- */

/* How a running trial learns whether to go on after an epoch: at_epoch (after the epoch's metric
 * event, before its checkpoint) sets *decision: SEARCH_ASHA_CONTINUE, SEARCH_ASHA_STOP to end the
 * trial there, or SEARCH_ASHA_WAIT (successive halving) to end its run waiting for its parent
 * (job_ctx_wait) after the epoch's checkpoint; a run resumed from that checkpoint asks again for
 * the same epoch. 0, or -1 with err (the trial's run then fails, or is cancelled with
 * ENG_CANCELLED). NULL: every trial runs to its budget. */
struct search_trial_judge {
    int (*at_epoch)(void *user, struct job_ctx *ctx, const json_t *params, long epoch,
                    const json_t *epochs, enum search_asha_decision *decision,
                    struct eng_error *err);
    void *user;
};

/* Checks a trial's params (a kind's validate): 0, or -1 with err naming the field. */
int search_trial_check(const struct app *app, const json_t *params, struct eng_error *err);
/* Runs the trial params describe (a val_accuracy or affinity-diversity trial) as a job's run:
 * 0 with *result, or -1 with err. Resumes from the job's checkpoint like the train kind. */
int search_trial_run(struct job_ctx *ctx, const json_t *params, const struct search_trial_judge *j,
                     json_t **result, struct eng_error *err);

/* The folder a search's affinity-diversity trials share their clean run in (the search job's own
 * folder's clean-run, job_affinity_diversity.h), into out: 0, or -1 when it does not fit. */
int search_trial_clean_dir(const struct app *app, const char *search, char *out, size_t size);

/* The same for a search's child job (job_search_trial.c's rows): its early stopping, when its
 * params have one, judged from its siblings as the store holds them (job_ctx_siblings): ASHA
 * waiting in place for an earlier trial, successive halving ending its run waiting. */
int search_trial_child(struct job_ctx *ctx, const json_t *params, json_t **result,
                       struct eng_error *err);

#endif
