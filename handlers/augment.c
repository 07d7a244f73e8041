/* POST /v1/augment: decode each input, sample the policy per (input, sample), apply, encode. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "codec.h"
#include "parallel.h"
#include "handlers.h"
#include "policy.h"
#include "request.h"
#include "response.h"

struct input {
    const unsigned char *data;
    size_t size;
    struct img *image;
    struct img_info info;
};

/* A request parameter: a multipart form field, else a query parameter. */
static const char *param(const struct request *req, const char *name)
{
    const struct request_part *part = request_part(req, name);
    if (part && !part->filename) return (const char *)part->data;
    return request_query(req, name);
}

/* Parses a whole decimal number in [min, max]. */
static int parse_whole(const char *text, unsigned long long min, unsigned long long max,
                       unsigned long long *out)
{
    if (!text || *text < '0' || *text > '9') return -1;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static char *base64(const void *data, size_t size)
{
    char *out = malloc(4 * ((size + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)size);
    return out;
}

/* Collects the images: multipart parts named "image", or the raw body. */
static int collect_inputs(struct request *req, struct response *resp, struct input *inputs,
                          int max_inputs, int *count)
{
    *count = 0;
    if (req->part_count > 0) {
        for (size_t i = 0; i < req->part_count; i++) {
            if (strcmp(req->parts[i].name, "image") != 0) continue;
            if (*count == max_inputs) {
                response_error(resp, 422, "more than max_inputs (%d) images", max_inputs);
                return -1;
            }
            inputs[*count].data = req->parts[i].data;
            inputs[*count].size = req->parts[i].size;
            (*count)++;
        }
    } else if (req->body_size > 0) {
        const char *type = request_header(req, "Content-Type");
        if (type && strncasecmp(type, "image/", 6) != 0 &&
            strncasecmp(type, "application/octet-stream", 24) != 0) {
            response_error(resp, 415,
                           "Content-Type %s: send an image (image/*) or multipart "
                           "parts named image",
                           type);
            return -1;
        }
        inputs[0].data = req->body;
        inputs[0].size = req->body_size;
        *count = 1;
    }
    if (*count == 0) {
        response_error(resp, 422,
                       "no image: send it as the body (Content-Type: image/*) or as "
                       "multipart parts named image");
        return -1;
    }
    return 0;
}

struct options {
    struct policy *policy;
    unsigned long long seed;
    unsigned long long samples;
    unsigned long long quality;
    const char *format; /* "same" or a format name */
};

static int read_options(struct request *req, struct response *resp, struct options *o)
{
    const struct config *cfg = req->app->cfg;
    const char *text = param(req, "policy");
    if (!text || !*text) {
        response_error(resp, 422,
                       "policy: missing; give a preset name (GET /v1/policies) or a "
                       "policy document");
        return -1;
    }
    struct eng_error err = {0};
    o->policy = policy_cache_parse(req->app->policies, text, &err);
    if (!o->policy) {
        response_error_code(resp, 422, "invalid_policy", "policy%s", err.message);
        return -1;
    }
    const char *seed = param(req, "seed");
    if (seed && parse_whole(seed, 0, POLICY_MAX_SEED, &o->seed) != 0) {
        response_error(resp, 422, "seed: must be a whole number in [0, %llu]", POLICY_MAX_SEED);
        return -1;
    }
    if (!seed) {
        if (RAND_bytes((unsigned char *)&o->seed, sizeof o->seed) != 1) {
            response_error(resp, 500, "the random generator failed");
            return -1;
        }
        o->seed &= POLICY_MAX_SEED;
    }
    const char *samples = param(req, "samples");
    o->samples = 1;
    if (samples && parse_whole(samples, 1, (unsigned long long)cfg->max_samples, &o->samples)) {
        response_error(resp, 422, "samples: must be a whole number in [1, %d] (max_samples)",
                       cfg->max_samples);
        return -1;
    }
    const char *quality = param(req, "quality");
    o->quality = 90;
    if (quality && parse_whole(quality, 1, 100, &o->quality) != 0) {
        response_error(resp, 422, "quality: must be a whole number in [1, 100]");
        return -1;
    }
    o->format = param(req, "format");
    enum img_format fmt;
    if (!o->format) o->format = "same";
    if (strcmp(o->format, "same") != 0 && img_format_from_name(o->format, &fmt) != 0) {
        response_error(resp, 422, "format: must be jpeg, png, webp or same");
        return -1;
    }
    return 0;
}

/* "same": the input's own format when we can write it, else PNG (lossless). */
static enum img_format output_format(const struct options *o, const struct img_info *info)
{
    enum img_format fmt = IMG_PNG;
    if (strcmp(o->format, "same") != 0)
        img_format_from_name(o->format, &fmt);
    else if (img_format_from_name(info->format, &fmt) != 0)
        fmt = IMG_PNG;
    return fmt;
}

/* One sample of one input, produced on any thread. */
struct sample_result {
    void *encoded;
    size_t encoded_size;
    json_t *trace;
    int width, height;
    enum img_format format;
    int failed;
    struct eng_error err;
};

struct batch {
    const struct options *o;
    struct input *inputs;
    const struct img_limits *limits;
    int views;                     /* outputs per sample (AugMix's JSD mode: 3) */
    struct sample_result *results; /* [(input * samples + sample) * views + view] */
    struct eng_error *decode_errors;
};

static void decode_input(void *ctx, size_t i)
{
    struct batch *b = ctx;
    struct input *in = &b->inputs[i];
    in->image = img_decode(in->data, in->size, b->limits, &in->info, &b->decode_errors[i]);
}

/* Sample, apply, encode. */
static void run_sample(void *ctx, size_t index)
{
    struct batch *b = ctx;
    const struct options *o = b->o;
    uint32_t view = (uint32_t)(index % (size_t)b->views);
    size_t sample_index = index / (size_t)b->views;
    uint32_t input = (uint32_t)(sample_index / o->samples);
    uint32_t sample = (uint32_t)(sample_index % o->samples);
    const struct input *in = &b->inputs[input];
    struct sample_result *r = &b->results[index];
    struct trace *t = policy_sample_view(o->policy, o->seed, input, sample, view, in->image->width,
                                         in->image->height, &r->err);
    struct img *out = t ? trace_apply(t, in->image, o->seed, input, sample, &r->err) : NULL;
    r->format = output_format(o, &in->info);
    if (t) r->trace = trace_to_json(t);
    trace_free(t);
    r->failed = !out || img_encode(out, r->format, (int)o->quality, &r->encoded, &r->encoded_size,
                                   &r->err) != 0;
    if (out) {
        r->width = out->width;
        r->height = out->height;
    }
    img_free(out);
}

static int wants_image(const struct request *req)
{
    const char *accept = request_header(req, "Accept");
    return accept && strncasecmp(accept, "image/", 6) == 0;
}

void handle_augment(struct request *req, struct response *resp)
{
    const struct config *cfg = req->app->cfg;
    struct options o = {0};
    struct input *inputs = calloc((size_t)cfg->max_inputs, sizeof *inputs);
    int count = 0;
    json_t *results = NULL;
    struct img_limits limits = {(uint64_t)cfg->max_pixels, cfg->max_dimension};
    struct batch b = {.o = &o, .inputs = inputs, .limits = &limits};
    size_t jobs = 0;
    if (!inputs) {
        response_error(resp, 503, "out of memory");
        return;
    }
    if (collect_inputs(req, resp, inputs, cfg->max_inputs, &count) != 0) goto done;
    if (read_options(req, resp, &o) != 0) goto done;
    b.views = policy_view_count(o.policy);
    jobs = (size_t)count * o.samples * (size_t)b.views;
    b.results = calloc(jobs, sizeof *b.results);
    b.decode_errors = calloc((size_t)count, sizeof *b.decode_errors);
    if (!b.results || !b.decode_errors) {
        response_error(resp, 503, "out of memory");
        goto done;
    }
    /* Inputs and samples are independent: spread them over as many threads as workers. */
    parallel_for((size_t)count, req->app->workers, decode_input, &b);
    for (int i = 0; i < count; i++) {
        if (inputs[i].image) continue;
        /* Name the input, keeping the engine's status. */
        struct eng_error *err = &b.decode_errors[i];
        char message[sizeof err->message + 32];
        snprintf(message, sizeof message, "image %d: %s", i, err->message);
        memcpy(err->message, message, sizeof err->message - 1);
        err->message[sizeof err->message - 1] = '\0';
        response_engine_error(resp, err);
        goto done;
    }
    parallel_for(jobs, req->app->workers, run_sample, &b);
    for (size_t j = 0; j < jobs; j++)
        if (b.results[j].failed) {
            response_engine_error(resp, &b.results[j].err);
            goto done;
        }
    if (count == 1 && o.samples == 1 && b.views == 1 && wants_image(req)) {
        struct sample_result *r = &b.results[0];
        char *trace_text = json_dumps(r->trace, JSON_COMPACT | JSON_ENSURE_ASCII);
        response_bytes(resp, 200, img_format_mime(r->format), r->encoded, r->encoded_size);
        r->encoded = NULL;
        response_header(resp, "X-Augment-Seed", "%llu", o.seed);
        if (trace_text) response_header(resp, "X-Augment-Trace", "%s", trace_text);
        free(trace_text);
        goto done;
    }
    results = json_array();
    for (size_t j = 0; j < jobs && results; j++) {
        struct sample_result *r = &b.results[j];
        char *data = base64(r->encoded, r->encoded_size);
        size_t sample_index = j / (size_t)b.views;
        json_t *item = json_pack(
            "{s:i, s:i, s:s, s:i, s:i, s:s*, s:O}", "input", (int)(sample_index / o.samples),
            "sample", (int)(sample_index % o.samples), "content_type", img_format_mime(r->format),
            "width", r->width, "height", r->height, "data", data, "trace", r->trace);
        if (item && b.views > 1)
            json_object_set_new(item, "view", json_integer((json_int_t)(j % (size_t)b.views)));
        json_array_append_new(results, item);
        free(data);
    }
    response_json(resp, 200,
                  json_pack("{s:I, s:o}", "seed", (json_int_t)o.seed, "results", results));
    results = NULL;
done:
    json_decref(results);
    for (size_t j = 0; b.results && j < jobs; j++) {
        free(b.results[j].encoded);
        json_decref(b.results[j].trace);
    }
    free(b.results);
    free(b.decode_errors);
    for (int i = 0; i < count; i++)
        img_free(inputs[i].image);
    free(inputs);
    policy_free(o.policy);
}
