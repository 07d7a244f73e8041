/* The job kinds evaluate, affinity and pseudo-label against the real binary, on a model and a
 * dataset this test makes, whose answers it computes on its own:
 *
 *   the model   "colour": the mean of each channel (GlobalAveragePool) times SCALE, as the logits
 *               of the classes red, green, blue (its labels, in that order)
 *   the dataset one split "test" of solid-colour 8x8 PNGs in class folders blue, green, red
 *               (the dataset's classes, in byte order: matched to the model's by name)
 *
 * so an image of colour (r, g, b) gets softmax(SCALE x (r, g, b) / 255), and top-1, NLL, ECE, the
 * confusion matrix, per-class accuracy, the accuracy under Invert and the pseudo-labels follow
 * from the table below with a few lines of double arithmetic. Then: Identity's affinity is
 * exactly 0; an evaluate killed with kill -9 mid-way and resumed ends with exactly the result and
 * the tables of an uninterrupted run; a cancel stops a running job; params are refused with the
 * field named. Datasets are imported with the CLI into the server's data_dir/datasets (the HTTP
 * dataset API is not needed), but for a job on an alias: the same dataset imported twice over
 * HTTP, the second id standing for the first. */
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
#include <sys/stat.h>
#include <sys/wait.h>

#include "assert_near.h"
#include "colour_dataset.h"
#include "colour_model.h"
#include "core/img.h"
#include "data_build.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define SCALE   COLOUR_MODEL_SCALE
#define CLASSES 3
#define BINS    15

static const char *const model_classes[CLASSES] = {"red", "green", "blue"};

struct sample {
    const char *cls; /* its class folder */
    int file;
    unsigned char rgb[3];
};

/* Two of them are wrong on purpose: a green image labeled red, and a red-green tie (the lower
 * index, red, wins) labeled green. */
static const struct sample samples[] = {
    {"blue", 0, {0, 0, 255}},    {"blue", 1, {30, 30, 220}},  {"green", 0, {0, 255, 0}},
    {"green", 1, {40, 200, 40}}, {"green", 2, {128, 128, 0}}, {"red", 0, {255, 0, 0}},
    {"red", 1, {200, 40, 40}},   {"red", 2, {0, 255, 0}},
};
#define SAMPLES (sizeof samples / sizeof samples[0])

/* ---- The expectations, in double ------------------------------------------------------------- */

static int model_class(const char *name)
{
    for (int k = 0; k < CLASSES; k++)
        if (strcmp(model_classes[k], name) == 0) return k;
    fail_msg("no class %s", name);
    return -1;
}

/* The model's probabilities for a solid colour (inverted: 255 - value, as Invert does). */
static void expect_probs(const unsigned char rgb[3], int invert, double p[CLASSES])
{
    double sum = 0;
    for (int k = 0; k < CLASSES; k++)
        sum += p[k] = exp(SCALE * (invert ? 255 - rgb[k] : rgb[k]) / 255.0);
    for (int k = 0; k < CLASSES; k++)
        p[k] /= sum;
}

/* The argmax, the lower index on ties. */
static int argmax(const double p[CLASSES])
{
    int top = 0;
    for (int k = 1; k < CLASSES; k++)
        if (p[k] > p[top]) top = k;
    return top;
}

static double accuracy(int invert)
{
    int correct = 0;
    for (size_t i = 0; i < SAMPLES; i++) {
        double p[CLASSES];
        expect_probs(samples[i].rgb, invert, p);
        correct += argmax(p) == model_class(samples[i].cls);
    }
    return (double)correct / SAMPLES;
}

/* ---- The model and the dataset --------------------------------------------------------------- */

#define CONFIG      "{\"preprocess\": {}, \"labels\": \"labels.txt\"}"
#define BIG_CONFIG  "{\"preprocess\": {\"resize\": 256, \"crop\": 224}, \"labels\": \"labels.txt\"}"
#define MID_CONFIG  "{\"preprocess\": {\"resize\": 64, \"crop\": 64}, \"labels\": \"labels.txt\"}"
#define LABELS      "red\ngreen\nblue\n"
#define NOT_BLUE    "red\ngreen\nmagenta\n"
#define REPO_MODELS "colour", CONFIG, LABELS

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) fail_msg("cannot make %s", path);
}

