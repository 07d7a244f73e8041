#include "policy/policy.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/copy_paste.h"
#include "policy/ops.h"
#include "audio/spec.h"
#include "audio/wave.h"
#include "policy/presets.h"
#include "core/rng.h"
#include "image/targets.h"

/* Bounds that keep a hostile document from costing more than a small one. */
#define MAX_DEPTH         32
#define MAX_NODES         4096
#define MAX_REPEAT        16
#define MAX_TRACE_OPS     1024
#define MAX_BINS          1000
#define MAX_DAG_VERTICES  1024
#define PROBABILITY_SLACK 1e-6

enum node_kind {
    NODE_OP,
    NODE_SEQ,
    NODE_CHOICE,
    NODE_PROB,
    NODE_REPEAT,
    NODE_MIX,
    NODE_DAG,
    NODE_VIEWS,      /* only at the root: several outputs per sample */
    NODE_COPY_PASTE, /* {"op": "CopyPaste", ...}: pastes from another input (policy.h) */
};

/* Each view samples and applies from its own streams: view v uses stream numbers from
 * v * VIEW_STREAMS on, so view 0 of any policy draws exactly what a one-view policy does. */
#define VIEW_STREAMS (1u << 20)

/* How an op node's magnitude is chosen. */
enum level_kind {
    LEVEL_UNSET,      /* raw arguments only */
    LEVEL_FIXED,      /* level in [0, 1] */
    LEVEL_BIN,        /* bin of bins, as torch.linspace(lo, hi, bins)[bin] */
    LEVEL_RANDOM_BIN, /* a uniformly drawn bin of bins (TrivialAugment) */
    LEVEL_MAGNITUDE,  /* timm's: magnitude / of, with optional noise, clipped to [0, max] */
};

struct dag_edge {
    int to;
    double p;
    struct node *node;
};

struct dag_vertex {
    char *name;
    struct dag_edge *edges;
    int edge_count;
};

struct node {
    enum node_kind kind;
    /* NODE_OP */
    struct op_call call; /* raw arguments, with defaults filled in */
    enum level_kind level_kind;
    double level;
    int bin, bins;
    int below; /* LEVEL_RANDOM_BIN: bins drawn from [0, below) */
    /* LEVEL_MAGNITUDE */
    double magnitude, magnitude_std, magnitude_max, magnitude_of;
    int magnitude_uniform;
    /* How m becomes the argument: offset + scale * rounding(m); the op's own unless the node
     * gives "map". */
    double map_offset, map_scale;
    enum { ROUND_NONE, ROUND_TRUNC, ROUND_EVEN } map_round;
    double map_min; /* the argument is at least this (-inf unless the node's map gives "min") */
    double lo, hi;  /* the magnitude range, the op's own unless the node gives one */
    enum op_level_scale scale; /* a range given by the node is in the argument's own unit */
    int random_sign;
    /* NODE_SEQ, NODE_CHOICE, NODE_MIX */
    struct node **kids;
    int kid_count;
    double *weights; /* NODE_CHOICE: normalised cumulative weights */
    /* NODE_PROB, NODE_REPEAT: kids[0] is the node */
    double p;
    int repeat;
    double alpha; /* NODE_MIX */
    /* NODE_DAG */
    struct dag_vertex *vertices;
    int vertex_count, start;
    /* NODE_COPY_PASTE: the paste's parameters; its call names the pseudo-op for messages */
    struct copy_paste_params paste;
    /* NODE_OP, NODE_COPY_PASTE: its JSON pointer, for messages about where it sits */
    char *pointer;
    /* One op of each domain in the subtree (NULL: none), so a refusal can name both ops */
    const struct node *image, *wave, *spec;
};

struct policy {
    struct node *root;
    struct node **views; /* the root's views, or the root alone */
    int view_count;
    unsigned domain;          /* POLICY_* bits */
    const struct node *paste; /* a CopyPaste node, or NULL: the inputs must suit it */
    json_t *doc;              /* the compiled document, presets expanded */
    atomic_int refs;          /* policy_free drops one; a cache holds one per entry */
};

/* A sampled CopyPaste: from which input, and every draw. */
struct paste_item {
    struct copy_paste_params params;
    uint32_t source;
    struct copy_paste_draws draws;
};

struct trace_item {
    int is_mix;
    struct op_call call;
    struct paste_item *paste; /* a CopyPaste (call names it), or NULL */
    /* mix: out = (1 - m) x + m sum(weights[i] branches[i](x)) */
    double m;
    double *weights;
    struct trace *branches;
    int branch_count;
};

struct trace {
    struct trace_item *items;
    size_t count, capacity;
    uint32_t view;
};

/* ---- Parsing -------------------------------------------------------------------------------- */

struct parser {
    char path[512]; /* JSON pointer of the node being parsed */
    int at_root;    /* the next node parsed is the root (views are allowed there only) */
    int nodes;
    struct eng_error *err;
};

static int fail_at(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail_at(struct parser *ps, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return eng_fail(ps->err, ENG_INVALID, "%s: %s", ps->path[0] ? ps->path : "/", what);
}

/* Appends "/name" to the pointer; returns the old length for path_pop. */
static size_t path_push(struct parser *ps, const char *name)
{
    size_t len = strlen(ps->path);
    snprintf(ps->path + len, sizeof ps->path - len, "/%s", name);
    return len;
}

static size_t path_push_index(struct parser *ps, size_t index)
{
    char text[24];
    snprintf(text, sizeof text, "%zu", index);
    return path_push(ps, text);
}

static void path_pop(struct parser *ps, size_t len)
{
    ps->path[len] = '\0';
}

static void node_free(struct node *n);

static void dag_free(struct node *n)
{
    for (int v = 0; v < n->vertex_count; v++) {
        for (int e = 0; e < n->vertices[v].edge_count; e++)
            node_free(n->vertices[v].edges[e].node);
        free(n->vertices[v].edges);
        free(n->vertices[v].name);
    }
    free(n->vertices);
}

static void node_free(struct node *n)
{
    if (!n) return;
    for (int i = 0; i < n->kid_count; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->weights);
    dag_free(n);
    free(n->pointer);
    free(n);
}

static struct node *node_new(struct parser *ps, enum node_kind kind)
{
    if (++ps->nodes > MAX_NODES) {
        fail_at(ps, "the policy has more than %d nodes", MAX_NODES);
        return NULL;
    }
    struct node *n = calloc(1, sizeof *n);
    if (!n) {
        eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
        return NULL;
    }
    n->kind = kind;
    return n;
}

static struct node *parse_node(struct parser *ps, const json_t *doc, int depth);

static int parse_number(struct parser *ps, const json_t *v, const char *key, double min, double max,
                        double *out)
{
    size_t mark = path_push(ps, key);
    int rc = -1;
    if (!json_is_number(v))
        fail_at(ps, "must be a number");
    else if (!(json_number_value(v) >= min && json_number_value(v) <= max))
        fail_at(ps, "must be in [%g, %g]", min, max);
    else {
        *out = json_number_value(v);
        rc = 0;
    }
    path_pop(ps, mark);
    return rc;
}

/* A list of child nodes under key. */
static int parse_kids(struct parser *ps, struct node *n, const json_t *list, const char *key,
                      int depth)
{
    size_t mark = path_push(ps, key);
    if (!json_is_array(list) || json_array_size(list) == 0) {
        fail_at(ps, "must be a non-empty array of nodes");
        path_pop(ps, mark);
        return -1;
    }
    n->kid_count = 0;
    n->kids = calloc(json_array_size(list), sizeof *n->kids);
    if (!n->kids) {
        path_pop(ps, mark);
        return eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        size_t item = path_push_index(ps, i);
        struct node *kid = parse_node(ps, json_array_get(list, i), depth + 1);
        path_pop(ps, item);
        if (!kid) {
            path_pop(ps, mark);
            return -1;
        }
        n->kids[n->kid_count++] = kid;
    }
    path_pop(ps, mark);
    return 0;
}

/* Keys of obj must all be in allowed (NULL-terminated). */
static int check_keys(struct parser *ps, const json_t *obj, const char *const *allowed,
                      const struct op_desc *op)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        int known = op && op_arg_index(op, key) >= 0;
        for (const char *const *a = allowed; !known && *a; a++)
            known = strcmp(key, *a) == 0;
        if (!known) {
            size_t mark = path_push(ps, key);
            fail_at(ps, "unknown key%s", op ? " for this op" : "");
            path_pop(ps, mark);
            return -1;
        }
    }
    return 0;
}

static int parse_fill(struct parser *ps, const json_t *v, struct op_call *call)
{
    size_t mark = path_push(ps, "fill");
    int rc = 0;
    if (json_is_number(v)) {
        double f = json_number_value(v);
        if (!(f >= 0 && f <= 255)) rc = fail_at(ps, "must be in [0, 255]");
        for (int c = 0; c < 4; c++)
            call->fill[c] = (uint8_t)lround(f);
    } else if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= 4) {
        for (size_t c = 0; c < 4 && rc == 0; c++) {
            const json_t *item = json_array_get(v, c < json_array_size(v) ? c : 0);
            double f = json_number_value(item);
            if (!json_is_number(item) || !(f >= 0 && f <= 255))
                rc = fail_at(ps, "must be a number or 1 to 4 numbers in [0, 255]");
            else
                call->fill[c] = (uint8_t)lround(f);
        }
    } else {
        rc = fail_at(ps, "must be a number or 1 to 4 numbers in [0, 255]");
    }
    call->fill_given = 1;
    path_pop(ps, mark);
    return rc;
}

/* {"magnitude": 9, "std": 0.5, "uniform": false, "max": 10, "of": 10}: timm's AugmentOp. The
 * level is the magnitude, plus N(0, std^2) noise or drawn from U(0, magnitude) when uniform,
 * clipped to [0, max], divided by of; above 1 when max > of, as in timm. */
