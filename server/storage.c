#include "storage.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCHEMA_VERSION 1
#define STRINGIFY_(x)  #x
#define STRINGIFY(x)   STRINGIFY_(x)

struct storage {
    sqlite3 *db; /* opened SQLITE_OPEN_FULLMUTEX: usable from every thread */
};

/* mkdir -p */
static int make_dirs(const char *path, struct eng_error *err)
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
            eng_fail(err, ENG_INTERNAL, "data_dir: cannot create %s: %s", copy, strerror(errno));
            free(copy);
            return -1;
        }
        *slash = saved;
        if (saved == '\0') break;
    }
    free(copy);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        eng_fail(err, ENG_INTERNAL, "data_dir: %s is not a directory", path);
        return -1;
    }
    return 0;
}

struct storage *storage_open(const char *data_dir, struct eng_error *err)
{
    if (make_dirs(data_dir, err) != 0) return NULL;
    struct storage *st = calloc(1, sizeof *st);
    char *path = NULL;
    if (!st || asprintf(&path, "%s/augserve.db", data_dir) < 0) {
        eng_no_memory(err);
        free(st);
        return NULL;
    }
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    char *sql_err = NULL;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(st->db, 5000);
        rc = sqlite3_exec(st->db,
                          "PRAGMA journal_mode=WAL;"
                          "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
                          "INSERT OR IGNORE INTO meta VALUES ('schema_version', '" STRINGIFY(
                              SCHEMA_VERSION) "');",
                          NULL, NULL, &sql_err);
    }
    if (rc != SQLITE_OK) {
        eng_fail(err, ENG_INTERNAL, "storage: cannot open %s: %s", path,
                 sql_err ? sql_err : sqlite3_errmsg(st->db));
        sqlite3_free(sql_err);
        sqlite3_close(st->db);
        free(path);
        free(st);
        return NULL;
    }
    free(path);
    return st;
}

static int read_schema_version(void *out, int columns, char **values, char **names)
{
    *(int *)out = columns == 1 && values[0] ? atoi(values[0]) : -1;
    return 0;
}

int storage_ping(struct storage *st)
{
    int version = -1;
    int rc = sqlite3_exec(st->db, "SELECT value FROM meta WHERE key = 'schema_version'",
                          read_schema_version, &version, NULL);
    return rc == SQLITE_OK && version == SCHEMA_VERSION ? 0 : -1;
}

void storage_close(struct storage *st)
{
    if (!st) return;
    sqlite3_close(st->db);
    free(st);
}
