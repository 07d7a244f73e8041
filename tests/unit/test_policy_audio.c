/* Audio in the policy graph: domain refusals with their JSON pointers, the sizes spectrogram
 * draws see (frames after Speed, bins), mask counts and draws, the SpecAugment presets against
 * the published values, seeding independent of threads, and the two apply steps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/ops.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "testutil.h"

static const char *fixtures_dir;

/* 16 kHz features: 400-sample window, 160-sample hop, centred, 80 mels. */
static const struct audio_framing asr = {400, 160, 1, 80};

static json_t *audio_trace(const struct policy *p, uint64_t seed, uint32_t sample, size_t length)
{
    struct eng_error err = {0};
    struct trace *t = policy_sample_audio(p, seed, 0, sample, 0, length, &asr, &err);
    if (!t) fail_msg("sampling failed: %s", err.message);
    json_t *j = trace_to_json(t);
    trace_free(t);
    return j;
}

static int entry_int(const json_t *entry, const char *key)
{
    return (int)json_integer_value(json_object_get(entry, key));
}

static const char *entry_op(const json_t *entry)
{
    return json_string_value(json_object_get(entry, "op"));
}

static void test_domain_refusals(void **state)
{
    tu_expect_policy_invalid(
        "{\"seq\": [{\"op\": \"TimeMask\"}, {\"op\": \"Gain\", \"db\": 3}]}",
        "/seq/1: Gain is a waveform op and can run after the spectrogram op TimeMask "
        "at /seq/0");
    tu_expect_policy_invalid(
        "{\"seq\": [{\"choice\": [{\"op\": \"Gain\"}, {\"op\": \"FrequencyMask\"}]}, "
        "{\"p\": 0.5, \"do\": {\"op\": \"Noise\"}}]}",
        "/seq/1/do: Noise is a waveform op and can run after the spectrogram op "
        "FrequencyMask at /seq/0/choice/1");
    tu_expect_policy_invalid(
        "{\"repeat\": 2, \"do\": {\"seq\": [{\"op\": \"Gain\"}, {\"op\": \"TimeMask\"}]}}",
        "/do/seq/0: Gain is a waveform op and repeats after the spectrogram op "
        "TimeMask at /do/seq/1");
    tu_expect_policy_invalid(
        "{\"dag\": {\"start\": \"a\", \"edges\": ["
        "{\"from\": \"a\", \"to\": \"b\", \"p\": 0.5, \"do\": {\"op\": \"TimeWarp\"}},"
        "{\"from\": \"a\", \"to\": \"b\", \"p\": 0.5},"
        "{\"from\": \"b\", \"to\": \"c\", \"p\": 1, \"do\": {\"op\": \"Speed\"}}]}}",
        "/dag/edges/2/do: Speed is a waveform op and can run after the spectrogram op "
        "TimeWarp at /dag/edges/0/do");
    tu_expect_policy_invalid("{\"seq\": [{\"op\": \"Rotate\"}, {\"op\": \"Gain\"}]}",
                             "/seq/1: Gain is a waveform op and Rotate at /seq/0 an image op");
    tu_expect_policy_invalid(
        "{\"choice\": [{\"op\": \"TimeMask\"}, {\"op\": \"Invert\"}]}",
        "/choice/0: TimeMask is a spectrogram op and Invert at /choice/1 an image op");
    tu_expect_policy_invalid("{\"mix\": [{\"op\": \"Gain\"}]}",
                             "/: mix blends images; Gain at /mix/0 is an audio op");
    tu_expect_policy_invalid("{\"op\": \"TimeMask\", \"start\": 3}",
                             "/start: is drawn at random when the policy runs");
    tu_expect_policy_invalid("{\"op\": \"FrequencyMask\", \"value\": \"max\"}",
                             "/value: must be one of");
    tu_expect_policy_invalid("{\"preset\": \"specaugment-LD\", \"value\": 2}",
                             "\"value\" must be \"zero\" or \"mean\"");
    tu_expect_policy_invalid("{\"preset\": \"multistyle\", \"noise_clips\": 65}",
                             "\"noise_clips\" must");

    /* Waveform ops first, then spectrogram ops, along every path: accepted. A one-pass repeat of
     * both is fine too. */
    const char *fine[] = {
        "{\"seq\": [{\"op\": \"Gain\"}, {\"op\": \"TimeMask\"}, {\"op\": \"FrequencyMask\"}]}",
        "{\"repeat\": 1, \"do\": {\"seq\": [{\"op\": \"Gain\"}, {\"op\": \"TimeMask\"}]}}",
        ("{\"seq\": [{\"choice\": [{\"op\": \"Gain\"}, {\"op\": \"Speed\"}]}, {\"op\": "
         "\"TimeMask\"}]}"),
        "gaugment-example",
        "multistyle",
        "specaugment-SM",
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        policy_free(tu_parse_policy(fine[i]));
}

static void test_policy_domain(void **state)
{
    static const struct {
        const char *text;
        unsigned domain;
    } cases[] = {
        {"randaugment", POLICY_IMAGE},
        {"specaugment-LD", POLICY_SPECTROGRAM},
        {"multistyle", POLICY_WAVEFORM},
        {"gaugment-example", POLICY_WAVEFORM | POLICY_SPECTROGRAM},
        {"{\"views\": [{\"op\": \"Gain\"}, {\"op\": \"TimeMask\"}]}",
         POLICY_WAVEFORM | POLICY_SPECTROGRAM},
        {"{\"p\": 0.5, \"do\": {\"seq\": [{\"op\": \"Volume\"}]}}", POLICY_WAVEFORM},
        {"{\"dag\": {\"start\": \"a\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"p\": 1}]}}",
         0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct policy *p = tu_parse_policy(cases[i].text);
        if (policy_domain(p) != cases[i].domain)
            fail_msg("%s: domain %u, expected %u", cases[i].text, policy_domain(p),
                     cases[i].domain);
        policy_free(p);
    }
    /* Every op is in one domain, and the registry says which. */
    size_t count, audio = 0;
    const struct op_desc *ops = op_table(&count);
    for (size_t i = 0; i < count; i++) {
        int image = ops[i].domain == OP_DOMAIN_IMAGE;
        assert_true(image ? ops[i].apply != NULL
                          : (ops[i].apply_wave != NULL) !=
                                (ops[i].apply_spec != NULL)); /* exactly one audio hook */
        assert_true(ops[i].domain != OP_DOMAIN_WAVEFORM || ops[i].apply_wave);
        audio += !image;
    }
    assert_int_equal(audio, 14);
    assert_string_equal(op_domain_name(op_find("TimeWarp")->domain), "spectrogram");
    assert_string_equal(op_domain_name(op_find("Reverb")->domain), "waveform");
}

static void test_sampling_refusals(void **state)
{
    struct eng_error err = {0};
    struct policy *audio = tu_parse_policy("specaugment-LB"),
                  *image = tu_parse_policy("randaugment");
    assert_null(policy_sample(audio, 1, 0, 0, 32, 32, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "the policy is for audio (TimeWarp is a spectrogram op)"));
    assert_null(policy_sample_audio(image, 1, 0, 0, 0, 16000, &asr, &err));
    assert_non_null(strstr(err.message, "the policy is for images"));
    assert_null(policy_sample_audio(audio, 1, 0, 0, 0, 16000, NULL, &err));
    assert_non_null(strstr(err.message, "needs the features' framing"));
    struct audio_framing bad = {400, 0, 1, 80};
    assert_null(policy_sample_audio(audio, 1, 0, 0, 0, 16000, &bad, &err));
    assert_non_null(strstr(err.message, "hop_length (0)"));
    /* Four Speed 0.5 ops would make the waveform 16 times longer. */
    struct policy *slow =
        tu_parse_policy("{\"repeat\": 4, \"do\": {\"op\": \"Speed\", \"factor\": 0.5}}");
    assert_null(policy_sample_audio(slow, 1, 0, 0, 0, 1000, NULL, &err));
    assert_int_equal(err.code, ENG_TOO_LARGE);
    policy_free(slow);
    policy_free(audio);
    policy_free(image);
}

/* Spectrogram levels in shares of the time axis see the frames the features will give for the
 * waveform as the ops before left it; of the height, the bins. */
static void test_sizes_follow_the_ops(void **state)
{
    assert_int_equal(audio_framing_frames(&asr, 16000), 101);
    struct audio_framing edges = {400, 160, 0, 80};
    assert_int_equal(audio_framing_frames(&edges, 16000), 98);
    assert_int_equal(audio_framing_frames(&edges, 399), 0);
    const char *whole_axis = "{\"op\": \"TimeMask\", \"level\": 1, \"range\": [0, 1], "
                             "\"range_of\": \"width\", \"count\": 1}";
    char text[512];
    snprintf(text, sizeof text,
             "{\"seq\": [{\"op\": \"Speed\", \"factor\": 2}, %s, {\"op\": \"FrequencyMask\", "
             "\"level\": 1, \"range\": [0, 1], \"range_of\": \"height\"}]}",
             whole_axis);
    struct policy *p = tu_parse_policy(text), *plain = tu_parse_policy(whole_axis);
    json_t *t = audio_trace(p, 3, 0, 16000), *u = audio_trace(plain, 3, 0, 16000);
    assert_int_equal(json_array_size(t), 3);
    assert_int_equal(entry_int(json_array_get(t, 1), "T"), 51); /* 1 + 8000 / 160 */
    assert_int_equal(entry_int(json_array_get(t, 2), "F"), 80);
    assert_int_equal(entry_int(json_array_get(u, 0), "T"), 101);
    json_decref(t);
    json_decref(u);
    policy_free(p);
    policy_free(plain);
}

static void test_mask_counts_and_draws(void **state)
{
    /* Adaptive: min(max_count, floor(0.04 * 501)) = 20 masks of at most floor(0.04 * 501) = 20
     * frames on 5 s (80000 samples: 501 frames); a cap of 5 gives 5. */
    struct policy *adaptive = tu_parse_policy("{\"op\": \"AdaptiveTimeMask\"}");
    struct policy *capped = tu_parse_policy("{\"op\": \"AdaptiveTimeMask\", \"max_count\": 5}");
    json_t *t = audio_trace(adaptive, 1, 0, 80000), *c = audio_trace(capped, 1, 0, 80000);
    assert_int_equal(json_array_size(t), 20);
    assert_int_equal(json_array_size(c), 5);
    json_t *entry;
    size_t i;
    json_array_foreach(t, i, entry)
    {
        assert_string_equal(entry_op(entry), "AdaptiveTimeMask");
        assert_true(entry_int(entry, "width") >= 0 && entry_int(entry, "width") < 20);
        assert_true(entry_int(entry, "start") >= 0 &&
                    entry_int(entry, "start") + entry_int(entry, "width") <= 501);
    }
    json_decref(t);
    json_decref(c);
    policy_free(adaptive);
    policy_free(capped);

    /* TimeMask T = 10 on 101 frames: width = floor(U(0, 10)), so each of 0..9 about a tenth of
     * the time, and the mask always inside the frames. */
    struct policy *p = tu_parse_policy("{\"op\": \"TimeMask\", \"T\": 10, \"count\": 3}");
    int seen[10] = {0}, draws = 0;
    for (uint32_t s = 0; s < 400; s++) {
        json_t *trace = audio_trace(p, 11, s, 16000);
        assert_int_equal(json_array_size(trace), 3);
        json_array_foreach(trace, i, entry)
        {
            int width = entry_int(entry, "width"), start = entry_int(entry, "start");
            assert_true(width >= 0 && width < 10 && start >= 0 && start + width <= 101);
            seen[width]++;
            draws++;
        }
        json_decref(trace);
    }
    for (int w = 0; w < 10; w++)
        if (abs(seen[w] - draws / 10) > draws / 25)
            fail_msg("width %d drawn %d times of %d", w, seen[w], draws);
    policy_free(p);
}

/* The published (W, F, mF, T, p, mT), typed from Park et al. 2019, Table 1. */
static void test_specaugment_presets(void **state)
{
    static const struct {
        const char *name;
        int W, F, mF, T;
        double p;
        int mT;
    } published[] = {
        {"specaugment-LB", 80, 27, 1, 100, 1.0, 1},
        {"specaugment-LD", 80, 27, 2, 100, 1.0, 2},
        {"specaugment-SM", 40, 15, 2, 70, 0.2, 2},
        {"specaugment-SS", 40, 27, 2, 70, 0.2, 2},
    };
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
        struct policy *p = tu_parse_policy(published[i].name);
        json_t *doc = policy_to_json(p);
        json_t *seq = json_object_get(doc, "seq");
        assert_int_equal(json_array_size(seq), 3);
        json_t *warp = json_array_get(seq, 0), *freq = json_array_get(seq, 1),
               *time = json_array_get(seq, 2);
        assert_string_equal(entry_op(warp), "TimeWarp");
        assert_int_equal(entry_int(warp, "W"), published[i].W);
        assert_string_equal(entry_op(freq), "FrequencyMask");
        assert_int_equal(entry_int(freq, "F"), published[i].F);
        assert_int_equal(entry_int(freq, "count"), published[i].mF);
        assert_string_equal(entry_op(time), "TimeMask");
        assert_int_equal(entry_int(time, "T"), published[i].T);
        assert_true(json_number_value(json_object_get(time, "p")) == published[i].p);
        assert_int_equal(entry_int(time, "count"), published[i].mT);
        json_decref(doc);
        /* Sampled: one warp, mF frequency masks, mT time masks, with those values. */
        json_t *trace = audio_trace(p, 7, 0, 48000);
        assert_int_equal(json_array_size(trace), 1 + published[i].mF + published[i].mT);
        for (int k = 0; k < published[i].mF; k++)
            assert_int_equal(entry_int(json_array_get(trace, 1 + k), "F"), published[i].F);
        json_t *last = json_array_get(trace, json_array_size(trace) - 1);
        assert_int_equal(entry_int(last, "T"), published[i].T);
        /* p = 0.2 of 301 frames caps the masks at 60 frames. */
        if (published[i].p < 1) assert_true(entry_int(last, "width") < 60);
        json_decref(trace);
        policy_free(p);
    }
    struct policy *mean = tu_parse_policy("{\"preset\": \"specaugment-SS\", \"value\": \"mean\"}");
    json_t *trace = audio_trace(mean, 7, 0, 48000);
    assert_string_equal(json_string_value(json_object_get(json_array_get(trace, 1), "value")),
                        "mean");
    json_decref(trace);
    policy_free(mean);
}

/* TimeWarp draws as ESPnet: centre in [W, frames - W), warped in [centre - W + 1, centre + W];
 * nothing when frames - W <= W. */
static void test_time_warp_draws(void **state)
{
    struct policy *p = tu_parse_policy("{\"op\": \"TimeWarp\", \"W\": 40}");
    for (uint32_t s = 0; s < 200; s++) {
        json_t *t = audio_trace(p, 2, s, 16000); /* 101 frames */
        json_t *e = json_array_get(t, 0);
        int centre = entry_int(e, "centre"), warped = entry_int(e, "warped");
        assert_true(centre >= 40 && centre < 61);
        assert_true(warped >= centre - 39 && warped <= centre + 40);
        json_decref(t);
    }
    json_t *t = audio_trace(p, 2, 0, 12800); /* 81 frames: 81 - 40 > 40 */
    assert_true(entry_int(json_array_get(t, 0), "centre") == 40);
    json_decref(t);
    t = audio_trace(p, 2, 0, 12000); /* 76 frames: too short */
    assert_int_equal(entry_int(json_array_get(t, 0), "centre"), 0);
    json_decref(t);
    policy_free(p);
}

struct thread_job {
    const struct policy *policy;
    uint32_t first;
    json_t *traces[16];
};

static void *sample_in_thread(void *arg)
{
    struct thread_job *job = arg;
    for (uint32_t s = 0; s < 16; s++) {
        struct eng_error err = {0};
        struct trace *t =
            policy_sample_audio(job->policy, 99, 1, job->first + s, 0, 40000, &asr, &err);
        job->traces[s] = t ? trace_to_json(t) : NULL;
        trace_free(t);
    }
    return NULL;
}

static void test_determinism_across_threads(void **state)
{
    struct policy *p = tu_parse_policy("gaugment-example");
    struct thread_job jobs[4];
    pthread_t threads[4];
    /* Threads sample overlapping ranges in parallel; every (seed, input, sample) must give the
     * trace the main thread gets alone. */
    for (int k = 0; k < 4; k++) {
        jobs[k].policy = p;
        jobs[k].first = (uint32_t)(k * 8);
        assert_int_equal(pthread_create(&threads[k], NULL, sample_in_thread, &jobs[k]), 0);
    }
    for (int k = 0; k < 4; k++)
        pthread_join(threads[k], NULL);
    int differing = 0;
    for (int k = 0; k < 4; k++)
        for (uint32_t s = 0; s < 16; s++) {
            struct eng_error err = {0};
            struct trace *t =
                policy_sample_audio(p, 99, 1, jobs[k].first + s, 0, 40000, &asr, &err);
            json_t *alone = trace_to_json(t);
            assert_true(json_equal(alone, jobs[k].traces[s]));
            if (s + 1 < 16) differing += !json_equal(jobs[k].traces[s], jobs[k].traces[s + 1]);
            json_decref(alone);
            trace_free(t);
        }
    assert_true(differing > 30); /* the samples themselves differ */
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 16; s++)
            json_decref(jobs[k].traces[s]);
    policy_free(p);
}

