/* The threads a job runs its children on (job_children.h). Each thread claims the parent's
 * oldest queued child from the store and runs it as a runner would; with none queued it sleeps
 * until job_children_add wakes it (or a second passes: a child queued again by other means). The
 * parent sleeps in job_children_wait until a thread has finished a child. */
#include "job_children.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "job_kind.h"
#include "jobs.h"
#include "leases.h"
#include "log.h"

/* How long an idle thread sleeps before it looks at the store again unwoken. */
#define IDLE_POLL_MS 1000

struct job_children {
    struct job_ctx *ctx; /* the parent's */
    struct app *app;
    struct jobs *jobs;
    char parent[JOB_ID_SIZE];
    char *owner; /* the parent's, which its children take */
    int threads_each;
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* a child was added, or stop */
    pthread_cond_t ended;     /* a child ended */
    unsigned long added;      /* children added so far */
    unsigned long ends, seen; /* children ended so far; of those, seen by job_children_wait */
    int stopping;
    pthread_t *threads;
    int count;
};

static void deadline_in(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* Claims and runs one queued child: 1 when it ran one, 0 when none was queued (or the parent is
 * stopping), -1 when the store failed. */
static int run_one(struct job_children *c)
{
    struct eng_error err;
    struct job child;
    /* A parent cancelled or a server stopping starts no more children. */
    if (job_ctx_cancelled(c->ctx, &err)) return 0;
    int claimed = job_store_claim_child(c->app->storage, c->parent, jobs_lease_token(c->ctx),
                                        leases_worker_id(), &child, &err);
    if (claimed < 0)
        log_event("error", "job", "job %s: cannot claim a child: %s", c->parent, err.message);
    if (claimed <= 0) return claimed;
    jobs_run_claimed(c->jobs, &child, c->threads_each);
    job_clear(&child);
    pthread_mutex_lock(&c->lock);
    c->ends++;
    pthread_cond_broadcast(&c->ended);
    pthread_mutex_unlock(&c->lock);
    return 1;
}

static void *thread_main(void *arg)
{
    struct job_children *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        unsigned long added = c->added;
        pthread_mutex_unlock(&c->lock);
        int ran = run_one(c);
        pthread_mutex_lock(&c->lock);
        if (ran == 1 || c->stopping || c->added != added) continue;
        struct timespec until;
        deadline_in(&until, IDLE_POLL_MS);
        pthread_cond_timedwait(&c->wake, &c->lock, &until);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct job_children *job_children_start(struct job_ctx *ctx, int parallel, struct eng_error *err)
{
    struct job_children *c = calloc(1, sizeof *c);
    struct job parent = {0};
    if (!c || !(c->threads = calloc((size_t)parallel, sizeof *c->threads))) {
        free(c);
        eng_no_memory(err);
        return NULL;
    }
    c->ctx = ctx;
    c->app = job_ctx_app(ctx);
    c->jobs = jobs_of(ctx);
    snprintf(c->parent, sizeof c->parent, "%s", job_ctx_id(ctx));
    c->threads_each = job_ctx_threads(ctx) / parallel > 1 ? job_ctx_threads(ctx) / parallel : 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_cond_init(&c->ended, NULL);
    if (job_store_get(c->app->storage, c->parent, &parent, err) != 0 ||
        (parent.owner && !(c->owner = strdup(parent.owner)))) {
        if (parent.owner && !c->owner) eng_no_memory(err);
        job_clear(&parent);
        job_children_stop(c);
        return NULL;
    }
    job_clear(&parent);
    /* The threads take the runner's nice value and its blocked signals. */
    for (; c->count < parallel; c->count++)
        if (pthread_create(&c->threads[c->count], NULL, thread_main, c) != 0) {
            eng_fail(err, ENG_INTERNAL, "cannot start %d threads for the job's children", parallel);
            job_children_stop(c);
            return NULL;
        }
    return c;
}

void job_children_stop(struct job_children *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < c->count; i++)
        pthread_join(c->threads[i], NULL);
    pthread_cond_destroy(&c->ended);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c->owner);
    free(c->threads);
    free(c);
}

int job_children_new_id(char id[JOB_ID_SIZE], struct eng_error *err)
{
    return jobs_new_id(id, err);
}

int job_children_add(struct job_children *c, const char *id, const char *kind, const json_t *params,
                     struct eng_error *err)
{
    struct job spec = {
        .kind = (char *)kind, .params = (json_t *)params, .owner = c->owner, .parent = c->parent};
    snprintf(spec.id, sizeof spec.id, "%s", id);
    if (job_store_create_child(c->app->storage, &spec, jobs_lease_token(c->ctx), err) != 0)
        return -1;
    pthread_mutex_lock(&c->lock);
    c->added++;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void job_children_wait(struct job_children *c, int timeout_ms)
{
    pthread_mutex_lock(&c->lock);
    if (c->seen == c->ends) {
        struct timespec until;
        deadline_in(&until, timeout_ms);
        pthread_cond_timedwait(&c->ended, &c->lock, &until);
    }
    c->seen = c->ends;
    pthread_mutex_unlock(&c->lock);
}

int job_children_get(struct job_children *c, const char *id, struct job *out, struct eng_error *err)
{
    return job_store_get(c->app->storage, id, out, err);
}

int job_children_cancel(struct job_children *c, const char *id, struct eng_error *err)
{
    enum job_state state;
    if (job_store_cancel(c->app->storage, id, &state, err) == 0 || err->code == ENG_CONFLICT ||
        err->code == ENG_NOT_FOUND)
        return 0;
    return -1;
}
