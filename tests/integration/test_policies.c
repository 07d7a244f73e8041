/* Saved policies against the real binary: POST /v1/policies, PUT and DELETE /v1/policies/{name},
 * the list and a saved one shown; a saved name in /v1/augment (query or form field) and
 * /v1/augment/audio gives the same bytes as its document written inline (same seed), a replaced
 * one is not served from the policy cache, a deleted one is refused; they survive a restart; the
 * scopes; bad names and documents; and a job keeps the document a saved name had at submission. */
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
#include "harness.h"
#include "job_client.h"

#define TILT                                                                                       \
    "{\"seq\": [{\"op\": \"Rotate\", \"degrees\": 17}, {\"op\": \"Posterize\", \"bits\": 3}]}"
#define FLIPPED "{\"op\": \"Invert\"}"

/* POST /v1/augment with policy (escaped here) and seed 7: the status, and the PNG into *r. */
static long augment(const struct server *srv, const char *policy, struct http_response *r)
{
    static const unsigned char teal[3] = {30, 160, 140};
    size_t size;
    void *png = solid_png(teal, &size);
    char *escaped = curl_easy_escape(NULL, policy, 0);
    char path[2048];
    snprintf(path, sizeof path, "/v1/augment?policy=%s&seed=7", escaped);
    curl_free(escaped);
    const char *headers[] = {"Content-Type: image/png", "Accept: image/png", NULL};
    struct http_request req = {.path = path, .headers = headers, .body = png, .body_size = size};
    http_send(srv, &req, r);
    free(png);
    return r->status;
}

/* Whether augmenting with a and with b gives the same image bytes (both must succeed). */
static int same_output(const struct server *srv, const char *a, const char *b)
{
    struct http_response ra, rb;
    augment(srv, a, &ra);
    augment(srv, b, &rb);
    assert_status(&ra, 200);
    assert_status(&rb, 200);
    int same = ra.body_size == rb.body_size && memcmp(ra.body, rb.body, ra.body_size) == 0;
    http_response_free(&ra);
    http_response_free(&rb);
    return same;
}

/* method path with body and key: the status must be status; the body's JSON (NULL for none). */
static json_t *send_expect(const struct server *srv, const char *method, const char *path,
                           const char *body, const char *key, long status)
{
    struct http_response r;
    job_send(srv, method, path, body, key, &r);
    assert_status(&r, status);
    json_t *doc = r.body_size ? http_json(&r) : NULL;
    http_response_free(&r);
    return doc;
}

/* The same for a refusal: the error's message must hold needle. */
static void refused(const struct server *srv, const char *method, const char *path,
                    const char *body, long status, const char *needle)
{
    json_t *doc = send_expect(srv, method, path, body, NULL, status);
    const char *message =
        json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    assert_contains(message, needle);
    json_decref(doc);
}

/* The JSON of text, which must parse. */
static json_t *json_of(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    return doc;
}

static void save_tilt(const struct server *srv, const char *key)
{
    json_t *doc = send_expect(srv, "POST", "/v1/policies",
                              "{\"name\": \"tilt\", \"policy\": " TILT "}", key, 201);
    json_t *expected = json_of(TILT);
    assert_true(json_equal(json_object_get(doc, "policy"), expected));
    assert_string_equal(json_str(doc, "name"), "tilt");
    json_decref(expected);
    json_decref(doc);
}

