/* The zoo's layers: one PyTorch module each, added to a graph builder with its parameters drawn
 * from their own Philox streams. Failures are the builder's (sticky, reported by
 * nn_builder_finish), so these return nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "train/internal.h"

void zoo_path(char *out, const char *prefix, const char *leaf)
{
    int n = snprintf(out, ZOO_NAME, "%s.%s", prefix, leaf);
    if (n < 0 || n >= ZOO_NAME) out[0] = '\0'; /* the builder refuses the empty name */
}

float zoo_draw(struct rng *r, enum zoo_init law, double fan_in, double fan_out)
{
    switch (law) {
    case ZOO_TORCH_DEFAULT:
        return (float)((2 * rng_uniform(r) - 1) / sqrt(fan_in));
    case ZOO_NORMAL_FAN_IN:
        return (float)(rng_normal(r) * sqrt(2 / fan_in));
    case ZOO_NORMAL_FAN_OUT:
        return (float)(rng_normal(r) * sqrt(2 / fan_out));
    case ZOO_XAVIER_NORMAL:
        break;
    }
    return (float)(rng_normal(r) * sqrt(2 / (fan_in + fan_out)));
}

/* A float initializer drawn by law over the fans, or filled with value when law < 0. The builder
 * adopts it (and reports a failed malloc as no memory). */
static void add_param(struct zoo *z, const char *name, int rank, const int64_t *dims, int law,
                      double fan_in, double fan_out, float value)
{
    size_t count = 1;
    for (int d = 0; d < rank; d++)
        count *= (size_t)dims[d];
    float *w = malloc(count * sizeof *w);
    struct rng r;
    rng_init(&r, z->seed, 0, z->params++, 0);
    for (size_t i = 0; w && i < count; i++)
        w[i] = law < 0 ? value : zoo_draw(&r, (enum zoo_init)law, fan_in, fan_out);
    nn_builder_initializer_owned(z->b, name, NN_FLOAT, rank, dims, w);
}

static void node1(struct zoo *z, const char *op, const char *module, size_t n_in,
                  const char *const *in, const char *y)
{
    nn_builder_node(z->b, op, module, n_in, in, 1, &y);
}

void zoo_conv(struct zoo *z, const char *x, char *y, const char *module, int in, int out, int k,
              int stride, int pad)
{
    char w[ZOO_NAME];
    zoo_path(w, module, "weight");
    int64_t dims[4] = {out, in, k, k};
    add_param(z, w, 4, dims, z->conv_init, (double)in * k * k, (double)out * k * k, 0);
    const char *in_names[2] = {x, w};
    node1(z, "Conv", module, 2, in_names, module);
    int64_t kernel[2] = {k, k}, strides[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad};
    nn_builder_attr_ints(z->b, "kernel_shape", 2, kernel);
    nn_builder_attr_ints(z->b, "strides", 2, strides);
    nn_builder_attr_ints(z->b, "pads", 4, pads);
    snprintf(y, ZOO_NAME, "%s", module);
}

void zoo_bn(struct zoo *z, const char *x, char *y, const char *module, int channels)
{
    static const char *const leaves[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float values[4] = {1, 0, 0, 1};
    char names[4][ZOO_NAME];
    int64_t dims[1] = {channels};
    for (int i = 0; i < 4; i++) {
        zoo_path(names[i], module, leaves[i]);
        add_param(z, names[i], 1, dims, -1, 0, 0, values[i]);
    }
    const char *in[5] = {x, names[0], names[1], names[2], names[3]};
    node1(z, "BatchNormalization", module, 5, in, module);
    nn_builder_attr_float(z->b, "epsilon", 1e-5f);
    nn_builder_attr_float(z->b, "momentum", z->bn_momentum);
    snprintf(y, ZOO_NAME, "%s", module);
}

void zoo_act(struct zoo *z, const char *x, char *y, const char *module)
{
    node1(z, z->leaky ? "LeakyRelu" : "Relu", module, 1, &x, module);
    if (z->leaky) nn_builder_attr_float(z->b, "alpha", z->leaky);
    snprintf(y, ZOO_NAME, "%s", module);
}

void zoo_add(struct zoo *z, const char *a, const char *b, char *y, const char *module)
{
    const char *in[2] = {a, b};
    node1(z, "Add", module, 2, in, module);
    snprintf(y, ZOO_NAME, "%s", module);
}

void zoo_maxpool(struct zoo *z, const char *x, char *y, const char *module, int k, int stride,
                 int pad)
{
    node1(z, "MaxPool", module, 1, &x, module);
    int64_t kernel[2] = {k, k}, strides[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad};
    nn_builder_attr_ints(z->b, "kernel_shape", 2, kernel);
    nn_builder_attr_ints(z->b, "strides", 2, strides);
    nn_builder_attr_ints(z->b, "pads", 4, pads);
    snprintf(y, ZOO_NAME, "%s", module);
}

void zoo_head(struct zoo *z, const char *x, const char *fc, int in, int classes)
{
    node1(z, "GlobalAveragePool", "avgpool", 1, &x, "avgpool");
    const char *pooled = "avgpool";
    node1(z, "Flatten", "flatten", 1, &pooled, "flatten");
    nn_builder_attr_int(z->b, "axis", 1);
    char w[ZOO_NAME], bias[ZOO_NAME];
    zoo_path(w, fc, "weight");
    zoo_path(bias, fc, "bias");
    int64_t wdims[2] = {classes, in}, bdims[1] = {classes};
    add_param(z, w, 2, wdims, z->linear_init, in, classes, 0);
    /* nn.Linear's default bias: U(+-1/sqrt fan_in), the weight's default law over the bias. */
    add_param(z, bias, 1, bdims, z->linear_bias_zero ? -1 : ZOO_TORCH_DEFAULT, in, classes, 0);
    const char *features = "flatten";
    if (z->dropout > 0) {
        /* nn.Dropout(p): its ratio a Constant (opset 13 reads it as an input), so that it is
         * no initializer, which would count as a parameter. */
        struct nn_tensor ratio = {
            .info = {.name = "dropout.ratio", .dtype = NN_FLOAT}, .count = 1, .data = &z->dropout};
        const char *ratio_name = "dropout.ratio", *dropout_in[2] = {features, ratio_name};
        nn_builder_node(z->b, "Constant", ratio_name, 0, NULL, 1, &ratio_name);
        nn_builder_attr_tensor(z->b, "value", &ratio);
        node1(z, "Dropout", "dropout", 2, dropout_in, "dropout");
        features = "dropout";
    }
    const char *gemm_in[3] = {features, w, bias};
    node1(z, "Gemm", fc, 3, gemm_in, "logits");
    nn_builder_attr_int(z->b, "transB", 1);
}

void zoo_drop_path(struct zoo *z, char *h, const char *block)
{
    if (!(z->drop_path > 0)) return;
    char m[ZOO_NAME];
    zoo_path(m, block, "drop_path");
    const char *x = h, *y = m;
    nn_builder_node_in(z->b, TRAIN_DOMAIN, 1, "StochasticDepth", m, 1, &x, 1, &y);
    /* Huang et al.'s linear decay: block l of L drops with p * l / L, the last with p. */
    nn_builder_attr_float(z->b, "ratio", (float)((double)z->drop_path * ++z->block / z->blocks));
    snprintf(h, ZOO_NAME, "%s", m);
}
