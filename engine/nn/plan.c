/* The plan: values, the arena, steps, compiling a graph and running it. The ops themselves are in
 * nn_ops.c; see nn_plan.h for how the parts fit. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "onnx.pb-c.h"

int nn_no_memory(struct eng_error *err)
{
    return eng_fail(err, ENG_NO_MEMORY, "out of memory");
}

int nn_dnnl_check(dnnl_status_t st, const char *call, const struct nn_node *node,
                  struct eng_error *err)
{
    if (st == dnnl_success) return 0;
    return eng_fail(err, ENG_INTERNAL, "node '%s' (%s): %s failed with oneDNN status %d",
                    node ? node->name : "", node ? node->op_type : "-", call, (int)st);
}

int nn_unsupported(const struct nn_node *node, const char *what, struct eng_error *err)
{
    return eng_fail(err, ENG_UNSUPPORTED, "node '%s' (%s): %s", node->name, node->op_type, what);
}

int nn_invalid(const struct nn_node *node, const char *what, struct eng_error *err)
{
    return eng_fail(err, ENG_INVALID, "node '%s' (%s): %s", node->name, node->op_type, what);
}

int64_t nn_attr_int(const struct nn_node *node, const char *name, int64_t dflt)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    return a && a->type == NN_ATTR_INT ? a->i : dflt;
}

float nn_attr_float(const struct nn_node *node, const char *name, float dflt)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    return a && a->type == NN_ATTR_FLOAT ? a->f : dflt;
}

const int64_t *nn_attr_ints(const struct nn_node *node, const char *name, size_t *n)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    if (!a || a->type != NN_ATTR_INTS) {
        *n = 0;
        return NULL;
    }
    *n = a->count;
    return a->ints;
}

size_t nn_dims_count(int rank, const int64_t *dims)
{
    size_t count = 1;
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0 || __builtin_mul_overflow(count, (size_t)dims[d], &count)) return SIZE_MAX;
    return count;
}

int nn_norm_axis(const struct nn_node *node, int64_t axis, int rank, int inclusive,
                 struct eng_error *err)
{
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank - !inclusive) return nn_invalid(node, "axis is out of range", err);
    return (int)axis;
}

int nn_has_input(const struct nn_node *node, size_t k)
{
    return k < node->n_inputs && node->inputs[k][0];
}

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
        struct value *v = realloc(p->values, cap * sizeof *v);
        if (!v) return nn_no_memory(err);
        p->values = v;
        p->cap_values = cap;
    }
    struct value *v = &p->values[p->n_values];
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

int nn_is_plain(const struct value *v)
{
    dnnl_memory_desc_t plain;
    if (nn_plain_md(&plain, v->rank, v->dims, NULL, NULL)) return 0;
    return dnnl_memory_desc_equal(&plain, &v->md);
}

/* A slot of at least size bytes, free now, live until last_use: the smallest free slot that is
 * large enough, else the largest free one grown, else a new one. */
static int take_slot(struct nn_plan *p, size_t size, int last_use, struct eng_error *err)
{
    int best = -1, largest = -1;
    for (size_t i = 0; i < p->n_slots; i++) {
        const struct slot *s = &p->slots[i];
        if (s->busy) continue;
        if (s->size >= size && (best < 0 || s->size < p->slots[best].size)) best = (int)i;
        if (largest < 0 || s->size > p->slots[largest].size) largest = (int)i;
    }
    if (best < 0) best = largest;
    if (best < 0) {
        if (p->n_slots == p->cap_slots) {
            size_t cap = p->cap_slots ? 2 * p->cap_slots : 32;
            struct slot *s = realloc(p->slots, cap * sizeof *s);
            if (!s) return nn_no_memory(err);
            p->slots = s;
            p->cap_slots = cap;
        }
        best = (int)p->n_slots++;
        p->slots[best] = (struct slot){0};
    }
    struct slot *s = &p->slots[best];
    if (s->size < size) s->size = size;
    s->busy = 1;
    s->last_use = last_use;
    return best;
}

