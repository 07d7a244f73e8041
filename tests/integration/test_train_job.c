/* The job kind "train" against the real binary, on a dataset this test makes: solid-colour images
 * in class folders blue, green and red, each colour varied a little, in splits "train" and "val".
 * The classes are separable by the mean of one channel, so a small CNN learns them in a few
 * epochs: after training, every validation image is classified correctly, which a look at the
 * images confirms by hand.
 *
 * Then: the model is registered and /v1/predict answers with it, and its probabilities are the
 * engine executor's on the exported model.onnx, computed here on the preprocessing the model's
 * config.json states (CIFAR-10's mean and std); a job killed with kill -9 after a checkpoint and
 * resumed registers a model.onnx byte-identical to an uninterrupted run's (same threads); a
 * cancel stops a running job; bad params are refused with the field named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
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
#include "nn/nn.h"

static struct server *start(void **state)
{
    return harness_start_with_models(state, "\"job_threads\": 2");
}

/* The params of the test's job: small-cnn at SIDE px, SGD with Nesterov; budget is the members
 * "epochs" or "steps", and "schedule". */
static void train_params_for(char *out, size_t size, const char *ds, const char *budget,
                             const char *output, const char *extra)
{
    snprintf(out, size,
             "{\"dataset\": \"%s\", \"split\": \"train\", \"val_split\": \"val\", \"model\": "
             "{\"arch\": \"small-cnn\", \"classes\": 3, \"size\": %d}, %s, "
             "\"batch\": 12, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.9, "
             "\"nesterov\": true, \"weight_decay\": 5e-4}, \"seed\": 1, \"output\": \"%s\"%s}",
             ds, SIDE, budget, output, extra);
}

/* The same, for that many epochs on a cosine schedule. */
static void train_params(char *out, size_t size, const char *ds, int epochs, const char *output,
                         const char *extra)
{
    char budget[64];
    snprintf(budget, sizeof budget, "\"epochs\": %d, \"schedule\": {\"name\": \"cosine\"}", epochs);
    train_params_for(out, size, ds, budget, output, extra);
}

/* The engine executor's probabilities on model.onnx for a solid image, preprocessed as the
 * model's config.json says: (value / 255 - mean) / std per channel. */
static void executor_probs(const char *model, const unsigned char rgb[3], double probs[CLASSES])
{
    size_t size;
    char *onnx = read_model_file(model, "model.onnx", &size);
    size_t config_size;
    char *config = read_model_file(model, "config.json", &config_size);
    json_t *doc = json_loads(config, 0, NULL), *pre = json_object_get(doc, "preprocess");
    assert_non_null(pre);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read(onnx, size, &err);
    if (!g) fail_msg("model.onnx: %s", err.message);
    float input[3 * SIDE * SIDE];
    for (int k = 0; k < 3; k++) {
        double mean = json_real_value(json_array_get(json_object_get(pre, "mean"), k));
        double std = json_real_value(json_array_get(json_object_get(pre, "std"), k));
        for (int i = 0; i < SIDE * SIDE; i++)
            input[k * SIDE * SIDE + i] = (float)((rgb[k] / 255.0 - mean) / std);
    }
    struct nn_tensor_info shape = {.name = nn_graph_input(g, 0)->name,
                                   .dtype = NN_FLOAT,
                                   .rank = 4,
                                   .dims = {1, 3, SIDE, SIDE}};
    struct nn_plan *plan = nn_plan_compile(g, &shape, 1, &err);
    if (!plan) fail_msg("compile: %s", err.message);
    const float *inputs[] = {input};
    float *outputs[1];
    struct nn_tensor_info info[1];
    assert_int_equal(nn_plan_run(plan, inputs, outputs, info, &err), 0);
    double max = outputs[0][0], sum = 0;
    for (int c = 1; c < CLASSES; c++)
        if (outputs[0][c] > max) max = outputs[0][c];
    for (int c = 0; c < CLASSES; c++)
        sum += probs[c] = exp(outputs[0][c] - max);
    for (int c = 0; c < CLASSES; c++)
        probs[c] /= sum;
    free(outputs[0]);
    nn_plan_free(plan);
    nn_graph_free(g);
    json_decref(doc);
    free(config);
    free(onnx);
}

/* The job's events whose "type" is metric and name is name, in order: their values. */
static size_t metric_values(const struct server *srv, const char *id, const char *name,
                            double *values, size_t max)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    size_t n = 0;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *ev = json_loads(line + (strncmp(line, "data:", 5) == 0 ? 5 : 0), 0, NULL);
        json_t *data = json_object_get(ev, "data");
        if (!data) data = ev;
        const char *evname = json_string_value(json_object_get(data, "name"));
        if (evname && strcmp(evname, name) == 0 && n < max)
            values[n++] = json_number_value(json_object_get(data, "value"));
        json_decref(ev);
    }
    http_response_free(&r);
    return n;
}

/* ---- Learning, registration, prediction ------------------------------------------------------ */

#define EPOCHS 6

