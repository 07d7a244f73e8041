/* engine/nn's graph builder: a graph built in code is written, read back and written again to
 * the same bytes; the executor runs it against a hand-computed case; a copy with new initializer
 * values runs with them while the original keeps its own; malformed graphs are refused naming
 * the problem, and adopted data is freed either way (ASan's leak check). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* x [N, 1, 2, 2] -> Conv 1x1 (W = {2, -1}, B = {0.5, 0}) -> Relu -> y [N, 2, 2, 2]. */
static struct nn_graph *conv_relu(struct eng_error *err)
{
    struct nn_builder *b = nn_builder_new("conv_relu", 13);
    const char *batch[4] = {"N", NULL, NULL, NULL};
    int64_t x_dims[4] = {-1, 1, 2, 2}, y_dims[4] = {-1, 2, 2, 2}, w_dims[4] = {2, 1, 1, 1},
            b_dims[1] = {2};
    static const float w[2] = {2, -1};
    float *bias = malloc(2 * sizeof *bias);
    if (bias) {
        bias[0] = 0.5f;
        bias[1] = 0;
    }
    nn_builder_input(b, "x", NN_FLOAT, 4, x_dims, batch);
    nn_builder_initializer(b, "W", NN_FLOAT, 4, w_dims, w);
    nn_builder_initializer_owned(b, "B", NN_FLOAT, 1, b_dims, bias);
    const char *conv_in[3] = {"x", "W", "B"}, *conv_out = "c", *relu_out = "y";
    nn_builder_node(b, "Conv", "conv", 3, conv_in, 1, &conv_out);
    int64_t kernel[2] = {1, 1};
    nn_builder_attr_ints(b, "kernel_shape", 2, kernel);
    nn_builder_node(b, "Relu", "relu", 1, &conv_out, 1, &relu_out);
    nn_builder_output(b, "y", NN_FLOAT, 4, y_dims, batch);
    return nn_builder_finish(b, err);
}

static const float x_batch[4] = {1, -2, 3, 0};

static void run(const struct nn_graph *g, float *y)
{
    struct eng_error err = {0};
    struct nn_tensor_info shape = {.name = "x", .dtype = NN_FLOAT, .rank = 4, .dims = {1, 1, 2, 2}};
    struct nn_plan *p = nn_plan_compile(g, &shape, 1, &err);
    if (!p) fail_msg("%s", err.message);
    const float *in[1] = {x_batch};
    float *out = NULL;
    struct nn_tensor_info info;
    if (nn_plan_run(p, in, &out, &info, &err)) fail_msg("%s", err.message);
    assert_int_equal(info.rank, 4);
    assert_int_equal(info.dims[1], 2);
    memcpy(y, out, 8 * sizeof *y);
    free(out);
    nn_plan_free(p);
}

static void test_runs(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct nn_graph *g = conv_relu(&err);
    if (!g) fail_msg("%s", err.message);
    float y[8];
    run(g, y);
    /* Channel 0: relu(2x + 0.5); channel 1: relu(-x). */
    static const float want[8] = {2.5f, 0, 6.5f, 0.5f, 0, 2, 0, 0};
    assert_memory_equal(y, want, sizeof want);
    nn_graph_free(g);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct nn_graph *g = conv_relu(&err);
    assert_non_null(g);
    void *bytes, *again;
    size_t size, size2;
    assert_int_equal(nn_graph_write(g, &bytes, &size, &err), 0);
    struct nn_graph *read = nn_graph_read(bytes, size, &err);
    if (!read) fail_msg("%s", err.message);
    assert_int_equal(nn_graph_write(read, &again, &size2, &err), 0);
    assert_int_equal(size, size2);
    assert_memory_equal(bytes, again, size);

    /* What the reader sees is what was built. */
    assert_int_equal(nn_graph_opset(read), 13);
    assert_int_equal(nn_graph_input_count(read), 1);
    const struct nn_tensor_info *x = nn_graph_input(read, 0);
    assert_string_equal(x->name, "x");
    assert_int_equal(x->rank, 4);
    assert_int_equal(x->dims[0], -1);
    assert_int_equal(x->dims[3], 2);
    assert_int_equal(nn_graph_node_count(read), 2);
    const struct nn_node *conv = nn_graph_node(read, 0);
    assert_string_equal(conv->op_type, "Conv");
    assert_int_equal(conv->n_inputs, 3);
    assert_string_equal(conv->inputs[2], "B");
    const struct nn_attr *k = nn_node_attr(conv, "kernel_shape");
    assert_non_null(k);
    assert_int_equal(k->count, 2);
    assert_int_equal(k->ints[1], 1);
    assert_null(nn_node_attr(nn_graph_node(read, 1), "kernel_shape"));
    const struct nn_tensor *bias = nn_graph_initializer(read, "B");
    assert_non_null(bias);
    assert_int_equal(bias->count, 2);
    assert_true(nn_tensor_floats(bias)[0] == 0.5f);
    free(bytes);
    free(again);
    nn_graph_free(read);
    nn_graph_free(g);
}

