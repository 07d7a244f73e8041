/* The KServe Open Inference Protocol v2, REST with JSON tensors, FP32 only. The protocol's errors
 * are {"error": "<message>"}, not the server's envelope, so every error here is written as that
 * body directly (v2_error) instead of through response_error. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "engine.h"
#include "handlers.h"
#include "models.h"
#include "nn.h"
#include "request.h"
#include "response.h"

static void v2_error(struct response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void v2_error(struct response *resp, int status, const char *fmt, ...)
{
    char message[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    response_json(resp, status, json_pack("{s:s}", "error", message));
}

void handle_v2_info(struct request *req, struct response *resp)
{
    (void)req;
    response_json(resp, 200,
                  json_pack("{s:s, s:s, s:[]}", "name", "augserve", "version", engine_version(),
                            "extensions"));
}

void handle_v2_live(struct request *req, struct response *resp)
{
    (void)req;
    response_json(resp, 200, json_object());
}

void handle_v2_ready(struct request *req, struct response *resp)
{
    if (atomic_load(&req->app->shutting_down)) {
        v2_error(resp, 503, "the server is shutting down");
        return;
    }
    response_json(resp, 200, json_object());
}

/* The model named by the path, or NULL with the error written: 404 when there is no such model,
 * 400 when it failed to load (the protocol's answer for a model that is not ready). */
static struct model *path_model(struct request *req, struct response *resp)
{
    const char *name = request_param(req, "model");
    struct model *m = name ? models_find(req->app->models, name) : NULL;
    if (!m) {
        v2_error(resp, 404, "unknown model: %s", name ? name : "");
        return NULL;
    }
    if (!model_graph(m)) {
        v2_error(resp, 400, "model %s is unavailable: %s", name, model_reason(m));
        return NULL;
    }
    return m;
}

/* The protocol's tensor datatype names for the element types the IR holds. */
static const char *datatype_name(enum nn_dtype dtype)
{
    switch (dtype) {
    case NN_UINT8:
        return "UINT8";
    case NN_INT8:
        return "INT8";
    case NN_INT32:
        return "INT32";
    case NN_INT64:
        return "INT64";
    case NN_BOOL:
        return "BOOL";
    case NN_DOUBLE:
        return "FP64";
    default:
        return "FP32"; /* NN_FLOAT, and undeclared types, which the executor runs as FP32 */
    }
}

static json_t *tensor_metadata(const struct nn_tensor_info *info)
{
    json_t *shape = json_array();
    for (int d = 0; shape && d < info->rank; d++)
        json_array_append_new(shape, json_integer(info->dims[d]));
    return json_pack("{s:s, s:s, s:o*}", "name", info->name, "datatype", datatype_name(info->dtype),
                     "shape", shape);
}

void handle_v2_model(struct request *req, struct response *resp)
{
    struct model *m = path_model(req, resp);
    if (!m) return;
    const struct nn_graph *g = model_graph(m);
    json_t *inputs = json_array(), *outputs = json_array();
    for (size_t i = 0; i < nn_graph_input_count(g); i++)
        json_array_append_new(inputs, tensor_metadata(nn_graph_input(g, i)));
    for (size_t i = 0; i < nn_graph_output_count(g); i++)
        json_array_append_new(outputs, tensor_metadata(nn_graph_output(g, i)));
    response_json(resp, 200,
                  json_pack("{s:s, s:[], s:s, s:o*, s:o*}", "name", model_name(m), "versions",
                            "platform", "onnx", "inputs", inputs, "outputs", outputs));
}

void handle_v2_model_ready(struct request *req, struct response *resp)
{
    struct model *m = path_model(req, resp);
    if (!m) return;
    response_json(resp, 200, json_object());
}

/* The state of one infer request, freed by infer_free. */
struct infer {
    size_t n_inputs, n_outputs;
    float **inputs;                /* model input order; NULL until given */
    struct nn_tensor_info *shapes; /* model input order */
    float **outputs;
    struct nn_tensor_info *output_info;
};

static void infer_free(struct infer *in)
{
    for (size_t i = 0; in->inputs && i < in->n_inputs; i++)
        free(in->inputs[i]);
    for (size_t k = 0; in->outputs && k < in->n_outputs; k++)
        free(in->outputs[k]);
    free(in->inputs);
    free(in->shapes);
    free(in->outputs);
    free(in->output_info);
}

/* Counts the numbers of a flat or nested array, writing them to out when it is not NULL. Returns
 * the count, or -1 when something other than a number or an array is found. */
