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
 *     deleted through it stops being served there; a policy saved or deleted through one is known
 *     or unknown to the other after its NOTIFY;
 *   - a worker killed mid-job: its lease expires (its process has ended), a sweep queues the job
 *     again and its NOTIFY wakes another worker, idle with a poll of an hour, which resumes it from
 *     its checkpoint (units.csv, served by the API server from the shared data_dir, has every
 *     unit once);
 *   - a listener whose connection the database ended connects again, and a job queued meanwhile
 *     still runs at once;
 *   - a worker is refused on SQLite and with job_workers 0, with a message;
 *   - a dataset upload still arriving at one API server survives another's start-up (and every
 *     process's sweep) and is imported; the partial upload of a killed server, and those of a
 *     process on another machine once its heartbeat in the store is older than lease_s, are
 *     removed by the survivors' sweeps, and one whose process beats is kept;
 *   - a dataset record another server is still submitting (no import job yet) is left alone by a
 *     server starting, and failed once it is lease_s old;
 *   - a split derived through one API server is there through the other, which had the dataset
 *     open already, and a dataset deleted through one is soon no longer mapped by the other;
 *   - feedback on one CTAugment state sent through both API servers at once loses no update. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "colour_model.h"
#include "data_build.h"
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

/* POST /v1/policies/validate of {"seq": ["mine"]} to srv until it answers status, for
 * NOTIFY_WAIT_S at most; whether it did. */
static int wait_validate(const struct server *srv, long status)
{
    for (double deadline = harness_now() + NOTIFY_WAIT_S;; job_sleep_ms(50)) {
        struct http_response r;
        job_send(srv, "POST", "/v1/policies/validate", "{\"seq\": [\"mine\"]}", NULL, &r);
        long got = r.status;
        http_response_free(&r);
        if (got == status) return 1;
        if (harness_now() > deadline) return 0;
    }
}

