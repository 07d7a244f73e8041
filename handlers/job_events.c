/* GET /v1/jobs/{id}/events: the job's events as Server-Sent Events (text/event-stream), each as
 *
 *     id: <event id>
 *     event: state | progress | log | metric
 *     data: <JSON object>
 *
 * The stored events after Last-Event-ID (the header an EventSource sends when it reconnects, or
 * the last_event_id query parameter) come first, then new ones as the job makes them, until it
 * ends: then the stream ends too. A quiet stream carries a comment line now and then, so proxies
 * and clients see it alive. The stream is a light route's streamed response (server/streams.c):
 * it sleeps between events and holds no request worker. On PostgreSQL it reads the store when the
 * job's new events are announced (NOTIFY, wakeups.h), which any process writing them does, rather
 * than at each of the streams' polls.
 *
 * Several processes may write one job's events (the one running it, an API server cancelling it
 * or its parent), but each job's events are committed in id order (job_store.c's add_event), so
 * reading the events after the last id sent, as a resumed stream does after Last-Event-ID, never
 * passes over one committed later. */
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/parse.h"
#include "handlers.h"
#include "job_store.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "wakeups.h"

/* Events read from the store at a time. */
#define PAGE 256
/* The longest quiet between heartbeats (shorter when connection_timeout_s is). */
#define HEARTBEAT_MAX_MS 15000