/* Writes <root>/test/<class>/<file>.png, a solid 8x8 image. */
static void write_png(const char *root, const char *cls, int file, const unsigned char rgb[3])
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/test", root);
    make_dir(path);
    snprintf(path, sizeof path, "%s/test/%s", root, cls);
    make_dir(path);
    struct eng_error err = {0};
    struct img *im = img_new(8, 8, 3, &err);
    assert_non_null(im);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            memcpy(img_row(im, y) + 3 * x, rgb, 3);
    void *png;
    size_t size;
    assert_int_equal(img_encode(im, IMG_PNG, 0, NULL, &png, &size, &err), 0);
    snprintf(path, sizeof path, "%s/test/%s/%03d.png", root, cls, file);
    write_file(path, png, size);
    free(png);
    img_free(im);
}

/* The test's dataset of `samples`, imported into the server's data_dir. */
static void make_dataset(const struct server *srv, char id[64])
{
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s/colours", srv->dir);
    make_dir(src);
    for (size_t i = 0; i < SAMPLES; i++)
        write_png(src, samples[i].cls, samples[i].file, samples[i].rgb);
    job_import_dataset(srv, src, id);
}

/* Images per class of the larger dataset: enough for a job to run a while at 224x224. */
#define BIG 300

/* A larger dataset for the kill and cancel tests: per class n images of colours that vary. */
static void make_big_dataset(const struct server *srv, int n, char id[64])
{
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s/many", srv->dir);
    make_dir(src);
    for (int c = 0; c < CLASSES; c++)
        for (int i = 0; i < n; i++) {
            unsigned char rgb[3] = {(unsigned char)(i * 37), (unsigned char)(i * 59 + c),
                                    (unsigned char)(i * 83 + 2 * c)};
            rgb[c] = 255;
            write_png(src, model_classes[c], i, rgb);
        }
    job_import_dataset(srv, src, id);
}

/* A server on the test's models, with settings (members of the config object) besides. */
static struct server *start_with(void **state, const char *settings)
{
    colour_model_write(REPO_MODELS);
    colour_model_write("colour-big", BIG_CONFIG, LABELS);
    colour_model_write("colour-mid", MID_CONFIG, LABELS);
    colour_model_write("not-blue", CONFIG, NOT_BLUE);
    return harness_start_with_models(state, settings);
}

static struct server *start(void **state)
{
    return start_with(state, "\"job_threads\": 2");
}

/* ---- Jobs ------------------------------------------------------------------------------------ */

/* Runs a job to success: its document. */
static json_t *run_job(const struct server *srv, const char *kind, const char *params)
{
    char id[32];
    job_submit(srv, kind, params, id);
    return job_wait_state(srv, id, "succeeded");
}

/* An artifact's bytes (malloc'd, NUL-terminated). */
static char *artifact(const struct server *srv, const char *id, const char *name, size_t *size)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id, name);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    char *body = r.body;
    if (size) *size = r.body_size;
    r.body = NULL;
    http_response_free(&r);
    return body;
}

/* A PNG artifact: it decodes as a chart-sized image. */
static void check_png(const struct server *srv, const char *id, const char *name)
{
    size_t size;
    char *png = artifact(srv, id, name, &size);
    struct eng_error err = {0};
    struct img *im = img_decode(png, size, NULL, NULL, &err);
    if (!im) fail_msg("%s: %s", name, err.message);
    assert_int_equal(im->width, 480);
    assert_int_equal(im->height, 320);
    img_free(im);
    free(png);
}

static double number(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) fail_msg("%s is not a number", key);
    return json_number_value(v);
}

/* ---- evaluate -------------------------------------------------------------------------------- */

