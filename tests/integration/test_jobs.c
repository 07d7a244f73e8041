/* The job system against the real binary: submitting, listing, reading and cancelling jobs, params
 * refused with the field named, the event stream parsed as Server-Sent Events by a client of its
 * own (live, resumed with Last-Event-ID, kept alive past connection_timeout_s, without holding a
 * worker), keys and their scopes, artifacts and names that try to leave the job's folder, and the
 * restart semantics: SIGTERM queues a running job again, kill -9 leaves it running in the store,
 * and the next server marks it interrupted and resumes it from its checkpoint with every unit
 * counted exactly once. The jobs are the debug kind count (server/job_count.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"
#include "job_client.h"

/* ---- Requests ------------------------------------------------------------------------------ */

/* POSTs a count job and returns its document (status 202 asserted); the id into id. */
static json_t *submit_count(const struct server *srv, const char *params, const char *key,
                            char id[32])
{
    char body[512];
    snprintf(body, sizeof body, "{\"kind\": \"count\", \"params\": %s}", params);
    struct http_response r;
    job_send(srv, "POST", "/v1/jobs", body, key, &r);
    assert_status(&r, 202);
    json_t *doc = http_json(&r);
    snprintf(id, 32, "%s", json_str(doc, "id"));
    char location[64];
    snprintf(location, sizeof location, "/v1/jobs/%s", id);
    assert_string_equal(http_header(&r, "Location"), location);
    http_response_free(&r);
    return doc;
}

/* Polls until the job has counted at least `units` units (its progress), while it runs. */
static void wait_units(const struct server *srv, const char *id, int units, int of)
{
    double deadline = harness_now() + WAIT_S;
    for (;;) {
        json_t *doc = job_get(srv, id, NULL);
        double fraction =
            json_real_value(json_object_get(json_object_get(doc, "progress"), "fraction"));
        int running = strcmp(json_str(doc, "state"), "running") == 0;
        json_decref(doc);
        if (running && fraction * of >= units - 0.5) return;
        if (harness_now() > deadline) fail_msg("job %s never counted %d units", id, units);
        job_sleep_ms(10);
    }
}

/* ---- A Server-Sent Events client ------------------------------------------------------------ */

#define SSE_MAX_EVENTS 4096

struct sse_event {
    long long id;
    char type[16];
    char *data;
};

/* A stream read on its own thread, parsed as the SSE format says: lines end in \n; "field: value"
 * lines fill the event; a blank line dispatches it; a line starting with ':' is a comment. */
struct sse {
    const struct server *srv;
    char path[128];
    char last_event_id[32]; /* "" for none */
    int hang_up_after;      /* events after which the client closes the connection; 0: never */
    long status;
    char content_type[64];
    struct sse_event events[SSE_MAX_EVENTS];
    atomic_int count;
    atomic_int comments;
    struct sse_event pending;
    char line[8192];
    size_t line_len;
    CURLcode code;
    pthread_t thread;
};

static void sse_line(struct sse *s)
{
    char *line = s->line;
    line[s->line_len] = '\0';
    s->line_len = 0;
    if (line[0] == ':') {
        atomic_fetch_add(&s->comments, 1);
        return;
    }
    if (line[0] == '\0') {
        int n = atomic_load(&s->count);
        if (s->pending.data && n < SSE_MAX_EVENTS) {
            s->events[n] = s->pending;
            atomic_store(&s->count, n + 1);
        } else {
            free(s->pending.data);
        }
        memset(&s->pending, 0, sizeof s->pending);
        return;
    }
    char *value = strchr(line, ':');
    if (!value) return;
    *value++ = '\0';
    if (*value == ' ') value++;
    if (strcmp(line, "id") == 0)
        s->pending.id = atoll(value);
    else if (strcmp(line, "event") == 0)
        snprintf(s->pending.type, sizeof s->pending.type, "%s", value);
    else if (strcmp(line, "data") == 0) {
        free(s->pending.data);
        s->pending.data = strdup(value);
    }
}

static size_t sse_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sse *s = arg;
    for (size_t i = 0; i < size * nmemb; i++) {
        if (data[i] == '\n')
            sse_line(s);
        else if (s->line_len + 1 < sizeof s->line)
            s->line[s->line_len++] = data[i];
    }
    /* Anything but the size read makes curl close the connection. */
    return s->hang_up_after && atomic_load(&s->count) >= s->hang_up_after ? 0 : size * nmemb;
}