static void test_learns_and_registers(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024], id[32];
    colour_dataset_make(srv, CLASSES, 16, ds);
    train_params(params, sizeof params, ds, EPOCHS, "colours", "");
    job_submit(srv, "train", params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_object_get(doc, "result");
    assert_string_equal(json_str(result, "model"), "colours");
    /* Every validation image right: the classes differ by a channel of 200 levels. */
    json_t *final = json_object_get(result, "final");
    assert_true(json_real_value(json_object_get(final, "val_accuracy")) == 1.0);
    assert_true(json_real_value(json_object_get(final, "train_accuracy")) >= 0.9);

    /* The checkpoint files went with the job's success. */
    job_expect_only_artifacts(srv, id);

    /* One event per epoch for each metric; the loss fell. */
    double loss[2 * EPOCHS], accuracy[2 * EPOCHS];
    assert_int_equal(metric_values(srv, id, "train_loss", loss, 2 * EPOCHS), EPOCHS);
    assert_int_equal(metric_values(srv, id, "val_accuracy", accuracy, 2 * EPOCHS), EPOCHS);
    assert_true(loss[EPOCHS - 1] < loss[0] / 2);
    assert_int_equal(metric_values(srv, id, "images_per_second", loss, 2 * EPOCHS), EPOCHS);

    /* The artifacts: metrics.csv has a header and a row per epoch; loss.png is a chart. */
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/metrics.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    size_t lines = 0;
    for (size_t i = 0; i < r.body_size; i++)
        lines += r.body[i] == '\n';
    assert_int_equal(lines, 1 + EPOCHS);
    assert_true(strncmp(r.body, "epoch,train_loss,", 17) == 0);
    http_response_free(&r);
    expect_chart_artifact(srv, id, "loss.png");

    /* training.json: the card. */
    size_t card_size;
    char *card_text = read_model_file("colours", "training.json", &card_size);
    json_t *card = json_loads(card_text, 0, NULL);
    assert_string_equal(json_str(card, "dataset"), ds);
    assert_int_equal(json_array_size(json_object_get(card, "metrics")), EPOCHS);
    assert_int_equal(json_int(card, "seed"), 1);
    json_decref(card);
    free(card_text);

    /* /v1/predict serves it at once, with the executor's probabilities on model.onnx. */
    for (int c = 0; c < CLASSES; c++) {
        unsigned char rgb[3];
        size_t size;
        colour(c, 2000 + c, rgb);
        void *png = solid_png(rgb, &size);
        http_post(srv, "/v1/predict?model=colours&top_k=3", "image/png", png, size, &r);
        free(png);
        assert_status(&r, 200);
        json_t *answer = http_json(&r);
        json_t *predictions = json_object_get(answer, "predictions");
        if (!predictions)
            predictions = json_object_get(json_array_get(json_object_get(answer, "results"), 0),
                                          "predictions");
        assert_int_equal(json_array_size(predictions), CLASSES);
        assert_string_equal(json_str(json_array_get(predictions, 0), "label"), class_names[c]);
        double expected[CLASSES];
        executor_probs("colours", rgb, expected);
        for (size_t k = 0; k < CLASSES; k++) {
            json_t *p = json_array_get(predictions, k);
            int index = (int)json_int(p, "index");
            double got = json_real_value(json_object_get(p, "prob"));
            if (fabs(got - expected[index]) > 1e-5)
                fail_msg("class %d: %g against the executor's %g", index, got, expected[index]);
        }
        json_decref(answer);
        http_response_free(&r);
    }

    /* The output name is taken now: a second job is refused before it is queued. */
    job_expect_refusal(srv, "train", params, 409, "params.output: a model named colours exists");
    json_decref(doc);
    harness_pass(state);
}

/* ---- kill -9, cancel ------------------------------------------------------------------------- */

#define LONG_EPOCHS 12 /* kill9_resume's budgets */

/* The same job run whole, then killed with kill -9 and resumed by a second server: the two
 * model.onnx files are the same bytes, and the checkpoint files went with the success. With EMA
 * and label smoothing and a policy, so their state is in the checkpoint too. budget: params'
 * "epochs" or "steps" (LONG_EPOCHS epochs begun) and "schedule". reached NULL: killed past a
 * third of the job (several epochs' checkpoints), wherever that lands; else between the file and
 * the record of the checkpoint after the first record it accepts (kill_between.h), the job's
 * folder then changed by edit (NULL: none), and the log says the job resumed from that record. */
