/* Unit tests of engine/image/color.c and filter.c. argv[1]: the parity fixtures folder; every case
 * of color/manifest.json (written by tests/parity/gen_color.py from torchvision and Pillow) must
 * come out pixel for pixel identical. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "image/color.h"
#include "image/filter.h"

static char color_dir[4096];

static struct img *run_op(const char *op, const json_t *args, const struct img *in,
                          struct eng_error *err)
{
    double factor = json_number_value(json_object_get(args, "factor"));
    if (!strcmp(op, "invert")) return img_invert(in, err);
    if (!strcmp(op, "posterize"))
        return img_posterize(in, (int)json_integer_value(json_object_get(args, "bits")), err);
    if (!strcmp(op, "solarize"))
        return img_solarize(in, json_number_value(json_object_get(args, "threshold")), err);
    if (!strcmp(op, "solarize_add"))
        return img_solarize_add(in, (int)json_integer_value(json_object_get(args, "addition")),
                                (int)json_integer_value(json_object_get(args, "threshold")), err);
    if (!strcmp(op, "brightness")) return img_brightness(in, factor, err);
    if (!strcmp(op, "color")) return img_color(in, factor, err);
    if (!strcmp(op, "contrast")) return img_contrast(in, factor, err);
    if (!strcmp(op, "sharpness")) return img_sharpness(in, factor, err);
    if (!strcmp(op, "autocontrast")) return img_autocontrast(in, err);
    if (!strcmp(op, "equalize")) return img_equalize(in, err);
    if (!strcmp(op, "blur")) return img_filter_blur(in, err);
    if (!strcmp(op, "smooth")) return img_filter_smooth(in, err);
    if (!strcmp(op, "grayscale"))
        return img_grayscale(in, (int)json_integer_value(json_object_get(args, "keep_channels")),
                             err);
    fail_msg("manifest names an unknown op \"%s\"", op);
    return NULL;
}

static void test_parity(void **state)
{
    size_t total, failed = fixture_check_manifest(color_dir, run_op, ENG_UNSUPPORTED, &total);
    assert_true(total > 0);
    if (failed) fail_msg("%zu of %zu parity cases failed", failed, total);
}

/* Pillow's ImagingBlend, whose float arithmetic color.c replaces with integers. */
static uint8_t pillow_blend(int s, int v, float f)
{
    float t = (float)s + f * (float)(v - s);
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

/* An L image holding every value once, padded with 0 or 255 until ImageEnhance.Contrast's
 * mean gray is mean: with it, img_contrast blends every (mean, value) pair. */
static struct img *with_mean(int mean)
{
    int filler = mean < 128 ? 0 : 255;
    uint64_t sum = 255 * 256 / 2, count = 256;
    while ((2 * sum + count) / (2 * count) != (uint64_t)mean) {
        sum += filler;
        count++;
    }
    struct img *im = img_new((int)count, 1, 1, NULL);
    assert_non_null(im);
    for (int x = 0; x < (int)count; x++)
        im->data[x] = (uint8_t)(x < 256 ? x : filler);
    return im;
}

/* Every (degenerate, value) pair at factors whose float products with small integers fall just
 * short of an integer, which exercises the carry of the integer blend, at the extremes, and
 * along a sweep. */
static void test_blend_equals_pillow_formula(void **state)
{
    double factors[100] = {0,    1e-30, 1e-8,     2.98e-8, 5.9604645e-8, 1e-7, 0.1, 0.3, 1.0 / 3,
                           0.7,  0.9,   0.999999, 1,       1.0000001,    1.1,  1.9, 2,   3.3,
                           7.77, 100.7, 1e6,      FLT_MAX};
    for (int i = 22; i < 100; i++)
        factors[i] = (i - 22) / 19.0 + (i % 7) * 1e-9;
    for (int mean = 0; mean < 256; mean++) {
        struct img *im = with_mean(mean);
        for (int i = 0; i < 100; i++) {
            struct eng_error err = {0};
            struct img *out = img_contrast(im, factors[i], &err);
            assert_non_null(out);
            for (int v = 0; v < 256; v++) {
                uint8_t want = pillow_blend(mean, v, (float)factors[i]);
                if (out->data[v] != want)
                    fail_msg("factor %.9g: mean %d, value %d gives %d, Pillow %d", factors[i], mean,
                             v, out->data[v], want);
            }
            img_free(out);
        }
        img_free(im);
    }
}

static struct img *run_each(int i, const struct img *in, struct eng_error *err)
{
    switch (i) {
    case 0:
        return img_invert(in, err);
    case 1:
        return img_posterize(in, 3, err);
    case 2:
        return img_solarize(in, 100, err);
    case 3:
        return img_solarize_add(in, 40, 128, err);
    case 4:
        return img_brightness(in, 1.3, err);
    case 5:
        return img_color(in, 1.7, err);
    case 6:
        return img_contrast(in, 0.6, err);
    case 7:
        return img_sharpness(in, 1.9, err);
    case 8:
        return img_autocontrast(in, err);
    case 9:
        return img_equalize(in, err);
    case 10:
        return img_grayscale(in, 0, err);
    default:
        return img_grayscale(in, 1, err);
    }
}
#define OP_COUNT 12

/* The fixtures are contiguous; rows with padding after them must give the same pixels, and no op
 * may write to its input. */
static void test_strided_input_untouched(void **state)
{
    int channels[] = {1, 3, 4};
    for (int c = 0; c < 3; c++) {
        struct img *flat = fixture_pattern(37, 23, channels[c], 0);
        struct img *padded = fixture_pattern(37, 23, channels[c], 13);
        uint8_t *before = malloc(padded->stride * 23);
        assert_non_null(before);
        memcpy(before, padded->data, padded->stride * 23);
        for (int i = 0; i < OP_COUNT; i++) {
            struct eng_error err = {0};
            struct img *a = run_each(i, flat, &err);
            struct img *b = run_each(i, padded, &err);
            assert_true((a == NULL) == (b == NULL));
            if (a) {
                assert_int_equal(b->stride, (size_t)b->width * (size_t)b->channels);
                assert_int_equal(fixture_diff(a, b, 0, NULL), 0);
            }
            assert_memory_equal(before, padded->data, padded->stride * 23);
            img_free(a);
            img_free(b);
        }
        free(before);
        img_free(flat);
        img_free(padded);
    }
}

/* The AVX-512 code (where the CPU has it) against the portable code, at every width up to 70
 * (the vector tails) and a few heights, strides and channel counts. */
static void test_vector_matches_portable(void **state)
{
    const char *forced = getenv("AUGENGINE_NO_AVX512");
    if (forced) skip(); /* both would be the portable code */
    int channels[] = {1, 3, 4}, heights[] = {1, 2, 3, 5};
    for (int w = 1; w <= 70; w++)
        for (int c = 0; c < 3; c++)
            for (int h = 0; h < 4; h++) {
                struct img *in = fixture_pattern(w, heights[h], channels[c], (size_t)(w % 3) * 5);
                assert_non_null(in);
                for (int i = 0; i < OP_COUNT; i++) {
                    struct eng_error err = {0};
                    struct img *vector = run_each(i, in, &err);
                    setenv("AUGENGINE_NO_AVX512", "1", 1);
                    struct img *portable = run_each(i, in, &err);
                    unsetenv("AUGENGINE_NO_AVX512");
                    assert_true((vector == NULL) == (portable == NULL));
                    if (vector && fixture_diff(vector, portable, 0, NULL) != 0)
                        fail_msg("op %d differs at %dx%d with %d channels", i, w, heights[h],
                                 channels[c]);
                    img_free(vector);
                    img_free(portable);
                }
                img_free(in);
            }
}

static void test_bad_input(void **state)
{
    struct img *rgb = fixture_pattern(4, 4, 3, 0), *rgba = fixture_pattern(4, 4, 4, 0);
    for (int i = 0; i < OP_COUNT; i++) {
        struct eng_error err = {0};
        assert_null(run_each(i, NULL, &err));
        assert_int_equal(err.code, ENG_INVALID);
        assert_null(run_each(i, NULL, NULL));
    }
    struct img bad = *rgb;
    bad.channels = 2;
    struct eng_error err = {0};
    assert_null(img_invert(&bad, &err));
    assert_int_equal(err.code, ENG_INVALID);

    int bits[] = {-1, 9, INT_MIN, INT_MAX};
    for (int i = 0; i < 4; i++) {
        err.code = ENG_OK;
        assert_null(img_posterize(rgb, bits[i], &err));
        assert_int_equal(err.code, ENG_INVALID);
        assert_null(img_posterize(rgb, bits[i], NULL));
    }
    double factors[] = {-0.1, -1e-300, NAN, INFINITY, 1e39};
    struct img *(*enhance[])(const struct img *, double, struct eng_error *) = {
        img_brightness, img_color, img_contrast, img_sharpness};
    for (int i = 0; i < 5; i++) {
        for (int k = 0; k < 4; k++) {
            err.code = ENG_OK;
            assert_null(enhance[k](rgb, factors[i], &err));
            assert_int_equal(err.code, ENG_INVALID);
            assert_non_null(strstr(err.message, "factor"));
        }
    }
    err.code = ENG_OK;
    assert_null(img_solarize(rgb, NAN, &err));
    assert_int_equal(err.code, ENG_INVALID);
    err.code = ENG_OK;
    assert_null(img_grayscale(rgb, 2, &err));
    assert_int_equal(err.code, ENG_INVALID);

    /* Pillow refuses RGBA for the ImageOps tables, torchvision a 4-channel grayscale. */
    for (int i = 0; i < OP_COUNT; i++) {
        err.code = ENG_OK;
        struct img *out = run_each(i, rgba, &err);
        bool refused = i <= 2 || i == 8 || i == 9 || i == 11;
        if (refused) {
            assert_null(out);
            assert_int_equal(err.code, ENG_UNSUPPORTED);
            assert_non_null(strstr(err.message, "RGBA"));
        } else {
            assert_non_null(out);
        }
        img_free(out);
    }
    img_free(rgb);
    img_free(rgba);
}

/* Arguments at the edges of their types: no overflow, and the obvious images. */
static void test_extreme_arguments(void **state)
{
    struct img *im = fixture_pattern(16, 16, 3, 0);
    struct eng_error err = {0};
    struct img *out = img_solarize_add(im, INT_MAX, INT_MAX, &err);
    assert_non_null(out);
    for (int i = 0; i < 16 * 16 * 3; i++)
        assert_int_equal(out->data[i], 255);
    img_free(out);
    out = img_solarize_add(im, INT_MIN, 256, &err);
    assert_non_null(out);
    for (int i = 0; i < 16 * 16 * 3; i++)
        assert_int_equal(out->data[i], 0);
    img_free(out);
    out = img_solarize(im, -INFINITY, &err);
    assert_non_null(out);
    for (int i = 0; i < 16 * 16 * 3; i++)
        assert_int_equal(out->data[i], 255 - im->data[i]);
    img_free(out);
    out = img_brightness(im, FLT_MAX, &err);
    assert_non_null(out);
    for (int i = 0; i < 16 * 16 * 3; i++)
        assert_int_equal(out->data[i], im->data[i] ? 255 : 0);
    img_free(out);
    img_free(im);
}

/* Image.blend's ends are its inputs (a + 0 * d, a + 1 * d in float are exact), alpha 0.5 is the
 * truncated midpoint, and images that differ in size are refused. */
static void test_blend(void **state)
{
    (void)state;
    struct img *a = fixture_pattern(9, 7, 3, 0), *b = fixture_pattern(9, 7, 3, 5);
    for (int y = 0; y < 7; y++)
        for (int i = 0; i < 27; i++)
            img_row(b, y)[i] = (uint8_t)(255 - img_row(b, y)[i]);
    struct eng_error err;
    struct img *zero = img_blend(a, b, 0.0, &err), *one = img_blend(a, b, 1.0, &err);
    struct img *half = img_blend(a, b, 0.5, &err);
    assert_int_equal(fixture_diff(zero, a, 0, NULL), 0);
    assert_int_equal(fixture_diff(one, b, 0, NULL), 0);
    for (int y = 0; y < 7; y++)
        for (int i = 0; i < 27; i++) {
            int p = img_row(a, y)[i], q = img_row(b, y)[i];
            assert_int_equal(img_row(half, y)[i], (int)floor(p + 0.5 * (q - p)));
        }
    struct img *small = fixture_pattern(9, 6, 3, 0);
    assert_null(img_blend(a, small, 0.5, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(img_blend(a, b, NAN, &err));
    assert_int_equal(err.code, ENG_INVALID);
    img_free(small);
    img_free(half);
    img_free(one);
    img_free(zero);
    img_free(b);
    img_free(a);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(color_dir, sizeof color_dir, "%s/color", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_blend_equals_pillow_formula),
        cmocka_unit_test(test_strided_input_untouched),
        cmocka_unit_test(test_vector_matches_portable),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_extreme_arguments),
        cmocka_unit_test(test_blend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
