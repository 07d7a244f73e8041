/* The store, opened at start-up: by default one SQLite database under data_dir, or a PostgreSQL
 * database (the `store` setting, a postgresql:// URL) that several machines can share. Resources
 * keep their records here through their own interfaces (job_store.h for jobs, dataset_store.h for
 * datasets, policy_store.h for saved policies, ctaugment_store.h for CTAugment states); no SQL
 * leaves server/storage.c and the store's own files (storage_internal.h), so either backend stands
 * behind the same functions. */
#ifndef AUGSERVE_STORAGE_H
#define AUGSERVE_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct storage;
struct storage_listener;

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

/* On PostgreSQL, has the server end this process's session when a transaction of it stays idle
 * for `seconds` (lease_s): a process frozen inside a transaction (SIGSTOP, a VM paused) would
 * otherwise keep the rows it locked, the jobs it runs among them, from the other processes' lease
 * sweeps (SKIP LOCKED) for as long as it stays frozen. Such a process has held up its own
 * heartbeats as long (they wait for its one connection), so its leases are over anyway; it
 * connects again, with the same limit, before its next statement. Nothing on SQLite, one
 * process's. 0, or -1 with err. */
int storage_limit_idle_transactions(struct storage *st, int seconds, struct eng_error *err);

/* Milliseconds since the epoch by this process's clock: the times records are made with. */
int64_t storage_now_ms(void);

/* The schema version this build writes. */
int storage_schema_version(void);

/* 0 when the database answers a query, -1 otherwise. Safe from any thread. */
int storage_ping(struct storage *st);

void storage_close(struct storage *st);

/* ---- Wake-ups between the processes of one store ---------------------------------------------
 * On PostgreSQL every process sharing the store (API servers, workers) is told what changed
 * elsewhere through NOTIFY, each LISTENing on a connection of its own (storage_notify.c). Nothing
 * depends on a wake-up arriving: each hearer also looks at the store on a slow poll, so a lost
 * notification (a listener reconnecting) costs time, never a job. On SQLite the store has one
 * process, which wakes its own threads: storage_notify does nothing there, and no listener hears
 * anything. */
enum storage_channel {
    STORAGE_CHANNEL_JOBS,     /* a job was queued, new or again: idle runners claim */
    STORAGE_CHANNEL_CANCEL,   /* a job's cancel was requested (payload: its id) */
    STORAGE_CHANNEL_MODELS,   /* a model was added to or removed from models_dir (payload: its name)
                               */
    STORAGE_CHANNEL_POLICIES, /* a saved policy was saved or deleted (payload: its name) */
    STORAGE_CHANNEL_EVENTS,   /* a job has new events (payload: its id): its streams read them */
    STORAGE_CHANNELS
};

/* Tells every process listening on the store, this one included, once the current transaction
 * commits (or at once outside one). payload: short text, or NULL. 0, or -1 with err. */
int storage_notify(struct storage *st, enum storage_channel channel, const char *payload,
                   struct eng_error *err);

/* What a listener calls on its own thread for each notification heard; after it reconnected, once
 * per channel with payload NULL: what was said while it was away is lost, so look at the store. */
typedef void (*storage_heard_fn)(void *arg, enum storage_channel channel, const char *payload);

/* On a PostgreSQL store (a URL), a connection of its own that LISTENs on every channel and a thread
 * that hears them, reconnecting when the connection drops: NULL with err when it cannot connect
 * now. On SQLite a listener that never hears anything. */
struct storage_listener *storage_listen(const char *store, storage_heard_fn heard, void *arg,
                                        struct eng_error *err);
/* Whether notifications reach this listener now: its connection is up. 0 on SQLite. */
int storage_listening(struct storage_listener *l);
/* Stops its thread and closes its connection (NULL: nothing). */
void storage_listener_close(struct storage_listener *l);

/* mkdir -p, for the store's files under data_dir (mode 0750): 0, or -1 with err. */
int storage_make_dirs(const char *path, struct eng_error *err);

#endif
