/* Spaces: the space object, placeholder documents ({"$search": {...}} at any value position),
 * concretizing a point, a point's params, and the check every space passes at compile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "search/internal.h"

/* Nesting of the space document; policies nest 32 nodes deep at most, each node two JSON levels
 * (an object and its list), so this is room enough and bounds the walk's recursion. */
#define MAX_DEPTH 96

/* JSON pointers of placeholders; a longer one is cut, and still names its start. */
#define MAX_POINTER 512

struct walker {
    struct search_space *s;
    char path[MAX_POINTER];
    struct eng_error *err;
};

struct search_space *space_new(const struct space_kind *kind, struct eng_error *err)
{
    struct search_space *s = calloc(1, sizeof *s);
    if (!s) {
        eng_no_memory(err);
        return NULL;
    }
    s->kind = kind;
    return s;
}

void search_space_free(struct search_space *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free((char *)s->dims[i].pointer);
        json_decref(s->labels[i]);
    }
    free(s->dims);
    free(s->labels);
    free(s->nodes);
    json_decref(s->doc);
    for (size_t d = 0; d < sizeof s->sources / sizeof s->sources[0]; d++)
        free(s->sources[d]);
    free(s->views);
    if (s->kind->free_ctx) s->kind->free_ctx(s->ctx);
    free(s);
}

int space_add_dim(struct search_space *s, struct search_dim d, const char *pointer, json_t *labels,
                  struct eng_error *err)
{
    size_t options = d.kind == SEARCH_DIM_CHOICE ? d.choices : 0;
    if (s->n >= SEARCH_MAX_DIMS || s->options + options > SEARCH_MAX_OPTIONS) {
        json_decref(labels);
        return eng_fail(err, ENG_INVALID,
                        "%s: the space has more than %d dimensions or %d choice options in all",
                        pointer[0] ? pointer : "/", SEARCH_MAX_DIMS, SEARCH_MAX_OPTIONS);
    }
    if (s->n == s->capacity) {
        size_t capacity = s->capacity ? 2 * s->capacity : 16;
        struct search_dim *dims = realloc(s->dims, capacity * sizeof *dims);
        if (dims) s->dims = dims;
        json_t **l = dims ? realloc(s->labels, capacity * sizeof *l) : NULL;
        if (l) s->labels = l;
        const json_t **nodes = l ? realloc(s->nodes, capacity * sizeof *nodes) : NULL;
        if (nodes) s->nodes = nodes;
        if (!nodes) {
            json_decref(labels);
            return eng_no_memory(err);
        }
        s->capacity = capacity;
    }
    d.pointer = strdup(pointer);
    if (!d.pointer) {
        json_decref(labels);
        return eng_no_memory(err);
    }
    s->options += options;
    s->labels[s->n] = labels;
    s->nodes[s->n] = NULL;
    s->dims[s->n++] = d;
    return 0;
}

int space_rename(struct search_space *s, const char *from, const char *to, struct eng_error *err)
{
    size_t len = strlen(from);
    for (size_t i = 0; i < s->n; i++) {
        const char *old = s->dims[i].pointer;
        if (strncmp(old, from, len) != 0 || (old[len] != '\0' && old[len] != '/')) continue;
        char *renamed = malloc(strlen(to) + strlen(old + len) + 1);
        if (!renamed) return eng_no_memory(err);
        strcpy(renamed, to);
        strcat(renamed, old + len);
        free((char *)old);
        s->dims[i].pointer = renamed;
    }
    return 0;
}

/* ---- Placeholder documents ------------------------------------------------------------------ */

/* Where the walk is, for messages: the pointer, "/" for the root. */
static const char *here(const struct walker *w)
{
    return w->path[0] ? w->path : "/";
}

/* Appends "/key" to the path, escaped as RFC 6901 says (~ as ~0, / as ~1), or "/index" when key
 * is NULL; returns the old length, where the caller cuts the path back. */
static size_t path_push(struct walker *w, const char *key, size_t index)
{
    char text[24];
    size_t len = strlen(w->path), at = len;
    if (!key) snprintf(text, sizeof text, "%zu", index);
    if (at + 1 < sizeof w->path) w->path[at++] = '/';
    for (const char *c = key ? key : text; *c && at + 2 < sizeof w->path; c++) {
        if (*c == '~' || *c == '/') {
            w->path[at++] = '~';
            w->path[at++] = *c == '~' ? '0' : '1';
        } else {
            w->path[at++] = *c;
        }
    }
    w->path[at] = '\0';
    return len;
}

