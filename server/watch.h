/* A heavy request's watch: its deadline (request_timeout_s from its first byte) and its client.
 * Installed as the engine's cancellation check (core/cancel.h) on the worker that runs the
 * request, it stops the work between ops and samples once the deadline passes or the client has
 * closed its connection, so an abandoned request frees its worker at once. */
#ifndef AUGSERVE_WATCH_H
#define AUGSERVE_WATCH_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "core/cancel.h"

enum watch_stop {
    WATCH_RUNNING,
    WATCH_DEADLINE,      /* request_timeout_s passed */
    WATCH_CLIENT_CLOSED, /* the client closed or reset its connection */
};

struct request_watch {
    struct eng_cancel cancel; /* check and ctx: this watch */
    int64_t deadline_ns;      /* CLOCK_MONOTONIC */
    int timeout_s;
    int fd;                        /* the client's socket, or -1 when unknown */
    _Atomic int64_t next_probe_ns; /* the socket is looked at no more often than this */
    _Atomic int stopped;           /* an enum watch_stop, once seen */
};

/* Starts watching: deadline timeout_s after start (CLOCK_MONOTONIC), client on socket fd. */
void watch_start(struct request_watch *w, const struct timespec *start, int timeout_s, int fd);

/* Whether the peer has closed or reset the connection on socket fd. A request's bytes were all
 * read before its work started, so anything readable now is a pipelined request (still there) or
 * the end of the stream (gone). */
int watch_client_closed(int fd);

/* Why the work stopped (WATCH_RUNNING when it did not). */
enum watch_stop watch_stopped(const struct request_watch *w);

#endif
