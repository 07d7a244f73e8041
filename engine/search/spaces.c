/* Named spaces, {"space": name, ...arguments}: randaugment and specaugment are placeholder
 * documents over their presets' shapes; ops-subset and autoaugment are flat encodings with their
 * own concretize (gaugment.c has G-Augment's graphs). Every one passes space_check at compile. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy/presets.h"
#include "search/internal.h"

int spaces_check_keys(const json_t *args, const char *space, const char *const *allowed,
                      struct eng_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)args, key, value)
    {
        int known = strcmp(key, "space") == 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(key, *a) == 0;
        if (!known)
            return eng_fail(err, ENG_INVALID, "/%s: unknown argument for the %s space", key, space);
    }
    return 0;
}

int spaces_int_arg(const json_t *args, const char *name, int def, int min, int max, int *out,
                   struct eng_error *err)
{
    const json_t *v = json_object_get(args, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return eng_fail(err, ENG_INVALID, "/%s: must be a whole number in [%d, %d]", name, min,
                        max);
    *out = (int)json_integer_value(v);
    return 0;
}

int spaces_ops_arg(const json_t *args, const char *const *def, unsigned domains,
                   const struct op_desc **ops, size_t max, size_t *count, struct eng_error *err)
{
    const json_t *list = json_object_get(args, "ops");
    if (list && (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > max))
        return eng_fail(err, ENG_INVALID, "/ops: must be an array of 1 to %zu op names", max);
    *count = 0;
    for (size_t i = 0; list ? i < json_array_size(list) : def[i] != NULL; i++) {
        const char *name = list ? json_string_value(json_array_get(list, i)) : def[i];
        const struct op_desc *op = name ? op_find(name) : NULL;
        if (!op || !(domains & (1u << op->domain)))
            return eng_fail(err, ENG_INVALID,
                            "/ops/%zu: must name an op of this space's domain (GET /v1/ops lists "
                            "them)",
                            i);
        for (size_t j = 0; j < *count; j++)
            if (ops[j] == op)
                return eng_fail(err, ENG_INVALID, "/ops/%zu: %s is listed twice", i, name);
        ops[(*count)++] = op;
    }
    return 0;
}

json_t *spaces_op_level(const struct op_desc *op, double level)
{
    if (op->level.map == LEVEL_NONE) return json_pack("{s:s}", "op", op->name);
    return json_pack("{s:s, s:f}", "op", op->name, "level", level);
}

/* An argument as a value of the generated document: a number or a string as itself, an array as
 * a choice among its items, an object as the distribution it holds ({"int": [0, 30]}). */
static json_t *placeholder_of(const json_t *arg)
{
    if (json_is_array(arg)) return json_pack("{s:{s:O}}", "$search", "choice", arg);
    if (json_is_object(arg)) return json_pack("{s:O}", "$search", arg);
    return json_deep_copy(arg);
}

/* args[name] (or def, JSON text, when absent) as a value of the generated document. */
static json_t *arg_value(const json_t *args, const char *name, const char *def)
{
    const json_t *arg = json_object_get(args, name);
    if (arg) return placeholder_of(arg);
    json_t *parsed = json_loads(def, JSON_DECODE_ANY, NULL);
    json_t *value = parsed ? placeholder_of(parsed) : NULL;
    json_decref(parsed);
    return value;
}

/* ---- randaugment, specaugment: placeholder documents ---------------------------------------- */

/* The randaugment preset with n and m open: by default N in {1, 2, 3} and M any of
 * torchvision's 31 magnitude bins, 0 to 30. */
static struct search_space *randaugment(const json_t *args, struct eng_error *err)
{
    static const char *const keys[] = {"n", "m", "bins", "interpolation", "fill", NULL};
    if (spaces_check_keys(args, "randaugment", keys, err) != 0) return NULL;
    json_t *doc = json_pack("{s:s, s:o, s:o}", "preset", "randaugment", "n",
                            arg_value(args, "n", "[1, 2, 3]"), "m",
                            arg_value(args, "m", "{\"int\": [0, 30]}"));
    for (size_t i = 2; doc && keys[i]; i++)
        if (json_object_get(args, keys[i]))
            json_object_set_new(doc, keys[i], placeholder_of(json_object_get(args, keys[i])));
    if (!doc) {
        eng_no_memory(err);
        return NULL;
    }
    return space_placeholders(doc, err);
}

/* The specaugment presets' shape (a TimeWarp, mF FrequencyMasks, mT TimeMasks) with F, mF, T, p
 * and mT open: by default the span of the paper's LB, LD, SM and SS policies. */
