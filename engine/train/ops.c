/* The ops a training plan handles, by ONNX op type, each with its compile, forward and backward
 * functions (in the file of its kind). Constant and Shape, and shape arithmetic on constants
 * (Gather, Cast, Concat, Unsqueeze...), are folded by nn before this table is looked at. */
#include <string.h>

#include "train/internal.h"

const char train_supported_ops[] =
    "Conv, BatchNormalization, Relu, LeakyRelu, Clip, Sigmoid, HardSwish, MaxPool, AveragePool, "
    "GlobalAveragePool, Gemm, MatMul, Add, Mul, Concat, Flatten, Reshape, Squeeze, Unsqueeze, "
    "Dropout, Identity, and Constant, Shape, Gather and Cast on constants (default domain); "
    "StochasticDepth (domain " TRAIN_DOMAIN ", the zoo's)";

static const struct {
    const char *op_type;
    const struct train_op *op; /* NULL: folded only */
    const char *domain;        /* NULL: ONNX's ("" or "ai.onnx") */
} ops[] = {
    {"Conv", &train_conv_op},
    {"BatchNormalization", &train_batchnorm_op},
    {"Relu", &train_eltwise_op},
    {"LeakyRelu", &train_eltwise_op},
    {"Clip", &train_eltwise_op},
    {"Sigmoid", &train_eltwise_op},
    {"HardSwish", &train_eltwise_op},
    {"MaxPool", &train_pool_op},
    {"AveragePool", &train_pool_op},
    {"GlobalAveragePool", &train_pool_op},
    {"Gemm", &train_gemm_op},
    {"MatMul", &train_gemm_op},
    {"Add", &train_binary_op},
    {"Mul", &train_binary_op},
    {"Concat", &train_concat_op},
    {"Flatten", &train_view_op},
    {"Reshape", &train_view_op},
    {"Squeeze", &train_view_op},
    {"Unsqueeze", &train_view_op},
    {"Identity", &train_view_op},
    {"Dropout", &train_dropout_op},
    {"Constant", NULL},
    {"Shape", NULL},
    {"Gather", NULL},
    {"Cast", NULL},
    {"StochasticDepth", &train_stochastic_depth_op, TRAIN_DOMAIN},
};

static int op_index(const struct nn_node *node)
{
    bool onnx = !node->domain[0] || !strcmp(node->domain, "ai.onnx");
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(node->op_type, ops[k].op_type) &&
            (ops[k].domain ? !strcmp(node->domain, ops[k].domain) : onnx))
            return (int)k;
    return -1;
}

int train_op_supported(const struct nn_node *node)
{
    return op_index(node) >= 0;
}

const struct train_op *train_op_find(const struct nn_node *node)
{
    int k = op_index(node);
    return k < 0 ? NULL : ops[k].op;
}
