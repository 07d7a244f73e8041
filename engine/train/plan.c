/* The training plan: compiling a graph node by node over an nn plan's values (nn folds the shape
 * arithmetic; ops.c's table compiles the rest), the forward and backward passes, and the
 * parameters and buffers. See train/internal.h for how the parts fit. */
#include <stdlib.h>
#include <string.h>

#include "core/cancel.h"
#include "train/internal.h"

/* ---- values ---- */

/* Grows the per-value arrays to cover every value the nn plan holds; new entries are empty. */
static int sync_values(struct train_plan *t, struct eng_error *err)
{
    size_t n = t->np->n_values;
    if (n <= t->cap) return 0;
    size_t cap = t->cap ? t->cap : 64;
    while (cap < n)
        cap *= 2;
    float **data = realloc(t->data, cap * sizeof *data);
    if (data) t->data = data;
    float **grad = data ? realloc(t->grad, cap * sizeof *grad) : NULL;
    if (grad) t->grad = grad;
    unsigned char *owned = grad ? realloc(t->owned, cap) : NULL;
    if (owned) t->owned = owned;
    unsigned char *fresh = owned ? realloc(t->fresh, cap) : NULL;
    if (fresh) t->fresh = fresh;
    int *root = fresh ? realloc(t->root, cap * sizeof *root) : NULL;
    if (!root) return eng_no_memory(err);
    t->root = root;
    memset(t->data + t->cap, 0, (cap - t->cap) * sizeof *t->data);
    memset(t->grad + t->cap, 0, (cap - t->cap) * sizeof *t->grad);
    memset(t->owned + t->cap, 0, cap - t->cap);
    memset(t->fresh + t->cap, 0, cap - t->cap);
    for (size_t i = t->cap; i < cap; i++)
        t->root[i] = (int)i;
    t->cap = cap;
    return 0;
}

/* Gives value id floats (and a gradient when with_grad) owned by the plan. */
static int own_floats(struct train_plan *t, int id, int with_grad, struct eng_error *err)
{
    size_t count = t->np->values[id].count;
    t->owned[id] = 1;
    t->data[id] = calloc(count ? count : 1, sizeof(float));
    if (with_grad) t->grad[id] = calloc(count ? count : 1, sizeof(float));
    return !t->data[id] || (with_grad && !t->grad[id]) ? eng_no_memory(err) : 0;
}

int train_value(struct train_plan *t, const char *name, int rank, const int64_t *dims,
                const dnnl_memory_desc_t *md, struct eng_error *err)
{
    int id = nn_activation(t->np, name, rank, dims, md, err);
    return id < 0 || sync_values(t, err) ? -1 : id;
}

int train_alias(struct train_plan *t, int src, const char *name, int rank, const int64_t *dims,
                const dnnl_memory_desc_t *md, struct eng_error *err)
{
    int id = nn_alias(t->np, src, name, rank, dims, md, err);
    if (id < 0 || sync_values(t, err)) return -1;
    t->data[id] = t->data[src];
    t->root[id] = t->root[src];
    return id;
}

/* Appends value v to a parameter or buffer list. */
static int add_param(struct train_param **list, size_t *n, const struct nn_value *v, float *value,
                     float *grad, bool no_decay, struct eng_error *err)
{
    struct train_param *grown = realloc(*list, (*n + 1) * sizeof *grown);
    if (!grown) return eng_no_memory(err);
    *list = grown;
    struct train_param *q = &(*list)[(*n)++];
    *q = (struct train_param){.name = v->name,
                              .rank = v->rank,
                              .count = v->count,
                              .value = value,
                              .grad = grad,
                              .no_decay = no_decay};
    memcpy(q->dims, v->dims, sizeof q->dims);
    return 0;
}

/* An initializer read where a gradient flows becomes a parameter (or a buffer): a copy the plan
 * owns, as the optimiser writes it. Other float constants, and frozen initializers, are read in
 * place (the plan never writes them). */
bool train_listed(const char *const *names, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++)
        if (!strcmp(names[k], name)) return true;
    return false;
}

