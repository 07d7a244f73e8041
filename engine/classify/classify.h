/* Image classification around a model, for /v1/predict and /v1/pseudo-label: the evaluation
 * transform that turns a decoded image into the model's input (torchvision's Resize(resize) ->
 * CenterCrop(crop) -> ToTensor -> Normalize(mean, std) on a PIL image, with the image ops that are
 * parity-tested against it), and the arithmetic on the class scores: softmax, top-k, and the
 * pseudo-label vote of several models over several views of an image.
 *
 * The area sits above policy (a pseudo-label's weak views are a policy) and image (the
 * transform's ops). It runs no network: the server runs the model (nn/, through its model
 * repository) on the tensors made here and hands the scores back. Every function is
 * thread-safe and writes into memory the caller gives; what it allocates is scratch, freed
 * before it returns. */
#ifndef AUGSERVE_ENGINE_CLASSIFY_CLASSIFY_H
#define AUGSERVE_ENGINE_CLASSIFY_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/img.h"
#include "image/codec.h"

struct policy;

/* A model's evaluation transform (the server fills it from the model's config.json). */
struct classify_preprocess {
    int resize;                  /* shorter side in pixels, as Resize(int); 0 = no resize */
    int crop_height, crop_width; /* CenterCrop; 0 = none */
    int bilinear;                /* Resize interpolation: 1 bilinear, 0 nearest */
    float scale;                 /* ToTensor's 1/255, or the model's own */
    float mean[3], std[3];       /* Normalize, in the model's channel order */
    int bgr;                     /* the model takes BGR: channel 0 is blue */
    int nhwc;                    /* the tensor is [H][W][C], else [C][H][W] */
    int channels;                /* 1 (the image's luma) or 3 */
    /* How the image's colours are to be decoded, as the model was trained: the caller decodes
     * with it; the transform itself takes the decoded pixels. */
    enum img_color color;
};

/* The height and width of the tensor the transform makes from a width x height image. -1 with
 * err (ENG_INVALID) when the transform is malformed or the resize gives an empty side. */
int classify_preprocess_size(const struct classify_preprocess *pp, int width, int height,
                             int *out_height, int *out_width, struct eng_error *err);

/* Writes `views` model inputs for one image to out, back to back, each of channels x height x
 * width floats (classify_preprocess_size) in the transform's layout. View 0 is the image itself;
 * view v >= 1 applies `weak` (a policy that keeps the image's size, such as "fixmatch-weak")
 * sampled for (seed, input, sample v) to the resized and cropped image, so views are drawn at the
 * model's resolution and the same seed gives the same views. weak may be NULL when views is 1.
 *
 * The image is first converted to the model's channels as PIL's convert does (RGBA drops alpha,
 * L is replicated, RGB becomes ITU-R 601-2 luma), since classifiers are fed convert("RGB"). */
int classify_image_tensor(const struct img *in, const struct classify_preprocess *pp,
                          const struct policy *weak, uint64_t seed, uint32_t input, int views,
                          float *out, struct eng_error *err);

/* A new image of `channels` (1 or 3), as PIL's convert("L") or convert("RGB") makes it: the
 * conversion classify_image_tensor starts with, for callers that work on the pixels before it (a
 * copy when the image has them already). NULL with err when out of memory. */
struct img *classify_convert(const struct img *in, int channels, struct eng_error *err);

/* out[i] = exp(x[i]) / sum exp(x), computed in double after subtracting the maximum; out may be
 * x. */
void classify_softmax(const float *x, size_t n, float *out);

/* Class scores as probabilities: softmax for logits, a copy for probabilities (out may be
 * scores). ENG_INVALID when a score is not finite: a model that gives NaN has no answer. */
int classify_probabilities(const float *scores, size_t n, int are_probabilities, float *out,
                           struct eng_error *err);

/* The indices of the k (1..n) largest scores, largest first; equal scores by the lower index. */
void classify_topk(const float *scores, size_t n, size_t k, size_t *out);

/* One class chosen from averaged probabilities. */
struct classify_vote {
    size_t label;      /* the argmax of the average, the lower index on ties */
    double confidence; /* the average's probability of label */
    double agreement;  /* the share of the distributions averaged whose own argmax is label */
};

struct classify_pseudo_label {
    struct classify_vote vote; /* over every model and view */
    double entropy;            /* of the average over models and views, natural log */
    int accepted;              /* vote.confidence >= threshold */
};

/* The pseudo-label of one image from probs[models][views][classes] (each row a distribution):
 * out gets the vote of the mean over all models and views, each counting alike, and per_model[m]
 * (models entries) model m's vote over its own views. ENG_INVALID when a count is 0, ENG_NO_MEMORY
 * when memory runs out. */
int classify_pseudo_label(const float *probs, size_t models, size_t views, size_t classes,
                          double threshold, struct classify_pseudo_label *out,
                          struct classify_vote *per_model, struct eng_error *err);

#endif
