/* The jobs tests' client helpers (job_client.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "job_client.h"

void job_sleep_ms(long ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0) {
    }
}

void job_send(const struct server *srv, const char *method, const char *path, const char *body,
              const char *key, struct http_response *r)
{
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {"Content-Type: application/json", key ? auth : NULL, NULL};
    struct http_request req = {.method = method,
                               .path = path,
                               .headers = headers,
                               .body = body,
                               .body_size = body ? strlen(body) : 0};
    http_send(srv, &req, r);
}

json_t *job_get(const struct server *srv, const char *id, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    struct http_response r;
    job_send(srv, "GET", path, NULL, key, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    return doc;
}

json_t *job_wait_state(const struct server *srv, const char *id, const char *state)
{
    return job_wait_state_for(srv, id, state, WAIT_S);
}

json_t *job_wait_state_for(const struct server *srv, const char *id, const char *state,
                           double seconds)
{
    double deadline = harness_now() + seconds;
    for (;;) {
        json_t *doc = job_get(srv, id, NULL);
        const char *now = json_str(doc, "state");
        if (strcmp(now, state) == 0) return doc;
        int final = strcmp(now, "queued") != 0 && strcmp(now, "running") != 0;
        if (final || harness_now() > deadline)
            fail_msg("job %s is %s (error: %s), not %s", id, now,
                     json_string_value(json_object_get(doc, "error")), state);
        json_decref(doc);
        job_sleep_ms(20);
    }
}

struct server *job_restart_on(void **state, const struct server *first, const char *settings)
{
    json_t *doc = json_loads(settings, 0, NULL);
    json_object_set_new(doc, "data_dir", json_string(first->data_dir));
    char *extra = json_dumps(doc, JSON_COMPACT);
    struct server *srv = harness_start(state, extra);
    free(extra);
    json_decref(doc);
    return srv;
}

void job_submit(const struct server *srv, const char *kind, const char *params, char id[32])
{
    char *body = NULL;
    assert_true(asprintf(&body, "{\"kind\": \"%s\", \"params\": %s}", kind, params) > 0);
    struct http_response r;
    job_send(srv, "POST", "/v1/jobs", body, NULL, &r);
    free(body);
    assert_status(&r, 202);
    json_t *doc = http_json(&r);
    snprintf(id, 32, "%s", json_str(doc, "id"));
    json_decref(doc);
    http_response_free(&r);
}

void job_wait_progress(const struct server *srv, const char *id, double fraction)
{
    double deadline = harness_now() + WAIT_S;
    for (;;) {
        json_t *doc = job_get(srv, id, NULL);
        const char *now = json_str(doc, "state");
        double done =
            json_real_value(json_object_get(json_object_get(doc, "progress"), "fraction"));
        int running = strcmp(now, "running") == 0, over = strcmp(now, "succeeded") == 0;
        json_decref(doc);
        if (running && done >= fraction) return;
        if (over || harness_now() > deadline)
            fail_msg("job %s never ran past %g while running", id, fraction);
        job_sleep_ms(5);
    }
}

void job_expect_refusal(const struct server *srv, const char *kind, const char *params, long status,
                        const char *needle)
{
    char *body = NULL;
    assert_true(asprintf(&body, "{\"kind\": \"%s\", \"params\": %s}", kind, params) > 0);
    struct http_response r;
    job_send(srv, "POST", "/v1/jobs", body, NULL, &r);
    free(body);
    if (r.status != status) fail_msg("%s: %ld, not %ld: %s", params, r.status, status, r.body);
    assert_contains(r.body, needle);
    http_response_free(&r);
}

void job_import_dataset(const struct server *srv, const char *src, char id[64])
{
    char out[PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/datasets", srv->data_dir);
    const char *args[] = {"dataset", "import", src, "--out", out, NULL};
    char *text, *errors;
    int status = harness_run_binary(args, &text, &errors);
    if (status != 0) fail_msg("dataset import: %d: %s", status, errors);
    json_t *report = json_loads(text, 0, NULL);
    assert_non_null(report);
    snprintf(id, 64, "%s", json_str(report, "id"));
    json_decref(report);
    free(text);
    free(errors);
}

json_t *job_kill_and_resume(void **state, struct server *first, const char *id, double fraction,
                            const char *log_needle, struct server **second)
{
    job_wait_progress(first, id, fraction);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(first->wait_status));
    return job_resume(state, first, id, log_needle, second);
}

struct server *job_restart(void **state, const struct server *first)
{
    char settings[PATH_MAX + 64];
    snprintf(settings, sizeof settings, "{\"job_threads\": 2, \"models_dir\": \"%s\"}",
             harness_models_dir());
    return job_restart_on(state, first, settings);
}

json_t *job_resume(void **state, const struct server *first, const char *id, const char *log_needle,
                   struct server **second)
{
    return job_resume_for(state, first, id, log_needle, WAIT_S, second);
}

json_t *job_resume_for(void **state, const struct server *first, const char *id,
                       const char *log_needle, double seconds, struct server **second)
{
    *second = job_restart(state, first);
    json_t *doc = job_wait_state_for(*second, id, "succeeded", seconds);
    assert_int_equal(json_int(doc, "attempts"), 2);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    struct http_response r;
    http_get(*second, path, &r);
    assert_status(&r, 200);
    assert_contains(r.body, log_needle);
    http_response_free(&r);
    return doc;
}

void job_expect_only_artifacts(const struct server *srv, const char *id)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/jobs/%s", srv->data_dir, id);
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int artifacts = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strcmp(e->d_name, "artifacts") != 0) fail_msg("%s holds %s", path, e->d_name);
        artifacts = 1;
    }
    closedir(dir);
    assert_true(artifacts);
}

void job_cancel(const struct server *srv, const char *id)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    struct http_response r;
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_true(r.status == 200 || r.status == 202 || r.status == 204);
    http_response_free(&r);
}

void job_cancel_running(const struct server *srv, const char *kind, const char *params)
{
    char id[32];
    job_submit(srv, kind, params, id);
    job_wait_progress(srv, id, 0.0001);
    job_cancel(srv, id);
    json_decref(job_wait_state(srv, id, "cancelled"));
}

int job_expect_count_resumed(json_t *doc, int units)
{
    json_t *result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "total"), units * (units + 1) / 2);
    assert_int_equal(json_int(doc, "attempts"), 2);
    int resumed = (int)json_int(result, "resumed_from");
    assert_true(resumed >= units / 4 && resumed < units);
    return resumed;
}

/* units.csv of a job: how often each unit 1..units appears, and which attempt counted it. */
void job_check_units_once(const struct server *srv, const char *id, int units, int resumed)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/units.csv", id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    int *seen = calloc((size_t)units + 1, sizeof *seen);
    char *save = NULL;
    int lines = 0;
    for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (lines++ == 0) {
            assert_string_equal(line, "unit,attempt");
            continue;
        }
        int unit, attempt;
        assert_int_equal(sscanf(line, "%d,%d", &unit, &attempt), 2);
        assert_true(unit >= 1 && unit <= units);
        seen[unit]++;
        /* Units up to the checkpoint were counted by the first start, the rest by the second. */
        assert_int_equal(attempt, unit <= resumed ? 1 : 2);
    }
    for (int u = 1; u <= units; u++)
        if (seen[u] != 1) fail_msg("unit %d is in units.csv %d times", u, seen[u]);
    free(seen);
    http_response_free(&r);
}

void job_expect_trials_file(const struct server *srv, const char *id, int trials)
{
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/trials.jsonl", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    const char *next = r.body;
    for (json_int_t k = 0; k < trials; k++) {
        const char *end = strchr(next, '\n');
        if (!end) fail_msg("trials.jsonl ends before trial %d:\n%s", (int)k, r.body);
        json_t *row = json_loadb(next, (size_t)(end - next), 0, NULL);
        assert_non_null(row);
        assert_int_equal(json_int(row, "trial"), k);
        json_decref(row);
        next = end + 1;
    }
    assert_int_equal(next - r.body, (long)r.body_size);
    http_response_free(&r);
}
