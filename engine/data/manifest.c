/* The JSON Lines manifest format: one object per line, {"file": "img/1.jpg", "label": "cat",
 * "split": "train", "targets": {...}}. "file" is relative to the manifest's folder and must be in
 * the source; "label" is a class name, or a class number (all lines alike), or absent or null for
 * an unlabeled image; "split" absent puts the image in "all"; "targets" (detection targets in
 * /v1/augment's format) is kept as its compact JSON text. Other members are ignored, so that
 * manifests written for other tools can be read as they are. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

/* One line's image before classes and splits are numbered. */
struct line {
    size_t number;
    char *path;  /* in the source */
    char *label; /* a name, or a number's text; NULL: unlabeled */
    char *split;
    char *targets;
};

struct lines {
    struct line *items;
    size_t count, cap;
    int numbers; /* labels are numbers: 1, names: 0, none yet: -1 */
    size_t kind_line;
    long long max_number;
};

static void lines_free(struct lines *ls)
{
    for (size_t i = 0; i < ls->count; i++) {
        free(ls->items[i].path);
        free(ls->items[i].label);
        free(ls->items[i].split);
        free(ls->items[i].targets);
    }
    free(ls->items);
}

/* The line's label into l->label, checking that every line labels the same way. */
static int read_label(struct lines *ls, struct line *l, const json_t *label, const char *where,
                      const struct data_import_options *o, struct eng_error *err)
{
    if (!label || json_is_null(label)) return 0;
    int number = json_is_integer(label);
    if (!number && !json_is_string(label))
        return eng_fail(err, ENG_INVALID, "%s: \"label\" must be a class name or number", where);
    if (ls->numbers >= 0 && ls->numbers != number)
        return eng_fail(err, ENG_INVALID, "%s: labels are class %s on line %zu and %s here", where,
                        ls->numbers ? "numbers" : "names", ls->kind_line,
                        number ? "a number" : "a name");
    if (ls->numbers < 0) {
        ls->numbers = number;
        ls->kind_line = l->number;
    }
    if (number) {
        long long v = json_integer_value(label);
        if (v < 0 || (unsigned long long)v >= o->max_classes)
            return eng_fail(err, v < 0 ? ENG_INVALID : ENG_TOO_LARGE,
                            "%s: label %lld is not in 0..%u (max_classes)", where, v,
                            o->max_classes - 1);
        if (v > ls->max_number) ls->max_number = v;
        return (l->label = data_printf(err, "%lld", v)) ? 0 : -1;
    }
    if (!json_string_length(label))
        return eng_fail(err, ENG_INVALID, "%s: an empty label; leave it out for none", where);
    return (l->label = strdup(json_string_value(label))) ? 0 : eng_no_memory(err);
}

