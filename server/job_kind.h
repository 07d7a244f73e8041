/* Job kinds: what a job does. One descriptor per kind, in the table of server/job_kinds.c; a kind
 * sees the job through its context (struct job_ctx) alone, never the store or the runner (a kind
 * that makes child jobs, the search, queues and runs them through job_children.h).
 *
 * A kind that must resume after a crash keeps its position and everything it has accumulated in
 * one checkpoint (a JSON value), saved after each unit of work: job_ctx_checkpoint replaces the
 * whole checkpoint in one transaction, so a restart resumes from the last unit saved, with the
 * totals of exactly the units before it. A unit done after the last checkpoint is done again. A
 * file the kind appends to per unit is kept in step the same way: the checkpoint holds the file's
 * length, and job_ctx_artifact_resume cuts what a lost unit wrote (see server/job_count.c).
 *
 *     static int run(struct job_ctx *ctx, const json_t *params, json_t **result,
 *                    struct eng_error *err)
 *     {
 *         const json_t *saved = job_ctx_restored(ctx);      // NULL on the first attempt
 *         ... take the position and totals from saved ...
 *         for (each unit from the position on) {
 *             if (job_ctx_cancelled(ctx, err)) return -1;   // cancel, shutdown
 *             ... the unit's work (engine loops stop by themselves: core/cancel.h) ...
 *             if (job_ctx_checkpoint(ctx, state, done / total, "phase", err)) return -1;
 *         }
 *         *result = json_pack(...);
 *         return 0;
 *     }
 */
#ifndef AUGSERVE_JOB_KIND_H
#define AUGSERVE_JOB_KIND_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "core/error.h"

struct app;
struct job_ctx;

enum job_kind_flags {
    JOB_KIND_DEBUG = 1u << 0, /* only with debug_routes (tests of the job system itself) */
    /* Queued by the server itself (a dataset import by POST /v1/datasets), never by
     * POST /v1/jobs, whose handler refuses it. */
    JOB_KIND_INTERNAL = 1u << 1,
};

struct job_kind {
    const char *name;
    const char *help;
    unsigned flags;
    /* Checks params (a JSON object) before the job is queued, on a request thread, so nothing
     * heavy: 0, or -1 with err: ENG_INVALID with a message that starts with the field
     * ("params.units: ..."), ENG_NOT_FOUND for a named thing that does not exist. */
    int (*validate)(const struct app *app, const json_t *params, struct eng_error *err);
    /* Does the job, on a runner thread: 0 with *result set (a JSON object the runner takes),
     * or -1 with err. A job told it is cancelled (job_ctx_cancelled, or an engine loop's
     * ENG_CANCELLED) returns -1 with that error: the runner then records it as cancelled, or
     * queues it again when the server is stopping. Any other error fails the job with err's
     * message. */
    int (*run)(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err);
};

/* The kind of this name (debug ones only when debug is set), or NULL. */
const struct job_kind *job_kind_find(const char *name, int debug);
/* The index-th kind a client may submit (debug ones only when debug is set, internal ones
 * never): what GET /v1 lists. NULL past the last. */
const struct job_kind *job_kind_at(size_t index, int debug);
/* The names of the kinds job_kind_at lists, ", "-separated, for messages: into out, which it
 * returns. */
const char *job_kind_names(int debug, char *out, size_t size);

/* ---- Reading params in validate and run (server/job_params.c) ------------------------------ */

/* ENG_INVALID naming the first member of params not in names (NULL-terminated): a typo in a
 * parameter's name is an error, not a default silently used. */
int job_params_known(const json_t *params, const char *const names[], struct eng_error *err);
/* The integer member name in [min, max] into *out; *out = def when absent and not required.
 * ENG_INVALID naming "params.<name>" otherwise. name may be a dotted path into nested objects
 * ("optimizer.lr"). */
int job_param_int(const json_t *params, const char *name, int required, long long def,
                  long long min, long long max, long long *out, struct eng_error *err);
/* The number member name (integer or real) in [min, max], likewise. */
int job_param_real(const json_t *params, const char *name, int required, double def, double min,
                   double max, double *out, struct eng_error *err);