static long long flatten(json_t *data, float *out, long long at)
{
    size_t i;
    json_t *v;
    json_array_foreach(data, i, v)
    {
        if (json_is_array(v)) {
            at = flatten(v, out, at);
            if (at < 0) return -1;
        } else if (json_is_number(v)) {
            if (out) out[at] = (float)json_number_value(v);
            at++;
        } else {
            return -1;
        }
    }
    return at;
}

/* Reads one request input into in; writes the error and returns -1 when it is not acceptable. */
static int read_input(const struct nn_graph *g, struct model *m, json_t *tensor, struct infer *in,
                      struct response *resp)
{
    const char *name = json_string_value(json_object_get(tensor, "name"));
    json_t *shape = json_object_get(tensor, "shape"), *data = json_object_get(tensor, "data");
    const char *datatype = json_string_value(json_object_get(tensor, "datatype"));
    if (!name || !json_is_array(shape) || !datatype || !json_is_array(data)) {
        v2_error(resp, 400, "every input needs name, shape, datatype and data (an array)");
        return -1;
    }
    size_t idx = 0;
    while (idx < in->n_inputs && strcmp(nn_graph_input(g, idx)->name, name) != 0)
        idx++;
    if (idx == in->n_inputs) {
        v2_error(resp, 400, "unknown input %s of model %s", name, model_name(m));
        return -1;
    }
    if (in->inputs[idx]) {
        v2_error(resp, 400, "input %s is given twice", name);
        return -1;
    }
    if (strcmp(datatype, "FP32") != 0) {
        v2_error(resp, 400, "input %s: datatype %s is not supported; send FP32", name, datatype);
        return -1;
    }
    const struct nn_tensor_info *want = nn_graph_input(g, idx);
    struct nn_tensor_info *got = &in->shapes[idx];
    *got = *want;
    got->rank = (int)json_array_size(shape);
    if (got->rank > NN_MAX_RANK || (want->rank >= 0 && got->rank != want->rank)) {
        v2_error(resp, 400, "input %s: shape has %d dimensions, the model's %d", name, got->rank,
                 want->rank);
        return -1;
    }
    /* The element count is checked against the data before any allocation, so it is bounded by
     * the body size and cannot overflow. */
    long long count = 1, given = flatten(data, NULL, 0);
    int empty = 0;
    for (int d = 0; d < got->rank; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0 ||
            json_integer_value(dim) > INT32_MAX) {
            v2_error(resp, 400, "input %s: shape must hold integers >= 0", name);
            return -1;
        }
        got->dims[d] = json_integer_value(dim);
        if (want->dims[d] >= 0 && got->dims[d] != want->dims[d]) {
            v2_error(resp, 400, "input %s: dimension %d is %lld, the model needs %lld", name, d,
                     (long long)got->dims[d], (long long)want->dims[d]);
            return -1;
        }
        /* Past the data's length the product only has to stay past it. */
        if (count <= given) count *= got->dims[d];
        empty |= got->dims[d] == 0;
    }
    if (empty) count = 0;
    if (model_max_batch(m) > 0 && got->rank > 0 && got->dims[0] > model_max_batch(m)) {
        v2_error(resp, 400, "input %s: batch %lld is past the model's max_batch %ld", name,
                 (long long)got->dims[0], model_max_batch(m));
        return -1;
    }
    if (given < 0) {
        v2_error(resp, 400, "input %s: data must hold only numbers", name);
        return -1;
    }
    if (count != given) {
        v2_error(resp, 400, "input %s: shape needs %lld elements, data has %lld", name, count,
                 given);
        return -1;
    }
    in->inputs[idx] = malloc((size_t)(given ? given : 1) * sizeof(float));
    if (!in->inputs[idx]) {
        v2_error(resp, 503, "out of memory");
        return -1;
    }
    flatten(data, in->inputs[idx], 0);
    return 0;
}

/* Whether output name is among the requested ones (all when the request names none). */
static int requested(json_t *wanted, const char *name)
{
    if (!json_is_array(wanted)) return 1;
    size_t i;
    json_t *w;
    json_array_foreach(wanted, i, w)
    {
        const char *n = json_string_value(json_object_get(w, "name"));
        if (n && strcmp(n, name) == 0) return 1;
    }
    return 0;
}

