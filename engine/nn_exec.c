/* The executor: each node becomes one oneDNN primitive (or, for reshapes and no-ops, a view of
 * its input's buffer). Every value gets one buffer at compile time, so running is copying the
 * inputs in, executing the primitives in order and copying the outputs out. */
#include "nn.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

/* Largest argument list of one primitive: Concat's sources, its destination and the scratchpad. */
#define MAX_ARGS 65

struct value {
    const char *name;
    int rank;
    int64_t dims[NN_MAX_RANK];
    size_t count;
    float *buf;
    int owned; /* 0 for a view of another value's buffer */
};

/* Broadcast-copies src (dims sdims, right-aligned to 2-D) into dst [m, n] before a Gemm, whose
 * sum post-op then adds beta times it. */
struct gemm_fill {
    int src, dst;
    int64_t m, n, sm, sn;
};

struct step {
    const struct nn_node *node;
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[MAX_ARGS];
    int has_fill;
    struct gemm_fill fill;
    dnnl_memory_desc_t scratch_md; /* the scratchpad the primitive needs; scratch_size 0: none */
    size_t scratch_size;
};

struct nn_plan {
    const struct nn_graph *g;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    struct value *values;
    size_t n_values, cap_values;
    struct step *steps;
    size_t n_steps;
    size_t n_inputs, n_outputs;
    int *input_ids, *output_ids;
    /* Every primitive uses dnnl_scratchpad_mode_user and gets this buffer (the largest any step
     * needs) as DNNL_ARG_SCRATCHPAD, so nothing of a run lives in oneDNN's per-thread state. */
    void *scratch;
    size_t scratch_size;
};

static int no_memory(struct eng_error *err)
{
    return eng_fail(err, ENG_NO_MEMORY, "out of memory");
}

static int dnnl_check(dnnl_status_t st, const char *call, const struct nn_node *node,
                      struct eng_error *err)
{
    if (st == dnnl_success) return 0;
    return eng_fail(err, ENG_INTERNAL, "node '%s' (%s): %s failed with oneDNN status %d",
                    node ? node->name : "", node ? node->op_type : "-", call, (int)st);
}

static int unsupported(const struct nn_node *node, const char *what, struct eng_error *err)
{
    return eng_fail(err, ENG_UNSUPPORTED, "node '%s' (%s): %s", node->name, node->op_type, what);
}

static int invalid(const struct nn_node *node, const char *what, struct eng_error *err)
{
    return eng_fail(err, ENG_INVALID, "node '%s' (%s): %s", node->name, node->op_type, what);
}

static int64_t attr_int(const struct nn_node *node, const char *name, int64_t dflt)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    return a && a->type == NN_ATTR_INT ? a->i : dflt;
}

static float attr_float(const struct nn_node *node, const char *name, float dflt)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    return a && a->type == NN_ATTR_FLOAT ? a->f : dflt;
}

/* The ints of an attribute, or NULL (with *n = 0) when the node does not have it. */
static const int64_t *attr_ints(const struct nn_node *node, const char *name, size_t *n)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    if (!a || a->type != NN_ATTR_INTS) {
        *n = 0;
        return NULL;
    }
    *n = a->count;
    return a->ints;
}

static size_t dims_count(int rank, const int64_t *dims)
{
    size_t count = 1;
    for (int d = 0; d < rank; d++)
        count *= (size_t)dims[d];
    return count;
}

static int find_value(const struct nn_plan *p, const char *name)
{
    for (size_t i = p->n_values; i-- > 0;)
        if (!strcmp(p->values[i].name, name)) return (int)i;
    return -1;
}

/* A new value; buf NULL allocates an owned buffer. Returns its index, or -1 with err set. */
static int add_value(struct nn_plan *p, const char *name, int rank, const int64_t *dims, float *buf,
                     struct eng_error *err)
{
    if (p->n_values == p->cap_values) {
        size_t cap = p->cap_values ? 2 * p->cap_values : 32;
        struct value *v = realloc(p->values, cap * sizeof *v);
        if (!v) return no_memory(err);
        p->values = v;
        p->cap_values = cap;
    }
    struct value *v = &p->values[p->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->rank = rank;
    memcpy(v->dims, dims, (size_t)rank * sizeof *dims);
    v->count = dims_count(rank, dims);
    if (buf) {
        v->buf = buf;
    } else {
        /* At least one element, so a scalar or empty tensor still has a valid handle. */
        v->buf = calloc(v->count ? v->count : 1, sizeof(float));
        if (!v->buf) return no_memory(err);
        v->owned = 1;
    }
    return (int)p->n_values++;
}

/* The value a node input names, loading a float initializer on first use. */
static int input_value(struct nn_plan *p, const struct nn_node *node, size_t k,
                       struct eng_error *err)
{
    if (k >= node->n_inputs || !node->inputs[k][0]) {
        char msg[64];
        snprintf(msg, sizeof msg, "input %zu is missing", k);
        return invalid(node, msg, err);
    }
    const char *name = node->inputs[k];
    int id = find_value(p, name);
    if (id >= 0) return id;
    const struct nn_tensor *t = nn_graph_initializer(p->g, name);
    if (!t) {
        char msg[300];
        snprintf(msg, sizeof msg, "input '%.200s' is not produced by an earlier node", name);
        return invalid(node, msg, err);
    }
    if (t->info.dtype != NN_FLOAT) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "initializer '%.200s' has data_type %d; only 1 (float) is "
                 "supported",
                 name, (int)t->info.dtype);
        return unsupported(node, msg, err);
    }
    id = add_value(p, name, t->info.rank, t->info.dims, NULL, err);
    if (id >= 0 && t->count) memcpy(p->values[id].buf, t->data, t->count * sizeof(float));
    return id;
}

