/* The detection ops that work inside boxes (engine/image/detection.c), against hand-computed
 * geometry and the documented draw order replayed on a copy of the op's noise stream: pixels
 * outside the chosen boxes never change, the chosen ones change as the inner op says, the choice
 * follows prob / 3, BBox_Cutout's rectangle sits where its draws put it, and the whole-image box
 * ops fill with the reference's gray 128. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/color.h"
#include "image/detection.h"
#include "image/targets.h"
#include "policy/ops.h"
#include "policy/policy.h"

#define W 64
#define H 48

/* A W x H RGB image whose every sample differs from its neighbours. */
static struct img *pattern(void)
{
    struct img *im = img_new(W, H, 3, NULL);
    assert_non_null(im);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W * 3; x++)
            img_row(im, y)[x] = (uint8_t)(x * 7 + y * 13 + (x * y) % 5);
    return im;
}

static struct img *constant(uint8_t value)
{
    struct img *im = img_new(W, H, 3, NULL);
    assert_non_null(im);
    memset(im->data, value, im->stride * H);
    return im;
}

/* An op call from the registry with args set in order. */
static struct op_call call_of(const char *name, int n, ...)
{
    struct op_call c = {.op = op_find(name)};
    assert_non_null(c.op);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < c.op->arg_count; i++)
        c.args[i] = i < n ? va_arg(ap, double) : c.op->args[i].def;
    va_end(ap);
    return c;
}

static int inside(const struct detection_region *r, int x, int y)
{
    return x >= r->x1 && x < r->x2 && y >= r->y1 && y < r->y2;
}

static void test_box_regions(void **state)
{
    struct detection_region r;
    const struct target_box a = {2.5, 3.2, 7.0, 9.9}, edge = {60.5, 40, 64, 48},
                            sliver = {5, 5, 5, 9};
    assert_true(detection_box_region(&a, W, H, &r));
    assert_int_equal(r.x1, 2), assert_int_equal(r.x2, 7);
    assert_int_equal(r.y1, 3), assert_int_equal(r.y2, 10);
    assert_true(detection_box_region(&edge, W, H, &r));
    assert_int_equal(r.x1, 60), assert_int_equal(r.x2, 64), assert_int_equal(r.y2, 48);
    assert_false(detection_box_region(&sliver, W, H, &r));
}

