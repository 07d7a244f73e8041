/* A search's objectives that train (server/search_objective.h) against the real binary, on the
 * colour dataset (colour_dataset.h) with a small CNN, each trial run alone by the debug kind
 * "objective-trial" (the search's own trial function, its siblings' curves scripted).
 *
 * - val_accuracy: the trial's value after each epoch is the val accuracy a train job with the
 *   same params, policy and seed reports for that epoch (its metrics.csv), exactly: the trial is
 *   the train kind's run; its images are its steps times the batch; its metric events are named
 *   "val_accuracy".
 * - Early stopping: a sibling better at the first rung stops the trial there (one epoch, its
 *   value that epoch's, half the images); a worse one lets it run its whole budget.
 * - affinity-diversity: the trial's affinity and diversity are an affinity-diversity job's for
 *   that policy, and its value their weighted sum; a search's trials share one clean run (the
 *   second loads the first's) with the same numbers, bit for bit.
 * - kill -9 inside a val_accuracy trial: the resumed trial (second attempt, from its checkpoint)
 *   ends with an uninterrupted one's values, bit for bit.
 * - A search's params: the objectives' refusals name the search's fields. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colour_dataset.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define INVERT_HALF "{\"p\": 0.5, \"do\": {\"op\": \"Invert\"}}"
/* 8 training images per class in batches of 12: 2 steps per epoch. */
#define STEPS_PER_EPOCH 2
#define BATCH           12
#define SERVER_SETTINGS "\"job_threads\": 2, \"debug_routes\": true"

static struct server *start(void **state)
{
    return harness_start_with_models(state, SERVER_SETTINGS);
}

/* The training members a train job and a trial share: dataset, splits, model, budget, optimiser,
 * schedule, seed. */
static void training(char *out, size_t size, const char *ds, int epochs)
{
    snprintf(out, size,
             "\"dataset\": \"%s\", \"split\": \"train\", \"val_split\": \"val\", \"model\": "
             "{\"arch\": \"small-cnn\", \"classes\": 3, \"size\": %d}, \"epochs\": %d, "
             "\"batch\": %d, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9, "
             "\"nesterov\": true}, \"schedule\": {\"name\": \"cosine\"}, \"seed\": 3",
             ds, SIDE, epochs, BATCH);
}

/* An objective-trial job's params: trial `trial` of objective with INVERT_HALF, then extra. */
static void trial_params(char *out, size_t size, const char *ds, const char *objective, int trial,
                         int epochs, const char *extra)
{
    char train[1024];
    training(train, sizeof train, ds, epochs);
    snprintf(out, size,
             "{\"objective\": \"%s\", \"trial\": %d, \"policy\": " INVERT_HALF
             ", \"train\": {%s}%s}",
             objective, trial, train, extra);
}

/* A job of kind with params run to success: its result (the caller drops it); its id in id. */
static json_t *result_of(const struct server *srv, const char *kind, const char *params,
                         char id[32])
{
    job_submit(srv, kind, params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_incref(json_object_get(doc, "result"));
    json_decref(doc);
    assert_non_null(result);
    return result;
}

static double real(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_number(v)) fail_msg("%s is not a number", name);
    return json_number_value(v);
}

/* The val_accuracy column (the fifth) of a job's metrics.csv, row by row, into values: how many
 * rows. */
static size_t val_accuracies(const struct server *srv, const char *id, double *values, size_t max)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/metrics.csv", id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_true(strncmp(r.body, "epoch,train_loss,train_accuracy,val_loss,val_accuracy,", 54) == 0);
    size_t n = 0;
    for (const char *line = strchr(r.body, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        const char *field = line + 1;
        for (int c = 0; c < 4; c++)
            field = strchr(field, ',') + 1;
        assert_true(n < max);
        values[n++] = strtod(field, NULL);
    }
    http_response_free(&r);
    return n;
}

/* The job's events hold needle. */
static void expect_event(const struct server *srv, const char *id, const char *needle)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_contains(r.body, needle);
    http_response_free(&r);
}