/* The response for the outputs, or NULL with the error written. */
static json_t *outputs_json(const struct infer *in, json_t *wanted, struct response *resp)
{
    json_t *list = json_array();
    if (!list) goto oom;
    for (size_t k = 0; k < in->n_outputs; k++) {
        const struct nn_tensor_info *info = &in->output_info[k];
        if (!requested(wanted, info->name)) continue;
        json_t *shape = json_array(), *data = json_array();
        size_t count = 1;
        for (int d = 0; shape && d < info->rank; d++) {
            json_array_append_new(shape, json_integer(info->dims[d]));
            count *= (size_t)info->dims[d];
        }
        json_t *out = json_pack("{s:s, s:s, s:o*, s:o*}", "name", info->name, "datatype", "FP32",
                                "shape", shape, "data", data);
        if (!out || json_array_append_new(list, out) != 0) goto oom;
        for (size_t e = 0; e < count; e++) {
            /* JSON has no NaN or infinity, and silently changing them would be worse. */
            if (!isfinite(in->outputs[k][e])) {
                json_decref(list);
                v2_error(resp, 500, "output %s holds a value that is not finite", info->name);
                return NULL;
            }
            if (json_array_append_new(data, json_real(in->outputs[k][e])) != 0) goto oom;
        }
    }
    return list;
oom:
    json_decref(list);
    v2_error(resp, 503, "out of memory while writing the response");
    return NULL;
}

static void infer(struct response *resp, struct model *m, json_t *body, struct infer *in)
{
    const struct nn_graph *g = model_graph(m);
    json_t *inputs = json_object_get(body, "inputs"), *wanted = json_object_get(body, "outputs");
    json_t *id = json_object_get(body, "id");
    if (!json_is_array(inputs) || (wanted && !json_is_array(wanted)) ||
        (id && !json_is_string(id))) {
        v2_error(resp, 400,
                 "the body needs \"inputs\" (an array); \"outputs\" is an array and "
                 "\"id\" a string when given");
        return;
    }
    in->n_inputs = nn_graph_input_count(g);
    in->n_outputs = nn_graph_output_count(g);
    in->inputs = calloc(in->n_inputs + 1, sizeof *in->inputs);
    in->shapes = calloc(in->n_inputs + 1, sizeof *in->shapes);
    in->outputs = calloc(in->n_outputs + 1, sizeof *in->outputs);
    in->output_info = calloc(in->n_outputs + 1, sizeof *in->output_info);
    if (!in->inputs || !in->shapes || !in->outputs || !in->output_info) {
        v2_error(resp, 503, "out of memory");
        return;
    }
    size_t i;
    json_t *tensor;
    json_array_foreach(inputs, i, tensor)
    {
        if (read_input(g, m, tensor, in, resp) != 0) return;
    }
    for (i = 0; i < in->n_inputs; i++)
        if (!in->inputs[i]) {
            v2_error(resp, 400, "missing input %s", nn_graph_input(g, i)->name);
            return;
        }
    json_array_foreach(wanted, i, tensor)
    {
        const char *name = json_string_value(json_object_get(tensor, "name"));
        size_t k = 0;
        while (name && k < in->n_outputs && strcmp(nn_graph_output(g, k)->name, name) != 0)
            k++;
        if (!name || k == in->n_outputs) {
            v2_error(resp, 400, "unknown output %s of model %s", name ? name : "(no name)",
                     model_name(m));
            return;
        }
    }
    struct eng_error err = {0};
    if (model_infer(m, (const float *const *)in->inputs, in->shapes, in->outputs, in->output_info,
                    &err) != 0) {
        int client = err.code == ENG_INVALID || err.code == ENG_UNSUPPORTED;
        v2_error(resp, client ? 400 : err.code == ENG_NO_MEMORY ? 503 : 500, "%s", err.message);
        return;
    }
    json_t *outputs = outputs_json(in, wanted, resp);
    if (!outputs) return;
    /* O* leaves "id" out when the request gave none. */
    response_json(
        resp, 200,
        json_pack("{s:s, s:O*, s:o}", "model_name", model_name(m), "id", id, "outputs", outputs));
}

void handle_v2_infer(struct request *req, struct response *resp)
{
    struct model *m = path_model(req, resp);
    if (!m) return;
    json_error_t error;
    json_t *body =
        json_loadb((const char *)req->body, req->body_size, JSON_REJECT_DUPLICATES, &error);
    if (!json_is_object(body)) {
        v2_error(resp, 400, "the body is not a JSON object: %s", body ? "" : error.text);
        json_decref(body);
        return;
    }
    struct infer in = {0};
    infer(resp, m, body, &in);
    infer_free(&in);
    json_decref(body);
}
