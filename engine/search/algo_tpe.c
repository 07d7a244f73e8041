/* The Tree-structured Parzen Estimator (Bergstra et al. 2011, "Algorithms for Hyper-Parameter
 * Optimization"), as Optuna's default TPESampler (univariate, v3/v4) does it:
 *   - the first `startup` (n_startup_trials, 10) trials are random (as the random algorithm);
 *   - each dimension is proposed on its own: the finished trials are split into the best
 *     n_below = min(ceil(gamma * n), 25) ("below", l(x)) and the rest ("above", g(x)), gamma
 *     0.1 (Optuna's default_gamma); `candidates` (n_ei_candidates, 24) draws from l, and the one
 *     with the largest log l(x) - log g(x) is proposed (the argmax of Optuna's acquisition);
 *   - each estimator is a mixture with one kernel per observation, weighted by Optuna's
 *     default_weights (all 1 below 25 observations, then a ramp from 1/n to 1 over the oldest
 *     n - 25, in trial order), plus the prior (weight prior_weight, 1.0);
 *   - numeric dimensions (INT and QUANTIZED as discrete with step 1 or step, UNIFORM, and
 *     LOGUNIFORM in log space): truncated normals on [low, high] (widened by step / 2 each side
 *     when discrete), each observation's sigma the larger distance to its sorted neighbours
 *     (the prior's mean and the bounds included; the outermost take their inner neighbour's
 *     distance, consider_endpoints = false), clipped to [range / min(100, n + 2), range]
 *     ("magic clip"); the prior kernel is N((low + high) / 2, range), range = high - low + step;
 *   - CHOICE dimensions: each observation's kernel puts prior_weight / (n + 1) on every choice
 *     and 1 more on its own, normalised; the prior kernel is uniform.
 * Where this differs from Optuna: the split into below and above is made per dimension over the
 * trials where that dimension was active (Hyperopt's and Optuna 2's way; Optuna 3 splits all
 * trials and then leaves out those without the parameter); failed trials are left out, where
 * Optuna counts pruned ones; a categorical mixture is sampled through its summed probabilities
 * (the same distribution as picking a kernel first); ties between equal values are broken by
 * trial number. Draws are this project's rng (dimension d at stream ALGO_STREAM_OWN + d), so the
 * proposals are not Optuna's numbers, only its method. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/algo_internal.h"

#define LOG_SQRT_2PI 0.91893853320467274178 /* log sqrt(2 pi): the normal density's constant */

struct tpe {
    size_t startup, candidates;
    double gamma, prior_weight;
};

/* One dimension's estimator over its internal space: numeric kernels (mu, sigma) on [low, high]
 * with grid step (0: continuous), or, for a CHOICE, a probability per choice. */
struct parzen {
    size_t n; /* kernels: the observations, then the prior */
    double *w, *mu, *sigma;
    /* Each kernel's constant terms: log w - log Z (Z its mass inside the bounds), and when
     * continuous the normal density's - log(sigma sqrt(2 pi)). */
    double *log_c;
    double low, high, step;
    double *pmf;
    size_t choices; /* 0: numeric */
};

/* An observation ranked by value (at: its place in the dimension's observation list). */
struct rank {
    double value;
    uint64_t trial;
    size_t at;
};

/* A kernel's mean, sorted to find its neighbours (j: its kernel). */
struct sorted {
    double v;
    size_t j;
};

/* Scratch for one ask, sized for every finished trial. */
struct tpe_work {
    bool *active; /* n_told x view.n */
    size_t *obs;  /* told indices of one dimension's observations, in trial order */
    struct rank *rank;
    bool *below;
    double *x; /* one estimator's observations */
    struct sorted *sorted;
    double *ext;
    struct parzen l, g;
};

static int tpe_init(struct search_algo *a, const json_t *params, struct eng_error *err)
{
    static const char *const keys[] = {"startup", "candidates", "gamma", "prior_weight", NULL};
    struct tpe *t = calloc(1, sizeof *t);
    if (!t) return eng_no_memory(err);
    a->state = t;
    if ((params && algo_params_known(params, "tpe", keys, err) < 0) ||
        algo_param_count(params, "tpe", "startup", 1, 1000000, 10, &t->startup, err) < 0 ||
        algo_param_count(params, "tpe", "candidates", 1, 100000, 24, &t->candidates, err) < 0 ||
        algo_param_real(params, "tpe", "gamma", 0, 1, 0.1, &t->gamma, err) < 0 ||
        algo_param_real(params, "tpe", "prior_weight", 0, 1e6, 1.0, &t->prior_weight, err) < 0)
        return -1;
    return 0;
}

