/* The model repository: every <models_dir>/<name>/model.onnx, read once at start-up. A model that
 * does not load stays listed as unavailable with its reason, so one bad file never stops the
 * server. Models are immutable once read, so any thread may use them. */
#ifndef AUGSERVE_MODELS_H
#define AUGSERVE_MODELS_H

#include <stddef.h>

#include "error.h"
#include "nn.h"

struct models;
struct model;

/* Scans dir; a missing dir gives an empty repository. Returns NULL only when memory runs out (err
 * filled). */
struct models *models_open(const char *dir, char *err, size_t err_size);
void models_close(struct models *ms);

/* NULL when no model has that name. */
struct model *models_find(const struct models *ms, const char *name);
/* The model of that name with a reference taken, or NULL; every acquire is paired with one
 * model_release. A model deleted meanwhile (DELETE /v1/models/{name}) stays valid until its last
 * reference is released. */
struct model *models_acquire(struct models *ms, const char *name);
void model_release(struct model *m);

/* How /v1/predict and /v1/pseudo-label turn an image into the model's image input, from
 * config.json's "preprocess": torchvision's evaluation transform, Resize(resize) ->
 * CenterCrop(crop) -> ToTensor (pixel * scale) -> Normalize(mean, std). */
struct model_preprocess {
    int resize;                  /* shorter side in pixels; 0 = no resize */
    int crop_height, crop_width; /* centre crop; 0 = none */
    int bilinear;                /* resize interpolation: 1 bilinear (default), 0 nearest */
    float scale;                 /* default 1/255 */
    float mean[3], std[3];       /* defaults 0 and 1 */
    int bgr;                     /* "channel_order": "BGR" */
    int nhwc;                    /* "layout": "NHWC"; default NCHW */
    int channels;                /* 1 or 3, from the image input's shape */
};
/* NULL when config.json has no "preprocess": the model then serves /v2 only. */
const struct model_preprocess *model_preprocess(const struct model *m);
/* The input images feed and the output read as class scores (config "input" and "output"; by
 * default the first). */
size_t model_image_input(const struct model *m);
size_t model_scores_output(const struct model *m);
/* config "output_kind": "probabilities" (1) or "logits" (0, the default: softmax is applied). */
int model_scores_are_probabilities(const struct model *m);
/* Class labels from config "labels" (a file next to the model, one label per line). */
size_t model_label_count(const struct model *m);
/* NULL for i past the labels. */
const char *model_label(const struct model *m, size_t i);

const char *model_name(const struct model *m);
/* The graph of a loaded model; NULL when it is unavailable. */
const struct nn_graph *model_graph(const struct model *m);
/* Why the model is unavailable; NULL when it loaded. */
const char *model_reason(const struct model *m);
/* config.json's max_batch: the largest first dimension an input may have; 0 = no limit. */
long model_max_batch(const struct model *m);

/* Runs a loaded model. inputs[i] and shapes[i] are model input i (nn_graph_input order), shapes
 * full and fixed. On success outputs[k] (malloc'd, the caller frees them) and output_info[k]
 * hold model output k; both arrays need nn_graph_output_count entries. Errors are the engine's. */
int model_infer(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                float **outputs, struct nn_tensor_info *output_info, struct eng_error *err);

#endif
