/* POST /v1/augment/audio, GET /v1/ops?domain=, augserve augment-audio and bench audio, against the
 * real binary. Expectations come from the engine itself, run here on the same bytes (decoder,
 * front end, policy sampling and application), and from independent arithmetic: lengths, image
 * sizes, and the masked cells of the features against the trace's masks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "harness.h"
#include "image/codec.h"
#include "policy/policy.h"

#define SPEECH "tests/parity/fixtures/audio/speech.wav"

/* A 16 kHz float WAV of the fixture's speech repeated to three seconds, long enough (301 frames)
 * for SpecAugment's time warp (W 80) to move. */
static void *speech_3s(size_t *size)
{
    size_t fixture_size;
    char *fixture = harness_read_source_file(SPEECH, &fixture_size);
    struct eng_error err = {0};
    struct audio *one = audio_decode(fixture, fixture_size, NULL, NULL, &err);
    if (!one) fail_msg("%s: %s", SPEECH, err.message);
    struct audio *three = audio_new(3 * one->length, one->rate, &err);
    assert_non_null(three);
    for (size_t i = 0; i < three->length; i++)
        three->samples[i] = one->samples[i % one->length];
    void *wav = NULL;
    assert_int_equal(audio_encode(three, AUDIO_WAV_FLOAT, &wav, size, &err), 0);
    audio_free(three);
    audio_free(one);
    free(fixture);
    return wav;
}

/* A WAV file written by hand, so its header can say what no encoder writes: format 1 (PCM16) or
 * 3 (float), with frames x channels samples of value each. */
static void *wav_by_hand(int format, int channels, int rate, size_t frames, float value,
                         size_t *size)
{
    int bytes = format == 3 ? 4 : 2;
    size_t data = frames * (size_t)(channels > 0 ? channels : 1) * (size_t)bytes;
    unsigned char *w = calloc(44 + data, 1);
    assert_non_null(w);
    uint32_t riff = (uint32_t)(36 + data), fmt_size = 16, rate32 = (uint32_t)rate;
    uint32_t byte_rate = rate32 * (uint32_t)(channels * bytes), data32 = (uint32_t)data;
    uint16_t format16 = (uint16_t)format, channels16 = (uint16_t)channels;
    uint16_t align = (uint16_t)(channels * bytes), bits = (uint16_t)(8 * bytes);
    memcpy(w, "RIFF", 4), memcpy(w + 4, &riff, 4), memcpy(w + 8, "WAVEfmt ", 8);
    memcpy(w + 16, &fmt_size, 4), memcpy(w + 20, &format16, 2), memcpy(w + 22, &channels16, 2);
    memcpy(w + 24, &rate32, 4), memcpy(w + 28, &byte_rate, 4), memcpy(w + 32, &align, 2);
    memcpy(w + 34, &bits, 2), memcpy(w + 36, "data", 4), memcpy(w + 40, &data32, 4);
    for (size_t i = 0; i < data / (size_t)bytes; i++) {
        int16_t pcm = (int16_t)(value * 16384);
        if (format == 3)
            memcpy(w + 44 + 4 * i, &value, 4);
        else
            memcpy(w + 44 + 2 * i, &pcm, 2);
    }
    *size = 44 + data;
    return w;
}

static void post_audio(const struct server *srv, const char *path, const void *data, size_t size,
                       struct http_response *r)
{
    const char *headers[] = {"Content-Type: audio/wav", NULL};
    struct http_request req = {.path = path, .headers = headers, .body = data, .body_size = size};
    http_send(srv, &req, r);
}

/* path + "policy=" + the policy, escaped for a query. */
static void with_policy(char *out, size_t size, const char *path, const char *policy)
{
    char *escaped = curl_easy_escape(NULL, policy, 0);
    assert_non_null(escaped);
    snprintf(out, size, "%spolicy=%s", path, escaped);
    curl_free(escaped);
}

