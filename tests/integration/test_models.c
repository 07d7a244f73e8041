/* The model repository's API (/v1/models) against the real binary: listing, upload, deletion,
 * their errors, and dynamic batching. The models are written here with protobuf-c: a small
 * classifier whose outputs are computed by hand below, independently of the server's executor. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "nn/nn.h"
#include "onnx_build.h"

/* The model: x [N,3,2,2] -> Flatten -> Gemm (W [3,12], b [3], transB) -> activation -> scores
 * [N,3]. With "Relu" every op is supported; "Tanh" is not. */
#define ROW     12
#define CLASSES 3

static float weight(int k, int j)
{
    return 0.05f * (float)(k + 1) * (float)(j % 5 - 2);
}

static float bias(int k)
{
    return 0.1f * (float)(k - 1);
}

/* Input element j of row n: small distinct values, some negative so the Relu matters. */
static float input_value(int n, int j)
{
    return 0.1f * (float)((n * 13 + j * 7) % 11 - 5);
}

/* scores[n][k] = relu(sum_j W[k][j] x[n][j] + b[k]) in double. */
static double expected_score(int n, int k)
{
    double sum = bias(k);
    for (int j = 0; j < ROW; j++)
        sum += (double)weight(k, j) * (double)input_value(n, j);
    return sum > 0 ? sum : 0;
}

/* The serialised model (malloc'd, *size bytes) with the given activation op. */
static void *build_model(char *activation, size_t *size)
{
    float w[CLASSES * ROW], b[CLASSES];
    for (int k = 0; k < CLASSES; k++) {
        b[k] = bias(k);
        for (int j = 0; j < ROW; j++)
            w[k * ROW + j] = weight(k, j);
    }
    int64_t w_dims[] = {CLASSES, ROW}, b_dims[] = {CLASSES};
    Onnx__TensorProto tw = onnx_float_tensor("W", 2, w_dims, w, CLASSES * ROW);
    Onnx__TensorProto tb = onnx_float_tensor("b", 1, b_dims, b, CLASSES);
    Onnx__TensorProto *inits[] = {&tw, &tb};
    Onnx__AttributeProto trans = onnx_int_attr("transB", 1);
    Onnx__AttributeProto *gemm_attrs[] = {&trans};
    char *x[] = {"x"}, *flat[] = {"flat"}, *gemm_in[] = {"flat", "W", "b"}, *gemm_out[] = {"g"};
    char *scores[] = {"scores"};
    Onnx__NodeProto nodes[3];
    onnx_node_init(&nodes[0], "Flatten", 1, x, flat);
    onnx_node_init(&nodes[1], "Gemm", 3, gemm_in, gemm_out);
    nodes[1].n_attribute = 1;
    nodes[1].attribute = gemm_attrs;
    onnx_node_init(&nodes[2], activation, 1, gemm_out, scores);
    Onnx__NodeProto *node_ptrs[] = {&nodes[0], &nodes[1], &nodes[2]};
    struct onnx_value_info in, out;
    onnx_value_info_init(&in, "x", 4, (int64_t[]){-1, 3, 2, 2});
    onnx_value_info_init(&out, "scores", 2, (int64_t[]){-1, CLASSES});
    Onnx__ValueInfoProto *inputs[] = {&in.info}, *outputs[] = {&out.info};
    Onnx__GraphProto graph = onnx_graph("classifier", 3, node_ptrs, 2, inits, inputs, outputs);
    return onnx_pack_model(&graph, size);
}

/* ---- The repository on disk ------------------------------------------------------------------ */

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) fail_msg("cannot write %s", path);
}

/* The test's repository/name/file. */
static void write_model_file(const char *name, const char *file, const void *data, size_t size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", harness_models_dir(), name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", harness_models_dir(), name, file);
    write_bytes(path, data, size);
}

static void write_model(const char *name, char *activation, const char *config)
{
    size_t size;
    void *onnx = build_model(activation, &size);
    write_model_file(name, "model.onnx", onnx, size);
    free(onnx);
    if (config) write_model_file(name, "config.json", config, strlen(config));
}

/* The names in the test's repository, dot-entries included, sorted and joined by spaces. */
static void list_dir(char *out, size_t size)
{
    struct dirent **entries;
    int n = scandir(harness_models_dir(), &entries, NULL, alphasort);
    if (n < 0) fail_msg("cannot list %s", harness_models_dir());
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(entries[i]->d_name, ".") && strcmp(entries[i]->d_name, ".."))
            snprintf(out + strlen(out), size - strlen(out), "%s ", entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
}

