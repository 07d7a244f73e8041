/* engine/nn_classify: softmax, top-k, the pseudo-label vote and the evaluation transform, each
 * against expectations computed by hand (the transform's parity with torchvision is checked end
 * to end by tests/integration/test_predict.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "assert_near.h"
#include "classify/classify.h"
#include "core/img.h"
#include "policy/policy.h"

/* ---- softmax and probabilities ----------------------------------------------------------------
 */

static void test_softmax(void **state)
{
    /* exp(0) : exp(ln 2) : exp(ln 3) = 1 : 2 : 3. */
    float logits[3] = {0.0f, (float)log(2.0), (float)log(3.0)}, p[3];
    classify_softmax(logits, 3, p);
    assert_near(p[0], 1.0 / 6, 1e-7);
    assert_near(p[1], 2.0 / 6, 1e-7);
    assert_near(p[2], 3.0 / 6, 1e-7);
    /* Large logits do not overflow: only differences matter. */
    float big[2] = {1000.0f, 1000.0f};
    classify_softmax(big, 2, big);
    assert_near(big[0], 0.5, 1e-7);
    assert_near(big[1], 0.5, 1e-7);
}

static void test_probabilities(void **state)
{
    float scores[3] = {0.2f, 0.3f, 0.5f}, out[3];
    struct eng_error err = {0};
    assert_int_equal(classify_probabilities(scores, 3, 1, out, &err), 0);
    assert_memory_equal(out, scores, sizeof scores);
    assert_int_equal(classify_probabilities(scores, 3, 0, out, &err), 0);
    assert_near(out[0] + out[1] + out[2], 1.0, 1e-6);
    assert_true(out[2] > out[1] && out[1] > out[0]);
    scores[1] = NAN;
    assert_int_equal(classify_probabilities(scores, 3, 0, out, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "class 1"));
}

/* ---- top-k ------------------------------------------------------------------------------------
 */

static void test_topk_ties_by_lower_index(void **state)
{
    const float scores[5] = {0.1f, 0.3f, 0.3f, 0.2f, 0.3f};
    size_t top[5];
    classify_topk(scores, 5, 1, top);
    assert_int_equal(top[0], 1);
    classify_topk(scores, 5, 3, top);
    assert_int_equal(top[0], 1);
    assert_int_equal(top[1], 2);
    assert_int_equal(top[2], 4);
    classify_topk(scores, 5, 5, top);
    const size_t all[5] = {1, 2, 4, 3, 0};
    assert_memory_equal(top, all, sizeof all);
}

static const float *sort_scores;

