/* The embedded store's internals, shared by its SQLite files and by nothing else:
 *
 *   storage.c        opening the database, the schema's migrations, what the others share
 *   job_store.c      jobs and their events (job_store.h)
 *   dataset_store.c  datasets' records (dataset_store.h)
 *   policy_store.c   saved policies (policy_store.h)
 *
 * One connection serves every thread. SQLite serialises single calls on it, but a transaction is
 * several calls, so every operation of the store holds st->lock from its first statement to its
 * last: no thread's statement can land inside another's transaction. */
#ifndef AUGSERVE_STORAGE_INTERNAL_H
#define AUGSERVE_STORAGE_INTERNAL_H

#ifndef AUGSERVE_STORAGE_INTERNAL
#error "storage_internal.h is private to the store's files (see above): use storage.h"
#endif

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

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

/* Milliseconds since the epoch: the store's times. */
int64_t storage_now_ms(void);

/* Binds text, or NULL for a NULL text. */
int storage_bind_text(sqlite3_stmt *stmt, int index, const char *text);
/* Binds a JSON value's text (NULL for no value); ENG_NO_MEMORY when it cannot be written. */
int storage_bind_json(sqlite3_stmt *stmt, int index, const json_t *value, struct eng_error *err);
/* A prepared statement, or NULL with err. */
sqlite3_stmt *storage_prepare(struct storage *st, const char *sql, struct eng_error *err);
/* Steps a statement that returns no rows to its end and finalizes it: 0, or -1 with err. */
int storage_run(struct storage *st, sqlite3_stmt *stmt, struct eng_error *err, const char *doing);

/* Takes the lock and begins a write transaction: 0, or -1 with err (and the lock released). */
int storage_begin(struct storage *st, struct eng_error *err);
/* Commits when ok is 0, else rolls back; unlocks; returns ok (or -1 when the commit fails). */
int storage_end(struct storage *st, int ok, struct eng_error *err);

/* A column's text copied (NULL for SQL NULL; *failed set when memory runs out), or its JSON
 * (*failed set when it does not parse). */
char *storage_column_text(sqlite3_stmt *stmt, int column, int *failed);
json_t *storage_column_json(sqlite3_stmt *stmt, int column, int *failed);

#endif
