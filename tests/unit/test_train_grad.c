/* The training plan's backward passes against central finite differences: for a small graph of
 * each op (built here with onnx_build, random parameters and input), the loss L = sum(y * g) for
 * a random upstream gradient g, and each parameter's and the input's gradient compared with
 * (L(v + h) - L(v - h)) / 2h, the loss summed in double. Plus what differences cannot show:
 * MaxPool's ties (hand-computed), BatchNormalization's running statistics and eval mode, Dropout's
 * mask, determinism, values read back (train_plan_value), and the refusal of ops without a
 * backward pass. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "assert_near.h"
#include "onnx_build.h"
#include "train/train.h"

#define MAX_NODES 8
#define MAX_ATTRS 6
#define MAX_INITS 8
#define MAX_DATA  36864 /* a 64 x 64 x 3 x 3 weight */

/* A graph from input "x" to output "y" under construction. */
struct net {
    Onnx__NodeProto node[MAX_NODES];
    Onnx__NodeProto *nodes[MAX_NODES];
    char *io[MAX_NODES][2][6];
    Onnx__AttributeProto attr[MAX_NODES][MAX_ATTRS];
    Onnx__AttributeProto *attrs[MAX_NODES][MAX_ATTRS];
    int64_t ints[MAX_NODES][MAX_ATTRS][4];
    size_t n_nodes;
    Onnx__TensorProto init[MAX_INITS];
    Onnx__TensorProto *inits[MAX_INITS];
    int64_t init_dims[MAX_INITS][4];
    float init_data[MAX_INITS][MAX_DATA];
    int64_t init_ints[MAX_INITS][4];
    size_t n_inits;
    uint64_t seed;
};

/* Uniform in [-1, 1), from a 64-bit LCG. */
static float uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A node op(in...) -> out; in is space-separated. */
static void net_node(struct net *n, char *op, const char *in, char *out)
{
    size_t k = n->n_nodes++, n_in = 0;
    static char names[MAX_NODES * 6][16];
    static size_t used;
    for (const char *p = in; *p;) {
        size_t len = strcspn(p, " ");
        char *name = names[used++ % (MAX_NODES * 6)];
        snprintf(name, sizeof names[0], "%.*s", (int)len, p);
        n->io[k][0][n_in++] = name;
        p += len + (p[len] == ' ');
    }
    n->io[k][1][0] = out;
    onnx_node_init(&n->node[k], op, n_in, n->io[k][0], n->io[k][1]);
    n->node[k].attribute = n->attrs[k];
    n->nodes[k] = &n->node[k];
}

static Onnx__AttributeProto *net_attr(struct net *n)
{
    Onnx__NodeProto *node = &n->node[n->n_nodes - 1];
    size_t k = node->n_attribute++;
    n->attrs[n->n_nodes - 1][k] = &n->attr[n->n_nodes - 1][k];
    return &n->attr[n->n_nodes - 1][k];
}

/* Attributes of the last node. */
static void net_int(struct net *n, char *name, int64_t v)
{
    *net_attr(n) = onnx_int_attr(name, v);
}

static void net_ints(struct net *n, char *name, int count, int64_t a, int64_t b, int64_t c,
                     int64_t d)
{
    int64_t *store = n->ints[n->n_nodes - 1][n->node[n->n_nodes - 1].n_attribute];
    store[0] = a, store[1] = b, store[2] = c, store[3] = d;
    *net_attr(n) = onnx_ints_attr(name, (size_t)count, store);
}

static void net_float(struct net *n, char *name, float v)
{
    Onnx__AttributeProto *a = net_attr(n);
    Onnx__AttributeProto init = ONNX__ATTRIBUTE_PROTO__INIT;
    *a = init;
    a->name = name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
}

/* A float initializer of random values in [lo, hi). */
static void net_init(struct net *n, char *name, int rank, const int64_t *dims, float lo, float hi)
{
    size_t k = n->n_inits++, count = 1;
    for (int d = 0; d < rank; d++)
        count *= (size_t)(n->init_dims[k][d] = dims[d]);
    assert_true(count <= MAX_DATA);
    for (size_t i = 0; i < count; i++)
        n->init_data[k][i] = lo + (hi - lo) * (uniform(&n->seed) + 1) / 2;
    n->init[k] = onnx_float_tensor(name, (size_t)rank, n->init_dims[k], n->init_data[k], count);
    n->inits[k] = &n->init[k];
}

/* An int64 initializer (a shape). */
static void net_shape(struct net *n, char *name, int count, const int64_t *values)
{
    size_t k = n->n_inits++;
    memcpy(n->init_ints[k], values, (size_t)count * sizeof *values);
    n->init_dims[k][0] = count;
    n->init[k] = onnx_int64_tensor(name, 1, n->init_dims[k], n->init_ints[k], (size_t)count);
    n->inits[k] = &n->init[k];
}

static struct nn_graph *net_graph(struct net *n)
{
    return onnx_read_x_to_y("train", n->n_nodes, n->nodes, n->n_inits, n->inits);
}

static struct nn_tensor_info shape_of(int rank, const int64_t *dims)
{
    struct nn_tensor_info info = {.name = "x", .dtype = NN_FLOAT, .rank = rank};
    memcpy(info.dims, dims, (size_t)rank * sizeof *dims);
    return info;
}

/* Whether the plans compile() makes run Conv on plain layouts (test_plain_conv), not oneDNN's
 * blocked ones. */
static bool plain_conv;

static struct train_plan *compile_threads(const struct nn_graph *g, int rank, const int64_t *dims,
                                          int threads)
{
    struct nn_tensor_info info = shape_of(rank, dims);
    struct train_plan_options options = {
        .threads = threads, .seed = 7, .input_grad = true, .plain_conv = plain_conv};
    struct eng_error err = {0};
    struct train_plan *t = train_plan_compile(g, &info, &options, &err);
    if (!t) fail_msg("%s", err.message);
    return t;
}

static struct train_plan *compile(const struct nn_graph *g, int rank, const int64_t *dims)
{
    return compile_threads(g, rank, dims, 1);
}

/* sum(y * g) in double after a forward at step `step`. */
static double loss(struct train_plan *t, const float *x, const float *g, uint64_t step,
                   bool training)
{
    const float *y;
    struct eng_error err = {0};
    train_plan_set_step(t, step);
    if (train_plan_forward(t, x, training, &y, &err)) fail_msg("%s", err.message);
    const struct nn_tensor_info *info = train_plan_output_info(t);
    size_t count = 1;
    for (int d = 0; d < info->rank; d++)
        count *= (size_t)info->dims[d];
    double sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += (double)y[i] * g[i];
    return sum;
}

/* Compares the analytic gradient with central differences at up to 40 elements of v. */
static void check_elements(struct train_plan *t, const char *what, float *v, const float *grad,
                           size_t count, const float *x, const float *g, bool training)
{
    const double h = 1e-3;
    size_t stride = count > 40 ? count / 40 : 1;
    for (size_t i = 0; i < count; i += stride) {
        float saved = v[i];
        v[i] = (float)(saved + h);
        double up = loss(t, x, g, 0, training);
        v[i] = (float)(saved - h);
        double down = loss(t, x, g, 0, training);
        v[i] = saved;
        double fd = (up - down) / (2 * h);
        if (!(fabs(fd - grad[i]) <= 5e-3 + 1e-2 * fabs(fd)))
            fail_msg("%s[%zu]: backward gives %.7g, central differences %.7g", what, i, grad[i],
                     fd);
    }
}

