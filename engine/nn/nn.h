/* nn: neural networks on the CPU. This area owns the graph IR (tensors: name, shape, dtype, data;
 * nodes: op type, inputs, outputs, attributes), reading and writing it as ONNX, and the executor,
 * which compiles a graph for fixed input shapes into a plan of oneDNN primitives (and a few host
 * steps) and runs that plan.
 *
 * Memory. A graph is immutable once read; every pointer an accessor returns is owned by the graph
 * and lives as long as it. A plan points into its graph (names, initializers used in place), so
 * the graph must outlive it; everything else a plan owns: the constants it made, one arena for all
 * activations, one oneDNN scratchpad, its primitives. A plan caches what compiling decided for its
 * shapes (folded shape arithmetic and BatchNormalization, fused activations, reordered weights,
 * layouts): other input shapes need another plan.
 *
 * Threads. A plan keeps no per-thread state: it runs and is freed on any thread, but its runs
 * share its buffers and must not overlap. Different plans, even of one graph, may run at once.
 *
 * Refusals. Compiling checks every node first and refuses a model with any op it does not handle
 * (ENG_UNSUPPORTED, naming them all), then shapes that do not fit (ENG_INVALID) and activations
 * past NN_MAX_BYTES (ENG_TOO_LARGE); a run of a plan fails only when memory or oneDNN does.
 *
 * Compilation flows one way: the plan (plan.c) -> op compilers (ops.c), folding (fold.c) ->
 * helpers (shape.c, build.c, node.c) -> the IR (ir.c). nn/internal.h, private to this library
 * and to engine/train (whose training plans are built with the same helpers), holds the plan's
 * structures and the helpers' API. A graph is read (ir.c), or built or copied for editing in
 * code (builder.c), into the one structure nn/graph_internal.h declares. */
#ifndef AUGSERVE_ENGINE_NN_H
#define AUGSERVE_ENGINE_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define NN_MAX_RANK  8
#define NN_MAX_NODES 100000
#define NN_MAX_BYTES ((size_t)2 << 30) /* protobuf's own limit on a message */

/* Element types, numbered as ONNX's TensorProto.DataType. */
enum nn_dtype {
    NN_UNDEFINED = 0,
    NN_FLOAT = 1,
    NN_UINT8 = 2,
    NN_INT8 = 3,
    NN_INT32 = 6,
    NN_INT64 = 7,
    NN_BOOL = 9,
    NN_DOUBLE = 11,
};

/* Bytes per element; 0 for NN_UNDEFINED and any type this IR does not hold. */
size_t nn_dtype_size(enum nn_dtype dtype);

struct nn_tensor_info {
    const char *name;
    enum nn_dtype dtype;       /* NN_UNDEFINED when the model does not say */
    int rank;                  /* -1 when the shape is unknown */
    int64_t dims[NN_MAX_RANK]; /* -1 for a symbolic or unknown dimension */
};

/* A constant: an initializer or a tensor attribute. */
struct nn_tensor {
    struct nn_tensor_info info; /* rank >= 0, every dim >= 0 */
    size_t count;               /* elements: the product of the dims (1 for a scalar) */
    const void *data; /* count elements of info.dtype, contiguous, host order; NULL if count is 0 */
};

/* Attribute kinds, numbered as ONNX's AttributeProto.AttributeType. */
enum nn_attr_type {
    NN_ATTR_FLOAT = 1,
    NN_ATTR_INT = 2,
    NN_ATTR_STRING = 3,
    NN_ATTR_TENSOR = 4,
    NN_ATTR_FLOATS = 6,
    NN_ATTR_INTS = 7,
    NN_ATTR_STRINGS = 8,
};

struct nn_attr {
    const char *name;
    enum nn_attr_type type;
    float f;
    int64_t i;
    const char *s;      /* NUL-terminated */
    struct nn_tensor t; /* NN_ATTR_TENSOR */
    size_t count;       /* elements of floats, ints or strings */
    const float *floats;
    const int64_t *ints;
    const char *const *strings;
};

struct nn_node {
    const char *name; /* "" when the model gives none */
    const char *op_type;
    const char *domain; /* "" for the default ONNX domain */
    size_t n_inputs, n_outputs, n_attrs;
    const char *const *inputs; /* "" marks an omitted optional input */
    const char *const *outputs;
    const struct nn_attr *attrs;
};

