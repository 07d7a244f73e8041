/* Unit tests of CTAugment (engine/policy/ctaugment*.c). argv[1]: the parity fixtures folder.
 * ctaugment/ holds what tests/parity/gen_ctaugment.py computed with the reference's own code
 * (libml/ctaugment.py's op functions on Pillow 9.4, its rate_to_p and update_rates on numpy
 * float32): every op's pixels at several levels, and a fixed sequence of feedback updates with
 * the rates and probabilities it leaves. The rest is worked out by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "policy/policy.h"
#include "testutil.h"

static char fixtures[4096];

/* The reference's registrations: name, and bins per argument (0 terminates). */
static const struct {
    const char *name;
    int bins[2];
} REFERENCE_OPS[CTAUG_OPS] = {
    {"autocontrast", {17}}, {"blur", {17}},        {"brightness", {17}},  {"color", {17}},
    {"contrast", {17}},     {"cutout", {17}},      {"equalize", {17}},    {"invert", {17}},
    {"identity", {0}},      {"posterize", {8}},    {"rescale", {17, 6}},  {"rotate", {17}},
    {"sharpness", {17}},    {"shear_x", {17}},     {"shear_y", {17}},     {"smooth", {17}},
    {"solarize", {17}},     {"translate_x", {17}}, {"translate_y", {17}},
};

static void test_op_table(void **state)
{
    (void)state;
    for (int op = 0; op < CTAUG_OPS; op++) {
        assert_string_equal(ctaug_op_name(op), REFERENCE_OPS[op].name);
        assert_int_equal(ctaug_op_find(REFERENCE_OPS[op].name), op);
        int args = REFERENCE_OPS[op].bins[0] ? REFERENCE_OPS[op].bins[1] ? 2 : 1 : 0;
        assert_int_equal(ctaug_op_args(op), args);
        for (int a = 0; a < args; a++)
            assert_int_equal(ctaug_op_bins(op, a), REFERENCE_OPS[op].bins[a]);
    }
    assert_null(ctaug_op_name(CTAUG_OPS));
    assert_int_equal(ctaug_op_find("Rotate"), -1);
    struct ctaug *c = ctaug_new(NULL, NULL);
    struct ctaug_settings s = ctaug_get_settings(c);
    assert_int_equal(s.depth, 2);
    assert_true(s.decay == 0.99 && s.threshold == 0.8);
    ctaug_free(c);
}

static struct img *run_policy(const char *op, const json_t *args, const struct img *in,
                              struct eng_error *err)
{
    assert_string_equal(op, "ctaug");
    struct ctaug_policy policy;
    if (ctaug_policy_from_json(json_object_get(args, "policy"), &policy, err)) return NULL;
    return ctaug_apply(&policy, in, 0, 1, 0, 0, err);
}

/* Every op but cutout, whose centre is random (test_cutout), pixel for pixel. */
static void test_parity(void **state)
{
    (void)state;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ctaugment", fixtures);
    size_t total, failed = fixture_check_manifest(dir, run_policy, ENG_UNSUPPORTED, &total);
    assert_true(total > 200);
    if (failed) fail_msg("%zu of %zu parity cases failed", failed, total);
}

static json_t *algorithm(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ctaugment", fixtures);
    return tu_load_json(dir, "algorithm.json");
}

/* Every probability of c equals the reference's, to the bit. */
static void expect_probabilities(const struct ctaug *c, const json_t *want)
{
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < ctaug_op_args(op); a++) {
            float q[CTAUG_MAX_BINS];
            ctaug_probabilities(c, op, a, q);
            const json_t *w = json_array_get(json_object_get(want, ctaug_op_name(op)), (size_t)a);
            assert_int_equal(json_array_size(w), ctaug_op_bins(op, a));
            for (int b = 0; b < ctaug_op_bins(op, a); b++)
                if (q[b] != (float)json_number_value(json_array_get(w, (size_t)b)))
                    fail_msg("%s/%d/%d: %.9g, the reference %.9g", ctaug_op_name(op), a, b,
                             (double)q[b], json_number_value(json_array_get(w, (size_t)b)));
        }
}

