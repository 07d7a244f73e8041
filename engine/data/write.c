/* The end of an import: the decoded images, in whatever order the threads stored them, become the
 * cache in canonical order (by name in the dataset, then record), with the content hash, and the
 * temporary folder is renamed to its final name.
 *
 * The hash is SHA-256 over a canonical serialisation, not over the files, so that it names the
 * content whatever the layout: "augserve-dataset", the version (u32), the class count and each
 * class name, the source split count and each name, the image count (u64), then per image its
 * name, split (u32), label (i32), width, height, channels, original width and height (u32 each),
 * its pixels (rows of width x channels bytes), its original file and its targets. Numbers are
 * little-endian; names, originals and targets are a u32 length then the bytes. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cancel.h"
#include "core/parallel.h"
#include "data/internal.h"
#include "image/geometry.h"

#define WRITE_CHUNK 256

/* ---- The canonical order and the hash ------------------------------------------------------- */

static int compare_items(const void *a, const void *b)
{
    const struct import_item *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : (x->record > y->record) - (x->record < y->record);
}

static void hash_u32(EVP_MD_CTX *h, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    EVP_DigestUpdate(h, b, sizeof b);
}

static void hash_text(EVP_MD_CTX *h, const void *data, size_t size)
{
    hash_u32(h, (uint32_t)size);
    EVP_DigestUpdate(h, data, size);
}

static void hash_header(EVP_MD_CTX *h, const struct import *im)
{
    EVP_DigestUpdate(h, "augserve-dataset", 16);
    hash_u32(h, CACHE_VERSION);
    hash_u32(h, (uint32_t)im->plan.class_count);
    for (size_t i = 0; i < im->plan.class_count; i++)
        hash_text(h, im->plan.classes[i], strlen(im->plan.classes[i]));
    hash_u32(h, (uint32_t)im->plan.split_count);
    for (size_t i = 0; i < im->plan.split_count; i++)
        hash_text(h, im->plan.splits[i], strlen(im->plan.splits[i]));
    hash_u32(h, (uint32_t)im->count);
    hash_u32(h, (uint32_t)((uint64_t)im->count >> 32));
}

/* ---- Files of the temporary folder ---------------------------------------------------------- */

/* A file written front to back. */
struct out {
    FILE *f;
    char *path;
    uint64_t size;
};

static int out_open(struct out *o, const char *dir, const char *name, const char *magic,
                    struct eng_error *err)
{
    o->size = 0;
    if (!(o->path = data_printf(err, "%s/%s", dir, name))) return -1;
    if (!(o->f = fopen(o->path, "wbx")))
        return eng_fail(err, ENG_INTERNAL, "%s: %s", o->path, strerror(errno));
    setvbuf(o->f, NULL, _IOFBF, 1 << 20);
    struct cache_header header = cache_header_make(magic, 0, 0, 0);
    return fwrite(&header, sizeof header, 1, o->f) == 1
               ? 0
               : eng_fail(err, ENG_INTERNAL, "%s: %s", o->path, strerror(errno));
}

static int out_write(struct out *o, const void *data, size_t size, struct eng_error *err)
{
    if (size && fwrite(data, size, 1, o->f) != 1)
        return eng_fail(err, ENG_INTERNAL, "%s: %s", o->path, strerror(errno));
    o->size += size;
    return 0;
}

/* Writes the header's count (the bytes after it), syncs and closes. */
static int out_close(struct out *o, const char *magic, struct eng_error *err)
{
    int rc = 0;
    if (o->f) {
        struct cache_header header = cache_header_make(magic, 0, o->size, 0);
        if (fflush(o->f) || fseek(o->f, 0, SEEK_SET) ||
            fwrite(&header, sizeof header, 1, o->f) != 1 || fflush(o->f) || fsync(fileno(o->f)))
            rc = eng_fail(err, ENG_INTERNAL, "%s: %s", o->path, strerror(errno));
        if (fclose(o->f) && rc == 0)
            rc = eng_fail(err, ENG_INTERNAL, "%s: %s", o->path, strerror(errno));
    }
    free(o->path);
    o->f = NULL;
    o->path = NULL;
    return rc;
}

