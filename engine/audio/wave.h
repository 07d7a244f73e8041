/* Waveform op kernels with concrete arguments, on `struct audio` (audio/audio.h). The caller (the
 * op registry) makes every random choice that is not per sample at sampling time and passes it
 * in; per-sample randomness (noise, a synthetic room response) comes from the `noise` stream it
 * gives. tests/parity/gen_audio_ops.py writes the fixtures that hold the biquads to torchaudio.
 *
 * Every kernel reads `in` (never modified) and returns a new waveform the caller frees with
 * audio_free, or NULL with err set (ENG_INVALID naming the bad argument, ENG_TOO_LARGE,
 * ENG_NO_MEMORY). Waveforms are not clipped to [-1, 1] unless said. */
#ifndef AUGSERVE_ENGINE_AUDIO_WAVE_H
#define AUGSERVE_ENGINE_AUDIO_WAVE_H

#include <stddef.h>

#include "audio/audio.h"
#include "core/error.h"
#include "core/rng.h"

struct audio *wave_clone(const struct audio *in, struct eng_error *err);

/* x * 10^(db / 20). */
struct audio *wave_gain(const struct audio *in, double db, struct eng_error *err);

enum wave_colour { WAVE_WHITE, WAVE_PINK, WAVE_BROWN };

/* Adds noise of a colour scaled so that 10 log10(P(in) / P(noise)) is snr_db exactly (P: mean
 * square), so the SNR measured on the output is the target up to float32 rounding. White is
 * N(0, 1) from `noise`; pink is that through Paul Kellet's refined 1/f filter (-3 dB/octave
 * within 0.05 dB above 9.2 Hz at 44.1 kHz); brown is its leaky running sum (pole 0.998,
 * -6 dB/octave above ~5 Hz at 16 kHz). A silent input stays silent: there is no power to
 * measure the noise against. */
struct audio *wave_add_noise(const struct audio *in, double snr_db, enum wave_colour colour,
                             struct rng *noise, struct eng_error *err);

/* Adds a recorded noise clip at snr_db, as wave_add_noise: the clip is read from sample
 * floor(offset * clip->length) on (offset in [0, 1)), looping when it runs out. The clip must be
 * at the input's rate and not silent. */
struct audio *wave_add_clip(const struct audio *in, const struct audio *clip, double offset,
                            double snr_db, struct eng_error *err);

/* Speed perturbation by resampling: the clip resampled by 1 / factor with libsoxr
 * (audio_resample_ratio: band-limited, so speeding up does not alias) and kept at its rate, which
 * gives exactly wave_speed_length(length, factor) = round(length / factor) samples. Pitch moves
 * with the speed, as sox's `speed` and Kaldi's speed perturbation. */
size_t wave_speed_length(size_t length, double factor);
struct audio *wave_speed(const struct audio *in, double factor, struct eng_error *err);

/* Moves the waveform later by shift samples (earlier when negative): with roll the samples that
 * fall off one end come back at the other (torch.roll), otherwise the gap is zero. */
struct audio *wave_shift(const struct audio *in, long shift, int roll, struct eng_error *err);

/* A synthetic room impulse response for rt60 seconds (the time the energy takes to fall 60 dB):
 * a unit direct path, then N(0, 1) noise from `noise` under the envelope
 * exp(-3 ln(10) t / rt60) (amplitude -60 dB at rt60) up to rt60. *taps gets its length. The
 * caller frees it. */
float *wave_synthetic_rir(double rt60, int rate, struct rng *noise, size_t *taps,
                          struct eng_error *err);

/* Convolves with an impulse response normalised to unit L2 norm (as torchaudio's RIR tutorial
 * does), keeping the input's length: the tail past the end is dropped. FFT overlap-add. */
struct audio *wave_reverb(const struct audio *in, const float *rir, size_t taps,
                          struct eng_error *err);

/* Hard clipping at fraction (in (0, 1]) of the peak absolute sample. */
struct audio *wave_clip(const struct audio *in, double fraction, struct eng_error *err);

enum wave_filter { WAVE_LOWPASS, WAVE_HIGHPASS };

/* torchaudio's lowpass_biquad / highpass_biquad (the Audio EQ Cookbook's second-order sections)
 * through lfilter with its default clamp: the output is clipped to [-1, 1]. cutoff_hz must be
 * below half the rate. */
struct audio *wave_biquad(const struct audio *in, enum wave_filter kind, double cutoff_hz, double q,
                          struct eng_error *err);

/* Scales the peak absolute sample (rms = 0) or the root mean square (rms != 0) to target_db
 * dBFS. A silent input stays silent. */
struct audio *wave_normalize(const struct audio *in, int rms, double target_db,
                             struct eng_error *err);

#endif
