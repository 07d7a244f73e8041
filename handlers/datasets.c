/* /v1/datasets: importing datasets (an upload or a path under datasets_dir, each a
 * "dataset-import" job), listing and describing them, deriving splits, thumbnails for the UI, and
 * removing them. Records come from the store (dataset_store.h), caches from the registry
 * (datasets.h); server/dataset_import.h ties the two. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "core/parse.h"
#include "data/dataset.h"
#include "dataset_import.h"
#include "dataset_store.h"
#include "datasets.h"
#include "handlers.h"
#include "image/codec.h"
#include "image/geometry.h"
#include "input.h"
#include "job_store.h"
#include "json_text.h"
#include "log.h"
#include "request.h"
#include "response.h"

#define NAME_MAX_LENGTH 200
#define IMAGES_DEFAULT  50
#define IMAGES_MAX      200
#define THUMBNAIL_SIDE  64

/* ---- Documents ------------------------------------------------------------------------------- */

static json_t *time_text(int64_t ms)
{
    char text[40];
    log_format_time_ms(ms, text, sizeof text);
    return json_string(text);
}

/* What the record says: {"id", "name", "state", "job", "error", "origin", "created"}, with the
 * import's progress while it runs. */
static json_t *record_document(struct app *app, const struct dataset_record *r)
{
    json_t *doc = json_pack("{s:s, s:o, s:s, s:o, s:o, s:s, s:o}", "id", r->id, "name",
                            json_string_lossy(r->name), "state", dataset_state_name(r->state),
                            "job", r->job ? json_string(r->job) : json_null(), "error",
                            r->error ? json_string_lossy(r->error) : json_null(), "origin",
                            r->source, "created", time_text(r->created_ms));
    struct job job;
    struct eng_error err;
    if (doc && r->state == DATASET_IMPORTING && r->job &&
        job_store_get(app->storage, r->job, &job, &err) == 0) {
        json_object_set_new(doc, "progress",
                            json_pack("{s:f, s:o}", "fraction", job.progress, "phase",
                                      job.phase ? json_string(job.phase) : json_null()));
        job_clear(&job);
    }
    return doc;
}

/* The dataset's document: dataset_describe's with the record's members over it (full), or the
 * list's summary {..., "hash", "images", "classes": count, "splits": {name: count}}; and
 * "same_as" naming the dataset it is an alias of (the same content imported before). NULL with
 * err. */
static json_t *dataset_document(struct app *app, const struct dataset_record *r, int full,
                                struct eng_error *err)
{
    json_t *doc = record_document(app, r);
    if (!doc) {
        eng_no_memory(err);
        return NULL;
    }
    if (r->state != DATASET_READY) return doc;
    struct dataset *ds = datasets_acquire(app->datasets, r->id, err);
    if (!ds) {
        json_decref(doc);
        return NULL;
    }
    json_t *described = dataset_describe(ds);
    json_t *out = NULL;
    if (described && full) {
        json_object_update(described, doc);
        out = json_incref(described);
    } else if (described) {
        json_t *splits = json_object();
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(described, "splits"), i, s)
        {
            json_object_set(splits, json_string_value(json_object_get(s, "name")),
                            json_object_get(s, "count"));
        }
        json_object_set(doc, "hash", json_object_get(described, "hash"));
        json_object_set(doc, "images", json_object_get(described, "images"));
        json_object_set_new(doc, "classes", json_integer((json_int_t)dataset_class_count(ds)));
        json_object_set_new(doc, "splits", splits);
        out = json_incref(doc);
    }
    datasets_release(app->datasets, ds);
    json_decref(described);
    json_decref(doc);
    char same_as[65];
    if (!out)
        eng_no_memory(err);
    else if (datasets_alias_of(app->datasets, r->id, same_as))
        json_object_set_new(out, "same_as", json_string(same_as));
    return out;
}

