/* The image codec against Pillow's decodes (fixtures from tests/parity/gen_codec.py), on hostile
 * input (truncated, garbage, decompression bombs), at its limits, and through encode/decode round
 * trips. argv[1] is the fixtures directory; the codec's files are under its codec/. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vips/vips.h>

#include "fixture.h"
#include "image/codec.h"
#include "testutil.h"

static char codec_dir[4096];

static struct blob load(const char *name)
{
    return tu_read_file(codec_dir, name);
}

static struct img *decode_ok(const struct blob *b, struct img_info *info)
{
    struct eng_error err = {0};
    struct img *im = img_decode(b->data, b->size, NULL, info, &err);
    if (!im) fail_msg("decode failed (%d): %s", err.code, err.message);
    return im;
}

static enum eng_code decode_code(const void *data, size_t size,
                                 const struct img_decode_options *lim, struct eng_error *err)
{
    *err = (struct eng_error){0};
    struct img *im = img_decode(data, size, lim, NULL, err);
    if (im) {
        img_free(im);
        return ENG_OK;
    }
    return err->code;
}

static double mean_abs_diff(const struct img *a, const struct img *b)
{
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->channels, b->channels);
    double sum = 0;
    for (int y = 0; y < a->height; y++)
        for (int x = 0; x < a->width * a->channels; x++)
            sum += abs((int)img_row(a, y)[x] - (int)img_row(b, y)[x]);
    return sum / ((double)a->width * a->height * a->channels);
}

/* Whether a profile handed on holds the bytes of the fixture profile icc_name (NULL: none). */
static void assert_profile(const struct img_profile *got, const char *icc_name, const char *what)
{
    if (!icc_name) {
        if (got->data || got->size)
            fail_msg("%s: a %zu-byte profile came back where none should", what, got->size);
        return;
    }
    struct blob want = load(icc_name);
    if (!got->data || got->size != want.size || memcmp(got->data, want.data, want.size) != 0)
        fail_msg("%s: the profile is %zu bytes, not %s's %zu", what, got->size, icc_name,
                 want.size);
    free(want.data);
}

/* Decodes name (the default options: colours as stored) and compares with stem.augf (Pillow's
 * pixels) within tolerance; the profile handed on must be the fixture profile icc (NULL:
 * none). */
static void check_parity(const char *name, int tolerance, const char *format, int channels,
                         int orientation, int frames, const char *icc)
{
    char expected_name[256];
    snprintf(expected_name, sizeof expected_name, "%.*s.augf", (int)(strrchr(name, '.') - name),
             name);
    struct blob b = load(name);
    struct img_info info;
    struct img *im = decode_ok(&b, &info);
    assert_profile(&info.icc, icc, name);
    struct img *want = fixture_load(codec_dir, expected_name);
    assert_non_null(want);
    int max_diff = 0;
    long bad = fixture_diff(im, want, tolerance, &max_diff);
    if (bad != 0)
        fail_msg("%s: %ld pixels differ from Pillow by more than %d (largest %d; got %dx%dx%d, "
                 "want %dx%dx%d)",
                 name, bad, tolerance, max_diff, im->width, im->height, im->channels, want->width,
                 want->height, want->channels);
    print_message("%-22s %dx%dx%d  largest difference from Pillow: %d\n", name, im->width,
                  im->height, im->channels, max_diff);
    assert_string_equal(info.format, format);
    assert_int_equal(im->channels, channels);
    assert_int_equal(info.had_alpha, channels == 4);
    assert_int_equal(info.orientation, orientation);
    assert_int_equal(info.frames, frames);
    bool swapped = orientation >= 5;
    assert_int_equal(info.orig_width, swapped ? im->height : im->width);
    assert_int_equal(info.orig_height, swapped ? im->width : im->height);
    img_info_clear(&info);
    assert_null(info.icc.data);
    img_free(want);
    img_free(im);
    free(b.data);
}

/* --- Parity with Pillow ------------------------------------------------------------------- */

/* libjpeg-turbo with the accurate IDCT and fancy upsampling, the same library and settings as
 * Pillow: the pixels come out identical (tolerance 0 holds; see the printed differences). */
static void test_jpeg_parity(void **state)
{
    check_parity("jpeg_baseline.jpg", 0, "jpeg", 3, 1, 1, NULL);
    check_parity("jpeg_progressive.jpg", 0, "jpeg", 3, 1, 1, NULL);
    check_parity("jpeg_gray.jpg", 0, "jpeg", 1, 1, 1, NULL);
    /* Adobe CMYK, inverted, converted with Pillow's formula. */
    check_parity("jpeg_cmyk.jpg", 0, "jpeg", 3, 1, 1, NULL);
}

