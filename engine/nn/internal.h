/* The executor's internals, private to engine/nn (the augengine_nn library): a plan's data and the
 * API that builds one. Compilation calls flow one way, each file calling only those to its right:
 *
 *   plan.c -> ops.c, fold.c -> shape.c -> build.c -> node.c -> ir.c
 *
 * plan.c compiles a graph node by node (and runs the plan); each node is folded by fold.c (shape
 * arithmetic on constants) or compiled by ops.c (one compile function per ONNX op), which never
 * call each other. Below them are the helpers, a general API for building a plan, which
 * engine/train's training plans use too (with nn_plan_begin, nn_fold_constant and nn_windows):
 * shape.c (the output shapes of the shape ops), build.c (values, slots, steps, primitives, layouts)
 * and node.c (attributes, and errors naming a node). ir.c is the graph IR.
 *
 * How a plan is built. Nodes compile in the model's (topological) order. Each value is either a
 * constant, held by the plan (initializers, Constant nodes, and the integer tensors of shape
 * arithmetic, which static shapes make known at compile time), or an activation, which lives in
 * a slot of one arena in whatever layout the primitive that wrote it chose: convolutions pick
 * oneDNN's blocked layouts, and the ops after them keep those, so reorders happen only where an
 * op needs the plain row-major form (Flatten, Gemm, the model's outputs). A slot is reused once
 * every value in it has been read for the last time, which keeps a plan's memory near the
 * largest pair of live activations rather than their sum. Memory objects are created only after
 * the arena's size is known. */
#ifndef AUGSERVE_ENGINE_NN_INTERNAL_H
#define AUGSERVE_ENGINE_NN_INTERNAL_H

/* engine/train builds its training plans on this API too (the one IR, and one set of helpers
 * for values, constants, folding and shapes), so its build may include this header as well. */
#if !defined(AUGENGINE_NN_INTERNAL) && !defined(AUGENGINE_TRAIN_INTERNAL)
#error "nn/internal.h is private to engine/nn and engine/train; include nn/nn.h"
#endif

#include <limits.h>
#include <oneapi/dnnl/dnnl.h>

#include "nn/nn.h"

/* last_use of a value that must survive the run: a model output or a tap. */
#define NN_PINNED INT_MAX

struct nn_value {
    const char *name;
    int rank;
    int64_t dims[NN_MAX_RANK];
    size_t count;
    /* Constants: dtype NN_FLOAT or NN_INT64, data owned by the plan when owned is set, else the
     * graph's initializer. */
    int is_const;
    enum nn_dtype dtype;
    void *data;
    int owned;
    /* Activations (float): the arena slot and the layout. */
    int slot;
    dnnl_memory_desc_t md;
    int plain_copy; /* a plain-layout copy already made for an earlier reader; -1: none */
    int last_use;   /* index of the last node that reads the value, or NN_PINNED */
};

/* An argument of a step, resolved to a oneDNN memory object once the arena exists. md may view
 * the value's bytes differently from nn_value.md (a transposed Gemm operand, grouped weights). */
struct nn_arg {
    int arg;
    int value;
    dnnl_memory_desc_t md;
};

struct nn_step;
/* 0, or -1 when oneDNN failed (out of memory). */
typedef int (*nn_host_fn)(const struct nn_plan *p, const struct nn_step *s);

struct nn_step {
    const struct nn_node *node;
    dnnl_primitive_t prim; /* NULL for a step run by host code */
    nn_host_fn host;
    struct nn_arg *args;
    int nargs;
    dnnl_exec_arg_t *exec; /* nargs (+1 for the scratchpad) entries, filled after planning */
    int nexec;
    dnnl_memory_desc_t scratch_md;
    size_t scratch_size; /* 0: no scratchpad */
    /* Host steps' operands and parameters. */
    int in, out;
    int64_t params[2 * NN_MAX_RANK + 4];
    float fvalue;
};

struct nn_slot {
    size_t size;
    int last_use; /* the latest last_use of the values placed in it */
    int busy;
    size_t offset; /* in the arena, set after planning */
};

