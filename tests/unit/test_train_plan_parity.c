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
 * Then ten SGD steps against PyTorch's float32 ones, asserted where no activation input comes
 * within rounding of a kink (the small CNN); ResNet-20's and WRN-16-2's cannot be, and their runs
 * are recorded instead (struct record) for tests/parity/replay_train.py (ctest's
 * parity.train.replay), which asserts them against a float64 replay on the engine's sides of the
 * kinks (check_steps).
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

/* A run of the SGD steps recorded for tests/parity/replay_train.py, which replays it in float64
 * with the engine's side of every ReLU kink (record_begin, _masks, _end): per step, per Relu or
 * LeakyRelu node in the graph's order (PyTorch's call order), a bit per element of its input, set
 * where the input is > 0 (the slope 1 the engine's backward then applies: it reads y > 0, the same
 * elements), packed eight to a byte from the lowest bit, into DIR/<case>.<run>.masks; and every
 * parameter then buffer after the steps, float32 in the manifest's steps file layout, into
 * DIR/<case>.<run>.params. engine_steps.json lists the runs. */
#define MAX_ACTS 64

struct record {
    const char *dir, *run;
    json_t *runs; /* engine_steps.json's "runs", which gets this run's entry */
    const struct nn_node *acts[MAX_ACTS];
    size_t n_acts, count[MAX_ACTS];
    const char *keep[MAX_ACTS];
    FILE *masks, *params;
};

/* The graph's Relu and LeakyRelu nodes into r (their inputs kept to the end of each forward, so
 * that train_plan_value reads them). The replay follows the engine's side of their kinks only,
 * so a graph with another op whose slope jumps (Clip, HardSwish, MaxPool, PRelu) cannot be
 * recorded: ResNet-20 and WRN-16-2 have none. */
static void record_begin(struct record *r, const char *name, const struct nn_graph *g,
                         struct train_plan_options *options)
{
    char path[1024];
    r->n_acts = 0;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        const char *op = node->op_type;
        if (!strcmp(op, "Clip") || !strcmp(op, "HardSwish") || !strcmp(op, "MaxPool") ||
            !strcmp(op, "PRelu"))
            fail_msg("%s: node %s is a %s, which the replay does not follow", name, node->name, op);
        if (strcmp(op, "Relu") && strcmp(op, "LeakyRelu")) continue;
        assert_true(r->n_acts < MAX_ACTS);
        r->acts[r->n_acts] = node;
        r->keep[r->n_acts++] = node->inputs[0];
    }
    options->keep = r->keep;
    options->n_keep = r->n_acts;
    snprintf(path, sizeof path, "%s/%s.%s.masks", r->dir, name, r->run);
    r->masks = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s.%s.params", r->dir, name, r->run);
    r->params = fopen(path, "wb");
    if (!r->masks || !r->params) fail_msg("cannot write %s", path);
}

/* After a training forward: the signs of every recorded activation's input. */
static void record_masks(struct record *r, const struct train_plan *t)
{
    struct eng_error err = {0};
    struct nn_tensor_info info;
    for (size_t k = 0; k < r->n_acts; k++) {
        float *v = train_plan_value(t, r->keep[k], &info, &err);
        if (!v) fail_msg("%s", err.message);
        size_t n = 1;
        for (int d = 0; d < info.rank; d++)
            n *= (size_t)info.dims[d];
        r->count[k] = n;
        unsigned char *bits = calloc((n + 7) / 8, 1);
        assert_non_null(bits);
        for (size_t i = 0; i < n; i++)
            bits[i / 8] |= (unsigned char)((v[i] > 0) << (i % 8));
        assert_int_equal(fwrite(bits, 1, (n + 7) / 8, r->masks), (n + 7) / 8);
        free(bits);
        free(v);
    }
}