/* Every parameter's and the input's gradient against central differences. */
static void check_net(struct net *n, int rank, const int64_t *dims, bool training)
{
    struct nn_graph *g = net_graph(n);
    struct train_plan *t = compile(g, rank, dims);
    size_t xc = 1, yc = 1;
    for (int d = 0; d < rank; d++)
        xc *= (size_t)dims[d];
    const struct nn_tensor_info *info = train_plan_output_info(t);
    for (int d = 0; d < info->rank; d++)
        yc *= (size_t)info->dims[d];
    float *x = malloc(xc * sizeof *x), *up = malloc(yc * sizeof *up), *dx = malloc(xc * sizeof *dx);
    assert_non_null(x);
    assert_non_null(up);
    assert_non_null(dx);
    uint64_t state = 99;
    for (size_t i = 0; i < xc; i++)
        x[i] = uniform(&state);
    for (size_t i = 0; i < yc; i++)
        up[i] = uniform(&state);
    struct eng_error err = {0};
    loss(t, x, up, 0, training);
    if (train_plan_backward(t, up, dx, &err)) fail_msg("%s", err.message);
    size_t np = train_plan_param_count(t);
    float **grads = calloc(np + 1, sizeof *grads);
    assert_non_null(grads);
    for (size_t k = 0; k < np; k++) {
        struct train_param *p = train_plan_param(t, k);
        grads[k] = malloc(p->count * sizeof(float));
        assert_non_null(grads[k]);
        memcpy(grads[k], p->grad, p->count * sizeof(float));
    }
    check_elements(t, "x", x, dx, xc, x, up, training);
    for (size_t k = 0; k < np; k++) {
        struct train_param *p = train_plan_param(t, k);
        check_elements(t, p->name, p->value, grads[k], p->count, x, up, training);
        free(grads[k]);
    }
    free(grads);
    free(x);
    free(up);
    free(dx);
    train_plan_free(t);
    nn_graph_free(g);
}

static void test_conv_grouped_strided_dilated(void **state)
{
    (void)state;
    struct net n = {.seed = 1};
    int64_t x[] = {2, 4, 9, 9}, w[] = {6, 2, 3, 3}, b[] = {6};
    net_node(&n, "Conv", "x W B", "y");
    net_int(&n, "group", 2);
    net_ints(&n, "strides", 2, 2, 1, 0, 0);
    net_ints(&n, "pads", 4, 1, 2, 0, 1);
    net_ints(&n, "dilations", 2, 2, 1, 0, 0);
    net_init(&n, "W", 4, w, -0.5f, 0.5f);
    net_init(&n, "B", 1, b, -0.5f, 0.5f);
    check_net(&n, 4, x, true);
}

static void test_conv_depthwise(void **state)
{
    (void)state;
    struct net n = {.seed = 2};
    int64_t x[] = {2, 3, 6, 6}, w[] = {3, 1, 3, 3};
    net_node(&n, "Conv", "x W", "y");
    net_int(&n, "group", 3);
    net_ints(&n, "pads", 4, 1, 1, 1, 1);
    net_init(&n, "W", 4, w, -0.5f, 0.5f);
    check_net(&n, 4, x, true);
}

/* A residual block's shape (WRN's first): one activation read by a 3x3 and a 1x1 convolution,
 * 16 to 32 channels (oneDNN's blocked kernels), their sum. */
static void test_conv_two_readers(void **state)
{
    (void)state;
    struct net n = {.seed = 20};
    int64_t x[] = {2, 16, 6, 6}, w3[] = {32, 16, 3, 3}, w1[] = {32, 16, 1, 1};
    net_node(&n, "LeakyRelu", "x", "o");
    net_float(&n, "alpha", 0.1f);
    net_node(&n, "Conv", "o W3", "a");
    net_ints(&n, "pads", 4, 1, 1, 1, 1);
    net_init(&n, "W3", 4, w3, -0.2f, 0.2f);
    net_node(&n, "Conv", "o W1", "b");
    net_init(&n, "W1", 4, w1, -0.2f, 0.2f);
    net_node(&n, "Add", "a b", "y");
    check_net(&n, 4, x, true);
}

/* A 3x3 Conv of x by the initializer w (dims, drawn from U(-r, r)) with pads of 1, into y. */
static void net_conv3x3(struct net *n, const char *x, char *w, const int64_t *dims, float r,
                        char *y)
{
    char inputs[64];
    snprintf(inputs, sizeof inputs, "%s %s", x, w);
    net_node(n, "Conv", inputs, y);
    net_ints(n, "pads", 4, 1, 1, 1, 1);
    net_init(n, w, 4, dims, -r, r);
}

/* WRN's identity block (with a smooth activation, as differences across LeakyReLU's kink would
 * be wrong): BN, activation, 3x3 Conv, activation, 3x3 Conv, plus the input. */
static void test_identity_block(void **state)
{
    (void)state;
    struct net n = {.seed = 21};
    int64_t x[] = {4, 16, 6, 6}, w[] = {16, 16, 3, 3}, c[] = {16};
    net_node(&n, "BatchNormalization", "x S1 B1 M1 V1", "b1");
    net_init(&n, "S1", 1, c, 0.5f, 1.5f);
    net_init(&n, "B1", 1, c, -0.5f, 0.5f);
    net_init(&n, "M1", 1, c, 0, 0);
    net_init(&n, "V1", 1, c, 1, 1);
    net_node(&n, "Sigmoid", "b1", "o");
    net_conv3x3(&n, "o", "W1", w, 0.2f, "c1");
    net_node(&n, "Sigmoid", "c1", "a");
    net_conv3x3(&n, "a", "W2", w, 0.2f, "c2");
    net_node(&n, "Add", "c2 x", "y");
    check_net(&n, 4, x, true);
}

/* The model's first convolution in blocked layouts: 3 input channels, which oneDNN pads to 16 in
 * backward data's ABcd16a16b weights and aBcd16b input gradient; and WRN's downsampling 3x3
 * convolution, stride 2 with a right pad its windows never reach. */
static void test_conv_input_and_stride(void **state)
{
    (void)state;
    struct net n = {.seed = 22};
    int64_t x[] = {2, 3, 8, 8}, w1[] = {16, 3, 3, 3}, w2[] = {32, 16, 3, 3};
    net_conv3x3(&n, "x", "W1", w1, 0.3f, "a");
    net_node(&n, "Sigmoid", "a", "o");
    net_conv3x3(&n, "o", "W2", w2, 0.2f, "y");
    net_ints(&n, "strides", 2, 2, 2, 0, 0);
    check_net(&n, 4, x, true);
}

/* The convolution cases again with options.plain_conv (the others run Conv on blocked layouts,
 * where every reorder between a plain value and a primitive's own layout is checked by the
 * same central differences). */
static void test_plain_conv(void **state)
{
    plain_conv = true;
    test_conv_grouped_strided_dilated(state);
    test_conv_depthwise(state);
    test_conv_two_readers(state);
    test_identity_block(state);
    test_conv_input_and_stride(state);
    plain_conv = false;
}