/* The trial's "epochs" are expected (n values, exactly), its value the last of them. */
static void expect_epochs(const json_t *result, const double *expected, size_t n)
{
    const json_t *epochs = json_object_get(result, "epochs");
    assert_int_equal(json_array_size(epochs), n);
    for (size_t k = 0; k < n; k++)
        if (json_number_value(json_array_get(epochs, k)) != expected[k])
            fail_msg("epoch %zu: %.17g, not %.17g", k + 1,
                     json_number_value(json_array_get(epochs, k)), expected[k]);
    assert_true(real(result, "value") == expected[n - 1]);
}

static void test_val_accuracy_is_train(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048], train[1024], id[32], trial_id[32];
    colour_dataset_make(srv, CLASSES, 8, ds);
    training(train, sizeof train, ds, 2);
    snprintf(params, sizeof params, "{%s, \"policy\": " INVERT_HALF ", \"output\": \"va\"}", train);
    json_decref(result_of(srv, "train", params, id));
    double expected[4];
    assert_int_equal(val_accuracies(srv, id, expected, 4), 2);

    trial_params(params, sizeof params, ds, "val_accuracy", 0, 2, "");
    json_t *result = result_of(srv, "objective-trial", params, trial_id);
    expect_epochs(result, expected, 2);
    assert_int_equal(json_int(result, "images"), 2 * STEPS_PER_EPOCH * BATCH);
    assert_false(json_is_true(json_object_get(result, "stopped")));
    json_decref(result);

    /* Its metric events are "val_accuracy", one per epoch. */
    expect_event(srv, trial_id, "\"val_accuracy\"");
    harness_pass(state);
}

/* A trial of 4 epochs with ASHA from 1 epoch at eta 2 (rungs at epochs 1 and 2), after one
 * sibling of the given curve: its result. */
static json_t *judged_trial(const struct server *srv, const char *ds, const char *sibling)
{
    char params[2048], extra[256], id[32];
    snprintf(extra, sizeof extra,
             ", \"early_stopping\": {\"min_epochs\": 1, \"eta\": 2, \"max_epochs\": 4}, "
             "\"siblings\": [{\"epochs\": %s}]",
             sibling);
    trial_params(params, sizeof params, ds, "val_accuracy", 1, 4, extra);
    return result_of(srv, "objective-trial", params, id);
}

static void test_early_stopping(void **state)
{
    struct server *srv = start(state);
    char ds[64];
    colour_dataset_make(srv, CLASSES, 8, ds);
    /* At rung 1 the sibling's 2 (no accuracy reaches it) and the trial's: 2 values, the best 1
     * goes on: the trial stops after epoch 1. */
    json_t *stopped = judged_trial(srv, ds, "[2, 2, 2, 2]");
    assert_true(json_is_true(json_object_get(stopped, "stopped")));
    assert_int_equal(json_array_size(json_object_get(stopped, "epochs")), 1);
    assert_int_equal(json_int(stopped, "images"), STEPS_PER_EPOCH * BATCH);
    /* A sibling below any accuracy, stopped at rung 1: the trial runs its 4 epochs, the first
     * the same as the stopped trial's (same seed, same first epoch). */
    json_t *whole = judged_trial(srv, ds, "[-1]");
    assert_false(json_is_true(json_object_get(whole, "stopped")));
    const json_t *epochs = json_object_get(whole, "epochs");
    assert_int_equal(json_array_size(epochs), 4);
    assert_int_equal(json_int(whole, "images"), 4 * STEPS_PER_EPOCH * BATCH);
    double first = json_number_value(json_array_get(epochs, 0));
    assert_true(real(stopped, "value") == first);
    json_decref(stopped);
    json_decref(whole);
    harness_pass(state);
}

/* An affinity-diversity job of 2 epochs on ds for policy (a JSON text): its row for it (a
 * reference the caller drops). */
static json_t *kind_row(const struct server *srv, const char *ds, const char *policy)
{
    char params[2048], train[1024], id[32];
    training(train, sizeof train, ds, 2);
    snprintf(params, sizeof params, "{%s, \"policies\": [%s]}", train, policy);
    json_t *job = result_of(srv, "affinity-diversity", params, id);
    json_t *row = json_incref(json_array_get(json_object_get(job, "policies"), 0));
    json_decref(job);
    return row;
}

