/* One compile function per ONNX op: each reads its inputs' values, picks layouts, adds the steps
 * that compute its output and names the output value. Producers absorb their sole readers where
 * oneDNN can do both in one pass: BatchNormalization into a Conv's weights, activations and a
 * residual Add into post-ops. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

const char nn_supported_ops[] =
    "Conv, BatchNormalization, Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, MaxPool, "
    "AveragePool, GlobalAveragePool, GlobalMaxPool, Gemm, MatMul, Add, Mul, Concat, Flatten, "
    "Reshape, Transpose, Dropout, Identity, Cast, Softmax, LRN, Pad, Constant, Shape, Gather, "
    "Squeeze, Unsqueeze (default domain; Gather with constant indices; Cast to float)";

/* ---- activations ---- */

int nn_clip_bound(struct nn_plan *p, const struct nn_node *node, size_t k, const char *attr,
                  float dflt, float *out, struct eng_error *err)
{
    *out = nn_attr_float(node, attr, dflt);
    if (!nn_has_input(node, k)) return 0;
    int id = nn_input(p, node, k, err);
    if (id < 0) return -1;
    const struct nn_value *v = &p->values[id];
    if (!v->is_const || v->dtype != NN_FLOAT || v->count != 1)
        return nn_unsupported(node, "min and max must be constant float scalars", err);
    *out = *(const float *)v->data;
    return 0;
}

int nn_activation_of(struct nn_plan *p, const struct nn_node *node, struct nn_eltwise *e,
                     struct eng_error *err)
{
    const char *op = node->op_type;
    *e = (struct nn_eltwise){.n = 1};
    if (!strcmp(op, "Relu")) {
        e->alg[0] = dnnl_eltwise_relu;
    } else if (!strcmp(op, "LeakyRelu")) {
        e->alg[0] = dnnl_eltwise_relu;
        e->alpha[0] = nn_attr_float(node, "alpha", 0.01f);
    } else if (!strcmp(op, "Sigmoid")) {
        e->alg[0] = dnnl_eltwise_logistic;
    } else if (!strcmp(op, "HardSwish")) {
        e->alg[0] = dnnl_eltwise_hardswish;
    } else if (!strcmp(op, "HardSigmoid")) {
        /* max(0, min(1, alpha * x + beta)) */
        *e = (struct nn_eltwise){2,
                                 {dnnl_eltwise_linear, dnnl_eltwise_clip},
                                 {nn_attr_float(node, "alpha", 0.2f), 0.0f},
                                 {nn_attr_float(node, "beta", 0.5f), 1.0f}};
    } else if (!strcmp(op, "Clip")) {
        e->alg[0] = dnnl_eltwise_clip;
        if (nn_clip_bound(p, node, 1, "min", -FLT_MAX, &e->alpha[0], err) ||
            nn_clip_bound(p, node, 2, "max", FLT_MAX, &e->beta[0], err))
            return -1;
    } else {
        return 0;
    }
    return 1;
}

/* ---- fusion ---- */

/* What a producer absorbs: post-ops, the name its output then takes, and for a residual Add the
 * value whose buffer it accumulates into. */
struct fusion {
    dnnl_post_ops_t ops;
    int n_ops;
    const char *out_name;
    int sum_value; /* -1: none */
};

/* Whether value id may take the producer's output in place for a sum post-op: the Add at node k
 * is its last reader, nothing reads it in between, and no other value in its slot lives on. */
static int can_accumulate_into(const struct nn_plan *p, int id, int k, int rank,
                               const int64_t *dims)
{
    const struct nn_value *v = &p->values[id];
    if (v->is_const || v->last_use != k || v->rank != rank ||
        memcmp(v->dims, dims, (size_t)rank * sizeof *dims) || p->slots[v->slot].last_use > k)
        return 0;
    for (int i = p->node + 1; i < k; i++) {
        const struct nn_node *n = nn_graph_node(p->g, (size_t)i);
        for (size_t j = 0; j < n->n_inputs; j++)
            if (!strcmp(n->inputs[j], v->name)) return 0;
    }
    return 1;
}

/* Follows name's chain of sole readers while they can be post-ops of its producer; a nonzero
 * first_sum starts the chain with a sum post-op of that scale (Gemm's beta * C). The caller
 * destroys f->ops. */
static int fuse_readers(struct nn_plan *p, const char *name, int allow_sum, float first_sum,
                        int rank, const int64_t *dims, struct fusion *f, struct eng_error *err)
{
    *f = (struct fusion){.out_name = name, .sum_value = -1};
    if (nn_dnnl_check(dnnl_post_ops_create(&f->ops), "dnnl_post_ops_create", NULL, err)) return -1;
    if (first_sum != 0.0f) {
        if (nn_dnnl_check(dnnl_post_ops_append_sum(f->ops, first_sum), "dnnl post-op setup", NULL,
                          err))
            return -1;
        f->n_ops = 1;
    }
    for (;;) {
        int k = nn_sole_reader(p, f->out_name);
        if (k < 0 || p->fused[k]) return 0;
        const struct nn_node *reader = nn_graph_node(p->g, (size_t)k);
        if (reader->n_outputs < 1 || !reader->outputs[0][0]) return 0;
        struct nn_eltwise e;
        int is_act = nn_activation_of(p, reader, &e, err);
        if (is_act < 0) return -1;
        dnnl_status_t st = dnnl_success;
        if (is_act) {
            for (int j = 0; j < e.n && st == dnnl_success; j++)
                st = dnnl_post_ops_append_eltwise(f->ops, 1.0f, e.alg[j], e.alpha[j], e.beta[j]);
        } else if (allow_sum && f->n_ops == 0 && !strcmp(reader->op_type, "Add") &&
                   reader->n_inputs == 2) {
            const char *other_name =
                strcmp(reader->inputs[0], f->out_name) ? reader->inputs[0] : reader->inputs[1];
            int other = nn_find_value(p, other_name);
            if (other < 0 || !can_accumulate_into(p, other, k, rank, dims)) return 0;
            f->sum_value = other;
            st = dnnl_post_ops_append_sum(f->ops, 1.0f);
        } else {
            return 0;
        }
        if (nn_dnnl_check(st, "dnnl post-op setup", reader, err)) return -1;
        f->n_ops++;
        p->fused[k] = 1;
        f->out_name = reader->outputs[0];
    }
}

/* Attributes carrying f's post-ops (NULL when there are none); the caller destroys them. */
static int fusion_attr(const struct fusion *f, dnnl_primitive_attr_t *attr,
                       const struct nn_node *node, struct eng_error *err)
{
    *attr = NULL;
    if (!f->n_ops) return 0;
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, f->ops);
    return nn_dnnl_check(st, "dnnl post-op setup", node, err);
}

/* The output value of a fused producer: the residual's buffer when summing, else a new value in
 * layout md. */
static int fusion_output(struct nn_plan *p, const struct fusion *f, int rank, const int64_t *dims,
                         const dnnl_memory_desc_t *md, struct eng_error *err)
{
    if (f->sum_value >= 0) return nn_alias(p, f->sum_value, f->out_name, rank, dims, md, err);
    return nn_activation(p, f->out_name, rank, dims, md, err);
}

