/* The policy graph: parsing with JSON-pointer errors, sampling semantics and frequencies, and the
 * presets against torchvision's tables (fixtures/presets/presets.json, from gen_presets.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cancel.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "testutil.h"

static const char *fixtures_dir;

static void test_errors_name_the_node(void **state)
{
    tu_expect_policy_invalid(
        "{\"seq\": [{\"op\": \"Identity\"}, {\"op\": \"Rotate\", \"degrees\": 500}]}",
        "/seq/1/degrees: must be in [-360, 360]");
    tu_expect_policy_invalid("{\"op\": \"Spin\"}", "/op: unknown op \"Spin\"");
    tu_expect_policy_invalid("{\"op\": \"Invert\", \"degrees\": 3}", "/degrees: unknown key");
    tu_expect_policy_invalid("{\"op\": \"Invert\", \"level\": 0.5}",
                             "/level: Invert takes no level");
    tu_expect_policy_invalid("{\"op\": \"Rotate\", \"level\": 1.5}", "/level: must be in [0, 1]");
    tu_expect_policy_invalid("{\"op\": \"Rotate\", \"level\": {\"bin\": 31, \"bins\": 31}}",
                             "\"bin\" must");
    tu_expect_policy_invalid("{\"op\": \"Posterize\", \"bits\": 2.5}",
                             "/bits: must be a whole number");
    tu_expect_policy_invalid("{\"op\": \"Invert\", \"fill\": 3}", "/fill: unknown key");
    tu_expect_policy_invalid("{\"op\": \"Rotate\", \"fill\": [1, 2, 300]}", "/fill: must be");
    tu_expect_policy_invalid("{\"choice\": [{\"op\": \"Invert\"}], \"weights\": [1, 2]}",
                             "/weights: must hold one number per choice (1)");
    tu_expect_policy_invalid("{\"choice\": []}", "/choice: must be a non-empty array");
    tu_expect_policy_invalid("{\"p\": 1.5, \"do\": {\"op\": \"Invert\"}}", "/p: must be in [0, 1]");
    tu_expect_policy_invalid("{\"p\": 0.5}", "/do: is missing");
    tu_expect_policy_invalid("{\"repeat\": 17, \"do\": {\"op\": \"Invert\"}}", "/repeat: must be");
    tu_expect_policy_invalid("{\"mix\": [{\"op\": \"Invert\"}], \"alpha\": 0}",
                             "/alpha: must be in");
    tu_expect_policy_invalid("{\"seq\": [{\"p\": 0.5, \"do\": {\"seq\": [{\"op\": \"X\"}]}}]}",
                             "/seq/0/do/seq/0/op: unknown op");
    tu_expect_policy_invalid(
        "{\"dag\": {\"start\": \"a\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"p\": "
        "1}, {\"from\": \"b\", \"to\": \"a\", \"p\": 1}]}}",
        "/dag: the edges form a cycle");
    tu_expect_policy_invalid(
        "{\"dag\": {\"start\": \"a\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"p\": "
        "0.5}, {\"from\": \"a\", \"to\": \"c\", \"p\": 0.4}]}}",
        "vertex \"a\" have probabilities summing to 0.9, not 1");
    tu_expect_policy_invalid(
        "{\"dag\": {\"start\": \"a\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"p\": "
        "1, \"do\": {\"op\": \"Rotate\", \"degrees\": \"x\"}}]}}",
        "/dag/edges/0/do/degrees: must be a number");
    /* A start that no edge names, among edges or with none. */
    tu_expect_policy_invalid(
        "{\"dag\": {\"start\": \"s\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"p\": 1}]}}",
        "/dag/start: \"s\" is not a vertex of the graph: no edge goes from or to it");
    tu_expect_policy_invalid("{\"dag\": {\"start\": \"a\", \"edges\": []}}",
                             "/dag/start: \"a\" is not a vertex of the graph");
    tu_expect_policy_invalid("{\"preset\": \"randaugment\", \"m\": 31}",
                             "\"m\" must be a whole number in [0, 30]");
    tu_expect_policy_invalid("{\"preset\": \"nope\"}", "unknown preset \"nope\"");
    tu_expect_policy_invalid("[1, 2]", "must be a node");
    tu_expect_policy_invalid("{\"nothing\": 1}", "must have one of");
    /* Nesting deeper than the limit, and a repeat product past the trace cap. */
    char deep[2048] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"seq\": [");
    strcat(deep, "{\"op\": \"Invert\"}");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]}");
    tu_expect_policy_invalid(deep, "deeper than");
}

static void test_trace_cap(void **state)
{
    struct policy *p =
        tu_parse_policy("{\"repeat\": 16, \"do\": {\"repeat\": 16, \"do\": {\"repeat\": 16, "
                        "\"do\": {\"op\": \"Invert\"}}}}");
    struct eng_error err = {0};
    struct trace *t = policy_sample(p, 1, 0, 0, 10, 10, &err);
    assert_null(t);
    assert_int_equal(err.code, ENG_TOO_LARGE);
    policy_free(p);
}

/* What a trace costs, from the sizes its sampling saw: each op's output summed, the largest
 * output and who makes it, against hand-computed sizes. */
