/* Unit tests of engine/policy/audio_pipeline.c: the .npy bytes against the NPY format 1.0 spec, the
 * spectrogram PNG's size and orientation, a run against the steps it is made of applied by hand,
 * the front end's settings read from text, and the output names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/codec.h"
#include "policy/audio_pipeline.h"

/* viridis' ends: the lowest value and the highest. */
static const uint8_t dark[3] = {68, 1, 84}, bright[3] = {253, 231, 37};

static struct policy *parse_ok(const char *text)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (!p) fail_msg("%s: %s", text, err.message);
    return p;
}

static struct audio_mel *mel_ok(void)
{
    struct eng_error err = {0};
    struct audio_mel_config cfg = audio_mel_defaults();
    struct audio_mel *mel = audio_mel_new(&cfg, &err);
    if (!mel) fail_msg("%s", err.message);
    return mel;
}

/* A second of a 16 kHz tone with a slow vibrato and some noise, so every mel has energy. */
static struct audio *tone(void)
{
    struct eng_error err = {0};
    struct audio *a = audio_new(16000, 16000, &err);
    assert_non_null(a);
    uint32_t noise = 99;
    for (size_t i = 0; i < a->length; i++) {
        noise = noise * 1103515245u + 12345u;
        double t = (double)i / 16000;
        a->samples[i] = (float)(0.4 * sin(2 * M_PI * (440 + 60 * sin(2 * M_PI * 3 * t)) * t) +
                                0.01 * ((double)(noise >> 16 & 0x7fff) / 16384.0 - 1.0));
    }
    return a;
}

/* Header length for the dict text: 10 bytes in front, a newline after, a multiple of 64. */
static void check_npy(int rows, int cols)
{
    float *matrix = calloc((size_t)rows * (size_t)cols + 1, sizeof *matrix);
    assert_non_null(matrix);
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        matrix[i] = (float)i * 0.5f - 3.0f;
    void *data = NULL;
    size_t size = 0;
    struct eng_error err = {0};
    assert_int_equal(audio_npy_f32(matrix, rows, cols, &data, &size, &err), 0);
    const unsigned char *npy = data;
    /* The magic string, then major and minor version 1.0. */
    assert_memory_equal(npy, "\x93NUMPY", 6);
    assert_int_equal(npy[6], 1);
    assert_int_equal(npy[7], 0);
    /* HEADER_LEN, a little-endian unsigned short; the data starts 64-byte aligned. */
    size_t header_len = (size_t)npy[8] | (size_t)npy[9] << 8;
    size_t data_start = 10 + header_len;
    assert_int_equal(data_start % 64, 0);
    assert_int_equal(size, data_start + (size_t)rows * (size_t)cols * sizeof(float));
    /* The dict literal, padded with spaces and terminated by a newline. */
    char want[128];
    int len =
        snprintf(want, sizeof want, "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }",
                 __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "<f4" : ">f4", rows, cols);
    assert_memory_equal(npy + 10, want, (size_t)len);
    for (size_t i = 10 + (size_t)len; i < data_start - 1; i++)
        assert_int_equal(npy[i], ' ');
    assert_int_equal(npy[data_start - 1], '\n');
    /* The rows, C order. */
    assert_memory_equal(npy + data_start, matrix, (size_t)rows * (size_t)cols * sizeof(float));
    free(data);
    free(matrix);
}

static void test_npy_format(void **state)
{
    (void)state;
    check_npy(3, 5);
    check_npy(1, 1);
    check_npy(101, 80);
    check_npy(100000, 128); /* a wider shape does not break the alignment */
}

/* A frames x bins spectrogram whose value is its bin: the highest mel brightest. */
static void test_png_orientation(void **state)
{
    (void)state;
    struct eng_error err = {0};
    const int frames = 7, bins = 4;
    struct audio_pipeline_sample s = {0};
    s.features = audio_spec_new(frames, bins, &err);
    assert_non_null(s.features);
    for (int t = 0; t < frames; t++)
        for (int b = 0; b < bins; b++)
            s.features->data[t * bins + b] = (float)b;
    void *png = NULL;
    size_t size = 0;
    assert_int_equal(audio_pipeline_encode(&s, AUDIO_OUTPUT_PNG, &png, &size, &err), 0);
    struct img *im = img_decode(png, size, NULL, NULL, &err);
    assert_non_null(im);
    assert_int_equal(im->width, frames);
    assert_int_equal(im->height, bins);
    assert_int_equal(im->channels, 3);
    for (int t = 0; t < frames; t++) {
        assert_memory_equal(img_row(im, 0) + 3 * t, bright, 3);      /* the highest mel on top */
        assert_memory_equal(img_row(im, bins - 1) + 3 * t, dark, 3); /* mel 0 at the bottom */
    }
    img_free(im);
    free(png);
    audio_pipeline_sample_free(&s);
}

