/* The embedded store: one SQLite database under data_dir, opened at start-up. Later resources
 * (jobs, models, searches) keep their records here. */
#ifndef AUGSERVE_STORAGE_H
#define AUGSERVE_STORAGE_H

#include <stddef.h>

#include "core/error.h"

struct storage;

/* Creates data_dir (and parents) if needed and opens data_dir/augserve.db, creating the schema.
 * NULL with err filled on failure. */
struct storage *storage_open(const char *data_dir, struct eng_error *err);

/* 0 when the database answers a query, -1 otherwise. Safe from any thread. */
int storage_ping(struct storage *st);

void storage_close(struct storage *st);

#endif
