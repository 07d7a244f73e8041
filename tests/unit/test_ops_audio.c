/* Unit tests of engine/audio/wave.c and spec.c. argv[1]: the parity fixtures folder; every case of
 * audio_ops/manifest.json (written by tests/parity/gen_audio_ops.py from torchaudio and torch)
 * must come out the same: masks bit for bit, the time warp and the biquads within 1e-5. The
 * waveform ops are held to their definitions: the SNR measured on the output, the duration and
 * pitch after Speed, the level after Gain, direct convolution for Reverb. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audio/spec.h"
#include "audio/wave.h"

static char manifest_path[4096];

/* ---- Helpers -------------------------------------------------------------------------------- */

static struct audio *wave_of(const float *samples, size_t n, int rate)
{
    struct eng_error err = {0};
    struct audio *a = audio_new(n, rate, &err);
    if (!a) fail_msg("audio_new: %s", err.message);
    if (n) memcpy(a->samples, samples, n * sizeof *samples);
    return a;
}

/* amplitude sin(2 pi hz t) for seconds at rate */
static struct audio *sine(double hz, double amplitude, double seconds, int rate)
{
    size_t n = (size_t)(seconds * rate);
    struct eng_error err = {0};
    struct audio *a = audio_new(n, rate, &err);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a->samples[i] = (float)(amplitude * sin(2 * M_PI * hz * (double)i / rate));
    return a;
}

static double mean_square(const float *x, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return sum / (double)n;
}

/* 10 log10(P(in) / P(out - in)): the SNR of what an op added. */
static double measured_snr(const struct audio *in, const struct audio *out)
{
    assert_int_equal(in->length, out->length);
    double signal = 0, noise = 0;
    for (size_t i = 0; i < in->length; i++) {
        double d = (double)out->samples[i] - in->samples[i];
        signal += (double)in->samples[i] * in->samples[i];
        noise += d * d;
    }
    return 10 * log10(signal / noise);
}

/* Frequency from rising zero crossings, for a clean sine. */
static double crossing_hz(const struct audio *a)
{
    int first = -1, last = -1, count = 0;
    for (size_t i = 1; i < a->length; i++)
        if (a->samples[i - 1] < 0 && a->samples[i] >= 0) {
            if (first < 0) first = (int)i;
            last = (int)i;
            count++;
        }
    assert_true(count > 2);
    return (count - 1) * (double)a->rate / (last - first);
}

static float *floats_of(const json_t *array)
{
    float *out = malloc((json_array_size(array) + 1) * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < json_array_size(array); i++)
        out[i] = (float)json_number_value(json_array_get(array, i));
    return out;
}

static struct audio_spec *spec_of(const json_t *c)
{
    struct eng_error err = {0};
    int frames = (int)json_integer_value(json_object_get(c, "frames"));
    int bins = (int)json_integer_value(json_object_get(c, "bins"));
    struct audio_spec *s = audio_spec_new(frames, bins, &err);
    assert_non_null(s);
    float *data = floats_of(json_object_get(c, "input"));
    memcpy(s->data, data, (size_t)frames * bins * sizeof *data);
    free(data);
    return s;
}

static json_t *load_cases(void)
{
    json_error_t jerr;
    json_t *doc = json_load_file(manifest_path, 0, &jerr);
    if (!doc) fail_msg("%s: %s", manifest_path, jerr.text);
    return doc;
}

/* Largest |got - expected| over n values. */
static double max_diff(const float *got, const json_t *expected, size_t n)
{
    assert_int_equal(json_array_size(expected), n);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(got[i] - json_number_value(json_array_get(expected, i))));
    return worst;
}

/* ---- Parity --------------------------------------------------------------------------------- */

