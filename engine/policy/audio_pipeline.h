/* One clip through an audio policy, as POST /v1/augment/audio, `augserve augment-audio` and
 * `augserve bench audio` all run it, so the benchmark measures the server's code:
 *
 *   audio_decode (audio.h) at the front end's rate
 *     -> the policy's waveform ops     (policy_sample_audio, trace_apply_wave)
 *     -> the log-mel front end         (audio_mel_compute)
 *     -> the policy's spectrogram ops  (trace_apply_spec)
 *     -> an output: the waveform as WAV or FLAC (audio_encode), the features as float32 .npy,
 *        or the features as a colour-mapped PNG (img_encode).
 *
 * The front end's settings can be read by name from text (request fields, command-line flags).
 * Errors are eng_error values naming the offending input; nothing here prints or knows HTTP. All
 * functions are thread-safe: any number of samples may run at once on one pipeline. */
#ifndef AUGSERVE_ENGINE_AUDIO_PIPELINE_H
#define AUGSERVE_ENGINE_AUDIO_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"
#include "core/error.h"
#include "policy/policy.h"

/* ---- The front end's settings by name ------------------------------------------------------- */

/* torchaudio.transforms.MelSpectrogram's names for them: sample_rate, n_fft, win_length,
 * hop_length, n_mels, f_min, f_max, power, mel_scale (htk, slaney), norm (none, slaney), center
 * (true, false), log_offset. NULL-terminated. */
extern const char *const audio_mel_settings[];

/* audio_mel_defaults with win_length unset, so that it follows n_fft unless it is set
 * (torchaudio's rule). Set fields with audio_mel_setting_parse, then call
 * audio_mel_settings_resolve once before audio_mel_new. */
struct audio_mel_config audio_mel_settings_start(void);

/* Sets the setting name of cfg from text. 0, or -1 with err (ENG_INVALID: "n_mels: must be a
 * whole number") when name is no setting or text no value of its type; audio_mel_new checks the
 * ranges, naming the field too. */
int audio_mel_setting_parse(struct audio_mel_config *cfg, const char *name, const char *text,
                            struct eng_error *err);

/* Gives an unset win_length the value of n_fft. */
void audio_mel_settings_resolve(struct audio_mel_config *cfg);

/* ---- Running a sample ----------------------------------------------------------------------- */

/* What every sample of a request or a command shares; the caller owns each part. */
struct audio_pipeline {
    const struct policy *policy;   /* of audio ops (policy_domain without POLICY_IMAGE) */
    const struct audio_mel *mel;   /* the front end; clips must be at its sample rate */
    const struct audio_bank *bank; /* noise clips and impulse responses; NULL for none */
    uint64_t seed;
};

/* The results of one sample; audio_sample_free frees them. */
struct audio_sample {
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
                       uint32_t sample, uint32_t view, bool features, struct audio_sample *out,
                       struct eng_error *err);
void audio_sample_free(struct audio_sample *s);

/* ---- Outputs -------------------------------------------------------------------------------- */

enum audio_output {
    AUDIO_OUTPUT_WAV,      /* the waveform, WAV 16-bit PCM */
    AUDIO_OUTPUT_FLAC,     /* the waveform, FLAC 16-bit */
    AUDIO_OUTPUT_FEATURES, /* the features, float32 .npy, frames x mels */
    AUDIO_OUTPUT_PNG,      /* the features in viridis, frames wide, low mels at the bottom */
};

/* "wav", "flac", "features", "png": 0, or -1 for another name. */
int audio_output_from_name(const char *name, enum audio_output *out);
const char *audio_output_name(enum audio_output out);
/* "audio/wav", "audio/flac", "application/x-npy", "image/png". */
const char *audio_output_mime(enum audio_output out);
/* The file extension: "wav", "flac", "npy", "png". */
const char *audio_output_ext(enum audio_output out);
/* Whether the output is of the waveform, which spectrogram ops do not change. */
bool audio_output_is_wave(enum audio_output out);

/* Encodes s's waveform or features as out. 0 with *data (malloc'd) and *size, or -1 with err
 * (ENG_INTERNAL when a features output is asked of a sample run without them). */
int audio_sample_encode(const struct audio_sample *s, enum audio_output out, void **data,
                        size_t *size, struct eng_error *err);

/* A rows x cols float32 matrix as NumPy's .npy, format version 1.0: the magic "\x93NUMPY", the
 * version 1 0, the header's length (little-endian uint16), then the header, a Python dict literal
 * of descr (the host's byte order), fortran_order and shape, padded with spaces and ended by a
 * newline so that the data starts at a multiple of 64 bytes; then the rows. 0 with *data
 * (malloc'd) and *size, or -1 with err. */
int audio_npy_f32(const float *matrix, int rows, int cols, void **data, size_t *size,
                  struct eng_error *err);

#endif
