/* Several processes on one PostgreSQL store (tests/pg/pg-start.sh's server, a database per test),
 * sharing a data_dir and a models_dir as machines share a volume:
 *   - an API server with job_workers 0 only queues; an `augserve worker` runs the job, woken by
 *     the store's NOTIFY (its job_poll_s is an hour, so no poll could have found the job), and
 *     answers /healthz and /metrics and a JSON 404 for the rest;
 *   - a job created on one API server is seen there, streamed over SSE and cancelled through it
 *     while another runs it: the events come from the store, and the cancel reaches the runner
 *     through NOTIFY (its cancel poll, job_poll_s while it hears notifications, is an hour too);
 *     the stream reads the runner's events when their NOTIFY arrives (it too reads the store only
 *     every job_poll_s otherwise), so it ends soon after the cancel;
 *   - a model uploaded through one API server is served by the other after the NOTIFY, and one
 *     deleted through it stops being served there;
 *   - a worker killed mid-job: its lease expires (its process has ended), a sweep queues the job
 *     again and its NOTIFY wakes another worker, idle with a poll of an hour, which resumes it from
 *     its checkpoint (units.csv, served by the API server from the shared data_dir, has every
 *     unit once);
 *   - a listener whose connection the database ended connects again, and a job queued meanwhile
 *     still runs at once;
 *   - a worker is refused on SQLite and with job_workers 0, with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colour_model.h"
#include "harness.h"
#include "job_client.h"
#include "pg_cluster.h"
#include "pg_test_db.h"

/* How long a notification may take to reach another process: generous for sanitized builds on a
 * loaded machine, and far below the hour a poll would take. */
#define NOTIFY_WAIT_S 20.0

/* GET path until it answers status, for NOTIFY_WAIT_S at most; whether it did. */
static int wait_status(const struct server *srv, const char *path, long status)
{
    double deadline = harness_now() + NOTIFY_WAIT_S;
    for (;;) {
        struct http_response r;
        http_get(srv, path, &r);
        long got = r.status;
        http_response_free(&r);
        if (got == status) return 1;
        if (harness_now() > deadline) return 0;
        job_sleep_ms(50);
    }
}

/* Whether srv's log comes to hold needle within `seconds` (a line its threads write later than
 * the event the test waited for). */
static int wait_log(const struct server *srv, const char *needle, double seconds)
{
    double deadline = harness_now() + seconds;
    for (;;) {
        char *log = server_stderr(srv);
        int found = log && strstr(log, needle);
        free(log);
        if (found) return 1;
        if (harness_now() > deadline) return 0;
        job_sleep_ms(50);
    }
}

static void test_worker_runs_what_the_api_server_queues(void **state)
{
    struct server *api = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *worker = harness_start_worker(state, pg_cluster_settings(api, 2, 3600));

    char id[32];
    job_submit(api, "count", "{\"units\": 5}", id);
    json_t *doc = job_wait_state(api, id, "succeeded");
    assert_int_equal(json_int(json_object_get(doc, "result"), "total"), 1 + 2 + 3 + 4 + 5);
    assert_int_equal(json_int(doc, "attempts"), 1);
    json_decref(doc);
    /* The worker ran it: the API server has no runner. */
    char *log = server_stderr(worker);
    assert_contains(log, id);
    free(log);

    /* The worker's listener: /healthz and /metrics, with its runners; a JSON 404 elsewhere. */
    struct http_response r;
    http_get(worker, "/healthz", &r);
    assert_status(&r, 200);
    assert_contains(r.body, "\"ok\"");
    http_response_free(&r);
    http_get(worker, "/metrics", &r);
    assert_status(&r, 200);
    double runners = -1;
    assert_true(metrics_sample(r.body, "augserve_job_runners", &runners));
    assert_true(runners == 2);
    http_response_free(&r);
    http_get(api, "/metrics", &r);
    assert_true(metrics_sample(r.body, "augserve_job_runners", &runners));
    assert_true(runners == 0);
    http_response_free(&r);
    static const char *const elsewhere[] = {"/v1/jobs", "/v1", "/readyz", "/", "/index.html"};
    for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
        http_get(worker, elsewhere[i], &r);
        assert_error_envelope(&r, 404, "not_found");
        http_response_free(&r);
    }
    job_send(worker, "POST", "/v1/jobs", "{\"kind\": \"count\"}", NULL, &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    harness_pass(state);
}

