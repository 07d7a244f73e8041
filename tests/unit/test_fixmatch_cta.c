/* FixMatch's CTAugment probes' feedback (server/job_fixmatch_cta.c) on hand-made logits: each
 * probe's proximity 1 - 0.5 sum |softmax - onehot(label)| worked out by hand, each bin its policy
 * used updated as the reference's update_rates does (rate = 0.99 rate + 0.01 proximity, the bin
 * int(value x bins x 0.999)), probes in batch order, a bin two probes share updated twice; every
 * other bin left at 1; the counts; and the state with its counts through the checkpoint's JSON
 * and back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "job_fixmatch.h"

/* Two probes of three classes. Probe 0: logits (0, 0, 0), so p = (1/3, 1/3, 1/3), label 0:
 * sum |p - onehot| = 2/3 + 1/3 + 1/3 = 4/3, proximity 1/3. Probe 1: logits (ln 3, 0, 0), so
 * p = (3/5, 1/5, 1/5), label 1: 3/5 + 4/5 + 1/5 = 8/5, proximity 1/5. */
static const float logits[2 * 3] = {0, 0, 0, 1.0986123f /* ln 3 */, 0, 0};
static const int32_t labels[2] = {0, 1};

/* rotate 0.5 (bin int(0.5 x 17 x 0.999) = int(8.49) = 8) and rescale (0.1, 0.9): bins
 * int(1.698) = 1 of 17 and int(5.395) = 5 of 6; then rotate 0.52 (int(8.83) = 8 again) and
 * identity (no argument, no bin). */
static void policies(struct ctaug_policy p[2])
{
    int rotate = ctaug_op_find("rotate"), rescale = ctaug_op_find("rescale");
    p[0] = (struct ctaug_policy){
        .count = 2, .ops = {{.op = rotate, .value = {0.5}}, {.op = rescale, .value = {0.1, 0.9}}}};
    p[1] = (struct ctaug_policy){
        .count = 2, .ops = {{.op = rotate, .value = {0.52}}, {.op = ctaug_op_find("identity")}}};
}

static void test_feedback_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    struct fixmatch_cta c = {.state = ctaug_new(NULL, &err)};
    assert_non_null(c.state);
    struct ctaug_policy p[2];
    policies(p);
    assert_int_equal(fixmatch_cta_feedback(&c, p, logits, labels, 2, 3, &err), 0);
    int rotate = ctaug_op_find("rotate"), rescale = ctaug_op_find("rescale");
    /* rotate's bin 8: 0.99 x 1 + 0.01 / 3, then 0.99 x that + 0.01 x 0.2. */
    double once = 0.99 + 0.01 / 3, twice = 0.99 * once + 0.01 * 0.2;
    assert_true(fabs(ctaug_rate(c.state, rotate, 0, 8) - twice) < 1e-6);
    assert_true(fabs(ctaug_rate(c.state, rescale, 0, 1) - once) < 1e-6);
    assert_true(fabs(ctaug_rate(c.state, rescale, 1, 5) - once) < 1e-6);
    long updated = 0;
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < ctaug_op_args(op); a++)
            for (int b = 0; b < ctaug_op_bins(op, a); b++) {
                updated += c.updates[op][a][b];
                if (c.updates[op][a][b] == 0) assert_true(ctaug_rate(c.state, op, a, b) == 1.0f);
            }
    assert_int_equal(updated, 4);
    assert_int_equal(c.updates[rotate][0][8], 2);
    assert_int_equal(c.updates[rescale][0][1], 1);
    assert_int_equal(c.updates[rescale][1][5], 1);
    assert_int_equal(c.probes, 2);
    assert_true(fabs(c.proximity - (1.0 / 3 + 0.2)) < 1e-6);

    /* Through the checkpoint's JSON: the same rates and counts. */
    json_t *doc = fixmatch_cta_to_json(&c);
    assert_non_null(doc);
    struct fixmatch_cta back = {0};
    assert_int_equal(fixmatch_cta_from_json(&back, doc, &err), 0);
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < ctaug_op_args(op); a++)
            for (int b = 0; b < ctaug_op_bins(op, a); b++) {
                assert_true(ctaug_rate(back.state, op, a, b) == ctaug_rate(c.state, op, a, b));
                assert_int_equal(back.updates[op][a][b], c.updates[op][a][b]);
            }
    /* A count that is not one is refused, not read as 0. */
    json_array_set_new(
        json_array_get(json_object_get(json_object_get(doc, "updates"), "rotate"), 0), 8,
        json_string("two"));
    assert_int_equal(fixmatch_cta_from_json(&back, doc, &err), -1);
    json_decref(doc);
    ctaug_free(back.state);
    ctaug_free(c.state);
}

/* A label outside the classes is refused. */
static void test_feedback_refuses_bad_label(void **state)
{
    (void)state;
    struct eng_error err;
    struct fixmatch_cta c = {.state = ctaug_new(NULL, &err)};
    struct ctaug_policy p[2];
    policies(p);
    const int32_t bad[2] = {3, 0};
    assert_int_equal(fixmatch_cta_feedback(&c, p, logits, bad, 2, 3, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "label: 3"));
    assert_int_equal(c.probes, 0);
    ctaug_free(c.state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feedback_by_hand),
        cmocka_unit_test(test_feedback_refuses_bad_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
