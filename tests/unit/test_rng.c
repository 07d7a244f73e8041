/* Philox4x32-10 against Random123's published known-answer vectors, and the distributions against
 * their moments and chi-square bounds. Every draw is seeded, so these checks are deterministic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "core/rng.h"

/* Random123 tests/kat_vectors, the "philox4x32 10" lines: counter, key, expected output. */
static void test_known_answers(void **state)
{
    static const struct {
        uint32_t counter[4], key[2], expected[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        rng_philox4x32_10(kat[i].counter, kat[i].key, out);
        for (int w = 0; w < 4; w++)
            assert_int_equal(out[w], kat[i].expected[w]);
    }
}

/* The stream is the block function over counters 0, 1, 2, ... with the coordinates in words 1-3
 * and the seed as the key. */
static void test_stream_layout(void **state)
{
    struct rng r;
    rng_init(&r, 0x0123456789abcdefull, 7, 9, RNG_STREAM_OP(2));
    for (uint32_t block = 0; block < 3; block++) {
        uint32_t counter[4] = {block, 7, 9, 3}, key[2] = {0x89abcdef, 0x01234567}, out[4];
        rng_philox4x32_10(counter, key, out);
        for (int w = 0; w < 4; w++)
            assert_int_equal(rng_u32(&r), out[w]);
    }
}

static void test_coordinates_give_distinct_streams(void **state)
{
    struct rng a, b, c, d, again;
    rng_init(&a, 42, 0, 0, 0);
    rng_init(&b, 42, 1, 0, 0);
    rng_init(&c, 42, 0, 1, 0);
    rng_init(&d, 43, 0, 0, 0);
    rng_init(&again, 42, 0, 0, 0);
    uint32_t va = rng_u32(&a);
    assert_int_not_equal(va, rng_u32(&b));
    assert_int_not_equal(va, rng_u32(&c));
    assert_int_not_equal(va, rng_u32(&d));
    assert_int_equal(va, rng_u32(&again));
}

/* Pearson's chi-square of counts against equal expectation. */
static double chi_square(const long *counts, int bins, long total)
{
    double expected = (double)total / bins, x2 = 0;
    for (int i = 0; i < bins; i++)
        x2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    return x2;
}

static void test_uniform(void **state)
{
    enum { N = 200000, BINS = 20 };
    struct rng r;
    rng_init(&r, 1, 0, 0, 0);
    long counts[BINS] = {0};
    double sum = 0, min = 1, max = 0;
    for (int i = 0; i < N; i++) {
        double u = rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        counts[(int)(u * BINS)]++;
        sum += u;
        if (u < min) min = u;
        if (u > max) max = u;
    }
    /* 19 degrees of freedom: P(X2 > 43.82) = 0.001. */
    assert_true(chi_square(counts, BINS, N) < 43.82);
    assert_true(fabs(sum / N - 0.5) < 5 * sqrt(1.0 / 12 / N));
    assert_true(min < 1e-4 && max > 1 - 1e-4);
}

static void test_below(void **state)
{
    enum { N = 120000 };
    struct rng r;
    rng_init(&r, 2, 0, 0, 0);
    long counts[6] = {0};
    for (int i = 0; i < N; i++)
        counts[rng_below(&r, 6)]++;
    /* 5 degrees of freedom: P(X2 > 20.52) = 0.001. */
    assert_true(chi_square(counts, 6, N) < 20.52);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rng_below(&r, 1), 0);
    /* A bound that makes plain modulo visibly biased: 3 * 2^30. */
    uint32_t n = 3u << 30;
    long low_half = 0;
    for (int i = 0; i < N; i++)
        low_half += rng_below(&r, n) < n / 2;
    assert_true(fabs((double)low_half / N - 0.5) < 5 * sqrt(0.25 / N));
}

/* Checks sample mean and variance against the distribution's, within 5 standard errors. */
static void check_moments(const double *x, int n, double mean, double variance)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    double m = sum / n;
    for (int i = 0; i < n; i++)
        sq += (x[i] - m) * (x[i] - m);
    double v = sq / (n - 1);
    if (fabs(m - mean) > 5 * sqrt(variance / n)) fail_msg("mean %g, expected %g", m, mean);
    /* The variance of the sample variance is about 2 sigma^4 / n for light tails; allow 10x. */
    if (fabs(v - variance) > 10 * variance * sqrt(2.0 / n))
        fail_msg("variance %g, expected %g", v, variance);
}

static void test_normal_gamma_beta(void **state)
{
    enum { N = 100000 };
    static double x[N];
    struct rng r;
    rng_init(&r, 3, 0, 0, 0);
    for (int i = 0; i < N; i++)
        x[i] = rng_normal(&r);
    check_moments(x, N, 0, 1);
    static const double shapes[] = {0.3, 1.0, 2.5, 9.0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int i = 0; i < N; i++) {
            x[i] = rng_gamma(&r, shapes[s]);
            assert_true(x[i] >= 0);
        }
        check_moments(x, N, shapes[s], shapes[s]);
    }
    double a = 1.0, b = 1.0;
    for (int i = 0; i < N; i++)
        x[i] = rng_beta(&r, a, b);
    check_moments(x, N, a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1)));
    a = 0.5, b = 2.0;
    for (int i = 0; i < N; i++)
        x[i] = rng_beta(&r, a, b);
    check_moments(x, N, a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1)));
}

static void test_dirichlet(void **state)
{
    enum { N = 50000, K = 3 };
    static double first[N];
    struct rng r;
    rng_init(&r, 4, 0, 0, 0);
    const double alpha = 1.0;
    for (int i = 0; i < N; i++) {
        double w[K];
        rng_dirichlet(&r, alpha, K, w);
        double sum = 0;
        for (int k = 0; k < K; k++) {
            assert_true(w[k] >= 0);
            sum += w[k];
        }
        assert_true(fabs(sum - 1) < 1e-12);
        first[i] = w[0];
    }
    /* A Dirichlet marginal is Beta(alpha, (K - 1) alpha). */
    double a = alpha, b = (K - 1) * alpha;
    check_moments(first, N, a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_stream_layout),
        cmocka_unit_test(test_coordinates_give_distinct_streams),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_below),
        cmocka_unit_test(test_normal_gamma_beta),
        cmocka_unit_test(test_dirichlet),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
