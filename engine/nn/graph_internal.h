/* The graph IR's representation, private to engine/nn: what ir.c reads and writes and builder.c
 * assembles, so a graph built in code is the same structure as one read from ONNX (nn/nn.h's
 * accessors, nn_graph_write and the executor cannot tell them apart). */
#ifndef AUGSERVE_ENGINE_NN_GRAPH_INTERNAL_H
#define AUGSERVE_ENGINE_NN_GRAPH_INTERNAL_H

#ifndef AUGENGINE_NN_INTERNAL
#error "nn/graph_internal.h is private to engine/nn; include nn/nn.h"
#endif

#include <stdalign.h>
#include <stddef.h>

#include "nn/nn.h"

/* Everything a graph owns lives in one arena of blocks, freed in one call, so a half-made graph
 * is freed on any error path. */
struct nn_arena_block {
    struct nn_arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

struct nn_arena {
    struct nn_arena_block *head;
};

/* Zeroed memory aligned for any type; NULL when memory runs out. */
void *nn_arena_alloc(struct nn_arena *a, size_t size);
void *nn_arena_array(struct nn_arena *a, size_t n, size_t size);
/* A NUL-terminated copy of s ("" for NULL); NULL when memory runs out. */
const char *nn_arena_str(struct nn_arena *a, const char *s);
void nn_arena_free(struct nn_arena *a);

/* A value (graph input, output or intermediate) and the names of its symbolic dims, which the
 * public info only marks -1 but the writer must keep. */
struct nn_value_info {
    struct nn_tensor_info info;
    const char *dim_param[NN_MAX_RANK];
};

struct nn_opset {
    const char *domain;
    int64_t version;
};

/* A buffer the graph adopted (a built graph's owned initializer data), freed with it. */
struct nn_owned {
    struct nn_owned *next;
    void *data;
};

struct nn_graph {
    struct nn_arena arena;
    struct nn_owned *owned;
    int64_t ir_version;
    const char *producer_name, *producer_version, *name; /* NULL when absent */
    size_t n_opsets, n_nodes, n_inits, n_graph_inputs, n_inputs, n_outputs, n_value_info;
    struct nn_opset *opsets;
    struct nn_node *nodes;
    struct nn_tensor *inits;
    const struct nn_tensor **inits_sorted; /* by name, for lookups */
    struct nn_value_info *graph_inputs;    /* as in the model, initializers included */
    size_t *inputs;                        /* indices into graph_inputs of the model inputs */
    struct nn_value_info *outputs, *value_info;
};

/* Fills g->inits_sorted from g->inits (allocated by the caller) for nn_graph_initializer. */
void nn_graph_sort_initializers(struct nn_graph *g);

#endif