static int walk(struct walker *w, const json_t *v, int parent, size_t parent_choice, int depth);

/* [low, high] (and step for quantized) from a distribution's array. */
static int bounds(struct walker *w, const char *name, const json_t *spec, size_t count, double *out)
{
    static const char *const shapes[] = {
        "int",        "[low, high], whole numbers with low <= high",
        "uniform",    "[low, high] with low < high",
        "loguniform", "[low, high] with 0 < low < high",
        "quantized",  "[low, high, step] with low < high, step > 0"};
    const char *shape = "";
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i += 2)
        if (strcmp(shapes[i], name) == 0) shape = shapes[i + 1];
    int ok = json_is_array(spec) && json_array_size(spec) == count;
    for (size_t i = 0; ok && i < count; i++) {
        const json_t *item = json_array_get(spec, i);
        out[i] = json_number_value(item);
        /* Whole numbers and lattices stay within 2^31 of their low, where draws are exact. */
        ok = json_is_number(item) && isfinite(out[i]) && fabs(out[i]) <= 1e15;
    }
    if (ok && strcmp(name, "int") == 0)
        ok = out[0] == floor(out[0]) && out[1] == floor(out[1]) && out[0] <= out[1] &&
             out[1] - out[0] < 2147483648.0;
    else if (ok)
        ok = out[0] < out[1] && (strcmp(name, "loguniform") != 0 || out[0] > 0);
    if (ok && count == 3) ok = out[2] > 0 && (out[1] - out[0]) / out[2] < 2147483648.0;
    return ok ? 0 : eng_fail(w->err, ENG_INVALID, "%s: %s needs %s", here(w), name, shape);
}

/* A scalar option is shown as itself in params, any other by its index. */
static json_t *choice_labels(const json_t *options)
{
    json_t *labels = json_array();
    for (size_t i = 0; labels && i < json_array_size(options); i++) {
        const json_t *o = json_array_get(options, i);
        json_array_append_new(labels, json_is_object(o) || json_is_array(o) ? json_integer((int)i)
                                                                            : json_deep_copy(o));
    }
    return labels;
}

/* {"$search": {"<distribution>": ...}} at w->path, a dimension and, for a choice, its options'
 * own placeholders. */
