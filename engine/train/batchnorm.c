/* BatchNormalization: in training mode through oneDNN (forward with the batch's statistics,
 * backward to the input, scale and shift), then the running statistics' update on the host; in
 * eval mode a host loop over the running statistics, and its backward.
 *
 * A BatchNormalization whose output only a Relu reads (ResNet's and WRN's BN -> ReLU) applies
 * that Relu itself: oneDNN's fuse_norm_relu in training mode (its forward keeps a bit mask in a
 * workspace, which its backward reads), the host loops' max(y, 0) in eval mode. The Relu's
 * output is then a view of the normalisation's (eltwise.c), which saves a full write and read
 * of the activation in each direction (train_relu_fusable says when). */
#include <math.h>

#include "train/internal.h"

enum { BN_FORWARD, BN_BACKWARD };

/* The step's work: the batch mean and biased variance, which the backward reads. The scale's,
 * shift's and input's gradients are written into t->temp, then added in. */
static float *bn_mean(const struct train_step *s)
{
    return s->work;
}

/* The workspace of the fused forward, after the batch statistics. */
static void *bn_workspace(const struct train_step *s, size_t c)
{
    return s->work + 2 * c;
}

static int compile_batchnorm(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    /* Outputs past the first (training_mode's updated running mean and variance, as PyTorch
     * exports a model in training mode) are left unmade: the buffers are updated in place, and
     * a node reading those outputs is refused as reading a value no node produces. */
    const struct nn_node *node = s->node;
    static const enum train_role roles[5] = {TRAIN_ACTIVATION, TRAIN_NO_DECAY, TRAIN_NO_DECAY,
                                             TRAIN_BUFFER, TRAIN_BUFFER};
    for (int k = 0; k < 5; k++)
        if ((s->in[k] = train_input(t, node, (size_t)k, roles[k], err)) < 0) return -1;
    s->n_in = 5;
    struct nn_value x = *train_val(t, s->in[0]);
    if (x.rank < 2) return nn_invalid(node, "the input must have a channel dim", err);
    for (int k = 1; k < 5; k++)
        if (train_val(t, s->in[k])->rank != 1 || train_val(t, s->in[k])->dims[0] != x.dims[1])
            return nn_invalid(node, "scale, B, mean and var must have one element per channel",
                              err);
    s->skips_output = true; /* backward reads x, the batch statistics and the Relu's mask */
    s->f[0] = nn_attr_float(node, "epsilon", 1e-5f);
    s->f[1] = nn_attr_float(node, "momentum", 0.9f);
    s->applies_relu = train_relu_fusable(t, node);
    size_t c = (size_t)x.dims[1];
    if ((s->out = train_value_like(t, s, 0, node->outputs[0], err)) < 0) return -1;
    train_need_temp(t, 2 * c + x.count);
    /* The input's layout (blocked: oneDNN's bnorm_jit kernels), which the output shares. */
    dnnl_memory_desc_t md = train_val(t, s->in[0])->md;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (s->applies_relu ? dnnl_fuse_norm_relu : 0u);
    dnnl_batch_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    int rc = nn_dnnl_check(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training,
                                                                      &md, s->f[0], flags),
                           "dnnl_batch_normalization_forward_desc_init", node, err) ||
             nn_dnnl_check(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &md, &md,
                                                                       s->f[0], flags),
                           "dnnl_batch_normalization_backward_desc_init", node, err) ||
             nn_prim_desc(t->np, node, &fd, NULL, &fpd, err) ||
             nn_prim_desc_hint(t->np, node, &bd, NULL, fpd, &bpd, err);
    if (!rc) {
        size_t ws = dnnl_memory_desc_get_size(
            dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0));
        rc = train_work(s, 2 * c + (ws + sizeof(float) - 1) / sizeof(float), err);
    }
    if (bpd) rc = train_make_prim(t, s, BN_BACKWARD, bpd, err) || rc;
    if (fpd && !rc) return train_make_prim(t, s, BN_FORWARD, fpd, err);
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    return -1;
}

/* N, C and the spatial size of the step's input. */
static void bn_sizes(const struct train_plan *t, const struct train_step *s, size_t *n, size_t *c,
                     size_t *spatial)
{
    const struct nn_value *x = train_val(t, s->in[0]);
    *n = (size_t)x->dims[0];
    *c = (size_t)x->dims[1];
    *spatial = x->count / (*n * *c);
}

/* Where element i of channel k of sample b is: NCHW, or nChw16c (channels in blocks of 16, the
 * block's 16 channels of an element together) with block 16 when the input is blocked. */
static size_t bn_at(size_t block, size_t c, size_t spatial, size_t b, size_t k, size_t i)
{
    return (b * c + k / block * block) * spatial + i * block + k % block;
}

static size_t bn_block(const struct train_plan *t, const struct train_step *s)
{
    return train_is_blocked(t, s->in[0]) ? 16 : 1;
}

/* The eval function's output for x: the normalisation a, o of its channel, and the fused Relu. */
static float bn_eval(const struct train_step *s, float x, float a, float o)
{
    float y = x * a + o;
    return s->applies_relu && !(y > 0) ? 0.0f : y;
}

/* ONNX's update: running = momentum * running + (1 - momentum) * batch, with the unbiased
 * variance as PyTorch keeps it. */
static void update_running(struct train_plan *t, const struct train_step *s)
{
    size_t n, c, spatial;
    bn_sizes(t, s, &n, &c, &spatial);
    size_t m = n * spatial;
    double unbias = m > 1 ? (double)m / (double)(m - 1) : 1.0, mom = s->f[1];
    const float *mean = bn_mean(s), *var = mean + c;
    float *rmean = t->data[s->in[3]], *rvar = t->data[s->in[4]];
    for (size_t k = 0; k < c; k++) {
        rmean[k] = (float)(mom * rmean[k] + (1.0 - mom) * mean[k]);
        rvar[k] = (float)(mom * rvar[k] + (1.0 - mom) * var[k] * unbias);
    }
}

