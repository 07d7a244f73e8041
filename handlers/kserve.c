/* The KServe Open Inference Protocol v2, REST: JSON tensors of FP32, UINT8 and INT64, and Triton's
 * binary tensor data extension (raw little-endian tensor bytes after the JSON, both ways). The
 * protocol's errors are {"error": "<message>"}, not the server's envelope: each handler that can
 * fail first marks its response RESPONSE_ERRORS_KSERVE, and the usual response_error calls then
 * write that body. */
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/engine.h"
#include "core/parse.h"
#include "handlers.h"
#include "input.h"
#include "json_text.h"
#include "models.h"
#include "nn/nn.h"
#include "request.h"
#include "response.h"

#define HEADER_LENGTH "Inference-Header-Content-Length"

void handle_v2_info(struct request *req, struct response *resp)
{
    (void)req;
    response_json(resp, 200,
                  json_pack("{s:s, s:s, s:[s]}", "name", "augserve", "version", engine_version(),
                            "extensions", "binary_tensor_data"));
}

void handle_v2_live(struct request *req, struct response *resp)
{
    (void)req;
    response_json(resp, 200, json_object());
}

void handle_v2_ready(struct request *req, struct response *resp)
{
    resp->errors = RESPONSE_ERRORS_KSERVE;
    if (atomic_load(&req->app->shutting_down)) {
        response_error(resp, 503, "the server is shutting down");
        return;
    }
    response_json(resp, 200, json_object());
}

/* The model named by the path with a reference taken (the caller releases it), or NULL with the
 * error written: 404 when there is no such model, 400 when it failed to load (the protocol's answer
 * for a model that is not ready). The reference keeps a model deleted meanwhile valid. */
static struct model *path_model(struct request *req, struct response *resp)
{
    resp->errors = RESPONSE_ERRORS_KSERVE;
    const char *name = request_param(req, "model");
    struct model *m = name ? models_acquire(req->app->models, name) : NULL;
    if (!m) {
        response_error(resp, 404, "unknown model: %s", name ? name : "");
        return NULL;
    }
    if (!model_graph(m)) {
        response_error(resp, 400, "model %s is unavailable: %s", name, model_reason(m));
        model_release(m);
        return NULL;
    }
    return m;
}

static json_t *tensor_metadata(const struct nn_tensor_info *info)
{
    json_t *shape = json_array();
    for (int d = 0; shape && d < info->rank; d++)
        json_array_append_new(shape, json_integer(info->dims[d]));
    return json_pack("{s:s, s:s, s:o*}", "name", info->name, "datatype",
                     models_datatype_name(info->dtype), "shape", shape);
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
    model_release(m);
}

void handle_v2_model_ready(struct request *req, struct response *resp)
{
    struct model *m = path_model(req, resp);
    if (!m) return;
    response_json(resp, 200, json_object());
    model_release(m);
}

/* The input datatypes the executor takes. It runs on floats whatever the declared type, so every
 * element is converted here, after the check that it is a value of its datatype. */
struct datatype {
    const char *name;
    enum nn_dtype dtype;
    size_t size;        /* bytes per element in binary data */
    const char *values; /* what a JSON element must be, for messages */
};

static const struct datatype datatypes[] = {
    {"FP32", NN_FLOAT, 4, "a number within FP32's range"},
    {"UINT8", NN_UINT8, 1, "an integer in 0..255"},
    {"INT64", NN_INT64, 8, "an integer"},
};

static const struct datatype *find_datatype(const char *name)
{
    for (size_t i = 0; i < sizeof datatypes / sizeof *datatypes; i++)
        if (strcmp(datatypes[i].name, name) == 0) return &datatypes[i];
    return NULL;
}

/* One JSON element as a float (written only when out is not NULL). Returns -1 when v is not a
 * value of the datatype. jansson refuses integers past int64 when it parses. */