/* ---- Requests -------------------------------------------------------------------------------- */

#define PRE_CONFIG                                                                                 \
    "{\"max_batch\": 8, \"preprocess\": {\"resize\": 2, \"crop\": 2, \"mean\": [0.5, 0.5, 0.5], "  \
    "\"std\": [0.25, 0.25, 0.25]}, \"labels\": \"labels.txt\"}"
#define LABELS "cat\ndog\nbird\n"

/* POST /v1/models with parts model (onnx, size), config and labels (NULL: left out) and the
 * name field (NULL: left out); key NULL sends no Authorization. */
static void upload(const struct server *srv, const char *path, const char *name, const void *onnx,
                   size_t size, const char *config, const char *labels, const char *key,
                   struct http_response *r)
{
    struct http_part parts[4];
    size_t n = 0;
    if (onnx) parts[n++] = (struct http_part){"model", "model.onnx", NULL, onnx, size};
    if (config)
        parts[n++] = (struct http_part){"config", "config.json", NULL, config, strlen(config)};
    if (labels)
        parts[n++] = (struct http_part){"labels", "labels.txt", NULL, labels, strlen(labels)};
    if (name) parts[n++] = (struct http_part){"name", NULL, NULL, name, strlen(name)};
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {auth, NULL};
    struct http_request req = {
        .path = path, .parts = parts, .part_count = n, .headers = key ? headers : NULL};
    http_send(srv, &req, r);
}

static void upload_model(const struct server *srv, const char *name, const char *config,
                         const char *labels, struct http_response *r)
{
    size_t size;
    void *onnx = build_model("Relu", &size);
    upload(srv, "/v1/models", name, onnx, size, config, labels, NULL, r);
    free(onnx);
}

static long delete_model(const struct server *srv, const char *name, const char *key)
{
    char path[128], auth[200];
    snprintf(path, sizeof path, "/v1/models/%s", name);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {auth, NULL};
    struct http_request req = {.method = "DELETE", .path = path, .headers = key ? headers : NULL};
    struct http_response r;
    http_send(srv, &req, &r);
    long status = r.status;
    if (status == 204) {
        assert_int_equal(r.body_size, 0);
        assert_null(http_header(&r, "Content-Type"));
    }
    http_response_free(&r);
    return status;
}

/* The /v2 infer body for rows first..first+rows-1 of the hand-made inputs. */
static char *infer_body(int first, int rows)
{
    json_t *data = json_array();
    for (int n = first; n < first + rows; n++)
        for (int j = 0; j < ROW; j++)
            json_array_append_new(data, json_real(input_value(n, j)));
    json_t *doc = json_pack("{s:[{s:s, s:[i, i, i, i], s:s, s:o}]}", "inputs", "name", "x", "shape",
                            rows, 3, 2, 2, "datatype", "FP32", "data", data);
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(body);
    return body;
}

static struct http_request infer_request(const char *path, const char *body)
{
    static const char *headers[] = {"Content-Type: application/json", NULL};
    return (struct http_request){
        .path = path, .headers = headers, .body = body, .body_size = strlen(body)};
}

/* Fails unless r is the infer response for rows first..first+rows-1, within 1e-5. */
static void check_scores(const struct http_response *r, int first, int rows)
{
    assert_status(r, 200);
    json_t *doc = http_json(r);
    json_t *out = json_array_get(json_object_get(doc, "outputs"), 0);
    assert_string_equal(json_str(out, "name"), "scores");
    json_t *shape = json_object_get(out, "shape");
    assert_int_equal(json_integer_value(json_array_get(shape, 0)), rows);
    assert_int_equal(json_integer_value(json_array_get(shape, 1)), CLASSES);
    json_t *data = json_object_get(out, "data");
    assert_int_equal(json_array_size(data), (size_t)(rows * CLASSES));
    for (int n = 0; n < rows; n++)
        for (int k = 0; k < CLASSES; k++) {
            double got = json_number_value(json_array_get(data, (size_t)(n * CLASSES + k)));
            if (fabs(got - expected_score(first + n, k)) > 1e-5)
                fail_msg("row %d class %d: got %.8g, expected %.8g", first + n, k, got,
                         expected_score(first + n, k));
        }
    json_decref(doc);
}