/* Checks an .npy v1.0 file of float32 frames x mels and returns its data (inside npy). */
static const float *npy_data(const char *npy, size_t size, int frames, int mels)
{
    assert_true(size > 10);
    assert_memory_equal(npy, "\x93NUMPY\x01\x00", 8);
    size_t header = 10 + (size_t)(unsigned char)npy[8] + 256 * (size_t)(unsigned char)npy[9];
    assert_int_equal(header % 64, 0);
    assert_int_equal(npy[header - 1], '\n');
    char expected[128];
    snprintf(expected, sizeof expected,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", frames, mels);
    assert_memory_equal(npy + 10, expected, strlen(expected));
    assert_int_equal(size, header + (size_t)frames * (size_t)mels * 4);
    return (const float *)(npy + header);
}

/* What the server should give for output=features: the engine on the same bytes. */
struct expected {
    struct trace *trace;
    struct audio_spec *features;
    size_t length; /* samples after the waveform ops */
};

static struct expected expect_features(const void *data, size_t size, const char *policy,
                                       uint64_t seed, uint32_t input, uint32_t sample)
{
    struct eng_error err = {0};
    struct audio *clip = audio_decode(data, size, NULL, NULL, &err);
    struct audio_mel_config cfg = audio_mel_defaults();
    struct audio_mel *mel = audio_mel_new(&cfg, &err);
    struct policy *p = policy_parse_text(policy, &err);
    assert_non_null(clip), assert_non_null(mel), assert_non_null(p);
    struct audio_framing framing = {cfg.n_fft, cfg.hop_length, cfg.center, cfg.n_mels};
    struct expected e = {0};
    e.trace = policy_sample_audio(p, seed, input, sample, 0, clip->length, &framing, &err);
    assert_non_null(e.trace);
    struct audio *wave = trace_apply_wave(e.trace, clip, NULL, seed, input, sample, &err);
    assert_non_null(wave);
    struct audio_spec *plain = audio_mel_compute(mel, wave, &err);
    e.features = trace_apply_spec(e.trace, plain, &err);
    assert_non_null(e.features);
    e.length = wave->length;
    audio_spec_free(plain);
    audio_free(wave);
    policy_free(p);
    audio_mel_free(mel);
    audio_free(clip);
    return e;
}

static void expected_free(struct expected *e)
{
    trace_free(e->trace);
    audio_spec_free(e->features);
}

/* Whether the cell (frame, bin) is inside one of the trace's masks. */
static int masked(json_t *trace, int frame, int bin)
{
    size_t i;
    json_t *entry;
    json_array_foreach(trace, i, entry)
    {
        const char *op = json_str(entry, "op");
        int time = strcmp(op, "TimeMask") == 0, freq = strcmp(op, "FrequencyMask") == 0;
        if (!time && !freq) continue;
        json_int_t start = json_int(entry, "start"), width = json_int(entry, "width");
        int at = time ? frame : bin;
        if (at >= start && at < start + width) return 1;
    }
    return 0;
}

static void test_features_are_the_engines(void **state)
{
    struct server *srv = harness_start(state, NULL);
    size_t size;
    void *wav = speech_3s(&size);
    struct http_response r;
    post_audio(srv, "/v1/augment/audio?policy=specaugment-LD&seed=7&output=features", wav, size,
               &r);
    assert_status(&r, 200);
    assert_string_equal(http_header(&r, "Content-Type"), "application/x-npy");
    assert_string_equal(http_header(&r, "X-Augment-Seed"), "7");
    struct expected e = expect_features(wav, size, "specaugment-LD", 7, 0, 0);
    const float *got = npy_data(r.body, r.body_size, e.features->frames, 80);
    assert_int_equal(e.features->frames, 301);
    assert_memory_equal(got, e.features->data, (size_t)e.features->frames * 80 * sizeof(float));
    json_t *trace = json_loads(http_header(&r, "X-Augment-Trace"), 0, NULL);
    json_t *local = trace_to_json(e.trace);
    assert_true(json_equal(trace, local));
    assert_string_equal(json_str(json_array_get(trace, 0), "op"), "TimeWarp");
    assert_true(json_int(json_array_get(trace, 0), "centre") > 0);
    /* The cells set to zero are exactly the masks' (log-mel energies are never exactly 0). */
    for (int t = 0; t < e.features->frames; t++)
        for (int b = 0; b < 80; b++)
            if ((got[t * 80 + b] == 0.0f) != masked(trace, t, b))
                fail_msg("frame %d bin %d: %g, masked %d", t, b, got[t * 80 + b],
                         masked(trace, t, b));
    json_decref(local);
    json_decref(trace);
    expected_free(&e);
    http_response_free(&r);
    free(wav);
    harness_pass(state);
}

static struct audio *decode_body(const struct http_response *r)
{
    struct eng_error err = {0};
    struct audio *a = audio_decode(r->body, r->body_size, NULL, NULL, &err);
    if (!a) fail_msg("the response does not decode: %s", err.message);
    return a;
}

static void test_waveform_outputs(void **state)
{
    struct server *srv = harness_start(state, NULL);
    size_t size;
    char *speech = harness_read_source_file(SPEECH, &size);
    struct http_response r;
    char path[512];
    with_policy(path, sizeof path, "/v1/augment/audio?output=wav&",
                "{\"op\": \"Speed\", \"factor\": 1.1}");
    post_audio(srv, path, speech, size, &r);
    assert_status(&r, 200);
    assert_string_equal(http_header(&r, "Content-Type"), "audio/wav");
    struct audio *in = decode_body(&(struct http_response){.body = speech, .body_size = size});
    struct audio *out = decode_body(&r);
    assert_int_equal(out->rate, 16000);
    assert_int_equal(out->length, (size_t)llround((double)in->length / 1.1));
    audio_free(out);
    http_response_free(&r);

    with_policy(path, sizeof path, "/v1/augment/audio?output=flac&",
                "{\"op\": \"Gain\", \"db\": -6}");
    post_audio(srv, path, speech, size, &r);
    assert_status(&r, 200);
    assert_string_equal(http_header(&r, "Content-Type"), "audio/flac");
    out = decode_body(&r);
    assert_int_equal(out->length, in->length);
    for (size_t i = 0; i < in->length; i += 101)
        assert_float_equal(out->samples[i], in->samples[i] * 0.501187f, 1.0 / 16384);
    audio_free(out);
    http_response_free(&r);

    post_audio(srv, "/v1/augment/audio?output=wav&policy=specaugment-LB", speech, size, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "output wav: the policy has spectrogram ops");
    http_response_free(&r);
    audio_free(in);
    free(speech);
    harness_pass(state);
}

/* A PNG as an image, checked to be frames wide and mels high. */
static void check_png(const void *data, size_t size, int frames, int mels)
{
    const struct img_decode_options opt = {100000000, 65535, IMG_COLOR_KEEP};
    struct eng_error err = {0};
    struct img *im = img_decode(data, size, &opt, NULL, &err);
    if (!im) fail_msg("the PNG does not decode: %s", err.message);
    assert_int_equal(im->width, frames);
    assert_int_equal(im->height, mels);
    assert_int_equal(im->channels, 3);
    img_free(im);
}

static void test_png(void **state)
{
    struct server *srv = harness_start(state, NULL);
    size_t size;
    char *speech = harness_read_source_file(SPEECH, &size);
    struct http_response r;
    post_audio(srv, "/v1/augment/audio?output=png&policy=specaugment-SM&n_mels=64", speech, size,
               &r);
    assert_status(&r, 200);
    assert_string_equal(http_header(&r, "Content-Type"), "image/png");
    check_png(r.body, r.body_size, 101, 64);
    http_response_free(&r);
    free(speech);
    harness_pass(state);
}

/* A field of a JSON result, base64-decoded (the caller frees it). */
static unsigned char *result_bytes(json_t *result, const char *key, size_t *size)
{
    return harness_unbase64(json_str(result, key), size);
}

static void test_json_with_noise_clips(void **state)
{
    struct server *srv = harness_start(state, NULL);
    size_t size, noise_size;
    char *speech = harness_read_source_file(SPEECH, &size);
    void *noise = wav_by_hand(1, 1, 16000, 4000, 0.25f, &noise_size);
    /* A constant clip is no noise, but has power: the SNR is exact all the same. */
    const char *policy = "{\"seq\": [{\"op\": \"NoiseClip\", \"clip\": 0, \"snr_db\": 10}, "
                         "{\"op\": \"FrequencyMask\", \"F\": 10}]}";
    struct http_part parts[] = {
        {"audio", "a.wav", "audio/wav", speech, size},
        {"audio", "b.wav", "audio/wav", speech, size},
        {"noise", "n.wav", "audio/wav", noise, noise_size},
        {"policy", NULL, NULL, policy, strlen(policy)},
        {"samples", NULL, NULL, "2", 1},
        {"seed", NULL, NULL, "11", 2},
    };
    struct http_request req = {.path = "/v1/augment/audio", .parts = parts, .part_count = 6};
    struct http_response r;
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_int_equal(json_int(doc, "seed"), 11);
    assert_string_equal(json_str(doc, "output"), "json");
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 4);
    size_t i;
    json_t *result;
    json_array_foreach(results, i, result)
    {
        assert_int_equal(json_int(result, "input"), (json_int_t)(i / 2));
        assert_int_equal(json_int(result, "sample"), (json_int_t)(i % 2));
        assert_int_equal(json_int(result, "frames"), 101);
        assert_int_equal(json_int(result, "mels"), 80);
        /* The policy has a spectrogram op: no waveform that would look masked and is not. */
        assert_true(json_is_null(json_object_get(result, "wav")));
        size_t npy_size, png_size;
        unsigned char *npy = result_bytes(result, "features", &npy_size);
        unsigned char *png = result_bytes(result, "png", &png_size);
        npy_data((const char *)npy, npy_size, 101, 80);
        check_png(png, png_size, 101, 80);
        json_t *trace = json_object_get(result, "trace");
        assert_int_equal(json_int(json_array_get(trace, 0), "clip"), 0);
        free(npy);
        free(png);
    }
    json_decref(doc);
    http_response_free(&r);

    /* A waveform-only policy carries the waveform too. */
    post_audio(srv, "/v1/augment/audio?policy=multistyle&seed=3", speech, size, &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    result = json_array_get(json_object_get(doc, "results"), 0);
    size_t wav_size;
    unsigned char *wav = result_bytes(result, "wav", &wav_size);
    struct eng_error err = {0};
    struct audio *out = audio_decode(wav, wav_size, NULL, NULL, &err);
    assert_non_null(out);
    assert_int_equal(out->length, (size_t)json_int(result, "length"));
    audio_free(out);
    free(wav);
    json_decref(doc);
    http_response_free(&r);
    free(noise);
    free(speech);
    harness_pass(state);
}

static void expect_error(const struct server *srv, const char *path, const void *data, size_t size,
                         long status, const char *code, const char *needle)
{
    struct http_response r;
    post_audio(srv, path, data, size, &r);
    if (r.status != status) fail_msg("%s: status %ld, expected %ld", path, r.status, status);
    assert_error_envelope(&r, status, code);
    assert_contains(r.body, needle);
    http_response_free(&r);
}

static void test_bad_audio(void **state)
{
    struct server *srv = harness_start(state, "{\"max_audio_seconds\": 2}");
    const char *path = "/v1/augment/audio?policy=specaugment-LB&output=features";
    size_t size;
    expect_error(srv, path, "hello, no audio here", 20, 415, "unsupported_media_type", "audio 0");
    void *three = speech_3s(&size);
    expect_error(srv, path, three, size, 413, "payload_too_large", "audio 0");
    free(three);
    /* One second of audio: two samples of it are within the 2 s cap, three are not. */
    void *second = wav_by_hand(1, 1, 16000, 16000, 0.1f, &size);
    struct http_response ok;
    post_audio(srv, "/v1/augment/audio?policy=specaugment-LB&output=json&samples=2", second, size,
               &ok);
    assert_status(&ok, 200);
    http_response_free(&ok);
    expect_error(srv, "/v1/augment/audio?policy=specaugment-LB&output=json&samples=3", second, size,
                 413, "payload_too_large", "3.0 s of augmented audio");
    free(second);
    void *slow = wav_by_hand(1, 1, 500, 100, 0.1f, &size);
    expect_error(srv, path, slow, size, 422, "unprocessable", "500");
    free(slow);
    void *empty = wav_by_hand(1, 1, 16000, 0, 0, &size);
    expect_error(srv, path, empty, size, 422, "unprocessable", "audio 0");
    free(empty);
    void *nan = wav_by_hand(3, 1, 16000, 800, NAN, &size);
    expect_error(srv, path, nan, size, 422, "unprocessable", "audio 0");
    free(nan);
    /* libsndfile refuses these headers itself: no channels, cut short; a FLAC cut in half loses
     * sync. */
    void *no_channels = wav_by_hand(1, 0, 16000, 800, 0.1f, &size);
    expect_error(srv, path, no_channels, size, 422, "undecodable", "audio 0");
    expect_error(srv, path, no_channels, 30, 422, "undecodable", "audio 0");
    free(no_channels);
    size_t flac_size, speech_size;
    char *flac = harness_read_source_file("tests/parity/fixtures/audio/stereo.flac", &flac_size);
    expect_error(srv, path, flac, flac_size / 2, 422, "undecodable", "audio 0");
    free(flac);
    char *speech = harness_read_source_file(SPEECH, &speech_size);
    struct http_response r;
    /* Settings of the front end, named in the message. */
    static const char *const fields[][2] = {
        {"n_mels=abc", "n_mels"},   {"n_mels=5000", "n_mels"},       {"hop_length=0", "hop_length"},
        {"n_fft=8", "n_fft"},       {"mel_scale=bark", "mel_scale"}, {"f_max=9000", "f_max"},
        {"center=maybe", "center"}, {"output=mp3", "output"},        {"samples=99", "samples"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char query[256];
        snprintf(query, sizeof query, "/v1/augment/audio?policy=specaugment-LB&%s", fields[i][0]);
        expect_error(srv, query, speech, speech_size, 422, "unprocessable", fields[i][1]);
    }
    expect_error(srv, "/v1/augment/audio?policy=randaugment", speech, speech_size, 422,
                 "invalid_policy", "image ops");
    expect_error(srv, "/v1/augment/audio", speech, speech_size, 422, "unprocessable", "policy");
    expect_error(srv, "/v1/augment/audio?policy=multistyle&output=wav", "", 0, 422, "unprocessable",
                 "no audio");
    /* NoiseClip without the clip: the op names what is missing. */
    char noise_path[256];
    with_policy(noise_path, sizeof noise_path, "/v1/augment/audio?output=wav&",
                "{\"op\": \"NoiseClip\"}");
    expect_error(srv, noise_path, speech, speech_size, 422, "unprocessable", "noise clip 0");
    const char *headers[] = {"Content-Type: text/plain", NULL};
    struct http_request req = {.path = path, .headers = headers, .body = "x", .body_size = 1};
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 415, "unsupported_media_type");
    http_response_free(&r);
    free(speech);
    harness_pass(state);
}

/* Masks wider than a 0.2 s clip (21 frames) are cut to it. */
static void test_masks_clamp(void **state)
{
    struct server *srv = harness_start(state, NULL);
    size_t size;
    void *short_clip = wav_by_hand(1, 1, 16000, 3200, 0.2f, &size);
    char path[256];
    with_policy(path, sizeof path, "/v1/augment/audio?output=features&seed=1&",
                "{\"op\": \"TimeMask\", \"T\": 1000, \"count\": 4}");
    struct http_response r;
    post_audio(srv, path, short_clip, size, &r);
    assert_status(&r, 200);
    npy_data(r.body, r.body_size, 21, 80);
    json_t *trace = json_loads(http_header(&r, "X-Augment-Trace"), 0, NULL);
    assert_int_equal(json_array_size(trace), 4);
    json_decref(trace);
    http_response_free(&r);
    free(short_clip);
    harness_pass(state);
}

/* The names of the ops /v1/ops lists for a domain; checks each op's domain. */
static size_t count_ops(const struct server *srv, const char *query, const char *const *domains,
                        const char *must_have)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/ops%s", query);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r), *op;
    size_t i, count = json_array_size(json_object_get(doc, "ops"));
    int found = 0;
    json_array_foreach(json_object_get(doc, "ops"), i, op)
    {
        const char *domain = json_str(op, "domain");
        if (strcmp(domain, domains[0]) != 0 && (!domains[1] || strcmp(domain, domains[1]) != 0))
            fail_msg("%s: %s is a %s op", query, json_str(op, "name"), domain);
        found |= strcmp(json_str(op, "name"), must_have) == 0;
    }
    assert_true(found);
    json_decref(doc);
    http_response_free(&r);
    return count;
}

