/* Splits: lists of image indices saved as splits/<name>.split in the cache (a 64-byte header,
 * the indices as u32, and the split's own labels as i32 when it has them), loaded at open, added
 * later by dataset_split_add, and derived from another split with a seed. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "data/internal.h"

#define SUFFIX ".split"

int data_split_name_check(const char *name, struct eng_error *err)
{
    return data_name_check("split name", name, err);
}

int data_split_label(const struct dataset *ds, const struct data_split *s, size_t k)
{
    if (!s->labeled) return -1;
    return s->labels ? s->labels[k] : ds->records[s->indices[k]].label;
}

/* A split in one allocation: the struct, its indices, its labels, its name. */
static struct data_split *split_new(const char *name, size_t count, int own_labels,
                                    struct eng_error *err)
{
    const size_t size = sizeof(struct data_split) + count * sizeof(uint32_t) * (own_labels ? 2 : 1);
    struct data_split *s = malloc(size + strlen(name) + 1);
    if (!s) {
        eng_no_memory(err);
        return NULL;
    }
    uint32_t *indices = (uint32_t *)(s + 1);
    s->indices = indices;
    s->labels = own_labels ? (const int32_t *)(indices + count) : NULL;
    s->count = count;
    s->labeled = 1;
    s->name = strcpy((char *)s + size, name);
    return s;
}

void split_free(struct data_split *s)
{
    free(s);
}

int split_write(const char *dir, const char *name, const uint32_t *indices, const int32_t *labels,
                size_t count, int labeled, int exclusive, struct eng_error *err)
{
    char *folder = data_printf(err, "%s/" CACHE_SPLITS, dir);
    char *file = folder ? data_printf(err, "%s" SUFFIX, name) : NULL;
    int rc = file ? 0 : -1;
    if (rc == 0 && mkdir(folder, 0755) != 0 && errno != EEXIST)
        rc = eng_fail(err, ENG_INTERNAL, "%s: %s", folder, strerror(errno));
    const uint32_t flags =
        (labeled ? CACHE_SPLIT_LABELED : 0) | (labels ? CACHE_SPLIT_OWN_LABELS : 0);
    const struct cache_header header = cache_header_make("AUGDSSPL", flags, count, 0);
    const void *parts[] = {&header, indices, labels};
    const size_t sizes[] = {sizeof header, count * sizeof *indices,
                            labels ? count * sizeof *labels : 0};
    if (rc == 0) rc = cache_write_file(folder, file, parts, sizes, 3, exclusive, err);
    free(file);
    free(folder);
    return rc;
}

/* Adds s to ds's list, in name order: ENG_CONFLICT when the name is there. */
static int split_insert(struct dataset *ds, struct data_split *s, struct eng_error *err)
{
    pthread_mutex_lock(&ds->lock);
    size_t at = 0;
    while (at < ds->split_count && strcmp(ds->splits[at]->name, s->name) < 0)
        at++;
    int rc = 0;
    if (at < ds->split_count && strcmp(ds->splits[at]->name, s->name) == 0)
        rc = eng_fail(err, ENG_CONFLICT, "split '%s' exists already", s->name);
    struct data_split **grown =
        rc ? NULL : data_grow(ds->splits, &ds->split_cap, ds->split_count, sizeof *grown, err);
    if (grown) ds->splits = grown;
    if (!grown) rc = -1;
    if (rc == 0) {
        memmove(ds->splits + at + 1, ds->splits + at, (ds->split_count - at) * sizeof *ds->splits);
        ds->splits[at] = s;
        ds->split_count++;
    }
    pthread_mutex_unlock(&ds->lock);
    return rc;
}

/* Checks a split's indices (ascending, in the dataset) and labels (classes or -1). */
static int split_check(const struct dataset *ds, const struct data_split *s)
{
    for (size_t k = 0; k < s->count; k++)
        if (s->indices[k] >= ds->count || (k && s->indices[k] <= s->indices[k - 1]) ||
            (s->labels && (s->labels[k] < -1 || s->labels[k] >= (int64_t)ds->class_count)))
            return -1;
    return 0;
}