/* Conv -> BatchNormalization (training mode: batch statistics) -> Relu. */
static void test_batchnorm_training(void **state)
{
    (void)state;
    struct net n = {.seed = 3};
    int64_t x[] = {3, 2, 5, 5}, w[] = {4, 2, 3, 3}, c[] = {4};
    net_node(&n, "Conv", "x W", "c");
    net_init(&n, "W", 4, w, -0.5f, 0.5f);
    net_node(&n, "BatchNormalization", "c S B M V", "y");
    net_float(&n, "epsilon", 1e-3f);
    net_init(&n, "S", 1, c, 0.5f, 1.5f);
    net_init(&n, "B", 1, c, -0.5f, 0.5f);
    net_init(&n, "M", 1, c, -0.2f, 0.2f);
    net_init(&n, "V", 1, c, 0.5f, 1.5f);
    check_net(&n, 4, x, true);
}

/* In eval mode the running statistics are constants of the function. */
static void test_batchnorm_eval(void **state)
{
    (void)state;
    struct net n = {.seed = 4};
    int64_t x[] = {2, 3, 2, 2}, c[] = {3};
    net_node(&n, "BatchNormalization", "x S B M V", "y");
    net_init(&n, "S", 1, c, 0.5f, 1.5f);
    net_init(&n, "B", 1, c, -0.5f, 0.5f);
    net_init(&n, "M", 1, c, -0.2f, 0.2f);
    net_init(&n, "V", 1, c, 0.5f, 1.5f);
    check_net(&n, 4, x, false);
}

static void check_activation(char *op, uint64_t seed)
{
    struct net n = {.seed = seed};
    int64_t x[] = {2, 3, 4, 4}, s[] = {1};
    /* Scaled up so that x spans the interesting parts (HardSwish's [-3, 3], Clip's bounds). */
    net_node(&n, "Mul", "x K", "k");
    net_init(&n, "K", 1, s, 3.5f, 4.0f);
    net_node(&n, op, !strcmp(op, "Clip") ? "k lo hi" : "k", "y");
    if (!strcmp(op, "LeakyRelu")) net_float(&n, "alpha", 0.2f);
    if (!strcmp(op, "Clip")) {
        int64_t scalar[1];
        net_init(&n, "lo", 0, scalar, -1.5f, -1.0f);
        net_init(&n, "hi", 0, scalar, 1.0f, 1.5f);
    }
    check_net(&n, 4, x, true);
}

static void test_activations(void **state)
{
    (void)state;
    check_activation("Relu", 5);
    check_activation("LeakyRelu", 6);
    check_activation("Clip", 7);
    check_activation("Sigmoid", 8);
    check_activation("HardSwish", 9);
}

static void fill(float *v, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = uniform(&seed);
}

/* The pools' attributes: kind 0 MaxPool, 1 AveragePool without the padding and ceil_mode,
 * 2 counting the padding, 3 counting it with ceil_mode (on 8 x 8, a fifth window reaching past
 * the explicit padding: the host's case, pool.c), 4 GlobalAveragePool. */
static void net_pool(struct net *n, int kind, const char *x, char *y)
{
    net_node(n, kind == 4 ? "GlobalAveragePool" : kind ? "AveragePool" : "MaxPool", x, y);
    if (kind == 4) return;
    net_ints(n, "kernel_shape", 2, 3, 3, 0, 0);
    net_ints(n, "strides", 2, 2, 2, 0, 0);
    net_ints(n, "pads", 4, 1, 1, 1, 1);
    net_int(n, "count_include_pad", kind >= 2);
    net_int(n, "ceil_mode", kind == 1 || kind == 3);
}

static void test_pools(void **state)
{
    (void)state;
    int64_t x[] = {2, 2, 8, 8};
    for (int kind = 0; kind < 5; kind++) {
        struct net n = {.seed = 10};
        net_pool(&n, kind, "x", "y");
        check_net(&n, 4, x, true);
    }
}

/* The pools on a blocked input (a Conv's 16 channels, nChw16c), which they keep when a Conv
 * reads their output: the gradients against central differences, and the output and the input's
 * gradient against the same graph's plan with every value plain (options.plain_conv). The seed
 * keeps every MaxPool window's two largest inputs apart by more than the differences' step
 * (with seed 24 a step of 1e-3 on one W1 element moves a maximum; 1e-4 does not). */
static void test_pools_blocked(void **state)
{
    (void)state;
    int64_t x[] = {2, 3, 8, 8}, w1[] = {16, 3, 3, 3}, w2[] = {2, 16, 3, 3};
    for (int kind = 0; kind < 5; kind++) {
        struct net n = {.seed = 25};
        net_conv3x3(&n, "x", "W1", w1, 0.3f, "c");
        net_pool(&n, kind, "c", "p");
        net_conv3x3(&n, "p", "W2", w2, 0.2f, "y");
        check_net(&n, 4, x, true);
        struct nn_graph *g = net_graph(&n);
        struct train_plan *plans[2];
        plans[0] = compile(g, 4, x);
        plain_conv = true;
        plans[1] = compile(g, 4, x);
        plain_conv = false;
        size_t yc = 1;
        const struct nn_tensor_info *info = train_plan_output_info(plans[0]);
        for (int d = 0; d < info->rank; d++)
            yc *= (size_t)info->dims[d];
        float in[384], dx[2][384], up[200], out[2][200];
        assert_true(yc <= 200);
        fill(in, 384, 9);
        fill(up, yc, 10);
        for (int k = 0; k < 2; k++) {
            const float *y;
            struct eng_error err = {0};
            assert_int_equal(train_plan_forward(plans[k], in, true, &y, &err), 0);
            memcpy(out[k], y, yc * sizeof *y);
            assert_int_equal(train_plan_backward(plans[k], up, dx[k], &err), 0);
            train_plan_free(plans[k]);
        }
        for (size_t i = 0; i < yc; i++)
            assert_float_equal(out[0][i], out[1][i], 1e-5);
        for (size_t i = 0; i < 384; i++)
            assert_float_equal(dx[0][i], dx[1][i], 1e-5);
        nn_graph_free(g);
        /* The pool as the graph's output, which is plain: it reads the Conv's output through a
         * plain copy. */
        struct net m = {.seed = 25};
        net_conv3x3(&m, "x", "W1", w1, 0.3f, "c");
        net_pool(&m, kind, "c", "y");
        check_net(&m, 4, x, true);
    }
}

/* Ties: the gradient goes to the first maximum of each window (row-major), as PyTorch's; plain,
 * then blocked: the input copied into 16 channels by a 1x1 Conv of ones, pooled, and summed
 * back into one channel by another, so each window's gradient reaches x 16 times. */
static void test_maxpool_ties(void **state)
{
    (void)state;
    int64_t dims[] = {1, 1, 2, 4}, spread[] = {16, 1, 1, 1}, gather[] = {1, 16, 1, 1};
    for (int blocked = 0; blocked < 2; blocked++) {
        struct net n = {0};
        if (blocked) {
            net_node(&n, "Conv", "x S", "c");
            net_init(&n, "S", 4, spread, 1, 1);
        }
        net_node(&n, "MaxPool", blocked ? "c" : "x", blocked ? "p" : "y");
        net_ints(&n, "kernel_shape", 2, 2, 2, 0, 0);
        net_ints(&n, "strides", 2, 2, 2, 0, 0);
        if (blocked) {
            net_node(&n, "Conv", "p G", "y");
            net_init(&n, "G", 4, gather, 1, 1);
        }
        struct nn_graph *g = net_graph(&n);
        struct train_plan *t = compile(g, 4, dims);
        /* Window one: all equal; window two: the maximum 5 twice, at (0, 3) and (1, 2). */
        float x[] = {1, 1, 0, 5, 1, 1, 5, 2}, up[] = {2, 3}, dx[8];
        float want[] = {2, 0, 0, 3, 0, 0, 0, 0}, times = blocked ? 16 : 1;
        const float *y;
        struct eng_error err = {0};
        assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
        assert_true(y[0] == times && y[1] == 5 * times);
        assert_int_equal(train_plan_backward(t, up, dx, &err), 0);
        for (int i = 0; i < 8; i++)
            assert_true(dx[i] == want[i] * times);
        train_plan_free(t);
        nn_graph_free(g);
    }
}

