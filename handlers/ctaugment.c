/* /v1/ctaugment: CTAugment states a client keeps on the server (ReMixMatch's, as FixMatch's
 * libml/ctaugment.py): made, drawn from (augment: strong views with their policies; probe: views
 * with every argument uniform), taught by the client's feedback on probes, shown, listed and
 * deleted. The algorithm is the engine's (policy/policy.h's CTAugment section), the records the
 * store's (ctaugment_store.h), whose update is the one read-modify-write of a state. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "ctaugment_store.h"
#include "handlers.h"
#include "input.h"
#include "jobs.h"
#include "json_text.h"
#include "log.h"
#include "policy/policy.h"
#include "request.h"
#include "response.h"

/* A record as the API shows it: {"id", "owner", "created", "updated", "revision"}, and with full
 * set the state ({"depth", "decay", "threshold", "rates"}) and each bin's probability of being
 * drawn, in the shape of the rates. NULL with err. */
static json_t *record_document(const struct ctaugment_record *r, int full, struct eng_error *err)
{
    char created[40], updated[40];
    log_format_time_ms(r->created_ms, created, sizeof created);
    log_format_time_ms(r->updated_ms, updated, sizeof updated);
    json_t *doc = json_pack("{s:s, s:o, s:s, s:s, s:I}", "id", r->id, "owner",
                            r->owner ? json_string_lossy(r->owner) : json_null(), "created",
                            created, "updated", updated, "revision", (json_int_t)r->revision);
    if (doc && full) {
        struct ctaug *c = ctaug_from_json(r->state, err);
        if (!c) {
            json_decref(doc);
            return NULL;
        }
        json_t *probabilities = ctaug_probabilities_to_json(c);
        ctaug_free(c);
        if (json_object_set(doc, "state", r->state) ||
            json_object_set_new(doc, "probabilities", probabilities)) {
            json_decref(doc);
            doc = NULL;
        }
    }
    if (!doc) eng_no_memory(err);
    return doc;
}

static void respond_record(struct response *resp, int status, const struct ctaugment_record *r)
{
    struct eng_error err;
    json_t *doc = record_document(r, 1, &err);
    if (doc)
        response_json(resp, status, doc);
    else
        response_engine_error(resp, &err);
}

/* ---- POST /v1/ctaugment ---------------------------------------------------------------------- */

/* The settings of a create's body (absent or empty: the reference's) into *s: 0, or -1 with the
 * answer written. */
static int read_settings(struct request *req, struct response *resp, struct ctaug_settings *s)
{
    static const char *const members[] = {"depth", "decay", "threshold", NULL};
    *s = CTAUG_DEFAULTS;
    if (!req->body || req->body_size == 0) return 0;
    json_t *body = input_json_body(req, resp, "{\"depth\", \"decay\", \"threshold\"}");
    if (!body) return -1;
    struct eng_error err;
    const json_t *depth = json_object_get(body, "depth");
    const json_t *decay = json_object_get(body, "decay");
    const json_t *threshold = json_object_get(body, "threshold");
    int rc = -1;
    if (!json_is_object(body))
        response_error(resp, 422,
                       "the body must be an object: {\"depth\", \"decay\", "
                       "\"threshold\"}, each optional");
    else if (json_check_members(body, members, "", "member", &err) != 0)
        response_engine_error(resp, &err);
    else if (depth && !json_is_integer(depth))
        response_error(resp, 422, "depth: an integer in 1..%d is required", CTAUG_MAX_DEPTH);
    else if ((decay && !json_is_number(decay)) || (threshold && !json_is_number(threshold)))
        response_error(resp, 422, "%s: a number is required",
                       decay && !json_is_number(decay) ? "decay" : "threshold");
    else
        rc = 0;
    if (rc == 0) {
        const json_int_t d = depth ? json_integer_value(depth) : s->depth;
        if (d < 1 || d > CTAUG_MAX_DEPTH) {
            response_error(resp, 422, "depth: %lld is not in 1..%d", (long long)d, CTAUG_MAX_DEPTH);
            rc = -1;
        }
        s->depth = (int)d;
        if (decay) s->decay = json_number_value(decay);
        if (threshold) s->threshold = json_number_value(threshold);
    }
    json_decref(body);
    return rc;
}

