/* engine/train's model zoo: names and arguments read and refused; parameter counts against the
 * published ones (and exact counts of the reference PyTorch modules); the same seed giving the
 * same model; then, with an output folder as argv[1], each parity case exported to ONNX with a
 * seeded input batch and the logits the engine's executor computes, for tests/parity/gen_zoo.py
 * to check against onnx.checker and PyTorch (ctest runs it after this). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/nn.h"
#include "train/train.h"
#include "testutil.h"

static const char *out_dir;

static void test_parse(void **state)
{
    (void)state;
    json_t *model = json_loads("{\"arch\": \"wrn-28-2\", \"classes\": 10, \"variant\": "
                               "\"fixmatch\"}",
                               0, NULL);
    struct train_zoo_spec spec;
    struct eng_error err = {0};
    assert_int_equal(train_zoo_parse(model, &spec, &err), 0);
    assert_int_equal(spec.family, TRAIN_ZOO_WRN);
    assert_int_equal(spec.depth, 28);
    assert_int_equal(spec.width, 2);
    assert_true(spec.fixmatch);
    assert_int_equal(spec.classes, 10);
    assert_int_equal(spec.channels, 3);
    assert_int_equal(spec.size, 32);
    json_decref(model);
    model = json_loads("{\"arch\": \"resnet-50\", \"classes\": 1000}", 0, NULL);
    assert_int_equal(train_zoo_parse(model, &spec, &err), 0);
    assert_int_equal(spec.family, TRAIN_ZOO_RESNET); /* torchvision's, not 6n + 2 */
    assert_int_equal(spec.size, 224);
    json_decref(model);

    tu_zoo_refused("{\"arch\": \"vgg-16\", \"classes\": 10}", "not in the zoo");
    tu_zoo_refused("{\"arch\": \"resnet-21\", \"classes\": 10}", "not in the zoo");
    tu_zoo_refused("{\"arch\": \"resnet-020\", \"classes\": 10}", "not in the zoo");
    tu_zoo_refused("{\"arch\": \"resnet-20x\", \"classes\": 10}", "not in the zoo");
    tu_zoo_refused("{\"arch\": \"wrn-27-2\", \"classes\": 10}", "6n + 4");
    tu_zoo_refused("{\"arch\": \"wrn-106-2\", \"classes\": 10}", "up to 100");
    tu_zoo_refused("{\"arch\": \"wrn-28-0\", \"classes\": 10}", "not in the zoo");
    tu_zoo_refused("{\"arch\": \"wrn-28-17\", \"classes\": 10}", "width 1..16");
    tu_zoo_refused("{\"arch\": \"resnet-20\"}", "'classes' is required");
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 0}", "'classes' must be");
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 2.5}", "'classes' must be");
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 10, \"depth\": 3}",
                   "unknown member 'depth'");
    tu_zoo_refused("{\"arch\": \"resnet-20\", \"classes\": 10, \"variant\": \"fixmatch\"}",
                   "wrn-D-K only");
    tu_zoo_refused("{\"arch\": \"wrn-28-2\", \"classes\": 10, \"variant\": \"x\"}",
                   "\"standard\" or \"fixmatch\"");
    tu_zoo_refused("{\"arch\": \"small-cnn\", \"classes\": 10, \"size\": 4}", "'size'");
    tu_zoo_refused("{\"arch\": 20, \"classes\": 10}", "'arch' must be");
    tu_zoo_refused("[1]", "must be an object");
}

/* The momentum attribute of every BatchNormalization node of the model, which must all be equal
 * to expected. */
static void assert_bn_momentum(const char *model_json, float expected)
{
    struct nn_graph *g = tu_zoo_model(model_json, 1);
    size_t norms = 0;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        if (strcmp(node->op_type, "BatchNormalization")) continue;
        const struct nn_attr *a = nn_node_attr(node, "momentum");
        assert_non_null(a);
        assert_true(a->f == expected);
        norms++;
    }
    assert_true(norms > 0);
    nn_graph_free(g);
}

/* "bn_momentum": the arch's default (PyTorch's momentum=0.1 is ONNX's 0.9; FixMatch's WRN
 * 0.999, libml's momentum=0.999), or the one given on every norm of any arch; (0, 1) only. */
static void test_bn_momentum(void **state)
{
    (void)state;
    assert_bn_momentum("{\"arch\": \"resnet-20\", \"classes\": 10}", 0.9f);
    assert_bn_momentum("{\"arch\": \"wrn-16-2\", \"classes\": 10, \"variant\": \"fixmatch\"}",
                       0.999f);
    assert_bn_momentum("{\"arch\": \"resnet-20\", \"classes\": 10, \"bn_momentum\": 0.999}",
                       0.999f);
    assert_bn_momentum("{\"arch\": \"wrn-16-2\", \"classes\": 10, \"variant\": \"fixmatch\", "
                       "\"bn_momentum\": 0.5}",
                       0.5f);
    assert_bn_momentum("{\"arch\": \"small-cnn\", \"classes\": 10, \"bn_momentum\": 0.25}", 0.25f);
    const char *bad[] = {"0", "1", "0.99999999", "-0.5", "\"0.9\"", "null", "1e-50"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char model[128];
        snprintf(model, sizeof model,
                 "{\"arch\": \"resnet-20\", \"classes\": 10, \"bn_momentum\": %s}", bad[i]);
        tu_zoo_refused(model, "'bn_momentum' must be a number in (0, 1)");
    }
}

