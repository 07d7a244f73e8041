#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admission.h"
#include "app.h"
#include "auth.h"
#include "core/parse.h"
#include "deadlines.h"
#include "log.h"
#include "metrics.h"
#include "multipart.h"
#include "request.h"
#include "response.h"
#include "streams.h"
#include "uploads.h"
#include "watch.h"

/* libmicrohttpd builds a response's head in the connection's memory pool and, when it does not
 * fit, closes the connection without a word. A header value longer than this is left out, and
 * "<name>-Truncated: true" sent in its place. */
#define HEADER_VALUE_MAX 8192

/* The multipart part an upload route streams to its file (ROUTE_UPLOAD). */
#define UPLOAD_PART "archive"

/* We accept connections ourselves and hand them to libmicrohttpd (MHD_add_connection): stopping
 * to accept is then closing our own socket. libmicrohttpd's MHD_quiesce_daemon races with its
 * epoll workers over removing the listening socket and can abort the process (0.9.75). */
struct http_server {
    struct MHD_Daemon *daemon;
    struct app *app;
    int listen_fd;
    int stop_pipe[2]; /* written to end the accept thread */
    pthread_t acceptor;
    int accepting; /* the accept thread runs */
    struct deadlines *deadlines;
    struct streams *streams; /* streamed responses asleep between their pieces */
};

/* One request's life, from its request line to the end of its response. */
struct exchange {
    struct app *app;
    struct MHD_Connection *conn;
    struct deadlines *deadlines;
    struct streams *streams;
    struct deadlines_conn *deadline; /* the connection's; NULL: it has none */
    enum router_target target;       /* the request target as sent */
    char *query;                     /* the query string, undecoded; NULL when none */
    int started;                     /* its headers are in: the handler was called */
    struct request req;
    struct response resp;
    const struct route *route;
    char *path; /* our copy; route params point into it */
    char *method;
    char request_id[REQUEST_ID_MAX + 1];
    char client[64];
    struct timespec start;
    /* The body as it arrives: raw bytes, or parts through the multipart parser. */
    unsigned char *body;
    size_t body_size, body_capacity;
    struct multipart *multipart;
    /* An upload route's file (ROUTE_UPLOAD): open while the body arrives, removed at the end. */
    int upload_fd;
    char *upload_path;
    unsigned long long upload_bytes;
    /* An answer decided while the body was still arriving; sent once it has ended. */
    int early_error;
    int dispatched;     /* handed to a worker; resp is ready when the connection resumes */
    int answered;       /* a response is queued */
    int status_for_log; /* what the access log and metrics record */
    unsigned long long bytes_for_log;
    struct request_watch watch; /* a heavy request's deadline and client */
};

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* A client's X-Request-Id is echoed when it is short and plain, so it cannot inject anything into
 * logs or headers; otherwise we make one. */
static void choose_request_id(struct exchange *ex)
{
    const char *given = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given) {
        size_t len = strlen(given);
        int plain = len > 0 && len <= REQUEST_ID_MAX;
        for (size_t i = 0; plain && i < len; i++)
            plain = isalnum((unsigned char)given[i]) || strchr("-_.:", given[i]);
        if (plain) {
            memcpy(ex->request_id, given, len + 1);
            return;
        }
    }
    request_new_id(ex->request_id);
}

static void read_client_address(struct exchange *ex)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    ex->client[0] = '\0';
    if (!info || !info->client_addr) return;
    socklen_t len = info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : sizeof(struct sockaddr_in);
    if (getnameinfo(info->client_addr, len, ex->client, sizeof ex->client, NULL, 0,
                    NI_NUMERICHOST) != 0)
        ex->client[0] = '\0';
}

/* Closes an upload's file and removes it unless its handler kept it: build_request handed it over
 * (req.app set with it) and the handler took it (upload_path cleared). Before the answer goes, so
 * a client that has its answer finds no file left. */
