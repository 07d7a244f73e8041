/* MaxPool, AveragePool and GlobalAveragePool over [N, C, H, W] on the host, one plane per
 * iteration (planes are independent, so the threads' split changes no result). MaxPool keeps
 * where each output's maximum was (its offset in the plane, exact in a float up to 2^24
 * positions), the first in the window on ties, as PyTorch does; its gradient goes there only. */
#include <string.h>

#include "train/internal.h"

/* q: kernel h, w; stride h, w; zero-based dilation h, w; pad top, left; the end of the counted
 * area for count_include_pad (H + explicit bottom pad, W + explicit right pad); max; include. */
enum { Q_KH, Q_KW, Q_SH, Q_SW, Q_DH, Q_DW, Q_PT, Q_PL, Q_HEND, Q_WEND, Q_MAX, Q_INCLUDE };

static int compile_pool(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    const char *op = node->op_type;
    int global = !strcmp(op, "GlobalAveragePool");
    if (node->n_outputs > 1 && node->outputs[1][0])
        return nn_unsupported(node, "the Indices output is not supported", err);
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0) return -1;
    struct nn_value x = *train_val(t, s->in[0]);
    if (x.rank != 4)
        return nn_unsupported(node, "only 2-D pooling ([N, C, H, W]) is supported", err);
    int64_t k[2] = {x.dims[2], x.dims[3]}, out[4] = {x.dims[0], x.dims[1], 1, 1};
    dnnl_dims_t strides = {1, 1}, dil = {0, 0}, pl = {0, 0}, pr = {0, 0};
    if (!global) {
        size_t n_k, n_p;
        const int64_t *ks = nn_attr_ints(node, "kernel_shape", &n_k);
        if (!ks || n_k != 2)
            return nn_invalid(node, "kernel_shape must give one size per spatial dim", err);
        memcpy(k, ks, sizeof k);
        if (nn_windows(node, &x, k, (int)nn_attr_int(node, "ceil_mode", 0), out, strides, dil, pl,
                       pr, err))
            return -1;
        const int64_t *pads = nn_attr_ints(node, "pads", &n_p);
        if (pads && n_p == 4) memcpy(pr, pads + 2, 2 * sizeof *pr);
    }
    int64_t q[] = {k[0],
                   k[1],
                   strides[0],
                   strides[1],
                   dil[0],
                   dil[1],
                   pl[0],
                   pl[1],
                   x.dims[2] + pr[0],
                   x.dims[3] + pr[1],
                   !strcmp(op, "MaxPool"),
                   nn_attr_int(node, "count_include_pad", 0)};
    memcpy(s->q, q, sizeof q);
    if ((s->out = train_value(t, node->outputs[0], 4, out, NULL, err)) < 0) return -1;
    s->skips_inputs = s->skips_output = true; /* MaxPool's backward reads its argmax (work) */
    return s->q[Q_MAX] ? train_work(s, nn_dims_count(4, out), err) : 0;
}

/* One output's window clipped to the input ([*y0, *y1) x [*x0, *x1) in taps) and the number
 * of positions an average divides by. */
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
    if (!q[Q_INCLUDE]) return (*y1 - *y0) * (*x1 - *x0);
    /* PyTorch's count_include_pad: the window clipped to the explicitly padded input. */
    int64_t hend = top + q[Q_KH] < q[Q_HEND] ? top + q[Q_KH] : q[Q_HEND];
    int64_t wend = left + q[Q_KW] < q[Q_WEND] ? left + q[Q_KW] : q[Q_WEND];
    int64_t hs = top < -q[Q_PT] ? -q[Q_PT] : top, ws = left < -q[Q_PL] ? -q[Q_PL] : left;
    return (hend - hs) * (wend - ws);
}

static int forward_pool(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    const struct nn_value *x = train_val(t, s->in[0]), *y = train_val(t, s->out);
    const int64_t *q = s->q;
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t oh = y->dims[2], ow = y->dims[3];
    const float *src = t->data[s->in[0]];
    float *dst = t->data[s->out];
#pragma omp parallel for
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t y0, y1, x0, x1, o = (p * oh + oy) * ow + ox;
                int64_t count = window(q, x, oy, ox, &y0, &y1, &x0, &x1), best = -1;
                double sum = 0;
                for (int64_t ky = y0; ky < y1; ky++)
                    for (int64_t kx = x0; kx < x1; kx++) {
                        int64_t iy = oy * q[Q_SH] - q[Q_PT] + ky * (q[Q_DH] + 1);
                        int64_t ix = ox * q[Q_SW] - q[Q_PL] + kx * (q[Q_DW] + 1);
                        int64_t at = (p * h + iy) * w + ix;
                        if (best < 0 || src[at] > src[best]) best = at;
                        sum += src[at];
                    }
                if (q[Q_MAX]) {
                    dst[o] = best >= 0 ? src[best] : 0.0f;
                    s->work[o] = best >= 0 ? (float)(best - p * h * w) : -1.0f;
                } else {
                    dst[o] = count > 0 ? (float)(sum / (double)count) : 0.0f;
                }
            }
    return 0;
}

static int backward_pool(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    float *dx = t->grad[s->in[0]];
    if (!dx) return 0;
    const struct nn_value *x = train_val(t, s->in[0]), *y = train_val(t, s->out);
    const int64_t *q = s->q;
    int64_t planes = x->dims[0] * x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t oh = y->dims[2], ow = y->dims[3];
    const float *dy = t->grad[s->out];
#pragma omp parallel for
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t o = (p * oh + oy) * ow + ox;
                if (q[Q_MAX]) {
                    if (s->work[o] >= 0) dx[p * h * w + (int64_t)s->work[o]] += dy[o];
                    continue;
                }
                int64_t y0, y1, x0, x1, count = window(q, x, oy, ox, &y0, &y1, &x0, &x1);
                float g = count > 0 ? dy[o] / (float)count : 0.0f;
                for (int64_t ky = y0; ky < y1; ky++)
                    for (int64_t kx = x0; kx < x1; kx++) {
                        int64_t iy = oy * q[Q_SH] - q[Q_PT] + ky * (q[Q_DH] + 1);
                        int64_t ix = ox * q[Q_SW] - q[Q_PL] + kx * (q[Q_DW] + 1);
                        dx[(p * h + iy) * w + ix] += g;
                    }
            }
    return 0;
}

const struct train_op train_pool_op = {compile_pool, forward_pool, backward_pool};
