/* Unit tests of engine/image/noise.c. argv[1]: the parity fixtures folder; every case of
 * noise/manifest.json (written by tests/parity/gen_noise.py from the references) must come out
 * pixel for pixel identical, and every 1-D kernel torch built must come out bit for bit. The
 * noise ops are also held to their definitions: structure, statistics and a hand-computed case. */
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
#include "image/noise.h"

static char noise_dir[4096];

static int arg_int(const json_t *args, const char *key)
{
    return (int)json_integer_value(json_object_get(args, key));
}

static double arg_number(const json_t *args, const char *key)
{
    return json_number_value(json_object_get(args, key));
}

/* A JSON array of up to four small integers. */
static void arg_bytes(const json_t *args, const char *key, uint8_t out[4])
{
    memset(out, 0, 4);
    const json_t *a = json_object_get(args, key);
    for (size_t i = 0; i < json_array_size(a) && i < 4; i++)
        out[i] = (uint8_t)json_integer_value(json_array_get(a, i));
}

static void arg_rng(const json_t *args, struct rng *r)
{
    const json_t *a = json_object_get(args, "rng");
    assert_non_null(a);
    rng_init(r, (uint64_t)json_integer_value(json_object_get(a, "seed")),
             (uint32_t)json_integer_value(json_object_get(a, "input")),
             (uint32_t)json_integer_value(json_object_get(a, "sample")),
             (uint32_t)json_integer_value(json_object_get(a, "stream")));
}

static struct img *run_op(const char *op, const json_t *args, const struct img *in,
                          struct eng_error *err)
{
    uint8_t bytes[4];
    struct rng r;
    if (!strcmp(op, "cutout")) {
        arg_bytes(args, "fill", bytes);
        return img_cutout(in, arg_int(args, "cx"), arg_int(args, "cy"), arg_int(args, "size"),
                          bytes, err);
    }
    if (!strcmp(op, "erase")) {
        int random = arg_int(args, "random");
        arg_bytes(args, "value", bytes);
        if (random) arg_rng(args, &r);
        return img_erase(in, arg_int(args, "top"), arg_int(args, "left"), arg_int(args, "height"),
                         arg_int(args, "width"), random ? NULL : bytes, random, random ? &r : NULL,
                         err);
    }
    if (!strcmp(op, "gaussian_noise")) {
        arg_rng(args, &r);
        return img_gaussian_noise(in, arg_number(args, "sigma"), &r, err);
    }
    if (!strcmp(op, "patch_gaussian")) {
        arg_rng(args, &r);
        return img_patch_gaussian(in, arg_int(args, "cx"), arg_int(args, "cy"),
                                  arg_int(args, "patch_size"), arg_number(args, "sigma"), &r, err);
    }
    if (!strcmp(op, "fourier_noise")) {
        const json_t *s = json_object_get(args, "sign");
        int sign[3];
        for (size_t i = 0; i < 3; i++)
            sign[i] = (int)json_integer_value(json_array_get(s, i));
        return img_fourier_noise(in, arg_int(args, "i"), arg_int(args, "j"),
                                 arg_number(args, "eps"), sign, err);
    }
    if (!strcmp(op, "gaussian_blur"))
        return img_gaussian_blur(in, arg_int(args, "kernel_size"), arg_number(args, "sigma_x"),
                                 arg_number(args, "sigma_y"), err);
    fail_msg("manifest names an unknown op \"%s\"", op);
    return NULL;
}

static json_t *load_manifest(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", noise_dir);
    json_error_t jerr;
    json_t *manifest = json_load_file(path, 0, &jerr);
    if (!manifest) fail_msg("%s: %s", path, jerr.text);
    return manifest;
}

static void test_parity(void **state)
{
    size_t total, failed = fixture_check_manifest(noise_dir, run_op, ENG_INVALID, &total);
    assert_true(total > 0);
    if (failed) fail_msg("%zu of %zu parity cases failed", failed, total);
}

