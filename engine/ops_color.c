#include "ops_color.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The integer forms below give exactly what Pillow's float arithmetic gives; the facts they rest
 * on are asserted against Pillow by tests/parity/gen_color.py whenever the fixtures are made. */

static int check_image(const struct img *src, const char *op, struct eng_error *err)
{
    if (!src) return eng_fail(err, ENG_INVALID, "%s: no image", op);
    if (!src->data || src->width < 1 || src->height < 1 ||
        (src->channels != 1 && src->channels != 3 && src->channels != 4) ||
        src->stride < (size_t)src->width * (size_t)src->channels)
        return eng_fail(err, ENG_INVALID, "%s: malformed image (%dx%d, %d channels)", op,
                        src->width, src->height, src->channels);
    return 0;
}

/* ImageOps applies its tables through a helper that accepts only modes L and RGB. */
static int check_l_or_rgb(const struct img *src, const char *op, struct eng_error *err)
{
    if (check_image(src, op, err)) return -1;
    if (src->channels == 4)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "%s: RGBA images are not supported (torchvision's PIL path raises for "
                        "them); accepted: L or RGB",
                        op);
    return 0;
}

static int check_factor(const struct img *src, const char *op, double factor, struct eng_error *err)
{
    if (check_image(src, op, err)) return -1;
    /* Pillow blends with a float factor; past FLT_MAX it would be infinite, and 0 * inf is NaN. */
    if (!(factor >= 0 && factor <= FLT_MAX))
        return eng_fail(err, ENG_INVALID, "%s: factor %g is not a finite number >= 0", op, factor);
    return 0;
}

static inline uint8_t clip8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Pillow's RGB to L, also for RGBA (alpha is ignored, not premultiplied). */
static inline uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

static void identity_lut(uint8_t lut[256])
{
    for (int i = 0; i < 256; i++)
        lut[i] = (uint8_t)i;
}

/* Constant c lets the compiler unroll the channel loop in each specialisation. */
static inline void map_row(const uint8_t *in, uint8_t *out, int width, int c,
                           const uint8_t *const lut[4])
{
    for (int x = 0; x < width; x++, in += c, out += c)
        for (int k = 0; k < c; k++)
            out[k] = lut[k][in[k]];
}

/* lut[k] maps channel k. */
static struct img *map_channels(const struct img *src, const uint8_t *const lut[4],
                                struct eng_error *err)
{
    struct img *dst = img_new(src->width, src->height, src->channels, err);
    if (!dst) return NULL;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = img_row(src, y);
        uint8_t *out = img_row(dst, y);
        switch (src->channels) {
        case 1:
            map_row(in, out, src->width, 1, lut);
            break;
        case 3:
            map_row(in, out, src->width, 3, lut);
            break;
        default:
            map_row(in, out, src->width, 4, lut);
        }
    }
    return dst;
}

static struct img *map_all(const struct img *src, const uint8_t lut[256], struct eng_error *err)
{
    struct img *dst = img_new(src->width, src->height, src->channels, err);
    if (!dst) return NULL;
    size_t n = (size_t)src->width * (size_t)src->channels;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = img_row(src, y);
        uint8_t *out = img_row(dst, y);
        size_t i = 0;
        /* Eight lookups per store; as a plain byte loop, GCC emulates a vector gather that runs
         * at half the speed. */
        for (; i + 8 <= n; i += 8) {
            uint64_t v;
            memcpy(&v, in + i, 8);
            v = (uint64_t)lut[v & 0xff] | (uint64_t)lut[v >> 8 & 0xff] << 8 |
                (uint64_t)lut[v >> 16 & 0xff] << 16 | (uint64_t)lut[v >> 24 & 0xff] << 24 |
                (uint64_t)lut[v >> 32 & 0xff] << 32 | (uint64_t)lut[v >> 40 & 0xff] << 40 |
                (uint64_t)lut[v >> 48 & 0xff] << 48 | (uint64_t)lut[v >> 56] << 56;
            memcpy(out + i, &v, 8);
        }
        for (; i < n; i++)
            out[i] = lut[in[i]];
    }
    return dst;
}

/* (v & keep) ^ flip, 8 samples per instruction (more once vectorised): ten times faster than
 * the lookups of map_all. */