static int placeholder(struct walker *w, const json_t *v, int parent, size_t parent_choice,
                       int depth)
{
    static const struct {
        const char *name;
        enum search_dim_kind kind;
    } kinds[] = {{"choice", SEARCH_DIM_CHOICE},
                 {"int", SEARCH_DIM_INT},
                 {"uniform", SEARCH_DIM_UNIFORM},
                 {"loguniform", SEARCH_DIM_LOGUNIFORM},
                 {"quantized", SEARCH_DIM_QUANTIZED}};
    const json_t *spec = json_object_get(v, "$search");
    char pointer[MAX_POINTER];
    snprintf(pointer, sizeof pointer, "%s", w->path);
    size_t mark = path_push(w, "$search", 0);
    int rc = -1;
    const char *name = json_is_object(spec) && json_object_size(spec) == 1
                           ? json_object_iter_key(json_object_iter((json_t *)spec))
                           : NULL;
    size_t k = sizeof kinds / sizeof kinds[0];
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, name) == 0) k = i;
    struct search_dim d = {.kind = k < sizeof kinds / sizeof kinds[0] ? kinds[k].kind : 0,
                           .parent = parent,
                           .parent_choice = parent_choice};
    const json_t *args = name ? json_object_get(spec, name) : NULL;
    double b[3] = {0, 0, 0};
    if (json_object_size(v) != 1)
        eng_fail(w->err, ENG_INVALID,
                 "%s: a placeholder is {\"$search\": {...}} alone, without other keys", here(w));
    else if (k == sizeof kinds / sizeof kinds[0])
        eng_fail(w->err, ENG_INVALID,
                 "%s: must be one of {\"choice\": [...]}, {\"int\": [low, high]}, {\"uniform\": "
                 "[low, high]}, {\"loguniform\": [low, high]}, {\"quantized\": [low, high, "
                 "step]}",
                 here(w));
    else if (d.kind == SEARCH_DIM_CHOICE && (!json_is_array(args) || json_array_size(args) == 0 ||
                                             json_array_size(args) > SEARCH_MAX_CHOICES))
        eng_fail(w->err, ENG_INVALID, "%s: choice needs an array of 1 to %d options", here(w),
                 SEARCH_MAX_CHOICES);
    else if (d.kind != SEARCH_DIM_CHOICE &&
             bounds(w, name, args, d.kind == SEARCH_DIM_QUANTIZED ? 3 : 2, b) != 0)
        ;
    else {
        d.choices = d.kind == SEARCH_DIM_CHOICE ? json_array_size(args) : 0;
        d.low = d.kind == SEARCH_DIM_CHOICE ? 0 : b[0];
        d.high = d.kind == SEARCH_DIM_CHOICE ? (double)d.choices - 1 : b[1];
        d.step = b[2];
        json_t *labels = d.kind == SEARCH_DIM_CHOICE ? choice_labels(args) : NULL;
        if (d.kind == SEARCH_DIM_CHOICE && !labels)
            eng_no_memory(w->err);
        else if (space_add_dim(w->s, d, pointer, labels, w->err) == 0)
            rc = 0;
    }
    if (rc == 0) {
        int self = (int)w->s->n - 1;
        w->s->nodes[self] = v;
        size_t choice_mark = path_push(w, "choice", 0);
        for (size_t i = 0; rc == 0 && i < d.choices; i++) {
            size_t item = path_push(w, NULL, i);
            rc = walk(w, json_array_get(args, i), self, i, depth + 1);
            w->path[item] = '\0';
        }
        w->path[choice_mark] = '\0';
    }
    w->path[mark] = '\0';
    return rc;
}

static int walk(struct walker *w, const json_t *v, int parent, size_t parent_choice, int depth)
{
    if (depth > MAX_DEPTH)
        return eng_fail(w->err, ENG_INVALID, "%s: the space nests deeper than %d levels", here(w),
                        MAX_DEPTH);
    if (json_is_object(v) && json_object_get(v, "$search"))
        return placeholder(w, v, parent, parent_choice, depth);
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            size_t mark = path_push(w, key, 0);
            int rc = walk(w, child, parent, parent_choice, depth + 1);
            w->path[mark] = '\0';
            if (rc != 0) return -1;
        }
    }
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        size_t mark = path_push(w, NULL, i);
        int rc = walk(w, json_array_get(v, i), parent, parent_choice, depth + 1);
        w->path[mark] = '\0';
        if (rc != 0) return -1;
    }
    return 0;
}

/* The value of dimension d at x, already checked and snapped: a whole number as an integer. */
static json_t *number(const struct search_dim *d, double x)
{
    int whole = d->kind == SEARCH_DIM_INT || (d->kind == SEARCH_DIM_QUANTIZED &&
                                              d->low == floor(d->low) && d->step == floor(d->step));
    return whole ? json_integer((json_int_t)x) : json_real(x);
}

/* A copy of v with each placeholder replaced by its value at point. */
static json_t *fill(const struct search_space *s, const json_t *v, const double *point)
{
    if (json_is_object(v) && json_object_get(v, "$search")) {
        size_t d = 0;
        while (d < s->n && s->nodes[d] != v)
            d++;
        double x = search_dim_snap(&s->dims[d], point[d]);
        if (s->dims[d].kind != SEARCH_DIM_CHOICE) return number(&s->dims[d], x);
        const json_t *spec = json_object_get(v, "$search");
        return fill(s, json_array_get(json_object_get(spec, "choice"), (size_t)x), point);
    }
    if (!json_is_object(v) && !json_is_array(v)) return json_deep_copy(v);
    json_t *out = json_is_object(v) ? json_object() : json_array();
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child)
    {
        json_t *c = fill(s, child, point);
        if (!out || !c || json_object_set_new(out, key, c) != 0) goto fail;
    }
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        json_t *c = fill(s, json_array_get(v, i), point);
        if (!out || !c || json_array_append_new(out, c) != 0) goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *concretize_placeholders(const struct search_space *s, const double *point,
                                       struct eng_error *err)
{
    json_t *doc = fill(s, s->doc, point);
    if (!doc) eng_no_memory(err);
    return doc;
}

