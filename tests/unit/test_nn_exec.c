/* The executor against ONNX's backend node tests as Debian's libonnx-testdata ships them: each
 * model runs on test_data_set_0's inputs and must match its outputs within
 * max(1e-5, 1e-4 * |expected|). Every node test of a supported op is listed below, except:
 *   - *_expanded (the same tests written with other ops), *_training_mode (training) and
 *     test_dropout_default_mask* (Dropout's mask output): inference runs only;
 *   - data of integer, double or string element types (*_uint8, *_int8*, test_cast_*,
 *     test_edge_pad and test_reflect_pad, whose data is int32): values are float inside the
 *     executor (int64 parameters, such as shapes, are supported);
 *   - test_maxpool_with_argmax_*: the Indices output;
 *   - test_reshape_allowzero_reordered: an empty tensor (a zero dim).
 * argv[1]: libonnx-testdata's data folder; every test is skipped when it is missing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/cancel.h"
#include "nn/nn.h"
#include "onnx_build.h"

#define MAX_IO 8

/* The hand-built model of test_conv_relu_reshape: x [1, 2, 5, 5] -> Conv (group 2, 4 output
 * channels, 3x3, pads 1) -> Relu -> Reshape to [0, -1]. */
#define CR_C 2
#define CR_M 4
#define CR_H 5

static const char *testdata_dir;

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = NULL;
    long len;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
        *size = (size_t)len;
    }
    fclose(f);
    return buf;
}

/* A .pb tensor (float or int64, as info->dtype says), or NULL when the file does not exist. */
static void *load_pb(const char *path, struct nn_tensor_info *info)
{
    size_t size;
    void *buf = read_whole(path, &size);
    if (!buf) return NULL;
    void *data;
    struct eng_error err = {0};
    int rc = nn_tensor_read_pb(buf, size, &data, info, &err);
    free(buf);
    if (rc) fail_msg("%s: %s", path, err.message);
    return data;
}

/* Loads node test `name`, or returns NULL when the data folder is missing (the test is then
 * skipped); a missing model in a present folder fails. */
static struct nn_graph *load_model(const char *name)
{
    if (!is_dir(testdata_dir)) return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/node/%s/model.onnx", testdata_dir, name);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s: %s", path, err.message);
    return g;
}

/* Input or output (kind) number i of node test `name`'s test_data_set_0; a missing file fails. */
static void *load_test_data(const char *name, const char *kind, size_t i,
                            struct nn_tensor_info *info)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/node/%s/test_data_set_0/%s_%zu.pb", testdata_dir, name, kind,
             i);
    void *data = load_pb(path, info);
    if (!data) fail_msg("%s is missing", path);
    return data;
}

static size_t nn_dims_count_of(const struct nn_tensor_info *info)
{
    size_t count = 1;
    for (int d = 0; d < info->rank; d++)
        count *= (size_t)info->dims[d];
    return count;
}

static double element(const void *data, enum nn_dtype dtype, size_t i)
{
    return dtype == NN_INT64 ? (double)((const int64_t *)data)[i] : ((const float *)data)[i];
}

/* Runs node test `name`. Inputs that are parameters rather than data (int64 tensors such as
 * Reshape's shape, and scalars such as Clip's bounds) are frozen into the plan, as a model with
 * static shapes has them; every other input is fed at run time. */
static void run_node_test(void **state)
{
    const char *name = *state;
    struct nn_graph *g = load_model(name);
    if (!g) {
        print_message("%s: %s is missing, skipped\n", name, testdata_dir);
        skip();
    }
    size_t n_in = nn_graph_input_count(g), n_frozen = 0;
    assert_true(n_in <= MAX_IO);
    struct nn_tensor_info shapes[MAX_IO];
    struct nn_tensor frozen[MAX_IO];
    void *inputs[MAX_IO];
    for (size_t i = 0; i < n_in; i++) {
        inputs[i] = load_test_data(name, "input", i, &shapes[i]);
        shapes[i].name = nn_graph_input(g, i)->name;
        if (shapes[i].dtype == NN_INT64 || shapes[i].rank == 0)
            frozen[n_frozen++] =
                (struct nn_tensor){shapes[i], nn_dims_count_of(&shapes[i]), inputs[i]};
    }

    struct eng_error err = {0};
    struct nn_plan_options options = {.frozen = frozen, .n_frozen = n_frozen};
    struct nn_plan *p = nn_plan_compile_with(g, shapes, n_in, &options, &err);
    if (!p) fail_msg("%s: compile: %s", name, err.message);
    size_t n_out = nn_plan_output_count(p);
    assert_true(n_out >= 1 && n_out <= MAX_IO);
    float *outputs[MAX_IO];
    struct nn_tensor_info out_info[MAX_IO];
    if (nn_plan_run(p, (const float *const *)inputs, outputs, out_info, &err))
        fail_msg("%s: run: %s", name, err.message);

    double max_err = 0;
    for (size_t k = 0; k < n_out; k++) {
        struct nn_tensor_info want;
        void *expected = load_test_data(name, "output", k, &want);
        assert_string_equal(out_info[k].name, nn_graph_output(g, k)->name);
        assert_int_equal(out_info[k].rank, want.rank);
        size_t count = 1;
        for (int d = 0; d < want.rank; d++) {
            assert_int_equal(out_info[k].dims[d], want.dims[d]);
            count *= (size_t)want.dims[d];
        }
        for (size_t e = 0; e < count; e++) {
            double x = element(expected, want.dtype, e);
            double diff = fabs((double)outputs[k][e] - x);
            double tol = fmax(1e-5, 1e-4 * fabs(x));
            if (diff > max_err) max_err = diff;
            if (diff > tol)
                fail_msg("%s: output %zu element %zu is %.9g, expected %.9g", name, k, e,
                         (double)outputs[k][e], x);
        }
        free(expected);
        free(outputs[k]);
    }
    print_message("%-45s max error %.3g\n", name, max_err);
    nn_plan_free(p);
    for (size_t i = 0; i < n_in; i++)
        free(inputs[i]);
    nn_graph_free(g);
}

