/* Runners and the job context. Each runner thread claims the oldest queued job from the store,
 * runs its kind with a context (struct job_ctx) that records progress, events and checkpoints in
 * the store, and records how it ended. Runners wake when a job is queued, by this process or (on
 * PostgreSQL, through the store's notifications) another, and look at the store every job_poll_s
 * anyway (a claim that failed, a notification lost). */
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "core/cancel.h"
#include "job_kind.h"
#include "leases.h"
#include "log.h"
#include "metrics.h"
#include "response.h"
#include "storage.h"

/* How often a running job's cancel flag is read from the store while no notification would say
 * it was set (SQLite; a PostgreSQL listener reconnecting): a cancel takes at most this long (plus
 * the kind's time between checks) to stop the job. While notifications arrive, job_poll_s. */
#define CANCEL_POLL_NS 200000000LL
/* Progress events at most this often (a change of phase is recorded at once). */
#define PROGRESS_EVENT_NS 250000000LL
/* The nice value of runner threads (see runner_main). */
#define JOB_NICE 10
/* A log line's length in an event. */
#define LOG_MAX 1000

struct jobs {
    struct app *app;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned long generation; /* bumped by each submission */
    int stopping;
    int busy;
    atomic_int stop_flag;       /* stopping, for the jobs' cancellation checks */
    atomic_ulong cancels_heard; /* jobs_cancel_heard's count: running jobs read their flag */
    pthread_t *threads;
    int runner_count;
    int threads_per_job;
    struct leases *leases;
};

enum job_stop {
    STOP_NONE,
    STOP_CANCELLED, /* DELETE /v1/jobs/{id} */
    STOP_SHUTDOWN,  /* the server stops */
    STOP_LOST,      /* its lease was lost: another attempt may run it now */
};

