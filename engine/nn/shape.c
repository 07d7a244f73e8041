/* The output shapes of the ops that only move elements (Reshape, Flatten, Squeeze, Unsqueeze,
 * Gather, Concat), computed once for both their callers: folding applies them to constants, the
 * op compilers to activations. Their shape and axes inputs must be constants. */
#include <string.h>

#include "nn/internal.h"

int nn_to_int64(double v, int64_t *out)
{
    if (!(v >= -0x1p63 && v < 0x1p63)) return -1;
    *out = (int64_t)v;
    return 0;
}

/* The elements of a constant as int64, whatever its type; -1 (err) if it holds more than max or
 * a float past int64's range. */
static int ints_of(const struct nn_plan *p, const struct nn_node *node, int id, int64_t *out,
                   size_t max, size_t *n, struct eng_error *err)
{
    const struct nn_value *v = &p->values[id];
    if (v->count > max) return nn_invalid(node, "a shape or axes input has too many elements", err);
    for (size_t i = 0; i < v->count; i++) {
        if (v->dtype == NN_INT64)
            out[i] = ((const int64_t *)v->data)[i];
        else if (nn_to_int64(((const float *)v->data)[i], &out[i]))
            return nn_invalid(node, "a shape or axes value is out of int64's range", err);
    }
    *n = v->count;
    return 0;
}

int nn_gather_dims(const struct nn_plan *p, const struct nn_node *node, const struct nn_value *d,
                   const struct nn_value *ix, int *axis, int *rank, int64_t *dims,
                   struct eng_error *err)
{
    if (!ix->is_const || ix->dtype != NN_INT64)
        return nn_unsupported(node, "indices must be an int64 constant", err);
    if ((*axis = nn_norm_axis(node, nn_attr_int(node, "axis", 0), d->rank, 0, err)) < 0) return -1;
    if (d->rank + ix->rank - 1 > NN_MAX_RANK)
        return nn_invalid(node, "the result's rank is too high", err);
    const int64_t *idx = ix->data;
    for (size_t j = 0; j < ix->count; j++)
        if (idx[j] < -d->dims[*axis] || idx[j] >= d->dims[*axis])
            return nn_invalid(node, "an index is out of range", err);
    *rank = 0;
    for (int k = 0; k < *axis; k++)
        dims[(*rank)++] = d->dims[k];
    for (int k = 0; k < ix->rank; k++)
        dims[(*rank)++] = ix->dims[k];
    for (int k = *axis + 1; k < d->rank; k++)
        dims[(*rank)++] = d->dims[k];
    (void)p;
    return 0;
}

void nn_gather_rows(const void *data, size_t elem, const struct nn_value *d, int axis,
                    const struct nn_value *ix, void *out)
{
    size_t outer = nn_dims_count(axis, d->dims);
    size_t row = nn_dims_count(d->rank - axis - 1, d->dims + axis + 1) * elem;
    const int64_t *idx = ix->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < ix->count; j++) {
            int64_t k = idx[j] < 0 ? idx[j] + d->dims[axis] : idx[j];
            memcpy((char *)out + (o * ix->count + j) * row,
                   (const char *)data + (o * (size_t)d->dims[axis] + (size_t)k) * row, row);
        }
}

/* The axes of Squeeze or Unsqueeze: the attribute before opset 13, the optional second input
 * (a constant) from then on. *n = 0 when none are given. */
static int squeeze_axes(struct nn_plan *p, const struct nn_node *node, int64_t *axes, size_t *n,
                        struct eng_error *err)
{
    const int64_t *attr = nn_attr_ints(node, "axes", n);
    if (attr) {
        if (*n > NN_MAX_RANK) return nn_invalid(node, "too many axes", err);
        memcpy(axes, attr, *n * sizeof *axes);
        return 0;
    }
    if (!nn_has_input(node, 1)) return 0;
    int id, c = nn_const_input(p, node, 1, &id, err);
    if (c < 0) return -1;
    if (!c) return nn_unsupported(node, "axes must be a constant", err);
    return ints_of(p, node, id, axes, NN_MAX_RANK, n, err);
}