void handle_ctaugment_create(struct request *req, struct response *resp)
{
    struct ctaug_settings s;
    if (read_settings(req, resp, &s) != 0) return;
    struct eng_error err;
    struct ctaug *c = ctaug_new(&s, &err);
    if (!c) {
        /* "ctaugment decay: 1 is not in (0, 1)": the member is the word after "ctaugment ". */
        response_error(resp, response_status_for(err.code), "%s",
                       strncmp(err.message, "ctaugment ", 10) ? err.message : err.message + 10);
        return;
    }
    struct ctaugment_record r = {.state = ctaug_to_json(c), .owner = (char *)req->key_name}, made;
    ctaug_free(c);
    if (!r.state) {
        response_no_memory(resp, NULL);
        return;
    }
    if (jobs_new_id(r.id, &err) != 0 || ctaugment_store_create(req->app->storage, &r, &err) != 0 ||
        ctaugment_store_get(req->app->storage, r.id, &made, &err) != 0) {
        response_engine_error(resp, &err);
    } else {
        response_header(resp, "Location", "/v1/ctaugment/%s", made.id);
        respond_record(resp, 201, &made);
        ctaugment_record_clear(&made);
    }
    json_decref(r.state);
}

/* ---- GET, DELETE /v1/ctaugment[/{id}] -------------------------------------------------------- */

static int list_item(const struct ctaugment_record *r, void *ctx, struct eng_error *err)
{
    json_t *item = record_document(r, 0, err);
    return item && json_array_append_new(ctx, item) == 0 ? 0 : eng_no_memory(err);
}

void handle_ctaugment_list(struct request *req, struct response *resp)
{
    json_t *list = json_array();
    struct eng_error err;
    if (!list) {
        response_no_memory(resp, NULL);
    } else if (ctaugment_store_each(req->app->storage, list_item, list, &err) != 0) {
        json_decref(list);
        response_engine_error(resp, &err);
    } else {
        response_json(resp, 200, json_pack("{s:o}", "states", list));
    }
}

void handle_ctaugment_get(struct request *req, struct response *resp)
{
    struct ctaugment_record r;
    struct eng_error err;
    if (ctaugment_store_get(req->app->storage, request_param(req, "id"), &r, &err) != 0) {
        response_engine_error(resp, &err);
        return;
    }
    respond_record(resp, 200, &r);
    ctaugment_record_clear(&r);
}

void handle_ctaugment_delete(struct request *req, struct response *resp)
{
    struct eng_error err;
    if (ctaugment_store_delete(req->app->storage, request_param(req, "id"), &err) != 0)
        response_engine_error(resp, &err);
    else
        response_text(resp, 204, NULL, "", 0); /* no body, so no Content-Type */
}

/* ---- POST /v1/ctaugment/{id}/augment and /probe ---------------------------------------------- */

/* One view of one input: its policy, drawn first, then its pixels, on any thread. */
struct view {
    struct ctaug_policy policy;
    void *png;
    size_t png_size;
    int width, height;
    int failed;
    struct eng_error err;
};

struct draws {
    const struct ctaug *state;
    const struct input_image *inputs;
    unsigned long long seed, samples;
    int probe; /* probe views: uniform arguments and no Cutout; else strong views, with it */
    struct view *views;
};

static void run_view(void *ctx, size_t index)
{
    struct draws *d = ctx;
    const struct input_job job = input_job_at(index, d->samples, 1);
    struct view *v = &d->views[index];
    struct img *out = ctaug_apply(&v->policy, d->inputs[job.input].image, !d->probe, d->seed,
                                  job.input, job.sample, &v->err);
    v->failed = !out || img_encode(out, IMG_PNG, 90, &d->inputs[job.input].info.icc, &v->png,
                                   &v->png_size, &v->err) != 0;
    if (out) {
        v->width = out->width;
        v->height = out->height;
    }
    img_free(out);
}

static const struct eng_error *view_failure(void *ctx, size_t index)
{
    const struct draws *d = ctx;
    return d->views[index].failed ? &d->views[index].err : NULL;
}