static void upload_discard(struct exchange *ex)
{
    if (ex->upload_fd >= 0) close(ex->upload_fd);
    ex->upload_fd = -1;
    const int kept = ex->req.app && !ex->req.upload_path;
    if (ex->upload_path && !kept) unlink(ex->upload_path);
    free(ex->upload_path);
    ex->upload_path = NULL;
    ex->req.upload_path = NULL;
}

static void exchange_free(struct exchange *ex)
{
    multipart_free(ex->multipart);
    multipart_free_parts(ex->req.parts, ex->req.part_count);
    for (size_t i = 0; i < ex->req.query_count; i++) {
        free(ex->req.query[i].name);
        free(ex->req.query[i].value);
    }
    free(ex->req.query);
    free(ex->query);
    for (size_t i = 0; i < ex->req.header_count; i++) {
        free(ex->req.headers[i].name);
        free(ex->req.headers[i].value);
    }
    free(ex->req.headers);
    for (size_t i = 0; i < ex->req.params.count; i++)
        free(ex->req.param_values[i]);
    response_clear(&ex->resp);
    upload_discard(ex);
    free(ex->body);
    free(ex->path);
    free(ex->method);
    free(ex);
}

static void add_header(struct MHD_Response *mhd, const char *name, const char *value)
{
    if (strlen(value) <= HEADER_VALUE_MAX) {
        MHD_add_response_header(mhd, name, value);
        return;
    }
    char truncated[128];
    snprintf(truncated, sizeof truncated, "%s-Truncated", name);
    MHD_add_response_header(mhd, truncated, "true");
}

/* Queues ex->resp (or its error envelope) on the connection. */
static enum MHD_Result send_response(struct exchange *ex)
{
    upload_discard(ex);
    struct response *r = &ex->resp;
    struct MHD_Response *mhd;
    if (r->error_code) {
        char *envelope = response_error_body(r, ex->request_id);
        if (!envelope) return MHD_NO;
        ex->bytes_for_log = strlen(envelope);
        mhd = MHD_create_response_from_buffer(strlen(envelope), envelope, MHD_RESPMEM_MUST_FREE);
        if (!mhd) free(envelope);
    } else if (r->stream.read) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        mhd = streams_response(ex->streams, ex->conn, info ? info->connect_fd : -1, &r->stream);
    } else if (r->fd >= 0) {
        ex->bytes_for_log = r->fd_size;
        mhd = MHD_create_response_from_fd64(r->fd_size, r->fd);
        if (mhd) r->fd = -1; /* libmicrohttpd closes it */
    } else {
        ex->bytes_for_log = r->body_size;
        mhd = MHD_create_response_from_buffer(r->body_size, r->body ? r->body : (void *)"",
                                              r->body ? MHD_RESPMEM_MUST_FREE
                                                      : MHD_RESPMEM_PERSISTENT);
        if (mhd) r->body = NULL;
    }
    if (!mhd) return MHD_NO;
    if (r->content_type) MHD_add_response_header(mhd, "Content-Type", r->content_type);
    MHD_add_response_header(mhd, "X-Request-Id", ex->request_id);
    MHD_add_response_header(mhd, "X-Content-Type-Options", "nosniff");
    for (size_t i = 0; i < r->header_count; i++)
        add_header(mhd, r->headers[i].name, r->headers[i].value);
    if (atomic_load(&ex->app->shutting_down)) MHD_add_response_header(mhd, "Connection", "close");
    enum MHD_Result ok = MHD_queue_response(ex->conn, (unsigned)r->status, mhd);
    MHD_destroy_response(mhd);
    ex->answered = ok == MHD_YES;
    /* A client that closed the connection while its work ran gets nothing, as nginx counts it. */
    ex->status_for_log = watch_stopped(&ex->watch) == WATCH_CLIENT_CLOSED ? 499 : r->status;
    deadlines_enter(ex->deadlines, ex->deadline, DEADLINES_BUSY, NULL);
    return ok;
}

static enum MHD_Result send_error(struct exchange *ex, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct exchange *ex, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char message[sizeof ex->resp.error_message];
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    response_error(&ex->resp, status, "%s", message);
    return send_response(ex);
}

