/* Dimension helpers: which dimensions a point activates, a dimension's prior, and moving a value
 * onto a dimension. Spaces and algorithms share them, so a draw means the same on both sides. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "search/search.h"

void search_dims_active(const struct search_dim *dims, size_t n, const double *point, bool *active)
{
    for (size_t i = 0; i < n; i++) {
        int p = dims[i].parent;
        active[i] = p < 0 || (active[p] &&
                              search_dim_snap(&dims[p], point[p]) == (double)dims[i].parent_choice);
    }
}

/* The number of lattice points above low: high - low is a whole number of steps up to rounding. */
static double lattice_top(const struct search_dim *d)
{
    return floor((d->high - d->low) / d->step + 1e-9);
}

double search_dim_sample(const struct search_dim *d, struct rng *r)
{
    switch (d->kind) {
    case SEARCH_DIM_CHOICE:
        return (double)rng_below(r, (uint32_t)d->choices);
    case SEARCH_DIM_INT:
        return d->low + (double)rng_below(r, (uint32_t)(d->high - d->low + 1));
    case SEARCH_DIM_UNIFORM:
        return d->low + rng_uniform(r) * (d->high - d->low);
    case SEARCH_DIM_LOGUNIFORM:
        return exp(log(d->low) + rng_uniform(r) * (log(d->high) - log(d->low)));
    case SEARCH_DIM_QUANTIZED:
        return search_dim_snap(d, d->low + d->step * rng_below(r, (uint32_t)lattice_top(d) + 1));
    }
    return d->low;
}

double search_dim_snap(const struct search_dim *d, double x)
{
    double lo = d->low, hi = d->kind == SEARCH_DIM_CHOICE ? (double)d->choices - 1 : d->high;
    if (d->kind == SEARCH_DIM_CHOICE) lo = 0;
    if (d->kind == SEARCH_DIM_CHOICE || d->kind == SEARCH_DIM_INT) x = nearbyint(x);
    if (d->kind == SEARCH_DIM_QUANTIZED) {
        double k = fmin(fmax(nearbyint((x - lo) / d->step), 0), lattice_top(d));
        /* low + k step carries the binary error of step (0.1 * 3 = 0.30000000000000004); the
         * lattice point a person means is the short decimal. */
        char text[32];
        snprintf(text, sizeof text, "%.15g", lo + k * d->step);
        x = strtod(text, NULL);
    }
    return x < lo ? lo : x > hi ? hi : x;
}