/* A dense row-major descriptor; rank 0 is described as one element. */
static int plain_md(dnnl_memory_desc_t *md, int rank, const int64_t *dims,
                    const struct nn_node *node, struct eng_error *err)
{
    dnnl_dims_t d = {1}, strides = {1};
    int n = rank ? rank : 1;
    for (int k = 0; k < rank; k++)
        d[k] = dims[k];
    strides[n - 1] = 1;
    for (int k = n - 1; k > 0; k--)
        strides[k - 1] = strides[k] * d[k];
    return dnnl_check(dnnl_memory_desc_init_by_strides(md, n, d, dnnl_f32, strides),
                      "dnnl_memory_desc_init_by_strides", node, err);
}

static int value_md(const struct nn_plan *p, int id, dnnl_memory_desc_t *md,
                    const struct nn_node *node, struct eng_error *err)
{
    return plain_md(md, p->values[id].rank, p->values[id].dims, node, err);
}

/* Appends an argument: a memory object over value id's buffer described by md. */
static int add_arg(struct nn_plan *p, struct step *s, int arg, int id, const dnnl_memory_desc_t *md,
                   struct eng_error *err)
{
    if (s->nargs == MAX_ARGS) return unsupported(s->node, "too many inputs", err);
    dnnl_memory_t m;
    if (dnnl_check(dnnl_memory_create(&m, md, p->engine, p->values[id].buf), "dnnl_memory_create",
                   s->node, err))
        return -1;
    s->args[s->nargs].arg = arg;
    s->args[s->nargs].memory = m;
    s->nargs++;
    return 0;
}

/* *out: a copy of attr (NULL: default attributes) with the scratchpad mode set to user, so the
 * plan provides the scratchpad (see struct nn_plan). The caller destroys *out. */
static int user_scratchpad_attr(const_dnnl_primitive_attr_t attr, dnnl_primitive_attr_t *out,
                                const struct nn_node *node, struct eng_error *err)
{
    *out = NULL;
    dnnl_status_t st =
        attr ? dnnl_primitive_attr_clone(out, attr) : dnnl_primitive_attr_create(out);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(*out, dnnl_scratchpad_mode_user);
    if (st != dnnl_success && *out) {
        dnnl_primitive_attr_destroy(*out);
        *out = NULL;
    }
    return dnnl_check(st, "dnnl scratchpad attribute setup", node, err);
}

/* Creates the primitive from an op descriptor (or an existing primitive descriptor, made with
 * user_scratchpad_attr's attributes, when op_desc is NULL), consuming pd, and records the
 * scratchpad it needs. */
static int make_prim(struct nn_plan *p, struct step *s, const_dnnl_op_desc_t op_desc,
                     const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t pd,
                     struct eng_error *err)
{
    if (op_desc) {
        dnnl_primitive_attr_t user;
        if (user_scratchpad_attr(attr, &user, s->node, err)) return -1;
        dnnl_status_t st = dnnl_primitive_desc_create(&pd, op_desc, user, p->engine, NULL);
        dnnl_primitive_attr_destroy(user);
        if (dnnl_check(st, "dnnl_primitive_desc_create", s->node, err)) return -1;
    }
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (md && (s->scratch_size = dnnl_memory_desc_get_size(md))) {
        s->scratch_md = *md;
        if (s->scratch_size > p->scratch_size) p->scratch_size = s->scratch_size;
    }
    dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return dnnl_check(st, "dnnl_primitive_create", s->node, err);
}

/* One spatial axis of a Conv or pooling window: the output size and oneDNN's paddings. ceil_mode
 * is expressed by widening the end padding so oneDNN's floor division gives the same size. */
static int window(const struct nn_node *node, int64_t in, int64_t k, int64_t stride, int64_t dil,
                  int64_t pad_b, int64_t pad_e, int ceil_mode, int64_t *out, int64_t *pl,
                  int64_t *pr, struct eng_error *err)
{
    const struct nn_attr *ap = nn_node_attr(node, "auto_pad");
    const char *auto_pad = ap && ap->type == NN_ATTR_STRING ? ap->s : "NOTSET";
    int64_t dk = (k - 1) * dil + 1;
    if (k < 1 || stride < 1 || dil < 1)
        return invalid(node, "kernel, strides and dilations must be >= 1", err);
    if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
        *out = (in + stride - 1) / stride;
        int64_t total = (*out - 1) * stride + dk - in;
        if (total < 0) total = 0;
        *pl = !strcmp(auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
        *pr = total - *pl;
        return 0;
    }
    if (!strcmp(auto_pad, "VALID")) {
        pad_b = pad_e = 0;
    } else if (strcmp(auto_pad, "NOTSET")) {
        return unsupported(node, "auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID", err);
    }
    if (pad_b < 0 || pad_e < 0) return invalid(node, "pads must be >= 0", err);
    int64_t span = in + pad_b + pad_e - dk;
    if (span < 0) return invalid(node, "the kernel is larger than the padded input", err);
    *out = (ceil_mode ? span + stride - 1 : span) / stride + 1;
    /* A window may not start in the end padding (as ONNX's reference and PyTorch). */
    if (ceil_mode && (*out - 1) * stride >= in + pad_b) (*out)--;
    *pl = pad_b;
    *pr = (*out - 1) * stride + dk - in - pad_b;
    if (*pr < pad_e) *pr = pad_e;
    return 0;
}

/* Spatial window attributes shared by Conv and pooling. k: the kernel (from the weights or the
 * kernel_shape attribute). Fills the output's spatial dims and oneDNN's strides, dilations (zero
 * based) and paddings. */
