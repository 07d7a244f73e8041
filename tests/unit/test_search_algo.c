/* engine/search's algorithms and early stopping (search.h) on synthetic objectives with known
 * optima, no training: grid's order and exhaustion by hand; random, evolution and TPE within
 * stated distances of the optimum in stated numbers of trials over ten seeds, each bound taken
 * from the algorithm's expected behaviour (the comments derive them); determinism, replay in any
 * order and parallel asks; ASHA's and successive halving's decisions on scripted learning curves
 * computed by hand; bad params. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "assert_near.h"
#include "search/search.h"

#define SEEDS 10

static struct search_dim dim(enum search_dim_kind kind, double low, double high)
{
    return (struct search_dim){.kind = kind, .low = low, .high = high, .parent = -1};
}

static struct search_dim choice(size_t choices)
{
    return (struct search_dim){.kind = SEARCH_DIM_CHOICE, .choices = choices, .parent = -1};
}

static struct search_view view_of(const struct search_dim *dims, size_t n)
{
    return (struct search_view){.dims = dims, .n = n};
}

static struct search_algo *algo(const char *name, const char *params, const struct search_view *v,
                                uint64_t seed)
{
    struct eng_error err = {0};
    json_t *p = params ? json_loads(params, 0, NULL) : NULL;
    struct search_algo *a = search_algo_new(name, p, v, seed, &err);
    json_decref(p);
    if (!a) fail_msg("%s %s: %s", name, params ? params : "", err.message);
    return a;
}

/* search_algo_new must fail with ENG_INVALID and a message containing `message`. */
static void assert_refused(const char *name, const char *params, const struct search_view *v,
                           const char *message)
{
    struct eng_error err = {0};
    json_t *p = params ? json_loads(params, 0, NULL) : NULL;
    struct search_algo *a = search_algo_new(name, p, v, 1, &err);
    json_decref(p);
    if (a) {
        search_algo_free(a);
        fail_msg("%s %s: accepted", name, params ? params : "");
    }
    if (err.code != ENG_INVALID || !strstr(err.message, message))
        fail_msg("%s %s: code %d, '%s'", name, params ? params : "", (int)err.code, err.message);
}

typedef double (*objective)(const double *point);

/* Runs `trials` trials one at a time; returns the best value, its point in best. */
static double run(struct search_algo *a, size_t n, size_t trials, objective f, double *best)
{
    struct eng_error err;
    double point[16], best_value = -INFINITY;
    for (uint64_t t = 0; t < trials; t++) {
        assert_int_equal(search_algo_ask(a, t, point, &err), 0);
        double v = f(point);
        assert_int_equal(search_algo_tell(a, t, point, v, true, &err), 0);
        if (v > best_value) {
            best_value = v;
            memcpy(best, point, n * sizeof *point);
        }
    }
    return best_value;
}

/* ---- grid ---- */

static void test_grid_order(void **state)
{
    (void)state;
    struct search_dim dims[] = {choice(2), dim(SEARCH_DIM_INT, 1, 3)};
    struct search_view v = view_of(dims, 2);
    struct search_algo *a = algo("grid", NULL, &v, 1);
    /* The last dimension fastest, each ascending. */
    static const double expected[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 1}, {1, 2}, {1, 3}};
    struct eng_error err;
    double p[2];
    for (uint64_t t = 0; t < 6; t++) {
        assert_int_equal(search_algo_ask(a, t, p, &err), 0);
        assert_true(p[0] == expected[t][0] && p[1] == expected[t][1]);
    }
    assert_int_equal(search_algo_ask(a, 6, p, &err), 1);
    assert_int_equal(search_algo_ask(a, 7, p, &err), 1);
    /* Trial numbers address combinations: asked again, or out of order, the same points. */
    assert_int_equal(search_algo_ask(a, 5, p, &err), 0);
    assert_true(p[0] == 1 && p[1] == 3);
    assert_int_equal(search_algo_ask(a, 2, p, &err), 0);
    assert_true(p[0] == 0 && p[1] == 3);
    search_algo_free(a);
}

