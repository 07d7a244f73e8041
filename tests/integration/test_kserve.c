/* The KServe v2 routes against the real binary, with a model repository holding the models of
 * tests/parity/gen_models.py (FP32, UINT8, INT64 and undeclared inputs, and the protocol
 * documentation's example model) and a broken one. Expected outputs come from that script's numpy
 * reference, not from our executor. Requests go through libcurl and, for the documentation's
 * examples, through the curl command-line tool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"

static const char *const fixture_models[] = {"tiny", "pixels", "counts", "untyped", "mymodel"};
#define N_MODELS (sizeof fixture_models / sizeof *fixture_models)

/* Fills the test's repository: the fixture models and broken (garbage bytes). */
static void make_repository(void)
{
    const char *repo_dir = harness_models_dir();
    char command[PATH_MAX * 2];
    for (size_t i = 0; i < N_MODELS; i++) {
        snprintf(command, sizeof command, "cp -r '%s/tests/parity/fixtures/models/%s' '%s/'",
                 harness_source_dir(), fixture_models[i], repo_dir);
        if (system(command) != 0) fail_msg("cannot make the model repository: %s", command);
    }
    snprintf(command, sizeof command,
             "mkdir '%s/broken' && printf 'garbage' > '%s/broken/model.onnx'", repo_dir, repo_dir);
    if (system(command) != 0) fail_msg("cannot make the model repository: %s", command);
}

/* Starts a server on the test's repository, filled, with extra settings (a JSON object's members,
 * or ""). */
static struct server *start(void **state, const char *extra)
{
    make_repository();
    return harness_start_with_models(state, extra);
}

/* The expectation gen_models.py wrote for a model. */
static json_t *expected(const char *model)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "tests/parity/fixtures/models/%s_expected.json", model);
    return harness_load_source_json(path);
}

/* Posts body; header_length, when not NULL, is sent as Inference-Header-Content-Length. */
static void post_raw(const struct server *srv, const char *path, const void *body, size_t size,
                     const char *header_length, struct http_response *r)
{
    char length[128];
    snprintf(length, sizeof length, "Inference-Header-Content-Length: %s",
             header_length ? header_length : "");
    const char *headers[] = {header_length ? "Content-Type: application/octet-stream"
                                           : "Content-Type: application/json",
                             header_length ? length : NULL, NULL};
    struct http_request req = {.path = path, .headers = headers, .body = body, .body_size = size};
    http_send(srv, &req, r);
}

static void post(const struct server *srv, const char *path, const char *body,
                 struct http_response *r)
{
    post_raw(srv, path, body, strlen(body), NULL, r);
}

/* Posts the JSON header doc followed by bin_size bytes of binary tensor data. */
static void post_binary(const struct server *srv, const char *path, json_t *doc, const void *bin,
                        size_t bin_size, struct http_response *r)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_non_null(text);
    size_t length = strlen(text);
    char *body = malloc(length + bin_size + 1);
    assert_non_null(body);
    memcpy(body, text, length);
    if (bin_size) memcpy(body + length, bin, bin_size);
    char header_length[32];
    snprintf(header_length, sizeof header_length, "%zu", length);
    post_raw(srv, path, body, length + bin_size, header_length, r);
    free(body);
    free(text);
}

static void post_json(const struct server *srv, const char *path, json_t *doc,
                      struct http_response *r)
{
    post_binary(srv, path, doc, NULL, 0, r);
}

/* The values of flat from *at on, nested as shape from depth on. */
static json_t *nest(json_t *flat, json_t *shape, size_t depth, size_t *at)
{
    if (depth == json_array_size(shape)) return json_incref(json_array_get(flat, (*at)++));
    json_t *level = json_array();
    for (json_int_t i = 0; i < json_integer_value(json_array_get(shape, depth)); i++)
        json_array_append_new(level, nest(flat, shape, depth + 1, at));
    return level;
}

/* Bytes per element of the protocol's datatypes the fixtures use. */
static size_t element_size(const char *datatype)
{
    return strcmp(datatype, "UINT8") == 0 ? 1 : strcmp(datatype, "INT64") == 0 ? 8 : 4;
}

/* Appends one element of datatype, little-endian, at *out. */
static void put_element(const char *datatype, json_t *value, unsigned char **out)
{
    uint64_t bits;
    if (strcmp(datatype, "FP32") == 0) {
        float f = (float)json_number_value(value);
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        bits = u;
    } else {
        bits = (uint64_t)json_integer_value(value);
    }
    for (size_t b = 0; b < element_size(datatype); b++)
        *(*out)++ = (unsigned char)(bits >> (8 * b));
}

/* The request body for the expected inputs. Each input's data is JSON, flat or nested, unless
 * binary is set: then every input is binary data, appended to *bin (malloc'd, *bin_size bytes). */
