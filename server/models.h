/* The model repository.
 *
 * A repository owns the folders of models_dir and the models served from them: every
 * <models_dir>/<name>/model.onnx, with its config.json and the files config.json names. They are
 * read at start-up, added (POST /v1/models) and removed (DELETE /v1/models/{name}) while the server
 * runs, and brought in line with the folders again on SIGHUP (models_rescan). Its invariants:
 *
 *   - One listed model per name, each from the folder of that name. An upload is written into a
 *     dot-folder renamed into place once it loads, and a removal moves the folder aside before
 *     deleting it, so a crash leaves at most a dot-folder, which scans skip and delete once it is
 *     a day old.
 *   - A model that does not load stays listed as unavailable with its reason, so one bad file
 *     never stops the server.
 *   - What a model was loaded with never changes, so any thread may use it: files changed on disk
 *     load as a new model that replaces the old one in the list. The list is guarded by a lock,
 *     and every model is reference-counted (the list holds one, each models_acquire another), so
 *     a model replaced or removed lives until its last user releases it.
 *   - A model caches the plan compiled for each input shape it has run (up to 16, then a plan per
 *     call), freed with the model. Runs of one plan wait for each other; runs of different shapes
 *     or models go in parallel.
 *   - With config.json's dynamic_batching, concurrent model_infer calls on one model whose shapes
 *     agree but for the batch are gathered for up to max_delay_us into one run; each caller gets
 *     its own rows of the outputs.
 */
#ifndef AUGSERVE_MODELS_H
#define AUGSERVE_MODELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "classify/classify.h"
#include "core/error.h"
#include "nn/nn.h"

struct models;
struct model;

/* How a repository loads and runs its models; all zero: no size limit, OpenMP's threads, Winograd
 * where it applies. */
struct models_settings {
    long long max_model_bytes; /* a larger model.onnx is unavailable, and its upload refused */
    int threads;               /* each run's threads; 0: OpenMP's default, one per core */
    bool direct_convolution;   /* nn_plan_options' */
    size_t max_plan_bytes;     /* nn_plan_options' max_bytes: a plan's activations, 0 no cap */
    /* Called with the model's name once models_add or models_remove has changed models_dir
     * (NULL: nothing): other processes serving the same folder rescan it (server/wakeups.c). */
    void (*changed)(void *arg, const char *name);
    void *changed_arg;
};

/* Scans dir; a missing dir gives an empty repository. Returns NULL only when memory runs out
 * (ENG_NO_MEMORY). settings may be NULL (all zero). */
struct models *models_open(const char *dir, const struct models_settings *settings,
                           struct eng_error *err);
/* Frees the repository and drops its references; models still acquired are freed on release. */
void models_close(struct models *ms);

/* Whether name may name a model: [A-Za-z0-9_.-], 1 to 64 characters, not starting with '.'. */
int models_valid_name(const char *name);

/* Every model, sorted by name, each with a reference taken. Returns NULL with *count 0 for an
 * empty repository or when memory runs out (*count is then (size_t)-1). Free the list with
 * models_list_free, which releases the references. */
struct model **models_list(struct models *ms, size_t *count);
void models_list_free(struct model **list, size_t count);

/* The files of an upload (POST /v1/models). config and labels may be absent (NULL, 0). The labels
 * are written under the file name config.json's "labels" gives. training, the card of a model a
 * train job made, is written as training.json (NULL: none). */
struct model_upload {
    const void *onnx;
    size_t onnx_size;
    const void *config;
    size_t config_size;
    const void *labels;
    size_t labels_size;
    const void *training;
    size_t training_size;
};
/* Validates and loads the upload as model name, writes it under the repository's folder through a
 * temporary folder renamed into place (so a crash never leaves half a model), and lists it.
 * Returns 0 with *added holding the model and a reference taken, or -1 with nothing left on disk
 * and err saying why: ENG_CONFLICT (a model or folder of that name exists), ENG_TOO_LARGE
 * (model.onnx past max_model_bytes), ENG_INVALID (a bad name, ONNX file, config or labels, or
 * ops the executor lacks: the model is rejected), ENG_NO_MEMORY, ENG_INTERNAL (I/O). */
int models_add(struct models *ms, const char *name, const struct model_upload *upload,
               struct model **added, struct eng_error *err);
/* Unlists the model and removes its folder. Requests holding a reference finish with it. Returns
 * 0, or -1 with err set: ENG_NOT_FOUND when there is no such model (a name models_valid_name
 * refuses never reaches the disk), ENG_INTERNAL when the folder cannot be moved. */
int models_remove(struct models *ms, const char *name, struct eng_error *err);

/* What models_rescan changed. */
struct models_rescan {
    int added, reloaded, dropped;
};
/* Brings the served models in line with the folders in models_dir (on SIGHUP): a new folder with
 * a model.onnx is loaded and served, a served model whose files changed (names, sizes, times) is
 * loaded again and replaces it, and one whose folder is gone stops being served. Requests holding
 * a replaced or dropped model finish with it. Dot-folders a dead process left a day ago go. */
struct models_rescan models_rescan(struct models *ms);

/* The model of that name with a reference taken, or NULL; every acquire is paired with one
 * model_release. A model deleted meanwhile (DELETE /v1/models/{name}) stays valid until its last
 * reference is released. */
struct model *models_acquire(struct models *ms, const char *name);
void model_release(struct model *m);

