/* The job kinds "fixmatch" and "supervised" against the real binary, on the training tests'
 * colour dataset (colour_dataset.h: solid colours in three classes, separable by one channel)
 * with a labeled split of 2 images per class derived from "train" and its rest, an unlabeled
 * split whose images keep their labels in the dataset (hidden from training, read for the
 * pseudo-label accuracy).
 *
 * fixmatch: every epoch reports a mask rate (a count of unlabeled images over the epoch's, so a
 * multiple of 1 / (mu B x steps)) and a pseudo-label accuracy; the colours are learnt from six
 * labeled images, every val image right and the last epoch's pseudo-labels all right; the model is
 * registered. A job killed with kill -9 and resumed registers a model.onnx byte-identical to an
 * uninterrupted run's: the unlabeled stream, like the labeled one, is a function of the step, so
 * no batch is lost or seen twice. supervised runs the same params on the labeled split alone:
 * the same steps, no unlabeled metrics, and the same model bytes as a train job given FixMatch's
 * defaults (the weak policy, SGD with Nesterov and the decay's exclusions, the fixmatch schedule,
 * the EMA). Bad params are refused with the pointer named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "colour_dataset.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define EPOCHS 6
#define BATCH  6 /* the labeled split's six images: one step an epoch */
#define MU     2
/* A whole job's wait: a few seconds alone, minutes on a loaded machine or under the sanitizers. */
#define LONG_WAIT_S 300.0

static struct server *start(void **state)
{
    return harness_start_with_models(state, "\"job_threads\": 2");
}

/* The colour dataset with splits "labeled" (2 per class of "train") and "labeled-rest". */
static void make_dataset(struct server *srv, char ds[64])
{
    colour_dataset_make(srv, CLASSES, 16, ds);
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/datasets/%s/splits", ds);
    job_send(srv, "POST", path,
             "{\"name\": \"labeled\", \"from\": \"train\", \"per_class\": 2, \"seed\": 3}", NULL,
             &r);
    assert_status(&r, 201);
    http_response_free(&r);
}

/* The tests' settings of mu and tau. */
#define TUNING ", \"mu\": 2, \"tau\": 0.8, \"ema\": 0.5"

/* The jobs' params, with extra's members (starting with a comma). */
static void params_for(char *out, size_t size, const char *ds, const char *output,
                       const char *extra)
{
    snprintf(out, size,
             "{\"dataset\": \"%s\", \"split\": \"labeled\", \"unlabeled_split\": \"labeled-rest\", "
             "\"val_split\": \"val\", \"model\": {\"arch\": \"small-cnn\", \"classes\": 3, "
             "\"size\": %d}, \"epochs\": %d, \"batch\": %d, \"optimizer\": {\"lr\": 0.1}, "
             "\"seed\": 1, \"output\": \"%s\"%s}",
             ds, SIDE, EPOCHS, BATCH, output, extra);
}

/* Submits a job of kind with the tests' params (TUNING) registering output: its id. */
static void submit(const struct server *srv, const char *kind, const char *ds, const char *output,
                   char id[32])
{
    char params[1024];
    params_for(params, sizeof params, ds, output, TUNING);
    job_submit(srv, kind, params, id);
}

/* The same, waited for until it succeeds: its document. */
static json_t *run_to_end(const struct server *srv, const char *kind, const char *ds,
                          const char *output, char id[32])
{
    submit(srv, kind, ds, output, id);
    return job_wait_state_for(srv, id, "succeeded", LONG_WAIT_S);
}

static double real(json_t *row, const char *name)
{
    json_t *v = json_object_get(row, name);
    if (!json_is_number(v)) fail_msg("%s: not a number", name);
    return json_number_value(v);
}

static void test_fixmatch_learns_and_reports(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024], id[32];
    make_dataset(srv, ds);
    json_t *doc = run_to_end(srv, "fixmatch", ds, "fm", id);
    json_t *result = json_object_get(doc, "result");
    assert_string_equal(json_str(result, "model"), "fm");
    assert_int_equal(json_int(result, "steps"), EPOCHS);

    /* The card's metrics: one row per epoch, each with the unlabeled measures. */
    size_t size;
    char *text = read_model_file("fm", "training.json", &size);
    json_t *card = json_loads(text, 0, NULL);
    json_t *metrics = json_object_get(card, "metrics");
    assert_int_equal(json_array_size(metrics), EPOCHS);
    size_t i;
    json_t *row;
    int masked_some = 0;
    json_array_foreach(metrics, i, row)
    {
        /* One step an epoch of MU x BATCH unlabeled images: the rate counts whole images. */
        double rate = real(row, "mask_rate"), count = rate * MU * BATCH;
        assert_true(rate >= 0 && rate <= 1);
        assert_true(fabs(count - round(count)) < 1e-9);
        masked_some |= rate > 0;
        double pseudo = real(row, "pseudo_label_accuracy");
        assert_true(pseudo >= 0 && pseudo <= 1);
        assert_true(real(row, "unlabeled_loss") >= 0);
    }
    assert_true(masked_some);
    /* By the end every val image is right, and so are the weak views' pseudo-labels. */
    row = json_array_get(metrics, EPOCHS - 1);
    assert_true(real(row, "val_accuracy") == 1.0);
    assert_true(real(row, "pseudo_label_accuracy") == 1.0);
    assert_true(real(row, "mask_rate") > 0);
    json_decref(card);
    free(text);

    /* metrics.csv has the unlabeled measures as columns. */
    struct http_response r;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/metrics.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_non_null(strstr(r.body, ",mask_rate,pseudo_label_accuracy,"));
    http_response_free(&r);
    job_expect_only_artifacts(srv, id);
    json_decref(doc);

    /* supervised on the same params: the labeled split alone, the same steps. */
    doc = run_to_end(srv, "supervised", ds, "sup", id);
    result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "steps"), EPOCHS);
    json_t *final = json_object_get(result, "final");
    assert_null(json_object_get(final, "mask_rate"));
    assert_true(json_is_number(json_object_get(final, "val_accuracy")));
    json_decref(doc);

    /* ... which is the train kind's computation with FixMatch's defaults written out: the same
     * model bytes. */
    snprintf(params, sizeof params,
             "{\"dataset\": \"%s\", \"split\": \"labeled\", \"val_split\": \"val\", "
             "\"model\": {\"arch\": \"small-cnn\", \"classes\": 3, \"size\": %d}, "
             "\"epochs\": %d, \"batch\": %d, \"policy\": \"fixmatch-weak\", \"ema\": 0.5, "
             "\"optimizer\": {\"name\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.9, "
             "\"nesterov\": true, \"weight_decay\": 5e-4, \"exclude_no_decay\": true}, "
             "\"schedule\": {\"name\": \"fixmatch\"}, \"seed\": 1, \"output\": \"as-train\"}",
             ds, SIDE, EPOCHS, BATCH);
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state_for(srv, id, "succeeded", LONG_WAIT_S));
    expect_same_model("sup", "as-train");
    harness_pass(state);
}