static json_t *infer_body(json_t *exp, int nested, int binary, unsigned char **bin,
                          size_t *bin_size)
{
    json_t *inputs = json_array(), *input;
    size_t i, total = 0;
    json_array_foreach(json_object_get(exp, "inputs"), i, input) total +=
        json_array_size(json_object_get(input, "data")) * element_size(json_str(input, "datatype"));
    unsigned char *at = NULL;
    if (binary) {
        *bin = at = malloc(total + 1);
        *bin_size = total;
        assert_non_null(at);
    }
    json_array_foreach(json_object_get(exp, "inputs"), i, input)
    {
        json_t *flat = json_object_get(input, "data"), *shape = json_object_get(input, "shape");
        json_t *tensor = json_pack("{s:O, s:O, s:O}", "name", json_object_get(input, "name"),
                                   "shape", shape, "datatype", json_object_get(input, "datatype"));
        if (binary) {
            size_t e;
            json_t *v;
            json_array_foreach(flat, e, v) put_element(json_str(input, "datatype"), v, &at);
            json_object_set_new(tensor, "parameters",
                                json_pack("{s:I}", "binary_data_size",
                                          (json_int_t)(json_array_size(flat) *
                                                       element_size(json_str(input, "datatype")))));
        } else {
            size_t from = 0;
            json_object_set_new(tensor, "data",
                                nested ? nest(flat, shape, 0, &from) : json_incref(flat));
        }
        json_array_append_new(inputs, tensor);
    }
    return json_pack("{s:s, s:o}", "id", "req-1", "inputs", inputs);
}

/* Splits a response with binary outputs into its JSON (returned) and the bytes after it, checking
 * the extension's headers. */
static json_t *binary_response(const struct http_response *r, const unsigned char **bin,
                               size_t *bin_size)
{
    const char *length = http_header(r, "Inference-Header-Content-Length");
    if (!length) fail_msg("no Inference-Header-Content-Length in a binary response");
    assert_string_equal(http_header(r, "Content-Type"), "application/octet-stream");
    size_t n = strtoull(length, NULL, 10);
    assert_true(n > 0 && n <= r->body_size);
    json_t *doc = json_loadb(r->body, n, 0, NULL);
    if (!doc) fail_msg("the first %zu bytes are not JSON: %.300s", n, r->body);
    *bin = (const unsigned char *)r->body + n;
    *bin_size = r->body_size - n;
    return doc;
}

/* An FP32 output's value e: from data, or from the binary bytes at bin (little-endian). NaN for
 * JSON's null. */
