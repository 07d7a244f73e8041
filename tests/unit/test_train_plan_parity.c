/* The training plan against PyTorch 1.13: for each case of tests/parity/gen_train.py (a small
 * CNN with Conv, grouped Conv, depthwise Conv, BatchNorm, Relu, Clip, HardSwish, MaxPool,
 * AveragePool, GlobalAveragePool and Gemm; ResNet-20; WRN-16-2), one training step on the same
 * weights and batch, with Conv on oneDNN's blocked layouts (the default) and on plain ones: the
 * logits of the training-mode forward and the BatchNorm running statistics after it, then, given
 * the same dL/dlogits, every parameter's gradient and the input's. Each tensor must match within
 * 1e-4 of its largest magnitude; the gradients after the kink crossings below.
 *
 * Kink crossings. An activation input within float32 rounding of 0 lands on either side of the
 * ReLU's kink depending on the summation order before it, and its gradient then differs by a
 * whole factor; before a BatchNorm, whose backward spreads that over a channel, every gradient
 * before it moves by up to 5e-3 of its largest element and 5e-4 in norm (ResNet-20 with its
 * reference's initialisation: one input at -7.8e-8 in float64). Neither an element-wise nor a
 * norm-wise tolerance can take that without also taking real errors, so gen_train.py lists the
 * activation inputs within 1e-5 of their tensor's root mean square of 0 (the kinks) and how every
 * gradient moves when one of them takes the other side; the gradients must then match PyTorch's
 * plus the moves of at most MAX_CROSSINGS kinks, the fewest that do (printed). A wrong backward
 * pass is not such a sum: check_can_fail shows that a gradient scaled by 1 + 3x the tolerance,
 * or one element moved by twice the tolerance, fails.
 *
 * argv: folders holding a manifest.json (the checked-in small case, and the build folder's). */
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

#include "testutil.h"
#include "train/train.h"

static int n_dirs;
static char **dirs;

/* A file of count floats (a blob, whose bytes are the floats). */
static float *read_floats(const char *dir, const char *name, size_t count)
{
    struct blob b = tu_read_file(dir, name);
    if (b.size != count * sizeof(float))
        fail_msg("%s/%s: %zu bytes, %zu expected", dir, name, b.size, count * sizeof(float));
    return (float *)b.data;
}

static size_t shape_count(json_t *shape, int64_t *dims, int *rank)
{
    size_t count = 1, i;
    json_t *d;
    *rank = (int)json_array_size(shape);
    json_array_foreach(shape, i, d)
    {
        dims[i] = json_integer_value(d);
        count *= (size_t)dims[i];
    }
    return count;
}

/* max |got - want| <= 1e-4 * max |want| + floor: the index of the element that differs most
 * when it does not hold, else -1. want is PyTorch's plus the moves (n of them, count floats
 * each). The floor is 1e-6 for gradients, for tensors that are zero in exact arithmetic and
 * rounding noise in both (a bias before a BatchNorm, which cancels it: about 1e-8 here). */
static long mismatch(const float *got, const float *want, const float *const *moves, int n,
                     size_t count, double floor)
{
    double worst = 0, scale = 0;
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        double w = want[i];
        for (int k = 0; k < n; k++)
            w += moves[k][i];
        double d = fabs((double)got[i] - w);
        if (!(d <= worst)) worst = d, at = i;
        if (fabs(w) > scale) scale = fabs(w);
    }
    return worst <= 1e-4 * scale + floor ? -1 : (long)at;
}

/* The forward's values (logits, BatchNorm statistics) against PyTorch's. */
static void compare_values(const char *model, const char *what, const float *got, const float *want,
                           size_t count)
{
    long at = mismatch(got, want, NULL, 0, count, 0);
    if (at >= 0)
        fail_msg("%s %s: element %ld is %.9g, PyTorch's %.9g", model, what, at, got[at], want[at]);
}

static struct train_param *find(struct train_plan *t, const char *name, int buffer)
{
    size_t n = buffer ? train_plan_buffer_count(t) : train_plan_param_count(t);
    for (size_t i = 0; i < n; i++) {
        struct train_param *p = buffer ? train_plan_buffer(t, i) : train_plan_param(t, i);
        if (!strcmp(p->name, name)) return p;
    }
    fail_msg("no %s named %s", buffer ? "buffer" : "parameter", name);
    return NULL;
}

#define MAX_CROSSINGS 2