static void test_policy_saved_on_one_is_known_to_the_other(void **state)
{
    struct server *one = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *other = harness_start(state, pg_cluster_settings(one, 0, 3600));
    /* A name no server knows yet is no policy. */
    assert_true(wait_validate(other, 422));
    struct http_response r;
    job_send(one, "PUT", "/v1/policies/mine", "{\"policy\": {\"op\": \"Invert\"}}", NULL, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    /* The other reads the store's policies again when told; its start was before the save. */
    if (!wait_validate(other, 200))
        fail_msg("the other server does not know the saved policy after %.0f s", NOTIFY_WAIT_S);
    job_send(one, "DELETE", "/v1/policies/mine", NULL, NULL, &r);
    assert_status(&r, 204);
    http_response_free(&r);
    if (!wait_validate(other, 422))
        fail_msg("the other server still knows the deleted policy after %.0f s", NOTIFY_WAIT_S);
    harness_pass(state);
}

/* ---- Uploads across API servers --------------------------------------------------------------
 */

/* A request body sent up to `gate` bytes, then held until the test opens it: an upload arriving as
 * slowly as the test wants. Held for WAIT_S at most, so that a failed test cannot hang. */
struct gated_body {
    const char *data;
    size_t size, sent, gate;
    atomic_int open;
    double until;
};

static size_t gated_read(char *buffer, size_t size, size_t nitems, void *arg)
{
    struct gated_body *b = arg;
    while (b->sent == b->gate && !atomic_load(&b->open) && harness_now() < b->until)
        job_sleep_ms(20);
    size_t limit = b->sent < b->gate ? b->gate : b->size, n = limit - b->sent;
    if (n > size * nitems) n = size * nitems;
    memcpy(buffer, b->data + b->sent, n);
    b->sent += n;
    return n;
}

static const char *const octets[] = {"Content-Type: application/octet-stream", NULL};

#define UPLOAD_PATH_MAX (PATH_MAX + 512)

/* The path of the partial upload in data_dir/uploads once it holds `bytes` bytes (there is one). */
static void wait_partial(const char *data_dir, size_t bytes, char path[UPLOAD_PATH_MAX])
{
    char dir_path[PATH_MAX];
    snprintf(dir_path, sizeof dir_path, "%s/uploads", data_dir);
    for (double deadline = harness_now() + WAIT_S;; job_sleep_ms(20)) {
        DIR *dir = opendir(dir_path);
        for (struct dirent *d; dir && (d = readdir(dir));) {
            struct stat st;
            snprintf(path, UPLOAD_PATH_MAX, "%s/%s", dir_path, d->d_name);
            if (!strncmp(d->d_name, ".partial-", 9) && stat(path, &st) == 0 &&
                (size_t)st.st_size >= bytes) {
                closedir(dir);
                return;
            }
        }
        if (dir) closedir(dir);
        if (harness_now() > deadline)
            fail_msg("no partial upload of %zu bytes in %s", bytes, dir_path);
    }
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether path is gone within NOTIFY_WAIT_S (a sweep every heartbeat_s, 1 s). */
static int wait_gone(const char *path)
{
    for (double deadline = harness_now() + NOTIFY_WAIT_S; exists(path); job_sleep_ms(50))
        if (harness_now() > deadline) return 0;
    return 1;
}

/* A class-folder dataset of 6 images (3 cats, 3 dogs) as a tar.gz: its bytes. */
static char *pets_archive(size_t *size)
{
    struct db_entry entries[6];
    char names[6][32];
    void *png[6];
    for (int k = 0; k < 6; k++) {
        size_t n;
        png[k] = db_png(8, 8, 3, k, &n);
        snprintf(names[k], sizeof names[k], "%s/%d.png", k < 3 ? "cat" : "dog", k);
        entries[k] = (struct db_entry){names[k], png[k], n, DB_FILE, NULL};
    }
    char *dir = db_temp_dir(), path[1024];
    snprintf(path, sizeof path, "%s/pets.tgz", dir);
    db_write_archive(path, DB_TGZ, entries, 6);
    char *bytes = harness_read_file(path, size);
    db_remove(dir);
    free(dir);
    for (int k = 0; k < 6; k++)
        free(png[k]);
    return bytes;
}

/* GETs path from srv, which must answer status: its JSON (NULL for a 404). */
static json_t *get_json(const struct server *srv, const char *path, long status)
{
    struct http_response r;
    http_get(srv, path, &r);
    if (r.status != status) fail_msg("GET %s: %ld, not %ld: %s", path, r.status, status, r.body);
    json_t *doc = status == 404 ? NULL : http_json(&r);
    http_response_free(&r);
    return doc;
}

/* A dataset upload (pets_archive) to one server, held half-way. */
struct held_upload {
    char *tgz;
    struct gated_body body;
    struct http_request req;
    struct http_async *call;
    char partial[UPLOAD_PATH_MAX]; /* its partial file */
};

/* Starts POST path (/v1/datasets?name=...) to srv on its own thread, and waits for its first half
 * to be in its partial file under data_dir (srv's, which the harness's struct names only for the
 * server that made it). */
static void held_upload_start(struct held_upload *u, const struct server *srv, const char *data_dir,
                              const char *path)
{
    size_t size;
    u->tgz = pets_archive(&size);
    u->body.data = u->tgz;
    u->body.size = size;
    u->body.sent = 0;
    u->body.gate = size / 2;
    u->body.until = harness_now() + WAIT_S;
    atomic_init(&u->body.open, 0);
    u->req = (struct http_request){.method = "POST",
                                   .path = path,
                                   .headers = octets,
                                   .read_fn = gated_read,
                                   .read_arg = &u->body,
                                   .read_size = (curl_off_t)size,
                                   .timeout_ms = (long)(WAIT_S * 1000)};
    u->call = http_async_start(srv, &u->req);
    wait_partial(data_dir, u->body.gate, u->partial);
}

/* Lets the rest of the body go and takes the answer into r. */
static void held_upload_finish(struct held_upload *u, struct http_response *r)
{
    atomic_store(&u->body.open, 1);
    http_async_join(u->call, r);
    free(u->tgz);
}

/* A response of status naming a new resource's "id": format (a path with one %s) of that id, into
 * path; r is freed. */
static void path_of_new(struct http_response *r, long status, const char *format, char path[128])
{
    assert_status(r, status);
    json_t *doc = http_json(r);
    snprintf(path, 128, format, json_str(doc, "id"));
    json_decref(doc);
    http_response_free(r);
}

/* The dataset's document through srv once its import has ended ready. */
static json_t *wait_ready(const struct server *srv, const char *path)
{
    for (double deadline = harness_now() + WAIT_S;; job_sleep_ms(50)) {
        json_t *doc = get_json(srv, path, 200);
        const char *now = json_str(doc, "state");
        if (!strcmp(now, "ready")) return doc;
        if (strcmp(now, "importing") != 0 || harness_now() > deadline)
            fail_msg("%s is %s: %s", path, now, json_string_value(json_object_get(doc, "error")));
        json_decref(doc);
    }
}

static void test_upload_survives_another_server_starting(void **state)
{
    struct server *front = harness_start(state, pg_cluster_settings(NULL, 1, 3600));
    struct held_upload u;
    held_upload_start(&u, front, front->data_dir, "/v1/datasets?name=slow");

    /* Another API server on the same data_dir starts (its start-up sweeps data_dir/uploads before
     * it listens), and an orphan planted after it (a build's before owners) is swept away, so the
     * lease sweeps have passed over the upload too. */
    struct server *back = harness_start(state, pg_cluster_settings(front, 0, 3600));
    char orphan[PATH_MAX + 32];
    snprintf(orphan, sizeof orphan, "%s/uploads/.partial-AbC123", front->data_dir);
    db_write_file(orphan, "half", 4);
    if (!wait_gone(orphan)) fail_msg("no sweep removed %s", orphan);
    if (!exists(u.partial)) fail_msg("the upload still arriving, %s, was removed", u.partial);

    struct http_response r;
    held_upload_finish(&u, &r);
    char path[128];
    path_of_new(&r, 202, "/v1/datasets/%s", path);
    /* Imported by front's runner, seen through back. */
    json_t *doc = wait_ready(back, path);
    assert_int_equal(json_int(doc, "images"), 6);
    json_decref(doc);
    harness_pass(state);
}

static void test_orphaned_uploads_are_removed(void **state)
{
    struct server *survivor = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *doomed = harness_start(state, pg_cluster_settings(survivor, 0, 3600));
    struct held_upload u;
    held_upload_start(&u, doomed, survivor->data_dir, "/v1/datasets?name=doomed");

    /* Partial uploads of two processes of another machine, whose pids tell nothing here: one
     * beats (its heartbeat an hour ahead), the other has no heartbeat in the store. */
    char beating[PATH_MAX + 64], silent[PATH_MAX + 64];
    snprintf(beating, sizeof beating, "%s/uploads/.partial-elsewhere:4242:0badf00d-Ab12Cd",
             survivor->data_dir);
    snprintf(silent, sizeof silent, "%s/uploads/.partial-elsewhere:4343:0badf00d-Ab12Cd",
             survivor->data_dir);
    pg_test_sql(pg_cluster_database(),
                "INSERT INTO processes (id, started_ms, heartbeat_ms) VALUES"
                " ('elsewhere:4242:0badf00d', 0,"
                " CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + 3600000)");
    db_write_file(beating, "half", 4);
    db_write_file(silent, "half", 4);

    assert_int_equal(server_stop(doomed, SIGKILL, 5000), 0);
    struct http_response r;
    held_upload_finish(&u, &r);
    assert_true(r.status == 0); /* no answer: the connection died with its server */
    http_response_free(&r);

    /* The survivor's sweeps remove the killed server's upload (its pid is gone) and the silent
     * process's, and keep the one whose process beats until its heartbeat is lease_s old. */
    if (!wait_gone(u.partial)) fail_msg("the killed server's upload %s is still there", u.partial);
    if (!wait_gone(silent)) fail_msg("%s, of a process never seen, is still there", silent);
    assert_true(exists(beating));
    pg_test_sql(pg_cluster_database(), "UPDATE processes SET heartbeat_ms = heartbeat_ms - 7200000"
                                       " WHERE id = 'elsewhere:4242:0badf00d'");
    if (!wait_gone(beating)) fail_msg("%s is still there after its owner went silent", beating);
    char *log = server_stderr(survivor);
    assert_contains(log, "a partial upload whose server is gone");
    free(log);
    harness_pass(state);
}

/* How many mappings of srv's process are of files under dir (with removed: of removed files only),
 * from its /proc maps, read by line (procfs gives no size to read by). */
static int mappings_under(const struct server *srv, const char *dir, int removed)
{
    char path[64], line[PATH_MAX + 256];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)srv->pid);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot read %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, dir) && (!removed || strstr(line, "(deleted)"));
    fclose(f);
    return n;
}

