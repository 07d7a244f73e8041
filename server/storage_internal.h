/* The store's internals, shared by its files and by nothing else:
 *
 *   storage.c         opening the store, the schema's migrations, the statement layer below
 *   storage_sqlite.c  the SQLite backend (the default: data_dir/augserve.db)
 *   storage_pg.c      the PostgreSQL backend (a postgresql:// URL, through libpq)
 *   storage_notify.c  wake-ups between the processes of one store: NOTIFY, and the listener
 *   job_store.c       jobs and their events (job_store.h)
 *   dataset_store.c   datasets' records (dataset_store.h)
 *   policy_store.c    saved policies (policy_store.h)
 *   ctaugment_store.c CTAugment states (ctaugment_store.h)
 *   process_store.c   the processes sharing the store, by their heartbeats (process_store.h)
 *
 * Each operation's logic is written once, against the statement layer: SQL with `?` (or `?N`)
 * placeholders, typed binds, rows stepped through, columns read as text or numbers, and
 * begin/end around a transaction. A backend is a struct storage_driver. The few statements whose
 * SQL must differ are chosen in place with storage_sql (the claim: SKIP LOCKED on PostgreSQL),
 * and the schema's column types are the driver's (schema_sql).
 *
 * One connection serves every thread, on both backends. SQLite serialises single calls on it, and
 * a libpq connection must not be used by two threads at once; a transaction is several calls
 * anyway, so every operation of the store holds st->lock from its first statement to its last: no
 * thread's statement can land inside another's transaction. (Several PostgreSQL connections, a
 * pool, would let operations overlap; one is enough while one server's runners share it.) */
#ifndef AUGSERVE_STORAGE_INTERNAL_H
#define AUGSERVE_STORAGE_INTERNAL_H

#ifndef AUGSERVE_STORAGE_INTERNAL
#error "storage_internal.h is private to the store's files (see above): use storage.h"
#endif

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "core/error.h"
#include "storage.h"

/* What storage_step answers. */
enum { STORAGE_DONE = 0, STORAGE_ROW = 1, STORAGE_ERROR = -1 };

struct storage_stmt;

/* A backend. Statements are the driver's own structs, opening with a struct storage_stmt. */
struct storage_driver {
    /* Connects st->conn to `where` (the database file's path, or the URL): 0, or -1 with err. */
    int (*open)(struct storage *st, const char *where, struct eng_error *err);
    void (*close)(struct storage *st);
    /* Runs sql (statements without parameters): 0, or -1 with storage_errmsg set. */
    int (*exec)(struct storage *st, const char *sql);
    struct storage_stmt *(*prepare)(struct storage *st, const char *sql);
    /* Binds a parameter (1-based) to text (NULL: SQL NULL), an integer or a real. 0, or -1 when
     * memory runs out. */
    int (*bind_text)(struct storage_stmt *s, int index, const char *text);
    int (*bind_int64)(struct storage_stmt *s, int index, int64_t value);
    int (*bind_double)(struct storage_stmt *s, int index, double value);
    int (*step)(struct storage_stmt *s); /* STORAGE_ROW, STORAGE_DONE or STORAGE_ERROR */
    /* The current row's column (0-based): text owned by the statement (NULL for SQL NULL). */
    const char *(*column_text)(struct storage_stmt *s, int column);
    int64_t (*column_int64)(struct storage_stmt *s, int column);
    double (*column_double)(struct storage_stmt *s, int column);
    void (*finalize)(struct storage_stmt *s);
    /* Rows the last statement run to its end changed. */
    int64_t (*changes)(struct storage *st);
    /* The last failure's message, and whether it broke a UNIQUE constraint. */
    const char *(*errmsg)(struct storage *st);
    int (*duplicate)(struct storage *st);
    /* A migration's text in the backend's types (migrations are written in SQLite's: see
     * storage.c), to free; NULL when memory runs out. */
    char *(*schema_sql)(const char *sql);
    /* Begins a write transaction; and the migrations' one, which also keeps two processes from
     * migrating one database at once. */
    const char *begin_sql, *begin_migration_sql;
    /* A query of the database's clock in milliseconds since the epoch (storage_clock_ms), or NULL
     * when the process's clock is the database's. */
    const char *clock_sql;
};

