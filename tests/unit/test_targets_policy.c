/* Targets through the policy path (policy_sample, then trace_apply_targets): every geometric op
 * of the registry on a known box and keypoint against hand-computed positions; point ops leave
 * targets alone; masks and boxes stay consistent over many random policies; filters at the end;
 * mix refused; and the detection presets against a separately typed copy of the TPU reference's
 * tables (policy_v0 ... policy_v3 and level_to_arg in models/official/detection/utils/
 * autoaugment_utils.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/targets.h"
#include "policy/ops.h"
#include "policy/policy.h"

#define EPS 1e-9
#define W   40
#define H   30

static struct policy *parse(const char *text)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (!p) fail_msg("%s: %s", text, err.message);
    return p;
}

/* A W x H RGB image of a gradient, so geometric kernels have something to move. */
static struct img *gradient(int width, int height)
{
    struct img *im = img_new(width, height, 3, NULL);
    assert_non_null(im);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width * 3; x++)
            img_row(im, y)[x] = (uint8_t)(x * 3 + y * 5);
    return im;
}

/* One pascal_voc box [10, 5, 20, 10] (id 3) and one keypoint (12, 8) (id 4) on a W x H image. */
static struct targets *known_targets(void)
{
    struct targets *t = targets_new(W, H, 4, 4, NULL);
    assert_non_null(t);
    const double v[4] = {10, 5, 20, 10};
    assert_int_equal(targets_add(t, v, 4, BOX_PASCAL_VOC, 3, NULL, 0, NULL), 0);
    assert_int_equal(targets_add_keypoint(t, 12, 8, 4, 0, NULL), 0);
    return t;
}

/* Runs policy text with seed on the known targets; returns the trace's JSON (caller frees) and
 * leaves the output size in *ow, *oh. */
static json_t *run(const char *text, uint64_t seed, struct targets *t, int *ow, int *oh)
{
    struct eng_error err = {0};
    struct policy *p = parse(text);
    struct img *in = gradient(W, H);
    struct trace *tr = policy_sample(p, seed, 0, 0, W, H, &err);
    if (!tr) fail_msg("%s: %s", text, err.message);
    struct img *out = trace_apply_targets(tr, in, t, NULL, seed, 0, 0, &err);
    if (!out) fail_msg("%s: %s", text, err.message);
    *ow = out->width;
    *oh = out->height;
    assert_int_equal(t->width, out->width);
    assert_int_equal(t->height, out->height);
    json_t *j = trace_to_json(tr);
    img_free(out);
    img_free(in);
    trace_free(tr);
    policy_free(p);
    return j;
}

static double trace_arg(const json_t *trace, const char *name)
{
    const json_t *v = json_object_get(json_array_get(trace, 0), name);
    if (!json_is_number(v)) fail_msg("the trace has no %s", name);
    return json_number_value(v);
}

static void expect(const char *what, const struct targets *t, double x1, double y1, double x2,
                   double y2, double kx, double ky)
{
    const struct target_box *b = &t->boxes[0];
    const struct target_keypoint *k = &t->keypoints[0];
    if (t->count != 1 || fabs(b->x1 - x1) > EPS || fabs(b->y1 - y1) > EPS ||
        fabs(b->x2 - x2) > EPS || fabs(b->y2 - y2) > EPS)
        fail_msg("%s: box [%.9g, %.9g, %.9g, %.9g], expected [%g, %g, %g, %g]", what, b->x1, b->y1,
                 b->x2, b->y2, x1, y1, x2, y2);
    if (fabs(k->x - kx) > EPS || fabs(k->y - ky) > EPS)
        fail_msg("%s: keypoint (%.9g, %.9g), expected (%g, %g)", what, k->x, k->y, kx, ky);
    assert_int_equal(t->ids[0], 3);
    assert_int_equal(t->keypoint_ids[0], 4);
}