static void kill9_resume(void **state, const char *budget, int (*reached)(const json_t *record),
                         void (*edit)(const struct server *srv, const char *id,
                                      const json_t *record))
{
    struct server *first = start(state);
    char ds[64], params[1024], id[32];
    const char *extra = ", \"ema\": 0.9, \"label_smoothing\": 0.1, \"clip\": 5, \"policy\": "
                        "{\"op\": \"FlipLR\"}";
    colour_dataset_make(first, CLASSES, 8, ds);
    train_params_for(params, sizeof params, ds, budget, "whole", extra);
    job_submit(first, "train", params, id);
    json_decref(job_wait_state(first, id, "succeeded"));

    train_params_for(params, sizeof params, ds, budget, "resumed", extra);
    job_submit(first, "train", params, id);
    struct server *second;
    json_t *doc;
    if (reached) {
        char needle[64];
        json_t *kept = kill_between_file_and_record(first, id, reached);
        if (edit) edit(first, id, kept);
        snprintf(needle, sizeof needle, "resuming after epoch %lld of",
                 (long long)json_integer_value(json_object_get(kept, "epoch")));
        json_decref(kept);
        doc = job_resume(state, first, id, needle, &second);
    } else {
        doc = job_kill_and_resume(state, first, id, 0.34, "resuming after epoch", &second);
    }
    /* Every epoch's metrics once, those before the kill from the checkpoint. */
    assert_int_equal(json_int(json_object_get(json_object_get(doc, "result"), "final"), "epoch"),
                     LONG_EPOCHS);

    expect_same_model("whole", "resumed");
    job_expect_only_artifacts(first, id); /* first->data_dir: the second server's too */
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

static void test_kill9_resume_same_weights(void **state)
{
    kill9_resume(state, "\"epochs\": 12, \"schedule\": {\"name\": \"cosine\"}", NULL, NULL);
}

/* With steps: 8 images per class in batches of 12 are 2 steps per epoch, so 23 steps end after
 * the first batch of epoch 12, and the warm-up is in steps. */
static void test_kill9_resume_steps(void **state)
{
    kill9_resume(state, "\"steps\": 23, \"schedule\": {\"name\": \"cosine\", \"warmup_steps\": 3}",
                 NULL, NULL);
}

/* Past the second epoch: both files of the pair have been written once. */
static int after_epoch_2(const json_t *record)
{
    return json_integer_value(json_object_get(record, "epoch")) >= 2;
}

/* Killed between a checkpoint's file and its record: the resumed job goes on from the record, not
 * from the newer file (found by integration.affinity_diversity_job, intermittently: the file that
 * was rewritten in place ran an epoch ahead of its record, and the resumed run trained that epoch
 * twice). */
static void test_kill9_between_file_and_record(void **state)
{
    kill9_resume(state, "\"epochs\": 12, \"schedule\": {\"name\": \"cosine\"}", after_epoch_2,
                 NULL);
}

/* Job id's folder on a stopped server, killed between a checkpoint's file and its record, made
 * what a kill left under an older version: the record naming its one file, train.ckpt, rewritten
 * in place every epoch. That version's record had the same members and its file the same bytes.
 * train.ckpt holds the record's checkpoint, or with ahead the one saved after it (the kill landed
 * between the two writes); the other file is gone. */
/* The other file of the pair of the checkpoint file a record names, into other:
 * state-odd-a<attempt>.ckpt for state-even-a<attempt>.ckpt and the reverse. */
static void other_of_pair(const json_t *record, char other[48])
{
    const char *named = json_string_value(json_object_get(record, "file"));
    int attempt = 0, odd = strncmp(named, "state-odd-a", 11) == 0;
    assert_int_equal(sscanf(named + (odd ? 11 : 12), "%d", &attempt), 1);
    snprintf(other, 48, "state-%s-a%d.ckpt", odd ? "even" : "odd", attempt);
}

static void as_older_version(const struct server *srv, const char *id, const json_t *record,
                             int ahead)
{
    const char *named = json_string_value(json_object_get(record, "file"));
    char other[48];
    other_of_pair(record, other);
    const char *files[2] = {named, other};
    char kept[PATH_MAX + 64], gone[PATH_MAX + 64], legacy[PATH_MAX + 64];
    snprintf(kept, sizeof kept, "%s/jobs/%s/%s", srv->data_dir, id, files[ahead]);
    snprintf(gone, sizeof gone, "%s/jobs/%s/%s", srv->data_dir, id, files[!ahead]);
    snprintf(legacy, sizeof legacy, "%s/jobs/%s/train.ckpt", srv->data_dir, id);
    assert_int_equal(rename(kept, legacy), 0);
    assert_int_equal(remove(gone), 0);
    kill_between_set_file(srv, id, "train.ckpt");
}

static void as_older_version_at_record(const struct server *srv, const char *id,
                                       const json_t *record)
{
    as_older_version(srv, id, record, 0);
}

/* A job an older version checkpointed resumes after an upgrade from the file its record names,
 * to the bytes of an uninterrupted run, and its file goes with the job's success. */
static void test_resume_older_version(void **state)
{
    kill9_resume(state, "\"epochs\": 12, \"schedule\": {\"name\": \"cosine\"}", after_epoch_2,
                 as_older_version_at_record);
}

/* Job id's folder on a stopped server as a kill during the write of the checkpoint after record
 * leaves it: the next file's temporary copy (job_train_state_save writes <file>.tmp, then renames
 * it), half written. */
static void with_partial_checkpoint(const struct server *srv, const char *id, const json_t *record)
{
    char other[48], path[PATH_MAX + 64];
    other_of_pair(record, other);
    snprintf(path, sizeof path, "%s/jobs/%s/%s.tmp", srv->data_dir, id, other);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs("half a checkpoint", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The temporary file of a checkpoint a kill interrupted goes with the job's success, as its
 * checkpoints do (found by integration.self_training_job, whose kill once landed in a write: the
 * job's folder kept state-even-a1.ckpt.tmp). */
static void test_kill9_during_checkpoint_write(void **state)
{
    kill9_resume(state, "\"epochs\": 12, \"schedule\": {\"name\": \"cosine\"}", after_epoch_2,
                 with_partial_checkpoint);
}

/* The state the bug left: an older version's train.ckpt an epoch ahead of its record. The resumed
 * job fails, saying which step the file holds and which its record names, rather than train that
 * epoch twice. */
static void test_resume_refuses_file_ahead(void **state)
{
    struct server *first = start(state);
    char ds[64], params[1024], id[32], needle[128];
    colour_dataset_make(first, CLASSES, 8, ds);
    train_params(params, sizeof params, ds, LONG_EPOCHS, "ahead", "");
    job_submit(first, "train", params, id);
    json_t *kept = kill_between_file_and_record(first, id, after_epoch_2);
    as_older_version(first, id, kept, 1);
    json_t *doc = job_wait_state(job_restart(state, first), id, "failed");
    /* 2 steps per epoch: the file holds the step after the record's epoch. */
    json_int_t step = json_integer_value(json_object_get(kept, "step"));
    snprintf(needle, sizeof needle,
             "train.ckpt holds step %lld, not the step %lld its record names", (long long)step + 2,
             (long long)step);
    assert_contains(json_str(doc, "error"), needle);
    json_decref(doc);
    json_decref(kept);
    harness_pass(state);
}

/* A train job "resumed" ("whole", the same job, run whole first) killed with kill -9 in its
 * training, its output then found registered, a copy of whole's registered by job `by` (the job
 * itself when NULL): what a kill between the registration and the record of the job's success
 * leaves when by is the job. The first server, stopped; the job's id into id. */
static struct server *killed_output_registered(void **state, const char *by, char id[32])
{
    struct server *first = start(state);
    char ds[64], params[1024];
    colour_dataset_make(first, CLASSES, 8, ds);
    train_params(params, sizeof params, ds, LONG_EPOCHS, "whole", "");
    job_submit(first, "train", params, id);
    json_decref(job_wait_state(first, id, "succeeded"));
    train_params(params, sizeof params, ds, LONG_EPOCHS, "resumed", "");
    job_submit(first, "train", params, id);
    job_wait_progress(first, id, 0.34);
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    copy_model_as_registered("whole", "resumed", by ? by : id);
    return first;
}

/* Its own model: the resumed job takes it as registered and succeeds, the model the same. */
static void test_resume_finds_model_registered(void **state)
{
    char id[32];
    struct server *first = killed_output_registered(state, NULL, id), *second;
    json_t *doc =
        job_resume(state, first, id, "model resumed was registered by this job already", &second);
    json_t *result = json_object_get(doc, "result");
    assert_string_equal(json_str(result, "model"), "resumed");
    assert_int_equal(json_int(json_object_get(result, "final"), "epoch"), LONG_EPOCHS);
    expect_same_model("whole", "resumed");
    job_expect_only_artifacts(first, id);
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* Another job's model of that name: the resumed job fails on it, as a new job would be refused,
 * and leaves it as it was. */
static void test_resume_finds_model_of_another_job(void **state)
{
    char id[32];
    struct server *first = killed_output_registered(state, "another-job", id);
    json_t *doc = job_wait_state(job_restart(state, first), id, "failed");
    assert_contains(json_str(doc, "error"), "params.output: a model named resumed exists");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/resumed/training.json", harness_models_dir());
    json_t *card = json_load_file(path, 0, NULL);
    assert_non_null(card);
    assert_string_equal(json_str(card, "job"), "another-job");
    json_decref(card);
    json_decref(doc);
    harness_pass(state);
}

/* ---- steps ----------------------------------------------------------------------------------- */

/* A train job's document once it succeeded; *id its id. */
static json_t *train_job(struct server *srv, const char *ds, const char *budget, const char *output,
                         char id[32])
{
    char params[1024];
    train_params_for(params, sizeof params, ds, budget, output, "");
    job_submit(srv, "train", params, id);
    return job_wait_state(srv, id, "succeeded");
}

/* training.json's metrics of model. */
static json_t *card_metrics(const char *model)
{
    size_t size;
    char *text = read_model_file(model, "training.json", &size);
    json_t *card = json_loads(text, 0, NULL);
    free(text);
    json_t *metrics = json_incref(json_object_get(card, "metrics"));
    json_decref(card);
    assert_non_null(metrics);
    return metrics;
}

static double row_real(const json_t *metrics, size_t i, const char *name)
{
    return json_real_value(json_object_get(json_array_get(metrics, i), name));
}

/* 8 images per class in batches of 12: 2 steps per epoch. (a) 6 steps are 3 epochs: with a warm-up
 * of 2 steps against 1 epoch, the same schedule and the same model bytes. (b) 5 steps: a third
 * epoch of one batch, the first of its order. On a constant schedule the rate does not depend on
 * the run's length, so its first two epochs are a 3-epoch run's bit for bit; the third has its own
 * row, events and checkpoint, trained on 12 images. */
static void test_steps(void **state)
{
    struct server *srv = start(state);
    char ds[64], id[32];
    colour_dataset_make(srv, CLASSES, 8, ds);
    json_decref(train_job(
        srv, ds, "\"epochs\": 3, \"schedule\": {\"name\": \"cosine\", \"warmup_epochs\": 1}",
        "by-epochs", id));
    json_t *doc = train_job(
        srv, ds, "\"steps\": 6, \"schedule\": {\"name\": \"cosine\", \"warmup_steps\": 2}",
        "by-steps", id);
    json_t *result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "steps"), 6);
    assert_int_equal(json_int(result, "epochs"), 3);
    json_decref(doc);
    expect_same_model("by-epochs", "by-steps");

    json_decref(
        train_job(srv, ds, "\"epochs\": 3, \"schedule\": {\"name\": \"constant\"}", "three", id));
    doc = train_job(srv, ds, "\"steps\": 5, \"schedule\": {\"name\": \"constant\"}", "five", id);
    result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "steps"), 5);
    assert_int_equal(json_int(result, "epochs"), 3);
    assert_int_equal(json_int(json_object_get(result, "final"), "steps"), 5);
    json_t *three = card_metrics("three"), *five = card_metrics("five");
    assert_int_equal(json_array_size(five), 3);
    for (size_t i = 0; i < 2; i++) {
        const char *names[] = {"train_loss", "train_accuracy", "val_loss", "val_accuracy"};
        for (size_t k = 0; k < 4; k++)
            assert_true(row_real(three, i, names[k]) == row_real(five, i, names[k]));
    }
    assert_int_equal(json_int(json_array_get(three, 2), "steps"), 6);
    double correct = row_real(five, 2, "train_accuracy") * 12;
    assert_true(correct == (double)(long)correct);
    json_decref(three);
    json_decref(five);
    double values[8];
    assert_int_equal(metric_values(srv, id, "train_loss", values, 8), 3);
    assert_int_equal(metric_values(srv, id, "val_accuracy", values, 8), 3);
    struct http_response r;
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/metrics.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    assert_true(strstr(r.body, ",lr,steps\n") != NULL);
    assert_true(r.body_size > 3 && strcmp(r.body + r.body_size - 3, ",5\n") == 0);
    http_response_free(&r);
    json_decref(doc);
    harness_pass(state);
}

static void test_cancel(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024];
    colour_dataset_make(srv, CLASSES, 8, ds);
    train_params(params, sizeof params, ds, 10000, "never", "");
    job_cancel_running(srv, "train", params);
    /* Nothing was registered. */
    http_get_expect(srv, "/v1/models/never", 404);
    harness_pass(state);
}

