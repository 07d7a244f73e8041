#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_u32(FILE *f, uint32_t *out)
{
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return -1;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

struct img *fixture_load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fixture %s: cannot open\n", path);
        return NULL;
    }
    char magic[4];
    uint32_t w, h, c;
    struct img *im = NULL;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "AUGF", 4) != 0 || read_u32(f, &w) ||
        read_u32(f, &h) || read_u32(f, &c)) {
        fprintf(stderr, "fixture %s: bad header\n", path);
    } else if ((im = img_new((int)w, (int)h, (int)c, NULL)) == NULL) {
        fprintf(stderr, "fixture %s: bad size %ux%ux%u\n", path, w, h, c);
    } else if (fread(im->data, 1, im->stride * (size_t)h, f) != im->stride * (size_t)h) {
        fprintf(stderr, "fixture %s: truncated\n", path);
        img_free(im);
        im = NULL;
    }
    fclose(f);
    return im;
}

long fixture_diff(const struct img *a, const struct img *b, int tolerance, int *max_diff)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return -1;
    long count = 0;
    int largest = 0;
    for (int y = 0; y < a->height; y++) {
        const uint8_t *ra = img_row(a, y), *rb = img_row(b, y);
        for (int x = 0; x < a->width; x++) {
            int worst = 0;
            for (int c = 0; c < a->channels; c++) {
                int d = abs((int)ra[x * a->channels + c] - (int)rb[x * a->channels + c]);
                if (d > worst) worst = d;
            }
            if (worst > tolerance) count++;
            if (worst > largest) largest = worst;
        }
    }
    if (max_diff) *max_diff = largest;
    return count;
}

/* Whether one case holds; prints what went wrong when not. */
static int check_case(const char *dir, const json_t *c, fixture_op_fn run, enum eng_code refused)
{
    const char *op = json_string_value(json_object_get(c, "op"));
    const char *input = json_string_value(json_object_get(c, "input"));
    const json_t *args = json_object_get(c, "args"), *expected = json_object_get(c, "expected");
    const char *name = json_string_value(json_object_get(c, "name"));
    long budget = (long)json_integer_value(json_object_get(c, "budget_pixels"));
    char *args_text = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    char label[512];
    snprintf(label, sizeof label, "%s", name ? name : "");
    if (!name)
        snprintf(label, sizeof label, "%s %s on %s", op ? op : "?", args_text ? args_text : "",
                 input ? input : "?");
    free(args_text);
    struct img *in = op && input ? fixture_load(dir, input) : NULL;
    struct img *before = in ? img_clone(in, NULL) : NULL;
    if (!before) {
        fprintf(stderr, "%s: malformed case or input\n", label);
        img_free(in);
        return 0;
    }
    struct eng_error err = {0};
    struct img *out = run(op, args, in, &err);
    int ok = 1;
    if (json_is_null(expected)) {
        ok = !out && err.code == refused;
        if (!ok)
            fprintf(stderr, "%s: the reference refuses this (%s), but the op %s\n", label,
                    json_string_value(json_object_get(c, "raises")),
                    out ? "returned an image" : err.message);
    } else {
        struct img *want = fixture_load(dir, json_string_value(expected));
        int max_diff = 0;
        long diff = out && want ? fixture_diff(out, want, 0, &max_diff) : -2;
        ok = diff >= 0 && diff <= budget;
        if (!out)
            fprintf(stderr, "%s: failed: %s\n", label, err.message);
        else if (!want)
            fprintf(stderr, "%s: no expected image\n", label);
        else if (diff < 0)
            fprintf(stderr, "%s: got %dx%dx%d, want %dx%dx%d\n", label, out->width, out->height,
                    out->channels, want->width, want->height, want->channels);
        else if (!ok)
            fprintf(stderr, "%s: %ld pixels differ (budget %ld), by up to %d\n", label, diff,
                    budget, max_diff);
        img_free(want);
    }
    if (fixture_diff(in, before, 0, NULL) != 0) {
        fprintf(stderr, "%s: the input image was modified\n", label);
        ok = 0;
    }
    img_free(out);
    img_free(before);
    img_free(in);
    return ok;
}

size_t fixture_check_manifest(const char *dir, fixture_op_fn run, enum eng_code refused,
                              size_t *total)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *manifest = json_load_file(path, 0, &jerr);
    *total = 0;
    if (!manifest) {
        fprintf(stderr, "%s: %s (line %d)\n", path, jerr.text, jerr.line);
        return 1;
    }
    const json_t *cases = json_object_get(manifest, "cases");
    size_t i, failed = 0;
    const json_t *c;
    json_array_foreach(cases, i, c) failed += !check_case(dir, c, run, refused);
    *total = json_array_size(cases);
    json_decref(manifest);
    return failed;
}

struct img *fixture_pattern(int width, int height, int channels, size_t pad)
{
    struct img *im = img_new(width, height, channels, NULL);
    if (!im) return NULL;
    if (pad) {
        uint8_t *data = malloc((im->stride + pad) * (size_t)height);
        if (!data) {
            img_free(im);
            return NULL;
        }
        free(im->data);
        im->data = data;
        im->stride += pad;
        memset(im->data, 0xa5, im->stride * (size_t)height);
    }
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width * channels; x++)
            img_row(im, y)[x] = (uint8_t)(x * 37 + y * 11 + (x * y) % 13);
    return im;
}
