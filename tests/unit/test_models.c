/* The model repository on the tiny fixture model (x [N,3,4,4] -> probs [N,3], features [N,2]):
 * config.json's accessors, references across removal, and the gathering of dynamic batching,
 * whose batched results must equal the same calls run alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "models.h"

#define ROW      (3 * 4 * 4)
#define MAX_ROWS 4

static const char *fixture; /* the tiny model's folder */
static char repo[64];

static void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void shell(const char *fmt, ...)
{
    char command[PATH_MAX * 3];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(command, sizeof command, fmt, ap);
    va_end(ap);
    if (system(command) != 0) fail_msg("failed: %s", command);
}

/* repo/name holding the tiny model and config (NULL: none). */
static void add_model(const char *name, const char *config)
{
    shell("mkdir '%s/%s' && cp '%s/model.onnx' '%s/%s/'", repo, name, fixture, repo, name);
    if (!config) return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/config.json", repo, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(config, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    snprintf(repo, sizeof repo, "/tmp/models-unit-XXXXXX");
    return mkdtemp(repo) ? 0 : -1;
}

static int teardown(void **state)
{
    shell("rm -rf '%s'", repo);
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Input element j of row n. */
static float input_value(int n, int j)
{
    return (float)sin(0.37 * n + 0.11 * j);
}

/* One model_infer call on rows first..first+rows-1. */
struct call {
    struct model *m;
    int first, rows;
    double start_after; /* seconds to sleep before calling */
    float *outputs[2];
    struct nn_tensor_info info[2];
    int rc;
};

static void *run_call(void *arg)
{
    struct call *c = arg;
    usleep((useconds_t)(c->start_after * 1e6));
    float *x = malloc((size_t)c->rows * ROW * sizeof *x);
    assert_non_null(x);
    for (int n = 0; n < c->rows; n++)
        for (int j = 0; j < ROW; j++)
            x[n * ROW + j] = input_value(c->first + n, j);
    struct nn_tensor_info shape = {"x", NN_FLOAT, 4, {c->rows, 3, 4, 4}};
    const float *inputs[] = {x};
    struct eng_error err = {0};
    c->rc = model_infer(c->m, inputs, &shape, c->outputs, c->info, &err);
    if (c->rc != 0) fprintf(stderr, "model_infer: %s\n", err.message);
    free(x);
    return NULL;
}

static void free_call(struct call *c)
{
    free(c->outputs[0]);
    free(c->outputs[1]);
}

/* Fails unless c's outputs are those of its rows run alone on the unbatched model. */
static void check_alone(struct model *solo, struct call *c)
{
    assert_int_equal(c->rc, 0);
    struct call alone = {.m = solo, .first = c->first, .rows = c->rows};
    run_call(&alone);
    assert_int_equal(alone.rc, 0);
    for (int k = 0; k < 2; k++) {
        assert_string_equal(c->info[k].name, alone.info[k].name);
        assert_int_equal(c->info[k].rank, 2);
        assert_int_equal(c->info[k].dims[0], c->rows);
        assert_int_equal(c->info[k].dims[1], alone.info[k].dims[1]);
        for (int64_t e = 0; e < c->rows * c->info[k].dims[1]; e++)
            if (fabsf(c->outputs[k][e] - alone.outputs[k][e]) > 1e-6f)
                fail_msg("output %s element %lld: batched %g, alone %g", c->info[k].name,
                         (long long)e, c->outputs[k][e], alone.outputs[k][e]);
    }
    free_call(&alone);
}

/* Runs the calls on their own threads and returns the seconds they took. */
static double run_concurrently(struct call *calls, size_t n)
{
    pthread_t threads[8];
    double started = now();
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, run_call, &calls[i]), 0);
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    return now() - started;
}

static struct models *open_repo(void)
{
    struct eng_error err = {0};
    struct models *ms = models_open(repo, NULL, &err);
    if (!ms) fail_msg("models_open: %s", err.message);
    return ms;
}

/* A dot-folder an upload or removal left a day ago is removed at start-up; a younger one (another
 * server's upload in progress, in a shared models_dir) and other dot-folders stay. */
static void test_old_leftovers_removed(void **state)
{
    add_model("kept", NULL);
    shell("mkdir -p '%s/.upload-a-123456/x' '%s/.deleted-b-654321' '%s/.upload-c-111111' "
          "'%s/.cache' && touch -d '2 days ago' '%s/.upload-a-123456' '%s/.deleted-b-654321' "
          "'%s/.cache'",
          repo, repo, repo, repo, repo, repo, repo);
    struct models *ms = open_repo();
    char path[256];
    struct stat st;
    const char *gone[] = {".upload-a-123456", ".deleted-b-654321"};
    const char *stay[] = {".upload-c-111111", ".cache", "kept/model.onnx"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", repo, gone[i]);
        assert_int_equal(stat(path, &st), -1);
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", repo, stay[i]);
        assert_int_equal(stat(path, &st), 0);
    }
    struct model *kept = models_acquire(ms, "kept");
    assert_non_null(kept);
    model_release(kept);
    models_close(ms);
}