/* ---- Params ---------------------------------------------------------------------------------- */

static void test_bad_params(void **state)
{
    struct server *srv = start(state);
    char ds[64], p[1200];
    colour_dataset_make(srv, CLASSES, 2, ds);
#define BAD(extra, status, needle)                                                                 \
    do {                                                                                           \
        train_params(p, sizeof p, ds, 2, "out", extra);                                            \
        job_expect_refusal(srv, "train", p, status, needle);                                       \
    } while (0)
    BAD(", \"epoch\": 3", 422, "params.epoch: unknown parameter");
    BAD(", \"ema\": 1", 422, "params.ema");
    BAD(", \"label_smoothing\": -0.1", 422, "params.label_smoothing");
    BAD(", \"eval_every\": 0", 422, "params.eval_every");
    BAD(", \"policy\": {\"op\": \"Nosuch\"}", 422, "params.policy");
#undef BAD
    const char *cases[][3] = {
        {"{\"dataset\": \"nosuch\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"output\": \"o\"}",
         "404", "params.dataset: no such dataset"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 4}, \"epochs\": 1, \"output\": \"o\"}",
         "422", "params.model.classes: must be 3"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"vgg-16\", "
         "\"classes\": 3}, \"epochs\": 1, \"output\": \"o\"}",
         "422", "params.model"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": \"colour\", \"epochs\": 1, "
         "\"output\": \"o\"}",
         "404", "params.model: no such model: colour"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"batch\": 2, \"output\": \"o\"}",
         "422", "params.epochs: required: epochs (1 to 100000) or steps"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"steps\": 3, \"batch\": 2, \"output\": \"o\"}",
         "422", "params.steps: give epochs or steps, not both"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"steps\": 0, \"batch\": 2, \"output\": \"o\"}",
         "422", "params.steps: must be a whole number in [1, 100000000]"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"steps\": 5, \"batch\": 2, \"output\": \"o\", \"schedule\": "
         "{\"warmup_steps\": 6}}",
         "422", "params.schedule.warmup_steps: must be a whole number in [0, 5]"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"steps\": 5, \"batch\": 2, \"output\": \"o\", \"schedule\": "
         "{\"warmup_steps\": 1, \"warmup_epochs\": 1}}",
         "422", "params.schedule.warmup_steps: give warmup_epochs or warmup_steps, not both"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"batch\": 7, \"output\": \"o\"}",
         "422", "params.batch: 7 is more than the 6 images"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"val_split\": \"nosuch\", \"model\": "
         "{\"arch\": \"small-cnn\", \"classes\": 3}, \"epochs\": 1, \"output\": \"o\"}",
         "422", "params.val_split"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"batch\": 2, \"output\": \"../x\"}",
         "422", "params.output"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"batch\": 2, \"output\": \"o\", \"optimizer\": "
         "{\"name\": \"lbfgs\"}}",
         "422", "params.optimizer.name"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"batch\": 2, \"output\": \"o\", \"optimizer\": "
         "{\"lr\": -1}}",
         "422", "params.optimizer.lr"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"batch\": 2, \"output\": \"o\", \"optimizer\": "
         "{\"nesterov\": true}}",
         "422", "params.optimizer: nesterov needs a momentum"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 1, \"batch\": 2, \"output\": \"o\", \"optimizer\": "
         "{\"betas\": [0.9]}}",
         "422", "params.optimizer.betas"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 2, \"batch\": 2, \"output\": \"o\", \"schedule\": "
         "{\"name\": \"cosine\", \"warmup_epochs\": 3}}",
         "422", "params.schedule.warmup_epochs"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 2, \"batch\": 2, \"output\": \"o\", \"schedule\": "
         "{\"name\": \"multistep\", \"milestones\": [3]}}",
         "422", "params.schedule.milestones"},
        {"{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
         "\"classes\": 3}, \"epochs\": 2, \"batch\": 2, \"output\": \"o\", \"schedule\": "
         "{\"nam\": \"cosine\"}}",
         "422", "params.schedule.nam"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, cases[i][0], ds);
        job_expect_refusal(srv, "train", p, atol(cases[i][1]), cases[i][2]);
    }
    harness_pass(state);
}

