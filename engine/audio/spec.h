/* Spectrogram op kernels with concrete arguments, on `struct audio_spec` (audio/audio.h: frames x
 * bins; time is the frame axis). The caller (the op registry) draws every random choice (mask
 * boxes, warp points) at sampling time and passes it in, so these kernels take no random stream.
 * tests/parity/gen_audio_ops.py writes the fixtures that hold the masks and the time warp to
 * torchaudio and torch.
 *
 * Every kernel reads `in` (never modified) and returns a new spectrogram the caller frees with
 * audio_spec_free, or NULL with err set (ENG_NO_MEMORY). */
#ifndef AUGSERVE_ENGINE_AUDIO_SPEC_H
#define AUGSERVE_ENGINE_AUDIO_SPEC_H

#include "audio/audio.h"
#include "core/error.h"

struct audio_spec *spec_clone(const struct audio_spec *in, struct eng_error *err);

enum spec_axis { SPEC_TIME, SPEC_FREQUENCY };

/* torchaudio's _get_mask_param: the widest mask for an axis of size entries, at most
 * max_width and, when p < 1, at most int(size * p). */
int spec_mask_param(int max_width, double p, int size);

/* torchaudio's mask_along_axis draw from two float32 uniforms in [0, 1):
 *     value = u_width * mask_param, min_value = u_start * (size - value)   (float32)
 *     start = (long)min_value, width = (long)value                          (toward zero)
 * The mask covers [start, start + width), cut to the axis: with mask_param above size the start
 * can be negative, and the mask is clamped as torchaudio's comparison against arange clamps it.
 * mask_param < 1 gives no mask (width 0). */
void spec_mask_draw(float u_width, float u_start, int mask_param, int size, int *start, int *width);

/* Sets [start, start + width) of the axis, cut to it, to zero or (use_mean) to the mean of the
 * whole input. */
struct audio_spec *spec_mask(const struct audio_spec *in, enum spec_axis axis, int start, int width,
                             int use_mean, struct eng_error *err);

/* SpecAugment's time warp (Park et al. 2019) as ESPnet's espnet2/layers/time_warp.py computes
 * it with mode "bilinear": frames [0, centre) are resized to [0, warped) and [centre, frames) to
 * [warped, frames) along time by linear interpolation with align_corners=False
 * (torch.nn.functional.interpolate); the bins are untouched. centre and warped outside
 * (0, frames) leave the input as it is. */
struct audio_spec *spec_time_warp(const struct audio_spec *in, int centre, int warped,
                                  struct eng_error *err);

#endif