/* A case's gradients as one vector, in the grads file's order (every parameter's, then the
 * input's), with PyTorch's and the kinks' moves in the same order. */
struct gradients {
    size_t total, n_tensors, n_kinks;
    size_t *offset, *count;
    const char **name;
    float *got, *want, *moves;
};

/* Whether got matches want plus the moves of kinks[0..n): -1, or the first tensor that does not
 * (its element in *at). */
static long first_mismatch(const struct gradients *g, const float *got, const size_t *kinks, int n,
                           long *at)
{
    const float *moves[MAX_CROSSINGS];
    for (size_t i = 0; i < g->n_tensors; i++) {
        for (int k = 0; k < n; k++)
            moves[k] = g->moves + kinks[k] * g->total + g->offset[i];
        *at = mismatch(got + g->offset[i], g->want + g->offset[i], moves, n, g->count[i], 1e-6);
        if (*at >= 0) return (long)i;
    }
    return -1;
}

/* The fewest kinks (up to MAX_CROSSINGS) whose moves make got match: their count, with the
 * kinks in kinks[], or -1 when none does. */
static int crossings(const struct gradients *g, const float *got, size_t kinks[MAX_CROSSINGS])
{
    long at;
    if (first_mismatch(g, got, kinks, 0, &at) < 0) return 0;
    for (kinks[0] = 0; kinks[0] < g->n_kinks; kinks[0]++)
        if (first_mismatch(g, got, kinks, 1, &at) < 0) return 1;
    for (kinks[0] = 0; kinks[0] < g->n_kinks; kinks[0]++)
        for (kinks[1] = kinks[0] + 1; kinks[1] < g->n_kinks; kinks[1]++)
            if (first_mismatch(g, got, kinks, 2, &at) < 0) return 2;
    return -1;
}

/* The case's gradients: PyTorch's, the kinks' moves, and the plan's (from t and dx). */
static void load_gradients(struct gradients *g, struct train_plan *t, const char *dir, json_t *c,
                           const float *dx)
{
    json_t *params = json_object_get(c, "params"), *e;
    size_t i;
    int64_t dims[8];
    int rank;
    memset(g, 0, sizeof *g);
    g->n_tensors = json_array_size(params) + 1;
    g->offset = calloc(g->n_tensors, sizeof *g->offset);
    g->count = calloc(g->n_tensors, sizeof *g->count);
    g->name = calloc(g->n_tensors, sizeof *g->name);
    assert_true(g->offset && g->count && g->name);
    json_array_foreach(params, i, e)
    {
        g->name[i] = json_string_value(json_object_get(e, "name"));
        g->offset[i] = g->total;
        g->count[i] = shape_count(json_object_get(e, "shape"), dims, &rank);
        assert_int_equal(json_integer_value(json_object_get(e, "offset")), g->total);
        g->total += g->count[i];
    }
    size_t params_total = g->total,
           xc = shape_count(json_object_get(c, "input_shape"), dims, &rank);
    g->name[g->n_tensors - 1] = "input gradient";
    g->offset[g->n_tensors - 1] = g->total;
    g->count[g->n_tensors - 1] = xc;
    g->total += xc;
    assert_int_equal(json_array_size(params), train_plan_param_count(t));
    g->got = malloc(g->total * sizeof *g->got);
    g->want = malloc(g->total * sizeof *g->want);
    assert_true(g->got && g->want);
    for (i = 0; i + 1 < g->n_tensors; i++) {
        struct train_param *p = find(t, g->name[i], 0);
        assert_int_equal(p->count, g->count[i]);
        memcpy(g->got + g->offset[i], p->grad, g->count[i] * sizeof *g->got);
    }
    memcpy(g->got + params_total, dx, xc * sizeof *dx);
    float *want = read_floats(dir, json_string_value(json_object_get(c, "grads")), params_total);
    float *dinput = read_floats(dir, json_string_value(json_object_get(c, "dinput")), xc);
    memcpy(g->want, want, params_total * sizeof *want);
    memcpy(g->want + params_total, dinput, xc * sizeof *dinput);
    free(want);
    free(dinput);
    g->n_kinks = json_array_size(json_object_get(c, "kinks"));
    if (g->n_kinks)
        g->moves = read_floats(dir, json_string_value(json_object_get(c, "kinks_file")),
                               g->n_kinks * g->total);
}

static void free_gradients(struct gradients *g)
{
    free(g->offset);
    free(g->count);
    free(g->name);
    free(g->got);
    free(g->want);
    free(g->moves);
}