/* The record of the path's {id}, settled (dataset_import_settle), into *r: 0, or -1 with the
 * answer written. A cache on disk without a record gets one first. */
static int record_of_request(struct request *req, struct response *resp, struct dataset_record *r)
{
    struct app *app = req->app;
    const char *id = request_param(req, "id");
    struct eng_error err;
    int rc = dataset_store_get(app->storage, id, r, &err);
    if (rc != 0 && err.code == ENG_NOT_FOUND && dataset_import_adopt(app, &err) == 0)
        rc = dataset_store_get(app->storage, id, r, &err);
    if (rc == 0 && dataset_import_settle(app, r, &err) != 0) {
        dataset_record_clear(r);
        rc = -1;
    }
    if (rc != 0) response_engine_error(resp, &err);
    return rc;
}

static void respond_dataset(struct request *req, struct response *resp, int status,
                            const struct dataset_record *r)
{
    struct eng_error err;
    json_t *doc = dataset_document(req->app, r, 1, &err);
    if (doc)
        response_json(resp, status, doc);
    else
        response_engine_error(resp, &err);
}

/* ---- POST /v1/datasets ----------------------------------------------------------------------- */

/* The import's source from the request into rq: 0, or -1 with the answer written. */
static int read_source(struct request *req, struct response *resp,
                       struct dataset_import_request *rq)
{
    const char *path = request_query(req, "path");
    const int has_body = req->upload_size > 0 || req->part_count > 0;
    if (path) {
        if (!(auth_key_scopes(req->app->cfg, req->key_name) & AUTH_SCOPE_ADMIN)) {
            response_error(resp, 403, "path: importing a server-side path needs the admin scope");
            return -1;
        }
        if (has_body) {
            response_error(resp, 400, "send either an archive as the body or a path, not both");
            return -1;
        }
        char resolved[PATH_MAX];
        int forbidden;
        struct eng_error err;
        if (dataset_import_resolve(req->app->cfg, path, resolved, sizeof resolved, &forbidden,
                                   &err) != 0) {
            if (forbidden)
                response_error(resp, 403, "%s", err.message);
            else
                response_engine_error(resp, &err);
            return -1;
        }
        rq->path = path;
        return 0;
    }
    if (req->part_count > 0 && !req->upload_part) {
        response_error(resp, 400,
                       "the multipart body has no part \"archive\": send the dataset's archive "
                       "in a part of that name");
        return -1;
    }
    if (req->upload_size == 0) {
        response_error(resp, 400,
                       "no dataset: send an archive (tar, tar.gz, zip, CIFAR .bin, idx) as the "
                       "body or a multipart part \"archive\", or give path=");
        return -1;
    }
    /* The file's name tells a loose CIFAR batch or idx file from an archive. */
    const struct request_part *part = request_part(req, "archive");
    rq->upload = req->upload_path;
    rq->upload_name = part && part->filename ? part->filename : request_query(req, "filename");
    return 0;
}

void handle_datasets_create(struct request *req, struct response *resp)
{
    struct dataset_import_request rq = {.name = request_query(req, "name"), .owner = req->key_name};
    if (!rq.name || !rq.name[0] || strlen(rq.name) > NAME_MAX_LENGTH) {
        response_error(resp, 422, "name: required, 1 to %d bytes (?name=...)", NAME_MAX_LENGTH);
        return;
    }
    if (read_source(req, resp, &rq) != 0) return;
    char id[JOB_ID_SIZE], job[JOB_ID_SIZE];
    struct eng_error err;
    if (dataset_import_submit(req->app, &rq, id, job, &err) != 0) {
        response_engine_error(resp, &err);
        return;
    }
    if (rq.upload) req->upload_path = NULL; /* the import job's now */
    /* The state when the import was accepted: the job may have ended it already. */
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:o}", "id", id, "job", job, "state",
                  dataset_state_name(DATASET_IMPORTING), "name", json_string_lossy(rq.name));
    response_header(resp, "Location", "/v1/datasets/%s", id);
    response_json(resp, 202, doc);
}

