/* The job kind "self-training" against the real binary, on teachers and a dataset whose
 * pseudo-labels this test works out on its own:
 *
 *   the teachers  "colour" and "colour-sharp": the colour model (colour_model.h: the mean of each
 *                 channel times 4 as the logits of red, green and blue), the second reading its
 *                 pixels at scale 2/255 rather than 1/255, so its logits are twice the first's;
 *                 their ensemble's probability of a class is the mean of
 *                 softmax(4 rgb / 255) and softmax(8 rgb / 255) at that class's channel
 *   the dataset   colour_dataset.h's solid colours (12 a class in "train", 4 in "val"), with
 *                 "labeled" (2 a class of train) and its rest "unlabeled" derived by the API
 *
 * so each unlabeled image's pseudo-label, its confidence, whether the threshold keeps it and how
 * many copies balancing gives it (Noisy Student's rule: a class's K most confident, or each of
 * its n images floor(K / n) times and its K mod n most confident once more) follow from its file
 * name with a few lines of double arithmetic. The student, a small CNN, learns from the labeled
 * and the pseudo-labeled images: its step count says how many there were. Then: two rounds, the
 * second taught by the first's student, killed with kill -9 and resumed, register the same
 * models as an uninterrupted run, each round once; a cancel stops a job; bad params are refused,
 * naming the field. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "colour_dataset.h"
#include "colour_model.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define CONFIG "{\"preprocess\": {}, \"labels\": \"labels.txt\"}"
#define SHARP_CONFIG                                                                               \
    "{\"preprocess\": {\"scale\": 0.00784313725490196}, \"labels\": \"labels.txt\"}"
#define LABELS    "red\ngreen\nblue\n"
#define NOT_BLUE  "red\ngreen\nmagenta\n"
#define TRAIN_N   12 /* images a class in train */
#define LABELED_N 2  /* of them in "labeled" */
#define UNLABELED (CLASSES * (TRAIN_N - LABELED_N))
#define BATCH     6
#define THRESHOLD 0.945

