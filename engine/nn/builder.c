/* The graph builder (nn/nn.h, "Building a graph"): calls append to growing arrays, strings and
 * data go to the new graph's arena, and nn_builder_finish lays the arrays out as ir.c's reader
 * does and checks the names, so a built graph is a read one in every respect. Every call takes
 * the NULL a failed nn_builder_new returns, and nn_builder_finish reports it as no memory. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph_internal.h"

struct nn_builder {
    struct nn_graph *g; /* its arena holds every string and copied array */
    struct eng_error err;
    int failed;
    struct nn_node *nodes;
    size_t n_nodes, cap_nodes;
    size_t *attr_start; /* per node: its first entry in attrs (attributes follow their node) */
    size_t cap_attr_start;
    struct nn_attr *attrs;
    size_t n_attrs, cap_attrs;
    struct nn_tensor *inits;
    size_t n_inits, cap_inits;
    struct nn_value_info *inputs, *outputs, *hints; /* hints: value_info */
    size_t n_inputs, cap_inputs, n_outputs, cap_outputs, n_hints, cap_hints;
};

/* Room for one more of elem bytes in *arr; 0, or -1 when memory runs out. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return 0;
    size_t want = *cap ? 2 * *cap : 16;
    if (want > SIZE_MAX / elem) return -1;
    void *p = realloc(*arr, want * elem);
    if (!p) return -1;
    *arr = p;
    *cap = want;
    return 0;
}

/* rc, marking the builder failed when it is -1 (the error is in b->err). */
static int fail(struct nn_builder *b, int rc)
{
    if (rc) b->failed = 1;
    return rc;
}

static int no_memory(struct nn_builder *b)
{
    return fail(b, eng_no_memory(&b->err));
}

/* A builder whose graph has n_opsets opset entries to fill; NULL when memory runs out. */
static struct nn_builder *builder_alloc(size_t n_opsets)
{
    struct nn_builder *b = calloc(1, sizeof *b);
    struct nn_graph *g = calloc(1, sizeof *g);
    if (!b || !g) {
        free(b);
        free(g);
        return NULL;
    }
    b->g = g;
    g->opsets = nn_arena_array(&g->arena, n_opsets ? n_opsets : 1, sizeof *g->opsets);
    if (!g->opsets) {
        nn_builder_free(b);
        return NULL;
    }
    g->n_opsets = n_opsets;
    return b;
}

struct nn_builder *nn_builder_new(const char *name, int64_t opset)
{
    struct nn_builder *b = builder_alloc(1);
    if (!b) return NULL;
    struct nn_graph *g = b->g;
    /* IR version 8 (ONNX 1.10+) covers opsets up to 17. */
    g->ir_version = 8;
    g->producer_name = nn_arena_str(&g->arena, "augserve");
    g->name = nn_arena_str(&g->arena, name);
    if (!g->producer_name || !g->name) {
        nn_builder_free(b);
        return NULL;
    }
    g->opsets[0].domain = "";
    g->opsets[0].version = opset;
    if (opset < 1)
        fail(b, eng_fail(&b->err, ENG_INVALID, "opset %lld; it must be >= 1", (long long)opset));
    else if (!name || !name[0])
        fail(b, eng_fail(&b->err, ENG_INVALID, "a graph needs a name (ONNX requires one)"));
    return b;
}

/* s copied into a's arena, or NULL for NULL (a model's optional strings stay absent); 0, or -1
 * when memory runs out. */
static int copy_optional(struct nn_arena *a, const char **out, const char *s)
{
    *out = s ? nn_arena_str(a, s) : NULL;
    return s && !*out ? -1 : 0;
}