static int json_element(const struct datatype *t, json_t *v, float *out)
{
    double value;
    if (t->dtype == NN_FLOAT) {
        if (!json_is_number(v)) return -1;
        value = json_number_value(v);
        if (fabs(value) > FLT_MAX) return -1;
    } else {
        if (!json_is_integer(v)) return -1;
        json_int_t i = json_integer_value(v);
        if (t->dtype == NN_UINT8 && (i < 0 || i > 255)) return -1;
        value = (double)i;
    }
    if (out) *out = (float)value;
    return 0;
}

/* One little-endian binary element as a float. Any FP32 bit pattern is taken, NaN and infinities
 * included: the model's outputs then hold what the executor makes of them. */
static float binary_element(const struct datatype *t, const unsigned char *p)
{
    uint64_t bits = 0;
    for (size_t b = t->size; b-- > 0;)
        bits = bits << 8 | p[b];
    if (t->dtype == NN_FLOAT) {
        uint32_t u = (uint32_t)bits;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    if (t->dtype == NN_INT64) {
        int64_t i;
        memcpy(&i, &bits, sizeof i);
        return (float)i;
    }
    return (float)bits;
}

/* A shape as text, "[-1,3,4,4]", for messages; buf needs 8 * 21 + 3 bytes. */
static const char *shape_text(const int64_t *dims, int rank, char buf[192])
{
    size_t at = (size_t)snprintf(buf, 192, "[");
    for (int d = 0; d < rank; d++)
        at += (size_t)snprintf(buf + at, 192 - at, "%s%lld", d ? "," : "", (long long)dims[d]);
    snprintf(buf + at, 192 - at, "]");
    return buf;
}

/* How a model output goes back. */
enum returned { RETURN_NONE, RETURN_JSON, RETURN_BINARY };

/* The state of one infer request, freed by infer_free. */
struct infer {
    struct model *m;
    const struct nn_graph *g;
    int64_t max_elements;
    /* The body past the JSON header: the binary inputs' bytes, taken in the order of "inputs". */
    const unsigned char *binary;
    size_t binary_size;
    size_t n_inputs, n_outputs;
    float **inputs;                /* model input order; NULL until given */
    struct nn_tensor_info *shapes; /* model input order */
    float **outputs;
    struct nn_tensor_info *output_info;
    enum returned *returned; /* per model output */
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
    free(in->returned);
}

/* The element count of a shape, or -1 when it is past max (checked as it multiplies, so it cannot
 * overflow). */
static int64_t element_count(const struct nn_tensor_info *s, int64_t max)
{
    for (int d = 0; d < s->rank; d++)
        if (s->dims[d] == 0) return 0;
    int64_t count = 1;
    for (int d = 0; d < s->rank; d++) {
        if (count > max / s->dims[d]) return -1;
        count *= s->dims[d];
    }
    return count;
}

/* Reads input idx's shape into in->shapes[idx] and its element count into *count. Writes the error
 * and returns -1 when it does not fit the model or is past the limits. */
static int read_shape(struct infer *in, size_t idx, json_t *shape, int64_t *count,
                      struct response *resp)
{
    const struct nn_tensor_info *want = nn_graph_input(in->g, idx);
    struct nn_tensor_info *got = &in->shapes[idx];
    char want_text[192], got_text[192];
    if (json_array_size(shape) > NN_MAX_RANK) {
        response_error(resp, 400, "input %s: shape has %zu dimensions; at most %d are supported",
                       want->name, json_array_size(shape), NN_MAX_RANK);
        return -1;
    }
    *got = *want;
    got->rank = (int)json_array_size(shape);
    for (int d = 0; d < got->rank; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0) {
            response_error(resp, 400, "input %s: shape must hold integers >= 0", want->name);
            return -1;
        }
        got->dims[d] = json_integer_value(dim);
    }
    int fits = want->rank < 0 || want->rank == got->rank;
    for (int d = 0; fits && want->rank >= 0 && d < got->rank; d++)
        fits = want->dims[d] < 0 || want->dims[d] == got->dims[d];
    if (!fits) {
        response_error(resp, 400, "input %s: shape %s does not fit the model's %s", want->name,
                       shape_text(got->dims, got->rank, got_text),
                       shape_text(want->dims, want->rank, want_text));
        return -1;
    }
    if (model_max_batch(in->m) > 0 && got->rank > 0 && got->dims[0] > model_max_batch(in->m)) {
        response_error(resp, 400, "input %s: batch %lld is past the model's max_batch %ld",
                       want->name, (long long)got->dims[0], model_max_batch(in->m));
        return -1;
    }
    *count = element_count(got, in->max_elements);
    if (*count < 0) {
        response_error(resp, 413, "input %s: shape %s is past max_tensor_elements (%lld elements)",
                       want->name, shape_text(got->dims, got->rank, got_text),
                       (long long)in->max_elements);
        return -1;
    }
    /* The executor divides by dimensions: an empty tensor would crash it. */
    if (*count == 0) {
        response_error(resp, 400, "input %s: shape %s holds no elements", want->name,
                       shape_text(got->dims, got->rank, got_text));
        return -1;
    }
    return 0;
}