/* torch's float32 kernels, stored as their symmetric first halves. */
static void test_kernels(void **state)
{
    json_t *manifest = load_manifest();
    const json_t *kernels = json_object_get(manifest, "kernels");
    assert_true(json_array_size(kernels) > 0);
    size_t i;
    const json_t *k;
    json_array_foreach(kernels, i, k)
    {
        int size = (int)json_integer_value(json_object_get(k, "size"));
        double sigma = json_number_value(json_object_get(k, "sigma"));
        const json_t *half = json_object_get(k, "first_half");
        assert_int_equal(json_array_size(half), (size_t)(size / 2 + 1));
        float *weights = malloc((size_t)size * sizeof *weights);
        assert_non_null(weights);
        struct eng_error err = {0};
        assert_int_equal(img_gaussian_kernel(size, sigma, weights, &err), 0);
        for (int t = 0; t < size; t++) {
            int mirrored = t <= size / 2 ? t : size - 1 - t;
            float want = (float)json_number_value(json_array_get(half, (size_t)mirrored));
            if (weights[t] != want)
                fail_msg("kernel %d, sigma %g: weight %d is %.9g, torch %.9g", size, sigma, t,
                         (double)weights[t], (double)want);
        }
        free(weights);
    }
    json_decref(manifest);
}

static struct img *flat(int width, int height, int channels, uint8_t v)
{
    struct img *im = img_new(width, height, channels, NULL);
    assert_non_null(im);
    memset(im->data, v, im->stride * (size_t)height);
    return im;
}

/* Whether the pixel's colour samples equal in's. */
static bool same_colour(const struct img *a, const struct img *b, int x, int y)
{
    int cc = a->channels == 4 ? 3 : a->channels;
    return !memcmp(img_row(a, y) + (size_t)x * a->channels, img_row(b, y) + (size_t)x * b->channels,
                   (size_t)cc);
}

static void assert_alpha_kept(const struct img *in, const struct img *out)
{
    if (in->channels != 4) return;
    for (int y = 0; y < in->height; y++)
        for (int x = 0; x < in->width; x++)
            assert_int_equal(img_row(out, y)[4 * x + 3], img_row(in, y)[4 * x + 3]);
}

static void test_zero_noise_changes_nothing(void **state)
{
    int channels[] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        struct img *in = fixture_pattern(37, 23, channels[i], 0);
        struct rng r;
        rng_init(&r, 5, 0, 0, 1);
        struct img *a = img_gaussian_noise(in, 0.0, &r, NULL);
        struct img *b = img_patch_gaussian(in, 10, 10, 15, 0.0, &r, NULL);
        int sign[3] = {1, -1, 1};
        struct img *c = img_fourier_noise(in, 3, 4, 0.0, sign, NULL);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_int_equal(fixture_diff(a, in, 0, NULL), 0);
        assert_int_equal(fixture_diff(b, in, 0, NULL), 0);
        assert_int_equal(fixture_diff(c, in, 0, NULL), 0);
        img_free(a);
        img_free(b);
        img_free(c);
        img_free(in);
    }
}

/* Outside the box nothing changes, inside the colour samples do (the noise is strong and every
 * sample mid-range), and alpha stays. */
static void test_boxes_confine_changes(void **state)
{
    int channels[] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        struct img *in = flat(40, 30, channels[i], 120);
        if (channels[i] == 4)
            for (int t = 3; t < 40 * 30 * 4; t += 4)
                in->data[t] = (uint8_t)(t * 7);
        struct rng r;
        rng_init(&r, 9, 0, 0, 2);
        struct img *patch = img_patch_gaussian(in, 12, 25, 14, 2.0, &r, NULL);
        struct img *erased = img_erase(in, 20, 30, 30, 5, NULL, 1, &r, NULL);
        assert_non_null(patch);
        assert_non_null(erased);
        long changed_patch = 0, changed_erase = 0;
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 40; x++) {
                bool in_patch = y >= 18 && y < 30 && x >= 5 && x < 19;
                bool in_erase = y >= 20 && x >= 30 && x < 35;
                if (!in_patch) assert_true(same_colour(patch, in, x, y));
                if (!in_erase) assert_true(same_colour(erased, in, x, y));
                changed_patch += !same_colour(patch, in, x, y);
                changed_erase += !same_colour(erased, in, x, y);
            }
        assert_true(changed_patch > 12 * 14 * 9 / 10);
        assert_true(changed_erase > 10 * 5 * 9 / 10);
        assert_alpha_kept(in, patch);
        assert_alpha_kept(in, erased);
        img_free(patch);
        img_free(erased);
        img_free(in);
    }
}

/* Mid-gray with sigma 0.1: out - in is floor(255 sigma Z) (clipping is 5 standard deviations
 * away), whose mean is -0.5 (truncation) and whose variance is (255 sigma)^2 + 1/12 (the
 * fractional part is all but uniform at this width). Both within 5 standard errors. */
