/* One clip through an audio policy, as POST /v1/augment/audio, `augserve augment-audio` and
 * `augserve bench audio` all run it, so the benchmark measures the server's code:
 *
 *   audio_decode (audio.h) at the front end's rate
 *     -> the policy's waveform ops     (policy_sample_audio, trace_apply_wave)
 *     -> the log-mel front end         (audio_mel_compute)
 *     -> the policy's spectrogram ops  (trace_apply_spec)
 *     -> an output (audio/output.h): the waveform as WAV or FLAC (audio_encode), the features
 *        as float32 .npy, or the features as a colour-mapped PNG (img_encode).
 *
 * It lives with the policy since it runs one; what needs audio alone (the front end's settings
 * by name, audio_mel_setting_parse in audio/audio.h, and the outputs' names and encoders) is in
 * audio/. Errors are eng_error values naming the offending input; nothing here prints or knows
 * HTTP. All functions are thread-safe: any number of samples may run at once on one pipeline. */
#ifndef AUGSERVE_ENGINE_POLICY_AUDIO_PIPELINE_H
#define AUGSERVE_ENGINE_POLICY_AUDIO_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"
#include "audio/output.h"
#include "core/error.h"
#include "policy/policy.h"

/* ---- Running a sample ----------------------------------------------------------------------- */

/* What every sample of a request or a command shares; the caller owns each part. */
struct audio_pipeline {
    const struct policy *policy;   /* of audio ops (policy_domain without POLICY_IMAGE) */
    const struct audio_mel *mel;   /* the front end; clips must be at its sample rate */
    const struct audio_bank *bank; /* noise clips and impulse responses; NULL for none */
    uint64_t seed;
};

/* The results of one sample; audio_pipeline_sample_free frees them. */
struct audio_pipeline_sample {
    struct trace *trace;
    struct audio *wave;          /* after the waveform ops */
    struct audio_spec *features; /* after the spectrogram ops; NULL when not asked for */
};

/* Runs sample (input, sample, view) of clip through pl: samples the policy with the streams of
 * (pl->seed, input, sample, view), applies its waveform ops and, with features, computes the
 * log-mel features and applies its spectrogram ops. Without features the spectrogram ops are
 * not run, and the waveform is what it is with them. 0, or -1 with err and out holding nothing
 * to free. */
int audio_pipeline_run(const struct audio_pipeline *pl, const struct audio *clip, uint32_t input,
                       uint32_t sample, uint32_t view, bool features,
                       struct audio_pipeline_sample *out, struct eng_error *err);
void audio_pipeline_sample_free(struct audio_pipeline_sample *s);

/* audio_pipeline_run in two steps, so a caller can weigh every sample's cost before running any:
 * the trace of sample (input, sample, view) of a clip `length` samples long (the caller frees
 * it), or NULL with err; */
struct trace *audio_pipeline_sample_trace(const struct audio_pipeline *pl, size_t length,
                                          uint32_t input, uint32_t sample, uint32_t view,
                                          struct eng_error *err);
/* then the run of that trace, which takes it over (out->trace; freed on failure too; a NULL trace
 * fails with err as it stands). */
int audio_pipeline_run_trace(const struct audio_pipeline *pl, const struct audio *clip,
                             struct trace *trace, uint32_t input, uint32_t sample, bool features,
                             struct audio_pipeline_sample *out, struct eng_error *err);

/* What running a sampled trace on a clip `length` samples long will cost, from sizes alone. */
struct audio_pipeline_cost {
    double work;   /* trace_cost's work, the features' FFTs and filterbank, the output */
    size_t length; /* the waveform's, after the waveform ops */
    int frames;    /* of the features (0 without them) */
    double values; /* the features' frames x mels */
};
struct audio_pipeline_cost audio_pipeline_cost(const struct audio_pipeline *pl,
                                               const struct trace *t, size_t length, bool features);

/* ---- Outputs -------------------------------------------------------------------------------- */

/* Encodes s's waveform or features as out. 0 with *data (malloc'd) and *size, or -1 with err
 * (ENG_INTERNAL when a features output is asked of a sample run without them). */
int audio_pipeline_encode(const struct audio_pipeline_sample *s, enum audio_output out, void **data,
                          size_t *size, struct eng_error *err);

#endif
