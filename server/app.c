#include "app.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admission.h"
#include "auth.h"
#include "dataset_import.h"
#include "datasets.h"
#include "handlers.h"
#include "image/codec.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "models.h"
#include "policy/policy.h"
#include "policy/saved.h"
#include "saved_policies.h"
#include "storage.h"
#include "wakeups.h"

/* The routing table. Health, readiness, metrics, the API description and the UI are public;
 * everything under /v1 and /v2 needs a key when keys are configured. */
static const struct route all_routes[] = {
    {"GET", "/healthz", handle_healthz, ROUTE_PUBLIC, 0},
    {"GET", "/readyz", handle_readyz, ROUTE_PUBLIC, 0},
    {"GET", "/metrics", handle_metrics, ROUTE_PUBLIC, 0},
    {"GET", "/openapi.json", handle_openapi, ROUTE_PUBLIC, 0},
    {"GET", "/v1", handle_v1_info, 0, 0},
    {"POST", "/v1/augment", handle_augment, ROUTE_HEAVY, AUTH_SCOPE_AUGMENT},
    {"POST", "/v1/augment/audio", handle_augment_audio, ROUTE_HEAVY, AUTH_SCOPE_AUGMENT},
    {"POST", "/v1/augment/copy-paste", handle_copy_paste, ROUTE_HEAVY, AUTH_SCOPE_AUGMENT},
    {"POST", "/v1/predict", handle_predict, ROUTE_HEAVY, AUTH_SCOPE_INFER},
    {"POST", "/v1/pseudo-label", handle_pseudo_label, ROUTE_HEAVY, AUTH_SCOPE_INFER},
    {"POST", "/v1/similarity", handle_similarity, ROUTE_HEAVY, AUTH_SCOPE_INFER},
    {"POST", "/v1/similarity/batch", handle_similarity_batch, ROUTE_HEAVY, AUTH_SCOPE_INFER},
    {"POST", "/v1/similarity/2afc", handle_similarity_2afc, ROUTE_HEAVY, AUTH_SCOPE_INFER},
    {"GET", "/v1/ops", handle_ops, 0, 0},
    {"GET", "/v1/policies", handle_policies, 0, 0},
    {"GET", "/v1/policies/{name}", handle_policy_get, 0, 0},
    {"POST", "/v1/policies/validate", handle_policy_validate, 0, 0},
    /* Saved policies: either scope may save and delete them. */
    {"POST", "/v1/policies", handle_policy_create, 0, AUTH_SCOPE_JOBS | AUTH_SCOPE_ADMIN},
    {"PUT", "/v1/policies/{name}", handle_policy_put, 0, AUTH_SCOPE_JOBS | AUTH_SCOPE_ADMIN},
    {"DELETE", "/v1/policies/{name}", handle_policy_delete, 0, AUTH_SCOPE_JOBS | AUTH_SCOPE_ADMIN},
    /* CTAugment states: drawing from one, teaching it and making or deleting one need the
     * augment scope; any key may read them. Drawing decodes and encodes images: heavy. */
    {"POST", "/v1/ctaugment", handle_ctaugment_create, 0, AUTH_SCOPE_AUGMENT},
    {"GET", "/v1/ctaugment", handle_ctaugment_list, 0, 0},
    {"GET", "/v1/ctaugment/{id}", handle_ctaugment_get, 0, 0},
    {"DELETE", "/v1/ctaugment/{id}", handle_ctaugment_delete, 0, AUTH_SCOPE_AUGMENT},
    {"POST", "/v1/ctaugment/{id}/augment", handle_ctaugment_augment, ROUTE_HEAVY,
     AUTH_SCOPE_AUGMENT},
    {"POST", "/v1/ctaugment/{id}/probe", handle_ctaugment_probe, ROUTE_HEAVY, AUTH_SCOPE_AUGMENT},
    {"POST", "/v1/ctaugment/{id}/feedback", handle_ctaugment_feedback, 0, AUTH_SCOPE_AUGMENT},
    {"GET", "/v1/models", handle_models_list, 0, AUTH_SCOPE_INFER},
    {"GET", "/v1/models/{name}", handle_model_get, 0, AUTH_SCOPE_INFER},
    /* Heavy: an upload is parsed and compiled before it is listed. */
    {"POST", "/v1/models", handle_model_upload, ROUTE_HEAVY, AUTH_SCOPE_ADMIN},
    {"DELETE", "/v1/models/{name}", handle_model_delete, 0, AUTH_SCOPE_ADMIN},
    /* Jobs: creating and cancelling need the jobs scope; a key sees its own jobs (admin: all). */
    {"POST", "/v1/jobs", handle_jobs_create, 0, AUTH_SCOPE_JOBS},
    {"GET", "/v1/jobs", handle_jobs_list, 0, 0},
    {"GET", "/v1/jobs/{id}", handle_job_get, 0, 0},
    {"DELETE", "/v1/jobs/{id}", handle_job_cancel, 0, AUTH_SCOPE_JOBS},
    /* A stream: it sleeps between events and holds no worker (server/streams.c). */
    {"GET", "/v1/jobs/{id}/events", handle_job_events, 0, 0},
    {"GET", "/v1/jobs/{id}/artifacts", handle_job_artifacts, 0, 0},
    {"GET", "/v1/jobs/{id}/artifacts/{name}", handle_job_artifact, 0, 0},
    /* Datasets: an upload streams to a file (ROUTE_UPLOAD); thumbnails are encoded on a worker. */
    {"POST", "/v1/datasets", handle_datasets_create, ROUTE_UPLOAD, AUTH_SCOPE_JOBS},
    {"GET", "/v1/datasets", handle_datasets_list, 0, 0},
    {"GET", "/v1/datasets/{id}", handle_dataset_get, 0, 0},
    {"DELETE", "/v1/datasets/{id}", handle_dataset_delete, 0, AUTH_SCOPE_JOBS},
    {"POST", "/v1/datasets/{id}/splits", handle_dataset_split, 0, AUTH_SCOPE_JOBS},
    {"GET", "/v1/datasets/{id}/images", handle_dataset_images, ROUTE_HEAVY, 0},
    {"GET", "/v2", handle_v2_info, 0, 0},
    {"GET", "/v2/health/live", handle_v2_live, 0, 0},
    {"GET", "/v2/health/ready", handle_v2_ready, 0, 0},
    {"GET", "/v2/models/{model}", handle_v2_model, 0, AUTH_SCOPE_INFER},
    {"GET", "/v2/models/{model}/ready", handle_v2_model_ready, 0, AUTH_SCOPE_INFER},
    {"POST", "/v2/models/{model}/infer", handle_v2_infer, ROUTE_HEAVY, AUTH_SCOPE_INFER},
    /* Debug routes: see app_route_is_debug. */
    {"POST", "/v1/debug/sleep", handle_debug_sleep, ROUTE_HEAVY, AUTH_SCOPE_ADMIN},
    {"POST", "/v1/debug/echo", handle_debug_echo, 0, AUTH_SCOPE_ADMIN},
    /* Last: the web UI, for any GET nothing above matched. */
    {"GET", "/*", handle_static, ROUTE_PUBLIC, 0},
};

