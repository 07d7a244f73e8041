/* Unit tests of engine/image/targets.c: box formats against hand-converted values, validation
 * messages, every geometric op's forward map against hand-computed boxes and keypoints, and against
 * the op's own pixel kernel (a rectangle mask warped by the kernel has the transformed box as its
 * extent, within the one pixel the enclosing box may round by), filters, and masks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/geometry.h"
#include "image/targets.h"

#define EPS 1e-9

static void assert_box(const struct target_box *b, double x1, double y1, double x2, double y2)
{
    if (fabs(b->x1 - x1) > EPS || fabs(b->y1 - y1) > EPS || fabs(b->x2 - x2) > EPS ||
        fabs(b->y2 - y2) > EPS)
        fail_msg("box [%.12g, %.12g, %.12g, %.12g], expected [%g, %g, %g, %g]", b->x1, b->y1, b->x2,
                 b->y2, x1, y1, x2, y2);
}

static void assert_values(const double *v, double a, double b, double c, double d)
{
    if (fabs(v[0] - a) > EPS || fabs(v[1] - b) > EPS || fabs(v[2] - c) > EPS ||
        fabs(v[3] - d) > EPS)
        fail_msg("values [%.12g, %.12g, %.12g, %.12g], expected [%g, %g, %g, %g]", v[0], v[1], v[2],
                 v[3], a, b, c, d);
}

/* A width x height 1-channel mask, 255 on [x1, x2) x [y1, y2). */
static struct img *rect_mask(int width, int height, int x1, int y1, int x2, int y2)
{
    struct img *m = img_new(width, height, 1, NULL);
    assert_non_null(m);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            img_row(m, y)[x] = x >= x1 && x < x2 && y >= y1 && y < y2 ? 255 : 0;
    return m;
}

/* A set holding one pascal_voc box (id 7) and one keypoint. */
static struct targets *one_box(int width, int height, double x1, double y1, double x2, double y2)
{
    struct targets *t = targets_new(width, height, 4, 4, NULL);
    assert_non_null(t);
    const double v[4] = {x1, y1, x2, y2};
    assert_int_equal(targets_add(t, v, 4, BOX_PASCAL_VOC, 7, NULL, 0, NULL), 0);
    return t;
}

/* ---- Formats ------------------------------------------------------------------------------- */

static void test_formats_by_hand(void **state)
{
    /* [20, 10, 60, 50] in a 200 x 100 image, converted by hand. */
    const struct target_box b = {20, 10, 60, 50};
    double v[4];
    targets_box_to(&b, BOX_COCO, 200, 100, v);
    assert_values(v, 20, 10, 40, 40);
    targets_box_to(&b, BOX_PASCAL_VOC, 200, 100, v);
    assert_values(v, 20, 10, 60, 50);
    targets_box_to(&b, BOX_YOLO, 200, 100, v);
    assert_values(v, 0.2, 0.3, 0.2, 0.4);
    targets_box_to(&b, BOX_ALBUMENTATIONS, 200, 100, v);
    assert_values(v, 0.1, 0.1, 0.3, 0.5);

    struct target_box r;
    const double coco[4] = {20, 10, 40, 40}, yolo[4] = {0.2, 0.3, 0.2, 0.4},
                 albu[4] = {0.1, 0.1, 0.3, 0.5};
    assert_int_equal(targets_box_from(coco, 4, BOX_COCO, 200, 100, 0, &r, NULL), 0);
    assert_box(&r, 20, 10, 60, 50);
    assert_int_equal(targets_box_from(yolo, 4, BOX_YOLO, 200, 100, 0, &r, NULL), 0);
    assert_box(&r, 20, 10, 60, 50);
    assert_int_equal(targets_box_from(albu, 4, BOX_ALBUMENTATIONS, 200, 100, 0, &r, NULL), 0);
    assert_box(&r, 20, 10, 60, 50);

    enum box_format fmt;
    assert_int_equal(targets_box_format_from_name("yolo", &fmt), 0);
    assert_int_equal(fmt, BOX_YOLO);
    assert_string_equal(targets_box_format_name(BOX_ALBUMENTATIONS), "albumentations");
    assert_int_equal(targets_box_format_from_name("xyxy", &fmt), -1);
}

