/* The zoo's noise (engine/train/train.h, "Noise"): "dropout" and "stochastic_depth" read and
 * refused; the nodes they add and their ratios (Huang et al.'s linear decay, worked out by hand);
 * the same parameters as the model without noise; eval mode equal to that model bit for bit, in
 * the training plan and, written for inference, in the executor; the gate's per-sample structure
 * and its rate; then, with an output folder as argv[1], one training step of each parity case
 * (its ONNX model, batch, dlogits, the training forward's logits and every parameter's
 * gradient) for tests/parity/gen_zoo_noise.py, which redraws the engine's masks from its Philox
 * streams and checks both against PyTorch (ctest runs it after this). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/nn.h"
#include "train/train.h"
#include "testutil.h"

static const char *out_dir;

enum { SEED = 23, STEP = 5, BATCH = 4 };

static void test_parse(void **state)
{
    (void)state;
    json_t *model = json_loads("{\"arch\": \"resnet-20\", \"classes\": 10, \"dropout\": 0.5, "
                               "\"stochastic_depth\": 0.2}",
                               0, NULL);
    struct train_zoo_spec spec;
    struct eng_error err = {0};
    assert_int_equal(train_zoo_parse(model, &spec, &err), 0);
    assert_true(spec.dropout == 0.5f);
    assert_true(spec.stochastic_depth == 0.2f);
    json_decref(model);
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 10, \"dropout\": 1}",
                   "'dropout' must be a number in [0, 1)");
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 10, \"dropout\": 0.99999999}",
                   "'dropout' must be a number in [0, 1)"); /* 1 as a float */
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 10, \"dropout\": -0.1}",
                   "'dropout' must be a number in [0, 1)");
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 10, \"stochastic_depth\": \"0.2\"}",
                   "'stochastic_depth' must be a number in [0, 1)");
    tu_zoo_refused("{\"arch\": \"small-cnn\", \"classes\": 10, \"stochastic_depth\": 0.2}",
                   "small-cnn has none");
    /* small-cnn takes dropout, and a stochastic depth of 0 (none). */
    nn_graph_free(tu_zoo_model(
        "{\"arch\": \"small-cnn\", \"classes\": 10, \"dropout\": 0.3, \"stochastic_depth\": 0}",
        1));
}

/* The nodes of op_type in g, and their "ratio" attributes (StochasticDepth's) into ratios. */
static size_t count_nodes(const struct nn_graph *g, const char *op_type, float *ratios)
{
    size_t n = 0;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        if (strcmp(node->op_type, op_type)) continue;
        const struct nn_attr *a = nn_node_attr(node, "ratio");
        if (ratios && a) ratios[n] = a->f;
        n++;
    }
    return n;
}

