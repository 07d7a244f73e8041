/* Early stopping of a search's trials over epochs (issue 18): ASHA (engine/search's
 * search_asha_*, asynchronous) over the trials' per-epoch metric.
 *
 * A trial is judged by itself, at the end of each epoch that is a rung, from its siblings'
 * curves (their metric after each epoch), never by a message from the search: the decision for
 * trial k at rung r is ASHA's with the reports of trials 0..k made in trial order, each trial's
 * epochs in order. At a rung, ASHA's decision depends only on the values reported there before
 * (search.h), so trial k's depends on the values of trials 0..k-1 at that rung alone: whatever
 * the timing, the number of trials running at once or a restart, trial k stops at the same
 * epoch, which keeps a search's results a function of its seed (and a resumed trial's decision
 * its uninterrupted one's). Its price: a trial at a rung that an earlier trial, still running,
 * has not reached yet waits for it (SEARCH_ASHA_WAIT); an earlier trial started first, so with
 * epochs of equal length it is rarely behind. Each judgement replays the rung's reports from the
 * curves, which the store holds (a child job's checkpoint and result), so it works as well for
 * a trial run by another process.
 *
 * Synchronous successive halving ("successive-halving", Jamieson and Talwalkar 2016) judges a
 * rung once every trial expected there has reached it: all the search's trials at the first
 * rung, the ones that rung promoted at the next. So a trial at a rung whose decision is pending
 * cannot wait holding a thread (with fewer threads than trials the others would never run): it
 * ends its run waiting (job_ctx_wait), its checkpoint taken after the rung's epoch, and the
 * search queues it again (job_children_wake) once the rung is decided. Either side decides with
 * the same function of every trial's curve (search_early_decide_sync: search_asha_* replayed rung
 * by rung), from the store's records, so a resumed search or trial, or one run by another
 * process, decides as an uninterrupted one: the decisions depend on the curves alone, never on
 * the order trials reached a rung. A trial that reaches a rung last finds it decided and goes on
 * (or stops) at once; a trial cancelled or failed before a rung is dropped from it.
 */
#ifndef AUGSERVE_SEARCH_EARLY_H
#define AUGSERVE_SEARCH_EARLY_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"
#include "search/search.h"

struct search_objective;

struct search_early {
    unsigned min_epochs, eta, max_epochs; /* max_epochs: the objective's epochs */
    int sync;                             /* successive-halving: synchronous */
    size_t trials; /* when sync: the trials its first rung waits for (the budget's) */
};

/* The most trials a successive halving takes: each decision reads every trial's record. */
#define SEARCH_EARLY_MAX_SYNC_TRIALS 256

/* Reads params.early_stopping, {"name": "asha" or "successive-halving", "min_epochs": m (1),
 * "eta": e (3)}, for the objective: *on 0 when absent. trials is left 0: the caller sets it from
 * the budget (successive halving's first rung waits for every trial). ENG_INVALID naming the field
 * for an objective without epochs (affinity) or whose value is known only at its end
 * (affinity-diversity), or a first rung at or past the objective's epochs (no trial would be
 * judged). */
int search_early_open(struct search_early *e, int *on, const json_t *params,
                      const struct search_objective *o, struct eng_error *err);

/* The settings as a trial's params carry them ({"min_epochs", "eta", "max_epochs"}, and
 * "trials" when synchronous), and back (ENG_INVALID when they are not such settings). */
json_t *search_early_json(const struct search_early *e);
int search_early_from_json(struct search_early *e, const json_t *v, struct eng_error *err);

/* A trial's curve: its metric after each of its first n epochs, and whether it will report no
 * more (finished, stopped, failed or cancelled). */
struct search_early_curve {
    const double *values;
    size_t n;
    int final;
};

/* Trial `trial`'s decision after `epoch` epochs, from curves[0..trial] (curves[trial] its own,
 * at least `epoch` long): CONTINUE or STOP, or WAIT while an earlier trial, not final, has not
 * reached that rung. 0, or -1 with err (out of memory, or a curve shorter than epoch). */
int search_early_decide(const struct search_early *e, const struct search_early_curve *curves,
                        size_t trial, unsigned epoch, enum search_asha_decision *decision,
                        struct eng_error *err);

/* The same over JSON, as trials' records hold their curves: siblings the trials before this one
 * in order, each {"epochs": [its metric after each epoch; null for a diverged run's], "final":
 * true when it will report no more}, and own this trial's epochs. */
int search_early_decide_json(const struct search_early *e, const json_t *siblings,
                             const json_t *own, unsigned epoch, enum search_asha_decision *decision,
                             struct eng_error *err);

/* Synchronous successive halving's decision for trial `trial` at `epoch`, from every trial's
 * curve, curves[0..e->trials - 1] (its own at least `epoch` long; only its first `epoch` values
 * are read): rung by rung, each trial still in the running reports its value there, or is
 * dropped when it is final without one; a rung with a trial neither stops the replay. Then trial's
 * decision: WAIT while the last rung it reported at is pending, STOP once a rung cut it, else
 * CONTINUE (as for an epoch that is no rung). 0, or -1 with err (out of memory, trial past the
 * trials, a curve shorter than epoch). */
int search_early_decide_sync(const struct search_early *e, const struct search_early_curve *curves,
                             size_t trial, unsigned epoch, enum search_asha_decision *decision,
                             struct eng_error *err);

/* The same over JSON: all, e->trials curves as search_early_siblings gives them (with trial's
 * own among them). */
int search_early_decide_sync_json(const struct search_early *e, const json_t *all, size_t trial,
                                  unsigned epoch, enum search_asha_decision *decision,
                                  struct eng_error *err);

/* The siblings' curves decide_json takes, for trial `trial`, from the records of a search's
 * trials (its children, in any order, this one among them or not): each {"state": a job state,
 * "params": {"trial": j, ...}, "result": {"epochs": [...]} or null, "checkpoint": the train
 * run's checkpoint ({"metrics": [{"val_accuracy": v}, ...]}) or null}. A trial's curve is its
 * result's epochs once it has one, else the val accuracies of its last checkpoint (the epochs it
 * has committed); it is final once its state is (job_state_is_final). A trial before this one
 * without a record (none should be: they are queued in order) counts as final with no epoch, so
 * nothing waits for it. *siblings: trials 0..trial-1 in order. */
int search_early_siblings(const json_t *records, size_t trial, json_t **siblings,
                          struct eng_error *err);

#endif
