/* Building a plan: values (activations in arena slots, constants, aliases) and their lifetimes,
 * a node's inputs as values (initializers and Constant nodes made constants on first use), steps
 * and their oneDNN primitives, and layouts. The op compilers and folding build through these, as
 * a training plan's backward steps will; they read the graph only through the IR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

/* ---- values and slots ---- */

static int is_output_name(const struct nn_plan *p, const char *name)
{
    for (size_t k = 0; k < p->n_outputs; k++)
        if (!strcmp(p->output_names[k], name)) return 1;
    return 0;
}

int nn_last_use(const struct nn_plan *p, const char *name)
{
    if (is_output_name(p, name)) return NN_PINNED;
    for (size_t i = nn_graph_node_count(p->g); i-- > (size_t)p->node;) {
        const struct nn_node *n = nn_graph_node(p->g, i);
        for (size_t k = 0; k < n->n_inputs; k++)
            if (!strcmp(n->inputs[k], name)) return (int)i;
    }
    return p->node;
}

int nn_sole_reader(const struct nn_plan *p, const char *name)
{
    if (is_output_name(p, name)) return -1;
    int reader = -1, reads = 0;
    for (size_t i = (size_t)p->node + 1; i < nn_graph_node_count(p->g); i++) {
        const struct nn_node *n = nn_graph_node(p->g, i);
        for (size_t k = 0; k < n->n_inputs; k++)
            if (!strcmp(n->inputs[k], name)) {
                reader = (int)i;
                reads++;
            }
    }
    return reads == 1 ? reader : -1;
}

int nn_find_value(const struct nn_plan *p, const char *name)
{
    for (size_t i = p->n_values; i-- > 0;)
        if (!strcmp(p->values[i].name, name)) return (int)i;
    return -1;
}

/* A new value slot in the table (zeroed but for the shape); -1 with err. */
static int new_value(struct nn_plan *p, const char *name, int rank, const int64_t *dims,
                     struct eng_error *err)
{
    if (p->n_values == p->cap_values) {
        size_t cap = p->cap_values ? 2 * p->cap_values : 64;
        struct nn_value *v = realloc(p->values, cap * sizeof *v);
        if (!v) return eng_no_memory(err);
        p->values = v;
        p->cap_values = cap;
    }
    struct nn_value *v = &p->values[p->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->rank = rank;
    /* A scalar's dims may be NULL (Transpose of a rank-0 value passes none), and memcpy must not
     * see a null pointer even for 0 bytes. */
    if (rank > 0) memcpy(v->dims, dims, (size_t)rank * sizeof *dims);
    v->count = nn_dims_count(rank, dims);
    v->slot = -1;
    v->plain_copy = -1;
    v->last_use = nn_last_use(p, name);
    return (int)p->n_values++;
}

/* A slot of at least size bytes, free now, live until last_use: the smallest free slot that is
 * large enough, else the largest free one grown, else a new one. */
static int take_slot(struct nn_plan *p, size_t size, int last_use, struct eng_error *err)
{
    int best = -1, largest = -1;
    for (size_t i = 0; i < p->n_slots; i++) {
        const struct nn_slot *s = &p->slots[i];
        if (s->busy) continue;
        if (s->size >= size && (best < 0 || s->size < p->slots[best].size)) best = (int)i;
        if (largest < 0 || s->size > p->slots[largest].size) largest = (int)i;
    }
    if (best < 0) best = largest;
    if (best < 0) {
        if (p->n_slots == p->cap_slots) {
            size_t cap = p->cap_slots ? 2 * p->cap_slots : 32;
            struct nn_slot *s = realloc(p->slots, cap * sizeof *s);
            if (!s) return eng_no_memory(err);
            p->slots = s;
            p->cap_slots = cap;
        }
        best = (int)p->n_slots++;
        p->slots[best] = (struct nn_slot){0};
    }
    struct nn_slot *s = &p->slots[best];
    if (s->size < size) s->size = size;
    s->busy = 1;
    s->last_use = last_use;
    return best;
}

void nn_release_slots(struct nn_plan *p, int node)
{
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].busy && p->slots[i].last_use <= node) p->slots[i].busy = 0;
}