static void test_save_use_replace_delete(void **state)
{
    struct server *srv = harness_start(state, NULL);
    save_tilt(srv, NULL);

    /* Listed after the presets, which stay as they were; shown with its document. */
    json_t *list = send_expect(srv, "GET", "/v1/policies", NULL, NULL, 200);
    assert_true(json_array_size(json_object_get(list, "presets")) > 5);
    assert_string_equal(json_str(json_array_get(json_object_get(list, "presets"), 0), "name"),
                        "randaugment");
    json_t *saved = json_object_get(list, "saved");
    assert_int_equal(json_array_size(saved), 1);
    assert_string_equal(json_str(json_array_get(saved, 0), "name"), "tilt");
    assert_contains(json_str(json_array_get(saved, 0), "created"), "T");
    json_decref(list);
    json_t *shown = send_expect(srv, "GET", "/v1/policies/tilt", NULL, NULL, 200);
    json_t *expected = json_of(TILT);
    assert_true(json_equal(json_object_get(shown, "policy"), expected));
    json_decref(expected);
    json_decref(shown);

    /* By name, alone or inside another document, as the document itself. */
    assert_true(same_output(srv, "tilt", TILT));
    assert_false(same_output(srv, "tilt", FLIPPED)); /* so the replace below shows */
    assert_true(same_output(srv, "{\"seq\": [\"tilt\", {\"op\": \"Invert\"}]}",
                            "{\"seq\": [" TILT ", {\"op\": \"Invert\"}]}"));

    /* In a multipart form's policy field too: the trace is the saved document's ops. */
    static const unsigned char grey[3] = {120, 120, 120};
    size_t size;
    void *png = solid_png(grey, &size);
    const struct http_part parts[] = {{"image", "grey.png", "image/png", png, size},
                                      {"policy", NULL, NULL, "tilt", 4}};
    struct http_request form = {.path = "/v1/augment", .parts = parts, .part_count = 2};
    struct http_response r;
    http_send(srv, &form, &r);
    free(png);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *trace = json_object_get(json_array_get(json_object_get(doc, "results"), 0), "trace");
    assert_int_equal(json_array_size(trace), 2);
    assert_string_equal(json_str(json_array_get(trace, 0), "op"), "Rotate");
    assert_string_equal(json_str(json_array_get(trace, 1), "op"), "Posterize");
    json_decref(doc);
    http_response_free(&r);

    /* Taken: 409; replaced by PUT (200), and the cached parse of "tilt" is not served again. */
    refused(srv, "POST", "/v1/policies", "{\"name\": \"tilt\", \"policy\": " FLIPPED "}", 409,
            "saved already");
    json_decref(
        send_expect(srv, "PUT", "/v1/policies/tilt", "{\"policy\": " FLIPPED "}", NULL, 200));
    assert_true(same_output(srv, "tilt", FLIPPED));
    /* PUT of a new name creates it. */
    json_decref(
        send_expect(srv, "PUT", "/v1/policies/other", "{\"policy\": \"randaugment\"}", NULL, 201));

    /* Deleted: 204, then unknown everywhere. */
    assert_null(send_expect(srv, "DELETE", "/v1/policies/tilt", NULL, NULL, 204));
    augment(srv, "tilt", &r);
    assert_error_envelope(&r, 422, "invalid_policy");
    assert_contains(r.body, "unknown preset \\\"tilt\\\"");
    http_response_free(&r);
    refused(srv, "GET", "/v1/policies/tilt", NULL, 404, "no preset or saved policy named tilt");
    refused(srv, "DELETE", "/v1/policies/tilt", NULL, 404, "no saved policy named tilt");
    refused(srv, "DELETE", "/v1/policies/randaugment", NULL, 409, "is a preset");
    harness_pass(state);
}

/* POST /v1/augment/audio of the speech fixture as WAV with policy (escaped here): the body. */
static struct http_response augment_audio(const struct server *srv, const char *policy)
{
    size_t size;
    char *speech = harness_read_source_file("tests/parity/fixtures/audio/speech.wav", &size);
    char *escaped = curl_easy_escape(NULL, policy, 0);
    char path[512];
    snprintf(path, sizeof path, "/v1/augment/audio?output=wav&seed=3&policy=%s", escaped);
    curl_free(escaped);
    const char *headers[] = {"Content-Type: audio/wav", NULL};
    struct http_request req = {.path = path, .headers = headers, .body = speech, .body_size = size};
    struct http_response r;
    http_send(srv, &req, &r);
    free(speech);
    assert_status(&r, 200);
    return r;
}