/* A trial's parts are the kind's row's, and its value their sum with weights wa and wd; its
 * images those of `runs` runs of 2 epochs (2: its own clean run and its policy's). */
static void expect_parts(const json_t *trial, const json_t *row, double wa, double wd, int runs)
{
    assert_true(real(trial, "affinity") == real(row, "affinity"));
    assert_true(real(trial, "diversity") == real(row, "diversity"));
    assert_true(real(trial, "value") == wa * real(row, "affinity") + wd * real(row, "diversity"));
    assert_int_equal(json_int((json_t *)trial, "images"), runs * 2 * STEPS_PER_EPOCH * BATCH);
}

static void test_affinity_diversity_is_the_kind(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048], id[32];
    colour_dataset_make(srv, CLASSES, 8, ds);
    json_t *row = kind_row(srv, ds, INVERT_HALF);
    trial_params(params, sizeof params, ds, "affinity-diversity", 0, 2,
                 ", \"weights\": {\"affinity\": 1, \"diversity\": 0.5}");
    json_t *trial = result_of(srv, "objective-trial", params, id);
    expect_parts(trial, row, 1, 0.5, 2);
    json_decref(trial);
    json_decref(row);
    harness_pass(state);
}

/* Kills first with kill -9 once job id is half done, and starts a second server on its data_dir
 * (with debug_routes, for objective-trial). */
static struct server *kill_and_restart(void **state, struct server *first, const char *id)
{
    job_wait_progress(first, id, 0.5);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(first->wait_status));
    char settings[4096];
    snprintf(settings, sizeof settings, "{" SERVER_SETTINGS ", \"models_dir\": \"%s\"}",
             harness_models_dir());
    return job_restart_on(state, first, settings);
}

static void test_kill9_resume(void **state)
{
    struct server *first = start(state);
    char ds[64], params[2048], id[32];
    colour_dataset_make(first, CLASSES, 8, ds);
    trial_params(params, sizeof params, ds, "val_accuracy", 0, 6, "");
    json_t *whole = result_of(first, "objective-trial", params, id);

    job_submit(first, "objective-trial", params, id);
    struct server *second = kill_and_restart(state, first, id);
    json_t *doc = job_wait_state(second, id, "succeeded");
    assert_int_equal(json_int(doc, "attempts"), 2);
    expect_event(second, id, "resuming after epoch");

    const json_t *resumed = json_object_get(doc, "result");
    double expected[6];
    for (size_t k = 0; k < 6; k++)
        expected[k] = json_number_value(json_array_get(json_object_get(whole, "epochs"), k));
    expect_epochs(resumed, expected, 6);
    assert_int_equal(json_int((json_t *)resumed, "images"), json_int(whole, "images"));
    json_decref(doc);
    json_decref(whole);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* ---- Searches whose trials train (child jobs of the kind search-trial) ---------------------- */

/* A search's params: space, algorithm, objective (JSON texts), the budget's trials, on ds with
 * small-cnn and seed 3, then more. */
static void search_params(char *out, size_t size, const char *space, const char *algorithm,
                          const char *objective, int trials, const char *ds, const char *more)
{
    snprintf(out, size,
             "{\"space\": %s, \"algorithm\": %s, \"objective\": %s, \"budget\": {\"trials\": %d}, "
             "\"dataset\": \"%s\", \"splits\": {\"train\": \"train\", \"val\": \"val\"}, "
             "\"model\": {\"arch\": \"small-cnn\", \"classes\": 3, \"size\": %d}, \"seed\": 3%s}",
             space, algorithm, objective, trials, ds, SIDE, more);
}

/* The objective's training settings, as training() has them, for `epochs` epochs. */
static void objective_text(char *out, size_t size, const char *name, int epochs, const char *more)
{
    snprintf(out, size,
             "{\"name\": \"%s\", \"epochs\": %d, \"batch\": %d, \"optimizer\": {\"name\": "
             "\"sgd\", \"lr\": 0.05, \"momentum\": 0.9, \"nesterov\": true}, \"schedule\": "
             "{\"name\": \"cosine\"}%s}",
             name, epochs, BATCH, more);
}

/* Identity or Invert half the time: a grid of two trials. */
#define CHOICE_SPACE "{\"$search\": {\"choice\": [{\"op\": \"Identity\"}, " INVERT_HALF "]}}"

/* A search of `trials` trials over space by grid, of objective name for `epochs` epochs (with
 * settings after its members), then more, on a colour dataset it makes (its id in ds): its params
 * in params. */
static void objective_search(const struct server *srv, char ds[64], const char *name, int epochs,
                             const char *settings, const char *space, int trials, const char *more,
                             char params[2048])
{
    char objective[512];
    colour_dataset_make(srv, CLASSES, 8, ds);
    objective_text(objective, sizeof objective, name, epochs, settings);
    search_params(params, 2048, space, "\"grid\"", objective, trials, ds, more);
}

static void test_search_val_accuracy_is_train(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048], train[1024], id[32];
    objective_search(srv, ds, "val_accuracy", 2, "", CHOICE_SPACE, 2, "", params);
    json_t *result = result_of(srv, "search", params, id);
    const json_t *trials = json_object_get(result, "trials");
    assert_int_equal(json_array_size(trials), 2);
    assert_string_equal(json_string_value(json_object_get(result, "objective")), "val_accuracy");
    training(train, sizeof train, ds, 2);
    for (size_t i = 0; i < 2; i++) {
        /* A train job with the trial's policy: its val accuracy after each epoch. */
        const json_t *row = json_array_get(trials, i);
        char *policy = json_dumps(json_object_get(row, "policy"), JSON_COMPACT);
        char job[2048], train_id[32];
        snprintf(job, sizeof job, "{%s, \"policy\": %s, \"output\": \"va%zu\"}", train, policy, i);
        free(policy);
        json_decref(result_of(srv, "train", job, train_id));
        double expected[4];
        assert_int_equal(val_accuracies(srv, train_id, expected, 4), 2);
        expect_epochs(row, expected, 2);
        assert_string_equal(json_string_value(json_object_get(row, "state")), "succeeded");
        assert_int_equal(json_int((json_t *)row, "images"), 2 * STEPS_PER_EPOCH * BATCH);
    }
    json_decref(result);
    harness_pass(state);
}