struct nn_plan {
    const struct nn_graph *g;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int threads;
    bool direct_convolution; /* nn_plan_options' */
    struct nn_value *values;
    size_t n_values, cap_values;
    struct nn_step *steps;
    size_t n_steps, cap_steps;
    struct nn_slot *slots;
    size_t n_slots, cap_slots;
    char *arena;
    size_t n_inputs, n_outputs; /* n_outputs counts the taps too */
    int *input_ids, *output_ids;
    const char *const *output_names;
    unsigned char *fused; /* per node: compiled as part of an earlier node's primitive */
    int node;             /* the node compiling now */
    /* Every primitive uses dnnl_scratchpad_mode_user and gets this buffer (the largest any step
     * needs) as DNNL_ARG_SCRATCHPAD, so nothing of a run lives in oneDNN's per-thread state. */
    void *scratch;
    size_t scratch_size;
    size_t max_bytes; /* nn_plan_options' */
    double flops;     /* nn_plan_flops: the op compilers add theirs */
};

/* The run loop's helpers, inline there as they were when plan.c defined them. */

/* Where v's elements are during a run: its slot of the arena, or a constant's own data. */
static inline void *nn_value_bytes(const struct nn_plan *p, const struct nn_value *v)
{
    return v->slot >= 0 ? p->arena + p->slots[v->slot].offset : v->data;
}

/* 0 when oneDNN's call succeeded, else -1 with err naming the call and the node (if any). */
static inline int nn_dnnl_check(dnnl_status_t st, const char *call, const struct nn_node *node,
                                struct eng_error *err)
{
    if (st == dnnl_success) return 0;
    return eng_fail(err, ENG_INTERNAL, "node '%s' (%s): %s failed with oneDNN status %d",
                    node ? node->name : "", node ? node->op_type : "-", call, (int)st);
}

/* The product of the dims; SIZE_MAX when one is negative or it overflows. */
static inline size_t nn_dims_count(int rank, const int64_t *dims)
{
    size_t count = 1;
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0 || __builtin_mul_overflow(count, (size_t)dims[d], &count)) return SIZE_MAX;
    return count;
}

/* ---- node.c: what a node says ---- */

/* Errors, naming the node. */
int nn_unsupported(const struct nn_node *node, const char *what, struct eng_error *err);
int nn_invalid(const struct nn_node *node, const char *what, struct eng_error *err);

int64_t nn_attr_int(const struct nn_node *node, const char *name, int64_t dflt);
float nn_attr_float(const struct nn_node *node, const char *name, float dflt);
const int64_t *nn_attr_ints(const struct nn_node *node, const char *name, size_t *n);
/* Whether the node has a non-empty k-th input. */
int nn_has_input(const struct nn_node *node, size_t k);
/* axis in [-rank, rank) (or [-rank, rank] when inclusive) made non-negative; -1 with err. */
int nn_norm_axis(const struct nn_node *node, int64_t axis, int rank, int inclusive,
                 struct eng_error *err);

/* ---- build.c: building a plan ---- */

/* Values and slots. */
/* The latest value of that name (activation or constant), or -1. */
int nn_find_value(const struct nn_plan *p, const char *name);
/* A new activation named name with layout md (NULL: plain) in a fresh slot; -1 with err. */
int nn_activation(struct nn_plan *p, const char *name, int rank, const int64_t *dims,
                  const dnnl_memory_desc_t *md, struct eng_error *err);
/* A new value sharing value src's slot (or constant data) under another name, shape and layout
 * (md NULL: plain). The caller makes sure the bytes mean the same thing. */
int nn_alias(struct nn_plan *p, int src, const char *name, int rank, const int64_t *dims,
             const dnnl_memory_desc_t *md, struct eng_error *err);
/* Where value id's elements are during a run (host steps read and write through this). */
float *nn_value_data(const struct nn_plan *p, int id);
/* The node index of the only reader of value name when there is exactly one and the value is
 * not pinned, so the producer can absorb that reader; -1 otherwise. */
int nn_sole_reader(const struct nn_plan *p, const char *name);
/* last_use for a value of that name made now. */
int nn_last_use(const struct nn_plan *p, const char *name);
/* Frees the slots whose values have all been read for the last time by node `node`. */
void nn_release_slots(struct nn_plan *p, int node);

/* Constants and inputs. */
/* A new constant; data is adopted (freed with the plan) when owned. */
int nn_constant(struct nn_plan *p, const char *name, enum nn_dtype dtype, int rank,
                const int64_t *dims, void *data, int owned, struct eng_error *err);
