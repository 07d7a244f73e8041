/* The HTTP daemon: libmicrohttpd's thread pool reads requests, routes them, checks keys and
 * limits, collects bodies, and either answers at once (light routes) or hands the request to the
 * admission-controlled worker pool (heavy routes) while the connection sleeps. */
#ifndef AUGSERVE_HTTP_H
#define AUGSERVE_HTTP_H

#include <stddef.h>

#include "core/error.h"

struct app;
struct http_server;

/* Starts listening on app->cfg->listen. NULL with err filled on failure. */
struct http_server *http_start(struct app *app, struct eng_error *err);

/* The bound port (useful with port 0). */
int http_port(struct http_server *srv);

/* Stops accepting connections; open ones keep being served. */
void http_quiesce(struct http_server *srv);

/* Closes every connection and frees srv. Call only when no job is running in the worker pool. */
void http_stop(struct http_server *srv);

#endif
