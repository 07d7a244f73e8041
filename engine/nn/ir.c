/* The graph IR and its ONNX reader and writer (and the reader of single TensorProto files), on
 * protobuf-c bindings generated from engine/nn/onnx.proto; the structures are in
 * nn/graph_internal.h, shared with builder.c. Everything a graph owns lives in one arena, so a
 * half-read graph is freed in one call on any error path. */
#include "nn/nn.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/graph_internal.h"
#include "onnx.pb-c.h"

/* Tensor data is copied between raw_data (little-endian by the ONNX spec) and host arrays with
 * memcpy. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nn/ir.c assumes a little-endian host"
#endif

enum { ARENA_BLOCK = 64 * 1024 };

void *nn_arena_alloc(struct nn_arena *a, size_t size)
{
    size_t align = alignof(max_align_t);
    if (size > SIZE_MAX - align) return NULL;
    size = (size + align - 1) / align * align;
    struct nn_arena_block *b = a->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        if (cap > SIZE_MAX - sizeof *b) return NULL;
        b = calloc(1, sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        /* A big allocation gets a block of its own behind the head, so the head's free space
         * stays usable. */
        if (a->head && cap == size) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void *nn_arena_array(struct nn_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    return nn_arena_alloc(a, n * size);
}

void nn_arena_free(struct nn_arena *a)
{
    while (a->head) {
        struct nn_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

size_t nn_dtype_size(enum nn_dtype dtype)
{
    switch (dtype) {
    case NN_FLOAT:
    case NN_INT32:
        return 4;
    case NN_UINT8:
    case NN_INT8:
    case NN_BOOL:
        return 1;
    case NN_INT64:
    case NN_DOUBLE:
        return 8;
    case NN_UNDEFINED:
        break;
    }
    return 0;
}

/* A NUL-terminated copy of len bytes in the arena. */
static const char *copy_bytes(struct nn_arena *a, const char *s, size_t len)
{
    char *out = nn_arena_alloc(a, len + 1);
    if (out && len) memcpy(out, s, len);
    return out;
}

const char *nn_arena_str(struct nn_arena *a, const char *s)
{
    return copy_bytes(a, s ? s : "", s ? strlen(s) : 0);
}

/* ONNX strings in attributes are bytes; this IR holds C strings, so embedded NULs are refused. */
static const char *copy_attr_bytes(struct nn_arena *a, const ProtobufCBinaryData *b,
                                   const char *what, struct eng_error *err)
{
    if (b->len && memchr(b->data, 0, b->len)) {
        eng_fail(err, ENG_UNSUPPORTED, "%s: a string holds a NUL byte", what);
        return NULL;
    }
    const char *s = copy_bytes(a, (const char *)b->data, b->len);
    if (!s) eng_no_memory(err);
    return s;
}

static int check_range(int32_t v, enum nn_dtype dtype)
{
    switch (dtype) {
    case NN_UINT8:
        return v >= 0 && v <= 255;
    case NN_INT8:
        return v >= -128 && v <= 127;
    case NN_BOOL:
        return v == 0 || v == 1;
    default:
        return 1;
    }
}

/* Converts tp into t, data copied into the arena in host order. what names the tensor in errors. */
static int read_tensor(struct nn_graph *g, const Onnx__TensorProto *tp, const char *what,
                       struct nn_tensor *t, struct eng_error *err)
{
    memset(t, 0, sizeof *t);
    t->info.name = nn_arena_str(&g->arena, tp->name);
    if (!t->info.name) return eng_no_memory(err);
    if (!tp->has_data_type || tp->data_type == NN_UNDEFINED)
        return eng_fail(err, ENG_INVALID, "%s has no data_type", what);
    size_t esize = nn_dtype_size((enum nn_dtype)tp->data_type);
    if (!esize)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "%s has data_type %d; supported: 1 (float), 2 (uint8), 3 (int8), "
                        "6 (int32), 7 (int64), 9 (bool), 11 (double)",
                        what, (int)tp->data_type);
    t->info.dtype = (enum nn_dtype)tp->data_type;
    if (tp->n_dims > NN_MAX_RANK)
        return eng_fail(err, ENG_INVALID, "%s has rank %zu; at most %d is supported", what,
                        tp->n_dims, NN_MAX_RANK);
    t->info.rank = (int)tp->n_dims;
    size_t count = 1;
    for (size_t d = 0; d < tp->n_dims; d++) {
        if (tp->dims[d] < 0)
            return eng_fail(err, ENG_INVALID, "%s has dim %zu = %lld; dims must be >= 0", what, d,
                            (long long)tp->dims[d]);
        t->info.dims[d] = tp->dims[d];
        if ((uint64_t)tp->dims[d] > SIZE_MAX ||
            __builtin_mul_overflow(count, (size_t)tp->dims[d], &count))
            return eng_fail(err, ENG_INVALID, "%s: the product of its dims overflows", what);
    }
    if (count > NN_MAX_BYTES / esize)
        return eng_fail(err, ENG_INVALID, "%s has %zu elements; at most %zu bytes are supported",
                        what, count, NN_MAX_BYTES);
    size_t bytes = count * esize;
    t->count = count;

    size_t have;
    if (tp->has_raw_data)
        have = tp->raw_data.len;
    else if (t->info.dtype == NN_FLOAT)
        have = tp->n_float_data * esize;
    else if (t->info.dtype == NN_INT64)
        have = tp->n_int64_data * esize;
    else if (t->info.dtype == NN_DOUBLE)
        have = tp->n_double_data * esize;
    else
        have = tp->n_int32_data * esize; /* ONNX keeps int32 and narrower types in int32_data */
    if (have != bytes)
        return eng_fail(err, ENG_INVALID,
                        "%s: its data has %zu bytes but its dims and data_type need %zu%s", what,
                        have, bytes, have == 0 ? " (external data is not supported)" : "");
    if (!count) return 0;

    unsigned char *data = nn_arena_alloc(&g->arena, bytes);
    if (!data) return eng_no_memory(err);
    if (tp->has_raw_data)
        memcpy(data, tp->raw_data.data, bytes);
    else if (t->info.dtype == NN_FLOAT)
        memcpy(data, tp->float_data, bytes);
    else if (t->info.dtype == NN_INT64)
        memcpy(data, tp->int64_data, bytes);
    else if (t->info.dtype == NN_DOUBLE)
        memcpy(data, tp->double_data, bytes);
    else if (t->info.dtype == NN_INT32)
        memcpy(data, tp->int32_data, bytes);
    else
        for (size_t k = 0; k < count; k++) {
            if (!check_range(tp->int32_data[k], t->info.dtype))
                return eng_fail(err, ENG_INVALID,
                                "%s: element %zu = %d is out of range for data_type %d", what, k,
                                (int)tp->int32_data[k], (int)t->info.dtype);
            data[k] = (unsigned char)tp->int32_data[k];
        }
    t->data = data;
    return 0;
}

/* kind and index name the value in errors ("graph input 2"). */
static int read_value(struct nn_graph *g, const Onnx__ValueInfoProto *vp, const char *kind,
                      size_t index, struct nn_value_info *v, struct eng_error *err)
{
    memset(v, 0, sizeof *v);
    if (!vp->name || !vp->name[0])
        return eng_fail(err, ENG_INVALID, "%s %zu has no name", kind, index);
    v->info.name = nn_arena_str(&g->arena, vp->name);
    if (!v->info.name) return eng_no_memory(err);
    v->info.rank = -1;
    /* Values of other kinds (sequences, maps) leave the type unknown: nothing here runs them. */
    if (!vp->type || vp->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) return 0;
    const Onnx__TypeProto__Tensor *tt = vp->type->tensor_type;
    if (tt->has_elem_type && tt->elem_type != NN_UNDEFINED) {
        if (!nn_dtype_size((enum nn_dtype)tt->elem_type))
            return eng_fail(err, ENG_UNSUPPORTED, "%s '%s' has element type %d, not supported",
                            kind, vp->name, (int)tt->elem_type);
        v->info.dtype = (enum nn_dtype)tt->elem_type;
    }
    if (!tt->shape) return 0;
    if (tt->shape->n_dim > NN_MAX_RANK)
        return eng_fail(err, ENG_INVALID, "%s '%s' has rank %zu; at most %d is supported", kind,
                        vp->name, tt->shape->n_dim, NN_MAX_RANK);
    v->info.rank = (int)tt->shape->n_dim;
    for (size_t d = 0; d < tt->shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        v->info.dims[d] = -1;
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (dim->dim_value < 0)
                return eng_fail(err, ENG_INVALID, "%s '%s' has dim %zu = %lld; dims must be >= 0",
                                kind, vp->name, d, (long long)dim->dim_value);
            v->info.dims[d] = dim->dim_value;
        } else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
            v->dim_param[d] = nn_arena_str(&g->arena, dim->dim_param);
            if (!v->dim_param[d]) return eng_no_memory(err);
        }
    }
    return 0;
}

