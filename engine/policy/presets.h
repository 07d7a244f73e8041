/* Published policies as documents of the policy graph: every preset compiles to the same nodes a
 * user could write, so GET /v1/policies/{name} can show exactly what runs. */
#ifndef AUGSERVE_ENGINE_POLICY_PRESETS_H
#define AUGSERVE_ENGINE_POLICY_PRESETS_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

/* One preset: GET /v1/policies lists the table of them, and preset_expand reads the same table. */
struct preset_info {
    const char *name; /* as GET /v1/policies lists it */
    const char *help; /* the reference and the parameters */
    /* The keys {"preset": name, ...} may hold besides "preset", NULL-terminated; any other key is
     * refused before expand runs. */
    const char *const *parameters;
    /* The document for name (the one asked for: with prefix, any of the grammar's) and params
     * (the reference object; NULL for a bare name): a new reference, or NULL with err naming the
     * bad parameter. */
    json_t *(*expand)(const struct preset_info *preset, const char *name, const json_t *params,
                      struct eng_error *err);
    /* What expand reads besides the parameters (the entry's table, when entries share an
     * expand), or NULL. */
    const void *data;
    /* Names that are prefix, alone or followed by '-' and more, expand through this entry too:
     * timm's "rand-m9-n2-..." grammar. NULL: the name only. */
    const char *prefix;
};

const struct preset_info *preset_list(size_t *count);

/* The entry that expands name: its own, or the one whose prefix name is, alone or followed by
 * '-' and more; NULL when no preset is called name. */
const struct preset_info *preset_find(const char *name);

/* Expands a preset reference: "randaugment", or {"preset": "randaugment", "n": 2, "m": 9}, into
 * its document (new reference), or NULL with err naming the bad parameter. */
json_t *preset_expand(const json_t *doc, struct eng_error *err);

#endif