struct nn_graph;

/* Parses an ONNX ModelProto. Corrupt protobuf is ENG_UNDECODABLE; a model past NN_MAX_BYTES or
 * NN_MAX_NODES is ENG_TOO_LARGE; shapes and data that disagree are ENG_INVALID; element or
 * attribute types this IR does not hold are ENG_UNSUPPORTED. Messages name the tensor or node. */
struct nn_graph *nn_graph_read(const void *data, size_t size, struct eng_error *err);
struct nn_graph *nn_graph_read_file(const char *path, struct eng_error *err);

/* Parses a serialised float or int64 TensorProto (the .pb files of ONNX's test data) into *data
 * (malloc'd, the caller frees it; info->dtype says which) and *info (name NULL). */
int nn_tensor_read_pb(const void *buf, size_t size, void **data, struct nn_tensor_info *info,
                      struct eng_error *err);

/* Serialises g as an ONNX ModelProto into *out (malloc'd, *size bytes). Tensors are written as
 * little-endian raw_data, so reading the bytes back gives an identical graph. */
int nn_graph_write(const struct nn_graph *g, void **out, size_t *size, struct eng_error *err);
void nn_graph_free(struct nn_graph *g);

int64_t nn_graph_ir_version(const struct nn_graph *g);
/* The opset imported for the default ONNX domain ("" or "ai.onnx"); -1 when none is. */
int64_t nn_graph_opset(const struct nn_graph *g);

/* Model inputs exclude graph inputs that are initializers (older exporters list weights there). */
size_t nn_graph_input_count(const struct nn_graph *g);
const struct nn_tensor_info *nn_graph_input(const struct nn_graph *g, size_t i);
size_t nn_graph_output_count(const struct nn_graph *g);
const struct nn_tensor_info *nn_graph_output(const struct nn_graph *g, size_t i);

/* Nodes in the model's order, which ONNX requires to be topological. */
size_t nn_graph_node_count(const struct nn_graph *g);
const struct nn_node *nn_graph_node(const struct nn_graph *g, size_t i);
/* NULL when the node has no attribute of that name. */
const struct nn_attr *nn_node_attr(const struct nn_node *node, const char *name);

size_t nn_graph_initializer_count(const struct nn_graph *g);
const struct nn_tensor *nn_graph_initializer_at(const struct nn_graph *g, size_t i);
/* NULL when no initializer has that name. */
const struct nn_tensor *nn_graph_initializer(const struct nn_graph *g, const char *name);
/* t's data as floats; NULL unless t is NN_FLOAT. */
const float *nn_tensor_floats(const struct nn_tensor *t);

/* ---- Building a graph ----
 *
 * A graph made in code (the model zoo, a new head for fine-tuning) is assembled by a builder into
 * the same struct nn_graph a read model is: the accessors above, nn_graph_write and the executor
 * cannot tell them apart. Calls are recorded in order; the first failing call (a bad argument, no
 * memory) makes every later call a no-op and nn_builder_finish report it, so a caller checks once.
 * Every string and (unless adopted) every array is copied. */
struct nn_builder;

/* A builder for a graph called name (ONNX requires one) importing the default ONNX domain at
 * opset (>= 1); NULL when memory runs out. */
struct nn_builder *nn_builder_new(const char *name, int64_t opset);
/* A model input or output: dims[d] < 0 is a symbolic dim, named dim_params[d] (dim_params may be
 * NULL: then such a dim is unnamed). */
void nn_builder_input(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                      const int64_t *dims, const char *const *dim_params);
void nn_builder_output(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                       const int64_t *dims, const char *const *dim_params);
/* An initializer holding a copy of data (the product of dims elements of dtype). */
void nn_builder_initializer(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                            const int64_t *dims, const void *data);
/* The same, adopting data (malloc'd): the graph frees it, or the builder when it fails. NULL
 * data for a non-empty tensor (a failed malloc passed on) makes the builder fail with
 * ENG_NO_MEMORY. */
