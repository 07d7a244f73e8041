/* The job kind "affinity-diversity" against the real binary, on the colour dataset
 * (colour_dataset.h) with a small CNN and three policies: Identity, Invert half the time, and
 * FlipLR.
 *
 * - Identity: its run is the clean run's computation and it changes no pixel of the val split,
 *   so affinity and diversity are exactly 1 and the gain exactly 0.
 * - Every policy's numbers are the other kinds' for the same params, an independent cross-check:
 *   diversity, its loss and the clean loss are what the diversity kind reports; the clean
 *   model's val accuracy is what a train job with the same params reaches, and the affinity is
 *   the ratio (and the augmented accuracy the accuracy) the affinity kind gives on the model that
 *   train job registers, over the val split at the same seed.
 * - The artifacts: table.csv (a row per policy, the result's numbers) and scatter.png, a chart
 *   with its colour bar (blue at the top, red at the bottom); the result's scatter points.
 * - kill -9 in the clean run and in a policy's run, and between the file and the record of the
 *   first policy run's first checkpoint: the resumed job continues inside that run (its log says
 *   which) and ends with an uninterrupted job's numbers, bit for bit.
 * - A cancel stops a running job; params are refused with the field named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "colour_dataset.h"
#include "core/img.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"
#include "kill_between.h"

#define INVERT_HALF "{\"p\": 0.5, \"do\": {\"op\": \"Invert\"}}"
#define IDENTITY    "{\"op\": \"Identity\"}"
#define POLICIES    "[" IDENTITY ", " INVERT_HALF ", {\"op\": \"FlipLR\"}]"
#define N_POLICIES  3

static struct server *start(void **state)
{
    return harness_start_with_models(state, "\"job_threads\": 2");
}

/* The members the kinds compared share: the dataset, the model, the budget, the optimiser, the
 * schedule and the seed. */
static void common(char *out, size_t size, const char *ds, int epochs)
{
    snprintf(out, size,
             "\"dataset\": \"%s\", \"model\": {\"arch\": \"small-cnn\", \"classes\": 3, \"size\": "
             "%d}, \"epochs\": %d, \"batch\": 12, \"optimizer\": {\"name\": \"sgd\", \"lr\": "
             "0.05, \"momentum\": 0.9, \"nesterov\": true}, \"schedule\": {\"name\": \"cosine\"}, "
             "\"seed\": 3",
             ds, SIDE, epochs);
}

/* The job's params: common's, the splits, the policies, then extra. */
static void job_params(char *out, size_t size, const char *ds, int epochs, const char *extra)
{
    char shared[512];
    common(shared, sizeof shared, ds, epochs);
    snprintf(out, size,
             "{%s, \"split\": \"train\", \"val_split\": \"val\", \"policies\": " POLICIES "%s}",
             shared, extra);
}

static double real(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_number(v)) fail_msg("%s is not a number", name);
    return json_number_value(v);
}