/* A choice between two subtrees, each with its own placeholder: 3 + 3 documents, not 3 x 3. */
static void test_grid_conditional(void **state)
{
    (void)state;
    struct search_dim dims[] = {choice(2), dim(SEARCH_DIM_INT, 0, 2),
                                dim(SEARCH_DIM_QUANTIZED, 0, 0.5)};
    dims[1].parent = 0;
    dims[1].parent_choice = 0;
    dims[2].parent = 0;
    dims[2].parent_choice = 1;
    dims[2].step = 0.25;
    struct search_view v = view_of(dims, 3);
    struct search_algo *a = algo("grid", NULL, &v, 1);
    static const double expected[6][3] = {{0, 0, 0}, {0, 1, 0},    {0, 2, 0},
                                          {1, 0, 0}, {1, 0, 0.25}, {1, 0, 0.5}};
    struct eng_error err;
    double p[3];
    for (uint64_t t = 0; t < 6; t++) {
        assert_int_equal(search_algo_ask(a, t, p, &err), 0);
        for (int d = 0; d < 3; d++)
            assert_near(p[d], expected[t][d], 1e-12);
    }
    assert_int_equal(search_algo_ask(a, 6, p, &err), 1);
    search_algo_free(a);
}

static void test_grid_continuous(void **state)
{
    (void)state;
    struct search_dim dims[] = {dim(SEARCH_DIM_UNIFORM, -1, 1),
                                dim(SEARCH_DIM_LOGUNIFORM, 0.01, 100)};
    dims[1].pointer = "/ops/0/magnitude";
    struct search_view v = view_of(dims, 2);
    struct eng_error err;
    /* Without a resolution it is refused, naming the placeholder (or its index). */
    assert_refused("grid", NULL, &v,
                   "grid: #0 is a continuous range; give the grid params "
                   "{\"points\": k}");
    struct search_view second = view_of(dims + 1, 1);
    assert_refused("grid", NULL, &second, "grid: /ops/0/magnitude is a continuous range");
    /* Three points: the ends and the middle, evenly in log for LOGUNIFORM. */
    struct search_algo *a = algo("grid", "{\"points\": 3}", &v, 1);
    static const double expected[9][2] = {{-1, 0.01}, {-1, 1},   {-1, 100}, {0, 0.01}, {0, 1},
                                          {0, 100},   {1, 0.01}, {1, 1},    {1, 100}};
    double p[2];
    for (uint64_t t = 0; t < 9; t++) {
        assert_int_equal(search_algo_ask(a, t, p, &err), 0);
        assert_near(p[0], expected[t][0], 1e-12);
        assert_near(p[1], expected[t][1], 1e-12 * expected[t][1]);
    }
    assert_int_equal(search_algo_ask(a, 9, p, &err), 1);
    search_algo_free(a);
}

/* The maximum sits at one combination of 4 x 11 x 6 = 264; grid's best is exactly it. */
static double peaked(const double *p)
{
    return -(p[0] != 2) - (p[1] - 7) * (p[1] - 7) - 10 * (p[2] - 0.75) * (p[2] - 0.75);
}

static void test_grid_finds_optimum(void **state)
{
    (void)state;
    struct search_dim dims[] = {choice(4), dim(SEARCH_DIM_INT, 0, 10),
                                dim(SEARCH_DIM_QUANTIZED, 0, 1.25)};
    dims[2].step = 0.25;
    struct search_view v = view_of(dims, 3);
    struct search_algo *a = algo("grid", NULL, &v, 1);
    double best[3] = {0};
    assert_true(run(a, 3, 264, peaked, best) == 0);
    assert_true(best[0] == 2 && best[1] == 7 && best[2] == 0.75);
    double p[3];
    struct eng_error err;
    assert_int_equal(search_algo_ask(a, 264, p, &err), 1);
    search_algo_free(a);
}

/* ---- random ---- */

static double near_point(const double *p)
{
    return -fmax(fabs(p[0] - 0.3), fabs(p[1] - 0.7));
}

/* The max-norm distance to (0.3, 0.7) of one uniform point in [0, 1]^2 is within r = 0.1 with
 * probability (2r)^2 = 0.04, so 200 points all miss with probability 0.96^200 < 3e-4: every
 * seed must come within 0.1. */
static void test_random_within_reach(void **state)
{
    (void)state;
    struct search_dim dims[] = {dim(SEARCH_DIM_UNIFORM, 0, 1), dim(SEARCH_DIM_UNIFORM, 0, 1)};
    struct search_view v = view_of(dims, 2);
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct search_algo *a = algo("random", NULL, &v, seed);
        double best[2] = {0};
        assert_true(-run(a, 2, 200, near_point, best) <= 0.1);
        search_algo_free(a);
    }
}

/* Trial k's point is the view's sampler at rng_init(seed, k, 0, 0), whatever else happens. */
static void fixed_sampler(void *ctx, struct rng *r, double *point)
{
    (void)ctx;
    point[0] = rng_uniform(r);
}