static int read_values(struct nn_graph *g, Onnx__ValueInfoProto *const *src, size_t n,
                       const char *kind, struct nn_value_info **out, struct eng_error *err)
{
    *out = nn_arena_array(&g->arena, n, sizeof **out);
    if (n && !*out) return eng_no_memory(err);
    for (size_t i = 0; i < n; i++)
        if (read_value(g, src[i], kind, i, &(*out)[i], err)) return -1;
    return 0;
}

static int read_attr(struct nn_graph *g, const Onnx__AttributeProto *ap, const char *node,
                     const char *op, struct nn_attr *at, struct eng_error *err)
{
    char what[320];
    snprintf(what, sizeof what, "node '%s' (%s) attribute '%s'", node, op,
             ap->name ? ap->name : "");
    if (!ap->name || !ap->name[0])
        return eng_fail(err, ENG_INVALID, "node '%s' (%s) has an attribute with no name", node, op);
    at->name = nn_arena_str(&g->arena, ap->name);
    if (!at->name) return eng_no_memory(err);
    if (!ap->has_type)
        return eng_fail(err, ENG_INVALID, "%s has no type (required since IR version 2)", what);
    at->type = (enum nn_attr_type)ap->type;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        at->f = ap->f;
        return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        at->i = ap->i;
        return 0;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        at->s = copy_attr_bytes(&g->arena, &ap->s, what, err);
        return at->s ? 0 : -1;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
        if (!ap->t) return eng_fail(err, ENG_INVALID, "%s has type TENSOR but no tensor", what);
        return read_tensor(g, ap->t, what, &at->t, err);
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: {
        float *f = nn_arena_array(&g->arena, ap->n_floats, sizeof *f);
        if (ap->n_floats && !f) return eng_no_memory(err);
        if (ap->n_floats) memcpy(f, ap->floats, ap->n_floats * sizeof *f);
        at->floats = f;
        at->count = ap->n_floats;
        return 0;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: {
        int64_t *v = nn_arena_array(&g->arena, ap->n_ints, sizeof *v);
        if (ap->n_ints && !v) return eng_no_memory(err);
        if (ap->n_ints) memcpy(v, ap->ints, ap->n_ints * sizeof *v);
        at->ints = v;
        at->count = ap->n_ints;
        return 0;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: {
        const char **s = nn_arena_array(&g->arena, ap->n_strings, sizeof *s);
        if (ap->n_strings && !s) return eng_no_memory(err);
        for (size_t k = 0; k < ap->n_strings; k++)
            if (!(s[k] = copy_attr_bytes(&g->arena, &ap->strings[k], what, err))) return -1;
        at->strings = s;
        at->count = ap->n_strings;
        return 0;
    }
    default:
        return eng_fail(err, ENG_UNSUPPORTED,
                        "%s has type %d; supported: float, int, string, tensor, floats, ints, "
                        "strings",
                        what, (int)ap->type);
    }
}

static const char *const *copy_names(struct nn_arena *a, char *const *src, size_t n)
{
    const char **out = nn_arena_array(a, n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = nn_arena_str(a, src[i]))) return NULL;
    return out;
}

