#include "deadlines.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "request.h"
#include "response.h"

/* The kernel counts a connection's last data in jiffies (4 or 10 ms), so data that came just
 * before a request ended could read as having come after it; this much later it surely did. */
#define ARRIVAL_MARGIN_MS 50

struct deadlines_conn {
    struct deadlines_conn *prev, *next;
    int fd;
    enum deadlines_phase phase;
    double since;                        /* when it began waiting for a request */
    double started;                      /* when the request's first byte was seen; 0: not yet */
    double deadline;                     /* 0: none */
    char request_id[REQUEST_ID_MAX + 1]; /* of the request in its body phase */
    int timed_out;                       /* answered 408 and shut */
    size_t sent;                         /* bytes of that 408's body */
};

struct deadlines {
    pthread_mutex_t lock; /* guards the list and every connection's fields */
    struct deadlines_conn *head;
    int header_timeout_s, body_timeout_s;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct deadlines *deadlines_new(int header_timeout_s, int body_timeout_s)
{
    struct deadlines *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    pthread_mutex_init(&d->lock, NULL);
    d->header_timeout_s = header_timeout_s;
    d->body_timeout_s = body_timeout_s;
    return d;
}

void deadlines_free(struct deadlines *d)
{
    if (!d) return;
    while (d->head)
        deadlines_close(d, d->head);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* The caller holds the lock. */
static void set_phase(struct deadlines *d, struct deadlines_conn *c, enum deadlines_phase phase,
                      const char *request_id)
{
    double now = now_s();
    c->phase = phase;
    c->deadline = 0;
    switch (phase) {
    case DEADLINES_WAITING:
        c->since = now;
        c->started = 0;
        c->request_id[0] = '\0';
        break;
    case DEADLINES_HEADERS:
        if (c->started == 0) c->started = now;
        if (d->header_timeout_s > 0) c->deadline = c->started + d->header_timeout_s;
        break;
    case DEADLINES_BODY:
        if (d->body_timeout_s > 0) c->deadline = now + d->body_timeout_s;
        snprintf(c->request_id, sizeof c->request_id, "%s", request_id ? request_id : "");
        break;
    case DEADLINES_BUSY:
        break;
    }
}

struct deadlines_conn *deadlines_open(struct deadlines *d, int fd)
{
    struct deadlines_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    pthread_mutex_lock(&d->lock);
    set_phase(d, c, DEADLINES_WAITING, NULL);
    c->next = d->head;
    if (d->head) d->head->prev = c;
    d->head = c;
    pthread_mutex_unlock(&d->lock);
    return c;
}

void deadlines_close(struct deadlines *d, struct deadlines_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&d->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->head = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&d->lock);
    free(c);
}

void deadlines_enter(struct deadlines *d, struct deadlines_conn *c, enum deadlines_phase phase,
                     const char *request_id)
{
    if (!c) return;
    pthread_mutex_lock(&d->lock);
    /* A connection answered with a 408 is closing: it gets no new deadline. */
    if (!c->timed_out) set_phase(d, c, phase, request_id);
    pthread_mutex_unlock(&d->lock);
}

int deadlines_timed_out(struct deadlines *d, const struct deadlines_conn *c, size_t *sent)
{
    if (!c) return 0;
    pthread_mutex_lock(&d->lock);
    int timed_out = c->timed_out;
    *sent = c->sent;
    pthread_mutex_unlock(&d->lock);
    return timed_out;
}

/* Whether data has come in on a waiting connection since it began to wait: the next request has
 * begun, though libmicrohttpd has not got a whole request line to tell us of. */
static int request_begun(const struct deadlines_conn *c, double now)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
    return (double)info.tcpi_last_data_recv + ARRIVAL_MARGIN_MS < (now - c->since) * 1000.0;
}

/* Why c is past its deadline, for the 408 and the log. */
static void describe(const struct deadlines *d, const struct deadlines_conn *c, char *out,
                     size_t size)
{
    int body = c->phase == DEADLINES_BODY;
    snprintf(out, size, "the request's %s did not arrive within %s (%d s)",
             body ? "body" : "headers", body ? "body_timeout_s" : "header_timeout_s",
             body ? d->body_timeout_s : d->header_timeout_s);
}

/* Writes a 408 with the error envelope on c's socket: libmicrohttpd writes nothing to it before
 * the request's body has ended, so the bytes cannot mix with its own. Returns the bytes of the
 * body sent, as the access log counts them. */
static size_t send_timeout(const struct deadlines_conn *c, const char *why)
{
    char request_id[REQUEST_ID_MAX + 1];
    if (c->request_id[0])
        snprintf(request_id, sizeof request_id, "%s", c->request_id);
    else
        request_new_id(request_id);
    struct response resp;
    response_init(&resp);
    response_error(&resp, 408, "%s", why);
    char *json = response_error_body(&resp, request_id);
    char date[64], head[512];
    time_t t = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
    size_t json_len = json ? strlen(json) : 0;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 408 Request Timeout\r\nDate: %s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nX-Request-Id: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\nContent-Length: %zu\r\n\r\n",
                     date, request_id, json_len);
    ssize_t sent = 0;
    if (json && n > 0 && (size_t)n < sizeof head &&
        send(c->fd, head, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
        sent = send(c->fd, json, json_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    free(json);
    return sent > 0 ? (size_t)sent : 0;
}

void deadlines_check(struct deadlines *d)
{
    double now = now_s();
    pthread_mutex_lock(&d->lock);
    for (struct deadlines_conn *c = d->head; c; c = c->next) {
        if (c->timed_out || c->phase == DEADLINES_BUSY) continue;
        if (c->phase == DEADLINES_WAITING && c->started == 0 && d->header_timeout_s > 0 &&
            request_begun(c, now)) {
            c->started = now;
            c->deadline = now + d->header_timeout_s;
        }
        if (c->deadline == 0 || now < c->deadline) continue;
        char why[160];
        describe(d, c, why, sizeof why);
        c->timed_out = 1;
        c->sent = send_timeout(c, why);
        log_event("info", "http", "408: %s; the connection is closed", why);
        /* libmicrohttpd reads the end of the stream and closes the connection. */
        shutdown(c->fd, SHUT_RDWR);
        c->deadline = 0;
    }
    pthread_mutex_unlock(&d->lock);
}