static void test_random_uses_sampler_and_trial(void **state)
{
    (void)state;
    struct search_dim dims[] = {dim(SEARCH_DIM_UNIFORM, 0, 1)};
    struct search_view v = {.dims = dims, .n = 1, .sample = fixed_sampler};
    struct search_algo *a = algo("random", NULL, &v, 42);
    struct eng_error err;
    double p;
    assert_int_equal(search_algo_ask(a, 7, &p, &err), 0);
    struct rng r;
    rng_init(&r, 42, 7, 0, 0);
    assert_true(p == rng_uniform(&r));
    /* Trials past 2^32 take the high word as the second coordinate. */
    assert_int_equal(search_algo_ask(a, (3ull << 32) | 5, &p, &err), 0);
    rng_init(&r, 42, 5, 3, 0);
    assert_true(p == rng_uniform(&r));
    search_algo_free(a);
}

/* ---- evolution ---- */

static const double target[6] = {3, 7, 1, 8, 5, 2};

/* Six integers in [0, 9]. */
static struct search_view digits(struct search_dim dims[6])
{
    for (int i = 0; i < 6; i++)
        dims[i] = dim(SEARCH_DIM_INT, 0, 9);
    return view_of(dims, 6);
}

static double l1_to_target(const double *p)
{
    double d = 0;
    for (int i = 0; i < 6; i++)
        d += fabs(p[i] - target[i]);
    return -d;
}

/* Six integers in [0, 9], the value minus the L1 distance to a target. Within distance 2 of it
 * lie 1 + 12 + 12 + 60 = 85 of the 10^6 points, so 300 random trials get there with probability
 * 1 - (1 - 8.5e-5)^300 = 2.5%. Regularized evolution (population 20, tournament 5, a one-dim
 * redraw per child) climbs instead: the best of its 20 random trials is about 8 away, and a
 * child of a parent D away, even with every wrong coordinate off by one, is better with
 * probability D/6 x 1/10, so going from 8 to 2 takes about 60 (1/8 + ... + 1/3) = 100 children
 * from the best lineage; 280 evolved trials leave room for tournaments that miss it. Every seed
 * must reach distance 2. */
static void test_evolution_climbs(void **state)
{
    (void)state;
    struct search_dim dims[6];
    struct search_view v = digits(dims);
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct search_algo *a = algo("evolution", "{\"population\": 20, \"sample\": 5}", &v, seed);
        double best[6] = {0};
        double value = run(a, 6, 300, l1_to_target, best);
        if (value < -2) fail_msg("seed %llu: distance %g", (unsigned long long)seed, -value);
        search_algo_free(a);
    }
}

/* The first `population` trials are random (the random algorithm's points), as is a later trial
 * asked before any has finished; with one success among failures, every tournament picks it, so
 * each child is it with at most one coordinate redrawn. */
static void test_evolution_start_and_parents(void **state)
{
    (void)state;
    struct search_dim dims[6];
    struct search_view v = digits(dims);
    struct search_algo *e = algo("evolution", "{\"population\": 4, \"sample\": 2}", &v, 9);
    struct search_algo *r = algo("random", NULL, &v, 9);
    struct eng_error err;
    double p[6], q[6];
    for (uint64_t t = 0; t < 6; t++) {
        assert_int_equal(search_algo_ask(e, t, p, &err), 0);
        assert_int_equal(search_algo_ask(r, t, q, &err), 0);
        assert_memory_equal(p, q, sizeof p);
    }
    double good[6] = {1, 2, 3, 4, 5, 6};
    /* Trial 2 succeeds; the others fail, told so (ok = false, with a better value than 2's)
     * or with a value that is not a number. */
    for (uint64_t t = 0; t < 6; t++) {
        assert_int_equal(search_algo_ask(e, t, p, &err), 0);
        if (t == 2)
            assert_int_equal(search_algo_tell(e, t, good, 0.0, true, &err), 0);
        else
            assert_int_equal(search_algo_tell(e, t, p, t % 2 ? NAN : 1.0, t % 2, &err), 0);
    }
    for (uint64_t t = 6; t < 30; t++) {
        assert_int_equal(search_algo_ask(e, t, p, &err), 0);
        int differ = 0;
        for (int i = 0; i < 6; i++)
            differ += p[i] != good[i];
        assert_true(differ <= 1);
    }
    search_algo_free(e);
    search_algo_free(r);
}

/* A space's own mutation makes the child: here it adds 1 to the first coordinate. */
static void plus_one(void *ctx, struct rng *r, const double *parent, double *child)
{
    (void)ctx;
    (void)r;
    memcpy(child, parent, 6 * sizeof *child);
    child[0] = parent[0] + 1;
}