static void test_evaluate(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[256];
    make_dataset(srv, ds);
    snprintf(params, sizeof params,
             "{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", \"batch_size\": 3}",
             ds);
    json_t *doc = run_job(srv, "evaluate", params);
    json_t *result = json_object_get(doc, "result");

    /* The expectations: per sample its probabilities, then the totals and the bins. */
    double nll = 0, bin_conf[BINS] = {0};
    int correct = 0, bin_count[BINS] = {0}, bin_correct[BINS] = {0};
    int confusion[CLASSES][CLASSES] = {{0}}; /* [dataset class][model class] */
    const char *dataset_classes[CLASSES] = {"blue", "green", "red"}; /* byte order */
    for (size_t i = 0; i < SAMPLES; i++) {
        double p[CLASSES];
        expect_probs(samples[i].rgb, 0, p);
        int truth = model_class(samples[i].cls), top = argmax(p);
        int bin = (int)ceil(p[top] * BINS) - 1, row = 0;
        while (strcmp(dataset_classes[row], samples[i].cls) != 0)
            row++;
        correct += top == truth;
        nll -= log(p[truth]);
        bin_count[bin]++;
        bin_correct[bin] += top == truth;
        bin_conf[bin] += p[top];
        confusion[row][top]++;
    }
    double ece = 0;
    for (int b = 0; b < BINS; b++)
        if (bin_count[b]) ece += fabs(bin_correct[b] - bin_conf[b]) / SAMPLES;
    assert_int_equal(json_int(result, "count"), SAMPLES);
    assert_near(number(result, "top1"), (double)correct / SAMPLES, 0);
    assert_near(number(result, "top1"), 0.75, 0); /* two of eight wrong, as planned */
    assert_near(number(result, "top5"), 1, 0);    /* three classes */
    assert_near(number(result, "nll"), nll / SAMPLES, 1e-5);
    assert_near(number(result, "ece"), ece, 1e-5);
    assert_true(ece > 0.05); /* not a trivially calibrated case */

    /* Per class, in the dataset's order: blue 2/2, green 2/3, red 2/3. */
    json_t *per_class = json_object_get(result, "per_class");
    assert_int_equal(json_array_size(per_class), CLASSES);
    for (int c = 0; c < CLASSES; c++) {
        json_t *row = json_array_get(per_class, (size_t)c);
        int count = 0;
        for (int k = 0; k < CLASSES; k++)
            count += confusion[c][k];
        assert_string_equal(json_str(row, "class"), dataset_classes[c]);
        assert_int_equal(json_int(row, "count"), count);
        assert_int_equal(json_int(row, "correct"), confusion[c][model_class(dataset_classes[c])]);
    }

    /* confusion.csv: rows the dataset's classes, columns the model's. */
    const char *id = json_str(doc, "id");
    char want[512];
    int used = snprintf(want, sizeof want, "true\\predicted,red,green,blue\n");
    for (int c = 0; c < CLASSES; c++)
        used += snprintf(want + used, sizeof want - (size_t)used, "%s,%d,%d,%d\n",
                         dataset_classes[c], confusion[c][0], confusion[c][1], confusion[c][2]);
    char *csv = artifact(srv, id, "confusion.csv", NULL);
    assert_string_equal(csv, want);
    free(csv);
    csv = artifact(srv, id, "per_class.csv", NULL);
    assert_string_equal(csv, "class,count,correct,accuracy\nblue,2,2,1\n"
                             "green,3,2,0.66666666666666663\nred,3,2,0.66666666666666663\n");
    free(csv);
    check_png(srv, id, "reliability.png");
    /* result.json is the result. */
    char *text = artifact(srv, id, "result.json", NULL);
    json_t *saved = json_loads(text, 0, NULL);
    assert_true(json_equal(saved, result));
    json_decref(saved);
    free(text);
    json_decref(doc);
    harness_pass(state);
}

/* ---- affinity -------------------------------------------------------------------------------- */

