/* Conv through oneDNN: forward (training), backward data and backward weights (with the bias).
 * Grouped weights, depthwise included, are the same bytes seen as [group, M/group, C/group, k...].
 *
 * Each primitive is made with the layouts left to oneDNN (format `any`), which picks blocked
 * ones (nChw16c activations, ABcd16b16a weights for the forward and backward weights, ABcd16a16b
 * for backward data) and runs its jit:avx512 kernels; with options.plain_conv they are the plain
 * NCHW ones, where it falls back to im2col and matrix products, three to five times slower.
 * Values between ops stay plain for now: an argument whose chosen layout is not plain is
 * reordered at each use, from its plain value into a region of t->temp, or out of its region
 * into a plain gradient. Nothing blocked outlives the primitive that reads it, so no copy can go
 * stale across steps, and every operand's layout is the one its own primitive reports (the
 * forward's weights layout is not the backward data's). With plain_conv there are no reorders. */
#include <string.h>

#include "train/internal.h"

enum { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS, CONV_PRIMS };

/* The arguments that may need a layout of their own. Operand k's reorder is the step's primitive
 * CONV_PRIMS + k (none: oneDNN chose the plain layout) and its region starts at t->temp + q[k]. */
enum { F_SRC, F_WEI, F_DST, W_SRC, W_DDST, W_DWEI, D_DDST, D_WEI, D_DSRC, CONV_OPERANDS };
/* Further regions of t->temp: the plain weights' and bias' gradients, and the plain input's. */
enum { Q_DW = CONV_OPERANDS, Q_DB, Q_DX };

_Static_assert(CONV_PRIMS + CONV_OPERANDS <= TRAIN_MAX_PRIMS, "a Conv step's primitives");

/* A region of bytes at *offset floats into t->temp, advanced past it: whole cache lines, so
 * every region is aligned as oneDNN's kernels like (t->temp is). */
static int64_t take(size_t *offset, size_t bytes)
{
    int64_t at = (int64_t)*offset;
    *offset += (bytes + 63) / 64 * 16;
    return at;
}

/* Operand k, pd's argument arg whose plain layout is plain: when oneDNN chose another, a region
 * for it and the reorder filling it (in: an input of pd) or emptying it (an output). */
static int operand(struct train_plan *t, struct train_step *s, int k,
                   const_dnnl_primitive_desc_t pd, int arg, const dnnl_memory_desc_t *plain,
                   bool in, size_t *offset, struct eng_error *err)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!md) return nn_invalid(s->node, "oneDNN gave no layout for an argument", err);
    if (dnnl_memory_desc_equal(md, plain)) return 0;
    s->q[k] = take(offset, dnnl_memory_desc_get_size(md));
    dnnl_primitive_attr_t user;
    dnnl_primitive_desc_t rd;
    if (nn_user_scratchpad_attr(NULL, &user, s->node, err)) return -1;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&rd, in ? plain : md, t->np->engine,
                                                          in ? md : plain, t->np->engine, user);
    dnnl_primitive_attr_destroy(user);
    if (nn_dnnl_check(st, "dnnl_reorder_primitive_desc_create", s->node, err)) return -1;
    return train_make_prim(t, s, CONV_PRIMS + k, rd, err);
}

/* The regions and reorders of the three primitives; each pass's regions start at 0 as the
 * passes do not overlap. */
