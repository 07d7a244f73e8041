/* Wake-ups between the processes of one store (storage.h): NOTIFY on the store's connection, and
 * a listener with a libpq connection of its own, LISTENing on every channel.
 *
 * The listener's thread sleeps in poll() on the connection's socket and on a pipe that
 * storage_listener_close writes to; PQconsumeInput reads what arrived and PQnotifies hands the
 * notifications over one by one. A connection that drops (the server restarted, an administrator
 * ended it) is made again every RETRY_MS until it is back, and then every channel is heard once
 * with no payload, since whatever was said meanwhile is lost. A connection quiet for PING_MS is
 * asked a query, so one a dead network left half-open is found and replaced too. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "storage_internal.h"

/* How long a dropped connection waits before each new try. */
#define RETRY_MS 1000
/* How long a quiet connection goes unasked. */
#define PING_MS 30000

/* The channels' names, in enum storage_channel's order. */
static const char *const channel_names[STORAGE_CHANNELS] = {
    [STORAGE_CHANNEL_JOBS] = "augserve_jobs",     [STORAGE_CHANNEL_CANCEL] = "augserve_cancel",
    [STORAGE_CHANNEL_MODELS] = "augserve_models", [STORAGE_CHANNEL_POLICIES] = "augserve_policies",
    [STORAGE_CHANNEL_EVENTS] = "augserve_events",
};

int storage_notify_within(struct storage *st, enum storage_channel channel, const char *payload,
                          struct eng_error *err)
{
    if (st->driver != &storage_pg_driver) return 0;
    struct storage_stmt *stmt = storage_prepare(st, "SELECT pg_notify(?, ?)", err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, channel_names[channel]);
    storage_bind_text(stmt, 2, payload ? payload : "");
    /* pg_notify answers one row (void): stepping to it runs the statement. */
    int step = storage_step(stmt);
    if (step == STORAGE_ERROR) storage_fail(st, err, "notifying the store's other processes");
    storage_finalize(stmt);
    return step == STORAGE_ERROR ? -1 : 0;
}

int storage_notify(struct storage *st, enum storage_channel channel, const char *payload,
                   struct eng_error *err)
{
    if (st->driver != &storage_pg_driver) return 0;
    pthread_mutex_lock(&st->lock);
    int rc = storage_notify_within(st, channel, payload, err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

struct storage_listener {
    char *url; /* NULL on SQLite */
    storage_heard_fn heard;
    void *arg;
    PGconn *conn; /* the listener thread's alone once it runs */
    int wake[2];  /* storage_listener_close writes to wake[1] */
    atomic_int live;
    pthread_t thread;
    int started;
};

/* Connects and LISTENs on every channel: 0, or -1 with the message in *why (libpq's, valid until
 * the connection is closed). */
static int connect_and_listen(struct storage_listener *l, const char **why)
{
    /* As storage_pg.c's connection, with TCP keep-alives, so a listener whose peer vanished finds
     * out even before its ping. */
    const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "dbname", NULL};
    const char *const values[] = {"10", "1", "30", l->url, NULL};
    PQfinish(l->conn);
    l->conn = PQconnectdbParams(keys, values, 1);
    if (!l->conn) {
        *why = "out of memory";
        return -1;
    }
    int ok = PQstatus(l->conn) == CONNECTION_OK;
    for (int c = 0; ok && c < STORAGE_CHANNELS; c++) {
        char sql[64];
        snprintf(sql, sizeof sql, "LISTEN %s", channel_names[c]);
        PGresult *r = PQexec(l->conn, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (ok) return 0;
    *why = PQerrorMessage(l->conn);
    return -1;
}

/* Hands every notification read so far to heard. */
static void deliver(struct storage_listener *l)
{
    for (PGnotify *n; (n = PQnotifies(l->conn)); PQfreemem(n))
        for (int c = 0; c < STORAGE_CHANNELS; c++)
            if (strcmp(n->relname, channel_names[c]) == 0)
                l->heard(l->arg, (enum storage_channel)c, n->extra ? n->extra : "");
}

/* Sleeps until the socket has input (1), timeout_ms pass (0) or close asks to stop (-1). */
static int wait_input(struct storage_listener *l, int socket, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = socket, .events = POLLIN}};
    int n = poll(fds, socket >= 0 ? 2 : 1, timeout_ms);
    if (n < 0 && errno == EINTR) return 0;
    if (n < 0 || fds[0].revents) return -1;
    return n > 0;
}

/* Whether the connection still answers, after a quiet PING_MS. */
static int still_there(struct storage_listener *l)
{
    PGresult *r = PQexec(l->conn, "SELECT 1");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    deliver(l); /* what arrived with the answer */
    return ok;
}

static void *listen_main(void *arg)
{
    struct storage_listener *l = arg;
    for (;;) {
        if (atomic_load(&l->live)) {
            int input = wait_input(l, PQsocket(l->conn), PING_MS);
            if (input < 0) break;
            int ok = input ? PQconsumeInput(l->conn) : still_there(l);
            if (ok && PQstatus(l->conn) == CONNECTION_OK) {
                deliver(l);
                continue;
            }
            atomic_store(&l->live, 0);
            log_event("warn", "store", "the store's notifications stopped (%s); reconnecting",
                      PQerrorMessage(l->conn));
            continue;
        }
        if (wait_input(l, -1, RETRY_MS) < 0) break;
        const char *why;
        if (connect_and_listen(l, &why) != 0) continue;
        atomic_store(&l->live, 1);
        log_event("info", "store", "the store's notifications are back");
        for (int c = 0; c < STORAGE_CHANNELS; c++)
            l->heard(l->arg, (enum storage_channel)c, NULL);
    }
    return NULL;
}

struct storage_listener *storage_listen(const char *store, storage_heard_fn heard, void *arg,
                                        struct eng_error *err)
{
    struct storage_listener *l = calloc(1, sizeof *l);
    if (!l) {
        eng_no_memory(err);
        return NULL;
    }
    l->wake[0] = l->wake[1] = -1;
    if (!storage_is_postgresql_url(store)) return l;
    l->heard = heard;
    l->arg = arg;
    const char *why = "out of memory";
    if (!(l->url = strdup(store)) || pipe(l->wake) != 0) {
        eng_fail(err, ENG_INTERNAL, "storage: cannot start listening: %s", strerror(errno));
    } else if (connect_and_listen(l, &why) != 0) {
        eng_fail(err, ENG_INTERNAL, "storage: cannot LISTEN on the PostgreSQL store: %s", why);
    } else {
        atomic_init(&l->live, 1);
        l->started = pthread_create(&l->thread, NULL, listen_main, l) == 0;
        if (l->started) return l;
        eng_fail(err, ENG_INTERNAL, "storage: cannot start the listener's thread");
    }
    storage_listener_close(l);
    return NULL;
}

int storage_listening(struct storage_listener *l)
{
    return l->url && atomic_load(&l->live);
}

void storage_listener_close(struct storage_listener *l)
{
    if (!l) return;
    if (l->started) {
        /* One byte makes poll() return; nothing else reads the pipe. */
        while (write(l->wake[1], "x", 1) < 0 && errno == EINTR)
            ;
        pthread_join(l->thread, NULL);
    }
    if (l->wake[0] >= 0) close(l->wake[0]);
    if (l->wake[1] >= 0) close(l->wake[1]);
    PQfinish(l->conn);
    free(l->url);
    free(l);
}
