/* The data area: datasets imported once into a cache of decoded images, splits made from a seed,
 * and the loader that turns (dataset, split, policy, seed, epoch) into batches (data/loader.h).
 *
 *   source.c    what an import reads: a folder, or a tar, tar.gz or zip archive through
 *               libarchive (which reads them safely and streams: we write no decompressor);
 *               entry names checked (no '..', no absolute path, no link), sizes and counts capped
 *   plan.c      the first pass over the source: which format it is, which files count, their
 *               splits and classes (class folders here; manifest.c, cifar.c, idx.c the others)
 *   import.c    the second pass: every image decoded once (on threads) into temporary files
 *   write.c     the cache written from them in canonical order, hashed, renamed into place
 *   cache.c     the cache's files: dataset_open and the accessors
 *   split.c     split files, and deriving a split from another with a seed
 *   loader.c    batches on loader threads (data/loader.h)
 *   util.c      what they share: names, UTF-8, removing a folder
 *
 * The cache is one folder, named by its id: dataset.json (name, classes, splits, the content
 * hash, the import report), index.bin (one 64-byte record per image: label, source split, the
 * pixels' offset and size, the original size, the source file's name), images.bin (uint8 HWC
 * pixels, each record 64-byte aligned, so a mapped image is ready for vector code),
 * splits/<name>.split (the sorted image indices of a split), and when kept originals.bin (the
 * encoded source files of resized images) and targets.bin (a manifest's detection targets).
 * Binary files are little-endian with a 64-byte header (magic, version, count). Nothing outside
 * the folder refers into it, so a cache can be moved or copied whole.
 *
 * Invariants. Importing never writes outside its temporary folder (a sibling of the final one,
 * ".import-<host>:<pid>-XXXXXX"), which is renamed to the final name only when complete, so a
 * failure, a cancellation or a kill leaves no half-written dataset (data_import_cleanup removes
 * what a kill left behind). Nothing is extracted from an archive: entries are read into bounded
 * memory and decoded. The same content gives the same cache: images are ordered by their name in
 * the source (after the optional top-level folder), so a tar and a zip of one tree give the same
 * bytes and the same hash. An open dataset is immutable but for the splits it gains, and every
 * accessor is thread-safe. Random choices (splits, the loader's order and policy draws) are Philox
 * streams of the caller's seed (core/rng.h), so the same seed always gives the same result. */
#ifndef AUGSERVE_ENGINE_DATA_DATASET_H
#define AUGSERVE_ENGINE_DATA_DATASET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/img.h"
#include "image/codec.h"

/* The defaults of struct data_import_options' limits (a field of 0 takes them). */
#define DATA_DEFAULT_IMAGE_SIZE      256
#define DATA_DEFAULT_MAX_BYTES       (16ull << 30) /* the source's files, expanded */
#define DATA_DEFAULT_MAX_RATIO       100.0
#define DATA_DEFAULT_MAX_FILES       2000000u
#define DATA_DEFAULT_MAX_CLASSES     100000u
#define DATA_DEFAULT_MAX_FILE_BYTES  (256ull << 20)
#define DATA_DEFAULT_MAX_CACHE_BYTES (64ull << 30)
/* Under this many expanded bytes the ratio is not checked: tar headers and padding compress so
 * well that a small honest archive can expand far past any useful ratio. */
#define DATA_RATIO_FLOOR (16ull << 20)
/* A source may name this many splits at most (split folders, manifest "split" values). */
#define DATA_MAX_SPLITS 1000
/* The import report lists this many skipped files at most (it counts them all). */
#define DATA_REPORT_MAX_SKIPPED 1000

/* How to import. Zeroed, every limit takes its default, images keep their colours as stored
 * (IMG_COLOR_KEEP) and one thread decodes. */
struct data_import_options {
    const char *name;         /* stored in dataset.json; NULL: the source's file name */
    int image_size;           /* images of mixed sizes get their shorter side resized to this */
    uint64_t max_bytes;       /* the source's files together, as read (decompressed) */
    double max_ratio;         /* an archive's expanded bytes over its own size */
    uint64_t max_files;       /* files in the source, and images (a CIFAR or idx file holds many) */
    uint32_t max_classes;     /* classes */
    uint64_t max_file_bytes;  /* one file: past it a file is skipped (listed in the report) */
    uint64_t max_cache_bytes; /* what the import stores: pixels and (while it runs) files */
    struct img_decode_options decode; /* each image's limits and colour handling */
    int threads;                      /* decoding threads (0: 1) */
    /* Called as the import moves on (may be NULL), from the importing thread: fraction in
     * [0, 1], phase "listing", "decoding" or "writing". */
    void (*progress)(void *ctx, double fraction, const char *phase);
    void *progress_ctx;
};