/* Compiling a model with an op the executor lacks is refused, naming the op. */
static void test_unsupported_op(void **state)
{
    struct nn_graph *g = load_model("test_lstm_defaults");
    if (!g) skip();
    struct nn_tensor_info shapes[MAX_IO];
    size_t n_in = nn_graph_input_count(g);
    assert_true(n_in <= MAX_IO);
    for (size_t i = 0; i < n_in; i++)
        shapes[i] = *nn_graph_input(g, i);
    struct eng_error err = {0};
    assert_null(nn_plan_compile(g, shapes, n_in, &err));
    assert_int_equal(err.code, ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "LSTM"));
    nn_graph_free(g);
}

/* The Conv -> Relu -> Reshape model (opset 13), read. */
static struct nn_graph *build_conv_relu_reshape(const float *w, const float *b, int64_t groups)
{
    int64_t w_dims[] = {CR_M, CR_C / 2, 3, 3}, b_dims[] = {CR_M}, s_dims[] = {2};
    int64_t shape[] = {0, -1}, pads[] = {1, 1, 1, 1};
    Onnx__TensorProto tw = onnx_float_tensor("W", 4, w_dims, (float *)w, CR_M * CR_C / 2 * 9);
    Onnx__TensorProto tb = onnx_float_tensor("B", 1, b_dims, (float *)b, CR_M);
    Onnx__TensorProto ts = onnx_int64_tensor("shape", 1, s_dims, shape, 2);
    Onnx__TensorProto *inits[] = {&tw, &tb, &ts};

    Onnx__AttributeProto group = onnx_int_attr("group", groups);
    Onnx__AttributeProto apads = onnx_ints_attr("pads", 4, pads);
    Onnx__AttributeProto *conv_attrs[] = {&group, &apads};

    char *conv_in[] = {"x", "W", "B"}, *conv_out[] = {"c"}, *relu_out[] = {"r"};
    char *reshape_in[] = {"r", "shape"}, *reshape_out[] = {"y"};
    Onnx__NodeProto conv, relu, reshape;
    onnx_node_init(&conv, "Conv", 3, conv_in, conv_out);
    conv.n_attribute = 2;
    conv.attribute = conv_attrs;
    onnx_node_init(&relu, "Relu", 1, conv_out, relu_out);
    onnx_node_init(&reshape, "Reshape", 2, reshape_in, reshape_out);
    Onnx__NodeProto *nodes[] = {&conv, &relu, &reshape};

    return onnx_read_x_to_y("conv_relu_reshape", 3, nodes, 3, inits);
}

/* A grouped Conv with a Relu fused into it and a Reshape by a constant shape, against a direct
 * evaluation: the node tests have neither groups, a Conv feeding a Relu, nor a constant shape. */
static void test_conv_relu_reshape(void **state)
{
    float x[CR_C * CR_H * CR_H], w[CR_M * CR_C / 2 * 9], b[CR_M];
    /* Small integers of both signs, so every sum is exact and the Relu clips some of them. */
    for (size_t k = 0; k < sizeof x / sizeof *x; k++)
        x[k] = (float)((int)(k * 7 % 11) - 5);
    for (size_t k = 0; k < sizeof w / sizeof *w; k++)
        w[k] = (float)((int)(k * 5 % 7) - 3);
    for (size_t k = 0; k < CR_M; k++)
        b[k] = (float)k - 1.5f;
    struct nn_graph *g = build_conv_relu_reshape(w, b, 2);
    struct eng_error err = {0};
    struct nn_tensor_info shape = {
        .name = "x", .dtype = NN_FLOAT, .rank = 4, .dims = {1, CR_C, CR_H, CR_H}};
    struct nn_plan *p = nn_plan_compile(g, &shape, 1, &err);
    if (!p) fail_msg("%s", err.message);
    const float *inputs[] = {x};
    float *out;
    struct nn_tensor_info info;
    if (nn_plan_run(p, inputs, &out, &info, &err)) fail_msg("%s", err.message);
    assert_string_equal(info.name, "y");
    assert_int_equal(info.rank, 2);
    assert_int_equal(info.dims[0], 1);
    assert_int_equal(info.dims[1], CR_M * CR_H * CR_H);

    int per_group = CR_M / 2;
    for (int m = 0; m < CR_M; m++) {
        int c = m / per_group; /* one input channel per group */
        for (int i = 0; i < CR_H; i++)
            for (int j = 0; j < CR_H; j++) {
                float sum = b[m];
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) {
                        int yy = i + u - 1, xx = j + v - 1;
                        if (yy >= 0 && yy < CR_H && xx >= 0 && xx < CR_H)
                            sum += w[m * 9 + u * 3 + v] * x[(c * CR_H + yy) * CR_H + xx];
                    }
                assert_true(out[(m * CR_H + i) * CR_H + j] == (sum > 0 ? sum : 0));
            }
    }
    free(out);
    nn_plan_free(p);
    nn_graph_free(g);
}