static void run_mask(const json_t *c)
{
    struct audio_spec *in = spec_of(c);
    int time = strcmp(json_string_value(json_object_get(c, "axis")), "time") == 0;
    int size = time ? in->frames : in->bins, start, width;
    int param = spec_mask_param((int)json_integer_value(json_object_get(c, "mask_param")),
                                json_number_value(json_object_get(c, "p")), size);
    spec_mask_draw((float)json_number_value(json_object_get(c, "u_width")),
                   (float)json_number_value(json_object_get(c, "u_start")), param, size, &start,
                   &width);
    int use_mean = strcmp(json_string_value(json_object_get(c, "value")), "mean") == 0;
    struct eng_error err = {0};
    struct audio_spec *out =
        spec_mask(in, time ? SPEC_TIME : SPEC_FREQUENCY, start, width, use_mean, &err);
    assert_non_null(out);
    /* The geometry must match exactly; the mean, summed in another order than torch's, may
     * differ in its last bits. */
    size_t n = (size_t)in->frames * in->bins;
    double diff = max_diff(out->data, json_object_get(c, "expected"), n);
    if (diff > (use_mean ? 1e-6 : 0))
        fail_msg("mask %s param %d start %d width %d differs from torchaudio by %g",
                 time ? "time" : "frequency", param, start, width, diff);
    audio_spec_free(in);
    audio_spec_free(out);
}

static void run_time_warp(const json_t *c)
{
    struct audio_spec *in = spec_of(c);
    struct eng_error err = {0};
    struct audio_spec *out =
        spec_time_warp(in, (int)json_integer_value(json_object_get(c, "centre")),
                       (int)json_integer_value(json_object_get(c, "warped")), &err);
    assert_non_null(out);
    double diff =
        max_diff(out->data, json_object_get(c, "expected"), (size_t)in->frames * in->bins);
    if (diff > 1e-5) fail_msg("time warp differs from ESPnet's by %g", diff);
    audio_spec_free(in);
    audio_spec_free(out);
}

static void run_biquad(const json_t *c, enum wave_filter kind)
{
    const json_t *input = json_object_get(c, "input");
    float *samples = floats_of(input);
    struct audio *in = wave_of(samples, json_array_size(input),
                               (int)json_integer_value(json_object_get(c, "rate")));
    free(samples);
    struct eng_error err = {0};
    struct audio *out = wave_biquad(in, kind, json_number_value(json_object_get(c, "cutoff_hz")),
                                    json_number_value(json_object_get(c, "q")), &err);
    assert_non_null(out);
    double diff = max_diff(out->samples, json_object_get(c, "expected"), in->length);
    if (diff > 1e-5) fail_msg("biquad differs from torchaudio's by %g", diff);
    audio_free(in);
    audio_free(out);
}

static void test_parity(void **state)
{
    json_t *doc = load_cases();
    const json_t *cases = json_object_get(doc, "cases"), *c;
    size_t i, counted[4] = {0};
    json_array_foreach(cases, i, c)
    {
        const char *kind = json_string_value(json_object_get(c, "kind"));
        if (strcmp(kind, "mask") == 0)
            run_mask(c), counted[0]++;
        else if (strcmp(kind, "time_warp") == 0)
            run_time_warp(c), counted[1]++;
        else if (strcmp(kind, "lowpass") == 0)
            run_biquad(c, WAVE_LOWPASS), counted[2]++;
        else if (strcmp(kind, "highpass") == 0)
            run_biquad(c, WAVE_HIGHPASS), counted[3]++;
        else
            fail_msg("unknown case kind %s", kind);
    }
    for (int k = 0; k < 4; k++)
        assert_true(counted[k] >= 2);
    json_decref(doc);
}

/* ---- Waveform ops against their definitions -------------------------------------------------- */