/* Every format, out and back in, on odd image sizes with boxes touching the edges: normalised
 * values stay in [0, 1] and are accepted again (albumentations' "x_max out of range" bug). */
static void test_round_trips_stay_in_range(void **state)
{
    static const int sizes[][2] = {{3, 7}, {331, 97}, {1023, 641}, {17, 4093}};
    for (size_t s = 0; s < 4; s++) {
        const int w = sizes[s][0], h = sizes[s][1];
        for (int k = 0; k < 200; k++) {
            /* Corners on thirds and sevenths of the side, the last touching the far edge. */
            const double x1 = w * (k % 3) / 7.0, x2 = w - (k % 5 == 0 ? 0 : w / 3.0 * (k % 2));
            const double y1 = h * (k % 4) / 9.0, y2 = h - (k % 7 == 0 ? 0 : h / 7.0);
            const struct target_box b = {x1, y1, x2, y2};
            for (int f = 0; f < 4; f++) {
                double v[4];
                struct target_box back;
                targets_box_to(&b, (enum box_format)f, w, h, v);
                if (f == BOX_YOLO || f == BOX_ALBUMENTATIONS)
                    for (int i = 0; i < 4; i++)
                        assert_true(v[i] >= 0 && v[i] <= 1);
                struct eng_error err = {0};
                if (targets_box_from(v, 4, (enum box_format)f, w, h, k, &back, &err) != 0)
                    fail_msg("format %d, %dx%d: %s", f, w, h, err.message);
                if (fabs(back.x1 - x1) > 1e-9 * w || fabs(back.x2 - x2) > 1e-9 * w ||
                    fabs(back.y1 - y1) > 1e-9 * h || fabs(back.y2 - y2) > 1e-9 * h)
                    fail_msg("format %d drifts", f);
            }
        }
    }
    /* A box touching the right edge comes out at exactly 1. */
    const struct target_box edge = {1.0 / 3.0, 0, 331, 97};
    double v[4];
    targets_box_to(&edge, BOX_ALBUMENTATIONS, 331, 97, v);
    assert_true(v[2] == 1.0 && v[3] == 1.0);
}