static const dnnl_memory_desc_t *query_md(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* ---- windows (Conv and pooling) ---- */

/* One spatial axis of a Conv or pooling window: the output size and oneDNN's paddings. ceil_mode
 * is expressed by widening the end padding so oneDNN's floor division gives the same size. */
static int window(const struct nn_node *node, int64_t in, int64_t k, int64_t stride, int64_t dil,
                  int64_t pad_b, int64_t pad_e, int ceil_mode, int64_t *out, int64_t *pl,
                  int64_t *pr, struct eng_error *err)
{
    const struct nn_attr *ap = nn_node_attr(node, "auto_pad");
    const char *auto_pad = ap && ap->type == NN_ATTR_STRING ? ap->s : "NOTSET";
    int64_t dk = (k - 1) * dil + 1;
    if (k < 1 || stride < 1 || dil < 1)
        return nn_invalid(node, "kernel, strides and dilations must be >= 1", err);
    if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
        *out = (in + stride - 1) / stride;
        int64_t total = (*out - 1) * stride + dk - in;
        if (total < 0) total = 0;
        *pl = !strcmp(auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
        *pr = total - *pl;
        return 0;
    }
    if (!strcmp(auto_pad, "VALID")) {
        pad_b = pad_e = 0;
    } else if (strcmp(auto_pad, "NOTSET")) {
        return nn_unsupported(node, "auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                              err);
    }
    if (pad_b < 0 || pad_e < 0) return nn_invalid(node, "pads must be >= 0", err);
    int64_t span = in + pad_b + pad_e - dk;
    if (span < 0) return nn_invalid(node, "the kernel is larger than the padded input", err);
    *out = (ceil_mode ? span + stride - 1 : span) / stride + 1;
    /* A window may not start in the end padding (as ONNX's reference and PyTorch). */
    if (ceil_mode && (*out - 1) * stride >= in + pad_b) (*out)--;
    *pl = pad_b;
    *pr = (*out - 1) * stride + dk - in - pad_b;
    if (*pr < pad_e) *pr = pad_e;
    return 0;
}

/* Spatial window attributes shared by Conv and pooling. k: the kernel (from the weights or the
 * kernel_shape attribute). Fills the output's spatial dims and oneDNN's strides, dilations (zero
 * based) and paddings. */
int nn_windows(const struct nn_node *node, const struct nn_value *x, const int64_t *k,
               int ceil_mode, int64_t *out_dims, dnnl_dims_t strides, dnnl_dims_t dil,
               dnnl_dims_t pl, dnnl_dims_t pr, struct eng_error *err)
{
    int ns = x->rank - 2;
    size_t n_s, n_d, n_p;
    const int64_t *s = nn_attr_ints(node, "strides", &n_s);
    const int64_t *d = nn_attr_ints(node, "dilations", &n_d);
    const int64_t *pads = nn_attr_ints(node, "pads", &n_p);
    if ((s && n_s != (size_t)ns) || (d && n_d != (size_t)ns) || (pads && n_p != 2 * (size_t)ns))
        return nn_invalid(node, "strides, dilations or pads do not match the spatial rank", err);
    for (int a = 0; a < ns; a++) {
        int64_t st = s ? s[a] : 1, di = d ? d[a] : 1;
        if (window(node, x->dims[2 + a], k[a], st, di, pads ? pads[a] : 0, pads ? pads[ns + a] : 0,
                   ceil_mode, &out_dims[2 + a], &pl[a], &pr[a], err))
            return -1;
        strides[a] = st;
        dil[a] = di - 1;
    }
    return 0;
}

static int check_spatial(const struct nn_node *node, const struct nn_value *x,
                         struct eng_error *err)
{
    if (x->rank < 3 || x->rank > 5)
        return nn_unsupported(node, "the input must have 1 to 3 spatial dims (rank 3 to 5)", err);
    return 0;
}

/* ---- Conv ---- */

/* A float input in plain layout (weights and parameters usually are constants, but ONNX allows
 * them to be computed), or -1 with err. */
static int plain_float_input(struct nn_plan *p, const struct nn_node *node, size_t k,
                             struct eng_error *err)
{
    int id = nn_input(p, node, k, err);
    if (id < 0) return -1;
    if (p->values[id].is_const && p->values[id].dtype != NN_FLOAT) {
        char msg[80];
        snprintf(msg, sizeof msg, "input %zu must be float", k);
        return nn_unsupported(node, msg, err);
    }
    return nn_to_plain(p, id, err);
}

/* When the conv's sole reader is an inference BatchNormalization with constant parameters, its
 * affine map is folded into the weights and bias: w' = w * s, b' = (b - mean) * s + beta with
 * s = gamma / sqrt(var + eps) per output channel. Returns the folded output's name (or the
 * conv's when nothing folds) and updates *wi, *bi. */
static const char *fold_batchnorm(struct nn_plan *p, const struct nn_node *conv, int *wi, int *bi,
                                  struct eng_error *err, int *failed)
{
    *failed = 0;
    int k = nn_sole_reader(p, conv->outputs[0]);
    if (k < 0 || !p->values[*wi].is_const || (*bi >= 0 && !p->values[*bi].is_const))
        return conv->outputs[0];
    const struct nn_node *bn = nn_graph_node(p->g, (size_t)k);
    if (strcmp(bn->op_type, "BatchNormalization") || bn->n_inputs != 5 ||
        nn_attr_int(bn, "training_mode", 0) || (bn->n_outputs > 1 && bn->outputs[1][0]))
        return conv->outputs[0];
    int64_t oc = p->values[*wi].dims[0];
    const float *par[4];
    for (size_t j = 1; j < 5; j++) {
        const struct nn_tensor *t = nn_graph_initializer(p->g, bn->inputs[j]);
        if (!t || t->info.dtype != NN_FLOAT || t->count != (size_t)oc) return conv->outputs[0];
        par[j - 1] = t->data;
    }
    float eps = nn_attr_float(bn, "epsilon", 1e-5f);
    const struct nn_value *w = &p->values[*wi];
    size_t per = w->count / (size_t)oc;
    float *nw = malloc(w->count * sizeof *nw), *nb = malloc((size_t)oc * sizeof *nb);
    if (!nw || !nb) {
        free(nw);
        free(nb);
        *failed = 1;
        eng_no_memory(err);
        return NULL;
    }
    const float *wd = w->data, *bd = *bi >= 0 ? p->values[*bi].data : NULL;
    for (int64_t c = 0; c < oc; c++) {
        /* In double, then rounded once, so the folded model stays within float rounding of the
         * unfolded one. */
        double scale = par[0][c] / sqrt((double)par[3][c] + eps);
        for (size_t j = 0; j < per; j++)
            nw[(size_t)c * per + j] = (float)(wd[(size_t)c * per + j] * scale);
        nb[c] = (float)(((bd ? bd[c] : 0.0) - par[2][c]) * scale + par[1][c]);
    }
    struct nn_value wv = p->values[*wi];
    *wi = nn_constant(p, wv.name, NN_FLOAT, wv.rank, wv.dims, nw, 1, err);
    *bi = *wi < 0 ? -1 : nn_constant(p, bn->inputs[2], NN_FLOAT, 1, &oc, nb, 1, err);
    if (*wi < 0 || *bi < 0) {
        if (*wi < 0) free(nb);
        *failed = 1;
        return NULL;
    }
    p->fused[k] = 1;
    return bn->outputs[0];
}

/* Convolutions whose output map is this small (AlexNet's 3x3 maps at LPIPS's 64 px, ResNet's
 * last stage at 64 px) run as matrix products over the batch, one per kernel tap and output row,
 * that skip the taps falling on padding: on a 3x3 map with a 3x3 kernel and padding 1 that is 49
 * of the 81 products a direct kernel computes, and the weights stay 3x3 where Winograd's
 * transformed ones take 4x the memory. On its own, a 3x3 map of 256 channels ran 1.4x faster
 * than oneDNN's kernels here with 4 images and 1.1x with 16 (where AlexNet's LPIPS, its weights
 * no longer in cache, gained 1.3x); a single image ran 0.6x, too thin a product to pay. */
#define SMALL_MAP_POSITIONS 9
#define SMALL_MAP_MIN_BATCH 4

static bool wants_small_map(const struct nn_plan *p, const struct nn_value *x,
                            const struct nn_value *w, int64_t group, const int64_t *out,
                            const dnnl_dims_t dil)
{
    return !p->direct_convolution && x->rank == 4 && group == 1 && dil[0] == 0 && dil[1] == 0 &&
           out[2] * out[3] <= SMALL_MAP_POSITIONS && x->dims[0] >= SMALL_MAP_MIN_BATCH &&
           w->dims[0] >= 64 && w->dims[1] >= 64;
}

/* The layout the small-map path keeps: position-major, then image, then channel ([H][W][N][C]),
 * so that the images at consecutive positions of a row are one matrix with a fixed row stride. */
static int position_major_md(dnnl_memory_desc_t *md, const int64_t *dims,
                             const struct nn_node *node, struct eng_error *err)
{
    dnnl_dims_t d = {dims[0], dims[1], dims[2], dims[3]};
    dnnl_dims_t strides = {dims[1], 1, dims[3] * dims[0] * dims[1], dims[0] * dims[1]};
    return nn_dnnl_check(dnnl_memory_desc_init_by_strides(md, 4, d, dnnl_f32, strides),
                         "dnnl_memory_desc_init_by_strides", node, err);
}

/* Output channels [first, last) of a small-map convolution (q: run_small_map_conv's params): the
 * bias, then a product per kernel tap and output row. */
static int small_map_channels(const int64_t *q, const float *x, const float *weights,
                              const float *bias, float *y, int64_t first, int64_t last)
{
    int64_t n = q[0], c = q[1], h = q[2], w = q[3], m = q[4], oh = q[5], ow = q[6];
    int64_t kh = q[7], kw = q[8], sh = q[9], sw = q[10], pt = q[11], pl = q[12];
    for (int64_t row = 0; row < oh * ow * n; row++)
        for (int64_t k = first; k < last; k++)
            y[row * m + k] = bias ? bias[k] : 0.0f;
    for (int64_t ky = 0; ky < kh; ky++)
        for (int64_t kx = 0; kx < kw; kx++) {
            const float *tap = weights + (ky * kw + kx) * c * m + first;
            for (int64_t oy = 0; oy < oh; oy++) {
                int64_t iy = oy * sh - pt + ky;
                if (iy < 0 || iy >= h) continue;
                /* The output columns whose input column is inside; with stride 1 their inputs
                 * are consecutive too, and one product covers them all. */
                for (int64_t ox = 0; ox < ow; ox++) {
                    int64_t ix = ox * sw - pl + kx, run = 1;
                    if (ix < 0 || ix >= w) continue;
                    while (sw == 1 && ox + run < ow && ix + run < w)
                        run++;
                    dnnl_status_t st = dnnl_sgemm('N', 'N', run * n, last - first, c, 1.0f,
                                                  x + (iy * w + ix) * n * c, c, tap, m, 1.0f,
                                                  y + (oy * ow + ox) * n * m + first, m);
                    if (st != dnnl_success) return -1;
                    ox += run - 1;
                }
            }
        }
    return 0;
}

/* params: N, C, H, W (input), M, OH, OW (output), KH, KW, stride h/w, pad top/left, then the
 * weights' value ([KH][KW][C][M]) and the bias' (or -1); in and out are the activations. The
 * threads split the output channels, each running its products on its own (oneDNN's gemm is
 * sequential inside a parallel region): one fork and join per convolution rather than one per
 * product, which left the other threads spinning between the small products. */
static int run_small_map_conv(const struct nn_plan *p, const struct nn_step *s)
{
    const int64_t *q = s->params;
    const float *x = nn_value_data(p, s->in), *weights = p->values[q[13]].data;
    const float *bias = q[14] >= 0 ? p->values[q[14]].data : NULL;
    float *y = nn_value_data(p, s->out);
    int64_t m = q[4];
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        /* Slices of 16 channels, a vector's width, dealt out evenly. */
        int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t slices = (m + 15) / 16;
        int64_t first = slices * t / threads * 16, last = slices * (t + 1) / threads * 16;
        if (last > m) last = m;
        if (first < last) failed |= small_map_channels(q, x, weights, bias, y, first, last);
    }
    return failed ? -1 : 0;
}

static int compile_small_map_conv(struct nn_plan *p, const struct nn_node *node, const char *name,
                                  int xi, int wi, int bi, const int64_t *out,
                                  const dnnl_dims_t strides, const dnnl_dims_t pl,
                                  struct eng_error *err)
{
    /* Copies: adding values below may move p->values. */
    const int64_t *xd = p->values[xi].dims, *kd = p->values[wi].dims;
    int64_t params[] = {xd[0], xd[1],      xd[2],      xd[3], out[1], out[2], out[3], kd[2],
                        kd[3], strides[0], strides[1], pl[0], pl[1],  -1,     bi};
    dnnl_memory_desc_t x_md, y_md, w_md;
    /* The weights as [KH][KW][C][M]: the same tensor, M innermost. */
    dnnl_dims_t wd = {kd[0], kd[1], kd[2], kd[3]};
    dnnl_dims_t ws = {1, kd[0], kd[3] * kd[1] * kd[0], kd[1] * kd[0]};
    if (position_major_md(&x_md, xd, node, err) || position_major_md(&y_md, out, node, err) ||
        nn_dnnl_check(dnnl_memory_desc_init_by_strides(&w_md, 4, wd, dnnl_f32, ws),
                      "dnnl_memory_desc_init_by_strides", node, err))
        return -1;
    int yi;
    struct nn_step *s;
    if ((xi = nn_to_layout(p, xi, &x_md, err)) < 0 || (wi = nn_to_layout(p, wi, &w_md, err)) < 0 ||
        (yi = nn_activation(p, name, 4, out, &y_md, err)) < 0 || !(s = nn_add_step(p, err)))
        return -1;
    s->host = run_small_map_conv;
    s->in = xi;
    s->out = yi;
    params[13] = wi;
    _Static_assert(sizeof params <= sizeof s->params, "a step holds the small-map parameters");
    memcpy(s->params, params, sizeof params);
    return 0;
}

/* Winograd F(4x4, 3x3) needs 2.25x fewer multiplications than the direct algorithm. With at
 * least 64 channels on each side its transforms cost less than that saves: ResNet-18 runs 1.5x
 * faster, and AlexNet's 3x3 layers at LPIPS's 64 px 1.2x; at SqueezeNet's 16 to 48 input channels
 * it was no faster. Its rounding differs from the direct algorithm's by about 1e-6 relative. */
static bool wants_winograd(const struct nn_plan *p, const struct nn_value *w, int64_t group,
                           const dnnl_dims_t strides, const dnnl_dims_t dil)
{
    return !p->direct_convolution && w->rank == 4 && group == 1 && w->dims[0] >= 64 &&
           w->dims[1] >= 64 && w->dims[2] == 3 && w->dims[3] == 3 && strides[0] == 1 &&
           strides[1] == 1 && dil[0] == 0 && dil[1] == 0;
}

static int compile_conv(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int xi = nn_input(p, node, 0, err), wi = xi < 0 ? -1 : plain_float_input(p, node, 1, err);
    if (wi < 0) return -1;
    int bi = -1;
    if (nn_has_input(node, 2) && (bi = plain_float_input(p, node, 2, err)) < 0) return -1;
    if (check_spatial(node, &p->values[xi], err)) return -1;
    struct nn_value x = p->values[xi], w = p->values[wi];
    int64_t group = nn_attr_int(node, "group", 1);
    if (w.rank != x.rank || group < 1 || w.dims[0] % group || x.dims[1] != w.dims[1] * group)
        return nn_invalid(node, "the weights do not fit the input and group", err);
    if (bi >= 0 && (p->values[bi].rank != 1 || p->values[bi].dims[0] != w.dims[0]))
        return nn_invalid(node, "the bias must have one element per output channel", err);
    size_t n_k;
    const int64_t *ks = nn_attr_ints(node, "kernel_shape", &n_k);
    for (size_t a = 0; ks && a < n_k; a++)
        if (n_k != (size_t)x.rank - 2 || ks[a] != w.dims[2 + a])
            return nn_invalid(node, "kernel_shape does not match the weights", err);
    int64_t out[NN_MAX_RANK] = {x.dims[0], w.dims[0]};
    dnnl_dims_t strides, dil, pl, pr;
    if (nn_windows(node, &x, w.dims + 2, 0, out, strides, dil, pl, pr, err)) return -1;
    /* Each output element is a dot product over its group's channels and the kernel. */
    double macs =
        (double)nn_dims_count(x.rank, out) * (double)nn_dims_count(w.rank - 1, w.dims + 1);
    p->flops += 2 * macs;

    int failed;
    const char *name = fold_batchnorm(p, node, &wi, &bi, err, &failed);
    if (failed) return -1;
    if (wants_small_map(p, &x, &w, group, out, dil))
        return compile_small_map_conv(p, node, name, xi, wi, bi, out, strides, pl, err);
    struct fusion f;
    int rc = fuse_readers(p, name, 1, 0.0f, x.rank, out, &f, err);
    dnnl_primitive_attr_t attr = NULL;
    if (!rc) rc = fusion_attr(&f, &attr, node, err);
    dnnl_post_ops_destroy(f.ops);
    if (rc) return -1;

    /* Grouped weights are the same bytes seen as [group, M/group, C/group, k...]. */
    int64_t wd[NN_MAX_RANK + 1] = {group, w.dims[0] / group};
    memcpy(wd + 2, w.dims + 1, (size_t)(w.rank - 1) * sizeof *wd);
    int w_rank = group > 1 ? w.rank + 1 : w.rank;
    if (group > 1 && (wi = nn_alias(p, wi, w.name, w_rank, wd, NULL, err)) < 0) goto fail;
    dnnl_memory_desc_t x_md, w_md, y_md;
    if (nn_any_md(&x_md, x.rank, x.dims, node, err) ||
        nn_any_md(&w_md, w_rank, p->values[wi].dims, node, err))
        goto fail;
    if (f.sum_value >= 0)
        y_md = p->values[f.sum_value].md;
    else if (nn_any_md(&y_md, x.rank, out, node, err))
        goto fail;
    dnnl_convolution_desc_t desc;
    dnnl_primitive_desc_t pd;
    const dnnl_memory_desc_t *b_md = bi >= 0 ? &p->values[bi].md : NULL;
    int winograd = 0;
    if (wants_winograd(p, &w, group, strides, dil) &&
        dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                   dnnl_convolution_winograd, &x_md, &w_md, b_md,
                                                   &y_md, strides, dil, pl, pr) == dnnl_success)
        winograd = nn_try_prim_desc(p, node, &desc, attr, &pd, err);
    if (winograd < 0) goto fail;
    if (!winograd && (nn_dnnl_check(dnnl_dilated_convolution_forward_desc_init(
                                        &desc, dnnl_forward_inference, dnnl_convolution_direct,
                                        &x_md, &w_md, b_md, &y_md, strides, dil, pl, pr),
                                    "dnnl_dilated_convolution_forward_desc_init", node, err) ||
                      nn_prim_desc(p, node, &desc, attr, &pd, err)))
        goto fail;
    dnnl_primitive_attr_destroy(attr);
    attr = NULL;
    x_md = *query_md(pd, dnnl_query_src_md);
    w_md = *query_md(pd, dnnl_query_weights_md);
    y_md = *query_md(pd, dnnl_query_dst_md);
    int yi;
    struct nn_step *s;
    if ((xi = nn_to_layout(p, xi, &x_md, err)) < 0 || (wi = nn_to_layout(p, wi, &w_md, err)) < 0 ||
        (yi = fusion_output(p, &f, x.rank, out, &y_md, err)) < 0 || !(s = nn_add_step(p, err))) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    if (nn_make_prim(p, s, NULL, NULL, pd, err) || nn_add_arg(s, DNNL_ARG_SRC, xi, &x_md, err) ||
        nn_add_arg(s, DNNL_ARG_WEIGHTS, wi, &w_md, err) ||
        (bi >= 0 && nn_add_arg(s, DNNL_ARG_BIAS, bi, &p->values[bi].md, err)))
        return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, &y_md, err);