static void test_affinity(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[512];
    make_dataset(srv, ds);
    snprintf(params, sizeof params,
             "{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", \"batch_size\": 3, "
             "\"draws\": 2, \"seed\": 5, \"policies\": [{\"op\": \"Identity\"}, {\"op\": "
             "\"Invert\"}, \"randaugment\"]}",
             ds);
    json_t *doc = run_job(srv, "affinity", params);
    json_t *result = json_object_get(doc, "result");
    double clean = accuracy(0), inverted = accuracy(1);
    assert_near(number(result, "clean_accuracy"), clean, 0);
    assert_int_equal(json_int(result, "count"), SAMPLES);
    json_t *rows = json_object_get(result, "policies");
    assert_int_equal(json_array_size(rows), 3);
    /* Identity: the clean pass's answers exactly, every draw. */
    json_t *identity = json_array_get(rows, 0);
    assert_string_equal(json_str(identity, "name"), "Identity");
    json_t *affinity = json_object_get(identity, "affinity");
    assert_true(number(affinity, "mean") == 0.0 && number(affinity, "std") == 0.0);
    assert_true(number(json_object_get(identity, "ratio"), "mean") == 1.0);
    /* Invert is deterministic: both draws give the hand-computed accuracy. */
    json_t *invert = json_array_get(rows, 1);
    assert_near(number(json_object_get(invert, "accuracy"), "mean"), inverted, 0);
    assert_near(number(json_object_get(invert, "accuracy"), "std"), 0, 0);
    assert_near(number(json_object_get(invert, "affinity"), "mean"), inverted - clean, 1e-15);
    assert_near(number(json_object_get(invert, "ratio"), "mean"), inverted / clean, 1e-15);
    /* randaugment: two draws at seeds 5 and 6, each an accuracy of k/8. */
    json_t *draws = json_object_get(json_array_get(rows, 2), "draws");
    assert_int_equal(json_array_size(draws), 2);
    for (size_t d = 0; d < 2; d++) {
        double a = json_number_value(json_array_get(draws, d)) * SAMPLES;
        assert_near(a, round(a), 1e-12);
    }
    const char *id = json_str(doc, "id");
    char *csv = artifact(srv, id, "affinity.csv", NULL);
    assert_contains(csv, "policy,accuracy_mean,accuracy_std,affinity_mean,affinity_std,ratio_mean,"
                         "ratio_std\n\"Identity\",0.75,0,0,0,1,0\n\"Invert\",0.125,0,-0.625,0,");
    free(csv);
    check_png(srv, id, "affinity.png");
    json_decref(doc);

    /* "ops" at a level: Identity first (exactly 0 again), then the ops with a magnitude. */
    snprintf(params, sizeof params,
             "{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", \"policies\": "
             "\"ops\", \"level\": 0.5}",
             ds);
    doc = run_job(srv, "affinity", params);
    rows = json_object_get(json_object_get(doc, "result"), "policies");
    assert_true(json_array_size(rows) > 10);
    assert_string_equal(json_str(json_array_get(rows, 0), "name"), "Identity");
    assert_true(number(json_object_get(json_array_get(rows, 0), "affinity"), "mean") == 0.0);
    int rotate = 0;
    for (size_t i = 0; i < json_array_size(rows); i++)
        rotate += strcmp(json_str(json_array_get(rows, i), "name"), "Rotate@0.5") == 0;
    assert_int_equal(rotate, 1);
    json_decref(doc);
    harness_pass(state);
}

/* Split `name` of the server's dataset ds as `augserve dataset show` describes it (the caller owns
 * it), or NULL when there is none; fails the test when the dataset has it twice. */
static json_t *split_described(const struct server *srv, const char *ds, const char *name)
{
    char dir[PATH_MAX + 96];
    snprintf(dir, sizeof dir, "%s/datasets/%s", srv->data_dir, ds);
    const char *args[] = {"dataset", "show", dir, NULL};
    char *text, *errors;
    assert_int_equal(harness_run_binary(args, &text, &errors), 0);
    json_t *described = json_loads(text, 0, NULL), *split, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(described, "splits"), i,
                       split) if (strcmp(json_str(split, "name"), name) == 0)
    {
        assert_null(found);
        found = json_incref(split);
    }
    json_decref(described);
    free(text);
    free(errors);
    return found;
}

/* ---- pseudo-label ---------------------------------------------------------------------------- */