/* A rescan serves a folder copied in, reloads a model whose config changed (a reference to the old
 * one stays usable), drops one whose folder went, and then finds nothing more to do. */
static void test_rescan(void **state)
{
    add_model("changed", NULL);
    add_model("gone", NULL);
    add_model("same", "{\"max_batch\": 2}");
    struct models *ms = open_repo();
    struct model *before = models_acquire(ms, "changed"), *same = models_acquire(ms, "same");
    assert_int_equal(model_max_batch(before), 0);
    add_model("new", NULL);
    shell("rm -r '%s/gone' && printf '{\"max_batch\": 5}' > '%s/changed/config.json'", repo, repo);
    struct models_rescan r = models_rescan(ms);
    assert_int_equal(r.added, 1);
    assert_int_equal(r.reloaded, 1);
    assert_int_equal(r.dropped, 1);
    struct model *added = models_acquire(ms, "new"), *gone = models_acquire(ms, "gone"),
                 *same_now = models_acquire(ms, "same"), *changed = models_acquire(ms, "changed");
    assert_non_null(added);
    assert_null(gone);
    assert_ptr_equal(same_now, same);
    assert_int_equal(model_max_batch(changed), 5);
    model_release(added);
    model_release(same_now);
    model_release(changed);
    assert_int_equal(model_max_batch(before), 0);
    assert_string_equal(model_name(before), "changed");
    model_release(before);
    r = models_rescan(ms);
    assert_int_equal(r.added + r.reloaded + r.dropped, 0);
    model_release(same);
    models_close(ms);
}

/* Calls that fit together run as one batch, which closes as soon as it is full. */
static void test_batch_gathers_until_full(void **state)
{
    add_model("solo", NULL);
    add_model("batched", "{\"max_batch\": 4, \"dynamic_batching\": {\"max_delay_us\": 5000000}}");
    struct models *ms = open_repo();
    struct model *solo = models_acquire(ms, "solo"), *batched = models_acquire(ms, "batched");
    assert_int_equal(model_batch_delay_us(batched), 5000000);
    assert_int_equal(model_batch_delay_us(solo), -1);
    struct call calls[] = {{batched, 0, 1, 0, {0}, {{0}}, 0},
                           {batched, 1, 2, 0, {0}, {{0}}, 0},
                           {batched, 3, 1, 0, {0}, {{0}}, 0}};
    double took = run_concurrently(calls, 3);
    assert_true(took < 4.0); /* full at 4 rows: no waiting for the delay */
    for (size_t i = 0; i < 3; i++) {
        check_alone(solo, &calls[i]);
        free_call(&calls[i]);
    }
    struct model_stats stats = model_stats(batched);
    assert_int_equal(stats.requests, 3);
    assert_int_equal(stats.executions, 1);
    model_release(solo);
    model_release(batched);
    models_close(ms);
}

/* A call whose rows do not fit what is left waits for the next batch, which gathers for its own
 * delay; a batch that does not fill runs when its delay has passed. */
static void test_batch_too_large_waits(void **state)
{
    add_model("solo", NULL);
    add_model("batched", "{\"max_batch\": 4, \"dynamic_batching\": {\"max_delay_us\": 300000}}");
    struct models *ms = open_repo();
    struct model *solo = models_acquire(ms, "solo"), *batched = models_acquire(ms, "batched");
    /* 3 rows open the batch; 2 rows come 50 ms later and do not fit. */
    struct call calls[] = {{batched, 0, 3, 0, {0}, {{0}}, 0}, {batched, 3, 2, 0.05, {0}, {{0}}, 0}};
    double took = run_concurrently(calls, 2);
    assert_true(took >= 0.6); /* two delays, one after the other */
    for (size_t i = 0; i < 2; i++) {
        check_alone(solo, &calls[i]);
        free_call(&calls[i]);
    }
    struct model_stats stats = model_stats(batched);
    assert_int_equal(stats.requests, 2);
    assert_int_equal(stats.executions, 2);
    /* A call of max_batch rows has nothing to wait for. */
    struct call full = {batched, 0, MAX_ROWS, 0, {0}, {{0}}, 0};
    assert_true(run_concurrently(&full, 1) < 0.3);
    check_alone(solo, &full);
    free_call(&full);
    assert_int_equal(model_stats(batched).executions, 3);
    model_release(solo);
    model_release(batched);
    models_close(ms);
}