void nn_builder_initializer_owned(struct nn_builder *b, const char *name, enum nn_dtype dtype,
                                  int rank, const int64_t *dims, void *data);
/* A node of the default domain; name may be "" and an input "" (an omitted optional input).
 * The attribute calls that follow belong to it. */
void nn_builder_node(struct nn_builder *b, const char *op_type, const char *name, size_t n_inputs,
                     const char *const *inputs, size_t n_outputs, const char *const *outputs);
/* A node of another domain (the training engine's own ops, domain "ai.augserve"), as
 * nn_builder_node; the graph imports that domain at version, once. */
void nn_builder_node_in(struct nn_builder *b, const char *domain, int64_t version,
                        const char *op_type, const char *name, size_t n_inputs,
                        const char *const *inputs, size_t n_outputs, const char *const *outputs);
void nn_builder_attr_int(struct nn_builder *b, const char *name, int64_t value);
void nn_builder_attr_float(struct nn_builder *b, const char *name, float value);
void nn_builder_attr_ints(struct nn_builder *b, const char *name, size_t n, const int64_t *values);
void nn_builder_attr_floats(struct nn_builder *b, const char *name, size_t n, const float *values);
void nn_builder_attr_string(struct nn_builder *b, const char *name, const char *value);
void nn_builder_attr_strings(struct nn_builder *b, const char *name, size_t n,
                             const char *const *values);
/* A tensor attribute (Constant's value): t's shape and a copy of its data. */
void nn_builder_attr_tensor(struct nn_builder *b, const char *name, const struct nn_tensor *t);

/* Copying a graph, to edit it (fine-tuning's new head): nn_builder_like, then each value, each
 * initializer and each node of g passed on as it is or changed. A copy that changes nothing
 * writes the bytes g writes. */

/* A builder for a graph like g: g's IR version, producer, graph name and every opset import (other
 * domains included), nothing else yet. NULL when memory runs out. */
struct nn_builder *nn_builder_like(const struct nn_graph *g);
/* node with its name, domain, inputs, outputs and every attribute. */
void nn_builder_copy_node(struct nn_builder *b, const struct nn_node *node);
/* A shape hint for an intermediate value (ONNX's value_info), as nn_builder_input. */
void nn_builder_value_info(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                           const int64_t *dims, const char *const *dim_params);

/* The values as g declares them, in order: NN_VALUES_INPUT is every graph input, those naming an
 * initializer included (older exporters list weights there; nn_graph_input leaves them out, and
 * nn_builder_input takes them), NN_VALUES_OUTPUT the outputs, NN_VALUES_INFO the value_info
 * hints. *dim_params (may be NULL) gets the value's dim names: [d] names symbolic dim d, or is
 * NULL. NULL past the last value. */
enum nn_values { NN_VALUES_INPUT, NN_VALUES_OUTPUT, NN_VALUES_INFO };
size_t nn_graph_value_count(const struct nn_graph *g, enum nn_values which);
const struct nn_tensor_info *nn_graph_value(const struct nn_graph *g, enum nn_values which,
                                            size_t i, const char *const **dim_params);
/* The graph, after checking what a reader of ONNX relies on: names present and unique (each
 * value has one producer: an input, an initializer or a node output; an input may also name an
 * initializer, which then is no model input, as nn_graph_read has it), every node input made by
 * an earlier value (topological order), every output made. ENG_INVALID naming the first problem;
 * ENG_NO_MEMORY. Frees the builder either way. */
struct nn_graph *nn_builder_finish(struct nn_builder *b, struct eng_error *err);
/* Frees a builder without making its graph (adopted data included). */
void nn_builder_free(struct nn_builder *b);

/* A new graph of g's structure whose initializers names[k] hold values[k] (floats, as many as
 * the initializer has), the others g's values: how trained or fine-tuned parameters become a
 * model to write (nn_graph_write) or compile. An unknown name is ENG_NOT_FOUND, a non-float
 * initializer ENG_INVALID. g is unchanged; the new graph owns all its memory. */
struct nn_graph *nn_graph_with_initializers(const struct nn_graph *g, size_t n,
                                            const char *const *names, const float *const *values,
                                            struct eng_error *err);

