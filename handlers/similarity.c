/* POST /v1/similarity, /v1/similarity/batch and /v1/similarity/2afc: how far apart images are, by
 * pixel metrics (SSIM, MS-SSIM, PSNR, L2) and by LPIPS through a model with a perceptual config.
 * Images come as multipart parts or as base64 in a JSON body; every image of a request goes
 * through the network in one batch. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "handlers.h"
#include "image/geometry.h"
#include "input.h"
#include "metrics/metric.h"
#include "models.h"
#include "perceptual.h"
#include "request.h"
#include "response.h"

enum metric_id { M_LPIPS, M_SSIM, M_MS_SSIM, M_PSNR, M_L2, M_COUNT };
static const char *const metric_names[M_COUNT] = {"lpips", "ssim", "ms_ssim", "psnr", "l2"};

#define ALL_METRICS ((1u << M_COUNT) - 1)
#define MAX_ROLES   3

struct options {
    unsigned metrics; /* bits of enum metric_id */
    int all;          /* "all": metrics that do not apply are skipped, not refused */
    const char *model;
    int spatial, resize;
    enum metric_planes planes;
    enum img_color color;
};

/* A request's images: groups (pairs or triplets) of n_roles, row-major. */
struct images {
    const char *const *roles;
    int n_roles, n_groups;
    struct input_image *items;
};

/* ---- Parameters ------------------------------------------------------------------------------ */

/* A parameter as text: a JSON member (a string, or true/false) or a form field or query one. */
static const char *param(const struct request *req, json_t *doc, const char *name)
{
    if (!doc) return input_param(req, name);
    json_t *v = json_object_get(doc, name);
    return json_is_string(v)    ? json_string_value(v)
           : json_is_boolean(v) ? (json_is_true(v) ? "true" : "false")
                                : NULL;
}

static int parse_bool(struct response *resp, const char *name, const char *text, int *out)
{
    if (!text) return 0;
    if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
        *out = text[0] == 't';
        return 0;
    }
    response_error(resp, 422, "%s: must be true or false", name);
    return -1;
}

/* One metric name into opt; "all" selects every one. */
static int add_metric(struct response *resp, const char *name, size_t len, struct options *opt)
{
    if (len == 3 && strncmp(name, "all", 3) == 0) {
        opt->metrics = ALL_METRICS;
        opt->all = 1;
        return 0;
    }
    for (int m = 0; m < M_COUNT; m++)
        if (strlen(metric_names[m]) == len && strncmp(metric_names[m], name, len) == 0) {
            opt->metrics |= 1u << m;
            return 0;
        }
    response_error(resp, 422,
                   "metrics: unknown metric '%.*s'; use lpips, ssim, ms_ssim, psnr, l2 or all",
                   (int)len, name);
    return -1;
}

/* "metrics": a comma-separated list, or a JSON array of names; default all. */
static int parse_metrics(const struct request *req, json_t *doc, struct response *resp,
                         struct options *opt)
{
    json_t *list = doc ? json_object_get(doc, "metrics") : NULL;
    if (json_is_array(list)) {
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
        {
            const char *name = json_string_value(v);
            if (!name) return response_error(resp, 422, "metrics[%zu]: must be a string", i), -1;
            if (add_metric(resp, name, strlen(name), opt)) return -1;
        }
        return opt->metrics ? 0 : (response_error(resp, 422, "metrics: must not be empty"), -1);
    }
    const char *text = param(req, doc, "metrics");
    if (!text) text = "all";
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ",");
        if (add_metric(resp, p, len, opt)) return -1;
        p += len + (p[len] == ',');
    }
    return opt->metrics ? 0 : (response_error(resp, 422, "metrics: must not be empty"), -1);
}