struct nn_builder *nn_builder_like(const struct nn_graph *g)
{
    struct nn_builder *b = builder_alloc(g->n_opsets);
    if (!b) return NULL;
    struct nn_graph *c = b->g;
    c->ir_version = g->ir_version;
    int rc = copy_optional(&c->arena, &c->producer_name, g->producer_name) |
             copy_optional(&c->arena, &c->producer_version, g->producer_version) |
             copy_optional(&c->arena, &c->name, g->name);
    for (size_t i = 0; !rc && i < g->n_opsets; i++) {
        c->opsets[i].version = g->opsets[i].version;
        if (!(c->opsets[i].domain = nn_arena_str(&c->arena, g->opsets[i].domain))) rc = -1;
    }
    if (rc) {
        nn_builder_free(b);
        return NULL;
    }
    return b;
}

/* A tensor's shape checked and copied into info; what names it in errors. A value (declared, not
 * held) may leave its type (NN_UNDEFINED) or its shape (rank -1) unknown, as a read model may. */
static int set_shape(struct nn_builder *b, struct nn_tensor_info *info, const char *name,
                     enum nn_dtype dtype, int rank, const int64_t *dims, const char *what,
                     bool value)
{
    if (!name || !name[0]) return fail(b, eng_fail(&b->err, ENG_INVALID, "%s with no name", what));
    if (rank < (value ? -1 : 0) || rank > NN_MAX_RANK)
        return fail(b, eng_fail(&b->err, ENG_INVALID, "%s '%s' has rank %d; at most %d", what, name,
                                rank, NN_MAX_RANK));
    if (!nn_dtype_size(dtype) && !(value && dtype == NN_UNDEFINED))
        return fail(b, eng_fail(&b->err, ENG_INVALID, "%s '%s' has element type %d, not held", what,
                                name, (int)dtype));
    if (!(info->name = nn_arena_str(&b->g->arena, name))) return no_memory(b);
    info->dtype = dtype;
    info->rank = rank;
    for (int d = 0; d < rank; d++)
        info->dims[d] = dims[d] < 0 ? -1 : dims[d];
    return 0;
}

static void add_value(struct nn_builder *b, struct nn_value_info **arr, size_t *n, size_t *cap,
                      const char *name, enum nn_dtype dtype, int rank, const int64_t *dims,
                      const char *const *dim_params, const char *what)
{
    if (!b || b->failed) return;
    if (grow((void **)arr, cap, *n, sizeof **arr)) {
        no_memory(b);
        return;
    }
    struct nn_value_info *v = &(*arr)[*n];
    memset(v, 0, sizeof *v);
    if (set_shape(b, &v->info, name, dtype, rank, dims, what, true)) return;
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0 && dim_params && dim_params[d] &&
            !(v->dim_param[d] = nn_arena_str(&b->g->arena, dim_params[d]))) {
            no_memory(b);
            return;
        }
    (*n)++;
}

void nn_builder_input(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                      const int64_t *dims, const char *const *dim_params)
{
    add_value(b, &b->inputs, &b->n_inputs, &b->cap_inputs, name, dtype, rank, dims, dim_params,
              "input");
}

void nn_builder_output(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                       const int64_t *dims, const char *const *dim_params)
{
    add_value(b, &b->outputs, &b->n_outputs, &b->cap_outputs, name, dtype, rank, dims, dim_params,
              "output");
}

void nn_builder_value_info(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                           const int64_t *dims, const char *const *dim_params)
{
    add_value(b, &b->hints, &b->n_hints, &b->cap_hints, name, dtype, rank, dims, dim_params,
              "value_info");
}

/* A new initializer's entry with its shape set and count computed; NULL after a failure. */
static struct nn_tensor *new_initializer(struct nn_builder *b, const char *name,
                                         enum nn_dtype dtype, int rank, const int64_t *dims)
{
    if (!b || b->failed) return NULL;
    if (grow((void **)&b->inits, &b->cap_inits, b->n_inits, sizeof *b->inits)) {
        no_memory(b);
        return NULL;
    }
    struct nn_tensor *t = &b->inits[b->n_inits];
    memset(t, 0, sizeof *t);
    if (set_shape(b, &t->info, name, dtype, rank, dims, "initializer", false)) return NULL;
    size_t count = 1;
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0 || __builtin_mul_overflow(count, (size_t)dims[d], &count) ||
            count > NN_MAX_BYTES / nn_dtype_size(dtype)) {
            fail(b, eng_fail(&b->err, ENG_INVALID,
                             "initializer '%s': dim %d = %lld is negative or too large", name, d,
                             (long long)dims[d]));
            return NULL;
        }
    t->count = count;
    return t;
}