/* Fixed-argument geometric ops, by hand: box [10, 5, 20, 10], keypoint (12, 8), 40 x 30. */
static void test_fixed_ops_by_hand(void **state)
{
    static const struct {
        const char *policy;
        double x1, y1, x2, y2, kx, ky;
        int ow, oh;
    } cases[] = {
        /* Counter-clockwise about (20, 15): (x, y) -> (y + 5, 35 - x). */
        {"{\"op\": \"Rotate\", \"degrees\": 90}", 10, 15, 15, 25, 13, 23, W, H},
        {"{\"op\": \"Rotate_BBox\", \"degrees\": 90}", 10, 15, 15, 25, 13, 23, W, H},
        /* 180 degrees: (x, y) -> (40 - x, 30 - y). */
        {"{\"op\": \"Rotate\", \"degrees\": -180}", 20, 20, 30, 25, 28, 22, W, H},
        /* x' = x - 0.5 y: corners 10 - 2.5, 10 - 5, 20 - 2.5, 20 - 5. */
        {"{\"op\": \"ShearX\", \"factor\": 0.5}", 5, 5, 17.5, 10, 8, 8, W, H},
        {"{\"op\": \"ShearX_BBox\", \"factor\": 0.5}", 5, 5, 17.5, 10, 8, 8, W, H},
        /* y' = y + 0.25 x: 5 + 2.5, 10 + 5. */
        {"{\"op\": \"ShearY\", \"factor\": -0.25}", 10, 7.5, 20, 15, 12, 11, W, H},
        {"{\"op\": \"ShearY_BBox\", \"factor\": -0.25}", 10, 7.5, 20, 15, 12, 11, W, H},
        /* Truncated toward zero. */
        {"{\"op\": \"TranslateX\", \"pixels\": 7.9}", 17, 5, 27, 10, 19, 8, W, H},
        {"{\"op\": \"TranslateY\", \"pixels\": -3.5}", 10, 2, 20, 7, 12, 5, W, H},
        /* The reference's translate moves the content by -pixels. */
        {"{\"op\": \"TranslateX_BBox\", \"pixels\": 4}", 6, 5, 16, 10, 8, 8, W, H},
        {"{\"op\": \"TranslateY_BBox\", \"pixels\": -6}", 10, 11, 20, 16, 12, 14, W, H},
        /* timm's fractional shifts. */
        {"{\"op\": \"TranslateXRel\", \"pixels\": 2.5}", 12.5, 5, 22.5, 10, 14.5, 8, W, H},
        {"{\"op\": \"TranslateYRel\", \"pixels\": -1.25}", 10, 3.75, 20, 8.75, 12, 6.75, W, H},
        {"{\"op\": \"FlipLR\"}", 20, 5, 30, 10, 28, 8, W, H},
        {"{\"op\": \"FlipUD\"}", 10, 20, 20, 25, 12, 22, W, H},
        /* The centre 20 x 20: origin (10, 5). */
        {"{\"op\": \"CenterCrop\", \"height\": 20, \"width\": 20}", 0, 0, 10, 5, 2, 3, 20, 20},
        /* Larger than the image: padded by (60 - 40) / 2 and (50 - 30) / 2. */
        {"{\"op\": \"CenterCrop\", \"height\": 50, \"width\": 60}", 20, 15, 30, 20, 22, 18, 60, 50},
        /* x2 horizontally, / 2 vertically. */
        {"{\"op\": \"Resize\", \"height\": 15, \"width\": 80}", 20, 2.5, 40, 5, 24, 4, 80, 15},
        {"{\"op\": \"Pad\", \"left\": 3, \"top\": 4, \"right\": 1, \"bottom\": 2}", 13, 9, 23, 14,
         15, 12, 44, 36},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct targets *t = known_targets();
        int ow, oh;
        json_t *tr = run(cases[i].policy, 1, t, &ow, &oh);
        expect(cases[i].policy, t, cases[i].x1, cases[i].y1, cases[i].x2, cases[i].y2, cases[i].kx,
               cases[i].ky);
        assert_int_equal(ow, cases[i].ow);
        assert_int_equal(oh, cases[i].oh);
        json_decref(tr);
        targets_free(t);
    }
}

/* A crop that leaves nothing of the box drops it; the keypoint goes invisible. */
static void test_crop_away(void **state)
{
    struct targets *t = known_targets();
    int ow, oh;
    json_t *tr = run("{\"op\": \"CenterCrop\", \"height\": 10, \"width\": 20}", 1, t, &ow, &oh);
    /* The box [10, 5, 20, 10] maps to [0, -5, 10, 0]: no area inside. */
    assert_int_equal(t->count, 0);
    assert_int_equal(t->dropped_count, 1);
    assert_int_equal(t->dropped[0].id, 3);
    assert_int_equal(t->dropped[0].reason, TARGET_DROP_OUTSIDE);
    assert_false(t->keypoints[0].visible);
    json_decref(tr);
    targets_free(t);
}

