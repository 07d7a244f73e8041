/* Conv through oneDNN: forward (training), backward data and backward weights (with the bias).
 * Grouped weights, depthwise included, are the same bytes seen as [group, M/group, C/group, k...].
 *
 * Each primitive is made with the layouts left to oneDNN (format `any`), which picks blocked
 * ones (nChw16c activations, ABcd16b16a weights for the forward and backward weights, ABcd16a16b
 * for backward data) and runs its jit:avx512 kernels; with options.plain_conv they are the plain
 * NCHW ones, where it falls back to im2col and matrix products, three to five times slower.
 * The output is made blocked when its channels fill blocks of 16 (layout.c), so the ops after
 * it keep that layout to the next Conv. An operand whose value's layout (plain weights, the
 * model's 3-channel input, a value some other op made plain) is not the one oneDNN chose is
 * reordered at each use into a region of t->temp, or out of its region. Nothing of that outlives
 * the primitive that reads it, so no copy can go stale across steps (the optimiser updates the
 * plain weights in place between steps), and every operand's layout is the one its own
 * primitive reports (the forward's weights layout is not the backward data's).
 *
 * Each pass runs the direct algorithm, or Winograd's where wants_winograd asks for it (3x3
 * stride-1 Convs of 32 channels and more) and oneDNN has it; options.direct_convolution keeps
 * every pass direct. Winograd's kernels read and write the same nChw16c activations, so the
 * choice changes no layout, only the rounding. */
#include <string.h>

#include "train/internal.h"

enum { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS, CONV_PRIMS };

/* The arguments that may need a layout of their own. Operand k's reorder is the step's primitive
 * CONV_PRIMS + k (none: oneDNN chose the plain layout) and its region starts at t->temp + q[k]. */
enum { F_SRC, F_WEI, F_DST, W_SRC, W_DDST, W_DWEI, D_DDST, D_WEI, D_DSRC, CONV_OPERANDS };
/* Further regions of t->temp: the weights' and bias' gradients, and the input's, in their
 * values' layouts. */
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

/* Operand k, pd's argument arg, whose value is in layout own: when oneDNN chose another, a
 * region for it and the reorder filling it (in: an input of pd) or emptying it (an output). */
static int operand(struct train_plan *t, struct train_step *s, int k,
                   const_dnnl_primitive_desc_t pd, int arg, const dnnl_memory_desc_t *own, bool in,
                   size_t *offset, struct eng_error *err)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!md) return nn_invalid(s->node, "oneDNN gave no layout for an argument", err);
    if (dnnl_memory_desc_equal(md, own)) return 0;
    s->q[k] = take(offset, dnnl_memory_desc_get_size(md));
    return train_make_reorder(t, s, &s->prim[CONV_PRIMS + k], in ? own : md, in ? md : own, err);
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

/* What a Conv's three primitives are made of, and which pass (CONV_FORWARD...) asks for
 * Winograd's algorithm. */
struct conv_desc {
    const dnnl_memory_desc_t *x, *w, *b, *y; /* b NULL: no bias */
    const int64_t *strides, *dil, *pl, *pr;
    bool winograd[CONV_PRIMS];
};

/* Whether a pass of a Conv of weights w asks for Winograd's algorithm, F(4x4, 3x3): 2.25x fewer
 * multiplications than the direct one, but transforms whose cost does not shrink with the
 * channels. Measured on oneDNN 2.6.3's kernels (jit_wino_4x3 against jit:avx512_core, batch 128,
 * one thread, engine/train/README.md), the forward and backward data pay from 32 channels on
 * each side (1.26-1.34x at 32, 1.29-1.76x with 64 on either side) and lose with 16 on either side
 * (0.48-0.97x); backward weights pay from 64 on each side (1.1-1.65x) and lose at 32 (0.8x) on
 * maps of 16x16 and more. Whether oneDNN has it for the shape (3x3, stride 1, no dilation, this
 * CPU) is its to say: pass_desc falls back to the direct algorithm where it has not. */
static bool wants_winograd(const struct train_plan *t, int pass, const struct nn_value *w,
                           int64_t group)
{
    int64_t least = pass == CONV_BACKWARD_WEIGHTS ? 64 : 32;
    return !t->plain_conv && !t->direct_convolution && group == 1 && w->dims[0] >= least &&
           w->dims[1] >= least;
}

/* The op descriptor of one pass with algorithm alg. */
static dnnl_status_t init_desc(dnnl_convolution_desc_t *d, int pass, dnnl_alg_kind_t alg,
                               const struct conv_desc *c)
{
    if (pass == CONV_FORWARD)
        return dnnl_dilated_convolution_forward_desc_init(d, dnnl_forward_training, alg, c->x, c->w,
                                                          c->b, c->y, c->strides, c->dil, c->pl,
                                                          c->pr);
    if (pass == CONV_BACKWARD_DATA)
        return dnnl_dilated_convolution_backward_data_desc_init(d, alg, c->x, c->w, c->y,
                                                                c->strides, c->dil, c->pl, c->pr);
    return dnnl_dilated_convolution_backward_weights_desc_init(d, alg, c->x, c->w, c->b, c->y,
                                                               c->strides, c->dil, c->pl, c->pr);
}

