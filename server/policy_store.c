/* The saved policies of policy_store.h on either backend, under the store's lock
 * (storage_internal.h). */
#include "policy_store.h"

#include <stdlib.h>
#include <string.h>

#include "storage_internal.h"

void policy_record_clear(struct policy_record *r)
{
    free(r->name);
    json_decref(r->document);
    free(r->owner);
    memset(r, 0, sizeof *r);
}

#define COLUMNS "name, document, owner, created_ms, updated_ms"

/* A row of COLUMNS into *r. */
static int read_record(struct storage_stmt *stmt, struct policy_record *r, struct eng_error *err)
{
    memset(r, 0, sizeof *r);
    int failed = 0;
    r->name = storage_column_text(stmt, 0, &failed);
    r->document = storage_column_json(stmt, 1, &failed);
    r->owner = storage_column_text(stmt, 2, &failed);
    r->created_ms = storage_column_int64(stmt, 3);
    r->updated_ms = storage_column_int64(stmt, 4);
    if (failed || !r->name || !r->document) {
        policy_record_clear(r);
        return eng_fail(err, ENG_INTERNAL, "storage: a saved policy does not read back");
    }
    return 0;
}

int policy_store_put(struct storage *st, const struct policy_record *r, int replace, int *created,
                     struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    /* The upsert leaves owner and created_ms alone; changes() is 1 either way, so whether the
     * name was new is asked first, inside the same transaction. */
    struct storage_stmt *stmt = storage_prepare(st, "SELECT 1 FROM policies WHERE name = ?", err);
    int rc = -1, exists = 0;
    if (stmt) {
        storage_bind_text(stmt, 1, r->name);
        int step = storage_step(stmt);
        exists = step == STORAGE_ROW;
        rc = step == STORAGE_ROW || step == STORAGE_DONE
                 ? 0
                 : storage_fail(st, err, "finding a policy");
        storage_finalize(stmt);
    }
    if (rc == 0 && exists && !replace)
        rc = eng_fail(err, ENG_CONFLICT,
                      "a policy named %s is saved already (PUT /v1/policies/%s replaces it)",
                      r->name, r->name);
    if (rc == 0) {
        stmt = storage_prepare(st,
                               "INSERT INTO policies (" COLUMNS ") VALUES (?, ?, ?, ?, ?)"
                               " ON CONFLICT(name) DO UPDATE SET document = excluded.document,"
                               " updated_ms = excluded.updated_ms",
                               err);
        rc = -1;
        if (stmt) {
            int64_t now = storage_now_ms();
            storage_bind_text(stmt, 1, r->name);
            rc = storage_bind_json(stmt, 2, r->document, err);
            storage_bind_text(stmt, 3, r->owner);
            storage_bind_int64(stmt, 4, now);
            storage_bind_int64(stmt, 5, now);
            if (rc == 0)
                rc = storage_run(st, stmt, err, "saving a policy");
            else
                storage_finalize(stmt);
        }
    }
    if (created) *created = !exists;
    return storage_end(st, rc, err);
}

int policy_store_get(struct storage *st, const char *name, struct policy_record *out,
                     struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT " COLUMNS " FROM policies WHERE name = ?", err);
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, name);
        int step = storage_step(stmt);
        if (step == STORAGE_ROW)
            rc = read_record(stmt, out, err);
        else if (step == STORAGE_DONE)
            rc = eng_fail(err, ENG_NOT_FOUND, "no saved policy named %s", name);
        else
            rc = storage_fail(st, err, "reading a policy");
        storage_finalize(stmt);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int policy_store_each(struct storage *st,
                      int (*each)(const struct policy_record *, void *ctx, struct eng_error *err),
                      void *ctx, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    struct storage_stmt *stmt =
        storage_prepare(st, "SELECT " COLUMNS " FROM policies ORDER BY name", err);
    int rc = stmt ? 0 : -1, step = STORAGE_DONE;
    while (rc == 0 && (step = storage_step(stmt)) == STORAGE_ROW) {
        struct policy_record r;
        rc = read_record(stmt, &r, err);
        if (rc == 0) rc = each(&r, ctx, err);
        policy_record_clear(&r);
    }
    if (rc == 0 && step != STORAGE_DONE) rc = storage_fail(st, err, "reading policies");
    storage_finalize(stmt);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int policy_store_delete(struct storage *st, const char *name, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    struct storage_stmt *stmt = storage_prepare(st, "DELETE FROM policies WHERE name = ?", err);
    if (!stmt) return storage_end(st, -1, err);
    storage_bind_text(stmt, 1, name);
    int rc = storage_run(st, stmt, err, "deleting a policy");
    if (rc == 0 && storage_changes(st) == 0)
        rc = eng_fail(err, ENG_NOT_FOUND, "no saved policy named %s", name);
    return storage_end(st, rc, err);
}
