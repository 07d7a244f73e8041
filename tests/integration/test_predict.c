/* POST /v1/predict and POST /v1/pseudo-label against the real binary, with a model repository of
 * the classifiers tests/parity/gen_predict.py builds. Expected probabilities come from that
 * script's torchvision transforms and torch, not from our engine; the engine's codec only makes
 * the sRGB twin of the tagged photo. */
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
#include "image/codec.h"

#define TOLERANCE 1e-4

static const char *const labels[] = {"apple", "banana", "cherry", "date", "elderberry"};

/* Fills the test's repository: the four fixture models; broken (garbage bytes); plain (tiny-cnn
 * without its config.json, so without preprocessing). */
static void make_repository(void)
{
    const char *repo_dir = harness_models_dir();
    char command[PATH_MAX * 3];
    snprintf(command, sizeof command,
             "cd '%s/tests/parity/fixtures/predict' && cp -r tiny-cnn tiny-linear three-class "
             "tiny-cnn-srgb '%s/' && mkdir '%s/broken' '%s/plain' && "
             "printf garbage > '%s/broken/model.onnx' && "
             "cp tiny-cnn/model.onnx '%s/plain/'",
             harness_source_dir(), repo_dir, repo_dir, repo_dir, repo_dir, repo_dir);
    if (system(command) != 0) fail_msg("cannot make the model repository: %s", command);
}

/* Starts a server on the test's repository, filled, with extra settings (a JSON object's members,
 * or ""). */
static struct server *start(void **state, const char *extra)
{
    make_repository();
    return harness_start_with_models(state, extra);
}

/* The two fixture images, in expected.json's order. */
struct images {
    char *data[2];
    size_t size[2];
};

static void load_images(struct images *im)
{
    im->data[0] = harness_read_source_file("tests/parity/fixtures/predict/photo.png", &im->size[0]);
    im->data[1] = harness_read_source_file("tests/parity/fixtures/predict/gray.png", &im->size[1]);
}

static void free_images(struct images *im)
{
    free(im->data[0]);
    free(im->data[1]);
}

/* Posts the images as multipart parts named image, with extra form fields (name, value pairs,
 * NULL-terminated). */
static void post_images(const struct server *srv, const char *path, const struct images *im,
                        int count, const char *const *fields, struct http_response *r)
{
    struct http_part parts[16];
    size_t n = 0;
    for (int i = 0; i < count; i++)
        parts[n++] =
            (struct http_part){"image", "image.png", "image/png", im->data[i % 2], im->size[i % 2]};
    for (; fields && fields[0]; fields += 2)
        parts[n++] = (struct http_part){fields[0], NULL, NULL, fields[1], strlen(fields[1])};
    struct http_request req = {.path = path, .parts = parts, .part_count = n};
    http_send(srv, &req, r);
}

static double json_num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) fail_msg("%s is not a number", key);
    return json_number_value(v);
}

/* The label a result holds: the fixture's text when the model has labels, else null. */
static void assert_label(json_t *item, int has_labels)
{
    json_t *label = json_object_get(item, "label");
    if (has_labels)
        assert_string_equal(json_string_value(label), labels[json_int(item, "index")]);
    else
        assert_true(json_is_null(label));
}

/* result's predictions are the k most probable classes of expected (probabilities by class, from
 * torchvision), in its order, with its probabilities within TOLERANCE. */
static void assert_predictions(json_t *result, json_t *expected, size_t k, int has_labels)
{
    json_t *predictions = json_object_get(result, "predictions");
    assert_int_equal(json_array_size(predictions), k);
    for (size_t i = 0; i < k; i++) {
        json_t *item = json_array_get(predictions, i);
        json_int_t index = json_int(item, "index");
        double prob = json_num(item, "prob");
        double want = json_number_value(json_array_get(expected, (size_t)index));
        if (fabs(prob - want) > TOLERANCE)
            fail_msg("class %lld: prob %.7f, torchvision %.7f", (long long)index, prob, want);
        size_t above = 0; /* the fixture has no near ties, so ranks are exact */
        for (size_t c = 0; c < json_array_size(expected); c++)
            above += json_number_value(json_array_get(expected, c)) > want;
        assert_int_equal(above, i);
        assert_label(item, has_labels);
    }
}

