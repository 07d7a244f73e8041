/* POST /v1/augment: decode each input, sample the policy per (input, sample),
 * apply, encode. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "codec.h"
#include "handlers.h"
#include "input.h"
#include "parallel.h"
#include "policy.h"
#include "request.h"
#include "response.h"

static char *base64(const void *data, size_t size)
{
    char *out = malloc(4 * ((size + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)size);
    return out;
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
    const char *text = input_param(req, "policy");
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
    if (input_seed(req, resp, &o->seed) != 0) return -1;
    const char *samples = input_param(req, "samples");
    o->samples = 1;
    if (samples &&
        input_parse_whole(samples, 1, (unsigned long long)cfg->max_samples, &o->samples)) {
        response_error(resp, 422, "samples: must be a whole number in [1, %d] (max_samples)",
                       cfg->max_samples);
        return -1;
    }
    const char *quality = input_param(req, "quality");
    o->quality = 90;
    if (quality && input_parse_whole(quality, 1, 100, &o->quality) != 0) {
        response_error(resp, 422, "quality: must be a whole number in [1, 100]");
        return -1;
    }
    o->format = input_param(req, "format");
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
    struct input_image *inputs;
    int views;                     /* outputs per sample (AugMix's JSD mode: 3) */
    struct sample_result *results; /* [(input * samples + sample) * views + view] */
};

/* Sample, apply, encode. */
static void run_sample(void *ctx, size_t index)
{
    struct batch *b = ctx;
    const struct options *o = b->o;
    uint32_t view = (uint32_t)(index % (size_t)b->views);
    size_t sample_index = index / (size_t)b->views;
    uint32_t input = (uint32_t)(sample_index / o->samples);
    uint32_t sample = (uint32_t)(sample_index % o->samples);
    const struct input_image *in = &b->inputs[input];
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
    struct input_image *inputs = calloc((size_t)cfg->max_inputs, sizeof *inputs);
    int count = 0;
    json_t *results = NULL;
    struct batch b = {.o = &o, .inputs = inputs};
    size_t jobs = 0;
    if (!inputs) {
        response_error(resp, 503, "out of memory");
        return;
    }
    if (input_collect_images(req, resp, inputs, cfg->max_inputs, &count) != 0) goto done;
    if (read_options(req, resp, &o) != 0) goto done;
    b.views = policy_view_count(o.policy);
    jobs = (size_t)count * o.samples * (size_t)b.views;
    b.results = calloc(jobs, sizeof *b.results);
    if (!b.results) {
        response_error(resp, 503, "out of memory");
        goto done;
    }
    if (input_decode_images(req, resp, inputs, count) != 0) goto done;
    /* Samples are independent: spread them over as many threads as workers. */
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
    input_free_images(inputs, count);
    free(inputs);
    policy_free(o.policy);
}
