/* libFuzzer target: ONNX models (any bytes) through nn_graph_read, then, for a graph that parses,
 * nn_plan_compile with the graph's declared input shapes (symbolic dimensions as 1) and
 * nn_plan_run on zeros, as the model loader and /v1/predict do. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn/nn.h"

/* Inputs past this many elements are skipped: a declared shape is the client's to choose, and
 * the fuzzer is after the reader and the executor's logic, not the allocator's limits. */
#define MAX_INPUT_ELEMENTS 100000
#define MAX_INPUTS         16

/* The elements of info's shape with symbolic dimensions set to 1 into shape; 0 when it is
 * unknown, empty or past MAX_INPUT_ELEMENTS. */
static size_t fixed_shape(const struct nn_tensor_info *info, struct nn_tensor_info *shape)
{
    if (info->rank < 0) return 0;
    *shape = *info;
    size_t count = 1;
    for (int d = 0; d < info->rank; d++) {
        shape->dims[d] = info->dims[d] < 0 ? 1 : info->dims[d];
        if (shape->dims[d] == 0) return 0;
        if ((uint64_t)shape->dims[d] > MAX_INPUT_ELEMENTS / count) return 0;
        count *= (size_t)shape->dims[d];
    }
    return count;
}

static void compile_and_run(const struct nn_graph *g)
{
    const size_t n = nn_graph_input_count(g);
    if (n > MAX_INPUTS) return;
    struct nn_tensor_info shapes[MAX_INPUTS];
    float *inputs[MAX_INPUTS] = {0};
    size_t ready = 0;
    for (; ready < n; ready++) {
        const size_t count = fixed_shape(nn_graph_input(g, ready), &shapes[ready]);
        if (count == 0) break;
        inputs[ready] = calloc(count, sizeof(float));
        if (!inputs[ready]) break;
    }
    struct eng_error err = {0};
    /* One thread: runs stay reproducible, and the fuzzer keeps to its core. */
    const struct nn_plan_options options = {.threads = 1};
    struct nn_plan *p = ready == n ? nn_plan_compile_with(g, shapes, n, &options, &err) : NULL;
    if (p) {
        const size_t n_out = nn_plan_output_count(p);
        float **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
        struct nn_tensor_info *info = calloc(n_out ? n_out : 1, sizeof(*info));
        if (outputs && info &&
            nn_plan_run(p, (const float *const *)inputs, outputs, info, &err) == 0)
            for (size_t k = 0; k < n_out; k++)
                free(outputs[k]);
        free(info);
        free(outputs);
        nn_plan_free(p);
    }
    for (size_t i = 0; i < ready; i++)
        free(inputs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read(data, size, &err);
    if (!g) return 0;
    compile_and_run(g);
    nn_graph_free(g);
    return 0;
}