static void test_predict_parity(void **state)
{
    struct server *srv = start(state, "");
    json_t *exp = harness_load_source_json("tests/parity/fixtures/predict/expected.json");
    json_t *models = json_object_get(exp, "models");
    struct images im;
    load_images(&im);
    struct http_response r;
    /* Both images in one request: they share the input shape, so one batch. */
    post_images(srv, "/v1/predict?model=tiny-cnn&top_k=5", &im, 2, NULL, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "model"), "tiny-cnn");
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 2);
    for (int i = 0; i < 2; i++) {
        json_t *result = json_array_get(results, (size_t)i);
        assert_int_equal(json_int(result, "input"), i);
        const char *image = json_string_value(json_array_get(json_object_get(exp, "images"), i));
        assert_predictions(result, json_object_get(json_object_get(models, "tiny-cnn"), image), 5,
                           1);
    }
    json_decref(doc);
    http_response_free(&r);
    /* NHWC, BGR, nearest, a non-square crop, probabilities out and no labels; the raw body and
     * the default top_k (5). */
    for (int i = 0; i < 2; i++) {
        http_post(srv, "/v1/predict?model=tiny-linear", "image/png", im.data[i], im.size[i], &r);
        assert_status(&r, 200);
        doc = http_json(&r);
        const char *image = json_string_value(json_array_get(json_object_get(exp, "images"), i));
        assert_predictions(json_array_get(json_object_get(doc, "results"), 0),
                           json_object_get(json_object_get(models, "tiny-linear"), image), 5, 0);
        json_decref(doc);
        http_response_free(&r);
    }
    /* top_k as a form field. */
    post_images(srv, "/v1/predict", &im, 1,
                (const char *const[]){"model", "tiny-cnn", "top_k", "2", NULL}, &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    assert_predictions(json_array_get(json_object_get(doc, "results"), 0),
                       json_object_get(json_object_get(models, "tiny-cnn"), "photo.png"), 2, 1);
    json_decref(doc);
    http_response_free(&r);
    free_images(&im);
    json_decref(exp);
    harness_pass(state);
}

/* The "results" of a 200 answer to the image posted raw (content_type) to path (the caller owns
 * them). */