static struct audio *tone(size_t n, int rate)
{
    struct eng_error err = {0};
    struct audio *a = audio_new(n, rate, &err);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a->samples[i] = (float)(0.25 * sin(2 * M_PI * 220 * (double)i / rate));
    return a;
}

/* The two apply steps: waveform ops give a new waveform (noise from the seed coordinates, the
 * same every time), spectrogram ops mask exactly what the trace says. */
static void test_apply_wave_then_spec(void **state)
{
    struct policy *p = tu_parse_policy(
        "{\"seq\": [{\"op\": \"Gain\", \"db\": 6}, {\"op\": \"Noise\", \"snr_db\": 20}, "
        "{\"op\": \"FrequencyMask\", \"F\": 27, \"count\": 2}, {\"op\": \"TimeMask\", "
        "\"T\": 20, \"value\": \"mean\"}]}");
    struct eng_error err = {0};
    struct audio *in = tone(16000, 16000);
    struct trace *t = policy_sample_audio(p, 4, 0, 0, 0, in->length, &asr, &err);
    assert_non_null(t);
    assert_int_equal(trace_op_count(t), 5);
    struct audio *a = trace_apply_wave(t, in, NULL, 4, 0, 0, &err);
    struct audio *b = trace_apply_wave(t, in, NULL, 4, 0, 0, &err);
    assert_non_null(a);
    assert_memory_equal(a->samples, b->samples, in->length * sizeof(float));
    double gained = 0, signal = 0;
    for (size_t i = 0; i < in->length; i++) {
        signal += 4.0 * in->samples[i] * in->samples[i];
        double d = a->samples[i] - 2 * in->samples[i];
        gained += d * d;
    }
    assert_true(fabs(10 * log10(signal / gained) - 20) < 0.1);

    struct audio_spec *spec = audio_spec_new(101, 80, &err);
    for (int i = 0; i < 101 * 80; i++)
        spec->data[i] = 1.0f + (float)(i % 7);
    struct audio_spec *masked = trace_apply_spec(t, spec, &err);
    assert_non_null(masked);
    json_t *j = trace_to_json(t);
    json_t *f0 = json_array_get(j, 2), *f1 = json_array_get(j, 3), *tm = json_array_get(j, 4);
    /* The time mask's value is the mean of what it sees: the frequency-masked spectrogram. */
    double mean = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int f = 0; f < 101; f++)
            for (int k = 0; k < 80; k++) {
                int in_f = (k >= entry_int(f0, "start") &&
                            k < entry_int(f0, "start") + entry_int(f0, "width")) ||
                           (k >= entry_int(f1, "start") &&
                            k < entry_int(f1, "start") + entry_int(f1, "width"));
                int in_t = f >= entry_int(tm, "start") &&
                           f < entry_int(tm, "start") + entry_int(tm, "width");
                float expected = in_f ? 0.0f : spec->data[f * 80 + k];
                if (pass == 0)
                    mean += expected / (101.0 * 80.0);
                else if (in_t)
                    assert_float_equal(masked->data[f * 80 + k], mean, 1e-5);
                else
                    assert_true(masked->data[f * 80 + k] == expected);
            }
    assert_true(entry_int(tm, "width") > 0); /* the seed draws a time mask: the mean is checked */
    json_decref(j);
    audio_spec_free(masked);
    audio_spec_free(spec);
    audio_free(a);
    audio_free(b);
    audio_free(in);
    trace_free(t);
    policy_free(p);
}