static void test_noise_snr(void **state)
{
    static const double targets[] = {-5, 0, 10, 30};
    struct audio *in = sine(300, 0.3, 1.0, 16000);
    struct eng_error err = {0};
    for (int colour = WAVE_WHITE; colour <= WAVE_BROWN; colour++)
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
            struct rng noise;
            rng_init(&noise, 9, 0, (uint32_t)t, RNG_STREAM_OP(colour));
            struct audio *out =
                wave_add_noise(in, targets[t], (enum wave_colour)colour, &noise, &err);
            assert_non_null(out);
            double snr = measured_snr(in, out);
            if (fabs(snr - targets[t]) > 0.1)
                fail_msg("colour %d: SNR %.3f dB, target %.1f", colour, snr, targets[t]);
            audio_free(out);
        }
    audio_free(in);
}

/* Lag-1 autocorrelation of what the op added: white noise has none, brown noise (a leaky sum)
 * almost 1, pink in between. */
static double added_lag1(const struct audio *in, const struct audio *out)
{
    double num = 0, den = 0;
    for (size_t i = 1; i < in->length; i++) {
        double a = (double)out->samples[i] - in->samples[i];
        double b = (double)out->samples[i - 1] - in->samples[i - 1];
        num += a * b;
        den += a * a;
    }
    return num / den;
}

static void test_noise_colours(void **state)
{
    struct audio *in = sine(300, 0.3, 2.0, 16000);
    struct eng_error err = {0};
    double lag1[3];
    for (int colour = WAVE_WHITE; colour <= WAVE_BROWN; colour++) {
        struct rng noise;
        rng_init(&noise, 5, 0, 0, RNG_STREAM_OP(0));
        struct audio *out = wave_add_noise(in, 0, (enum wave_colour)colour, &noise, &err);
        assert_non_null(out);
        lag1[colour] = added_lag1(in, out);
        audio_free(out);
    }
    assert_true(fabs(lag1[WAVE_WHITE]) < 0.03);
    assert_true(lag1[WAVE_PINK] > 0.3 && lag1[WAVE_PINK] < 0.95);
    assert_true(lag1[WAVE_BROWN] > 0.95);
    /* Silence has no power to set the noise against: it stays silent. */
    float zeros[64] = {0};
    struct audio *silent = wave_of(zeros, 64, 16000);
    struct rng noise;
    rng_init(&noise, 5, 0, 0, 1);
    struct audio *out = wave_add_noise(silent, 10, WAVE_WHITE, &noise, &err);
    assert_memory_equal(out->samples, zeros, sizeof zeros);
    audio_free(out);
    audio_free(silent);
    audio_free(in);
}

static void test_noise_clip(void **state)
{
    struct audio *in = sine(300, 0.3, 1.0, 16000);
    struct audio *clip = sine(1234, 0.05, 0.1, 16000); /* shorter: it loops */
    struct eng_error err = {0};
    struct audio *out = wave_add_clip(in, clip, 0.37, 6, &err);
    assert_non_null(out);
    assert_true(fabs(measured_snr(in, out) - 6) <= 0.1);
    /* It starts at floor(0.37 * 1600) = 592 of the clip and loops: added sample i is clip sample
     * (592 + i) % 1600 times one scale. */
    double scale = (out->samples[1] - in->samples[1]) / clip->samples[593];
    for (size_t i = 0; i < in->length; i += 997)
        assert_float_equal(out->samples[i] - in->samples[i],
                           scale * clip->samples[(592 + i) % 1600], 1e-5);
    audio_free(out);
    struct audio *other = sine(1234, 0.05, 0.1, 8000);
    assert_null(wave_add_clip(in, other, 0, 6, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "8000 Hz"));
    float zeros[16] = {0};
    struct audio *silent = wave_of(zeros, 16, 16000);
    assert_null(wave_add_clip(in, silent, 0, 6, &err));
    assert_non_null(strstr(err.message, "silent"));
    audio_free(silent);
    audio_free(other);
    audio_free(clip);
    audio_free(in);
}