static void test_with_initializers(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct nn_graph *g = conv_relu(&err);
    assert_non_null(g);
    static const float ones[2] = {1, 1};
    const char *names[1] = {"W"};
    const float *values[1] = {ones};
    struct nn_graph *h = nn_graph_with_initializers(g, 1, names, values, &err);
    if (!h) fail_msg("%s", err.message);
    float y[8];
    run(h, y);
    /* Channel 0: relu(x + 0.5); channel 1: relu(x). */
    static const float want[8] = {1.5f, 0, 3.5f, 0.5f, 1, 0, 3, 0};
    assert_memory_equal(y, want, sizeof want);
    run(g, y); /* the original keeps W = {2, -1} */
    assert_true(y[0] == 2.5f && y[5] == 2);
    nn_graph_free(h);

    const char *unknown[1] = {"nope"};
    assert_null(nn_graph_with_initializers(g, 1, unknown, values, &err));
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_non_null(strstr(err.message, "'nope'"));
    nn_graph_free(g);
}

/* A graph with every attribute kind, value_info hints (one of unknown type and shape), an
 * optional output left out and an input that names an initializer (its default value, as older
 * exporters list weights). */
static struct nn_graph *every_kind(void)
{
    struct nn_builder *b = nn_builder_new("every_kind", 13);
    const char *batch[2] = {"N", NULL};
    int64_t x_dims[2] = {-1, 3}, w_dims[1] = {3};
    static const float w[3] = {1, 2, 3};
    static const int64_t t_data[2] = {7, -7};
    nn_builder_input(b, "x", NN_FLOAT, 2, x_dims, batch);
    nn_builder_input(b, "w", NN_FLOAT, 1, w_dims, NULL);
    nn_builder_initializer(b, "w", NN_FLOAT, 1, w_dims, w);
    const char *add_in[2] = {"x", "w"}, *add_out[2] = {"s", ""}, *y = "y";
    nn_builder_node(b, "Add", "add", 2, add_in, 2, add_out);
    nn_builder_attr_floats(b, "scales", 2, (const float[2]){0.5f, -1.25f});
    nn_builder_attr_string(b, "mode", "nearest");
    nn_builder_attr_strings(b, "names", 2, (const char *const[2]){"a", ""});
    struct nn_tensor t = {.info = {.name = "", .dtype = NN_INT64, .rank = 1, .dims = {2}},
                          .count = 2,
                          .data = t_data};
    nn_builder_attr_tensor(b, "value", &t);
    nn_builder_node(b, "Relu", "", 1, &add_out[0], 1, &y);
    nn_builder_value_info(b, "s", NN_FLOAT, 2, x_dims, batch);
    nn_builder_value_info(b, "unknown", NN_UNDEFINED, -1, NULL, NULL);
    nn_builder_output(b, "y", NN_FLOAT, 2, x_dims, batch);
    struct eng_error err = {0};
    struct nn_graph *g = nn_builder_finish(b, &err);
    if (!g) fail_msg("%s", err.message);
    return g;
}

