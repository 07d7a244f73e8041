/* engine/train against PyTorch 1.13: the fixtures tests/parity/gen_optim.py writes (its docstring
 * names each reference). argv[1] is the fixtures folder (tests/parity/fixtures/optim). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "assert_near.h"
#include "testutil.h"
#include "train/train.h"

static const char *dir;

/* Elementwise |got - want| <= rel |want| + abs, naming the case and the element that is not. */
static void expect_close(const char *what, const float *got, size_t count, const json_t *want,
                         double rel, double abs)
{
    if (json_array_size(want) != count)
        fail_msg("%s: %zu values, PyTorch's %zu", what, count, json_array_size(want));
    for (size_t j = 0; j < json_array_size(want); j++) {
        double w = json_number_value(json_array_get(want, j)), g = got[j];
        if (!(fabs(g - w) <= rel * fabs(w) + abs))
            fail_msg("%s: element %zu is %.9g, PyTorch's %.9g", what, j, g, w);
    }
}

/* A float array of a JSON array of numbers; free it. */
static float *floats_of(const json_t *array)
{
    size_t n = json_array_size(array);
    float *out = malloc((n ? n : 1) * sizeof *out);
    assert_non_null(out);
    for (size_t j = 0; j < n; j++)
        out[j] = (float)json_number_value(json_array_get(array, j));
    return out;
}

/* The cases of dir/name (at least at_least of them); *doc holds them, json_decref it. */
static json_t *load_cases(const char *name, size_t at_least, json_t **doc)
{
    *doc = tu_load_json(dir, name);
    json_t *cases = json_object_get(*doc, "cases");
    if (json_array_size(cases) < at_least)
        fail_msg("%s has %zu cases, fewer than %zu", name, json_array_size(cases), at_least);
    return cases;
}

static void test_optimisers(void **state)
{
    (void)state;
    json_t *doc, *cases = load_cases("optim.json", 8, &doc);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *tc = json_array_get(cases, c), *cfg = json_object_get(tc, "config");
        const char *name = json_string_value(json_object_get(tc, "name"));
        struct eng_error err;
        enum train_optim_kind kind;
        assert_int_equal(
            train_optim_kind_named(json_string_value(json_object_get(cfg, "kind")), &kind, &err),
            0);
        struct train_optim_config config = {
            .kind = kind,
            .weight_decay = json_number_value(json_object_get(cfg, "weight_decay")),
            .exclude_no_decay = json_is_true(json_object_get(cfg, "exclude_no_decay")),
            .momentum = json_number_value(json_object_get(cfg, "momentum")),
            .nesterov = json_is_true(json_object_get(cfg, "nesterov")),
            .beta1 = json_number_value(json_object_get(cfg, "beta1")),
            .beta2 = json_number_value(json_object_get(cfg, "beta2")),
            .eps = json_number_value(json_object_get(cfg, "eps")),
        };
        json_t *pj = json_object_get(tc, "params");
        size_t n = json_array_size(pj);
        struct train_param params[8];
        assert_true(n <= 8);
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_array_get(pj, i);
            json_t *init = json_object_get(p, "init");
            params[i] = (struct train_param){
                .name = json_string_value(json_object_get(p, "name")),
                .count = json_array_size(init),
                .value = floats_of(init),
                .no_decay = json_is_true(json_object_get(p, "no_decay")),
            };
        }
        struct train_optim *optim = train_optim_create(&config, params, n, &err);
        assert_non_null(optim);
        json_t *lrs = json_object_get(tc, "lrs"), *grads = json_object_get(tc, "grads");
        for (size_t k = 0; k < json_array_size(lrs); k++) {
            float *g[8] = {0};
            for (size_t i = 0; i < n; i++) {
                json_t *gj = json_array_get(json_array_get(grads, k), i);
                params[i].grad = g[i] = json_is_null(gj) ? NULL : floats_of(gj);
            }
            assert_int_equal(
                train_optim_step(optim, params, n, json_number_value(json_array_get(lrs, k)), &err),
                0);
            for (size_t i = 0; i < n; i++) {
                char what[160];
                snprintf(what, sizeof what, "%s, step %zu, tensor %zu", name, k, i);
                expect_close(what, params[i].value, params[i].count,
                             json_array_get(json_array_get(json_object_get(tc, "expected"), k), i),
                             1e-6, 1e-7);
                free(g[i]);
            }
        }
        train_optim_free(optim);
        for (size_t i = 0; i < n; i++)
            free(params[i].value);
    }
    json_decref(doc);
}

