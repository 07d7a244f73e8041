/* Unit tests of the job store (server/job_store.c) on a fresh database of the run's backend
 * (store_fixture.h: SQLite, or PostgreSQL for unit.job_store.postgresql): a job's life and its
 * events, the order runners claim jobs in, claims from several connections at once, reading events
 * after an id, leases (a claim's owner and token, heartbeats, expiry by time and of an ended
 * owner, attempts counted then given up, a stale token's writes refused, two handles sharing a
 * store, children queued and claimed under the parent's lease, worker ids), processes'
 * heartbeats, cancelling, listing,
 * a parent's children (claimed by it alone, listed by it, cancelled with it), and the schema's
 * migrations (from nothing, from version 1; a newer one refused). Each expectation is the state
 * machine of job_store.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dataset_store.h"
#include "job_store.h"
#include "leases.h"
#include "pg_test_db.h"
#include "policy_store.h"
#include "process_store.h"
#include "storage.h"
#include "store_fixture.h"
/* For test_a_transaction_left_idle_ends, which holds a transaction open as a frozen process does.
 */
#define AUGSERVE_STORAGE_INTERNAL
#include "storage_internal.h"

/* Creates a queued job with id "0000...<n>" of kind, params {"n": n}, owner. */
static void create(struct storage *st, int n, const char *kind, const char *owner)
{
    struct job spec = {.kind = (char *)kind, .owner = (char *)owner};
    snprintf(spec.id, sizeof spec.id, "%024d", n);
    spec.params = json_pack("{s:i}", "n", n);
    struct eng_error err;
    if (job_store_create(st, &spec, &err) != 0) fail_msg("create %d: %s", n, err.message);
    json_decref(spec.params);
}

static const char *id_of(int n)
{
    static char ids[8][JOB_ID_SIZE];
    char *id = ids[n % 8];
    snprintf(id, JOB_ID_SIZE, "%024d", n);
    return id;
}

static struct job get(struct storage *st, int n)
{
    struct job job;
    struct eng_error err;
    if (job_store_get(st, id_of(n), &job, &err) != 0) fail_msg("get %d: %s", n, err.message);
    return job;
}

/* The worker id the tests claim as. */
#define WORKER "testhost:1:00000000"

/* Job n's fencing token: its last claim's. */
static int64_t token_of(struct storage *st, int n)
{
    struct job job = get(st, n);
    int64_t token = job.lease_token;
    job_clear(&job);
    return token;
}

/* Claims one job, which must be job n. */
static void claim_expect(struct storage *st, int n)
{
    struct job job;
    struct eng_error err;
    int rc = job_store_claim(st, WORKER, &job, &err);
    if (rc != 1) fail_msg("claim: %d (%s), expected job %d", rc, rc < 0 ? err.message : "", n);
    assert_string_equal(job.id, id_of(n));
    assert_int_equal(job.state, JOB_RUNNING);
    job_clear(&job);
}

/* The job's events after `after` as "type data" lines joined by '|'. */
static char *events_text(struct storage *st, int n, int64_t after, int64_t *last)
{
    struct job_event *events;
    size_t count;
    struct eng_error err;
    if (job_store_events(st, id_of(n), after, 100, &events, &count, &err) != 0)
        fail_msg("events: %s", err.message);
    static char text[4096];
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (i > 0) assert_true(events[i].id > events[i - 1].id);
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s %s", i ? "|" : "",
                                 job_event_type_name(events[i].type), events[i].data);
        if (last) *last = events[i].id;
    }
    job_events_free(events, count);
    return text;
}