static double output_value(json_t *output, const unsigned char *bin, size_t e)
{
    if (!bin) {
        json_t *v = json_array_get(json_object_get(output, "data"), e);
        return json_is_null(v) ? NAN : json_number_value(v);
    }
    uint32_t u = 0;
    for (int b = 3; b >= 0; b--)
        u = u << 8 | bin[e * 4 + (size_t)b];
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Fails unless the response's output matches the expectation within 1e-5 (relative past 1). Its
 * data is JSON, or binary: then it is taken from *bin, which moves past it. */
static void check_output(json_t *output, json_t *exp, const unsigned char **bin, size_t *bin_size)
{
    const char *name = json_str(output, "name");
    json_t *want = json_object_get(json_object_get(exp, "outputs"), name);
    if (!want) fail_msg("unexpected output %s", name);
    assert_string_equal(json_str(output, "datatype"), "FP32");
    assert_true(json_equal(json_object_get(output, "shape"), json_object_get(want, "shape")));
    json_t *ref = json_object_get(want, "data");
    json_t *size = json_object_get(json_object_get(output, "parameters"), "binary_data_size");
    const unsigned char *from = NULL;
    if (size) {
        assert_null(json_object_get(output, "data"));
        assert_int_equal(json_integer_value(size), json_array_size(ref) * 4);
        assert_true(*bin_size >= json_array_size(ref) * 4);
        from = *bin;
        *bin += json_array_size(ref) * 4;
        *bin_size -= json_array_size(ref) * 4;
    } else {
        assert_int_equal(json_array_size(json_object_get(output, "data")), json_array_size(ref));
    }
    for (size_t i = 0; i < json_array_size(ref); i++) {
        double g = output_value(output, from, i), e = json_number_value(json_array_get(ref, i));
        if (!(fabs(g - e) <= 1e-5 * fmax(1, fabs(e))))
            fail_msg("%s[%zu]: %.8f, expected %.8f", name, i, g, e);
    }
}

/* Fails unless the response holds every expected output (or the n named ones, in model order),
 * JSON or binary, and no more. */
static void check_outputs(const struct http_response *r, json_t *exp, size_t n)
{
    assert_status(r, 200);
    const unsigned char *bin = NULL;
    size_t bin_size = 0;
    json_t *doc = http_header(r, "Inference-Header-Content-Length")
                      ? binary_response(r, &bin, &bin_size)
                      : http_json(r);
    json_t *outputs = json_object_get(doc, "outputs");
    assert_int_equal(json_array_size(outputs), n);
    for (size_t i = 0; i < n; i++)
        check_output(json_array_get(outputs, i), exp, &bin, &bin_size);
    assert_int_equal(bin_size, 0);
    json_decref(doc);
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
    json_t *want = json_pack("[s]", "binary_tensor_data");
    assert_true(json_equal(json_object_get(doc, "extensions"), want));
    json_decref(want);
    json_decref(doc);
    http_response_free(&r);
    const char *empty_ok[] = {"/v2/health/live", "/v2/health/ready", "/v2/models/tiny/ready"};
    for (size_t i = 0; i < 3; i++) {
        http_get(srv, empty_ok[i], &r);
        assert_status(&r, 200);
        assert_string_equal(r.body, "{}");
        http_response_free(&r);
    }

    const char *metadata[][2] = {
        {"tiny", "{\"name\":\"tiny\",\"versions\":[],\"platform\":\"onnx\","
                 "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,3,4,4]}],"
                 "\"outputs\":[{\"name\":\"probs\",\"datatype\":\"FP32\",\"shape\":[-1,3]},"
                 "{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[-1,2]}]}"},
        {"pixels", "{\"name\":\"pixels\",\"versions\":[],\"platform\":\"onnx\","
                   "\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[-1,4]}],"
                   "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,2]}]}"},
        {"counts", "{\"name\":\"counts\",\"versions\":[],\"platform\":\"onnx\","
                   "\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[-1,3]}],"
                   "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,2]}]}"},
        /* An input of undeclared type is described as what it takes: FP32. */
        {"untyped", "{\"name\":\"untyped\",\"versions\":[],\"platform\":\"onnx\","
                    "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,2]}],"
                    "\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[-1,2]}]}"},
    };
    for (size_t i = 0; i < sizeof metadata / sizeof *metadata; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v2/models/%s", metadata[i][0]);
        http_get(srv, path, &r);
        assert_status(&r, 200);
        doc = http_json(&r);
        want = json_loads(metadata[i][1], 0, NULL);
        if (!json_equal(doc, want)) fail_msg("metadata: %s", r.body);
        json_decref(want);
        json_decref(doc);
        http_response_free(&r);
    }

    /* The broken model is known but not ready, and did not stop the server. */
    http_get(srv, "/v2/models/broken/ready", &r);
    check_v2_error(&r, 400, "unavailable");
    http_get(srv, "/v2/models/broken", &r);
    check_v2_error(&r, 400, "unavailable");
    http_get(srv, "/v2/models/nope", &r);
    check_v2_error(&r, 404, "nope");
    http_get(srv, "/v2/models/nope/ready", &r);
    check_v2_error(&r, 404, "nope");
    harness_pass(state);
}

/* Every fixture model with JSON data, flat and nested, and with binary data. */
static void test_infer_every_model(void **state)
{
    struct server *srv = start(state, "");
    struct http_response r;
    for (size_t m = 0; m < N_MODELS; m++) {
        json_t *exp = expected(fixture_models[m]);
        char path[64];
        snprintf(path, sizeof path, "/v2/models/%s/infer", fixture_models[m]);
        for (int form = 0; form < 3; form++) {
            unsigned char *bin = NULL;
            size_t bin_size = 0;
            json_t *body = infer_body(exp, form == 1, form == 2, &bin, &bin_size);
            post_binary(srv, path, body, bin, bin_size, &r);
            check_outputs(&r, exp, json_object_size(json_object_get(exp, "outputs")));
            json_t *doc = json_loadb(r.body, r.body_size, JSON_DISABLE_EOF_CHECK, NULL);
            assert_string_equal(json_str(doc, "model_name"), fixture_models[m]);
            assert_string_equal(json_str(doc, "id"), "req-1");
            json_decref(doc);
            http_response_free(&r);
            json_decref(body);
            free(bin);
        }
        json_decref(exp);
    }
    harness_pass(state);
}

/* Picking outputs, and returning them as binary data: per output ("binary_data"), for all
 * ("binary_data_output"), and the first overriding the second. */
static void test_outputs(void **state)
{
    struct server *srv = start(state, "");
    json_t *exp = expected("tiny");
    struct http_response r;
    json_t *body = infer_body(exp, 0, 0, NULL, NULL);

    /* A subset of the outputs, and no id echoed when none was sent. */
    json_object_del(body, "id");
    json_object_set_new(body, "outputs", json_pack("[{s:s}]", "name", "features"));
    post_json(srv, "/v2/models/tiny/infer", body, &r);
    check_outputs(&r, exp, 1);
    json_t *doc = http_json(&r);
    assert_null(json_object_get(doc, "id"));
    assert_string_equal(json_str(json_array_get(json_object_get(doc, "outputs"), 0), "name"),
                        "features");
    json_decref(doc);
    http_response_free(&r);

    json_object_set_new(body, "outputs",
                        json_pack("[{s:s, s:{s:b}}, {s:s}]", "name", "features", "parameters",
                                  "binary_data", 1, "name", "probs"));
    post_json(srv, "/v2/models/tiny/infer", body, &r);
    check_outputs(&r, exp, 2);
    const unsigned char *bin;
    size_t bin_size;
    doc = binary_response(&r, &bin, &bin_size);
    /* Model order: probs (JSON) then features (binary, 2 x 2 floats). */
    json_t *outputs = json_object_get(doc, "outputs");
    assert_non_null(json_object_get(json_array_get(outputs, 0), "data"));
    assert_null(json_object_get(json_array_get(outputs, 1), "data"));
    assert_int_equal(bin_size, 16);
    json_decref(doc);
    http_response_free(&r);

    /* Request-level binary_data_output, overridden to JSON for probs. */
    json_object_set_new(body, "parameters", json_pack("{s:b}", "binary_data_output", 1));
    json_object_set_new(
        body, "outputs",
        json_pack("[{s:s, s:{s:b}}]", "name", "probs", "parameters", "binary_data", 0));
    post_json(srv, "/v2/models/tiny/infer", body, &r);
    assert_null(http_header(&r, "Inference-Header-Content-Length"));
    assert_string_equal(http_header(&r, "Content-Type"), "application/json");
    check_outputs(&r, exp, 1);
    http_response_free(&r);
    json_object_del(body, "outputs");
    post_json(srv, "/v2/models/tiny/infer", body, &r);
    check_outputs(&r, exp, 2);
    doc = binary_response(&r, &bin, &bin_size);
    assert_int_equal(bin_size, (6 + 4) * 4);
    json_decref(doc);
    http_response_free(&r);

    /* Repeated requests land on both workers. */
    json_object_del(body, "parameters");
    for (int i = 0; i < 8; i++) {
        post_json(srv, "/v2/models/tiny/infer", body, &r);
        check_outputs(&r, exp, 2);
        http_response_free(&r);
    }
    json_decref(body);
    json_decref(exp);
    harness_pass(state);
}

/* NaN and infinity can only come in as binary FP32. mymodel copies input0 into output0's first
 * rows, so they come out unchanged: as bytes in binary data, as null in JSON (which has no such
 * numbers). */
static void test_not_finite(void **state)
{
    struct server *srv = start(state, "");
    json_t *exp = expected("mymodel");
    unsigned char *bin;
    size_t bin_size;
    json_t *body = infer_body(exp, 0, 1, &bin, &bin_size);
    float special[2] = {NAN, INFINITY};
    memcpy(bin, special, sizeof special); /* input0[0][0] and [0][1]; x86 is little-endian */
    struct http_response r;
    for (int binary = 0; binary < 2; binary++) {
        json_object_set_new(body, "parameters", json_pack("{s:b}", "binary_data_output", binary));
        post_binary(srv, "/v2/models/mymodel/infer", body, bin, bin_size, &r);
        assert_status(&r, 200);
        const unsigned char *out = NULL;
        size_t out_size;
        json_t *doc = binary ? binary_response(&r, &out, &out_size) : http_json(&r);
        json_t *output = json_array_get(json_object_get(doc, "outputs"), 0);
        if (!binary) {
            assert_true(json_is_null(json_array_get(json_object_get(output, "data"), 0)));
            assert_true(json_is_null(json_array_get(json_object_get(output, "data"), 1)));
        }
        if (binary) {
            assert_true(isnan(output_value(output, out, 0)));
            assert_true(isinf(output_value(output, out, 1)) && output_value(output, out, 1) > 0);
        }
        json_t *want =
            json_object_get(json_object_get(json_object_get(exp, "outputs"), "output0"), "data");
        for (size_t e = 2; e < 6; e++)
            assert_true(fabs(output_value(output, out, e) -
                             json_number_value(json_array_get(want, e))) < 1e-5);
        json_decref(doc);
        http_response_free(&r);
    }
    json_decref(body);
    free(bin);
    json_decref(exp);
    harness_pass(state);
}

/* One refused request: a JSON body for model, its status and a part of the message. */
struct refusal {
    const char *model;
    const char *body;
    long status;
    const char *needle;
};

static void test_infer_errors(void **state)
{
    struct server *srv = start(state, "");
    struct http_response r;
#define X  "\"name\":\"x\",\"datatype\":\"FP32\""
#define U8 "\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1,4]"
#define I  "\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1,3]"
    const struct refusal refusals[] = {
        {"nope", "{\"inputs\":[{" X ",\"shape\":[1,3,4,4],\"data\":[1]}]}", 404, "nope"},
        {"broken", "{\"inputs\":[]}", 400, "unavailable"},
        {"tiny", "{\"inputs\": [", 400, "JSON"},
        {"tiny", "{\"inputs\":{}}", 400, "\"inputs\" (an array)"},
        /* Names: a wrong input, a missing one, one given twice, an unknown output. */
        {"tiny", "{\"inputs\":[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}",
         400, "unknown input y of model tiny"},
        {"tiny", "{\"inputs\":[]}", 400, "missing input x"},
        {"mymodel",
         "{\"inputs\":[{\"name\":\"input0\",\"datatype\":\"FP32\",\"shape\":[2,2],"
         "\"data\":[1,2,3,4]}]}",
         400, "missing input input1"},
        {"untyped",
         "{\"inputs\":[{" X ",\"shape\":[1,2],\"data\":[1,2]},{" X ",\"shape\":[1,2],"
         "\"data\":[1,2]}]}",
         400, "input x is given twice"},
        {"untyped",
         "{\"inputs\":[{" X ",\"shape\":[1,2],\"data\":[1,2]}],\"outputs\":[{\"name\":"
         "\"z\"}]}",
         400, "unknown output z of model untyped"},
        {"untyped",
         "{\"inputs\":[{" X ",\"shape\":[1,2],\"data\":[1,2]}],\"outputs\":[{\"name\":\"y\","
         "\"parameters\":{\"binary_data\":1}}]}",
         400, "binary_data must be a boolean"},
        {"untyped",
         "{\"inputs\":[{" X ",\"shape\":[1,2],\"data\":[1,2]}],\"parameters\":{"
         "\"binary_data_output\":\"yes\"}}",
         400, "binary_data_output must be a boolean"},
        /* Datatypes: each against the model's declared one, and one the server does not take. */
        {"tiny",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[1]}]}", 400,
         "datatype INT64 does not match the model's FP32"},
        {"pixels", "{\"inputs\":[{" X ",\"shape\":[1,4],\"data\":[1,2,3,4]}]}", 400,
         "datatype FP32 does not match the model's UINT8"},
        {"counts",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1,3],"
         "\"data\":[1,2,3]}]}",
         400, "datatype UINT8 does not match the model's INT64"},
        {"untyped",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP16\",\"shape\":[1,2],"
         "\"data\":[1,2]}]}",
         400, "input x: datatype FP16 is not supported; FP32, UINT8 and INT64 are"},
        /* Element values outside the datatype. */
        {"pixels", "{\"inputs\":[{" U8 ",\"data\":[1,2,3,256]}]}", 400,
         "element 3 is not an integer in 0..255"},
        {"pixels", "{\"inputs\":[{" U8 ",\"data\":[-1,2,3,4]}]}", 400, "element 0 is not"},
        {"pixels", "{\"inputs\":[{" U8 ",\"data\":[1,2.5,3,4]}]}", 400, "element 1 is not"},
        {"counts", "{\"inputs\":[{" I ",\"data\":[1,2,3.5]}]}", 400, "element 2 is not an integer"},
        {"counts", "{\"inputs\":[{" I ",\"data\":[[1,2,\"3\"]]}]}", 400, "element 2 is not"},
        {"untyped", "{\"inputs\":[{" X ",\"shape\":[1,2],\"data\":[1e39,2]}]}", 400,
         "element 0 is not a number within FP32's range"},
        {"untyped", "{\"inputs\":[{" X ",\"shape\":[1,2],\"data\":[1,null]}]}", 400,
         "element 1 is not"},
        /* Shapes that do not fit the model, and a batch past max_batch. */
        {"tiny", "{\"inputs\":[{" X ",\"shape\":[1,3,5,4],\"data\":[1]}]}", 400,
         "input x: shape [1,3,5,4] does not fit the model's [-1,3,4,4]"},
        {"tiny", "{\"inputs\":[{" X ",\"shape\":[1,3,4],\"data\":[1]}]}", 400,
         "shape [1,3,4] does not fit the model's [-1,3,4,4]"},
        {"mymodel",
         "{\"inputs\":[{\"name\":\"input0\",\"datatype\":\"FP32\",\"shape\":[4],"
         "\"data\":[1,2,3,4]}]}",
         400, "shape [4] does not fit the model's [2,2]"},
        {"tiny", "{\"inputs\":[{" X ",\"shape\":[1,3,-4,4],\"data\":[1]}]}", 400, "integers >= 0"},
        {"tiny", "{\"inputs\":[{" X ",\"shape\":[5,3,4,4],\"data\":[1]}]}", 400,
         "batch 5 is past the model's max_batch 4"},
        /* An empty tensor, which the executor cannot run. */
        {"tiny", "{\"inputs\":[{" X ",\"shape\":[0,3,4,4],\"data\":[]}]}", 400,
         "input x: shape [0,3,4,4] holds no elements"},
        /* Data that disagrees with the shape: its length, and its nesting. */
        {"tiny", "{\"inputs\":[{" X ",\"shape\":[1,3,4,4],\"data\":[1]}]}", 400,
         "shape [1,3,4,4] needs 48 elements, data has 1"},
        {"counts", "{\"inputs\":[{" I ",\"data\":[[1,2]]}]}", 400,
         "a level-1 entry holds 2 values, the shape says 3"},
        {"counts",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[2,3],"
         "\"data\":[[1,2,3]]}]}",
         400, "a level-0 entry holds 1 values, the shape says 2"},
        {"counts", "{\"inputs\":[{" I ",\"data\":[[1,2,[3]]]}]}", 400, "element 2 is not"},
        {"counts",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[2,3],"
         "\"data\":[[1,2,3],4,5,6]}]}",
         400, "a level-0 entry holds 4 values, the shape says 2"},
        {"untyped", "{\"inputs\":[{" X ",\"shape\":[1,2]}]}", 400,
         "either data (an array) or parameters.binary_data_size"},
    };
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v2/models/%s/infer", refusals[i].model);
        post(srv, path, refusals[i].body, &r);
        check_v2_error(&r, refusals[i].status, refusals[i].needle);
    }