static int adopt_constant(struct train_plan *t, int id, enum train_role role, struct eng_error *err)
{
    const struct nn_value *v = &t->np->values[id];
    const struct nn_tensor *init = nn_graph_initializer(t->g, v->name);
    if (!init || init->data != v->data ||
        (role != TRAIN_BUFFER && train_listed(t->frozen, t->n_frozen, v->name))) {
        t->data[id] = v->data;
        return 0;
    }
    int buffer = role == TRAIN_BUFFER;
    if (own_floats(t, id, !buffer, err)) return -1;
    if (v->count) memcpy(t->data[id], v->data, v->count * sizeof(float));
    if (buffer) return add_param(&t->buffers, &t->n_buffers, v, t->data[id], NULL, false, err);
    return add_param(&t->params, &t->n_params, v, t->data[id], t->grad[id], role == TRAIN_NO_DECAY,
                     err);
}

int train_input(struct train_plan *t, const struct nn_node *node, size_t k, enum train_role role,
                struct eng_error *err)
{
    int id = nn_input(t->np, node, k, err);
    if (id < 0 || sync_values(t, err)) return -1;
    const struct nn_value *v = &t->np->values[id];
    if (!v->is_const && !t->compiling->op->keeps_layout)
        return train_plain(t, t->compiling, id, err);
    if (!v->is_const || role == TRAIN_CONSTANT || t->data[id]) return id;
    if (v->dtype != NN_FLOAT)
        return nn_unsupported(node, "a float input is an integer constant", err);
    return adopt_constant(t, id, role, err) ? -1 : id;
}

int train_work(struct train_step *s, size_t count, struct eng_error *err)
{
    free(s->work);
    s->work_count = count;
    s->work = calloc(count ? count : 1, sizeof(float));
    return s->work ? 0 : eng_no_memory(err);
}

void train_need_temp(struct train_plan *t, size_t count)
{
    if (count > t->temp_count) t->temp_count = count;
}

void train_accumulate(float *dst, const float *src, size_t n)
{
    TRAIN_FOR(i, n) dst[i] += src[i];
}

/* ---- oneDNN ---- */

int train_make_prim_at(struct train_plan *t, struct train_step *s, int *at,
                       dnnl_primitive_desc_t pd, struct eng_error *err)
{
    t->np->node = s->index;
    struct nn_step *ns = nn_add_step(t->np, err);
    if (!ns) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    *at = (int)t->np->n_steps - 1;
    return nn_make_prim(t->np, ns, NULL, NULL, pd, err);
}

int train_make_prim(struct train_plan *t, struct train_step *s, int k, dnnl_primitive_desc_t pd,
                    struct eng_error *err)
{
    return train_make_prim_at(t, s, &s->prim[k], pd, err);
}

int train_make_reorder(struct train_plan *t, struct train_step *s, int *at,
                       const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                       struct eng_error *err)
{
    dnnl_primitive_attr_t user;
    dnnl_primitive_desc_t rd;
    if (nn_user_scratchpad_attr(NULL, &user, s->node, err)) return -1;
    dnnl_status_t st =
        dnnl_reorder_primitive_desc_create(&rd, from, t->np->engine, to, t->np->engine, user);
    dnnl_primitive_attr_destroy(user);
    if (nn_dnnl_check(st, "dnnl_reorder_primitive_desc_create", s->node, err)) return -1;
    return train_make_prim_at(t, s, at, rd, err);
}

int train_exec_at(struct train_plan *t, const struct train_step *s, int at,
                  const struct train_arg *args, int n, struct eng_error *err)
{
    enum { MAX_ARGS = 12 };
    const struct nn_step *ns = &t->np->steps[at];
    const_dnnl_primitive_desc_t pd;
    dnnl_exec_arg_t exec[MAX_ARGS + 1];
    int made = 0;
    int rc = nn_dnnl_check(dnnl_primitive_get_primitive_desc(ns->prim, &pd),
                           "dnnl_primitive_get_primitive_desc", s->node, err);
    while (!rc && made < n && made < MAX_ARGS) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[made].arg);
        rc = nn_dnnl_check(
            md ? dnnl_memory_create(&exec[made].memory, md, t->np->engine, args[made].data)
               : dnnl_invalid_arguments,
            "dnnl_memory_create", s->node, err);
        if (!rc) made++;
    }
    for (int i = 0; i < made; i++)
        exec[i].arg = args[i].arg;
    if (!rc && ns->scratch_size) {
        rc = nn_dnnl_check(
            dnnl_memory_create(&exec[made].memory, &ns->scratch_md, t->np->engine, t->scratch),
            "dnnl_memory_create", s->node, err);
        if (!rc) exec[made++].arg = DNNL_ARG_SCRATCHPAD;
    }
    if (!rc)
        rc = nn_dnnl_check(dnnl_primitive_execute(ns->prim, t->np->stream, made, exec),
                           "dnnl_primitive_execute", s->node, err);
    for (int i = 0; i < made; i++)
        dnnl_memory_destroy(exec[i].memory);
    return rc;
}