static void test_search_affinity_diversity(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048], id[32];
    objective_search(srv, ds, "affinity-diversity", 2,
                     ", \"weights\": {\"affinity\": 2, \"diversity\": 1}", CHOICE_SPACE, 2, "",
                     params);
    json_t *result = result_of(srv, "search", params, id);
    const json_t *trials = json_object_get(result, "trials");
    /* Identity (trial 0) scores 2 * 1 + 1 exactly; trial 1 is the kind's for its policy. */
    assert_true(real(json_array_get(trials, 0), "value") == 3.0);
    char *policy = json_dumps(json_object_get(json_array_get(trials, 1), "policy"), JSON_COMPACT);
    json_t *row = kind_row(srv, ds, policy);
    free(policy);
    /* Trial 1 loaded the clean run trial 0 trained, and scores as the kind's own: the search's
     * trials count their policy runs' images alone. The search removed the shared run. */
    expect_parts(json_array_get(trials, 1), row, 2, 1, 1);
    expect_event(srv, json_str(json_array_get(trials, 1), "job"), "the clean run: another trial's");
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/jobs/%s/clean-run", srv->data_dir, id);
    assert_int_equal(access(path, F_OK), -1);
    json_decref(row);
    json_decref(result);
    harness_pass(state);
}

/* A search of params with member name set to value (which it takes) and member drop (NULL:
 * none) left out, run to success: its result. */
static json_t *search_with(const struct server *srv, const char *params, const char *name,
                           json_t *value, const char *drop, char id[32])
{
    json_t *doc = json_loads(params, 0, NULL);
    assert_non_null(doc);
    json_object_set_new(doc, name, value);
    if (drop) json_object_del(doc, drop);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    json_t *result = result_of(srv, "search", text, id);
    free(text);
    return result;
}

/* ASHA in a search: Identity first, then every image inverted (a model of the inverted colours,
 * scored on plain ones), 4 epochs with a rung at 2: trial 1 below trial 0 at epoch 2 stops
 * there. An images budget stops the search from starting a trial once it is spent. */