static const struct space_kind placeholders_kind = {.concretize = concretize_placeholders};

struct search_space *space_placeholders(json_t *doc, struct eng_error *err)
{
    struct search_space *s = space_new(&placeholders_kind, err);
    if (!s) {
        json_decref(doc);
        return NULL;
    }
    s->doc = doc;
    struct walker w = {.s = s, .path = "", .err = err};
    if (walk(&w, doc, -1, 0, 0) != 0) {
        search_space_free(s);
        return NULL;
    }
    return s;
}

/* ---- Points --------------------------------------------------------------------------------- */

int space_check_point(const struct search_space *s, const double *point, bool *active,
                      struct eng_error *err)
{
    search_dims_active(s->dims, s->n, point, active);
    for (size_t i = 0; i < s->n; i++) {
        const struct search_dim *d = &s->dims[i];
        double high = d->kind == SEARCH_DIM_CHOICE ? (double)d->choices - 1 : d->high;
        /* An algorithm's arithmetic may land a hair outside a range; snap takes it back. */
        double slack = 1e-9 * fmax(1, high - d->low);
        if (active[i] && !(point[i] >= d->low - slack && point[i] <= high + slack))
            return eng_fail(err, ENG_INVALID, "point: %s: %g is not in [%g, %g]", d->pointer,
                            point[i], d->low, high);
    }
    return 0;
}

json_t *search_space_concretize(const struct search_space *s, const double *point,
                                struct eng_error *err)
{
    bool *active = malloc((s->n ? s->n : 1) * sizeof *active);
    if (!active) {
        eng_no_memory(err);
        return NULL;
    }
    int rc = space_check_point(s, point, active, err);
    free(active);
    return rc == 0 ? s->kind->concretize(s, point, err) : NULL;
}

json_t *search_space_params(const struct search_space *s, const double *point)
{
    bool *active = malloc((s->n ? s->n : 1) * sizeof *active);
    json_t *params = active ? json_object() : NULL;
    if (active) search_dims_active(s->dims, s->n, point, active);
    for (size_t i = 0; params && i < s->n; i++) {
        if (!active[i]) continue;
        double x = search_dim_snap(&s->dims[i], point[i]);
        json_t *value = s->labels[i] ? json_deep_copy(json_array_get(s->labels[i], (size_t)x))
                        : s->dims[i].kind == SEARCH_DIM_CHOICE ? json_integer((json_int_t)x)
                                                               : number(&s->dims[i], x);
        if (!value || json_object_set_new(params, s->dims[i].pointer, value) != 0) {
            json_decref(params);
            params = NULL;
        }
    }
    free(active);
    return params;
}

struct search_view search_space_view(const struct search_space *s)
{
    return (struct search_view){.dims = s->dims,
                                .n = s->n,
                                .ctx = (void *)s,
                                .sample = s->kind->sample,
                                .mutate = s->kind->mutate};
}

/* ---- The check at compile ------------------------------------------------------------------- */

/* The JSON values of doc, itself included. */
static size_t values_of(const json_t *doc)
{
    size_t count = 1;
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)doc, key, child) count += values_of(child);
    for (size_t i = 0; json_is_array(doc) && i < json_array_size(doc); i++)
        count += values_of(json_array_get(doc, i));
    return count;
}

/* The first op of `domain` in a policy document, depth first, with w->path set to its pointer;
 * NULL when there is none. */
static const char *op_of(struct walker *w, const json_t *v, enum op_domain domain)
{
    const char *name = json_string_value(json_object_get(v, "op"));
    const struct op_desc *op = name ? op_find(name) : NULL;
    if (op && op->domain == domain) return op->name;
    const char *key, *found;
    json_t *child;
    json_object_foreach((json_t *)v, key, child)
    {
        size_t mark = path_push(w, key, 0);
        if ((found = op_of(w, child, domain))) return found;
        w->path[mark] = '\0';
    }
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        size_t mark = path_push(w, NULL, i);
        if ((found = op_of(w, json_array_get(v, i), domain))) return found;
        w->path[mark] = '\0';
    }
    return NULL;
}