int nn_squeeze_dims(struct nn_plan *p, const struct nn_node *node, const struct nn_value *x,
                    int *rank, int64_t *out, struct eng_error *err)
{
    int64_t axes[NN_MAX_RANK];
    size_t n = 0;
    if (squeeze_axes(p, node, axes, &n, err)) return -1;
    int unsqueeze = !strcmp(node->op_type, "Unsqueeze");
    int out_rank = unsqueeze ? x->rank + (int)n : x->rank;
    if (out_rank > NN_MAX_RANK) return nn_invalid(node, "the result's rank is too high", err);
    unsigned char marked[NN_MAX_RANK] = {0};
    for (size_t k = 0; k < n; k++) {
        int a = nn_norm_axis(node, axes[k], out_rank, 0, err);
        if (a < 0) return -1;
        if (marked[a]) return nn_invalid(node, "an axis is repeated", err);
        if (!unsqueeze && x->dims[a] != 1) return nn_invalid(node, "a squeezed dim is not 1", err);
        marked[a] = 1;
    }
    *rank = 0;
    for (int d = 0, src = 0; d < out_rank; d++) {
        if (unsqueeze) {
            out[(*rank)++] = marked[d] ? 1 : x->dims[src++];
        } else if (!(n ? marked[d] : x->dims[d] == 1)) {
            out[(*rank)++] = x->dims[d];
        }
    }
    return 0;
}

int nn_reshape_dims(struct nn_plan *p, const struct nn_node *node, const struct nn_value *x,
                    int *rank, int64_t *out, struct eng_error *err)
{
    if (!strcmp(node->op_type, "Flatten")) {
        int axis = nn_norm_axis(node, nn_attr_int(node, "axis", 1), x->rank, 1, err);
        if (axis < 0) return -1;
        *rank = 2;
        out[0] = (int64_t)nn_dims_count(axis, x->dims);
        out[1] = (int64_t)nn_dims_count(x->rank - axis, x->dims + axis);
        return 0;
    }
    if (strcmp(node->op_type, "Reshape")) return nn_squeeze_dims(p, node, x, rank, out, err);
    int id, c = nn_const_input(p, node, 1, &id, err);
    if (c < 0) return -1;
    if (!c) return nn_unsupported(node, "the shape must be a constant", err);
    int64_t shape[NN_MAX_RANK];
    size_t n = 0;
    if (ints_of(p, node, id, shape, NN_MAX_RANK, &n, err)) return -1;
    int allowzero = nn_attr_int(node, "allowzero", 0) != 0, infer = -1;
    size_t known = 1;
    for (size_t d = 0; d < n; d++) {
        out[d] = shape[d] == 0 && !allowzero ? (d < (size_t)x->rank ? x->dims[d] : -2) : shape[d];
        if (out[d] == -1 && infer < 0)
            infer = (int)d;
        else if (out[d] < 0 || __builtin_mul_overflow(known, (size_t)out[d], &known))
            return nn_invalid(node, "the shape has a bad dim", err);
    }
    if (infer >= 0) {
        if (!known || x->count % known)
            return nn_invalid(node, "the -1 dim cannot be inferred", err);
        out[infer] = (int64_t)(x->count / known);
        known = x->count;
    }
    if (known != x->count) return nn_invalid(node, "the shape's element count differs", err);
    *rank = (int)n;
    return 0;
}

int nn_concat_dims(const struct nn_plan *p, const struct nn_node *node, const int *ids, int n,
                   int *axis, int64_t *out, struct eng_error *err)
{
    const struct nn_value *x0 = &p->values[ids[0]];
    if (!nn_node_attr(node, "axis")) return nn_invalid(node, "axis is required", err);
    if ((*axis = nn_norm_axis(node, nn_attr_int(node, "axis", 0), x0->rank, 0, err)) < 0) return -1;
    memcpy(out, x0->dims, (size_t)x0->rank * sizeof *out);
    out[*axis] = 0;
    for (int k = 0; k < n; k++) {
        const struct nn_value *v = &p->values[ids[k]];
        for (int d = 0; d < x0->rank; d++)
            if (v->rank != x0->rank || (d != *axis && v->dims[d] != x0->dims[d]))
                return nn_invalid(node, "the inputs differ outside the concat axis", err);
        out[*axis] += v->dims[*axis];
    }
    return 0;
}