static void *sse_main(void *arg)
{
    struct sse *s = arg;
    CURL *h = curl_easy_init();
    char url[256], header[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->srv->port, s->path);
    snprintf(header, sizeof header, "Last-Event-ID: %s", s->last_event_id);
    struct curl_slist *headers = s->last_event_id[0] ? curl_slist_append(NULL, header) : NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(WAIT_S * 1000));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sse_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    s->code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
    char *type = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type);
    snprintf(s->content_type, sizeof s->content_type, "%s", type ? type : "");
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return NULL;
}

/* Reads the stream from after last_event_id (-1: none sent); the client hangs up after
 * hang_up_after events (0: never). */
static struct sse *sse_start(const struct server *srv, const char *id, long long last_event_id,
                             int hang_up_after)
{
    struct sse *s = calloc(1, sizeof *s);
    s->srv = srv;
    s->hang_up_after = hang_up_after;
    snprintf(s->path, sizeof s->path, "/v1/jobs/%s/events", id);
    if (last_event_id >= 0)
        snprintf(s->last_event_id, sizeof s->last_event_id, "%lld", last_event_id);
    atomic_init(&s->count, 0);
    atomic_init(&s->comments, 0);
    pthread_create(&s->thread, NULL, sse_main, s);
    return s;
}

static struct sse *sse_open(const struct server *srv, const char *id, long long last_event_id)
{
    return sse_start(srv, id, last_event_id, 0);
}

/* Waits until the stream has `events` events and `comments` comments. */
static void sse_wait(struct sse *s, int events, int comments)
{
    double deadline = harness_now() + WAIT_S;
    while (atomic_load(&s->count) < events || atomic_load(&s->comments) < comments) {
        if (harness_now() > deadline)
            fail_msg("the stream has %d events and %d comments, not %d and %d",
                     atomic_load(&s->count), atomic_load(&s->comments), events, comments);
        job_sleep_ms(5);
    }
}

/* Waits for the stream to end (the server closes it when the job has ended). */
static void sse_join(struct sse *s)
{
    pthread_join(s->thread, NULL);
    if (s->code != CURLE_OK)
        fail_msg("the stream did not end cleanly: %s", curl_easy_strerror(s->code));
}

static struct sse *sse_read(const struct server *srv, const char *id, long long last_event_id)
{
    struct sse *s = sse_open(srv, id, last_event_id);
    sse_join(s);
    return s;
}

static void sse_free(struct sse *s)
{
    for (int i = 0; i < atomic_load(&s->count); i++)
        free(s->events[i].data);
    free(s->pending.data);
    free(s);
}

/* The "state" of the state events, joined by ' '. */
static const char *states_of(const struct sse *s)
{
    static char text[512];
    size_t used = 0;
    text[0] = '\0';
    for (int i = 0; i < s->count; i++) {
        if (strcmp(s->events[i].type, "state") != 0) continue;
        json_t *data = json_loads(s->events[i].data, 0, NULL);
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", used ? " " : "",
                                 json_string_value(json_object_get(data, "state")));
        json_decref(data);
    }
    return text;
}

/* ---- Tests --------------------------------------------------------------------------------- */

