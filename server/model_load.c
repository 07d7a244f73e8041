/* A model folder (model.onnx, config.json, the files config.json names) into a struct model, and
 * its end once the last reference is released. A model that cannot serve is still made, holding
 * its reason and no graph, so the repository lists it as unavailable. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "model_internal.h"

static void model_free(struct model *m)
{
    model_free_plans(m);
    pthread_mutex_destroy(&m->plans_lock);
    pthread_mutex_destroy(&m->batch_lock);
    pthread_cond_destroy(&m->batch_cond);
    nn_graph_free(m->graph);
    json_decref(m->config);
    free(m->labels);
    free(m->label_text);
    free(m->name);
    free(m->reason);
    model_free_perceptual(m);
    free(m);
}

static struct model *model_new(const char *name)
{
    struct model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->name = strdup(name);
    m->delay_us = -1;
    atomic_init(&m->refs, 1);
    pthread_condattr_t attr;
    /* The batch deadline is on the monotonic clock, which wall-clock changes do not move. */
    int cond_ok = pthread_condattr_init(&attr) == 0;
    if (cond_ok) {
        cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&m->batch_cond, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    pthread_mutex_init(&m->plans_lock, NULL);
    pthread_mutex_init(&m->batch_lock, NULL);
    if (!m->name || !cond_ok) {
        if (cond_ok) pthread_cond_destroy(&m->batch_cond);
        pthread_mutex_destroy(&m->plans_lock);
        pthread_mutex_destroy(&m->batch_lock);
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

/* Reads folder's model.onnx and config.json into m. Returns -1 with err set when the model cannot
 * serve. */
static int load_files(struct model *m, const char *folder, long long max_bytes,
                      struct eng_error *err)
{
    char path[PATH_MAX];
    struct stat st;
    if (model_path_join(path, folder, "model.onnx") != 0 || stat(path, &st) != 0)
        return eng_fail(err, ENG_INVALID, "model.onnx: %s", strerror(errno));
    if (max_bytes > 0 && st.st_size > max_bytes)
        return eng_fail(err, ENG_TOO_LARGE, "model.onnx is %lld bytes; max_model_bytes is %lld",
                        (long long)st.st_size, max_bytes);
    struct eng_error onnx = {0};
    m->graph = nn_graph_read_file(path, &onnx);
    if (!m->graph) return eng_fail(err, onnx.code, "model.onnx: %s", onnx.message);
    if (model_path_join(path, folder, "config.json") != 0)
        return eng_fail(err, ENG_INVALID, "config.json: %s", strerror(errno));
    if (stat(path, &st) == 0 || errno != ENOENT) {
        json_error_t error;
        json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
        if (!doc)
            return eng_fail(err, ENG_INVALID, "config.json: line %d: %s", error.line, error.text);
        int rc = model_apply_config(m, doc, folder, err);
        json_decref(doc);
        if (rc) return -1;
    }
    atomic_init(&m->batching, m->delay_us >= 0 && model_batchable(m->graph));
    return model_compile_batch_of_one(m, err);
}

/* What the files directly in folder are (names, sizes, modification times, inodes), summed so that
 * the order readdir gives them in does not matter: a copy over model.onnx or an edit of
 * config.json changes it. 0 when the folder cannot be read. */
uint64_t model_folder_signature(const char *folder)
{
    DIR *d = opendir(folder);
    if (!d) return 0;
    uint64_t sum = 0;
    struct dirent *entry;
    char path[PATH_MAX];
    struct stat st;
    while ((entry = readdir(d))) {
        if (model_path_join(path, folder, entry->d_name) != 0 || stat(path, &st) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        uint64_t h = 1469598103934665603u; /* FNV-1a */
        for (const char *c = entry->d_name; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211u;
        uint64_t facts[] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
                            (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_ino};
        for (size_t i = 0; i < sizeof facts / sizeof *facts; i++)
            h = (h ^ facts[i]) * 1099511628211u;
        sum += h;
    }
    closedir(d);
    return sum;
}

struct model *model_load(const char *folder, const char *name,
                         const struct models_settings *settings)
{
    struct model *m = model_new(name);
    if (!m) return NULL;
    m->settings = *settings;
    m->files = model_folder_signature(folder);
    struct eng_error err = {0};
    if (load_files(m, folder, settings->max_model_bytes, &err) == 0) {
        model_load_perceptual(m, folder);
        return m;
    }
    m->reason = strdup(err.message);
    nn_graph_free(m->graph);
    m->graph = NULL;
    m->has_preprocess = 0;
    m->label_count = 0;
    atomic_store(&m->batching, 0);
    if (!m->reason) {
        model_free(m);
        return NULL;
    }
    log_event("warn", "model_unavailable", "model %s: %s", name, m->reason);
    return m;
}

void model_release(struct model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
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

int model_threads(const struct model *m)
{
    return m->settings.threads;
}
