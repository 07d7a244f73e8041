/* One FixMatch step (server/job_fixmatch_step.c) against PyTorch 1.13's transcription of the
 * reference step (tests/parity/gen_fixmatch.py, whose output is checked in as
 * tests/parity/fixtures/fixmatch): the same weights (a small CNN exported to ONNX), the same
 * batch of labeled weak, unlabeled weak and strong views, the same labels. The step runs as the
 * fixmatch job runs it (the training plan's default options, SGD with Nesterov momentum and
 * weight decay on the tensors not marked no_decay, the FixMatch schedule's rate, the EMA).
 *
 * Tolerance: 1e-5 relative in the Euclidean norm over a whole tensor, ||got - want||_2 /
 * ||want||_2, for the logits, every parameter's gradient, every parameter and buffer after the
 * step, the step's move of each parameter (after - before: a step without the weight decay, about
 * 1% of these moves, or without Nesterov's term fails it) and the EMA's values; 1e-5 relative for
 * the loss and its two terms; the pseudo-labels and the mask exactly (the fixture's weak views are
 * at least 1e-3 away from tau, its ReLU inputs away from the kink). Measured: about 1e-6 and 2e-6
 * (printed). check_can_fail shows the comparison rejects a gradient scaled by 1 + 3e-5.
 *
 * argv[1]: the fixture folder. */
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

#include "job_fixmatch.h"
#include "nn/nn.h"
#include "testutil.h"
#include "train/train.h"

static const char *dir;

static const void *read_exact(const char *name, size_t bytes, struct blob *keep)
{
    *keep = tu_read_file(dir, name);
    if (keep->size != bytes)
        fail_msg("%s/%s: %zu bytes, %zu expected", dir, name, keep->size, bytes);
    return keep->data;
}

/* ||got - want||_2 / ||want||_2 (in double). */
static double rel_err(const float *got, const float *want, size_t n)
{
    double d = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += (double)want[i] * want[i];
    }
    return sqrt(d) / sqrt(w);
}

/* The largest relative errors seen (values and gradients; moves), printed at the end. */
static double worst_value, worst_move;

static void expect_close(const char *what, const char *name, const float *got, const float *want,
                         size_t n, double tolerance)
{
    double e = rel_err(got, want, n);
    double *worst = strcmp(what, "the step's move") == 0 ? &worst_move : &worst_value;
    if (e > *worst) *worst = e;
    if (!(e <= tolerance))
        fail_msg("%s of %s: relative error %.3g, more than %.0e", what, name, e, tolerance);
}

static double member(const json_t *o, const char *name)
{
    return json_number_value(json_object_get(o, name));
}

static struct train_param *param_named(struct train_plan *t, const char *name, int buffer)
{
    size_t n = buffer ? train_plan_buffer_count(t) : train_plan_param_count(t);
    for (size_t i = 0; i < n; i++) {
        struct train_param *p = buffer ? train_plan_buffer(t, i) : train_plan_param(t, i);
        if (strcmp(p->name, name) == 0) return p;
    }
    fail_msg("no %s named %s", buffer ? "buffer" : "parameter", name);
    return NULL;
}

/* The comparison's own check: a gradient off by 3 x the tolerance is refused. */
static void check_can_fail(const float *want, size_t n)
{
    float *off = malloc(n * sizeof *off);
    assert_non_null(off);
    for (size_t i = 0; i < n; i++)
        off[i] = want[i] * (1 + 3e-5f);
    assert_true(rel_err(off, want, n) > 1e-5);
    free(off);
}