static struct server *start(void **state, char ds[64])
{
    colour_model_write("colour", CONFIG, LABELS);
    colour_model_write("colour-sharp", SHARP_CONFIG, LABELS);
    colour_model_write("not-blue", CONFIG, NOT_BLUE);
    struct server *srv = harness_start_with_models(state, "\"job_threads\": 2");
    colour_dataset_make(srv, CLASSES, TRAIN_N, ds);
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/datasets/%s/splits", ds);
    job_send(srv, "POST", path,
             "{\"name\": \"labeled\", \"from\": \"train\", \"per_class\": 2, \"seed\": 3, "
             "\"rest\": \"unlabeled\"}",
             NULL, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    return srv;
}

/* The job's params: both teachers, a small CNN at SIDE px for `epochs`, with extra members. */
static void params_for(char *out, size_t size, const char *ds, int epochs, const char *output,
                       const char *extra)
{
    snprintf(out, size,
             "{\"teacher\": [\"colour\", \"colour-sharp\"], \"dataset\": \"%s\", \"split\": "
             "\"labeled\", \"unlabeled_split\": \"unlabeled\", \"val_split\": \"val\", "
             "\"model\": {\"arch\": \"small-cnn\", \"classes\": 3, \"size\": %d}, \"epochs\": %d, "
             "\"batch\": %d, \"optimizer\": {\"name\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9}, "
             "\"seed\": 1, \"output\": \"%s\"%s}",
             ds, SIDE, epochs, BATCH, output, extra);
}

/* ---- The expectations, in double ------------------------------------------------------------- */

struct expected {
    char file[64];
    int label;         /* a dataset class: blue, green, red */
    double confidence; /* the ensemble's probability of it */
    int kept;
    unsigned copies;
};

/* The dataset class of an image's file, "train/<class>/<i>.png", and i. */
static int class_of(const char *file, int *i)
{
    for (int c = 0; c < CLASSES; c++) {
        size_t n = strlen(class_names[c]);
        if (strncmp(file + 6, class_names[c], n) == 0 && file[6 + n] == '/') {
            *i = atoi(file + 7 + n);
            return c;
        }
    }
    fail_msg("no class in %s", file);
    return -1;
}

/* softmax(scale x rgb / 255)'s probability of channel k. */
static double channel_prob(const unsigned char rgb[3], double scale, int k)
{
    double sum = 0;
    for (int j = 0; j < 3; j++)
        sum += exp(scale * rgb[j] / 255.0);
    return exp(scale * rgb[k] / 255.0) / sum;
}

/* The ensemble's pseudo-label of file: dataset class c is the model class of its name, whose
 * channel is red 0, green 1, blue 2 (class_names: blue, green, red). */
static void expect_label(const char *file, struct expected *e)
{
    static const int channel[CLASSES] = {2, 1, 0};
    unsigned char rgb[3];
    int i = 0, c = class_of(file, &i);
    colour(c, i, rgb);
    snprintf(e->file, sizeof e->file, "%s", file);
    e->label = 0;
    e->confidence = -1;
    for (int d = 0; d < CLASSES; d++) {
        double p = (channel_prob(rgb, 4, channel[d]) + channel_prob(rgb, 8, channel[d])) / 2;
        if (p > e->confidence) e->confidence = p, e->label = d;
    }
    /* No confidence so near the threshold that float arithmetic could put it on the other side. */
    assert_true(fabs(e->confidence - THRESHOLD) > 1e-4);
    e->kept = e->confidence >= THRESHOLD;
    e->copies = 0; /* expect_copies gives the kept ones theirs */
}

/* Noisy Student's balancing over the kept images of each class, K a class. */
static void expect_copies(struct expected *e, size_t n, unsigned k, unsigned per_class[CLASSES])
{
    for (int c = 0; c < CLASSES; c++) {
        size_t order[UNLABELED], count = 0;
        for (size_t i = 0; i < n; i++)
            if (e[i].kept && e[i].label == c) order[count++] = i;
        /* Most confident first (insertion sort; ties keep the lower index first). */
        for (size_t a = 1; a < count; a++)
            for (size_t b = a; b > 0 && e[order[b]].confidence > e[order[b - 1]].confidence; b--) {
                size_t t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        per_class[c] = count ? k : 0;
        for (size_t r = 0; r < count; r++)
            e[order[r]].copies = count >= k ? r < k : (unsigned)(k / count + (r < k % count));
    }
}

/* The unlabeled split's files, from the dataset's image listing. */
static size_t unlabeled_files(const struct server *srv, const char *ds, struct expected *e)
{
    char path[256];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/datasets/%s/images?split=unlabeled&limit=200", ds);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r), *image;
    http_response_free(&r);
    size_t i, n = json_array_size(json_object_get(doc, "images"));
    assert_int_equal(n, UNLABELED);
    json_array_foreach(json_object_get(doc, "images"), i, image)
        expect_label(json_str(image, "source"), &e[i]);
    json_decref(doc);
    return n;
}

static char *artifact(const struct server *srv, const char *id, const char *name)
{
    char path[160];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id, name);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    char *text = strndup(r.body, r.body_size);
    http_response_free(&r);
    return text;
}

/* ---- Labelling, selection, one round --------------------------------------------------------- */

static void test_pseudo_labels_exact(void **state)
{
    char ds[64], params[2048], extra[128];
    struct server *srv = start(state, ds);
    struct expected e[UNLABELED];
    size_t n = unlabeled_files(srv, ds, e);
    /* K between the classes' kept counts, so one class is cut to its most confident and another
     * duplicated. */
    unsigned kept[CLASSES] = {0}, lo = UNLABELED, hi = 0, total_kept = 0;
    for (size_t i = 0; i < n; i++)
        kept[e[i].label] += (unsigned)e[i].kept;
    for (int c = 0; c < CLASSES; c++) {
        lo = kept[c] < lo ? kept[c] : lo;
        hi = kept[c] > hi ? kept[c] : hi;
        total_kept += kept[c];
    }
    unsigned k = (lo + hi) / 2, per_class[CLASSES];
    if (!(lo > 0 && lo < k && k < hi))
        fail_msg("kept per class %u..%u: pick another threshold", lo, hi);
    expect_copies(e, n, k, per_class);
    assert_true(total_kept < n); /* some dropped */

    snprintf(extra, sizeof extra, ", \"threshold\": %g, \"per_class\": %u, \"temperature\": 0.5",
             THRESHOLD, k);
    params_for(params, sizeof params, ds, 2, "st", extra);
    char id[32];
    job_submit(srv, "self-training", params, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");

    /* Every unlabeled image has its line: label, confidence, copies. */
    char *lines = artifact(srv, id, "round-1-pseudo-labels.jsonl"), *save = NULL;
    size_t seen = 0;
    for (char *line = strtok_r(lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *item = json_loads(line, 0, NULL);
        assert_non_null(item);
        size_t i = 0;
        while (i < n && strcmp(e[i].file, json_str(item, "file")) != 0)
            i++;
        if (i == n) fail_msg("%s is not an unlabeled image", json_str(item, "file"));
        assert_string_equal(json_str(item, "label"), class_names[e[i].label]);
        double confidence = json_number_value(json_object_get(item, "confidence"));
        if (fabs(confidence - e[i].confidence) > 1e-5)
            fail_msg("%s: confidence %.9f, expected %.9f", e[i].file, confidence, e[i].confidence);
        assert_int_equal(json_int(item, "copies"), e[i].copies);
        json_decref(item);
        seen++;
    }
    assert_int_equal(seen, n);
    free(lines);

    /* The round's summary; the student's steps count the labeled and pseudo-labeled images. */
    json_t *result = json_object_get(doc, "result");
    json_t *round = json_array_get(json_object_get(result, "rounds"), 0);
    json_t *pseudo = json_object_get(round, "pseudo");
    assert_int_equal(json_array_size(json_object_get(result, "rounds")), 1);
    assert_string_equal(json_str(result, "model"), "st-round1");
    assert_int_equal(json_int(pseudo, "unlabeled"), n);
    assert_int_equal(json_int(pseudo, "kept"), total_kept);
    assert_int_equal(json_int(pseudo, "dropped"), n - total_kept);
    unsigned images = 0, used = 0;
    for (size_t i = 0; i < n; i++)
        used += e[i].copies > 0;
    assert_int_equal(json_int(pseudo, "used"), used);
    assert_true(used < total_kept); /* the balancing cut some */
    for (int c = 0; c < CLASSES; c++) {
        json_t *row = json_array_get(json_object_get(pseudo, "per_class"), (size_t)c);
        assert_string_equal(json_str(row, "class"), class_names[c]);
        assert_int_equal(json_int(row, "images"), per_class[c]);
        images += per_class[c];
    }
    assert_int_equal(json_int(pseudo, "images"), images);
    /* Solid colours: every kept pseudo-label is the image's true class. */
    assert_true(json_number_value(json_object_get(pseudo, "accuracy")) == 1.0);
    assert_int_equal(json_int(round, "steps"), 2 * ((CLASSES * LABELED_N + images) / BATCH));
    double accuracy = json_number_value(json_object_get(round, "val_accuracy"));
    assert_true(accuracy >= 0 && accuracy <= 1);
    json_decref(doc);

    /* The student is registered, with its round's card. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/st-round1/training.json", harness_models_dir());
    json_t *card = json_load_file(path, 0, NULL);
    assert_non_null(card);
    json_t *self = json_object_get(card, "self_training");
    assert_int_equal(json_int(self, "round"), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(self, "teachers"), 1)),
                        "colour-sharp");
    assert_string_equal(json_str(card, "job"), id);
    json_decref(card);
    http_get_expect(srv, "/v1/models/st-round1", 200);
    job_expect_only_artifacts(srv, id);
    harness_pass(state);
}

/* ---- Rounds, kill -9 ------------------------------------------------------------------------- */

/* Two rounds of hard labels for `epochs` each, run whole as "whole", then submitted as "resumed"
 * (its id into id): the whole job's document. */
static json_t *whole_then_resumed(struct server *first, const char *ds, int epochs, char id[32])
{
    char params[2048];
    const char *extra = ", \"rounds\": 2, \"labels\": \"hard\", \"threshold\": 0.5";
    params_for(params, sizeof params, ds, epochs, "whole", extra);
    job_submit(first, "self-training", params, id);
    json_t *whole = job_wait_state(first, id, "succeeded");
    params_for(params, sizeof params, ds, epochs, "resumed", extra);
    job_submit(first, "self-training", params, id);
    return whole;
}

static void test_rounds_kill9_resume(void **state)
{
    char ds[64], id[32];
    struct server *first = start(state, ds);
    json_t *whole = whole_then_resumed(first, ds, 6, id);
    struct server *second;
    json_t *doc = job_kill_and_resume(state, first, id, 0.6, "resuming", &second);
    json_t *rounds = json_object_get(json_object_get(doc, "result"), "rounds");
    assert_int_equal(json_array_size(rounds), 2); /* neither lost nor doubled */
    /* Round 2's teacher is round 1's student. */
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_array_get(rounds, 1), "teachers"), 0)),
                        "resumed-round1");
    for (size_t k = 0; k < 2; k++) {
        json_t *a = json_array_get(json_object_get(json_object_get(whole, "result"), "rounds"), k);
        json_t *b = json_array_get(rounds, k);
        assert_true(json_equal(json_object_get(a, "pseudo"), json_object_get(b, "pseudo")));
        assert_true(json_number_value(json_object_get(a, "val_accuracy")) ==
                    json_number_value(json_object_get(b, "val_accuracy")));
    }
    expect_same_model("whole-round1", "resumed-round1");
    expect_same_model("whole-round2", "resumed-round2");
    job_expect_only_artifacts(first, id);
    json_decref(whole);
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* A job killed in round 1's training whose student is found registered by it at the restart (as
 * a kill after the registration and before the checkpoint leaves it) takes it as registered and
 * goes on to round 2, which it teaches: the same models as an uninterrupted run. */
