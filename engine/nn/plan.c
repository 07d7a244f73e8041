/* The plan: compiling a graph for its input shapes node by node (folding or compiling each), the
 * arena, running, freeing. The ops are in ops.c, the building blocks in build.c; see
 * nn/internal.h for how the parts fit. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cancel.h"
#include "nn/internal.h"

/* A frozen input: a constant holding a copy of the caller's tensor. */
static int freeze_input(struct nn_plan *p, const struct nn_tensor_info *model,
                        const struct nn_tensor *t, struct eng_error *err)
{
    if (t->info.dtype != NN_FLOAT && t->info.dtype != NN_INT64)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "frozen input '%s': only float and int64 are supported", model->name);
    int id =
        nn_constant_copy(p, model->name, t->info.dtype, t->info.rank, t->info.dims, t->data, err);
    return id < 0 ? -1 : 0;
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
    struct nn_value v = p->values[id];
    float *f = malloc((v.count ? v.count : 1) * sizeof *f);
    if (!f) return eng_no_memory(err);
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

/* After planning: the arena, then a memory object per step argument. */
static int materialize(struct nn_plan *p, struct eng_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < p->n_slots; i++) {
        p->slots[i].offset = total;
        total += (p->slots[i].size + 63) / 64 * 64;
    }
    if (p->max_bytes && total + p->scratch_size > p->max_bytes)
        return eng_fail(err, ENG_TOO_LARGE,
                        "the model's activations for these input shapes take %zu bytes; the limit "
                        "is %zu",
                        total + p->scratch_size, p->max_bytes);
    /* 64-byte aligned, as oneDNN's own allocations; aligned_alloc wants a multiple of it. */
    p->arena = aligned_alloc(64, total ? total : 64);
    if (p->scratch_size) p->scratch = aligned_alloc(64, (p->scratch_size + 63) / 64 * 64);
    if (!p->arena || (p->scratch_size && !p->scratch)) return eng_no_memory(err);
    memset(p->arena, 0, total);
    for (size_t i = 0; i < p->n_steps; i++) {
        struct nn_step *s = &p->steps[i];
        if (!s->prim) continue;
        s->exec = calloc((size_t)s->nargs + 1, sizeof *s->exec);
        if (!s->exec) return eng_no_memory(err);
        for (int k = 0; k < s->nargs; k++) {
            dnnl_memory_t m;
            if (nn_dnnl_check(dnnl_memory_create(&m, &s->args[k].md, p->engine,
                                                 nn_value_bytes(p, &p->values[s->args[k].value])),
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

int nn_refuse_unsupported(const struct nn_graph *g, int (*supported)(const struct nn_node *),
                          const char *supported_list, struct eng_error *err)
{
    enum { MAX_NAMED = 16 };
    const struct nn_node *named[MAX_NAMED];
    size_t n_named = 0, n_missing = 0;
    char list[400] = "";
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        if (supported(node)) continue;
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
                    n_missing, supported_list);
}

void nn_set_threads(int threads)
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
    if (nn_refuse_unsupported(g, nn_op_supported, nn_supported_ops, err)) return NULL;
    struct nn_plan *p = nn_plan_begin(g, input_shapes, n_inputs, options, err);
    if (!p) return NULL;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        p->node = (int)i;
        if (!p->fused[i]) {
            const struct nn_node *node = nn_graph_node(g, i);
            /* Folding and compiling both name their result after the first output. */
            if (nn_check_output(node, err)) goto fail;
            int folded = nn_fold_constant(p, node, err);
            if (folded < 0 || (!folded && nn_compile_node(p, err))) goto fail;
        }
        nn_release_slots(p, (int)i);
    }
    p->node = (int)nn_graph_node_count(g);
    if (bind_outputs(p, err) || materialize(p, err)) goto fail;
    return p;
fail:
    nn_plan_free(p);
    return NULL;
}

int nn_check_output(const struct nn_node *node, struct eng_error *err)
{
    return node->n_outputs < 1 || !node->outputs[0][0] ? nn_invalid(node, "no output", err) : 0;
}

struct nn_plan *nn_plan_begin(const struct nn_graph *g, const struct nn_tensor_info *input_shapes,
                              size_t n_inputs, const struct nn_plan_options *options,
                              struct eng_error *err)
{
    if (n_inputs != nn_graph_input_count(g)) {
        eng_fail(err, ENG_INVALID, "%zu input shapes given; the model has %zu inputs", n_inputs,
                 nn_graph_input_count(g));
        return NULL;
    }
    struct nn_plan *p = calloc(1, sizeof *p);
    if (!p) {
        eng_no_memory(err);
        return NULL;
    }
    p->g = g;
    p->threads = options->threads;
    p->direct_convolution = options->direct_convolution;
    p->max_bytes = options->max_bytes;
    p->n_inputs = n_inputs;
    size_t n_graph_outputs = nn_graph_output_count(g);
    p->n_outputs = n_graph_outputs + options->n_taps;
    p->input_ids = calloc(n_inputs + 1, sizeof *p->input_ids);
    p->output_ids = calloc(p->n_outputs + 1, sizeof *p->output_ids);
    const char **names = calloc(p->n_outputs + 1, sizeof *names);
    p->output_names = names;
    p->fused = calloc(nn_graph_node_count(g) + 1, 1);
    if (!p->input_ids || !p->output_ids || !names || !p->fused) {
        eng_no_memory(err);
        goto fail;
    }
    for (size_t k = 0; k < n_graph_outputs; k++)
        names[k] = nn_graph_output(g, k)->name;
    for (size_t k = 0; k < options->n_taps; k++)
        names[n_graph_outputs + k] = options->taps[k];
    nn_set_threads(p->threads);
    if (nn_dnnl_check(dnnl_engine_create(&p->engine, dnnl_cpu, 0), "dnnl_engine_create", NULL,
                      err) ||
        nn_dnnl_check(dnnl_stream_create(&p->stream, p->engine, dnnl_stream_default_flags),
                      "dnnl_stream_create", NULL, err))
        goto fail;
    p->node = 0;
    if (add_inputs(p, input_shapes, options, err)) goto fail;
    return p;
fail:
    nn_plan_free(p);
    return NULL;
}

size_t nn_plan_output_count(const struct nn_plan *p)
{
    return p->n_outputs;
}

double nn_plan_flops(const struct nn_plan *p)
{
    return p->flops;
}

int nn_plan_run_borrowed(struct nn_plan *p, const float *const *inputs, const float **outputs,
                         struct nn_tensor_info *output_info, struct eng_error *err)
{
    nn_set_threads(p->threads);
    for (size_t i = 0; i < p->n_inputs; i++) {
        if (p->input_ids[i] < 0) continue; /* frozen */
        const struct nn_value *v = &p->values[p->input_ids[i]];
        if (v->count) memcpy(nn_value_bytes(p, v), inputs[i], v->count * sizeof(float));
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        struct nn_step *s = &p->steps[i];
        if (eng_cancel_poll(err) != 0) return -1;
        if (s->host) {
            if (s->host(p, s)) return eng_no_memory(err);
            continue;
        }
        if (nn_dnnl_check(dnnl_primitive_execute(s->prim, p->stream, s->nexec, s->exec),
                          "dnnl_primitive_execute", s->node, err))
            return -1;
    }
    if (nn_dnnl_check(dnnl_stream_wait(p->stream), "dnnl_stream_wait", NULL, err)) return -1;
    for (size_t k = 0; k < p->n_outputs; k++) {
        const struct nn_value *v = &p->values[p->output_ids[k]];
        outputs[k] = nn_value_bytes(p, v);
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
    if (!in_plan) return eng_no_memory(err);
    int rc = nn_plan_run_borrowed(p, inputs, in_plan, output_info, err);
    for (size_t k = 0; rc == 0 && k < p->n_outputs; k++) {
        size_t count = nn_dims_count(output_info[k].rank, output_info[k].dims);
        outputs[k] = malloc((count ? count : 1) * sizeof(float));
        if (!outputs[k]) {
            while (k-- > 0) {
                free(outputs[k]);
                outputs[k] = NULL;
            }
            rc = eng_no_memory(err);
            break;
        }
        memcpy(outputs[k], in_plan[k], count * sizeof(float));
    }
    free(in_plan);
    return rc;
}

void nn_plan_free(struct nn_plan *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_steps; i++) {
        struct nn_step *s = &p->steps[i];
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
