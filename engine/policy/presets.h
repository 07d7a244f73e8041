/* Published policies as documents of the policy graph: every preset compiles to the same nodes a
 * user could write, so GET /v1/policies/{name} can show exactly what runs. */
#ifndef AUGSERVE_ENGINE_POLICY_PRESETS_H
#define AUGSERVE_ENGINE_POLICY_PRESETS_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

struct preset_info {
    const char *name;
    const char *help; /* the reference and the parameters */
};

const struct preset_info *preset_list(size_t *count);

/* Expands a preset reference: "randaugment", or {"preset": "randaugment", "n": 2, "m": 9}, into
 * its document (new reference), or NULL with err naming the bad parameter. */
json_t *preset_expand(const json_t *doc, struct eng_error *err);

#endif
