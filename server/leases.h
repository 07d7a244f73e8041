/* The leases of the jobs this process runs (job_store.h, "Leases"): the process's worker id, made
 * once; a thread that, every heartbeat_s, renews the heartbeat of each job this process runs and
 * then sweeps the store for expired leases, any process's (job_store_expire); and which owners are
 * known to have ended, so that their jobs need not wait out lease_s. The same thread writes the
 * process's own heartbeat (process_store.h) on every beat, from leases_start on, and sweeps the
 * partial uploads of processes gone (uploads_sweep).
 *
 * A runner holds a struct lease for the job it runs (leases_hold) until it has recorded the job's
 * end (leases_release). A heartbeat that finds the lease gone (the job expired while this process
 * was frozen or cut off from the store, and another attempt may run it now) sets lease->lost: the
 * runner stops the job as a cancel would, and commits nothing. */
#ifndef AUGSERVE_LEASES_H
#define AUGSERVE_LEASES_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/error.h"
#include "job_store.h"

struct app;
struct leases;

struct lease {
    char id[JOB_ID_SIZE];
    int64_t token;   /* the claim's fencing token */
    atomic_int lost; /* set once the lease is known lost */
    struct lease *next;
};

/* This process's worker id, "host:pid:random" (8 random hex digits, so that a later process of
 * the same pid has another id), made on the first call. */
const char *leases_worker_id(void);

/* Whether the process of worker id owner is known to have ended: its host is this one and no
 * process has its pid now, or its pid is this process's and its id another (an earlier process of
 * that pid: a container's first process, restarted). A process of another host, or a pid in use,
 * is not known to have ended: its lease expires by time. (arg is unused: job_expiry's gone.) */
int leases_owner_gone(const char *owner, void *arg);

/* Starts the thread, for app's store and settings (heartbeat_s, lease_s, job_max_attempts): NULL
 * with err. */
struct leases *leases_start(struct app *app, struct eng_error *err);
/* Stops the thread and frees l (NULL: nothing). Every lease must have been released. */
void leases_stop(struct leases *l);

/* Renews lease (id and token set; lost is cleared by the call) on every beat until released. */
void leases_hold(struct leases *l, struct lease *lease);
void leases_release(struct leases *l, struct lease *lease);

#endif