/* A pipeline of the default front end with the policy, and the clip it runs on; owns all. */
struct rig {
    struct policy *policy;
    struct audio_mel *mel;
    struct audio *clip;
    struct audio_pipeline pl;
};

static struct rig rig_new(const char *policy, uint64_t seed, struct audio *clip)
{
    struct rig r = {parse_ok(policy), mel_ok(), clip, {0}};
    r.pl = (struct audio_pipeline){r.policy, r.mel, NULL, seed};
    return r;
}

static void rig_free(struct rig *r)
{
    policy_free(r->policy);
    audio_mel_free(r->mel);
    audio_free(r->clip);
}

/* The run equals its steps by hand: sample, waveform ops, audio_mel_compute, trace_apply_spec. */
static void test_run_is_its_steps(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct rig r = rig_new("specaugment-LD", 7, tone());
    struct audio_pipeline_sample out;
    assert_int_equal(audio_pipeline_run(&r.pl, r.clip, 1, 2, 0, true, &out, &err), 0);

    const struct audio_mel_config *c = audio_mel_config(r.pl.mel);
    const struct audio_framing framing = {c->n_fft, c->hop_length, c->center, c->n_mels};
    struct trace *t = policy_sample_audio(r.pl.policy, 7, 1, 2, 0, r.clip->length, &framing, &err);
    assert_non_null(t);
    struct audio *wave = trace_apply_wave(t, r.clip, NULL, 7, 1, 2, &err);
    assert_non_null(wave);
    struct audio_spec *plain = audio_mel_compute(r.pl.mel, wave, &err);
    assert_non_null(plain);
    struct audio_spec *want = trace_apply_spec(t, plain, &err);
    assert_non_null(want);

    json_t *got_trace = trace_to_json(out.trace), *want_trace = trace_to_json(t);
    assert_true(json_equal(got_trace, want_trace));
    assert_int_equal(out.wave->length, wave->length);
    assert_memory_equal(out.wave->samples, wave->samples, wave->length * sizeof(float));
    assert_int_equal(out.features->frames, want->frames);
    assert_int_equal(out.features->bins, c->n_mels);
    assert_memory_equal(out.features->data, want->data,
                        (size_t)want->frames * (size_t)want->bins * sizeof(float));

    json_decref(got_trace);
    json_decref(want_trace);
    audio_spec_free(want);
    audio_spec_free(plain);
    audio_free(wave);
    trace_free(t);
    audio_pipeline_sample_free(&out);
    rig_free(&r);
}

/* Without features only the waveform ops run, and the features cannot be encoded. */
static void test_run_without_features(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct rig r = rig_new("{\"op\": \"Gain\", \"db\": -6}", 3, tone());
    struct audio_pipeline_sample out;
    assert_int_equal(audio_pipeline_run(&r.pl, r.clip, 0, 0, 0, false, &out, &err), 0);
    assert_null(out.features);
    assert_int_equal(out.wave->length, r.clip->length);
    assert_float_equal(out.wave->samples[100], r.clip->samples[100] * pow(10, -6 / 20.0), 1e-6);
    void *data = NULL;
    size_t size = 0;
    assert_int_equal(audio_pipeline_encode(&out, AUDIO_OUTPUT_FEATURES, &data, &size, &err), -1);
    assert_int_equal(err.code, ENG_INTERNAL);
    assert_null(data);
    assert_int_equal(audio_pipeline_encode(&out, AUDIO_OUTPUT_WAV, &data, &size, &err), 0);
    assert_memory_equal(data, "RIFF", 4);
    free(data);
    audio_pipeline_sample_free(&out);
    rig_free(&r);
}

