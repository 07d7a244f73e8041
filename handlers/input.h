/* What the augment and inference handlers (/v1/augment, /v1/augment/audio, /v1/predict,
 * /v1/pseudo-label) read from a request: their parameters, from multipart form fields or the
 * query, and their images or clips, from multipart parts or the raw body. Each function that takes
 * a response and can fail writes the error response itself and returns -1.
 *
 * The audio section also holds what /v1/augment/audio and the CLI (augserve augment-audio, bench
 * audio) share, so both run the same code: one sample's pipeline and the encodings of its
 * results. */
#ifndef AUGSERVE_INPUT_H
#define AUGSERVE_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "audio.h"
#include "codec.h"
#include "ops.h"
#include "policy.h"
#include "targets.h"

struct request;
struct response;

/* Bytes of the request: a multipart part or the body. */
struct input_bytes {
    const unsigned char *data;
    size_t size;
};

struct input_image {
    const unsigned char *data; /* the request's bytes */
    size_t size;
    struct img *image; /* once decoded */
    struct img_info info;
};

/* A request parameter: a multipart form field, else a query parameter; NULL when absent. */
const char *input_param(const struct request *req, const char *name);

/* Parses a whole decimal number in [min, max]: 0, or -1 for anything else. */
int input_parse_whole(const char *text, unsigned long long min, unsigned long long max,
                      unsigned long long *out);

/* The "seed" parameter (0 to POLICY_MAX_SEED), or a random seed when it is absent. */
int input_seed(const struct request *req, struct response *resp, unsigned long long *seed);

/* The "policy" parameter (required), parsed through the app's cache: a reference the caller
 * releases with policy_free. 422 (invalid_policy) naming the bad node. */
int input_policy(struct request *req, struct response *resp, struct policy **policy);

/* The "samples" parameter: 1 to max_samples, default 1. */
int input_samples(const struct request *req, struct response *resp, unsigned long long *samples);

/* Base64 of size bytes (malloc'd, NUL-terminated); NULL when memory runs out. */
char *input_base64(const void *data, size_t size);

/* The multipart parts named name, at most max (max_inputs; 422 past it), into out[0..*count). */
int input_parts(const struct request *req, struct response *resp, const char *name,
                struct input_bytes *out, int max, int *count);

/* The inputs of one kind ("image", "audio"): the multipart parts named kind, else the raw body,
 * whose Content-Type must be kind/... or application/octet-stream (415 for another); 422 for none
 * or more than max. */
int input_collect(const struct request *req, struct response *resp, const char *kind,
                  struct input_bytes *out, int max, int *count);

/* input_collect for "image" into images[0..max). */
int input_collect_images(struct request *req, struct response *resp, struct input_image *images,
                         int max, int *count);

/* Decodes every image, in parallel on the app's workers, against max_pixels and max_dimension.
 * The error names the image and keeps the decoder's status (415, 422, 413). */
int input_decode_images(struct request *req, struct response *resp, struct input_image *images,
                        int count);

/* Frees the decoded images. */
void input_free_images(struct input_image *images, int count);

/* ---- Audio ---------------------------------------------------------------------------------- */

struct input_clip {
    struct input_bytes bytes;
    struct audio *clip; /* once decoded */
    struct audio_info info;
};

/* Decodes every clip, in parallel on the app's workers, resampled to opt->rate and no longer than
 * opt->max_seconds. The error names the clip ("noise 1: ...") and keeps the decoder's status
 * (415, 422, 413). */
int input_decode_clips(struct request *req, struct response *resp, const char *what,
                       struct input_clip *clips, int count, const struct audio_decode_options *opt);

/* Frees the decoded clips. */
void input_free_clips(struct input_clip *clips, int count);

/* The mel front end's settings by name, as torchaudio.transforms.MelSpectrogram calls them:
 * sample_rate, n_fft, win_length, hop_length, n_mels, f_min, f_max, power, mel_scale (htk,
 * slaney), norm (none, slaney), center (true, false), log_offset. NULL-terminated. */
extern const char *const input_mel_fields[];

/* Sets the setting name of cfg from text. 0; -1 with why ("n_mels: must be a whole number") when
 * text is no value of its type (audio_mel_new checks the ranges, naming the field too). Call
 * input_mel_resolve once every field is set. */
int input_mel_field(struct audio_mel_config *cfg, const char *name, const char *text, char *why,
                    size_t why_size);

