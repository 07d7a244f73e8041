/* Header and body deadlines. libmicrohttpd closes a connection only after connection_timeout_s
 * without a byte, so a client that sends one byte every few seconds would hold a connection for
 * ever. Each connection is tracked here from its start to its close through the phases of its
 * requests; deadlines_check answers those past their deadline with a 408 and shuts their socket,
 * after which libmicrohttpd sees the stream end and closes the connection the usual way. */
#ifndef AUGSERVE_DEADLINES_H
#define AUGSERVE_DEADLINES_H

#include <stddef.h>

struct deadlines;
struct deadlines_conn;

enum deadlines_phase {
    DEADLINES_WAITING, /* for a request: header_timeout_s runs from the first byte of one */
    DEADLINES_HEADERS, /* its request line is in: header_timeout_s from its start runs on */
    DEADLINES_BODY,    /* its headers are in: body_timeout_s from now */
    DEADLINES_BUSY,    /* being handled or answered: no deadline of ours */
};

/* A timeout of 0 is none. NULL when memory runs out. */
struct deadlines *deadlines_new(int header_timeout_s, int body_timeout_s);
void deadlines_free(struct deadlines *d);

/* A new connection on socket fd, waiting for its first request. NULL when memory runs out: the
 * connection then has no deadlines. */
struct deadlines_conn *deadlines_open(struct deadlines *d, int fd);
/* Forgets c (NULL: nothing). Call it before the socket is closed, so that no check can touch a
 * descriptor that has been reused. */
void deadlines_close(struct deadlines *d, struct deadlines_conn *c);

/* Moves c (NULL: nothing) into phase. request_id names the request in a 408 of the body phase. */
void deadlines_enter(struct deadlines *d, struct deadlines_conn *c, enum deadlines_phase phase,
                     const char *request_id);

/* Whether c ran past a deadline; *sent is then the bytes of the 408's body that went out. */
int deadlines_timed_out(struct deadlines *d, const struct deadlines_conn *c, size_t *sent);

/* Answers and shuts every connection past its deadline. Call it a few times a second
 * (DEADLINES_CHECK_MS): that is how late a deadline may be noticed. */
#define DEADLINES_CHECK_MS 200
void deadlines_check(struct deadlines *d);

#endif
