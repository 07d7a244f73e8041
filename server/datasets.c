#include "datasets.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* What dir/<id> is. */
enum kind {
    KIND_NONE,  /* nothing, a malformed id, a file, or a link that is no alias */
    KIND_CACHE, /* a folder: the cache of this id */
    KIND_ALIAS, /* a link whose target is a valid id naming a folder beside it */
};

/* What r's folder holds under id, with the id of its cache (id itself, or an alias's target)
 * copied into cache. Reads the disk afresh: a folder removed by hand is gone at once. */
static enum kind look_up(const struct datasets *r, const char *id, char cache[MAX_ID_LENGTH + 1])
{
    char path[PATH_MAX], target[MAX_ID_LENGTH + 2];
    struct stat st;
    if (!datasets_valid_id(id)) return KIND_NONE;
    snprintf(path, sizeof path, "%s/%s", r->dir, id);
    if (lstat(path, &st) != 0) return KIND_NONE;
    if (S_ISDIR(st.st_mode)) {
        snprintf(cache, MAX_ID_LENGTH + 1, "%s", id);
        return KIND_CACHE;
    }
    ssize_t n = S_ISLNK(st.st_mode) ? readlink(path, target, sizeof target - 1) : -1;
    if (n <= 0 || n > MAX_ID_LENGTH) return KIND_NONE;
    target[n] = '\0';
    /* A bare id, so the same folder; a folder there, so no chain of links. */
    if (!datasets_valid_id(target)) return KIND_NONE;
    snprintf(path, sizeof path, "%s/%s", r->dir, target);
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return KIND_NONE;
    memcpy(cache, target, (size_t)n + 1); /* n <= MAX_ID_LENGTH */
    return KIND_ALIAS;
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

/* Under the lock: closes the open entry at *link and unlinks it. */
static void drop_entry(struct entry **link)
{
    struct entry *e = *link;
    *link = e->next;
    dataset_close(e->dataset);
    free(e);
}

void datasets_close_removed(struct datasets *r)
{
    pthread_mutex_lock(&r->lock);
    for (struct entry **link = &r->open; *link;) {
        struct entry *e = *link;
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", r->dir, e->id);
        if (e->refs == 0 && lstat(path, &st) != 0 && errno == ENOENT)
            drop_entry(link);
        else
            link = &e->next;
    }
    pthread_mutex_unlock(&r->lock);
}

struct dataset *datasets_acquire(struct datasets *r, const char *id, struct eng_error *err)
{
    char cache[MAX_ID_LENGTH + 1];
    pthread_mutex_lock(&r->lock);
    if (look_up(r, id, cache) == KIND_NONE) {
        pthread_mutex_unlock(&r->lock);
        eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %.80s", id ? id : "");
        return NULL;
    }
    struct entry *e = r->open;
    while (e && strcmp(e->id, cache) != 0)
        e = e->next;
    /* Open already: it may have gained splits through another process sharing the folder. */
    if (e && dataset_split_refresh(e->dataset, err) != 0) {
        pthread_mutex_unlock(&r->lock);
        return NULL;
    }
    if (!e) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", r->dir, cache);
        struct dataset *d = dataset_open(path, err);
        if (d && !(e = calloc(1, sizeof *e))) eng_no_memory(err);
        if (!e) {
            dataset_close(d);
            pthread_mutex_unlock(&r->lock);
            return NULL;
        }
        snprintf(e->id, sizeof e->id, "%s", cache);
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

int datasets_alias_of(struct datasets *r, const char *id, char target[65])
{
    pthread_mutex_lock(&r->lock);
    int alias = look_up(r, id, target) == KIND_ALIAS;
    pthread_mutex_unlock(&r->lock);
    return alias;
}

/* Under the lock: whether cache id may go (no alias names it, nothing holds it), 0, or
 * ENG_CONFLICT saying what keeps it (ENG_INTERNAL when the folder cannot be read); the open entry
 * of a cache that may go is closed. */
static int let_go(struct datasets *r, const char *id, struct eng_error *err)
{
    char aliases[400] = "", cache[MAX_ID_LENGTH + 1];
    size_t named = 0, used = 0;
    DIR *dir = opendir(r->dir);
    if (!dir) return eng_fail(err, ENG_INTERNAL, "datasets: %s: %s", r->dir, strerror(errno));
    for (struct dirent *d; (d = readdir(dir));)
        if (look_up(r, d->d_name, cache) == KIND_ALIAS && strcmp(cache, id) == 0 &&
            used < sizeof aliases)
            used += (size_t)snprintf(aliases + used, sizeof aliases - used, "%s%s",
                                     named++ ? ", " : "", d->d_name);
    closedir(dir);
    if (named > 0)
        return eng_fail(err, ENG_CONFLICT,
                        "dataset %s is in use: %s %s the same dataset under another id; delete "
                        "%s first",
                        id, aliases, named == 1 ? "is" : "are", aliases);
    struct entry **link = &r->open;
    while (*link && strcmp((*link)->id, id) != 0)
        link = &(*link)->next;
    struct entry *e = *link;
    if (e && e->refs > 0)
        return eng_fail(err, ENG_CONFLICT, "dataset %s is in use by %d request%s or job%s", id,
                        e->refs, e->refs == 1 ? "" : "s", e->refs == 1 ? "" : "s");
    if (e) drop_entry(link);
    return 0;
}

int datasets_alias(struct datasets *r, const char *id, const char *target, struct eng_error *err)
{
    char cache[MAX_ID_LENGTH + 1], self[MAX_ID_LENGTH + 1];
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    if (look_up(r, target, cache) == KIND_NONE)
        rc = eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %.80s", target ? target : "");
    else if (look_up(r, id, self) != KIND_CACHE)
        rc = eng_fail(err, ENG_NOT_FOUND, "dataset %.80s has no cache folder", id ? id : "");
    else if (strcmp(cache, id) == 0)
        rc = eng_fail(err, ENG_CONFLICT, "dataset %s cannot be an alias of itself", id);
    else if ((rc = let_go(r, id, err)) == 0 && (rc = data_remove(r->dir, id, err)) == 0)
        rc = data_link(r->dir, id, cache, err);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int datasets_remove(struct datasets *r, const char *id, struct eng_error *err)
{
    if (!datasets_valid_id(id)) return eng_fail(err, ENG_NOT_FOUND, "unknown dataset: %.80s", id);
    char cache[MAX_ID_LENGTH + 1];
    pthread_mutex_lock(&r->lock);
    /* Under the lock, so no acquire opens the folder while it goes. An alias's link goes alone:
     * the cache it names stays open for whoever holds it. */
    int rc = look_up(r, id, cache) == KIND_CACHE ? let_go(r, id, err) : 0;
    if (rc == 0) rc = data_remove(r->dir, id, err);
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
        char cache[MAX_ID_LENGTH + 1];
        if (look_up(r, d->d_name, cache) != KIND_CACHE) continue;
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