static void test_trace_cost(void **state)
{
    struct eng_error err = {0};
    /* 10x10 -> Resize 20x30 (600) -> Rotate keeps it (600) -> CenterCrop 5x4 (20). */
    struct policy *p = tu_parse_policy(
        "{\"seq\": [{\"op\": \"Resize\", \"height\": 20, \"width\": 30}, {\"op\": "
        "\"Rotate\", \"degrees\": 5}, {\"op\": \"CenterCrop\", \"height\": 4, \"width\": 5}]}");
    struct trace *t = policy_sample(p, 1, 0, 0, 10, 10, &err);
    assert_non_null(t);
    struct trace_cost c = trace_cost(t);
    assert_true(c.work == 600 + 600 + 20);
    assert_true(c.peak == 600);
    assert_int_equal(c.peak_width, 30);
    assert_int_equal(c.peak_height, 20);
    assert_string_equal(c.peak_op, "Resize");
    trace_free(t);
    policy_free(p);

    /* A crop that grows a 1x1 image: the trace says so before any pixel exists. */
    p = tu_parse_policy("{\"op\": \"CenterCrop\", \"height\": 16384, \"width\": 16384}");
    t = policy_sample(p, 1, 0, 0, 1, 1, &err);
    c = trace_cost(t);
    assert_true(c.peak == 16384.0 * 16384.0);
    assert_string_equal(c.peak_op, "CenterCrop");
    trace_free(t);
    policy_free(p);

    /* A mix on 8x8: its branches' ops (Invert 64; FlipLR and FlipUD 64 each) and a blend of the
     * image with each of the two branches plus the result (3 x 64). */
    p = tu_parse_policy("{\"mix\": [{\"op\": \"Invert\"}, {\"seq\": [{\"op\": \"FlipLR\"}, "
                        "{\"op\": \"FlipUD\"}]}], \"alpha\": 1}");
    t = policy_sample(p, 1, 0, 0, 8, 8, &err);
    c = trace_cost(t);
    assert_true(c.work == 3 * 64 + 3 * 64);
    assert_true(c.peak == 64);
    trace_free(t);
    policy_free(p);

    /* No op applied at all: no work, no peak. */
    p = tu_parse_policy("{\"p\": 0, \"do\": {\"op\": \"Invert\"}}");
    t = policy_sample(p, 1, 0, 0, 8, 8, &err);
    c = trace_cost(t);
    assert_true(c.work == 0 && c.peak == 0);
    assert_null(c.peak_op);
    trace_free(t);
    policy_free(p);
}

/* A check that lets `left` polls pass, then stops the work. */
static int stop_after(void *ctx, struct eng_error *err)
{
    int *left = ctx;
    if ((*left)-- > 0) return 0;
    return eng_fail(err, ENG_CANCELLED, "stopped by the test");
}

/* Execution asks the installed check before each op: stopped after two of five ops, it fails
 * with the check's error; with no check installed the same trace runs to its end. */
static void test_execution_stops_between_ops(void **state)
{
    struct policy *p = tu_parse_policy("{\"repeat\": 5, \"do\": {\"op\": \"Invert\"}}");
    struct eng_error err = {0};
    struct trace *t = policy_sample(p, 1, 0, 0, 4, 4, &err);
    struct img *in = img_new(4, 4, 3, &err);
    memset(in->data, 10, in->stride * 4);
    int left = 2;
    struct eng_cancel stop = {stop_after, &left};
    eng_cancel_install(&stop);
    struct img *out = trace_apply(t, in, 1, 0, 0, &err);
    eng_cancel_install(NULL);
    assert_null(out);
    assert_int_equal(err.code, ENG_CANCELLED);
    assert_string_equal(err.message, "stopped by the test");
    assert_int_equal(left, -1); /* two ops ran, the third poll stopped it */
    out = trace_apply(t, in, 1, 0, 0, &err);
    assert_non_null(out);
    assert_int_equal(out->data[0], 255 - 10); /* an odd number of inversions */
    img_free(out);
    img_free(in);
    trace_free(t);
    policy_free(p);
}

static json_t *sample_json(const struct policy *p, uint64_t seed, uint32_t input, uint32_t sample,
                           int width, int height)
{
    struct eng_error err = {0};
    struct trace *t = policy_sample(p, seed, input, sample, width, height, &err);
    if (!t) fail_msg("sampling failed: %s", err.message);
    json_t *j = trace_to_json(t);
    trace_free(t);
    return j;
}

static void test_determinism(void **state)
{
    struct policy *p = tu_parse_policy("randaugment");
    int differing = 0;
    for (uint32_t s = 0; s < 50; s++) {
        json_t *a = sample_json(p, 77, 3, s, 64, 48), *b = sample_json(p, 77, 3, s, 64, 48);
        json_t *other = sample_json(p, 77, 3, s + 1000, 64, 48);
        assert_true(json_equal(a, b));
        differing += !json_equal(a, other);
        json_decref(a);
        json_decref(b);
        json_decref(other);
    }
    /* Two RandAugment draws coincide with probability about 1/196 per op pair and sign. */
    assert_true(differing >= 45);
    policy_free(p);
}

/* Counts how often each choice is taken; checks the frequencies against the weights. */
static void test_choice_and_probability(void **state)
{
    struct policy *p = tu_parse_policy("{\"choice\": [{\"op\": \"Invert\"}, {\"op\": \"FlipLR\"}, "
                                       "{\"op\": \"FlipUD\"}], \"weights\": [1, 2, 5]}");
    enum { N = 16000 };
    long counts[3] = {0};
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 5, 0, s, 8, 8);
        assert_int_equal(json_array_size(t), 1);
        const char *op = json_string_value(json_object_get(json_array_get(t, 0), "op"));
        counts[strcmp(op, "Invert") == 0 ? 0 : strcmp(op, "FlipLR") == 0 ? 1 : 2]++;
        json_decref(t);
    }
    double expected[3] = {N / 8.0, 2 * N / 8.0, 5 * N / 8.0}, x2 = 0;
    for (int i = 0; i < 3; i++)
        x2 += (counts[i] - expected[i]) * (counts[i] - expected[i]) / expected[i];
    assert_true(x2 < 13.82); /* 2 degrees of freedom, p = 0.001 */
    policy_free(p);

    p = tu_parse_policy("{\"p\": 0.3, \"do\": {\"op\": \"Invert\"}}");
    long applied = 0;
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 6, 0, s, 8, 8);
        applied += json_array_size(t);
        json_decref(t);
    }
    assert_true(fabs(applied - 0.3 * N) < 5 * sqrt(N * 0.3 * 0.7));
    policy_free(p);

    p = tu_parse_policy("{\"seq\": [{\"p\": 0, \"do\": {\"op\": \"Invert\"}}, {\"p\": 1, \"do\": "
                        "{\"repeat\": 3, \"do\": {\"op\": \"FlipLR\"}}}]}");
    json_t *t = sample_json(p, 7, 0, 0, 8, 8);
    assert_int_equal(json_array_size(t), 3);
    json_decref(t);
    policy_free(p);
}

