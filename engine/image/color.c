#include "image/color.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"

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

#if defined(__x86_64__)
/* A 256-entry lookup of 64 bytes: vpermi2b indexes 128 entries by the low 7 bits, and bit 7
 * picks which half's result to keep. */
AVX512 static inline __m512i lookup64(const __m512i t[4], __m512i v)
{
    __m512i lo = _mm512_permutex2var_epi8(t[0], v, t[1]);
    __m512i hi = _mm512_permutex2var_epi8(t[2], v, t[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
}

/* The lanes of the next 64 bytes, or of the left that remain: loads and stores under it never
 * touch memory past the row. */
AVX512 static inline __mmask64 tail_mask(size_t left)
{
    return left >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1;
}

/* Byte i of a row goes through lut[i % period]. Lanes of a vector take their channel from
 * masks that repeat every 3 vectors when period is 3 (192 bytes) and every vector otherwise. */
AVX512 static inline void map_row_avx512(const uint8_t *in, uint8_t *out, size_t n, int period,
                                         const __m512i t[][4], const __mmask64 chan[3][4])
{
    int phases = period == 3 ? 3 : 1;
    for (size_t i = 0; i < n; i += 64) {
        const __mmask64 *lanes = chan[i / 64 % (size_t)phases];
        __mmask64 m = tail_mask(n - i);
        __m512i v = _mm512_maskz_loadu_epi8(m, in + i);
        __m512i r = lookup64(t[0], v);
        for (int k = 1; k < period; k++)
            r = _mm512_mask_blend_epi8(lanes[k], r, lookup64(t[k], v));
        _mm512_mask_storeu_epi8(out + i, m, r);
    }
}

AVX512 static void map_avx512(const struct img *src, struct img *dst, int period,
                              const uint8_t *const lut[4])
{
    __m512i t[4][4];
    __mmask64 chan[3][4] = {{0}};
    for (int k = 0; k < period; k++)
        for (int q = 0; q < 4; q++)
            t[k][q] = _mm512_loadu_si512(lut[k] + 64 * q);
    for (int b = 0; b < 192; b++)
        chan[b / 64][b % period] |= (__mmask64)1 << (b % 64);
    size_t n = (size_t)src->width * (size_t)src->channels;
    /* A constant period per call lets the compiler unroll the channel loop. */
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = img_row(src, y);
        uint8_t *out = img_row(dst, y);
        switch (period) {
        case 1:
            map_row_avx512(in, out, n, 1, t, chan);
            break;
        case 3:
            map_row_avx512(in, out, n, 3, t, chan);
            break;
        default:
            map_row_avx512(in, out, n, 4, t, chan);
        }
    }
}
#endif

/* Byte i of each row through lut[i % period] with the vector code, when this CPU has it; 0 when
 * the caller must do it. */
static int map_vector(const struct img *src, struct img *dst, int period,
                      const uint8_t *const lut[4])
{
#if defined(__x86_64__)
    if (cpu_avx512()) {
        map_avx512(src, dst, period, lut);
        return 1;
    }
#endif
    return 0;
}

/* lut[k] maps channel k. */
static struct img *map_channels(const struct img *src, const uint8_t *const lut[4],
                                struct eng_error *err)
{
    struct img *dst = img_new(src->width, src->height, src->channels, err);
    if (!dst || map_vector(src, dst, src->channels, lut)) return dst;
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
    if (!dst || map_vector(src, dst, 1, (const uint8_t *const[4]){lut})) return dst;
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

struct img *img_blend(const struct img *a, const struct img *b, double alpha, struct eng_error *err)
{
    if (check_factor(a, "blend", alpha, err) || check_image(b, "blend", err)) return NULL;
    if (a->width != b->width || a->height != b->height || a->channels != b->channels)
        return eng_fail(err, ENG_INVALID, "blend: the images differ in size (%dx%dx%d, %dx%dx%d)",
                        a->width, a->height, a->channels, b->width, b->height, b->channels),
               NULL;
    uint8_t(*table)[256] = blend_table(alpha, "blend", err);
    if (!table) return NULL;
    struct img *dst = img_new(a->width, a->height, a->channels, err);
    size_t n = (size_t)a->width * (size_t)a->channels;
    for (int y = 0; dst && y < a->height; y++) {
        const uint8_t *p = img_row(a, y), *q = img_row(b, y);
        uint8_t *out = img_row(dst, y);
        for (size_t i = 0; i < n; i++)
            out[i] = table[p[i]][q[i]];
    }
    free(table);
    return dst;
}

struct img *img_brightness(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "brightness", factor, err)) return NULL;
    uint8_t lut[1][256];
    blend_rows(factor, 0, 1, lut);
    return map_colour(src, lut[0], err);
}

