/* Stopping work early (core/cancel.h): a check installed on a thread is what the engine's loops
 * ask, parallel_for hands it to the threads it starts, and without one nothing is ever stopped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>

#include "core/cancel.h"
#include "core/parallel.h"

/* Counts its polls; stops once `limit` have passed. */
struct counter {
    atomic_int polls;
    int limit;
};

static int count_polls(void *ctx, struct eng_error *err)
{
    struct counter *c = ctx;
    if (atomic_fetch_add(&c->polls, 1) < c->limit) return 0;
    return eng_fail(err, ENG_CANCELLED, "limit reached");
}

/* One item of a parallel_for: polls, and records whether it was stopped. */
struct items {
    int stopped[64];
};

static void poll_item(void *ctx, size_t i)
{
    struct items *it = ctx;
    struct eng_error err = {0};
    it->stopped[i] = eng_cancel_poll(&err) != 0;
    if (it->stopped[i]) assert_int_equal(err.code, ENG_CANCELLED);
}

static void test_nothing_installed(void **state)
{
    struct eng_error err = {.code = ENG_OK};
    assert_null(eng_cancel_installed());
    assert_int_equal(eng_cancel_poll(&err), 0);
    assert_int_equal(err.code, ENG_OK);
    struct items it;
    memset(&it, 0xff, sizeof it);
    parallel_for(64, 4, poll_item, &it);
    for (int i = 0; i < 64; i++)
        assert_int_equal(it.stopped[i], 0);
}

static void test_installed_check_reaches_every_thread(void **state)
{
    /* Every item of every thread polls the one check: 64 polls in all, the first 40 pass. */
    struct counter c = {.limit = 40};
    atomic_init(&c.polls, 0);
    struct eng_cancel check = {count_polls, &c};
    eng_cancel_install(&check);
    assert_ptr_equal(eng_cancel_installed(), &check);
    struct items it;
    memset(&it, 0, sizeof it);
    parallel_for(64, 4, poll_item, &it);
    eng_cancel_install(NULL);
    assert_int_equal(atomic_load(&c.polls), 64);
    int stopped = 0;
    for (int i = 0; i < 64; i++)
        stopped += it.stopped[i];
    assert_int_equal(stopped, 64 - 40);
    /* Removed again: the thread polls nothing. */
    struct eng_error err = {0};
    assert_int_equal(eng_cancel_poll(&err), 0);
    assert_int_equal(atomic_load(&c.polls), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_installed),
        cmocka_unit_test(test_installed_check_reaches_every_thread),
    };
    return cmocka_run_group_tests_name("cancel", tests, NULL, NULL);
}