/* A temporary file mapped for reading (NULL when empty). */
static const uint8_t *map_temp(int fd, uint64_t size, const char *what, struct eng_error *err)
{
    if (size == 0) return NULL;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        eng_fail(err, ENG_INTERNAL, "mapping %s: %s", what, strerror(errno));
        return NULL;
    }
    return p;
}

/* ---- Pixels --------------------------------------------------------------------------------- */

/* One image on its way to images.bin: resized on a thread when its stored size is not its cache
 * size. */
struct pixels_job {
    const struct import *im;
    const uint8_t *stored;
    const struct import_item *items;
    struct img *resized[WRITE_CHUNK];
    struct eng_error errors[WRITE_CHUNK];
    int mixed;
};

static void resize_one(void *ctx, size_t i)
{
    struct pixels_job *j = ctx;
    const struct import_item *it = &j->items[i];
    uint32_t w, h;
    j->resized[i] = NULL;
    if (import_target_size(j->im, it->orig_width, it->orig_height, j->mixed, &w, &h,
                           &j->errors[i]) ||
        (w == it->width && h == it->height))
        return;
    const struct img view = {(int)it->width, (int)it->height, it->channels,
                             (size_t)it->width * it->channels, (uint8_t *)j->stored + it->offset};
    j->resized[i] = img_resize(&view, (int)h, (int)w, IMG_BILINEAR, &j->errors[i]);
}

/* Writes one image's pixels, padded, and hashes its record. */
static int write_pixels(struct out *images, EVP_MD_CTX *h, const struct import_item *it,
                        const struct img *px, const char *name, struct cache_record *rec,
                        struct eng_error *err)
{
    static const uint8_t zeros[CACHE_ALIGN];
    const size_t bytes = (size_t)px->width * (size_t)px->height * (size_t)px->channels;
    rec->offset = sizeof(struct cache_header) + images->size;
    rec->width = (uint32_t)px->width;
    rec->height = (uint32_t)px->height;
    rec->channels = (uint8_t)px->channels;
    rec->orig_width = it->orig_width;
    rec->orig_height = it->orig_height;
    rec->label = it->label;
    rec->split = it->split;
    hash_text(h, name, strlen(name));
    hash_u32(h, it->split);
    hash_u32(h, (uint32_t)it->label);
    const uint32_t dims[5] = {rec->width, rec->height, rec->channels, rec->orig_width,
                              rec->orig_height};
    for (int k = 0; k < 5; k++)
        hash_u32(h, dims[k]);
    EVP_DigestUpdate(h, px->data, bytes);
    if (out_write(images, px->data, bytes, err)) return -1;
    return out_write(images, zeros, cache_aligned(bytes) - bytes, err);
}

/* ---- Index, originals, targets -------------------------------------------------------------- */

/* The names area of index.bin: each name and a zero byte. */
struct names {
    char *data;
    size_t size, cap;
};

static int names_add(struct names *n, const struct import_item *it, struct cache_record *rec,
                     struct eng_error *err)
{
    char record[16] = "";
    if (it->binary) snprintf(record, sizeof record, "#%u", it->record);
    size_t len = strlen(it->file) + strlen(record);
    if (n->size + len + 1 > UINT32_MAX)
        return eng_fail(err, ENG_TOO_LARGE, "the images' names pass 4 GiB");
    if (n->size + len + 1 > n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 1 << 16;
        while (cap < n->size + len + 1)
            cap *= 2;
        char *grown = realloc(n->data, cap);
        if (!grown) return eng_no_memory(err);
        n->data = grown;
        n->cap = cap;
    }
    rec->name_offset = (uint32_t)n->size;
    rec->name_size = (uint32_t)len;
    snprintf(n->data + n->size, len + 1, "%s%s", it->file, record);
    n->size += len + 1;
    return 0;
}

/* The originals (kept when images were resized) and targets of each image, after its pixels in
 * the hash. */
