/* Unit tests of server/admission.c. Jobs block on a gate the test opens, so which jobs are
 * running or waiting is decided by the test, not by timing; the only waits are bounded polls of
 * admission_counts and of counters the jobs update. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "admission.h"

#define POLL_LIMIT_MS 10000

/* A gate jobs wait at until the test opens it. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t opened_cond;
    int opened;
};

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->opened_cond, NULL);
    g->opened = 0;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->opened = 1;
    pthread_cond_broadcast(&g->opened_cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_wait(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->opened)
        pthread_cond_wait(&g->opened_cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->opened_cond);
    pthread_mutex_destroy(&g->lock);
}

struct blocking_job {
    struct gate *gate;
    atomic_int started; /* how many times the job began */
    atomic_int runs;    /* how many times it finished */
};

static void run_blocking(void *arg)
{
    struct blocking_job *job = arg;
    atomic_fetch_add(&job->started, 1);
    gate_wait(job->gate);
    atomic_fetch_add(&job->runs, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls admission_counts until it shows running and waiting; fails after POLL_LIMIT_MS. */
static void wait_counts(struct admission *adm, int running, int waiting)
{
    int r = -1, w = -1;
    for (int ms = 0; ms < POLL_LIMIT_MS; ms++) {
        admission_counts(adm, &r, &w);
        if (r == running && w == waiting) return;
        sleep_ms(1);
    }
    fail_msg("running %d, waiting %d; expected %d and %d", r, w, running, waiting);
}

/* Polls until *counter reaches value. */
static void wait_atomic(atomic_int *counter, int value)
{
    for (int ms = 0; ms < POLL_LIMIT_MS; ms++) {
        if (atomic_load(counter) == value) return;
        sleep_ms(1);
    }
    fail_msg("counter is %d, expected %d", atomic_load(counter), value);
}

static void test_create_arguments(void **state)
{
    assert_null(admission_create(0, 1));
    assert_null(admission_create(-1, 1));
    assert_null(admission_create(1, -1));
    struct admission *adm = admission_create(1, 0);
    assert_non_null(adm);
    int r = -1, w = -1;
    admission_counts(adm, &r, &w);
    assert_int_equal(r, 0);
    assert_int_equal(w, 0);
    admission_destroy(adm);
    admission_destroy(NULL);
}

static void test_saturation(void **state)
{
    struct gate gate;
    gate_init(&gate);
    struct blocking_job jobs[5];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 5; i++)
        jobs[i].gate = &gate;
    struct admission *adm = admission_create(2, 1);
    assert_non_null(adm);

    /* Two workers and one queue slot: three jobs fit, whether or not a worker picked them up. */
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[0]), 0);
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[1]), 0);
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[2]), 0);
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[3]), -1);
    wait_counts(adm, 2, 1);
    /* Still full once the workers are known to be busy. */
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[3]), -1);
    int started = 0;
    for (int i = 0; i < 3; i++)
        started += atomic_load(&jobs[i].started);
    assert_int_equal(started, 2);

    gate_open(&gate);
    for (int i = 0; i < 3; i++)
        wait_atomic(&jobs[i].runs, 1);
    wait_counts(adm, 0, 0);
    /* Room again. */
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[4]), 0);
    admission_destroy(adm);

    for (int i = 0; i < 5; i++) {
        int expected = i == 3 ? 0 : 1;
        assert_int_equal(atomic_load(&jobs[i].started), expected);
        assert_int_equal(atomic_load(&jobs[i].runs), expected);
    }
    gate_destroy(&gate);
}

static void test_queue_zero(void **state)
{
    struct gate gate;
    gate_init(&gate);
    struct blocking_job jobs[3];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 3; i++)
        jobs[i].gate = &gate;
    struct admission *adm = admission_create(2, 0);
    assert_non_null(adm);

    assert_int_equal(admission_submit(adm, run_blocking, &jobs[0]), 0);
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[1]), 0);
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[2]), -1);
    wait_counts(adm, 2, 0);
    assert_int_equal(admission_submit(adm, run_blocking, &jobs[2]), -1);

    gate_open(&gate);
    wait_atomic(&jobs[0].runs, 1);
    wait_atomic(&jobs[1].runs, 1);
    wait_counts(adm, 0, 0);
    admission_destroy(adm);
    assert_int_equal(atomic_load(&jobs[0].runs), 1);
    assert_int_equal(atomic_load(&jobs[1].runs), 1);
    assert_int_equal(atomic_load(&jobs[2].started), 0);
    gate_destroy(&gate);
}

struct counting_job {
    atomic_int runs;
};

static void run_counting(void *arg)
{
    struct counting_job *job = arg;
    atomic_fetch_add(&job->runs, 1);
}

#define PROBES_MAX 4000

struct destroyer {
    struct admission *adm;
    atomic_int done;
};

static void *destroy_thread(void *arg)
{
    struct destroyer *d = arg;
    admission_destroy(d->adm);
    atomic_store(&d->done, 1);
    return NULL;
}