static int content_type_is(const char *value, const char *type)
{
    size_t len = strlen(type);
    return value && strncasecmp(value, type, len) == 0 &&
           (value[len] == '\0' || value[len] == ';' || value[len] == ' ');
}

struct framing {
    unsigned hosts;
    const char *length; /* the first Content-Length */
    int lengths_differ;
    int encoded; /* a Transfer-Encoding is present */
};

static enum MHD_Result scan_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct framing *f = cls;
    value = value ? value : "";
    if (strcasecmp(key, "Host") == 0)
        f->hosts++;
    else if (strcasecmp(key, "Transfer-Encoding") == 0)
        f->encoded = 1;
    else if (strcasecmp(key, "Content-Length") == 0 && !f->length)
        f->length = value;
    else if (strcasecmp(key, "Content-Length") == 0)
        f->lengths_differ |= strcmp(f->length, value) != 0;
    return MHD_YES;
}

/* What breaks RFC 9112's rules on a request's framing and Host, or NULL. A proxy in front of us
 * that read two different Content-Lengths, or one beside a Transfer-Encoding, another way than
 * libmicrohttpd would let a client smuggle a request past it; HTTP/1.1 needs exactly one Host. */
static const char *framing_error(struct MHD_Connection *conn, const char *version)
{
    struct framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_framing, &f);
    if (f.lengths_differ) return "the request has two different Content-Length headers";
    if (f.length && f.encoded) return "the request has both Content-Length and Transfer-Encoding";
    if (f.hosts > 1) return "the request has more than one Host header";
    if (f.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
        return "an HTTP/1.1 request needs a Host header";
    return NULL;
}

/* The body cap of the exchange's route. */
static unsigned long long body_cap(const struct exchange *ex)
{
    const struct config *cfg = ex->app->cfg;
    return (unsigned long long)(ex->route && (ex->route->flags & ROUTE_UPLOAD)
                                    ? cfg->max_dataset_bytes
                                    : cfg->max_body_bytes);
}

/* Writes a piece of an upload to its file: 0, or -1 with the answer set. */
static int upload_write(void *arg, const char *data, size_t size)
{
    struct exchange *ex = arg;
    while (size > 0) {
        ssize_t n = write(ex->upload_fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            log_event("error", "http", "cannot write the upload %s: %s", ex->upload_path,
                      strerror(errno));
            response_error(&ex->resp, 500, "the server cannot store the upload: %s",
                           strerror(n < 0 ? errno : ENOSPC));
            return -1;
        }
        data += n;
        size -= (size_t)n;
        ex->upload_bytes += (unsigned long long)n;
    }
    return 0;
}

/* Opens an upload route's file, this process's partial upload (uploads.h): 0, or -1 with the
 * answer set. */
static int upload_open(struct exchange *ex)
{
    ex->upload_fd = uploads_create(ex->app->cfg->data_dir, &ex->upload_path);
    if (ex->upload_fd >= 0) return 0;
    if (errno == ENOMEM) {
        response_no_memory(&ex->resp, "while reading the headers");
        return -1;
    }
    log_event("error", "http", "cannot create an upload in %s/uploads: %s", ex->app->cfg->data_dir,
              strerror(errno));
    response_error(&ex->resp, 500, "the server cannot store the upload: %s", strerror(errno));
    return -1;
}

/* Checks everything that can be checked from the headers alone, so that a request which is going
 * to be refused is refused before its body is read. */