/* Imports the dataset at source (a folder, or a tar, tar.gz or zip file) into parent/<id>, which
 * must not exist; id NULL names it by the first 16 hex digits of the content hash, and then an
 * existing folder of that name holding the same hash is this dataset already: the call succeeds
 * with "existing": true in the report and writes nothing. The formats (README: Datasets):
 *   class folders   <class>/<file> or <split>/<class>/<file>, optionally all under one top-level
 *                   folder; classes in byte order of their names, as torchvision's ImageFolder
 *   CIFAR-10, -100  data_batch_N.bin and test_batch.bin (3073-byte records), train.bin and
 *                   test.bin with fine_label_names.txt (3074-byte records, the fine label kept);
 *                   class names from batches.meta.txt or fine_label_names.txt when present
 *   MNIST idx       <prefix>-images-idx3-ubyte with <prefix>-labels-idx1-ubyte, each gzipped or
 *                   not; prefix "t10k" is the split "test"
 *   JSON Lines      one *.jsonl file at the root: {"file", "label", "split", "targets"} per line;
 *                   "file" relative to the manifest; "label" a name, a number (classes are then
 *                   0..max) or absent (unlabeled); "split" absent puts the image in "all";
 *                   "targets" (an object, /v1/augment's format) is kept as its JSON text
 * Splits come from the source's split folders or fields ("all" when it has none). Files whose
 * names start with '.' and __MACOSX folders are ignored; other files that are no image, or whose
 * image does not decode, are skipped and listed. Errors, with nothing left behind:
 *   ENG_INVALID      a name with '..', an absolute name, a link, a duplicate name, a mixed
 *                    layout, a bad manifest line (naming its number), a CIFAR file that is not
 *                    whole records or has a label out of range, an idx file whose dimensions
 *                    disagree with its size, no usable image at all
 *   ENG_UNSUPPORTED  a source that is no folder, tar, tar.gz or zip; a device or FIFO entry; an
 *                    encrypted entry; an idx type other than unsigned bytes
 *   ENG_TOO_LARGE    past max_files, max_bytes, max_ratio, max_classes or max_cache_bytes
 *   ENG_CONFLICT     parent/id exists; ENG_CANCELLED when core/cancel.h's check says so (it is
 *                    polled between files); ENG_NOT_FOUND, ENG_NO_MEMORY, ENG_INTERNAL (I/O)
 * On success *report (if report is not NULL) is the import report, also saved in dataset.json:
 * {"id", "name", "hash", "format", "source", "images", "classes", "splits": {name: count},
 * "size": [w, h] | null, "image_size": n | null, "originals", "targets", "skipped":
 * [{"file", "reason"}], "skipped_count", "existing"}; the caller owns it. */
int data_import(const char *source, const char *parent, const char *id,
                const struct data_import_options *options, json_t **report, struct eng_error *err);

/* Removes the temporary folders that imports killed before they finished left in parent (those
 * of processes of this machine that no longer run; another machine's, parent being shared, are
 * left to its own processes' cleanup, since whether its pid runs cannot be told from here). Call
 * it at startup. 0, or -1 with err. */
int data_import_cleanup(const char *parent, struct eng_error *err);

/* Removes the dataset parent/<id>: renamed first to a temporary name of the imports' (one rename:
 * the id is gone at once, and what a kill mid-removal leaves is data_import_cleanup's), then
 * removed; an alias (data_link) is unlinked, and what it names stays. ENG_NOT_FOUND when there is
 * no such folder or link, ENG_INTERNAL (I/O). */
int data_remove(const char *parent, const char *id, struct eng_error *err);

/* Makes parent/<id>, which must not exist, a symbolic link to target, a sibling's bare name (an
 * alias: the same folder under a second id). The link is made under a temporary name of the
 * imports' and linked into place, so a kill leaves either no id or the whole link. ENG_INVALID
 * for a name data_import would refuse as an id, ENG_CONFLICT when parent/<id> exists,
 * ENG_INTERNAL (I/O). */
int data_link(const char *parent, const char *id, const char *target, struct eng_error *err);

/* ---- An imported dataset -------------------------------------------------------------------- */

struct dataset;

/* Maps the cache in folder dir. ENG_NOT_FOUND when it holds no dataset, ENG_UNDECODABLE when its
 * files are damaged or disagree (every offset is checked here, so the accessors need not). */
struct dataset *dataset_open(const char *dir, struct eng_error *err);
void dataset_close(struct dataset *ds);

const char *dataset_name(const struct dataset *ds);
const char *dataset_hash(const struct dataset *ds); /* 64 hex digits */
size_t dataset_count(const struct dataset *ds);
size_t dataset_class_count(const struct dataset *ds);
const char *dataset_class_name(const struct dataset *ds, size_t cls);
/* The size every image has, when all have one (0, 0 when they differ). */
void dataset_uniform_size(const struct dataset *ds, int *width, int *height);

/* Image i (< dataset_count) as a view into the mapped cache: view->data must be neither written
 * nor freed, and lives as long as ds. */
