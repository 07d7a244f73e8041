/* The repository on disk: the folders of models_dir, the list of models served from them, and
 * the changes to both while the server runs (uploads, removals, rescans on SIGHUP). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "model_internal.h"

#define MAX_NAME_LENGTH 64

struct models {
    pthread_rwlock_t lock; /* guards items and count, and the folders under dir */
    struct model **items;
    size_t count;
    char *dir;
    struct models_settings settings;
};

int models_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > MAX_NAME_LENGTH || name[0] == '.') return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Appends m (its reference passes to the repository); the caller holds the write lock. */
static int append(struct models *ms, struct model *m)
{
    struct model **grown = realloc(ms->items, (ms->count + 1) * sizeof *grown);
    if (!grown) return -1;
    ms->items = grown;
    ms->items[ms->count++] = m;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Removes a folder and everything in it, without following symlinks. */
static int remove_tree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Uploads and removals leave their dot-folders behind only when the process died mid-way. One
 * a day old is such a leftover even where several servers share models_dir; younger ones may
 * belong to another server's upload in progress, so they stay. */
#define LEFTOVER_AGE_S (24 * 3600)

static void remove_leftover(const char *dir, const char *leaf)
{
    char path[PATH_MAX];
    struct stat st;
    if ((strncmp(leaf, ".upload-", 8) != 0 && strncmp(leaf, ".deleted-", 9) != 0) ||
        model_path_join(path, dir, leaf) != 0 || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
        time(NULL) - st.st_mtime < LEFTOVER_AGE_S)
        return;
    if (remove_tree(path) == 0)
        log_event("info", "models", "removed %s, left by an upload or removal that did not finish",
                  path);
    else
        log_event("warn", "models", "cannot remove %s: %s", path, strerror(errno));
}

/* The index of the model named name, or count; the caller holds the lock. */
static size_t find_index(const struct models *ms, const char *name)
{
    size_t i = 0;
    while (i < ms->count && strcmp(ms->items[i]->name, name) != 0)
        i++;
    return i;
}

/* Whether a model of that name is listed (checked again when publishing; this spares the work). */
static int listed(struct models *ms, const char *name)
{
    pthread_rwlock_rdlock(&ms->lock);
    int found = find_index(ms, name) < ms->count;
    pthread_rwlock_unlock(&ms->lock);
    return found;
}

/* Loads and lists <dir>/<name>/model.onnx unless name is listed already (counting it in *added).
 * -1 only when memory runs out. */
static int add_folder(struct models *ms, const char *name, int *added)
{
    char folder[PATH_MAX], path[PATH_MAX];
    struct stat st;
    if (model_path_join(folder, ms->dir, name) != 0 ||
        model_path_join(path, folder, "model.onnx") != 0 || stat(path, &st) != 0 ||
        listed(ms, name))
        return 0;
    struct model *m = model_load(folder, name, &ms->settings);
    if (!m) return -1;
    pthread_rwlock_wrlock(&ms->lock);
    int rc = find_index(ms, name) < ms->count ? 1 : append(ms, m);
    pthread_rwlock_unlock(&ms->lock);
    if (rc == 0)
        (*added)++;
    else
        model_release(m);
    return rc < 0 ? -1 : 0;
}

/* Lists every folder of models_dir with a model.onnx that is not listed yet. Folders starting
 * with '.' (uploads and deletions in progress) are skipped, and removed once they are old
 * leftovers. -1 only when memory runs out. */
static int add_unlisted(struct models *ms, int *added)
{
    DIR *d = opendir(ms->dir);
    if (!d) {
        log_event("info", "models", "models_dir %s: %s; no models are served", ms->dir,
                  strerror(errno));
        return 0;
    }
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir(d))) {
        if (entry->d_name[0] == '.')
            remove_leftover(ms->dir, entry->d_name);
        else
            rc = add_folder(ms, entry->d_name, added);
    }
    closedir(d);
    return rc;
}