/* Frees the slots whose values have all been read for the last time by node `node`. */
static void release_slots(struct nn_plan *p, int node)
{
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].busy && p->slots[i].last_use <= node) p->slots[i].busy = 0;
}

int nn_activation(struct nn_plan *p, const char *name, int rank, const int64_t *dims,
                  const dnnl_memory_desc_t *md, struct eng_error *err)
{
    int id = new_value(p, name, rank, dims, err);
    if (id < 0) return -1;
    struct value *v = &p->values[id];
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
    struct value *v = &p->values[id], *s = &p->values[src];
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

int nn_constant(struct nn_plan *p, const char *name, enum nn_dtype dtype, int rank,
                const int64_t *dims, void *data, int owned, struct eng_error *err)
{
    int id = new_value(p, name, rank, dims, err);
    if (id < 0) {
        if (owned) free(data);
        return -1;
    }
    struct value *v = &p->values[id];
    v->is_const = 1;
    v->dtype = dtype;
    v->data = data;
    v->owned = owned;
    if (dtype == NN_FLOAT && nn_plain_md(&v->md, rank, dims, NULL, err)) return -1;
    return id;
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
        if (nn_fold_constant(p, n, err) < 0) return -2;
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

struct step *nn_step(struct nn_plan *p, struct eng_error *err)
{
    if (p->n_steps == p->cap_steps) {
        size_t cap = p->cap_steps ? 2 * p->cap_steps : 64;
        struct step *s = realloc(p->steps, cap * sizeof *s);
        if (!s) {
            nn_no_memory(err);
            return NULL;
        }
        p->steps = s;
        p->cap_steps = cap;
    }
    struct step *s = &p->steps[p->n_steps++];
    memset(s, 0, sizeof *s);
    s->node = nn_graph_node(p->g, (size_t)p->node);
    return s;
}

int nn_add_arg(struct step *s, int arg, int value, const dnnl_memory_desc_t *md,
               struct eng_error *err)
{
    struct arg *grown = realloc(s->args, (size_t)(s->nargs + 1) * sizeof *grown);
    if (!grown) return nn_no_memory(err);
    s->args = grown;
    s->args[s->nargs++] = (struct arg){arg, value, *md};
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
                            dnnl_primitive_desc_t *pd, dnnl_status_t *st, struct eng_error *err)
{
    dnnl_primitive_attr_t user;
    if (nn_user_scratchpad_attr(attr, &user, node, err)) return -1;
    *st = dnnl_primitive_desc_create(pd, op_desc, user, p->engine, NULL);
    dnnl_primitive_attr_destroy(user);
    return 0;
}

int nn_prim_desc(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                 const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd, struct eng_error *err)
{
    dnnl_status_t st;
    if (create_prim_desc(p, node, op_desc, attr, pd, &st, err)) return -1;
    return nn_dnnl_check(st, "dnnl_primitive_desc_create", node, err);
}

int nn_try_prim_desc(struct nn_plan *p, const struct nn_node *node, const_dnnl_op_desc_t op_desc,
                     const_dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd,
                     struct eng_error *err)
{
    dnnl_status_t st;
    if (create_prim_desc(p, node, op_desc, attr, pd, &st, err)) return -1;
    return st == dnnl_success;
}

int nn_make_prim(struct nn_plan *p, struct step *s, const_dnnl_op_desc_t op_desc,
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

/* Reorders a constant now, into plan-owned memory. */
static int reorder_constant(struct nn_plan *p, int id, const dnnl_memory_desc_t *want,
                            struct eng_error *err)
{
    const struct nn_node *node = nn_graph_node(p->g, (size_t)p->node);
    size_t bytes = dnnl_memory_desc_get_size(want);
    void *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!data) return nn_no_memory(err);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t src = NULL, dst = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, &p->values[id].md, p->engine, want,
                                                          p->engine, NULL);
    if (st == dnnl_success) st = dnnl_primitive_create(&prim, pd);
    if (st == dnnl_success)
        st = dnnl_memory_create(&src, &p->values[id].md, p->engine, p->values[id].data);
    if (st == dnnl_success) st = dnnl_memory_create(&dst, want, p->engine, data);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    if (st == dnnl_success) st = dnnl_primitive_execute(prim, p->stream, 2, args);
    if (st == dnnl_success) st = dnnl_stream_wait(p->stream);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(dst);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    if (nn_dnnl_check(st, "reorder of a constant", node, err)) {
        free(data);
        return -1;
    }
    struct value v = p->values[id];
    int out = nn_constant(p, v.name, NN_FLOAT, v.rank, v.dims, data, 1, err);
    if (out >= 0) p->values[out].md = *want;
    return out;
}

int nn_to_layout(struct nn_plan *p, int id, const dnnl_memory_desc_t *want, struct eng_error *err)
{
    if (dnnl_memory_desc_equal(&p->values[id].md, want)) return id;
    if (p->values[id].is_const) return reorder_constant(p, id, want, err);
    struct value v = p->values[id];
    int out = nn_activation(p, v.name, v.rank, v.dims, want, err);
    if (out < 0) return -1;
    /* The copy lives as long as the original, so later readers may share it. */
    p->values[out].last_use = v.last_use;
    if (p->slots[p->values[out].slot].last_use < v.last_use)
        p->slots[p->values[out].slot].last_use = v.last_use;
    struct step *s = nn_step(p, err);
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
    struct value v = p->values[id];
    dnnl_memory_desc_t plain;
    if (nn_plain_md(&plain, v.rank, v.dims, NULL, err)) return -1;
    int out = nn_to_layout(p, id, &plain, err);
    if (out >= 0) p->values[id].plain_copy = out;
    return out;
}

/* A frozen input: a constant holding a copy of the caller's tensor. */
static int freeze_input(struct nn_plan *p, const struct nn_tensor_info *model,
                        const struct nn_tensor *t, struct eng_error *err)
{
    if (t->info.dtype != NN_FLOAT && t->info.dtype != NN_INT64)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "frozen input '%s': only float and int64 are supported", model->name);
    size_t bytes = t->count * nn_dtype_size(t->info.dtype);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return nn_no_memory(err);
    if (bytes) memcpy(copy, t->data, bytes);
    return nn_constant(p, model->name, t->info.dtype, t->info.rank, t->info.dims, copy, 1, err) < 0
               ? -1
               : 0;
}