static void test_create_get_list(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true}");
    char a[32], b[32], c[32];
    json_t *doc = submit_count(srv, "{\"units\": 3}", NULL, a);
    assert_string_equal(json_str(doc, "kind"), "count");
    assert_int_equal(json_int(json_object_get(doc, "params"), "units"), 3);
    assert_true(json_is_null(json_object_get(doc, "owner")));
    assert_true(json_is_null(json_object_get(doc, "result")));
    json_decref(doc);
    doc = job_wait_state(srv, a, "succeeded");
    json_t *result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "total"), 1 + 2 + 3);
    assert_int_equal(json_int(result, "resumed_from"), 0);
    assert_int_equal(json_int(doc, "attempts"), 1);
    assert_true(json_real_value(json_object_get(json_object_get(doc, "progress"), "fraction")) ==
                1.0);
    assert_true(json_is_string(json_object_get(doc, "finished")));
    json_decref(doc);
    json_decref(submit_count(srv, "{\"units\": 1}", NULL, b));
    json_decref(submit_count(srv, "{\"units\": 2, \"unit_ms\": 1}", NULL, c));
    json_decref(job_wait_state(srv, b, "succeeded"));
    json_decref(job_wait_state(srv, c, "succeeded"));

    /* Newest first, two a page; the next page starts after the last one shown. */
    struct http_response r;
    http_get(srv, "/v1/jobs?limit=2", &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    json_t *jobs = json_object_get(doc, "jobs");
    assert_int_equal(json_array_size(jobs), 2);
    assert_string_equal(json_str(json_array_get(jobs, 0), "id"), c);
    assert_string_equal(json_str(json_array_get(jobs, 1), "id"), b);
    assert_string_equal(json_str(doc, "next"), b);
    json_decref(doc);
    http_response_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs?limit=2&after=%s", b);
    http_get(srv, path, &r);
    doc = http_json(&r);
    jobs = json_object_get(doc, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    assert_string_equal(json_str(json_array_get(jobs, 0), "id"), a);
    assert_true(json_is_null(json_object_get(doc, "next")));
    json_decref(doc);
    http_response_free(&r);
    http_get(srv, "/v1/jobs?state=running&kind=count", &r);
    doc = http_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "jobs")), 0);
    json_decref(doc);
    http_response_free(&r);

    http_get(srv, "/v1/jobs?state=done", &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "state");
    http_response_free(&r);
    http_get(srv, "/v1/jobs?limit=0", &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "limit");
    http_response_free(&r);
    http_get(srv, "/v1/jobs?after=0123456789abcdef01234567", &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "after");
    http_response_free(&r);
    http_get(srv, "/v1/jobs/0123456789abcdef01234567", &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    harness_pass(state);
}

/* A body's status and the start of its message. */
static void expect_refusal(const struct server *srv, const char *body, long status,
                           const char *message_start)
{
    struct http_response r;
    job_send(srv, "POST", "/v1/jobs", body, NULL, &r);
    assert_error_envelope(&r, status, status == 400 ? "bad_request" : "unprocessable");
    json_t *doc = http_json(&r);
    const char *message = json_str(json_object_get(doc, "error"), "message");
    if (strncmp(message, message_start, strlen(message_start)) != 0)
        fail_msg("%s: the message \"%s\" does not start with \"%s\"", body, message, message_start);
    json_decref(doc);
    http_response_free(&r);
}

static void test_bad_submissions(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true}");
    expect_refusal(srv, "{\"kind\": \"count\", \"params\": {\"units\": 0}}", 422, "params.units:");
    expect_refusal(srv, "{\"kind\": \"count\", \"params\": {\"units\": 2.5}}", 422,
                   "params.units:");
    expect_refusal(srv, "{\"kind\": \"count\", \"params\": {}}", 422, "params.units: required");
    expect_refusal(srv, "{\"kind\": \"count\", \"params\": {\"units\": 1, \"unitms\": 5}}", 422,
                   "params.unitms: unknown");
    expect_refusal(srv, "{\"kind\": \"count\", \"params\": [1]}", 422, "params:");
    expect_refusal(srv, "{\"kind\": \"nosuch\", \"params\": {}}", 422, "kind: no job kind");
    expect_refusal(srv, "{\"params\": {}}", 422, "kind: required");
    expect_refusal(srv, "{\"kind\": \"count\", \"priority\": 1}", 422, "priority: unknown");
    expect_refusal(srv, "[\"count\"]", 422, "the body must be a JSON object");
    expect_refusal(srv, "{\"kind\": ", 400, "the body is not JSON");
    /* Nothing was queued. */
    struct http_response r;
    http_get(srv, "/v1/jobs", &r);
    json_t *doc = http_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "jobs")), 0);
    json_decref(doc);
    http_response_free(&r);

    /* GET /v1 lists the kinds: the debug kind only with debug_routes, where it exists. */
    http_get(srv, "/v1", &r);
    doc = http_json(&r);
    json_t *kinds = json_object_get(json_object_get(doc, "jobs"), "kinds");
    const char *const names[] = {"evaluate", "affinity",  "pseudo-label",
                                 "train",    "diversity", "affinity-diversity",
                                 "search",   "count",     "objective-trial"};
    assert_int_equal(json_array_size(kinds), 9);
    for (size_t i = 0; i < 9; i++)
        assert_string_equal(json_str(json_array_get(kinds, i), "name"), names[i]);
    json_decref(doc);
    http_response_free(&r);
    struct server *plain = harness_start(state, "{}");
    http_get(plain, "/v1", &r);
    doc = http_json(&r);
    kinds = json_object_get(json_object_get(doc, "jobs"), "kinds");
    assert_int_equal(json_array_size(kinds), 7);
    assert_string_equal(json_str(json_array_get(kinds, 6), "name"), "search");
    json_decref(doc);
    http_response_free(&r);
    job_send(plain, "POST", "/v1/jobs", "{\"kind\": \"count\", \"params\": {\"units\": 1}}", NULL,
             &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "no job kind");
    http_response_free(&r);
    harness_pass(state);
}

