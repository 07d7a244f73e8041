/* Random search (Bergstra and Bengio 2012): trial k's point is drawn at rng_init(seed, k), from
 * the view's sampler or each dimension's prior, so it depends on neither timing nor history. */
#include <stdlib.h>

#include "search/algo_internal.h"

static int random_init(struct search_algo *a, const json_t *params, struct eng_error *err)
{
    static const char *const keys[] = {NULL};
    (void)a;
    return params ? algo_params_known(params, "random", keys, err) : 0;
}

static int random_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err)
{
    (void)err;
    struct rng r;
    algo_rng(a, trial, ALGO_STREAM_RANDOM, &r);
    algo_sample(a, &r, point);
    return 0;
}

/* Random keeps no state of its own (a->state stays NULL, so this is never called). */
const struct algo_kind algo_random = {"random", random_init, random_ask, free};
