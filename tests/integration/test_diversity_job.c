/* The job kind "diversity" against the real binary, on the colour dataset (colour_dataset.h)
 * with a small CNN.
 *
 * - Identity as the policy: the loader's batch order is a function of (seed, epoch) alone and
 *   Identity changes no pixel, so the two runs are the same computation: equal losses and
 *   accuracies bit for bit, and diversity exactly 1; with a budget in steps whose last epoch is
 *   partial, a row per epoch begun.
 * - A repository model fine-tuned (both runs from its graph): with Identity, diversity 1 too.
 * - Invert half the time: each class shows in two colours far apart (blue (20, 20, 230) also as
 *   (235, 235, 25)), so the same model on the same budget fits the training split less well than
 *   without it: a final training loss above the one without, diversity > 1, and diversity the
 *   quotient of the two reported losses exactly.
 * - kill -9 in either run (a budget in epochs, then in steps), and between the file and the record
 *   of the second run's first checkpoint: the resumed job continues inside that run (its log says
 *   which) and ends with the numbers of an uninterrupted job, bit for bit (same threads).
 * - A cancel stops a running job; params are refused with the field named (no policy: 422). */
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

#define EPOCHS 4
/* 8 images per class in batches of 12 are 2 steps per epoch: 2 * EPOCHS - 1 steps end after the
 * first batch of epoch EPOCHS. */
#define BY_EPOCHS "\"epochs\": 4"
#define BY_STEPS  "\"steps\": 7"

static const char *const invert_half = "{\"p\": 0.5, \"do\": {\"op\": \"Invert\"}}";

static struct server *start(void **state)
{
    return harness_start_with_models(state, "\"job_threads\": 2");
}

/* The params of the test's job: small-cnn at SIDE px, SGD with Nesterov, the budget (the member
 * "epochs" or "steps"), the policy (a JSON text, or NULL for none). */
static void diversity_params(char *out, size_t size, const char *ds, const char *budget,
                             const char *policy, const char *extra)
{
    char member[256] = "";
    if (policy) snprintf(member, sizeof member, ", \"policy\": %s", policy);
    snprintf(out, size,
             "{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
             "\"classes\": 3, \"size\": %d}, %s, \"batch\": 12, \"optimizer\": "
             "{\"name\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9, \"nesterov\": true}, "
             "\"schedule\": {\"name\": \"cosine\"}, \"seed\": 3%s%s}",
             ds, SIDE, budget, member, extra);
}

static double real(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_real(v)) fail_msg("%s is not a number", name);
    return json_real_value(v);
}

/* The job's artifact name: its body (the caller frees it with http_response_free). */
static void artifact(const struct server *srv, const char *id, const char *name,
                     struct http_response *r)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id, name);
    http_get(srv, path, r);
    assert_status(r, 200);
}

/* A column of a metrics CSV: its text per row, joined by ';'. */
static void csv_column(const char *csv, int column, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *line = strchr(csv, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        const char *field = line + 1;
        for (int c = 0; c < column; c++)
            field = strchr(field, ',') + 1;
        size_t len = strcspn(field, ",\n");
        n += (size_t)snprintf(out + n, size - n, "%.*s;", (int)len, field);
        assert_true(n < size);
    }
}

