/* Unit tests of a search's early stopping (server/search_early.c): a trial's decision at each
 * epoch, replayed from its siblings' curves in trial order, on scripted learning curves whose
 * promotions and stops are worked out by hand below from ASHA's rule (search.h: at a rung with n
 * values so far, a trial goes on when fewer than max(1, floor(n / eta)) values there are better
 * than its own); the waits for an earlier trial still below a rung; the curves as JSON; and the
 * params' refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "search_early.h"
#include "search_objective.h"

#define CONT SEARCH_ASHA_CONTINUE
#define STOP SEARCH_ASHA_STOP
#define WAIT SEARCH_ASHA_WAIT

/* min_epochs 1, eta 3, 9 epochs: rungs at epochs 1 and 3. */
static const struct search_early asha = {.min_epochs = 1, .eta = 3, .max_epochs = 9};

/* The scripted curves, each as far as the trial got: trial 1 and trial 3 stop at epoch 1,
 * trial 4 at epoch 3 (hand-computed in test_scripted_curves). */
static const double t0[] = {0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7};
static const double t1[] = {0.4};
static const double t2[] = {0.6, 0.65, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8};
static const double t3[] = {0.55};
static const double t4[] = {0.7, 0.7, 0.6};
static const double t5[] = {0.6, 0.9, 0.9};

static enum search_asha_decision decide(const struct search_early_curve *c, size_t trial,
                                        unsigned epoch)
{
    enum search_asha_decision d = WAIT;
    struct eng_error err = {0};
    if (search_early_decide(&asha, c, trial, epoch, &d, &err) != 0) fail_msg("%s", err.message);
    return d;
}

static void test_scripted_curves(void **state)
{
    (void)state;
    struct search_early_curve c[] = {{t0, 9, 1}, {t1, 1, 1}, {t2, 9, 1},
                                     {t3, 1, 1}, {t4, 3, 1}, {t5, 3, 0}};
    /* Rung 1 (epoch 1), values in trial order 0.5, 0.4, 0.6, 0.55, 0.7, 0.6:
     * trial 0: n 1, keeps 1, none better: goes on. */
    assert_int_equal(decide(c, 0, 1), CONT);
    /* trial 1: n 2, keeps max(1, 0) = 1, one better (0.5): stops. */
    assert_int_equal(decide(c, 1, 1), STOP);
    /* trial 2: n 3, keeps 1, none better: goes on. */
    assert_int_equal(decide(c, 2, 1), CONT);
    /* trial 3: n 4, keeps 1, one better (0.6): stops. */
    assert_int_equal(decide(c, 3, 1), STOP);
    /* trial 4: n 5, keeps 1, none better: goes on. */
    assert_int_equal(decide(c, 4, 1), CONT);
    /* trial 5: n 6, keeps 2, one better (0.7; 0.6 ties trial 2's and a tie goes on). */
    assert_int_equal(decide(c, 5, 1), CONT);
    /* Epoch 2 is no rung: everyone goes on. */
    assert_int_equal(decide(c, 4, 2), CONT);
    /* Rung 2 (epoch 3), reached by trials 0, 2, 4, 5 (1 and 3 stopped at rung 1): 0.7, 0.8, 0.6,
     * 0.9. trial 0: n 1: on; trial 2: n 2, keeps 1, none better: on; trial 4: n 3, keeps 1, two
     * better: stops; trial 5: n 4, keeps 1, none better: on. */
    assert_int_equal(decide(c, 0, 3), CONT);
    assert_int_equal(decide(c, 2, 3), CONT);
    assert_int_equal(decide(c, 4, 3), STOP);
    assert_int_equal(decide(c, 5, 3), CONT);
    /* Past the last rung (3 * 3 = 9 is the budget, no rung): on. */
    assert_int_equal(decide(c, 2, 9), CONT);
}

/* Trial 2 at a rung waits for an earlier trial still running below it; one that ended below it
 * (failed, or stopped earlier) is no longer waited for. */