/* Ops whose arguments are drawn: the expectation from the trace's drawn values. */
static void test_drawn_ops_by_hand(void **state)
{
    for (uint64_t seed = 0; seed < 20; seed++) {
        struct targets *t = known_targets();
        int ow, oh;
        json_t *tr = run("{\"op\": \"RandomCrop\", \"height\": 30, \"width\": 40, \"padding\": 4}",
                         seed, t, &ow, &oh);
        const double dx = 4 - trace_arg(tr, "left"), dy = 4 - trace_arg(tr, "top");
        expect("RandomCrop", t, 10 + dx, 5 + dy, 20 + dx, 10 + dy, 12 + dx, 8 + dy);
        json_decref(tr);
        targets_free(t);

        t = known_targets();
        tr = run("{\"op\": \"RandomResizedCrop\", \"height\": 60, \"width\": 80, \"scale_min\": "
                 "0.9}",
                 seed, t, &ow, &oh);
        const double top = trace_arg(tr, "top"), left = trace_arg(tr, "left");
        const double sx = 80 / trace_arg(tr, "crop_width"), sy = 60 / trace_arg(tr, "crop_height");
        const double x1 = fmax((10 - left) * sx, 0), y1 = fmax((5 - top) * sy, 0);
        expect("RandomResizedCrop", t, x1, y1, fmin((20 - left) * sx, 80),
               fmin((10 - top) * sy, 60), (12 - left) * sx, (8 - top) * sy);
        json_decref(tr);
        targets_free(t);
    }
}

/* Levels and random signs go through the same maps. */
static void test_level_ops_follow_their_trace(void **state)
{
    for (uint64_t seed = 0; seed < 10; seed++) {
        struct targets *t = known_targets();
        int ow, oh;
        json_t *tr = run("{\"op\": \"TranslateX_BBox\", \"level\": {\"magnitude\": 0.4}}", seed, t,
                         &ow, &oh);
        const double pixels = trace_arg(tr, "pixels");
        assert_true(fabs(fabs(pixels) - 10) < EPS); /* 0.4 / 10 * 250 */
        expect("TranslateX_BBox", t, 10 - pixels, 5, 20 - pixels, 10, 12 - pixels, 8);
        json_decref(tr);
        targets_free(t);
    }
}

/* Point, noise and erasing ops, and box-local detection ops, leave targets where they are. */
static void test_point_ops_leave_targets(void **state)
{
    static const char *const policies[] = {
        "{\"op\": \"Equalize\"}",
        "{\"op\": \"Solarize\", \"threshold\": 100}",
        "{\"op\": \"GaussianNoise\", \"sigma\": 0.2}",
        "{\"op\": \"Cutout\", \"size\": 10}",
        "{\"op\": \"RandomErasing\"}",
        "{\"op\": \"BBox_Cutout\", \"pad_fraction\": 0.75}",
        "{\"op\": \"Rotate_Only_BBoxes\", \"prob\": 1, \"degrees\": 30}",
        "{\"op\": \"TranslateY_Only_BBoxes\", \"prob\": 1, \"pixels\": 30}",
        "detection-v0",
    };
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
        for (uint64_t seed = 0; seed < (i == 8 ? 1 : 5); seed++) {
            struct targets *t = known_targets();
            int ow, oh;
            json_t *tr = run(policies[i], seed, t, &ow, &oh);
            if (i < 8) expect(policies[i], t, 10, 5, 20, 10, 12, 8);
            json_decref(tr);
            targets_free(t);
        }
}

/* The registry declares how each image op treats targets: ops that move or resize pixels carry a
 * forward map, and the list of them is this one. */
static void test_registry_declares_maps(void **state)
{
    static const char *const mapped[] = {"Rotate",
                                         "ShearX",
                                         "ShearY",
                                         "TranslateX",
                                         "TranslateY",
                                         "TranslateXRel",
                                         "TranslateYRel",
                                         "FlipLR",
                                         "FlipUD",
                                         "CenterCrop",
                                         "Resize",
                                         "Pad",
                                         "RandomResizedCrop",
                                         "RandomCrop",
                                         "Rotate_BBox",
                                         "ShearX_BBox",
                                         "ShearY_BBox",
                                         "TranslateX_BBox",
                                         "TranslateY_BBox"};
    size_t count, with_map = 0;
    const struct op_desc *ops = op_table(&count);
    for (size_t i = 0; i < count; i++) {
        int listed = 0;
        for (size_t k = 0; k < sizeof mapped / sizeof mapped[0]; k++)
            listed |= strcmp(mapped[k], ops[i].name) == 0;
        if (listed != (ops[i].map_targets != NULL))
            fail_msg("%s: map_targets %s", ops[i].name, listed ? "missing" : "unexpected");
        /* Whatever resizes or interpolates must say how targets move (the box ops interpolate
         * inside boxes only). */
        if ((ops[i].output_size || (ops[i].takes & OP_TAKES_INTERPOLATION)) &&
            ops[i].domain == OP_DOMAIN_IMAGE && !ops[i].apply_boxes)
            assert_non_null(ops[i].map_targets);
        with_map += ops[i].map_targets != NULL;
    }
    assert_int_equal(with_map, sizeof mapped / sizeof mapped[0]);
}