static void test_exif_orientation(void **state)
{
    check_parity("jpeg_exif3.jpg", 0, "jpeg", 3, 3, 1, NULL);
    check_parity("jpeg_exif6.jpg", 0, "jpeg", 3, 6, 1, NULL);
    check_parity("jpeg_exif8.jpg", 0, "jpeg", 3, 8, 1, NULL);
    check_parity("png_exif6.png", 0, "png", 3, 6, 1, NULL);
    check_parity("tiff_exif6.tif", 0, "tiff", 3, 6, 1, NULL);
}

static void test_png_parity(void **state)
{
    check_parity("png_rgb.png", 0, "png", 3, 1, 1, NULL);
    check_parity("png_rgba.png", 0, "png", 4, 1, 1, NULL);
    check_parity("png_l.png", 0, "png", 1, 1, 1, NULL);
    check_parity("png_la.png", 0, "png", 4, 1, 1, NULL);
    check_parity("png_palette_trns.png", 0, "png", 4, 1, 1, NULL);
    check_parity("png_l_trns.png", 0, "png", 4, 1, 1, NULL);
    check_parity("png_rgb16.png", 0, "png", 3, 1, 1, NULL);
    check_parity("png_gray16.png", 0, "png", 1, 1, 1, NULL);
    check_parity("png_gray4.png", 0, "png", 1, 1, 1, NULL);
}

static void test_vips_formats_parity(void **state)
{
    check_parity("webp_lossless.webp", 0, "webp", 4, 1, 1, NULL);
    /* Same libwebp as Pillow, same default (fancy) upsampling. */
    check_parity("webp_lossy.webp", 0, "webp", 3, 1, 1, NULL);
    /* Frame 0 of two. */
    check_parity("gif_anim.gif", 0, "gif", 3, 1, 2, NULL);
    check_parity("tiff_rgb.tif", 0, "tiff", 3, 1, 1, NULL);
}

static void test_bmp_parity(void **state)
{
    check_parity("bmp_rgb24.bmp", 0, "bmp", 3, 1, 1, NULL);
    check_parity("bmp_pal8.bmp", 0, "bmp", 3, 1, 1, NULL);
    check_parity("bmp_gray8.bmp", 0, "bmp", 1, 1, 1, NULL);
    check_parity("bmp_1bit.bmp", 0, "bmp", 1, 1, 1, NULL);
    check_parity("bmp_32.bmp", 0, "bmp", 3, 1, 1, NULL);
    check_parity("bmp_565.bmp", 0, "bmp", 3, 1, 1, NULL);
}

/* Tagged files keep their stored values, bit for bit Pillow's, and hand their profile on byte
 * for byte: Adobe RGB and Display P3 in JPEG and PNG, sRGB, and greyscale. A CMYK file's pixels
 * become RGB by Pillow's formula, whatever its profile says, and the CMYK profile, which no longer
 * describes them, is not handed on. */
static void test_icc_kept(void **state)
{
    check_parity("jpeg_icc_adobe.jpg", 0, "jpeg", 3, 1, 1, "adobe.icc");
    check_parity("jpeg_icc_p3.jpg", 0, "jpeg", 3, 1, 1, "p3.icc");
    check_parity("png_icc_adobe.png", 0, "png", 3, 1, 1, "adobe.icc");
    check_parity("png_icc_p3.png", 0, "png", 3, 1, 1, "p3.icc");
    check_parity("jpeg_icc_srgb.jpg", 0, "jpeg", 3, 1, 1, "srgb.icc");
    check_parity("png_icc_gray.png", 0, "png", 1, 1, 1, "gray.icc");
    check_parity("jpeg_cmyk_icc.jpg", 0, "jpeg", 3, 1, 1, NULL);
    /* libvips' path: 8-bit CMYK by the same formula, not through its fallback profile. */
    check_parity("tiff_cmyk.tif", 0, "tiff", 3, 1, 1, NULL);
}

static struct img *decode_as(const struct blob *b, enum img_color color, struct img_info *info)
{
    const struct img_decode_options opt = {0, 0, color};
    struct eng_error err = {0};
    struct img *im = img_decode(b->data, b->size, &opt, info, &err);
    if (!im) fail_msg("decode failed (%d): %s", err.code, err.message);
    return im;
}

/* libvips' own conversion of a file to sRGB (what `vips icc_transform IN OUT srgb --embedded`
 * does), made here apart from the codec: the reference color=srgb is held to. */