fail:
    dnnl_primitive_attr_destroy(attr);
    return -1;
}

/* ---- ops whose output keeps the input's layout ---- */

/* A step whose primitive comes from op_desc, reading x as DNNL_ARG_SRC and writing y as
 * DNNL_ARG_DST, both in layout md. */
static int src_dst_step(struct nn_plan *p, const_dnnl_op_desc_t op_desc,
                        const_dnnl_primitive_attr_t attr, int xi, int yi,
                        const dnnl_memory_desc_t *md, struct eng_error *err)
{
    struct nn_step *s = nn_add_step(p, err);
    if (!s || nn_make_prim(p, s, op_desc, attr, NULL, err) ||
        nn_add_arg(s, DNNL_ARG_SRC, xi, md, err))
        return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, md, err);
}

static int compile_activation(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    struct nn_eltwise e;
    int xi = nn_input(p, node, 0, err);
    if (xi < 0 || nn_activation_of(p, node, &e, err) < 0) return -1;
    struct nn_value x = p->values[xi];
    int yi = nn_activation(p, node->outputs[0], x.rank, x.dims, &x.md, err);
    if (yi < 0) return -1;
    /* The second operation (HardSigmoid's clip) runs in place on the output. */
    for (int j = 0; j < e.n; j++) {
        dnnl_eltwise_desc_t desc;
        if (nn_dnnl_check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, e.alg[j],
                                                         &x.md, e.alpha[j], e.beta[j]),
                          "dnnl_eltwise_forward_desc_init", node, err) ||
            src_dst_step(p, &desc, NULL, j ? yi : xi, yi, &x.md, err))
            return -1;
    }
    return 0;
}

