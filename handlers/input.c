#include "input.h"

#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "core/parallel.h"
#include "core/parse.h"
#include "models.h"
#include "policy/policy.h"
#include "request.h"
#include "response.h"

json_t *input_json_body(const struct request *req, struct response *resp, const char *expected)
{
    if (!req->body || req->body_size == 0) {
        response_error(resp, 422, "send %s as the body", expected);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->body_size,
                             JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        response_error(resp, 400, "the body is not JSON: line %d, column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    return doc;
}

const char *input_param(const struct request *req, const char *name)
{
    const struct request_part *part = request_part(req, name);
    if (part && !part->filename) return (const char *)part->data;
    return request_query(req, name);
}

int input_seed(const struct request *req, struct response *resp, unsigned long long *seed)
{
    const char *text = input_param(req, "seed");
    if (text && parse_whole(text, 0, POLICY_MAX_SEED, seed) != 0) {
        response_error(resp, 422, "seed: must be a whole number in [0, %llu]", POLICY_MAX_SEED);
        return -1;
    }
    if (!text) {
        if (RAND_bytes((unsigned char *)seed, sizeof *seed) != 1) {
            response_error(resp, 500, "the random generator failed");
            return -1;
        }
        *seed &= POLICY_MAX_SEED;
    }
    return 0;
}

int input_policy(struct request *req, struct response *resp, struct policy **policy)
{
    const char *text = input_param(req, "policy");
    if (!text || !*text) {
        response_error(resp, 422,
                       "policy: missing; give a preset name (GET /v1/policies) or a "
                       "policy document");
        return -1;
    }
    struct eng_error err = {0};
    *policy = policy_cache_parse(req->app->policies, text, &err);
    if (!*policy) {
        input_policy_error(resp, &err);
        return -1;
    }
    return 0;
}

void input_policy_error(struct response *resp, const struct eng_error *err)
{
    if (err->code != ENG_INVALID) {
        response_engine_error(resp, err);
        return;
    }
    response_error_code(resp, 422, "invalid_policy", "%s%s", policy_error_prefix(err),
                        err->message);
}

int input_samples(const struct request *req, struct response *resp, unsigned long long *samples)
{
    const struct config *cfg = req->app->cfg;
    const char *text = input_param(req, "samples");
    *samples = 1;
    if (text && parse_whole(text, 1, (unsigned long long)cfg->max_samples, samples) != 0) {
        response_error(resp, 422, "samples: must be a whole number in [1, %d] (max_samples)",
                       cfg->max_samples);
        return -1;
    }
    return 0;
}

struct input_job input_job_at(size_t index, unsigned long long samples, int views)
{
    const size_t sample_index = index / (size_t)views;
    return (struct input_job){(uint32_t)(sample_index / samples),
                              (uint32_t)(sample_index % samples),
                              (uint32_t)(index % (size_t)views)};
}

/* 413 when amount passes the setting's value max: "<what> (about <amount> <unit>); <setting> is
 * <max>: <reduce>". */
static int within(struct response *resp, double amount, long long max, const char *what,
                  const char *unit, const char *setting, const char *reduce)
{
    if (amount <= (double)max) return 0;
    response_error(resp, 413, "%s (about %.4g %s); %s is %lld: %s", what, amount, unit, setting,
                   max, reduce);
    return -1;
}

int input_check_work(const struct request *req, struct response *resp, double work,
                     const char *reduce)
{
    return within(resp, work, (long long)req->app->cfg->max_work,
                  "the request asks for too much work", "op-pixels", "max_work", reduce);
}

int input_check_response(const struct request *req, struct response *resp, double bytes,
                         const char *reduce)
{
    return within(resp, bytes, (long long)req->app->cfg->max_response_bytes,
                  "the response would be too large", "bytes", "max_response_bytes", reduce);
}

/* An op-pixel of inference: oneDNN runs about a hundred FLOPs in the time an image op spends on a
 * pixel. */
#define FLOPS_PER_OP_PIXEL 100.0

int input_add_inference_work(struct response *resp, struct model *m,
                             const struct nn_tensor_info *shapes, double times, double *work)
{
    struct eng_error err = {0};
    double flops;
    if (model_flops(m, shapes, &flops, &err) != 0) return response_engine_error(resp, &err), -1;
    *work += times * flops / FLOPS_PER_OP_PIXEL;
    return 0;
}

int input_check_trace(const struct request *req, struct response *resp, const struct trace *t,
                      uint32_t input, double *work)
{
    const long long max = (long long)req->app->cfg->max_pixels;
    struct trace_cost c = trace_cost(t);
    if (c.peak > (double)max) {
        response_error(resp, 413,
                       "%s would make a %dx%d result (%.0f pixels) from input %u; max_pixels is "
                       "%lld",
                       c.peak_op, c.peak_width, c.peak_height, c.peak, (unsigned)input, max);
        return -1;
    }
    *work += c.work;
    return 0;
}

int input_run_jobs(struct request *req, struct response *resp, size_t jobs,
                   void (*run)(void *ctx, size_t j),
                   const struct eng_error *(*failure)(void *ctx, size_t j), void *ctx)
{
    /* Samples are independent: spread them over as many threads as workers. */
    parallel_for(jobs, req->app->workers, run, ctx);
    for (size_t j = 0; j < jobs; j++) {
        const struct eng_error *err = failure(ctx, j);
        if (err) {
            response_engine_error(resp, err);
            return -1;
        }
    }
    return 0;
}

char *input_base64(const void *data, size_t size)
{
    char *out = malloc(4 * ((size + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)size);
    return out;
}

/* Base64 (an optional "data:...;base64," prefix allowed) into *out (malloc'd). */
static int decode_base64(const char *text, unsigned char **out, size_t *size)
{
    const char *comma = strncmp(text, "data:", 5) == 0 ? strchr(text, ',') : NULL;
    if (comma) text = comma + 1;
    size_t len = strlen(text);
    *out = malloc(len / 4 * 3 + 3);
    int n = *out && len % 4 == 0 && len <= INT32_MAX
                ? EVP_DecodeBlock(*out, (const unsigned char *)text, (int)len)
                : -1;
    if (n < 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    /* EVP_DecodeBlock counts the padding's zero bytes. */
    n -= (len >= 1 && text[len - 1] == '=') + (len >= 2 && text[len - 2] == '=');
    *size = (size_t)n;
    return 0;
}

int input_json_image(const json_t *value, const char *what, struct response *resp,
                     struct input_image *item, unsigned char **owned)
{
    const char *text = json_string_value(value);
    if (!text) return response_error(resp, 422, "%s: must be a base64 string", what), -1;
    size_t size;
    if (decode_base64(text, owned, &size))
        return response_error(resp, 422, "%s: is not valid base64", what), -1;
    item->data = *owned;
    item->size = size;
    return 0;
}

int input_parts(const struct request *req, struct response *resp, const char *name,
                struct input_bytes *out, int max, int *count)
{
    *count = 0;
    for (size_t i = 0; i < req->part_count; i++) {
        if (strcmp(req->parts[i].name, name) != 0) continue;
        if (*count == max) {
            response_error(resp, 422, "more than max_inputs (%d) parts named %s", max, name);
            return -1;
        }
        out[*count].data = req->parts[i].data;
        out[*count].size = req->parts[i].size;
        (*count)++;
    }
    return 0;
}

int input_collect(const struct request *req, struct response *resp, const char *kind,
                  struct input_bytes *out, int max, int *count)
{
    *count = 0;
    size_t kind_len = strlen(kind);
    if (req->part_count > 0) {
        if (input_parts(req, resp, kind, out, max, count) != 0) return -1;
    } else if (req->body_size > 0) {
        const char *type = request_header(req, "Content-Type");
        if (type && !(strncasecmp(type, kind, kind_len) == 0 && type[kind_len] == '/') &&
            strncasecmp(type, "application/octet-stream", 24) != 0) {
            response_error(resp, 415, "Content-Type %s: send %s (%s/*) or multipart parts named %s",
                           type, kind, kind, kind);
            return -1;
        }
        out[0].data = req->body;
        out[0].size = req->body_size;
        *count = 1;
    }
    if (*count == 0) {
        response_error(resp, 422,
                       "no %s: send it as the body (Content-Type: %s/*) or as multipart parts "
                       "named %s",
                       kind, kind, kind);
        return -1;
    }
    return 0;
}

int input_collect_images(struct request *req, struct response *resp, struct input_image *images,
                         int max, int *count)
{
    struct input_bytes *bytes = calloc((size_t)max, sizeof *bytes);
    if (!bytes) {
        response_no_memory(resp, NULL);
        return -1;
    }
    int rc = input_collect(req, resp, "image", bytes, max, count);
    for (int i = 0; rc == 0 && i < *count; i++) {
        images[i].data = bytes[i].data;
        images[i].size = bytes[i].size;
    }
    free(bytes);
    return rc;
}

/* The error err as "prefix: message", keeping the engine's status. Returns -1. */
static int fail_prefixed(struct response *resp, const char *prefix, struct eng_error *err)
{
    char message[sizeof err->message + 64];
    snprintf(message, sizeof message, "%.60s: %s", prefix, err->message);
    memcpy(err->message, message, sizeof err->message - 1);
    err->message[sizeof err->message - 1] = '\0';
    response_engine_error(resp, err);
    return -1;
}

/* The error of input `what` number i, named so, keeping the engine's status. Returns -1. */
static int fail_named(struct response *resp, const char *what, int i, struct eng_error *err)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s %d", what, i);
    return fail_prefixed(resp, prefix, err);
}

/* Decoding many inputs at once: decode(items, i, err) decodes item i, 0 or -1 with err. */
struct decoding {
    int (*decode)(void *items, size_t i, struct eng_error *err);
    void *items;
    struct eng_error *errors;
};

static void decode_item(void *ctx, size_t i)
{
    struct decoding *d = ctx;
    /* The result decides, not err: a decoder may leave a note there from a path it recovered
     * from. */
    if (d->decode(d->items, i, &d->errors[i]) == 0) d->errors[i].code = ENG_OK;
}

/* Decodes count items in parallel on the app's workers; the first failure is answered with its
 * status, the input named ("what i: ..."). */
static int decode_all(struct request *req, struct response *resp, const char *what, int count,
                      int (*decode)(void *, size_t, struct eng_error *), void *items)
{
    struct decoding d = {decode, items, calloc((size_t)count + 1, sizeof *d.errors)};
    if (!d.errors) {
        response_no_memory(resp, NULL);
        return -1;
    }
    parallel_for((size_t)count, req->app->workers, decode_item, &d);
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++)
        if (d.errors[i].code != ENG_OK) rc = fail_named(resp, what, i, &d.errors[i]);
    free(d.errors);
    return rc;
}

int input_color(struct response *resp, const char *text, enum img_color *color)
{
    if (!text || img_color_from_name(text, color) == 0) return 0;
    response_error(resp, 422,
                   "color: must be keep (the pixel values as stored, as Pillow reads them) or srgb "
                   "(converted to sRGB from the image's ICC profile)");
    return -1;
}

struct image_decoding {
    struct input_image *images;
    const struct img_decode_options *opt;
};

static int decode_image(void *items, size_t i, struct eng_error *err)
{
    struct image_decoding *d = items;
    struct input_image *in = &d->images[i];
    in->image = img_decode(in->data, in->size, d->opt, &in->info, err);
    return in->image ? 0 : -1;
}

int input_decode_images(struct request *req, struct response *resp, struct input_image *images,
                        int count, enum img_color color)
{
    const struct config *cfg = req->app->cfg;
    const struct img_decode_options opt = {(uint64_t)cfg->max_pixels, cfg->max_dimension, color};
    struct image_decoding d = {images, &opt};
    return decode_all(req, resp, "image", count, decode_image, &d);
}

void input_free_images(struct input_image *images, int count)
{
    for (int i = 0; i < count; i++) {
        img_free(images[i].image);
        img_info_clear(&images[i].info);
    }
}

/* ---- Audio ---------------------------------------------------------------------------------- */

struct clip_decoding {
    struct input_clip *clips;
    const struct audio_decode_options *opt;
};

static int decode_clip(void *items, size_t i, struct eng_error *err)
{
    struct clip_decoding *d = items;
    struct input_clip *c = &d->clips[i];
    c->clip = audio_decode(c->bytes.data, c->bytes.size, d->opt, &c->info, err);
    return c->clip ? 0 : -1;
}

int input_decode_clips(struct request *req, struct response *resp, const char *what,
                       struct input_clip *clips, int count, const struct audio_decode_options *opt)
{
    struct clip_decoding d = {clips, opt};
    return decode_all(req, resp, what, count, decode_clip, &d);
}

void input_free_clips(struct input_clip *clips, int count)
{
    for (int i = 0; i < count; i++)
        audio_free(clips[i].clip);
}

/* ---- Detection targets ---------------------------------------------------------------------- */

/* The pixels all masks of one image may hold at once, in multiples of max_pixels. */
#define TARGET_MASK_BUDGET 16

/* What one input's targets arrive as, before they are checked against its image. */
struct target_parts {
    const json_t *boxes, *labels, *keypoints; /* borrowed from the document; NULL when absent */
    enum box_format format;
    struct img **masks;
    size_t mask_count;
};

static void target_parts_free(struct target_parts *p)
{
    for (size_t i = 0; p->masks && i < p->mask_count; i++)
        img_free(p->masks[i]);
    free(p->masks);
}

/* Whether part `name` holds one of the input's masks. */
static int is_mask_of(const char *name, const struct input_target_names *names)
{
    return strcmp(name, names->masks) == 0 || (names->alias && strcmp(name, names->alias) == 0);
}

static int request_has_masks(const struct request *req)
{
    for (size_t i = 0; i < req->part_count; i++)
        if (strncmp(req->parts[i].name, "mask", 4) == 0) return 1;
    return 0;
}

/* The document's keys and types; 422 naming the input. */
static int read_target_doc(struct response *resp, const json_t *doc,
                           const struct input_target_names *names, struct target_parts *p)
{
    const char *key, *what = names->targets;
    const char *keys = names->keypoints ? "boxes, box_format, labels and keypoints"
                                        : "boxes, box_format and labels";
    json_t *value;
    p->format = BOX_PASCAL_VOC;
    if (!doc) return 0;
    if (!json_is_object(doc)) return response_error(resp, 422, "%s: must be an object", what), -1;
    json_object_foreach((json_t *)doc, key, value)
    {
        if (strcmp(key, "boxes") && strcmp(key, "box_format") && strcmp(key, "labels") &&
            (strcmp(key, "keypoints") || !names->keypoints))
            return response_error(resp, 422, "%s: unknown key %s; use %s", what, key, keys), -1;
    }
    p->boxes = json_object_get(doc, "boxes");
    p->labels = json_object_get(doc, "labels");
    p->keypoints = json_object_get(doc, "keypoints");
    const json_t *format = json_object_get(doc, "box_format");
    if ((p->boxes && !json_is_array(p->boxes)) || (p->labels && !json_is_array(p->labels)) ||
        (p->keypoints && !json_is_array(p->keypoints)) ||
        (format && targets_box_format_from_name(json_string_value(format), &p->format) != 0)) {
        response_error(resp, 422,
                       "%s: boxes, labels and keypoints must be arrays, box_format coco, "
                       "pascal_voc, yolo or albumentations",
                       what);
        return -1;
    }
    return 0;
}

/* Decodes a mask part as an 8-bit greyscale image within the image limits: an instance mask or
 * a label map, so its values are kept. */
static struct img *decode_target_mask(const struct request *req, const struct request_part *part,
                                      struct eng_error *err)
{
    const struct config *cfg = req->app->cfg;
    const struct img_decode_options opt = {(uint64_t)cfg->max_pixels, cfg->max_dimension,
                                           IMG_COLOR_KEEP};
    struct img *mask = img_decode(part->data, part->size, &opt, NULL, err);
    if (mask && mask->channels != 1) {
        eng_fail(err, ENG_INVALID, "has %d channels; send 8-bit greyscale PNG", mask->channels);
        img_free(mask);
        return NULL;
    }
    return mask;
}

/* Masks come back as 0 / 255, whatever nonzero value marked the object. */
static void binarise(struct img *mask)
{
    for (int y = 0; y < mask->height; y++)
        for (int x = 0; x < mask->width; x++)
            img_row(mask, y)[x] = img_row(mask, y)[x] ? 255 : 0;
}

/* The input's mask parts, decoded in order; 422 past max_targets. */
static int read_target_masks(const struct request *req, struct response *resp,
                             const struct input_target_names *names, size_t max,
                             struct target_parts *p)
{
    size_t count = 0;
    for (size_t k = 0; k < req->part_count; k++)
        count += is_mask_of(req->parts[k].name, names);
    if (count > max)
        return response_error(resp, 422, "%s: %zu masks; max_targets is %zu", names->masks, count,
                              max),
               -1;
    if (!(p->masks = calloc(count + 1, sizeof *p->masks)))
        return response_no_memory(resp, NULL), -1;
    for (size_t k = 0; k < req->part_count; k++) {
        if (!is_mask_of(req->parts[k].name, names)) continue;
        struct eng_error err = {0};
        if (!(p->masks[p->mask_count] = decode_target_mask(req, &req->parts[k], &err))) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "%s[%zu]", names->masks, p->mask_count);
            return fail_prefixed(resp, prefix, &err);
        }
        p->mask_count++;
    }
    return 0;
}