/* The reference's update_rates over the fixture's 200 updates, then its rates and rate_to_p. */
static void test_feedback_sequence(void **state)
{
    (void)state;
    json_t *doc = algorithm();
    struct ctaug *c = ctaug_new(NULL, NULL);
    struct eng_error err;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(doc, "updates"), i, u)
    {
        struct ctaug_policy policy;
        assert_int_equal(ctaug_policy_from_json(json_object_get(u, "policy"), &policy, &err), 0);
        assert_int_equal(
            ctaug_feedback(c, &policy, json_number_value(json_object_get(u, "proximity")), &err),
            0);
    }
    const json_t *rates = json_object_get(doc, "rates");
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < ctaug_op_args(op); a++)
            for (int b = 0; b < ctaug_op_bins(op, a); b++) {
                const json_t *w = json_array_get(
                    json_array_get(json_object_get(rates, ctaug_op_name(op)), (size_t)a),
                    (size_t)b);
                if (ctaug_rate(c, op, a, b) != (float)json_number_value(w))
                    fail_msg("rate %s/%d/%d: %.9g, the reference %.9g", ctaug_op_name(op), a, b,
                             (double)ctaug_rate(c, op, a, b), json_number_value(w));
            }
    expect_probabilities(c, json_object_get(doc, "probabilities"));
    ctaug_free(c);
    json_decref(doc);
}

/* Rates straddling the threshold's float32 edge, read through ctaug_from_json. */
static void test_threshold_edge(void **state)
{
    (void)state;
    json_t *doc = algorithm();
    struct eng_error err;
    struct ctaug *c = ctaug_from_json(json_object_get(doc, "edge_state"), &err);
    if (!c) fail_msg("%s", err.message);
    expect_probabilities(c, json_object_get(doc, "edge_probabilities"));
    ctaug_free(c);
    json_decref(doc);
}

/* By hand: equal rates give 1 / bins; a lone rate among zeros takes everything, since
 * 0.01 / (0.25 + 0.01) < 0.8. */
static void test_probabilities_by_hand(void **state)
{
    (void)state;
    struct ctaug *c = ctaug_new(NULL, NULL);
    float q[CTAUG_MAX_BINS];
    ctaug_probabilities(c, ctaug_op_find("rotate"), 0, q);
    for (int b = 0; b < 17; b++)
        assert_true(q[b] == 1.0f / 17.0f);
    ctaug_probabilities(c, ctaug_op_find("posterize"), 0, q);
    for (int b = 0; b < 8; b++)
        assert_true(q[b] == 0.125f);
    ctaug_probabilities(c, ctaug_op_find("rescale"), 1, q);
    for (int b = 0; b < 6; b++)
        assert_true(q[b] == 1.0f / 6.0f);
    ctaug_free(c);

    json_t *doc = algorithm();
    c = ctaug_from_json(json_object_get(doc, "edge_state"), NULL);
    ctaug_probabilities(c, ctaug_op_find("solarize"), 0, q);
    for (int b = 0; b < 17; b++)
        assert_true(q[b] == (b == 3 ? 1.0f : 0.0f));
    ctaug_free(c);
    json_decref(doc);
}

