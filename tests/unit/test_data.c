/* engine/data: every import format on small datasets the test makes (archives written with
 * libarchive's writer, CIFAR records and idx files by hand), checked image by image against the
 * pixels and labels written; the content hash across tar, tar.gz, zip and a folder; hostile
 * sources, each refused with its error and nothing left behind; cancellation and progress; and
 * the reduced CIFAR-10 of ../shared/data when it is there. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cancel.h"
#include "data/dataset.h"
#include "data_build.h"
#include "image/geometry.h"

static const char *shared_data; /* argv[1]: ../shared/data */

/* A scratch folder with src/ (what is imported) and out/ (where imports go). */
struct scratch {
    char *root;
    char src[512], out[512];
};

static struct scratch scratch_new(void)
{
    struct scratch s = {db_temp_dir(), "", ""};
    snprintf(s.src, sizeof s.src, "%s/src", s.root);
    snprintf(s.out, sizeof s.out, "%s/out", s.root);
    mkdir(s.src, 0755);
    mkdir(s.out, 0755);
    return s;
}

static void scratch_free(struct scratch *s)
{
    db_remove(s->root);
    free(s->root);
}

static json_t *import_ok(const char *source, const char *out, const struct data_import_options *o)
{
    struct eng_error err = {0};
    json_t *report = NULL;
    if (data_import(source, out, NULL, o, &report, &err) != 0) fail_msg("import: %s", err.message);
    assert_non_null(report);
    return report;
}

static struct dataset *open_imported(const char *out, const json_t *report)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", out, json_string_value(json_object_get(report, "id")));
    struct eng_error err = {0};
    struct dataset *ds = dataset_open(dir, &err);
    if (!ds) fail_msg("open: %s", err.message);
    return ds;
}

/* The import fails with code and a message holding `part`, and leaves s's folders as they were:
 * out empty, the root holding src and out only. */
static void import_fails(struct scratch *s, const char *source, const struct data_import_options *o,
                         enum eng_code code, const char *part)
{
    struct eng_error err = {0};
    json_t *report = NULL;
    assert_int_equal(data_import(source, s->out, NULL, o, &report, &err), -1);
    assert_null(report);
    if (err.code != code || !strstr(err.message, part))
        fail_msg("expected code %d with '%s', got %d: %s", code, part, err.code, err.message);
    assert_int_equal(db_count_entries(s->out), 0);
    assert_int_equal(db_count_entries(s->root), 2);
}

/* Image i of ds equals db_image(w, h, c, seed). */
static void assert_image(const struct dataset *ds, size_t i, int w, int h, int c, int seed)
{
    struct img view;
    dataset_image(ds, i, &view);
    struct img *want = db_image(w, h, c, seed);
    assert_int_equal(view.width, w);
    assert_int_equal(view.height, h);
    assert_int_equal(view.channels, c);
    assert_memory_equal(view.data, want->data, (size_t)w * h * c);
    img_free(want);
}

static const struct data_split *split_named(const struct dataset *ds, const char *name,
                                            size_t count)
{
    const struct data_split *s = dataset_split(ds, name);
    if (!s) fail_msg("no split %s", name);
    assert_int_equal(s->count, count);
    return s;
}

/* ---- Class folders -------------------------------------------------------------------------- */

/* The class-folder dataset the tests share: four images (two more files skipped, three ignored),
 * under prefix ("ds/", "./ds/" or ""). */
struct folder_set {
    void *png[5];
    size_t size[5];
    char names[9][64];
    struct db_entry entries[9];
};

static void folder_set_make(struct folder_set *f, const char *prefix)
{
    static const char *const paths[9] = {
        "train/cat/1.png", "train/dog/2.png",      "train/cat/3.png",
        "test/dog/4.png",  "train/cat/broken.png", "README.txt",
        ".DS_Store",       "train/cat/._1.png",    "__MACOSX/x.png"};
    for (int i = 0; i < 5; i++)
        f->png[i] = db_png(4, 3, 3, i + 1, &f->size[i]);
    for (int i = 0; i < 9; i++) {
        snprintf(f->names[i], sizeof f->names[i], "%s%s", i == 8 ? "" : prefix, paths[i]);
        f->entries[i] = (struct db_entry){f->names[i], i < 4 ? f->png[i] : "not a png at all",
                                          i < 4 ? f->size[i] : 16, DB_FILE, NULL};
    }
    f->entries[4].data = f->png[4]; /* a PNG cut short */
    f->entries[4].size = 20;
}

static void folder_set_free(struct folder_set *f)
{
    for (int i = 0; i < 5; i++)
        free(f->png[i]);
}

static void test_class_folders(void **state)
{
    struct scratch s = scratch_new();
    struct folder_set f;
    folder_set_make(&f, "ds/");
    char tar[1024];
    snprintf(tar, sizeof tar, "%s/set.tar", s.src);
    db_write_archive(tar, DB_TAR, f.entries, 9);
    json_t *report = import_ok(tar, s.out, NULL);
    assert_string_equal(json_string_value(json_object_get(report, "format")), "folders");
    assert_string_equal(json_string_value(json_object_get(report, "source")), "tar");
    assert_string_equal(json_string_value(json_object_get(report, "name")), "set");
    assert_int_equal(json_integer_value(json_object_get(report, "skipped_count")), 2);
    json_t *skipped = json_object_get(report, "skipped");
    assert_string_equal(json_string_value(json_object_get(json_array_get(skipped, 0), "file")),
                        "ds/README.txt");
    assert_string_equal(json_string_value(json_object_get(json_array_get(skipped, 1), "file")),
                        "ds/train/cat/broken.png");
    struct dataset *ds = open_imported(s.out, report);
    /* Sorted by name in the dataset: test/dog/4, train/cat/1, train/cat/3, train/dog/2. */
    assert_int_equal(dataset_count(ds), 4);
    assert_int_equal(dataset_class_count(ds), 2);
    assert_string_equal(dataset_class_name(ds, 0), "cat");
    assert_string_equal(dataset_class_name(ds, 1), "dog");
    static const int seeds[4] = {4, 1, 3, 2}, labels[4] = {1, 0, 0, 1};
    static const char *const sources[4] = {"test/dog/4.png", "train/cat/1.png", "train/cat/3.png",
                                           "train/dog/2.png"};
    for (size_t i = 0; i < 4; i++) {
        assert_image(ds, i, 4, 3, 3, seeds[i]);
        assert_int_equal(dataset_label(ds, i), labels[i]);
        assert_string_equal(dataset_source(ds, i), sources[i]);
        const void *original;
        size_t size;
        assert_int_equal(dataset_original(ds, i, &original, &size), -1); /* one size: none kept */
        assert_null(dataset_targets(ds, i));
    }
    int w, h;
    dataset_uniform_size(ds, &w, &h);
    assert_int_equal(w, 4);
    assert_int_equal(h, 3);
    assert_int_equal(dataset_split_count(ds), 2);
    const struct data_split *train = split_named(ds, "train", 3);
    assert_int_equal(train->indices[0], 1);
    assert_int_equal(train->indices[2], 3);
    assert_true(train->labeled);
    assert_int_equal(split_named(ds, "test", 1)->indices[0], 0);
    /* Only the dataset's folder was written. */
    assert_int_equal(db_count_entries(s.out), 1);
    dataset_close(ds);
    json_decref(report);
    folder_set_free(&f);
    scratch_free(&s);
}

