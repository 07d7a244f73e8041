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

struct app {
    const struct config *cfg;
    struct admission *admission;
    struct metrics *metrics;
    struct access_log *access_log;
    struct storage *storage;
    struct policy_cache *policies; /* parsed policies by text */
    struct models *models;         /* the model repository of cfg->models_dir */
    struct jobs *jobs;             /* the job runners (jobs.h) */
    struct datasets *datasets;     /* the imported datasets of data_dir/datasets (datasets.h) */
    char *static_root;             /* realpath of cfg->static_dir, or NULL if it does not exist */
    int workers;                   /* effective worker count (cfg->workers resolved) */
    const struct route *routes;    /* the routing table in force */
    size_t route_count;
    atomic_int shutting_down; /* set on SIGTERM: new requests get 503 */
    atomic_long in_flight;    /* requests received and not yet answered */
    time_t started;
};

/* Every route the server knows, debug ones included; app_open picks those in force. */
const struct route *app_all_routes(size_t *count);
/* Whether a route is only mounted with debug_routes. */
int app_route_is_debug(const struct route *route);

/* Opens everything but the HTTP daemon. Returns 0, or -1 with err filled (app left empty). */
int app_open(struct app *app, const struct config *cfg, struct eng_error *err);
void app_close(struct app *app);

#endif