static void test_evolution_uses_mutate(void **state)
{
    (void)state;
    struct search_dim dims[6];
    struct search_view v = digits(dims);
    v.mutate = plus_one;
    struct search_algo *e = algo("evolution", "{\"population\": 2, \"sample\": 2}", &v, 4);
    struct eng_error err;
    double p[2][6], child[6];
    /* Trial 0 is worse than trial 1; the population is both, so a tournament of two picks
     * trial 1 unless it draws trial 0 twice (probability 1/4): the child is one of them + 1. */
    for (uint64_t t = 0; t < 2; t++) {
        assert_int_equal(search_algo_ask(e, t, p[t], &err), 0);
        assert_int_equal(search_algo_tell(e, t, p[t], (double)t, true, &err), 0);
    }
    int from[2] = {0, 0};
    for (uint64_t t = 2; t < 42; t++) {
        assert_int_equal(search_algo_ask(e, t, child, &err), 0);
        int k = child[0] == p[1][0] + 1 && memcmp(child + 1, p[1] + 1, 5 * sizeof *child) == 0;
        assert_true(
            k || (child[0] == p[0][0] + 1 && memcmp(child + 1, p[0] + 1, 5 * sizeof *child) == 0));
        from[k]++;
    }
    /* 40 children, each from trial 1 with probability 3/4: at least 20 is certain to 1e-4. */
    assert_true(from[1] >= 20 && from[0] >= 1);
    search_algo_free(e);
}

/* ---- TPE ---- */

static double bowl(const double *p)
{
    return -((p[0] - 0.3) * (p[0] - 0.3) + (p[1] - 0.7) * (p[1] - 0.7));
}

/* On a smooth bowl over [0, 1]^2, 60 trials: random's nearest point is at a distance whose mean
 * is about 1 / (2 sqrt(60)) = 0.065 (the nearest of N uniform points in the plane); TPE, after
 * its 10 random trials, samples more and more densely near the best, so its mean nearest
 * distance must be at most half of random's over the same ten seeds, and every seed within 0.1
 * (random's chance of a point within 0.1 is pi 0.01 = 3.1% per trial). */
static void test_tpe_beats_random(void **state)
{
    (void)state;
    struct search_dim dims[] = {dim(SEARCH_DIM_UNIFORM, 0, 1), dim(SEARCH_DIM_UNIFORM, 0, 1)};
    struct search_view v = view_of(dims, 2);
    double tpe_sum = 0, random_sum = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct search_algo *t = algo("tpe", NULL, &v, seed), *r = algo("random", NULL, &v, seed);
        double best[2] = {0};
        double dt = sqrt(-run(t, 2, 60, bowl, best)), dr = sqrt(-run(r, 2, 60, bowl, best));
        if (dt > 0.1) fail_msg("seed %llu: TPE's best is %g away", (unsigned long long)seed, dt);
        tpe_sum += dt;
        random_sum += dr;
        search_algo_free(t);
        search_algo_free(r);
    }
    print_message("mean distance after 60 trials: TPE %g, random %g\n", tpe_sum / SEEDS,
                  random_sum / SEEDS);
    assert_true(tpe_sum <= 0.5 * random_sum);
}

static double mixed(const double *p)
{
    return -(p[0] != 2) - fabs(p[1] - 13) / 20 - fabs(log10(p[2]) + 2) / 4 - fabs(p[3] - 0.6);
}

/* Every kind of dimension at once: a choice of 5 (best 2), an integer in [0, 40] (best 13), a
 * log-uniform rate in [1e-5, 1] (best 1e-2) and a quantized [0, 1] step 0.1 (best 0.6). Random
 * hits the right choice, |i - 13| <= 3, |log10 r + 2| <= 0.5 and |q - 0.6| <= 0.1 together with
 * probability 1/5 x 7/41 x 1/5 x 3/11 = 0.19% per trial, 17% in 100 trials; TPE must do it on
 * every seed in 100 trials. */
static void test_tpe_mixed_dimensions(void **state)
{
    (void)state;
    struct search_dim dims[] = {choice(5), dim(SEARCH_DIM_INT, 0, 40),
                                dim(SEARCH_DIM_LOGUNIFORM, 1e-5, 1),
                                dim(SEARCH_DIM_QUANTIZED, 0, 1)};
    dims[3].step = 0.1;
    struct search_view v = view_of(dims, 4);
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct search_algo *t = algo("tpe", NULL, &v, seed);
        double b[4] = {0};
        run(t, 4, 100, mixed, b);
        if (!(b[0] == 2 && fabs(b[1] - 13) <= 3 && fabs(log10(b[2]) + 2) <= 0.5 &&
              fabs(b[3] - 0.6) <= 0.1 + 1e-9))
            fail_msg("seed %llu: best (%g, %g, %g, %g)", (unsigned long long)seed, b[0], b[1], b[2],
                     b[3]);
        /* Proposals stay on each dimension's values. */
        assert_true(b[1] == floor(b[1]) && b[2] >= 1e-5 && b[2] <= 1);
        assert_near(b[3] * 10, round(b[3] * 10), 1e-9);
        search_algo_free(t);
    }
}

