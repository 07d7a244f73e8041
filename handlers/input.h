/* What the handlers read from a request: JSON bodies (/v1/policies/validate, /v1/jobs), and for
 * the augment and inference handlers (/v1/augment, /v1/augment/audio, /v1/predict,
 * /v1/pseudo-label) their parameters, from multipart form fields or the query, and their images
 * or clips, from multipart parts or the raw body. Each function that takes
 * a response and can fail writes the error response itself and returns -1. */
#ifndef AUGSERVE_INPUT_H
#define AUGSERVE_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"
#include "image/codec.h"
#include "image/targets.h"
#include "policy/ops.h"
#include "policy/policy.h"

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

/* The body as JSON (any value; the caller owns it), or NULL with the answer written: 422 asking
 * to "send <expected> as the body" when there is none, 400 naming the line and column when it
 * does not parse. */
json_t *input_json_body(const struct request *req, struct response *resp, const char *expected);

/* A request parameter: a multipart form field, else a query parameter; NULL when absent. */
const char *input_param(const struct request *req, const char *name);

/* The "seed" parameter (0 to POLICY_MAX_SEED), or a random seed when it is absent. */
int input_seed(const struct request *req, struct response *resp, unsigned long long *seed);

/* The "policy" parameter (required), parsed through the app's cache: a reference the caller
 * releases with policy_free. 422 (invalid_policy) naming the bad node. */
int input_policy(struct request *req, struct response *resp, struct policy **policy);
/* The answer to a policy that did not parse: 422 (invalid_policy) with the message as
 * policy_error_prefix shows it ("policy/seq/1: ..."), or err's own status when memory ran out. */
void input_policy_error(struct response *resp, const struct eng_error *err);

/* The "samples" parameter: 1 to max_samples, default 1. */
int input_samples(const struct request *req, struct response *resp, unsigned long long *samples);

/* Where job `index` of a batch of inputs x samples x views lies: jobs are numbered
 * (input * samples + sample) * views + view, so results come back in that order. */
struct input_job {
    uint32_t input, sample, view;
};
struct input_job input_job_at(size_t index, unsigned long long samples, int views);

/* The work budget, checked before any op runs. 413 when work (op-pixels, see max_work) passes
 * max_work, with the figure, the limit and `reduce` (what the client can ask for less of). 0, or
 * -1 with the error written. */
int input_check_work(const struct request *req, struct response *resp, double work,
                     const char *reduce);

/* The memory budget of a sampled trace: 413 when an op of it would make an image (or waveform,
 * or spectrogram) of more than max_pixels pixels (values), naming the op, its size and the input.
 * Else adds the trace's work (trace_cost) to *work and returns 0. */
int input_check_trace(const struct request *req, struct response *resp, const struct trace *t,
                      uint32_t input, double *work);

/* The response budget, checked before a response of about `bytes` is built: 413 past
 * max_response_bytes, saying what to reduce. 0, or -1 with the error written. */
int input_check_response(const struct request *req, struct response *resp, double bytes,
                         const char *reduce);

struct model;
struct nn_tensor_info;
/* Adds to *work what `times` runs of model m on inputs of these shapes cost (model_flops, at 100
 * FLOPs an op-pixel), compiling and caching its plan for them; 0, or -1 with the error written
 * (413 when the plan's activations pass max_request_memory). */
int input_add_inference_work(struct response *resp, struct model *m,
                             const struct nn_tensor_info *shapes, double times, double *work);

/* Runs run(ctx, j) for the jobs j in [0, jobs) on the app's workers, then answers the first that
 * failed: failure(ctx, j) is job j's error, NULL when it succeeded. 0, or -1. */
int input_run_jobs(struct request *req, struct response *resp, size_t jobs,
                   void (*run)(void *ctx, size_t j),
                   const struct eng_error *(*failure)(void *ctx, size_t j), void *ctx);

/* Base64 of size bytes (malloc'd, NUL-terminated); NULL when memory runs out. */
char *input_base64(const void *data, size_t size);

/* im encoded as fmt (quality for the lossy ones) with the ICC profile icc (may be NULL), as a
 * base64 JSON string; NULL with err. */
json_t *input_image_base64(const struct img *im, enum img_format fmt, int quality,
                           const struct img_profile *icc, struct eng_error *err);

/* An image as a JSON value: base64 (a "data:...;base64," prefix allowed) decoded into *owned
 * (malloc'd; the caller frees it), which item's bytes then are. 422 naming it as what when it is
 * not a string or not base64. */
int input_json_image(const json_t *value, const char *what, struct response *resp,
                     struct input_image *item, unsigned char **owned);

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

/* The "color" parameter's text (NULL when absent: *color keeps the caller's default): keep or
 * srgb, else 422 naming both. */
int input_color(struct response *resp, const char *text, enum img_color *color);

/* Decodes every image, in parallel on the app's workers, against max_pixels and max_dimension,
 * their colours as color says (the profiles kept land in each image's info). The error names the
 * image and keeps the decoder's status (415, 422, 413). */
int input_decode_images(struct request *req, struct response *resp, struct input_image *images,
                        int count, enum img_color color);

/* Frees the decoded images and their profiles. */
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

/* How one input's targets are named, in the request and in messages. */
struct input_target_names {
    const char *targets; /* its document, in messages: "targets: image 0", "targets_a" */
    const char *masks;   /* its mask parts, also in messages: "mask_0", "mask_a" */
    const char *alias;   /* another name of its mask parts ("mask" for image 0), or NULL */
    int keypoints;       /* the document may hold keypoints */
    uint64_t mask_area;  /* pixels a mask may come to hold when more than its image's (copy-paste
                            jitters b's masks to a's size); 0: none */
};

/* One input's targets, as input_targets_read reads each: doc (its document, or NULL) and the
 * mask parts names gives, checked against image; label_maps for mask_type=labels. */
int input_targets_read_one(struct request *req, struct response *resp, const struct img *image,
                           const json_t *doc, const struct input_target_names *names,
                           int label_maps, struct input_targets *out);

/* The mask_type parameter: instances (the default) or labels (*label_maps set). */
int input_mask_type(const struct request *req, struct response *resp, int *label_maps);
void input_targets_free(struct input_targets *t, int count);

/* The filters min_area, min_visibility, min_width and min_height (request parameters; 0 when
 * absent). */
int input_targets_filter(const struct request *req, struct response *resp,
                         struct targets_filter *filter);

/* One sample's targets t (moved from all[input]'s) as JSON: {"box_format", "objects": [{"index",
 * "box", "label", "mask" (PNG, base64)}], "dropped": [{"index", "reason"}], "keypoints":
 * [{"index", "x", "y", "visible"}]}; objects a CopyPaste brought from another input (origins)
 * carry "input", and "index" and "label" are theirs there. NULL with err. */
json_t *input_targets_json(const struct input_targets *all, uint32_t input, const struct targets *t,
                           const struct policy_origins *origins, struct eng_error *err);

#endif
