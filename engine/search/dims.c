/* The dimension helpers every algorithm and space shares (search.h): which dimensions a point
 * activates, and a draw from one dimension's prior. */
#include <math.h>

#include "search/search.h"

void search_dims_active(const struct search_dim *dims, size_t n, const double *point, bool *active)
{
    /* Parents come first, so a parent's own activity is known when its children ask. */
    for (size_t i = 0; i < n; i++) {
        int p = dims[i].parent;
        active[i] = p < 0 || (active[p] && (size_t)point[p] == dims[i].parent_choice);
    }
}

double search_dim_sample(const struct search_dim *d, struct rng *r)
{
    switch (d->kind) {
    case SEARCH_DIM_CHOICE:
        return rng_below(r, (uint32_t)d->choices);
    case SEARCH_DIM_INT:
        return d->low + rng_below(r, (uint32_t)(d->high - d->low + 1));
    case SEARCH_DIM_UNIFORM:
        return d->low + rng_uniform(r) * (d->high - d->low);
    case SEARCH_DIM_LOGUNIFORM:
        return exp(log(d->low) + rng_uniform(r) * (log(d->high) - log(d->low)));
    case SEARCH_DIM_QUANTIZED:
        break;
    }
    /* The last step at most high; the slack keeps (0.9 - 0) / 0.1 from rounding to 8.99. */
    return d->low +
           d->step * rng_below(r, (uint32_t)floor((d->high - d->low) / d->step + 1e-9) + 1);
}