static void test_cancel(void **state)
{
    /* One runner: the second job waits behind the first. */
    struct server *srv = harness_start(state, "{\"debug_routes\": true, \"job_workers\": 1}");
    char running[32], queued[32], done[32];
    json_decref(submit_count(srv, "{\"units\": 100000, \"unit_ms\": 10}", NULL, running));
    json_decref(submit_count(srv, "{\"units\": 1}", NULL, queued));
    wait_units(srv, running, 1, 100000);

    char path[64];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s", queued);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "state"), "cancelled");
    json_decref(doc);
    http_response_free(&r);

    snprintf(path, sizeof path, "/v1/jobs/%s", running);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 202);
    doc = http_json(&r);
    assert_string_equal(json_str(doc, "state"), "running");
    assert_true(json_is_true(json_object_get(doc, "cancel_requested")));
    json_decref(doc);
    http_response_free(&r);
    doc = job_wait_state(srv, running, "cancelled");
    assert_true(json_is_null(json_object_get(doc, "result")));
    json_decref(doc);
    /* Cancelled again: nothing to do. */
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 200);
    http_response_free(&r);

    /* The queued one never started, and the runner is free for the next. */
    doc = job_get(srv, queued, NULL);
    assert_int_equal(json_int(doc, "attempts"), 0);
    assert_true(json_is_null(json_object_get(doc, "started")));
    json_decref(doc);
    json_decref(submit_count(srv, "{\"units\": 2}", NULL, done));
    json_decref(job_wait_state(srv, done, "succeeded"));
    snprintf(path, sizeof path, "/v1/jobs/%s", done);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_error_envelope(&r, 409, "conflict");
    http_response_free(&r);
    job_send(srv, "DELETE", "/v1/jobs/0123456789abcdef01234567", NULL, NULL, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    harness_pass(state);
}

static void test_failed_job(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true}");
    char id[32];
    json_decref(submit_count(srv, "{\"units\": 5, \"fail_at\": 3}", NULL, id));
    json_t *doc = job_wait_state(srv, id, "failed");
    assert_contains(json_str(doc, "error"), "unit 3 failed");
    json_decref(doc);
    struct sse *s = sse_read(srv, id, -1);
    assert_string_equal(states_of(s), "queued running failed");
    json_t *last = json_loads(s->events[s->count - 1].data, 0, NULL);
    assert_contains(json_str(last, "error"), "unit 3 failed");
    json_decref(last);
    sse_free(s);
    harness_pass(state);
}

static void test_events_replay_and_resume(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true}");
    char id[32];
    json_decref(submit_count(srv, "{\"units\": 4}", NULL, id));
    json_decref(job_wait_state(srv, id, "succeeded"));
    struct sse *all = sse_read(srv, id, -1);
    assert_int_equal(all->status, 200);
    assert_string_equal(all->content_type, "text/event-stream");
    assert_string_equal(states_of(all), "queued running succeeded");
    /* One metric per unit, its total so far at its step. */
    int metrics = 0;
    for (int i = 0; i < all->count; i++) {
        if (i > 0) assert_true(all->events[i].id > all->events[i - 1].id);
        if (strcmp(all->events[i].type, "metric") != 0) continue;
        metrics++;
        json_t *data = json_loads(all->events[i].data, 0, NULL);
        assert_string_equal(json_str(data, "name"), "total");
        assert_int_equal(json_int(data, "step"), metrics);
        assert_true(json_number_value(json_object_get(data, "value")) ==
                    metrics * (metrics + 1) / 2);
        json_decref(data);
    }
    assert_int_equal(metrics, 4);

    /* From the third event on: exactly the events after it, as they were. */
    struct sse *rest = sse_read(srv, id, all->events[2].id);
    assert_int_equal(rest->count, all->count - 3);
    for (int i = 0; i < rest->count; i++) {
        assert_int_equal(rest->events[i].id, all->events[i + 3].id);
        assert_string_equal(rest->events[i].type, all->events[i + 3].type);
        assert_string_equal(rest->events[i].data, all->events[i + 3].data);
    }
    sse_free(rest);
    /* The query parameter does the same. */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events?last_event_id=%lld", id,
             all->events[all->count - 2].id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    char expected[256];
    snprintf(expected, sizeof expected,
             "id: %lld\nevent: state\ndata: {\"state\":\"succeeded\"}\n\n",
             all->events[all->count - 1].id);
    assert_string_equal(r.body, expected);
    http_response_free(&r);
    /* After the last one of a job that has ended: 204, which stops an EventSource. */
    rest = sse_read(srv, id, all->events[all->count - 1].id);
    assert_int_equal(rest->status, 204);
    assert_int_equal(rest->count, 0);
    sse_free(rest);
    snprintf(path, sizeof path, "/v1/jobs/%s/events?last_event_id=x", id);
    http_get(srv, path, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "last_event_id");
    http_response_free(&r);
    sse_free(all);
    harness_pass(state);
}