/* Reads splits/<file> (a name ending in ".split"). */
static int split_load(struct dataset *ds, const char *folder, const char *file,
                      struct eng_error *err)
{
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(strlen(file) - strlen(SUFFIX)), file);
    char *path = data_printf(err, "%s/%s", folder, file);
    FILE *f = path ? fopen(path, "rb") : NULL;
    free(path);
    struct cache_header h;
    if (!f || fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, "AUGDSSPL", 8) != 0 ||
        h.version != CACHE_VERSION || h.count > ds->count || data_split_name_check(name, err)) {
        if (f) fclose(f);
        return eng_fail(err, ENG_UNDECODABLE, "%s: a damaged split file (%s)", ds->dir, file);
    }
    const int own = (h.flags & CACHE_SPLIT_OWN_LABELS) != 0;
    struct data_split *s = split_new(name, h.count, own, err);
    int rc = s ? 0 : -1;
    if (s) {
        s->labeled = (h.flags & CACHE_SPLIT_LABELED) != 0;
        size_t want = h.count * (own ? 2 : 1), got = fread((uint32_t *)s->indices, 4, want, f);
        char extra;
        if (got != want || fread(&extra, 1, 1, f) != 0 || split_check(ds, s))
            rc = eng_fail(err, ENG_UNDECODABLE, "%s: a damaged split file (%s)", ds->dir, file);
    }
    fclose(f);
    if (rc == 0) rc = split_insert(ds, s, err);
    if (rc) split_free(s);
    return rc;
}

int dataset_split_refresh(struct dataset *ds, struct eng_error *err)
{
    char *folder = data_printf(err, "%s/" CACHE_SPLITS, ds->dir);
    DIR *dir = folder ? opendir(folder) : NULL;
    int rc = folder ? 0 : -1;
    if (folder && !dir) rc = eng_fail(err, ENG_UNDECODABLE, "%s: no splits folder", ds->dir);
    for (struct dirent *d; rc == 0 && (d = readdir(dir));) {
        size_t n = strlen(d->d_name);
        if (d->d_name[0] == '.' || n <= strlen(SUFFIX) ||
            strcmp(d->d_name + n - strlen(SUFFIX), SUFFIX) != 0)
            continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(n - strlen(SUFFIX)), d->d_name);
        if (dataset_split(ds, name)) continue;
        rc = split_load(ds, folder, d->d_name, err);
        /* Another thread's refresh loaded it meanwhile: as good. */
        if (rc != 0 && err->code == ENG_CONFLICT) rc = 0;
    }
    if (dir) closedir(dir);
    free(folder);
    return rc;
}

size_t dataset_split_count(const struct dataset *ds)
{
    pthread_mutex_lock((pthread_mutex_t *)&ds->lock);
    size_t n = ds->split_count;
    pthread_mutex_unlock((pthread_mutex_t *)&ds->lock);
    return n;
}

const struct data_split *dataset_split_at(const struct dataset *ds, size_t i)
{
    pthread_mutex_lock((pthread_mutex_t *)&ds->lock);
    const struct data_split *s = i < ds->split_count ? ds->splits[i] : NULL;
    pthread_mutex_unlock((pthread_mutex_t *)&ds->lock);
    return s;
}

const struct data_split *dataset_split(const struct dataset *ds, const char *name)
{
    const struct data_split *found = NULL;
    pthread_mutex_lock((pthread_mutex_t *)&ds->lock);
    for (size_t i = 0; i < ds->split_count && !found; i++)
        if (strcmp(ds->splits[i]->name, name) == 0) found = ds->splits[i];
    pthread_mutex_unlock((pthread_mutex_t *)&ds->lock);
    return found;
}

/* ---- Adding splits -------------------------------------------------------------------------- */

struct pair {
    uint32_t index;
    int32_t label;
};

static int compare_pairs(const void *a, const void *b)
{
    uint32_t x = ((const struct pair *)a)->index, y = ((const struct pair *)b)->index;
    return (x > y) - (x < y);
}

/* A new split of the images, sorted, checked against ds (ENG_INVALID). */
static struct data_split *split_make(const struct dataset *ds, const char *name,
                                     const uint32_t *indices, const int32_t *labels, size_t count,
                                     int labeled, struct eng_error *err)
{
    if (data_split_name_check(name, err)) return NULL;
    struct pair *pairs = malloc((count ? count : 1) * sizeof *pairs);
    struct data_split *s = pairs ? split_new(name, count, labels != NULL, err) : NULL;
    if (!pairs) eng_no_memory(err);
    if (!s) {
        free(pairs);
        return NULL;
    }
    for (size_t k = 0; k < count; k++)
        pairs[k] = (struct pair){indices[k], labels ? labels[k] : -1};
    qsort(pairs, count, sizeof *pairs, compare_pairs);
    for (size_t k = 0; k < count; k++) {
        ((uint32_t *)s->indices)[k] = pairs[k].index;
        if (labels) ((int32_t *)s->labels)[k] = pairs[k].label;
    }
    free(pairs);
    s->labeled = labeled;
    if (split_check(ds, s)) {
        eng_fail(err, ENG_INVALID,
                 "split '%s': an index past the dataset's %zu images, an index given twice, or "
                 "a label that is no class",
                 name, ds->count);
        split_free(s);
        return NULL;
    }
    return s;
}

