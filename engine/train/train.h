/* train: training models on the same graph IR the executor runs (nn/nn.h). This area owns the
 * training plan (forward in training mode, backward in reverse), the optimisers and schedules,
 * the losses, and the model zoo. It links nn and data and nothing above them; it never prints
 * and returns errors as values (core/error.h). Symbols are prefixed train_.
 *
 * Each part has its own section below. A model, whether it comes from the zoo, a repository
 * ONNX file or a checkpoint, is a struct nn_graph: its float initializers are the parameters
 * (and BatchNormalization's running statistics, its inputs 3 and 4, the buffers), named as the
 * PyTorch module's state_dict keys for zoo models, so weights move both ways by name. A trained
 * model is written by making a graph with the new values (nn_graph_with_initializers) and
 * nn_graph_write. */
#ifndef AUGSERVE_ENGINE_TRAIN_H
#define AUGSERVE_ENGINE_TRAIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/nn.h"

/* ---- Model zoo ----
 *
 * Architectures built as graphs (opset 13: Conv, BatchNormalization, Relu or LeakyRelu, Add,
 * MaxPool, GlobalAveragePool, Flatten, Gemm) and initialised from a seed, each as its reference
 * PyTorch code initialises it, with that code's parameter names:
 *
 *   arch               reference                          initialisation
 *   small-cnn          this zoo (below)                   PyTorch's defaults: Conv2d and Linear
 *                                                         weights kaiming_uniform_(a=sqrt 5),
 *                                                         i.e. U(+-1/sqrt fan_in), Linear bias
 *                                                         U(+-1/sqrt fan_in)
 *   resnet-20/32/44/   He et al. 2016 (CIFAR), as          Conv2d and Linear weights
 *   56/110             akamaster/pytorch_resnet_cifar10   kaiming_normal_ (fan_in, gain sqrt 2),
 *                      with option B shortcuts            Linear bias PyTorch's default
 *   wrn-D-K            Zagoruyko and Komodakis 2016, as   Conv2d N(0, 2/fan_out); Linear weight
 *                      xternalz/WideResNet-pytorch        PyTorch's default, bias 0
 *   wrn-D-K, variant   FixMatch's, as kekmodel/FixMatch-  Conv2d kaiming_normal_ fan_out (gain
 *   "fixmatch"         pytorch: LeakyReLU 0.1, BN         sqrt 2); Linear xavier_normal_, bias 0
 *                      momentum 0.001, the first block
 *                      activated before its shortcut
 *                      (its stages 2 and 3 compute a bn1
 *                      they never use: left out here)
 *   resnet-18/34/50/   torchvision.models.resnet*         Conv2d kaiming_normal_ fan_out (gain
 *   101/152                                               sqrt 2); Linear PyTorch's default
 *
 * BatchNorm everywhere: weight 1, bias 0, running mean 0, variance 1, epsilon 1e-5, and ONNX's
 * momentum 1 - PyTorch's (0.9, or 0.999 for FixMatch's). No convolution has a bias (a BatchNorm
 * follows each).
 *
 * ResNet-20 and kin use option B (a 1x1 strided convolution and BatchNorm where the shape
 * changes; parameters shortcut.0.weight, shortcut.1.*), not the paper's option A (subsampling
 * and zero channels): option A needs strided Slice and channel Pad, which have no backward pass
 * in this engine, and B is the reference code's other option. It adds 2,752 parameters to
 * ResNet-20 (272,474 against 269,722; both "0.27M").
 *
 * small-cnn: conv1 (3x3, 32) bn1 relu1 pool1 (max 2x2) conv2 (64) bn2 relu2 pool2 conv3 (128) bn3
 * relu3, global average pool, fc.
 *
 * Every model has one input "input" [N, channels, size, size] (N symbolic) and one output
 * "logits" [N, classes]. Each initializer draws from its own Philox stream (seed, its index), so
 * the same seed gives the same model on any machine.
 *
 * A train job reads its "model" object with train_zoo_parse when it is submitted (a refusal is
 * the job's 422), builds the graph with train_zoo_build from the job's seed when it starts,
 * compiles its training plan from that graph, and at each checkpoint and at the end makes a
 * graph of the current values (nn_graph_with_initializers) and writes it (nn_graph_write): the
 * model.onnx it registers, which PyTorch loads by the same names. */

enum train_zoo_family {
    TRAIN_ZOO_SMALL_CNN,
    TRAIN_ZOO_RESNET_CIFAR, /* resnet-20, -32, -44, -56, -110 */
    TRAIN_ZOO_WRN,
    TRAIN_ZOO_RESNET, /* torchvision's resnet-18, -34, -50, -101, -152 */
};

/* A zoo entry with its arguments, as a train job's "model" names it:
 * {"arch": "wrn-28-2", "classes": 10, "variant": "fixmatch"}. */
struct train_zoo_spec {
    char arch[32]; /* as given, e.g. "wrn-28-2" */
    enum train_zoo_family family;
    int depth;     /* resnet-D, wrn-D-K */
    int width;     /* wrn's K; 1 otherwise */
    bool fixmatch; /* wrn: FixMatch's variant */
    int classes;   /* 1..100000 */
    int channels;  /* input channels, 1..64 (default 3) */
    int size;      /* input side in pixels, 8..4096 (default 32; 224 for torchvision's) */
};

/* Reads a model object: "arch" (required), "classes" (required), "variant" ("standard" or
 * "fixmatch"; wrn only), "channels", "size". Unknown archs, members and values out of range are
 * ENG_INVALID naming them and what is accepted. */
int train_zoo_parse(const json_t *model, struct train_zoo_spec *spec, struct eng_error *err);
/* The model spec describes, initialised from seed. ENG_NO_MEMORY; ENG_INVALID for a spec that
 * train_zoo_parse would refuse. */
struct nn_graph *train_zoo_build(const struct train_zoo_spec *spec, uint64_t seed,
                                 struct eng_error *err);
/* The archs train_zoo_parse accepts, for error messages and listings. */
extern const char train_zoo_archs[];

/* The number of trainable parameters: the elements of g's float initializers, except those read
 * only as BatchNormalization's running mean and variance (PyTorch's buffers), so the count is
 * sum(p.numel() for p in module.parameters()) (less, for FixMatch's WRN, the unused bn1s'
 * 2 x (16K + 32K)). */
size_t train_model_parameter_count(const struct nn_graph *g);

#endif
