/* The job kind "affinity-diversity" (server/job_affinity_diversity.c), and its run for a search's
 * affinity-diversity trials (search_trial_run.c), which share one clean run. */
#ifndef AUGSERVE_JOB_AFFINITY_DIVERSITY_H
#define AUGSERVE_JOB_AFFINITY_DIVERSITY_H

#include <jansson.h>

#include "core/error.h"

struct job_ctx;

/* The kind's run (job_kind.h) over params, with the clean run shared through the folder
 * clean_dir when it is not NULL: the first run to take the folder's lock with nothing in it trains
 * the clean model and leaves it there (its checkpoint file and its numbers), and every later one
 * loads it rather than training it again, waiting on the lock (cancellable) while another trains
 * it. Only runs whose clean run is the same computation may share a folder: the same training
 * params but the policies, and the same job_ctx_threads (a search's trials). The clean model
 * loaded scores the policies exactly as the one trained would (the checkpoint file holds every
 * parameter and buffer). */
int job_affinity_diversity_run(struct job_ctx *ctx, const json_t *params, const char *clean_dir,
                               json_t **result, struct eng_error *err);

/* Removes what job_affinity_diversity_run left in clean_dir, and the folder. */
void job_affinity_diversity_clean_remove(const char *clean_dir);

#endif