#if defined(__x86_64__)
/* c * p in dword p: where pixel p of 16 pixels of c channels starts. */
AVX512 static inline __m512i pixel_starts(int c)
{
    __m512i p = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    return _mm512_mullo_epi32(p, _mm512_set1_epi32(c));
}

/* vpermb indexes for luma16: (R, B) and (G, G) of pixel p in the two words of dword p. */
struct luma_index {
    __m512i rb, gg;
};

AVX512 static inline struct luma_index luma_index(int c)
{
    __m512i both = _mm512_mullo_epi32(pixel_starts(c), _mm512_set1_epi32(0x10001));
    return (struct luma_index){_mm512_add_epi32(both, _mm512_set1_epi32(2 << 16)),
                               _mm512_add_epi32(both, _mm512_set1_epi32(0x10001))};
}

/* luma() of 16 pixels, one per dword. vpmaddwd multiplies signed words, which 38470 is not, so
 * G's weight is applied as 2 * 19235: the pairs (R, B) and (G, G) give the two halves of each
 * pixel's sum. */
AVX512 static inline __m512i luma16(__m512i v, struct luma_index index)
{
    const __mmask64 word_low = 0x5555555555555555u;
    __m512i rb = _mm512_maskz_permutexvar_epi8(word_low, index.rb, v);
    __m512i gg = _mm512_maskz_permutexvar_epi8(word_low, index.gg, v);
    __m512i l = _mm512_add_epi32(_mm512_madd_epi16(rb, _mm512_set1_epi32(7471 << 16 | 19595)),
                                 _mm512_madd_epi16(gg, _mm512_set1_epi32(19235 << 16 | 19235)));
    return _mm512_srli_epi32(_mm512_add_epi32(l, _mm512_set1_epi32(0x8000)), 16);
}

/* Sum of luma() over an image of 3 or 4 channels, 16 pixels a step. */
AVX512 static uint64_t luma_sum_avx512(const struct img *src)
{
    int c = src->channels;
    struct luma_index index = luma_index(c);
    __m512i sum = _mm512_setzero_si512();
    for (int y = 0; y < src->height; y++) {
        const uint8_t *row = img_row(src, y);
        for (int x = 0; x < src->width; x += 16) {
            int left = src->width - x < 16 ? src->width - x : 16;
            /* Missing pixels load as black, whose luma is 0. */
            __m512i v = _mm512_maskz_loadu_epi8(tail_mask((size_t)left * (size_t)c), row + x * c);
            /* Each dword holds one luma byte; sad adds them up into 64-bit lanes. */
            sum = _mm512_add_epi64(sum, _mm512_sad_epu8(luma16(v, index), _mm512_setzero_si512()));
        }
    }
    return (uint64_t)_mm512_reduce_add_epi64(sum);
}
#endif

/* The sum of luma() over the image (of the samples, for L). */
static uint64_t luma_sum(const struct img *src)
{
    int c = src->channels;
#if defined(__x86_64__)
    if (c != 1 && cpu_avx512()) return luma_sum_avx512(src);
#endif
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
    return sum;
}

struct img *img_contrast(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "contrast", factor, err)) return NULL;
    uint64_t sum = luma_sum(src);
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

#if defined(__x86_64__)
/* Image.blend of degenerate s with sample v for 16 samples, one per dword, in the float
 * arithmetic of Pillow's ImagingBlend itself, which blend_rows' integers reproduce. */