/* update_rates by hand: rate = 0.99 rate + 0.01 proximity at int(value * bins * 0.999). */
static void test_feedback_by_hand(void **state)
{
    (void)state;
    struct ctaug *c = ctaug_new(NULL, NULL);
    struct eng_error err;
    const int rotate = ctaug_op_find("rotate"), rescale = ctaug_op_find("rescale");
    /* 16.01 / 17 was drawn from bin 16 but updates bin 15: the reference's 0.999. */
    struct ctaug_policy p = {2, {{rotate, {0.5}}, {rescale, {16.01 / 17, 0.999}}}};
    assert_int_equal(ctaug_feedback_bin(rescale, 0, 16.01 / 17), 15);
    assert_int_equal(ctaug_feedback(c, &p, 0.25, &err), 0);
    const float once = (float)(0.99 + 0.0025);
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < ctaug_op_args(op); a++)
            for (int b = 0; b < ctaug_op_bins(op, a); b++) {
                int hit = (op == rotate && b == 8) || (op == rescale && a == 0 && b == 15) ||
                          (op == rescale && a == 1 && b == 5);
                assert_true(ctaug_rate(c, op, a, b) == (hit ? once : 1.0f));
            }
    /* The same op twice in one policy updates twice. */
    struct ctaug_policy twice = {2, {{rotate, {0.5}}, {rotate, {0.52}}}};
    assert_int_equal(ctaug_feedback(c, &twice, 1.0, &err), 0);
    float want = (float)((double)once * 0.99 + 0.01 * 1.0);
    want = (float)((double)want * 0.99 + 0.01 * 1.0);
    assert_true(ctaug_rate(c, rotate, 0, 8) == want);

    /* Refusals leave every rate as it was. */
    struct ctaug_policy bad = {1, {{rotate, {1.5}}}};
    assert_int_equal(ctaug_feedback(c, &bad, 0.5, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "policy/0/1/0"));
    assert_int_equal(ctaug_feedback(c, &p, 1.5, &err), -1);
    assert_non_null(strstr(err.message, "proximity"));
    assert_int_equal(ctaug_feedback(c, &p, NAN, &err), -1);
    assert_true(ctaug_rate(c, rotate, 0, 8) == want);
    ctaug_free(c);
}

static void test_proximity(void **state)
{
    (void)state;
    const double p[3] = {0.7, 0.2, 0.1};
    double v;
    assert_int_equal(ctaug_proximity(p, 3, 0, &v, NULL), 0);
    assert_true(fabs(v - (1 - 0.5 * (0.3 + 0.2 + 0.1))) < 1e-15);
    assert_int_equal(ctaug_proximity(p, 3, 2, &v, NULL), 0);
    assert_true(fabs(v - (1 - 0.5 * (0.7 + 0.2 + 0.9))) < 1e-15);
    struct eng_error err;
    assert_int_equal(ctaug_proximity(p, 3, 3, &v, &err), -1);
    assert_non_null(strstr(err.message, "label"));
    const double off[2] = {0.7, 0.7}, negative[2] = {1.2, -0.2};
    assert_int_equal(ctaug_proximity(off, 2, 0, &v, &err), -1);
    assert_non_null(strstr(err.message, "sum to"));
    assert_int_equal(ctaug_proximity(negative, 2, 0, &v, &err), -1);
    assert_non_null(strstr(err.message, "probabilities/0"));
}

/* Chi-square of counts against expected probabilities over the cells where q > 0; a cell with
 * q = 0 must stay empty. */
static double chi_square(const long *count, const double *q, int cells, long n)
{
    double x2 = 0;
    for (int k = 0; k < cells; k++) {
        if (q[k] == 0) {
            assert_int_equal(count[k], 0);
            continue;
        }
        double e = q[k] * (double)n;
        x2 += (count[k] - e) * (count[k] - e) / e;
    }
    return x2;
}

/* 100000 policies from the edge state. Bounds are chi-square quantiles at 1 - 1e-6 (scipy's
 * chi2.ppf): 61.9 for the 19 ops (18 degrees of freedom), 40.5 for rotate's 8 live bins (7), so
 * a correct sampler fails one in a million seeds, and the seeds here are fixed. */
