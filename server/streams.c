#include "streams.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "watch.h"

/* How often the sleepers are polled: an event reaches its stream at most this late. */
#define POLL_MS 100

/* How a stream's connection ends once it wakes. */
enum stream_end {
    STREAM_OPEN,
    STREAM_CLIENT_GONE, /* closed by the client while asleep: drop the connection */
    STREAM_SERVER_STOP, /* the server stops: end the body */
};

struct stream {
    struct streams *owner;
    struct MHD_Connection *conn;
    int fd;
    struct response_stream body;
    enum stream_end end;
    struct stream *next; /* in the sleepers' list, while asleep */
};

struct streams {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct stream *sleepers;
    int stopping;
    pthread_t thread;
};

static void resume(struct stream *c)
{
    c->next = NULL;
    MHD_resume_connection(c->conn);
}

/* Polls the sleepers, outside the lock (a poll may read the store), and resumes those ready. */
static void poll_sleepers(struct streams *s)
{
    struct stream *asleep = s->sleepers;
    s->sleepers = NULL;
    pthread_mutex_unlock(&s->lock);
    struct stream *ready = NULL, *still = NULL;
    while (asleep) {
        struct stream *c = asleep;
        asleep = c->next;
        if (c->fd >= 0 && watch_client_closed(c->fd)) c->end = STREAM_CLIENT_GONE;
        struct stream **to = c->end != STREAM_OPEN || c->body.poll(c->body.ctx) ? &ready : &still;
        c->next = *to;
        *to = c;
    }
    pthread_mutex_lock(&s->lock);
    while (ready) {
        struct stream *c = ready;
        ready = c->next;
        resume(c);
    }
    while (still) {
        struct stream *c = still;
        still = c->next;
        c->next = s->sleepers;
        s->sleepers = c;
    }
}

static void *poll_loop(void *arg)
{
    struct streams *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        if (s->sleepers) poll_sleepers(s);
        if (s->stopping) break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        /* Woken early by a new sleeper, so its first poll does not wait. */
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
    while (s->sleepers) {
        struct stream *c = s->sleepers;
        s->sleepers = c->next;
        c->end = STREAM_SERVER_STOP;
        resume(c);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct streams *streams_start(void)
{
    struct streams *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, poll_loop, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    return s;
}

void streams_stop(struct streams *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* libmicrohttpd's content reader: the body's bytes, or the connection goes to sleep. */
static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *c = cls;
    if (c->end == STREAM_CLIENT_GONE) return MHD_CONTENT_READER_END_WITH_ERROR;
    long n = c->end == STREAM_SERVER_STOP ? -1 : c->body.read(c->body.ctx, buf, max);
    if (n != 0) return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
    struct streams *s = c->owner;
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Suspended before it is listed, so the poll thread never resumes a connection that is not
     * suspended. */
    MHD_suspend_connection(c->conn);
    c->next = s->sleepers;
    s->sleepers = c;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static void free_stream(void *cls)
{
    struct stream *c = cls;
    c->body.free(c->body.ctx);
    free(c);
}

struct MHD_Response *streams_response(struct streams *s, struct MHD_Connection *conn, int fd,
                                      struct response_stream *stream)
{
    struct stream *c = calloc(1, sizeof *c);
    if (!c) {
        stream->free(stream->ctx);
        memset(stream, 0, sizeof *stream);
        return NULL;
    }
    *c = (struct stream){.owner = s, .conn = conn, .fd = fd, .body = *stream};
    memset(stream, 0, sizeof *stream);
    struct MHD_Response *mhd =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_body, c, free_stream);
    if (!mhd) free_stream(c);
    return mhd;
}
