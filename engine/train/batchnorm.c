/* BatchNormalization: in training mode through oneDNN (forward with the batch's statistics,
 * backward to the input, scale and shift), then the running statistics' update on the host; in
 * eval mode a host loop over the running statistics, and its backward. */
#include <math.h>

#include "train/internal.h"

enum { BN_FORWARD, BN_BACKWARD };

/* The step's work: the batch mean and biased variance, which the backward reads. The scale's,
 * shift's and input's gradients are written into t->temp, then added in. */
static float *bn_mean(const struct train_step *s)
{
    return s->work;
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
    s->f[0] = nn_attr_float(node, "epsilon", 1e-5f);
    s->f[1] = nn_attr_float(node, "momentum", 0.9f);
    size_t c = (size_t)x.dims[1];
    if ((s->out = train_value(t, node->outputs[0], x.rank, x.dims, err)) < 0 ||
        train_work(s, 2 * c, err))
        return -1;
    train_need_temp(t, 2 * c + x.count);
    dnnl_memory_desc_t md;
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_batch_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    int rc = nn_plain_md(&md, x.rank, x.dims, node, err) ||
             nn_dnnl_check(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training,
                                                                      &md, s->f[0], flags),
                           "dnnl_batch_normalization_forward_desc_init", node, err) ||
             nn_dnnl_check(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &md, &md,
                                                                       s->f[0], flags),
                           "dnnl_batch_normalization_backward_desc_init", node, err) ||
             nn_prim_desc(t->np, node, &fd, NULL, &fpd, err) ||
             nn_prim_desc_hint(t->np, node, &bd, NULL, fpd, &bpd, err);
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
        struct train_arg args[] = {
            {DNNL_ARG_SRC, (void *)x},       {DNNL_ARG_SCALE, (void *)scale},
            {DNNL_ARG_SHIFT, (void *)shift}, {DNNL_ARG_DST, y},
            {DNNL_ARG_MEAN, bn_mean(s)},     {DNNL_ARG_VARIANCE, bn_mean(s) + c}};
        if (train_exec(t, s, BN_FORWARD, args, 6, err) ||
            nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
            return -1;
        update_running(t, s);
        return 0;
    }
    size_t n, c, spatial;
    bn_sizes(t, s, &n, &c, &spatial);
    const float *rmean = t->data[s->in[3]], *rvar = t->data[s->in[4]];
    for (size_t b = 0; b < n; b++)
        for (size_t k = 0; k < c; k++) {
            float a = scale[k] / sqrtf(rvar[k] + s->f[0]), o = shift[k] - rmean[k] * a;
            size_t at = (b * c + k) * spatial;
            for (size_t i = 0; i < spatial; i++)
                y[at + i] = x[at + i] * a + o;
        }
    return 0;
}

/* The eval function's backward: y = (x - mean) * scale / sqrt(var + eps) + shift, with mean and
 * var constants. */
static void backward_eval(struct train_plan *t, struct train_step *s)
{
    size_t n, c, spatial;
    bn_sizes(t, s, &n, &c, &spatial);
    const float *x = t->data[s->in[0]], *scale = t->data[s->in[1]], *dy = t->grad[s->out];
    const float *rmean = t->data[s->in[3]], *rvar = t->data[s->in[4]];
    float *dx = t->grad[s->in[0]], *dscale = t->grad[s->in[1]], *dshift = t->grad[s->in[2]];
    for (size_t k = 0; k < c; k++) {
        double inv = 1.0 / sqrt((double)rvar[k] + s->f[0]), sum = 0, sum_xhat = 0;
        for (size_t b = 0; b < n; b++) {
            size_t at = (b * c + k) * spatial;
            for (size_t i = 0; i < spatial; i++) {
                sum += dy[at + i];
                sum_xhat += dy[at + i] * (x[at + i] - rmean[k]) * inv;
                if (dx) dx[at + i] += (float)(dy[at + i] * scale[k] * inv);
            }
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
                               {DNNL_ARG_SHIFT, t->data[s->in[2]]}};
    if (train_exec(t, s, BN_BACKWARD, args, 9, err) ||
        nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
        return -1;
    if (add[0]) train_accumulate(t->grad[s->in[0]], dx, x->count);
    if (add[1]) train_accumulate(t->grad[s->in[1]], dscale, c);
    if (add[2]) train_accumulate(t->grad[s->in[2]], dshift, c);
    return 0;
}

const struct train_op train_batchnorm_op = {compile_batchnorm, forward_batchnorm,
                                            backward_batchnorm, .overwrites = true};