/* A label map becomes one mask per label (as many as labels, else its largest value). */
static int split_target_label_map(struct response *resp, const struct input_target_names *names,
                                  size_t max, struct target_parts *p)
{
    if (p->mask_count == 0) return 0;
    if (p->mask_count > 1)
        return response_error(resp, 422, "%s: mask_type=labels takes one label map", names->masks),
               -1;
    const struct img *map = p->masks[0];
    size_t count = p->labels ? json_array_size(p->labels) : 0;
    for (int y = 0; !p->labels && y < map->height; y++)
        for (int x = 0; x < map->width; x++)
            count = img_row(map, y)[x] > count ? img_row(map, y)[x] : count;
    if (count > max)
        return response_error(resp, 422, "%s: %zu labels; max_targets is %zu", names->masks, count,
                              max),
               -1;
    struct eng_error err = {0};
    struct img **masks = calloc(count + 1, sizeof *masks);
    if (!masks) return response_no_memory(resp, NULL), -1;
    if (targets_masks_from_label_map(map, (int)count, masks, &err) != 0) {
        free(masks);
        return fail_prefixed(resp, names->masks, &err);
    }
    target_parts_free(p);
    p->masks = masks;
    p->mask_count = count;
    return 0;
}

/* The counts agree and fit max_targets and the masks' memory budget. */
static int check_target_counts(const struct request *req, struct response *resp,
                               const struct img *image, const struct input_target_names *names,
                               const struct target_parts *p, size_t *objects)
{
    const size_t max = (size_t)req->app->cfg->max_targets;
    const size_t boxes = p->boxes ? json_array_size(p->boxes) : p->mask_count;
    const size_t labels = p->labels ? json_array_size(p->labels) : boxes;
    const size_t keypoints = p->keypoints ? json_array_size(p->keypoints) : 0;
    if (boxes > max || keypoints > max)
        return response_error(resp, 422, "%s: %zu objects and %zu keypoints; max_targets is %zu",
                              names->targets, boxes, keypoints, max),
               -1;
    if ((p->mask_count && p->boxes && p->mask_count != boxes) || labels != boxes)
        return response_error(resp, 422, "%s: %zu boxes, %zu masks and %zu labels disagree",
                              names->targets, boxes, p->mask_count, labels),
               -1;
    uint64_t area = (uint64_t)image->width * (uint64_t)image->height;
    if (area < names->mask_area) area = names->mask_area;
    if (p->mask_count * area > TARGET_MASK_BUDGET * (uint64_t)req->app->cfg->max_pixels)
        return response_error(resp, 413, "%s: %zu masks of %dx%d are past %d x max_pixels",
                              names->masks, p->mask_count, image->width, image->height,
                              TARGET_MASK_BUDGET),
               -1;
    *objects = boxes;
    return 0;
}

