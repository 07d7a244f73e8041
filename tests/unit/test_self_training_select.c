/* Unit tests of self-training's pseudo-label selection and sharpening
 * (server/self_training_select.c) on hand-made confidences whose kept images and copies are
 * worked out below from Noisy Student's rule: kept at a confidence of at least the threshold;
 * with K per class, a class's K most confident kept images, or floor(K / n) copies of each of its
 * n and one more for its K mod n most confident; and the temperature's p^(1/T) / sum worked out
 * by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "self_training_select.h"

/* Six images of two classes; image 2's confidence is the threshold itself (kept: at least), image
 * 5's just below it. */
static const uint32_t labels[6] = {0, 1, 0, 1, 0, 0};
static const double confidence[6] = {0.9, 0.5, 0.3, 0.95, 0.7, 0.29};

static void select_expect(size_t per_class, const uint32_t expected[6])
{
    uint32_t copies[6];
    struct eng_error err = {0};
    assert_int_equal(self_training_select(labels, confidence, 6, 2, 0.3, per_class, copies, &err),
                     0);
    for (size_t i = 0; i < 6; i++)
        if (copies[i] != expected[i])
            fail_msg("K %zu, image %zu: %u copies, expected %u", per_class, i, copies[i],
                     expected[i]);
}

static void test_threshold(void **state)
{
    (void)state;
    select_expect(0, (const uint32_t[6]){1, 1, 1, 1, 1, 0});
}

/* K = 2: class 0 keeps images 0, 2 and 4 and takes its two most confident, 0 (0.9) and 4 (0.7);
 * class 1 has exactly two, 1 and 3. */
static void test_balance_truncates(void **state)
{
    (void)state;
    select_expect(2, (const uint32_t[6]){1, 1, 0, 1, 1, 0});
}

/* K = 5: class 0's three get floor(5/3) = 1 each and its 5 mod 3 = 2 most confident (0, then 4)
 * one more: 2 + 1 + 2 = 5; class 1's two get 2 each and the more confident (3) one more. */
static void test_balance_duplicates(void **state)
{
    (void)state;
    select_expect(5, (const uint32_t[6]){2, 2, 1, 3, 2, 0});
}

/* Ties go to the lower image; a class none of whose images is kept stays empty; a label out of
 * range is refused. */
static void test_ties_and_empty_class(void **state)
{
    (void)state;
    const uint32_t tied[4] = {1, 1, 1, 2};
    const double conf[4] = {0.6, 0.6, 0.6, 0.1};
    uint32_t copies[4];
    struct eng_error err = {0};
    assert_int_equal(self_training_select(tied, conf, 4, 3, 0.5, 2, copies, &err), 0);
    assert_int_equal(copies[0], 1);
    assert_int_equal(copies[1], 1);
    assert_int_equal(copies[2], 0);
    assert_int_equal(copies[3], 0); /* class 2 kept nothing; class 0 has no image at all */
    const uint32_t bad[1] = {3};
    assert_int_equal(self_training_select(bad, conf, 1, 3, 0.5, 0, copies, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
}

static void expect_probs(const float *got, const double *want, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (fabs(got[j] - want[j]) > 1e-6)
            fail_msg("class %zu: %.9g, expected %.9g", j, got[j], want[j]);
}

/* (0.5, 0.25, 0.25): at T = 0.5 squared, 0.25 + 0.0625 + 0.0625 = 0.375, so (2/3, 1/6, 1/6); at
 * T = 2 square roots, 0.70711 + 0.5 + 0.5; at T = 1 unchanged; a zero stays zero:
 * (0.8, 0.2, 0) at T = 0.5 is (0.64, 0.04, 0) / 0.68. */
static void test_sharpen(void **state)
{
    (void)state;
    float p[3] = {0.5f, 0.25f, 0.25f};
    self_training_sharpen(p, 3, 0.5);
    expect_probs(p, (const double[]){2.0 / 3, 1.0 / 6, 1.0 / 6}, 3);
    float q[3] = {0.5f, 0.25f, 0.25f};
    self_training_sharpen(q, 3, 2);
    double s = sqrt(0.5) + 2 * 0.5;
    expect_probs(q, (const double[]){sqrt(0.5) / s, 0.5 / s, 0.5 / s}, 3);
    float r[3] = {0.5f, 0.25f, 0.25f};
    self_training_sharpen(r, 3, 1);
    expect_probs(r, (const double[]){0.5, 0.25, 0.25}, 3);
    float z[3] = {0.8f, 0.2f, 0};
    self_training_sharpen(z, 3, 0.5);
    expect_probs(z, (const double[]){0.64 / 0.68, 0.04 / 0.68, 0}, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_balance_truncates),
        cmocka_unit_test(test_balance_duplicates),
        cmocka_unit_test(test_ties_and_empty_class),
        cmocka_unit_test(test_sharpen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
