/* engine/train's losses against hand-computed values, and their gradients against central finite
 * differences of the loss itself (which is computed in double): every gradient formula of loss.c
 * is checked by its own definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "assert_near.h"
#include "train/train.h"

#define B 3
#define C 5

/* Logits on a grid of 1/64, so that z +- 2^-10 is exact in float32. */
static void fill_logits(float *z, size_t n, int seed, float scale)
{
    for (size_t i = 0; i < n; i++)
        z[i] = scale * (float)((int)((i * 37 + (size_t)seed * 11) % 29) - 14) / 64.0f;
}

static void test_cross_entropy_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    double loss;
    /* Two equal logits: p = (1/2, 1/2); label 0 gives ln 2 and gradient p - onehot. Smoothing 0.2
     * over 2 classes makes the target (0.9, 0.1): the same ln 2 (p is uniform), gradient
     * (-0.4, 0.4). */
    float z[2] = {0, 0}, g[2] = {0, 0};
    int32_t y = 0;
    struct train_targets t = {.labels = &y};
    assert_int_equal(train_loss_cross_entropy(z, 1, 2, &t, 0, NULL, &loss, g, &err), 0);
    assert_near(loss, log(2), 1e-15);
    assert_near(g[0], -0.5, 1e-7);
    assert_near(g[1], 0.5, 1e-7);
    memset(g, 0, sizeof g);
    assert_int_equal(train_loss_cross_entropy(z, 1, 2, &t, 0.2, NULL, &loss, g, &err), 0);
    assert_near(loss, log(2), 1e-15);
    assert_near(g[0], -0.4, 1e-7);
    assert_near(g[1], 0.4, 1e-7);
    /* Logits (0, ln 3): p = (1/4, 3/4); label 1 gives -ln(3/4). Soft target (1/2, 1/2) gives
     * -(ln(1/4) + ln(3/4)) / 2. */
    z[1] = (float)log(3.0);
    y = 1;
    assert_int_equal(train_loss_cross_entropy(z, 1, 2, &t, 0, NULL, &loss, NULL, &err), 0);
    assert_near(loss, -log(0.75), 1e-7);
    float half[2] = {0.5f, 0.5f};
    struct train_targets soft = {.probs = half};
    assert_int_equal(train_loss_cross_entropy(z, 1, 2, &soft, 0, NULL, &loss, NULL, &err), 0);
    assert_near(loss, -(log(0.25) + log(0.75)) / 2, 1e-7);
}

static void test_cross_entropy_large_logits(void **state)
{
    (void)state;
    struct eng_error err;
    double loss;
    /* exp(1000) overflows a double: the log-sum-exp does not. Label 1 of (1000, 0) costs 1000
     * and its gradient is (1, -1); the batch mean halves both over two samples, the weights
     * count the first sample twice and the second not at all. */
    float z[4] = {1000, 0, 1000, 0}, g[4] = {0, 0, 0, 0}, w[2] = {2, 0};
    int32_t y[2] = {1, 1};
    struct train_targets t = {.labels = y};
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &t, 0, NULL, &loss, g, &err), 0);
    assert_near(loss, 1000, 1e-9);
    assert_near(g[0], 0.5, 1e-7);
    assert_near(g[1], -0.5, 1e-7);
    memset(g, 0, sizeof g);
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &t, 0, w, &loss, g, &err), 0);
    assert_near(loss, 1000, 1e-9);
    assert_near(g[0], 1, 1e-7);
    assert_near(g[2], 0, 0);
}