/* The reference modules' sum(p.numel() for p in parameters()), from PyTorch 1.13 (the published
 * figures in comments): the counts tests/parity/gen_zoo.py also asserts of its own modules. */
static void test_parameter_counts(void **state)
{
    (void)state;
    static const struct {
        const char *model;
        size_t count;
    } cases[] = {
        /* WRN-28-2: 1.47M (Oliver et al. 2018; FixMatch). */
        {"{\"arch\": \"wrn-28-2\", \"classes\": 10}", 1467610},
        /* FixMatch's less its two unused bn1s' weights and biases (2 x (32 + 64)). */
        {"{\"arch\": \"wrn-28-2\", \"classes\": 10, \"variant\": \"fixmatch\"}", 1467610 - 192},
        /* ResNet-20: 0.27M (He et al. 2016, option A: 269,722); option B adds 2,752. */
        {"{\"arch\": \"resnet-20\", \"classes\": 10}", 272474},
        /* torchvision: 11,689,512 and 25,557,032 (its model cards). */
        {"{\"arch\": \"resnet-18\", \"classes\": 1000}", 11689512},
        {"{\"arch\": \"resnet-50\", \"classes\": 1000}", 25557032},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct nn_graph *g = tu_zoo_model(cases[i].model, 1);
        size_t got = train_model_parameter_count(g);
        if (got != cases[i].count)
            fail_msg("%s: %zu parameters, want %zu", cases[i].model, got, cases[i].count);
        nn_graph_free(g);
    }
}