static void test_dag_walk(void **state)
{
    /* a -> b (0.25, Invert) -> end (FlipUD); a -> end (0.75, FlipLR) */
    struct policy *p = tu_parse_policy(
        "{\"dag\": {\"start\": \"a\", \"edges\": ["
        "{\"from\": \"a\", \"to\": \"b\", \"p\": 0.25, \"do\": {\"op\": \"Invert\"}},"
        "{\"from\": \"a\", \"to\": \"end\", \"p\": 0.75, \"do\": {\"op\": \"FlipLR\"}},"
        "{\"from\": \"b\", \"to\": \"end\", \"p\": 1, \"do\": {\"op\": \"FlipUD\"}}]}}");
    enum { N = 8000 };
    long through_b = 0;
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 8, 0, s, 8, 8);
        const char *first = json_string_value(json_object_get(json_array_get(t, 0), "op"));
        if (strcmp(first, "Invert") == 0) {
            through_b++;
            assert_int_equal(json_array_size(t), 2);
            assert_string_equal(json_string_value(json_object_get(json_array_get(t, 1), "op")),
                                "FlipUD");
        } else {
            assert_int_equal(json_array_size(t), 1);
            assert_string_equal(first, "FlipLR");
        }
        json_decref(t);
    }
    assert_true(fabs(through_b - 0.25 * N) < 5 * sqrt(N * 0.25 * 0.75));
    policy_free(p);
}

static void test_mix(void **state)
{
    struct policy *p =
        tu_parse_policy("{\"mix\": [{\"op\": \"Invert\"}, {\"seq\": [{\"op\": \"FlipLR\"}, "
                        "{\"op\": \"FlipUD\"}]}], \"alpha\": 1}");
    double m_sum = 0;
    enum { N = 4000 };
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 9, 0, s, 8, 8);
        json_t *mix = json_object_get(json_array_get(t, 0), "mix");
        double m = json_real_value(json_object_get(mix, "m"));
        json_t *w = json_object_get(mix, "weights");
        assert_true(m >= 0 && m <= 1);
        assert_true(fabs(json_real_value(json_array_get(w, 0)) +
                         json_real_value(json_array_get(w, 1)) - 1) < 1e-12);
        assert_int_equal(json_array_size(json_array_get(json_object_get(mix, "branches"), 1)), 2);
        m_sum += m;
        json_decref(t);
    }
    /* Beta(1, 1) is uniform: mean 1/2, variance 1/12. */
    assert_true(fabs(m_sum / N - 0.5) < 5 * sqrt(1.0 / 12 / N));
    policy_free(p);
}

/* AugMix's blend on pixels: (1 - m) x + m (w0 Invert(x) + w1 FlipLR(x)), accumulated in float
 * and truncated as torchvision's tensor path does. */
static void test_mix_pixels(void **state)
{
    struct policy *p =
        tu_parse_policy("{\"mix\": [{\"op\": \"Invert\"}, {\"op\": \"FlipLR\"}], \"alpha\": 0.7}");
    struct img *in = img_new(5, 3, 3, NULL);
    assert_non_null(in);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 15; x++)
            img_row(in, y)[x] = (uint8_t)(17 * x + 40 * y + 3);
    struct eng_error err = {0};
    for (uint32_t s = 0; s < 20; s++) {
        struct trace *t = policy_sample(p, 21, 0, s, 5, 3, &err);
        assert_non_null(t);
        json_t *j = trace_to_json(t);
        json_t *mix = json_object_get(json_array_get(j, 0), "mix");
        float m = (float)json_real_value(json_object_get(mix, "m"));
        json_t *w = json_object_get(mix, "weights");
        float w0 = (float)(json_real_value(json_object_get(mix, "m")) *
                           json_real_value(json_array_get(w, 0)));
        float w1 = (float)(json_real_value(json_object_get(mix, "m")) *
                           json_real_value(json_array_get(w, 1)));
        struct img *out = trace_apply(t, in, 21, 0, s, &err);
        assert_non_null(out);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 5; x++)
                for (int c = 0; c < 3; c++) {
                    float v = (float)(1.0 - json_real_value(json_object_get(mix, "m"))) *
                                  img_row(in, y)[3 * x + c] +
                              w0 * (255 - img_row(in, y)[3 * x + c]);
                    v += w1 * img_row(in, y)[3 * (4 - x) + c];
                    int expected = v <= 0 ? 0 : v >= 255 ? 255 : (int)v;
                    assert_int_equal(img_row(out, y)[3 * x + c], expected);
                }
        (void)m;
        img_free(out);
        json_decref(j);
        trace_free(t);
    }
    img_free(in);
    policy_free(p);
}

/* Colour ops see RGB only on RGBA images; alpha comes through unchanged. */
static void test_color_ops_keep_alpha(void **state)
{
    struct img *in = img_new(4, 2, 4, NULL);
    assert_non_null(in);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 16; x++)
            img_row(in, y)[x] = (uint8_t)(31 * x + 7 * y);
    static const char *const policies[] = {"{\"op\": \"Invert\"}", "{\"op\": \"Grayscale\"}",
                                           "{\"op\": \"Posterize\", \"bits\": 2}"};
    for (size_t i = 0; i < 3; i++) {
        struct policy *p = tu_parse_policy(policies[i]);
        struct eng_error err = {0};
        struct trace *t = policy_sample(p, 1, 0, 0, 4, 2, &err);
        struct img *out = t ? trace_apply(t, in, 1, 0, 0, &err) : NULL;
        if (!out) fail_msg("%s: %s", policies[i], err.message);
        assert_int_equal(out->channels, 4);
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 4; x++) {
                const uint8_t *a = img_row(in, y) + 4 * x, *b = img_row(out, y) + 4 * x;
                assert_int_equal(b[3], a[3]);
                int gray = (a[0] * 19595 + a[1] * 38470 + a[2] * 7471 + 0x8000) >> 16;
                for (int c = 0; c < 3; c++) {
                    int expected = i == 0 ? 255 - a[c] : i == 1 ? gray : a[c] & 0xc0;
                    assert_int_equal(b[c], expected);
                }
            }
        img_free(out);
        trace_free(t);
        policy_free(p);
    }
    img_free(in);
}