static void test_noise_moments(void **state)
{
    enum { W = 256, H = 256, C = 3 };
    const double sigma = 0.1, s = 255 * sigma, n = (double)W * H * C;
    struct img *in = flat(W, H, C, 128);
    struct rng r;
    rng_init(&r, 77, 1, 2, 3);
    struct img *out = img_gaussian_noise(in, sigma, &r, NULL);
    assert_non_null(out);
    double sum = 0, sum2 = 0;
    for (size_t t = 0; t < (size_t)n; t++) {
        double d = (double)out->data[t] - 128.0;
        sum += d;
        sum2 += d * d;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    double want_sd = sqrt(s * s + 1.0 / 12);
    if (fabs(mean + 0.5) > 5 * want_sd / sqrt(n))
        fail_msg("mean of out - in is %g, want -0.5 +- %g", mean, 5 * want_sd / sqrt(n));
    if (fabs(sd - want_sd) > 5 * want_sd / sqrt(2 * n))
        fail_msg("sd of out - in is %g, want %g +- %g", sd, want_sd, 5 * want_sd / sqrt(2 * n));
    img_free(out);
    img_free(in);

    /* Random erase: uniform bytes, mean 127.5 and sd sqrt((256^2 - 1) / 12). */
    in = flat(W, H, C, 0);
    out = img_erase(in, 0, 0, H, W, NULL, 1, &r, NULL);
    assert_non_null(out);
    sum = 0;
    for (size_t t = 0; t < (size_t)n; t++)
        sum += out->data[t];
    want_sd = sqrt((256.0 * 256.0 - 1) / 12);
    if (fabs(sum / n - 127.5) > 5 * want_sd / sqrt(n))
        fail_msg("random erase mean %g, want 127.5", sum / n);
    img_free(out);
    img_free(in);
}

static void test_same_stream_same_output(void **state)
{
    struct img *in = fixture_pattern(31, 17, 3, 0);
    struct rng a, b, other;
    rng_init(&a, 123, 4, 5, 6);
    b = a;
    rng_init(&other, 123, 4, 5, 7);
    struct img *x = img_gaussian_noise(in, 0.3, &a, NULL);
    struct img *y = img_gaussian_noise(in, 0.3, &b, NULL);
    struct img *z = img_gaussian_noise(in, 0.3, &other, NULL);
    assert_int_equal(fixture_diff(x, y, 0, NULL), 0);
    assert_true(fixture_diff(x, z, 0, NULL) > 0);
    /* Both streams advanced alike: one normal per sample. */
    assert_memory_equal(&a, &b, sizeof a);
    img_free(x);
    img_free(y);
    img_free(z);
    img_free(in);
}

/* White plus noise: about half the samples stay 255 (positive noise, clipped) and the rest lie
 * within 6 sigma below; wrapping would put the clipped half near 0. Black mirrors it. */
static void test_clipped_not_wrapped(void **state)
{
    enum { W = 128, H = 64, C = 3 };
    const size_t n = (size_t)W * H * C;
    for (int white = 0; white < 2; white++) {
        struct img *in = flat(W, H, C, white ? 255 : 0);
        struct rng r;
        rng_init(&r, 31, 0, 0, 1);
        struct img *out = img_gaussian_noise(in, 0.1, &r, NULL);
        assert_non_null(out);
        size_t at_edge = 0;
        for (size_t t = 0; t < n; t++) {
            int v = out->data[t];
            if (white) {
                assert_true(v >= 255 - 6 * 26);
                at_edge += v == 255;
            } else {
                assert_true(v <= 6 * 26);
                at_edge += v == 0;
            }
        }
        assert_true(at_edge > n * 45 / 100 && at_edge < n * 55 / 100);
        img_free(out);
        img_free(in);
    }
}

/* The definition written out for a 2x1 image: sample k of pixel x gets normal z[x * 3 + k] (RGB
 * and RGBA alike: alpha draws nothing), n = (float)(sigma * z), out = trunc(clamp(v / 255 + n)
 * * 255) in float32. */
static uint8_t by_hand(uint8_t v, double sigma, double z)
{
    float t = (float)v / 255.0f + (float)(sigma * z);
    if (t < 0.0f) t = 0.0f;
    if (t > 1.0f) t = 1.0f;
    return (uint8_t)(t * 255.0f);
}

static void test_hand_computed(void **state)
{
    const uint8_t rgba[8] = {10, 128, 250, 7, 0, 255, 77, 200};
    const double sigma = 0.05;
    struct rng r, copy;
    rng_init(&r, 2024, 0, 0, 1);
    copy = r;
    double z[6];
    for (int k = 0; k < 6; k++)
        z[k] = rng_normal(&copy);
    for (int channels = 3; channels <= 4; channels++) {
        struct img *in = img_new(2, 1, channels, NULL);
        assert_non_null(in);
        for (int x = 0; x < 2; x++)
            memcpy(in->data + x * channels, rgba + 4 * x, (size_t)channels);
        struct rng s = r;
        struct img *out = img_gaussian_noise(in, sigma, &s, NULL);
        assert_non_null(out);
        for (int x = 0; x < 2; x++) {
            for (int k = 0; k < 3; k++)
                assert_int_equal(out->data[x * channels + k],
                                 by_hand(rgba[4 * x + k], sigma, z[3 * x + k]));
            if (channels == 4) assert_int_equal(out->data[4 * x + 3], rgba[4 * x + 3]);
        }
        img_free(out);
        /* A patch covering pixel 1 only (columns clip(2 - 1) to clip(2 + 1)): it takes the
         * stream's first three normals. */
        s = r;
        out = img_patch_gaussian(in, 2, 0, 2, sigma, &s, NULL);
        assert_non_null(out);
        assert_memory_equal(out->data, in->data, (size_t)channels);
        for (int k = 0; k < 3; k++)
            assert_int_equal(out->data[channels + k], by_hand(rgba[4 + k], sigma, z[k]));
        img_free(out);
        img_free(in);
    }
    /* v / 255 * 255 in float32 is v again, so zero noise changes nothing. */
    for (int v = 0; v < 256; v++)
        assert_int_equal(by_hand((uint8_t)v, 0, 0), v);
}

/* The Fourier basis straight from its definition, normalised by its own computed norm, against
 * img_fourier_noise on a flat mid-gray image: even and odd sides, DC, Nyquist, wrapped and
 * negative indices. */
static void test_fourier_definition(void **state)
{
    const int sizes[][2] = {{8, 6}, {7, 5}, {1, 1}, {2, 9}};
    const int freqs[][2] = {{0, 0}, {1, 2}, {3, 4}, {4, 3}, {-1, 5}, {10, -13}, {0, 3}, {3, 0}};
    const double eps = 0.9;
    const int sign[3] = {1, -1, 1};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        struct img *in = flat(w, h, 3, 128);
        double *u = malloc((size_t)w * h * sizeof *u);
        assert_non_null(u);
        for (size_t f = 0; f < sizeof freqs / sizeof freqs[0]; f++) {
            int i = freqs[f][0], j = freqs[f][1];
            double norm = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    u[y * w + x] = cos(2 * M_PI * ((double)i * y / h + (double)j * x / w));
                    norm += u[y * w + x] * u[y * w + x];
                }
            struct img *out = img_fourier_noise(in, i, j, eps, sign, NULL);
            assert_non_null(out);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int k = 0; k < 3; k++) {
                        float n = (float)(eps * sign[k] * u[y * w + x] / sqrt(norm));
                        int want = by_hand(128, 1.0, n), got = out->data[(y * w + x) * 3 + k];
                        if (got != want)
                            fail_msg("%dx%d (%d, %d) at (%d, %d, %d): %d, want %d", w, h, i, j, x,
                                     y, k, got, want);
                    }
            img_free(out);
        }
        free(u);
        img_free(in);
    }
}