void nn_builder_initializer(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                            const int64_t *dims, const void *data)
{
    struct nn_tensor *t = new_initializer(b, name, dtype, rank, dims);
    if (!t) return;
    size_t bytes = t->count * nn_dtype_size(dtype);
    if (bytes) {
        void *copy = nn_arena_alloc(&b->g->arena, bytes);
        if (!copy) {
            no_memory(b);
            return;
        }
        memcpy(copy, data, bytes);
        t->data = copy;
    }
    b->n_inits++;
}

void nn_builder_initializer_owned(struct nn_builder *b, const char *name, enum nn_dtype dtype,
                                  int rank, const int64_t *dims, void *data)
{
    /* Adopted first, so the data is freed whatever happens next. */
    struct nn_owned *o = !b || b->failed ? NULL : nn_arena_alloc(&b->g->arena, sizeof *o);
    if (!o) {
        free(data);
        if (b && !b->failed) no_memory(b);
        return;
    }
    o->data = data;
    o->next = b->g->owned;
    b->g->owned = o;
    struct nn_tensor *t = new_initializer(b, name, dtype, rank, dims);
    if (!t) return;
    if (t->count && !data) {
        no_memory(b);
        return;
    }
    t->data = t->count ? data : NULL;
    b->n_inits++;
}

static const char *const *copy_names(struct nn_builder *b, size_t n, const char *const *names)
{
    const char **out = nn_arena_array(&b->g->arena, n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = nn_arena_str(&b->g->arena, names[i]))) return NULL;
    return out;
}

void nn_builder_node(struct nn_builder *b, const char *op_type, const char *name, size_t n_inputs,
                     const char *const *inputs, size_t n_outputs, const char *const *outputs)
{
    if (!b || b->failed) return;
    if (!op_type || !op_type[0]) {
        fail(b, eng_fail(&b->err, ENG_INVALID, "node %zu ('%s') has no op_type", b->n_nodes,
                         name ? name : ""));
        return;
    }
    if (grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes, sizeof *b->nodes) ||
        grow((void **)&b->attr_start, &b->cap_attr_start, b->n_nodes, sizeof *b->attr_start)) {
        no_memory(b);
        return;
    }
    struct nn_node *node = &b->nodes[b->n_nodes];
    memset(node, 0, sizeof *node);
    node->name = nn_arena_str(&b->g->arena, name);
    node->op_type = nn_arena_str(&b->g->arena, op_type);
    node->domain = "";
    node->inputs = copy_names(b, n_inputs, inputs);
    node->outputs = copy_names(b, n_outputs, outputs);
    if (!node->name || !node->op_type || !node->inputs || !node->outputs) {
        no_memory(b);
        return;
    }
    node->n_inputs = n_inputs;
    node->n_outputs = n_outputs;
    b->attr_start[b->n_nodes++] = b->n_attrs;
}

void nn_builder_node_in(struct nn_builder *b, const char *domain, int64_t version,
                        const char *op_type, const char *name, size_t n_inputs,
                        const char *const *inputs, size_t n_outputs, const char *const *outputs)
{
    nn_builder_node(b, op_type, name, n_inputs, inputs, n_outputs, outputs);
    if (!b || b->failed) return;
    struct nn_graph *g = b->g;
    struct nn_node *node = &b->nodes[b->n_nodes - 1];
    if (!(node->domain = nn_arena_str(&g->arena, domain))) {
        no_memory(b);
        return;
    }
    for (size_t i = 0; i < g->n_opsets; i++)
        if (!strcmp(g->opsets[i].domain, domain)) return;
    /* The opsets live in the arena: a longer copy replaces them (a few per graph). */
    struct nn_opset *opsets = nn_arena_array(&g->arena, g->n_opsets + 1, sizeof *opsets);
    if (!opsets) {
        no_memory(b);
        return;
    }
    memcpy(opsets, g->opsets, g->n_opsets * sizeof *opsets);
    opsets[g->n_opsets].domain = node->domain;
    opsets[g->n_opsets].version = version;
    g->opsets = opsets;
    g->n_opsets++;
}

