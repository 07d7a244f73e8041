/* Unit tests of engine/image/copy_paste.c on crafted scenes whose outcome is computed by hand: what
 * a pasted square leaves of the objects under it, which objects are dropped and why, provenance,
 * scale jittering's geometry, blending, and determinism by seed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/copy_paste.h"
#include "policy/policy.h"

/* A solid image. */
static struct img *solid(int width, int height, int channels, uint8_t value)
{
    struct img *im = img_new(width, height, channels, NULL);
    assert_non_null(im);
    memset(im->data, value, im->stride * (size_t)height);
    return im;
}

/* Objects from rectangles [x1, y1, x2, y2) as masks, ids 0, 1, ... */
static struct targets *rects(int width, int height, const int (*r)[4], size_t n)
{
    struct targets *t = targets_new(width, height, n, 0, NULL);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        struct img *m = solid(width, height, 1, 0);
        for (int y = r[i][1]; y < r[i][3]; y++)
            memset(img_row(m, y) + r[i][0], 255, (size_t)(r[i][2] - r[i][0]));
        assert_int_equal(targets_add_mask(t, m, (int)i, (int)i, NULL), 0);
    }
    return t;
}

/* No jittering, no flip, hard edges. */
static struct copy_paste_params plain(void)
{
    return (struct copy_paste_params){.scale_lo = 1, .scale_hi = 1, .fill = {1, 2, 3, 255}};
}

static void assert_object(const struct copy_paste_result *r, size_t i, int from_src, int id,
                          double x1, double y1, double x2, double y2, long area)
{
    const struct targets *t = r->targets;
    assert_true(i < t->count);
    const struct target_box *b = &t->boxes[i];
    if (r->from_src[i] != from_src || t->ids[i] != id || b->x1 != x1 || b->y1 != y1 ||
        b->x2 != x2 || b->y2 != y2 || targets_mask_area(t->masks[i]) != area)
        fail_msg("object %zu: %s %d [%g, %g, %g, %g] area %ld; expected %s %d [%g, %g, %g, %g] "
                 "area %ld",
                 i, r->from_src[i] ? "b" : "a", t->ids[i], b->x1, b->y1, b->x2, b->y2,
                 targets_mask_area(t->masks[i]), from_src ? "b" : "a", id, x1, y1, x2, y2, area);
}

static uint8_t px(const struct img *im, int x, int y, int c)
{
    return img_row(im, y)[x * im->channels + c];
}

/* The crafted scene: a grey-10 40 x 40 image a with
 *   a0 = [0, 10, 20, 30) (its right half lies under the paste),
 *   a1 = [30, 30, 34, 34) (clear of it), a2 = [12, 12, 18, 18) (wholly under it),
 * and a grey-200 image b with one object b0 = [10, 10, 30, 30). */
struct scene {
    struct img *a, *b;
    struct targets *ta, *tb;
};

static struct scene scene(void)
{
    static const int ra[][4] = {{0, 10, 20, 30}, {30, 30, 34, 34}, {12, 12, 18, 18}};
    static const int rb[][4] = {{10, 10, 30, 30}};
    return (struct scene){solid(40, 40, 3, 10), solid(40, 40, 3, 200), rects(40, 40, ra, 3),
                          rects(40, 40, rb, 1)};
}

static void scene_free(struct scene *s)
{
    img_free(s->a);
    img_free(s->b);
    targets_free(s->ta);
    targets_free(s->tb);
}

static void run(const struct scene *s, const struct copy_paste_params *p, uint64_t seed,
                struct copy_paste_result *r)
{
    struct rng rng;
    rng_init(&rng, seed, 0, 0, 0);
    struct eng_error err = {0};
    if (copy_paste(s->a, s->ta, s->b, s->tb, p, &rng, r, &err) != 0)
        fail_msg("copy_paste: %s", err.message);
}