static json_t *results_of(const struct server *srv, const char *path, const char *content_type,
                          const void *data, size_t size)
{
    struct http_response r;
    http_post(srv, path, content_type, data, size, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *results = json_incref(json_object_get(doc, "results"));
    json_decref(doc);
    http_response_free(&r);
    return results;
}

/* A photo with an Adobe RGB profile, as cameras write: classified from the values stored, as
 * torchvision classifies Pillow's decode of it, by one model and by a pseudo-label ensemble. */
static void test_predict_tagged_photo(void **state)
{
    struct server *srv = start(state, "");
    json_t *exp = harness_load_source_json("tests/parity/fixtures/predict/expected.json");
    assert_string_equal(json_string_value(json_array_get(json_object_get(exp, "images"), 2)),
                        "rocket.jpg");
    size_t size;
    char *jpeg = harness_read_source_file("tests/parity/fixtures/predict/rocket.jpg", &size);
    static const char *const models[] = {"tiny-cnn", "tiny-linear"};
    for (size_t m = 0; m < 2; m++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/predict?model=%s", models[m]);
        json_t *results = results_of(srv, path, "image/jpeg", jpeg, size);
        json_t *want = json_object_get(json_object_get(json_object_get(exp, "models"), models[m]),
                                       "rocket.jpg");
        assert_predictions(json_array_get(results, 0), want, 5, m == 0);
        json_decref(results);
    }
    json_t *results = results_of(srv, "/v1/pseudo-label?model=tiny-cnn&model=tiny-linear&views=1",
                                 "image/jpeg", jpeg, size);
    json_t *got = json_array_get(results, 0);
    json_t *want = json_object_get(json_object_get(exp, "pseudo_label"), "rocket.jpg");
    assert_int_equal(json_int(got, "index"), json_int(want, "index"));
    assert_true(fabs(json_num(got, "confidence") - json_num(want, "confidence")) < TOLERANCE);
    assert_true(fabs(json_num(got, "entropy") - json_num(want, "entropy")) < TOLERANCE);
    json_decref(results);
    free(jpeg);
    json_decref(exp);
    harness_pass(state);
}

/* color=srgb classifies the photo converted to sRGB: the same answer as the converted pixels
 * sent as a PNG without a profile. A model whose preprocess says "srgb" does so by default, and a
 * request's color overrides the model's either way. */
static void test_predict_color(void **state)
{
    struct server *srv = start(state, "");
    size_t size, png_size;
    char *jpeg = harness_read_source_file("tests/parity/fixtures/predict/rocket.jpg", &size);
    const struct img_decode_options srgb = {0, 0, IMG_COLOR_SRGB};
    struct eng_error err = {0};
    struct img *converted = img_decode(jpeg, size, &srgb, NULL, &err);
    assert_non_null(converted);
    void *png = NULL;
    assert_int_equal(img_encode(converted, IMG_PNG, 0, NULL, &png, &png_size, &err), 0);
    img_free(converted);

    json_t *kept = results_of(srv, "/v1/predict?model=tiny-cnn", "image/jpeg", jpeg, size);
    json_t *as_srgb = results_of(srv, "/v1/predict?model=tiny-cnn", "image/png", png, png_size);
    assert_false(json_equal(kept, as_srgb));
    static const struct {
        const char *path;
        int srgb;
    } cases[] = {
        {"/v1/predict?model=tiny-cnn&color=srgb", 1},
        {"/v1/predict?model=tiny-cnn-srgb", 1},
        {"/v1/predict?model=tiny-cnn-srgb&color=keep", 0},
        {"/v1/predict?model=tiny-cnn&color=keep", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *results = results_of(srv, cases[i].path, "image/jpeg", jpeg, size);
        if (!json_equal(results, cases[i].srgb ? as_srgb : kept))
            fail_msg("%s: not the answer to the %s", cases[i].path,
                     cases[i].srgb ? "converted pixels" : "stored values");
        json_decref(results);
    }
    struct http_response r;
    http_post(srv, "/v1/predict?model=tiny-cnn&color=adobe", "image/jpeg", jpeg, size, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "color: must be keep");
    http_response_free(&r);
    /* An ensemble decodes once: its models must agree, or the request must choose. */
    http_post(srv, "/v1/pseudo-label?model=tiny-cnn&model=tiny-cnn-srgb", "image/jpeg", jpeg, size,
              &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "models tiny-cnn and tiny-cnn-srgb decode colours differently");
    http_response_free(&r);
    json_t *results =
        results_of(srv, "/v1/pseudo-label?model=tiny-cnn&model=tiny-cnn-srgb&color=srgb&views=1",
                   "image/jpeg", jpeg, size);
    json_t *votes = json_object_get(json_array_get(results, 0), "models");
    /* Both models are tiny-cnn, on the same converted pixels: the same vote. */
    assert_true(json_equal(json_object_get(json_array_get(votes, 0), "confidence"),
                           json_object_get(json_array_get(votes, 1), "confidence")));
    json_decref(results);
    json_decref(as_srgb);
    json_decref(kept);
    free(png);
    free(jpeg);
    harness_pass(state);
}

/* Posts the grey image (within test_predict_errors' max_pixels) to path and expects an error
 * envelope with status and code, whose message names `names`. */
static void expect_error(const struct server *srv, const struct images *im, const char *path,
                         long status, const char *code, const char *names)
{
    struct http_response r;
    http_post(srv, path, "image/png", im->data[1], im->size[1], &r);
    assert_error_envelope(&r, status, code);
    assert_contains(r.body, names);
    http_response_free(&r);
}

static void test_predict_errors(void **state)
{
    struct server *srv = start(state, "\"max_inputs\": 2, \"max_pixels\": 2000");
    struct images im;
    load_images(&im);
    expect_error(srv, &im, "/v1/predict?model=nosuch", 404, "not_found", "nosuch");
    expect_error(srv, &im, "/v1/predict?model=broken", 422, "unprocessable", "broken");
    expect_error(srv, &im, "/v1/predict?model=plain", 422, "unprocessable", "preprocess");
    expect_error(srv, &im, "/v1/predict", 422, "unprocessable", "model");
    expect_error(srv, &im, "/v1/predict?model=tiny-cnn&top_k=0", 422, "unprocessable", "top_k");
    expect_error(srv, &im, "/v1/predict?model=tiny-cnn&top_k=6", 422, "unprocessable", "top_k");
    expect_error(srv, &im, "/v1/predict?model=tiny-cnn&top_k=x", 422, "unprocessable", "top_k");
    struct http_response r;
    http_post(srv, "/v1/predict?model=tiny-cnn", "text/plain", "hello", 5, &r);
    assert_error_envelope(&r, 415, "unsupported_media_type");
    http_response_free(&r);
    http_post(srv, "/v1/predict?model=tiny-cnn", "image/png", "hello", 5, &r);
    assert_error_envelope(&r, 415, "unsupported_media_type");
    http_response_free(&r);
    post_images(srv, "/v1/predict?model=tiny-cnn", &im, 0, (const char *const[]){"x", "y", NULL},
                &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "no image");
    http_response_free(&r);
    post_images(srv, "/v1/predict?model=tiny-cnn", &im, 3, NULL, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "max_inputs");
    http_response_free(&r);
    /* The photo is 61x47 = 2867 pixels, past max_pixels; the second image (33x50) is not. */
    post_images(srv, "/v1/predict?model=tiny-cnn", &im, 2, NULL, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "image 0");
    http_response_free(&r);
    free_images(&im);
    harness_pass(state);
}

/* One view (the image itself) of two models: the vote against gen_predict.py's average. */
static void test_pseudo_label_parity(void **state)
{
    struct server *srv = start(state, "");
    json_t *exp = harness_load_source_json("tests/parity/fixtures/predict/expected.json");
    struct images im;
    load_images(&im);
    struct http_response r;
    post_images(srv, "/v1/pseudo-label?model=tiny-cnn&model=tiny-linear&views=1&seed=5", &im, 2,
                NULL, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_int_equal(json_int(doc, "views"), 1);
    assert_int_equal(json_int(doc, "seed"), 5);
    assert_true(json_num(doc, "threshold") == 0.95);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "models"), 1)),
                        "tiny-linear");
    for (size_t i = 0; i < 2; i++) {
        json_t *result = json_array_get(json_object_get(doc, "results"), i);
        const char *image = json_string_value(json_array_get(json_object_get(exp, "images"), i));
        json_t *want = json_object_get(json_object_get(exp, "pseudo_label"), image);
        assert_int_equal(json_int(result, "input"), (json_int_t)i);
        assert_int_equal(json_int(result, "index"), json_int(want, "index"));
        assert_label(result, 1);
        assert_true(fabs(json_num(result, "confidence") - json_num(want, "confidence")) <
                    TOLERANCE);
        assert_true(fabs(json_num(result, "entropy") - json_num(want, "entropy")) < TOLERANCE);
        assert_true(json_num(result, "agreement") == json_num(want, "agreement"));
        assert_true(json_is_false(json_object_get(result, "accepted")));
        /* Each model's vote over its one view: its own argmax and top probability. */
        json_t *votes = json_object_get(result, "models");
        assert_int_equal(json_array_size(votes), 2);
        for (size_t m = 0; m < 2; m++) {
            json_t *vote = json_array_get(votes, m);
            const char *name = m == 0 ? "tiny-cnn" : "tiny-linear";
            json_t *probs =
                json_object_get(json_object_get(json_object_get(exp, "models"), name), image);
            assert_string_equal(json_str(vote, "model"), name);
            json_t *top = json_array_get(probs, (size_t)json_int(vote, "index"));
            for (size_t c = 0; c < json_array_size(probs); c++)
                assert_true(json_number_value(json_array_get(probs, c)) <= json_number_value(top));
            assert_true(fabs(json_num(vote, "confidence") - json_number_value(top)) < TOLERANCE);
            assert_true(json_num(vote, "agreement") == 1.0);
            assert_label(vote, m == 0);
        }
    }
    json_decref(doc);
    http_response_free(&r);
    /* A threshold below the photo's confidence (0.384) accepts it. */
    http_post(srv, "/v1/pseudo-label?model=tiny-cnn&model=tiny-linear&views=1&threshold=0.3",
              "image/png", im.data[0], im.size[0], &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    assert_true(json_is_true(
        json_object_get(json_array_get(json_object_get(doc, "results"), 0), "accepted")));
    json_decref(doc);
    http_response_free(&r);
    free_images(&im);
    json_decref(exp);
    harness_pass(state);
}