static int parse_options(const struct request *req, json_t *doc, struct response *resp,
                         struct options *opt)
{
    *opt = (struct options){.planes = METRIC_RGB};
    const char *channels = param(req, doc, "channels");
    opt->model = param(req, doc, "model");
    if (parse_metrics(req, doc, resp, opt) ||
        parse_bool(resp, "spatial", param(req, doc, "spatial"), &opt->spatial) ||
        parse_bool(resp, "resize", param(req, doc, "resize"), &opt->resize) ||
        input_color(resp, param(req, doc, "color"), &opt->color))
        return -1;
    if (channels && strcmp(channels, "luma") == 0)
        opt->planes = METRIC_LUMA;
    else if (channels && strcmp(channels, "rgb") != 0)
        return response_error(resp, 422, "channels: must be rgb or luma"), -1;
    if (opt->spatial && !(opt->metrics & (1u << M_LPIPS)))
        return response_error(resp, 422, "spatial: the map is LPIPS's; add lpips to metrics"), -1;
    return 0;
}

/* ---- Images ---------------------------------------------------------------------------------- */

/* The JSON image member name of obj (base64) into item; its bytes are owned by *owned. */
static int json_image(json_t *obj, const char *name, const char *where, struct response *resp,
                      struct input_image *item, unsigned char **owned)
{
    char what[96];
    snprintf(what, sizeof what, "%s%s", where, name);
    return input_json_image(json_object_get(obj, name), what, resp, item, owned);
}

/* The images of a JSON body: its role members, or with many, "pairs": [{"a", "b"}, ...]. */
static int json_images(struct request *req, json_t *doc, struct response *resp, int many,
                       struct images *im, unsigned char ***owned)
{
    json_t *groups = many ? json_object_get(doc, "pairs") : NULL;
    int max = req->app->cfg->max_inputs;
    if (many && (!json_is_array(groups) || json_array_size(groups) < 1 ||
                 json_array_size(groups) > (size_t)max))
        return response_error(resp, 422, "pairs: must be an array of 1 to %d {a, b} objects", max),
               -1;
    im->n_groups = many ? (int)json_array_size(groups) : 1;
    size_t n = (size_t)im->n_groups * (size_t)im->n_roles;
    im->items = calloc(n, sizeof *im->items);
    *owned = calloc(n, sizeof **owned);
    if (!im->items || !*owned) return response_no_memory(resp, NULL), -1;
    for (int g = 0; g < im->n_groups; g++) {
        char where[32] = "";
        if (many) snprintf(where, sizeof where, "pairs[%d].", g);
        json_t *obj = many ? json_array_get(groups, (size_t)g) : doc;
        for (int r = 0; r < im->n_roles; r++) {
            size_t k = (size_t)g * (size_t)im->n_roles + (size_t)r;
            if (json_image(obj, im->roles[r], where, resp, &im->items[k], &(*owned)[k])) return -1;
        }
    }
    return 0;
}

/* The images of a multipart body: one part per role, or with many, as many "a" parts as "b". */
static int part_images(struct request *req, struct response *resp, int many, struct images *im)
{
    int max = many ? req->app->cfg->max_inputs : 1, counts[MAX_ROLES];
    struct input_bytes *bytes = calloc((size_t)MAX_ROLES * (size_t)max, sizeof *bytes);
    if (!bytes) return response_no_memory(resp, NULL), -1;
    int rc = 0;
    for (int r = 0; r < im->n_roles && rc == 0; r++) {
        rc = input_parts(req, resp, im->roles[r], bytes + r * max, max, &counts[r]);
        if (rc == 0 && (counts[r] < 1 || counts[r] != counts[0]))
            rc = -1,
            response_error(resp, 422,
                           many ? "parts: send as many 'b' parts as 'a' parts, at least one"
                                : "part %s: missing; send the images as parts %s",
                           im->roles[r], im->n_roles == 2 ? "a and b" : "ref, p0 and p1");
    }
    im->n_groups = rc == 0 ? counts[0] : 0;
    im->items =
        rc == 0 ? calloc((size_t)im->n_groups * (size_t)im->n_roles, sizeof *im->items) : NULL;
    if (rc == 0 && !im->items) rc = -1, response_no_memory(resp, NULL);
    for (int g = 0; rc == 0 && g < im->n_groups; g++)
        for (int r = 0; r < im->n_roles; r++) {
            struct input_image *item = &im->items[g * im->n_roles + r];
            item->data = bytes[r * max + g].data;
            item->size = bytes[r * max + g].size;
        }
    free(bytes);
    return rc;
}