/* Killed with kill -9 past a third of the job and resumed: the same model.onnx bytes as the
 * uninterrupted run's. registered: the model is found registered by the job itself at the restart,
 * as a kill between its registration and the record of the job's success leaves it (train's
 * registration, which fixmatch and supervised share): it is taken as registered. */
static void kill9_resume(void **state, int registered)
{
    struct server *first = start(state);
    char ds[64], id[32];
    make_dataset(first, ds);
    json_decref(run_to_end(first, "fixmatch", ds, "whole", id));
    submit(first, "fixmatch", ds, "resumed", id);
    struct server *second;
    job_wait_progress(first, id, 0.34);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(first->wait_status));
    if (registered) copy_model_as_registered("whole", "resumed", id);
    json_t *doc = job_resume_for(state, first, id,
                                 registered ? "model resumed was registered by this job already"
                                            : "resuming after epoch",
                                 LONG_WAIT_S, &second);
    json_t *final = json_object_get(json_object_get(doc, "result"), "final");
    assert_int_equal(json_int(final, "epoch"), EPOCHS);
    expect_same_model("whole", "resumed");
    job_expect_only_artifacts(first, id);
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

static void test_fixmatch_kill9_resume(void **state)
{
    kill9_resume(state, 0);
}

static void test_resume_finds_model_registered(void **state)
{
    kill9_resume(state, 1);
}

static void test_bad_params(void **state)
{
    struct server *srv = start(state);
    char ds[64], p[1400];
    make_dataset(srv, ds);
    static const char *const cases[][3] = {
        {"fixmatch", "\"mu\": 0", "params.mu"},
        {"fixmatch", "\"mu\": 64", "params.mu: a step takes batch x mu = 384 unlabeled images"},
        {"fixmatch", "\"tau\": 1.5", "params.tau"},
        {"fixmatch", "\"lambda_u\": -1", "params.lambda_u"},
        {"fixmatch", "\"strong\": \"ctaugment\"", "params.strong: \\\"ctaugment\\\" is not"},
        {"fixmatch", "\"strong\": {\"op\": \"Nope\"}", "params.strong"},
        {"fixmatch", "\"label_smoothing\": 0.1", "params.label_smoothing"},
        {"supervised", "\"tau\": 2", "params.tau"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[256];
        snprintf(extra, sizeof extra, ", %s", cases[i][1]);
        params_for(p, sizeof p, ds, "bad", extra);
        job_expect_refusal(srv, cases[i][0], p, 422, cases[i][2]);
    }
    /* The unlabeled split: one of the dataset's, and required by fixmatch; the val split required
     * by both. */
    snprintf(p, sizeof p,
             "{\"dataset\": \"%s\", \"split\": \"labeled\", \"unlabeled_split\": \"nope\", "
             "\"val_split\": \"val\", \"model\": {\"arch\": \"small-cnn\", \"classes\": 3, "
             "\"size\": %d}, \"epochs\": 1, \"batch\": 6, \"output\": \"bad\"}",
             ds, SIDE);
    job_expect_refusal(srv, "fixmatch", p, 422, "params.unlabeled_split: must name a split");
    snprintf(p, sizeof p,
             "{\"dataset\": \"%s\", \"split\": \"labeled\", \"val_split\": \"val\", \"model\": "
             "{\"arch\": \"small-cnn\", \"classes\": 3, \"size\": %d}, \"epochs\": 1, "
             "\"batch\": 6, \"output\": \"bad\"}",
             ds, SIDE);
    job_expect_refusal(srv, "fixmatch", p, 422, "params.unlabeled_split: required");
    snprintf(p, sizeof p,
             "{\"dataset\": \"%s\", \"split\": \"labeled\", \"model\": {\"arch\": \"small-cnn\", "
             "\"classes\": 3, \"size\": %d}, \"epochs\": 1, \"batch\": 6, \"output\": \"bad\"}",
             ds, SIDE);
    job_expect_refusal(srv, "supervised", p, 422, "params.val_split: required");
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_fixmatch_learns_and_reports),
        HARNESS_MODELS_TEST(test_fixmatch_kill9_resume),
        HARNESS_MODELS_TEST(test_resume_finds_model_registered),
        HARNESS_MODELS_TEST(test_bad_params),
    };
    return harness_main(argc, argv, "fixmatch_job", tests, sizeof tests / sizeof tests[0]);
}