static int write_extras(struct out *originals, struct out *targets, const uint8_t *stored,
                        EVP_MD_CTX *h, const struct import_item *it, struct cache_record *rec,
                        struct eng_error *err)
{
    const void *original =
        originals->f && it->original_size ? (const void *)(stored + it->original_offset) : "";
    const size_t original_size = originals->f ? it->original_size : 0;
    hash_text(h, original, original_size);
    rec->original_size = (uint32_t)original_size;
    rec->original_offset = sizeof(struct cache_header) + originals->size;
    if (originals->f && out_write(originals, original, original_size, err)) return -1;
    const size_t target_size = it->targets ? strlen(it->targets) : 0;
    hash_text(h, it->targets ? it->targets : "", target_size);
    rec->targets_size = (uint32_t)target_size;
    rec->targets_offset = sizeof(struct cache_header) + targets->size;
    if (it->targets && out_write(targets, it->targets, target_size + 1, err)) return -1;
    return 0;
}

/* images.bin, originals.bin and targets.bin in canonical order, and each image's record. */
static int write_images(struct import *im, struct cache_record *records, struct names *names,
                        EVP_MD_CTX *h, int keep_originals, int keep_targets, struct eng_error *err)
{
    const int mixed = atomic_load(&im->mixed);
    struct out images = {0}, originals = {0}, targets = {0};
    const uint64_t pixels_size = atomic_load(&im->pixels_end);
    const uint64_t originals_size = atomic_load(&im->originals_end);
    const uint8_t *stored = map_temp(im->pixels_fd, pixels_size, IMPORT_PIXELS, err);
    const uint8_t *encoded =
        keep_originals ? map_temp(im->originals_fd, originals_size, IMPORT_ORIGINALS, err) : NULL;
    struct pixels_job *job = calloc(1, sizeof *job);
    int rc = stored && job && (!keep_originals || encoded) ? 0 : job ? -1 : eng_no_memory(err);
    if (rc == 0) rc = out_open(&images, im->tmp, CACHE_IMAGES, "AUGDSIMG", err);
    if (rc == 0 && keep_originals)
        rc = out_open(&originals, im->tmp, CACHE_ORIGINALS, "AUGDSORG", err);
    if (rc == 0 && keep_targets) rc = out_open(&targets, im->tmp, CACHE_TARGETS, "AUGDSTGT", err);
    for (size_t start = 0; rc == 0 && start < im->count; start += WRITE_CHUNK) {
        const size_t n = im->count - start < WRITE_CHUNK ? im->count - start : WRITE_CHUNK;
        *job = (struct pixels_job){
            .im = im, .stored = stored, .items = im->items + start, .mixed = mixed};
        rc = eng_cancel_poll(err);
        if (rc == 0) parallel_for(n, im->o.threads, resize_one, job);
        for (size_t k = 0; k < n; k++) {
            const struct import_item *it = &im->items[start + k];
            struct cache_record *rec = &records[start + k];
            const struct img view = {(int)it->width, (int)it->height, it->channels,
                                     (size_t)it->width * it->channels,
                                     (uint8_t *)stored + it->offset};
            if (rc == 0) rc = names_add(names, it, rec, err);
            if (rc == 0 && job->errors[k].code != ENG_OK)
                rc = eng_fail(err, job->errors[k].code, "%s: %s", names->data + rec->name_offset,
                              job->errors[k].message);
            if (rc == 0)
                rc = write_pixels(&images, h, it, job->resized[k] ? job->resized[k] : &view,
                                  names->data + rec->name_offset, rec, err);
            if (rc == 0) rc = write_extras(&originals, &targets, encoded, h, it, rec, err);
            img_free(job->resized[k]);
        }
        import_progress(im, 0.9 + 0.08 * (double)(start + n) / (double)im->count, "writing");
    }
    if (out_close(&images, "AUGDSIMG", err) && rc == 0) rc = -1;
    if (out_close(&originals, "AUGDSORG", err) && rc == 0) rc = -1;
    if (out_close(&targets, "AUGDSTGT", err) && rc == 0) rc = -1;
    if (stored) munmap((void *)stored, pixels_size);
    if (encoded) munmap((void *)encoded, originals_size);
    free(job);
    return rc;
}

/* ---- The report, the splits and the rename -------------------------------------------------- */

