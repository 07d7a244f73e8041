/* engine/search: policy searches. A search space is a policy document with `$search`
 * placeholders (or a named space that expands to one); the algorithms propose points in it and
 * learn from the values reported back. The two halves meet in one small contract, the dimension
 * list: a space compiles to `struct search_dim`s, a point is one double per dimension, and an
 * algorithm needs nothing else (plus, optionally, the space's own sampler and mutation, for spaces
 * such as G-Augment's graphs whose structure a per-dimension draw does not respect).
 *
 * Conventions (../core/engine.h): errors are returned as values in `struct eng_error`, nothing is
 * printed; every object is owned by its caller and freed by the matching _free, which accepts
 * NULL; the same seed gives the same proposals (draws are addressed by rng_init coordinates, not
 * by a shared stream), whatever the thread count. */
#ifndef AUGSERVE_ENGINE_SEARCH_SEARCH_H
#define AUGSERVE_ENGINE_SEARCH_SEARCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

/* ---- Dimensions: the contract between spaces and algorithms ---------------------------------- */

enum search_dim_kind {
    SEARCH_DIM_CHOICE,     /* an index in [0, choices); unordered */
    SEARCH_DIM_INT,        /* an integer in [low, high], both inclusive */
    SEARCH_DIM_UNIFORM,    /* a real in [low, high] */
    SEARCH_DIM_LOGUNIFORM, /* a real in [low, high], 0 < low, uniform in log */
    SEARCH_DIM_QUANTIZED,  /* low + k * step for an integer k >= 0, at most high */
};

struct search_dim {
    enum search_dim_kind kind;
    double low, high, step; /* step: QUANTIZED only */
    size_t choices;         /* CHOICE only, >= 1 */
    /* Conditional dimensions: a placeholder inside one option of a `choice` between subtrees is
     * active only when that choice takes that option. parent = -1: always active. */
    int parent;
    size_t parent_choice;
    const char *pointer; /* JSON pointer of the placeholder in the space's document; owned by the
                            space */
};

/* Which dimensions a point activates (parents come before their children in the list). */
void search_dims_active(const struct search_dim *dims, size_t n, const double *point, bool *active);

/* A draw from a dimension's prior (uniform, log-uniform for LOGUNIFORM). */
double search_dim_sample(const struct search_dim *d, struct rng *r);

/* How a space offers itself to an algorithm. sample and mutate may be NULL: then a point is
 * drawn dimension by dimension from its prior, and a mutation redraws one active dimension. */
struct search_view {
    const struct search_dim *dims;
    size_t n;
    void *ctx;
    void (*sample)(void *ctx, struct rng *r, double *point);
    void (*mutate)(void *ctx, struct rng *r, const double *parent, double *child);
};

/* ---- Spaces (space.c, spaces.c) ------------------------------------------------------------- */

struct search_space;

/* A document with `$search` placeholders, or {"space": "<name>", ...arguments} for a named
 * space (randaugment, autoaugment, ops-subset, gaugment, specaugment). A bad placeholder fails
 * with EAUG_INVALID and a message naming its JSON pointer, as policy errors do. */
struct search_space *search_space_compile(const json_t *doc, struct eng_error *err);
void search_space_free(struct search_space *s);

/* The view algorithms use; valid while the space lives. */
struct search_view search_space_view(const struct search_space *s);

/* The concrete policy document of a point (a new reference), or NULL with err set. The result
 * always parses with policy_parse. */
json_t *search_space_concretize(const struct search_space *s, const double *point,
                                struct eng_error *err);

/* The point's values by placeholder, for leaderboards: {"<pointer>": value, ...}, inactive
 * dimensions left out. */
json_t *search_space_params(const struct search_space *s, const double *point);

/* ---- Algorithms (algo.c, algo_*.c) --------------------------------------------------------- */

/* An algorithm's whole state is its seed and the results told to it, kept in trial order: a
 * proposal for trial k is a function of (seed, k, the set of results told so far), never of the
 * order they were told in, of time or of any global state. So a search job survives a restart
 * (or kill -9) by making a new algorithm with the same name, params, view and seed and telling it
 * every finished trial again, in any order; it stores each trial's point when it asks, so the
 * trials still running at the restart are rerun with their stored points, not asked again. With
 * one trial at a time the whole search is then the same as an uninterrupted one; with several,
 * a proposal depends on which trials had finished when it was asked, as in any parallel search.
 *
 *   grid       every combination, in a fixed order (algo_grid.c)
 *   random     each trial's point from the view's sampler, drawn at rng_init(seed, trial)
 *   evolution  regularized evolution (Real et al. 2019): {"population": 20, "sample": 5}
 *   tpe        the Tree-structured Parzen Estimator as Optuna's default TPESampler:
 *              {"startup": 10, "candidates": 24, "gamma": 0.1, "prior_weight": 1.0}
 * ../search/README.md says which paper or implementation each follows and where it differs. */

