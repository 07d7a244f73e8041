/* Conv through oneDNN: forward (training), backward data and backward weights (with the bias),
 * on plain layouts. Grouped weights, depthwise included, are the same bytes seen as
 * [group, M/group, C/group, k...]. */
#include <string.h>

#include "train/internal.h"

enum { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS };

static int compile_conv(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int xi = train_input(t, node, 0, TRAIN_ACTIVATION, err);
    int wi = xi < 0 ? -1 : train_input(t, node, 1, TRAIN_ACTIVATION, err);
    int bi = -1;
    if (wi < 0 ||
        (nn_has_input(node, 2) && (bi = train_input(t, node, 2, TRAIN_NO_DECAY, err)) < 0))
        return -1;
    struct nn_value x = *train_val(t, xi), w = *train_val(t, wi);
    int64_t group = nn_attr_int(node, "group", 1);
    if (x.rank < 3 || x.rank > 5 || w.rank != x.rank || group < 1 || w.dims[0] % group ||
        x.dims[1] != w.dims[1] * group)
        return nn_invalid(node, "the weights do not fit the input and group", err);
    if (bi >= 0 && (train_val(t, bi)->rank != 1 || train_val(t, bi)->dims[0] != w.dims[0]))
        return nn_invalid(node, "the bias must have one element per output channel", err);
    int64_t out[NN_MAX_RANK] = {x.dims[0], w.dims[0]};
    dnnl_dims_t strides, dil, pl, pr;
    if (nn_windows(node, &x, w.dims + 2, 0, out, strides, dil, pl, pr, err)) return -1;
    int yi = train_value(t, node->outputs[0], x.rank, out, err);
    if (yi < 0) return -1;
    s->in[0] = xi;
    s->in[1] = wi;
    s->in[2] = bi;
    s->out = yi;
    /* Backward has the weights' and bias' gradients written into t->temp and adds them in,
     * then the input's. */
    size_t b_count = bi >= 0 ? (size_t)w.dims[0] : 0;
    train_need_temp(t, w.count + b_count > x.count ? w.count + b_count : x.count);

    int64_t wd[NN_MAX_RANK + 1] = {group, w.dims[0] / group};
    memcpy(wd + 2, w.dims + 1, (size_t)(w.rank - 1) * sizeof *wd);
    dnnl_memory_desc_t x_md, w_md, b_md, y_md;
    if (nn_plain_md(&x_md, x.rank, x.dims, node, err) ||
        nn_plain_md(&w_md, group > 1 ? w.rank + 1 : w.rank, group > 1 ? wd : w.dims, node, err) ||
        nn_plain_md(&b_md, 1, w.dims, node, err) || nn_plain_md(&y_md, x.rank, out, node, err))
        return -1;
    const dnnl_memory_desc_t *b = bi >= 0 ? &b_md : NULL;
    dnnl_convolution_desc_t fd, dd, wdesc;
    dnnl_primitive_desc_t pd[3] = {NULL, NULL, NULL};
    int rc =
        nn_dnnl_check(dnnl_dilated_convolution_forward_desc_init(
                          &fd, dnnl_forward_training, dnnl_convolution_direct, &x_md, &w_md, b,
                          &y_md, strides, dil, pl, pr),
                      "dnnl_dilated_convolution_forward_desc_init", node, err) ||
        nn_dnnl_check(dnnl_dilated_convolution_backward_data_desc_init(
                          &dd, dnnl_convolution_direct, &x_md, &w_md, &y_md, strides, dil, pl, pr),
                      "dnnl_dilated_convolution_backward_data_desc_init", node, err) ||
        nn_dnnl_check(
            dnnl_dilated_convolution_backward_weights_desc_init(
                &wdesc, dnnl_convolution_direct, &x_md, &w_md, b, &y_md, strides, dil, pl, pr),
            "dnnl_dilated_convolution_backward_weights_desc_init", node, err) ||
        nn_prim_desc(t->np, node, &fd, NULL, &pd[0], err) ||
        nn_prim_desc_hint(t->np, node, &dd, NULL, pd[0], &pd[1], err) ||
        nn_prim_desc_hint(t->np, node, &wdesc, NULL, pd[0], &pd[2], err);
    /* Each make consumes its descriptor, the forward's last: the others were built on it. */
    for (int k = 2; k >= 0; k--) {
        if (!rc && pd[k])
            rc = train_make_prim(t, s, k, pd[k], err);
        else if (pd[k])
            dnnl_primitive_desc_destroy(pd[k]);
    }
    return rc ? -1 : 0;
}

static int forward_conv(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    struct train_arg args[] = {{DNNL_ARG_SRC, t->data[s->in[0]]},
                               {DNNL_ARG_WEIGHTS, t->data[s->in[1]]},
                               {DNNL_ARG_DST, t->data[s->out]},
                               {DNNL_ARG_BIAS, s->in[2] >= 0 ? t->data[s->in[2]] : NULL}};
    return train_exec(t, s, CONV_FORWARD, args, s->in[2] >= 0 ? 4 : 3, err);
}

static int backward_conv(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_value *x = train_val(t, s->in[0]), *w = train_val(t, s->in[1]);
    float *dw = t->temp, *db = t->temp + w->count, *dx = t->temp, *dy = t->grad[s->out];
    if (t->grad[s->in[1]] || (s->in[2] >= 0 && t->grad[s->in[2]])) {
        struct train_arg args[] = {{DNNL_ARG_SRC, t->data[s->in[0]]},
                                   {DNNL_ARG_DIFF_DST, dy},
                                   {DNNL_ARG_DIFF_WEIGHTS, dw},
                                   {DNNL_ARG_DIFF_BIAS, db}};
        if (train_exec(t, s, CONV_BACKWARD_WEIGHTS, args, s->in[2] >= 0 ? 4 : 3, err) ||
            nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
            return -1;
        if (t->grad[s->in[1]]) train_accumulate(t->grad[s->in[1]], dw, w->count);
        if (s->in[2] >= 0 && t->grad[s->in[2]])
            train_accumulate(t->grad[s->in[2]], db, (size_t)w->dims[0]);
    }
    if (!t->grad[s->in[0]]) return 0;
    struct train_arg args[] = {
        {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, t->data[s->in[1]]}, {DNNL_ARG_DIFF_SRC, dx}};
    if (train_exec(t, s, CONV_BACKWARD_DATA, args, 3, err) ||
        nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
        return -1;
    train_accumulate(t->grad[s->in[0]], dx, x->count);
    return 0;
}

const struct train_op train_conv_op = {compile_conv, forward_conv, backward_conv};
