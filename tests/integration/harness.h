/* Integration test harness: runs the real augserve binary on a loopback port in a fresh temporary
 * folder and talks to it with libcurl. Functions that cannot go on fail the running cmocka test
 * (fail_msg), so callers need no error paths of their own.
 *
 * Typical test:
 *
 *     static void test_x(void **state)
 *     {
 *         struct server *srv = harness_start(state, "{\"debug_routes\":true}");
 *         struct http_response r;
 *         http_get(srv, "/healthz", &r);
 *         assert_int_equal(r.status, 200);
 *         http_response_free(&r);
 *         harness_pass(state);
 *     }
 *
 * registered with cmocka_unit_test_setup_teardown(test_x, harness_setup, harness_teardown). The
 * teardown stops every server the test started (SIGTERM, then SIGKILL), fails the test when a
 * server exited badly or its stderr holds a sanitizer report, prints that stderr when the test did
 * not reach harness_pass, and removes the temporary folders. */
#ifndef AUGSERVE_TEST_HARNESS_H
#define AUGSERVE_TEST_HARNESS_H

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct CMUnitTest;

/* The whole main() of an integration test program: argv[1] is the binary under test and argv[2]
 * the source tree (usage and 2 without them); harness_init, then runs the tests as group name and
 * returns cmocka's count of failures. */
int harness_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests,
                 size_t count);
/* A test entry of such a table, with the harness's setup and teardown. */
#define HARNESS_TEST(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
/* One with a model repository (harness_setup_models). */
#define HARNESS_MODELS_TEST(f)                                                                     \
    cmocka_unit_test_setup_teardown(f, harness_setup_models, harness_teardown)

/* Once, from main: the binary under test and the source tree. Initialises libcurl and ignores
 * SIGPIPE (a server closing on us must not kill the test program). */
void harness_init(const char *binary, const char *source_dir);
const char *harness_binary(void);
const char *harness_source_dir(void);

/* Seconds on the monotonic clock. */
double harness_now(void);

/* ---- Files ------------------------------------------------------------------------------------
 */

/* The whole file (malloc'd and NUL-terminated; *size bytes before the NUL); fails the test when
 * it cannot be read. */
char *harness_read_file(const char *path, size_t *size);
/* A file of the source tree, by its path relative to it: its bytes, as harness_read_file, or its
 * JSON (the caller owns it; fails the test unless it parses). */
char *harness_read_source_file(const char *relative, size_t *size);
json_t *harness_load_source_json(const char *relative);

/* ---- Servers ----------------------------------------------------------------------------------
 */

struct server {
    pid_t pid;       /* 0 until spawned */
    int port;        /* from the "listening" event */
    int exited;      /* the exit status was collected */
    int wait_status; /* waitpid's status, once exited */
    char dir[64];    /* the temporary folder, mkdtemp under /tmp */
    char config_path[PATH_MAX];
    char stderr_path[PATH_MAX];     /* the child's stderr (and stdout) */
    char access_log_path[PATH_MAX]; /* the "access_log" setting */
    char data_dir[PATH_MAX];
    char static_dir[PATH_MAX];
    /* A file next to static/ (outside it) that static/leak.txt links to; its content is unique
     * text, so a response holding it proves a traversal. */
    char outside_path[PATH_MAX];
    char outside_content[64];
    int worker; /* started as `augserve worker` (harness_start_worker) */
};

/* Makes the temporary folder, the static files and the config file, without starting anything.
 * extra_json (may be NULL) is a JSON object merged over the defaults:
 *   listen 127.0.0.1:0, data_dir <dir>/data, access_log <dir>/access.log,
 *   static_dir <dir>/static, workers 2, queue 8, shutdown_grace_s 5.
 * The static folder holds index.html, app.js, alias.js (symlink to app.js), sub/page.txt,
 * empty/ (a folder without index), leak.txt (symlink to ../outside.txt), up (symlink to ..),
 * evil (symlink to ../static-evil/secret.txt, a sibling whose name starts like static). */
struct server *server_prepare(const char *extra_json);

/* server_prepare, then spawns `augserve --config FILE` with stderr to a file and waits (60 s at
 * most) for the "listening" event, from which it takes the port. */
struct server *server_start(const char *extra_json);

