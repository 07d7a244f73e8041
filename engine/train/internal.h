/* What the files of the train area share, private to engine/train (AUGENGINE_TRAIN_INTERNAL):
 * the optimisers' saved state (state.c), the zoo's layers (zoo_layers.c, zoo_archs.c) and the
 * training plan's internals.
 *
 * A training plan wraps an nn plan begun with nn_plan_begin (nn/internal.h): that plan holds
 * the value table (the input, the activations each node makes, the constants nn loads and
 * folds) and the oneDNN engine, stream and primitives; nothing of it is materialised as an
 * inference arena. The training plan keeps, per value id, the value's floats and its gradient,
 * and one step per compiled node with its forward and backward functions (ops.c's table).
 *
 *   plan.c: compiling, the passes, parameters, buffers; grads.c: gradients' lifetimes;
 *   layout.c: blocked activations; memory.c: where activations' floats live
 *   ops.c: the op table; conv.c, batchnorm.c (oneDNN); eltwise.c, pool.c, linear.c, binary.c,
 *   shape.c (host loops)
 *
 * Gradients accumulate: a backward function adds into its inputs' gradients (a value read by
 * several nodes gets each one's share), or writes the first share into a gradient nothing was
 * written into yet (train_grad_share, for ops marked overwrites, so it need not be zeroed); a
 * value whose gradient nobody needs (a constant, or the input without options.input_grad) has
 * none, and backward functions skip it. */
#ifndef AUGENGINE_TRAIN_INTERNAL_H
#define AUGENGINE_TRAIN_INTERNAL_H

#ifndef AUGENGINE_TRAIN_INTERNAL
#error "train/internal.h is private to engine/train; include train/train.h"
#endif

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "nn/internal.h"
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
    float dropout;             /* the spec's: a Dropout before the classifier when > 0 */
    float drop_path;           /* the spec's stochastic_depth: the last block's drop rate */
    int blocks, block;         /* residual blocks in the model, and gated so far */
};

/* The training engine's own ops, in a domain of their own (opset 1), which an exported model
 * has as ONNX ops (train_model_for_inference). */
#define TRAIN_DOMAIN "ai.augserve"

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
/* Global average pooling, flattening, a Dropout when z->dropout > 0, and the Linear module fc
 * (in -> classes) writing the model's output "logits". */
void zoo_head(struct zoo *z, const char *x, const char *fc, int in, int classes);
/* Stochastic depth on the residual branch h of the next block when z->drop_path > 0: a
 * StochasticDepth node "<block>.drop_path" whose ratio decays linearly with depth (train.h). */
void zoo_drop_path(struct zoo *z, char *h, const char *block);

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

/* ---- The training plan (plan.c, grads.c, ops.c and the op files) ---- */

#define TRAIN_MAX_INPUTS 64
#define TRAIN_MAX_PRIMS  12

struct train_step;

/* A node's op: compile reads the node's inputs and makes its output (and the step's state);
 * forward and backward return 0, or -1 with err (a oneDNN failure, out of memory). */
struct train_op {
    int (*compile)(struct train_plan *t, struct train_step *s, struct eng_error *err);
    int (*forward)(struct train_plan *t, struct train_step *s, struct eng_error *err);
    int (*backward)(struct train_plan *t, struct train_step *s, struct eng_error *err);
    /* Whether compile reads its activation inputs in whatever layout they are (layout.c); for
     * other ops train_input gives a blocked input's plain copy. */
    bool keeps_layout;
    /* Whether backward writes its share of every activation input's gradient it is given
     * through train_grad_share (overwriting a gradient nothing was written into yet), so that
     * grads.c need not zero those first. Other ops' backward adds into zeroed gradients. */
    bool overwrites;
};

struct train_step {
    const struct nn_node *node;
    int index; /* the node's index in the graph */
    const struct train_op *op;
    int in[TRAIN_MAX_INPUTS]; /* value ids; -1 where the node has no such input */
    int n_in;
    int out;
    int prim[TRAIN_MAX_PRIMS];      /* nn steps holding this step's primitives; -1: none */
    int64_t q[2 * NN_MAX_RANK + 8]; /* op parameters */
    float f[4];
    /* What the forward keeps for the backward (a mask, argmax positions, batch statistics). */
    float *work;
    size_t work_count;
    /* What its backward does not read (memory.c): its activation inputs' floats, its output's. */
    bool skips_inputs, skips_output;
    /* Whether it applies the Relu that alone reads its output (train_relu_fusable). */
    bool applies_relu;
    /* Blocked inputs this step reads through a plain copy (layout.c). */
    struct train_convert *convert;
    int n_convert;
};

/* A blocked value from and its plain copy to, made by reorder fwd (nn's step index) before the
 * step's forward; after its backward, reorder bwd takes to's gradient back into from's. */
struct train_convert {
    int from, to, fwd, bwd;
};

