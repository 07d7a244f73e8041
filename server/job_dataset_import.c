/* The kind "dataset-import" (dataset_import.h): imports an upload or a path under datasets_dir
 * into data_dir/datasets/<params.dataset> and ends the dataset's record ready or failed. It keeps
 * no checkpoint: an import interrupted by a kill or a stop starts over (data_import writes into a
 * temporary folder it renames at the end, so nothing of the first attempt is in the way), and one
 * that finished its folder before the stop only ends its record. Queued by POST /v1/datasets
 * alone (JOB_KIND_INTERNAL). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "app.h"
#include "data/dataset.h"
#include "dataset_import.h"
#include "dataset_store.h"
#include "datasets.h"
#include "job_kind.h"

#define NAME_MAX_LENGTH 200

static const char *const names[] = {"dataset", "name", "path", NULL};

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    if (job_params_known(params, names, err) != 0) return -1;
    const char *id = json_string_value(json_object_get(params, "dataset"));
    const char *name = json_string_value(json_object_get(params, "name"));
    const json_t *path = json_object_get(params, "path");
    if (!datasets_valid_id(id))
        return eng_fail(err, ENG_INVALID, "params.dataset: required, a dataset id");
    if (!name || !name[0] || strlen(name) > NAME_MAX_LENGTH)
        return eng_fail(err, ENG_INVALID, "params.name: required, 1 to %d bytes", NAME_MAX_LENGTH);
    if (path && !json_is_string(path))
        return eng_fail(err, ENG_INVALID, "params.path: must be a path under datasets_dir");
    return 0;
}

static void on_progress(void *ctx, double fraction, const char *phase)
{
    job_ctx_progress(ctx, fraction, phase);
}

/* Imports source (NULL: none, the import is done) into datasets/<id>, or finds it there from an
 * attempt stopped after its rename: 0 with the dataset's hash and image count, or -1 with err. */
static int import(struct job_ctx *ctx, const json_t *params, const char *source, char hash[65],
                  json_int_t *images, struct eng_error *err)
{
    struct app *app = job_ctx_app(ctx);
    const struct config *cfg = app->cfg;
    const char *id = json_string_value(json_object_get(params, "dataset"));
    char folder[PATH_MAX];
    struct stat st;
    snprintf(folder, sizeof folder, "%s/%s", datasets_dir(app->datasets), id);
    if (stat(folder, &st) != 0 && !source)
        return eng_fail(err, ENG_NOT_FOUND, "dataset %s has no cache in %s", id, folder);
    if (stat(folder, &st) != 0) {
        const struct data_import_options o = {
            .name = json_string_value(json_object_get(params, "name")),
            .image_size = cfg->dataset_image_size,
            .max_files = (uint64_t)cfg->max_dataset_files,
            .max_classes = (uint32_t)cfg->max_classes,
            .decode = {(uint64_t)cfg->max_pixels, cfg->max_dimension, IMG_COLOR_KEEP},
            .threads = job_ctx_threads(ctx),
            .progress = on_progress,
            .progress_ctx = ctx};
        if (data_import(source, datasets_dir(app->datasets), id, &o, NULL, err) != 0) return -1;
    }
    struct dataset *ds = datasets_acquire(app->datasets, id, err);
    if (!ds) return -1;
    snprintf(hash, 65, "%s", dataset_hash(ds));
    *images = (json_int_t)dataset_count(ds);
    datasets_release(app->datasets, ds);
    return 0;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct app *app = job_ctx_app(ctx);
    const char *id = json_string_value(json_object_get(params, "dataset"));
    const char *path = json_string_value(json_object_get(params, "path"));
    struct dataset_record record;
    if (dataset_store_get(app->storage, id, &record, err) != 0) return -1;
    const enum dataset_state state = record.state;
    dataset_record_clear(&record);
    /* An attempt killed after it ended the record: the import is done (import() below finds the
     * cache and only reads its hash again). A failed one stays failed. */
    if (state == DATASET_FAILED)
        return eng_fail(err, ENG_CONFLICT, "dataset %s failed already", id);
    char source[PATH_MAX], hash[65] = "", same_as[65] = "";
    int forbidden;
    json_int_t images = 0;
    int rc = state != DATASET_IMPORTING ? 0
             : path ? dataset_import_resolve(app->cfg, path, source, sizeof source, &forbidden, err)
                    : dataset_import_upload_source(app, id, source, sizeof source, err);
    if (rc == 0)
        rc = import(ctx, params, state == DATASET_IMPORTING ? source : NULL, hash, &images, err);
    if (rc != 0 && job_ctx_resumes(ctx)) return -1; /* runs again at the next start */
    int same = 0;
    if (rc == 0 && (same = dataset_store_same_content(app->storage, id, hash, same_as,
                                                      sizeof same_as, err)) < 0)
        rc = -1;
    struct eng_error store_err;
    if (rc == 0) {
        if (state == DATASET_IMPORTING)
            rc = dataset_store_finish(app->storage, id, DATASET_READY, hash, NULL, err);
    } else if (dataset_store_finish(app->storage, id, DATASET_FAILED, NULL, err->message,
                                    &store_err) != 0) {
        job_ctx_log(ctx, "cannot record the failure: %s", store_err.message);
    }
    if (!path) dataset_import_remove_upload(app, id);
    if (rc != 0) return -1;
    *result = json_pack("{s:s, s:s, s:I, s:s?}", "dataset", id, "hash", hash, "images", images,
                        "same_as", same ? same_as : NULL);
    return *result ? 0 : eng_no_memory(err);
}

const struct job_kind job_kind_dataset_import = {
    .name = "dataset-import",
    .help = "imports a dataset (queued by POST /v1/datasets, not by POST /v1/jobs)",
    .flags = JOB_KIND_INTERNAL,
    .validate = validate,
    .run = run,
};