/* A JSON array's first n numbers into v (NaN for what is not a number: the engine names it); its
 * length, 0 for what is no array. */
static size_t json_numbers(const json_t *array, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(array, i);
        v[i] = json_is_number(x) ? json_number_value(x) : NAN;
    }
    return json_is_array(array) ? json_array_size(array) : 0;
}

/* Builds the set from the parts (masks taken over); ENG_* errors name the index. */
static struct targets *build_target_set(const struct img *image, struct target_parts *p,
                                        size_t objects, struct eng_error *err)
{
    const size_t keypoints = p->keypoints ? json_array_size(p->keypoints) : 0;
    struct targets *t = targets_new(image->width, image->height, objects, keypoints, err);
    for (size_t k = 0; t && k < objects; k++) {
        struct img *mask = p->mask_count ? p->masks[k] : NULL;
        double v[4];
        if (mask) p->masks[k] = NULL, binarise(mask);
        const int rc = p->boxes ? targets_add(t, v, json_numbers(json_array_get(p->boxes, k), v, 4),
                                              p->format, (int)k, mask, (int)k, err)
                                : targets_add_mask(t, mask, (int)k, (int)k, err);
        if (rc != 0) goto fail;
    }
    for (size_t k = 0; t && k < keypoints; k++) {
        double xy[2];
        if (json_numbers(json_array_get(p->keypoints, k), xy, 2) != 2) {
            eng_fail(err, ENG_INVALID, "keypoints[%zu]: must be [x, y] in pixels", k);
            goto fail;
        }
        if (targets_add_keypoint(t, xy[0], xy[1], (int)k, (int)k, err) != 0) goto fail;
    }
    return t;
fail:
    targets_free(t);
    return NULL;
}