static int windows(const struct nn_node *node, const struct value *x, const int64_t *k,
                   int ceil_mode, int64_t *out_dims, dnnl_dims_t strides, dnnl_dims_t dil,
                   dnnl_dims_t pl, dnnl_dims_t pr, struct eng_error *err)
{
    int ns = x->rank - 2;
    size_t n_s, n_d, n_p;
    const int64_t *s = attr_ints(node, "strides", &n_s);
    const int64_t *d = attr_ints(node, "dilations", &n_d);
    const int64_t *pads = attr_ints(node, "pads", &n_p);
    if ((s && n_s != (size_t)ns) || (d && n_d != (size_t)ns) || (pads && n_p != 2 * (size_t)ns))
        return invalid(node, "strides, dilations or pads do not match the spatial rank", err);
    for (int a = 0; a < ns; a++) {
        int64_t st = s ? s[a] : 1, di = d ? d[a] : 1;
        if (window(node, x->dims[2 + a], k[a], st, di, pads ? pads[a] : 0, pads ? pads[ns + a] : 0,
                   ceil_mode, &out_dims[2 + a], &pl[a], &pr[a], err))
            return -1;
        strides[a] = st;
        dil[a] = di - 1;
    }
    return 0;
}

static int check_spatial(const struct nn_node *node, const struct value *x, struct eng_error *err)
{
    if (x->rank < 3 || x->rank > 5)
        return unsupported(node, "the input must have 1 to 3 spatial dims (rank 3 to 5)", err);
    return 0;
}

static int compile_conv(struct nn_plan *p, struct step *s, int fuse_relu, const char *out_name,
                        struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int xi = input_value(p, node, 0, err);
    if (xi < 0) return -1;
    int wi = input_value(p, node, 1, err);
    if (wi < 0) return -1;
    int bi = -1;
    if (node->n_inputs > 2 && node->inputs[2][0] && (bi = input_value(p, node, 2, err)) < 0)
        return -1;
    if (check_spatial(node, &p->values[xi], err)) return -1;
    /* Copies, as adding values may move the table. */
    struct value x = p->values[xi], w = p->values[wi];
    int64_t group = attr_int(node, "group", 1);
    if (w.rank != x.rank || group < 1 || w.dims[0] % group || x.dims[1] != w.dims[1] * group)
        return invalid(node, "the weights do not fit the input and group", err);
    if (bi >= 0 && (p->values[bi].rank != 1 || p->values[bi].dims[0] != w.dims[0]))
        return invalid(node, "the bias must have one element per output channel", err);
    size_t n_k;
    const int64_t *ks = attr_ints(node, "kernel_shape", &n_k);
    for (size_t a = 0; ks && a < n_k; a++)
        if (n_k != (size_t)x.rank - 2 || ks[a] != w.dims[2 + a])
            return invalid(node, "kernel_shape does not match the weights", err);

    int64_t out[NN_MAX_RANK] = {x.dims[0], w.dims[0]};
    dnnl_dims_t strides, dil, pl, pr;
    if (windows(node, &x, w.dims + 2, 0, out, strides, dil, pl, pr, err)) return -1;
    int yi = add_value(p, out_name, x.rank, out, NULL, err);
    if (yi < 0) return -1;

    dnnl_memory_desc_t x_md, w_md, b_md, y_md;
    if (value_md(p, xi, &x_md, node, err) || value_md(p, yi, &y_md, node, err)) return -1;
    if (group > 1) {
        /* The same bytes seen as [group, M/group, C/group, k...], oneDNN's grouped layout. */
        int64_t gd[NN_MAX_RANK + 1] = {group, w.dims[0] / group};
        memcpy(gd + 2, w.dims + 1, (size_t)(w.rank - 1) * sizeof *gd);
        if (plain_md(&w_md, w.rank + 1, gd, node, err)) return -1;
    } else if (value_md(p, wi, &w_md, node, err)) {
        return -1;
    }
    if (bi >= 0 && value_md(p, bi, &b_md, node, err)) return -1;

    dnnl_convolution_desc_t desc;
    if (dnnl_check(dnnl_dilated_convolution_forward_desc_init(
                       &desc, dnnl_forward_inference, dnnl_convolution_direct, &x_md, &w_md,
                       bi >= 0 ? &b_md : NULL, &y_md, strides, dil, pl, pr),
                   "dnnl_dilated_convolution_forward_desc_init", node, err))
        return -1;
    dnnl_primitive_attr_t attr = NULL;
    if (fuse_relu) {
        dnnl_post_ops_t ops;
        if (dnnl_check(dnnl_post_ops_create(&ops), "dnnl_post_ops_create", node, err)) return -1;
        dnnl_status_t st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        if (st == dnnl_success) st = dnnl_primitive_attr_create(&attr);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
        if (dnnl_check(st, "dnnl post-op setup", node, err)) {
            dnnl_primitive_attr_destroy(attr);
            return -1;
        }
    }
    int rc = make_prim(p, s, &desc, attr, NULL, err);
    dnnl_primitive_attr_destroy(attr);
    if (rc || add_arg(p, s, DNNL_ARG_SRC, xi, &x_md, err) ||
        add_arg(p, s, DNNL_ARG_WEIGHTS, wi, &w_md, err) ||
        (bi >= 0 && add_arg(p, s, DNNL_ARG_BIAS, bi, &b_md, err)))
        return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &y_md, err);
}