/* Adds p's domains to the space's, saying where (the point the check tried) each new one came
 * from and naming one of its ops. 0, or -1 with err (memory). */
static int note_domains(struct search_space *s, const struct policy *p, const char *where,
                        struct eng_error *err)
{
    unsigned fresh = policy_domain(p) & ~s->domains;
    json_t *doc = fresh ? policy_to_json(p) : NULL;
    int rc = 0;
    for (unsigned d = 0; rc == 0 && d < sizeof s->sources / sizeof s->sources[0]; d++) {
        if (!(fresh & (1u << d))) continue;
        struct walker w = {.s = s, .path = ""};
        const char *op = op_of(&w, doc, (enum op_domain)d);
        char text[2 * MAX_POINTER + 128];
        size_t n = (size_t)snprintf(text, sizeof text, "%s gives a%s %s policy", where,
                                    d == OP_DOMAIN_IMAGE ? "n" : "", op_domain_name(d));
        if (op && n < sizeof text)
            snprintf(text + n, sizeof text - n, " (%s at %s of it)", op, here(&w));
        s->sources[d] = strdup(text);
        rc = s->sources[d] ? 0 : eng_no_memory(err);
    }
    s->domains |= rc == 0 ? fresh : 0;
    json_decref(doc);
    return rc;
}

/* Concretizes point and parses the result; what was wrong in err (ENG_NO_MEMORY: not the
 * space's fault). values (may be NULL) is set to the size of the document. The policy's domains
 * are noted with where, the point in words. */
static int parses(struct search_space *s, const double *point, const char *where, size_t *values,
                  struct eng_error *err)
{
    json_t *doc = search_space_concretize(s, point, err);
    struct policy *p = doc ? policy_parse(doc, err) : NULL;
    if (values) *values = doc ? values_of(doc) : 0;
    int rc = p ? note_domains(s, p, where, err) : -1;
    if (rc == 0 && !s->views && policy_view_count(p) > 1) {
        char text[2 * MAX_POINTER + 128];
        snprintf(text, sizeof text, "%s gives a policy of %d views", where, policy_view_count(p));
        rc = (s->views = strdup(text)) ? 0 : eng_no_memory(err);
    }
    json_decref(doc);
    policy_free(p);
    return rc;
}

/* The values the check tries for d after its low: each other option of a choice; a range's high
 * and, for reals and lattices whose values need not be whole, a value between (an op's integer
 * argument refuses it). */
static size_t others_of(const struct search_dim *d)
{
    return d->kind == SEARCH_DIM_CHOICE ? d->choices - 1 : d->kind == SEARCH_DIM_INT ? 1 : 2;
}

/* The placeholder whose value a parse error at the lowest point is about, or -1: the deepest one
 * whose place in the concrete document (its pointer without the "/$search/choice/<i>" steps) is
 * the error's pointer or holds it. Named spaces' pointers name arguments, not places: -1. */
static int blame(const struct search_space *s, const char *message)
{
    size_t length = message[0] == '/' ? strcspn(message, ":") : 0;
    int found = -1;
    size_t found_length = 0;
    for (size_t i = 0; length && i < s->n; i++) {
        if (!s->nodes[i]) continue;
        char place[MAX_POINTER];
        size_t at = 0;
        for (const char *p = s->dims[i].pointer; *p && at + 1 < sizeof place;) {
            if (strncmp(p, "/$search/choice/", 16) == 0) {
                p += 16 + strspn(p + 16, "0123456789");
                continue;
            }
            place[at++] = *p++;
        }
        if (strncmp(place, message, at) == 0 && (at == length || message[at] == '/') &&
            (found < 0 || at >= found_length))
            found = (int)i, found_length = at;
    }
    return found;
}