/* Replays detection_only_boxes' draws: which of count boxes are augmented, in the order applied. */
static void replay_choice(struct rng *noise, size_t count, double prob, int *chosen)
{
    size_t order[8];
    for (size_t i = 0; i < count; i++)
        order[i] = i, chosen[i] = 0;
    for (size_t i = count; i-- > 1;) {
        const size_t j = rng_below(noise, (uint32_t)(i + 1)), swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
    for (size_t k = 0; k < count; k++)
        chosen[order[k]] = rng_uniform(noise) < prob;
}

/* Solarize_Only_BBoxes on three apart boxes: inside a chosen box every sample is solarized,
 * everything else is untouched, the choice is the replayed one, and over many seeds about a third
 * of the boxes are chosen (prob 1 / 3). */
static void test_only_boxes_choice_and_pixels(void **state)
{
    const struct target_box boxes[3] = {{2, 2, 14, 10}, {20.5, 5, 31, 20}, {40, 30, 63.5, 47}};
    struct img *in = pattern();
    struct eng_error err = {0};
    struct img *solarized = img_solarize(in, 100, &err);
    const struct op_call c = call_of("Solarize_Only_BBoxes", 2, 1.0, 100.0);
    int augmented = 0;
    const int seeds = 600;
    for (int seed = 0; seed < seeds; seed++) {
        struct rng noise, replay;
        rng_init(&noise, (uint64_t)seed, 0, 0, 5);
        replay = noise;
        int chosen[3];
        replay_choice(&replay, 3, 1.0 / 3.0, chosen);
        struct img *out = op_apply(&c, in, boxes, 3, &noise, &err);
        assert_non_null(out);
        struct detection_region r[3];
        for (int b = 0; b < 3; b++) {
            assert_true(detection_box_region(&boxes[b], W, H, &r[b]));
            augmented += chosen[b];
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int changed = 0;
                for (int b = 0; b < 3; b++)
                    changed |= chosen[b] && inside(&r[b], x, y);
                const struct img *want = changed ? solarized : in;
                if (memcmp(img_row(out, y) + 3 * x, img_row(want, y) + 3 * x, 3) != 0)
                    fail_msg("seed %d: pixel (%d, %d) %s", seed, x, y,
                             changed ? "not solarized" : "changed outside the chosen boxes");
            }
        img_free(out);
    }
    /* 1800 Bernoulli(1/3) draws: 600 expected, sd 20. */
    if (augmented < 520 || augmented > 680)
        fail_msg("%d of %d boxes augmented; expected about a third", augmented, 3 * seeds);
    img_free(solarized);
    img_free(in);
}

/* prob 0 never touches the image; no boxes leaves it too. */
static void test_only_boxes_prob_zero_and_no_boxes(void **state)
{
    const struct target_box box = {0, 0, W, H};
    struct img *in = pattern();
    struct eng_error err = {0};
    const struct op_call never = call_of("Flip_Only_BBoxes", 1, 0.0);
    const struct op_call always = call_of("Equalize_Only_BBoxes", 1, 1.0);
    struct rng noise;
    rng_init(&noise, 9, 0, 0, 1);
    struct img *a = op_apply(&never, in, &box, 1, &noise, &err);
    struct img *b = op_apply(&always, in, NULL, 0, &noise, &err);
    assert_memory_equal(a->data, in->data, in->stride * H);
    assert_memory_equal(b->data, in->data, in->stride * H);
    img_free(a);
    img_free(b);
    img_free(in);
}

/* Flip_Only_BBoxes mirrors a chosen box's own pixels about the box's centre. */
static void test_flip_inside_box(void **state)
{
    const struct target_box box = {10, 6, 17, 30};
    struct img *in = pattern();
    struct eng_error err = {0};
    const struct op_call c = call_of("Flip_Only_BBoxes", 1, 1.0);
    int flipped_seen = 0;
    for (int seed = 0; seed < 40; seed++) {
        struct rng noise, replay;
        rng_init(&noise, (uint64_t)seed, 1, 2, 3);
        replay = noise;
        int chosen;
        replay_choice(&replay, 1, 1.0 / 3.0, &chosen);
        struct img *out = op_apply(&c, in, &box, 1, &noise, &err);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int in_box = x >= 10 && x < 17 && y >= 6 && y < 30;
                const int sx = chosen && in_box ? 10 + 16 - x : x;
                assert_memory_equal(img_row(out, y) + 3 * x, img_row(in, y) + 3 * sx, 3);
            }
        flipped_seen += chosen;
        img_free(out);
    }
    assert_true(flipped_seen > 0 && flipped_seen < 40);
    img_free(in);
}

/* Cutout_Only_BBoxes: a square of side 2 pad_size centred on a point drawn in the box (row, then
 * column), clipped to the box, of gray 128. */
static void test_cutout_inside_box(void **state)
{
    const struct target_box box = {8, 4, 30, 20};
    struct img *in = constant(7);
    struct eng_error err = {0};
    const struct op_call c = call_of("Cutout_Only_BBoxes", 2, 1.0, 3.0);
    for (int seed = 0; seed < 60; seed++) {
        struct rng noise, replay;
        rng_init(&noise, (uint64_t)seed, 0, 0, 2);
        replay = noise;
        int chosen;
        replay_choice(&replay, 1, 1.0 / 3.0, &chosen);
        int cy = 0, cx = 0;
        if (chosen) {
            cy = 4 + (int)rng_below(&replay, 16);
            cx = 8 + (int)rng_below(&replay, 22);
        }
        struct img *out = op_apply(&c, in, &box, 1, &noise, &err);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int cut = chosen && x >= 8 && x < 30 && y >= 4 && y < 20 && x >= cx - 3 &&
                                x < cx + 3 && y >= cy - 3 && y < cy + 3;
                assert_int_equal(img_row(out, y)[3 * x], cut ? 128 : 7);
            }
        img_free(out);
    }
    img_free(in);
}