/* A job of kind with params, run to success: its result (a reference the caller drops). */
static json_t *result_of(const struct server *srv, const char *kind, const char *params)
{
    char id[32];
    job_submit(srv, kind, params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_incref(json_object_get(doc, "result"));
    json_decref(doc);
    assert_non_null(result);
    return result;
}

/* A job of `epochs` epochs (extra after the params) on a colour dataset of 8 images per class
 * it makes (its id in ds), run to success: its document; its id in id. */
static json_t *run_job(struct server *srv, int epochs, const char *extra, char ds[64], char id[32])
{
    char params[2048];
    colour_dataset_make(srv, CLASSES, 8, ds);
    job_params(params, sizeof params, ds, epochs, extra);
    job_submit(srv, "affinity-diversity", params, id);
    return job_wait_state(srv, id, "succeeded");
}

static void test_scores_and_cross_checks(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048], shared[512], id[32];
    json_t *doc = run_job(srv, 4, "", ds, id);
    json_t *result = json_object_get(doc, "result"), *rows = json_object_get(result, "policies");
    json_t *clean = json_object_get(result, "clean");
    assert_int_equal(json_array_size(rows), N_POLICIES);
    assert_int_equal(json_int(result, "count"), 3 * 4);
    assert_int_equal(json_int(result, "steps"), 8);

    json_t *identity = json_array_get(rows, 0), *invert = json_array_get(rows, 1);
    assert_string_equal(json_str(identity, "name"), "Identity");
    assert_true(real(identity, "affinity") == 1.0);
    assert_true(real(identity, "diversity") == 1.0);
    assert_true(real(identity, "gain") == 0.0);
    assert_true(real(identity, "loss") == real(clean, "loss"));

    /* The diversity kind on the same params and Invert half the time. */
    common(shared, sizeof shared, ds, 4);
    snprintf(params, sizeof params, "{%s, \"split\": \"train\", \"policy\": " INVERT_HALF "}",
             shared);
    json_t *diversity = result_of(srv, "diversity", params);
    assert_true(real(diversity, "diversity") == real(invert, "diversity"));
    assert_true(real(diversity, "loss_with_policy") == real(invert, "loss"));
    assert_true(real(diversity, "loss_without_policy") == real(clean, "loss"));
    json_decref(diversity);

    /* The train kind on the same params registers the clean model; the affinity kind on it. */
    snprintf(params, sizeof params,
             "{%s, \"split\": \"train\", \"val_split\": \"val\", \"output\": \"clean\"}", shared);
    json_t *train = result_of(srv, "train", params);
    assert_true(real(json_object_get(train, "final"), "val_accuracy") == real(clean, "accuracy"));
    json_decref(train);
    snprintf(params, sizeof params,
             "{\"model\": \"clean\", \"dataset\": \"%s\", \"split\": \"val\", \"policies\": "
             "[" INVERT_HALF "], \"seed\": 3}",
             ds);
    json_t *affinity = result_of(srv, "affinity", params);
    json_t *row = json_array_get(json_object_get(affinity, "policies"), 0);
    print_message("Invert half the time: affinity %.6g, diversity %.6g, gain %.6g\n",
                  real(invert, "affinity"), real(invert, "diversity"), real(invert, "gain"));
    assert_true(real(affinity, "clean_accuracy") == real(clean, "accuracy"));
    assert_true(real(json_object_get(row, "ratio"), "mean") == real(invert, "affinity"));
    assert_true(real(json_object_get(row, "accuracy"), "mean") ==
                real(invert, "augmented_accuracy"));
    json_decref(affinity);

    /* The scatter's points are the rows' numbers; table.csv has a row per policy. */
    json_t *points = json_object_get(json_object_get(result, "scatter"), "points");
    assert_int_equal(json_array_size(points), N_POLICIES);
    for (size_t i = 0; i < N_POLICIES; i++) {
        const char *names[] = {"affinity", "diversity", "gain"};
        for (size_t k = 0; k < 3; k++)
            assert_true(real(json_array_get(points, i), names[k]) ==
                        real(json_array_get(rows, i), names[k]));
    }
    char path[96];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/table.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_true(strncmp(r.body, "policy,affinity,diversity,accuracy,gain,loss,", 45) == 0);
    assert_non_null(strstr(r.body, "\nIdentity,1,1,"));
    size_t lines = 0;
    for (size_t i = 0; i < r.body_size; i++)
        lines += r.body[i] == '\n';
    assert_int_equal(lines, 1 + N_POLICIES);
    http_response_free(&r);

    /* scatter.png: a chart whose colour bar (the right margin) runs from blue to red. */
    struct img *chart = chart_artifact(srv, id, "scatter.png");
    const unsigned char *top = img_row(chart, 20) + 3 * (480 - 20 + 9);
    const unsigned char *bottom = img_row(chart, 320 - 20) + 3 * (480 - 20 + 9);
    assert_true(top[2] > top[0] + 100);
    assert_true(bottom[0] > bottom[2] + 100);
    img_free(chart);
    json_decref(doc);
    harness_pass(state);
}

/* The job (of `epochs` per run) run whole, then again killed with kill -9 and resumed by a second
 * server: the same result. reached NULL: killed at `fraction` (run k of the 1 + N_POLICIES takes
 * k / 4 to (k + 1) / 4) and resumed inside run `phase`; else killed between the file and the
 * record of the checkpoint after the first record it accepts (kill_between.h), and resumed from
 * that record. */