/* A dimension inside one option of a choice (x, active when the choice is 1; best at 0.2). */
static double conditional(const double *p)
{
    return p[0] == 1 ? 1 - fabs(p[1] - 0.2) : 0;
}

/* The space's own sampler: x is held at `ctx` where inactive, as a space may do. */
static void conditional_sampler(void *ctx, struct rng *r, double *point)
{
    point[0] = rng_below(r, 2);
    point[1] = point[0] == 1 ? rng_uniform(r) : *(const double *)ctx;
}

/* TPE models x only on the trials where it was active: the values inactive trials hold for it
 * change no proposal; and it finds x within 0.05 of 0.2 in 60 trials on every seed (random's
 * chance per trial is 1/2 x 0.1 = 5%, so it would in 60 trials with probability 95%; TPE's
 * model of x, from the choice-1 trials alone, makes it certain on these seeds). */
static void test_tpe_conditional(void **state)
{
    (void)state;
    struct search_dim dims[] = {choice(2), dim(SEARCH_DIM_UNIFORM, 0, 1)};
    dims[1].parent = 0;
    dims[1].parent_choice = 1;
    double held_high = 0.95, held_low = 0.05;
    struct search_view v = {.dims = dims, .n = 2, .ctx = &held_high, .sample = conditional_sampler};
    struct search_view w = {.dims = dims, .n = 2, .ctx = &held_low, .sample = conditional_sampler};
    struct eng_error err;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        struct search_algo *a = algo("tpe", NULL, &v, seed), *b = algo("tpe", NULL, &w, seed);
        for (uint64_t t = 0; t < 30; t++) {
            double p[2], q[2];
            assert_int_equal(search_algo_ask(a, t, p, &err), 0);
            q[0] = p[0];
            q[1] = p[0] == 1 ? p[1] : 0.05;
            assert_int_equal(search_algo_tell(a, t, p, conditional(p), true, &err), 0);
            assert_int_equal(search_algo_tell(b, t, q, conditional(q), true, &err), 0);
        }
        double p[2], q[2];
        assert_int_equal(search_algo_ask(a, 30, p, &err), 0);
        assert_int_equal(search_algo_ask(b, 30, q, &err), 0);
        assert_memory_equal(p, q, sizeof p);
        search_algo_free(a);
        search_algo_free(b);

        a = algo("tpe", NULL, &v, seed);
        double best[2] = {0};
        run(a, 2, 60, conditional, best);
        if (!(best[0] == 1 && fabs(best[1] - 0.2) <= 0.05))
            fail_msg("seed %llu: best (%g, %g)", (unsigned long long)seed, best[0], best[1]);
        search_algo_free(a);
    }
}

/* ---- determinism, replay, parallel asks ---- */

/* The same seed and the same told results give the same next point, whatever order the results
 * were told in (a search job's replay after kill -9); another seed gives another. */
static void test_replay(void **state)
{
    (void)state;
    struct search_dim dims[] = {choice(3), dim(SEARCH_DIM_INT, 0, 9),
                                dim(SEARCH_DIM_LOGUNIFORM, 1e-3, 1)};
    struct search_view v = view_of(dims, 3);
    static const char *const names[] = {"random", "evolution", "tpe"};
    for (int k = 0; k < 3; k++) {
        struct search_algo *a = algo(names[k], NULL, &v, 5);
        double points[40][3], values[40], next[3], again[3], other[3];
        struct eng_error err;
        for (uint64_t t = 0; t < 40; t++) {
            assert_int_equal(search_algo_ask(a, t, points[t], &err), 0);
            values[t] = mixed((double[]){points[t][0], points[t][1], points[t][2], 0.6});
            assert_int_equal(search_algo_tell(a, t, points[t], values[t], t % 7 != 3, &err), 0);
        }
        assert_int_equal(search_algo_ask(a, 40, next, &err), 0);
        struct search_algo *b = algo(names[k], NULL, &v, 5), *c = algo(names[k], NULL, &v, 6);
        for (uint64_t t = 40; t-- > 0;) {
            assert_int_equal(search_algo_tell(b, t, points[t], values[t], t % 7 != 3, &err), 0);
            assert_int_equal(search_algo_tell(c, t, points[t], values[t], t % 7 != 3, &err), 0);
        }
        assert_int_equal(search_algo_ask(b, 40, again, &err), 0);
        assert_memory_equal(next, again, sizeof next);
        assert_int_equal(search_algo_ask(c, 40, other, &err), 0);
        assert_memory_not_equal(next, other, sizeof next);
        /* Telling a trial again replaces its result (rather than adding one). */
        assert_int_equal(search_algo_tell(b, 39, points[39], 1e9, true, &err), 0);
        assert_int_equal(search_algo_tell(b, 39, points[39], values[39], true, &err), 0);
        assert_int_equal(search_algo_ask(b, 40, again, &err), 0);
        assert_memory_equal(next, again, sizeof next);
        search_algo_free(a);
        search_algo_free(b);
        search_algo_free(c);
    }
}