static void test_dataset_shared_by_two_servers(void **state)
{
    struct server *one = harness_start(state, pg_cluster_settings(NULL, 1, 3600));
    struct server *other = harness_start(state, pg_cluster_settings(one, 0, 3600));
    size_t size;
    char *tgz = pets_archive(&size);
    struct http_response r;
    http_post(one, "/v1/datasets?name=pets", "application/octet-stream", tgz, size, &r);
    free(tgz);
    char path[128], images[192];
    path_of_new(&r, 202, "/v1/datasets/%s", path);
    json_t *doc = wait_ready(other, path);
    /* The other has it open now (its document lists its splits). */
    const char *from = json_str(json_array_get(json_object_get(doc, "splits"), 0), "name");
    char body[256];
    snprintf(body, sizeof body, "{\"name\": \"half\", \"from\": \"%s\", \"fraction\": 0.5}", from);
    json_decref(doc);

    /* A split derived through one is there through the other, which opened the dataset before. */
    char splits[160];
    snprintf(splits, sizeof splits, "%s/splits", path);
    job_send(one, "POST", splits, body, NULL, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    snprintf(images, sizeof images, "%s/images?split=half&limit=10", path);
    doc = get_json(other, images, 200);
    assert_int_equal(json_int(doc, "total"), 3);
    json_decref(doc);
    doc = get_json(other, path, 200);
    int listed = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(doc, "splits"), i, s) listed |=
        !strcmp(json_str(s, "name"), "half");
    assert_true(listed);
    json_decref(doc);
    char datasets[PATH_MAX + 16];
    snprintf(datasets, sizeof datasets, "%s/datasets", one->data_dir);
    assert_true(mappings_under(other, datasets, 0) > 0);

    /* Deleted through one: gone through the other, whose mappings of its files go at its next
     * lease sweep (heartbeat_s, 1 s). */
    job_send(one, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 204);
    http_response_free(&r);
    get_json(other, path, 404);
    for (double deadline = harness_now() + NOTIFY_WAIT_S; mappings_under(other, datasets, 1) > 0;
         job_sleep_ms(50))
        if (harness_now() > deadline)
            fail_msg("the other server still maps the removed dataset's files");
    harness_pass(state);
}