static struct img *map_bitwise(const struct img *src, uint8_t keep, uint8_t flip,
                               struct eng_error *err)
{
    struct img *dst = img_new(src->width, src->height, src->channels, err);
    if (!dst) return NULL;
    uint64_t keep8 = keep * 0x0101010101010101u, flip8 = flip * 0x0101010101010101u;
    size_t n = (size_t)src->width * (size_t)src->channels;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = img_row(src, y);
        uint8_t *out = img_row(dst, y);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t v;
            memcpy(&v, in + i, 8);
            v = (v & keep8) ^ flip8;
            memcpy(out + i, &v, 8);
        }
        for (; i < n; i++)
            out[i] = (uint8_t)((in[i] & keep) ^ flip);
    }
    return dst;
}

/* The colour channels through lut; alpha, which every ImageEnhance degenerate copies from the
 * input, stays as it is. */
static struct img *map_colour(const struct img *src, const uint8_t lut[256], struct eng_error *err)
{
    if (src->channels != 4) return map_all(src, lut, err);
    uint8_t same[256];
    identity_lut(same);
    return map_channels(src, (const uint8_t *const[4]){lut, lut, lut, same}, err);
}

struct img *img_invert(const struct img *src, struct eng_error *err)
{
    if (check_l_or_rgb(src, "invert", err)) return NULL;
    return map_bitwise(src, 0xff, 0xff, err);
}

struct img *img_posterize(const struct img *src, int bits, struct eng_error *err)
{
    if (check_l_or_rgb(src, "posterize", err)) return NULL;
    if (bits < 0 || bits > 8) {
        eng_fail(err, ENG_INVALID, "posterize: bits %d is not in 0..8", bits);
        return NULL;
    }
    return map_bitwise(src, (uint8_t)(0xff00 >> bits), 0, err);
}

struct img *img_solarize(const struct img *src, double threshold, struct eng_error *err)
{
    if (check_l_or_rgb(src, "solarize", err)) return NULL;
    if (isnan(threshold)) {
        eng_fail(err, ENG_INVALID, "solarize: threshold is not a number");
        return NULL;
    }
    uint8_t lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (uint8_t)(i < threshold ? i : 255 - i);
    return map_all(src, lut, err);
}

struct img *img_solarize_add(const struct img *src, int addition, int threshold,
                             struct eng_error *err)
{
    if (check_image(src, "solarize_add", err)) return NULL;
    if (src->channels == 4) return img_clone(src, err);
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) {
        long long v = i < threshold ? (long long)i + addition : i;
        lut[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return map_all(src, lut, err);
}

/* Image.blend(degenerate, image, f) is, per sample, trunc(clip(s + f * (v - s))) computed in
 * float, where s is the degenerate's sample. With x = f * d rounded to float for d = v - s, that
 * is n = s + floor(x), plus one where rounding s + x to float carries it to n + 1: that happens
 * when 1 - frac(x) is at most half the float spacing at n, 2^(e - 24) for n in [2^e, 2^(e + 1))
 * and 2^-25 for n = 0 (the sum then lies in [0.5, 1)), so from some power of two n on. This
 * fills table[s - first][v] for the rows s = first .. first + rows - 1. */
static void blend_rows(double factor, int first, int rows, uint8_t (*table)[256])
{
    int16_t base[511];  /* floor(x) by d + 255; +-1024 where the result saturates whatever s is */
    int16_t carry[511]; /* the n from which the sum carries; 256 (clipped anyway) if none does */
    float f = (float)factor;
    for (int d = -255; d <= 255; d++) {
        float x = f * (float)d;
        int q = 1024, from = 256;
        if (x <= -1024.0f) {
            q = -1024;
        } else if (x < 1024.0f) {
            q = (int)floor(x);
            /* Exact where it can matter: x is then within 2^-16 of q + 1, with no bits below
             * 2^-24. The sum carries once 2^e >= gap * 2^24. */
            double scaled_gap = ((double)q + 1.0 - x) * 16777216.0;
            if (scaled_gap <= 0.5) {
                from = 0;
            } else {
                from = 1;
                while (from < scaled_gap && from < 256)
                    from *= 2;
            }
        }
        base[d + 255] = (int16_t)q;
        carry[d + 255] = (int16_t)from;
    }
    /* Contiguous in v and kept in int16, so the compiler vectorises it eight lanes wide. */
    for (int r = 0; r < rows; r++) {
        int s = first + r;
        const int16_t *b = base + 255 - s, *c = carry + 255 - s;
        for (int v = 0; v < 256; v++) {
            int16_t n = (int16_t)(s + b[v]);
            n = (int16_t)(n + (n >= c[v]));
            n = n < 0 ? 0 : n;
            table[r][v] = (uint8_t)(n > 255 ? 255 : n);
        }
    }
}

/* A degenerate that varies per pixel needs the whole table. */
static uint8_t (*blend_table(double factor, const char *op, struct eng_error *err))[256]
{
    uint8_t(*table)[256] = malloc(256 * sizeof *table);
    if (!table) {
        eng_fail(err, ENG_NO_MEMORY, "%s: out of memory", op);
        return NULL;
    }
    blend_rows(factor, 0, 256, table);
    return table;
}

struct img *img_brightness(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "brightness", factor, err)) return NULL;
    uint8_t lut[1][256];
    blend_rows(factor, 0, 1, lut);
    return map_colour(src, lut[0], err);
}