static const struct nn_tensor *frozen_input(const struct nn_plan_options *options, const char *name)
{
    for (size_t k = 0; k < options->n_frozen; k++)
        if (!strcmp(options->frozen[k].info.name, name)) return &options->frozen[k];
    return NULL;
}

/* The graph inputs: frozen ones become constants (input id -1), the others plain activations
 * that each run copies the caller's floats into. */
static int add_inputs(struct nn_plan *p, const struct nn_tensor_info *given,
                      const struct nn_plan_options *options, struct eng_error *err)
{
    for (size_t i = 0; i < p->n_inputs; i++) {
        const struct nn_tensor_info *model = nn_graph_input(p->g, i);
        const struct nn_tensor *frozen = frozen_input(options, model->name);
        p->input_ids[i] = -1;
        if (frozen) {
            if (freeze_input(p, model, frozen, err)) return -1;
            continue;
        }
        if (model->dtype != NN_FLOAT && model->dtype != NN_UNDEFINED && model->dtype != NN_UINT8 &&
            model->dtype != NN_INT64)
            return eng_fail(err, ENG_UNSUPPORTED,
                            "input '%s' has data_type %d; supported: 1 (float), 2 (uint8), 7 "
                            "(int64)",
                            model->name, (int)model->dtype);
        int bad = given[i].rank < 0 || given[i].rank > NN_MAX_RANK ||
                  (model->rank >= 0 && model->rank != given[i].rank);
        for (int d = 0; !bad && d < given[i].rank; d++)
            bad = given[i].dims[d] <= 0 ||
                  (model->rank >= 0 && model->dims[d] >= 0 && model->dims[d] != given[i].dims[d]);
        if (bad)
            return eng_fail(err, ENG_INVALID,
                            "input '%s': the shape given does not fit the model's (or has a zero "
                            "dim: empty tensors are not supported)",
                            model->name);
        int id = nn_activation(p, model->name, given[i].rank, given[i].dims, NULL, err);
        if (id < 0) return -1;
        p->input_ids[i] = id;
    }
    return 0;
}

