/* The audio area: waveforms (mono float32 at one sample rate) and log-mel features (frames x
 * mels), the two things audio ops work on, and all that is done to them without a policy:
 *
 *   audio.c         decoding (libsndfile, libvorbisfile, libopusfile, libmpg123), mixdown,
 *                   resampling (libsoxr), encoding (libsndfile)
 *   ogg_probe.c     what an Ogg file's streams hold, read from its pages, which picks the
 *                   library (private to the area)
 *   features.c      the log-mel front end, as torchaudio's MelSpectrogram (FFTW3)
 *   mel_settings.c  the front end's settings by name, read from text
 *   wave.c, spec.c  the op kernels on waveforms (wave_*) and on spectrograms (spec_*)
 *   output.c        a sample's outputs: names, MIME types, the .npy writer, the viridis picture
 *
 * Invariants. A function never modifies its input: it returns a new clip, spectrogram or buffer,
 * which the caller owns (audio_free, audio_spec_free, free), or NULL (-1) with err naming the
 * bad input. Nothing here draws at random by itself: a kernel that needs noise reads the stream
 * it is handed, and every other choice (mask boxes, warp points) arrives as an argument, drawn
 * when the policy was sampled, so the same arguments give the same samples. Every function is
 * thread-safe; an audio_mel is built once and shared read-only. Nothing prints or knows HTTP.
 * The area includes core/ only: the op registry and the pipeline that runs policies are in
 * policy/, above it. */
#ifndef AUGSERVE_ENGINE_AUDIO_AUDIO_H
#define AUGSERVE_ENGINE_AUDIO_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* A mono waveform; samples nominally in [-1, 1]. Owns samples. */
struct audio {
    float *samples;
    size_t length; /* samples */
    int rate;      /* Hz */
};

/* A time x frequency matrix, row-major: data[frame * bins + bin]. Owns data. */
struct audio_spec {
    float *data;
    int frames, bins;
};

struct audio *audio_new(size_t length, int rate, struct eng_error *err);
void audio_free(struct audio *a);
struct audio_spec *audio_spec_new(int frames, int bins, struct eng_error *err);
void audio_spec_free(struct audio_spec *s);

/* ------------------------------------------------------------------------------------------ */
/* Decoding (audio.c)                                                                         */

#define AUDIO_DEFAULT_RATE        16000
#define AUDIO_MIN_RATE            1000
#define AUDIO_MAX_RATE            384000
#define AUDIO_DEFAULT_MAX_SECONDS 600.0

/* What a decode produces and accepts. A field of 0 takes the default above: rate is the output
 * sample rate (the clip is resampled to it), max_seconds the longest clip accepted. max_samples
 * (0: none) caps the clip's samples at the output rate, so a high rate cannot turn a long clip
 * into gigabytes. */
struct audio_decode_options {
    int rate;
    double max_seconds;
    int64_t max_samples;
};

/* What the upload was, before mixdown and resampling. */
struct audio_info {
    char format[8];    /* "wav", "flac", "ogg", "mp3", "aiff" */
    char encoding[12]; /* "pcm16", "pcm24", "float", "vorbis", "opus", "mp3", ... */
    int channels;
    int rate;      /* Hz */
    size_t frames; /* samples per channel decoded */
};

/* Decodes data (size bytes) from memory: WAV (RIFF, RIFX, RF64, WAVEX), AIFF and FLAC through
 * libsndfile, Ogg Vorbis through libvorbisfile, Ogg Opus through libopusfile (at 48 kHz), MPEG
 * audio (MP3, also MP1/MP2) through libmpg123; an ID3v2 tag in front is skipped. An Ogg file goes
 * to a library only when every stream in it is Vorbis, or every one Opus. None of them leaks or
 * prints on malformed input.
 * The channels are averaged into one and the result is resampled with libsoxr (high quality) to
 * opt->rate, streaming, so memory holds the output only. opt and info may be NULL; info is
 * filled only on success. Returns a new clip, or NULL with err set:
 *   ENG_UNSUPPORTED  empty input, a format outside the list above, an encoding libsndfile
 *                    cannot read, an Ogg stream neither Vorbis nor Opus, Opus and Vorbis in one
 *                    Ogg file, or a chained Ogg or MPEG stream whose channel count or rate
 *                    changes;
 *   ENG_UNDECODABLE  corrupt or truncated data, with the library's reason (Ogg data with no
 *                    whole page, or no stream beginning, included);
 *   ENG_TOO_LARGE    longer than max_seconds, or more than max_samples at the output rate (from
 *                    the header when it says, before decoding);
 *   ENG_INVALID      a source rate outside [AUDIO_MIN_RATE, AUDIO_MAX_RATE], no samples, a NaN
 *                    or infinite sample (refused rather than zeroed: it means the file is
 *                    broken, and a silent repair would hide that), or bad options;
 *   ENG_NO_MEMORY, ENG_INTERNAL. Thread-safe. */
struct audio *audio_decode(const void *data, size_t size, const struct audio_decode_options *opt,
                           struct audio_info *info, struct eng_error *err);

/* Averages frames interleaved frames of channels samples into out (frames samples). out may be
 * in itself. */
void audio_mixdown(const float *in, size_t frames, int channels, float *out);

/* A new clip: a resampled to rate Hz with libsoxr (high quality); a copy when the rates match.
 * Its length is round(a->length * rate / a->rate). NULL with err set (ENG_INVALID for a rate
 * outside [AUDIO_MIN_RATE, AUDIO_MAX_RATE]). */