/* ---- Masks and boxes agree ------------------------------------------------------------------ */

/* Random policies of exact axis-aligned steps and one rotation or shear: every box (its four
 * corners' enclosing box) equals its mask's extent (the pixels whose centres map inside the
 * object) within the rounding rule: a mask edge lies within 1.5 pixels of the box's, the corner of
 * a rotated rectangle being the farthest a pixel centre can miss it by. Objects the image's edge
 * cut are held to their mask lying inside the box. */
static void test_masks_match_boxes(void **state)
{
    static const char policy[] =
        "{\"seq\": [{\"p\": 0.5, \"do\": {\"op\": \"FlipLR\"}}, {\"choice\": [{\"op\": "
        "\"RandomCrop\", \"padding\": 6}, {\"op\": \"Pad\", \"left\": 5, \"top\": 2}, {\"op\": "
        "\"TranslateY\", \"level\": 0.2}]}, {\"choice\": [{\"op\": \"Rotate\", \"level\": 1, "
        "\"interpolation\": \"nearest\"}, {\"op\": \"ShearX\", \"level\": 1}, {\"op\": "
        "\"Rotate_BBox\", \"level\": {\"magnitude\": 10}}, {\"op\": \"ShearY_BBox\", \"level\": "
        "{\"magnitude\": 7}}]}, {\"p\": 0.5, \"do\": {\"op\": \"FlipUD\"}}, {\"op\": "
        "\"TranslateX_BBox\", \"level\": {\"magnitude\": 0.4}}]}";
    static const int rects[][4] = {{4, 3, 14, 12}, {20, 10, 35, 26}, {12, 18, 19, 29}};
    struct policy *p = parse(policy);
    struct img *in = gradient(W, H);
    size_t checked = 0, whole = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        struct eng_error err = {0};
        struct targets *t = targets_new(W, H, 4, 0, NULL);
        for (int i = 0; i < 3; i++) {
            struct img *m = img_new(W, H, 1, NULL);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    img_row(m, y)[x] =
                        x >= rects[i][0] && x < rects[i][2] && y >= rects[i][1] && y < rects[i][3]
                            ? 255
                            : 0;
            const double v[4] = {rects[i][0], rects[i][1], rects[i][2], rects[i][3]};
            assert_int_equal(targets_add(t, v, 4, BOX_PASCAL_VOC, i, m, i, &err), 0);
        }
        struct trace *tr = policy_sample(p, seed, 0, 0, W, H, &err);
        assert_non_null(tr);
        struct img *out = trace_apply_targets(tr, in, t, NULL, seed, 0, 0, &err);
        if (!out) fail_msg("seed %llu: %s", (unsigned long long)seed, err.message);
        for (size_t i = 0; i < t->count; i++) {
            struct target_box e;
            const struct target_box *b = &t->boxes[i];
            if (!targets_mask_extent(t->masks[i], &e)) {
                /* A sliver of a box can hold no pixel centre. */
                assert_true((b->x2 - b->x1) < 1.5 || (b->y2 - b->y1) < 1.5);
                continue;
            }
            /* An object cut by the image's edge keeps the clipped enclosing box of all of it,
             * which may reach past what is left of its mask: there the mask only lies inside. */
            const struct target_box *u = &t->unclipped[i];
            const int cut = u->x1 != b->x1 || u->y1 != b->y1 || u->x2 != b->x2 || u->y2 != b->y2;
            const int off = cut ? e.x1 < b->x1 - 1.5 || e.y1 < b->y1 - 1.5 || e.x2 > b->x2 + 1.5 ||
                                      e.y2 > b->y2 + 1.5
                                : fabs(e.x1 - b->x1) > 1.5 || fabs(e.y1 - b->y1) > 1.5 ||
                                      fabs(e.x2 - b->x2) > 1.5 || fabs(e.y2 - b->y2) > 1.5;
            if (off)
                fail_msg("seed %llu object %d: box [%g, %g, %g, %g], mask extent [%g, %g, %g, %g]",
                         (unsigned long long)seed, t->ids[i], b->x1, b->y1, b->x2, b->y2, e.x1,
                         e.y1, e.x2, e.y2);
            whole += !cut;
            checked++;
        }
        img_free(out);
        trace_free(tr);
        targets_free(t);
    }
    if (checked < 600 || whole < 200) fail_msg("%zu objects checked, %zu whole", checked, whole);
    img_free(in);
    policy_free(p);
}

