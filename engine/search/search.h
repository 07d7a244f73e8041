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

/* ---- Algorithms (algo_*.c) ------------------------------------------------------------------ */

struct search_algo;

/* name: "grid", "random", "evolution" or "tpe"; params: the algorithm's own settings (NULL for
 * its defaults), for example {"population": 20, "sample": 5} for evolution or
 * {"startup": 10, "candidates": 24, "gamma": 0.25} for TPE; unknown keys fail. Larger values are
 * better (an objective to minimise is negated by the caller). */
struct search_algo *search_algo_new(const char *name, const json_t *params,
                                    const struct search_view *view, uint64_t seed,
                                    struct eng_error *err);
void search_algo_free(struct search_algo *a);

/* The next point to try, for trial number `trial` (0, 1, 2, ... in order; several may be
 * outstanding at once when trials run in parallel). Returns 0 and fills point (view->n values),
 * or 1 when the algorithm has nothing left to propose (grid exhausted), or -1 with err set. */
int search_algo_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err);

/* A finished trial's value. Trials may finish out of order; a failed trial is reported with
 * ok = false and is never proposed again as a parent. */
void search_algo_tell(struct search_algo *a, uint64_t trial, const double *point, double value,
                      bool ok);

/* ---- Early stopping (asha.c) ---------------------------------------------------------------- */

struct search_asha;

/* Rungs at min_epochs * eta^k up to max_epochs. async = true is ASHA (Li et al. 2020): a trial
 * at a rung is promoted when it is in the top 1/eta of the values that rung has seen so far;
 * async = false is synchronous successive halving: a rung decides once all `trials` trials have
 * reported at it. */
struct search_asha *search_asha_new(unsigned min_epochs, unsigned max_epochs, unsigned eta,
                                    bool async, size_t trials, struct eng_error *err);
void search_asha_free(struct search_asha *s);

enum search_asha_decision { SEARCH_ASHA_CONTINUE, SEARCH_ASHA_STOP, SEARCH_ASHA_WAIT };

/* A trial's metric after `epoch` epochs (larger is better). CONTINUE: train on; STOP: the trial
 * fell below its rung's cut; WAIT (synchronous only): at a rung whose decision is pending. */
enum search_asha_decision search_asha_report(struct search_asha *s, uint64_t trial, unsigned epoch,
                                             double value);

#endif
