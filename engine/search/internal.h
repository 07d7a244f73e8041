/* The search area's internals, shared by its files and by nothing else: space.c holds the space
 * object, placeholder documents and the check every space passes at compile; spaces.c the named
 * spaces that are placeholder documents or flat encodings (randaugment, specaugment, ops-subset,
 * autoaugment); gaugment.c G-Augment's graphs. */
#ifndef AUGSERVE_ENGINE_SEARCH_INTERNAL_H
#define AUGSERVE_ENGINE_SEARCH_INTERNAL_H

#ifndef AUGENGINE_SEARCH_INTERNAL
#error "search/internal.h is private to augengine_search; include search/search.h"
#endif

#include "policy/ops.h"
#include "search/search.h"

/* What a kind of space does with its points. ctx is the space's own data (space_free frees it
 * with free_ctx); sample and mutate may be NULL (search.h's defaults). */
struct space_kind {
    json_t *(*concretize)(const struct search_space *s, const double *point, struct eng_error *err);
    void (*sample)(void *space, struct rng *r, double *point);
    void (*mutate)(void *space, struct rng *r, const double *parent, double *child);
    void (*free_ctx)(void *ctx);
};

struct search_space {
    const struct space_kind *kind;
    void *ctx;
    struct search_dim *dims;
    size_t n, capacity;
    json_t **labels;      /* per dimension: what params shows for each choice, or NULL: the index */
    const json_t **nodes; /* placeholder spaces: each dimension's {"$search": ...} object in doc */
    json_t *doc;          /* placeholder spaces: the document */
    size_t options;       /* choice options over all dimensions */
    /* The domains of the policies the check at compile parsed (POLICY_* bits) and, per op
     * domain, where it first met one (search_space_domain_source). */
    unsigned domains;
    char *sources[OP_DOMAIN_SPECTROGRAM + 1];
    /* Where the check first met a policy of several views (search_space_views_source), or
     * NULL. */
    char *views;
};

struct search_space *space_new(const struct space_kind *kind, struct eng_error *err);

/* Appends a dimension at pointer (copied); labels (a reference the space takes, or NULL) name
 * its choices for params. Fails past SEARCH_MAX_DIMS or SEARCH_MAX_OPTIONS. */
int space_add_dim(struct search_space *s, struct search_dim d, const char *pointer, json_t *labels,
                  struct eng_error *err);

/* A placeholder document as a space (doc: a reference the space takes), not yet checked. */
struct search_space *space_placeholders(json_t *doc, struct eng_error *err);

/* Renames the dimensions whose pointer starts with from (a named space's generated document) to
 * start with to instead (its argument's name). */
int space_rename(struct search_space *s, const char *from, const char *to, struct eng_error *err);

/* The check every space passes before compile returns it: its lowest point (each dimension's
 * low, the first choice) concretizes to a valid policy, and so does each dimension's high and
 * each other choice with the rest at their lows; a failure names the dimension. It records the
 * domains of the policies it parsed (domains, sources) and the first of several views (views). */
int space_check(struct search_space *s, struct eng_error *err);

/* Checks a point: every active dimension finite and on its range. */
int space_check_point(const struct search_space *s, const double *point, bool *active,
                      struct eng_error *err);

/* ---- Named spaces (spaces.c, gaugment.c) ---------------------------------------------------- */

/* {"space": name, ...}: the named space, checked. */
struct search_space *spaces_compile(const json_t *doc, struct eng_error *err);

/* Arguments of a named space: keys of args all in allowed (NULL-terminated) but "space". */
int spaces_check_keys(const json_t *args, const char *space, const char *const *allowed,
                      struct eng_error *err);
/* A whole-number argument in [min, max], def when absent. */
int spaces_int_arg(const json_t *args, const char *name, int def, int min, int max, int *out,
                   struct eng_error *err);
/* The "ops" argument: op names of the given domains (bits of 1 << enum op_domain), or def (a
 * NULL-terminated list) when absent; at most max of them, none twice. *count is set. */
int spaces_ops_arg(const json_t *args, const char *const *def, unsigned domains,
                   const struct op_desc **ops, size_t max, size_t *count, struct eng_error *err);
/* An op node at a magnitude: {"op": name, "level": level} for an op with a level, {"op": name}
 * for one without. */
json_t *spaces_op_level(const struct op_desc *op, double level);

/* AutoAugment's ops as the registry has them (spaces.c says which one is missing), NULL-ended:
 * the autoaugment space's default, and the gaugment space's for images. */
extern const char *const spaces_autoaugment_ops[];

/* {"space": "gaugment", ...} */
struct search_space *gaugment_compile(const json_t *args, struct eng_error *err);

#endif