static int compile_pool(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int global = !strcmp(node->op_type, "GlobalAveragePool");
    int max = !strcmp(node->op_type, "MaxPool");
    if (node->n_outputs > 1 && node->outputs[1][0])
        return unsupported(node, "the Indices output is not supported", err);
    if (attr_int(node, "storage_order", 0))
        return unsupported(node, "storage_order 1 is not supported", err);
    int xi = input_value(p, node, 0, err);
    if (xi < 0) return -1;
    if (check_spatial(node, &p->values[xi], err)) return -1;
    struct value x = p->values[xi];
    int ns = x.rank - 2;
    dnnl_dims_t k;
    int64_t out[NN_MAX_RANK] = {x.dims[0], x.dims[1]};
    dnnl_dims_t strides, dil, pl, pr;
    if (global) {
        for (int a = 0; a < ns; a++) {
            k[a] = x.dims[2 + a];
            out[2 + a] = 1;
            strides[a] = 1;
            dil[a] = pl[a] = pr[a] = 0;
        }
    } else {
        size_t n_k;
        const int64_t *ks = attr_ints(node, "kernel_shape", &n_k);
        if (!ks || n_k != (size_t)ns)
            return invalid(node, "kernel_shape must give one size per spatial dim", err);
        memcpy(k, ks, n_k * sizeof *k);
        if (windows(node, &x, k, (int)attr_int(node, "ceil_mode", 0), out, strides, dil, pl, pr,
                    err))
            return -1;
    }
    int yi = add_value(p, node->outputs[0], x.rank, out, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t x_md, y_md;
    if (value_md(p, xi, &x_md, node, err) || value_md(p, yi, &y_md, node, err)) return -1;
    dnnl_alg_kind_t alg = max ? dnnl_pooling_max
                          : attr_int(node, "count_include_pad", 0)
                              ? dnnl_pooling_avg_include_padding
                              : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t desc;
    if (dnnl_check(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &x_md,
                                                     &y_md, strides, k, dil, pl, pr),
                   "dnnl_pooling_v2_forward_desc_init", node, err) ||
        make_prim(p, s, &desc, NULL, NULL, err) || add_arg(p, s, DNNL_ARG_SRC, xi, &x_md, err))
        return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &y_md, err);
}

static int compile_relu(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int xi = input_value(p, node, 0, err);
    if (xi < 0) return -1;
    struct value x = p->values[xi];
    int yi = add_value(p, node->outputs[0], x.rank, x.dims, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t md;
    dnnl_eltwise_desc_t desc;
    if (value_md(p, xi, &md, node, err) ||
        dnnl_check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, dnnl_eltwise_relu,
                                                  &md, 0.0f, 0.0f),
                   "dnnl_eltwise_forward_desc_init", node, err) ||
        make_prim(p, s, &desc, NULL, NULL, err) || add_arg(p, s, DNNL_ARG_SRC, xi, &md, err))
        return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &md, err);
}

/* Add and Mul: oneDNN broadcasts only its second source, so the operands are swapped when the
 * first is the broadcast one (both ops commute). */
static int compile_binary(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int ai = input_value(p, node, 0, err);
    if (ai < 0) return -1;
    int bi = input_value(p, node, 1, err);
    if (bi < 0) return -1;
    struct value a = p->values[ai], b = p->values[bi];
    int rank = a.rank > b.rank ? a.rank : b.rank;
    int64_t ad[NN_MAX_RANK], bd[NN_MAX_RANK], out[NN_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        int ka = d - (rank - a.rank), kb = d - (rank - b.rank);
        ad[d] = ka >= 0 ? a.dims[ka] : 1;
        bd[d] = kb >= 0 ? b.dims[kb] : 1;
        if (ad[d] != bd[d] && ad[d] != 1 && bd[d] != 1)
            return invalid(node, "the input shapes do not broadcast", err);
        out[d] = ad[d] == 1 ? bd[d] : ad[d];
    }
    if (memcmp(ad, out, (size_t)rank * sizeof *out)) {
        if (memcmp(bd, out, (size_t)rank * sizeof *out))
            return unsupported(node, "broadcasting both inputs is not supported", err);
        int ti = ai;
        ai = bi;
        bi = ti;
        int64_t td[NN_MAX_RANK];
        memcpy(td, ad, sizeof td);
        memcpy(ad, bd, sizeof td);
        memcpy(bd, td, sizeof td);
    }
    int yi = add_value(p, node->outputs[0], rank, out, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t a_md, b_md, y_md;
    dnnl_binary_desc_t desc;
    dnnl_alg_kind_t alg = !strcmp(node->op_type, "Add") ? dnnl_binary_add : dnnl_binary_mul;
    if (plain_md(&a_md, rank, ad, node, err) || plain_md(&b_md, rank, bd, node, err) ||
        plain_md(&y_md, rank, out, node, err) ||
        dnnl_check(dnnl_binary_desc_init(&desc, alg, &a_md, &b_md, &y_md), "dnnl_binary_desc_init",
                   node, err) ||
        make_prim(p, s, &desc, NULL, NULL, err) || add_arg(p, s, DNNL_ARG_SRC_0, ai, &a_md, err) ||
        add_arg(p, s, DNNL_ARG_SRC_1, bi, &b_md, err))
        return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &y_md, err);
}

/* Gemm as a matmul whose strides express transA/transB, alpha as the output scale and beta * C
 * as a sum post-op over a destination pre-filled with C broadcast. */