static void infer(const struct server *srv, const char *model, int first, int rows)
{
    char path[128];
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    char *body = infer_body(first, rows);
    struct http_request req = infer_request(path, body);
    struct http_response r;
    http_send(srv, &req, &r);
    check_scores(&r, first, rows);
    http_response_free(&r);
    free(body);
}

/* GET path as JSON, expecting status. */
static json_t *get_json(const struct server *srv, const char *path, long status)
{
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, status);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    return doc;
}

/* ---- Tests ----------------------------------------------------------------------------------- */

/* The description of a ready model with PRE_CONFIG and LABELS. */
static void check_ready_description(json_t *m, const char *name)
{
    assert_string_equal(json_str(m, "name"), name);
    assert_string_equal(json_str(m, "status"), "ready");
    assert_true(json_is_null(json_object_get(m, "reason")));
    json_t *want_inputs = json_loads(
        "[{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [-1, 3, 2, 2]}]", 0, NULL);
    json_t *want_outputs =
        json_loads("[{\"name\": \"scores\", \"datatype\": \"FP32\", \"shape\": [-1, 3]}]", 0, NULL);
    assert_true(json_equal(json_object_get(m, "inputs"), want_inputs));
    assert_true(json_equal(json_object_get(m, "outputs"), want_outputs));
    json_decref(want_inputs);
    json_decref(want_outputs);
    assert_int_equal(json_int(m, "max_batch"), 8);
    assert_true(json_is_true(json_object_get(m, "preprocess")));
    assert_int_equal(json_int(m, "label_count"), 3);
}

/* Fails unless the unavailable model m has a reason holding text, and no tensors. */
static void check_unavailable(json_t *m, const char *name, const char *text)
{
    assert_string_equal(json_str(m, "name"), name);
    assert_string_equal(json_str(m, "status"), "unavailable");
    assert_contains(json_str(m, "reason"), text);
    assert_int_equal(json_array_size(json_object_get(m, "inputs")), 0);
}

static void test_list_and_get(void **state)
{
    write_model("good", "Relu", PRE_CONFIG);
    write_model_file("good", "labels.txt", LABELS, strlen(LABELS));
    write_model_file("broken", "model.onnx", "garbage", 7);
    write_model("badconfig", "Relu", "{\"max_batch\": 2, \"colour\": true}");
    write_model("unsupported", "Tanh", NULL);
    write_model("plain", "Relu", NULL);
    struct server *srv = harness_start_with_models(state, "");
    json_t *doc = get_json(srv, "/v1/models", 200);
    json_t *models = json_object_get(doc, "models");
    assert_int_equal(json_array_size(models), 5);
    check_unavailable(json_array_get(models, 0), "badconfig", "config.json: colour: unknown field");
    check_unavailable(json_array_get(models, 1), "broken", "model.onnx");
    check_ready_description(json_array_get(models, 2), "good");
    json_t *plain = json_array_get(models, 3);
    assert_string_equal(json_str(plain, "status"), "ready");
    assert_int_equal(json_int(plain, "max_batch"), 0);
    assert_true(json_is_false(json_object_get(plain, "preprocess")));
    assert_int_equal(json_int(plain, "label_count"), 0);
    check_unavailable(json_array_get(models, 4), "unsupported", "Tanh");
    /* One model alone is described as in the list. */
    json_t *one = get_json(srv, "/v1/models/good", 200);
    assert_true(json_equal(one, json_array_get(models, 2)));
    json_decref(one);
    json_decref(doc);
    struct http_response r;
    http_get(srv, "/v1/models/nope", &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);
    /* The server serves the good models regardless of the bad ones. */
    infer(srv, "good", 0, 2);
    harness_pass(state);
}