static int split_save(const struct dataset *ds, const struct data_split *s, struct eng_error *err)
{
    if (dataset_split(ds, s->name))
        return eng_fail(err, ENG_CONFLICT, "split '%s' exists already", s->name);
    return split_write(ds->dir, s->name, s->indices, s->labels, s->count, s->labeled, 1, err);
}

/* Removes a split file written by split_save (when its pair could not be). */
static void split_unsave(const struct dataset *ds, const char *name)
{
    char *path = data_printf(NULL, "%s/" CACHE_SPLITS "/%s" SUFFIX, ds->dir, name);
    if (path) remove(path);
    free(path);
}

/* Adds s, whose file split_save has just linked into place (so the name is this call's), to ds: a
 * dataset_split_refresh may have loaded that file meanwhile, and then ds has the split already
 * and s is freed. 0, or -1 with err (s still the caller's). */
static int split_insert_saved(struct dataset *ds, struct data_split *s, struct eng_error *err)
{
    int rc = split_insert(ds, s, err);
    if (rc != 0 && err->code == ENG_CONFLICT) {
        split_free(s);
        rc = 0;
    }
    return rc;
}

int dataset_split_add(struct dataset *ds, const char *name, const uint32_t *indices,
                      const int32_t *labels, size_t count, int labeled, struct eng_error *err)
{
    struct data_split *s = split_make(ds, name, indices, labels, count, labeled, err);
    int rc = s ? split_save(ds, s, err) : -1;
    if (rc == 0) rc = split_insert_saved(ds, s, err);
    if (rc) split_free(s);
    return rc;
}

/* ---- Deriving a split ----------------------------------------------------------------------- */

void data_shuffle(uint32_t *items, size_t n, struct rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(r, (uint32_t)i);
        uint32_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}

/* How many of each stratum to take: per_class each (checked), or k shared out in proportion to
 * the strata's sizes with the remainders to the largest fractional parts (ties: the lower one). */
static int quotas(const struct dataset *ds, const struct data_split_spec *spec, const size_t *sizes,
                  size_t strata, size_t n, uint64_t k, uint64_t *take, struct eng_error *err)
{
    if (spec->mode == DATA_SPLIT_PER_CLASS) {
        for (size_t c = 0; c + 1 < strata; c++) {
            if (sizes[c] && sizes[c] < spec->per_class)
                return eng_fail(err, ENG_INVALID,
                                "class '%s' has %zu images in split '%s', fewer than per_class %u",
                                ds->classes[c], sizes[c], spec->from, spec->per_class);
            take[c] = sizes[c] ? spec->per_class : 0;
        }
        take[strata - 1] = 0; /* images without a class all go to the rest */
        return 0;
    }
    uint64_t given = 0;
    for (size_t s = 0; s < strata; s++)
        given += take[s] = k * sizes[s] / n;
    while (given < k) {
        size_t best = 0;
        uint64_t best_part = 0;
        int found = 0;
        for (size_t s = 0; s < strata; s++) {
            uint64_t part = k * sizes[s] % n;
            if (take[s] < sizes[s] && take[s] == k * sizes[s] / n && (!found || part > best_part)) {
                best = s;
                best_part = part;
                found = 1;
            }
        }
        take[best]++;
        given++;
    }
    return 0;
}

/* Marks the chosen positions of `from` in chosen[]. */
static int choose(const struct dataset *ds, const struct data_split *from,
                  const struct data_split_spec *spec, uint64_t k, uint8_t *chosen,
                  struct eng_error *err)
{
    const size_t n = from->count;
    const int stratified = spec->stratified || spec->mode == DATA_SPLIT_PER_CLASS;
    const size_t strata = stratified ? ds->class_count + 1 : 1;
    size_t *sizes = calloc(strata, sizeof *sizes);
    uint64_t *take = calloc(strata, sizeof *take);
    uint32_t *members = malloc((n ? n : 1) * sizeof *members);
    int rc = sizes && take && members ? 0 : eng_no_memory(err);
    /* Stratum of position p: its class, or the last for images without one. */
    for (size_t p = 0; rc == 0 && p < n; p++) {
        int label = data_split_label(ds, from, p);
        sizes[stratified ? (label >= 0 ? (size_t)label : strata - 1) : 0]++;
    }
    if (rc == 0) rc = quotas(ds, spec, sizes, strata, n, k, take, err);
    for (size_t s = 0; rc == 0 && s < strata; s++) {
        size_t m = 0;
        for (size_t p = 0; p < n; p++) {
            int label = data_split_label(ds, from, p);
            if (!stratified || (label >= 0 ? (size_t)label : strata - 1) == s)
                members[m++] = (uint32_t)p;
        }
        struct rng r;
        rng_init(&r, spec->seed, 0, stratified ? (uint32_t)s + 1 : 0, 0);
        data_shuffle(members, m, &r);
        for (size_t i = 0; i < take[s]; i++)
            chosen[members[i]] = 1;
    }
    free(sizes);
    free(take);
    free(members);
    return rc;
}

