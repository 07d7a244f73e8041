/* Unit tests of server/multipart.c. The parser needs a real MHD_Connection, so the test runs its
 * own libmicrohttpd daemon on 127.0.0.1 whose handler uses multipart_begin/feed/end the way
 * server/http.c does, and sends hand-built multipart bodies with libcurl, byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "multipart.h"
#include "request.h"

#define BOUNDARY     "augserveTestBoundary7MA4YWxkTrZu0gW"
#define DASH         "--" BOUNDARY
#define CRLF         "\r\n"
#define DEFAULT_MAX  16
#define MAX_PARTS_HD "X-Max-Parts" /* how the test tells the handler its max_parts */

/* What the handler saw of the last request. */
struct outcome {
    int requests;
    int begun; /* multipart_begin returned a parser */
    enum multipart_status status;
    struct request_part *parts; /* handed over by multipart_end, freed by the test */
    size_t count;
    size_t feed_calls;
    size_t body_bytes;
};

static pthread_mutex_t outcome_lock = PTHREAD_MUTEX_INITIALIZER;
static struct outcome outcome;
/* When nonzero, the handler feeds each body chunk to the parser in pieces of this many bytes,
 * so a test sees every way a client's writes can split a body (guarded by outcome_lock). */
static size_t feed_piece;

static struct MHD_Daemon *daemon_handle;
static unsigned short port;

/* One request's state on the server side, like http.c's exchange. */
struct exchange {
    struct multipart *mp;
    enum multipart_status status; /* the first failure, as http.c's early_error */
    size_t feed_calls, body_bytes;
};

static void record(int begun, enum multipart_status status, struct request_part *parts,
                   size_t count, const struct exchange *ex)
{
    pthread_mutex_lock(&outcome_lock);
    outcome.requests++;
    outcome.begun = begun;
    outcome.status = status;
    multipart_free_parts(outcome.parts, outcome.count);
    outcome.parts = parts;
    outcome.count = count;
    outcome.feed_calls = ex ? ex->feed_calls : 0;
    outcome.body_bytes = ex ? ex->body_bytes : 0;
    pthread_mutex_unlock(&outcome_lock);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static unsigned http_status_of(enum multipart_status status)
{
    switch (status) {
    case MULTIPART_OK:
        return 200;
    case MULTIPART_TOO_MANY_PARTS:
        return 413;
    case MULTIPART_MALFORMED:
        return 400;
    case MULTIPART_NO_MEMORY:
        break;
    }
    return 503;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct exchange *ex = *con_cls;
    if (!ex) {
        ex = calloc(1, sizeof *ex);
        if (!ex) return MHD_NO;
        *con_cls = ex;
        const char *max = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MAX_PARTS_HD);
        size_t max_parts = max ? strtoul(max, NULL, 10) : DEFAULT_MAX;
        ex->mp = multipart_begin(conn, max_parts);
        if (!ex->mp) {
            /* http.c answers 400 at once, before the body. */
            record(0, MULTIPART_MALFORMED, NULL, 0, NULL);
            return reply(conn, 400);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        ex->feed_calls++;
        ex->body_bytes += size;
        pthread_mutex_lock(&outcome_lock);
        size_t piece = feed_piece ? feed_piece : size;
        pthread_mutex_unlock(&outcome_lock);
        /* After a failure the rest of the body is skipped, as http.c does. */
        for (size_t at = 0; at < size && ex->status == MULTIPART_OK; at += piece)
            ex->status =
                multipart_feed(ex->mp, upload_data + at, size - at < piece ? size - at : piece);
        return MHD_YES;
    }
    if (ex->status != MULTIPART_OK) {
        record(1, ex->status, NULL, 0, ex);
        return reply(conn, http_status_of(ex->status));
    }
    struct request_part *parts = NULL;
    size_t count = 0;
    enum multipart_status status = multipart_end(ex->mp, &parts, &count);
    ex->mp = NULL;
    record(1, status, parts, count, ex);
    return reply(conn, http_status_of(status));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct exchange *ex = *con_cls;
    if (!ex) return;
    multipart_abort(ex->mp);
    free(ex);
    *con_cls = NULL;
}

static int start_server(void **state)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    daemon_handle =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                         on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!daemon_handle) return -1;
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) return -1;
    port = info->port;
    return 0;
}