/* The name of image k in messages: "a", or "pairs[2].b" in a batch. */
static void image_name(const struct images *im, int k, int many, char *out, size_t size)
{
    if (many)
        snprintf(out, size, "pairs[%d].%s", k / im->n_roles, im->roles[k % im->n_roles]);
    else
        snprintf(out, size, "%s", im->roles[k]);
}

/* Decodes every image against max_pixels and max_dimension, its colours as color says; no
 * profile is kept, since no image is sent back. */
static int decode_images(struct request *req, struct response *resp, int many, enum img_color color,
                         struct images *im)
{
    const struct config *cfg = req->app->cfg;
    const struct img_decode_options opt = {(uint64_t)cfg->max_pixels, cfg->max_dimension, color};
    for (int k = 0; k < im->n_groups * im->n_roles; k++) {
        struct eng_error err = {0};
        im->items[k].image = img_decode(im->items[k].data, im->items[k].size, &opt, NULL, &err);
        if (!im->items[k].image) {
            char name[48];
            image_name(im, k, many, name, sizeof name);
            struct eng_error named = {err.code, ""};
            snprintf(named.message, sizeof named.message, "%s: %.460s", name, err.message);
            response_engine_error(resp, &named);
            return -1;
        }
    }
    return 0;
}

/* Every image of a group at its first image's size: 422 for another size unless resize is set,
 * which resizes it (bilinear, antialiased as PIL). */
static int match_sizes(struct response *resp, const struct options *opt, int many,
                       struct images *im)
{
    for (int g = 0; g < im->n_groups; g++) {
        const struct img *first = im->items[g * im->n_roles].image;
        for (int r = 1; r < im->n_roles; r++) {
            struct input_image *item = &im->items[g * im->n_roles + r];
            if (item->image->width == first->width && item->image->height == first->height)
                continue;
            char name[48];
            image_name(im, g * im->n_roles + r, many, name, sizeof name);
            if (!opt->resize)
                return response_error(resp, 422,
                                      "%s is %dx%d, %s is %dx%d: the sizes must match, or send "
                                      "resize=true to resize it",
                                      name, item->image->width, item->image->height, im->roles[0],
                                      first->width, first->height),
                       -1;
            struct eng_error err = {0};
            struct img *resized =
                img_resize(item->image, first->height, first->width, IMG_BILINEAR, &err);
            if (!resized) return response_engine_error(resp, &err), -1;
            img_free(item->image);
            item->image = resized;
        }
    }
    return 0;
}

/* Reads a request's images and options; on failure the response is written. *doc gets the JSON
 * body, if any, which the options point into. */
static int read_request(struct request *req, struct response *resp, int many, struct options *opt,
                        struct images *im, unsigned char ***owned, json_t **doc_out)
{
    json_t *doc = NULL;
    const char *type = request_header(req, "Content-Type");
    if (!req->parts && type && strncmp(type, "application/json", 16) == 0) {
        json_error_t error;
        doc = json_loadb((const char *)req->body, req->body_size, JSON_REJECT_DUPLICATES, &error);
        if (!json_is_object(doc)) {
            json_decref(doc);
            return response_error(resp, 400, "the body is not a JSON object: %s", error.text), -1;
        }
        *doc_out = doc;
    } else if (!req->parts) {
        return response_error(resp, 415, "send multipart/form-data or application/json"), -1;
    }
    int rc = parse_options(req, doc, resp, opt);
    if (rc == 0)
        rc = doc ? json_images(req, doc, resp, many, im, owned) : part_images(req, resp, many, im);
    if (rc == 0) rc = decode_images(req, resp, many, opt->color, im);
    return rc == 0 ? match_sizes(resp, opt, many, im) : -1;
}

static void free_images(struct images *im, unsigned char **owned)
{
    int n = im->n_groups * im->n_roles;
    for (int k = 0; im->items && k < n; k++)
        img_free(im->items[k].image);
    for (int k = 0; owned && k < n; k++)
        free(owned[k]);
    free(owned);
    free(im->items);
}

/* ---- LPIPS ----------------------------------------------------------------------------------- */

/* The perceptual model: the one named, or by default the first (by name) whose perceptual config
 * loaded. A reference the caller releases; NULL with the response written when a named one
 * cannot serve, or with nothing written when none is named and none exists. */
