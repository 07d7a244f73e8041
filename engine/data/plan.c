/* The first pass of an import: one walk over the source that lists its files, reads the few small
 * ones that describe the rest (a manifest, idx labels, CIFAR class names), tells the format and
 * plans what the second pass reads: each file's name in the dataset, its split and its class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/internal.h"

/* Manifests, labels files and lists of class names are read whole in the first pass, together
 * up to this size. */
#define META_MAX_BYTES (256ull << 20)

/* A small file read in the first pass. */
struct meta {
    char *name;
    unsigned char *data;
    size_t size;
};

/* A regular file of the source. */
struct listed {
    char *name;
    int64_t size;
};

/* What the first pass found. */
struct listing {
    struct listed *files; /* every regular file not ignored, sorted by name */
    char **names;         /* their names, in the same order */
    size_t count, cap;
    struct meta *metas;
    size_t meta_count;
    uint64_t meta_bytes; /* the metas' sizes together, at most META_MAX_BYTES */
};

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static size_t depth_of(const char *path)
{
    size_t d = 1;
    for (; *path; path++)
        d += *path == '/';
    return d;
}

/* Whether the first pass reads the file whole: it may describe the others (a manifest is at the
 * root or in the one top-level folder). */
static int is_meta(const char *path)
{
    const char *base = base_name(path);
    return (ends_with(base, ".jsonl") && depth_of(path) <= 2) ||
           strcmp(base, "batches.meta.txt") == 0 || strcmp(base, "fine_label_names.txt") == 0 ||
           strstr(base, "idx1-ubyte");
}

static int is_image_name(const char *path)
{
    static const char *const extensions[] = {".jpg", ".jpeg", ".jfif", ".png",  ".webp", ".gif",
                                             ".tif", ".tiff", ".bmp",  ".heic", ".heif", ".avif"};
    for (size_t i = 0; i < sizeof extensions / sizeof *extensions; i++)
        if (ends_with(path, extensions[i])) return 1;
    return 0;
}

static int list_add(struct listing *l, const struct source_entry *e, struct eng_error *err)
{
    struct listed *grown = data_grow(l->files, &l->cap, l->count, sizeof *grown, err);
    if (!grown) return -1;
    l->files = grown;
    if (!(l->files[l->count].name = strdup(e->name))) return eng_no_memory(err);
    l->files[l->count++].size = e->size;
    return 0;
}

static int meta_read(struct source *s, struct listing *l, const char *name, struct eng_error *err)
{
    struct meta *grown = realloc(l->metas, (l->meta_count + 1) * sizeof *grown);
    if (!grown) return eng_no_memory(err);
    l->metas = grown;
    struct meta *m = &l->metas[l->meta_count];
    memset(m, 0, sizeof *m);
    const uint64_t budget = META_MAX_BYTES - l->meta_bytes;
    size_t cap = 1 << 16, got;
    struct source_stream *z = source_stream_open(s, err);
    int rc = z ? 0 : -1;
    while (rc == 0) {
        if (cap > budget) cap = (size_t)budget;
        unsigned char *more = realloc(m->data, cap + 1);
        if (!more) {
            rc = eng_no_memory(err);
            break;
        }
        m->data = more;
        rc = source_stream_read(z, m->data + m->size, cap - m->size, &got, err);
        m->size += got;
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc == 0 && m->size >= budget)
            rc = eng_fail(err, ENG_TOO_LARGE,
                          "%s: the manifests, labels and class names pass %llu bytes", name,
                          (unsigned long long)META_MAX_BYTES);
        cap *= 2;
    }
    source_stream_close(z);
    if (rc == 0 && !(m->name = strdup(name))) rc = eng_no_memory(err);
    if (rc) {
        free(m->data);
        return -1;
    }
    m->data[m->size] = 0;
    l->meta_bytes += m->size;
    l->meta_count++;
    return 0;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->files[i].name);
    for (size_t i = 0; i < l->meta_count; i++) {
        free(l->metas[i].name);
        free(l->metas[i].data);
    }
    free(l->files);
    free(l->names);
    free(l->metas);
}

static int compare_listed(const void *a, const void *b)
{
    return strcmp(((const struct listed *)a)->name, ((const struct listed *)b)->name);
}