static void test_search_early_stopping(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048], id[32];
    objective_search(srv, ds, "val_accuracy", 4, "",
                     "{\"$search\": {\"choice\": [{\"op\": \"Identity\"}, {\"op\": \"Invert\"}]}}",
                     2, ", \"early_stopping\": {\"name\": \"asha\", \"min_epochs\": 2, \"eta\": 2}",
                     params);
    json_t *result = result_of(srv, "search", params, id);
    const json_t *t0 = json_array_get(json_object_get(result, "trials"), 0),
                 *t1 = json_array_get(json_object_get(result, "trials"), 1);
    const json_t *e0 = json_object_get(t0, "epochs"), *e1 = json_object_get(t1, "epochs");
    assert_string_equal(json_string_value(json_object_get(t0, "state")), "succeeded");
    assert_int_equal(json_array_size(e0), 4);
    assert_true(json_number_value(json_array_get(e1, 1)) <
                json_number_value(json_array_get(e0, 1)));
    assert_string_equal(json_string_value(json_object_get(t1, "state")), "stopped");
    assert_int_equal(json_array_size(e1), 2);
    assert_true(real(t1, "value") == json_number_value(json_array_get(e1, 1)));
    assert_int_equal(json_int((json_t *)t1, "images"), 2 * STEPS_PER_EPOCH * BATCH);
    json_decref(result);
    /* The leaderboard says so, with the metric after each epoch. */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/leaderboard.csv", id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_contains(r.body, ",stopped,");
    assert_contains(r.body, "policy,job,epochs\n");
    http_response_free(&r);

    /* Two at once: trial 1 may reach its rung first and waits for trial 0 there; the same
     * decisions (the values may differ in their last bits: each child has half the threads). */
    result = search_with(srv, params, "parallel", json_integer(2), NULL, id);
    t0 = json_array_get(json_object_get(result, "trials"), 0);
    t1 = json_array_get(json_object_get(result, "trials"), 1);
    assert_string_equal(json_string_value(json_object_get(t0, "state")), "succeeded");
    assert_int_equal(json_array_size(json_object_get(t0, "epochs")), 4);
    assert_string_equal(json_string_value(json_object_get(t1, "state")), "stopped");
    assert_int_equal(json_array_size(json_object_get(t1, "epochs")), 2);
    json_decref(result);

    /* Without early stopping, an images budget of one whole trial: the second never starts. */
    result = search_with(srv, params, "budget",
                         json_pack("{s:i}", "images", 4 * STEPS_PER_EPOCH * BATCH),
                         "early_stopping", id);
    assert_int_equal(json_array_size(json_object_get(result, "trials")), 1);
    json_decref(result);
    harness_pass(state);
}

/* kill -9 of the server inside a val_accuracy trial of a search: the trial, queued again, runs on
 * from its own checkpoint and the search ends with an uninterrupted one's trials. */