/* An audio policy saved and named in /v1/augment/audio: the bytes of its document inline. */
static void test_audio_by_name(void **state)
{
    struct server *srv = harness_start(state, NULL);
    const char *quieter = "{\"seq\": [{\"op\": \"Gain\", \"db\": -6}, {\"op\": \"Speed\", "
                          "\"factor\": 1.1}]}";
    char body[256];
    snprintf(body, sizeof body, "{\"name\": \"quieter\", \"policy\": %s}", quieter);
    json_decref(send_expect(srv, "POST", "/v1/policies", body, NULL, 201));
    struct http_response named = augment_audio(srv, "quieter");
    struct http_response inline_doc = augment_audio(srv, quieter);
    struct http_response gain_only = augment_audio(srv, "{\"op\": \"Gain\", \"db\": -6}");
    assert_int_equal(named.body_size, inline_doc.body_size);
    assert_memory_equal(named.body, inline_doc.body, named.body_size);
    assert_true(named.body_size != gain_only.body_size); /* Speed shortened it */
    http_response_free(&named);
    http_response_free(&inline_doc);
    http_response_free(&gain_only);
    harness_pass(state);
}

static void test_bad_requests(void **state)
{
    struct server *srv = harness_start(state, NULL);
    refused(srv, "POST", "/v1/policies", "{\"name\": \"a b\", \"policy\": \"randaugment\"}", 422,
            "name: 1 to 64");
    char body[256];
    snprintf(body, sizeof body, "{\"name\": \"%065d\", \"policy\": \"randaugment\"}", 1);
    refused(srv, "POST", "/v1/policies", body, 422, "name: 1 to 64");
    refused(srv, "POST", "/v1/policies", "{\"name\": \"randaugment\", \"policy\": " FLIPPED "}",
            409, "preset");
    refused(srv, "POST", "/v1/policies", "{\"name\": \"autoaugment-cifar10\", \"policy\": {}}", 409,
            "preset");
    refused(srv, "POST", "/v1/policies",
            "{\"name\": \"x\", \"policy\": {\"seq\": [{\"op\": "
            "\"Rotate\", \"degrees\": 999}]}}",
            422, "policy/seq/0/degrees: must be in");
    refused(srv, "POST", "/v1/policies", "{\"name\": \"x\"}", 422, "policy: required");
    refused(srv, "POST", "/v1/policies", "{\"policy\": \"randaugment\"}", 422, "name: required");
    refused(srv, "POST", "/v1/policies", "{\"name\": \"x\", \"policy\": 1, \"replace\": true}", 422,
            "replace: unknown member");
    refused(srv, "POST", "/v1/policies", "[1]", 422, "the body must be an object");
    refused(srv, "PUT", "/v1/policies/validate", "{\"policy\": \"randaugment\"}", 409, "reserved");
    refused(srv, "PUT", "/v1/policies/a%20b", "{\"policy\": \"randaugment\"}", 422,
            "name: 1 to 64");
    /* Nested past the parser's depth. */
    char deep[1024] = "{\"name\": \"deep\", \"policy\": ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"seq\": [");
    strcat(deep, FLIPPED);
    for (int i = 0; i < 40; i++)
        strcat(deep, "]}");
    strcat(deep, "}");
    refused(srv, "POST", "/v1/policies", deep, 422, "nest deeper than");
    /* Not UTF-8: jansson refuses the text. */
    refused(srv, "POST", "/v1/policies", "{\"name\": \"caf\xe9\", \"policy\": \"randaugment\"}",
            400, "the body is not JSON");
    /* A saved policy takes no parameters. */
    json_decref(send_expect(srv, "POST", "/v1/policies",
                            "{\"name\": \"flip\", \"policy\": " FLIPPED "}", NULL, 201));
    refused(srv, "POST", "/v1/policies",
            "{\"name\": \"y\", \"policy\": {\"preset\": \"flip\", \"n\": 2}}", 422,
            "policy/: saved policy \"flip\" takes no parameters");
    /* Nothing of the above was saved. */
    json_t *list = send_expect(srv, "GET", "/v1/policies", NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "saved")), 1);
    json_decref(list);
    harness_pass(state);
}