static int compile_gemm(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int ai = input_value(p, node, 0, err);
    if (ai < 0) return -1;
    int bi = input_value(p, node, 1, err);
    if (bi < 0) return -1;
    int ci = -1;
    if (node->n_inputs > 2 && node->inputs[2][0] && (ci = input_value(p, node, 2, err)) < 0)
        return -1;
    struct value a = p->values[ai], b = p->values[bi];
    int ta = attr_int(node, "transA", 0) != 0, tb = attr_int(node, "transB", 0) != 0;
    float alpha = attr_float(node, "alpha", 1.0f), beta = attr_float(node, "beta", 1.0f);
    if (a.rank != 2 || b.rank != 2) return invalid(node, "A and B must be 2-D", err);
    int64_t m = a.dims[ta], k = a.dims[!ta], n = b.dims[!tb];
    if (b.dims[tb] != k) return invalid(node, "the inner dims of A and B differ", err);
    int64_t out[2] = {m, n};
    int yi = add_value(p, node->outputs[0], 2, out, NULL, err);
    if (yi < 0) return -1;
    if (ci >= 0 && beta != 0.0f) {
        struct value c = p->values[ci];
        if (c.rank > 2) return invalid(node, "C must have rank <= 2", err);
        int64_t cm = c.rank == 2 ? c.dims[0] : 1, cn = c.rank >= 1 ? c.dims[c.rank - 1] : 1;
        if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
            return invalid(node, "C does not broadcast to [M, N]", err);
        s->has_fill = 1;
        s->fill = (struct gemm_fill){ci, yi, m, n, cm, cn};
    }
    dnnl_memory_desc_t a_md, b_md, y_md;
    dnnl_dims_t a_dims = {m, k}, a_str = {ta ? 1 : k, ta ? m : 1};
    dnnl_dims_t b_dims = {k, n}, b_str = {tb ? 1 : n, tb ? k : 1};
    dnnl_matmul_desc_t desc;
    if (dnnl_check(dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, dnnl_f32, a_str),
                   "dnnl_memory_desc_init_by_strides", node, err) ||
        dnnl_check(dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, dnnl_f32, b_str),
                   "dnnl_memory_desc_init_by_strides", node, err) ||
        plain_md(&y_md, 2, out, node, err) ||
        dnnl_check(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &y_md), "dnnl_matmul_desc_init",
                   node, err))
        return -1;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t ops = NULL;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (dnnl_check(st, "dnnl_primitive_attr_create", node, err)) return -1;
    st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    if (st == dnnl_success && s->has_fill) {
        st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success) st = dnnl_post_ops_append_sum(ops, beta);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    int rc = dnnl_check(st, "dnnl attribute setup", node, err);
    if (!rc) rc = make_prim(p, s, &desc, attr, NULL, err);
    dnnl_primitive_attr_destroy(attr);
    if (rc || add_arg(p, s, DNNL_ARG_SRC, ai, &a_md, err) ||
        add_arg(p, s, DNNL_ARG_WEIGHTS, bi, &b_md, err))
        return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &y_md, err);
}

static int compile_batchnorm(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    if (attr_int(node, "training_mode", 0) || (node->n_outputs > 1 && node->outputs[1][0]))
        return unsupported(node, "only inference (one output, no training_mode) is supported", err);
    int ids[5];
    for (size_t k = 0; k < 5; k++)
        if ((ids[k] = input_value(p, node, k, err)) < 0) return -1;
    struct value x = p->values[ids[0]];
    if (x.rank < 2) return invalid(node, "the input must have a channel dim", err);
    for (int k = 1; k < 5; k++)
        if (p->values[ids[k]].rank != 1 || p->values[ids[k]].dims[0] != x.dims[1])
            return invalid(node, "scale, B, mean and var must have one element per channel", err);
    int yi = add_value(p, node->outputs[0], x.rank, x.dims, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t md, c_md;
    dnnl_batch_normalization_desc_t desc;
    if (value_md(p, ids[0], &md, node, err) || value_md(p, ids[1], &c_md, node, err) ||
        dnnl_check(dnnl_batch_normalization_forward_desc_init(
                       &desc, dnnl_forward_inference, &md, attr_float(node, "epsilon", 1e-5f),
                       dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
                   "dnnl_batch_normalization_forward_desc_init", node, err) ||
        make_prim(p, s, &desc, NULL, NULL, err))
        return -1;
    static const int args[5] = {DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN,
                                DNNL_ARG_VARIANCE};
    for (int k = 0; k < 5; k++)
        if (add_arg(p, s, args[k], ids[k], k ? &c_md : &md, err)) return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &md, err);
}

static int norm_axis(const struct nn_node *node, int64_t axis, int rank, int inclusive,
                     struct eng_error *err)
{
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank - !inclusive) return invalid(node, "axis is out of range", err);
    return (int)axis;
}

/* Softmax: opset 13 normalises along one axis; earlier opsets over everything from axis on,
 * which is a 2-D [outer, inner] softmax over the same bytes. */
static int compile_softmax(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int xi = input_value(p, node, 0, err);
    if (xi < 0) return -1;
    struct value x = p->values[xi];
    int v13 = nn_graph_opset(p->g) >= 13;
    int axis = norm_axis(node, attr_int(node, "axis", v13 ? -1 : 1), x.rank, 0, err);
    if (axis < 0) return -1;
    int yi = add_value(p, node->outputs[0], x.rank, x.dims, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t md;
    int64_t flat[2] = {(int64_t)dims_count(axis, x.dims), 0};
    flat[1] = (int64_t)x.count / (flat[0] ? flat[0] : 1);
    int rc = v13 ? value_md(p, xi, &md, node, err) : plain_md(&md, 2, flat, node, err);
    dnnl_softmax_desc_t desc;
    if (rc ||
        dnnl_check(
            dnnl_softmax_forward_desc_init(&desc, dnnl_forward_inference, &md, v13 ? axis : 1),
            "dnnl_softmax_forward_desc_init", node, err) ||
        make_prim(p, s, &desc, NULL, NULL, err) || add_arg(p, s, DNNL_ARG_SRC, xi, &md, err))
        return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &md, err);
}

