/* data_import: the first pass plans (plan.c), the second decodes every planned image once into
 * temporary files in a temporary folder beside the final one, and write.c turns those into the
 * cache, which is renamed into place only when whole.
 *
 * Encoded images are decoded in chunks on `threads` threads; each thread reserves its image's
 * place in pixels.tmp with an atomic add and writes it there, so a chunk never holds more than
 * one decoded image per thread. Whether images differ in size is only known at the end, so each
 * is stored as decoded until one of another size is seen, and resized (shorter side to
 * image_size) from then on; write.c resizes the ones stored before. The result is the same
 * whatever the timing: an image's cache pixels are the resize of its decoded pixels either way. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classify/classify.h"
#include "core/cancel.h"
#include "core/parallel.h"
#include "data/internal.h"
#include "image/geometry.h"

#define CHUNK_FILES 64
#define CHUNK_BYTES (64u << 20)
#define TEMP_PREFIX ".import-"

/* ---- Options -------------------------------------------------------------------------------- */

static int fill_defaults(struct data_import_options *o, struct eng_error *err)
{
    if (!o->image_size) o->image_size = DATA_DEFAULT_IMAGE_SIZE;
    if (!o->max_bytes) o->max_bytes = DATA_DEFAULT_MAX_BYTES;
    if (o->max_ratio == 0) o->max_ratio = DATA_DEFAULT_MAX_RATIO;
    if (!o->max_files) o->max_files = DATA_DEFAULT_MAX_FILES;
    if (!o->max_classes) o->max_classes = DATA_DEFAULT_MAX_CLASSES;
    if (!o->max_file_bytes) o->max_file_bytes = DATA_DEFAULT_MAX_FILE_BYTES;
    if (!o->max_cache_bytes) o->max_cache_bytes = DATA_DEFAULT_MAX_CACHE_BYTES;
    if (o->threads < 1) o->threads = 1;
    if (o->image_size < 1 || o->image_size > 65535)
        return eng_fail(err, ENG_INVALID, "image_size %d is not in 1..65535", o->image_size);
    if (!(o->max_ratio >= 1))
        return eng_fail(err, ENG_INVALID, "max_ratio %g is below 1", o->max_ratio);
    /* Index records hold 32-bit counts and sizes. */
    if (o->max_files > UINT32_MAX - 1 || o->max_file_bytes > UINT32_MAX)
        return eng_fail(err, ENG_INVALID, "max_files and max_file_bytes stop at 2^32 - 1");
    return 0;
}

int import_target_size(const struct import *im, uint32_t width, uint32_t height, int mixed,
                       uint32_t *out_width, uint32_t *out_height, struct eng_error *err)
{
    *out_width = width;
    *out_height = height;
    if (!mixed) return 0;
    /* The evaluation transform's Resize(int), without its crop or tensor. */
    const struct classify_preprocess resize = {
        .resize = im->o.image_size, .scale = 1, .std = {1, 1, 1}, .channels = 3};
    int h, w;
    if (classify_preprocess_size(&resize, (int)width, (int)height, &h, &w, err)) return -1;
    *out_width = (uint32_t)w;
    *out_height = (uint32_t)h;
    return 0;
}

void import_progress(struct import *im, double fraction, const char *phase)
{
    if (!im->o.progress || (fraction < im->reported + 0.001 && phase == im->phase)) return;
    im->reported = fraction;
    im->phase = phase;
    im->o.progress(im->o.progress_ctx, fraction, phase);
}

/* The first pass takes the first 5% of the progress. */
static void listing_tick(void *ctx, double position)
{
    import_progress(ctx, 0.05 * position, "listing");
}

/* ---- Storing images ------------------------------------------------------------------------- */

static int write_at(int fd, const void *data, size_t size, uint64_t offset, const char *what,
                    struct eng_error *err)
{
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, (const char *)data + done, size - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return eng_fail(err, ENG_INTERNAL, "writing %s: %s", what,
                            n < 0 ? strerror(errno) : "nothing written");
        done += (size_t)n;
    }
    return 0;
}

/* Records pixels' size; sets mixed when it differs from the first image's. */
static void note_size(struct import *im, uint32_t width, uint32_t height)
{
    uint64_t size = (uint64_t)width << 32 | height, first = 0;
    if (!atomic_compare_exchange_strong(&im->first_size, &first, size) && first != size)
        atomic_store(&im->mixed, 1);
}