/* dataset.json's content: the report; split_counts has each source split's size. */
static json_t *make_report(const struct import *im, const char *id, const char *hash,
                           const size_t *split_counts, int keep_originals, int keep_targets)
{
    const int mixed = atomic_load(&im->mixed);
    const uint64_t first = atomic_load(&im->first_size);
    json_t *classes = json_array(), *splits = json_array();
    for (size_t i = 0; classes && i < im->plan.class_count; i++)
        json_array_append_new(classes, json_string(im->plan.classes[i]));
    for (size_t s = 0; splits && s < im->plan.split_count; s++)
        json_array_append_new(splits, json_pack("{s:s, s:I}", "name", im->plan.splits[s], "count",
                                                (json_int_t)split_counts[s]));
    json_t *size =
        mixed ? json_null() : json_pack("[i, i]", (int)(first >> 32), (int)(first & 0xffffffffu));
    json_t *image_size = mixed ? json_integer(im->o.image_size) : json_null();
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:b, s:b, s:O, "
                     "s:I}",
                     "version", CACHE_VERSION, "id", id, "name", im->o.name, "hash", hash, "format",
                     plan_format_name(im->plan.format), "source", source_kind(im->src), "images",
                     (json_int_t)im->count, "classes", classes, "splits", splits, "size", size,
                     "image_size", image_size, "originals", keep_originals, "targets", keep_targets,
                     "skipped", im->plan.skipped, "skipped_count",
                     (json_int_t)im->plan.skipped_count);
}

/* Each source split as splits/<name>.split, its size in counts[] (zeroed by the caller); a split is
 * labeled when an image in it is. The images are bucketed by split in one pass, each bucket in
 * index order. */
static int write_splits(const struct import *im, const struct cache_record *records, size_t *counts,
                        struct eng_error *err)
{
    const size_t splits = im->plan.split_count;
    uint32_t *indices = malloc(im->count * sizeof *indices);
    size_t *start = calloc(splits + 1, sizeof *start);
    int *labeled = calloc(splits, sizeof *labeled);
    int rc = indices && start && labeled ? 0 : eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < im->count; i++) {
        start[records[i].split + 1]++;
        labeled[records[i].split] |= records[i].label >= 0;
    }
    for (size_t s = 0; rc == 0 && s < splits; s++)
        start[s + 1] += start[s];
    for (size_t i = 0; rc == 0 && i < im->count; i++)
        indices[start[records[i].split] + counts[records[i].split]++] = (uint32_t)i;
    for (size_t s = 0; rc == 0 && s < splits; s++)
        rc = split_write(im->tmp, im->plan.splits[s], indices + start[s], NULL,
                         start[s + 1] - start[s], labeled[s], 0, err);
    free(indices);
    free(start);
    free(labeled);
    return rc;
}

static int write_json(const char *dir, const char *name, const json_t *doc, struct eng_error *err)
{
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!text) return eng_no_memory(err);
    const void *parts[] = {text, "\n"};
    const size_t sizes[] = {strlen(text), 1};
    int rc = cache_write_file(dir, name, parts, sizes, 2, 0, err);
    free(text);
    return rc;
}

/* Renames the temporary folder to parent/name; an existing folder of the same hash is this
 * dataset (*existing). */
static int move_into_place(struct import *im, const char *name, const char *hash, int by_hash,
                           int *existing, struct eng_error *err)
{
    const char *slash = strrchr(im->tmp, '/');
    char *parent = data_printf(err, "%.*s", (int)(slash - im->tmp), im->tmp);
    char *final = parent ? data_printf(err, "%s/%s", parent, name) : NULL;
    if (!final) {
        free(parent);
        return -1;
    }
    int rc = 0;
    *existing = 0;
    if (rename(im->tmp, final) == 0) {
        free(im->tmp);
        im->tmp = NULL;
        rc = data_sync_folder(parent, err);
    } else if (errno == EEXIST || errno == ENOTEMPTY) {
        char *json = data_printf(err, "%s/" CACHE_JSON, final);
        json_t *doc = json ? json_load_file(json, 0, NULL) : NULL;
        const char *theirs = json_string_value(json_object_get(doc, "hash"));
        *existing = by_hash && theirs && strcmp(theirs, hash) == 0;
        if (!*existing)
            rc = eng_fail(err, ENG_CONFLICT, "%s exists already%s", final,
                          by_hash ? " and holds another dataset" : "");
        json_decref(doc);
        free(json);
    } else {
        rc = eng_fail(err, ENG_INTERNAL, "renaming %s to %s: %s", im->tmp, final, strerror(errno));
    }
    free(final);
    free(parent);
    return rc;
}

