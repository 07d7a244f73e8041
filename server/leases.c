/* The lease thread and the worker id (leases.h). One thread per process renews the leases of every
 * job the process runs, however many runners and children threads run them: a heartbeat is one
 * small UPDATE, and the engine work on the runners never holds it up. */
#include "leases.h"

#include <errno.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "datasets.h"
#include "log.h"
#include "metrics.h"
#include "process_store.h"
#include "storage.h"
#include "uploads.h"

struct leases {
    struct app *app;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    struct lease *held; /* the jobs this process runs */
    pthread_t thread;
};

static char worker_id[HOST_NAME_MAX + 48];
static pthread_once_t worker_once = PTHREAD_ONCE_INIT;

static void make_worker_id(void)
{
    char host[HOST_NAME_MAX + 1] = "";
    unsigned char random[4] = {0};
    if (gethostname(host, sizeof host) != 0 || !host[0]) snprintf(host, sizeof host, "localhost");
    host[HOST_NAME_MAX] = '\0';
    /* Without random bytes the id still names the host and pid: unique among live processes. */
    if (RAND_bytes(random, sizeof random) != 1) memset(random, 0, sizeof random);
    snprintf(worker_id, sizeof worker_id, "%s:%ld:%02x%02x%02x%02x", host, (long)getpid(),
             random[0], random[1], random[2], random[3]);
}

const char *leases_worker_id(void)
{
    pthread_once(&worker_once, make_worker_id);
    return worker_id;
}

int leases_owner_gone(const char *owner, void *arg)
{
    (void)arg;
    const char *self = leases_worker_id();
    const char *pid_at = strchr(self, ':') + 1; /* the host: up to the first ':' */
    size_t host_len = (size_t)(pid_at - self);
    if (strncmp(owner, self, host_len) != 0) return 0;
    char *end;
    errno = 0;
    long pid = strtol(owner + host_len, &end, 10);
    if (errno || end == owner + host_len || *end != ':' || pid <= 0 || pid > INT_MAX) return 0;
    if (pid == (long)getpid()) return strcmp(owner, self) != 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* This process's own heartbeat (process_store.h): 0, or -1 with err. */
static int beat_process(struct app *app, struct eng_error *err)
{
    return process_store_beat(app->storage, leases_worker_id(), (int64_t)app->cfg->lease_s * 1000,
                              err);
}

/* One beat: this process's, then every held lease's, marking those found lost. */
static void renew(struct leases *l)
{
    struct storage *st = l->app->storage;
    struct eng_error beat_err;
    if (beat_process(l->app, &beat_err) != 0)
        log_event("warn", "jobs", "cannot record this process's heartbeat: %s", beat_err.message);
    pthread_mutex_lock(&l->lock);
    for (struct lease *lease = l->held; lease; lease = lease->next) {
        if (atomic_load(&lease->lost)) continue;
        struct eng_error err;
        int held = job_store_heartbeat(st, lease->id, lease->token, &err);
        if (held == 0) {
            atomic_store(&lease->lost, 1);
            log_event("warn", "job",
                      "job %s: its lease (token %lld) was lost; the job stops without recording "
                      "anything",
                      lease->id, (long long)lease->token);
        } else if (held < 0) {
            /* The lease may expire while the store cannot be reached; the job's next write to it
             * finds out (fencing), and so does the next beat. */
            log_event("warn", "job", "job %s: cannot renew its lease: %s", lease->id, err.message);
        }
    }
    pthread_mutex_unlock(&l->lock);
}

/* Expires the leases whose heartbeat is older than lease_s, or whose process has ended; removes
 * the partial uploads of such processes (uploads.h), and closes the datasets other processes
 * removed (datasets.h). */
static void sweep(struct leases *l)
{
    uploads_sweep(l->app);
    datasets_close_removed(l->app->datasets);
    const struct config *cfg = l->app->cfg;
    struct job_expiry x = {.lease_ms = (int64_t)cfg->lease_s * 1000,
                           .max_attempts = cfg->job_max_attempts,
                           .gone = leases_owner_gone};
    struct eng_error err;
    if (job_store_expire(l->app->storage, &x, &err) != 0) {
        log_event("warn", "jobs", "cannot look for expired leases: %s", err.message);
        return;
    }
    if (x.requeued + x.abandoned == 0) return;
    metrics_count_jobs(l->app->metrics, METRICS_JOBS_EXPIRED, x.requeued + x.abandoned);
    metrics_count_jobs(l->app->metrics, METRICS_JOBS_RETRIED, x.requeued);
    log_event("warn", "jobs",
              "%zu jobs' leases expired: %zu queued again, %zu started %d times already and left "
              "interrupted",
              x.requeued + x.abandoned, x.requeued, x.abandoned, cfg->job_max_attempts);
}

static void *thread_main(void *arg)
{
    struct leases *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += l->app->cfg->heartbeat_s;
        pthread_cond_timedwait(&l->wake, &l->lock, &until);
        if (l->stopping) break;
        pthread_mutex_unlock(&l->lock);
        renew(l);
        sweep(l);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

struct leases *leases_start(struct app *app, struct eng_error *err)
{
    struct leases *l = calloc(1, sizeof *l);
    if (!l) {
        eng_no_memory(err);
        return NULL;
    }
    l->app = app;
    /* Alive in the store before anything of this process (an upload) can be seen in data_dir. */
    if (beat_process(app, err) != 0) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    /* The thread leaves signal handling to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, thread_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        free(l);
        eng_fail(err, ENG_INTERNAL, "cannot start the lease thread");
        return NULL;
    }
    return l;
}

void leases_stop(struct leases *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stopping = 1;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void leases_hold(struct leases *l, struct lease *lease)
{
    atomic_store(&lease->lost, 0);
    pthread_mutex_lock(&l->lock);
    lease->next = l->held;
    l->held = lease;
    pthread_mutex_unlock(&l->lock);
}

void leases_release(struct leases *l, struct lease *lease)
{
    pthread_mutex_lock(&l->lock);
    for (struct lease **at = &l->held; *at; at = &(*at)->next)
        if (*at == lease) {
            *at = lease->next;
            break;
        }
    pthread_mutex_unlock(&l->lock);
}