static struct search_space *specaugment(const json_t *args, struct eng_error *err)
{
    static const char *const keys[] = {"F", "mF", "T", "p", "mT", "W", "value", NULL};
    static const char *const renames[][2] = {
        {"/seq/0/W", "/W"}, {"/seq/1/F", "/F"}, {"/seq/1/count", "/mF"},
        {"/seq/2/T", "/T"}, {"/seq/2/p", "/p"}, {"/seq/2/count", "/mT"},
    };
    if (spaces_check_keys(args, "specaugment", keys, err) != 0) return NULL;
    const json_t *value = json_object_get(args, "value");
    if (value && !json_is_string(value)) {
        eng_fail(err, ENG_INVALID, "/value: must be \"zero\" or \"mean\" (it is not searched)");
        return NULL;
    }
    const char *fill = value ? json_string_value(value) : "zero";
    json_t *doc = json_pack("{s:[{s:s, s:o}, {s:s, s:o, s:o, s:s}, {s:s, s:o, s:o, s:o, s:s}]}",
                            "seq", "op", "TimeWarp", "W", arg_value(args, "W", "80"), "op",
                            "FrequencyMask", "F", arg_value(args, "F", "{\"int\": [0, 27]}"),
                            "count", arg_value(args, "mF", "[1, 2]"), "value", fill, "op",
                            "TimeMask", "T", arg_value(args, "T", "{\"int\": [0, 100]}"), "p",
                            arg_value(args, "p", "{\"quantized\": [0.05, 1, 0.05]}"), "count",
                            arg_value(args, "mT", "[1, 2]"), "value", fill);
    if (!doc) {
        eng_no_memory(err);
        return NULL;
    }
    struct search_space *s = space_placeholders(doc, err);
    for (size_t i = 0; s && i < sizeof renames / sizeof renames[0]; i++)
        if (space_rename(s, renames[i][0], renames[i][1], err) != 0) {
            search_space_free(s);
            s = NULL;
        }
    return s;
}

/* ---- ops-subset ----------------------------------------------------------------------------- */

/* Dimension i: whether op node i (of the array ctx) is in the uniform choice: option 0 in, 1 out,
 * so that the lowest point holds every op. */
static json_t *subset_concretize(const struct search_space *s, const double *point,
                                 struct eng_error *err)
{
    const json_t *nodes = s->ctx;
    json_t *choice = json_array();
    for (size_t i = 0; choice && i < s->n; i++)
        if (search_dim_snap(&s->dims[i], point[i]) == 0 &&
            json_array_append_new(choice, json_deep_copy(json_array_get(nodes, i))) != 0) {
            json_decref(choice);
            choice = NULL;
        }
    if (choice && json_array_size(choice) == 0) {
        json_decref(choice);
        eng_fail(err, ENG_INVALID, "point: an ops-subset point must include at least one op");
        return NULL;
    }
    json_t *doc = choice ? json_pack("{s:o}", "choice", choice) : NULL;
    if (!doc) eng_no_memory(err);
    return doc;
}

/* Each op in with probability 1/2, but never none: an empty draw keeps one op at random. */
static void subset_sample(void *space, struct rng *r, double *point)
{
    const struct search_space *s = space;
    bool any = false;
    for (size_t i = 0; i < s->n; i++) {
        point[i] = (double)rng_below(r, 2);
        any |= point[i] == 0;
    }
    if (!any) point[rng_below(r, (uint32_t)s->n)] = 0;
}

/* One op in or out; taking out the only op moves it to another instead. */
static void subset_mutate(void *space, struct rng *r, const double *parent, double *child)
{
    const struct search_space *s = space;
    memcpy(child, parent, s->n * sizeof *child);
    size_t i = rng_below(r, (uint32_t)s->n), in = 0;
    child[i] = child[i] == 0 ? 1 : 0;
    for (size_t j = 0; j < s->n; j++)
        in += child[j] == 0;
    if (in == 0 && s->n > 1) {
        size_t j = (i + 1 + rng_below(r, (uint32_t)s->n - 1)) % s->n;
        child[j] = 0;
    } else if (in == 0) {
        child[i] = 0;
    }
}

static void free_json(void *ctx)
{
    json_decref(ctx);
}

static const struct space_kind subset_kind = {.concretize = subset_concretize,
                                              .sample = subset_sample,
                                              .mutate = subset_mutate,
                                              .free_ctx = free_json};

/* The op nodes: "ops" as names (each at a uniformly drawn bin of bins) or op nodes, by default
 * the trivialaugment-wide preset's 14 at bins (its ops and wide ranges). */
