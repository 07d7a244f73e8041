/* Geometric ops, bit-exact with torchvision 0.14 on PIL images (Pillow 9.4).
 *
 * Parity comes from doing PIL's arithmetic, not an equivalent of it: matrices are built with the
 * same double operations in the same order as torchvision and PIL's Python code, and each pixel
 * loop reproduces the libImaging routine PIL would pick (Geometry.c, Resample.c, Convert.c).
 * Reordering any floating-point expression here can move a pixel across a rounding boundary. */
#include "image/geometry.h"

/* PIL rounds every product before adding; a fused multiply-add (what -ffp-contract=fast makes of
 * a * b + c where FMA exists, e.g. with -std=gnu11 -march=native) moves pixels. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* CPython's math.radians / math.degrees multiply by these precomputed constants. */
static const double DEG_TO_RAD = M_PI / 180.0;
static const double RAD_TO_DEG = 180.0 / M_PI;

/* Resample.c's fixed-point precision for 8-bit images. */
#define PRECISION_BITS (32 - 8 - 2)

/* ------------------------------------------------------------------------------------------ */
/* Argument checks and small helpers                                                          */

static int check_input(const struct img *in, struct eng_error *err)
{
    if (!in || !in->data) return eng_fail(err, ENG_INVALID, "no input image");
    if (in->width < 1 || in->height < 1 ||
        (in->channels != 1 && in->channels != 3 && in->channels != 4) ||
        in->stride < (size_t)in->width * (size_t)in->channels)
        return eng_fail(err, ENG_INVALID,
                        "input image %dx%d with %d channels is not valid (1, 3 or 4 channels)",
                        in->width, in->height, in->channels);
    return 0;
}

static int check_interp(enum img_interp interp, struct eng_error *err)
{
    if (interp != IMG_NEAREST && interp != IMG_BILINEAR)
        return eng_fail(err, ENG_INVALID, "interpolation %d is not nearest or bilinear",
                        (int)interp);
    return 0;
}

static int check_fill(const uint8_t *fill, bool has_fill, struct eng_error *err)
{
    if (has_fill && !fill) return eng_fail(err, ENG_INVALID, "fill is marked given but is NULL");
    return 0;
}

static int check_size(const char *what, long long width, long long height, struct eng_error *err)
{
    if (width < 1 || height < 1 || width > 65535 || height > 65535)
        return eng_fail(err, ENG_INVALID, "%s size %lldx%lld is not in 1..65535", what, width,
                        height);
    return 0;
}

static void resolve_fill(uint8_t out[4], const uint8_t *fill, bool has_fill, int channels)
{
    memset(out, 0, 4);
    if (has_fill) memcpy(out, fill, (size_t)channels);
}

