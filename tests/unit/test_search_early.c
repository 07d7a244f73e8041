/* Unit tests of a search's early stopping (server/search_early.c): a trial's decision at each
 * epoch, replayed from its siblings' curves in trial order, on scripted learning curves whose
 * promotions and stops are worked out by hand below from ASHA's rule (search.h: at a rung with n
 * values so far, a trial goes on when fewer than max(1, floor(n / eta)) values there are better
 * than its own); the waits for an earlier trial still below a rung; synchronous successive
 * halving's promotions, stops and waits on scripted curves of nine trials, also worked out by hand
 * (search.h: a rung decides once every trial expected there reported or ended, and promotes its
 * best max(1, floor(n / eta)), ties to the lower trial); the curves as JSON; and the params'
 * refusals. */
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

/* Successive halving over nine trials: min_epochs 1, eta 3, 9 epochs: rungs at epochs 1 and 3. */
static const struct search_early sync9 = {
    .min_epochs = 1, .eta = 3, .max_epochs = 9, .sync = 1, .trials = 9};

/* Each trial's curve as far as it may go: at epoch 1 (in trial order) 0.5, 0.4, 0.6, 0.55, 0.7,
 * 0.6, 0.3, 0.65, 0.2; at epoch 3 trial 2 0.8, trial 4 0.75, trial 7 0.85. */
static const double s0[] = {0.5}, s1[] = {0.4}, s3[] = {0.55}, s5[] = {0.6}, s6[] = {0.3},
                    s8[] = {0.2};
static const double s2[] = {0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8};
static const double s4[] = {0.7, 0.72, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75};
static const double s7[] = {0.65, 0.7, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9};

static enum search_asha_decision decide_sync(const struct search_early_curve *c, size_t trial,
                                             unsigned epoch)
{
    enum search_asha_decision d = CONT;
    struct eng_error err = {0};
    if (search_early_decide_sync(&sync9, c, trial, epoch, &d, &err) != 0)
        fail_msg("%s", err.message);
    return d;
}

/* A trial, an epoch and the decision expected there. */
struct sync_step {
    size_t trial;
    unsigned epoch;
    enum search_asha_decision decision;
};

static void expect_sync(const struct search_early_curve *c, const struct sync_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (decide_sync(c, steps[i].trial, steps[i].epoch) != steps[i].decision)
            fail_msg("trial %zu at epoch %u: not decision %d", steps[i].trial, steps[i].epoch,
                     (int)steps[i].decision);
}

static void test_successive_halving(void **state)
{
    (void)state;
    /* Every trial at epoch 1 but trial 8, still running below it: rung 1 is pending. */
    struct search_early_curve c[] = {{s0, 1, 0}, {s1, 1, 0}, {s2, 1, 0}, {s3, 1, 0}, {s4, 1, 0},
                                     {s5, 1, 0}, {s6, 1, 0}, {s7, 1, 0}, {s8, 0, 0}};
    assert_int_equal(decide_sync(c, 0, 1), WAIT);
    assert_int_equal(decide_sync(c, 4, 1), WAIT);
    /* Trial 8 reaches it: n 9 keeps 3: 0.7 (4), 0.65 (7), then 0.6 twice, trial 2 before trial 5.
     */
    c[8].n = 1;
    static const enum search_asha_decision rung1[9] = {STOP, STOP, CONT, STOP, CONT,
                                                       STOP, STOP, CONT, STOP};
    for (size_t t = 0; t < 9; t++)
        assert_int_equal(decide_sync(c, t, 1), rung1[t]);
    /* Epoch 2 is no rung; then rung 2 waits for trial 7, still at epoch 1; the trials cut at rung
     * 1 stay cut. */
    c[2].n = c[4].n = 3;
    expect_sync(
        c, (const struct sync_step[]){{2, 2, CONT}, {2, 3, WAIT}, {4, 3, WAIT}, {5, 1, STOP}}, 4);
    /* Trial 7 reaches it: n 3 keeps 1, 0.85 (7) over 0.8 (2) and 0.75 (4). */
    c[7].n = 3;
    expect_sync(c, (const struct sync_step[]){{7, 3, CONT}, {2, 3, STOP}, {4, 3, STOP}}, 3);
    /* Trial 7 cancelled at epoch 2 instead: dropped from rung 2, which keeps 1 of 2: trial 2. */
    c[7].n = 2;
    c[7].final = 1;
    expect_sync(c, (const struct sync_step[]){{2, 3, CONT}, {4, 3, STOP}}, 2);
    /* Trial 8 failed before epoch 1 instead: rung 1 of 8 keeps 2 (trials 4 and 7), and rung 2
     * then waits for those two alone. */
    struct search_early_curve d[9];
    memcpy(d, c, sizeof d);
    d[7] = (struct search_early_curve){s7, 1, 0};
    d[8] = (struct search_early_curve){s8, 0, 1};
    expect_sync(d, (const struct sync_step[]){{2, 1, STOP}, {4, 1, CONT}, {4, 3, WAIT}}, 3);
    d[7].n = 3;
    expect_sync(d, (const struct sync_step[]){{4, 3, STOP}, {7, 3, CONT}}, 2);
    /* Its own curve must reach the epoch asked about; a trial past the count is refused. */
    struct eng_error err = {0};
    enum search_asha_decision x;
    assert_int_equal(search_early_decide_sync(&sync9, d, 8, 1, &x, &err), -1);
    assert_int_equal(search_early_decide_sync(&sync9, d, 9, 0, &x, &err), -1);
}