static void test_sampling_frequencies(void **state)
{
    (void)state;
    json_t *doc = algorithm();
    struct ctaug *c = ctaug_from_json(json_object_get(doc, "edge_state"), NULL);
    const int rotate = ctaug_op_find("rotate");
    long ops[CTAUG_OPS] = {0}, bins[17] = {0}, n_ops = 0, n_rotate = 0, low_r = 0;
    for (uint32_t s = 0; s < 100000; s++) {
        struct ctaug_policy p;
        ctaug_draw(c, 0, 42, 0, s, &p);
        assert_int_equal(p.count, 2);
        for (int i = 0; i < p.count; i++) {
            ops[p.ops[i].op]++;
            n_ops++;
            if (p.ops[i].op != rotate) continue;
            double v = p.ops[i].value[0] * 17;
            bins[(int)v]++;
            low_r += v - (int)v < 0.5;
            n_rotate++;
        }
    }
    double uniform[CTAUG_OPS], q[17];
    for (int k = 0; k < CTAUG_OPS; k++)
        uniform[k] = 1.0 / CTAUG_OPS;
    float qf[17];
    ctaug_probabilities(c, rotate, 0, qf);
    for (int b = 0; b < 17; b++)
        q[b] = qf[b];
    double x_ops = chi_square(ops, uniform, CTAUG_OPS, n_ops);
    double x_bins = chi_square(bins, q, 17, n_rotate);
    if (x_ops > 61.9 || x_bins > 40.5) fail_msg("chi-square ops %g, rotate bins %g", x_ops, x_bins);
    /* r ~ U[0, 1) within the bin: half below 0.5, within 5 standard deviations. */
    assert_true(fabs(low_r - n_rotate / 2.0) < 5 * sqrt(n_rotate / 4.0));
    ctaug_free(c);
    json_decref(doc);
}

/* Probes ignore the rates: with rotate's bins mostly cut by the edge state, its probe values
 * still fill all tenths of [0, 1) evenly (chi-square bound 44.8: 9 degrees of freedom at
 * 1 - 1e-6). */
static void test_probe_uniform(void **state)
{
    (void)state;
    json_t *doc = algorithm();
    struct ctaug *c = ctaug_from_json(json_object_get(doc, "edge_state"), NULL);
    long tenths[10] = {0}, n = 0;
    for (uint32_t s = 0; s < 100000; s++) {
        struct ctaug_policy p;
        ctaug_draw(c, 1, 7, 3, s, &p);
        for (int i = 0; i < p.count; i++)
            for (int a = 0; a < ctaug_op_args(p.ops[i].op); a++) {
                assert_true(p.ops[i].value[a] >= 0 && p.ops[i].value[a] < 1);
                tenths[(int)(p.ops[i].value[a] * 10)]++;
                n++;
            }
    }
    double q[10];
    for (int k = 0; k < 10; k++)
        q[k] = 0.1;
    double x2 = chi_square(tenths, q, 10, n);
    if (x2 > 44.8) fail_msg("chi-square of probe values %g", x2);
    ctaug_free(c);
    json_decref(doc);
}

static int same_policy(const struct ctaug_policy *a, const struct ctaug_policy *b)
{
    if (a->count != b->count) return 0;
    for (int i = 0; i < a->count; i++)
        if (a->ops[i].op != b->ops[i].op || a->ops[i].value[0] != b->ops[i].value[0] ||
            a->ops[i].value[1] != b->ops[i].value[1])
            return 0;
    return 1;
}

/* The same (seed, input, sample) and state draw the same policy and pixels; another sample
 * draws another. */
static void test_seeded(void **state)
{
    (void)state;
    struct ctaug *c = ctaug_new(NULL, NULL);
    struct ctaug_policy a, b, other;
    ctaug_draw(c, 0, 99, 1, 2, &a);
    ctaug_draw(c, 0, 99, 1, 2, &b);
    ctaug_draw(c, 0, 99, 1, 3, &other);
    assert_true(same_policy(&a, &b));
    assert_false(same_policy(&a, &other));
    struct img *im = fixture_pattern(32, 32, 3, 0);
    struct eng_error err;
    struct img *x = ctaug_apply(&a, im, 1, 99, 1, 2, &err);
    struct img *y = ctaug_apply(&a, im, 1, 99, 1, 2, &err);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(fixture_diff(x, y, 0, NULL), 0);
    img_free(x);
    img_free(y);
    img_free(im);
    ctaug_free(c);
}