int input_targets_read_one(struct request *req, struct response *resp, const struct img *image,
                           const json_t *doc, const struct input_target_names *names,
                           int label_maps, struct input_targets *out)
{
    const size_t max = (size_t)req->app->cfg->max_targets;
    struct target_parts p = {0};
    size_t objects = 0;
    int rc = -1;
    if (read_target_doc(resp, doc, names, &p) == 0 &&
        read_target_masks(req, resp, names, max, &p) == 0 &&
        (!label_maps || split_target_label_map(resp, names, max, &p) == 0) &&
        check_target_counts(req, resp, image, names, &p, &objects) == 0) {
        struct eng_error err = {0};
        out->format = p.format;
        out->labels = p.labels ? json_incref((json_t *)p.labels) : NULL;
        out->targets = build_target_set(image, &p, objects, &err);
        rc = out->targets ? 0 : fail_prefixed(resp, names->targets, &err);
    }
    target_parts_free(&p);
    return rc;
}

int input_mask_type(const struct request *req, struct response *resp, int *label_maps)
{
    const char *type = input_param(req, "mask_type");
    *label_maps = type && strcmp(type, "labels") == 0;
    if (type && !*label_maps && strcmp(type, "instances") != 0)
        return response_error(resp, 422, "mask_type: must be instances or labels"), -1;
    return 0;
}