/* Every config.json field is validated, with a message naming it. */
static void test_config_errors(void **state)
{
    static const struct {
        const char *config, *message;
    } cases[] = {
        {"[1]", "config.json: must be a JSON object"},
        {"{\"max_batch\": -1}", "config.json: max_batch: must be an integer"},
        {"{\"input\": \"y\"}", "config.json: input: must name one of the model's inputs"},
        {"{\"output\": 3}", "config.json: output: must name one of the model's outputs"},
        {"{\"output_kind\": \"odds\"}", "config.json: output_kind: must be \"logits\" or"},
        {"{\"layout\": \"CHW\"}", "config.json: layout: must be \"NCHW\" or \"NHWC\""},
        {"{\"layout\": \"NHWC\", \"preprocess\": {}}", "input x needs a 4-dimensional NHWC shape"},
        {"{\"preprocess\": {\"resize\": 0}}", "config.json: preprocess.resize: must be an integer"},
        {"{\"preprocess\": {\"crop\": [2]}}",
         "config.json: preprocess.crop: must be an integer or"},
        {"{\"preprocess\": {\"interpolation\": \"cubic\"}}", "preprocess.interpolation: must be"},
        {"{\"preprocess\": {\"scale\": 0}}", "config.json: preprocess.scale: must be a number > 0"},
        {"{\"preprocess\": {\"mean\": [0, 0]}}", "config.json: preprocess.mean: must be an array"},
        {"{\"preprocess\": {\"std\": [1, 0, 1]}}",
         "config.json: preprocess.std[1]: must be a number > 0"},
        {"{\"preprocess\": {\"channel_order\": \"GBR\"}}", "preprocess.channel_order: must be"},
        {"{\"preprocess\": {\"color\": \"sRGB\"}}",
         "config.json: preprocess.color: must be \"keep\" (the pixel values as stored"},
        {"{\"preprocess\": {\"color\": 1}}", "preprocess.color: must be"},
        {"{\"preprocess\": {\"size\": 3}}", "config.json: preprocess.size: unknown field"},
        {"{\"labels\": \"../labels.txt\"}", "config.json: labels: must be the name of a file"},
        {"{\"labels\": \"missing.txt\"}", "config.json: labels: missing.txt is not a readable"},
        {"{\"dynamic_batching\": {}}", "config.json: dynamic_batching: needs max_batch >= 1"},
        {"{\"max_batch\": 2, \"dynamic_batching\": {\"max_delay_us\": -5}}",
         "dynamic_batching.max_delay_us: must be an integer"},
        {"{\"max_batch\": 2, \"dynamic_batching\": {\"delay\": 5}}",
         "config.json: dynamic_batching.delay: unknown field"},
        {"{\"max_batch\": 1,}", "config.json: line 1"},
    };
    char name[16];
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "case%02zu", i);
        write_model(name, "Relu", cases[i].config);
    }
    /* Labels that disagree with the scores output's 3 classes. */
    write_model("twolabels", "Relu", "{\"labels\": \"labels.txt\"}");
    write_model_file("twolabels", "labels.txt", "a\nb\n", 4);
    /* A labels file that is a symlink (here to a file outside the folder) is refused. */
    write_model("symlink", "Relu", "{\"labels\": \"labels.txt\"}");
    write_model_file("twolabels", "../outside.txt", LABELS, strlen(LABELS));
    char target[PATH_MAX], link_path[PATH_MAX];
    snprintf(target, sizeof target, "%s/twolabels/../outside.txt", harness_models_dir());
    snprintf(link_path, sizeof link_path, "%s/symlink/labels.txt", harness_models_dir());
    if (symlink(target, link_path) != 0) fail_msg("symlink failed");
    struct server *srv = harness_start_with_models(state, "");
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/models/case%02zu", i);
        json_t *m = get_json(srv, path, 200);
        snprintf(name, sizeof name, "case%02zu", i);
        check_unavailable(m, name, cases[i].message);
        json_decref(m);
    }
    json_t *m = get_json(srv, "/v1/models/twolabels", 200);
    check_unavailable(m, "twolabels", "labels.txt holds 2 labels; output scores has 3 classes");
    json_decref(m);
    m = get_json(srv, "/v1/models/symlink", 200);
    check_unavailable(m, "symlink", "labels: labels.txt is not a readable file");
    json_decref(m);
    harness_pass(state);
}