static int compile_pool(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    const char *op = node->op_type;
    int global = !strncmp(op, "Global", 6),
        max = !strcmp(op, "MaxPool") || !strcmp(op, "GlobalMaxPool");
    if (node->n_outputs > 1 && node->outputs[1][0])
        return nn_unsupported(node, "the Indices output is not supported", err);
    if (nn_attr_int(node, "storage_order", 0))
        return nn_unsupported(node, "storage_order 1 is not supported", err);
    int xi = nn_input(p, node, 0, err);
    if (xi < 0 || check_spatial(node, &p->values[xi], err)) return -1;
    struct nn_value x = p->values[xi];
    int ns = x.rank - 2;
    dnnl_dims_t k, strides, dil, pl, pr;
    int64_t out[NN_MAX_RANK] = {x.dims[0], x.dims[1]};
    if (global) {
        for (int a = 0; a < ns; a++) {
            k[a] = x.dims[2 + a];
            out[2 + a] = strides[a] = 1;
            dil[a] = pl[a] = pr[a] = 0;
        }
    } else {
        size_t n_k;
        const int64_t *ks = nn_attr_ints(node, "kernel_shape", &n_k);
        if (!ks || n_k != (size_t)ns)
            return nn_invalid(node, "kernel_shape must give one size per spatial dim", err);
        memcpy(k, ks, n_k * sizeof *k);
        if (nn_windows(node, &x, k, (int)nn_attr_int(node, "ceil_mode", 0), out, strides, dil, pl,
                       pr, err))
            return -1;
    }
    dnnl_memory_desc_t y_md;
    dnnl_alg_kind_t alg = max ? dnnl_pooling_max
                          : nn_attr_int(node, "count_include_pad", 0)
                              ? dnnl_pooling_avg_include_padding
                              : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t desc;
    dnnl_primitive_desc_t pd;
    if (nn_any_md(&y_md, x.rank, out, node, err) ||
        nn_dnnl_check(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &x.md,
                                                        &y_md, strides, k, dil, pl, pr),
                      "dnnl_pooling_v2_forward_desc_init", node, err) ||
        nn_prim_desc(p, node, &desc, NULL, &pd, err))
        return -1;
    y_md = *query_md(pd, dnnl_query_dst_md);
    int yi = nn_activation(p, node->outputs[0], x.rank, out, &y_md, err);
    struct nn_step *s = yi < 0 ? NULL : nn_add_step(p, err);
    if (!s) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    if (nn_make_prim(p, s, NULL, NULL, pd, err) || nn_add_arg(s, DNNL_ARG_SRC, xi, &x.md, err))
        return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, &y_md, err);
}

static int compile_lrn(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int64_t size = nn_attr_int(node, "size", 0);
    if (size < 1 || size % 2 == 0)
        return nn_unsupported(node, "size must be odd (oneDNN's window is symmetric)", err);
    int xi = nn_input(p, node, 0, err);
    if (xi < 0) return -1;
    struct nn_value x = p->values[xi];
    if (x.rank < 3) return nn_invalid(node, "the input must be [N, C, spatial...]", err);
    int yi = nn_activation(p, node->outputs[0], x.rank, x.dims, &x.md, err);
    dnnl_lrn_desc_t desc;
    if (yi < 0 || nn_dnnl_check(dnnl_lrn_forward_desc_init(&desc, dnnl_forward_inference,
                                                           dnnl_lrn_across_channels, &x.md, size,
                                                           nn_attr_float(node, "alpha", 1e-4f),
                                                           nn_attr_float(node, "beta", 0.75f),
                                                           nn_attr_float(node, "bias", 1.0f)),
                                "dnnl_lrn_forward_desc_init", node, err))
        return -1;
    return src_dst_step(p, &desc, NULL, xi, yi, &x.md, err);
}