/* What a plan costs, counted by hand: the grouped Conv of build_conv_relu_reshape makes 4 x 5 x 5
 * outputs per image, each a dot product over its group's one channel and the 3x3 kernel, so 900
 * multiply-adds (1800 FLOPs) an image; the Relu and the Reshape count nothing. A cap on the
 * plan's memory refuses it before anything is allocated. */
static void test_plan_cost(void **state)
{
    float w[CR_M * CR_C / 2 * 9] = {0}, b[CR_M] = {0};
    struct nn_graph *g = build_conv_relu_reshape(w, b, 2);
    struct eng_error err = {0};
    for (int64_t batch = 1; batch <= 3; batch += 2) {
        struct nn_tensor_info shape = {
            .name = "x", .dtype = NN_FLOAT, .rank = 4, .dims = {batch, CR_C, CR_H, CR_H}};
        struct nn_plan *p = nn_plan_compile(g, &shape, 1, &err);
        if (!p) fail_msg("%s", err.message);
        assert_true(nn_plan_flops(p) == 1800.0 * (double)batch);
        nn_plan_free(p);
    }
    struct nn_tensor_info shape = {
        .name = "x", .dtype = NN_FLOAT, .rank = 4, .dims = {1, CR_C, CR_H, CR_H}};
    /* The input alone is 2 x 5 x 5 floats (200 bytes), so 64 bytes cannot hold the plan. */
    struct nn_plan_options small = {.max_bytes = 64};
    assert_null(nn_plan_compile_with(g, &shape, 1, &small, &err));
    assert_int_equal(err.code, ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "the limit is 64"));
    struct nn_plan_options roomy = {.max_bytes = 1 << 20};
    struct nn_plan *p = nn_plan_compile_with(g, &shape, 1, &roomy, &err);
    if (!p) fail_msg("%s", err.message);
    nn_plan_free(p);
    nn_graph_free(g);
}

static int stop_now(void *ctx, struct eng_error *err)
{
    return eng_fail(err, ENG_CANCELLED, "stopped by the test");
}

/* A run asks the installed cancellation check between its steps: told to stop, it fails with the
 * check's error; with the check removed, the same plan runs. */
static void test_run_stops_when_cancelled(void **state)
{
    float x[CR_C * CR_H * CR_H] = {0}, w[CR_M * CR_C / 2 * 9] = {0}, b[CR_M] = {0};
    struct nn_graph *g = build_conv_relu_reshape(w, b, 2);
    struct eng_error err = {0};
    struct nn_tensor_info shape = {
        .name = "x", .dtype = NN_FLOAT, .rank = 4, .dims = {1, CR_C, CR_H, CR_H}};
    struct nn_plan *p = nn_plan_compile(g, &shape, 1, &err);
    if (!p) fail_msg("%s", err.message);
    const float *inputs[] = {x};
    float *out = NULL;
    struct nn_tensor_info info;
    struct eng_cancel stop = {stop_now, NULL};
    eng_cancel_install(&stop);
    assert_int_equal(nn_plan_run(p, inputs, &out, &info, &err), -1);
    eng_cancel_install(NULL);
    assert_int_equal(err.code, ENG_CANCELLED);
    assert_null(out);
    if (nn_plan_run(p, inputs, &out, &info, &err)) fail_msg("%s", err.message);
    free(out);
    nn_plan_free(p);
    nn_graph_free(g);
}

/* Fills n floats with a fixed sequence in [-1, 1). */
static void fill_uniform(float *v, size_t n, uint64_t *seed)
{
    for (size_t k = 0; k < n; k++) {
        *seed = *seed * 6364136223846793005u + 1442695040888963407u;
        v[k] = (float)((double)(*seed >> 40) / (double)(1u << 23) - 1.0);
    }
}

/* A 3x3 Conv (padding 1, bias) with 64 channels in and out on a batch of `batch` size x size
 * maps at `stride`, against a direct evaluation in double, with and without direct_convolution:
 * the algorithms the executor picks by shape (direct, Winograd, the small-map products) must all
 * agree with it. */
