/* Blocked activations. A Conv makes its output in oneDNN's nChw16c layout when the channels fill
 * whole blocks of 16, and the ops that run elementwise or on oneDNN (BatchNormalization, the
 * activations, same-shape Add and Mul: keeps_layout) make theirs in their input's layout, so
 * values stay blocked from one Conv to the next and BatchNorm runs its blocked kernel. Any other
 * op reads a blocked input through a plain copy: a reorder before its forward, the copy's
 * gradient reordered back into the blocked value's after its backward. The copy takes the
 * value's name, so the readers after it read it too (nn_input finds the latest value of a
 * name), and its gradient gathers theirs before the one conversion back. The graph's input and
 * output, parameters and buffers are always plain. */
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

bool train_blocked_md(const struct train_plan *t, const char *name, int rank, const int64_t *dims,
                      dnnl_memory_desc_t *md)
{
    if (t->plain_conv || rank != 4 || dims[1] <= 0 || dims[1] % 16 ||
        !strcmp(name, nn_graph_output(t->g, 0)->name))
        return false;
    dnnl_dims_t d = {dims[0], dims[1], dims[2], dims[3]}; /* oneDNN's prototype wants 12 */
    return dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_aBcd16b) == dnnl_success;
}

bool train_is_blocked(const struct train_plan *t, int id)
{
    return !nn_is_plain(train_val(t, id));
}

int train_plain(struct train_plan *t, struct train_step *s, int id, struct eng_error *err)
{
    if (!train_is_blocked(t, id)) return id;
    struct train_convert *grown = realloc(s->convert, (size_t)(s->n_convert + 1) * sizeof *grown);
    if (!grown) return eng_no_memory(err);
    s->convert = grown;
    struct train_convert *c = &s->convert[s->n_convert];
    struct nn_value v = *train_val(t, id);
    c->from = id;
    c->to = train_value(t, v.name, v.rank, v.dims, NULL, err);
    if (c->to < 0 || train_make_reorder(t, s, &c->fwd, &v.md, &train_val(t, c->to)->md, err) ||
        train_make_reorder(t, s, &c->bwd, &train_val(t, c->to)->md, &v.md, err))
        return -1;
    train_need_temp(t, v.count);
    s->n_convert++;
    return c->to;
}

int train_value_like(struct train_plan *t, struct train_step *s, int k, const char *name,
                     struct eng_error *err)
{
    struct nn_value x = *train_val(t, s->in[k]);
    dnnl_memory_desc_t md;
    if (!nn_is_plain(&x) && !train_blocked_md(t, name, x.rank, x.dims, &md) &&
        (s->in[k] = train_plain(t, s, s->in[k], err)) < 0)
        return -1;
    /* A copy: train_value may move the value table that the input's descriptor is in. */
    dnnl_memory_desc_t like = train_val(t, s->in[k])->md;
    return train_value(t, name, x.rank, x.dims, &like, err);
}

int train_convert_forward(struct train_plan *t, const struct train_step *s, struct eng_error *err)
{
    for (int k = 0; k < s->n_convert; k++) {
        const struct train_convert *c = &s->convert[k];
        struct train_arg args[] = {{DNNL_ARG_FROM, t->data[c->from]},
                                   {DNNL_ARG_TO, t->data[c->to]}};
        if (train_exec_at(t, s, c->fwd, args, 2, err)) return -1;
    }
    return 0;
}

int train_convert_backward(struct train_plan *t, const struct train_step *s, struct eng_error *err)
{
    for (int k = 0; k < s->n_convert; k++) {
        const struct train_convert *c = &s->convert[k];
        if (!t->grad[c->to]) continue;
        if (train_grad_take(t, c->from, err)) return -1;
        bool add;
        float *into = train_grad_share(t, c->from, t->temp, &add);
        struct train_arg args[] = {{DNNL_ARG_FROM, t->grad[c->to]}, {DNNL_ARG_TO, into}};
        if (t->grad[c->from] &&
            (train_exec_at(t, s, c->bwd, args, 2, err) ||
             nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err)))
            return -1;
        if (add) train_accumulate(t->grad[c->from], into, train_val(t, c->from)->count);
        train_grad_release(t, c->to);
    }
    return 0;
}
