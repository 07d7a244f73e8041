/* engine/metrics/classification.h: top-k, NLL, ECE (Guo et al. 2017, 15 bins), the confusion
 * matrix, mean and sample std, affinity's difference and ratio, each against values computed by
 * hand below. Probabilities are sums of powers of two, exact in float, so no bin edge depends on
 * rounding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "assert_near.h"
#include "metrics/classification.h"

static void test_rank_ties_by_index(void **state)
{
    (void)state;
    const float p[] = {0.25f, 0.5f, 0.25f, 0.0f};
    assert_int_equal(metric_rank(p, 4, 1), 0);
    assert_int_equal(metric_rank(p, 4, 0), 1); /* only class 1 beats it */
    assert_int_equal(metric_rank(p, 4, 2), 2); /* class 1, and class 0: equal at a lower index */
    assert_int_equal(metric_rank(p, 4, 3), 3);
}

static void test_ece_bins(void **state)
{
    (void)state;
    /* Bin m holds (m/15, (m+1)/15]; 0 goes to bin 0. */
    assert_int_equal(metric_ece_bin(0), 0);
    assert_int_equal(metric_ece_bin(0.05), 0);   /* 0.75 of the way into bin 0 */
    assert_int_equal(metric_ece_bin(0.0667), 1); /* just past 1/15 */
    assert_int_equal(metric_ece_bin(0.5), 7);    /* 7.5/15 */
    assert_int_equal(metric_ece_bin(0.75), 11);  /* 11.25/15 */
    assert_int_equal(metric_ece_bin(1), 14);
}

/* Four samples of three classes:
 *   A [0.75, 0.125, 0.125]  true 0: predicted 0, right;  confidence 0.75  -> bin 11
 *   B [0.25, 0.5, 0.25]     true 2: predicted 1, wrong;  confidence 0.5   -> bin 7, rank 2
 *   C [0.375, 0.375, 0.25]  true 1: predicted 0 (tie),  wrong; 0.375      -> bin 5
 *   D [0.125, 0.75, 0.125]  true 0: predicted 1, wrong;  confidence 0.75  -> bin 11
 * top-1 1/4, top-5 4/4 (three classes); NLL (-ln .75 - ln .25 - ln .375 - ln .125) / 4;
 * ECE: bin 11 holds A and D, accuracy 1/2 and mean confidence 0.75, |B| = 2: 2/4 x 0.25;
 * bin 7 (B): 1/4 x |0 - 0.5|; bin 5 (C): 1/4 x 0.375; together 0.125 + 0.125 + 0.09375. */
static void test_four_samples(void **state)
{
    (void)state;
    const float probs[4][3] = {{0.75f, 0.125f, 0.125f},
                               {0.25f, 0.5f, 0.25f},
                               {0.375f, 0.375f, 0.25f},
                               {0.125f, 0.75f, 0.125f}};
    const size_t labels[4] = {0, 2, 1, 0};
    struct metric_eval e;
    struct eng_error err = {0};
    assert_int_equal(metric_eval_init(&e, 3, &err), 0);
    for (int i = 0; i < 4; i++)
        metric_eval_add(&e, probs[i], labels[i]);
    assert_int_equal(e.count, 4);
    assert_int_equal(e.top1, 1);
    assert_int_equal(e.top5, 4);
    assert_near(e.nll / 4, (-log(0.75) - log(0.25) - log(0.375) - log(0.125)) / 4, 1e-12);
    assert_near(metric_eval_ece(&e), 0.34375, 1e-12);
    assert_int_equal(e.bin_count[11], 2);
    assert_int_equal(e.bin_correct[11], 1);
    assert_near(e.bin_confidence[11], 1.5, 0);
    assert_int_equal(e.bin_count[7] + e.bin_count[5], 2);
    /* [true][predicted] */
    const uint64_t confusion[9] = {1, 1, 0, /* true 0: A right, D as 1 */
                                   1, 0, 0, /* true 1: C as 0 */
                                   0, 1, 0 /* true 2: B as 1 */};
    for (int i = 0; i < 9; i++)
        assert_int_equal(e.confusion[i], confusion[i]);
    metric_eval_free(&e);
}

static void test_top5_and_clamped_nll(void **state)
{
    (void)state;
    /* Seven classes, the true one (6) fifth, then sixth. */
    const float fifth[7] = {0.25f, 0.125f, 0.125f, 0.125f, 0.0625f, 0.0f, 0.0625f};
    const float sixth[7] = {0.25f, 0.125f, 0.125f, 0.125f, 0.0625f, 0.0625f, 0.0625f};
    const float zero[7] = {1, 0, 0, 0, 0, 0, 0};
    struct metric_eval e;
    struct eng_error err = {0};
    assert_int_equal(metric_eval_init(&e, 7, &err), 0);
    metric_eval_add(&e, fifth, 6); /* 4 beat it; class 4 equal at a lower index: rank 5 */
    assert_int_equal(e.top5, 0);
    metric_eval_add(&e, sixth, 4); /* 4 beat it, 5 and 6 equal but later: rank 4 */
    assert_int_equal(e.top5, 1);
    e.nll = 0;
    metric_eval_add(&e, zero, 3); /* p = 0: clamped, not infinite */
    assert_near(e.nll, -log(METRIC_MIN_PROB), 1e-9);
    assert_int_equal(e.top1, 0);
    metric_eval_free(&e);
    assert_int_equal(metric_eval_init(&e, 0, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
}

static void test_mean_std_and_affinity(void **state)
{
    (void)state;
    double mean, std;
    const double x[] = {1, 2, 3, 4};
    metric_mean_std(x, 4, &mean, &std);
    assert_near(mean, 2.5, 0);
    assert_near(std, sqrt(5.0 / 3.0), 1e-15); /* (2.25 + 0.25 + 0.25 + 2.25) / 3 */
    metric_mean_std(x + 2, 1, &mean, &std);
    assert_near(mean, 3, 0);
    assert_near(std, 0, 0);
    double diff, ratio;
    metric_affinity(0.75, 0.5, &diff, &ratio);
    assert_near(diff, -0.25, 0);
    assert_near(ratio, 2.0 / 3.0, 1e-15);
    metric_affinity(0.5, 0.5, &diff, &ratio); /* the same accuracy: exactly 0 and 1 */
    assert_true(diff == 0 && ratio == 1);
    metric_affinity(0, 0.5, &diff, &ratio);
    assert_near(diff, 0.5, 0);
    assert_true(isnan(ratio));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_ties_by_index),    cmocka_unit_test(test_ece_bins),
        cmocka_unit_test(test_four_samples),          cmocka_unit_test(test_top5_and_clamped_nll),
        cmocka_unit_test(test_mean_std_and_affinity),
    };
    return cmocka_run_group_tests_name("eval_metrics", tests, NULL, NULL);
}
