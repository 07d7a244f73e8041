/* The shared fixture of the PostgreSQL multi-process tests (pg_cluster.h). */
#include "pg_cluster.h"

#include <limits.h>
#include <stdio.h>

#include "pg_test_db.h"

static char database[64];
static char url[512];

int pg_cluster_setup(void **state)
{
    pg_test_create_database(database, url);
    return harness_setup_models(state);
}

int pg_cluster_teardown(void **state)
{
    int rc = harness_teardown(state);
    pg_test_drop_database(database);
    return rc;
}

const char *pg_cluster_database(void)
{
    return database;
}

const char *pg_cluster_url(void)
{
    return url;
}

const char *pg_cluster_settings(const struct server *with, int job_workers, int poll_s)
{
    static char text[8192];
    char data_dir[PATH_MAX + 32] = "";
    if (with) snprintf(data_dir, sizeof data_dir, ", \"data_dir\": \"%s\"", with->data_dir);
    snprintf(text, sizeof text,
             "{\"debug_routes\": true, \"store\": \"%s\", \"models_dir\": \"%s\", "
             "\"job_workers\": %d, \"job_poll_s\": %d, \"heartbeat_s\": 1, \"lease_s\": %d%s}",
             url, harness_models_dir(), job_workers, poll_s, PG_CLUSTER_LEASE_S, data_dir);
    return text;
}