/* A clip at another rate than the front end's fails with nothing to free. */
static void test_run_failure(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct rig r = rig_new("specaugment-LB", 1, audio_new(8000, 8000, &err));
    assert_non_null(r.clip);
    struct audio_pipeline_sample out;
    assert_int_equal(audio_pipeline_run(&r.pl, r.clip, 0, 0, 0, true, &out, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(out.trace);
    assert_null(out.wave);
    assert_null(out.features);
    rig_free(&r);
}

static void expect_setting_refused(const char *name, const char *text, const char *message)
{
    struct audio_mel_config cfg = audio_mel_settings_start();
    struct eng_error err = {0};
    assert_int_equal(audio_mel_setting_parse(&cfg, name, text, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_string_equal(err.message, message);
}

static void test_settings(void **state)
{
    (void)state;
    struct eng_error err = {0};
    struct audio_mel_config cfg = audio_mel_settings_start();
    assert_int_equal(audio_mel_setting_parse(&cfg, "n_fft", "512", &err), 0);
    assert_int_equal(audio_mel_setting_parse(&cfg, "f_max", "7600.5", &err), 0);
    assert_int_equal(audio_mel_setting_parse(&cfg, "mel_scale", "slaney", &err), 0);
    assert_int_equal(audio_mel_setting_parse(&cfg, "norm", "slaney", &err), 0);
    assert_int_equal(audio_mel_setting_parse(&cfg, "center", "false", &err), 0);
    audio_mel_settings_resolve(&cfg);
    assert_int_equal(cfg.n_fft, 512);
    assert_int_equal(cfg.win_length, 512); /* follows n_fft when unset */
    assert_float_equal(cfg.f_max, 7600.5, 0);
    assert_int_equal(cfg.mel_scale, AUDIO_MEL_SLANEY);
    assert_int_equal(cfg.norm, AUDIO_MEL_NORM_SLANEY);
    assert_false(cfg.center);

    cfg = audio_mel_settings_start();
    assert_int_equal(audio_mel_setting_parse(&cfg, "win_length", "300", &err), 0);
    audio_mel_settings_resolve(&cfg);
    assert_int_equal(cfg.win_length, 300); /* set: kept */

    int names = 0;
    for (const char *const *name = audio_mel_settings; *name; name++)
        names++;
    assert_int_equal(names, 12);
    expect_setting_refused("n_mels", "x", "n_mels: must be a whole number");
    expect_setting_refused("n_mels", "-1", "n_mels: must be a whole number");
    expect_setting_refused("hop_length", "99999999999", "hop_length: must be a whole number");
    expect_setting_refused("f_min", "inf", "f_min: must be a number");
    expect_setting_refused("log_offset", "1e-6x", "log_offset: must be a number");
    expect_setting_refused("mel_scale", "mel", "mel_scale: must be htk or slaney");
    expect_setting_refused("norm", "l2", "norm: must be none or slaney");
    expect_setting_refused("center", "yes", "center: must be true or false");
    expect_setting_refused("window", "hann", "window: not a setting of the mel front end");
}

static void test_output_names(void **state)
{
    (void)state;
    static const struct {
        const char *name, *mime, *ext;
        bool wave;
    } want[] = {{"wav", "audio/wav", "wav", true},
                {"flac", "audio/flac", "flac", true},
                {"features", "application/x-npy", "npy", false},
                {"png", "image/png", "png", false}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        enum audio_output out;
        assert_int_equal(audio_output_from_name(want[i].name, &out), 0);
        assert_int_equal(out, (int)i);
        assert_string_equal(audio_output_name(out), want[i].name);
        assert_string_equal(audio_output_mime(out), want[i].mime);
        assert_string_equal(audio_output_ext(out), want[i].ext);
        assert_int_equal(audio_output_is_wave(out), want[i].wave);
    }
    enum audio_output out;
    assert_int_equal(audio_output_from_name("npy", &out), -1);
    assert_int_equal(audio_output_from_name("WAV", &out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_format),       cmocka_unit_test(test_png_orientation),
        cmocka_unit_test(test_run_is_its_steps), cmocka_unit_test(test_run_without_features),
        cmocka_unit_test(test_run_failure),      cmocka_unit_test(test_settings),
        cmocka_unit_test(test_output_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
