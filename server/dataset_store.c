/* The datasets of dataset_store.h on either backend, under the store's lock (storage_internal.h).
 */
#include "dataset_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage_internal.h"

static const char *const state_names[] = {
    [DATASET_IMPORTING] = "importing",
    [DATASET_READY] = "ready",
    [DATASET_FAILED] = "failed",
};
#define STATE_COUNT (sizeof state_names / sizeof state_names[0])

const char *dataset_state_name(enum dataset_state state)
{
    return (size_t)state < STATE_COUNT ? state_names[state] : "unknown";
}

static int state_from_name(const char *name)
{
    for (size_t i = 0; name && i < STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0) return (int)i;
    return -1;
}

void dataset_record_clear(struct dataset_record *r)
{
    free(r->id);
    free(r->name);
    free(r->job);
    free(r->error);
    free(r->source);
    free(r->hash);
    free(r->owner);
    memset(r, 0, sizeof *r);
}

void dataset_records_free(struct dataset_record *records, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dataset_record_clear(&records[i]);
    free(records);
}

#define COLUMNS "id, name, state, job, error, source, hash, owner, created_ms"

/* A row of COLUMNS into *r. */
static int read_record(struct storage_stmt *stmt, struct dataset_record *r, struct eng_error *err)
{
    memset(r, 0, sizeof *r);
    int failed = 0;
    r->id = storage_column_text(stmt, 0, &failed);
    r->name = storage_column_text(stmt, 1, &failed);
    int state = state_from_name(storage_column(stmt, 2));
    r->job = storage_column_text(stmt, 3, &failed);
    r->error = storage_column_text(stmt, 4, &failed);
    r->source = storage_column_text(stmt, 5, &failed);
    r->hash = storage_column_text(stmt, 6, &failed);
    r->owner = storage_column_text(stmt, 7, &failed);
    r->created_ms = storage_column_int64(stmt, 8);
    if (failed || state < 0 || !r->id || !r->name || !r->source) {
        dataset_record_clear(r);
        return eng_fail(err, ENG_INTERNAL, "storage: a dataset record does not read back");
    }
    r->state = (enum dataset_state)state;
    return 0;
}

int dataset_store_create(struct storage *st, const struct dataset_record *r, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(st,
                                                "INSERT INTO datasets (" COLUMNS ")"
                                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                                err);
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, r->id);
        storage_bind_text(stmt, 2, r->name);
        storage_bind_text(stmt, 3, dataset_state_name(r->state));
        storage_bind_text(stmt, 4, r->job);
        storage_bind_text(stmt, 5, r->error);
        storage_bind_text(stmt, 6, r->source);
        storage_bind_text(stmt, 7, r->hash);
        storage_bind_text(stmt, 8, r->owner);
        storage_bind_int64(stmt, 9, r->created_ms ? r->created_ms : storage_now_ms());
        int step = storage_step(stmt);
        if (step == STORAGE_DONE)
            rc = 0;
        else if (storage_duplicate(st))
            eng_fail(err, ENG_CONFLICT, "a dataset with the id %s exists", r->id);
        else
            storage_fail(st, err, "creating a dataset");
        storage_finalize(stmt);
    }
    return storage_end(st, rc, err);
}

/* Reads the rows stmt gives (finalizing it) into a new array; under the lock. */
static int read_all(struct storage *st, struct storage_stmt *stmt, struct dataset_record **records,
                    size_t *count, struct eng_error *err)
{
    *records = NULL;
    *count = 0;
    size_t capacity = 0;
    int rc = 0, step;
    while (rc == 0 && (step = storage_step(stmt)) == STORAGE_ROW) {
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 8;
            struct dataset_record *grown = realloc(*records, capacity * sizeof *grown);
            if (!grown) {
                rc = eng_no_memory(err);
                break;
            }
            *records = grown;
        }
        if (read_record(stmt, &(*records)[*count], err) != 0)
            rc = -1;
        else
            (*count)++;
    }
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "reading datasets");
    storage_finalize(stmt);
    if (rc != 0) {
        dataset_records_free(*records, *count);
        *records = NULL;
        *count = 0;
    }
    return rc;
}

int dataset_store_get(struct storage *st, const char *id, struct dataset_record *out,
                      struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT " COLUMNS " FROM datasets WHERE id = ?", err);
    struct dataset_record *found = NULL;
    size_t count = 0;
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, id);
        rc = read_all(st, stmt, &found, &count, err);
    }
    pthread_mutex_unlock(&st->lock);
    if (rc == 0 && count == 0) rc = eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %s", id);
    if (rc == 0) {
        *out = found[0];
        free(found);
    }
    return rc;
}

int dataset_store_list(struct storage *st, struct dataset_record **records, size_t *count,
                       struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT " COLUMNS " FROM datasets ORDER BY seq", err);
    int rc = stmt ? read_all(st, stmt, records, count, err) : -1;
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* Runs an UPDATE or DELETE of one record (its parameters bound by the caller) and ends the
 * transaction storage_begin opened: the error none, "dataset <id> <why>", when no row changed. */
static int change_one(struct storage *st, struct storage_stmt *stmt, const char *id,
                      enum eng_code none, const char *why, struct eng_error *err)
{
    int rc = storage_run(st, stmt, err, "changing a dataset");
    if (rc == 0 && storage_changes(st) == 0) rc = eng_fail(err, none, "dataset %s %s", id, why);
    return storage_end(st, rc, err);
}

int dataset_store_set_job(struct storage *st, const char *id, const char *job,
                          struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt =
        storage_prepare(st, "UPDATE datasets SET job = ? WHERE id = ?", err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_text(stmt, 1, job);
    storage_bind_text(stmt, 2, id);
    return change_one(st, stmt, id, ENG_NOT_FOUND, "does not exist", err);
}

int dataset_store_finish(struct storage *st, const char *id, enum dataset_state state,
                         const char *hash, const char *error, struct eng_error *err)
{
    if (state == DATASET_IMPORTING)
        return eng_fail(err, ENG_INTERNAL, "an import cannot finish as importing");
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(st,
                                                "UPDATE datasets SET state = ?, hash = ?, error = ?"
                                                " WHERE id = ? AND state = 'importing'",
                                                err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_text(stmt, 1, dataset_state_name(state));
    storage_bind_text(stmt, 2, state == DATASET_READY ? hash : NULL);
    storage_bind_text(stmt, 3, state == DATASET_FAILED ? error : NULL);
    storage_bind_text(stmt, 4, id);
    return change_one(st, stmt, id, ENG_CONFLICT, "is not being imported", err);
}

int dataset_store_same_content(struct storage *st, const char *id, const char *hash, char *same_as,
                               size_t size, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt = storage_prepare(st,
                                                "SELECT id FROM datasets WHERE hash = ?1"
                                                " AND state = 'ready' AND seq <"
                                                " (SELECT seq FROM datasets WHERE id = ?2)"
                                                " ORDER BY seq LIMIT 1",
                                                err);
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, hash);
        storage_bind_text(stmt, 2, id);
        int step = storage_step(stmt);
        if (step == STORAGE_ROW) {
            snprintf(same_as, size, "%s", storage_column(stmt, 0));
            rc = 1;
        } else if (step == STORAGE_DONE) {
            rc = 0;
        } else {
            storage_fail(st, err, "finding a dataset by its hash");
        }
        storage_finalize(stmt);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int dataset_store_delete(struct storage *st, const char *id, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(st, "DELETE FROM datasets WHERE id = ?", err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_text(stmt, 1, id);
    return change_one(st, stmt, id, ENG_NOT_FOUND, "does not exist", err);
}
