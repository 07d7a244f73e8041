/* Datasets as the server keeps them: a record in the store (dataset_store.h) beside each cache
 * of the registry (datasets.h), and imports run as "dataset-import" jobs (job_dataset_import.c).
 *
 * An import is asked for with a source, an upload (POST /v1/datasets streams it to
 * data_dir/uploads/.partial-*, and it is kept as data_dir/uploads/<id>/<file> for the job) or a
 * path under datasets_dir; it gets a record (importing) and a job, which imports into
 * data_dir/datasets/<id> and ends the record ready or failed, and removes the upload. A kill
 * mid-import leaves the job to be queued again at the next start (the import starts over: what
 * the dead one wrote is data_import_cleanup's), the record importing and the upload in place.
 * Several servers may share data_dir and the store (a PostgreSQL one): an upload still arriving is
 * its receiving process's (uploads.h), and a record is only taken for abandoned once its
 * submission could not still be under way (dataset_import_settle). */
#ifndef AUGSERVE_DATASET_IMPORT_H
#define AUGSERVE_DATASET_IMPORT_H

#include <stddef.h>

#include "core/error.h"
#include "dataset_store.h"
#include "job_store.h"

struct app;
struct config;

/* What an import reads: an upload's file (upload set: it is moved to
 * data_dir/uploads/<id>/<upload_name>, and on success the caller no longer owns it), or path
 * relative to datasets_dir. */
struct dataset_import_request {
    const char *name;
    const char *upload;
    const char *upload_name; /* the file's name as the client gave it, or NULL */
    const char *path;
    const char *owner;
};

#define DATASET_FILE_NAME_MAX 100

/* The name an uploaded file is kept under, from the one the client gave: its last path segment,
 * cut to its last DATASET_FILE_NAME_MAX bytes (the suffix is what tells a format), every byte but
 * [A-Za-z0-9._-] and a leading '.' made '_'; "upload" for none. */
void dataset_import_file_name(const char *given, char out[DATASET_FILE_NAME_MAX + 1]);

/* Makes the record (importing) and queues its import job, whose ids go into id and job (the job
 * may have run by the time this returns). On failure nothing is left (no record, the upload
 * where it was). */
int dataset_import_submit(struct app *app, const struct dataset_import_request *rq,
                          char id[JOB_ID_SIZE], char job[JOB_ID_SIZE], struct eng_error *err);

/* Resolves path (relative to cfg->datasets_dir) into out (of size bytes), a file or folder that is
 * really under datasets_dir: 0, or -1 with err and *forbidden set when the path is refused as
 * outside it (absolute, "..", a symlink out, datasets_dir unset) rather than missing. */
int dataset_import_resolve(const struct config *cfg, const char *path, char *out, size_t size,
                           int *forbidden, struct eng_error *err);

/* The folder of dataset id's upload, data_dir/uploads/<id>, into out. */
void dataset_import_upload_dir(const struct app *app, const char *id, char *out, size_t size);

/* What the import of dataset id's upload reads, into out: the uploaded file (an archive), or its
 * folder when the file's name is a loose CIFAR batch (*.bin) or idx file (*-ubyte, *-ubyte.gz),
 * which data_import finds by name in a folder. 0, or -1 with err when the upload is gone. */
int dataset_import_upload_source(const struct app *app, const char *id, char *out, size_t size,
                                 struct eng_error *err);

/* Removes dataset id's upload, if it has one. */
void dataset_import_remove_upload(struct app *app, const char *id);

/* An importing record whose job has ended without ending it (cancelled before it ran, or
 * interrupted for good) or is gone becomes failed, saying so, and its upload is removed; r is
 * updated. So does one that still has no job lease_s after it was made: its server died (or froze
 * past its lease) half-way through dataset_import_submit, which any server may be in the middle
 * of for a younger one. Others are left as they are. 0, or -1 with err. */
int dataset_import_settle(struct app *app, struct dataset_record *r, struct eng_error *err);

/* Gives a ready record to each cache on disk that has none (one `augserve dataset import --out
 * <data_dir>/datasets` wrote). 0, or -1 with err. */
int dataset_import_adopt(struct app *app, struct eng_error *err);

/* At start-up, once the job runners have recovered the jobs: makes data_dir/uploads, settles
 * every record, removes the uploads no import will read (those of records not importing, and
 * partial ones whose server is gone: uploads_sweep), and adopts the caches on disk. 0, or -1 with
 * err. */
int dataset_import_recover(struct app *app, struct eng_error *err);

#endif
