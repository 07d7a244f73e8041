/* The kernels of the detection AutoAugment's box-aware ops (Zoph et al. 2019, "Learning Data
 * Augmentation Strategies for Object Detection"; the TPU repository's
 * models/official/detection/utils/autoaugment_utils.py) that work inside boxes: the
 * *_Only_BBoxes family and BBox_Cutout. Boxes are absolute xyxy (targets.h); the ops that move
 * whole images (Rotate_BBox, ...) reuse the geometric kernels and targets_apply_affine.
 *
 * The pixels of a box are the ones it covers: columns floor(x1) to ceil(x2) - 1, rows likewise.
 * The reference converts normalised corners with int() and takes int(width * x_max) itself as the
 * last column, one past the box; here a box never reaches a pixel outside it. */
#ifndef AUGSERVE_ENGINE_IMAGE_DETECTION_H
#define AUGSERVE_ENGINE_IMAGE_DETECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/img.h"
#include "core/rng.h"
#include "image/targets.h"

/* Pixels [x1, x2) x [y1, y2). */
struct detection_region {
    int x1, y1, x2, y2;
};

/* The pixels box b covers in a width x height image; false when it covers none. */
bool detection_box_region(const struct target_box *b, int width, int height,
                          struct detection_region *r);

/* What an *_Only_BBoxes op does to the pixels of one box: a new image of the crop's size, or NULL
 * with err. ctx is the caller's. */
typedef struct img *(*detection_crop_op)(const struct img *crop, const void *ctx, struct rng *noise,
                                         struct eng_error *err);

/* The reference's _apply_multi_bbox_augmentation: the boxes in a random order, each in turn with
 * probability prob, its pixels cut from the current image, run through op and put back, so later
 * boxes see what earlier ones did where they overlap. Draws from noise, in this order: the order
 * (a Fisher-Yates shuffle: for i = count - 1 down to 1, rng_below(i + 1) picks the box swapped
 * into place i), then for each box in that order one rng_uniform (the box is augmented when it is
 * below prob), followed by whatever op draws for it. */
struct img *detection_only_boxes(const struct img *in, const struct target_box *boxes, size_t count,
                                 double prob, detection_crop_op op, const void *ctx,
                                 struct rng *noise, struct eng_error *err);

/* The reference's bbox_cutout: one box drawn uniformly (rng_below(count)), a centre drawn among
 * its pixels (the row, then the column, each rng_below), and a rectangle of half-sides
 * trunc(pad_fraction * box_height / 2) and trunc(pad_fraction * box_width / 2) about it,
 * [cy - half_h, cy + half_h) x [cx - half_w, cx + half_w) clipped to the image, set to fill in
 * the colour channels. The image unchanged without boxes. */
struct img *detection_bbox_cutout(const struct img *in, const struct target_box *boxes,
                                  size_t count, double pad_fraction, const uint8_t fill[4],
                                  struct rng *noise, struct eng_error *err);

#endif