void dataset_image(const struct dataset *ds, size_t i, struct img *view);
/* Image i as a new image (img_free). */
struct img *dataset_image_copy(const struct dataset *ds, size_t i, struct eng_error *err);
/* Image i's class, or -1 when it has none. */
int dataset_label(const struct dataset *ds, size_t i);
/* Image i's name in the source: "train/cat/0001.jpg", "data_batch_1.bin#42". */
const char *dataset_source(const struct dataset *ds, size_t i);
/* Image i's size as decoded, before any resize. */
void dataset_original_size(const struct dataset *ds, size_t i, int *width, int *height);
/* Image i's source file as it was (only kept for resized images): 0 with *data and *size, or -1
 * when none was kept. */
int dataset_original(const struct dataset *ds, size_t i, const void **data, size_t *size);
/* Image i's detection targets as JSON text (a manifest's "targets"), or NULL. */
const char *dataset_targets(const struct dataset *ds, size_t i);

/* What GET /v1/datasets/{id} shows: dataset.json's fields and, per split, its count, whether it
 * is labeled and its count per class. NULL when memory runs out. */
json_t *dataset_describe(const struct dataset *ds);

/* ---- Splits --------------------------------------------------------------------------------- */

/* A named list of images; immutable once made, and alive as long as its dataset. */
struct data_split {
    const char *name;
    const uint32_t *indices; /* ascending image indices */
    const int32_t *labels;   /* the split's own label per index (pseudo-labels), or NULL */
    size_t count;
    int labeled; /* 0: an unlabeled part; the loader gives its images label -1 */
};

/* Splits in name order; i < dataset_split_count. */
size_t dataset_split_count(const struct dataset *ds);
const struct data_split *dataset_split_at(const struct dataset *ds, size_t i);
/* The split called name, or NULL. */
const struct data_split *dataset_split(const struct dataset *ds, const char *name);
/* Adds to ds the splits of its folder it does not have yet: at open, every one; later, those
 * another process sharing the folder saved since (a split derived through another server). A
 * split file is linked into place whole, so none is seen half-written. 0, or -1 with err
 * (ENG_UNDECODABLE for a damaged split file). */
int dataset_split_refresh(struct dataset *ds, struct eng_error *err);
/* Image position k of split s's label: its own, the dataset's, or -1 for an unlabeled split. */
int data_split_label(const struct dataset *ds, const struct data_split *s, size_t k);

/* Split names: 1-64 letters, digits, '_', '-' or '.', not starting with '.'. 0, or -1 with err
 * (ENG_INVALID) naming what is wrong. */
int data_split_name_check(const char *name, struct eng_error *err);

/* Saves a split of the given images (labels: their own labels, or NULL for the dataset's) in the
 * cache (written to a temporary file, then linked into place) and adds it to ds. The indices
 * need not be sorted. ENG_CONFLICT when the name is taken, ENG_INVALID for a bad name, an index
 * past the dataset or one given twice. */
int dataset_split_add(struct dataset *ds, const char *name, const uint32_t *indices,
                      const int32_t *labels, size_t count, int labeled, struct eng_error *err);

enum data_split_mode {
    DATA_SPLIT_FRACTION,  /* round(fraction x n) images */
    DATA_SPLIT_COUNT,     /* count images */
    DATA_SPLIT_PER_CLASS, /* per_class images of each class; the rest is unlabeled */
};

/* A split derived from another: `name` gets the chosen images, `rest` (NULL: "<name>-rest") the
 * others, each keeping its own labels if `from` has them. Chosen at random from seed: positions
 * of `from` are shuffled by Fisher-Yates (data/loader.h's) on Philox streams, the first k taken.
 * Non-stratified, the whole of `from` is one list on stream rng_init(seed, 0, 0, 0). Stratified
 * (always for per_class), the positions of class c form list c and those without a class list C
 * (the class count); list s is shuffled on stream rng_init(seed, 0, s + 1, 0), and k is shared
 * out in proportion to the lists' sizes, the remainders going one each to the largest fractional
 * parts (ties: the lower list). per_class takes that many of each class present in `from`
 * (ENG_INVALID when one has fewer), and its rest is an unlabeled split holding the other images,
 * those without a class included. */
struct data_split_spec {
    const char *name, *rest, *from;
    enum data_split_mode mode;
    double fraction;    /* DATA_SPLIT_FRACTION: in [0, 1] */
    uint64_t count;     /* DATA_SPLIT_COUNT: at most from's size */
    uint32_t per_class; /* DATA_SPLIT_PER_CLASS: >= 1 */
    int stratified;
    uint64_t seed;
};

/* Makes and saves the two splits of spec. ENG_NOT_FOUND for an unknown `from`, ENG_CONFLICT when
 * a name is taken, ENG_INVALID for a bad spec. */
int dataset_split_derive(struct dataset *ds, const struct data_split_spec *spec,
                         struct eng_error *err);

#endif
