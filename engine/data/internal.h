/* What the files of the data area share: the source an import reads (source.c), the plan its
 * first pass makes (plan.c, manifest.c, cifar.c, idx.c), the cache's binary records (cache.c) and
 * the small helpers they all use. Private to engine/data (AUGENGINE_DATA_INTERNAL). */
#ifndef AUGENGINE_DATA_INTERNAL_H
#define AUGENGINE_DATA_INTERNAL_H

#ifndef AUGENGINE_DATA_INTERNAL
#error "data/internal.h is private to engine/data"
#endif

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "data/dataset.h"

/* ---- The source (source.c) ------------------------------------------------------------------ */

/* A folder or an archive, read in passes: source_next walks its regular files (directories are
 * checked and passed over), source_read reads the current one. Every name is checked as it is
 * met: relative, no '..' component, no backslash, valid UTF-8; links, devices and FIFOs are
 * refused. Each pass counts its files against max_files and the bytes it declares or reads against
 * max_bytes and, for an archive, max_ratio times the archive's size. The cancellation check is
 * polled at every file and every few megabytes read. */
struct source;

struct source_entry {
    const char *name; /* normalised: "a/b.jpg" (no "./", no empty components); valid until the
                         next call */
    int64_t size;     /* as the header declares it; -1 when it does not */
};

/* The longest name a source may hold, in bytes. */
#define SOURCE_NAME_MAX 4096

/* Checks a name from a source (or a manifest) and writes its normal form to out (SOURCE_NAME_MAX
 * + 1 bytes): "." and empty components dropped; ENG_INVALID for an absolute name, a ".."
 * component, a backslash or a name that is not UTF-8. An empty result is the root itself. */
int source_normalise(const char *raw, char *out, struct eng_error *err);

/* Whether a name is no dataset's content: a component starting with '.' (".DS_Store", "._x.jpg",
 * ".git/") or one starting with __MACOSX (the folders of archives made on a Mac). A folder source
 * never walks into such folders. */
int source_ignored(const char *path);

/* limits: the import's options with their defaults filled in. */
struct source *source_open(const char *path, const struct data_import_options *limits,
                           struct eng_error *err);
void source_close(struct source *s);
/* "folder", "tar", "tar.gz" or "zip". */
const char *source_kind(const struct source *s);
/* How far the pass has gone through the source, in [0, 1]: for an archive the share of its bytes
 * read, for a folder of its files. */
double source_position(struct source *s);
/* Starts a pass (the first included). 0, or -1 with err. */
int source_rewind(struct source *s, struct eng_error *err);
/* The next regular file: 1 with *e set, 0 at the end, -1 with err (a bad entry names its path). */
int source_next(struct source *s, struct source_entry *e, struct eng_error *err);
/* Up to n bytes of the current file into buf: 0 with *got (0 at its end), or -1 with err. */
int source_read(struct source *s, void *buf, size_t n, size_t *got, struct eng_error *err);
/* The current file whole (malloc'd, one spare zero byte after it) when it has at most cap
 * bytes: 0, 1 when it has more (nothing returned), or -1 with err. */
int source_read_all(struct source *s, uint64_t cap, void **data, size_t *size,
                    struct eng_error *err);

/* The current file's bytes, gunzipped when they are gzip (libarchive's raw format and gzip
 * filter over source_read), for the idx and CIFAR files and the small files of the first pass;
 * what it gives past the file's declared size counts against max_bytes and the ratio. */
struct source_stream;
struct source_stream *source_stream_open(struct source *s, struct eng_error *err);
/* Exactly n bytes: 0, 1 when the stream ends first (*got says how many came), -1 with err. */
int source_stream_read(struct source_stream *z, void *buf, size_t n, size_t *got,
                       struct eng_error *err);
void source_stream_close(struct source_stream *z);

/* ---- The plan (plan.c) ---------------------------------------------------------------------- */

enum plan_format { FORMAT_FOLDERS, FORMAT_MANIFEST, FORMAT_CIFAR10, FORMAT_CIFAR100, FORMAT_IDX };

/* One file the second pass reads. */
struct plan_file {
    char *path;      /* its name in the source */
    char *name;      /* its name in the dataset (the path without the top-level folder; for binary
                        formats the file's base name, without ".gz") */
    int split;       /* index into plan.splits */
    int32_t label;   /* class folders and manifests: index into plan.classes, -1 none */
    char *targets;   /* a manifest line's targets, compact JSON, or NULL */
    uint8_t *labels; /* idx: the labels file's bytes (one per image), malloc'd */
    size_t label_count; /* idx: how many */
};

struct plan {
    enum plan_format format;
    char **classes; /* in label order */
    size_t class_count;
    char **splits; /* in name order */
    size_t split_count;
    struct plan_file *files; /* in path order (plan_find) */
    size_t file_count;
    json_t *skipped; /* [{"file", "reason"}], the first DATA_REPORT_MAX_SKIPPED */
    uint64_t skipped_count;
};