/* The images: multipart parts "image" or the raw body, as /v1/augment takes them, or a JSON body
 * {"images": ["<base64>", ...]}, whose decoded bytes *owned holds (count of them, to free). */
static int collect_images(struct request *req, struct response *resp, struct input_image *inputs,
                          int max, int *count, unsigned char ***owned)
{
    const char *type = request_header(req, "Content-Type");
    *count = 0;
    if (req->part_count > 0 || !type || strncasecmp(type, "application/json", 16) != 0)
        return input_collect_images(req, resp, inputs, max, count);
    static const char *const members[] = {"images", NULL};
    json_t *body = input_json_body(req, resp, "{\"images\": [\"<base64>\", ...]}");
    if (!body) return -1;
    const json_t *images = json_object_get(body, "images");
    struct eng_error err;
    int rc = -1;
    if (json_is_object(body) && json_check_members(body, members, "", "member", &err) != 0)
        response_engine_error(resp, &err);
    else if (!json_is_array(images) || json_array_size(images) < 1 ||
             json_array_size(images) > (size_t)max)
        response_error(resp, 422, "images: an array of 1 to max_inputs (%d) base64 strings", max);
    else if (!(*owned = calloc(json_array_size(images), sizeof **owned)))
        response_no_memory(resp, NULL);
    else
        for (rc = 0; rc == 0 && (size_t)*count < json_array_size(images); (*count)++) {
            char what[32];
            snprintf(what, sizeof what, "images/%d", *count);
            rc = input_json_image(json_array_get(images, (size_t)*count), what, resp,
                                  &inputs[*count], &(*owned)[*count]);
        }
    json_decref(body);
    return rc;
}

/* CTAugment works on RGB, as the reference: 422 naming the first input that is not. */
static int check_rgb(struct response *resp, const struct input_image *inputs, int count)
{
    for (int i = 0; i < count; i++) {
        const int channels = inputs[i].image->channels;
        if (channels == 3) continue;
        response_error(resp, 422,
                       "image %d: %s; CTAugment takes RGB images, as the reference does: convert "
                       "it first",
                       i,
                       channels == 1   ? "greyscale"
                       : channels == 4 ? "RGB with alpha"
                                       : "not RGB");
        return -1;
    }
    return 0;
}

/* Draws every view's policy, then checks the work: each op, the Cutout and the encoding are
 * about a pass over the image. */
static int draw_views(struct request *req, struct response *resp, struct draws *d, size_t jobs)
{
    double work = 0;
    for (size_t j = 0; j < jobs; j++) {
        const struct input_job job = input_job_at(j, d->samples, 1);
        const struct img *in = d->inputs[job.input].image;
        ctaug_draw(d->state, d->probe, d->seed, job.input, job.sample, &d->views[j].policy);
        work += (double)in->width * in->height * (d->views[j].policy.count + 2);
    }
    return input_check_work(req, resp, work,
                            "send fewer or smaller images, or ask for fewer "
                            "samples");
}

/* {"id", "revision", "seed", "results": [{"input", "sample", "content_type", "width", "height",
 * "data", "policy"[, "cutout"]}]}. */
static json_t *views_document(const struct ctaugment_record *r, const struct draws *d, size_t jobs)
{
    json_t *results = json_array();
    for (size_t j = 0; j < jobs && results; j++) {
        const struct view *v = &d->views[j];
        const struct input_job job = input_job_at(j, d->samples, 1);
        char *data = input_base64(v->png, v->png_size);
        json_t *item = !data ? NULL
                             : json_pack("{s:i, s:i, s:s, s:i, s:i, s:s, s:o}", "input",
                                         (int)job.input, "sample", (int)job.sample, "content_type",
                                         "image/png", "width", v->width, "height", v->height,
                                         "data", data, "policy", ctaug_policy_to_json(&v->policy));
        free(data);
        if (item && !d->probe) json_object_set_new(item, "cutout", json_true());
        if (!item || json_array_append_new(results, item)) {
            json_decref(results);
            results = NULL;
        }
    }
    return results
               ? json_pack("{s:s, s:I, s:I, s:o}", "id", r->id, "revision", (json_int_t)r->revision,
                           "seed", (json_int_t)d->seed, "results", results)
               : NULL;
}

