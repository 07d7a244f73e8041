/* Erasing, noise and blur ops with concrete arguments: the caller makes every random choice that
 * is not per pixel (boxes, frequencies, signs) and passes it in; per-pixel randomness comes from
 * the `noise` stream it gives, which the op advances. tests/parity/gen_noise.py writes the
 * fixtures that hold these to their references.
 *
 * Every op reads `in` (1, 3 or 4 channels; never modified) and returns a new image the caller
 * frees with img_free, or NULL with err set (ENG_INVALID for a bad argument or a malformed image,
 * ENG_NO_MEMORY). err may be NULL. The ops act on the colour channels only: an RGBA image keeps
 * its alpha as it is, and value arrays of four use their first one (L) or three (RGB, RGBA).
 *
 * Boxes are cut to the image; a box that misses it leaves the image unchanged.
 *
 * Noise on the [0, 1] scale: each colour sample v becomes
 *     trunc(clamp((float)v / 255 + n, 0, 1) * 255)
 * in float32, n being a float32 noise value. That is what the torchvision pipeline to_tensor ->
 * add -> clamp(0, 1) -> to_pil_image gives, as to_pil_image converts with mul(255).byte(): it
 * truncates, so zero-mean noise lowers the mean by about half a level. v / 255 * 255 gives v back
 * for every v, so n = 0 changes nothing. */
#ifndef AUGSERVE_ENGINE_IMAGE_NOISE_H
#define AUGSERVE_ENGINE_IMAGE_NOISE_H

#include <stdint.h>

#include "core/img.h"
#include "core/rng.h"

/* Cutout (DeVries & Taylor 2017) as its reference code: rows clip(cy - size / 2, 0, height) up
 * to clip(cy + size / 2, 0, height), columns likewise, set to fill. Both halves are size / 2
 * rounded down, so an odd size cuts a square of size - 1. size >= 0. */
struct img *img_cutout(const struct img *in, int cx, int cy, int size, const uint8_t fill[4],
                       struct eng_error *err);

/* F.erase on the height x width box at (top, left), cut to the image (F.erase would read
 * negative starts from the end, Python-style; here they clip). height, width >= 0.
 * random == 0: each colour sample becomes value[channel]; noise is not used (may be NULL).
 * random != 0: each colour sample of the box, rows top to bottom, pixels left to right, channels
 * in order, becomes rng_below(noise, 256); value is not used (may be NULL). torchvision's
 * RandomErasing(value="random") draws standard normals on a normalised float tensor, which has no
 * uint8 meaning; uniform bytes are the uint8 counterpart. */
struct img *img_erase(const struct img *in, int top, int left, int height, int width,
                      const uint8_t value[4], int random, struct rng *noise, struct eng_error *err);

/* Gaussian noise of standard deviation sigma (finite, >= 0) on the [0, 1] scale: one
 * rng_normal(noise) per colour sample, row-major and channel-interleaved, n = (float)(sigma * z),
 * converted back as described above. */
struct img *img_gaussian_noise(const struct img *in, double sigma, struct rng *noise,
                               struct eng_error *err);

/* Patch Gaussian (Lopes et al. 2019): img_gaussian_noise inside the Cutout box of side
 * patch_size (>= 0) centred at (cx, cy) and nowhere else; normals are drawn for the samples of
 * that box only, in the same order. */
struct img *img_patch_gaussian(const struct img *in, int cx, int cy, int patch_size, double sigma,
                               struct rng *noise, struct eng_error *err);

/* Fourier-basis noise (Yin et al. 2019): channel c gets n = (float)(eps * sign[c] * U(y, x)) on
 * the [0, 1] scale, U being the real part of the inverse DFT of a spectrum that is 1 at (i, j)
 * and at (-i, -j), scaled to unit L2 norm over the height x width plane:
 *     U(y, x) = A * cos(2 pi (i y / height + j x / width)),
 * A = sqrt(2 / (height * width)), or sqrt(1 / (height * width)) when (i, j) is its own conjugate
 * (both indices 0 or Nyquist: 2i = 0 mod height and 2j = 0 mod width). (0, 0) is allowed and
 * adds the constant eps / sqrt(height * width). i and j are taken modulo height and width, so
 * negative frequencies work. eps is finite and >= 0; sign[c] is -1 or 1 (sign[0] alone for L). */
struct img *img_fourier_noise(const struct img *in, int i, int j, double eps, const int sign[3],
                              struct eng_error *err);

/* F.gaussian_blur with kernel_size x kernel_size (odd, >= 1) and sigma_x (across), sigma_y
 * (down), bit-exact with torchvision 0.14 on torch 1.13: its float32 kernel, reflect padding,
 * and its conv2d's fused multiply-adds over the 2-D kernel, rounded half to even. As in torch,
 * the padding kernel_size / 2 must be smaller than both sides (ENG_INVALID otherwise). sigmas are
 * finite, > 0 and nonzero as float32. Cost: kernel_size^2 fused multiply-adds per sample, and
 * kernel_size rows of floats. */
struct img *img_gaussian_blur(const struct img *in, int kernel_size, double sigma_x, double sigma_y,
                              struct eng_error *err);

/* The 1-D float32 kernel img_gaussian_blur uses, torch's _get_gaussian_kernel1d bit for bit:
 * exp(-0.5 (x / sigma)^2) for x = -(size / 2) .. size / 2, divided by its sum, with torch's
 * SLEEF exp and summation order. weights holds size values. Returns 0, or -1 with err set. */
int img_gaussian_kernel(int size, double sigma, float *weights, struct eng_error *err);

#endif
