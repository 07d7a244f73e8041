/* Parity with PyTorch: torchvision classifiers with random weights, exported to ONNX by
 * tests/parity/gen_torchvision.py (run by ctest into the build folder first), must give PyTorch's
 * logits within 1e-4, and their taps PyTorch's intermediate activations. Float32 rounding grows
 * with the values, so the bound is 1e-4 times the largest expected magnitude when that exceeds 1
 * (only ResNet-50's random-weight logits do: they reach about 1500). Also: a model written
 * by nn_graph_write and read back gives bit-identical outputs.
 * argv[1]: the folder gen_torchvision.py wrote; tests are skipped when its manifest says so. */
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

#include "nn/nn.h"

#define TOLERANCE 1e-4

static const char *dir;
static json_t *manifest;

static float *read_floats(const char *name, size_t count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    float *data = malloc(count * sizeof *data);
    assert_non_null(data);
    assert_int_equal(fread(data, sizeof *data, count, f), count);
    fclose(f);
    return data;
}

static size_t shape_of(json_t *shape, struct nn_tensor_info *info)
{
    size_t count = 1, i;
    json_t *d;
    info->rank = (int)json_array_size(shape);
    json_array_foreach(shape, i, d)
    {
        info->dims[i] = json_integer_value(d);
        count *= (size_t)info->dims[i];
    }
    return count;
}

static void assert_close(const float *got, const float *want, size_t count, const char *what)
{
    double worst = 0, scale = 1;
    for (size_t i = 0; i < count; i++) {
        double diff = fabs((double)got[i] - want[i]);
        if (!(diff <= worst)) worst = diff; /* NaN counts as the worst */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    print_message("%s: max |diff| = %.3g over %zu values (largest |value| %.3g)\n", what, worst,
                  count, scale);
    if (!(worst <= TOLERANCE * scale))
        fail_msg("%s: max |diff| %.3g > %g", what, worst, TOLERANCE * scale);
}

static json_t *find_case(const char *name)
{
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(manifest, "cases"), i, c)
    {
        if (!strcmp(json_string_value(json_object_get(c, "name")), name)) return c;
    }
    return NULL;
}

/* Runs g on the case's input; returns the outputs (logits first, then the taps). */
static float **run_case(const struct nn_graph *g, json_t *c, struct nn_tensor_info *out_info)
{
    struct nn_tensor_info shape = {.name = "x", .dtype = NN_FLOAT};
    size_t count = shape_of(json_object_get(c, "input_shape"), &shape);
    float *input = read_floats(json_string_value(json_object_get(c, "input")), count);
    json_t *taps = json_object_get(c, "taps"), *t;
    const char *tap_names[4];
    size_t n_taps = json_array_size(taps), i;
    assert_true(n_taps <= 4);
    json_array_foreach(taps, i, t) tap_names[i] = json_string_value(json_object_get(t, "name"));
    struct nn_plan_options options = {.taps = tap_names, .n_taps = n_taps};
    struct eng_error err = {0};
    struct nn_plan *plan = nn_plan_compile_with(g, &shape, 1, &options, &err);
    if (!plan) fail_msg("compile: %s", err.message);
    size_t n_out = nn_plan_output_count(plan);
    assert_int_equal(n_out, 1 + n_taps);
    float **outputs = calloc(n_out, sizeof *outputs);
    assert_non_null(outputs);
    const float *inputs[1] = {input};
    if (nn_plan_run(plan, inputs, outputs, out_info, &err)) fail_msg("run: %s", err.message);
    nn_plan_free(plan);
    free(input);
    return outputs;
}

static void check_model(void **state)
{
    const char *name = *state;
    json_t *c = find_case(name);
    if (!c) {
        if (json_object_get(manifest, "skipped")) skip();
        fail_msg("%s is not in the manifest", name);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(c, "model")));
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s: %s", path, err.message);
    struct nn_tensor_info info[5];
    float **outputs = run_case(g, c, info);

    struct nn_tensor_info want = {0};
    size_t count = shape_of(json_object_get(c, "expected_shape"), &want);
    assert_int_equal(info[0].rank, want.rank);
    assert_memory_equal(info[0].dims, want.dims, (size_t)want.rank * sizeof *want.dims);
    float *expected = read_floats(json_string_value(json_object_get(c, "expected")), count);
    assert_close(outputs[0], expected, count, name);
    free(expected);
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(c, "taps"), i, t)
    {
        count = shape_of(json_object_get(t, "shape"), &want);
        assert_int_equal(info[1 + i].rank, want.rank);
        assert_memory_equal(info[1 + i].dims, want.dims, (size_t)want.rank * sizeof *want.dims);
        expected = read_floats(json_string_value(json_object_get(t, "expected")), count);
        assert_close(outputs[1 + i], expected, count,
                     json_string_value(json_object_get(t, "name")));
        free(expected);
    }

    /* Written out and read back, the model computes exactly the same numbers. */
    void *bytes;
    size_t size;
    if (nn_graph_write(g, &bytes, &size, &err)) fail_msg("write: %s", err.message);
    struct nn_graph *again = nn_graph_read(bytes, size, &err);
    free(bytes);
    if (!again) fail_msg("read back: %s", err.message);
    struct nn_tensor_info info2[5];
    float **outputs2 = run_case(again, c, info2);
    count = shape_of(json_object_get(c, "expected_shape"), &want);
    assert_memory_equal(outputs[0], outputs2[0], count * sizeof(float));
    for (i = 0; i <= json_array_size(json_object_get(c, "taps")); i++) {
        free(outputs[i]);
        free(outputs2[i]);
    }
    free(outputs);
    free(outputs2);
    nn_graph_free(again);
    nn_graph_free(g);
}

#define MODEL(name) cmocka_unit_test_prestate(check_model, (void *)(name))

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s GENERATED_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t error;
    manifest = json_load_file(path, 0, &error);
    if (!manifest) {
        fprintf(stderr, "%s: %s (run tests/parity/gen_torchvision.py)\n", path, error.text);
        return 1;
    }
    json_t *skipped = json_object_get(manifest, "skipped");
    if (skipped) printf("skipping the PyTorch parity tests: %s\n", json_string_value(skipped));
    const struct CMUnitTest tests[] = {
        MODEL("alexnet"),         MODEL("resnet18"),     MODEL("resnet18_bn"),
        MODEL("squeezenet1_1"),   MODEL("mobilenet_v2"), MODEL("mobilenet_v3_small"),
        MODEL("efficientnet_b0"), MODEL("resnet50"),     MODEL("resnet18_64"),
        MODEL("viewnet_11"),      MODEL("viewnet_13"),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(manifest);
    return failed;
}