static int by_rank(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (sort_scores[i] != sort_scores[j]) return sort_scores[i] > sort_scores[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

/* Every k of a list with many ties is the prefix of the full sort. */
static void test_topk_matches_sort(void **state)
{
    enum { N = 97 };
    float scores[N];
    size_t sorted[N], top[N];
    for (size_t i = 0; i < N; i++) {
        scores[i] = (float)((i * 37) % 11) / 10.0f;
        sorted[i] = i;
    }
    sort_scores = scores;
    qsort(sorted, N, sizeof sorted[0], by_rank);
    for (size_t k = 1; k <= N; k++) {
        classify_topk(scores, N, k, top);
        assert_memory_equal(top, sorted, k * sizeof top[0]);
    }
}

/* ---- the pseudo-label vote ---------------------------------------------------------------------
 */

static void test_accepted_and_abstained(void **state)
{
    /* One model, one view: [0.75, 0.25] is exact in float, so the threshold's edge is sharp. */
    const float probs[2] = {0.75f, 0.25f};
    struct classify_pseudo_label pl;
    struct classify_vote votes[1];
    struct eng_error err = {0};
    assert_int_equal(classify_pseudo_label(probs, 1, 1, 2, 0.75, &pl, votes, &err), 0);
    assert_int_equal(pl.vote.label, 0);
    assert_near(pl.vote.confidence, 0.75, 0);
    assert_true(pl.accepted); /* confidence >= threshold */
    assert_int_equal(classify_pseudo_label(probs, 1, 1, 2, 0.7500001, &pl, votes, &err), 0);
    assert_false(pl.accepted);
    assert_int_equal(classify_pseudo_label(probs, 1, 1, 2, 0.95, &pl, votes, &err), 0);
    assert_false(pl.accepted);
    assert_near(pl.vote.agreement, 1.0, 0);
    /* -(0.75 ln 0.75 + 0.25 ln 0.25) */
    assert_near(pl.entropy, 0.5623351446, 1e-7);
}

/* Softmax of crafted logits, then the vote: a confident ensemble is accepted. */
static void test_logits_to_label(void **state)
{
    /* Per view, logits (ln 18, 0, 0) give (0.9, 0.05, 0.05). */
    float grid[2][3] = {{(float)log(18.0), 0, 0}, {(float)log(18.0), 0, 0}};
    for (int v = 0; v < 2; v++)
        classify_softmax(grid[v], 3, grid[v]);
    struct classify_pseudo_label pl;
    struct classify_vote votes[1];
    assert_int_equal(classify_pseudo_label(&grid[0][0], 1, 2, 3, 0.9, &pl, votes, NULL), 0);
    assert_int_equal(pl.vote.label, 0);
    assert_near(pl.vote.confidence, 0.9, 1e-6);
    assert_near(pl.vote.agreement, 1.0, 0);
    /* The threshold compares the float average: 0.9f is a hair above or below 0.9. */
    assert_int_equal(pl.accepted, pl.vote.confidence >= 0.9);
    assert_int_equal(classify_pseudo_label(&grid[0][0], 1, 2, 3, 0.85, &pl, votes, NULL), 0);
    assert_true(pl.accepted);
}

/* Two models x two views: the ensemble averages all four distributions; each model votes on its
 * own views. */
static void test_ensemble_averaging_and_agreement(void **state)
{
    const float probs[2][2][3] = {
        {{0.6f, 0.3f, 0.1f}, {0.2f, 0.7f, 0.1f}}, /* model 0: mean (0.4, 0.5, 0.1) */
        {{0.5f, 0.4f, 0.1f}, {0.7f, 0.2f, 0.1f}}, /* model 1: mean (0.6, 0.3, 0.1) */
    };
    struct classify_pseudo_label pl;
    struct classify_vote votes[2];
    struct eng_error err = {0};
    assert_int_equal(classify_pseudo_label(&probs[0][0][0], 2, 2, 3, 0.95, &pl, votes, &err), 0);
    /* Mean of all: (0.5, 0.4, 0.1); argmaxes of the rows: 0, 1, 0, 0. */
    assert_int_equal(pl.vote.label, 0);
    assert_near(pl.vote.confidence, 0.5, 1e-6);
    assert_near(pl.vote.agreement, 0.75, 0);
    assert_false(pl.accepted);
    assert_near(pl.entropy, -(0.5 * log(0.5) + 0.4 * log(0.4) + 0.1 * log(0.1)), 1e-6);
    assert_int_equal(votes[0].label, 1);
    assert_near(votes[0].confidence, 0.5, 1e-6);
    assert_near(votes[0].agreement, 0.5, 0);
    assert_int_equal(votes[1].label, 0);
    assert_near(votes[1].confidence, 0.6, 1e-6);
    assert_near(votes[1].agreement, 1.0, 0);
}

/* An exact tie in the average goes to the lower index; the entropy is then ln 2. */
static void test_tie_and_entropy(void **state)
{
    const float tie[2][1][2] = {{{0.25f, 0.75f}}, {{0.75f, 0.25f}}};
    struct classify_pseudo_label pl;
    struct classify_vote votes[2];
    assert_int_equal(classify_pseudo_label(&tie[0][0][0], 2, 1, 2, 0.5, &pl, votes, NULL), 0);
    assert_int_equal(pl.vote.label, 0);
    assert_near(pl.vote.confidence, 0.5, 0);
    assert_true(pl.accepted);
    assert_near(pl.vote.agreement, 0.5, 0);
    assert_near(pl.entropy, log(2.0), 1e-7);
    assert_int_equal(votes[0].label, 1);
    assert_int_equal(votes[1].label, 0);
    /* A one-hot distribution has no uncertainty (0 ln 0 counts as 0); a uniform one ln n. */
    const float one_hot[4] = {0, 0, 1, 0}, uniform[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    assert_int_equal(classify_pseudo_label(one_hot, 1, 1, 4, 1.0, &pl, votes, NULL), 0);
    assert_int_equal(pl.vote.label, 2);
    assert_near(pl.entropy, 0, 0);
    assert_true(pl.accepted);
    assert_int_equal(classify_pseudo_label(uniform, 1, 1, 4, 0.95, &pl, votes, NULL), 0);
    assert_int_equal(pl.vote.label, 0);
    assert_near(pl.entropy, log(4.0), 1e-7);
}

static void test_pseudo_label_empty(void **state)
{
    const float p[1] = {1};
    struct classify_pseudo_label pl;
    struct classify_vote votes[1];
    struct eng_error err = {0};
    assert_int_equal(classify_pseudo_label(p, 1, 0, 1, 0.5, &pl, votes, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
}

/* ---- the evaluation transform ------------------------------------------------------------------
 */

static const struct classify_preprocess identity = {
    .bilinear = 1, .scale = 1.0f / 255, .std = {1, 1, 1}, .channels = 3};

static void test_preprocess_size(void **state)
{
    struct classify_preprocess pp = identity;
    int h, w;
    struct eng_error err = {0};
    assert_int_equal(classify_preprocess_size(&pp, 500, 375, &h, &w, &err), 0);
    assert_int_equal(h, 375);
    assert_int_equal(w, 500);
    /* Resize(256): the shorter side 256, the longer int(256 * 500 / 375) = int(341.33). */
    pp.resize = 256;
    assert_int_equal(classify_preprocess_size(&pp, 500, 375, &h, &w, &err), 0);
    assert_int_equal(h, 256);
    assert_int_equal(w, 341);
    assert_int_equal(classify_preprocess_size(&pp, 375, 500, &h, &w, &err), 0);
    assert_int_equal(h, 341);
    assert_int_equal(w, 256);
    assert_int_equal(classify_preprocess_size(&pp, 300, 300, &h, &w, &err), 0);
    assert_int_equal(h, 256);
    assert_int_equal(w, 256);
    pp.crop_height = 224;
    pp.crop_width = 200;
    assert_int_equal(classify_preprocess_size(&pp, 500, 375, &h, &w, &err), 0);
    assert_int_equal(h, 224);
    assert_int_equal(w, 200);
    /* A sliver would resize past the side limit: refused before any pixel work. */
    assert_int_equal(classify_preprocess_size(&pp, 1, 16384, &h, &w, &err), -1);
    assert_int_equal(err.code, ENG_TOO_LARGE);
    pp.channels = 2;
    assert_int_equal(classify_preprocess_size(&pp, 10, 10, &h, &w, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    pp = identity;
    pp.std[1] = 0;
    assert_int_equal(classify_preprocess_size(&pp, 10, 10, &h, &w, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
}

/* A 2x1 image of the given channels with pixels p0 and p1. */
static struct img *two_pixels(int channels, const uint8_t *p0, const uint8_t *p1)
{
    struct img *im = img_new(2, 1, channels, NULL);
    assert_non_null(im);
    memcpy(im->data, p0, (size_t)channels);
    memcpy(im->data + channels, p1, (size_t)channels);
    return im;
}

/* ToTensor and Normalize: (v / 255 - mean) / std per channel, planar (NCHW). */
static void test_tensor_values_nchw(void **state)
{
    struct img *im = two_pixels(3, (const uint8_t[]){0, 51, 255}, (const uint8_t[]){102, 204, 0});
    struct classify_preprocess pp = {.bilinear = 1,
                                     .scale = 1.0f / 255,
                                     .mean = {0.5f, 0.25f, 0},
                                     .std = {0.5f, 0.25f, 2},
                                     .channels = 3};
    float t[6];
    assert_int_equal(classify_image_tensor(im, &pp, NULL, 0, 0, 1, t, NULL), 0);
    const double expected[6] = {(0 - 0.5) / 0.5,     (0.4 - 0.5) / 0.5, (0.2 - 0.25) / 0.25,
                                (0.8 - 0.25) / 0.25, 1.0 / 2,           0};
    for (int i = 0; i < 6; i++)
        assert_near(t[i], expected[i], 1e-6);
    img_free(im);
}

/* NHWC interleaves; BGR reverses the channels, and mean and std follow the model's order. */
static void test_tensor_layout_and_order(void **state)
{
    struct img *im = two_pixels(3, (const uint8_t[]){255, 0, 51}, (const uint8_t[]){0, 255, 102});
    struct classify_preprocess pp = identity;
    pp.nhwc = 1;
    pp.bgr = 1;
    pp.mean[0] = 0.1f; /* the blue channel's */
    float t[6];
    assert_int_equal(classify_image_tensor(im, &pp, NULL, 0, 0, 1, t, NULL), 0);
    const double expected[6] = {0.2 - 0.1, 0, 1, 0.4 - 0.1, 1, 0};
    for (int i = 0; i < 6; i++)
        assert_near(t[i], expected[i], 1e-6);
    img_free(im);
}

/* PIL's convert: RGBA drops alpha, L is replicated, RGB to L is ITU-R 601-2 luma. */
static void test_channel_conversion(void **state)
{
    struct classify_preprocess pp = identity;
    pp.scale = 1;
    float t[6];
    struct img *rgba =
        two_pixels(4, (const uint8_t[]){10, 20, 30, 0}, (const uint8_t[]){40, 50, 60, 255});
    assert_int_equal(classify_image_tensor(rgba, &pp, NULL, 0, 0, 1, t, NULL), 0);
    const float from_rgba[6] = {10, 40, 20, 50, 30, 60};
    assert_memory_equal(t, from_rgba, sizeof t);
    struct img *l = two_pixels(1, (const uint8_t[]){7}, (const uint8_t[]){9});
    assert_int_equal(classify_image_tensor(l, &pp, NULL, 0, 0, 1, t, NULL), 0);
    const float from_l[6] = {7, 9, 7, 9, 7, 9};
    assert_memory_equal(t, from_l, sizeof t);
    pp.channels = 1;
    struct img *rgb = two_pixels(3, (const uint8_t[]){255, 0, 0}, (const uint8_t[]){0, 0, 255});
    assert_int_equal(classify_image_tensor(rgb, &pp, NULL, 0, 0, 1, t, NULL), 0);
    /* (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 */
    assert_near(t[0], 76, 0);
    assert_near(t[1], 29, 0);
    img_free(rgba);
    img_free(l);
    img_free(rgb);
}

/* A horizontal ramp, so every flip or shift shows in the tensor. */
static struct img *ramp(int width, int height)
{
    struct img *im = img_new(width, height, 3, NULL);
    assert_non_null(im);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width * 3; x++)
            img_row(im, y)[x] = (uint8_t)(x * 3 + y);
    return im;
}

/* View 0 is the image itself; weak views are reproducible from the seed and differ between
 * seeds. */
static void test_weak_views(void **state)
{
    struct img *im = ramp(40, 30);
    struct classify_preprocess pp = identity;
    pp.resize = 16;
    pp.crop_height = pp.crop_width = 16;
    struct eng_error err = {0};
    struct policy *weak = policy_parse_text("fixmatch-weak", &err);
    assert_non_null(weak);
    enum { VIEWS = 8, PER = 3 * 16 * 16 };
    float *a = malloc(VIEWS * PER * sizeof *a), *b = malloc(VIEWS * PER * sizeof *b);
    float clean[PER];
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(classify_image_tensor(im, &pp, NULL, 0, 3, 1, clean, &err), 0);
    assert_int_equal(classify_image_tensor(im, &pp, weak, 42, 3, VIEWS, a, &err), 0);
    assert_int_equal(classify_image_tensor(im, &pp, weak, 42, 3, VIEWS, b, &err), 0);
    assert_memory_equal(a, clean, sizeof clean);
    assert_memory_equal(a, b, VIEWS * PER * sizeof *a);
    int changed = 0;
    for (int v = 1; v < VIEWS; v++)
        changed += memcmp(a + v * PER, clean, sizeof clean) != 0;
    assert_true(changed > 0);
    assert_int_equal(classify_image_tensor(im, &pp, weak, 43, 3, VIEWS, b, &err), 0);
    assert_true(memcmp(a, b, VIEWS * PER * sizeof *a) != 0);
    assert_int_equal(classify_image_tensor(im, &pp, NULL, 42, 3, 2, b, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    free(a);
    free(b);
    policy_free(weak);
    img_free(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_probabilities),
        cmocka_unit_test(test_topk_ties_by_lower_index),
        cmocka_unit_test(test_topk_matches_sort),
        cmocka_unit_test(test_accepted_and_abstained),
        cmocka_unit_test(test_logits_to_label),
        cmocka_unit_test(test_ensemble_averaging_and_agreement),
        cmocka_unit_test(test_tie_and_entropy),
        cmocka_unit_test(test_pseudo_label_empty),
        cmocka_unit_test(test_preprocess_size),
        cmocka_unit_test(test_tensor_values_nchw),
        cmocka_unit_test(test_tensor_layout_and_order),
        cmocka_unit_test(test_channel_conversion),
        cmocka_unit_test(test_weak_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
