/* Unit tests of engine/image/geometry.c. argv[1]: the parity fixtures folder; every case of
 * geometry/manifest.json (written by tests/parity/gen_geometry.py from torchvision 0.14 on Pillow
 * 9.4) must come out with at most its "budget_pixels" differing pixels, which is 0 for all of
 * them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fixture.h"
#include "image/geometry.h"

static char geometry_dir[4096];

static double num(const json_t *args, const char *key)
{
    const json_t *v = json_object_get(args, key);
    if (!json_is_number(v)) fail_msg("manifest argument \"%s\" is not a number", key);
    return json_number_value(v);
}

static int integer(const json_t *args, const char *key)
{
    const json_t *v = json_object_get(args, key);
    if (!json_is_integer(v)) fail_msg("manifest argument \"%s\" is not an integer", key);
    return (int)json_integer_value(v);
}

static double item(const json_t *args, const char *key, size_t i)
{
    const json_t *v = json_array_get(json_object_get(args, key), i);
    if (!json_is_number(v)) fail_msg("manifest argument \"%s\"[%zu] is not a number", key, i);
    return json_number_value(v);
}

static enum img_interp interp_of(const json_t *args)
{
    const char *s = json_string_value(json_object_get(args, "interp"));
    if (s && !strcmp(s, "nearest")) return IMG_NEAREST;
    if (s && !strcmp(s, "bilinear")) return IMG_BILINEAR;
    fail_msg("manifest names an unknown interpolation \"%s\"", s ? s : "(none)");
    return IMG_NEAREST;
}

/* Reads "fill" (null or one value per channel) into fill; returns whether it was given. */
static bool fill_of(const json_t *args, uint8_t fill[4])
{
    const json_t *f = json_object_get(args, "fill");
    memset(fill, 0, 4);
    if (json_is_null(f)) return false;
    for (size_t i = 0; i < json_array_size(f) && i < 4; i++)
        fill[i] = (uint8_t)json_integer_value(json_array_get(f, i));
    return true;
}

