/* The CIFAR-10 and CIFAR-100 binary batches (Krizhevsky 2009): per record a label byte
 * (CIFAR-100: a coarse label, then the fine one), then 32x32 pixels as three 1024-byte planes R, G,
 * B. Streamed record by record, never held whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

#define CIFAR_SIDE  32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)

size_t cifar_record_size(enum plan_format f)
{
    return (f == FORMAT_CIFAR100 ? 2 : 1) + 3 * CIFAR_PLANE;
}

int cifar_read(struct source *s, const struct plan_file *f, enum plan_format format,
               binary_image_fn fn, void *ctx, struct eng_error *err)
{
    const size_t size = cifar_record_size(format), labels = size - 3 * CIFAR_PLANE;
    const unsigned classes = format == FORMAT_CIFAR100 ? 100 : 10;
    unsigned char record[2 + 3 * CIFAR_PLANE];
    struct img *im = img_new(CIFAR_SIDE, CIFAR_SIDE, 3, err);
    struct source_stream *z = im ? source_stream_open(s, err) : NULL;
    int rc = z ? 0 : -1;
    for (uint32_t r = 0; rc == 0; r++) {
        size_t got;
        rc = source_stream_read(z, record, size, &got, err);
        if (rc == 1) {
            rc = got == 0 ? 2
                          : eng_fail(err, ENG_INVALID,
                                     "%s: ends %zu bytes into record %u: not whole %zu-byte "
                                     "CIFAR records",
                                     f->path, got, r, size);
            break;
        }
        if (rc) break;
        const unsigned label = record[labels - 1];
        if (label >= classes || (format == FORMAT_CIFAR100 && record[0] >= 20)) {
            rc = eng_fail(err, ENG_INVALID, "%s: record %u: label %u is not below %u", f->path, r,
                          label >= classes ? label : record[0], label >= classes ? classes : 20);
            break;
        }
        const unsigned char *planes = record + labels;
        for (int i = 0; i < CIFAR_PLANE; i++)
            for (int c = 0; c < 3; c++)
                im->data[3 * i + c] = planes[c * CIFAR_PLANE + i];
        rc = fn(ctx, r, im, (int32_t)label, err);
    }
    source_stream_close(z);
    img_free(im);
    return rc == 2 ? 0 : -1;
}
