/* The jobs of job_store.h, on either backend (storage_internal.h). Each function takes the store's
 * lock for its whole run, and those that write do so in one transaction, so a state
 * change and its event land together or not at all. */
#include "job_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_text.h"
#include "storage_internal.h"

static const char *const state_names[] = {
    [JOB_QUEUED] = "queued",   [JOB_RUNNING] = "running",     [JOB_SUCCEEDED] = "succeeded",
    [JOB_FAILED] = "failed",   [JOB_CANCELLED] = "cancelled", [JOB_INTERRUPTED] = "interrupted",
    [JOB_WAITING] = "waiting",
};
#define STATE_COUNT (sizeof state_names / sizeof state_names[0])

static const char *const event_names[] = {
    [JOB_EVENT_STATE] = "state",
    [JOB_EVENT_PROGRESS] = "progress",
    [JOB_EVENT_LOG] = "log",
    [JOB_EVENT_METRIC] = "metric",
};
#define EVENT_TYPE_COUNT (sizeof event_names / sizeof event_names[0])

const char *job_state_name(enum job_state state)
{
    return (size_t)state < STATE_COUNT ? state_names[state] : "unknown";
}

int job_state_from_name(const char *name)
{
    for (size_t i = 0; name && i < STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0) return (int)i;
    return -1;
}

int job_state_is_final(enum job_state state)
{
    return state != JOB_QUEUED && state != JOB_RUNNING && state != JOB_WAITING;
}

const char *job_event_type_name(enum job_event_type type)
{
    return (size_t)type < EVENT_TYPE_COUNT ? event_names[type] : "unknown";
}

static int event_type_from_name(const char *name)
{
    for (size_t i = 0; name && i < EVENT_TYPE_COUNT; i++)
        if (strcmp(name, event_names[i]) == 0) return (int)i;
    return -1;
}

void job_clear(struct job *job)
{
    free(job->kind);
    json_decref(job->params);
    free(job->owner);
    free(job->parent);
    free(job->phase);
    json_decref(job->result);
    free(job->error);
    free(job->lease_owner);
    memset(job, 0, sizeof *job);
}

void job_events_free(struct job_event *events, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(events[i].data);
    free(events);
}

/* Every event of a job is added here. Its INSERT holds the job's row (on PostgreSQL, FOR NO KEY
 * UPDATE: most callers hold it already, from the UPDATE of the job's state) before the event takes
 * its id, and the transaction keeps it to its commit. An event's id is global and taken at INSERT,
 * but on PostgreSQL visible only at commit: two processes writing one job's events without the row
 * could commit a larger id first, and a reader resuming after it (Last-Event-ID) would never see
 * the smaller one. Holding the row, they take their ids in turn and commit in that order, so a
 * job's events appear in id order. SQLite has one writer at a time. The processes listening on
 * the store are told the job has new events (its streams read them at once). */
#define EVENT_SQL(lock)                                                                            \
    "INSERT INTO job_events (job, time_ms, type, data)"                                            \
    " SELECT id, ?2, ?3, ?4 FROM jobs WHERE id = ?1" lock

static int add_event(struct storage *st, const char *id, enum job_event_type type,
                     const json_t *data, struct eng_error *err)
{
    struct storage_stmt *stmt =
        storage_prepare(st, storage_sql(st, EVENT_SQL(""), EVENT_SQL(" FOR NO KEY UPDATE")), err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, id);
    storage_bind_int64(stmt, 2, storage_now_ms());
    storage_bind_text(stmt, 3, job_event_type_name(type));
    if (storage_bind_json(stmt, 4, data, err) != 0) {
        storage_finalize(stmt);
        return -1;
    }
    if (storage_run(st, stmt, err, "recording an event") != 0) return -1;
    if (storage_changes(st) != 1) return eng_fail(err, ENG_NOT_FOUND, "no such job: %s", id);
    return storage_notify_within(st, STORAGE_CHANNEL_EVENTS, id, err);
}

/* A state event: {"state": state} and, when given, "reason" and "error". */
static int add_state_event(struct storage *st, const char *id, enum job_state state,
                           const char *reason, const char *error, struct eng_error *err)
{
    json_t *data = json_pack("{s:s}", "state", job_state_name(state));
    if (data && reason) json_object_set_new(data, "reason", json_string(reason));
    if (data && error) json_object_set_new(data, "error", json_string(error));
    if (!data) return eng_no_memory(err);
    int rc = add_event(st, id, JOB_EVENT_STATE, data, err);
    json_decref(data);
    return rc;
}

/* ---- Records --------------------------------------------------------------------------------- */