/* Reads a cache file whole. */
static struct blob_file {
    unsigned char *data;
    long size;
} read_cache_file(const char *out, const json_t *report, const char *name)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", out, json_string_value(json_object_get(report, "id")),
             name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    struct blob_file b = {NULL, ftell(f)};
    fseek(f, 0, SEEK_SET);
    b.data = malloc((size_t)b.size);
    if (fread(b.data, 1, (size_t)b.size, f) != (size_t)b.size) fail_msg("cannot read %s", path);
    fclose(f);
    return b;
}

static void test_same_content_same_hash(void **state)
{
    /* One tree as tar, tar.gz, zip, a folder, without its top folder and with "./" names: one
     * dataset, byte for byte. */
    struct scratch s = scratch_new();
    struct folder_set plain, dotted, bare;
    folder_set_make(&plain, "ds/");
    folder_set_make(&dotted, "./ds/");
    folder_set_make(&bare, "");
    struct {
        const char *name;
        enum db_archive kind;
        struct folder_set *set;
    } sources[] = {{"a.tar", DB_TAR, &plain}, {"b.tar.gz", DB_TGZ, &plain},
                   {"c.zip", DB_ZIP, &plain}, {"d.tar", DB_TAR, &dotted},
                   {"e.zip", DB_ZIP, &bare},  {"tree", DB_TAR, &plain}};
    json_t *first = NULL;
    struct blob_file first_index = {0}, first_images = {0};
    for (size_t k = 0; k < sizeof sources / sizeof *sources; k++) {
        char path[1024], out[2048];
        snprintf(path, sizeof path, "%s/%s", s.src, sources[k].name);
        snprintf(out, sizeof out, "%s/%zu", s.root, k);
        mkdir(out, 0755);
        if (strcmp(sources[k].name, "tree") == 0)
            db_write_tree(path, sources[k].set->entries, 9);
        else
            db_write_archive(path, sources[k].kind, sources[k].set->entries, 9);
        json_t *report = import_ok(path, out, NULL);
        struct blob_file index = read_cache_file(out, report, "index.bin");
        struct blob_file images = read_cache_file(out, report, "images.bin");
        if (!first) {
            first = report;
            first_index = index;
            first_images = images;
            continue;
        }
        assert_string_equal(json_string_value(json_object_get(report, "hash")),
                            json_string_value(json_object_get(first, "hash")));
        assert_int_equal(index.size, first_index.size);
        assert_memory_equal(index.data, first_index.data, (size_t)index.size);
        assert_int_equal(images.size, first_images.size);
        assert_memory_equal(images.data, first_images.data, (size_t)images.size);
        free(index.data);
        free(images.data);
        json_decref(report);
    }
    /* The id is the hash's first 16 digits. */
    assert_memory_equal(json_string_value(json_object_get(first, "id")),
                        json_string_value(json_object_get(first, "hash")), 16);
    free(first_index.data);
    free(first_images.data);
    json_decref(first);
    folder_set_free(&plain);
    folder_set_free(&dotted);
    folder_set_free(&bare);
    scratch_free(&s);
}

static void test_classes_without_splits(void **state)
{
    /* <class>/<file> under a top folder: one split, "all". */
    struct scratch s = scratch_new();
    size_t sa, sb;
    void *a = db_png(2, 2, 1, 10, &sa), *b = db_png(2, 2, 1, 11, &sb);
    const struct db_entry entries[] = {{"top/zebra/a.png", a, sa, DB_FILE, NULL},
                                       {"top/ant/b.png", b, sb, DB_FILE, NULL}};
    char zip[1024];
    snprintf(zip, sizeof zip, "%s/animals.zip", s.src);
    db_write_archive(zip, DB_ZIP, entries, 2);
    json_t *report = import_ok(zip, s.out, NULL);
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_split_count(ds), 1);
    split_named(ds, "all", 2);
    assert_string_equal(dataset_class_name(ds, 0), "ant");
    assert_string_equal(dataset_source(ds, 0), "ant/b.png");
    assert_int_equal(dataset_label(ds, 1), 1);
    assert_image(ds, 1, 2, 2, 1, 10);
    dataset_close(ds);
    json_decref(report);
    free(a);
    free(b);
    scratch_free(&s);
}

