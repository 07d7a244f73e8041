/* The store's SQLite backend (storage_internal.h): data_dir/augserve.db, one connection opened
 * SQLITE_OPEN_FULLMUTEX. Statements map one to one onto sqlite3's, which the layer was shaped
 * after. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "storage_internal.h"

struct sqlite_stmt {
    struct storage_stmt base;
    sqlite3_stmt *stmt;
};

static sqlite3 *db_of(struct storage *st)
{
    return st->conn;
}

static sqlite3_stmt *stmt_of(struct storage_stmt *s)
{
    return ((struct sqlite_stmt *)s)->stmt;
}

static int exec(struct storage *st, const char *sql)
{
    return sqlite3_exec(db_of(st), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int open_db(struct storage *st, const char *path, struct eng_error *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        eng_fail(err, ENG_INTERNAL, "storage: cannot open %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    st->conn = db;
    sqlite3_busy_timeout(db, 5000);
    /* WAL with synchronous=NORMAL: a commit survives the process dying (kill -9: the kernel has
     * the write), and only a power cut may lose the last ones, for a commit without an fsync,
     * which jobs checkpointing every batch need. */
    return storage_exec(
        st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err,
        "opening the database");
}

static void close_db(struct storage *st)
{
    sqlite3_close(db_of(st));
}

static struct storage_stmt *prepare(struct storage *st, const char *sql)
{
    struct sqlite_stmt *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (sqlite3_prepare_v2(db_of(st), sql, -1, &s->stmt, NULL) != SQLITE_OK) {
        free(s);
        return NULL;
    }
    s->base.driver = &storage_sqlite_driver;
    s->base.st = st;
    return &s->base;
}

static int bind_text(struct storage_stmt *s, int index, const char *text)
{
    int rc = text ? sqlite3_bind_text(stmt_of(s), index, text, -1, SQLITE_TRANSIENT)
                  : sqlite3_bind_null(stmt_of(s), index);
    return rc == SQLITE_OK ? 0 : -1;
}

static int bind_int64(struct storage_stmt *s, int index, int64_t value)
{
    return sqlite3_bind_int64(stmt_of(s), index, value) == SQLITE_OK ? 0 : -1;
}

static int bind_double(struct storage_stmt *s, int index, double value)
{
    return sqlite3_bind_double(stmt_of(s), index, value) == SQLITE_OK ? 0 : -1;
}

static int step(struct storage_stmt *s)
{
    int rc = sqlite3_step(stmt_of(s));
    return rc == SQLITE_ROW ? STORAGE_ROW : rc == SQLITE_DONE ? STORAGE_DONE : STORAGE_ERROR;
}

static const char *column_text(struct storage_stmt *s, int column)
{
    return (const char *)sqlite3_column_text(stmt_of(s), column);
}

static int64_t column_int64(struct storage_stmt *s, int column)
{
    return sqlite3_column_int64(stmt_of(s), column);
}

static double column_double(struct storage_stmt *s, int column)
{
    return sqlite3_column_double(stmt_of(s), column);
}

static void finalize(struct storage_stmt *s)
{
    sqlite3_finalize(stmt_of(s));
    free(s);
}

static int64_t changes(struct storage *st)
{
    return sqlite3_changes(db_of(st));
}

static const char *errmsg(struct storage *st)
{
    return sqlite3_errmsg(db_of(st));
}

static int duplicate(struct storage *st)
{
    return sqlite3_extended_errcode(db_of(st)) == SQLITE_CONSTRAINT_UNIQUE;
}

/* The migrations are written in SQLite's types. */
static char *schema_sql(const char *sql)
{
    return strdup(sql);
}

const struct storage_driver storage_sqlite_driver = {
    STORAGE_DRIVER_FUNCTIONS,
    /* IMMEDIATE: the write lock from the start, so two writers wait on busy_timeout rather than
     * one failing with SQLITE_BUSY when it upgrades a read. */
    .begin_sql = "BEGIN IMMEDIATE", .begin_migration_sql = "BEGIN IMMEDIATE",
    /* No clock_sql: the database file is on this machine (one process per data_dir), whose clock
     * times the leases. */
};