/* Sends sig (0: none) and waits up to timeout_ms for the process to exit. Returns 0 when it
 * exited (wait_status is then set), -1 on timeout. */
int server_stop(struct server *srv, int sig, int timeout_ms);

/* The child's stderr so far (malloc'd, NUL-terminated; "" when unreadable). */
char *server_stderr(const struct server *srv);

/* Whether the child's stderr holds an AddressSanitizer, LeakSanitizer or UBSan report. */
int server_has_sanitizer_report(const struct server *srv);

/* Prints the child's stderr to our stderr, framed, with why. */
void server_dump_stderr(const struct server *srv, const char *why);

/* Kills the server if it still runs, removes its folder and frees srv. */
void server_cleanup(struct server *srv);

/* ---- cmocka test context ----------------------------------------------------------------------
 */

int harness_setup(void **state);
int harness_teardown(void **state);
/* server_start, with the server registered for the teardown. */
struct server *harness_start(void **state, const char *extra_json);
/* harness_start for `augserve worker --config FILE`: a worker, which logs "listening" too. */
struct server *harness_start_worker(void **state, const char *extra_json);
/* A setup for tests with a model repository: harness_setup, and a fresh empty folder (the
 * repository) that harness_teardown removes once the test's servers have stopped. */
int harness_setup_models(void **state);
/* That folder's path, for the running test. */
const char *harness_models_dir(void);
/* harness_start on that repository, with extra settings (a JSON object's members, or ""). */
struct server *harness_start_with_models(void **state, const char *extra);
/* server_prepare, registered likewise (for tests that run the binary themselves). */
struct server *harness_prepare(void **state, const char *extra_json);
/* Marks the test as having reached its end; without it, the teardown prints servers' stderr. */
void harness_pass(void **state);

/* Runs the binary with args (NULL-terminated, without argv[0]), stdin from /dev/null, and
 * collects stdout and stderr (malloc'd). Returns the exit status, or -1 if it was killed by a
 * signal or ran past 60 s (a guard against hangs: loaded machines run sanitized builds slowly). */
int harness_run_binary(const char *const args[], char **out, char **err);

/* Runs the binary with args (as harness_run_binary), which must exit non-zero before listening with
 * message on its stderr. */
void harness_expect_refused(const char *const args[], const char *message);

/* Runs `augserve keygen --name name --scopes scopes`, which must succeed: writes the key into key
 * and returns its "api_keys" entry (the caller owns it). */
json_t *harness_keygen(const char *name, const char *scopes, char key[128]);

/* ---- HTTP -------------------------------------------------------------------------------------
 */

/* One part of a multipart/form-data body (sent through curl_mime). filename NULL: a form field. */
struct http_part {
    const char *name;
    const char *filename;
    const char *content_type; /* NULL: none sent */
    const void *data;
    size_t size;
};

struct http_request {
    const char *method;         /* NULL: GET, or POST when a body is given. "HEAD" sends no body. */
    const char *path;           /* sent as is (CURLOPT_PATH_AS_IS): "../" reaches the server */
    const char *const *headers; /* NULL-terminated "Name: value" strings, or NULL */
    /* At most one body: raw bytes (sent with Content-Length; body may be "" for an empty one), */
    const void *body;
    size_t body_size;
    /* or multipart parts, */
    const struct http_part *parts;
    size_t part_count;
    /* or a streamed body from a read callback: read_size >= 0 is sent as Content-Length, -1 makes
     * it chunked. */
    curl_read_callback read_fn;
    void *read_arg;
    curl_off_t read_size;
    /* "Expect: 100-continue" is suppressed unless this is set (or headers name Expect). */
    int allow_expect;
    long timeout_ms; /* 0: 10 s */
};

struct http_header {
    char *name;
    char *value;
};

struct http_response {
    CURLcode curl_code; /* CURLE_OK when a whole response arrived */
    char curl_error[CURL_ERROR_SIZE];
    long status;                 /* 0 when none arrived */
    struct http_header *headers; /* of the final response (interim 1xx ones are dropped) */
    size_t header_count;
    char *body; /* NUL-terminated; "" when none (NULL only if memory ran out) */
    size_t body_size;
    double elapsed_s;
};