/* ---- Filters and refusals ------------------------------------------------------------------- */

/* Filters run at the end: a box shifted half out of the image has visibility 0.5. */
static void test_filters_at_the_end(void **state)
{
    struct eng_error err = {0};
    struct policy *p = parse("{\"seq\": [{\"op\": \"TranslateX\", \"pixels\": 25}, {\"op\": "
                             "\"TranslateX\", \"pixels\": -5}]}");
    struct img *in = gradient(W, H);
    const struct {
        struct targets_filter f;
        int kept;
        enum target_drop_reason reason;
    } cases[] = {
        {{0, 0.6, 0, 0}, 1, TARGET_DROP_VISIBILITY}, /* box 0 keeps 10 of 20 wide (0.5) */
        {{0, 0.5, 0, 0}, 2, 0},
        {{60, 0, 0, 0}, 1, TARGET_DROP_AREA}, /* box 0: 5 x 10 = 50 */
        {{0, 0, 0, 6}, 1, TARGET_DROP_SIZE},  /* box 0: 5 high */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct targets *t = targets_new(W, H, 4, 0, NULL);
        const double a[4] = {5, 20, 25, 25}, b[4] = {0, 0, 10, 10};
        /* Box a: x 5..25 -> 30..50, clipped to 30..40 (10 of 20 kept), then 25..35. */
        assert_int_equal(targets_add(t, a, 4, BOX_PASCAL_VOC, 0, NULL, 0, NULL), 0);
        assert_int_equal(targets_add(t, b, 4, BOX_PASCAL_VOC, 1, NULL, 1, NULL), 0);
        struct trace *tr = policy_sample(p, 0, 0, 0, W, H, &err);
        struct img *out = trace_apply_targets(tr, in, t, &cases[i].f, 0, 0, 0, &err);
        assert_non_null(out);
        assert_int_equal(t->count, (size_t)cases[i].kept);
        if (cases[i].kept == 1) {
            assert_int_equal(t->dropped[0].id, 0);
            assert_int_equal(t->dropped[0].reason, cases[i].reason);
        } else {
            /* Box a ends as [25, 20, 35, 25]. */
            assert_true(fabs(t->boxes[0].x1 - 25) < EPS && fabs(t->boxes[0].x2 - 35) < EPS);
        }
        img_free(out);
        trace_free(tr);
        targets_free(t);
    }
    img_free(in);
    policy_free(p);
}

static void test_mix_is_refused(void **state)
{
    struct eng_error err = {0};
    struct policy *p = parse("augmix");
    assert_int_equal(policy_maps_targets(p, &err), -1);
    assert_non_null(strstr(err.message, "mix"));
    struct trace *tr = policy_sample(p, 1, 0, 0, W, H, &err);
    struct img *in = gradient(W, H);
    struct targets *t = known_targets();
    assert_null(trace_apply_targets(tr, in, t, NULL, 1, 0, 0, &err));
    assert_int_equal(err.code, ENG_INVALID);
    struct policy *q = parse("{\"seq\": [{\"op\": \"FlipLR\"}, {\"dag\": {\"start\": \"a\", "
                             "\"edges\": [{\"from\": \"a\", \"to\": \"b\", \"p\": 1, \"do\": "
                             "{\"mix\": [{\"op\": \"Equalize\"}]}}]}}]}");
    assert_int_equal(policy_maps_targets(q, &err), -1);
    struct policy *r = parse("detection-v3");
    assert_int_equal(policy_maps_targets(r, &err), 0);
    policy_free(r);
    policy_free(q);
    targets_free(t);
    img_free(in);
    trace_free(tr);
    policy_free(p);
}

/* ---- Detection presets ---------------------------------------------------------------------- */