struct search_algo;

/* name: "grid", "random", "evolution" or "tpe"; params: the algorithm's own settings (a JSON
 * object, or NULL for its defaults); unknown keys and values out of range fail with ENG_INVALID,
 * as do dimensions that break the rules above (a parent after its child or not a CHOICE, an
 * empty range, a LOGUNIFORM low <= 0, a step <= 0, more than 2^32 values).
 * view is copied (its dims and ctx must outlive the algorithm). Larger values are better (an
 * objective to minimise is negated by the caller). */
struct search_algo *search_algo_new(const char *name, const json_t *params,
                                    const struct search_view *view, uint64_t seed,
                                    struct eng_error *err);
void search_algo_free(struct search_algo *a);

/* The next point to try, for trial number `trial` (0, 1, 2, ... in order; several may be
 * outstanding at once when trials run in parallel). Returns 0 and fills point (view->n values;
 * an inactive dimension holds a valid value of its own, which the space ignores), or 1 when the
 * algorithm has nothing left to propose (grid exhausted), or -1 with err set. Asking the same
 * trial again with the same results told gives the same point. */
int search_algo_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err);

/* A finished trial's value (point: view->n values, copied). Trials may finish out of order and
 * may be told without having been asked (a replay); telling a trial again replaces its result.
 * A failed trial is told with ok = false (a value that is not finite counts as failed too): it
 * is never a parent and never a model's observation.
 * Returns 0, or -1 with err set (out of memory). */
int search_algo_tell(struct search_algo *a, uint64_t trial, const double *point, double value,
                     bool ok, struct eng_error *err);

/* ---- Early stopping (asha.c) ---------------------------------------------------------------- */

struct search_asha;

/* Rungs at min_epochs * eta^k below max_epochs (a trial that reaches max_epochs is finished, not
 * judged). async = true is ASHA (Li et al. 2020) as Optuna's SuccessiveHalvingPruner decides it:
 * a trial reporting at a rung continues when its value is among the best max(1, floor(n / eta))
 * of the n values that rung has seen so far, itself included (ties continue); the decision is
 * final. async = false is synchronous successive halving (Jamieson and Talwalkar 2016): rung 0
 * waits for all `trials` trials, rung k + 1 for those rung k promoted, and then promotes its best
 * max(1, floor(n / eta)) (ties broken by the lower trial number). min_epochs >= 1, eta >= 2,
 * max_epochs >= min_epochs; trials >= 1 when synchronous (ignored when async). */
struct search_asha *search_asha_new(unsigned min_epochs, unsigned max_epochs, unsigned eta,
                                    bool async, size_t trials, struct eng_error *err);
void search_asha_free(struct search_asha *s);

enum search_asha_decision { SEARCH_ASHA_CONTINUE, SEARCH_ASHA_STOP, SEARCH_ASHA_WAIT };

/* A trial's metric after `epoch` epochs (larger is better; NaN, a diverged run, is the worst),
 * into *decision. CONTINUE: train on; STOP: the trial fell below its rung's cut (and stays
 * stopped); WAIT (synchronous only): it reached a rung whose decision is pending: ask
 * search_asha_poll later. An epoch that is not a rung, or a rung already judged, changes nothing
 * (a stopped trial stays stopped). Returns 0, or -1 with err set: out of memory, a trial number
 * past `trials` (synchronous) or 2^32, or a synchronous trial reporting at a rung past the one
 * still deciding on it. Decisions depend on the order of reports (that is ASHA): to rebuild the
 * state after a restart, report again in the original order. */
int search_asha_report(struct search_asha *s, uint64_t trial, unsigned epoch, double value,
                       enum search_asha_decision *decision, struct eng_error *err);

/* A waiting trial's decision: WAIT while its rung is pending, then CONTINUE or STOP. A trial
 * with no pending or final decision continues. */
enum search_asha_decision search_asha_poll(const struct search_asha *s, uint64_t trial);

/* A trial that will report no more (failed or cancelled): a synchronous rung stops waiting for
 * it, and may decide at once. */
void search_asha_drop(struct search_asha *s, uint64_t trial);

#endif