/* Optuna's default_weights: 1 each below 25 observations, else linspace(1/n, 1, n - 25) over
 * the oldest and 1 for the latest 25. */
static double observation_weight(size_t i, size_t n)
{
    if (n < 25 || i >= n - 25) return 1;
    size_t ramp = n - 25;
    double lo = 1.0 / (double)n;
    return ramp == 1 ? lo : lo + (1 - lo) * (double)i / (double)(ramp - 1);
}

/* The mixture's weights: observations', then the prior's, normalised. */
static void mixture_weights(struct parzen *p, size_t m, double prior_weight)
{
    double sum = 0;
    for (size_t i = 0; i < m; i++)
        sum += p->w[i] = observation_weight(i, m);
    /* With no observation the prior is the whole estimator, whatever its weight. */
    p->w[m] = m ? prior_weight : 1;
    sum += p->w[m];
    for (size_t i = 0; i <= m; i++)
        p->w[i] /= sum;
    p->n = m + 1;
}

static int by_value(const void *a, const void *b)
{
    const struct sorted *x = a, *y = b;
    return x->v < y->v ? -1 : x->v > y->v ? 1 : x->j < y->j ? -1 : x->j > y->j;
}

/* log(Phi(b) - Phi(a)) for a < b, from the tail that keeps its precision. */
static double log_gauss_mass(double a, double b)
{
    const double r = 0.70710678118654752440; /* 1 / sqrt(2) */
    double m;
    if (a >= 0)
        m = 0.5 * (erfc(a * r) - erfc(b * r));
    else if (b <= 0)
        m = 0.5 * (erfc(-b * r) - erfc(-a * r));
    else
        m = 1 - 0.5 * (erfc(b * r) + erfc(-a * r));
    return log(m);
}

/* Kernels of a numeric estimator over the m observations x (see the file's comment). */
static void parzen_numeric(struct parzen *p, const double *x, size_t m, double prior_weight,
                           struct tpe_work *w)
{
    double range = p->high - p->low + p->step, prior_mu = 0.5 * (p->low + p->high);
    mixture_weights(p, m, prior_weight);
    for (size_t j = 0; j <= m; j++)
        w->sorted[j] = (struct sorted){j < m ? x[j] : prior_mu, j};
    qsort(w->sorted, m + 1, sizeof *w->sorted, by_value);
    double *ext = w->ext;
    ext[0] = p->low - p->step / 2;
    for (size_t j = 0; j <= m; j++)
        ext[j + 1] = w->sorted[j].v;
    ext[m + 2] = p->high + p->step / 2;
    double lo = range / fmin(100, (double)m + 2);
    for (size_t j = 0; j <= m; j++) {
        double s = fmax(ext[j + 1] - ext[j], ext[j + 2] - ext[j + 1]);
        if (m >= 1 && j == 0) s = ext[2] - ext[1];
        if (m >= 1 && j == m) s = ext[m + 1] - ext[m];
        size_t k = w->sorted[j].j;
        p->mu[k] = k < m ? x[k] : prior_mu;
        p->sigma[k] = k < m ? fmin(fmax(s, lo), range) : range;
    }
    double bottom = p->low - p->step / 2, top = p->high + p->step / 2;
    for (size_t k = 0; k <= m; k++) {
        double s = p->sigma[k];
        p->log_c[k] = log(p->w[k]) - log_gauss_mass((bottom - p->mu[k]) / s, (top - p->mu[k]) / s);
        if (p->step == 0) p->log_c[k] -= log(s) + LOG_SQRT_2PI;
    }
}

/* Kernels of a CHOICE estimator, summed into one probability per choice. */
static void parzen_choice(struct parzen *p, const double *x, size_t m, double prior_weight)
{
    mixture_weights(p, m, prior_weight);
    double base = prior_weight / (double)(m + 1), row = base * (double)p->choices + 1;
    for (size_t c = 0; c < p->choices; c++)
        p->pmf[c] = p->w[m] / (double)p->choices;
    for (size_t j = 0; j < m; j++) {
        for (size_t c = 0; c < p->choices; c++)
            p->pmf[c] += p->w[j] * base / row;
        p->pmf[(size_t)x[j]] += p->w[j] / row;
    }
}