static void expect_invalid(const double *v, size_t len, enum box_format fmt, int index,
                           const char *needle)
{
    struct target_box b;
    struct eng_error err = {0};
    assert_int_equal(targets_box_from(v, len, fmt, 100, 50, index, &b, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    if (!strstr(err.message, needle)) fail_msg("\"%s\" lacks \"%s\"", err.message, needle);
}

static void test_validation_names_the_index(void **state)
{
    const double outside[4] = {10, 10, 101, 20}, inverted[4] = {30, 10, 20, 20};
    const double nan_box[4] = {10, NAN, 20, 20}, negative[4] = {10, 10, -5, 5};
    const double yolo_out[4] = {0.95, 0.5, 0.2, 0.2}, below[4] = {-1, 0, 10, 10};
    expect_invalid(outside, 4, BOX_PASCAL_VOC, 3, "boxes[3]: ");
    expect_invalid(outside, 4, BOX_PASCAL_VOC, 3, "outside the 100x50 image");
    expect_invalid(inverted, 4, BOX_PASCAL_VOC, 4, "boxes[4]: ");
    expect_invalid(inverted, 4, BOX_PASCAL_VOC, 4, "inverted");
    expect_invalid(nan_box, 4, BOX_COCO, 5, "boxes[5]: value 1 is not a finite number");
    expect_invalid(negative, 4, BOX_COCO, 6, "boxes[6]: width -5");
    expect_invalid(yolo_out, 4, BOX_YOLO, 7, "boxes[7]: ");
    expect_invalid(below, 4, BOX_PASCAL_VOC, 8, "boxes[8]: ");
    expect_invalid(outside, 3, BOX_COCO, 9, "boxes[9]: has 3 values");
    expect_invalid(outside, 5, BOX_COCO, 10, "boxes[10]: has 5 values");

    /* More than the capacity; a mask of the wrong size. */
    struct targets *t = targets_new(100, 50, 1, 0, NULL);
    const double ok[4] = {0, 0, 10, 10};
    struct eng_error err = {0};
    assert_int_equal(targets_add(t, ok, 4, BOX_PASCAL_VOC, 0, NULL, 0, NULL), 0);
    assert_int_equal(targets_add(t, ok, 4, BOX_PASCAL_VOC, 1, NULL, 1, &err), -1);
    assert_int_equal(err.code, ENG_TOO_LARGE);
    targets_free(t);
    t = targets_new(100, 50, 2, 0, NULL);
    assert_int_equal(
        targets_add(t, ok, 4, BOX_PASCAL_VOC, 0, rect_mask(100, 40, 0, 0, 5, 5), 2, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_string_equal(err.message, "masks[2]: 100x40 differs from the image's 100x50");
    targets_free(t);
}

/* ---- Geometry by hand ---------------------------------------------------------------------- */

/* Maps a [10, 20, 30, 40] box and the keypoint (10.5, 20.5) of a 100 x 100 image through m. */
static struct targets *mapped(const double m[6], int out_w, int out_h,
                              const struct targets_filter *f)
{
    struct targets *t = one_box(100, 100, 10, 20, 30, 40);
    assert_int_equal(targets_add_keypoint(t, 10.5, 20.5, 3, 0, NULL), 0);
    assert_int_equal(targets_apply_affine(t, m, out_w, out_h, f, NULL), 0);
    return t;
}

static void test_rotate_flip_translate_by_hand(void **state)
{
    double m[6];
    /* 90 degrees counter-clockwise about (50, 50): (x, y) -> (y, 100 - x). */
    targets_matrix_rotate(m, 90, 100, 100);
    struct targets *t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 20, 70, 40, 90);
    assert_true(t->keypoints[0].x == 20.5 && t->keypoints[0].y == 89.5);
    targets_free(t);
    /* -270 is the same turn; 180 mirrors both axes. */
    targets_matrix_rotate(m, -270, 100, 100);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 20, 70, 40, 90);
    targets_free(t);
    targets_matrix_rotate(m, 180, 100, 100);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 70, 60, 90, 80);
    targets_free(t);
    /* 45 degrees: the corners (10, 20) .. (30, 40) about (50, 50) span sqrt(2) * 20 both ways,
     * the box's centre (20, 30) going to (50 + (-30 - 20) / sqrt(2), 50 + (30 - 20) / sqrt(2)). */
    targets_matrix_rotate(m, 45, 100, 100);
    t = mapped(m, 100, 100, NULL);
    const double cx = 50 - 50 / sqrt(2), cy = 50 + 10 / sqrt(2), r = 20 / sqrt(2);
    assert_box(&t->boxes[0], cx - r, cy - r, cx + r, cy + r);
    targets_free(t);

    targets_matrix_flip_lr(m, 100);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 70, 20, 90, 40);
    assert_true(t->keypoints[0].x == 89.5 && t->keypoints[0].y == 20.5);
    targets_free(t);
    targets_matrix_flip_ud(m, 100);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 10, 60, 30, 80);
    targets_free(t);

    /* TranslateX truncates as the kernel does: 15.7 -> 15, -12.9 -> -12. */
    targets_matrix_translate_x(m, 15.7);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 25, 20, 45, 40);
    targets_free(t);
    targets_matrix_translate_y(m, -12.9);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 10, 8, 30, 28);
    targets_free(t);
}

static void test_shears_by_hand(void **state)
{
    double m[6];
    /* ShearX(0.5): PIL samples x + 0.5 y, so content moves by -0.5 y: the corners' x become
     * 10 - 10, 30 - 10, 10 - 20, 30 - 20. */
    targets_matrix_shear_x(m, 0.5);
    struct targets *t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 0, 20, 20, 40);
    assert_true(t->keypoints[0].x == 10.5 - 0.5 * 20.5 && t->keypoints[0].y == 20.5);
    targets_free(t);
    /* ShearY(-0.5): y + 0.5 x: 20 + 5, 20 + 15, 40 + 5, 40 + 15. */
    targets_matrix_shear_y(m, -0.5);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 10, 25, 30, 55);
    targets_free(t);
}