static int compile_concat(struct nn_plan *p, struct step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int n = (int)node->n_inputs;
    if (n < 1 || n > MAX_ARGS - 2) return unsupported(node, "1 to 63 inputs are supported", err);
    int ids[MAX_ARGS];
    for (int k = 0; k < n; k++)
        if ((ids[k] = input_value(p, node, (size_t)k, err)) < 0) return -1;
    struct value x0 = p->values[ids[0]];
    int axis = norm_axis(node, attr_int(node, "axis", 1), x0.rank, 0, err);
    if (axis < 0) return -1;
    int64_t out[NN_MAX_RANK];
    memcpy(out, x0.dims, sizeof out);
    out[axis] = 0;
    for (int k = 0; k < n; k++) {
        const struct value *v = &p->values[ids[k]];
        for (int d = 0; d < x0.rank; d++)
            if (v->rank != x0.rank || (d != axis && v->dims[d] != x0.dims[d]))
                return invalid(node, "the inputs differ outside the concat axis", err);
        out[axis] += v->dims[axis];
    }
    int yi = add_value(p, node->outputs[0], x0.rank, out, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t mds[MAX_ARGS], y_md;
    for (int k = 0; k < n; k++)
        if (value_md(p, ids[k], &mds[k], node, err)) return -1;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t user;
    if (value_md(p, yi, &y_md, node, err) || user_scratchpad_attr(NULL, &user, node, err))
        return -1;
    dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, &y_md, n, axis, mds, user, p->engine);
    dnnl_primitive_attr_destroy(user);
    if (dnnl_check(st, "dnnl_concat_primitive_desc_create", node, err) ||
        make_prim(p, s, NULL, NULL, pd, err))
        return -1;
    for (int k = 0; k < n; k++)
        if (add_arg(p, s, DNNL_ARG_MULTIPLE_SRC + k, ids[k], &mds[k], err)) return -1;
    return add_arg(p, s, DNNL_ARG_DST, yi, &y_md, err);
}

/* Reshape's target from its constant shape input: 0 copies the input dim, -1 is inferred. */
static int reshape_dims(struct nn_plan *p, const struct nn_node *node, const struct value *x,
                        int *rank, int64_t *out, struct eng_error *err)
{
    const struct nn_tensor *t =
        node->n_inputs > 1 ? nn_graph_initializer(p->g, node->inputs[1]) : NULL;
    if (!t || t->info.dtype != NN_INT64 || t->info.rank != 1)
        return unsupported(node, "the shape must be a 1-D int64 initializer", err);
    if (t->count > NN_MAX_RANK) return invalid(node, "the shape has too many dims", err);
    const int64_t *shape = t->data;
    int allowzero = attr_int(node, "allowzero", 0) != 0, infer = -1;
    size_t known = 1;
    for (size_t d = 0; d < t->count; d++) {
        out[d] = shape[d] == 0 && !allowzero ? (d < (size_t)x->rank ? x->dims[d] : -2) : shape[d];
        if (out[d] == -1 && infer < 0)
            infer = (int)d;
        else if (out[d] < 0)
            return invalid(node, "the shape has a bad dim", err);
        else
            known *= (size_t)out[d];
    }
    if (infer >= 0) {
        if (!known || x->count % known) return invalid(node, "the -1 dim cannot be inferred", err);
        out[infer] = (int64_t)(x->count / known);
        known = x->count;
    }
    if (known != x->count) return invalid(node, "the shape's element count differs", err);
    *rank = (int)t->count;
    return 0;
}

/* Flatten, Reshape, Identity and Dropout: the output is a view of the input's buffer. */
static int compile_view(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    if (!strcmp(node->op_type, "Dropout") && node->n_outputs > 1 && node->outputs[1][0])
        return unsupported(node, "the mask output is not supported", err);
    /* Values are float inside the plan (integer inputs arrive converted), so a cast to float is a
     * view; a cast to anything else would change the numbers. */
    if (!strcmp(node->op_type, "Cast") && attr_int(node, "to", 0) != NN_FLOAT)
        return unsupported(node, "only a cast to float (to=1) is supported", err);
    int xi = input_value(p, node, 0, err);
    if (xi < 0) return -1;
    struct value x = p->values[xi];
    int rank = x.rank;
    int64_t out[NN_MAX_RANK];
    memcpy(out, x.dims, sizeof out);
    if (!strcmp(node->op_type, "Flatten")) {
        int axis = norm_axis(node, attr_int(node, "axis", 1), x.rank, 1, err);
        if (axis < 0) return -1;
        rank = 2;
        out[0] = (int64_t)dims_count(axis, x.dims);
        out[1] = (int64_t)dims_count(x.rank - axis, x.dims + axis);
    } else if (!strcmp(node->op_type, "Reshape") && reshape_dims(p, node, &x, &rank, out, err)) {
        return -1;
    }
    return add_value(p, node->outputs[0], rank, out, x.buf, err) < 0 ? -1 : 0;
}

/* Whether name is read by exactly one node and is not a model output, so the node making it can
 * write straight into its consumer's output. */
static int single_use(const struct nn_graph *g, const char *name)
{
    int uses = 0;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *n = nn_graph_node(g, i);
        for (size_t k = 0; k < n->n_inputs; k++)
            uses += !strcmp(n->inputs[k], name);
    }
    for (size_t i = 0; i < nn_graph_output_count(g); i++)
        if (!strcmp(nn_graph_output(g, i)->name, name)) return 0;
    return uses == 1;
}

enum op_kind {
    OP_NONE,
    OP_VIEW,
    OP_CONV,
    OP_RELU,
    OP_POOL,
    OP_GEMM,
    OP_BINARY,
    OP_BN,
    OP_SOFTMAX,
    OP_CONCAT
};