static struct img *vips_srgb(const struct blob *b)
{
    VipsImage *in = vips_image_new_from_buffer(b->data, b->size, "", NULL), *out = NULL;
    if (!in || vips_icc_transform(in, &out, "srgb", "embedded", TRUE, NULL))
        fail_msg("libvips: %s", vips_error_buffer());
    size_t size;
    uint8_t *pixels = vips_image_write_to_memory(out, &size);
    assert_non_null(pixels);
    assert_int_equal(out->BandFmt, VIPS_FORMAT_UCHAR);
    struct img *im = img_new(out->Xsize, out->Ysize, out->Bands, NULL);
    assert_non_null(im);
    assert_int_equal(size, im->stride * (size_t)im->height);
    memcpy(im->data, pixels, size);
    g_free(pixels);
    g_object_unref(out);
    g_object_unref(in);
    return im;
}

/* color=srgb: within a level of libvips' icc_transform run here on the file, within 2 of
 * ImageCms's transform (stem-srgb.augf, from gen_codec.py: lcms's 8-bit pipeline against libvips'
 * float one), far from the stored values, and without a profile. */
static void test_icc_to_srgb(void **state)
{
    static const char *const names[] = {"jpeg_icc_adobe.jpg", "jpeg_icc_p3.jpg",
                                        "png_icc_adobe.png", "png_icc_p3.png", "jpeg_cmyk_icc.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct blob b = load(names[i]);
        struct img_info info;
        struct img *im = decode_as(&b, IMG_COLOR_SRGB, &info), *keep = decode_ok(&b, NULL);
        struct img *vips = vips_srgb(&b);
        char lcms_name[64];
        snprintf(lcms_name, sizeof lcms_name, "%.*s-srgb.augf",
                 (int)(strrchr(names[i], '.') - names[i]), names[i]);
        struct img *lcms = fixture_load(codec_dir, lcms_name);
        assert_non_null(lcms);
        int vips_diff = 0, lcms_diff = 0, keep_diff = 0;
        assert_int_equal(fixture_diff(im, vips, 1, &vips_diff), 0);
        assert_int_equal(fixture_diff(im, lcms, 2, &lcms_diff), 0);
        assert_true(fixture_diff(im, keep, 8, &keep_diff) > 100);
        print_message("%-20s srgb: largest difference from libvips %d, ImageCms %d, the stored "
                      "values %d\n",
                      names[i], vips_diff, lcms_diff, keep_diff);
        assert_profile(&info.icc, NULL, names[i]);
        img_free(lcms);
        img_free(vips);
        img_free(keep);
        img_free(im);
        free(b.data);
    }
}

/* color=srgb leaves alone what has nothing to convert: no profile (an image without one is the
 * same under both settings), an sRGB profile, a greyscale one; it hands no profile on. */
static void test_srgb_without_conversion(void **state)
{
    static const char *const names[] = {
        "jpeg_baseline.jpg", "png_rgba.png",     "jpeg_cmyk.jpg",  "tiff_cmyk.tif",
        "jpeg_icc_srgb.jpg", "png_icc_gray.png", "webp_lossy.webp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct blob b = load(names[i]);
        struct img_info info;
        struct img *srgb = decode_as(&b, IMG_COLOR_SRGB, &info), *keep = decode_ok(&b, NULL);
        if (fixture_diff(srgb, keep, 0, NULL) != 0) fail_msg("%s: srgb changed it", names[i]);
        assert_profile(&info.icc, NULL, names[i]);
        img_free(srgb);
        img_free(keep);
        free(b.data);
    }
}

/* HEIF and AVIF made at run time by libvips, when its libheif has the encoders. */
static void test_heif(void **state)
{
    struct eng_error err;
    assert_int_equal(img_codec_init(&err), 0);
    struct blob png = load("png_rgb.png");
    struct img *ref = decode_ok(&png, NULL);
    static const struct {
        VipsForeignHeifCompression compression;
        const char *format;
    } kinds[] = {{VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, "heif"},
                 {VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "avif"}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        VipsImage *v = vips_image_new_from_memory(ref->data, ref->stride * ref->height, ref->width,
                                                  ref->height, 3, VIPS_FORMAT_UCHAR);
        void *buf = NULL;
        size_t len = 0;
        int rc =
            vips_heifsave_buffer(v, &buf, &len, "compression", kinds[i].compression, "Q", 95, NULL);
        g_object_unref(v);
        if (rc) {
            vips_error_clear();
            print_message("no %s encoder in this libheif: skipped\n", kinds[i].format);
            continue;
        }
        struct img_info info;
        struct img *im = img_decode(buf, len, NULL, &info, &err);
        if (!im) fail_msg("%s: %s", kinds[i].format, err.message);
        assert_string_equal(info.format, kinds[i].format);
        assert_int_equal(im->channels, 3);
        double mad = mean_abs_diff(im, ref);
        print_message("%s round trip at Q95: mean difference %.2f\n", kinds[i].format, mad);
        assert_true(mad < 4);
        img_free(im);
        g_free(buf);
    }
    img_free(ref);
    free(png.data);
}