static void test_lifecycle(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", "alice");
    struct job job = get(st, 1);
    assert_int_equal(job.state, JOB_QUEUED);
    assert_int_equal(job.attempts, 0);
    assert_string_equal(job.kind, "count");
    assert_string_equal(job.owner, "alice");
    assert_null(job.parent);
    assert_int_equal(json_integer_value(json_object_get(job.params, "n")), 1);
    assert_true(job.created_ms > 0);
    assert_int_equal(job.started_ms, 0);
    job_clear(&job);

    claim_expect(st, 1);
    struct eng_error err;
    assert_int_equal(job_store_progress(st, id_of(1), token_of(st, 1), 0.25, "warming", 1, &err),
                     0);
    json_t *saved = json_pack("{s:i}", "done", 3);
    assert_int_equal(
        job_store_checkpoint(st, id_of(1), token_of(st, 1), saved, 0.5, "counting", 0, &err), 0);
    json_decref(saved);
    json_t *loaded = NULL;
    assert_int_equal(job_store_checkpoint_load(st, id_of(1), &loaded, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(loaded, "done")), 3);
    json_decref(loaded);
    job = get(st, 1);
    assert_int_equal(job.state, JOB_RUNNING);
    assert_int_equal(job.attempts, 1);
    assert_true(job.started_ms >= job.created_ms);
    assert_true(job.progress == 0.5);
    assert_string_equal(job.phase, "counting");
    job_clear(&job);

    json_t *result = json_pack("{s:i}", "total", 6);
    assert_int_equal(
        job_store_finish(st, id_of(1), token_of(st, 1), JOB_SUCCEEDED, result, NULL, &err), 0);
    /* A job ends once. */
    assert_int_equal(
        job_store_finish(st, id_of(1), token_of(st, 1), JOB_FAILED, NULL, "late", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    json_decref(result);
    job = get(st, 1);
    assert_int_equal(job.state, JOB_SUCCEEDED);
    assert_true(job.progress == 1.0);
    assert_int_equal(json_integer_value(json_object_get(job.result, "total")), 6);
    assert_null(job.error);
    assert_true(job.finished_ms >= job.started_ms);
    job_clear(&job);
    /* Progress and checkpoints of a job that is not running are refused. */
    assert_int_equal(job_store_progress(st, id_of(1), token_of(st, 1), 0.9, NULL, 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_string_equal(events_text(st, 1, 0, NULL),
                        "state {\"state\":\"queued\"}|"
                        "state {\"state\":\"running\",\"attempt\":1}|"
                        "progress {\"fraction\":0.25,\"phase\":\"warming\"}|"
                        "state {\"state\":\"succeeded\"}");
}

static void test_failed_keeps_error(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", NULL);
    claim_expect(st, 1);
    struct eng_error err;
    assert_int_equal(
        job_store_finish(st, id_of(1), token_of(st, 1), JOB_FAILED, NULL, "unit 3 failed", &err),
        0);
    struct job job = get(st, 1);
    assert_int_equal(job.state, JOB_FAILED);
    assert_string_equal(job.error, "unit 3 failed");
    assert_null(job.result);
    assert_null(job.owner);
    job_clear(&job);
    int64_t last = 0;
    events_text(st, 1, 0, &last);
    assert_string_equal(events_text(st, 1, last - 1, NULL),
                        "state {\"state\":\"failed\",\"error\":\"unit 3 failed\"}");
}

static void test_claim_order(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    /* Created in the same millisecond, most likely: creation order decides, not the clock. */
    create(st, 3, "count", NULL);
    create(st, 1, "count", NULL);
    create(st, 2, "count", NULL);
    claim_expect(st, 3);
    claim_expect(st, 1);
    claim_expect(st, 2);
    struct job job;
    struct eng_error err;
    assert_int_equal(job_store_claim(st, WORKER, &job, &err), 0);
}

struct claimer {
    struct storage *st;
    int claimed[64];
    int count;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    struct job job;
    struct eng_error err;
    while (job_store_claim(c->st, WORKER, &job, &err) == 1) {
        c->claimed[c->count++] = atoi(job.id);
        job_clear(&job);
    }
    return NULL;
}

static void test_concurrent_claims_take_each_job_once(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    for (int n = 0; n < 64; n++)
        create(st, n, "count", NULL);
    struct claimer a = {.st = st}, b = {.st = st};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, claim_all, &a);
    pthread_create(&tb, NULL, claim_all, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int seen[64] = {0};
    for (int i = 0; i < a.count; i++)
        seen[a.claimed[i]]++;
    for (int i = 0; i < b.count; i++)
        seen[b.claimed[i]]++;
    assert_int_equal(a.count + b.count, 64);
    for (int n = 0; n < 64; n++)
        assert_int_equal(seen[n], 1);
}

/* Each thread claims through a connection of its own, as separate processes would: only the
 * database keeps two claims apart (on PostgreSQL, the claim's row lock and SKIP LOCKED). */
#define CONNECTIONS 4
#define SHARED_JOBS 200

struct connection_claimer {
    struct storage *st;
    int claimed[SHARED_JOBS];
    int count;
    int bad_attempts;
};

static void *claim_through(void *arg)
{
    struct connection_claimer *c = arg;
    struct job job;
    struct eng_error err;
    int rc;
    while ((rc = job_store_claim(c->st, WORKER, &job, &err)) == 1) {
        c->claimed[c->count++] = atoi(job.id);
        c->bad_attempts += job.attempts != 1;
        job_clear(&job);
    }
    if (rc < 0) fprintf(stderr, "claim: %s\n", err.message);
    return NULL;
}

static void test_connections_claim_each_job_once(void **state)
{
    struct fixture *f = *state;
    for (int n = 0; n < SHARED_JOBS; n++)
        create(f->st, n, "count", NULL);
    struct connection_claimer c[CONNECTIONS] = {{.st = f->st}};
    pthread_t threads[CONNECTIONS];
    struct eng_error err;
    for (int i = 1; i < CONNECTIONS; i++) {
        c[i].st = storage_open(f->store, f->dir, &err);
        if (!c[i].st) fail_msg("storage_open: %s", err.message);
    }
    for (int i = 0; i < CONNECTIONS; i++)
        pthread_create(&threads[i], NULL, claim_through, &c[i]);
    int seen[SHARED_JOBS] = {0}, total = 0;
    for (int i = 0; i < CONNECTIONS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(c[i].bad_attempts, 0);
        for (int k = 0; k < c[i].count; k++)
            seen[c[i].claimed[k]]++;
        total += c[i].count;
        if (i > 0) storage_close(c[i].st);
    }
    assert_int_equal(total, SHARED_JOBS);
    for (int n = 0; n < SHARED_JOBS; n++)
        assert_int_equal(seen[n], 1);
    /* Every claim recorded its one "running" event. */
    int64_t last = 0;
    assert_string_equal(events_text(f->st, SHARED_JOBS - 1, 0, &last),
                        "state {\"state\":\"queued\"}|state {\"state\":\"running\",\"attempt\":1}");
}

static void test_events_after_an_id(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", NULL);
    create(st, 2, "count", NULL); /* its events interleave with job 1's ids */
    claim_expect(st, 1);
    claim_expect(st, 2);
    struct eng_error err;
    for (int i = 1; i <= 5; i++) {
        json_t *data = json_pack("{s:s, s:f, s:i}", "name", "loss", "value", i / 4.0, "step", i);
        assert_int_equal(
            job_store_event(st, id_of(1), token_of(st, 1), JOB_EVENT_METRIC, data, &err), 0);
        assert_int_equal(job_store_event(st, id_of(2), token_of(st, 2), JOB_EVENT_LOG, data, &err),
                         0);
        json_decref(data);
    }
    struct job_event *events;
    size_t count;
    assert_int_equal(job_store_events(st, id_of(1), 0, 100, &events, &count, &err), 0);
    assert_int_equal(count, 7); /* queued, running, 5 metrics */
    int64_t third = events[2].id;
    job_events_free(events, count);
    /* After the first metric: exactly the four later ones, in order. */
    assert_string_equal(events_text(st, 1, third, NULL),
                        "metric {\"name\":\"loss\",\"value\":0.5,\"step\":2}|"
                        "metric {\"name\":\"loss\",\"value\":0.75,\"step\":3}|"
                        "metric {\"name\":\"loss\",\"value\":1.0,\"step\":4}|"
                        "metric {\"name\":\"loss\",\"value\":1.25,\"step\":5}");
    assert_int_equal(job_store_events(st, id_of(1), third, 2, &events, &count, &err), 0);
    assert_int_equal(count, 2);
    job_events_free(events, count);
    int64_t last = 0;
    events_text(st, 1, 0, &last);
    assert_string_equal(events_text(st, 1, last, NULL), "");
}

/* Makes job n's last heartbeat `seconds` older than it is, straight in the database: a lease its
 * owner stopped renewing that long ago. */
static void age_heartbeat(struct fixture *f, int n, int seconds)
{
    char sql[320];
    snprintf(sql, sizeof sql, "UPDATE jobs SET heartbeat_ms = heartbeat_ms - %d WHERE id = '%s'",
             seconds * 1000, id_of(n));
    store_fixture_sql(f->store, f->dir, sql);
}

/* A sweep with a 60 s lease, max_attempts 2, and no owner known gone; its counts. */
static void expire(struct storage *st, size_t requeued, size_t abandoned)
{
    struct job_expiry x = {.lease_ms = 60000, .max_attempts = 2};
    struct eng_error err;
    if (job_store_expire(st, &x, &err) != 0) fail_msg("expire: %s", err.message);
    assert_int_equal(x.requeued, requeued);
    assert_int_equal(x.abandoned, abandoned);
}

/* A claim gives a lease: the claimer's worker id and a token one above the last claim's; a
 * heartbeat holds only under the current token, while the job runs. */
static void test_claim_gives_a_lease(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", NULL);
    assert_int_equal(token_of(st, 1), 0);
    struct job job;
    struct eng_error err;
    assert_int_equal(job_store_claim(st, WORKER, &job, &err), 1);
    assert_int_equal(job.lease_token, 1);
    assert_string_equal(job.lease_owner, WORKER);
    job_clear(&job);
    assert_int_equal(job_store_heartbeat(st, id_of(1), 1, &err), 1);
    assert_int_equal(job_store_requeue(st, id_of(1), 1, "stopping", &err), 0);
    /* Queued: no lease holds. */
    assert_int_equal(job_store_heartbeat(st, id_of(1), 1, &err), 0);
    assert_int_equal(job_store_claim(st, "otherhost:2:00000000", &job, &err), 1);
    assert_int_equal(job.lease_token, 2);
    assert_string_equal(job.lease_owner, "otherhost:2:00000000");
    job_clear(&job);
    assert_int_equal(job_store_heartbeat(st, id_of(1), 1, &err), 0); /* the stale token */
    assert_int_equal(job_store_heartbeat(st, id_of(1), 2, &err), 1);
    assert_int_equal(job_store_finish(st, id_of(1), 2, JOB_SUCCEEDED, NULL, NULL, &err), 0);
    assert_int_equal(job_store_heartbeat(st, id_of(1), 2, &err), 0); /* ended */
}

/* A lease whose heartbeat is older than lease_s expires: the job is queued again with its
 * checkpoint and its attempt counted, and past max_attempts it is left interrupted with the
 * reason. A lease renewed in time does not expire. */
static void test_expiry_requeues_then_gives_up(void **state)
{
    struct fixture *f = *state;
    struct storage *st = f->st;
    create(st, 1, "count", NULL);
    create(st, 2, "count", NULL);
    create(st, 3, "count", NULL);
    claim_expect(st, 1);
    claim_expect(st, 2);
    json_t *saved = json_pack("{s:i}", "done", 7);
    struct eng_error err;
    assert_int_equal(job_store_checkpoint(st, id_of(1), 1, saved, 0.7, "counting", 0, &err), 0);
    json_decref(saved);
    int64_t before = 0;
    events_text(st, 1, 0, &before);

    /* Job 1's owner went silent 120 s ago; job 2's renewed 30 s ago, within its 60 s. */
    age_heartbeat(f, 1, 120);
    age_heartbeat(f, 2, 30);
    expire(st, 1, 0);
    struct job job = get(st, 1);
    assert_int_equal(job.state, JOB_QUEUED);
    assert_int_equal(job.attempts, 1);
    assert_int_equal(job.finished_ms, 0);
    job_clear(&job);
    job = get(st, 2);
    assert_int_equal(job.state, JOB_RUNNING);
    job_clear(&job);
    const char *events = events_text(st, 1, before, NULL);
    assert_non_null(strstr(events,
                           "state {\"state\":\"interrupted\",\"reason\":\"the lease of " WORKER
                           " expired: no heartbeat for 120."));
    assert_non_null(strstr(events, "}|state {\"state\":\"queued\"}"));
    /* Its checkpoint stays for the next claim, which is job 1 again: it was queued first. */
    claim_expect(st, 1);
    json_t *loaded = NULL;
    assert_int_equal(job_store_checkpoint_load(st, id_of(1), &loaded, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(loaded, "done")), 7);
    json_decref(loaded);
    job = get(st, 1);
    assert_int_equal(job.attempts, 2);
    assert_int_equal(job.lease_token, 2);
    job_clear(&job);

    /* Expired again: two starts of max_attempts 2 are used up, so it stays interrupted. */
    age_heartbeat(f, 1, 61);
    expire(st, 0, 1);
    job = get(st, 1);
    assert_int_equal(job.state, JOB_INTERRUPTED);
    assert_true(job_state_is_final(job.state));
    assert_string_equal(job.error,
                        "the job's lease expired 2 times (its process died or stopped answering); "
                        "last owner " WORKER "; it is not started again");
    assert_true(job.finished_ms > 0);
    job_clear(&job);
    claim_expect(st, 3);
    /* Nothing else has expired. */
    expire(st, 0, 0);
}

/* PostgreSQL: job n's row's xmax, the last transaction to change or lock it (a transaction that
 * locks a row marks it so), as text. */
static char *row_locker(struct storage *st, int n)
{
    struct eng_error err;
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *s = storage_prepare(st, "SELECT xmax FROM jobs WHERE id = ?", &err);
    if (!s) fail_msg("xmax: %s", err.message);
    storage_bind_text(s, 1, id_of(n));
    assert_int_equal(storage_step(s), STORAGE_ROW);
    char *xmax = strdup(storage_column(s, 0));
    storage_finalize(s);
    pthread_mutex_unlock(&st->lock);
    return xmax;
}

/* PostgreSQL: every process sweeps each heartbeat_s, so a sweep holds only the rows of the leases
 * it finds expired, never those of jobs running well, whose heartbeats and checkpoints it would
 * hold up. Job 1's lease expired and job 2's was just renewed: the sweep queues job 1 again and
 * leaves job 2's row as it was, not even locked. */
static void test_sweep_holds_only_expired_rows(void **state)
{
    struct fixture *f = *state;
    if (!pg_test_server()) skip(); /* SQLite: a transaction holds the whole database */
    create(f->st, 1, "count", NULL);
    create(f->st, 2, "count", NULL);
    claim_expect(f->st, 1);
    claim_expect(f->st, 2);
    age_heartbeat(f, 1, 120);
    struct eng_error err;
    assert_int_equal(job_store_heartbeat(f->st, id_of(2), token_of(f->st, 2), &err), 1);
    char *before = row_locker(f->st, 2);
    expire(f->st, 1, 0);
    char *after = row_locker(f->st, 2);
    assert_string_equal(after, before);
    free(before);
    free(after);
    struct job job = get(f->st, 1);
    assert_int_equal(job.state, JOB_QUEUED);
    job_clear(&job);
}

/* A worker frozen past its lease wakes up: each of its writes under the old token changes
 * nothing, and the result of the attempt that replaced it stands. */
static void test_stale_worker_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct storage *st = f->st;
    create(st, 1, "count", NULL);
    claim_expect(st, 1); /* the first attempt: token 1 */
    json_t *first = json_pack("{s:s}", "by", "first");
    struct eng_error err;
    assert_int_equal(job_store_checkpoint(st, id_of(1), 1, first, 0.5, "counting", 0, &err), 0);
    age_heartbeat(f, 1, 120);
    expire(st, 1, 0);
    claim_expect(st, 1); /* the second: token 2 */
    json_t *second = json_pack("{s:s}", "by", "second");
    assert_int_equal(job_store_checkpoint(st, id_of(1), 2, second, 0.6, "counting", 0, &err), 0);
    int64_t before = 0;
    events_text(st, 1, 0, &before);

    /* The first wakes. */
    assert_int_equal(job_store_heartbeat(st, id_of(1), 1, &err), 0);
    assert_int_equal(job_store_progress(st, id_of(1), 1, 0.9, "late", 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(job_store_checkpoint(st, id_of(1), 1, first, 0.9, "late", 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(job_store_event(st, id_of(1), 1, JOB_EVENT_LOG, first, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(job_store_finish(st, id_of(1), 1, JOB_SUCCEEDED, first, NULL, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(job_store_finish(st, id_of(1), 1, JOB_FAILED, NULL, "late", &err), -1);
    assert_int_equal(job_store_requeue(st, id_of(1), 1, "late", &err), -1);
    assert_string_equal(events_text(st, 1, before, NULL), "");
    struct job job = get(st, 1);
    assert_int_equal(job.state, JOB_RUNNING);
    assert_true(job.progress == 0.6);
    job_clear(&job);
    json_t *loaded = NULL;
    assert_int_equal(job_store_checkpoint_load(st, id_of(1), &loaded, &err), 0);
    assert_string_equal(json_string_value(json_object_get(loaded, "by")), "second");
    json_decref(loaded);

    /* The second ends it; the first still cannot. */
    assert_int_equal(job_store_finish(st, id_of(1), 2, JOB_SUCCEEDED, second, NULL, &err), 0);
    assert_int_equal(job_store_finish(st, id_of(1), 1, JOB_SUCCEEDED, first, NULL, &err), -1);
    job = get(st, 1);
    assert_int_equal(job.state, JOB_SUCCEEDED);
    assert_string_equal(json_string_value(json_object_get(job.result, "by")), "second");
    assert_int_equal(job.attempts, 2);
    job_clear(&job);
    json_decref(first);
    json_decref(second);
}

/* Whether owner is "gone:...": the test's process known to have ended. */
static int gone_prefix(const char *owner, void *arg)
{
    (void)arg;
    return strncmp(owner, "gone:", 5) == 0;
}

/* A lease whose owner is known to have ended expires at once, whatever its heartbeat; a live
 * owner's fresh lease stays. */
static void test_expiry_of_an_ended_owner(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", NULL);
    create(st, 2, "count", NULL);
    struct job job;
    struct eng_error err;
    assert_int_equal(job_store_claim(st, "gone:7:00000000", &job, &err), 1);
    job_clear(&job);
    assert_int_equal(job_store_claim(st, "live:8:00000000", &job, &err), 1);
    job_clear(&job);
    struct job_expiry x = {.lease_ms = 60000, .max_attempts = 3, .gone = gone_prefix};
    assert_int_equal(job_store_expire(st, &x, &err), 0);
    assert_int_equal(x.requeued, 1);
    assert_int_equal(x.abandoned, 0);
    job = get(st, 1);
    assert_int_equal(job.state, JOB_QUEUED);
    job_clear(&job);
    assert_string_equal(events_text(st, 1, 0, NULL),
                        "state {\"state\":\"queued\"}|state {\"state\":\"running\",\"attempt\":1}|"
                        "state {\"state\":\"interrupted\",\"reason\":\"the lease of "
                        "gone:7:00000000 expired: its process has ended (a crash or a kill)\"}|"
                        "state {\"state\":\"queued\"}");
    job = get(st, 2);
    assert_int_equal(job.state, JOB_RUNNING);
    job_clear(&job);
}

/* A worker id is host:pid:random, this process's; an owner is known to have ended when it names
 * this host and a pid no process has (a child that has exited), or this pid with another random
 * part (an earlier process of the pid). Another host, or a live pid, is not known to have ended. */
static void test_worker_ids(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    const char *self = leases_worker_id();
    assert_ptr_equal(self, leases_worker_id()); /* made once */
    char host[256];
    long pid = 0;
    unsigned random = 0;
    int end = 0;
    assert_int_equal(sscanf(self, "%255[^:]:%ld:%8x%n", host, &pid, &random, &end), 3);
    assert_int_equal(self[end], '\0');
    assert_int_equal(pid, (long)getpid());
    assert_int_equal(leases_owner_gone(self, NULL), 0);
    pid_t child = fork();
    if (child == 0) _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    char owner[320];
    snprintf(owner, sizeof owner, "%s:%ld:%08x", host, (long)child, random);
    assert_int_equal(leases_owner_gone(owner, NULL), 1);
    snprintf(owner, sizeof owner, "%s:%ld:%08x", host, pid, random ^ 1u);
    assert_int_equal(leases_owner_gone(owner, NULL), 1);
    snprintf(owner, sizeof owner, "%s:1:%08x", host, random); /* pid 1 always runs */
    assert_int_equal(leases_owner_gone(owner, NULL), 0);
    snprintf(owner, sizeof owner, "%s-other:%ld:%08x", host, (long)child, random);
    assert_int_equal(leases_owner_gone(owner, NULL), 0);
    snprintf(owner, sizeof owner, "%s:x:%08x", host, random);
    assert_int_equal(leases_owner_gone(owner, NULL), 0);

    /* A job the exited child claimed expires at the next sweep, whatever its heartbeat. */
    create(st, 1, "count", NULL);
    snprintf(owner, sizeof owner, "%s:%ld:%08x", host, (long)child, random);
    struct job job;
    struct eng_error err;
    assert_int_equal(job_store_claim(st, owner, &job, &err), 1);
    job_clear(&job);
    struct job_expiry x = {.lease_ms = 60000, .max_attempts = 3, .gone = leases_owner_gone};
    assert_int_equal(job_store_expire(st, &x, &err), 0);
    assert_int_equal(x.requeued, 1);
}

/* Two handles on one store, as two processes on one PostgreSQL store: each claims and runs jobs
 * (no handle holds the store for itself), and neither can end the other's. */
static void test_two_handles_each_run_jobs(void **state)
{
    struct fixture *f = *state;
    struct eng_error err;
    struct storage *other = storage_open(f->store, f->dir, &err);
    if (!other) fail_msg("storage_open: %s", err.message);
    create(f->st, 1, "count", NULL);
    create(f->st, 2, "count", NULL);
    struct job a, b;
    assert_int_equal(job_store_claim(f->st, "a:1:00000000", &a, &err), 1);
    assert_int_equal(job_store_claim(other, "b:2:00000000", &b, &err), 1);
    assert_string_equal(a.id, id_of(1));
    assert_string_equal(b.id, id_of(2));
    /* Each token is its own job's: the same number fences nothing of the other job. */
    assert_int_equal(job_store_heartbeat(other, a.id, a.lease_token, &err), 1);
    json_t *result = json_pack("{s:s}", "by", "b");
    assert_int_equal(
        job_store_finish(other, b.id, b.lease_token, JOB_SUCCEEDED, result, NULL, &err), 0);
    assert_int_equal(job_store_finish(f->st, a.id, a.lease_token, JOB_FAILED, NULL, "a's", &err),
                     0);
    json_decref(result);
    struct job job = get(f->st, 1);
    assert_int_equal(job.state, JOB_FAILED);
    assert_string_equal(job.error, "a's");
    job_clear(&job);
    job = get(other, 2);
    assert_int_equal(job.state, JOB_SUCCEEDED);
    assert_string_equal(job.lease_owner, "b:2:00000000");
    job_clear(&job);
    job_clear(&a);
    job_clear(&b);
    storage_close(other);
}

static void test_requeue_on_shutdown(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", NULL);
    claim_expect(st, 1);
    int64_t before = 0;
    events_text(st, 1, 0, &before);
    struct eng_error err;
    assert_int_equal(job_store_requeue(st, id_of(1), token_of(st, 1), "stopping", &err), 0);
    assert_string_equal(events_text(st, 1, before, NULL),
                        "state {\"state\":\"interrupted\",\"reason\":\"stopping\"}|"
                        "state {\"state\":\"queued\"}");
    /* Only a running job can be requeued. */
    assert_int_equal(job_store_requeue(st, id_of(1), token_of(st, 1), "again", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
}

static void test_cancel(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", NULL);
    create(st, 2, "count", NULL);
    create(st, 3, "count", NULL);
    enum job_state after;
    struct eng_error err;
    /* Queued: cancelled at once, and never claimed. */
    assert_int_equal(job_store_cancel(st, id_of(1), &after, &err), 0);
    assert_int_equal(after, JOB_CANCELLED);
    assert_int_equal(job_store_cancel(st, id_of(1), &after, &err), 0); /* again: no change */
    assert_int_equal(after, JOB_CANCELLED);
    claim_expect(st, 2);
    /* Running: flagged, still running until its runner sees it. */
    assert_int_equal(job_store_cancel_requested(st, id_of(2), &err), 0);
    assert_int_equal(job_store_cancel(st, id_of(2), &after, &err), 0);
    assert_int_equal(after, JOB_RUNNING);
    assert_int_equal(job_store_cancel_requested(st, id_of(2), &err), 1);
    struct job job = get(st, 2);
    assert_int_equal(job.state, JOB_RUNNING);
    assert_int_equal(job.cancel_requested, 1);
    job_clear(&job);
    assert_int_equal(
        job_store_finish(st, id_of(2), token_of(st, 2), JOB_CANCELLED, NULL, NULL, &err), 0);
    /* Ended otherwise: a conflict. */
    claim_expect(st, 3);
    assert_int_equal(
        job_store_finish(st, id_of(3), token_of(st, 3), JOB_SUCCEEDED, NULL, NULL, &err), 0);
    assert_int_equal(job_store_cancel(st, id_of(3), &after, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(job_store_cancel(st, id_of(4), &after, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
}

/* The ids of a list, as "n,n,n". */
static char *list_text(struct storage *st, struct job_filter f)
{
    struct job *jobs;
    size_t count;
    struct eng_error err;
    if (job_store_list(st, &f, &jobs, &count, &err) != 0) fail_msg("list: %s", err.message);
    static char text[256];
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%d", i ? "," : "",
                                 atoi(jobs[i].id));
        job_clear(&jobs[i]);
    }
    free(jobs);
    return text;
}

static void test_list_filters_and_pages(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "count", "alice");
    create(st, 2, "other", "bob");
    create(st, 3, "count", "bob");
    create(st, 4, "count", "alice");
    claim_expect(st, 1);
    struct job_filter all = {.state = -1, .limit = 10};
    assert_string_equal(list_text(st, all), "4,3,2,1");
    struct job_filter f = all;
    f.state = JOB_RUNNING;
    assert_string_equal(list_text(st, f), "1");
    f = all;
    f.kind = "count";
    assert_string_equal(list_text(st, f), "4,3,1");
    f.owner = "bob";
    assert_string_equal(list_text(st, f), "3");
    f = all;
    f.limit = 2;
    assert_string_equal(list_text(st, f), "4,3");
    f.after = id_of(3);
    assert_string_equal(list_text(st, f), "2,1");
    f.after = id_of(1);
    assert_string_equal(list_text(st, f), "");
    f.after = id_of(9);
    struct job *jobs;
    size_t count;
    struct eng_error err;
    assert_int_equal(job_store_list(st, &f, &jobs, &count, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
}

static void test_parent_must_exist(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "search", NULL);
    struct job child = {.kind = "count", .parent = (char *)id_of(1)};
    memcpy(child.id, id_of(2), JOB_ID_SIZE);
    child.params = json_object();
    struct eng_error err;
    assert_int_equal(job_store_create(st, &child, &err), 0);
    struct job job = get(st, 2);
    assert_string_equal(job.parent, id_of(1));
    job_clear(&job);
    child.parent = (char *)id_of(7);
    memcpy(child.id, id_of(3), JOB_ID_SIZE);
    assert_int_equal(job_store_create(st, &child, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    /* Ids are unique. */
    child.parent = NULL;
    assert_int_equal(job_store_create(st, &child, &err), 0);
    assert_int_equal(job_store_create(st, &child, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    json_decref(child.params);
}

/* A queued child n of job parent. */
static void create_child(struct storage *st, int n, int parent)
{
    struct job spec = {.kind = "search-trial", .parent = (char *)id_of(parent)};
    snprintf(spec.id, sizeof spec.id, "%024d", n);
    spec.params = json_pack("{s:i}", "n", n);
    struct eng_error err;
    if (job_store_create(st, &spec, &err) != 0) fail_msg("create %d: %s", n, err.message);
    json_decref(spec.params);
}

/* Claims a child of parent, which must be job n (0: none is queued). */
static void claim_child_expect(struct storage *st, int parent, int n)
{
    struct job job;
    struct eng_error err;
    int rc = job_store_claim_child(st, id_of(parent), token_of(st, parent), WORKER, &job, &err);
    if (rc != (n > 0))
        fail_msg("claim child of %d: %d (%s), expected %d", parent, rc, rc < 0 ? err.message : "",
                 n);
    if (n == 0) return;
    assert_string_equal(job.id, id_of(n));
    assert_string_equal(job.parent, id_of(parent));
    assert_int_equal(job.state, JOB_RUNNING);
    assert_int_equal(job.attempts, 1);
    job_clear(&job);
}

/* A parent queues and claims children only under the lease it runs under: once it was claimed
 * again, its old token queues nothing and claims nothing. */
static void test_children_under_the_parents_lease(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "search", NULL);
    claim_expect(st, 1);
    struct job spec = {.kind = "search-trial", .parent = (char *)id_of(1)};
    spec.params = json_object();
    snprintf(spec.id, sizeof spec.id, "%024d", 2);
    struct eng_error err;
    assert_int_equal(job_store_create_child(st, &spec, 1, &err), 0);
    assert_int_equal(job_store_requeue(st, id_of(1), 1, "stopping", &err), 0);
    /* Queued, the parent runs under no token. */
    snprintf(spec.id, sizeof spec.id, "%024d", 3);
    assert_int_equal(job_store_create_child(st, &spec, 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    claim_expect(st, 1); /* token 2 */
    assert_int_equal(job_store_create_child(st, &spec, 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    struct job job;
    assert_int_equal(job_store_get(st, id_of(3), &job, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(job_store_claim_child(st, id_of(1), 1, WORKER, &job, &err), 0);
    assert_int_equal(job_store_claim_child(st, id_of(1), 2, WORKER, &job, &err), 1);
    assert_string_equal(job.id, id_of(2));
    job_clear(&job);
    json_decref(spec.params);
}

/* Two searches, 1 and 2, with children 3 and 5 of 1 and 4 of 2, queued in that order. */
static void two_families(struct storage *st)
{
    create(st, 1, "search", NULL);
    create(st, 2, "search", NULL);
    create_child(st, 3, 1);
    create_child(st, 4, 2);
    create_child(st, 5, 1);
}

/* A search's trials are claimed by their parent alone, oldest first, as jobs are: the general
 * claim skips them, and one parent's claim never takes another's. */
static void test_claim_child(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    two_families(st);
    create(st, 6, "count", NULL);
    claim_expect(st, 1);
    claim_expect(st, 2);
    claim_expect(st, 6); /* past the children 3, 4 and 5 */
    struct job job;
    struct eng_error err;
    assert_int_equal(job_store_claim(st, WORKER, &job, &err), 0);
    claim_child_expect(st, 1, 3);
    assert_string_equal(events_text(st, 3, 0, NULL),
                        "state {\"state\":\"queued\"}|state {\"state\":\"running\",\"attempt\":1}");
    claim_child_expect(st, 1, 5);
    claim_child_expect(st, 1, 0);
    claim_child_expect(st, 2, 4);
    claim_child_expect(st, 6, 0); /* a job without children */
}

/* Children are listed by their parent's id, and left out of the list without one unless asked
 * for. */
static void test_list_children(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "search", NULL);
    create_child(st, 2, 1);
    create(st, 3, "count", NULL);
    create_child(st, 4, 1);
    struct job_filter f = {.state = -1, .limit = 10};
    assert_string_equal(list_text(st, f), "3,1");
    f.children = 1;
    assert_string_equal(list_text(st, f), "4,3,2,1");
    f.parent = id_of(1);
    assert_string_equal(list_text(st, f), "4,2");
    f.children = 0;
    assert_string_equal(list_text(st, f), "4,2");
    f.parent = id_of(3);
    assert_string_equal(list_text(st, f), "");
}

/* Cancelling a parent cancels its children that have not ended: the queued at once, with an
 * event saying why, the running by their flag; an ended child is left as it is, and another
 * job's child too. A child cancelled alone leaves its parent running. */
static void test_cancel_cascades_to_children(void **state)
{
    struct storage *st = ((struct fixture *)*state)->st;
    create(st, 1, "search", NULL);
    create(st, 2, "search", NULL);
    for (int n = 3; n <= 6; n++)
        create_child(st, n, n == 6 ? 2 : 1);
    claim_expect(st, 1);
    claim_expect(st, 2);
    claim_child_expect(st, 1, 3);
    claim_child_expect(st, 1, 4);
    struct eng_error err;
    enum job_state after;
    assert_int_equal(
        job_store_finish(st, id_of(3), token_of(st, 3), JOB_SUCCEEDED, NULL, NULL, &err), 0);
    assert_int_equal(job_store_cancel(st, id_of(6), &after, &err), 0);
    assert_int_equal(after, JOB_CANCELLED);
    struct job job = get(st, 2);
    assert_int_equal(job.state, JOB_RUNNING);
    assert_int_equal(job.cancel_requested, 0);
    job_clear(&job);

    assert_int_equal(job_store_cancel(st, id_of(1), &after, &err), 0);
    assert_int_equal(after, JOB_RUNNING);
    static const struct {
        int n;
        enum job_state state;
        int flag;
    } expect[] = {{1, JOB_RUNNING, 1},
                  {3, JOB_SUCCEEDED, 0},
                  {4, JOB_RUNNING, 1},
                  {5, JOB_CANCELLED, 0},
                  {6, JOB_CANCELLED, 0}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        job = get(st, expect[i].n);
        assert_int_equal(job.state, expect[i].state);
        assert_int_equal(job.cancel_requested, expect[i].flag);
        if (expect[i].state == JOB_CANCELLED) assert_true(job.finished_ms > 0);
        job_clear(&job);
    }
    assert_string_equal(events_text(st, 5, 0, NULL),
                        "state {\"state\":\"queued\"}|"
                        "state {\"state\":\"cancelled\",\"reason\":\"its parent was cancelled\"}");
    claim_child_expect(st, 1, 0);
}

/* PostgreSQL: the number of the test database's sessions waiting for a lock (pg_stat_activity),
 * read through st, which no other thread is using. */
static int64_t sessions_waiting_for_a_lock(struct storage *st)
{
    struct eng_error err;
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *s = storage_prepare(st,
                                             "SELECT COUNT(*) FROM pg_stat_activity"
                                             " WHERE datname = current_database()"
                                             " AND wait_event_type = 'Lock'",
                                             &err);
    if (!s) fail_msg("pg_stat_activity: %s", err.message);
    assert_int_equal(storage_step(s), STORAGE_ROW);
    int64_t waiting = storage_column_int64(s, 0);
    storage_finalize(s);
    pthread_mutex_unlock(&st->lock);
    return waiting;
}

struct canceller {
    struct storage *st;
    int n;
    int rc;
    struct eng_error err;
};

static void *cancel_on_its_connection(void *arg)
{
    struct canceller *c = arg;
    enum job_state after;
    c->rc = job_store_cancel(c->st, id_of(c->n), &after, &c->err);
    return NULL;
}

/* PostgreSQL: a job's events commit in the order of their ids, whichever processes write them, so
 * a reader that has seen event n of a job never finds a smaller id of that job appear later (a
 * client resuming with Last-Event-ID: n misses nothing). Here child 2 of search 1 gets events
 * from two connections at once: `first`, a writer half-way through its transaction, holds the
 * child's row, as each write of a job's events does, and has yet to add its event; a cancel of
 * the parent on another connection, cancelling the child, must wait for the row before it takes
 * an id. `first` adds its event and commits first, so the cancel's event comes after it, and a
 * reader resuming after `first`'s finds it. (The cancel once took its event's id before it waited,
 * committed it after `first`'s larger one, and that reader never saw the child cancelled.) */
static void test_events_commit_in_id_order(void **state)
{
    struct fixture *f = *state;
    if (!pg_test_server()) skip(); /* SQLite: one writer at a time, whose ids commit in order */
    create(f->st, 1, "search", NULL);
    claim_expect(f->st, 1);
    create_child(f->st, 2, 1);
    struct eng_error err;
    struct storage *first = storage_open(f->store, f->dir, &err);
    struct canceller c = {.st = storage_open(f->store, f->dir, &err), .n = 1};
    if (!first || !c.st) fail_msg("storage_open: %s", err.message);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE jobs SET progress = progress WHERE id = '%s'", id_of(2));
    assert_int_equal(storage_begin(first, &err), 0);
    assert_int_equal(storage_exec(first, sql, &err, "holding the child's row"), 0);

    pthread_t thread;
    pthread_create(&thread, NULL, cancel_on_its_connection, &c);
    for (int tries = 0; sessions_waiting_for_a_lock(f->st) == 0; tries++) {
        if (tries == 600) fail_msg("the cancel never waited for the child's row");
        usleep(100 * 1000);
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO job_events (job, time_ms, type, data)"
             " VALUES ('%s', 0, 'log', '{\"message\":\"first\"}')",
             id_of(2));
    assert_int_equal(storage_exec(first, sql, &err, "adding an event"), 0);
    assert_int_equal(storage_end(first, 0, &err), 0);
    pthread_join(thread, NULL);
    if (c.rc != 0) fail_msg("cancel: %s", c.err.message);

    assert_string_equal(events_text(f->st, 2, 0, NULL),
                        "state {\"state\":\"queued\"}|log {\"message\":\"first\"}|"
                        "state {\"state\":\"cancelled\",\"reason\":\"its parent was cancelled\"}");
    struct job_event *events;
    size_t count;
    assert_int_equal(job_store_events(f->st, id_of(2), 0, 2, &events, &count, &err), 0);
    assert_int_equal(count, 2);
    int64_t firsts = events[1].id;
    job_events_free(events, count);
    assert_string_equal(events_text(f->st, 2, firsts, NULL),
                        "state {\"state\":\"cancelled\",\"reason\":\"its parent was cancelled\"}");
    storage_close(first);
    storage_close(c.st);
}

/* A child waits for its parent (a successive-halving trial at a rung): waiting, never claimed,
 * not final, kept waiting when its parent's lease expires; woken, it is queued and claimed again
 * with its attempt not counted twice. Cancelled alone, or with its parent, it ends at once. */
static void test_waiting_child(void **state)
{
    struct fixture *f = *state;
    struct storage *st = f->st;
    create(st, 1, "search", NULL);
    for (int n = 2; n <= 4; n++)
        create_child(st, n, 1);
    claim_expect(st, 1);
    claim_child_expect(st, 1, 2);
    claim_child_expect(st, 1, 3);
    claim_child_expect(st, 1, 4);
    struct eng_error err;
    /* Only a running job waits, and only a waiting one is woken. */
    assert_int_equal(job_store_wake(st, id_of(2), &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    for (int n = 2; n <= 4; n++)
        assert_int_equal(job_store_wait(st, id_of(n), token_of(st, n), "at a rung", &err), 0);
    /* One whose cancel came after its run last looked ends cancelled, not waiting. */
    create_child(st, 5, 1);
    claim_child_expect(st, 1, 5);
    enum job_state after;
    assert_int_equal(job_store_cancel(st, id_of(5), &after, &err), 0);
    assert_int_equal(job_store_wait(st, id_of(5), token_of(st, 5), "at a rung", &err), 0);
    struct job five = get(st, 5);
    assert_int_equal(five.state, JOB_CANCELLED);
    job_clear(&five);
    assert_int_equal(job_store_wait(st, id_of(2), token_of(st, 2), "at a rung", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    struct job job = get(st, 2);
    assert_int_equal(job.state, JOB_WAITING);
    assert_false(job_state_is_final(job.state));
    assert_int_equal(job.finished_ms, 0);
    job_clear(&job);
    assert_string_equal(job_state_name(JOB_WAITING), "waiting");
    assert_int_equal(job_state_from_name("waiting"), JOB_WAITING);
    claim_child_expect(st, 1, 0);
    /* The parent's lease expires: it is queued again, its waiting children are left waiting. */
    age_heartbeat(f, 1, 120);
    expire(st, 1, 0);
    job = get(st, 2);
    assert_int_equal(job.state, JOB_WAITING);
    job_clear(&job);
    claim_expect(st, 1);

    assert_int_equal(job_store_wake(st, id_of(2), &err), 0);
    claim_child_expect(st, 1, 2); /* attempt 1 again */
    assert_string_equal(events_text(st, 2, 0, NULL),
                        "state {\"state\":\"queued\"}|state {\"state\":\"running\",\"attempt\":1}|"
                        "state {\"state\":\"waiting\",\"reason\":\"at a rung\"}|"
                        "state {\"state\":\"queued\"}|state {\"state\":\"running\",\"attempt\":1}");
    assert_int_equal(job_store_cancel(st, id_of(3), &after, &err), 0);
    assert_int_equal(after, JOB_CANCELLED);
    job = get(st, 3);
    assert_int_equal(job.state, JOB_CANCELLED);
    assert_true(job.finished_ms > 0);
    job_clear(&job);
    assert_int_equal(job_store_cancel(st, id_of(1), &after, &err), 0);
    job = get(st, 4);
    assert_int_equal(job.state, JOB_CANCELLED);
    job_clear(&job);
    assert_string_equal(events_text(st, 4, 0, NULL),
                        "state {\"state\":\"queued\"}|state {\"state\":\"running\",\"attempt\":1}|"
                        "state {\"state\":\"waiting\",\"reason\":\"at a rung\"}|"
                        "state {\"state\":\"cancelled\",\"reason\":\"its parent was cancelled\"}");
}

/* An expiry that leaves a parent interrupted for good cancels its queued children, which no
 * parent would run; a parent queued again keeps its own. */
static void test_expiry_cancels_orphans(void **state)
{
    struct fixture *f = *state;
    struct storage *st = f->st;
    two_families(st);
    struct eng_error err;
    claim_expect(st, 1);
    assert_int_equal(job_store_requeue(st, id_of(1), token_of(st, 1), "stopping", &err), 0);
    claim_expect(st, 1); /* its second start */
    claim_expect(st, 2);
    age_heartbeat(f, 1, 120);
    age_heartbeat(f, 2, 120);
    expire(st, 1, 1); /* 2 queued again, 1 left interrupted */
    struct job job;
    for (int n = 3; n <= 5; n += 2) {
        job = get(st, n);
        assert_int_equal(job.state, JOB_CANCELLED);
        job_clear(&job);
    }
    assert_string_equal(events_text(st, 3, 0, NULL),
                        "state {\"state\":\"queued\"}|"
                        "state {\"state\":\"cancelled\",\"reason\":\"its parent had ended\"}");
    job = get(st, 4);
    assert_int_equal(job.state, JOB_QUEUED);
    job_clear(&job);
}

/* Another store (store_fixture_other) with a database as version 1 left it (meta alone), with the
 * version given. */
static void write_old_database(struct fixture *f, const char *name, const char *version,
                               char store[512], char dir[128])
{
    store_fixture_other(f, name, store, dir);
    char sql[160];
    snprintf(sql, sizeof sql,
             "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
             "INSERT INTO meta VALUES ('schema_version', '%s');",
             version);
    store_fixture_sql(store, dir, sql);
}

/* A job whose params are {"dataset": name} (or params as given), id n. */
static void create_with(struct storage *st, int n, const char *params)
{
    struct job spec = {.kind = "evaluate"};
    snprintf(spec.id, sizeof spec.id, "%024d", n);
    spec.params = json_loads(params, 0, NULL);
    struct eng_error err;
    if (job_store_create(st, &spec, &err) != 0) fail_msg("create %d: %s", n, err.message);
    json_decref(spec.params);
}

/* job_store_dataset_user: 1 with the job's id, 0, for each state a job naming it is in. */
static void expect_user(struct storage *st, const char *dataset, int n)
{
    char job[JOB_ID_SIZE] = "";
    struct eng_error err;
    int rc = job_store_dataset_user(st, dataset, NULL, job, &err);
    if (rc < 0) fail_msg("dataset_user: %s", err.message);
    assert_int_equal(rc, n > 0);
    if (n > 0) assert_string_equal(job, id_of(n));
}

static void test_dataset_user(void **state)
{
    struct fixture *f = *state;
    expect_user(f->st, "a", 0);
    /* Names that are no dataset's: another id, a number, a member of another name. */
    create_with(f->st, 1, "{\"dataset\": \"b\"}");
    create_with(f->st, 2, "{\"dataset\": 5, \"model\": \"a\"}");
    create_with(f->st, 3, "{\"datasets\": [\"a\"], \"split\": \"a\"}");
    expect_user(f->st, "a", 0);
    expect_user(f->st, "b", 1);
    /* Queued, then running: the oldest naming it; ended: no longer. */
    create_with(f->st, 4, "{\"dataset\": \"a\", \"seed\": 1}");
    create_with(f->st, 5, "{\"dataset\": \"a\"}");
    expect_user(f->st, "a", 4);
    /* All but one: the next. */
    char job[JOB_ID_SIZE] = "";
    struct eng_error err;
    assert_int_equal(job_store_dataset_user(f->st, "a", id_of(4), job, &err), 1);
    assert_string_equal(job, id_of(5));
    for (int n = 1; n <= 4; n++)
        claim_expect(f->st, n);
    expect_user(f->st, "a", 4);
    assert_int_equal(
        job_store_finish(f->st, id_of(4), token_of(f->st, 4), JOB_SUCCEEDED, NULL, NULL, &err), 0);
    expect_user(f->st, "a", 5);
    enum job_state after;
    assert_int_equal(job_store_cancel(f->st, id_of(5), &after, &err), 0);
    expect_user(f->st, "a", 0);
    assert_int_equal(
        job_store_finish(f->st, id_of(1), token_of(f->st, 1), JOB_FAILED, NULL, "no", &err), 0);
    expect_user(f->st, "b", 0);
}

/* Processes' heartbeats (process_store.h): a process is live for stale_ms after its last beat, one
 * never seen is not, and a beat forgets the processes silent for longer than its stale_ms. */
static void test_process_heartbeats(void **state)
{
    struct fixture *f = *state;
    struct eng_error err;
    assert_int_equal(process_store_live(f->st, "h:1:a", 60000, &err), 0);
    assert_int_equal(process_store_beat(f->st, "h:1:a", 60000, &err), 0);
    assert_int_equal(process_store_beat(f->st, "h:1:a", 60000, &err), 0); /* its row again */
    assert_int_equal(process_store_live(f->st, "h:1:a", 60000, &err), 1);
    assert_int_equal(process_store_live(f->st, "h:2:b", 60000, &err), 0);
    /* 50 ms on, a's last beat is older than 10 ms: not live by that bound, still by a minute's;
     * b's beat with the 10 ms bound forgets a altogether. */
    usleep(50000);
    assert_int_equal(process_store_live(f->st, "h:1:a", 10, &err), 0);
    assert_int_equal(process_store_live(f->st, "h:1:a", 60000, &err), 1);
    assert_int_equal(process_store_beat(f->st, "h:2:b", 10, &err), 0);
    assert_int_equal(process_store_live(f->st, "h:1:a", 60000, &err), 0);
    assert_int_equal(process_store_live(f->st, "h:2:b", 60000, &err), 1);
}

/* From nothing: every migration runs, and every table they make takes a record. */
static void test_migrates_an_empty_database(void **state)
{
    struct fixture *f = *state;
    char store[512], dir[128];
    store_fixture_other(f, "empty", store, dir);
    struct eng_error err;
    struct storage *st = storage_open(store, dir, &err);
    if (!st) fail_msg("storage_open: %s", err.message);
    assert_int_equal(storage_ping(st), 0); /* meta.schema_version is this build's */
    create(st, 1, "count", NULL);
    claim_expect(st, 1);
    const struct dataset_record d = {
        .id = "d", .name = "pets", .state = DATASET_IMPORTING, .source = "upload"};
    assert_int_equal(dataset_store_create(st, &d, &err), 0);
    const struct policy_record p = {.name = "p", .document = json_pack("{s:s}", "op", "Invert")};
    int created = 0;
    assert_int_equal(policy_store_put(st, &p, 0, &created, &err), 0);
    assert_int_equal(created, 1);
    json_decref(p.document);
    storage_close(st);
}

static void test_migrates_version_1(void **state)
{
    struct fixture *f = *state;
    char store[512], dir[128];
    write_old_database(f, "old", "1", store, dir);
    struct eng_error err;
    struct storage *st = storage_open(store, dir, &err);
    if (!st) fail_msg("storage_open: %s", err.message);
    assert_int_equal(storage_ping(st), 0);
    create(st, 1, "count", NULL);
    storage_close(st);
    /* Opened again, it is not migrated twice and keeps the job. */
    st = storage_open(store, dir, &err);
    assert_non_null(st);
    struct job job = get(st, 1);
    job_clear(&job);
    storage_close(st);
    assert_true(storage_schema_version() >= 2);
}

/* Ends every connection to the fixture's database (PostgreSQL), as a server restart would. */
static void end_connections(struct fixture *f)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
             f->others[0]);
    pg_test_sql("postgres", sql);
}

/* PostgreSQL: when the server ends the store's connection (a restart, an administrator), the
 * operation that finds it gone fails and the next one connects again. */
static void test_reconnects_after_the_server_ends_the_connection(void **state)
{
    struct fixture *f = *state;
    if (!pg_test_server()) skip(); /* SQLite has no connection to lose */
    create(f->st, 1, "count", NULL);
    end_connections(f);
    struct job job;
    struct eng_error err;
    assert_int_equal(job_store_get(f->st, id_of(1), &job, &err), -1);
    assert_int_equal(storage_ping(f->st), 0);
    claim_expect(f->st, 1);
}

/* PostgreSQL: a process frozen inside a transaction (SIGSTOP) keeps the rows it locked, which a
 * sweep passes over (SKIP LOCKED), so its job would never be queued again. Under
 * storage_limit_idle_transactions the server ends its session after the limit; the sweep then
 * takes the job, and the frozen handle, once it goes on, fails that transaction and connects
 * again with the same limit. */
static void test_a_transaction_left_idle_ends(void **state)
{
    struct fixture *f = *state;
    if (!pg_test_server()) skip(); /* SQLite: one process, whose store nothing else sweeps */
    create(f->st, 1, "count", NULL);
    claim_expect(f->st, 1);
    age_heartbeat(f, 1, 120);
    struct eng_error err;
    struct storage *frozen = storage_open(f->store, f->dir, &err);
    if (!frozen) fail_msg("storage_open: %s", err.message);
    assert_int_equal(storage_limit_idle_transactions(frozen, 1, &err), 0);
    /* It locks the job's row, as a checkpoint does, and stops there. */
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE jobs SET progress = progress WHERE id = '%s'", id_of(1));
    assert_int_equal(storage_begin(frozen, &err), 0);
    assert_int_equal(storage_exec(frozen, sql, &err, "locking a job"), 0);
    expire(f->st, 0, 0);
    usleep(2500 * 1000);
    expire(f->st, 1, 0);
    assert_int_equal(storage_end(frozen, 0, &err), -1);
    /* Connected again, with the limit. */
    assert_int_equal(storage_ping(frozen), 0);
    pthread_mutex_lock(&frozen->lock);
    struct storage_stmt *show =
        storage_prepare(frozen, "SHOW idle_in_transaction_session_timeout", &err);
    assert_non_null(show);
    assert_int_equal(storage_step(show), STORAGE_ROW);
    assert_string_equal(storage_column(show, 0), "1s");
    storage_finalize(show);
    pthread_mutex_unlock(&frozen->lock);
    storage_close(frozen);
}

static void test_refuses_a_newer_schema(void **state)
{
    struct fixture *f = *state;
    char store[512], dir[128];
    write_old_database(f, "new", "999", store, dir);
    struct eng_error err;
    assert_null(storage_open(store, dir, &err));
    assert_non_null(strstr(err.message, "schema version 999"));
}

/* A test on a fresh store of the run's backend. */
#define STORE_TEST(test) cmocka_unit_test_setup_teardown(test, store_setup, store_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_lifecycle),
        STORE_TEST(test_failed_keeps_error),
        STORE_TEST(test_claim_order),
        STORE_TEST(test_concurrent_claims_take_each_job_once),
        STORE_TEST(test_connections_claim_each_job_once),
        STORE_TEST(test_events_after_an_id),
        STORE_TEST(test_claim_gives_a_lease),
        STORE_TEST(test_expiry_requeues_then_gives_up),
        STORE_TEST(test_sweep_holds_only_expired_rows),
        STORE_TEST(test_stale_worker_writes_nothing),
        STORE_TEST(test_expiry_of_an_ended_owner),
        STORE_TEST(test_two_handles_each_run_jobs),
        STORE_TEST(test_worker_ids),
        STORE_TEST(test_children_under_the_parents_lease),
        STORE_TEST(test_requeue_on_shutdown),
        STORE_TEST(test_cancel),
        STORE_TEST(test_list_filters_and_pages),
        STORE_TEST(test_parent_must_exist),
        STORE_TEST(test_claim_child),
        STORE_TEST(test_list_children),
        STORE_TEST(test_cancel_cascades_to_children),
        STORE_TEST(test_events_commit_in_id_order),
        STORE_TEST(test_expiry_cancels_orphans),
        STORE_TEST(test_waiting_child),
        STORE_TEST(test_dataset_user),
        STORE_TEST(test_process_heartbeats),
        STORE_TEST(test_migrates_an_empty_database),
        STORE_TEST(test_migrates_version_1),
        STORE_TEST(test_refuses_a_newer_schema),
        STORE_TEST(test_reconnects_after_the_server_ends_the_connection),
        STORE_TEST(test_a_transaction_left_idle_ends),
    };
    return cmocka_run_group_tests_name(store_group("job_store"), tests, NULL, NULL);
}