static int compile_batchnorm(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    if (nn_attr_int(node, "training_mode", 0) || (node->n_outputs > 1 && node->outputs[1][0]))
        return nn_unsupported(node, "only inference (one output, no training_mode) is supported",
                              err);
    int ids[5];
    if ((ids[0] = nn_input(p, node, 0, err)) < 0) return -1;
    for (size_t k = 1; k < 5; k++)
        if ((ids[k] = plain_float_input(p, node, k, err)) < 0) return -1;
    struct nn_value x = p->values[ids[0]];
    if (x.rank < 2) return nn_invalid(node, "the input must have a channel dim", err);
    for (int k = 1; k < 5; k++)
        if (p->values[ids[k]].rank != 1 || p->values[ids[k]].dims[0] != x.dims[1])
            return nn_invalid(node, "scale, B, mean and var must have one element per channel",
                              err);
    int yi = nn_activation(p, node->outputs[0], x.rank, x.dims, &x.md, err);
    dnnl_batch_normalization_desc_t desc;
    struct nn_step *s;
    if (yi < 0 ||
        nn_dnnl_check(dnnl_batch_normalization_forward_desc_init(
                          &desc, dnnl_forward_inference, &x.md,
                          nn_attr_float(node, "epsilon", 1e-5f),
                          dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
                      "dnnl_batch_normalization_forward_desc_init", node, err) ||
        !(s = nn_add_step(p, err)) || nn_make_prim(p, s, &desc, NULL, NULL, err))
        return -1;
    static const int args[5] = {DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN,
                                DNNL_ARG_VARIANCE};
    for (int k = 0; k < 5; k++)
        if (nn_add_arg(s, args[k], ids[k], &p->values[ids[k]].md, err)) return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, &x.md, err);
}

/* ---- Add and Mul ---- */

/* Right-aligns v's dims to rank (leading 1s), as numpy broadcasting does. */
static void aligned_dims(const struct nn_value *v, int rank, int64_t *dims)
{
    for (int d = 0; d < rank; d++)
        dims[d] = d < rank - v->rank ? 1 : v->dims[d - (rank - v->rank)];
}

/* The binary primitive for y = a op b with a in layout a_md; b and y as given. */
static int binary_desc(struct nn_plan *p, const struct nn_node *node, const struct fusion *f,
                       const dnnl_memory_desc_t *a_md, const dnnl_memory_desc_t *b_md,
                       const dnnl_memory_desc_t *y_md, dnnl_primitive_desc_t *pd,
                       struct eng_error *err)
{
    dnnl_binary_desc_t desc;
    dnnl_alg_kind_t alg = !strcmp(node->op_type, "Add") ? dnnl_binary_add : dnnl_binary_mul;
    dnnl_primitive_attr_t attr;
    if (nn_dnnl_check(dnnl_binary_desc_init(&desc, alg, a_md, b_md, y_md), "dnnl_binary_desc_init",
                      node, err) ||
        fusion_attr(f, &attr, node, err))
        return -1;
    int rc = nn_prim_desc(p, node, &desc, attr, pd, err);
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* Add and Mul: oneDNN broadcasts only its second source, so the operands are swapped when the
 * first is the broadcast one (both ops commute). The output takes the full operand's layout; a
 * broadcast operand of lower rank is read as plain data with leading 1s. If oneDNN has no kernel
 * for the layouts, everything falls back to plain. */
static int compile_binary(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int ai = nn_input(p, node, 0, err), bi = ai < 0 ? -1 : nn_input(p, node, 1, err);
    if (bi < 0) return -1;
    int rank = p->values[ai].rank > p->values[bi].rank ? p->values[ai].rank : p->values[bi].rank;
    int64_t ad[NN_MAX_RANK], bd[NN_MAX_RANK], out[NN_MAX_RANK];
    aligned_dims(&p->values[ai], rank, ad);
    aligned_dims(&p->values[bi], rank, bd);
    for (int d = 0; d < rank; d++) {
        if (ad[d] != bd[d] && ad[d] != 1 && bd[d] != 1)
            return nn_invalid(node, "the input shapes do not broadcast", err);
        out[d] = ad[d] == 1 ? bd[d] : ad[d];
    }
    size_t dims_bytes = (size_t)rank * sizeof *out;
    if (memcmp(ad, out, dims_bytes)) {
        if (memcmp(bd, out, dims_bytes))
            return nn_unsupported(node, "broadcasting both inputs is not supported", err);
        int t = ai;
        ai = bi;
        bi = t;
        memcpy(bd, ad, dims_bytes);
    }
    if (p->values[ai].is_const && (ai = nn_to_plain(p, ai, err)) < 0) return -1;
    struct fusion f;
    if (fuse_readers(p, node->outputs[0], 0, 0.0f, rank, out, &f, err)) {
        dnnl_post_ops_destroy(f.ops);
        return -1;
    }
    /* b's layout: a's when it has the same dims (one reorder at most), its own when it is a
     * same-rank broadcast, else plain with leading 1s. */
    dnnl_memory_desc_t a_md = p->values[ai].md, b_md;
    int b_native = p->values[bi].rank == rank && !p->values[bi].is_const;
    int rc = 0;
    if (b_native)
        b_md = !memcmp(bd, out, dims_bytes) ? a_md : p->values[bi].md;
    else
        rc = nn_plain_md(&b_md, rank, bd, node, err);
    dnnl_primitive_desc_t pd = NULL;
    struct eng_error first = {0};
    if (!rc && binary_desc(p, node, &f, &a_md, &b_md, &a_md, &pd, &first)) {
        b_native = 0;
        rc = nn_plain_md(&a_md, rank, out, node, err) || nn_plain_md(&b_md, rank, bd, node, err) ||
             binary_desc(p, node, &f, &a_md, &b_md, &a_md, &pd, err);
    }
    dnnl_post_ops_destroy(f.ops);
    if (rc) return -1;
    int yi;
    struct nn_step *s;
    if ((ai = nn_to_layout(p, ai, &a_md, err)) < 0 ||
        (bi = b_native ? nn_to_layout(p, bi, &b_md, err) : nn_to_plain(p, bi, err)) < 0 ||
        (yi = nn_activation(p, f.out_name, rank, out, &a_md, err)) < 0 ||
        !(s = nn_add_step(p, err))) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    if (nn_make_prim(p, s, NULL, NULL, pd, err) || nn_add_arg(s, DNNL_ARG_SRC_0, ai, &a_md, err) ||
        nn_add_arg(s, DNNL_ARG_SRC_1, bi, &b_md, err))
        return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, &a_md, err);
}

/* ---- Gemm and MatMul ---- */