/* The grey square's box in an image that was all 200: -1 when there is none. */
static int grey_box(const struct img *im, int *x0, int *y0, int *x1, int *y1)
{
    *x0 = *y0 = 1 << 20;
    *x1 = *y1 = -1;
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width; x++) {
            const uint8_t *p = img_row(im, y) + x * 3;
            if (p[0] != 127) continue;
            *x0 = x < *x0 ? x : *x0;
            *y0 = y < *y0 ? y : *y0;
            *x1 = x + 1 > *x1 ? x + 1 : *x1;
            *y1 = y + 1 > *y1 ? y + 1 : *y1;
        }
    if (*x1 < 0) return -1;
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width; x++) {
            const uint8_t *p = img_row(im, y) + x * 3;
            int inside = x >= *x0 && x < *x1 && y >= *y0 && y < *y1;
            uint8_t v = inside ? 127 : 200;
            assert_true(p[0] == v && p[1] == v && p[2] == v);
        }
    return 0;
}

/* The side along one axis: size // 2 on each side of the centre, cut by the image's edges. */
static void expect_side(int lo, int hi, int extent, int half)
{
    if (lo > 0 && hi < extent)
        assert_int_equal(hi - lo, 2 * half);
    else
        assert_true(hi - lo >= half && hi - lo <= 2 * half);
}

/* FixMatch's strong-view cutout is 16 x 16 on 32 x 32 (1 + int(32 * 0.499) = 16); cutout at
 * level 0.5 on 40 x 32 is 8 x 8 (1 + int(0.5 * 32 * 0.499) = 8); level 0 is 1 pixel wide, which
 * the reference's [c - 0, c + 0) leaves empty. */
static void test_cutout(void **state)
{
    (void)state;
    struct img *flat = img_new(32, 32, 3, NULL), *wide = img_new(40, 32, 3, NULL);
    memset(flat->data, 200, 32 * 32 * 3);
    memset(wide->data, 200, 40 * 32 * 3);
    struct ctaug_policy none = {0}, half = {1, {{ctaug_op_find("cutout"), {0.5}}}};
    struct ctaug_policy zero = {1, {{ctaug_op_find("cutout"), {0.0}}}};
    struct eng_error err;
    int x0, y0, x1, y1, first_x0 = -1, moved = 0;
    for (uint32_t s = 0; s < 40; s++) {
        struct img *out = ctaug_apply(&none, flat, 1, 5, 0, s, &err);
        assert_int_equal(grey_box(out, &x0, &y0, &x1, &y1), 0);
        expect_side(x0, x1, 32, 8);
        expect_side(y0, y1, 32, 8);
        moved |= first_x0 >= 0 && x0 != first_x0;
        first_x0 = first_x0 < 0 ? x0 : first_x0;
        img_free(out);
        out = ctaug_apply(&half, wide, 0, 5, 0, s, &err);
        assert_int_equal(grey_box(out, &x0, &y0, &x1, &y1), 0);
        expect_side(x0, x1, 40, 4);
        expect_side(y0, y1, 32, 4);
        img_free(out);
        out = ctaug_apply(&zero, wide, 0, 5, 0, s, &err);
        assert_int_equal(fixture_diff(out, wide, 0, NULL), 0);
        img_free(out);
    }
    assert_true(moved);
    struct img *gray = img_new(8, 8, 1, NULL);
    memset(gray->data, 0, 64);
    assert_null(ctaug_apply(&none, gray, 1, 5, 0, 0, &err));
    assert_int_equal(err.code, ENG_UNSUPPORTED);
    img_free(gray);
    img_free(flat);
    img_free(wide);
}

/* Every op at levels 0, 0.5 and 1 (both arguments) on images down to one pixel, and with the
 * strong cutout: an image of the input's size, the input untouched. */