struct models *models_open(const char *dir, const struct models_settings *settings,
                           struct eng_error *err)
{
    struct models *ms = calloc(1, sizeof *ms);
    if (ms) ms->dir = strdup(dir);
    if (!ms || !ms->dir) {
        free(ms);
        eng_no_memory(err);
        return NULL;
    }
    pthread_rwlock_init(&ms->lock, NULL);
    if (settings) ms->settings = *settings;
    int added = 0;
    if (add_unlisted(ms, &added) != 0) {
        models_close(ms);
        eng_fail(err, ENG_NO_MEMORY, "out of memory while loading models from %s", dir);
        return NULL;
    }
    return ms;
}

void models_close(struct models *ms)
{
    if (!ms) return;
    for (size_t i = 0; i < ms->count; i++)
        model_release(ms->items[i]);
    pthread_rwlock_destroy(&ms->lock);
    free(ms->items);
    free(ms->dir);
    free(ms);
}

struct model *models_acquire(struct models *ms, const char *name)
{
    if (!ms) return NULL;
    pthread_rwlock_rdlock(&ms->lock);
    size_t i = find_index(ms, name);
    struct model *m = i < ms->count ? ms->items[i] : NULL;
    if (m) atomic_fetch_add(&m->refs, 1);
    pthread_rwlock_unlock(&ms->lock);
    return m;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct model *const *)a)->name, (*(struct model *const *)b)->name);
}

struct model **models_list(struct models *ms, size_t *count)
{
    *count = 0;
    pthread_rwlock_rdlock(&ms->lock);
    struct model **list = ms->count ? malloc(ms->count * sizeof *list) : NULL;
    if (list) {
        *count = ms->count;
        for (size_t i = 0; i < ms->count; i++) {
            list[i] = ms->items[i];
            atomic_fetch_add(&list[i]->refs, 1);
        }
    } else if (ms->count) {
        *count = (size_t)-1;
    }
    pthread_rwlock_unlock(&ms->lock);
    if (list) qsort(list, *count, sizeof *list, by_name);
    return list;
}

void models_list_free(struct model **list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        model_release(list[i]);
    free(list);
}

/* Writes one uploaded file, flushed to disk so the rename publishes whole files only. */
static int write_file(const char *folder, const char *file, const void *data, size_t size,
                      struct eng_error *err)
{
    char path[PATH_MAX];
    int fd = model_path_join(path, folder, file) == 0
                 ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)
                 : -1;
    const char *p = data;
    while (fd >= 0 && size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        p += n;
        size -= (size_t)n;
    }
    int ok = fd >= 0 && size == 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    return ok ? 0
              : eng_fail(err, ENG_INTERNAL, "cannot write %s/%s: %s", folder, file,
                         strerror(errno));
}

/* The file name config.json gives the labels, or NULL (a config the load will refuse anyway). */
static char *labels_file_name(const struct model_upload *up)
{
    json_t *doc = up->config ? json_loadb(up->config, up->config_size, 0, NULL) : NULL;
    const char *file = json_string_value(json_object_get(doc, "labels"));
    char *copy = file && model_valid_file_name(file) ? strdup(file) : NULL;
    json_decref(doc);
    return copy;
}

/* Writes the upload's files into folder. */
static int write_upload(const char *folder, const struct model_upload *up, struct eng_error *err)
{
    if (write_file(folder, "model.onnx", up->onnx, up->onnx_size, err) ||
        (up->config && write_file(folder, "config.json", up->config, up->config_size, err)) ||
        (up->training && write_file(folder, "training.json", up->training, up->training_size, err)))
        return -1;
    if (!up->labels) return 0;
    char *file = labels_file_name(up);
    if (!file) {
        eng_fail(err, ENG_INVALID, "labels: config.json's \"labels\" must name the labels file");
        return -1;
    }
    int rc = write_file(folder, file, up->labels, up->labels_size, err);
    free(file);
    return rc ? -1 : 0;
}

/* Renames the loaded upload's folder to its name and lists m, under the write lock, so two uploads
 * of one name cannot both succeed. */