/* The primitive descriptor of one pass (hint: the forward's, for a backward pass): Winograd's
 * where the pass asks for it and oneDNN has it for this shape (3x3, stride 1, no dilation, on
 * this CPU), else the direct algorithm's. */
static int pass_desc(struct train_plan *t, const struct nn_node *node, int pass,
                     const struct conv_desc *c, const_dnnl_primitive_desc_t hint,
                     dnnl_primitive_desc_t *pd, struct eng_error *err)
{
    dnnl_convolution_desc_t d;
    if (c->winograd[pass] && init_desc(&d, pass, dnnl_convolution_winograd, c) == dnnl_success) {
        int made = nn_try_prim_desc_hint(t->np, node, &d, NULL, hint, pd, err);
        if (made) return made < 0 ? -1 : 0;
    }
    return nn_dnnl_check(init_desc(&d, pass, dnnl_convolution_direct, c),
                         "dnnl convolution descriptor", node, err) ||
                   nn_prim_desc_hint(t->np, node, &d, NULL, hint, pd, err)
               ? -1
               : 0;
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
    dnnl_memory_desc_t y_blocked;
    bool blocked = train_blocked_md(t, node->outputs[0], x.rank, out, &y_blocked);
    int yi = train_value(t, node->outputs[0], x.rank, out, blocked ? &y_blocked : NULL, err);
    if (yi < 0) return -1;
    s->in[0] = xi;
    s->in[1] = wi;
    s->in[2] = bi;
    s->out = yi;
    s->skips_output = true; /* backward reads x and the weights */

    int64_t wd[NN_MAX_RANK + 1] = {group, w.dims[0] / group};
    memcpy(wd + 2, w.dims + 1, (size_t)(w.rank - 1) * sizeof *wd);
    int w_rank = group > 1 ? w.rank + 1 : w.rank;
    const int64_t *w_dims = group > 1 ? wd : w.dims;
    /* The values' own layouts (blocked or plain), which the operands are reordered from and to
     * where oneDNN picks others. */
    dnnl_memory_desc_t x_md = x.md, y_md = train_val(t, yi)->md, w_md, b_md, x_any, w_any, y_any;
    if (nn_plain_md(&w_md, w_rank, w_dims, node, err) || nn_plain_md(&b_md, 1, w.dims, node, err) ||
        nn_any_md(&x_any, x.rank, x.dims, node, err) ||
        nn_any_md(&w_any, w_rank, w_dims, node, err) || nn_any_md(&y_any, x.rank, out, node, err))
        return -1;
    if (t->plain_conv) { /* the plain layouts given: no reorders */
        x_any = x_md;
        w_any = w_md;
        y_any = y_md;
    }
    struct conv_desc c = {&x_any, &w_any, bi >= 0 ? &b_md : NULL, &y_any, strides, dil, pl, pr};
    for (int pass = 0; pass < CONV_PRIMS; pass++)
        c.winograd[pass] = wants_winograd(t, pass, &w, group);
    dnnl_primitive_desc_t pd[CONV_PRIMS] = {NULL, NULL, NULL};
    int rc = pass_desc(t, node, CONV_FORWARD, &c, NULL, &pd[CONV_FORWARD], err) ||
             pass_desc(t, node, CONV_BACKWARD_DATA, &c, pd[CONV_FORWARD], &pd[CONV_BACKWARD_DATA],
                       err) ||
             pass_desc(t, node, CONV_BACKWARD_WEIGHTS, &c, pd[CONV_FORWARD],
                       &pd[CONV_BACKWARD_WEIGHTS], err) ||
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

/* Where operand k is: its region, or its value own when oneDNN reads that layout. */
static float *at(const struct train_plan *t, const struct train_step *s, int k, float *own)
{
    return s->prim[CONV_PRIMS + k] >= 0 ? t->temp + s->q[k] : own;
}

/* Reorders operand k between its value own and its region (into the region for an input of its
 * primitive, out of it for an output); nothing when it has none. */
static int reorder(struct train_plan *t, const struct train_step *s, int k, float *own, bool in,
                   struct eng_error *err)
{
    if (s->prim[CONV_PRIMS + k] < 0) return 0;
    float *region = t->temp + s->q[k];
    struct train_arg args[] = {{DNNL_ARG_FROM, in ? own : region},
                               {DNNL_ARG_TO, in ? region : own}};
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
                                       .keeps_layout = true, .overwrites = true};