int nn_activation(struct nn_plan *p, const char *name, int rank, const int64_t *dims,
                  const dnnl_memory_desc_t *md, struct eng_error *err)
{
    int id = new_value(p, name, rank, dims, err);
    if (id < 0) return -1;
    struct nn_value *v = &p->values[id];
    /* Shapes computed from a model's constants (Pad's pads, Reshape's shape) can be absurd; no
     * activation may be larger than a model file may be. */
    if (v->count > NN_MAX_BYTES / sizeof(float))
        return eng_fail(err, ENG_TOO_LARGE,
                        "value '%s' would hold more than %zu elements, the most supported", name,
                        NN_MAX_BYTES / sizeof(float));
    if (md)
        v->md = *md;
    else if (nn_plain_md(&v->md, rank, dims, NULL, err))
        return -1;
    size_t bytes = dnnl_memory_desc_get_size(&v->md);
    v->slot = take_slot(p, bytes ? bytes : sizeof(float), v->last_use, err);
    return v->slot < 0 ? -1 : id;
}

int nn_alias(struct nn_plan *p, int src, const char *name, int rank, const int64_t *dims,
             const dnnl_memory_desc_t *md, struct eng_error *err)
{
    int id = new_value(p, name, rank, dims, err);
    if (id < 0) return -1;
    struct nn_value *v = &p->values[id], *s = &p->values[src];
    v->is_const = s->is_const;
    v->dtype = s->dtype;
    v->data = s->data; /* owned by src */
    v->slot = s->slot;
    if (md)
        v->md = *md;
    else if (nn_plain_md(&v->md, rank, dims, NULL, err))
        return -1;
    if (v->slot >= 0 && p->slots[v->slot].last_use < v->last_use)
        p->slots[v->slot].last_use = v->last_use;
    return id;
}

float *nn_value_data(const struct nn_plan *p, int id)
{
    return nn_value_bytes(p, &p->values[id]);
}

/* ---- constants and inputs ---- */

int nn_constant(struct nn_plan *p, const char *name, enum nn_dtype dtype, int rank,
                const int64_t *dims, void *data, int owned, struct eng_error *err)
{
    int id = new_value(p, name, rank, dims, err);
    if (id < 0) {
        if (owned) free(data);
        return -1;
    }
    struct nn_value *v = &p->values[id];
    v->is_const = 1;
    v->dtype = dtype;
    v->data = data;
    v->owned = owned;
    if (dtype == NN_FLOAT && nn_plain_md(&v->md, rank, dims, NULL, err)) return -1;
    return id;
}

int nn_constant_copy(struct nn_plan *p, const char *name, enum nn_dtype dtype, int rank,
                     const int64_t *dims, const void *data, struct eng_error *err)
{
    size_t bytes = nn_dims_count(rank, dims) * nn_dtype_size(dtype);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return eng_no_memory(err);
    if (bytes) memcpy(copy, data, bytes);
    return nn_constant(p, name, dtype, rank, dims, copy, 1, err);
}

int nn_constant_node(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    const char *name = node->outputs[0];
    const struct nn_attr *a = nn_node_attr(node, "value");
    if (a && a->type == NN_ATTR_TENSOR) {
        if (a->t.info.dtype != NN_FLOAT && a->t.info.dtype != NN_INT64)
            return nn_unsupported(node, "only float and int64 values are supported", err);
        return nn_constant_copy(p, name, a->t.info.dtype, a->t.info.rank, a->t.info.dims, a->t.data,
                                err);
    }
    int64_t one = 1;
    if ((a = nn_node_attr(node, "value_float")) && a->type == NN_ATTR_FLOAT)
        return nn_constant_copy(p, name, NN_FLOAT, 0, NULL, &a->f, err);
    if ((a = nn_node_attr(node, "value_int")) && a->type == NN_ATTR_INT)
        return nn_constant_copy(p, name, NN_INT64, 0, NULL, &a->i, err);
    if ((a = nn_node_attr(node, "value_floats")) && a->type == NN_ATTR_FLOATS) {
        one = (int64_t)a->count;
        return nn_constant_copy(p, name, NN_FLOAT, 1, &one, a->floats, err);
    }
    if ((a = nn_node_attr(node, "value_ints")) && a->type == NN_ATTR_INTS) {
        one = (int64_t)a->count;
        return nn_constant_copy(p, name, NN_INT64, 1, &one, a->ints, err);
    }
    return nn_unsupported(node, "only tensor, float and int values are supported", err);
}

