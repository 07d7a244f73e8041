/* The cache on disk: writing a file of it atomically, and dataset_open, which maps the files and
 * checks every record against them once, so that the accessors are plain loads. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/internal.h"

struct cache_header cache_header_make(const char *magic, uint32_t flags, uint64_t count,
                                      uint64_t extra)
{
    struct cache_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, magic, sizeof h.magic);
    h.version = CACHE_VERSION;
    h.flags = flags;
    h.count = count;
    h.extra = extra;
    return h;
}

static int write_all(int fd, const void *data, size_t size)
{
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, (const char *)data + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

int cache_write_file(const char *dir, const char *name, const void *const *parts,
                     const size_t *sizes, size_t n, int exclusive, struct eng_error *err)
{
    char *tmp = data_printf(err, "%s/.%s.tmp-XXXXXX", dir, name);
    char *final = tmp ? data_printf(err, "%s/%s", dir, name) : NULL;
    int fd = final ? mkostemp(tmp, O_CLOEXEC) : -1, rc = 0;
    if (final && fd < 0) rc = eng_fail(err, ENG_INTERNAL, "%s: %s", dir, strerror(errno));
    if (fd >= 0 && fchmod(fd, 0644)) /* mkostemp's 0600 would keep other readers out */
        rc = eng_fail(err, ENG_INTERNAL, "%s: %s", final, strerror(errno));
    for (size_t i = 0; fd >= 0 && rc == 0 && i < n; i++)
        if (write_all(fd, parts[i], sizes[i]))
            rc = eng_fail(err, ENG_INTERNAL, "%s: %s", final, strerror(errno));
    if (fd >= 0 && rc == 0 && fsync(fd))
        rc = eng_fail(err, ENG_INTERNAL, "%s: %s", final, strerror(errno));
    if (fd >= 0 && close(fd) && rc == 0)
        rc = eng_fail(err, ENG_INTERNAL, "%s: %s", final, strerror(errno));
    if (fd >= 0 && rc == 0) {
        /* link refuses an existing name, rename replaces it; both are atomic. */
        if (exclusive ? link(tmp, final) : rename(tmp, final))
            rc = errno == EEXIST ? eng_fail(err, ENG_CONFLICT, "%s exists already", name)
                                 : eng_fail(err, ENG_INTERNAL, "%s: %s", final, strerror(errno));
    }
    if (fd >= 0 && (rc || exclusive)) unlink(tmp);
    if (fd >= 0 && rc == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd)) rc = eng_fail(err, ENG_INTERNAL, "%s: %s", dir, strerror(errno));
        if (dfd >= 0) close(dfd);
    }
    free(final);
    free(tmp);
    return rc;
}

/* ---- Opening -------------------------------------------------------------------------------- */

static int damaged(struct eng_error *err, const char *dir, const char *what)
{
    return eng_fail(err, ENG_UNDECODABLE, "%s: a damaged dataset cache (%s)", dir, what);
}

/* Maps dir/name and checks its header's magic and version (count: the header's). A missing file
 * is an error when required, else an empty mapping. */
static int map_file(const char *dir, const char *name, const char *magic, int required,
                    struct cache_map *m, const struct cache_header **header, struct eng_error *err)
{
    m->data = NULL;
    m->size = 0;
    char *path = data_printf(err, "%s/%s", dir, name);
    if (!path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) return errno == ENOENT && !required ? 0 : damaged(err, dir, name);
    struct stat st;
    int rc = fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(struct cache_header)
                 ? 0
                 : damaged(err, dir, name);
    void *p = rc == 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (rc == 0 && p == MAP_FAILED)
        return eng_fail(err, ENG_INTERNAL, "%s/%s: %s", dir, name, strerror(errno));
    if (rc) return -1;
    m->data = p;
    m->size = (size_t)st.st_size;
    *header = p;
    if (memcmp((*header)->magic, magic, 8) != 0 || (*header)->version != CACHE_VERSION)
        return damaged(err, dir, name);
    return 0;
}

static void unmap(struct cache_map *m)
{
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
}

/* Whether [offset, offset + size] (a zero byte after it when terminated) lies in the map. */
static int inside(const struct cache_map *m, uint64_t offset, uint64_t size, int terminated)
{
    if (offset < sizeof(struct cache_header) || offset > m->size || size > m->size - offset ||
        (terminated && (size == m->size - offset || m->data[offset + size] != 0)))
        return 0;
    return 1;
}