static void test_ops_by_domain(void **state)
{
    struct server *srv = harness_start(state, NULL);
    static const char *const image[] = {"image", NULL};
    static const char *const audio[] = {"waveform", "spectrogram"};
    size_t images = count_ops(srv, "?domain=image", image, "Rotate");
    size_t audios = count_ops(srv, "?domain=audio", audio, "TimeMask");
    struct http_response r;
    http_get(srv, "/v1/ops?domain=all", &r);
    json_t *doc = http_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "ops")), images + audios);
    json_decref(doc);
    http_response_free(&r);
    http_get(srv, "/v1/ops?domain=video", &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "image, audio or all");
    http_response_free(&r);
    harness_pass(state);
}

/* augserve augment-audio gives the bytes the server gives; bench audio prints its rate. */
static void test_cli(void **state)
{
    struct server *srv = harness_start(state, NULL);
    size_t size;
    char *speech = harness_read_source_file(SPEECH, &size);
    struct http_response r;
    post_audio(srv, "/v1/augment/audio?policy=specaugment-SS&seed=5&output=features", speech, size,
               &r);
    assert_status(&r, 200);
    char in_path[PATH_MAX], pattern[PATH_MAX], out_path[PATH_MAX];
    snprintf(in_path, sizeof in_path, "%s/%s", harness_source_dir(), SPEECH);
    snprintf(pattern, sizeof pattern, "%s/{name}-{sample}.{ext}", srv->dir);
    snprintf(out_path, sizeof out_path, "%s/speech-0.npy", srv->dir);
    const char *args[] = {"augment-audio", "-p", "specaugment-SS", "-s",    "5", "-f",
                          "features",      "-o", pattern,          in_path, NULL};
    char *out, *err;
    int status = harness_run_binary(args, &out, &err);
    if (status != 0) fail_msg("augment-audio: %d: %s", status, err);
    assert_contains(out, "{\"seed\":5}");
    assert_contains(out, "\"op\":\"FrequencyMask\"");
    size_t file_size;
    char *file = harness_read_file(out_path, &file_size);
    assert_int_equal(file_size, r.body_size);
    assert_memory_equal(file, r.body, file_size);
    free(file), free(out), free(err);
    const char *bench[] = {"bench", "audio", "-p", "specaugment-LD", "--seconds", "0.2", NULL};
    status = harness_run_binary(bench, &out, &err);
    if (status != 0) fail_msg("bench audio: %d: %s", status, err);
    assert_contains(out, "\"clip_seconds\":7.0");
    assert_contains(out, "\"audio_seconds_per_second\":");
    free(out), free(err);
    http_response_free(&r);
    free(speech);
    harness_pass(state);
}

/* config/augment-audio.schema.json is the response schema /openapi.json describes, but for its
 * own "$schema" and "$id". */
static void test_schema_matches_openapi(void **state)
{
    json_t *openapi = harness_load_source_json("config/openapi.json");
    json_t *file = harness_load_source_json("config/augment-audio.schema.json");
    json_object_del(file, "$schema");
    json_object_del(file, "$id");
    json_t *schemas = json_object_get(json_object_get(openapi, "components"), "schemas");
    assert_true(json_equal(file, json_object_get(schemas, "AugmentAudioResponse")));
    json_decref(file);
    json_decref(openapi);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_features_are_the_engines),
        HARNESS_TEST(test_waveform_outputs),
        HARNESS_TEST(test_png),
        HARNESS_TEST(test_json_with_noise_clips),
        HARNESS_TEST(test_bad_audio),
        HARNESS_TEST(test_masks_clamp),
        HARNESS_TEST(test_ops_by_domain),
        HARNESS_TEST(test_cli),
        cmocka_unit_test(test_schema_matches_openapi),
    };
    return harness_main(argc, argv, "augment_audio", tests, sizeof tests / sizeof tests[0]);
}