static int read_node(struct nn_graph *g, const Onnx__NodeProto *np, size_t index,
                     struct nn_node *node, struct eng_error *err)
{
    if (!np->op_type || !np->op_type[0])
        return eng_fail(err, ENG_INVALID, "node %zu ('%s') has no op_type", index,
                        np->name ? np->name : "");
    node->name = nn_arena_str(&g->arena, np->name);
    node->op_type = nn_arena_str(&g->arena, np->op_type);
    node->domain = nn_arena_str(&g->arena, np->domain);
    node->inputs = copy_names(&g->arena, np->input, np->n_input);
    node->outputs = copy_names(&g->arena, np->output, np->n_output);
    struct nn_attr *attrs = nn_arena_array(&g->arena, np->n_attribute, sizeof *attrs);
    if (!node->name || !node->op_type || !node->domain || !node->inputs || !node->outputs ||
        (np->n_attribute && !attrs))
        return eng_no_memory(err);
    node->n_inputs = np->n_input;
    node->n_outputs = np->n_output;
    node->n_attrs = np->n_attribute;
    node->attrs = attrs;
    for (size_t k = 0; k < np->n_attribute; k++)
        if (read_attr(g, np->attribute[k], node->name, node->op_type, &attrs[k], err)) return -1;
    return 0;
}