/* The same seed gives byte-identical models; another seed other weights, same structure. */
static void test_seeded(void **state)
{
    (void)state;
    const char *model = "{\"arch\": \"resnet-20\", \"classes\": 10}";
    struct nn_graph *a = tu_zoo_model(model, 7), *b = tu_zoo_model(model, 7),
                    *c = tu_zoo_model(model, 8);
    void *ba, *bb, *bc;
    size_t na, nb, nc;
    struct eng_error err = {0};
    assert_int_equal(nn_graph_write(a, &ba, &na, &err), 0);
    assert_int_equal(nn_graph_write(b, &bb, &nb, &err), 0);
    assert_int_equal(nn_graph_write(c, &bc, &nc, &err), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    assert_int_equal(na, nc);
    assert_true(memcmp(ba, bc, na) != 0);
    const struct nn_tensor *wa = nn_graph_initializer(a, "layer1.0.conv1.weight");
    const struct nn_tensor *wc = nn_graph_initializer(c, "layer1.0.conv1.weight");
    assert_non_null(wa);
    assert_int_equal(wa->count, 16 * 16 * 9);
    assert_true(memcmp(wa->data, wc->data, wa->count * sizeof(float)) != 0);
    free(ba);
    free(bb);
    free(bc);
    nn_graph_free(a);
    nn_graph_free(b);
    nn_graph_free(c);
}

/* ---- export for gen_zoo.py ---- */

/* The parity cases: small widths and depths, 32 px, and both WRN variants; "trained" ones have
 * every initializer moved off its initial value (BatchNorm's statistics too, as training leaves
 * them) through nn_graph_with_initializers, as a trained model is exported; "new_head" ones got
 * a head of that many classes from train_model_new_head, as a fine-tuned model does. */
static const struct {
    const char *name, *model;
    bool trained;
    int new_head;
} exports[] = {
    {"small_cnn", "{\"arch\": \"small-cnn\", \"classes\": 10}", false},
    {"resnet20", "{\"arch\": \"resnet-20\", \"classes\": 10}", false},
    {"resnet20_trained", "{\"arch\": \"resnet-20\", \"classes\": 10}", true},
    {"wrn_10_1", "{\"arch\": \"wrn-10-1\", \"classes\": 10}", false},
    {"wrn_16_2", "{\"arch\": \"wrn-16-2\", \"classes\": 10}", false},
    {"wrn_16_2_fixmatch", "{\"arch\": \"wrn-16-2\", \"classes\": 10, \"variant\": \"fixmatch\"}",
     false},
    {"wrn_16_2_fixmatch_trained",
     "{\"arch\": \"wrn-16-2\", \"classes\": 10, \"variant\": \"fixmatch\"}", true},
    {"resnet18", "{\"arch\": \"resnet-18\", \"classes\": 10, \"size\": 32}", false},
    {"resnet20_new_head", "{\"arch\": \"resnet-20\", \"classes\": 10}", false, 100},
    {"wrn_16_2_fixmatch_new_head",
     "{\"arch\": \"wrn-16-2\", \"classes\": 10, \"variant\": \"fixmatch\"}", false, 7},
};
enum { BATCH = 4, SEED = 17 };

/* g with every float initializer v replaced by v (0.5 + u) + 0.1 (u' - 0.5), u and u' uniform in
 * [0, 1): weights rescaled, BatchNorm's ones and zeros moved (its variances stay in
 * [0.45, 1.55]). */
static struct nn_graph *as_trained(struct nn_graph *g)
{
    size_t n = nn_graph_initializer_count(g);
    const char **names = calloc(n, sizeof *names);
    float **values = calloc(n, sizeof *values);
    assert_true(names && values);
    struct rng r;
    rng_init(&r, SEED, 2, 0, 0);
    for (size_t i = 0; i < n; i++) {
        const struct nn_tensor *t = nn_graph_initializer_at(g, i);
        const float *v = nn_tensor_floats(t);
        assert_non_null(v);
        names[i] = t->info.name;
        assert_non_null(values[i] = malloc(t->count * sizeof(float)));
        for (size_t k = 0; k < t->count; k++)
            values[i][k] = (float)(v[k] * (0.5 + rng_uniform(&r)) + 0.1 * (rng_uniform(&r) - 0.5));
    }
    struct eng_error err = {0};
    struct nn_graph *trained =
        nn_graph_with_initializers(g, n, names, (const float *const *)values, &err);
    if (!trained) fail_msg("%s", err.message);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(names);
    nn_graph_free(g);
    return trained;
}

static void test_export(void **state)
{
    (void)state;
    json_t *manifest = json_array();
    for (size_t i = 0; i < sizeof exports / sizeof *exports; i++) {
        struct nn_graph *g = tu_zoo_model(exports[i].model, SEED);
        if (exports[i].trained) g = as_trained(g);
        struct eng_error err = {0};
        if (exports[i].new_head) {
            struct nn_graph *h = train_model_new_head(g, exports[i].new_head, SEED, &err);
            if (!h) fail_msg("%s: %s", exports[i].name, err.message);
            nn_graph_free(g);
            g = h;
        }
        void *bytes;
        size_t size;
        assert_int_equal(nn_graph_write(g, &bytes, &size, &err), 0);
        char name[256];
        snprintf(name, sizeof name, "%s.onnx", exports[i].name);
        tu_write_file(out_dir, name, bytes, size);
        free(bytes);

        /* The batch: uniform in [-1, 1) from its own stream. */
        struct nn_tensor_info shape = *nn_graph_input(g, 0);
        shape.dims[0] = BATCH;
        size_t count = BATCH * (size_t)shape.dims[1] * shape.dims[2] * shape.dims[3];
        float *x = malloc(count * sizeof *x);
        assert_non_null(x);
        struct rng r;
        rng_init(&r, SEED, 1, (uint32_t)i, 0);
        for (size_t k = 0; k < count; k++)
            x[k] = (float)(2 * rng_uniform(&r) - 1);
        snprintf(name, sizeof name, "%s.input.f32", exports[i].name);
        tu_write_file(out_dir, name, x, count * sizeof *x);

        /* oneDNN's direct algorithm: Winograd's differs by about 1e-6 relative. */
        struct nn_plan_options options = {.direct_convolution = true};
        struct nn_plan *p = nn_plan_compile_with(g, &shape, 1, &options, &err);
        if (!p) fail_msg("%s: %s", exports[i].name, err.message);
        float *logits = NULL;
        struct nn_tensor_info info;
        const float *inputs[1] = {x};
        if (nn_plan_run(p, inputs, &logits, &info, &err)) fail_msg("%s", err.message);
        assert_int_equal(info.rank, 2);
        assert_int_equal(info.dims[0], BATCH);
        snprintf(name, sizeof name, "%s.logits.f32", exports[i].name);
        tu_write_file(out_dir, name, logits, (size_t)info.dims[0] * info.dims[1] * sizeof *logits);

        /* A new head's model is the architecture with its classes. */
        json_t *model = json_loads(exports[i].model, 0, NULL);
        if (exports[i].new_head)
            json_object_set_new(model, "classes", json_integer(exports[i].new_head));
        json_array_append_new(
            manifest, json_pack("{s:s, s:o, s:b, s:b, s:[I,I,I,I], s:I, s:I}", "name",
                                exports[i].name, "model", model, "trained", exports[i].trained,
                                "new_head", exports[i].new_head != 0, "input", (json_int_t)BATCH,
                                (json_int_t)shape.dims[1], (json_int_t)shape.dims[2],
                                (json_int_t)shape.dims[3], "classes", (json_int_t)info.dims[1],
                                "parameters", (json_int_t)train_model_parameter_count(g)));
        free(logits);
        free(x);
        nn_plan_free(p);
        nn_graph_free(g);
    }
    tu_write_json(out_dir, "manifest.json", manifest);
}

int main(int argc, char **argv)
{
    out_dir = argc > 1 ? argv[1] : NULL;
    if (!out_dir) {
        fprintf(stderr, "usage: test_zoo OUT_DIR\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_bn_momentum),
        cmocka_unit_test(test_parameter_counts),
        cmocka_unit_test(test_seeded),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
