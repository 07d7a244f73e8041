/* Simple Copy-Paste (Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation Method
 * for Instance Segmentation"), as torchvision's detection reference implements it
 * (references/detection/transforms.py: ScaleJitter, FixedSizeCrop, RandomHorizontalFlip, then
 * _copy_paste):
 *
 * 1. each image gets large-scale jittering: resized by min(out_h / h, out_w / w) * s with s
 *    uniform in [scale_lo, scale_hi] (bilinear; masks nearest), then cropped at a random offset
 *    (one draw for both axes) or padded right and bottom with fill to out_w x out_h, then
 *    mirrored left-right with probability hflip_prob;
 * 2. a random subset of src's objects is chosen as torchvision does: n indices drawn uniformly
 *    from [0, n) with repetition, duplicates removed;
 * 3. a = the union of the chosen masks, optionally blurred (Gaussian, blend_sigma):
 *    out = dst (1 - a) + src a;
 * 4. dst's masks lose the pixels of the union; every box becomes its mask's extent; objects with
 *    no pixel left (occluded, or cropped away) or fewer than min_area pixels are dropped.
 *
 * Unlike the reference, pasted boxes are recomputed from their masks as well, and boxes are the
 * masks' pixel extent (a one-pixel mask is a 1x1 box, not a degenerate one).
 *
 * dst's keypoints follow its jittering (pasting leaves them visible), and what dst_targets had
 * already dropped stays listed first in the result's dropped list, so a paste can sit in the
 * middle of a policy. */
#ifndef AUGSERVE_ENGINE_IMAGE_COPY_PASTE_H
#define AUGSERVE_ENGINE_IMAGE_COPY_PASTE_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "core/img.h"
#include "core/rng.h"
#include "image/targets.h"

/* Large-scale jittering ranges of the paper. */
#define COPY_PASTE_SSJ_LO 0.8
#define COPY_PASTE_SSJ_HI 1.25
#define COPY_PASTE_LSJ_LO 0.1
#define COPY_PASTE_LSJ_HI 2.0
/* Larger sigmas blur the alpha past anything useful and cost kernel_size^2 per pixel. */
#define COPY_PASTE_MAX_BLEND_SIGMA 50.0

struct copy_paste_params {
    double scale_lo, scale_hi; /* 0 < lo <= hi */
    double hflip_prob;         /* in [0, 1]; torchvision's 0.5 */
    double blend_sigma;        /* 0: hard edges; the reference blends with sigma 2 */
    long min_area;             /* objects with fewer pixels are dropped */
    int out_width, out_height; /* 0: dst's size */
    uint64_t max_pixels;       /* cap on a resized image's area (ENG_TOO_LARGE past it); 0: none */
    uint8_t fill[4];           /* padding, per channel of the output */
};

/* What the jittering drew for one image, for the response's trace. */
struct copy_paste_jitter {
    double scale;
    int width, height; /* after the resize */
    int top, left;     /* the crop's origin in the resized image (0 when padded) */
    int flipped;
};

/* {"scale", "width", "height", "top", "left", "flipped"}; the caller owns the reference. */
json_t *copy_paste_jitter_json(const struct copy_paste_jitter *j);

struct copy_paste_result {
    struct img *image;
    /* The objects: dst's survivors first, then the pasted ones, each in its input order. ids are
     * the inputs' ids; from_src[i] says whose. dropped lists dst's objects that were removed
     * (occluded, outside or min_area) and src's chosen ones that were (outside or min_area),
     * with from_src likewise in dropped_from_src. */
    struct targets *targets;
    uint8_t *from_src;
    uint8_t *dropped_from_src;
    struct copy_paste_jitter jitter[2]; /* dst, src */
};

/* Pastes src's objects onto dst (image a and image b in messages). Both target sets need masks (or
 * no objects); images have 1, 3 or 4 channels (the output has the larger count). Draws from rng in
 * a fixed order (dst's jitter, src's, then the choice), so the same stream gives the same result.
 * 0, or -1 with err. */
int copy_paste(const struct img *dst, const struct targets *dst_targets, const struct img *src,
               const struct targets *src_targets, const struct copy_paste_params *params,
               struct rng *rng, struct copy_paste_result *out, struct eng_error *err);

void copy_paste_result_free(struct copy_paste_result *r);

/* Every draw of one paste, made before any pixel is touched: the policy graph's CopyPaste node
 * makes them when it samples, so its trace shows them. */
struct copy_paste_draws {
    struct copy_paste_jitter jitter[2]; /* dst, src */
    int *chosen;                        /* src's chosen objects, by position, ascending */
    size_t chosen_count;
};

/* The draws for a dst_w x dst_h dst and a src_w x src_h src holding src_count objects, in
 * copy_paste's order (dst's jitter, src's, then the choice). The choice is among all src_count
 * objects, where copy_paste chooses among those the jittering leaves: sampling cannot see the
 * masks, and a chosen object that the jittering crops away is dropped (outside) instead. 0, or -1
 * with err (a jittered size past max_pixels; no memory). */
int copy_paste_draw(const struct copy_paste_params *params, int dst_w, int dst_h, int src_w,
                    int src_h, size_t src_count, struct rng *rng, struct copy_paste_draws *out,
                    struct eng_error *err);
void copy_paste_draws_free(struct copy_paste_draws *d);

/* copy_paste with its draws made (copy_paste_draw's for these images): pastes the chosen objects
 * of src that the jittering leaves. */
int copy_paste_drawn(const struct img *dst, const struct targets *dst_targets,
                     const struct img *src, const struct targets *src_targets,
                     const struct copy_paste_params *params, const struct copy_paste_draws *draws,
                     struct copy_paste_result *out, struct eng_error *err);

#endif