int train_exec(struct train_plan *t, const struct train_step *s, int k,
               const struct train_arg *args, int n, struct eng_error *err)
{
    return train_exec_at(t, s, s->prim[k], args, n, err);
}

/* ---- compiling ---- */

static struct train_step *add_step(struct train_plan *t, int node, struct eng_error *err)
{
    struct train_step *grown = realloc(t->steps, (t->n_steps + 1) * sizeof *grown);
    if (!grown) {
        eng_no_memory(err);
        return NULL;
    }
    t->steps = grown;
    struct train_step *s = &t->steps[t->n_steps++];
    memset(s, 0, sizeof *s);
    s->node = nn_graph_node(t->g, (size_t)node);
    s->index = node;
    s->out = -1;
    for (int k = 0; k < TRAIN_MAX_PRIMS; k++)
        s->prim[k] = -1;
    for (int k = 0; k < TRAIN_MAX_INPUTS; k++)
        s->in[k] = -1;
    return s;
}

static int compile_nodes(struct train_plan *t, struct eng_error *err)
{
    for (size_t i = 0; i < nn_graph_node_count(t->g); i++) {
        t->np->node = (int)i;
        if (t->np->fused[i]) continue; /* a Constant folded early for a reader */
        const struct nn_node *node = nn_graph_node(t->g, i);
        if (nn_check_output(node, err)) return -1;
        int folded = nn_fold_constant(t->np, node, err);
        if (folded < 0 || sync_values(t, err)) return -1;
        if (folded) continue;
        const struct train_op *op = train_op_find(node);
        if (!op) return nn_unsupported(node, "has no backward pass on these inputs", err);
        struct train_step *s = add_step(t, (int)i, err);
        if (!s) return -1;
        s->op = op;
        t->compiling = s;
        if (op->compile(t, s, err)) return -1;
    }
    return 0;
}

static int bind_output(struct train_plan *t, struct eng_error *err)
{
    const char *name = nn_graph_output(t->g, 0)->name;
    int id = nn_find_value(t->np, name);
    if (id < 0) return eng_fail(err, ENG_INVALID, "output '%s' is not produced by any node", name);
    const struct nn_value *v = &t->np->values[id];
    if (v->is_const)
        return eng_fail(err, ENG_UNSUPPORTED, "output '%s' is a constant: nothing to train", name);
    t->output = id;
    t->output_info = (struct nn_tensor_info){.name = name, .dtype = NN_FLOAT, .rank = v->rank};
    memcpy(t->output_info.dims, v->dims, sizeof v->dims);
    return 0;
}

int train_plan_check(const struct nn_graph *g, struct eng_error *err)
{
    if (nn_graph_input_count(g) != 1 || nn_graph_output_count(g) != 1)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "a training plan needs a model of one input and one output; it has %zu "
                        "and %zu",
                        nn_graph_input_count(g), nn_graph_output_count(g));
    return nn_refuse_unsupported(g, train_op_supported, train_supported_ops, err);
}

