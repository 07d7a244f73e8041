/* Fine-tuning's graph edits (train.h, "Fine-tuning"): a graph copied through a builder, its
 * classifier head found and given new outputs, and the parameters a job's "freeze" names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

#define HEAD_TAIL_MAX    4 /* Softmax, LogSoftmax or Identity nodes after the head */
#define HEAD_CLASSES_MAX 100000

/* A classifier head, as find_head recognises it. */
struct head {
    const struct nn_node *node;    /* the Gemm, or the Add after a MatMul */
    const struct nn_tensor *w, *b; /* b is NULL when the Gemm has none */
    bool w_out_first;              /* W is [N, in] (Gemm with transB 1), else [in, N] */
    /* The values from the head's first output to the graph's output, whose last dim is N. */
    const char *values[HEAD_TAIL_MAX + 2];
    size_t n_values;
};

/* The node that makes value, or NULL (a model input, an initializer). */
static const struct nn_node *producer(const struct nn_graph *g, const char *value)
{
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        for (size_t k = 0; k < node->n_outputs; k++)
            if (!strcmp(node->outputs[k], value)) return node;
    }
    return NULL;
}

/* How many node inputs read value. */
static size_t readers(const struct nn_graph *g, const char *value)
{
    size_t n = 0;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        for (size_t k = 0; k < node->n_inputs; k++)
            n += !strcmp(node->inputs[k], value);
    }
    return n;
}

static const struct nn_tensor *float_initializer(const struct nn_graph *g, const char *name)
{
    const struct nn_tensor *t = nn_graph_initializer(g, name);
    return t && t->info.dtype == NN_FLOAT ? t : NULL;
}

static int64_t int_attr(const struct nn_node *node, const char *name)
{
    const struct nn_attr *at = nn_node_attr(node, name);
    return at && at->type == NN_ATTR_INT ? at->i : 0;
}

static bool is_tail(const struct nn_node *node)
{
    return node->n_inputs == 1 &&
           (!strcmp(node->op_type, "Softmax") || !strcmp(node->op_type, "LogSoftmax") ||
            !strcmp(node->op_type, "Identity"));
}

/* W and B of a Gemm head; 0, or -1 with err set. */
static int gemm_head(const struct nn_graph *g, const struct nn_node *node, struct head *h,
                     struct eng_error *err)
{
    if (int_attr(node, "transA"))
        return eng_fail(err, ENG_UNSUPPORTED, "the head, node '%s' (Gemm), has transA set",
                        node->name);
    h->w_out_first = int_attr(node, "transB") != 0;
    h->w = node->n_inputs >= 2 ? float_initializer(g, node->inputs[1]) : NULL;
    if (node->n_inputs >= 3 && node->inputs[2][0] &&
        !(h->b = float_initializer(g, node->inputs[2])))
        return eng_fail(err, ENG_UNSUPPORTED,
                        "the head, node '%s' (Gemm), adds '%s', which is no float initializer",
                        node->name, node->inputs[2]);
    return 0;
}

/* W and B of an Add(MatMul(x, W), B) head; 0, or -1 with err set. */
static int matmul_head(const struct nn_graph *g, const struct nn_node *node, struct head *h,
                       struct eng_error *err)
{
    for (size_t side = 0; node->n_inputs == 2 && side < 2; side++) {
        const struct nn_node *mm = producer(g, node->inputs[side]);
        const struct nn_tensor *b = float_initializer(g, node->inputs[1 - side]);
        if (!mm || strcmp(mm->op_type, "MatMul") || mm->n_inputs != 2 || !b) continue;
        if (readers(g, node->inputs[side]) != 1)
            return eng_fail(err, ENG_UNSUPPORTED,
                            "the head's MatMul output '%s' is read by other nodes too",
                            node->inputs[side]);
        h->values[h->n_values++] = node->inputs[side];
        h->w = float_initializer(g, mm->inputs[1]);
        h->b = b;
        return 0;
    }
    return eng_fail(err, ENG_UNSUPPORTED,
                    "the head, node '%s' (Add), does not add an initializer to a MatMul's output",
                    node->name);
}

