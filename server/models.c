#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

struct model {
    char *name;
    struct nn_graph *graph; /* NULL: unavailable */
    char *reason;
    long max_batch;
};

struct models {
    struct model *items;
    size_t count;
};

/* Reads the optional config.json next to the model. Returns NULL when fine, else why not. */
static const char *read_model_config(const char *path, long *max_batch, char *why, size_t size)
{
    *max_batch = 0;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return NULL;
    json_error_t error;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
    if (!doc) {
        snprintf(why, size, "config.json: line %d: %s", error.line, error.text);
        return why;
    }
    json_t *mb = json_object_get(doc, "max_batch");
    const char *result = NULL;
    if (!json_is_object(doc)) {
        result = "config.json: not a JSON object";
    } else if (mb && (!json_is_integer(mb) || json_integer_value(mb) < 0)) {
        result = "config.json: max_batch must be an integer >= 0";
    } else if (mb) {
        *max_batch = (long)json_integer_value(mb);
    }
    json_decref(doc);
    return result;
}

/* Fills m for the folder dir/name; failures become m->reason, only memory is fatal (-1). */
static int load_model(struct model *m, const char *dir, const char *name)
{
    m->name = strdup(name);
    char *model_path = NULL, *config_path = NULL;
    if (!m->name || asprintf(&model_path, "%s/%s/model.onnx", dir, name) < 0) model_path = NULL;
    if (!model_path || asprintf(&config_path, "%s/%s/config.json", dir, name) < 0) {
        free(model_path);
        return -1;
    }
    char why[600];
    const char *config_error = read_model_config(config_path, &m->max_batch, why, sizeof why);
    if (config_error) {
        m->reason = strdup(config_error);
    } else {
        struct eng_error err = {0};
        m->graph = nn_graph_read_file(model_path, &err);
        if (!m->graph) m->reason = strdup(err.message[0] ? err.message : "cannot read model.onnx");
    }
    free(model_path);
    free(config_path);
    if (!m->graph && !m->reason) return -1;
    if (m->reason) log_event("warn", "model_unavailable", "model %s: %s", name, m->reason);
    return 0;
}

struct models *models_open(const char *dir, char *err, size_t err_size)
{
    struct models *ms = calloc(1, sizeof *ms);
    if (!ms) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        log_event("info", "models", "models_dir %s: %s; no models are served", dir,
                  strerror(errno));
        return ms;
    }
    struct dirent *entry;
    while ((entry = readdir(d))) {
        if (entry->d_name[0] == '.') continue;
        char *path;
        if (asprintf(&path, "%s/%s/model.onnx", dir, entry->d_name) < 0) goto oom;
        struct stat st;
        int has_model = stat(path, &st) == 0;
        free(path);
        if (!has_model) continue;
        struct model *grown = realloc(ms->items, (ms->count + 1) * sizeof *grown);
        if (!grown) goto oom;
        ms->items = grown;
        memset(&ms->items[ms->count], 0, sizeof ms->items[0]);
        /* Counted before loading so that close frees whatever the load got to. */
        ms->count++;
        if (load_model(&ms->items[ms->count - 1], dir, entry->d_name) != 0) goto oom;
    }
    closedir(d);
    return ms;
oom:
    closedir(d);
    models_close(ms);
    snprintf(err, err_size, "out of memory while loading models from %s", dir);
    return NULL;
}

void models_close(struct models *ms)
{
    if (!ms) return;
    for (size_t i = 0; i < ms->count; i++) {
        struct model *m = &ms->items[i];
        nn_graph_free(m->graph);
        free(m->name);
        free(m->reason);
    }
    free(ms->items);
    free(ms);
}

struct model *models_find(const struct models *ms, const char *name)
{
    for (size_t i = 0; ms && i < ms->count; i++)
        if (strcmp(ms->items[i].name, name) == 0) return &ms->items[i];
    return NULL;
}

const char *model_name(const struct model *m)
{
    return m->name;
}

const struct nn_graph *model_graph(const struct model *m)
{
    return m->graph;
}

const char *model_reason(const struct model *m)
{
    return m->reason;
}

long model_max_batch(const struct model *m)
{
    return m->max_batch;
}

/* A plan is compiled per request, on the thread that runs it, and freed there, never cached: a
 * cached plan run on another worker thread crashed inside oneDNN, and plans freed at shutdown by
 * the main thread left oneDNN allocations of the worker threads leaked (LeakSanitizer). Both fit
 * oneDNN's default scratchpad mode, which keeps a scratchpad per creating thread; caching needs
 * the executor to own its scratchpad (dnnl_scratchpad_mode_user) first. */
int model_infer(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                float **outputs, struct nn_tensor_info *output_info, struct eng_error *err)
{
    if (!m->graph) return eng_fail(err, ENG_INVALID, "model %s is unavailable", m->name);
    struct nn_plan *plan = nn_plan_compile(m->graph, shapes, nn_graph_input_count(m->graph), err);
    if (!plan) return -1;
    int rc = nn_plan_run(plan, inputs, outputs, output_info, err);
    nn_plan_free(plan);
    return rc;
}