static struct img *run_op(const char *op, const json_t *args, const struct img *in,
                          struct eng_error *err)
{
    uint8_t fill[4];
    const bool has_fill = fill_of(args, fill);
    if (!strcmp(op, "rotate"))
        return img_rotate(in, num(args, "degrees"), interp_of(args), fill, has_fill, err);
    if (!strcmp(op, "affine")) {
        const json_t *center = json_object_get(args, "center");
        const bool has_center = !json_is_null(center);
        return img_affine(
            in, num(args, "angle"), item(args, "translate", 0), item(args, "translate", 1),
            num(args, "scale"), item(args, "shear", 0), item(args, "shear", 1), has_center,
            has_center ? item(args, "center", 0) : 0.0, has_center ? item(args, "center", 1) : 0.0,
            interp_of(args), fill, has_fill, err);
    }
    if (!strcmp(op, "shear_x"))
        return img_shear_x(in, num(args, "factor"), interp_of(args), fill, has_fill, err);
    if (!strcmp(op, "shear_y"))
        return img_shear_y(in, num(args, "factor"), interp_of(args), fill, has_fill, err);
    if (!strcmp(op, "translate_x"))
        return img_translate_x(in, num(args, "pixels"), interp_of(args), fill, has_fill, err);
    if (!strcmp(op, "translate_y"))
        return img_translate_y(in, num(args, "pixels"), interp_of(args), fill, has_fill, err);
    if (!strcmp(op, "flip_lr")) return img_flip_lr(in, err);
    if (!strcmp(op, "flip_ud")) return img_flip_ud(in, err);
    if (!strcmp(op, "pad")) {
        static const char *const modes[] = {"constant", "edge", "reflect", "symmetric"};
        const char *mode = json_string_value(json_object_get(args, "mode"));
        for (int m = 0; m < 4; m++)
            if (mode && !strcmp(mode, modes[m]))
                return img_pad(in, (int)item(args, "padding", 0), (int)item(args, "padding", 1),
                               (int)item(args, "padding", 2), (int)item(args, "padding", 3),
                               (enum img_pad_mode)m, fill, has_fill, err);
        fail_msg("manifest names an unknown padding mode \"%s\"", mode ? mode : "(none)");
    }
    if (!strcmp(op, "crop"))
        return img_crop(in, integer(args, "top"), integer(args, "left"), integer(args, "height"),
                        integer(args, "width"), err);
    if (!strcmp(op, "center_crop"))
        return img_center_crop(in, integer(args, "height"), integer(args, "width"), err);
    if (!strcmp(op, "resize"))
        return img_resize(in, integer(args, "height"), integer(args, "width"), interp_of(args),
                          err);
    if (!strcmp(op, "resized_crop"))
        return img_resized_crop(in, integer(args, "top"), integer(args, "left"),
                                integer(args, "height"), integer(args, "width"),
                                integer(args, "out_height"), integer(args, "out_width"),
                                interp_of(args), err);
    if (!strcmp(op, "transform")) {
        double a[6];
        for (size_t i = 0; i < 6; i++)
            a[i] = item(args, "matrix", i);
        return img_transform(in, a, interp_of(args), fill, has_fill, err);
    }
    if (!strcmp(op, "resize_filter")) {
        static const char *const filters[] = {"nearest", "box",     "bilinear",
                                              "hamming", "bicubic", "lanczos"};
        const char *name = json_string_value(json_object_get(args, "filter"));
        for (int f = 0; f < 6; f++)
            if (name && !strcmp(name, filters[f]))
                return img_resize_filter(in, integer(args, "height"), integer(args, "width"),
                                         (enum img_filter)f, err);
        fail_msg("manifest names an unknown filter \"%s\"", name ? name : "(none)");
    }
    fail_msg("manifest names an unknown op \"%s\"", op);
    return NULL;
}

static bool same_pixels(const struct img *a, const struct img *b)
{
    return fixture_diff(a, b, 0, NULL) == 0;
}

static void test_parity(void **state)
{
    size_t total, failed = fixture_check_manifest(geometry_dir, run_op, ENG_INVALID, &total);
    assert_true(total > 100);
    if (failed) fail_msg("%zu of %zu parity cases failed", failed, total);
}

/* A copy of src whose rows are padded apart (stride > width * channels) with junk bytes. */
static struct img *strided_copy(const struct img *src)
{
    const size_t row = (size_t)src->width * (size_t)src->channels, stride = row + 13;
    struct img *im = malloc(sizeof *im);
    assert_non_null(im);
    *im = *src;
    im->stride = stride;
    im->data = malloc(stride * (size_t)src->height);
    assert_non_null(im->data);
    memset(im->data, 0xA5, stride * (size_t)src->height);
    for (int y = 0; y < src->height; y++)
        memcpy(img_row(im, y), img_row(src, y), row);
    return im;
}