static void test_mixed_sizes_resized(void **state)
{
    /* 40x20 and 30x30 with image_size 16: shorter sides to 16, the longer as torchvision's
     * Resize(16) gives it (int(16 x 40 / 20) = 32); the PNGs are kept as they were. */
    struct scratch s = scratch_new();
    size_t sa, sb;
    void *a = db_png(40, 20, 3, 5, &sa), *b = db_png(30, 30, 3, 6, &sb);
    const struct db_entry entries[] = {{"c/a.png", a, sa, DB_FILE, NULL},
                                       {"c/b.png", b, sb, DB_FILE, NULL}};
    db_write_tree(s.src, entries, 2);
    const struct data_import_options o = {.image_size = 16, .threads = 2};
    json_t *report = import_ok(s.src, s.out, &o);
    assert_true(json_is_null(json_object_get(report, "size")));
    assert_int_equal(json_integer_value(json_object_get(report, "image_size")), 16);
    assert_true(json_is_true(json_object_get(report, "originals")));
    assert_string_equal(json_string_value(json_object_get(report, "source")), "folder");
    struct dataset *ds = open_imported(s.out, report);
    const struct {
        int w, h, out_w, out_h, seed;
        void *png;
        size_t size;
    } want[2] = {{40, 20, 32, 16, 5, a, sa}, {30, 30, 16, 16, 6, b, sb}};
    for (size_t i = 0; i < 2; i++) {
        struct eng_error err = {0};
        struct img *source = db_image(want[i].w, want[i].h, 3, want[i].seed);
        struct img *resized = img_resize(source, want[i].out_h, want[i].out_w, IMG_BILINEAR, &err);
        struct img view;
        dataset_image(ds, i, &view);
        assert_int_equal(view.width, want[i].out_w);
        assert_int_equal(view.height, want[i].out_h);
        assert_memory_equal(view.data, resized->data, (size_t)want[i].out_w * want[i].out_h * 3);
        int ow, oh;
        dataset_original_size(ds, i, &ow, &oh);
        assert_int_equal(ow, want[i].w);
        assert_int_equal(oh, want[i].h);
        const void *original;
        size_t size;
        assert_int_equal(dataset_original(ds, i, &original, &size), 0);
        assert_int_equal(size, want[i].size);
        assert_memory_equal(original, want[i].png, size);
        img_free(source);
        img_free(resized);
    }
    int w, h;
    dataset_uniform_size(ds, &w, &h);
    assert_int_equal(w, 0);
    dataset_close(ds);
    json_decref(report);
    free(a);
    free(b);
    scratch_free(&s);
}

static void test_resize_refused(void **state)
{
    /* A 300x1 image alone is kept as it is; beside another size it would be resized to 256 x
     * 76800, past the largest side: the import names it and fails, whatever the order of decoding.
     */
    struct scratch s = scratch_new();
    size_t sa, sb;
    void *a = db_png(300, 1, 1, 1, &sa), *b = db_png(4, 4, 1, 2, &sb);
    const struct db_entry entries[] = {{"c/long.png", a, sa, DB_FILE}, {"c/b.png", b, sb, DB_FILE}};
    db_write_tree(s.src, entries, 1);
    json_t *report = import_ok(s.src, s.out, NULL);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(report, "size"), 0)), 300);
    json_decref(report);
    db_remove(s.out);
    mkdir(s.out, 0755);
    db_write_tree(s.src, entries + 1, 1);
    const struct data_import_options o = {.threads = 2};
    import_fails(&s, s.src, &o, ENG_TOO_LARGE, "c/long.png: a 300x1 image resized to 256");
    free(a);
    free(b);
    scratch_free(&s);
}

/* ---- CIFAR ---------------------------------------------------------------------------------- */

/* Record r of a CIFAR file: its label bytes, then plane c's pixel i = (r * 31 + c * 17 + i) mod
 * 256, so the HWC pixel (x, y, c) is (r * 31 + c * 17 + 32 y + x) mod 256. */
static unsigned char *cifar_file(int records, int label_bytes, int first_label, size_t *size)
{
    const size_t record = (size_t)label_bytes + 3072;
    unsigned char *data = malloc(record * (size_t)records + 8);
    for (int r = 0; r < records; r++) {
        unsigned char *p = data + record * (size_t)r;
        for (int k = 0; k < label_bytes; k++)
            p[k] = (unsigned char)((first_label + r) % (k == 0 && label_bytes == 2 ? 20 : 10));
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 1024; i++)
                p[label_bytes + c * 1024 + i] = (unsigned char)((r * 31 + c * 17 + i) & 255);
    }
    *size = record * (size_t)records;
    return data;
}

static void assert_cifar_pixels(const struct dataset *ds, size_t i, int r)
{
    struct img view;
    dataset_image(ds, i, &view);
    assert_int_equal(view.width, 32);
    assert_int_equal(view.channels, 3);
    const int points[3][3] = {{0, 0, 0}, {5, 9, 1}, {31, 31, 2}};
    for (int k = 0; k < 3; k++) {
        const int x = points[k][0], y = points[k][1], c = points[k][2];
        assert_int_equal(img_row(&view, y)[3 * x + c], (r * 31 + c * 17 + 32 * y + x) & 255);
    }
}

static void test_cifar10(void **state)
{
    struct scratch s = scratch_new();
    size_t s1, s2, st;
    unsigned char *b1 = cifar_file(3, 1, 7, &s1), *b2 = cifar_file(1, 1, 2, &s2),
                  *test = cifar_file(2, 1, 0, &st);
    const char *meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    const struct db_entry entries[] = {
        {"cifar-10-batches-bin/", NULL, 0, DB_DIR, NULL},
        {"cifar-10-batches-bin/data_batch_2.bin", b2, s2, DB_FILE, NULL},
        {"cifar-10-batches-bin/data_batch_1.bin", b1, s1, DB_FILE, NULL},
        {"cifar-10-batches-bin/test_batch.bin", test, st, DB_FILE, NULL},
        {"cifar-10-batches-bin/batches.meta.txt", meta, strlen(meta), DB_FILE, NULL},
        {"cifar-10-batches-bin/readme.html", "<html>", 6, DB_FILE, NULL}};
    char tgz[1024];
    snprintf(tgz, sizeof tgz, "%s/cifar-10-binary.tar.gz", s.src);
    db_write_archive(tgz, DB_TGZ, entries, 6);
    json_t *report = import_ok(tgz, s.out, NULL);
    assert_string_equal(json_string_value(json_object_get(report, "format")), "cifar10");
    assert_string_equal(json_string_value(json_object_get(report, "source")), "tar.gz");
    assert_int_equal(json_integer_value(json_object_get(report, "skipped_count")), 1);
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_count(ds), 6);
    assert_int_equal(dataset_class_count(ds), 10);
    assert_string_equal(dataset_class_name(ds, 9), "truck");
    /* data_batch_1 #0..2, data_batch_2 #0, test_batch #0..1. */
    static const int records[6] = {0, 1, 2, 0, 0, 1}, labels[6] = {7, 8, 9, 2, 0, 1};
    for (size_t i = 0; i < 6; i++) {
        assert_cifar_pixels(ds, i, records[i]);
        assert_int_equal(dataset_label(ds, i), labels[i]);
    }
    assert_string_equal(dataset_source(ds, 2), "data_batch_1.bin#2");
    assert_string_equal(dataset_source(ds, 5), "test_batch.bin#1");
    split_named(ds, "train", 4);
    assert_int_equal(split_named(ds, "test", 2)->indices[0], 4);
    dataset_close(ds);
    json_decref(report);
    free(b1);
    free(b2);
    free(test);
    scratch_free(&s);
}

