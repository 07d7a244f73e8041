/* POST /v1/predict and POST /v1/pseudo-label: images through a model's evaluation transform
 * (config.json's "preprocess") and the model, then the class probabilities: the top k per image,
 * or a pseudo-label voted by one or more models over weak views of each image. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "classify/classify.h"
#include "core/parse.h"
#include "handlers.h"
#include "input.h"
#include "models.h"
#include "nn/nn.h"
#include "policy/policy.h"
#include "request.h"
#include "response.h"

/* Bounds on a pseudo-label request: every model runs on every view of every image. */
#define MAX_MODELS 8
#define MAX_VIEWS  32

#define DEFAULT_TOP_K     5
#define DEFAULT_VIEWS     4
#define DEFAULT_THRESHOLD 0.95
#define WEAK_POLICY       "fixmatch-weak"

struct classifier {
    struct model *m; /* a reference, released by close_classifier */
    const char *name;
    const struct classify_preprocess *pp; /* the model's, valid while m is held */
};

/* Takes a reference on the named model when it can classify images; else writes why not: 404
 * for no such model, 422 for one that did not load, has no preprocessing or needs more inputs
 * than an image. */
static int open_classifier(struct request *req, struct response *resp, const char *name,
                           struct classifier *c)
{
    c->name = name;
    c->m = models_acquire(req->app->models, name);
    if (!c->m) {
        response_error(resp, 404, "model %s: no such model", name);
        return -1;
    }
    const struct classify_preprocess *pp = model_preprocess(c->m);
    if (model_reason(c->m))
        response_error(resp, 422, "model %s is unavailable: %s", name, model_reason(c->m));
    else if (!pp)
        response_error(resp, 422,
                       "model %s has no \"preprocess\" in its config.json, so it cannot take "
                       "images (it serves /v2 only)",
                       name);
    else if (nn_graph_input_count(model_graph(c->m)) != 1)
        response_error(resp, 422,
                       "model %s has %zu inputs; only models whose one input is the "
                       "image can classify images",
                       name, nn_graph_input_count(model_graph(c->m)));
    else {
        c->pp = pp;
        return 0;
    }
    model_release(c->m);
    c->m = NULL;
    return -1;
}

static void close_classifier(struct classifier *c)
{
    if (c->m) model_release(c->m);
    c->m = NULL;
}

/* 413 when a model input of `elements` passes max_tensor_elements. */
static int check_elements(struct request *req, struct response *resp, const struct classifier *c,
                          size_t elements)
{
    long long max = (long long)req->app->cfg->max_tensor_elements;
    if ((long long)elements <= max) return 0;
    response_error(resp, 413,
                   "model %s: the request's inputs are %zu elements; max_tensor_elements is %lld",
                   c->name, elements, max);
    return -1;
}

/* The work budget, before any image reaches a model: each of the n models on `views` views of
 * every image, costed from the plan for the image's input shape (compiled now, and cached for the
 * run). A view's weak policy counts as one op on the model's input. */
static int check_work(struct request *req, struct response *resp, const struct classifier *cs,
                      size_t n, const struct input_image *images, int count,
                      unsigned long long views)
{
    double work = 0;
    struct eng_error err = {0};
    for (size_t j = 0; j < n; j++)
        for (int i = 0; i < count; i++) {
            int height, width;
            if (classify_preprocess_size(cs[j].pp, images[i].image->width, images[i].image->height,
                                         &height, &width, &err) != 0)
                return response_engine_error(resp, &err), -1;
            struct nn_tensor_info shape = model_image_shape(cs[j].pp, 1, height, width);
            if (input_add_inference_work(resp, cs[j].m, &shape, (double)views, &work) != 0)
                return -1;
            work += (double)views * height * width;
        }
    return input_check_work(req, resp, work,
                            "send fewer or smaller images, or ask for fewer views");
}

/* The class probabilities of n model inputs of one shape at data, back to back: *probs gets
 * n rows of *classes (malloc'd); the engine's error answered. */
static int run_model(struct response *resp, const struct classifier *c, const float *data, size_t n,
                     int height, int width, float **probs, size_t *classes)
{
    struct eng_error err = {0};
    if (model_classify(c->m, data, n, height, width, probs, classes, &err) == 0) return 0;
    response_engine_error(resp, &err);
    return -1;
}

/* The label of a class as JSON: the text the first of the n models has for it, else null. */
static json_t *label_json(const struct classifier *cs, size_t n, size_t index)
{
    for (size_t i = 0; i < n; i++) {
        const char *label = model_label(cs[i].m, index);
        if (label) return json_string_lossy(label);
    }
    return json_null();
}

/* ---- POST /v1/predict ------------------------------------------------------------------------ */