#define ROUTE_COUNT (sizeof all_routes / sizeof all_routes[0])

const struct route *app_all_routes(size_t *count)
{
    *count = ROUTE_COUNT;
    return all_routes;
}

int app_route_is_debug(const struct route *route)
{
    return strncmp(route->pattern, "/v1/debug/", 10) == 0;
}

int app_route_is_worker(const struct route *route)
{
    return strcmp(route->pattern, "/healthz") == 0 || strcmp(route->pattern, "/metrics") == 0;
}

/* The routes in force: a worker's two, or the table without the debug routes unless they are
 * enabled. Anything else is the router's 404. */
static struct route *mount_routes(const struct config *cfg, enum app_role role, size_t *count)
{
    struct route *routes = calloc(ROUTE_COUNT, sizeof *routes);
    if (!routes) return NULL;
    *count = 0;
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        if (role == APP_WORKER ? app_route_is_worker(&all_routes[i])
                               : cfg->debug_routes || !app_route_is_debug(&all_routes[i]))
            routes[(*count)++] = all_routes[i];
    return routes;
}

/* A worker shares a PostgreSQL store with the API servers that accept its jobs. On SQLite the
 * store is one process's (its database file under that process's data_dir, its running jobs taken
 * for a dead process's at start-up), so the server runs its jobs itself: job_workers. */
