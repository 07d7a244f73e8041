/* The dataset registry: the imported caches under data_dir/datasets/<id>/ (engine/data's format,
 * data/dataset.h), each opened (mapped) once when first asked for and shared by every request and
 * job that uses it, with a count of its users (what a removal will ask).
 *
 * Ids are the folder names data_import gives (the first 16 hex digits of the content hash, or an
 * id of the caller's); an id is letters, digits, '-' and '_' only, so it never names a path
 * outside the folder.
 *
 * An alias is a second id of a cache: data_dir/datasets/<alias> is a symbolic link whose target
 * is the bare id of a cache folder beside it (datasets_alias makes one when an import ends with
 * the content of an older dataset). Every call resolves it to that folder, so both ids are one
 * dataset: one mapping, one list of splits, one count of users. A link that names anything else
 * (a path, "..", another link, nothing) is no dataset, and nothing here follows it. Thread-safe.
 */
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

/* The dataset of this id (or of the cache it is an alias of) with a reference taken, opened on
 * first use; an open one takes the splits another process sharing the folder saved since
 * (dataset_split_refresh). NULL with err (ENG_NOT_FOUND "unknown dataset: <id>" for a malformed
 * id, no such folder or a link that is no alias, or dataset_open's error for a damaged cache). */
struct dataset *datasets_acquire(struct datasets *r, const char *id, struct eng_error *err);
/* Drops a reference datasets_acquire took. */
void datasets_release(struct datasets *r, struct dataset *d);

/* Closes the open datasets nothing holds whose folder is gone: removed by another process sharing
 * data_dir (a delete through another server), which this one hears nothing of. Their mappings
 * would otherwise keep the removed files' space for as long as this process runs. Called on every
 * process's lease sweep (leases.c). */
void datasets_close_removed(struct datasets *r);

/* Whether id is an alias: 1 with the id of the cache it names copied into target, 0 when it is
 * not (a cache, a link that is no alias, nothing). */
int datasets_alias_of(struct datasets *r, const char *id, char target[65]);

/* Makes id, a cache folder nothing holds, an alias of target (a cache, or an alias: the link
 * names the cache itself): the folder is removed (data_remove) and the link made in its place
 * (data_link). A kill between the two leaves id missing, never half of either. ENG_NOT_FOUND
 * when target is no dataset or id no cache folder, ENG_CONFLICT while id is held or has aliases,
 * or when target is id; in these cases nothing has changed. ENG_INTERNAL (I/O) otherwise. */
int datasets_alias(struct datasets *r, const char *id, const char *target, struct eng_error *err);

/* Removes the dataset of this id from disk: a cache (data_remove: atomic, by a rename first) once
 * nothing holds it and no alias names it, ENG_CONFLICT otherwise (naming the aliases: they go
 * first); an alias or any other link, its link only. ENG_NOT_FOUND when there is nothing of that
 * id. */
int datasets_remove(struct datasets *r, const char *id, struct eng_error *err);

/* The ids of the caches in the folder (valid ids of folders: the temporary folders of imports
 * are not, and aliases are not), into a new array of new strings (datasets_free_ids). */
int datasets_list_ids(struct datasets *r, char ***ids, size_t *count, struct eng_error *err);
void datasets_free_ids(char **ids, size_t count);

#endif