static void test_bank(void **state)
{
    struct policy *p = tu_parse_policy("{\"preset\": \"multistyle\", \"noise_clips\": 2}");
    struct eng_error err = {0};
    struct audio *in = tone(8000, 16000), *n0 = tone(3000, 16000), *n1 = tone(5000, 16000);
    const struct audio *noises[2] = {n0, n1};
    const struct audio *rirs[1] = {n1};
    struct audio_bank bank = {noises, 2, rirs, 1};
    int clips_seen[2] = {0};
    for (uint32_t s = 0; s < 40; s++) {
        struct trace *t = policy_sample_audio(p, 8, 0, s, 0, in->length, NULL, &err);
        assert_non_null(t);
        json_t *j = trace_to_json(t);
        assert_int_equal(json_array_size(j), 3);
        const json_t *speed = json_array_get(j, 0), *reverb = json_array_get(j, 1),
                     *noise = json_array_get(j, 2);
        double factor = json_number_value(json_object_get(speed, "factor"));
        assert_true(factor == 0.9 || factor == 1.0 || factor == 1.1);
        double rt60 = json_number_value(json_object_get(reverb, "rt60"));
        assert_true(rt60 > 0.09 && rt60 < 0.91);
        assert_string_equal(entry_op(noise), "NoiseClip");
        clips_seen[entry_int(noise, "clip")]++;
        struct audio *out = trace_apply_wave(t, in, &bank, 8, 0, s, &err);
        if (!out) fail_msg("%s", err.message);
        assert_int_equal(out->length, (size_t)llround(8000 / factor));
        audio_free(out);
        /* Without the clips the request did not send, the op says which is missing. */
        if (entry_int(noise, "clip") == 1) {
            struct audio_bank one = {noises, 1, NULL, 0};
            assert_null(trace_apply_wave(t, in, &one, 8, 0, s, &err));
            assert_non_null(strstr(err.message, "NoiseClip: noise clip 1 does not exist; the "
                                                "request gave 1"));
        }
        json_decref(j);
        trace_free(t);
    }
    assert_true(clips_seen[0] > 5 && clips_seen[1] > 5);
    /* A user impulse response from the bank. */
    struct policy *room = tu_parse_policy("{\"op\": \"Reverb\", \"rir\": 0}");
    struct trace *t = policy_sample_audio(room, 1, 0, 0, 0, in->length, NULL, &err);
    struct audio *out = trace_apply_wave(t, in, &bank, 1, 0, 0, &err);
    assert_non_null(out);
    audio_free(out);
    assert_null(trace_apply_wave(t, in, NULL, 1, 0, 0, &err));
    assert_non_null(strstr(err.message, "Reverb: impulse response 0 does not exist"));
    /* A kernel's refusal names the op and the clip. */
    struct audio *slow = tone(100, 8000);
    const struct audio *wrong[1] = {slow};
    struct audio_bank other = {wrong, 1, wrong, 1};
    assert_null(trace_apply_wave(t, in, &other, 1, 0, 0, &err));
    assert_string_equal(err.message,
                        "Reverb: impulse response 0: it is at 8000 Hz; the audio is at 16000 Hz");
    audio_free(slow);
    trace_free(t);
    policy_free(room);
    audio_free(in);
    audio_free(n0);
    audio_free(n1);
    policy_free(p);
}