/* ---- Fine-tuning ----------------------------------------------------------------------------- */

/* Initializer name of model.onnx of model a and b: whether their bytes are the same. */
static int same_initializer(const struct nn_graph *a, const struct nn_graph *b, const char *name)
{
    const struct nn_tensor *x = nn_graph_initializer(a, name), *y = nn_graph_initializer(b, name);
    if (!x || !y) fail_msg("no initializer %s", name);
    return x->count == y->count && memcmp(x->data, y->data, x->count * sizeof(float)) == 0;
}

static struct nn_graph *read_graph(const char *model)
{
    size_t size;
    char *onnx = read_model_file(model, "model.onnx", &size);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read(onnx, size, &err);
    if (!g) fail_msg("%s: %s", model, err.message);
    free(onnx);
    return g;
}

/* A fine-tuning job's params: model is params.model's JSON. */
static void finetune_params(char *out, size_t size, const char *ds, const char *model, int epochs,
                            const char *output)
{
    snprintf(out, size,
             "{\"dataset\": \"%s\", \"split\": \"train\", \"model\": %s, \"epochs\": %d, "
             "\"batch\": 4, \"seed\": 2, \"output\": \"%s\"}",
             ds, model, epochs, output);
}

/* A server with colour datasets of CLASSES classes (ds) and of 2 (ds2), and the model "base" a
 * train job registered from the first, for fine-tuning. */
