/* The ops that only move elements: Concat (a copy forward, slices of the gradient backward) and
 * the views, Flatten, Reshape, Squeeze, Unsqueeze and Identity, whose output shares its input's
 * floats and gradient (nn's shape rules give the shape), so they have nothing to run. */
#include <string.h>

#include "train/internal.h"

static int compile_concat(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    s->skips_inputs = s->skips_output = true;
    if (node->n_inputs < 1 || node->n_inputs > TRAIN_MAX_INPUTS)
        return nn_unsupported(node, "1 to 64 inputs are supported", err);
    s->n_in = (int)node->n_inputs;
    for (int k = 0; k < s->n_in; k++)
        if ((s->in[k] = train_input(t, node, (size_t)k, TRAIN_ACTIVATION, err)) < 0) return -1;
    int axis;
    int64_t out[NN_MAX_RANK];
    if (nn_concat_dims(t->np, node, s->in, s->n_in, &axis, out, err)) return -1;
    s->q[0] = axis;
    return (s->out =
                train_value(t, node->outputs[0], train_val(t, s->in[0])->rank, out, NULL, err)) < 0
               ? -1
               : 0;
}

/* Forward copies each input's rows into the output; backward adds the output gradient's rows
 * back into each input's gradient. */
static void concat_rows(struct train_plan *t, struct train_step *s, int backward)
{
    const struct nn_value *y = train_val(t, s->out);
    int axis = (int)s->q[0];
    size_t outer = nn_dims_count(axis, y->dims);
    size_t inner = nn_dims_count(y->rank - axis - 1, y->dims + axis + 1);
    size_t out_row = (size_t)y->dims[axis] * inner, offset = 0;
    for (int k = 0; k < s->n_in; k++) {
        size_t row = (size_t)train_val(t, s->in[k])->dims[axis] * inner;
        float *x = backward ? t->grad[s->in[k]] : t->data[s->in[k]];
        float *o = backward ? t->grad[s->out] : t->data[s->out];
        for (size_t i = 0; x && i < outer; i++) {
            if (backward)
                train_accumulate(x + i * row, o + i * out_row + offset, row);
            else
                memcpy(o + i * out_row + offset, x + i * row, row * sizeof *x);
        }
        offset += row;
    }
}

static int forward_concat(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    concat_rows(t, s, 0);
    return 0;
}

static int backward_concat(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)err;
    concat_rows(t, s, 1);
    return 0;
}

const struct train_op train_concat_op = {compile_concat, forward_concat, backward_concat};

static int compile_view(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    s->skips_inputs = s->skips_output = true; /* its backward is its input's */
    int xi = train_input(t, node, 0, TRAIN_ACTIVATION, err);
    if (xi < 0) return -1;
    struct nn_value x = *train_val(t, xi);
    int rank = x.rank;
    int64_t out[NN_MAX_RANK];
    memcpy(out, x.dims, sizeof out);
    if (strcmp(node->op_type, "Identity") && nn_reshape_dims(t->np, node, &x, &rank, out, err))
        return -1;
    return (s->out = train_alias(t, xi, node->outputs[0], rank, out, NULL, err)) < 0 ? -1 : 0;
}

static int run_nothing(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    (void)t, (void)s, (void)err;
    return 0;
}

const struct train_op train_view_op = {compile_view, run_nothing, run_nothing};
