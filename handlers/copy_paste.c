/* POST /v1/augment/copy-paste: two images with instance masks; b's objects are pasted onto a
 * (engine/copy_paste.h). Multipart parts: image_a, image_b; mask_a, mask_b (PNG, one part per
 * object in order, or one label map each with mask_type=labels); targets_a, targets_b (JSON:
 * boxes, box_format, labels); fields jitter, flip_p, blend_sigma, min_area, seed, format,
 * quality. */
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "codec.h"
#include "copy_paste.h"
#include "handlers.h"
#include "input.h"
#include "request.h"
#include "response.h"

/* One side of the request: an image with its targets. */
struct side {
    const char *name; /* "a" or "b" */
    json_t *doc;      /* targets_x, or NULL */
    json_t *boxes;    /* borrowed from doc; NULL when absent */
    json_t *labels;   /* likewise */
    enum box_format format;
    struct img **masks;
    size_t mask_count;
    struct targets *targets;
};

/* The pixels all masks of one image may hold, in multiples of max_pixels. */
#define MASK_BUDGET 16

struct options {
    struct copy_paste_params params;
    unsigned long long seed, quality;
    const char *format; /* "same" or a format name */
    int label_maps;     /* mask_type=labels */
};

/* Sets err's message to "prefix: message", keeping its code. */
static void prefix_error(struct eng_error *err, const char *prefix)
{
    char message[sizeof err->message + 64];
    snprintf(message, sizeof message, "%s: %s", prefix, err->message);
    memcpy(err->message, message, sizeof err->message - 1);
    err->message[sizeof err->message - 1] = '\0';
}

/* ---- Parameters ---------------------------------------------------------------------------- */