static double arg_of(json_t *entry, const char *name)
{
    json_t *v = json_object_get(entry, name);
    if (!json_is_number(v)) fail_msg("trace entry lacks %s", name);
    return json_number_value(v);
}

/* Boxes as torchvision's RandomResizedCrop.get_params draws them; sizes flow to later ops. */
static void test_random_resized_crop(void **state)
{
    struct policy *p = tu_parse_policy("{\"seq\": [{\"op\": \"RandomResizedCrop\", \"height\": 10, "
                                       "\"width\": 20}, {\"op\": \"TranslateX\", \"level\": 1, "
                                       "\"random_sign\": false}]}");
    for (uint32_t s = 0; s < 2000; s++) {
        json_t *t = sample_json(p, 31, 0, s, 57, 41);
        json_t *crop = json_array_get(t, 0);
        double top = arg_of(crop, "top"), left = arg_of(crop, "left");
        double h = arg_of(crop, "crop_height"), w = arg_of(crop, "crop_width");
        assert_true(top >= 0 && left >= 0 && h >= 1 && w >= 1);
        assert_true(top + h <= 41 && left + w <= 57);
        /* Rounding moves area and ratio a little off their ranges; a pixel per side at most. */
        assert_true((w + 1) * (h + 1) >= 0.08 * 57 * 41);
        assert_true((w - 1) / (h + 1) <= 4.0 / 3.0 && (w + 1) / (h - 1 > 0 ? h - 1 : 1) >= 0.75);
        /* TranslateX's level scales with the width the crop produced: trunc(150/331 * 20). */
        assert_true(arg_of(json_array_get(t, 1), "pixels") == 9);
        json_decref(t);
    }
    policy_free(p);
    /* No attempt fits a 2:1 crop of the whole area in a square: the fallback centre crop keeps
     * the width and takes round(w / 2) rows. */
    p = tu_parse_policy("{\"op\": \"RandomResizedCrop\", \"scale_min\": 1, \"ratio_min\": 2, "
                        "\"ratio_max\": 2}");
    json_t *t = sample_json(p, 32, 0, 0, 33, 33);
    json_t *crop = json_array_get(t, 0);
    assert_true(arg_of(crop, "crop_width") == 33 && arg_of(crop, "crop_height") == 16);
    assert_true(arg_of(crop, "top") == 8 && arg_of(crop, "left") == 0);
    json_decref(t);
    policy_free(p);
    tu_expect_policy_invalid("{\"op\": \"RandomResizedCrop\", \"top\": 3}",
                             "/top: is drawn at random");
}

/* FixMatch's weak translate: reflect-pad by 4 then a uniform 32x32 crop: offsets in [0, 8]. */
static void test_random_crop(void **state)
{
    struct policy *p = tu_parse_policy("{\"op\": \"RandomCrop\", \"padding_fraction\": 0.125, "
                                       "\"mode\": \"reflect\"}");
    enum { N = 9000 };
    long counts[9] = {0};
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 33, 0, s, 32, 32);
        json_t *crop = json_array_get(t, 0);
        assert_true(arg_of(crop, "pad") == 4);
        assert_true(arg_of(crop, "height") == 32 && arg_of(crop, "width") == 32);
        int top = (int)arg_of(crop, "top");
        assert_true(top >= 0 && top <= 8);
        counts[top]++;
        json_decref(t);
    }
    double x2 = 0;
    for (int i = 0; i < 9; i++)
        x2 += (counts[i] - N / 9.0) * (counts[i] - N / 9.0) / (N / 9.0);
    assert_true(x2 < 26.12); /* 8 degrees of freedom, p = 0.001 */
    policy_free(p);
    p = tu_parse_policy("{\"op\": \"RandomCrop\", \"height\": 50, \"width\": 10}");
    struct eng_error err = {0};
    assert_null(policy_sample(p, 1, 0, 0, 32, 32, &err));
    assert_int_equal(err.code, ENG_INVALID);
    policy_free(p);
}

/* Cutout's centre is uniform over the image; its side a share of the shorter side. */
static void test_cutout_and_erasing_draws(void **state)
{
    struct policy *p = tu_parse_policy("cutout");
    enum { N = 7000 };
    long columns[7] = {0};
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 41, 0, s, 7, 5);
        json_t *c = json_array_get(t, 0);
        int cx = (int)arg_of(c, "cx"), cy = (int)arg_of(c, "cy");
        assert_true(cx >= 0 && cx < 7 && cy >= 0 && cy < 5);
        assert_true(arg_of(c, "side") == 2); /* int(0.5 * 5) */
        columns[cx]++;
        json_decref(t);
    }
    double x2 = 0;
    for (int i = 0; i < 7; i++)
        x2 += (columns[i] - N / 7.0) * (columns[i] - N / 7.0) / (N / 7.0);
    assert_true(x2 < 22.46); /* 6 degrees of freedom, p = 0.001 */
    policy_free(p);
    tu_expect_policy_invalid("{\"preset\": \"cutout\", \"size_fraction\": 2}",
                             "/size_fraction: must be in [0, 1]");

    p = tu_parse_policy("{\"op\": \"RandomErasing\"}");
    int fitted = 0;
    for (uint32_t s = 0; s < 2000; s++) {
        json_t *t = sample_json(p, 42, 0, s, 40, 30);
        json_t *e = json_array_get(t, 0);
        double h = arg_of(e, "height"), w = arg_of(e, "width");
        double top = arg_of(e, "top"), left = arg_of(e, "left");
        if (h > 0) {
            fitted++;
            assert_true(h < 30 && w < 40 && top + h <= 30 && left + w <= 40);
            /* Rounding moves the area a little; a pixel per side at most. */
            assert_true((h + 1) * (w + 1) >= 0.02 * 1200 && (h - 1) * (w - 1) <= 0.33 * 1200);
        } else {
            assert_true(top == 0 && left == 0 && w == 0);
        }
        json_decref(t);
    }
    assert_true(fitted > 1900);
    policy_free(p);
}