static int operands(struct train_plan *t, struct train_step *s, dnnl_primitive_desc_t pd[3],
                    const dnnl_memory_desc_t *x_md, const dnnl_memory_desc_t *w_md,
                    const dnnl_memory_desc_t *y_md, size_t b_count, struct eng_error *err)
{
    size_t fwd = 0, bww = 0, bwd = 0;
    size_t w_bytes = dnnl_memory_desc_get_size(w_md), x_bytes = dnnl_memory_desc_get_size(x_md);
    s->q[Q_DW] = take(&bww, w_bytes);
    s->q[Q_DB] = take(&bww, b_count * sizeof(float));
    s->q[Q_DX] = take(&bwd, x_bytes);
    const_dnnl_primitive_desc_t f = pd[CONV_FORWARD], d = pd[CONV_BACKWARD_DATA],
                                w = pd[CONV_BACKWARD_WEIGHTS];
    if (operand(t, s, F_SRC, f, DNNL_ARG_SRC, x_md, true, &fwd, err) ||
        operand(t, s, F_WEI, f, DNNL_ARG_WEIGHTS, w_md, true, &fwd, err) ||
        operand(t, s, F_DST, f, DNNL_ARG_DST, y_md, false, &fwd, err) ||
        operand(t, s, W_SRC, w, DNNL_ARG_SRC, x_md, true, &bww, err) ||
        operand(t, s, W_DDST, w, DNNL_ARG_DIFF_DST, y_md, true, &bww, err) ||
        operand(t, s, W_DWEI, w, DNNL_ARG_DIFF_WEIGHTS, w_md, false, &bww, err) ||
        operand(t, s, D_DDST, d, DNNL_ARG_DIFF_DST, y_md, true, &bwd, err) ||
        operand(t, s, D_WEI, d, DNNL_ARG_WEIGHTS, w_md, true, &bwd, err) ||
        operand(t, s, D_DSRC, d, DNNL_ARG_DIFF_SRC, x_md, false, &bwd, err))
        return -1;
    size_t most = fwd > bww ? fwd : bww;
    train_need_temp(t, most > bwd ? most : bwd);
    return 0;
}

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

    int64_t wd[NN_MAX_RANK + 1] = {group, w.dims[0] / group};
    memcpy(wd + 2, w.dims + 1, (size_t)(w.rank - 1) * sizeof *wd);
    int w_rank = group > 1 ? w.rank + 1 : w.rank;
    const int64_t *w_dims = group > 1 ? wd : w.dims;
    dnnl_memory_desc_t x_md, w_md, b_md, y_md, x_any, w_any, y_any;
    if (nn_plain_md(&x_md, x.rank, x.dims, node, err) ||
        nn_plain_md(&w_md, w_rank, w_dims, node, err) || nn_plain_md(&b_md, 1, w.dims, node, err) ||
        nn_plain_md(&y_md, x.rank, out, node, err) ||
        nn_any_md(&x_any, x.rank, x.dims, node, err) ||
        nn_any_md(&w_any, w_rank, w_dims, node, err) || nn_any_md(&y_any, x.rank, out, node, err))
        return -1;
    if (t->plain_conv) { /* the plain layouts given: no reorders */
        x_any = x_md;
        w_any = w_md;
        y_any = y_md;
    }
    const dnnl_memory_desc_t *b = bi >= 0 ? &b_md : NULL;
    dnnl_convolution_desc_t fd, dd, wdesc;
    dnnl_primitive_desc_t pd[CONV_PRIMS] = {NULL, NULL, NULL};
    int rc =
        nn_dnnl_check(dnnl_dilated_convolution_forward_desc_init(
                          &fd, dnnl_forward_training, dnnl_convolution_direct, &x_any, &w_any, b,
                          &y_any, strides, dil, pl, pr),
                      "dnnl_dilated_convolution_forward_desc_init", node, err) ||
        nn_dnnl_check(dnnl_dilated_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct,
                                                                       &x_any, &w_any, &y_any,
                                                                       strides, dil, pl, pr),
                      "dnnl_dilated_convolution_backward_data_desc_init", node, err) ||
        nn_dnnl_check(
            dnnl_dilated_convolution_backward_weights_desc_init(
                &wdesc, dnnl_convolution_direct, &x_any, &w_any, b, &y_any, strides, dil, pl, pr),
            "dnnl_dilated_convolution_backward_weights_desc_init", node, err) ||
        nn_prim_desc(t->np, node, &fd, NULL, &pd[CONV_FORWARD], err) ||
        nn_prim_desc_hint(t->np, node, &dd, NULL, pd[CONV_FORWARD], &pd[CONV_BACKWARD_DATA], err) ||
        nn_prim_desc_hint(t->np, node, &wdesc, NULL, pd[CONV_FORWARD], &pd[CONV_BACKWARD_WEIGHTS],
                          err) ||
        operands(t, s, pd, &x_md, &w_md, &y_md, bi >= 0 ? (size_t)w.dims[0] : 0, err);
    /* Each make consumes its descriptor, the forward's last: the others were built on it. */
    for (int k = CONV_PRIMS - 1; k >= 0; k--) {
        if (!rc && pd[k])
            rc = train_make_prim(t, s, k, pd[k], err);
        else if (pd[k])
            dnnl_primitive_desc_destroy(pd[k]);
    }
    return rc ? -1 : 0;
}

