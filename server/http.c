#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/rand.h>
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
#include "log.h"
#include "metrics.h"
#include "multipart.h"
#include "request.h"
#include "response.h"

#define REQUEST_ID_MAX 128

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
};

/* One request's life, from its headers to the end of its response. */
struct exchange {
    struct app *app;
    struct MHD_Connection *conn;
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
    /* An answer decided while the body was still arriving; sent once it has ended. */
    int early_error;
    int dispatched;     /* handed to a worker; resp is ready when the connection resumes */
    int answered;       /* a response is queued */
    int status_for_log; /* what the access log and metrics record */
    unsigned long long bytes_for_log;
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
    unsigned char random[12];
    if (RAND_bytes(random, sizeof random) != 1) {
        /* Uniqueness matters more than unpredictability here. */
        static atomic_ulong fallback;
        snprintf(ex->request_id, sizeof ex->request_id, "r%lx-%lu", (unsigned long)time(NULL),
                 atomic_fetch_add(&fallback, 1));
        return;
    }
    for (size_t i = 0; i < sizeof random; i++)
        snprintf(ex->request_id + 2 * i, 3, "%02x", random[i]);
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

static void exchange_free(struct exchange *ex)
{
    multipart_free(ex->multipart);
    multipart_free_parts(ex->req.parts, ex->req.part_count);
    for (size_t i = 0; i < ex->req.query_count; i++) {
        free(ex->req.query[i].name);
        free(ex->req.query[i].value);
    }
    free(ex->req.query);
    for (size_t i = 0; i < ex->req.header_count; i++) {
        free(ex->req.headers[i].name);
        free(ex->req.headers[i].value);
    }
    free(ex->req.headers);
    for (size_t i = 0; i < ex->req.params.count; i++)
        free(ex->req.param_values[i]);
    response_clear(&ex->resp);
    free(ex->body);
    free(ex->path);
    free(ex->method);
    free(ex);
}

/* Queues ex->resp (or its error envelope) on the connection. */
static enum MHD_Result send_response(struct exchange *ex)
{
    struct response *r = &ex->resp;
    struct MHD_Response *mhd;
    if (r->error_code) {
        char *envelope = response_error_body(r, ex->request_id);
        if (!envelope) return MHD_NO;
        ex->bytes_for_log = strlen(envelope);
        mhd = MHD_create_response_from_buffer(strlen(envelope), envelope, MHD_RESPMEM_MUST_FREE);
        if (!mhd) free(envelope);
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
        MHD_add_response_header(mhd, r->headers[i].name, r->headers[i].value);
    if (atomic_load(&ex->app->shutting_down)) MHD_add_response_header(mhd, "Connection", "close");
    enum MHD_Result ok = MHD_queue_response(ex->conn, (unsigned)r->status, mhd);
    MHD_destroy_response(mhd);
    ex->answered = ok == MHD_YES;
    ex->status_for_log = r->status;
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

/* Checks everything that can be checked from the headers alone, so that a request which is going
 * to be refused is refused before its body is read. */
static enum MHD_Result on_headers(struct exchange *ex)
{
    struct app *app = ex->app;
    const struct config *cfg = app->cfg;
    if (atomic_load(&app->shutting_down)) {
        response_header(&ex->resp, "Retry-After", "1");
        return send_error(ex, 503, "the server is shutting down");
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
    const char *length = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Content-Length");
    if (length) {
        unsigned long long declared;
        enum parse_result rc =
            parse_whole(length, 0, (unsigned long long)cfg->max_body_bytes, &declared);
        if (rc == PARSE_RANGE)
            return send_error(ex, 413, "the body is %s bytes; max_body_bytes is %lld", length,
                              (long long)cfg->max_body_bytes);
        if (rc == PARSE_OK && declared > 0) ex->body_capacity = (size_t)declared;
    }
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
    if (total > (size_t)cfg->max_body_bytes) {
        /* Only bodies without Content-Length get here. libmicrohttpd cannot answer before the
         * body has ended, so drop the connection rather than read on past the cap. */
        ex->status_for_log = 413;
        return MHD_NO;
    }
    if (ex->multipart) {
        ex->body_size = total; /* counted for the cap; the parser keeps the bytes */
        enum multipart_status status = multipart_feed(ex->multipart, data, size);
        if (status == MULTIPART_OK) return MHD_YES;
        refuse_multipart(ex, status);
        ex->early_error = 1;
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

static enum MHD_Result copy_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    struct exchange *ex = cls;
    struct request_kv **items = kind == MHD_HEADER_KIND ? &ex->req.headers : &ex->req.query;
    size_t *count = kind == MHD_HEADER_KIND ? &ex->req.header_count : &ex->req.query_count;
    struct request_kv *grown = realloc(*items, (*count + 1) * sizeof *grown);
    if (!grown) return MHD_NO;
    *items = grown;
    grown[*count].name = strdup(key);
    grown[*count].value = strdup(value ? value : "");
    (*count)++;
    return grown[*count - 1].name && grown[*count - 1].value ? MHD_YES : MHD_NO;
}

/* Fills ex->req with what the handler needs, copied out of the connection. */
static int build_request(struct exchange *ex)
{
    struct request *req = &ex->req;
    req->app = ex->app;
    req->method = ex->method;
    req->path = ex->path;
    req->request_id = ex->request_id;
    int headers = MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, copy_kv, ex);
    int query = MHD_get_connection_values(ex->conn, MHD_GET_ARGUMENT_KIND, copy_kv, ex);
    if (headers < 0 || query < 0 || (size_t)headers != req->header_count ||
        (size_t)query != req->query_count)
        return -1;
    for (size_t i = 0; i < req->params.count; i++) {
        req->param_values[i] = strndup(req->params.items[i].value, req->params.items[i].value_len);
        if (!req->param_values[i]) return -1;
    }
    if (ex->multipart) {
        /* On failure the parser stays for on_complete's message; exchange_free frees it. */
        enum multipart_status status = multipart_end(ex->multipart, &req->parts, &req->part_count);
        if (status != MULTIPART_OK) return (int)status;
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

/* The body has ended: run the handler here or on a worker. */
static enum MHD_Result on_complete(struct exchange *ex)
{
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
    if (admission_submit(ex->app->admission, run_handler, ex) != 0) {
        response_header(&ex->resp, "Retry-After", "1");
        response_error(&ex->resp, 429,
                       "the server is at capacity (%d workers busy, queue full); "
                       "retry later",
                       ex->app->workers);
        MHD_resume_connection(ex->conn);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct exchange *ex = *con_cls;
    if (!ex) {
        ex = calloc(1, sizeof *ex);
        if (!ex) return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &ex->start);
        response_init(&ex->resp);
        ex->app = cls;
        ex->conn = conn;
        ex->path = strdup(url);
        ex->method = strdup(method);
        ex->status_for_log = 499; /* the client went away before an answer, as nginx counts it */
        *con_cls = ex;
        atomic_fetch_add(&ex->app->in_flight, 1);
        if (!ex->path || !ex->method) return MHD_NO;
        choose_request_id(ex);
        read_client_address(ex);
        return on_headers(ex);
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
    *con_cls = NULL;
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

/* Hands each accepted connection to a libmicrohttpd worker until stop_pipe is written. */
static void *accept_loop(void *arg)
{
    struct http_server *srv = arg;
    struct pollfd fds[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                            {.fd = srv->stop_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            log_event("error", "accept", "poll failed: %s", strerror(errno));
            return NULL;
        }
        if (fds[1].revents) return NULL;
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
        /* At connection_limit libmicrohttpd refuses it and closes the socket. */
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
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
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
        (size_t)cfg->connection_memory_limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
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
    MHD_stop_daemon(srv->daemon);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    free(srv);
}