/* Walks the source once: its files, sorted, and the small ones read. */
static int list_source(struct source *s, void (*tick)(void *ctx, double position), void *ctx,
                       struct listing *l, struct eng_error *err)
{
    if (source_rewind(s, err)) return -1;
    struct source_entry e;
    int r;
    while ((r = source_next(s, &e, err)) == 1) {
        if (source_ignored(e.name)) continue;
        if (list_add(l, &e, err)) return -1;
        if (is_meta(e.name) && meta_read(s, l, e.name, err)) return -1;
        if (tick) tick(ctx, source_position(s));
    }
    if (r < 0) return -1;
    if (l->count > 1) qsort(l->files, l->count, sizeof *l->files, compare_listed);
    if (!(l->names = malloc((l->count ? l->count : 1) * sizeof *l->names)))
        return eng_no_memory(err);
    for (size_t i = 0; i < l->count; i++) {
        l->names[i] = l->files[i].name;
        if (i > 0 && strcmp(l->names[i - 1], l->names[i]) == 0)
            return eng_fail(err, ENG_INVALID, "%s: in the source twice", l->names[i]);
    }
    return 0;
}

/* Whether every path is inside a folder and all inside the same one. */
static int share_first(char *const *paths, size_t n)
{
    if (n == 0) return 0;
    size_t len = strcspn(paths[0], "/");
    if (!paths[0][len]) return 0;
    for (size_t i = 1; i < n; i++)
        if (strncmp(paths[i], paths[0], len + 1) != 0) return 0;
    return 1;
}

/* ---- Names ---------------------------------------------------------------------------------- */

/* The distinct strings of items (n borrowed pointers, sorted here), copied. */
static int unique_names(char **items, size_t n, char ***out, size_t *out_n, struct eng_error *err)
{
    qsort(items, n, sizeof *items, data_compare_names);
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return eng_no_memory(err);
    *out_n = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(items[i - 1], items[i]) != 0) {
            if (!((*out)[*out_n] = strdup(items[i]))) return eng_no_memory(err);
            (*out_n)++;
        }
    return 0;
}

static int name_index(char *const *sorted, size_t n, const char *key)
{
    char *const *hit = bsearch(&key, sorted, n, sizeof *sorted, data_compare_names);
    return hit ? (int)(hit - sorted) : -1;
}

static int check_class_count(const struct plan *p, const struct data_import_options *o,
                             struct eng_error *err)
{
    if (p->class_count > o->max_classes)
        return eng_fail(err, ENG_TOO_LARGE, "%zu classes, more than %u (max_classes)",
                        p->class_count, o->max_classes);
    for (size_t i = 0; i < p->class_count; i++)
        if (!p->classes[i][0] || strlen(p->classes[i]) > 255)
            return eng_fail(err, ENG_INVALID, "class name '%.64s': use 1 to 255 bytes",
                            p->classes[i]);
    return 0;
}

/* One split called name: the split of formats without any. */
static int single_split(struct plan *p, struct eng_error *err)
{
    p->splits = calloc(1, sizeof *p->splits);
    if (!p->splits || !(p->splits[0] = strdup("all"))) return eng_no_memory(err);
    p->split_count = 1;
    return 0;
}

static int add_file(struct plan *p, const char *path, const char *name, int split, int32_t label,
                    struct eng_error *err)
{
    struct plan_file *f = &p->files[p->file_count];
    memset(f, 0, sizeof *f);
    f->split = split;
    f->label = label;
    if (!(f->path = strdup(path)) || !(f->name = strdup(name))) {
        free(f->path);
        return eng_no_memory(err);
    }
    p->file_count++;
    return 0;
}

/* ---- Class folders -------------------------------------------------------------------------- */

static int known_split_name(const char *name, size_t n)
{
    static const char *const known[] = {"train", "training", "test",       "testing",
                                        "val",   "valid",    "validation", "dev",
                                        "eval",  "extra",    "unlabeled",  "unlabelled"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strlen(known[i]) == n && strncmp(known[i], name, n) == 0) return 1;
    return 0;
}

/* The images' layout: how many leading folders to drop (a top-level one), and whether the next
 * names a split. */