/* Frequencies are drawn with probability proportional to 1 / |k|, DC excluded; signs are fair. */
static void test_fourier_draws(void **state)
{
    const int H = 6, W = 8;
    double total = 0;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            int ki = i <= H / 2 ? i : H - i, kj = j <= W / 2 ? j : W - j;
            if (i || j) total += 1 / sqrt((double)ki * ki + (double)kj * kj);
        }
    struct policy *p = tu_parse_policy("{\"op\": \"FourierNoise\", \"eps\": 1}");
    enum { N = 20000 };
    long lowest = 0, positive = 0;
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 43, 0, s, W, H);
        json_t *f = json_array_get(t, 0);
        int i = (int)arg_of(f, "i"), j = (int)arg_of(f, "j");
        assert_true(i >= 0 && i < H && j >= 0 && j < W && (i || j));
        lowest += i == 1 && j == 0;
        positive += arg_of(f, "sign_1") > 0;
        json_decref(t);
    }
    double p10 = 1 / total;
    assert_true(fabs(lowest - p10 * N) < 5 * sqrt(N * p10 * (1 - p10)));
    assert_true(fabs(positive - 0.5 * N) < 5 * sqrt(N * 0.25));
    policy_free(p);
    tu_expect_policy_invalid("{\"op\": \"FourierNoise\", \"sign_0\": 1}",
                             "/sign_0: is drawn at random");
}

static void test_fixmatch_strong(void **state)
{
    struct policy *p = tu_parse_policy("fixmatch-strong");
    for (uint32_t s = 0; s < 200; s++) {
        json_t *t = sample_json(p, 44, 0, s, 32, 32);
        assert_int_equal(json_array_size(t), 3);
        json_t *cut = json_array_get(t, 2);
        assert_string_equal(json_string_value(json_object_get(cut, "op")), "Cutout");
        assert_true(arg_of(cut, "side") == 16);
        assert_int_equal(json_integer_value(json_array_get(json_object_get(cut, "fill"), 0)), 127);
        json_decref(t);
    }
    policy_free(p);
}

/* The cache hands out references to one parsed policy per text; evicted policies stay usable
 * for as long as someone holds them (AddressSanitizer checks the frees). */
static void test_policy_cache(void **state)
{
    struct policy_cache *c = policy_cache_new(2);
    assert_non_null(c);
    struct eng_error err = {0};
    struct policy *a = policy_cache_parse(c, "randaugment", &err);
    struct policy *again = policy_cache_parse(c, "randaugment", &err);
    assert_non_null(a);
    assert_ptr_equal(a, again);
    struct policy *b = policy_cache_parse(c, "augmix", &err);
    struct policy *d = policy_cache_parse(c, "{\"op\": \"Invert\"}", &err); /* evicts one */
    assert_non_null(b);
    assert_non_null(d);
    json_t *t = sample_json(a, 1, 0, 0, 16, 16); /* a is still valid */
    assert_int_equal(json_array_size(t), 2);
    json_decref(t);
    assert_null(policy_cache_parse(c, "{\"op\": \"Nope\"}", &err));
    assert_int_equal(err.code, ENG_INVALID);
    policy_free(a);
    policy_free(again);
    policy_free(b);
    policy_free(d);
    policy_cache_free(c);
}

/* config/policy.schema.json lists exactly the presets the engine has. */
static void test_schema_lists_presets(void **state)
{
    json_t *schema = tu_load_json(fixtures_dir, "../../../config/policy.schema.json");
    json_t *preset_name = json_object_get(json_object_get(schema, "$defs"), "presetName");
    json_t *names =
        json_object_get(json_array_get(json_object_get(preset_name, "anyOf"), 0), "enum");
    size_t count;
    const struct preset_info *presets = preset_list(&count);
    assert_int_equal(json_array_size(names), count);
    for (size_t i = 0; i < count; i++) {
        int listed = 0;
        for (size_t k = 0; k < json_array_size(names); k++)
            listed |= strcmp(json_string_value(json_array_get(names, k)), presets[i].name) == 0;
        if (!listed)
            fail_msg("preset %s is missing from config/policy.schema.json", presets[i].name);
        struct policy *p = tu_parse_policy(presets[i].name);
        policy_free(p);
    }
    json_decref(schema);
}

/* AugMix's JSD mode: three views per sample, the clean image and two independent AugMix draws. */
static void test_views(void **state)
{
    struct policy *p = tu_parse_policy("{\"preset\": \"augmix\", \"jsd\": true}");
    assert_int_equal(policy_view_count(p), 3);
    struct eng_error err = {0};
    int differing = 0;
    for (uint32_t s = 0; s < 20; s++) {
        json_t *v[3];
        for (uint32_t k = 0; k < 3; k++) {
            struct trace *t = policy_sample_view(p, 5, 0, s, k, 16, 16, &err);
            assert_non_null(t);
            v[k] = trace_to_json(t);
            trace_free(t);
        }
        assert_string_equal(json_string_value(json_object_get(json_array_get(v[0], 0), "op")),
                            "Identity");
        assert_non_null(json_object_get(json_array_get(v[1], 0), "mix"));
        differing += !json_equal(v[1], v[2]);
        for (int k = 0; k < 3; k++)
            json_decref(v[k]);
    }
    assert_int_equal(differing, 20);
    assert_null(policy_sample_view(p, 5, 0, 0, 3, 16, 16, &err));
    policy_free(p);
    /* A one-view policy's view 0 is policy_sample. */
    p = tu_parse_policy("randaugment");
    assert_int_equal(policy_view_count(p), 1);
    struct trace *a = policy_sample_view(p, 6, 1, 2, 0, 16, 16, &err);
    json_t *ja = trace_to_json(a), *jb = sample_json(p, 6, 1, 2, 16, 16);
    assert_true(json_equal(ja, jb));
    json_decref(ja);
    json_decref(jb);
    trace_free(a);
    policy_free(p);
    tu_expect_policy_invalid("{\"seq\": [{\"views\": [{\"op\": \"Invert\"}]}]}",
                             "/seq/0: \"views\" may only be the whole policy");
}