/* Finds g's head (train.h): 0, or -1 with err naming what was found instead. */
static int find_head(const struct nn_graph *g, struct head *h, struct eng_error *err)
{
    memset(h, 0, sizeof *h);
    if (nn_graph_output_count(g) != 1)
        return eng_fail(err, ENG_UNSUPPORTED, "the model has %zu outputs; a new head needs one",
                        nn_graph_output_count(g));
    const char *value = nn_graph_output(g, 0)->name;
    const struct nn_node *node = producer(g, value);
    size_t tail = 0;
    for (; node && is_tail(node); node = producer(g, value), tail++) {
        if (tail == HEAD_TAIL_MAX)
            return eng_fail(err, ENG_UNSUPPORTED,
                            "more than %d Softmax, LogSoftmax or Identity nodes end the model",
                            HEAD_TAIL_MAX);
        h->values[h->n_values++] = value;
        value = node->inputs[0];
        if (readers(g, value) != 1)
            return eng_fail(err, ENG_UNSUPPORTED,
                            "'%s', before the model's last %s, is read by other nodes too", value,
                            node->op_type);
    }
    if (!node)
        return eng_fail(err, ENG_UNSUPPORTED, "'%s' is no node's output: the model has no head",
                        value);
    h->values[h->n_values++] = value;
    h->node = node;
    int rc;
    if (!strcmp(node->op_type, "Gemm"))
        rc = gemm_head(g, node, h, err);
    else if (!strcmp(node->op_type, "Add"))
        rc = matmul_head(g, node, h, err);
    else
        rc = eng_fail(err, ENG_UNSUPPORTED,
                      "'%s' is made by node '%s' (%s); a new head needs a Gemm, or MatMul then "
                      "Add, there",
                      value, node->name, node->op_type);
    if (rc) return -1;
    if (!h->w || h->w->info.rank != 2)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "the head, node '%s' (%s), has no float initializer of rank 2 as its "
                        "weight",
                        node->name, node->op_type);
    int64_t classes = h->w->info.dims[h->w_out_first ? 0 : 1];
    const struct nn_tensor_info *bi = h->b ? &h->b->info : NULL;
    if (bi && !(bi->rank == 1 && bi->dims[0] == classes) &&
        !(bi->rank == 2 && bi->dims[0] == 1 && bi->dims[1] == classes))
        return eng_fail(err, ENG_UNSUPPORTED, "the head's bias '%s' is not [%lld] or [1, %lld]",
                        bi->name, (long long)classes, (long long)classes);
    if (readers(g, h->w->info.name) != 1 || (h->b && readers(g, h->b->info.name) != 1))
        return eng_fail(err, ENG_UNSUPPORTED,
                        "the head's weight or bias is read by other nodes too, so it cannot be "
                        "replaced alone");
    return 0;
}

static bool in_head(const struct head *h, const char *value)
{
    for (size_t i = 0; h && i < h->n_values; i++)
        if (!strcmp(h->values[i], value)) return true;
    return false;
}

typedef void (*add_value_fn)(struct nn_builder *b, const char *name, enum nn_dtype dtype, int rank,
                             const int64_t *dims, const char *const *dim_params);

/* g's values of one kind into b, those of the head with classes as their last dim. */
static void copy_values(struct nn_builder *b, const struct nn_graph *g, enum nn_values which,
                        const struct head *h, int classes)
{
    static const add_value_fn add[] = {
        [NN_VALUES_INPUT] = nn_builder_input,
        [NN_VALUES_OUTPUT] = nn_builder_output,
        [NN_VALUES_INFO] = nn_builder_value_info,
    };
    for (size_t i = 0; i < nn_graph_value_count(g, which); i++) {
        const char *const *params;
        const struct nn_tensor_info *v = nn_graph_value(g, which, i, &params);
        int64_t dims[NN_MAX_RANK];
        const char *names[NN_MAX_RANK];
        for (int d = 0; d < v->rank; d++) {
            dims[d] = v->dims[d];
            names[d] = params[d];
        }
        if (v->rank > 0 && in_head(h, v->name)) {
            dims[v->rank - 1] = classes;
            names[v->rank - 1] = NULL;
        }
        add[which](b, v->name, v->dtype, v->rank, dims, names);
    }
}

/* A new head tensor shaped as t with classes as its dim class_dim, drawn as nn.Linear's
 * parameters from stream (seed, 1, stream), into b. */