/* The reference's tables, typed again here from autoaugment_utils.py (not from presets.c). */
struct ref_entry {
    const char *op;
    double p;
    int level;
};
#define E(op, p, l)                                                                                \
    {                                                                                              \
        op, p, l                                                                                   \
    }
static const struct ref_entry v0[][3] = {
    {E("TranslateX_BBox", 0.6, 4), E("Equalize", 0.8, 10)},
    {E("TranslateY_Only_BBoxes", 0.2, 2), E("Cutout", 0.8, 8)},
    {E("Sharpness", 0.0, 8), E("ShearX_BBox", 0.4, 0)},
    {E("ShearY_BBox", 1.0, 2), E("TranslateY_Only_BBoxes", 0.6, 6)},
    {E("Rotate_BBox", 0.6, 10), E("Color", 1.0, 6)},
};
static const struct ref_entry v1[][3] = {
    {E("TranslateX_BBox", 0.6, 4), E("Equalize", 0.8, 10)},
    {E("TranslateY_Only_BBoxes", 0.2, 2), E("Cutout", 0.8, 8)},
    {E("Sharpness", 0.0, 8), E("ShearX_BBox", 0.4, 0)},
    {E("ShearY_BBox", 1.0, 2), E("TranslateY_Only_BBoxes", 0.6, 6)},
    {E("Rotate_BBox", 0.6, 10), E("Color", 1.0, 6)},
    {E("Color", 0.0, 0), E("ShearX_Only_BBoxes", 0.8, 4)},
    {E("ShearY_Only_BBoxes", 0.8, 2), E("Flip_Only_BBoxes", 0.0, 10)},
    {E("Equalize", 0.6, 10), E("TranslateX_BBox", 0.2, 2)},
    {E("Color", 1.0, 10), E("TranslateY_Only_BBoxes", 0.4, 6)},
    {E("Rotate_BBox", 0.8, 10), E("Contrast", 0.0, 10)},
    {E("Cutout", 0.2, 2), E("Brightness", 0.8, 10)},
    {E("Color", 1.0, 6), E("Equalize", 1.0, 2)},
    {E("Cutout_Only_BBoxes", 0.4, 6), E("TranslateY_Only_BBoxes", 0.8, 2)},
    {E("Color", 0.2, 8), E("Rotate_BBox", 0.8, 10)},
    {E("Sharpness", 0.4, 4), E("TranslateY_Only_BBoxes", 0.0, 4)},
    {E("Sharpness", 1.0, 4), E("SolarizeAdd", 0.4, 4)},
    {E("Rotate_BBox", 1.0, 8), E("Sharpness", 0.2, 8)},
    {E("ShearY_BBox", 0.6, 10), E("Equalize_Only_BBoxes", 0.6, 8)},
    {E("ShearX_BBox", 0.2, 6), E("TranslateY_Only_BBoxes", 0.2, 10)},
    {E("SolarizeAdd", 0.6, 8), E("Brightness", 0.8, 10)},
};
static const struct ref_entry v2[][3] = {
    {E("Color", 0.0, 6), E("Cutout", 0.6, 8), E("Sharpness", 0.4, 8)},
    {E("Rotate_BBox", 0.4, 8), E("Sharpness", 0.4, 2), E("Rotate_BBox", 0.8, 10)},
    {E("TranslateY_BBox", 1.0, 8), E("AutoContrast", 0.8, 2)},
    {E("AutoContrast", 0.4, 6), E("ShearX_BBox", 0.8, 8), E("Brightness", 0.0, 10)},
    {E("SolarizeAdd", 0.2, 6), E("Contrast", 0.0, 10), E("AutoContrast", 0.6, 0)},
    {E("Cutout", 0.2, 0), E("Solarize", 0.8, 8), E("Color", 1.0, 4)},
    {E("TranslateY_BBox", 0.0, 4), E("Equalize", 0.6, 8), E("Solarize", 0.0, 10)},
    {E("TranslateY_BBox", 0.2, 2), E("ShearY_BBox", 0.8, 8), E("Rotate_BBox", 0.8, 8)},
    {E("Cutout", 0.8, 8), E("Brightness", 0.8, 8), E("Cutout", 0.2, 2)},
    {E("Color", 0.8, 4), E("TranslateY_BBox", 1.0, 6), E("Rotate_BBox", 0.6, 6)},
    {E("Rotate_BBox", 0.6, 10), E("BBox_Cutout", 1.0, 4), E("Cutout", 0.2, 8)},
    {E("Rotate_BBox", 0.0, 0), E("Equalize", 0.6, 6), E("ShearY_BBox", 0.6, 8)},
    {E("Brightness", 0.8, 8), E("AutoContrast", 0.4, 2), E("Brightness", 0.2, 2)},
    {E("TranslateY_BBox", 0.4, 8), E("Solarize", 0.4, 6), E("SolarizeAdd", 0.2, 10)},
    {E("Contrast", 1.0, 10), E("SolarizeAdd", 0.2, 8), E("Equalize", 0.2, 4)},
};
static const struct ref_entry v3[][3] = {
    {E("Posterize", 0.8, 2), E("TranslateX_BBox", 1.0, 8)},
    {E("BBox_Cutout", 0.2, 10), E("Sharpness", 1.0, 8)},
    {E("Rotate_BBox", 0.6, 8), E("Rotate_BBox", 0.8, 10)},
    {E("Equalize", 0.8, 10), E("AutoContrast", 0.2, 10)},
    {E("SolarizeAdd", 0.2, 2), E("TranslateY_BBox", 0.2, 8)},
    {E("Sharpness", 0.0, 2), E("Color", 0.4, 8)},
    {E("Equalize", 1.0, 8), E("TranslateY_BBox", 1.0, 8)},
    {E("Posterize", 0.6, 2), E("Rotate_BBox", 0.0, 10)},
    {E("AutoContrast", 0.6, 0), E("Rotate_BBox", 1.0, 6)},
    {E("Equalize", 0.0, 4), E("Cutout", 0.8, 10)},
    {E("Brightness", 1.0, 2), E("TranslateY_BBox", 1.0, 6)},
    {E("Contrast", 0.0, 2), E("ShearY_BBox", 0.8, 0)},
    {E("AutoContrast", 0.8, 10), E("Contrast", 0.2, 10)},
    {E("Rotate_BBox", 1.0, 10), E("Cutout", 1.0, 10)},
    {E("SolarizeAdd", 0.8, 6), E("Equalize", 0.8, 8)},
};

