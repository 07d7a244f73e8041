#include "wakeups.h"

#include <stdatomic.h>
#include <stdint.h>

#include "app.h"
#include "jobs.h"
#include "log.h"
#include "models.h"
#include "saved_policies.h"
#include "storage.h"

/* Job id's count of announced events (FNV-1a of the id). */
static atomic_uint *events_count(struct app *app, const char *job)
{
    uint32_t hash = 2166136261u;
    for (const char *c = job; *c; c++)
        hash = (hash ^ (unsigned char)*c) * 16777619u;
    return &app->events_heard[hash % APP_EVENT_BUCKETS];
}

static void heard(void *arg, enum storage_channel channel, const char *payload)
{
    struct app *app = arg;
    if (!atomic_load(&app->hearing)) return;
    switch (channel) {
    case STORAGE_CHANNEL_JOBS:
        jobs_wake(app->jobs);
        break;
    case STORAGE_CHANNEL_CANCEL:
        jobs_cancel_heard(app->jobs);
        break;
    case STORAGE_CHANNEL_MODELS: {
        struct models_rescan r = models_rescan(app->models);
        if (r.added || r.reloaded || r.dropped)
            log_event("info", "models_rescan", "%s%s: %d models added, %d reloaded, %d dropped",
                      payload ? "models_dir changed: " : "the store's notifications are back",
                      payload ? payload : "", r.added, r.reloaded, r.dropped);
        break;
    }
    case STORAGE_CHANNEL_POLICIES: {
        struct eng_error err;
        if (saved_policies_load(app->storage, &err) != 0)
            log_event("warn", "policies", "cannot read the saved policies again: %s", err.message);
        break;
    }
    case STORAGE_CHANNEL_EVENTS:
        if (payload) {
            atomic_fetch_add(events_count(app, payload), 1);
            break;
        }
        for (int i = 0; i < APP_EVENT_BUCKETS; i++) /* what was announced meanwhile is lost */
            atomic_fetch_add(&app->events_heard[i], 1);
        break;
    case STORAGE_CHANNELS:
        break;
    }
}

int wakeups_listen(struct app *app, struct eng_error *err)
{
    app->listener = storage_listen(app->cfg->store, heard, app, err);
    return app->listener ? 0 : -1;
}

void wakeups_hear(struct app *app)
{
    atomic_store(&app->hearing, 1);
}

int wakeups_events(struct app *app, const char *job, unsigned *count)
{
    *count = atomic_load(events_count(app, job));
    return atomic_load(&app->hearing) && storage_listening(app->listener);
}

void wakeups_model_changed(void *arg, const char *name)
{
    struct app *app = arg;
    struct eng_error err;
    /* The model is served here either way; the others find it at their next rescan. */
    if (storage_notify(app->storage, STORAGE_CHANNEL_MODELS, name, &err) != 0)
        log_event("warn", "models", "cannot tell the other servers about model %s: %s", name,
                  err.message);
}