struct job_ctx {
    struct jobs *jobs;
    const struct job *job;
    json_t *restored;
    struct eng_cancel cancel; /* installed on the runner thread: job_ctx_cancelled */
    _Atomic int64_t next_poll_ns;
    atomic_ulong cancels_seen; /* jobs->cancels_heard when the flag was last read */
    atomic_int stop;           /* an enum job_stop, once seen */
    int64_t last_progress_ns;
    char *last_phase;
    char artifacts[PATH_MAX];
    int artifacts_made;
    /* Artifacts this attempt has written under its own names since it last published them. */
    char **pending;
    size_t pending_count;
    int threads;       /* job_ctx_threads */
    const char *waits; /* job_ctx_wait's reason: the run ends waiting; NULL: it does not */
    struct lease lease;
};

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int jobs_artifacts_path(const struct app *app, const char *id, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/jobs/%s/artifacts", app->cfg->data_dir, id);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

/* ---- The context ----------------------------------------------------------------------------- */

const char *job_ctx_id(const struct job_ctx *ctx)
{
    return ctx->job->id;
}

struct app *job_ctx_app(const struct job_ctx *ctx)
{
    return ctx->jobs->app;
}

struct jobs *jobs_of(const struct job_ctx *ctx)
{
    return ctx->jobs;
}

const char *job_ctx_parent(const struct job_ctx *ctx)
{
    return ctx->job->parent;
}

int job_ctx_attempt(const struct job_ctx *ctx)
{
    return ctx->job->attempts;
}

int64_t jobs_lease_token(const struct job_ctx *ctx)
{
    return ctx->job->lease_token;
}

int job_ctx_threads(const struct job_ctx *ctx)
{
    return ctx->threads;
}

const json_t *job_ctx_restored(const struct job_ctx *ctx)
{
    return ctx->restored;
}

/* Whether a progress event is due: the phase changed, or PROGRESS_EVENT_NS have passed. Notes it
 * as sent when it is. */
static int progress_event_due(struct job_ctx *ctx, const char *phase)
{
    int64_t now = monotonic_ns();
    int changed = (phase == NULL) != (ctx->last_phase == NULL) ||
                  (phase && strcmp(phase, ctx->last_phase) != 0);
    if (!changed && now - ctx->last_progress_ns < PROGRESS_EVENT_NS) return 0;
    if (changed) {
        free(ctx->last_phase);
        ctx->last_phase = phase ? strdup(phase) : NULL;
    }
    ctx->last_progress_ns = now;
    return 1;
}

static double clamp_fraction(double fraction)
{
    return fraction > 1 ? 1 : fraction >= 0 ? fraction : 0;
}

/* Notes a write of the job's outcome that the store refused with ENG_CONFLICT: the job no longer
 * runs under this lease, and stops (poll_stop). Returns rc. */
static int fenced(struct job_ctx *ctx, int rc, const struct eng_error *err)
{
    if (rc != 0 && err->code == ENG_CONFLICT) atomic_store(&ctx->lease.lost, 1);
    return rc;
}

static void publish(struct job_ctx *ctx);

int job_ctx_checkpoint(struct job_ctx *ctx, const json_t *state, double fraction, const char *phase,
                       struct eng_error *err)
{
    int rc = fenced(ctx,
                    job_store_checkpoint(ctx->jobs->app->storage, ctx->job->id,
                                         ctx->job->lease_token, state, clamp_fraction(fraction),
                                         phase, progress_event_due(ctx, phase), err),
                    err);
    if (rc == 0) publish(ctx);
    return rc;
}

void job_ctx_progress(struct job_ctx *ctx, double fraction, const char *phase)
{
    int event = progress_event_due(ctx, phase);
    struct eng_error err;
    /* Without an event, the record would change unseen by the streams: nothing is written. */
    if (event &&
        fenced(ctx,
               job_store_progress(ctx->jobs->app->storage, ctx->job->id, ctx->job->lease_token,
                                  clamp_fraction(fraction), phase, 1, &err),
               &err) != 0)
        log_event("warn", "job", "job %s: %s", ctx->job->id, err.message);
}

/* Appends an event; a store that fails here is logged, and the job goes on. */
static void add_event(struct job_ctx *ctx, enum job_event_type type, json_t *data)
{
    struct eng_error err;
    if (!data)
        eng_no_memory(&err);
    else if (fenced(ctx,
                    job_store_event(ctx->jobs->app->storage, ctx->job->id, ctx->job->lease_token,
                                    type, data, &err),
                    &err) == 0)
        err.code = ENG_OK;
    if (!data || err.code != ENG_OK)
        log_event("warn", "job", "job %s: cannot record a %s event: %s", ctx->job->id,
                  job_event_type_name(type), err.message);
    json_decref(data);
}

void job_ctx_log(struct job_ctx *ctx, const char *fmt, ...)
{
    char line[LOG_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    add_event(ctx, JOB_EVENT_LOG, json_pack("{s:o}", "message", json_string_lossy(line)));
}

void job_ctx_metric(struct job_ctx *ctx, const char *name, double value, long step)
{
    add_event(ctx, JOB_EVENT_METRIC,
              json_pack("{s:s, s:f, s:I}", "name", name, "value", value, "step", (json_int_t)step));
}

/* A sibling's record as job_ctx_siblings lists it; its last checkpoint when it has no result. */
static json_t *sibling_json(struct storage *st, const struct job *j, struct eng_error *err)
{
    json_t *checkpoint = NULL;
    if (!j->result && job_store_checkpoint_load(st, j->id, &checkpoint, err) != 0) return NULL;
    json_t *o =
        json_pack("{s:s, s:s, s:O, s:O?, s:o?}", "id", j->id, "state", job_state_name(j->state),
                  "params", j->params, "result", j->result, "checkpoint", checkpoint);
    if (!o) eng_no_memory(err);
    return o;
}

int jobs_children_json(struct app *app, const char *parent, const char *except, size_t limit,
                       json_t **out, struct eng_error *err)
{
    struct storage *st = app->storage;
    struct job_filter f = {.state = -1, .parent = parent, .limit = limit};
    struct job *jobs = NULL;
    size_t n = 0;
    *out = NULL;
    if (job_store_list(st, &f, &jobs, &n, err) != 0) return -1;
    json_t *a = json_array();
    int rc = a ? 0 : eng_no_memory(err);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && !(except && strcmp(jobs[i].id, except) == 0)) {
            json_t *o = sibling_json(st, &jobs[i], err);
            rc = !o ? -1 : json_array_append_new(a, o) == 0 ? 0 : eng_no_memory(err);
        }
        job_clear(&jobs[i]);
    }
    free(jobs);
    if (rc == 0)
        *out = a;
    else
        json_decref(a);
    return rc;
}

int job_ctx_siblings(struct job_ctx *ctx, size_t limit, json_t **out, struct eng_error *err)
{
    const struct job *self = ctx->job;
    *out = NULL;
    if (!self->parent) return eng_fail(err, ENG_INVALID, "job %s has no parent", self->id);
    return jobs_children_json(ctx->jobs->app, self->parent, self->id, limit, out, err);
}

