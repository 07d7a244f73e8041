/* The PostgreSQL the tests' ".postgresql" runs use (tests/pg/pg-start.sh), as tests/CMakeLists.txt
 * names it in their environment: AUGSERVE_TEST_PG, the server's URL without a database
 * (postgresql://augserve@<socket folder>/), and AUGSERVE_PG_BIN, PostgreSQL's binaries. Each test
 * makes a database of its own and drops it. Failures fail the running cmocka test. */
#ifndef AUGSERVE_TEST_PG_TEST_DB_H
#define AUGSERVE_TEST_PG_TEST_DB_H

/* The server's URL, or NULL when this run is not on PostgreSQL. */
const char *pg_test_server(void);

/* On a PostgreSQL run without PostgreSQL's server binary: prints why and exits 77, which ctest
 * counts as skipped (pg-start.sh has then started nothing). */
void pg_test_skip_without_binaries(void);

/* A new database: its name into name, its URL (a `store` setting) into url. */
void pg_test_create_database(char name[64], char url[512]);

/* Drops it, even while a connection a failed test left is open. */
void pg_test_drop_database(const char *name);

/* Runs sql on the database `database`. */
void pg_test_sql(const char *database, const char *sql);

#endif
