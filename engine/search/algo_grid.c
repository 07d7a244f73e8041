/* Grid search: every combination of the dimensions' values, in lexicographic order of the
 * dimension list with the last dimension varying fastest (as Python's itertools.product), each
 * dimension's values ascending: CHOICE 0..choices-1, INT low..high, QUANTIZED low, low + step, ...
 * UNIFORM and LOGUNIFORM have no grid of their own: params {"points": k} (k >= 2) spreads k
 * values from low to high, evenly (in log for LOGUNIFORM); without it they are refused. A
 * conditional dimension is enumerated only where it is active and held at its first value
 * elsewhere, so no two trials give the same document. Trial k is the k-th combination; asking
 * past the last returns 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/algo_internal.h"

struct grid {
    size_t points;  /* values of a continuous dimension; 0 when not given */
    size_t *count;  /* values per dimension */
    size_t *idx;    /* the cursor's combination */
    bool *active;   /* scratch */
    uint64_t at;    /* the trial number of the cursor's combination */
    bool exhausted; /* the cursor went past the last combination */
};

static void grid_free(void *state)
{
    struct grid *g = state;
    free(g->count);
    free(g->idx);
    free(g->active);
    free(g);
}

static int grid_init(struct search_algo *a, const json_t *params, struct eng_error *err)
{
    static const char *const keys[] = {"points", NULL};
    const struct search_view *v = &a->view;
    size_t n = v->n ? v->n : 1;
    struct grid *g = calloc(1, sizeof *g);
    if (!g) return eng_no_memory(err);
    a->state = g;
    g->count = calloc(n, sizeof *g->count);
    g->idx = calloc(n, sizeof *g->idx);
    g->active = calloc(n, sizeof *g->active);
    if (!g->count || !g->idx || !g->active) return eng_no_memory(err);
    if ((params && algo_params_known(params, "grid", keys, err) < 0) ||
        algo_param_count(params, "grid", "points", 2, 1000000, 0, &g->points, err) < 0)
        return -1;
    for (size_t i = 0; i < v->n; i++) {
        const struct search_dim *d = &v->dims[i];
        char buf[32];
        switch (d->kind) {
        case SEARCH_DIM_CHOICE:
            g->count[i] = d->choices;
            break;
        case SEARCH_DIM_INT:
            g->count[i] = (size_t)(d->high - d->low) + 1;
            break;
        case SEARCH_DIM_QUANTIZED:
            g->count[i] = (size_t)floor((d->high - d->low) / d->step + 1e-9) + 1;
            break;
        case SEARCH_DIM_UNIFORM:
        case SEARCH_DIM_LOGUNIFORM:
            if (!g->points)
                return eng_fail(err, ENG_INVALID,
                                "grid: %s is a continuous range; give the grid params "
                                "{\"points\": k} to try k values across it",
                                algo_dim_name(d, i, buf));
            g->count[i] = g->points;
            break;
        }
    }
    return 0;
}

static double grid_value(const struct search_dim *d, size_t i, size_t count)
{
    double t = count > 1 ? (double)i / (double)(count - 1) : 0;
    switch (d->kind) {
    case SEARCH_DIM_CHOICE:
        return (double)i;
    case SEARCH_DIM_INT:
        return d->low + (double)i;
    case SEARCH_DIM_QUANTIZED:
        return d->low + (double)i * d->step;
    case SEARCH_DIM_UNIFORM:
        return i + 1 == count ? d->high : d->low + t * (d->high - d->low);
    case SEARCH_DIM_LOGUNIFORM:
        break;
    }
    return i + 1 == count ? d->high : exp(log(d->low) + t * (log(d->high) - log(d->low)));
}

static void grid_point(const struct search_algo *a, const struct grid *g, double *point)
{
    for (size_t i = 0; i < a->view.n; i++)
        point[i] = grid_value(&a->view.dims[i], g->idx[i], g->count[i]);
}

/* The next combination: the last active dimension that can step does, and every dimension after
 * it restarts at its first value (those were either just wrapped or inactive, and a dimension
 * inactive now is held at 0 so that each set of active values comes once). */
static void grid_advance(const struct search_algo *a, struct grid *g, double *scratch)
{
    size_t n = a->view.n;
    grid_point(a, g, scratch);
    search_dims_active(a->view.dims, n, scratch, g->active);
    for (size_t i = n; i > 0; i--) {
        if (!g->active[i - 1]) continue;
        if (g->idx[i - 1] + 1 < g->count[i - 1]) {
            g->idx[i - 1]++;
            g->at++;
            return;
        }
        g->idx[i - 1] = 0;
    }
    g->exhausted = true;
}

static int grid_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err)
{
    (void)err;
    struct grid *g = a->state;
    /* Asks come in trial order; an earlier trial restarts the walk (as does the last combination
     * asked again after the walk went past it, which left the cursor wrapped to the start). */
    if (trial < g->at || (g->exhausted && trial == g->at)) {
        memset(g->idx, 0, (a->view.n ? a->view.n : 1) * sizeof *g->idx);
        g->at = 0;
        g->exhausted = false;
    }
    while (!g->exhausted && g->at < trial)
        grid_advance(a, g, point);
    if (g->exhausted) return 1;
    grid_point(a, g, point);
    return 0;
}

const struct algo_kind algo_grid = {"grid", grid_init, grid_ask, grid_free};