static void test_every_op_small_images(void **state)
{
    (void)state;
    static const int sizes[][2] = {{1, 1}, {1, 7}, {7, 1}, {3, 3}, {5, 4}};
    static const double levels[] = {0.0, 0.5, 1.0};
    struct eng_error err;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        struct img *in = fixture_pattern(sizes[k][0], sizes[k][1], 3, 2);
        struct img *copy = img_clone(in, NULL);
        for (int op = 0; op < CTAUG_OPS; op++)
            for (size_t l = 0; l < 3; l++) {
                struct ctaug_policy p = {1, {{op, {levels[l], levels[l]}}}};
                struct img *out = ctaug_apply(&p, in, 1, 11, 0, (uint32_t)l, &err);
                if (!out)
                    fail_msg("%s at %g on %dx%d: %s", ctaug_op_name(op), levels[l], sizes[k][0],
                             sizes[k][1], err.message);
                assert_int_equal(out->width, in->width);
                assert_int_equal(out->height, in->height);
                assert_int_equal(out->channels, 3);
                img_free(out);
            }
        assert_int_equal(fixture_diff(in, copy, 0, NULL), 0);
        img_free(copy);
        img_free(in);
    }
}

/* A state after feedback, through text and back: the same rates to the bit, the same document. */
static void test_json_round_trip(void **state)
{
    (void)state;
    json_t *doc = algorithm();
    struct ctaug *c = ctaug_new(NULL, NULL);
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(doc, "updates"), i, u)
    {
        struct ctaug_policy policy;
        ctaug_policy_from_json(json_object_get(u, "policy"), &policy, NULL);
        ctaug_feedback(c, &policy, json_number_value(json_object_get(u, "proximity")), NULL);
    }
    json_t *saved = ctaug_to_json(c);
    char *text = json_dumps(saved, JSON_COMPACT);
    json_t *loaded = json_loads(text, 0, NULL);
    struct eng_error err;
    struct ctaug *back = ctaug_from_json(loaded, &err);
    if (!back) fail_msg("%s", err.message);
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < ctaug_op_args(op); a++)
            for (int b = 0; b < ctaug_op_bins(op, a); b++)
                assert_true(ctaug_rate(back, op, a, b) == ctaug_rate(c, op, a, b));
    json_t *again = ctaug_to_json(back);
    assert_true(json_equal(saved, again));
    /* The probabilities have the rates' shape. */
    json_t *q = ctaug_probabilities_to_json(c);
    assert_int_equal(json_array_size(json_array_get(json_object_get(q, "rescale"), 1)), 6);
    assert_int_equal(json_array_size(json_object_get(q, "identity")), 0);
    json_decref(q);
    json_decref(again);
    ctaug_free(back);
    json_decref(loaded);
    free(text);
    json_decref(saved);
    ctaug_free(c);
    json_decref(doc);
}

/* Sets (value NULL: deletes) the node at path ("rates/rotate/0/3": object keys and array
 * indexes) of doc. */
static void edit(json_t *doc, const char *path, json_t *value)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *node = doc;
    char *key = strtok(buf, "/"), *next;
    for (; (next = strtok(NULL, "/")); key = next)
        node = json_is_array(node) ? json_array_get(node, strtoul(key, NULL, 10))
                                   : json_object_get(node, key);
    if (json_is_array(node))
        json_array_set_new(node, strtoul(key, NULL, 10), value);
    else if (value)
        json_object_set_new(node, key, value);
    else
        json_object_del(node, key);
}

/* A fresh state's document with the node at path set to value (JSON text; NULL deletes it),
 * which ctaug_from_json must refuse with message. */
static void expect_state_refused(const char *path, const char *value, const char *message)
{
    struct ctaug *c = ctaug_new(NULL, NULL);
    json_t *doc = ctaug_to_json(c);
    ctaug_free(c);
    edit(doc, path, value ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL);
    struct eng_error err;
    c = ctaug_from_json(doc, &err);
    if (c) fail_msg("accepted; expected \"%s\"", message);
    assert_int_equal(err.code, ENG_INVALID);
    if (!strstr(err.message, message)) fail_msg("\"%s\" lacks \"%s\"", err.message, message);
    json_decref(doc);
}