static void test_resume_finds_student_registered(void **state)
{
    char ds[64], id[32];
    struct server *first = start(state, ds);
    json_decref(whole_then_resumed(first, ds, 8, id));
    job_wait_progress(first, id, 0.1); /* round 1's training, past 0.05, before 0.5 */
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    copy_model_as_registered("whole-round1", "resumed-round1", id);
    struct server *second;
    json_t *doc = job_resume(state, first, id,
                             "model resumed-round1 was registered by this job already", &second);
    assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "result"), "rounds")), 2);
    expect_same_model("whole-round2", "resumed-round2");
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    harness_pass(state);
}

/* "whole" (soft labels, two rounds) run whole, then the same job "resumed" (its id into id)
 * killed with kill -9 in round 1's training, past the checkpoint of its labels: whole's document,
 * its round 1 pseudo-labels artifact into *labels. */
static json_t *whole_then_killed(struct server *first, const char *ds, char id[32], char **labels)
{
    char whole_id[32], params[2048];
    params_for(params, sizeof params, ds, 8, "whole", ", \"rounds\": 2");
    job_submit(first, "self-training", params, whole_id);
    json_t *whole = job_wait_state(first, whole_id, "succeeded");
    *labels = artifact(first, whole_id, "round-1-pseudo-labels.jsonl");
    params_for(params, sizeof params, ds, 8, "resumed", ", \"rounds\": 2");
    job_submit(first, "self-training", params, id);
    job_wait_progress(first, id, 0.1); /* round 1's training, past 0.05, before 0.5 */
    assert_int_equal(server_stop(first, SIGKILL, 5000), 0);
    return whole;
}

