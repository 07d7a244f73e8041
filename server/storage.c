#include "storage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "json_text.h"
#include "storage_internal.h"

/* The schema, as the migrations that build it: migrations[v - 1] takes a database from version
 * v - 1 to v. A new table or column is a new entry at the end; an entry never changes once
 * released, since databases in the field ran it as it was. */
static const char *const migrations[] = {
    /* 1: the meta table alone (storage_open creates it before any migration runs). */
    "",
    /* 2: jobs and their events (job_store.h). seq orders jobs by creation; an event's id is
     * global and only grows (AUTOINCREMENT never reuses one), so a client's Last-Event-ID stays
     * meaningful. Times are milliseconds since the epoch. */
    "CREATE TABLE jobs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL,"
    " params TEXT NOT NULL,"
    " owner TEXT,"
    " parent TEXT REFERENCES jobs(id),"
    " state TEXT NOT NULL,"
    " progress REAL NOT NULL DEFAULT 0,"
    " phase TEXT,"
    " result TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " checkpoint TEXT,"
    " created_ms INTEGER NOT NULL,"
    " started_ms INTEGER,"
    " finished_ms INTEGER);"
    "CREATE INDEX jobs_by_state ON jobs(state, seq);"
    "CREATE INDEX jobs_by_owner ON jobs(owner, seq);"
    "CREATE INDEX jobs_by_parent ON jobs(parent);"
    "CREATE TABLE job_events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " job TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " time_ms INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL);"
    "CREATE INDEX job_events_by_job ON job_events(job, id);",
    /* 3: datasets (dataset_store.h): the record of each dataset the server knows, whatever its
     * state; the cache itself is the folder data_dir/datasets/<id>. */
    "CREATE TABLE datasets ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " job TEXT,"
    " error TEXT,"
    " source TEXT NOT NULL,"
    " hash TEXT,"
    " owner TEXT,"
    " created_ms INTEGER NOT NULL);"
    "CREATE INDEX datasets_by_hash ON datasets(hash, seq);",
    /* 4: saved policies (policy_store.h): the compiled document by name, who saved it first. */
    "CREATE TABLE policies ("
    " name TEXT PRIMARY KEY,"
    " document TEXT NOT NULL,"
    " owner TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int storage_schema_version(void)
{
    return SCHEMA_VERSION;
}

int storage_fail(struct storage *st, struct eng_error *err, const char *doing)
{
    return eng_fail(err, ENG_INTERNAL, "storage: %s: %s", doing, sqlite3_errmsg(st->db));
}

int storage_exec(struct storage *st, const char *sql, struct eng_error *err, const char *doing)
{
    char *sql_err = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &sql_err) == SQLITE_OK) return 0;
    eng_fail(err, ENG_INTERNAL, "storage: %s: %s", doing,
             sql_err ? sql_err : sqlite3_errmsg(st->db));
    sqlite3_free(sql_err);
    return -1;
}

/* ---- What the store's files share (storage_internal.h) ----------------------------------------
 */

int64_t storage_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int storage_bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    return text ? sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT)
                : sqlite3_bind_null(stmt, index);
}

int storage_bind_json(sqlite3_stmt *stmt, int index, const json_t *value, struct eng_error *err)
{
    if (!value) return sqlite3_bind_null(stmt, index) == SQLITE_OK ? 0 : eng_no_memory(err);
    char *text = json_text(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (!text) return eng_no_memory(err);
    int rc = sqlite3_bind_text(stmt, index, text, -1, free);
    return rc == SQLITE_OK ? 0 : eng_no_memory(err);
}

sqlite3_stmt *storage_prepare(struct storage *st, const char *sql, struct eng_error *err)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        storage_fail(st, err, "preparing a statement");
        return NULL;
    }
    return stmt;
}

int storage_run(struct storage *st, sqlite3_stmt *stmt, struct eng_error *err, const char *doing)
{
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) storage_fail(st, err, doing);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

int storage_begin(struct storage *st, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    if (storage_exec(st, "BEGIN IMMEDIATE", err, "starting a transaction") == 0) return 0;
    pthread_mutex_unlock(&st->lock);
    return -1;
}

