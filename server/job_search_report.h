/* What a search (server/job_search.c) reports from its told trials' rows ({"trial", "state",
 * "value", "seconds", "params", "policy", "job", "epochs"?, ...}, in trial order): the leaderboard,
 * the best-so-far curve, and the RandAugment heatmap, as data in the result and as artifacts. */
#ifndef AUGSERVE_JOB_SEARCH_REPORT_H
#define AUGSERVE_JOB_SEARCH_REPORT_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

struct job_ctx;

/* The heatmap of a RandAugment search, from its trials' rows ({"policy", "value", ...}), into
 * *heatmap: {"n": [values], "m": [values], "value": [[the mean value of the succeeded trials at
 * (n[i], m[j]), or null], ...]}, n and m the distinct values the trials ran, ascending. A search is
 * a RandAugment one when every row with a policy (at least one) has the randaugment preset's at
 * numbers n and m ({"preset": "randaugment", "n": 2, "m": 9, ...}): the named randaugment space
 * gives those, and so does a placeholder document over the preset. For another search *heatmap
 * is NULL. 0, or -1 with err (memory). */
int job_search_heatmap(const json_t *trials, json_t **heatmap, struct eng_error *err);

/* That heatmap as a PNG (job_chart_heatmap: n up, m across). *png malloc'd. */
int job_search_heatmap_png(const json_t *heatmap, void **png, size_t *size, struct eng_error *err);

/* For a RandAugment search, result's "heatmap" and the artifact heatmap.png; for another,
 * nothing. 0, or -1 with err. */
int job_search_report_heatmap(struct job_ctx *ctx, const json_t *trials, json_t *result,
                              struct eng_error *err);

/* The artifact leaderboard.csv: rank, trial, state, value, seconds, params and policy (compact
 * JSON), the trial's child job and its metric after each epoch (JSON), best first, failed trials
 * last, ties by trial. 0, or -1 with err. */
int job_search_report_leaderboard(struct job_ctx *ctx, const json_t *trials, struct eng_error *err);

/* The artifact best.png: the best value so far after each trial (not drawn before the first
 * success). 0, or -1 with err. */
int job_search_report_curve(struct job_ctx *ctx, const json_t *trials, struct eng_error *err);

#endif
