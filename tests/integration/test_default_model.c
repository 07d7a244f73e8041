/* The default model, models/cifar10-resnet20, as a newcomer's first start serves it: the server
 * started in the repository root with the embedded default models_dir ("models", relative to the
 * working directory) lists it; its labels are CIFAR-10's ten classes in the order the reduced
 * CIFAR-10's class folders number them (byte order: the archive's README), and /v1/predict
 * answers with those labels at those indices.
 *
 * With the reduced CIFAR-10 of ../shared/data (argv[3]; skipped with a message without it), the
 * model's card is cross-checked: the archive imported now has the content hash training.json
 * names, and an evaluate job of the shipped model on the test split reproduces the accuracy
 * training.json states for its last epoch, to 1e-9: the same images through the same preprocess
 * (the train job evaluates on the training plan in eval mode, the evaluate job on the executor,
 * so this also holds the two to the same predictions). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "job_client.h"

#define MODEL     "cifar10-resnet20"
#define MODEL_DIR "models/" MODEL
#define CLASSES   10

/* CIFAR-10's classes (Krizhevsky 2009), in byte order, which is how a dataset of class folders
 * numbers them. */
static const char *const cifar10[CLASSES] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                             "dog",      "frog",       "horse", "ship", "truck"};

/* The reduced CIFAR-10's archive, in argv[3] (../shared/data). */
static char archive[4096] = "(no folder given)/cifar10-jpeg-20k.tar";

/* The server as a first start runs it: the working directory the repository root, and no
 * models_dir setting (the harness's config sets data_dir and static_dir to its own folder, so
 * nothing is written into the tree). */
static struct server *start_in_repository(void **state)
{
    char here[4096];
    assert_non_null(getcwd(here, sizeof here));
    assert_int_equal(chdir(harness_source_dir()), 0);
    struct server *srv = harness_start(state, "{\"job_threads\": 2}");
    assert_int_equal(chdir(here), 0);
    return srv;
}

static void test_listed_with_cifar10_labels(void **state)
{
    struct server *srv = start_in_repository(state);
    struct http_response r;
    http_get(srv, "/v1/models/" MODEL, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "status"), "ready");
    assert_int_equal(json_int(doc, "label_count"), CLASSES);
    json_t *shape = json_object_get(json_array_get(json_object_get(doc, "inputs"), 0), "shape");
    assert_int_equal(json_array_size(shape), 4);
    const json_int_t chw[3] = {3, 32, 32};
    for (int i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_array_get(shape, (size_t)i + 1)), chw[i]);
    json_decref(doc);
    http_response_free(&r);

    /* labels.txt, one a line, and config.json naming it with CIFAR-10's normalisation (the train
     * job's, README "Job kind: train"). */
    size_t size;
    char *labels = harness_read_source_file(MODEL_DIR "/labels.txt", &size);
    char expected[256] = "";
    for (int c = 0; c < CLASSES; c++)
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s\n",
                 cifar10[c]);
    assert_string_equal(labels, expected);
    free(labels);
    json_t *config = harness_load_source_json(MODEL_DIR "/config.json");
    assert_string_equal(json_str(config, "labels"), "labels.txt");
    json_t *mean = json_object_get(json_object_get(config, "preprocess"), "mean");
    const double cifar_mean[3] = {0.4914, 0.4822, 0.4465};
    for (int k = 0; k < 3; k++)
        assert_true(fabs(json_real_value(json_array_get(mean, (size_t)k)) - cifar_mean[k]) < 1e-6);
    json_decref(config);

    /* A prediction: every label is the class of its index, and the probabilities descend. */
    char *png = harness_read_source_file("tests/parity/fixtures/predict/photo.png", &size);
    http_post(srv, "/v1/predict?model=" MODEL, "image/png", png, size, &r);
    free(png);
    assert_status(&r, 200);
    doc = http_json(&r);
    json_t *predictions =
        json_object_get(json_array_get(json_object_get(doc, "results"), 0), "predictions");
    assert_true(json_array_size(predictions) >= 1);
    double previous = 1.0;
    size_t i;
    json_t *p;
    json_array_foreach(predictions, i, p)
    {
        json_int_t index = json_int(p, "index");
        assert_true(index >= 0 && index < CLASSES);
        assert_string_equal(json_str(p, "label"), cifar10[index]);
        double prob = json_real_value(json_object_get(p, "prob"));
        assert_true(prob > 0 && prob <= previous);
        previous = prob;
    }
    json_decref(doc);
    http_response_free(&r);
    harness_pass(state);
}

/* The metrics of the card's last epoch: what the train job measured on its val_split. */
static double card_accuracy(json_t *card)
{
    json_t *metrics = json_object_get(card, "metrics");
    json_t *last = json_array_get(metrics, json_array_size(metrics) - 1);
    assert_non_null(last);
    assert_true(json_is_number(json_object_get(last, "val_accuracy")));
    return json_number_value(json_object_get(last, "val_accuracy"));
}

static void test_card_reproduced(void **state)
{
    if (access(archive, R_OK) != 0) {
        print_message("skipped: %s is missing (the reduced CIFAR-10 of ../shared/data)\n", archive);
        skip();
    }
    json_t *card = harness_load_source_json(MODEL_DIR "/training.json");
    assert_string_equal(json_str(card, "val_split"), "test");
    double stated = card_accuracy(card);

    struct server *srv = start_in_repository(state);
    char id[64];
    job_import_dataset(srv, archive, id);
    char path[128];
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *dataset = http_json(&r);
    assert_string_equal(json_str(dataset, "hash"), json_str(card, "dataset_hash"));
    json_decref(dataset);
    http_response_free(&r);

    char params[256], job[32];
    snprintf(params, sizeof params,
             "{\"model\": \"" MODEL "\", \"dataset\": \"%s\", \"split\": \"test\"}", id);
    job_submit(srv, "evaluate", params, job);
    /* 10,000 images: minutes under the sanitizers on a loaded machine. */
    json_t *doc = job_wait_state_for(srv, job, "succeeded", 30 * WAIT_S);
    json_t *result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "count"), 10000);
    double top1 = json_number_value(json_object_get(result, "top1"));
    if (fabs(top1 - stated) > 1e-9)
        fail_msg("the evaluate job's top-1 is %.10f; training.json states %.10f", top1, stated);
    json_decref(doc);
    json_decref(card);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    if (argc > 3) snprintf(archive, sizeof archive, "%s/cifar10-jpeg-20k.tar", argv[3]);
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_listed_with_cifar10_labels),
        HARNESS_TEST(test_card_reproduced),
    };
    return harness_main(argc, argv, "integration.default_model", tests,
                        sizeof tests / sizeof tests[0]);
}