/* The first pass: walks the source once, tells its format, and plans the files to read. Reads the
 * small files it needs on the way (a manifest, labels, class names), and calls tick (may be NULL)
 * with source_position after each file. 0, or -1 with err. */
int plan_make(struct source *s, const struct data_import_options *o,
              void (*tick)(void *ctx, double position), void *ctx, struct plan *p,
              struct eng_error *err);
void plan_free(struct plan *p);
/* The planned file of that source path, or NULL. */
struct plan_file *plan_find(const struct plan *p, const char *path);
/* Records a skipped file and why. 0, or -1 when memory runs out. */
int plan_skip(struct plan *p, const char *file, const char *reason, struct eng_error *err);
/* "folders", "manifest", "cifar10", "cifar100", "idx". */
const char *plan_format_name(enum plan_format f);

/* The manifest format's plan (manifest.c): lines of text (size bytes, the manifest at
 * manifest_path, whose folder the files are relative to), against the source's regular files
 * (names sorted, count n). Fills p's classes, splits and files. */
int manifest_plan(const char *text, size_t size, const char *manifest_path, char *const *names,
                  size_t n, const struct data_import_options *o, struct plan *p,
                  struct eng_error *err);

/* ---- Record formats (cifar.c, idx.c) ------------------------------------------------------- */

/* Receives the images a binary file holds, in order. */
typedef int (*binary_image_fn)(void *ctx, uint32_t record, const struct img *im, int32_t label,
                               struct eng_error *err);

/* Bytes of one CIFAR record for the format. */
size_t cifar_record_size(enum plan_format f);
/* Reads the current source file, CIFAR records (planned as f), handing each image over. */
int cifar_read(struct source *s, const struct plan_file *f, enum plan_format format,
               binary_image_fn fn, void *ctx, struct eng_error *err);
/* Checks an idx labels file (name, gunzipped: size bytes) and copies its labels to f->labels. */
int idx_parse_labels(const char *name, const unsigned char *data, size_t size, struct plan_file *f,
                     uint64_t max_images, struct eng_error *err);
/* Reads the current source file, an idx images file, handing each image over with its label. */
int idx_read_images(struct source *s, const struct plan_file *f, binary_image_fn fn, void *ctx,
                    struct eng_error *err);

/* ---- An import in progress (import.c, write.c) ---------------------------------------------- */

/* One image decoded into the temporary files. */
struct import_item {
    const char *file; /* its plan file's name in the dataset */
    uint32_t record;  /* binary formats: its record in the file (named "file#record") */
    int32_t label;
    uint16_t split;
    uint8_t channels;
    uint8_t binary;
    uint32_t width, height;           /* as stored in pixels.tmp */
    uint32_t orig_width, orig_height; /* as decoded */
    uint64_t offset;                  /* in pixels.tmp */
    uint64_t original_offset;         /* in originals.tmp */
    uint32_t original_size;           /* 0: none */
    const char *targets;              /* its plan file's targets, or NULL */
};

struct import {
    struct data_import_options o; /* defaults filled in */
    struct plan plan;
    struct source *src;
    char *tmp; /* the temporary folder */
    int pixels_fd, originals_fd;
    _Atomic uint64_t pixels_end, originals_end;
    _Atomic uint64_t stored;     /* bytes of both, against max_cache_bytes */
    _Atomic uint64_t first_size; /* the first image's width << 32 | height; 0: none yet */
    _Atomic int mixed;           /* images differ in size: all get resized */
    struct import_item *items;
    size_t count, cap;
    double done, work; /* progress through the second pass, in images */
    double reported;   /* the last fraction given to the progress callback */
    const char *phase; /* and its phase */
};

#define IMPORT_PIXELS    "pixels.tmp"
#define IMPORT_ORIGINALS "originals.tmp"

/* The size image `it` has in the cache: its own when all images share one, else its shorter side
 * resized to image_size as torchvision's Resize(int) does. 0, or -1 with err (ENG_TOO_LARGE). */
int import_target_size(const struct import *im, uint32_t width, uint32_t height, int mixed,
                       uint32_t *out_width, uint32_t *out_height, struct eng_error *err);
/* Tells the progress callback, when the fraction moved on or the phase changed. */
void import_progress(struct import *im, double fraction, const char *phase);

/* Writes the cache into im->tmp from the temporary files, in canonical order, with its hash and
 * the report (write.c); the report (dataset.json's content) goes to *report. */
int import_write(struct import *im, const char *id, json_t **report, struct eng_error *err);

/* ---- The cache's files (cache.c) ------------------------------------------------------------ */

#define CACHE_VERSION   1
#define CACHE_ALIGN     64
#define CACHE_JSON      "dataset.json"
#define CACHE_INDEX     "index.bin"
#define CACHE_IMAGES    "images.bin"
#define CACHE_ORIGINALS "originals.bin"
#define CACHE_TARGETS   "targets.bin"
#define CACHE_SPLITS    "splits"