/* Input i of /v1/augment: the targets field's document i, parts mask_<i> (mask for input 0). */
static int read_input_targets(struct request *req, struct response *resp, const struct img *image,
                              const json_t *doc, int i, int label_maps, struct input_targets *out)
{
    char what[32], masks[32];
    snprintf(what, sizeof what, "targets: image %d", i);
    snprintf(masks, sizeof masks, "mask_%d", i);
    const struct input_target_names names = {what, masks, i == 0 ? "mask" : NULL, 1, 0};
    return input_targets_read_one(req, resp, image, doc, &names, label_maps, out);
}

int input_targets_read(struct request *req, struct response *resp, const struct input_image *images,
                       int count, struct input_targets *out)
{
    const char *text = input_param(req, "targets");
    int label_maps;
    if (!text && !request_has_masks(req)) return 0;
    if (input_mask_type(req, resp, &label_maps) != 0) return -1;
    json_error_t jerr;
    json_t *doc = text ? json_loads(text, 0, &jerr) : NULL;
    if (text && !doc) return response_error(resp, 422, "targets: not JSON (%s)", jerr.text), -1;
    int rc = 0;
    if (json_is_array(doc) && json_array_size(doc) != (size_t)count) {
        response_error(resp, 422, "targets: %zu documents for %d images", json_array_size(doc),
                       count);
        rc = -1;
    }
    for (int i = 0; i < count && rc == 0; i++) {
        const json_t *mine = json_is_array(doc) ? json_array_get(doc, (size_t)i) : doc;
        if (!json_is_array(doc) && i > 0) mine = NULL;
        rc = read_input_targets(req, resp, images[i].image, mine, i, label_maps, &out[i]);
    }
    json_decref(doc);
    return rc;
}