/* --- Hostile input ------------------------------------------------------------------------ */

static void test_empty_and_garbage(void **state)
{
    struct eng_error err;
    assert_int_equal(decode_code("", 0, NULL, &err), ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "empty"));
    assert_int_equal(decode_code(NULL, 0, NULL, &err), ENG_UNSUPPORTED);
    assert_int_equal(decode_code(NULL, 10, NULL, &err), ENG_INVALID);

    static const char garbage[] = "this is not an image at all";
    assert_int_equal(decode_code(garbage, sizeof garbage, NULL, &err), ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "74 68 69 73")); /* names what it saw */
    assert_int_equal(decode_code("%PDF-1.7\n", 9, NULL, &err), ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "PDF"));
    assert_int_equal(decode_code("<svg xmlns=", 11, NULL, &err), ENG_UNSUPPORTED);

    /* Right magic, nothing after it. */
    assert_int_equal(decode_code("\xFF\xD8\xFF", 3, NULL, &err), ENG_UNDECODABLE);
    assert_int_equal(decode_code("\x89PNG\r\n\x1a\n", 8, NULL, &err), ENG_UNDECODABLE);
    assert_int_equal(decode_code("GIF89a", 6, NULL, &err), ENG_UNDECODABLE);
    assert_int_equal(decode_code("RIFF\0\0\0\0WEBP", 12, NULL, &err), ENG_UNDECODABLE);
}

/* Cut in half: the decoders' own reason, never grey padding passed off as an image. */
static void test_truncated(void **state)
{
    static const char *const names[] = {
        "jpeg_baseline.jpg", "jpeg_progressive.jpg", "png_rgb16.png", "webp_lossy.webp",
        "gif_anim.gif",      "tiff_rgb.tif",         "bmp_rgb24.bmp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct blob b = load(names[i]);
        struct eng_error err;
        enum eng_code code = decode_code(b.data, b.size / 2, NULL, &err);
        if (code != ENG_UNDECODABLE)
            fail_msg("%s cut in half: code %d (%s)", names[i], code, err.message);
        print_message("%-22s cut in half: %s\n", names[i], err.message);
        free(b.data);
    }
}

/* Slightly corrupt JPEG (a libjpeg warning): accepted, as Pillow does. */
static void test_jpeg_warning_accepted(void **state)
{
    struct blob b = load("jpeg_baseline.jpg");
    assert_true(b.data[b.size - 2] == 0xFF && b.data[b.size - 1] == 0xD9);
    uint8_t *bad = malloc(b.size + 3);
    assert_non_null(bad);
    memcpy(bad, b.data, b.size - 2);
    memcpy(bad + b.size - 2, "\x01\x02\x03\xFF\xD9", 5); /* junk before EOI */
    struct eng_error err;
    struct img *im = img_decode(bad, b.size + 3, NULL, NULL, &err);
    if (!im) fail_msg("rejected: %s", err.message);
    struct img *clean = decode_ok(&b, NULL);
    assert_int_equal(fixture_diff(im, clean, 0, NULL), 0);
    img_free(im);
    img_free(clean);
    free(bad);
    free(b.data);
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A 100000x100000 RGBA PNG would need 40 GB: refused from the header, before any allocation
 * (under ASan an attempt would abort the test). */
static void test_png_bomb(void **state)
{
    uint8_t png[8 + 25 + 12];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    uint8_t *ihdr = png + 8;
    put_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, 100000);
    put_be32(ihdr + 12, 100000);
    memcpy(ihdr + 16, "\x08\x06\x00\x00\x00", 5);
    put_be32(ihdr + 21, crc32_of(ihdr + 4, 17));
    uint8_t *iend = ihdr + 25;
    put_be32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put_be32(iend + 8, crc32_of(iend + 4, 4));
    struct eng_error err;
    assert_int_equal(decode_code(png, sizeof png, NULL, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "100000x100000"));
    assert_non_null(strstr(err.message, "16384"));
    /* Within the side limit but past the pixel limit. */
    put_be32(ihdr + 8, 10000);
    put_be32(ihdr + 12, 10000);
    put_be32(ihdr + 21, crc32_of(ihdr + 4, 17));
    assert_int_equal(decode_code(png, sizeof png, NULL, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "100000000 pixels"));
    assert_non_null(strstr(err.message, "40000000"));
}