/* The largest |PyTorch's gradient| of tensor i. */
static double largest(const struct gradients *g, size_t i)
{
    double m = 0;
    for (size_t k = 0; k < g->count[i]; k++)
        m = fmax(m, fabs(g->want[g->offset[i] + k]));
    return m;
}

/* The metric can fail: the plan's gradients made slightly wrong, as a wrong backward pass would
 * make them, match no sum of kinks' moves: the input's gradient scaled by 1 + 3x the tolerance
 * (of its largest element), and one element of the first parameter's gradient moved by twice
 * the tolerance. */
static void check_can_fail(const struct gradients *g, const char *model)
{
    size_t kinks[MAX_CROSSINGS], in = g->n_tensors - 1;
    float *bad = malloc(g->total * sizeof *bad);
    assert_non_null(bad);
    memcpy(bad, g->got, g->total * sizeof *bad);
    float scale = (float)(1 + 3 * (1e-4 + 1e-6 / largest(g, in)));
    for (size_t i = 0; i < g->count[in]; i++)
        bad[g->offset[in] + i] *= scale;
    if (crossings(g, bad, kinks) >= 0) fail_msg("%s: a scaled input gradient passes", model);
    memcpy(bad, g->got, g->total * sizeof *bad);
    bad[g->count[0] / 2] += (float)(2 * (1e-4 * largest(g, 0) + 1e-6));
    if (crossings(g, bad, kinks) >= 0) fail_msg("%s: a moved %s passes", model, g->name[0]);
    free(bad);
}

/* The plan's gradients against PyTorch's and its kinks' moves (above). */
static void compare_gradients(struct train_plan *t, const char *dir, json_t *c, const float *dx,
                              const char *label)
{
    struct gradients g;
    load_gradients(&g, t, dir, c, dx);
    size_t kinks[MAX_CROSSINGS];
    int n = crossings(&g, g.got, kinks);
    if (n < 0) {
        long at, i = first_mismatch(&g, g.got, kinks, 0, &at);
        fail_msg("%s %s: element %ld is %.9g, PyTorch's %.9g, and no %d of the %zu kinks explain "
                 "it",
                 label, g.name[i], at, g.got[g.offset[i] + at], g.want[g.offset[i] + at],
                 MAX_CROSSINGS, g.n_kinks);
    }
    json_t *listed = json_object_get(c, "kinks");
    printf("%s: the gradients match after %d of %zu kinks' crossings", label, n, g.n_kinks);
    for (int k = 0; k < n; k++) {
        json_t *e = json_array_get(listed, kinks[k]);
        printf("%s activation %lld element %lld (%.3g in float64)", k ? "," : ":",
               (long long)json_integer_value(json_object_get(e, "call")),
               (long long)json_integer_value(json_object_get(e, "element")),
               json_real_value(json_object_get(e, "value")));
    }
    printf("\n");
    check_can_fail(&g, label);
    free_gradients(&g);
}

/* The case's SGD steps (its manifest's "steps", gen_train.py's sgd_steps) with the plan, the
 * engine's cross-entropy and optimiser under config, from the graph's weights on the case's batch
 * (x): NULL when every parameter and buffer after them matches PyTorch's within 1e-4 of that
 * tensor's largest magnitude (max |ours - PyTorch's| <= 1e-4 max |PyTorch's|, compare_values'
 * metric: the "within 1e-4"), else what differs. */