static void test_a_dead_workers_job_moves(void **state)
{
    const int units = 40;
    struct server *api = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *first = harness_start_worker(state, pg_cluster_settings(api, 1, 3600));
    char id[32], params[64];
    snprintf(params, sizeof params, "{\"units\": %d, \"unit_ms\": 50}", units);
    job_submit(api, "count", params, id);
    job_wait_progress(api, id, 0.25);
    /* Started only now, so the job was the first's; idle from here on. */
    struct server *second = harness_start_worker(state, pg_cluster_settings(api, 1, 3600));
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);

    json_t *doc = job_wait_state(api, id, "succeeded");
    int resumed = job_expect_count_resumed(doc, units);
    json_decref(doc);
    /* Its artifact, in the shared data_dir, served by the API server that ran nothing. */
    job_check_units_once(api, id, units, resumed);
    char *log = server_stderr(second);
    assert_contains(log, id);
    free(log);
    harness_pass(state);
}

static void test_listener_reconnects(void **state)
{
    struct server *api = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *worker = harness_start_worker(state, pg_cluster_settings(api, 1, 3600));
    /* Every listening session of the database ends, as when PostgreSQL restarts; the job's NOTIFY
     * may be sent before the worker listens again: its new connection makes it look anyway. The
     * worker's listener connects on its own thread after the worker reports listening, so the
     * sessions are ended again until the worker says it lost its own (bounded). */
    double deadline = harness_now() + NOTIFY_WAIT_S;
    do
        pg_test_sql(pg_cluster_database(),
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN %'");
    while (!wait_log(worker, "the store's notifications stopped", 0.5) && harness_now() < deadline);
    char id[32];
    job_submit(api, "count", "{\"units\": 3}", id);
    json_t *doc = job_wait_state(api, id, "succeeded");
    assert_int_equal(json_int(json_object_get(doc, "result"), "total"), 6);
    json_decref(doc);
    /* The job may run before the listener is back: a lost connection makes the runners look at
     * the store at once, and the listener reconnects on its own clock. */
    assert_true(wait_log(worker, "the store's notifications stopped", 0));
    assert_true(wait_log(worker, "the store's notifications are back", NOTIFY_WAIT_S));
    harness_pass(state);
}

/* The SSE stream of a job, read on its own thread until the job ends. */
struct stream {
    char path[64];
    struct http_request req;
    struct http_async *call;
};

static void stream_start(struct stream *s, const struct server *srv, const char *id)
{
    snprintf(s->path, sizeof s->path, "/v1/jobs/%s/events", id);
    s->req = (struct http_request){.path = s->path, .timeout_ms = (long)(WAIT_S * 1000)};
    s->call = http_async_start(srv, &s->req);
}

static void test_two_api_servers_share_a_job(void **state)
{
    struct server *front = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *back = harness_start(state, pg_cluster_settings(front, 1, 3600));

    /* Long enough that only the cancel ends it (400 units of 50 ms). */
    char id[32];
    job_submit(front, "count", "{\"units\": 400, \"unit_ms\": 50}", id);
    struct stream s;
    stream_start(&s, front, id);
    job_wait_progress(front, id, 0.02);
    json_t *doc = job_get(back, id, NULL);
    assert_string_equal(json_str(doc, "state"), "running");
    json_decref(doc);

    double cancelled_at = harness_now();
    job_cancel(front, id);
    doc = job_wait_state(front, id, "cancelled");
    json_decref(doc);
    /* A poll would have taken an hour. */
    assert_true(harness_now() - cancelled_at < NOTIFY_WAIT_S);

    /* The stream through the server that never ran the job: queued, running, progress, cancelled,
     * in order, and then it ended, woken by the runner's NOTIFY (a poll would have taken an
     * hour). */
    struct http_response r;
    http_async_join(s.call, &r);
    assert_status(&r, 200);
    assert_true(harness_now() - cancelled_at < NOTIFY_WAIT_S);
    const char *queued = strstr(r.body, "\"state\":\"queued\"");
    const char *running = strstr(r.body, "\"state\":\"running\"");
    const char *progress = strstr(r.body, "event: progress");
    const char *cancelled = strstr(r.body, "\"state\":\"cancelled\"");
    if (!(queued && running && progress && cancelled && queued < running && running < progress &&
          progress < cancelled))
        fail_msg("the stream lacks queued < running < progress < cancelled:\n%.2000s", r.body);
    http_response_free(&r);
    harness_pass(state);
}

/* The bytes of a file of the models_dir (the caller frees them). */
static char *model_file(const char *model, const char *file, size_t *size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s", harness_models_dir(), model, file);
    return harness_read_file(path, size);
}

static void test_model_added_on_one_is_served_by_the_other(void **state)
{
    /* A model on disk that both serve from the start; its files are uploaded under a new name. */
    colour_model_write("colour", "{\"labels\": \"labels.txt\"}", "red\ngreen\nblue\n");
    struct server *one = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *other = harness_start(state, pg_cluster_settings(one, 0, 3600));
    http_get_expect(other, "/v1/models/colour", 200);
    http_get_expect(other, "/v1/models/copy", 404);

    size_t onnx_size, config_size, labels_size;
    char *onnx = model_file("colour", "model.onnx", &onnx_size);
    char *config = model_file("colour", "config.json", &config_size);
    char *labels = model_file("colour", "labels.txt", &labels_size);
    struct http_part parts[] = {
        {"model", "model.onnx", NULL, onnx, onnx_size},
        {"config", "config.json", NULL, config, config_size},
        {"labels", "labels.txt", NULL, labels, labels_size},
        {"name", NULL, NULL, "copy", 4},
    };
    struct http_request req = {.path = "/v1/models", .parts = parts, .part_count = 4};
    struct http_response r;
    http_send(one, &req, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    free(onnx);
    free(config);
    free(labels);

    if (!wait_status(other, "/v1/models/copy", 200))
        fail_msg("the other server does not serve the uploaded model after %.0f s", NOTIFY_WAIT_S);
    http_get(other, "/v1/models/copy", &r);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "name"), "copy");
    json_decref(doc);
    http_response_free(&r);

    job_send(one, "DELETE", "/v1/models/copy", NULL, NULL, &r);
    assert_status(&r, 204);
    http_response_free(&r);
    if (!wait_status(other, "/v1/models/copy", 404))
        fail_msg("the other server still serves the deleted model after %.0f s", NOTIFY_WAIT_S);
    http_get_expect(other, "/v1/models/colour", 200);
    harness_pass(state);
}

/* `augserve worker` exits non-zero before listening, with the message. */
static void expect_refused_worker(const char *store, const char *job_workers, const char *message)
{
    const char *args[] = {"worker",        "--store",   store,      "--data-dir",  "/tmp",
                          "--job-workers", job_workers, "--listen", "127.0.0.1:0", NULL};
    harness_expect_refused(args, message);
}

static void test_worker_refusals(void **state)
{
    expect_refused_worker("sqlite", "1", "augserve worker needs a PostgreSQL store");
    expect_refused_worker(pg_cluster_url(), "0", "job_workers 0 would run no jobs");
    harness_pass(state);
}

int main(int argc, char **argv)
{
    pg_test_skip_without_binaries();
#define TEST(f) cmocka_unit_test_setup_teardown(f, pg_cluster_setup, pg_cluster_teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_worker_runs_what_the_api_server_queues),
        TEST(test_two_api_servers_share_a_job),
        TEST(test_model_added_on_one_is_served_by_the_other),
        TEST(test_a_dead_workers_job_moves),
        TEST(test_listener_reconnects),
        TEST(test_worker_refusals),
    };
#undef TEST
    return harness_main(argc, argv, "scale-out on postgresql", tests,
                        sizeof tests / sizeof tests[0]);
}