/* Patches the first SOF's height and width. */
static void set_jpeg_size(uint8_t *p, size_t n, int w, int h)
{
    for (size_t i = 2; i + 9 < n;) {
        assert_int_equal(p[i], 0xFF);
        uint8_t m = p[i + 1];
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (m == 0xC0 || m == 0xC2) {
            p[i + 5] = (uint8_t)(h >> 8), p[i + 6] = (uint8_t)h;
            p[i + 7] = (uint8_t)(w >> 8), p[i + 8] = (uint8_t)w;
            return;
        }
        i += 2 + len;
    }
    fail_msg("no SOF");
}

static void test_jpeg_bomb(void **state)
{
    struct blob b = load("jpeg_baseline.jpg");
    set_jpeg_size(b.data, b.size, 60000, 60000);
    struct eng_error err;
    assert_int_equal(decode_code(b.data, b.size, NULL, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "60000x60000"));
    set_jpeg_size(b.data, b.size, 10000, 9000);
    assert_int_equal(decode_code(b.data, b.size, NULL, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "90000000 pixels"));
    free(b.data);
}

/* The offset of a GIF's first image descriptor (after the global palette and extensions). */
static size_t gif_first_frame(const uint8_t *p, size_t n)
{
    size_t i = 13;
    if (p[10] & 0x80) i += 3u << ((p[10] & 7) + 1);
    while (i < n && p[i] == 0x21) { /* extension: label, then sub-blocks up to a 0 length */
        i += 2;
        while (i < n && p[i])
            i += 1 + p[i];
        i++;
    }
    assert_true(i < n && p[i] == 0x2C);
    return i;
}

/* The general path checks the header too: a GIF whose screen and first frame claim 65535x65535
 * (libnsgif ignores an absurd screen alone), and a BMP 16777215 pixels wide. */
static void test_vips_bomb(void **state)
{
    struct blob b = load("gif_anim.gif");
    size_t frame = gif_first_frame(b.data, b.size);
    memset(b.data + 6, 0xFF, 4);
    memset(b.data + frame + 5, 0xFF, 4);
    struct eng_error err;
    assert_int_equal(decode_code(b.data, b.size, NULL, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "65535x65535"));
    free(b.data);

    b = load("bmp_rgb24.bmp");
    b.data[18] = b.data[19] = b.data[20] = 0xFF, b.data[21] = 0x00;
    assert_int_equal(decode_code(b.data, b.size, NULL, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "16777215x30"));
    free(b.data);
}

/* --- Limits ------------------------------------------------------------------------------- */

static void test_limits_exact(void **state)
{
    /* Every fixture is 40x30 = 1200 pixels. */
    static const char *const names[] = {"jpeg_baseline.jpg", "png_rgb.png", "bmp_rgb24.bmp",
                                        "webp_lossy.webp", "jpeg_exif6.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct blob b = load(names[i]);
        struct eng_error err;
        struct img_decode_options at = {1200, 40}, over_pixels = {1199, 40}, over_side = {1200, 39};
        if (decode_code(b.data, b.size, &at, &err) != ENG_OK)
            fail_msg("%s at the limit: %s", names[i], err.message);
        assert_int_equal(decode_code(b.data, b.size, &over_pixels, &err), ENG_TOO_LARGE);
        assert_non_null(strstr(err.message, "1200 pixels"));
        assert_non_null(strstr(err.message, "1199"));
        assert_int_equal(decode_code(b.data, b.size, &over_side, &err), ENG_TOO_LARGE);
        assert_non_null(strstr(err.message, "40x30"));
        assert_non_null(strstr(err.message, "39 pixels per side"));
        free(b.data);
    }
}

/* --- Encoding ----------------------------------------------------------------------------- */

