/* Jobs in the store: their records, their state changes, their checkpoints and their
 * append-only events. Every function is one atomic operation of the store, safe from any thread,
 * and no caller sees SQL: the same functions run on SQLite and on PostgreSQL (job_store_claim as
 * UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED)).
 *
 * A job's life, every change of state recorded as a "state" event in the same transaction:
 *
 *   queued --claim--> running --finish--> succeeded | failed | cancelled
 *     |                  |  \--requeue (its process stops)--> queued
 *     |                  \--expire (its lease expired: the process died or froze)--> interrupted
 *     |                                      --> queued again, or left interrupted after
 *     |                                          max_attempts starts
 *     \--cancel--> cancelled
 *
 * succeeded, failed, cancelled and interrupted are final.
 *
 * Leases. Several processes may run jobs from one store (PostgreSQL). A claim gives the job a
 * lease: its owner (the claiming process's worker id), a heartbeat time, and a fencing token, a
 * number the claim increments. The owner renews the heartbeat while the job runs
 * (job_store_heartbeat); any process finds a lease whose heartbeat is older than lease_s expired
 * (job_store_expire, which locks only the rows of expired leases) and puts the job back in the
 * queue, counting the attempt. Every write of the job's outcome (progress, checkpoint, events, its
 * end) carries the token of the claim it runs under and changes nothing when the job has been
 * claimed again since (ENG_CONFLICT): a process that froze past its lease and wakes cannot
 * overwrite the attempt that replaced it. Lease times are the database's clock (storage_clock_ms),
 * so the machines' clocks need not agree. */
#ifndef AUGSERVE_JOB_STORE_H
#define AUGSERVE_JOB_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct storage;

enum job_state {
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_INTERRUPTED,
    /* A child that ended a run to wait for its parent (a successive-halving trial at a rung),
     * with its checkpoint: never claimed until its parent wakes it (job_store_wake). Not final. */
    JOB_WAITING,
};

/* "queued", ...; and back (-1 for an unknown name). */
const char *job_state_name(enum job_state state);
int job_state_from_name(const char *name);
/* Whether a job in this state will never change again. */
int job_state_is_final(enum job_state state);

/* A job id: 24 lowercase hex digits. */
#define JOB_ID_SIZE 25

struct job {
    char id[JOB_ID_SIZE];
    char *kind;
    json_t *params;
    char *owner;  /* the API key's name, or NULL */
    char *parent; /* the job that made this one (a search's trial), or NULL */
    enum job_state state;
    double progress; /* 0 to 1 */
    char *phase;     /* what the job is doing, or NULL */
    json_t *result;  /* once succeeded; NULL before */
    char *error;     /* once failed (or interrupted for good); NULL otherwise */
    int attempts;    /* times a runner has started it */
    int cancel_requested;
    int64_t lease_token; /* the fencing token of its last claim (0: never claimed) */
    char *lease_owner;   /* the worker id of its last claim, or NULL */
    int64_t created_ms, started_ms, finished_ms; /* since the epoch; 0: not yet */
};

/* Frees what a job record holds and zeroes it. */
void job_clear(struct job *job);

enum job_event_type {
    JOB_EVENT_STATE,    /* {"state", ...}: "attempt" when running, "error" when failed, "reason" */
    JOB_EVENT_PROGRESS, /* {"fraction", "phase"} */
    JOB_EVENT_LOG,      /* {"message"} */
    JOB_EVENT_METRIC,   /* {"name", "value", "step"} */
};

/* "state", "progress", "log", "metric". */
const char *job_event_type_name(enum job_event_type type);

struct job_event {
    /* Global. A job's events are committed in the order of their ids, whichever processes write
     * them (each holds the job's row from the INSERT to its commit): one that reads a job's events
     * up to id n never finds one below n appear later. */
    int64_t id;
    int64_t time_ms;
    enum job_event_type type;
    char *data; /* a JSON object's text */
};