static void test_crops_and_resizes_by_hand(void **state)
{
    double m[6];
    targets_matrix_resize(m, 100, 100, 50, 200);
    struct targets *t = mapped(m, 50, 200, NULL);
    assert_box(&t->boxes[0], 5, 40, 15, 80);
    targets_free(t);
    /* CenterCrop 50 x 40 of 100 x 100: origin (25, 30). */
    targets_matrix_center_crop(m, 100, 100, 50, 40);
    t = mapped(m, 50, 40, NULL);
    assert_box(&t->boxes[0], 0, 0, 5, 10);
    targets_free(t);
    /* Python rounds (101 - 50) / 2 = 25.5 to 26 and (100 - 51) / 2 = 24.5 to 24 (half to even). */
    targets_matrix_center_crop(m, 101, 100, 50, 51);
    assert_true(m[2] == -26 && m[5] == -24);
    /* A crop larger than the image pads: 10 -> 14 puts the image at 2. */
    targets_matrix_center_crop(m, 10, 10, 14, 15);
    assert_true(m[2] == 2 && m[5] == 2);
    /* RandomCrop padded by 4, at (top 2, left 6) of the padded image: x - 2, y + 2. */
    targets_matrix_random_crop(m, 4, 2, 6);
    t = mapped(m, 100, 100, NULL);
    assert_box(&t->boxes[0], 8, 22, 28, 42);
    targets_free(t);
    /* RandomResizedCrop of 40 x 50 at (10, 20), to 80 x 100: twice (x - 20, y - 10). */
    targets_matrix_resized_crop(m, 10, 20, 40, 50, 80, 100);
    t = mapped(m, 100, 80, NULL);
    assert_box(&t->boxes[0], 0, 20, 20, 60);
    assert_true(t->keypoints[0].visible == false); /* (-19, 21) */
    targets_free(t);
    targets_matrix_pad(m, 5, 7);
    t = mapped(m, 110, 110, NULL);
    assert_box(&t->boxes[0], 15, 27, 35, 47);
    targets_free(t);
}

/* ---- Geometry against the kernels ---------------------------------------------------------- */

enum op {
    ROTATE,
    SHEAR_X,
    SHEAR_Y,
    TRANSLATE_X,
    TRANSLATE_Y,
    FLIP_LR,
    FLIP_UD,
    RESIZE,
    CENTER_CROP,
    RANDOM_CROP,
    RESIZED_CROP,
    PAD
};