static void test_a_submission_under_way_is_not_abandoned(void **state)
{
    struct server *one = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    /* What one API server has done half-way through a submission: the record (importing, made
     * just now, no job yet) and the upload kept for it. */
    const char *id = "0123456789abcdef01234567";
    pg_test_sql(pg_cluster_database(),
                "INSERT INTO datasets (id, name, state, source, created_ms) VALUES"
                " ('0123456789abcdef01234567', 'pets', 'importing', 'upload',"
                " CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))");
    char upload[PATH_MAX + 64], path[128];
    snprintf(upload, sizeof upload, "%s/uploads/%s", one->data_dir, id);
    const struct db_entry kept = {"pets.tar.gz", "x", 1, DB_FILE, NULL};
    db_write_tree(upload, &kept, 1);
    snprintf(path, sizeof path, "/v1/datasets/%s", id);

    /* Another server starting (its start-up settles every record) and answering for it leaves it
     * to the submission under way. */
    struct server *other = harness_start(state, pg_cluster_settings(one, 0, 3600));
    json_t *doc = get_json(other, path, 200);
    assert_string_equal(json_str(doc, "state"), "importing");
    json_decref(doc);
    assert_true(exists(upload));

    /* Still without its job lease_s on, its server died mid-submission: failed, upload removed. */
    pg_test_sql(pg_cluster_database(), "UPDATE datasets SET created_ms = created_ms - 60000"
                                       " WHERE id = '0123456789abcdef01234567'");
    doc = get_json(other, path, 200);
    assert_string_equal(json_str(doc, "state"), "failed");
    assert_contains(json_str(doc, "error"), "the server stopped before the import was queued");
    json_decref(doc);
    assert_false(exists(upload));
    harness_pass(state);
}