/* Weak views: the same seed gives the same answer; agreements count views x models; models and
 * the other parameters may come as form fields. */
static void test_pseudo_label_views(void **state)
{
    struct server *srv = start(state, "");
    struct images im;
    load_images(&im);
    const char *const fields[] = {"model", "tiny-cnn", "model", "tiny-linear", "seed", "7", NULL};
    struct http_response a, b;
    post_images(srv, "/v1/pseudo-label", &im, 2, fields, &a);
    post_images(srv, "/v1/pseudo-label", &im, 2, fields, &b);
    assert_status(&a, 200);
    assert_status(&b, 200);
    assert_string_equal(a.body, b.body);
    json_t *doc = http_json(&a);
    assert_int_equal(json_int(doc, "views"), 4);
    assert_int_equal(json_int(doc, "seed"), 7);
    assert_int_equal(json_array_size(json_object_get(doc, "models")), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *result = json_array_get(json_object_get(doc, "results"), i);
        double agreement = json_num(result, "agreement") * 8;
        assert_true(fabs(agreement - round(agreement)) < 1e-9);
        assert_true(json_num(result, "entropy") > 0);
        assert_true(json_num(result, "entropy") <= log(5.0) + 1e-9);
    }
    json_decref(doc);
    http_response_free(&a);
    http_response_free(&b);
    /* Without a seed one is drawn and returned. */
    http_post(srv, "/v1/pseudo-label?model=tiny-cnn", "image/png", im.data[1], im.size[1], &a);
    assert_status(&a, 200);
    doc = http_json(&a);
    assert_true(json_is_integer(json_object_get(doc, "seed")));
    json_decref(doc);
    http_response_free(&a);
    free_images(&im);
    harness_pass(state);
}