static int parse_magnitude(struct parser *ps, struct node *n, const json_t *v)
{
    static const char *const keys[] = {"magnitude", "std", "uniform", "max", "of", NULL};
    if (check_keys(ps, v, keys, NULL) != 0) return -1;
    n->magnitude_std = 0;
    n->magnitude_max = n->magnitude_of = 10;
    json_t *std = json_object_get(v, "std"), *max = json_object_get(v, "max");
    json_t *of = json_object_get(v, "of"), *uniform = json_object_get(v, "uniform");
    if (parse_number(ps, json_object_get(v, "magnitude"), "magnitude", 0, 1000, &n->magnitude) ||
        (std && parse_number(ps, std, "std", 0, 1000, &n->magnitude_std)) ||
        (max && parse_number(ps, max, "max", 0, 1000, &n->magnitude_max)) ||
        (of && parse_number(ps, of, "of", 1e-3, 1000, &n->magnitude_of)))
        return -1;
    if (uniform && !json_is_boolean(uniform))
        return fail_at(ps, "\"uniform\" must be true or false");
    n->magnitude_uniform = json_is_true(uniform);
    n->level_kind = LEVEL_MAGNITUDE;
    return 0;
}

/* "map": {"offset": a, "scale": b, "round": "none" | "trunc" | "even", "min": c}:
 * arg = max(a + b round(m), c). */
static int parse_map(struct parser *ps, struct node *n, const json_t *v)
{
    static const char *const keys[] = {"offset", "scale", "round", "min", NULL};
    size_t mark = path_push(ps, "map");
    int rc = -1;
    json_t *offset = json_object_get(v, "offset"), *scale = json_object_get(v, "scale");
    json_t *min = json_object_get(v, "min");
    const char *round = json_string_value(json_object_get(v, "round"));
    n->map_offset = 0;
    n->map_scale = 1;
    n->map_round = ROUND_NONE;
    n->map_min = -INFINITY;
    if (!json_is_object(v))
        fail_at(ps, "must be {\"offset\", \"scale\", \"round\"}");
    else if (check_keys(ps, v, keys, NULL) == 0 &&
             !(offset && parse_number(ps, offset, "offset", -1e6, 1e6, &n->map_offset)) &&
             !(scale && parse_number(ps, scale, "scale", -1e6, 1e6, &n->map_scale)) &&
             !(min && parse_number(ps, min, "min", -1e6, 1e6, &n->map_min))) {
        if (!round || strcmp(round, "none") == 0)
            rc = 0;
        else if (strcmp(round, "trunc") == 0)
            n->map_round = ROUND_TRUNC, rc = 0;
        else if (strcmp(round, "even") == 0)
            n->map_round = ROUND_EVEN, rc = 0;
        else
            fail_at(ps, "\"round\" must be none, trunc or even");
    }
    path_pop(ps, mark);
    return rc;
}

/* The op's own mapping, as an offset, a scale and a rounding. */
static void default_map(struct node *n, enum op_level_map map)
{
    n->map_offset = map == LEVEL_ONE_PLUS ? 1 : map == LEVEL_BITS_REMOVED ? 8 : 0;
    n->map_scale = map == LEVEL_BITS_REMOVED ? -1 : 1;
    n->map_min = -INFINITY;
    n->map_round = map == LEVEL_TRUNCATE       ? ROUND_TRUNC
                   : map == LEVEL_BITS_REMOVED ? ROUND_EVEN
                                               : ROUND_NONE;
}

static int parse_level(struct parser *ps, struct node *n, const json_t *v)
{
    size_t mark = path_push(ps, "level");
    int rc = 0;
    if (json_is_number(v)) {
        n->level_kind = LEVEL_FIXED;
        n->level = json_number_value(v);
        if (!(n->level >= 0 && n->level <= 1)) rc = fail_at(ps, "must be in [0, 1]");
    } else if (json_is_object(v) && json_object_get(v, "magnitude")) {
        rc = parse_magnitude(ps, n, v);
    } else if (json_is_object(v)) {
        static const char *const keys[] = {"bin", "bins", "below", NULL};
        json_t *bins = json_object_get(v, "bins"), *bin = json_object_get(v, "bin");
        json_t *below = json_object_get(v, "below");
        if (check_keys(ps, v, keys, NULL) != 0)
            rc = -1;
        else if (!json_is_integer(bins) || json_integer_value(bins) < 2 ||
                 json_integer_value(bins) > MAX_BINS)
            rc = fail_at(ps, "\"bins\" must be a whole number in [2, %d]", MAX_BINS);
        else if (bin && (!json_is_integer(bin) || json_integer_value(bin) < 0 ||
                         json_integer_value(bin) >= json_integer_value(bins)))
            rc = fail_at(ps, "\"bin\" must be a whole number in [0, bins - 1]");
        else if (below && (bin || !json_is_integer(below) || json_integer_value(below) < 1 ||
                           json_integer_value(below) > json_integer_value(bins)))
            rc = fail_at(ps, "\"below\" must be a whole number in [1, bins], without \"bin\"");
        else {
            n->bins = (int)json_integer_value(bins);
            n->bin = bin ? (int)json_integer_value(bin) : -1;
            n->below = below ? (int)json_integer_value(below) : n->bins;
            n->level_kind = bin ? LEVEL_BIN : LEVEL_RANDOM_BIN;
        }
    } else {
        rc = fail_at(ps, "must be a number in [0, 1], {\"bin\": B, \"bins\": N}, {\"bins\": "
                         "N} (a random bin, optionally \"below\": K) or {\"magnitude\": M}");
    }
    path_pop(ps, mark);
    return rc;
}

/* The pseudo-op that CopyPaste nodes and trace items name, for messages and traces; it is no
 * registry op (policy.h says why). */
static const struct op_desc copy_paste_op = {.name = "CopyPaste", .domain = OP_DOMAIN_IMAGE};

/* "jitter": "lsj" (the default), "ssj" or [lo, hi] with 0 < lo <= hi <= 2: past LSJ's largest
 * scale the resized copy would hold more than 4 times the image's pixels. */
static int parse_jitter(struct parser *ps, const json_t *v, struct copy_paste_params *p)
{
    const char *name = json_string_value(v);
    size_t mark = path_push(ps, "jitter");
    int rc = 0;
    p->scale_lo = COPY_PASTE_LSJ_LO, p->scale_hi = COPY_PASTE_LSJ_HI;
    if (name && strcmp(name, "ssj") == 0) {
        p->scale_lo = COPY_PASTE_SSJ_LO, p->scale_hi = COPY_PASTE_SSJ_HI;
    } else if (json_is_array(v) && json_array_size(v) == 2 &&
               json_is_number(json_array_get(v, 0)) && json_is_number(json_array_get(v, 1))) {
        p->scale_lo = json_number_value(json_array_get(v, 0));
        p->scale_hi = json_number_value(json_array_get(v, 1));
        if (!(p->scale_lo > 0 && p->scale_lo <= p->scale_hi && p->scale_hi <= COPY_PASTE_LSJ_HI))
            rc = fail_at(ps, "[%g, %g] must be a range with 0 < lo <= hi <= %g", p->scale_lo,
                         p->scale_hi, COPY_PASTE_LSJ_HI);
    } else if (v && !(name && strcmp(name, "lsj") == 0)) {
        rc = fail_at(ps, "must be \"lsj\", \"ssj\" or [lo, hi]");
    }
    path_pop(ps, mark);
    return rc;
}

/* {"op": "CopyPaste", "jitter", "flip_p", "blend_sigma", "min_area", "fill"}: the defaults are
 * /v1/augment/copy-paste's (LSJ, flip 0.5, hard edges, torchvision's LSJ fill). */
static struct node *parse_copy_paste(struct parser *ps, const json_t *doc)
{
    static const char *const keys[] = {"op",       "jitter", "flip_p", "blend_sigma",
                                       "min_area", "fill",   NULL};
    if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
    struct node *n = node_new(ps, NODE_COPY_PASTE);
    if (!n) return NULL;
    n->call.op = &copy_paste_op;
    struct copy_paste_params *p = &n->paste;
    *p = (struct copy_paste_params){.hflip_prob = 0.5, .fill = {123, 117, 104, 255}};
    const json_t *flip = json_object_get(doc, "flip_p"),
                 *sigma = json_object_get(doc, "blend_sigma");
    const json_t *area = json_object_get(doc, "min_area"), *fill = json_object_get(doc, "fill");
    double min_area = 0;
    if (!(n->pointer = strdup(ps->path)))
        eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
    else if (parse_jitter(ps, json_object_get(doc, "jitter"), p) == 0 &&
             !(flip && parse_number(ps, flip, "flip_p", 0, 1, &p->hflip_prob)) &&
             !(sigma && parse_number(ps, sigma, "blend_sigma", 0, COPY_PASTE_MAX_BLEND_SIGMA,
                                     &p->blend_sigma)) &&
             !(area && parse_number(ps, area, "min_area", 0, 1e12, &min_area)) &&
             !(fill && parse_fill(ps, fill, &n->call))) {
        /* Areas are whole pixel counts: area < 2.5 is area < 3. */
        p->min_area = (long)ceil(min_area);
        if (n->call.fill_given) memcpy(p->fill, n->call.fill, sizeof p->fill);
        return n;
    }
    node_free(n);
    return NULL;
}