static void test_pseudo_label(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[256];
    make_dataset(srv, ds);
    snprintf(params, sizeof params,
             "{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", \"threshold\": "
             "0.9, \"as_split\": \"pseudo\", \"batch_size\": 5}",
             ds);
    json_t *doc = run_job(srv, "pseudo-label", params);
    json_t *result = json_object_get(doc, "result");
    /* Every image has its line, in split order (the dataset's: class folders in byte order). */
    char *lines = artifact(srv, json_str(doc, "id"), "pseudo_labels.jsonl", NULL);
    int accepted[CLASSES] = {0}, total = 0;
    char *save = NULL, *line = strtok_r(lines, "\n", &save);
    for (size_t i = 0; i < SAMPLES; i++, line = strtok_r(NULL, "\n", &save)) {
        assert_non_null(line);
        json_t *item = json_loads(line, 0, NULL);
        double p[CLASSES];
        expect_probs(samples[i].rgb, 0, p);
        int top = argmax(p), ok = p[top] >= 0.9;
        char file[64];
        snprintf(file, sizeof file, "test/%s/%03d.png", samples[i].cls, samples[i].file);
        assert_string_equal(json_str(item, "file"), file);
        assert_string_equal(json_str(item, "label"), model_classes[top]);
        assert_near(number(item, "confidence"), p[top], 1e-6);
        assert_int_equal(json_is_true(json_object_get(item, "accepted")), ok);
        accepted[top] += ok;
        total += ok;
        json_decref(item);
    }
    assert_null(line);
    free(lines);
    assert_int_equal(total, 5); /* the pure colours and (30, 30, 220) */
    assert_int_equal(json_int(result, "accepted"), total);
    assert_int_equal(json_int(result, "split_images"), total);
    json_t *per_class = json_object_get(result, "per_class");
    for (int k = 0; k < CLASSES; k++) {
        json_t *row = json_array_get(per_class, (size_t)k);
        assert_string_equal(json_str(row, "class"), model_classes[k]);
        assert_int_equal(json_int(row, "accepted"), accepted[k]);
    }
    json_decref(doc);

    /* The split is in the dataset, with the pseudo-labels as its labels: per_class counts in the
     * dataset's class order (blue, green, red), the model's reversed. */
    json_t *split = split_described(srv, ds, "pseudo");
    assert_non_null(split);
    assert_int_equal(json_int(split, "count"), total);
    assert_true(json_is_true(json_object_get(split, "labeled")));
    for (int c = 0; c < CLASSES; c++)
        assert_int_equal(
            json_integer_value(json_array_get(json_object_get(split, "per_class"), (size_t)c)),
            accepted[CLASSES - 1 - c]);
    json_decref(split);

    /* A second job naming the same split is refused before it queues. */
    struct http_response r;
    char body[512];
    snprintf(body, sizeof body, "{\"kind\": \"pseudo-label\", \"params\": %s}", params);
    job_send(srv, "POST", "/v1/jobs", body, NULL, &r);
    assert_error_envelope(&r, 409, "conflict");
    assert_contains(r.body, "params.as_split");
    http_response_free(&r);
    harness_pass(state);
}

/* POST /v1/datasets?name=<name>&path=colours (a folder under datasets_dir), then waits for the
 * import to end ready: its document, the id into id. */
static json_t *import_over_http(const struct server *srv, const char *name, char id[32])
{
    char path[128];
    snprintf(path, sizeof path, "/v1/datasets?name=%s&path=colours", name);
    struct http_response r;
    job_send(srv, "POST", path, "", NULL, &r);
    assert_status(&r, 202);
    json_t *doc = http_json(&r);
    snprintf(id, 32, "%s", json_str(doc, "id"));
    json_decref(doc);
    http_response_free(&r);
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    for (double deadline = harness_now() + WAIT_S;; job_sleep_ms(50)) {
        job_send(srv, "GET", path, NULL, NULL, &r);
        assert_status(&r, 200);
        doc = http_json(&r);
        http_response_free(&r);
        if (strcmp(json_str(doc, "state"), "importing") != 0) break;
        json_decref(doc);
        if (harness_now() > deadline) fail_msg("dataset %s is still importing", id);
    }
    assert_string_equal(json_str(doc, "state"), "ready");
    return doc;
}

/* A job on an alias is a job on the dataset it stands for: the test's images imported twice over
 * HTTP are one dataset, and the split a pseudo-label job adds through the second id is written
 * into the first's cache (read back from its folder by the CLI), the same as test_pseudo_label's;
 * the first then cannot be deleted before the alias. */
static void test_job_on_alias(void **state)
{
    char *shared = db_temp_dir(), settings[PATH_MAX + 64], src[PATH_MAX];
    snprintf(src, sizeof src, "%s/colours", shared);
    make_dir(src);
    for (size_t i = 0; i < SAMPLES; i++)
        write_png(src, samples[i].cls, samples[i].file, samples[i].rgb);
    snprintf(settings, sizeof settings, "\"job_threads\": 2, \"datasets_dir\": \"%s\"", shared);
    struct server *srv = start_with(state, settings);
    char first[32], second[32], params[256];
    json_decref(import_over_http(srv, "first", first));
    json_t *doc = import_over_http(srv, "second", second);
    assert_string_equal(json_str(doc, "same_as"), first);
    json_decref(doc);
    snprintf(params, sizeof params,
             "{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", \"threshold\": "
             "0.9, \"as_split\": \"pseudo\"}",
             second);
    doc = run_job(srv, "pseudo-label", params);
    json_t *result = json_object_get(doc, "result");
    assert_int_equal(json_int(result, "accepted"), 5); /* as test_pseudo_label's */
    json_decref(doc);
    json_t *split = split_described(srv, first, "pseudo");
    assert_non_null(split);
    assert_int_equal(json_int(split, "count"), 5);
    json_decref(split);
    char path[64];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/datasets/%s", first);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_error_envelope(&r, 409, "conflict");
    assert_contains(r.body, second);
    http_response_free(&r);
    db_remove(shared);
    free(shared);
    harness_pass(state);
}