/* Copies n elements of elem bytes into the arena as *out; 0, or -1 when memory runs out. */
static int settle(struct nn_graph *g, void *out, const void *src, size_t n, size_t elem)
{
    void *p = nn_arena_array(&g->arena, n ? n : 1, elem);
    if (!p) return -1;
    if (n) memcpy(p, src, n * elem);
    memcpy(out, &p, sizeof p);
    return 0;
}

/* A new attribute of the last node; NULL after a failure. */
static struct nn_attr *new_attr(struct nn_builder *b, const char *name, enum nn_attr_type type)
{
    if (!b || b->failed) return NULL;
    if (!b->n_nodes) {
        fail(b, eng_fail(&b->err, ENG_INVALID, "attribute '%s' before any node", name));
        return NULL;
    }
    if (!name || !name[0]) {
        fail(b, eng_fail(&b->err, ENG_INVALID, "node '%s' (%s): an attribute with no name",
                         b->nodes[b->n_nodes - 1].name, b->nodes[b->n_nodes - 1].op_type));
        return NULL;
    }
    if (grow((void **)&b->attrs, &b->cap_attrs, b->n_attrs, sizeof *b->attrs)) {
        no_memory(b);
        return NULL;
    }
    struct nn_attr *at = &b->attrs[b->n_attrs];
    memset(at, 0, sizeof *at);
    if (!(at->name = nn_arena_str(&b->g->arena, name))) {
        no_memory(b);
        return NULL;
    }
    at->type = type;
    b->n_attrs++;
    return at;
}

void nn_builder_attr_int(struct nn_builder *b, const char *name, int64_t value)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_INT);
    if (at) at->i = value;
}

void nn_builder_attr_float(struct nn_builder *b, const char *name, float value)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_FLOAT);
    if (at) at->f = value;
}

void nn_builder_attr_ints(struct nn_builder *b, const char *name, size_t n, const int64_t *values)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_INTS);
    if (!at) return;
    if (settle(b->g, &at->ints, values, n, sizeof *values)) no_memory(b);
    at->count = n;
}

void nn_builder_attr_floats(struct nn_builder *b, const char *name, size_t n, const float *values)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_FLOATS);
    if (!at) return;
    if (settle(b->g, &at->floats, values, n, sizeof *values)) no_memory(b);
    at->count = n;
}

void nn_builder_attr_string(struct nn_builder *b, const char *name, const char *value)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_STRING);
    if (at && !(at->s = nn_arena_str(&b->g->arena, value))) no_memory(b);
}

void nn_builder_attr_strings(struct nn_builder *b, const char *name, size_t n,
                             const char *const *values)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_STRINGS);
    if (!at) return;
    if (!(at->strings = copy_names(b, n, values))) {
        no_memory(b);
        return;
    }
    at->count = n;
}

void nn_builder_attr_tensor(struct nn_builder *b, const char *name, const struct nn_tensor *t)
{
    struct nn_attr *at = new_attr(b, name, NN_ATTR_TENSOR);
    if (!at) return;
    if (!nn_dtype_size(t->info.dtype) || t->info.rank < 0 || t->info.rank > NN_MAX_RANK) {
        fail(b, eng_fail(&b->err, ENG_INVALID,
                         "attribute '%s': a tensor of element type %d and rank %d is not held",
                         name, (int)t->info.dtype, t->info.rank));
        return;
    }
    /* As the reader has it: the tensor's own name may be empty, its shape is checked there. */
    size_t bytes = t->count * nn_dtype_size(t->info.dtype);
    void *data = bytes ? nn_arena_alloc(&b->g->arena, bytes) : NULL;
    at->t = *t;
    if ((bytes && !data) || !(at->t.info.name = nn_arena_str(&b->g->arena, t->info.name))) {
        no_memory(b);
        return;
    }
    if (bytes) memcpy(data, t->data, bytes);
    at->t.data = data;
}