/* An integer constant as floats: outputs are float (a model may output its shape arithmetic). */
static int float_copy(struct nn_plan *p, int id, struct eng_error *err)
{
    struct value v = p->values[id];
    float *f = malloc((v.count ? v.count : 1) * sizeof *f);
    if (!f) return nn_no_memory(err);
    for (size_t i = 0; i < v.count; i++)
        f[i] = (float)((const int64_t *)v.data)[i];
    return nn_constant(p, v.name, NN_FLOAT, v.rank, v.dims, f, 1, err);
}

/* The outputs and taps, in plain layout; a value produced in a blocked layout gets a final
 * reorder. */
static int bind_outputs(struct nn_plan *p, struct eng_error *err)
{
    for (size_t k = 0; k < p->n_outputs; k++) {
        int id = nn_find_value(p, p->output_names[k]);
        if (id < 0)
            return eng_fail(err, ENG_INVALID, "output '%s' is not produced by any node",
                            p->output_names[k]);
        if (p->values[id].is_const && p->values[id].dtype != NN_FLOAT &&
            (id = float_copy(p, id, err)) < 0)
            return -1;
        if ((id = nn_to_plain(p, id, err)) < 0) return -1;
        p->values[id].last_use = NN_PINNED;
        if (p->values[id].slot >= 0) p->slots[p->values[id].slot].last_use = NN_PINNED;
        p->output_ids[k] = id;
    }
    return 0;
}

static void *value_ptr(const struct nn_plan *p, const struct value *v)
{
    return v->slot >= 0 ? p->arena + p->slots[v->slot].offset : v->data;
}

/* After planning: the arena, then a memory object per step argument. */
static int materialize(struct nn_plan *p, struct eng_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < p->n_slots; i++) {
        p->slots[i].offset = total;
        total += (p->slots[i].size + 63) / 64 * 64;
    }
    /* 64-byte aligned, as oneDNN's own allocations; aligned_alloc wants a multiple of it. */
    p->arena = aligned_alloc(64, total ? total : 64);
    if (p->scratch_size) p->scratch = aligned_alloc(64, (p->scratch_size + 63) / 64 * 64);
    if (!p->arena || (p->scratch_size && !p->scratch)) return nn_no_memory(err);
    memset(p->arena, 0, total);
    for (size_t i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        if (!s->prim) continue;
        s->exec = calloc((size_t)s->nargs + 1, sizeof *s->exec);
        if (!s->exec) return nn_no_memory(err);
        for (int k = 0; k < s->nargs; k++) {
            dnnl_memory_t m;
            if (nn_dnnl_check(dnnl_memory_create(&m, &s->args[k].md, p->engine,
                                                 value_ptr(p, &p->values[s->args[k].value])),
                              "dnnl_memory_create", s->node, err))
                return -1;
            s->exec[s->nexec++] = (dnnl_exec_arg_t){s->args[k].arg, m};
        }
        if (s->scratch_size) {
            dnnl_memory_t m;
            if (nn_dnnl_check(dnnl_memory_create(&m, &s->scratch_md, p->engine, p->scratch),
                              "dnnl_memory_create", s->node, err))
                return -1;
            s->exec[s->nexec++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, m};
        }
    }
    return 0;
}

/* Every op is checked before compiling, so an unsupported model is refused whatever the shapes,
 * with each unsupported op type named once. */