static void test_occlusion_rules(void **state)
{
    struct scene s = scene();
    const struct copy_paste_params p = plain();
    struct copy_paste_result r;
    run(&s, &p, 1, &r);
    /* a0 keeps exactly its left half, a1 is untouched, b0 is pasted whole; a2 is gone. */
    assert_int_equal(r.targets->count, 3);
    assert_object(&r, 0, 0, 0, 0, 10, 10, 30, 200);
    assert_object(&r, 1, 0, 1, 30, 30, 34, 34, 16);
    assert_object(&r, 2, 1, 0, 10, 10, 30, 30, 400);
    assert_int_equal(r.targets->dropped_count, 1);
    assert_int_equal(r.targets->dropped[0].id, 2);
    assert_int_equal(r.dropped_from_src[0], 0);
    assert_int_equal(r.targets->dropped[0].reason, TARGET_DROP_OCCLUDED);
    /* The pixels: b inside the square, a everywhere else. */
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            const int inside = x >= 10 && x < 30 && y >= 10 && y < 30;
            if (px(r.image, x, y, 1) != (inside ? 200 : 10))
                fail_msg("pixel (%d, %d) is %d", x, y, px(r.image, x, y, 1));
        }
    assert_true(r.jitter[0].scale == 1 && r.jitter[0].width == 40 && !r.jitter[0].flipped);
    copy_paste_result_free(&r);

    /* min_area 100 drops a1 (16 pixels) and keeps a0's 200. */
    struct copy_paste_params q = plain();
    q.min_area = 100;
    run(&s, &q, 1, &r);
    assert_int_equal(r.targets->count, 2);
    assert_object(&r, 0, 0, 0, 0, 10, 10, 30, 200);
    assert_object(&r, 1, 1, 0, 10, 10, 30, 30, 400);
    assert_int_equal(r.targets->dropped_count, 2);
    assert_int_equal(r.targets->dropped[0].id, 1);
    assert_int_equal(r.targets->dropped[0].reason, TARGET_DROP_AREA);
    assert_int_equal(r.targets->dropped[1].id, 2);
    assert_int_equal(r.targets->dropped[1].reason, TARGET_DROP_OCCLUDED);
    copy_paste_result_free(&r);
    scene_free(&s);
}

/* With several objects in b, whatever the draw chose: the reported pasted objects are b's own
 * masks, a's masks lost exactly their union, and the pixels follow it. */
static void test_provenance_matches_pixels(void **state)
{
    static const int ra[][4] = {{0, 0, 40, 40}, {5, 5, 15, 15}};
    static const int rb[][4] = {{0, 0, 10, 10}, {20, 0, 30, 10}, {0, 20, 10, 30}, {25, 25, 40, 40}};
    struct scene s = {solid(40, 40, 3, 10), solid(40, 40, 3, 200), rects(40, 40, ra, 2),
                      rects(40, 40, rb, 4)};
    const struct copy_paste_params p = plain();
    int seen_subsets = 0, last = -1;
    for (uint64_t seed = 0; seed < 12; seed++) {
        struct copy_paste_result r;
        run(&s, &p, seed, &r);
        uint8_t pasted[40][40] = {{0}};
        int subset = 0;
        for (size_t i = 0; i < r.targets->count; i++) {
            if (!r.from_src[i]) continue;
            const int *b = rb[r.targets->ids[i]];
            subset |= 1 << r.targets->ids[i];
            assert_object(&r, i, 1, r.targets->ids[i], b[0], b[1], b[2], b[3],
                          (long)(b[2] - b[0]) * (b[3] - b[1]));
            for (int y = b[1]; y < b[3]; y++)
                for (int x = b[0]; x < b[2]; x++)
                    pasted[y][x] = 1;
        }
        assert_true(subset != 0); /* n draws never choose nothing */
        seen_subsets += subset != last;
        last = subset;
        for (size_t i = 0; i < r.targets->count; i++) {
            if (r.from_src[i]) continue;
            const int *a = ra[r.targets->ids[i]];
            for (int y = 0; y < 40; y++)
                for (int x = 0; x < 40; x++) {
                    const int in_a = x >= a[0] && x < a[2] && y >= a[1] && y < a[3];
                    const int want = in_a && !pasted[y][x];
                    assert_int_equal(img_row(r.targets->masks[i], y)[x] != 0, want);
                }
        }
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++)
                assert_int_equal(px(r.image, x, y, 0), pasted[y][x] ? 200 : 10);
        copy_paste_result_free(&r);
    }
    assert_true(seen_subsets > 1);
    scene_free(&s);
}