static void test_gemm_and_matmul(void **state)
{
    (void)state;
    int64_t x[] = {3, 5}, x3[] = {2, 3, 5};
    for (int variant = 0; variant < 3; variant++) {
        struct net n = {.seed = 11};
        int64_t w[] = {variant == 1 ? 5 : 4, variant == 1 ? 4 : 5}, c[] = {4}, wm[] = {5, 4};
        if (variant < 2) {
            /* transB with a bias row; then transA (x seen as [5, 3]) with a [3, 4]... C of [4] */
            net_node(&n, "Gemm", "x W C", "y");
            net_float(&n, "alpha", 0.7f);
            net_float(&n, "beta", 1.3f);
            if (variant == 0) net_int(&n, "transB", 1);
            if (variant == 1) net_int(&n, "transA", 1);
            net_init(&n, "W", 2, w, -1, 1);
            net_init(&n, "C", 1, c, -1, 1);
            int64_t xt[] = {5, 3};
            check_net(&n, 2, variant == 1 ? xt : x, true);
        } else {
            net_node(&n, "MatMul", "x W", "y");
            net_init(&n, "W", 2, wm, -1, 1);
            check_net(&n, 3, x3, true);
        }
    }
}

/* Add and Mul broadcasting a parameter ([C, 1, 1], [W]) and an activation (x * its own channel
 * means, [N, C, 1, 1]: both operands need gradients). */
static void test_broadcasting(void **state)
{
    (void)state;
    struct net n = {.seed = 12};
    int64_t x[] = {2, 3, 4, 5}, c[] = {3, 1, 1}, w[] = {5};
    net_node(&n, "Add", "x A", "a");
    net_init(&n, "A", 3, c, -1, 1);
    net_node(&n, "Mul", "a M", "m");
    net_init(&n, "M", 1, w, -1, 1);
    net_node(&n, "GlobalAveragePool", "m", "g");
    net_node(&n, "Mul", "m g", "y");
    check_net(&n, 4, x, true);
}

/* Same-shape Adds whose operands' gradients are not both fresh (binary.c): the last Add's are
 * (one pass writes both), then s = o + o reads one value twice and o's gradient already holds
 * the last Add's share, so both of its shares add. Sigmoid keeps the differences off kinks. */
static void test_add_shared_operands(void **state)
{
    (void)state;
    struct net n = {.seed = 45};
    int64_t x[] = {2, 16, 4, 4};
    net_node(&n, "Sigmoid", "x", "o");
    net_node(&n, "Add", "o o", "s");
    net_node(&n, "Add", "s o", "y");
    check_net(&n, 4, x, true);
}

/* Concat of x and Sigmoid(x) along channels, flattened, reshaped and through a Gemm. */
static void test_concat_flatten_reshape(void **state)
{
    (void)state;
    struct net n = {.seed = 13};
    int64_t x[] = {2, 2, 3, 3}, w[] = {3, 36};
    int64_t shape[] = {0, 2, -1};
    net_node(&n, "Sigmoid", "x", "s");
    net_node(&n, "Concat", "x s", "c");
    net_int(&n, "axis", 1);
    net_node(&n, "Reshape", "c shape", "r");
    net_shape(&n, "shape", 3, shape);
    net_node(&n, "Flatten", "r", "f");
    net_node(&n, "Identity", "f", "i");
    net_node(&n, "Gemm", "i W", "y");
    net_int(&n, "transB", 1);
    net_init(&n, "W", 2, w, -1, 1);
    check_net(&n, 4, x, true);
}

/* Dropout: the same step draws the same mask (so differences see a fixed function), kept
 * elements are scaled by 1 / (1 - ratio), and eval mode is the identity. */
static void test_dropout(void **state)
{
    (void)state;
    struct net n = {.seed = 14};
    int64_t x[] = {4, 50}, w[] = {3, 50}, scalar[1];
    net_node(&n, "Dropout", "x ratio", "d");
    net_init(&n, "ratio", 0, scalar, 0.25f, 0.25f);
    net_node(&n, "Gemm", "d W", "y");
    net_int(&n, "transB", 1);
    net_init(&n, "W", 2, w, -1, 1);
    check_net(&n, 2, x, true);

    struct net m = {.seed = 15};
    net_node(&m, "Dropout", "x ratio", "y");
    net_init(&m, "ratio", 0, scalar, 0.25f, 0.25f);
    struct nn_graph *g = net_graph(&m);
    struct train_plan *t = compile(g, 2, x);
    float in[200], first[200];
    for (int i = 0; i < 200; i++)
        in[i] = 1.0f + (float)i;
    const float *y;
    struct eng_error err = {0};
    assert_int_equal(train_plan_forward(t, in, true, &y, &err), 0);
    int dropped = 0;
    for (int i = 0; i < 200; i++) {
        if (y[i] != 0.0f) assert_near(y[i], in[i] / 0.75, 1e-6 * y[i]);
        dropped += y[i] == 0.0f;
    }
    /* 50 expected; Binomial(200, 0.25)'s standard deviation is 6.1. */
    assert_in_range(dropped, 25, 75);
    memcpy(first, y, sizeof first);
    assert_int_equal(train_plan_step(t), 1);
    assert_int_equal(train_plan_forward(t, in, true, &y, &err), 0);
    assert_true(memcmp(first, y, sizeof first) != 0); /* the next step, another mask */
    train_plan_set_step(t, 0);
    assert_int_equal(train_plan_forward(t, in, true, &y, &err), 0);
    assert_memory_equal(first, y, sizeof first);
    assert_int_equal(train_plan_forward(t, in, false, &y, &err), 0);
    assert_memory_equal(in, y, sizeof in);
    train_plan_free(t);
    nn_graph_free(g);
}

/* One training forward moves the running statistics by ONNX's rule with the unbiased variance:
 * running = momentum * running + (1 - momentum) * batch; eval mode then normalises with them. */