static double parzen_log_pdf(const struct parzen *p, double x)
{
    if (p->choices) return log(p->pmf[(size_t)x]);
    /* log sum_k w_k p_k(x), accumulated relative to the largest term so far. */
    double lo = p->low - p->step / 2, hi = p->high + p->step / 2, max = -INFINITY, sum = 0;
    for (size_t k = 0; k < p->n; k++) {
        double mu = p->mu[k], s = p->sigma[k], t;
        if (p->step > 0)
            t = log_gauss_mass((fmax(x - p->step / 2, lo) - mu) / s,
                               (fmin(x + p->step / 2, hi) - mu) / s);
        else
            t = -0.5 * ((x - mu) / s) * ((x - mu) / s);
        t += p->log_c[k];
        if (!(t > -INFINITY)) continue; /* a kernel with no mass here (the prior always has) */
        if (t > max) {
            sum = sum * exp(max - t) + 1;
            max = t;
        } else {
            sum += exp(t - max);
        }
    }
    return max + log(sum);
}

static double parzen_sample(const struct parzen *p, struct rng *r)
{
    double u = rng_uniform(r), acc = 0;
    size_t n = p->choices ? p->choices : p->n, k = 0;
    const double *w = p->choices ? p->pmf : p->w;
    while (k + 1 < n && (acc += w[k]) <= u)
        k++;
    if (p->choices) return (double)k;
    /* A truncated normal by rejection: mu lies in [lo, hi] and sigma is at most hi - lo, so at
     * least Phi(1) - Phi(0) = 34% of draws land inside. */
    double lo = p->low - p->step / 2, hi = p->high + p->step / 2, x;
    do
        x = p->mu[k] + p->sigma[k] * rng_normal(r);
    while (x < lo || x > hi);
    if (p->step > 0)
        x = fmin(fmax(p->low + round((x - p->low) / p->step) * p->step, p->low), p->high);
    return x;
}

static int by_rank(const void *a, const void *b)
{
    const struct rank *x = a, *y = b;
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->trial < y->trial ? -1 : x->trial > y->trial;
}

/* Sets p's kind and bounds in the internal space of dimension d; false when d has one value. */
static bool parzen_space(const struct search_dim *d, struct parzen *p)
{
    p->choices = 0;
    p->step = 0;
    p->low = d->low;
    p->high = d->high;
    switch (d->kind) {
    case SEARCH_DIM_CHOICE:
        p->choices = d->choices;
        return d->choices > 1;
    case SEARCH_DIM_INT:
        p->step = 1;
        break;
    case SEARCH_DIM_QUANTIZED:
        p->step = d->step;
        p->high = d->low + d->step * floor((d->high - d->low) / d->step + 1e-9);
        break;
    case SEARCH_DIM_UNIFORM:
        break;
    case SEARCH_DIM_LOGUNIFORM:
        p->low = log(d->low);
        p->high = log(d->high);
        break;
    }
    return p->high > p->low;
}

/* Dimension d's proposal from the observations w->obs[0..m) (told indices, trial order). */
static double tpe_dim(const struct search_algo *a, const struct tpe *t, size_t d, size_t m,
                      struct rng *r, struct tpe_work *w)
{
    const struct search_dim *dim = &a->view.dims[d];
    if (!parzen_space(dim, &w->l)) return dim->kind == SEARCH_DIM_CHOICE ? 0 : dim->low;
    parzen_space(dim, &w->g);
    for (size_t i = 0; i < m; i++) {
        const struct algo_told *o = &a->told[w->obs[i]];
        w->rank[i] = (struct rank){o->value, o->trial, i};
        w->below[i] = false;
    }
    qsort(w->rank, m, sizeof *w->rank, by_rank);
    size_t n_below = (size_t)ceil(t->gamma * (double)m);
    if (n_below > 25) n_below = 25;
    for (size_t i = 0; i < n_below; i++)
        w->below[w->rank[i].at] = true;
    for (int side = 0; side < 2; side++) {
        struct parzen *p = side ? &w->g : &w->l;
        size_t k = 0;
        for (size_t i = 0; i < m; i++) {
            if (w->below[i] != !side) continue;
            double v = a->told[w->obs[i]].point[d];
            w->x[k++] = dim->kind == SEARCH_DIM_LOGUNIFORM ? log(v) : v;
        }
        if (p->choices)
            parzen_choice(p, w->x, k, t->prior_weight);
        else
            parzen_numeric(p, w->x, k, t->prior_weight, w);
    }
    double best = 0, best_score = -INFINITY;
    for (size_t c = 0; c < t->candidates; c++) {
        double x = parzen_sample(&w->l, r);
        double score = parzen_log_pdf(&w->l, x) - parzen_log_pdf(&w->g, x);
        if (c == 0 || score > best_score) {
            best = x;
            best_score = score;
        }
    }
    if (dim->kind == SEARCH_DIM_LOGUNIFORM) best = fmin(fmax(exp(best), dim->low), dim->high);
    return best;
}