static struct img *synthetic(int w, int h, int channels, size_t pad)
{
    struct img *im = img_new(w, h, channels, NULL);
    assert_non_null(im);
    if (pad) { /* a stride wider than the row, as a crop view would have */
        im->stride += pad;
        uint8_t *wider = realloc(im->data, im->stride * (size_t)h);
        assert_non_null(wider);
        im->data = wider;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                img_row(im, y)[x * channels + c] =
                    (uint8_t)(c == 0   ? x * 255 / (w - 1)
                              : c == 1 ? y * 255 / (h - 1)
                              : c == 2 ? ((x / 8 + y / 8) % 2) * 40 + 100
                                       : (x + y) * 255 / (w + h - 2));
    return im;
}

static struct img *round_trip(const struct img *im, enum img_format fmt, int quality, size_t *size)
{
    void *buf = NULL;
    struct eng_error err;
    if (img_encode(im, fmt, quality, NULL, &buf, size, &err)) fail_msg("encode: %s", err.message);
    assert_non_null(buf);
    struct img *back = img_decode(buf, *size, NULL, NULL, &err);
    if (!back) fail_msg("decode of our own output: %s", err.message);
    free(buf);
    return back;
}

static void test_png_round_trip(void **state)
{
    for (int c = 1; c <= 4; c++) {
        if (c == 2) continue;
        for (size_t pad = 0; pad <= 5; pad += 5) {
            struct img *im = synthetic(67, 45, c, pad);
            size_t size;
            struct img *back = round_trip(im, IMG_PNG, 0, &size);
            assert_int_equal(back->channels, c);
            assert_int_equal(fixture_diff(back, im, 0, NULL), 0);
            img_free(back);
            img_free(im);
        }
    }
}

/* Pillow's JPEG settings (quality 90, 4:2:0, accurate DCT, standard Huffman tables) through the
 * same libjpeg-turbo give the very bytes Pillow wrote. */
static void test_jpeg_encode_matches_pillow(void **state)
{
    struct blob png = load("png_rgb.png"), pil = load("jpeg_baseline.jpg");
    struct img *im = decode_ok(&png, NULL);
    void *buf = NULL;
    size_t size = 0;
    struct eng_error err;
    assert_int_equal(img_encode(im, IMG_JPEG, 90, NULL, &buf, &size, &err), 0);
    assert_int_equal(size, pil.size);
    assert_memory_equal(buf, pil.data, size);
    free(buf);
    img_free(im);
    free(png.data);
    free(pil.data);
}

static void test_jpeg_round_trip(void **state)
{
    struct img *rgb = synthetic(96, 64, 3, 3);
    size_t size;
    struct img *back = round_trip(rgb, IMG_JPEG, 90, &size);
    assert_int_equal(back->channels, 3);
    double mad = mean_abs_diff(back, rgb);
    /* Pillow gets the same 2.35 on this pattern (4:2:0 on red and green ramps). */
    print_message("JPEG q90 round trip: %zu bytes, mean difference %.2f\n", size, mad);
    assert_true(mad < 3);
    img_free(back);

    /* Alpha is dropped; the colour is kept. */
    struct img *rgba = synthetic(96, 64, 4, 0);
    back = round_trip(rgba, IMG_JPEG, 90, &size);
    assert_int_equal(back->channels, 3);
    assert_true(mean_abs_diff(back, rgb) < 3);
    img_free(back);
    img_free(rgba);
    img_free(rgb);

    struct img *grey = synthetic(96, 64, 1, 0);
    back = round_trip(grey, IMG_JPEG, 90, &size);
    assert_int_equal(back->channels, 1);
    assert_true(mean_abs_diff(back, grey) < 1.5);
    img_free(back);
    img_free(grey);
}

static void test_webp_round_trip(void **state)
{
    for (int c = 1; c <= 4; c++) {
        if (c == 2) continue;
        struct img *im = synthetic(96, 64, c, c == 3 ? 7 : 0);
        size_t size;
        struct img *back = round_trip(im, IMG_WEBP, 90, &size);
        assert_int_equal(back->width, 96);
        assert_int_equal(back->height, 64);
        /* libwebp writes greyscale as colour. */
        assert_int_equal(back->channels, c == 1 ? 3 : c);
        if (c != 1) {
            double mad = mean_abs_diff(back, im);
            print_message("WebP q90 round trip, %d channels: %zu bytes, mean difference %.2f\n", c,
                          size, mad);
            assert_true(mad < 4);
        }
        img_free(back);
        img_free(im);
    }
}

/* Pillow writes a tagged JPEG from the same pixels, quality and profile: the very same bytes
 * come out, so the APP2 markers sit where libjpeg's jpeg_write_icc_profile puts them. */
static void test_jpeg_icc_matches_pillow(void **state)
{
    static const char *const pairs[][2] = {{"jpeg_icc_adobe.jpg", "adobe.icc"},
                                           {"jpeg_icc_p3.jpg", "p3.icc"},
                                           {"jpeg_icc_srgb.jpg", "srgb.icc"}};
    struct blob png = load("png_rgb.png");
    struct img *im = decode_ok(&png, NULL);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct blob pil = load(pairs[i][0]), icc = load(pairs[i][1]);
        const struct img_profile profile = {icc.data, icc.size};
        void *buf = NULL;
        size_t size = 0;
        struct eng_error err;
        assert_int_equal(img_encode(im, IMG_JPEG, 90, &profile, &buf, &size, &err), 0);
        if (size != pil.size || memcmp(buf, pil.data, size) != 0)
            fail_msg("%s: %zu bytes differ from Pillow's %zu", pairs[i][0], size, pil.size);
        free(buf);
        free(pil.data);
        free(icc.data);
    }
    img_free(im);
    free(png.data);
}