static void test_batchnorm_running_statistics(void **state)
{
    (void)state;
    struct net n = {.seed = 16};
    int64_t dims[] = {2, 1, 1, 2}, c[] = {1};
    net_node(&n, "BatchNormalization", "x S B M V", "y");
    net_float(&n, "momentum", 0.75f);
    net_float(&n, "epsilon", 0.0f);
    net_init(&n, "S", 1, c, 2, 2);
    net_init(&n, "B", 1, c, 1, 1);
    net_init(&n, "M", 1, c, 0.5f, 0.5f);
    net_init(&n, "V", 1, c, 4, 4);
    struct nn_graph *g = net_graph(&n);
    struct train_plan *t = compile(g, 4, dims);
    /* Batch mean 2.5, biased variance 1.25, unbiased 5/3. */
    float x[] = {1, 2, 3, 4};
    const float *y;
    struct eng_error err = {0};
    assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
    /* (x - 2.5) / sqrt(1.25) * 2 + 1 */
    assert_near(y[0], -1.5 / sqrt(1.25) * 2 + 1, 1e-5);
    assert_near(y[3], 1.5 / sqrt(1.25) * 2 + 1, 1e-5);
    assert_int_equal(train_plan_buffer_count(t), 2);
    struct train_param *mean = train_plan_buffer(t, 0), *var = train_plan_buffer(t, 1);
    assert_string_equal(mean->name, "M");
    assert_null(mean->grad);
    assert_near(mean->value[0], 0.75 * 0.5 + 0.25 * 2.5, 1e-6);
    assert_near(var->value[0], 0.75 * 4 + 0.25 * 5.0 / 3.0, 1e-6);
    assert_int_equal(train_plan_forward(t, x, false, &y, &err), 0);
    assert_near(y[0], (1 - mean->value[0]) / sqrt(var->value[0]) * 2 + 1, 1e-5);
    /* Scale and shift are parameters without weight decay. */
    assert_int_equal(train_plan_param_count(t), 2);
    assert_true(train_plan_param(t, 0)->no_decay && train_plan_param(t, 1)->no_decay);
    train_plan_free(t);
    nn_graph_free(g);
}

/* Two plans with the same seed and threads (two: oneDNN splits its work) give identical outputs,
 * gradients and buffers; the MaxPool (overlapping windows, on the blocked 16 channels) scatters
 * its gradient into shared inputs. */