static void test_speed(void **state)
{
    static const double factors[] = {0.9, 1.0, 1.1, 0.5, 2.0};
    struct audio *in = sine(440, 0.5, 1.0, 16000);
    struct eng_error err = {0};
    for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
        struct audio *out = wave_speed(in, factors[f], &err);
        assert_non_null(out);
        /* The duration divides by the factor (to the nearest sample)... */
        assert_true(fabs((double)out->length - 16000 / factors[f]) <= 0.5);
        assert_int_equal(out->length, wave_speed_length(in->length, factors[f]));
        /* ...and the pitch multiplies by it. */
        double hz = crossing_hz(out);
        if (fabs(hz / (440 * factors[f]) - 1) > 0.005)
            fail_msg("factor %g: %g Hz, expected %g", factors[f], hz, 440 * factors[f]);
        audio_free(out);
    }
    audio_free(in);
}

static void test_gain_clip_volume(void **state)
{
    struct audio *in = sine(440, 0.25, 0.5, 16000);
    struct eng_error err = {0};
    struct audio *louder = wave_gain(in, 6, &err), *quieter = wave_gain(in, -20, &err);
    double base = mean_square(in->samples, in->length);
    assert_float_equal(10 * log10(mean_square(louder->samples, louder->length) / base), 6, 1e-4);
    assert_float_equal(10 * log10(mean_square(quieter->samples, quieter->length) / base), -20,
                       1e-4);
    struct audio *clipped = wave_clip(in, 0.5, &err);
    for (size_t i = 0; i < in->length; i++) {
        float x = in->samples[i];
        float expected = x > 0.125f ? 0.125f : x < -0.125f ? -0.125f : x;
        assert_float_equal(clipped->samples[i], expected, 1e-7);
    }
    struct audio *peak = wave_normalize(in, 0, -1, &err), *rms = wave_normalize(in, 1, -20, &err);
    float top = 0;
    for (size_t i = 0; i < peak->length; i++)
        top = fmaxf(top, fabsf(peak->samples[i]));
    assert_float_equal(20 * log10(top), -1, 1e-4);
    assert_float_equal(10 * log10(mean_square(rms->samples, rms->length)), -20, 1e-4);
    audio_free(louder);
    audio_free(quieter);
    audio_free(clipped);
    audio_free(peak);
    audio_free(rms);
    audio_free(in);
}

static void test_time_shift(void **state)
{
    const float x[5] = {1, 2, 3, 4, 5};
    const float rolled[5] = {4, 5, 1, 2, 3}, zeroed[5] = {0, 0, 1, 2, 3}, back[5] = {3, 4, 5, 0, 0};
    struct audio *in = wave_of(x, 5, 16000);
    struct eng_error err = {0};
    struct audio *a = wave_shift(in, 2, 1, &err), *b = wave_shift(in, 2, 0, &err),
                 *c = wave_shift(in, -2, 0, &err), *d = wave_shift(in, -3, 1, &err);
    assert_memory_equal(a->samples, rolled, sizeof rolled);
    assert_memory_equal(b->samples, zeroed, sizeof zeroed);
    assert_memory_equal(c->samples, back, sizeof back);
    assert_memory_equal(d->samples, rolled, sizeof rolled); /* -3 is +2 around 5 */
    audio_free(a);
    audio_free(b);
    audio_free(c);
    audio_free(d);
    audio_free(in);
}

/* Reverb against a direct convolution with the unit-norm response, cut to the input's length. */
static void check_reverb(const struct audio *in, const float *rir, size_t taps)
{
    struct eng_error err = {0};
    struct audio *out = wave_reverb(in, rir, taps, &err);
    assert_non_null(out);
    double norm = sqrt(mean_square(rir, taps) * (double)taps), worst = 0;
    for (size_t n = 0; n < in->length; n++) {
        double y = 0;
        for (size_t k = 0; k < taps && k <= n; k++)
            y += rir[k] / norm * in->samples[n - k];
        worst = fmax(worst, fabs(y - out->samples[n]));
    }
    if (worst > 1e-5) fail_msg("%zu taps: %g from the direct convolution", taps, worst);
    audio_free(out);
}