/* After the steps: the run's entry in r->runs, with its optimiser's settings. */
static void record_end(struct record *r, const char *name, const struct train_optim_config *config)
{
    json_t *acts = json_array();
    for (size_t k = 0; k < r->n_acts; k++) {
        const struct nn_attr *alpha = nn_node_attr(r->acts[k], "alpha");
        bool leaky = !strcmp(r->acts[k]->op_type, "LeakyRelu");
        json_array_append_new(acts, json_pack("{s:s, s:s, s:f, s:I}", "node", r->acts[k]->name,
                                              "op", r->acts[k]->op_type, "alpha",
                                              leaky ? (alpha ? alpha->f : 0.01) : 0.0, "count",
                                              (json_int_t)r->count[k]));
    }
    char masks[256], params[256];
    snprintf(masks, sizeof masks, "%s.%s.masks", name, r->run);
    snprintf(params, sizeof params, "%s.%s.params", name, r->run);
    json_array_append_new(r->runs,
                          json_pack("{s:s, s:s, s:f, s:b, s:f, s:o, s:s, s:s}", "case", name, "run",
                                    r->run, "momentum", config->momentum, "nesterov",
                                    config->nesterov, "weight_decay", config->weight_decay,
                                    "activations", acts, "masks", masks, "params", params));
    assert_int_equal(fclose(r->masks), 0);
    assert_int_equal(fclose(r->params), 0);
}

/* The case's SGD steps (its manifest's "steps", gen_train.py's sgd_steps) with the plan, the
 * engine's cross-entropy and optimiser under config, from the graph's weights on the case's batch
 * (x): NULL when every parameter and buffer after them matches PyTorch's within 1e-4 of that
 * tensor's largest magnitude (max |ours - PyTorch's| <= 1e-4 max |PyTorch's|, compare_values'
 * metric: the "within 1e-4"), else what differs. With rec, the run is recorded. */