/* Writes pixels (and the encoded original, if any) to the temporary files; fills it's offsets,
 * size and channels. Thread-safe. */
static int store(struct import *im, struct import_item *it, const struct img *pixels,
                 const void *original, size_t original_size, struct eng_error *err)
{
    const size_t row = (size_t)pixels->width * (size_t)pixels->channels;
    const uint64_t bytes = (uint64_t)row * (uint64_t)pixels->height;
    /* What is stored is the same whatever the timing (flush_chunk), so is this outcome. */
    const uint64_t stored = cache_aligned(bytes) + (original ? original_size : 0);
    if (atomic_fetch_add(&im->stored, stored) + stored > im->o.max_cache_bytes)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s: the dataset's images come to more than %llu bytes (max_cache_bytes)",
                        it->file, (unsigned long long)im->o.max_cache_bytes);
    it->offset = atomic_fetch_add(&im->pixels_end, cache_aligned(bytes));
    it->width = (uint32_t)pixels->width;
    it->height = (uint32_t)pixels->height;
    it->channels = (uint8_t)pixels->channels;
    if (pixels->stride == row) {
        if (write_at(im->pixels_fd, pixels->data, bytes, it->offset, IMPORT_PIXELS, err)) return -1;
    } else {
        for (int y = 0; y < pixels->height; y++)
            if (write_at(im->pixels_fd, img_row(pixels, y), row, it->offset + (uint64_t)y * row,
                         IMPORT_PIXELS, err))
                return -1;
    }
    if (!original) return 0;
    it->original_size = (uint32_t)original_size;
    it->original_offset = atomic_fetch_add(&im->originals_end, original_size);
    return write_at(im->originals_fd, original, original_size, it->original_offset,
                    IMPORT_ORIGINALS, err);
}

static int add_item(struct import *im, const struct import_item *it, struct eng_error *err)
{
    struct import_item *grown = data_grow(im->items, &im->cap, im->count, sizeof *grown, err);
    if (!grown) return -1;
    im->items = grown;
    im->items[im->count++] = *it;
    if (im->count > im->o.max_files)
        return eng_fail(err, ENG_TOO_LARGE, "%s: more than %llu images (max_files)", it->file,
                        (unsigned long long)im->o.max_files);
    return 0;
}

static void advance(struct import *im, double images)
{
    im->done += images;
    import_progress(im, 0.05 + 0.85 * (im->work > 0 ? im->done / im->work : 1), "decoding");
}

/* ---- Encoded images: chunks decoded on threads ---------------------------------------------- */

struct pending {
    const struct plan_file *file;
    void *data;
    size_t size;
    struct import_item item;
    int status; /* 0 stored, 1 skipped (err says why), -1 failed */
    struct eng_error err;
};

struct chunk {
    struct import *im;
    struct pending items[CHUNK_FILES];
    size_t count, bytes;
    int mixed; /* sizes were seen to differ before the chunk began: its images are resized */
};

/* Decodes one pending file and stores it: the work of one thread. */
static void decode_one(void *ctx, size_t i)
{
    struct chunk *c = ctx;
    struct import *im = c->im;
    struct pending *p = &c->items[i];
    if (eng_cancel_poll(&p->err)) {
        p->status = -1;
        return;
    }
    struct img *decoded = img_decode(p->data, p->size, &im->o.decode, NULL, &p->err);
    if (!decoded) {
        /* A file that is no image, or not one this build or these limits take: skipped. */
        p->status = p->err.code == ENG_NO_MEMORY || p->err.code == ENG_CANCELLED ? -1 : 1;
        return;
    }
    note_size(im, (uint32_t)decoded->width, (uint32_t)decoded->height);
    p->item.orig_width = (uint32_t)decoded->width;
    p->item.orig_height = (uint32_t)decoded->height;
    /* Resized now if sizes were known to differ before the chunk began (not as its threads find
     * out, so what is stored never depends on timing); a size the resize refuses is left to
     * write.c, which refuses it whenever it is seen. */
    uint32_t w, h;
    struct eng_error ignored;
    struct img *resized = NULL;
    int rc = 0;
    if (c->mixed &&
        import_target_size(im, p->item.orig_width, p->item.orig_height, 1, &w, &h, &ignored) == 0 &&
        (w != p->item.orig_width || h != p->item.orig_height) &&
        !(resized = img_resize(decoded, (int)h, (int)w, IMG_BILINEAR, &p->err)))
        rc = -1;
    if (rc == 0) rc = store(im, &p->item, resized ? resized : decoded, p->data, p->size, &p->err);
    p->status = rc ? -1 : 0;
    img_free(resized);
    img_free(decoded);
}