static void test_destroy_runs_queued_jobs(void **state)
{
    struct gate gate;
    gate_init(&gate);
    struct blocking_job blocking[4];
    memset(blocking, 0, sizeof blocking);
    for (int i = 0; i < 4; i++)
        blocking[i].gate = &gate;
    static struct counting_job probes[PROBES_MAX];
    memset(probes, 0, sizeof probes);

    /* One worker, a queue far larger than the probes below can fill. */
    struct admission *adm = admission_create(1, PROBES_MAX + 16);
    assert_non_null(adm);
    for (int i = 0; i < 4; i++)
        assert_int_equal(admission_submit(adm, run_blocking, &blocking[i]), 0);
    wait_counts(adm, 1, 3);

    /* Destroy while one job blocks the only worker and three wait. The blocked worker keeps adm
     * alive until the gate opens, so submitting is safe; the first refusal (with room to spare)
     * shows that admission_destroy has begun. Accepted probes are jobs like any other. */
    struct destroyer d = {.adm = adm};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, destroy_thread, &d), 0);
    int accepted = 0, refused = 0;
    while (accepted < PROBES_MAX) {
        if (admission_submit(adm, run_counting, &probes[accepted]) != 0) {
            refused = 1;
            break;
        }
        accepted++;
        sleep_ms(1);
    }
    assert_true(refused);
    assert_int_equal(atomic_load(&d.done), 0);
    assert_int_equal(atomic_load(&blocking[0].runs), 0);

    gate_open(&gate);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(atomic_load(&d.done), 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&blocking[i].runs), 1);
    for (int i = 0; i < PROBES_MAX; i++)
        assert_int_equal(atomic_load(&probes[i].runs), i < accepted ? 1 : 0);
    gate_destroy(&gate);
}

#define SUBMITTERS         4
#define JOBS_PER_SUBMITTER 2500
#define MANY_WORKERS       3
#define MANY_QUEUE         5

struct tally {
    atomic_int runs[SUBMITTERS * JOBS_PER_SUBMITTER];
    atomic_int total;
    atomic_int active;
    atomic_int max_active;
};

struct tally_job {
    struct tally *tally;
    int index;
};

static void run_tally(void *arg)
{
    struct tally_job *job = arg;
    struct tally *t = job->tally;
    int active = atomic_fetch_add(&t->active, 1) + 1;
    int max = atomic_load(&t->max_active);
    while (active > max && !atomic_compare_exchange_weak(&t->max_active, &max, active))
        ;
    atomic_fetch_add(&t->runs[job->index], 1);
    atomic_fetch_add(&t->total, 1);
    atomic_fetch_sub(&t->active, 1);
}

struct submitter {
    struct admission *adm;
    struct tally_job *jobs; /* JOBS_PER_SUBMITTER of them */
    long refusals;
};

static void *submit_thread(void *arg)
{
    struct submitter *s = arg;
    for (int i = 0; i < JOBS_PER_SUBMITTER; i++)
        while (admission_submit(s->adm, run_tally, &s->jobs[i]) != 0) {
            s->refusals++;
            sched_yield();
        }
    return NULL;
}

static void test_many_submitters(void **state)
{
    static struct tally tally;
    static struct tally_job jobs[SUBMITTERS * JOBS_PER_SUBMITTER];
    memset(&tally, 0, sizeof tally);
    for (int i = 0; i < SUBMITTERS * JOBS_PER_SUBMITTER; i++) {
        jobs[i].tally = &tally;
        jobs[i].index = i;
    }
    struct admission *adm = admission_create(MANY_WORKERS, MANY_QUEUE);
    assert_non_null(adm);
    struct submitter subs[SUBMITTERS];
    pthread_t threads[SUBMITTERS];
    for (int t = 0; t < SUBMITTERS; t++) {
        subs[t].adm = adm;
        subs[t].jobs = &jobs[t * JOBS_PER_SUBMITTER];
        subs[t].refusals = 0;
        assert_int_equal(pthread_create(&threads[t], NULL, submit_thread, &subs[t]), 0);
    }
    for (int t = 0; t < SUBMITTERS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    admission_destroy(adm);

    assert_int_equal(atomic_load(&tally.total), SUBMITTERS * JOBS_PER_SUBMITTER);
    for (int i = 0; i < SUBMITTERS * JOBS_PER_SUBMITTER; i++)
        if (atomic_load(&tally.runs[i]) != 1)
            fail_msg("job %d ran %d times", i, atomic_load(&tally.runs[i]));
    assert_int_equal(atomic_load(&tally.active), 0);
    assert_true(atomic_load(&tally.max_active) >= 1);
    assert_true(atomic_load(&tally.max_active) <= MANY_WORKERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_arguments), cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_queue_zero),       cmocka_unit_test(test_destroy_runs_queued_jobs),
        cmocka_unit_test(test_many_submitters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
