/* The crash test of the scale-out (issue 19): one API server with job_workers 0 and three
 * `augserve worker` processes on one PostgreSQL store, sharing a data_dir, run a 20-trial
 * evolution search (the affinity objective on the colour model). A search's trials are child jobs
 * that the search's own threads claim, so they run in the process that runs the search:
 *   - the search's worker is killed with SIGKILL while a trial runs: its leases (the search's and
 *     its running trials') are expired by a live worker, which takes the search, resumes it from
 *     its checkpoint and runs the trials again;
 *   - that worker is then frozen with SIGSTOP past its lease (lease_s 3): the third worker takes
 *     the search over; the frozen one, resumed with SIGCONT, finds its leases lost (its
 *     augserve_job_leases_lost_total counts them) and records nothing.
 * Then every trial completed exactly once: one child per trial, each succeeded once (one
 * "succeeded" event), trials.jsonl holds each trial once in order, and the trials and the
 * leaderboard (trial, params, value, rank) equal those of the same search with the same seed on
 * a single SQLite server that nothing interrupted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colour_dataset.h"
#include "colour_model.h"
#include "harness.h"
#include "job_client.h"
#include "pg_cluster.h"
#include "pg_test_db.h"

#define TRIALS  20
#define WORKERS 3
/* Training images per class, the split the trials score, each made 512 x 512 and back: a trial
 * takes tens of milliseconds in a Release build (wait_trial_start signals a worker within a few of
 * a trial's start) and seconds in a sanitized one. */
#define PER_CLASS 100
/* How long a search may take: 20 trials of seconds each, two at once, in a sanitized build on a
 * busy machine. */
#define SEARCH_S 600.0
#define SPACE                                                                                      \
    "{\"seq\": [{\"op\": \"Resize\", \"height\": 512, \"width\": 512}, {\"op\": \"Solarize\", "    \
    "\"threshold\": {\"$search\": {\"int\": [0, 256]}}}, {\"op\": \"Resize\", \"height\": 8, "     \
    "\"width\": 8}]}"
/* The settings of a process on the test's store, sharing `with`'s data_dir (NULL: a fresh one):
 * lease_s PG_CLUSTER_LEASE_S (3), heartbeat_s 1. Idle runners wake on NOTIFY, as they would
 * after an hour's poll. */
static const char *settings(const struct server *with, int job_workers)
{
    return pg_cluster_settings(with, job_workers, 3600);
}

/* The search's params on dataset ds. */
static char *search_params(const char *ds)
{
    char *text = NULL;
    assert_true(asprintf(&text,
                         "{\"space\": " SPACE ", \"algorithm\": {\"name\": \"evolution\", "
                         "\"population\": 4, \"sample\": 2}, \"objective\": \"affinity\", "
                         "\"budget\": {\"trials\": %d}, \"parallel\": 2, \"dataset\": \"%s\", "
                         "\"splits\": {\"val\": \"train\"}, \"model\": \"colour\", \"seed\": 7}",
                         TRIALS, ds) > 0);
    return text;
}

/* GET path's JSON (the caller frees it), or fails. */
static json_t *get_json(const struct server *srv, const char *path)
{
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    return doc;
}

/* The children of search id (at most 100): a new array. */
static json_t *children_of(const struct server *srv, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs?parent=%s&limit=100", id);
    json_t *doc = get_json(srv, path);
    json_t *children = json_incref(json_object_get(doc, "jobs"));
    json_decref(doc);
    return children;
}

/* The index of the live worker whose log says it started attempt `attempt` of job id, once one
 * does (failing after WAIT_S). */
static int runner_of(struct server *const workers[WORKERS], const char *id, int attempt)
{
    char needle[96];
    snprintf(needle, sizeof needle, "job %s (search) starts, attempt %d", id, attempt);
    for (double deadline = harness_now() + WAIT_S; harness_now() < deadline; job_sleep_ms(50))
        for (int i = 0; i < WORKERS; i++) {
            if (!workers[i]) continue;
            char *log = server_stderr(workers[i]);
            int found = strstr(log, needle) != NULL;
            free(log);
            if (found) return i;
        }
    fail_msg("no worker started attempt %d of search %s", attempt, id);
    return -1;
}