int job_ctx_wait(struct job_ctx *ctx, const char *reason, struct eng_error *err)
{
    if (!ctx->job->parent) return eng_fail(err, ENG_INTERNAL, "job %s has no parent", ctx->job->id);
    ctx->waits = reason;
    return eng_fail(err, ENG_INTERNAL, "the job waits: %s", reason);
}

/* How long a running job goes without reading its cancel flag, unless a cancel is heard. */
static int64_t cancel_poll_ns(const struct jobs *jobs)
{
    const struct app *app = jobs->app;
    return app->listener && storage_listening(app->listener)
               ? (int64_t)app->cfg->job_poll_s * 1000000000
               : CANCEL_POLL_NS;
}

/* Sees whether the job should stop: its lease lost, the server stopping, or its cancel flag in the
 * store, read when a cancel was heard and every cancel_poll_ns anyway. Thread-safe: the threads
 * of a parallel_for share it. */
static enum job_stop poll_stop(struct job_ctx *ctx)
{
    int stop = atomic_load(&ctx->stop);
    if (stop == STOP_NONE && atomic_load(&ctx->lease.lost)) stop = STOP_LOST;
    if (stop == STOP_NONE && atomic_load(&ctx->jobs->stop_flag)) stop = STOP_SHUTDOWN;
    unsigned long heard = atomic_load(&ctx->jobs->cancels_heard);
    if (atomic_exchange(&ctx->cancels_seen, heard) != heard) atomic_store(&ctx->next_poll_ns, 0);
    int64_t now = monotonic_ns();
    int64_t next = atomic_load(&ctx->next_poll_ns);
    if (stop == STOP_NONE && now >= next &&
        atomic_compare_exchange_strong(&ctx->next_poll_ns, &next,
                                       now + cancel_poll_ns(ctx->jobs))) {
        struct eng_error err;
        /* A store that cannot answer does not stop the job: the next poll asks again. */
        if (job_store_cancel_requested(ctx->jobs->app->storage, ctx->job->id, &err) == 1)
            stop = STOP_CANCELLED;
    }
    if (stop != STOP_NONE) atomic_store(&ctx->stop, stop);
    return (enum job_stop)stop;
}

int job_ctx_cancelled(struct job_ctx *ctx, struct eng_error *err)
{
    switch (poll_stop(ctx)) {
    case STOP_NONE:
        return 0;
    case STOP_CANCELLED:
        return eng_fail(err, ENG_CANCELLED, "the job was cancelled");
    case STOP_LOST:
        return eng_fail(err, ENG_CANCELLED,
                        "the job's lease was lost; another attempt runs it from its checkpoint");
    case STOP_SHUTDOWN:
        break;
    }
    return eng_fail(err, ENG_CANCELLED,
                    "the server is stopping; the job resumes at its next start");
}

int job_ctx_resumes(struct job_ctx *ctx)
{
    enum job_stop stop = poll_stop(ctx);
    return stop == STOP_SHUTDOWN || stop == STOP_LOST;
}

static int cancel_check(void *ctx, struct eng_error *err)
{
    return job_ctx_cancelled(ctx, err);
}

int job_artifact_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 128 || name[0] == '.') return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

const char *job_ctx_artifacts(struct job_ctx *ctx, struct eng_error *err)
{
    if (!ctx->artifacts_made) {
        if (jobs_artifacts_path(ctx->jobs->app, ctx->job->id, ctx->artifacts,
                                sizeof ctx->artifacts) != 0) {
            eng_fail(err, ENG_INTERNAL, "data_dir is too long for a job's folder");
            return NULL;
        }
        if (storage_make_dirs(ctx->artifacts, err) != 0) return NULL;
        ctx->artifacts_made = 1;
    }
    return ctx->artifacts;
}

/* Artifacts are written under names of the attempt's own and renamed to theirs only after the
 * store has taken a write under the job's lease (a checkpoint, the job's end): a process that lost
 * the lease, frozen and woken up, may go on writing its files, but never under the names the
 * attempt that replaced it publishes. The attempt's name of artifact `name`: .<name>.a<attempt>
 * (a name starting with '.' is no artifact's: never listed, never served). */