static struct server *start_with_base(void **state, char ds[64], char ds2[64])
{
    struct server *srv = start(state);
    char params[1024], id[32];
    colour_dataset_make(srv, CLASSES, 4, ds);
    colour_dataset_make(srv, 2, 4, ds2);
    train_params(params, sizeof params, ds, 1, "base", "");
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state(srv, id, "succeeded"));
    return srv;
}

/* A model a first train job registers, fine-tuned by others: (a) on the same classes with conv1
 * and bn1 frozen, which keep their bytes while the rest moves; (b) with a new head on a dataset
 * of two classes, served with that dataset's labels; (c) the refusals. */
static void test_finetune(void **state)
{
    char ds[64], ds2[64], params[1024], id[32];
    struct server *srv = start_with_base(state, ds, ds2);

    finetune_params(params, sizeof params, ds,
                    "{\"name\": \"base\", \"freeze\": [\"conv1.\", \"bn1.\"]}", 1, "tuned");
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state(srv, id, "succeeded"));
    struct nn_graph *original = read_graph("base"), *tuned = read_graph("tuned");
    assert_true(same_initializer(original, tuned, "conv1.weight"));
    assert_true(same_initializer(original, tuned, "bn1.weight"));
    assert_true(same_initializer(original, tuned, "bn1.bias"));
    assert_false(same_initializer(original, tuned, "conv2.weight"));
    assert_false(same_initializer(original, tuned, "fc.weight"));
    nn_graph_free(tuned);
    nn_graph_free(original);

    finetune_params(params, sizeof params, ds2,
                    "{\"name\": \"base\", \"classes\": 2, \"freeze\": \"all-but-head\"}", 1,
                    "headed");
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state(srv, id, "succeeded"));
    size_t size;
    char *labels = read_model_file("headed", "labels.txt", &size);
    assert_int_equal(size, strlen("blue\ngreen\n"));
    assert_memory_equal(labels, "blue\ngreen\n", size);
    free(labels);
    unsigned char rgb[3];
    struct http_response r;
    colour(1, 3000, rgb);
    void *png = solid_png(rgb, &size);
    http_post(srv, "/v1/predict?model=headed&top_k=2", "image/png", png, size, &r);
    free(png);
    assert_status(&r, 200);
    json_t *answer = http_json(&r), *predictions = json_object_get(answer, "predictions");
    if (!predictions)
        predictions =
            json_object_get(json_array_get(json_object_get(answer, "results"), 0), "predictions");
    assert_int_equal(json_array_size(predictions), 2);
    for (size_t k = 0; k < 2; k++) {
        json_t *p = json_array_get(predictions, k);
        assert_string_equal(json_str(p, "label"), class_names[json_int(p, "index")]);
    }
    json_decref(answer);
    http_response_free(&r);

    const char *cases[][4] = {
        {ds2, "\"base\"", "422", "dataset %s has 2 classes and model base has 3 outputs"},
        {ds, "{\"name\": \"base\", \"freeze\": [\"conv9.\"]}", "422", "params.model.freeze: "},
        {ds, "{\"name\": \"base\", \"classes\": 2}", "422", "params.model.classes: must be 3"},
        {ds, "\"nosuch\"", "404", "params.model: no such model: nosuch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char needle[256];
        finetune_params(params, sizeof params, cases[i][0], cases[i][1], 1, "o");
        snprintf(needle, sizeof needle, cases[i][3], cases[i][0]);
        job_expect_refusal(srv, "train", params, atol(cases[i][2]), needle);
    }
    harness_pass(state);
}

