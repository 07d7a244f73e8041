/* POST /v1/augment: decode each input, sample the policy per (input, sample),
 * apply, encode. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "core/parse.h"
#include "handlers.h"
#include "image/codec.h"
#include "input.h"
#include "json_text.h"
#include "policy/policy.h"
#include "request.h"
#include "response.h"

struct options {
    struct policy *policy;
    unsigned long long seed;
    unsigned long long samples;
    unsigned long long quality;
    const char *format; /* "same" or a format name */
    enum img_color color;
};

static int read_options(struct request *req, struct response *resp, struct options *o)
{
    if (input_policy(req, resp, &o->policy) != 0 || input_seed(req, resp, &o->seed) != 0 ||
        input_samples(req, resp, &o->samples) != 0 ||
        input_color(resp, input_param(req, "color"), &o->color) != 0)
        return -1;
    const char *quality = input_param(req, "quality");
    o->quality = 90;
    if (quality && parse_whole(quality, 1, 100, &o->quality) != 0) {
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

/* One sample of one input: its trace, sampled first, then its output, produced on any thread. */
struct sample_result {
    struct trace *sampled;
    void *encoded;
    size_t encoded_size;
    json_t *trace;
    json_t *targets; /* the sample's moved targets, or NULL */
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
    struct input_targets *targets; /* per input; NULL when the request has none */
    struct targets_filter filter;
    /* The images and targets as posted, which CopyPaste pastes from; images and sets hold its
     * arrays. */
    struct policy_inputs all;
    const struct img **images;
    const struct targets **sets;
};

/* The trace on the input's pixels, and on a copy of its targets when it has some. */
static struct img *apply_trace(const struct batch *b, const struct trace *t, uint32_t input,
                               uint32_t sample, struct sample_result *r)
{
    const struct options *o = b->o;
    const struct input_targets *given = b->targets ? &b->targets[input] : NULL;
    if (!given || !given->targets)
        return trace_apply(t, b->inputs[input].image, o->seed, input, sample, &r->err);
    struct policy_origins origins = {0};
    struct targets *moved = targets_clone(given->targets, &r->err);
    struct img *out = moved ? trace_apply_inputs(t, &b->all, input, moved, &b->filter, &origins,
                                                 o->seed, sample, &r->err)
                            : NULL;
    if (out && !(r->targets = input_targets_json(b->targets, input, moved, &origins, &r->err))) {
        img_free(out);
        out = NULL;
    }
    targets_free(moved);
    policy_origins_free(&origins);
    return out;
}

/* Samples every job's trace before any pixel is touched, and refuses the request when one of them
 * would make an image past max_pixels or all of them together ask for more than max_work. */
static int sample_traces(struct request *req, struct response *resp, struct batch *b, size_t jobs)
{
    const struct options *o = b->o;
    double work = 0;
    for (size_t j = 0; j < jobs; j++) {
        const struct input_job job = input_job_at(j, o->samples, b->views);
        const struct img *in = b->inputs[job.input].image;
        struct sample_result *r = &b->results[j];
        r->sampled = policy_sample_inputs(o->policy, o->seed, &b->all, job.input, job.sample,
                                          job.view, &r->err);
        if (!r->sampled) return response_engine_error(resp, &r->err), -1;
        if (input_check_trace(req, resp, r->sampled, job.input, &work) != 0) return -1;
        work += (double)in->width * in->height; /* the encoding, about one op's worth */
    }
    return input_check_work(req, resp, work,
                            "send fewer or smaller images, ask for fewer samples, or use a policy "
                            "with fewer ops");
}

/* Apply the sampled trace, encode. */
static void run_sample(void *ctx, size_t index)
{
    struct batch *b = ctx;
    const struct options *o = b->o;
    const struct input_job job = input_job_at(index, o->samples, b->views);
    const struct input_image *in = &b->inputs[job.input];
    struct sample_result *r = &b->results[index];
    struct img *out = apply_trace(b, r->sampled, job.input, job.sample, r);
    r->format = output_format(o, &in->info);
    r->trace = trace_to_json(r->sampled);
    /* The output is in the input's colour space: it carries the input's profile, if any. */
    r->failed = !out || img_encode(out, r->format, (int)o->quality, &in->info.icc, &r->encoded,
                                   &r->encoded_size, &r->err) != 0;
    if (out) {
        r->width = out->width;
        r->height = out->height;
    }
    img_free(out);
}

/* Sample index's error, or NULL when it succeeded. */
static const struct eng_error *sample_failure(void *ctx, size_t index)
{
    const struct batch *b = ctx;
    return b->results[index].failed ? &b->results[index].err : NULL;
}

/* The inputs' targets and filters, when the request has any; the policy must be able to move
 * them. */
static int read_targets(struct request *req, struct response *resp, struct batch *b, int count)
{
    struct eng_error err = {0};
    int any = 0;
    if (!(b->targets = calloc((size_t)count, sizeof *b->targets)))
        return response_no_memory(resp, NULL), -1;
    if (input_targets_read(req, resp, b->inputs, count, b->targets) != 0 ||
        input_targets_filter(req, resp, &b->filter) != 0)
        return -1;
    for (int i = 0; i < count; i++)
        any |= b->targets[i].targets != NULL;
    if (any && policy_maps_targets(b->o->policy, &err) != 0) {
        response_error_code(resp, 422, "invalid_policy", "policy: %s", err.message);
        return -1;
    }
    if (!any) {
        free(b->targets);
        b->targets = NULL;
    }
    return 0;
}

/* b->all from the decoded inputs and their targets. */
static int gather_inputs(struct response *resp, struct batch *b, int count)
{
    b->images = calloc((size_t)count, sizeof *b->images);
    b->sets = calloc((size_t)count, sizeof *b->sets);
    if (!b->images || !b->sets) return response_no_memory(resp, NULL), -1;
    for (int i = 0; i < count; i++) {
        b->images[i] = b->inputs[i].image;
        b->sets[i] = b->targets ? b->targets[i].targets : NULL;
    }
    b->all = (struct policy_inputs){(uint32_t)count, b->images, b->targets ? b->sets : NULL};
    return 0;
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
        response_no_memory(resp, NULL);
        return;
    }
    if (input_collect_images(req, resp, inputs, cfg->max_inputs, &count) != 0) goto done;
    if (read_options(req, resp, &o) != 0) goto done;
    b.views = policy_view_count(o.policy);
    jobs = (size_t)count * o.samples * (size_t)b.views;
    b.results = calloc(jobs, sizeof *b.results);
    if (!b.results) {
        response_no_memory(resp, NULL);
        goto done;
    }
    if (input_decode_images(req, resp, inputs, count, o.color) != 0 ||
        read_targets(req, resp, &b, count) != 0 || gather_inputs(resp, &b, count) != 0)
        goto done;
    if (sample_traces(req, resp, &b, jobs) != 0 ||
        input_run_jobs(req, resp, jobs, run_sample, sample_failure, &b) != 0)
        goto done;
    /* Targets only travel in JSON. */
    if (count == 1 && o.samples == 1 && b.views == 1 && !b.targets && wants_image(req)) {
        struct sample_result *r = &b.results[0];
        char *trace_text = json_text(r->trace, JSON_COMPACT | JSON_ENSURE_ASCII);
        response_bytes(resp, 200, img_format_mime(r->format), r->encoded, r->encoded_size);
        r->encoded = NULL;
        response_header(resp, "X-Augment-Seed", "%llu", o.seed);
        if (trace_text) response_header(resp, "X-Augment-Trace", "%s", trace_text);
        free(trace_text);
        goto done;
    }
    double bytes = 0;
    for (size_t j = 0; j < jobs; j++)
        bytes += 4.0 * ((double)b.results[j].encoded_size + 2) / 3 + 256;
    if (input_check_response(req, resp, bytes,
                             "ask for fewer inputs or samples, smaller images, or a lossy format "
                             "at a lower quality") != 0)
        goto done;
    results = json_array();
    for (size_t j = 0; j < jobs && results; j++) {
        struct sample_result *r = &b.results[j];
        char *data = input_base64(r->encoded, r->encoded_size);
        const struct input_job job = input_job_at(j, o.samples, b.views);
        json_t *item =
            json_pack("{s:i, s:i, s:s, s:i, s:i, s:s*, s:O}", "input", (int)job.input, "sample",
                      (int)job.sample, "content_type", img_format_mime(r->format), "width",
                      r->width, "height", r->height, "data", data, "trace", r->trace);
        if (item && r->targets) json_object_set(item, "targets", r->targets);
        if (item && b.views > 1) json_object_set_new(item, "view", json_integer(job.view));
        json_array_append_new(results, item);
        free(data);
    }
    response_json(resp, 200,
                  json_pack("{s:I, s:o}", "seed", (json_int_t)o.seed, "results", results));
    results = NULL;
done:
    json_decref(results);
    for (size_t j = 0; b.results && j < jobs; j++) {
        trace_free(b.results[j].sampled);
        free(b.results[j].encoded);
        json_decref(b.results[j].trace);
        json_decref(b.results[j].targets);
    }
    input_targets_free(b.targets, count);
    free(b.targets);
    free(b.images);
    free(b.sets);
    free(b.results);
    input_free_images(inputs, count);
    free(inputs);
    policy_free(o.policy);
}
