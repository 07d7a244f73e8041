/* Shape arithmetic at compile time. torch.onnx writes `x.view(x.size(0), -1)` as Shape -> Gather
 * -> Unsqueeze -> Concat -> Reshape; with static input shapes every one of those values is known
 * when the plan is built, so they become constants and only the Reshape remains, as a view. The
 * shape rules themselves are shape.c's, which the op compilers apply to activations. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

static size_t elem_size(enum nn_dtype dtype)
{
    return dtype == NN_INT64 ? sizeof(int64_t) : sizeof(float);
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
    const int64_t *dims = p->values[id].dims + start;
    return nn_constant_copy(p, node->outputs[0], NN_INT64, 1, &n, dims, err) < 0 ? -1 : 1;
}

static int fold_gather(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int di, ii, c;
    if ((c = nn_const_input(p, node, 0, &di, err)) <= 0) return c;
    if ((ii = nn_input(p, node, 1, err)) < 0) return -1;
    struct nn_value d = p->values[di], ix = p->values[ii];
    int axis, rank;
    int64_t dims[NN_MAX_RANK];
    if (nn_gather_dims(p, node, &d, &ix, &axis, &rank, dims, err)) return -1;
    char *out = malloc(nn_dims_count(rank, dims) * elem_size(d.dtype) + 1);
    if (!out) return eng_no_memory(err);
    nn_gather_rows(d.data, elem_size(d.dtype), &d, axis, &ix, out);
    return nn_constant(p, node->outputs[0], d.dtype, rank, dims, out, 1, err) < 0 ? -1 : 1;
}

/* Reshape, Flatten, Squeeze, Unsqueeze and Identity of a constant: the same bytes, a new shape. */
static int fold_view(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int id, c = nn_const_input(p, node, 0, &id, err);
    if (c <= 0) return c;
    struct nn_value x = p->values[id];
    int rank = x.rank;
    int64_t dims[NN_MAX_RANK];
    memcpy(dims, x.dims, sizeof dims);
    if (strcmp(node->op_type, "Identity") && nn_reshape_dims(p, node, &x, &rank, dims, err))
        return -1;
    return nn_alias(p, id, node->outputs[0], rank, dims, NULL, err) < 0 ? -1 : 1;
}

static int fold_concat(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int ids[64];
    if (node->n_inputs < 1 || node->n_inputs > 64) return 0;
    for (size_t k = 0; k < node->n_inputs; k++) {
        int c = nn_const_input(p, node, k, &ids[k], err);
        if (c <= 0) return c;
    }
    struct nn_value x0 = p->values[ids[0]];
    int axis;
    int64_t dims[NN_MAX_RANK];
    if (nn_concat_dims(p, node, ids, (int)node->n_inputs, &axis, dims, err)) return -1;
    for (size_t k = 0; k < node->n_inputs; k++)
        if (p->values[ids[k]].dtype != x0.dtype)
            return nn_invalid(node, "the inputs' element types differ", err);
    size_t outer = nn_dims_count(axis, x0.dims), es = elem_size(x0.dtype);
    size_t inner = nn_dims_count(x0.rank - axis - 1, x0.dims + axis + 1) * es;
    char *out = malloc(nn_dims_count(x0.rank, dims) * es + 1), *at = out;
    if (!out) return eng_no_memory(err);
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < node->n_inputs; k++) {
            const struct nn_value *v = &p->values[ids[k]];
            size_t row = (size_t)v->dims[axis] * inner;
            memcpy(at, (const char *)v->data + o * row, row);
            at += row;
        }
    return nn_constant(p, node->outputs[0], x0.dtype, x0.rank, dims, out, 1, err) < 0 ? -1 : 1;
}

static int fold_cast(struct nn_plan *p, const struct nn_node *node, struct eng_error *err)
{
    int id, c = nn_const_input(p, node, 0, &id, err);
    if (c <= 0) return c;
    int64_t to = nn_attr_int(node, "to", 0);
    if (to != NN_FLOAT && to != NN_INT64)
        return nn_unsupported(node, "only casts to float and int64 are supported", err);
    struct nn_value x = p->values[id];
    void *out = malloc(x.count * elem_size((enum nn_dtype)to) + 1);
    if (!out) return eng_no_memory(err);
    for (size_t i = 0; i < x.count; i++) {
        double v = x.dtype == NN_INT64 ? (double)((const int64_t *)x.data)[i]
                                       : (double)((const float *)x.data)[i];
        if (to == NN_FLOAT) {
            ((float *)out)[i] = (float)v;
        } else if (x.dtype == NN_INT64) {
            /* Not through double, which rounds INT64_MAX (Slice's "to the end") out of range. */
            ((int64_t *)out)[i] = ((const int64_t *)x.data)[i];
        } else if (nn_to_int64(v, &((int64_t *)out)[i])) {
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
    if (!strcmp(op, "Constant")) return nn_constant_node(p, node, err) < 0 ? -1 : 1;
    if (!strcmp(op, "Shape")) return fold_shape(p, node, err);
    if (!strcmp(op, "Gather")) return fold_gather(p, node, err);
    if (!strcmp(op, "Concat")) return fold_concat(p, node, err);
    if (!strcmp(op, "Cast")) return fold_cast(p, node, err);
    if (!strcmp(op, "Reshape") || !strcmp(op, "Flatten") || !strcmp(op, "Squeeze") ||
        !strcmp(op, "Unsqueeze") || !strcmp(op, "Identity"))
        return fold_view(p, node, err);
    return 0;
}
