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
 * released, since databases in the field ran it as it was. Both backends run the same entries,
 * written in SQLite's types; each driver's schema_sql turns them into its own (PostgreSQL:
 * 64-bit integers, doubles, identity keys), so an entry uses only the types it knows: INTEGER
 * (PRIMARY KEY AUTOINCREMENT), REAL, TEXT. JSON is TEXT on both: an event's data is read back as
 * the text it was written, which a JSONB column would reorder. */
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
    /* 5: leases (job_store.h): who runs a running job (a worker id, "host:pid:random"), when it
     * last said so (heartbeat_ms, by the database's clock), and the fencing token of its claim,
     * which every write of its outcome must carry. A job left running by a build before leases
     * has no heartbeat, and expires at once. */
    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT;"
    "ALTER TABLE jobs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN heartbeat_ms INTEGER;",
    /* 6: CTAugment states (ctaugment_store.h): the engine's state document, how many updates it
     * has had (each a read-modify-write of one row), who made it. */
    "CREATE TABLE ctaugment ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " state TEXT NOT NULL,"
    " owner TEXT,"
    " revision INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);",
    /* 7: processes (process_store.h): every process of the store, API server or worker, by its
     * worker id, and when its lease thread last said it was alive (by the database's clock): how
     * a process tells whether the owner of a file in the shared data_dir (an upload being
     * received) is still there, whatever machine it runs on. */
    "CREATE TABLE processes ("
    " id TEXT PRIMARY KEY,"
    " started_ms INTEGER NOT NULL,"
    " heartbeat_ms INTEGER NOT NULL);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int storage_schema_version(void)
{
    return SCHEMA_VERSION;
}

/* ---- The statement layer (storage_internal.h): the driver's calls, and what they share -------
 */

int storage_fail(struct storage *st, struct eng_error *err, const char *doing)
{
    return eng_fail(err, ENG_INTERNAL, "storage: %s: %s", doing, st->driver->errmsg(st));
}

int storage_exec(struct storage *st, const char *sql, struct eng_error *err, const char *doing)
{
    return st->driver->exec(st, sql) == 0 ? 0 : storage_fail(st, err, doing);
}

const char *storage_sql(struct storage *st, const char *sqlite, const char *postgresql)
{
    return st->driver == &storage_pg_driver ? postgresql : sqlite;
}

int64_t storage_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int storage_clock_ms(struct storage *st, int64_t *now, struct eng_error *err)
{
    if (!st->driver->clock_sql) {
        *now = storage_now_ms();
        return 0;
    }
    struct storage_stmt *s = storage_prepare(st, st->driver->clock_sql, err);
    if (!s) return -1;
    int rc = storage_step(s) == STORAGE_ROW ? 0 : storage_fail(st, err, "reading the clock");
    if (rc == 0) *now = storage_column_int64(s, 0);
    storage_finalize(s);
    return rc;
}

struct storage_stmt *storage_prepare(struct storage *st, const char *sql, struct eng_error *err)
{
    struct storage_stmt *s = st->driver->prepare(st, sql);
    if (!s) storage_fail(st, err, "preparing a statement");
    return s;
}

int storage_bind_text(struct storage_stmt *s, int index, const char *text)
{
    return s->driver->bind_text(s, index, text);
}

int storage_bind_int64(struct storage_stmt *s, int index, int64_t value)
{
    return s->driver->bind_int64(s, index, value);
}

int storage_bind_double(struct storage_stmt *s, int index, double value)
{
    return s->driver->bind_double(s, index, value);
}

int storage_bind_json(struct storage_stmt *s, int index, const json_t *value, struct eng_error *err)
{
    if (!value) return storage_bind_text(s, index, NULL) == 0 ? 0 : eng_no_memory(err);
    char *text = json_text(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    int rc = text ? storage_bind_text(s, index, text) : -1;
    free(text);
    return rc == 0 ? 0 : eng_no_memory(err);
}

int storage_step(struct storage_stmt *s)
{
    return s->driver->step(s);
}

void storage_finalize(struct storage_stmt *s)
{
    if (s) s->driver->finalize(s);
}

int storage_run(struct storage *st, struct storage_stmt *s, struct eng_error *err,
                const char *doing)
{
    int rc = storage_step(s);
    if (rc != STORAGE_DONE) storage_fail(st, err, doing);
    storage_finalize(s);
    return rc == STORAGE_DONE ? 0 : -1;
}

int64_t storage_changes(struct storage *st)
{
    return st->driver->changes(st);
}

int storage_duplicate(struct storage *st)
{
    return st->driver->duplicate(st);
}

int storage_begin(struct storage *st, struct eng_error *err)
{
    pthread_mutex_lock(&st->lock);
    if (storage_exec(st, st->driver->begin_sql, err, "starting a transaction") == 0) return 0;
    pthread_mutex_unlock(&st->lock);
    return -1;
}

int storage_end(struct storage *st, int ok, struct eng_error *err)
{
    if (ok == 0 && storage_exec(st, "COMMIT", err, "committing") != 0) ok = -1;
    if (ok != 0) st->driver->exec(st, "ROLLBACK");
    pthread_mutex_unlock(&st->lock);
    return ok;
}

const char *storage_column(struct storage_stmt *s, int column)
{
    return s->driver->column_text(s, column);
}

int64_t storage_column_int64(struct storage_stmt *s, int column)
{
    return s->driver->column_int64(s, column);
}

double storage_column_double(struct storage_stmt *s, int column)
{
    return s->driver->column_double(s, column);
}

char *storage_column_text(struct storage_stmt *s, int column, int *failed)
{
    const char *text = storage_column(s, column);
    if (!text) return NULL;
    char *copy = strdup(text);
    if (!copy) *failed = 1;
    return copy;
}

json_t *storage_column_json(struct storage_stmt *s, int column, int *failed)
{
    const char *text = storage_column(s, column);
    if (!text) return NULL;
    json_t *value = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!value) *failed = 1;
    return value;
}