/* The repository model `from` rebuilt with one edit and added as `to` through POST /v1/models,
 * with config (config.json's text) and from's labels.txt: every node of op type `op` made
 * `replacement`, or with op NULL, a Relu after the model's output, which no classifier head then
 * ends (replacement NULL: no edit at all). */
static void add_edited_model(const struct server *srv, const char *from, const char *to,
                             const char *op, const char *replacement, const char *config)
{
    static void (*const add[])(struct nn_builder *, const char *, enum nn_dtype, int,
                               const int64_t *, const char *const *) = {
        [NN_VALUES_INPUT] = nn_builder_input,
        [NN_VALUES_OUTPUT] = nn_builder_output,
        [NN_VALUES_INFO] = nn_builder_value_info,
    };
    struct nn_graph *g = read_graph(from);
    struct nn_builder *b = nn_builder_like(g);
    const char *const *dim_names;
    for (enum nn_values which = NN_VALUES_INPUT; which <= NN_VALUES_INFO; which++)
        for (size_t i = 0; i < nn_graph_value_count(g, which); i++) {
            const struct nn_tensor_info *v = nn_graph_value(g, which, i, &dim_names);
            add[which](b, v->name, v->dtype, v->rank, v->dims, dim_names);
        }
    for (size_t i = 0; i < nn_graph_initializer_count(g); i++) {
        const struct nn_tensor *t = nn_graph_initializer_at(g, i);
        nn_builder_initializer(b, t->info.name, t->info.dtype, t->info.rank, t->info.dims, t->data);
    }
    const char *output = nn_graph_output(g, 0)->name, *before = "before_relu";
    int relu = replacement && !op;
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        struct nn_node node = *nn_graph_node(g, i);
        if (replacement && op && !strcmp(node.op_type, op)) node.op_type = replacement;
        if (relu && !strcmp(node.outputs[0], output)) node.outputs = &before;
        nn_builder_copy_node(b, &node);
    }
    if (relu) nn_builder_node(b, replacement, "after", 1, &before, 1, &output);
    struct eng_error err = {0};
    struct nn_graph *edited = nn_builder_finish(b, &err);
    void *onnx;
    size_t onnx_size, labels_size;
    if (!edited || nn_graph_write(edited, &onnx, &onnx_size, &err)) fail_msg("%s", err.message);
    char *labels = read_model_file(from, "labels.txt", &labels_size);
    const struct http_part parts[] = {
        {"name", NULL, NULL, to, strlen(to)},
        {"model", "model.onnx", "application/octet-stream", onnx, onnx_size},
        {"config", "config.json", "application/json", config, strlen(config)},
        {"labels", "labels.txt", "text/plain", labels, labels_size},
    };
    struct http_request req = {.path = "/v1/models", .parts = parts, .part_count = 4};
    struct http_response r;
    http_send(srv, &req, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    free(labels);
    free(onnx);
    nn_graph_free(edited);
    nn_graph_free(g);
}

/* What a fine-tuning job would find only once it runs is refused when it is submitted (422,
 * naming it): an op without a backward pass (GlobalMaxPool, which the executor runs), and with
 * "classes", a model that no classifier head ends (a Relu after its Gemm); without "classes" that
 * model fine-tunes as it is. */
static void test_finetune_checked_at_submission(void **state)
{
    char ds[64], ds2[64], params[1024], id[32];
    struct server *srv = start_with_base(state, ds, ds2);
    size_t size;
    char *config = read_model_file("base", "config.json", &size);
    add_edited_model(srv, "base", "gmp", "GlobalAveragePool", "GlobalMaxPool", config);
    add_edited_model(srv, "base", "headless", NULL, "Relu", config);
    free(config);

    finetune_params(params, sizeof params, ds, "\"gmp\"", 1, "o");
    job_expect_refusal(srv, "train", params, 422,
                       "params.model: model gmp cannot be trained: unsupported ops: GlobalMaxPool "
                       "(1 nodes)");
    finetune_params(params, sizeof params, ds2, "{\"name\": \"headless\", \"classes\": 2}", 1, "o");
    job_expect_refusal(srv, "train", params, 422,
                       "params.model.classes: model headless has no head to replace: 'logits' is "
                       "made by node 'after' (Relu)");
    finetune_params(params, sizeof params, ds, "\"headless\"", 1, "tuned");
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state(srv, id, "succeeded"));
    harness_pass(state);
}