static void test_pseudo_label_errors(void **state)
{
    struct server *srv = start(state, "");
    struct images im;
    load_images(&im);
    const char *base = "/v1/pseudo-label?model=tiny-cnn&";
    static const struct {
        const char *query, *names;
    } bad[] = {
        {"views=0", "views"},
        {"views=33", "views"},
        {"views=2.5", "views"},
        {"threshold=1.5", "threshold"},
        {"threshold=-0.1", "threshold"},
        {"threshold=nan", "threshold"},
        {"seed=-1", "seed"},
        {"seed=x", "seed"},
    };
    char path[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s%s", base, bad[i].query);
        expect_error(srv, &im, path, 422, "unprocessable", bad[i].names);
    }
    expect_error(srv, &im, "/v1/pseudo-label?model=tiny-cnn&model=three-class", 422,
                 "unprocessable", "three-class");
    expect_error(srv, &im, "/v1/pseudo-label?model=tiny-cnn&model=nosuch", 404, "not_found",
                 "nosuch");
    expect_error(srv, &im, "/v1/pseudo-label?model=plain", 422, "unprocessable", "plain");
    expect_error(srv, &im, "/v1/pseudo-label", 422, "unprocessable", "model");
    expect_error(srv, &im,
                 "/v1/pseudo-label?model=a&model=a&model=a&model=a&model=a&model=a&model=a&"
                 "model=a&model=a",
                 422, "unprocessable", "model");
    free_images(&im);
    harness_pass(state);
}

/* The response schemas in config/ are the ones /openapi.json describes, but for their own
 * "$schema" and "$id". */
static void test_schemas_match_openapi(void **state)
{
    json_t *openapi = harness_load_source_json("config/openapi.json");
    json_t *schemas = json_object_get(json_object_get(openapi, "components"), "schemas");
    static const char *const pairs[][2] = {
        {"config/predict.schema.json", "PredictResponse"},
        {"config/pseudo-label.schema.json", "PseudoLabelResponse"}};
    for (size_t i = 0; i < 2; i++) {
        json_t *file = harness_load_source_json(pairs[i][0]);
        json_object_del(file, "$schema");
        json_object_del(file, "$id");
        if (!json_equal(file, json_object_get(schemas, pairs[i][1])))
            fail_msg("%s differs from openapi.json's %s", pairs[i][0], pairs[i][1]);
        json_decref(file);
    }
    json_decref(openapi);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_predict_parity),
        HARNESS_MODELS_TEST(test_predict_tagged_photo),
        HARNESS_MODELS_TEST(test_predict_color),
        HARNESS_MODELS_TEST(test_predict_errors),
        HARNESS_MODELS_TEST(test_pseudo_label_parity),
        HARNESS_MODELS_TEST(test_pseudo_label_views),
        HARNESS_MODELS_TEST(test_pseudo_label_errors),
        cmocka_unit_test(test_schemas_match_openapi),
    };
    return harness_main(argc, argv, "predict", tests, sizeof tests / sizeof tests[0]);
}