static struct model *perceptual_model(struct request *req, struct response *resp, const char *name)
{
    if (name) {
        struct model *m = models_acquire(req->app->models, name);
        if (!m) return response_error(resp, 404, "model %s: no such model", name), NULL;
        if (model_perceptual(m)) return m;
        const char *why = model_reason(m) ? model_reason(m) : model_perceptual_reason(m);
        response_error(resp, 422, "model %s has no perceptual config%s%s", name,
                       why ? ": " : " (a \"perceptual\" section in its config.json)",
                       why ? why : "");
        model_release(m);
        return NULL;
    }
    size_t count;
    struct model **list = models_list(req->app->models, &count), *found = NULL;
    for (size_t i = 0; list && i < count && !found; i++)
        if (model_perceptual(list[i]))
            found = models_acquire(req->app->models, model_name(list[i]));
    models_list_free(list, count);
    return found;
}

/* ---- Scoring --------------------------------------------------------------------------------- */

/* What a request computes: the options, the perceptual model if any, and why metrics that "all"
 * asked for were skipped. */
struct scoring {
    struct options opt;
    struct model *model;
    json_t *skipped;
    json_t *doc; /* the JSON body, if any */
};

/* Whether metric m runs on images of w x h; else, for "all", it is skipped with why, and for an
 * explicit request the response says why (422). -1 then. */
static int applies(struct scoring *s, struct response *resp, enum metric_id m, int w, int h)
{
    char why[200] = "";
    const struct model_perceptual *p = s->model ? model_perceptual(s->model) : NULL;
    if (m == M_LPIPS && !p)
        snprintf(why, sizeof why, "lpips needs a model with a perceptual config; none is loaded");
    else if (m == M_LPIPS && (w < p->min_side || h < p->min_side))
        snprintf(why, sizeof why,
                 "lpips with model %s needs images of at least %dx%d; these are %dx%d",
                 model_name(s->model), p->min_side, p->min_side, w, h);
    else if (m == M_SSIM && (w < METRIC_SSIM_MIN_SIDE || h < METRIC_SSIM_MIN_SIDE))
        snprintf(why, sizeof why, "ssim needs images of at least %dx%d; these are %dx%d",
                 METRIC_SSIM_MIN_SIDE, METRIC_SSIM_MIN_SIDE, w, h);
    else if (m == M_MS_SSIM && (w < METRIC_MS_SSIM_MIN_SIDE || h < METRIC_MS_SSIM_MIN_SIDE))
        snprintf(why, sizeof why,
                 "ms_ssim needs images of at least %dx%d (11 pixels at the 5th scale); these are "
                 "%dx%d",
                 METRIC_MS_SSIM_MIN_SIDE, METRIC_MS_SSIM_MIN_SIDE, w, h);
    if (!why[0]) return 1;
    if (!s->opt.all) return response_error(resp, 422, "%s", why), -1;
    json_object_set_new(s->skipped, metric_names[m], json_string(why));
    return 0;
}

/* A score as JSON: PSNR of identical images is +inf, which JSON cannot hold: null. */
static json_t *number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* The pixel metrics of one pair into obj. */
static int pixel_metrics(const struct scoring *s, const struct img *a, const struct img *b,
                         unsigned use, json_t *obj, struct eng_error *err)
{
    double v;
    if ((use & 1u << M_SSIM) && metric_ssim(a, b, s->opt.planes, &v, err) == 0)
        json_object_set_new(obj, "ssim", number(v));
    if (err->code) return -1;
    if ((use & 1u << M_MS_SSIM) && metric_ms_ssim(a, b, s->opt.planes, &v, err) == 0)
        json_object_set_new(obj, "ms_ssim", number(v));
    if (err->code) return -1;
    if ((use & (1u << M_PSNR | 1u << M_L2)) && metric_mse(a, b, s->opt.planes, &v, err) != 0)
        return -1;
    if (use & 1u << M_PSNR) json_object_set_new(obj, "psnr", number(metric_psnr(v)));
    if (use & 1u << M_L2) json_object_set_new(obj, "l2", number(v));
    return 0;
}

