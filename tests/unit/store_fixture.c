#include "store_fixture.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg_test_db.h"
#include "storage.h"

const char *store_group(const char *suite)
{
    static char name[64];
    snprintf(name, sizeof name, "%s on %s", suite, pg_test_server() ? "postgresql" : "sqlite");
    pg_test_skip_without_binaries();
    return name;
}

int store_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/augserve-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->store, sizeof f->store, "sqlite");
    if (pg_test_server()) pg_test_create_database(f->others[f->other_count++], f->store);
    struct eng_error err;
    f->st = storage_open(f->store, f->dir, &err);
    if (!f->st) {
        fprintf(stderr, "storage_open: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

int store_teardown(void **state)
{
    struct fixture *f = *state;
    storage_close(f->st);
    for (int i = 0; i < f->other_count; i++)
        pg_test_drop_database(f->others[i]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

void store_fixture_other(struct fixture *f, const char *name, char store[512], char dir[128])
{
    snprintf(dir, 128, "%s/%s", f->dir, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(store, 512, "sqlite");
    if (!pg_test_server()) return;
    assert_true(f->other_count < STORE_FIXTURE_MAX_OTHERS);
    pg_test_create_database(f->others[f->other_count++], store);
}

void store_fixture_sql(const char *store, const char *dir, const char *sql)
{
    if (strcmp(store, "sqlite") != 0) {
        pg_test_sql(strrchr(store, '/') + 1, sql);
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "%s/augserve.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("SQLite: %s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}
