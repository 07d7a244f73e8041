/* The KServe v2 routes against the real binary, with a model repository holding the tiny model of
 * tests/parity/gen_models.py and a broken one. Expected outputs come from that script's numpy
 * reference, not from our executor. */
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

/* A fresh repository per test: tiny (copied from the fixtures) and broken (garbage bytes). */
static char repo_dir[64];

static void make_repository(void)
{
    snprintf(repo_dir, sizeof repo_dir, "/tmp/kserve-models-XXXXXX");
    if (!mkdtemp(repo_dir)) fail_msg("mkdtemp failed");
    char command[PATH_MAX * 2];
    snprintf(command, sizeof command,
             "cp -r '%s/tests/parity/fixtures/models/tiny' '%s/' && mkdir '%s/broken' && "
             "printf 'garbage' > '%s/broken/model.onnx'",
             harness_source_dir(), repo_dir, repo_dir, repo_dir);
    if (system(command) != 0) fail_msg("cannot make the model repository: %s", command);
}

static void remove_repository(void)
{
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", repo_dir);
    if (system(command) != 0) fail_msg("cannot remove %s", repo_dir);
}

/* Starts a server on the repository, with extra settings (a JSON object's members, or ""). */
static struct server *start(void **state, const char *extra)
{
    make_repository();
    char config[1024];
    snprintf(config, sizeof config, "{\"models_dir\": \"%s\"%s%s}", repo_dir, extra[0] ? ", " : "",
             extra);
    return harness_start(state, config);
}

static json_t *expected(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tests/parity/fixtures/models/tiny_expected.json",
             harness_source_dir());
    json_error_t error;
    json_t *doc = json_load_file(path, 0, &error);
    if (!doc) fail_msg("%s: %s", path, error.text);
    return doc;
}

static void post(const struct server *srv, const char *path, const char *body,
                 struct http_response *r)
{
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct http_request req = {
        .path = path, .headers = headers, .body = body, .body_size = strlen(body)};
    http_send(srv, &req, r);
}

static void post_json(const struct server *srv, const char *path, json_t *doc,
                      struct http_response *r)
{
    char *body = json_dumps(doc, JSON_COMPACT);
    assert_non_null(body);
    post(srv, path, body, r);
    free(body);
}

/* The request body for the expected input, its data flat or nested as [n][c][h][w]. */
static json_t *infer_body(json_t *exp, int nested)
{
    json_t *input = json_object_get(exp, "input");
    json_t *flat = json_object_get(input, "data"), *data = flat;
    if (nested) {
        json_t *shape = json_object_get(input, "shape");
        size_t dims[4], at = 0;
        for (size_t d = 0; d < 4; d++)
            dims[d] = (size_t)json_integer_value(json_array_get(shape, d));
        data = json_array();
        for (size_t n = 0; n < dims[0]; n++) {
            json_t *nn = json_array();
            for (size_t c = 0; c < dims[1]; c++) {
                json_t *cc = json_array();
                for (size_t h = 0; h < dims[2]; h++) {
                    json_t *hh = json_array();
                    for (size_t w = 0; w < dims[3]; w++)
                        json_array_append(hh, json_array_get(flat, at++));
                    json_array_append_new(cc, hh);
                }
                json_array_append_new(nn, cc);
            }
            json_array_append_new(data, nn);
        }
    } else {
        json_incref(data);
    }
    return json_pack("{s:s, s:[{s:O, s:O, s:s, s:o}]}", "id", "req-1", "inputs", "name",
                     json_object_get(input, "name"), "shape", json_object_get(input, "shape"),
                     "datatype", "FP32", "data", data);
}

/* Fails unless the response's output name matches the expectation within 1e-5. */
static void check_output(json_t *output, json_t *exp)
{
    const char *name = json_str(output, "name");
    json_t *want = json_object_get(json_object_get(exp, "outputs"), name);
    if (!want) fail_msg("unexpected output %s", name);
    assert_string_equal(json_str(output, "datatype"), "FP32");
    assert_true(json_equal(json_object_get(output, "shape"), json_object_get(want, "shape")));
    json_t *got = json_object_get(output, "data"), *ref = json_object_get(want, "data");
    assert_int_equal(json_array_size(got), json_array_size(ref));
    for (size_t i = 0; i < json_array_size(ref); i++) {
        double g = json_number_value(json_array_get(got, i));
        double e = json_number_value(json_array_get(ref, i));
        if (fabs(g - e) > 1e-5) fail_msg("%s[%zu]: %.8f, expected %.8f", name, i, g, e);
    }
}