static int check_record(const struct dataset *ds, const struct cache_record *r, size_t names_size)
{
    const struct cache_map names = {(const uint8_t *)ds->names - sizeof(struct cache_header),
                                    names_size + sizeof(struct cache_header)};
    const uint64_t bytes = (uint64_t)r->width * r->height * r->channels;
    return r->width >= 1 && r->height >= 1 && r->width <= 65535 && r->height <= 65535 &&
           (r->channels == 1 || r->channels == 3 || r->channels == 4) &&
           r->offset % CACHE_ALIGN == 0 && inside(&ds->images, r->offset, bytes, 0) &&
           r->label >= -1 && r->label < (int64_t)ds->class_count &&
           r->split < ds->source_split_count &&
           inside(&names, sizeof(struct cache_header) + (uint64_t)r->name_offset, r->name_size,
                  1) &&
           (!r->original_size || inside(&ds->originals, r->original_offset, r->original_size, 0)) &&
           (!r->targets_size || inside(&ds->targets, r->targets_offset, r->targets_size, 1));
}

/* dataset.json's fields. */
static int read_doc(struct dataset *ds, struct eng_error *err)
{
    char *path = data_printf(err, "%s/" CACHE_JSON, ds->dir);
    if (!path) return -1;
    json_error_t jerr;
    ds->doc = json_load_file(path, 0, &jerr);
    free(path);
    if (!ds->doc) {
        struct stat st;
        return stat(ds->dir, &st) == 0 && jerr.line != -1
                   ? damaged(err, ds->dir, CACHE_JSON)
                   : eng_fail(err, ENG_NOT_FOUND, "%s: no dataset there", ds->dir);
    }
    json_t *classes = json_object_get(ds->doc, "classes"), *size = json_object_get(ds->doc, "size");
    ds->name = json_string_value(json_object_get(ds->doc, "name"));
    ds->hash = json_string_value(json_object_get(ds->doc, "hash"));
    ds->source_split_count = json_array_size(json_object_get(ds->doc, "splits"));
    if (json_integer_value(json_object_get(ds->doc, "version")) != CACHE_VERSION || !ds->name ||
        !ds->hash || !json_is_array(classes))
        return damaged(err, ds->dir, CACHE_JSON);
    ds->class_count = json_array_size(classes);
    if (!(ds->classes = calloc(ds->class_count ? ds->class_count : 1, sizeof *ds->classes)))
        return eng_no_memory(err);
    for (size_t i = 0; i < ds->class_count; i++)
        if (!(ds->classes[i] = json_string_value(json_array_get(classes, i))))
            return damaged(err, ds->dir, "a class name");
    ds->uniform_width = (int)json_integer_value(json_array_get(size, 0));
    ds->uniform_height = (int)json_integer_value(json_array_get(size, 1));
    return 0;
}

struct dataset *dataset_open(const char *dir, struct eng_error *err)
{
    struct dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = strdup(dir))) {
        free(ds);
        eng_no_memory(err);
        return NULL;
    }
    pthread_mutex_init(&ds->lock, NULL);
    const struct cache_header *index, *images, *originals, *targets;
    int rc = read_doc(ds, err);
    if (rc == 0) rc = map_file(dir, CACHE_INDEX, "AUGDSIDX", 1, &ds->index, &index, err);
    if (rc == 0) rc = map_file(dir, CACHE_IMAGES, "AUGDSIMG", 1, &ds->images, &images, err);
    if (rc == 0)
        rc = map_file(dir, CACHE_ORIGINALS, "AUGDSORG", 0, &ds->originals, &originals, err);
    if (rc == 0) rc = map_file(dir, CACHE_TARGETS, "AUGDSTGT", 0, &ds->targets, &targets, err);
    if (rc == 0) {
        ds->count = index->count;
        uint64_t names = index->extra;
        if (ds->count > (ds->index.size - sizeof *index) / sizeof(struct cache_record) ||
            names != sizeof *index + ds->count * sizeof(struct cache_record) ||
            (ds->index.size > names && ds->index.data[ds->index.size - 1] != 0) ||
            ds->count != (size_t)json_integer_value(json_object_get(ds->doc, "images")))
            rc = damaged(err, dir, CACHE_INDEX);
        ds->records = (const struct cache_record *)(ds->index.data + sizeof *index);
        ds->names = (const char *)ds->index.data + names;
        for (size_t i = 0; rc == 0 && i < ds->count; i++)
            if (!check_record(ds, &ds->records[i], ds->index.size - names))
                rc = damaged(err, dir, "an image record");
    }
    if (rc == 0) rc = dataset_split_refresh(ds, err);
    if (rc) {
        dataset_close(ds);
        return NULL;
    }
    return ds;
}

