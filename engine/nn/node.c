/* What a node says: its attributes, its inputs' presence, axes made non-negative, and the errors
 * that name it. Below everything else in the executor: these read only the IR. */
#include "nn/internal.h"

int nn_unsupported(const struct nn_node *node, const char *what, struct eng_error *err)
{
    return eng_fail(err, ENG_UNSUPPORTED, "node '%s' (%s): %s", node->name, node->op_type, what);
}

int nn_invalid(const struct nn_node *node, const char *what, struct eng_error *err)
{
    return eng_fail(err, ENG_INVALID, "node '%s' (%s): %s", node->name, node->op_type, what);
}

int64_t nn_attr_int(const struct nn_node *node, const char *name, int64_t dflt)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    return a && a->type == NN_ATTR_INT ? a->i : dflt;
}

float nn_attr_float(const struct nn_node *node, const char *name, float dflt)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    return a && a->type == NN_ATTR_FLOAT ? a->f : dflt;
}

const int64_t *nn_attr_ints(const struct nn_node *node, const char *name, size_t *n)
{
    const struct nn_attr *a = nn_node_attr(node, name);
    if (!a || a->type != NN_ATTR_INTS) {
        *n = 0;
        return NULL;
    }
    *n = a->count;
    return a->ints;
}

int nn_has_input(const struct nn_node *node, size_t k)
{
    return k < node->n_inputs && node->inputs[k][0];
}

int nn_norm_axis(const struct nn_node *node, int64_t axis, int rank, int inclusive,
                 struct eng_error *err)
{
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank - !inclusive) return nn_invalid(node, "axis is out of range", err);
    return (int)axis;
}