/* config/policy.schema.json lists exactly the registry's ops. */
static void test_schema_lists_ops(void **state)
{
    json_t *schema = tu_load_json(fixtures_dir, "../../../config/policy.schema.json");
    json_t *names = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(schema, "$defs"), "op"), "properties"),
            "op"),
        "enum");
    size_t count;
    const struct op_desc *ops = op_table(&count);
    assert_int_equal(json_array_size(names), count);
    for (size_t i = 0; i < count; i++) {
        int listed = 0;
        for (size_t k = 0; k < json_array_size(names); k++)
            listed |= strcmp(json_string_value(json_array_get(names, k)), ops[i].name) == 0;
        if (!listed) fail_msg("op %s is missing from config/policy.schema.json", ops[i].name);
    }
    json_decref(schema);
}

int main(int argc, char **argv)
{
    fixtures_dir = argc > 1 ? argv[1] : "tests/parity/fixtures";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_refusals),
        cmocka_unit_test(test_policy_domain),
        cmocka_unit_test(test_sampling_refusals),
        cmocka_unit_test(test_sizes_follow_the_ops),
        cmocka_unit_test(test_mask_counts_and_draws),
        cmocka_unit_test(test_specaugment_presets),
        cmocka_unit_test(test_time_warp_draws),
        cmocka_unit_test(test_determinism_across_threads),
        cmocka_unit_test(test_apply_wave_then_spec),
        cmocka_unit_test(test_bank),
        cmocka_unit_test(test_schema_lists_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
