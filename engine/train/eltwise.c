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

static float act_forward(enum act a, float x, const float *f)
{
    switch (a) {
    case ACT_RELU:
        return x > 0 ? x : 0;
    case ACT_LEAKY:
        return x > 0 ? x : f[0] * x;
    case ACT_CLIP:
        return x < f[0] ? f[0] : x > f[1] ? f[1] : x;
    case ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case ACT_HARDSWISH:
        return x <= -3 ? 0 : x >= 3 ? x : x * (x + 3) / 6;
    }
    return x;
}

/* dy/dx at x (y the output), as PyTorch's backward kernels define it at the kinks: Relu's and
 * LeakyRelu's slope at 0 is the left one; Clip (clamp) passes the gradient at its bounds. */
static float act_slope(enum act a, float x, float y, const float *f)
{
    switch (a) {
    case ACT_RELU:
        return x > 0 ? 1.0f : 0.0f;
    case ACT_LEAKY:
        return x > 0 ? 1.0f : f[0];
    case ACT_CLIP:
        return x >= f[0] && x <= f[1] ? 1.0f : 0.0f;
    case ACT_SIGMOID:
        return y * (1 - y);
    case ACT_HARDSWISH:
        return x < -3 ? 0.0f : x > 3 ? 1.0f : x / 3 + 0.5f;
    }
    return 1.0f;
}

static int forward_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    const float *x = t->data[s->in[0]];
    float *y = t->data[s->out];
    size_t n = train_val(t, s->out)->count;
    for (size_t i = 0; i < n; i++)
        y[i] = act_forward((enum act)s->q[0], x[i], s->f);
    return 0;
}

static int backward_eltwise(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    float *dx = t->grad[s->in[0]];
    if (!dx) return 0;
    const float *x = t->data[s->in[0]], *y = t->data[s->out], *dy = t->grad[s->out];
    size_t n = train_val(t, s->out)->count;
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * act_slope((enum act)s->q[0], x[i], y[i], s->f);
    return 0;
}

const struct train_op train_eltwise_op = {compile_eltwise, forward_eltwise, backward_eltwise};

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
    for (size_t i = 0; i < n; i++)
        y[i] = t->training ? x[i] * mask[i] : x[i];
    return 0;
}

static int backward_dropout(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    float *dx = t->grad[s->in[0]];
    const float *dy = t->grad[s->out], *mask = s->work;
    for (size_t i = 0; dx && i < s->work_count; i++)
        dx[i] += t->training ? dy[i] * mask[i] : dy[i];
    return 0;
}

const struct train_op train_dropout_op = {compile_dropout, forward_dropout, backward_dropout};