static int refuse_unsupported(const struct nn_graph *g, struct eng_error *err)
{
    enum { MAX_NAMED = 16 };
    const struct nn_node *named[MAX_NAMED];
    size_t n_named = 0, n_missing = 0;
    char list[400] = "";
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        if (nn_op_supported(node)) continue;
        n_missing++;
        size_t k = 0;
        while (k < n_named &&
               (strcmp(named[k]->op_type, node->op_type) || strcmp(named[k]->domain, node->domain)))
            k++;
        if (k < n_named || n_named == MAX_NAMED) continue;
        named[n_named++] = node;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s%s%s", used ? ", " : "", node->domain,
                 node->domain[0] ? "." : "", node->op_type);
    }
    if (!n_missing) return 0;
    return eng_fail(err, ENG_UNSUPPORTED, "unsupported ops: %s (%zu nodes); supported: %s", list,
                    n_missing, nn_supported_ops);
}

static void set_threads(int threads)
{
    if (threads > 0) omp_set_num_threads(threads);
}

struct nn_plan *nn_plan_compile(const struct nn_graph *g, const struct nn_tensor_info *input_shapes,
                                size_t n_inputs, struct eng_error *err)
{
    return nn_plan_compile_with(g, input_shapes, n_inputs, NULL, err);
}

struct nn_plan *nn_plan_compile_with(const struct nn_graph *g,
                                     const struct nn_tensor_info *input_shapes, size_t n_inputs,
                                     const struct nn_plan_options *options, struct eng_error *err)
{
    static const struct nn_plan_options defaults = {0};
    if (!options) options = &defaults;
    if (n_inputs != nn_graph_input_count(g)) {
        eng_fail(err, ENG_INVALID, "%zu input shapes given; the model has %zu inputs", n_inputs,
                 nn_graph_input_count(g));
        return NULL;
    }
    if (refuse_unsupported(g, err)) return NULL;
    struct nn_plan *p = calloc(1, sizeof *p);
    if (!p) {
        nn_no_memory(err);
        return NULL;
    }
    p->g = g;
    p->threads = options->threads;
    p->direct_convolution = options->direct_convolution;
    p->n_inputs = n_inputs;
    size_t n_graph_outputs = nn_graph_output_count(g);
    p->n_outputs = n_graph_outputs + options->n_taps;
    p->input_ids = calloc(n_inputs + 1, sizeof *p->input_ids);
    p->output_ids = calloc(p->n_outputs + 1, sizeof *p->output_ids);
    const char **names = calloc(p->n_outputs + 1, sizeof *names);
    p->output_names = names;
    p->fused = calloc(nn_graph_node_count(g) + 1, 1);
    if (!p->input_ids || !p->output_ids || !names || !p->fused) {
        nn_no_memory(err);
        goto fail;
    }
    for (size_t k = 0; k < n_graph_outputs; k++)
        names[k] = nn_graph_output(g, k)->name;
    for (size_t k = 0; k < options->n_taps; k++)
        names[n_graph_outputs + k] = options->taps[k];
    set_threads(p->threads);
    if (nn_dnnl_check(dnnl_engine_create(&p->engine, dnnl_cpu, 0), "dnnl_engine_create", NULL,
                      err) ||
        nn_dnnl_check(dnnl_stream_create(&p->stream, p->engine, dnnl_stream_default_flags),
                      "dnnl_stream_create", NULL, err))
        goto fail;
    p->node = 0;
    if (add_inputs(p, input_shapes, options, err)) goto fail;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        p->node = (int)i;
        if (!p->fused[i]) {
            const struct nn_node *node = nn_graph_node(g, i);
            /* Folding and compiling both name their result after the first output. */
            if (node->n_outputs < 1 || !node->outputs[0][0]) {
                nn_invalid(node, "no output", err);
                goto fail;
            }
            int folded = nn_fold_constant(p, node, err);
            if (folded < 0 || (!folded && nn_compile_node(p, err))) goto fail;
        }
        release_slots(p, (int)i);
    }
    p->node = (int)nn_graph_node_count(g);
    if (bind_outputs(p, err) || materialize(p, err)) goto fail;
    return p;