/* Reads data nested as the shape says from depth on: an array of dims[depth] entries above the
 * last dimension, an element at it. out NULL only checks. Returns 0, or -1 with err set. The
 * recursion is at most NN_MAX_RANK deep. */
static int read_nested(json_t *v, const struct nn_tensor_info *shape, int depth,
                       const struct datatype *t, float *out, size_t *at, struct eng_error *err)
{
    if (depth == shape->rank) {
        if (json_element(t, v, out ? &out[*at] : NULL) != 0) {
            eng_fail(err, ENG_INVALID, "element %zu is not %s", *at, t->values);
            return -1;
        }
        (*at)++;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) != (size_t)shape->dims[depth]) {
        eng_fail(err, ENG_INVALID,
                 "data's nesting disagrees with the shape: a level-%d entry holds %zu values, the "
                 "shape says %lld",
                 depth, json_is_array(v) ? json_array_size(v) : 1, (long long)shape->dims[depth]);
        return -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (read_nested(e, shape, depth + 1, t, out, at, err) != 0) return -1;
    }
    return 0;
}

/* Reads "data", row-major, flat or nested as the shape (it is nested when its first entry is an
 * array), into out (count floats), or only checks it when out is NULL. Returns 0, or -1 with err
 * set. */
static int read_data(json_t *data, const struct nn_tensor_info *shape, int64_t count,
                     const struct datatype *t, float *out, struct eng_error *err)
{
    size_t at = 0;
    if (shape->rank >= 2 && json_is_array(json_array_get(data, 0)))
        return read_nested(data, shape, 0, t, out, &at, err);
    if (json_array_size(data) != (size_t)count) {
        char text[192];
        eng_fail(err, ENG_INVALID, "shape %s needs %lld elements, data has %zu",
                 shape_text(shape->dims, shape->rank, text), (long long)count,
                 json_array_size(data));
        return -1;
    }
    json_t *v;
    json_array_foreach(data, at, v)
    {
        if (json_element(t, v, out ? &out[at] : NULL) != 0) {
            eng_fail(err, ENG_INVALID, "element %zu is not %s", at, t->values);
            return -1;
        }
    }
    return 0;
}

/* Takes an input's binary_data_size bytes from the body past the JSON header into out. Writes the
 * error and returns -1 when the size disagrees with the shape or with what the body holds. */
static int read_binary(struct infer *in, const char *name, json_t *size, int64_t count,
                       const struct datatype *t, float *out, struct response *resp)
{
    uint64_t need = (uint64_t)count * t->size;
    if (!json_is_integer(size) || json_integer_value(size) < 0 ||
        (uint64_t)json_integer_value(size) != need) {
        response_error(resp, 400,
                       "input %s: binary_data_size must be %llu (%lld %s elements of %zu bytes)",
                       name, (unsigned long long)need, (long long)count, t->name, t->size);
        return -1;
    }
    if (need > in->binary_size) {
        response_error(
            resp, 400,
            "input %s: binary_data_size is %llu but only %zu bytes of binary data remain "
            "after the %s JSON header",
            name, (unsigned long long)need, in->binary_size, HEADER_LENGTH);
        return -1;
    }
    for (int64_t e = 0; e < count; e++)
        out[e] = binary_element(t, in->binary + (size_t)e * t->size);
    in->binary += need;
    in->binary_size -= need;
    return 0;
}

