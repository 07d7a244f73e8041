/* MNIST's idx files (LeCun et al.): a big-endian magic 0x0000TTDD (type TT, 0x08 for unsigned
 * bytes, and DD dimensions), each dimension's size as a big-endian 32-bit number, then the data.
 * The labels file is read whole in the first pass; the images file is streamed image by image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

static uint32_t big_endian(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks an idx magic for dims dimensions of unsigned bytes. */
static int idx_magic(const char *name, const unsigned char *h, int dims, struct eng_error *err)
{
    if (h[0] || h[1])
        return eng_fail(err, ENG_INVALID, "%s: not an idx file (its magic is %08x)", name,
                        big_endian(h));
    if (h[2] != 0x08)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "%s: idx type 0x%02x; only unsigned bytes (0x08) are read", name, h[2]);
    if (h[3] != dims)
        return eng_fail(err, ENG_INVALID, "%s: %d dimensions where %s file has %d", name, h[3],
                        dims == 1 ? "a labels" : "an images", dims);
    return 0;
}

int idx_parse_labels(const char *name, const unsigned char *data, size_t size, struct plan_file *f,
                     uint64_t max_images, struct eng_error *err)
{
    if (size < 8) return eng_fail(err, ENG_INVALID, "%s: too short for an idx header", name);
    if (idx_magic(name, data, 1, err)) return -1;
    const uint32_t n = big_endian(data + 4);
    if (size - 8 != n)
        return eng_fail(err, ENG_INVALID, "%s: %u labels need %llu bytes, the file has %zu", name,
                        n, 8ull + n, size);
    if (n > max_images)
        return eng_fail(err, ENG_TOO_LARGE, "%s: more than %llu images (max_files)", name,
                        (unsigned long long)max_images);
    if (!(f->labels = malloc(n ? n : 1))) return eng_no_memory(err);
    memcpy(f->labels, data + 8, n);
    f->label_count = n;
    return 0;
}

/* Reads exactly n bytes of the idx file: 0, or -1 with err (ENG_INVALID when it ends first). */
static int idx_bytes(struct source_stream *z, const struct plan_file *f, void *buf, size_t n,
                     const char *what, struct eng_error *err)
{
    size_t got;
    int rc = source_stream_read(z, buf, n, &got, err);
    return rc == 1 ? eng_fail(err, ENG_INVALID, "%s: ends inside %s", f->path, what) : rc;
}

int idx_read_images(struct source *s, const struct plan_file *f, binary_image_fn fn, void *ctx,
                    struct eng_error *err)
{
    unsigned char h[16];
    struct source_stream *z = source_stream_open(s, err);
    struct img *im = NULL;
    int rc = z ? idx_bytes(z, f, h, sizeof h, "its header", err) : -1;
    if (rc == 0) rc = idx_magic(f->path, h, 3, err);
    const uint32_t n = big_endian(h + 4), rows = big_endian(h + 8), cols = big_endian(h + 12);
    if (rc == 0 && n != f->label_count)
        rc = eng_fail(err, ENG_INVALID, "%s: %u images, but its labels file has %zu", f->path, n,
                      f->label_count);
    if (rc == 0 && (rows < 1 || cols < 1 || rows > IMG_DEFAULT_MAX_DIMENSION ||
                    cols > IMG_DEFAULT_MAX_DIMENSION))
        rc = eng_fail(err, ENG_INVALID, "%s: images of %ux%u; sides go from 1 to %d", f->path, cols,
                      rows, IMG_DEFAULT_MAX_DIMENSION);
    if (rc == 0 && !(im = img_new((int)cols, (int)rows, 1, err))) rc = -1;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "image %u of %u", i, n);
        rc = idx_bytes(z, f, im->data, (size_t)rows * cols, what, err);
        if (rc == 0) rc = fn(ctx, i, im, f->labels[i], err);
    }
    size_t extra = 0;
    unsigned char byte;
    if (rc == 0 && (rc = source_stream_read(z, &byte, 1, &extra, err)) == 1) rc = 0;
    if (rc == 0 && extra)
        rc = eng_fail(err, ENG_INVALID, "%s: longer than its %u images of %ux%u", f->path, n, cols,
                      rows);
    img_free(im);
    source_stream_close(z);
    return rc;
}