/* The reference's level_to_arg with its hparams (cutout_max_pad_fraction 0.75, cutout_const 100,
 * translate_const 250, cutout_bbox_const 50, translate_bbox_const 120), and the argument our
 * trace names; NULL for ops without one. Posterize's int(level / 10 * 4) bits, 0 at level 2, keep
 * 1 bit in TensorFlow (its shift by 8 is clamped to 7). Cutout's pad_size is half our side. */
static const char *reference_arg(const char *op, int level, double *value, int *sign)
{
    const double l = level / 10.0;
    *sign = 0;
    if (!strcmp(op, "Posterize")) return *value = fmax((int)(l * 4), 1), "bits";
    if (!strcmp(op, "Solarize")) return *value = (int)(l * 256), "threshold";
    if (!strcmp(op, "SolarizeAdd")) return *value = (int)(l * 110), "addition";
    if (!strcmp(op, "Color") || !strcmp(op, "Contrast") || !strcmp(op, "Brightness") ||
        !strcmp(op, "Sharpness"))
        return *value = l * 1.8 + 0.1, "factor";
    if (!strcmp(op, "Cutout")) return *value = 2 * (int)(l * 100), "size";
    if (!strcmp(op, "BBox_Cutout")) return *value = l * 0.75, "pad_fraction";
    *sign = 1;
    if (!strcmp(op, "Rotate_BBox") || !strcmp(op, "Rotate_Only_BBoxes"))
        return *value = l * 30, "degrees";
    if (!strcmp(op, "ShearX_BBox") || !strcmp(op, "ShearY_BBox") ||
        !strcmp(op, "ShearX_Only_BBoxes") || !strcmp(op, "ShearY_Only_BBoxes"))
        return *value = l * 0.3, "factor";
    if (!strcmp(op, "TranslateX_BBox") || !strcmp(op, "TranslateY_BBox"))
        return *value = l * 250, "pixels";
    if (!strcmp(op, "TranslateX_Only_BBoxes") || !strcmp(op, "TranslateY_Only_BBoxes"))
        return *value = (int)(l * 120), "pixels";
    *sign = 0;
    if (!strcmp(op, "Solarize_Only_BBoxes")) return *value = (int)(l * 256), "threshold";
    if (!strcmp(op, "Cutout_Only_BBoxes")) return *value = (int)(l * 50), "pad_size";
    return NULL; /* AutoContrast, Equalize, Flip_Only_BBoxes, Equalize_Only_BBoxes */
}

