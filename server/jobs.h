/* The job system at run time: the runner pool that claims queued jobs from the store and runs them
 * with their kind (job_kind.h), apart from the request workers (admission.h), and the submission
 * of new jobs. The records themselves live in the store (job_store.h), so any number of readers
 * (GET /v1/jobs, the event streams) need nothing from here. */
#ifndef AUGSERVE_JOBS_H
#define AUGSERVE_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "job_store.h"

struct app;
struct job_ctx;
struct jobs;

/* At start-up, once the store is open: queues again the jobs an ended process left running
 * (job_store_expire: on SQLite every one, on PostgreSQL those of an ended process of this host;
 * other leases expire by time), starts the lease thread (leases.h) and cfg->job_workers runner
 * threads. NULL with err. */
struct jobs *jobs_start(struct app *app, struct eng_error *err);

/* Stops the runners: a running job stops at its next check and goes back to the queue with its
 * checkpoint, to resume at the next start. Returns once every runner has. Safe to call twice. */
void jobs_stop(struct jobs *jobs);
/* jobs_stop, then frees jobs (NULL: nothing). */
void jobs_close(struct jobs *jobs);

/* Queues a job of kind with params (a JSON object; NULL: {}) for owner (NULL: none), once its
 * kind has validated them, and wakes a runner; *out is the new record. ENG_INVALID naming "kind"
 * for an unknown kind, or the kind's validation error. */
int jobs_submit(struct jobs *jobs, const char *kind, json_t *params, const char *owner,
                struct job *out, struct eng_error *err);

/* Wakes the idle runners to claim: a job was queued (by another process: storage.h's
 * notifications). */
void jobs_wake(struct jobs *jobs);
/* Makes every running job read its cancel flag from the store at its next check: a job's cancel
 * was requested (by another process), perhaps one running here. Safe from any thread. */
void jobs_cancel_heard(struct jobs *jobs);

/* Runs a job claimed from the store (job_store_claim, job_store_claim_child) on the calling
 * thread, as a runner does: its kind's run with a context whose engine work may use `threads`
 * threads, its lease renewed meanwhile (leases.h), then its end recorded under the lease
 * (succeeded, failed or cancelled, waiting when the kind asked (job_ctx_wait), or queued again
 * when the server is stopping); nothing is recorded once the lease was lost. A search's threads
 * run its trials through this (job_children.h). */
void jobs_run_claimed(struct jobs *jobs, const struct job *job, int threads);
/* The fencing token of the claim the context's job runs under (job_store.h, "Leases"): what a
 * claim of its children carries. */
int64_t jobs_lease_token(const struct job_ctx *ctx);
/* The records of job parent's children but except (NULL: none), newest first, at most limit: a
 * JSON array of {"id", "state", "params", "result" (null before it succeeded), "checkpoint" (the
 * last one, when it has no result; null for none)}, as job_ctx_siblings lists them. */
int jobs_children_json(struct app *app, const char *parent, const char *except, size_t limit,
                       json_t **out, struct eng_error *err);
/* The runners a running job's context belongs to (app->jobs is not set yet while jobs_start
 * runs, when a runner may already have resumed a job). */
struct jobs *jobs_of(const struct job_ctx *ctx);

/* A new id, 24 random hex digits (jobs' ids; datasets take the same form). */
int jobs_new_id(char id[JOB_ID_SIZE], struct eng_error *err);

/* Runners running a job now, and runners in all. A job's children (a search's trials) run on
 * their parent's threads (job_children.h), not on runners, so they are not counted: their parent
 * is, once. */
void jobs_counts(struct jobs *jobs, int *busy, int *runners);

/* data_dir/jobs/<id>/artifacts into out: 0, or -1 when it does not fit. */
int jobs_artifacts_path(const struct app *app, const char *id, char *out, size_t size);

#endif