void nn_builder_copy_node(struct nn_builder *b, const struct nn_node *node)
{
    nn_builder_node(b, node->op_type, node->name, node->n_inputs, node->inputs, node->n_outputs,
                    node->outputs);
    if (!b || b->failed) return;
    struct nn_node *copy = &b->nodes[b->n_nodes - 1];
    if (!(copy->domain = nn_arena_str(&b->g->arena, node->domain))) {
        no_memory(b);
        return;
    }
    for (size_t k = 0; k < node->n_attrs; k++) {
        const struct nn_attr *at = &node->attrs[k];
        switch (at->type) {
        case NN_ATTR_FLOAT:
            nn_builder_attr_float(b, at->name, at->f);
            break;
        case NN_ATTR_INT:
            nn_builder_attr_int(b, at->name, at->i);
            break;
        case NN_ATTR_STRING:
            nn_builder_attr_string(b, at->name, at->s);
            break;
        case NN_ATTR_TENSOR:
            nn_builder_attr_tensor(b, at->name, &at->t);
            break;
        case NN_ATTR_FLOATS:
            nn_builder_attr_floats(b, at->name, at->count, at->floats);
            break;
        case NN_ATTR_INTS:
            nn_builder_attr_ints(b, at->name, at->count, at->ints);
            break;
        case NN_ATTR_STRINGS:
            nn_builder_attr_strings(b, at->name, at->count, at->strings);
            break;
        }
    }
}

/* The set of value names made so far: open addressing over a power-of-two table. */
struct name_set {
    const char **slots;
    size_t mask;
};

static size_t name_hash(const char *s)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* 1 when name was added, 0 when it was there already. */
static int name_add(struct name_set *set, const char *name)
{
    size_t i = name_hash(name) & set->mask;
    for (; set->slots[i]; i = (i + 1) & set->mask)
        if (!strcmp(set->slots[i], name)) return 0;
    set->slots[i] = name;
    return 1;
}

static int name_has(const struct name_set *set, const char *name)
{
    for (size_t i = name_hash(name) & set->mask; set->slots[i]; i = (i + 1) & set->mask)
        if (!strcmp(set->slots[i], name)) return 1;
    return 0;
}

/* Each value made once, before it is read; the outputs made. set holds every value's name,
 * inputs the inputs' (one of which may name an initializer: its default value). */
static int check_names(struct nn_builder *b, struct name_set *set, struct name_set *inputs,
                       struct eng_error *err)
{
    for (size_t i = 0; i < b->n_inits; i++)
        if (!name_add(set, b->inits[i].info.name))
            return eng_fail(err, ENG_INVALID, "initializer '%s' is declared twice",
                            b->inits[i].info.name);
    for (size_t i = 0; i < b->n_inputs; i++) {
        if (!name_add(inputs, b->inputs[i].info.name))
            return eng_fail(err, ENG_INVALID, "input '%s' is declared twice",
                            b->inputs[i].info.name);
        name_add(set, b->inputs[i].info.name);
    }
    for (size_t i = 0; i < b->n_nodes; i++) {
        const struct nn_node *node = &b->nodes[i];
        for (size_t k = 0; k < node->n_inputs; k++)
            if (node->inputs[k][0] && !name_has(set, node->inputs[k]))
                return eng_fail(err, ENG_INVALID,
                                "node '%s' (%s) reads '%s', which no input, initializer or "
                                "earlier node makes",
                                node->name, node->op_type, node->inputs[k]);
        /* An empty name marks an optional output left out (LSTM's, Dropout's mask). */
        for (size_t k = 0; k < node->n_outputs; k++)
            if (node->outputs[k][0] && !name_add(set, node->outputs[k]))
                return eng_fail(err, ENG_INVALID, "node '%s' (%s): output %zu ('%s') is made twice",
                                node->name, node->op_type, k, node->outputs[k]);
    }
    for (size_t i = 0; i < b->n_outputs; i++)
        if (!name_has(set, b->outputs[i].info.name))
            return eng_fail(err, ENG_INVALID,
                            "output '%s' is made by no node, input or initializer",
                            b->outputs[i].info.name);
    return 0;
}