static int stop_server(void **state)
{
    MHD_stop_daemon(daemon_handle);
    multipart_free_parts(outcome.parts, outcome.count);
    memset(&outcome, 0, sizeof outcome);
    curl_global_cleanup();
    return 0;
}

static size_t discard(char *data, size_t size, size_t n, void *user)
{
    return size * n;
}

/* POSTs body with the given Content-Type (NULL: multipart/form-data with BOUNDARY) and max_parts
 * (0: the default); returns the HTTP status. */
static long post(const void *body, size_t size, const char *content_type, size_t max_parts)
{
    pthread_mutex_lock(&outcome_lock);
    multipart_free_parts(outcome.parts, outcome.count);
    memset(&outcome, 0, sizeof outcome);
    pthread_mutex_unlock(&outcome_lock);

    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    char url[64], type[256], max[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/upload", port);
    snprintf(type, sizeof type, "Content-Type: %s",
             content_type ? content_type : "multipart/form-data; boundary=" BOUNDARY);
    struct curl_slist *headers = curl_slist_append(NULL, type);
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    if (max_parts) {
        snprintf(max, sizeof max, MAX_PARTS_HD ": %zu", max_parts);
        headers = curl_slist_append(headers, max);
    }
    assert_non_null(headers);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) fail_msg("curl: %s", curl_easy_strerror(rc));
    pthread_mutex_lock(&outcome_lock);
    int requests = outcome.requests;
    pthread_mutex_unlock(&outcome_lock);
    assert_int_equal(requests, 1);
    return status;
}

/* A growing body built from pieces. */
struct body {
    unsigned char *data;
    size_t size, capacity;
};

static void add(struct body *b, const void *data, size_t size)
{
    if (b->size + size > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 1024;
        while (capacity < b->size + size)
            capacity *= 2;
        unsigned char *grown = realloc(b->data, capacity);
        assert_non_null(grown);
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, data, size);
    b->size += size;
}

static void add_str(struct body *b, const char *s)
{
    add(b, s, strlen(s));
}

/* One part: delimiter, headers, blank line, value and the CRLF that ends it. */
static void add_part(struct body *b, const char *name, const char *filename,
                     const char *content_type, const void *value, size_t size)
{
    char headers[512];
    int n = snprintf(
        headers, sizeof headers, DASH CRLF "Content-Disposition: form-data; name=\"%s\"%s%s%s" CRLF,
        name, filename ? "; filename=\"" : "", filename ? filename : "", filename ? "\"" : "");
    assert_true(n > 0 && (size_t)n < sizeof headers);
    add_str(b, headers);
    if (content_type) {
        add_str(b, "Content-Type: ");
        add_str(b, content_type);
        add_str(b, CRLF);
    }
    add_str(b, CRLF);
    add(b, value, size);
    add_str(b, CRLF);
}

static void add_close(struct body *b)
{
    add_str(b, DASH "--" CRLF);
}

static void assert_part(const struct request_part *p, const char *name, const char *filename,
                        const char *content_type, const void *value, size_t size)
{
    assert_non_null(p->name);
    assert_string_equal(p->name, name);
    if (filename) {
        assert_non_null(p->filename);
        assert_string_equal(p->filename, filename);
    } else {
        assert_null(p->filename);
    }
    if (content_type) {
        assert_non_null(p->content_type);
        assert_string_equal(p->content_type, content_type);
    } else {
        assert_null(p->content_type);
    }
    assert_int_equal(p->size, size);
    if (size) assert_memory_equal(p->data, value, size);
    /* Values are terminated so form fields read as strings. */
    assert_non_null(p->data);
    assert_int_equal(p->data[size], '\0');
}

static void test_fields_and_file(void **state)
{
    struct body b = {0};
    add_part(&b, "alpha", NULL, NULL, "first value", 11);
    add_part(&b, "beta", NULL, NULL, "2", 1);
    const char file[] = "col1,col2\n1,2\n3,4\n";
    add_part(&b, "upload", "data.csv", "text/csv", file, sizeof file - 1);
    add_close(&b);
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_true(outcome.begun);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 3);
    assert_part(&outcome.parts[0], "alpha", NULL, NULL, "first value", 11);
    assert_part(&outcome.parts[1], "beta", NULL, NULL, "2", 1);
    assert_part(&outcome.parts[2], "upload", "data.csv", "text/csv", file, sizeof file - 1);
    free(b.data);
}