/* encode then decode hands back the profile, byte for byte, in every format, for colour and
 * greyscale; a profile that does not describe what the file stores is left out. */
static void test_icc_round_trip(void **state)
{
    struct blob adobe = load("adobe.icc"), gray = load("gray.icc");
    const struct img_profile rgb_icc = {adobe.data, adobe.size}, gray_icc = {gray.data, gray.size};
    static const enum img_format formats[] = {IMG_JPEG, IMG_PNG, IMG_WEBP};
    for (size_t f = 0; f < 3; f++)
        for (int c = 1; c <= 4; c++) {
            if (c == 2) continue;
            struct img *im = synthetic(48, 32, c, c == 3 ? 5 : 0);
            /* WebP stores colour even for greyscale: only an RGB profile fits there. */
            const int colour_file = c > 1 || formats[f] == IMG_WEBP;
            const struct img_profile *fits = c > 1 ? &rgb_icc : &gray_icc;
            const struct img_profile *other = c > 1 ? &gray_icc : &rgb_icc;
            for (int k = 0; k < 2; k++) {
                void *buf = NULL;
                size_t size = 0;
                struct eng_error err;
                if (img_encode(im, formats[f], 90, k ? other : fits, &buf, &size, &err))
                    fail_msg("encode: %s", err.message);
                struct img_info info;
                struct img *back = decode_ok(&(struct blob){buf, size}, &info);
                char what[64];
                snprintf(what, sizeof what, "format %d, %d channels, %s profile", (int)formats[f],
                         c, k ? "another" : "its");
                const char *want = k || (c == 1 && colour_file) ? NULL
                                   : c > 1                      ? "adobe.icc"
                                                                : "gray.icc";
                assert_profile(&info.icc, want, what);
                img_info_clear(&info);
                img_free(back);
                free(buf);
            }
            img_free(im);
        }
    free(adobe.data);
    free(gray.data);
}

/* A profile longer than one APP2 marker takes several, numbered in order, and reads back whole;
 * one past 255 markers cannot be written into a JPEG at all. */