#define CONV_C 64
static void check_conv(int batch, int size, int stride)
{
    int out = (size + 2 - 3) / stride + 1;
    size_t nx = (size_t)batch * CONV_C * (size_t)(size * size), nw = CONV_C * CONV_C * 9;
    size_t ny = (size_t)batch * CONV_C * (size_t)(out * out);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), b[CONV_C];
    double *want = malloc(ny * sizeof *want);
    assert_true(x && w && want);
    uint64_t seed = 12345;
    fill_uniform(x, nx, &seed);
    fill_uniform(w, nw, &seed);
    fill_uniform(b, CONV_C, &seed);
    int64_t w_dims[] = {CONV_C, CONV_C, 3, 3}, b_dims[] = {CONV_C}, pads[] = {1, 1, 1, 1};
    int64_t steps[] = {stride, stride};
    Onnx__TensorProto tw = onnx_float_tensor("W", 4, w_dims, w, nw);
    Onnx__TensorProto tb = onnx_float_tensor("B", 1, b_dims, b, CONV_C);
    Onnx__TensorProto *inits[] = {&tw, &tb};
    Onnx__AttributeProto apads = onnx_ints_attr("pads", 4, pads);
    Onnx__AttributeProto astrides = onnx_ints_attr("strides", 2, steps);
    Onnx__AttributeProto *attrs[] = {&apads, &astrides};
    char *conv_in[] = {"x", "W", "B"}, *conv_out[] = {"y"};
    Onnx__NodeProto conv;
    onnx_node_init(&conv, "Conv", 3, conv_in, conv_out);
    conv.n_attribute = 2;
    conv.attribute = attrs;
    Onnx__NodeProto *nodes[] = {&conv};
    struct nn_graph *g = onnx_read_x_to_y("conv3x3", 1, nodes, 2, inits);

    double largest = 0;
    for (int n = 0; n < batch; n++)
        for (int m = 0; m < CONV_C; m++)
            for (int i = 0; i < out; i++)
                for (int j = 0; j < out; j++) {
                    double sum = b[m];
                    for (int c = 0; c < CONV_C; c++)
                        for (int u = 0; u < 3; u++)
                            for (int v = 0; v < 3; v++) {
                                int yy = i * stride + u - 1, xx = j * stride + v - 1;
                                if (yy >= 0 && yy < size && xx >= 0 && xx < size)
                                    sum += (double)w[((m * CONV_C + c) * 3 + u) * 3 + v] *
                                           x[((size_t)(n * CONV_C + c) * size + yy) * size + xx];
                            }
                    want[((size_t)(n * CONV_C + m) * out + i) * out + j] = sum;
                    largest = fmax(largest, fabs(sum));
                }
    for (int direct = 0; direct <= 1; direct++) {
        struct nn_plan_options options = {.direct_convolution = direct};
        struct nn_tensor_info shape = {
            .name = "x", .dtype = NN_FLOAT, .rank = 4, .dims = {batch, CONV_C, size, size}};
        struct eng_error err = {0};
        struct nn_plan *p = nn_plan_compile_with(g, &shape, 1, &options, &err);
        if (!p) fail_msg("%s", err.message);
        const float *inputs[] = {x};
        float *y;
        struct nn_tensor_info info;
        if (nn_plan_run(p, inputs, &y, &info, &err)) fail_msg("%s", err.message);
        assert_int_equal(info.dims[2], out);
        double worst = 0;
        for (size_t k = 0; k < ny; k++)
            worst = fmax(worst, fabs(y[k] - want[k]));
        print_message("batch %d, %dx%d maps, stride %d, direct_convolution %d: max |diff| %.3g "
                      "(largest |value| %.3g)\n",
                      batch, size, size, stride, direct, worst, largest);
        assert_true(worst <= 3e-6 * largest);
        free(y);
        nn_plan_free(p);
    }
    nn_graph_free(g);
    free(x);
    free(w);
    free(want);
}

/* 9x9 maps: Winograd where oneDNN has it; 3x3 maps in a batch of 3, too few for the small-map
 * products. */
static void test_conv_winograd(void **state)
{
    check_conv(2, 9, 1);
    check_conv(3, 3, 1);
}

/* Maps of at most 3x3 in batches of 4 or more: the small-map products, with stride 1 (a product per
 * output row), stride 2 (one per position) and a single position (one tap is inside). */
static void test_conv_small_maps(void **state)
{
    check_conv(16, 3, 1);
    check_conv(16, 5, 2);
    check_conv(17, 1, 1);
    check_conv(16, 2, 1);
}

/* Weights that do not fit the group count are refused once compiling is under way (so the
 * partly built plan is released: the sanitizer build checks that). */
static void test_conv_bad_group(void **state)
{
    float w[CR_M * CR_C / 2 * 9] = {0}, b[CR_M] = {0};
    struct nn_graph *g = build_conv_relu_reshape(w, b, 3);
    struct eng_error err = {0};
    struct nn_tensor_info shape = {.name = "x", .rank = 4, .dims = {1, CR_C, CR_H, CR_H}};
    assert_null(nn_plan_compile(g, &shape, 1, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "Conv"));
    nn_graph_free(g);
}

/* A Transpose of a scalar is the scalar: its output is an alias with no dims, which compiling
 * once copied from a null pointer (found by tests/fuzz/fuzz_onnx; UBSan caught it). */
static void test_transpose_scalar(void **state)
{
    char *in[] = {"x"}, *out[] = {"y"};
    Onnx__NodeProto transpose;
    onnx_node_init(&transpose, "Transpose", 1, in, out);
    Onnx__NodeProto *nodes[] = {&transpose};
    struct nn_graph *g = onnx_read_x_to_y("transpose_scalar", 1, nodes, 0, NULL);
    struct eng_error err = {0};
    struct nn_tensor_info shape = {.name = "x", .dtype = NN_FLOAT, .rank = 0};
    struct nn_plan *p = nn_plan_compile(g, &shape, 1, &err);
    if (!p) fail_msg("%s", err.message);
    const float value = 2.5f;
    const float *inputs_data[] = {&value};
    float *result;
    struct nn_tensor_info info;
    if (nn_plan_run(p, inputs_data, &result, &info, &err)) fail_msg("%s", err.message);
    assert_int_equal(info.rank, 0);
    assert_true(result[0] == value);
    free(result);
    nn_plan_free(p);
    nn_graph_free(g);
}

/* A node without outputs is refused, also one that reads only constants, which is folded
 * rather than compiled: folding once named its result after a missing output (found by
 * tests/fuzz/fuzz_onnx). */