/* Where operand k is: its region, or plain itself when it has no layout of its own. */
static float *at(const struct train_plan *t, const struct train_step *s, int k, float *plain)
{
    return s->prim[CONV_PRIMS + k] >= 0 ? t->temp + s->q[k] : plain;
}

/* Reorders operand k between plain and its region (into the region for an input of its
 * primitive, out of it for an output); nothing when it has none. */
static int reorder(struct train_plan *t, const struct train_step *s, int k, float *plain, bool in,
                   struct eng_error *err)
{
    if (s->prim[CONV_PRIMS + k] < 0) return 0;
    float *region = t->temp + s->q[k];
    struct train_arg args[] = {{DNNL_ARG_FROM, in ? plain : region},
                               {DNNL_ARG_TO, in ? region : plain}};
    return train_exec(t, s, CONV_PRIMS + k, args, 2, err);
}

static int forward_conv(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    float *x = t->data[s->in[0]], *w = t->data[s->in[1]], *y = t->data[s->out];
    struct train_arg args[] = {{DNNL_ARG_SRC, at(t, s, F_SRC, x)},
                               {DNNL_ARG_WEIGHTS, at(t, s, F_WEI, w)},
                               {DNNL_ARG_DST, at(t, s, F_DST, y)},
                               {DNNL_ARG_BIAS, s->in[2] >= 0 ? t->data[s->in[2]] : NULL}};
    return reorder(t, s, F_SRC, x, true, err) || reorder(t, s, F_WEI, w, true, err) ||
                   train_exec(t, s, CONV_FORWARD, args, s->in[2] >= 0 ? 4 : 3, err) ||
                   reorder(t, s, F_DST, y, false, err)
               ? -1
               : 0;
}

/* oneDNN's outputs are read by host code once the stream has run them. */
static int stream_wait(struct train_plan *t, const struct train_step *s, struct eng_error *err)
{
    return nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err);
}

static int backward_weights(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_value *w = train_val(t, s->in[1]);
    float *x = t->data[s->in[0]], *dy = t->grad[s->out];
    bool add_w, add_b;
    float *dw = train_grad_share(t, s->in[1], t->temp + s->q[Q_DW], &add_w);
    float *db = train_grad_share(t, s->in[2], t->temp + s->q[Q_DB], &add_b);
    struct train_arg args[] = {{DNNL_ARG_SRC, at(t, s, W_SRC, x)},
                               {DNNL_ARG_DIFF_DST, at(t, s, W_DDST, dy)},
                               {DNNL_ARG_DIFF_WEIGHTS, at(t, s, W_DWEI, dw)},
                               {DNNL_ARG_DIFF_BIAS, db}};
    if (reorder(t, s, W_SRC, x, true, err) || reorder(t, s, W_DDST, dy, true, err) ||
        train_exec(t, s, CONV_BACKWARD_WEIGHTS, args, s->in[2] >= 0 ? 4 : 3, err) ||
        reorder(t, s, W_DWEI, dw, false, err) || stream_wait(t, s, err))
        return -1;
    if (add_w) train_accumulate(t->grad[s->in[1]], dw, w->count);
    if (add_b) train_accumulate(t->grad[s->in[2]], db, (size_t)w->dims[0]);
    return 0;
}

static int backward_conv(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    if ((t->grad[s->in[1]] || (s->in[2] >= 0 && t->grad[s->in[2]])) && backward_weights(t, s, err))
        return -1;
    if (!t->grad[s->in[0]]) return 0;
    bool add;
    float *w = t->data[s->in[1]], *dy = t->grad[s->out];
    float *dx = train_grad_share(t, s->in[0], t->temp + s->q[Q_DX], &add);
    struct train_arg args[] = {{DNNL_ARG_DIFF_DST, at(t, s, D_DDST, dy)},
                               {DNNL_ARG_WEIGHTS, at(t, s, D_WEI, w)},
                               {DNNL_ARG_DIFF_SRC, at(t, s, D_DSRC, dx)}};
    if (reorder(t, s, D_DDST, dy, true, err) || reorder(t, s, D_WEI, w, true, err) ||
        train_exec(t, s, CONV_BACKWARD_DATA, args, 3, err) ||
        reorder(t, s, D_DSRC, dx, false, err) || stream_wait(t, s, err))
        return -1;
    if (add) train_accumulate(t->grad[s->in[0]], dx, train_val(t, s->in[0])->count);
    return 0;
}

const struct train_op train_conv_op = {compile_conv, forward_conv, backward_conv,
                                       .overwrites = true};