/* Every op reads rows through the stride and leaves its input alone. */
static void test_strided_input(void **state)
{
    static const char *const inputs[] = {"in_photo.augf", "in_rgba.augf", "in_gray.augf"};
    const uint8_t fill[4] = {1, 2, 3, 4};
    for (size_t n = 0; n < sizeof inputs / sizeof *inputs; n++) {
        struct img *in = fixture_load(geometry_dir, inputs[n]);
        assert_non_null(in);
        struct img *st = strided_copy(in);
        struct img *st_before = strided_copy(in);
        for (int op = 0; op < 12; op++) {
            struct img *a = NULL, *b = NULL;
            for (int pass = 0; pass < 2; pass++) {
                const struct img *src = pass ? st : in;
                struct img *r = NULL;
                switch (op) {
                case 0:
                    r = img_rotate(src, 33.0, IMG_NEAREST, fill, true, NULL);
                    break;
                case 1:
                    r = img_rotate(src, -21.5, IMG_BILINEAR, fill, true, NULL);
                    break;
                case 2:
                    r = img_rotate(src, 90.0, IMG_NEAREST, NULL, false, NULL);
                    break;
                case 3:
                    r = img_shear_y(src, 0.4, IMG_BILINEAR, NULL, false, NULL);
                    break;
                case 4:
                    r = img_translate_x(src, -6, IMG_NEAREST, fill, true, NULL);
                    break;
                case 5:
                    r = img_flip_lr(src, NULL);
                    break;
                case 6:
                    r = img_flip_ud(src, NULL);
                    break;
                case 7:
                    r = img_pad(src, 40, 3, 2, 50, IMG_PAD_SYMMETRIC, NULL, false, NULL);
                    break;
                case 8:
                    r = img_center_crop(src, 50, 17, NULL);
                    break;
                case 9:
                    r = img_resize(src, 19, 71, IMG_BILINEAR, NULL);
                    break;
                case 10:
                    r = img_resize(src, 50, 9, IMG_NEAREST, NULL);
                    break;
                case 11:
                    r = img_resized_crop(src, 3, 2, 20, 25, 30, 11, IMG_BILINEAR, NULL);
                    break;
                }
                assert_non_null(r);
                *(pass ? &b : &a) = r;
            }
            if (!same_pixels(a, b))
                fail_msg("%s: op %d differs with a padded stride", inputs[n], op);
            assert_memory_equal(st->data, st_before->data, st->stride * (size_t)st->height);
            img_free(a);
            img_free(b);
        }
        free(st_before->data);
        free(st_before);
        free(st->data);
        free(st);
        img_free(in);
    }
}

/* The nearest-neighbour warps that step PIL's fixed point, over matrices that keep most pixels
 * inside, push most outside or step by fractions of a pixel. */
static struct img *run_warp(int i, const struct img *in, const uint8_t fill[4])
{
    static const double angles[] = {1.0, -7.5, 27.0, 45.0, 89.9, 90.0, -135.3, 181.0, 300.0};
    static const double factors[] = {0.02, -0.3, 0.999, 1.7, -4.0, 30.0};
    static const double moves[] = {0.5, -3.7, 12.25, -40.0, 1000.5};
    const int na = sizeof angles / sizeof *angles, nf = sizeof factors / sizeof *factors;
    const int nm = sizeof moves / sizeof *moves;
    if (i < na) return img_rotate(in, angles[i], IMG_NEAREST, fill, true, NULL);
    i -= na;
    if (i < nf) return img_shear_x(in, factors[i], IMG_NEAREST, fill, true, NULL);
    i -= nf;
    if (i < nf) return img_shear_y(in, factors[i], IMG_NEAREST, NULL, false, NULL);
    i -= nf;
    if (i < nm * na)
        return img_affine(in, angles[i % na], moves[i / na], -moves[i % nm], 0.3 + i % 4,
                          5.0 * (i % 3), -3.0 * (i % 5), false, 0, 0, IMG_NEAREST, fill, true,
                          NULL);
    return NULL;
}

/* The AVX-512 warp against the portable one, byte for byte, at every width up to past four
 * vectors, several heights, each channel count, padded strides and the image's last bytes. */
static void test_vector_warp_matches_portable(void **state)
{
    if (getenv("AUGENGINE_NO_AVX512")) skip(); /* both would be the portable code */
    const int channels[] = {1, 3, 4}, heights[] = {1, 2, 3, 5};
    const uint8_t fill[4] = {201, 202, 203, 204};
    for (int w = 1; w <= 70; w++)
        for (int c = 0; c < 3; c++)
            for (int h = 0; h < 4; h++) {
                struct img *in = fixture_pattern(w, heights[h], channels[c], (size_t)(w % 3) * 5);
                assert_non_null(in);
                struct img *vector;
                for (int i = 0; (vector = run_warp(i, in, fill)) != NULL; i++) {
                    setenv("AUGENGINE_NO_AVX512", "1", 1);
                    struct img *portable = run_warp(i, in, fill);
                    unsetenv("AUGENGINE_NO_AVX512");
                    assert_non_null(portable);
                    if (!same_pixels(vector, portable))
                        fail_msg("warp %d differs at %dx%d with %d channels", i, w, heights[h],
                                 channels[c]);
                    img_free(vector);
                    img_free(portable);
                }
                img_free(in);
            }
}

