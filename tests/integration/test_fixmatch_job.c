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
 * the EMA). "strong": "ctaugment": the result's learnt state moved from 1 exactly in the bins the
 * probes reached (by the counts it reports), within the bounds the update rule allows, with the
 * reference's probabilities; a kill -9 and resume ends with the same rates, counts and model
 * bytes; "from" a /v1/ctaugment state starts from its settings and rates and leaves it as it was,
 * "save" stores the learnt state under the job's id. Bad params are refused with the pointer
 * named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* The dataset's "labeled" split: 2 images of each class of train, the rest in "labeled-rest". */
static void make_labeled_split(const struct server *srv, const char *ds)
{
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/datasets/%s/splits", ds);
    job_send(srv, "POST", path,
             "{\"name\": \"labeled\", \"from\": \"train\", \"per_class\": 2, \"seed\": 3}", NULL,
             &r);
    assert_status(&r, 201);
    http_response_free(&r);
}

/* The colour dataset with splits "labeled" (2 per class of "train") and "labeled-rest". */
static void make_dataset(struct server *srv, char ds[64])
{
    colour_dataset_make(srv, CLASSES, 16, ds);
    make_labeled_split(srv, ds);
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

/* Job id's metrics.csv holds text (its header's columns). */
static void expect_csv_has(const struct server *srv, const char *id, const char *text)
{
    struct http_response r;
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/metrics.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_non_null(strstr(r.body, text));
    http_response_free(&r);
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
    expect_csv_has(srv, id, ",mask_rate,pseudo_label_accuracy,");
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

/* Job id on first killed with kill -9 past a third of it, and resumed by a second server
 * (*second): the job's document once it succeeded. With registered_as, the model "whole" is put in
 * the repository under that name as registered by this job before the restart, as a kill between
 * its registration and the record of its success leaves it. */
static json_t *kill9_and_resume(void **state, struct server *first, const char *id,
                                const char *registered_as, struct server **second)
{
    job_wait_progress(first, id, 0.34);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(first->wait_status));
    if (registered_as) copy_model_as_registered("whole", registered_as, id);
    return job_resume_for(state, first, id,
                          registered_as ? "was registered by this job already"
                                        : "resuming after epoch",
                          LONG_WAIT_S, second);
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
    json_t *doc = kill9_and_resume(state, first, id, registered ? "resumed" : NULL, &second);
    json_t *final = json_object_get(json_object_get(doc, "result"), "final");
    assert_int_equal(json_int(final, "epoch"), EPOCHS);
    expect_same_model("whole", "resumed");
    job_expect_only_artifacts(first, id);
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* ---- "strong": "ctaugment" ------------------------------------------------------------------ */

#define CTA_TUNING TUNING ", \"strong\": \"ctaugment\""
#define CTA_DECAY  0.99

/* The reference's rate_to_p then p / p.sum() for one argument's rates (the test's own arithmetic,
 * in float32 as numpy's; the sum in order, which differs from numpy's pairwise sum by an ulp at
 * most). */
static void expected_probabilities(const double *rate, size_t n, double *q)
{
    float p[17], max = 0, sum = 0;
    for (size_t b = 0; b < n; b++) {
        p[b] = (float)rate[b] + (float)(1 - CTA_DECAY);
        if (p[b] > max) max = p[b];
    }
    for (size_t b = 0; b < n; b++) {
        p[b] /= max;
        if (p[b] < 0.8f) p[b] = 0;
        sum += p[b];
    }
    for (size_t b = 0; b < n; b++)
        q[b] = p[b] / sum;
}

/* The learnt state of a result, from the rates of start (a state's "rates"; NULL: every rate 1):
 * every bin no probe reached as it started; a bin that started at s and was probed n times is
 * 0.99^n s + 0.01 x (a sum of proximities in [0, 1] weighted by powers of 0.99), so in
 * [0.99^n s, 0.99^n s + 1 - 0.99^n]; from all 1, every probed bin below 1 (a probe moves its bins
 * by 0.01 (1 - proximity), which float32 keeps unless the model is sure of the probe's label to
 * 1e-6, which six steps of this one never are); the probabilities are the rates' by the
 * reference's formula; the counts add up to at most two arguments of the depth ops of each of
 * the run's EPOCHS x BATCH probes. */
static void expect_learnt_state(json_t *cta, int depth, json_t *start)
{
    json_t *state = json_object_get(cta, "state"), *rates = json_object_get(state, "rates");
    json_t *updates = json_object_get(cta, "updates");
    json_t *probabilities = json_object_get(cta, "probabilities");
    assert_int_equal(json_int(state, "depth"), depth);
    assert_true(json_number_value(json_object_get(state, "decay")) == CTA_DECAY);
    assert_int_equal(json_object_size(rates), 19);
    const char *op;
    json_t *args;
    long total = 0, moved = 0, probed = 0;
    json_object_foreach(rates, op, args)
    {
        json_t *counts = json_object_get(updates, op), *probs = json_object_get(probabilities, op);
        assert_int_equal(json_array_size(counts), json_array_size(args));
        for (size_t a = 0; a < json_array_size(args); a++) {
            json_t *bins = json_array_get(args, a);
            size_t n = json_array_size(bins);
            double rate[17], q[17];
            assert_true(n >= 6 && n <= 17);
            for (size_t b = 0; b < n; b++) {
                json_t *from = json_array_get(json_array_get(json_object_get(start, op), a), b);
                double s = start ? json_number_value(from) : 1.0;
                rate[b] = json_number_value(json_array_get(bins, b));
                json_int_t count = json_integer_value(json_array_get(json_array_get(counts, a), b));
                double kept = pow(CTA_DECAY, (double)count);
                total += count;
                moved += rate[b] != s;
                probed += count > 0;
                if (count == 0)
                    assert_true(rate[b] == s);
                else
                    assert_true(rate[b] >= kept * s - 1e-6 &&
                                rate[b] <= kept * s + 1 - kept + 1e-6);
            }
            expected_probabilities(rate, n, q);
            for (size_t b = 0; b < n; b++)
                assert_true(fabs(json_number_value(json_array_get(json_array_get(probs, a), b)) -
                                 q[b]) < 1e-6);
        }
    }
    assert_true(probed > 0);
    if (!start) assert_int_equal(moved, probed);
    assert_true(total > 0 && total <= EPOCHS * BATCH * depth * 2);
}

/* A fixmatch job with the tests' params and extra's members (CTA_TUNING and more), registering
 * output, waited for until it succeeds: its document. */
static json_t *run_fixmatch_with(const struct server *srv, const char *ds, const char *output,
                                 const char *extra, char id[32])
{
    char params[1024];
    params_for(params, sizeof params, ds, output, extra);
    job_submit(srv, "fixmatch", params, id);
    return job_wait_state_for(srv, id, "succeeded", LONG_WAIT_S);
}

/* GET path's JSON body, which must come with 200. */
static json_t *get_json(const struct server *srv, const char *path)
{
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    return doc;
}

static void test_fixmatch_ctaugment(void **state)
{
    struct server *srv = start(state);
    char ds[64], id[32];
    make_dataset(srv, ds);
    json_t *doc = run_fixmatch_with(srv, ds, "cta", CTA_TUNING, id);
    json_t *result = json_object_get(doc, "result");
    assert_string_equal(json_str(result, "model"), "cta");
    expect_learnt_state(json_object_get(result, "ctaugment"), 2, NULL);
    assert_null(json_object_get(json_object_get(result, "ctaugment"), "id"));
    /* Each epoch's probes (one step of BATCH) report their mean proximity. */
    json_t *final = json_object_get(result, "final");
    double proximity = real(final, "probe_proximity");
    assert_true(proximity >= 0 && proximity <= 1);
    assert_true(real(final, "mask_rate") >= 0);
    expect_csv_has(srv, id, ",unlabeled_loss,probe_proximity\n");
    json_decref(doc);
    harness_pass(state);
}

/* The colour dataset's classes and sizes with image i of a class in 1, 3 or 4 channels by i mod 3
 * (its colour's ITU-R 601-2 luma, the colour, the colour with alpha 128), and the labeled split. */
static void make_mixed_dataset(struct server *srv, char ds[64])
{
    static const char *const splits[2] = {"train", "val"};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/mixed", srv->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (int s = 0; s < 2; s++)
        for (int c = -1; c < CLASSES; c++) {
            snprintf(path, sizeof path, "%s/mixed/%s%s%s", srv->dir, splits[s], c < 0 ? "" : "/",
                     c < 0 ? "" : class_names[c]);
            assert_int_equal(mkdir(path, 0755), 0);
            for (int i = 0; c >= 0 && i < (s ? 4 : 16); i++) {
                unsigned char rgb[3];
                colour(c, s ? 1000 + i : i, rgb);
                int channels = (int[]){1, 3, 4}[i % 3];
                struct eng_error err = {0};
                struct img *im = img_new(SIDE, SIDE, channels, &err);
                assert_non_null(im);
                unsigned char px[4] = {rgb[0], rgb[1], rgb[2], 128};
                if (channels == 1)
                    px[0] = (unsigned char)((rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000);
                for (int y = 0; y < SIDE; y++)
                    for (int x = 0; x < SIDE; x++)
                        memcpy(img_row(im, y) + channels * x, px, (size_t)channels);
                void *png;
                size_t size;
                assert_int_equal(img_encode(im, IMG_PNG, 0, NULL, &png, &size, &err), 0);
                img_free(im);
                char file[PATH_MAX + 16];
                snprintf(file, sizeof file, "%s/%03d.png", path, i);
                write_file(file, png, size);
                free(png);
            }
        }
    snprintf(path, sizeof path, "%s/mixed", srv->dir);
    job_import_dataset(srv, path, ds);
    make_labeled_split(srv, ds);
}

/* CTAugment's ops work on RGB, as the reference's arrays: a greyscale or RGBA image of the dataset
 * is made RGB first (PIL's convert("RGB"), what the model's transform makes of it anyway), so a
 * dataset of all three trains and its probes teach the state. */
static void test_ctaugment_grey_and_rgba(void **state)
{
    struct server *srv = start(state);
    char ds[64], id[32];
    make_mixed_dataset(srv, ds);
    json_t *doc = run_fixmatch_with(srv, ds, "cta-mixed", CTA_TUNING, id);
    expect_learnt_state(json_object_get(json_object_get(doc, "result"), "ctaugment"), 2, NULL);
    json_decref(doc);
    harness_pass(state);
}

/* Killed with kill -9 past a third of the job and resumed: the same learnt rates and counts, and
 * the same model bytes, as the uninterrupted run's: the state is in the checkpoint and the draws
 * are a function of the seed, the step and the state. */
static void test_fixmatch_ctaugment_kill9_resume(void **state)
{
    struct server *first = start(state);
    char ds[64], params[1024], id[32];
    make_dataset(first, ds);
    json_t *whole = run_fixmatch_with(first, ds, "cta-whole", CTA_TUNING, id);
    params_for(params, sizeof params, ds, "cta-resumed", CTA_TUNING);
    job_submit(first, "fixmatch", params, id);
    struct server *second;
    json_t *doc = kill9_and_resume(state, first, id, NULL, &second);
    json_t *cta = json_object_get(json_object_get(doc, "result"), "ctaugment");
    expect_learnt_state(cta, 2, NULL);
    assert_true(json_equal(cta, json_object_get(json_object_get(whole, "result"), "ctaugment")));
    expect_same_model("cta-whole", "cta-resumed");
    json_decref(doc);
    json_decref(whole);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* "from" a /v1/ctaugment state (its settings: depth 3; two bins taught to 0.99 by a proximity
 * of 0) and "save": the job learns from that state's rates, leaves it as it was, and saves what
 * it learnt as the state whose id is the job's. */
static void test_fixmatch_ctaugment_from_and_save(void **state)
{
    struct server *srv = start(state);
    char ds[64], extra[256], id[32], path[128];
    make_dataset(srv, ds);
    struct http_response r;
    job_send(srv, "POST", "/v1/ctaugment", "{\"depth\": 3}", NULL, &r);
    assert_status(&r, 201);
    json_t *made = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    snprintf(path, sizeof path, "/v1/ctaugment/%s/feedback", json_str(made, "id"));
    job_send(srv, "POST", path,
             "{\"feedback\": [{\"policy\": [[\"rotate\", [0.5]], [\"solarize\", [0.1]], "
             "[\"identity\", []]], \"proximity\": 0}]}",
             NULL, &r);
    assert_status(&r, 200);
    json_decref(made);
    made = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    json_t *taught = json_object_get(json_object_get(made, "state"), "rates");
    assert_true(json_number_value(json_array_get(
                    json_array_get(json_object_get(taught, "rotate"), 0), 8)) == (double)0.99f);
    snprintf(extra, sizeof extra, CTA_TUNING ", \"ctaugment\": {\"from\": \"%s\", \"save\": true}",
             json_str(made, "id"));
    json_t *doc = run_fixmatch_with(srv, ds, "cta-from", extra, id);
    json_t *cta = json_object_get(json_object_get(doc, "result"), "ctaugment");
    expect_learnt_state(cta, 3, taught);
    assert_string_equal(json_str(cta, "id"), id);
    /* The saved state is the result's. */
    snprintf(path, sizeof path, "/v1/ctaugment/%s", id);
    json_t *saved = get_json(srv, path);
    assert_true(json_equal(json_object_get(saved, "state"), json_object_get(cta, "state")));
    assert_true(
        json_equal(json_object_get(saved, "probabilities"), json_object_get(cta, "probabilities")));
    /* The state it started from is untouched. */
    snprintf(path, sizeof path, "/v1/ctaugment/%s", json_str(made, "id"));
    json_t *after = get_json(srv, path);
    assert_true(json_equal(json_object_get(after, "state"), json_object_get(made, "state")));
    assert_int_equal(json_int(after, "revision"), 1);
    json_decref(after);
    json_decref(saved);
    json_decref(doc);
    json_decref(made);
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
        {"fixmatch", "\"ctaugment\": {\"depth\": 2}", "params.ctaugment: CTAugment's settings"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": 2", "params.ctaugment: must be"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"dept\": 2}",
         "params.ctaugment.dept"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"depth\": 9}",
         "params.ctaugment.depth: must be a whole number in [1, 8]"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"decay\": 1}",
         "params.ctaugment.decay: 1 is not in (0, 1)"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"threshold\": \"high\"}",
         "params.ctaugment.threshold: must be a number in [0, 1]"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"from\": \"x\", \"depth\": 2}",
         "params.ctaugment.from: the state's own depth"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"from\": 7}",
         "params.ctaugment.from: must be the id"},
        {"fixmatch", "\"strong\": \"ctaugment\", \"ctaugment\": {\"save\": 1}",
         "params.ctaugment.save: must be true or false"},
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
    /* The model's BatchNorm momentum: in (0, 1), ONNX's sense. */
    snprintf(p, sizeof p,
             "{\"dataset\": \"%s\", \"split\": \"labeled\", \"unlabeled_split\": \"labeled\", "
             "\"val_split\": \"val\", \"model\": {\"arch\": \"small-cnn\", \"classes\": 3, "
             "\"size\": %d, \"bn_momentum\": 1}, \"epochs\": 1, \"batch\": 6, \"output\": \"bad\"}",
             ds, SIDE);
    job_expect_refusal(srv, "fixmatch", p, 422, "'bn_momentum' must be a number in (0, 1)");
    /* A state to start from that does not exist: a 404 naming it. */
    char extra[256];
    snprintf(extra, sizeof extra, CTA_TUNING ", \"ctaugment\": {\"from\": \"%s\"}",
             "000000000000000000000000");
    params_for(p, sizeof p, ds, "bad", extra);
    job_expect_refusal(srv, "fixmatch", p, 404, "params.ctaugment.from: no CTAugment state");
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_fixmatch_learns_and_reports),
        HARNESS_MODELS_TEST(test_fixmatch_kill9_resume),
        HARNESS_MODELS_TEST(test_fixmatch_ctaugment),
        HARNESS_MODELS_TEST(test_ctaugment_grey_and_rgba),
        HARNESS_MODELS_TEST(test_fixmatch_ctaugment_kill9_resume),
        HARNESS_MODELS_TEST(test_fixmatch_ctaugment_from_and_save),
        HARNESS_MODELS_TEST(test_resume_finds_model_registered),
        HARNESS_MODELS_TEST(test_bad_params),
    };
    return harness_main(argc, argv, "fixmatch_job", tests, sizeof tests / sizeof tests[0]);
}
