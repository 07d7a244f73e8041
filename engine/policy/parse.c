/* Parsing: a policy document (JSON, or a preset's name) into the tree of nodes that sampling
 * walks, with every argument checked against the op registry and every error naming the JSON
 * pointer of the bad node. Presets are expanded as they are met, so the tree only ever holds the
 * nodes a user could write. */
#include "policy/internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/presets.h"
#include "policy/saved.h"

/* Bounds that keep a hostile document from costing more than a small one. */
#define MAX_DEPTH         32
#define MAX_NODES         4096
#define MAX_REPEAT        16
#define MAX_BINS          1000
#define MAX_DAG_VERTICES  1024
#define PROBABILITY_SLACK 1e-6

int policy_fail_at(struct parser *ps, const char *fmt, ...)
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
        policy_fail_at(ps, "the policy has more than %d nodes", MAX_NODES);
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
        policy_fail_at(ps, "must be a number");
    else if (!(json_number_value(v) >= min && json_number_value(v) <= max))
        policy_fail_at(ps, "must be in [%g, %g]", min, max);
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
        policy_fail_at(ps, "must be a non-empty array of nodes");
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
            policy_fail_at(ps, "unknown key%s", op ? " for this op" : "");
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
        if (!(f >= 0 && f <= 255)) rc = policy_fail_at(ps, "must be in [0, 255]");
        for (int c = 0; c < 4; c++)
            call->fill[c] = (uint8_t)lround(f);
    } else if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= 4) {
        for (size_t c = 0; c < 4 && rc == 0; c++) {
            const json_t *item = json_array_get(v, c < json_array_size(v) ? c : 0);
            double f = json_number_value(item);
            if (!json_is_number(item) || !(f >= 0 && f <= 255))
                rc = policy_fail_at(ps, "must be a number or 1 to 4 numbers in [0, 255]");
            else
                call->fill[c] = (uint8_t)lround(f);
        }
    } else {
        rc = policy_fail_at(ps, "must be a number or 1 to 4 numbers in [0, 255]");
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
        return policy_fail_at(ps, "\"uniform\" must be true or false");
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
        policy_fail_at(ps, "must be {\"offset\", \"scale\", \"round\"}");
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
            policy_fail_at(ps, "\"round\" must be none, trunc or even");
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
        if (!(n->level >= 0 && n->level <= 1)) rc = policy_fail_at(ps, "must be in [0, 1]");
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
            rc = policy_fail_at(ps, "\"bins\" must be a whole number in [2, %d]", MAX_BINS);
        else if (bin && (!json_is_integer(bin) || json_integer_value(bin) < 0 ||
                         json_integer_value(bin) >= json_integer_value(bins)))
            rc = policy_fail_at(ps, "\"bin\" must be a whole number in [0, bins - 1]");
        else if (below && (bin || !json_is_integer(below) || json_integer_value(below) < 1 ||
                           json_integer_value(below) > json_integer_value(bins)))
            rc = policy_fail_at(ps,
                                "\"below\" must be a whole number in [1, bins], without \"bin\"");
        else {
            n->bins = (int)json_integer_value(bins);
            n->bin = bin ? (int)json_integer_value(bin) : -1;
            n->below = below ? (int)json_integer_value(below) : n->bins;
            n->level_kind = bin ? LEVEL_BIN : LEVEL_RANDOM_BIN;
        }
    } else {
        rc = policy_fail_at(ps, "must be a number in [0, 1], {\"bin\": B, \"bins\": N}, {\"bins\": "
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
            rc = policy_fail_at(ps, "[%g, %g] must be a range with 0 < lo <= hi <= %g", p->scale_lo,
                                p->scale_hi, COPY_PASTE_LSJ_HI);
    } else if (v && !(name && strcmp(name, "lsj") == 0)) {
        rc = policy_fail_at(ps, "must be \"lsj\", \"ssj\" or [lo, hi]");
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
        policy_fail_at(ps,
                       name ? "unknown op \"%s\" (GET /v1/ops lists them)" : "must be an op name%s",
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
            bad = policy_fail_at(ps, "is drawn at random when the policy runs; it cannot be set");
        } else if (a->kind == OP_ARG_ENUM) {
            int found = -1;
            for (int c = 0; json_is_string(v) && a->choices[c]; c++)
                if (strcmp(a->choices[c], json_string_value(v)) == 0) found = c;
            if (found < 0)
                bad =
                    policy_fail_at(ps, "must be one of the op's choices (GET /v1/ops lists them)");
            n->call.args[i] = found;
        } else if (!json_is_number(v) || (a->kind == OP_ARG_INTEGER &&
                                          json_number_value(v) != floor(json_number_value(v)))) {
            bad = policy_fail_at(ps, "must be a %s",
                                 a->kind == OP_ARG_INTEGER ? "whole number" : "number");
        } else if (!(json_number_value(v) >= a->min && json_number_value(v) <= a->max)) {
            bad = policy_fail_at(ps, "must be in [%g, %g]", a->min, a->max);
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
            policy_fail_at(ps, "%s takes no level", op->name);
            path_pop(ps, mark);
        }
        goto fail;
    }
    n->random_sign = op->level.signed_by_default;
    json_t *level = json_object_get(doc, "level");
    if (level) {
        if (op->level.map == LEVEL_NONE) {
            size_t mark = path_push(ps, "level");
            policy_fail_at(ps, "%s takes no level", op->name);
            path_pop(ps, mark);
            goto fail;
        }
        if (parse_level(ps, n, level) != 0) goto fail;
        if (json_object_get(doc, op->args[op->level.arg].name)) {
            policy_fail_at(ps, "give either \"level\" or \"%s\", not both",
                           op->args[op->level.arg].name);
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
        if (!ok) policy_fail_at(ps, "must be [lo, hi], the magnitude range a level maps onto");
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
            policy_fail_at(ps, "must be \"width\" or \"height\", with \"range\" in shares of it");
        path_pop(ps, mark);
        if (!ok) goto fail;
    }
    json_t *sign = json_object_get(doc, "random_sign");
    if (sign) {
        if (!json_is_boolean(sign)) {
            size_t mark = path_push(ps, "random_sign");
            policy_fail_at(ps, "must be true or false");
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
            policy_fail_at(ps, "must be \"nearest\" or \"bilinear\"");
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
        policy_fail_at(ps, "must hold one number per choice (%d)", n->kid_count);
        path_pop(ps, mark);
        goto fail;
    }
    for (int i = 0; i < n->kid_count; i++) {
        double w = 1.0;
        if (weights) {
            json_t *item = json_array_get(weights, (size_t)i);
            w = json_number_value(item);
            if (!json_is_number(item) || !(w >= 0 && isfinite(w))) {
                policy_fail_at(ps, "must be non-negative numbers");
                path_pop(ps, mark);
                goto fail;
            }
        }
        total += w;
        n->weights[i] = total;
    }
    if (!(total > 0)) {
        policy_fail_at(ps, "must not all be zero");
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
            policy_fail_at(ps, "must be a whole number in [0, %d]", MAX_REPEAT);
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
    if (!inner) policy_fail_at(ps, "is missing: the node to apply");
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

/* The count is checked against its bound again here, so that the allocation's size is bounded
 * where it is made. */
void *policy_dag_array(const struct node *n, size_t size)
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
        policy_fail_at(ps, "must be {\"start\": vertex, \"edges\": [...]}");
        goto fail;
    }
    if (check_keys(ps, dag, dag_keys, NULL) != 0) goto fail;
    const char *start = json_string_value(json_object_get(dag, "start"));
    json_t *edges = json_object_get(dag, "edges");
    if (!start) {
        policy_fail_at(ps, "\"start\" must name a vertex");
        goto fail;
    }
    if (!json_is_array(edges)) {
        policy_fail_at(ps, "\"edges\" must be an array");
        goto fail;
    }
    if (!(n = node_new(ps, NODE_DAG))) goto fail;
    if ((n->start = vertex_index(n, start, 1)) < 0) goto no_memory;
    int start_on_edge = 0;
    size_t edges_mark = path_push(ps, "edges");
    for (size_t i = 0; i < json_array_size(edges); i++) {
        json_t *edge = json_array_get(edges, i);
        size_t item = path_push_index(ps, i);
        const char *from = json_string_value(json_object_get(edge, "from"));
        const char *to = json_string_value(json_object_get(edge, "to"));
        double p;
        if (!json_is_object(edge)) {
            policy_fail_at(ps, "must be {\"from\", \"to\", \"p\", \"do\"}");
            goto fail;
        }
        if (check_keys(ps, edge, edge_keys, NULL) != 0) goto fail;
        if (!from || !to) {
            policy_fail_at(ps, "needs \"from\" and \"to\" vertex names");
            goto fail;
        }
        if (parse_number(ps, json_object_get(edge, "p"), "p", 0, 1, &p) != 0) goto fail;
        int f = vertex_index(n, from, 1), t = vertex_index(n, to, 1);
        if (f < 0 || t < 0) goto no_memory;
        start_on_edge |= f == n->start || t == n->start;
        if (n->vertex_count > MAX_DAG_VERTICES) {
            policy_fail_at(ps, "the graph has more than %d vertices", MAX_DAG_VERTICES);
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
    /* The graph's vertices are the ends of its edges: a start on none is a typo, and the walk
     * would apply nothing. */
    if (!start_on_edge) {
        path_push(ps, "start");
        policy_fail_at(ps, "\"%s\" is not a vertex of the graph: no edge goes from or to it",
                       start);
        goto fail;
    }
    char *state = policy_dag_array(n, 1);
    if (!state) goto no_memory;
    int cyclic = 0;
    for (int v = 0; v < n->vertex_count && !cyclic; v++)
        if (state[v] == 0) cyclic = has_cycle(n, v, state);
    free(state);
    if (cyclic) {
        policy_fail_at(ps, "the edges form a cycle; a policy graph must be acyclic");
        goto fail;
    }
    for (int v = 0; v < n->vertex_count; v++) {
        double sum = 0;
        for (int e = 0; e < n->vertices[v].edge_count; e++)
            sum += n->vertices[v].edges[e].p;
        if (n->vertices[v].edge_count > 0 && fabs(sum - 1.0) > PROBABILITY_SLACK) {
            policy_fail_at(ps,
                           "the edges out of vertex \"%s\" have probabilities summing to %g, not 1",
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

/* What a reference (a name, or {"preset": name, ...}) stands for: a preset's expansion, or a saved
 * policy's document (policy/saved.h), which takes no parameters. A saved name is read from the
 * table once per parse and kept in ps->saved, so the tree and the compiled document come from
 * the same document even when the policy is replaced meanwhile. */
static json_t *expand_reference(struct parser *ps, const json_t *doc)
{
    const char *name = json_is_string(doc) ? json_string_value(doc)
                                           : json_string_value(json_object_get(doc, "preset"));
    if (!name || preset_find(name)) return preset_expand(doc, ps->err);
    json_t *saved = json_incref(json_object_get(ps->saved, name));
    if (!saved && (saved = policy_saved_get(name))) {
        if (!ps->saved) ps->saved = json_object();
        if (!ps->saved || json_object_set(ps->saved, name, saved) != 0) {
            json_decref(saved);
            eng_no_memory(ps->err);
            return NULL;
        }
    }
    if (!saved) return preset_expand(doc, ps->err); /* the unknown name's error */
    if (json_is_object(doc) && json_object_size(doc) > 1) {
        json_decref(saved);
        eng_fail(ps->err, ENG_INVALID, "saved policy \"%s\" takes no parameters", name);
        return NULL;
    }
    return saved;
}

static struct node *parse_preset(struct parser *ps, const json_t *doc, int depth, int root)
{
    json_t *expanded = expand_reference(ps, doc);
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
        policy_fail_at(ps, "nodes nest deeper than %d levels", MAX_DEPTH);
        return NULL;
    }
    int root = ps->at_root;
    ps->at_root = 0;
    if (json_is_string(doc)) return parse_preset(ps, doc, depth, root);
    if (!json_is_object(doc)) {
        policy_fail_at(ps, "must be a node: an object with op, seq, choice, p, repeat, mix, dag or "
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
            policy_fail_at(ps, "\"views\" may only be the whole policy");
            return NULL;
        }
        if (check_keys(ps, doc, keys, NULL) != 0) return NULL;
        struct node *n = node_new(ps, NODE_VIEWS);
        if (n && parse_kids(ps, n, json_object_get(doc, "views"), "views", depth) == 0) return n;
        node_free(n);
        return NULL;
    }
    policy_fail_at(ps, "must have one of op, seq, choice, p, repeat, mix, dag, preset, views");
    return NULL;
}

const char *policy_node_pointer(const struct node *op)
{
    return op->pointer[0] ? op->pointer : "/";
}

const struct node *policy_find_node(const struct node *n, enum node_kind kind)
{
    const struct node *found = n && n->kind == kind ? n : NULL;
    for (int i = 0; n && !found && i < n->kid_count; i++)
        found = policy_find_node(n->kids[i], kind);
    for (int v = 0; n && !found && v < n->vertex_count; v++)
        for (int e = 0; !found && e < n->vertices[v].edge_count; e++)
            found = policy_find_node(n->vertices[v].edges[e].node, kind);
    return found;
}

static struct node *parse_node(struct parser *ps, const json_t *doc, int depth)
{
    struct node *n = parse_kind(ps, doc, depth);
    if (n && policy_check_domains(ps, n) != 0) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* The document with presets and saved policies expanded, for GET /v1/policies/{name} and
 * echoing. */
static json_t *expand_document(struct parser *ps, const json_t *doc)
{
    struct eng_error *err = ps->err;
    if (json_is_string(doc) || (json_is_object(doc) && json_object_get(doc, "preset"))) {
        json_t *expanded = expand_reference(ps, doc);
        if (!expanded) return NULL;
        json_t *deeper = expand_document(ps, expanded);
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
                json_t *child = expand_document(ps, json_array_get(value, i));
                if (!child) goto fail;
                json_array_set_new(value, i, child);
            }
            if (json_is_object(value)) {
                json_t *child = expand_document(ps, value);
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
    p->paste = policy_find_node(p->root, NODE_COPY_PASTE);
    if (p->root && p->root->kind == NODE_VIEWS) {
        p->views = p->root->kids;
        p->view_count = p->root->kid_count;
    } else if (p->root) {
        p->views = &p->root;
        p->view_count = 1;
    }
    if (p->root) p->doc = expand_document(&ps, doc);
    p->uses_saved = ps.saved != NULL;
    json_decref(ps.saved);
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

const char *policy_error_prefix(const struct eng_error *err)
{
    return err->message[0] == '/' ? "policy" : "";
}

void policy_free(struct policy *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) > 1) return;
    node_free(p->root);
    json_decref(p->doc);
    free(p);
}

json_t *policy_to_json(const struct policy *p)
{
    return json_incref(p->doc);
}

int policy_uses_saved(const struct policy *p)
{
    return p->uses_saved;
}

unsigned policy_domain(const struct policy *p)
{
    return p->domain;
}

int policy_view_count(const struct policy *p)
{
    return p->view_count;
}