static void kill_inside(void **state, int epochs, double fraction, const char *phase,
                        int (*reached)(const json_t *record))
{
    struct server *first = start(state);
    char ds[64], params[2048], id[32], needle[128];
    const char *extra = ", \"label_smoothing\": 0.1";
    json_t *whole = run_job(first, epochs, extra, ds, id);

    job_params(params, sizeof params, ds, epochs, extra);
    job_submit(first, "affinity-diversity", params, id);
    struct server *second;
    json_t *resumed;
    if (reached) {
        json_t *kept = kill_between_file_and_record(first, id, reached);
        json_int_t k = json_integer_value(json_object_get(kept, "phase"));
        char run[64] = "clean run";
        if (k) snprintf(run, sizeof run, "run with policies/%lld", (long long)k - 1);
        snprintf(needle, sizeof needle, "resuming after epoch %lld of %d (%s)",
                 (long long)json_integer_value(json_object_get(kept, "epoch")), epochs, run);
        json_decref(kept);
        resumed = job_resume(state, first, id, needle, &second);
    } else {
        snprintf(needle, sizeof needle, "(%s)", phase);
        resumed = job_kill_and_resume(state, first, id, fraction, needle, &second);
    }
    json_t *a = json_object_get(whole, "result"), *b = json_object_get(resumed, "result");
    assert_true(real(json_object_get(a, "clean"), "loss") ==
                real(json_object_get(b, "clean"), "loss"));
    for (size_t i = 0; i < N_POLICIES; i++) {
        const char *names[] = {"affinity", "diversity", "accuracy",
                               "gain",     "loss",      "augmented_accuracy"};
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            assert_true(real(json_array_get(json_object_get(a, "policies"), i), names[k]) ==
                        real(json_array_get(json_object_get(b, "policies"), i), names[k]));
    }
    json_decref(whole);
    json_decref(resumed);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

static void test_kill9_in_clean_run(void **state)
{
    kill_inside(state, 6, 0.1, "clean run", NULL);
}

static void test_kill9_in_policy_run(void **state)
{
    kill_inside(state, 6, 0.6, "run with policies/1", NULL);
}

/* The clean run's last checkpoint (of 3) or later: the next is the first policy run's first. */
static int clean_run_done(const json_t *record)
{
    return json_integer_value(json_object_get(record, "phase")) > 0 ||
           json_integer_value(json_object_get(record, "epoch")) == 3;
}

/* Killed between the file and the record of the first policy run's first checkpoint (after the
 * clean model was scored under every policy): the job resumes after the clean run's last epoch,
 * and scores it again. 3 epochs per run: the files alternate with the job's checkpoints, not the
 * run's own or the runs'. */
static void test_kill9_between_runs(void **state)
{
    kill_inside(state, 3, 0, NULL, clean_run_done);
}

static void test_cancel(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[2048];
    colour_dataset_make(srv, CLASSES, 8, ds);
    job_params(params, sizeof params, ds, 10000, "");
    job_cancel_running(srv, "affinity-diversity", params);
    harness_pass(state);
}

static void test_bad_params(void **state)
{
    struct server *srv = start(state);
    char ds[64], p[2048], shared[512];
    colour_dataset_make(srv, CLASSES, 4, ds);
    common(shared, sizeof shared, ds, 2);
    snprintf(p, sizeof p, "{%s, \"split\": \"train\", \"policies\": [" IDENTITY "]}", shared);
    job_expect_refusal(srv, "affinity-diversity", p, 422, "params.val_split: required");
    snprintf(p, sizeof p, "{%s, \"split\": \"train\", \"val_split\": \"val\"}", shared);
    job_expect_refusal(srv, "affinity-diversity", p, 422, "params.policies: required");
    char many[1024] = "[";
    for (int i = 0; i < 33; i++)
        strcat(many, i ? ", " IDENTITY : IDENTITY);
    strcat(many, "]");
    snprintf(p, sizeof p, "{%s, \"split\": \"train\", \"val_split\": \"val\", \"policies\": %s}",
             shared, many);
    job_expect_refusal(srv, "affinity-diversity", p, 422, "a list of 1 to 32 policies");
    const char *cases[][2] = {
        {", \"policy\": " IDENTITY, "params.policy: unknown parameter"},
        {", \"output\": \"o\"", "params.output: unknown parameter"},
        {", \"ema\": 0.9", "params.ema: unknown parameter"},
        {", \"eval_every\": 1", "params.eval_every: unknown parameter"},
        {", \"steps\": 3", "params.steps: give epochs or steps, not both"},
        {", \"level\": 0.5", "params.level: only with"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        job_params(p, sizeof p, ds, 2, cases[i][0]);
        job_expect_refusal(srv, "affinity-diversity", p, 422, cases[i][1]);
    }
    snprintf(p, sizeof p,
             "{%s, \"split\": \"train\", \"val_split\": \"val\", \"policies\": [" IDENTITY
             ", {\"op\": \"Nosuch\"}]}",
             shared);
    job_expect_refusal(srv, "affinity-diversity", p, 422, "params.policies/1");
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_scores_and_cross_checks),
        HARNESS_MODELS_TEST(test_kill9_in_clean_run),
        HARNESS_MODELS_TEST(test_kill9_in_policy_run),
        HARNESS_MODELS_TEST(test_kill9_between_runs),
        HARNESS_MODELS_TEST(test_cancel),
        HARNESS_MODELS_TEST(test_bad_params),
    };
    return harness_main(argc, argv, "affinity_diversity_job", tests,
                        sizeof tests / sizeof tests[0]);
}