static enum MHD_Result on_headers(struct exchange *ex, const char *version)
{
    struct app *app = ex->app;
    const struct config *cfg = app->cfg;
    if (atomic_load(&app->shutting_down)) {
        response_header(&ex->resp, "Retry-After", "1");
        return send_error(ex, 503, "the server is shutting down");
    }
    switch (ex->target) {
    case ROUTER_TARGET_OK:
        break;
    case ROUTER_TARGET_TOO_LONG:
        return send_error(ex, 414,
                          "the request target (path and query) is longer than "
                          "max_uri_bytes (%d bytes)",
                          cfg->max_uri_bytes);
    case ROUTER_TARGET_NUL:
        return send_error(ex, 400,
                          "the request target holds %%00, a NUL byte, which no path or "
                          "parameter may hold");
    }
    const char *framing = framing_error(ex->conn, version);
    if (framing) {
        /* Where this request's body ends is unclear, so nothing after it can be read. */
        response_header(&ex->resp, "Connection", "close");
        return send_error(ex, 400, "%s", framing);
    }
    char allow[64];
    switch (router_match(app->routes, app->route_count, ex->method, ex->path, &ex->route,
                         &ex->req.params, allow, sizeof allow)) {
    case ROUTER_FOUND:
        break;
    case ROUTER_METHOD_NOT_ALLOWED:
        response_header(&ex->resp, "Allow", "%s", allow);
        return send_error(ex, 405, "%s is not allowed on %s; allowed: %s", ex->method, ex->path,
                          allow);
    case ROUTER_NOT_FOUND:
        return send_error(ex, 404, "no such resource: %s", ex->path);
    }
    if (!(ex->route->flags & ROUTE_PUBLIC)) {
        const char *authorization =
            MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Authorization");
        switch (auth_check(cfg, authorization, ex->route->scope, &ex->req.key_name)) {
        case AUTH_OK:
            break;
        case AUTH_MISSING:
            response_header(&ex->resp, "WWW-Authenticate", "Bearer");
            return send_error(ex, 401,
                              "this resource needs an API key: send "
                              "\"Authorization: Bearer <key>\"");
        case AUTH_INVALID:
            response_header(&ex->resp, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
            return send_error(ex, 401, "the API key is not valid");
        case AUTH_FORBIDDEN:
            return send_error(ex, 403, "the API key lacks the \"%s\" scope",
                              auth_scope_name(ex->route->scope));
        }
    }
    const int upload = (ex->route->flags & ROUTE_UPLOAD) != 0;
    const char *length = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Content-Length");
    if (length) {
        unsigned long long declared;
        enum parse_result rc = parse_whole(length, 0, body_cap(ex), &declared);
        if (rc == PARSE_RANGE)
            return send_error(ex, 413, "the body is %s bytes; %s is %llu", length,
                              upload ? "max_dataset_bytes" : "max_body_bytes", body_cap(ex));
        if (rc == PARSE_OK && declared > 0 && !upload) ex->body_capacity = (size_t)declared;
    }
    if (upload && upload_open(ex) != 0) return send_response(ex);
    const char *type = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Content-Type");
    if (content_type_is(type, "multipart/form-data")) {
        switch (multipart_begin(type, (size_t)cfg->max_parts, &ex->multipart)) {
        case MULTIPART_OK:
            break;
        case MULTIPART_NO_MEMORY:
            response_no_memory(&ex->resp, "while reading the headers");
            return send_response(ex);
        default:
            return send_error(ex, 400,
                              "malformed multipart/form-data: the Content-Type header needs one "
                              "boundary parameter of 1 to 70 characters (RFC 2046, section "
                              "5.1.1)");
        }
        ex->body_capacity = 0;
        if (upload) multipart_stream_part(ex->multipart, UPLOAD_PART, upload_write, ex);
    }
    return MHD_YES;
}

/* The answer to a multipart body the parser refused, in its words. */
static void refuse_multipart(struct exchange *ex, enum multipart_status status)
{
    const char *why = multipart_error(ex->multipart);
    switch (status) {
    case MULTIPART_MALFORMED:
    case MULTIPART_NESTED:
        response_error(&ex->resp, 400, "%s", why);
        break;
    case MULTIPART_TOO_MANY_PARTS:
        response_error(&ex->resp, 413, "%s", why);
        break;
    case MULTIPART_SINK_FAILED:
        break; /* upload_write has answered */
    case MULTIPART_OK:
    case MULTIPART_NO_MEMORY:
        response_no_memory(&ex->resp, "while reading the body");
        break;
    }
}

/* Takes the next piece of the body. Returns MHD_NO only to drop the connection. */
static enum MHD_Result on_body_data(struct exchange *ex, const char *data, size_t size)
{
    const struct config *cfg = ex->app->cfg;
    if (ex->early_error) return MHD_YES; /* the body of a refused request is skipped */
    size_t total = ex->body_size + size;
    if (total > body_cap(ex)) {
        /* Only bodies without Content-Length get here. libmicrohttpd cannot answer before the
         * body has ended, so drop the connection rather than read on past the cap (an upload's
         * partial file goes with the exchange). */
        ex->status_for_log = 413;
        return MHD_NO;
    }
    if (ex->multipart) {
        ex->body_size = total; /* counted for the cap; the parser keeps the bytes */
        enum multipart_status status = multipart_feed(ex->multipart, data, size);
        /* Beside an upload's streamed part, what the parser holds in memory keeps the usual cap. */
        if (status == MULTIPART_OK && total - ex->upload_bytes > (size_t)cfg->max_body_bytes) {
            response_error(&ex->resp, 413,
                           "the parts beside \"" UPLOAD_PART "\" are over max_body_bytes (%lld)",
                           (long long)cfg->max_body_bytes);
            ex->early_error = 1;
            return MHD_YES;
        }
        if (status == MULTIPART_OK) return MHD_YES;
        refuse_multipart(ex, status);
        ex->early_error = 1;
        return MHD_YES;
    }
    if (ex->upload_fd >= 0) {
        ex->body_size = total;
        if (upload_write(ex, data, size) != 0) ex->early_error = 1;
        return MHD_YES;
    }
    if (!ex->body || total > ex->body_capacity) {
        /* Content-Length, when sent, sized the buffer already; otherwise grow by doubling. */
        size_t capacity = ex->body_capacity ? ex->body_capacity : 4096;
        while (capacity < total)
            capacity *= 2;
        if (capacity > (size_t)cfg->max_body_bytes) capacity = total;
        unsigned char *grown = realloc(ex->body, capacity);
        if (!grown) {
            response_no_memory(&ex->resp, "while reading the body");
            ex->early_error = 1;
            return MHD_YES;
        }
        ex->body = grown;
        ex->body_capacity = capacity;
    }
    memcpy(ex->body + ex->body_size, data, size);
    ex->body_size = total;
    return MHD_YES;
}

/* Appends a copy of name and value; -1 when memory runs out. */
static int kv_append(struct request_kv **items, size_t *count, const char *name, const char *value)
{
    struct request_kv *grown = realloc(*items, (*count + 1) * sizeof *grown);
    if (!grown) return -1;
    *items = grown;
    grown[*count].name = strdup(name);
    grown[*count].value = strdup(value ? value : "");
    (*count)++;
    return grown[*count - 1].name && grown[*count - 1].value ? 0 : -1;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct request *req = cls;
    return kv_append(&req->headers, &req->header_count, key, value) == 0 ? MHD_YES : MHD_NO;
}

static int copy_query(void *arg, const char *name, const char *value)
{
    struct request *req = arg;
    return kv_append(&req->query, &req->query_count, name, value);
}

/* Fills ex->req with what the handler needs, copied out of the connection. */
static int build_request(struct exchange *ex)
{
    struct request *req = &ex->req;
    req->app = ex->app;
    req->upload_path = ex->upload_path;
    req->upload_size = ex->upload_bytes;
    req->method = ex->method;
    req->path = ex->path;
    req->request_id = ex->request_id;
    int headers = MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, copy_header, req);
    if (headers < 0 || (size_t)headers != req->header_count) return -1;
    if (ex->query && router_parse_query(ex->query, copy_query, req) != 0) return -1;
    for (size_t i = 0; i < req->params.count; i++) {
        req->param_values[i] = strndup(req->params.items[i].value, req->params.items[i].value_len);
        if (!req->param_values[i]) return -1;
    }
    if (ex->multipart) {
        /* On failure the parser stays for on_complete's message; exchange_free frees it. */
        enum multipart_status status = multipart_end(ex->multipart, &req->parts, &req->part_count);
        if (status != MULTIPART_OK) return (int)status;
        req->upload_part = ex->upload_path && request_part(req, UPLOAD_PART) != NULL;
    } else {
        req->body = ex->body;
        req->body_size = ex->body_size;
    }
    return 0;
}