static void test_cifar100(void **state)
{
    /* Loose files, no class names file: classes "0".."99", the fine label kept. */
    struct scratch s = scratch_new();
    size_t s1, s2;
    unsigned char *train = cifar_file(2, 2, 4, &s1), *test = cifar_file(1, 2, 0, &s2);
    train[1] = 77; /* record 0's fine label */
    const struct db_entry entries[] = {{"train.bin", train, s1, DB_FILE, NULL},
                                       {"test.bin", test, s2, DB_FILE, NULL}};
    db_write_tree(s.src, entries, 2);
    json_t *report = import_ok(s.src, s.out, NULL);
    assert_string_equal(json_string_value(json_object_get(report, "format")), "cifar100");
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_class_count(ds), 100);
    assert_string_equal(dataset_class_name(ds, 42), "42");
    assert_int_equal(dataset_count(ds), 3);
    assert_int_equal(dataset_label(ds, 1), 77); /* train.bin#0 (test.bin#0 sorts first) */
    assert_int_equal(dataset_label(ds, 2), 5);
    assert_cifar_pixels(ds, 2, 1);
    dataset_close(ds);
    json_decref(report);
    free(train);
    free(test);
    scratch_free(&s);
}

static void test_cifar_refused(void **state)
{
    struct scratch s = scratch_new();
    size_t size;
    unsigned char *batch = cifar_file(2, 1, 0, &size);
    char path[1024];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", s.src);
    /* Not whole records. */
    db_write_file(path, batch, size - 5);
    import_fails(&s, s.src, NULL, ENG_INVALID,
                 "data_batch_1.bin: 6141 bytes is not a whole number");
    /* A label past the classes. */
    batch[3073] = 10;
    db_write_file(path, batch, size);
    import_fails(&s, s.src, NULL, ENG_INVALID, "record 1: label 10 is not below 10");
    free(batch);
    scratch_free(&s);
}

/* ---- idx ------------------------------------------------------------------------------------ */

static unsigned char *idx_images(uint32_t n, uint32_t rows, uint32_t cols, int base, size_t *size)
{
    *size = 16 + (size_t)n * rows * cols;
    unsigned char *d = malloc(*size);
    const uint32_t header[4] = {0x00000803, n, rows, cols};
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 4; b++)
            d[4 * k + b] = (unsigned char)(header[k] >> (24 - 8 * b));
    for (size_t i = 16; i < *size; i++)
        d[i] = (unsigned char)(base + (int)(i - 16));
    return d;
}

static unsigned char *idx_labels(uint32_t n, const unsigned char *labels, size_t *size)
{
    *size = 8 + n;
    unsigned char *d = malloc(*size);
    const unsigned char header[8] = {0,
                                     0,
                                     8,
                                     1,
                                     (unsigned char)(n >> 24),
                                     (unsigned char)(n >> 16),
                                     (unsigned char)(n >> 8),
                                     (unsigned char)n};
    memcpy(d, header, 8);
    memcpy(d + 8, labels, n);
    return d;
}

static void test_idx(void **state)
{
    /* MNIST's four files, the train pair gzipped: 4 train images of 2x3 and 2 test ones. */
    struct scratch s = scratch_new();
    const unsigned char train_labels[4] = {3, 1, 4, 1}, test_labels[2] = {5, 9};
    size_t si, sl, ti, tl, gi, gl;
    unsigned char *images = idx_images(4, 3, 2, 100, &si),
                  *labels = idx_labels(4, train_labels, &sl);
    unsigned char *timages = idx_images(2, 3, 2, 0, &ti),
                  *tlabels = idx_labels(2, test_labels, &tl);
    void *gz_images = db_gzip(images, si, &gi), *gz_labels = db_gzip(labels, sl, &gl);
    const struct db_entry entries[] = {
        {"mnist/train-images-idx3-ubyte.gz", gz_images, gi, DB_FILE, NULL},
        {"mnist/train-labels-idx1-ubyte.gz", gz_labels, gl, DB_FILE, NULL},
        {"mnist/t10k-images-idx3-ubyte", timages, ti, DB_FILE, NULL},
        {"mnist/t10k-labels-idx1-ubyte", tlabels, tl, DB_FILE, NULL}};
    db_write_tree(s.src, entries, 4);
    char folder[1024];
    snprintf(folder, sizeof folder, "%s/mnist", s.src);
    json_t *report = import_ok(folder, s.out, NULL);
    assert_string_equal(json_string_value(json_object_get(report, "format")), "idx");
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_count(ds), 6);
    assert_int_equal(dataset_class_count(ds), 10); /* 0..9, the largest label */
    /* t10k-images-idx3-ubyte #0, #1, then train-images-idx3-ubyte #0..#3. */
    split_named(ds, "test", 2);
    assert_int_equal(split_named(ds, "train", 4)->indices[0], 2);
    assert_string_equal(dataset_source(ds, 3), "train-images-idx3-ubyte#1");
    static const int want_labels[6] = {5, 9, 3, 1, 4, 1}, bases[6] = {0, 6, 100, 106, 112, 118};
    for (size_t i = 0; i < 6; i++) {
        struct img view;
        dataset_image(ds, i, &view);
        assert_int_equal(view.width, 2);
        assert_int_equal(view.height, 3);
        assert_int_equal(view.channels, 1);
        for (int p = 0; p < 6; p++)
            assert_int_equal(view.data[p], (bases[i] + p) & 255);
        assert_int_equal(dataset_label(ds, i), want_labels[i]);
    }
    dataset_close(ds);
    json_decref(report);
    free(images);
    free(labels);
    free(timages);
    free(tlabels);
    free(gz_images);
    free(gz_labels);
    scratch_free(&s);
}