/* Broadcast-copies C into Y [m, n] before the matmul, whose sum post-op then adds beta * C. */
static int run_gemm_fill(const struct nn_plan *p, const struct nn_step *s)
{
    const float *c = nn_value_data(p, s->in);
    float *y = nn_value_data(p, s->out);
    int64_t m = s->params[0], n = s->params[1], cm = s->params[2], cn = s->params[3];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            y[i * n + j] = c[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
    return 0;
}

/* Attributes with f's post-ops and, unless it is 1, alpha as the output scale; *attr may stay
 * NULL. */
static int matmul_attr(const struct fusion *f, float alpha, dnnl_primitive_attr_t *attr,
                       const struct nn_node *node, struct eng_error *err)
{
    if (fusion_attr(f, attr, node, err)) return -1;
    if (alpha == 1.0f) return 0;
    dnnl_status_t st = *attr ? dnnl_success : dnnl_primitive_attr_create(attr);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_output_scales(*attr, 1, 0, &alpha);
    return nn_dnnl_check(st, "dnnl attribute setup", node, err);
}

/* The matmul step y = a * b (+ bias) with the given views of the operands' bytes; a constant b
 * is reordered now into the layout oneDNN prefers. */
static int matmul_step(struct nn_plan *p, const struct nn_node *node, const struct fusion *f,
                       float alpha, int ai, const dnnl_memory_desc_t *a_md, int bi,
                       dnnl_memory_desc_t b_md, int ci, const dnnl_memory_desc_t *c_md, int yi,
                       const dnnl_memory_desc_t *y_md, struct eng_error *err)
{
    dnnl_memory_desc_t want = b_md;
    if ((bi = nn_alias(p, bi, p->values[bi].name, b_md.ndims, b_md.dims, &b_md, err)) < 0 ||
        (p->values[bi].is_const &&
         nn_dnnl_check(dnnl_memory_desc_init_by_tag(&want, b_md.ndims, b_md.dims, dnnl_f32,
                                                    dnnl_format_tag_any),
                       "dnnl_memory_desc_init_by_tag", node, err)))
        return -1;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd;
    int rc = nn_dnnl_check(dnnl_matmul_desc_init(&desc, a_md, &want, ci >= 0 ? c_md : NULL, y_md),
                           "dnnl_matmul_desc_init", node, err) ||
             matmul_attr(f, alpha, &attr, node, err) ||
             nn_prim_desc(p, node, &desc, attr, &pd, err);
    dnnl_primitive_attr_destroy(attr);
    if (rc) return -1;
    want = *query_md(pd, dnnl_query_weights_md);
    struct nn_step *s;
    if ((bi = nn_to_layout(p, bi, &want, err)) < 0 || !(s = nn_add_step(p, err))) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    if (nn_make_prim(p, s, NULL, NULL, pd, err) || nn_add_arg(s, DNNL_ARG_SRC, ai, a_md, err) ||
        nn_add_arg(s, DNNL_ARG_WEIGHTS, bi, &want, err) ||
        (ci >= 0 && nn_add_arg(s, DNNL_ARG_BIAS, ci, c_md, err)))
        return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, y_md, err);
}

static int strided_md(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int transposed,
                      const struct nn_node *node, struct eng_error *err)
{
    dnnl_dims_t dims = {rows, cols}, strides = {transposed ? 1 : cols, transposed ? rows : 1};
    return nn_dnnl_check(dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides),
                         "dnnl_memory_desc_init_by_strides", node, err);
}

/* Gemm as a matmul whose operand views express transA/transB and alpha the output scale. C is
 * oneDNN's bias when it is a row vector and alpha = beta = 1; otherwise it is broadcast into the
 * output first and a sum post-op adds beta times it. */
static int compile_gemm(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int ai = nn_input(p, node, 0, err), bi = ai < 0 ? -1 : nn_input(p, node, 1, err);
    if (bi < 0 || (ai = nn_to_plain(p, ai, err)) < 0 ||
        (!p->values[bi].is_const && (bi = nn_to_plain(p, bi, err)) < 0))
        return -1;
    int ci = -1;
    if (nn_has_input(node, 2) &&
        ((ci = nn_input(p, node, 2, err)) < 0 || (ci = nn_to_plain(p, ci, err)) < 0))
        return -1;
    struct nn_value a = p->values[ai], b = p->values[bi];
    int ta = nn_attr_int(node, "transA", 0) != 0, tb = nn_attr_int(node, "transB", 0) != 0;
    float alpha = nn_attr_float(node, "alpha", 1.0f), beta = nn_attr_float(node, "beta", 1.0f);
    if (a.rank != 2 || b.rank != 2) return nn_invalid(node, "A and B must be 2-D", err);
    int64_t m = a.dims[ta], k = a.dims[!ta], n = b.dims[!tb];
    if (b.dims[tb] != k) return nn_invalid(node, "the inner dims of A and B differ", err);
    p->flops += 2.0 * (double)m * (double)n * (double)k;
    int64_t out[2] = {m, n}, cm = 1, cn = 1;
    if (ci >= 0 && beta != 0.0f) {
        const struct nn_value *c = &p->values[ci];
        if (c->rank > 2) return nn_invalid(node, "C must have rank <= 2", err);
        cm = c->rank == 2 ? c->dims[0] : 1;
        cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
        if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
            return nn_invalid(node, "C does not broadcast to [M, N]", err);
    } else {
        ci = -1;
    }
    int as_bias = ci >= 0 && alpha == 1.0f && beta == 1.0f && cm == 1 && cn == n;
    int fill = ci >= 0 && !as_bias;
    struct fusion f;
    int rc = fuse_readers(p, node->outputs[0], 0, fill ? beta : 0.0f, 2, out, &f, err);
    dnnl_memory_desc_t a_md, b_md, c_md, y_md;
    int yi = -1;
    if (!rc)
        rc = strided_md(&a_md, m, k, ta, node, err) || strided_md(&b_md, k, n, tb, node, err) ||
             nn_plain_md(&c_md, 2, (int64_t[]){1, n}, node, err) ||
             nn_plain_md(&y_md, 2, out, node, err) ||
             (yi = nn_activation(p, f.out_name, 2, out, &y_md, err)) < 0;
    if (!rc && fill) {
        struct nn_step *s = nn_add_step(p, err);
        if (!s)
            rc = -1;
        else {
            s->host = run_gemm_fill;
            s->in = ci;
            s->out = yi;
            memcpy(s->params, (int64_t[]){m, n, cm, cn}, 4 * sizeof(int64_t));
        }
    }
    if (!rc)
        rc = matmul_step(p, node, &f, alpha, ai, &a_md, bi, b_md, as_bias ? ci : -1, &c_md, yi,
                         &y_md, err);
    dnnl_post_ops_destroy(f.ops);
    return rc;
}

/* MatMul with numpy semantics: 1-D operands are promoted (and the added dim dropped from the
 * result) and batch dims broadcast. */
static int compile_matmul(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int ai = nn_input(p, node, 0, err), bi = ai < 0 ? -1 : nn_input(p, node, 1, err);
    if (bi < 0 || (ai = nn_to_plain(p, ai, err)) < 0 || (bi = nn_to_plain(p, bi, err)) < 0)
        return -1;
    struct nn_value a = p->values[ai], b = p->values[bi];
    if (a.rank < 1 || b.rank < 1) return nn_invalid(node, "the inputs must have rank >= 1", err);
    int64_t ad[NN_MAX_RANK], bd[NN_MAX_RANK], yd[NN_MAX_RANK], out[NN_MAX_RANK];
    int ar = a.rank == 1 ? 2 : a.rank, br = b.rank == 1 ? 2 : b.rank;
    int rank = ar > br ? ar : br;
    if (rank > DNNL_MAX_NDIMS) return nn_unsupported(node, "the rank is too high", err);
    struct nn_value a2 = a, b2 = b;
    if (a.rank == 1) a2.rank = 2, a2.dims[0] = 1, a2.dims[1] = a.dims[0];
    if (b.rank == 1) b2.rank = 2, b2.dims[0] = b.dims[0], b2.dims[1] = 1;
    aligned_dims(&a2, rank, ad);
    aligned_dims(&b2, rank, bd);
    if (ad[rank - 1] != bd[rank - 2]) return nn_invalid(node, "the inner dims differ", err);
    int n_out = 0;
    for (int d = 0; d < rank - 2; d++) {
        if (ad[d] != bd[d] && ad[d] != 1 && bd[d] != 1)
            return nn_invalid(node, "the batch dims do not broadcast", err);
        yd[d] = out[n_out++] = ad[d] == 1 ? bd[d] : ad[d];
    }
    yd[rank - 2] = ad[rank - 2];
    yd[rank - 1] = bd[rank - 1];
    if (a.rank > 1) out[n_out++] = yd[rank - 2];
    if (b.rank > 1) out[n_out++] = yd[rank - 1];
    p->flops += 2.0 * (double)nn_dims_count(rank, yd) * (double)ad[rank - 1];
    struct fusion f;
    dnnl_memory_desc_t a_md, b_md, y_md;
    int yi = -1;
    int rc = fuse_readers(p, node->outputs[0], 0, 0.0f, n_out, out, &f, err) ||
             nn_plain_md(&a_md, rank, ad, node, err) || nn_plain_md(&b_md, rank, bd, node, err) ||
             nn_plain_md(&y_md, rank, yd, node, err) ||
             (yi = nn_activation(p, f.out_name, n_out, out, NULL, err)) < 0 ||
             matmul_step(p, node, &f, 1.0f, ai, &a_md, bi, b_md, -1, NULL, yi, &y_md, err);
    dnnl_post_ops_destroy(f.ops);
    return rc ? -1 : 0;
}