static void test_identity_is_one(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024], id[32];
    colour_dataset_make(srv, CLASSES, 8, ds);
    diversity_params(params, sizeof params, ds, BY_STEPS, "{\"op\": \"Identity\"}", "");
    job_submit(srv, "diversity", params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_object_get(doc, "result");
    assert_true(real(result, "diversity") == 1.0);
    assert_true(real(result, "loss_with_policy") == real(result, "loss_without_policy"));
    assert_true(real(result, "accuracy_with_policy") == real(result, "accuracy_without_policy"));
    assert_int_equal(json_int(result, "epochs"), EPOCHS);
    assert_int_equal(json_int(result, "steps"), 2 * EPOCHS - 1);

    /* A metrics CSV per run, a row per epoch, with the same training losses. */
    struct http_response with, without;
    artifact(srv, id, "metrics-with-policy.csv", &with);
    artifact(srv, id, "metrics-without-policy.csv", &without);
    assert_true(strncmp(with.body, "epoch,train_loss,", 17) == 0);
    char a[1024], b[1024];
    csv_column(with.body, 1, a, sizeof a);
    csv_column(without.body, 1, b, sizeof b);
    assert_string_equal(a, b);
    size_t semicolons = 0;
    for (const char *s = a; *s; s++)
        semicolons += *s == ';';
    assert_int_equal(semicolons, EPOCHS);
    http_response_free(&with);
    http_response_free(&without);

    /* loss.png is a chart; the checkpoint files went with the job's success. */
    expect_chart_artifact(srv, id, "loss.png");
    job_expect_only_artifacts(srv, id);
    json_decref(doc);
    harness_pass(state);
}

/* A repository model (one a train job registers) fine-tuned in both runs, as train fine-tunes it:
 * with Identity, diversity exactly 1 again, and the base model's bytes untouched. */
static void test_repository_model(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024], id[32], path[PATH_MAX];
    colour_dataset_make(srv, CLASSES, 8, ds);
    snprintf(params, sizeof params,
             "{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
             "\"classes\": 3, \"size\": %d}, \"epochs\": 1, \"batch\": 12, \"output\": \"base\"}",
             ds, SIDE);
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state(srv, id, "succeeded"));
    size_t before_size, after_size;
    snprintf(path, sizeof path, "%s/base/model.onnx", harness_models_dir());
    char *before = harness_read_file(path, &before_size);
    assert_non_null(before);

    snprintf(
        params, sizeof params,
        "{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"name\": \"base\", "
        "\"freeze\": [\"conv1.\"]}, \"steps\": 3, \"batch\": 12, \"optimizer\": {\"lr\": 0.05}, "
        "\"policy\": {\"op\": \"Identity\"}}",
        ds);
    job_submit(srv, "diversity", params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_object_get(doc, "result");
    assert_true(real(result, "diversity") == 1.0);
    assert_int_equal(json_int(result, "steps"), 3);
    char *after = harness_read_file(path, &after_size);
    assert_non_null(after);
    assert_int_equal(before_size, after_size);
    assert_memory_equal(before, after, before_size);
    free(before);
    free(after);
    json_decref(doc);
    harness_pass(state);
}

static void test_invert_is_diverse(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024], id[32];
    colour_dataset_make(srv, CLASSES, 8, ds);
    diversity_params(params, sizeof params, ds, BY_EPOCHS, invert_half, "");
    job_submit(srv, "diversity", params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_object_get(doc, "result");
    double with = real(result, "loss_with_policy"), without = real(result, "loss_without_policy");
    print_message("diversity %.6g: loss %.6g with the policy, %.6g without\n", with / without, with,
                  without);
    assert_true(with > without);
    assert_true(real(result, "diversity") == with / without);
    assert_true(real(result, "diversity") > 1);
    json_decref(doc);
    harness_pass(state);
}

/* The job run whole, then again killed with kill -9 and resumed by a second server: the same
 * result. budget: params' "epochs" or "steps". reached NULL: killed at `fraction` (the first half
 * is the run with the policy) and resumed inside run `phase`; else killed between the file and
 * the record of the checkpoint after the first record it accepts (kill_between.h), and resumed
 * from that record. */