static int attempt_path(const struct job_ctx *ctx, const char *name, int attempt, char *out,
                        size_t size)
{
    int n = snprintf(out, size, "%s/.%s.a%d", ctx->artifacts, name, attempt);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

/* Opens the file that holds the first length bytes of artifact `name` as the last checkpoint
 * counted them: the published one, else (a process killed between a checkpoint and the rename
 * that followed it) the latest earlier attempt's own with that many bytes. A descriptor, or -1. */
static int open_kept(const struct job_ctx *ctx, const char *name, long length)
{
    char path[PATH_MAX + 160];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s", ctx->artifacts, name);
    for (int attempt = ctx->job->attempts - 1; n >= 0 && (size_t)n < sizeof path; attempt--) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= length) return fd;
        if (fd >= 0) close(fd);
        if (attempt < 1 || attempt_path(ctx, name, attempt, path, sizeof path) != 0) break;
    }
    return -1;
}

static int pending_index(const struct job_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->pending_count; i++)
        if (strcmp(ctx->pending[i], name) == 0) return (int)i;
    return -1;
}

/* Renames the attempt's artifacts to their names, after a write under the lease succeeded. A file
 * still open goes on growing under its name. */
static void publish(struct job_ctx *ctx)
{
    for (size_t i = 0; i < ctx->pending_count; i++) {
        char from[PATH_MAX + 160], to[PATH_MAX + 160];
        snprintf(to, sizeof to, "%s/%s", ctx->artifacts, ctx->pending[i]);
        if (attempt_path(ctx, ctx->pending[i], ctx->job->attempts, from, sizeof from) != 0 ||
            rename(from, to) != 0)
            log_event("warn", "job", "job %s: cannot publish artifact %s: %s", ctx->job->id,
                      ctx->pending[i], strerror(errno));
        free(ctx->pending[i]);
    }
    ctx->pending_count = 0;
}

/* Copies the first length bytes of from into to: 0, or -1 with errno. */
static int copy_prefix(int from, int to, long length)
{
    char buf[65536];
    for (off_t at = 0; at < length;) {
        size_t want = (size_t)(length - at) < sizeof buf ? (size_t)(length - at) : sizeof buf;
        ssize_t got = pread(from, buf, want, at);
        if (got == 0) errno = EIO;
        if (got <= 0) return -1;
        for (ssize_t put = 0; put < got;) {
            ssize_t n = write(to, buf + put, (size_t)(got - put));
            if (n < 0) return -1;
            put += n;
        }
        at += got;
    }
    return 0;
}

FILE *job_ctx_artifact_resume(struct job_ctx *ctx, const char *name, long length,
                              struct eng_error *err)
{
    const char *folder = job_ctx_artifacts(ctx, err);
    if (!folder) return NULL;
    char own[PATH_MAX + 160];
    if (!job_artifact_name_ok(name) || length < 0 ||
        attempt_path(ctx, name, ctx->job->attempts, own, sizeof own) != 0) {
        eng_fail(err, ENG_INTERNAL, "artifact %s: not a valid name or length", name);
        return NULL;
    }
    int pending = pending_index(ctx, name) >= 0;
    char **grown = pending ? ctx->pending
                           : realloc(ctx->pending, (ctx->pending_count + 1) * sizeof *ctx->pending);
    char *copy = pending ? NULL : strdup(name);
    if (grown) ctx->pending = grown;
    if (!grown || (!pending && !copy)) {
        free(copy);
        eng_no_memory(err);
        return NULL;
    }
    FILE *f = NULL;
    struct stat st;
    /* The attempt's own file when it has written one since it last published (cut back), else a
     * copy of the kept bytes (a lost attempt may still be appending to the published file). */
    int src = length > 0 && !pending ? open_kept(ctx, name, length) : -1;
    int fd = open(own, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (pending ? 0 : O_TRUNC), 0640);
    if (fd < 0 || fstat(fd, &st) != 0) {
        eng_fail(err, ENG_INTERNAL, "artifact %s: %s", name, strerror(errno));
    } else if (pending ? st.st_size < length : length > 0 && src < 0) {
        /* The checkpoint counts bytes the file lost: resuming would leave a hole. */
        eng_fail(err, ENG_INTERNAL,
                 "artifact %s holds fewer bytes than the %ld its checkpoint counts", name, length);
    } else if ((pending ? ftruncate(fd, length) : copy_prefix(src, fd, length)) != 0 ||
               lseek(fd, 0, SEEK_END) < 0 || !(f = fdopen(fd, "a"))) {
        eng_fail(err, ENG_INTERNAL, "artifact %s: %s", name, strerror(errno));
    }
    if (src >= 0) close(src);
    if (!f && fd >= 0) close(fd);
    if (f && !pending)
        ctx->pending[ctx->pending_count++] = copy;
    else
        free(copy);
    return f;
}