static void run_handler(void *arg)
{
    struct exchange *ex = arg;
    ex->route->handler(&ex->req, &ex->resp);
    if (ex->route->flags & ROUTE_HEAVY) MHD_resume_connection(ex->conn);
}

/* A heavy request on a worker: its work stops at its deadline or when its client goes. */
static void run_heavy(void *arg)
{
    struct exchange *ex = arg;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    watch_start(&ex->watch, &ex->start, ex->app->cfg->request_timeout_s,
                info ? info->connect_fd : -1);
    eng_cancel_install(&ex->watch.cancel);
    ex->route->handler(&ex->req, &ex->resp);
    /* Counted before the connection resumes: the client may read /metrics as soon as it has its
     * answer, and the exchange may be gone after. */
    enum watch_stop stop = watch_stopped(&ex->watch);
    if (stop != WATCH_RUNNING)
        metrics_count_stop(ex->app->metrics, stop == WATCH_DEADLINE ? METRICS_STOP_DEADLINE
                                                                    : METRICS_STOP_CLIENT_CLOSED);
    MHD_resume_connection(ex->conn);
    eng_cancel_install(NULL);
}

/* The body has ended: run the handler here or on a worker. */
static enum MHD_Result on_complete(struct exchange *ex)
{
    deadlines_enter(ex->deadlines, ex->deadline, DEADLINES_BUSY, NULL);
    if (ex->dispatched) return send_response(ex); /* back from a worker */
    if (ex->early_error) return send_response(ex);
    int built = build_request(ex);
    if (built > 0) {
        refuse_multipart(ex, (enum multipart_status)built);
        return send_response(ex);
    }
    if (built != 0)
        return send_error(ex, response_status_for(ENG_NO_MEMORY),
                          "out of memory while reading the request");
    if (!(ex->route->flags & ROUTE_HEAVY)) {
        run_handler(ex);
        return send_response(ex);
    }
    /* Suspend before handing over, so the worker's resume always finds a suspended connection. */
    MHD_suspend_connection(ex->conn);
    ex->dispatched = 1;
    if (admission_submit(ex->app->admission, run_heavy, ex) != 0) {
        response_header(&ex->resp, "Retry-After", "1");
        response_error(&ex->resp, 429,
                       "the server is at capacity (%d workers busy, queue full); "
                       "retry later",
                       ex->app->workers);
        MHD_resume_connection(ex->conn);
    }
    return MHD_YES;
}