struct prediction {
    int height, width; /* the image's model input */
    size_t offset;     /* of its model input in the request's buffer */
};

static json_t *top_k_json(const struct classifier *c, const float *probs, size_t classes,
                          size_t *top, size_t k)
{
    classify_topk(probs, classes, k, top);
    json_t *items = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(items,
                              json_pack("{s:I, s:o, s:f}", "index", (json_int_t)top[i], "label",
                                        label_json(c, 1, top[i]), "prob", (double)probs[top[i]]));
    return items;
}

/* Every image's model input, back to back in one buffer (malloc'd); 413 when together they pass
 * max_tensor_elements. */
static float *predict_inputs(struct request *req, struct response *resp, const struct classifier *c,
                             const struct input_image *images, int count, struct prediction *pred)
{
    size_t total = 0;
    struct eng_error err = {0};
    for (int i = 0; i < count; i++) {
        if (classify_preprocess_size(c->pp, images[i].image->width, images[i].image->height,
                                     &pred[i].height, &pred[i].width, &err) != 0) {
            response_engine_error(resp, &err);
            return NULL;
        }
        pred[i].offset = total;
        total += (size_t)c->pp->channels * (size_t)pred[i].height * (size_t)pred[i].width;
    }
    if (check_elements(req, resp, c, total) != 0) return NULL;
    float *data = malloc(total * sizeof *data);
    if (!data) response_no_memory(resp, NULL);
    for (int i = 0; data && i < count; i++)
        if (classify_image_tensor(images[i].image, c->pp, NULL, 0, (uint32_t)i, 1,
                                  data + pred[i].offset, &err) != 0) {
            response_engine_error(resp, &err);
            free(data);
            data = NULL;
        }
    return data;
}

/* Runs the model on each run of images whose inputs share a shape and appends their top k (0:
 * the default) to results. */
static int predict_all(struct response *resp, const struct classifier *c, const float *data,
                       const struct prediction *pred, int count, size_t k, json_t *results)
{
    for (int start = 0, end; start < count; start = end) {
        for (end = start + 1; end < count && pred[end].height == pred[start].height &&
                              pred[end].width == pred[start].width;
             end++)
            ;
        float *probs;
        size_t classes, *top = NULL;
        if (run_model(resp, c, data + pred[start].offset, (size_t)(end - start), pred[start].height,
                      pred[start].width, &probs, &classes) != 0)
            return -1;
        if (k == 0) k = classes < DEFAULT_TOP_K ? classes : DEFAULT_TOP_K;
        if (k > classes)
            response_error(resp, 422, "top_k: %zu is more than the %zu classes of model %s", k,
                           classes, c->name);
        else if (!(top = malloc(k * sizeof *top)))
            response_no_memory(resp, NULL);
        for (int i = start; top && i < end; i++)
            json_array_append_new(
                results,
                json_pack("{s:i, s:o}", "input", i, "predictions",
                          top_k_json(c, probs + (size_t)(i - start) * classes, classes, top, k)));
        free(probs);
        int ok = top != NULL;
        free(top);
        if (!ok) return -1;
    }
    return 0;
}

void handle_predict(struct request *req, struct response *resp)
{
    const struct config *cfg = req->app->cfg;
    struct input_image *images = calloc((size_t)cfg->max_inputs, sizeof *images);
    struct prediction *pred = calloc((size_t)cfg->max_inputs, sizeof *pred);
    struct classifier c = {0};
    int count = 0;
    float *data = NULL;
    json_t *results = json_array();
    const char *name = input_param(req, "model"), *top_k = input_param(req, "top_k");
    unsigned long long k = 0;
    if (!images || !pred || !results) {
        response_no_memory(resp, NULL);
        goto done;
    }
    /* The cheap checks first: a request that fails them costs no decoding. */
    if (!name || !*name) {
        response_error(resp, 422, "model: missing; name a model of models_dir");
        goto done;
    }
    if (top_k && parse_whole(top_k, 1, SIZE_MAX, &k) != 0) {
        response_error(resp, 422, "top_k: must be a whole number from 1 to the model's classes");
        goto done;
    }
    if (open_classifier(req, resp, name, &c) != 0) goto done;
    /* The model's own colour handling unless the request says otherwise. */
    enum img_color color = c.pp->color;
    if (input_color(resp, input_param(req, "color"), &color) != 0 ||
        input_collect_images(req, resp, images, cfg->max_inputs, &count) != 0 ||
        input_decode_images(req, resp, images, count, color) != 0 ||
        check_work(req, resp, &c, 1, images, count, 1) != 0)
        goto done;
    data = predict_inputs(req, resp, &c, images, count, pred);
    if (!data || predict_all(resp, &c, data, pred, count, (size_t)k, results) != 0) goto done;
    response_json(resp, 200,
                  json_pack("{s:o, s:o}", "model", json_string_lossy(name), "results", results));
    results = NULL;
done:
    json_decref(results);
    free(data);
    close_classifier(&c);
    input_free_images(images, count);
    free(images);
    free(pred);
}