static struct node *parse_op(struct parser *ps, const json_t *doc)
{
    const char *name = json_string_value(json_object_get(doc, "op"));
    const struct op_desc *op = name ? op_find(name) : NULL;
    if (!op) {
        size_t mark = path_push(ps, "op");
        fail_at(ps, name ? "unknown op \"%s\" (GET /v1/ops lists them)" : "must be an op name%s",
                name ? name : "");
        path_pop(ps, mark);
        return NULL;
    }
    /* Common keys, then the ones the op takes; check_keys also accepts the op's arguments. */
    const char *keys[10] = {"op", "level", "random_sign", "range", "range_of", "map"};
    int key_count = 6;
    if (op->takes & OP_TAKES_FILL) keys[key_count++] = "fill";
    if (op->takes & OP_TAKES_INTERPOLATION) keys[key_count++] = "interpolation";
    keys[key_count] = NULL;
    if (check_keys(ps, doc, keys, op) != 0) return NULL;
    struct node *n = node_new(ps, NODE_OP);
    if (!n) return NULL;
    n->call.op = op;
    if (!(n->pointer = strdup(ps->path))) {
        eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
        goto fail;
    }
    for (int i = 0; i < op->arg_count; i++) {
        const struct op_arg_desc *a = &op->args[i];
        n->call.args[i] = a->def;
        json_t *v = json_object_get(doc, a->name);
        if (!v) continue;
        size_t mark = path_push(ps, a->name);
        int bad = 0;
        if (a->drawn) {
            bad = fail_at(ps, "is drawn at random when the policy runs; it cannot be set");
        } else if (a->kind == OP_ARG_ENUM) {
            int found = -1;
            for (int c = 0; json_is_string(v) && a->choices[c]; c++)
                if (strcmp(a->choices[c], json_string_value(v)) == 0) found = c;
            if (found < 0)
                bad = fail_at(ps, "must be one of the op's choices (GET /v1/ops lists them)");
            n->call.args[i] = found;
        } else if (!json_is_number(v) || (a->kind == OP_ARG_INTEGER &&
                                          json_number_value(v) != floor(json_number_value(v)))) {
            bad =
                fail_at(ps, "must be a %s", a->kind == OP_ARG_INTEGER ? "whole number" : "number");
        } else if (!(json_number_value(v) >= a->min && json_number_value(v) <= a->max)) {
            bad = fail_at(ps, "must be in [%g, %g]", a->min, a->max);
        } else {
            n->call.args[i] = json_number_value(v);
        }
        path_pop(ps, mark);
        if (bad) goto fail;
    }
    n->lo = op->level.lo;
    n->hi = op->level.hi;
    n->scale = op->level.scale;
    default_map(n, op->level.map);
    json_t *map = json_object_get(doc, "map");
    if (map && (op->level.map == LEVEL_NONE || parse_map(ps, n, map) != 0)) {
        if (op->level.map == LEVEL_NONE) {
            size_t mark = path_push(ps, "map");
            fail_at(ps, "%s takes no level", op->name);
            path_pop(ps, mark);
        }
        goto fail;
    }
    n->random_sign = op->level.signed_by_default;
    json_t *level = json_object_get(doc, "level");
    if (level) {
        if (op->level.map == LEVEL_NONE) {
            size_t mark = path_push(ps, "level");
            fail_at(ps, "%s takes no level", op->name);
            path_pop(ps, mark);
            goto fail;
        }
        if (parse_level(ps, n, level) != 0) goto fail;
        if (json_object_get(doc, op->args[op->level.arg].name)) {
            fail_at(ps, "give either \"level\" or \"%s\", not both", op->args[op->level.arg].name);
            goto fail;
        }
    }
    json_t *range = json_object_get(doc, "range");
    if (range) {
        size_t mark = path_push(ps, "range");
        int ok = json_is_array(range) && json_array_size(range) == 2 &&
                 json_is_number(json_array_get(range, 0)) &&
                 json_is_number(json_array_get(range, 1)) && op->level.map != LEVEL_NONE;
        if (ok) {
            n->lo = json_number_value(json_array_get(range, 0));
            n->hi = json_number_value(json_array_get(range, 1));
            n->scale = SCALE_ABSOLUTE;
            ok = isfinite(n->lo) && isfinite(n->hi);
        }
        if (!ok) fail_at(ps, "must be [lo, hi], the magnitude range a level maps onto");
        path_pop(ps, mark);
        if (!ok) goto fail;
    }
    json_t *range_of = json_object_get(doc, "range_of");
    if (range_of) {
        const char *side = json_string_value(range_of);
        size_t mark = path_push(ps, "range_of");
        int ok = range && side && (strcmp(side, "width") == 0 || strcmp(side, "height") == 0);
        if (ok)
            n->scale = strcmp(side, "width") == 0 ? SCALE_WIDTH : SCALE_HEIGHT;
        else
            fail_at(ps, "must be \"width\" or \"height\", with \"range\" in shares of it");
        path_pop(ps, mark);
        if (!ok) goto fail;
    }
    json_t *sign = json_object_get(doc, "random_sign");
    if (sign) {
        if (!json_is_boolean(sign)) {
            size_t mark = path_push(ps, "random_sign");
            fail_at(ps, "must be true or false");
            path_pop(ps, mark);
            goto fail;
        }
        n->random_sign = json_is_true(sign);
    }
    json_t *fill = json_object_get(doc, "fill");
    if (fill && parse_fill(ps, fill, &n->call) != 0) goto fail;
    json_t *interp = json_object_get(doc, "interpolation");
    if (interp) {
        const char *text = json_string_value(interp);
        if (!text || (strcmp(text, "nearest") != 0 && strcmp(text, "bilinear") != 0)) {
            size_t mark = path_push(ps, "interpolation");
            fail_at(ps, "must be \"nearest\" or \"bilinear\"");
            path_pop(ps, mark);
            goto fail;
        }
        n->call.interpolation = strcmp(text, "bilinear") == 0;
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

static struct node *parse_choice(struct parser *ps, const json_t *doc, int depth)
{
    static const char *const keys[] = {"choice", "weights", NULL};
    if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
    struct node *n = node_new(ps, NODE_CHOICE);
    if (!n || parse_kids(ps, n, json_object_get(doc, "choice"), "choice", depth) != 0) goto fail;
    n->weights = malloc((size_t)n->kid_count * sizeof *n->weights);
    if (!n->weights) {
        eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
        goto fail;
    }
    json_t *weights = json_object_get(doc, "weights");
    double total = 0;
    size_t mark = path_push(ps, "weights");
    if (weights && (!json_is_array(weights) || json_array_size(weights) != (size_t)n->kid_count)) {
        fail_at(ps, "must hold one number per choice (%d)", n->kid_count);
        path_pop(ps, mark);
        goto fail;
    }
    for (int i = 0; i < n->kid_count; i++) {
        double w = 1.0;
        if (weights) {
            json_t *item = json_array_get(weights, (size_t)i);
            w = json_number_value(item);
            if (!json_is_number(item) || !(w >= 0 && isfinite(w))) {
                fail_at(ps, "must be non-negative numbers");
                path_pop(ps, mark);
                goto fail;
            }
        }
        total += w;
        n->weights[i] = total;
    }
    if (!(total > 0)) {
        fail_at(ps, "must not all be zero");
        path_pop(ps, mark);
        goto fail;
    }
    path_pop(ps, mark);
    for (int i = 0; i < n->kid_count; i++)
        n->weights[i] /= total;
    return n;
fail:
    node_free(n);
    return NULL;
}

/* {"p": 0.5, "do": node} and {"repeat": 3, "do": node} */
static struct node *parse_wrapper(struct parser *ps, const json_t *doc, int depth, int is_repeat)
{
    static const char *const prob_keys[] = {"p", "do", NULL}, *const repeat_keys[] = {"repeat",
                                                                                      "do", NULL};
    if (check_keys(ps, doc, is_repeat ? repeat_keys : prob_keys, NULL) != 0) return NULL;
    struct node *n = node_new(ps, is_repeat ? NODE_REPEAT : NODE_PROB);
    if (!n) return NULL;
    double value;
    if (is_repeat) {
        json_t *r = json_object_get(doc, "repeat");
        if (!json_is_integer(r) || json_integer_value(r) < 0 ||
            json_integer_value(r) > MAX_REPEAT) {
            size_t mark = path_push(ps, "repeat");
            fail_at(ps, "must be a whole number in [0, %d]", MAX_REPEAT);
            path_pop(ps, mark);
            goto fail;
        }
        n->repeat = (int)json_integer_value(r);
    } else {
        if (parse_number(ps, json_object_get(doc, "p"), "p", 0, 1, &value) != 0) goto fail;
        n->p = value;
    }
    json_t *inner = json_object_get(doc, "do");
    size_t mark = path_push(ps, "do");
    if (!inner) fail_at(ps, "is missing: the node to apply");
    n->kids = calloc(1, sizeof *n->kids);
    if (inner && n->kids) {
        n->kids[0] = parse_node(ps, inner, depth + 1);
        n->kid_count = n->kids[0] != NULL;
    } else if (inner) {
        eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
    }
    path_pop(ps, mark);
    if (n->kid_count != 1) goto fail;
    return n;
fail:
    node_free(n);
    return NULL;
}

static struct node *parse_mix(struct parser *ps, const json_t *doc, int depth)
{
    static const char *const keys[] = {"mix", "alpha", NULL};
    if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
    struct node *n = node_new(ps, NODE_MIX);
    if (!n || parse_kids(ps, n, json_object_get(doc, "mix"), "mix", depth) != 0) goto fail;
    n->alpha = 1.0;
    json_t *alpha = json_object_get(doc, "alpha");
    if (alpha && parse_number(ps, alpha, "alpha", 1e-3, 1e3, &n->alpha) != 0) goto fail;
    return n;
fail:
    node_free(n);
    return NULL;
}

static int vertex_index(struct node *n, const char *name, int create)
{
    for (int v = 0; v < n->vertex_count; v++)
        if (strcmp(n->vertices[v].name, name) == 0) return v;
    if (!create) return -1;
    struct dag_vertex *grown = realloc(n->vertices, (size_t)(n->vertex_count + 1) * sizeof *grown);
    if (!grown) return -2;
    n->vertices = grown;
    memset(&grown[n->vertex_count], 0, sizeof grown[0]);
    grown[n->vertex_count].name = strdup(name);
    if (!grown[n->vertex_count].name) return -2;
    return n->vertex_count++;
}

/* A zeroed array of one element of size bytes per vertex, or NULL. The count is checked against
 * its bound again here, so that the allocation's size is bounded where it is made. */
static void *vertex_array(const struct node *n, size_t size)
{
    if (n->vertex_count < 1 || n->vertex_count > MAX_DAG_VERTICES) return NULL;
    return calloc((size_t)n->vertex_count, size);
}

/* Depth-first search for a cycle through v; state: 0 unseen, 1 on the stack, 2 done. */
static int has_cycle(const struct node *n, int v, char *state)
{
    state[v] = 1;
    for (int e = 0; e < n->vertices[v].edge_count; e++) {
        int to = n->vertices[v].edges[e].to;
        if (state[to] == 1 || (state[to] == 0 && has_cycle(n, to, state))) return 1;
    }
    state[v] = 2;
    return 0;
}

static struct node *parse_dag(struct parser *ps, const json_t *doc, int depth)
{
    static const char *const keys[] = {"dag", NULL}, *const dag_keys[] = {"start", "edges", NULL},
                             *const edge_keys[] = {"from", "to", "p", "do", NULL};
    if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
    json_t *dag = json_object_get(doc, "dag");
    size_t mark = path_push(ps, "dag");
    struct node *n = NULL;
    if (!json_is_object(dag)) {
        fail_at(ps, "must be {\"start\": vertex, \"edges\": [...]}");
        goto fail;
    }
    if (check_keys(ps, dag, dag_keys, NULL) != 0) goto fail;
    const char *start = json_string_value(json_object_get(dag, "start"));
    json_t *edges = json_object_get(dag, "edges");
    if (!start) {
        fail_at(ps, "\"start\" must name a vertex");
        goto fail;
    }
    if (!json_is_array(edges)) {
        fail_at(ps, "\"edges\" must be an array");
        goto fail;
    }
    if (!(n = node_new(ps, NODE_DAG))) goto fail;
    if ((n->start = vertex_index(n, start, 1)) < 0) goto no_memory;
    size_t edges_mark = path_push(ps, "edges");
    for (size_t i = 0; i < json_array_size(edges); i++) {
        json_t *edge = json_array_get(edges, i);
        size_t item = path_push_index(ps, i);
        const char *from = json_string_value(json_object_get(edge, "from"));
        const char *to = json_string_value(json_object_get(edge, "to"));
        double p;
        if (!json_is_object(edge)) {
            fail_at(ps, "must be {\"from\", \"to\", \"p\", \"do\"}");
            goto fail;
        }
        if (check_keys(ps, edge, edge_keys, NULL) != 0) goto fail;
        if (!from || !to) {
            fail_at(ps, "needs \"from\" and \"to\" vertex names");
            goto fail;
        }
        if (parse_number(ps, json_object_get(edge, "p"), "p", 0, 1, &p) != 0) goto fail;
        int f = vertex_index(n, from, 1), t = vertex_index(n, to, 1);
        if (f < 0 || t < 0) goto no_memory;
        if (n->vertex_count > MAX_DAG_VERTICES) {
            fail_at(ps, "the graph has more than %d vertices", MAX_DAG_VERTICES);
            goto fail;
        }
        struct dag_vertex *vf = &n->vertices[f];
        struct dag_edge *grown = realloc(vf->edges, (size_t)(vf->edge_count + 1) * sizeof *grown);
        if (!grown) goto no_memory;
        vf->edges = grown;
        struct dag_edge *e = &grown[vf->edge_count++];
        e->to = t;
        e->p = p;
        e->node = NULL;
        json_t *inner = json_object_get(edge, "do");
        if (inner) {
            size_t do_mark = path_push(ps, "do");
            e->node = parse_node(ps, inner, depth + 1);
            path_pop(ps, do_mark);
            if (!e->node) goto fail;
        }
        path_pop(ps, item);
    }
    path_pop(ps, edges_mark);
    char *state = vertex_array(n, 1);
    if (!state) goto no_memory;
    int cyclic = 0;
    for (int v = 0; v < n->vertex_count && !cyclic; v++)
        if (state[v] == 0) cyclic = has_cycle(n, v, state);
    free(state);
    if (cyclic) {
        fail_at(ps, "the edges form a cycle; a policy graph must be acyclic");
        goto fail;
    }
    for (int v = 0; v < n->vertex_count; v++) {
        double sum = 0;
        for (int e = 0; e < n->vertices[v].edge_count; e++)
            sum += n->vertices[v].edges[e].p;
        if (n->vertices[v].edge_count > 0 && fabs(sum - 1.0) > PROBABILITY_SLACK) {
            fail_at(ps, "the edges out of vertex \"%s\" have probabilities summing to %g, not 1",
                    n->vertices[v].name, sum);
            goto fail;
        }
    }
    path_pop(ps, mark);
    return n;
no_memory:
    eng_fail(ps->err, ENG_NO_MEMORY, "out of memory while parsing the policy");
fail:
    path_pop(ps, mark);
    node_free(n);
    return NULL;
}

static struct node *parse_preset(struct parser *ps, const json_t *doc, int depth, int root)
{
    json_t *expanded = preset_expand(doc, ps->err);
    if (!expanded) {
        char message[sizeof ps->err->message];
        memcpy(message, ps->err->message, sizeof message);
        eng_fail(ps->err, ps->err->code, "%s: %s", ps->path[0] ? ps->path : "/", message);
        return NULL;
    }
    ps->at_root = root; /* a preset at the root may expand to views */
    struct node *n = parse_node(ps, expanded, depth + 1);
    json_decref(expanded);
    return n;
}

static struct node *parse_kind(struct parser *ps, const json_t *doc, int depth)
{
    if (depth > MAX_DEPTH) {
        fail_at(ps, "nodes nest deeper than %d levels", MAX_DEPTH);
        return NULL;
    }
    int root = ps->at_root;
    ps->at_root = 0;
    if (json_is_string(doc)) return parse_preset(ps, doc, depth, root);
    if (!json_is_object(doc)) {
        fail_at(ps, "must be a node: an object with op, seq, choice, p, repeat, mix, dag or "
                    "preset, or a preset name");
        return NULL;
    }
    const char *op = json_string_value(json_object_get(doc, "op"));
    if (op && strcmp(op, copy_paste_op.name) == 0) return parse_copy_paste(ps, doc);
    if (json_object_get(doc, "op")) return parse_op(ps, doc);
    if (json_object_get(doc, "seq")) {
        static const char *const keys[] = {"seq", NULL};
        if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
        struct node *n = node_new(ps, NODE_SEQ);
        if (n && parse_kids(ps, n, json_object_get(doc, "seq"), "seq", depth) == 0) return n;
        node_free(n);
        return NULL;
    }
    if (json_object_get(doc, "choice")) return parse_choice(ps, doc, depth);
    if (json_object_get(doc, "repeat")) return parse_wrapper(ps, doc, depth, 1);
    if (json_object_get(doc, "p")) return parse_wrapper(ps, doc, depth, 0);
    if (json_object_get(doc, "mix")) return parse_mix(ps, doc, depth);
    if (json_object_get(doc, "dag")) return parse_dag(ps, doc, depth);
    if (json_object_get(doc, "preset")) return parse_preset(ps, doc, depth, root);
    if (json_object_get(doc, "views")) {
        static const char *const keys[] = {"views", NULL};
        if (!root) {
            fail_at(ps, "\"views\" may only be the whole policy");
            return NULL;
        }
        if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
        struct node *n = node_new(ps, NODE_VIEWS);
        if (n && parse_kids(ps, n, json_object_get(doc, "views"), "views", depth) == 0) return n;
        node_free(n);
        return NULL;
    }
    fail_at(ps, "must have one of op, seq, choice, p, repeat, mix, dag, preset, views");
    return NULL;
}

/* ---- Domains: images, or audio with waveform ops before spectrogram ops --------------------- */

static void take_domains(struct node *n, const struct node *kid)
{
    if (!kid) return;
    if (!n->image) n->image = kid->image;
    if (!n->wave) n->wave = kid->wave;
    if (!n->spec) n->spec = kid->spec;
}

static const char *pointer_of(const struct node *op)
{
    return op->pointer[0] ? op->pointer : "/";
}

static int order_error(struct parser *ps, const struct node *wave, const struct node *spec,
                       const char *how)
{
    return eng_fail(ps->err, ENG_INVALID,
                    "%s: %s is a waveform op and %s after the spectrogram op %s at %s; waveform "
                    "ops must come before the features, spectrogram ops after them",
                    pointer_of(wave), wave->call.op->name, how, spec->call.op->name,
                    pointer_of(spec));
}

/* A seq runs its kids in order: no waveform op in a kid after a spectrogram op in an earlier one
 * (each kid's own order was checked when it was parsed). */
static int seq_order(struct parser *ps, const struct node *n)
{
    const struct node *spec = NULL;
    for (int i = 0; i < n->kid_count; i++) {
        if (spec && n->kids[i]->wave) return order_error(ps, n->kids[i]->wave, spec, "can run");
        if (!spec) spec = n->kids[i]->spec;
    }
    return 0;
}

/* A DAG runs the ops along one path from its start: no waveform op on an edge that some path
 * reaches after an edge holding a spectrogram op. spec_into[v] is such an op on a path into v;
 * relaxing every edge vertex_count times settles every path of an acyclic graph. */
static int dag_order(struct parser *ps, const struct node *n)
{
    const struct node **spec_into = vertex_array(n, sizeof *spec_into);
    if (!spec_into) return eng_fail(ps->err, ENG_NO_MEMORY, "out of memory for the policy");
    int rc = 0;
    for (int round = 0; round < n->vertex_count && rc == 0; round++)
        for (int v = 0; v < n->vertex_count && rc == 0; v++)
            for (int e = 0; e < n->vertices[v].edge_count && rc == 0; e++) {
                const struct dag_edge *edge = &n->vertices[v].edges[e];
                const struct node *spec = spec_into[v];
                if (spec && edge->node && edge->node->wave)
                    rc = order_error(ps, edge->node->wave, spec, "can run");
                if (!spec && edge->node) spec = edge->node->spec;
                if (spec && !spec_into[edge->to]) spec_into[edge->to] = spec;
            }
    free(spec_into);
    return rc;
}

/* Fills n's domains from its ops and refuses what cannot run: an audio op next to an image op,
 * audio ops in a mix (it blends images), and a waveform op that can run after a spectrogram op,
 * since the features sit between the two. */
static int check_domains(struct parser *ps, struct node *n)
{
    const struct node *audio;
    int rc = 0;
    switch (n->kind) {
    case NODE_OP:
        if (n->call.op->domain == OP_DOMAIN_WAVEFORM) n->wave = n;
        if (n->call.op->domain == OP_DOMAIN_SPECTROGRAM) n->spec = n;
        if (n->call.op->domain == OP_DOMAIN_IMAGE) n->image = n;
        return 0;
    case NODE_COPY_PASTE:
        n->image = n;
        return 0;
    case NODE_DAG:
        for (int v = 0; v < n->vertex_count; v++)
            for (int e = 0; e < n->vertices[v].edge_count; e++)
                take_domains(n, n->vertices[v].edges[e].node);
        rc = dag_order(ps, n);
        break;
    default:
        for (int i = 0; i < n->kid_count; i++)
            take_domains(n, n->kids[i]);
        if (n->kind == NODE_SEQ) rc = seq_order(ps, n);
        if (n->kind == NODE_REPEAT && n->repeat > 1 && n->wave && n->spec)
            rc = order_error(ps, n->wave, n->spec, "repeats");
        break;
    }
    audio = n->wave ? n->wave : n->spec;
    if (rc == 0 && audio && n->kind == NODE_MIX)
        rc = fail_at(ps, "mix blends images; %s at %s is an audio op", audio->call.op->name,
                     pointer_of(audio));
    if (rc == 0 && audio && n->image)
        rc = eng_fail(ps->err, ENG_INVALID,
                      "%s: %s is a %s op and %s at %s an image op; a policy is for images or for "
                      "audio, not both",
                      pointer_of(audio), audio->call.op->name,
                      op_domain_name(audio->call.op->domain), n->image->call.op->name,
                      pointer_of(n->image));
    return rc;
}

/* The first node of kind under n (n included), or NULL. */
static const struct node *find_kind(const struct node *n, enum node_kind kind)
{
    const struct node *found = n && n->kind == kind ? n : NULL;
    for (int i = 0; n && !found && i < n->kid_count; i++)
        found = find_kind(n->kids[i], kind);
    for (int v = 0; n && !found && v < n->vertex_count; v++)
        for (int e = 0; !found && e < n->vertices[v].edge_count; e++)
            found = find_kind(n->vertices[v].edges[e].node, kind);
    return found;
}

static struct node *parse_node(struct parser *ps, const json_t *doc, int depth)
{
    struct node *n = parse_kind(ps, doc, depth);
    if (n && check_domains(ps, n) != 0) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* The document with presets expanded, for GET /v1/policies/{name} and echoing. */
static json_t *expand_document(const json_t *doc, struct eng_error *err)
{
    if (json_is_string(doc) || (json_is_object(doc) && json_object_get(doc, "preset"))) {
        json_t *expanded = preset_expand(doc, err);
        if (!expanded) return NULL;
        json_t *deeper = expand_document(expanded, err);
        json_decref(expanded);
        return deeper;
    }
    json_t *copy = json_deep_copy(doc);
    if (!copy) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory");
        return NULL;
    }
    /* Children may be presets too. */
    const char *key;
    json_t *value;
    json_object_foreach(copy, key, value)
    {
        if (strcmp(key, "do") == 0 ||
            (json_is_array(value) && strcmp(key, "weights") != 0 && strcmp(key, "range") != 0 &&
             strcmp(key, "fill") != 0 && strcmp(key, "edges") != 0)) {
            for (size_t i = 0; json_is_array(value) && i < json_array_size(value); i++) {
                json_t *child = expand_document(json_array_get(value, i), err);
                if (!child) goto fail;
                json_array_set_new(value, i, child);
            }
            if (json_is_object(value)) {
                json_t *child = expand_document(value, err);
                if (!child) goto fail;
                json_object_set_new(copy, key, child);
            }
        }
    }
    return copy;
fail:
    json_decref(copy);
    return NULL;
}

struct policy *policy_parse(const json_t *doc, struct eng_error *err)
{
    struct parser ps = {.path = "", .at_root = 1, .err = err};
    err->code = ENG_OK;
    struct policy *p = calloc(1, sizeof *p);
    if (!p) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory while parsing the policy");
        return NULL;
    }
    atomic_init(&p->refs, 1);
    p->root = parse_node(&ps, doc, 0);
    if (p->root)
        p->domain = (p->root->image ? POLICY_IMAGE : 0) | (p->root->wave ? POLICY_WAVEFORM : 0) |
                    (p->root->spec ? POLICY_SPECTROGRAM : 0);
    p->paste = find_kind(p->root, NODE_COPY_PASTE);
    if (p->root && p->root->kind == NODE_VIEWS) {
        p->views = p->root->kids;
        p->view_count = p->root->kid_count;
    } else if (p->root) {
        p->views = &p->root;
        p->view_count = 1;
    }
    if (p->root) p->doc = expand_document(doc, err);
    if (!p->root || !p->doc) {
        policy_free(p);
        return NULL;
    }
    return p;
}

struct policy *policy_parse_text(const char *text, struct eng_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        /* Not JSON: a bare preset name such as randaugment, or a timm-style string. */
        if (strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
                strlen(text) &&
            *text)
            doc = json_string(text);
        if (!doc) {
            eng_fail(err, ENG_INVALID,
                     "policy: not JSON (line %d, column %d: %s) nor a preset name", jerr.line,
                     jerr.column, jerr.text);
            return NULL;
        }
    }
    struct policy *p = policy_parse(doc, err);
    json_decref(doc);
    return p;
}

