/* libFuzzer target: detection targets as a request brings them, then moved by an affine map as
 * the geometric ops move them. The engine has no bytes-in reader (handlers/input.c takes the
 * JSON document apart), so the bytes are read as the values it hands over: the image size, a box
 * format, boxes (4 doubles each, with a mask or not), keypoints, then the forward map, the output
 * size and the filters. The box parsers (targets_add), targets_apply_affine and targets_box_to
 * see arbitrary doubles: NaN, infinities, huge and inverted values, singular maps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/img.h"
#include "image/targets.h"

#define MAX_SIDE    64
#define MAX_OBJECTS 8

struct reader {
    const uint8_t *data;
    size_t size;
};

static uint8_t take_byte(struct reader *r)
{
    if (r->size == 0) return 0;
    r->size--;
    return *r->data++;
}

static double take_double(struct reader *r)
{
    double v = 0;
    const size_t n = r->size < sizeof v ? r->size : sizeof v;
    memcpy(&v, r->data, n);
    r->data += n;
    r->size -= n;
    return v;
}

/* A side of 1 to MAX_SIDE pixels. */
static int take_side(struct reader *r)
{
    return 1 + take_byte(r) % MAX_SIDE;
}

/* A width x height mask with a rectangle of the reader's choosing set. */
static struct img *take_mask(struct reader *r, int width, int height)
{
    struct img *m = img_new(width, height, 1, NULL);
    if (!m) return NULL;
    const int x0 = take_byte(r) % width, y0 = take_byte(r) % height;
    const int x1 = x0 + take_byte(r) % (width - x0), y1 = y0 + take_byte(r) % (height - y0);
    for (int y = y0; y <= y1; y++)
        memset(m->data + (size_t)y * m->stride + x0, 255, (size_t)(x1 - x0 + 1));
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = {data, size};
    struct eng_error err = {0};
    const int width = take_side(&r), height = take_side(&r);
    const uint8_t flags = take_byte(&r);
    const enum box_format fmt = (enum box_format)(flags & 3);
    const int with_masks = flags & 4;
    const size_t n_boxes = take_byte(&r) % (MAX_OBJECTS + 1);
    const size_t n_keypoints = take_byte(&r) % (MAX_OBJECTS + 1);
    struct targets *t = targets_new(width, height, MAX_OBJECTS, MAX_OBJECTS, &err);
    if (!t) return 0;
    for (size_t i = 0; i < n_boxes; i++) {
        double v[4];
        for (int k = 0; k < 4; k++)
            v[k] = take_double(&r);
        struct img *mask = with_masks ? take_mask(&r, width, height) : NULL;
        if (targets_add(t, v, 4, fmt, (int)i, mask, (int)i, &err) != 0) goto done;
    }
    for (size_t i = 0; i < n_keypoints; i++) {
        const double x = take_double(&r), y = take_double(&r);
        if (targets_add_keypoint(t, x, y, (int)i, (int)i, &err) != 0) goto done;
    }
    double m[6];
    for (int k = 0; k < 6; k++)
        m[k] = take_double(&r);
    const int out_w = take_side(&r), out_h = take_side(&r);
    struct targets_filter filter = {0};
    if (take_byte(&r) & 1) {
        filter.min_area = take_double(&r);
        filter.min_visibility = take_double(&r);
        filter.min_width = take_double(&r);
        filter.min_height = take_double(&r);
    }
    if (targets_apply_affine(t, m, out_w, out_h, &filter, &err) != 0) goto done;
    for (size_t i = 0; i < t->count; i++) {
        double out[4];
        targets_box_to(&t->boxes[i], fmt, t->width, t->height, out);
    }
done:
    targets_free(t);
    return 0;
}