static void draw(struct request *req, struct response *resp, int probe)
{
    const struct config *cfg = req->app->cfg;
    struct input_image *inputs = calloc((size_t)cfg->max_inputs, sizeof *inputs);
    struct ctaugment_record r = {0};
    struct draws d = {.inputs = inputs, .probe = probe};
    struct ctaug *state = NULL;
    struct eng_error err;
    unsigned char **owned = NULL; /* a JSON body's images, decoded */
    int count = 0;
    size_t jobs = 0;
    if (!inputs) {
        response_no_memory(resp, NULL);
        return;
    }
    if (ctaugment_store_get(req->app->storage, request_param(req, "id"), &r, &err) != 0 ||
        !(state = ctaug_from_json(r.state, &err))) {
        response_engine_error(resp, &err);
        goto done;
    }
    d.state = state;
    if (collect_images(req, resp, inputs, cfg->max_inputs, &count, &owned) != 0 ||
        input_seed(req, resp, &d.seed) != 0 || input_samples(req, resp, &d.samples) != 0 ||
        input_decode_images(req, resp, inputs, count, IMG_COLOR_KEEP) != 0 ||
        check_rgb(resp, inputs, count) != 0)
        goto done;
    jobs = (size_t)count * d.samples;
    if (!(d.views = calloc(jobs, sizeof *d.views))) {
        response_no_memory(resp, NULL);
        goto done;
    }
    if (draw_views(req, resp, &d, jobs) != 0 ||
        input_run_jobs(req, resp, jobs, run_view, view_failure, &d) != 0)
        goto done;
    double bytes = 0;
    for (size_t j = 0; j < jobs; j++)
        bytes += 4.0 * ((double)d.views[j].png_size + 2) / 3 + 512;
    if (input_check_response(req, resp, bytes,
                             "ask for fewer inputs or samples, or send smaller images") != 0)
        goto done;
    json_t *doc = views_document(&r, &d, jobs);
    if (doc)
        response_json(resp, 200, doc);
    else
        response_no_memory(resp, NULL);
done:
    for (size_t j = 0; d.views && j < jobs; j++)
        free(d.views[j].png);
    free(d.views);
    ctaug_free(state);
    ctaugment_record_clear(&r);
    input_free_images(inputs, count);
    for (int i = 0; owned && i < count; i++)
        free(owned[i]);
    free(owned);
    free(inputs);
}

void handle_ctaugment_augment(struct request *req, struct response *resp)
{
    draw(req, resp, 0);
}

void handle_ctaugment_probe(struct request *req, struct response *resp)
{
    draw(req, resp, 1);
}

/* ---- POST /v1/ctaugment/{id}/feedback -------------------------------------------------------- */

/* One item of the feedback, checked: the probe's policy and its proximity. */
struct feedback_item {
    struct ctaug_policy policy;
    double proximity;
};

struct feedback {
    struct feedback_item *items;
    size_t count;
};

/* The proximity of an item with "probabilities" and "label" (ctaug_proximity's). */
static int item_proximity(const json_t *probabilities, const json_t *label, double *proximity,
                          struct eng_error *err)
{
    if (!json_is_array(probabilities) || json_array_size(probabilities) == 0)
        return eng_fail(err, ENG_INVALID,
                        "probabilities: a non-empty array of numbers is required");
    if (!json_is_integer(label))
        return eng_fail(err, ENG_INVALID, "label: an integer (the true class) is required");
    const size_t classes = json_array_size(probabilities);
    if (json_integer_value(label) < 0 || json_integer_value(label) >= (json_int_t)classes)
        return eng_fail(err, ENG_INVALID, "label: %lld is not a class in 0..%zu",
                        (long long)json_integer_value(label), classes - 1);
    double *p = malloc(classes * sizeof *p);
    if (!p) return eng_no_memory(err);
    int rc = 0;
    for (size_t k = 0; k < classes && rc == 0; k++) {
        const json_t *v = json_array_get(probabilities, k);
        p[k] = json_number_value(v);
        if (!json_is_number(v))
            rc = eng_fail(err, ENG_INVALID, "probabilities/%zu: a number is required", k);
    }
    if (rc == 0)
        rc = ctaug_proximity(p, (int)classes, (int)json_integer_value(label), proximity, err);
    free(p);
    return rc;
}

