/* The algorithms' common half: the dispatch by name, the told history (kept in trial order, so
 * that a replay in any order rebuilds the same state), params, and the random point. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/algo_internal.h"

static const struct algo_kind *const kinds[] = {&algo_grid, &algo_random, &algo_evolution,
                                                &algo_tpe};

/* The dimensions as search.h defines them: the algorithms divide by ranges and steps, draw
 * below counts and follow parents, so a space's mistake fails here rather than there. */
static int check_dims(const struct search_view *v, struct eng_error *err)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct search_dim *d = &v->dims[i];
        char buf[32];
        bool ok = isfinite(d->low) && isfinite(d->high) && d->low <= d->high;
        switch (d->kind) {
        case SEARCH_DIM_CHOICE:
            ok = d->choices >= 1 && d->choices <= UINT32_MAX;
            break;
        case SEARCH_DIM_INT:
            ok = ok && d->low == floor(d->low) && d->high == floor(d->high) &&
                 d->high - d->low < UINT32_MAX;
            break;
        case SEARCH_DIM_UNIFORM:
            break;
        case SEARCH_DIM_LOGUNIFORM:
            ok = ok && d->low > 0;
            break;
        case SEARCH_DIM_QUANTIZED:
            ok = ok && d->step > 0 && (d->high - d->low) / d->step < UINT32_MAX;
            break;
        }
        if (d->parent >= (int)i) ok = false;
        if (ok && d->parent >= 0)
            ok = v->dims[d->parent].kind == SEARCH_DIM_CHOICE &&
                 d->parent_choice < v->dims[d->parent].choices;
        if (!ok)
            return eng_fail(err, ENG_INVALID,
                            "search dimension %s is malformed (kind %d, low %g, high %g, step %g, "
                            "choices %zu, parent %d)",
                            algo_dim_name(d, i, buf), (int)d->kind, d->low, d->high, d->step,
                            d->choices, d->parent);
    }
    return 0;
}

struct search_algo *search_algo_new(const char *name, const json_t *params,
                                    const struct search_view *view, uint64_t seed,
                                    struct eng_error *err)
{
    const struct algo_kind *kind = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (name && strcmp(name, kinds[i]->name) == 0) kind = kinds[i];
    if (!kind) {
        eng_fail(err, ENG_INVALID,
                 "unknown search algorithm '%s': expected grid, random, evolution or tpe",
                 name ? name : "");
        return NULL;
    }
    if (params && !json_is_object(params)) {
        eng_fail(err, ENG_INVALID, "%s: params must be an object", kind->name);
        return NULL;
    }
    if (check_dims(view, err) < 0) return NULL;
    struct search_algo *a = calloc(1, sizeof *a);
    if (!a) {
        eng_no_memory(err);
        return NULL;
    }
    a->kind = kind;
    a->view = *view;
    a->seed = seed;
    if (kind->init(a, params, err) < 0) {
        search_algo_free(a);
        return NULL;
    }
    return a;
}

void search_algo_free(struct search_algo *a)
{
    if (!a) return;
    if (a->state) a->kind->free(a->state);
    for (size_t i = 0; i < a->n_told; i++)
        free(a->told[i].point);
    free(a->told);
    free(a);
}

int search_algo_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err)
{
    return a->kind->ask(a, trial, point, err);
}

int search_algo_tell(struct search_algo *a, uint64_t trial, const double *point, double value,
                     bool ok, struct eng_error *err)
{
    /* The first entry at or after trial: results arrive mostly in order, so search from the end. */
    size_t at = a->n_told;
    while (at > 0 && a->told[at - 1].trial >= trial)
        at--;
    struct algo_told *t;
    if (at < a->n_told && a->told[at].trial == trial) {
        t = &a->told[at];
    } else {
        struct algo_told *told = algo_grow(a->told, &a->cap_told, a->n_told, sizeof *told, err);
        if (!told) return -1;
        a->told = told;
        double *p = malloc((a->view.n ? a->view.n : 1) * sizeof *p);
        if (!p) return eng_no_memory(err);
        memmove(&a->told[at + 1], &a->told[at], (a->n_told - at) * sizeof *a->told);
        a->n_told++;
        t = &a->told[at];
        t->trial = trial;
        t->point = p;
    }
    memcpy(t->point, point, a->view.n * sizeof *point);
    /* A value that is not finite cannot be ranked: such a trial counts as failed. */
    t->ok = ok && isfinite(value);
    t->value = t->ok ? value : 0;
    return 0;
}

void *algo_grow(void *items, size_t *cap, size_t n, size_t size, struct eng_error *err)
{
    if (n < *cap) return items;
    size_t grown_cap = *cap ? 2 * *cap : 16;
    void *grown = realloc(items, grown_cap * size);
    if (!grown) {
        eng_no_memory(err);
        return NULL;
    }
    *cap = grown_cap;
    return grown;
}

void algo_rng(const struct search_algo *a, uint64_t trial, uint32_t stream, struct rng *r)
{
    rng_init(r, a->seed, (uint32_t)trial, (uint32_t)(trial >> 32), stream);
}

void algo_sample(const struct search_algo *a, struct rng *r, double *point)
{
    if (a->view.sample) {
        a->view.sample(a->view.ctx, r, point);
        return;
    }
    for (size_t i = 0; i < a->view.n; i++)
        point[i] = search_dim_sample(&a->view.dims[i], r);
}

int algo_params_known(const json_t *params, const char *algo, const char *const *keys,
                      struct eng_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)params, key, value)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], key) != 0)
            i++;
        if (!keys[i]) return eng_fail(err, ENG_INVALID, "%s: unknown param '%s'", algo, key);
    }
    return 0;
}

int algo_param_count(const json_t *params, const char *algo, const char *key, size_t min,
                     size_t max, size_t def, size_t *out, struct eng_error *err)
{
    const json_t *v = params ? json_object_get(params, key) : NULL;
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (unsigned long long)json_integer_value(v) < min ||
        (unsigned long long)json_integer_value(v) > max)
        return eng_fail(err, ENG_INVALID, "%s: '%s' must be an integer in [%zu, %zu]", algo, key,
                        min, max);
    *out = (size_t)json_integer_value(v);
    return 0;
}

int algo_param_real(const json_t *params, const char *algo, const char *key, double min, double max,
                    double def, double *out, struct eng_error *err)
{
    const json_t *v = params ? json_object_get(params, key) : NULL;
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > min && json_number_value(v) <= max))
        return eng_fail(err, ENG_INVALID, "%s: '%s' must be a number in (%g, %g]", algo, key, min,
                        max);
    *out = json_number_value(v);
    return 0;
}

const char *algo_dim_name(const struct search_dim *d, size_t i, char buf[32])
{
    if (d->pointer) return d->pointer;
    snprintf(buf, 32, "#%zu", i);
    return buf;
}