static void test_waits_for_earlier_trials(void **state)
{
    (void)state;
    struct search_early_curve c[] = {{t0, 9, 1}, {t1, 0, 0}, {t2, 3, 0}};
    assert_int_equal(decide(c, 2, 1), WAIT);
    assert_int_equal(decide(c, 2, 2), CONT); /* no rung: no wait */
    c[1].n = 1;                              /* trial 1 reached rung 1 (0.4) and runs on */
    assert_int_equal(decide(c, 2, 1), CONT);
    assert_int_equal(decide(c, 2, 3), WAIT); /* trial 1 is below rung 2, not final */
    c[1].final = 1;                          /* it was stopped at rung 1: never reaches 3 */
    /* Rung 2 holds trial 0's 0.7 and trial 2's 0.8: n 2, keeps 1, none better. */
    assert_int_equal(decide(c, 2, 3), CONT);
    /* A trial that failed before its first epoch is no sibling at any rung. */
    struct search_early_curve d[] = {{t0, 0, 1}, {t1, 1, 0}};
    assert_int_equal(decide(d, 1, 1), CONT);
}

/* A diverged epoch (NaN) is the worst value at its rung. */
static void test_nan_is_worst(void **state)
{
    (void)state;
    const double nan_curve[] = {NAN};
    const double low[] = {0.01};
    struct search_early_curve c[] = {{nan_curve, 1, 1}, {low, 1, 0}};
    assert_int_equal(decide(c, 1, 1), CONT); /* n 2, keeps 1, NaN is not better */
    struct search_early_curve d[] = {{low, 1, 1}, {nan_curve, 1, 0}};
    assert_int_equal(decide(d, 1, 1), STOP);
}

/* A curve shorter than the epoch asked about is an error, not a guess. */
static void test_short_curve(void **state)
{
    (void)state;
    struct search_early_curve c[] = {{t1, 1, 0}};
    struct eng_error err = {0};
    enum search_asha_decision d;
    assert_int_equal(search_early_decide(&asha, c, 0, 3, &d, &err), -1);
    assert_non_null(strstr(err.message, "epoch 3"));
}

/* The same decisions from JSON curves, as the trials' records hold them (null: diverged). */
static void test_json_curves(void **state)
{
    (void)state;
    json_t *siblings = json_loads("[{\"epochs\": [0.5, 0.6, 0.7], \"final\": true}, "
                                  "{\"epochs\": [0.4], \"final\": true}, "
                                  "{\"epochs\": [null], \"final\": true}]",
                                  0, NULL);
    json_t *own = json_loads("[0.45, 0.5, 0.9]", 0, NULL), *low = json_loads("[0.3]", 0, NULL);
    assert_non_null(siblings);
    enum search_asha_decision d;
    struct eng_error err = {0};
    /* Rung 1: 0.5, 0.4, NaN, then 0.45: n 4, keeps 1, one better (0.5): stops. */
    assert_int_equal(search_early_decide_json(&asha, siblings, own, 1, &d, &err), 0);
    assert_int_equal(d, STOP);
    /* With 3 values before it (n 4 keeps 1) a lower one stops too; with eta 2 n 4 keeps 2, and
     * 0.45 has one better: on. */
    struct search_early eta2 = {.min_epochs = 1, .eta = 2, .max_epochs = 9};
    assert_int_equal(search_early_decide_json(&eta2, siblings, own, 1, &d, &err), 0);
    assert_int_equal(d, CONT);
    assert_int_equal(search_early_decide_json(&eta2, siblings, low, 1, &d, &err), 0);
    assert_int_equal(d, STOP);
    json_decref(siblings);
    json_decref(own);
    json_decref(low);
}

/* The siblings' curves from a search's trial records: by trial number whatever the records'
 * order, a finished trial's from its result, a running one's from its checkpoint (the epochs it
 * committed), later trials and itself left out, a missing one final and empty. */