int space_check(struct search_space *s, struct eng_error *err)
{
    double *point = malloc((s->n ? s->n : 1) * sizeof *point);
    if (!point) return eng_no_memory(err);
    struct eng_error why = {0};
    size_t values = 0, checks = 0;
    int rc = 0;
    for (size_t i = 0; i < s->n; i++) {
        point[i] = s->dims[i].low;
        checks += others_of(&s->dims[i]);
    }
    /* Where a policy of the lowest point comes from, for the domains' sources. */
    const char *lowest = s->n ? "the space at each dimension's low" : "the space (no placeholder)";
    int failed = parses(s, point, lowest, &values, &why) != 0,
        culprit = failed ? blame(s, why.message) : -1;
    if (culprit >= 0 && s->dims[culprit].kind == SEARCH_DIM_CHOICE) {
        rc = eng_fail(err, why.code, "%s: at its option 0 the space gives no valid policy: %s",
                      s->dims[culprit].pointer[0] ? s->dims[culprit].pointer : "/", why.message);
    } else if (culprit >= 0) {
        rc = eng_fail(err, why.code, "%s: at its low, %g, the space gives no valid policy: %s",
                      s->dims[culprit].pointer, s->dims[culprit].low, why.message);
    } else if (failed) {
        rc =
            eng_fail(err, why.code, "the space at each dimension's low%s gives no valid policy: %s",
                     s->n ? "" : " (it has none)", why.message);
    } else if ((double)checks * (double)values > SEARCH_MAX_CHECK_VALUES) {
        /* The lowest point's size stands for the others'. */
        rc = eng_fail(err, ENG_INVALID,
                      "the space is too large to check: %zu checks of a policy of %zu JSON "
                      "values, past %d in all; use fewer placeholders, options or nodes",
                      checks, values, SEARCH_MAX_CHECK_VALUES);
    }
    /* Each other value of one dimension (others_of), with its parents set to activate it and the
     * rest low. The op ranges are intervals, so these stand for the values between. */
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const struct search_dim *d = &s->dims[i];
        for (size_t c = i; s->dims[c].parent >= 0; c = (size_t)s->dims[c].parent)
            point[s->dims[c].parent] = (double)s->dims[c].parent_choice;
        for (size_t k = 1; rc == 0 && k <= others_of(d); k++) {
            char value[64], where[MAX_POINTER + 80];
            if (d->kind == SEARCH_DIM_CHOICE)
                point[i] = (double)k;
            else if (k == 1)
                point[i] = search_dim_snap(d, d->high);
            else if (d->kind == SEARCH_DIM_QUANTIZED)
                point[i] = search_dim_snap(d, d->low + d->step);
            else /* a fraction no whole range divides into a whole number */
                point[i] = d->low + (d->high - d->low) * 0.3819660112501051;
            if (d->kind == SEARCH_DIM_CHOICE)
                snprintf(value, sizeof value, "its option %zu", k);
            else
                snprintf(value, sizeof value, k == 1 ? "its high, %g" : "%g", point[i]);
            snprintf(where, sizeof where, "%s at %s", d->pointer[0] ? d->pointer : "/", value);
            if (parses(s, point, where, NULL, &why) == 0) continue;
            rc = eng_fail(err, why.code, "%s: at %s%s the space gives no valid policy: %s",
                          d->pointer[0] ? d->pointer : "/", value,
                          d->kind != SEARCH_DIM_CHOICE && k == 1 ? "," : "", why.message);
        }
        for (size_t j = 0; j < s->n; j++)
            point[j] = s->dims[j].low;
    }
    free(point);
    return rc;
}

unsigned search_space_domains(const struct search_space *s)
{
    return s->domains;
}

const char *search_space_views_source(const struct search_space *s)
{
    return s->views;
}

const char *search_space_domain_source(const struct search_space *s, unsigned domain)
{
    for (unsigned d = 0; d < sizeof s->sources / sizeof s->sources[0]; d++)
        if (domain == 1u << d) return s->sources[d];
    return NULL;
}

struct search_space *search_space_compile(const json_t *doc, struct eng_error *err)
{
    err->code = ENG_OK;
    struct search_space *s = NULL;
    if (json_is_object(doc) && json_object_get(doc, "space")) {
        s = spaces_compile(doc, err);
    } else if (!doc) {
        eng_fail(err, ENG_INVALID, "a search space is a policy document or {\"space\": name}");
    } else {
        json_t *copy = json_deep_copy(doc);
        if (!copy)
            eng_no_memory(err);
        else
            s = space_placeholders(copy, err);
    }
    if (s && space_check(s, err) != 0) {
        search_space_free(s);
        s = NULL;
    }
    return s;
}
