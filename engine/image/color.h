/* Colour and point ops, bit-exact with torchvision 0.14's transforms.functional applied to a PIL
 * image (Pillow 9.4); tests/parity/gen_color.py writes the fixtures that hold them to it.
 *
 * Each op returns a new image (free it with img_free) or NULL with err set; the input is never
 * modified. Inputs have 1 (L), 3 (RGB) or 4 (RGBA) channels, and each op does what the reference
 * does on a PIL image of that mode:
 * - invert, posterize, solarize, autocontrast, equalize: L and RGB; Pillow raises for RGBA, and
 *   so these fail with ENG_UNSUPPORTED.
 * - brightness, color, contrast, sharpness: all three; RGBA keeps its alpha unchanged and the
 *   colour channels are not premultiplied. color leaves an L image as it is.
 * - solarize_add: L and RGB; timm returns other modes unchanged, so RGBA comes back as a copy.
 * Bad arguments (and a NULL or malformed image) fail with ENG_INVALID. */
#ifndef AUGSERVE_ENGINE_IMAGE_COLOR_H
#define AUGSERVE_ENGINE_IMAGE_COLOR_H

#include "core/img.h"

/* 255 - v. */
struct img *img_invert(const struct img *src, struct eng_error *err);

/* Keeps the top bits (0..8) of each sample; 0 gives black. */
struct img *img_posterize(const struct img *src, int bits, struct eng_error *err);

/* Samples >= threshold become 255 - v; any threshold but NaN (above 255 nothing changes). */
struct img *img_solarize(const struct img *src, double threshold, struct eng_error *err);

/* timm's SolarizeAdd: samples < threshold get addition added, clipped to 0..255. */
struct img *img_solarize_add(const struct img *src, int addition, int threshold,
                             struct eng_error *err);

/* ImageEnhance.Brightness/Color/Contrast/Sharpness: Image.blend of a degenerate image (black;
 * the grayscale of each pixel; the mean gray; the SMOOTH-filtered image) with the input, factor
 * 0 giving the degenerate and 1 the input. factor is finite and >= 0; color is
 * F.adjust_saturation. */
struct img *img_brightness(const struct img *src, double factor, struct eng_error *err);
struct img *img_color(const struct img *src, double factor, struct eng_error *err);
struct img *img_contrast(const struct img *src, double factor, struct eng_error *err);
struct img *img_sharpness(const struct img *src, double factor, struct eng_error *err);

/* Image.blend(a, b, alpha): a + alpha * (b - a) per sample, alpha included, as Pillow computes
 * it; a and b have the same size and channels, alpha is finite and >= 0 (above 1 it extrapolates,
 * clipped to 0..255). */
struct img *img_blend(const struct img *a, const struct img *b, double alpha,
                      struct eng_error *err);

/* ImageOps.autocontrast and equalize: per channel, from that channel's histogram. */
struct img *img_autocontrast(const struct img *src, struct eng_error *err);
struct img *img_equalize(const struct img *src, struct eng_error *err);

/* L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16, alpha ignored. keep_channels 0 gives
 * one channel (F.rgb_to_grayscale(img, 1)); 1 gives as many as the input has with R = G = B, as
 * RandomGrayscale does (num_output_channels = the input's), which torchvision refuses for RGBA:
 * ENG_UNSUPPORTED. */
struct img *img_grayscale(const struct img *src, int keep_channels, struct eng_error *err);

#endif
