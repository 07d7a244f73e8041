/* The job kind "search" (server/job_search.c): its params, read by job_search_params.c. */
#ifndef AUGSERVE_JOB_SEARCH_H
#define AUGSERVE_JOB_SEARCH_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"
#include "job_classify.h"

struct app;
struct search_space;

/* The most trials one search runs, whatever its budget says. */
#define JOB_SEARCH_MAX_TRIALS 100000
/* The longest budget in seconds: a week. */
#define JOB_SEARCH_MAX_SECONDS (7 * 24 * 3600.0)
/* The most trials running at once. */
#define JOB_SEARCH_MAX_PARALLEL 64

struct job_search_params {
    struct search_space *space;
    const char *algorithm; /* its name, in params */
    json_t *settings;      /* the algorithm's own params (params.algorithm but "name"), or NULL */
    size_t trials;         /* the budget's trials (JOB_SEARCH_MAX_TRIALS when not given) */
    double seconds;        /* the budget's seconds (0: none) */
    const char *save_as;   /* a saved policy's name, or NULL */
    const char *objective; /* its name, in params: a trial objective (job_search_trial.c) */
    int parallel;          /* trials at once, 1 to JOB_SEARCH_MAX_PARALLEL */
    /* The affinity objective's model, dataset and val split, with the seed both the algorithm
     * and each trial's policy draws use (jc.seed). */
    struct job_classify jc;
    /* The params jc was opened with (jc points into it): the objective's params, which every
     * trial's params hold (with "objective", "policy" and "trial"). */
    json_t *classify;
};

/* Reads and checks params (job_kind.h's validate): the space compiles, the algorithm takes its
 * settings and the space, the model and the dataset open as the affinity kind's do, the budget
 * is in bounds, and save_as is a valid name and, when queueing (validate; not run, whose own
 * earlier attempt may have saved it), one no saved policy has: a search does not replace a
 * policy others use by name. 0, or -1 with err naming the field. job_search_params_close
 * releases what it took, after a failure too. */
int job_search_params_open(struct job_search_params *p, const struct app *app, const json_t *params,
                           int queueing, struct eng_error *err);
void job_search_params_close(struct job_search_params *p);

#endif
