/* What the dataset tests import, made by the tests themselves: archives written with libarchive's
 * writer (tar, tar.gz, zip; links included), folder trees, encoded test images, gzip files, and
 * scratch folders. Each helper fails the running test when it cannot do its job. */
#ifndef AUGSERVE_TEST_DATA_BUILD_H
#define AUGSERVE_TEST_DATA_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "core/img.h"

enum db_type { DB_FILE, DB_DIR, DB_SYMLINK, DB_HARDLINK };

/* One entry of an archive or a tree. */
struct db_entry {
    const char *name;
    const void *data; /* DB_FILE; NULL with size: size zero bytes */
    size_t size;
    enum db_type type;
    const char *link; /* DB_SYMLINK, DB_HARDLINK: the target */
};

enum db_archive { DB_TAR, DB_TGZ, DB_ZIP };

/* Writes the entries as an archive at path. */
void db_write_archive(const char *path, enum db_archive kind, const struct db_entry *entries,
                      size_t n);

/* Writes the entries under root, making folders as needed (links as links). */
void db_write_tree(const char *root, const struct db_entry *entries, size_t n);

/* data gzipped (malloc'd). */
void *db_gzip(const void *data, size_t size, size_t *out_size);

/* A width x height image of the channels whose pixel (x, y, c) is (x * 7 + y * 13 + c * 29 + seed)
 * mod 256, and that image as a PNG (malloc'd). */
struct img *db_image(int width, int height, int channels, int seed);
void *db_png(int width, int height, int channels, int seed, size_t *size);

/* A new empty folder under the system's temporary folder; db_remove removes it with its content. */
char *db_temp_dir(void);
void db_remove(const char *path);

/* How many entries a folder holds (".", ".." aside). */
size_t db_count_entries(const char *dir);

/* Writes data to path. */
void db_write_file(const char *path, const void *data, size_t size);

/* One class folder of a dataset db_import_classes makes: count images under folder. */
struct db_class {
    const char *folder; /* "train/cat" */
    int count;
};

/* A dataset in a temporary folder of its own: root/out/set, imported from root/src. */
struct db_dataset {
    char *root, *dir;
    struct dataset *ds;
};

/* Writes images <folder>/<k>.png (k = 000, 001, ...) of each class, image number i (counting
 * across the classes) being db_png(width, height, 3, i * seed_step), imports them and opens the
 * dataset. db_dataset_free closes it and removes the folder. */
struct db_dataset db_dataset_make(const struct db_class *classes, size_t n, int width, int height,
                                  int seed_step);
void db_dataset_free(struct db_dataset *d);

#endif