static int folder_layout(char *const *paths, size_t n, size_t *strip, int *with_split,
                         struct eng_error *err)
{
    size_t depth = depth_of(paths[0]);
    for (size_t i = 1; i < n; i++)
        if (depth_of(paths[i]) != depth)
            return eng_fail(err, ENG_INVALID,
                            "mixed layout: %s is %zu folders deep, %s is %zu; use "
                            "<class>/<file> or <split>/<class>/<file> throughout",
                            paths[0], depth - 1, paths[i], depth_of(paths[i]) - 1);
    *strip = share_first(paths, n) &&
             (depth == 4 || (depth == 3 && !known_split_name(paths[0], strcspn(paths[0], "/"))));
    *with_split = depth - *strip == 3;
    if (depth - *strip != 2 && !*with_split)
        return eng_fail(err, ENG_INVALID,
                        "%s: images go in class folders: <class>/<file> or "
                        "<split>/<class>/<file>, optionally under one top-level folder",
                        paths[0]);
    return 0;
}

/* Component k of path (copied into out, size bytes at most). */
static void component(const char *path, size_t k, char *out, size_t size)
{
    while (k--)
        path += strcspn(path, "/") + 1;
    size_t n = strcspn(path, "/");
    snprintf(out, size, "%.*s", (int)n, path);
}

static int plan_folders(const struct listing *l, const struct data_import_options *o,
                        struct plan *p, struct eng_error *err)
{
    char **images = malloc((l->count ? l->count : 1) * sizeof *images);
    char **parts = calloc((l->count ? l->count : 1) * 2, sizeof *parts);
    size_t n = 0, strip = 0;
    int with_split = 0, rc = images && parts ? 0 : eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < l->count; i++)
        if (is_image_name(l->names[i]))
            images[n++] = l->names[i];
        else
            rc = plan_skip(p, l->names[i], "not an image (by its name)", err);
    if (rc == 0 && n == 0) rc = eng_fail(err, ENG_INVALID, "no image files in the source");
    if (rc == 0) rc = folder_layout(images, n, &strip, &with_split, err);
    /* Classes and splits: each file's components, then the distinct ones. */
    char buf[2][4097];
    for (size_t i = 0; rc == 0 && i < n; i++)
        for (int k = 0; k < 2 && rc == 0; k++) {
            component(images[i], strip + (size_t)k, buf[k], sizeof buf[k]);
            if (!(parts[2 * i + (size_t)k] = strdup(buf[k]))) rc = eng_no_memory(err);
        }
    char **classes = parts ? malloc((n ? n : 1) * sizeof *classes) : NULL;
    char **splits = parts ? malloc((n ? n : 1) * sizeof *splits) : NULL;
    if (rc == 0 && (!classes || !splits)) rc = eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        classes[i] = parts[2 * i + (size_t)with_split];
        splits[i] = parts[2 * i];
    }
    if (rc == 0) rc = unique_names(classes, n, &p->classes, &p->class_count, err);
    if (rc == 0)
        rc = with_split ? unique_names(splits, n, &p->splits, &p->split_count, err)
                        : single_split(p, err);
    for (size_t i = 0; rc == 0 && with_split && i < p->split_count; i++)
        rc = data_split_name_check(p->splits[i], err);
    if (rc == 0) rc = check_class_count(p, o, err);
    if (rc == 0 && !(p->files = calloc(n, sizeof *p->files))) rc = eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = images[i];
        for (size_t k = 0; k < strip; k++)
            name += strcspn(name, "/") + 1;
        int split = with_split ? name_index(p->splits, p->split_count, parts[2 * i]) : 0;
        int label = name_index(p->classes, p->class_count, parts[2 * i + (size_t)with_split]);
        rc = add_file(p, images[i], name, split, label, err);
    }
    for (size_t i = 0; parts && i < 2 * n; i++)
        free(parts[i]);
    free(parts);
    free(images);
    free(classes);
    free(splits);
    return rc;
}

/* ---- CIFAR ---------------------------------------------------------------------------------- */