void policy_free(struct policy *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) > 1) return;
    node_free(p->root);
    json_decref(p->doc);
    free(p);
}

/* ---- The cache ----------------------------------------------------------------------------- */

/* Texts longer than this are parsed every time, so the cache's memory stays bounded. */
#define CACHE_MAX_TEXT 4096

struct cache_entry {
    char *text;
    struct policy *policy;
    unsigned long last_use;
};

struct policy_cache {
    pthread_mutex_t lock;
    struct cache_entry *entries;
    size_t capacity;
    unsigned long clock;
};

struct policy_cache *policy_cache_new(size_t capacity)
{
    struct policy_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->entries = calloc(capacity ? capacity : 1, sizeof *c->entries);
    if (!c->entries) {
        free(c);
        return NULL;
    }
    c->capacity = capacity ? capacity : 1;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void policy_cache_free(struct policy_cache *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->capacity; i++) {
        free(c->entries[i].text);
        policy_free(c->entries[i].policy);
    }
    free(c->entries);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

struct policy *policy_cache_parse(struct policy_cache *c, const char *text, struct eng_error *err)
{
    int cacheable = strlen(text) <= CACHE_MAX_TEXT;
    if (cacheable) {
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->capacity; i++) {
            struct cache_entry *e = &c->entries[i];
            if (e->text && strcmp(e->text, text) == 0) {
                e->last_use = ++c->clock;
                atomic_fetch_add(&e->policy->refs, 1);
                pthread_mutex_unlock(&c->lock);
                return e->policy;
            }
        }
        pthread_mutex_unlock(&c->lock);
    }
    /* Parsed outside the lock: two threads may parse the same text, and one copy is kept. */
    struct policy *p = policy_parse_text(text, err);
    char *copy = p && cacheable ? strdup(text) : NULL;
    if (!copy) return p;
    pthread_mutex_lock(&c->lock);
    struct cache_entry *victim = &c->entries[0];
    for (size_t i = 0; i < c->capacity; i++)
        if (!c->entries[i].text || c->entries[i].last_use < victim->last_use)
            victim = &c->entries[i];
    free(victim->text);
    policy_free(victim->policy);
    victim->text = copy;
    victim->policy = p;
    victim->last_use = ++c->clock;
    atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&c->lock);
    return p;
}