/* The defaults, with win_length following n_fft unless it is set (torchaudio's rule). */
struct audio_mel_config input_mel_start(void);
void input_mel_resolve(struct audio_mel_config *cfg);

/* How a front end frames a clip, for policy_sample_audio. */
struct audio_framing input_mel_framing(const struct audio_mel *mel);

/* One sample of a clip through an audio policy: the trace, the waveform after its waveform ops
 * and, with features, the log-mel features after its spectrogram ops. 0, or -1 with err and
 * nothing to free. */
struct input_audio_sample {
    struct trace *trace;
    struct audio *wave;
    struct audio_spec *features; /* NULL without features */
};
int input_audio_run(const struct policy *p, const struct audio_mel *mel,
                    const struct audio_bank *bank, const struct audio *clip, uint64_t seed,
                    uint32_t input, uint32_t sample, uint32_t view, int features,
                    struct input_audio_sample *out, struct eng_error *err);
void input_audio_sample_free(struct input_audio_sample *s);

/* What one result of an audio sample can be encoded as. */
enum input_audio_format {
    INPUT_AUDIO_WAV,      /* the waveform, WAV 16-bit PCM */
    INPUT_AUDIO_FLAC,     /* the waveform, FLAC 16-bit */
    INPUT_AUDIO_FEATURES, /* the features, float32 .npy, frames x mels */
    INPUT_AUDIO_PNG, /* the features as an image (viridis), frames wide, low mels at the bottom */
};
/* "wav", "flac", "features", "png": 0, or -1 for another name. */
int input_audio_format_from_name(const char *name, enum input_audio_format *fmt);
const char *input_audio_format_name(enum input_audio_format fmt);
const char *input_audio_format_mime(enum input_audio_format fmt);
/* The file extension: "wav", "flac", "npy", "png". */
const char *input_audio_format_ext(enum input_audio_format fmt);
/* Whether the format is of the waveform (so it cannot carry spectrogram ops). */
int input_audio_format_is_wave(enum input_audio_format fmt);

/* Encodes s's waveform or features as fmt: 0 with *out (malloc'd) and *size, or -1 with err. */
int input_audio_encode(const struct input_audio_sample *s, enum input_audio_format fmt, void **out,
                       size_t *size, struct eng_error *err);

/* A float32 matrix as NumPy's .npy (format 1.0): the header dict padded with spaces to a multiple
 * of 64 bytes and ended by a newline, then the rows. */
int input_npy_f32(const float *data, int rows, int cols, void **out, size_t *size,
                  struct eng_error *err);

/* ---- Detection targets ---------------------------------------------------------------------- */

/* One input's targets, as /v1/augment reads them: the `targets` field (a JSON object, or an array
 * of one object per input) with `boxes`, `box_format` (coco, pascal_voc (the default), yolo,
 * albumentations), `labels` (any JSON values, one per object) and `keypoints` ([x, y] pixels);
 * and masks as multipart parts `mask_<i>` for input i (`mask` for input 0): 8-bit greyscale, one
 * per object, or with `mask_type=labels` one label map (value k is object k - 1). */
struct input_targets {
    json_t *labels; /* a reference, or NULL */
    enum box_format format;
    struct targets *targets; /* NULL: the input has no targets */
};

/* Reads every input's targets into out[0..count) (all NULL when the request has none). 422 naming
 * the input and the index for a bad box, keypoint or mask (a wrong size, not greyscale), counts
 * that disagree, or more than max_targets objects or keypoints; 413 past the masks' memory
 * budget; the decoder's status for a mask that is no image. */
int input_targets_read(struct request *req, struct response *resp, const struct input_image *images,
                       int count, struct input_targets *out);
void input_targets_free(struct input_targets *t, int count);

/* The filters min_area, min_visibility, min_width and min_height (request parameters; 0 when
 * absent). */
int input_targets_filter(const struct request *req, struct response *resp,
                         struct targets_filter *filter);

/* One sample's targets t (moved from in's) as JSON: {"box_format", "objects": [{"index", "box",
 * "label", "mask" (PNG, base64)}], "dropped": [{"index", "reason"}], "keypoints": [{"index", "x",
 * "y", "visible"}]}; NULL with err. */
json_t *input_targets_json(const struct input_targets *in, const struct targets *t,
                           struct eng_error *err);

#endif