/* ---- Opening ---------------------------------------------------------------------------------
 */

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
    struct storage_stmt *s =
        st->driver->prepare(st, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (!s) return -1;
    int version = -1;
    int rc = storage_step(s);
    if (rc == STORAGE_ROW)
        version = (int)storage_column_int64(s, 0);
    else if (rc == STORAGE_DONE)
        version = 0;
    storage_finalize(s);
    return version;
}

/* Runs one migration, in the driver's types. */
static int run_migration(struct storage *st, const char *sql, struct eng_error *err)
{
    char *text = st->driver->schema_sql(sql);
    if (!text) return eng_no_memory(err);
    int rc = storage_exec(st, text, err, "migrating the schema");
    free(text);
    return rc;
}

/* Runs the migrations the database has not seen, in one transaction: a failure leaves it as it
 * was. `where` names the database in messages. */
static int migrate(struct storage *st, const char *where, struct eng_error *err)
{
    if (storage_exec(st, st->driver->begin_migration_sql, err, "starting the migration") != 0 ||
        storage_exec(st, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)", err,
                     "creating the meta table") != 0) {
        st->driver->exec(st, "ROLLBACK");
        return -1;
    }
    int version = read_schema_version(st);
    if (version < 0) {
        storage_fail(st, err, "reading meta.schema_version");
    } else if (version > SCHEMA_VERSION) {
        eng_fail(err, ENG_INTERNAL,
                 "storage: %s has schema version %d, newer than this augserve's %d: run the "
                 "augserve that wrote it, or another %s",
                 where, version, SCHEMA_VERSION,
                 st->driver == &storage_pg_driver ? "database" : "data_dir");
    } else {
        for (; version < SCHEMA_VERSION; version++)
            if (run_migration(st, migrations[version], err) != 0) break;
        struct storage_stmt *set =
            version == SCHEMA_VERSION
                ? storage_prepare(st,
                                  "INSERT INTO meta VALUES ('schema_version', ?)"
                                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                  err)
                : NULL;
        char text[16];
        snprintf(text, sizeof text, "%d", version);
        if (set && storage_bind_text(set, 1, text) != 0) {
            storage_finalize(set);
            set = NULL;
            eng_no_memory(err);
        }
        if (set && storage_run(st, set, err, "migrating the schema") == 0 &&
            storage_exec(st, "COMMIT", err, "committing the migration") == 0)
            return 0;
    }
    st->driver->exec(st, "ROLLBACK");
    return -1;
}

/* The driver a `store` setting names, and where it connects: NULL with err for no backend. */
static const struct storage_driver *driver_for(const char *store, const char *data_dir,
                                               char **where, struct eng_error *err)
{
    *where = NULL;
    if (strcmp(store, "sqlite") == 0) {
        if (asprintf(where, "%s/augserve.db", data_dir) < 0) *where = NULL;
        if (!*where) eng_no_memory(err);
        return *where ? &storage_sqlite_driver : NULL;
    }
    if (!storage_is_postgresql_url(store)) {
        eng_fail(err, ENG_INVALID, "storage: store must be sqlite or a postgresql:// URL, not %s",
                 store);
        return NULL;
    }
    *where = strdup(store);
    if (!*where) eng_no_memory(err);
    return *where ? &storage_pg_driver : NULL;
}

int storage_is_postgresql_url(const char *store)
{
    return strncmp(store, "postgresql://", 13) == 0 || strncmp(store, "postgres://", 11) == 0;
}

struct storage *storage_open(const char *store, const char *data_dir, struct eng_error *err)
{
    if (storage_make_dirs(data_dir, err) != 0) return NULL;
    char *where;
    const struct storage_driver *driver = driver_for(store, data_dir, &where, err);
    if (!driver) return NULL;
    struct storage *st = calloc(1, sizeof *st);
    if (!st) {
        eng_no_memory(err);
        free(where);
        return NULL;
    }
    st->driver = driver;
    pthread_mutex_init(&st->lock, NULL);
    /* A URL may hold a password: messages name the database file, or "the PostgreSQL store". */
    int rc =
        driver->open(st, where, err) == 0 &&
                migrate(st, driver == &storage_pg_driver ? "the PostgreSQL store" : where, err) == 0
            ? 0
            : -1;
    free(where);
    if (rc == 0) return st;
    storage_close(st);
    return NULL;
}

int storage_limit_idle_transactions(struct storage *st, int seconds, struct eng_error *err)
{
    if (storage_is_local(st)) return 0;
    pthread_mutex_lock(&st->lock);
    int rc = storage_pg_limit_idle(st, seconds, err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int storage_is_local(const struct storage *st)
{
    return st->driver == &storage_sqlite_driver;
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
    if (st->conn) st->driver->close(st);
    pthread_mutex_destroy(&st->lock);
    free(st);
}