/* ---- layout-changing ops ---- */

/* Softmax: opset 13 normalises along one axis; earlier opsets over everything from axis on,
 * which is a 2-D [outer, inner] softmax over the same bytes. */
static int compile_softmax(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int xi = nn_input(p, node, 0, err);
    if (xi < 0 || (xi = nn_to_plain(p, xi, err)) < 0) return -1;
    struct nn_value x = p->values[xi];
    int v13 = nn_graph_opset(p->g) >= 13;
    int axis = nn_norm_axis(node, nn_attr_int(node, "axis", v13 ? -1 : 1), x.rank, 0, err);
    if (axis < 0) return -1;
    int yi = nn_activation(p, node->outputs[0], x.rank, x.dims, NULL, err);
    if (yi < 0) return -1;
    dnnl_memory_desc_t md;
    int64_t flat[2] = {(int64_t)nn_dims_count(axis, x.dims), 0};
    flat[1] = (int64_t)x.count / (flat[0] ? flat[0] : 1);
    int rc = v13 ? (md = x.md, 0) : nn_plain_md(&md, 2, flat, node, err);
    dnnl_softmax_desc_t desc;
    if (rc || nn_dnnl_check(dnnl_softmax_forward_desc_init(&desc, dnnl_forward_inference, &md,
                                                           v13 ? axis : 1),
                            "dnnl_softmax_forward_desc_init", node, err))
        return -1;
    return src_dst_step(p, &desc, NULL, xi, yi, &md, err);
}

static int concat_desc(struct nn_plan *p, const struct nn_node *node, int n, int axis,
                       const dnnl_memory_desc_t *mds, const dnnl_memory_desc_t *y_md,
                       dnnl_primitive_desc_t *pd, struct eng_error *err)
{
    dnnl_primitive_attr_t user;
    if (nn_user_scratchpad_attr(NULL, &user, node, err)) return -1;
    dnnl_status_t st = dnnl_concat_primitive_desc_create(pd, y_md, n, axis, mds, user, p->engine);
    dnnl_primitive_attr_destroy(user);
    return nn_dnnl_check(st, "dnnl_concat_primitive_desc_create", node, err);
}

/* Concat in the inputs' layouts when oneDNN has a kernel for them (SqueezeNet's fire modules
 * concatenate blocked activations along channels), else in plain ones. */
static int compile_concat(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    enum { MAX_INPUTS = 64 };
    int n = (int)node->n_inputs;
    if (n < 1 || n > MAX_INPUTS) return nn_unsupported(node, "1 to 64 inputs are supported", err);
    int ids[MAX_INPUTS] = {0};
    dnnl_memory_desc_t mds[MAX_INPUTS], y_md;
    for (int k = 0; k < n; k++)
        if ((ids[k] = nn_input(p, node, (size_t)k, err)) < 0) return -1;
    struct nn_value x0 = p->values[ids[0]];
    int axis;
    int64_t out[NN_MAX_RANK];
    if (nn_concat_dims(p, node, ids, n, &axis, out, err)) return -1;
    for (int k = 0; k < n; k++)
        mds[k] = p->values[ids[k]].md;
    dnnl_primitive_desc_t pd;
    struct eng_error first = {0};
    int plain = 0;
    if (nn_any_md(&y_md, x0.rank, out, node, err)) return -1;
    if (concat_desc(p, node, n, axis, mds, &y_md, &pd, &first)) {
        plain = 1;
        for (int k = 0; k < n; k++)
            if (nn_plain_md(&mds[k], x0.rank, p->values[ids[k]].dims, node, err)) return -1;
        if (nn_plain_md(&y_md, x0.rank, out, node, err) ||
            concat_desc(p, node, n, axis, mds, &y_md, &pd, err))
            return -1;
    }
    y_md = *query_md(pd, dnnl_query_dst_md);
    int yi = -1;
    struct nn_step *s = NULL;
    int rc = 0;
    for (int k = 0; k < n && !rc; k++)
        rc = plain && (ids[k] = nn_to_plain(p, ids[k], err)) < 0;
    if (rc || (yi = nn_activation(p, node->outputs[0], x0.rank, out, &y_md, err)) < 0 ||
        !(s = nn_add_step(p, err))) {
        dnnl_primitive_desc_destroy(pd);
        return -1;
    }
    if (nn_make_prim(p, s, NULL, NULL, pd, err)) return -1;
    for (int k = 0; k < n; k++)
        if (nn_add_arg(s, DNNL_ARG_MULTIPLE_SRC + k, ids[k], &mds[k], err)) return -1;
    return nn_add_arg(s, DNNL_ARG_DST, yi, &y_md, err);
}

/* Transpose as a reorder from the input's bytes seen with permuted strides to a plain output. */
static int compile_transpose(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int xi = nn_input(p, node, 0, err);
    if (xi < 0 || (xi = nn_to_plain(p, xi, err)) < 0) return -1;
    struct nn_value x = p->values[xi];
    size_t n_perm;
    const int64_t *perm = nn_attr_ints(node, "perm", &n_perm);
    if (perm && n_perm != (size_t)x.rank)
        return nn_invalid(node, "perm must have one entry per dim", err);
    if (x.rank == 0) return nn_alias(p, xi, node->outputs[0], 0, NULL, NULL, err) < 0 ? -1 : 0;
    dnnl_dims_t out, strides, in_strides;
    in_strides[x.rank - 1] = 1;
    for (int d = x.rank - 1; d > 0; d--)
        in_strides[d - 1] = in_strides[d] * x.dims[d];
    unsigned char seen[NN_MAX_RANK] = {0};
    for (int d = 0; d < x.rank; d++) {
        int64_t from = perm ? perm[d] : x.rank - 1 - d;
        if (from < 0 || from >= x.rank || seen[from])
            return nn_invalid(node, "perm is not a permutation", err);
        seen[from] = 1;
        out[d] = x.dims[from];
        strides[d] = in_strides[from];
    }
    dnnl_memory_desc_t view;
    if (nn_dnnl_check(dnnl_memory_desc_init_by_strides(&view, x.rank, out, dnnl_f32, strides),
                      "dnnl_memory_desc_init_by_strides", node, err))
        return -1;
    int vi = nn_alias(p, xi, x.name, x.rank, out, &view, err);
    if (vi < 0) return -1;
    int yi = nn_to_plain(p, vi, err);
    if (yi < 0) return -1;
    /* The plain copy is the node's output, under its name and lifetime. */
    p->values[yi].name = node->outputs[0];
    p->values[yi].last_use = nn_last_use(p, node->outputs[0]);
    if (p->slots[p->values[yi].slot].last_use < p->values[yi].last_use)
        p->slots[p->values[yi].slot].last_use = p->values[yi].last_use;
    return 0;
}

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

/* Pad on plain data, one output element at a time: rare in image models, so kept simple. */
static int run_pad(const struct nn_plan *p, const struct nn_step *s)
{
    const struct nn_value *x = &p->values[s->in], *y = &p->values[s->out];
    const float *src = nn_value_data(p, s->in);
    float *dst = nn_value_data(p, s->out);
    int rank = x->rank;
    const int64_t *begin = s->params;
    enum pad_mode mode = (enum pad_mode)s->params[NN_MAX_RANK];
    int64_t at[NN_MAX_RANK] = {0};
    for (size_t i = 0; i < y->count; i++) {
        size_t offset = 0;
        int outside = 0;
        for (int d = 0; d < rank; d++) {
            int64_t c = at[d] - begin[d], n = x->dims[d];
            if (c < 0 || c >= n) {
                if (mode == PAD_CONSTANT)
                    outside = 1;
                else if (mode == PAD_EDGE)
                    c = c < 0 ? 0 : n - 1;
                else
                    c = c < 0 ? -c : 2 * (n - 1) - c;
            }
            offset = offset * (size_t)n + (size_t)(outside ? 0 : c);
        }
        dst[i] = outside ? s->fvalue : src[offset];
        for (int d = rank - 1; d >= 0 && ++at[d] == y->dims[d]; d--)
            at[d] = 0;
    }
    return 0;
}