static void test_json_refusals(void **state)
{
    (void)state;
    expect_state_refused("rates/Rotate", "[[1]]", "rates/Rotate: no such op");
    expect_state_refused("rates/solarize", NULL, "rates/solarize: an array of 1 argument");
    expect_state_refused("rates/rescale/1", "[1, 1, 1, 1, 1]",
                         "rates/rescale/1: an array of 6 rates");
    expect_state_refused("rates/posterize/0", "[1, 1, 1, 1, 1, 1, 1, 1, 1]",
                         "rates/posterize/0: an array of 8 rates");
    expect_state_refused("rates/rotate/0/3", "1.5",
                         "rates/rotate/0/3: a rate is a number in [0, 1]");
    expect_state_refused("rates/rotate/0/3", "-0.01", "rates/rotate/0/3");
    expect_state_refused("rates/rotate/0/3", "\"1\"", "rates/rotate/0/3");
    expect_state_refused("rates/rotate/0/3", "1e300", "rates/rotate/0/3");
    expect_state_refused("rates/identity", "[[1]]", "rates/identity: an array of 0 argument");
    expect_state_refused("decay", "1", "decay: 1 is not in (0, 1)");
    expect_state_refused("threshold", "-0.5", "threshold");
    expect_state_refused("depth", "0", "depth: an integer in 1..8");
    expect_state_refused("depth", "2.0", "depth: an integer");
    expect_state_refused("seed", "1", "state/seed: unknown key");
    expect_state_refused("rates", NULL, "state/rates: an object of ops");
    struct eng_error err;
    json_t *text = json_string("randaugment");
    assert_null(ctaug_from_json(text, &err));
    assert_non_null(strstr(err.message, "an object is required"));
    json_decref(text);
}

static void expect_policy_refused(const char *text, const char *message)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    struct ctaug_policy p;
    struct eng_error err;
    assert_int_equal(ctaug_policy_from_json(doc, &p, &err), -1);
    if (!strstr(err.message, message)) fail_msg("\"%s\" lacks \"%s\"", err.message, message);
    json_decref(doc);
}

static void test_policy_json(void **state)
{
    (void)state;
    struct ctaug *c = ctaug_new(NULL, NULL);
    for (uint32_t s = 0; s < 50; s++) {
        struct ctaug_policy p, back;
        ctaug_draw(c, (int)(s % 2), 3, 0, s, &p);
        json_t *doc = ctaug_policy_to_json(&p);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_t *loaded = json_loads(text, 0, NULL);
        assert_int_equal(ctaug_policy_from_json(loaded, &back, NULL), 0);
        assert_true(same_policy(&p, &back));
        json_decref(loaded);
        free(text);
        json_decref(doc);
    }
    ctaug_free(c);
    expect_policy_refused("[[\"Rotate\", [0.5]]]", "policy/0: [op, [values]]");
    expect_policy_refused("[[\"rotate\", [0.5]], [\"rescale\", [0.5]]]",
                          "policy/1/1: rescale takes 2 value(s)");
    expect_policy_refused("[[\"identity\", [0.5]]]", "policy/0/1: identity takes 0");
    expect_policy_refused("[[\"rotate\", [1.5]]]", "policy/0/1/0");
    expect_policy_refused("[[\"rotate\", [\"0.5\"]]]", "policy/0/1/0: a number");
    expect_policy_refused("{\"rotate\": [0.5]}", "policy: an array");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_feedback_sequence),
        cmocka_unit_test(test_threshold_edge),
        cmocka_unit_test(test_probabilities_by_hand),
        cmocka_unit_test(test_feedback_by_hand),
        cmocka_unit_test(test_proximity),
        cmocka_unit_test(test_sampling_frequencies),
        cmocka_unit_test(test_probe_uniform),
        cmocka_unit_test(test_seeded),
        cmocka_unit_test(test_cutout),
        cmocka_unit_test(test_every_op_small_images),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_refusals),
        cmocka_unit_test(test_policy_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