static json_t *subset_nodes(const json_t *args, struct eng_error *err)
{
    const json_t *ops = json_object_get(args, "ops");
    int bins = 0;
    if (spaces_int_arg(args, "bins", 31, 2, 1000, &bins, err) != 0) return NULL;
    if (!ops) {
        json_t *ref = json_pack("{s:s, s:i}", "preset", "trivialaugment-wide", "bins", bins);
        json_t *preset = ref ? preset_expand(ref, err) : NULL;
        json_t *nodes = json_incref(json_object_get(preset, "choice"));
        json_decref(ref);
        json_decref(preset);
        if (!nodes) eng_no_memory(err);
        return nodes;
    }
    if (!json_is_array(ops) || json_array_size(ops) == 0 ||
        json_array_size(ops) > SEARCH_MAX_DIMS) {
        eng_fail(err, ENG_INVALID, "/ops: must be an array of 1 to %d op names or op nodes",
                 SEARCH_MAX_DIMS);
        return NULL;
    }
    json_t *nodes = json_array();
    for (size_t i = 0; nodes && i < json_array_size(ops); i++) {
        const json_t *item = json_array_get(ops, i);
        const char *name = json_is_string(item) ? json_string_value(item)
                                                : json_string_value(json_object_get(item, "op"));
        const struct op_desc *op = name ? op_find(name) : NULL;
        json_t *node = !op                    ? NULL
                       : json_is_object(item) ? json_deep_copy(item)
                       : op->level.map == LEVEL_NONE
                           ? json_pack("{s:s}", "op", name)
                           : json_pack("{s:s, s:{s:i}}", "op", name, "level", "bins", bins);
        if (!op) {
            eng_fail(err, ENG_INVALID, "/ops/%zu: must be an op name or an op node", i);
        } else if (node && json_array_append_new(nodes, node) == 0) {
            continue;
        } else {
            eng_no_memory(err);
        }
        json_decref(nodes);
        return NULL;
    }
    if (!nodes) eng_no_memory(err);
    return nodes;
}

static struct search_space *ops_subset(const json_t *args, struct eng_error *err)
{
    static const char *const keys[] = {"ops", "bins", NULL};
    if (spaces_check_keys(args, "ops-subset", keys, err) != 0) return NULL;
    json_t *nodes = subset_nodes(args, err);
    struct search_space *s = nodes ? space_new(&subset_kind, err) : NULL;
    if (!s) {
        json_decref(nodes);
        return NULL;
    }
    s->ctx = nodes;
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(nodes, i), "op"));
        char pointer[96];
        snprintf(pointer, sizeof pointer, "/ops/%s", name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->dims[j].pointer, pointer) == 0) {
                eng_fail(err, ENG_INVALID, "/ops/%zu: %s is listed twice", i, name);
                search_space_free(s);
                return NULL;
            }
        struct search_dim d = {.kind = SEARCH_DIM_CHOICE, .high = 1, .choices = 2, .parent = -1};
        if (space_add_dim(s, d, pointer, json_pack("[b, b]", 1, 0), err) != 0) {
            search_space_free(s);
            return NULL;
        }
    }
    return s;
}

/* ---- autoaugment ---------------------------------------------------------------------------- */

/* AutoAugment's search space (Cubuk et al. 2019): 16 ops, as its reference code names them
 * ShearX/Y, TranslateX/Y, Rotate, AutoContrast, Invert, Equalize, Solarize, Posterize, Contrast,
 * Color, Brightness, Sharpness, Cutout, SamplePairing. The registry has all but SamplePairing,
 * which blends with another training image (an op of a batch, as CopyPaste is): 15 here. */
const char *const spaces_autoaugment_ops[] = {
    "ShearX",     "ShearY",    "TranslateX", "TranslateY", "Rotate",   "AutoContrast",
    "Invert",     "Equalize",  "Solarize",   "Posterize",  "Contrast", "Color",
    "Brightness", "Sharpness", "Cutout",     NULL};

#define AUTOAUGMENT_MAX_K 25 /* the published policies' count */
#define AUTOAUGMENT_BINS  10 /* magnitude bins 0-9 */
#define AUTOAUGMENT_OPS   64 /* ops a sub-policy draws from */

struct autoaugment {
    const struct op_desc *ops[AUTOAUGMENT_OPS];
    size_t op_count;
    int k;
};

/* The reference's cutout size, int_parameter(level, 20): int(bin * 20 / 10) pixels (of 32).
 * Every other op maps its bin as the autoaugment presets do, {"bin": b, "bins": 10} over the
 * op's level range (torchvision's AutoAugment magnitudes). */
static json_t *autoaugment_op(const struct op_desc *op, int bin)
{
    if (strcmp(op->name, "Cutout") == 0)
        return json_pack("{s:s, s:i, s:i}", "op", op->name, "size", bin * 20 / AUTOAUGMENT_BINS,
                         "size_fraction", 0);
    if (op->level.map == LEVEL_NONE) return json_pack("{s:s}", "op", op->name);
    return json_pack("{s:s, s:{s:i, s:i}}", "op", op->name, "level", "bin", bin, "bins",
                     AUTOAUGMENT_BINS);
}

