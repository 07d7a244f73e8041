/* Traces: what one sample's walk of a policy decided, as a list of op applications (and mixes of
 * lists); their memory and their JSON. */
#include "policy/internal.h"

#include <stdlib.h>
#include <string.h>

int trace_push(struct trace *t, struct trace_item *it, struct eng_error *err)
{
    if (t->count == t->capacity) {
        size_t capacity = t->capacity ? t->capacity * 2 : 8;
        struct trace_item *grown = realloc(t->items, capacity * sizeof *grown);
        if (!grown) {
            trace_item_free(it);
            return eng_fail(err, ENG_NO_MEMORY, "out of memory while sampling");
        }
        t->items = grown;
        t->capacity = capacity;
    }
    t->items[t->count++] = *it;
    return 0;
}

static void trace_clear(struct trace *t)
{
    for (size_t i = 0; i < t->count; i++)
        trace_item_free(&t->items[i]);
    free(t->items);
    memset(t, 0, sizeof *t);
}

void trace_item_free(struct trace_item *it)
{
    for (int i = 0; it->branches && i < it->branch_count; i++)
        trace_clear(&it->branches[i]);
    free(it->branches);
    free(it->weights);
    if (it->paste) copy_paste_draws_free(&it->paste->draws);
    free(it->paste);
}

void trace_free(struct trace *t)
{
    if (!t) return;
    trace_clear(t);
    free(t);
}

/* ---- Traces as JSON ------------------------------------------------------------------------- */

/* "fill" when the policy set it. */
static void set_fill(json_t *o, const struct op_call *call)
{
    if (call->fill_given)
        json_object_set_new(
            o, "fill",
            json_pack("[i,i,i,i]", call->fill[0], call->fill[1], call->fill[2], call->fill[3]));
}

static json_t *call_to_json(const struct op_call *call)
{
    const struct op_desc *op = call->op;
    json_t *o = json_pack("{s:s}", "op", op->name);
    for (int i = 0; o && i < op->arg_count; i++) {
        const struct op_arg_desc *a = &op->args[i];
        json_t *v = a->kind == OP_ARG_ENUM      ? json_string(a->choices[(int)call->args[i]])
                    : a->kind == OP_ARG_INTEGER ? json_integer((json_int_t)call->args[i])
                                                : json_real(call->args[i]);
        json_object_set_new(o, a->name, v);
    }
    if (o && (op->takes & OP_TAKES_INTERPOLATION))
        json_object_set_new(o, "interpolation",
                            json_string(call->interpolation ? "bilinear" : "nearest"));
    if (o && (op->takes & OP_TAKES_FILL)) set_fill(o, call);
    return o;
}

/* A CopyPaste's parameters and draws: {"op", "jitter": [lo, hi], "flip_p", "blend_sigma",
 * "min_area", "fill" (when given), "source": input, "objects": [its chosen objects],
 * "jittered": {"destination": {...}, "source": {...}}}. */
static json_t *paste_to_json(const struct trace_item *it)
{
    const struct paste_item *pi = it->paste;
    const struct copy_paste_params *p = &pi->params;
    json_t *objects = json_array();
    for (size_t i = 0; objects && i < pi->draws.chosen_count; i++)
        json_array_append_new(objects, json_integer(pi->draws.chosen[i]));
    json_t *o = json_pack("{s:s, s:[f, f], s:f, s:f, s:I, s:i, s:o, s:{s:o, s:o}}", "op",
                          it->call.op->name, "jitter", p->scale_lo, p->scale_hi, "flip_p",
                          p->hflip_prob, "blend_sigma", p->blend_sigma, "min_area",
                          (json_int_t)p->min_area, "source", (int)pi->source, "objects", objects,
                          "jittered", "destination", copy_paste_jitter_json(&pi->draws.jitter[0]),
                          "source", copy_paste_jitter_json(&pi->draws.jitter[1]));
    if (o) set_fill(o, &it->call);
    return o;
}

json_t *trace_to_json(const struct trace *t)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < t->count; i++) {
        const struct trace_item *it = &t->items[i];
        if (!it->is_mix) {
            json_array_append_new(list, it->paste ? paste_to_json(it) : call_to_json(&it->call));
            continue;
        }
        json_t *weights = json_array(), *branches = json_array();
        for (int b = 0; b < it->branch_count; b++) {
            json_array_append_new(weights, json_real(it->weights[b]));
            json_array_append_new(branches, trace_to_json(&it->branches[b]));
        }
        json_array_append_new(list, json_pack("{s:{s:f, s:o, s:o}}", "mix", "m", it->m, "weights",
                                              weights, "branches", branches));
    }
    return list;
}

/* Adds t's cost to *c: each op's output, and per mix its branches plus a blend of the image with
 * each branch. */
static void add_cost(const struct trace *t, struct trace_cost *c)
{
    for (size_t i = 0; i < t->count; i++) {
        const struct trace_item *it = &t->items[i];
        double size = (double)it->width * (double)it->height;
        c->work += it->is_mix ? size * (it->branch_count + 1) : size;
        for (int b = 0; it->is_mix && b < it->branch_count; b++)
            add_cost(&it->branches[b], c);
        if (!it->is_mix && size > c->peak) {
            c->peak = size;
            c->peak_width = it->width;
            c->peak_height = it->height;
            c->peak_op = it->call.op->name;
        }
    }
}

struct trace_cost trace_cost(const struct trace *t)
{
    struct trace_cost c = {0};
    add_cost(t, &c);
    return c;
}

size_t trace_op_count(const struct trace *t)
{
    size_t count = 0;
    for (size_t i = 0; i < t->count; i++) {
        if (!t->items[i].is_mix) count++;
        for (int b = 0; t->items[i].is_mix && b < t->items[i].branch_count; b++)
            count += trace_op_count(&t->items[i].branches[b]);
    }
    return count;
}
