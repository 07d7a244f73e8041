/* What a search checks and keeps besides its trials, against the real binary, on the colour model
 * (colour_model.h: each class's logit is its channel's mean) and colour_dataset.h's val split of
 * solid colours (each class's channel in [200, 230], the others in [20, 50]), so that a policy's
 * value follows by hand: FlipLR leaves a solid image as it is (all right, 1), Invert puts every
 * class's channel below the others (all wrong, 0). A space that gives audio policies is refused
 * before it runs; a saved policy a space names is the document it had at submission; a
 * RandAugment search reports its heatmap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colour_dataset.h"
#include "colour_model.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define CONFIG "{\"preprocess\": {}, \"labels\": \"labels.txt\"}"
/* The model's classes in channel order; the dataset's class c (class_names) is channel 2 - c. */
#define LABELS "red\ngreen\nblue\n"

#define FLIPLR "{\"op\": \"FlipLR\"}"
#define INVERT "{\"op\": \"Invert\"}"

/* A server on the colour model with the colour dataset (4 val images per class): its id into
 * ds. */
static struct server *start(void **state, char ds[64])
{
    colour_model_write("colour", CONFIG, LABELS);
    struct server *srv = harness_start_with_models(state, "\"job_threads\": 2");
    colour_dataset_make(srv, CLASSES, 1, ds);
    return srv;
}

/* A search's params text over space (JSON text) by algorithm (its name) for up to trials trials
 * on dataset ds. */
static char *params(const char *space, const char *algorithm, int trials, const char *ds)
{
    char *text = NULL;
    assert_true(asprintf(&text,
                         "{\"space\": %s, \"algorithm\": \"%s\", \"objective\": \"affinity\", "
                         "\"budget\": {\"trials\": %d}, \"dataset\": \"%s\", \"splits\": "
                         "{\"val\": \"val\"}, \"model\": \"colour\", \"seed\": 3}",
                         space, algorithm, trials, ds) > 0);
    return text;
}

/* Sends method path with body, which must answer status. */
static void send_expect(const struct server *srv, const char *method, const char *path,
                        const char *body, long status)
{
    struct http_response r;
    job_send(srv, method, path, body, NULL, &r);
    if (r.status != status)
        fail_msg("%s %s: %ld, expected %ld: %.*s", method, path, r.status, status, (int)r.body_size,
                 r.body);
    http_response_free(&r);
}

static json_t *json_of(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    return doc;
}

/* An image space runs; audio ones are refused at submission (422), naming params.space, where
 * the audio policy comes from and one of its ops, though their lowest point may be an image
 * policy. */
static void test_space_must_give_images(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, ds);
    static const struct {
        const char *space, *message;
    } cases[] = {
        {"{\"space\": \"specaugment\"}",
         "params.space: the space at each dimension's low gives a spectrogram policy (TimeWarp at "
         "/seq/0 of it); the affinity objective scores an image model, so its space must give "
         "image policies only"},
        {"{\"space\": \"gaugment\", \"domain\": \"audio\"}", "params.space: "},
        {"{\"p\": 0.5, \"do\": {\"$search\": {\"choice\": [" FLIPLR ", {\"op\": \"TimeMask\", "
         "\"T\": 5}]}}}",
         "params.space: /do at its option 1 gives a spectrogram policy (TimeMask at /do of it); "},
        {"{\"op\": \"Gain\", \"db\": {\"$search\": {\"uniform\": [-6, 6]}}}",
         "params.space: the space at each dimension's low gives a waveform policy (Gain at / of "
         "it); "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = params(cases[i].space, "grid", 100, ds);
        job_expect_refusal(srv, "search", text, 422, cases[i].message);
        free(text);
    }

    char *text =
        params("{\"p\": 0.5, \"do\": {\"$search\": {\"choice\": [" FLIPLR ", " INVERT "]}}}",
               "grid", 100, ds);
    job_submit(srv, "search", text, id);
    json_t *job = job_wait_state(srv, id, "succeeded");
    free(text);
    /* Not a RandAugment search: no heatmap. */
    assert_null(json_object_get(json_object_get(job, "result"), "heatmap"));
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/heatmap.png", id);
    http_get_expect(srv, path, 404);
    json_decref(job);
    harness_pass(state);
}

/* A saved policy the space names, deleted while the search runs, and the server killed with
 * kill -9 and started again: the resumed search still runs the document the name had at
 * submission (its run checks the params again, and would refuse a name saved no more). */