static int cmp_init(const void *a, const void *b)
{
    return strcmp((*(const struct nn_tensor *const *)a)->info.name,
                  (*(const struct nn_tensor *const *)b)->info.name);
}

void nn_graph_sort_initializers(struct nn_graph *g)
{
    for (size_t i = 0; i < g->n_inits; i++)
        g->inits_sorted[i] = &g->inits[i];
    if (g->n_inits) qsort(g->inits_sorted, g->n_inits, sizeof *g->inits_sorted, cmp_init);
}

/* The initializer called name (any one of duplicates), or NULL. */
static const struct nn_tensor *find_init(const struct nn_graph *g, const char *name)
{
    size_t lo = 0, hi = g->n_inits;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->inits_sorted[mid]->info.name, name);
        if (!c) return g->inits_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int read_graph(struct nn_graph *g, const Onnx__ModelProto *mp, struct eng_error *err)
{
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) return eng_fail(err, ENG_INVALID, "the ONNX model has no graph");
    if (gp->n_node > NN_MAX_NODES)
        return eng_fail(err, ENG_TOO_LARGE, "the ONNX graph has %zu nodes; at most %d", gp->n_node,
                        NN_MAX_NODES);
    g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    g->producer_name = mp->producer_name ? nn_arena_str(&g->arena, mp->producer_name) : NULL;
    g->producer_version =
        mp->producer_version ? nn_arena_str(&g->arena, mp->producer_version) : NULL;
    g->name = gp->name ? nn_arena_str(&g->arena, gp->name) : NULL;
    if ((mp->producer_name && !g->producer_name) ||
        (mp->producer_version && !g->producer_version) || (gp->name && !g->name))
        return eng_no_memory(err);

    g->opsets = nn_arena_array(&g->arena, mp->n_opset_import, sizeof *g->opsets);
    if (mp->n_opset_import && !g->opsets) return eng_no_memory(err);
    g->n_opsets = mp->n_opset_import;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        g->opsets[i].domain = nn_arena_str(&g->arena, mp->opset_import[i]->domain);
        if (!g->opsets[i].domain) return eng_no_memory(err);
        g->opsets[i].version = mp->opset_import[i]->version;
    }

    g->nodes = nn_arena_array(&g->arena, gp->n_node, sizeof *g->nodes);
    if (gp->n_node && !g->nodes) return eng_no_memory(err);
    g->n_nodes = gp->n_node;
    for (size_t i = 0; i < gp->n_node; i++)
        if (read_node(g, gp->node[i], i, &g->nodes[i], err)) return -1;

    g->inits = nn_arena_array(&g->arena, gp->n_initializer, sizeof *g->inits);
    g->inits_sorted = nn_arena_array(&g->arena, gp->n_initializer, sizeof *g->inits_sorted);
    if (gp->n_initializer && (!g->inits || !g->inits_sorted)) return eng_no_memory(err);
    g->n_inits = gp->n_initializer;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        char what[300];
        snprintf(what, sizeof what, "initializer '%s'",
                 gp->initializer[i]->name ? gp->initializer[i]->name : "");
        if (read_tensor(g, gp->initializer[i], what, &g->inits[i], err)) return -1;
    }
    nn_graph_sort_initializers(g);

    if (read_values(g, gp->input, gp->n_input, "graph input", &g->graph_inputs, err) ||
        read_values(g, gp->output, gp->n_output, "graph output", &g->outputs, err) ||
        read_values(g, gp->value_info, gp->n_value_info, "value_info", &g->value_info, err))
        return -1;
    g->n_graph_inputs = gp->n_input;
    g->n_outputs = gp->n_output;
    g->n_value_info = gp->n_value_info;
    g->inputs = nn_arena_array(&g->arena, gp->n_input, sizeof *g->inputs);
    if (gp->n_input && !g->inputs) return eng_no_memory(err);
    for (size_t i = 0; i < gp->n_input; i++)
        if (!find_init(g, g->graph_inputs[i].info.name)) g->inputs[g->n_inputs++] = i;
    return 0;
}