static void test_graph(void **state)
{
    (void)state;
    struct nn_graph *clean = tu_zoo_model("{\"arch\": \"resnet-20\", \"classes\": 10}", SEED);
    struct nn_graph *noisy = tu_zoo_model("{\"arch\": \"resnet-20\", \"classes\": 10, "
                                          "\"dropout\": 0.5, \"stochastic_depth\": 0.3}",
                                          SEED);
    /* ResNet-20: 9 blocks, block l dropping with 0.3 l / 9 (0.0333..., ..., 0.3). */
    float ratios[16];
    assert_int_equal(count_nodes(noisy, "StochasticDepth", ratios), 9);
    for (int l = 1; l <= 9; l++)
        assert_float_equal(ratios[l - 1], 0.3 * l / 9, 1e-7);
    assert_int_equal(count_nodes(noisy, "Dropout", NULL), 1);
    assert_int_equal(count_nodes(clean, "StochasticDepth", NULL), 0);
    assert_int_equal(count_nodes(clean, "Dropout", NULL), 0);
    /* The same initializers, drawn alike: the noise has no parameter. */
    assert_int_equal(nn_graph_initializer_count(noisy), nn_graph_initializer_count(clean));
    for (size_t i = 0; i < nn_graph_initializer_count(clean); i++) {
        const struct nn_tensor *a = nn_graph_initializer_at(clean, i);
        const struct nn_tensor *b = nn_graph_initializer(noisy, a->info.name);
        assert_non_null(b);
        assert_int_equal(a->count, b->count);
        assert_memory_equal(a->data, b->data, a->count * sizeof(float));
    }
    assert_int_equal(train_model_parameter_count(noisy), train_model_parameter_count(clean));
    /* Written for inference: Identity where the gates were, nothing of the engine's domain. */
    struct eng_error err = {0};
    struct nn_graph *plain = train_model_for_inference(noisy, &err);
    assert_non_null(plain);
    assert_int_equal(count_nodes(plain, "StochasticDepth", NULL), 0);
    assert_int_equal(count_nodes(plain, "Identity", NULL), 9);
    assert_true(train_model_has_training_ops(noisy));
    assert_false(train_model_has_training_ops(plain));
    assert_false(train_model_has_training_ops(clean));
    /* Blocks per family: WRN-16-2 has 6, torchvision's ResNet-50 16. */
    struct nn_graph *wrn =
        tu_zoo_model("{\"arch\": \"wrn-16-2\", \"classes\": 10, \"stochastic_depth\": 0.5}", SEED);
    assert_int_equal(count_nodes(wrn, "StochasticDepth", ratios), 6);
    assert_float_equal(ratios[5], 0.5, 1e-7);
    assert_float_equal(ratios[0], 0.5 / 6, 1e-7);
    struct nn_graph *r50 = tu_zoo_model(
        "{\"arch\": \"resnet-50\", \"classes\": 10, \"size\": 32, \"stochastic_depth\": 0.2}",
        SEED);
    assert_int_equal(count_nodes(r50, "StochasticDepth", ratios), 16);
    assert_float_equal(ratios[15], 0.2, 1e-7);
    /* A bottleneck's gate reads its branch's last BatchNorm and feeds the residual Add. */
    for (size_t i = 0; i < nn_graph_node_count(r50); i++) {
        const struct nn_node *node = nn_graph_node(r50, i);
        if (strcmp(node->name, "layer4.2.drop_path")) continue;
        assert_string_equal(node->inputs[0], "layer4.2.bn3");
        assert_string_equal(nn_graph_node(r50, i + 1)->name, "layer4.2.add");
        assert_string_equal(nn_graph_node(r50, i + 1)->inputs[0], "layer4.2.drop_path");
    }
    nn_graph_free(r50);
    nn_graph_free(wrn);
    nn_graph_free(plain);
    nn_graph_free(noisy);
    nn_graph_free(clean);
}

/* A batch uniform in [-1, 1) from stream (SEED, 1, which). */
static float *batch(size_t count, uint32_t which)
{
    float *x = malloc(count * sizeof *x);
    assert_non_null(x);
    struct rng r;
    rng_init(&r, SEED, 1, which, 0);
    for (size_t k = 0; k < count; k++)
        x[k] = (float)(2 * rng_uniform(&r) - 1);
    return x;
}

static struct nn_tensor_info input_shape(const struct nn_graph *g, int n)
{
    struct nn_tensor_info shape = *nn_graph_input(g, 0);
    shape.dims[0] = n;
    return shape;
}

static size_t shape_count(const struct nn_tensor_info *shape)
{
    size_t c = 1;
    for (int d = 0; d < shape->rank; d++)
        c *= (size_t)shape->dims[d];
    return c;
}

/* Eval mode is the model without noise, bit for bit: after training forwards (which move
 * BatchNorm's buffers alike in both, and draw masks in the noisy one) in the training plan, and
 * in the executor on the model written for inference. */
static void check_eval(const char *clean_json, const char *noisy_json)
{
    struct nn_graph *clean = tu_zoo_model(clean_json, SEED),
                    *noisy = tu_zoo_model(noisy_json, SEED);
    struct nn_tensor_info shape = input_shape(clean, BATCH);
    size_t count = shape_count(&shape);
    float *x = batch(count, 0);
    struct eng_error err = {0};
    struct train_plan_options o = {.threads = 1, .seed = SEED};
    struct train_plan *pc = train_plan_compile(clean, &shape, &o, &err);
    if (!pc) fail_msg("%s", err.message);
    struct train_plan *pn = train_plan_compile(noisy, &shape, &o, &err);
    if (!pn) fail_msg("%s", err.message);
    const float *yc, *yn;
    assert_int_equal(train_plan_forward(pn, x, false, &yn, &err), 0);
    size_t classes = (size_t)train_plan_output_info(pn)->dims[1];
    float *first = malloc(BATCH * classes * sizeof *first);
    assert_non_null(first);
    memcpy(first, yn, BATCH * classes * sizeof *first);
    assert_int_equal(train_plan_forward(pc, x, false, &yc, &err), 0);
    assert_memory_equal(yc, first, BATCH * classes * sizeof *yc);
    /* In training mode the noise shows: the logits differ. */
    assert_int_equal(train_plan_forward(pn, x, true, &yn, &err), 0);
    assert_int_equal(train_plan_forward(pc, x, true, &yc, &err), 0);
    assert_true(memcmp(yc, yn, BATCH * classes * sizeof *yc) != 0);

    /* Written for inference with the plan's values, run by the executor. */
    struct nn_graph *plain = train_model_for_inference(noisy, &err);
    assert_non_null(plain);
    struct nn_plan_options po = {.direct_convolution = true};
    struct nn_plan *ec = nn_plan_compile_with(clean, &shape, 1, &po, &err);
    if (!ec) fail_msg("%s", err.message);
    struct nn_plan *en = nn_plan_compile_with(plain, &shape, 1, &po, &err);
    if (!en) fail_msg("%s", err.message);
    float *oc = NULL, *on = NULL;
    struct nn_tensor_info info;
    const float *inputs[1] = {x};
    assert_int_equal(nn_plan_run(ec, inputs, &oc, &info, &err), 0);
    assert_int_equal(nn_plan_run(en, inputs, &on, &info, &err), 0);
    assert_memory_equal(oc, on, BATCH * classes * sizeof *oc);
    free(oc);
    free(on);
    nn_plan_free(ec);
    nn_plan_free(en);
    nn_graph_free(plain);
    free(first);
    free(x);
    train_plan_free(pc);
    train_plan_free(pn);
    nn_graph_free(clean);
    nn_graph_free(noisy);
}