/* The executor: a graph compiled for fixed input shapes into oneDNN primitives on the CPU, float32
 * inside. BatchNormalization after a Conv is folded into its weights; activations, and a residual
 * Add, become the producing primitive's post-ops; layouts are oneDNN's blocked ones between
 * layers, with reorders only where an op needs row-major data. The graph must outlive the plan
 * (names point into it). */
struct nn_plan;

struct nn_plan_options {
    /* Intermediate values to return after the model's outputs, by name (e.g. the activations a
     * perceptual metric reads). A tapped value is never fused away. */
    const char *const *taps;
    size_t n_taps;
    /* Graph inputs fixed when the plan is built, matched by name: parameters a model takes as
     * inputs (Reshape's shape, Pad's pads, Clip's bounds) become constants, as static shapes
     * need. Their entries in nn_plan_run's inputs are ignored (may be NULL). Float or int64; the
     * data is copied. */
    const struct nn_tensor *frozen;
    size_t n_frozen;
    int threads; /* threads each run uses (OpenMP); 0 = the OpenMP default, one per core */
    /* false (default): the algorithm of each convolution follows its shape: Winograd's for 3x3
     * stride-1 ones with at least 64 channels on each side where oneDNN has it for this CPU (up
     * to 1.5x faster), matrix products over the batch that skip the padding taps for output maps
     * of at most 3x3 in batches of 4 or more (1.5x on LPIPS's AlexNet at 64 px); results differ
     * from the direct algorithm's by about 1e-6 relative. true: oneDNN's direct algorithm for
     * every convolution. */
    bool direct_convolution;
    /* The most bytes the plan's activations and scratchpad may take (0: no cap): past it the
     * compile fails with ENG_TOO_LARGE before they are allocated, so an input shape cannot make
     * a model hold gigabytes. */
    size_t max_bytes;
};

/* input_shapes[i] is the full shape of model input i (nn_graph_input order; n_inputs must be
 * nn_graph_input_count). An op or attribute the executor does not handle is ENG_UNSUPPORTED naming
 * the node and op_type; shapes that do not fit together are ENG_INVALID; a oneDNN failure is
 * ENG_INTERNAL naming the call. options may be NULL. */
struct nn_plan *nn_plan_compile_with(const struct nn_graph *g,
                                     const struct nn_tensor_info *input_shapes, size_t n_inputs,
                                     const struct nn_plan_options *options, struct eng_error *err);
/* nn_plan_compile_with without options. */
struct nn_plan *nn_plan_compile(const struct nn_graph *g, const struct nn_tensor_info *input_shapes,
                                size_t n_inputs, struct eng_error *err);
/* The model's outputs, then the taps. */
size_t nn_plan_output_count(const struct nn_plan *p);
/* The floating-point operations one run of the plan costs, counting a multiply-add as two, in
 * its convolutions, Gemms and MatMuls (what dominates; the other ops are not counted). */
double nn_plan_flops(const struct nn_plan *p);
/* inputs[i] holds input i's elements, row-major, as floats whatever the input's declared type
 * (float, uint8 or int64: the caller converts; a Cast to float in the model is then a no-op). On
 * success outputs[k] (malloc'd; the caller frees it) holds model output k and output_info[k] its
 * name and shape; both arrays have nn_plan_output_count entries. Threads: a plan may run on any
 * thread, not only the one that compiled it, and be freed on any thread; it owns its buffers and
 * oneDNN scratchpad, so it keeps no per-thread state. But runs of one plan share those buffers:
 * they must not overlap, so callers serialise them (e.g. one mutex per plan). Different plans, even
 * of the same graph, may run concurrently. */
int nn_plan_run(struct nn_plan *p, const float *const *inputs, float **outputs,
                struct nn_tensor_info *output_info, struct eng_error *err);
/* nn_plan_run without copying the outputs out: outputs[k] points into the plan's own memory and
 * stays valid until the plan runs again or is freed, which the caller's lock must prevent while
 * it reads them. For outputs read once and at once (a perceptual metric's taps: megabytes a
 * batch). */
int nn_plan_run_borrowed(struct nn_plan *p, const float *const *inputs, const float **outputs,
                         struct nn_tensor_info *output_info, struct eng_error *err);
void nn_plan_free(struct nn_plan *p);

#endif