/* BBox_Cutout: one box drawn, a centre among its pixels, half-sides trunc(f * side / 2). */
static void test_bbox_cutout_geometry(void **state)
{
    const struct target_box boxes[2] = {{10, 20, 30, 40}, {40, 2, 61, 13}};
    struct img *in = constant(7);
    struct eng_error err = {0};
    const struct op_call c = call_of("BBox_Cutout", 1, 0.5);
    int picked[2] = {0, 0};
    for (int seed = 0; seed < 200; seed++) {
        struct rng noise, replay;
        rng_init(&noise, (uint64_t)seed, 3, 0, 1);
        replay = noise;
        const int b = (int)rng_below(&replay, 2);
        /* Box 0: rows 20..39 (20), columns 10..29 (20): half-sides 5 and 5. Box 1: rows 2..12
         * (11), columns 40..60 (21): half-sides trunc(2.75) = 2 and trunc(5.25) = 5. */
        const int y0 = b ? 2 : 20, h = b ? 11 : 20, x0 = b ? 40 : 10, w = b ? 21 : 20;
        const int half_h = b ? 2 : 5, half_w = 5;
        const int cy = y0 + (int)rng_below(&replay, (uint32_t)h);
        const int cx = x0 + (int)rng_below(&replay, (uint32_t)w);
        picked[b]++;
        struct img *out = op_apply(&c, in, boxes, 2, &noise, &err);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int cut =
                    y >= cy - half_h && y < cy + half_h && x >= cx - half_w && x < cx + half_w;
                if (img_row(out, y)[3 * x] != (cut ? 128 : 7))
                    fail_msg("seed %d box %d centre (%d, %d): pixel (%d, %d)", seed, b, cx, cy, x,
                             y);
            }
        img_free(out);
    }
    assert_true(picked[0] > 60 && picked[1] > 60);
    img_free(in);
}

/* The whole-image box ops fill uncovered pixels with the reference's gray 128: TranslateX_BBox
 * by 5 moves the content 5 left, so the right 5 columns are new. */
static void test_bbox_ops_fill_gray(void **state)
{
    struct img *in = constant(7);
    struct eng_error err = {0};
    const struct op_call c = call_of("TranslateX_BBox", 1, 5.0);
    struct img *out = op_apply(&c, in, NULL, 0, NULL, &err);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_int_equal(img_row(out, y)[3 * x], x >= W - 5 ? 128 : 7);
    img_free(out);
    img_free(in);
}

/* Through the policy path the box ops see the boxes of that moment: after a flip, the box that
 * was on the left is on the right, and only there do pixels change. */
static void test_policy_hands_current_boxes(void **state)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text("{\"seq\": [{\"op\": \"FlipLR\"}, {\"op\": "
                                         "\"BBox_Cutout\", \"pad_fraction\": 1}]}",
                                         &err);
    assert_non_null(p);
    struct img *in = constant(7);
    struct targets *t = targets_new(W, H, 1, 0, &err);
    const double v[4] = {0, 0, 16, 16};
    assert_int_equal(targets_add(t, v, 4, BOX_PASCAL_VOC, 0, NULL, 0, &err), 0);
    struct trace *tr = policy_sample(p, 4, 0, 0, W, H, &err);
    struct img *out = trace_apply_targets(tr, in, t, NULL, 4, 0, 0, &err);
    assert_non_null(out);
    int changed = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int c = img_row(out, y)[3 * x] != 7;
            changed += c;
            if (c) assert_true(x >= W - 16 - 8 && y < 16 + 8);
        }
    assert_true(changed > 0);
    assert_true(t->boxes[0].x1 == W - 16 && t->boxes[0].x2 == W);
    img_free(out);
    trace_free(tr);
    targets_free(t);
    img_free(in);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_box_regions),
        cmocka_unit_test(test_only_boxes_choice_and_pixels),
        cmocka_unit_test(test_only_boxes_prob_zero_and_no_boxes),
        cmocka_unit_test(test_flip_inside_box),
        cmocka_unit_test(test_cutout_inside_box),
        cmocka_unit_test(test_bbox_cutout_geometry),
        cmocka_unit_test(test_bbox_ops_fill_gray),
        cmocka_unit_test(test_policy_hands_current_boxes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