int import_write(struct import *im, const char *id, json_t **report, struct eng_error *err)
{
    if (im->count == 0) {
        json_t *first = json_array_get(im->plan.skipped, 0);
        return eng_fail(
            err, ENG_INVALID, "no usable image: %llu files skipped%s%s%s%s%s",
            (unsigned long long)im->plan.skipped_count, first ? " (the first, " : "",
            first ? json_string_value(json_object_get(first, "file")) : "", first ? ": " : "",
            first ? json_string_value(json_object_get(first, "reason")) : "", first ? ")" : "");
    }
    qsort(im->items, im->count, sizeof *im->items, compare_items);
    int keep_originals = 0, keep_targets = 0;
    for (size_t i = 0; i < im->count; i++) {
        keep_originals |= atomic_load(&im->mixed) && im->items[i].original_size;
        keep_targets |= im->items[i].targets != NULL;
    }
    struct cache_record *records = calloc(im->count, sizeof *records);
    struct names names = {0};
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    int rc = records && h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1 ? 0 : eng_no_memory(err);
    if (rc == 0) hash_header(h, im);
    if (rc == 0) rc = write_images(im, records, &names, h, keep_originals, keep_targets, err);
    unsigned char digest[32];
    char hash[65] = "", short_id[17];
    if (rc == 0 && EVP_DigestFinal_ex(h, digest, NULL) != 1) rc = eng_no_memory(err);
    for (int i = 0; rc == 0 && i < 32; i++)
        snprintf(hash + 2 * i, 3, "%02x", digest[i]);
    snprintf(short_id, sizeof short_id, "%.16s", hash);
    if (!id) id = short_id;
    if (rc == 0) {
        struct cache_header header = cache_header_make("AUGDSIDX", 0, im->count,
                                                       sizeof header + im->count * sizeof *records);
        const void *parts[] = {&header, records, names.data};
        const size_t sizes[] = {sizeof header, im->count * sizeof *records, names.size};
        rc = cache_write_file(im->tmp, CACHE_INDEX, parts, sizes, 3, 0, err);
    }
    size_t *split_counts = calloc(im->plan.split_count, sizeof *split_counts);
    if (rc == 0 && !split_counts) rc = eng_no_memory(err);
    if (rc == 0) rc = write_splits(im, records, split_counts, err);
    json_t *doc =
        rc == 0 ? make_report(im, id, hash, split_counts, keep_originals, keep_targets) : NULL;
    free(split_counts);
    if (rc == 0 && !doc) rc = eng_no_memory(err);
    if (rc == 0) rc = write_json(im->tmp, CACHE_JSON, doc, err);
    /* The temporary files go before the rename; what stays is synced. */
    char *pixels = data_printf(err, "%s/" IMPORT_PIXELS, im->tmp);
    char *originals = data_printf(err, "%s/" IMPORT_ORIGINALS, im->tmp);
    if (rc == 0 && (!pixels || !originals || unlink(pixels) || unlink(originals)))
        rc = pixels && originals ? eng_fail(err, ENG_INTERNAL, "%s: %s", im->tmp, strerror(errno))
                                 : -1;
    free(pixels);
    free(originals);
    if (rc == 0 && chmod(im->tmp, 0755)) /* mkdtemp's 0700, opened as a cache's should be */
        rc = eng_fail(err, ENG_INTERNAL, "%s: %s", im->tmp, strerror(errno));
    if (rc == 0) rc = data_sync_folder(im->tmp, err);
    int existing = 0;
    if (rc == 0) rc = move_into_place(im, id, hash, id == short_id, &existing, err);
    if (rc == 0) {
        json_object_set_new(doc, "existing", json_boolean(existing));
        *report = doc;
        doc = NULL;
    }
    json_decref(doc);
    free(names.data);
    free(records);
    EVP_MD_CTX_free(h);
    return rc;
}