/* Binary formats name images by their file's base name: two files may not share one. */
static int check_unique_names(const struct plan *p, struct eng_error *err)
{
    char **names = malloc((p->file_count ? p->file_count : 1) * sizeof *names);
    if (!names) return eng_no_memory(err);
    for (size_t i = 0; i < p->file_count; i++)
        names[i] = p->files[i].name;
    qsort(names, p->file_count, sizeof *names, data_compare_names);
    int rc = 0;
    for (size_t i = 1; i < p->file_count && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = eng_fail(err, ENG_INVALID, "two files named %s in the source", names[i]);
    free(names);
    return rc;
}

/* The CIFAR split a batch file belongs to: "train", "test", or NULL for another file. */
static const char *cifar_split(const char *path, enum plan_format f)
{
    const char *base = base_name(path);
    if (f == FORMAT_CIFAR100)
        return strcmp(base, "train.bin") == 0  ? "train"
               : strcmp(base, "test.bin") == 0 ? "test"
                                               : NULL;
    if (strcmp(base, "test_batch.bin") == 0) return "test";
    unsigned n;
    int used = 0;
    return sscanf(base, "data_batch_%u.bin%n", &n, &used) == 1 && used > 0 && !base[used] ? "train"
                                                                                          : NULL;
}

/* Class names, one a line (the CIFAR meta files), or "0", "1", ... when there is no file. */
static int names_from_lines(const struct meta *m, size_t expected, struct plan *p,
                            struct eng_error *err)
{
    if (!(p->classes = calloc(expected, sizeof *p->classes))) return eng_no_memory(err);
    p->class_count = expected;
    char *text = m ? (char *)m->data : NULL, *save = NULL;
    size_t got = 0;
    for (char *line = text ? strtok_r(text, "\r\n", &save) : NULL; line;
         line = strtok_r(NULL, "\r\n", &save)) {
        size_t len = strlen(line);
        while (len && line[len - 1] == ' ')
            line[--len] = 0;
        if (!len) continue;
        if (got == expected || !data_utf8_valid(line, len))
            return eng_fail(err, ENG_INVALID, "%s: not %zu class names, one a line", m->name,
                            expected);
        if (!(p->classes[got++] = strdup(line))) return eng_no_memory(err);
    }
    if (m && got != expected)
        return eng_fail(err, ENG_INVALID, "%s: %zu class names, not %zu", m->name, got, expected);
    for (size_t i = 0; !m && i < expected; i++)
        if (!(p->classes[i] = data_printf(err, "%zu", i))) return -1;
    return 0;
}

static const struct meta *find_meta(const struct listing *l, const char *base)
{
    for (size_t i = 0; i < l->meta_count; i++)
        if (strcmp(base_name(l->metas[i].name), base) == 0) return &l->metas[i];
    return NULL;
}

static int plan_cifar(const struct listing *l, const struct data_import_options *o, struct plan *p,
                      struct eng_error *err)
{
    const int c100 = p->format == FORMAT_CIFAR100;
    const size_t record = cifar_record_size(p->format);
    uint64_t images = 0;
    int rc = names_from_lines(find_meta(l, c100 ? "fine_label_names.txt" : "batches.meta.txt"),
                              c100 ? 100 : 10, p, err);
    char *split_names[2] = {"test", "train"};
    p->splits = calloc(2, sizeof *p->splits);
    if (rc == 0 && (!p->splits || !(p->files = calloc(l->count ? l->count : 1, sizeof *p->files))))
        rc = eng_no_memory(err);
    for (size_t k = 0; rc == 0 && k < 2; k++)
        if (!(p->splits[p->split_count++] = strdup(split_names[k]))) rc = eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < l->count; i++) {
        const char *split = cifar_split(l->names[i], p->format);
        if (!split) {
            if (!find_meta(l, base_name(l->names[i])))
                rc = plan_skip(p, l->names[i], "not a CIFAR batch file", err);
            continue;
        }
        /* A size the header does not give is checked as the records are read. */
        const int64_t size = l->files[i].size;
        if (size >= 0 && (uint64_t)size % record != 0)
            rc = eng_fail(err, ENG_INVALID,
                          "%s: %lld bytes is not a whole number of %zu-byte CIFAR records",
                          l->names[i], (long long)size, record);
        else if (size > 0 && (images += (uint64_t)size / record) > o->max_files)
            rc = eng_fail(err, ENG_TOO_LARGE, "%s: more than %llu images (max_files)", l->names[i],
                          (unsigned long long)o->max_files);
        else
            rc = add_file(p, l->names[i], base_name(l->names[i]),
                          name_index(p->splits, p->split_count, split), -1, err);
    }
    return rc ? rc : check_unique_names(p, err);
}

