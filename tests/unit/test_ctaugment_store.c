/* Unit tests of CTAugment states' records (server/ctaugment_store.c), on the run's backend (the
 * fixture's): each expectation is ctaugment_store.h's contract. The concurrent test is the one a
 * read-modify-write done as two operations fails: feedback from threads on two connections to one
 * store, each update slowed between its read and its write, must all count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctaugment_store.h"
#include "policy/policy.h"
#include "storage.h"
#include "store_fixture.h"

/* A new record of a fresh state (ctaug_new's defaults) named id. */
static void create(struct storage *st, const char *id, const char *owner)
{
    struct eng_error err;
    struct ctaug *c = ctaug_new(NULL, &err);
    assert_non_null(c);
    struct ctaugment_record r = {.state = ctaug_to_json(c), .owner = (char *)owner};
    snprintf(r.id, sizeof r.id, "%s", id);
    ctaug_free(c);
    if (ctaugment_store_create(st, &r, &err) != 0) fail_msg("create %s: %s", id, err.message);
    json_decref(r.state);
}

/* The rate of rotate's argument's bin 8 in a state document. */
static double rotate_rate(const json_t *state)
{
    const json_t *rates = json_object_get(json_object_get(state, "rates"), "rotate");
    return json_number_value(json_array_get(json_array_get(rates, 0), 8));
}

/* An update: ctaug_feedback of rotate at 0.5 (bin int(0.5 * 17 * 0.999) = 8) with the proximity
 * *ctx, after a pause that lets another update's read land between this one's read and write. */
static json_t *feedback(const json_t *state, void *ctx, struct eng_error *err)
{
    const double *proximity = ctx;
    struct ctaug_policy policy = {.count = 1,
                                  .ops = {{.op = ctaug_op_find("rotate"), .value = {0.5}}}};
    struct ctaug *c = ctaug_from_json(state, err);
    json_t *out = NULL;
    usleep(2000);
    if (c && ctaug_feedback(c, &policy, *proximity, err) == 0) out = ctaug_to_json(c);
    ctaug_free(c);
    return out;
}

static json_t *refuse(const json_t *state, void *ctx, struct eng_error *err)
{
    (void)state;
    (void)ctx;
    eng_fail(err, ENG_INVALID, "refused");
    return NULL;
}

static int collect_ids(const struct ctaugment_record *r, void *ctx, struct eng_error *err)
{
    (void)err;
    strcat(ctx, r->id);
    strcat(ctx, " ");
    return 0;
}

static void test_records(void **state)
{
    struct fixture *f = *state;
    struct eng_error err;
    create(f->st, "zz", "alice");
    create(f->st, "aa", NULL);
    char ids[64] = "";
    assert_int_equal(ctaugment_store_each(f->st, collect_ids, ids, &err), 0);
    assert_string_equal(ids, "zz aa "); /* creation order, not id order */

    struct ctaugment_record r, updated;
    assert_int_equal(ctaugment_store_get(f->st, "zz", &r, &err), 0);
    assert_string_equal(r.owner, "alice");
    assert_int_equal(r.revision, 0);
    assert_true(r.created_ms > 0 && r.updated_ms == r.created_ms);
    assert_true(rotate_rate(r.state) == 1.0);

    /* A taken id. */
    struct ctaugment_record again = {.state = r.state};
    strcpy(again.id, "zz");
    assert_int_equal(ctaugment_store_create(f->st, &again, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);

    /* An update with proximity 0.25: 0.99 * 1 + 0.01 * 0.25 = 0.9925, as float32. */
    double proximity = 0.25;
    assert_int_equal(ctaugment_store_update(f->st, "zz", feedback, &proximity, &updated, &err), 0);
    assert_int_equal(updated.revision, 1);
    assert_true(updated.created_ms == r.created_ms && updated.updated_ms >= r.updated_ms);
    assert_true(rotate_rate(updated.state) == (double)0.9925f);
    assert_string_equal(updated.owner, "alice");
    ctaugment_record_clear(&updated);

    /* A refused update changes nothing. */
    assert_int_equal(ctaugment_store_update(f->st, "zz", refuse, NULL, &updated, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(ctaugment_store_get(f->st, "zz", &updated, &err), 0);
    assert_int_equal(updated.revision, 1);
    assert_true(rotate_rate(updated.state) == (double)0.9925f);
    ctaugment_record_clear(&updated);
    ctaugment_record_clear(&r);

    /* Unknown ids. */
    assert_int_equal(ctaugment_store_get(f->st, "none", &r, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(ctaugment_store_update(f->st, "none", feedback, &proximity, &r, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(ctaugment_store_delete(f->st, "zz", &err), 0);
    assert_int_equal(ctaugment_store_delete(f->st, "zz", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(ctaugment_store_get(f->st, "zz", &r, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
}

#define THREADS 4
#define UPDATES 10

struct worker {
    struct storage *st;
    int failures;
    char message[600];
};

static void *run_updates(void *arg)
{
    struct worker *w = arg;
    double proximity = 0.0;
    for (int i = 0; i < UPDATES; i++) {
        struct ctaugment_record r;
        struct eng_error err;
        if (ctaugment_store_update(w->st, "shared", feedback, &proximity, &r, &err) != 0) {
            w->failures++;
            snprintf(w->message, sizeof w->message, "%s", err.message);
        }
        ctaugment_record_clear(&r);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    struct fixture *f = *state;
    struct eng_error err;
    create(f->st, "shared", NULL);
    /* A second connection to the same store, as a second server would have. */
    struct storage *other = storage_open(f->store, f->dir, &err);
    if (!other) fail_msg("storage_open: %s", err.message);
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){.st = t % 2 ? other : f->st};
        assert_int_equal(pthread_create(&threads[t], NULL, run_updates, &workers[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        if (workers[t].failures) fail_msg("thread %d: %s", t, workers[t].message);
    }
    storage_close(other);

    /* Every update counted: 40 of them, each rate = float32(0.99 * rate) (proximity 0). */
    struct ctaugment_record r;
    assert_int_equal(ctaugment_store_get(f->st, "shared", &r, &err), 0);
    assert_int_equal(r.revision, THREADS * UPDATES);
    float expected = 1.0f;
    for (int i = 0; i < THREADS * UPDATES; i++)
        expected = (float)(0.99 * expected);
    assert_true(rotate_rate(r.state) == (double)expected);
    assert_true(expected < 0.67f); /* 0.99^40 = 0.669: far from what a lost update leaves */
    ctaugment_record_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_updates, store_setup, store_teardown),
    };
    return cmocka_run_group_tests_name(store_group("ctaugment_store"), tests, NULL, NULL);
}