/* Convert.c's RGBA -> RGBa: MULDIV255 with rounding. */
static ALWAYS_INLINE uint8_t premultiply(unsigned v, unsigned alpha)
{
    unsigned t = v * alpha + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* ceil(2^32 / a): (255 * v * RECIP(a)) >> 32 equals 255 * v / a for all v and a up to 255, as
 * the error (under 255 * 255 / 2^32) is below the 1 / a gap to the next integer; this saves a
 * division per channel. */
#define RECIP(a)    ((a) ? ((1ull << 32) + (a)-1) / ((a) ? (a) : 1) : 0)
#define RECIP_4(a)  RECIP(a), RECIP((a) + 1), RECIP((a) + 2), RECIP((a) + 3)
#define RECIP_16(a) RECIP_4(a), RECIP_4((a) + 4), RECIP_4((a) + 8), RECIP_4((a) + 12)
#define RECIP_64(a) RECIP_16(a), RECIP_16((a) + 16), RECIP_16((a) + 32), RECIP_16((a) + 48)
static const uint64_t recip[256] = {RECIP_64(0), RECIP_64(64), RECIP_64(128), RECIP_64(192)};
#undef RECIP_64
#undef RECIP_16
#undef RECIP_4
#undef RECIP

/* Convert.c's RGBa -> RGBA: truncating division, clipped; alpha 0 and 255 pass through. */
static ALWAYS_INLINE void unpremultiply(uint8_t *px)
{
    const unsigned alpha = px[3];
    if (alpha == 0 || alpha == 255) return;
    for (int c = 0; c < 3; c++) {
        const uint64_t v = (255u * px[c] * recip[alpha]) >> 32;
        px[c] = (uint8_t)(v > 255 ? 255 : v);
    }
}

/* An RGBa copy of rows [y0, y1) of an RGBA image, as PIL's convert("RGBa") before a bilinear
 * transform or resize; row y of the copy is source row y0 + y. */
static struct img *premultiplied_rows(const struct img *in, int y0, int y1, struct eng_error *err)
{
    struct img *pm = img_new(in->width, y1 - y0, 4, err);
    if (!pm) return NULL;
    for (int y = y0; y < y1; y++) {
        const uint8_t *s = img_row(in, y);
        uint8_t *d = img_row(pm, y - y0);
        for (int x = 0; x < in->width; x++, s += 4, d += 4) {
            d[0] = premultiply(s[0], s[3]);
            d[1] = premultiply(s[1], s[3]);
            d[2] = premultiply(s[2], s[3]);
            d[3] = s[3];
        }
    }
    return pm;
}

static void unpremultiply_image(struct img *im)
{
    for (int y = 0; y < im->height; y++) {
        uint8_t *p = img_row(im, y);
        for (int x = 0; x < im->width; x++, p += 4)
            unpremultiply(p);
    }
}

/* Python's float % (result takes the divisor's sign), as Image.rotate's `angle % 360.0`. */
static double py_mod(double v, double m)
{
    double r = fmod(v, m);
    if (r != 0.0) {
        if ((m < 0) != (r < 0)) r += m;
    } else {
        r = copysign(0.0, m);
    }
    return r;
}

/* Python's round(v, 15): both it and glibc's printf round the exact binary value to 15 decimals
 * (ties to even), and strtod reads the decimal back correctly rounded. */
static double py_round15(double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", v);
    return strtod(buf, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Affine transform (Geometry.c: ImagingTransformAffine and ImagingGenericTransform)           */

/* PIL's COORD(): nearest-neighbour index of a source coordinate, -1 when outside [0, size). */
static ALWAYS_INLINE int coord(double v, int size)
{
    return (v >= 0.0 && v < (double)size) ? (int)v : -1;
}

static ALWAYS_INLINE void put_px(uint8_t *d, const uint8_t *s, int ch)
{
    memcpy(d, s, (size_t)ch);
}

/* ImagingScaleAffine: no rotation or shear terms. Source columns are tabulated once; positions
 * advance by repeated addition, as PIL's do, so rounding drifts identically. */
static ALWAYS_INLINE void scale_affine_ch(const struct img *in, struct img *out, const double a[6],
                                          const uint8_t *fill, int *xintab, int ch)
{
    double xo = a[2] + a[0] * 0.5, yo = a[5] + a[4] * 0.5;
    int xmin = out->width, xmax = 0;
    for (int x = 0; x < out->width; x++) {
        int xin = coord(xo, in->width);
        xintab[x] = 0;
        if (xin >= 0) {
            xmax = x + 1;
            if (x < xmin) xmin = x;
            xintab[x] = xin * ch;
        }
        xo += a[0];
    }
    for (int y = 0; y < out->height; y++, yo += a[4]) {
        uint8_t *d = img_row(out, y);
        int yin = coord(yo, in->height);
        if (yin < 0) {
            for (int x = 0; x < out->width; x++)
                put_px(d + x * ch, fill, ch);
            continue;
        }
        const uint8_t *s = img_row(in, yin);
        for (int x = 0; x < xmin; x++)
            put_px(d + x * ch, fill, ch);
        for (int x = xmin; x < xmax; x++)
            put_px(d + x * ch, s + xintab[x], ch);
        for (int x = xmax > xmin ? xmax : xmin; x < out->width; x++)
            put_px(d + x * ch, fill, ch);
    }
}

/* PIL's check_fixed(): whether a corner maps inside the 16.16 fixed-point range. */
static bool fits_fixed(const double a[6], int x, int y)
{
    return fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
}

/* affine_fixed's 16.16 fixed-point steps: a0/a3 per column, a1/a4 per row, and a2/a5 at the
 * centre of the first pixel. */
struct fixed_steps {
    uint32_t a0, a1, a2, a3, a4, a5;
};

static struct fixed_steps fixed_steps(const double a[6])
{
#define FIX(v) ((uint32_t)(int64_t)floor((v)*65536.0 + 0.5))
    return (struct fixed_steps){FIX(a[0]), FIX(a[1]), FIX(a[2] + a[0] * 0.5 + a[1] * 0.5),
                                FIX(a[3]), FIX(a[4]), FIX(a[5] + a[3] * 0.5 + a[4] * 0.5)};
#undef FIX
}

/* affine_fixed: PIL steps 16.16 fixed-point coordinates, so its nearest pixel can differ from
 * floor() of the exact position; we step the same integers. Accumulators are uint32_t so they
 * wrap exactly as PIL's int does, without undefined behaviour. */
static ALWAYS_INLINE void fixed_affine_ch(const struct img *in, struct img *out, const double a[6],
                                          const uint8_t *fill, int ch)
{
    const struct fixed_steps st = fixed_steps(a);
    /* Locals, because byte stores may alias anything reached through a pointer. */
    const uint32_t a0 = st.a0, a1 = st.a1, a3 = st.a3, a4 = st.a4;
    uint32_t a2 = st.a2, a5 = st.a5;
    const unsigned w = (unsigned)in->width, h = (unsigned)in->height;
    const int out_w = out->width;
    const uint8_t *const src = in->data;
    const size_t stride = in->stride;
    const uint8_t f[4] = {fill[0], fill[1], fill[2], fill[3]};
    for (int y = 0; y < out->height; y++, a2 += a1, a5 += a4) {
        uint8_t *d = img_row(out, y);
        uint32_t xx = a2, yy = a5;
        for (int x = 0; x < out_w; x++, d += ch, xx += a0, yy += a3) {
            /* Negative positions become huge unsigned values and fail the bound test. */
            unsigned xin = (unsigned)((int32_t)xx >> 16), yin = (unsigned)((int32_t)yy >> 16);
            if (xin < w && yin < h)
                put_px(d, src + yin * stride + (size_t)xin * ch, ch);
            else
                put_px(d, f, ch);
        }
    }
}

#if defined(__x86_64__)
/* What every row of fixed_affine_avx512 needs: the source and its bounds, the last offset a
 * 4-byte load may start at without reading past the source, the fill as a word, and the byte
 * order that packs the low ch bytes of 16 words. */
struct fixed_source {
    const uint8_t *data;
    __m512i w, h, stride, last, fill, pack;
};

/* One row of affine_fixed, 16 pixels at a time: each in-bounds pixel is the low ch bytes of a
 * gathered 32-bit word, and the other lanes keep the fill. A pixel within the source's last 3
 * bytes is loaded from the last whole word and shifted down into place. */
AVX512 static ALWAYS_INLINE void fixed_row_avx512(const struct fixed_source *s, uint8_t *d,
                                                  int out_w, uint32_t xx0, uint32_t yy0,
                                                  uint32_t a0, uint32_t a3, int ch)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    /* Multiplying wraps as adding a0 lane times does, so the lanes match PIL's stepping. */
    __m512i xx = _mm512_add_epi32(_mm512_set1_epi32((int)xx0),
                                  _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)a0)));
    __m512i yy = _mm512_add_epi32(_mm512_set1_epi32((int)yy0),
                                  _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)a3)));
    const __m512i dx = _mm512_set1_epi32((int)(a0 * 16)), dy = _mm512_set1_epi32((int)(a3 * 16));
    for (int x = 0; x < out_w;
         x += 16, xx = _mm512_add_epi32(xx, dx), yy = _mm512_add_epi32(yy, dy)) {
        __m512i xin = _mm512_srai_epi32(xx, 16), yin = _mm512_srai_epi32(yy, 16);
        __mmask16 inside = _mm512_cmplt_epu32_mask(xin, s->w) & _mm512_cmplt_epu32_mask(yin, s->h);
        __m512i at = _mm512_add_epi32(_mm512_mullo_epi32(yin, s->stride),
                                      _mm512_mullo_epi32(xin, _mm512_set1_epi32(ch)));
        __m512i px;
        if (ch == 4) {
            px = _mm512_mask_i32gather_epi32(s->fill, inside, at, s->data, 1);
        } else {
            __m512i from = _mm512_min_epu32(at, s->last);
            px = _mm512_mask_i32gather_epi32(s->fill, inside, from, s->data, 1);
            __m512i shift = _mm512_slli_epi32(_mm512_sub_epi32(at, from), 3);
            px = _mm512_mask_srlv_epi32(s->fill, inside, px, shift);
        }
        int bytes = (out_w - x < 16 ? out_w - x : 16) * ch;
        _mm512_mask_storeu_epi8(d + (size_t)x * ch, ~(__mmask64)0 >> (64 - bytes),
                                _mm512_permutexvar_epi8(s->pack, px));
    }
}