#define JOB_COLUMNS                                                                                \
    "id, kind, params, owner, parent, state, progress, phase, result, error, attempts, "           \
    "cancel_requested, created_ms, started_ms, finished_ms, lease_token, lease_owner"

/* A row of JOB_COLUMNS into *job. */
static int read_job(struct storage_stmt *stmt, struct job *job, struct eng_error *err)
{
    memset(job, 0, sizeof *job);
    int failed = 0;
    snprintf(job->id, sizeof job->id, "%s", storage_column(stmt, 0));
    job->kind = storage_column_text(stmt, 1, &failed);
    job->params = storage_column_json(stmt, 2, &failed);
    job->owner = storage_column_text(stmt, 3, &failed);
    job->parent = storage_column_text(stmt, 4, &failed);
    int state = job_state_from_name(storage_column(stmt, 5));
    job->progress = storage_column_double(stmt, 6);
    job->phase = storage_column_text(stmt, 7, &failed);
    job->result = storage_column_json(stmt, 8, &failed);
    job->error = storage_column_text(stmt, 9, &failed);
    job->attempts = (int)storage_column_int64(stmt, 10);
    job->cancel_requested = (int)storage_column_int64(stmt, 11);
    job->created_ms = storage_column_int64(stmt, 12);
    job->started_ms = storage_column_int64(stmt, 13);
    job->finished_ms = storage_column_int64(stmt, 14);
    job->lease_token = storage_column_int64(stmt, 15);
    job->lease_owner = storage_column_text(stmt, 16, &failed);
    if (failed || state < 0 || !job->kind || !job->params) {
        job_clear(job);
        return eng_fail(err, ENG_INTERNAL, "storage: a job record does not read back");
    }
    job->state = (enum job_state)state;
    return 0;
}

/* The job with this id, under the lock. */
static int get_locked(struct storage *st, const char *id, struct job *out, struct eng_error *err)
{
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, id);
    int rc = storage_step(stmt);
    int ok = -1;
    if (rc == STORAGE_ROW)
        ok = read_job(stmt, out, err);
    else if (rc == STORAGE_DONE)
        eng_fail(err, ENG_NOT_FOUND, "no such job: %s", id);
    else
        storage_fail(st, err, "reading a job");
    storage_finalize(stmt);
    return ok;
}

