/* The store, opened at start-up: by default one SQLite database under data_dir, or a PostgreSQL
 * database (the `store` setting, a postgresql:// URL) that several machines can share. Resources
 * keep their records here through their own interfaces (job_store.h for jobs, dataset_store.h for
 * datasets, policy_store.h for saved policies, ctaugment_store.h for CTAugment states); no SQL
 * leaves server/storage.c and the store's own files (storage_internal.h), so either backend stands
 * behind the same functions. */
#ifndef AUGSERVE_STORAGE_H
#define AUGSERVE_STORAGE_H

#include <stddef.h>

#include "core/error.h"

struct storage;

/* Creates data_dir (and parents) if needed and opens the store: data_dir/augserve.db when store is
 * "sqlite", else the PostgreSQL database of the postgresql:// URL. Brings its schema up to this
 * build's version (meta.schema_version) one migration at a time, in one transaction. A database
 * written by a newer build is refused, and so are another store value, a URL libpq cannot read
 * and a server it cannot reach: NULL with err filled. */
struct storage *storage_open(const char *store, const char *data_dir, struct eng_error *err);

/* Whether a `store` value is a PostgreSQL URL (postgresql:// or postgres://). */
int storage_is_postgresql_url(const char *store);

/* Whether the store is SQLite's file under data_dir, which one process uses at a time (a
 * PostgreSQL store is shared: jobs are claimed under leases, job_store.h). */
int storage_is_local(const struct storage *st);

/* The schema version this build writes. */
int storage_schema_version(void);

/* 0 when the database answers a query, -1 otherwise. Safe from any thread. */
int storage_ping(struct storage *st);

void storage_close(struct storage *st);

/* mkdir -p, for the store's files under data_dir (mode 0750): 0, or -1 with err. */
int storage_make_dirs(const char *path, struct eng_error *err);

#endif