static void add_fresh(struct nn_builder *b, const struct nn_tensor *t, int class_dim, int classes,
                      double fan_in, uint64_t seed, uint32_t stream)
{
    int64_t dims[NN_MAX_RANK];
    size_t count = 1;
    for (int d = 0; d < t->info.rank; d++) {
        dims[d] = d == class_dim ? classes : t->info.dims[d];
        count *= (size_t)dims[d];
    }
    float *data = malloc(count * sizeof *data);
    struct rng r;
    rng_init(&r, seed, 1, stream, 0);
    for (size_t i = 0; data && i < count; i++)
        data[i] = zoo_draw(&r, ZOO_TORCH_DEFAULT, fan_in, 0);
    nn_builder_initializer_owned(b, t->info.name, NN_FLOAT, t->info.rank, dims, data);
}

/* Whether node is one of the training engine's own ops, the identity in eval mode. */
static bool is_training_noise(const struct nn_node *node)
{
    return !strcmp(node->domain, TRAIN_DOMAIN) && !strcmp(node->op_type, "StochasticDepth");
}

/* g through a builder, with h's weight and bias redrawn for classes when h is not NULL, and the
 * training engine's own ops written as Identity when inference. */
static struct nn_graph *copy_graph(const struct nn_graph *g, const struct head *h, int classes,
                                   uint64_t seed, bool inference, struct eng_error *err)
{
    struct nn_builder *b = nn_builder_like(g);
    if (!b) {
        eng_no_memory(err);
        return NULL;
    }
    copy_values(b, g, NN_VALUES_INPUT, h, classes);
    copy_values(b, g, NN_VALUES_OUTPUT, h, classes);
    copy_values(b, g, NN_VALUES_INFO, h, classes);
    for (size_t i = 0; i < nn_graph_initializer_count(g); i++) {
        const struct nn_tensor *t = nn_graph_initializer_at(g, i);
        if (h && (t == h->w || t == h->b)) {
            double fan_in = (double)h->w->info.dims[h->w_out_first ? 1 : 0];
            int class_dim = t == h->w ? !h->w_out_first : t->info.rank - 1;
            add_fresh(b, t, class_dim, classes, fan_in, seed, t == h->b);
        } else {
            nn_builder_initializer(b, t->info.name, t->info.dtype, t->info.rank, t->info.dims,
                                   t->data);
        }
    }
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        if (inference && is_training_noise(node))
            nn_builder_node(b, "Identity", node->name, 1, node->inputs, 1, node->outputs);
        else
            nn_builder_copy_node(b, node);
    }
    return nn_builder_finish(b, err);
}

struct nn_graph *train_model_copy(const struct nn_graph *g, struct eng_error *err)
{
    return copy_graph(g, NULL, 0, 0, false, err);
}

bool train_model_has_training_ops(const struct nn_graph *g)
{
    for (size_t i = 0; i < nn_graph_node_count(g); i++)
        if (is_training_noise(nn_graph_node(g, i))) return true;
    return false;
}

struct nn_graph *train_model_for_inference(const struct nn_graph *g, struct eng_error *err)
{
    return copy_graph(g, NULL, 0, 0, true, err);
}

int train_model_head_check(const struct nn_graph *g, struct eng_error *err)
{
    struct head h;
    return find_head(g, &h, err);
}

struct nn_graph *train_model_new_head(const struct nn_graph *g, int classes, uint64_t seed,
                                      struct eng_error *err)
{
    if (classes < 1 || classes > HEAD_CLASSES_MAX) {
        eng_fail(err, ENG_INVALID, "classes is %d; it must be in [1, %d]", classes,
                 HEAD_CLASSES_MAX);
        return NULL;
    }
    struct head h;
    if (find_head(g, &h, err)) return NULL;
    return copy_graph(g, &h, classes, seed, false, err);
}

static bool is_parameter(const struct nn_graph *g, const struct nn_tensor *t)
{
    return t->info.dtype == NN_FLOAT && !zoo_is_buffer(g, t);
}

/* Whether t's name starts with the string prefix. */
static bool starts_with(const struct nn_tensor *t, const json_t *prefix)
{
    return !strncmp(t->info.name, json_string_value(prefix), json_string_length(prefix));
}