static void test_blur_structure(void **state)
{
    int channels[] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        struct img *in = flat(20, 12, channels[i], 201);
        struct img *pat = fixture_pattern(20, 12, channels[i], 0);
        int sizes[] = {1, 3, 9, 23};
        for (int k = 0; k < 4; k++) {
            struct eng_error err = {0};
            struct img *out = img_gaussian_blur(in, sizes[k], 1.7, 0.4, &err);
            assert_non_null(out);
            assert_int_equal(fixture_diff(out, in, 0, NULL), 0); /* flat stays flat */
            img_free(out);
            out = img_gaussian_blur(pat, sizes[k], 2.5, 2.5, &err);
            assert_non_null(out);
            assert_alpha_kept(pat, out);
            if (sizes[k] == 1) assert_int_equal(fixture_diff(out, pat, 0, NULL), 0);
            img_free(out);
        }
        img_free(in);
        img_free(pat);
    }
}

static struct img *run_each(int i, const struct img *in, struct eng_error *err)
{
    static const uint8_t value[4] = {1, 2, 3, 4};
    static const int sign[3] = {-1, 1, -1};
    struct rng r;
    rng_init(&r, 99, 0, 0, 1);
    switch (i) {
    case 0:
        return img_cutout(in, 10, 7, 9, value, err);
    case 1:
        return img_erase(in, 3, 4, 10, 12, value, 0, NULL, err);
    case 2:
        return img_erase(in, 3, 4, 10, 12, NULL, 1, &r, err);
    case 3:
        return img_gaussian_noise(in, 0.2, &r, err);
    case 4:
        return img_patch_gaussian(in, 20, 10, 11, 0.4, &r, err);
    case 5:
        return img_fourier_noise(in, 2, -3, 3.0, sign, err);
    default:
        return img_gaussian_blur(in, 7, 1.3, 2.1, err);
    }
}
#define OP_COUNT 7