static void test_jitter_geometry(void **state)
{
    struct scene s = scene();
    struct copy_paste_params p = plain();
    struct copy_paste_result r;
    /* Half size: a lands in the top-left 20 x 20, the rest is fill; flipped, on the right. */
    p.scale_lo = p.scale_hi = 0.5;
    p.hflip_prob = 1;
    run(&s, &p, 3, &r);
    assert_int_equal(r.jitter[0].width, 20);
    assert_true(r.jitter[0].flipped && r.jitter[1].flipped);
    /* a0 [0, 10, 20, 30) -> [0, 5, 10, 15) -> mirrored [30, 5, 40, 15); b0 -> [5, 5, 15, 15)
     * mirrored [25, 5, 35, 15), which covers a0's left half and all of a2 (mirrored
     * [31, 6, 34, 9)); a1 -> [15, 15, 17, 17) mirrored [23, 15, 25, 17). */
    assert_int_equal(r.targets->count, 3);
    assert_object(&r, 0, 0, 0, 35, 5, 40, 15, 50);
    assert_object(&r, 1, 0, 1, 23, 15, 25, 17, 4);
    assert_object(&r, 2, 1, 0, 25, 5, 35, 15, 100);
    assert_int_equal(r.targets->dropped[0].id, 2);
    assert_int_equal(px(r.image, 5, 35, 0), 1); /* the fill, per channel */
    assert_int_equal(px(r.image, 5, 35, 2), 3);
    assert_int_equal(px(r.image, 30, 10, 0), 200);
    assert_int_equal(px(r.image, 37, 10, 0), 10);
    copy_paste_result_free(&r);

    /* Twice the size: an 80 x 80 image cropped at the drawn offset. */
    p.scale_lo = p.scale_hi = 2;
    p.hflip_prob = 0;
    run(&s, &p, 5, &r);
    const struct copy_paste_jitter *jb = &r.jitter[1];
    assert_int_equal(jb->width, 80);
    assert_true(jb->top == jb->left && jb->top >= 0 && jb->top <= 40);
    /* b0 [10, 30) -> [20, 60) - offset, clipped to the 40 x 40 output. */
    const double lo = fmax(20 - jb->left, 0), hi = fmin(60 - jb->left, 40);
    for (size_t i = 0; i < r.targets->count; i++)
        if (r.from_src[i]) {
            assert_true(r.targets->boxes[i].x1 == lo && r.targets->boxes[i].x2 == hi);
            assert_true(r.targets->boxes[i].y1 == lo && r.targets->boxes[i].y2 == hi);
        }
    copy_paste_result_free(&r);
    scene_free(&s);
}

