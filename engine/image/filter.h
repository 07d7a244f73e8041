/* Pillow's built-in convolution filters (ImageFilter.BLUR and SMOOTH), bit-exact with Pillow 9.4:
 * the kernels' float arithmetic gives, per sample, (n + d / 2) / d for the integer weighted sum n
 * of the neighbourhood and the kernel's divisor d (16 for BLUR, whose weights / 16 are exact in
 * float; 13 for SMOOTH, where n / 13 + 0.5 is never within float error of an integer). The
 * border (1 sample wide for SMOOTH, 2 for BLUR), and every sample of an image smaller than the
 * kernel, is copied from the input, as Pillow does. All channels are filtered, alpha included.
 * tests/parity/gen_ctaugment.py asserts both forms against Pillow before it writes fixtures.
 *
 * Each returns a new image or NULL with err set (ENG_INVALID for a malformed image). */
#ifndef AUGSERVE_ENGINE_IMAGE_FILTER_H
#define AUGSERVE_ENGINE_IMAGE_FILTER_H

#include "core/img.h"

/* BLUR: the 16 samples on the ring of the 5 x 5 square around each sample, weight 1 each. */
struct img *img_filter_blur(const struct img *src, struct eng_error *err);

/* SMOOTH: the 3 x 3 square, the centre weighing 5 and its neighbours 1. */
struct img *img_filter_smooth(const struct img *src, struct eng_error *err);

#endif