/* However the body is split into the parser's input, every part arrives once and whole. (The
 * post processor can announce a field before its value and then again with it; node's fetch
 * splits bodies that way.) */
static void test_split_anywhere(void **state)
{
    struct body b = {0};
    add_part(&b, "alpha", NULL, NULL, "first value", 11);
    add_part(&b, "seed", NULL, NULL, "1", 1);
    const char file[] = "col1,col2\n1,2\n";
    add_part(&b, "upload", "data.csv", "text/csv", file, sizeof file - 1);
    add_part(&b, "upload", "more.csv", "text/csv", file, sizeof file - 1);
    add_close(&b);
    for (size_t piece = 1; piece <= 80; piece++) {
        pthread_mutex_lock(&outcome_lock);
        feed_piece = piece;
        pthread_mutex_unlock(&outcome_lock);
        assert_int_equal(post(b.data, b.size, NULL, 0), 200);
        if (outcome.count != 4) fail_msg("pieces of %zu bytes: %zu parts", piece, outcome.count);
        assert_part(&outcome.parts[0], "alpha", NULL, NULL, "first value", 11);
        assert_part(&outcome.parts[1], "seed", NULL, NULL, "1", 1);
        assert_part(&outcome.parts[2], "upload", "data.csv", "text/csv", file, sizeof file - 1);
        assert_part(&outcome.parts[3], "upload", "more.csv", "text/csv", file, sizeof file - 1);
    }
    pthread_mutex_lock(&outcome_lock);
    feed_piece = 0;
    pthread_mutex_unlock(&outcome_lock);
    free(b.data);
}

static void test_preamble(void **state)
{
    /* RFC 2046: text before the first delimiter is ignored. (So should an epilogue after the
     * closing delimiter be, but libmicrohttpd's post processor refuses any byte after it other
     * than the final CRLF, so none is sent here.) */
    struct body b = {0};
    add_str(&b, "This is the preamble." CRLF);
    add_part(&b, "only", NULL, NULL, "v", 1);
    add_close(&b);
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 1);
    assert_part(&outcome.parts[0], "only", NULL, NULL, "v", 1);
    free(b.data);
}

static void test_no_parts(void **state)
{
    /* RFC 2046 requires at least one body part: a lone closing delimiter, or text without any
     * delimiter, is not a multipart body. */
    const char *bodies[] = {DASH "--" CRLF, "no delimiter in here" CRLF};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        assert_int_equal(post(bodies[i], strlen(bodies[i]), NULL, 0), 400);
        assert_true(outcome.begun);
        if (outcome.status != MULTIPART_MALFORMED)
            fail_msg("body %zu: status %d", i, outcome.status);
        assert_int_equal(outcome.count, 0);
        assert_null(outcome.parts);
    }
}

static void test_binary_value(void **state)
{
    /* NUL, CR and LF, and the boundary without its leading dashes, in a file and a field. */
    const unsigned char value[] = "\x00\x01\r\n\r\n\x00" BOUNDARY "\r\n" BOUNDARY "--\r\n"
                                  "-" BOUNDARY "\xff\xfe\r\x00\n\r";
    size_t size = sizeof value - 1;
    struct body b = {0};
    add_part(&b, "blob", "blob.bin", "application/octet-stream", value, size);
    add_part(&b, "field", NULL, NULL, value, size);
    add_close(&b);
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 2);
    assert_part(&outcome.parts[0], "blob", "blob.bin", "application/octet-stream", value, size);
    assert_part(&outcome.parts[1], "field", NULL, NULL, value, size);
    free(b.data);
}

static void test_empty_value(void **state)
{
    struct body b = {0};
    add_part(&b, "before", NULL, NULL, "x", 1);
    add_part(&b, "empty", NULL, NULL, "", 0);
    add_part(&b, "after", NULL, NULL, "y", 1);
    add_close(&b);
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 3);
    assert_part(&outcome.parts[0], "before", NULL, NULL, "x", 1);
    assert_part(&outcome.parts[1], "empty", NULL, NULL, "", 0);
    assert_part(&outcome.parts[2], "after", NULL, NULL, "y", 1);
    free(b.data);
}