/* The attempts of job id. */
static int attempts_of(const struct server *api, const char *id)
{
    json_t *doc = job_get(api, id, NULL);
    int attempts = (int)json_int(doc, "attempts");
    json_decref(doc);
    return attempts;
}

/* The trials srv's log shows started. */
static int trials_started(const struct server *srv)
{
    char *log = server_stderr(srv);
    int n = 0;
    for (const char *at = log; (at = strstr(at, "(search-trial) starts")); at++)
        n++;
    free(log);
    return n;
}

/* Waits until srv starts one more trial (failing after WAIT_S): signalled at once, it is then
 * caught mid-trial, the trial having most of its run ahead of it. */
static void wait_trial_start(const struct server *srv)
{
    int before = trials_started(srv);
    for (double deadline = harness_now() + WAIT_S; harness_now() < deadline; job_sleep_ms(2))
        if (trials_started(srv) > before) return;
    fail_msg("the worker started no trial in %.0f s", WAIT_S);
}

/* The leaderboard's rank, trial, state and value columns, one row a line (the caller frees
 * it): what does not depend on timing (its seconds and child ids do). */
static char *leaderboard(const struct server *srv, const char *id)
{
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/leaderboard.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    char *out = calloc(1, r.body_size + 1), *to = out;
    assert_non_null(out);
    for (const char *line = r.body; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        int commas = 0;
        for (const char *c = line; c < end && commas < 4; c++) {
            commas += *c == ',';
            *to++ = commas < 4 ? *c : '\n';
        }
        line = end + 1;
    }
    http_response_free(&r);
    return out;
}

/* Each of the search's trials ran as one child, which succeeded once; the trials' rows hold
 * each child's value. The number of times a trial was started again (its children's attempts
 * past the first). */
static int expect_each_trial_once(const struct server *api, const char *id, json_t *trials)
{
    json_t *children = children_of(api, id);
    assert_int_equal(json_array_size(children), TRIALS);
    int seen[TRIALS] = {0}, again = 0;
    size_t i;
    json_t *child;
    json_array_foreach(children, i, child)
    {
        json_int_t k = json_int(json_object_get(child, "params"), "trial");
        assert_true(k >= 0 && k < TRIALS);
        seen[k]++;
        json_t *row = json_array_get(trials, (size_t)k);
        assert_string_equal(json_str(row, "job"), json_str(child, "id"));
        assert_string_equal(json_str(child, "state"), "succeeded");
        assert_true(json_real_value(json_object_get(json_object_get(child, "result"), "value")) ==
                    json_real_value(json_object_get(row, "value")));
        again += (int)json_int(child, "attempts") - 1;
        /* Its result was recorded once: a stale attempt's end would be a second event. */
        char path[128];
        struct http_response r;
        snprintf(path, sizeof path, "/v1/jobs/%s/events", json_str(child, "id"));
        http_get(api, path, &r);
        const char *first = strstr(r.body, "\"state\":\"succeeded\"");
        assert_non_null(first);
        if (strstr(first + 1, "\"state\":\"succeeded\""))
            fail_msg("trial %d succeeded twice:\n%s", (int)k, r.body);
        http_response_free(&r);
    }
    for (int k = 0; k < TRIALS; k++)
        if (seen[k] != 1) fail_msg("trial %d has %d children", k, seen[k]);
    json_decref(children);
    return again;
}

/* The trials of two results are the same but for their durations and children. */
static void expect_same_trials(const json_t *a, const json_t *b)
{
    assert_int_equal(json_array_size(a), TRIALS);
    assert_int_equal(json_array_size(b), TRIALS);
    for (size_t i = 0; i < TRIALS; i++) {
        json_t *ra = json_copy(json_array_get(a, i)), *rb = json_copy(json_array_get(b, i));
        for (int s = 0; s < 2; s++) {
            json_object_del(s ? rb : ra, "seconds");
            json_object_del(s ? rb : ra, "job");
        }
        if (!json_equal(ra, rb)) {
            char *ta = json_dumps(ra, JSON_SORT_KEYS), *tb = json_dumps(rb, JSON_SORT_KEYS);
            fail_msg("trial %zu differs from the single node's:\n%s\n%s", i, ta, tb);
        }
        json_decref(ra);
        json_decref(rb);
    }
}