static void test_reverb(void **state)
{
    struct audio *in = sine(440, 0.5, 0.75, 16000);
    const float delta[1] = {1}, delay[3] = {0, 0, 2}, pair[2] = {1, 1};
    check_reverb(in, delta, 1);
    check_reverb(in, delay, 3);
    check_reverb(in, pair, 2);
    /* A response longer than one block: overlap-add over several. */
    struct rng noise;
    rng_init(&noise, 3, 0, 0, 1);
    size_t taps;
    struct eng_error err = {0};
    float *rir = wave_synthetic_rir(0.3, 16000, &noise, &taps, &err);
    assert_non_null(rir);
    assert_int_equal(taps, 4800);
    check_reverb(in, rir, taps);
    free(rir);
    /* The synthetic response decays 60 dB over rt60: between the windows around 0.1 and 0.5 of
     * rt60 the amplitude falls by 10^(-3 * 0.4) = -24 dB. */
    rir = wave_synthetic_rir(1.0, 16000, &noise, &taps, &err);
    assert_int_equal(taps, 16000);
    assert_true(rir[0] == 1.0f);
    double early = mean_square(rir + 800, 1600), late = mean_square(rir + 7200, 1600);
    double drop = 10 * log10(late / early);
    if (fabs(drop + 24) > 1.5) fail_msg("the envelope fell %.2f dB, expected -24", drop);
    free(rir);
    float zeros[4] = {0};
    assert_null(wave_reverb(in, zeros, 4, &err));
    assert_int_equal(err.code, ENG_INVALID);
    audio_free(in);
}

static void test_biquad_refusals(void **state)
{
    struct audio *in = sine(440, 0.5, 0.1, 16000);
    struct eng_error err = {0};
    assert_null(wave_biquad(in, WAVE_LOWPASS, 8000, 0.707, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "LowPass: cutoff 8000 Hz must be in (0, 8000)"));
    assert_null(wave_biquad(in, WAVE_HIGHPASS, 100, 0, &err));
    assert_non_null(strstr(err.message, "HighPass"));
    audio_free(in);
}

static void test_mask_draw_limits(void **state)
{
    int start, width;
    /* The widest draw stays below mask_param, as torchaudio checks. */
    spec_mask_draw(0.99999994f, 0.0f, 100, 500, &start, &width);
    assert_int_equal(width, 99);
    assert_int_equal(start, 0);
    spec_mask_draw(0.5f, 0.5f, 0, 500, &start, &width);
    assert_int_equal(width, 0);
    assert_int_equal(spec_mask_param(100, 1.0, 50), 100);
    assert_int_equal(spec_mask_param(100, 0.2, 300), 60);
    assert_int_equal(spec_mask_param(40, 0.2, 300), 40);
    /* A warp point outside the frames leaves the spectrogram as it is. */
    struct eng_error err = {0};
    struct audio_spec *s = audio_spec_new(4, 2, &err);
    for (int i = 0; i < 8; i++)
        s->data[i] = (float)i;
    struct audio_spec *same = spec_time_warp(s, 0, 0, &err);
    assert_memory_equal(same->data, s->data, 8 * sizeof(float));
    audio_spec_free(same);
    audio_spec_free(s);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(manifest_path, sizeof manifest_path, "%s/audio_ops/manifest.json", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),          cmocka_unit_test(test_noise_snr),
        cmocka_unit_test(test_noise_colours),   cmocka_unit_test(test_noise_clip),
        cmocka_unit_test(test_speed),           cmocka_unit_test(test_gain_clip_volume),
        cmocka_unit_test(test_time_shift),      cmocka_unit_test(test_reverb),
        cmocka_unit_test(test_biquad_refusals), cmocka_unit_test(test_mask_draw_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