fail:
    nn_plan_free(p);
    return NULL;
}

size_t nn_plan_output_count(const struct nn_plan *p)
{
    return p->n_outputs;
}

int nn_plan_run_borrowed(struct nn_plan *p, const float *const *inputs, const float **outputs,
                         struct nn_tensor_info *output_info, struct eng_error *err)
{
    set_threads(p->threads);
    for (size_t i = 0; i < p->n_inputs; i++) {
        if (p->input_ids[i] < 0) continue; /* frozen */
        const struct value *v = &p->values[p->input_ids[i]];
        if (v->count) memcpy(value_ptr(p, v), inputs[i], v->count * sizeof(float));
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        if (s->host) {
            if (s->host(p, s)) return nn_no_memory(err);
            continue;
        }
        if (nn_dnnl_check(dnnl_primitive_execute(s->prim, p->stream, s->nexec, s->exec),
                          "dnnl_primitive_execute", s->node, err))
            return -1;
    }
    if (nn_dnnl_check(dnnl_stream_wait(p->stream), "dnnl_stream_wait", NULL, err)) return -1;
    for (size_t k = 0; k < p->n_outputs; k++) {
        const struct value *v = &p->values[p->output_ids[k]];
        outputs[k] = value_ptr(p, v);
        output_info[k] =
            (struct nn_tensor_info){.name = p->output_names[k], .dtype = NN_FLOAT, .rank = v->rank};
        memcpy(output_info[k].dims, v->dims, (size_t)v->rank * sizeof *v->dims);
    }
    return 0;
}

int nn_plan_run(struct nn_plan *p, const float *const *inputs, float **outputs,
                struct nn_tensor_info *output_info, struct eng_error *err)
{
    const float **in_plan = calloc(p->n_outputs + 1, sizeof *in_plan);
    if (!in_plan) return nn_no_memory(err);
    int rc = nn_plan_run_borrowed(p, inputs, in_plan, output_info, err);
    for (size_t k = 0; rc == 0 && k < p->n_outputs; k++) {
        size_t count = nn_dims_count(output_info[k].rank, output_info[k].dims);
        outputs[k] = malloc((count ? count : 1) * sizeof(float));
        if (!outputs[k]) {
            while (k-- > 0) {
                free(outputs[k]);
                outputs[k] = NULL;
            }
            rc = nn_no_memory(err);
            break;
        }
        memcpy(outputs[k], in_plan[k], count * sizeof(float));
    }
    free(in_plan);
    return rc;
}

float *nn_value_data(const struct nn_plan *p, int id)
{
    return value_ptr(p, &p->values[id]);
}

void nn_plan_free(struct nn_plan *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++) {
        struct step *s = &p->steps[i];
        for (int k = 0; k < s->nexec; k++)
            dnnl_memory_destroy(s->exec[k].memory);
        free(s->exec);
        free(s->args);
        dnnl_primitive_destroy(s->prim);
    }
    for (size_t i = 0; i < p->n_values; i++)
        if (p->values[i].owned) free(p->values[i].data);
    free(p->arena);
    free(p->scratch);
    if (p->stream) dnnl_stream_destroy(p->stream);
    if (p->engine) dnnl_engine_destroy(p->engine);
    free(p->values);
    free(p->steps);
    free(p->slots);
    free(p->input_ids);
    free(p->output_ids);
    free((void *)p->output_names);
    free(p->fused);
    free(p);
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
    /* raw_data is little-endian, as on every host this builds for (as in nn_ir.c). */
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
        nn_no_memory(err);
        goto done;
    }
    if (have) memcpy(*data, tp->has_raw_data ? (const void *)tp->raw_data.data : typed, have);
    rc = 0;
done:
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}