/* The header of every binary file: "AUGDS" and the file's kind, the version, a count. */
struct cache_header {
    char magic[8]; /* "AUGDSIDX", "AUGDSIMG", "AUGDSORG", "AUGDSTGT", "AUGDSSPL" */
    uint32_t version;
    uint32_t flags; /* splits: CACHE_SPLIT_LABELED, CACHE_SPLIT_OWN_LABELS */
    uint64_t count; /* index: records; splits: indices; others: bytes after the header */
    uint64_t extra; /* index: the byte offset of the names area */
    uint8_t reserved[32];
};
#define CACHE_SPLIT_LABELED    1u
#define CACHE_SPLIT_OWN_LABELS 2u

/* One image of index.bin. Names are stored after the records, each followed by a zero byte. */
struct cache_record {
    uint64_t offset; /* of its pixels in images.bin: height rows of width x channels bytes */
    uint32_t width, height;
    uint32_t orig_width, orig_height;
    int32_t label;
    uint16_t split; /* its source split: index into dataset.json's "source_splits" */
    uint8_t channels;
    uint8_t reserved;
    uint32_t name_offset, name_size; /* in the names area */
    uint64_t original_offset;        /* in originals.bin */
    uint32_t original_size;          /* 0: none kept */
    uint32_t targets_size;           /* 0: none */
    uint64_t targets_offset;         /* in targets.bin: JSON text and a zero byte */
};

_Static_assert(sizeof(struct cache_header) == 64, "cache headers are 64 bytes");
_Static_assert(sizeof(struct cache_record) == 64, "index records are 64 bytes");

/* A header of that magic for count. */
struct cache_header cache_header_make(const char *magic, uint32_t flags, uint64_t count,
                                      uint64_t extra);
/* Bytes a record of n bytes takes with its padding. */
static inline uint64_t cache_aligned(uint64_t n)
{
    return (n + CACHE_ALIGN - 1) / CACHE_ALIGN * CACHE_ALIGN;
}

/* Writes parts (n pieces of sizes bytes) to dir/name through a temporary file, fsynced, then
 * renamed into place (linked instead when exclusive: ENG_CONFLICT if the name exists). 0, or -1
 * with err. */
int cache_write_file(const char *dir, const char *name, const void *const *parts,
                     const size_t *sizes, size_t n, int exclusive, struct eng_error *err);

/* A read-only mapping of a cache file. */
struct cache_map {
    const uint8_t *data;
    size_t size;
};

/* An open dataset (dataset.h): its mapped files and its splits. */
struct dataset {
    char *dir;
    json_t *doc; /* dataset.json */
    const char *name, *hash;
    const char **classes; /* borrowed from doc */
    size_t class_count, source_split_count;
    struct cache_map index, images, originals, targets;
    const struct cache_record *records;
    const char *names;
    size_t count;
    int uniform_width, uniform_height;
    pthread_mutex_t lock;       /* guards splits, which dataset_split_add may grow */
    struct data_split **splits; /* sorted by name; each allocated once, never moved */
    size_t split_count, split_cap;
};

/* Frees a split made by split.c. */
void split_free(struct data_split *s);

/* Writes split `name` into the cache folder dir (its splits/ folder, made if missing), as
 * cache_write_file does. indices ascending; labels NULL or one per index. */
int split_write(const char *dir, const char *name, const uint32_t *indices, const int32_t *labels,
                size_t count, int labeled, int exclusive, struct eng_error *err);

/* ---- Helpers -------------------------------------------------------------------------------- */

/* asprintf that sets err on failure: the new string, or NULL. */
char *data_printf(struct eng_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Room for one more item in items (count used of *cap, each size bytes), doubling: items or its
 * reallocation (*cap updated), or NULL with err when memory runs out (items untouched). */
void *data_grow(void *items, size_t *cap, size_t count, size_t size, struct eng_error *err);
/* strcmp for qsort over an array of char *. */
int data_compare_names(const void *a, const void *b);
/* Names of files the cache makes (splits, ids): 1-64 letters, digits, '_', '-' or '.', not
 * starting with '.'. 0, or -1 with err (ENG_INVALID) saying what the name is. */
int data_name_check(const char *what, const char *name, struct eng_error *err);
/* Whether name (size bytes) is valid UTF-8 without NUL. */
int data_utf8_valid(const char *name, size_t size);
/* Fisher-Yates from the last item down: for i = n - 1 .. 1, j = rng_below(r, i + 1), swap items
 * i and j. The splits' and the loader's documented shuffle. */
struct rng;
void data_shuffle(uint32_t *items, size_t n, struct rng *r);
/* Removes dir and everything below it, following no link. */
void data_remove_tree(const char *dir);
/* fsyncs folder dir, so the names made or renamed in it last: 0, or -1 with err (ENG_INTERNAL). */
int data_sync_folder(const char *dir, struct eng_error *err);

#endif