static void kill_inside(void **state, const char *budget, double fraction, const char *phase,
                        int (*reached)(const json_t *record))
{
    struct server *first = start(state);
    char ds[64], params[1024], id[32], needle[128];
    colour_dataset_make(first, CLASSES, 8, ds);
    diversity_params(params, sizeof params, ds, budget, invert_half, ", \"label_smoothing\": 0.1");
    job_submit(first, "diversity", params, id);
    json_t *whole = job_wait_state(first, id, "succeeded");

    job_submit(first, "diversity", params, id);
    struct server *second;
    json_t *resumed;
    if (reached) {
        json_t *kept = kill_between_file_and_record(first, id, reached);
        snprintf(needle, sizeof needle,
                 "resuming after epoch %lld of %lld (training %s the policy)",
                 (long long)json_integer_value(json_object_get(kept, "epoch")),
                 json_int(json_object_get(whole, "result"), "epochs"),
                 strcmp(json_str(kept, "phase"), "with_policy") ? "without" : "with");
        json_decref(kept);
        resumed = job_resume(state, first, id, needle, &second);
    } else {
        snprintf(needle, sizeof needle, "(training %s the policy)", phase);
        resumed = job_kill_and_resume(state, first, id, fraction, needle, &second);
    }
    const char *names[] = {"diversity", "loss_with_policy", "loss_without_policy",
                           "accuracy_with_policy", "accuracy_without_policy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_true(real(json_object_get(whole, "result"), names[i]) ==
                    real(json_object_get(resumed, "result"), names[i]));
    json_decref(whole);
    json_decref(resumed);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

static void test_kill9_in_first_run(void **state)
{
    kill_inside(state, "\"epochs\": 8", 0.2, "with", NULL);
}

static void test_kill9_in_second_run(void **state)
{
    kill_inside(state, "\"steps\": 15", 0.7, "without", NULL);
}

/* The first run's last checkpoint (of 3) or later: the next is the second run's first. */
static int first_run_done(const json_t *record)
{
    return strcmp(json_string_value(json_object_get(record, "phase")), "with_policy") != 0 ||
           json_integer_value(json_object_get(record, "epoch")) == 3;
}

/* Killed between the file and the record of the second run's first checkpoint: the job resumes
 * after the first run's last epoch (the record), not from the file the second run wrote. With an
 * odd number of epochs per run, the second run's first file is the one the first run's last
 * record does not name only because the files alternate with the job's checkpoints, not the run's
 * own. */
static void test_kill9_between_runs(void **state)
{
    kill_inside(state, "\"epochs\": 3", 0, NULL, first_run_done);
}

static void test_cancel(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024];
    colour_dataset_make(srv, CLASSES, 8, ds);
    diversity_params(params, sizeof params, ds, "\"epochs\": 10000", invert_half, "");
    job_cancel_running(srv, "diversity", params);
    harness_pass(state);
}

static void test_bad_params(void **state)
{
    struct server *srv = start(state);
    char ds[64], p[1200];
    colour_dataset_make(srv, CLASSES, 4, ds);
    diversity_params(p, sizeof p, ds, "\"epochs\": 2", NULL, "");
    job_expect_refusal(srv, "diversity", p, 422, "params.policy: required");
    const char *cases[][2] = {
        {", \"output\": \"o\"", "params.output: unknown parameter"},
        {", \"val_split\": \"val\"", "params.val_split: unknown parameter"},
        {", \"ema\": 0.9", "params.ema: unknown parameter"},
        {", \"eval_every\": 1", "params.eval_every: unknown parameter"},
        {", \"clip\": -1", "params.clip"},
        {", \"steps\": 3", "params.steps: give epochs or steps, not both"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        diversity_params(p, sizeof p, ds, "\"epochs\": 2", invert_half, cases[i][0]);
        job_expect_refusal(srv, "diversity", p, 422, cases[i][1]);
    }
    diversity_params(p, sizeof p, ds, "\"epochs\": 2", "{\"op\": \"Nosuch\"}", "");
    job_expect_refusal(srv, "diversity", p, 422, "params.policy");
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_identity_is_one),
        HARNESS_MODELS_TEST(test_repository_model),
        HARNESS_MODELS_TEST(test_invert_is_diverse),
        HARNESS_MODELS_TEST(test_kill9_in_first_run),
        HARNESS_MODELS_TEST(test_kill9_in_second_run),
        HARNESS_MODELS_TEST(test_kill9_between_runs),
        HARNESS_MODELS_TEST(test_cancel),
        HARNESS_MODELS_TEST(test_bad_params),
    };
    return harness_main(argc, argv, "diversity_job", tests, sizeof tests / sizeof tests[0]);
}
