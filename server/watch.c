#include "watch.h"

#include <errno.h>
#include <sys/socket.h>

/* Looking at the socket costs a system call; every op of every sample asks, so at most this
 * often. */
#define PROBE_INTERVAL_NS 20000000

static int64_t now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int watch_client_closed(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return 0;
    if (n == 0) return 1;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static int check(void *ctx, struct eng_error *err)
{
    struct request_watch *w = ctx;
    int stopped = atomic_load(&w->stopped);
    int64_t now = now_ns();
    if (stopped == WATCH_RUNNING && now >= w->deadline_ns) stopped = WATCH_DEADLINE;
    if (stopped == WATCH_RUNNING && w->fd >= 0 && now >= atomic_load(&w->next_probe_ns)) {
        atomic_store(&w->next_probe_ns, now + PROBE_INTERVAL_NS);
        if (watch_client_closed(w->fd)) stopped = WATCH_CLIENT_CLOSED;
    }
    if (stopped == WATCH_RUNNING) return 0;
    atomic_store(&w->stopped, stopped);
    if (stopped == WATCH_DEADLINE)
        return eng_fail(err, ENG_CANCELLED,
                        "the request ran past request_timeout_s (%d s) and was stopped; send less "
                        "work at once, or retry when the server is less busy",
                        w->timeout_s);
    return eng_fail(err, ENG_CANCELLED, "the client closed the connection; the work was stopped");
}

void watch_start(struct request_watch *w, const struct timespec *start, int timeout_s, int fd)
{
    w->cancel = (struct eng_cancel){check, w};
    w->deadline_ns =
        (int64_t)start->tv_sec * 1000000000 + start->tv_nsec + (int64_t)timeout_s * 1000000000;
    w->timeout_s = timeout_s;
    w->fd = fd;
    atomic_init(&w->next_probe_ns, 0);
    atomic_init(&w->stopped, WATCH_RUNNING);
}

enum watch_stop watch_stopped(const struct request_watch *w)
{
    return (enum watch_stop)atomic_load(&w->stopped);
}
