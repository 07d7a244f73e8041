#include "pg_test_db.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *pg_test_server(void)
{
    const char *url = getenv("AUGSERVE_TEST_PG");
    return url && url[0] ? url : NULL;
}

void pg_test_skip_without_binaries(void)
{
    const char *bin = getenv("AUGSERVE_PG_BIN");
    char postgres[512];
    snprintf(postgres, sizeof postgres, "%s/postgres", bin ? bin : "");
    if (!pg_test_server() || access(postgres, X_OK) == 0) return;
    printf("skipped: no PostgreSQL server binary at %s (install postgresql-15: "
           "docker/install-deps.sh)\n",
           postgres);
    exit(77);
}

void pg_test_sql(const char *database, const char *sql)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", pg_test_server(), database);
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) fail_msg("PostgreSQL: %s", PQerrorMessage(conn));
    PGresult *r = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        fail_msg("PostgreSQL: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(conn);
}

void pg_test_create_database(char name[64], char url[512])
{
    static int made;
    snprintf(name, 64, "augserve_test_%d_%d", (int)getpid(), made++);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    pg_test_sql("postgres", sql);
    snprintf(url, 512, "%s%s", pg_test_server(), name);
}

void pg_test_drop_database(const char *name)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_test_sql("postgres", sql);
}