static void test_search_kill9_resume(void **state)
{
    struct server *first = start(state);
    char ds[64], params[2048], id[32], path[160];
    objective_search(first, ds, "val_accuracy", 6, "", CHOICE_SPACE, 1, "", params);
    json_t *whole = result_of(first, "search", params, id);

    job_submit(first, "search", params, id);
    /* Its one child, once it is half way. */
    char child[32] = "";
    double deadline = harness_now() + WAIT_S;
    while (!child[0]) {
        struct http_response r;
        snprintf(path, sizeof path, "/v1/jobs?parent=%s", id);
        http_get(first, path, &r);
        json_t *doc = http_json(&r);
        const json_t *job = json_array_get(json_object_get(doc, "jobs"), 0);
        if (job) snprintf(child, sizeof child, "%s", json_str((json_t *)job, "id"));
        json_decref(doc);
        http_response_free(&r);
        if (harness_now() > deadline) fail_msg("search %s queued no child", id);
        if (!child[0]) job_sleep_ms(5);
    }
    struct server *second = kill_and_restart(state, first, child);
    json_t *doc = job_wait_state(second, id, "succeeded");
    json_t *trial = job_get(second, child, NULL);
    assert_int_equal(json_int(trial, "attempts"), 2);
    expect_event(second, child, "resuming after epoch");
    const json_t *a = json_array_get(json_object_get(whole, "trials"), 0),
                 *b = json_array_get(json_object_get(json_object_get(doc, "result"), "trials"), 0);
    double expected[6];
    for (size_t k = 0; k < 6; k++)
        expected[k] = json_number_value(json_array_get(json_object_get(a, "epochs"), k));
    expect_epochs(b, expected, 6);
    json_decref(trial);
    json_decref(doc);
    json_decref(whole);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* ---- Synchronous successive halving -------------------------------------------------------- */

/* Four policies, a grid of four trials. */
#define FOUR_SPACE                                                                                 \
    "{\"$search\": {\"choice\": [{\"op\": \"Identity\"}, {\"op\": \"Invert\"}, " INVERT_HALF       \
    ", {\"op\": \"Solarize\", \"threshold\": 64}]}}"
#define HALVING                                                                                    \
    ", \"early_stopping\": {\"name\": \"successive-halving\", \"min_epochs\": 1, \"eta\": 2}"

/* The trials' indices at rung `epoch` (1-based) among those in `in` (n of them), ranked as
 * successive halving ranks them: by their value after that epoch, best first, ties to the lower
 * trial. */
static void rank_at(const json_t *trials, size_t *in, size_t n, unsigned epoch)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            double a = json_number_value(json_array_get(
                       json_object_get(json_array_get(trials, in[j - 1]), "epochs"), epoch - 1)),
                   b = json_number_value(json_array_get(
                       json_object_get(json_array_get(trials, in[j]), "epochs"), epoch - 1));
            if (b > a || (b == a && in[j] < in[j - 1])) {
                size_t t = in[j];
                in[j] = in[j - 1];
                in[j - 1] = t;
            }
        }
}

/* The search's four trials as successive halving over epochs 1 and 2 (eta 2) leaves them,
 * worked out here from their own curves: rung 1 keeps the best 2 of 4, rung 2 the best 1 of
 * those, which runs its 4 epochs; the others stop after the rung that cut them. */
static void expect_halving(const json_t *result)
{
    const json_t *trials = json_object_get(result, "trials");
    assert_int_equal(json_array_size(trials), 4);
    size_t order[4] = {0, 1, 2, 3}, epochs[4];
    rank_at(trials, order, 4, 1);
    rank_at(trials, order, 2, 2);
    epochs[order[0]] = 4;
    epochs[order[1]] = 2;
    epochs[order[2]] = epochs[order[3]] = 1;
    for (size_t t = 0; t < 4; t++) {
        const json_t *row = json_array_get(trials, t);
        if (json_array_size(json_object_get(row, "epochs")) != epochs[t])
            fail_msg("trial %zu ran %zu epochs, not %zu", t,
                     json_array_size(json_object_get(row, "epochs")), epochs[t]);
        assert_string_equal(json_string_value(json_object_get(row, "state")),
                            epochs[t] == 4 ? "succeeded" : "stopped");
        assert_true(real(row, "value") == json_number_value(json_array_get(
                                              json_object_get(row, "epochs"), epochs[t] - 1)));
    }
    assert_int_equal(json_int(json_object_get(result, "best"), "trial"), (json_int_t)order[0]);
}

/* How many of the search's children (at most max) are in state (NULL: any). */
static size_t children_in(const struct server *srv, const char *id, const char *state, size_t max)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs?parent=%s&limit=%zu", id, max);
    struct http_response r;
    http_get(srv, path, &r);
    json_t *doc = http_json(&r);
    size_t n = 0, i;
    const json_t *job;
    json_array_foreach(json_object_get(doc, "jobs"), i, job)
    {
        if (state && strcmp(json_str((json_t *)job, "state"), state) != 0) continue;
        n++;
    }
    json_decref(doc);
    http_response_free(&r);
    return n;
}

/* Successive halving in a search, one trial at a time: trials 0 to 2 end their runs waiting at
 * rung 1 (a "waiting" state each), trial 3 finds the rung decided, and the promoted ones resume
 * from their checkpoints: the survivor's four epochs are a train job's with its policy, bit for
 * bit. Two trials at once keep the rule. Then the same search killed with kill -9 while a trial
 * waits ends with the same trials. */