/* size: the bytes from the source's first pixel to just past its last one. */
AVX512 static void fixed_affine_avx512(const struct img *in, struct img *out,
                                       const struct fixed_steps *st, const uint8_t fill[4],
                                       size_t size)
{
    const int ch = in->channels;
    uint8_t pack[64] = {0};
    for (int i = 0; i < 16 * ch; i++)
        pack[i] = (uint8_t)(i / ch * 4 + i % ch);
    const struct fixed_source s = {
        in->data,
        _mm512_set1_epi32(in->width),
        _mm512_set1_epi32(in->height),
        _mm512_set1_epi32((int)in->stride),
        _mm512_set1_epi32((int)(size - 4)),
        _mm512_set1_epi32((int)((uint32_t)fill[0] | (uint32_t)fill[1] << 8 |
                                (uint32_t)fill[2] << 16 | (uint32_t)fill[3] << 24)),
        _mm512_loadu_si512(pack),
    };
    uint32_t a2 = st->a2, a5 = st->a5;
    /* A constant ch per call lets the compiler drop the shift for whole words. */
    for (int y = 0; y < out->height; y++, a2 += st->a1, a5 += st->a4) {
        uint8_t *d = img_row(out, y);
        switch (ch) {
        case 1:
            fixed_row_avx512(&s, d, out->width, a2, a5, st->a0, st->a3, 1);
            break;
        case 3:
            fixed_row_avx512(&s, d, out->width, a2, a5, st->a0, st->a3, 3);
            break;
        default:
            fixed_row_avx512(&s, d, out->width, a2, a5, st->a0, st->a3, 4);
        }
    }
}
#endif

/* affine_fixed with the vector code, when this CPU has it and every source offset fits in 31
 * bits (and a source has a whole word to load); 0 when the caller must do it. */
static int fixed_affine_vector(const struct img *in, struct img *out, const double a[6],
                               const uint8_t fill[4])
{
#if defined(__x86_64__)
    size_t size = (size_t)(in->height - 1) * in->stride + (size_t)in->width * (size_t)in->channels;
    if (size >= 4 && size <= INT32_MAX && in->stride <= INT32_MAX && cpu_avx512()) {
        const struct fixed_steps st = fixed_steps(a);
        fixed_affine_avx512(in, out, &st, fill, size);
        return 1;
    }
#endif
    return 0;
}

/* ImagingTransformAffine's floating-point fallback, used when a corner maps beyond +-32768. Note
 * its start offsets add the 0.5 terms in the opposite order to affine_fixed. */
static ALWAYS_INLINE void float_affine_ch(const struct img *in, struct img *out, const double a[6],
                                          const uint8_t *fill, int ch)
{
    double xo = a[2] + a[1] * 0.5 + a[0] * 0.5, yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for (int y = 0; y < out->height; y++, xo += a[1], yo += a[4]) {
        uint8_t *d = img_row(out, y);
        double xx = xo, yy = yo;
        for (int x = 0; x < out->width; x++, d += ch, xx += a[0], yy += a[3]) {
            int xin = coord(xx, in->width), yin = coord(yy, in->height);
            if (xin >= 0 && yin >= 0)
                put_px(d, img_row(in, yin) + (size_t)xin * ch, ch);
            else
                put_px(d, fill, ch);
        }
    }
}

/* Sample values as doubles: a table load is cheaper than converting each sample. */
#define U8_4(i)  (i), (i) + 1, (i) + 2, (i) + 3
#define U8_16(i) U8_4(i), U8_4((i) + 4), U8_4((i) + 8), U8_4((i) + 12)
#define U8_64(i) U8_16(i), U8_16((i) + 16), U8_16((i) + 32), U8_16((i) + 48)
static const double u8_to_double[256] = {U8_64(0), U8_64(64), U8_64(128), U8_64(192)};
#undef U8_64
#undef U8_16
#undef U8_4

/* Geometry.c's bilinear_filter*: per-pixel double positions evaluated as a0*x + a1*y + a2, edge
 * samples clamped, each channel lerped in double and truncated. Beyond the last row PIL reuses
 * the first lerp, which is what lerping the same row again gives. For RGBA the source is
 * premultiplied and every output pixel, fill included, is un-premultiplied as PIL's convert back
 * to RGBA does. */