static void test_eval_is_clean(void **state)
{
    (void)state;
    check_eval("{\"arch\": \"resnet-20\", \"classes\": 10, \"size\": 8}",
               "{\"arch\": \"resnet-20\", \"classes\": 10, \"size\": 8, \"dropout\": 0.5, "
               "\"stochastic_depth\": 0.5}");
    check_eval("{\"arch\": \"wrn-10-2\", \"classes\": 10, \"size\": 8}",
               "{\"arch\": \"wrn-10-2\", \"classes\": 10, \"size\": 8, \"dropout\": 0.5, "
               "\"stochastic_depth\": 0.5}");
    check_eval("{\"arch\": \"small-cnn\", \"classes\": 10, \"size\": 8}",
               "{\"arch\": \"small-cnn\", \"classes\": 10, \"size\": 8, \"dropout\": 0.5}");
}

/* The gate of ResNet-20's last block (ratio 0.5, blocked nChw16c: 64 channels): each sample's
 * output is its branch's 0 times or 2 times, whole (no sample half-dropped), and over 512
 * samples about half are dropped. */
static void test_gate(void **state)
{
    (void)state;
    enum { N = 64, STEPS = 8 };
    struct nn_graph *g = tu_zoo_model(
        "{\"arch\": \"resnet-20\", \"classes\": 10, \"size\": 8, \"stochastic_depth\": 0.5}", SEED);
    struct nn_tensor_info shape = input_shape(g, N);
    size_t count = shape_count(&shape);
    float *x = batch(count, 1);
    const char *keep[2] = {"layer3.2.bn2", "layer3.2.drop_path"};
    struct train_plan_options o = {.seed = SEED, .keep = keep, .n_keep = 2};
    struct eng_error err = {0};
    struct train_plan *t = train_plan_compile(g, &shape, &o, &err);
    if (!t) fail_msg("%s", err.message);
    int dropped = 0;
    for (int step = 0; step < STEPS; step++) {
        const float *y;
        assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
        struct nn_tensor_info bi, gi;
        float *branch = train_plan_value(t, keep[0], &bi, &err);
        float *gated = train_plan_value(t, keep[1], &gi, &err);
        assert_true(branch && gated);
        size_t per = shape_count(&bi) / N;
        for (size_t n = 0; n < N; n++) {
            int zeros = 0, doubled = 0;
            for (size_t k = n * per; k < (n + 1) * per; k++) {
                zeros += gated[k] == 0;
                doubled += gated[k] == 2 * branch[k];
            }
            /* A dropped sample is all zeros; a kept one all doubled (a branch value of 0
             * would be both). */
            assert_true((size_t)zeros == per || (size_t)doubled == per);
            dropped += (size_t)doubled != per;
        }
        free(branch);
        free(gated);
    }
    /* Binomial(512, 0.5): mean 256, sd 11.3; 4.5 sd either side. */
    if (dropped < 205 || dropped > 307) fail_msg("%d of 512 samples dropped", dropped);
    train_plan_free(t);
    free(x);
    nn_graph_free(g);
}