/* The killed job resumed on a second server, the log saying needle: the same pseudo-labels
 * (artifact and summaries) and students as whole's, the labels files gone with the rounds. */
static void expect_resumed_as_whole(void **state, struct server *first, const char *id,
                                    const char *needle, json_t *whole, char *whole_labels)
{
    struct server *second;
    json_t *doc = job_resume(state, first, id, needle, &second);
    char *labels = artifact(second, id, "round-1-pseudo-labels.jsonl");
    assert_string_equal(labels, whole_labels);
    json_t *rounds = json_object_get(json_object_get(doc, "result"), "rounds");
    json_t *whole_rounds = json_object_get(json_object_get(whole, "result"), "rounds");
    assert_int_equal(json_array_size(rounds), 2);
    for (size_t k = 0; k < 2; k++)
        assert_true(json_equal(json_object_get(json_array_get(rounds, k), "pseudo"),
                               json_object_get(json_array_get(whole_rounds, k), "pseudo")));
    expect_same_model("whole-round1", "resumed-round1");
    expect_same_model("whole-round2", "resumed-round2");
    job_expect_only_artifacts(first, id);
    free(labels);
    free(whole_labels);
    json_decref(whole);
    json_decref(doc);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
}

/* The resumed round reads the labels its first attempt saved, without its teachers: they are
 * gone from the repository at the restart, so a round that ran them again would fail. */