static void test_config_accessors(void **state)
{
    add_model("configured",
              "{\"input\": \"x\", \"output\": \"features\", \"output_kind\": \"probabilities\", "
              "\"layout\": \"NCHW\", \"max_batch\": 3, \"labels\": \"names.txt\", \"preprocess\": "
              "{\"resize\": 5, \"crop\": [4, 3], \"interpolation\": \"nearest\", \"scale\": 0.5, "
              "\"mean\": [0.1, 0.2, 0.3], \"std\": [1, 2, 4], \"channel_order\": \"BGR\", "
              "\"color\": \"srgb\"}}");
    shell("printf 'left\\r\\nright\\n' > '%s/configured/names.txt'", repo);
    add_model("defaults", NULL);
    struct models *ms = open_repo();
    struct model *m = models_acquire(ms, "configured");
    assert_non_null(m);
    assert_null(model_reason(m));
    assert_string_equal(nn_graph_output(model_graph(m), model_scores_output(m))->name, "features");
    assert_int_equal(model_scores_are_probabilities(m), 1);
    assert_int_equal(model_max_batch(m), 3);
    assert_int_equal(model_label_count(m), 2);
    assert_string_equal(model_label(m, 0), "left");
    assert_string_equal(model_label(m, 1), "right");
    assert_null(model_label(m, 2));
    const struct classify_preprocess *p = model_preprocess(m);
    assert_non_null(p);
    assert_int_equal(p->resize, 5);
    assert_int_equal(p->crop_height, 4);
    assert_int_equal(p->crop_width, 3);
    assert_int_equal(p->bilinear, 0);
    assert_true(p->scale == 0.5f);
    assert_true(p->mean[0] == 0.1f && p->mean[1] == 0.2f && p->mean[2] == 0.3f);
    assert_true(p->std[0] == 1.0f && p->std[1] == 2.0f && p->std[2] == 4.0f);
    assert_int_equal(p->bgr, 1);
    assert_int_equal(p->nhwc, 0);
    assert_int_equal(p->channels, 3);
    assert_int_equal(p->color, IMG_COLOR_SRGB);
    model_release(m);
    m = models_acquire(ms, "defaults");
    assert_null(model_preprocess(m));
    assert_string_equal(nn_graph_output(model_graph(m), model_scores_output(m))->name, "probs");
    assert_int_equal(model_scores_are_probabilities(m), 0);
    assert_int_equal(model_label_count(m), 0);
    assert_int_equal(model_max_batch(m), 0);
    model_release(m);
    models_close(ms);
}

/* The default preprocessing: bilinear, 1/255, mean 0, std 1, RGB, no resize or crop, colours
 * as stored. */
static void test_preprocess_defaults(void **state)
{
    add_model("pre", "{\"preprocess\": {}}");
    struct models *ms = open_repo();
    struct model *m = models_acquire(ms, "pre");
    const struct classify_preprocess *p = model_preprocess(m);
    assert_non_null(p);
    assert_int_equal(p->resize, 0);
    assert_int_equal(p->crop_height, 0);
    assert_int_equal(p->bilinear, 1);
    assert_true(p->scale == 1.0f / 255);
    assert_true(p->mean[0] == 0 && p->mean[2] == 0 && p->std[0] == 1 && p->std[2] == 1);
    assert_int_equal(p->bgr, 0);
    assert_int_equal(p->channels, 3);
    assert_int_equal(p->color, IMG_COLOR_KEEP);
    model_release(m);
    models_close(ms);
}

/* A removed model stays usable by whoever holds a reference, and is freed on the last release
 * (the sanitizer build checks that nothing leaks or is used after it is freed). */
static void test_reference_outlives_removal(void **state)
{
    add_model("held", NULL);
    struct models *ms = open_repo();
    struct model *m = models_acquire(ms, "held");
    assert_non_null(m);
    struct eng_error err = {0};
    assert_int_equal(models_remove(ms, "held", &err), 0);
    assert_null(models_acquire(ms, "held"));
    assert_int_equal(models_remove(ms, "held", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    struct stat st;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/held", repo);
    assert_int_equal(stat(path, &st), -1);
    struct call c = {m, 0, 1, 0, {0}, {{0}}, 0};
    run_call(&c);
    assert_int_equal(c.rc, 0);
    assert_string_equal(model_name(m), "held");
    free_call(&c);
    model_release(m);
    models_close(ms);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TINY_MODEL_DIR\n", argv[0]);
        return 2;
    }
    fixture = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_old_leftovers_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rescan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_gathers_until_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_too_large_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_accessors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preprocess_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reference_outlives_removal, setup, teardown),
    };
    return cmocka_run_group_tests_name("models", tests, NULL, NULL);
}