/* The connection's deadlines, which on_connection gave it. */
static struct deadlines_conn *connection_deadline(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* A request line has come in: the exchange begins here, with the target as the client sent it,
 * before libmicrohttpd decodes anything. libmicrohttpd would store each query parameter in the
 * connection's memory pool, and 0.9.75 meets a pool too small for them (2,000 parameters in 16
 * KB) with a 431 it never sends, holding the connection until it times out. So it is given no
 * parameters: its copy of the target ends at the '?', and router_parse_query reads ours. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *srv = cls;
    struct deadlines_conn *deadline = connection_deadline(conn);
    deadlines_enter(srv->deadlines, deadline, DEADLINES_HEADERS, NULL);
    struct exchange *ex = calloc(1, sizeof *ex);
    char *query = strchr(uri, '?');
    if (ex) {
        clock_gettime(CLOCK_MONOTONIC, &ex->start);
        response_init(&ex->resp);
        ex->app = srv->app;
        ex->resp.max_body = (unsigned long long)ex->app->cfg->max_response_bytes;
        ex->conn = conn;
        ex->deadlines = srv->deadlines;
        ex->streams = srv->streams;
        ex->deadline = deadline;
        ex->status_for_log = 499; /* the client went away before an answer, as nginx counts it */
        ex->upload_fd = -1;
        ex->target = router_check_target(uri, (size_t)srv->app->cfg->max_uri_bytes);
        if (query && ex->target == ROUTER_TARGET_OK && !(ex->query = strdup(query + 1))) {
            free(ex);
            ex = NULL;
        }
    }
    /* The callback's text is the connection's own buffer, which libmicrohttpd parses next. */
    if (query) query[1] = '\0';
    return ex;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct exchange *ex = *con_cls;
    if (!ex) return MHD_NO; /* on_uri ran out of memory */
    if (!ex->started) {
        ex->started = 1;
        ex->path = strdup(url);
        ex->method = strdup(method);
        atomic_fetch_add(&ex->app->in_flight, 1);
        if (!ex->path || !ex->method) return MHD_NO;
        choose_request_id(ex);
        read_client_address(ex);
        deadlines_enter(ex->deadlines, ex->deadline, DEADLINES_BODY, ex->request_id);
        return on_headers(ex, version);
    }
    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        return on_body_data(ex, upload_data, size);
    }
    return on_complete(ex);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct exchange *ex = *con_cls;
    if (!ex) return;
    *con_cls = NULL;
    size_t sent;
    int timed_out = deadlines_timed_out(ex->deadlines, ex->deadline, &sent);
    deadlines_enter(ex->deadlines, ex->deadline, DEADLINES_WAITING, NULL);
    /* libmicrohttpd refused it before its headers were in (a 431 of its own), or it timed out
     * there: no request to log. */
    if (!ex->started) {
        exchange_free(ex);
        return;
    }
    if (timed_out) {
        ex->status_for_log = 408;
        ex->bytes_for_log = sent;
        ex->answered = 1;
    }
    struct app *app = cls;
    double seconds = seconds_since(&ex->start);
    const char *route = ex->route ? ex->route->pattern : "unmatched";
    const char *method = ex->method ? ex->method : "?";
    metrics_observe(app->metrics, route, method, ex->status_for_log, seconds);
    struct access_entry entry = {
        .request_id = ex->request_id,
        .method = method,
        .path = ex->path ? ex->path : "?",
        .status = ex->status_for_log,
        .bytes = ex->answered ? ex->bytes_for_log : 0,
        .duration_s = seconds,
        .client = ex->client[0] ? ex->client : NULL,
        .key_name = ex->req.key_name,
    };
    access_log_write(app->access_log, &entry);
    atomic_fetch_sub(&app->in_flight, 1);
    exchange_free(ex);
}