json_t *policy_to_json(const struct policy *p)
{
    return json_incref(p->doc);
}

/* ---- Sampling ------------------------------------------------------------------------------- */

/* torch.linspace(start, end, steps)[i] in float32, the magnitudes torchvision's presets use, as
 * PyTorch 1.13's CPU kernel computes it (AVX2 build): the first half counts up from start and
 * the second half down from end, each point a fused multiply-add, except inside 8-wide vectors
 * (taken two at a time while 16 points remain), where points follow their vector's first point
 * by a plain product and sum. Verified against torch.linspace for many ranges and step counts. */
static double linspace_f32(double start_d, double end_d, int steps, int i)
{
    enum { LANES = 8 };
    const float start = (float)start_d, end = (float)end_d;
    const float step = (end - start) / (float)(steps - 1);
    const int half = steps / 2;
    int vector_end = steps / (2 * LANES) * (2 * LANES);
    int base_index = i < vector_end ? i / LANES * LANES : i;
    float base = base_index < half ? fmaf(step, (float)base_index, start)
                                   : fmaf(-step, (float)(steps - base_index - 1), end);
    if (base_index == i) return base;
    float offset = (float)(i - base_index) * step; /* rounded on its own: no contraction */
    return (double)(base + offset);
}

static void trace_item_free(struct trace_item *it);

static int trace_push(struct trace *t, struct trace_item *it, struct eng_error *err)
{
    if (t->count == t->capacity) {
        size_t capacity = t->capacity ? t->capacity * 2 : 8;
        struct trace_item *grown = realloc(t->items, capacity * sizeof *grown);
        if (!grown) {
            trace_item_free(it);
            return eng_fail(err, ENG_NO_MEMORY, "out of memory while sampling");
        }
        t->items = grown;
        t->capacity = capacity;
    }
    t->items[t->count++] = *it;
    return 0;
}