/* The map as a greyscale PNG, black 0 and white the map's maximum (returned as map_max). */
static int map_png(const float *map, int w, int h, json_t *obj, struct eng_error *err)
{
    float max = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        if (map[i] > max) max = map[i];
    struct img *im = img_new(w, h, 1, err);
    if (!im) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img_row(im, y)[x] = (uint8_t)(max > 0 ? lrintf(255 * map[(size_t)y * w + x] / max) : 0);
    void *png = NULL;
    size_t size;
    int rc = img_encode(im, IMG_PNG, 0, NULL, &png, &size, err);
    img_free(im);
    char *b64 = rc == 0 ? input_base64(png, size) : NULL;
    free(png);
    if (rc == 0 && !b64) rc = eng_fail(err, ENG_NO_MEMORY, "out of memory for the map");
    if (rc == 0) {
        json_object_set_new(obj, "map", json_string(b64));
        json_object_set_new(obj, "map_max", json_real(max));
    }
    free(b64);
    return rc;
}

/* The metrics in use for a group of w x h images: those asked for that apply. */
static int metrics_in_use(struct scoring *s, struct response *resp, int w, int h, unsigned *use)
{
    *use = 0;
    for (int m = 0; m < M_COUNT; m++) {
        if (!(s->opt.metrics & 1u << m)) continue;
        int ok = applies(s, resp, (enum metric_id)m, w, h);
        if (ok < 0) return -1;
        if (ok) *use |= 1u << m;
    }
    return 0;
}

/* Scores the pairs (image[pairs[2k]], image[pairs[2k + 1]]) into results[k]: the pixel metrics,
 * then LPIPS over every image at once (and its map when spatial). All images share one size. */
static int score_pairs(struct request *req, struct response *resp, struct scoring *s,
                       struct img *const *images, int n_images, const int *pairs, int n_pairs,
                       json_t **results)
{
    int w = images[0]->width, h = images[0]->height;
    unsigned use;
    struct eng_error err = {0};
    if (metrics_in_use(s, resp, w, h, &use)) return -1;
    for (int k = 0; k < n_pairs; k++)
        if (pixel_metrics(s, images[pairs[2 * k]], images[pairs[2 * k + 1]], use, results[k], &err))
            return response_engine_error(resp, &err), -1;
    if (!(use & 1u << M_LPIPS)) return 0;
    if ((long long)n_images * 3 * w * h > (long long)req->app->cfg->max_tensor_elements)
        return response_error(resp, 413,
                              "lpips: %d images of %dx%d pass max_tensor_elements (%lld)", n_images,
                              w, h, (long long)req->app->cfg->max_tensor_elements),
               -1;
    double *d = calloc((size_t)n_pairs, sizeof *d);
    float **maps = s->opt.spatial ? calloc((size_t)n_pairs, sizeof *maps) : NULL;
    int rc = d && (!s->opt.spatial || maps) ? 0 : eng_fail(&err, ENG_NO_MEMORY, "out of memory");
    for (int k = 0; rc == 0 && maps && k < n_pairs; k++)
        if (!(maps[k] = malloc((size_t)w * (size_t)h * sizeof **maps)))
            rc = eng_fail(&err, ENG_NO_MEMORY, "out of memory for the map");
    if (rc == 0) rc = perceptual_lpips(s->model, images, n_images, pairs, n_pairs, d, maps, &err);
    for (int k = 0; rc == 0 && k < n_pairs; k++) {
        json_object_set_new(results[k], "lpips", json_real(d[k]));
        if (maps) rc = map_png(maps[k], w, h, results[k], &err);
    }
    for (int k = 0; maps && k < n_pairs; k++)
        free(maps[k]);
    free(maps);
    free(d);
    if (rc) response_engine_error(resp, &err);
    return rc;
}

/* Op-pixels of work per pixel and plane, as max_work counts them: SSIM filters five maps in two
 * passes of 11 taps; MS-SSIM does that at five scales of a quarter of the pixels each; the MSE
 * reads each sample once. */
#define SSIM_WORK    10.0
#define MS_SSIM_WORK 13.3
#define MSE_WORK     1.0

/* The pixel metrics' budgets, before any pair is scored: each pair's working set against
 * max_request_memory (metrics run one pair at a time) and the request's work against max_work.
 * Every group's first image is compared with each of the others. */
