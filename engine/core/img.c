#include "core/img.h"

#include <stdlib.h>
#include <string.h>

/* Above this, width * height * channels could overflow the arithmetic of callers that multiply
 * in int; real limits (max_pixels) are far lower and checked by the decoders. */
#define IMG_MAX_SIDE 65535

struct img *img_new(int width, int height, int channels, struct eng_error *err)
{
    if (width < 1 || height < 1 || width > IMG_MAX_SIDE || height > IMG_MAX_SIDE ||
        (channels != 1 && channels != 3 && channels != 4)) {
        eng_fail(err, ENG_INVALID, "image size %dx%d with %d channels is not supported", width,
                 height, channels);
        return NULL;
    }
    struct img *im = malloc(sizeof *im);
    size_t stride = (size_t)width * (size_t)channels;
    uint8_t *data = malloc(stride * (size_t)height);
    if (!im || !data) {
        free(im);
        free(data);
        eng_fail(err, ENG_NO_MEMORY, "out of memory for a %dx%d image", width, height);
        return NULL;
    }
    *im = (struct img){
        .width = width, .height = height, .channels = channels, .stride = stride, .data = data};
    return im;
}

struct img *img_clone(const struct img *src, struct eng_error *err)
{
    struct img *im = img_new(src->width, src->height, src->channels, err);
    if (!im) return NULL;
    size_t row_bytes = (size_t)src->width * (size_t)src->channels;
    for (int y = 0; y < src->height; y++)
        memcpy(img_row(im, y), img_row(src, y), row_bytes);
    return im;
}

void img_free(struct img *im)
{
    if (!im) return;
    free(im->data);
    free(im);
}