static void test_search_successive_halving(void **state)
{
    struct server *first = start(state);
    char ds[64], params[2048], id[32], train[1024];
    objective_search(first, ds, "val_accuracy", 4, "", FOUR_SPACE, 4, HALVING, params);
    /* Its budget is a count of trials, every one asked at once: no time, images or more than
     * 256. */
    json_t *bad = json_loads(params, 0, NULL);
    json_object_set_new(bad, "budget", json_pack("{s:i, s:i}", "trials", 4, "seconds", 60));
    char *text = json_dumps(bad, JSON_COMPACT);
    job_expect_refusal(first, "search", text, 422, "params.budget: successive halving takes");
    free(text);
    json_object_set_new(bad, "budget", json_pack("{s:i}", "trials", 257));
    text = json_dumps(bad, JSON_COMPACT);
    job_expect_refusal(first, "search", text, 422,
                       "params.budget.trials: at most 256 with successive halving");
    free(text);
    json_decref(bad);
    json_t *whole = result_of(first, "search", params, id);
    expect_halving(whole);
    /* Trials 0 to 2 waited at rung 1; trial 3, the last there, found it decided, and waited at
     * rung 2 only when promoted (for the other promoted trial, still waiting at rung 1). */
    assert_int_equal(children_in(first, id, NULL, 4), 4);
    for (size_t t = 0; t < 4; t++) {
        const json_t *row = json_array_get(json_object_get(whole, "trials"), t);
        char path[192];
        snprintf(path, sizeof path, "/v1/jobs/%s/events", json_str((json_t *)row, "job"));
        struct http_response r;
        http_get(first, path, &r);
        int waited = strstr(r.body, "\"state\":\"waiting\"") != NULL;
        http_response_free(&r);
        if (waited != (t < 3 || json_array_size(json_object_get(row, "epochs")) > 1))
            fail_msg("trial %zu %s", t, waited ? "waited" : "never waited");
    }
    /* The survivor against a train job with its policy. */
    const json_t *best = json_array_get(json_object_get(whole, "trials"),
                                        (size_t)json_int(json_object_get(whole, "best"), "trial"));
    char *policy = json_dumps(json_object_get(best, "policy"), JSON_COMPACT);
    char job[2048], train_id[32];
    training(train, sizeof train, ds, 4);
    snprintf(job, sizeof job, "{%s, \"policy\": %s, \"output\": \"sh\"}", train, policy);
    free(policy);
    json_decref(result_of(first, "train", job, train_id));
    double expected[4];
    assert_int_equal(val_accuracies(first, train_id, expected, 4), 4);
    expect_epochs(best, expected, 4);

    /* Two at once: trials reach the rungs in another order, and wake one another's rungs; the
     * halving holds on their own curves (whose last bits may differ: each has half the threads). */
    char two_id[32];
    json_t *two = search_with(first, params, "parallel", json_integer(2), NULL, two_id);
    expect_halving(two);
    json_decref(two);

    /* kill -9 once a trial waits; the restarted server resumes the search. */
    job_submit(first, "search", params, id);
    double deadline = harness_now() + WAIT_S;
    while (children_in(first, id, "waiting", 4) == 0) {
        if (harness_now() > deadline) fail_msg("no trial of search %s waited", id);
        job_sleep_ms(5);
    }
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    char settings[4096];
    snprintf(settings, sizeof settings, "{" SERVER_SETTINGS ", \"models_dir\": \"%s\"}",
             harness_models_dir());
    struct server *second = job_restart_on(state, first, settings);
    json_t *doc = job_wait_state(second, id, "succeeded");
    const json_t *resumed = json_object_get(doc, "result");
    expect_halving(resumed);
    for (size_t t = 0; t < 4; t++) {
        const json_t *a = json_array_get(json_object_get(whole, "trials"), t),
                     *b = json_array_get(json_object_get(resumed, "trials"), t);
        assert_true(json_equal(json_object_get(a, "epochs"), json_object_get(b, "epochs")));
        assert_true(json_equal(json_object_get(a, "policy"), json_object_get(b, "policy")));
    }
    json_decref(doc);
    json_decref(whole);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* A search of objective (a JSON text) with splits and more: refused with 422 and needle. */
static void refused(const struct server *srv, const char *ds, const char *objective,
                    const char *splits, const char *more, const char *needle)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"space\": {\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"int\": [0, "
             "256]}}}, \"algorithm\": \"random\", \"objective\": %s, \"budget\": {\"trials\": 2}, "
             "\"dataset\": \"%s\", \"splits\": %s, \"model\": {\"arch\": \"small-cnn\", "
             "\"classes\": 3, \"size\": %d}, \"seed\": 3%s}",
             objective, ds, splits, SIDE, more);
    job_expect_refusal(srv, "search", text, 422, needle);
}