static int publish(struct models *ms, const char *tmp, struct model *m, struct eng_error *err)
{
    char final[PATH_MAX];
    struct stat st;
    if (model_path_join(final, ms->dir, m->name) != 0) {
        eng_fail(err, ENG_INTERNAL, "models_dir %s: %s", ms->dir, strerror(errno));
        return -1;
    }
    int status = 0;
    pthread_rwlock_wrlock(&ms->lock);
    if (find_index(ms, m->name) < ms->count || lstat(final, &st) == 0) {
        eng_fail(err, ENG_CONFLICT, "a model named %s exists", m->name);
        status = -1;
    } else if (append(ms, m) != 0) {
        eng_no_memory(err);
        status = -1;
    } else if (rename(tmp, final) != 0) {
        eng_fail(err, ENG_INTERNAL, "cannot move the model into %s: %s", final, strerror(errno));
        ms->count--;
        status = -1;
    } else {
        atomic_fetch_add(&m->refs, 1); /* the caller's, besides the repository's */
    }
    pthread_rwlock_unlock(&ms->lock);
    return status;
}

/* Loads the written upload and lists it; the reason of a model that cannot serve is the
 * rejection. */
static int load_upload(struct models *ms, const char *tmp, const char *name, struct model **added,
                       struct eng_error *err)
{
    struct model *m = model_load(tmp, name, &ms->settings);
    if (!m) {
        eng_no_memory(err);
        return -1;
    }
    if (m->reason) {
        eng_fail(err, ENG_INVALID, "%s", m->reason);
        model_release(m);
        return -1;
    }
    int status = publish(ms, tmp, m, err);
    if (status != 0) {
        model_release(m);
        return status;
    }
    *added = m;
    return 0;
}

/* Tells the settings' hook that models_dir changed. */
static void changed(const struct models *ms, const char *name)
{
    if (ms->settings.changed) ms->settings.changed(ms->settings.changed_arg, name);
}

int models_add(struct models *ms, const char *name, const struct model_upload *upload,
               struct model **added, struct eng_error *err)
{
    *added = NULL;
    if (!models_valid_name(name)) {
        eng_fail(err, ENG_INVALID,
                 "name: must be 1 to %d characters of A-Z, a-z, 0-9, '_', '.' and '-', not "
                 "starting with '.'",
                 MAX_NAME_LENGTH);
        return -1;
    }
    if (ms->settings.max_model_bytes > 0 &&
        upload->onnx_size > (unsigned long long)ms->settings.max_model_bytes) {
        eng_fail(err, ENG_TOO_LARGE, "model: the file is %zu bytes; max_model_bytes is %lld",
                 upload->onnx_size, ms->settings.max_model_bytes);
        return -1;
    }
    if (listed(ms, name)) {
        eng_fail(err, ENG_CONFLICT, "a model named %s exists", name);
        return -1;
    }
    char leaf[MAX_NAME_LENGTH + 32], tmp[PATH_MAX];
    snprintf(leaf, sizeof leaf, ".upload-%s-XXXXXX", name);
    if ((mkdir(ms->dir, 0755) != 0 && errno != EEXIST) ||
        model_path_join(tmp, ms->dir, leaf) != 0 || !mkdtemp(tmp)) {
        eng_fail(err, ENG_INTERNAL, "cannot make a folder in models_dir %s: %s", ms->dir,
                 strerror(errno));
        return -1;
    }
    int status = write_upload(tmp, upload, err);
    if (status == 0) status = load_upload(ms, tmp, name, added, err);
    if (status != 0 && remove_tree(tmp) != 0)
        log_event("warn", "models", "cannot remove %s: %s", tmp, strerror(errno));
    if (status == 0) changed(ms, name);
    return status;
}