static int flush_chunk(struct chunk *c, struct eng_error *err)
{
    struct import *im = c->im;
    c->mixed = atomic_load(&im->mixed);
    parallel_for(c->count, im->o.threads, decode_one, c);
    int rc = 0;
    for (size_t i = 0; i < c->count; i++) {
        struct pending *p = &c->items[i];
        if (rc == 0 && p->status < 0) {
            *err = p->err;
            rc = -1;
        } else if (rc == 0 && p->status > 0) {
            rc = plan_skip(&im->plan, p->file->path, p->err.message, err);
        } else if (rc == 0) {
            rc = add_item(im, &p->item, err);
        }
        free(p->data);
    }
    advance(im, (double)c->count);
    c->count = c->bytes = 0;
    return rc;
}

/* Reads the current source file into the chunk, flushing it when full. */
static int queue_file(struct chunk *c, const struct plan_file *f, struct eng_error *err)
{
    struct import *im = c->im;
    struct pending *p = &c->items[c->count];
    memset(p, 0, sizeof *p);
    int r = source_read_all(im->src, im->o.max_file_bytes, &p->data, &p->size, err);
    if (r < 0) return -1;
    if (r > 0) {
        advance(im, 1);
        return plan_skip(&im->plan, f->path, "larger than max_file_bytes", err);
    }
    p->file = f;
    p->item = (struct import_item){
        .file = f->name, .label = f->label, .split = (uint16_t)f->split, .targets = f->targets};
    c->count++;
    c->bytes += p->size;
    return c->count == CHUNK_FILES || c->bytes >= CHUNK_BYTES ? flush_chunk(c, err) : 0;
}

/* ---- Binary formats: records one after another ---------------------------------------------- */

struct binary_file {
    struct import *im;
    const struct plan_file *file;
};

static int store_record(void *ctx, uint32_t record, const struct img *pixels, int32_t label,
                        struct eng_error *err)
{
    struct binary_file *b = ctx;
    struct import_item it = {.file = b->file->name,
                             .record = record,
                             .binary = 1,
                             .label = label,
                             .split = (uint16_t)b->file->split,
                             .orig_width = (uint32_t)pixels->width,
                             .orig_height = (uint32_t)pixels->height};
    note_size(b->im, it.orig_width, it.orig_height);
    if (record % 256 == 255) {
        advance(b->im, 256);
        if (eng_cancel_poll(err)) return -1;
    }
    return store(b->im, &it, pixels, NULL, 0, err) ? -1 : add_item(b->im, &it, err);
}

/* Work in images, for the progress: a record file's records, one per other file. */
static double planned_work(const struct plan *p)
{
    double work = 0;
    for (size_t i = 0; i < p->file_count; i++)
        work += p->format == FORMAT_IDX ? (double)p->files[i].label_count : 1;
    return work;
}

/* The second pass: every planned file read and its images stored. */
static int decode_all(struct import *im, struct eng_error *err)
{
    struct chunk *c = calloc(1, sizeof *c);
    if (!c) return eng_no_memory(err);
    c->im = im;
    im->work = planned_work(&im->plan);
    int rc = source_rewind(im->src, err), r = 0;
    struct source_entry e;
    while (rc == 0 && (r = source_next(im->src, &e, err)) == 1) {
        const struct plan_file *f = plan_find(&im->plan, e.name);
        struct binary_file b = {im, f};
        if (!f) continue;
        switch (im->plan.format) {
        case FORMAT_FOLDERS:
        case FORMAT_MANIFEST:
            rc = queue_file(c, f, err);
            break;
        case FORMAT_CIFAR10:
        case FORMAT_CIFAR100:
            rc = cifar_read(im->src, f, im->plan.format, store_record, &b, err);
            break;
        case FORMAT_IDX:
            rc = idx_read_images(im->src, f, store_record, &b, err);
            break;
        }
    }
    if (rc == 0 && r < 0) rc = -1;
    if (rc == 0) rc = flush_chunk(c, err);
    for (size_t i = 0; i < c->count; i++)
        free(c->items[i].data);
    free(c);
    return rc;
}