static void test_constant_node_without_output(void **state)
{
    int64_t w_dims[] = {2};
    float w[] = {1, 2};
    Onnx__TensorProto tw = onnx_float_tensor("W", 1, w_dims, w, 2);
    Onnx__TensorProto *inits[] = {&tw};
    char *in[] = {"W"}, *out[] = {"unused"}, *relu_in[] = {"x"}, *relu_out[] = {"y"};
    Onnx__NodeProto identity, relu;
    onnx_node_init(&identity, "Identity", 1, in, out);
    identity.n_output = 0;
    onnx_node_init(&relu, "Relu", 1, relu_in, relu_out);
    Onnx__NodeProto *nodes[] = {&identity, &relu};
    struct nn_graph *g = onnx_read_x_to_y("no_output", 2, nodes, 1, inits);
    struct eng_error err = {0};
    struct nn_tensor_info shape = {.name = "x", .dtype = NN_FLOAT, .rank = 1, .dims = {2}};
    assert_null(nn_plan_compile(g, &shape, 1, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "no output"));
    nn_graph_free(g);
}

/* Compiles y = Relu(x) with a node op(W) before it, W a float initializer of one value, and
 * returns the error's code (ENG_OK when it compiles). */
static enum eng_code compile_with_float_constant(char *op, float value, struct eng_error *err)
{
    int64_t w_dims[] = {1};
    Onnx__TensorProto tw = onnx_float_tensor("W", 1, w_dims, &value, 1);
    Onnx__TensorProto *inits[] = {&tw};
    Onnx__AttributeProto to = onnx_int_attr("to", NN_INT64);
    Onnx__AttributeProto *attrs[] = {&to};
    char *in[] = {"x", "W"}, *out[] = {"c"}, *relu_in[] = {"c"}, *relu_out[] = {"y"};
    Onnx__NodeProto node, relu;
    const int cast = !strcmp(op, "Cast");
    /* Cast reads W alone; Reshape reads W as x's new shape. */
    onnx_node_init(&node, op, cast ? 1 : 2, cast ? in + 1 : in, out);
    if (cast) {
        node.n_attribute = 1;
        node.attribute = attrs;
        relu_in[0] = "x";
    }
    onnx_node_init(&relu, "Relu", 1, relu_in, relu_out);
    Onnx__NodeProto *nodes[] = {&node, &relu};
    struct nn_graph *g = onnx_read_x_to_y("float_constant", 2, nodes, 1, inits);
    struct nn_tensor_info shape = {.name = "x", .dtype = NN_FLOAT, .rank = 1, .dims = {2}};
    struct nn_plan *p = nn_plan_compile(g, &shape, 1, err);
    nn_plan_free(p);
    nn_graph_free(g);
    return p ? ENG_OK : err->code;
}

/* A float shape or a float cast to int64 past int64's range is refused rather than converted,
 * which C leaves undefined (found by tests/fuzz/fuzz_onnx; UBSan caught it). */
static void test_float_constant_out_of_int64(void **state)
{
    struct eng_error err = {0};
    assert_int_equal(compile_with_float_constant("Reshape", 3e20f, &err), ENG_INVALID);
    assert_non_null(strstr(err.message, "int64's range"));
    assert_int_equal(compile_with_float_constant("Reshape", NAN, &err), ENG_INVALID);
    assert_int_equal(compile_with_float_constant("Cast", -1e30f, &err), ENG_INVALID);
    assert_non_null(strstr(err.message, "int64's range"));
    assert_int_equal(compile_with_float_constant("Reshape", 2.0f, &err), ENG_OK);
    assert_int_equal(compile_with_float_constant("Cast", 1e18f, &err), ENG_OK);
}

/* Compiles node test `name` with its data input at its declared shape, input 1 frozen to the
 * int64 values given and any later (scalar) input frozen to 0; returns the error code. */
static int compile_with_frozen_ints(const char *name, const int64_t *values, int64_t n,
                                    struct eng_error *err)
{
    struct nn_graph *g = load_model(name);
    if (!g) skip();
    size_t n_in = nn_graph_input_count(g);
    assert_true(n_in >= 2 && n_in <= MAX_IO);
    static const float zero = 0;
    struct nn_tensor_info shapes[MAX_IO];
    struct nn_tensor frozen[MAX_IO];
    for (size_t i = 0; i < n_in; i++) {
        shapes[i] = *nn_graph_input(g, i);
        frozen[i] =
            (struct nn_tensor){.info = {.name = shapes[i].name, .dtype = NN_FLOAT, .rank = 0},
                               .count = 1,
                               .data = &zero};
    }
    frozen[1] = (struct nn_tensor){
        .info = {.name = shapes[1].name, .dtype = NN_INT64, .rank = 1, .dims = {n}},
        .count = (size_t)n,
        .data = values};
    struct nn_plan_options options = {.frozen = frozen + 1, .n_frozen = n_in - 1};
    *err = (struct eng_error){0};
    struct nn_plan *p = nn_plan_compile_with(g, shapes, n_in, &options, err);
    nn_plan_free(p);
    nn_graph_free(g);
    return p ? ENG_OK : err->code;
}

/* Shapes that a model's constants make absurd are refused before anything is allocated: a
 * Reshape whose dims multiply past 2^64, and pads that would make an activation larger than a
 * model may be. */
