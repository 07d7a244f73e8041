#include "image/noise.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Largest kernel img_gaussian_kernel builds: above any that a 65535-pixel side allows (the
 * padding must stay below the side), and small enough to keep torch_sum's cascade step at 16. */
#define KERNEL_MAX 131071

/* ------------------------------------------------------------------------------------------ */
/* Argument checks and small helpers                                                          */

static int check_input(const struct img *in, const char *op, struct eng_error *err)
{
    if (!in || !in->data) return eng_fail(err, ENG_INVALID, "%s: no input image", op);
    if (in->width < 1 || in->height < 1 ||
        (in->channels != 1 && in->channels != 3 && in->channels != 4) ||
        in->stride < (size_t)in->width * (size_t)in->channels)
        return eng_fail(err, ENG_INVALID,
                        "%s: input image %dx%d with %d channels is not valid (1, 3 or 4 channels)",
                        op, in->width, in->height, in->channels);
    return 0;
}

static int check_noise_args(const char *op, double sigma, const struct rng *noise,
                            struct eng_error *err)
{
    if (!(sigma >= 0 && sigma <= DBL_MAX))
        return eng_fail(err, ENG_INVALID, "%s: sigma %g is not a finite number >= 0", op, sigma);
    if (!noise) return eng_fail(err, ENG_INVALID, "%s: no noise stream", op);
    return 0;
}

/* torch casts sigma to float32 and divides by it: it must stay finite and nonzero there. */
static int check_blur_sigma(const char *op, const char *name, double sigma, struct eng_error *err)
{
    if (!(sigma > 0 && sigma <= FLT_MAX) || !((float)sigma > 0))
        return eng_fail(err, ENG_INVALID,
                        "%s: %s %g is not a finite number > 0 that float32 can hold (%g to %g)", op,
                        name, sigma, (double)FLT_TRUE_MIN, (double)FLT_MAX);
    return 0;
}

/* The channels these ops change: alpha is never touched. */
static inline int colour_channels(const struct img *im)
{
    return im->channels == 4 ? 3 : im->channels;
}

/* Half-open rows [y1, y2) and columns [x1, x2) inside the image; empty when y1 >= y2 or
 * x1 >= x2. */
struct box {
    int y1, y2, x1, x2;
};

static inline int clip(long long v, int n)
{
    return v < 0 ? 0 : v > n ? n : (int)v;
}

/* The reference Cutout's box: np.clip(c - size // 2, 0, n) to np.clip(c + size // 2, 0, n). */
static struct box centred_box(const struct img *im, int cx, int cy, int size)
{
    long long half = size / 2;
    return (struct box){clip(cy - half, im->height), clip(cy + half, im->height),
                        clip(cx - half, im->width), clip(cx + half, im->width)};
}

static struct box corner_box(const struct img *im, int top, int left, int height, int width)
{
    return (struct box){clip(top, im->height), clip((long long)top + height, im->height),
                        clip(left, im->width), clip((long long)left + width, im->width)};
}

/* Every colour sample of the box set to value[channel]. */
static void fill_box(struct img *out, struct box b, const uint8_t value[4])
{
    int c = out->channels, cc = colour_channels(out);
    for (int y = b.y1; y < b.y2; y++) {
        uint8_t *p = img_row(out, y) + (size_t)b.x1 * c;
        for (int x = b.x1; x < b.x2; x++, p += c)
            memcpy(p, value, (size_t)cc);
    }
}

/* (float)v / 255, as to_tensor divides. */
static void unit_scale(float scale[256])
{
    for (int v = 0; v < 256; v++)
        scale[v] = (float)v / 255.0f;
}

/* A noise value as float32. Past +-2 every sample saturates either way, and beyond FLT_MAX the
 * conversion would be undefined. */
static inline float noise_value(double n)
{
    return (float)(n > 2.0 ? 2.0 : n < -2.0 ? -2.0 : n);
}

/* to_tensor -> + n -> clamp(0, 1) -> to_pil_image's mul(255).byte(), in float32. */
static inline uint8_t add_noise(const float scale[256], uint8_t v, float n)
{
    float t = scale[v] + n;
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    return (uint8_t)(t * 255.0f);
}