/* A new constant holding a copy of data (float or int64). */
int nn_constant_copy(struct nn_plan *p, const char *name, enum nn_dtype dtype, int rank,
                     const int64_t *dims, const void *data, struct eng_error *err);
/* The value of a Constant node, as a new constant named after its output; -1 with err. */
int nn_constant_node(struct nn_plan *p, const struct nn_node *node, struct eng_error *err);
/* The value a node's k-th input names (loading an initializer, or a later Constant node that a
 * fused reader needs, on first use); -1 with err. */
int nn_input(struct nn_plan *p, const struct nn_node *node, size_t k, struct eng_error *err);
/* nn_input into *id: 1 when it is a constant, 0 when it is an activation, -1 with err. */
int nn_const_input(struct nn_plan *p, const struct nn_node *node, size_t k, int *id,
                   struct eng_error *err);

/* Steps and primitives. */
/* A new step for the node compiling now; NULL with err. The pointer is valid until the next
 * nn_add_step call. */
struct nn_step *nn_add_step(struct nn_plan *p, struct eng_error *err);
int nn_add_arg(struct nn_step *s, int arg, int value, const dnnl_memory_desc_t *md,
               struct eng_error *err);
int nn_user_scratchpad_attr(const_dnnl_primitive_attr_t attr, dnnl_primitive_attr_t *out,
                            const struct nn_node *node, struct eng_error *err);
/* The primitive descriptor for op_desc, attr, to query layouts before committing to them;
 * the caller passes it to nn_make_prim or destroys it. */
int nn_prim_desc(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                 const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd,
                 struct eng_error *err);
/* nn_prim_desc for a backward primitive, which oneDNN builds against its forward one (hint). */
int nn_prim_desc_hint(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                      const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                      dnnl_primitive_desc_t *pd, struct eng_error *err);
/* nn_prim_desc for an alternative that oneDNN may not have: 1 with *pd made, 0 when oneDNN has no
 * implementation of it (err untouched), -1 with err set. */
int nn_try_prim_desc(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                     const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd,
                     struct eng_error *err);
/* The same for a backward primitive (hint: its forward one). */
int nn_try_prim_desc_hint(struct nn_plan *p, const struct nn_node *node,
                          const_dnnl_op_desc_t op_desc, const_dnnl_primitive_attr_t attr,
                          const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                          struct eng_error *err);
/* Creates s's primitive from an op descriptor with attributes attr (NULL: defaults), or from
 * the primitive descriptor pd (made with nn_user_scratchpad_attr's attributes) when op_desc is
 * NULL, consuming pd. */
int nn_make_prim(struct nn_plan *p, struct nn_step *s, const_dnnl_op_desc_t op_desc,
                 const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t pd, struct eng_error *err);

/* Layouts. */
/* A dense row-major descriptor; rank 0 is described as one element. */
int nn_plain_md(dnnl_memory_desc_t *md, int rank, const int64_t *dims, const struct nn_node *node,
                struct eng_error *err);
/* A descriptor leaving the layout to the primitive it is given to (format `any`). */
int nn_any_md(dnnl_memory_desc_t *md, int rank, const int64_t *dims, const struct nn_node *node,
              struct eng_error *err);
int nn_is_plain(const struct nn_value *v);
/* Value id in the layout want: id itself when it already is, else a reordered copy (activations
 * get a reorder step; constants are reordered now). */
int nn_to_layout(struct nn_plan *p, int id, const dnnl_memory_desc_t *want, struct eng_error *err);
/* Value id in the plain row-major layout (a cached copy when it is not). */
int nn_to_plain(struct nn_plan *p, int id, struct eng_error *err);
/* Reorders src (layout from) into dst (layout to) at once, on a primitive made for it and
 * destroyed after: for a one-off copy (a constant at compile time, a value read for a caller),
 * not a step of the plan. what names it in a oneDNN failure (ENG_INTERNAL). */
int nn_reorder_now(const struct nn_plan *p, const dnnl_memory_desc_t *from, const void *src,
                   const dnnl_memory_desc_t *to, void *dst, const char *what,
                   const struct nn_node *node, struct eng_error *err);

/* ---- shape.c: the output shapes of the shape ops ---- */

/* The output shape of Reshape, Flatten, Squeeze or Unsqueeze applied to x (their shape and axes
 * inputs must be constants). */