void input_targets_free(struct input_targets *t, int count)
{
    for (int i = 0; t && i < count; i++) {
        json_decref(t[i].labels);
        targets_free(t[i].targets);
    }
}

int input_targets_filter(const struct request *req, struct response *resp,
                         struct targets_filter *filter)
{
    static const char *const names[] = {"min_area", "min_visibility", "min_width", "min_height"};
    double *const fields[] = {&filter->min_area, &filter->min_visibility, &filter->min_width,
                              &filter->min_height};
    *filter = (struct targets_filter){0};
    for (int i = 0; i < 4; i++) {
        const char *text = input_param(req, names[i]);
        const double max = i == 1 ? 1 : 1e12;
        if (text && parse_real(text, 0, max, fields[i]) != PARSE_OK)
            return response_error(resp, 422, "%s: must be a number in [0, %g]", names[i], max), -1;
    }
    return 0;
}

json_t *input_image_base64(const struct img *im, enum img_format fmt, int quality,
                           const struct img_profile *icc, struct eng_error *err)
{
    void *bytes = NULL;
    size_t size = 0;
    if (img_encode(im, fmt, quality, icc, &bytes, &size, err) != 0) return NULL;
    char *text = input_base64(bytes, size);
    free(bytes);
    json_t *s = text ? json_string(text) : NULL;
    free(text);
    if (!s) eng_fail(err, ENG_NO_MEMORY, "out of memory for the response");
    return s;
}

