/* A request's budgets, against the real binary: its work (max_work), the memory its intermediates
 * and answer may take (max_pixels, max_request_memory, max_response_bytes), and its time
 * (request_timeout_s, and its client's patience). Each case is the request that found the fault
 * (issue 14), or its small stand-in where noted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/codec.h"

/* A width x height RGB image of one value, as PNG (malloc'd): all-zero ones compress to almost
 * nothing, as the hostile uploads did (6000x6000 is 105 KB). */
static void *flat_png(int width, int height, uint8_t value, size_t *size)
{
    struct eng_error err = {0};
    struct img *im = img_new(width, height, 3, &err);
    if (!im) fail_msg("%s", err.message);
    memset(im->data, value, im->stride * (size_t)height);
    void *png = NULL;
    if (img_encode(im, IMG_PNG, 90, NULL, &png, size, &err) != 0)
        fail_msg("encode: %s", err.message);
    img_free(im);
    return png;
}

/* POSTs an image (part "image") and text fields (name, value pairs, NULL-terminated) to path. */
static void post_fields(const struct server *srv, const char *path, const char *part,
                        const void *data, size_t size, const char *const *fields, long timeout_ms,
                        struct http_response *r)
{
    struct http_part parts[8] = {{part, "input", "application/octet-stream", data, size}};
    size_t n = 1;
    for (; fields && fields[2 * (n - 1)] && n < 8; n++)
        parts[n] = (struct http_part){fields[2 * (n - 1)], NULL, NULL, fields[2 * n - 1],
                                      strlen(fields[2 * n - 1])};
    struct http_request req = {
        .path = path, .parts = parts, .part_count = n, .timeout_ms = timeout_ms};
    http_send(srv, &req, r);
}

/* The policy of the report: 1024 Rotates, under the trace's own cap of ops. */
static const char many_rotates[] =
    "{\"repeat\":16,\"do\":{\"repeat\":16,\"do\":{\"repeat\":4,\"do\":{\"op\":\"Rotate\","
    "\"degrees\":7}}}}";

/* 6000x6000 x 1024 ops x 32 samples is about 1.2e12 op-pixels, past the default max_work: refused
 * before any op runs, where it once held a worker for more than 30 minutes. */
static void test_work_past_max_work(void **state)
{
    struct server *srv = harness_start(state, "{}");
    size_t size;
    void *png = flat_png(6000, 6000, 0, &size);
    struct http_response r;
    post_fields(srv, "/v1/augment", "image", png, size,
                (const char *const[]){"policy", many_rotates, "samples", "32", NULL}, 60000, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "max_work is 20000000000");
    assert_contains(r.body, "fewer samples");
    http_response_free(&r);
    free(png);
    http_get_expect(srv, "/healthz", 200);
    harness_pass(state);
}

/* Ops that grow an image are checked against max_pixels before they allocate: a 1x1 PNG made
 * 16384x16384 by a CenterCrop (once 1.07 GB), and a Rotate after a Resize to that size. */
static void test_grown_images_past_max_pixels(void **state)
{
    struct server *srv = harness_start(state, "{}");
    size_t size;
    void *png = flat_png(1, 1, 7, &size);
    static const char *const policies[] = {
        "{\"op\":\"CenterCrop\",\"height\":16384,\"width\":16384}",
        "{\"seq\":[{\"op\":\"Resize\",\"height\":16384,\"width\":16384},{\"op\":\"Rotate\","
        "\"degrees\":7}]}",
    };
    static const char *const ops[] = {"CenterCrop", "Resize"};
    for (int i = 0; i < 2; i++) {
        struct http_response r;
        post_fields(srv, "/v1/augment", "image", png, size,
                    (const char *const[]){"policy", policies[i], NULL}, 0, &r);
        assert_error_envelope(&r, 413, "payload_too_large");
        assert_contains(r.body, ops[i]);
        assert_contains(r.body, "16384x16384");
        assert_contains(r.body, "max_pixels is 40000000");
        http_response_free(&r);
    }
    free(png);
    harness_pass(state);
}

/* Under max_work but past request_timeout_s: the work stops between ops and the answer is 503
 * with Retry-After, about when the deadline passes (the whole request would take tens of
 * seconds: 4 MP x 1024 Rotates x 4 samples). */