static void test_determinism(void **state)
{
    (void)state;
    struct net n = {.seed = 17};
    int64_t x[] = {4, 3, 8, 8}, w[] = {16, 3, 3, 3}, c[] = {16}, scalar[1];
    net_node(&n, "Conv", "x W", "c");
    net_ints(&n, "pads", 4, 1, 1, 1, 1);
    net_init(&n, "W", 4, w, -0.5f, 0.5f);
    net_node(&n, "BatchNormalization", "c S B M V", "b");
    net_init(&n, "S", 1, c, 0.5f, 1.5f);
    net_init(&n, "B", 1, c, -0.5f, 0.5f);
    net_init(&n, "M", 1, c, 0, 0);
    net_init(&n, "V", 1, c, 1, 1);
    net_node(&n, "Relu", "b", "r");
    net_node(&n, "MaxPool", "r", "p");
    net_ints(&n, "kernel_shape", 2, 3, 3, 0, 0);
    net_ints(&n, "pads", 4, 1, 1, 1, 1);
    net_node(&n, "Dropout", "p ratio", "y");
    net_init(&n, "ratio", 0, scalar, 0.5f, 0.5f);
    struct nn_graph *g = net_graph(&n);
    float in[4 * 3 * 8 * 8], up[4 * 16 * 8 * 8], dx[2][4 * 3 * 8 * 8], out[2][4 * 16 * 8 * 8];
    float dw[2][16 * 27], rv[2][16];
    uint64_t s = 5;
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        in[i] = uniform(&s);
    for (size_t i = 0; i < sizeof up / sizeof *up; i++)
        up[i] = uniform(&s);
    for (int run = 0; run < 2; run++) {
        struct train_plan *t = compile_threads(g, 4, x, 2);
        const float *y;
        struct eng_error err = {0};
        for (int step = 0; step < 3; step++)
            assert_int_equal(train_plan_forward(t, in, true, &y, &err), 0);
        assert_int_equal(train_plan_backward(t, up, dx[run], &err), 0);
        memcpy(out[run], y, sizeof out[run]);
        memcpy(dw[run], train_plan_param(t, 0)->grad, sizeof dw[run]);
        memcpy(rv[run], train_plan_buffer(t, 1)->value, sizeof rv[run]);
        train_plan_free(t);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    assert_memory_equal(dx[0], dx[1], sizeof dx[0]);
    assert_memory_equal(dw[0], dw[1], sizeof dw[0]);
    assert_memory_equal(rv[0], rv[1], sizeof rv[0]);
    nn_graph_free(g);
}

/* Conv -> BatchNormalization, with random parameters. */
static struct nn_graph *conv_bn(void)
{
    struct net n = {.seed = 19};
    int64_t w[] = {4, 2, 3, 3}, c[] = {4};
    net_node(&n, "Conv", "x W Bc", "c");
    net_init(&n, "W", 4, w, -0.5f, 0.5f);
    net_init(&n, "Bc", 1, c, -0.5f, 0.5f);
    net_node(&n, "BatchNormalization", "c S B M V", "y");
    net_init(&n, "S", 1, c, 0.5f, 1.5f);
    net_init(&n, "B", 1, c, -0.5f, 0.5f);
    net_init(&n, "M", 1, c, -0.2f, 0.2f);
    net_init(&n, "V", 1, c, 0.5f, 1.5f);
    return net_graph(&n);
}

/* Frozen initializers are no parameters and get no gradient, and the gradients that remain are
 * those of the plan without them; the running statistics still move. */
static void test_frozen(void **state)
{
    (void)state;
    struct nn_graph *g = conv_bn();
    int64_t dims[] = {2, 2, 5, 5};
    struct nn_tensor_info info = shape_of(4, dims);
    const char *frozen[] = {"W", "S"};
    struct train_plan_options options = {.input_grad = true, .frozen = frozen, .n_frozen = 2};
    struct eng_error err = {0};
    struct train_plan *f = train_plan_compile(g, &info, &options, &err), *t = compile(g, 4, dims);
    assert_non_null(f);
    assert_int_equal(train_plan_param_count(f), 2);
    assert_string_equal(train_plan_param(f, 0)->name, "Bc");
    assert_string_equal(train_plan_param(f, 1)->name, "B");
    assert_int_equal(train_plan_param_count(t), 4);
    float x[100], up[4 * 2 * 9], dx[2][100];
    fill(x, 100, 1);
    fill(up, 72, 2);
    const float *y;
    struct train_plan *plans[2] = {f, t};
    for (int k = 0; k < 2; k++)
        assert_int_equal(train_plan_forward(plans[k], x, true, &y, &err) ||
                             train_plan_backward(plans[k], up, dx[k], &err),
                         0);
    for (int i = 0; i < 100; i++)
        assert_near(dx[0][i], dx[1][i], 1e-6);
    for (int c = 0; c < 4; c++)
        assert_near(train_plan_param(f, 1)->grad[c], train_plan_param(t, 3)->grad[c], 1e-6);
    /* Both plans moved the running mean the same way from the same start. */
    assert_memory_equal(train_plan_buffer(f, 0)->value, train_plan_buffer(t, 0)->value,
                        4 * sizeof(float));
    /* Their parameters differ: copying between them is refused. */
    assert_int_equal(train_plan_copy_values(f, t, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    train_plan_free(f);
    train_plan_free(t);
    nn_graph_free(g);
}

/* A plan for another batch size, given the values of a trained one, evaluates as it does. */
static void test_copy_values(void **state)
{
    (void)state;
    struct nn_graph *g = conv_bn();
    int64_t two[] = {2, 2, 5, 5}, three[] = {3, 2, 5, 5};
    struct train_plan *a = compile(g, 4, two), *b = compile(g, 4, three);
    float x[150], out_a[72];
    fill(x, 150, 3);
    const float *y;
    struct eng_error err = {0};
    /* A training forward moves a's buffers, and an optimiser its parameters. */
    assert_int_equal(train_plan_forward(a, x, true, &y, &err), 0);
    for (size_t k = 0; k < train_plan_param_count(a); k++)
        train_plan_param(a, k)->value[0] += 0.25f;
    assert_int_equal(train_plan_forward(a, x, false, &y, &err), 0);
    memcpy(out_a, y, sizeof out_a);
    assert_int_equal(train_plan_copy_values(b, a, &err), 0);
    assert_int_equal(train_plan_forward(b, x, false, &y, &err), 0);
    /* Within rounding: oneDNN may pick another kernel for another batch size. */
    for (int i = 0; i < 72; i++)
        assert_near(y[i], out_a[i], 1e-6);
    train_plan_free(a);
    train_plan_free(b);
    nn_graph_free(g);
}

/* x -> 3x3 Conv W1 (dims w1) = c -> BatchNormalization (c[0] channels) = b. */
static void net_conv_bn(struct net *n, const int64_t *w1, const int64_t *c)
{
    net_conv3x3(n, "x", "W1", w1, 0.3f, "c");
    net_node(n, "BatchNormalization", "c S B M V", "b");
    net_init(n, "S", 1, c, 0.5f, 1.5f);
    net_init(n, "B", 1, c, -0.5f, 0.5f);
    net_init(n, "M", 1, c, -0.2f, 0.2f);
    net_init(n, "V", 1, c, 0.5f, 1.5f);
}

/* BatchNorm in eval mode on a blocked input (a Conv's 16 channels, nChw16c), whose host loops
 * index the blocked layout: its gradients against central differences, and its forward against
 * the same graph's plan with every value plain (options.plain_conv), which they must match
 * within rounding. */
static void test_batchnorm_eval_blocked(void **state)
{
    (void)state;
    struct net n = {.seed = 23};
    int64_t x[] = {2, 3, 5, 5}, w1[] = {16, 3, 3, 3}, w2[] = {4, 16, 3, 3}, c[] = {16};
    net_conv_bn(&n, w1, c);
    net_node(&n, "Sigmoid", "b", "o");
    net_conv3x3(&n, "o", "W2", w2, 0.2f, "y");
    check_net(&n, 4, x, false);
    struct nn_graph *g = net_graph(&n);
    struct train_plan *blocked = compile(g, 4, x);
    plain_conv = true;
    struct train_plan *plain = compile(g, 4, x);
    plain_conv = false;
    float in[150], out[200];
    fill(in, 150, 8);
    const float *y;
    struct eng_error err = {0};
    assert_int_equal(train_plan_forward(plain, in, false, &y, &err), 0);
    memcpy(out, y, sizeof out);
    assert_int_equal(train_plan_forward(blocked, in, false, &y, &err), 0);
    for (int i = 0; i < 200; i++)
        assert_float_equal(y[i], out[i], 1e-5);
    train_plan_free(blocked);
    train_plan_free(plain);
    nn_graph_free(g);
}

/* A chain of six Relus on [4, 8, 8, 8] (2048 floats a value) holds its 7 activations and, during
 * the backward pass, two gradients at a time: the one read and the one written. */
static void test_gradient_memory(void **state)
{
    (void)state;
    struct net n = {0};
    char *names[] = {"x", "a", "b", "c", "d", "e", "y"};
    for (int k = 0; k < 6; k++)
        net_node(&n, "Relu", names[k], names[k + 1]);
    struct nn_graph *g = net_graph(&n);
    int64_t dims[] = {4, 8, 8, 8};
    struct nn_tensor_info info = shape_of(4, dims);
    struct eng_error err = {0};
    struct train_plan *t = train_plan_compile(g, &info, NULL, &err);
    assert_non_null(t);
    float x[2048], up[2048];
    fill(x, 2048, 4);
    fill(up, 2048, 5);
    const float *y;
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
        assert_int_equal(train_plan_backward(t, up, NULL, &err), 0);
        assert_int_equal(train_plan_bytes(t), (7 + 2) * 2048 * sizeof(float));
    }
    train_plan_free(t);
    nn_graph_free(g);
}

/* Values the backward pass does not read share slots: in x -> Add(x, x) = a -> Add(a, a) = b ->
 * Add(b, b) = c -> Relu = y on [4, 8, 8, 8], Add's backward reads no value and Relu's its
 * output, so a, b and c live from their forward step to their last reader's: c takes a's slot
 * once b has read a, and the plan holds x, y, two slots and two gradients. The forward and the
 * input's gradient are those of y = relu(8x), exactly (doubling is exact), on every pass. */
static void test_activation_slots(void **state)
{
    (void)state;
    struct net n = {0};
    net_node(&n, "Add", "x x", "a");
    net_node(&n, "Add", "a a", "b");
    net_node(&n, "Add", "b b", "c");
    net_node(&n, "Relu", "c", "y");
    struct nn_graph *g = net_graph(&n);
    int64_t dims[] = {4, 8, 8, 8};
    struct train_plan *t = compile(g, 4, dims);
    float x[2048], up[2048], dx[2048];
    fill(x, 2048, 6);
    fill(up, 2048, 7);
    const float *y;
    struct eng_error err = {0};
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
        for (int i = 0; i < 2048; i++)
            assert_float_equal(y[i], x[i] > 0 ? 8 * x[i] : 0, 0);
        assert_int_equal(train_plan_backward(t, up, dx, &err), 0);
        for (int i = 0; i < 2048; i++)
            assert_float_equal(dx[i], x[i] > 0 ? 8 * up[i] : 0, 0);
        assert_int_equal(train_plan_bytes(t), (4 + 2) * 2048 * sizeof(float));
    }
    train_plan_free(t);
    nn_graph_free(g);
}

/* train_plan_value: a kept value read back. In x -> Add(x, x) = a -> Add(a, a) = b ->
 * Add(b, b) = c -> Relu = y (test_activation_slots), y (kept: Relu's backward reads it) is
 * relu(8x) and the input x itself, exactly; c, in a shared slot, is refused until options.keep
 * names it, and then it is 8x and costs its own floats (one value more than the plan without
 * it); names no activation has, and reads before a forward, are refused. */
static void test_value_read(void **state)
{
    (void)state;
    struct net n = {0};
    net_node(&n, "Add", "x x", "a");
    net_node(&n, "Add", "a a", "b");
    net_node(&n, "Add", "b b", "c");
    net_node(&n, "Relu", "c", "y");
    struct nn_graph *g = net_graph(&n);
    int64_t dims[] = {4, 8, 8, 8};
    struct nn_tensor_info in = shape_of(4, dims), info;
    const char *keep[] = {"c"};
    struct train_plan_options options = {.keep = keep, .n_keep = 1};
    struct eng_error err = {0};
    struct train_plan *t = compile(g, 4, dims), *k = train_plan_compile(g, &in, &options, &err);
    assert_non_null(k);
    float x[2048], *v;
    fill(x, 2048, 6);
    const float *y;
    assert_null(train_plan_value(t, "y", &info, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(train_plan_forward(t, x, true, &y, &err), 0);
    assert_int_equal(train_plan_forward(k, x, true, &y, &err), 0);
    assert_non_null(v = train_plan_value(t, "y", &info, &err));
    assert_int_equal(info.rank, 4);
    assert_memory_equal(info.dims, dims, sizeof dims);
    for (int i = 0; i < 2048; i++)
        assert_float_equal(v[i], x[i] > 0 ? 8 * x[i] : 0, 0);
    free(v);
    assert_non_null(v = train_plan_value(t, "x", &info, &err));
    assert_memory_equal(v, x, sizeof x);
    free(v);
    assert_null(train_plan_value(t, "c", &info, &err));
    assert_int_equal(err.code, ENG_UNSUPPORTED);
    assert_null(train_plan_value(t, "z", &info, &err));
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_non_null(v = train_plan_value(k, "c", &info, &err));
    for (int i = 0; i < 2048; i++)
        assert_float_equal(v[i], 8 * x[i], 0);
    free(v);
    assert_int_equal(train_plan_bytes(k), train_plan_bytes(t) + 2048 * sizeof(float));
    train_plan_free(t);
    train_plan_free(k);
    nn_graph_free(g);
}

/* train_plan_value on a blocked value: a Conv's 16 channels (nChw16c) through a Relu, read back
 * plain, equal the same graph's plan with every value plain (options.plain_conv) within
 * rounding, and the Relu's kept input (options.keep) gives its output exactly. */
static void test_value_read_blocked(void **state)
{
    (void)state;
    struct net n = {.seed = 29};
    int64_t x[] = {2, 3, 5, 5}, w1[] = {16, 3, 3, 3}, w2[] = {4, 16, 3, 3};
    net_conv3x3(&n, "x", "W1", w1, 0.3f, "c");
    net_node(&n, "Relu", "c", "r");
    net_conv3x3(&n, "r", "W2", w2, 0.2f, "y");
    struct nn_graph *g = net_graph(&n);
    struct nn_tensor_info in = shape_of(4, x), info;
    const char *keep[] = {"c"};
    float input[150], *r[2], *c;
    fill(input, 150, 9);
    const float *y;
    struct eng_error err = {0};
    for (int plain = 0; plain < 2; plain++) {
        struct train_plan_options options = {.plain_conv = plain, .keep = keep, .n_keep = 1};
        struct train_plan *t = train_plan_compile(g, &in, &options, &err);
        assert_non_null(t);
        assert_int_equal(train_plan_forward(t, input, true, &y, &err), 0);
        assert_non_null(r[plain] = train_plan_value(t, "r", &info, &err));
        assert_int_equal(info.rank, 4);
        assert_int_equal(info.dims[1], 16);
        assert_non_null(c = train_plan_value(t, "c", &info, &err));
        for (int i = 0; i < 800; i++)
            assert_float_equal(r[plain][i], c[i] > 0 ? c[i] : 0, 0);
        free(c);
        train_plan_free(t);
    }
    for (int i = 0; i < 800; i++)
        assert_float_equal(r[0][i], r[1][i], 1e-5);
    free(r[0]);
    free(r[1]);
    nn_graph_free(g);
}

/* One training or eval step of plan t (compiled with input_grad) on input (xc floats) with the
 * output's gradient up: the output and every gradient (the input's, then each parameter's)
 * into out[0..*n). */
static void step_gradients(struct train_plan *t, const float *input, size_t xc, const float *up,
                           bool training, float *out, size_t *n)
{
    const struct nn_tensor_info *info = train_plan_output_info(t);
    size_t yc = 1;
    for (int d = 0; d < info->rank; d++)
        yc *= (size_t)info->dims[d];
    const float *y;
    struct eng_error err = {0};
    assert_int_equal(train_plan_forward(t, input, training, &y, &err), 0);
    memcpy(out, y, yc * sizeof *out);
    assert_int_equal(train_plan_backward(t, up, out + yc, &err), 0);
    *n = yc + xc;
    for (size_t k = 0; k < train_plan_param_count(t); k++) {
        struct train_param *p = train_plan_param(t, k);
        memcpy(out + *n, p->grad, p->count * sizeof(float));
        *n += p->count;
    }
}

/* One training or eval step of g (test_relu_applied's graph) on input, with the values named in
 * keep kept: step_gradients' out and *n. */
static void relu_step(const struct nn_graph *g, const int64_t *dims, const float *input,
                      const float *up, const char *const *keep, size_t n_keep, bool training,
                      float *out, size_t *n)
{
    struct nn_tensor_info in = shape_of(4, dims);
    struct train_plan_options options = {
        .input_grad = true, .plain_conv = plain_conv, .keep = keep, .n_keep = n_keep};
    struct eng_error err = {0};
    struct train_plan *t = train_plan_compile(g, &in, &options, &err);
    if (!t) fail_msg("%s", err.message);
    step_gradients(t, input, (size_t)(dims[0] * dims[1] * dims[2] * dims[3]), up, training, out, n);
    /* Unkept, the normalisation's output holds the Relu's: train_plan_value refuses it. */
    struct nn_tensor_info info;
    float *b = train_plan_value(t, "b", &info, &err);
    if (!n_keep) assert_int_equal(err.code, ENG_UNSUPPORTED);
    assert_true(!b == !n_keep);
    free(b);
    train_plan_free(t);
}

/* A Relu whose input's producer applies it (a BatchNormalization through oneDNN's
 * fuse_norm_relu in training mode, its host loops in eval mode; a residual Add) gives the same
 * output and gradients as the unfused ops, which run when the Relu's input is kept
 * (options.keep) and which the central differences and the PyTorch parity test check. A fused
 * backward that skips the Relu's slopes fails this (tried by hand), on blocked and plain Conv. */
static void test_relu_applied(void **state)
{
    (void)state;
    struct net n = {.seed = 31};
    int64_t x[] = {4, 3, 6, 6}, w1[] = {16, 3, 3, 3}, w2[] = {16, 16, 3, 3}, w3[] = {4, 16, 3, 3},
            c[] = {16};
    net_conv_bn(&n, w1, c);
    net_node(&n, "Relu", "b", "r");
    net_conv3x3(&n, "r", "W2", w2, 0.2f, "d");
    net_node(&n, "Add", "d r", "s");
    net_node(&n, "Relu", "s", "a");
    net_conv3x3(&n, "a", "W3", w3, 0.2f, "y");
    struct nn_graph *g = net_graph(&n);
    enum { TOTAL = 4 * 4 * 36 + 4 * 3 * 36 + 16 * 27 + 2 * 16 + 16 * 144 + 4 * 144 };
    float input[4 * 3 * 36], up[4 * 4 * 36], *fused = malloc(TOTAL * sizeof(float)),
                                             *apart = malloc(TOTAL * sizeof(float));
    assert_non_null(fused);
    assert_non_null(apart);
    fill(input, 4 * 3 * 36, 12);
    fill(up, 4 * 4 * 36, 13);
    const char *keep[] = {"b", "s"};
    for (int plain = 0; plain < 2; plain++)
        for (int training = 0; training < 2; training++) {
            plain_conv = plain;
            size_t nf, na;
            relu_step(g, x, input, up, NULL, 0, training, fused, &nf);
            relu_step(g, x, input, up, keep, 2, training, apart, &na);
            assert_int_equal(nf, TOTAL);
            assert_int_equal(na, TOTAL);
            for (size_t i = 0; i < TOTAL; i++)
                assert_float_equal(fused[i], apart[i], 1e-6 * (1 + fabsf(apart[i])));
        }
    plain_conv = false;
    free(fused);
    free(apart);
    nn_graph_free(g);
}

/* One training step of g (input dims, 4-D, the input and the output's gradient drawn from
 * seeds) with each algorithm: out[0] the plan's own choice, out[1] with
 * options.direct_convolution, *n floats each (step_gradients). */
static void both_algorithms(const struct nn_graph *g, const int64_t *dims, float *out[2], size_t *n)
{
    struct nn_tensor_info in = shape_of(4, dims);
    size_t xc = (size_t)(dims[0] * dims[1] * dims[2] * dims[3]);
    float *x = malloc(xc * sizeof *x), *up = malloc(xc * sizeof *up); /* y no larger than x */
    assert_non_null(x);
    assert_non_null(up);
    fill(x, xc, 41);
    fill(up, xc, 42);
    for (int direct = 0; direct < 2; direct++) {
        struct train_plan_options options = {
            .threads = 1, .input_grad = true, .direct_convolution = direct};
        struct eng_error err = {0};
        struct train_plan *t = train_plan_compile(g, &in, &options, &err);
        if (!t) fail_msg("%s", err.message);
        step_gradients(t, x, xc, up, true, out[direct], n);
        train_plan_free(t);
    }
    free(x);
    free(up);
}

/* Whether oneDNN runs its AVX-512 kernels here, which is where it has Winograd's. */
static bool has_winograd(void)
{
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

/* Winograd's algorithm where the plan asks for it (conv.c's wants_winograd: a 3x3 stride-1 Conv
 * of 64 channels, all three passes) and the direct one where oneDNN has no Winograd kernel though
 * the channels ask for it (a 3x3 stride-2 Conv, a 1x1). options.direct_convolution gives the
 * reference: the fallbacks give its bits exactly (the same kernels run), Winograd's Conv gives
 * other bits where this CPU has it (AVX-512), within 1e-4 of each tensor's largest magnitude (the
 * PyTorch parity test's tolerance), and its gradients match central differences. */
static void test_conv_winograd(void **state)
{
    (void)state;
    int64_t x[] = {2, 64, 6, 6}, w3[] = {64, 64, 3, 3}, w1[] = {64, 64, 1, 1};
    enum { MOST = 2 * 4608 + 36864 + 4096 }; /* x and y, the weights */
    float *out[2] = {malloc(MOST * sizeof(float)), malloc(MOST * sizeof(float))};
    assert_non_null(out[0]);
    assert_non_null(out[1]);
    size_t n;

    struct net fallback = {.seed = 43};
    net_conv3x3(&fallback, "x", "W1", w3, 0.05f, "a");
    net_ints(&fallback, "strides", 2, 2, 2, 0, 0);
    net_node(&fallback, "Conv", "a W2", "y");
    net_init(&fallback, "W2", 4, w1, -0.1f, 0.1f);
    struct nn_graph *g = net_graph(&fallback);
    both_algorithms(g, x, out, &n);
    assert_int_equal(n, 2 * 64 * 9 + 4608 + 36864 + 4096);
    assert_memory_equal(out[0], out[1], n * sizeof(float));
    nn_graph_free(g);

    struct net winograd = {.seed = 44};
    net_conv3x3(&winograd, "x", "W", w3, 0.05f, "y");
    g = net_graph(&winograd);
    both_algorithms(g, x, out, &n);
    const size_t sizes[] = {4608, 4608, 36864}; /* y, dL/dx, dL/dW */
    size_t at = 0, differ = 0;
    double worst = 0; /* the largest difference, of its tensor's largest magnitude */
    for (int k = 0; k < 3; at += sizes[k++]) {
        float most = 0;
        for (size_t i = at; i < at + sizes[k]; i++)
            most = fmaxf(most, fabsf(out[1][i]));
        for (size_t i = at; i < at + sizes[k]; i++) {
            assert_near(out[0][i], out[1][i], 1e-4 * most);
            differ += out[0][i] != out[1][i];
            worst = fmax(worst, fabs((double)out[0][i] - out[1][i]) / most);
        }
    }
    assert_int_equal(at, n);
    if (has_winograd()) {
        assert_true(differ > 0);
        print_message("Winograd against direct: %zu of %zu floats differ, by at most %.2g of their "
                      "tensor's largest magnitude\n",
                      differ, n, worst);
    } else {
        print_message("no AVX-512 here: oneDNN has no Winograd kernels, both plans ran direct\n");
    }
    nn_graph_free(g);
    check_net(&winograd, 4, x, true);
    free(out[0]);
    free(out[1]);
}

/* Ops without a backward pass are refused by name, all of them, by the compile and by
 * train_plan_check alike (a job's check at submission); an input gradient must be asked for at
 * compile time; backward needs a forward. */
static void test_refusals(void **state)
{
    (void)state;
    struct net n = {0};
    int64_t x[] = {2, 3};
    net_node(&n, "Softmax", "x", "s");
    net_node(&n, "Transpose", "s", "r");
    net_node(&n, "Relu", "r", "y");
    struct nn_graph *g = net_graph(&n);
    struct nn_tensor_info info = shape_of(2, x);
    struct eng_error err = {0};
    assert_null(train_plan_compile(g, &info, NULL, &err));
    assert_int_equal(err.code, ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "Softmax, Transpose (2 nodes)"));
    struct eng_error check = {0};
    assert_int_equal(train_plan_check(g, &check), -1);
    assert_int_equal(check.code, ENG_UNSUPPORTED);
    assert_string_equal(check.message, err.message);
    nn_graph_free(g);

    /* Weights that do not fit the input: ENG_INVALID naming the node. */
    struct net c = {.seed = 18};
    int64_t x4[] = {1, 3, 5, 5}, w[] = {4, 2, 3, 3};
    net_node(&c, "Conv", "x W", "y");
    net_init(&c, "W", 4, w, -1, 1);
    g = net_graph(&c);
    info = shape_of(4, x4);
    /* Its ops all have a backward pass: shapes are the compile's to check. */
    assert_int_equal(train_plan_check(g, &err), 0);
    assert_null(train_plan_compile(g, &info, NULL, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "(Conv): the weights do not fit"));
    nn_graph_free(g);

    struct net m = {0};
    info = shape_of(2, x);
    net_node(&m, "Relu", "x", "y");
    g = net_graph(&m);
    struct train_plan *t = train_plan_compile(g, &info, NULL, &err);
    assert_non_null(t);
    float in[6] = {0}, dx[6];
    assert_int_equal(train_plan_backward(t, in, NULL, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    const float *y;
    assert_int_equal(train_plan_forward(t, in, true, &y, &err), 0);
    assert_int_equal(train_plan_backward(t, in, dx, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(train_plan_backward(t, in, NULL, &err), 0);
    train_plan_free(t);
    nn_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_grouped_strided_dilated),
        cmocka_unit_test(test_conv_depthwise),
        cmocka_unit_test(test_conv_two_readers),
        cmocka_unit_test(test_identity_block),
        cmocka_unit_test(test_conv_input_and_stride),
        cmocka_unit_test(test_plain_conv),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_batchnorm_training),
        cmocka_unit_test(test_batchnorm_eval),
        cmocka_unit_test(test_batchnorm_eval_blocked),
        cmocka_unit_test(test_relu_applied),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_pools_blocked),
        cmocka_unit_test(test_maxpool_ties),
        cmocka_unit_test(test_gemm_and_matmul),
        cmocka_unit_test(test_broadcasting),
        cmocka_unit_test(test_add_shared_operands),
        cmocka_unit_test(test_concat_flatten_reshape),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_value_read),
        cmocka_unit_test(test_value_read_blocked),
        cmocka_unit_test(test_batchnorm_running_statistics),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_frozen),
        cmocka_unit_test(test_copy_values),
        cmocka_unit_test(test_gradient_memory),
        cmocka_unit_test(test_activation_slots),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