struct nn_graph *nn_graph_read(const void *data, size_t size, struct eng_error *err)
{
    if (size > NN_MAX_BYTES) {
        eng_fail(err, ENG_TOO_LARGE, "the ONNX model has %zu bytes; at most %zu", size,
                 NN_MAX_BYTES);
        return NULL;
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    if (!mp) {
        eng_fail(err, ENG_UNDECODABLE, "not an ONNX model: its protobuf does not parse");
        return NULL;
    }
    struct nn_graph *g = calloc(1, sizeof *g);
    int rc = g ? read_graph(g, mp, err) : eng_no_memory(err);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (rc) {
        nn_graph_free(g);
        return NULL;
    }
    return g;
}

struct nn_graph *nn_graph_read_file(const char *path, struct eng_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eng_fail(err, ENG_INVALID, "cannot open ONNX model '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        eng_fail(err, ENG_INVALID, "ONNX model '%s' is not a regular file", path);
        fclose(f);
        return NULL;
    }
    if ((uint64_t)st.st_size > NN_MAX_BYTES) {
        eng_fail(err, ENG_TOO_LARGE, "ONNX model '%s' has %lld bytes; at most %zu", path,
                 (long long)st.st_size, NN_MAX_BYTES);
        fclose(f);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *buf = malloc(size ? size : 1);
    if (!buf) {
        eng_no_memory(err);
        fclose(f);
        return NULL;
    }
    size_t got = fread(buf, 1, size, f);
    int failed = ferror(f);
    fclose(f);
    struct nn_graph *g = NULL;
    if (failed || got != size)
        eng_fail(err, ENG_INVALID, "cannot read ONNX model '%s'", path);
    else
        g = nn_graph_read(buf, size, err);
    free(buf);
    return g;
}

int nn_tensor_read_pb(const void *buf, size_t size, void **data, struct nn_tensor_info *info,
                      struct eng_error *err)
{
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, buf);
    if (!tp) return eng_fail(err, ENG_UNDECODABLE, "not a TensorProto");
    int rc = -1;
    size_t count = 1;
    *data = NULL;
    memset(info, 0, sizeof *info);
    if (!tp->has_data_type || (tp->data_type != NN_FLOAT && tp->data_type != NN_INT64)) {
        eng_fail(err, ENG_UNSUPPORTED, "data_type %d; supported: 1 (float), 7 (int64)",
                 (int)tp->data_type);
        goto done;
    }
    if (tp->n_dims > NN_MAX_RANK) {
        eng_fail(err, ENG_INVALID, "rank %zu; at most %d is supported", tp->n_dims, NN_MAX_RANK);
        goto done;
    }
    info->dtype = (enum nn_dtype)tp->data_type;
    info->rank = (int)tp->n_dims;
    size_t elem = nn_dtype_size(info->dtype);
    for (size_t d = 0; d < tp->n_dims; d++) {
        if (tp->dims[d] < 0 || __builtin_mul_overflow(count, (size_t)tp->dims[d], &count) ||
            count > NN_MAX_BYTES / elem) {
            eng_fail(err, ENG_INVALID, "dim %zu = %lld is negative or too large", d,
                     (long long)tp->dims[d]);
            goto done;
        }
        info->dims[d] = tp->dims[d];
    }
    /* raw_data is little-endian, as the host is. */
    const void *typed =
        info->dtype == NN_FLOAT ? (const void *)tp->float_data : (const void *)tp->int64_data;
    size_t have = tp->has_raw_data          ? tp->raw_data.len
                  : info->dtype == NN_FLOAT ? tp->n_float_data * elem
                                            : tp->n_int64_data * elem;
    if (have != count * elem) {
        eng_fail(err, ENG_INVALID, "%zu data bytes for %zu elements", have, count);
        goto done;
    }
    *data = malloc(count ? have : 1);
    if (!*data) {
        eng_no_memory(err);
        goto done;
    }
    if (have) memcpy(*data, tp->has_raw_data ? (const void *)tp->raw_data.data : typed, have);
    rc = 0;
done:
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

void nn_graph_free(struct nn_graph *g)
{
    if (!g) return;
    while (g->owned) {
        struct nn_owned *next = g->owned->next;
        free(g->owned->data);
        g->owned = next;
    }
    nn_arena_free(&g->arena);
    free(g);
}

/* Writing: protobuf-c messages that point into the graph, their arrays in a scratch arena. */

static Onnx__TensorProto *write_tensor(struct nn_arena *a, const struct nn_tensor *t)
{
    Onnx__TensorProto *tp = nn_arena_alloc(a, sizeof *tp);
    int64_t *dims = nn_arena_array(a, t->info.rank ? (size_t)t->info.rank : 1, sizeof *dims);
    if (!tp || !dims) return NULL;
    onnx__tensor_proto__init(tp);
    memcpy(dims, t->info.dims, (size_t)t->info.rank * sizeof *dims);
    tp->n_dims = (size_t)t->info.rank;
    tp->dims = dims;
    tp->has_data_type = 1;
    tp->data_type = t->info.dtype;
    tp->name = (char *)t->info.name;
    tp->has_raw_data = 1;
    tp->raw_data.len = t->count * nn_dtype_size(t->info.dtype);
    tp->raw_data.data = (uint8_t *)t->data;
    return tp;
}

static Onnx__ValueInfoProto **write_values(struct nn_arena *a, const struct nn_value_info *v,
                                           size_t n)
{
    Onnx__ValueInfoProto **out = nn_arena_array(a, n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        Onnx__ValueInfoProto *vp = nn_arena_alloc(a, sizeof *vp);
        if (!(out[i] = vp)) return NULL;
        onnx__value_info_proto__init(vp);
        vp->name = (char *)v[i].info.name;
        if (v[i].info.dtype == NN_UNDEFINED && v[i].info.rank < 0) continue;
        Onnx__TypeProto *type = nn_arena_alloc(a, sizeof *type);
        Onnx__TypeProto__Tensor *tt = nn_arena_alloc(a, sizeof *tt);
        if (!type || !tt) return NULL;
        onnx__type_proto__init(type);
        onnx__type_proto__tensor__init(tt);
        type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        type->tensor_type = tt;
        vp->type = type;
        tt->has_elem_type = v[i].info.dtype != NN_UNDEFINED;
        tt->elem_type = v[i].info.dtype;
        if (v[i].info.rank < 0) continue;
        size_t rank = (size_t)v[i].info.rank;
        Onnx__TensorShapeProto *shape = nn_arena_alloc(a, sizeof *shape);
        Onnx__TensorShapeProto__Dimension *dims = nn_arena_array(a, rank ? rank : 1, sizeof *dims);
        Onnx__TensorShapeProto__Dimension **dimp = nn_arena_array(a, rank ? rank : 1, sizeof *dimp);
        if (!shape || !dims || !dimp) return NULL;
        onnx__tensor_shape_proto__init(shape);
        for (size_t d = 0; d < rank; d++) {
            onnx__tensor_shape_proto__dimension__init(&dims[d]);
            if (v[i].dim_param[d]) {
                dims[d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                dims[d].dim_param = (char *)v[i].dim_param[d];
            } else if (v[i].info.dims[d] >= 0) {
                dims[d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                dims[d].dim_value = v[i].info.dims[d];
            }
            dimp[d] = &dims[d];
        }
        shape->n_dim = rank;
        shape->dim = dimp;
        tt->shape = shape;
    }
    return out;
}

static Onnx__AttributeProto *write_attr(struct nn_arena *a, const struct nn_attr *at)
{
    Onnx__AttributeProto *ap = nn_arena_alloc(a, sizeof *ap);
    if (!ap) return NULL;
    onnx__attribute_proto__init(ap);
    ap->name = (char *)at->name;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)at->type;
    switch (at->type) {
    case NN_ATTR_FLOAT:
        ap->has_f = 1;
        ap->f = at->f;
        break;
    case NN_ATTR_INT:
        ap->has_i = 1;
        ap->i = at->i;
        break;
    case NN_ATTR_STRING:
        ap->has_s = 1;
        ap->s.len = strlen(at->s);
        ap->s.data = (uint8_t *)at->s;
        break;
    case NN_ATTR_TENSOR:
        if (!(ap->t = write_tensor(a, &at->t))) return NULL;
        break;
    case NN_ATTR_FLOATS:
        ap->n_floats = at->count;
        ap->floats = (float *)at->floats;
        break;
    case NN_ATTR_INTS:
        ap->n_ints = at->count;
        ap->ints = (int64_t *)at->ints;
        break;
    case NN_ATTR_STRINGS:
        ap->strings = nn_arena_array(a, at->count ? at->count : 1, sizeof *ap->strings);
        if (!ap->strings) return NULL;
        ap->n_strings = at->count;
        for (size_t k = 0; k < at->count; k++) {
            ap->strings[k].len = strlen(at->strings[k]);
            ap->strings[k].data = (uint8_t *)at->strings[k];
        }
        break;
    }
    return ap;
}

static Onnx__NodeProto *write_node(struct nn_arena *a, const struct nn_node *node)
{
    Onnx__NodeProto *np = nn_arena_alloc(a, sizeof *np);
    Onnx__AttributeProto **attrs =
        nn_arena_array(a, node->n_attrs ? node->n_attrs : 1, sizeof *attrs);
    if (!np || !attrs) return NULL;
    onnx__node_proto__init(np);
    np->n_input = node->n_inputs;
    np->input = (char **)node->inputs;
    np->n_output = node->n_outputs;
    np->output = (char **)node->outputs;
    np->name = node->name[0] ? (char *)node->name : NULL;
    np->op_type = (char *)node->op_type;
    np->domain = node->domain[0] ? (char *)node->domain : NULL;
    for (size_t k = 0; k < node->n_attrs; k++)
        if (!(attrs[k] = write_attr(a, &node->attrs[k]))) return NULL;
    np->n_attribute = node->n_attrs;
    np->attribute = attrs;
    return np;
}

static Onnx__ModelProto *write_model(struct nn_arena *a, const struct nn_graph *g)
{
    Onnx__ModelProto *mp = nn_arena_alloc(a, sizeof *mp);
    Onnx__GraphProto *gp = nn_arena_alloc(a, sizeof *gp);
    Onnx__OperatorSetIdProto *ops = nn_arena_array(a, g->n_opsets + 1, sizeof *ops);
    Onnx__OperatorSetIdProto **opp = nn_arena_array(a, g->n_opsets + 1, sizeof *opp);
    Onnx__NodeProto **nodes = nn_arena_array(a, g->n_nodes + 1, sizeof *nodes);
    Onnx__TensorProto **inits = nn_arena_array(a, g->n_inits + 1, sizeof *inits);
    if (!mp || !gp || !ops || !opp || !nodes || !inits) return NULL;
    onnx__model_proto__init(mp);
    onnx__graph_proto__init(gp);
    mp->has_ir_version = 1;
    mp->ir_version = g->ir_version;
    mp->producer_name = (char *)g->producer_name;
    mp->producer_version = (char *)g->producer_version;
    mp->graph = gp;
    for (size_t i = 0; i < g->n_opsets; i++) {
        onnx__operator_set_id_proto__init(&ops[i]);
        ops[i].domain = (char *)g->opsets[i].domain;
        ops[i].has_version = 1;
        ops[i].version = g->opsets[i].version;
        opp[i] = &ops[i];
    }
    mp->n_opset_import = g->n_opsets;
    mp->opset_import = opp;

    gp->name = (char *)g->name;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!(nodes[i] = write_node(a, &g->nodes[i]))) return NULL;
    gp->n_node = g->n_nodes;
    gp->node = nodes;
    for (size_t i = 0; i < g->n_inits; i++)
        if (!(inits[i] = write_tensor(a, &g->inits[i]))) return NULL;
    gp->n_initializer = g->n_inits;
    gp->initializer = inits;
    gp->input = write_values(a, g->graph_inputs, g->n_graph_inputs);
    gp->output = write_values(a, g->outputs, g->n_outputs);
    gp->value_info = write_values(a, g->value_info, g->n_value_info);
    if (!gp->input || !gp->output || !gp->value_info) return NULL;
    gp->n_input = g->n_graph_inputs;
    gp->n_output = g->n_outputs;
    gp->n_value_info = g->n_value_info;
    return mp;
}

int nn_graph_write(const struct nn_graph *g, void **out, size_t *size, struct eng_error *err)
{
    struct nn_arena scratch = {0};
    Onnx__ModelProto *mp = write_model(&scratch, g);
    if (!mp) {
        nn_arena_free(&scratch);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory writing the ONNX model");
    }
    size_t n = onnx__model_proto__get_packed_size(mp);
    int rc = 0;
    if (n > NN_MAX_BYTES) {
        rc = eng_fail(err, ENG_TOO_LARGE, "the ONNX model would have %zu bytes; at most %zu", n,
                      NN_MAX_BYTES);
    } else if (!(*out = malloc(n ? n : 1))) {
        rc = eng_fail(err, ENG_NO_MEMORY, "out of memory writing the ONNX model");
    } else {
        *size = onnx__model_proto__pack(mp, *out);
    }
    nn_arena_free(&scratch);
    return rc;
}

int64_t nn_graph_ir_version(const struct nn_graph *g)
{
    return g->ir_version;
}

int64_t nn_graph_opset(const struct nn_graph *g)
{
    for (size_t i = 0; i < g->n_opsets; i++)
        if (!strcmp(g->opsets[i].domain, "") || !strcmp(g->opsets[i].domain, "ai.onnx"))
            return g->opsets[i].version;
    return -1;
}

size_t nn_graph_input_count(const struct nn_graph *g)
{
    return g->n_inputs;
}

const struct nn_tensor_info *nn_graph_input(const struct nn_graph *g, size_t i)
{
    return i < g->n_inputs ? &g->graph_inputs[g->inputs[i]].info : NULL;
}

size_t nn_graph_output_count(const struct nn_graph *g)
{
    return g->n_outputs;
}

const struct nn_tensor_info *nn_graph_output(const struct nn_graph *g, size_t i)
{
    return i < g->n_outputs ? &g->outputs[i].info : NULL;
}

/* The array of which, and its length in *n. */
static const struct nn_value_info *values_of(const struct nn_graph *g, enum nn_values which,
                                             size_t *n)
{
    switch (which) {
    case NN_VALUES_INPUT:
        *n = g->n_graph_inputs;
        return g->graph_inputs;
    case NN_VALUES_OUTPUT:
        *n = g->n_outputs;
        return g->outputs;
    case NN_VALUES_INFO:
        break;
    }
    *n = g->n_value_info;
    return g->value_info;
}

size_t nn_graph_value_count(const struct nn_graph *g, enum nn_values which)
{
    size_t n;
    values_of(g, which, &n);
    return n;
}

const struct nn_tensor_info *nn_graph_value(const struct nn_graph *g, enum nn_values which,
                                            size_t i, const char *const **dim_params)
{
    size_t n;
    const struct nn_value_info *v = values_of(g, which, &n);
    if (i >= n) return NULL;
    if (dim_params) *dim_params = v[i].dim_param;
    return &v[i].info;
}

size_t nn_graph_node_count(const struct nn_graph *g)
{
    return g->n_nodes;
}

const struct nn_node *nn_graph_node(const struct nn_graph *g, size_t i)
{
    return i < g->n_nodes ? &g->nodes[i] : NULL;
}

const struct nn_attr *nn_node_attr(const struct nn_node *node, const char *name)
{
    for (size_t k = 0; k < node->n_attrs; k++)
        if (!strcmp(node->attrs[k].name, name)) return &node->attrs[k];
    return NULL;
}

size_t nn_graph_initializer_count(const struct nn_graph *g)
{
    return g->n_inits;
}

const struct nn_tensor *nn_graph_initializer_at(const struct nn_graph *g, size_t i)
{
    return i < g->n_inits ? &g->inits[i] : NULL;
}

const struct nn_tensor *nn_graph_initializer(const struct nn_graph *g, const char *name)
{
    return find_init(g, name);
}

const float *nn_tensor_floats(const struct nn_tensor *t)
{
    return t->info.dtype == NN_FLOAT ? t->data : NULL;
}

struct nn_graph *nn_graph_with_initializers(const struct nn_graph *g, size_t n,
                                            const char *const *names, const float *const *values,
                                            struct eng_error *err)
{
    for (size_t k = 0; k < n; k++) {
        const struct nn_tensor *t = find_init(g, names[k]);
        if (!t) {
            eng_fail(err, ENG_NOT_FOUND, "the model has no initializer '%s'", names[k]);
            return NULL;
        }
        if (t->info.dtype != NN_FLOAT) {
            eng_fail(err, ENG_INVALID, "initializer '%s' is not float", names[k]);
            return NULL;
        }
    }
    /* A copy through the writer and the reader: the structure is the original's by
     * construction, and the copy owns all of its memory. */
    void *bytes = NULL;
    size_t size = 0;
    if (nn_graph_write(g, &bytes, &size, err)) return NULL;
    struct nn_graph *out = nn_graph_read(bytes, size, err);
    free(bytes);
    if (!out) return NULL;
    for (size_t k = 0; k < n; k++) {
        const struct nn_tensor *t = find_init(out, names[k]);
        if (t->count) memcpy((void *)t->data, values[k], t->count * sizeof(float));
    }
    return out;
}