/* How a node's input is read (train_input). */
enum train_role {
    TRAIN_ACTIVATION, /* a float value; an initializer there is a parameter */
    TRAIN_NO_DECAY,   /* the same, excluded from weight decay (biases, BN's scale and shift) */
    TRAIN_BUFFER,     /* BN's running statistics */
    TRAIN_CONSTANT,   /* read at compile time or as is (shapes, Clip's bounds, Dropout's ratio) */
};

struct train_plan {
    const struct nn_graph *g;
    struct nn_plan *np;
    /* Per value id of np: its floats, its gradient (NULL: none needed) and whether the plan
     * allocated them (aliases share their source's). */
    float **data, **grad;
    unsigned char *owned;
    /* Per root value: its gradient buffer is taken but holds nothing yet (train_grad_share). */
    unsigned char *fresh;
    int *root; /* the value whose floats a view shares (itself for the others) */
    size_t cap;
    /* Activations' gradients live only from the backward step of their last reader to that of
     * their producer, in buffers of this pool (grads.c), so a backward pass holds a few layers'
     * gradients at a time rather than every one. */
    struct train_buffer *pool;
    size_t n_pool;
    /* The floats of the activations the backward pass does not read, shared (memory.c). */
    struct train_slot *slots;
    size_t n_slots;
    struct train_step *steps;
    size_t n_steps;
    struct train_step *compiling; /* the step whose node compiles now */
    struct train_param *params, *buffers;
    size_t n_params, n_buffers;
    int input, output;
    struct nn_tensor_info output_info;
    void *scratch; /* oneDNN's scratchpad, the largest any primitive needs */
    /* Where a backward step has oneDNN write gradients it then adds in (oneDNN overwrites its
     * outputs): one buffer for all, as backward steps run one at a time. */
    float *temp;
    size_t temp_count;
    const char *const *frozen; /* options' */
    size_t n_frozen;
    const char *const *keep; /* options' */
    size_t n_keep;
    uint64_t seed, step;
    int threads;
    bool input_grad;
    bool plain_conv;         /* options' */
    bool direct_convolution; /* options' */
    bool training;           /* the mode of the last forward */
    bool forward_done;       /* a backward has a forward to follow */
};

/* ---- plan.c: values ---- */

/* Whether name is one of names[0..n) (options.frozen, options.keep). */
bool train_listed(const char *const *names, size_t n, const char *name);

/* The value a node's k-th input names, read as role (a parameter or buffer made on first
 * read); -1 with err. */
int train_input(struct train_plan *t, const struct nn_node *node, size_t k, enum train_role role,
                struct eng_error *err);
/* A new activation, plain (md NULL) or in layout md (of the same size), its floats placed once
 * the plan is compiled (memory.c); -1 with err. */
int train_value(struct train_plan *t, const char *name, int rank, const int64_t *dims,
                const dnnl_memory_desc_t *md, struct eng_error *err);
/* A new value viewing src's floats and gradient under another name and shape, plain (md NULL)
 * or in layout md. */
int train_alias(struct train_plan *t, int src, const char *name, int rank, const int64_t *dims,
                const dnnl_memory_desc_t *md, struct eng_error *err);
static inline const struct nn_value *train_val(const struct train_plan *t, int id)
{
    return &t->np->values[id];
}
/* The step's work array of count floats, zeroed; -1 with err. */
int train_work(struct train_step *s, size_t count, struct eng_error *err);
/* At compile time: the step's backward needs count floats of t->temp. */
void train_need_temp(struct train_plan *t, size_t count);

/* ---- memory.c: activations' floats ---- */

struct train_slot {
    float *data;
    size_t count;
    long busy_until; /* the last forward step reading the value that holds it now */
};

/* Once every node is compiled: floats of its own for each activation the backward pass reads
 * (and the output), a shared slot for the others. -1 with err. */
int train_place_values(struct train_plan *t, struct eng_error *err);
void train_slots_free(struct train_plan *t);

/* ---- grads.c: activations' gradients during a backward pass ---- */

struct train_buffer {
    float *data;
    size_t count;
    bool busy;
};

/* Before the first backward step: zeroes the parameters' gradients and gives the output its
 * gradient buffer (zeroed). -1 with err when memory runs out. */
int train_grads_begin(struct train_plan *t, struct eng_error *err);
/* Before step s's backward: 0 when no gradient reaches its output (the step is skipped), 1 once
 * its activation inputs have their (zeroed) gradient buffers, -1 with err. */
int train_grads_before(struct train_plan *t, const struct train_step *s, struct eng_error *err);
/* For a backward step of an op that overwrites: where to write its share of value id's
 * gradient. The gradient itself when nothing was written there yet (it is then no longer fresh;
 * *add false), or else scratch, which the caller adds into t->grad[id] afterwards (*add true;
 * a host loop passes the gradient itself and adds in place). scratch with *add false when id is
 * -1 or has no gradient (oneDNN writes the output all the same). */
float *train_grad_share(struct train_plan *t, int id, float *scratch, bool *add);
/* Zeroes value id's gradient if it is fresh (nothing for -1): for an op that overwrites, on a
 * path where it adds instead. */