/* Gaussian noise on the colour samples of the box, in place, drawn in row-major,
 * channel-interleaved order. */
static void noise_box(struct img *out, struct box b, double sigma, struct rng *noise)
{
    float scale[256];
    unit_scale(scale);
    int c = out->channels, cc = colour_channels(out);
    for (int y = b.y1; y < b.y2; y++) {
        uint8_t *p = img_row(out, y) + (size_t)b.x1 * c;
        for (int x = b.x1; x < b.x2; x++, p += c)
            for (int k = 0; k < cc; k++)
                p[k] = add_noise(scale, p[k], noise_value(sigma * rng_normal(noise)));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Cutout, erase, Gaussian noise, Patch Gaussian                                              */

struct img *img_cutout(const struct img *in, int cx, int cy, int size, const uint8_t fill[4],
                       struct eng_error *err)
{
    if (check_input(in, "cutout", err)) return NULL;
    if (size < 0) {
        eng_fail(err, ENG_INVALID, "cutout: size %d is negative; accepted: >= 0", size);
        return NULL;
    }
    if (!fill) {
        eng_fail(err, ENG_INVALID, "cutout: no fill");
        return NULL;
    }
    struct img *out = img_clone(in, err);
    if (out) fill_box(out, centred_box(in, cx, cy, size), fill);
    return out;
}

struct img *img_erase(const struct img *in, int top, int left, int height, int width,
                      const uint8_t value[4], int random, struct rng *noise, struct eng_error *err)
{
    if (check_input(in, "erase", err)) return NULL;
    if (height < 0 || width < 0) {
        eng_fail(err, ENG_INVALID, "erase: box %dx%d has a negative side; accepted: >= 0", width,
                 height);
        return NULL;
    }
    if (random ? !noise : !value) {
        eng_fail(err, ENG_INVALID,
                 random ? "erase: random values need a noise stream" : "erase: no value");
        return NULL;
    }
    struct img *out = img_clone(in, err);
    if (!out) return NULL;
    struct box b = corner_box(in, top, left, height, width);
    if (!random) {
        fill_box(out, b, value);
        return out;
    }
    int c = out->channels, cc = colour_channels(out);
    for (int y = b.y1; y < b.y2; y++) {
        uint8_t *p = img_row(out, y) + (size_t)b.x1 * c;
        for (int x = b.x1; x < b.x2; x++, p += c)
            for (int k = 0; k < cc; k++)
                p[k] = (uint8_t)rng_below(noise, 256);
    }
    return out;
}

struct img *img_gaussian_noise(const struct img *in, double sigma, struct rng *noise,
                               struct eng_error *err)
{
    if (check_input(in, "gaussian_noise", err) ||
        check_noise_args("gaussian_noise", sigma, noise, err))
        return NULL;
    struct img *out = img_clone(in, err);
    if (out) noise_box(out, (struct box){0, in->height, 0, in->width}, sigma, noise);
    return out;
}

struct img *img_patch_gaussian(const struct img *in, int cx, int cy, int patch_size, double sigma,
                               struct rng *noise, struct eng_error *err)
{
    if (check_input(in, "patch_gaussian", err) ||
        check_noise_args("patch_gaussian", sigma, noise, err))
        return NULL;
    if (patch_size < 0) {
        eng_fail(err, ENG_INVALID, "patch_gaussian: patch_size %d is negative; accepted: >= 0",
                 patch_size);
        return NULL;
    }
    struct img *out = img_clone(in, err);
    if (out) noise_box(out, centred_box(in, cx, cy, patch_size), sigma, noise);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Fourier-basis noise                                                                        */

static inline int modulo(int v, int n)
{
    int r = v % n;
    return r < 0 ? r + n : r;
}

struct img *img_fourier_noise(const struct img *in, int i, int j, double eps, const int sign[3],
                              struct eng_error *err)
{
    if (check_input(in, "fourier_noise", err)) return NULL;
    if (!(eps >= 0 && eps <= DBL_MAX)) {
        eng_fail(err, ENG_INVALID, "fourier_noise: eps %g is not a finite number >= 0", eps);
        return NULL;
    }
    if (!sign) {
        eng_fail(err, ENG_INVALID, "fourier_noise: no signs");
        return NULL;
    }
    int c = in->channels, cc = colour_channels(in), h = in->height, w = in->width;
    for (int k = 0; k < cc; k++)
        if (sign[k] != 1 && sign[k] != -1) {
            eng_fail(err, ENG_INVALID, "fourier_noise: sign[%d] is %d; accepted: -1 or 1", k,
                     sign[k]);
            return NULL;
        }
    i = modulo(i, h);
    j = modulo(j, w);
    /* The spectrum's two ones coincide when (i, j) is its own conjugate: then the inverse DFT is
     * cos / (h w) rather than 2 cos / (h w), and cos^2 sums to h w rather than h w / 2. */
    bool own_conjugate = 2 * (long long)i % h == 0 && 2 * (long long)j % w == 0;
    double amplitude = sqrt((own_conjugate ? 1.0 : 2.0) / ((double)h * w));

    /* cos(a + b) = cos a cos b - sin a sin b from a row angle and a column table: h + w pairs of
     * trigonometric calls instead of h w, and each angle reduced exactly (the phase index modulo
     * the period) before it is scaled to radians. */
    double *columns = malloc(2 * (size_t)w * sizeof *columns);
    struct img *out = columns ? img_new(w, h, c, err) : NULL;
    if (!out) {
        if (!columns) eng_fail(err, ENG_NO_MEMORY, "fourier_noise: out of memory");
        free(columns);
        return NULL;
    }
    for (int x = 0; x < w; x++) {
        double a = 2.0 * M_PI * (double)((long long)j * x % w) / w;
        columns[2 * x] = cos(a);
        columns[2 * x + 1] = sin(a);
    }
    float scale[256];
    unit_scale(scale);
    for (int y = 0; y < h; y++) {
        double a = 2.0 * M_PI * (double)((long long)i * y % h) / h;
        double cos_y = cos(a), sin_y = sin(a);
        const uint8_t *src = img_row(in, y);
        uint8_t *dst = img_row(out, y);
        for (int x = 0; x < w; x++, src += c, dst += c) {
            double u = amplitude * (cos_y * columns[2 * x] - sin_y * columns[2 * x + 1]);
            float n = noise_value(eps * u); /* -n is exact: rounding is symmetric */
            for (int k = 0; k < cc; k++)
                dst[k] = add_noise(scale, src[k], sign[k] < 0 ? -n : n);
            if (c == 4) dst[3] = src[3];
        }
    }
    free(columns);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Gaussian blur, as torch 1.13 computes it on a CPU with AVX2                                */

/* SLEEF 3.5's expf_u10 (sleefsimdsp.c xexpf with FMA), which torch's vectorised exp calls for
 * every element of the kernel; glibc's expf differs from it in the last bit for about a third of
 * the arguments. d is <= 0 here. */
static float sleef_expf(float d)
{
    if (d < -104.0f) return 0.0f;
    int q = (int)rintf(d * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    float s = fmaf((float)q, -0.693145751953125f, d);
    s = fmaf((float)q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    /* vldexp2: two steps, so 2^q below the normal range still scales correctly (q >= -150). */
    int half = q >= 0 ? q / 2 : -((1 - q) / 2); /* q >> 1, rounding down */
    return u * ldexpf(1.0f, half) * ldexpf(1.0f, q - half);
}

/* torch's float32 sum of a contiguous vector (ATen/native/cpu/SumKernel.cpp, vectorized inner
 * sum with AVX2): 8-lane vectors taken four at a time into four accumulators, which cascade into
 * higher levels every 16 such rows; then the leftover vectors, the four accumulators, the
 * leftover scalars and the lanes, in that order. Below 2^16 rows (n < 2^21) the cascade step is
 * 16. */
static float torch_sum(const float *v, int n)
{
    enum { LANES = 8, ILP = 4, LEVELS = 4, STEP_BITS = 4 };
    float acc[LEVELS][ILP][LANES] = {{{0}}};
    int vectors = n / LANES, rows = vectors / ILP, r = 0;
    while (r + (1 << STEP_BITS) <= rows) {
        for (int end = r + (1 << STEP_BITS); r < end; r++)
            for (int q = 0; q < ILP; q++)
                for (int l = 0; l < LANES; l++)
                    acc[0][q][l] += v[(r * ILP + q) * LANES + l];
        for (int level = 1; level < LEVELS; level++) {
            for (int q = 0; q < ILP; q++)
                for (int l = 0; l < LANES; l++) {
                    acc[level][q][l] += acc[level - 1][q][l];
                    acc[level - 1][q][l] = 0.0f;
                }
            if (r & ((1 << STEP_BITS) - 1) << (level * STEP_BITS)) break;
        }
    }
    for (; r < rows; r++)
        for (int q = 0; q < ILP; q++)
            for (int l = 0; l < LANES; l++)
                acc[0][q][l] += v[(r * ILP + q) * LANES + l];
    for (int level = 1; level < LEVELS; level++)
        for (int q = 0; q < ILP; q++)
            for (int l = 0; l < LANES; l++)
                acc[0][q][l] += acc[level][q][l];
    for (int t = rows * ILP; t < vectors; t++)
        for (int l = 0; l < LANES; l++)
            acc[0][0][l] += v[t * LANES + l];
    for (int q = 1; q < ILP; q++)
        for (int l = 0; l < LANES; l++)
            acc[0][0][l] += acc[0][q][l];
    float total = 0.0f;
    for (int t = vectors * LANES; t < n; t++)
        total += v[t];
    for (int l = 0; l < LANES; l++)
        total += acc[0][0][l];
    return total;
}

static int build_kernel(const char *op, const char *name, int size, double sigma, float *weights,
                        struct eng_error *err)
{
    if (size < 1 || size % 2 == 0 || size > KERNEL_MAX)
        return eng_fail(err, ENG_INVALID, "%s: kernel size %d is not odd in 1..%d", op, size,
                        KERNEL_MAX);
    if (check_blur_sigma(op, name, sigma, err)) return -1;
    /* torch: x = linspace(-(size / 2), size / 2) (exact integers), exp(-0.5 * (x / sigma)^2) in
     * float32 with sigma cast to float32, then divided by the sum. */
    float s = (float)sigma;
    for (int i = 0; i < size; i++) {
        float a = (float)(i - size / 2) / s;
        weights[i] = sleef_expf(-0.5f * (a * a));
    }
    float sum = torch_sum(weights, size);
    for (int i = 0; i < size; i++)
        weights[i] /= sum;
    return 0;
}

int img_gaussian_kernel(int size, double sigma, float *weights, struct eng_error *err)
{
    if (!weights) return eng_fail(err, ENG_INVALID, "gaussian_kernel: no weights array");
    return build_kernel("gaussian_kernel", "sigma", size, sigma, weights, err);
}

/* torch's reflect padding (numpy's "reflect"); one reflection suffices as the padding is smaller
 * than the side. */
static inline int reflect(int t, int n)
{
    return t < 0 ? -t : t >= n ? 2 * (n - 1) - t : t;
}

/* Row src (width samples of c channels) as floats with pad reflected samples on either side. */
static void widen_row(const uint8_t *src, int width, int c, int pad, float *dst)
{
    for (int x = 1; x <= pad; x++)
        for (int k = 0; k < c; k++)
            dst[(size_t)(pad - x) * c + k] = src[(size_t)x * c + k];
    float *middle = dst + (size_t)pad * c;
    for (size_t t = 0; t < (size_t)width * c; t++)
        middle[t] = src[t];
    for (int x = 1; x <= pad; x++)
        for (int k = 0; k < c; k++)
            middle[(size_t)(width - 1 + x) * c + k] = src[(size_t)(width - 1 - x) * c + k];
}

/* Samples per block of an output row: a block's accumulators (256 bytes) stay in L1 through all
 * the taps, rather than a whole row of them being loaded and stored again for every tap. */
#define BLOCK 64

/* One output row: acc[t] = fma(ky[i] * kx[j], rows[i][t + j c], acc[t]) from 0, over i and then
 * j, which is torch's order for every sample. ky[i] * kx[j] is torch's 2-D kernel, the float32
 * outer product. fmaf is exact everywhere; on x86-64 CPUs with FMA the clone picked at load time
 * makes it a vector instruction rather than a library call (a clone for "arch=haswell" would be
 * picked by CPU model, not by feature). A zero weight (an underflowed tail) leaves acc as it is,
 * so it is skipped. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("fma", "default")))
#endif
#endif
static void
convolve_row(const float *const *rows, const float *kx, const float *ky, int size, int c, int n,
             float *restrict acc)
{
    for (int t0 = 0; t0 < n; t0 += BLOCK) {
        int count = n - t0 < BLOCK ? n - t0 : BLOCK;
        float a[BLOCK] = {0};
        for (int i = 0; i < size; i++) {
            const float *row = rows[i] + t0;
            for (int j = 0; j < size; j++) {
                float weight = ky[i] * kx[j];
                if (weight == 0.0f) continue;
                const float *s = row + (size_t)j * c;
                if (count == BLOCK)
                    for (int b = 0; b < BLOCK; b++)
                        a[b] = fmaf(weight, s[b], a[b]);
                else
                    for (int b = 0; b < count; b++)
                        a[b] = fmaf(weight, s[b], a[b]);
            }
        }
        memcpy(acc + t0, a, (size_t)count * sizeof *a);
    }
}

struct img *img_gaussian_blur(const struct img *in, int kernel_size, double sigma_x, double sigma_y,
                              struct eng_error *err)
{
    static const char op[] = "gaussian_blur";
    if (check_input(in, op, err)) return NULL;
    if (kernel_size < 1 || kernel_size % 2 == 0) {
        eng_fail(err, ENG_INVALID, "%s: kernel_size %d is not odd and >= 1", op, kernel_size);
        return NULL;
    }
    if (check_blur_sigma(op, "sigma_x", sigma_x, err) ||
        check_blur_sigma(op, "sigma_y", sigma_y, err))
        return NULL;
    int w = in->width, h = in->height, c = in->channels, pad = kernel_size / 2;
    if (pad >= w || pad >= h) {
        eng_fail(err, ENG_INVALID,
                 "%s: kernel_size %d pads by %d, which reflect padding allows only on images "
                 "larger than that on both sides (got %dx%d)",
                 op, kernel_size, pad, w, h);
        return NULL;
    }
    /* The kernel_size widened rows an output row reads sit in a ring, slot u mod kernel_size
     * holding padded row u (row reflect(u) of the image): each next output row widens one. */
    size_t n = (size_t)w * c, wide = (size_t)(w + 2 * pad) * c;
    float *kx = malloc((2 * (size_t)kernel_size + (size_t)kernel_size * wide + n) * sizeof *kx);
    const float **rows = malloc((size_t)kernel_size * sizeof *rows);
    struct img *out = kx && rows ? img_new(w, h, c, err) : NULL;
    if (!out) {
        if (!kx || !rows) eng_fail(err, ENG_NO_MEMORY, "%s: out of memory", op);
        free(kx);
        free(rows);
        return NULL;
    }
    float *ky = kx + kernel_size, *ring = ky + kernel_size,
          *acc = ring + (size_t)kernel_size * wide;
    /* Both arguments are checked above, so these cannot fail. */
    build_kernel(op, "sigma_x", kernel_size, sigma_x, kx, err);
    build_kernel(op, "sigma_y", kernel_size, sigma_y, ky, err);
    for (int u = -pad; u < pad; u++)
        widen_row(img_row(in, reflect(u, h)), w, c, pad, ring + modulo(u, kernel_size) * wide);
    for (int y = 0; y < h; y++) {
        widen_row(img_row(in, reflect(y + pad, h)), w, c, pad,
                  ring + modulo(y + pad, kernel_size) * wide);
        for (int i = 0; i < kernel_size; i++)
            rows[i] = ring + modulo(y - pad + i, kernel_size) * wide;
        convolve_row(rows, kx, ky, kernel_size, c, (int)n, acc);
        /* torch.round (half to even), then uint8. The float kernel may sum to a hair above 1. */
        uint8_t *dst = img_row(out, y);
        for (size_t t = 0; t < n; t++) {
            float r = nearbyintf(acc[t]);
            dst[t] = r >= 255.0f ? 255 : (uint8_t)r;
        }
        if (c == 4) {
            const uint8_t *src = img_row(in, y);
            for (int x = 0; x < w; x++)
                dst[4 * x + 3] = src[4 * x + 3];
        }
    }
    free(rows);
    free(kx);
    return out;
}