int models_remove(struct models *ms, const char *name, struct eng_error *err)
{
    char leaf[MAX_NAME_LENGTH + 32], folder[PATH_MAX], trash[PATH_MAX];
    /* No model has such a name, and it must not reach the file system: one too long for it
     * would fail there as a server error. */
    if (!models_valid_name(name)) return eng_fail(err, ENG_NOT_FOUND, "unknown model: %s", name);
    snprintf(leaf, sizeof leaf, ".deleted-%.*s-XXXXXX", MAX_NAME_LENGTH, name);
    if (model_path_join(folder, ms->dir, name) != 0 || model_path_join(trash, ms->dir, leaf) != 0) {
        eng_fail(err, ENG_INTERNAL, "models_dir %s: %s", ms->dir, strerror(errno));
        return -1;
    }
    pthread_rwlock_wrlock(&ms->lock);
    size_t i = find_index(ms, name);
    if (i == ms->count) {
        pthread_rwlock_unlock(&ms->lock);
        return eng_fail(err, ENG_NOT_FOUND, "unknown model: %s", name);
    }
    /* Moved aside first (a rename onto the empty temporary folder), so the name is free on disk at
     * once and a crash mid-removal leaves only a dot-folder the next scan skips. */
    if (!mkdtemp(trash) || rename(folder, trash) != 0) {
        eng_fail(err, ENG_INTERNAL, "cannot move %s aside: %s", folder, strerror(errno));
        rmdir(trash);
        pthread_rwlock_unlock(&ms->lock);
        return -1;
    }
    struct model *m = ms->items[i];
    memmove(&ms->items[i], &ms->items[i + 1], (ms->count - i - 1) * sizeof *ms->items);
    ms->count--;
    pthread_rwlock_unlock(&ms->lock);
    if (remove_tree(trash) != 0)
        log_event("warn", "models", "cannot remove %s: %s", trash, strerror(errno));
    model_release(m);
    changed(ms, name);
    return 0;
}

/* Serves the freshly loaded model fresh in place of old when old is still the one listed.
 * Returns whether it did; the caller releases whichever is left over. */
static int replace(struct models *ms, struct model *old, struct model *fresh)
{
    pthread_rwlock_wrlock(&ms->lock);
    size_t i = find_index(ms, old->name);
    int replaced = i < ms->count && ms->items[i] == old;
    if (replaced) ms->items[i] = fresh;
    pthread_rwlock_unlock(&ms->lock);
    return replaced;
}

/* Stops serving m when it is still listed and its folder is gone. Returns whether it did. */
static int drop_if_gone(struct models *ms, struct model *m, const char *folder)
{
    struct stat st;
    int dropped = 0;
    pthread_rwlock_wrlock(&ms->lock);
    size_t i = find_index(ms, m->name);
    if (i < ms->count && ms->items[i] == m && lstat(folder, &st) != 0) {
        memmove(&ms->items[i], &ms->items[i + 1], (ms->count - i - 1) * sizeof *ms->items);
        ms->count--;
        dropped = 1;
    }
    pthread_rwlock_unlock(&ms->lock);
    if (dropped) model_release(m);
    return dropped;
}

/* One listed model: dropped when its folder is gone, reloaded when its files changed. */
static void rescan_listed(struct models *ms, struct model *m, struct models_rescan *counts)
{
    char folder[PATH_MAX];
    if (model_path_join(folder, ms->dir, m->name) != 0) return;
    if (drop_if_gone(ms, m, folder)) {
        counts->dropped++;
        return;
    }
    if (model_folder_signature(folder) == m->files) return;
    struct model *fresh = model_load(folder, m->name, &ms->settings);
    if (!fresh) return;
    int replaced = replace(ms, m, fresh);
    counts->reloaded += replaced;
    model_release(replaced ? m : fresh);
}

struct models_rescan models_rescan(struct models *ms)
{
    struct models_rescan counts = {0};
    size_t n;
    struct model **list = models_list(ms, &n);
    for (size_t i = 0; i < n; i++)
        rescan_listed(ms, list[i], &counts);
    models_list_free(list, n);
    add_unlisted(ms, &counts.added); /* out of memory: the rest waits for the next rescan */
    return counts;
}