static void test_every_kind(void **state)
{
    (void)state;
    struct nn_graph *g = every_kind();
    struct eng_error err = {0};
    void *bytes;
    size_t size;
    assert_int_equal(nn_graph_write(g, &bytes, &size, &err), 0);
    struct nn_graph *read = nn_graph_read(bytes, size, &err);
    if (!read) fail_msg("%s", err.message);

    /* w is an initializer: a graph input, not a model input. */
    assert_int_equal(nn_graph_input_count(read), 1);
    assert_int_equal(nn_graph_value_count(read, NN_VALUES_INPUT), 2);
    const char *const *params;
    assert_string_equal(nn_graph_value(read, NN_VALUES_INPUT, 1, &params)->name, "w");
    assert_null(params[0]);
    const struct nn_tensor_info *s = nn_graph_value(read, NN_VALUES_INFO, 0, &params);
    assert_string_equal(s->name, "s");
    assert_string_equal(params[0], "N");
    assert_int_equal(s->dims[1], 3);
    assert_int_equal(nn_graph_value(read, NN_VALUES_INFO, 1, NULL)->rank, -1);
    assert_null(nn_graph_value(read, NN_VALUES_INFO, 2, NULL));
    assert_int_equal(nn_graph_value_count(read, NN_VALUES_OUTPUT), 1);

    const struct nn_node *add = nn_graph_node(read, 0);
    assert_int_equal(add->n_outputs, 2);
    assert_string_equal(add->outputs[1], "");
    const struct nn_attr *a = nn_node_attr(add, "scales");
    assert_int_equal(a->type, NN_ATTR_FLOATS);
    assert_int_equal(a->count, 2);
    assert_true(a->floats[1] == -1.25f);
    assert_string_equal(nn_node_attr(add, "mode")->s, "nearest");
    a = nn_node_attr(add, "names");
    assert_int_equal(a->type, NN_ATTR_STRINGS);
    assert_string_equal(a->strings[0], "a");
    assert_string_equal(a->strings[1], "");
    a = nn_node_attr(add, "value");
    assert_int_equal(a->type, NN_ATTR_TENSOR);
    assert_int_equal(a->t.info.dtype, NN_INT64);
    assert_int_equal(((const int64_t *)a->t.data)[1], -7);

    /* Copied through nn_builder_like, value by value and node by node: the same bytes (a node
     * of another domain, with its opset import, is copied in test_finetune, over
     * libonnx-testdata's test_adam). */
    struct nn_builder *b = nn_builder_like(read);
    for (size_t i = 0; i < 2; i++) {
        const struct nn_tensor_info *v = nn_graph_value(read, NN_VALUES_INPUT, i, &params);
        nn_builder_input(b, v->name, v->dtype, v->rank, v->dims, params);
    }
    for (size_t i = 0; i < 2; i++) {
        const struct nn_tensor_info *v = nn_graph_value(read, NN_VALUES_INFO, i, &params);
        nn_builder_value_info(b, v->name, v->dtype, v->rank, v->dims, params);
    }
    const struct nn_tensor_info *v = nn_graph_value(read, NN_VALUES_OUTPUT, 0, &params);
    nn_builder_output(b, v->name, v->dtype, v->rank, v->dims, params);
    const struct nn_tensor *init = nn_graph_initializer_at(read, 0);
    nn_builder_initializer(b, init->info.name, init->info.dtype, init->info.rank, init->info.dims,
                           init->data);
    for (size_t i = 0; i < nn_graph_node_count(read); i++)
        nn_builder_copy_node(b, nn_graph_node(read, i));
    struct nn_graph *copy = nn_builder_finish(b, &err);
    if (!copy) fail_msg("%s", err.message);
    void *again;
    size_t size2;
    assert_int_equal(nn_graph_write(copy, &again, &size2, &err), 0);
    assert_int_equal(size, size2);
    assert_memory_equal(bytes, again, size);
    free(again);
    nn_graph_free(copy);
    free(bytes);
    nn_graph_free(read);
    nn_graph_free(g);
}