static void test_idx_refused(void **state)
{
    struct scratch s = scratch_new();
    const unsigned char four[4] = {1, 2, 3, 4};
    size_t si, sl;
    unsigned char *images = idx_images(3, 2, 2, 0, &si), *labels = idx_labels(4, four, &sl);
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte", s.src);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte", s.src);
    /* Counts that disagree. */
    db_write_file(ip, images, si);
    db_write_file(lp, labels, sl);
    import_fails(&s, s.src, NULL, ENG_INVALID, "3 images, but its labels file has 4");
    /* An images file cut short, or longer than its dimensions. */
    db_write_file(lp, labels, sl);
    images[7] = 4; /* n = 4 */
    db_write_file(ip, images, si);
    import_fails(&s, s.src, NULL, ENG_INVALID, "ends inside image 3 of 4");
    unsigned char *longer = malloc(si + 8);
    memcpy(longer, images, si);
    memset(longer + si, 0, 8);
    db_write_file(ip, longer, si + 5);
    import_fails(&s, s.src, NULL, ENG_INVALID, "longer than its 4 images of 2x2");
    /* A labels file whose count disagrees with its size. */
    db_write_file(lp, labels, sl - 1);
    import_fails(&s, s.src, NULL, ENG_INVALID, "4 labels need 12 bytes, the file has 11");
    /* Another magic: floats, or no idx at all. */
    db_write_file(lp, labels, sl);
    longer[2] = 0x0d;
    db_write_file(ip, longer, si + 4);
    import_fails(&s, s.src, NULL, ENG_UNSUPPORTED, "idx type 0x0d");
    longer[0] = 0x7f;
    db_write_file(ip, longer, si + 4);
    import_fails(&s, s.src, NULL, ENG_INVALID, "not an idx file");
    /* Images without their labels. */
    remove(lp);
    import_fails(&s, s.src, NULL, ENG_INVALID, "no labels file (train-labels-idx1-ubyte)");
    free(longer);
    free(images);
    free(labels);
    scratch_free(&s);
}

/* ---- Manifests ------------------------------------------------------------------------------ */

static void test_manifest(void **state)
{
    struct scratch s = scratch_new();
    size_t sz[5];
    void *png[5];
    for (int i = 0; i < 5; i++)
        png[i] = db_png(3, 2, 3, 20 + i, &sz[i]);
    const char *manifest =
        "{\"file\": \"img/a.png\", \"label\": \"cat\", \"split\": \"train\"}\n"
        "\n"
        "{\"file\": \"img/b.png\", \"label\": \"dog\", \"split\": \"train\", \"targets\": "
        "{\"boxes\": [[0, 0, 2, 2]], \"labels\": [\"dog\"]}}\r\n"
        "{\"file\": \"./img/c.png\", \"split\": \"test\"}\n"
        "{\"file\": \"img/e.png\", \"label\": null, \"extra\": 1}";
    const struct db_entry entries[] = {{"data/manifest.jsonl", manifest, strlen(manifest), DB_FILE},
                                       {"data/img/a.png", png[0], sz[0], DB_FILE},
                                       {"data/img/b.png", png[1], sz[1], DB_FILE},
                                       {"data/img/c.png", png[2], sz[2], DB_FILE},
                                       {"data/img/d.png", png[3], sz[3], DB_FILE},
                                       {"data/img/e.png", png[4], sz[4], DB_FILE}};
    char tar[1024];
    snprintf(tar, sizeof tar, "%s/m.tar", s.src);
    db_write_archive(tar, DB_TAR, entries, 6);
    json_t *report = import_ok(tar, s.out, NULL);
    assert_string_equal(json_string_value(json_object_get(report, "format")), "manifest");
    assert_true(json_is_true(json_object_get(report, "targets")));
    json_t *skipped = json_array_get(json_object_get(report, "skipped"), 0);
    assert_string_equal(json_string_value(json_object_get(skipped, "file")), "data/img/d.png");
    assert_string_equal(json_string_value(json_object_get(skipped, "reason")),
                        "not in the manifest");
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_count(ds), 4);
    static const int labels[4] = {0, 1, -1, -1}, seeds[4] = {20, 21, 22, 24};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(dataset_label(ds, i), labels[i]);
        assert_image(ds, i, 3, 2, 3, seeds[i]);
    }
    assert_string_equal(dataset_source(ds, 2), "img/c.png");
    assert_string_equal(dataset_targets(ds, 1), "{\"boxes\":[[0,0,2,2]],\"labels\":[\"dog\"]}");
    assert_null(dataset_targets(ds, 0));
    assert_int_equal(split_named(ds, "all", 1)->indices[0], 3);
    assert_false(split_named(ds, "test", 1)->labeled);
    assert_true(split_named(ds, "train", 2)->labeled);
    dataset_close(ds);
    json_decref(report);
    for (int i = 0; i < 5; i++)
        free(png[i]);
    scratch_free(&s);
}

static void test_manifest_numbers(void **state)
{
    /* Class numbers name classes 0..max, whether or not each has an image. */
    struct scratch s = scratch_new();
    size_t sa;
    void *a = db_png(1, 1, 1, 0, &sa);
    const char *manifest =
        "{\"file\": \"x.png\", \"label\": 2}\n{\"file\": \"y.png\", \"label\": 0}\n";
    const struct db_entry entries[] = {{"list.jsonl", manifest, strlen(manifest), DB_FILE},
                                       {"x.png", a, sa, DB_FILE},
                                       {"y.png", a, sa, DB_FILE}};
    db_write_tree(s.src, entries, 3);
    json_t *report = import_ok(s.src, s.out, NULL);
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_class_count(ds), 3);
    assert_string_equal(dataset_class_name(ds, 1), "1");
    assert_int_equal(dataset_label(ds, 0), 2);
    assert_int_equal(dataset_label(ds, 1), 0);
    dataset_close(ds);
    json_decref(report);
    free(a);
    scratch_free(&s);
}