/* The functions of a driver's table, by the names each driver file gives its own (static). */
#define STORAGE_DRIVER_FUNCTIONS                                                                   \
    .open = open_db, .close = close_db, .exec = exec, .prepare = prepare, .bind_text = bind_text,  \
    .bind_int64 = bind_int64, .bind_double = bind_double, .step = step,                            \
    .column_text = column_text, .column_int64 = column_int64, .column_double = column_double,      \
    .finalize = finalize, .changes = changes, .errmsg = errmsg, .duplicate = duplicate,            \
    .schema_sql = schema_sql

extern const struct storage_driver storage_sqlite_driver;
extern const struct storage_driver storage_pg_driver;

struct storage {
    const struct storage_driver *driver;
    void *conn; /* the driver's connection */
    pthread_mutex_t lock;
};

struct storage_stmt {
    const struct storage_driver *driver;
    struct storage *st;
};

/* storage_limit_idle_transactions on PostgreSQL (under st->lock): 0, or -1 with err. */
int storage_pg_limit_idle(struct storage *st, int seconds, struct eng_error *err);

/* Fails err with ENG_INTERNAL naming what was being done and the backend's message; returns -1. */
int storage_fail(struct storage *st, struct eng_error *err, const char *doing);

/* Runs sql (statements without parameters) under no lock of its own; 0 or -1 with err. */
int storage_exec(struct storage *st, const char *sql, struct eng_error *err, const char *doing);

/* The statement of this backend's dialect: sqlite on SQLite, postgresql on PostgreSQL. */
const char *storage_sql(struct storage *st, const char *sqlite, const char *postgresql);

/* The database's clock, in milliseconds since the epoch, under the lock (in a transaction): what
 * leases are timed by, so that the clocks of the machines sharing a PostgreSQL store need not
 * agree. On SQLite, the process's (the database is a file on this machine). 0, or -1 with err. */
int storage_clock_ms(struct storage *st, int64_t *now, struct eng_error *err);

/* A prepared statement, or NULL with err. */
struct storage_stmt *storage_prepare(struct storage *st, const char *sql, struct eng_error *err);
/* Binds text, or NULL for a NULL text. */
int storage_bind_text(struct storage_stmt *s, int index, const char *text);
int storage_bind_int64(struct storage_stmt *s, int index, int64_t value);
int storage_bind_double(struct storage_stmt *s, int index, double value);
/* Binds a JSON value's text (NULL for no value); ENG_NO_MEMORY when it cannot be written. */
int storage_bind_json(struct storage_stmt *s, int index, const json_t *value,
                      struct eng_error *err);
/* STORAGE_ROW, STORAGE_DONE or STORAGE_ERROR (storage_fail tells why). */
int storage_step(struct storage_stmt *s);
void storage_finalize(struct storage_stmt *s);
/* Steps a statement that returns no rows to its end and finalizes it: 0, or -1 with err. */
int storage_run(struct storage *st, struct storage_stmt *s, struct eng_error *err,
                const char *doing);
/* Rows the last statement changed; whether the last failure broke a UNIQUE constraint. */
int64_t storage_changes(struct storage *st);
int storage_duplicate(struct storage *st);

/* Takes the lock and begins a write transaction: 0, or -1 with err (and the lock released). */
int storage_begin(struct storage *st, struct eng_error *err);
/* Commits when ok is 0, else rolls back; unlocks; returns ok (or -1 when the commit fails). */
int storage_end(struct storage *st, int ok, struct eng_error *err);

/* storage_notify inside an operation that holds st->lock (a transaction's NOTIFY is sent at its
 * commit, and not at all when it rolls back). */
int storage_notify_within(struct storage *st, enum storage_channel channel, const char *payload,
                          struct eng_error *err);

/* The current row's column: text owned by the statement (NULL for SQL NULL), numbers. */
const char *storage_column(struct storage_stmt *s, int column);
int64_t storage_column_int64(struct storage_stmt *s, int column);
double storage_column_double(struct storage_stmt *s, int column);
/* A column's text copied (NULL for SQL NULL; *failed set when memory runs out), or its JSON
 * (*failed set when it does not parse). */
char *storage_column_text(struct storage_stmt *s, int column, int *failed);
json_t *storage_column_json(struct storage_stmt *s, int column, int *failed);

#endif