/* ---- GET /v1/datasets, GET /v1/datasets/{id} ------------------------------------------------- */

void handle_datasets_list(struct request *req, struct response *resp)
{
    struct app *app = req->app;
    struct dataset_record *records = NULL;
    size_t count = 0;
    struct eng_error err;
    json_t *list = json_array();
    int rc = !list ? eng_no_memory(&err)
             : dataset_import_adopt(app, &err) == 0
                 ? dataset_store_list(app->storage, &records, &count, &err)
                 : -1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        json_t *doc = dataset_import_settle(app, &records[i], &err) == 0
                          ? dataset_document(app, &records[i], 0, &err)
                          : NULL;
        /* A cache that no longer opens (removed or damaged by hand) does not hide the others:
         * its record is listed with why. */
        if (!doc && err.code != ENG_NO_MEMORY && err.code != ENG_INTERNAL &&
            (doc = record_document(app, &records[i])))
            json_object_set_new(doc, "error", json_string_lossy(err.message));
        rc = doc ? json_array_append_new(list, doc) : -1;
    }
    dataset_records_free(records, count);
    if (rc != 0) {
        json_decref(list);
        response_engine_error(resp, &err);
        return;
    }
    response_json(resp, 200, json_pack("{s:o}", "datasets", list));
}

void handle_dataset_get(struct request *req, struct response *resp)
{
    struct dataset_record r;
    if (record_of_request(req, resp, &r) != 0) return;
    respond_dataset(req, resp, 200, &r);
    dataset_record_clear(&r);
}

/* The ready dataset of the path's {id}, acquired, with its record: NULL with the answer written
 * (409 while it is importing or failed). */
static struct dataset *ready_dataset(struct request *req, struct response *resp,
                                     struct dataset_record *r)
{
    if (record_of_request(req, resp, r) != 0) return NULL;
    if (r->state != DATASET_READY) {
        response_error(resp, 409, "dataset %s is %s, not ready", r->id,
                       dataset_state_name(r->state));
        dataset_record_clear(r);
        return NULL;
    }
    struct eng_error err;
    struct dataset *ds = datasets_acquire(req->app->datasets, r->id, &err);
    if (!ds) {
        response_engine_error(resp, &err);
        dataset_record_clear(r);
    }
    return ds;
}

/* ---- POST /v1/datasets/{id}/splits ----------------------------------------------------------- */

/* The body {"name", "from", "fraction" | "count" | "per_class", "stratified", "seed", "rest"}
 * into spec: 0, or -1 with err naming the member. */