/* A graph x -> Relu(in) -> y with one thing wrong, made by break_it. */
static void assert_refused(void (*break_it)(struct nn_builder *b), enum eng_code code,
                           const char *needle)
{
    struct nn_builder *b = nn_builder_new("g", 13);
    int64_t dims[1] = {2};
    nn_builder_input(b, "x", NN_FLOAT, 1, dims, NULL);
    break_it(b);
    struct eng_error err = {0};
    assert_null(nn_builder_finish(b, &err));
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle)) fail_msg("'%s' lacks '%s'", err.message, needle);
}

static void reads_unknown(struct nn_builder *b)
{
    const char *in = "z", *out = "y";
    nn_builder_node(b, "Relu", "r", 1, &in, 1, &out);
}

static void reads_later(struct nn_builder *b)
{
    const char *a = "a", *y = "y", *x = "x";
    nn_builder_node(b, "Relu", "r1", 1, &a, 1, &y); /* a is made by the next node */
    nn_builder_node(b, "Relu", "r2", 1, &x, 1, &a);
}

static void two_producers(struct nn_builder *b)
{
    int64_t dims[1] = {2};
    float *data = malloc(2 * sizeof *data); /* adopted: freed when finish fails */
    if (data) data[0] = data[1] = 0;
    nn_builder_initializer_owned(b, "w", NN_FLOAT, 1, dims, data);
    const char *in = "x", *out = "w";
    nn_builder_node(b, "Relu", "r", 1, &in, 1, &out);
}

static void two_initializers(struct nn_builder *b)
{
    int64_t dims[1] = {1};
    static const float data[1] = {0};
    nn_builder_initializer(b, "w", NN_FLOAT, 1, dims, data);
    nn_builder_initializer(b, "w", NN_FLOAT, 1, dims, data);
}

static void input_twice(struct nn_builder *b)
{
    int64_t dims[1] = {2};
    nn_builder_input(b, "x", NN_FLOAT, 1, dims, NULL);
}

static void output_unmade(struct nn_builder *b)
{
    int64_t dims[1] = {2};
    nn_builder_output(b, "y", NN_FLOAT, 1, dims, NULL);
}

static void attr_first(struct nn_builder *b)
{
    nn_builder_attr_int(b, "axis", 1);
}

static void no_data(struct nn_builder *b)
{
    int64_t dims[1] = {2};
    nn_builder_initializer_owned(b, "w", NN_FLOAT, 1, dims, NULL);
}

static void bad_dtype(struct nn_builder *b)
{
    int64_t dims[1] = {2};
    static const float data[2] = {0};
    nn_builder_initializer(b, "w", (enum nn_dtype)5, 1, dims, data);
}

static void bad_tensor_attr(struct nn_builder *b)
{
    const char *out = "y";
    nn_builder_node(b, "Constant", "c", 0, NULL, 1, &out);
    struct nn_tensor t = {.info = {.dtype = NN_UNDEFINED, .rank = 0}, .count = 1};
    nn_builder_attr_tensor(b, "value", &t);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_refused(reads_unknown, ENG_INVALID, "reads 'z'");
    assert_refused(reads_later, ENG_INVALID, "reads 'a'");
    assert_refused(two_producers, ENG_INVALID, "output 0 ('w') is made twice");
    assert_refused(two_initializers, ENG_INVALID, "initializer 'w' is declared twice");
    assert_refused(input_twice, ENG_INVALID, "input 'x' is declared twice");
    assert_refused(output_unmade, ENG_INVALID, "output 'y' is made by no node");
    assert_refused(attr_first, ENG_INVALID, "before any node");
    assert_refused(no_data, ENG_NO_MEMORY, "out of memory");
    assert_refused(bad_dtype, ENG_INVALID, "element type 5");
    assert_refused(bad_tensor_attr, ENG_INVALID, "attribute 'value': a tensor of element type 0");

    struct eng_error err = {0};
    assert_null(nn_builder_finish(nn_builder_new("", 13), &err));
    assert_non_null(strstr(err.message, "needs a name"));
    /* A builder that never was (its allocation failed) takes every call. */
    nn_builder_initializer_owned(NULL, "w", NN_FLOAT, 1, (int64_t[1]){2}, malloc(8));
    assert_null(nn_builder_finish(NULL, &err));
    assert_int_equal(err.code, ENG_NO_MEMORY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_with_initializers),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_every_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