/* Runs the op's kernel on mask and builds its forward map, with arg as its magnitude. */
static struct img *kernel(enum op op, const struct img *mask, double arg, double m[6])
{
    const int w = mask->width, h = mask->height;
    switch (op) {
    case ROTATE:
        targets_matrix_rotate(m, arg, w, h);
        return img_rotate(mask, arg, IMG_NEAREST, NULL, false, NULL);
    case SHEAR_X:
        targets_matrix_shear_x(m, arg);
        return img_shear_x(mask, arg, IMG_NEAREST, NULL, false, NULL);
    case SHEAR_Y:
        targets_matrix_shear_y(m, arg);
        return img_shear_y(mask, arg, IMG_NEAREST, NULL, false, NULL);
    case TRANSLATE_X:
        targets_matrix_translate_x(m, arg);
        return img_translate_x(mask, arg, IMG_NEAREST, NULL, false, NULL);
    case TRANSLATE_Y:
        targets_matrix_translate_y(m, arg);
        return img_translate_y(mask, arg, IMG_NEAREST, NULL, false, NULL);
    case FLIP_LR:
        targets_matrix_flip_lr(m, w);
        return img_flip_lr(mask, NULL);
    case FLIP_UD:
        targets_matrix_flip_ud(m, h);
        return img_flip_ud(mask, NULL);
    case RESIZE:
        targets_matrix_resize(m, w, h, (int)(w * arg), (int)(h / arg));
        return img_resize(mask, (int)(h / arg), (int)(w * arg), IMG_NEAREST, NULL);
    case CENTER_CROP:
        targets_matrix_center_crop(m, w, h, (int)(w * arg), (int)(h * arg) + 1);
        return img_center_crop(mask, (int)(h * arg) + 1, (int)(w * arg), NULL);
    case RANDOM_CROP: {
        /* As RandomCrop's kernel: pad every side, then crop. */
        const int pad = (int)arg;
        targets_matrix_random_crop(m, pad, 3, 2 * pad - 1);
        struct img *padded = img_pad(mask, pad, pad, pad, pad, IMG_PAD_CONSTANT, NULL, false, NULL);
        struct img *out = img_crop(padded, 3, 2 * pad - 1, h, w, NULL);
        img_free(padded);
        return out;
    }
    case RESIZED_CROP:
        targets_matrix_resized_crop(m, 5, 7, h / 2, w / 2, (int)(h * arg), (int)(w * arg));
        return img_resized_crop(mask, 5, 7, h / 2, w / 2, (int)(h * arg), (int)(w * arg),
                                IMG_NEAREST, NULL);
    case PAD:
        targets_matrix_pad(m, (int)arg, 2);
        return img_pad(mask, (int)arg, 2, 1, (int)arg, IMG_PAD_CONSTANT, NULL, false, NULL);
    }
    return NULL;
}

static void check_against_kernel(enum op op, double arg, int x1, int y1, int x2, int y2)
{
    const int w = 64, h = 48;
    struct img *mask = rect_mask(w, h, x1, y1, x2, y2);
    double m[6];
    struct img *out = kernel(op, mask, arg, m);
    assert_non_null(out);
    struct targets *t = targets_new(w, h, 1, 0, NULL);
    const double v[4] = {x1, y1, x2, y2};
    assert_int_equal(targets_add(t, v, 4, BOX_PASCAL_VOC, 0, mask, 0, NULL), 0);
    assert_int_equal(targets_apply_affine(t, m, out->width, out->height, NULL, NULL), 0);
    struct target_box kb, wb;
    assert_true(targets_mask_extent(out, &kb));
    assert_true(targets_mask_extent(t->masks[0], &wb));
    const struct target_box *b = &t->boxes[0];
    /* The kernel's mask and our own warp of it both span the transformed box. */
    if (fabs(kb.x1 - b->x1) > 1 || fabs(kb.y1 - b->y1) > 1 || fabs(kb.x2 - b->x2) > 1 ||
        fabs(kb.y2 - b->y2) > 1 || fabs(wb.x1 - b->x1) > 1 || fabs(wb.y1 - b->y1) > 1 ||
        fabs(wb.x2 - b->x2) > 1 || fabs(wb.y2 - b->y2) > 1)
        fail_msg("op %d (%g): box [%g, %g, %g, %g], kernel's mask [%g, %g, %g, %g], warped "
                 "[%g, %g, %g, %g]",
                 (int)op, arg, b->x1, b->y1, b->x2, b->y2, kb.x1, kb.y1, kb.x2, kb.y2, wb.x1, wb.y1,
                 wb.x2, wb.y2);
    img_free(out);
    targets_free(t);
}