static void test_resume_keeps_labels(void **state)
{
    char ds[64], id[32], path[PATH_MAX], gone[PATH_MAX], *labels;
    struct server *first = start(state, ds);
    json_t *whole = whole_then_killed(first, ds, id, &labels);
    static const char *const teachers[] = {"colour", "colour-sharp"};
    for (size_t t = 0; t < 2; t++) {
        snprintf(path, sizeof path, "%s/%s", harness_models_dir(), teachers[t]);
        snprintf(gone, sizeof gone, "%s/.gone-%s", harness_models_dir(), teachers[t]);
        assert_int_equal(rename(path, gone), 0);
    }
    expect_resumed_as_whole(state, first, id,
                            "round 1: the teachers' labels from round-1-labels-a1.bin", whole,
                            labels);
    harness_pass(state);
}

/* A labels file cut short (a damaged disk: a write the kill interrupted is never named by a
 * checkpoint) is not read: the teachers label again, the same labels. */
static void test_resume_relabels_damaged_file(void **state)
{
    char ds[64], id[32], path[PATH_MAX + 64], *labels;
    struct server *first = start(state, ds);
    json_t *whole = whole_then_killed(first, ds, id, &labels);
    snprintf(path, sizeof path, "%s/jobs/%s/round-1-labels-a1.bin", first->data_dir, id);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 4), 0);
    expect_resumed_as_whole(state, first, id,
                            "round-1-labels-a1.bin does not hold the labels of the 30 images of "
                            "split unlabeled in 3 classes; the teachers label again",
                            whole, labels);
    harness_pass(state);
}

/* A cancel stops a long job in its student's training: no student is registered. */
static void test_cancel(void **state)
{
    char ds[64], params[2048];
    struct server *srv = start(state, ds);
    params_for(params, sizeof params, ds, 100000, "never", ", \"rounds\": 3");
    job_cancel_running(srv, "self-training", params);
    struct http_response r;
    http_get(srv, "/v1/models/never-round1", &r);
    assert_status(&r, 404);
    http_response_free(&r);
    harness_pass(state);
}

/* ---- Noise ----------------------------------------------------------------------------------- */

/* Noisy Student's student: a ResNet-20 with dropout and stochastic depth for two rounds. Round
 * 1's student, registered, teaches round 2: the model written for inference loads in the
 * executor (no StochasticDepth node, which only the training engine runs). */
static void test_noisy_student(void **state)
{
    char ds[64], params[2048], id[32];
    struct server *srv = start(state, ds);
    params_for(params, sizeof params, ds, 1, "noisy", ", \"rounds\": 2, \"threshold\": 0.5");
    json_t *doc = json_loads(params, 0, NULL);
    assert_non_null(doc);
    json_object_set_new(
        doc, "model",
        json_pack("{s:s, s:i, s:i}", "arch", "resnet-20", "classes", CLASSES, "size", SIDE));
    json_object_set_new(doc, "dropout", json_real(0.5));
    json_object_set_new(doc, "stochastic_depth", json_real(0.2));
    char *body = json_dumps(doc, 0);
    job_submit(srv, "self-training", body, id);
    free(body);
    json_decref(doc);
    json_t *done = job_wait_state(srv, id, "succeeded");
    json_t *result = json_object_get(done, "result");
    assert_int_equal(json_array_size(json_object_get(result, "rounds")), 2);
    assert_string_equal(json_str(result, "model"), "noisy-round2");
    json_decref(done);
    for (int k = 1; k <= 2; k++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/noisy-round%d/model.onnx", harness_models_dir(), k);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char bytes[1 << 22];
        size_t n = fread(bytes, 1, sizeof bytes, f);
        fclose(f);
        assert_true(n > 0 && n < sizeof bytes);
        assert_null(memmem(bytes, n, "StochasticDepth", 15));
        assert_non_null(memmem(bytes, n, "drop_path", 9)); /* its Identity nodes */
        snprintf(path, sizeof path, "/v1/models/noisy-round%d", k);
        http_get_expect(srv, path, 200);
    }
    harness_pass(state);
}

