#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* Plans cached per model, one per input shape seen, at most MAX_PLANS; past that a request
 * compiles a plan for itself. */
#define MAX_PLANS 16

struct cached_plan {
    struct nn_tensor_info *shapes; /* nn_graph_input_count entries; names unused */
    struct nn_plan *plan;
    pthread_mutex_t run_lock; /* a plan runs one call at a time (nn.h) */
    struct cached_plan *next;
};

struct model {
    char *name;
    struct nn_graph *graph; /* NULL: unavailable */
    char *reason;
    long max_batch;
    pthread_mutex_t plans_lock; /* guards plans and n_plans */
    struct cached_plan *plans;
    size_t n_plans;
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
        pthread_mutex_init(&ms->items[ms->count].plans_lock, NULL);
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
        for (struct cached_plan *c = m->plans, *next; c; c = next) {
            next = c->next;
            nn_plan_free(c->plan);
            pthread_mutex_destroy(&c->run_lock);
            free(c->shapes);
            free(c);
        }
        pthread_mutex_destroy(&m->plans_lock);
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

static int same_shapes(const struct nn_tensor_info *a, const struct nn_tensor_info *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].rank != b[i].rank) return 0;
        for (int d = 0; d < a[i].rank; d++)
            if (a[i].dims[d] != b[i].dims[d]) return 0;
    }
    return 1;
}

/* The cached plan for these shapes, compiling and caching it on first use. NULL with *failed set
 * (and err) when compiling fails; NULL with *failed 0 when the cache is full or memory for an
 * entry runs out, so the caller compiles an uncached plan. Compiling happens under plans_lock, so
 * concurrent first requests for one shape compile it once. */
static struct cached_plan *cached_plan(struct model *m, const struct nn_tensor_info *shapes,
                                       int *failed, struct eng_error *err)
{
    *failed = 0;
    size_t n = nn_graph_input_count(m->graph);
    pthread_mutex_lock(&m->plans_lock);
    struct cached_plan *c = m->plans;
    while (c && !same_shapes(c->shapes, shapes, n))
        c = c->next;
    if (!c && m->n_plans < MAX_PLANS && (c = calloc(1, sizeof *c))) {
        c->shapes = malloc((n ? n : 1) * sizeof *c->shapes);
        if (c->shapes) {
            memcpy(c->shapes, shapes, n * sizeof *shapes);
            c->plan = nn_plan_compile(m->graph, shapes, n, err);
            *failed = !c->plan;
        }
        if (c->plan) {
            pthread_mutex_init(&c->run_lock, NULL);
            c->next = m->plans;
            m->plans = c;
            m->n_plans++;
        } else {
            free(c->shapes);
            free(c);
            c = NULL;
        }
    }
    pthread_mutex_unlock(&m->plans_lock);
    return c;
}

/* Plans are cached per (model, input shapes) and freed at shutdown; a cached plan may run on any
 * worker thread because the executor owns its scratchpad (dnnl_scratchpad_mode_user; oneDNN's
 * default per-thread library scratchpad crashed when a plan ran on a thread other than the one
 * that compiled it). Runs of one plan are serialised by its run_lock, as nn.h asks; requests for
 * different shapes or models run in parallel. */
int model_infer(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                float **outputs, struct nn_tensor_info *output_info, struct eng_error *err)
{
    if (!m->graph) return eng_fail(err, ENG_INVALID, "model %s is unavailable", m->name);
    int failed;
    struct cached_plan *c = cached_plan(m, shapes, &failed, err);
    if (c) {
        pthread_mutex_lock(&c->run_lock);
        int rc = nn_plan_run(c->plan, inputs, outputs, output_info, err);
        pthread_mutex_unlock(&c->run_lock);
        return rc;
    }
    if (failed) return -1;
    struct nn_plan *plan = nn_plan_compile(m->graph, shapes, nn_graph_input_count(m->graph), err);
    if (!plan) return -1;
    int rc = nn_plan_run(plan, inputs, outputs, output_info, err);
    nn_plan_free(plan);
    return rc;
}

/* Placeholders until the model configuration lands: no references are counted yet (models are
 * only freed at shutdown), and no model has preprocessing or labels. */
struct model *models_acquire(struct models *ms, const char *name)
{
    return models_find(ms, name);
}

void model_release(struct model *m)
{
    (void)m;
}

const struct model_preprocess *model_preprocess(const struct model *m)
{
    (void)m;
    return NULL;
}

size_t model_image_input(const struct model *m)
{
    (void)m;
    return 0;
}

size_t model_scores_output(const struct model *m)
{
    (void)m;
    return 0;
}

int model_scores_are_probabilities(const struct model *m)
{
    (void)m;
    return 0;
}

size_t model_label_count(const struct model *m)
{
    (void)m;
    return 0;
}

const char *model_label(const struct model *m, size_t i)
{
    (void)m;
    (void)i;
    return NULL;
}
