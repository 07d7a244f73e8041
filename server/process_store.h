/* The processes sharing a store (API servers and workers) in the store's `processes` table: each
 * by its worker id (leases_worker_id), with the heartbeat its lease thread writes every
 * heartbeat_s. A process on another machine cannot be asked whether it is alive, but its
 * heartbeat can: one silent for lease_s has died or frozen, as its jobs' leases say. What a
 * process owns outside the store (the upload it is receiving, uploads.h) is named by its worker id
 * and kept while this says the owner lives. Every function is one atomic operation of the store,
 * safe from any thread; no caller sees SQL. */
#ifndef AUGSERVE_PROCESS_STORE_H
#define AUGSERVE_PROCESS_STORE_H

#include <stdint.h>

#include "core/error.h"

struct storage;

/* Records that process id is alive now (by the database's clock), making its row the first time,
 * and removes the rows of processes silent for longer than stale_ms (a process silent that long
 * that beats again just makes its row anew). 0, or -1 with err. */
int process_store_beat(struct storage *st, const char *id, int64_t stale_ms, struct eng_error *err);

/* 1 when process id beat within the last stale_ms, 0 when it did not or has no row, -1 with
 * err. */
int process_store_live(struct storage *st, const char *id, int64_t stale_ms, struct eng_error *err);

#endif
