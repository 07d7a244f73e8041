/* What the kinds that score policies by affinity share (server/job_affinity.c): the list of
 * policies they take, the short name a policy is shown by and the count an accuracy is made of. */
#ifndef AUGSERVE_JOB_AFFINITY_H
#define AUGSERVE_JOB_AFFINITY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct data_batch;
struct job_classify;
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

/* Adds a batch's labeled images to *count and those whose top-1 answer is their label to
 * *correct (images without a label are left out): the affinity kind's accuracy, correct / count,
 * is made of these. probs: b->size rows of classes, as job_classify_pass gives them. */
void job_affinity_count(const struct job_classify *jc, const struct data_batch *b,
                        const float *probs, size_t classes, uint64_t *correct, uint64_t *count);

#endif