struct sampler {
    struct rng rng;
    int width, height;   /* audio: samples x 1, then frames x bins from the first spectrogram op */
    enum op_domain axis; /* what width and height measure */
    const struct audio_framing *framing; /* audio: how samples become frames */
    int max_width;                       /* audio: the longest a waveform may become */
    size_t ops;                          /* op applications so far, across mix branches */
    const struct policy_inputs *inputs;  /* images: the request's, for CopyPaste (may be NULL) */
    uint32_t input;                      /* the one sampled for */
    struct eng_error *err;
};

static int sample_node(struct sampler *s, const struct node *n, struct trace *out);

int audio_framing_frames(const struct audio_framing *f, size_t length)
{
    size_t frames = f->center ? 1 + length / (size_t)f->hop_length
                    : length < (size_t)f->n_fft
                        ? 0
                        : 1 + (length - (size_t)f->n_fft) / (size_t)f->hop_length;
    return frames > INT_MAX ? INT_MAX : (int)frames;
}

/* The first spectrogram op of an audio sample: from here on the sizes are the features'. */
static int enter_features(struct sampler *s)
{
    if (!s->framing)
        return eng_fail(s->err, ENG_INVALID,
                        "the policy has spectrogram ops: sampling it needs the features' framing");
    s->width = audio_framing_frames(s->framing, (size_t)s->width);
    s->height = s->framing->bins;
    s->axis = OP_DOMAIN_SPECTROGRAM;
    return 0;
}

/* Counts one more op application of the sample against the bound. */
static int count_application(struct sampler *s)
{
    if (++s->ops > MAX_TRACE_OPS)
        return eng_fail(s->err, ENG_TOO_LARGE, "the policy applies more than %d ops to one sample",
                        MAX_TRACE_OPS);
    return 0;
}

/* Pushes the op's applications (one, or its count's), each with its own draws. */
static int sample_applications(struct sampler *s, const struct trace_item *it, struct trace *out)
{
    const struct op_desc *op = it->call.op;
    int times = op->count ? op->count(&it->call, s->width, s->height) : 1;
    for (int i = 0; i < times; i++) {
        if (count_application(s) != 0) return -1;
        struct trace_item each = *it;
        if (op->draw && op->draw(&each.call, &s->rng, s->width, s->height, s->err) != 0) return -1;
        if (op->output_size) op->output_size(&each.call, &s->width, &s->height);
        if (trace_push(out, &each, s->err) != 0) return -1;
    }
    if (s->axis == OP_DOMAIN_WAVEFORM && s->width > s->max_width)
        return eng_fail(s->err, ENG_TOO_LARGE,
                        "%s makes the waveform %d samples long; a policy may at most quadruple "
                        "its length",
                        op->name, s->width);
    return 0;
}

static int sample_op(struct sampler *s, const struct node *n, struct trace *out)
{
    if (n->call.op->domain == OP_DOMAIN_SPECTROGRAM && s->axis == OP_DOMAIN_WAVEFORM &&
        enter_features(s) != 0)
        return -1;
    struct trace_item it = {.call = n->call};
    const struct op_level_desc *lv = &n->call.op->level;
    if (n->level_kind != LEVEL_UNSET) {
        double lo = n->lo, hi = n->hi;
        if (n->scale == SCALE_WIDTH) lo *= s->width, hi *= s->width;
        if (n->scale == SCALE_HEIGHT) lo *= s->height, hi *= s->height;
        double m;
        if (n->level_kind == LEVEL_FIXED) {
            m = lo + n->level * (hi - lo);
        } else if (n->level_kind == LEVEL_MAGNITUDE) {
            double mag = n->magnitude;
            if (n->magnitude_uniform)
                mag = n->magnitude * rng_uniform(&s->rng);
            else if (n->magnitude_std > 0)
                mag = n->magnitude + n->magnitude_std * rng_normal(&s->rng);
            mag = mag < 0 ? 0 : mag > n->magnitude_max ? n->magnitude_max : mag;
            m = lo + mag / n->magnitude_of * (hi - lo);
        } else {
            int bin =
                n->level_kind == LEVEL_BIN ? n->bin : (int)rng_below(&s->rng, (uint32_t)n->below);
            m = linspace_f32(lo, hi, n->bins, bin);
        }
        /* A sign is drawn for signed ops even when m is 0, as torchvision does. */
        if (n->random_sign && rng_below(&s->rng, 2)) m = -m;
        double rounded = n->map_round == ROUND_TRUNC  ? trunc(m)
                         : n->map_round == ROUND_EVEN ? nearbyint(m) /* half to even */
                                                      : m;
        double arg = fmax(n->map_offset + n->map_scale * rounded, n->map_min);
        const struct op_arg_desc *a = &n->call.op->args[lv->arg];
        it.call.args[lv->arg] = arg < a->min ? a->min : arg > a->max ? a->max : arg;
    }
    return sample_applications(s, &it, out);
}

/* Draws the source among the other inputs, then the paste's own draws against its size and
 * object count (check_inputs made sure there are other inputs, each with targets). The output
 * keeps the image's size. */
static int sample_paste(struct sampler *s, const struct node *n, struct trace *out)
{
    if (count_application(s) != 0) return -1;
    struct trace_item it = {.call = n->call, .paste = calloc(1, sizeof *it.paste)};
    if (!it.paste) return eng_fail(s->err, ENG_NO_MEMORY, "out of memory while sampling");
    struct paste_item *pi = it.paste;
    const uint32_t other = rng_below(&s->rng, s->inputs->count - 1);
    pi->source = other + (other >= s->input);
    pi->params = n->paste;
    const struct img *src = s->inputs->images[pi->source];
    if (copy_paste_draw(&n->paste, s->width, s->height, src->width, src->height,
                        s->inputs->targets[pi->source]->count, &s->rng, &pi->draws, s->err) != 0) {
        trace_item_free(&it);
        return -1;
    }
    return trace_push(out, &it, s->err);
}

static int sample_dag(struct sampler *s, const struct node *n, struct trace *out)
{
    int v = n->start;
    /* Acyclic, so every walk ends within vertex_count steps. */
    for (int steps = 0; steps < n->vertex_count && n->vertices[v].edge_count > 0; steps++) {
        const struct dag_vertex *vx = &n->vertices[v];
        double u = rng_uniform(&s->rng), cumulative = 0;
        int pick = vx->edge_count - 1;
        for (int e = 0; e < vx->edge_count; e++) {
            cumulative += vx->edges[e].p;
            if (u < cumulative) {
                pick = e;
                break;
            }
        }
        if (vx->edges[pick].node && sample_node(s, vx->edges[pick].node, out) != 0) return -1;
        v = vx->edges[pick].to;
    }
    return 0;
}

static int sample_mix(struct sampler *s, const struct node *n, struct trace *out)
{
    struct trace_item it = {.is_mix = 1, .branch_count = n->kid_count};
    it.weights = calloc((size_t)n->kid_count, sizeof *it.weights);
    it.branches = calloc((size_t)n->kid_count, sizeof *it.branches);
    if (!it.weights || !it.branches) {
        trace_item_free(&it);
        return eng_fail(s->err, ENG_NO_MEMORY, "out of memory while sampling");
    }
    rng_dirichlet(&s->rng, n->alpha, n->kid_count, it.weights);
    it.m = rng_beta(&s->rng, n->alpha, n->alpha);
    int width = s->width, height = s->height;
    for (int i = 0; i < n->kid_count; i++) {
        if (sample_node(s, n->kids[i], &it.branches[i]) != 0) {
            trace_item_free(&it);
            return -1;
        }
        if (s->width != width || s->height != height) {
            trace_item_free(&it);
            return eng_fail(s->err, ENG_INVALID,
                            "a mix branch changes the image size; mix branches may only hold "
                            "ops that keep it");
        }
    }
    return trace_push(out, &it, s->err);
}

static int sample_node(struct sampler *s, const struct node *n, struct trace *out)
{
    switch (n->kind) {
    case NODE_OP:
        return sample_op(s, n, out);
    case NODE_SEQ:
        for (int i = 0; i < n->kid_count; i++)
            if (sample_node(s, n->kids[i], out) != 0) return -1;
        return 0;
    case NODE_CHOICE: {
        double u = rng_uniform(&s->rng);
        int pick = n->kid_count - 1;
        for (int i = 0; i < n->kid_count; i++)
            if (u < n->weights[i]) {
                pick = i;
                break;
            }
        return sample_node(s, n->kids[pick], out);
    }
    case NODE_PROB:
        /* Applied when u < p: p = 1 always, p = 0 never. */
        return rng_uniform(&s->rng) < n->p ? sample_node(s, n->kids[0], out) : 0;
    case NODE_REPEAT:
        for (int i = 0; i < n->repeat; i++)
            if (sample_node(s, n->kids[0], out) != 0) return -1;
        return 0;
    case NODE_MIX:
        return sample_mix(s, n, out);
    case NODE_DAG:
        return sample_dag(s, n, out);
    case NODE_COPY_PASTE:
        return sample_paste(s, n, out);
    case NODE_VIEWS:
        break; /* only at the root, where policy_sample_view picks one */
    }
    return eng_fail(s->err, ENG_INTERNAL, "unknown node kind %d", (int)n->kind);
}

int policy_view_count(const struct policy *p)
{
    return p->view_count;
}

struct trace *policy_sample(const struct policy *p, uint64_t seed, uint32_t input, uint32_t sample,
                            int width, int height, struct eng_error *err)
{
    return policy_sample_view(p, seed, input, sample, 0, width, height, err);
}

unsigned policy_domain(const struct policy *p)
{
    return p->domain;
}

