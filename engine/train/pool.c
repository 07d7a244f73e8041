/* MaxPool, AveragePool and GlobalAveragePool over [N, C, H, W] on oneDNN's pooling: forward
 * training and backward, MaxPool's backward reading the workspace its forward wrote (where each
 * output's maximum was: oneDNN keeps the first in the window on ties, as PyTorch does), in the
 * input's layout, so a blocked (nChw16c) activation stays blocked through the pool and no
 * reorder pair surrounds it (layout.c). GlobalAveragePool is an average over the whole plane.
 *
 * One case stays on the host: an AveragePool counting its padding (count_include_pad) whose
 * windows reach past the explicit padding (ceil_mode's extra row or column, auto_pad). PyTorch,
 * whose arithmetic the gradients follow, divides such a window by its part inside the explicitly
 * padded input; oneDNN's avg_include_padding divides every window by the whole kernel. */
#include <string.h>

#include "train/internal.h"

enum { POOL_FORWARD, POOL_BACKWARD };

/* The host average's q: kernel h, w; stride h, w; zero-based dilation h, w; pad top, left; the
 * end of the counted area (H + explicit bottom pad, W + explicit right pad). */
enum { Q_KH, Q_KW, Q_SH, Q_SW, Q_DH, Q_DW, Q_PT, Q_PL, Q_HEND, Q_WEND, Q_HOST };

static bool on_host(const struct train_step *s)
{
    return s->q[Q_HOST] != 0;
}

/* The host path's step: its plain input, its parameters and its plain output. */
static int compile_host(struct train_plan *t, struct train_step *s, const int64_t *q,
                        const int64_t *out, struct eng_error *err)
{
    if ((s->in[0] = train_plain(t, s, s->in[0], err)) < 0) return -1;
    memcpy(s->q, q, (Q_HOST + 1) * sizeof *q);
    return (s->out = train_value(t, s->node->outputs[0], 4, out, NULL, err)) < 0 ? -1 : 0;
}

/* oneDNN's forward and backward primitives; the output blocked when the input is (and the
 * output may be: train_blocked_md), both plain otherwise. */
static int compile_onednn(struct train_plan *t, struct train_step *s, dnnl_alg_kind_t alg,
                          const int64_t *out, const dnnl_dims_t k, const dnnl_dims_t strides,
                          const dnnl_dims_t dil, const dnnl_dims_t pl, const dnnl_dims_t pr,
                          struct eng_error *err)
{
    const struct nn_node *node = s->node;
    dnnl_memory_desc_t blocked;
    bool keep =
        train_is_blocked(t, s->in[0]) && train_blocked_md(t, node->outputs[0], 4, out, &blocked);
    if (!keep && (s->in[0] = train_plain(t, s, s->in[0], err)) < 0) return -1;
    if ((s->out = train_value(t, node->outputs[0], 4, out, keep ? &blocked : NULL, err)) < 0)
        return -1;
    dnnl_memory_desc_t x_md = train_val(t, s->in[0])->md, y_md = train_val(t, s->out)->md;
    dnnl_pooling_v2_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    int rc = nn_dnnl_check(dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &x_md,
                                                             &y_md, strides, k, dil, pl, pr),
                           "dnnl_pooling_v2_forward_desc_init", node, err) ||
             nn_dnnl_check(dnnl_pooling_v2_backward_desc_init(&bd, alg, &x_md, &y_md, strides, k,
                                                              dil, pl, pr),
                           "dnnl_pooling_v2_backward_desc_init", node, err) ||
             nn_prim_desc(t->np, node, &fd, NULL, &fpd, err) ||
             nn_prim_desc_hint(t->np, node, &bd, NULL, fpd, &bpd, err);
    /* MaxPool's workspace (oneDNN's own type and layout), kept in the step's work floats. */
    const dnnl_memory_desc_t *ws =
        rc ? NULL : dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
    size_t ws_bytes = ws ? dnnl_memory_desc_get_size(ws) : 0;
    if (!rc && ws_bytes) rc = train_work(s, (ws_bytes + sizeof(float) - 1) / sizeof(float), err);
    if (bpd) rc = train_make_prim(t, s, POOL_BACKWARD, bpd, err) || rc;
    if (fpd && !rc)
        rc = train_make_prim(t, s, POOL_FORWARD, fpd, err);
    else if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    /* The backward overwrites its gradient: a region of t->temp when it must add. */
    train_need_temp(t, train_val(t, s->in[0])->count);
    return rc ? -1 : 0;
}