/* ---- Refusals -------------------------------------------------------------------------------- */

static void test_bad_params(void **state)
{
    char ds[64], params[2048];
    colour_model_write("taken-round2", CONFIG, LABELS);
    struct server *srv = start(state, ds);
    static const struct {
        const char *extra;
        long status;
        const char *needle;
    } cases[] = {
        {", \"threshold\": 1.5", 422, "params.threshold"},
        {", \"per_class\": 0", 422, "params.per_class"},
        {", \"rounds\": 11", 422, "params.rounds"},
        {", \"labels\": \"fuzzy\"", 422, "params.labels"},
        {", \"labels\": \"hard\", \"temperature\": 2", 422, "params.temperature"},
        {", \"temperature\": 0", 422, "params.temperature"},
        {", \"dropout\": 1", 422, "params.dropout: must be a number in [0, 1)"},
        {", \"dropout\": -0.1", 422, "params.dropout: must be a number in [0, 1)"},
        {", \"dropout\": \"half\"", 422, "params.dropout: must be a number in [0, 1)"},
        {", \"stochastic_depth\": 1.5", 422, "params.stochastic_depth: must be a number in [0, 1)"},
        {", \"stochastic_depth\": 0.2", 422,
         "params.stochastic_depth: the student small-cnn has no residual blocks"},
        {", \"dropout\": 0.5, \"model\": {\"arch\": \"small-cnn\", \"classes\": 3, \"dropout\": "
         "0.1}",
         422, "params.model.dropout: the student's dropout is params.dropout"},
        {", \"model\": {\"arch\": \"small-cnn\", \"classes\": 3, \"stochastic_depth\": 0.1}", 422,
         "params.model: model: 'stochastic_depth' drops residual blocks, and small-cnn has none"},
        {", \"unlabeled_split\": \"train\"", 422, "params.unlabeled_split: split train shares"},
        {", \"unlabeled_split\": \"nosuch\"", 422, "params.unlabeled_split"},
        {", \"teacher\": \"nosuch\"", 404, "params.teacher: no such model: nosuch"},
        {", \"teacher\": [\"colour\", \"nosuch\"]", 404, "params.teacher/1: no such model"},
        {", \"teacher\": [\"colour\", \"not-blue\"]", 422, "params.teacher/1: class"},
        {", \"teacher\": []", 422, "params.teacher"},
        {", \"model\": \"colour\"", 422, "params.model: the student is a zoo model"},
        {", \"val_split\": null", 422, "params.val_split"},
        {", \"batch\": 7", 422, "params.batch"},
        {", \"rounds\": 2, \"output\": \"taken\"", 409,
         "params.output: a model named taken-round2"},
        {", \"typo\": 1", 422, "params.typo"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        params_for(params, sizeof params, ds, 1, "st", "");
        /* The case's members replace the defaults: parsed and merged. */
        json_t *doc = json_loads(params, 0, NULL), *over;
        char text[256];
        snprintf(text, sizeof text, "{%s}", cases[i].extra + 2);
        over = json_loads(text, 0, NULL);
        assert_non_null(over);
        json_object_update(doc, over);
        if (json_is_null(json_object_get(doc, "val_split"))) json_object_del(doc, "val_split");
        char *body = json_dumps(doc, 0);
        job_expect_refusal(srv, "self-training", body, cases[i].status, cases[i].needle);
        free(body);
        json_decref(over);
        json_decref(doc);
    }
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_pseudo_labels_exact),
        HARNESS_MODELS_TEST(test_rounds_kill9_resume),
        HARNESS_MODELS_TEST(test_resume_finds_student_registered),
        HARNESS_MODELS_TEST(test_resume_keeps_labels),
        HARNESS_MODELS_TEST(test_resume_relabels_damaged_file),
        HARNESS_MODELS_TEST(test_cancel),
        HARNESS_MODELS_TEST(test_noisy_student),
        HARNESS_MODELS_TEST(test_bad_params),
    };
    return harness_main(argc, argv, "self_training_job", tests, sizeof tests / sizeof tests[0]);
}
