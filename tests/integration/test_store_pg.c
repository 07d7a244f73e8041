/* The whole server on a PostgreSQL store (tests/pg/pg-start.sh's server, a database per test):
 * a job runs to its end and its records and a saved policy outlive the server into another one
 * with another data_dir, so they were in PostgreSQL and not in a file, and a second server runs
 * jobs of the store while the first runs; a job killed with kill -9 resumes on the next server
 * from its checkpoint with every unit counted once; a server frozen (SIGSTOP) past its job's lease
 * loses the job to another, which finishes it, and records nothing of it once it wakes; a store
 * that cannot be reached, or is neither sqlite nor a URL, stops start-up with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "job_client.h"
#include "pg_test_db.h"

/* The running test's database, its URL and the servers' settings: {"debug_routes": true,
 * "store": <its URL>}. */
static char database[64];
static char url[512];
static char settings[640];

static int setup(void **state)
{
    pg_test_create_database(database, url);
    snprintf(settings, sizeof settings, "{\"debug_routes\": true, \"store\": \"%s\"}", url);
    return harness_setup(state);
}

/* The servers stop first: dropping the database under them would fail their last writes. */
static int teardown(void **state)
{
    int rc = harness_teardown(state);
    pg_test_drop_database(database);
    return rc;
}

/* Exits non-zero before listening, with the message. */
static void expect_refused_start(const char *store, const char *message)
{
    const char *args[] = {"--store", store, "--data-dir", "/tmp", "--listen", "127.0.0.1:0", NULL};
    harness_expect_refused(args, message);
}

static void test_records_outlive_the_server(void **state)
{
    struct server *first = harness_start(state, settings);
    char id[32];
    job_submit(first, "count", "{\"units\": 4}", id);
    json_t *doc = job_wait_state(first, id, "succeeded");
    assert_int_equal(json_int(json_object_get(doc, "result"), "total"), 1 + 2 + 3 + 4);
    json_decref(doc);
    struct http_response r;
    job_send(first, "POST", "/v1/policies",
             "{\"name\": \"tilt\", \"policy\": {\"op\": \"Rotate\", \"degrees\": 17}}", NULL, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    /* Another server on the store, while the first runs (with a data_dir of its own): it runs a
     * job too, which the first sees. */
    struct server *other = harness_start(state, settings);
    char other_id[32];
    job_submit(other, "count", "{\"units\": 3}", other_id);
    doc = job_wait_state(first, other_id, "succeeded");
    assert_int_equal(json_int(json_object_get(doc, "result"), "total"), 1 + 2 + 3);
    json_decref(doc);
    assert_int_equal(server_stop(other, SIGTERM, 15000), 0);
    assert_int_equal(server_stop(first, SIGTERM, 15000), 0);

    /* A fresh data_dir (harness_start makes one): only the store holds what the first knew. */
    struct server *second = harness_start(state, settings);
    doc = job_get(second, id, NULL);
    assert_string_equal(json_str(doc, "state"), "succeeded");
    assert_int_equal(json_int(json_object_get(doc, "result"), "total"), 10);
    json_decref(doc);
    job_send(second, "GET", "/v1/policies/tilt", NULL, NULL, &r);
    assert_status(&r, 200);
    assert_contains(r.body, "Rotate");
    http_response_free(&r);
    /* Its events, from the store: queued, running, succeeded, in order. */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    job_send(second, "GET", path, NULL, NULL, &r);
    assert_status(&r, 200);
    const char *queued = strstr(r.body, "\"state\":\"queued\"");
    const char *running = strstr(r.body, "\"state\":\"running\"");
    const char *succeeded = strstr(r.body, "\"state\":\"succeeded\"");
    assert_true(queued && running && succeeded && queued < running && running < succeeded);
    http_response_free(&r);
    harness_pass(state);
}

static void test_kill9_then_resume(void **state)
{
    const int units = 40;
    struct server *first = harness_start(state, settings);
    char id[32], params[64];
    snprintf(params, sizeof params, "{\"units\": %d, \"unit_ms\": 30}", units);
    job_submit(first, "count", params, id);
    job_wait_progress(first, id, 0.25);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(first->wait_status));

    /* On first's data_dir, where the kind's units.csv is: the store says where it stopped. */
    struct server *second = job_restart_on(state, first, settings);
    json_t *doc = job_wait_state(second, id, "succeeded");
    job_expect_count_resumed(doc, units);
    json_decref(doc);
    harness_pass(state);
}