struct audio *audio_resample(const struct audio *a, int rate, struct eng_error *err);

/* A new clip of round(a->length * ratio) samples, a resampled by ratio (0.01 to 100) but keeping
 * a->rate: a ratio of 1/s plays s times faster (the speed op). NULL with err set. */
struct audio *audio_resample_ratio(const struct audio *a, double ratio, struct eng_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Encoding (audio.c)                                                                         */

enum audio_format {
    AUDIO_WAV_PCM16, /* WAV, 16-bit PCM: round(x * 32768) clipped to [-32768, 32767] */
    AUDIO_WAV_FLOAT, /* WAV, 32-bit float, samples as they are */
    AUDIO_FLAC,      /* FLAC, 16-bit, quantised as AUDIO_WAV_PCM16 */
};

/* Encodes a as fmt into memory. On success *out is a malloc'd buffer the caller frees with
 * free(), *out_size its length, and 0 is returned; otherwise -1 with err set and *out NULL
 * (ENG_INVALID for an empty clip or a NaN or infinite sample). Thread-safe. */
int audio_encode(const struct audio *a, enum audio_format fmt, void **out, size_t *out_size,
                 struct eng_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Log-mel features (features.c)                                                              */

enum audio_mel_scale { AUDIO_MEL_HTK, AUDIO_MEL_SLANEY };
enum audio_mel_norm { AUDIO_MEL_NORM_NONE, AUDIO_MEL_NORM_SLANEY };

/* torchaudio.transforms.MelSpectrogram's arguments, followed by log(x + log_offset). The window
 * is a periodic Hann window of win_length samples (torch.hann_window), centred in n_fft. With
 * center, the clip is reflect-padded by n_fft / 2 on both sides (torch.stft's default) and gives
 * 1 + length / hop_length frames; without, 1 + (length - n_fft) / hop_length. */
struct audio_mel_config {
    int sample_rate; /* Hz, of the clips it takes */
    int n_fft;       /* 16 to 65536 */
    int win_length;  /* 1 to n_fft */
    int hop_length;  /* 1 to 65536 */
    bool center;
    int n_mels;   /* 1 to 1024 */
    double f_min; /* Hz, >= 0 and below f_max */
    double f_max; /* Hz, up to sample_rate / 2; 0 means sample_rate / 2 */
    int power;    /* 1 (magnitude) or 2 (power) */
    enum audio_mel_scale mel_scale;
    enum audio_mel_norm norm;
    bool log;          /* output log(mel + log_offset) rather than the mel energies */
    double log_offset; /* > 0 */
};

/* The common ASR front end: 16 kHz, n_fft 400 (25 ms), hop 160 (10 ms), 80 mels from 0 Hz to
 * 8 kHz, power 2, HTK scale, no norm, centred, log with offset 1e-6. */
struct audio_mel_config audio_mel_defaults(void);

/* A front end for one configuration: its window, sparse filterbank and FFTW plan, built once and
 * shared by any number of clips and threads. */
struct audio_mel;

/* NULL with err set (ENG_INVALID naming the field) when cfg is out of range. */
struct audio_mel *audio_mel_new(const struct audio_mel_config *cfg, struct eng_error *err);
void audio_mel_free(struct audio_mel *m);

/* The configuration m was made with, f_max resolved. */
const struct audio_mel_config *audio_mel_config(const struct audio_mel *m);

/* The features of a: frames x n_mels. NULL with err set: ENG_INVALID when a's rate is not the
 * configuration's or, without center, a is shorter than n_fft. Thread-safe: it allocates its
 * own scratch once per call, never per frame. */
struct audio_spec *audio_mel_compute(const struct audio_mel *m, const struct audio *a,
                                     struct eng_error *err);

/* How the features turn samples into frames, which sampling a policy needs for the spectrogram
 * ops' draws (their width is the frame count, their height the bins), as torchaudio's
 * Spectrogram frames: center: 1 + length / hop_length; otherwise 1 + (length - n_fft) /
 * hop_length, or 0 when length < n_fft. In samples at the waveform's rate, so sampling needs no
 * rate. */
struct audio_framing {
    int n_fft, hop_length;
    int center;
    int bins; /* mel bins */
};
int audio_framing_frames(const struct audio_framing *f, size_t length);

/* ------------------------------------------------------------------------------------------ */
/* The front end's settings by name (mel_settings.c)                                          */

/* torchaudio.transforms.MelSpectrogram's names for them: sample_rate, n_fft, win_length,
 * hop_length, n_mels, f_min, f_max, power, mel_scale (htk, slaney), norm (none, slaney), center
 * (true, false), log_offset. NULL-terminated. */
extern const char *const audio_mel_settings[];

/* audio_mel_defaults with win_length unset, so that it follows n_fft unless it is set
 * (torchaudio's rule). Set fields with audio_mel_setting_parse, then call
 * audio_mel_settings_resolve once before audio_mel_new. */
struct audio_mel_config audio_mel_settings_start(void);

/* Sets the setting name of cfg from text. 0, or -1 with err (ENG_INVALID: "n_mels: must be a
 * whole number") when name is no setting or text no value of its type (core/parse.h's whole or
 * real numbers); audio_mel_new checks the ranges, naming the field too. */
int audio_mel_setting_parse(struct audio_mel_config *cfg, const char *name, const char *text,
                            struct eng_error *err);

/* Gives an unset win_length the value of n_fft. */
void audio_mel_settings_resolve(struct audio_mel_config *cfg);

#endif