struct nn_graph *nn_builder_finish(struct nn_builder *b, struct eng_error *err)
{
    if (!b) {
        eng_no_memory(err);
        return NULL;
    }
    struct nn_graph *g = b->g;
    if (b->failed) {
        if (err) *err = b->err;
        nn_builder_free(b);
        return NULL;
    }
    size_t n_names = b->n_inputs + b->n_inits, cap = 16;
    for (size_t i = 0; i < b->n_nodes; i++)
        n_names += b->nodes[i].n_outputs;
    while (cap < 2 * n_names)
        cap *= 2;
    struct name_set set = {calloc(cap, sizeof *set.slots), cap - 1},
                    inputs = {calloc(cap, sizeof *inputs.slots), cap - 1};
    int rc = set.slots && inputs.slots ? check_names(b, &set, &inputs, err) : eng_no_memory(err);
    free(set.slots);
    free(inputs.slots);
    if (!rc) {
        for (size_t i = 0; i < b->n_nodes; i++) {
            size_t end = i + 1 < b->n_nodes ? b->attr_start[i + 1] : b->n_attrs;
            b->nodes[i].n_attrs = end - b->attr_start[i];
        }
        if (settle(g, &g->nodes, b->nodes, b->n_nodes, sizeof *b->nodes) ||
            settle(g, &g->inits, b->inits, b->n_inits, sizeof *b->inits) ||
            settle(g, &g->graph_inputs, b->inputs, b->n_inputs, sizeof *b->inputs) ||
            settle(g, &g->outputs, b->outputs, b->n_outputs, sizeof *b->outputs) ||
            settle(g, &g->value_info, b->hints, b->n_hints, sizeof *b->hints) ||
            !(g->inits_sorted = nn_arena_array(&g->arena, b->n_inits ? b->n_inits : 1,
                                               sizeof *g->inits_sorted)) ||
            !(g->inputs =
                  nn_arena_array(&g->arena, b->n_inputs ? b->n_inputs : 1, sizeof *g->inputs)))
            rc = eng_no_memory(err);
    }
    for (size_t i = 0; !rc && i < b->n_nodes; i++) {
        struct nn_node *node = &g->nodes[i];
        struct nn_attr *attrs = NULL;
        const struct nn_attr *src = node->n_attrs ? b->attrs + b->attr_start[i] : NULL;
        if (settle(g, &attrs, src, node->n_attrs, sizeof *attrs)) rc = eng_no_memory(err);
        node->attrs = attrs;
    }
    if (rc) {
        nn_builder_free(b);
        return NULL;
    }
    g->n_nodes = b->n_nodes;
    g->n_inits = b->n_inits;
    g->n_graph_inputs = b->n_inputs;
    g->n_outputs = b->n_outputs;
    g->n_value_info = b->n_hints;
    nn_graph_sort_initializers(g);
    /* The model inputs: the graph inputs no initializer gives a value, as nn_graph_read has it. */
    for (size_t i = 0; i < b->n_inputs; i++)
        if (!nn_graph_initializer(g, g->graph_inputs[i].info.name)) g->inputs[g->n_inputs++] = i;
    b->g = NULL;
    nn_builder_free(b);
    return g;
}

void nn_builder_free(struct nn_builder *b)
{
    if (!b) return;
    nn_graph_free(b->g);
    free(b->nodes);
    free(b->attr_start);
    free(b->attrs);
    free(b->inits);
    free(b->inputs);
    free(b->outputs);
    free(b->hints);
    free(b);
}