/* ---- The context: what a running job may ask of the server --------------------------------- */

/* Every function below is for the runner thread that called run, but job_ctx_cancelled, which
 * any thread of the job may call (the threads of a parallel_for). */

const char *job_ctx_id(const struct job_ctx *ctx);
struct app *job_ctx_app(const struct job_ctx *ctx);
/* The id of the job that made this one (a search, for its trial), or NULL. */
const char *job_ctx_parent(const struct job_ctx *ctx);
/* Which start this is: 1, then 2 after an interruption, ... */
int job_ctx_attempt(const struct job_ctx *ctx);
/* The threads the job's engine work may use (job_threads). */
int job_ctx_threads(const struct job_ctx *ctx);

/* The checkpoint the job resumes from (NULL on a fresh start); owned by the context. */
const json_t *job_ctx_restored(const struct job_ctx *ctx);
/* Saves state (any JSON value) as the checkpoint, with the progress, in one transaction of the
 * store: 0, or -1 with err (the job should then fail: it could not resume). */
int job_ctx_checkpoint(struct job_ctx *ctx, const json_t *state, double fraction, const char *phase,
                       struct eng_error *err);

/* Progress, a fraction 0-1 and what the job is doing (may be NULL). Stored at most a few times a
 * second (and at once when the phase changes), so it may be called per item. */
void job_ctx_progress(struct job_ctx *ctx, double fraction, const char *phase);
/* A line for the job's event stream. */
void job_ctx_log(struct job_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A measurement at a step (an epoch, a batch): a "metric" event. */
void job_ctx_metric(struct job_ctx *ctx, const char *name, double value, long step);

/* The records of the other children of the job's parent (a search's other trials), newest first,
 * at most limit: a JSON array of {"id", "state", "params", "result" (null before it succeeded),
 * "checkpoint" (the last one, when it has no result; null for none)}, read from the store, so a
 * sibling another process runs is seen too. -1 with err (ENG_INVALID for a job without a
 * parent). */
int job_ctx_siblings(struct job_ctx *ctx, size_t limit, json_t **out, struct eng_error *err);

/* For a child job (a successive-halving trial at a rung): its run is to end waiting for its
 * parent, with its checkpoint, rather than fail. Returns -1 with err set, which run returns; the
 * runner then records the job waiting (job_store_wait, with reason in its state event) unless it
 * was cancelled or the server is stopping meanwhile. The parent queues it again
 * (job_children_wake), and it resumes from its checkpoint. ENG_INTERNAL for a job without a
 * parent. */
int job_ctx_wait(struct job_ctx *ctx, const char *reason, struct eng_error *err);
/* 0 while the job may go on; -1 with err (ENG_CANCELLED, saying why) once it was cancelled or
 * the server is stopping. Cheap: it reads the store a few times a second at most. The same check
 * is installed as the runner thread's engine cancellation check (core/cancel.h), so engine loops
 * the kind calls stop by themselves. */
int job_ctx_cancelled(struct job_ctx *ctx, struct eng_error *err);
/* Whether the job was stopped because the server is stopping: it goes back to the queue and runs
 * again at the next start, so what it would undo on a cancel or a failure must stay. */
int job_ctx_resumes(struct job_ctx *ctx);

/* The job's artifacts folder (data_dir/jobs/<id>/artifacts), created on first use; files there
 * are listed by GET /v1/jobs/{id}/artifacts. Names: letters, digits, '.', '-', '_', not starting
 * with '.'. NULL with err when it cannot be created. */
const char *job_ctx_artifacts(struct job_ctx *ctx, struct eng_error *err);
/* Opens artifact `name` for appending after cutting it to `length` bytes (0: a new, empty file),
 * the length a checkpoint recorded: what units after that checkpoint wrote is gone. NULL with
 * err. */
FILE *job_ctx_artifact_resume(struct job_ctx *ctx, const char *name, long length,
                              struct eng_error *err);

/* Whether name is a valid artifact name. */
int job_artifact_name_ok(const char *name);

#endif