static int compile_pad(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    const struct nn_attr *m = nn_node_attr(node, "mode");
    const char *mode = m && m->type == NN_ATTR_STRING ? m->s : "constant";
    enum pad_mode pm = !strcmp(mode, "constant")  ? PAD_CONSTANT
                       : !strcmp(mode, "reflect") ? PAD_REFLECT
                       : !strcmp(mode, "edge")    ? PAD_EDGE
                                                  : (enum pad_mode) - 1;
    if ((int)pm < 0) return nn_unsupported(node, "mode must be constant, reflect or edge", err);
    int xi = nn_input(p, node, 0, err);
    if (xi < 0 || (xi = nn_to_plain(p, xi, err)) < 0) return -1;
    struct nn_value x = p->values[xi];
    int64_t pads[2 * NN_MAX_RANK];
    size_t n = 0;
    const int64_t *attr = nn_attr_ints(node, "pads", &n);
    float value = nn_attr_float(node, "value", 0.0f);
    if (attr && n <= 2 * NN_MAX_RANK) memcpy(pads, attr, n * sizeof *pads);
    for (size_t k = 1; !attr && k < 3; k++) {
        if (!nn_has_input(node, k)) continue;
        int id = nn_input(p, node, k, err);
        if (id < 0) return -1;
        const struct nn_value *v = &p->values[id];
        if (!v->is_const) return nn_unsupported(node, "pads and value must be constants", err);
        if (k == 2 && (v->dtype != NN_FLOAT || v->count != 1))
            return nn_unsupported(node, "constant_value must be a float scalar", err);
        if (k == 2) value = *(const float *)v->data;
        if (k == 1 && (v->dtype != NN_INT64 || v->count > 2 * NN_MAX_RANK))
            return nn_invalid(node, "pads must be int64, two per dim", err);
        if (k == 1) memcpy(pads, v->data, (n = v->count) * sizeof *pads);
    }
    if (n != 2 * (size_t)x.rank) return nn_invalid(node, "pads must give two values per dim", err);
    int64_t out[NN_MAX_RANK];
    for (int d = 0; d < x.rank; d++) {
        out[d] = x.dims[d] + pads[d] + pads[x.rank + d];
        int64_t most = pm == PAD_REFLECT ? x.dims[d] - 1 : INT64_MAX;
        if (out[d] < 0 || (pm != PAD_CONSTANT && x.dims[d] == 0 && out[d] > 0) || pads[d] > most ||
            pads[x.rank + d] > most)
            return nn_invalid(node, "the pads do not fit the input and mode", err);
    }
    int yi = nn_activation(p, node->outputs[0], x.rank, out, NULL, err);
    struct nn_step *s = yi < 0 ? NULL : nn_add_step(p, err);
    if (!s) return -1;
    s->host = run_pad;
    s->in = xi;
    s->out = yi;
    memcpy(s->params, pads, (size_t)x.rank * sizeof *pads);
    s->params[NN_MAX_RANK] = pm;
    s->fvalue = value;
    return 0;
}

/* Reshape, Flatten, Squeeze and Unsqueeze view the plain bytes with another shape; Identity,
 * Dropout (inference) and Cast to float (values are float inside) keep the layout too. */
static int compile_view(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    const char *op = node->op_type;
    if (!strcmp(op, "Dropout") && node->n_outputs > 1 && node->outputs[1][0])
        return nn_unsupported(node, "the mask output is not supported", err);
    if (!strcmp(op, "Cast") && nn_attr_int(node, "to", 0) != NN_FLOAT)
        return nn_unsupported(node, "only a cast to float (to=1) is supported", err);
    int xi = nn_input(p, node, 0, err);
    if (xi < 0) return -1;
    int same = !strcmp(op, "Identity") || !strcmp(op, "Dropout") || !strcmp(op, "Cast");
    if (same) {
        struct nn_value x = p->values[xi];
        return nn_alias(p, xi, node->outputs[0], x.rank, x.dims, &x.md, err) < 0 ? -1 : 0;
    }
    if ((xi = nn_to_plain(p, xi, err)) < 0) return -1;
    struct nn_value x = p->values[xi];
    int rank;
    int64_t out[NN_MAX_RANK];
    if (nn_reshape_dims(p, node, &x, &rank, out, err)) return -1;
    return nn_alias(p, xi, node->outputs[0], rank, out, NULL, err) < 0 ? -1 : 0;
}

static int run_gather(const struct nn_plan *p, const struct nn_step *s)
{
    nn_gather_rows(nn_value_data(p, s->in), sizeof(float), &p->values[s->in], (int)s->params[0],
                   &p->values[s->params[1]], nn_value_data(p, s->out));
    return 0;
}

/* Gather of an activation along constant indices (shape arithmetic on constants is folded). */
static int compile_gather(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int xi = nn_input(p, node, 0, err), ii = xi < 0 ? -1 : nn_input(p, node, 1, err);
    if (ii < 0 || (xi = nn_to_plain(p, xi, err)) < 0) return -1;
    int axis, rank;
    int64_t dims[NN_MAX_RANK];
    if (nn_gather_dims(p, node, &p->values[xi], &p->values[ii], &axis, &rank, dims, err)) return -1;
    int yi = nn_activation(p, node->outputs[0], rank, dims, NULL, err);
    struct nn_step *s = yi < 0 ? NULL : nn_add_step(p, err);
    if (!s) return -1;
    s->host = run_gather;
    s->in = xi;
    s->out = yi;
    s->params[0] = axis;
    s->params[1] = ii;
    return 0;
}

typedef int (*compile_fn)(struct nn_plan *p, const struct nn_node *node, struct eng_error *err);

static const struct {
    const char *op_type;
    compile_fn compile;
} ops[] = {
    {"Conv", compile_conv},
    {"BatchNormalization", compile_batchnorm},
    {"Relu", compile_activation},
    {"LeakyRelu", compile_activation},
    {"Clip", compile_activation},
    {"Sigmoid", compile_activation},
    {"HardSigmoid", compile_activation},
    {"HardSwish", compile_activation},
    {"MaxPool", compile_pool},
    {"AveragePool", compile_pool},
    {"GlobalAveragePool", compile_pool},
    {"GlobalMaxPool", compile_pool},
    {"LRN", compile_lrn},
    {"Gemm", compile_gemm},
    {"MatMul", compile_matmul},
    {"Add", compile_binary},
    {"Mul", compile_binary},
    {"Softmax", compile_softmax},
    {"Concat", compile_concat},
    {"Transpose", compile_transpose},
    {"Pad", compile_pad},
    {"Flatten", compile_view},
    {"Reshape", compile_view},
    {"Squeeze", compile_view},
    {"Unsqueeze", compile_view},
    {"Identity", compile_view},
    {"Dropout", compile_view},
    {"Cast", compile_view},
    {"Gather", compile_gather},
    /* Always folded (fold.c): their inputs' values or shapes are known at compile time. */
    {"Constant", NULL},
    {"Shape", NULL},
};

static int op_index(const struct nn_node *node)
{
    if (node->domain[0] && strcmp(node->domain, "ai.onnx")) return -1;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(node->op_type, ops[k].op_type)) return (int)k;
    return -1;
}

int nn_op_supported(const struct nn_node *node)
{
    return op_index(node) >= 0;
}

int nn_compile_node(struct nn_plan *p, struct eng_error *err)
{
    const struct nn_node *node = nn_graph_node(p->g, (size_t)p->node);
    int k = op_index(node);
    if (k < 0 || !ops[k].compile) return nn_unsupported(node, "not supported here", err);
    return ops[k].compile(p, node, err);
}