/* A stream follows a job as it goes: it is open before the job changes, and sees the change.
 * With one I/O thread and one worker, a heavy request is still served while it is open: the
 * stream holds neither. With connection_timeout_s 1, it lives on past it, with heartbeats. */
static void test_events_live(void **state)
{
    struct server *srv =
        harness_start(state, "{\"debug_routes\": true, \"job_workers\": 0, \"io_threads\": 1, "
                             "\"workers\": 1, \"connection_timeout_s\": 1}");
    char id[32];
    json_decref(submit_count(srv, "{\"units\": 1}", NULL, id));
    struct sse *s = sse_open(srv, id, -1);
    /* The job is queued for good (no runners): the stream has its first event and waits. Three
     * heartbeats come at 0.5 s each, past the connection's 1 s timeout. */
    sse_wait(s, 1, 3);
    assert_string_equal(states_of(s), "queued");
    struct http_response r;
    struct http_request sleep = {.method = "POST", .path = "/v1/debug/sleep?ms=1", .body = ""};
    http_send(srv, &sleep, &r);
    assert_status(&r, 200);
    http_response_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 200);
    http_response_free(&r);
    sse_join(s);
    assert_string_equal(states_of(s), "queued cancelled");
    sse_free(s);
    harness_pass(state);
}

/* Polls /metrics until the requests in flight are `value` (a gauge: metrics_wait is for counters,
 * which only go up); the last value seen. */
static double wait_in_flight(const struct server *srv, double value)
{
    double deadline = harness_now() + WAIT_S, seen = -1;
    for (;;) {
        struct http_response r;
        http_get(srv, "/metrics", &r);
        if (!metrics_sample(r.body, "augserve_http_requests_in_flight", &seen)) seen = -1;
        http_response_free(&r);
        if (seen == value || harness_now() > deadline) return seen;
        job_sleep_ms(20);
    }
}

/* A client that hangs up while its stream sleeps: the server notices (the stream no longer counts
 * in flight) though no event comes that it would fail to write. */
static void test_events_client_hangs_up(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true, \"job_workers\": 0}");
    char id[32];
    json_decref(submit_count(srv, "{\"units\": 1}", NULL, id));
    /* While it is open, /metrics counts the stream and itself. */
    struct sse *s = sse_open(srv, id, -1);
    sse_wait(s, 1, 0);
    assert_true(wait_in_flight(srv, 2) == 2);
    struct http_response r;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    http_response_free(&r);
    sse_join(s);
    sse_free(s);
    assert_true(wait_in_flight(srv, 1) == 1);

    char other[32];
    json_decref(submit_count(srv, "{\"units\": 1}", NULL, other));
    s = sse_start(srv, other, -1, 1);
    pthread_join(s->thread, NULL);
    assert_int_equal(s->code, CURLE_WRITE_ERROR);
    sse_free(s);
    double last = wait_in_flight(srv, 1);
    if (last != 1) fail_msg("the stream of a client that hung up is still in flight (%g)", last);
    harness_pass(state);
}

struct generated_key {
    char key[128];
    json_t *entry;
};