/* Connections come and go: each gets its deadlines (its socket context) for its lifetime. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = info ? deadlines_open(srv->deadlines, info->connect_fd) : NULL;
        return;
    }
    /* Before libmicrohttpd closes the socket, whose number may then be reused at once. */
    deadlines_close(srv->deadlines, *socket_context);
    *socket_context = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char message[512];
    vsnprintf(message, sizeof message, fmt, ap);
    size_t len = strlen(message);
    while (len > 0 && message[len - 1] == '\n')
        message[--len] = '\0';
    log_event("warn", "http", "%s", message);
}

/* "host:port" or "[v6]:port" to a socket address. */
static int resolve_listen(const char *listen, struct sockaddr_storage *addr, struct eng_error *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    size_t host_len = colon ? (size_t)(colon - listen) : 0;
    if (!colon || host_len == 0 || host_len >= sizeof host) {
        eng_fail(err, ENG_INTERNAL, "listen: \"%s\" is not host:port", listen);
        return -1;
    }
    memcpy(host, listen, host_len);
    host[host_len] = '\0';
    if (host[0] == '[' && host[host_len - 1] == ']') {
        memmove(host, host + 1, host_len - 2);
        host[host_len - 2] = '\0';
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &found);
    if (rc != 0) {
        eng_fail(err, ENG_INTERNAL, "listen: cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    memset(addr, 0, sizeof *addr);
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    return 0;
}

/* Hands each accepted connection to a libmicrohttpd worker until stop_pipe is written, and checks
 * the connections' deadlines between times (so they are no longer enforced once the server stops
 * accepting: the shutdown grace bounds what is left). */
static void *accept_loop(void *arg)
{
    struct http_server *srv = arg;
    struct pollfd fds[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                            {.fd = srv->stop_pipe[0], .events = POLLIN}};
    struct timespec checked;
    clock_gettime(CLOCK_MONOTONIC, &checked);
    for (;;) {
        int ready = poll(fds, 2, DEADLINES_CHECK_MS);
        if (seconds_since(&checked) * 1000 >= DEADLINES_CHECK_MS) {
            deadlines_check(srv->deadlines);
            clock_gettime(CLOCK_MONOTONIC, &checked);
        }
        if (ready < 0) {
            if (errno == EINTR) continue;
            log_event("error", "accept", "poll failed: %s", strerror(errno));
            return NULL;
        }
        if (fds[1].revents) return NULL;
        if (ready == 0) continue;
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(srv->listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            /* The client gave up, or descriptors ran out for a moment: keep serving. */
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_event("warn", "accept", "accept failed: %s", strerror(errno));
            if (errno == EMFILE || errno == ENFILE) poll(NULL, 0, 10);
            continue;
        }
        /* At connection_limit, or max_connections_per_client from its address, libmicrohttpd
         * refuses it and closes the socket. */
        MHD_add_connection(srv->daemon, fd, (struct sockaddr *)&addr, len);
    }
}

static int open_listener(const struct sockaddr_storage *addr, struct eng_error *err,
                         const char *listen_text)
{
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        eng_fail(err, ENG_INTERNAL, "listen: cannot listen on %s: %s", listen_text,
                 strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

struct http_server *http_start(struct app *app, struct eng_error *err)
{
    const struct config *cfg = app->cfg;
    struct sockaddr_storage addr;
    if (resolve_listen(cfg->listen, &addr, err) != 0) return NULL;
    struct http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        eng_no_memory(err);
        return NULL;
    }
    srv->app = app;
    srv->stop_pipe[0] = srv->stop_pipe[1] = srv->listen_fd = -1;
    srv->deadlines = deadlines_new(cfg->header_timeout_s, cfg->body_timeout_s);
    if (!srv->deadlines) {
        free(srv);
        eng_no_memory(err);
        return NULL;
    }
    srv->streams = streams_start();
    if (!srv->streams) {
        eng_fail(err, ENG_INTERNAL, "cannot start the streams thread");
        goto fail;
    }
    srv->listen_fd = open_listener(&addr, err, cfg->listen);
    if (srv->listen_fd < 0) goto fail;
    if (pipe2(srv->stop_pipe, O_CLOEXEC) != 0) {
        eng_fail(err, ENG_INTERNAL, "pipe: %s", strerror(errno));
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, app,
        /* The logger comes first so that no message goes to libmicrohttpd's own. */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->io_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->connection_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)cfg->connection_memory_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections_per_client, MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_END);
    if (!srv->daemon) {
        eng_fail(err, ENG_INTERNAL, "cannot start the HTTP daemon");
        goto fail;
    }
    if (pthread_create(&srv->acceptor, NULL, accept_loop, srv) != 0) {
        eng_fail(err, ENG_INTERNAL, "cannot start the accept thread");
        goto fail;
    }
    srv->accepting = 1;
    return srv;
fail:
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    if (srv->stop_pipe[0] >= 0) close(srv->stop_pipe[0]);
    if (srv->stop_pipe[1] >= 0) close(srv->stop_pipe[1]);
    streams_stop(srv->streams);
    deadlines_free(srv->deadlines);
    free(srv);
    return NULL;
}

int http_port(struct http_server *srv)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(srv->listen_fd, (struct sockaddr *)&addr, &len) != 0) return -1;
    return ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                            : ((struct sockaddr_in *)&addr)->sin_port);
}

void http_quiesce(struct http_server *srv)
{
    if (!srv->accepting) return;
    char byte = 'q';
    while (write(srv->stop_pipe[1], &byte, 1) < 0 && errno == EINTR) {
    }
    pthread_join(srv->acceptor, NULL);
    srv->accepting = 0;
    close(srv->listen_fd);
    srv->listen_fd = -1;
}

void http_stop(struct http_server *srv)
{
    if (!srv) return;
    http_quiesce(srv);
    streams_stop(srv->streams);
    MHD_stop_daemon(srv->daemon);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    deadlines_free(srv->deadlines);
    free(srv);
}
