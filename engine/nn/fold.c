/* Shape arithmetic at compile time. torch.onnx writes `x.view(x.size(0), -1)` as Shape -> Gather
 * -> Unsqueeze -> Concat -> Reshape; with static input shapes every one of those values is known
 * when the plan is built, so they become constants and only the Reshape remains, as a view. The
 * same rules give the output shapes of Reshape, Flatten, Squeeze and Unsqueeze on activations. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

static size_t elem_size(enum nn_dtype dtype)
{
    return dtype == NN_INT64 ? sizeof(int64_t) : sizeof(float);
}

/* v as int64 in *out: 0, or -1 when v is NaN or past int64's range, where C's conversion is
 * undefined (a model's float constants are the client's to choose). */
static int to_int64(double v, int64_t *out)
{
    if (!(v >= -0x1p63 && v < 0x1p63)) return -1;
    *out = (int64_t)v;
    return 0;
}

/* 1 when input k is a constant (*id set), 0 when it is an activation, -1 with err. */
static int const_input(struct nn_plan *p, const struct nn_node *node, size_t k, int *id,
                       struct eng_error *err)
{
    if ((*id = nn_input(p, node, k, err)) < 0) return -1;
    return p->values[*id].is_const;
}

/* The elements of a constant as int64, whatever its type; -1 (err) if it holds more than max or
 * a float past int64's range. */
static int ints_of(const struct nn_plan *p, const struct nn_node *node, int id, int64_t *out,
                   size_t max, size_t *n, struct eng_error *err)
{
    const struct value *v = &p->values[id];
    if (v->count > max) return nn_invalid(node, "a shape or axes input has too many elements", err);
    for (size_t i = 0; i < v->count; i++) {
        if (v->dtype == NN_INT64)
            out[i] = ((const int64_t *)v->data)[i];
        else if (to_int64(((const float *)v->data)[i], &out[i]))
            return nn_invalid(node, "a shape or axes value is out of int64's range", err);
    }
    *n = v->count;
    return 0;
}

/* A new constant output holding a copy of count elements of data. */
static int emit(struct nn_plan *p, const struct nn_node *node, enum nn_dtype dtype, int rank,
                const int64_t *dims, const void *data, struct eng_error *err)
{
    size_t bytes = nn_dims_count(rank, dims) * elem_size(dtype);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return nn_no_memory(err);
    if (bytes) memcpy(copy, data, bytes);
    return nn_constant(p, node->outputs[0], dtype, rank, dims, copy, 1, err) < 0 ? -1 : 1;
}

static int fold_constant_node(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    const struct nn_attr *a = nn_node_attr(node, "value");
    if (a && a->type == NN_ATTR_TENSOR) {
        if (a->t.info.dtype != NN_FLOAT && a->t.info.dtype != NN_INT64)
            return nn_unsupported(node, "only float and int64 values are supported", err);
        return emit(p, node, a->t.info.dtype, a->t.info.rank, a->t.info.dims, a->t.data, err);
    }
    int64_t one = 1;
    if ((a = nn_node_attr(node, "value_float")) && a->type == NN_ATTR_FLOAT)
        return emit(p, node, NN_FLOAT, 0, NULL, &a->f, err);
    if ((a = nn_node_attr(node, "value_int")) && a->type == NN_ATTR_INT)
        return emit(p, node, NN_INT64, 0, NULL, &a->i, err);
    if ((a = nn_node_attr(node, "value_floats")) && a->type == NN_ATTR_FLOATS) {
        one = (int64_t)a->count;
        return emit(p, node, NN_FLOAT, 1, &one, a->floats, err);
    }
    if ((a = nn_node_attr(node, "value_ints")) && a->type == NN_ATTR_INTS) {
        one = (int64_t)a->count;
        return emit(p, node, NN_INT64, 1, &one, a->ints, err);
    }
    return nn_unsupported(node, "only tensor, float and int values are supported", err);
}

static int fold_shape(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int id = nn_input(p, node, 0, err);
    if (id < 0) return -1;
    int rank = p->values[id].rank;
    int64_t start = nn_attr_int(node, "start", 0), end = nn_attr_int(node, "end", rank);
    /* Opset 15's slice of the shape, clamped as the spec says. */
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < start ? start : end > rank ? rank : end;
    int64_t n = end - start;
    return emit(p, node, NN_INT64, 1, &n, p->values[id].dims + start, err);
}