/* A fused reader (a Clip absorbed by the Conv before it) may read a Constant node that comes
 * after the producer in the model's order; that node is folded now and then skipped. Returns the
 * value, -1 when no Constant node makes name, -2 on error. */
static int fold_later_constant(struct nn_plan *p, const char *name, struct eng_error *err)
{
    for (size_t i = (size_t)p->node + 1; i < nn_graph_node_count(p->g); i++) {
        const struct nn_node *n = nn_graph_node(p->g, i);
        if (strcmp(n->op_type, "Constant") || n->n_outputs < 1 || strcmp(n->outputs[0], name))
            continue;
        if (nn_constant_node(p, n, err) < 0) return -2;
        p->fused[i] = 1;
        return nn_find_value(p, name);
    }
    return -1;
}

int nn_input(struct nn_plan *p, const struct nn_node *node, size_t k, struct eng_error *err)
{
    if (!nn_has_input(node, k)) {
        char msg[64];
        snprintf(msg, sizeof msg, "input %zu is missing", k);
        return nn_invalid(node, msg, err);
    }
    const char *name = node->inputs[k];
    int id = nn_find_value(p, name);
    if (id >= 0) return id;
    const struct nn_tensor *t = nn_graph_initializer(p->g, name);
    if (!t && (id = fold_later_constant(p, name, err)) != -1) return id;
    if (!t) {
        char msg[300];
        snprintf(msg, sizeof msg, "input '%.200s' is not produced by an earlier node", name);
        return nn_invalid(node, msg, err);
    }
    if (t->info.dtype != NN_FLOAT && t->info.dtype != NN_INT64) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "initializer '%.200s' has data_type %d; supported: 1 (float), 7 (int64)", name,
                 (int)t->info.dtype);
        return nn_unsupported(node, msg, err);
    }
    /* The graph's bytes are used in place; the plan never writes to a constant. */
    return nn_constant(p, name, t->info.dtype, t->info.rank, t->info.dims, (void *)t->data, 0, err);
}

int nn_const_input(struct nn_plan *p, const struct nn_node *node, size_t k, int *id,
                   struct eng_error *err)
{
    if ((*id = nn_input(p, node, k, err)) < 0) return -1;
    return p->values[*id].is_const;
}

/* ---- steps and primitives ---- */

struct nn_step *nn_add_step(struct nn_plan *p, struct eng_error *err)
{
    if (p->n_steps == p->cap_steps) {
        size_t cap = p->cap_steps ? 2 * p->cap_steps : 64;
        struct nn_step *s = realloc(p->steps, cap * sizeof *s);
        if (!s) {
            eng_no_memory(err);
            return NULL;
        }
        p->steps = s;
        p->cap_steps = cap;
    }
    struct nn_step *s = &p->steps[p->n_steps++];
    memset(s, 0, sizeof *s);
    s->node = nn_graph_node(p->g, (size_t)p->node);
    return s;
}

int nn_add_arg(struct nn_step *s, int arg, int value, const dnnl_memory_desc_t *md,
               struct eng_error *err)
{
    struct nn_arg *grown = realloc(s->args, (size_t)(s->nargs + 1) * sizeof *grown);
    if (!grown) return eng_no_memory(err);
    s->args = grown;
    s->args[s->nargs++] = (struct nn_arg){arg, value, *md};
    return 0;
}

