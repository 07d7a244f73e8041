#include "datasets.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataset.h"

#define MAX_ID_LENGTH 64

/* One open dataset and its users. */
struct entry {
    char id[MAX_ID_LENGTH + 1];
    struct dataset *dataset;
    int refs; /* under the registry's lock */
    struct entry *next;
};

struct datasets {
    char *dir;
    pthread_mutex_t lock;
    struct entry *open;
};

int datasets_valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n >= 1 && n <= MAX_ID_LENGTH &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

struct datasets *datasets_open(const char *dir, struct eng_error *err)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        eng_fail(err, ENG_INTERNAL, "datasets: cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    if (data_import_cleanup(dir, err) != 0) return NULL;
    struct datasets *r = calloc(1, sizeof *r);
    if (r) r->dir = strdup(dir);
    if (!r || !r->dir) {
        free(r);
        eng_no_memory(err);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void datasets_close(struct datasets *r)
{
    if (!r) return;
    for (struct entry *e = r->open, *next; e; e = next) {
        next = e->next;
        dataset_close(e->dataset);
        free(e);
    }
    pthread_mutex_destroy(&r->lock);
    free(r->dir);
    free(r);
}

const char *datasets_dir(const struct datasets *r)
{
    return r->dir;
}

struct dataset *datasets_acquire(struct datasets *r, const char *id, struct eng_error *err)
{
    if (!datasets_valid_id(id)) {
        eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %.80s", id ? id : "");
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    struct entry *e = r->open;
    while (e && strcmp(e->id, id) != 0)
        e = e->next;
    if (!e) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", r->dir, id);
        struct dataset *d = NULL;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %s", id);
        else
            d = dataset_open(path, err);
        if (d && !(e = calloc(1, sizeof *e))) eng_no_memory(err);
        if (!e) {
            dataset_close(d);
            pthread_mutex_unlock(&r->lock);
            return NULL;
        }
        snprintf(e->id, sizeof e->id, "%s", id);
        e->dataset = d;
        e->next = r->open;
        r->open = e;
    }
    e->refs++;
    pthread_mutex_unlock(&r->lock);
    return e->dataset;
}

void datasets_release(struct datasets *r, struct dataset *d)
{
    if (!d) return;
    pthread_mutex_lock(&r->lock);
    for (struct entry *e = r->open; e; e = e->next)
        if (e->dataset == d) {
            e->refs--;
            break;
        }
    pthread_mutex_unlock(&r->lock);
}

int datasets_remove(struct datasets *r, const char *id, struct eng_error *err)
{
    if (!datasets_valid_id(id)) return eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %.80s", id);
    pthread_mutex_lock(&r->lock);
    struct entry **link = &r->open;
    while (*link && strcmp((*link)->id, id) != 0)
        link = &(*link)->next;
    struct entry *e = *link;
    int rc = 0;
    if (e && e->refs > 0) {
        rc = eng_fail(err, ENG_CONFLICT, "dataset %s is in use by %d request%s or job%s", id,
                      e->refs, e->refs == 1 ? "" : "s", e->refs == 1 ? "" : "s");
    } else {
        if (e) {
            *link = e->next;
            dataset_close(e->dataset);
            free(e);
        }
        /* Under the lock, so no acquire opens the folder while it goes. */
        rc = data_remove(r->dir, id, err);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void datasets_free_ids(char **ids, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(ids[i]);
    free(ids);
}

int datasets_list_ids(struct datasets *r, char ***ids, size_t *count, struct eng_error *err)
{
    *ids = NULL;
    *count = 0;
    DIR *dir = opendir(r->dir);
    if (!dir) return eng_fail(err, ENG_INTERNAL, "datasets: %s: %s", r->dir, strerror(errno));
    size_t capacity = 0;
    int rc = 0;
    for (struct dirent *d; rc == 0 && (d = readdir(dir));) {
        if (!datasets_valid_id(d->d_name)) continue;
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            char **grown = realloc(*ids, capacity * sizeof *grown);
            if (!grown) {
                rc = eng_no_memory(err);
                break;
            }
            *ids = grown;
        }
        if (!((*ids)[*count] = strdup(d->d_name)))
            rc = eng_no_memory(err);
        else
            (*count)++;
    }
    closedir(dir);
    if (rc != 0) {
        datasets_free_ids(*ids, *count);
        *ids = NULL;
        *count = 0;
    }
    return rc;
}
