/* Admission control for heavy requests: a fixed pool of worker threads and a bounded queue in
 * front of it. A job that finds every worker busy and the queue full is refused at once, so the
 * server answers 429 instead of piling up work it cannot finish in time. */
#ifndef AUGSERVE_ADMISSION_H
#define AUGSERVE_ADMISSION_H

#include <stddef.h>

struct admission;

typedef void (*admission_job_fn)(void *arg);

/* Starts `workers` threads (>= 1) with room for `queue` waiting jobs. NULL when threads or memory
 * cannot be had. */
struct admission *admission_create(int workers, int queue);

/* Runs fn(arg) on a worker. Returns 0, or -1 when the pool is saturated (fn is not called). */
int admission_submit(struct admission *adm, admission_job_fn fn, void *arg);

/* Jobs running now and jobs waiting. */
void admission_counts(struct admission *adm, int *running, int *waiting);

/* Runs every accepted job to its end, then stops the threads and frees adm. */
void admission_destroy(struct admission *adm);

#endif
