/* Decoded images: 8-bit samples, interleaved rows (HWC), 1 channel (L), 3 (RGB) or 4 (RGBA).
 * Ops read one image and write a new one; alpha is carried through geometric ops. */
#ifndef AUGSERVE_ENGINE_CORE_IMG_H
#define AUGSERVE_ENGINE_CORE_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct img {
    int width, height;
    int channels;  /* 1, 3 or 4 */
    size_t stride; /* bytes from one row to the next, >= width * channels */
    uint8_t *data; /* owned */
};

/* A new image with uninitialised pixels and stride = width * channels; NULL when the size is
 * invalid or memory runs out (err says which). */
struct img *img_new(int width, int height, int channels, struct eng_error *err);
struct img *img_clone(const struct img *src, struct eng_error *err);
void img_free(struct img *im);

/* Row y's first byte. */
static inline uint8_t *img_row(const struct img *im, int y)
{
    return im->data + (size_t)y * im->stride;
}

#endif