/* The same from the trials' records, as the search and a trial read them: a waiting trial's
 * curve is its checkpoint's, and one without a record (its point gave no policy) is dropped. */
static void test_successive_halving_json(void **state)
{
    (void)state;
    static const double at1[9] = {0.5, 0.4, 0.6, 0.55, 0.7, 0.6, 0.3, 0.65, 0.2};
    json_t *records = json_array();
    for (size_t t = 0; t < 8; t++) /* trial 8 has no record */
        json_array_append_new(records,
                              json_pack("{s:s, s:{s:I}, s:n, s:{s:[{s:f}]}}", "state", "waiting",
                                        "params", "trial", (json_int_t)t, "result", "checkpoint",
                                        "metrics", "val_accuracy", at1[t]));
    json_t *all = NULL;
    struct eng_error err = {0};
    assert_int_equal(search_early_siblings(records, 9, &all, &err), 0);
    /* Rung 1 of 8 keeps 2: trials 4 and 7. */
    static const enum search_asha_decision rung1[8] = {STOP, STOP, STOP, STOP,
                                                       CONT, STOP, STOP, CONT};
    for (size_t t = 0; t < 8; t++) {
        enum search_asha_decision d = WAIT;
        assert_int_equal(search_early_decide_sync_json(&sync9, all, t, 1, &d, &err), 0);
        assert_int_equal(d, rung1[t]);
    }
    /* Not the search's count of curves: refused. */
    json_array_remove(all, 8);
    enum search_asha_decision d;
    assert_int_equal(search_early_decide_sync_json(&sync9, all, 0, 1, &d, &err), -1);
    json_decref(all);
    json_decref(records);
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
         "params.early_stopping.name: required: \"asha\" or \"successive-halving\""},
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
    /* Successive halving carries its count of trials to each trial. */
    params =
        json_loads("{\"early_stopping\": {\"name\": \"successive-halving\", \"eta\": 2}}", 0, NULL);
    assert_int_equal(search_early_open(&e, &on, params, &val, &err), 0);
    assert_true(on && e.sync);
    assert_int_equal(e.eta, 2);
    e.trials = 12;
    carried = search_early_json(&e);
    assert_int_equal(json_integer_value(json_object_get(carried, "trials")), 12);
    assert_int_equal(search_early_from_json(&back, carried, &err), 0);
    assert_memory_equal(&e, &back, sizeof e);
    json_object_set_new(carried, "trials", json_integer(0));
    assert_int_equal(search_early_from_json(&back, carried, &err), -1);
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
        cmocka_unit_test(test_scripted_curves),
        cmocka_unit_test(test_waits_for_earlier_trials),
        cmocka_unit_test(test_nan_is_worst),
        cmocka_unit_test(test_short_curve),
        cmocka_unit_test(test_json_curves),
        cmocka_unit_test(test_siblings_from_records),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_successive_halving),
        cmocka_unit_test(test_successive_halving_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