/* Reads one line's object into ls. */
static int read_line(struct lines *ls, const json_t *obj, size_t number, const char *folder,
                     char *const *names, size_t n, const struct data_import_options *o,
                     struct eng_error *err)
{
    char where[SOURCE_NAME_MAX + 64], normal[SOURCE_NAME_MAX + 1];
    snprintf(where, sizeof where, "manifest line %zu", number);
    if (!json_is_object(obj)) return eng_fail(err, ENG_INVALID, "%s: not a JSON object", where);
    const json_t *file = json_object_get(obj, "file"), *split = json_object_get(obj, "split"),
                 *targets = json_object_get(obj, "targets");
    if (!json_is_string(file))
        return eng_fail(err, ENG_INVALID, "%s: \"file\" must be the image's path", where);
    if (split && !json_is_string(split))
        return eng_fail(err, ENG_INVALID, "%s: \"split\" must be a split name", where);
    if (targets && !json_is_null(targets) && !json_is_object(targets))
        return eng_fail(err, ENG_INVALID, "%s: \"targets\" must be an object", where);
    if (source_normalise(json_string_value(file), normal, err)) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        return eng_fail(err, ENG_INVALID, "%s: %s", where, why);
    }
    if (split && data_split_name_check(json_string_value(split), err)) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        return eng_fail(err, ENG_INVALID, "%s: %s", where, why);
    }
    struct line *grown = data_grow(ls->items, &ls->cap, ls->count, sizeof *grown, err);
    if (!grown) return -1;
    ls->items = grown;
    struct line *l = &ls->items[ls->count++];
    memset(l, 0, sizeof *l);
    l->number = number;
    if (!(l->path = data_printf(err, "%s%s%s", folder, *folder ? "/" : "", normal))) return -1;
    const char *key = l->path;
    if (!bsearch(&key, names, n, sizeof *names, data_compare_names))
        return eng_fail(err, ENG_INVALID, "%s: %s is not in the source", where, l->path);
    if (!(l->split = strdup(split ? json_string_value(split) : "all"))) return eng_no_memory(err);
    if (targets && !json_is_null(targets) &&
        !(l->targets = json_dumps(targets, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        return eng_no_memory(err);
    return read_label(ls, l, json_object_get(obj, "label"), where, o, err);
}

static int read_lines(struct lines *ls, const char *text, size_t size, const char *folder,
                      char *const *names, size_t n, const struct data_import_options *o,
                      struct eng_error *err)
{
    size_t number = 0;
    for (const char *line = text; line < text + size;) {
        const char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (!end) end = text + size;
        number++;
        size_t len = (size_t)(end - line);
        if (strspn(line, " \t\r") < len) {
            json_error_t jerr;
            json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
            if (!obj)
                return eng_fail(err, ENG_INVALID, "manifest line %zu: not JSON: %s", number,
                                jerr.text);
            int rc = read_line(ls, obj, number, folder, names, n, o, err);
            json_decref(obj);
            if (rc) return -1;
        }
        line = end + 1;
    }
    return 0;
}

static int compare_lines(const void *a, const void *b)
{
    return strcmp(((const struct line *)a)->path, ((const struct line *)b)->path);
}

/* The distinct values of a string member of the lines, sorted (borrowed from the lines). */
static int distinct(const struct lines *ls, size_t member, char ***out, size_t *count,
                    struct eng_error *err)
{
    char **all = malloc((ls->count ? ls->count : 1) * sizeof *all);
    if (!all) return eng_no_memory(err);
    size_t n = 0;
    for (size_t i = 0; i < ls->count; i++) {
        char *v = *(char **)((char *)&ls->items[i] + member);
        if (v) all[n++] = v;
    }
    qsort(all, n, sizeof *all, data_compare_names);
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(all[i - 1], all[i]) != 0) all[(*count)++] = all[i];
    *out = all;
    return 0;
}

/* Copies of the first n of names into *out. */
static int copy_names(char **names, size_t n, char ***out, struct eng_error *err)
{
    if (!(*out = calloc(n ? n : 1, sizeof **out))) return eng_no_memory(err);
    for (size_t i = 0; i < n; i++)
        if (!((*out)[i] = strdup(names[i]))) return eng_no_memory(err);
    return 0;
}

static int index_in(char **sorted, size_t n, const char *key)
{
    char **hit = bsearch(&key, sorted, n, sizeof *sorted, data_compare_names);
    return hit ? (int)(hit - sorted) : -1;
}

/* Numbers the classes and splits and makes the plan's files. */
static int plan_lines(struct lines *ls, char *const *names, size_t n, const char *manifest_path,
                      size_t folder_len, struct plan *p, struct eng_error *err)
{
    qsort(ls->items, ls->count, sizeof *ls->items, compare_lines);
    for (size_t i = 1; i < ls->count; i++)
        if (strcmp(ls->items[i - 1].path, ls->items[i].path) == 0)
            return eng_fail(err, ENG_INVALID, "manifest lines %zu and %zu: %s listed twice",
                            ls->items[i - 1].number, ls->items[i].number, ls->items[i].path);
    char **classes = NULL, **splits = NULL;
    size_t class_count = 0;
    int rc = distinct(ls, offsetof(struct line, label), &classes, &class_count, err);
    if (rc == 0) rc = distinct(ls, offsetof(struct line, split), &splits, &p->split_count, err);
    if (rc == 0) rc = copy_names(splits, p->split_count, &p->splits, err);
    if (rc == 0 && ls->numbers == 1) {
        /* Numbers name classes 0..max, whether or not each has an image. */
        p->class_count = (size_t)ls->max_number + 1;
        if (!(p->classes = calloc(p->class_count, sizeof *p->classes))) rc = eng_no_memory(err);
        for (size_t c = 0; rc == 0 && c < p->class_count; c++)
            if (!(p->classes[c] = data_printf(err, "%zu", c))) rc = -1;
    } else if (rc == 0) {
        p->class_count = class_count;
        rc = copy_names(classes, class_count, &p->classes, err);
    }
    if (rc == 0 && !(p->files = calloc(ls->count ? ls->count : 1, sizeof *p->files)))
        rc = eng_no_memory(err);
    for (size_t i = 0; rc == 0 && i < ls->count; i++) {
        struct line *l = &ls->items[i];
        struct plan_file *f = &p->files[p->file_count++];
        f->path = l->path;
        f->name = strdup(l->path + folder_len + (folder_len > 0));
        f->targets = l->targets;
        l->path = l->targets = NULL;
        f->split = index_in(p->splits, p->split_count, l->split);
        f->label = !l->label     ? -1
                   : ls->numbers ? atoi(l->label)
                                 : index_in(p->classes, p->class_count, l->label);
        if (!f->name) rc = eng_no_memory(err);
    }
    /* The source's other files are no part of the dataset. */
    for (size_t i = 0, k = 0; rc == 0 && i < n; i++) {
        while (k < p->file_count && strcmp(p->files[k].path, names[i]) < 0)
            k++;
        if ((k == p->file_count || strcmp(p->files[k].path, names[i]) != 0) &&
            strcmp(names[i], manifest_path) != 0)
            rc = plan_skip(p, names[i], "not in the manifest", err);
    }
    free(classes);
    free(splits);
    return rc;
}

int manifest_plan(const char *text, size_t size, const char *manifest_path, char *const *names,
                  size_t n, const struct data_import_options *o, struct plan *p,
                  struct eng_error *err)
{
    const char *slash = strrchr(manifest_path, '/');
    char *folder =
        data_printf(err, "%.*s", slash ? (int)(slash - manifest_path) : 0, manifest_path);
    struct lines ls = {.numbers = -1, .max_number = -1};
    int rc = folder ? read_lines(&ls, text, size, folder, names, n, o, err) : -1;
    if (rc == 0 && ls.count == 0)
        rc = eng_fail(err, ENG_INVALID, "%s: no image listed", manifest_path);
    if (rc == 0) rc = plan_lines(&ls, names, n, manifest_path, strlen(folder), p, err);
    lines_free(&ls);
    free(folder);
    return rc;
}