static ALWAYS_INLINE void bilinear_affine_ch(const struct img *in, struct img *out,
                                             const double m[6], const uint8_t *fill, double *cols,
                                             int ch)
{
    /* Locals, because byte stores may alias anything reached through a pointer. */
    const double a0 = m[0], a1 = m[1], a2 = m[2], a3 = m[3], a4 = m[4], a5 = m[5];
    const int w = in->width, h = in->height, out_w = out->width;
    const uint8_t *const src = in->data;
    const size_t stride = in->stride;
    const uint8_t f[4] = {fill[0], fill[1], fill[2], fill[3]};
    const double *const u = u8_to_double;
    /* The column products are the same on every row: compute them once (cols has room for
     * two per column). */
    for (int x = 0; x < out_w; x++) {
        cols[2 * x] = a0 * (x + 0.5);
        cols[2 * x + 1] = a3 * (x + 0.5);
    }
    for (int y = 0; y < out->height; y++) {
        uint8_t *d = img_row(out, y);
        const double yc = y + 0.5, ry = a1 * yc, ry4 = a4 * yc;
        for (int x = 0; x < out_w; x++, d += ch) {
            double xin = cols[2 * x] + ry + a2;
            double yin = cols[2 * x + 1] + ry4 + a5;
            if (!(xin >= 0.0 && xin < w && yin >= 0.0 && yin < h)) {
                put_px(d, f, ch);
                continue;
            }
            xin -= 0.5;
            yin -= 0.5;
            /* floor() without a libm call; both are >= -0.5 here. */
            int ix = (int)xin, iy = (int)yin;
            ix -= xin < ix;
            iy -= yin < iy;
            const double dx = xin - ix, dy = yin - iy;
            const size_t x0 = (size_t)(ix < 0 ? 0 : ix) * ch;
            const size_t x1 = (size_t)(ix + 1 < w ? ix + 1 : w - 1) * ch;
            const uint8_t *r0 = src + (size_t)(iy < 0 ? 0 : iy) * stride;
            const uint8_t *r1 = iy + 1 < h ? src + (size_t)(iy + 1) * stride : r0;
#pragma GCC unroll 4
            for (int c = 0; c < ch; c++) {
                const double v1 = u[r0[x0 + c]] + (u[r0[x1 + c]] - u[r0[x0 + c]]) * dx;
                const double v2 = u[r1[x0 + c]] + (u[r1[x1 + c]] - u[r1[x0 + c]]) * dx;
                d[c] = (uint8_t)(v1 + (v2 - v1) * dy);
            }
            if (ch == 4) unpremultiply(d);
        }
    }
}

/* Runs fn specialised for the image's channel count, so the per-pixel copies compile to fixed
 * moves. */