/* ---- POST /v1/pseudo-label ------------------------------------------------------------------- */

struct pseudo_options {
    const char *names[MAX_MODELS];
    size_t n_models;
    double threshold;
    unsigned long long views, seed;
};

/* The "model" parameters: repeated multipart fields when there is one, else repeated query
 * parameters, as input_param picks a single one. */
static int read_model_names(const struct request *req, struct response *resp,
                            struct pseudo_options *o)
{
    const struct request_part *field = request_part(req, "model");
    int from_parts = field && !field->filename;
    size_t n = from_parts ? req->part_count : req->query_count;
    for (size_t i = 0; i < n; i++) {
        const char *key = from_parts ? req->parts[i].name : req->query[i].name;
        if (strcmp(key, "model") != 0 || (from_parts && req->parts[i].filename)) continue;
        const char *value = from_parts ? (const char *)req->parts[i].data : req->query[i].value;
        if (o->n_models == MAX_MODELS || !*value) {
            response_error(resp, 422, "model: give 1 to %d model names", MAX_MODELS);
            return -1;
        }
        o->names[o->n_models++] = value;
    }
    if (o->n_models > 0) return 0;
    response_error(resp, 422, "model: missing; name 1 to %d models of models_dir (model=a&model=b)",
                   MAX_MODELS);
    return -1;
}

static int read_pseudo_options(struct request *req, struct response *resp, struct pseudo_options *o)
{
    if (read_model_names(req, resp, o) != 0) return -1;
    const char *threshold = input_param(req, "threshold"), *views = input_param(req, "views");
    o->threshold = DEFAULT_THRESHOLD;
    if (threshold && parse_real(threshold, 0, 1, &o->threshold) != PARSE_OK) {
        response_error(resp, 422, "threshold: must be a number in [0, 1]");
        return -1;
    }
    o->views = DEFAULT_VIEWS;
    if (views && parse_whole(views, 1, MAX_VIEWS, &o->views) != 0) {
        response_error(resp, 422, "views: must be a whole number in [1, %d]", MAX_VIEWS);
        return -1;
    }
    return input_seed(req, resp, &o->seed);
}

/* How the images are decoded: the "color" parameter, else the models' preprocess.color, which
 * must then agree (each model was trained on its own, and one decoding serves them all). */
static int pseudo_label_color(struct request *req, struct response *resp,
                              const struct classifier *cs, size_t n, enum img_color *color)
{
    const char *text = input_param(req, "color");
    *color = cs[0].pp->color;
    if (text) return input_color(resp, text, color);
    for (size_t j = 1; j < n; j++)
        if (cs[j].pp->color != *color) {
            response_error(resp, 422,
                           "color: models %s and %s decode colours differently (preprocess.color "
                           "%s and %s); give color=keep or color=srgb for all of them",
                           cs[0].name, cs[j].name, img_color_name(*color),
                           img_color_name(cs[j].pp->color));
            return -1;
        }
    return 0;
}

/* Model c's probabilities for the views of one image: *probs gets views rows of *classes. */
static int classify_views(struct request *req, struct response *resp, const struct classifier *c,
                          const struct pseudo_options *o, const struct policy *weak,
                          const struct img *im, int input, float **probs, size_t *classes)
{
    int height, width;
    struct eng_error err = {0};
    if (classify_preprocess_size(c->pp, im->width, im->height, &height, &width, &err) != 0) {
        response_engine_error(resp, &err);
        return -1;
    }
    size_t elements = (size_t)o->views * (size_t)c->pp->channels * (size_t)height * (size_t)width;
    if (check_elements(req, resp, c, elements) != 0) return -1;
    float *data = malloc(elements * sizeof *data);
    int rc = -1;
    if (!data)
        response_no_memory(resp, NULL);
    else if (classify_image_tensor(im, c->pp, weak, o->seed, (uint32_t)input, (int)o->views, data,
                                   &err) != 0)
        response_engine_error(resp, &err);
    else
        rc = run_model(resp, c, data, (size_t)o->views, height, width, probs, classes);
    free(data);
    return rc;
}

/* Sets a vote's "index", "label", "confidence" and "agreement" on obj; the label from the first of
 * n models that has one. */