static const char *steps_mismatch(const char *dir, json_t *c, const struct nn_graph *g,
                                  const struct nn_tensor_info *in, bool plain_conv,
                                  const struct train_optim_config *config, const float *x)
{
    static char what[256];
    json_t *steps = json_object_get(c, "steps");
    struct eng_error err = {0};
    struct train_plan_options options = {.threads = 2, .plain_conv = plain_conv};
    struct train_plan *t = train_plan_compile(g, in, &options, &err);
    if (!t) fail_msg("%s", err.message);
    size_t np = train_plan_param_count(t), batch = (size_t)in->dims[0];
    size_t classes = (size_t)train_plan_output_info(t)->dims[1];
    struct blob labels = tu_read_file(dir, json_string_value(json_object_get(steps, "labels")));
    assert_int_equal(labels.size, batch * sizeof(int32_t));
    struct train_targets targets = {.labels = (const int32_t *)labels.data};
    struct train_optim *optim = train_optim_create(config, train_plan_param(t, 0), np, &err);
    float *dlogits = malloc(batch * classes * sizeof *dlogits);
    if (!optim || !dlogits) fail_msg("%s", err.message);
    double lr = json_real_value(json_object_get(steps, "lr")), loss;
    const float *y;
    for (json_int_t k = 0; k < json_integer_value(json_object_get(steps, "count")); k++) {
        memset(dlogits, 0, batch * classes * sizeof *dlogits);
        if (train_plan_forward(t, x, true, &y, &err) ||
            train_loss_cross_entropy(y, batch, classes, &targets, 0, NULL, &loss, dlogits, &err) ||
            train_plan_backward(t, dlogits, NULL, &err) ||
            train_optim_step(optim, train_plan_param(t, 0), np, lr, &err))
            fail_msg("step %lld: %s", (long long)k, err.message);
    }
    /* The file holds the parameters (at their offsets in the grads file) then the buffers. */
    json_t *params = json_object_get(c, "params"), *buffers = json_object_get(c, "buffers"), *e;
    size_t params_total = 0, total, i;
    int64_t dims[8];
    int rank;
    json_array_foreach(params, i, e) params_total +=
        shape_count(json_object_get(e, "shape"), dims, &rank);
    total = params_total;
    json_array_foreach(buffers, i, e) total +=
        shape_count(json_object_get(e, "shape"), dims, &rank);
    float *want = read_floats(dir, json_string_value(json_object_get(steps, "file")), total);
    const char *result = NULL;
    for (size_t n = json_array_size(params), j = 0; !result && j < n + json_array_size(buffers);
         j++) {
        e = json_array_get(j < n ? params : buffers, j < n ? j : j - n);
        struct train_param *p = find(t, json_string_value(json_object_get(e, "name")), j >= n);
        const float *w =
            want + (j < n ? 0 : params_total) + json_integer_value(json_object_get(e, "offset"));
        assert_int_equal(p->count, shape_count(json_object_get(e, "shape"), dims, &rank));
        long at = mismatch(p->value, w, NULL, 0, p->count, 0);
        if (at >= 0) {
            snprintf(what, sizeof what, "%s element %ld is %.9g, PyTorch's %.9g", p->name, at,
                     p->value[at], w[at]);
            result = what;
        }
    }
    free(want);
    free(dlogits);
    free(labels.data);
    train_optim_free(optim);
    train_plan_free(t);
    return result;
}

/* Below this margin (an activation input's |t| / rms(t) over PyTorch's steps, the manifest's
 * closest_kink) float32 rounding can put an element on the other side of a ReLU kink: the
 * crossings the gradient check meets sit at ~1e-7 of their tensor's rms, ten times below. */
#define STEPS_MARGIN 1e-6

/* The SGD steps against PyTorch's (steps_mismatch), and the check's power: the same steps with
 * no weight decay, momentum 0.8 or without Nesterov must not match. A case whose steps pass
 * closer to a kink than STEPS_MARGIN (ResNet-20 and WRN-16-2: some ten million activation
 * inputs over ten steps, of which a few always lie within rounding of 0) is reported, not
 * asserted: a crossing in step k moves the gradients by up to 5e-3 of their largest element, the
 * parameters by lr times that, and the steps after amplify the difference, which PyTorch's own
 * float32 steps against float64 show too (the manifest's float64_gap; engine/train/README.md). */
static void check_steps(const char *dir, json_t *c, const struct nn_graph *g,
                        const struct nn_tensor_info *in, bool plain_conv, const float *x,
                        const char *label)
{
    json_t *steps = json_object_get(c, "steps"), *closest = json_object_get(steps, "closest_kink");
    long long count = json_integer_value(json_object_get(steps, "count"));
    double margin = json_real_value(json_object_get(closest, "margin"));
    struct train_optim_config config = train_optim_defaults(TRAIN_SGD);
    config.momentum = json_real_value(json_object_get(steps, "momentum"));
    config.nesterov = json_is_true(json_object_get(steps, "nesterov"));
    config.weight_decay = json_real_value(json_object_get(steps, "weight_decay"));
    const char *bad = steps_mismatch(dir, c, g, in, plain_conv, &config, x);
    printf("%s, %lld SGD steps: each tensor moved by at least %.3g of its largest magnitude; the "
           "closest activation input to a kink: %.3g of its rms (step %lld, activation %lld); "
           "PyTorch's float32 against float64: %.3g; ours: %s\n",
           label, count, json_real_value(json_object_get(steps, "smallest_move")), margin,
           (long long)json_integer_value(json_object_get(closest, "step")),
           (long long)json_integer_value(json_object_get(closest, "call")),
           json_real_value(json_object_get(steps, "float64_gap")),
           bad ? bad : "every parameter and buffer matches");
    if (margin < STEPS_MARGIN) return;
    if (bad) fail_msg("%s after %lld SGD steps: %s", label, count, bad);
    if (plain_conv) return; /* the power is the metric's, the same on both layouts */
    struct train_optim_config wrong[3] = {config, config, config};
    wrong[0].weight_decay = 0;
    wrong[1].momentum = 0.8;
    wrong[2].nesterov = false;
    for (int k = 0; k < 3; k++)
        if (!steps_mismatch(dir, c, g, in, plain_conv, &wrong[k], x))
            fail_msg("%s: the steps match with a wrong %s", label,
                     (const char *[]){"weight decay", "momentum", "Nesterov"}[k]);
}