struct feed {
    struct app *app;
    char id[JOB_ID_SIZE];
    int64_t after; /* the last event id in text */
    char *text;    /* what read has still to give: text[sent..size) */
    size_t size, sent, capacity;
    int ended; /* everything the job will ever say is in text */
    int64_t heartbeat_ns, last_write_ns;
    int more;            /* the last read found events: there may be more (a page's worth) */
    unsigned heard;      /* wakeups_events' count when the store was last read */
    int64_t read_ns;     /* when it was */
    int64_t fallback_ns; /* the longest between reads while new events are announced: job_poll_s */
};

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static int append(struct feed *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int append(struct feed *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *piece = NULL;
    int n = vasprintf(&piece, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if (f->size + (size_t)n > f->capacity) {
        size_t capacity = (f->size + (size_t)n) * 2;
        char *grown = realloc(f->text, capacity);
        if (!grown) {
            free(piece);
            return -1;
        }
        f->text = grown;
        f->capacity = capacity;
    }
    memcpy(f->text + f->size, piece, (size_t)n);
    f->size += (size_t)n;
    free(piece);
    return 0;
}

/* Whether to read the store now. Always on SQLite, or while the store's announcements do not
 * arrive; while they do (PostgreSQL), when the job's count of announced events has moved since the
 * last read, when that read found events (the next may find more, or that the job has ended), and
 * every job_poll_s in case an announcement was lost. The count is taken before the read: an event
 * committed after the read's snapshot is announced after, and moves it again. */
static int worth_reading(struct feed *f, int64_t now)
{
    unsigned heard;
    int announced = wakeups_events(f->app, f->id, &heard);
    if (announced && !f->more && heard == f->heard && now - f->read_ns < f->fallback_ns) return 0;
    f->heard = heard;
    f->read_ns = now;
    return 1;
}

/* Reads the store's new events into text: 1 when there were some (or the stream ends), 0 when
 * the job has none yet. */
static int read_new(struct feed *f)
{
    struct job job = {0};
    struct job_event *events = NULL;
    size_t count = 0;
    struct eng_error err;
    /* The state first: a job that has ended recorded its last event with that state, so the
     * events read after it include them all. */
    if (job_store_get(f->app->storage, f->id, &job, &err) != 0 ||
        job_store_events(f->app->storage, f->id, f->after, PAGE, &events, &count, &err) != 0) {
        /* The client reconnects with its Last-Event-ID; this stream cannot go on. */
        log_event("warn", "job_events", "job %s: %s", f->id, err.message);
        job_clear(&job);
        return f->ended = 1;
    }
    int final = job_state_is_final(job.state);
    job_clear(&job);
    for (size_t i = 0; i < count; i++) {
        if (append(f, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)events[i].id,
                   job_event_type_name(events[i].type), events[i].data) != 0) {
            f->ended = 1;
            break;
        }
        f->after = events[i].id;
    }
    job_events_free(events, count);
    f->more = count > 0;
    if (count > 0) return 1;
    return final ? f->ended = 1 : 0;
}

/* Gathers what is new into text: 1 when read has something to give (or the stream ends). */
static int poll_feed(void *ctx)
{
    struct feed *f = ctx;
    if (f->ended || f->sent < f->size) return 1;
    if (atomic_load(&f->app->shutting_down)) return f->ended = 1;
    int64_t now = monotonic_ns();
    if (worth_reading(f, now) && read_new(f)) return 1;
    if (now - f->last_write_ns >= f->heartbeat_ns && append(f, ": keep-alive\n\n") != 0)
        f->ended = 1;
    return f->sent < f->size || f->ended;
}

static long read_feed(void *ctx, char *buf, size_t max)
{
    struct feed *f = ctx;
    size_t n = f->size - f->sent;
    if (n == 0) return f->ended ? -1 : 0;
    if (n > max) n = max;
    memcpy(buf, f->text + f->sent, n);
    f->sent += n;
    if (f->sent == f->size) f->sent = f->size = 0;
    f->last_write_ns = monotonic_ns();
    return (long)n;
}

static void free_feed(void *ctx)
{
    struct feed *f = ctx;
    free(f->text);
    free(f);
}

/* Whether a job that has ended has events after `after`: when it has none, a reconnecting
 * EventSource is told to stop (204) instead of being given an empty stream to reconnect to. */
static int has_more(struct request *req, const struct job *job, int64_t after)
{
    if (!job_state_is_final(job->state)) return 1;
    struct job_event *events = NULL;
    size_t count = 0;
    struct eng_error err;
    if (job_store_events(req->app->storage, job->id, after, 1, &events, &count, &err) != 0)
        return 1; /* the stream's own poll reports it */
    job_events_free(events, count);
    return count > 0;
}

void handle_job_events(struct request *req, struct response *resp)
{
    const char *last = request_header(req, "Last-Event-ID");
    const char *name = "Last-Event-ID";
    if (!last) {
        last = request_query(req, "last_event_id");
        name = "last_event_id";
    }
    unsigned long long after = 0;
    if (last && parse_whole(last, 0, INT64_MAX, &after) != PARSE_OK) {
        response_error(resp, 422, "%s: an event id, a whole number", name);
        return;
    }
    struct job job;
    if (job_of_request(req, resp, &job) != 0) return;
    int more = has_more(req, &job, (int64_t)after);
    struct feed *f = more ? calloc(1, sizeof *f) : NULL;
    if (f) {
        f->app = req->app;
        memcpy(f->id, job.id, sizeof f->id);
        f->after = (int64_t)after;
        int64_t heartbeat_ms = (int64_t)req->app->cfg->connection_timeout_s * 500;
        f->heartbeat_ns =
            (heartbeat_ms < HEARTBEAT_MAX_MS ? heartbeat_ms : HEARTBEAT_MAX_MS) * 1000000LL;
        f->last_write_ns = monotonic_ns();
        f->fallback_ns = (int64_t)req->app->cfg->job_poll_s * 1000000000LL;
        f->read_ns = f->last_write_ns - f->fallback_ns; /* the first poll reads */
    }
    job_clear(&job);
    if (!more) {
        response_bytes(resp, 204, NULL, NULL, 0);
        return;
    }
    if (!f) {
        response_no_memory(resp, "while opening the event stream");
        return;
    }
    struct response_stream stream = {read_feed, poll_feed, free_feed, f};
    response_stream(resp, 200, "text/event-stream", &stream);
    response_header(resp, "Cache-Control", "no-store");
    /* nginx buffers responses unless told not to; events must pass at once. */
    response_header(resp, "X-Accel-Buffering", "no");
}
