/* The embedded store's internals, shared by its SQLite files and by nothing else:
 *
 *   storage.c    opening the database, the schema's migrations, the lock
 *   job_store.c  jobs and their events (job_store.h)
 *
 * One connection serves every thread. SQLite serialises single calls on it, but a transaction is
 * several calls, so every operation of the store holds st->lock from its first statement to its
 * last: no thread's statement can land inside another's transaction. */
#ifndef AUGSERVE_STORAGE_INTERNAL_H
#define AUGSERVE_STORAGE_INTERNAL_H

#ifndef AUGSERVE_STORAGE_INTERNAL
#error "storage_internal.h is private to server/storage.c and job_store.c: use storage.h"
#endif

#include <pthread.h>
#include <sqlite3.h>

#include "core/error.h"
#include "storage.h"

struct storage {
    sqlite3 *db; /* opened SQLITE_OPEN_FULLMUTEX */
    pthread_mutex_t lock;
};

/* Fails err with ENG_INTERNAL naming what was being done and SQLite's message; returns -1. */
int storage_fail(struct storage *st, struct eng_error *err, const char *doing);

/* Runs sql (statements without parameters) under no lock of its own; 0 or -1 with err. */
int storage_exec(struct storage *st, const char *sql, struct eng_error *err, const char *doing);

#endif