static void test_workers_killed_and_frozen(void **state)
{
    colour_model_write("colour", "{\"preprocess\": {}, \"labels\": \"labels.txt\"}",
                       "red\ngreen\nblue\n");
    struct server *api = harness_start(state, settings(NULL, 0));
    struct server *workers[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        workers[i] = harness_start_worker(state, settings(api, 1));
    char ds[64], id[32];
    colour_dataset_make(api, CLASSES, PER_CLASS, ds);
    char *params = search_params(ds);
    job_submit(api, "search", params, id);

    /* SIGKILL of the search's worker while a trial runs, a few trials in. */
    job_wait_progress(api, id, 0.2);
    int killed = runner_of(workers, id, 1);
    wait_trial_start(workers[killed]);
    assert_int_equal(server_stop(workers[killed], SIGKILL, 5000), 0);
    workers[killed] = NULL;

    /* Another worker takes the search over; frozen while a trial runs, past its lease and its
     * trial's (twice lease_s: every live process sweeps once a second). */
    int frozen = runner_of(workers, id, 2);
    wait_trial_start(workers[frozen]);
    assert_int_equal(kill(workers[frozen]->pid, SIGSTOP), 0);
    double frozen_at = harness_now();
    job_sleep_ms(2 * PG_CLUSTER_LEASE_S * 1000);
    /* The third takes it over while the frozen one sleeps (even when it froze inside a
     * transaction that locked the search's row: storage_limit_idle_transactions). */
    while (attempts_of(api, id) < 3 && harness_now() < frozen_at + WAIT_S)
        job_sleep_ms(100);
    int attempts = attempts_of(api, id);
    assert_int_equal(kill(workers[frozen]->pid, SIGCONT), 0);
    if (attempts != 3)
        fail_msg("the search is at attempt %d after %.0f s frozen", attempts,
                 harness_now() - frozen_at);
    struct server *stale = workers[frozen];
    workers[frozen] = NULL;
    /* A live worker runs it: the third. */
    assert_true(runner_of(workers, id, 3) >= 0);

    json_t *doc = job_wait_state_for(api, id, "succeeded", SEARCH_S);
    assert_int_equal(json_int(doc, "attempts"), 3);
    json_t *trials = json_object_get(json_object_get(doc, "result"), "trials");
    /* The two trials caught running (or one, twice) were run again, each to one result. */
    assert_true(expect_each_trial_once(api, id, trials) >= 2);
    /* trials.jsonl, in the shared data_dir, holds each trial once, in order. */
    job_expect_trials_file(api, id, TRIALS);

    /* The woken worker found its leases lost, the search's and its trial's, and recorded nothing
     * (the checks above). */
    double lost = 0;
    for (double deadline = harness_now() + WAIT_S; lost < 2 && harness_now() < deadline;
         job_sleep_ms(100)) {
        struct http_response r;
        http_get(stale, "/metrics", &r);
        assert_status(&r, 200);
        if (!metrics_sample(r.body, "augserve_job_leases_lost_total", &lost)) lost = 0;
        http_response_free(&r);
    }
    if (lost < 2) fail_msg("the frozen worker counts %g lost leases", lost);
    char *log = server_stderr(stale);
    assert_contains(log, "was lost");
    free(log);

    /* The same search on one SQLite server, which nothing interrupts. */
    struct server *single = harness_start_with_models(state, "\"job_threads\": 2");
    char ds1[64], id1[32];
    colour_dataset_make(single, CLASSES, PER_CLASS, ds1);
    free(params);
    params = search_params(ds1);
    job_submit(single, "search", params, id1);
    json_t *alone = job_wait_state_for(single, id1, "succeeded", SEARCH_S);
    expect_same_trials(trials, json_object_get(json_object_get(alone, "result"), "trials"));
    char *board = leaderboard(api, id), *board1 = leaderboard(single, id1);
    assert_string_equal(board, board1);
    free(board);
    free(board1);
    json_decref(alone);
    json_decref(doc);
    free(params);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    pg_test_skip_without_binaries();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_workers_killed_and_frozen, pg_cluster_setup,
                                        pg_cluster_teardown),
    };
    return harness_main(argc, argv, "crash test: workers killed and frozen", tests, 1);
}