int job_store_get(struct storage *st, const char *id, struct job *out, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    int rc = get_locked(st, id, out, err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ENG_CONFLICT for a write of job id's outcome under token that changed nothing: the job is no
 * longer running under that lease. */
static int lease_lost(const char *id, int64_t token, struct eng_error *err)
{
    return eng_fail(err, ENG_CONFLICT,
                    "job %s is not running under lease %lld: it ended, or its lease expired and "
                    "another attempt took it",
                    id, (long long)token);
}

/* Whether job id runs under token, in the transaction: 0, or -1 with err (ENG_CONFLICT: it does
 * not). On PostgreSQL the UPDATE, which changes nothing, also locks the row to the transaction's
 * end, so no expiry can slip between this check and the write it guards. */
static int fence(struct storage *st, const char *id, int64_t token, struct eng_error *err)
{
    struct storage_stmt *stmt = storage_prepare(st,
                                                "UPDATE jobs SET lease_token = lease_token"
                                                " WHERE id = ? AND lease_token = ? AND state = "
                                                "'running'",
                                                err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, id);
    storage_bind_int64(stmt, 2, token);
    if (storage_run(st, stmt, err, "checking a lease") != 0) return -1;
    return storage_changes(st) == 1 ? 0 : lease_lost(id, token, err);
}

/* job_store_create, and with parent_token 0 or more, job_store_create_child. */
static int create(struct storage *st, const struct job *spec, int64_t parent_token,
                  struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    int rc = -1;
    struct storage_stmt *stmt = NULL;
    if (spec->parent) {
        struct job parent;
        if (get_locked(st, spec->parent, &parent, err) != 0) return storage_end(st, -1, err);
        job_clear(&parent);
        if (parent_token >= 0 && fence(st, spec->parent, parent_token, err) != 0)
            return storage_end(st, -1, err);
    }
    stmt = storage_prepare(st,
                           "INSERT INTO jobs (id, kind, params, owner, parent, state, created_ms) "
                           "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                           err);
    if (stmt) {
        storage_bind_text(stmt, 1, spec->id);
        storage_bind_text(stmt, 2, spec->kind);
        storage_bind_text(stmt, 4, spec->owner);
        storage_bind_text(stmt, 5, spec->parent);
        storage_bind_int64(stmt, 6, storage_now_ms());
        if (storage_bind_json(stmt, 3, spec->params, err) == 0) {
            int step = storage_step(stmt);
            if (step == STORAGE_DONE)
                rc = 0;
            else if (storage_duplicate(st))
                eng_fail(err, ENG_CONFLICT, "a job with the id %s exists", spec->id);
            else
                storage_fail(st, err, "creating a job");
        }
        storage_finalize(stmt);
    }
    if (rc == 0) rc = add_state_event(st, spec->id, JOB_QUEUED, NULL, NULL, err);
    /* Runners claim jobs without a parent; a child waits for its parent's threads. */
    if (rc == 0 && !spec->parent) rc = storage_notify_within(st, STORAGE_CHANNEL_JOBS, NULL, err);
    return storage_end(st, rc, err);
}

int job_store_create(struct storage *st, const struct job *spec, struct eng_error *err)
{
    return create(st, spec, -1, err);
}

int job_store_create_child(struct storage *st, const struct job *spec, int64_t parent_token,
                           struct eng_error *err)
{
    return create(st, spec, parent_token, err);
}

int job_store_list(struct storage *st, const struct job_filter *f, struct job **jobs, size_t *count,
                   struct eng_error *err)
{
    *jobs = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    /* A NULL parameter matches everything, so one statement serves every filter. (The casts give
     * PostgreSQL a type for a parameter that IS NULL alone would leave without one.) */
    struct storage_stmt *stmt = storage_prepare(
        st,
        "SELECT " JOB_COLUMNS " FROM jobs"
        " WHERE (CAST(?1 AS TEXT) IS NULL OR state = ?1)"
        " AND (CAST(?2 AS TEXT) IS NULL OR kind = ?2)"
        " AND (CAST(?3 AS TEXT) IS NULL OR owner = ?3)"
        " AND (CAST(?4 AS TEXT) IS NULL OR seq < (SELECT seq FROM jobs WHERE id = ?4))"
        " AND (CASE WHEN CAST(?6 AS TEXT) IS NOT NULL THEN parent = ?6"
        " ELSE ?7 OR parent IS NULL END)"
        " ORDER BY seq DESC LIMIT ?5",
        err);
    int rc = stmt ? 0 : -1;
    if (stmt && f->after) {
        /* An unknown cursor would match nothing; say so instead. */
        struct job after;
        rc = get_locked(st, f->after, &after, err);
        if (rc == 0) job_clear(&after);
    }
    if (rc == 0) {
        storage_bind_text(stmt, 1, f->state >= 0 ? job_state_name((enum job_state)f->state) : NULL);
        storage_bind_text(stmt, 2, f->kind);
        storage_bind_text(stmt, 3, f->owner);
        storage_bind_text(stmt, 4, f->after);
        storage_bind_int64(stmt, 5, (int64_t)f->limit);
        storage_bind_text(stmt, 6, f->parent);
        storage_bind_int64(stmt, 7, f->children);
        *jobs = calloc(f->limit ? f->limit : 1, sizeof **jobs);
        if (!*jobs) rc = eng_no_memory(err);
    }
    while (rc == 0) {
        int step = storage_step(stmt);
        if (step == STORAGE_DONE) break;
        if (step != STORAGE_ROW)
            rc = storage_fail(st, err, "listing jobs");
        else if (read_job(stmt, &(*jobs)[*count], err) != 0)
            rc = -1;
        else
            (*count)++;
    }
    storage_finalize(stmt);
    pthread_mutex_unlock(&st->lock);
    if (rc != 0) {
        for (size_t i = 0; i < *count; i++)
            job_clear(&(*jobs)[i]);
        free(*jobs);
        *jobs = NULL;
        *count = 0;
    }
    return rc;
}

/* Begins a write transaction (storage_begin) and reads the store's clock into *now, what leases
 * are timed by: 0, or -1 with err and no transaction. */
static int begin_at(struct storage *st, int64_t *now, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    return storage_clock_ms(st, now, err) == 0 ? 0 : storage_end(st, -1, err);
}

/* The claim of the oldest queued job whose parent is ?2 (NULL: a job with none; IS NOT DISTINCT
 * FROM is SQLite's IS, and equality that holds for two NULLs too), while that parent runs under
 * token ?4; the lease is worker ?3's, from ?1 (the store's clock). SQLite has one writer at a
 * time. On PostgreSQL, claims on other connections run at once: FOR UPDATE locks the row the
 * subquery picks, so two never take the same job, and SKIP LOCKED passes over rows another claim
 * holds rather than waiting for them. */
#define CLAIM_SQL(lock)                                                                            \
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_ms = ?1,"                 \
    " cancel_requested = 0, lease_owner = ?3, lease_token = lease_token + 1, heartbeat_ms = ?1"    \
    " WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued'"                                    \
    " AND parent IS NOT DISTINCT FROM ?2 ORDER BY seq LIMIT 1" lock ")"                            \
    " AND (CAST(?2 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM jobs p WHERE p.id = ?2"               \
    " AND p.state = 'running' AND p.lease_token = ?4)) RETURNING id"

/* Claims the oldest queued job whose parent is `parent` (NULL: a job with none). */
static int claim(struct storage *st, const char *parent, int64_t parent_token, const char *worker,
                 struct job *out, struct eng_error *err)
{
    int64_t now;
    if (begin_at(st, &now, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(
        st, storage_sql(st, CLAIM_SQL(""), CLAIM_SQL(" FOR UPDATE SKIP LOCKED")), err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_int64(stmt, 1, now);
    storage_bind_text(stmt, 2, parent);
    storage_bind_text(stmt, 3, worker);
    storage_bind_int64(stmt, 4, parent_token);
    char id[JOB_ID_SIZE] = "";
    int step = storage_step(stmt);
    if (step == STORAGE_ROW) {
        snprintf(id, sizeof id, "%s", storage_column(stmt, 0));
        step = storage_step(stmt);
    }
    storage_finalize(stmt);
    if (step != STORAGE_DONE) return storage_end(st, storage_fail(st, err, "claiming a job"), err);
    if (!id[0]) return storage_end(st, 0, err);
    int rc = get_locked(st, id, out, err);
    if (rc == 0) {
        json_t *data = json_pack("{s:s, s:i}", "state", "running", "attempt", out->attempts);
        rc = data ? add_event(st, id, JOB_EVENT_STATE, data, err) : eng_no_memory(err);
        json_decref(data);
        if (rc != 0) job_clear(out);
    }
    return storage_end(st, rc, err) == 0 ? 1 : -1;
}

int job_store_claim(struct storage *st, const char *worker, struct job *out, struct eng_error *err)
{
    return claim(st, NULL, 0, worker, out, err);
}

int job_store_claim_child(struct storage *st, const char *parent, int64_t parent_token,
                          const char *worker, struct job *out, struct eng_error *err)
{
    return claim(st, parent, parent_token, worker, out, err);
}

int job_store_heartbeat(struct storage *st, const char *id, int64_t token, struct eng_error *err)
{
    int64_t now;
    if (begin_at(st, &now, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(
        st,
        "UPDATE jobs SET heartbeat_ms = ? WHERE id = ? AND lease_token = ? AND state = 'running'",
        err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_int64(stmt, 1, now);
    storage_bind_text(stmt, 2, id);
    storage_bind_int64(stmt, 3, token);
    int rc = storage_run(st, stmt, err, "renewing a lease");
    int held = rc == 0 && storage_changes(st) == 1;
    return storage_end(st, rc, err) == 0 ? held : -1;
}

/* Sets a running job's progress and phase (and checkpoint when set_checkpoint), with a progress
 * event when asked; ENG_CONFLICT when the job is not running under token. */
static int record_progress(struct storage *st, const char *id, int64_t token, double fraction,
                           const char *phase, int set_checkpoint, const json_t *checkpoint,
                           int event, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt =
        storage_prepare(st,
                        "UPDATE jobs SET progress = ?1, phase = ?2,"
                        " checkpoint = CASE WHEN ?3 THEN ?4 ELSE checkpoint END"
                        " WHERE id = ?5 AND lease_token = ?6 AND state = 'running'",
                        err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_double(stmt, 1, fraction);
    storage_bind_text(stmt, 2, phase);
    storage_bind_int64(stmt, 3, set_checkpoint);
    storage_bind_text(stmt, 5, id);
    storage_bind_int64(stmt, 6, token);
    if (storage_bind_json(stmt, 4, checkpoint, err) != 0) {
        storage_finalize(stmt);
        return storage_end(st, -1, err);
    }
    int rc = storage_run(st, stmt, err, "recording progress");
    if (rc == 0 && storage_changes(st) == 0) rc = lease_lost(id, token, err);
    if (rc == 0 && event) {
        json_t *data = json_pack("{s:f, s:s?}", "fraction", fraction, "phase", phase);
        rc = data ? add_event(st, id, JOB_EVENT_PROGRESS, data, err) : eng_no_memory(err);
        json_decref(data);
    }
    return storage_end(st, rc, err);
}

int job_store_progress(struct storage *st, const char *id, int64_t token, double fraction,
                       const char *phase, int event, struct eng_error *err)
{
    return record_progress(st, id, token, fraction, phase, 0, NULL, event, err);
}

int job_store_event(struct storage *st, const char *id, int64_t token, enum job_event_type type,
                    const json_t *data, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    int rc = fence(st, id, token, err) == 0 ? add_event(st, id, type, data, err) : -1;
    return storage_end(st, rc, err);
}

int job_store_checkpoint(struct storage *st, const char *id, int64_t token,
                         const json_t *checkpoint, double fraction, const char *phase, int event,
                         struct eng_error *err)
{
    return record_progress(st, id, token, fraction, phase, 1, checkpoint, event, err);
}

int job_store_checkpoint_load(struct storage *st, const char *id, json_t **out,
                              struct eng_error *err)
{
    *out = NULL;
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT checkpoint FROM jobs WHERE id = ?", err);
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, id);
        int step = storage_step(stmt);
        int failed = 0;
        if (step == STORAGE_ROW) {
            *out = storage_column_json(stmt, 0, &failed);
            rc = failed ? eng_fail(err, ENG_INTERNAL,
                                   "storage: job %s's checkpoint does not "
                                   "read back",
                                   id)
                        : 0;
        } else if (step == STORAGE_DONE) {
            eng_fail(err, ENG_NOT_FOUND, "no such job: %s", id);
        } else {
            storage_fail(st, err, "reading a checkpoint");
        }
        storage_finalize(stmt);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* Sets a job's state (and finished time for a final one), when it is in state `from` (running:
 * under lease token; a token below 0 for any); with ENG_CONFLICT otherwise. result and error are
 * written as given (NULL clears). */
static int move(struct storage *st, const char *id, int64_t token, enum job_state from,
                enum job_state to, const json_t *result, const char *error, struct eng_error *err)
{
    struct storage_stmt *stmt =
        storage_prepare(st,
                        "UPDATE jobs SET state = ?1, result = ?2, error = ?3, finished_ms = ?4,"
                        " progress = CASE WHEN ?5 THEN 1 ELSE progress END"
                        " WHERE id = ?6 AND state = ?7 AND (?8 < 0 OR lease_token = ?8)",
                        err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, job_state_name(to));
    if (storage_bind_json(stmt, 2, result, err) != 0) {
        storage_finalize(stmt);
        return -1;
    }
    storage_bind_text(stmt, 3, error);
    if (job_state_is_final(to))
        storage_bind_int64(stmt, 4, storage_now_ms());
    else
        storage_bind_text(stmt, 4, NULL);
    storage_bind_int64(stmt, 5, to == JOB_SUCCEEDED);
    storage_bind_text(stmt, 6, id);
    storage_bind_text(stmt, 7, job_state_name(from));
    storage_bind_int64(stmt, 8, token);
    if (storage_run(st, stmt, err, "changing a job's state") != 0) return -1;
    if (storage_changes(st) == 0)
        return token >= 0
                   ? lease_lost(id, token, err)
                   : eng_fail(err, ENG_CONFLICT, "job %s is not %s", id, job_state_name(from));
    return 0;
}

int job_store_finish(struct storage *st, const char *id, int64_t token, enum job_state state,
                     const json_t *result, const char *error, struct eng_error *err)
{
    if (!job_state_is_final(state) || state == JOB_INTERRUPTED)
        return eng_fail(err, ENG_INTERNAL, "a job cannot finish as %s", job_state_name(state));
    if (storage_begin(st, err) != 0) return -1;
    int rc = move(st, id, token, JOB_RUNNING, state, state == JOB_SUCCEEDED ? result : NULL,
                  state == JOB_FAILED ? error : NULL, err);
    if (rc == 0) rc = add_state_event(st, id, state, NULL, state == JOB_FAILED ? error : NULL, err);
    return storage_end(st, rc, err);
}

/* A job running under token through interrupted (with its event) to queued, or left interrupted
 * when error is given. */
static int interrupt(struct storage *st, const char *id, int64_t token, const char *reason,
                     const char *error, struct eng_error *err)
{
    if (error)
        return move(st, id, token, JOB_RUNNING, JOB_INTERRUPTED, NULL, error, err) ||
               add_state_event(st, id, JOB_INTERRUPTED, reason, error, err);
    return move(st, id, token, JOB_RUNNING, JOB_QUEUED, NULL, NULL, err) ||
           add_state_event(st, id, JOB_INTERRUPTED, reason, NULL, err) ||
           add_state_event(st, id, JOB_QUEUED, NULL, NULL, err);
}

int job_store_requeue(struct storage *st, const char *id, int64_t token, const char *reason,
                      struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    int rc = interrupt(st, id, token, reason, NULL, err) ||
                     storage_notify_within(st, STORAGE_CHANNEL_JOBS, NULL, err)
                 ? -1
                 : 0;
    return storage_end(st, rc, err);
}

int job_store_wait(struct storage *st, const char *id, int64_t token, const char *reason,
                   struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct job job;
    if (get_locked(st, id, &job, err) != 0) return storage_end(st, -1, err);
    /* A cancel asked for since the run last looked is not lost: the claim that wakes it would
     * clear the flag. */
    enum job_state to = job.cancel_requested ? JOB_CANCELLED : JOB_WAITING;
    int rc = move(st, id, token, JOB_RUNNING, to, NULL, NULL, err) ||
                     add_state_event(st, id, to, to == JOB_WAITING ? reason : NULL, NULL, err)
                 ? -1
                 : 0;
    job_clear(&job);
    return storage_end(st, rc, err);
}

int job_store_wake(struct storage *st, const char *id, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    int rc = move(st, id, -1, JOB_WAITING, JOB_QUEUED, NULL, NULL, err);
    struct storage_stmt *stmt =
        rc == 0 ? storage_prepare(st, "UPDATE jobs SET attempts = attempts - 1 WHERE id = ?", err)
                : NULL;
    if (stmt) storage_bind_text(stmt, 1, id);
    if (rc == 0) rc = stmt ? storage_run(st, stmt, err, "waking a job") : -1;
    if (rc == 0) rc = add_state_event(st, id, JOB_QUEUED, NULL, NULL, err);
    return storage_end(st, rc, err);
}

/* Cancels the children that have not ended of job parent, or with parent NULL of every job that
 * has ended (orphans: none will run them): the queued at once, with a state event giving the
 * reason, the running through their cancel flag. The queued rows are changed (and so held) before
 * their events are added, as add_event wants. */
static int cancel_children(struct storage *st, const char *parent, const char *reason,
                           struct eng_error *err)
{
#define OF_PARENT                                                                                  \
    " (parent = ?1 OR (?1 IS NULL AND parent IN (SELECT id FROM jobs"                              \
    " WHERE state NOT IN ('queued', 'running', 'waiting'))))"
    struct storage_stmt *stmt =
        storage_prepare(st,
                        "UPDATE jobs SET state = 'cancelled', finished_ms = ?2"
                        " WHERE state IN ('queued', 'waiting') AND" OF_PARENT " RETURNING id",
                        err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, parent);
    storage_bind_int64(stmt, 2, storage_now_ms());
    /* Read them all first: the events' statements would disturb the running one. */
    char(*ids)[JOB_ID_SIZE] = NULL;
    size_t count = 0;
    int rc = 0, step;
    while ((step = storage_step(stmt)) == STORAGE_ROW) {
        void *grown = realloc(ids, (count + 1) * sizeof *ids);
        if (!grown) {
            rc = eng_no_memory(err);
            break;
        }
        ids = grown;
        snprintf(ids[count++], JOB_ID_SIZE, "%s", storage_column(stmt, 0));
    }
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "cancelling a job's children");
    storage_finalize(stmt);
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = add_state_event(st, ids[i], JOB_CANCELLED, reason, NULL, err);
    free(ids);
    stmt = rc == 0 ? storage_prepare(st,
                                     "UPDATE jobs SET cancel_requested = 1"
                                     " WHERE state = 'running' AND" OF_PARENT,
                                     err)
                   : NULL;
#undef OF_PARENT
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, parent);
    return storage_run(st, stmt, err, "cancelling a job's children");
}

int job_store_cancel(struct storage *st, const char *id, enum job_state *state,
                     struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct job job;
    int rc = get_locked(st, id, &job, err);
    if (rc != 0) return storage_end(st, -1, err);
    *state = job.state;
    if (job.state == JOB_QUEUED || job.state == JOB_WAITING) {
        rc = move(st, id, -1, job.state, JOB_CANCELLED, NULL, NULL, err) ||
                     add_state_event(st, id, JOB_CANCELLED,
                                     job.state == JOB_QUEUED ? "cancelled before it started"
                                                             : "cancelled while it waited",
                                     NULL, err)
                 ? -1
                 : 0;
        *state = JOB_CANCELLED;
    } else if (job.state == JOB_RUNNING) {
        struct storage_stmt *stmt =
            storage_prepare(st, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", err);
        if (stmt) storage_bind_text(stmt, 1, id);
        rc = stmt ? storage_run(st, stmt, err, "cancelling a job") : -1;
    } else if (job.state != JOB_CANCELLED) {
        rc = eng_fail(err, ENG_CONFLICT, "job %s has already ended: it %s", id,
                      job.state == JOB_INTERRUPTED ? "was interrupted for good"
                                                   : job_state_name(job.state));
    }
    if (rc == 0) rc = cancel_children(st, id, "its parent was cancelled", err);
    /* The process running it (or its children) stops it now rather than at its next poll. */
    if (rc == 0 && job.state == JOB_RUNNING)
        rc = storage_notify_within(st, STORAGE_CHANNEL_CANCEL, id, err);
    job_clear(&job);
    return storage_end(st, rc, err);
}

int job_store_cancel_requested(struct storage *st, const char *id, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT cancel_requested FROM jobs WHERE id = ?", err);
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, id);
        int step = storage_step(stmt);
        if (step == STORAGE_ROW)
            rc = (int)storage_column_int64(stmt, 0) != 0;
        else if (step == STORAGE_DONE)
            eng_fail(err, ENG_NOT_FOUND, "no such job: %s", id);
        else
            storage_fail(st, err, "reading a job's cancel flag");
        storage_finalize(stmt);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* The expiry reads every running job's lease without holding its row, and holds only the rows
 * of the leases it finds expired, each with a statement that asks again, of the row as it is now,
 * whether it is still under that claim and still expired (or of an owner known gone): a lease
 * renewed meanwhile is left alone. So a sweep, which every process runs each heartbeat_s, never
 * holds up the writes of jobs that run well, not even briefly. On PostgreSQL, an expired row
 * another transaction holds (a sweep of another process, a write of the job's outcome) is passed
 * over: that sweep takes it, or the next one does. */
#define LEASES_SQL                                                                                 \
    "SELECT id, attempts, lease_token, lease_owner, heartbeat_ms FROM jobs"                        \
    " WHERE state = 'running' ORDER BY seq"
#define EXPIRED_SQL(lock)                                                                          \
    "SELECT id FROM jobs WHERE id = ?1 AND state = 'running' AND lease_token = ?2"                 \
    " AND (?3 OR heartbeat_ms IS NULL OR heartbeat_ms < ?4)" lock

/* Whether expired lease (id, token) is still so, its row now held: 1, 0 (renewed, ended, or held
 * by another transaction), or -1 with err. gone: its owner is known to have ended. */
static int hold_expired(struct storage *st, const char *id, int64_t token, int gone,
                        int64_t renewed_before, struct eng_error *err)
{
    struct storage_stmt *stmt = storage_prepare(
        st, storage_sql(st, EXPIRED_SQL(""), EXPIRED_SQL(" FOR UPDATE SKIP LOCKED")), err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, id);
    storage_bind_int64(stmt, 2, token);
    storage_bind_int64(stmt, 3, gone);
    storage_bind_int64(stmt, 4, renewed_before);
    int step = storage_step(stmt);
    storage_finalize(stmt);
    if (step == STORAGE_ERROR) return storage_fail(st, err, "holding an expired lease");
    return step == STORAGE_ROW;
}

int job_store_expire(struct storage *st, struct job_expiry *x, struct eng_error *err)
{
    x->requeued = x->abandoned = 0;
    int64_t now;
    if (begin_at(st, &now, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(st, LEASES_SQL, err);
    if (!stmt) return storage_end(st, -1, err);
    /* Read them all first: the updates below would disturb the running SELECT. */
    struct {
        char id[JOB_ID_SIZE];
        char owner[128];
        int attempts, gone;
        int64_t token, silent_ms;
    } *found = NULL;
    size_t count = 0;
    int rc = 0, step;
    while ((step = storage_step(stmt)) == STORAGE_ROW) {
        const char *owner = storage_column(stmt, 3);
        /* No heartbeat: left running by a build before leases. */
        int64_t silent = storage_column(stmt, 4) ? now - storage_column_int64(stmt, 4) : INT64_MAX;
        int gone = owner && x->gone && x->gone(owner, x->arg);
        if (silent <= x->lease_ms && !gone) continue;
        void *grown = realloc(found, (count + 1) * sizeof *found);
        if (!grown) {
            rc = eng_no_memory(err);
            break;
        }
        found = grown;
        snprintf(found[count].id, JOB_ID_SIZE, "%s", storage_column(stmt, 0));
        snprintf(found[count].owner, sizeof found[count].owner, "%s", owner ? owner : "unknown");
        found[count].attempts = (int)storage_column_int64(stmt, 1);
        found[count].gone = gone;
        found[count].token = storage_column_int64(stmt, 2);
        found[count++].silent_ms = silent;
    }
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "finding expired leases");
    storage_finalize(stmt);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        int held =
            hold_expired(st, found[i].id, found[i].token, found[i].gone, now - x->lease_ms, err);
        if (held < 0) rc = -1;
        if (held <= 0) continue;
        char reason[256], error[320];
        if (found[i].silent_ms > x->lease_ms && found[i].silent_ms != INT64_MAX)
            snprintf(reason, sizeof reason, "the lease of %s expired: no heartbeat for %.1f s",
                     found[i].owner, (double)found[i].silent_ms / 1000);
        else
            snprintf(reason, sizeof reason,
                     "the lease of %s expired: its process has ended (a crash or a kill)",
                     found[i].owner);
        int give_up = found[i].attempts >= x->max_attempts;
        snprintf(error, sizeof error,
                 "the job's lease expired %d times (its process died or stopped answering); last "
                 "owner %s; it is not started again",
                 found[i].attempts, found[i].owner);
        rc = interrupt(st, found[i].id, found[i].token, reason, give_up ? error : NULL, err) ? -1
                                                                                             : 0;
        (*(give_up ? &x->abandoned : &x->requeued))++;
    }
    free(found);
    /* The children of a job left interrupted (or ended otherwise) would stay queued for ever,
     * holding their dataset. */
    if (rc == 0 && x->abandoned) rc = cancel_children(st, NULL, "its parent had ended", err);
    /* The jobs queued again wake the idle runners of every process. */
    if (rc == 0 && x->requeued) rc = storage_notify_within(st, STORAGE_CHANNEL_JOBS, NULL, err);
    return storage_end(st, rc, err);
}

int job_store_queued(struct storage *st, json_t **out, struct eng_error *err)
{
    *out = json_object();
    if (!*out) return eng_no_memory(err);
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt = storage_prepare(
        st, "SELECT kind, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY kind ORDER BY kind",
        err);
    int rc = stmt ? 0 : -1, step = STORAGE_DONE;
    while (rc == 0 && (step = storage_step(stmt)) == STORAGE_ROW)
        if (json_object_set_new(*out, storage_column(stmt, 0),
                                json_integer(storage_column_int64(stmt, 1))) != 0)
            rc = eng_no_memory(err);
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "counting queued jobs");
    storage_finalize(stmt);
    pthread_mutex_unlock(&st->lock);
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int job_store_dataset_user(struct storage *st, const char *dataset, const char *except,
                           char job[JOB_ID_SIZE], struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt = storage_prepare(
        st,
        "SELECT id, params FROM jobs WHERE state IN ('queued', 'running', 'waiting') ORDER BY seq",
        err);
    int rc = stmt ? 0 : -1, step = STORAGE_DONE;
    while (rc == 0 && (step = storage_step(stmt)) == STORAGE_ROW) {
        int failed = 0;
        json_t *params = storage_column_json(stmt, 1, &failed);
        const char *named = json_string_value(json_object_get(params, "dataset"));
        const char *id = storage_column(stmt, 0);
        if (named && strcmp(named, dataset) == 0 && !(except && strcmp(id, except) == 0)) {
            snprintf(job, JOB_ID_SIZE, "%s", id);
            rc = 1;
        } else if (failed) {
            rc = eng_fail(err, ENG_INTERNAL, "storage: a job's params do not read back");
        }
        json_decref(params);
    }
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "reading jobs' params");
    storage_finalize(stmt);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int job_store_events(struct storage *st, const char *id, int64_t after, size_t limit,
                     struct job_event **events, size_t *count, struct eng_error *err)
{
    *events = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt = storage_prepare(st,
                                                "SELECT id, time_ms, type, data FROM job_events"
                                                " WHERE job = ? AND id > ? ORDER BY id LIMIT ?",
                                                err);
    int rc = stmt ? 0 : -1;
    if (rc == 0) {
        storage_bind_text(stmt, 1, id);
        storage_bind_int64(stmt, 2, after);
        storage_bind_int64(stmt, 3, (int64_t)limit);
        *events = calloc(limit ? limit : 1, sizeof **events);
        if (!*events) rc = eng_no_memory(err);
    }
    while (rc == 0) {
        int step = storage_step(stmt);
        if (step == STORAGE_DONE) break;
        if (step != STORAGE_ROW) {
            rc = storage_fail(st, err, "reading events");
            break;
        }
        struct job_event *e = &(*events)[*count];
        int type = event_type_from_name(storage_column(stmt, 2));
        int failed = 0;
        e->id = storage_column_int64(stmt, 0);
        e->time_ms = storage_column_int64(stmt, 1);
        e->data = storage_column_text(stmt, 3, &failed);
        if (failed || type < 0 || !e->data) {
            free(e->data);
            rc = failed ? eng_no_memory(err)
                        : eng_fail(err, ENG_INTERNAL, "storage: an event does not read back");
            break;
        }
        e->type = (enum job_event_type)type;
        (*count)++;
    }
    storage_finalize(stmt);
    pthread_mutex_unlock(&st->lock);
    if (rc != 0) {
        job_events_free(*events, *count);
        *events = NULL;
        *count = 0;
    }
    return rc;
}