/* Sends req to the server on 127.0.0.1 and fills resp (free it with http_response_free). Returns
 * resp->curl_code; never fails the test itself. Thread-safe: every call has its own connection. */
CURLcode http_send(const struct server *srv, const struct http_request *req,
                   struct http_response *resp);
CURLcode http_get(const struct server *srv, const char *path, struct http_response *resp);
/* POSTs size bytes of body with the header "Content-Type: content_type". */
CURLcode http_post(const struct server *srv, const char *path, const char *content_type,
                   const void *body, size_t size, struct http_response *resp);
void http_response_free(struct http_response *resp);
/* GETs path and fails the test unless a whole response with this status arrived. */
void http_get_expect(const struct server *srv, const char *path, long status);

/* The value of a response header (case-insensitive name), or NULL. */
const char *http_header(const struct http_response *resp, const char *name);

/* The body as JSON (the caller owns it); fails the test when it is not JSON. */
json_t *http_json(const struct http_response *resp);

/* Fails the test unless resp has the status and its body is exactly
 * {"error":{"code":code,"message":<non-empty>,"request_id":<the X-Request-Id header>}}. */
#define assert_error_envelope(resp, status, code)                                                  \
    harness_assert_error_envelope((resp), (status), (code), __FILE__, __LINE__)
void harness_assert_error_envelope(const struct http_response *resp, long status, const char *code,
                                   const char *file, int line);

/* A request on its own thread, for concurrency tests. The request's buffers must outlive it. */
struct http_async;
struct http_async *http_async_start(const struct server *srv, const struct http_request *req);
/* Whether the response has arrived (or the request failed). */
int http_async_done(struct http_async *a);
/* Waits for the request and hands its response over; frees a. */
void http_async_join(struct http_async *a, struct http_response *resp);

/* ---- Other probes -----------------------------------------------------------------------------
 */

/* Opens (and closes) a TCP connection to 127.0.0.1:port. Returns 0 when it connected, else the
 * errno (ECONNREFUSED once nothing listens). */
int tcp_connect_errno(int port);

/* The value of a sample in Prometheus text: series is the name with its labels exactly as
 * rendered, e.g. "augserve_queue_depth" or
 * "augserve_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}".
 * Returns 1 and sets *value when found, 0 otherwise. */
int metrics_sample(const char *text, const char *series, double *value);

/* Fetches /metrics until series equals value, for up to timeout_ms. Returns 1 when it did, 0 on
 * timeout, -1 as soon as the sample went past value (for counters: "exactly N"). *last (may be
 * NULL) gets the last value seen (-1 when absent). */
int metrics_wait(const struct server *srv, const char *series, double value, int timeout_ms,
                 double *last);

/* ---- Assertions ------------------------------------------------------------------------------
 */

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_))                                                                \
            fail_msg("%s:%d: \"%.600s\" does not contain \"%s\"", __FILE__, __LINE__,              \
                     h_ ? h_ : "(null)", n_);                                                      \
    } while (0)

#define assert_not_contains(haystack, needle)                                                      \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (h_ && strstr(h_, n_))                                                                  \
            fail_msg("%s:%d: \"%.600s\" contains \"%s\"", __FILE__, __LINE__, h_, n_);             \
    } while (0)

/* Fails unless the request got a whole response with this status. */
#define assert_status(resp, expected)                                                              \
    do {                                                                                           \
        const struct http_response *r_ = (resp);                                                   \
        if (r_->curl_code != CURLE_OK || r_->status != (expected))                                 \
            fail_msg("%s:%d: expected status %d, got %ld (curl: %s); body: %.500s", __FILE__,      \
                     __LINE__, (int)(expected), r_->status, r_->curl_code ? r_->curl_error : "ok", \
                     r_->body ? r_->body : "");                                                    \
    } while (0)

/* A string / integer member of a JSON object; fails the test when absent or of another type. */
const char *json_str(json_t *obj, const char *key);
json_int_t json_int(json_t *obj, const char *key);

/* The bytes base64 text holds (malloc'd, *size of them); fails the test when it is not base64. */
unsigned char *harness_unbase64(const char *text, size_t *size);

/* SHA-256 of data as 64 lowercase hex digits. */
void sha256_hex(const void *data, size_t size, char out[65]);

#endif