/* Several trials outstanding: each ask depends on its trial number and the results told, so
 * asks between two tells differ from one another, and asking one again gives it again. */
static void test_parallel_asks(void **state)
{
    (void)state;
    struct search_dim dims[] = {dim(SEARCH_DIM_UNIFORM, 0, 1), dim(SEARCH_DIM_UNIFORM, 0, 1)};
    struct search_view v = view_of(dims, 2);
    static const char *const names[] = {"random", "evolution", "tpe"};
    for (int k = 0; k < 3; k++) {
        struct search_algo *a = algo(names[k], NULL, &v, 3);
        struct eng_error err;
        double p[4][2], q[2];
        /* Two at a time: trial t + 2 is asked when trial t is told. */
        for (uint64_t t = 0; t < 2; t++)
            assert_int_equal(search_algo_ask(a, t, p[t], &err), 0);
        for (uint64_t t = 0; t < 40; t++) {
            assert_int_equal(search_algo_tell(a, t, p[t % 4], bowl(p[t % 4]), true, &err), 0);
            assert_int_equal(search_algo_ask(a, t + 2, p[(t + 2) % 4], &err), 0);
        }
        assert_int_equal(search_algo_ask(a, 42, p[2], &err), 0);
        assert_int_equal(search_algo_ask(a, 43, p[3], &err), 0);
        assert_memory_not_equal(p[2], p[3], sizeof p[2]);
        assert_int_equal(search_algo_ask(a, 42, q, &err), 0);
        assert_memory_equal(p[2], q, sizeof q);
        search_algo_free(a);
    }
}

/* ---- bad params ---- */