static void test_cross_entropy_refusals(void **state)
{
    (void)state;
    struct eng_error err;
    double loss;
    float z[4] = {0, 1, 2, 3}, g[4] = {7, 7, 7, 7}, probs[4] = {0.5f, 0.5f, -0.1f, 1.1f};
    int32_t y[2] = {0, 2};
    struct train_targets t = {.labels = y};
    /* Every refusal leaves grad as it was, even when only the second sample is wrong. */
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &t, 0, NULL, &loss, g, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "label is 2"));
    struct train_targets soft = {.probs = probs};
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &soft, 0, NULL, &loss, g, &err), -1);
    assert_non_null(strstr(err.message, "probability"));
    struct train_targets both = {.labels = y, .probs = probs}, none = {0};
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &both, 0, NULL, &loss, g, &err), -1);
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &none, 0, NULL, &loss, g, &err), -1);
    y[1] = 1;
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &t, 1.5, NULL, &loss, g, &err), -1);
    assert_non_null(strstr(err.message, "label_smoothing"));
    z[3] = NAN;
    assert_int_equal(train_loss_cross_entropy(z, 2, 2, &t, 0, NULL, &loss, g, &err), -1);
    assert_non_null(strstr(err.message, "diverged"));
    assert_int_equal(train_loss_cross_entropy(z, 0, 2, &t, 0, NULL, &loss, g, &err), -1);
    for (int i = 0; i < 4; i++)
        assert_true(g[i] == 7);
}

/* A case below: its loss at the logits views[0..3), adding its gradient into grads when that is
 * not NULL. which picks a variant. */
typedef double (*loss_fn)(float *const views[3], int which, float *const grads[3]);

static double ce_labels(float *const v[3], int which, float *const grads[3])
{
    int32_t y[B] = {0, 4, 2};
    float w[B] = {1, 0.5f, 2};
    struct train_targets t = {.labels = y};
    struct eng_error err;
    double loss;
    assert_int_equal(train_loss_cross_entropy(v[0], B, C, &t, 0.1, which ? NULL : w, &loss,
                                              grads ? grads[0] : NULL, &err),
                     0);
    return loss;
}

static double ce_soft(float *const v[3], int which, float *const grads[3])
{
    (void)which;
    static const float probs[B * C] = {0.1f, 0.2f, 0.3f, 0.4f, 0,    0.5f, 0.5f, 0,
                                       0,    0,    0.2f, 0.2f, 0.2f, 0.2f, 0.3f};
    struct train_targets t = {.probs = probs};
    struct eng_error err;
    double loss;
    assert_int_equal(
        train_loss_cross_entropy(v[0], B, C, &t, 0.3, NULL, &loss, grads ? grads[0] : NULL, &err),
        0);
    return loss;
}

static double jsd(float *const v[3], int which, float *const grads[3])
{
    (void)which;
    struct eng_error err;
    double loss;
    assert_int_equal(train_loss_jsd((const float *const *)v, B, C, 12, &loss, grads, &err), 0);
    return loss;
}

/* Checks the analytic gradient of views [0, nviews) against (L(z + h) - L(z - h)) / 2h. */
static void check_gradient(loss_fn f, int which, int nviews, float scale)
{
    float z[3][B * C], g[3][B * C];
    float *views[3] = {z[0], z[1], z[2]}, *grads[3] = {g[0], g[1], g[2]};
    for (int v = 0; v < 3; v++)
        fill_logits(z[v], B * C, v + which, scale);
    memset(g, 0, sizeof g);
    assert_near(f(views, which, grads), f(views, which, NULL), 0);
    const float h = 1.0f / 1024;
    for (int v = 0; v < nviews; v++)
        for (int j = 0; j < B * C; j++) {
            float keep = z[v][j];
            z[v][j] = keep + h;
            double up = f(views, which, NULL);
            z[v][j] = keep - h;
            double down = f(views, which, NULL);
            z[v][j] = keep;
            double numeric = (up - down) / (2.0 * h);
            if (!(fabs(g[v][j] - numeric) <= 1e-5 * fabs(numeric) + 2e-6))
                fail_msg("view %d, logit %d: gradient %.9g, finite difference %.9g", v, j, g[v][j],
                         numeric);
        }
}