static const char *steps_mismatch(const char *dir, json_t *c, const struct nn_graph *g,
                                  const struct nn_tensor_info *in, bool plain_conv,
                                  const struct train_optim_config *config, const float *x,
                                  struct record *rec)
{
    static char what[256];
    json_t *steps = json_object_get(c, "steps");
    struct eng_error err = {0};
    struct train_plan_options options = {.threads = 2, .plain_conv = plain_conv};
    if (rec) record_begin(rec, json_string_value(json_object_get(c, "name")), g, &options);
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
        if (train_plan_forward(t, x, true, &y, &err))
            fail_msg("step %lld: %s", (long long)k, err.message);
        if (rec) record_masks(rec, t);
        if (train_loss_cross_entropy(y, batch, classes, &targets, 0, NULL, &loss, dlogits, &err) ||
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
    for (size_t n = json_array_size(params), j = 0, written = 0;
         (!result || rec) && j < n + json_array_size(buffers); j++) {
        e = json_array_get(j < n ? params : buffers, j < n ? j : j - n);
        struct train_param *p = find(t, json_string_value(json_object_get(e, "name")), j >= n);
        size_t at_file =
            (j < n ? 0 : params_total) + json_integer_value(json_object_get(e, "offset"));
        const float *w = want + at_file;
        assert_int_equal(p->count, shape_count(json_object_get(e, "shape"), dims, &rank));
        if (rec) { /* in the steps file's layout: the offsets follow each other */
            assert_int_equal(at_file, written);
            assert_int_equal(fwrite(p->value, sizeof(float), p->count, rec->params), p->count);
            written += p->count;
        }
        long at = mismatch(p->value, w, NULL, 0, p->count, 0);
        if (at >= 0 && !result) {
            snprintf(what, sizeof what, "%s element %ld is %.9g, PyTorch's %.9g", p->name, at,
                     p->value[at], w[at]);
            result = what;
        }
    }
    if (rec) record_end(rec, json_string_value(json_object_get(c, "name")), config);
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

/* The SGD steps against PyTorch's float32 ones (steps_mismatch), and the check's power: the same
 * steps with no weight decay, momentum 0.8 or without Nesterov must not match. That holds for a
 * case whose steps pass no closer to a kink than STEPS_MARGIN (the small CNN). ResNet-20's and
 * WRN-16-2's steps (some ten million activation inputs over ten steps, of which a few always lie
 * within rounding of 0) cannot match another float32 implementation's: a crossing in step k
 * moves the gradients by up to 5e-3 of their largest element, the parameters by lr times that,
 * and the steps after amplify the difference, which PyTorch's own float32 steps against float64
 * show too (the manifest's float64_gap; engine/train/README.md). For them the gap is printed, and
 * the runs are recorded into runs (struct record) for tests/parity/replay_train.py, which asserts
 * them against a float64 replay on the engine's sides of the kinks: the run under the steps'
 * settings, and on blocked Conv the three wrong ones, which the replay must reject. */
static void check_steps(const char *dir, json_t *c, const struct nn_graph *g,
                        const struct nn_tensor_info *in, bool plain_conv, const float *x,
                        const char *label, json_t *runs)
{
    json_t *steps = json_object_get(c, "steps"), *closest = json_object_get(steps, "closest_kink");
    long long count = json_integer_value(json_object_get(steps, "count"));
    double margin = json_real_value(json_object_get(closest, "margin"));
    struct train_optim_config config = train_optim_defaults(TRAIN_SGD);
    config.momentum = json_real_value(json_object_get(steps, "momentum"));
    config.nesterov = json_is_true(json_object_get(steps, "nesterov"));
    config.weight_decay = json_real_value(json_object_get(steps, "weight_decay"));
    bool recorded = margin < STEPS_MARGIN;
    struct record rec = {.dir = dir, .run = plain_conv ? "plain" : "blocked", .runs = runs};
    const char *bad = steps_mismatch(dir, c, g, in, plain_conv, &config, x, recorded ? &rec : NULL);
    printf("%s, %lld SGD steps: each tensor moved by at least %.3g of its largest magnitude; the "
           "closest activation input to a kink: %.3g of its rms (step %lld, activation %lld); "
           "PyTorch's float32 against float64: %.3g; ours against PyTorch's float32: %s%s\n",
           label, count, json_real_value(json_object_get(steps, "smallest_move")), margin,
           (long long)json_integer_value(json_object_get(closest, "step")),
           (long long)json_integer_value(json_object_get(closest, "call")),
           json_real_value(json_object_get(steps, "float64_gap")),
           bad ? bad : "every parameter and buffer matches",
           recorded ? " (recorded for replay_train.py)" : "");
    if (!recorded && bad) fail_msg("%s after %lld SGD steps: %s", label, count, bad);
    if (plain_conv) return; /* the power is the metric's, the same on both layouts */
    struct train_optim_config wrong[3] = {config, config, config};
    wrong[0].weight_decay = 0;
    wrong[1].momentum = 0.8;
    wrong[2].nesterov = false;
    static const char *const names[3] = {"no-weight-decay", "momentum-0.8", "no-nesterov"};
    for (int k = 0; k < 3; k++) {
        rec.run = names[k];
        if (!steps_mismatch(dir, c, g, in, plain_conv, &wrong[k], x, recorded ? &rec : NULL) &&
            !recorded)
            fail_msg("%s: the steps match with %s", label, names[k]);
    }
}

/* One training step of case c, Conv on oneDNN's blocked layouts (the default) or plain ones. */
static void run_case(const char *dir, json_t *c, bool plain_conv, json_t *runs)
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
    if (json_object_get(c, "steps")) check_steps(dir, c, g, &in, plain_conv, x, label, runs);
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
        json_t *skipped = json_object_get(m, "skipped"), *c, *runs = json_array();
        if (skipped) printf("%s: skipped: %s\n", dirs[d], json_string_value(skipped));
        size_t i;
        json_array_foreach(json_object_get(m, "cases"), i, c)
        {
            run_case(dirs[d], c, false, runs);
            run_case(dirs[d], c, true, runs); /* options.plain_conv */
            ran++;
        }
        /* The recorded runs, for replay_train.py (never into the checked-in small case's folder:
         * its steps are asserted above). */
        char path[1024];
        snprintf(path, sizeof path, "%s/engine_steps.json", dirs[d]);
        json_t *doc = json_pack("{s:o}", "runs", runs);
        if (json_array_size(runs) && json_dump_file(doc, path, JSON_INDENT(1)))
            fail_msg("cannot write %s", path);
        json_decref(doc);
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
