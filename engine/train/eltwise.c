/* Activations (Relu, LeakyRelu, Clip, Sigmoid, HardSwish) and Dropout, element by element on
 * the host. Backward reads the input (the output for Sigmoid), so the forward keeps nothing
 * else; Dropout keeps its mask. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "train/internal.h"

enum act { ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_SIGMOID, ACT_HARDSWISH };

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
    s->f[0] = nn_attr_float(node, "alpha", 0.01f);
    if (a == ACT_CLIP && (nn_clip_bound(t->np, node, 1, "min", -FLT_MAX, &s->f[0], err) ||
                          nn_clip_bound(t->np, node, 2, "max", FLT_MAX, &s->f[1], err)))
        return -1;
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0) return -1;
    struct nn_value x = *train_val(t, s->in[0]);
    return (s->out = train_value(t, node->outputs[0], x.rank, x.dims, err)) < 0 ? -1 : 0;
}

/* The loops below are one per activation, so that the compiler vectorises each (a switch per
 * element would not), and threaded over static chunks (TRAIN_FOR): every element is computed
 * alone, so the result does not depend on the thread count. */

static void forward_act(enum act a, const float *x, float *y, size_t n, const float *f)
{
    float lo = f[0], hi = f[1];
    switch (a) {
    case ACT_RELU:
        TRAIN_FOR(i, n) y[i] = x[i] > 0 ? x[i] : 0;
        break;
    case ACT_LEAKY:
        TRAIN_FOR(i, n) y[i] = x[i] > 0 ? x[i] : lo * x[i];
        break;
    case ACT_CLIP:
        TRAIN_FOR(i, n) y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
        break;
    case ACT_SIGMOID:
        TRAIN_FOR(i, n) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case ACT_HARDSWISH:
        TRAIN_FOR(i, n) y[i] = x[i] <= -3 ? 0 : x[i] >= 3 ? x[i] : x[i] * (x[i] + 3) / 6;
        break;
    }
}

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
 * bounds. Sigmoid's slope is read from its output y. */
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

static int forward_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    forward_act((enum act)s->q[0], t->data[s->in[0]], t->data[s->out], train_val(t, s->out)->count,
                s->f);
    return 0;
}

static int backward_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    if (!t->grad[s->in[0]]) return 0;
    bool add;
    float *dx = train_grad_share(t, s->in[0], t->grad[s->in[0]], &add);
    backward_act((enum act)s->q[0], t->data[s->in[0]], t->data[s->out], t->grad[s->out], dx, add,
                 train_val(t, s->out)->count, s->f);
    return 0;
}

const struct train_op train_eltwise_op = {compile_eltwise, forward_eltwise, backward_eltwise,
                                          .overwrites = true};

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
    if ((s->out = train_value(t, node->outputs[0], x.rank, x.dims, err)) < 0) return -1;
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