int storage_end(struct storage *st, int ok, struct eng_error *err)
{
    if (ok == 0 && storage_exec(st, "COMMIT", err, "committing") != 0) ok = -1;
    if (ok != 0) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->lock);
    return ok;
}

char *storage_column_text(sqlite3_stmt *stmt, int column, int *failed)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    if (!text) return NULL;
    char *copy = strdup((const char *)text);
    if (!copy) *failed = 1;
    return copy;
}

json_t *storage_column_json(sqlite3_stmt *stmt, int column, int *failed)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    if (!text) return NULL;
    json_t *value = json_loads((const char *)text, JSON_DECODE_ANY, NULL);
    if (!value) *failed = 1;
    return value;
}

int storage_make_dirs(const char *path, struct eng_error *err)
{
    char *copy = strdup(path);
    if (!copy) {
        eng_no_memory(err);
        return -1;
    }
    for (char *slash = copy + 1;; slash++) {
        char saved = *slash;
        if (saved != '/' && saved != '\0') continue;
        *slash = '\0';
        if (mkdir(copy, 0750) != 0 && errno != EEXIST) {
            eng_fail(err, ENG_INTERNAL, "cannot create the folder %s: %s", copy, strerror(errno));
            free(copy);
            return -1;
        }
        *slash = saved;
        if (saved == '\0') break;
    }
    free(copy);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        eng_fail(err, ENG_INTERNAL, "%s is not a folder", path);
        return -1;
    }
    return 0;
}

/* meta.schema_version: 0 when the database is new, -1 on error. */
static int read_schema_version(struct storage *st)
{
    sqlite3_stmt *stmt = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &stmt,
                           NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        version = sqlite3_column_int(stmt, 0);
    else if (rc == SQLITE_DONE)
        version = 0;
    sqlite3_finalize(stmt);
    return version;
}

/* Runs the migrations the database has not seen, in one transaction: a failure leaves it as it
 * was. */
static int migrate(struct storage *st, const char *path, struct eng_error *err)
{
    if (storage_exec(st, "BEGIN IMMEDIATE", err, "starting the migration") != 0) return -1;
    int version = read_schema_version(st);
    if (version < 0) {
        storage_fail(st, err, "reading meta.schema_version");
    } else if (version > SCHEMA_VERSION) {
        eng_fail(err, ENG_INTERNAL,
                 "storage: %s has schema version %d, newer than this augserve's %d: run the "
                 "augserve that wrote it, or another data_dir",
                 path, version, SCHEMA_VERSION);
    } else {
        for (; version < SCHEMA_VERSION; version++)
            if (storage_exec(st, migrations[version], err, "migrating the schema") != 0) break;
        char set[96];
        snprintf(set, sizeof set, "INSERT OR REPLACE INTO meta VALUES ('schema_version', '%d')",
                 version);
        if (version == SCHEMA_VERSION && storage_exec(st, set, err, "migrating the schema") == 0 &&
            storage_exec(st, "COMMIT", err, "committing the migration") == 0)
            return 0;
    }
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

struct storage *storage_open(const char *data_dir, struct eng_error *err)
{
    if (storage_make_dirs(data_dir, err) != 0) return NULL;
    struct storage *st = calloc(1, sizeof *st);
    char *path = NULL;
    if (!st || asprintf(&path, "%s/augserve.db", data_dir) < 0) {
        eng_no_memory(err);
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->lock, NULL);
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        eng_fail(err, ENG_INTERNAL, "storage: cannot open %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 5000);
    /* WAL with synchronous=NORMAL: a commit survives the process dying (kill -9: the kernel has
     * the write), and only a power cut may lose the last ones, for a commit without an fsync,
     * which jobs checkpointing every batch need. */
    if (storage_exec(st,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);",
                     err, "opening the database") != 0 ||
        migrate(st, path, err) != 0)
        goto fail;
    free(path);
    return st;
fail:
    free(path);
    storage_close(st);
    return NULL;
}

int storage_ping(struct storage *st)
{
    pthread_mutex_lock(&st->lock);
    int version = read_schema_version(st);
    pthread_mutex_unlock(&st->lock);
    return version == SCHEMA_VERSION ? 0 : -1;
}

void storage_close(struct storage *st)
{
    if (!st) return;
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->lock);
    free(st);
}