/* Walks view `view` with the sampler s (sizes set, stream not yet). */
static struct trace *sample_view(const struct policy *p, uint64_t seed, uint32_t input,
                                 uint32_t sample, uint32_t view, struct sampler *s)
{
    if (view >= (uint32_t)p->view_count) {
        eng_fail(s->err, ENG_INVALID, "the policy has %d views, not %u", p->view_count, view + 1);
        return NULL;
    }
    struct trace *t = calloc(1, sizeof *t);
    if (!t) {
        eng_fail(s->err, ENG_NO_MEMORY, "out of memory while sampling");
        return NULL;
    }
    t->view = view;
    rng_init(&s->rng, seed, input, sample, view * VIEW_STREAMS + RNG_STREAM_POLICY);
    if (sample_node(s, p->views[view], t) != 0) {
        trace_free(t);
        return NULL;
    }
    return t;
}

/* The request suits the policy's CopyPaste node, if it has one, whether or not a sample reaches
 * it: other inputs to paste from, each with a mask per object. */
static int check_inputs(const struct policy *p, const struct policy_inputs *in,
                        struct eng_error *err)
{
    if (!p->paste) return 0;
    if (!in || in->count < 2)
        return eng_fail(err, ENG_INVALID,
                        "%s: CopyPaste pastes objects from another input of the request, and "
                        "there is only one",
                        pointer_of(p->paste));
    for (uint32_t i = 0; i < in->count; i++) {
        const struct targets *t = in->targets ? in->targets[i] : NULL;
        if (!in->images[i]) return eng_fail(err, ENG_INVALID, "input %u has no image", i);
        if (!t || (t->count > 0 && !t->masks))
            return eng_fail(err, ENG_INVALID,
                            "%s: CopyPaste pastes objects by their instance masks, and input %u "
                            "has %s; every input needs a mask per object",
                            pointer_of(p->paste), i, t ? "boxes without masks" : "no targets");
    }
    return 0;
}

/* Walks view `view` for input `input` (of inputs, when given) of width x height. */
static struct trace *sample_image(const struct policy *p, uint64_t seed,
                                  const struct policy_inputs *inputs, uint32_t input,
                                  uint32_t sample, uint32_t view, int width, int height,
                                  struct eng_error *err)
{
    const struct node *audio = p->root->wave ? p->root->wave : p->root->spec;
    if (audio) {
        eng_fail(err, ENG_INVALID,
                 "the policy is for audio (%s is a %s op); it cannot run on an image",
                 audio->call.op->name, op_domain_name(audio->call.op->domain));
        return NULL;
    }
    if (check_inputs(p, inputs, err) != 0) return NULL;
    struct sampler s = {.width = width,
                        .height = height,
                        .axis = OP_DOMAIN_IMAGE,
                        .inputs = inputs,
                        .input = input,
                        .err = err};
    return sample_view(p, seed, input, sample, view, &s);
}

struct trace *policy_sample_view(const struct policy *p, uint64_t seed, uint32_t input,
                                 uint32_t sample, uint32_t view, int width, int height,
                                 struct eng_error *err)
{
    return sample_image(p, seed, NULL, input, sample, view, width, height, err);
}

/* Input `input` of inputs, or NULL with err. */
static const struct img *input_image(const struct policy_inputs *inputs, uint32_t input,
                                     struct eng_error *err)
{
    if (!inputs || input >= inputs->count || !inputs->images[input])
        return eng_fail(err, ENG_INVALID, "input %u: the request has %u inputs", input,
                        inputs ? inputs->count : 0),
               NULL;
    return inputs->images[input];
}

struct trace *policy_sample_inputs(const struct policy *p, uint64_t seed,
                                   const struct policy_inputs *inputs, uint32_t input,
                                   uint32_t sample, uint32_t view, struct eng_error *err)
{
    const struct img *in = input_image(inputs, input, err);
    return in ? sample_image(p, seed, inputs, input, sample, view, in->width, in->height, err)
              : NULL;
}

struct trace *policy_sample_audio(const struct policy *p, uint64_t seed, uint32_t input,
                                  uint32_t sample, uint32_t view, size_t length,
                                  const struct audio_framing *framing, struct eng_error *err)
{
    if (p->root->image) {
        eng_fail(err, ENG_INVALID,
                 "the policy is for images (%s is an image op); it cannot run on audio",
                 p->root->image->call.op->name);
        return NULL;
    }
    if (framing && (framing->hop_length < 1 || framing->n_fft < 1 || framing->bins < 1)) {
        eng_fail(err, ENG_INVALID,
                 "framing: hop_length (%d), n_fft (%d) and bins (%d) must be at least 1",
                 framing->hop_length, framing->n_fft, framing->bins);
        return NULL;
    }
    if (length > INT_MAX / 4) {
        eng_fail(err, ENG_TOO_LARGE, "the waveform has %zu samples; policies take at most %d",
                 length, INT_MAX / 4);
        return NULL;
    }
    struct sampler s = {.width = (int)length,
                        .height = 1,
                        .axis = OP_DOMAIN_WAVEFORM,
                        .framing = framing,
                        .max_width = 4 * (int)length,
                        .err = err};
    return sample_view(p, seed, input, sample, view, &s);
}

/* ---- Execution ------------------------------------------------------------------------------ */

static void trace_clear(struct trace *t)
{
    for (size_t i = 0; i < t->count; i++)
        trace_item_free(&t->items[i]);
    free(t->items);
    memset(t, 0, sizeof *t);
}

static void trace_item_free(struct trace_item *it)
{
    for (int i = 0; it->branches && i < it->branch_count; i++)
        trace_clear(&it->branches[i]);
    free(it->branches);
    free(it->weights);
    if (it->paste) copy_paste_draws_free(&it->paste->draws);
    free(it->paste);
}

void trace_free(struct trace *t)
{
    if (!t) return;
    trace_clear(t);
    free(t);
}

struct executor {
    uint64_t seed;
    uint32_t input, sample, view;
    uint32_t op_index;       /* numbers op applications in trace order, for their noise streams */
    struct targets *targets; /* carried along with the pixels, or NULL */
    const struct policy_inputs *inputs; /* what CopyPaste pastes from, or NULL */
    struct policy_origins *origins;     /* where pasted objects came from (with inputs) */
    struct eng_error *err;
};

/* Moves the targets as call moved the pixels from in to out; point ops leave them. */
static int map_targets(struct executor *ex, const struct op_call *call, const struct img *in,
                       const struct img *out)
{
    double m[6];
    if (!ex->targets || !call->op->map_targets) return 0;
    call->op->map_targets(call, in->width, in->height, m);
    return targets_apply_affine(ex->targets, m, out->width, out->height, NULL, ex->err);
}

static struct img *execute(struct executor *ex, const struct trace *t, const struct img *in);

/* AugMix's blend, computed in float and truncated to uint8 as torchvision's tensor path does. All
 * branches keep the input's size, since mix branches hold only size-preserving ops. */
static struct img *execute_mix(struct executor *ex, const struct trace_item *it,
                               const struct img *in)
{
    size_t samples = (size_t)in->width * (size_t)in->channels * (size_t)in->height;
    float *acc = malloc(samples * sizeof *acc);
    struct img *out = img_new(in->width, in->height, in->channels, ex->err);
    if (!acc || !out) {
        free(acc);
        img_free(out);
        eng_fail(ex->err, ENG_NO_MEMORY, "out of memory for a mix");
        return NULL;
    }
    float keep = (float)(1.0 - it->m);
    for (int y = 0; y < in->height; y++) {
        const uint8_t *row = img_row(in, y);
        float *a = acc + (size_t)y * in->width * in->channels;
        for (int x = 0; x < in->width * in->channels; x++)
            a[x] = keep * row[x];
    }
    for (int b = 0; b < it->branch_count; b++) {
        struct img *branch = execute(ex, &it->branches[b], in);
        if (!branch) goto fail;
        if (branch->width != in->width || branch->height != in->height ||
            branch->channels != in->channels) {
            img_free(branch);
            eng_fail(ex->err, ENG_INVALID,
                     "a mix branch changed the image size; mix branches may "
                     "only hold ops that keep it");
            goto fail;
        }
        float w = (float)(it->m * it->weights[b]);
        for (int y = 0; y < in->height; y++) {
            const uint8_t *row = img_row(branch, y);
            float *a = acc + (size_t)y * in->width * in->channels;
            for (int x = 0; x < in->width * in->channels; x++)
                a[x] += w * row[x];
        }
        img_free(branch);
    }
    for (int y = 0; y < in->height; y++) {
        uint8_t *row = img_row(out, y);
        const float *a = acc + (size_t)y * in->width * in->channels;
        for (int x = 0; x < in->width * in->channels; x++)
            row[x] = a[x] <= 0 ? 0 : a[x] >= 255 ? 255 : (uint8_t)a[x];
    }
    free(acc);
    return out;
fail:
    free(acc);
    img_free(out);
    return NULL;
}

/* Replaces *id, an object's id in input `input`, by a new origin id (policy.h). */
static int origin_id(struct policy_origins *o, uint32_t input, int *id, struct eng_error *err)
{
    if (o->count >= (size_t)INT_MAX)
        return eng_fail(err, ENG_TOO_LARGE, "more than %d pasted objects", INT_MAX);
    struct policy_origin *grown = realloc(o->items, (o->count + 1) * sizeof *grown);
    if (!grown) return eng_fail(err, ENG_NO_MEMORY, "out of memory for the pasted objects");
    o->items = grown;
    grown[o->count] = (struct policy_origin){input, *id};
    *id = -1 - (int)o->count++;
    return 0;
}

/* Gives the result's objects from the source, kept and dropped, their origin ids. */
static int name_origins(struct executor *ex, uint32_t source, struct copy_paste_result *r)
{
    struct targets *t = r->targets;
    for (size_t i = 0; i < t->count; i++)
        if (r->from_src[i] && origin_id(ex->origins, source, &t->ids[i], ex->err) != 0) return -1;
    for (size_t i = 0; i < t->dropped_count; i++)
        if (r->dropped_from_src[i] &&
            origin_id(ex->origins, source, &t->dropped[i].id, ex->err) != 0)
            return -1;
    return 0;
}

