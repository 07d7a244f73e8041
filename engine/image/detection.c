/* Box-aware detection kernels. See ops_detection.h for the reference and the draw order. */
#include "image/detection.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/geometry.h"

bool detection_box_region(const struct target_box *b, int width, int height,
                          struct detection_region *r)
{
    const double x1 = fmax(floor(b->x1), 0), y1 = fmax(floor(b->y1), 0);
    const double x2 = fmin(ceil(b->x2), width), y2 = fmin(ceil(b->y2), height);
    if (!(x2 > x1 && y2 > y1)) return false;
    *r = (struct detection_region){(int)x1, (int)y1, (int)x2, (int)y2};
    return true;
}

/* Writes src over dst's region r (same channel count, src the region's size). */
static void paste(struct img *dst, const struct img *src, const struct detection_region *r)
{
    const size_t bytes = (size_t)(r->x2 - r->x1) * (size_t)dst->channels;
    for (int y = r->y1; y < r->y2; y++)
        memcpy(img_row(dst, y) + (size_t)r->x1 * (size_t)dst->channels, img_row(src, y - r->y1),
               bytes);
}

/* Runs op on region r of im, in place. */
static int augment_region(struct img *im, const struct detection_region *r, detection_crop_op op,
                          const void *ctx, struct rng *noise, struct eng_error *err)
{
    struct img *crop = img_crop(im, r->y1, r->x1, r->y2 - r->y1, r->x2 - r->x1, err);
    struct img *done = crop ? op(crop, ctx, noise, err) : NULL;
    img_free(crop);
    if (!done) return -1;
    int rc = 0;
    if (done->width != r->x2 - r->x1 || done->height != r->y2 - r->y1 ||
        done->channels != im->channels)
        rc = eng_fail(err, ENG_INTERNAL, "a box op changed the size or channels of its region");
    else
        paste(im, done, r);
    img_free(done);
    return rc;
}

struct img *detection_only_boxes(const struct img *in, const struct target_box *boxes, size_t count,
                                 double prob, detection_crop_op op, const void *ctx,
                                 struct rng *noise, struct eng_error *err)
{
    struct img *out = img_clone(in, err);
    size_t *order = malloc((count + 1) * sizeof *order);
    if (!out || !order) {
        img_free(out);
        free(order);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for box ops"), NULL;
    }
    for (size_t i = 0; i < count; i++)
        order[i] = i;
    for (size_t i = count; i-- > 1;) {
        const size_t j = rng_below(noise, (uint32_t)(i + 1));
        const size_t swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
    for (size_t k = 0; k < count; k++) {
        struct detection_region r;
        if (!(rng_uniform(noise) < prob)) continue;
        if (!detection_box_region(&boxes[order[k]], in->width, in->height, &r)) continue;
        if (augment_region(out, &r, op, ctx, noise, err) != 0) {
            img_free(out);
            out = NULL;
            break;
        }
    }
    free(order);
    return out;
}

/* Half a side of the cutout: trunc(pad_fraction * (side / 2)), as the reference's
 * tf.to_int32(pad_fraction * (box_height / 2)). */
static int half_side(double pad_fraction, int side)
{
    return (int)(pad_fraction * (side / 2.0));
}

struct img *detection_bbox_cutout(const struct img *in, const struct target_box *boxes,
                                  size_t count, double pad_fraction, const uint8_t fill[4],
                                  struct rng *noise, struct eng_error *err)
{
    struct img *out = img_clone(in, err);
    struct detection_region r;
    if (!out || count == 0) return out;
    const struct target_box *chosen = &boxes[rng_below(noise, (uint32_t)count)];
    if (!detection_box_region(chosen, in->width, in->height, &r)) return out;
    const int cy = r.y1 + (int)rng_below(noise, (uint32_t)(r.y2 - r.y1));
    const int cx = r.x1 + (int)rng_below(noise, (uint32_t)(r.x2 - r.x1));
    const int half_h = half_side(pad_fraction, r.y2 - r.y1);
    const int half_w = half_side(pad_fraction, r.x2 - r.x1);
    const int y1 = cy - half_h < 0 ? 0 : cy - half_h;
    const int y2 = cy + half_h > in->height ? in->height : cy + half_h;
    const int x1 = cx - half_w < 0 ? 0 : cx - half_w;
    const int x2 = cx + half_w > in->width ? in->width : cx + half_w;
    /* Alpha stays: the reference works on RGB. */
    const int c = out->channels, colours = c == 4 ? 3 : c;
    for (int y = y1; y < y2; y++)
        for (int x = x1; x < x2; x++)
            memcpy(img_row(out, y) + (size_t)x * (size_t)c, fill, (size_t)colours);
    return out;
}