static int check_worker(const struct config *cfg, struct eng_error *err)
{
    if (!storage_is_postgresql_url(cfg->store))
        return eng_fail(err, ENG_INVALID,
                        "augserve worker needs a PostgreSQL store (--store postgresql://...): "
                        "a SQLite store is one process's, and that server runs its own jobs "
                        "(job_workers)");
    if (cfg->job_workers == 0)
        return eng_fail(err, ENG_INVALID,
                        "augserve worker with job_workers 0 would run no jobs: give it 1 or more");
    return 0;
}

int app_open(struct app *app, const struct config *cfg, enum app_role role, struct eng_error *err)
{
    memset(app, 0, sizeof *app);
    if (role == APP_WORKER && check_worker(cfg, err) != 0) return -1;
    app->cfg = cfg;
    app->role = role;
    app->started = time(NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    app->workers = cfg->workers > 0 ? cfg->workers : (int)(cores > 0 ? cores : 1);
    char resolved[PATH_MAX];
    if (realpath(cfg->static_dir, resolved))
        app->static_root = strdup(resolved);
    else
        log_event("warn", "static", "static_dir %s does not exist; the web UI is not served",
                  cfg->static_dir);
    struct route *routes = mount_routes(cfg, role, &app->route_count);
    app->routes = routes;
    app->metrics = metrics_create();
    app->policies = policy_cache_new(64);
    if (!routes || !app->metrics || !app->policies) {
        eng_no_memory(err);
        goto fail;
    }
    struct eng_error codec_err;
    if (img_codec_init(&codec_err) != 0) {
        eng_fail(err, codec_err.code, "image codecs: %s", codec_err.message);
        goto fail;
    }
    app->access_log = access_log_open(cfg->access_log, err);
    if (!app->access_log) goto fail;
    app->storage = storage_open(cfg->store, cfg->data_dir, err);
    if (!app->storage || storage_limit_idle_transactions(app->storage, cfg->lease_s, err) != 0 ||
        saved_policies_load(app->storage, err) != 0 || wakeups_listen(app, err) != 0)
        goto fail;
    /* By default the inferences running at once (one per worker) share the cores, so none waits
     * on an OpenMP barrier whose other threads another inference has descheduled. */
    struct models_settings models = {
        .max_model_bytes = cfg->max_model_bytes,
        .threads = cfg->nn_threads > 0 ? cfg->nn_threads
                                       : (int)(cores > app->workers ? cores / app->workers : 1),
        .direct_convolution = cfg->nn_direct_convolution,
        .max_plan_bytes = (size_t)cfg->max_request_memory,
        .changed = wakeups_model_changed,
        .changed_arg = app};
    app->models = models_open(cfg->models_dir, &models, err);
    if (!app->models) goto fail;
    char datasets[PATH_MAX];
    snprintf(datasets, sizeof datasets, "%s/datasets", cfg->data_dir);
    app->datasets = datasets_open(datasets, err);
    if (!app->datasets) goto fail;
    app->jobs = jobs_start(app, err);
    /* Uploads and imports are the API servers': a worker starting must not settle an import or
     * remove an upload file one of them is receiving into the shared data_dir. */
    if (!app->jobs || (role == APP_SERVER && dataset_import_recover(app, err) != 0)) goto fail;
    app->admission = admission_create(app->workers, cfg->queue);
    if (!app->admission) {
        eng_fail(err, ENG_INTERNAL, "cannot start %d worker threads", app->workers);
        goto fail;
    }
    wakeups_hear(app);
    return 0;
fail:
    app_close(app);
    return -1;
}

void app_close(struct app *app)
{
    /* First: what it hears reaches the jobs and the models. */
    storage_listener_close(app->listener);
    admission_destroy(app->admission);
    jobs_close(app->jobs);
    datasets_close(app->datasets);
    storage_close(app->storage);
    policy_saved_clear();
    models_close(app->models);
    access_log_close(app->access_log);
    metrics_destroy(app->metrics);
    policy_cache_free(app->policies);
    free((void *)app->routes);
    free(app->static_root);
    memset(app, 0, sizeof *app);
}