static void test_jpeg_icc_markers(void **state)
{
    struct blob adobe = load("adobe.icc");
    const size_t big = 3 * 65519 + 100;
    uint8_t *bytes = calloc(1, big);
    assert_non_null(bytes);
    memcpy(bytes, adobe.data, adobe.size); /* its header and tags, then zeros */
    for (size_t i = adobe.size; i < big; i++)
        bytes[i] = (uint8_t)(i * 7);
    struct img_profile icc = {bytes, big};
    struct img *im = synthetic(16, 16, 3, 0);
    void *buf = NULL;
    size_t size = 0, markers = 0;
    struct eng_error err;
    assert_int_equal(img_encode(im, IMG_JPEG, 90, &icc, &buf, &size, &err), 0);
    const uint8_t *p = buf;
    for (size_t i = 2; i + 4 < size && p[i] == 0xFF && p[i + 1] != 0xDA;
         i += 2 + ((size_t)p[i + 2] << 8 | p[i + 3]))
        if (p[i + 1] == 0xE2 && memcmp(p + i + 4, "ICC_PROFILE", 12) == 0) {
            assert_int_equal(p[i + 16], ++markers);
            assert_int_equal(p[i + 17], 4);
        }
    assert_int_equal(markers, 4);
    struct img_info info;
    img_free(decode_ok(&(struct blob){buf, size}, &info));
    assert_int_equal(info.icc.size, big);
    assert_memory_equal(info.icc.data, bytes, big);
    img_info_clear(&info);
    free(buf);

    const size_t too_big = (size_t)255 * 65519 + 1;
    uint8_t *huge = calloc(1, too_big);
    assert_non_null(huge);
    memcpy(huge, adobe.data, adobe.size);
    icc = (struct img_profile){huge, too_big};
    assert_int_equal(img_encode(im, IMG_JPEG, 90, &icc, &buf, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(buf);
    assert_non_null(strstr(err.message, "16707345"));
    free(huge);
    img_free(im);
    free(bytes);
    free(adobe.data);
}

static void test_encode_errors(void **state)
{
    struct img *im = synthetic(8, 8, 3, 0);
    void *buf = (void *)1;
    size_t size = 1;
    struct eng_error err;
    assert_int_equal(img_encode(im, IMG_JPEG, 0, NULL, &buf, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(buf);
    assert_int_equal(img_encode(im, IMG_WEBP, 101, NULL, &buf, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(img_encode(im, (enum img_format)42, 90, NULL, &buf, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    im->channels = 2;
    assert_int_equal(img_encode(im, IMG_PNG, 90, NULL, &buf, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    img_free(im);
}

static void test_format_names(void **state)
{
    enum img_format f;
    assert_int_equal(img_format_from_name("jpeg", &f), 0);
    assert_int_equal(f, IMG_JPEG);
    assert_int_equal(img_format_from_name("JPG", &f), 0);
    assert_int_equal(f, IMG_JPEG);
    assert_int_equal(img_format_from_name("png", &f), 0);
    assert_int_equal(f, IMG_PNG);
    assert_int_equal(img_format_from_name("webp", &f), 0);
    assert_int_equal(f, IMG_WEBP);
    assert_int_equal(img_format_from_name("gif", &f), -1);
    assert_int_equal(img_format_from_name("", &f), -1);
    assert_int_equal(img_format_from_name(NULL, &f), -1);
    assert_string_equal(img_format_mime(IMG_JPEG), "image/jpeg");
    assert_string_equal(img_format_mime(IMG_PNG), "image/png");
    assert_string_equal(img_format_mime(IMG_WEBP), "image/webp");
    assert_null(img_format_mime((enum img_format)42));
}

/* --- Threads and timing ------------------------------------------------------------------- */

struct worker {
    struct blob input[3];
    struct img *expected[3];
    int failures;
};

static void *decode_many(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 60; i++) {
        int k = i % 3;
        struct eng_error err;
        struct img *im = img_decode(w->input[k].data, w->input[k].size, NULL, NULL, &err);
        if (!im || fixture_diff(im, w->expected[k], 0, NULL) != 0) w->failures++;
        img_free(im);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct worker shared = {0};
    static const char *const names[] = {"jpeg_progressive.jpg", "png_palette_trns.png",
                                        "webp_lossy.webp"};
    for (int k = 0; k < 3; k++) {
        shared.input[k] = load(names[k]);
        shared.expected[k] = decode_ok(&shared.input[k], NULL);
    }
    struct worker workers[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        workers[t] = shared;
        assert_int_equal(pthread_create(&threads[t], NULL, decode_many, &workers[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(workers[t].failures, 0);
    }
    for (int k = 0; k < 3; k++) {
        img_free(shared.expected[k]);
        free(shared.input[k].data);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Figures only, never asserted (timings depend on the machine and the sanitizers). */
static void test_decode_timing(void **state)
{
    struct img *im = synthetic(224, 224, 3, 0);
    static const struct {
        enum img_format fmt;
        const char *name;
    } kinds[] = {{IMG_JPEG, "JPEG q90"}, {IMG_PNG, "PNG"}, {IMG_WEBP, "WebP q90"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        void *buf;
        size_t size;
        struct eng_error err;
        assert_int_equal(img_encode(im, kinds[k].fmt, 90, NULL, &buf, &size, &err), 0);
        int rounds = 300;
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            double t0 = now_ms();
            for (int i = 0; i < rounds; i++)
                img_free(img_decode(buf, size, NULL, NULL, &err));
            double per = (now_ms() - t0) / rounds;
            if (per < best) best = per;
        }
        print_message("decode 224x224 %-9s (%6zu bytes): %.3f ms\n", kinds[k].name, size, best);
        free(buf);
    }
    img_free(im);
}

/* LeakSanitizer (in -DAUGSERVE_SANITIZE builds): libx265, the HEVC encoder libheif loads when
 * test_heif makes its input, keeps one allocation for the life of the process. Nothing else is
 * suppressed; the codec itself must stay leak-free. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:x265_malloc\n";
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(codec_dir, sizeof codec_dir, "%s/codec", argv[1]);
    struct eng_error err;
    if (img_codec_init(&err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_parity),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_png_parity),
        cmocka_unit_test(test_vips_formats_parity),
        cmocka_unit_test(test_bmp_parity),
        cmocka_unit_test(test_icc_kept),
        cmocka_unit_test(test_icc_to_srgb),
        cmocka_unit_test(test_srgb_without_conversion),
        cmocka_unit_test(test_heif),
        cmocka_unit_test(test_empty_and_garbage),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_jpeg_warning_accepted),
        cmocka_unit_test(test_png_bomb),
        cmocka_unit_test(test_jpeg_bomb),
        cmocka_unit_test(test_vips_bomb),
        cmocka_unit_test(test_limits_exact),
        cmocka_unit_test(test_png_round_trip),
        cmocka_unit_test(test_jpeg_encode_matches_pillow),
        cmocka_unit_test(test_jpeg_round_trip),
        cmocka_unit_test(test_webp_round_trip),
        cmocka_unit_test(test_jpeg_icc_matches_pillow),
        cmocka_unit_test(test_icc_round_trip),
        cmocka_unit_test(test_jpeg_icc_markers),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_decode_timing),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    img_codec_shutdown();
    return failed;
}