#undef X
#undef U8
#undef I
    /* The server still answers after every refusal. */
    http_get_expect(srv, "/v2/health/live", 200);
    harness_pass(state);
}

/* The binary extension's refusals: sizes that disagree with the shape or with the body, and an
 * Inference-Header-Content-Length that is past the body or not a number. */
static void test_binary_errors(void **state)
{
    struct server *srv = start(state, "");
    struct http_response r;
    const char *header = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1,3],"
                         "\"parameters\":{\"binary_data_size\":%d}}]}";
    char json[256], body[512], length[32];
    const struct {
        int declared;   /* binary_data_size */
        size_t present; /* bytes after the JSON */
        const char *needle;
    } sizes[] = {
        {23, 24, "binary_data_size must be 24 (3 INT64 elements of 8 bytes)"},
        {-1, 24, "binary_data_size must be 24"},
        {24, 16, "binary_data_size is 24 but only 16 bytes of binary data remain"},
        {24, 30, "6 bytes of binary data past what the inputs' binary_data_size take"},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int n = snprintf(json, sizeof json, header, sizes[i].declared);
        memset(body, 0, sizeof body);
        memcpy(body, json, (size_t)n);
        snprintf(length, sizeof length, "%d", n);
        post_raw(srv, "/v2/models/counts/infer", body, (size_t)n + sizes[i].present, length, &r);
        check_v2_error(&r, 400, sizes[i].needle);
    }
    /* binary_data_size with no binary section at all. */
    snprintf(json, sizeof json, header, 24);
    post(srv, "/v2/models/counts/infer", json, &r);
    check_v2_error(&r, 400, "only 0 bytes of binary data remain");
    /* Both data and binary_data_size. */
    post(srv, "/v2/models/counts/infer",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1,3],\"data\":[1,2,3],"
         "\"parameters\":{\"binary_data_size\":24}}]}",
         &r);
    check_v2_error(&r, 400, "either data (an array) or parameters.binary_data_size");

    int n = snprintf(json, sizeof json, header, 24);
    const char *lengths[][2] = {
        {"100000", "Inference-Header-Content-Length is 100000 but the body has"},
        {"abc", "Inference-Header-Content-Length must be a number of bytes, not \"abc\""},
        {"-5", "must be a number of bytes"},
        {"12x", "must be a number of bytes"},
    };
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        post_raw(srv, "/v2/models/counts/infer", json, (size_t)n, lengths[i][0], &r);
        check_v2_error(&r, 400, lengths[i][1]);
    }
    /* A header length that cuts the JSON short. */
    post_raw(srv, "/v2/models/counts/infer", json, (size_t)n, "10", &r);
    check_v2_error(&r, 400, "JSON");
    harness_pass(state);
}

