/* POST /v1/augment/copy-paste: two images with instance masks; b's objects are pasted onto a
 * (engine/image/copy_paste.h). Multipart parts: image_a, image_b; mask_a, mask_b (PNG, one part per
 * object in order, or one label map each with mask_type=labels); targets_a, targets_b (JSON:
 * boxes, box_format, labels); fields jitter, flip_p, blend_sigma, min_area, seed, format,
 * quality, color. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/parse.h"
#include "handlers.h"
#include "image/codec.h"
#include "image/copy_paste.h"
#include "input.h"
#include "request.h"
#include "response.h"

/* One side of the request: an image's targets. */
struct side {
    const char *name; /* "a" or "b" */
    json_t *doc;      /* targets_x, or NULL */
    struct input_targets targets;
};

struct options {
    struct copy_paste_params params;
    unsigned long long seed, quality;
    const char *format; /* "same" or a format name */
    int label_maps;     /* mask_type=labels */
    enum img_color color;
};

/* ---- Parameters ---------------------------------------------------------------------------- */

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
    if ((text = input_param(req, "blend_sigma")) &&
        parse_real(text, 0, COPY_PASTE_MAX_BLEND_SIGMA, &p->blend_sigma)) {
        response_error(resp, 422, "blend_sigma: must be a number in [0, 50] (0: hard edges)");
        return -1;
    }
    if ((text = input_param(req, "min_area")) && parse_whole(text, 0, 1000000000, &min_area) != 0) {
        response_error(resp, 422, "min_area: must be a whole number of pixels");
        return -1;
    }
    p->min_area = (long)min_area;
    o->quality = 90;
    if ((text = input_param(req, "quality")) && parse_whole(text, 1, 100, &o->quality)) {
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
    if (input_color(resp, input_param(req, "color"), &o->color) != 0) return -1;
    return input_mask_type(req, resp, &o->label_maps) != 0 ? -1 : input_seed(req, resp, &o->seed);
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

/* targets_x and mask_x: the shared reader's, but for their names; b's masks are jittered to the
 * output's size out, so the masks' budget counts them at that size too. */
static int read_side(struct request *req, struct response *resp, struct side *s,
                     const struct img *image, const struct img *out, int label_maps)
{
    char field[16], masks[16];
    snprintf(field, sizeof field, "targets_%s", s->name);
    snprintf(masks, sizeof masks, "mask_%s", s->name);
    const char *text = input_param(req, field);
    json_error_t jerr;
    if (text && !(s->doc = json_loads(text, 0, &jerr))) {
        response_error(resp, 422, "%s: not a JSON object (%s)", field, jerr.text);
        return -1;
    }
    const struct input_target_names names = {field, masks, NULL, 0,
                                             (uint64_t)out->width * (uint64_t)out->height};
    return input_targets_read_one(req, resp, image, s->doc, &names, label_maps, &s->targets);
}

static void side_free(struct side *s)
{
    input_targets_free(&s->targets, 1);
    json_decref(s->doc);
}

/* ---- Output -------------------------------------------------------------------------------- */

/* One output object: where it came from, its label, box, area and mask. */
static json_t *object_json(const struct copy_paste_result *r, size_t i, const struct side *sides,
                           enum box_format fmt, struct eng_error *err)
{
    const struct targets *t = r->targets;
    const struct side *s = &sides[r->from_src[i]];
    double v[4];
    targets_box_to(&t->boxes[i], fmt, t->width, t->height, v);
    json_t *mask = input_image_base64(t->masks[i], IMG_PNG, 90, NULL, err);
    if (!mask) return NULL;
    json_t *o = json_pack("{s:s, s:i, s:[f, f, f, f], s:I, s:o}", "source", s->name, "index",
                          t->ids[i], "box", v[0], v[1], v[2], v[3], "area",
                          (json_int_t)targets_mask_area(t->masks[i]), "mask", mask);
    if (o && s->targets.labels)
        json_object_set(o, "label", json_array_get(s->targets.labels, (size_t)t->ids[i]));
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
    const enum box_format box_fmt =
        sides[0].doc ? sides[0].targets.format : sides[1].targets.format;
    /* The result is image a's pixels with b's pasted in as stored: it carries a's profile. */
    json_t *data = input_image_base64(r->image, fmt, (int)o->quality, &info->icc, err);
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
                     dropped_json(r, sides), "jitter", "a", copy_paste_jitter_json(&r->jitter[0]),
                     "b", copy_paste_jitter_json(&r->jitter[1]));
}

/* ---- The handler --------------------------------------------------------------------------- */

void handle_copy_paste(struct request *req, struct response *resp)
{
    struct input_image images[2] = {{0}};
    struct side sides[2] = {{.name = "a"}, {.name = "b"}};
    struct options o = {0};
    struct copy_paste_result r = {0};
    struct eng_error err = {0};
    if (collect_image(req, resp, "image_a", &images[0]) != 0 ||
        collect_image(req, resp, "image_b", &images[1]) != 0 || read_options(req, resp, &o) != 0 ||
        input_decode_images(req, resp, images, 2, o.color) != 0 ||
        read_side(req, resp, &sides[0], images[0].image, images[0].image, o.label_maps) != 0 ||
        read_side(req, resp, &sides[1], images[1].image, images[0].image, o.label_maps) != 0)
        goto done;
    struct rng rng;
    rng_init(&rng, o.seed, 0, 0, RNG_STREAM_POLICY);
    if (copy_paste(images[0].image, sides[0].targets.targets, images[1].image,
                   sides[1].targets.targets, &o.params, &rng, &r, &err) != 0) {
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