static void test_manifest_refused(void **state)
{
    struct scratch s = scratch_new();
    size_t sa;
    void *a = db_png(1, 1, 1, 0, &sa);
    char img[1024], manifest[1024];
    snprintf(img, sizeof img, "%s/a.png", s.src);
    snprintf(manifest, sizeof manifest, "%s/m.jsonl", s.src);
    db_write_file(img, a, sa);
    const struct {
        const char *text, *message;
    } cases[] = {
        {"{\"file\": \"a.png\"}\n{\"file\": \"gone.png\"}",
         "manifest line 2: gone.png is not in the source"},
        {"{\"file\": \"a.png\"}\n{\"file\": ", "manifest line 2: not JSON"},
        {"[\"a.png\"]", "manifest line 1: not a JSON object"},
        {"{\"file\": \"../a.png\"}", "manifest line 1: ../a.png: a name that climbs out"},
        {"{\"file\": \"a.png\", \"label\": 1}\n{\"file\": \"a.png\", \"label\": \"x\"}",
         "labels are class numbers on line 1 and a name here"},
        {"{\"file\": \"a.png\"}\n{\"file\": \"./a.png\"}",
         "manifest lines 1 and 2: a.png listed twice"},
        {"{\"file\": \"a.png\", \"split\": \"../up\"}", "manifest line 1: split name '../up'"},
        {"{\"file\": \"a.png\", \"targets\": [1]}", "\"targets\" must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        db_write_file(manifest, cases[i].text, strlen(cases[i].text));
        import_fails(&s, s.src, NULL, ENG_INVALID, cases[i].message);
    }
    /* A class number past max_classes. */
    const char *big = "{\"file\": \"a.png\", \"label\": 5}";
    db_write_file(manifest, big, strlen(big));
    const struct data_import_options few = {.max_classes = 5};
    import_fails(&s, s.src, &few, ENG_TOO_LARGE, "label 5 is not in 0..4 (max_classes)");
    /* A split per line, past DATA_MAX_SPLITS: refused before a file is read. */
    char *lines = malloc(64 * (DATA_MAX_SPLITS + 1));
    size_t used = 0;
    for (int i = 0; i <= DATA_MAX_SPLITS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d.png", i);
        const struct db_entry e = {name, "x", 1, DB_FILE};
        db_write_tree(s.src, &e, 1);
        used += (size_t)sprintf(lines + used, "{\"file\": \"%d.png\", \"split\": \"s%d\"}\n", i, i);
    }
    db_write_file(manifest, lines, used);
    import_fails(&s, s.src, NULL, ENG_TOO_LARGE, "1001 splits in the source, more than 1000");
    free(lines);
    free(a);
    scratch_free(&s);
}

/* ---- Hostile sources ------------------------------------------------------------------------ */

static void test_hostile_archives(void **state)
{
    struct scratch s = scratch_new();
    size_t sa;
    void *a = db_png(2, 2, 3, 1, &sa);
    char path[1024];
    snprintf(path, sizeof path, "%s/evil.tar", s.src);
    const struct {
        enum db_archive kind;
        struct db_entry entries[3];
        size_t n;
        enum eng_code code;
        const char *message;
    } cases[] = {
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"../evil.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "../evil.png: a name that climbs out with '..'"},
        {DB_ZIP,
         {{"c/a.png", a, sa, DB_FILE}, {"c/../../evil.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "c/../../evil.png: a name that climbs out"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"/etc/evil.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "/etc/evil.png: an absolute name"},
        /* zip names with backslashes are Windows paths: libarchive reads them as slashes. */
        {DB_ZIP,
         {{"c/a.png", a, sa, DB_FILE}, {"c\\..\\evil.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "c/../evil.png: a name that climbs out"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"c\\evil.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "c\\evil.png: an absolute name (or a backslash in it)"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"c/l.png", NULL, 0, DB_SYMLINK, "/etc/passwd"}},
         2,
         ENG_INVALID,
         "c/l.png: a symbolic link"},
        {DB_ZIP,
         {{"c/a.png", a, sa, DB_FILE}, {"c/l.png", NULL, 0, DB_SYMLINK, "../../x"}},
         2,
         ENG_INVALID,
         "c/l.png: a symbolic link"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"c/h.png", NULL, 0, DB_HARDLINK, "c/a.png"}},
         2,
         ENG_INVALID,
         "c/h.png: a hard link"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"c/a.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "c/a.png: in the source twice"},
        {DB_TAR,
         {{"a/1.png", a, sa, DB_FILE}, {"b/c/2.png", a, sa, DB_FILE}},
         2,
         ENG_INVALID,
         "mixed layout"},
        {DB_TAR, {{"1.png", a, sa, DB_FILE}}, 1, ENG_INVALID, "images go in class folders"},
        /* No image that decodes: each skipped, the import refused. */
        {DB_TAR,
         {{"c/bad.png", "\x89PNG\r\n\x1a\n....", 12, DB_FILE}, {"c/x.txt", "x", 1, DB_FILE}},
         2,
         ENG_INVALID,
         "no usable image: 2 files skipped (the first, c/x.txt: not an image"},
        /* Bombs: 24 MiB of zeros in a few kilobytes. */
        {DB_ZIP,
         {{"c/a.png", a, sa, DB_FILE}, {"c/zeros.bin", NULL, 24u << 20, DB_FILE}},
         2,
         ENG_TOO_LARGE,
         "c/zeros.bin: the archive expands past 100 times its size (max_ratio)"},
        {DB_TGZ,
         {{"c/a.png", a, sa, DB_FILE}, {"c/zeros.bin", NULL, 24u << 20, DB_FILE}},
         2,
         ENG_TOO_LARGE,
         "(max_ratio)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        db_write_archive(path, cases[i].kind, cases[i].entries, cases[i].n);
        import_fails(&s, path, NULL, cases[i].code, cases[i].message);
    }
    /* Not an archive at all. */
    db_write_file(path, "just some text, no archive", 27);
    import_fails(&s, path, NULL, ENG_UNSUPPORTED, "not a tar, tar.gz or zip archive");
    free(a);
    scratch_free(&s);
}

static void test_limits(void **state)
{
    struct scratch s = scratch_new();
    size_t sa;
    void *a = db_png(8, 8, 3, 1, &sa);
    const struct db_entry entries[] = {{"x/a.png", a, sa, DB_FILE},
                                       {"x/b.png", a, sa, DB_FILE},
                                       {"y/c.png", a, sa, DB_FILE},
                                       {"z/d.png", a, sa, DB_FILE}};
    char path[1024];
    snprintf(path, sizeof path, "%s/set.zip", s.src);
    db_write_archive(path, DB_ZIP, entries, 4);
    const struct data_import_options files = {.max_files = 3}, bytes = {.max_bytes = 3 * sa},
                                     classes = {.max_classes = 2}, cache = {.max_cache_bytes = 500},
                                     pixels = {.decode = {.max_pixels = 63}};
    import_fails(&s, path, &files, ENG_TOO_LARGE, "more than 3 files (max_files)");
    import_fails(&s, path, &bytes, ENG_TOO_LARGE, "z/d.png: the files come to more than");
    import_fails(&s, path, &classes, ENG_TOO_LARGE, "3 classes, more than 2 (max_classes)");
    import_fails(&s, path, &cache, ENG_TOO_LARGE, "(max_cache_bytes)");
    /* Past the decoder's limits, every image is skipped with the decoder's reason. */
    import_fails(&s, path, &pixels, ENG_INVALID, "no usable image: 4 files skipped");
    /* A file past max_file_bytes is skipped, and listed. */
    const struct data_import_options one = {.max_file_bytes = sa - 1};
    struct db_entry bigger[5];
    memcpy(bigger, entries, sizeof entries);
    size_t sb;
    void *small = db_png(1, 1, 3, 2, &sb);
    bigger[4] = (struct db_entry){"z/e.png", small, sb, DB_FILE};
    db_write_archive(path, DB_ZIP, bigger, 5);
    json_t *report = import_ok(path, s.out, &one);
    assert_int_equal(json_integer_value(json_object_get(report, "images")), 1);
    assert_int_equal(json_integer_value(json_object_get(report, "skipped_count")), 4);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(report, "skipped"), 0), "reason")),
                        "larger than max_file_bytes");
    json_decref(report);
    free(small);
    free(a);
    scratch_free(&s);
}

