/* Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
 * Architecture Search", Algorithm 1): the first `population` trials are random; after that the
 * population is the `population` most recent finished trials (by trial number, failures left
 * out), so the oldest member dies as each new one finishes (aging); `sample` members drawn at
 * random with replacement form a tournament whose best (the first drawn among equals) is the
 * parent, and the child is the space's mutation of it (or one active dimension redrawn from its
 * prior). With parallel trials the population holds only trials finished when the child is
 * asked; a trial past the random start with none finished yet is random. */
#include <stdlib.h>
#include <string.h>

#include "search/algo_internal.h"

struct evolution {
    size_t population, sample;
};

static int evolution_init(struct search_algo *a, const json_t *params, struct eng_error *err)
{
    static const char *const keys[] = {"population", "sample", NULL};
    struct evolution *e = calloc(1, sizeof *e);
    if (!e) return eng_no_memory(err);
    a->state = e;
    if ((params && algo_params_known(params, "evolution", keys, err) < 0) ||
        algo_param_count(params, "evolution", "population", 2, 1000000, 20, &e->population, err) <
            0 ||
        algo_param_count(params, "evolution", "sample", 1, e->population, 5, &e->sample, err) < 0)
        return -1;
    return 0;
}

/* Redraws one active dimension of child from its prior (the mutation of a view without one). */
static int redraw_one(const struct search_view *v, struct rng *r, double *child)
{
    bool *active = malloc((v->n ? v->n : 1) * sizeof *active);
    if (!active) return -1;
    search_dims_active(v->dims, v->n, child, active);
    size_t n_active = 0;
    for (size_t i = 0; i < v->n; i++)
        n_active += active[i];
    if (n_active > 0) {
        size_t k = rng_below(r, (uint32_t)n_active);
        for (size_t i = 0; i < v->n; i++)
            if (active[i] && k-- == 0) child[i] = search_dim_sample(&v->dims[i], r);
    }
    free(active);
    return 0;
}

static int evolution_ask(struct search_algo *a, uint64_t trial, double *point,
                         struct eng_error *err)
{
    const struct evolution *e = a->state;
    /* The population: the last `population` successes in trial order. */
    size_t *pop = NULL, n_pop = 0;
    if (trial >= e->population) {
        pop = malloc(e->population * sizeof *pop);
        if (!pop) return eng_no_memory(err);
        for (size_t i = a->n_told; i > 0 && n_pop < e->population; i--)
            if (a->told[i - 1].ok) pop[n_pop++] = i - 1;
    }
    struct rng r;
    if (n_pop == 0) {
        free(pop);
        algo_rng(a, trial, ALGO_STREAM_RANDOM, &r);
        algo_sample(a, &r, point);
        return 0;
    }
    algo_rng(a, trial, ALGO_STREAM_OWN, &r);
    const struct algo_told *parent = NULL;
    for (size_t s = 0; s < e->sample; s++) {
        const struct algo_told *m = &a->told[pop[rng_below(&r, (uint32_t)n_pop)]];
        if (!parent || m->value > parent->value) parent = m;
    }
    free(pop);
    if (a->view.mutate) {
        a->view.mutate(a->view.ctx, &r, parent->point, point);
        return 0;
    }
    memcpy(point, parent->point, a->view.n * sizeof *point);
    return redraw_one(&a->view, &r, point) < 0 ? eng_no_memory(err) : 0;
}

const struct algo_kind algo_evolution = {"evolution", evolution_init, evolution_ask, free};