void train_grad_zero(struct train_plan *t, int id);
/* Gives value id its gradient buffer (fresh) when it needs one and has none yet; -1 with err. */
int train_grad_take(struct train_plan *t, int id, struct eng_error *err);
/* Gives value id's gradient buffer back (layout.c's plain copies, spent by their conversion). */
void train_grad_release(struct train_plan *t, int id);
/* After step s's backward: its output's gradient is spent (but a view's, which is its input's). */
void train_grads_after(struct train_plan *t, const struct train_step *s);
/* After the pass: every buffer back in the pool. */
void train_grads_end(struct train_plan *t);
void train_grads_free(struct train_plan *t);

/* ---- plan.c: oneDNN ---- */

/* An argument of a primitive: oneDNN's argument index and the data, in the layout the
 * primitive was made for. */
struct train_arg {
    int arg;
    void *data;
};
/* Makes the primitive of pd (consumed) for step s; *at gets its index among nn's steps. */
int train_make_prim_at(struct train_plan *t, struct train_step *s, int *at,
                       dnnl_primitive_desc_t pd, struct eng_error *err);
/* The same as the step's k-th primitive. */
int train_make_prim(struct train_plan *t, struct train_step *s, int k, dnnl_primitive_desc_t pd,
                    struct eng_error *err);
/* A reorder from layout from to layout to, as train_make_prim_at. */
int train_make_reorder(struct train_plan *t, struct train_step *s, int *at,
                       const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                       struct eng_error *err);
/* Runs nn's step at (a primitive of step s) on args (the scratchpad added). */
int train_exec_at(struct train_plan *t, const struct train_step *s, int at,
                  const struct train_arg *args, int n, struct eng_error *err);
/* The same for the step's k-th primitive. */
int train_exec(struct train_plan *t, const struct train_step *s, int k,
               const struct train_arg *args, int n, struct eng_error *err);
/* dst[i] += src[i] (TRAIN_FOR's threads) */
void train_accumulate(float *dst, const float *src, size_t n);

/* The host ops' element loops: `TRAIN_FOR(i, n) body;` runs body for i in [0, n) in static chunks
 * over the plan's threads (train_plan_forward and _backward set OpenMP's count to them), as a
 * loop the compiler vectorises. Below TRAIN_PARALLEL_MIN elements waking the other threads costs
 * more than it saves. Each element must be computed alone (no reduction), so that the result is
 * the same on any thread count. */
#define TRAIN_PARALLEL_MIN 16384
#define TRAIN_PRAGMA(x)    _Pragma(#x)
#define TRAIN_FOR(i, n)                                                                            \
    TRAIN_PRAGMA(omp parallel for simd schedule(static) if (parallel : (n) >= TRAIN_PARALLEL_MIN)) \
    for (size_t i = 0; i < (n); i++)

/* ---- layout.c: blocked activations ---- */

/* The layout a new activation of that shape made by a Conv takes: nChw16c (blocked) for rank 4
 * with channels a multiple of 16 (so it has as many floats as plain), unless options.plain_conv
 * or the value is the graph's output, which the caller reads plain. Returns whether blocked,
 * with its descriptor in *md. */
bool train_blocked_md(const struct train_plan *t, const char *name, int rank, const int64_t *dims,
                      dnnl_memory_desc_t *md);
/* Whether value id is blocked. */
bool train_is_blocked(const struct train_plan *t, int id);
/* Value id read by step s in the plain layout: id itself when it is plain, else its plain copy
 * (made and converted back by s, and shared by the readers after s); -1 with err. */
int train_plain(struct train_plan *t, struct train_step *s, int id, struct eng_error *err);
/* An op's output named name of the shape and layout of s->in[k] (elementwise ops): when that
 * is blocked and name is the graph's output, s->in[k] is first replaced by its plain copy. */
int train_value_like(struct train_plan *t, struct train_step *s, int k, const char *name,
                     struct eng_error *err);
/* Step s's plain copies: made before its forward, their gradients taken back after its
 * backward. */
int train_convert_forward(struct train_plan *t, const struct train_step *s, struct eng_error *err);
int train_convert_backward(struct train_plan *t, const struct train_step *s, struct eng_error *err);

/* ---- eltwise.c: a Relu its input's producer applies ---- */

/* Whether node's output has one reader, a Relu, and may hold that Relu's output instead: not
 * when it is kept (options.keep reads it before the Relu, as the kink replay test does) or
 * either value is the graph's output. A producer that then applies the Relu sets its step's
 * applies_relu. */
bool train_relu_fusable(const struct train_plan *t, const struct nn_node *node);
/* Whether value id's producer applies its reader's Relu: that Relu's output is a view of it. */
bool train_relu_applied(const struct train_plan *t, int id);

/* ---- ops.c ---- */

const struct train_op *train_op_find(const struct nn_node *node);
int train_op_supported(const struct nn_node *node);
extern const char train_supported_ops[];

/* The ops' tables, one per file. */
extern const struct train_op train_conv_op, train_batchnorm_op, train_pool_op, train_gemm_op,
    train_binary_op, train_concat_op, train_view_op, train_eltwise_op, train_dropout_op,
    train_stochastic_depth_op;

#endif
