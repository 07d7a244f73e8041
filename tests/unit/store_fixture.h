/* The store tests' fixture: a fresh store (storage_open) in a temporary folder of its own, removed
 * with everything in it by the teardown. The backend is the run's: SQLite by default; PostgreSQL
 * when AUGSERVE_TEST_PG holds a server's URL without a database (tests/pg/pg-start.sh's, which
 * tests/CMakeLists.txt passes to the ".postgresql" run of each store test), each test then on a
 * database of its own, dropped by the teardown. The same test code runs on both. */
#ifndef AUGSERVE_TEST_STORE_FIXTURE_H
#define AUGSERVE_TEST_STORE_FIXTURE_H

#define STORE_FIXTURE_MAX_OTHERS 4

struct storage;

struct fixture {
    char dir[64];    /* data_dir */
    char store[512]; /* the store setting: "sqlite" or the test database's URL */
    struct storage *st;
    /* The databases made for the test (PostgreSQL): its own, then store_fixture_other's. */
    char others[STORE_FIXTURE_MAX_OTHERS][64];
    int other_count;
};

/* Called first by a store test's main: the group's name, "<suite> on sqlite" or "<suite> on
 * postgresql". On the PostgreSQL run without PostgreSQL's binaries (AUGSERVE_PG_BIN), it prints
 * why and exits 77, which ctest counts as skipped. */
const char *store_group(const char *suite);

/* cmocka setup and teardown: *state is the struct fixture. */
int store_setup(void **state);
int store_teardown(void **state);

/* Another empty place of the run's backend for a store, dropped by the teardown: the folder
 * f->dir/name as its data_dir, and on PostgreSQL a new database. Its store setting into store. */
void store_fixture_other(struct fixture *f, const char *name, char store[512], char dir[128]);

/* Runs SQL straight on the database of (store, dir), beside the store: what another build of
 * augserve left there. */
void store_fixture_sql(const char *store, const char *dir, const char *sql);

#endif