/* One item: {"policy", "probabilities", "label"} or {"policy", "proximity"}; err's message is
 * relative to the item ("policy/0/1/0: ...", or ": ..." for the item itself). */
static int read_item(const json_t *item, struct feedback_item *out, struct eng_error *err)
{
    static const char *const members[] = {"policy", "probabilities", "label", "proximity", NULL};
    if (!json_is_object(item))
        return eng_fail(err, ENG_INVALID,
                        ": an object is required, {\"policy\", \"probabilities\", \"label\"} "
                        "or {\"policy\", \"proximity\"}");
    if (json_check_members(item, members, "", "member", err) != 0) return -1;
    const json_t *policy = json_object_get(item, "policy");
    const json_t *proximity = json_object_get(item, "proximity");
    const json_t *probabilities = json_object_get(item, "probabilities");
    const json_t *label = json_object_get(item, "label");
    if (!policy) return eng_fail(err, ENG_INVALID, "policy: required, a probe's policy");
    if (ctaug_policy_from_json(policy, &out->policy, err) != 0) return -1;
    if (proximity && (probabilities || label))
        return eng_fail(err, ENG_INVALID,
                        "proximity: give either proximity or probabilities and label, not both");
    if (!proximity) return item_proximity(probabilities, label, &out->proximity, err);
    out->proximity = json_number_value(proximity);
    if (!json_is_number(proximity) || !(out->proximity >= 0 && out->proximity <= 1))
        return eng_fail(err, ENG_INVALID, "proximity: a number in [0, 1] is required");
    return 0;
}

/* The body's items, every one checked before any is applied: 0, or -1 with the answer written
 * (422 naming the item's member by its JSON pointer). */
static int read_feedback(struct request *req, struct response *resp, struct feedback *f)
{
    json_t *body = input_json_body(req, resp, "{\"feedback\": [{\"policy\", ...}, ...]}");
    if (!body) return -1;
    const json_t *list = json_object_get(body, "feedback");
    static const char *const members[] = {"feedback", NULL};
    struct eng_error err;
    int rc = -1;
    if (!json_is_object(body) || !json_is_array(list) || json_array_size(list) == 0) {
        response_error(resp, 422,
                       "feedback: required, a non-empty array of {\"policy\", "
                       "\"probabilities\", \"label\"} or {\"policy\", \"proximity\"}");
    } else if (json_check_members(body, members, "", "member", &err) != 0) {
        response_engine_error(resp, &err);
    } else if (!(f->items = calloc(json_array_size(list), sizeof *f->items))) {
        response_no_memory(resp, NULL);
    } else {
        rc = 0;
        for (f->count = 0; rc == 0 && f->count < json_array_size(list); f->count++)
            if (read_item(json_array_get(list, f->count), &f->items[f->count], &err) != 0) {
                response_error(resp, response_status_for(err.code), "feedback/%zu%s%s", f->count,
                               err.message[0] == ':' ? "" : "/", err.message);
                rc = -1;
            }
    }
    json_decref(body);
    return rc;
}

/* The store's update: the state with every item's feedback, in order. */
static json_t *apply_feedback(const json_t *state, void *ctx, struct eng_error *err)
{
    const struct feedback *f = ctx;
    struct ctaug *c = ctaug_from_json(state, err);
    json_t *out = NULL;
    int rc = c ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < f->count; i++)
        rc = ctaug_feedback(c, &f->items[i].policy, f->items[i].proximity, err);
    if (rc == 0 && !(out = ctaug_to_json(c))) eng_no_memory(err);
    ctaug_free(c);
    return out;
}

void handle_ctaugment_feedback(struct request *req, struct response *resp)
{
    struct feedback f = {0};
    struct ctaugment_record r;
    struct eng_error err;
    if (read_feedback(req, resp, &f) == 0) {
        if (ctaugment_store_update(req->app->storage, request_param(req, "id"), apply_feedback, &f,
                                   &r, &err) != 0)
            response_engine_error(resp, &err);
        else
            respond_record(resp, 200, &r);
        ctaugment_record_clear(&r);
    }
    free(f.items);
}