/* Every op on a bad argument: NULL with the code set, and no crash when err is NULL. */
#define EXPECT_INVALID(call)                                                                       \
    do {                                                                                           \
        struct eng_error e_ = {ENG_OK, ""};                                                        \
        struct eng_error *err = &e_;                                                               \
        struct img *r_ = (call);                                                                   \
        if (r_) fail_msg("accepted: %s", #call);                                                   \
        assert_int_equal(e_.code, ENG_INVALID);                                                    \
        assert_true(e_.message[0] != '\0');                                                        \
        err = NULL;                                                                                \
        assert_null(call);                                                                         \
    } while (0)

static void test_bad_input(void **state)
{
    struct img *in = fixture_load(geometry_dir, "in_photo.augf");
    assert_non_null(in);
    const uint8_t fill[4] = {0};
    const struct img *none = NULL;

    /* No image, or not a valid one. */
    EXPECT_INVALID(img_rotate(none, 10, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_affine(none, 0, 0, 0, 1, 0, 0, false, 0, 0, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_shear_x(none, 0.1, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_shear_y(none, 0.1, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_translate_x(none, 1, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_translate_y(none, 1, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_flip_lr(none, err));
    EXPECT_INVALID(img_flip_ud(none, err));
    EXPECT_INVALID(img_pad(none, 1, 1, 1, 1, IMG_PAD_EDGE, NULL, false, err));
    EXPECT_INVALID(img_crop(none, 0, 0, 2, 2, err));
    EXPECT_INVALID(img_center_crop(none, 2, 2, err));
    EXPECT_INVALID(img_resize(none, 2, 2, IMG_BILINEAR, err));
    EXPECT_INVALID(img_resized_crop(none, 0, 0, 2, 2, 2, 2, IMG_BILINEAR, err));
    struct img two = *in;
    two.channels = 2;
    EXPECT_INVALID(img_flip_lr(&two, err));
    struct img flat = *in;
    flat.height = 0;
    EXPECT_INVALID(img_rotate(&flat, 10, IMG_NEAREST, NULL, false, err));
    struct img narrow = *in;
    narrow.stride = 10;
    EXPECT_INVALID(img_resize(&narrow, 5, 5, IMG_NEAREST, err));

    /* Zero and negative sizes. */
    EXPECT_INVALID(img_crop(in, 0, 0, 0, 5, err));
    EXPECT_INVALID(img_crop(in, 0, 0, 5, -1, err));
    EXPECT_INVALID(img_center_crop(in, 0, 5, err));
    EXPECT_INVALID(img_center_crop(in, 5, -3, err));
    EXPECT_INVALID(img_resize(in, 0, 5, IMG_NEAREST, err));
    EXPECT_INVALID(img_resize(in, 5, -5, IMG_BILINEAR, err));
    EXPECT_INVALID(img_resized_crop(in, 0, 0, 0, 5, 5, 5, IMG_BILINEAR, err));
    EXPECT_INVALID(img_resized_crop(in, 0, 0, 5, 5, 5, 0, IMG_BILINEAR, err));
    EXPECT_INVALID(img_resize(in, 70000, 5, IMG_NEAREST, err));
    EXPECT_INVALID(img_pad(in, -40, 0, -30, 0, IMG_PAD_CONSTANT, NULL, false, err));
    EXPECT_INVALID(img_pad(in, -64, 0, 0, 0, IMG_PAD_REFLECT, NULL, false, err));
    EXPECT_INVALID(img_pad(in, 0, -30, 0, -30, IMG_PAD_EDGE, NULL, false, err));
    EXPECT_INVALID(img_pad(in, 70000, 0, 0, 0, IMG_PAD_CONSTANT, NULL, false, err));
    EXPECT_INVALID(
        img_pad(in, -2147483647 - 1, 0, 2147483647, 0, IMG_PAD_REFLECT, NULL, false, err));

    /* Bad numbers and enums. */
    EXPECT_INVALID(img_affine(in, 0, 0, 0, 0.0, 0, 0, false, 0, 0, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_affine(in, 0, 0, 0, -1.0, 0, 0, false, 0, 0, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_affine(in, NAN, 0, 0, 1, 0, 0, false, 0, 0, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(
        img_affine(in, 0, 0, 0, 1, 0, 0, true, INFINITY, 0, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(
        img_affine(in, 0, 0, 0, 1e-320, 0, 0, false, 0, 0, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_rotate(in, INFINITY, IMG_NEAREST, NULL, false, err));
    EXPECT_INVALID(img_rotate(in, 10, (enum img_interp)7, NULL, false, err));
    EXPECT_INVALID(img_resize(in, 5, 5, (enum img_interp) - 1, err));
    EXPECT_INVALID(img_shear_x(in, NAN, IMG_NEAREST, fill, true, err));
    EXPECT_INVALID(img_translate_y(in, -INFINITY, IMG_NEAREST, fill, true, err));
    EXPECT_INVALID(img_pad(in, 1, 1, 1, 1, (enum img_pad_mode)9, NULL, false, err));
    /* A fill marked given must be there. */
    EXPECT_INVALID(img_rotate(in, 10, IMG_BILINEAR, NULL, true, err));
    EXPECT_INVALID(img_pad(in, 1, 1, 1, 1, IMG_PAD_CONSTANT, NULL, true, err));
    img_free(in);
}

/* Arguments at the edges that PIL accepts come out as it has them. */
static void test_extreme_arguments(void **state)
{
    struct img *in = fixture_load(geometry_dir, "in_photo.augf");
    assert_non_null(in);
    const uint8_t fill[4] = {7, 8, 9, 0};
    /* Far out of frame: all fill. */
    struct img *r = img_translate_x(in, 1e9, IMG_BILINEAR, fill, true, NULL);
    assert_non_null(r);
    for (int y = 0; y < r->height; y++)
        for (int x = 0; x < r->width; x++)
            assert_memory_equal(img_row(r, y) + x * 3, fill, 3);
    img_free(r);
    /* A crop box far from the image is all zero and does not overflow. */
    r = img_crop(in, 2147483000, -2147483000, 3, 4, NULL);
    assert_non_null(r);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 12; x++)
            assert_int_equal(img_row(r, y)[x], 0);
    img_free(r);
    /* Whole turns and same-size resizes are exact copies. */
    r = img_rotate(in, -720.0, IMG_BILINEAR, fill, true, NULL);
    assert_non_null(r);
    assert_true(same_pixels(r, in));
    img_free(r);
    r = img_resize(in, in->height, in->width, IMG_BILINEAR, NULL);
    assert_non_null(r);
    assert_true(same_pixels(r, in));
    img_free(r);
    /* Downscaling to one pixel averages everything without overflowing the fixed point. */
    r = img_resize(in, 1, 1, IMG_BILINEAR, NULL);
    assert_non_null(r);
    assert_int_equal(r->width * r->height, 1);
    img_free(r);
    img_free(in);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(geometry_dir, sizeof geometry_dir, "%s/geometry", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),
        cmocka_unit_test(test_strided_input),
        cmocka_unit_test(test_vector_warp_matches_portable),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_extreme_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
