/* A job's children (a search's trials): jobs of their own in the store, with the parent's id as
 * their `parent`, which the parent runs itself. The general runners never claim a child
 * (job_store_claim skips them): with job_workers 1 the parent holds the only runner, so its
 * children would wait for ever. Instead the parent starts a pool of threads that claim its queued
 * children from the store, oldest first (job_store_claim_child: a store operation, not an
 * in-memory hand-off, so another process could claim them as well), and run each exactly as a
 * runner runs a job (jobs_run_claimed): its own context, checkpoints, events, cancel, and its
 * end recorded in the store. The parent learns how a child ended by reading its record.
 *
 * A child may end a run waiting for its parent (job_ctx_wait: a successive-halving trial at a
 * rung), which queues it again with job_children_wake once it may go on; until then no thread
 * claims it, so waiting holds no thread. A child cancelled on its own ends cancelled and the
 * parent goes on; cancelling the parent
 * cancels its children in the same transaction (job_store_cancel); a stopping server queues the
 * parent and its running children again, and the next start's parent runs them again, from their
 * own checkpoints. */
#ifndef AUGSERVE_JOB_CHILDREN_H
#define AUGSERVE_JOB_CHILDREN_H

#include <jansson.h>

#include "core/error.h"
#include "job_store.h"

struct job_ctx;
struct job_children;

/* Starts `parallel` threads (1 or more) that run the children of ctx's job, each child's engine
 * work with job_ctx_threads(ctx) / parallel threads (at least 1). For the runner thread of ctx.
 * NULL with err. */
struct job_children *job_children_start(struct job_ctx *ctx, int parallel, struct eng_error *err);

/* Stops and joins the threads (NULL: nothing). A thread running a child finishes it first: the
 * caller cancels the children it no longer wants (job_children_cancel) before, unless the server
 * is stopping, which stops them itself. */
void job_children_stop(struct job_children *c);

/* A new child's id (jobs_new_id): taken before the child is queued, so that a checkpoint can
 * name the child before it exists and a restart never queues it twice. */
int job_children_new_id(char id[JOB_ID_SIZE], struct eng_error *err);

/* Queues a child of kind with params under id and wakes a thread. No validation: the parent
 * made the params; the kind's run refuses bad ones, failing the child. ENG_CONFLICT when a job
 * has this id. */
int job_children_add(struct job_children *c, const char *id, const char *kind, const json_t *params,
                     struct eng_error *err);

/* Waits until a child has ended a run (finished, or waiting) since the last call, or timeout_ms
 * have passed: 1 when one has, else 0. */
int job_children_wait(struct job_children *c, int timeout_ms);

/* The child's record (job_clear it). ENG_NOT_FOUND when no job has this id. */
int job_children_get(struct job_children *c, const char *id, struct job *out,
                     struct eng_error *err);

/* Queues a waiting child again (job_store_wake: it resumes from its checkpoint) and wakes a
 * thread. ENG_CONFLICT when it is not waiting. */
int job_children_wake(struct job_children *c, const char *id, struct eng_error *err);

/* The children's records, newest first, at most limit (jobs_children_json's). */
int job_children_records(struct job_children *c, size_t limit, json_t **out, struct eng_error *err);

/* Cancels a child that has not ended (one that has, or was never queued, is left as it is). */
int job_children_cancel(struct job_children *c, const char *id, struct eng_error *err);

#endif
