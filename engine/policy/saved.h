/* Saved policies: named documents that a policy may refer to wherever it may name a preset
 * ("my-policy", or {"preset": "my-policy"} without parameters).
 *
 * Why a table here, filled by the server, rather than a resolver callback passed to the parser:
 * every place that parses a policy (the augment routes, the policy cache, the jobs' validation
 * and runs, the classify kinds) would have to carry the callback and its context through its own
 * signature, and one that forgot would silently know no saved names. A table the parser reads
 * itself makes a saved name mean the same thing everywhere. The engine still knows nothing of
 * where the documents live: the server puts them here from its store at start and after each
 * change, and keeps the two in step.
 *
 * The documents are compiled ones (policy_to_json: presets and other saved policies expanded), so
 * a saved policy never changes because another one did. Each change bumps a generation, by which
 * the policy cache (cache.c) drops parses that may have read an older document. Safe from any
 * thread; a document handed out is immutable and shared by reference. */
#ifndef AUGSERVE_ENGINE_POLICY_SAVED_H
#define AUGSERVE_ENGINE_POLICY_SAVED_H

#include <jansson.h>

#include "core/error.h"

/* Sets (adds or replaces) name's document; the table keeps a copy. 0, or -1 with err. */
int policy_saved_set(const char *name, const json_t *doc, struct eng_error *err);
/* Removes name: 1 when it was there, 0 when not. */
int policy_saved_remove(const char *name);
/* name's document (a new reference: json_decref it), or NULL when no policy is saved as name. */
json_t *policy_saved_get(const char *name);
/* Makes the table a copy of all, an object of name -> document, at once: no reader sees a name
 * missing that all keeps (a server taking its store's policies, which another process changed).
 * 0, or -1 with err (the table unchanged). */
int policy_saved_replace(const json_t *all, struct eng_error *err);
/* Removes every saved policy (a server closing, a test starting clean). */
void policy_saved_clear(void);
/* A number that changes whenever the table does. */
unsigned long policy_saved_generation(void);

#endif