struct train_plan *train_plan_compile(const struct nn_graph *g,
                                      const struct nn_tensor_info *input_shape,
                                      const struct train_plan_options *options,
                                      struct eng_error *err)
{
    static const struct train_plan_options defaults = {0};
    if (!options) options = &defaults;
    if (train_plan_check(g, err)) return NULL;
    struct train_plan *t = calloc(1, sizeof *t);
    if (!t) {
        eng_no_memory(err);
        return NULL;
    }
    t->g = g;
    t->seed = options->seed;
    t->step = options->step;
    t->threads = options->threads;
    t->input_grad = options->input_grad;
    t->plain_conv = options->plain_conv;
    t->direct_convolution = options->direct_convolution;
    t->frozen = options->frozen;
    t->n_frozen = options->n_frozen;
    t->keep = options->keep;
    t->n_keep = options->n_keep;
    const struct nn_plan_options nn_options = {.threads = options->threads};
    nn_set_threads(t->threads);
    if (!(t->np = nn_plan_begin(g, input_shape, 1, &nn_options, err)) || sync_values(t, err))
        goto fail;
    t->input = t->np->input_ids[0];
    if (t->input < 0 || own_floats(t, t->input, 0, err) || compile_nodes(t, err) ||
        bind_output(t, err) || train_place_values(t, err))
        goto fail;
    if ((t->np->scratch_size &&
         !(t->scratch = aligned_alloc(64, (t->np->scratch_size + 63) / 64 * 64))) ||
        (t->temp_count &&
         !(t->temp = aligned_alloc(64, (t->temp_count + 15) / 16 * 16 * sizeof *t->temp)))) {
        eng_no_memory(err);
        goto fail;
    }
    return t;
fail:
    train_plan_free(t);
    return NULL;
}

void train_plan_free(struct train_plan *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->cap; i++)
        if (t->owned[i]) {
            free(t->data[i]);
            free(t->grad[i]);
        }
    for (size_t i = 0; i < t->n_steps; i++) {
        free(t->steps[i].work);
        free(t->steps[i].convert);
    }
    nn_plan_free(t->np);
    train_grads_free(t);
    train_slots_free(t);
    free(t->root);
    free(t->data);
    free(t->grad);
    free(t->owned);
    free(t->fresh);
    free(t->steps);
    free(t->params);
    free(t->buffers);
    free(t->scratch);
    free(t->temp);
    free(t);
}

/* ---- the passes ---- */