/* max_tensor_elements: past it is 413, with the protocol's error body; the shape's product is
 * checked without overflow. */
static void test_tensor_limit(void **state)
{
    struct server *srv = start(state, "\"max_tensor_elements\": 40");
    struct http_response r;
    post(srv, "/v2/models/tiny/infer",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3,4,4],\"data\":[1]}]}",
         &r);
    check_v2_error(&r, 413, "shape [1,3,4,4] is past max_tensor_elements (40 elements)");
    post(srv, "/v2/models/untyped/infer",
         "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4611686018427387904,2],"
         "\"data\":[1]}]}",
         &r);
    check_v2_error(&r, 413, "max_tensor_elements");
    /* At the limit is fine: 20 x 2. */
    json_t *data = json_array();
    for (int i = 0; i < 40; i++)
        json_array_append_new(data, json_real(i - 20));
    json_t *body = json_pack("{s:[{s:s, s:s, s:[i,i], s:o}]}", "inputs", "name", "x", "datatype",
                             "FP32", "shape", 20, 2, "data", data);
    post_json(srv, "/v2/models/untyped/infer", body, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *out = json_object_get(json_array_get(json_object_get(doc, "outputs"), 0), "data");
    for (size_t i = 0; i < 40; i++)
        assert_true(json_number_value(json_array_get(out, i)) == (i < 20 ? 0 : (double)i - 20));
    json_decref(doc);
    json_decref(body);
    http_response_free(&r);
    harness_pass(state);
}