static int compile_pool(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    const char *op = node->op_type;
    int global = !strcmp(op, "GlobalAveragePool"), max = !strcmp(op, "MaxPool");
    int include = !max && nn_attr_int(node, "count_include_pad", 0);
    if (node->n_outputs > 1 && node->outputs[1][0])
        return nn_unsupported(node, "the Indices output is not supported", err);
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0) return -1;
    struct nn_value x = *train_val(t, s->in[0]);
    if (x.rank != 4)
        return nn_unsupported(node, "only 2-D pooling ([N, C, H, W]) is supported", err);
    s->skips_inputs = s->skips_output = true; /* the backward reads MaxPool's workspace only */
    dnnl_dims_t k = {x.dims[2], x.dims[3]}, strides = {1, 1}, dil = {0, 0}, pl = {0, 0},
                pr = {0, 0}, explicit_pl = {0, 0}, explicit_pr = {0, 0};
    int64_t out[4] = {x.dims[0], x.dims[1], 1, 1};
    if (!global) {
        size_t n_k, n_p;
        const int64_t *ks = nn_attr_ints(node, "kernel_shape", &n_k);
        if (!ks || n_k != 2)
            return nn_invalid(node, "kernel_shape must give one size per spatial dim", err);
        memcpy(k, ks, 2 * sizeof *k);
        if (nn_windows(node, &x, k, (int)nn_attr_int(node, "ceil_mode", 0), out, strides, dil, pl,
                       pr, err))
            return -1;
        const int64_t *pads = nn_attr_ints(node, "pads", &n_p);
        if (pads && n_p == 4) {
            memcpy(explicit_pl, pads, 2 * sizeof *explicit_pl);
            memcpy(explicit_pr, pads + 2, 2 * sizeof *explicit_pr);
        }
    }
    if (include && (pl[0] != explicit_pl[0] || pl[1] != explicit_pl[1] || pr[0] != explicit_pr[0] ||
                    pr[1] != explicit_pr[1])) {
        int64_t q[] = {k[0],
                       k[1],
                       strides[0],
                       strides[1],
                       dil[0],
                       dil[1],
                       pl[0],
                       pl[1],
                       x.dims[2] + explicit_pr[0],
                       x.dims[3] + explicit_pr[1],
                       1};
        return compile_host(t, s, q, out, err);
    }
    dnnl_alg_kind_t alg = max       ? dnnl_pooling_max
                          : include ? dnnl_pooling_avg_include_padding
                                    : dnnl_pooling_avg_exclude_padding;
    return compile_onednn(t, s, alg, out, k, strides, dil, pl, pr, err);
}

/* ---- the host's AveragePool counting the padding ---- */

/* One output's window clipped to the input ([*y0, *y1) x [*x0, *x1) in taps) and the number
 * of positions it divides by: as PyTorch's count_include_pad, the window clipped to the
 * explicitly padded input. */