void dataset_close(struct dataset *ds)
{
    if (!ds) return;
    unmap(&ds->index);
    unmap(&ds->images);
    unmap(&ds->originals);
    unmap(&ds->targets);
    for (size_t i = 0; i < ds->split_count; i++)
        split_free(ds->splits[i]);
    free(ds->splits);
    free(ds->classes);
    json_decref(ds->doc);
    pthread_mutex_destroy(&ds->lock);
    free(ds->dir);
    free(ds);
}

/* ---- Accessors ------------------------------------------------------------------------------ */

const char *dataset_name(const struct dataset *ds)
{
    return ds->name;
}

const char *dataset_hash(const struct dataset *ds)
{
    return ds->hash;
}

size_t dataset_count(const struct dataset *ds)
{
    return ds->count;
}

size_t dataset_class_count(const struct dataset *ds)
{
    return ds->class_count;
}

const char *dataset_class_name(const struct dataset *ds, size_t cls)
{
    return ds->classes[cls];
}

void dataset_uniform_size(const struct dataset *ds, int *width, int *height)
{
    *width = ds->uniform_width;
    *height = ds->uniform_height;
}

void dataset_image(const struct dataset *ds, size_t i, struct img *view)
{
    const struct cache_record *r = &ds->records[i];
    view->width = (int)r->width;
    view->height = (int)r->height;
    view->channels = r->channels;
    view->stride = (size_t)r->width * r->channels;
    view->data = (uint8_t *)ds->images.data + r->offset;
}

struct img *dataset_image_copy(const struct dataset *ds, size_t i, struct eng_error *err)
{
    struct img view;
    dataset_image(ds, i, &view);
    return img_clone(&view, err);
}

int dataset_label(const struct dataset *ds, size_t i)
{
    return ds->records[i].label;
}

const char *dataset_source(const struct dataset *ds, size_t i)
{
    return ds->names + ds->records[i].name_offset;
}

void dataset_original_size(const struct dataset *ds, size_t i, int *width, int *height)
{
    *width = (int)ds->records[i].orig_width;
    *height = (int)ds->records[i].orig_height;
}

int dataset_original(const struct dataset *ds, size_t i, const void **data, size_t *size)
{
    const struct cache_record *r = &ds->records[i];
    if (!r->original_size) return -1;
    *data = ds->originals.data + r->original_offset;
    *size = r->original_size;
    return 0;
}

const char *dataset_targets(const struct dataset *ds, size_t i)
{
    const struct cache_record *r = &ds->records[i];
    return r->targets_size ? (const char *)ds->targets.data + r->targets_offset : NULL;
}

json_t *dataset_describe(const struct dataset *ds)
{
    json_t *out = json_deep_copy(ds->doc), *splits = json_array();
    size_t *counts = calloc(ds->class_count + 1, sizeof *counts);
    const int ok = out && splits && counts;
    pthread_mutex_lock((pthread_mutex_t *)&ds->lock);
    for (size_t i = 0; ok && i < ds->split_count; i++) {
        const struct data_split *s = ds->splits[i];
        memset(counts, 0, (ds->class_count + 1) * sizeof *counts);
        for (size_t k = 0; k < s->count; k++)
            counts[data_split_label(ds, s, k) + 1]++;
        json_t *per_class = json_array();
        for (size_t c = 0; per_class && c < ds->class_count; c++)
            json_array_append_new(per_class, json_integer((json_int_t)counts[c + 1]));
        json_array_append_new(splits,
                              json_pack("{s:s, s:I, s:b, s:o, s:I}", "name", s->name, "count",
                                        (json_int_t)s->count, "labeled", s->labeled, "per_class",
                                        per_class, "unlabeled", (json_int_t)counts[0]));
    }
    pthread_mutex_unlock((pthread_mutex_t *)&ds->lock);
    free(counts);
    if (!ok) {
        json_decref(out);
        json_decref(splits);
        return NULL;
    }
    json_object_set_new(out, "splits", splits);
    return out;
}