/* ---- The curl command-line tool, with the protocol documentation's example requests ---------- */

struct curl_result {
    long status;
    char headers[4096];
    unsigned char *body;
    size_t body_size;
};

/* Sends body to path with the curl tool (its --data-binary) and the extra header (or NULL). */
static void run_curl(const struct server *srv, const char *path, const void *body, size_t size,
                     const char *header, struct curl_result *out)
{
    char dir[] = "/tmp/kserve-curl-XXXXXX", command[4096];
    if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    snprintf(command, sizeof command, "%s/request", dir);
    FILE *f = fopen(command, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(body, 1, size, f), size);
    fclose(f);
    snprintf(command, sizeof command,
             "curl -sS -o '%s/body' -D '%s/headers' -H 'Content-Type: %s' %s%s%s "
             "--data-binary '@%s/request' 'http://127.0.0.1:%d%s'",
             dir, dir, header ? "application/octet-stream" : "application/json",
             header ? "-H '" : "", header ? header : "", header ? "'" : "", dir, srv->port, path);
    if (system(command) != 0) fail_msg("failed: %s", command);
    char file[128];
    size_t n;
    snprintf(file, sizeof file, "%s/headers", dir);
    char *headers = harness_read_file(file, &n);
    snprintf(out->headers, sizeof out->headers, "%s", headers);
    free(headers);
    snprintf(file, sizeof file, "%s/body", dir);
    out->body = (unsigned char *)harness_read_file(file, &out->body_size);
    out->status = strtol(strchr(out->headers, ' ') ? strchr(out->headers, ' ') : "0", NULL, 10);
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0) fail_msg("cannot remove %s", dir);
}