static int read_split_spec(const json_t *doc, struct data_split_spec *spec, struct eng_error *err)
{
    static const char *const members[] = {"name",       "from", "fraction", "count", "per_class",
                                          "stratified", "seed", "rest",     NULL};
    if (!json_is_object(doc))
        return eng_fail(err, ENG_INVALID,
                        "the body must be a JSON object: {\"name\", \"from\", \"fraction\" | "
                        "\"count\" | \"per_class\", \"stratified\", \"seed\"}");
    if (json_check_members(doc, members, "", "member", err) != 0) return -1;
    memset(spec, 0, sizeof *spec);
    spec->name = json_string_value(json_object_get(doc, "name"));
    spec->from = json_string_value(json_object_get(doc, "from"));
    const json_t *rest = json_object_get(doc, "rest");
    spec->rest = json_string_value(rest);
    if (!spec->name) return eng_fail(err, ENG_INVALID, "name: required, the new split's name");
    if (!spec->from) return eng_fail(err, ENG_INVALID, "from: required, the split to draw from");
    if (rest && !spec->rest) return eng_fail(err, ENG_INVALID, "rest: must be a split name");
    const json_t *fraction = json_object_get(doc, "fraction");
    const json_t *count = json_object_get(doc, "count");
    const json_t *per_class = json_object_get(doc, "per_class");
    if ((fraction != NULL) + (count != NULL) + (per_class != NULL) != 1)
        return eng_fail(err, ENG_INVALID,
                        "fraction, count, per_class: exactly one of them says how many images");
    if (fraction) {
        spec->mode = DATA_SPLIT_FRACTION;
        spec->fraction = json_number_value(fraction);
        if (!json_is_number(fraction) || !(spec->fraction >= 0 && spec->fraction <= 1))
            return eng_fail(err, ENG_INVALID, "fraction: must be a number in [0, 1]");
    } else if (count) {
        spec->mode = DATA_SPLIT_COUNT;
        if (!json_is_integer(count) || json_integer_value(count) < 0)
            return eng_fail(err, ENG_INVALID, "count: must be a whole number >= 0");
        spec->count = (uint64_t)json_integer_value(count);
    } else {
        spec->mode = DATA_SPLIT_PER_CLASS;
        if (!json_is_integer(per_class) || json_integer_value(per_class) < 1 ||
            json_integer_value(per_class) > UINT32_MAX)
            return eng_fail(err, ENG_INVALID, "per_class: must be a whole number >= 1");
        spec->per_class = (uint32_t)json_integer_value(per_class);
    }
    const json_t *stratified = json_object_get(doc, "stratified");
    if (stratified && !json_is_boolean(stratified))
        return eng_fail(err, ENG_INVALID, "stratified: must be true or false");
    spec->stratified = json_is_true(stratified);
    const json_t *seed = json_object_get(doc, "seed");
    if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0))
        return eng_fail(err, ENG_INVALID, "seed: must be a whole number >= 0");
    spec->seed = seed ? (uint64_t)json_integer_value(seed) : 0;
    return 0;
}

void handle_dataset_split(struct request *req, struct response *resp)
{
    json_t *doc = input_json_body(req, resp, "{\"name\", \"from\", \"fraction\", ...}");
    if (!doc) return;
    struct data_split_spec spec;
    struct eng_error err;
    struct dataset_record r;
    struct dataset *ds = NULL;
    if (read_split_spec(doc, &spec, &err) != 0)
        response_engine_error(resp, &err);
    else if ((ds = ready_dataset(req, resp, &r)) != NULL) {
        int rc = dataset_split_derive(ds, &spec, &err);
        datasets_release(req->app->datasets, ds);
        if (rc != 0)
            response_engine_error(resp, &err);
        else
            respond_dataset(req, resp, 201, &r);
        dataset_record_clear(&r);
    }
    json_decref(doc);
}

/* ---- GET /v1/datasets/{id}/images ------------------------------------------------------------ */

/* Image i scaled to fit THUMBNAIL_SIDE (never enlarged), as a data: URL of a PNG. */
static json_t *thumbnail(const struct dataset *ds, size_t i, struct eng_error *err)
{
    struct img view;
    dataset_image(ds, i, &view);
    const struct img *shown = &view;
    struct img *small = NULL;
    int longer = view.width > view.height ? view.width : view.height;
    if (longer > THUMBNAIL_SIDE) {
        int w = (int)((long)view.width * THUMBNAIL_SIDE / longer);
        int h = (int)((long)view.height * THUMBNAIL_SIDE / longer);
        small = img_resize(&view, h > 0 ? h : 1, w > 0 ? w : 1, IMG_BILINEAR, err);
        if (!small) return NULL;
        shown = small;
    }
    void *png = NULL;
    size_t size = 0;
    int rc = img_encode(shown, IMG_PNG, 0, NULL, &png, &size, err);
    img_free(small);
    if (rc != 0) return NULL;
    char *base64 = input_base64(png, size);
    free(png);
    char *url = NULL;
    if (!base64 || asprintf(&url, "data:image/png;base64,%s", base64) < 0) url = NULL;
    free(base64);
    json_t *out = url ? json_string(url) : NULL;
    free(url);
    if (!out) eng_no_memory(err);
    return out;
}