/* as_split once: jobs queued behind one that adds the split (job_workers 1) pass validation, as
 * it is not there yet. At their end, the one that found the same images and labels there goes on
 * (what a job resumed after adding its split does); the one with another threshold, hence other
 * images, fails with a conflict. */
static void test_as_split_once(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[3][256], id[3][32];
    make_big_dataset(srv, BIG, ds);
    const double thresholds[3] = {0.6, 0.6, 0.9};
    for (int i = 0; i < 3; i++) {
        snprintf(params[i], sizeof params[i],
                 "{\"model\": \"colour-big\", \"dataset\": \"%s\", \"split\": \"test\", "
                 "\"batch_size\": 1, \"threshold\": %g, \"as_split\": \"p\"}",
                 ds, thresholds[i]);
        job_submit(srv, "pseudo-label", params[i], id[i]);
    }
    json_t *first = job_wait_state(srv, id[0], "succeeded");
    json_t *same = job_wait_state(srv, id[1], "succeeded");
    json_t *other = job_wait_state(srv, id[2], "failed");
    json_int_t images = json_int(json_object_get(first, "result"), "split_images");
    assert_true(images > 0 && images < CLASSES * BIG);
    assert_int_equal(json_int(json_object_get(same, "result"), "split_images"), images);
    assert_contains(json_str(other, "error"), "another split p");
    json_decref(first);
    json_decref(same);
    json_decref(other);
    /* The dataset has the split once, of the first job's images. */
    json_t *split = split_described(srv, ds, "p");
    assert_non_null(split);
    assert_int_equal(json_int(split, "count"), images);
    json_decref(split);
    harness_pass(state);
}

/* ---- kill -9, cancel ------------------------------------------------------------------------- */

/* Runs a job of kind with params (a format with one %s, the dataset) on the big dataset to the
 * end; then the same job again, killed with kill -9 once a fifth is done and resumed by a second
 * server: it must end with exactly the first one's result and artifacts (names, NULL-terminated),
 * nothing lost and nothing counted or written twice. */
