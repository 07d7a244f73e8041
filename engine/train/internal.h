/* engine/train's shared internals, private to the augengine_train library.
 *
 * The zoo's layers (zoo_layers.c), used by its architectures (zoo_archs.c): each adds one module
 * of a PyTorch model to a graph builder, its parameters named <module path>.<weight|bias|...> as
 * in the module's state_dict and drawn with the law the architecture's reference code uses. */
#ifndef AUGSERVE_ENGINE_TRAIN_INTERNAL_H
#define AUGSERVE_ENGINE_TRAIN_INTERNAL_H

#ifndef AUGENGINE_TRAIN_INTERNAL
#error "train/internal.h is private to engine/train; include train/train.h"
#endif

#include "train/train.h"

/* ---- zoo_layers.c ---- */

#define ZOO_NAME 128 /* a module path or value name, with room to spare */

/* Weight laws, as torch.nn.init draws them. */
enum zoo_init {
    ZOO_TORCH_DEFAULT,  /* kaiming_uniform_(a=sqrt 5): U(-1/sqrt fan_in, 1/sqrt fan_in) */
    ZOO_NORMAL_FAN_IN,  /* kaiming_normal_(mode fan_in, relu): N(0, 2/fan_in) */
    ZOO_NORMAL_FAN_OUT, /* kaiming_normal_(mode fan_out, relu): N(0, 2/fan_out) */
    ZOO_XAVIER_NORMAL,  /* xavier_normal_: N(0, 2/(fan_in + fan_out)) */
};

/* A model being built. */
struct zoo {
    struct nn_builder *b;
    uint64_t seed;
    uint32_t params;           /* initializers drawn so far: the next one's Philox stream */
    enum zoo_init conv_init;   /* every Conv2d's weight */
    enum zoo_init linear_init; /* the classifier's weight */
    bool linear_bias_zero;     /* its bias 0, else PyTorch's default U(+-1/sqrt fan_in) */
    float bn_momentum;         /* ONNX's: running = momentum * running + (1 - momentum) * batch */
    float leaky;               /* activations: 0 for Relu, else LeakyRelu's alpha */
};

/* "<prefix>.<leaf>" into out (ZOO_NAME bytes): a module's path, a parameter's state_dict key. */
void zoo_path(char *out, const char *prefix, const char *leaf);

/* Each writes its output value's name into y (ZOO_NAME bytes; y may be x). module is the
 * module's path ("layer1.0.conv1"), which also names the node and its output value. */
void zoo_conv(struct zoo *z, const char *x, char *y, const char *module, int in, int out, int k,
              int stride, int pad);
void zoo_bn(struct zoo *z, const char *x, char *y, const char *module, int channels);
/* Relu, or LeakyRelu when z->leaky; module names the node only. */
void zoo_act(struct zoo *z, const char *x, char *y, const char *module);
void zoo_add(struct zoo *z, const char *a, const char *b, char *y, const char *module);
void zoo_maxpool(struct zoo *z, const char *x, char *y, const char *module, int k, int stride,
                 int pad);
/* Global average pooling, flattening and the Linear module fc (in -> classes) writing the
 * model's output "logits". */
void zoo_head(struct zoo *z, const char *x, const char *fc, int in, int classes);

/* ---- zoo_archs.c ---- */

/* Adds spec's layers between the input "input" and the output "logits". */
void zoo_small_cnn(struct zoo *z, const struct train_zoo_spec *spec);
void zoo_resnet_cifar(struct zoo *z, const struct train_zoo_spec *spec);
void zoo_wrn(struct zoo *z, const struct train_zoo_spec *spec);
void zoo_resnet(struct zoo *z, const struct train_zoo_spec *spec);

#endif