static void test_search_params(void **state)
{
    struct server *srv = start(state);
    char ds[64];
    /* 24 images per class: the default batch of 64 fits the training split. */
    colour_dataset_make(srv, CLASSES, 24, ds);
    const char *both = "{\"train\": \"train\", \"val\": \"val\"}";
    static const struct {
        const char *objective, *splits, *more, *needle;
    } cases[] = {
        {"{\"name\": \"val_accuracy\", \"epochs\": 0}", NULL, "",
         "params.objective.epochs: must be a whole number in [1, "},
        {"{\"name\": \"val_accuracy\", \"optimizer\": {\"lr\": -1}}", NULL, "",
         "params.objective.optimizer.lr: must be"},
        {"{\"name\": \"val_accuracy\", \"batch\": 100}", NULL, "",
         "params.objective.batch: 100 is more than the 72 images of split train"},
        {"{\"name\": \"val_accuracy\", \"output\": \"m\"}", NULL, "",
         "params.objective.output: unknown member"},
        {"{\"epochs\": 2}", NULL, "", "params.objective.name: required"},
        {"\"val_accuracy\"", "{\"val\": \"val\"}", "", "params.splits: required: {"},
        {"\"val_accuracy\"", "{\"train\": \"nope\", \"val\": \"val\"}", "",
         "params.splits.train: "},
        {"\"val_accuracy\"", "{\"train\": \"train\", \"val\": \"nope\"}", "",
         "params.splits.val: must name a labeled split"},
        {"\"val_accuracy\"", NULL, ", \"batch_size\": 8", "params.batch_size: the affinity"},
        {"{\"name\": \"val_accuracy\", \"epochs\": 3}", NULL,
         ", \"early_stopping\": {\"name\": \"asha\", \"min_epochs\": 3}",
         "params.early_stopping.min_epochs: must be less than the objective's 3 epochs"},
        {"{\"name\": \"affinity-diversity\", \"weights\": {\"affinity\": 0, \"diversity\": 0}}",
         NULL, "", "params.objective.weights: at least one weight"},
        {"{\"name\": \"affinity-diversity\", \"weights\": {\"gain\": 1}}", NULL, "",
         "params.objective.weights.gain: unknown weight"},
        {"{\"name\": \"affinity-diversity\", \"ema\": 0.9}", NULL, "",
         "params.objective.ema: unknown member"},
        {"\"affinity-diversity\"", NULL, ", \"early_stopping\": {\"name\": \"asha\"}",
         "params.early_stopping: not for the affinity-diversity objective"},
        {"\"affinity\"", "{\"val\": \"val\"}", ", \"early_stopping\": {\"name\": \"asha\"}",
         "params.early_stopping: not for the affinity objective"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(srv, ds, cases[i].objective, cases[i].splits ? cases[i].splits : both,
                cases[i].more, cases[i].needle);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_val_accuracy_is_train),
        HARNESS_MODELS_TEST(test_early_stopping),
        HARNESS_MODELS_TEST(test_affinity_diversity_is_the_kind),
        HARNESS_MODELS_TEST(test_kill9_resume),
        HARNESS_MODELS_TEST(test_search_params),
        HARNESS_MODELS_TEST(test_search_val_accuracy_is_train),
        HARNESS_MODELS_TEST(test_search_affinity_diversity),
        HARNESS_MODELS_TEST(test_search_early_stopping),
        HARNESS_MODELS_TEST(test_search_kill9_resume),
        HARNESS_MODELS_TEST(test_search_successive_halving),
    };
    return harness_main(argc, argv, "search_objectives", tests, sizeof tests / sizeof tests[0]);
}
