/* Datasets' records in the embedded store: what the server knows of each dataset besides its
 * cache (data_dir/datasets/<id>, server/datasets.h): its state while it is imported, the import
 * job, why an import failed, where it came from. Every function is one atomic operation of the
 * store, safe from any thread; no caller sees SQL (a PostgreSQL backend implements the same
 * functions).
 *
 *   importing --the import job ends--> ready | failed
 *
 * A record is made, importing, when an import is asked for (POST /v1/datasets), and ready at once
 * for a cache found on disk without one (`augserve dataset import --out <data_dir>/datasets`). */
#ifndef AUGSERVE_DATASET_STORE_H
#define AUGSERVE_DATASET_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct storage;

enum dataset_state {
    DATASET_IMPORTING,
    DATASET_READY,
    DATASET_FAILED,
};

/* "importing", "ready", "failed". */
const char *dataset_state_name(enum dataset_state state);

struct dataset_record {
    char *id;
    char *name;
    enum dataset_state state;
    char *job;    /* the import job's id, or NULL (a cache found on disk) */
    char *error;  /* why the import failed, or NULL */
    char *source; /* "upload", "path:<relative path>" or "disk" */
    char *hash;   /* the content hash once ready, or NULL */
    char *owner;  /* the API key's name that asked for it, or NULL */
    int64_t created_ms;
};

/* Frees what a record holds and zeroes it. */
void dataset_record_clear(struct dataset_record *r);
void dataset_records_free(struct dataset_record *records, size_t count);

/* A new record with r's fields (created_ms 0: now). ENG_CONFLICT when the id is taken. */
int dataset_store_create(struct storage *st, const struct dataset_record *r, struct eng_error *err);

/* The record of this id into *out (dataset_record_clear it). ENG_NOT_FOUND when there is none. */
int dataset_store_get(struct storage *st, const char *id, struct dataset_record *out,
                      struct eng_error *err);

/* Every record, oldest first, into a new array (dataset_records_free it). */
int dataset_store_list(struct storage *st, struct dataset_record **records, size_t *count,
                       struct eng_error *err);

/* Sets the record's import job. ENG_NOT_FOUND when there is no such record. */
int dataset_store_set_job(struct storage *st, const char *id, const char *job,
                          struct eng_error *err);

/* Ends an import: DATASET_READY with the content hash, or DATASET_FAILED with error. Only an
 * importing record changes: ENG_CONFLICT otherwise (it was deleted, or has ended already). */
int dataset_store_finish(struct storage *st, const char *id, enum dataset_state state,
                         const char *hash, const char *error, struct eng_error *err);

/* The oldest ready record made before id's with this hash (the same content imported before):
 * 1 with its id copied into same_as (of size bytes), 0 when none, -1 with err. */
int dataset_store_same_content(struct storage *st, const char *id, const char *hash, char *same_as,
                               size_t size, struct eng_error *err);

/* Removes the record. ENG_NOT_FOUND when there is none. */
int dataset_store_delete(struct storage *st, const char *id, struct eng_error *err);

#endif