static void test_siblings_from_records(void **state)
{
    (void)state;
    json_t *records = json_loads(
        "[{\"state\": \"running\", \"params\": {\"trial\": 2}, \"result\": null, "
        "\"checkpoint\": {\"metrics\": [{\"val_accuracy\": 0.25}, {\"val_accuracy\": null}]}},"
        " {\"state\": \"succeeded\", \"params\": {\"trial\": 0}, \"result\": {\"epochs\": "
        "[0.5, 0.75]}, \"checkpoint\": null},"
        " {\"state\": \"queued\", \"params\": {\"trial\": 4}, \"result\": null, "
        "\"checkpoint\": null},"
        " {\"state\": \"running\", \"params\": {\"trial\": 3}, \"result\": null, "
        "\"checkpoint\": null}]",
        0, NULL);
    assert_non_null(records);
    json_t *siblings,
        *expected = json_loads(
            "[{\"epochs\": [0.5, 0.75], \"final\": true}, {\"epochs\": [], \"final\": true}, "
            "{\"epochs\": [0.25, null], \"final\": false}]",
            0, NULL);
    struct eng_error err = {0};
    assert_int_equal(search_early_siblings(records, 3, &siblings, &err), 0);
    if (!json_equal(siblings, expected)) {
        char *text = json_dumps(siblings, JSON_COMPACT);
        fail_msg("%s", text);
    }
    json_decref(siblings);
    /* Trial 3 at rung 1 (0.3): trial 2 is running but reached it (0.25): no wait; 0.5, 0.25,
     * then 0.3: n 3 keeps 1, one better: stops. At rung 3 trial 2 (running, 2 epochs) is
     * waited for. */
    json_t *own = json_loads("[0.3, 0.3, 0.3]", 0, NULL);
    enum search_asha_decision d;
    assert_int_equal(search_early_siblings(records, 3, &siblings, &err), 0);
    assert_int_equal(search_early_decide_json(&asha, siblings, own, 1, &d, &err), 0);
    assert_int_equal(d, STOP);
    assert_int_equal(search_early_decide_json(&asha, siblings, own, 3, &d, &err), 0);
    assert_int_equal(d, WAIT);
    json_decref(siblings);
    json_decref(own);
    json_decref(expected);
    json_decref(records);
}

/* The params: refused for the objectives without per-epoch values, naming the field; read for
 * val_accuracy with its defaults; and as a trial's params carry them. */
static void test_params(void **state)
{
    (void)state;
    static const struct search_objective val = {
        .kind = SEARCH_OBJECTIVE_VAL_ACCURACY, .name = "val_accuracy", .epochs = 9};
    static const struct search_objective affinity = {.kind = SEARCH_OBJECTIVE_AFFINITY,
                                                     .name = "affinity"};
    static const struct {
        const struct search_objective *o;
        const char *params, *needle;
    } bad[] = {
        {&affinity, "{\"early_stopping\": {\"name\": \"asha\"}}",
         "params.early_stopping: not for the affinity objective"},
        {&val, "{\"early_stopping\": \"asha\"}", "params.early_stopping: must be"},
        {&val, "{\"early_stopping\": {\"name\": \"hyperband\"}}",
         "params.early_stopping.name: required: \"asha\""},
        {&val, "{\"early_stopping\": {\"name\": \"successive-halving\"}}",
         "params.early_stopping.name: \"successive-halving\" (synchronous) is not supported yet"},
        {&val, "{\"early_stopping\": {\"name\": \"asha\", \"rungs\": 2}}",
         "params.early_stopping.rungs"},
        {&val, "{\"early_stopping\": {\"name\": \"asha\", \"eta\": 1}}",
         "params.early_stopping.eta: must be a whole number in [2, 100]"},
        {&val, "{\"early_stopping\": {\"name\": \"asha\", \"min_epochs\": 9}}",
         "params.early_stopping.min_epochs: must be less than the objective's 9 epochs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *params = json_loads(bad[i].params, 0, NULL);
        struct search_early e;
        struct eng_error err = {0};
        int on;
        assert_int_equal(search_early_open(&e, &on, params, bad[i].o, &err), -1);
        if (!strstr(err.message, bad[i].needle))
            fail_msg("%s: %s, not %s", bad[i].params, err.message, bad[i].needle);
        assert_int_equal(err.code, ENG_INVALID);
        json_decref(params);
    }
    json_t *params = json_loads("{\"early_stopping\": {\"name\": \"asha\"}}", 0, NULL);
    struct search_early e, back;
    struct eng_error err = {0};
    int on;
    assert_int_equal(search_early_open(&e, &on, params, &val, &err), 0);
    assert_true(on);
    assert_int_equal(e.min_epochs, 1);
    assert_int_equal(e.eta, 3);
    assert_int_equal(e.max_epochs, 9);
    json_t *carried = search_early_json(&e);
    assert_int_equal(search_early_from_json(&back, carried, &err), 0);
    assert_memory_equal(&e, &back, sizeof e);
    json_decref(carried);
    json_decref(params);
    params = json_object();
    assert_int_equal(search_early_open(&e, &on, params, &affinity, &err), 0);
    assert_false(on);
    json_decref(params);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripted_curves), cmocka_unit_test(test_waits_for_earlier_trials),
        cmocka_unit_test(test_nan_is_worst),    cmocka_unit_test(test_short_curve),
        cmocka_unit_test(test_json_curves),     cmocka_unit_test(test_siblings_from_records),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