/* ---- Runners --------------------------------------------------------------------------------- */

/* Records how the job ended under its lease (stop and rc as the run left them): 0, or -1 with
 * store_err (ENG_CONFLICT: the lease was lost meanwhile, and nothing was recorded). */
static int record_end(struct storage *st, const struct job *job, enum job_stop stop, int rc,
                      const char *waits, const json_t *result, const struct eng_error *err,
                      struct eng_error *store_err)
{
    if (rc == 0)
        return job_store_finish(st, job->id, job->lease_token, JOB_SUCCEEDED, result, NULL,
                                store_err);
    if (waits && stop == STOP_NONE)
        return job_store_wait(st, job->id, job->lease_token, waits, store_err);
    if (stop == STOP_SHUTDOWN)
        return job_store_requeue(st, job->id, job->lease_token,
                                 "the server stopped; the job resumes at its next start",
                                 store_err);
    if (stop == STOP_CANCELLED)
        return job_store_finish(st, job->id, job->lease_token, JOB_CANCELLED, NULL, NULL,
                                store_err);
    return job_store_finish(st, job->id, job->lease_token, JOB_FAILED, NULL, err->message,
                            store_err);
}

void jobs_run_claimed(struct jobs *jobs, const struct job *job, int threads)
{
    struct storage *st = jobs->app->storage;
    struct job_ctx ctx = {
        .jobs = jobs, .job = job, .cancel = {cancel_check, &ctx}, .threads = threads};
    atomic_init(&ctx.next_poll_ns, 0);
    atomic_init(&ctx.cancels_seen, atomic_load(&jobs->cancels_heard));
    atomic_init(&ctx.stop, STOP_NONE);
    snprintf(ctx.lease.id, sizeof ctx.lease.id, "%s", job->id);
    ctx.lease.token = job->lease_token;
    leases_hold(jobs->leases, &ctx.lease);
    metrics_count_jobs(jobs->app->metrics, METRICS_JOBS_CLAIMED, 1);
    const struct job_kind *kind = job_kind_find(job->kind, jobs->app->cfg->debug_routes);
    struct eng_error err = {0};
    json_t *result = NULL;
    int rc = -1;
    char names[256];
    if (!kind)
        eng_fail(&err, ENG_INVALID, "this server has no job kind %s (kinds: %s)", job->kind,
                 job_kind_names(jobs->app->cfg->debug_routes, names, sizeof names));
    else if (job_store_checkpoint_load(st, job->id, &ctx.restored, &err) == 0) {
        log_event("info", "job", "job %s (%s) starts, attempt %d%s", job->id, job->kind,
                  job->attempts, ctx.restored ? ", from its checkpoint" : "");
        eng_cancel_install(&ctx.cancel);
        rc = kind->run(&ctx, job->params, &result, &err);
        eng_cancel_install(NULL);
        if (rc == 0 && !json_is_object(result))
            rc = eng_fail(&err, ENG_INTERNAL, "job kind %s gave no result", job->kind);
    }
    /* A lease lost while the job ran (found by the heartbeat or by a write) means that another
     * attempt may own the job now: nothing of this one is recorded, whatever it reached. */
    if (atomic_load(&ctx.lease.lost)) atomic_store(&ctx.stop, STOP_LOST);
    enum job_stop stop = (enum job_stop)atomic_load(&ctx.stop);
    struct eng_error store_err;
    int stored = -1;
    if (stop != STOP_LOST)
        stored = record_end(st, job, stop, rc, ctx.waits, result, &err, &store_err);
    if (stop == STOP_LOST || (stored != 0 && store_err.code == ENG_CONFLICT)) {
        metrics_count_jobs(jobs->app->metrics, METRICS_JOBS_LOST, 1);
        log_event("warn", "job",
                  "job %s (%s), attempt %d: its lease (token %lld) was lost; the job is "
                  "abandoned here, with nothing recorded",
                  job->id, job->kind, job->attempts, (long long)job->lease_token);
    } else if (stored != 0) {
        log_event("error", "job", "job %s: cannot record its end: %s", job->id, store_err.message);
    } else {
        publish(&ctx);
        log_event("info", "job", "job %s (%s) %s%s%s", job->id, job->kind,
                  rc == 0                  ? "succeeded"
                  : ctx.waits && !stop     ? "waits for its parent"
                  : stop == STOP_SHUTDOWN  ? "stopped; queued again"
                  : stop == STOP_CANCELLED ? "cancelled"
                                           : "failed",
                  rc != 0 && stop == STOP_NONE && !ctx.waits ? ": " : "",
                  rc != 0 && stop == STOP_NONE && !ctx.waits ? err.message : "");
    }
    leases_release(jobs->leases, &ctx.lease);
    for (size_t i = 0; i < ctx.pending_count; i++)
        free(ctx.pending[i]);
    free(ctx.pending);
    json_decref(result);
    json_decref(ctx.restored);
    free(ctx.last_phase);
}

