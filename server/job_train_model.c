/* The model a train job registers (job_train.h): the graph with the trained values, and the files
 * the repository serves it from, added through models_add, which writes them into a dot-folder
 * and renames it into place once the model loads: a half-written model is never served, and
 * /v1/predict answers with it at once, without a rescan. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "data/dataset.h"
#include "image/codec.h"
#include "job_kind.h"
#include "job_train.h"
#include "models.h"

int job_train_model_onnx(const struct nn_graph *g, struct train_plan *plan,
                         const struct train_ema *ema, void **onnx, size_t *size,
                         struct eng_error *err)
{
    size_t np = train_plan_param_count(plan), n = np + train_plan_buffer_count(plan);
    const char **names = malloc(n * sizeof *names);
    const float **values = malloc(n * sizeof *values);
    int rc = names && values ? 0 : eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct train_param *t =
            i < np ? train_plan_param(plan, i) : train_plan_buffer(plan, i - np);
        names[i] = t->name;
        values[i] = ema ? train_ema_value(ema, i) : t->value;
    }
    /* Without the training engine's own ops (stochastic depth), which ONNX has not. */
    struct nn_graph *plain = NULL;
    if (rc == 0 && train_model_has_training_ops(g) && !(plain = train_model_for_inference(g, err)))
        rc = -1;
    struct nn_graph *out =
        rc == 0 ? nn_graph_with_initializers(plain ? plain : g, n, names, values, err) : NULL;
    if (rc == 0) rc = out ? nn_graph_write(out, onnx, size, err) : -1;
    nn_graph_free(out);
    nn_graph_free(plain);
    free(names);
    free(values);
    return rc;
}

int job_train_base_sha256(const struct job_train_params *p, char hex[65], struct eng_error *err)
{
    void *onnx = NULL;
    size_t size;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (nn_graph_write(model_graph(p->data.model), &onnx, &size, err)) return -1;
    int ok = EVP_Digest(onnx, size, digest, &len, EVP_sha256(), NULL) == 1 && len == 32;
    free(onnx);
    if (!ok) return eng_fail(err, ENG_INTERNAL, "SHA-256 failed");
    for (unsigned i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

/* A zoo model's config.json: the training transform as the evaluation one (the images are
 * already of the model's size after resize and crop), every member the repository reads. */
static json_t *zoo_config(const struct classify_preprocess *pp)
{
    json_t *doc = json_pack(
        "{s:{s:[i, i], s:s, s:f, s:[f, f, f], s:[f, f, f], s:s, s:s}}", "preprocess", "crop",
        pp->crop_height, pp->crop_width, "interpolation", pp->bilinear ? "bilinear" : "nearest",
        "scale", (double)pp->scale, "mean", (double)pp->mean[0], (double)pp->mean[1],
        (double)pp->mean[2], "std", (double)pp->std[0], (double)pp->std[1], (double)pp->std[2],
        "channel_order", pp->bgr ? "BGR" : "RGB", "color", img_color_name(pp->color));
    if (doc && pp->resize > 0 &&
        json_object_set_new(json_object_get(doc, "preprocess"), "resize",
                            json_integer(pp->resize)) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* A fine-tuned model's config.json: its base model's, every setting kept as written (input,
 * output, layout, preprocess, max_batch, dynamic_batching...) but "perceptual", whose lin weights
 * were fitted to the base's features (nor are its files copied). output_kind stays "logits" or
 * absent: a base that gives probabilities was refused at submission. */
static json_t *finetuned_config(const struct model *base)
{
    const json_t *own = model_config(base);
    json_t *doc = own ? json_deep_copy(own) : json_object();
    if (doc) json_object_del(doc, "perceptual");
    return doc;
}

/* config.json, with labels.txt as the labels file either way. */
static char *config_text(const struct job_train_params *p)
{
    json_t *doc = p->data.model ? finetuned_config(p->data.model) : zoo_config(&p->preprocess);
    int ok = doc && json_object_set_new(doc, "labels", json_string("labels.txt")) == 0;
    char *text = ok ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    return text;
}

/* The model's class names, one a line: the dataset's in its order, or a fine-tuned model's own
 * labels when it keeps its head (the dataset's classes were matched to them). */
static char *labels_text(const struct job_train_params *p, size_t *size)
{
    const struct model *own = p->data.model;
    if (p->new_head || (own && !model_label_count(own))) own = NULL;
    size_t n = own ? model_label_count(own) : dataset_class_count(p->data.dataset);
    char *text = NULL;
    FILE *f = open_memstream(&text, size);
    if (!f) return NULL;
    for (size_t c = 0; c < n; c++)
        fprintf(f, "%s\n", own ? model_label(own, c) : dataset_class_name(p->data.dataset, c));
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int job_train_model_registered_by(const struct job_ctx *job, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/training.json", job_ctx_app(job)->cfg->models_dir, name);
    json_t *card = json_load_file(path, 0, NULL);
    const char *id = json_string_value(json_object_get(card, "job"));
    int same = id && strcmp(id, job_ctx_id(job)) == 0;
    json_decref(card);
    return same;
}

int job_train_model_register(struct job_ctx *ctx, const struct job_train_params *p,
                             const void *onnx, size_t onnx_size, const json_t *card,
                             struct eng_error *err)
{
    size_t labels_size = 0;
    char *config = config_text(p), *labels = labels_text(p, &labels_size);
    char *training = json_dumps(card, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc = config && labels && training ? 0 : eng_no_memory(err);
    struct model_upload up = {.onnx = onnx,
                              .onnx_size = onnx_size,
                              .config = config,
                              .config_size = config ? strlen(config) : 0,
                              .labels = labels,
                              .labels_size = labels_size,
                              .training = training,
                              .training_size = training ? strlen(training) : 0};
    struct model *added = NULL;
    if (rc == 0) rc = models_add(job_ctx_app(ctx)->models, p->output, &up, &added, err);
    if (rc != 0 && err->code == ENG_CONFLICT && job_train_model_registered_by(ctx, p->output)) {
        job_ctx_log(ctx, "model %s was registered by this job already", p->output);
        rc = 0;
    }
    if (added) model_release(added);
    free(config);
    free(labels);
    free(training);
    return rc;
}