static const struct {
    const char *op_type;
    enum op_kind kind;
} ops[] = {
    {"Conv", OP_CONV},
    {"Relu", OP_RELU},
    {"MaxPool", OP_POOL},
    {"AveragePool", OP_POOL},
    {"GlobalAveragePool", OP_POOL},
    {"Gemm", OP_GEMM},
    {"Add", OP_BINARY},
    {"Mul", OP_BINARY},
    {"BatchNormalization", OP_BN},
    {"Softmax", OP_SOFTMAX},
    {"Concat", OP_CONCAT},
    {"Flatten", OP_VIEW},
    {"Reshape", OP_VIEW},
    {"Identity", OP_VIEW},
    {"Dropout", OP_VIEW},
    {"Cast", OP_VIEW},
};

static enum op_kind op_kind(const struct nn_node *node)
{
    if (node->domain[0] && strcmp(node->domain, "ai.onnx")) return OP_NONE;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(node->op_type, ops[k].op_type)) return ops[k].kind;
    return OP_NONE;
}

static int compile_node(struct nn_plan *p, size_t *i, struct eng_error *err)
{
    const struct nn_node *node = nn_graph_node(p->g, *i);
    enum op_kind kind = op_kind(node);
    if (node->n_outputs < 1 || !node->outputs[0][0]) return invalid(node, "no output", err);
    if (kind == OP_VIEW) return compile_view(p, node, err);

    struct step *s = &p->steps[p->n_steps];
    memset(s, 0, sizeof *s);
    s->node = node;
    int rc = -1;
    switch (kind) {
    case OP_CONV: {
        const struct nn_node *next =
            *i + 1 < nn_graph_node_count(p->g) ? nn_graph_node(p->g, *i + 1) : NULL;
        int fuse = next && op_kind(next) == OP_RELU && next->n_inputs == 1 &&
                   next->n_outputs >= 1 && !strcmp(next->inputs[0], node->outputs[0]) &&
                   single_use(p->g, node->outputs[0]);
        rc = compile_conv(p, s, fuse, fuse ? next->outputs[0] : node->outputs[0], err);
        if (fuse) (*i)++;
        break;
    }
    case OP_RELU:
        rc = compile_relu(p, s, err);
        break;
    case OP_POOL:
        rc = compile_pool(p, s, err);
        break;
    case OP_GEMM:
        rc = compile_gemm(p, s, err);
        break;
    case OP_BINARY:
        rc = compile_binary(p, s, err);
        break;
    case OP_BN:
        rc = compile_batchnorm(p, s, err);
        break;
    case OP_SOFTMAX:
        rc = compile_softmax(p, s, err);
        break;
    case OP_CONCAT:
        rc = compile_concat(p, s, err);
        break;
    case OP_NONE: /* refused before compiling starts */
    case OP_VIEW:
        break;
    }
    /* Counted even on failure, so nn_plan_free releases what the step holds. */
    p->n_steps++;
    return rc;
}

struct nn_plan *nn_plan_compile(const struct nn_graph *g, const struct nn_tensor_info *input_shapes,
                                size_t n_inputs, struct eng_error *err)
{
    if (n_inputs != nn_graph_input_count(g)) {
        eng_fail(err, ENG_INVALID, "%zu input shapes given; the model has %zu inputs", n_inputs,
                 nn_graph_input_count(g));
        return NULL;
    }
    /* Every op is checked first, so an unsupported model is refused whatever the shapes. */
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        if (op_kind(node) == OP_NONE) {
            unsupported(node,
                        "this op is not supported; supported: Conv, Relu, MaxPool, AveragePool, "
                        "GlobalAveragePool, Gemm, Add, Mul, BatchNormalization, Softmax, Concat, "
                        "Flatten, Reshape, Identity, Dropout, Cast (default domain)",
                        err);
            return NULL;
        }
    }
    struct nn_plan *p = calloc(1, sizeof *p);
    if (!p) {
        no_memory(err);
        return NULL;
    }
    p->g = g;
    p->n_inputs = n_inputs;
    p->n_outputs = nn_graph_output_count(g);
    p->input_ids = calloc(n_inputs + 1, sizeof *p->input_ids);
    p->output_ids = calloc(p->n_outputs + 1, sizeof *p->output_ids);
    p->steps = calloc(nn_graph_node_count(g) + 1, sizeof *p->steps);
    if (!p->input_ids || !p->output_ids || !p->steps) {
        no_memory(err);
        goto fail;
    }
    if (dnnl_check(dnnl_engine_create(&p->engine, dnnl_cpu, 0), "dnnl_engine_create", NULL, err) ||
        dnnl_check(dnnl_stream_create(&p->stream, p->engine, dnnl_stream_default_flags),
                   "dnnl_stream_create", NULL, err))
        goto fail;

    for (size_t i = 0; i < n_inputs; i++) {
        const struct nn_tensor_info *model = nn_graph_input(g, i), *given = &input_shapes[i];
        if (model->dtype != NN_FLOAT && model->dtype != NN_UNDEFINED && model->dtype != NN_UINT8 &&
            model->dtype != NN_INT64) {
            eng_fail(err, ENG_UNSUPPORTED,
                     "input '%s' has data_type %d; supported: 1 (float), 2 (uint8), 7 (int64)",
                     model->name, (int)model->dtype);
            goto fail;
        }
        int bad = given->rank < 0 || given->rank > NN_MAX_RANK ||
                  (model->rank >= 0 && model->rank != given->rank);
        for (int d = 0; !bad && d < given->rank; d++)
            bad = given->dims[d] < 0 ||
                  (model->rank >= 0 && model->dims[d] >= 0 && model->dims[d] != given->dims[d]);
        if (bad) {
            eng_fail(err, ENG_INVALID, "input '%s': the shape given does not fit the model's",
                     model->name);
            goto fail;
        }
        int id = add_value(p, model->name, given->rank, given->dims, NULL, err);
        if (id < 0) goto fail;
        p->input_ids[i] = id;
    }
    for (size_t i = 0; i < nn_graph_node_count(g); i++)
        if (compile_node(p, &i, err)) goto fail;
    for (size_t k = 0; k < p->n_outputs; k++) {
        const char *name = nn_graph_output(g, k)->name;
        int id = find_value(p, name);
        if (id < 0) {
            eng_fail(err, ENG_INVALID, "output '%s' is not produced by any node", name);
            goto fail;
        }
        p->output_ids[k] = id;
    }
    if (p->scratch_size) {
        /* 64-byte aligned, as oneDNN's own allocations; aligned_alloc wants a multiple of it. */
        p->scratch = aligned_alloc(64, (p->scratch_size + 63) / 64 * 64);
        if (!p->scratch) {
            no_memory(err);
            goto fail;
        }
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        if (!s->scratch_size) continue;
        dnnl_memory_t m;
        if (dnnl_check(dnnl_memory_create(&m, &s->scratch_md, p->engine, p->scratch),
                       "dnnl_memory_create", s->node, err))
            goto fail;
        s->args[s->nargs].arg = DNNL_ARG_SCRATCHPAD;
        s->args[s->nargs].memory = m;
        s->nargs++;
    }
    return p;
