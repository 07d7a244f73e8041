#include "dataset_import.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "data/dataset.h"
#include "datasets.h"
#include "job_store.h"
#include "jobs.h"
#include "log.h"
#include "storage.h"
#include "uploads.h"

#define UPLOADS "uploads"

void dataset_import_upload_dir(const struct app *app, const char *id, char *out, size_t size)
{
    snprintf(out, size, "%s/" UPLOADS "/%s", app->cfg->data_dir, id);
}

void dataset_import_file_name(const char *given, char out[DATASET_FILE_NAME_MAX + 1])
{
    const char *base = given;
    for (const char *p = given; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    size_t n = strlen(base);
    if (n > DATASET_FILE_NAME_MAX) base += n - DATASET_FILE_NAME_MAX; /* the suffix tells */
    size_t k = 0;
    for (; base[k]; k++)
        out[k] =
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_", base[k]) &&
                    !(k == 0 && base[k] == '.')
                ? base[k]
                : '_';
    out[k] = '\0';
    if (k == 0) snprintf(out, DATASET_FILE_NAME_MAX + 1, "upload");
}

static int ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), m = strlen(end);
    return n >= m && strcmp(s + n - m, end) == 0;
}

int dataset_import_upload_source(const struct app *app, const char *id, char *out, size_t size,
                                 struct eng_error *err)
{
    char dir_path[PATH_MAX];
    dataset_import_upload_dir(app, id, dir_path, sizeof dir_path);
    DIR *dir = opendir(dir_path);
    struct dirent *d = NULL;
    while (dir && (d = readdir(dir)) && d->d_name[0] == '.') {
    }
    int rc = 0;
    if (!d)
        rc = eng_fail(err, ENG_NOT_FOUND, "the upload of dataset %s is gone", id);
    else if (ends_with(d->d_name, ".bin") || ends_with(d->d_name, "-ubyte") ||
             ends_with(d->d_name, "-ubyte.gz"))
        snprintf(out, size, "%s", dir_path);
    else
        snprintf(out, size, "%s/%s", dir_path, d->d_name);
    if (dir) closedir(dir);
    return rc;
}

int dataset_import_resolve(const struct config *cfg, const char *path, char *out, size_t size,
                           int *forbidden, struct eng_error *err)
{
    *forbidden = 1;
    if (!cfg->datasets_dir[0])
        return eng_fail(err, ENG_INVALID,
                        "path: server-side datasets are off (the datasets_dir setting is empty)");
    if (!path[0] || path[0] == '/')
        return eng_fail(err, ENG_INVALID,
                        "path: must be a relative path under datasets_dir, not \"%.200s\"", path);
    for (const char *p = path; *p; p += strcspn(p, "/"), p += *p == '/') {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return eng_fail(err, ENG_INVALID, "path: \"..\" is not allowed in \"%.200s\"", path);
    }
    char root[PATH_MAX], joined[PATH_MAX * 2], real[PATH_MAX];
    if (!realpath(cfg->datasets_dir, root))
        return eng_fail(err, ENG_INVALID, "path: datasets_dir %s: %s", cfg->datasets_dir,
                        strerror(errno));
    snprintf(joined, sizeof joined, "%s/%s", root, path);
    if (!realpath(joined, real)) {
        *forbidden = 0;
        return eng_fail(err, errno == ENOENT ? ENG_NOT_FOUND : ENG_INVALID,
                        "path: %.200s: %s under datasets_dir", path, strerror(errno));
    }
    size_t root_len = strlen(root);
    if (strncmp(real, root, root_len) != 0 || real[root_len] != '/')
        return eng_fail(err, ENG_INVALID,
                        "path: %.200s resolves outside datasets_dir (a symlink out?)", path);
    if (strlen(real) >= size) return eng_fail(err, ENG_INVALID, "path: %.200s is too long", path);
    *forbidden = 0;
    memcpy(out, real, strlen(real) + 1);
    return 0;
}

int dataset_import_submit(struct app *app, const struct dataset_import_request *rq,
                          char id[JOB_ID_SIZE], char job_id[JOB_ID_SIZE], struct eng_error *err)
{
    char kept[PATH_MAX + 128];
    if (jobs_new_id(id, err) != 0) return -1;
    const struct dataset_record spec = {.id = id,
                                        .name = (char *)rq->name,
                                        .state = DATASET_IMPORTING,
                                        .source = rq->upload ? "upload" : "path",
                                        .owner = (char *)rq->owner};
    if (dataset_store_create(app->storage, &spec, err) != 0) return -1;
    json_t *params = json_pack("{s:s, s:s}", "dataset", id, "name", rq->name);
    if (params && rq->path) json_object_set_new(params, "path", json_string(rq->path));
    char folder[PATH_MAX];
    dataset_import_upload_dir(app, id, folder, sizeof folder);
    char file[DATASET_FILE_NAME_MAX + 1];
    dataset_import_file_name(rq->upload_name ? rq->upload_name : "", file);
    snprintf(kept, sizeof kept, "%s/%s", folder, file);
    struct job job;
    int rc = -1;
    if (!params)
        eng_no_memory(err);
    else if (rq->upload && (mkdir(folder, 0750) != 0 || rename(rq->upload, kept) != 0))
        eng_fail(err, ENG_INTERNAL, "cannot keep the upload: %s", strerror(errno));
    else if (jobs_submit(app->jobs, "dataset-import", params, rq->owner, &job, err) == 0)
        rc = 0;
    else if (rq->upload)
        rename(kept, rq->upload); /* back where the caller will remove it */
    if (rc != 0 && rq->upload) rmdir(folder);
    json_decref(params);
    struct eng_error ignored;
    if (rc != 0) {
        dataset_store_delete(app->storage, id, &ignored);
        return -1;
    }
    memcpy(job_id, job.id, JOB_ID_SIZE);
    job_clear(&job);
    return dataset_store_set_job(app->storage, id, job_id, err);
}