AVX512 static inline __m512i blend16(__m512 s, __m512i v, __m512 factor)
{
    __m512 t = _mm512_add_ps(s, _mm512_mul_ps(factor, _mm512_sub_ps(_mm512_cvtepi32_ps(v), s)));
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
    return _mm512_cvttps_epi32(t);
}

/* 16 pixels of 3 or 4 channels a step, each channel spread over dwords, blended and packed back;
 * alpha is copied. */
AVX512 static void color_avx512(const struct img *src, struct img *dst, float factor)
{
    const __mmask64 dword_low = 0x1111111111111111u;
    int c = src->channels;
    struct luma_index index = luma_index(c);
    __m512i chan[3];
    for (int k = 0; k < 3; k++)
        chan[k] = _mm512_add_epi32(pixel_starts(c), _mm512_set1_epi32(k));
    /* Byte j of the result comes from dword j / c of channel j % c: R and G through one
     * two-table vpermb (bit 6 picks G), B and alpha blended in. */
    uint8_t pack[64];
    __mmask64 blue = 0, alpha = 0;
    for (int j = 0; j < 64; j++) {
        pack[j] = (uint8_t)(4 * (j / c) + (j % c == 1 ? 64 : 0));
        blue |= (__mmask64)(j % c == 2) << j;
        alpha |= (__mmask64)(j % c == 3) << j;
    }
    __m512i back = _mm512_loadu_si512(pack);
    __m512 f = _mm512_set1_ps(factor);
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = img_row(src, y);
        uint8_t *out = img_row(dst, y);
        for (int x = 0; x < src->width; x += 16) {
            int left = src->width - x < 16 ? src->width - x : 16;
            __mmask64 m = tail_mask((size_t)left * (size_t)c);
            __m512i v = _mm512_maskz_loadu_epi8(m, in + x * c);
            __m512 s = _mm512_cvtepi32_ps(luma16(v, index));
            __m512i r[3];
            for (int k = 0; k < 3; k++)
                r[k] = blend16(s, _mm512_maskz_permutexvar_epi8(dword_low, chan[k], v), f);
            __m512i o = _mm512_permutex2var_epi8(r[0], back, r[1]);
            o = _mm512_mask_blend_epi8(blue, o, _mm512_permutexvar_epi8(back, r[2]));
            o = _mm512_mask_blend_epi8(alpha, o, v);
            _mm512_mask_storeu_epi8(out + x * c, m, o);
        }
    }
}
#endif

struct img *img_color(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "color", factor, err)) return NULL;
    /* An L image's degenerate, its own grayscale, is itself. */
    if (src->channels == 1) return img_clone(src, err);
#if defined(__x86_64__)
    if (cpu_avx512()) {
        struct img *dst = img_new(src->width, src->height, src->channels, err);
        if (dst) color_avx512(src, dst, (float)factor);
        return dst;
    }
#endif
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

/* The vertical 3-sums of the samples around row y. */
static void column_sums(const struct img *src, int y, uint16_t *col)
{
    const uint8_t *up = img_row(src, y - 1), *mid = img_row(src, y);
    const uint8_t *down = img_row(src, y + 1);
    size_t n = (size_t)src->width * (size_t)src->channels;
    for (size_t i = 0; i < n; i++)
        col[i] = (uint16_t)(up[i] + mid[i] + down[i]);
}

#if defined(__x86_64__)
/* sharpen_row, 32 samples a step: the SMOOTH sums in words, where x / 13 for x <= 13 * 255 + 6
 * is x * 5042 >> 16, then blend16 on dwords. */