/* A whole-number query parameter in [0, max] (def when absent): 0, or -1 with the 422 written. */
static int query_whole(const struct request *req, struct response *resp, const char *name,
                       unsigned long long def, unsigned long long max, unsigned long long *out)
{
    const char *text = request_query(req, name);
    *out = def;
    if (!text || parse_whole(text, 0, max, out) == PARSE_OK) return 0;
    response_error(resp, 422, "%s: must be a whole number in [0, %llu]", name, max);
    return -1;
}

void handle_dataset_images(struct request *req, struct response *resp)
{
    unsigned long long offset, limit;
    if (query_whole(req, resp, "offset", 0, UINT32_MAX, &offset) != 0 ||
        query_whole(req, resp, "limit", IMAGES_DEFAULT, IMAGES_MAX, &limit) != 0)
        return;
    struct dataset_record r;
    struct dataset *ds = ready_dataset(req, resp, &r);
    if (!ds) return;
    const char *name = request_query(req, "split");
    const struct data_split *s = name ? dataset_split(ds, name) : dataset_split_at(ds, 0);
    struct eng_error err = {0};
    json_t *images = json_array();
    if (!s) {
        response_error(resp, 404, "split: dataset %s has no split %.100s", r.id, name);
    } else if (images) {
        for (size_t k = (size_t)offset; k < s->count && k < offset + limit; k++) {
            size_t i = s->indices[k];
            int label = data_split_label(ds, s, k);
            struct img view;
            dataset_image(ds, i, &view);
            json_t *thumb = thumbnail(ds, i, &err);
            json_t *item =
                thumb ? json_pack("{s:I, s:i, s:o, s:o, s:i, s:i, s:o}", "index", (json_int_t)i,
                                  "label", label, "class",
                                  label >= 0 ? json_string_lossy(dataset_class_name(ds, label))
                                             : json_null(),
                                  "source", json_string_lossy(dataset_source(ds, i)), "width",
                                  view.width, "height", view.height, "thumbnail", thumb)
                      : NULL;
            if (!item || json_array_append_new(images, item) != 0) {
                if (thumb && err.code == ENG_OK) eng_no_memory(&err);
                break;
            }
        }
        if (err.code != ENG_OK)
            response_engine_error(resp, &err);
        else
            response_json(resp, 200,
                          json_pack("{s:s, s:I, s:I, s:I, s:O}", "split", s->name, "offset",
                                    (json_int_t)offset, "limit", (json_int_t)limit, "total",
                                    (json_int_t)s->count, "images", images));
    } else {
        response_no_memory(resp, "while listing images");
    }
    json_decref(images);
    datasets_release(req->app->datasets, ds);
    dataset_record_clear(&r);
}

/* ---- DELETE /v1/datasets/{id} ---------------------------------------------------------------- */

void handle_dataset_delete(struct request *req, struct response *resp)
{
    struct app *app = req->app;
    struct dataset_record r;
    if (record_of_request(req, resp, &r) != 0) return;
    char job[JOB_ID_SIZE];
    struct eng_error err;
    /* Its import job ends the record just before it ends itself: once the record has ended, that
     * job's work is done. */
    const char *except = r.state == DATASET_IMPORTING ? NULL : r.job;
    int used = job_store_dataset_user(app->storage, r.id, except, job, &err);
    if (used > 0)
        response_error(resp, 409, "dataset %s is in use by job %s (queued or running)", r.id, job);
    else if (used < 0)
        response_engine_error(resp, &err);
    else if (datasets_remove(app->datasets, r.id, &err) != 0 && err.code != ENG_NOT_FOUND)
        response_engine_error(resp, &err);
    else if (dataset_store_delete(app->storage, r.id, &err) != 0)
        response_engine_error(resp, &err);
    else
        response_text(resp, 204, NULL, "", 0); /* no body, so no Content-Type */
    dataset_record_clear(&r);
}