static void work_free(struct tpe_work *w)
{
    free(w->active);
    free(w->obs);
    free(w->rank);
    free(w->below);
    free(w->x);
    free(w->sorted);
    free(w->ext);
    free(w->l.w);
    free(w->g.w);
    free(w->l.pmf);
    free(w->g.pmf);
}

static int work_alloc(const struct search_algo *a, struct tpe_work *w)
{
    size_t n = a->n_told, dims = a->view.n ? a->view.n : 1, choices = 1;
    for (size_t d = 0; d < a->view.n; d++)
        if (a->view.dims[d].kind == SEARCH_DIM_CHOICE && a->view.dims[d].choices > choices)
            choices = a->view.dims[d].choices;
    memset(w, 0, sizeof *w);
    w->active = malloc(n * dims * sizeof *w->active);
    w->obs = malloc(n * sizeof *w->obs);
    w->rank = malloc(n * sizeof *w->rank);
    w->below = malloc(n * sizeof *w->below);
    w->x = malloc(n * sizeof *w->x);
    w->sorted = malloc((n + 1) * sizeof *w->sorted);
    w->ext = malloc((n + 3) * sizeof *w->ext);
    /* Each estimator's w, mu, sigma and log_c in one block. */
    w->l.w = malloc(4 * (n + 1) * sizeof(double));
    w->g.w = malloc(4 * (n + 1) * sizeof(double));
    w->l.pmf = malloc(choices * sizeof(double));
    w->g.pmf = malloc(choices * sizeof(double));
    if (!w->active || !w->obs || !w->rank || !w->below || !w->x || !w->sorted || !w->ext ||
        !w->l.w || !w->g.w || !w->l.pmf || !w->g.pmf) {
        work_free(w);
        return -1;
    }
    w->l.mu = w->l.w + n + 1;
    w->l.sigma = w->l.mu + n + 1;
    w->l.log_c = w->l.sigma + n + 1;
    w->g.mu = w->g.w + n + 1;
    w->g.sigma = w->g.mu + n + 1;
    w->g.log_c = w->g.sigma + n + 1;
    return 0;
}

static int tpe_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err)
{
    const struct tpe *t = a->state;
    size_t n_ok = 0;
    for (size_t i = 0; i < a->n_told; i++)
        n_ok += a->told[i].ok;
    struct rng r;
    if (n_ok < t->startup) {
        algo_rng(a, trial, ALGO_STREAM_RANDOM, &r);
        algo_sample(a, &r, point);
        return 0;
    }
    struct tpe_work w;
    if (work_alloc(a, &w) < 0) return eng_no_memory(err);
    size_t n = a->view.n;
    for (size_t i = 0; i < a->n_told; i++)
        search_dims_active(a->view.dims, n, a->told[i].point, &w.active[i * n]);
    for (size_t d = 0; d < n; d++) {
        size_t m = 0;
        for (size_t i = 0; i < a->n_told; i++)
            if (a->told[i].ok && w.active[i * n + d]) w.obs[m++] = i;
        algo_rng(a, trial, ALGO_STREAM_OWN + (uint32_t)d, &r);
        point[d] = tpe_dim(a, t, d, m, &r, &w);
    }
    work_free(&w);
    return 0;
}

const struct algo_kind algo_tpe = {"tpe", tpe_init, tpe_ask, free};
