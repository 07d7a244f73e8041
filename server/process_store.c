/* The processes of process_store.h on either backend, under the store's lock
 * (storage_internal.h). */
#include "process_store.h"

#include "storage_internal.h"

int process_store_beat(struct storage *st, const char *id, int64_t stale_ms, struct eng_error *err)
{
    if (storage_begin(st, err) != 0) return -1;
    int64_t now;
    if (storage_clock_ms(st, &now, err) != 0) return storage_end(st, -1, err);
    struct storage_stmt *stmt =
        storage_prepare(st,
                        "INSERT INTO processes (id, started_ms, heartbeat_ms) VALUES (?1, ?2, ?2)"
                        " ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
                        err);
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, id);
        storage_bind_int64(stmt, 2, now);
        rc = storage_run(st, stmt, err, "recording a process's heartbeat");
    }
    if (rc == 0) {
        stmt = storage_prepare(st, "DELETE FROM processes WHERE heartbeat_ms < ?", err);
        rc = -1;
        if (stmt) {
            storage_bind_int64(stmt, 1, now - stale_ms);
            rc = storage_run(st, stmt, err, "forgetting ended processes");
        }
    }
    return storage_end(st, rc, err);
}

int process_store_live(struct storage *st, const char *id, int64_t stale_ms, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    int64_t now;
    struct storage_stmt *stmt =
        storage_clock_ms(st, &now, err) == 0
            ? storage_prepare(st, "SELECT heartbeat_ms FROM processes WHERE id = ?", err)
            : NULL;
    int rc = -1;
    if (stmt) {
        storage_bind_text(stmt, 1, id);
        int step = storage_step(stmt);
        if (step == STORAGE_ROW)
            rc = storage_column_int64(stmt, 0) >= now - stale_ms;
        else if (step == STORAGE_DONE)
            rc = 0;
        else
            rc = storage_fail(st, err, "reading a process's heartbeat");
        storage_finalize(stmt);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}