int nn_user_scratchpad_attr(const_dnnl_primitive_attr_t attr, dnnl_primitive_attr_t *out,
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
    return nn_dnnl_check(st, "dnnl scratchpad attribute setup", node, err);
}

/* dnnl_primitive_desc_create with the plan's scratchpad mode: -1 with err set when the attribute
 * cannot be made, else 0 and oneDNN's status. */
static int create_prim_desc(struct nn_plan *p, const struct nn_node *node,
                            const_dnnl_op_desc_t op_desc, const_dnnl_primitive_attr_t attr,
                            const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                            dnnl_status_t *st, struct eng_error *err)
{
    dnnl_primitive_attr_t user;
    if (nn_user_scratchpad_attr(attr, &user, node, err)) return -1;
    *st = dnnl_primitive_desc_create(pd, op_desc, user, p->engine, hint);
    dnnl_primitive_attr_destroy(user);
    return 0;
}

int nn_prim_desc(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                 const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd, struct eng_error *err)
{
    return nn_prim_desc_hint(p, node, op_desc, attr, NULL, pd, err);
}

int nn_prim_desc_hint(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                      const_dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint,
                      dnnl_primitive_desc_t *pd, struct eng_error *err)
{
    dnnl_status_t st;
    if (create_prim_desc(p, node, op_desc, attr, hint, pd, &st, err)) return -1;
    return nn_dnnl_check(st, "dnnl_primitive_desc_create", node, err);
}

int nn_try_prim_desc(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                     const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd,
                     struct eng_error *err)
{
    return nn_try_prim_desc_hint(p, node, op_desc, attr, NULL, pd, err);
}

int nn_try_prim_desc_hint(struct nn_plan *p, const struct nn_node *node,
                          const_dnnl_op_desc_t op_desc, const_dnnl_primitive_attr_t attr,
                          const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                          struct eng_error *err)
{
    dnnl_status_t st;
    if (create_prim_desc(p, node, op_desc, attr, hint, pd, &st, err)) return -1;
    return st == dnnl_success;
}

int nn_make_prim(struct nn_plan *p, struct nn_step *s, const_dnnl_op_desc_t op_desc,
                 const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t pd, struct eng_error *err)
{
    if (op_desc && nn_prim_desc(p, s->node, op_desc, attr, &pd, err)) return -1;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (md && (s->scratch_size = dnnl_memory_desc_get_size(md))) {
        s->scratch_md = *md;
        if (s->scratch_size > p->scratch_size) p->scratch_size = s->scratch_size;
    }
    dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return nn_dnnl_check(st, "dnnl_primitive_create", s->node, err);
}

/* ---- layouts ---- */

int nn_plain_md(dnnl_memory_desc_t *md, int rank, const int64_t *dims, const struct nn_node *node,
                struct eng_error *err)
{
    dnnl_dims_t d = {1}, strides = {1};
    int n = rank ? rank : 1;
    for (int k = 0; k < rank; k++)
        d[k] = dims[k];
    strides[n - 1] = 1;
    for (int k = n - 1; k > 0; k--)
        strides[k - 1] = strides[k] * d[k];
    return nn_dnnl_check(dnnl_memory_desc_init_by_strides(md, n, d, dnnl_f32, strides),
                         "dnnl_memory_desc_init_by_strides", node, err);
}

int nn_any_md(dnnl_memory_desc_t *md, int rank, const int64_t *dims, const struct nn_node *node,
              struct eng_error *err)
{
    dnnl_dims_t d;
    for (int k = 0; k < rank; k++)
        d[k] = dims[k];
    return nn_dnnl_check(dnnl_memory_desc_init_by_tag(md, rank, d, dnnl_f32, dnnl_format_tag_any),
                         "dnnl_memory_desc_init_by_tag", node, err);
}

