#include "image/filter.h"

#include <stddef.h>

/* A size x size kernel of integer weights (row-major) and the divisor that Pillow's float
 * weights carry. */
struct kernel {
    int size;
    int divisor;
    int weight[25];
};

static const struct kernel BLUR = {
    5, 16, {1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1}};
static const struct kernel SMOOTH = {3, 13, {1, 1, 1, 1, 5, 1, 1, 1, 1}};

static struct img *convolve(const struct img *src, const struct kernel *k, struct eng_error *err)
{
    if (!src || !src->data || src->width < 1 || src->height < 1 ||
        (src->channels != 1 && src->channels != 3 && src->channels != 4) ||
        src->stride < (size_t)src->width * (size_t)src->channels)
        return eng_fail(err, ENG_INVALID, "filter: malformed image"), NULL;
    struct img *dst = img_clone(src, err);
    const int r = k->size / 2, c = src->channels;
    if (!dst || src->width < k->size || src->height < k->size) return dst;
    for (int y = r; y < src->height - r; y++) {
        uint8_t *out = img_row(dst, y);
        for (int x = r; x < src->width - r; x++) {
            for (int ch = 0; ch < c; ch++) {
                int n = 0;
                for (int dy = -r; dy <= r; dy++) {
                    const uint8_t *in = img_row(src, y + dy) + (ptrdiff_t)(x - r) * c + ch;
                    const int *w = k->weight + (dy + r) * k->size;
                    for (int dx = 0; dx < k->size; dx++)
                        n += w[dx] * in[dx * c];
                }
                out[x * c + ch] = (uint8_t)((n + k->divisor / 2) / k->divisor);
            }
        }
    }
    return dst;
}

struct img *img_filter_blur(const struct img *src, struct eng_error *err)
{
    return convolve(src, &BLUR, err);
}

struct img *img_filter_smooth(const struct img *src, struct eng_error *err)
{
    return convolve(src, &SMOOTH, err);
}