/* Object id of input `input` into o: "index" and "label", or for a pasted object (a negative id,
 * policy.h) its origin's, with "input". o is NULL when memory ran out. */
static json_t *with_identity(json_t *o, const struct input_targets *all, uint32_t input, int id,
                             const struct policy_origins *origins)
{
    if (o && id < 0 && origins && (size_t)(-1 - (long)id) < origins->count) {
        const struct policy_origin *from = &origins->items[-1 - (long)id];
        input = from->input;
        id = from->id;
        json_object_set_new(o, "input", json_integer((json_int_t)input));
    }
    if (o) json_object_set_new(o, "index", json_integer(id));
    if (o && all[input].labels)
        json_object_set(o, "label", json_array_get(all[input].labels, (size_t)id));
    return o;
}

static json_t *object_json(const struct input_targets *all, uint32_t input, const struct targets *t,
                           size_t i, const struct policy_origins *origins, struct eng_error *err)
{
    double v[4];
    targets_box_to(&t->boxes[i], all[input].format, t->width, t->height, v);
    json_t *o = with_identity(json_object(), all, input, t->ids[i], origins);
    if (o) json_object_set_new(o, "box", json_pack("[f, f, f, f]", v[0], v[1], v[2], v[3]));
    if (o && t->masks) {
        json_t *mask = input_image_base64(t->masks[i], IMG_PNG, 90, NULL, err);
        if (!mask) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "mask", mask);
    }
    return o;
}

json_t *input_targets_json(const struct input_targets *all, uint32_t input, const struct targets *t,
                           const struct policy_origins *origins, struct eng_error *err)
{
    json_t *objects = json_array(), *dropped = json_array(), *keypoints = json_array();
    json_t *doc =
        json_pack("{s:s, s:o, s:o, s:o}", "box_format", targets_box_format_name(all[input].format),
                  "objects", objects, "dropped", dropped, "keypoints", keypoints);
    if (!doc) return eng_fail(err, ENG_NO_MEMORY, "out of memory for targets"), NULL;
    for (size_t i = 0; i < t->count; i++) {
        json_t *o = object_json(all, input, t, i, origins, err);
        if (!o) {
            json_decref(doc);
            return NULL;
        }
        json_array_append_new(objects, o);
    }
    for (size_t i = 0; i < t->dropped_count; i++) {
        json_t *d = with_identity(json_object(), all, input, t->dropped[i].id, origins);
        if (d)
            json_object_set_new(d, "reason",
                                json_string(targets_drop_reason_name(t->dropped[i].reason)));
        json_array_append_new(dropped, d);
    }
    for (size_t i = 0; i < t->keypoint_count; i++) {
        const struct target_keypoint *k = &t->keypoints[i];
        json_array_append_new(keypoints,
                              json_pack("{s:i, s:f, s:f, s:b}", "index", t->keypoint_ids[i], "x",
                                        k->x, "y", k->y, "visible", k->visible));
    }
    return doc;
}