/* ---- MNIST idx ------------------------------------------------------------------------------ */

/* An idx file's base name without ".gz". */
static char *idx_name(const char *path, struct eng_error *err)
{
    const char *base = base_name(path);
    size_t n = strlen(base);
    return data_printf(err, "%.*s", (int)(ends_with(base, ".gz") ? n - 3 : n), base);
}

/* Replaces the first `from` in s (which must hold it) by `to`, of the same length. */
static void replace_word(char *s, const char *from, const char *to)
{
    char *at = strstr(s, from);
    if (at) memcpy(at, to, strlen(to));
}

static int plan_idx(const struct listing *l, const struct data_import_options *o, struct plan *p,
                    struct eng_error *err)
{
    char **split_names = calloc(l->count ? l->count : 1, sizeof *split_names);
    int rc = split_names ? 0 : eng_no_memory(err), max_label = -1;
    size_t n = 0;
    if (rc == 0 && !(p->files = calloc(l->count ? l->count : 1, sizeof *p->files)))
        rc = eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < l->count; i++) {
        char *name = idx_name(l->names[i], err);
        if (!name) {
            rc = -1;
        } else if (!strstr(name, "idx3-ubyte")) {
            if (!strstr(name, "idx1-ubyte")) rc = plan_skip(p, l->names[i], "not an idx file", err);
        } else {
            /* Its labels: "images" and "idx3" become "labels" and "idx1". */
            char *labels = strdup(name);
            if (labels) replace_word(labels, "images", "labels");
            if (labels) replace_word(labels, "idx3", "idx1");
            const struct meta *m = NULL;
            for (size_t k = 0; labels && k < l->meta_count && !m; k++) {
                char *other = idx_name(l->metas[k].name, err);
                if (other && strcmp(other, labels) == 0) m = &l->metas[k];
                free(other);
            }
            size_t prefix = strcspn(name, "-.");
            char *split = data_printf(err, "%.*s", (int)prefix, name);
            if (!labels || !split) {
                rc = labels ? -1 : eng_no_memory(err);
            } else if (!m) {
                rc = eng_fail(err, ENG_INVALID, "%s: no labels file (%s) beside it", l->names[i],
                              labels);
            } else {
                if (strcmp(split, "t10k") == 0) strcpy(split, "test");
                split_names[n++] = split;
                split = NULL;
                rc = add_file(p, l->names[i], name, -1, -1, err);
            }
            struct plan_file *f = rc == 0 ? &p->files[p->file_count - 1] : NULL;
            if (f) rc = idx_parse_labels(m->name, m->data, m->size, f, o->max_files, err);
            for (size_t k = 0; f && rc == 0 && k < f->label_count; k++)
                if (f->labels[k] > max_label) max_label = f->labels[k];
            free(split);
            free(labels);
        }
        free(name);
    }
    char **copies = calloc(n ? n : 1, sizeof *copies);
    if (rc == 0 && !copies) rc = eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        copies[i] = split_names[i];
    if (rc == 0 && n == 0) rc = eng_fail(err, ENG_INVALID, "no idx images file in the source");
    if (rc == 0) rc = unique_names(copies, n, &p->splits, &p->split_count, err);
    if (rc == 0 && p->split_count < n)
        rc = eng_fail(err, ENG_INVALID, "two idx images files of one split");
    for (size_t i = 0; rc == 0 && i < p->split_count; i++)
        rc = data_split_name_check(p->splits[i], err);
    for (size_t i = 0; rc == 0 && i < p->file_count; i++)
        p->files[i].split = name_index(p->splits, p->split_count, split_names[i]);
    if (rc == 0 && !(p->classes = calloc((size_t)max_label + 1, sizeof *p->classes)))
        rc = eng_no_memory(err);
    for (int c = 0; rc == 0 && c <= max_label; c++, p->class_count++)
        if (!(p->classes[c] = data_printf(err, "%d", c))) rc = -1;
    if (rc == 0) rc = check_class_count(p, o, err);
    for (size_t i = 0; i < n; i++)
        free(split_names[i]);
    free(split_names);
    free(copies);
    return rc;
}

/* ---- The plan ------------------------------------------------------------------------------- */