static void test_step(void **state)
{
    (void)state;
    json_t *m = tu_load_json(dir, "manifest.json");
    assert_non_null(m);
    struct fixmatch_config c = {.batch = (size_t)member(m, "batch"),
                                .mu = (size_t)member(m, "mu"),
                                .classes = (size_t)member(m, "classes"),
                                .tau = member(m, "tau"),
                                .lambda_u = member(m, "lambda_u")};
    size_t rows = fixmatch_rows(&c), side = (size_t)member(m, "size"), u = c.mu * c.batch;
    struct eng_error err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s: %s", path, err.message);
    struct nn_tensor_info shape = {.name = nn_graph_input(g, 0)->name,
                                   .dtype = NN_FLOAT,
                                   .rank = 4,
                                   .dims = {(int64_t)rows, 3, (int64_t)side, (int64_t)side}};
    struct train_plan_options o = {.threads = 1};
    struct train_plan *plan = train_plan_compile(g, &shape, &o, &err);
    if (!plan) fail_msg("compile: %s", err.message);
    size_t n = train_plan_param_count(plan), nb = train_plan_buffer_count(plan);

    struct blob bi, bl, blog, bg, ba, be;
    const float *input = read_exact("input.f32", rows * 3 * side * side * sizeof(float), &bi);
    const int32_t *labels = read_exact("labels.i32", c.batch * sizeof(int32_t), &bl);
    const float *want_logits = read_exact("logits.f32", rows * c.classes * sizeof(float), &blog);
    json_t *params = json_object_get(m, "params"), *buffers = json_object_get(m, "buffers");
    assert_int_equal(json_array_size(params), n);
    assert_int_equal(json_array_size(buffers), nb);
    size_t total = 0, grads_total = 0, i;
    json_t *p;
    json_array_foreach(params, i, p) grads_total += (size_t)member(p, "count");
    total = grads_total;
    json_array_foreach(buffers, i, p) total += (size_t)member(p, "count");
    const float *want_grads = read_exact("grads.f32", grads_total * sizeof(float), &bg);
    const float *want_after = read_exact("after.f32", total * sizeof(float), &ba);
    const float *want_ema = read_exact("ema.f32", total * sizeof(float), &be);

    /* The weight decay's exclusions are the reference's: names with "bias" or "bn". */
    json_array_foreach(params, i, p)
    {
        struct train_param *t = param_named(plan, json_string_value(json_object_get(p, "name")), 0);
        assert_int_equal(t->no_decay, json_is_true(json_object_get(p, "no_decay")));
    }
    float **before = calloc(n, sizeof *before);
    assert_non_null(before);
    for (size_t k = 0; k < n; k++) {
        struct train_param *t = train_plan_param(plan, k);
        before[k] = malloc(t->count * sizeof(float));
        assert_non_null(before[k]);
        memcpy(before[k], t->value, t->count * sizeof(float));
    }

    struct train_optim_config oc = train_optim_defaults(TRAIN_SGD);
    oc.momentum = member(m, "momentum");
    oc.nesterov = true;
    oc.weight_decay = member(m, "weight_decay");
    oc.exclude_no_decay = true;
    struct train_optim *optim = train_optim_create(&oc, train_plan_param(plan, 0), n, &err);
    struct train_ema *ema = train_ema_create(
        train_plan_param(plan, 0), n, train_plan_buffer(plan, 0), nb, member(m, "ema"), &err);
    assert_non_null(optim);
    assert_non_null(ema);
    struct train_schedule schedule = {.kind = TRAIN_LR_FIXMATCH, .lr = member(m, "lr")};
    double lr = train_schedule_lr(&schedule, (long)member(m, "step"), (long)member(m, "total"));
    assert_true(fabs(lr - member(m, "step_lr")) <= 1e-12);

    float *dlogits = malloc(rows * c.classes * sizeof *dlogits), *mask = malloc(u * sizeof *mask);
    int32_t *pseudo = malloc(u * sizeof *pseudo);
    const float *logits;
    struct fixmatch_stats s;
    if (fixmatch_step(&c, plan, optim, ema, input, labels, lr, dlogits, pseudo, mask, &logits, &s,
                      &err))
        fail_msg("step: %s", err.message);

    expect_close("the forward", "logits", logits, want_logits, rows * c.classes, 1e-5);
    assert_true(fabs(s.loss - member(m, "loss")) <= 1e-5 * fabs(member(m, "loss")));
    assert_true(fabs(s.labeled_loss - member(m, "labeled_loss")) <=
                1e-5 * fabs(member(m, "labeled_loss")));
    assert_true(fabs(s.unlabeled_loss - member(m, "unlabeled_loss")) <=
                1e-5 * fabs(member(m, "unlabeled_loss")));
    size_t masked = 0;
    for (size_t k = 0; k < u; k++) {
        assert_int_equal(pseudo[k],
                         json_integer_value(json_array_get(json_object_get(m, "pseudo"), k)));
        assert_true(mask[k] == json_number_value(json_array_get(json_object_get(m, "mask"), k)));
        masked += mask[k] == 1;
    }
    assert_int_equal(s.masked, masked);
    /* The fixture's mask has both values: the masked term and its gradient are exercised. */
    assert_true(masked > 0 && masked < u);

    json_array_foreach(params, i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        size_t off = (size_t)member(p, "offset"), count = (size_t)member(p, "count");
        struct train_param *t = param_named(plan, name, 0);
        assert_int_equal(t->count, count);
        expect_close("the gradient", name, t->grad, want_grads + off, count, 1e-5);
        expect_close("the value after the step", name, t->value, want_after + off, count, 1e-5);
        size_t k = (size_t)(t - train_plan_param(plan, 0));
        float *got_move = malloc(count * sizeof *got_move),
              *want_move = malloc(count * sizeof *want_move);
        for (size_t e = 0; e < count; e++) {
            got_move[e] = t->value[e] - before[k][e];
            want_move[e] = want_after[off + e] - before[k][e];
        }
        expect_close("the step's move", name, got_move, want_move, count, 1e-5);
        expect_close("the EMA", name, train_ema_value(ema, k), want_ema + off, count, 1e-5);
        free(got_move);
        free(want_move);
    }
    json_array_foreach(buffers, i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        size_t off = (size_t)member(p, "offset"), count = (size_t)member(p, "count");
        struct train_param *t = param_named(plan, name, 1);
        expect_close("the running statistic", name, t->value, want_after + off, count, 1e-5);
        size_t k = n + (size_t)(t - train_plan_buffer(plan, 0));
        expect_close("the EMA", name, train_ema_value(ema, k), want_ema + off, count, 1e-5);
    }
    check_can_fail(want_grads, grads_total);
    print_message("largest relative errors (1e-5 allowed): %.3g (values, gradients), %.3g (the "
                  "steps' moves)\n",
                  worst_value, worst_move);

    for (size_t k = 0; k < n; k++)
        free(before[k]);
    free(before);
    free(dlogits);
    free(mask);
    free(pseudo);
    free(bi.data);
    free(bl.data);
    free(blog.data);
    free(bg.data);
    free(ba.data);
    free(be.data);
    train_ema_free(ema);
    train_optim_free(optim);
    train_plan_free(plan);
    nn_graph_free(g);
    json_decref(m);
}