static int forward_batchnorm(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const float *x = t->data[s->in[0]], *scale = t->data[s->in[1]], *shift = t->data[s->in[2]];
    float *y = t->data[s->out];
    if (t->training) {
        size_t c = (size_t)train_val(t, s->in[0])->dims[1];
        struct train_arg args[] = {{DNNL_ARG_SRC, (void *)x},
                                   {DNNL_ARG_SCALE, (void *)scale},
                                   {DNNL_ARG_SHIFT, (void *)shift},
                                   {DNNL_ARG_DST, y},
                                   {DNNL_ARG_MEAN, bn_mean(s)},
                                   {DNNL_ARG_VARIANCE, bn_mean(s) + c},
                                   {DNNL_ARG_WORKSPACE, bn_workspace(s, c)}};
        if (train_exec(t, s, BN_FORWARD, args, s->applies_relu ? 7 : 6, err) ||
            nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
            return -1;
        update_running(t, s);
        return 0;
    }
    size_t n, c, spatial, block = bn_block(t, s);
    bn_sizes(t, s, &n, &c, &spatial);
    const float *rmean = t->data[s->in[3]], *rvar = t->data[s->in[4]];
    for (size_t b = 0; b < n; b++)
        for (size_t k = 0; k < c; k++) {
            float a = scale[k] / sqrtf(rvar[k] + s->f[0]), o = shift[k] - rmean[k] * a;
            for (size_t i = 0; i < spatial; i++) {
                size_t at = bn_at(block, c, spatial, b, k, i);
                y[at] = bn_eval(s, x[at], a, o);
            }
        }
    return 0;
}

/* The eval function's backward: y = (x - mean) * scale / sqrt(var + eps) + shift, with mean and
 * var constants; a fused Relu's slope (0 where bn_eval gave 0) recomputed from x. */
static void backward_eval(struct train_plan *t, struct train_step *s)
{
    size_t n, c, spatial, block = bn_block(t, s);
    bn_sizes(t, s, &n, &c, &spatial);
    const float *x = t->data[s->in[0]], *scale = t->data[s->in[1]], *dy = t->grad[s->out];
    const float *shift = t->data[s->in[2]], *rmean = t->data[s->in[3]], *rvar = t->data[s->in[4]];
    float *dx = t->grad[s->in[0]], *dscale = t->grad[s->in[1]], *dshift = t->grad[s->in[2]];
    for (size_t k = 0; k < c; k++) {
        double inv = 1.0 / sqrt((double)rvar[k] + s->f[0]), sum = 0, sum_xhat = 0;
        float a = scale[k] / sqrtf(rvar[k] + s->f[0]), o = shift[k] - rmean[k] * a;
        for (size_t b = 0; b < n; b++)
            for (size_t i = 0; i < spatial; i++) {
                size_t at = bn_at(block, c, spatial, b, k, i);
                float g = s->applies_relu && bn_eval(s, x[at], a, o) == 0 ? 0.0f : dy[at];
                sum += g;
                sum_xhat += g * (x[at] - rmean[k]) * inv;
                if (dx) dx[at] += (float)(g * scale[k] * inv);
            }
        if (dscale) dscale[k] += (float)sum_xhat;
        if (dshift) dshift[k] += (float)sum;
    }
}

static int backward_batchnorm(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    if (!t->training) {
        for (int k = 0; k < 3; k++)
            train_grad_zero(t, s->in[k]);
        backward_eval(t, s);
        return 0;
    }
    const struct nn_value *x = train_val(t, s->in[0]);
    size_t c = (size_t)x->dims[1];
    bool add[3];
    float *mean = bn_mean(s), *dx = train_grad_share(t, s->in[0], t->temp + 2 * c, &add[0]);
    float *dscale = train_grad_share(t, s->in[1], t->temp, &add[1]),
          *dshift = train_grad_share(t, s->in[2], t->temp + c, &add[2]);
    struct train_arg args[] = {{DNNL_ARG_SRC, t->data[s->in[0]]},
                               {DNNL_ARG_MEAN, mean},
                               {DNNL_ARG_VARIANCE, mean + c},
                               {DNNL_ARG_DIFF_DST, t->grad[s->out]},
                               {DNNL_ARG_SCALE, t->data[s->in[1]]},
                               {DNNL_ARG_DIFF_SRC, dx},
                               {DNNL_ARG_DIFF_SCALE, dscale},
                               {DNNL_ARG_DIFF_SHIFT, dshift},
                               /* oneDNN 2.6 lists the shift among the backward's inputs, though no
                                * result depends on it. */
                               {DNNL_ARG_SHIFT, t->data[s->in[2]]},
                               {DNNL_ARG_WORKSPACE, bn_workspace(s, c)}};
    if (train_exec(t, s, BN_BACKWARD, args, s->applies_relu ? 10 : 9, err) ||
        nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
        return -1;
    if (add[0]) train_accumulate(t->grad[s->in[0]], dx, x->count);
    if (add[1]) train_accumulate(t->grad[s->in[1]], dscale, c);
    if (add[2]) train_accumulate(t->grad[s->in[2]], dshift, c);
    return 0;
}

const struct train_op train_batchnorm_op = {compile_batchnorm, forward_batchnorm,
                                            backward_batchnorm, .keeps_layout = true,
                                            .overwrites = true};