int nn_gather_dims(const struct nn_plan *p, const struct nn_node *node, const struct value *d,
                   const struct value *ix, int *axis, int *rank, int64_t *dims,
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

void nn_gather_rows(const void *data, size_t elem, const struct value *d, int axis,
                    const struct value *ix, void *out)
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

static int fold_gather(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int di, ii, c;
    if ((c = const_input(p, node, 0, &di, err)) <= 0) return c;
    if ((ii = nn_input(p, node, 1, err)) < 0) return -1;
    struct value d = p->values[di], ix = p->values[ii];
    int axis, rank;
    int64_t dims[NN_MAX_RANK];
    if (nn_gather_dims(p, node, &d, &ix, &axis, &rank, dims, err)) return -1;
    char *out = malloc(nn_dims_count(rank, dims) * elem_size(d.dtype) + 1);
    if (!out) return nn_no_memory(err);
    nn_gather_rows(d.data, elem_size(d.dtype), &d, axis, &ix, out);
    return nn_constant(p, node->outputs[0], d.dtype, rank, dims, out, 1, err) < 0 ? -1 : 1;
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
    int id, c = const_input(p, node, 1, &id, err);
    if (c < 0) return -1;
    if (!c) return nn_unsupported(node, "axes must be a constant", err);
    return ints_of(p, node, id, axes, NN_MAX_RANK, n, err);
}

int nn_squeeze_dims(struct nn_plan *p, const struct nn_node *node, const struct value *x, int *rank,
                    int64_t *out, struct eng_error *err)
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

int nn_reshape_dims(struct nn_plan *p, const struct nn_node *node, const struct value *x, int *rank,
                    int64_t *out, struct eng_error *err)
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
    int id, c = const_input(p, node, 1, &id, err);
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

/* Reshape, Flatten, Squeeze, Unsqueeze and Identity of a constant: the same bytes, a new shape. */
static int fold_view(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int id, c = const_input(p, node, 0, &id, err);
    if (c <= 0) return c;
    struct value x = p->values[id];
    int rank = x.rank;
    int64_t dims[NN_MAX_RANK];
    memcpy(dims, x.dims, sizeof dims);
    if (strcmp(node->op_type, "Identity") && nn_reshape_dims(p, node, &x, &rank, dims, err))
        return -1;
    return nn_alias(p, id, node->outputs[0], rank, dims, NULL, err) < 0 ? -1 : 1;
}

int nn_concat_dims(const struct nn_plan *p, const struct nn_node *node, const int *ids, int n,
                   int *axis, int64_t *out, struct eng_error *err)
{
    const struct value *x0 = &p->values[ids[0]];
    if (!nn_node_attr(node, "axis")) return nn_invalid(node, "axis is required", err);
    if ((*axis = nn_norm_axis(node, nn_attr_int(node, "axis", 0), x0->rank, 0, err)) < 0) return -1;
    memcpy(out, x0->dims, (size_t)x0->rank * sizeof *out);
    out[*axis] = 0;
    for (int k = 0; k < n; k++) {
        const struct value *v = &p->values[ids[k]];
        for (int d = 0; d < x0->rank; d++)
            if (v->rank != x0->rank || (d != *axis && v->dims[d] != x0->dims[d]))
                return nn_invalid(node, "the inputs differ outside the concat axis", err);
        out[*axis] += v->dims[*axis];
    }
    return 0;
}

static int fold_concat(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int ids[64];
    if (node->n_inputs < 1 || node->n_inputs > 64) return 0;
    for (size_t k = 0; k < node->n_inputs; k++) {
        int c = const_input(p, node, k, &ids[k], err);
        if (c <= 0) return c;
    }
    struct value x0 = p->values[ids[0]];
    int axis;
    int64_t dims[NN_MAX_RANK];
    if (nn_concat_dims(p, node, ids, (int)node->n_inputs, &axis, dims, err)) return -1;
    for (size_t k = 0; k < node->n_inputs; k++)
        if (p->values[ids[k]].dtype != x0.dtype)
            return nn_invalid(node, "the inputs' element types differ", err);
    size_t outer = nn_dims_count(axis, x0.dims), es = elem_size(x0.dtype);
    size_t inner = nn_dims_count(x0.rank - axis - 1, x0.dims + axis + 1) * es;
    char *out = malloc(nn_dims_count(x0.rank, dims) * es + 1), *at = out;
    if (!out) return nn_no_memory(err);
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < node->n_inputs; k++) {
            const struct value *v = &p->values[ids[k]];
            size_t row = (size_t)v->dims[axis] * inner;
            memcpy(at, (const char *)v->data + o * row, row);
            at += row;
        }
    return nn_constant(p, node->outputs[0], x0.dtype, x0.rank, dims, out, 1, err) < 0 ? -1 : 1;
}

static int fold_cast(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int id, c = const_input(p, node, 0, &id, err);
    if (c <= 0) return c;
    int64_t to = nn_attr_int(node, "to", 0);
    if (to != NN_FLOAT && to != NN_INT64)
        return nn_unsupported(node, "only casts to float and int64 are supported", err);
    struct value x = p->values[id];
    void *out = malloc(x.count * elem_size((enum nn_dtype)to) + 1);
    if (!out) return nn_no_memory(err);
    for (size_t i = 0; i < x.count; i++) {
        double v = x.dtype == NN_INT64 ? (double)((const int64_t *)x.data)[i]
                                       : (double)((const float *)x.data)[i];
        if (to == NN_FLOAT) {
            ((float *)out)[i] = (float)v;
        } else if (x.dtype == NN_INT64) {
            /* Not through double, which rounds INT64_MAX (Slice's "to the end") out of range. */
            ((int64_t *)out)[i] = ((const int64_t *)x.data)[i];
        } else if (to_int64(v, &((int64_t *)out)[i])) {
            free(out);
            return nn_invalid(node, "a value is out of int64's range", err);
        }
    }
    return nn_constant(p, node->outputs[0], (enum nn_dtype)to, x.rank, x.dims, out, 1, err) < 0 ? -1
                                                                                                : 1;
}

int nn_fold_constant(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    const char *op = node->op_type;
    if (!strcmp(op, "Constant")) return fold_constant_node(p, node, err);
    if (!strcmp(op, "Shape")) return fold_shape(p, node, err);
    if (!strcmp(op, "Gather")) return fold_gather(p, node, err);
    if (!strcmp(op, "Concat")) return fold_concat(p, node, err);
    if (!strcmp(op, "Cast")) return fold_cast(p, node, err);
    if (!strcmp(op, "Reshape") || !strcmp(op, "Flatten") || !strcmp(op, "Squeeze") ||
        !strcmp(op, "Unsqueeze") || !strcmp(op, "Identity"))
        return fold_view(p, node, err);
    return 0;
}
