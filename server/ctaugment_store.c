/* CTAugment states of ctaugment_store.h on either backend, under the store's lock
 * (storage_internal.h). */
#include "ctaugment_store.h"

#include <stdlib.h>
#include <string.h>

#include "storage_internal.h"

void ctaugment_record_clear(struct ctaugment_record *r)
{
    json_decref(r->state);
    free(r->owner);
    memset(r, 0, sizeof *r);
}

#define COLUMNS "id, state, owner, revision, created_ms, updated_ms"

/* A row of COLUMNS into *r. */
static int read_record(struct storage_stmt *stmt, struct ctaugment_record *r, struct eng_error *err)
{
    memset(r, 0, sizeof *r);
    int failed = 0;
    const char *id = storage_column(stmt, 0);
    if (id && strlen(id) < sizeof r->id) strcpy(r->id, id);
    r->state = storage_column_json(stmt, 1, &failed);
    r->owner = storage_column_text(stmt, 2, &failed);
    r->revision = storage_column_int64(stmt, 3);
    r->created_ms = storage_column_int64(stmt, 4);
    r->updated_ms = storage_column_int64(stmt, 5);
    if (failed || !r->id[0] || !r->state) {
        ctaugment_record_clear(r);
        return eng_fail(err, ENG_INTERNAL, "storage: a CTAugment state does not read back");
    }
    return 0;
}

static int not_found(const char *id, struct eng_error *err)
{
    return eng_fail(err, ENG_NOT_FOUND, "no CTAugment state %s (GET /v1/ctaugment lists them)", id);
}

/* The record of id into *out, in the caller's lock (and transaction, where FOR UPDATE holds the
 * row on PostgreSQL until it ends; SQLite's write lock holds the whole database already). */
static int select_record(struct storage *st, const char *id, int for_update,
                         struct ctaugment_record *out, struct eng_error *err)
{
    const char *sql = "SELECT " COLUMNS " FROM ctaugment WHERE id = ?";
    struct storage_stmt *stmt = storage_prepare(
        st,
        for_update
            ? storage_sql(st, sql, "SELECT " COLUMNS " FROM ctaugment WHERE id = ? FOR UPDATE")
            : sql,
        err);
    if (!stmt) return -1;
    storage_bind_text(stmt, 1, id);
    int rc, step = storage_step(stmt);
    if (step == STORAGE_ROW)
        rc = read_record(stmt, out, err);
    else if (step == STORAGE_DONE)
        rc = not_found(id, err);
    else
        rc = storage_fail(st, err, "reading a CTAugment state");
    storage_finalize(stmt);
    return rc;
}

int ctaugment_store_create(struct storage *st, const struct ctaugment_record *r,
                           struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt =
        storage_prepare(st, "INSERT INTO ctaugment (" COLUMNS ") VALUES (?, ?, ?, 0, ?, ?)", err);
    int rc = -1;
    if (stmt) {
        int64_t now = storage_now_ms();
        storage_bind_text(stmt, 1, r->id);
        rc = storage_bind_json(stmt, 2, r->state, err);
        storage_bind_text(stmt, 3, r->owner);
        storage_bind_int64(stmt, 4, now);
        storage_bind_int64(stmt, 5, now);
        if (rc == 0) {
            rc = storage_run(st, stmt, err, "saving a CTAugment state");
            if (rc != 0 && storage_duplicate(st))
                eng_fail(err, ENG_CONFLICT, "a CTAugment state %s exists already", r->id);
        } else {
            storage_finalize(stmt);
        }
    }
    return storage_end(st, rc, err);
}

int ctaugment_store_get(struct storage *st, const char *id, struct ctaugment_record *out,
                        struct eng_error *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&st->lock);
    int rc = select_record(st, id, 0, out, err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int ctaugment_store_each(struct storage *st,
                         int (*each)(const struct ctaugment_record *, void *ctx,
                                     struct eng_error *err),
                         void *ctx, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT " COLUMNS " FROM ctaugment ORDER BY seq", err);
    int rc = stmt ? 0 : -1, step = STORAGE_DONE;
    while (rc == 0 && (step = storage_step(stmt)) == STORAGE_ROW) {
        struct ctaugment_record r;
        rc = read_record(stmt, &r, err);
        if (rc == 0) rc = each(&r, ctx, err);
        ctaugment_record_clear(&r);
    }
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "reading CTAugment states");
    storage_finalize(stmt);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int ctaugment_store_update(struct storage *st, const char *id,
                           json_t *(*update)(const json_t *state, void *ctx, struct eng_error *err),
                           void *ctx, struct ctaugment_record *out, struct eng_error *err)
{
    memset(out, 0, sizeof *out);
    if (storage_begin(st, err) != 0) return -1;
    struct ctaugment_record old;
    if (select_record(st, id, 1, &old, err) != 0) return storage_end(st, -1, err);
    json_t *state = update(old.state, ctx, err);
    ctaugment_record_clear(&old);
    int rc = -1;
    struct storage_stmt *stmt =
        state ? storage_prepare(st,
                                "UPDATE ctaugment SET state = ?, revision = revision + 1,"
                                " updated_ms = ? WHERE id = ?",
                                err)
              : NULL;
    if (stmt) {
        rc = storage_bind_json(stmt, 1, state, err);
        storage_bind_int64(stmt, 2, storage_now_ms());
        storage_bind_text(stmt, 3, id);
        if (rc == 0)
            rc = storage_run(st, stmt, err, "updating a CTAugment state");
        else
            storage_finalize(stmt);
    }
    json_decref(state);
    if (rc == 0) rc = select_record(st, id, 0, out, err);
    return storage_end(st, rc, err);
}

int ctaugment_store_delete(struct storage *st, const char *id, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(st, "DELETE FROM ctaugment WHERE id = ?", err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_text(stmt, 1, id);
    int rc = storage_run(st, stmt, err, "deleting a CTAugment state");
    if (rc == 0 && storage_changes(st) == 0) rc = not_found(id, err);
    return storage_end(st, rc, err);
}