static void test_blending_and_channels(void **state)
{
    struct scene s = scene();
    struct copy_paste_params p = plain();
    p.blend_sigma = 1.5;
    struct copy_paste_result r;
    run(&s, &p, 1, &r);
    /* Deep inside and far outside the square the weights are 1 and 0; at its edge, between. */
    assert_int_equal(px(r.image, 20, 20, 0), 200);
    assert_int_equal(px(r.image, 2, 2, 0), 10);
    assert_true(px(r.image, 10, 20, 0) > 10 && px(r.image, 10, 20, 0) < 200);
    assert_true(px(r.image, 9, 20, 0) > 10 && px(r.image, 9, 20, 0) < px(r.image, 10, 20, 0));
    /* The masks are cut by the hard union, not the blurred weights. */
    assert_object(&r, 0, 0, 0, 0, 10, 10, 30, 200);
    copy_paste_result_free(&r);

    /* A grey image a and an RGBA b: the output has b's four channels, a's grey repeated. */
    img_free(s.a);
    s.a = solid(40, 40, 1, 10);
    img_free(s.b);
    s.b = solid(40, 40, 4, 200);
    p.blend_sigma = 0;
    run(&s, &p, 1, &r);
    assert_int_equal(r.image->channels, 4);
    assert_int_equal(px(r.image, 2, 2, 1), 10);
    assert_int_equal(px(r.image, 2, 2, 3), 255);
    assert_int_equal(px(r.image, 20, 20, 3), 200);
    copy_paste_result_free(&r);
    scene_free(&s);
}

static void test_deterministic_by_seed(void **state)
{
    static const int ra[][4] = {{3, 4, 25, 30}, {20, 20, 39, 39}, {0, 0, 8, 8}};
    static const int rb[][4] = {{1, 2, 11, 12}, {15, 5, 35, 25}, {10, 20, 30, 40}, {2, 30, 9, 39}};
    struct scene s = {solid(40, 40, 3, 10), solid(40, 40, 3, 200), rects(40, 40, ra, 3),
                      rects(40, 40, rb, 4)};
    struct copy_paste_params p = plain();
    p.scale_lo = COPY_PASTE_LSJ_LO;
    p.scale_hi = COPY_PASTE_LSJ_HI;
    p.hflip_prob = 0.5;
    p.blend_sigma = 2;
    int differs = 0;
    for (uint64_t seed = 0; seed < 6; seed++) {
        struct copy_paste_result r1, r2, r3;
        run(&s, &p, seed, &r1);
        run(&s, &p, seed, &r2);
        run(&s, &p, seed + 100, &r3);
        assert_memory_equal(r1.image->data, r2.image->data, r1.image->stride * 40);
        assert_int_equal(r1.targets->count, r2.targets->count);
        for (size_t i = 0; i < r1.targets->count; i++) {
            assert_memory_equal(&r1.targets->boxes[i], &r2.targets->boxes[i],
                                sizeof(struct target_box));
            /* Boxes are their masks' extents. */
            struct target_box e;
            assert_true(targets_mask_extent(r1.targets->masks[i], &e));
            assert_memory_equal(&e, &r1.targets->boxes[i], sizeof e);
        }
        differs += memcmp(r1.image->data, r3.image->data, r1.image->stride * 40) != 0;
        copy_paste_result_free(&r1);
        copy_paste_result_free(&r2);
        copy_paste_result_free(&r3);
    }
    assert_true(differs >= 5);
    scene_free(&s);
}

static void test_bad_input(void **state)
{
    struct scene s = scene();
    struct copy_paste_params p = plain();
    struct copy_paste_result r;
    struct rng rng;
    rng_init(&rng, 1, 0, 0, 0);
    struct eng_error err = {0};
    p.scale_lo = 0;
    assert_int_equal(copy_paste(s.a, s.ta, s.b, s.tb, &p, &rng, &r, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "jitter"));
    p = plain();
    p.blend_sigma = NAN;
    assert_int_equal(copy_paste(s.a, s.ta, s.b, s.tb, &p, &rng, &r, &err), -1);
    assert_non_null(strstr(err.message, "blend_sigma"));
    /* Boxes without masks cannot be cut. */
    p = plain();
    struct targets *boxes = targets_new(40, 40, 1, 0, NULL);
    const double v[4] = {1, 1, 5, 5};
    assert_int_equal(targets_add(boxes, v, 4, BOX_PASCAL_VOC, 0, NULL, 0, NULL), 0);
    assert_int_equal(copy_paste(s.a, s.ta, s.b, boxes, &p, &rng, &r, &err), -1);
    assert_string_equal(err.message, "image b: copy-paste needs a mask per object");
    assert_null(r.image);
    targets_free(boxes);
    scene_free(&s);
}