/* Rows with padding after them give the same pixels, and no op writes to its input. */
static void test_strided_input_untouched(void **state)
{
    int channels[] = {1, 3, 4};
    for (int c = 0; c < 3; c++) {
        struct img *contiguous = fixture_pattern(37, 23, channels[c], 0);
        struct img *padded = fixture_pattern(37, 23, channels[c], 13);
        uint8_t *before = malloc(padded->stride * 23);
        assert_non_null(before);
        memcpy(before, padded->data, padded->stride * 23);
        for (int i = 0; i < OP_COUNT; i++) {
            struct eng_error err = {0};
            struct img *a = run_each(i, contiguous, &err);
            struct img *b = run_each(i, padded, &err);
            assert_non_null(a);
            assert_non_null(b);
            assert_int_equal(b->stride, (size_t)b->width * (size_t)b->channels);
            assert_int_equal(fixture_diff(a, b, 0, NULL), 0);
            assert_alpha_kept(padded, b);
            assert_memory_equal(before, padded->data, padded->stride * 23);
            img_free(a);
            img_free(b);
        }
        free(before);
        img_free(contiguous);
        img_free(padded);
    }
}

static void expect_invalid(struct img *out, const struct eng_error *err, const char *what)
{
    if (out || err->code != ENG_INVALID)
        fail_msg("%s: want ENG_INVALID, got %s", what, out ? "an image" : err->message);
}

