/* The server's own resources: liveness, readiness, metrics and GET /v1. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "app.h"
#include "core/engine.h"
#include "image/codec.h"
#include "job_kind.h"
#include "job_store.h"
#include "jobs.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "response.h"
#include "storage.h"

void handle_healthz(struct request *req, struct response *resp)
{
    response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

void handle_readyz(struct request *req, struct response *resp)
{
    struct app *app = req->app;
    if (atomic_load(&app->shutting_down)) {
        response_error_code(resp, 503, "not_ready", "the server is shutting down");
        return;
    }
    if (storage_ping(app->storage) != 0) {
        response_error_code(resp, 503, "not_ready", "the store in %s does not answer",
                            app->cfg->data_dir);
        return;
    }
    response_json(resp, 200,
                  json_pack("{s:s, s:{s:s, s:i}}", "status", "ready", "checks", "storage", "ok",
                            "workers", app->workers));
}

void handle_metrics(struct request *req, struct response *resp)
{
    struct app *app = req->app;
    struct metrics_gauges gauges = {
        .in_flight = atomic_load(&app->in_flight),
        .workers = app->workers,
        .resident_bytes = metrics_process_rss(),
    };
    admission_counts(app->admission, &gauges.workers_busy, &gauges.queue_depth);
    jobs_counts(app->jobs, &gauges.job_runners_busy, &gauges.job_runners);
    /* A store that cannot count leaves the queue's series out; the rest still renders. */
    json_t *queued = NULL;
    struct eng_error err;
    if (job_store_queued(app->storage, &queued, &err) != 0)
        log_event("warn", "metrics", "cannot count queued jobs: %s", err.message);
    gauges.jobs_queued = queued;
    char *text = metrics_render(app->metrics, &gauges);
    json_decref(queued);
    if (!text) {
        response_no_memory(resp, "while rendering metrics");
        return;
    }
    response_bytes(resp, 200, "text/plain; version=0.0.4; charset=utf-8", (unsigned char *)text,
                   strlen(text));
}

void handle_v1_info(struct request *req, struct response *resp)
{
    struct app *app = req->app;
    const struct config *cfg = app->cfg;
    json_t *features = json_array();
    for (const char *const *f = engine_features(); *f; f++)
        json_array_append_new(features, json_string(*f));
    if (app->static_root) json_array_append_new(features, json_string("web_ui"));
    if (cfg->api_key_count) json_array_append_new(features, json_string("api_keys"));
    if (cfg->debug_routes) json_array_append_new(features, json_string("debug_routes"));
    json_t *kinds = json_array();
    const struct job_kind *kind;
    for (size_t i = 0; (kind = job_kind_at(i, cfg->debug_routes)); i++)
        json_array_append_new(kinds,
                              json_pack("{s:s, s:s}", "name", kind->name, "help", kind->help));
    response_json(resp, 200,
                  json_pack("{s:s, s:s, s:o, s:{s:I, s:i, s:I, s:i, s:i}, s:{s:s}, s:{s:o, s:i}, "
                            "s:b}",
                            "name", "augserve", "version", engine_version(), "features", features,
                            "limits", "max_body_bytes", (json_int_t)cfg->max_body_bytes,
                            "max_parts", cfg->max_parts, "max_dataset_bytes",
                            (json_int_t)cfg->max_dataset_bytes, "workers", app->workers, "queue",
                            cfg->queue, "defaults", "color", img_color_name(IMG_COLOR_KEEP), "jobs",
                            "kinds", kinds, "job_workers", cfg->job_workers, "auth_required",
                            cfg->api_key_count > 0));
}