static void test_upload_and_infer(void **state)
{
    struct server *srv = harness_start_with_models(state, "");
    struct http_response r;
    upload_model(srv, "uploaded", PRE_CONFIG, LABELS, &r);
    assert_status(&r, 201);
    json_t *doc = http_json(&r);
    check_ready_description(doc, "uploaded");
    json_decref(doc);
    http_response_free(&r);
    /* The folder is in place, whole, with nothing else left behind. */
    char listing[1024];
    list_dir(listing, sizeof listing);
    assert_string_equal(listing, "uploaded ");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/uploaded/labels.txt", harness_models_dir());
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, strlen(LABELS));
    infer(srv, "uploaded", 3, 2);
    /* The name may come from the query instead, and config and labels are optional. */
    size_t size;
    void *onnx = build_model("Relu", &size);
    upload(srv, "/v1/models?name=bare", NULL, onnx, size, NULL, NULL, NULL, &r);
    free(onnx);
    assert_status(&r, 201);
    http_response_free(&r);
    infer(srv, "bare", 0, 1);
    doc = get_json(srv, "/v1/models", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "models")), 2);
    json_decref(doc);
    harness_pass(state);
}

/* Fails unless the upload is refused with status and code, its message holding text. */
static void check_refused(struct http_response *r, long status, const char *code, const char *text)
{
    assert_error_envelope(r, status, code);
    json_t *doc = http_json(r);
    assert_contains(json_str(json_object_get(doc, "error"), "message"), text);
    json_decref(doc);
    http_response_free(r);
}

#define A10 "aaaaaaaaaa"

static void test_upload_errors(void **state)
{
    write_model("existing", "Relu", NULL);
    struct server *srv = harness_start_with_models(state, "");
    struct http_response r;
    upload_model(srv, "existing", NULL, NULL, &r);
    check_refused(&r, 409, "conflict", "a model named existing exists");

    size_t size;
    void *onnx = build_model("Relu", &size);
    upload(srv, "/v1/models", "garbage", "garbage", 7, NULL, NULL, NULL, &r);
    check_refused(&r, 422, "invalid_model", "model.onnx");
    upload(srv, "/v1/models", "truncated", onnx, size / 2, NULL, NULL, NULL, &r);
    check_refused(&r, 422, "invalid_model", "model.onnx");
    upload(srv, "/v1/models", "badconfig", onnx, size, "{\"preprocess\": {\"mean\": [1]}}", NULL,
           NULL, &r);
    check_refused(&r, 422, "invalid_model", "config.json: preprocess.mean: must be an array");
    upload(srv, "/v1/models", "escape", onnx, size, "{\"labels\": \"../escape.txt\"}", LABELS, NULL,
           &r);
    check_refused(&r, 422, "invalid_model", "labels: config.json's \"labels\" must name");
    upload(srv, "/v1/models", "nolabels", onnx, size, "{\"labels\": \"labels.txt\"}", NULL, NULL,
           &r);
    check_refused(&r, 422, "invalid_model", "labels: labels.txt is not a readable file");
    upload(srv, "/v1/models", "unnamedlabels", onnx, size, NULL, LABELS, NULL, &r);
    check_refused(&r, 422, "invalid_model", "labels: config.json's \"labels\" must name");
    static const char *const bad_names[] = {"",    ".hidden",   "a/b",
                                            "a b", "x\xc3\xa9", A10 A10 A10 A10 A10 A10 "aaaaa"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        upload(srv, "/v1/models", bad_names[i], onnx, size, NULL, NULL, NULL, &r);
        check_refused(&r, 422, "invalid_model", "name: must be 1 to 64 characters");
    }
    upload(srv, "/v1/models", NULL, onnx, size, NULL, NULL, NULL, &r);
    check_refused(&r, 422, "invalid_model", "name: required");
    upload(srv, "/v1/models", "nomodel", NULL, 0, "{}", NULL, NULL, &r);
    check_refused(&r, 422, "invalid_model", "model: required");
    free(onnx);
    /* An unsupported op is found at upload, naming the node's op. */
    onnx = build_model("Tanh", &size);
    upload(srv, "/v1/models", "tanh", onnx, size, NULL, NULL, NULL, &r);
    check_refused(&r, 422, "invalid_model", "Tanh");
    free(onnx);
    /* Not multipart at all. */
    struct http_request req = infer_request("/v1/models", "{}");
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 415, "unsupported_media_type");
    http_response_free(&r);
    /* Nothing of the refused uploads is on disk or listed. */
    char listing[1024];
    list_dir(listing, sizeof listing);
    assert_string_equal(listing, "existing ");
    json_t *doc = get_json(srv, "/v1/models", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "models")), 1);
    json_decref(doc);
    harness_pass(state);
}