/* A fine-tuned model's config.json is its base's with every setting kept (max_batch, dynamic
 * batching, the preprocess as written) but "perceptual" (its lin weights fit the base's features
 * only) and labels.txt as its labels, the dataset's classes under a new head. */
static void test_finetune_keeps_config(void **state)
{
    char ds[64], ds2[64], params[1024], id[32];
    struct server *srv = start_with_base(state, ds, ds2);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/base/config.json", harness_models_dir());
    json_t *config = json_load_file(path, 0, NULL);
    assert_non_null(config);
    struct nn_graph *g = read_graph("base");
    json_t *settings = json_pack("{s:i, s:{s:i}, s:{s:[s], s:b}}", "max_batch", 16,
                                 "dynamic_batching", "max_delay_us", 500, "perceptual", "taps",
                                 nn_graph_node(g, 0)->outputs[0], "lin", 0);
    nn_graph_free(g);
    json_object_update(settings, config);
    char *text = json_dumps(settings, 0);
    add_edited_model(srv, "base", "settings", NULL, NULL, text);
    free(text);

    finetune_params(params, sizeof params, ds2, "{\"name\": \"settings\", \"classes\": 2}", 1,
                    "tuned");
    job_submit(srv, "train", params, id);
    json_decref(job_wait_state(srv, id, "succeeded"));
    snprintf(path, sizeof path, "%s/tuned/config.json", harness_models_dir());
    json_t *tuned = json_load_file(path, 0, NULL);
    assert_non_null(tuned);
    assert_int_equal(json_int(tuned, "max_batch"), 16);
    assert_int_equal(json_int(json_object_get(tuned, "dynamic_batching"), "max_delay_us"), 500);
    assert_true(
        json_equal(json_object_get(tuned, "preprocess"), json_object_get(config, "preprocess")));
    assert_string_equal(json_str(tuned, "labels"), "labels.txt");
    assert_null(json_object_get(tuned, "perceptual"));
    assert_int_equal(json_object_size(tuned), 4);
    size_t size;
    char *labels = read_model_file("tuned", "labels.txt", &size);
    assert_string_equal(labels, "blue\ngreen\n");
    free(labels);
    json_decref(tuned);
    json_decref(settings);
    json_decref(config);
    harness_pass(state);
}

/* A fine-tuning job killed with the server resumes from its checkpoint only on the repository
 * model it started from: its model.onnx replaced meanwhile by another's (same architecture,
 * other weights), the second attempt fails saying so rather than train on. */
static void test_finetune_resume_model_changed(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[1024], id[32];
    colour_dataset_make(srv, CLASSES, 4, ds);
    for (int k = 1; k <= 2; k++) {
        train_params(params, sizeof params, ds, 1, k == 1 ? "base" : "other",
                     k == 1 ? "" : ", \"label_smoothing\": 0.2");
        job_submit(srv, "train", params, id);
        json_decref(job_wait_state(srv, id, "succeeded"));
    }
    finetune_params(params, sizeof params, ds, "\"base\"", 200, "tuned");
    job_submit(srv, "train", params, id);
    job_wait_progress(srv, id, 0.02);
    assert_int_equal(server_stop(srv, SIGKILL, 5000), 0);
    size_t size;
    char *other = read_model_file("other", "model.onnx", &size), path[PATH_MAX];
    snprintf(path, sizeof path, "%s/base/model.onnx", harness_models_dir());
    write_file(path, other, size);
    free(other);
    json_t *doc = job_wait_state(job_restart(state, srv), id, "failed");
    assert_contains(json_str(doc, "error"), "model base changed since the job's checkpoint");
    json_decref(doc);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_learns_and_registers),
        HARNESS_MODELS_TEST(test_kill9_resume_same_weights),
        HARNESS_MODELS_TEST(test_kill9_resume_steps),
        HARNESS_MODELS_TEST(test_kill9_between_file_and_record),
        HARNESS_MODELS_TEST(test_kill9_during_checkpoint_write),
        HARNESS_MODELS_TEST(test_resume_older_version),
        HARNESS_MODELS_TEST(test_resume_refuses_file_ahead),
        HARNESS_MODELS_TEST(test_resume_finds_model_registered),
        HARNESS_MODELS_TEST(test_resume_finds_model_of_another_job),
        HARNESS_MODELS_TEST(test_steps),
        HARNESS_MODELS_TEST(test_cancel),
        HARNESS_MODELS_TEST(test_bad_params),
        HARNESS_MODELS_TEST(test_finetune),
        HARNESS_MODELS_TEST(test_finetune_resume_model_changed),
        HARNESS_MODELS_TEST(test_finetune_checked_at_submission),
        HARNESS_MODELS_TEST(test_finetune_keeps_config),
    };
    return harness_main(argc, argv, "train_job", tests, sizeof tests / sizeof tests[0]);
}
