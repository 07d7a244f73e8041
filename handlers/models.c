/* The model repository's API: list, describe, upload and delete models. Uploads and deletions
 * change the repository while the server runs; requests already using a model keep it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "handlers.h"
#include "models.h"
#include "nn/nn.h"
#include "request.h"
#include "response.h"

static json_t *tensor_json(const struct nn_tensor_info *info)
{
    json_t *shape = json_array();
    for (int d = 0; shape && d < info->rank; d++)
        json_array_append_new(shape, json_integer(info->dims[d]));
    return json_pack("{s:s, s:s, s:o*}", "name", info->name, "datatype",
                     models_datatype_name(info->dtype), "shape", shape);
}

/* The inputs (or outputs) of a loaded model; empty for an unavailable one. */
static json_t *tensors_json(const struct nn_graph *g, size_t (*count)(const struct nn_graph *),
                            const struct nn_tensor_info *(*at)(const struct nn_graph *, size_t))
{
    json_t *list = json_array();
    for (size_t i = 0; list && g && i < count(g); i++)
        if (json_array_append_new(list, tensor_json(at(g, i))) != 0) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* The LPIPS section: null without one, else whether it loaded, why not, and what it taps. */
static json_t *perceptual_json(const struct model *m)
{
    const struct model_perceptual *p = model_perceptual(m);
    const char *why = model_perceptual_reason(m);
    if (!p && !why) return json_null();
    if (!p) return json_pack("{s:s, s:s}", "status", "unavailable", "reason", why);
    json_t *taps = json_array();
    for (size_t k = 0; taps && k < p->n_taps; k++)
        json_array_append_new(taps, json_string(p->taps[k]));
    /* "lin" is false or a file per tap, so the first tap's weights say which. */
    return json_pack("{s:s, s:o*, s:b, s:i}", "status", "ready", "taps", taps, "lin",
                     p->weights[0] != NULL, "min_side", p->min_side);
}

/* A model as GET /v1/models/{name} describes it; NULL when memory runs out. */
static json_t *model_json(const struct model *m)
{
    const struct nn_graph *g = model_graph(m);
    struct model_stats stats = model_stats(m);
    long delay = model_batch_delay_us(m);
    json_t *batching =
        delay >= 0 ? json_pack("{s:i}", "max_delay_us", (json_int_t)delay) : json_null();
    return json_pack("{s:s, s:s, s:s?, s:o*, s:o*, s:I, s:b, s:I, s:o*, s:o*, s:{s:I, s:I}}",
                     "name", model_name(m), "status", g ? "ready" : "unavailable", "reason",
                     model_reason(m), "inputs",
                     tensors_json(g, nn_graph_input_count, nn_graph_input), "outputs",
                     tensors_json(g, nn_graph_output_count, nn_graph_output), "max_batch",
                     (json_int_t)model_max_batch(m), "preprocess", model_preprocess(m) != NULL,
                     "label_count", (json_int_t)model_label_count(m), "dynamic_batching", batching,
                     "perceptual", perceptual_json(m), "stats", "requests",
                     (json_int_t)stats.requests, "executions", (json_int_t)stats.executions);
}

/* Answers with the model's description. */
static void respond_model(struct response *resp, int status, const struct model *m)
{
    json_t *doc = model_json(m);
    if (doc)
        response_json(resp, status, doc);
    else
        response_no_memory(resp, "while describing the model");
}

void handle_models_list(struct request *req, struct response *resp)
{
    size_t count;
    struct model **list = models_list(req->app->models, &count);
    if (count == (size_t)-1) {
        response_no_memory(resp, "while listing models");
        return;
    }
    json_t *models = json_array();
    for (size_t i = 0; models && i < count; i++)
        if (json_array_append_new(models, model_json(list[i])) != 0) {
            json_decref(models);
            models = NULL;
        }
    models_list_free(list, count);
    if (models)
        response_json(resp, 200, json_pack("{s:o}", "models", models));
    else
        response_no_memory(resp, "while listing models");
}

void handle_model_get(struct request *req, struct response *resp)
{
    const char *name = request_param(req, "name");
    struct model *m = models_acquire(req->app->models, name);
    if (!m) {
        response_error(resp, 404, "unknown model: %s", name);
        return;
    }
    respond_model(resp, 200, m);
    model_release(m);
}

/* A part's bytes, or NULL (size 0) when absent. */
static const void *part_bytes(const struct request *req, const char *name, size_t *size)
{
    const struct request_part *part = request_part(req, name);
    *size = part ? part->size : 0;
    return part ? part->data : NULL;
}

/* The upload's name: the "name" field, else the "name" query parameter. NULL when neither is
 * given, or the field is not text; *copy (to free) holds the field as a C string. */
static const char *upload_name(const struct request *req, char **copy)
{
    *copy = NULL;
    const struct request_part *field = request_part(req, "name");
    if (!field) return request_query(req, "name");
    if (memchr(field->data, '\0', field->size)) return NULL;
    *copy = strndup((const char *)field->data, field->size);
    return *copy;
}

void handle_model_upload(struct request *req, struct response *resp)
{
    if (!req->parts) {
        response_error(resp, 415,
                       "send multipart/form-data with the parts model, config (optional) and "
                       "labels (optional)");
        return;
    }
    struct model_upload up = {0};
    up.onnx = part_bytes(req, "model", &up.onnx_size);
    up.config = part_bytes(req, "config", &up.config_size);
    up.labels = part_bytes(req, "labels", &up.labels_size);
    char *copy;
    const char *name = upload_name(req, &copy);
    if (!up.onnx || !name) {
        response_error_code(resp, 422, "invalid_model",
                            "%s: required (the ONNX file as part \"model\"; the name as field or "
                            "query parameter \"name\")",
                            up.onnx ? "name" : "model");
        free(copy);
        return;
    }
    struct model *m = NULL;
    struct eng_error err = {0};
    int rc = models_add(req->app->models, name, &up, &m, &err);
    free(copy);
    if (rc != 0) {
        /* A rejected model has an error code of its own, so a client can tell it from a bad
         * request. */
        if (err.code == ENG_INVALID)
            response_error_code(resp, response_status_for(err.code), "invalid_model", "%s",
                                err.message);
        else
            response_engine_error(resp, &err);
        return;
    }
    respond_model(resp, 201, m);
    model_release(m);
}

void handle_model_delete(struct request *req, struct response *resp)
{
    const char *name = request_param(req, "name");
    struct eng_error err = {0};
    if (models_remove(req->app->models, name, &err) != 0)
        response_engine_error(resp, &err);
    else
        response_text(resp, 204, NULL, "", 0); /* no body, so no Content-Type */
}