AVX512 static void sharpen_row_avx512(const uint16_t *col, const uint8_t *mid, uint8_t *out,
                                      int width, int c, __m512 factor)
{
    /* The steps start on a pixel for c = 4 as well, so alpha keeps the same lanes. */
    __mmask64 colour = c == 4 ? 0x7777777777777777u : ~(__mmask64)0;
    size_t end = (size_t)(width - 1) * (size_t)c;
    for (size_t i = (size_t)c; i < end; i += 32) {
        __mmask64 m = tail_mask(end - i) & 0xffffffffu;
        __mmask32 w = (__mmask32)m;
        __m512i n = _mm512_add_epi16(_mm512_maskz_loadu_epi16(w, col + i - c),
                                     _mm512_maskz_loadu_epi16(w, col + i));
        n = _mm512_add_epi16(n, _mm512_maskz_loadu_epi16(w, col + i + c));
        __m256i v = _mm512_castsi512_si256(_mm512_maskz_loadu_epi8(m, mid + i));
        n = _mm512_add_epi16(n, _mm512_slli_epi16(_mm512_cvtepu8_epi16(v), 2));
        __m512i s =
            _mm512_mulhi_epu16(_mm512_add_epi16(n, _mm512_set1_epi16(6)), _mm512_set1_epi16(5042));
        __m512i lo = blend16(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(s))),
                             _mm512_cvtepu8_epi32(_mm256_castsi256_si128(v)), factor);
        __m512i hi =
            blend16(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(s, 1))),
                    _mm512_cvtepu8_epi32(_mm256_extracti128_si256(v, 1)), factor);
        __m256i r = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(lo)),
                                            _mm512_cvtepi32_epi8(hi), 1);
        _mm512_mask_storeu_epi8(out + i, m & colour, _mm512_castsi256_si512(r));
    }
}

AVX512 static void sharpen_avx512(const struct img *src, struct img *dst, uint16_t *col,
                                  float factor)
{
    __m512 f = _mm512_set1_ps(factor);
    for (int y = 1; y < src->height - 1; y++) {
        column_sums(src, y, col);
        sharpen_row_avx512(col, img_row(src, y), img_row(dst, y), src->width, src->channels, f);
    }
}
#endif

