/* The dataset registry: the imported caches under data_dir/datasets/<id>/ (engine/data's format,
 * data/dataset.h), each opened (mapped) once when first asked for and shared by every request and
 * job that uses it, with a count of its users (what a removal will ask).
 *
 * Ids are the folder names data_import gives (the first 16 hex digits of the content hash, or an
 * id of the caller's); an id is letters, digits, '-' and '_' only, so it never names a path
 * outside the folder. Thread-safe. */
#ifndef AUGSERVE_DATASETS_H
#define AUGSERVE_DATASETS_H

#include <stddef.h>

#include "core/error.h"

struct dataset;
struct datasets;

/* Opens the registry of folder dir (created if missing), removing the temporary folders of
 * imports a dead process left there. NULL with err (ENG_INTERNAL naming the folder, ENG_NO_MEMORY).
 */
struct datasets *datasets_open(const char *dir, struct eng_error *err);
/* Closes every dataset: call it once nothing holds one (after the request workers and the job
 * runners have stopped). */
void datasets_close(struct datasets *r);

/* The registry's folder. */
const char *datasets_dir(const struct datasets *r);

/* Whether id may name a dataset: 1 to 64 of [A-Za-z0-9_-]. */
int datasets_valid_id(const char *id);

/* The dataset of this id with a reference taken, opened on first use: NULL with err
 * (ENG_NOT_FOUND "unknown dataset: <id>" for a malformed id or no such folder, or dataset_open's
 * error for a damaged cache). */
struct dataset *datasets_acquire(struct datasets *r, const char *id, struct eng_error *err);
/* Drops a reference datasets_acquire took. */
void datasets_release(struct datasets *r, struct dataset *d);

/* Removes the dataset of this id from disk (data_remove: atomic, by a rename first), once
 * nothing holds it: ENG_CONFLICT while a request or job has it acquired, ENG_NOT_FOUND when it
 * has no folder. */
int datasets_remove(struct datasets *r, const char *id, struct eng_error *err);

/* The ids of the caches in the folder (valid ids only: the temporary folders of imports are
 * not), into a new array of new strings (datasets_free_ids). */
int datasets_list_ids(struct datasets *r, char ***ids, size_t *count, struct eng_error *err);
void datasets_free_ids(char **ids, size_t count);

#endif
