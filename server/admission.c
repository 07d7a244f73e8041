#include "admission.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

struct job {
    admission_job_fn fn;
    void *arg;
};

struct admission {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *ring; /* waiting jobs; capacity workers + queue, see admission_submit */
    size_t capacity, head, waiting;
    int running, worker_count, stopping;
    pthread_t *threads;
};

static void *worker_main(void *arg)
{
    struct admission *adm = arg;
    pthread_mutex_lock(&adm->lock);
    for (;;) {
        while (adm->waiting == 0 && !adm->stopping)
            pthread_cond_wait(&adm->wake, &adm->lock);
        if (adm->waiting == 0) break; /* stopping, and nothing left to do */
        struct job job = adm->ring[adm->head];
        adm->head = (adm->head + 1) % adm->capacity;
        adm->waiting--;
        adm->running++;
        pthread_mutex_unlock(&adm->lock);
        job.fn(job.arg);
        pthread_mutex_lock(&adm->lock);
        adm->running--;
    }
    pthread_mutex_unlock(&adm->lock);
    return NULL;
}

struct admission *admission_create(int workers, int queue)
{
    if (workers < 1 || queue < 0) return NULL;
    struct admission *adm = calloc(1, sizeof *adm);
    if (!adm) return NULL;
    /* A job handed over but not yet picked up by an idle worker also sits in the ring, so the
     * ring holds the queue plus one slot per worker. */
    adm->capacity = (size_t)workers + (size_t)queue;
    adm->ring = calloc(adm->capacity, sizeof *adm->ring);
    adm->threads = calloc((size_t)workers, sizeof *adm->threads);
    if (!adm->ring || !adm->threads) goto fail;
    pthread_mutex_init(&adm->lock, NULL);
    pthread_cond_init(&adm->wake, NULL);
    /* Workers leave signal handling to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; adm->worker_count < workers; adm->worker_count++)
        if (pthread_create(&adm->threads[adm->worker_count], NULL, worker_main, adm) != 0) break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (adm->worker_count < workers) {
        admission_destroy(adm);
        return NULL;
    }
    return adm;
fail:
    free(adm->ring);
    free(adm->threads);
    free(adm);
    return NULL;
}

int admission_submit(struct admission *adm, admission_job_fn fn, void *arg)
{
    pthread_mutex_lock(&adm->lock);
    /* Busy workers plus waiting jobs may not pass workers + queue. */
    if (adm->stopping || (size_t)adm->running + adm->waiting >= adm->capacity) {
        pthread_mutex_unlock(&adm->lock);
        return -1;
    }
    size_t tail = (adm->head + adm->waiting) % adm->capacity;
    adm->ring[tail].fn = fn;
    adm->ring[tail].arg = arg;
    adm->waiting++;
    pthread_cond_signal(&adm->wake);
    pthread_mutex_unlock(&adm->lock);
    return 0;
}

void admission_counts(struct admission *adm, int *running, int *waiting)
{
    pthread_mutex_lock(&adm->lock);
    *running = adm->running;
    *waiting = (int)adm->waiting;
    pthread_mutex_unlock(&adm->lock);
}

void admission_destroy(struct admission *adm)
{
    if (!adm) return;
    pthread_mutex_lock(&adm->lock);
    adm->stopping = 1;
    pthread_cond_broadcast(&adm->wake);
    pthread_mutex_unlock(&adm->lock);
    for (int i = 0; i < adm->worker_count; i++)
        pthread_join(adm->threads[i], NULL);
    pthread_cond_destroy(&adm->wake);
    pthread_mutex_destroy(&adm->lock);
    free(adm->ring);
    free(adm->threads);
    free(adm);
}