static void test_empty_file(void **state)
{
    struct body b = {0};
    add_part(&b, "file", "empty.txt", "text/plain", "", 0);
    add_part(&b, "after", NULL, NULL, "y", 1);
    add_close(&b);
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 2);
    assert_part(&outcome.parts[0], "file", "empty.txt", "text/plain", "", 0);
    assert_part(&outcome.parts[1], "after", NULL, NULL, "y", 1);
    free(b.data);
}

static void test_max_parts(void **state)
{
    struct body b = {0};
    add_part(&b, "a", NULL, NULL, "1", 1);
    add_part(&b, "b", NULL, NULL, "2", 1);
    add_part(&b, "c", NULL, NULL, "3", 1);
    add_close(&b);
    /* Exactly at the cap: fine. */
    assert_int_equal(post(b.data, b.size, NULL, 3), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 3);
    assert_part(&outcome.parts[2], "c", NULL, NULL, "3", 1);
    /* One more than the cap. */
    assert_int_equal(post(b.data, b.size, NULL, 2), 413);
    assert_int_equal(outcome.status, MULTIPART_TOO_MANY_PARTS);
    assert_int_equal(outcome.count, 0);
    assert_null(outcome.parts);
    free(b.data);
}

static void test_truncated(void **state)
{
    struct body b = {0};
    add_part(&b, "a", NULL, NULL, "complete", 8);
    add_part(&b, "file", "f.bin", "application/octet-stream", "0123456789", 10);
    add_close(&b);
    size_t closing = strlen(DASH "--" CRLF);
    size_t file_end = b.size - closing - strlen(CRLF); /* just past the file's value */
    /* Cut inside the file's value, right after it, and inside the closing delimiter. */
    size_t cuts[] = {file_end - 5, file_end, file_end + strlen(CRLF) + 4};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(post(b.data, cuts[i], NULL, 0), 400);
        assert_true(outcome.begun);
        if (outcome.status != MULTIPART_MALFORMED)
            fail_msg("cut at %zu of %zu: status %d", cuts[i], b.size, outcome.status);
        assert_int_equal(outcome.count, 0);
        assert_null(outcome.parts);
    }
    /* The whole body is fine. */
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.count, 2);
    free(b.data);
}

static void test_no_boundary(void **state)
{
    struct body b = {0};
    add_part(&b, "a", NULL, NULL, "1", 1);
    add_close(&b);
    const char *types[] = {"multipart/form-data", "multipart/form-data; charset=utf-8",
                           "multipart/form-data; boundary="};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        assert_int_equal(post(b.data, b.size, types[i], 0), 400);
        if (outcome.begun) fail_msg("multipart_begin accepted \"%s\"", types[i]);
        assert_int_equal(outcome.count, 0);
    }
    free(b.data);
}

static void test_large_file(void **state)
{
    size_t size = 1u << 20;
    unsigned char *file = malloc(size);
    assert_non_null(file);
    assert_int_equal(RAND_bytes(file, (int)size), 1);
    struct body b = {0};
    add_part(&b, "meta", NULL, NULL, "{\"k\":1}", 7);
    add_part(&b, "big", "random.bin", "application/octet-stream", file, size);
    add_part(&b, "tail", NULL, NULL, "end", 3);
    add_close(&b);
    assert_int_equal(post(b.data, b.size, NULL, 0), 200);
    assert_int_equal(outcome.status, MULTIPART_OK);
    assert_int_equal(outcome.body_bytes, b.size);
    assert_true(outcome.feed_calls > 1); /* it did arrive in pieces */
    assert_int_equal(outcome.count, 3);
    assert_part(&outcome.parts[0], "meta", NULL, NULL, "{\"k\":1}", 7);
    assert_part(&outcome.parts[1], "big", "random.bin", "application/octet-stream", file, size);
    assert_part(&outcome.parts[2], "tail", NULL, NULL, "end", 3);
    free(b.data);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_file), cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_preamble),        cmocka_unit_test(test_no_parts),
        cmocka_unit_test(test_binary_value),    cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_empty_file),      cmocka_unit_test(test_max_parts),
        cmocka_unit_test(test_truncated),       cmocka_unit_test(test_no_boundary),
        cmocka_unit_test(test_large_file),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