/* Reads one request input into in; writes the error and returns -1 when it is not acceptable. */
static int read_input(struct infer *in, json_t *tensor, struct response *resp)
{
    const char *name = json_string_value(json_object_get(tensor, "name"));
    const char *datatype = json_string_value(json_object_get(tensor, "datatype"));
    json_t *shape = json_object_get(tensor, "shape"), *data = json_object_get(tensor, "data");
    json_t *binary = json_object_get(json_object_get(tensor, "parameters"), "binary_data_size");
    if (!name || !json_is_array(shape) || !datatype || (data && !json_is_array(data)) ||
        !data == !binary) {
        response_error(resp, 400,
                       "every input needs name, shape, datatype, and either data (an array) or "
                       "parameters.binary_data_size");
        return -1;
    }
    size_t idx = 0;
    while (idx < in->n_inputs && strcmp(nn_graph_input(in->g, idx)->name, name) != 0)
        idx++;
    if (idx == in->n_inputs) {
        response_error(resp, 400, "unknown input %s of model %s", name, model_name(in->m));
        return -1;
    }
    if (in->inputs[idx]) {
        response_error(resp, 400, "input %s is given twice", name);
        return -1;
    }
    const struct datatype *t = find_datatype(datatype);
    const char *want = models_datatype_name(nn_graph_input(in->g, idx)->dtype);
    if (!t) {
        response_error(resp, 400,
                       "input %s: datatype %s is not supported; FP32, UINT8 and INT64 are", name,
                       datatype);
        return -1;
    }
    if (strcmp(t->name, want) != 0) {
        response_error(resp, 400, "input %s: datatype %s does not match the model's %s", name,
                       datatype, want);
        return -1;
    }
    int64_t count;
    if (read_shape(in, idx, shape, &count, resp) != 0) return -1;
    struct eng_error err;
    /* JSON data is checked before the allocation, binary data by its size, so nothing is allocated
     * for more elements than the body holds. */
    if (data && read_data(data, &in->shapes[idx], count, t, NULL, &err) != 0) {
        response_error(resp, 400, "input %s: %s", name, err.message);
        return -1;
    }
    in->inputs[idx] = malloc((size_t)count * sizeof(float));
    if (!in->inputs[idx]) {
        response_no_memory(resp, NULL);
        return -1;
    }
    if (binary) return read_binary(in, name, binary, count, t, in->inputs[idx], resp);
    return read_data(data, &in->shapes[idx], count, t, in->inputs[idx], &err);
}