/* One training step of case c, Conv on oneDNN's blocked layouts (the default) or plain ones. */
static void run_case(const char *dir, json_t *c, bool plain_conv)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    char path[1024], label[128];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(c, "model")));
    snprintf(label, sizeof label, "%s%s", name, plain_conv ? " (plain Conv)" : "");
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s: %s", path, err.message);
    struct nn_tensor_info in = {.name = "x", .dtype = NN_FLOAT}, out;
    size_t xc = shape_count(json_object_get(c, "input_shape"), in.dims, &in.rank);
    size_t yc = shape_count(json_object_get(c, "logits_shape"), out.dims, &out.rank);
    struct train_plan_options options = {
        .threads = 2, .input_grad = true, .plain_conv = plain_conv};
    struct train_plan *t = train_plan_compile(g, &in, &options, &err);
    if (!t) fail_msg("%s: %s", name, err.message);
    float *x = read_floats(dir, json_string_value(json_object_get(c, "input")), xc);
    float *logits = read_floats(dir, json_string_value(json_object_get(c, "logits")), yc);
    float *dlogits = read_floats(dir, json_string_value(json_object_get(c, "dlogits")), yc);
    float *dx = malloc(xc * sizeof *dx);
    assert_non_null(dx);
    const float *y;
    if (train_plan_forward(t, x, true, &y, &err) || train_plan_backward(t, dlogits, dx, &err))
        fail_msg("%s: %s", name, err.message);
    compare_values(label, "logits", y, logits, yc);
    json_t *buffers = json_object_get(c, "buffers"), *e;
    size_t total = 0, i;
    int64_t dims[8];
    int rank;
    json_array_foreach(buffers, i, e) total +=
        shape_count(json_object_get(e, "shape"), dims, &rank);
    float *want = read_floats(dir, json_string_value(json_object_get(c, "buffers_file")), total);
    json_array_foreach(buffers, i, e)
    {
        struct train_param *p = find(t, json_string_value(json_object_get(e, "name")), 1);
        assert_int_equal(p->count, shape_count(json_object_get(e, "shape"), dims, &rank));
        compare_values(label, p->name, p->value,
                       want + json_integer_value(json_object_get(e, "offset")), p->count);
    }
    assert_int_equal(json_array_size(buffers), train_plan_buffer_count(t));
    compare_gradients(t, dir, c, dx, label);
    if (json_object_get(c, "steps")) check_steps(dir, c, g, &in, plain_conv, x, label);
    free(want);
    free(x);
    free(logits);
    free(dlogits);
    free(dx);
    train_plan_free(t);
    nn_graph_free(g);
}

static void test_parity(void **state)
{
    (void)state;
    int ran = 0;
    for (int d = 0; d < n_dirs; d++) {
        json_t *m = tu_load_json(dirs[d], "manifest.json");
        json_t *skipped = json_object_get(m, "skipped"), *c;
        if (skipped) printf("%s: skipped: %s\n", dirs[d], json_string_value(skipped));
        size_t i;
        json_array_foreach(json_object_get(m, "cases"), i, c)
        {
            run_case(dirs[d], c, false);
            run_case(dirs[d], c, true); /* options.plain_conv */
            ran++;
        }
        json_decref(m);
    }
    /* The checked-in small case always runs. */
    assert_true(ran >= 1);
}

int main(int argc, char **argv)
{
    n_dirs = argc - 1;
    dirs = argv + 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