/* A model file past max_model_bytes is unavailable at start-up, and a 413 on upload. */
static void test_max_model_bytes(void **state)
{
    write_model("big", "Relu", NULL);
    size_t size;
    void *onnx = build_model("Relu", &size);
    char extra[64];
    snprintf(extra, sizeof extra, "\"max_model_bytes\": %zu", size - 1);
    struct server *srv = harness_start_with_models(state, extra);
    json_t *m = get_json(srv, "/v1/models/big", 200);
    char reason[128];
    snprintf(reason, sizeof reason, "model.onnx is %zu bytes; max_model_bytes is %zu", size,
             size - 1);
    check_unavailable(m, "big", reason);
    json_decref(m);
    struct http_response r;
    upload(srv, "/v1/models", "bigger", onnx, size, NULL, NULL, NULL, &r);
    check_refused(&r, 413, "payload_too_large", "max_model_bytes");
    free(onnx);
    char listing[1024];
    list_dir(listing, sizeof listing);
    assert_string_equal(listing, "big ");
    harness_pass(state);
}

static void test_delete(void **state)
{
    write_model("doomed", "Relu", NULL);
    write_model_file("broken", "model.onnx", "garbage", 7);
    struct server *srv = harness_start_with_models(state, "");
    assert_int_equal(delete_model(srv, "doomed", NULL), 204);
    assert_int_equal(delete_model(srv, "doomed", NULL), 404);
    assert_int_equal(delete_model(srv, "broken", NULL), 204);
    json_t *doc = get_json(srv, "/v1/models/doomed", 404);
    json_decref(doc);
    char listing[1024];
    list_dir(listing, sizeof listing);
    assert_string_equal(listing, "");
    /* The name is free again. */
    struct http_response r;
    upload_model(srv, "doomed", NULL, NULL, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    infer(srv, "doomed", 1, 1);
    harness_pass(state);
}

/* Names no model may have never reach the file system. The inputs: DELETE of a name of
 * some 4,090 characters or more answered 500 "File name too long" with the models folder's path;
 * DELETE of tiny%00x deleted tiny. */
static void test_delete_odd_names(void **state)
{
    write_model("tiny", "Relu", NULL);
    struct server *srv = harness_start_with_models(state, "");
    static char path[5200];
    int n = snprintf(path, sizeof path, "/v1/models/");
    memset(path + n, 'a', 5000);
    path[n + 5000] = '\0';
    const char *methods[] = {"DELETE", "GET"};
    for (size_t i = 0; i < 2; i++) {
        struct http_request req = {.method = methods[i], .path = path};
        struct http_response r;
        http_send(srv, &req, &r);
        assert_error_envelope(&r, 404, "not_found");
        assert_contains(r.body, "unknown model: aaaa");
        assert_not_contains(r.body, harness_models_dir());
        http_response_free(&r);
    }
    struct http_request nul = {.method = "DELETE", .path = "/v1/models/tiny%00x"};
    struct http_response r;
    http_send(srv, &nul, &r);
    assert_error_envelope(&r, 400, "bad_request");
    assert_contains(r.body, "%00");
    http_response_free(&r);
    json_decref(get_json(srv, "/v1/models/tiny", 200));
    char listing[1024];
    list_dir(listing, sizeof listing);
    assert_string_equal(listing, "tiny ");
    harness_pass(state);
}

/* Waits (5 s at most) until the server's stderr holds text. */
static void wait_for_log(const struct server *srv, const char *text)
{
    for (double end = harness_now() + 5; harness_now() < end; usleep(20 * 1000)) {
        char *log = server_stderr(srv);
        int found = log && strstr(log, text);
        free(log);
        if (found) return;
    }
    fail_msg("the server never logged \"%s\"", text);
}

/* SIGHUP reads models_dir again: a folder copied in is served, a removed one is not, and a fixed
 * broken one loads; the server keeps running. */
static void test_sighup_rescans(void **state)
{
    write_model("gone", "Relu", NULL);
    write_model_file("fixed", "model.onnx", "garbage", 7);
    struct server *srv = harness_start_with_models(state, "");
    write_model("copied", "Relu", NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "rm -r '%s/gone'", harness_models_dir());
    assert_int_equal(system(path), 0);
    write_model("fixed", "Relu", NULL);
    assert_int_equal(kill(srv->pid, SIGHUP), 0);
    wait_for_log(srv, "1 models added, 1 reloaded, 1 dropped");
    json_t *gone = get_json(srv, "/v1/models/gone", 404);
    json_decref(gone);
    json_t *fixed = get_json(srv, "/v1/models/fixed", 200);
    assert_string_equal(json_str(fixed, "status"), "ready");
    json_decref(fixed);
    infer(srv, "copied", 1, 1);
    infer(srv, "fixed", 1, 1);
    harness_pass(state);
}

/* Waits (5 s at most) until the model at path counts that many inference calls. */
static void wait_for_requests(const struct server *srv, const char *path, json_int_t count)
{
    for (double end = harness_now() + 5; harness_now() < end; usleep(20 * 1000)) {
        json_t *m = get_json(srv, path, 200);
        json_int_t seen = json_int(json_object_get(m, "stats"), "requests");
        json_decref(m);
        if (seen == count) return;
    }
    fail_msg("%s never counted %lld requests", path, (long long)count);
}

/* A request that is running keeps its model when it is deleted: the model gathers calls for
 * 1.5 s, so the DELETE lands while the request waits in model_infer. */
static void test_delete_in_flight(void **state)
{
    write_model("slow", "Relu",
                "{\"max_batch\": 8, \"dynamic_batching\": {\"max_delay_us\": 1500000}}");
    struct server *srv = harness_start_with_models(state, "");
    char *body = infer_body(2, 1);
    struct http_request req = infer_request("/v2/models/slow/infer", body);
    struct http_async *running = http_async_start(srv, &req);
    wait_for_requests(srv, "/v1/models/slow", 1);
    assert_int_equal(delete_model(srv, "slow", NULL), 204);
    assert_false(http_async_done(running));
    json_t *doc = get_json(srv, "/v1/models/slow", 404);
    json_decref(doc);
    struct http_response r;
    http_async_join(running, &r);
    check_scores(&r, 2, 1);
    http_response_free(&r);
    free(body);
    char listing[1024];
    list_dir(listing, sizeof listing);
    assert_string_equal(listing, "");
    harness_pass(state);
}

/* Concurrent requests are run as one batch, and each gets exactly its own rows. */
static void test_dynamic_batching(void **state)
{
    enum { CALLS = 4 };
    /* A 5 s delay: the batch runs as soon as it is full, long before. */
    write_model("batched", "Relu",
                "{\"max_batch\": 5, \"dynamic_batching\": {\"max_delay_us\": 5000000}}");
    struct server *srv = harness_start_with_models(state, "\"workers\": 4");
    /* Rows 0, 1-2, 3 and 4: 5 rows in all, the batch's limit. */
    static const int first[CALLS] = {0, 1, 3, 4}, rows[CALLS] = {1, 2, 1, 1};
    char *bodies[CALLS];
    struct http_request reqs[CALLS];
    struct http_async *running[CALLS];
    double started = harness_now();
    for (int i = 0; i < CALLS; i++) {
        bodies[i] = infer_body(first[i], rows[i]);
        reqs[i] = infer_request("/v2/models/batched/infer", bodies[i]);
        running[i] = http_async_start(srv, &reqs[i]);
    }
    for (int i = 0; i < CALLS; i++) {
        struct http_response r;
        http_async_join(running[i], &r);
        check_scores(&r, first[i], rows[i]);
        http_response_free(&r);
        free(bodies[i]);
    }
    assert_true(harness_now() - started < 4.0);
    json_t *m = get_json(srv, "/v1/models/batched", 200);
    json_t *stats = json_object_get(m, "stats");
    assert_int_equal(json_int(stats, "requests"), CALLS);
    assert_int_equal(json_int(stats, "executions"), 1);
    assert_int_equal(json_int(json_object_get(m, "dynamic_batching"), "max_delay_us"), 5000000);
    json_decref(m);
    harness_pass(state);
}

/* Listing needs infer; uploading and deleting need admin. */
static void test_scopes(void **state)
{
    write_model("m", "Relu", NULL);
    char infer_key[128], admin_key[128];
    json_t *keys = json_pack("[o, o]", harness_keygen("i", "infer", infer_key),
                             harness_keygen("a", "admin", admin_key));
    char *list = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    char extra[2048];
    snprintf(extra, sizeof extra, "\"api_keys\": %s", list);
    free(list);
    struct server *srv = harness_start_with_models(state, extra);
    size_t size;
    void *onnx = build_model("Relu", &size);
    struct http_response r;
    upload(srv, "/v1/models", "new", onnx, size, NULL, NULL, NULL, &r);
    assert_error_envelope(&r, 401, "unauthorized");
    http_response_free(&r);
    upload(srv, "/v1/models", "new", onnx, size, NULL, NULL, infer_key, &r);
    assert_error_envelope(&r, 403, "forbidden");
    http_response_free(&r);
    assert_int_equal(delete_model(srv, "m", infer_key), 403);
    upload(srv, "/v1/models", "new", onnx, size, NULL, NULL, admin_key, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    free(onnx);
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", infer_key);
    const char *headers[] = {auth, NULL};
    struct http_request req = {.path = "/v1/models", .headers = headers};
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    http_response_free(&r);
    assert_int_equal(delete_model(srv, "m", admin_key), 204);
    harness_pass(state);
}

/* An LPIPS backbone: x [N, 3, H, W] -> Relu -> r -> Relu -> y, tapped at r. */
static void *build_backbone(size_t *size)
{
    char *x[] = {"x"}, *r[] = {"r"}, *y[] = {"y"};
    Onnx__NodeProto nodes[2];
    onnx_node_init(&nodes[0], "Relu", 1, x, r);
    onnx_node_init(&nodes[1], "Relu", 1, r, y);
    Onnx__NodeProto *node_ptrs[] = {&nodes[0], &nodes[1]};
    struct onnx_value_info in, out;
    onnx_value_info_init(&in, "x", 4, (int64_t[]){-1, 3, -1, -1});
    onnx_value_info_init(&out, "y", 4, (int64_t[]){-1, 3, -1, -1});
    Onnx__ValueInfoProto *inputs[] = {&in.info}, *outputs[] = {&out.info};
    Onnx__GraphProto graph = onnx_graph("backbone", 2, node_ptrs, 0, NULL, inputs, outputs);
    return onnx_pack_model(&graph, size);
}

/* The perceptual section reports "lin" as config.json gives it: false, or weights files. */
static void test_perceptual_lin(void **state)
{
    static const char *const models[][3] = {
        {"unweighted", "{\"perceptual\": {\"taps\": [\"r\"], \"lin\": false}}", "false"},
        {"weighted", "{\"perceptual\": {\"taps\": [\"r\"], \"lin\": [\"lin.json\"]}}", "true"},
    };
    size_t size;
    void *onnx = build_backbone(&size);
    for (size_t i = 0; i < 2; i++) {
        write_model_file(models[i][0], "model.onnx", onnx, size);
        write_model_file(models[i][0], "config.json", models[i][1], strlen(models[i][1]));
    }
    free(onnx);
    write_model_file("weighted", "lin.json", "[0.5, 1, 2]", 11);
    struct server *srv = harness_start_with_models(state, "");
    for (size_t i = 0; i < 2; i++) {
        char path[64], want_text[128];
        snprintf(path, sizeof path, "/v1/models/%s", models[i][0]);
        /* A Relu has an output for a 1x1 image. */
        snprintf(want_text, sizeof want_text,
                 "{\"status\": \"ready\", \"taps\": [\"r\"], \"lin\": %s, \"min_side\": 1}",
                 models[i][2]);
        json_t *doc = get_json(srv, path, 200), *want = json_loads(want_text, 0, NULL);
        assert_non_null(want);
        json_t *got = json_object_get(doc, "perceptual");
        if (!json_equal(got, want)) {
            char *text = json_dumps(got, JSON_COMPACT);
            fail_msg("%s: perceptual is %s, expected %s", models[i][0], text, want_text);
        }
        json_decref(want);
        json_decref(doc);
    }
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_list_and_get),     HARNESS_MODELS_TEST(test_config_errors),
        HARNESS_MODELS_TEST(test_upload_and_infer), HARNESS_MODELS_TEST(test_upload_errors),
        HARNESS_MODELS_TEST(test_max_model_bytes),  HARNESS_MODELS_TEST(test_delete),
        HARNESS_MODELS_TEST(test_delete_in_flight), HARNESS_MODELS_TEST(test_dynamic_batching),
        HARNESS_MODELS_TEST(test_scopes),           HARNESS_MODELS_TEST(test_sighup_rescans),
        HARNESS_MODELS_TEST(test_perceptual_lin),   HARNESS_MODELS_TEST(test_delete_odd_names),
    };
    return harness_main(argc, argv, "models", tests, sizeof tests / sizeof tests[0]);
}