/* The loss on hand-made logits: labeled rows' CE, the mask at tau, the weak rows' gradient 0,
 * lambda_u scaling the strong rows' gradient, and mu = 0 (the supervised step) the labeled loss
 * alone. Two classes, B = 1, mu = 1, lambda_u 2: rows labeled (0, 0), weak (ln 19, 0) (top
 * probability 0.95), strong (0, ln 3). */
static void test_loss_by_hand(void **state)
{
    (void)state;
    struct fixmatch_config c = {.batch = 1, .mu = 1, .classes = 2, .tau = 0.9, .lambda_u = 2};
    const float logits[6] = {0, 0, (float)log(19.0), 0, 0, (float)log(3.0)};
    const int32_t labels[1] = {1};
    float dlogits[6], mask[1];
    int32_t pseudo[1];
    struct fixmatch_stats s;
    struct eng_error err = {0};
    assert_int_equal(fixmatch_loss(&c, logits, labels, dlogits, pseudo, mask, &s, &err), 0);
    /* Labeled: p = (1/2, 1/2), label 1: CE ln 2, gradient (1/2, -1/2). */
    assert_true(fabs(s.labeled_loss - log(2.0)) < 1e-6);
    assert_true(fabs(dlogits[0] - 0.5) < 1e-6 && fabs(dlogits[1] + 0.5) < 1e-6);
    /* Weak: p = (0.95, 0.05) >= 0.9: pseudo-label 0, masked in; no gradient. */
    assert_int_equal(pseudo[0], 0);
    assert_true(mask[0] == 1 && s.masked == 1);
    assert_true(dlogits[2] == 0 && dlogits[3] == 0);
    /* Strong: p = (1/4, 3/4) against class 0: CE ln 4, gradient 2 x (1/4 - 1, 3/4). */
    assert_true(fabs(s.unlabeled_loss - log(4.0)) < 1e-6);
    assert_true(fabs(dlogits[4] + 1.5) < 1e-6 && fabs(dlogits[5] - 1.5) < 1e-6);
    assert_true(fabs(s.loss - (log(2.0) + 2 * log(4.0))) < 1e-6);
    assert_int_equal(s.labeled_correct, 0);
    /* Above the weak row's top probability: masked out, no unlabeled loss or gradient. */
    c.tau = 0.96;
    assert_int_equal(fixmatch_loss(&c, logits, labels, dlogits, pseudo, mask, &s, &err), 0);
    assert_true(mask[0] == 0 && s.masked == 0 && s.unlabeled_loss == 0);
    assert_true(dlogits[4] == 0 && dlogits[5] == 0);
    /* mu = 0: the labeled rows alone. */
    c.mu = 0;
    assert_int_equal(fixmatch_rows(&c), 1);
    assert_int_equal(fixmatch_loss(&c, logits, labels, dlogits, NULL, NULL, &s, &err), 0);
    assert_true(fabs(s.loss - log(2.0)) < 1e-6 && s.unlabeled_loss == 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_loss_by_hand),
                                       cmocka_unit_test(test_step)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