static void test_schedules(void **state)
{
    (void)state;
    json_t *doc, *cases = load_cases("schedule.json", 8, &doc);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *tc = json_array_get(cases, c), *cfg = json_object_get(tc, "config");
        json_t *milestones = json_object_get(cfg, "milestones");
        struct train_schedule s = {
            .lr = json_number_value(json_object_get(cfg, "lr")),
            .warmup = (long)json_integer_value(json_object_get(cfg, "warmup")),
            .step_size = (long)json_integer_value(json_object_get(cfg, "step_size")),
            .n_milestones = json_array_size(milestones),
            .gamma = json_number_value(json_object_get(cfg, "gamma")),
            .min_lr = json_number_value(json_object_get(cfg, "min_lr")),
        };
        struct eng_error err;
        assert_int_equal(
            train_lr_kind_named(json_string_value(json_object_get(cfg, "kind")), &s.kind, &err), 0);
        for (size_t i = 0; i < s.n_milestones; i++)
            s.milestones[i] = (long)json_integer_value(json_array_get(milestones, i));
        long total = (long)json_integer_value(json_object_get(tc, "total"));
        assert_int_equal(train_schedule_check(&s, total, &err), 0);
        json_t *expected = json_object_get(tc, "expected");
        assert_int_equal(json_array_size(expected), (size_t)total);
        for (long k = 0; k < total; k++) {
            double want = json_number_value(json_array_get(expected, (size_t)k));
            double got = train_schedule_lr(&s, k, total);
            /* PyTorch's chained forms multiply step by step; the closed forms agree to rounding. */
            if (!(fabs(got - want) <= 1e-12 * want + 1e-15))
                fail_msg("schedule %zu, step %ld: %.17g, PyTorch's %.17g", c, k, got, want);
        }
    }
    json_decref(doc);
}

static void test_clipping(void **state)
{
    (void)state;
    json_t *doc, *cases = load_cases("clip.json", 3, &doc);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *tc = json_array_get(cases, c), *grads = json_object_get(tc, "grads");
        struct train_param params[3];
        float zero[16] = {0};
        assert_int_equal(json_array_size(grads), 3);
        for (size_t i = 0; i < 3; i++) {
            json_t *g = json_array_get(grads, i);
            params[i] = (struct train_param){.name = "g",
                                             .count = json_array_size(g),
                                             .value = zero,
                                             .grad = json_is_null(g) ? NULL : floats_of(g)};
        }
        double norm;
        struct eng_error err;
        assert_int_equal(train_clip_grad_norm(params, 3,
                                              json_number_value(json_object_get(tc, "max_norm")),
                                              &norm, &err),
                         0);
        double want = json_number_value(json_object_get(tc, "total_norm"));
        assert_near(norm, want, 1e-6 * want);
        for (size_t i = 0; i < 3; i++) {
            if (!params[i].grad) continue;
            expect_close("clipped gradient", params[i].grad, params[i].count,
                         json_array_get(json_object_get(tc, "expected"), i), 1e-6, 1e-8);
            free(params[i].grad);
        }
    }
    json_decref(doc);
}