static void test_gradients_by_finite_differences(void **state)
{
    (void)state;
    check_gradient(ce_labels, 0, 1, 1); /* weighted, smoothed */
    check_gradient(ce_labels, 1, 1, 4); /* unweighted, larger logits */
    check_gradient(ce_soft, 0, 1, 2);   /* soft targets that do not all sum to 1 */
    check_gradient(jsd, 0, 3, 1);       /* every view's gradient */
    check_gradient(jsd, 1, 3, 6);       /* confident views */
}

static void test_jsd_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    double loss;
    /* Three equal views: the mixture is each of them, every KL 0, and so the gradient. */
    float z[C] = {1, -2, 0.5f, 3, 0}, g[3][C];
    const float *views[3] = {z, z, z};
    float *grads[3] = {g[0], g[1], g[2]};
    memset(g, 0, sizeof g);
    assert_int_equal(train_loss_jsd(views, 1, C, 12, &loss, grads, &err), 0);
    assert_near(loss, 0, 1e-15);
    for (int v = 0; v < 3; v++)
        for (int j = 0; j < C; j++)
            assert_near(g[v][j], 0, 1e-7);
    /* Two classes, views certain of class 0, certain of class 1 (p exactly 0 and 1 in double
     * is out of reach; logits +-40 give p within 1e-17 of them) and uniform: the mixture is
     * (1/2, 1/2), and the KLs are ln 2, ln 2 and 0: loss = 12 (2 ln 2) / 3 = 8 ln 2. */
    float a[2] = {40, -40}, b[2] = {-40, 40}, u[2] = {0, 0};
    const float *two[3] = {a, b, u};
    assert_int_equal(train_loss_jsd(two, 1, 2, 12, &loss, NULL, &err), 0);
    assert_near(loss, 8 * log(2), 1e-12);
    /* A NaN in the second view is refused and nothing is added. */
    u[1] = NAN;
    g[0][0] = 5;
    assert_int_equal(train_loss_jsd(two, 1, 2, 12, &loss, grads, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_true(g[0][0] == 5);
    assert_int_equal(train_loss_jsd(views, 1, C, -1, &loss, grads, &err), -1);
    assert_non_null(strstr(err.message, "weight"));
}

static void test_gradients_add_up(void **state)
{
    (void)state;
    /* AugMix's total on the clean view: cross-entropy plus the JSD, each added into one buffer,
     * equals the sum of the two computed apart. */
    float z[3][B * C], both[3][B * C], ce[B * C], js[3][B * C];
    for (int v = 0; v < 3; v++)
        fill_logits(z[v], B * C, v, 2);
    memset(both, 0, sizeof both);
    memset(ce, 0, sizeof ce);
    memset(js, 0, sizeof js);
    const float *views[3] = {z[0], z[1], z[2]};
    float *gb[3] = {both[0], both[1], both[2]}, *gj[3] = {js[0], js[1], js[2]};
    int32_t y[B] = {1, 2, 3};
    struct train_targets t = {.labels = y};
    struct eng_error err;
    double l1, l2;
    assert_int_equal(train_loss_cross_entropy(z[0], B, C, &t, 0, NULL, &l1, both[0], &err), 0);
    assert_int_equal(train_loss_jsd(views, B, C, 12, &l2, gb, &err), 0);
    assert_int_equal(train_loss_cross_entropy(z[0], B, C, &t, 0, NULL, &l1, ce, &err), 0);
    assert_int_equal(train_loss_jsd(views, B, C, 12, &l2, gj, &err), 0);
    for (int j = 0; j < B * C; j++) {
        assert_true(both[0][j] == ce[j] + js[0][j]);
        assert_true(both[1][j] == js[1][j]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy_by_hand),
        cmocka_unit_test(test_cross_entropy_large_logits),
        cmocka_unit_test(test_cross_entropy_refusals),
        cmocka_unit_test(test_jsd_by_hand),
        cmocka_unit_test(test_gradients_by_finite_differences),
        cmocka_unit_test(test_gradients_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