/* timm's RandAugment grammar. Expected arguments are timm's level functions worked by hand at
 * L = 0.9 (timm/data/auto_augment.py): rotate L*30, shear L*0.3, translate L*0.45 of the side,
 * enhance L*1.8 + 0.1 or 1 +- L*0.9 (increasing), posterize int(L*4) or 4 - int(L*4), solarize
 * int(L*256) or 256 - that, solarize_add int(L*110). */
static int timm_arg_ok(const char *op, json_t *e, int increasing, int width, int height)
{
    double rotate = 27, shear = 0.27, tx = 0.405 * width, ty = 0.405 * height;
    if (!strcmp(op, "AutoContrast") || !strcmp(op, "Equalize") || !strcmp(op, "Invert")) return 1;
    if (!strcmp(op, "Rotate")) return fabs(arg_of(e, "degrees")) == rotate;
    if (!strncmp(op, "Shear", 5)) return fabs(arg_of(e, "factor")) == shear;
    if (!strcmp(op, "TranslateXRel")) return fabs(fabs(arg_of(e, "pixels")) - tx) < 1e-9;
    if (!strcmp(op, "TranslateYRel")) return fabs(fabs(arg_of(e, "pixels")) - ty) < 1e-9;
    if (!strcmp(op, "Posterize")) return arg_of(e, "bits") == (increasing ? 1 : 3);
    if (!strcmp(op, "Solarize")) return arg_of(e, "threshold") == (increasing ? 26 : 230);
    if (!strcmp(op, "SolarizeAdd"))
        return arg_of(e, "addition") == 99 && arg_of(e, "threshold") == 128;
    double f = arg_of(e, "factor");
    return increasing ? fabs(fabs(f - 1) - 0.81) < 1e-9 : fabs(f - 1.72) < 1e-9;
}

static void test_timm_rand(void **state)
{
    for (int increasing = 0; increasing < 2; increasing++) {
        struct policy *p =
            tu_parse_policy(increasing ? "rand-m9-n1-mstd0-p1-inc1" : "rand-m9-n1-mstd0-p1");
        char seen[16][32];
        int kinds = 0;
        for (uint32_t s = 0; s < 1500; s++) {
            json_t *t = sample_json(p, 51, 0, s, 57, 41);
            assert_int_equal(json_array_size(t), 1);
            json_t *e = json_array_get(t, 0);
            const char *op = json_string_value(json_object_get(e, "op"));
            if (!timm_arg_ok(op, e, increasing, 57, 41))
                fail_msg("timm %s: %s has the wrong argument", increasing ? "inc" : "", op);
            int known = 0;
            for (int k = 0; k < kinds; k++)
                known |= strcmp(seen[k], op) == 0;
            if (!known && kinds < 16) snprintf(seen[kinds++], sizeof seen[0], "%s", op);
            json_decref(t);
        }
        /* 15 ops. */
        assert_int_equal(kinds, 15);
        policy_free(p);
    }
    /* Magnitude noise, clipped to [0, 10]; uniform above mstd 100; mmax lifts the clip. */
    static const struct {
        const char *config;
        double mean, tolerance, max;
    } noisy[] = {
        /* 3 E[min(X, 10)] for X ~ N(9, 0.5^2): 3 (9 - 0.5 (phi(2) - 2 (1 - Phi(2)))). */
        {"{\"preset\": \"rand-m9-n1-mstd0.5-p1\"}", 26.987, 0.25, 30},
        {"rand-m9-n1-mstd101-p1", 13.5, 1.25, 27},
        {"rand-m15-n1-mstd0-p1", 30, 1e-9, 30},
        {"rand-m15-n1-mstd0-p1-mmax20", 45, 1e-9, 45},
    };
    for (size_t k = 0; k < sizeof noisy / sizeof noisy[0]; k++) {
        struct policy *p = tu_parse_policy(noisy[k].config);
        double sum = 0;
        int count = 0;
        /* About 1000 rotations: tolerances are 5 standard errors. */
        for (uint32_t s = 0; s < 15000; s++) {
            json_t *t = sample_json(p, 52, 0, s, 32, 32);
            json_t *e = json_array_get(t, 0);
            if (!strcmp(json_string_value(json_object_get(e, "op")), "Rotate")) {
                double deg = fabs(arg_of(e, "degrees"));
                assert_true(deg <= noisy[k].max + 1e-9);
                sum += deg;
                count++;
            }
            json_decref(t);
        }
        assert_true(count > 200);
        if (fabs(sum / count - noisy[k].mean) > noisy[k].tolerance)
            fail_msg("%s: mean rotation %g, expected %g", noisy[k].config, sum / count,
                     noisy[k].mean);
        policy_free(p);
    }
    /* p: each of n ops applies with probability p. */
    struct policy *p = tu_parse_policy("rand-m9-n2-p0.5");
    long ops = 0;
    for (uint32_t s = 0; s < 4000; s++) {
        json_t *t = sample_json(p, 53, 0, s, 32, 32);
        ops += json_array_size(t);
        json_decref(t);
    }
    assert_true(fabs(ops - 4000.0) < 5 * sqrt(8000 * 0.25));
    policy_free(p);
    tu_expect_policy_invalid("rand-m9-q2", "section \"q2\" is not one of");
    tu_expect_policy_invalid("rand-m9.5", "section \"m9.5\"");
    tu_expect_policy_invalid("rand-p1.5", "p in [0, 1]");
    /* Sections timm skips: one without digits, and empty ones (all of them, one between two, one
     * at the end). */
    tu_expect_policy_invalid("rand-m9-foo", "section \"foo\" is not one of");
    tu_expect_policy_invalid("rand-----", "timm RandAugment \"rand-----\": an empty section");
    tu_expect_policy_invalid("rand-m9--n2", "\"rand-m9--n2\": an empty section");
    tu_expect_policy_invalid("rand-m9-", "\"rand-m9-\": an empty section");
}