static void test_absurd_shapes(void **state)
{
    struct eng_error err;
    const int64_t wrap[] = {INT64_C(4611686018427387905), 4, 6}; /* (2^62 + 1) * 24 wraps */
    assert_int_equal(compile_with_frozen_ints("test_reshape_reordered_all_dims", wrap, 3, &err),
                     ENG_INVALID);
    const int64_t fits[] = {4, 2, 3};
    assert_int_equal(compile_with_frozen_ints("test_reshape_reordered_all_dims", fits, 3, &err),
                     ENG_OK);
    /* test_constant_pad: x [1, 3, 4, 5]; pads [begin..., end...]. */
    const int64_t huge[] = {0, 0, INT64_C(1) << 40, 0, 0, 0, 0, 0};
    assert_int_equal(compile_with_frozen_ints("test_constant_pad", huge, 8, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "elements"));
    const int64_t some[] = {0, 0, 1, 2, 0, 0, 3, 4};
    assert_int_equal(compile_with_frozen_ints("test_constant_pad", some, 8, &err), ENG_OK);
}

/* A shape that contradicts the model's declared input is refused. */
static void test_wrong_shape(void **state)
{
    struct nn_graph *g = load_model("test_relu");
    if (!g) skip();
    struct nn_tensor_info shape = *nn_graph_input(g, 0);
    shape.dims[0] += 1;
    struct eng_error err = {0};
    assert_null(nn_plan_compile(g, &shape, 1, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(nn_plan_compile(g, &shape, 0, &err));
    assert_int_equal(err.code, ENG_INVALID);
    nn_graph_free(g);
}

static void test_bad_pb(void **state)
{
    void *data;
    struct nn_tensor_info info;
    struct eng_error err = {0};
    static const unsigned char junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(nn_tensor_read_pb(junk, sizeof junk, &data, &info, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    /* dims = [2] (field 1), data_type = 1 (field 2), one float in float_data (field 4). */
    static const unsigned char short_data[] = {0x08, 0x02, 0x10, 0x01, 0x25, 0, 0, 0x80, 0x3f};
    assert_int_equal(nn_tensor_read_pb(short_data, sizeof short_data, &data, &info, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
}

/* A plan compiled on the main thread and run from other threads: each run's outputs are checked
 * against the expected ones; a thread reports its first mismatch in msg (cmocka's checks may only
 * fail on the main thread). */
#define THREAD_RUNS 20

struct shared_plan {
    struct nn_plan *plan;
    const float *const *inputs;
    const float *expected;
    size_t count;
    pthread_mutex_t *lock; /* NULL: runs without one */
};

struct run_job {
    struct shared_plan *sp;
    char msg[300];
};

static void *run_thread(void *arg)
{
    struct run_job *job = arg;
    struct shared_plan *sp = job->sp;
    for (int r = 0; r < THREAD_RUNS && !job->msg[0]; r++) {
        float *out = NULL;
        struct nn_tensor_info info;
        struct eng_error err = {0};
        if (sp->lock) pthread_mutex_lock(sp->lock);
        int rc = nn_plan_run(sp->plan, sp->inputs, &out, &info, &err);
        if (sp->lock) pthread_mutex_unlock(sp->lock);
        if (rc) {
            snprintf(job->msg, sizeof job->msg, "run %d: %.250s", r, err.message);
            break;
        }
        for (size_t e = 0; e < sp->count; e++)
            if (fabs((double)out[e] - sp->expected[e]) > fmax(1e-5, 1e-4 * fabs(sp->expected[e]))) {
                snprintf(job->msg, sizeof job->msg, "run %d: element %zu is %.9g, expected %.9g", r,
                         e, (double)out[e], (double)sp->expected[e]);
                break;
            }
        free(out);
    }
    return NULL;
}

/* Runs sp from n new threads, one after another (sequential) or all at once. */
static void run_on_threads(struct shared_plan *sp, int n, int sequential)
{
    pthread_t threads[4];
    struct run_job jobs[4];
    assert_true(n <= 4);
    for (int t = 0; t < n; t++) {
        jobs[t].sp = sp;
        jobs[t].msg[0] = '\0';
        assert_int_equal(pthread_create(&threads[t], NULL, run_thread, &jobs[t]), 0);
        if (sequential) assert_int_equal(pthread_join(threads[t], NULL), 0);
    }
    for (int t = 0; !sequential && t < n; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    for (int t = 0; t < n; t++)
        if (jobs[t].msg[0]) fail_msg("thread %d: %s", t, jobs[t].msg);
}

/* A plan compiled on this thread runs on others: sequentially, then from several threads at once,
 * one run at a time (serialised by the caller's mutex, as nn.h asks). */
static void test_run_on_other_threads(void **state)
{
    const char *name = "test_conv_with_strides_padding";
    struct nn_graph *g = load_model(name);
    if (!g) skip();
    struct nn_tensor_info shapes[MAX_IO], want;
    float *inputs[MAX_IO];
    size_t n_in = nn_graph_input_count(g);
    assert_true(n_in <= MAX_IO);
    for (size_t i = 0; i < n_in; i++) {
        inputs[i] = load_test_data(name, "input", i, &shapes[i]);
        shapes[i].name = nn_graph_input(g, i)->name;
    }
    float *expected = load_test_data(name, "output", 0, &want);
    struct eng_error err = {0};
    struct nn_plan *p = nn_plan_compile(g, shapes, n_in, &err);
    if (!p) fail_msg("%s", err.message);
    assert_int_equal(nn_plan_output_count(p), 1);

    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct shared_plan sp = {
        .plan = p, .inputs = (const float *const *)inputs, .expected = expected, .count = 1};
    for (int d = 0; d < want.rank; d++)
        sp.count *= (size_t)want.dims[d];
    run_on_threads(&sp, 2, 1);
    sp.lock = &lock;
    run_on_threads(&sp, 4, 0);

    /* And once more here, after the other threads have ended. */
    float *out;
    struct nn_tensor_info info;
    if (nn_plan_run(p, sp.inputs, &out, &info, &err)) fail_msg("%s", err.message);
    for (size_t e = 0; e < sp.count; e++)
        assert_true(fabs((double)out[e] - expected[e]) <= fmax(1e-5, 1e-4 * fabs(expected[e])));
    free(out);
    nn_plan_free(p);
    for (size_t i = 0; i < n_in; i++)
        free(inputs[i]);
    free(expected);
    nn_graph_free(g);
}

/* Named after the model, so cmocka reports which one failed. */
#define NODE_TEST(name)                                                                            \
    {                                                                                              \
        name, run_node_test, NULL, NULL, (void *)(name)                                            \
    }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TESTDATA_DIR\n", argv[0]);
        return 2;
    }
    testdata_dir = argv[1];
    if (!is_dir(testdata_dir))
        fprintf(stderr, "%s is missing: the model tests are skipped\n", testdata_dir);
    const struct CMUnitTest tests[] = {
        NODE_TEST("test_add"),
        NODE_TEST("test_add_bcast"),
        NODE_TEST("test_averagepool_1d_default"),
        NODE_TEST("test_averagepool_2d_ceil"),
        NODE_TEST("test_averagepool_2d_default"),
        NODE_TEST("test_averagepool_2d_pads"),
        NODE_TEST("test_averagepool_2d_pads_count_include_pad"),
        NODE_TEST("test_averagepool_2d_precomputed_pads"),
        NODE_TEST("test_averagepool_2d_precomputed_pads_count_include_pad"),
        NODE_TEST("test_averagepool_2d_precomputed_same_upper"),
        NODE_TEST("test_averagepool_2d_precomputed_strides"),
        NODE_TEST("test_averagepool_2d_same_lower"),
        NODE_TEST("test_averagepool_2d_same_upper"),
        NODE_TEST("test_averagepool_2d_strides"),
        NODE_TEST("test_averagepool_3d_default"),
        NODE_TEST("test_basic_conv_with_padding"),
        NODE_TEST("test_basic_conv_without_padding"),
        NODE_TEST("test_batchnorm_epsilon"),
        NODE_TEST("test_batchnorm_example"),
        NODE_TEST("test_clip"),
        NODE_TEST("test_clip_default_inbounds"),
        NODE_TEST("test_clip_default_max"),
        NODE_TEST("test_clip_default_min"),
        NODE_TEST("test_clip_example"),
        NODE_TEST("test_clip_inbounds"),
        NODE_TEST("test_clip_outbounds"),
        NODE_TEST("test_clip_splitbounds"),
        NODE_TEST("test_concat_1d_axis_0"),
        NODE_TEST("test_concat_1d_axis_negative_1"),
        NODE_TEST("test_concat_2d_axis_0"),
        NODE_TEST("test_concat_2d_axis_1"),
        NODE_TEST("test_concat_2d_axis_negative_1"),
        NODE_TEST("test_concat_2d_axis_negative_2"),
        NODE_TEST("test_concat_3d_axis_0"),
        NODE_TEST("test_concat_3d_axis_1"),
        NODE_TEST("test_concat_3d_axis_2"),
        NODE_TEST("test_concat_3d_axis_negative_1"),
        NODE_TEST("test_concat_3d_axis_negative_2"),
        NODE_TEST("test_concat_3d_axis_negative_3"),
        NODE_TEST("test_constant"),
        NODE_TEST("test_constant_pad"),
        NODE_TEST("test_conv_with_autopad_same"),
        NODE_TEST("test_conv_with_strides_and_asymmetric_padding"),
        NODE_TEST("test_conv_with_strides_no_padding"),
        NODE_TEST("test_conv_with_strides_padding"),
        NODE_TEST("test_dropout_default"),
        NODE_TEST("test_dropout_default_old"),
        NODE_TEST("test_dropout_default_ratio"),
        NODE_TEST("test_dropout_random_old"),
        NODE_TEST("test_flatten_axis0"),
        NODE_TEST("test_flatten_axis1"),
        NODE_TEST("test_flatten_axis2"),
        NODE_TEST("test_flatten_axis3"),
        NODE_TEST("test_flatten_default_axis"),
        NODE_TEST("test_flatten_negative_axis1"),
        NODE_TEST("test_flatten_negative_axis2"),
        NODE_TEST("test_flatten_negative_axis3"),
        NODE_TEST("test_flatten_negative_axis4"),
        NODE_TEST("test_gather_0"),
        NODE_TEST("test_gather_1"),
        NODE_TEST("test_gather_2d_indices"),
        NODE_TEST("test_gather_negative_indices"),
        NODE_TEST("test_gemm_all_attributes"),
        NODE_TEST("test_gemm_alpha"),
        NODE_TEST("test_gemm_beta"),
        NODE_TEST("test_gemm_default_matrix_bias"),
        NODE_TEST("test_gemm_default_no_bias"),
        NODE_TEST("test_gemm_default_scalar_bias"),
        NODE_TEST("test_gemm_default_single_elem_vector_bias"),
        NODE_TEST("test_gemm_default_vector_bias"),
        NODE_TEST("test_gemm_default_zero_bias"),
        NODE_TEST("test_gemm_transposeA"),
        NODE_TEST("test_gemm_transposeB"),
        NODE_TEST("test_globalaveragepool"),
        NODE_TEST("test_globalaveragepool_precomputed"),
        NODE_TEST("test_globalmaxpool"),
        NODE_TEST("test_globalmaxpool_precomputed"),
        NODE_TEST("test_hardsigmoid"),
        NODE_TEST("test_hardsigmoid_default"),
        NODE_TEST("test_hardsigmoid_example"),
        NODE_TEST("test_hardswish"),
        NODE_TEST("test_identity"),
        NODE_TEST("test_leakyrelu"),
        NODE_TEST("test_leakyrelu_default"),
        NODE_TEST("test_leakyrelu_example"),
        NODE_TEST("test_lrn"),
        NODE_TEST("test_lrn_default"),
        NODE_TEST("test_matmul_2d"),
        NODE_TEST("test_matmul_3d"),
        NODE_TEST("test_matmul_4d"),
        NODE_TEST("test_maxpool_1d_default"),
        NODE_TEST("test_maxpool_2d_ceil"),
        NODE_TEST("test_maxpool_2d_default"),
        NODE_TEST("test_maxpool_2d_dilations"),
        NODE_TEST("test_maxpool_2d_pads"),
        NODE_TEST("test_maxpool_2d_precomputed_pads"),
        NODE_TEST("test_maxpool_2d_precomputed_same_upper"),
        NODE_TEST("test_maxpool_2d_precomputed_strides"),
        NODE_TEST("test_maxpool_2d_same_lower"),
        NODE_TEST("test_maxpool_2d_same_upper"),
        NODE_TEST("test_maxpool_2d_strides"),
        NODE_TEST("test_maxpool_3d_default"),
        NODE_TEST("test_mul"),
        NODE_TEST("test_mul_bcast"),
        NODE_TEST("test_mul_example"),
        NODE_TEST("test_relu"),
        NODE_TEST("test_reshape_extended_dims"),
        NODE_TEST("test_reshape_negative_dim"),
        NODE_TEST("test_reshape_negative_extended_dims"),
        NODE_TEST("test_reshape_one_dim"),
        NODE_TEST("test_reshape_reduced_dims"),
        NODE_TEST("test_reshape_reordered_all_dims"),
        NODE_TEST("test_reshape_reordered_last_dims"),
        NODE_TEST("test_reshape_zero_and_negative_dim"),
        NODE_TEST("test_reshape_zero_dim"),
        NODE_TEST("test_shape"),
        NODE_TEST("test_shape_clip_end"),
        NODE_TEST("test_shape_clip_start"),
        NODE_TEST("test_shape_end_1"),
        NODE_TEST("test_shape_end_negative_1"),
        NODE_TEST("test_shape_example"),
        NODE_TEST("test_shape_start_1"),
        NODE_TEST("test_shape_start_1_end_2"),
        NODE_TEST("test_shape_start_1_end_negative_1"),
        NODE_TEST("test_shape_start_negative_1"),
        NODE_TEST("test_sigmoid"),
        NODE_TEST("test_sigmoid_example"),
        NODE_TEST("test_softmax_axis_0"),
        NODE_TEST("test_softmax_axis_1"),
        NODE_TEST("test_softmax_axis_2"),
        NODE_TEST("test_softmax_default_axis"),
        NODE_TEST("test_softmax_example"),
        NODE_TEST("test_softmax_large_number"),
        NODE_TEST("test_softmax_negative_axis"),
        NODE_TEST("test_squeeze"),
        NODE_TEST("test_squeeze_negative_axes"),
        NODE_TEST("test_transpose_all_permutations_0"),
        NODE_TEST("test_transpose_all_permutations_1"),
        NODE_TEST("test_transpose_all_permutations_2"),
        NODE_TEST("test_transpose_all_permutations_3"),
        NODE_TEST("test_transpose_all_permutations_4"),
        NODE_TEST("test_transpose_all_permutations_5"),
        NODE_TEST("test_transpose_default"),
        NODE_TEST("test_unsqueeze_axis_0"),
        NODE_TEST("test_unsqueeze_axis_1"),
        NODE_TEST("test_unsqueeze_axis_2"),
        NODE_TEST("test_unsqueeze_axis_3"),
        NODE_TEST("test_unsqueeze_negative_axes"),
        NODE_TEST("test_unsqueeze_three_axes"),
        NODE_TEST("test_unsqueeze_two_axes"),
        NODE_TEST("test_unsqueeze_unsorted_axes"),
        cmocka_unit_test(test_conv_relu_reshape),
        cmocka_unit_test(test_plan_cost),
        cmocka_unit_test(test_run_stops_when_cancelled),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_small_maps),
        cmocka_unit_test(test_conv_bad_group),
        cmocka_unit_test(test_unsupported_op),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_transpose_scalar),
        cmocka_unit_test(test_constant_node_without_output),
        cmocka_unit_test(test_float_constant_out_of_int64),
        cmocka_unit_test(test_absurd_shapes),
        cmocka_unit_test(test_bad_pb),
        cmocka_unit_test(test_run_on_other_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