static void test_deadline(void **state)
{
    struct server *srv =
        harness_start(state, "{\"request_timeout_s\": 1, \"max_work\": 1000000000000000}");
    size_t size;
    void *png = flat_png(2000, 2000, 0, &size);
    struct http_response r;
    post_fields(srv, "/v1/augment", "image", png, size,
                (const char *const[]){"policy", many_rotates, "samples", "4", NULL}, 60000, &r);
    assert_error_envelope(&r, 503, "unavailable");
    assert_contains(r.body, "request_timeout_s (1 s)");
    assert_string_equal(http_header(&r, "Retry-After"), "1");
    /* The deadline plus at most an op of each sample running (one op on 4 MP takes well under a
     * second, even under the sanitizers on a loaded machine). */
    assert_true(r.elapsed_s < 10);
    http_response_free(&r);
    http_get(srv, "/metrics", &r);
    assert_contains(r.body, "augserve_requests_stopped_total{reason=\"deadline\"} 1\n");
    assert_contains(r.body, "augserve_requests_stopped_total{reason=\"client_closed\"} 0\n");
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

/* A client that gives up frees the worker at once: with one worker, a request posted right after
 * the first one's client hung up is served without waiting for the abandoned work. */
static void test_disconnect_frees_the_worker(void **state)
{
    struct server *srv = harness_start(
        state, "{\"workers\": 1, \"request_timeout_s\": 600, \"max_work\": 1000000000000000}");
    size_t size, small_size;
    void *png = flat_png(2000, 2000, 0, &size), *small = flat_png(8, 8, 1, &small_size);
    struct http_response r;
    post_fields(srv, "/v1/augment", "image", png, size,
                (const char *const[]){"policy", many_rotates, "samples", "4", NULL}, 500, &r);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
    http_response_free(&r);
    double start = harness_now();
    post_fields(srv, "/v1/augment", "image", small, small_size,
                (const char *const[]){"policy", "{\"op\":\"Invert\"}", NULL}, 60000, &r);
    assert_status(&r, 200);
    /* The abandoned request had tens of seconds of work left (minutes under the sanitizers). */
    assert_true(harness_now() - start < 15);
    http_response_free(&r);
    http_get(srv, "/metrics", &r);
    assert_contains(r.body, "augserve_requests_stopped_total{reason=\"client_closed\"} 1\n");
    http_response_free(&r);
    /* Nobody received its answer: it counts as 499, as the client leaving always does, once
     * libmicrohttpd has let the connection go (which may come after the next answer). */
    const char *gone = "augserve_http_requests_total{route=\"/v1/augment\",method=\"POST\","
                       "status=\"499\"} 1\n";
    int counted = 0;
    for (double until = harness_now() + 10; !counted && harness_now() < until;) {
        http_get(srv, "/metrics", &r);
        counted = r.body && strstr(r.body, gone) != NULL;
        http_response_free(&r);
    }
    assert_true(counted);
    free(png);
    free(small);
    harness_pass(state);
}

/* The answer is capped by max_response_bytes, checked before it is built. */
static void test_response_past_max_response_bytes(void **state)
{
    struct server *srv = harness_start(state, "{\"max_response_bytes\": 4000}");
    size_t size;
    void *png = flat_png(64, 64, 200, &size);
    struct http_response r;
    post_fields(srv, "/v1/augment", "image", png, size,
                (const char *const[]){"policy", "{\"op\":\"GaussianNoise\",\"sigma\":0.5}",
                                      "samples", "4", "format", "png", NULL},
                0, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "max_response_bytes is 4000");
    http_response_free(&r);
    /* One small sample fits. */
    post_fields(srv, "/v1/augment", "image", png, size,
                (const char *const[]){"policy", "{\"op\":\"Invert\"}", NULL}, 0, &r);
    assert_status(&r, 200);
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

/* A 16-bit mono WAV of `seconds` at `rate`, a 440 Hz tone (malloc'd). */
static void *tone_wav(double seconds, int rate, size_t *size)
{
    size_t n = (size_t)(seconds * rate), bytes = 2 * n;
    unsigned char *wav = malloc(44 + bytes);
    assert_non_null(wav);
    uint32_t fields[] = {16, 1 | 1u << 16, (uint32_t)rate, (uint32_t)rate * 2, 2 | 16u << 16};
    memcpy(wav, "RIFF", 4);
    uint32_t riff = (uint32_t)(36 + bytes), data = (uint32_t)bytes;
    memcpy(wav + 4, &riff, 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    memcpy(wav + 16, fields, sizeof fields);
    memcpy(wav + 36, "data", 4);
    memcpy(wav + 40, &data, 4);
    for (size_t i = 0; i < n; i++) {
        int16_t s = (int16_t)lrint(8000 * sin(2 * M_PI * 440 * (double)i / rate));
        memcpy(wav + 44 + 2 * i, &s, 2);
    }
    *size = 44 + bytes;
    return wav;
}

/* Audio's intermediates: features of hop_length 1 and 1024 mels on a 2 s clip would answer about
 * 175 MB of JSON (refused as a response before a feature is computed); with a lower max_pixels
 * the features themselves are past it. */
static void test_audio_features(void **state)
{
    struct server *srv = harness_start(state, "{}");
    size_t size;
    void *wav = tone_wav(2, 16000, &size);
    struct http_response r;
    const char *gain = "{\"op\":\"Gain\",\"db\":1}";
    post_fields(srv, "/v1/augment/audio", "audio", wav, size,
                (const char *const[]){"policy", gain, "hop_length", "1", "n_mels", "1024", NULL}, 0,
                &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "max_response_bytes");
    http_response_free(&r);
    struct server *small = harness_start(state, "{\"max_pixels\": 100000}");
    post_fields(small, "/v1/augment/audio", "audio", wav, size,
                (const char *const[]){"policy", gain, "hop_length", "16", "n_mels", "128", NULL}, 0,
                &r);
    /* 32000 / 16 + 1 frames (centred) x 128 mels. */
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "2001 frames x 128 mels");
    assert_contains(r.body, "max_pixels is 100000");
    http_response_free(&r);
    free(wav);
    harness_pass(state);
}

/* A 600 s clip at 1 kHz asked for at sample_rate 384000 once answered 460 MB: at the output rate
 * it would be 230,400,000 samples, past max_audio_seconds x 48 kHz, refused from the header. */
static void test_audio_sample_rate(void **state)
{
    struct server *srv = harness_start(state, "{}");
    size_t size;
    void *wav = tone_wav(600, 1000, &size);
    struct http_response r;
    post_fields(srv, "/v1/augment/audio", "audio", wav, size,
                (const char *const[]){"policy", "{\"op\":\"Gain\",\"db\":1}", "sample_rate",
                                      "384000", "output", "features", NULL},
                60000, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "230400000 samples at 384000 Hz, past the limit of 28800000 samples");
    http_response_free(&r);
    /* At 16 kHz the same clip is within both limits (9,600,000 samples). */
    post_fields(
        srv, "/v1/augment/audio", "audio", wav, size,
        (const char *const[]){"policy", "{\"op\":\"Gain\",\"db\":1}", "output", "flac", NULL},
        60000, &r);
    assert_status(&r, 200);
    http_response_free(&r);
    free(wav);
    harness_pass(state);
}

/* SSIM of two 6000x6000 PNGs (105 KB each) once peaked at 3.9 GB: its working set is weighed
 * against max_request_memory before any map is allocated. */
static void test_similarity_memory(void **state)
{
    struct server *srv = harness_start(state, "{}");
    size_t size;
    void *png = flat_png(6000, 6000, 0, &size);
    struct http_part parts[] = {{"a", "a.png", "image/png", png, size},
                                {"b", "b.png", "image/png", png, size}};
    struct http_request req = {.path = "/v1/similarity/batch?metrics=ssim",
                               .parts = parts,
                               .part_count = 2,
                               .timeout_ms = 60000};
    struct http_response r;
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    /* 6000 x 6000 pixels x (2 x 3 planes + 7 maps) x 8 bytes. */
    assert_contains(r.body, "3744000000 bytes");
    assert_contains(r.body, "max_request_memory is 2147483648");
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

/* Inference is weighed by its plan's FLOPs: with a max_work of 1 op-pixel, a prediction and a
 * KServe inference on the tiny fixture model are refused before they run (each in its protocol's
 * body). */
static void test_inference_work(void **state)
{
    char command[PATH_MAX * 2];
    snprintf(command, sizeof command, "cp -r '%s/tests/parity/fixtures/predict/tiny-cnn' '%s/'",
             harness_source_dir(), harness_models_dir());
    if (system(command) != 0) fail_msg("%s", command);
    struct server *srv = harness_start_with_models(state, "\"max_work\": 1");
    size_t size;
    void *png = flat_png(32, 32, 90, &size);
    struct http_response r;
    post_fields(srv, "/v1/predict?model=tiny-cnn", "image", png, size, NULL, 0, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "max_work is 1:");
    http_response_free(&r);
    /* KServe: one 3x16x16 input of zeros. */
    char body[4096];
    int n = snprintf(body, sizeof body,
                     "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3,16,"
                     "16],\"data\":[0");
    for (int i = 1; i < 3 * 16 * 16; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, ",0");
    snprintf(body + n, sizeof body - (size_t)n, "]}]}");
    http_post(srv, "/v2/models/tiny-cnn/infer", "application/json", body, strlen(body), &r);
    assert_status(&r, 413);
    json_t *doc = http_json(&r);
    assert_contains(json_string_value(json_object_get(doc, "error")), "max_work is 1:");
    json_decref(doc);
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_work_past_max_work),
        HARNESS_TEST(test_grown_images_past_max_pixels),
        HARNESS_TEST(test_deadline),
        HARNESS_TEST(test_disconnect_frees_the_worker),
        HARNESS_TEST(test_response_past_max_response_bytes),
        HARNESS_TEST(test_audio_features),
        HARNESS_TEST(test_audio_sample_rate),
        HARNESS_TEST(test_similarity_memory),
        HARNESS_MODELS_TEST(test_inference_work),
    };
    return harness_main(argc, argv, "limits", tests, sizeof tests / sizeof tests[0]);
}