static void test_scopes(void **state)
{
    struct generated_key submitter, other, reader, boss;
    submitter.entry = harness_keygen("submitter", "jobs", submitter.key);
    other.entry = harness_keygen("other", "jobs", other.key);
    reader.entry = harness_keygen("reader", "augment", reader.key);
    boss.entry = harness_keygen("boss", "admin", boss.key);
    json_t *settings = json_pack("{s:b, s:[o, o, o, o]}", "debug_routes", 1, "api_keys",
                                 submitter.entry, other.entry, reader.entry, boss.entry);
    char *extra = json_dumps(settings, JSON_COMPACT);
    struct server *srv = harness_start(state, extra);
    free(extra);
    json_decref(settings);

    char id[32], path[64];
    json_t *doc = submit_count(srv, "{\"units\": 1}", submitter.key, id);
    assert_string_equal(json_str(doc, "owner"), "submitter");
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    const char *body = "{\"kind\": \"count\", \"params\": {\"units\": 1}}";
    struct http_response r;
    job_send(srv, "POST", "/v1/jobs", body, reader.key, &r);
    assert_error_envelope(&r, 403, "forbidden");
    assert_contains(r.body, "jobs");
    http_response_free(&r);
    job_send(srv, "POST", "/v1/jobs", body, NULL, &r);
    assert_error_envelope(&r, 401, "unauthorized");
    http_response_free(&r);

    /* The owner and admin see it; other keys do not, not even that it exists. */
    json_decref(job_get(srv, id, submitter.key));
    json_decref(job_get(srv, id, boss.key));
    job_send(srv, "GET", path, NULL, reader.key, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    job_send(srv, "DELETE", path, NULL, other.key, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    job_send(srv, "DELETE", path, NULL, reader.key, &r);
    assert_error_envelope(&r, 403, "forbidden");
    http_response_free(&r);
    char events[96];
    snprintf(events, sizeof events, "/v1/jobs/%s/events", id);
    job_send(srv, "GET", events, NULL, other.key, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    char artifacts[96];
    snprintf(artifacts, sizeof artifacts, "/v1/jobs/%s/artifacts", id);
    job_send(srv, "GET", artifacts, NULL, other.key, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);

    const char *keys[] = {submitter.key, other.key, boss.key};
    const size_t listed[] = {1, 0, 1};
    for (int k = 0; k < 3; k++) {
        job_send(srv, "GET", "/v1/jobs", NULL, keys[k], &r);
        assert_status(&r, 200);
        doc = http_json(&r);
        assert_int_equal(json_array_size(json_object_get(doc, "jobs")), listed[k]);
        json_decref(doc);
        http_response_free(&r);
    }
    harness_pass(state);
}

static void test_artifacts(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true}");
    char id[32], path[160];
    json_decref(submit_count(srv, "{\"units\": 3}", NULL, id));
    json_decref(job_wait_state(srv, id, "succeeded"));
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *list = json_object_get(doc, "artifacts");
    assert_int_equal(json_array_size(list), 1);
    json_t *item = json_array_get(list, 0);
    assert_string_equal(json_str(item, "name"), "units.csv");
    assert_string_equal(json_str(item, "content_type"), "text/csv; charset=utf-8");
    const char *expected = "unit,attempt\n1,1\n2,1\n3,1\n";
    assert_int_equal(json_int(item, "size"), strlen(expected));
    json_decref(doc);
    http_response_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/units.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_string_equal(r.body, expected);
    assert_string_equal(http_header(&r, "Content-Type"), "text/csv; charset=utf-8");
    http_response_free(&r);

    /* Names that would leave the folder, or reach hidden files, are refused before any file is
     * opened; paths with more segments match no route. None gets the store's bytes. */
    static const char *const refused[] = {"..", ".units.csv", "units%20csv", "%2E%2E"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id, refused[i]);
        http_get(srv, path, &r);
        assert_error_envelope(&r, 422, "unprocessable");
        http_response_free(&r);
    }
    static const char *const elsewhere[] = {"../../../augserve.db", "..%2F..%2F..%2Faugserve.db",
                                            "sub/units.csv"};
    for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id, elsewhere[i]);
        http_get(srv, path, &r);
        assert_true(r.status == 404 || r.status == 400);
        assert_not_contains(r.body, "SQLite format");
        http_response_free(&r);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/nothing.csv", id);
    http_get(srv, path, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    harness_pass(state);
}

static void test_kill9_then_resume(void **state)
{
    const int units = 60;
    struct server *first = harness_start(state, "{\"debug_routes\": true}");
    char id[32], params[64];
    snprintf(params, sizeof params, "{\"units\": %d, \"unit_ms\": 30}", units);
    json_decref(submit_count(first, params, NULL, id));
    wait_units(first, id, 10, units);
    json_t *doc = job_get(first, id, NULL);
    double before = json_real_value(json_object_get(json_object_get(doc, "progress"), "fraction"));
    json_decref(doc);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(first->wait_status));

    struct server *second = job_restart_on(state, first, "{\"debug_routes\": true}");
    doc = job_wait_state(second, id, "succeeded");
    json_t *result = json_object_get(doc, "result");
    int resumed = (int)json_int(result, "resumed_from");
    assert_int_equal(json_int(result, "total"), units * (units + 1) / 2);
    assert_int_equal(json_int(result, "attempt"), 2);
    assert_int_equal(json_int(doc, "attempts"), 2);
    /* It resumed from a checkpoint at least as far as the progress seen before the kill. */
    assert_true(resumed >= (int)(before * units + 0.5) && resumed < units);
    json_decref(doc);
    job_check_units_once(second, id, units, resumed);

    struct sse *s = sse_read(second, id, -1);
    assert_string_equal(states_of(s), "queued running interrupted queued running succeeded");
    int interrupted = 0;
    for (int i = 0; i < s->count; i++)
        if (strstr(s->events[i].data, "\"interrupted\"")) {
            interrupted++;
            assert_contains(s->events[i].data, "crash or a kill");
        }
    assert_int_equal(interrupted, 1);
    sse_free(s);
    /* Stopped before the teardown removes the first server's folder, its data_dir. */
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    assert_true(WIFEXITED(second->wait_status) && WEXITSTATUS(second->wait_status) == 0);
    harness_pass(state);
}