/* Pastes from the item's source onto in and ex's targets, which become the result's. */
static struct img *execute_paste(struct executor *ex, const struct paste_item *pi,
                                 const struct img *in)
{
    const struct policy_inputs *inputs = ex->inputs;
    ex->op_index++;
    if (!ex->targets || !ex->origins || !inputs || pi->source >= inputs->count ||
        !inputs->targets || !inputs->targets[pi->source])
        return eng_fail(ex->err, ENG_INVALID,
                        "CopyPaste needs the request's inputs and their targets "
                        "(trace_apply_inputs)"),
               NULL;
    struct copy_paste_result r;
    if (copy_paste_drawn(in, ex->targets, inputs->images[pi->source], inputs->targets[pi->source],
                         &pi->params, &pi->draws, &r, ex->err) != 0)
        return NULL;
    struct img *out = NULL;
    if (name_origins(ex, pi->source, &r) == 0) {
        const struct targets held = *ex->targets;
        *ex->targets = *r.targets;
        *r.targets = held; /* freed with the result */
        out = r.image;
        r.image = NULL;
    }
    copy_paste_result_free(&r);
    return out;
}

static struct img *execute(struct executor *ex, const struct trace *t, const struct img *in)
{
    /* Ops never modify their input, so the first one reads the caller's image directly. */
    const struct img *current = in;
    for (size_t i = 0; current && i < t->count; i++) {
        const struct trace_item *it = &t->items[i];
        struct img *next;
        if (it->is_mix) {
            next = execute_mix(ex, it, current);
        } else if (it->paste) {
            next = execute_paste(ex, it->paste, current);
        } else {
            struct rng noise;
            rng_init(&noise, ex->seed, ex->input, ex->sample,
                     ex->view * VIEW_STREAMS + RNG_STREAM_OP(ex->op_index));
            ex->op_index++;
            const struct targets *held = ex->targets;
            next = op_apply(&it->call, current, held ? held->boxes : NULL, held ? held->count : 0,
                            &noise, ex->err);
            if (next && map_targets(ex, &it->call, current, next) != 0) {
                img_free(next);
                next = NULL;
            }
        }
        if (current != in) img_free((struct img *)current);
        current = next;
    }
    return current == in ? img_clone(in, ex->err) : (struct img *)current;
}

struct img *trace_apply(const struct trace *t, const struct img *in, uint64_t seed, uint32_t input,
                        uint32_t sample, struct eng_error *err)
{
    struct executor ex = {
        .seed = seed, .input = input, .sample = sample, .view = t->view, .err = err};
    return execute(&ex, t, in);
}

static const char mix_refusal[] =
    "AugMix's mix blends the image with differently transformed copies of itself, so no one "
    "transform carries boxes, masks and keypoints; use a policy without mix for targets";

/* trace_apply_targets with ex set up but for its targets. */
static struct img *execute_targets(struct executor *ex, const struct trace *t, const struct img *in,
                                   struct targets *targets, const struct targets_filter *filter)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->items[i].is_mix) return eng_fail(ex->err, ENG_INVALID, "%s", mix_refusal), NULL;
    if (targets->width != in->width || targets->height != in->height)
        return eng_fail(ex->err, ENG_INVALID, "the targets are for a %dx%d image, not %dx%d",
                        targets->width, targets->height, in->width, in->height),
               NULL;
    ex->targets = targets;
    struct img *out = execute(ex, t, in);
    if (out && filter) targets_filter(targets, filter);
    return out;
}

struct img *trace_apply_targets(const struct trace *t, const struct img *in,
                                struct targets *targets, const struct targets_filter *filter,
                                uint64_t seed, uint32_t input, uint32_t sample,
                                struct eng_error *err)
{
    struct executor ex = {
        .seed = seed, .input = input, .sample = sample, .view = t->view, .err = err};
    return execute_targets(&ex, t, in, targets, filter);
}

struct img *trace_apply_inputs(const struct trace *t, const struct policy_inputs *inputs,
                               uint32_t input, struct targets *targets,
                               const struct targets_filter *filter, struct policy_origins *origins,
                               uint64_t seed, uint32_t sample, struct eng_error *err)
{
    const struct img *in = input_image(inputs, input, err);
    struct executor ex = {.seed = seed,
                          .input = input,
                          .sample = sample,
                          .view = t->view,
                          .inputs = inputs,
                          .origins = origins,
                          .err = err};
    return in ? execute_targets(&ex, t, in, targets, filter) : NULL;
}

void policy_origins_free(struct policy_origins *o)
{
    free(o->items);
    memset(o, 0, sizeof *o);
}

int policy_maps_targets(const struct policy *p, struct eng_error *err)
{
    return find_kind(p->root, NODE_MIX) ? eng_fail(err, ENG_INVALID, "%s", mix_refusal) : 0;
}

static const struct audio_bank no_clips;

struct audio *trace_apply_wave(const struct trace *t, const struct audio *in,
                               const struct audio_bank *bank, uint64_t seed, uint32_t input,
                               uint32_t sample, struct eng_error *err)
{
    const struct audio *current = in;
    for (size_t i = 0; current && i < t->count; i++) {
        const struct op_call *call = &t->items[i].call;
        if (t->items[i].is_mix || call->op->domain != OP_DOMAIN_WAVEFORM) continue;
        /* Audio traces hold no mixes, so item i is op application i, as execute numbers them. */
        struct rng noise;
        rng_init(&noise, seed, input, sample, t->view * VIEW_STREAMS + RNG_STREAM_OP(i));
        struct audio *next =
            call->op->apply_wave(current, call, bank ? bank : &no_clips, &noise, err);
        if (current != in) audio_free((struct audio *)current);
        current = next;
    }
    return current == in ? wave_clone(in, err) : (struct audio *)current;
}

struct audio_spec *trace_apply_spec(const struct trace *t, const struct audio_spec *in,
                                    struct eng_error *err)
{
    const struct audio_spec *current = in;
    for (size_t i = 0; current && i < t->count; i++) {
        const struct op_call *call = &t->items[i].call;
        if (t->items[i].is_mix || call->op->domain != OP_DOMAIN_SPECTROGRAM) continue;
        struct audio_spec *next = call->op->apply_spec(current, call, err);
        if (current != in) audio_spec_free((struct audio_spec *)current);
        current = next;
    }
    return current == in ? spec_clone(in, err) : (struct audio_spec *)current;
}

/* ---- Traces as JSON ------------------------------------------------------------------------- */

/* "fill" when the policy set it. */
static void set_fill(json_t *o, const struct op_call *call)
{
    if (call->fill_given)
        json_object_set_new(
            o, "fill",
            json_pack("[i,i,i,i]", call->fill[0], call->fill[1], call->fill[2], call->fill[3]));
}

static json_t *call_to_json(const struct op_call *call)
{
    const struct op_desc *op = call->op;
    json_t *o = json_pack("{s:s}", "op", op->name);
    for (int i = 0; o && i < op->arg_count; i++) {
        const struct op_arg_desc *a = &op->args[i];
        json_t *v = a->kind == OP_ARG_ENUM      ? json_string(a->choices[(int)call->args[i]])
                    : a->kind == OP_ARG_INTEGER ? json_integer((json_int_t)call->args[i])
                                                : json_real(call->args[i]);
        json_object_set_new(o, a->name, v);
    }
    if (o && (op->takes & OP_TAKES_INTERPOLATION))
        json_object_set_new(o, "interpolation",
                            json_string(call->interpolation ? "bilinear" : "nearest"));
    if (o && (op->takes & OP_TAKES_FILL)) set_fill(o, call);
    return o;
}

/* A CopyPaste's parameters and draws: {"op", "jitter": [lo, hi], "flip_p", "blend_sigma",
 * "min_area", "fill" (when given), "source": input, "objects": [its chosen objects],
 * "jittered": {"destination": {...}, "source": {...}}}. */
static json_t *paste_to_json(const struct trace_item *it)
{
    const struct paste_item *pi = it->paste;
    const struct copy_paste_params *p = &pi->params;
    json_t *objects = json_array();
    for (size_t i = 0; objects && i < pi->draws.chosen_count; i++)
        json_array_append_new(objects, json_integer(pi->draws.chosen[i]));
    json_t *o = json_pack("{s:s, s:[f, f], s:f, s:f, s:I, s:i, s:o, s:{s:o, s:o}}", "op",
                          it->call.op->name, "jitter", p->scale_lo, p->scale_hi, "flip_p",
                          p->hflip_prob, "blend_sigma", p->blend_sigma, "min_area",
                          (json_int_t)p->min_area, "source", (int)pi->source, "objects", objects,
                          "jittered", "destination", copy_paste_jitter_json(&pi->draws.jitter[0]),
                          "source", copy_paste_jitter_json(&pi->draws.jitter[1]));
    if (o) set_fill(o, &it->call);
    return o;
}

json_t *trace_to_json(const struct trace *t)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < t->count; i++) {
        const struct trace_item *it = &t->items[i];
        if (!it->is_mix) {
            json_array_append_new(list, it->paste ? paste_to_json(it) : call_to_json(&it->call));
            continue;
        }
        json_t *weights = json_array(), *branches = json_array();
        for (int b = 0; b < it->branch_count; b++) {
            json_array_append_new(weights, json_real(it->weights[b]));
            json_array_append_new(branches, trace_to_json(&it->branches[b]));
        }
        json_array_append_new(list, json_pack("{s:{s:f, s:o, s:o}}", "mix", "m", it->m, "weights",
                                              weights, "branches", branches));
    }
    return list;
}

size_t trace_op_count(const struct trace *t)
{
    size_t count = 0;
    for (size_t i = 0; i < t->count; i++) {
        if (!t->items[i].is_mix) count++;
        for (int b = 0; t->items[i].is_mix && b < t->items[i].branch_count; b++)
            count += trace_op_count(&t->items[i].branches[b]);
    }
    return count;
}
