/* What the search algorithms share (algo.c): the told history, the dispatch table, the reading
 * of params, and the random point every algorithm starts from. Private to engine/search (asha.c
 * uses its growing array). */
#ifndef AUGENGINE_SEARCH_INTERNAL
#error "search/algo_internal.h is private to engine/search"
#endif
#ifndef AUGSERVE_ENGINE_SEARCH_ALGO_INTERNAL_H
#define AUGSERVE_ENGINE_SEARCH_ALGO_INTERNAL_H

#include "search/search.h"

/* Draw streams of one trial's rng_init coordinates: the random point, then the algorithm's own
 * draws (evolution's tournament and mutation; TPE's dimension d uses ALGO_STREAM_OWN + d). */
#define ALGO_STREAM_RANDOM 0u
#define ALGO_STREAM_OWN    1u

/* One finished trial, as told. */
struct algo_told {
    uint64_t trial;
    double value;
    bool ok;
    double *point; /* view.n values, owned */
};

struct search_algo;

struct algo_kind {
    const char *name;
    /* Reads params (already checked to be an object or NULL) into a->state. */
    int (*init)(struct search_algo *a, const json_t *params, struct eng_error *err);
    int (*ask)(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err);
    void (*free)(void *state);
};

struct search_algo {
    const struct algo_kind *kind;
    struct search_view view;
    uint64_t seed;
    struct algo_told *told; /* sorted by trial number */
    size_t n_told, cap_told;
    void *state;
};

extern const struct algo_kind algo_grid, algo_random, algo_evolution, algo_tpe;

/* A trial's draws: rng_init coordinates (seed, trial's low and high 32 bits, stream). */
void algo_rng(const struct search_algo *a, uint64_t trial, uint32_t stream, struct rng *r);

/* A point from the view's sampler, or each dimension from its prior. */
void algo_sample(const struct search_algo *a, struct rng *r, double *point);

/* Fails unless every key of params is one of keys (NULL-terminated). */
int algo_params_known(const json_t *params, const char *algo, const char *const *keys,
                      struct eng_error *err);
/* An integer param in [min, max], or def when absent. */
int algo_param_count(const json_t *params, const char *algo, const char *key, size_t min,
                     size_t max, size_t def, size_t *out, struct eng_error *err);
/* A real param in (min, max] (min itself excluded), or def when absent. */
int algo_param_real(const json_t *params, const char *algo, const char *key, double min, double max,
                    double def, double *out, struct eng_error *err);

/* Room for one more item in a growing array (items: cap of them, n in use), doubling it when
 * full: the array, perhaps moved, with *cap updated; or NULL with err set, the array unchanged.
 * ASHA's rungs use it too. */
void *algo_grow(void *items, size_t *cap, size_t n, size_t size, struct eng_error *err);

/* A dimension's name in messages: its JSON pointer, or its index when it has none. */
const char *algo_dim_name(const struct search_dim *d, size_t i, char buf[32]);

#endif