/* How /v1/predict and /v1/pseudo-label turn an image into the model's image input, from
 * config.json's "preprocess" (resize, crop, interpolation (default bilinear), scale (default
 * 1/255), mean and std (defaults 0 and 1), channel_order, color (default keep)) and "layout"
 * (default NCHW); channels is the image input's C. NULL when config.json has no "preprocess": the
 * model then serves /v2 only. */
const struct classify_preprocess *model_preprocess(const struct model *m);
/* The output read as class scores (config "output"; by default the first). */
size_t model_scores_output(const struct model *m);
/* config "output_kind": "probabilities" (1) or "logits" (0, the default: softmax is applied). */
int model_scores_are_probabilities(const struct model *m);
/* Class labels from config "labels" (a file next to the model, one label per line). */
size_t model_label_count(const struct model *m);
/* NULL for i past the labels. */
const char *model_label(const struct model *m, size_t i);
/* config.json as read (every member, as written), or NULL when the model has none: a model
 * fine-tuned from this one starts its own from it. */
const json_t *model_config(const struct model *m);

/* config.json's "perceptual": the model as an LPIPS backbone. Its one input takes [N, 3, H, W]
 * images scaled as metric_lpips_inputs does with shift and scale; the taps are the values LPIPS
 * compares. */
struct model_perceptual {
    size_t n_taps;
    const char *const *taps;     /* ONNX value names, checked against the graph at load */
    const int *channels;         /* per tap */
    const float *const *weights; /* per tap, channels[k] weights >= 0; each NULL for lin false */
    float shift[3], scale[3];    /* default LPIPS v0.1's */
    int min_side;                /* the smallest height and width every tap is non-empty for */
};
/* NULL when the model has no perceptual section or it did not load. */
const struct model_perceptual *model_perceptual(const struct model *m);
/* Why the section did not load (unknown taps, a negative weight...); NULL when it did or there is
 * none. */
const char *model_perceptual_reason(const struct model *m);
/* Gets the taps of model_features_visit: taps[k] and info[k] for each of the n_taps, in the plan's
 * memory (valid during the call only). 0, or -1 with err set, which model_features_visit
 * returns. */
typedef int (*model_taps_fn)(void *ctx, const float *const *taps, const struct nn_tensor_info *info,
                             struct eng_error *err);
/* Runs the backbone on input (shape [N, 3, H, W]) and hands its taps to fn while they are in the
 * plan's memory, uncopied (megabytes a batch); runs of the same plan wait meanwhile. Plans are
 * cached with the model's others; no dynamic batching (callers batch their own images). */
int model_features_visit(struct model *m, const float *input, const struct nn_tensor_info *shape,
                         model_taps_fn fn, void *ctx, struct eng_error *err);

const char *model_name(const struct model *m);
/* The graph of a loaded model; NULL when it is unavailable. */
const struct nn_graph *model_graph(const struct model *m);
/* Why the model is unavailable; NULL when it loaded. */
const char *model_reason(const struct model *m);
/* config.json's max_batch: the largest first dimension an input may have; 0 = no limit. */
long model_max_batch(const struct model *m);
/* The threads each run of the model uses (models_settings'); 0: OpenMP's default. */
int model_threads(const struct model *m);

/* config.json's dynamic_batching.max_delay_us, or -1 when calls are not batched (no
 * dynamic_batching, or outputs that do not have the batch as first dimension). */
long model_batch_delay_us(const struct model *m);
/* Counts since the model was loaded: model_infer calls and executions of the network. With dynamic
 * batching, executions fall below calls. */
struct model_stats {
    unsigned long long requests, executions;
};
struct model_stats model_stats(const struct model *m);

/* The Open Inference Protocol's name of an element type ("FP32", "INT64", ...); types a model does
 * not declare run as FP32. */
const char *models_datatype_name(enum nn_dtype dtype);

/* The FLOPs one run on inputs of these shapes costs (nn_plan_flops), from the plan compiled for
 * them, which is cached for the run that follows. 0, or -1 with err (the compile's). */
int model_flops(struct model *m, const struct nn_tensor_info *shapes, double *flops,
                struct eng_error *err);

/* Runs a loaded model. inputs[i] and shapes[i] are model input i (nn_graph_input order), shapes
 * full and fixed. With config.json's dynamic_batching, concurrent calls whose shapes agree but for
 * the first (batch) dimension run as one batch of at most max_batch, gathered for at most
 * max_delay_us after the first; each caller gets its own rows of every output. On success
 * outputs[k] (malloc'd, the caller frees them) and output_info[k] hold model output k; both arrays
 * need nn_graph_output_count entries. Errors are the engine's. */
int model_infer(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                float **outputs, struct nn_tensor_info *output_info, struct eng_error *err);

/* ---- A model as an image classifier (server/model_classify.c) ------------------------------ */

/* The image input's shape for n inputs of height x width under preprocessing pp. */
struct nn_tensor_info model_image_shape(const struct classify_preprocess *pp, size_t n, int height,
                                        int width);
/* The class probabilities of n inputs at data, back to back, each made by the model's
 * preprocessing (model_preprocess, which must not be NULL) at height x width: run in batches of
 * at most max_batch, the scores output read as rows of classes and turned into probabilities
 * (softmax for logits). *probs gets n rows of *classes (malloc'd). Errors: the engine's, and
 * ENG_INVALID for an output that holds no rows of class scores or a score that is not finite. */
int model_classify(struct model *m, const float *data, size_t n, int height, int width,
                   float **probs, size_t *classes, struct eng_error *err);

#endif