/* The whole of text as a finite number in [lo, hi]: 0, or -1. */
static int parse_real(const char *text, double lo, double hi, double *out)
{
    char *end;
    if (!text || !*text) return -1;
    const double v = strtod(text, &end);
    if (*end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* jitter: "ssj", "lsj" or a JSON range [lo, hi]. */
static int read_jitter(const char *text, struct copy_paste_params *p)
{
    if (!text || strcmp(text, "lsj") == 0) {
        p->scale_lo = COPY_PASTE_LSJ_LO, p->scale_hi = COPY_PASTE_LSJ_HI;
        return 0;
    }
    if (strcmp(text, "ssj") == 0) {
        p->scale_lo = COPY_PASTE_SSJ_LO, p->scale_hi = COPY_PASTE_SSJ_HI;
        return 0;
    }
    json_t *range = json_loads(text, JSON_DECODE_ANY, NULL);
    const int ok = json_is_array(range) && json_array_size(range) == 2 &&
                   json_is_number(json_array_get(range, 0)) &&
                   json_is_number(json_array_get(range, 1));
    if (ok) {
        p->scale_lo = json_number_value(json_array_get(range, 0));
        p->scale_hi = json_number_value(json_array_get(range, 1));
    }
    json_decref(range);
    return ok ? 0 : -1;
}

static int read_options(struct request *req, struct response *resp, struct options *o)
{
    struct copy_paste_params *p = &o->params;
    /* torchvision's LSJ preset pads with the ImageNet mean. */
    /* Twice the side of an image within max_pixels (LSJ's largest scale) is four times it. */
    const uint64_t max_pixels = (uint64_t)req->app->cfg->max_pixels;
    *p = (struct copy_paste_params){
        .hflip_prob = 0.5, .fill = {123, 117, 104, 255}, .max_pixels = 4 * max_pixels};
    const char *text;
    unsigned long long min_area = 0;
    if (read_jitter(input_param(req, "jitter"), p) != 0) {
        response_error(resp, 422, "jitter: must be ssj, lsj or a range [lo, hi]");
        return -1;
    }
    if ((text = input_param(req, "flip_p")) && parse_real(text, 0, 1, &p->hflip_prob) != 0) {
        response_error(resp, 422, "flip_p: must be a number in [0, 1]");
        return -1;
    }
    if ((text = input_param(req, "blend_sigma")) && parse_real(text, 0, 50, &p->blend_sigma)) {
        response_error(resp, 422, "blend_sigma: must be a number in [0, 50] (0: hard edges)");
        return -1;
    }
    if ((text = input_param(req, "min_area")) &&
        input_parse_whole(text, 0, 1000000000, &min_area) != 0) {
        response_error(resp, 422, "min_area: must be a whole number of pixels");
        return -1;
    }
    p->min_area = (long)min_area;
    o->quality = 90;
    if ((text = input_param(req, "quality")) && input_parse_whole(text, 1, 100, &o->quality)) {
        response_error(resp, 422, "quality: must be a whole number in [1, 100]");
        return -1;
    }
    enum img_format fmt;
    o->format = input_param(req, "format");
    if (!o->format) o->format = "same";
    if (strcmp(o->format, "same") != 0 && img_format_from_name(o->format, &fmt) != 0) {
        response_error(resp, 422, "format: must be jpeg, png, webp or same");
        return -1;
    }
    text = input_param(req, "mask_type");
    o->label_maps = text && strcmp(text, "labels") == 0;
    if (text && !o->label_maps && strcmp(text, "instances") != 0) {
        response_error(resp, 422, "mask_type: must be instances or labels");
        return -1;
    }
    return input_seed(req, resp, &o->seed);
}

/* ---- Inputs -------------------------------------------------------------------------------- */

/* The one file part called name into *image. */
static int collect_image(struct request *req, struct response *resp, const char *name,
                         struct input_image *image)
{
    int found = 0;
    for (size_t i = 0; i < req->part_count; i++) {
        if (strcmp(req->parts[i].name, name) != 0) continue;
        image->data = req->parts[i].data;
        image->size = req->parts[i].size;
        found++;
    }
    if (found != 1) {
        response_error(resp, 422, "%s: send exactly one image part named %s (got %d)", name, name,
                       found);
        return -1;
    }
    return 0;
}

/* targets_x: {"boxes": [[4 numbers], ...], "box_format": name, "labels": [any, ...]}. */
static int read_targets_doc(struct request *req, struct response *resp, struct side *s)
{
    char field[16];
    snprintf(field, sizeof field, "targets_%s", s->name);
    s->format = BOX_PASCAL_VOC;
    const char *text = input_param(req, field);
    if (!text) return 0;
    json_error_t jerr;
    s->doc = json_loads(text, 0, &jerr);
    if (!json_is_object(s->doc)) {
        response_error(resp, 422, "%s: not a JSON object (%s)", field, jerr.text);
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach(s->doc, key, value)
    {
        if (strcmp(key, "boxes") && strcmp(key, "labels") && strcmp(key, "box_format")) {
            response_error(resp, 422, "%s: unknown key; use boxes, box_format and labels", field);
            return -1;
        }
    }
    s->boxes = json_object_get(s->doc, "boxes");
    s->labels = json_object_get(s->doc, "labels");
    json_t *format = json_object_get(s->doc, "box_format");
    if ((s->boxes && !json_is_array(s->boxes)) || (s->labels && !json_is_array(s->labels)) ||
        (format && targets_box_format_from_name(json_string_value(format), &s->format) != 0)) {
        response_error(resp, 422,
                       "%s: boxes and labels must be arrays, box_format coco, pascal_voc, yolo "
                       "or albumentations",
                       field);
        return -1;
    }
    return 0;
}

/* Decodes mask part data as a 1-channel image against the image limits. */
static struct img *decode_mask(struct request *req, const struct request_part *part,
                               struct eng_error *err)
{
    const struct config *cfg = req->app->cfg;
    const struct img_limits limits = {(uint64_t)cfg->max_pixels, cfg->max_dimension};
    struct img *mask = img_decode(part->data, part->size, &limits, NULL, err);
    if (mask && mask->channels != 1) {
        eng_fail(err, ENG_INVALID, "has %d channels; send 8-bit greyscale PNG", mask->channels);
        img_free(mask);
        return NULL;
    }
    return mask;
}

/* The mask_x parts, decoded in order. */
static int read_masks(struct request *req, struct response *resp, struct side *s)
{
    char field[16];
    snprintf(field, sizeof field, "mask_%s", s->name);
    size_t count = 0;
    for (size_t i = 0; i < req->part_count; i++)
        count += strcmp(req->parts[i].name, field) == 0;
    const size_t max = (size_t)req->app->cfg->max_targets;
    if (count > max) {
        response_error(resp, 422, "%s: %zu masks; max_targets is %zu", field, count, max);
        return -1;
    }
    s->masks = calloc(count + 1, sizeof *s->masks);
    if (!s->masks) {
        response_error(resp, 503, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < req->part_count; i++) {
        if (strcmp(req->parts[i].name, field) != 0) continue;
        struct eng_error err = {0};
        if (!(s->masks[s->mask_count] = decode_mask(req, &req->parts[i], &err))) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "%s[%zu]", field, s->mask_count);
            prefix_error(&err, prefix);
            response_engine_error(resp, &err);
            return -1;
        }
        s->mask_count++;
    }
    return 0;
}

/* The largest value of a label map. */
static int max_label(const struct img *map)
{
    int max = 0;
    for (int y = 0; y < map->height; y++)
        for (int x = 0; x < map->width; x++)
            max = img_row(map, y)[x] > max ? img_row(map, y)[x] : max;
    return max;
}

/* A label map becomes its instance masks: as many as labels, else its largest value. */
static int split_label_map(struct response *resp, struct side *s, size_t max_targets)
{
    if (s->mask_count == 0) return 0;
    if (s->mask_count > 1) {
        response_error(resp, 422, "mask_%s: mask_type=labels takes one label map", s->name);
        return -1;
    }
    struct img *map = s->masks[0];
    const size_t count = s->labels ? json_array_size(s->labels) : (size_t)max_label(map);
    if (count > max_targets) {
        response_error(resp, 422, "targets_%s: %zu labels; max_targets is %zu", s->name, count,
                       max_targets);
        return -1;
    }
    struct eng_error err = {0};
    struct img **masks = calloc(count + 1, sizeof *masks);
    if (!masks) eng_fail(&err, ENG_NO_MEMORY, "out of memory");
    if (!masks || targets_masks_from_label_map(map, (int)count, masks, &err) != 0) {
        free(masks);
        char field[16];
        snprintf(field, sizeof field, "mask_%s", s->name);
        prefix_error(&err, field);
        response_engine_error(resp, &err);
        return -1;
    }
    img_free(map);
    free(s->masks);
    s->masks = masks;
    s->mask_count = count;
    return 0;
}

/* Masks come back as 0 / 255 whatever nonzero value marked the object. */
static void binarise(struct img *mask)
{
    for (int y = 0; y < mask->height; y++) {
        uint8_t *row = img_row(mask, y);
        for (int x = 0; x < mask->width; x++)
            row[x] = row[x] ? 255 : 0;
    }
}

/* A JSON box's length, its first four values in v (NaN for what is not a number: the engine
 * names it); 0 for what is no array. */
static size_t box_values(json_t *box, double v[4])
{
    for (size_t i = 0; i < 4; i++) {
        json_t *x = json_array_get(box, i);
        v[i] = json_is_number(x) ? json_number_value(x) : NAN;
    }
    return json_is_array(box) ? json_array_size(box) : 0;
}

/* The side's targets from its masks (taken over) and boxes. */
static int build_targets(struct response *resp, const struct img *image, struct side *s,
                         size_t max_targets, uint64_t max_pixels, uint64_t out_area)
{
    const size_t n = s->mask_count;
    const size_t boxes = s->boxes ? json_array_size(s->boxes) : n;
    const size_t labels = s->labels ? json_array_size(s->labels) : n;
    if (boxes > max_targets || labels > max_targets) {
        response_error(resp, 422, "targets_%s: more than max_targets (%zu) objects", s->name,
                       max_targets);
        return -1;
    }
    if (boxes != n || labels != n) {
        response_error(resp, 422, "targets_%s: %zu boxes and %zu labels for %zu masks (mask_%s)",
                       s->name, boxes, labels, n, s->name);
        return -1;
    }
    /* Masks are dense: bound what they hold at once, here and at the output's size. */
    uint64_t area = (uint64_t)image->width * (uint64_t)image->height;
    if (area < out_area) area = out_area;
    if (n * area > MASK_BUDGET * max_pixels) {
        response_error(resp, 413, "mask_%s: %zu masks of %dx%d are past %d x max_pixels pixels",
                       s->name, n, image->width, image->height, MASK_BUDGET);
        return -1;
    }
    struct eng_error err = {0};
    s->targets = targets_new(image->width, image->height, n, 0, &err);
    for (size_t i = 0; s->targets && i < n; i++) {
        double v[4];
        struct img *mask = s->masks[i];
        s->masks[i] = NULL;
        binarise(mask);
        const int rc = s->boxes
                           ? targets_add(s->targets, v, box_values(json_array_get(s->boxes, i), v),
                                         s->format, (int)i, mask, (int)i, &err)
                           : targets_add_mask(s->targets, mask, (int)i, (int)i, &err);
        if (rc != 0) break;
    }
    if (err.code == ENG_OK) return 0;
    char prefix[16];
    snprintf(prefix, sizeof prefix, "image_%s", s->name);
    prefix_error(&err, prefix);
    response_engine_error(resp, &err);
    return -1;
}

static void side_free(struct side *s)
{
    for (size_t i = 0; s->masks && i < s->mask_count; i++)
        img_free(s->masks[i]);
    free(s->masks);
    targets_free(s->targets);
    json_decref(s->doc);
}

/* ---- Output -------------------------------------------------------------------------------- */

static char *base64(const void *data, size_t size)
{
    char *out = malloc(4 * ((size + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)size);
    return out;
}

/* im encoded as fmt, in base64 (NULL with err). */
static json_t *encoded(const struct img *im, enum img_format fmt, int quality,
                       struct eng_error *err)
{
    void *bytes = NULL;
    size_t size = 0;
    if (img_encode(im, fmt, quality, &bytes, &size, err) != 0) return NULL;
    char *text = base64(bytes, size);
    free(bytes);
    json_t *s = text ? json_string(text) : NULL;
    free(text);
    if (!s) eng_fail(err, ENG_NO_MEMORY, "out of memory for the response");
    return s;
}

static json_t *jitter_json(const struct copy_paste_jitter *j)
{
    return json_pack("{s:f, s:i, s:i, s:i, s:i, s:b}", "scale", j->scale, "width", j->width,
                     "height", j->height, "top", j->top, "left", j->left, "flipped", j->flipped);
}

/* One output object: where it came from, its label, box, area and mask. */
static json_t *object_json(const struct copy_paste_result *r, size_t i, const struct side *sides,
                           enum box_format fmt, struct eng_error *err)
{
    const struct targets *t = r->targets;
    const struct side *s = &sides[r->from_src[i]];
    double v[4];
    targets_box_to(&t->boxes[i], fmt, t->width, t->height, v);
    json_t *mask = encoded(t->masks[i], IMG_PNG, 90, err);
    if (!mask) return NULL;
    json_t *o = json_pack("{s:s, s:i, s:[f, f, f, f], s:I, s:o}", "source", s->name, "index",
                          t->ids[i], "box", v[0], v[1], v[2], v[3], "area",
                          (json_int_t)targets_mask_area(t->masks[i]), "mask", mask);
    if (o && s->labels) json_object_set(o, "label", json_array_get(s->labels, t->ids[i]));
    return o;
}

static json_t *dropped_json(const struct copy_paste_result *r, const struct side *sides)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < r->targets->dropped_count; i++) {
        const struct target_drop *d = &r->targets->dropped[i];
        json_array_append_new(list, json_pack("{s:s, s:i, s:s}", "source",
                                              sides[r->dropped_from_src[i]].name, "index", d->id,
                                              "reason", targets_drop_reason_name(d->reason)));
    }
    return list;
}

/* The response document, or NULL with err. */
static json_t *result_json(const struct copy_paste_result *r, const struct side *sides,
                           const struct options *o, const struct img_info *info,
                           struct eng_error *err)
{
    /* "same": image a's format when we can write it, else PNG (lossless). */
    enum img_format fmt = IMG_PNG;
    if (img_format_from_name(strcmp(o->format, "same") ? o->format : info->format, &fmt) != 0)
        fmt = IMG_PNG;
    /* Boxes go back in a's format, else b's. */
    const enum box_format box_fmt = sides[0].doc ? sides[0].format : sides[1].format;
    json_t *data = encoded(r->image, fmt, (int)o->quality, err);
    json_t *objects = json_array();
    for (size_t i = 0; data && objects && i < r->targets->count; i++) {
        json_t *obj = object_json(r, i, sides, box_fmt, err);
        if (!obj) break;
        json_array_append_new(objects, obj);
    }
    if (!data || !objects || json_array_size(objects) != r->targets->count) {
        json_decref(data);
        json_decref(objects);
        return NULL;
    }
    return json_pack("{s:I, s:s, s:i, s:i, s:o, s:s, s:o, s:o, s:{s:o, s:o}}", "seed",
                     (json_int_t)o->seed, "content_type", img_format_mime(fmt), "width",
                     r->image->width, "height", r->image->height, "data", data, "box_format",
                     targets_box_format_name(box_fmt), "objects", objects, "dropped",
                     dropped_json(r, sides), "jitter", "a", jitter_json(&r->jitter[0]), "b",
                     jitter_json(&r->jitter[1]));
}

/* ---- The handler --------------------------------------------------------------------------- */

/* Everything a side needs before the engine runs; out is the output's size (image a). */
static int read_side(struct request *req, struct response *resp, struct side *s,
                     const struct img *image, const struct img *out, int label_maps)
{
    const struct config *cfg = req->app->cfg;
    const size_t max_targets = (size_t)cfg->max_targets;
    if (read_targets_doc(req, resp, s) != 0 || read_masks(req, resp, s) != 0) return -1;
    if (label_maps && split_label_map(resp, s, max_targets) != 0) return -1;
    return build_targets(resp, image, s, max_targets, (uint64_t)cfg->max_pixels,
                         (uint64_t)out->width * (uint64_t)out->height);
}

void handle_copy_paste(struct request *req, struct response *resp)
{
    struct input_image images[2] = {{0}};
    struct side sides[2] = {{.name = "a"}, {.name = "b"}};
    struct options o = {0};
    struct copy_paste_result r = {0};
    struct eng_error err = {0};
    if (collect_image(req, resp, "image_a", &images[0]) != 0 ||
        collect_image(req, resp, "image_b", &images[1]) != 0 || read_options(req, resp, &o) != 0 ||
        input_decode_images(req, resp, images, 2) != 0 ||
        read_side(req, resp, &sides[0], images[0].image, images[0].image, o.label_maps) != 0 ||
        read_side(req, resp, &sides[1], images[1].image, images[0].image, o.label_maps) != 0)
        goto done;
    struct rng rng;
    rng_init(&rng, o.seed, 0, 0, RNG_STREAM_POLICY);
    if (copy_paste(images[0].image, sides[0].targets, images[1].image, sides[1].targets, &o.params,
                   &rng, &r, &err) != 0) {
        response_engine_error(resp, &err);
        goto done;
    }
    json_t *doc = result_json(&r, sides, &o, &images[0].info, &err);
    if (doc)
        response_json(resp, 200, doc);
    else
        response_engine_error(resp, &err);
done:
    copy_paste_result_free(&r);
    side_free(&sides[0]);
    side_free(&sides[1]);
    input_free_images(images, 2);
}