static void test_maps_match_kernels(void **state)
{
    static const double rotations[] = {90, -90, 180, 270, 30, -45, 12.5, 333};
    for (size_t i = 0; i < sizeof rotations / sizeof *rotations; i++)
        check_against_kernel(ROTATE, rotations[i], 20, 14, 40, 30);
    /* The non-square image's quarter turn goes through PIL's affine path, not a transpose. */
    check_against_kernel(ROTATE, 90, 26, 18, 38, 30);
    static const double shears[] = {0.3, -0.3, 0.1, -0.05};
    for (size_t i = 0; i < 4; i++) {
        check_against_kernel(SHEAR_X, shears[i], 20, 14, 40, 30);
        check_against_kernel(SHEAR_Y, shears[i], 20, 14, 40, 30);
    }
    check_against_kernel(TRANSLATE_X, 10.8, 20, 14, 40, 30);
    check_against_kernel(TRANSLATE_X, -25.2, 20, 14, 40, 30);
    check_against_kernel(TRANSLATE_Y, 7.5, 20, 14, 40, 30);
    check_against_kernel(TRANSLATE_Y, -18, 20, 14, 40, 30);
    check_against_kernel(FLIP_LR, 0, 3, 5, 17, 40);
    check_against_kernel(FLIP_UD, 0, 3, 5, 17, 40);
    check_against_kernel(RESIZE, 1.5, 3, 5, 17, 40);
    check_against_kernel(RESIZE, 0.7, 3, 5, 17, 40);
    check_against_kernel(CENTER_CROP, 0.6, 10, 10, 40, 30);
    check_against_kernel(CENTER_CROP, 1.3, 10, 10, 40, 30);
    check_against_kernel(RANDOM_CROP, 4, 10, 10, 40, 30);
    check_against_kernel(RESIZED_CROP, 0.75, 10, 10, 40, 30);
    check_against_kernel(RESIZED_CROP, 2, 10, 10, 40, 30);
    check_against_kernel(PAD, 6, 10, 10, 40, 30);
}

/* ---- Filters, keypoints, masks ------------------------------------------------------------- */