static int64_t window(const int64_t *q, const struct nn_value *x, int64_t oy, int64_t ox,
                      int64_t *y0, int64_t *y1, int64_t *x0, int64_t *x1)
{
    int64_t h = x->dims[2], w = x->dims[3];
    int64_t top = oy * q[Q_SH] - q[Q_PT], left = ox * q[Q_SW] - q[Q_PL];
    /* The first and last taps inside the input. */
    *y0 = 0;
    while (*y0 < q[Q_KH] && top + *y0 * (q[Q_DH] + 1) < 0)
        (*y0)++;
    *y1 = q[Q_KH];
    while (*y1 > *y0 && top + (*y1 - 1) * (q[Q_DH] + 1) >= h)
        (*y1)--;
    *x0 = 0;
    while (*x0 < q[Q_KW] && left + *x0 * (q[Q_DW] + 1) < 0)
        (*x0)++;
    *x1 = q[Q_KW];
    while (*x1 > *x0 && left + (*x1 - 1) * (q[Q_DW] + 1) >= w)
        (*x1)--;
    int64_t hend = top + q[Q_KH] < q[Q_HEND] ? top + q[Q_KH] : q[Q_HEND];
    int64_t wend = left + q[Q_KW] < q[Q_WEND] ? left + q[Q_KW] : q[Q_WEND];
    int64_t hs = top < -q[Q_PT] ? -q[Q_PT] : top, ws = left < -q[Q_PL] ? -q[Q_PL] : left;
    return (hend - hs) * (wend - ws);
}

/* Each output, or with dx each output's gradient spread over its window (planes are
 * independent, so the threads' split changes no result). */
static void host_average(const struct train_plan *t, const struct train_step *s, const float *src,
                         float *dst, const float *dy, float *dx)
{
    const struct nn_value *x = train_val(t, s->in[0]), *y = train_val(t, s->out);
    const int64_t *q = s->q;
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t oh = y->dims[2], ow = y->dims[3];
#pragma omp parallel for
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t y0, y1, x0, x1, o = (p * oh + oy) * ow + ox;
                int64_t count = window(q, x, oy, ox, &y0, &y1, &x0, &x1);
                double sum = 0;
                float g = dx && count > 0 ? dy[o] / (float)count : 0.0f;
                for (int64_t ky = y0; ky < y1; ky++)
                    for (int64_t kx = x0; kx < x1; kx++) {
                        int64_t iy = oy * q[Q_SH] - q[Q_PT] + ky * (q[Q_DH] + 1);
                        int64_t ix = ox * q[Q_SW] - q[Q_PL] + kx * (q[Q_DW] + 1);
                        int64_t at = (p * h + iy) * w + ix;
                        if (dx)
                            dx[at] += g;
                        else
                            sum += src[at];
                    }
                if (!dx) dst[o] = count > 0 ? (float)(sum / (double)count) : 0.0f;
            }
}

/* ---- the passes ---- */

static int forward_pool(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    float *x = t->data[s->in[0]], *y = t->data[s->out];
    if (on_host(s)) {
        host_average(t, s, x, y, NULL, NULL);
        return 0;
    }
    struct train_arg args[] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, y}, {DNNL_ARG_WORKSPACE, s->work}};
    return train_exec(t, s, POOL_FORWARD, args, s->work ? 3 : 2, err);
}

static int backward_pool(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    if (!t->grad[s->in[0]]) return 0;
    if (on_host(s)) {
        train_grad_zero(t, s->in[0]);
        host_average(t, s, NULL, NULL, t->grad[s->out], t->grad[s->in[0]]);
        return 0;
    }
    bool add;
    float *dx = train_grad_share(t, s->in[0], t->temp, &add);
    struct train_arg args[] = {{DNNL_ARG_DIFF_DST, t->grad[s->out]},
                               {DNNL_ARG_DIFF_SRC, dx},
                               {DNNL_ARG_WORKSPACE, s->work}};
    if (train_exec(t, s, POOL_BACKWARD, args, s->work ? 3 : 2, err) ||
        nn_dnnl_check(dnnl_stream_wait(t->np->stream), "dnnl_stream_wait", s->node, err))
        return -1;
    if (add) train_accumulate(t->grad[s->in[0]], dx, train_val(t, s->in[0])->count);
    return 0;
}

const struct train_op train_pool_op = {compile_pool, forward_pool, backward_pool,
                                       .keeps_layout = true, .overwrites = true};