static void test_folder_links_refused(void **state)
{
    struct scratch s = scratch_new();
    size_t sa;
    void *a = db_png(2, 2, 3, 1, &sa);
    char tree[1024];
    snprintf(tree, sizeof tree, "%s/tree", s.src);
    const struct db_entry entries[] = {{"c/a.png", a, sa, DB_FILE},
                                       {"c/l.png", NULL, 0, DB_SYMLINK, "/etc/hostname"}};
    db_write_tree(tree, entries, 2);
    import_fails(&s, tree, NULL, ENG_INVALID, "c/l.png: a symbolic link");
    /* Nothing at all (fuzz_dataset's first find: an empty list sorted). */
    char empty[1024];
    snprintf(empty, sizeof empty, "%s/empty", s.src);
    mkdir(empty, 0755);
    import_fails(&s, empty, NULL, ENG_INVALID, "no image files in the source");
    import_fails(&s, "/nonexistent/augserve/dataset", NULL, ENG_NOT_FOUND, "No such file");
    free(a);
    scratch_free(&s);
}

/* ---- Cancellation, progress, existing datasets, clean-up ------------------------------------ */

struct stopper {
    int polls, limit;
};

static int stop_after(void *ctx, struct eng_error *err)
{
    struct stopper *st = ctx;
    return ++st->polls > st->limit ? eng_fail(err, ENG_CANCELLED, "the job was cancelled") : 0;
}

/* A folder of n classes of 4x4 images, one per class ("c<k>/<k>.png"). */
static void write_many(const char *root, int n)
{
    for (int k = 0; k < n; k++) {
        size_t size;
        void *png = db_png(4, 4, 3, k, &size);
        char name[64];
        snprintf(name, sizeof name, "c%02d/%d.png", k % 5, k);
        const struct db_entry e = {name, png, size, DB_FILE};
        db_write_tree(root, &e, 1);
        free(png);
    }
}

static void test_cancel(void **state)
{
    /* The polls of a whole import, counted; then stopped at the first, the middle and the last:
     * each time nothing is left. */
    struct scratch s = scratch_new();
    write_many(s.src, 40);
    const struct data_import_options o = {.threads = 2};
    int total = 0;
    for (int run = 0; run < 4; run++) {
        const int limits[4] = {1 << 30, 0, total / 2, total - 1};
        struct stopper st = {0, limits[run]};
        const struct eng_cancel check = {stop_after, &st};
        eng_cancel_install(&check);
        struct eng_error err = {0};
        json_t *report = NULL;
        int rc = data_import(s.src, s.out, NULL, &o, &report, &err);
        eng_cancel_install(NULL);
        if (run == 0) {
            if (rc) fail_msg("%s", err.message);
            total = st.polls;
            assert_true(total > 80); /* at least a poll per file in each pass */
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", s.out,
                     json_string_value(json_object_get(report, "id")));
            json_decref(report);
            db_remove(dir);
            continue;
        }
        if (rc == 0) fail_msg("not cancelled after %d of %d polls", limits[run], total);
        assert_int_equal(err.code, ENG_CANCELLED);
        assert_int_equal(db_count_entries(s.out), 0);
    }
    scratch_free(&s);
}

struct progress_log {
    double last;
    int phase; /* 0 listing, 1 decoding, 2 writing */
    int calls;
};

static void log_progress(void *ctx, double fraction, const char *phase)
{
    struct progress_log *p = ctx;
    static const char *const phases[3] = {"listing", "decoding", "writing"};
    int k = 0;
    while (k < 3 && strcmp(phases[k], phase) != 0)
        k++;
    if (k == 3 || k < p->phase || fraction < p->last || fraction > 1)
        fail_msg("progress went from %s %g to %s %g", phases[p->phase], p->last, phase, fraction);
    p->phase = k;
    p->last = fraction;
    p->calls++;
}