static void test_sigterm_requeues(void **state)
{
    const int units = 40;
    struct server *first = harness_start(state, "{\"debug_routes\": true}");
    char id[32], params[64];
    snprintf(params, sizeof params, "{\"units\": %d, \"unit_ms\": 30}", units);
    json_decref(submit_count(first, params, NULL, id));
    wait_units(first, id, 5, units);
    assert_int_equal(server_stop(first, SIGTERM, 15000), 0);
    assert_true(WIFEXITED(first->wait_status) && WEXITSTATUS(first->wait_status) == 0);

    struct server *second = job_restart_on(state, first, "{\"debug_routes\": true}");
    json_t *doc = job_wait_state(second, id, "succeeded");
    int resumed = (int)json_int(json_object_get(doc, "result"), "resumed_from");
    assert_true(resumed >= 5);
    assert_int_equal(json_int(json_object_get(doc, "result"), "total"), units * (units + 1) / 2);
    json_decref(doc);
    job_check_units_once(second, id, units, resumed);
    struct sse *s = sse_read(second, id, -1);
    assert_string_equal(states_of(s), "queued running interrupted queued running succeeded");
    sse_free(s);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

static void test_gives_up_after_max_attempts(void **state)
{
    struct server *first =
        harness_start(state, "{\"debug_routes\": true, \"job_max_attempts\": 1}");
    char id[32];
    json_decref(submit_count(first, "{\"units\": 1000, \"unit_ms\": 30}", NULL, id));
    wait_units(first, id, 1, 1000);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    struct server *second =
        job_restart_on(state, first, "{\"debug_routes\": true, \"job_max_attempts\": 1}");
    json_t *doc = job_get(second, id, NULL);
    assert_string_equal(json_str(doc, "state"), "interrupted");
    assert_contains(json_str(doc, "error"), "not started again");
    assert_int_equal(json_int(doc, "attempts"), 1);
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_create_get_list),
        HARNESS_TEST(test_bad_submissions),
        HARNESS_TEST(test_cancel),
        HARNESS_TEST(test_failed_job),
        HARNESS_TEST(test_events_replay_and_resume),
        HARNESS_TEST(test_events_live),
        HARNESS_TEST(test_events_client_hangs_up),
        HARNESS_TEST(test_scopes),
        HARNESS_TEST(test_artifacts),
        HARNESS_TEST(test_kill9_then_resume),
        HARNESS_TEST(test_sigterm_requeues),
        HARNESS_TEST(test_gives_up_after_max_attempts),
    };
    return harness_main(argc, argv, "jobs", tests, sizeof tests / sizeof tests[0]);
}