static int check_budget(const struct request *req, struct response *resp, const struct scoring *s,
                        const struct images *im)
{
    const unsigned m = s->opt.metrics;
    const int ssim = (m & (1u << M_SSIM | 1u << M_MS_SSIM)) != 0;
    const int mse = (m & (1u << M_PSNR | 1u << M_L2)) != 0;
    const double per_plane = (m & 1u << M_SSIM ? SSIM_WORK : 0) +
                             (m & 1u << M_MS_SSIM ? MS_SSIM_WORK : 0) + (mse ? MSE_WORK : 0);
    const long long max_bytes = (long long)req->app->cfg->max_request_memory;
    double work = 0;
    for (int g = 0; g < im->n_groups; g++)
        for (int r = 1; r < im->n_roles; r++) {
            const struct img *a = im->items[g * im->n_roles].image;
            const struct img *b = im->items[g * im->n_roles + r].image;
            double bytes = ssim || mse ? metric_working_bytes(a, b, s->opt.planes, ssim) : 0;
            if (bytes > (double)max_bytes) {
                response_error(resp, 413,
                               "%s on two %dx%d images needs about %.0f bytes of memory; "
                               "max_request_memory is %lld: send smaller images, resize them, or "
                               "ask for psnr or l2 only",
                               ssim ? "ssim" : "psnr", a->width, a->height, bytes, max_bytes);
                return -1;
            }
            work += per_plane * a->width * a->height * (s->opt.planes == METRIC_LUMA ? 1 : 3);
        }
    return input_check_work(req, resp, work, "send fewer or smaller pairs, or fewer metrics");
}

/* The request's images, options and model, or -1 with the response written. */
static int begin(struct request *req, struct response *resp, int many, const char *const *roles,
                 int n_roles, struct scoring *s, struct images *im, unsigned char ***owned)
{
    *im = (struct images){.roles = roles, .n_roles = n_roles};
    *owned = NULL;
    s->model = NULL;
    s->doc = NULL;
    s->skipped = json_object();
    if (!s->skipped) return response_no_memory(resp, NULL), -1;
    if (read_request(req, resp, many, &s->opt, im, owned, &s->doc) ||
        check_budget(req, resp, s, im))
        return -1;
    if (!(s->opt.metrics & 1u << M_LPIPS)) return 0;
    s->model = perceptual_model(req, resp, s->opt.model);
    return s->model || !s->opt.model ? 0 : -1;
}

static void end(struct scoring *s, struct images *im, unsigned char **owned)
{
    if (s->model) model_release(s->model);
    json_decref(s->skipped);
    json_decref(s->doc);
    free_images(im, owned);
}

/* The response document: the results, the model that LPIPS used and what was skipped. */
static json_t *finish(struct scoring *s, json_t *doc)
{
    if (s->model && json_object_get(s->skipped, "lpips") == NULL)
        json_object_set_new(doc, "model", json_string(model_name(s->model)));
    if (json_object_size(s->skipped)) json_object_set(doc, "skipped", s->skipped);
    return doc;
}

/* ---- Handlers -------------------------------------------------------------------------------- */

static const char *const pair_roles[] = {"a", "b"};

void handle_similarity(struct request *req, struct response *resp)
{
    struct scoring s;
    struct images im;
    unsigned char **owned;
    if (begin(req, resp, 0, pair_roles, 2, &s, &im, &owned) == 0) {
        json_t *metrics = json_object();
        struct img *images[2] = {im.items[0].image, im.items[1].image};
        static const int pair[2] = {0, 1};
        if (!metrics)
            response_no_memory(resp, NULL);
        else if (score_pairs(req, resp, &s, images, 2, pair, 1, &metrics) == 0) {
            json_t *doc = json_pack("{s:O}", "metrics", metrics);
            json_t *map = json_object_get(metrics, "map");
            if (map) {
                json_object_set(doc, "map", map);
                json_object_set(doc, "map_max", json_object_get(metrics, "map_max"));
                json_object_del(metrics, "map");
                json_object_del(metrics, "map_max");
            }
            response_json(resp, 200, finish(&s, doc));
        }
        json_decref(metrics);
    }
    end(&s, &im, owned);
}