static void kill_and_resume(void **state, const char *kind, const char *format,
                            const char *const artifacts[])
{
    struct server *first = start(state);
    char ds[64], params[512], id[32];
    make_big_dataset(first, BIG, ds);
    snprintf(params, sizeof params, format, ds);
    json_t *whole = run_job(first, kind, params);
    char *files[4];
    size_t n = 0;
    for (; artifacts[n]; n++)
        files[n] = artifact(first, json_str(whole, "id"), artifacts[n], NULL);

    job_submit(first, kind, params, id);
    /* It goes on from its checkpoint (a log event says where), not from the start. */
    struct server *second;
    json_t *doc = job_kill_and_resume(state, first, id, 0.2, "resuming at", &second);
    assert_true(json_equal(json_object_get(doc, "result"), json_object_get(whole, "result")));
    assert_int_equal(json_int(json_object_get(doc, "result"), "count"), CLASSES * BIG);
    for (size_t i = 0; i < n; i++) {
        char *again = artifact(second, id, artifacts[i], NULL);
        assert_string_equal(again, files[i]);
        free(again);
        free(files[i]);
    }
    json_decref(doc);
    json_decref(whole);
    /* Stopped before the teardown removes the first server's folder, its data_dir. */
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

static void test_kill9_evaluate(void **state)
{
    kill_and_resume(state, "evaluate",
                    "{\"model\": \"colour-big\", \"dataset\": \"%s\", \"split\": \"test\", "
                    "\"batch_size\": 1, \"policy\": \"randaugment\", \"seed\": 3}",
                    (const char *const[]){"confusion.csv", "per_class.csv", NULL});
}

/* The JSON Lines artifact is cut back to its checkpoint: every image has exactly one line. */
static void test_kill9_pseudo_label(void **state)
{
    kill_and_resume(state, "pseudo-label",
                    "{\"model\": \"colour-big\", \"dataset\": \"%s\", \"split\": \"test\", "
                    "\"batch_size\": 1, \"threshold\": 0.6}",
                    (const char *const[]){"pseudo_labels.jsonl", NULL});
}

/* Killed in the clean pass or in a policy's: the passes' counts carry over. Three passes, so
 * smaller inputs (64x64) keep the job as long as the others. */
static void test_kill9_affinity(void **state)
{
    kill_and_resume(state, "affinity",
                    "{\"model\": \"colour-mid\", \"dataset\": \"%s\", \"split\": \"test\", "
                    "\"batch_size\": 1, \"policies\": [\"randaugment\"], \"draws\": 2}",
                    (const char *const[]){"affinity.csv", NULL});
}

static void test_cancel(void **state)
{
    struct server *srv = start(state);
    char ds[64], params[256], id[32];
    make_big_dataset(srv, 100, ds);
    snprintf(params, sizeof params,
             "{\"model\": \"colour-big\", \"dataset\": \"%s\", \"split\": \"test\", "
             "\"batch_size\": 1, \"policies\": [\"randaugment\"], \"draws\": 20}",
             ds);
    job_submit(srv, "affinity", params, id);
    job_wait_progress(srv, id, 0.01);
    job_cancel(srv, id);
    double asked = harness_now();
    json_decref(job_wait_state(srv, id, "cancelled"));
    assert_true(harness_now() - asked < 5);
    harness_pass(state);
}

/* ---- Params ---------------------------------------------------------------------------------- */

static void test_bad_params(void **state)
{
    struct server *srv = start(state);
    char ds[64], p[512];
    make_dataset(srv, ds);
#define P(fmt) (snprintf(p, sizeof p, fmt, ds), p)
    job_expect_refusal(srv, "evaluate", "{\"dataset\": \"x\", \"split\": \"test\"}", 422,
                       "params.model");
    job_expect_refusal(srv, "evaluate",
                       "{\"model\": \"nosuch\", \"dataset\": \"x\", \"split\": \"t\"}", 404,
                       "params.model: no such model: nosuch");
    job_expect_refusal(srv, "evaluate",
                       "{\"model\": \"colour\", \"dataset\": \"nosuch\", \"split\": \"test\"}", 404,
                       "params.dataset: no such dataset: nosuch");
    job_expect_refusal(srv, "evaluate",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"train\"}"), 422,
                       "params.split: dataset");
    job_expect_refusal(srv, "evaluate",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
                         "\"batch_size\": 0}"),
                       422, "params.batch_size");
    job_expect_refusal(srv, "evaluate",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
                         "\"policy\": {\"op\": \"Nosuch\"}}"),
                       422, "params.policy");
    job_expect_refusal(srv, "evaluate",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
                         "\"polcy\": \"randaugment\"}"),
                       422, "params.polcy: unknown parameter");
    /* A dataset class the model lacks is named. */
    job_expect_refusal(srv, "evaluate",
                       P("{\"model\": \"not-blue\", \"dataset\": \"%s\", \"split\": \"test\"}"),
                       422, "class \\\"blue\\\" of dataset");
    job_expect_refusal(srv, "affinity",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\"}"), 422,
                       "params.policies");
    job_expect_refusal(srv, "affinity",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
                         "\"policies\": \"ops\"}"),
                       422, "params.level");
    job_expect_refusal(
        srv, "affinity",
        P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
          "\"policies\": [\"randaugment\", {\"op\": \"Rotate\", \"degrees\": 999}]}"),
        422, "params.policies/1");
    job_expect_refusal(srv, "pseudo-label",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
                         "\"threshold\": 2}"),
                       422, "params.threshold");
    job_expect_refusal(srv, "pseudo-label",
                       P("{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"test\", "
                         "\"as_split\": \"../x\"}"),
                       422, "params.as_split");
#undef P
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_evaluate),       HARNESS_MODELS_TEST(test_affinity),
        HARNESS_MODELS_TEST(test_pseudo_label),   HARNESS_MODELS_TEST(test_bad_params),
        HARNESS_MODELS_TEST(test_cancel),         HARNESS_MODELS_TEST(test_as_split_once),
        HARNESS_MODELS_TEST(test_kill9_evaluate), HARNESS_MODELS_TEST(test_kill9_pseudo_label),
        HARNESS_MODELS_TEST(test_kill9_affinity), HARNESS_MODELS_TEST(test_job_on_alias),
    };
    return harness_main(argc, argv, "job_kinds", tests, sizeof tests / sizeof tests[0]);
}
