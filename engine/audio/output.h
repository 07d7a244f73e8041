/* The outputs of an audio sample, as POST /v1/augment/audio and `augserve augment-audio` name
 * them: the waveform as WAV or FLAC (audio_encode), the features as float32 .npy, or the features
 * as a PNG picture. This file has what needs audio alone: the names, MIME types and extensions,
 * the .npy writer and the picture's pixels; the audio pipeline (policy/audio_pipeline.h) encodes
 * the picture as PNG, since audio/ may not include image/. */
#ifndef AUGSERVE_ENGINE_AUDIO_OUTPUT_H
#define AUGSERVE_ENGINE_AUDIO_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "audio/audio.h"
#include "core/error.h"
#include "core/img.h"

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

/* A rows x cols float32 matrix as NumPy's .npy, format version 1.0: the magic "\x93NUMPY", the
 * version 1 0, the header's length (little-endian uint16), then the header, a Python dict literal
 * of descr (the host's byte order), fortran_order and shape, padded with spaces and ended by a
 * newline so that the data starts at a multiple of 64 bytes; then the rows. 0 with *data
 * (malloc'd) and *size, or -1 with err. */
int audio_npy_f32(const float *matrix, int rows, int cols, void **data, size_t *size,
                  struct eng_error *err);

/* The features s as a frames x bins RGB image (AUDIO_OUTPUT_PNG's pixels): the range [min, max]
 * spread over matplotlib's viridis, bin 0 (the lowest frequency) in the bottom row, as
 * spectrograms are drawn. A new image, or NULL with err. */
struct img *audio_output_viridis(const struct audio_spec *s, struct eng_error *err);

#endif