/* ---- Presets against torchvision ------------------------------------------------------------ */

static json_t *load_presets(void)
{
    return tu_load_json(fixtures_dir, "presets/presets.json");
}

/* The argument an op received in a trace entry (the one argument a level sets). */
static double trace_arg(json_t *entry, const char *op)
{
    const char *key = strcmp(op, "Posterize") == 0       ? "bits"
                      : strcmp(op, "Solarize") == 0      ? "threshold"
                      : strcmp(op, "Rotate") == 0        ? "degrees"
                      : strncmp(op, "Translate", 9) == 0 ? "pixels"
                                                         : "factor";
    return json_number_value(json_object_get(entry, key));
}

/* Whether value is what torchvision passes for this op at bin, with either sign when signed. */
static int matches(json_t *space, const char *op, int bin, double value)
{
    json_t *entry = json_object_get(space, op);
    double expected =
        json_number_value(json_array_get(json_object_get(entry, "args"), (size_t)bin));
    if (value == expected) return 1;
    if (!json_is_true(json_object_get(entry, "signed"))) return 0;
    /* The sign applies to the magnitude before _apply_op's 1 + m or int(m). */
    int one_plus = strcmp(op, "Brightness") == 0 || strcmp(op, "Color") == 0 ||
                   strcmp(op, "Contrast") == 0 || strcmp(op, "Sharpness") == 0;
    return one_plus ? value == 2.0 - expected : value == -expected;
}

static int op_has_args(json_t *space, const char *op)
{
    return json_is_array(json_object_get(json_object_get(space, op), "args"));
}

static void test_randaugment_magnitudes(void **state)
{
    json_t *fx = load_presets();
    json_t *ra = json_object_get(fx, "randaugment");
    json_t *space = json_object_get(ra, "space");
    int width = (int)json_integer_value(json_object_get(fx, "width"));
    int height = (int)json_integer_value(json_object_get(fx, "height"));
    for (int m = 0; m < 31; m++) {
        char text[96];
        snprintf(text, sizeof text, "{\"preset\": \"randaugment\", \"n\": 1, \"m\": %d}", m);
        struct policy *p = tu_parse_policy(text);
        int seen[14] = {0};
        for (uint32_t s = 0; s < 400; s++) {
            json_t *t = sample_json(p, 11, 0, s, width, height);
            json_t *entry = json_array_get(t, 0);
            const char *op = json_string_value(json_object_get(entry, "op"));
            size_t index = 0;
            json_t *name;
            json_array_foreach(json_object_get(ra, "ops"), index,
                               name) if (strcmp(json_string_value(name), op) == 0) seen[index] = 1;
            if (op_has_args(space, op) && !matches(space, op, m, trace_arg(entry, op)))
                fail_msg("randaugment m=%d: %s got %.17g", m, op, trace_arg(entry, op));
            json_decref(t);
        }
        for (int i = 0; i < 14; i++)
            if (!seen[i]) fail_msg("randaugment m=%d never drew op %d", m, i);
        policy_free(p);
    }
    json_decref(fx);
}

/* RandAugment draws each of its 14 ops with equal chance. */
static void test_randaugment_op_frequencies(void **state)
{
    json_t *fx = load_presets();
    json_t *ops = json_object_get(json_object_get(fx, "randaugment"), "ops");
    struct policy *p = tu_parse_policy("{\"preset\": \"randaugment\", \"n\": 1}");
    enum { N = 14000 };
    long counts[14] = {0};
    for (uint32_t s = 0; s < N; s++) {
        json_t *t = sample_json(p, 15, 0, s, 32, 32);
        const char *op = json_string_value(json_object_get(json_array_get(t, 0), "op"));
        size_t i;
        json_t *name;
        json_array_foreach(ops, i, name) if (!strcmp(json_string_value(name), op)) counts[i]++;
        json_decref(t);
    }
    double x2 = 0, expected = N / 14.0;
    for (int i = 0; i < 14; i++)
        x2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    assert_true(x2 < 34.53); /* 13 degrees of freedom, p = 0.001 */
    policy_free(p);
    json_decref(fx);
}

static void test_trivialaugment_magnitudes(void **state)
{
    json_t *fx = load_presets();
    json_t *space = json_object_get(json_object_get(fx, "trivialaugment-wide"), "space");
    struct policy *p = tu_parse_policy("trivialaugment-wide");
    static int seen[14][31];
    const char *names[14];
    int name_count = 0;
    for (uint32_t s = 0; s < 30000; s++) {
        json_t *t = sample_json(p, 12, 0, s, 57, 41);
        json_t *entry = json_array_get(t, 0);
        const char *op = json_string_value(json_object_get(entry, "op"));
        int index = -1;
        for (int i = 0; i < name_count; i++)
            if (strcmp(names[i], op) == 0) index = i;
        if (index < 0) {
            index = name_count++;
            names[index] = strdup(op);
        }
        if (op_has_args(space, op)) {
            int bin = -1;
            for (int b = 0; b < 31 && bin < 0; b++)
                if (matches(space, op, b, trace_arg(entry, op))) bin = b;
            if (bin < 0) fail_msg("trivialaugment: %s got %.17g", op, trace_arg(entry, op));
            seen[index][bin] = 1;
        }
        json_decref(t);
    }
    assert_int_equal(name_count, 14);
    for (int i = 0; i < name_count; i++) {
        if (op_has_args(space, names[i]))
            for (int b = 0; b < 31; b++) {
                /* Bins whose value repeats (Posterize) map onto the first of them. */
                json_t *args = json_object_get(json_object_get(space, names[i]), "args");
                int first = b;
                while (first > 0 && json_number_value(json_array_get(args, (size_t)first - 1)) ==
                                        json_number_value(json_array_get(args, (size_t)b)))
                    first--;
                if (!seen[i][first]) fail_msg("trivialaugment: %s bin %d never drawn", names[i], b);
            }
        free((void *)names[i]);
    }
    policy_free(p);
    json_decref(fx);
}

