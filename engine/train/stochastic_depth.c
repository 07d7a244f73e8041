/* Stochastic depth (Huang et al. 2016), as torchvision.ops.stochastic_depth(x, ratio, "row"):
 * in training mode each sample's x is zeroed with probability ratio and otherwise scaled by
 * 1 / (1 - ratio); in eval mode it is the identity. The op is the zoo's StochasticDepth
 * (domain ai.augserve, train.h's "Noise"), on a residual branch.
 *
 * The sample index is the outermost dimension in the plain and the blocked (nChw16c) layouts
 * alike, so sample n's elements are the n-th run of count / N floats in either: the op keeps its
 * input's layout and multiplies each run by its scale. The forward keeps the N scales (work) for
 * the backward, which reads nothing else. */
#include "core/rng.h"
#include "train/internal.h"

static int compile_depth(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    s->f[0] = nn_attr_float(node, "ratio", 0.0f);
    if (!(s->f[0] >= 0 && s->f[0] < 1)) return nn_invalid(node, "the ratio must be in [0, 1)", err);
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0) return -1;
    const struct nn_value *x = train_val(t, s->in[0]);
    if (x->rank < 1 || x->dims[0] < 1)
        return nn_invalid(node, "the input needs a batch dimension", err);
    s->skips_inputs = s->skips_output = true;
    if ((s->out = train_value_like(t, s, 0, node->outputs[0], err)) < 0) return -1;
    return train_work(s, (size_t)train_val(t, s->out)->dims[0], err);
}

/* In training mode: scale[n] is 0 with probability ratio, else 1 / (1 - ratio), one uniform per
 * sample from the stream of (seed, step, node), as Dropout's masks. */
static int forward_depth(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    const float *x = t->data[s->in[0]];
    float *y = t->data[s->out], *scale = s->work;
    size_t samples = s->work_count, n = train_val(t, s->out)->count, per = n / samples;
    if (!t->training) {
        TRAIN_FOR(i, n) y[i] = x[i];
        return 0;
    }
    struct rng r;
    rng_init(&r, t->seed, (uint32_t)t->step, (uint32_t)(t->step >> 32), (uint32_t)s->index);
    float keep = 1.0f / (1.0f - s->f[0]);
    for (size_t k = 0; k < samples; k++) {
        const float *xk = x + k * per, c = scale[k] = rng_uniform(&r) < s->f[0] ? 0.0f : keep;
        float *yk = y + k * per;
        TRAIN_FOR(i, per) yk[i] = xk[i] * c;
    }
    return 0;
}

static int backward_depth(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    float *dx = t->grad[s->in[0]];
    const float *dy = t->grad[s->out], *scale = s->work;
    size_t n = train_val(t, s->out)->count, per = n / s->work_count;
    if (!dx) return 0;
    if (!t->training) {
        train_accumulate(dx, dy, n);
        return 0;
    }
    for (size_t k = 0; k < s->work_count; k++) {
        const float *dyk = dy + k * per, c = scale[k];
        float *dxk = dx + k * per;
        TRAIN_FOR(i, per) dxk[i] += dyk[i] * c;
    }
    return 0;
}

const struct train_op train_stochastic_depth_op = {compile_depth, forward_depth, backward_depth,
                                                   .keeps_layout = true};
