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