static void test_filters_report_original_index(void **state)
{
    /* Three boxes; moving 20 to the left leaves 0, half and all of them. */
    struct targets *t = targets_new(100, 100, 3, 0, NULL);
    const double boxes[3][4] = {{0, 0, 20, 10}, {10, 0, 30, 10}, {40, 0, 60, 50}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(targets_add(t, boxes[i], 4, BOX_PASCAL_VOC, 10 + i, NULL, i, NULL), 0);
    double m[6];
    targets_matrix_translate_x(m, -20);
    const struct targets_filter f = {.min_visibility = 0.6};
    assert_int_equal(targets_apply_affine(t, m, 100, 100, &f, NULL), 0);
    assert_int_equal(t->count, 1);
    assert_int_equal(t->ids[0], 12);
    assert_box(&t->boxes[0], 20, 0, 40, 50);
    assert_int_equal(t->dropped_count, 2);
    assert_int_equal(t->dropped[0].id, 10);
    assert_string_equal(targets_drop_reason_name(t->dropped[0].reason), "outside");
    assert_int_equal(t->dropped[1].id, 11);
    assert_string_equal(targets_drop_reason_name(t->dropped[1].reason), "min_visibility");
    /* Half visible passes 0.5; min_area and min_width judge the clipped box. */
    const struct targets_filter area = {.min_area = 1001}, width = {.min_width = 21};
    struct targets *u = one_box(100, 100, 10, 0, 30, 100);
    assert_int_equal(targets_apply_affine(u, m, 100, 100, &area, NULL), 0);
    assert_int_equal(u->count, 0);
    assert_int_equal(u->dropped[0].reason, TARGET_DROP_AREA);
    targets_free(u);
    u = one_box(100, 100, 10, 0, 70, 100);
    assert_int_equal(targets_apply_affine(u, m, 100, 100, &width, NULL), 0);
    assert_int_equal(u->count, 1); /* 50 wide */
    targets_free(u);
    targets_free(t);
}

static void test_keypoints_flagged_outside(void **state)
{
    struct targets *t = targets_new(50, 50, 0, 3, NULL);
    assert_int_equal(targets_add_keypoint(t, 5, 5, 0, 0, NULL), 0);
    assert_int_equal(targets_add_keypoint(t, 45.25, 10, 1, 1, NULL), 0);
    struct eng_error err = {0};
    assert_int_equal(targets_add_keypoint(t, 50, 10, 2, 2, &err), -1);
    assert_string_equal(err.message, "keypoints[2]: (50, 10) is outside the 50x50 image");
    double m[6];
    targets_matrix_translate_x(m, 6);
    assert_int_equal(targets_apply_affine(t, m, 50, 50, NULL, NULL), 0);
    assert_true(t->keypoints[0].visible && t->keypoints[0].x == 11);
    assert_false(t->keypoints[1].visible);
    assert_true(t->keypoints[1].x == 51.25);
    /* Once invisible, always: moving back does not revive it. */
    targets_matrix_translate_x(m, -6);
    assert_int_equal(targets_apply_affine(t, m, 50, 50, NULL, NULL), 0);
    assert_false(t->keypoints[1].visible);
    targets_free(t);
}

static void test_masks_and_label_maps(void **state)
{
    struct img *m = rect_mask(20, 10, 3, 2, 8, 5);
    struct target_box b;
    assert_true(targets_mask_extent(m, &b));
    assert_box(&b, 3, 2, 8, 5);
    assert_int_equal(targets_mask_area(m), 15);
    /* A mask-only object gets its extent; an empty one is dropped by boxes_from_masks. */
    struct targets *t = targets_new(20, 10, 2, 0, NULL);
    assert_int_equal(targets_add_mask(t, m, 0, 0, NULL), 0);
    assert_int_equal(targets_add_mask(t, rect_mask(20, 10, 0, 0, 0, 0), 1, 1, NULL), 0);
    assert_box(&t->boxes[0], 3, 2, 8, 5);
    assert_int_equal(targets_boxes_from_masks(t, NULL), 0);
    assert_int_equal(t->count, 1);
    assert_int_equal(t->dropped[0].id, 1);
    targets_free(t);

    /* Label 1 on the left column, 2 on the bottom-right pixel; 3 is refused for count 2. */
    struct img *labels = rect_mask(4, 3, 0, 0, 0, 0);
    for (int y = 0; y < 3; y++)
        img_row(labels, y)[0] = 1;
    img_row(labels, 2)[3] = 2;
    struct img *masks[2];
    assert_int_equal(targets_masks_from_label_map(labels, 2, masks, NULL), 0);
    assert_int_equal(targets_mask_area(masks[0]), 3);
    assert_int_equal(targets_mask_area(masks[1]), 1);
    assert_int_equal(img_row(masks[1], 2)[3], 255);
    img_free(masks[0]);
    img_free(masks[1]);
    img_row(labels, 0)[2] = 3;
    struct eng_error err = {0};
    assert_int_equal(targets_masks_from_label_map(labels, 2, masks, &err), -1);
    assert_string_equal(err.message, "label map: pixel (2, 0) has label 3; labels go up to 2");
    img_free(labels);
}

static void test_matrix_algebra(void **state)
{
    double a[6], b[6], m[6], inv[6];
    targets_matrix_rotate(a, 30, 64, 48);
    targets_matrix_shear_x(b, 0.2);
    targets_matrix_compose(a, b, m);
    assert_int_equal(targets_matrix_invert(m, inv), 0);
    double x = 3.25, y = -7.5, px, py;
    px = m[0] * x + m[1] * y + m[2];
    py = m[3] * x + m[4] * y + m[5];
    assert_true(fabs(inv[0] * px + inv[1] * py + inv[2] - x) < EPS);
    assert_true(fabs(inv[3] * px + inv[4] * py + inv[5] - y) < EPS);
    const double singular[6] = {1, 2, 0, 2, 4, 0};
    assert_int_equal(targets_matrix_invert(singular, inv), -1);
    struct targets *t = one_box(10, 10, 1, 1, 2, 2);
    struct eng_error err = {0};
    assert_int_equal(targets_apply_affine(t, singular, 10, 10, NULL, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(t->count, 1);
    targets_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_by_hand),
        cmocka_unit_test(test_round_trips_stay_in_range),
        cmocka_unit_test(test_validation_names_the_index),
        cmocka_unit_test(test_rotate_flip_translate_by_hand),
        cmocka_unit_test(test_shears_by_hand),
        cmocka_unit_test(test_crops_and_resizes_by_hand),
        cmocka_unit_test(test_maps_match_kernels),
        cmocka_unit_test(test_filters_report_original_index),
        cmocka_unit_test(test_keypoints_flagged_outside),
        cmocka_unit_test(test_masks_and_label_maps),
        cmocka_unit_test(test_matrix_algebra),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
