/* Activations (Relu, LeakyRelu, Clip, Sigmoid, HardSwish) and Dropout. An activation's forward
 * is oneDNN's eltwise primitive (forward training) in its input's layout, the same eltwise
 * operation nn's executor runs (nn_activation_of); its backward, element by element on the
 * host, reads the output (Relu, LeakyRelu, Sigmoid) or the input (Clip, HardSwish), so the
 * forward keeps nothing else. Measured (engine/train/README.md), oneDNN's forward is 1.3 to 20
 * times faster than a host loop (Sigmoid's expf does not vectorise) and its backward no faster
 * than ours, slower for Relu and LeakyRelu. Dropout keeps its mask. */
#include <string.h>

#include "core/rng.h"
#include "train/internal.h"

enum act { ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_SIGMOID, ACT_HARDSWISH };

/* A Relu whose input's producer applies it (BatchNormalization, a same-shape Add: ResNet's and
 * WRN's BN -> ReLU and Add -> ReLU) saves the activation's full write and read in each
 * direction; its output is then a view of its input, and its passes are nothing. */
bool train_relu_fusable(const struct train_plan *t, const struct nn_node *node)
{
    const char *y = node->outputs[0], *out = nn_graph_output(t->g, 0)->name;
    if (!strcmp(y, out) || train_listed(t->keep, t->n_keep, y)) return false;
    const struct nn_node *reader = NULL;
    for (size_t i = 0; i < nn_graph_node_count(t->g); i++) {
        const struct nn_node *r = nn_graph_node(t->g, i);
        for (size_t k = 0; k < r->n_inputs; k++)
            if (!strcmp(r->inputs[k], y)) {
                if (reader) return false;
                reader = r;
            }
    }
    return reader && !strcmp(reader->op_type, "Relu") && !strcmp(reader->domain, "") &&
           strcmp(reader->outputs[0], out);
}

bool train_relu_applied(const struct train_plan *t, int id)
{
    for (size_t i = 0; i < t->n_steps; i++)
        if (t->steps[i].out == id) return t->steps[i].applies_relu;
    return false;
}

static int compile_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    const char *op = node->op_type;
    enum act a = !strcmp(op, "Relu")        ? ACT_RELU
                 : !strcmp(op, "LeakyRelu") ? ACT_LEAKY
                 : !strcmp(op, "Clip")      ? ACT_CLIP
                 : !strcmp(op, "Sigmoid")   ? ACT_SIGMOID
                                            : ACT_HARDSWISH;
    s->q[0] = a;
    /* One eltwise operation each; its alpha is LeakyRelu's slope or Clip's lower bound, its
     * beta Clip's upper bound, which the backward reads too. */
    struct nn_eltwise e;
    if (nn_activation_of(t->np, node, &e, err) < 0) return -1;
    s->f[0] = e.alpha[0];
    s->f[1] = e.beta[0];
    /* Relu's and LeakyRelu's (alpha >= 0) slopes read from the output: y > 0 exactly where
     * x > 0, so the input need not live to the backward pass (memory.c); Sigmoid's from the
     * output too. Clip's and HardSwish's need the input. */
    bool from_output = a == ACT_RELU || a == ACT_SIGMOID || (a == ACT_LEAKY && s->f[0] >= 0);
    s->skips_inputs = from_output;
    s->skips_output = !from_output;
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0) return -1;
    if (a == ACT_RELU && train_relu_applied(t, s->in[0])) {
        /* The output is a view of the input, whose gradient the producer's backward reads as
         * its own. */
        /* A copy: train_alias may move the value table x is in. */
        struct nn_value x = *train_val(t, s->in[0]);
        s->q[1] = 1;
        s->skips_inputs = s->skips_output = true;
        return (s->out = train_alias(t, s->in[0], node->outputs[0], x.rank, x.dims, &x.md, err)) < 0
                   ? -1
                   : 0;
    }
    if ((s->out = train_value_like(t, s, 0, node->outputs[0], err)) < 0) return -1;
    dnnl_memory_desc_t md = train_val(t, s->out)->md;
    dnnl_eltwise_desc_t desc;
    dnnl_primitive_desc_t pd;
    if (nn_dnnl_check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training, e.alg[0], &md,
                                                     e.alpha[0], e.beta[0]),
                      "dnnl_eltwise_forward_desc_init", node, err) ||
        nn_prim_desc(t->np, node, &desc, NULL, &pd, err))
        return -1;
    return train_make_prim(t, s, 0, pd, err);
}

/* The backward loops are one per activation, so that the compiler vectorises each (a switch per
 * element would not), and threaded over static chunks (TRAIN_FOR): every element is computed
 * alone, so the result does not depend on the thread count. */

/* dx = dy * slope, or dx += dy * slope when add (TRAIN_FOR each). */
#define SHARE(add, dx, n, slope)                                                                   \
    do {                                                                                           \
        if (add)                                                                                   \
            TRAIN_FOR(i, n) dx[i] += dy[i] * (slope);                                              \
        else                                                                                       \
            TRAIN_FOR(i, n) dx[i] = dy[i] * (slope);                                               \
    } while (0)