/* Scores a batch: runs of consecutive pairs of one size go through the network together. */
static int score_batch(struct request *req, struct response *resp, struct scoring *s,
                       struct images *im, json_t **results)
{
    struct img **images = calloc((size_t)im->n_groups * 2, sizeof *images);
    int *pairs = calloc((size_t)im->n_groups * 2, sizeof *pairs);
    int rc = images && pairs ? 0 : (response_no_memory(resp, NULL), -1);
    for (int start = 0, end = 0; rc == 0 && start < im->n_groups; start = end) {
        const struct img *first = im->items[2 * start].image;
        for (end = start; end < im->n_groups && im->items[2 * end].image->width == first->width &&
                          im->items[2 * end].image->height == first->height;
             end++) {
            images[2 * (end - start)] = im->items[2 * end].image;
            images[2 * (end - start) + 1] = im->items[2 * end + 1].image;
            pairs[2 * (end - start)] = 2 * (end - start);
            pairs[2 * (end - start) + 1] = 2 * (end - start) + 1;
        }
        rc = score_pairs(req, resp, s, images, 2 * (end - start), pairs, end - start,
                         results + start);
    }
    free(images);
    free(pairs);
    return rc;
}

void handle_similarity_batch(struct request *req, struct response *resp)
{
    struct scoring s;
    struct images im;
    unsigned char **owned;
    if (begin(req, resp, 1, pair_roles, 2, &s, &im, &owned) == 0) {
        json_t **results = calloc((size_t)im.n_groups, sizeof *results), *list = json_array();
        int rc = results && list ? 0 : (response_no_memory(resp, NULL), -1);
        for (int k = 0; rc == 0 && k < im.n_groups; k++)
            if (!(results[k] = json_object()) || json_array_append_new(list, results[k]))
                rc = -1, response_no_memory(resp, NULL);
        if (rc == 0 && score_batch(req, resp, &s, &im, results) == 0) {
            json_t *doc = json_pack("{s:O}", "results", list);
            response_json(resp, 200, finish(&s, doc));
        }
        json_decref(list);
        free(results);
    }
    end(&s, &im, owned);
}

/* Which of p0 and p1 a metric puts closer to ref: "p0", "p1" or "tie". */
static const char *closer(const char *metric, double v0, double v1)
{
    /* Distances (lpips, l2) are closer when smaller; similarities (ssim, ms_ssim, psnr) when
     * larger. PSNR's null (+inf, identical) is the closest of all. */
    int distance = strcmp(metric, "lpips") == 0 || strcmp(metric, "l2") == 0;
    if (v0 == v1) return "tie";
    return (v0 < v1) == distance ? "p0" : "p1";
}

static double value_of(json_t *v)
{
    return json_is_null(v) ? INFINITY : json_number_value(v);
}

void handle_similarity_2afc(struct request *req, struct response *resp)
{
    static const char *const roles[] = {"ref", "p0", "p1"};
    struct scoring s;
    struct images im;
    unsigned char **owned;
    int rc = begin(req, resp, 0, roles, 3, &s, &im, &owned);
    if (rc == 0 && s.opt.spatial)
        rc = -1, response_error(resp, 422, "spatial: served by /v1/similarity, not by 2afc");
    if (rc == 0) {
        struct img *images[3] = {im.items[0].image, im.items[1].image, im.items[2].image};
        static const int pairs[4] = {0, 1, 0, 2};
        json_t *results[2] = {json_object(), json_object()}, *verdict = json_object();
        if (!results[0] || !results[1] || !verdict)
            response_no_memory(resp, NULL);
        else if (score_pairs(req, resp, &s, images, 3, pairs, 2, results) == 0) {
            const char *key;
            json_t *v;
            json_object_foreach(results[0], key, v)
            {
                double v1 = value_of(json_object_get(results[1], key));
                json_object_set_new(verdict, key, json_string(closer(key, value_of(v), v1)));
            }
            json_t *doc =
                json_pack("{s:O, s:O, s:O}", "p0", results[0], "p1", results[1], "closer", verdict);
            response_json(resp, 200, finish(&s, doc));
        }
        json_decref(results[0]);
        json_decref(results[1]);
        json_decref(verdict);
    }
    end(&s, &im, owned);
}