fail:
    nn_plan_free(p);
    return NULL;
}

size_t nn_plan_output_count(const struct nn_plan *p)
{
    return p->n_outputs;
}

static void run_fill(struct nn_plan *p, const struct gemm_fill *f)
{
    const float *c = p->values[f->src].buf;
    float *y = p->values[f->dst].buf;
    for (int64_t i = 0; i < f->m; i++)
        for (int64_t j = 0; j < f->n; j++)
            y[i * f->n + j] = c[(f->sm == 1 ? 0 : i) * f->sn + (f->sn == 1 ? 0 : j)];
}

int nn_plan_run(struct nn_plan *p, const float *const *inputs, float **outputs,
                struct nn_tensor_info *output_info, struct eng_error *err)
{
    for (size_t i = 0; i < p->n_inputs; i++) {
        struct value *v = &p->values[p->input_ids[i]];
        if (v->count) memcpy(v->buf, inputs[i], v->count * sizeof(float));
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        if (s->has_fill) run_fill(p, &s->fill);
        if (dnnl_check(dnnl_primitive_execute(s->prim, p->stream, s->nargs, s->args),
                       "dnnl_primitive_execute", s->node, err))
            return -1;
    }
    if (dnnl_check(dnnl_stream_wait(p->stream), "dnnl_stream_wait", NULL, err)) return -1;
    for (size_t k = 0; k < p->n_outputs; k++) {
        const struct value *v = &p->values[p->output_ids[k]];
        outputs[k] = malloc((v->count ? v->count : 1) * sizeof(float));
        if (!outputs[k]) {
            while (k-- > 0) {
                free(outputs[k]);
                outputs[k] = NULL;
            }
            return no_memory(err);
        }
        memcpy(outputs[k], v->buf, v->count * sizeof(float));
        output_info[k] =
            (struct nn_tensor_info){.name = v->name, .dtype = NN_FLOAT, .rank = v->rank};
        memcpy(output_info[k].dims, v->dims, (size_t)v->rank * sizeof *v->dims);
    }
    return 0;
}

void nn_plan_free(struct nn_plan *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        for (int k = 0; k < s->nargs; k++)
            dnnl_memory_destroy(s->args[k].memory);
        dnnl_primitive_destroy(s->prim);
    }
    for (size_t i = 0; i < p->n_values; i++)
        if (p->values[i].owned) free(p->values[i].buf);
    free(p->scratch);
    if (p->stream) dnnl_stream_destroy(p->stream);
    if (p->engine) dnnl_engine_destroy(p->engine);
    free(p->values);
    free(p->steps);
    free(p->input_ids);
    free(p->output_ids);
    free(p);
}

int nn_tensor_read_pb(const void *buf, size_t size, float **data, struct nn_tensor_info *info,
                      struct eng_error *err)
{
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, buf);
    if (!tp) return eng_fail(err, ENG_UNDECODABLE, "not a TensorProto");
    int rc = -1;
    size_t count = 1;
    *data = NULL;
    memset(info, 0, sizeof *info);
    if (!tp->has_data_type || tp->data_type != NN_FLOAT) {
        eng_fail(err, ENG_UNSUPPORTED, "data_type %d; only 1 (float) is supported",
                 (int)tp->data_type);
        goto done;
    }
    if (tp->n_dims > NN_MAX_RANK) {
        eng_fail(err, ENG_INVALID, "rank %zu; at most %d is supported", tp->n_dims, NN_MAX_RANK);
        goto done;
    }
    info->dtype = NN_FLOAT;
    info->rank = (int)tp->n_dims;
    for (size_t d = 0; d < tp->n_dims; d++) {
        if (tp->dims[d] < 0 || __builtin_mul_overflow(count, (size_t)tp->dims[d], &count) ||
            count > NN_MAX_BYTES / sizeof(float)) {
            eng_fail(err, ENG_INVALID, "dim %zu = %lld is negative or too large", d,
                     (long long)tp->dims[d]);
            goto done;
        }
        info->dims[d] = tp->dims[d];
    }
    /* raw_data is little-endian, as on every host this builds for (as in nn_ir.c). */
    size_t have = tp->has_raw_data ? tp->raw_data.len : tp->n_float_data * sizeof(float);
    if (have != count * sizeof(float)) {
        eng_fail(err, ENG_INVALID, "%zu data bytes for %zu elements", have, count);
        goto done;
    }
    *data = malloc(count ? have : 1);
    if (!*data) {
        no_memory(err);
        goto done;
    }
    if (have)
        memcpy(*data,
               tp->has_raw_data ? (const void *)tp->raw_data.data : (const void *)tp->float_data,
               have);
    rc = 0;
done:
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}