/* dx's share dy * dy/dx, with the slope as PyTorch's backward kernels define it at the kinks:
 * Relu's and LeakyRelu's slope at 0 is the left one; Clip (clamp) passes the gradient at its
 * bounds. x is the input, or the output where that has its signs (Relu, LeakyRelu with alpha >=
 * 0); Sigmoid's slope is read from its output y. */
static void backward_act(enum act a, const float *x, const float *y, const float *dy, float *dx,
                         bool add, size_t n, const float *f)
{
    float lo = f[0], hi = f[1];
    switch (a) {
    case ACT_RELU:
        SHARE(add, dx, n, x[i] > 0 ? 1.0f : 0.0f);
        break;
    case ACT_LEAKY:
        SHARE(add, dx, n, x[i] > 0 ? 1.0f : lo);
        break;
    case ACT_CLIP:
        SHARE(add, dx, n, x[i] >= lo && x[i] <= hi ? 1.0f : 0.0f);
        break;
    case ACT_SIGMOID:
        SHARE(add, dx, n, y[i] * (1 - y[i]));
        break;
    case ACT_HARDSWISH:
        SHARE(add, dx, n, x[i] < -3 ? 0.0f : x[i] > 3 ? 1.0f : x[i] / 3 + 0.5f);
        break;
    }
}

/* q[1]: a Relu its input's producer applies. */
static int forward_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    if (s->q[1]) return 0;
    struct train_arg args[] = {{DNNL_ARG_SRC, t->data[s->in[0]]}, {DNNL_ARG_DST, t->data[s->out]}};
    return train_exec(t, s, 0, args, 2, err);
}

static int backward_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    if (s->q[1] || !t->grad[s->in[0]]) return 0;
    bool add;
    float *dx = train_grad_share(t, s->in[0], t->grad[s->in[0]], &add);
    const float *y = t->data[s->out], *x = s->skips_inputs ? y : t->data[s->in[0]];
    backward_act((enum act)s->q[0], x, y, t->grad[s->out], dx, add, train_val(t, s->out)->count,
                 s->f);
    return 0;
}

const struct train_op train_eltwise_op = {compile_eltwise, forward_eltwise, backward_eltwise,
                                          .keeps_layout = true, .overwrites = true};

/* ---- Dropout ---- */

static int compile_dropout(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    if (node->n_outputs > 1 && node->outputs[1][0])
        return nn_unsupported(node, "the mask output is not supported", err);
    /* The ratio: an attribute before opset 12, an optional constant input from then on. */
    s->f[0] = nn_attr_float(node, "ratio", 0.5f);
    if (nn_has_input(node, 1)) {
        int ri = train_input(t, node, 1, TRAIN_CONSTANT, err);
        if (ri < 0) return -1;
        const struct nn_value *r = train_val(t, ri);
        if (r->dtype != NN_FLOAT || r->count != 1)
            return nn_unsupported(node, "the ratio must be a constant float scalar", err);
        s->f[0] = *(const float *)r->data;
    }
    if (!(s->f[0] >= 0 && s->f[0] < 1)) return nn_invalid(node, "the ratio must be in [0, 1)", err);
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0) return -1;
    struct nn_value x = *train_val(t, s->in[0]);
    s->skips_inputs = s->skips_output = true; /* its backward reads the mask (work) */
    if ((s->out = train_value(t, node->outputs[0], x.rank, x.dims, NULL, err)) < 0) return -1;
    return train_work(s, x.count, err);
}

/* In training mode: mask[i] is 0 or 1 / (1 - ratio), from the stream of (seed, step, node). */
static int forward_dropout(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    const float *x = t->data[s->in[0]];
    float *y = t->data[s->out], *mask = s->work;
    size_t n = s->work_count;
    float keep = 1.0f / (1.0f - s->f[0]);
    if (t->training) {
        struct rng r;
        rng_init(&r, t->seed, (uint32_t)t->step, (uint32_t)(t->step >> 32), (uint32_t)s->index);
        for (size_t i = 0; i < n; i++)
            mask[i] = rng_uniform(&r) < s->f[0] ? 0.0f : keep;
    }
    if (t->training)
        TRAIN_FOR(i, n) y[i] = x[i] * mask[i];
    else
        TRAIN_FOR(i, n) y[i] = x[i];
    return 0;
}

static int backward_dropout(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    float *dx = t->grad[s->in[0]];
    const float *dy = t->grad[s->out], *mask = s->work;
    size_t n = s->work_count;
    if (dx && t->training)
        TRAIN_FOR(i, n) dx[i] += dy[i] * mask[i];
    else if (dx)
        train_accumulate(dx, dy, n);
    return 0;
}

const struct train_op train_dropout_op = {compile_dropout, forward_dropout, backward_dropout};
