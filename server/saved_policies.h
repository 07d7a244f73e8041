/* Saved policies: the store's records (policy_store.h) and the engine's table (policy/saved.h)
 * kept in step, the rules for a name, and the snapshot a job takes of the ones it names. */
#ifndef AUGSERVE_SAVED_POLICIES_H
#define AUGSERVE_SAVED_POLICIES_H

#include <jansson.h>

#include "core/error.h"
#include "policy_store.h"

struct storage;

/* The longest name; names are ASCII letters, digits, '.', '_' and '-', starting with a letter or
 * a digit, so that a name is a path segment and a bare query value as it is. */
#define SAVED_POLICY_MAX_NAME 64

/* 0 when name may be saved; ENG_INVALID for its form, ENG_CONFLICT for a preset's name or
 * "validate". */
int saved_policies_check_name(const char *name, struct eng_error *err);

/* Makes the engine's table the store's saved policies, at once (at start, and when another
 * process of the store changed one: wakeups.c). 0, or -1 with err. */
int saved_policies_load(struct storage *st, struct eng_error *err);

/* Checks name and policy, compiles the policy and saves its compiled document as name, owned by
 * owner (NULL: none), in the store and then the engine's table. ENG_INVALID for a bad name or
 * document (the document's message as policy_parse gives it), ENG_CONFLICT for a preset's name or
 * (unless replace) a saved one. On success *out is the stored record (policy_record_clear it)
 * and *created says whether the name was new. */
int saved_policies_put(struct storage *st, const char *name, const json_t *policy,
                       const char *owner, int replace, struct policy_record *out, int *created,
                       struct eng_error *err);

/* Removes name from the store and the engine's table. ENG_CONFLICT for a preset, ENG_NOT_FOUND
 * for a name not saved. */
int saved_policies_delete(struct storage *st, const char *name, struct eng_error *err);

/* A job's params as they must be kept: each policy in "policy" and in a "policies" list that
 * names a saved policy is replaced by its compiled document, and so is each one in a search's
 * "space" where a node may be (a subtree without placeholders, a name, a $search choice's
 * option), so a later delete or replace does not change a queued, running or resumed job.
 * Other params, and policies that do not parse (the kind's validate says why), stay as given.
 * 0, or -1 with err (memory). */
int saved_policies_snapshot(json_t *params, struct eng_error *err);

#endif