static void check_v2_error(struct http_response *r, long status, const char *needle)
{
    assert_status(r, status);
    json_t *doc = http_json(r);
    /* The protocol's error body: one string member, not the server's envelope. */
    assert_int_equal(json_object_size(doc), 1);
    assert_contains(json_str(doc, "error"), needle);
    json_decref(doc);
    http_response_free(r);
}

static void test_server_and_metadata(void **state)
{
    struct server *srv = start(state, "");
    struct http_response r;
    http_get(srv, "/v2", &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "name"), "augserve");
    assert_non_null(json_str(doc, "version"));
    assert_true(json_is_array(json_object_get(doc, "extensions")));
    json_decref(doc);
    http_response_free(&r);
    const char *empty_ok[] = {"/v2/health/live", "/v2/health/ready", "/v2/models/tiny/ready"};
    for (size_t i = 0; i < 3; i++) {
        http_get(srv, empty_ok[i], &r);
        assert_status(&r, 200);
        assert_string_equal(r.body, "{}");
        http_response_free(&r);
    }

    http_get(srv, "/v2/models/tiny", &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    json_t *want = json_loads("{\"name\":\"tiny\",\"versions\":[],\"platform\":\"onnx\","
                              "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\","
                              "\"shape\":[-1,3,4,4]}],"
                              "\"outputs\":[{\"name\":\"probs\",\"datatype\":\"FP32\","
                              "\"shape\":[-1,3]},{\"name\":\"features\",\"datatype\":\"FP32\","
                              "\"shape\":[-1,2]}]}",
                              0, NULL);
    if (!json_equal(doc, want)) fail_msg("metadata: %s", r.body);
    json_decref(want);
    json_decref(doc);
    http_response_free(&r);

    /* The broken model is known but not ready, and did not stop the server. */
    http_get(srv, "/v2/models/broken/ready", &r);
    check_v2_error(&r, 400, "unavailable");
    http_get(srv, "/v2/models/broken", &r);
    check_v2_error(&r, 400, "unavailable");
    http_get(srv, "/v2/models/nope", &r);
    check_v2_error(&r, 404, "nope");
    http_get(srv, "/v2/models/nope/ready", &r);
    check_v2_error(&r, 404, "nope");
    remove_repository();
    harness_pass(state);
}

static void test_infer(void **state)
{
    struct server *srv = start(state, "");
    json_t *exp = expected();
    struct http_response r;
    for (int nested = 0; nested < 2; nested++) {
        json_t *body = infer_body(exp, nested);
        post_json(srv, "/v2/models/tiny/infer", body, &r);
        assert_status(&r, 200);
        json_t *doc = http_json(&r);
        assert_string_equal(json_str(doc, "model_name"), "tiny");
        assert_string_equal(json_str(doc, "id"), "req-1");
        json_t *outputs = json_object_get(doc, "outputs");
        assert_int_equal(json_array_size(outputs), 2);
        for (size_t i = 0; i < 2; i++)
            check_output(json_array_get(outputs, i), exp);
        json_decref(doc);
        http_response_free(&r);

        /* A subset of the outputs, and no id echoed when none was sent. */
        json_object_del(body, "id");
        json_object_set_new(body, "outputs", json_pack("[{s:s}]", "name", "features"));
        post_json(srv, "/v2/models/tiny/infer", body, &r);
        assert_status(&r, 200);
        doc = http_json(&r);
        assert_null(json_object_get(doc, "id"));
        outputs = json_object_get(doc, "outputs");
        assert_int_equal(json_array_size(outputs), 1);
        assert_string_equal(json_str(json_array_get(outputs, 0), "name"), "features");
        check_output(json_array_get(outputs, 0), exp);
        json_decref(doc);
        http_response_free(&r);
        json_decref(body);
    }
    /* Repeated requests land on both workers. */
    json_t *body = infer_body(exp, 0);
    for (int i = 0; i < 8; i++) {
        post_json(srv, "/v2/models/tiny/infer", body, &r);
        assert_status(&r, 200);
        http_response_free(&r);
    }
    json_decref(body);
    json_decref(exp);
    remove_repository();
    harness_pass(state);
}