static void test_ema(void **state)
{
    (void)state;
    json_t *doc = tu_load_json(dir, "ema.json");
    size_t n = json_array_size(json_object_get(doc, "params"));
    size_t nb = json_array_size(json_object_get(doc, "buffers"));
    json_t *init = json_object_get(doc, "init");
    assert_int_equal(n, 4);  /* conv weight and bias, BatchNorm weight and bias */
    assert_int_equal(nb, 2); /* running mean and variance */
    struct train_param tensors[6];
    for (size_t i = 0; i < n + nb; i++)
        tensors[i] = (struct train_param){
            .name = json_string_value(json_array_get(
                json_object_get(doc, i < n ? "params" : "buffers"), i < n ? i : i - n)),
            .count = json_array_size(json_array_get(init, i)),
            .value = floats_of(json_array_get(init, i)),
        };
    struct eng_error err;
    struct train_ema *ema = train_ema_create(
        tensors, n, tensors + n, nb, json_number_value(json_object_get(doc, "decay")), &err);
    assert_non_null(ema);
    json_t *steps = json_object_get(doc, "steps");
    assert_int_equal(json_array_size(steps), 5);
    for (size_t k = 0; k < json_array_size(steps); k++) {
        json_t *step = json_array_get(steps, k);
        for (size_t i = 0; i < n + nb; i++) {
            json_t *model = json_array_get(json_object_get(step, "model"), i);
            for (size_t j = 0; j < tensors[i].count; j++)
                tensors[i].value[j] = (float)json_number_value(json_array_get(model, j));
        }
        assert_int_equal(train_ema_update(ema, tensors, n, tensors + n, nb, &err), 0);
        for (size_t i = 0; i < n + nb; i++) {
            char what[64];
            snprintf(what, sizeof what, "EMA step %zu, %s", k, tensors[i].name);
            /* The same float32 operations as PyTorch's: equal to an ulp. */
            expect_close(what, train_ema_value(ema, i), tensors[i].count,
                         json_array_get(json_object_get(step, "expected"), i), 2e-7, 1e-9);
        }
    }
    train_ema_free(ema);
    for (size_t i = 0; i < n + nb; i++)
        free(tensors[i].value);
    json_decref(doc);
}

/* A loss's gradient, in double from autograd, against ours (float32). */
static void expect_grad(const char *what, const float *got, size_t count, const json_t *want)
{
    double scale = 0;
    for (size_t j = 0; j < json_array_size(want); j++)
        scale = fmax(scale, fabs(json_number_value(json_array_get(want, j))));
    expect_close(what, got, count, want, 1e-6, 1e-6 * scale);
}

static void test_losses(void **state)
{
    (void)state;
    json_t *doc, *cases = load_cases("loss.json", 7, &doc);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *tc = json_array_get(cases, c);
        const char *name = json_string_value(json_object_get(tc, "name"));
        size_t batch = (size_t)json_integer_value(json_object_get(tc, "batch"));
        size_t classes = (size_t)json_integer_value(json_object_get(tc, "classes"));
        double loss, want = json_number_value(json_object_get(tc, "loss"));
        struct eng_error err;
        float *grad[3];
        for (int v = 0; v < 3; v++) {
            grad[v] = calloc(batch * classes, sizeof(float));
            assert_non_null(grad[v]);
        }
        if (strcmp(json_string_value(json_object_get(tc, "kind")), "ce") == 0) {
            float *logits = floats_of(json_object_get(tc, "logits"));
            json_t *labels = json_object_get(tc, "labels"), *w = json_object_get(tc, "weights");
            int32_t y[16];
            float *probs = labels ? NULL : floats_of(json_object_get(tc, "probs"));
            float *weights = w ? floats_of(w) : NULL;
            for (size_t i = 0; labels && i < batch; i++)
                y[i] = (int32_t)json_integer_value(json_array_get(labels, i));
            struct train_targets targets = {labels ? y : NULL, probs};
            assert_int_equal(
                train_loss_cross_entropy(logits, batch, classes, &targets,
                                         json_number_value(json_object_get(tc, "smoothing")),
                                         weights, &loss, grad[0], &err),
                0);
            expect_grad(name, grad[0], batch * classes, json_object_get(tc, "grad"));
            free(logits);
            free(probs);
            free(weights);
        } else {
            float *views[3];
            for (int v = 0; v < 3; v++)
                views[v] = floats_of(json_array_get(json_object_get(tc, "logits"), (size_t)v));
            assert_int_equal(train_loss_jsd((const float *const *)views, batch, classes,
                                            json_number_value(json_object_get(tc, "weight")), &loss,
                                            grad, &err),
                             0);
            for (int v = 0; v < 3; v++) {
                expect_grad(name, grad[v], batch * classes,
                            json_array_get(json_object_get(tc, "grad"), (size_t)v));
                free(views[v]);
            }
        }
        /* The same double arithmetic on the same float32 logits: agreement to rounding. */
        if (!(fabs(loss - want) <= 1e-12 * fabs(want)))
            fail_msg("%s: loss %.17g, PyTorch's %.17g", name, loss, want);
        for (int v = 0; v < 3; v++)
            free(grad[v]);
    }
    json_decref(doc);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optimisers), cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_clipping),   cmocka_unit_test(test_ema),
        cmocka_unit_test(test_losses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
