/* Geometric ops with pixel parity to torchvision 0.14 functional ops on PIL images (Pillow 9.4).
 *
 * Every op reads `in` (1, 3 or 4 channels; never modified) and returns a new image the caller
 * frees with img_free, or NULL with err set (ENG_INVALID for a bad argument, ENG_NO_MEMORY).
 * err may be NULL.
 *
 * Fill: `fill` holds one value per channel (fill[0] for L, fill[0..2] for RGB, fill[0..3] for
 * RGBA); with has_fill false it is ignored (may be NULL) and the area is 0, as torchvision's
 * fill=None. A scalar torchvision fill v is {v, v, v, v}, alpha included. As in PIL, RGBA with
 * bilinear interpolation works on premultiplied alpha, so there the fill comes out
 * un-premultiplied: (100, 50, 255, 128) gives (199, 99, 255, 128). */
#ifndef AUGSERVE_ENGINE_IMAGE_GEOMETRY_H
#define AUGSERVE_ENGINE_IMAGE_GEOMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/img.h"

enum img_interp { IMG_NEAREST, IMG_BILINEAR };

enum img_pad_mode { IMG_PAD_CONSTANT, IMG_PAD_EDGE, IMG_PAD_REFLECT, IMG_PAD_SYMMETRIC };

/* Image.transform(size, AFFINE, a, resample, fillcolor) at the input's size: output pixel (x, y)
 * samples the input at (a0 x + a1 y + a2, a3 x + a4 y + a5), pixel centres at +0.5. */
struct img *img_transform(const struct img *in, const double a[6], enum img_interp interp,
                          const uint8_t fill[4], bool has_fill, struct eng_error *err);

/* F.affine: angle in degrees (clockwise), translation in pixels (post-rotation), scale > 0, shears
 * in degrees; the centre defaults to (width / 2, height / 2) when has_center is false. */
struct img *img_affine(const struct img *in, double angle, double translate_x, double translate_y,
                       double scale, double shear_x, double shear_y, bool has_center,
                       double center_x, double center_y, enum img_interp interp,
                       const uint8_t fill[4], bool has_fill, struct eng_error *err);

/* F.rotate: counter-clockwise degrees around the image centre, same size (expand=False). */
struct img *img_rotate(const struct img *in, double degrees, enum img_interp interp,
                       const uint8_t fill[4], bool has_fill, struct eng_error *err);

/* AutoAugment's ShearX / ShearY: shear by factor m (x' = x + m * y) about the top-left corner. */
struct img *img_shear_x(const struct img *in, double m, enum img_interp interp,
                        const uint8_t fill[4], bool has_fill, struct eng_error *err);
struct img *img_shear_y(const struct img *in, double m, enum img_interp interp,
                        const uint8_t fill[4], bool has_fill, struct eng_error *err);

/* AutoAugment's TranslateX / TranslateY: pixels is truncated toward zero (its int(magnitude));
 * img_affine takes fractional translations. */
struct img *img_translate_x(const struct img *in, double pixels, enum img_interp interp,
                            const uint8_t fill[4], bool has_fill, struct eng_error *err);
struct img *img_translate_y(const struct img *in, double pixels, enum img_interp interp,
                            const uint8_t fill[4], bool has_fill, struct eng_error *err);

/* F.hflip / F.vflip. */
struct img *img_flip_lr(const struct img *in, struct eng_error *err);
struct img *img_flip_ud(const struct img *in, struct eng_error *err);

/* F.pad with padding [left, top, right, bottom]: constant uses fill (0 without has_fill); edge,
 * reflect and symmetric follow numpy.pad, including its piecewise reflection when a pad is wider
 * than the image. Negative amounts crop that side, as F.pad does. */
struct img *img_pad(const struct img *in, int left, int top, int right, int bottom,
                    enum img_pad_mode mode, const uint8_t fill[4], bool has_fill,
                    struct eng_error *err);

/* F.crop: the height x width box at (top, left); the part outside the image is 0 (alpha too). */
struct img *img_crop(const struct img *in, int top, int left, int height, int width,
                     struct eng_error *err);

/* F.center_crop, zero-padded when the crop is larger than the image. */
struct img *img_center_crop(const struct img *in, int height, int width, struct eng_error *err);

/* F.resize to height x width: PIL's antialiased (support-scaled) bilinear convolution, or its
 * nearest neighbour. */
struct img *img_resize(const struct img *in, int height, int width, enum img_interp interp,
                       struct eng_error *err);

/* Image.resize's filters (Pillow's resampling constants). */
enum img_filter {
    IMG_FILTER_NEAREST,
    IMG_FILTER_BOX,
    IMG_FILTER_BILINEAR,
    IMG_FILTER_HAMMING,
    IMG_FILTER_BICUBIC,
    IMG_FILTER_LANCZOS,
};

/* Image.resize((width, height), filter): a separable convolution, the filter widened by the
 * downscale factor, in PIL's 22-bit fixed point; nearest is its affine scale. */
struct img *img_resize_filter(const struct img *in, int height, int width, enum img_filter filter,
                              struct eng_error *err);

/* F.resized_crop: img_crop then img_resize. */
struct img *img_resized_crop(const struct img *in, int top, int left, int height, int width,
                             int out_height, int out_width, enum img_interp interp,
                             struct eng_error *err);

#endif