static void test_infer_errors(void **state)
{
    struct server *srv = start(state, "");
    struct http_response r;
    const char *x = "\"name\":\"x\",\"datatype\":\"FP32\"";
    char body[512];

    snprintf(body, sizeof body, "{\"inputs\":[{%s,\"shape\":[1,3,4,4],\"data\":[1]}]}", x);
    post(srv, "/v2/models/nope/infer", body, &r);
    check_v2_error(&r, 404, "nope");
    post(srv, "/v2/models/tiny/infer", body, &r);
    check_v2_error(&r, 400, "data has 1");
    snprintf(body, sizeof body, "{\"inputs\":[{%s,\"shape\":[1,3,5,4],\"data\":[1]}]}", x);
    post(srv, "/v2/models/tiny/infer", body, &r);
    check_v2_error(&r, 400, "dimension 2");
    snprintf(body, sizeof body, "{\"inputs\":[{%s,\"shape\":[1,3,4],\"data\":[1]}]}", x);
    post(srv, "/v2/models/tiny/infer", body, &r);
    check_v2_error(&r, 400, "shape");
    snprintf(body, sizeof body, "{\"inputs\":[{%s,\"shape\":[5,3,4,4],\"data\":[1]}]}", x);
    post(srv, "/v2/models/tiny/infer", body, &r);
    check_v2_error(&r, 400, "max_batch");
    post(srv, "/v2/models/tiny/infer", "{\"inputs\": [", &r);
    check_v2_error(&r, 400, "JSON");
    post(srv, "/v2/models/tiny/infer",
         "{\"inputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", &r);
    check_v2_error(&r, 400, "unknown input y");
    post(srv, "/v2/models/tiny/infer",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[1]}]}", &r);
    check_v2_error(&r, 400, "FP32");
    post(srv, "/v2/models/tiny/infer",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3,4,4],\"data\":[\"a\"]}]"
         "}",
         &r);
    check_v2_error(&r, 400, "numbers");
    post(srv, "/v2/models/tiny/infer", "{\"inputs\":[]}", &r);
    check_v2_error(&r, 400, "missing input x");
    post(srv, "/v2/models/broken/infer", "{\"inputs\":[]}", &r);
    check_v2_error(&r, 400, "unavailable");
    /* The server still answers after every refusal. */
    http_get(srv, "/v2/health/live", &r);
    assert_status(&r, 200);
    http_response_free(&r);
    remove_repository();
    harness_pass(state);
}

/* Makes a key with scopes; returns its config entry and writes the key. */
static json_t *keygen(const char *name, const char *scopes, char key[128])
{
    char *out, *err;
    const char *args[] = {"keygen", "--name", name, "--scopes", scopes, NULL};
    if (harness_run_binary(args, &out, &err) != 0) fail_msg("keygen: %s", err);
    json_t *entry = NULL;
    key[0] = '\0';
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "key: ", 5) == 0) snprintf(key, 128, "%s", line + 5);
        if (line[0] == '{') entry = json_loads(line, 0, NULL);
    }
    assert_non_null(entry);
    assert_true(key[0] != '\0');
    free(out);
    free(err);
    return entry;
}

static long infer_with_key(const struct server *srv, const char *key, const char *path)
{
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    const char *body = "{\"inputs\":[]}";
    struct http_request req = {
        .path = path, .headers = key[0] ? headers : NULL, .body = body, .body_size = strlen(body)};
    struct http_response r;
    http_send(srv, &req, &r);
    long status = r.status;
    http_response_free(&r);
    return status;
}

static void test_keys(void **state)
{
    char augment_key[128], infer_key[128];
    json_t *augment = keygen("a", "augment", augment_key);
    json_t *infer = keygen("i", "infer", infer_key);
    json_t *keys = json_pack("[o, o]", augment, infer);
    char *list = json_dumps(keys, JSON_COMPACT);
    char extra[2048];
    snprintf(extra, sizeof extra, "\"api_keys\": %s", list);
    free(list);
    json_decref(keys);
    struct server *srv = start(state, extra);
    assert_int_equal(infer_with_key(srv, "", "/v2/models/tiny/infer"), 401);
    assert_int_equal(infer_with_key(srv, augment_key, "/v2/models/tiny/infer"), 403);
    /* The infer key gets through to the handler, which refuses the missing input. */
    assert_int_equal(infer_with_key(srv, infer_key, "/v2/models/tiny/infer"), 400);
    struct http_response r;
    http_get(srv, "/v2/health/live", &r);
    assert_status(&r, 401);
    http_response_free(&r);
    remove_repository();
    harness_pass(state);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s AUGSERVE_BINARY SOURCE_DIR\n", argv[0]);
        return 2;
    }
    harness_init(argv[1], argv[2]);
#define TEST(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
    const struct CMUnitTest tests[] = {
        TEST(test_server_and_metadata),
        TEST(test_infer),
        TEST(test_infer_errors),
        TEST(test_keys),
    };
    int failed = cmocka_run_group_tests_name("kserve", tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