int nn_is_plain(const struct nn_value *v)
{
    dnnl_memory_desc_t plain;
    if (nn_plain_md(&plain, v->rank, v->dims, NULL, NULL)) return 0;
    return dnnl_memory_desc_equal(&plain, &v->md);
}

int nn_reorder_now(const struct nn_plan *p, const dnnl_memory_desc_t *from, const void *src,
                   const dnnl_memory_desc_t *to, void *dst, const char *what,
                   const struct nn_node *node, struct eng_error *err)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t in = NULL, out = NULL;
    dnnl_status_t st =
        dnnl_reorder_primitive_desc_create(&pd, from, p->engine, to, p->engine, NULL);
    if (st == dnnl_success) st = dnnl_primitive_create(&prim, pd);
    if (st == dnnl_success) st = dnnl_memory_create(&in, from, p->engine, (void *)src);
    if (st == dnnl_success) st = dnnl_memory_create(&out, to, p->engine, dst);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, in}, {DNNL_ARG_TO, out}};
    if (st == dnnl_success) st = dnnl_primitive_execute(prim, p->stream, 2, args);
    if (st == dnnl_success) st = dnnl_stream_wait(p->stream);
    dnnl_memory_destroy(in);
    dnnl_memory_destroy(out);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return nn_dnnl_check(st, what, node, err);
}

/* Reorders a constant now, into plan-owned memory. */
static int reorder_constant(struct nn_plan *p, int id, const dnnl_memory_desc_t *want,
                            struct eng_error *err)
{
    const struct nn_node *node = nn_graph_node(p->g, (size_t)p->node);
    size_t bytes = dnnl_memory_desc_get_size(want);
    void *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!data) return eng_no_memory(err);
    if (nn_reorder_now(p, &p->values[id].md, p->values[id].data, want, data,
                       "reorder of a constant", node, err)) {
        free(data);
        return -1;
    }
    struct nn_value v = p->values[id];
    int out = nn_constant(p, v.name, NN_FLOAT, v.rank, v.dims, data, 1, err);
    if (out >= 0) p->values[out].md = *want;
    return out;
}

int nn_to_layout(struct nn_plan *p, int id, const dnnl_memory_desc_t *want, struct eng_error *err)
{
    if (dnnl_memory_desc_equal(&p->values[id].md, want)) return id;
    if (p->values[id].is_const) return reorder_constant(p, id, want, err);
    struct nn_value v = p->values[id];
    int out = nn_activation(p, v.name, v.rank, v.dims, want, err);
    if (out < 0) return -1;
    /* The copy lives as long as the original, so later readers may share it. */
    p->values[out].last_use = v.last_use;
    if (p->slots[p->values[out].slot].last_use < v.last_use)
        p->slots[p->values[out].slot].last_use = v.last_use;
    struct nn_step *s = nn_add_step(p, err);
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t user;
    if (!s || nn_user_scratchpad_attr(NULL, &user, s->node, err)) return -1;
    dnnl_status_t st =
        dnnl_reorder_primitive_desc_create(&pd, &v.md, p->engine, want, p->engine, user);
    dnnl_primitive_attr_destroy(user);
    if (nn_dnnl_check(st, "dnnl_reorder_primitive_desc_create", s->node, err) ||
        nn_make_prim(p, s, NULL, NULL, pd, err) || nn_add_arg(s, DNNL_ARG_FROM, id, &v.md, err) ||
        nn_add_arg(s, DNNL_ARG_TO, out, want, err))
        return -1;
    return out;
}

int nn_to_plain(struct nn_plan *p, int id, struct eng_error *err)
{
    if (nn_is_plain(&p->values[id])) return id;
    if (p->values[id].plain_copy >= 0) return p->values[id].plain_copy;
    struct nn_value v = p->values[id];
    dnnl_memory_desc_t plain;
    if (nn_plain_md(&plain, v.rank, v.dims, NULL, err)) return -1;
    int out = nn_to_layout(p, id, &plain, err);
    if (out >= 0) p->values[id].plain_copy = out;
    return out;
}
