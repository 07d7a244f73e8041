#include "core/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/cancel.h"

struct parallel_job {
    atomic_size_t next;
    size_t n;
    void (*fn)(void *ctx, size_t i);
    void *ctx;
    const struct eng_cancel *cancel; /* the caller's, for the threads started here */
};

static void *take_items(void *arg)
{
    struct parallel_job *job = arg;
    eng_cancel_install(job->cancel);
    for (size_t i; (i = atomic_fetch_add(&job->next, 1)) < job->n;)
        job->fn(job->ctx, i);
    return NULL;
}

void parallel_for(size_t n, int threads, void (*fn)(void *ctx, size_t i), void *ctx)
{
    struct parallel_job job = {.n = n, .fn = fn, .ctx = ctx, .cancel = eng_cancel_installed()};
    atomic_init(&job.next, 0);
    size_t extra = threads > 1 ? (size_t)threads - 1 : 0;
    if (extra > n - (n > 0)) extra = n > 0 ? n - 1 : 0;
    pthread_t *ids = extra ? calloc(extra, sizeof *ids) : NULL;
    size_t started = 0;
    while (ids && started < extra && pthread_create(&ids[started], NULL, take_items, &job) == 0)
        started++;
    take_items(&job);
    for (size_t t = 0; t < started; t++)
        pthread_join(ids[t], NULL);
    free(ids);
}