void job_events_free(struct job_event *events, size_t count);

/* A new queued job: spec's id, kind, params, owner and parent; its state, times and progress are
 * the store's. ENG_CONFLICT when the id is taken, ENG_NOT_FOUND when the parent is unknown. */
int job_store_create(struct storage *st, const struct job *spec, struct eng_error *err);
/* The same for a child (spec->parent set) that its parent, running under parent_token, queues:
 * ENG_CONFLICT, nothing queued, when the parent no longer runs under it (a lost lease). */
int job_store_create_child(struct storage *st, const struct job *spec, int64_t parent_token,
                           struct eng_error *err);

/* The job with this id into *out (job_clear it). ENG_NOT_FOUND when there is none. */
int job_store_get(struct storage *st, const char *id, struct job *out, struct eng_error *err);

struct job_filter {
    int state;          /* an enum job_state, or -1 for any */
    const char *kind;   /* NULL: any */
    const char *owner;  /* NULL: anyone's */
    const char *after;  /* a job id: only jobs created before it (the next page); NULL: from the
                           newest */
    const char *parent; /* a job id: only its children (a search's trials); NULL: see children */
    int children;       /* without parent: children too (1) or only jobs without a parent (0) */
    size_t limit;
};

/* Jobs matching f, newest first, at most f->limit, into a new array (job_clear each, then free
 * it). ENG_NOT_FOUND when f->after names no job. */
int job_store_list(struct storage *st, const struct job_filter *f, struct job **jobs, size_t *count,
                   struct eng_error *err);

/* Moves the oldest queued job without a parent to running (attempts + 1, started now, its cancel
 * flag cleared) under a new lease of worker's (a worker id: owner, heartbeat now, token + 1) and
 * fills *out with it, its lease_token the token every write of its outcome carries: 1, or 0 when
 * none is queued, -1 with err. Two runners never claim the same job. A child (a search's trial) is
 * left to its parent, which runs it itself: with job_workers 1 the parent holds the only runner,
 * so a runner never would. */
int job_store_claim(struct storage *st, const char *worker, struct job *out, struct eng_error *err);
/* The same for the oldest queued child of job parent, while parent runs under parent_token: a
 * parent whose lease was lost claims none. */
int job_store_claim_child(struct storage *st, const char *parent, int64_t parent_token,
                          const char *worker, struct job *out, struct eng_error *err);

/* Renews the lease of a running job claimed with token (its heartbeat, now): 1, 0 when the lease
 * is lost (the job expired, was claimed again or has ended), -1 with err. */
int job_store_heartbeat(struct storage *st, const char *id, int64_t token, struct eng_error *err);

/* The writes of a running job's outcome below carry the token of its claim, and fail with
 * ENG_CONFLICT, changing nothing, when the job is no longer running under it. */

/* A running job's progress; with event, also a progress event. */
int job_store_progress(struct storage *st, const char *id, int64_t token, double fraction,
                       const char *phase, int event, struct eng_error *err);

/* Appends an event (data: a JSON object) to a running job. */
int job_store_event(struct storage *st, const char *id, int64_t token, enum job_event_type type,
                    const json_t *data, struct eng_error *err);

/* Replaces a running job's checkpoint (a JSON value) and its progress, as job_store_progress does,
 * in one transaction: what a restart resumes from. */
int job_store_checkpoint(struct storage *st, const char *id, int64_t token,
                         const json_t *checkpoint, double fraction, const char *phase, int event,
                         struct eng_error *err);

/* The job's last checkpoint into *out (NULL when it has none). */
int job_store_checkpoint_load(struct storage *st, const char *id, json_t **out,
                              struct eng_error *err);

/* Ends a running job: JOB_SUCCEEDED with result (progress becomes 1), JOB_FAILED with error,
 * or JOB_CANCELLED. ENG_CONFLICT when the job is not running under token. */