/* The parity cases: every family with a residual block, and small-cnn's dropout alone; high
 * rates, so that a batch of 4 has dropped and kept samples. Not torchvision's ResNet-50: its
 * training step is off PyTorch's by more than 1e-5 without any noise (a batch of 4, 161 BatchNorm
 * layers and gradients of magnitude 300 amplify float32 rounding), so its bottleneck's gate is
 * checked by position (test_graph). torchvision's ResNets at 64 px: at 32, layer4's BatchNorm
 * normalises 4 values a channel, which amplifies rounding alike. */
static const struct {
    const char *name, *model;
} cases[] = {
    {"small_cnn_dropout", "{\"arch\": \"small-cnn\", \"classes\": 5, \"size\": 8, \"dropout\": "
                          "0.5}"},
    {"resnet20_noise", "{\"arch\": \"resnet-20\", \"classes\": 5, \"size\": 8, \"dropout\": 0.5, "
                       "\"stochastic_depth\": 0.6}"},
    {"wrn_10_2_noise", "{\"arch\": \"wrn-10-2\", \"classes\": 5, \"size\": 8, \"dropout\": 0.3, "
                       "\"stochastic_depth\": 0.6}"},
    {"wrn_10_2_fixmatch_noise",
     "{\"arch\": \"wrn-10-2\", \"classes\": 5, \"size\": 8, \"variant\": \"fixmatch\", "
     "\"stochastic_depth\": 0.6}"},
    {"resnet18_noise", "{\"arch\": \"resnet-18\", \"classes\": 5, \"size\": 64, \"dropout\": "
                       "0.5, \"stochastic_depth\": 0.6}"},
};

static void write_case_file(const char *name, const char *suffix, const void *data, size_t size)
{
    char file[256];
    snprintf(file, sizeof file, "%s.%s", name, suffix);
    tu_write_file(out_dir, file, data, size);
}

static void test_export(void **state)
{
    (void)state;
    json_t *manifest = json_array();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *name = cases[i].name;
        struct nn_graph *g = tu_zoo_model(cases[i].model, SEED);
        struct eng_error err = {0};
        void *bytes;
        size_t size;
        assert_int_equal(nn_graph_write(g, &bytes, &size, &err), 0);
        write_case_file(name, "onnx", bytes, size);
        free(bytes);

        struct nn_tensor_info shape = input_shape(g, BATCH);
        size_t count = shape_count(&shape);
        float *x = batch(count, 2 + (uint32_t)i);
        write_case_file(name, "input.f32", x, count * sizeof *x);
        /* The direct algorithm, as PyTorch's reference; a training forward at step STEP. */
        struct train_plan_options o = {.seed = SEED, .step = STEP, .direct_convolution = true};
        struct train_plan *t = train_plan_compile(g, &shape, &o, &err);
        if (!t) fail_msg("%s: %s", name, err.message);
        const float *y;
        assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
        size_t classes = (size_t)train_plan_output_info(t)->dims[1];
        write_case_file(name, "logits.f32", y, BATCH * classes * sizeof *y);
        float *dy = batch(BATCH * classes, 100 + (uint32_t)i);
        write_case_file(name, "dlogits.f32", dy, BATCH * classes * sizeof *dy);
        if (train_plan_backward(t, dy, NULL, &err)) fail_msg("%s: %s", name, err.message);

        json_t *params = json_array();
        FILE *f;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.grads.f32", out_dir, name);
        assert_non_null(f = fopen(path, "wb"));
        size_t offset = 0;
        for (size_t k = 0; k < train_plan_param_count(t); k++) {
            const struct train_param *p = train_plan_param(t, k);
            assert_int_equal(fwrite(p->grad, sizeof(float), p->count, f), p->count);
            json_array_append_new(
                params, json_pack("{s:s, s:I}", "name", p->name, "offset", (json_int_t)offset));
            offset += p->count;
        }
        assert_int_equal(fclose(f), 0);
        json_array_append_new(manifest,
                              json_pack("{s:s, s:o, s:I, s:I, s:[I,I,I,I], s:I, s:o}", "name", name,
                                        "model", json_loads(cases[i].model, 0, NULL), "seed",
                                        (json_int_t)SEED, "step", (json_int_t)STEP, "input",
                                        (json_int_t)BATCH, (json_int_t)shape.dims[1],
                                        (json_int_t)shape.dims[2], (json_int_t)shape.dims[3],
                                        "classes", (json_int_t)classes, "params", params));
        free(dy);
        free(x);
        train_plan_free(t);
        nn_graph_free(g);
    }
    tu_write_json(out_dir, "manifest.json", manifest);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_zoo_noise OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),         cmocka_unit_test(test_graph),
        cmocka_unit_test(test_eval_is_clean), cmocka_unit_test(test_gate),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
