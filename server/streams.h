/* Streamed responses (Server-Sent Events): a body that comes as it is made, for as long as it
 * takes, without holding a thread. libmicrohttpd asks the body for bytes on its I/O thread; when
 * there are none, the connection is suspended and joins the sleepers here. One thread polls the
 * sleepers a few times a second (the body's poll) and resumes those that have something to send,
 * or whose client has gone (which a suspended connection would otherwise never notice).
 *
 * No deadline of ours applies to a stream: it is past its headers and body (deadlines.c), it is no
 * heavy request (watch.c), and libmicrohttpd's connection_timeout_s does not run while the
 * connection sleeps; a body that may stay quiet for long sends heartbeats (a comment in SSE). */
#ifndef AUGSERVE_STREAMS_H
#define AUGSERVE_STREAMS_H

#include <microhttpd.h>

#include "response.h"

struct streams;

/* Starts the polling thread. NULL when it cannot. */
struct streams *streams_start(void);

/* Ends every stream: sleepers are resumed and end their bodies; a stream woken later ends at
 * once. Then stops the thread and frees s (NULL: nothing). Call before MHD_stop_daemon, which
 * must find no connection suspended. */
void streams_stop(struct streams *s);

/* A libmicrohttpd response for the stream on conn (socket fd, -1 if unknown); takes over stream
 * whatever happens (freed with the response, or at once on failure). NULL on failure. */
struct MHD_Response *streams_response(struct streams *s, struct MHD_Connection *conn, int fd,
                                      struct response_stream *stream);

#endif