struct img *img_contrast(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "contrast", factor, err)) return NULL;
    int c = src->channels;
    uint64_t sum = 0;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *p = img_row(src, y);
        if (c == 1)
            for (int x = 0; x < src->width; x++)
                sum += p[x];
        else
            for (int x = 0; x < src->width; x++, p += c)
                sum += luma(p);
    }
    /* ImageStat's mean of the L image, then int(mean + 0.5); the mean's rounding error is far
     * below the 1 / (2 * count) that separates it from a half. */
    uint64_t count = (uint64_t)src->width * (uint64_t)src->height;
    uint8_t lut[1][256];
    blend_rows(factor, (int)((2 * sum + count) / (2 * count)), 1, lut);
    return map_colour(src, lut[0], err);
}

static inline void color_row(const uint8_t *in, uint8_t *out, int width, int c,
                             const uint8_t (*table)[256])
{
    for (int x = 0; x < width; x++, in += c, out += c) {
        const uint8_t *row = table[luma(in)];
        for (int k = 0; k < 3; k++)
            out[k] = row[in[k]];
        if (c == 4) out[3] = in[3];
    }
}

struct img *img_color(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "color", factor, err)) return NULL;
    /* An L image's degenerate, its own grayscale, is itself. */
    if (src->channels == 1) return img_clone(src, err);
    uint8_t(*table)[256] = blend_table(factor, "color", err);
    if (!table) return NULL;
    struct img *dst = img_new(src->width, src->height, src->channels, err);
    for (int y = 0; dst && y < src->height; y++) {
        if (src->channels == 3)
            color_row(img_row(src, y), img_row(dst, y), src->width, 3, table);
        else
            color_row(img_row(src, y), img_row(dst, y), src->width, 4, table);
    }
    free(table);
    return dst;
}

/* One inner row of SMOOTH blended with the source; col holds the vertical 3-sums. SMOOTH weighs
 * the centre 5 and its neighbours 1, and Pillow sums them times float weights w / 13, adds 0.5
 * and truncates: n / 13 + 0.5 is never within 1/26 of an integer, far more than that float error,
 * so the result is (n + 6) / 13 exactly. */
static inline void sharpen_row(const uint16_t *col, const uint8_t *mid, uint8_t *out, int width,
                               int c, const uint8_t (*table)[256])
{
    int colour = c == 4 ? 3 : c;
    for (int x = 1; x < width - 1; x++) {
        for (int k = 0; k < colour; k++) {
            int i = x * c + k;
            unsigned n = col[i - c] + col[i] + col[i + c] + 4u * mid[i];
            out[i] = table[(n + 6) / 13][mid[i]];
        }
    }
}

struct img *img_sharpness(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "sharpness", factor, err)) return NULL;
    /* The filter leaves the border (and images smaller than its 3x3 kernel) as they are, and the
     * degenerate takes the input's alpha; blending v with v gives v back. */
    struct img *dst = img_clone(src, err);
    if (!dst || src->width < 3 || src->height < 3) return dst;
    int c = src->channels;
    size_t n = (size_t)src->width * (size_t)c;
    uint16_t *col = malloc(n * sizeof *col);
    uint8_t(*table)[256] = col ? blend_table(factor, "sharpness", err) : NULL;
    if (!table) {
        if (!col) eng_fail(err, ENG_NO_MEMORY, "sharpness: out of memory");
        free(col);
        img_free(dst);
        return NULL;
    }
    for (int y = 1; y < src->height - 1; y++) {
        const uint8_t *up = img_row(src, y - 1), *mid = img_row(src, y);
        const uint8_t *down = img_row(src, y + 1);
        for (size_t i = 0; i < n; i++)
            col[i] = (uint16_t)(up[i] + mid[i] + down[i]);
        uint8_t *out = img_row(dst, y);
        switch (c) {
        case 1:
            sharpen_row(col, mid, out, src->width, 1, table);
            break;
        case 3:
            sharpen_row(col, mid, out, src->width, 3, table);
            break;
        default:
            sharpen_row(col, mid, out, src->width, 4, table);
        }
    }
    free(table);
    free(col);
    return dst;
}

