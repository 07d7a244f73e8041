/* What the kinds that score policies by affinity share (server/job_affinity.c): the list of
 * policies they take and the short name a policy is shown by. */
#ifndef AUGSERVE_JOB_AFFINITY_H
#define AUGSERVE_JOB_AFFINITY_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

struct policy;

/* params.policies: a list of 1 to max policies (preset names, op objects or lists), or "ops"
 * with params.level (every image op at that level, and Identity). *docs gets the documents (as
 * given, or as "ops" expands them; a reference), policies[i] each one's policy, *n how many were
 * read: the caller releases them (policy_free, json_decref) after a failure too. 0, or -1 with
 * err (ENG_INVALID naming params.policies/<i> or params.level, ENG_NO_MEMORY). */
int job_affinity_policies(const json_t *params, size_t max, json_t **docs, struct policy **policies,
                          size_t *n, struct eng_error *err);

/* The policy's short name: a preset's name, an op's (op@level with a level alone), else its
 * compact JSON. malloc'd; NULL when memory runs out. */
char *job_affinity_policy_name(const json_t *doc);

#endif