/* The value of the sample `name` (a series without labels) in srv's /metrics. */
static long long metric(const struct server *srv, const char *name)
{
    struct http_response r;
    job_send(srv, "GET", "/metrics", NULL, NULL, &r);
    assert_status(&r, 200);
    char needle[128];
    snprintf(needle, sizeof needle, "\n%s ", name);
    const char *at = strstr(r.body, needle);
    if (!at) fail_msg("/metrics has no %s", name);
    long long value = strtoll(at + strlen(needle), NULL, 10);
    http_response_free(&r);
    return value;
}

/* A server frozen past its job's lease (SIGSTOP: a pause of the process, as a stalled machine's)
 * loses the job: another server on the store finds the lease expired, queues the job again and
 * finishes it from the checkpoint. Woken up (SIGCONT), the first finds its lease lost and records
 * nothing: the job's result, attempts and events stay the second's. */
static void test_a_frozen_server_loses_its_lease(void **state)
{
    const int units = 30;
    char leased[700];
    snprintf(leased, sizeof leased,
             "{\"debug_routes\": true, \"store\": \"%s\", \"heartbeat_s\": 1, \"lease_s\": 3}",
             url);
    struct server *first = harness_start(state, leased);
    char id[32], params[64];
    snprintf(params, sizeof params, "{\"units\": %d, \"unit_ms\": 100}", units);
    job_submit(first, "count", params, id);
    job_wait_progress(first, id, 0.2);
    assert_int_equal(kill(first->pid, SIGSTOP), 0);

    /* On first's data_dir, where the kind's units.csv is; the first is alive, only silent: its
     * lease expires by time, 3 s after its last heartbeat. */
    struct server *second = job_restart_on(state, first, leased);
    json_t *doc = job_wait_state_for(second, id, "succeeded", 60);
    json_t *result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "total"), units * (units + 1) / 2);
    assert_int_equal(json_int(doc, "attempts"), 2);
    int resumed = (int)json_int(result, "resumed_from");
    assert_true(resumed >= units / 5);
    char *before = json_dumps(doc, JSON_SORT_KEYS);
    json_decref(doc);
    assert_int_equal(metric(second, "augserve_job_leases_expired_total"), 1);
    assert_int_equal(metric(second, "augserve_job_retries_total"), 1);

    assert_int_equal(kill(first->pid, SIGCONT), 0);
    /* The first's runner stops the job at its next check, having recorded nothing. */
    for (int i = 0; i < 100 && metric(first, "augserve_job_leases_lost_total") == 0; i++)
        job_sleep_ms(100);
    assert_int_equal(metric(first, "augserve_job_leases_lost_total"), 1);
    doc = job_get(second, id, NULL);
    char *after = json_dumps(doc, JSON_SORT_KEYS);
    json_decref(doc);
    assert_string_equal(after, before);
    free(before);
    free(after);
    /* Its events end with the second's "succeeded": nothing of the first's after it. */
    struct http_response r;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    job_send(second, "GET", path, NULL, NULL, &r);
    assert_status(&r, 200);
    const char *succeeded = strstr(r.body, "\"state\":\"succeeded\"");
    assert_non_null(succeeded);
    assert_null(strstr(succeeded, "event:"));
    http_response_free(&r);
    char *log = server_stderr(first);
    assert_non_null(strstr(log, "was lost"));
    free(log);
    /* Nor did its units reach units.csv: what it wrote once woken went to a file of its own. */
    job_check_units_once(second, id, units, resumed);
    harness_pass(state);
}

static void test_refused_stores(void **state)
{
    /* No server on that socket. */
    expect_refused_start("postgresql://augserve@%2Fnonexistent/augserve",
                         "cannot connect to the PostgreSQL store");
    /* libpq cannot read it. */
    expect_refused_start("postgresql://augserve@localhost:notaport/augserve",
                         "cannot connect to the PostgreSQL store");
    expect_refused_start("mysql://db/augserve", "must be sqlite or a postgresql:// URL");
    harness_pass(state);
}

int main(int argc, char **argv)
{
    pg_test_skip_without_binaries();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_outlive_the_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_frozen_server_loses_its_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_stores, setup, teardown),
    };
    return harness_main(argc, argv, "store on postgresql", tests, sizeof tests / sizeof tests[0]);
}