/* Every op AugMix applies gets one of torchvision's magnitudes for a bin below the severity. */
static void collect_augmix_ops(json_t *trace, json_t *space, int severity, int *ops_seen)
{
    size_t i;
    json_t *entry;
    json_array_foreach(trace, i, entry)
    {
        json_t *mix = json_object_get(entry, "mix");
        if (mix) {
            size_t b;
            json_t *branch;
            json_array_foreach(json_object_get(mix, "branches"), b, branch)
                collect_augmix_ops(branch, space, severity, ops_seen);
            continue;
        }
        const char *op = json_string_value(json_object_get(entry, "op"));
        if (!json_object_get(space, op)) fail_msg("augmix applied %s, not in its space", op);
        (*ops_seen)++;
        if (!op_has_args(space, op)) continue;
        int found = 0;
        for (int bin = 0; bin < severity && !found; bin++)
            found = matches(space, op, bin, trace_arg(entry, op));
        if (!found) fail_msg("augmix: %s got %.17g", op, trace_arg(entry, op));
    }
}

static void test_augmix_magnitudes(void **state)
{
    json_t *fx = load_presets();
    json_t *ref = json_object_get(fx, "augmix");
    json_t *space = json_object_get(ref, "space");
    int severity = (int)json_integer_value(json_object_get(ref, "severity"));
    struct policy *p = tu_parse_policy("augmix");
    int ops_seen = 0;
    for (uint32_t s = 0; s < 2000; s++) {
        json_t *t = sample_json(p, 14, 0, s, 57, 41);
        assert_int_equal(json_array_size(t), 1);
        /* Three chains of one to three ops each. */
        json_t *branches =
            json_object_get(json_object_get(json_array_get(t, 0), "mix"), "branches");
        assert_int_equal(json_array_size(branches), 3);
        for (size_t b = 0; b < 3; b++) {
            size_t depth = json_array_size(json_array_get(branches, b));
            assert_true(depth >= 1 && depth <= 3);
        }
        collect_augmix_ops(t, space, severity, &ops_seen);
        json_decref(t);
    }
    assert_true(ops_seen > 2000 * 3);
    policy_free(p);
    json_decref(fx);
}

static void test_autoaugment_tables(void **state)
{
    json_t *fx = load_presets();
    static const char *const names[] = {"autoaugment-imagenet", "autoaugment-cifar10",
                                        "autoaugment-svhn"};
    for (size_t n = 0; n < 3; n++) {
        json_t *ref = json_object_get(fx, names[n]);
        json_t *space = json_object_get(ref, "space");
        json_t *policies = json_object_get(ref, "policies");
        struct policy *p = tu_parse_policy(names[n]);
        json_t *doc = policy_to_json(p);
        json_t *choice = json_object_get(doc, "choice");
        assert_int_equal(json_array_size(choice), json_array_size(policies));
        for (size_t i = 0; i < json_array_size(policies); i++) {
            json_t *seq = json_object_get(json_array_get(choice, i), "seq");
            for (size_t k = 0; k < 2; k++) {
                json_t *want = json_array_get(json_array_get(policies, i), k);
                json_t *got = json_array_get(seq, k);
                json_t *op = json_object_get(got, "do");
                assert_string_equal(json_string_value(json_object_get(op, "op")),
                                    json_string_value(json_array_get(want, 0)));
                assert_true(json_number_value(json_object_get(got, "p")) ==
                            json_number_value(json_array_get(want, 1)));
                json_t *bin = json_array_get(want, 2);
                json_t *level = json_object_get(op, "level");
                if (json_is_null(bin)) {
                    assert_null(level);
                } else {
                    assert_int_equal(json_integer_value(json_object_get(level, "bin")),
                                     json_integer_value(bin));
                    assert_int_equal(json_integer_value(json_object_get(level, "bins")), 10);
                }
            }
        }
        /* The magnitudes that reach the ops are torchvision's. */
        for (uint32_t s = 0; s < 3000; s++) {
            json_t *t = sample_json(p, 13, 0, s, 57, 41);
            size_t i;
            json_t *entry;
            json_array_foreach(t, i, entry)
            {
                const char *op = json_string_value(json_object_get(entry, "op"));
                if (!op_has_args(space, op)) continue;
                int found = 0;
                for (int b = 0; b < 10 && !found; b++)
                    found = matches(space, op, b, trace_arg(entry, op));
                if (!found) fail_msg("%s: %s got %.17g", names[n], op, trace_arg(entry, op));
            }
            json_decref(t);
        }
        json_decref(doc);
        policy_free(p);
    }
    json_decref(fx);
}

int main(int argc, char **argv)
{
    fixtures_dir = argc > 1 ? argv[1] : "tests/parity/fixtures";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_name_the_node),
        cmocka_unit_test(test_trace_cap),
        cmocka_unit_test(test_trace_cost),
        cmocka_unit_test(test_execution_stops_between_ops),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_choice_and_probability),
        cmocka_unit_test(test_dag_walk),
        cmocka_unit_test(test_mix),
        cmocka_unit_test(test_mix_pixels),
        cmocka_unit_test(test_color_ops_keep_alpha),
        cmocka_unit_test(test_random_resized_crop),
        cmocka_unit_test(test_random_crop),
        cmocka_unit_test(test_cutout_and_erasing_draws),
        cmocka_unit_test(test_fourier_draws),
        cmocka_unit_test(test_fixmatch_strong),
        cmocka_unit_test(test_policy_cache),
        cmocka_unit_test(test_schema_lists_presets),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_timm_rand),
        cmocka_unit_test(test_randaugment_magnitudes),
        cmocka_unit_test(test_randaugment_op_frequencies),
        cmocka_unit_test(test_trivialaugment_magnitudes),
        cmocka_unit_test(test_autoaugment_tables),
        cmocka_unit_test(test_augmix_magnitudes),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
