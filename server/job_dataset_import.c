/* The kind "dataset-import" (dataset_import.h): imports an upload or a path under datasets_dir
 * into data_dir/datasets/<params.dataset> and ends the dataset's record ready or failed. When the
 * content is that of an older ready dataset (dataset_store_same_content), the new cache is not
 * kept: the id becomes an alias of the older one (datasets_alias), the same dataset under a
 * second id. Queued by POST /v1/datasets alone (JOB_KIND_INTERNAL).
 *
 * It keeps no checkpoint; a rerun after a kill or a stop (the record still importing, the upload
 * still there: it goes only once the record has ended) finds what the first attempt did:
 *   nothing at the id    the import starts over (data_import writes into a temporary folder it
 *                        renames at the end; a kill inside datasets_alias, between the removal of
 *                        the folder and the link, leaves this too), then deduplicates again;
 *   a cache folder       the import was done: it only deduplicates and ends the record;
 *   an alias             it was deduplicated too: it only ends the record.
 * A record that has ended (ready) is left as it is: only its upload is removed. */
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
 * attempt stopped after its rename (a cache folder, or the alias share() made of it; whatever is
 * at the id, the registry opens only those): 0 with the dataset's hash and image count, or -1
 * with err. */
static int import(struct job_ctx *ctx, const json_t *params, const char *source, char hash[65],
                  json_int_t *images, struct eng_error *err)
{
    struct app *app = job_ctx_app(ctx);
    const struct config *cfg = app->cfg;
    const char *id = json_string_value(json_object_get(params, "dataset"));
    char folder[PATH_MAX];
    struct stat st;
    snprintf(folder, sizeof folder, "%s/%s", datasets_dir(app->datasets), id);
    if (lstat(folder, &st) != 0 && !source)
        return eng_fail(err, ENG_NOT_FOUND, "dataset %s has no cache in %s", id, folder);
    if (lstat(folder, &st) != 0) {
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

/* Makes id an alias of the oldest ready dataset of the same content, if there is one and id is not
 * an alias already: 1 with the dataset it is an alias of in same_as, 0 when it stays a dataset of
 * its own, -1 with err. */
static int share(struct job_ctx *ctx, const char *id, const char *hash, char same_as[65],
                 struct eng_error *err)
{
    struct app *app = job_ctx_app(ctx);
    if (datasets_alias_of(app->datasets, id, same_as)) return 1; /* a rerun: done already */
    int same = dataset_store_same_content(app->storage, id, hash, same_as, 65, err);
    if (same <= 0) return same;
    struct eng_error why;
    if (datasets_alias(app->datasets, id, same_as, &why) == 0)
        return datasets_alias_of(app->datasets, id, same_as);
    if (why.code != ENG_NOT_FOUND && why.code != ENG_CONFLICT) {
        *err = why;
        return -1;
    }
    /* The older one went meanwhile, or this one is in use: nothing changed, both stay. */
    job_ctx_log(ctx, "the same content as dataset %s, yet kept as a dataset of its own: %s",
                same_as, why.message);
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
    if (rc == 0) {
        same = state == DATASET_IMPORTING ? share(ctx, id, hash, same_as, err)
                                          : datasets_alias_of(app->datasets, id, same_as);
        if (same < 0) rc = -1;
    }
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