/* Per-channel histograms of an L or RGB image. */
static void histograms(const struct img *src, uint32_t hist[3][256])
{
    memset(hist, 0, 3 * sizeof *hist);
    for (int y = 0; y < src->height; y++) {
        const uint8_t *p = img_row(src, y);
        if (src->channels == 1) {
            for (int x = 0; x < src->width; x++)
                hist[0][p[x]]++;
        } else {
            for (int x = 0; x < src->width; x++, p += 3) {
                hist[0][p[0]]++;
                hist[1][p[1]]++;
                hist[2][p[2]]++;
            }
        }
    }
}

static struct img *map_by_histogram(const struct img *src,
                                    void (*make_lut)(const uint32_t *, uint8_t *),
                                    struct eng_error *err)
{
    uint32_t hist[3][256];
    uint8_t lut[3][256];
    histograms(src, hist);
    for (int k = 0; k < src->channels; k++)
        make_lut(hist[k], lut[k]);
    return map_channels(src, (const uint8_t *const[4]){lut[0], lut[1], lut[2], NULL}, err);
}

static void autocontrast_lut(const uint32_t *hist, uint8_t *lut)
{
    int lo = 0, hi = 255;
    while (lo < 255 && !hist[lo])
        lo++;
    while (hi > 0 && !hist[hi])
        hi--;
    if (hi <= lo) {
        identity_lut(lut);
        return;
    }
    double scale = 255.0 / (hi - lo), offset = -lo * scale;
    for (int i = 0; i < 256; i++) {
        /* Two statements, so no compiler fuses them into one FMA rounding where Python rounds
         * twice; int() truncates towards zero like the cast. */
        double v = i * scale;
        v += offset;
        lut[i] = clip8((int)v);
    }
}

struct img *img_autocontrast(const struct img *src, struct eng_error *err)
{
    if (check_l_or_rgb(src, "autocontrast", err)) return NULL;
    return map_by_histogram(src, autocontrast_lut, err);
}

/* The step leaves out the count of the highest level present, so levels can map past 255, which
 * Image.point clips. */
static void equalize_lut(const uint32_t *hist, uint8_t *lut)
{
    uint64_t total = 0, last = 0;
    int levels = 0;
    for (int i = 0; i < 256; i++) {
        if (!hist[i]) continue;
        levels++;
        last = hist[i];
        total += hist[i];
    }
    uint64_t step = levels > 1 ? (total - last) / 255 : 0;
    if (!step) {
        identity_lut(lut);
        return;
    }
    uint64_t n = step / 2;
    for (int i = 0; i < 256; i++) {
        uint64_t v = n / step;
        lut[i] = (uint8_t)(v > 255 ? 255 : v);
        n += hist[i];
    }
}

struct img *img_equalize(const struct img *src, struct eng_error *err)
{
    if (check_l_or_rgb(src, "equalize", err)) return NULL;
    return map_by_histogram(src, equalize_lut, err);
}

struct img *img_grayscale(const struct img *src, int keep_channels, struct eng_error *err)
{
    if (check_image(src, "grayscale", err)) return NULL;
    if (keep_channels != 0 && keep_channels != 1) {
        eng_fail(err, ENG_INVALID, "grayscale: keep_channels %d is not 0 or 1", keep_channels);
        return NULL;
    }
    int c = src->channels;
    if (keep_channels && c == 4) {
        eng_fail(err, ENG_UNSUPPORTED,
                 "grayscale: keeping 4 channels is not supported (torchvision's "
                 "rgb_to_grayscale gives 1 or 3); use keep_channels 0 for RGBA");
        return NULL;
    }
    if (c == 1) return img_clone(src, err);
    int out_c = keep_channels ? 3 : 1;
    struct img *dst = img_new(src->width, src->height, out_c, err);
    if (!dst) return NULL;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *p = img_row(src, y);
        uint8_t *out = img_row(dst, y);
        for (int x = 0; x < src->width; x++, p += c, out += out_c) {
            uint8_t l = luma(p);
            out[0] = l;
            if (out_c == 3) out[1] = out[2] = l;
        }
    }
    return dst;
}
