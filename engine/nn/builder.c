/* The graph builder (nn/nn.h, "Building a graph"): calls append to growing arrays, strings and
 * data go to the new graph's arena, and nn_builder_finish lays the arrays out as ir.c's reader
 * does and checks the names, so a built graph is a read one in every respect. Every call takes
 * the NULL a failed nn_builder_new returns, and nn_builder_finish reports it as no memory. */
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
    struct nn_value_info *inputs, *outputs;
    size_t n_inputs, cap_inputs, n_outputs, cap_outputs;
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

struct nn_builder *nn_builder_new(const char *name, int64_t opset)
{
    struct nn_builder *b = calloc(1, sizeof *b);
    struct nn_graph *g = calloc(1, sizeof *g);
    if (!b || !g) {
        free(b);
        free(g);
        return NULL;
    }
    b->g = g;
    /* IR version 8 (ONNX 1.10+) covers opsets up to 17. */
    g->ir_version = 8;
    g->producer_name = nn_arena_str(&g->arena, "augserve");
    g->name = nn_arena_str(&g->arena, name);
    g->opsets = nn_arena_alloc(&g->arena, sizeof *g->opsets);
    if (!g->producer_name || !g->name || !g->opsets) {
        nn_builder_free(b);
        return NULL;
    }
    g->opsets[0].domain = "";
    g->opsets[0].version = opset;
    g->n_opsets = 1;
    if (opset < 1)
        fail(b, eng_fail(&b->err, ENG_INVALID, "opset %lld; it must be >= 1", (long long)opset));
    else if (!name || !name[0])
        fail(b, eng_fail(&b->err, ENG_INVALID, "a graph needs a name (ONNX requires one)"));
    return b;
}

/* A tensor's shape checked and copied into info; what names it in errors. */
static int set_shape(struct nn_builder *b, struct nn_tensor_info *info, const char *name,
                     enum nn_dtype dtype, int rank, const int64_t *dims, const char *what)
{
    if (!name || !name[0]) return fail(b, eng_fail(&b->err, ENG_INVALID, "%s with no name", what));
    if (rank < 0 || rank > NN_MAX_RANK)
        return fail(b, eng_fail(&b->err, ENG_INVALID, "%s '%s' has rank %d; at most %d", what, name,
                                rank, NN_MAX_RANK));
    if (!nn_dtype_size(dtype))
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
    if (set_shape(b, &v->info, name, dtype, rank, dims, what)) return;
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
    if (set_shape(b, &t->info, name, dtype, rank, dims, "initializer")) return NULL;
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
    int64_t *copy = nn_arena_array(&b->g->arena, n ? n : 1, sizeof *copy);
    if (!copy) {
        no_memory(b);
        return;
    }
    if (n) memcpy(copy, values, n * sizeof *copy);
    at->ints = copy;
    at->count = n;
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

/* Each value made once, before it is read; the outputs made. */
static int check_names(struct nn_builder *b, struct name_set *set, struct eng_error *err)
{
    for (size_t i = 0; i < b->n_inputs; i++)
        if (!name_add(set, b->inputs[i].info.name))
            return eng_fail(err, ENG_INVALID, "input '%s' is declared twice",
                            b->inputs[i].info.name);
    for (size_t i = 0; i < b->n_inits; i++)
        if (!name_add(set, b->inits[i].info.name))
            return eng_fail(err, ENG_INVALID, "initializer '%s' repeats an earlier value's name",
                            b->inits[i].info.name);
    for (size_t i = 0; i < b->n_nodes; i++) {
        const struct nn_node *node = &b->nodes[i];
        for (size_t k = 0; k < node->n_inputs; k++)
            if (node->inputs[k][0] && !name_has(set, node->inputs[k]))
                return eng_fail(err, ENG_INVALID,
                                "node '%s' (%s) reads '%s', which no input, initializer or "
                                "earlier node makes",
                                node->name, node->op_type, node->inputs[k]);
        for (size_t k = 0; k < node->n_outputs; k++)
            if (!node->outputs[k][0] || !name_add(set, node->outputs[k]))
                return eng_fail(err, ENG_INVALID,
                                "node '%s' (%s): output %zu is unnamed or made twice ('%s')",
                                node->name, node->op_type, k, node->outputs[k]);
    }
    for (size_t i = 0; i < b->n_outputs; i++)
        if (!name_has(set, b->outputs[i].info.name))
            return eng_fail(err, ENG_INVALID,
                            "output '%s' is made by no node, input or initializer",
                            b->outputs[i].info.name);
    return 0;
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
    struct name_set set = {calloc(cap, sizeof *set.slots), cap - 1};
    int rc = set.slots ? check_names(b, &set, err) : eng_no_memory(err);
    free(set.slots);
    if (!rc) {
        for (size_t i = 0; i < b->n_nodes; i++) {
            size_t end = i + 1 < b->n_nodes ? b->attr_start[i + 1] : b->n_attrs;
            b->nodes[i].n_attrs = end - b->attr_start[i];
        }
        if (settle(g, &g->nodes, b->nodes, b->n_nodes, sizeof *b->nodes) ||
            settle(g, &g->inits, b->inits, b->n_inits, sizeof *b->inits) ||
            settle(g, &g->graph_inputs, b->inputs, b->n_inputs, sizeof *b->inputs) ||
            settle(g, &g->outputs, b->outputs, b->n_outputs, sizeof *b->outputs) ||
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
    g->n_graph_inputs = g->n_inputs = b->n_inputs;
    g->n_outputs = b->n_outputs;
    for (size_t i = 0; i < b->n_inputs; i++)
        g->inputs[i] = i;
    nn_graph_sort_initializers(g);
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
    free(b);
}
