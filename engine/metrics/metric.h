/* Image similarity metrics: SSIM and MS-SSIM, PSNR and MSE on pixels; LPIPS from the tapped
 * features of a network; the 2AFC score of a metric against human judgements and the BAPPS
 * folder layout those come in.
 *
 * The area runs no network: for LPIPS the server runs the backbone (its model repository,
 * server/perceptual.c) and hands the tapped features here, so metrics depends on core alone.
 * Every function is thread-safe.
 *
 * Pixel metrics compare two images of the same size on "planes" of doubles: the colour channels
 * (a greyscale image against a colour one counts as R = G = B; alpha is dropped) or the luma,
 * L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16, exactly Pillow's convert("L"), so a
 * client can reproduce a score with skimage on PIL images. Multi-plane scores are the mean over
 * planes, as skimage's channel_axis gives. */
#ifndef AUGSERVE_ENGINE_METRICS_METRIC_H
#define AUGSERVE_ENGINE_METRICS_METRIC_H

#include <stddef.h>

#include "core/error.h"
#include "core/img.h"

/* SSIM's Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11 taps), as skimage's
 * structural_similarity(gaussian_weights=True) uses it: images need at least 11 pixels a side. */
#define METRIC_SSIM_MIN_SIDE 11
/* MS-SSIM: 5 scales, each half the last (2x2 means, an odd last row or column dropped); the
 * fifth must still hold the 11-pixel window: 11 * 2^4. */
#define METRIC_MS_SSIM_SCALES   5
#define METRIC_MS_SSIM_MIN_SIDE 176

enum metric_planes {
    METRIC_RGB,  /* each colour channel, then the mean */
    METRIC_LUMA, /* Pillow's L */
};

/* skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=255, K1=0.01, K2=0.03): the mean of the SSIM map over
 * the region where the window fits (5 pixels cropped at every border), averaged over planes.
 * ENG_INVALID when the sizes differ or a side is below METRIC_SSIM_MIN_SIDE. */
int metric_ssim(const struct img *a, const struct img *b, enum metric_planes planes, double *ssim,
                struct eng_error *err);

/* MS-SSIM (Wang, Simoncelli and Bovik 2003) with weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333:
 * the product over scales 1-4 of the mean contrast-structure term and, at scale 5, of the mean
 * SSIM, each to its weight; the mean over planes. A negative mean (anti-correlated structure) is
 * taken as 0, as tf.image.ssim_multiscale and pytorch_msssim do, where the paper's formula has no
 * real value: the score is then 0. ENG_INVALID for a side below METRIC_MS_SSIM_MIN_SIDE. */
int metric_ms_ssim(const struct img *a, const struct img *b, enum metric_planes planes,
                   double *ms_ssim, struct eng_error *err);

/* The mean squared difference of the samples (0-255), over every plane. */
int metric_mse(const struct img *a, const struct img *b, enum metric_planes planes, double *mse,
               struct eng_error *err);

/* 10 log10(255^2 / mse): +inf for identical images (mse 0). */
double metric_psnr(double mse);

/* The most memory metric_ssim and metric_ms_ssim (ssim nonzero) or metric_mse hold at once for a
 * pair of a and b, in bytes: both images' planes in double, and SSIM's seven filtered maps of a
 * plane. A caller refuses a pair past its budget with this before scoring it. */
double metric_working_bytes(const struct img *a, const struct img *b, enum metric_planes planes,
                            int ssim);

/* ---- LPIPS ------------------------------------------------------------------------------------
 * Zhang et al. 2018, as the lpips package (v0.1) computes it: per tapped layer, each spatial
 * feature vector is unit-normalised over channels (x / (sqrt(sum x^2) + 1e-10)), the squared
 * difference of the two images' vectors is summed over channels with non-negative weights (the
 * 'lin' 1x1 convolution; all 1 for the "baseline" variant), and averaged over space; the layers'
 * averages are summed. */

/* A row-major [n, c, h, w] tensor: one tapped layer for a batch of n images. */
struct metric_tensor {
    const float *data;
    int n, c, h, w;
};

/* The network input for count images of one size (3 channels, or 1 taken as R = G = B; alpha
 * dropped): x = pixel / 127.5 - 1 in [-1, 1], then (x - shift[c]) / scale[c] per channel, each
 * image written planar (CHW, 3 * height * width floats) after the previous one at out, on up to
 * `threads` threads (0: OpenMP's default). */
void metric_lpips_inputs(struct img *const *images, int count, const float shift[3],
                         const float scale[3], float *out, int threads);

/* LPIPS between images pairs[2k] and pairs[2k + 1] of the batch the n_layers tensors hold, into
 * distances[k], for k < n_pairs, on up to `threads` threads (0: OpenMP's default). weights[k] has
 * layers[k].c entries, or is NULL for all 1. With maps (not NULL; maps[k] holds height x width
 * floats), also each pair's spatial distance: each layer's map upsampled bilinearly
 * (align_corners=False) to height x width and summed, row-major. ENG_INVALID when an index is
 * past the batch or a layer is empty. */
int metric_lpips_pairs(const struct metric_tensor *layers, const float *const *weights,
                       size_t n_layers, const int *pairs, int n_pairs, double *distances,
                       int height, int width, float *const *maps, int threads,
                       struct eng_error *err);

/* ---- 2AFC -------------------------------------------------------------------------------------
 * Two-alternative forced choice: for triplets (ref, p0, p1) where a share h of people judged p1
 * closer to ref, a metric scores mean((d0 < d1)(1 - h) + (d1 < d0) h + 0.5 (d0 == d1)), where d0
 * and d1 are its distances from ref: 1 when it always agrees with everyone. */
double metric_2afc(const double *d0, const double *d1, const double *h, size_t n);

/* Reads a NumPy .npy file's bytes (format 1.0-3.0, C order, little-endian float32 or float64, any
 * shape) into *values (malloc'd) and *count. ENG_UNDECODABLE or ENG_UNSUPPORTED otherwise. */
int metric_npy_read(const void *data, size_t size, double **values, size_t *count,
                    struct eng_error *err);
/* metric_npy_read on a file (at most 64 MB). */
int metric_npy_read_file(const char *path, double **values, size_t *count, struct eng_error *err);

/* A BAPPS 2AFC folder: ref/, p0/, p1/ with one image per triplet under the same file name, and
 * judge/ with <name without extension>.npy holding h. Triplets are in file-name order. */
struct metric_bapps {
    size_t count;
    char **ref, **p0, **p1; /* paths */
    double *h;
};
/* ENG_INVALID naming the file when a triplet lacks a part or its judgement is not one number in
 * [0, 1]; ENG_UNDECODABLE for an unreadable folder. */
int metric_bapps_read(const char *dir, struct metric_bapps *out, struct eng_error *err);
void metric_bapps_free(struct metric_bapps *b);

#endif