/* k, the number to choose, from the spec; ENG_INVALID for a bad one. */
static int spec_count(const struct data_split_spec *spec, const struct data_split *from,
                      uint64_t *k, struct eng_error *err)
{
    *k = 0;
    switch (spec->mode) {
    case DATA_SPLIT_FRACTION:
        if (!(spec->fraction >= 0 && spec->fraction <= 1))
            return eng_fail(err, ENG_INVALID, "fraction %g is not in [0, 1]", spec->fraction);
        *k = (uint64_t)llround(spec->fraction * (double)from->count);
        return 0;
    case DATA_SPLIT_COUNT:
        if (spec->count > from->count)
            return eng_fail(err, ENG_INVALID, "count %llu is more than split '%s' holds (%zu)",
                            (unsigned long long)spec->count, from->name, from->count);
        *k = spec->count;
        return 0;
    case DATA_SPLIT_PER_CLASS:
        if (spec->per_class < 1) return eng_fail(err, ENG_INVALID, "per_class must be at least 1");
        if (!from->labeled)
            return eng_fail(err, ENG_INVALID, "split '%s' is unlabeled: per_class needs classes",
                            from->name);
        return 0;
    }
    return eng_fail(err, ENG_INVALID, "unknown split mode %d", (int)spec->mode);
}

int dataset_split_derive(struct dataset *ds, const struct data_split_spec *spec,
                         struct eng_error *err)
{
    const struct data_split *from = dataset_split(ds, spec->from);
    if (!from) return eng_fail(err, ENG_NOT_FOUND, "no split '%s'", spec->from);
    char *rest = spec->rest ? strdup(spec->rest) : data_printf(err, "%s-rest", spec->name);
    uint64_t k;
    int rc = rest ? 0 : eng_no_memory(err);
    if (rc == 0 && strcmp(rest, spec->name) == 0)
        rc = eng_fail(err, ENG_INVALID, "the split and its rest are both '%s'", rest);
    if (rc == 0 && (data_split_name_check(spec->name, err) || data_split_name_check(rest, err)))
        rc = -1;
    if (rc == 0) rc = spec_count(spec, from, &k, err);
    const size_t n = from->count;
    uint8_t *chosen = rc == 0 ? calloc(n ? n : 1, 1) : NULL;
    uint32_t *indices[2] = {rc == 0 ? malloc((n ? n : 1) * sizeof **indices) : NULL,
                            rc == 0 ? malloc((n ? n : 1) * sizeof **indices) : NULL};
    int32_t *labels[2] = {NULL, NULL};
    for (int part = 0; rc == 0 && from->labels && part < 2; part++)
        if (!(labels[part] = malloc((n ? n : 1) * sizeof **labels))) rc = eng_no_memory(err);
    if (rc == 0 && (!chosen || !indices[0] || !indices[1])) rc = eng_no_memory(err);
    if (rc == 0) rc = choose(ds, from, spec, k, chosen, err);
    size_t counts[2] = {0, 0};
    for (size_t p = 0; rc == 0 && p < n; p++) {
        const int part = !chosen[p];
        if (labels[part]) labels[part][counts[part]] = from->labels[p];
        indices[part][counts[part]++] = from->indices[p];
    }
    /* Both files are written before either joins ds, so a failure leaves neither. */
    const int rest_labeled = spec->mode == DATA_SPLIT_PER_CLASS ? 0 : from->labeled;
    struct data_split *made[2] = {NULL, NULL};
    if (rc == 0 && !(made[0] = split_make(ds, spec->name, indices[0], labels[0], counts[0],
                                          from->labeled, err)))
        rc = -1;
    if (rc == 0 &&
        !(made[1] = split_make(ds, rest, indices[1], labels[1], counts[1], rest_labeled, err)))
        rc = -1;
    if (rc == 0) rc = split_save(ds, made[0], err);
    if (rc == 0 && split_save(ds, made[1], err)) {
        split_unsave(ds, made[0]->name);
        rc = -1;
    }
    for (int part = 0; part < 2; part++) {
        if (rc == 0 && split_insert_saved(ds, made[part], err)) {
            split_free(made[part]);
            rc = -1;
        } else if (rc) {
            split_free(made[part]);
        }
        free(indices[part]);
        free(labels[part]);
    }
    free(chosen);
    free(rest);
    return rc;
}