/* ---- The CopyPaste graph node (policy.h) ---------------------------------------------------- */

static struct policy *parse_policy(const char *text)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (!p) fail_msg("%s: %s", text, err.message);
    return p;
}

/* The scene as a request's two inputs, b's object painted 200 on its left half and 100 on its
 * right, so a mirrored paste would show. */
struct batch {
    struct scene s;
    const struct img *images[3];
    const struct targets *sets[3];
    struct policy_inputs inputs;
};

static void batch_init(struct batch *b)
{
    b->s = scene();
    for (int y = 10; y < 30; y++)
        memset(img_row(b->s.b, y) + 3 * 20, 100, 3 * 10);
    b->images[0] = b->s.a, b->images[1] = b->s.b;
    b->sets[0] = b->s.ta, b->sets[1] = b->s.tb;
    b->inputs = (struct policy_inputs){2, b->images, b->sets};
}

/* Samples and applies text for input 0; out gets the moved targets, origins the pasted ones'. */
static struct img *run_node(const char *text, const struct policy_inputs *in, struct targets **out,
                            struct policy_origins *origins, json_t **trace)
{
    struct policy *p = parse_policy(text);
    struct eng_error err = {0};
    struct trace *t = policy_sample_inputs(p, 3, in, 0, 0, 0, &err);
    if (!t) fail_msg("sample: %s", err.message);
    *out = targets_clone(in->targets[0], NULL);
    struct img *im = trace_apply_inputs(t, in, 0, *out, NULL, origins, 3, 0, &err);
    if (!im) fail_msg("apply: %s", err.message);
    *trace = trace_to_json(t);
    trace_free(t);
    policy_free(p);
    return im;
}

/* After a FlipLR of input 0, input 1's object lands exactly on [10, 30)^2 as posted (not mirrored,
 * not augmented): a0, mirrored to [20, 40), keeps its right half; a1 moves to [6, 10); a2 is
 * occluded; the pasted object's id names input 1, object 0. The trace shows every draw. */
static void test_node_pastes_from_other_input(void **state)
{
    struct batch b;
    batch_init(&b);
    struct targets *t;
    struct policy_origins origins = {0};
    json_t *trace;
    struct img *im = run_node("{\"seq\": [{\"op\": \"FlipLR\"}, {\"op\": \"CopyPaste\", "
                              "\"jitter\": [1, 1], \"flip_p\": 0}]}",
                              &b.inputs, &t, &origins, &trace);
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            const int inside = x >= 10 && x < 30 && y >= 10 && y < 30;
            const int want = !inside ? 10 : x < 20 ? 200 : 100;
            if (px(im, x, y, 0) != want) fail_msg("pixel (%d, %d) is %d", x, y, px(im, x, y, 0));
        }
    assert_int_equal(t->count, 3);
    const int ids[] = {0, 1, -1};
    const struct target_box boxes[] = {{30, 10, 40, 30}, {6, 30, 10, 34}, {10, 10, 30, 30}};
    const long areas[] = {200, 16, 400};
    for (size_t i = 0; i < 3; i++) {
        const struct target_box *x = &t->boxes[i];
        assert_int_equal(t->ids[i], ids[i]);
        assert_true(x->x1 == boxes[i].x1 && x->y1 == boxes[i].y1 && x->x2 == boxes[i].x2 &&
                    x->y2 == boxes[i].y2);
        assert_int_equal(targets_mask_area(t->masks[i]), areas[i]);
    }
    assert_int_equal(t->dropped_count, 1);
    assert_int_equal(t->dropped[0].id, 2);
    assert_int_equal(t->dropped[0].reason, TARGET_DROP_OCCLUDED);
    assert_int_equal(origins.count, 1);
    assert_int_equal(origins.items[0].input, 1);
    assert_int_equal(origins.items[0].id, 0);
    json_t *paste = json_array_get(trace, 1);
    assert_string_equal(json_string_value(json_object_get(paste, "op")), "CopyPaste");
    assert_int_equal(json_integer_value(json_object_get(paste, "source")), 1);
    assert_int_equal(json_array_size(json_object_get(paste, "objects")), 1);
    json_t *drawn = json_object_get(json_object_get(paste, "jittered"), "source");
    assert_int_equal(json_integer_value(json_object_get(drawn, "width")), 40);
    assert_true(json_is_false(json_object_get(drawn, "flipped")));
    json_decref(trace);
    policy_origins_free(&origins);
    targets_free(t);
    img_free(im);
    scene_free(&b.s);
}