int nn_reshape_dims(struct nn_plan *p, const struct nn_node *node, const struct nn_value *x,
                    int *rank, int64_t *out, struct eng_error *err);
int nn_squeeze_dims(struct nn_plan *p, const struct nn_node *node, const struct nn_value *x,
                    int *rank, int64_t *out, struct eng_error *err);
/* Gather's output shape and normalised axis (indices must be an int64 constant, checked in
 * range), and the copy itself, elem bytes per element. */
int nn_gather_dims(const struct nn_plan *p, const struct nn_node *node, const struct nn_value *d,
                   const struct nn_value *ix, int *axis, int *rank, int64_t *dims,
                   struct eng_error *err);
void nn_gather_rows(const void *data, size_t elem, const struct nn_value *d, int axis,
                    const struct nn_value *ix, void *out);
/* Concat's output shape and normalised axis over the values ids[0..n). */
int nn_concat_dims(const struct nn_plan *p, const struct nn_node *node, const int *ids, int n,
                   int *axis, int64_t *out, struct eng_error *err);
/* v as int64 in *out: 0, or -1 when v is NaN or past int64's range, where C's conversion is
 * undefined (a model's float constants are the client's to choose). */
int nn_to_int64(double v, int64_t *out);

/* An activation as oneDNN eltwise operations applied in turn (HardSigmoid takes two). */
struct nn_eltwise {
    int n;
    dnnl_alg_kind_t alg[2];
    float alpha[2], beta[2];
};
/* 1 with *e filled when node is an activation (Relu, LeakyRelu, Sigmoid, HardSwish, HardSigmoid,
 * Clip) the executor maps to eltwise operations, 0 when it is not one, -1 with err. The training
 * plan makes its activations' forward primitives from it too. */
int nn_activation_of(struct nn_plan *p, const struct nn_node *node, struct nn_eltwise *e,
                     struct eng_error *err);

/* ---- ops.c and fold.c, for plan.c ---- */

/* The spatial windows of a Conv or pooling node over input x (strides, dilations, pads,
 * auto_pad, ceil_mode) for kernel k: the output's spatial dims (out_dims[2...]) and oneDNN's
 * strides, zero-based dilations and paddings. */
int nn_windows(const struct nn_node *node, const struct nn_value *x, const int64_t *k,
               int ceil_mode, int64_t *out_dims, dnnl_dims_t strides, dnnl_dims_t dil,
               dnnl_dims_t pl, dnnl_dims_t pr, struct eng_error *err);

/* ops.c: compiles node p->node, which has a named first output (and the nodes it fuses, marking
 * them in p->fused). */
int nn_compile_node(struct nn_plan *p, struct eng_error *err);
/* Whether the executor handles this node's op (checked for every node before compiling). */
int nn_op_supported(const struct nn_node *node);
extern const char nn_supported_ops[];

/* A Clip bound: the attribute attr before opset 11, the optional constant input k from then on
 * (dflt when neither is given). */
int nn_clip_bound(struct nn_plan *p, const struct nn_node *node, size_t k, const char *attr,
                  float dflt, float *out, struct eng_error *err);

/* ---- plan.c, for a plan built node by node elsewhere (engine/train) ---- */

/* A plan holding only its graph inputs (as activations) and options, before any node compiles:
 * values, constants, folding and the shape helpers work on it. Freed with nn_plan_free. */
struct nn_plan *nn_plan_begin(const struct nn_graph *g, const struct nn_tensor_info *input_shapes,
                              size_t n_inputs, const struct nn_plan_options *options,
                              struct eng_error *err);
/* Refuses a graph with any node that supported() rejects: ENG_UNSUPPORTED naming each such op
 * type once and listing supported_list. */
int nn_refuse_unsupported(const struct nn_graph *g, int (*supported)(const struct nn_node *),
                          const char *supported_list, struct eng_error *err);
/* A node must name its first output (folding and compiling name their result after it). */
int nn_check_output(const struct nn_node *node, struct eng_error *err);
/* OpenMP's thread count for the calling thread's next parallel regions (0: unchanged). */
void nn_set_threads(int threads);

/* fold.c: the node computes constants from constants (shape arithmetic); returns 1 when it did
 * (its outputs are now constants), 0 when the node has a runtime input and must be compiled, -1
 * with err. */
int nn_fold_constant(struct nn_plan *p, const struct nn_node *node, struct eng_error *err);

#endif