#define BY_CHANNELS(fn, ch, ...)                                                                   \
    do {                                                                                           \
        switch (ch) {                                                                              \
        case 1:                                                                                    \
            fn(__VA_ARGS__, 1);                                                                    \
            break;                                                                                 \
        case 3:                                                                                    \
            fn(__VA_ARGS__, 3);                                                                    \
            break;                                                                                 \
        default:                                                                                   \
            fn(__VA_ARGS__, 4);                                                                    \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

/* Nearest neighbour the way ImagingTransformAffine chooses its engine: the scale-only table,
 * 16.16 fixed point when all four corners fit, else double stepping. out may differ in size from
 * in (resize). */
static int nearest_affine(const struct img *in, struct img *out, const double a[6],
                          const uint8_t fill[4], struct eng_error *err)
{
    const int ch = in->channels;
    if (a[1] == 0 && a[3] == 0) {
        int *xintab = malloc((size_t)out->width * sizeof *xintab);
        if (!xintab) return eng_fail(err, ENG_NO_MEMORY, "out of memory for a transform table");
        BY_CHANNELS(scale_affine_ch, ch, in, out, a, fill, xintab);
        free(xintab);
    } else if (fits_fixed(a, 0, 0) && fits_fixed(a, out->width, out->height) &&
               fits_fixed(a, 0, out->height) && fits_fixed(a, out->width, 0)) {
        if (!fixed_affine_vector(in, out, a, fill))
            BY_CHANNELS(fixed_affine_ch, ch, in, out, a, fill);
    } else {
        BY_CHANNELS(float_affine_ch, ch, in, out, a, fill);
    }
    return 0;
}

/* Image.transform(size, AFFINE, a, resample, fillcolor) for an output the size of the input. */
static struct img *transform(const struct img *in, const double a[6], enum img_interp interp,
                             const uint8_t *fill, bool has_fill, struct eng_error *err)
{
    for (int i = 0; i < 6; i++)
        if (!isfinite(a[i]))
            return eng_fail(err, ENG_INVALID, "the transform is degenerate (matrix overflows)"),
                   NULL;
    uint8_t px[4];
    resolve_fill(px, fill, has_fill, in->channels);
    struct img *out = img_new(in->width, in->height, in->channels, err);
    if (!out) return NULL;
    if (interp == IMG_NEAREST) {
        if (nearest_affine(in, out, a, px, err) != 0) {
            img_free(out);
            return NULL;
        }
        return out;
    }
    double *cols = malloc((size_t)out->width * 2 * sizeof *cols);
    struct img *pm = NULL;
    if (!cols || (in->channels == 4 && !(pm = premultiplied_rows(in, 0, in->height, err)))) {
        if (!cols) eng_fail(err, ENG_NO_MEMORY, "out of memory for a transform table");
        free(cols);
        img_free(out);
        return NULL;
    }
    if (pm) {
        unpremultiply(px);
        bilinear_affine_ch(pm, out, a, px, cols, 4);
        img_free(pm);
    } else {
        BY_CHANNELS(bilinear_affine_ch, in->channels, in, out, a, px, cols);
    }
    free(cols);
    return out;
}

/* torchvision's _get_inverse_affine_matrix(center, angle, translate, scale, shear), term by
 * term. */
static void inverse_affine_matrix(double m[6], double cx, double cy, double angle, double tx,
                                  double ty, double scale, double shear_x, double shear_y)
{
    const double rot = angle * DEG_TO_RAD, sx = shear_x * DEG_TO_RAD, sy = shear_y * DEG_TO_RAD;
    const double a = cos(rot - sy) / cos(sy);
    const double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    const double c = sin(rot - sy) / cos(sy);
    const double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    m[0] = d / scale;
    m[1] = -b / scale;
    m[3] = -c / scale;
    m[4] = a / scale;
    m[2] = 0.0 + (m[0] * (-cx - tx) + m[1] * (-cy - ty));
    m[5] = 0.0 + (m[3] * (-cx - tx) + m[4] * (-cy - ty));
    m[2] += cx;
    m[5] += cy;
}

static struct img *affine_checked(const struct img *in, double angle, double tx, double ty,
                                  double scale, double shear_x, double shear_y, bool has_center,
                                  double cx, double cy, enum img_interp interp, const uint8_t *fill,
                                  bool has_fill, struct eng_error *err)
{
    if (check_input(in, err) || check_interp(interp, err) || check_fill(fill, has_fill, err))
        return NULL;
    if (!isfinite(angle) || !isfinite(tx) || !isfinite(ty) || !isfinite(shear_x) ||
        !isfinite(shear_y) || (has_center && (!isfinite(cx) || !isfinite(cy))))
        return eng_fail(err, ENG_INVALID, "affine arguments must be finite numbers"), NULL;
    if (!(scale > 0.0) || !isfinite(scale))
        return eng_fail(err, ENG_INVALID, "affine scale %g is not a positive number", scale), NULL;
    if (!has_center) {
        cx = in->width * 0.5;
        cy = in->height * 0.5;
    }
    double m[6];
    inverse_affine_matrix(m, cx, cy, angle, tx, ty, scale, shear_x, shear_y);
    return transform(in, m, interp, fill, has_fill, err);
}

struct img *img_transform(const struct img *in, const double a[6], enum img_interp interp,
                          const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    if (check_input(in, err) || check_interp(interp, err) || check_fill(fill, has_fill, err))
        return NULL;
    return transform(in, a, interp, fill, has_fill, err);
}

struct img *img_affine(const struct img *in, double angle, double translate_x, double translate_y,
                       double scale, double shear_x, double shear_y, bool has_center,
                       double center_x, double center_y, enum img_interp interp,
                       const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    return affine_checked(in, angle, translate_x, translate_y, scale, shear_x, shear_y, has_center,
                          center_x, center_y, interp, fill, has_fill, err);
}

struct img *img_shear_x(const struct img *in, double m, enum img_interp interp,
                        const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    if (!isfinite(m)) return eng_fail(err, ENG_INVALID, "shear factor must be finite"), NULL;
    return affine_checked(in, 0.0, 0.0, 0.0, 1.0, atan(m) * RAD_TO_DEG, 0.0, true, 0.0, 0.0, interp,
                          fill, has_fill, err);
}

struct img *img_shear_y(const struct img *in, double m, enum img_interp interp,
                        const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    if (!isfinite(m)) return eng_fail(err, ENG_INVALID, "shear factor must be finite"), NULL;
    return affine_checked(in, 0.0, 0.0, 0.0, 1.0, 0.0, atan(m) * RAD_TO_DEG, true, 0.0, 0.0, interp,
                          fill, has_fill, err);
}

struct img *img_translate_x(const struct img *in, double pixels, enum img_interp interp,
                            const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    if (!isfinite(pixels)) return eng_fail(err, ENG_INVALID, "translation must be finite"), NULL;
    return affine_checked(in, 0.0, trunc(pixels), 0.0, 1.0, 0.0, 0.0, false, 0.0, 0.0, interp, fill,
                          has_fill, err);
}

struct img *img_translate_y(const struct img *in, double pixels, enum img_interp interp,
                            const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    if (!isfinite(pixels)) return eng_fail(err, ENG_INVALID, "translation must be finite"), NULL;
    return affine_checked(in, 0.0, 0.0, trunc(pixels), 1.0, 0.0, 0.0, false, 0.0, 0.0, interp, fill,
                          has_fill, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Transposes and rotation                                                                    */

enum transpose { FLIP_LR, FLIP_UD, ROTATE_90, ROTATE_180, ROTATE_270 };

static ALWAYS_INLINE void transpose_ch(const struct img *in, struct img *out, enum transpose op,
                                       int ch)
{
    const int w = in->width, h = in->height;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = img_row(in, y);
        switch (op) {
        case FLIP_UD:
            memcpy(img_row(out, h - 1 - y), s, (size_t)w * ch);
            break;
        case FLIP_LR:
        case ROTATE_180: {
            uint8_t *d = img_row(out, op == FLIP_LR ? y : h - 1 - y) + (size_t)(w - 1) * ch;
            for (int x = 0; x < w; x++, s += ch, d -= ch)
                put_px(d, s, ch);
            break;
        }
        case ROTATE_90:
            for (int x = 0; x < w; x++, s += ch)
                put_px(img_row(out, w - 1 - x) + (size_t)y * ch, s, ch);
            break;
        case ROTATE_270:
            for (int x = 0; x < w; x++, s += ch)
                put_px(img_row(out, x) + (size_t)(h - 1 - y) * ch, s, ch);
            break;
        }
    }
}

/* PIL's Image.transpose; ROTATE_90 / 270 are counter-clockwise / clockwise quarter turns. */
static struct img *transpose(const struct img *in, enum transpose op, struct eng_error *err)
{
    const bool swap = op == ROTATE_90 || op == ROTATE_270;
    struct img *out =
        img_new(swap ? in->height : in->width, swap ? in->width : in->height, in->channels, err);
    if (out) BY_CHANNELS(transpose_ch, in->channels, in, out, op);
    return out;
}

struct img *img_flip_lr(const struct img *in, struct eng_error *err)
{
    return check_input(in, err) ? NULL : transpose(in, FLIP_LR, err);
}

struct img *img_flip_ud(const struct img *in, struct eng_error *err)
{
    return check_input(in, err) ? NULL : transpose(in, FLIP_UD, err);
}

/* Image.rotate(angle, resample, expand=False, fillcolor): exact transposes for multiples of 90
 * degrees where PIL takes them (they skip the RGBA premultiply round trip), otherwise an affine
 * matrix whose terms PIL rounds to 15 decimals. */
struct img *img_rotate(const struct img *in, double degrees, enum img_interp interp,
                       const uint8_t fill[4], bool has_fill, struct eng_error *err)
{
    if (check_input(in, err) || check_interp(interp, err) || check_fill(fill, has_fill, err))
        return NULL;
    if (!isfinite(degrees)) return eng_fail(err, ENG_INVALID, "rotation must be finite"), NULL;
    const double angle = py_mod(degrees, 360.0);
    if (angle == 0) return img_clone(in, err);
    if (angle == 180) return transpose(in, ROTATE_180, err);
    if ((angle == 90 || angle == 270) && in->width == in->height)
        return transpose(in, angle == 90 ? ROTATE_90 : ROTATE_270, err);
    const double t = -(angle * DEG_TO_RAD);
    const double cx = in->width / 2.0, cy = in->height / 2.0;
    double m[6] = {py_round15(cos(t)),  py_round15(sin(t)), 0.0,
                   py_round15(-sin(t)), py_round15(cos(t)), 0.0};
    m[2] = m[0] * -cx + m[1] * -cy + 0.0 + cx;
    m[5] = m[3] * -cx + m[4] * -cy + 0.0 + cy;
    return transform(in, m, interp, fill, has_fill, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Padding and cropping                                                                       */

/* For each of the n output positions along one axis, the source index or -1 for fill, with the
 * len source positions starting at output position `before`. */
static void axis_map_constant(int *map, int n, int before, int len)
{
    for (int i = 0; i < n; i++) {
        long long s = (long long)i - before;
        map[i] = s >= 0 && s < len ? (int)s : -1;
    }
}

/* numpy.pad's edge / reflect / symmetric along one axis, for the len source positions from lo
 * padded by before and after. Wide reflections are built the way
 * numpy builds them, chunk by chunk from the already padded array, which is not a periodic
 * mirror when the two sides differ; so we replay its loop on indices. */
static void axis_map_numpy(int *map, int before, int lo, int len, int after, enum img_pad_mode mode)
{
    const int n = before + len + after;
    for (int i = 0; i < len; i++)
        map[before + i] = lo + i;
    if (mode == IMG_PAD_EDGE || len == 1) {
        /* numpy treats reflecting a single element as edge padding. */
        for (int i = 0; i < before; i++)
            map[i] = lo;
        for (int i = before + len; i < n; i++)
            map[i] = lo + len - 1;
        return;
    }
    const int edge = mode == IMG_PAD_SYMMETRIC ? 1 : 0;
    int left = before, right = after;
    while (left > 0 || right > 0) {
        const int old = n - right - left - (1 - edge);
        if (left > 0) {
            const int chunk = old < left ? old : left;
            const int start = left - edge + chunk;
            for (int i = 0; i < chunk; i++)
                map[left - chunk + i] = map[start - i];
            left -= chunk;
        }
        if (right > 0) {
            const int chunk = old < right ? old : right;
            const int start = n - right + edge - 2;
            for (int i = 0; i < chunk; i++)
                map[n - right + i] = map[start - i];
            right -= chunk;
        }
    }
}

/* out(y, x) = in(rows[y], cols[x]), fill where either index is -1. */
static ALWAYS_INLINE void gather_ch(const struct img *in, struct img *out, const int *rows,
                                    const int *cols, const uint8_t *fill, int ch)
{
    const int w = out->width;
    for (int y = 0; y < out->height; y++) {
        uint8_t *d = img_row(out, y);
        if (rows[y] < 0) {
            for (int x = 0; x < w; x++)
                put_px(d + (size_t)x * ch, fill, ch);
            continue;
        }
        const uint8_t *s = img_row(in, rows[y]);
        int x = 0;
        while (x < w) {
            if (cols[x] < 0) {
                put_px(d + (size_t)x * ch, fill, ch);
                x++;
            } else if (x + 1 < w && cols[x + 1] == cols[x] + 1) {
                /* A run of consecutive source columns (the unpadded middle) in one copy. */
                int run = 2;
                while (x + run < w && cols[x + run] == cols[x] + run)
                    run++;
                memcpy(d + (size_t)x * ch, s + (size_t)cols[x] * ch, (size_t)run * ch);
                x += run;
            } else {
                put_px(d + (size_t)x * ch, s + (size_t)cols[x] * ch, ch);
                x++;
            }
        }
    }
}

/* Builds the output of a padding or crop from its axis maps. */
static struct img *remap(const struct img *in, int width, int height, const int *rows,
                         const int *cols, const uint8_t fill[4], struct eng_error *err)
{
    struct img *out = img_new(width, height, in->channels, err);
    if (out) BY_CHANNELS(gather_ch, in->channels, in, out, rows, cols, fill);
    return out;
}

struct img *img_pad(const struct img *in, int left, int top, int right, int bottom,
                    enum img_pad_mode mode, const uint8_t fill[4], bool has_fill,
                    struct eng_error *err)
{
    if (check_input(in, err) || check_fill(fill, has_fill, err)) return NULL;
    if (mode != IMG_PAD_CONSTANT && mode != IMG_PAD_EDGE && mode != IMG_PAD_REFLECT &&
        mode != IMG_PAD_SYMMETRIC)
        return eng_fail(err, ENG_INVALID, "padding mode %d is not supported", (int)mode), NULL;
    const long long w = (long long)left + in->width + right;
    const long long h = (long long)top + in->height + bottom;
    if (check_size("padded image", w, h, err)) return NULL;
    if (mode != IMG_PAD_CONSTANT &&
        ((long long)in->width + (left < 0 ? left : 0) + (right < 0 ? right : 0) < 1 ||
         (long long)in->height + (top < 0 ? top : 0) + (bottom < 0 ? bottom : 0) < 1))
        return eng_fail(err, ENG_INVALID, "negative padding removes the whole image"), NULL;
    uint8_t px[4];
    resolve_fill(px, fill, has_fill, in->channels);
    int *cols = malloc(((size_t)w + (size_t)h) * sizeof *cols);
    if (!cols) return eng_fail(err, ENG_NO_MEMORY, "out of memory for padding maps"), NULL;
    int *rows = cols + w;
    if (mode == IMG_PAD_CONSTANT) {
        /* ImageOps.expand pastes the image at (left, top); negative amounts cut it. */
        axis_map_constant(cols, (int)w, left, in->width);
        axis_map_constant(rows, (int)h, top, in->height);
    } else {
        /* F.pad crops negative sides first, then numpy pads the rest. */
        const int cut_l = left < 0 ? -left : 0, cut_r = right < 0 ? -right : 0;
        const int cut_t = top < 0 ? -top : 0, cut_b = bottom < 0 ? -bottom : 0;
        axis_map_numpy(cols, left + cut_l, cut_l, in->width - cut_l - cut_r, right + cut_r, mode);
        axis_map_numpy(rows, top + cut_t, cut_t, in->height - cut_t - cut_b, bottom + cut_b, mode);
    }
    struct img *out = remap(in, (int)w, (int)h, rows, cols, px, err);
    free(cols);
    return out;
}

struct img *img_crop(const struct img *in, int top, int left, int height, int width,
                     struct eng_error *err)
{
    if (check_input(in, err) || check_size("crop", width, height, err)) return NULL;
    int *cols = malloc(((size_t)width + (size_t)height) * sizeof *cols);
    if (!cols) return eng_fail(err, ENG_NO_MEMORY, "out of memory for crop maps"), NULL;
    int *rows = cols + width;
    /* Positions are long long so a far-off box cannot overflow int. */
    for (int x = 0; x < width; x++) {
        long long s = (long long)left + x;
        cols[x] = s >= 0 && s < in->width ? (int)s : -1;
    }
    for (int y = 0; y < height; y++) {
        long long s = (long long)top + y;
        rows[y] = s >= 0 && s < in->height ? (int)s : -1;
    }
    static const uint8_t zero[4];
    struct img *out = remap(in, width, height, rows, cols, zero, err);
    free(cols);
    return out;
}

/* Python's int(round(d / 2.0)) for d >= 0: halves round to even. */
static int half_round_even(int d)
{
    int k = d / 2;
    return (d % 2 != 0 && k % 2 != 0) ? k + 1 : k;
}

/* F.center_crop pads with zeros (left/top get the smaller half) up to the crop size, then crops
 * at round((size - crop) / 2); both amount to one zero-filled crop of the original. */
struct img *img_center_crop(const struct img *in, int height, int width, struct eng_error *err)
{
    if (check_input(in, err) || check_size("crop", width, height, err)) return NULL;
    int pad_left = 0, pad_top = 0, w = in->width, h = in->height;
    if (width > in->width || height > in->height) {
        if (width > in->width) {
            pad_left = (width - in->width) / 2;
            w = width;
        }
        if (height > in->height) {
            pad_top = (height - in->height) / 2;
            h = height;
        }
    }
    return img_crop(in, half_round_even(h - height) - pad_top,
                    half_round_even(w - width) - pad_left, height, width, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Resize (Resample.c for the convolutions, ImagingScaleAffine for nearest)                  */

struct coeffs {
    int ksize;
    int *bounds; /* per output position: first source index, count */
    int32_t *k;  /* ksize fixed-point weights per output position */
};

static void free_coeffs(struct coeffs *cf)
{
    free(cf->bounds);
    free(cf->k);
    cf->bounds = NULL;
    cf->k = NULL;
}

/* Resample.c's filters: the weight at distance x, and how far it reaches. */
static double box_weight(double x)
{
    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_weight(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_weight(double x)
{
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54 + 0.46 * cos(x));
}

/* Keys' cubic with a = -0.5. */
static double bicubic_weight(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_weight(double x)
{
    return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
}

struct resample_filter {
    double (*weight)(double x);
    double support;
};

/* By enum img_filter; IMG_FILTER_NEAREST resizes without one. */
static const struct resample_filter FILTERS[] = {
    [IMG_FILTER_BOX] = {box_weight, 0.5},         [IMG_FILTER_BILINEAR] = {bilinear_weight, 1.0},
    [IMG_FILTER_HAMMING] = {hamming_weight, 1.0}, [IMG_FILTER_BICUBIC] = {bicubic_weight, 2.0},
    [IMG_FILTER_LANCZOS] = {lanczos_weight, 3.0},
};

/* precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size): the filter widened by the
 * downscale factor (PIL's antialiasing), normalised in double, then rounded to PRECISION_BITS
 * away from zero. */
static int precompute_coeffs(struct coeffs *cf, int in_size, int out_size,
                             const struct resample_filter *filter, struct eng_error *err)
{
    const double scale = (double)in_size / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = filter->support * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    double *w = malloc((size_t)ksize * sizeof *w);
    cf->bounds = malloc((size_t)out_size * 2 * sizeof *cf->bounds);
    cf->k = malloc((size_t)out_size * (size_t)ksize * sizeof *cf->k);
    if (!w || !cf->bounds || !cf->k) {
        free(w);
        free_coeffs(cf);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for resize coefficients");
    }
    cf->ksize = ksize;
    for (int xx = 0; xx < out_size; xx++) {
        const double center = 0.0 + (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = filter->weight((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = cf->k + (size_t)xx * ksize;
        for (int x = 0; x < xmax; x++) {
            const double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                   : 0.5 + v * (1 << PRECISION_BITS));
        }
        cf->bounds[xx * 2] = xmin;
        cf->bounds[xx * 2 + 1] = xmax;
    }
    free(w);
    return 0;
}

/* PIL's clip8(): the negative lobes of bicubic and Lanczos undershoot 0, and the rounded weights
 * may add up to slightly more than 1.0, so both ends are clamped as PIL's table does. The shift
 * of a negative sum floors (arithmetic shift, as GCC and Clang define it). */
static ALWAYS_INLINE uint8_t clip8(int32_t ss)
{
    int32_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static ALWAYS_INLINE void resample_horizontal_ch(const struct img *in, int row0, struct img *out,
                                                 const struct coeffs *cf, int ch)
{
    const int out_w = out->width, ksize = cf->ksize;
    const int *const bounds = cf->bounds;
    const int32_t *const kk = cf->k;
    for (int y = 0; y < out->height; y++) {
        const uint8_t *const s = img_row(in, row0 + y);
        uint8_t *d = img_row(out, y);
        for (int xx = 0; xx < out_w; xx++, d += ch) {
            const int xmax = bounds[xx * 2 + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            const uint8_t *p = s + (size_t)bounds[xx * 2] * ch;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0, s3 = s0;
            for (int x = 0; x < xmax; x++, p += ch) {
                s0 += p[0] * k[x];
                if (ch >= 3) {
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                if (ch == 4) s3 += p[3] * k[x];
            }
            d[0] = clip8(s0);
            if (ch >= 3) {
                d[1] = clip8(s1);
                d[2] = clip8(s2);
            }
            if (ch == 4) d[3] = clip8(s3);
        }
    }
}

/* Per output row, every sample sums its column over the row's taps (rows holds one pointer per
 * tap). Integer sums do not depend on order, so samples go in blocks whose sums stay in
 * registers while the taps are walked. */
#define VBLOCK 16

static void resample_vertical(const struct img *in, int row0, struct img *out,
                              const struct coeffs *cf, const uint8_t **rows)
{
    const size_t n = (size_t)out->width * (size_t)out->channels;
    for (int yy = 0; yy < out->height; yy++) {
        const int ymin = cf->bounds[yy * 2], ymax = cf->bounds[yy * 2 + 1];
        const int32_t *k = cf->k + (size_t)yy * cf->ksize;
        for (int y = 0; y < ymax; y++)
            rows[y] = img_row(in, row0 + ymin + y);
        uint8_t *d = img_row(out, yy);
        size_t i = 0;
        for (; i + VBLOCK <= n; i += VBLOCK) {
            int32_t ss[VBLOCK];
            for (int j = 0; j < VBLOCK; j++)
                ss[j] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *s = rows[y] + i;
                const int32_t ky = k[y];
                for (int j = 0; j < VBLOCK; j++)
                    ss[j] += s[j] * ky;
            }
            for (int j = 0; j < VBLOCK; j++)
                d[i + j] = clip8(ss[j]);
        }
        for (; i < n; i++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++)
                ss += rows[y][i] * k[y];
            d[i] = clip8(ss);
        }
    }
}

/* ImagingResampleInner: horizontal pass over just the source rows the vertical pass reads, then
 * the vertical pass; a pass whose size does not change is skipped. RGBA is premultiplied
 * around it, as Image.resize does. */
static struct img *resample(const struct img *in, int out_w, int out_h,
                            const struct resample_filter *filter, struct eng_error *err)
{
    struct coeffs cv = {0}, chz = {0};
    struct img *src = NULL, *tmp = NULL, *out = NULL;
    const uint8_t **rows = NULL;
    if (precompute_coeffs(&cv, in->height, out_h, filter, err)) return NULL;
    const int y_first = cv.bounds[0];
    const int y_last = cv.bounds[out_h * 2 - 2] + cv.bounds[out_h * 2 - 1];
    const bool horizontal = out_w != in->width, vertical = out_h != in->height;

    const struct img *cur = in;
    int row0 = 0;
    if (in->channels == 4) {
        if (!(src = premultiplied_rows(in, y_first, y_last, err))) goto done;
        cur = src;
        row0 = -y_first;
    }
    if (horizontal) {
        if (precompute_coeffs(&chz, in->width, out_w, filter, err)) goto done;
        if (!(tmp = img_new(out_w, y_last - y_first, in->channels, err))) goto done;
        BY_CHANNELS(resample_horizontal_ch, in->channels, cur, row0 + y_first, tmp, &chz);
        cur = tmp;
        row0 = -y_first;
    }
    if (vertical) {
        if (!(out = img_new(out_w, out_h, in->channels, err))) goto done;
        rows = malloc((size_t)cv.ksize * sizeof *rows);
        if (!rows) {
            eng_fail(err, ENG_NO_MEMORY, "out of memory for resize");
            img_free(out);
            out = NULL;
            goto done;
        }
        resample_vertical(cur, row0, out, &cv, rows);
    } else {
        /* Same height: the caller ruled out the same size, so the horizontal pass ran. */
        out = tmp;
        tmp = NULL;
    }
    if (out && in->channels == 4) unpremultiply_image(out);
done:
    free(rows);
    img_free(tmp);
    img_free(src);
    free_coeffs(&chz);
    free_coeffs(&cv);
    return out;
}

/* Image.resize on a checked image: the same size is a copy; nearest is PIL's affine scale with
 * a = (in / out) on each axis. */
static struct img *resize_checked(const struct img *in, int height, int width,
                                  enum img_filter filter, struct eng_error *err)
{
    if (width == in->width && height == in->height) return img_clone(in, err);
    if (filter != IMG_FILTER_NEAREST) return resample(in, width, height, &FILTERS[filter], err);
    struct img *out = img_new(width, height, in->channels, err);
    if (!out) return NULL;
    const double a[6] = {(double)in->width / width,   0.0, 0.0, 0.0,
                         (double)in->height / height, 0.0};
    static const uint8_t zero[4];
    if (nearest_affine(in, out, a, zero, err) != 0) {
        img_free(out);
        return NULL;
    }
    return out;
}

/* F.resize's two interpolations as Image.resize's filters. */
static enum img_filter interp_filter(enum img_interp interp)
{
    return interp == IMG_BILINEAR ? IMG_FILTER_BILINEAR : IMG_FILTER_NEAREST;
}

struct img *img_resize(const struct img *in, int height, int width, enum img_interp interp,
                       struct eng_error *err)
{
    if (check_input(in, err) || check_interp(interp, err) ||
        check_size("resize", width, height, err))
        return NULL;
    return resize_checked(in, height, width, interp_filter(interp), err);
}

struct img *img_resize_filter(const struct img *in, int height, int width, enum img_filter filter,
                              struct eng_error *err)
{
    if (check_input(in, err) || check_size("resize", width, height, err)) return NULL;
    if ((unsigned)filter > IMG_FILTER_LANCZOS)
        return eng_fail(err, ENG_INVALID, "unknown resize filter %d", (int)filter), NULL;
    return resize_checked(in, height, width, filter, err);
}

struct img *img_resized_crop(const struct img *in, int top, int left, int height, int width,
                             int out_height, int out_width, enum img_interp interp,
                             struct eng_error *err)
{
    if (check_input(in, err) || check_interp(interp, err) ||
        check_size("crop", width, height, err) || check_size("resize", out_width, out_height, err))
        return NULL;
    if (top >= 0 && left >= 0 && (long long)top + height <= in->height &&
        (long long)left + width <= in->width) {
        /* A crop inside the image resizes straight from a view of the source, no copy. */
        const struct img view = {.width = width,
                                 .height = height,
                                 .channels = in->channels,
                                 .stride = in->stride,
                                 .data = img_row(in, top) + (size_t)left * in->channels};
        return resize_checked(&view, out_height, out_width, interp_filter(interp), err);
    }
    struct img *crop = img_crop(in, top, left, height, width, err);
    if (!crop) return NULL;
    struct img *out = resize_checked(crop, out_height, out_width, interp_filter(interp), err);
    img_free(crop);
    return out;
}