/* ---- CTAugment states shared by API servers -------------------------------------------------
 */

/* A rate of a state's document: rates[op][0][bin]. */
static double rate_of(json_t *doc, const char *op, int bin)
{
    json_t *rates = json_object_get(json_object_get(doc, "state"), "rates");
    return json_number_value(json_array_get(json_array_get(json_object_get(rates, op), 0), bin));
}

static void test_ctaugment_feedback_through_two_servers(void **state)
{
    struct server *one = harness_start(state, pg_cluster_settings(NULL, 0, 3600));
    struct server *two = harness_start(state, pg_cluster_settings(one, 0, 3600));
    struct http_response r;
    job_send(one, "POST", "/v1/ctaugment", NULL, NULL, &r);
    char path[128];
    path_of_new(&r, 201, "/v1/ctaugment/%s/feedback", path);

    /* One feedback per bin of rotate and of solarize (17 each), proximity 0, all at once, half
     * through each server. Each is a read-modify-write of the whole state, and updates of
     * different bins commute: whatever order the store applies them in, each bin's rate is
     * decay * 1 + (1 - decay) * 0 = 0.99 once its update is applied, and 1 if it was lost. Bin b
     * is drawn from values in [b / 17, (b + 1) / 17): (b + 0.5) / 17 is bin int((b + 0.5) * 0.999)
     * = b. */
    enum { BINS = 17, N = 2 * BINS };
    char bodies[N][160];
    struct http_request reqs[N];
    struct http_async *calls[N];
    static const char *const json[] = {"Content-Type: application/json", NULL};
    for (int k = 0; k < N; k++) {
        snprintf(bodies[k], sizeof bodies[k],
                 "{\"feedback\": [{\"policy\": [[\"%s\", [%.6f]]], \"proximity\": 0}]}",
                 k < BINS ? "rotate" : "solarize", (k % BINS + 0.5) / BINS);
        reqs[k] = (struct http_request){.method = "POST",
                                        .path = path,
                                        .headers = json,
                                        .body = bodies[k],
                                        .body_size = strlen(bodies[k]),
                                        .timeout_ms = (long)(WAIT_S * 1000)};
        calls[k] = http_async_start(k % 2 ? two : one, &reqs[k]);
    }
    for (int k = 0; k < N; k++) {
        http_async_join(calls[k], &r);
        assert_status(&r, 200);
        http_response_free(&r);
    }
    path[strlen(path) - strlen("/feedback")] = '\0';
    json_t *doc = get_json(two, path, 200);
    assert_int_equal(json_int(doc, "revision"), N);
    for (int b = 0; b < BINS; b++)
        if ((float)rate_of(doc, "rotate", b) != 0.99f ||
            (float)rate_of(doc, "solarize", b) != 0.99f)
            fail_msg("bin %d: rotate %.9g, solarize %.9g, not 0.99 each: an update was lost", b,
                     rate_of(doc, "rotate", b), rate_of(doc, "solarize", b));
    json_decref(doc);
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
        TEST(test_policy_saved_on_one_is_known_to_the_other),
        TEST(test_a_dead_workers_job_moves),
        TEST(test_listener_reconnects),
        TEST(test_worker_refusals),
        TEST(test_upload_survives_another_server_starting),
        TEST(test_orphaned_uploads_are_removed),
        TEST(test_dataset_shared_by_two_servers),
        TEST(test_a_submission_under_way_is_not_abandoned),
        TEST(test_ctaugment_feedback_through_two_servers),
    };
#undef TEST
    return harness_main(argc, argv, "scale-out on postgresql", tests,
                        sizeof tests / sizeof tests[0]);
}