/* Claims and runs jobs until none is queued; 0, or -1 when the store failed. */
static int drain(struct jobs *jobs)
{
    for (;;) {
        if (atomic_load(&jobs->stop_flag)) return 0;
        struct job job;
        struct eng_error err;
        int claimed = job_store_claim(jobs->app->storage, leases_worker_id(), &job, &err);
        if (claimed <= 0) {
            if (claimed < 0) log_event("error", "job", "cannot claim a job: %s", err.message);
            return claimed;
        }
        pthread_mutex_lock(&jobs->lock);
        jobs->busy++;
        pthread_mutex_unlock(&jobs->lock);
        jobs_run_claimed(jobs, &job, jobs->threads_per_job);
        job_clear(&job);
        pthread_mutex_lock(&jobs->lock);
        jobs->busy--;
        pthread_mutex_unlock(&jobs->lock);
    }
}

static void *runner_main(void *arg)
{
    struct jobs *jobs = arg;
    /* Jobs yield the cores to requests: a lower priority for this thread and the threads it
     * starts (Linux keeps a nice value per thread, and a new thread takes its creator's). Raising
     * one's own nice value needs no privilege; should it fail, the job runs at the usual one. */
    setpriority(PRIO_PROCESS, (id_t)gettid(), JOB_NICE);
    pthread_mutex_lock(&jobs->lock);
    unsigned long seen = jobs->generation - 1; /* look at the store at once */
    while (!jobs->stopping) {
        if (seen == jobs->generation) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += jobs->app->cfg->job_poll_s;
            pthread_cond_timedwait(&jobs->wake, &jobs->lock, &until);
            if (jobs->stopping) break;
        }
        seen = jobs->generation;
        pthread_mutex_unlock(&jobs->lock);
        drain(jobs);
        pthread_mutex_lock(&jobs->lock);
    }
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}

/* Every lease a start-up may take for dead at once: on SQLite, every one (one process uses a
 * data_dir, so a job left running is its previous process's). */
static int any_owner(const char *owner, void *arg)
{
    (void)owner;
    (void)arg;
    return 1;
}

/* At start-up, before any runner: the jobs whose process is known to have ended (on SQLite, all
 * those left running; on PostgreSQL, those of an ended process of this host) are queued again at
 * once, rather than after lease_s: a restart after a crash resumes them straight away. */
static int expire_at_start(struct app *app, struct eng_error *err)
{
    const struct config *cfg = app->cfg;
    struct job_expiry x = {.lease_ms = (int64_t)cfg->lease_s * 1000,
                           .max_attempts = cfg->job_max_attempts,
                           .gone = storage_is_local(app->storage) ? any_owner : leases_owner_gone};
    if (job_store_expire(app->storage, &x, err) != 0) return -1;
    metrics_count_jobs(app->metrics, METRICS_JOBS_EXPIRED, x.requeued + x.abandoned);
    metrics_count_jobs(app->metrics, METRICS_JOBS_RETRIED, x.requeued);
    if (x.requeued || x.abandoned)
        log_event("warn", "jobs",
                  "%zu jobs were running under a process that has ended: %zu queued again, %zu "
                  "started %d times already and left interrupted",
                  x.requeued + x.abandoned, x.requeued, x.abandoned, cfg->job_max_attempts);
    return 0;
}

