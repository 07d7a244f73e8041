#include "data_build.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "image/codec.h"

void db_write_archive(const char *path, enum db_archive kind, const struct db_entry *entries,
                      size_t n)
{
    struct archive *a = archive_write_new();
    if (kind == DB_ZIP)
        archive_write_set_format_zip(a);
    else
        archive_write_set_format_pax_restricted(a);
    if (kind == DB_TGZ) archive_write_add_filter_gzip(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK)
        fail_msg("%s: %s", path, archive_error_string(a));
    for (size_t i = 0; i < n; i++) {
        const struct db_entry *e = &entries[i];
        struct archive_entry *entry = archive_entry_new();
        archive_entry_set_pathname(entry, e->name);
        archive_entry_set_perm(entry, 0644);
        switch (e->type) {
        case DB_FILE:
            archive_entry_set_filetype(entry, AE_IFREG);
            archive_entry_set_size(entry, (la_int64_t)e->size);
            break;
        case DB_DIR:
            archive_entry_set_filetype(entry, AE_IFDIR);
            break;
        case DB_SYMLINK:
            archive_entry_set_filetype(entry, AE_IFLNK);
            archive_entry_set_symlink(entry, e->link);
            break;
        case DB_HARDLINK:
            archive_entry_set_filetype(entry, AE_IFREG);
            archive_entry_set_hardlink(entry, e->link);
            break;
        }
        if (archive_write_header(a, entry) != ARCHIVE_OK)
            fail_msg("%s: %s: %s", path, e->name, archive_error_string(a));
        if (e->type == DB_FILE && e->size) {
            void *zeros = e->data ? NULL : calloc(1, e->size);
            if (archive_write_data(a, e->data ? e->data : zeros, e->size) != (la_ssize_t)e->size)
                fail_msg("%s: %s: %s", path, e->name, archive_error_string(a));
            free(zeros);
        }
        archive_entry_free(entry);
    }
    if (archive_write_close(a) != ARCHIVE_OK) fail_msg("%s: %s", path, archive_error_string(a));
    archive_write_free(a);
}

/* mkdir -p of path's folder part. */
static void make_parents(const char *path)
{
    char *copy = strdup(path);
    for (char *p = copy + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(copy, 0755) != 0 && errno != EEXIST) fail_msg("mkdir %s", copy);
            *p = '/';
        }
    free(copy);
}

void db_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    void *zeros = data ? NULL : calloc(1, size ? size : 1);
    if (size && fwrite(data ? data : zeros, size, 1, f) != 1) fail_msg("cannot write %s", path);
    free(zeros);
    fclose(f);
}

void db_write_tree(const char *root, const struct db_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct db_entry *e = &entries[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, e->name);
        make_parents(path);
        if (e->type == DB_DIR) {
            mkdir(path, 0755);
        } else if (e->type == DB_SYMLINK) {
            if (symlink(e->link, path) != 0) fail_msg("symlink %s", path);
        } else if (e->type == DB_HARDLINK) {
            char target[4096];
            snprintf(target, sizeof target, "%s/%s", root, e->link);
            if (link(target, path) != 0) fail_msg("link %s", path);
        } else {
            db_write_file(path, e->data, e->size);
        }
    }
}

void *db_gzip(const void *data, size_t size, size_t *out_size)
{
    size_t cap = size + 1024;
    void *out = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_raw(a);
    archive_write_add_filter_gzip(a);
    if (archive_write_open_memory(a, out, cap, out_size) != ARCHIVE_OK)
        fail_msg("gzip: %s", archive_error_string(a));
    struct archive_entry *entry = archive_entry_new();
    archive_entry_set_pathname(entry, "data");
    archive_entry_set_filetype(entry, AE_IFREG);
    if (archive_write_header(a, entry) != ARCHIVE_OK ||
        archive_write_data(a, data, size) != (la_ssize_t)size ||
        archive_write_close(a) != ARCHIVE_OK)
        fail_msg("gzip: %s", archive_error_string(a));
    archive_entry_free(entry);
    archive_write_free(a);
    return out;
}

struct img *db_image(int width, int height, int channels, int seed)
{
    struct eng_error err = {0};
    struct img *im = img_new(width, height, channels, &err);
    if (!im) fail_msg("%s", err.message);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++)
                img_row(im, y)[x * channels + c] =
                    (uint8_t)((x * 7 + y * 13 + c * 29 + seed) & 255);
    return im;
}

void *db_png(int width, int height, int channels, int seed, size_t *size)
{
    struct img *im = db_image(width, height, channels, seed);
    struct eng_error err = {0};
    void *png = NULL;
    if (img_encode(im, IMG_PNG, 90, NULL, &png, size, &err) != 0) fail_msg("%s", err.message);
    img_free(im);
    return png;
}

char *db_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/augserve-data-XXXXXX", base ? base : "/tmp") < 0 || !mkdtemp(path))
        fail_msg("cannot make a temporary folder");
    return path;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void db_remove(const char *path)
{
    nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

size_t db_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot list %s", dir);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

struct db_dataset db_dataset_make(const struct db_class *classes, size_t n, int width, int height,
                                  int seed_step)
{
    struct db_dataset d = {db_temp_dir(), NULL, NULL};
    char src[1024], out[1024];
    snprintf(src, sizeof src, "%s/src", d.root);
    snprintf(out, sizeof out, "%s/out", d.root);
    mkdir(out, 0755);
    int seed = 0;
    for (size_t c = 0; c < n; c++)
        for (int k = 0; k < classes[c].count; k++, seed += seed_step) {
            char name[256];
            size_t size;
            void *png = db_png(width, height, 3, seed, &size);
            snprintf(name, sizeof name, "%s/%03d.png", classes[c].folder, k);
            const struct db_entry e = {name, png, size, DB_FILE, NULL};
            db_write_tree(src, &e, 1);
            free(png);
        }
    struct eng_error err = {0};
    json_t *report = NULL;
    if (data_import(src, out, "set", NULL, &report, &err)) fail_msg("%s", err.message);
    json_decref(report);
    if (asprintf(&d.dir, "%s/set", out) < 0) fail_msg("out of memory");
    if (!(d.ds = dataset_open(d.dir, &err))) fail_msg("%s", err.message);
    return d;
}

void db_dataset_free(struct db_dataset *d)
{
    dataset_close(d->ds);
    db_remove(d->root);
    free(d->dir);
    free(d->root);
}