/* A boolean parameter: *out stays as it is when absent. Returns -1 when it is not a boolean. */
static int bool_parameter(json_t *tensor, const char *key, int *out)
{
    json_t *v = json_object_get(json_object_get(tensor, "parameters"), key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return -1;
    *out = json_is_true(v);
    return 0;
}

/* Decides how each output goes back: every one when the request names none, else those named;
 * as binary data when the output's "binary_data" says so, else when the request's
 * "binary_data_output" does. Writes the error and returns -1 for an unknown name. */
static int choose_outputs(struct infer *in, json_t *body, struct response *resp)
{
    json_t *wanted = json_object_get(body, "outputs");
    int binary_all = 0;
    if (bool_parameter(body, "binary_data_output", &binary_all) != 0) {
        response_error(resp, 400, "parameters.binary_data_output must be a boolean");
        return -1;
    }
    for (size_t k = 0; k < in->n_outputs; k++)
        in->returned[k] = wanted ? RETURN_NONE : binary_all ? RETURN_BINARY : RETURN_JSON;
    size_t i;
    json_t *tensor;
    json_array_foreach(wanted, i, tensor)
    {
        const char *name = json_string_value(json_object_get(tensor, "name"));
        size_t k = 0;
        while (name && k < in->n_outputs && strcmp(nn_graph_output(in->g, k)->name, name) != 0)
            k++;
        if (!name || k == in->n_outputs) {
            response_error(resp, 400, "unknown output %s of model %s", name ? name : "(no name)",
                           model_name(in->m));
            return -1;
        }
        int binary = binary_all;
        if (bool_parameter(tensor, "binary_data", &binary) != 0) {
            response_error(resp, 400, "output %s: parameters.binary_data must be a boolean", name);
            return -1;
        }
        in->returned[k] = binary ? RETURN_BINARY : RETURN_JSON;
    }
    return 0;
}

static size_t output_count(const struct nn_tensor_info *info)
{
    size_t count = 1;
    for (int d = 0; d < info->rank; d++)
        count *= (size_t)info->dims[d];
    return count;
}

/* Output k's JSON: "data" flat, with NaN and infinities as null since JSON has no such numbers, or
 * for binary data only its size (the bytes follow the JSON). NULL when memory runs out. */
static json_t *output_json(const struct infer *in, size_t k)
{
    const struct nn_tensor_info *info = &in->output_info[k];
    size_t count = output_count(info);
    json_t *shape = json_array(), *out;
    for (int d = 0; shape && d < info->rank; d++)
        json_array_append_new(shape, json_integer(info->dims[d]));
    if (in->returned[k] == RETURN_BINARY)
        return json_pack("{s:s, s:s, s:o*, s:{s:I}}", "name", info->name, "datatype", "FP32",
                         "shape", shape, "parameters", "binary_data_size",
                         (json_int_t)(count * sizeof(float)));
    json_t *data = json_array();
    out = json_pack("{s:s, s:s, s:o*, s:o*}", "name", info->name, "datatype", "FP32", "shape",
                    shape, "data", data);
    for (size_t e = 0; out && e < count; e++) {
        float v = in->outputs[k][e];
        if (json_array_append_new(data, isfinite(v) ? json_real(v) : json_null()) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* The binary outputs' bytes, little-endian, in output order, written at dst. */
static void write_binary_outputs(const struct infer *in, unsigned char *dst)
{
    for (size_t k = 0; k < in->n_outputs; k++) {
        if (in->returned[k] != RETURN_BINARY) continue;
        size_t count = output_count(&in->output_info[k]);
        for (size_t e = 0; e < count; e++) {
            uint32_t u;
            memcpy(&u, &in->outputs[k][e], sizeof u);
            for (int b = 0; b < 4; b++)
                *dst++ = (unsigned char)(u >> (8 * b));
        }
    }
}

/* Writes the response: JSON alone, or with binary outputs the JSON followed by their bytes, as
 * application/octet-stream with the JSON's length in Inference-Header-Content-Length. */
static void respond(const struct infer *in, json_t *id, struct response *resp)
{
    json_t *outputs = json_array();
    size_t binary_size = 0;
    if (!outputs) goto oom;
    for (size_t k = 0; k < in->n_outputs; k++) {
        if (in->returned[k] == RETURN_NONE) continue;
        if (json_array_append_new(outputs, output_json(in, k)) != 0) goto oom;
        if (in->returned[k] == RETURN_BINARY)
            binary_size += output_count(&in->output_info[k]) * sizeof(float);
    }
    /* O* leaves "id" out when the request gave none. */
    json_t *doc = json_pack("{s:s, s:O*, s:o*}", "model_name", model_name(in->m), "id", id,
                            "outputs", outputs);
    if (!binary_size) {
        response_json(resp, 200, doc);
        return;
    }
    char *text = doc ? json_text(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    size_t length = text ? strlen(text) : 0;
    unsigned char *body = text ? malloc(length + binary_size) : NULL;
    if (!body) {
        free(text);
        response_no_memory(resp, "while writing the response");
        return;
    }
    memcpy(body, text, length);
    free(text);
    write_binary_outputs(in, body + length);
    response_bytes(resp, 200, "application/octet-stream", body, length + binary_size);
    response_header(resp, HEADER_LENGTH, "%zu", length);
    return;
oom:
    json_decref(outputs);
    response_no_memory(resp, "while writing the response");
}

static void infer(const struct request *req, struct response *resp, json_t *body, struct infer *in)
{
    json_t *inputs = json_object_get(body, "inputs"), *wanted = json_object_get(body, "outputs");
    json_t *id = json_object_get(body, "id");
    if (!json_is_array(inputs) || (wanted && !json_is_array(wanted)) ||
        (id && !json_is_string(id))) {
        response_error(resp, 400,
                       "the body needs \"inputs\" (an array); \"outputs\" is an array and "
                       "\"id\" a string when given");
        return;
    }
    in->g = model_graph(in->m);
    in->n_inputs = nn_graph_input_count(in->g);
    in->n_outputs = nn_graph_output_count(in->g);
    in->inputs = calloc(in->n_inputs + 1, sizeof *in->inputs);
    in->shapes = calloc(in->n_inputs + 1, sizeof *in->shapes);
    in->outputs = calloc(in->n_outputs + 1, sizeof *in->outputs);
    in->output_info = calloc(in->n_outputs + 1, sizeof *in->output_info);
    in->returned = calloc(in->n_outputs + 1, sizeof *in->returned);
    if (!in->inputs || !in->shapes || !in->outputs || !in->output_info || !in->returned) {
        response_no_memory(resp, NULL);
        return;
    }
    if (choose_outputs(in, body, resp) != 0) return;
    size_t i;
    json_t *tensor;
    json_array_foreach(inputs, i, tensor)
    {
        if (read_input(in, tensor, resp) != 0) return;
    }
    for (i = 0; i < in->n_inputs; i++)
        if (!in->inputs[i]) {
            response_error(resp, 400, "missing input %s", nn_graph_input(in->g, i)->name);
            return;
        }
    if (in->binary_size) {
        response_error(resp, 400,
                       "the body holds %zu bytes of binary data past what the inputs' "
                       "binary_data_size take",
                       in->binary_size);
        return;
    }
    double work = 0;
    if (input_add_inference_work(resp, in->m, in->shapes, 1, &work) != 0 ||
        input_check_work(req, resp, work, "send smaller or fewer inputs") != 0)
        return;
    struct eng_error err = {0};
    if (model_infer(in->m, (const float *const *)in->inputs, in->shapes, in->outputs,
                    in->output_info, &err) != 0) {
        response_engine_error(resp, &err);
        return;
    }
    respond(in, id, resp);
}

/* The length of the JSON header at the start of the body: Inference-Header-Content-Length when
 * the request has binary data, else the whole body. Returns -1 with the error written when the
 * header is not a number or is past the body. */
static int header_length(const struct request *req, size_t *length, struct response *resp)
{
    const char *value = request_header(req, HEADER_LENGTH);
    *length = req->body_size;
    if (!value) return 0;
    unsigned long long n;
    enum parse_result rc = parse_whole(value, 0, ULLONG_MAX, &n);
    if (rc == PARSE_NOT_A_NUMBER) {
        response_error(resp, 400, "%s must be a number of bytes, not \"%s\"", HEADER_LENGTH, value);
        return -1;
    }
    if (rc == PARSE_RANGE || n > req->body_size) {
        response_error(resp, 400, "%s is %s but the body has %zu bytes", HEADER_LENGTH, value,
                       req->body_size);
        return -1;
    }
    *length = (size_t)n;
    return 0;
}

void handle_v2_infer(struct request *req, struct response *resp)
{
    struct infer in = {.max_elements = req->app->cfg->max_tensor_elements};
    size_t length;
    in.m = path_model(req, resp);
    if (!in.m) return;
    json_t *body = NULL;
    if (header_length(req, &length, resp) == 0) {
        in.binary = req->body ? req->body + length : NULL; /* no arithmetic on NULL */
        in.binary_size = req->body_size - length;
        json_error_t error;
        body = json_loadb((const char *)req->body, length, JSON_REJECT_DUPLICATES, &error);
        if (!json_is_object(body))
            response_error(resp, 400, "the body is not a JSON object: %s", body ? "" : error.text);
        else
            infer(req, resp, body, &in);
    }
    infer_free(&in);
    json_decref(body);
    model_release(in.m);
}