/* The source is drawn uniformly among the other inputs, never the input itself. */
static void test_node_draws_another_input(void **state)
{
    struct batch b;
    batch_init(&b);
    b.images[2] = b.s.a, b.sets[2] = b.s.ta;
    b.inputs.count = 3;
    struct policy *p = parse_policy("{\"op\": \"CopyPaste\"}");
    int seen[3] = {0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        struct eng_error err = {0};
        struct trace *t = policy_sample_inputs(p, seed, &b.inputs, 1, 0, 0, &err);
        if (!t) fail_msg("sample: %s", err.message);
        json_t *trace = trace_to_json(t);
        seen[json_integer_value(json_object_get(json_array_get(trace, 0), "source"))]++;
        json_decref(trace);
        trace_free(t);
    }
    assert_int_equal(seen[1], 0);
    assert_true(seen[0] > 70 && seen[2] > 70);
    policy_free(p);
    scene_free(&b.s);
}

/* One input, or an input without masks: refused whether or not the sample reaches the node. */
static void test_node_refusals(void **state)
{
    struct batch b;
    batch_init(&b);
    struct policy *p = parse_policy("{\"p\": 0, \"do\": {\"op\": \"CopyPaste\"}}");
    struct eng_error err = {0};
    b.inputs.count = 1;
    assert_null(policy_sample_inputs(p, 1, &b.inputs, 0, 0, 0, &err));
    assert_string_equal(err.message, "/do: CopyPaste pastes objects from another input of the "
                                     "request, and there is only one");
    assert_null(policy_sample(p, 1, 0, 0, 40, 40, &err));
    struct targets *boxes = targets_new(40, 40, 1, 0, NULL);
    const double v[4] = {1, 1, 5, 5};
    assert_int_equal(targets_add(boxes, v, 4, BOX_PASCAL_VOC, 0, NULL, 0, NULL), 0);
    b.inputs.count = 2;
    b.sets[1] = boxes;
    assert_null(policy_sample_inputs(p, 1, &b.inputs, 0, 0, 0, &err));
    assert_non_null(strstr(err.message, "input 1 has boxes without masks"));
    b.inputs.targets = NULL;
    assert_null(policy_sample_inputs(p, 1, &b.inputs, 0, 0, 0, &err));
    assert_non_null(strstr(err.message, "input 0 has no targets"));
    policy_free(p);
    static const char *const bad[] = {"{\"op\": \"CopyPaste\", \"jitter\": [1, 3]}",
                                      "{\"op\": \"CopyPaste\", \"jitter\": \"huge\"}",
                                      "{\"op\": \"CopyPaste\", \"flip_p\": 2}",
                                      "{\"op\": \"CopyPaste\", \"degrees\": 2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(policy_parse_text(bad[i], &err));
        assert_int_equal(err.code, ENG_INVALID);
    }
    targets_free(boxes);
    scene_free(&b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_occlusion_rules),
        cmocka_unit_test(test_provenance_matches_pixels),
        cmocka_unit_test(test_jitter_geometry),
        cmocka_unit_test(test_blending_and_channels),
        cmocka_unit_test(test_deterministic_by_seed),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_node_pastes_from_other_input),
        cmocka_unit_test(test_node_draws_another_input),
        cmocka_unit_test(test_node_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