const char *plan_format_name(enum plan_format f)
{
    static const char *const names[] = {"folders", "manifest", "cifar10", "cifar100", "idx"};
    return names[f];
}

int plan_skip(struct plan *p, const char *file, const char *reason, struct eng_error *err)
{
    if (p->skipped_count++ >= DATA_REPORT_MAX_SKIPPED) return 0;
    json_t *item = json_pack("{s:s, s:s}", "file", file, "reason", reason);
    if (!item || json_array_append_new(p->skipped, item)) return eng_no_memory(err);
    return 0;
}

static int compare_files(const void *a, const void *b)
{
    return strcmp(((const struct plan_file *)a)->path, ((const struct plan_file *)b)->path);
}

struct plan_file *plan_find(const struct plan *p, const char *path)
{
    struct plan_file key = {.path = (char *)path};
    return bsearch(&key, p->files, p->file_count, sizeof *p->files, compare_files);
}

/* The format the files say: a manifest at the root, CIFAR batch names, idx names; else class
 * folders. ENG_INVALID for two manifests. */
static int detect(const struct listing *l, const struct meta **manifest, enum plan_format *f,
                  struct eng_error *err)
{
    *manifest = NULL;
    *f = FORMAT_FOLDERS;
    int one_first = l->count > 0 && share_first(l->names, l->count);
    for (size_t i = 0; i < l->meta_count; i++) {
        const char *name = l->metas[i].name;
        size_t depth = depth_of(name);
        if (!ends_with(name, ".jsonl") || !(depth == 1 || (depth == 2 && one_first))) continue;
        if (*manifest)
            return eng_fail(err, ENG_INVALID, "two manifests: %s and %s", (*manifest)->name, name);
        *manifest = &l->metas[i];
    }
    if (*manifest) {
        *f = FORMAT_MANIFEST;
        return 0;
    }
    for (size_t i = 0; i < l->count; i++) {
        if (cifar_split(l->names[i], FORMAT_CIFAR10)) *f = FORMAT_CIFAR10;
        if (cifar_split(l->names[i], FORMAT_CIFAR100) && *f == FORMAT_FOLDERS) *f = FORMAT_CIFAR100;
        if (strstr(base_name(l->names[i]), "idx3-ubyte") && *f == FORMAT_FOLDERS) *f = FORMAT_IDX;
    }
    return 0;
}

int plan_make(struct source *s, const struct data_import_options *o,
              void (*tick)(void *ctx, double position), void *ctx, struct plan *p,
              struct eng_error *err)
{
    memset(p, 0, sizeof *p);
    if (!(p->skipped = json_array())) return eng_no_memory(err);
    struct listing l = {0};
    const struct meta *manifest;
    int rc = list_source(s, tick, ctx, &l, err);
    if (rc == 0) rc = detect(&l, &manifest, &p->format, err);
    if (rc == 0) switch (p->format) {
        case FORMAT_FOLDERS:
            rc = plan_folders(&l, o, p, err);
            break;
        case FORMAT_MANIFEST:
            rc = manifest_plan((const char *)manifest->data, manifest->size, manifest->name,
                               l.names, l.count, o, p, err);
            if (rc == 0) rc = check_class_count(p, o, err);
            break;
        case FORMAT_CIFAR10:
        case FORMAT_CIFAR100:
            rc = plan_cifar(&l, o, p, err);
            break;
        case FORMAT_IDX:
            rc = plan_idx(&l, o, p, err);
            break;
        }
    listing_free(&l);
    if (rc == 0 && p->split_count > DATA_MAX_SPLITS)
        rc = eng_fail(err, ENG_TOO_LARGE, "%zu splits in the source, more than %d", p->split_count,
                      DATA_MAX_SPLITS);
    if (rc == 0) qsort(p->files, p->file_count, sizeof *p->files, compare_files);
    return rc;
}

void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->class_count; i++)
        free(p->classes[i]);
    for (size_t i = 0; i < p->split_count; i++)
        free(p->splits[i]);
    for (size_t i = 0; i < p->file_count; i++) {
        free(p->files[i].path);
        free(p->files[i].name);
        free(p->files[i].targets);
        free(p->files[i].labels);
    }
    free(p->classes);
    free(p->splits);
    free(p->files);
    json_decref(p->skipped);
    memset(p, 0, sizeof *p);
}