#define INVALID(call)                                                                              \
    do {                                                                                           \
        struct eng_error err = {0};                                                                \
        expect_invalid(call, &err, #call);                                                         \
    } while (0)

static void test_bad_arguments(void **state)
{
    struct img *im = fixture_pattern(16, 12, 3, 0);
    const uint8_t v[4] = {0};
    const int sign[3] = {1, 1, 1}, zero_sign[3] = {1, 0, 1}, two_sign[3] = {2, 1, 1};
    struct rng r;
    rng_init(&r, 1, 0, 0, 1);
    for (int i = 0; i < OP_COUNT; i++) {
        struct eng_error err = {0};
        expect_invalid(run_each(i, NULL, &err), &err, "no image");
        assert_null(run_each(i, NULL, NULL));
        struct img bad = *im;
        bad.channels = 2;
        err.code = ENG_OK;
        expect_invalid(run_each(i, &bad, &err), &err, "two channels");
        bad = *im;
        bad.stride = 3;
        err.code = ENG_OK;
        expect_invalid(run_each(i, &bad, &err), &err, "short stride");
    }
    INVALID(img_cutout(im, 5, 5, -1, v, &err));
    INVALID(img_cutout(im, 5, 5, 4, NULL, &err));
    INVALID(img_erase(im, 0, 0, -1, 4, v, 0, NULL, &err));
    INVALID(img_erase(im, 0, 0, 4, INT_MIN, v, 0, NULL, &err));
    INVALID(img_erase(im, 0, 0, 4, 4, NULL, 0, &r, &err));
    INVALID(img_erase(im, 0, 0, 4, 4, v, 1, NULL, &err));
    double sigmas[] = {-0.1, -1e-300, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 5; i++) {
        INVALID(img_gaussian_noise(im, sigmas[i], &r, &err));
        INVALID(img_patch_gaussian(im, 5, 5, 4, sigmas[i], &r, &err));
        INVALID(img_fourier_noise(im, 1, 1, sigmas[i], sign, &err));
        INVALID(img_gaussian_blur(im, 3, sigmas[i], 1.0, &err));
        INVALID(img_gaussian_blur(im, 3, 1.0, sigmas[i], &err));
    }
    INVALID(img_gaussian_noise(im, 0.1, NULL, &err));
    INVALID(img_patch_gaussian(im, 5, 5, 4, 0.1, NULL, &err));
    INVALID(img_patch_gaussian(im, 5, 5, -2, 0.1, &r, &err));
    INVALID(img_fourier_noise(im, 1, 1, 1.0, NULL, &err));
    INVALID(img_fourier_noise(im, 1, 1, 1.0, zero_sign, &err));
    INVALID(img_fourier_noise(im, 1, 1, 1.0, two_sign, &err));
    /* torch refuses sigma 0, and one that float32 rounds to 0 or infinity would give NaN or a
     * box kernel with no error. */
    double blur_sigmas[] = {0.0, 1e-50, 1e39, DBL_MAX};
    for (int i = 0; i < 4; i++)
        INVALID(img_gaussian_blur(im, 3, blur_sigmas[i], 1.0, &err));
    int sizes[] = {0, -1, 2, 4, INT_MIN, INT_MAX - 1, INT_MAX, 25};
    for (int i = 0; i < 8; i++)
        INVALID(img_gaussian_blur(im, sizes[i], 1.0, 1.0, &err));
    float weights[3];
    struct eng_error err = {0};
    assert_int_equal(img_gaussian_kernel(4, 1.0, weights, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    err.code = ENG_OK;
    assert_int_equal(img_gaussian_kernel(3, NAN, weights, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    err.code = ENG_OK;
    assert_int_equal(img_gaussian_kernel(3, 1.0, NULL, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    /* A 23-kernel pads by 11, which a 12-row image allows; 25 (pads 12) is refused above. */
    struct img *out = img_gaussian_blur(im, 23, 1.0, 1.0, &err);
    assert_non_null(out);
    img_free(out);
    img_free(im);
}

/* Boxes given with extreme coordinates clip without overflow. */
static void test_extreme_boxes(void **state)
{
    struct img *im = fixture_pattern(9, 7, 3, 0);
    const uint8_t v[4] = {255, 255, 255, 255};
    struct rng r;
    rng_init(&r, 3, 0, 0, 1);
    struct img *out = img_cutout(im, INT_MAX, INT_MIN, INT_MAX, v, NULL);
    assert_non_null(out);
    assert_int_equal(fixture_diff(out, im, 0, NULL), 0);
    img_free(out);
    out = img_cutout(im, 0, 0, INT_MAX, v, NULL); /* covers everything */
    assert_non_null(out);
    for (size_t t = 0; t < 9 * 7 * 3; t++)
        assert_int_equal(out->data[t], 255);
    img_free(out);
    out = img_erase(im, INT_MAX, INT_MAX, INT_MAX, INT_MAX, v, 0, NULL, NULL);
    assert_non_null(out);
    assert_int_equal(fixture_diff(out, im, 0, NULL), 0);
    img_free(out);
    out = img_erase(im, INT_MIN, INT_MIN, INT_MAX, INT_MAX, v, 0, NULL, NULL);
    assert_non_null(out);
    assert_int_equal(fixture_diff(out, im, 0, NULL), 0);
    img_free(out);
    out = img_patch_gaussian(im, INT_MIN, INT_MAX, INT_MAX, 1.0, &r, NULL);
    assert_non_null(out);
    assert_int_equal(fixture_diff(out, im, 0, NULL), 0);
    img_free(out);
    const int sign[3] = {1, 1, 1};
    out = img_fourier_noise(im, INT_MIN, INT_MAX, DBL_MAX, sign, NULL);
    assert_non_null(out);
    img_free(out);
    out = img_gaussian_noise(im, DBL_MAX, &r, NULL); /* every sample 0 or 255 */
    assert_non_null(out);
    for (size_t t = 0; t < 9 * 7 * 3; t++)
        assert_true(out->data[t] == 0 || out->data[t] == 255);
    img_free(out);
    img_free(im);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(noise_dir, sizeof noise_dir, "%s/noise", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_zero_noise_changes_nothing),
        cmocka_unit_test(test_boxes_confine_changes),
        cmocka_unit_test(test_noise_moments),
        cmocka_unit_test(test_same_stream_same_output),
        cmocka_unit_test(test_clipped_not_wrapped),
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_fourier_definition),
        cmocka_unit_test(test_blur_structure),
        cmocka_unit_test(test_strided_input_untouched),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_extreme_boxes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