/* Dimensions 3 (2 i + j) + 0, 1, 2: sub-policy i's op j, its probability and its bin. */
static json_t *autoaugment_concretize(const struct search_space *s, const double *point,
                                      struct eng_error *err)
{
    const struct autoaugment *a = s->ctx;
    json_t *choice = json_array();
    for (int i = 0; choice && i < a->k; i++) {
        json_t *seq = json_array();
        for (int j = 0; seq && j < 2; j++) {
            const double *x = point + 3 * (2 * i + j);
            const struct search_dim *d = s->dims + 3 * (2 * i + j);
            json_t *op = autoaugment_op(a->ops[(size_t)search_dim_snap(&d[0], x[0])],
                                        (int)search_dim_snap(&d[2], x[2]));
            json_t *node = json_pack("{s:f, s:o}", "p", search_dim_snap(&d[1], x[1]), "do", op);
            if (!node || json_array_append_new(seq, node) != 0) {
                json_decref(seq);
                seq = NULL;
            }
        }
        if (!seq || json_array_append_new(choice, json_pack("{s:o}", "seq", seq)) != 0) {
            json_decref(choice);
            choice = NULL;
        }
    }
    json_t *doc = choice ? json_pack("{s:o}", "choice", choice) : NULL;
    if (!doc) eng_no_memory(err);
    return doc;
}

static const struct space_kind autoaugment_kind = {.concretize = autoaugment_concretize,
                                                   .free_ctx = free};

static struct search_space *autoaugment(const json_t *args, struct eng_error *err)
{
    static const char *const keys[] = {"k", "ops", NULL};
    struct autoaugment *a = calloc(1, sizeof *a);
    if (!a) {
        eng_no_memory(err);
        return NULL;
    }
    struct search_space *s = NULL;
    if (spaces_check_keys(args, "autoaugment", keys, err) != 0 ||
        spaces_int_arg(args, "k", 5, 1, AUTOAUGMENT_MAX_K, &a->k, err) != 0 ||
        spaces_ops_arg(args, spaces_autoaugment_ops, 1u << OP_DOMAIN_IMAGE, a->ops, AUTOAUGMENT_OPS,
                       &a->op_count, err) != 0 ||
        !(s = space_new(&autoaugment_kind, err))) {
        free(a);
        return NULL;
    }
    s->ctx = a;
    for (int i = 0; i < a->k; i++)
        for (int j = 0; j < 2; j++) {
            char base[64], pointer[80];
            snprintf(base, sizeof base, "/sub_policies/%d/%d", i, j);
            json_t *names = json_array();
            for (size_t o = 0; names && o < a->op_count; o++)
                json_array_append_new(names, json_string(a->ops[o]->name));
            struct search_dim op = {.kind = SEARCH_DIM_CHOICE,
                                    .high = (double)a->op_count - 1,
                                    .choices = a->op_count,
                                    .parent = -1};
            struct search_dim p = {
                .kind = SEARCH_DIM_QUANTIZED, .high = 1, .step = 0.1, .parent = -1};
            struct search_dim bin = {
                .kind = SEARCH_DIM_INT, .high = AUTOAUGMENT_BINS - 1, .parent = -1};
            snprintf(pointer, sizeof pointer, "%s/op", base);
            int rc = names ? space_add_dim(s, op, pointer, names, err) : eng_no_memory(err);
            snprintf(pointer, sizeof pointer, "%s/p", base);
            if (rc == 0) rc = space_add_dim(s, p, pointer, NULL, err);
            snprintf(pointer, sizeof pointer, "%s/bin", base);
            if (rc == 0) rc = space_add_dim(s, bin, pointer, NULL, err);
            if (rc != 0) {
                search_space_free(s);
                return NULL;
            }
        }
    return s;
}

/* ---- The table ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    struct search_space *(*compile)(const json_t *args, struct eng_error *err);
} spaces[] = {
    {"randaugment", randaugment},   {"autoaugment", autoaugment}, {"ops-subset", ops_subset},
    {"gaugment", gaugment_compile}, {"specaugment", specaugment},
};

struct search_space *spaces_compile(const json_t *doc, struct eng_error *err)
{
    const char *name = json_string_value(json_object_get(doc, "space"));
    for (size_t i = 0; name && i < sizeof spaces / sizeof spaces[0]; i++)
        if (strcmp(spaces[i].name, name) == 0) return spaces[i].compile(doc, err);
    eng_fail(err, ENG_INVALID,
             "/space: must name a space: randaugment, autoaugment, ops-subset, gaugment or "
             "specaugment");
    return NULL;
}