/* ---- The import ----------------------------------------------------------------------------- */

static int open_temp(struct import *im, const char *name, int *fd, struct eng_error *err)
{
    char *path = data_printf(err, "%s/%s", im->tmp, name);
    if (!path) return -1;
    *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    free(path);
    if (*fd < 0) return eng_fail(err, ENG_INTERNAL, "%s/%s: %s", im->tmp, name, strerror(errno));
    return 0;
}

/* This machine's name, "" when it has none. */
static void this_host(char host[HOST_NAME_MAX + 1])
{
    if (gethostname(host, HOST_NAME_MAX + 1) != 0) host[0] = '\0';
    host[HOST_NAME_MAX] = '\0';
}

/* The mkdtemp pattern of a temporary folder of this process's in parent,
 * parent/.import-<host>:<pid>-XXXXXX, or NULL with err. The host tells data_import_cleanup on
 * another machine sharing parent that the pid is none of its processes'. */
static char *temp_pattern(const char *parent, struct eng_error *err)
{
    char host[HOST_NAME_MAX + 1];
    this_host(host);
    return data_printf(err, "%s/" TEMP_PREFIX "%s:%ld-XXXXXX", parent, host, (long)getpid());
}

static int make_temp(struct import *im, const char *parent, struct eng_error *err)
{
    struct stat st;
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        return eng_fail(err, ENG_NOT_FOUND, "%s: no such folder", parent);
    if (!(im->tmp = temp_pattern(parent, err))) return -1;
    if (!mkdtemp(im->tmp)) {
        int why = errno;
        free(im->tmp);
        im->tmp = NULL;
        return eng_fail(err, ENG_INTERNAL, "%s: %s", parent, strerror(why));
    }
    if (open_temp(im, IMPORT_PIXELS, &im->pixels_fd, err) ||
        open_temp(im, IMPORT_ORIGINALS, &im->originals_fd, err))
        return -1;
    return 0;
}

/* The name of a dataset imported without one: the source's file name without an archive's
 * extension ("cifar10.tar.gz" gives "cifar10"). */