struct jobs *jobs_start(struct app *app, struct eng_error *err)
{
    const struct config *cfg = app->cfg;
    if (expire_at_start(app, err) != 0) return NULL;
    struct jobs *jobs = calloc(1, sizeof *jobs);
    if (!jobs || !(jobs->threads = calloc((size_t)cfg->job_workers + 1, sizeof *jobs->threads))) {
        free(jobs);
        eng_no_memory(err);
        return NULL;
    }
    jobs->app = app;
    jobs->leases = leases_start(app, err);
    if (!jobs->leases) {
        free(jobs->threads);
        free(jobs);
        return NULL;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int runners = cfg->job_workers > 0 ? cfg->job_workers : 1;
    jobs->threads_per_job =
        cfg->job_threads > 0 ? cfg->job_threads : (int)(cores > runners ? cores / runners : 1);
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->wake, NULL);
    atomic_init(&jobs->stop_flag, 0);
    atomic_init(&jobs->cancels_heard, 0);
    /* Runners leave signal handling to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; jobs->runner_count < cfg->job_workers; jobs->runner_count++)
        if (pthread_create(&jobs->threads[jobs->runner_count], NULL, runner_main, jobs) != 0) break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (jobs->runner_count < cfg->job_workers) {
        eng_fail(err, ENG_INTERNAL, "cannot start %d job runner threads", cfg->job_workers);
        jobs_close(jobs);
        return NULL;
    }
    return jobs;
}

void jobs_stop(struct jobs *jobs)
{
    if (!jobs) return;
    pthread_mutex_lock(&jobs->lock);
    int was = jobs->stopping;
    jobs->stopping = 1;
    atomic_store(&jobs->stop_flag, 1);
    pthread_cond_broadcast(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
    if (was) return;
    for (int i = 0; i < jobs->runner_count; i++)
        pthread_join(jobs->threads[i], NULL);
    /* The runners have recorded their jobs' ends under their leases: none is held now. */
    leases_stop(jobs->leases);
    jobs->leases = NULL;
}

void jobs_close(struct jobs *jobs)
{
    if (!jobs) return;
    jobs_stop(jobs);
    pthread_cond_destroy(&jobs->wake);
    pthread_mutex_destroy(&jobs->lock);
    free(jobs->threads);
    free(jobs);
}

void jobs_counts(struct jobs *jobs, int *busy, int *runners)
{
    pthread_mutex_lock(&jobs->lock);
    *busy = jobs->busy;
    *runners = jobs->runner_count;
    pthread_mutex_unlock(&jobs->lock);
}

int jobs_new_id(char id[JOB_ID_SIZE], struct eng_error *err)
{
    unsigned char random[(JOB_ID_SIZE - 1) / 2];
    if (RAND_bytes(random, sizeof random) != 1)
        return eng_fail(err, ENG_INTERNAL, "the random generator failed");
    for (size_t i = 0; i < sizeof random; i++)
        snprintf(id + 2 * i, 3, "%02x", random[i]);
    return 0;
}

int jobs_submit(struct jobs *jobs, const char *kind_name, json_t *params, const char *owner,
                struct job *out, struct eng_error *err)
{
    const struct app *app = jobs->app;
    const struct job_kind *kind = job_kind_find(kind_name, app->cfg->debug_routes);
    char names[256];
    if (!kind)
        return eng_fail(err, ENG_INVALID, "kind: no job kind \"%s\"; kinds: %s", kind_name,
                        job_kind_names(app->cfg->debug_routes, names, sizeof names));
    json_t *empty = params ? NULL : json_object();
    if (!params && !empty) return eng_no_memory(err);
    struct job spec = {
        .kind = (char *)kind_name, .params = params ? params : empty, .owner = (char *)owner};
    int rc = -1;
    if (!json_is_object(spec.params))
        eng_fail(err, ENG_INVALID, "params: must be an object");
    else if (kind->validate(app, spec.params, err) == 0 && jobs_new_id(spec.id, err) == 0 &&
             job_store_create(app->storage, &spec, err) == 0)
        rc = job_store_get(app->storage, spec.id, out, err);
    json_decref(empty);
    if (rc != 0) return -1;
    jobs_wake(jobs);
    return 0;
}

void jobs_wake(struct jobs *jobs)
{
    pthread_mutex_lock(&jobs->lock);
    jobs->generation++;
    pthread_cond_signal(&jobs->wake);
    pthread_mutex_unlock(&jobs->lock);
}

void jobs_cancel_heard(struct jobs *jobs)
{
    atomic_fetch_add(&jobs->cancels_heard, 1);
}