/* The index of the first node that reads name; the node count when none does. */
static size_t first_reader(const struct nn_graph *g, const char *name)
{
    size_t i = 0;
    for (; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        for (size_t k = 0; k < node->n_inputs; k++)
            if (!strcmp(node->inputs[k], name)) return i;
    }
    return i;
}

/* A "freeze" param, checked, and what it needs. */
struct freeze {
    const json_t *prefixes; /* a list of prefixes, or NULL */
    struct head head;       /* "all-but-head": the head left out */
    size_t before;          /* {"before": prefix}: the first node reading a parameter it names */
    bool all_but_head, by_order;
};

/* Whether t is a parameter that f keeps fixed. */
static bool frozen(const struct nn_graph *g, const struct nn_tensor *t, const struct freeze *f)
{
    if (!is_parameter(g, t)) return false;
    if (f->all_but_head) return t != f->head.w && t != f->head.b;
    if (f->by_order) return first_reader(g, t->info.name) < f->before;
    size_t i;
    const json_t *p;
    json_array_foreach(f->prefixes, i, p)
    {
        if (starts_with(t, p)) return true;
    }
    return false;
}

static const char accepted[] =
    "give \"all-but-head\", a list of parameter name prefixes or {\"before\": prefix}";

/* The index of the first node reading a parameter named with prefix p (a non-empty string), in
 * *first; 0, or -1 with err (what names p) when p is no string or names no parameter. */
static int find_prefix(const struct nn_graph *g, const json_t *p, const char *what, size_t *first,
                       struct eng_error *err)
{
    if (!json_is_string(p) || !json_string_length(p))
        return eng_fail(err, ENG_INVALID, "%s is not a non-empty string; %s", what, accepted);
    *first = nn_graph_node_count(g);
    bool matched = false;
    for (size_t k = 0; k < nn_graph_initializer_count(g); k++) {
        const struct nn_tensor *t = nn_graph_initializer_at(g, k);
        if (!is_parameter(g, t) || !starts_with(t, p)) continue;
        matched = true;
        size_t reader = first_reader(g, t->info.name);
        if (reader < *first) *first = reader;
    }
    if (!matched)
        return eng_fail(err, ENG_INVALID, "%s: no parameter's name starts with '%s'", what,
                        json_string_value(p));
    return 0;
}

/* Reads freeze into f: 0, or -1 with err saying what is accepted. */
static int read_freeze(const struct nn_graph *g, const json_t *freeze, struct freeze *f,
                       struct eng_error *err)
{
    memset(f, 0, sizeof *f);
    if (json_is_string(freeze)) {
        if (strcmp(json_string_value(freeze), "all-but-head"))
            return eng_fail(err, ENG_INVALID, "freeze: \"%s\" is not accepted; %s",
                            json_string_value(freeze), accepted);
        f->all_but_head = true;
        return find_head(g, &f->head, err);
    }
    if (json_is_object(freeze)) {
        const json_t *before = json_object_get(freeze, "before");
        if (!before || json_object_size(freeze) != 1)
            return eng_fail(err, ENG_INVALID, "freeze: an object holds \"before\" alone; %s",
                            accepted);
        f->by_order = true;
        return find_prefix(g, before, "freeze.before", &f->before, err);
    }
    if (!json_is_array(freeze)) return eng_fail(err, ENG_INVALID, "freeze: %s", accepted);
    f->prefixes = freeze;
    size_t i, first;
    const json_t *p;
    json_array_foreach(freeze, i, p)
    {
        char what[32];
        snprintf(what, sizeof what, "freeze[%zu]", i);
        if (find_prefix(g, p, what, &first, err)) return -1;
    }
    return 0;
}

int train_model_frozen(const struct nn_graph *g, const json_t *freeze, const char ***names,
                       size_t *n, struct eng_error *err)
{
    *names = NULL;
    *n = 0;
    if (!freeze || json_is_null(freeze)) return 0;
    struct freeze f;
    if (read_freeze(g, freeze, &f, err)) return -1;
    size_t count = nn_graph_initializer_count(g);
    const char **out = malloc((count ? count : 1) * sizeof *out);
    if (!out) return eng_no_memory(err);
    for (size_t i = 0; i < count; i++) {
        const struct nn_tensor *t = nn_graph_initializer_at(g, i);
        if (frozen(g, t, &f)) out[(*n)++] = t->info.name;
    }
    *names = out;
    return 0;
}