static void test_restart_keeps_them(void **state)
{
    struct server *first = harness_start(state, NULL);
    save_tilt(first, NULL);
    /* Saved with a saved one inside: stored expanded, so deleting that one later leaves it be. */
    json_decref(send_expect(first, "POST", "/v1/policies",
                            "{\"name\": \"twice\", \"policy\": {\"seq\": [\"tilt\", \"tilt\"]}}",
                            NULL, 201));
    assert_int_equal(server_stop(first, SIGTERM, 15000), 0);
    struct server *second = job_restart_on(state, first, "{}");
    assert_true(same_output(second, "tilt", TILT));
    assert_null(send_expect(second, "DELETE", "/v1/policies/tilt", NULL, NULL, 204));
    assert_true(same_output(second, "twice", "{\"seq\": [" TILT ", " TILT "]}"));
    harness_pass(state);
}

static void test_scopes(void **state)
{
    char augment_key[128], jobs_key[128], admin_key[128];
    json_t *keys = json_pack(
        "{s:[o, o, o]}", "api_keys", harness_keygen("painter", "augment", augment_key),
        harness_keygen("runner", "jobs", jobs_key), harness_keygen("boss", "admin", admin_key));
    char *extra = json_dumps(keys, JSON_COMPACT);
    struct server *srv = harness_start(state, extra);
    free(extra);
    json_decref(keys);
    const char *body = "{\"name\": \"tilt\", \"policy\": " TILT "}";
    struct http_response r;
    job_send(srv, "POST", "/v1/policies", body, NULL, &r);
    assert_error_envelope(&r, 401, "unauthorized");
    http_response_free(&r);
    job_send(srv, "POST", "/v1/policies", body, augment_key, &r);
    assert_error_envelope(&r, 403, "forbidden");
    http_response_free(&r);
    save_tilt(srv, jobs_key);
    /* Any key reads them, and the record names the key that saved it. */
    json_t *shown = send_expect(srv, "GET", "/v1/policies/tilt", NULL, augment_key, 200);
    assert_string_equal(json_str(shown, "owner"), "runner");
    json_decref(shown);
    job_send(srv, "DELETE", "/v1/policies/tilt", NULL, augment_key, &r);
    assert_error_envelope(&r, 403, "forbidden");
    http_response_free(&r);
    json_decref(
        send_expect(srv, "PUT", "/v1/policies/tilt", "{\"policy\": " FLIPPED "}", admin_key, 200));
    assert_null(send_expect(srv, "DELETE", "/v1/policies/tilt", NULL, admin_key, 204));
    harness_pass(state);
}

/* A train job submitted with a saved name keeps the document the name had then: its params show
 * it, and it runs to the end after the saved policy is deleted. */
static void test_job_keeps_the_document(void **state)
{
    struct server *srv = harness_start_with_models(state, "\"job_threads\": 2");
    char ds[64], id[32], params[1024];
    colour_dataset_make(srv, CLASSES, 4, ds);
    save_tilt(srv, NULL);
    snprintf(params, sizeof params,
             "{\"dataset\": \"%s\", \"split\": \"train\", \"model\": {\"arch\": \"small-cnn\", "
             "\"classes\": 3, \"size\": %d}, \"epochs\": 1, \"batch\": 12, \"seed\": 1, "
             "\"policy\": \"tilt\", \"output\": \"tilted\"}",
             ds, SIDE);
    job_submit(srv, "train", params, id);
    assert_null(send_expect(srv, "DELETE", "/v1/policies/tilt", NULL, NULL, 204));
    json_t *job = job_wait_state(srv, id, "succeeded");
    json_t *expected = json_of(TILT);
    assert_true(json_equal(json_object_get(json_object_get(job, "params"), "policy"), expected));
    json_decref(expected);
    json_decref(job);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_save_use_replace_delete),
        HARNESS_TEST(test_audio_by_name),
        HARNESS_TEST(test_bad_requests),
        HARNESS_TEST(test_restart_keeps_them),
        HARNESS_TEST(test_scopes),
        HARNESS_MODELS_TEST(test_job_keeps_the_document),
    };
    return harness_main(argc, argv, "policies", tests, sizeof tests / sizeof tests[0]);
}