static char *default_name(const char *source, struct eng_error *err)
{
    size_t end = strlen(source);
    while (end > 1 && source[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && source[start - 1] != '/')
        start--;
    static const char *const extensions[] = {".tar.gz", ".tgz", ".tar", ".zip"};
    for (size_t i = 0; i < sizeof extensions / sizeof *extensions; i++) {
        size_t n = strlen(extensions[i]);
        if (end - start > n && strncasecmp(source + end - n, extensions[i], n) == 0) {
            end -= n;
            break;
        }
    }
    return data_printf(err, "%.*s", (int)(end - start), source + start);
}

static void import_free(struct import *im)
{
    if (im->pixels_fd >= 0) close(im->pixels_fd);
    if (im->originals_fd >= 0) close(im->originals_fd);
    if (im->tmp) data_remove_tree(im->tmp);
    free(im->tmp);
    free(im->items);
    plan_free(&im->plan);
    source_close(im->src);
}

int data_import(const char *source, const char *parent, const char *id,
                const struct data_import_options *options, json_t **report, struct eng_error *err)
{
    struct import im = {.pixels_fd = -1, .originals_fd = -1, .reported = -1};
    if (report) *report = NULL;
    if (options) im.o = *options;
    if (fill_defaults(&im.o, err)) return -1;
    if (id && data_name_check("dataset id", id, err)) return -1;
    char *final = id ? data_printf(err, "%s/%s", parent, id) : NULL;
    if (id && !final) return -1;
    struct stat st;
    if (final && lstat(final, &st) == 0) { /* a folder, or an alias's link (data_link) */
        eng_fail(err, ENG_CONFLICT, "%s exists already", final);
        free(final);
        return -1;
    }
    free(final);
    json_t *out = NULL;
    char *name = im.o.name ? NULL : default_name(source, err);
    if (!im.o.name && !name) return -1;
    if (name) im.o.name = name;
    if (strlen(im.o.name) > 255 || !data_utf8_valid(im.o.name, strlen(im.o.name))) {
        free(name);
        return eng_fail(err, ENG_INVALID, "the dataset's name must be 0 to 255 bytes of UTF-8");
    }
    int rc = make_temp(&im, parent, err);
    if (rc == 0 && !(im.src = source_open(source, &im.o, err))) rc = -1;
    import_progress(&im, 0, "listing");
    if (rc == 0) rc = plan_make(im.src, &im.o, listing_tick, &im, &im.plan, err);
    if (rc == 0) rc = decode_all(&im, err);
    if (rc == 0) rc = import_write(&im, id, &out, err);
    import_free(&im);
    free(name);
    if (rc == 0 && report)
        *report = out;
    else
        json_decref(out);
    return rc;
}

int data_import_cleanup(const char *parent, struct eng_error *err)
{
    DIR *dir = opendir(parent);
    if (!dir) return eng_fail(err, ENG_NOT_FOUND, "%s: %s", parent, strerror(errno));
    char host[HOST_NAME_MAX + 1];
    this_host(host);
    for (struct dirent *d; (d = readdir(dir));) {
        if (strncmp(d->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0) continue;
        const char *owner = d->d_name + strlen(TEMP_PREFIX), *colon = strchr(owner, ':');
        /* Another machine's (a process there may be running it): its own processes' to clean. A
         * name without a host is of a build before hosts, which ran on one machine. */
        if (colon && ((size_t)(colon - owner) != strlen(host) ||
                      strncmp(owner, host, (size_t)(colon - owner)) != 0))
            continue;
        long pid;
        int used = 0;
        if (sscanf(colon ? colon + 1 : owner, "%ld-%n", &pid, &used) != 1 || used == 0) continue;
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char *path = data_printf(err, "%s/%s", parent, d->d_name);
        if (path) data_remove_tree(path);
        free(path);
    }
    closedir(dir);
    return 0;
}

/* A new temporary folder of the imports' in parent (what data_import_cleanup removes after a
 * kill), or NULL with err. */
static char *make_aside(const char *parent, struct eng_error *err)
{
    char *aside = temp_pattern(parent, err);
    if (aside && !mkdtemp(aside)) {
        eng_fail(err, ENG_INTERNAL, "%s: %s", parent, strerror(errno));
        free(aside);
        aside = NULL;
    }
    return aside;
}

int data_remove(const char *parent, const char *id, struct eng_error *err)
{
    char *path = data_printf(err, "%s/%s", parent, id);
    struct stat st;
    if (path && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        /* An alias (data_link): the link goes, in one step, and never what it names. */
        int rc = unlink(path) == 0 ? data_sync_folder(parent, err)
                                   : eng_fail(err, errno == ENOENT ? ENG_NOT_FOUND : ENG_INTERNAL,
                                              "%s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    char *aside = path ? make_aside(parent, err) : NULL;
    if (!aside) {
        free(path);
        return -1;
    }
    int rc = -1;
    if (rename(path, aside) != 0) {
        eng_fail(err, errno == ENOENT ? ENG_NOT_FOUND : ENG_INTERNAL, "%s: %s", path,
                 strerror(errno));
        rmdir(aside);
    } else {
        data_remove_tree(aside);
        rc = 0;
    }
    free(path);
    free(aside);
    return rc;
}

int data_link(const char *parent, const char *id, const char *target, struct eng_error *err)
{
    if (data_name_check("dataset id", id, err) || data_name_check("dataset id", target, err))
        return -1;
    /* Made whole in a temporary folder, then hard-linked into place: link() refuses a name that
     * exists (rename would replace a link or a file), and a kill leaves only the folder. */
    char *aside = make_aside(parent, err);
    char *made = aside ? data_printf(err, "%s/link", aside) : NULL;
    char *final = made ? data_printf(err, "%s/%s", parent, id) : NULL;
    int rc = final ? 0 : -1;
    if (rc == 0 && symlink(target, made) != 0)
        rc = eng_fail(err, ENG_INTERNAL, "%s: %s", made, strerror(errno));
    if (rc == 0 && linkat(AT_FDCWD, made, AT_FDCWD, final, 0) != 0)
        rc = eng_fail(err, errno == EEXIST ? ENG_CONFLICT : ENG_INTERNAL, "%s: %s", final,
                      strerror(errno));
    if (rc == 0) rc = data_sync_folder(parent, err);
    if (aside) data_remove_tree(aside);
    free(final);
    free(made);
    free(aside);
    return rc;
}