static void add_vote(json_t *obj, const struct classifier *cs, size_t n,
                     const struct classify_vote *v)
{
    json_object_set_new(obj, "index", json_integer((json_int_t)v->label));
    json_object_set_new(obj, "label", label_json(cs, n, v->label));
    json_object_set_new(obj, "confidence", json_real(v->confidence));
    json_object_set_new(obj, "agreement", json_real(v->agreement));
}

static json_t *pseudo_label_json(const struct classifier *cs, const struct pseudo_options *o,
                                 int input, const struct classify_pseudo_label *pl,
                                 const struct classify_vote *votes)
{
    json_t *item = json_pack("{s:i}", "input", input), *models = json_array();
    add_vote(item, cs, o->n_models, &pl->vote);
    json_object_set_new(item, "accepted", json_boolean(pl->accepted));
    json_object_set_new(item, "entropy", json_real(pl->entropy));
    for (size_t j = 0; j < o->n_models; j++) {
        json_t *vote = json_pack("{s:o}", "model", json_string_lossy(cs[j].name));
        add_vote(vote, &cs[j], 1, &votes[j]);
        json_array_append_new(models, vote);
    }
    json_object_set_new(item, "models", models);
    return item;
}

/* The pseudo-label of image `input`: every model on its views, into one
 * [models][views][classes] grid for the vote. */
static json_t *label_image(struct request *req, struct response *resp, const struct classifier *cs,
                           const struct pseudo_options *o, const struct policy *weak,
                           const struct img *im, int input)
{
    float *grid = NULL;
    size_t classes = 0, per_model = 0;
    json_t *item = NULL;
    for (size_t j = 0; j < o->n_models; j++) {
        float *probs;
        size_t n;
        if (classify_views(req, resp, &cs[j], o, weak, im, input, &probs, &n) != 0) goto done;
        if (j == 0) {
            classes = n;
            per_model = (size_t)o->views * classes;
            grid = malloc(o->n_models * per_model * sizeof *grid);
        }
        if (!grid)
            response_no_memory(resp, NULL);
        else if (n != classes)
            response_error(resp, 422,
                           "models %s and %s have different class counts (%zu and %zu); the "
                           "models of a pseudo-label must share their classes",
                           cs[0].name, cs[j].name, classes, n);
        else
            memcpy(grid + j * per_model, probs, per_model * sizeof *grid);
        free(probs);
        if (!grid || n != classes) goto done;
    }
    struct classify_pseudo_label pl;
    struct classify_vote votes[MAX_MODELS];
    struct eng_error err = {0};
    if (classify_pseudo_label(grid, o->n_models, (size_t)o->views, classes, o->threshold, &pl,
                              votes, &err) != 0)
        response_engine_error(resp, &err);
    else
        item = pseudo_label_json(cs, o, input, &pl, votes);
done:
    free(grid);
    return item;
}

void handle_pseudo_label(struct request *req, struct response *resp)
{
    const struct config *cfg = req->app->cfg;
    struct input_image *images = calloc((size_t)cfg->max_inputs, sizeof *images);
    struct classifier cs[MAX_MODELS] = {0};
    struct pseudo_options o = {0};
    struct policy *weak = NULL;
    struct eng_error err = {0};
    json_t *results = json_array(), *names = json_array();
    int count = 0;
    if (!images || !results || !names) {
        response_no_memory(resp, NULL);
        goto done;
    }
    if (read_pseudo_options(req, resp, &o) != 0) goto done;
    for (size_t j = 0; j < o.n_models; j++) {
        if (open_classifier(req, resp, o.names[j], &cs[j]) != 0) goto done;
        json_array_append_new(names, json_string_lossy(o.names[j]));
    }
    if (o.views > 1 && !(weak = policy_cache_parse(req->app->policies, WEAK_POLICY, &err))) {
        response_engine_error(resp, &err);
        goto done;
    }
    enum img_color color;
    if (pseudo_label_color(req, resp, cs, o.n_models, &color) != 0 ||
        input_collect_images(req, resp, images, cfg->max_inputs, &count) != 0 ||
        input_decode_images(req, resp, images, count, color) != 0 ||
        check_work(req, resp, cs, o.n_models, images, count, o.views) != 0)
        goto done;
    for (int i = 0; i < count; i++) {
        json_t *item = label_image(req, resp, cs, &o, weak, images[i].image, i);
        if (!item) goto done;
        json_array_append_new(results, item);
    }
    response_json(resp, 200,
                  json_pack("{s:O, s:I, s:I, s:f, s:O}", "models", names, "views",
                            (json_int_t)o.views, "seed", (json_int_t)o.seed, "threshold",
                            o.threshold, "results", results));
done:
    json_decref(results);
    json_decref(names);
    for (size_t j = 0; j < o.n_models; j++)
        close_classifier(&cs[j]);
    policy_free(weak);
    input_free_images(images, count);
    free(images);
}
