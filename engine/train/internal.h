/* What the files of the train area share. Private to engine/train (AUGENGINE_TRAIN_INTERNAL). */
#ifndef AUGENGINE_TRAIN_INTERNAL_H
#define AUGENGINE_TRAIN_INTERNAL_H

#ifndef AUGENGINE_TRAIN_INTERNAL
#error "train/internal.h is private to engine/train; include train/train.h"
#endif

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "train/train.h"

/* ---- Saved state (state.c): the bytes of train_optim_save and train_ema_save ---------------- */
/* Little-endian: "AUGT", u32 version, a 4-byte tag naming what saved it ("sgd ", "admw", "ema "),
 * u32 tensors; then per tensor u32 name length, the name, u64 count, u64 steps, u32 buffers, and
 * buffers x count float32 bits. A reader checks everything against the tensors it expects, so
 * bytes from another model or optimiser are refused rather than misread. */
#define STATE_VERSION 1

/* One tensor's state: count floats in each of its nbuf buffers. */
struct state_tensor {
    const char *name;
    size_t count;
    uint64_t steps;
    unsigned nbuf;
    float *buf[2];
};

/* The bytes of tensors[0..n) under tag into *data (malloc'd) and *size. */
int state_save(const char tag[4], const struct state_tensor *tensors, size_t n,
               unsigned char **data, size_t *size, struct eng_error *err);

/* Reads bytes saved under tag over tensors[0..n), whose names, counts and nbuf they must match:
 * every check first, then the steps and buffers are written, so a refusal changes nothing. */
int state_load(const char tag[4], struct state_tensor *tensors, size_t n, const void *data,
               size_t size, struct eng_error *err);

/* The tensors of an optimiser or an EMA: one per a[0..na) then b[0..nb) (b may be NULL), each
 * with a copy of the name, the count, and nbuf zeroed buffers of count floats. NULL on
 * ENG_NO_MEMORY; state_free_tensors(tensors, na + nb) frees them. */
struct state_tensor *state_new_tensors(const struct train_param *a, size_t na,
                                       const struct train_param *b, size_t nb, unsigned nbuf,
                                       struct eng_error *err);
void state_free_tensors(struct state_tensor *tensors, size_t n);

/* Checks that a[0..na) then b[0..nb) are the tensors[0..n) they were made from (na + nb == n and
 * every count equal): ENG_INVALID naming the first that is not, what naming the caller. */
int state_check_params(const char *what, const struct state_tensor *tensors, size_t n,
                       const struct train_param *a, size_t na, const struct train_param *b,
                       size_t nb, struct eng_error *err);

/* ---- zoo_layers.c ---- */
/* The zoo's layers, used by its architectures (zoo_archs.c): each adds one module of a PyTorch
 * model to a graph builder, its parameters named <module path>.<weight|bias|...> as in the
 * module's state_dict and drawn with the law the architecture's reference code uses. */

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

/* One value of law from r, the fans as torch.nn.init computes them. */
float zoo_draw(struct rng *r, enum zoo_init law, double fan_in, double fan_out);

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

/* ---- zoo.c ---- */

/* Whether t is a buffer, not a parameter: read by some BatchNormalization as its running mean or
 * variance, and by nothing else (an unread initializer is a parameter, as an unused module's are
 * in PyTorch). */
bool zoo_is_buffer(const struct nn_graph *g, const struct nn_tensor *t);

/* ---- zoo_archs.c ---- */

/* Adds spec's layers between the input "input" and the output "logits". */
void zoo_small_cnn(struct zoo *z, const struct train_zoo_spec *spec);
void zoo_resnet_cifar(struct zoo *z, const struct train_zoo_spec *spec);
void zoo_wrn(struct zoo *z, const struct train_zoo_spec *spec);
void zoo_resnet(struct zoo *z, const struct train_zoo_spec *spec);

#endif