/* The compiled entry node (unwrapped from {"p"}) sampled alone: its argument must be the
 * reference's, with a random sign where the reference negates. */
static void check_argument(const json_t *node, const struct ref_entry *e, const char *where)
{
    double want;
    int sign;
    const char *arg = reference_arg(e->op, e->level, &want, &sign);
    if (!arg) return;
    struct eng_error err = {0};
    json_t *alone = json_deep_copy(node);
    json_object_del(alone, "prob"); /* always applied here: only the argument matters */
    struct policy *p = policy_parse(alone, &err);
    if (!p) fail_msg("%s: %s", where, err.message);
    int negative = 0;
    for (uint64_t seed = 0; seed < 16; seed++) {
        struct trace *t = policy_sample(p, seed, 0, 0, 640, 480, &err);
        json_t *j = trace_to_json(t);
        const double got = trace_arg(j, arg);
        const double magnitude = sign ? fabs(got) : got;
        if (magnitude != want)
            fail_msg("%s: %s %s = %.17g, the reference's %.17g", where, e->op, arg, got, want);
        negative += got < 0;
        json_decref(j);
        trace_free(t);
    }
    if (sign && want != 0 && (negative == 0 || negative == 16))
        fail_msg("%s: %s has no random sign", where, e->op);
    policy_free(p);
    json_decref(alone);
}

static void check_preset(const char *name, const struct ref_entry (*table)[3], size_t count)
{
    struct eng_error err = {0};
    struct policy *p = parse(name);
    json_t *doc = policy_to_json(p);
    const json_t *choice = json_object_get(doc, "choice");
    assert_int_equal(json_array_size(choice), count);
    for (size_t i = 0; i < count; i++) {
        const json_t *seq = json_object_get(json_array_get(choice, i), "seq");
        size_t n = 0;
        while (n < 3 && table[i][n].op)
            n++;
        assert_int_equal(json_array_size(seq), n);
        for (size_t k = 0; k < n; k++) {
            const struct ref_entry *e = &table[i][k];
            const json_t *entry = json_array_get(seq, k);
            const json_t *node = json_object_get(entry, "p") ? json_object_get(entry, "do") : entry;
            char where[96];
            snprintf(where, sizeof where, "%s sub-policy %zu entry %zu", name, i, k);
            const double p_value = json_number_value(json_object_get(entry, "p")),
                         prob = json_number_value(json_object_get(node, "prob"));
            const char *op = json_string_value(json_object_get(node, "op"));
            if (!op || strcmp(op, e->op) != 0)
                fail_msg("%s: op %s, expected %s", where, op ? op : "(none)", e->op);
            /* The *_Only_BBoxes ops take the probability per box, everything else a p node. */
            if ((strstr(e->op, "_Only_BBoxes") ? prob : p_value) != e->p)
                fail_msg("%s: probability, expected %g", where, e->p);
            const json_t *level = json_object_get(json_object_get(node, "level"), "magnitude");
            double want;
            int sign;
            if (reference_arg(e->op, e->level, &want, &sign) && strcmp(e->op, "Cutout") != 0 &&
                json_integer_value(level) != e->level)
                fail_msg("%s: level, expected %d", where, e->level);
            /* Fill is the reference's replace value wherever the op takes one. */
            const json_t *fill = json_object_get(node, "fill");
            if (op_find(op)->takes & OP_TAKES_FILL) assert_int_equal(json_integer_value(fill), 128);
            check_argument(node, e, where);
        }
    }
    json_decref(doc);
    policy_free(p);
    (void)err;
}

static void test_detection_presets_entry_by_entry(void **state)
{
    check_preset("detection-v0", v0, sizeof v0 / sizeof v0[0]);
    check_preset("detection-v1", v1, sizeof v1 / sizeof v1[0]);
    check_preset("detection-v2", v2, sizeof v2 / sizeof v2[0]);
    check_preset("detection-v3", v3, sizeof v3 / sizeof v3[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_ops_by_hand),
        cmocka_unit_test(test_crop_away),
        cmocka_unit_test(test_drawn_ops_by_hand),
        cmocka_unit_test(test_level_ops_follow_their_trace),
        cmocka_unit_test(test_point_ops_leave_targets),
        cmocka_unit_test(test_registry_declares_maps),
        cmocka_unit_test(test_masks_match_boxes),
        cmocka_unit_test(test_filters_at_the_end),
        cmocka_unit_test(test_mix_is_refused),
        cmocka_unit_test(test_detection_presets_entry_by_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