/* A response header's value (case-insensitive name) copied into value; fails when absent. */
static const char *curl_header(const struct curl_result *c, const char *name, char value[256])
{
    for (const char *line = c->headers; line && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncasecmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
            sscanf(line + strlen(name) + 1, " %255[^\r\n]", value);
            return value;
        }
    }
    fail_msg("no %s header in: %s", name, c->headers);
    return NULL;
}

/* The documentation's examples (KServe's JSON inference request, Triton's binary tensor data
 * request) on mymodel, the model they describe: the JSON example with its UINT32 input0 as FP32
 * (here nested, as the protocol's tensor data section allows) and its BOOL input1 as UINT8 with
 * the 3 elements its shape says; the binary example verbatim but for those datatypes, which have
 * the same sizes, so its 19 bytes of input and 24 of output hold. */
static void test_curl_tool(void **state)
{
    if (system("command -v curl > /dev/null") != 0) {
        print_message("the curl command-line tool is not installed; skipping\n");
        skip();
    }
    struct server *srv = start(state, "");
    json_t *exp = expected("mymodel");
    json_t *want = json_object_get(json_object_get(exp, "outputs"), "output0");
    struct curl_result c;
    char value[256];
    const char *json_example = "{\n"
                               "  \"id\" : \"42\",\n"
                               "  \"inputs\" : [\n"
                               "    {\n"
                               "      \"name\" : \"input0\",\n"
                               "      \"shape\" : [ 2, 2 ],\n"
                               "      \"datatype\" : \"FP32\",\n"
                               "      \"data\" : [ [ 1, 2 ], [ 3, 4 ] ]\n"
                               "    },\n"
                               "    {\n"
                               "      \"name\" : \"input1\",\n"
                               "      \"shape\" : [ 3 ],\n"
                               "      \"datatype\" : \"UINT8\",\n"
                               "      \"data\" : [ 1, 0, 1 ]\n"
                               "    }\n"
                               "  ],\n"
                               "  \"outputs\" : [\n"
                               "    {\n"
                               "      \"name\" : \"output0\"\n"
                               "    }\n"
                               "  ]\n"
                               "}\n";
    run_curl(srv, "/v2/models/mymodel/infer", json_example, strlen(json_example), NULL, &c);
    assert_int_equal(c.status, 200);
    assert_string_equal(curl_header(&c, "Content-Type", value), "application/json");
    json_t *doc = json_loadb((const char *)c.body, c.body_size, 0, NULL);
    if (!doc) fail_msg("not JSON: %s", c.body);
    assert_string_equal(json_str(doc, "model_name"), "mymodel");
    assert_string_equal(json_str(doc, "id"), "42");
    const unsigned char *none = NULL;
    size_t none_size = 0;
    check_output(json_array_get(json_object_get(doc, "outputs"), 0), exp, &none, &none_size);
    json_decref(doc);
    free(c.body);

    const char *binary_example = "{\n"
                                 "  \"model_name\" : \"mymodel\",\n"
                                 "  \"inputs\" : [\n"
                                 "    {\n"
                                 "      \"name\" : \"input0\",\n"
                                 "      \"shape\" : [ 2, 2 ],\n"
                                 "      \"datatype\" : \"FP32\",\n"
                                 "      \"parameters\" : {\n"
                                 "        \"binary_data_size\" : 16\n"
                                 "      }\n"
                                 "    },\n"
                                 "    {\n"
                                 "      \"name\" : \"input1\",\n"
                                 "      \"shape\" : [ 3 ],\n"
                                 "      \"datatype\" : \"UINT8\",\n"
                                 "      \"parameters\" : {\n"
                                 "        \"binary_data_size\" : 3\n"
                                 "      }\n"
                                 "    }\n"
                                 "  ],\n"
                                 "  \"outputs\" : [\n"
                                 "    {\n"
                                 "      \"name\" : \"output0\",\n"
                                 "      \"parameters\" : {\n"
                                 "        \"binary_data\" : true\n"
                                 "      }\n"
                                 "    }\n"
                                 "  ]\n"
                                 "}";
    /* input0 = [[1, 2], [3, 4]] as little-endian FP32, then input1 = [1, 0, 1]. */
    static const unsigned char tensors[19] = {0,    0,    0x80, 0x3f, 0,    0,    0, 0x40, 0, 0,
                                              0x40, 0x40, 0,    0,    0x80, 0x40, 1, 0,    1};
    size_t length = strlen(binary_example);
    unsigned char request[2048];
    memcpy(request, binary_example, length);
    memcpy(request + length, tensors, sizeof tensors);
    char header[64];
    snprintf(header, sizeof header, "Inference-Header-Content-Length: %zu", length);
    run_curl(srv, "/v2/models/mymodel/infer", request, length + sizeof tensors, header, &c);
    assert_int_equal(c.status, 200);
    assert_string_equal(curl_header(&c, "Content-Type", value), "application/octet-stream");
    size_t yy = strtoull(curl_header(&c, "Inference-Header-Content-Length", value), NULL, 10);
    assert_int_equal(c.body_size, yy + 24);
    assert_int_equal(strtoull(curl_header(&c, "Content-Length", value), NULL, 10), yy + 24);
    doc = json_loadb((const char *)c.body, yy, 0, NULL);
    if (!doc) fail_msg("the header is not JSON: %.*s", (int)yy, c.body);
    json_t *output = json_array_get(json_object_get(doc, "outputs"), 0);
    json_t *parameters = json_pack("{s:i}", "binary_data_size", 24);
    assert_true(json_equal(json_object_get(output, "parameters"), parameters));
    json_decref(parameters);
    for (size_t e = 0; e < 6; e++)
        assert_true(fabs(output_value(output, c.body + yy, e) -
                         json_number_value(json_array_get(json_object_get(want, "data"), e))) <
                    1e-5);
    json_decref(doc);
    free(c.body);

    /* A refusal through the tool: the binary example with a byte missing. */
    run_curl(srv, "/v2/models/mymodel/infer", request, length + sizeof tensors - 1, header, &c);
    assert_int_equal(c.status, 400);
    assert_contains((const char *)c.body, "only 2 bytes of binary data remain");
    free(c.body);
    json_decref(exp);
    harness_pass(state);
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
    json_t *augment = harness_keygen("a", "augment", augment_key);
    json_t *infer = harness_keygen("i", "infer", infer_key);
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
    http_get_expect(srv, "/v2/health/live", 401);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_server_and_metadata),
        HARNESS_MODELS_TEST(test_infer_every_model),
        HARNESS_MODELS_TEST(test_outputs),
        HARNESS_MODELS_TEST(test_not_finite),
        HARNESS_MODELS_TEST(test_infer_errors),
        HARNESS_MODELS_TEST(test_binary_errors),
        HARNESS_MODELS_TEST(test_tensor_limit),
        HARNESS_MODELS_TEST(test_curl_tool),
        HARNESS_MODELS_TEST(test_keys),
    };
    return harness_main(argc, argv, "kserve", tests, sizeof tests / sizeof tests[0]);
}