static void test_progress_and_existing(void **state)
{
    struct scratch s = scratch_new();
    write_many(s.src, 30);
    struct progress_log log = {0};
    struct data_import_options o = {.progress = log_progress, .progress_ctx = &log};
    json_t *first = import_ok(s.src, s.out, &o);
    assert_int_equal(log.phase, 2);
    assert_true(log.last >= 0.9);
    assert_false(json_is_true(json_object_get(first, "existing")));
    /* The same content again: the same dataset, nothing new written. */
    json_t *again = import_ok(s.src, s.out, NULL);
    assert_true(json_is_true(json_object_get(again, "existing")));
    assert_string_equal(json_string_value(json_object_get(again, "id")),
                        json_string_value(json_object_get(first, "id")));
    assert_int_equal(db_count_entries(s.out), 1);
    /* A chosen id: taken the second time; a name no folder may have. */
    struct eng_error err = {0};
    json_t *named = NULL;
    assert_int_equal(data_import(s.src, s.out, "mine", NULL, &named, &err), 0);
    json_decref(named);
    assert_int_equal(data_import(s.src, s.out, "mine", NULL, &named, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(data_import(s.src, s.out, "../up", NULL, &named, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(db_count_entries(s.out), 2);
    json_decref(first);
    json_decref(again);
    scratch_free(&s);
}

/* data_link makes an alias's link whole or not at all, and data_remove takes the link, never what
 * it names. */
static void test_link(void **state)
{
    struct scratch s = scratch_new();
    write_many(s.src, 3);
    struct eng_error err = {0};
    json_t *report = NULL;
    assert_int_equal(data_import(s.src, s.out, "mine", NULL, &report, &err), 0);
    json_decref(report);
    char path[2048], target[64];
    assert_int_equal(data_link(s.out, "alias", "mine", &err), 0);
    snprintf(path, sizeof path, "%s/alias", s.out);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    ssize_t n = readlink(path, target, sizeof target - 1);
    assert_int_equal(n, 4);
    target[n] = '\0';
    assert_string_equal(target, "mine");          /* the bare name: the same folder */
    assert_int_equal(db_count_entries(s.out), 2); /* no temporary name left */
    /* Taken names are refused, by data_link and data_import alike; so are names with a path. */
    assert_int_equal(data_link(s.out, "alias", "mine", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(data_link(s.out, "mine", "alias", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(data_import(s.src, s.out, "alias", NULL, &report, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(data_link(s.out, "up", "../mine", &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(data_link(s.out, "../up", "mine", &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(db_count_entries(s.out), 2);
    /* Removing the alias takes the link alone. */
    assert_int_equal(data_remove(s.out, "alias", &err), 0);
    assert_int_not_equal(lstat(path, &st), 0);
    snprintf(path, sizeof path, "%s/mine/dataset.json", s.out);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(data_remove(s.out, "alias", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    /* A link to nothing is still a name taken, and removable. */
    assert_int_equal(data_link(s.out, "gone", "nothing", &err), 0);
    assert_int_equal(data_import(s.src, s.out, "gone", NULL, &report, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(data_remove(s.out, "gone", &err), 0);
    assert_int_equal(db_count_entries(s.out), 1);
    scratch_free(&s);
}

static void test_cleanup(void **state)
{
    struct scratch s = scratch_new();
    char dead[1024], alive[1024], path[2048], host[HOST_NAME_MAX + 1] = "";
    assert_int_equal(gethostname(host, sizeof host), 0);
    /* No process has the largest pid; this one is running: in names with this machine's name and
     * without one (a build before hosts). */
    for (int named = 0; named < 2; named++) {
        snprintf(dead, sizeof dead, "%s/.import-%s%s2147483647-abcdef", s.out, named ? host : "",
                 named ? ":" : "");
        snprintf(alive, sizeof alive, "%s/.import-%s%s%ld-abcdef", s.out, named ? host : "",
                 named ? ":" : "", (long)getpid());
        mkdir(dead, 0700);
        mkdir(alive, 0700);
        snprintf(path, sizeof path, "%s/pixels.tmp", dead);
        db_write_file(path, "x", 1);
    }
    /* Another machine's: whether its pid runs there cannot be told here, so it stays. */
    char elsewhere[1024];
    snprintf(elsewhere, sizeof elsewhere, "%s/.import-%s.elsewhere:2147483647-abcdef", s.out, host);
    mkdir(elsewhere, 0700);
    struct eng_error err = {0};
    assert_int_equal(data_import_cleanup(s.out, &err), 0);
    assert_int_equal(db_count_entries(s.out), 3);
    assert_int_equal(access(alive, F_OK), 0);
    assert_int_equal(access(elsewhere, F_OK), 0);
    scratch_free(&s);
}

static void test_damaged_cache(void **state)
{
    struct scratch s = scratch_new();
    write_many(s.src, 3);
    json_t *report = import_ok(s.src, s.out, NULL);
    char dir[1024], images[2048];
    snprintf(dir, sizeof dir, "%s/%s", s.out, json_string_value(json_object_get(report, "id")));
    snprintf(images, sizeof images, "%s/images.bin", dir);
    assert_int_equal(truncate(images, 100), 0);
    struct eng_error err = {0};
    assert_null(dataset_open(dir, &err));
    assert_int_equal(err.code, ENG_UNDECODABLE);
    assert_null(dataset_open(s.src, &err));
    assert_int_equal(err.code, ENG_NOT_FOUND);
    json_decref(report);
    scratch_free(&s);
}

/* ---- The reduced CIFAR-10 ------------------------------------------------------------------- */

static void test_shared_cifar10(void **state)
{
    char archive[4096];
    snprintf(archive, sizeof archive, "%s/cifar10-jpeg-20k.tar", shared_data ? shared_data : "");
    if (!shared_data || access(archive, R_OK) != 0) {
        print_message("skipped: %s is missing (the reduced CIFAR-10 of ../shared/data)\n", archive);
        skip();
    }
    struct scratch s = scratch_new();
    const struct data_import_options o = {.threads = 2};
    json_t *report = import_ok(archive, s.out, &o);
    struct dataset *ds = open_imported(s.out, report);
    assert_int_equal(dataset_class_count(ds), 10);
    assert_int_equal(dataset_count(ds), 20000);
    for (int k = 0; k < 2; k++) {
        const struct data_split *split = split_named(ds, k ? "train" : "test", 10000);
        size_t per_class[10] = {0};
        for (size_t i = 0; i < split->count; i++)
            per_class[dataset_label(ds, split->indices[i])]++;
        for (int c = 0; c < 10; c++)
            assert_int_equal(per_class[c], 1000);
    }
    int w, h;
    dataset_uniform_size(ds, &w, &h);
    assert_int_equal(w, 32);
    assert_int_equal(h, 32);
    dataset_close(ds);
    json_decref(report);
    scratch_free(&s);
}

int main(int argc, char **argv)
{
    shared_data = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_folders),
        cmocka_unit_test(test_same_content_same_hash),
        cmocka_unit_test(test_classes_without_splits),
        cmocka_unit_test(test_mixed_sizes_resized),
        cmocka_unit_test(test_resize_refused),
        cmocka_unit_test(test_cifar10),
        cmocka_unit_test(test_cifar100),
        cmocka_unit_test(test_cifar_refused),
        cmocka_unit_test(test_idx),
        cmocka_unit_test(test_idx_refused),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_manifest_numbers),
        cmocka_unit_test(test_manifest_refused),
        cmocka_unit_test(test_hostile_archives),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_folder_links_refused),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_progress_and_existing),
        cmocka_unit_test(test_link),
        cmocka_unit_test(test_cleanup),
        cmocka_unit_test(test_damaged_cache),
        cmocka_unit_test(test_shared_cifar10),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
