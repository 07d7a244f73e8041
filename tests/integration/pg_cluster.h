/* What the tests of several processes on one PostgreSQL store share (tests/pg/pg-start.sh's
 * server): each test's own database, and the settings of a process on it. */
#ifndef AUGSERVE_TEST_PG_CLUSTER_H
#define AUGSERVE_TEST_PG_CLUSTER_H

#include "harness.h"

/* cmocka setup: a new database, and the harness's models_dir. */
int pg_cluster_setup(void **state);
/* cmocka teardown: the processes stop first (dropping the database under them would fail their
 * last writes), then the database is dropped. */
int pg_cluster_teardown(void **state);

/* The test's database (pg_test_sql's name) and its URL (a `store` setting). */
const char *pg_cluster_database(void);
const char *pg_cluster_url(void);

/* Settings on the test's store and models_dir; data_dir shared with `with` (NULL: a fresh one),
 * job_workers and job_poll_s as given; heartbeat_s 1 and lease_s PG_CLUSTER_LEASE_S, so a dead
 * worker's lease expires within seconds. In a static buffer, until the next call. */
#define PG_CLUSTER_LEASE_S 3
const char *pg_cluster_settings(const struct server *with, int job_workers, int poll_s);

#endif