int job_store_finish(struct storage *st, const char *id, int64_t token, enum job_state state,
                     const json_t *result, const char *error, struct eng_error *err);

/* A running job that this process stops (it shuts down) goes back to the queue with its
 * checkpoint: an "interrupted" state event saying why, then a "queued" one. */
int job_store_requeue(struct storage *st, const char *id, int64_t token, const char *reason,
                      struct eng_error *err);

/* A running child that waits for its parent: to waiting (a state event with the reason), its
 * checkpoint kept; to cancelled instead when its cancel flag is set (a cancel the run did not see
 * before it ended). Fenced as job_store_finish is: ENG_CONFLICT when it is not running under
 * token. */
int job_store_wait(struct storage *st, const char *id, int64_t token, const char *reason,
                   struct eng_error *err);

/* A waiting job back to the queue, to run on from its checkpoint. Its attempts go back by one, so
 * the claim that runs it again counts none: a wait is no interruption, and max_attempts counts
 * those. ENG_CONFLICT when it is not waiting. */
int job_store_wake(struct storage *st, const char *id, struct eng_error *err);

/* Cancels a job: a queued (or waiting) one at once, a running one by setting its cancel flag, which
 * its runner reads (job_store_cancel_requested). *state is the job's state after the call; a job
 * already cancelled stays so. Its children that have not ended are cancelled the same way, in the
 * same transaction. ENG_CONFLICT when it has ended otherwise, ENG_NOT_FOUND. */
int job_store_cancel(struct storage *st, const char *id, enum job_state *state,
                     struct eng_error *err);

/* Whether the job's cancel flag is set: 1, 0, or -1 with err. */
int job_store_cancel_requested(struct storage *st, const char *id, struct eng_error *err);

/* A sweep of expired leases (job_store_expire). */
struct job_expiry {
    int64_t lease_ms; /* a lease whose heartbeat is older than this (the store's clock) expired */
    int max_attempts; /* a job started this many times is left interrupted, not queued again */
    /* Whether the process of worker id `owner` is known to have ended, its lease expired whatever
     * its heartbeat (NULL: none is known to). */
    int (*gone)(const char *owner, void *arg);
    void *arg;
    size_t requeued, abandoned; /* set by the sweep: jobs queued again, and left interrupted */
};

/* Ends the expired leases of running jobs (x): each job becomes interrupted (a state event with
 * the reason) and is queued again, to resume from its checkpoint, unless it has been started
 * max_attempts times already (a job that brings its process down would otherwise do so on every
 * start): that one stays interrupted, with an error naming the last owner. Any process may sweep
 * at any time; on PostgreSQL two sweeps skip each other's rows. Children of a job that has ended
 * (left interrupted with it) are then cancelled: no parent would run them. */
int job_store_expire(struct storage *st, struct job_expiry *x, struct eng_error *err);

/* The queued jobs, by kind: a JSON object of kind -> count (kinds with none left out), into *out
 * (json_decref it). */
int job_store_queued(struct storage *st, json_t **out, struct eng_error *err);

/* Whether a queued, running or waiting job other than except (may be NULL) has params naming the
 * dataset id ("dataset": id): 1 with the oldest such job's id copied into job, 0 when none does, -1
 * with err. Read in C from the params of the jobs not yet ended (a backend needs no JSON functions
 * of its own). */
int job_store_dataset_user(struct storage *st, const char *dataset, const char *except,
                           char job[JOB_ID_SIZE], struct eng_error *err);

/* The job's events with ids above after, oldest first, at most limit, into a new array
 * (job_events_free it): with after the last id a reader has seen, every event it has not, as
 * their ids commit in order. On PostgreSQL, each new event of a job is announced to every process
 * of the store (STORAGE_CHANNEL_EVENTS, payload the job's id) at its commit. */
int job_store_events(struct storage *st, const char *id, int64_t after, size_t limit,
                     struct job_event **events, size_t *count, struct eng_error *err);

#endif
