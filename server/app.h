/* The running server's shared state, reachable from every request as req->app. */
#ifndef AUGSERVE_APP_H
#define AUGSERVE_APP_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "core/error.h"
#include "router.h"

struct admission;
struct metrics;
struct access_log;
struct storage;
struct policy_cache;
struct models;
struct jobs;
struct storage_listener;

/* What the process is: the server (`augserve`), or a worker (`augserve worker`) that runs jobs on a
 * shared PostgreSQL store and serves only /healthz and /metrics. */
enum app_role { APP_SERVER, APP_WORKER };

/* How many counts of announced events a process keeps (app->events_heard): jobs share them, so a
 * stream also reads the store for the events of the jobs sharing its count (one job in this many,
 * by chance). */
#define APP_EVENT_BUCKETS 64

struct app {
    const struct config *cfg;
    enum app_role role;
    struct admission *admission;
    struct metrics *metrics;
    struct access_log *access_log;
    struct storage *storage;
    struct policy_cache *policies;     /* parsed policies by text */
    struct models *models;             /* the model repository of cfg->models_dir */
    struct jobs *jobs;                 /* the job runners (jobs.h) */
    struct datasets *datasets;         /* the imported datasets of data_dir/datasets (datasets.h) */
    struct storage_listener *listener; /* the store's notifications (wakeups.h) */
    atomic_int hearing;                /* they reach jobs and models (wakeups_hear) */
    /* Announcements of jobs' new events heard, counted by a hash of the job's id (wakeups_events):
     * an event stream reads the store when its job's count moves. */
    atomic_uint events_heard[APP_EVENT_BUCKETS];
    char *static_root;          /* realpath of cfg->static_dir, or NULL if it does not exist */
    int workers;                /* effective worker count (cfg->workers resolved) */
    const struct route *routes; /* the routing table in force */
    size_t route_count;
    atomic_int shutting_down; /* set on SIGTERM: new requests get 503 */
    atomic_long in_flight;    /* requests received and not yet answered */
    time_t started;
};

/* Every route the server knows, debug ones included; app_open picks those in force. */
const struct route *app_all_routes(size_t *count);
/* Whether a worker serves a route: /healthz and /metrics only. */
int app_route_is_worker(const struct route *route);
/* Whether a route is only mounted with debug_routes. */
int app_route_is_debug(const struct route *route);

/* Opens everything but the HTTP daemon, as role. A worker is refused on a store that is not
 * PostgreSQL (ENG_INVALID: SQLite's one process is the server, which runs the jobs itself) and with
 * job_workers 0. Returns 0, or -1 with err filled (app left empty). */
int app_open(struct app *app, const struct config *cfg, enum app_role role, struct eng_error *err);
void app_close(struct app *app);

#endif