/* The inner rows of dst, through the vector code or else a blend table; -1 when out of memory. */
static int sharpen_rows(const struct img *src, struct img *dst, uint16_t *col, double factor,
                        struct eng_error *err)
{
    int c = src->channels;
#if defined(__x86_64__)
    if (cpu_avx512()) {
        sharpen_avx512(src, dst, col, (float)factor);
        return 0;
    }
#endif
    uint8_t(*table)[256] = blend_table(factor, "sharpness", err);
    if (!table) return -1;
    for (int y = 1; y < src->height - 1; y++) {
        column_sums(src, y, col);
        const uint8_t *mid = img_row(src, y);
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
    return 0;
}

struct img *img_sharpness(const struct img *src, double factor, struct eng_error *err)
{
    if (check_factor(src, "sharpness", factor, err)) return NULL;
    /* The filter leaves the border (and images smaller than its 3x3 kernel) as they are, and the
     * degenerate takes the input's alpha; blending v with v gives v back. */
    struct img *dst = img_clone(src, err);
    if (!dst || src->width < 3 || src->height < 3) return dst;
    uint16_t *col = malloc((size_t)src->width * (size_t)src->channels * sizeof *col);
    if (!col) eng_fail(err, ENG_NO_MEMORY, "sharpness: out of memory");
    if (!col || sharpen_rows(src, dst, col, factor, err)) {
        img_free(dst);
        dst = NULL;
    }
    free(col);
    return dst;
}

/* Sample i of a row counts in sub[i % slots]. Neighbouring samples that are equal would make
 * each increment wait for the previous one's store; spread over separate tables, they don't. */
static inline void count_row(const uint8_t *p, size_t n, int slots, uint32_t (*sub)[256])
{
    size_t i = 0;
    for (; i + (size_t)slots <= n; i += (size_t)slots)
        for (int k = 0; k < slots; k++)
            sub[k][p[i + k]]++;
    for (int k = 0; i < n; i++, k++)
        sub[k][p[i]]++;
}

/* Per-channel histograms of an L or RGB image. */
static void histograms(const struct img *src, uint32_t hist[3][256])
{
    enum { SLOTS_PER_CHANNEL = 2 };
    uint32_t sub[3 * SLOTS_PER_CHANNEL][256];
    int c = src->channels, slots = c * SLOTS_PER_CHANNEL;
    memset(sub, 0, (size_t)slots * sizeof *sub);
    size_t n = (size_t)src->width * (size_t)c;
    for (int y = 0; y < src->height; y++) {
        /* Constant slot counts let the compiler unroll the loop. */
        if (c == 1)
            count_row(img_row(src, y), n, SLOTS_PER_CHANNEL, sub);
        else
            count_row(img_row(src, y), n, 3 * SLOTS_PER_CHANNEL, sub);
    }
    memset(hist, 0, 3 * sizeof *hist);
    for (int k = 0; k < slots; k++)
        for (int v = 0; v < 256; v++)
            hist[k % c][v] += sub[k][v];
}

#if defined(__x86_64__)
/* Three vectors span 192 bytes, a whole number of pixels, so each lane of each of the three
 * always sees the same channel and keeps a running minimum and maximum for it. */
AVX512 static void ranges_avx512(const struct img *src, uint8_t lo[3], uint8_t hi[3])
{
    __m512i least[3], most[3];
    for (int j = 0; j < 3; j++) {
        least[j] = _mm512_set1_epi8(-1);
        most[j] = _mm512_setzero_si512();
    }
    size_t n = (size_t)src->width * (size_t)src->channels;
    for (int y = 0; y < src->height; y++) {
        const uint8_t *in = img_row(src, y);
        for (size_t i = 0; i < n; i += 64) {
            size_t j = i / 64 % 3;
            __mmask64 m = tail_mask(n - i);
            /* Lanes past the row load as 0, which leaves any maximum as it is. */
            __m512i v = _mm512_maskz_loadu_epi8(m, in + i);
            least[j] = _mm512_mask_min_epu8(least[j], m, least[j], v);
            most[j] = _mm512_max_epu8(most[j], v);
        }
    }
    uint8_t low[192], high[192];
    for (int j = 0; j < 3; j++) {
        _mm512_storeu_si512(low + 64 * j, least[j]);
        _mm512_storeu_si512(high + 64 * j, most[j]);
    }
    for (int b = 0; b < 192; b++) {
        int k = b % src->channels;
        lo[k] = low[b] < lo[k] ? low[b] : lo[k];
        hi[k] = high[b] > hi[k] ? high[b] : hi[k];
    }
}
#endif

static inline void range_row(const uint8_t *p, int width, int c, uint8_t lo[3], uint8_t hi[3])
{
    /* In locals: lo and hi could alias p, which would cost a store and a reload per sample. */
    uint8_t least[3], most[3];
    memcpy(least, lo, 3);
    memcpy(most, hi, 3);
    for (int x = 0; x < width; x++, p += c)
        for (int k = 0; k < c; k++) {
            least[k] = p[k] < least[k] ? p[k] : least[k];
            most[k] = p[k] > most[k] ? p[k] : most[k];
        }
    memcpy(lo, least, 3);
    memcpy(hi, most, 3);
}

/* The least and greatest sample of each channel of an L or RGB image. */
static void channel_ranges(const struct img *src, uint8_t lo[3], uint8_t hi[3])
{
    int c = src->channels;
    memset(lo, 255, 3);
    memset(hi, 0, 3);
#if defined(__x86_64__)
    if (cpu_avx512()) {
        ranges_avx512(src, lo, hi);
        return;
    }
#endif
    for (int y = 0; y < src->height; y++) {
        if (c == 1)
            range_row(img_row(src, y), src->width, 1, lo, hi);
        else
            range_row(img_row(src, y), src->width, 3, lo, hi);
    }
}

/* From the lowest and highest level present, which is all ImageOps.autocontrast (without cutoff)
 * takes from its histogram. */
static void autocontrast_lut(int lo, int hi, uint8_t *lut)
{
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
    uint8_t lo[3], hi[3], lut[3][256];
    channel_ranges(src, lo, hi);
    for (int k = 0; k < src->channels; k++)
        autocontrast_lut(lo[k], hi[k], lut[k]);
    return map_channels(src, (const uint8_t *const[4]){lut[0], lut[1], lut[2], NULL}, err);
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
    uint32_t hist[3][256];
    uint8_t lut[3][256];
    histograms(src, hist);
    for (int k = 0; k < src->channels; k++)
        equalize_lut(hist[k], lut[k]);
    return map_channels(src, (const uint8_t *const[4]){lut[0], lut[1], lut[2], NULL}, err);
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