static void test_deleted_name_survives_kill9(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, ds), *second;
    send_expect(srv, "POST", "/v1/policies", "{\"name\": \"mine\", \"policy\": " FLIPLR "}", 201);
    /* Random over two options, long enough to be killed part-way. */
    char *text = params("{\"$search\": {\"choice\": [\"mine\", " INVERT "]}}", "random", 300, ds);
    job_submit(srv, "search", text, id);
    free(text);
    job_wait_progress(srv, id, 0.2);
    send_expect(srv, "DELETE", "/v1/policies/mine", NULL, 204);
    assert_int_equal(server_stop(srv, SIGKILL, 5000), 0);
    json_t *job = job_resume(state, srv, id, "resuming at trial", &second);
    const json_t *trials = json_object_get(json_object_get(job, "result"), "trials");
    json_t *fliplr = json_of(FLIPLR);
    size_t i;
    const json_t *row;
    json_array_foreach(trials, i, row)
    {
        const json_t *policy = json_object_get(row, "policy");
        assert_string_equal(json_string_value(json_object_get(row, "state")), "succeeded");
        assert_true(json_number_value(json_object_get(row, "value")) ==
                    (json_equal(policy, fliplr) ? 1 : 0));
    }
    json_decref(fliplr);
    json_decref(job);
    harness_pass(state);
}

/* A RandAugment grid: the result's heatmap has the grid's n and m and, in each cell, the value of
 * the one trial that ran there; heatmap.png is a chart. */
static void test_randaugment_heatmap(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, ds);
    char *text =
        params("{\"space\": \"randaugment\", \"n\": [1, 2], \"m\": [0, 9, 30]}", "grid", 100, ds);
    job_submit(srv, "search", text, id);
    free(text);
    json_t *job = job_wait_state(srv, id, "succeeded");
    const json_t *result = json_object_get(job, "result"),
                 *heatmap = json_object_get(result, "heatmap"),
                 *trials = json_object_get(result, "trials");
    json_t *axes = json_of("{\"n\": [1, 2], \"m\": [0, 9, 30]}");
    assert_true(json_equal(json_object_get(heatmap, "n"), json_object_get(axes, "n")));
    assert_true(json_equal(json_object_get(heatmap, "m"), json_object_get(axes, "m")));
    json_decref(axes);
    assert_int_equal(json_array_size(trials), 6);
    for (size_t i = 0; i < 6; i++) {
        const json_t *row = json_array_get(trials, i), *params = json_object_get(row, "params");
        json_int_t n = json_integer_value(json_object_get(params, "/n")),
                   m = json_integer_value(json_object_get(params, "/m"));
        const json_t *cell = json_array_get(
            json_array_get(json_object_get(heatmap, "value"), (size_t)(n - 1)), m == 0   ? 0
                                                                                : m == 9 ? 1
                                                                                         : 2);
        assert_true(json_number_value(cell) == json_number_value(json_object_get(row, "value")));
    }
    expect_chart_artifact(srv, id, "heatmap.png");
    json_decref(job);
    harness_pass(state);
}

/* A space naming a saved policy (as a choice's option, and inside a subtree) keeps the document
 * the name had at submission: replacing the saved policy afterwards changes neither the job's
 * params nor what its trials ran (FlipLR's value 1, not Invert's 0). */
static void test_saved_names_are_snapshot(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, ds);
    send_expect(srv, "POST", "/v1/policies", "{\"name\": \"mine\", \"policy\": " FLIPLR "}", 201);
    char *text =
        params("{\"$search\": {\"choice\": [\"mine\", {\"p\": 1, \"do\": \"mine\"}, " INVERT "]}}",
               "grid", 100, ds);
    job_submit(srv, "search", text, id);
    free(text);
    send_expect(srv, "PUT", "/v1/policies/mine", "{\"policy\": " INVERT "}", 200);
    json_t *job = job_wait_state(srv, id, "succeeded");
    json_t *expected = json_of("{\"$search\": {\"choice\": [" FLIPLR ", {\"p\": 1, \"do\": " FLIPLR
                               "}, " INVERT "]}}");
    assert_true(json_equal(json_object_get(json_object_get(job, "params"), "space"), expected));
    json_decref(expected);
    const json_t *trials = json_object_get(json_object_get(job, "result"), "trials");
    assert_int_equal(json_array_size(trials), 3);
    static const char *const policies[] = {FLIPLR, "{\"p\": 1, \"do\": " FLIPLR "}", INVERT};
    static const double values[] = {1, 1, 0};
    for (size_t i = 0; i < 3; i++) {
        json_t *row = json_array_get(trials, i), *want = json_of(policies[i]);
        assert_true(json_equal(json_object_get(row, "policy"), want));
        assert_true(json_number_value(json_object_get(row, "value")) == values[i]);
        json_decref(want);
    }
    json_decref(job);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_space_must_give_images),
        HARNESS_MODELS_TEST(test_saved_names_are_snapshot),
        HARNESS_MODELS_TEST(test_deleted_name_survives_kill9),
        HARNESS_MODELS_TEST(test_randaugment_heatmap),
    };
    return harness_main(argc, argv, "search_report", tests, sizeof tests / sizeof tests[0]);
}