/* Removes a folder of data_dir/uploads and the file in it. */
static void remove_upload_dir(const char *path)
{
    DIR *dir = opendir(path);
    for (struct dirent *d; dir && (d = readdir(dir));) {
        char file[PATH_MAX * 2];
        snprintf(file, sizeof file, "%s/%s", path, d->d_name);
        if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) unlink(file);
    }
    if (dir) closedir(dir);
    if (rmdir(path) != 0 && errno != ENOENT)
        log_event("warn", "datasets", "cannot remove %s: %s", path, strerror(errno));
}

void dataset_import_remove_upload(struct app *app, const char *id)
{
    char path[PATH_MAX];
    dataset_import_upload_dir(app, id, path, sizeof path);
    remove_upload_dir(path);
}

int dataset_import_settle(struct app *app, struct dataset_record *r, struct eng_error *err)
{
    if (r->state != DATASET_IMPORTING) return 0;
    struct job job = {0};
    char why[300];
    if (!r->job) {
        /* A submission takes milliseconds, and may be under way on another server now. */
        if (storage_now_ms() - r->created_ms <= (int64_t)app->cfg->lease_s * 1000) return 0;
        snprintf(why, sizeof why, "the server stopped before the import was queued");
    } else {
        int rc = job_store_get(app->storage, r->job, &job, err);
        if (rc != 0 && err->code != ENG_NOT_FOUND) return -1;
        if (rc == 0 && !job_state_is_final(job.state)) {
            job_clear(&job);
            return 0;
        }
        if (rc != 0)
            snprintf(why, sizeof why, "its import job %s is gone", r->job);
        else
            snprintf(why, sizeof why, "its import job %s %s%s%.200s", r->job,
                     job.state == JOB_CANCELLED ? "was cancelled" : job_state_name(job.state),
                     job.error ? ": " : "", job.error ? job.error : "");
        job_clear(&job);
    }
    if (dataset_store_finish(app->storage, r->id, DATASET_FAILED, NULL, why, err) != 0) {
        /* The job ended the record meanwhile: read it again. */
        if (err->code != ENG_CONFLICT) return -1;
    }
    dataset_import_remove_upload(app, r->id);
    struct dataset_record fresh;
    if (dataset_store_get(app->storage, r->id, &fresh, err) != 0) return -1;
    dataset_record_clear(r);
    *r = fresh;
    return 0;
}

int dataset_import_adopt(struct app *app, struct eng_error *err)
{
    char **ids;
    size_t count;
    if (datasets_list_ids(app->datasets, &ids, &count, err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        struct dataset_record r;
        struct eng_error missing;
        if (dataset_store_get(app->storage, ids[i], &r, &missing) == 0) {
            dataset_record_clear(&r);
            continue;
        }
        if (missing.code != ENG_NOT_FOUND) {
            *err = missing;
            rc = -1;
            break;
        }
        struct eng_error open_err;
        struct dataset *ds = datasets_acquire(app->datasets, ids[i], &open_err);
        if (!ds) {
            /* A damaged folder is no dataset to list; the log says why. */
            log_event("warn", "datasets", "%s: %s", ids[i], open_err.message);
            continue;
        }
        const struct dataset_record adopted = {.id = ids[i],
                                               .name = (char *)dataset_name(ds),
                                               .state = DATASET_READY,
                                               .source = "disk",
                                               .hash = (char *)dataset_hash(ds)};
        rc = dataset_store_create(app->storage, &adopted, err);
        /* Another request adopted it first: as good. */
        if (rc != 0 && err->code == ENG_CONFLICT) rc = 0;
        datasets_release(app->datasets, ds);
    }
    datasets_free_ids(ids, count);
    return rc;
}

/* Removes the folders of data_dir/uploads no import will read: those of datasets not importing.
 * (A partial upload is its receiving process's: uploads_sweep's.) */
static int remove_stale_uploads(struct app *app, struct eng_error *err)
{
    char dir_path[PATH_MAX];
    snprintf(dir_path, sizeof dir_path, "%s/" UPLOADS, app->cfg->data_dir);
    if (storage_make_dirs(dir_path, err) != 0) return -1;
    DIR *dir = opendir(dir_path);
    if (!dir) return eng_fail(err, ENG_INTERNAL, "%s: %s", dir_path, strerror(errno));
    int rc = 0;
    for (struct dirent *d; rc == 0 && (d = readdir(dir));) {
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
        if (uploads_is_partial(d->d_name)) continue;
        struct dataset_record r = {0};
        int wanted = dataset_store_get(app->storage, d->d_name, &r, err) == 0 &&
                     r.state == DATASET_IMPORTING;
        dataset_record_clear(&r);
        if (wanted) continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir_path, d->d_name);
        if (unlink(path) != 0) remove_upload_dir(path); /* a stray file, or a folder */
        log_event("info", "datasets", "removed %s, an upload no import reads", path);
    }
    closedir(dir);
    return rc;
}

int dataset_import_recover(struct app *app, struct eng_error *err)
{
    struct dataset_record *records;
    size_t count;
    if (dataset_store_list(app->storage, &records, &count, err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = dataset_import_settle(app, &records[i], err);
    dataset_records_free(records, count);
    if (rc == 0) rc = remove_stale_uploads(app, err);
    if (rc == 0) uploads_sweep(app);
    return rc == 0 ? dataset_import_adopt(app, err) : -1;
}