static void test_bad_params(void **state)
{
    (void)state;
    struct search_dim dims[] = {dim(SEARCH_DIM_INT, 0, 9)};
    struct search_view v = view_of(dims, 1);
    static const struct {
        const char *name, *params, *message;
    } bad[] = {
        {"annealing", NULL, "unknown search algorithm 'annealing'"},
        {"random", "[]", "random: params must be an object"},
        {"random", "{\"points\": 3}", "random: unknown param 'points'"},
        {"grid", "{\"points\": 1}", "grid: 'points' must be an integer in [2, 1000000]"},
        {"evolution", "{\"population\": 1}", "evolution: 'population' must be an integer"},
        {"evolution", "{\"population\": 5, \"sample\": 6}",
         "evolution: 'sample' must be an integer in [1, 5]"},
        {"evolution", "{\"sample\": 2.5}", "evolution: 'sample' must be an integer"},
        {"tpe", "{\"gamma\": 0}", "tpe: 'gamma' must be a number in (0, 1]"},
        {"tpe", "{\"gamma\": 1.5}", "tpe: 'gamma' must be a number in (0, 1]"},
        {"tpe", "{\"candidates\": 0}", "tpe: 'candidates' must be an integer"},
        {"tpe", "{\"startup\": \"10\"}", "tpe: 'startup' must be an integer"},
        {"tpe", "{\"prior_weight\": -1}", "tpe: 'prior_weight' must be a number"},
        {"tpe", "{\"population\": 20}", "tpe: unknown param 'population'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused(bad[i].name, bad[i].params, &v, bad[i].message);
}

/* Dimensions that break search.h's rules are refused by every algorithm, naming the dimension. */
static void test_bad_dims(void **state)
{
    (void)state;
    struct search_dim bad[] = {
        choice(0),
        dim(SEARCH_DIM_INT, 0.5, 3),
        dim(SEARCH_DIM_UNIFORM, 2, 1),
        dim(SEARCH_DIM_UNIFORM, 0, INFINITY),
        dim(SEARCH_DIM_LOGUNIFORM, 0, 1),
        dim(SEARCH_DIM_QUANTIZED, 0, 1), /* step 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct search_dim dims[] = {dim(SEARCH_DIM_UNIFORM, 0, 1), bad[i]};
        dims[1].pointer = "/m";
        struct search_view v = view_of(dims, 2);
        assert_refused("random", NULL, &v, "search dimension /m is malformed");
    }
    /* A parent that comes after its child, that is not a choice, or whose option is missing. */
    struct search_dim links[3][2] = {
        {dim(SEARCH_DIM_UNIFORM, 0, 1), choice(2)},
        {dim(SEARCH_DIM_UNIFORM, 0, 1), dim(SEARCH_DIM_UNIFORM, 0, 1)},
        {choice(2), dim(SEARCH_DIM_UNIFORM, 0, 1)},
    };
    links[0][0].parent = 1;
    links[1][1].parent = 0;
    links[2][1].parent = 0;
    links[2][1].parent_choice = 2;
    for (size_t i = 0; i < 3; i++) {
        struct search_view v = view_of(links[i], 2);
        assert_refused("tpe", NULL, &v, "search dimension #");
    }
}

/* ---- early stopping ---- */

/* One line of a scripted learning curve: a report and the decision it must get. */
struct step {
    uint64_t trial;
    unsigned epoch;
    double value;
    enum search_asha_decision expected;
};

#define CONT SEARCH_ASHA_CONTINUE
#define STOP SEARCH_ASHA_STOP
#define WAIT SEARCH_ASHA_WAIT

static void play(struct search_asha *s, const struct step *script, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct eng_error err;
        enum search_asha_decision d;
        if (search_asha_report(s, script[i].trial, script[i].epoch, script[i].value, &d, &err) < 0)
            fail_msg("step %zu: %s", i, err.message);
        if (d != script[i].expected)
            fail_msg("step %zu (trial %llu, epoch %u): decision %d, expected %d", i,
                     (unsigned long long)script[i].trial, script[i].epoch, (int)d,
                     (int)script[i].expected);
    }
}

/* Rungs at 1 and 3 epochs (9 is the end, not a rung), eta 3. At a rung with n values a trial
 * continues when fewer than max(1, floor(n / 3)) values there beat it. */
static void test_asha_async(void **state)
{
    (void)state;
    static const struct step script[] = {
        /* Rung 1: n = 1..8; the cut keeps the best 1 while n < 6, the best 2 after. */
        {0, 1, 0.50, CONT}, /* first: alone at the top */
        {1, 1, 0.40, STOP}, /* 0.50 beats it, 1 may go */
        {2, 1, 0.60, CONT}, /* the best */
        {3, 1, 0.55, STOP}, /* 0.60 beats it */
        {4, 1, 0.70, CONT},
        {5, 1, 0.52, STOP}, /* n = 6, 2 may go; 0.55, 0.60 and 0.70 beat it */
        {6, 1, 0.65, CONT}, /* n = 7, only 0.70 beats it */
        {7, 1, 0.65, CONT}, /* n = 8, a tie at the cut goes on */
        {8, 1, NAN, STOP},  /* n = 9, 3 may go: not a number is the worst */
        /* Epochs between rungs and after the last go on; a stopped trial stays stopped. */
        {0, 2, 0.10, CONT},
        {1, 2, 0.99, STOP},
        /* Rung 3: its own values only. */
        {0, 3, 0.60, CONT},
        {2, 3, 0.50, STOP},
        {4, 3, 0.80, CONT},
        {4, 9, 0.10, CONT},
        /* Reporting a judged rung again changes nothing. */
        {0, 1, 0.00, CONT},
    };
    struct eng_error err;
    struct search_asha *s = search_asha_new(1, 9, 3, true, 0, &err);
    assert_non_null(s);
    play(s, script, sizeof script / sizeof script[0]);
    assert_int_equal(search_asha_poll(s, 1), STOP);
    assert_int_equal(search_asha_poll(s, 2), STOP);
    assert_int_equal(search_asha_poll(s, 4), CONT);
    assert_int_equal(search_asha_poll(s, 100), CONT);
    search_asha_free(s);

    /* min 2, max 20, eta 2: rungs at 2, 4, 8 and 16, so 16 judges and 20 and 3 do not. */
    static const struct step longer[] = {
        {0, 16, 0.9, CONT}, {1, 16, 0.8, STOP}, {2, 20, 0.1, CONT}, {2, 3, 0.1, CONT}};
    s = search_asha_new(2, 20, 2, true, 0, &err);
    play(s, longer, sizeof longer / sizeof longer[0]);
    search_asha_free(s);
}

/* Nine trials, rungs at 1 and 3, eta 3: rung 1 waits for all nine and keeps the best three;
 * rung 3 waits for those three (or fewer, when one drops out) and keeps the best one. */
static void test_successive_halving(void **state)
{
    (void)state;
    static const struct step rung1[] = {
        {0, 1, 0.1, WAIT}, {1, 1, 0.9, WAIT},  {2, 1, 0.3, WAIT}, {3, 1, 0.8, WAIT},
        {4, 1, 0.5, WAIT}, {5, 1, 0.7, WAIT},  {6, 1, 0.2, WAIT}, {7, 1, 0.6, WAIT},
        {3, 2, 0.9, WAIT}, /* training on while waiting is not promotion */
        {8, 1, 0.4, STOP}, /* the last decides: 0.9, 0.8, 0.7 go on */
        {1, 3, 0.5, WAIT}, {3, 3, 0.95, WAIT},
    };
    struct eng_error err;
    struct search_asha *s = search_asha_new(1, 9, 3, false, 9, &err);
    assert_non_null(s);
    play(s, rung1, 8);
    assert_int_equal(search_asha_poll(s, 3), WAIT);
    play(s, rung1 + 8, 2);
    static const enum search_asha_decision after[9] = {STOP, CONT, STOP, CONT, STOP,
                                                       CONT, STOP, STOP, STOP};
    for (uint64_t t = 0; t < 9; t++)
        assert_int_equal(search_asha_poll(s, t), after[t]);
    play(s, rung1 + 10, 2);
    search_asha_drop(s, 5); /* the last awaited: rung 3 decides among two, keeping one */
    assert_int_equal(search_asha_poll(s, 3), CONT);
    assert_int_equal(search_asha_poll(s, 1), STOP);
    assert_int_equal(search_asha_poll(s, 5), STOP);
    search_asha_free(s);

    /* Ties at the cut go to the lower trial number; a dropped waiting trial takes no place. */
    static const struct step ties[] = {
        {0, 1, 0.5, WAIT}, {1, 1, 0.9, WAIT}, {2, 1, 0.5, WAIT},
        {3, 1, 0.1, STOP}, /* n = 3 once 1 dropped: one goes on, trial 0 before 2 */
        {0, 2, 0.0, CONT}, /* alone at rung 2, which expects only it */
        {0, 3, 0.0, CONT},
    };
    s = search_asha_new(1, 4, 2, false, 4, &err);
    play(s, ties, 3);
    search_asha_drop(s, 1);
    play(s, ties + 3, 3);
    assert_int_equal(search_asha_poll(s, 2), STOP);
    search_asha_free(s);

    /* A trial that reports past a rung still deciding, or a trial past the count, is an error. */
    s = search_asha_new(1, 9, 3, false, 2, &err);
    enum search_asha_decision d;
    assert_int_equal(search_asha_report(s, 0, 3, 0.5, &d, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "before its rung at epoch 1"));
    assert_int_equal(search_asha_report(s, 2, 1, 0.5, &d, &err), -1);
    assert_non_null(strstr(err.message, "past the 2 trials"));
    search_asha_free(s);
}

static void test_asha_bad_params(void **state)
{
    (void)state;
    static const struct {
        unsigned min, max, eta;
        bool async;
        size_t trials;
    } bad[] = {{0, 9, 3, true, 0}, {1, 9, 1, true, 0}, {5, 4, 2, true, 0}, {1, 9, 3, false, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct eng_error err = {0};
        assert_null(
            search_asha_new(bad[i].min, bad[i].max, bad[i].eta, bad[i].async, bad[i].trials, &err));
        assert_int_equal(err.code, ENG_INVALID);
        assert_non_null(strstr(err.message, "eta >= 2"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_order),
        cmocka_unit_test(test_grid_conditional),
        cmocka_unit_test(test_grid_continuous),
        cmocka_unit_test(test_grid_finds_optimum),
        cmocka_unit_test(test_random_within_reach),
        cmocka_unit_test(test_random_uses_sampler_and_trial),
        cmocka_unit_test(test_evolution_climbs),
        cmocka_unit_test(test_evolution_start_and_parents),
        cmocka_unit_test(test_evolution_uses_mutate),
        cmocka_unit_test(test_tpe_beats_random),
        cmocka_unit_test(test_tpe_mixed_dimensions),
        cmocka_unit_test(test_tpe_conditional),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_parallel_asks),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_asha_async),
        cmocka_unit_test(test_successive_halving),
        cmocka_unit_test(test_asha_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