int train_plan_forward(struct train_plan *t, const float *input, bool training,
                       const float **output, struct eng_error *err)
{
    nn_set_threads(t->threads);
    const struct nn_value *in = &t->np->values[t->input];
    memcpy(t->data[t->input], input, in->count * sizeof(float));
    t->training = training;
    t->forward_done = false;
    for (size_t i = 0; i < t->n_steps; i++) {
        struct train_step *s = &t->steps[i];
        if (eng_cancel_poll(err) != 0 || train_convert_forward(t, s, err) ||
            s->op->forward(t, s, err))
            return -1;
    }
    if (nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", NULL, err)) return -1;
    if (training) t->step++;
    t->forward_done = true;
    *output = t->data[t->output];
    return 0;
}

int train_plan_backward(struct train_plan *t, const float *grad_output, float *grad_input,
                        struct eng_error *err)
{
    if (!t->forward_done) return eng_fail(err, ENG_INVALID, "backward needs a forward pass first");
    if (grad_input && !t->input_grad)
        return eng_fail(err, ENG_INVALID,
                        "the input's gradient was not asked for when the plan was compiled");
    nn_set_threads(t->threads);
    int rc = train_grads_begin(t, err);
    if (!rc && t->grad[t->output]) {
        memcpy(t->grad[t->output], grad_output, t->np->values[t->output].count * sizeof(float));
        t->fresh[t->root[t->output]] = 0;
    }
    for (size_t i = t->n_steps; !rc && i-- > 0;) {
        struct train_step *s = &t->steps[i];
        int run = eng_cancel_poll(err) ? -1 : train_grads_before(t, s, err);
        if (run > 0) {
            run = s->op->backward(t, s, err) ? -1 : 0;
            train_grads_after(t, s);
        }
        /* Later readers of s's plain copies may have given them gradients even when s has none. */
        if (run >= 0 && train_convert_backward(t, s, err)) run = -1;
        rc = run < 0;
    }
    if (!rc) rc = nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", NULL, err);
    /* The input's gradient: zeros when no gradient reached it. */
    if (!rc && grad_input) {
        size_t count = t->np->values[t->input].count;
        if (t->grad[t->input] && !t->fresh[t->root[t->input]])
            memcpy(grad_input, t->grad[t->input], count * sizeof(float));
        else
            memset(grad_input, 0, count * sizeof(float));
    }
    train_grads_end(t);
    return rc ? -1 : 0;
}

/* ---- accessors ---- */

float *train_plan_value(const struct train_plan *t, const char *name, struct nn_tensor_info *info,
                        struct eng_error *err)
{
    if (!t->forward_done) {
        eng_fail(err, ENG_INVALID, "no forward pass has run yet");
        return NULL;
    }
    /* A blocked value and its plain copies share its name (layout.c); any kept one will do. */
    int found = -1;
    for (size_t id = 0; id < t->np->n_values; id++) {
        const struct nn_value *v = train_val(t, (int)id);
        if (v->is_const || strcmp(v->name, name)) continue;
        found = (int)id;
        if (t->owned[t->root[id]]) break;
    }
    if (found < 0) {
        eng_fail(err, ENG_NOT_FOUND, "no activation is named '%s'", name);
        return NULL;
    }
    const struct nn_value *v = train_val(t, found);
    /* A producer that applied the Relu after it holds that Relu's output, not its own. */
    if (!t->owned[t->root[found]] || train_relu_applied(t, found)) {
        eng_fail(err, ENG_UNSUPPORTED,
                 "'%s' is not kept to the end of the forward pass (the options' keep can name it)",
                 name);
        return NULL;
    }
    float *out = malloc((v->count ? v->count : 1) * sizeof *out);
    dnnl_memory_desc_t plain;
    if (!out)
        eng_no_memory(err);
    else if (nn_is_plain(v))
        memcpy(out, t->data[found], v->count * sizeof *out);
    else if (nn_plain_md(&plain, v->rank, v->dims, NULL, err) ||
             nn_reorder_now(t->np, &v->md, t->data[found], &plain, out, "reorder of a value read",
                            NULL, err)) {
        free(out);
        return NULL;
    }
    if (out) {
        *info = (struct nn_tensor_info){.name = v->name, .dtype = NN_FLOAT, .rank = v->rank};
        memcpy(info->dims, v->dims, sizeof v->dims);
    }
    return out;
}

size_t train_plan_param_count(const struct train_plan *t)
{
    return t->n_params;
}

struct train_param *train_plan_param(struct train_plan *t, size_t i)
{
    return &t->params[i];
}

size_t train_plan_buffer_count(const struct train_plan *t)
{
    return t->n_buffers;
}

struct train_param *train_plan_buffer(struct train_plan *t, size_t i)
{
    return &t->buffers[i];
}

/* Copies n entries of from into to, which must match them in name and size. */
static int copy_list(struct train_param *to, const struct train_param *from, size_t n,
                     struct eng_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (to[i].count != from[i].count || strcmp(to[i].name, from[i].name))
            return eng_fail(err, ENG_INVALID, "the plans' parameters differ at '%s'", to[i].name);
    for (size_t i = 0; i < n; i++)
        memcpy(to[i].value, from[i].value, to[i].count * sizeof(float));
    return 0;
}

int train_plan_copy_values(struct train_plan *t, const struct train_plan *src,
                           struct eng_error *err)
{
    if (t->n_params != src->n_params || t->n_buffers != src->n_buffers)
        return eng_fail(err, ENG_INVALID,
                        "the plans have %zu and %zu parameters, %zu and %zu buffers", t->n_params,
                        src->n_params, t->n_buffers, src->n_buffers);
    return copy_list(t->params, src->params, t->n_params, err) ||
                   copy_list(t->buffers, src->buffers, t->n_buffers, err)
               ? -1
               : 0;
}

size_t train_plan_bytes(const struct train_plan *t)
{
    size_t floats = 0;
    for (size_t i = 0; i < t->np->n_values; i++)
        if (t->owned[i]) floats += t->np->values[i].count * (t->np->values[i].is_const ? 2 : 1);
    for (size_t i = 0; i < t->n_buffers; i++)
        floats -= t->buffers[i].count; /* counted twice above: buffers have no gradient */
    for (size_t i = 0; i < t->n_steps; i++)
        floats += t->steps[i].work_count;
    for (size_t i = 0; i < t->n_pool; i++)
        floats += t->pool[i].count;
    for (size_t i = 0; i < t->n_slots; i++)
        floats += t->slots[i].count;
    floats += t->temp_count;
    return floats * sizeof(float) + t->np->scratch_size;
}

const struct nn_tensor_info *train_plan_output_info(const struct train_plan *t)
{
    return &t->output_info;
}

uint64_t train_plan_step(const struct train_plan *t)
{
    return t->step;
}

void train_plan_set_step(struct train_plan *t, uint64_t step)
{
    t->step = step;
}
