#include "image/codec.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spng.h>
#include <turbojpeg.h>
#include <vips/vips.h>

/* img_new refuses sides above this; the decoders refuse them first, as too large. */
#define SIDE_CAP 65535

/* Memory libspng may spend on ancillary chunks (text, ICC, EXIF, decompressed): a few KB in real
 * files; the cap stops a zTXt or iCCP deflate bomb. Image data (IDAT) is not subject to it. */
#define PNG_CHUNK_CACHE_LIMIT (16u << 20)

enum kind { K_UNKNOWN, K_JPEG, K_PNG, K_GIF, K_WEBP, K_TIFF, K_BMP, K_HEIF, K_AVIF };

static const char *const kind_names[] = {
    [K_UNKNOWN] = "unknown", [K_JPEG] = "jpeg", [K_PNG] = "png",
    [K_GIF] = "gif",         [K_WEBP] = "webp", [K_TIFF] = "tiff",
    [K_BMP] = "bmp",         [K_HEIF] = "heif", [K_AVIF] = "avif",
};

static const char *const kind_labels[] = {
    [K_UNKNOWN] = "image", [K_JPEG] = "JPEG", [K_PNG] = "PNG",
    [K_GIF] = "GIF",       [K_WEBP] = "WebP", [K_TIFF] = "TIFF",
    [K_BMP] = "BMP",       [K_HEIF] = "HEIF", [K_AVIF] = "AVIF",
};

struct limits {
    uint64_t max_pixels;
    uint64_t max_side;
};

/* What the decoders hand on to the shared finishing steps. */
struct decoded {
    struct img *im;
    int orientation;
    struct img_profile icc; /* the embedded profile, when the pixels were not converted from it */
};

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static struct limits effective_limits(const struct img_decode_options *lim)
{
    struct limits l = {IMG_DEFAULT_MAX_PIXELS, IMG_DEFAULT_MAX_DIMENSION};
    if (lim && lim->max_pixels > 0) l.max_pixels = lim->max_pixels;
    if (lim && lim->max_dimension > 0) l.max_side = (uint64_t)lim->max_dimension;
    return l;
}

/* The one place every decoder checks a header's size, before any pixel is decoded. */
static int check_size(enum kind kind, uint64_t w, uint64_t h, const struct limits *l,
                      struct eng_error *err)
{
    const char *what = kind_labels[kind];
    if (w == 0 || h == 0)
        return eng_fail(err, ENG_UNDECODABLE, "%s header declares an empty %llux%llu image", what,
                        (unsigned long long)w, (unsigned long long)h);
    if (w > l->max_side || h > l->max_side)
        return eng_fail(
            err, ENG_TOO_LARGE, "%s image is %llux%llu; the limit is %llu pixels per side", what,
            (unsigned long long)w, (unsigned long long)h, (unsigned long long)l->max_side);
    if (w * h > l->max_pixels)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s image is %llux%llu (%llu pixels); the limit is %llu pixels", what,
                        (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                        (unsigned long long)l->max_pixels);
    if (w > SIDE_CAP || h > SIDE_CAP)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s image is %llux%llu; the largest side supported is %d", what,
                        (unsigned long long)w, (unsigned long long)h, SIDE_CAP);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Sniffing                                                                                   */

static bool is_bmp(const uint8_t *p, size_t n)
{
    if (n < 18 || p[0] != 'B' || p[1] != 'M') return false;
    /* "BM" alone is too weak a signature; the info header's size must be one of the known. */
    switch (le32(p + 14)) {
    case 12:
    case 40:
    case 52:
    case 56:
    case 64:
    case 108:
    case 124:
        return true;
    default:
        return false;
    }
}

static enum kind heif_brand(const uint8_t *p, size_t n)
{
    static const char *const heif[] = {"heic", "heix", "hevc", "hevx", "heim",
                                       "heis", "hevm", "hevs", "mif1", "msf1"};
    if (n < 16 || memcmp(p + 4, "ftyp", 4) != 0) return K_UNKNOWN;
    uint32_t box = be32(p);
    if (box < 16 || box > n) box = (uint32_t)(n < 64 ? n : 64);
    /* The major brand at 8, then compatible brands from 16 (12 is the minor version). */
    enum kind found = K_UNKNOWN;
    for (uint32_t off = 8; off + 4 <= box; off += off == 8 ? 8 : 4) {
        if (memcmp(p + off, "avif", 4) == 0 || memcmp(p + off, "avis", 4) == 0) return K_AVIF;
        for (size_t i = 0; i < sizeof heif / sizeof heif[0]; i++)
            if (memcmp(p + off, heif[i], 4) == 0) found = K_HEIF;
    }
    return found;
}

static enum kind sniff(const uint8_t *p, size_t n)
{
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return K_JPEG;
    if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return K_PNG;
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) return K_GIF;
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0) return K_WEBP;
    if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0 ||
                   memcmp(p, "II+\0", 4) == 0 || memcmp(p, "MM\0+", 4) == 0))
        return K_TIFF;
    if (is_bmp(p, n)) return K_BMP;
    return heif_brand(p, n);
}

/* Names formats that are recognisable but deliberately not read, so the client hears what it
 * sent rather than "unknown". */
static const char *unsupported_name(const uint8_t *p, size_t n)
{
    static const struct {
        const char *magic;
        size_t len, at;
        const char *name;
    } known[] = {
        {"%PDF", 4, 0, "PDF"},
        {"<svg", 4, 0, "SVG"},
        {"<?xml", 5, 0, "XML (SVG?)"},
        {"8BPS", 4, 0, "Photoshop (PSD)"},
        {"\0\0\1\0", 4, 0, "ICO"},
        {"\xFF\x0A", 2, 0, "JPEG XL"},
        {"\0\0\0\x0CJXL ", 8, 0, "JPEG XL"},
        {"\0\0\0\x0CjP  ", 8, 0, "JPEG 2000"},
        {"\xFF\x4F\xFF\x51", 4, 0, "JPEG 2000"},
        {"#?RADIANCE", 10, 0, "Radiance HDR"},
        {"BM", 2, 0, "BMP (unknown header version)"},
        {"ftyp", 4, 4, "ISO media (not HEIF or AVIF)"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (n >= known[i].at + known[i].len &&
            memcmp(p + known[i].at, known[i].magic, known[i].len) == 0)
            return known[i].name;
    return NULL;
}

static int fail_unknown(const uint8_t *p, size_t n, struct eng_error *err)
{
    if (n == 0) return eng_fail(err, ENG_UNSUPPORTED, "the image is empty (0 bytes)");
    const char *name = unsupported_name(p, n);
    if (name)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "%s images are not supported; send JPEG, PNG, WebP, GIF, TIFF, BMP or "
                        "HEIF",
                        name);
    char hex[3 * 8] = "";
    size_t shown = n < 8 ? n : 8;
    for (size_t i = 0; i < shown; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x%s", p[i], i + 1 < shown ? " " : "");
    return eng_fail(err, ENG_UNSUPPORTED,
                    "unrecognised image data (%zu bytes starting %s); send JPEG, PNG, WebP, GIF, "
                    "TIFF, BMP or HEIF",
                    n, hex);
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata: EXIF orientation and ICC profiles                                                */

/* The Orientation tag (0x0112) of IFD0 in a TIFF-structured block: the Exif payload after
 * "Exif\0\0", or a PNG eXIf chunk. 1 when absent, malformed or out of range, as Pillow's
 * exif_transpose then leaves the image alone. */
static int exif_orientation(const uint8_t *p, size_t n)
{
    if (n >= 6 && memcmp(p, "Exif\0\0", 6) == 0) {
        p += 6;
        n -= 6;
    }
    if (n < 8) return 1;
    bool le;
    if (p[0] == 'I' && p[1] == 'I')
        le = true;
    else if (p[0] == 'M' && p[1] == 'M')
        le = false;
    else
        return 1;
    uint16_t (*rd16)(const uint8_t *) = le ? le16 : be16;
    uint32_t (*rd32)(const uint8_t *) = le ? le32 : be32;
    if (rd16(p + 2) != 42) return 1;
    uint32_t ifd = rd32(p + 4);
    if (ifd > n - 2) return 1;
    unsigned count = rd16(p + ifd);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) break;
        if (rd16(p + e) != 0x0112) continue;
        unsigned type = rd16(p + e + 2);
        uint32_t values = rd32(p + e + 4), v;
        if (values < 1) return 1;
        if (type == 3) /* SHORT, the type the standard gives it */
            v = rd16(p + e + 8);
        else if (type == 4) /* LONG, written by some tools */
            v = rd32(p + e + 8);
        else
            return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

enum icc_action { ICC_IGNORE, ICC_CONVERT };

static double s15f16(const uint8_t *p)
{
    return (int32_t)be32(p) / 65536.0;
}

/* Finds a tag; NULL unless its whole body lies inside the profile. */
static const uint8_t *icc_tag(const uint8_t *icc, size_t n, const char *sig, size_t *len)
{
    uint32_t count = be32(icc + 128);
    if (count > (n - 132) / 12) return NULL;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *t = icc + 132 + 12 * (size_t)i;
        if (memcmp(t, sig, 4) != 0) continue;
        uint32_t off = be32(t + 4), size = be32(t + 8);
        if (off > n || size > n - off || size < 8) return NULL;
        *len = size;
        return icc + off;
    }
    return NULL;
}

/* The tone curve's value at 0.5, or -1 when it cannot be read. */
static double icc_trc_mid(const uint8_t *t, size_t len)
{
    if (memcmp(t, "curv", 4) == 0 && len >= 12) {
        uint32_t entries = be32(t + 8);
        if (entries > (len - 12) / 2) return -1;
        if (entries == 0) return 0.5; /* identity */
        if (entries == 1) return pow(0.5, be16(t + 12) / 256.0);
        double pos = (entries - 1) * 0.5, lo = floor(pos);
        size_t i = (size_t)lo;
        double a = be16(t + 12 + 2 * i);
        double b = i + 1 < entries ? be16(t + 12 + 2 * (i + 1)) : a;
        return (a + (b - a) * (pos - lo)) / 65535.0;
    }
    if (memcmp(t, "para", 4) == 0 && len >= 16) {
        static const int nparams[] = {1, 3, 4, 5, 7};
        unsigned type = be16(t + 8);
        if (type > 4 || len < 12 + 4 * (size_t)nparams[type]) return -1;
        double g[7] = {0};
        for (int i = 0; i < nparams[type]; i++)
            g[i] = s15f16(t + 12 + 4 * i);
        if (type > 0 && g[1] == 0) return -1;
        double x = 0.5, y;
        switch (type) {
        case 0:
            return pow(x, g[0]);
        case 1:
            return x >= -g[2] / g[1] ? pow(g[1] * x + g[2], g[0]) : 0;
        case 2:
            return x >= -g[2] / g[1] ? pow(g[1] * x + g[2], g[0]) + g[3] : g[3];
        case 3:
            return x >= g[4] ? pow(g[1] * x + g[2], g[0]) : g[3] * x;
        default:
            y = x >= g[4] ? pow(g[1] * x + g[2], g[0]) + g[5] : g[3] * x + g[6];
            return y;
        }
    }
    return -1;
}

/* Whether an RGB profile is sRGB in all but name: its colorants match sRGB's (D50-adapted, as
 * every v2/v4 profile stores them) and its tone curves pass near sRGB's at mid-grey. Descriptions
 * are not trusted: "sRGB" appears in the names of profiles that are not (e-sRGB, scRGB). */
static bool icc_is_srgb(const uint8_t *icc, size_t n)
{
    static const char *const colorants[3] = {"rXYZ", "gXYZ", "bXYZ"};
    static const char *const curves[3] = {"rTRC", "gTRC", "bTRC"};
    static const double srgb[3][3] = {
        {0.4361, 0.2225, 0.0139}, {0.3851, 0.7169, 0.0971}, {0.1431, 0.0606, 0.7141}};
    for (int c = 0; c < 3; c++) {
        size_t len;
        const uint8_t *t = icc_tag(icc, n, colorants[c], &len);
        if (!t || len < 20 || memcmp(t, "XYZ ", 4) != 0) return false;
        for (int k = 0; k < 3; k++)
            if (fabs(s15f16(t + 8 + 4 * k) - srgb[c][k]) > 0.01) return false;
        t = icc_tag(icc, n, curves[c], &len);
        if (!t) return false;
        /* sRGB gives 0.214 at 0.5 and gamma 2.2 gives 0.218: both pass; 1.8 (0.287) or linear
         * (0.5) would not. */
        double mid = icc_trc_mid(t, len);
        if (mid < 0.19 || mid > 0.24) return false;
    }
    return true;
}

/* Whether a profile's header is sound and describes pixels of colour space `space` ("RGB ",
 * "GRAY", "CMYK"). */
static bool icc_is_for(const uint8_t *icc, size_t n, const char *space)
{
    return icc && n >= 132 && be32(icc) <= n && memcmp(icc + 36, "acsp", 4) == 0 &&
           memcmp(icc + 16, space, 4) == 0;
}

/* The colour space of an image's pixels: greyscale for one channel, else RGB (alpha has none). */
static const char *icc_space_of_channels(int channels)
{
    return channels == 1 ? "GRAY" : "RGB ";
}

/* What IMG_COLOR_SRGB does with a profile attached to pixels of colour space `space`.
 * Greyscale stays greyscale (Pillow never converts either); a profile that does not fit the
 * pixels or does not parse is ignored, as browsers do. */
static enum icc_action icc_decide(const uint8_t *icc, size_t n, const char *space)
{
    if (!icc_is_for(icc, n, space)) return ICC_IGNORE;
    if (memcmp(space, "GRAY", 4) == 0) return ICC_IGNORE;
    if (memcmp(space, "RGB ", 4) == 0 && icc_is_srgb(icc, n)) return ICC_IGNORE;
    return ICC_CONVERT;
}

/* A copy of a decoder's profile bytes into out, which the caller frees. 0, or -1 with err. */
static int icc_copy(struct img_profile *out, const void *icc, size_t n, struct eng_error *err)
{
    if (!(out->data = malloc(n)))
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for a %zu-byte ICC profile", n);
    memcpy(out->data, icc, n);
    out->size = n;
    return 0;
}

/* Pillow's CMYK to RGB (Convert.c cmyk2rgb): R = (255 - K) - C * (255 - K) / 255, rounded as
 * its MULDIV255. Adobe files store the samples inverted. In place, 4 channels down to 3. */
static void cmyk_to_rgb(struct img *im, bool inverted)
{
    size_t count = (size_t)im->width * (size_t)im->height;
    uint8_t *d = im->data;
    const uint8_t *s = im->data;
    int flip = inverted ? 255 : 0;
    for (size_t i = 0; i < count; i++, s += 4, d += 3) {
        int c = s[0] ^ flip, m = s[1] ^ flip, y = s[2] ^ flip, k = s[3] ^ flip;
        int nk = 255 - k, t;
        t = c * nk + 128;
        d[0] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        t = m * nk + 128;
        d[1] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        t = y * nk + 128;
        d[2] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
    }
    im->channels = 3;
    im->stride = (size_t)im->width * 3;
    uint8_t *smaller = realloc(im->data, count * 3);
    if (smaller) im->data = smaller;
}

/* ------------------------------------------------------------------------------------------ */
/* Orientation, as Pillow's ImageOps.exif_transpose                                           */

static inline void copy_px(uint8_t *dst, const uint8_t *src, int c)
{
    switch (c) {
    case 1:
        dst[0] = src[0];
        break;
    case 3:
        dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
        break;
    default:
        memcpy(dst, src, 4);
        break;
    }
}

static void flip_rows(struct img *im)
{
    size_t bytes = (size_t)im->width * (size_t)im->channels;
    for (int y = 0; y < im->height / 2; y++) {
        uint8_t *a = img_row(im, y), *b = img_row(im, im->height - 1 - y);
        for (size_t i = 0; i < bytes; i++) {
            uint8_t t = a[i];
            a[i] = b[i];
            b[i] = t;
        }
    }
}

static void mirror_rows(struct img *im)
{
    int c = im->channels;
    for (int y = 0; y < im->height; y++) {
        uint8_t *row = img_row(im, y);
        for (int l = 0, r = im->width - 1; l < r; l++, r--) {
            uint8_t t[4];
            copy_px(t, row + (size_t)l * c, c);
            copy_px(row + (size_t)l * c, row + (size_t)r * c, c);
            copy_px(row + (size_t)r * c, t, c);
        }
    }
}

/* Applies EXIF orientation 2-8 (1 is a no-op). Flips work in place; the transposing ones need a
 * second buffer. On failure *im is left as it was. */
static int apply_orientation(struct img **imp, int orientation, struct eng_error *err)
{
    struct img *im = *imp;
    switch (orientation) {
    case 2: /* FLIP_LEFT_RIGHT */
        mirror_rows(im);
        return 0;
    case 3: /* ROTATE_180 */
        flip_rows(im);
        mirror_rows(im);
        return 0;
    case 4: /* FLIP_TOP_BOTTOM */
        flip_rows(im);
        return 0;
    case 5: /* TRANSPOSE */
    case 6: /* ROTATE_270: a quarter turn clockwise */
    case 7: /* TRANSVERSE */
    case 8: /* ROTATE_90: a quarter turn anticlockwise */
        break;
    default:
        return 0;
    }
    struct img *out = img_new(im->height, im->width, im->channels, err);
    if (!out) return -1;
    int c = im->channels, w = im->width, h = im->height;
    /* Output row oy reads one input column, top-down for 5 and 8, bottom-up for 6 and 7. */
    bool from_right = orientation == 7 || orientation == 8;
    bool bottom_up = orientation == 6 || orientation == 7;
    ptrdiff_t step = bottom_up ? -(ptrdiff_t)im->stride : (ptrdiff_t)im->stride;
    for (int oy = 0; oy < out->height; oy++) {
        int sx = from_right ? w - 1 - oy : oy;
        const uint8_t *src = img_row(im, bottom_up ? h - 1 : 0) + (size_t)sx * c;
        uint8_t *dst = img_row(out, oy);
        for (int ox = 0; ox < out->width; ox++, src += step, dst += c)
            copy_px(dst, src, c);
    }
    img_free(im);
    *imp = out;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* libvips                                                                                    */

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static atomic_int vips_state; /* 0 not started or failed, 1 running, 2 shut down */
static char vips_init_error[256];

/* libvips reports a failing region ("error in tile 0 x 3") and odd metadata as GLib warnings on
 * stderr; for uploads those are the client's problem and already reach it through err, and a
 * client sending corrupt files could otherwise flood the server's stderr. */
static void drop_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user)
{
}

static void start_vips(void)
{
    if (VIPS_INIT("augserve")) {
        char *msg = vips_error_buffer_copy();
        snprintf(vips_init_error, sizeof vips_init_error, "%s", msg ? msg : "unknown reason");
        g_free(msg);
        return;
    }
    /* Loaders flagged untrusted (ImageMagick, PDF, SVG, Matlab, FITS...) have a history of
     * exploitable bugs on hostile input: none may run, even if a buffer fooled the sniffer. */
    vips_block_untrusted_set(TRUE);
    /* Each upload is decoded once: caching operations only holds memory. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    /* Requests already run on many threads; one worker per pipeline avoids oversubscription. */
    vips_concurrency_set(1);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                      drop_log, NULL);
    atomic_store(&vips_state, 1);
}

int img_codec_init(struct eng_error *err)
{
    pthread_once(&vips_once, start_vips);
    switch (atomic_load(&vips_state)) {
    case 1:
        return 0;
    case 2:
        return eng_fail(err, ENG_INTERNAL, "libvips has been shut down");
    default:
        return eng_fail(err, ENG_INTERNAL, "libvips did not start: %s", vips_init_error);
    }
}

void img_codec_shutdown(void)
{
    int running = 1;
    if (atomic_compare_exchange_strong(&vips_state, &running, 2)) vips_shutdown();
}

/* libvips' error buffer is global to the process (a lock guards it, but it is not per thread):
 * vips_error_buffer_copy() takes and clears it in one step, so a message is never reported twice,
 * though under concurrent failures it may carry another thread's text too. */
static int vips_fail(struct eng_error *err, enum eng_code code, const char *what)
{
    char *msg = vips_error_buffer_copy();
    if (msg) {
        size_t len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            msg[--len] = '\0';
        for (char *s = msg; *s; s++)
            if (*s == '\n') *s = ' ';
    }
    eng_fail(err, code, "%s: %s", what, msg && *msg ? msg : "libvips gave no reason");
    g_free(msg);
    return -1;
}

/* Some loaders log errors while succeeding (libheif probes past the end: "bad seek"). The
 * buffer is bounded and never cleared by libvips, so left alone it would fill with stale text
 * and crowd out real reasons: drop it after every successful operation. */
static void vips_discard_errors(void)
{
    g_free(vips_error_buffer_copy());
}

static int sink_rows(VipsRegion *region, VipsRect *area, void *a)
{
    struct img *im = a;
    size_t bytes = (size_t)area->width * (size_t)im->channels;
    for (int y = area->top; y < VIPS_RECT_BOTTOM(area); y++)
        memcpy(img_row(im, y) + (size_t)area->left * im->channels,
               VIPS_REGION_ADDR(region, area->left, y), bytes);
    return 0;
}

static const char *icc_space_of(VipsImage *x)
{
    switch (vips_image_get_interpretation(x)) {
    case VIPS_INTERPRETATION_B_W:
    case VIPS_INTERPRETATION_GREY16:
        return "GRAY";
    case VIPS_INTERPRETATION_CMYK:
        return "CMYK";
    case VIPS_INTERPRETATION_LAB:
    case VIPS_INTERPRETATION_LABQ:
    case VIPS_INTERPRETATION_LABS:
        return "Lab ";
    default:
        return "RGB ";
    }
}

static int vips_load(enum kind kind, const uint8_t *p, size_t n, VipsImage **out)
{
    /* The loaders only read the buffer; their prototypes predate const. */
    void *buf = (void *)p;
    /* Sequential access streams the pixels once top to bottom; truncation fails the decode,
     * as in Pillow, while recoverable damage is tolerated. */
    switch (kind) {
    case K_JPEG:
        return vips_jpegload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_TRUNCATED, NULL);
    case K_PNG:
        return vips_pngload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                   VIPS_FAIL_ON_TRUNCATED, NULL);
    case K_WEBP:
        return vips_webpload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_TRUNCATED, "page", 0, "n", 1, NULL);
    case K_GIF:
        return vips_gifload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                   VIPS_FAIL_ON_TRUNCATED, "page", 0, "n", 1, NULL);
    case K_TIFF:
        return vips_tiffload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_TRUNCATED, "page", 0, "n", 1, NULL);
    default: /* HEIF, AVIF */
        return vips_heifload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_TRUNCATED, "page", 0, "n", 1, NULL);
    }
}

/* libvips' pixels as Pillow has them: 8-bit sRGB or greyscale (B_W), with alpha when there is one,
 * from 16-bit, Lab and such (16-bit CMYK through libvips' fallback profile). t holds the steps'
 * images (3 of them); *grey and *alpha say what came out. */
static int vips_to_8bit(const char *what, VipsImage *x, VipsImage **t, VipsImage **out, bool *grey,
                        bool *alpha, struct eng_error *err)
{
    *alpha = vips_image_hasalpha(x);
    *grey = x->Bands - (*alpha ? 1 : 0) == 1 && !*alpha;
    VipsInterpretation target = *grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
    if (vips_image_get_interpretation(x) != target || x->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_colourspace(x, &t[0], target, NULL)) return vips_fail(err, ENG_UNDECODABLE, what);
        x = t[0];
    }
    if (x->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(x, &t[1], NULL)) return vips_fail(err, ENG_UNDECODABLE, what);
        x = t[1];
    }
    int want = *grey ? 1 : *alpha ? 4 : 3;
    if (x->Bands > want) {
        if (vips_extract_band(x, &t[2], 0, "n", want, NULL))
            return vips_fail(err, ENG_UNDECODABLE, what);
        x = t[2];
    }
    if (x->Bands != want)
        return eng_fail(err, ENG_UNSUPPORTED, "%s image with %d bands is not supported", what,
                        x->Bands);
    *out = x;
    return 0;
}

/* The general path: any format libvips reads safely, and JPEG/PNG whose ICC profile
 * IMG_COLOR_SRGB converts. Loading reads only the header; pixels are decoded by the sink at the
 * end. */
static int decode_vips(enum kind kind, const uint8_t *p, size_t n, const struct limits *lim,
                       enum img_color color, struct img_info *info, struct decoded *out,
                       struct eng_error *err)
{
    if (img_codec_init(err)) return -1;
    const char *what = kind_labels[kind];
    if ((kind == K_HEIF || kind == K_AVIF) && !vips_type_find("VipsOperation", "heifload_buffer"))
        return eng_fail(err, ENG_UNSUPPORTED, "%s images are not supported by this build", what);

    VipsImage *scope = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(scope), 5);
    struct img *im = NULL;
    int rc = -1;
    if (vips_load(kind, p, n, &t[0])) {
        vips_fail(err, ENG_UNDECODABLE, what);
        goto done;
    }
    VipsImage *x = t[0];
    if (check_size(kind, (uint64_t)x->Xsize, (uint64_t)x->Ysize, lim, err)) goto done;
    info->orig_width = x->Xsize;
    info->orig_height = x->Ysize;
    info->frames = vips_image_get_n_pages(x);
    info->had_alpha = vips_image_hasalpha(x);
    /* libheif applies a HEIF's own rotation and mirroring (irot, imir) while decoding; an EXIF
     * orientation there is informative only, and honouring it would turn phone photos twice. */
    int orientation = kind == K_HEIF || kind == K_AVIF ? 1 : vips_image_get_orientation(x);

    const void *icc = NULL;
    size_t icc_len = 0;
    if (vips_image_get_typeof(x, VIPS_META_ICC_NAME) &&
        vips_image_get_blob(x, VIPS_META_ICC_NAME, &icc, &icc_len) != 0)
        icc = NULL, icc_len = 0;
    if (color == IMG_COLOR_SRGB && icc_decide(icc, icc_len, icc_space_of(x)) == ICC_CONVERT) {
        /* Relative colorimetric, libvips' default; 8-bit out. */
        if (vips_icc_transform(x, &t[1], "srgb", "embedded", TRUE, NULL)) {
            vips_fail(err, ENG_UNDECODABLE, what);
            goto done;
        }
        x = t[1];
    } else if (icc && icc_copy(&out->icc, icc, icc_len, err)) {
        goto done;
    }

    /* 8-bit CMYK left as it is stored becomes RGB by Pillow's formula, as in the JPEG path
     * (libvips has already undone Adobe's inversion); the rest through libvips. */
    bool cmyk = x->Bands == 4 && x->BandFmt == VIPS_FORMAT_UCHAR &&
                vips_image_get_interpretation(x) == VIPS_INTERPRETATION_CMYK;
    bool grey = false, alpha = false;
    if (!cmyk && vips_to_8bit(what, x, t + 2, &x, &grey, &alpha, err)) goto done;
    im = img_new(x->Xsize, x->Ysize, cmyk ? 4 : grey ? 1 : alpha ? 4 : 3, err);
    if (!im) goto done;
    if (vips_sink_disc(x, sink_rows, im)) {
        vips_fail(err, ENG_UNDECODABLE, what);
        goto done;
    }
    if (cmyk) cmyk_to_rgb(im, false);
    out->im = im;
    out->orientation = orientation;
    im = NULL;
    rc = 0;
    vips_discard_errors();
done:
    img_free(im);
    g_object_unref(scope);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* JPEG (TurboJPEG)                                                                           */

struct jpeg_meta {
    const uint8_t *exif; /* the last APP1 Exif payload, as Pillow keeps the last */
    size_t exif_len;
    bool adobe; /* an APP14 Adobe segment: CMYK samples are stored inverted */
    size_t sos; /* offset of the first SOS marker, 0 if none was reached */
    const uint8_t *icc_chunk[256];
    size_t icc_chunk_len[256];
    int icc_count; /* chunks the profile declares; 0 when there is none */
    bool icc_bad;  /* inconsistent chunk numbering: the profile is ignored */
};

/* Walks the marker segments up to the first scan, bounds-checked; malformed structure stops the
 * walk quietly, since TurboJPEG reports real damage with a better message. */
static void jpeg_scan(const uint8_t *p, size_t n, struct jpeg_meta *m)
{
    size_t pos = 2;
    while (pos + 4 <= n) {
        if (p[pos] != 0xFF) return;
        uint8_t marker = p[pos + 1];
        if (marker == 0xFF) { /* fill byte */
            pos++;
            continue;
        }
        if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
            pos += 2;
            continue;
        }
        if (marker == 0xDA) m->sos = pos;
        if (marker == 0xDA || marker == 0xD9) return;
        size_t len = be16(p + pos + 2);
        if (len < 2 || len > n - pos - 2) return;
        const uint8_t *seg = p + pos + 4;
        size_t seg_len = len - 2;
        if (marker == 0xE1 && seg_len >= 6 && memcmp(seg, "Exif\0\0", 6) == 0) {
            m->exif = seg + 6;
            m->exif_len = seg_len - 6;
        } else if (marker == 0xE2 && seg_len > 14 && memcmp(seg, "ICC_PROFILE\0", 12) == 0) {
            int seq = seg[12], count = seg[13];
            if (seq == 0 || count == 0 || seq > count || (m->icc_count && count != m->icc_count) ||
                m->icc_chunk[seq])
                m->icc_bad = true;
            else {
                m->icc_count = count;
                m->icc_chunk[seq] = seg + 14;
                m->icc_chunk_len[seq] = seg_len - 14;
            }
        } else if (marker == 0xEE && seg_len >= 5 && memcmp(seg, "Adobe", 5) == 0) {
            m->adobe = true;
        }
        pos += 2 + len;
    }
}

/* The ICC profile reassembled from its APP2 chunks (malloc'd), NULL when absent or broken. */
static uint8_t *jpeg_icc(const struct jpeg_meta *m, size_t *len)
{
    if (m->icc_bad || m->icc_count == 0) return NULL;
    size_t total = 0;
    for (int i = 1; i <= m->icc_count; i++) {
        if (!m->icc_chunk[i]) return NULL;
        total += m->icc_chunk_len[i];
    }
    if (total < 132) return NULL; /* shorter than an ICC header and tag count */
    /* calloc, not malloc: GCC cannot see that the chunks fill it all. */
    uint8_t *icc = calloc(1, total);
    if (!icc) return NULL;
    size_t at = 0;
    for (int i = 1; i <= m->icc_count; i++) {
        memcpy(icc + at, m->icc_chunk[i], m->icc_chunk_len[i]);
        at += m->icc_chunk_len[i];
    }
    *len = total;
    return icc;
}

/* Whether an EOI marker follows the first scan. Entropy-coded data cannot contain FF D9 (an FF
 * there is always stuffed as FF 00), and an EOI inside an EXIF thumbnail sits before the scan. */
static bool jpeg_has_eoi(const uint8_t *p, size_t n, size_t sos)
{
    if (sos == 0) return false;
    for (size_t i = sos; i + 1 < n; i++) {
        const uint8_t *ff = memchr(p + i, 0xFF, n - 1 - i);
        if (!ff) return false;
        i = (size_t)(ff - p);
        if (p[i + 1] == 0xD9) return true;
    }
    return false;
}

static int decode_jpeg(const uint8_t *p, size_t n, const struct limits *lim, enum img_color color,
                       struct img_info *info, struct decoded *out, struct eng_error *err)
{
    /* One handle per call: creating one costs about a microsecond, and it keeps threads and
     * error states apart without thread-local cleanup. */
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return eng_fail(err, ENG_NO_MEMORY, "cannot create a JPEG decoder: %s",
                        tjGetErrorStr2(NULL));
    /* Zeroed: TurboJPEG 2.1 returns success on a header with no frame and may leave them. */
    int rc = -1, w = 0, h = 0, subsamp = 0, space = 0;
    struct img *im = NULL;
    uint8_t *icc = NULL;
    struct jpeg_meta *m = calloc(1, sizeof *m);
    if (!m) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory reading JPEG markers");
        goto done;
    }
    if (tjDecompressHeader3(tj, p, n, &w, &h, &subsamp, &space)) {
        eng_fail(err, ENG_UNDECODABLE, "JPEG header: %s", tjGetErrorStr2(tj));
        goto done;
    }
    if (w < 1 || h < 1) {
        eng_fail(err, ENG_UNDECODABLE, "JPEG has no frame header in its %zu bytes", n);
        goto done;
    }
    if (check_size(K_JPEG, (uint64_t)w, (uint64_t)h, lim, err)) goto done;
    jpeg_scan(p, n, m);

    bool cmyk = space == TJCS_CMYK || space == TJCS_YCCK;
    size_t icc_len = 0;
    icc = jpeg_icc(m, &icc_len);
    const char *icc_space = cmyk ? "CMYK" : space == TJCS_GRAY ? "GRAY" : "RGB ";
    if (color == IMG_COLOR_SRGB && icc_decide(icc, icc_len, icc_space) == ICC_CONVERT) {
        /* Colour management is libvips' job; TurboJPEG has none. */
        rc = decode_vips(K_JPEG, p, n, lim, color, info, out, err);
        goto done;
    }

    int channels = space == TJCS_GRAY ? 1 : cmyk ? 4 : 3;
    int pf = space == TJCS_GRAY ? TJPF_GRAY : cmyk ? TJPF_CMYK : TJPF_RGB;
    im = img_new(w, h, channels, err);
    if (!im) goto done;
    /* LIMITSCANS: refuse progressive files with hundreds of scans, a CPU-exhaustion attack. */
    if (tjDecompress2(tj, p, n, im->data, w, (int)im->stride, h, pf,
                      TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS)) {
        /* Warnings (recoverable damage) are accepted, as Pillow does, except running out of
         * data: libjpeg pads a truncated file with grey, Pillow calls it truncated. */
        if (tjGetErrorCode(tj) != TJERR_WARNING) {
            eng_fail(err, ENG_UNDECODABLE, "JPEG data: %s", tjGetErrorStr2(tj));
            goto done;
        }
        if (!jpeg_has_eoi(p, n, m->sos)) {
            eng_fail(err, ENG_UNDECODABLE, "JPEG data is truncated (%zu bytes): %s", n,
                     tjGetErrorStr2(tj));
            goto done;
        }
    }
    if (cmyk) cmyk_to_rgb(im, m->adobe);

    info->orig_width = w;
    info->orig_height = h;
    info->had_alpha = 0;
    info->frames = 1;
    out->orientation = m->exif ? exif_orientation(m->exif, m->exif_len) : 1;
    out->im = im;
    out->icc = (struct img_profile){icc, icc_len};
    im = NULL;
    icc = NULL;
    rc = 0;
done:
    img_free(im);
    free(icc);
    free(m);
    tjDestroy(tj);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG (libspng)                                                                              */

static int png_fail(struct eng_error *err, int code, const char *doing)
{
    if (code == SPNG_EMEM) return eng_fail(err, ENG_NO_MEMORY, "out of memory %s PNG", doing);
    if (code == SPNG_ECHUNK_LIMITS)
        return eng_fail(err, ENG_TOO_LARGE, "PNG metadata is larger than %u bytes",
                        PNG_CHUNK_CACHE_LIMIT);
    return eng_fail(err, ENG_UNDECODABLE, "PNG: %s", spng_strerror(code));
}

/* 16-bit greyscale: libspng has no 8-bit greyscale output for it, so decode the samples and keep
 * each one's high byte, as libvips and Pillow's 16-bit RGB unpackers do. */
static int png_decode_grey16(spng_ctx *ctx, struct img *im, struct eng_error *err)
{
    size_t len;
    int e = spng_decoded_image_size(ctx, SPNG_FMT_PNG, &len);
    if (e) return png_fail(err, e, "sizing");
    size_t count = (size_t)im->width * (size_t)im->height;
    if (len != count * 2) return eng_fail(err, ENG_INTERNAL, "PNG: unexpected 16-bit size");
    uint16_t *tmp = malloc(len);
    if (!tmp) return eng_fail(err, ENG_NO_MEMORY, "out of memory decoding PNG");
    e = spng_decode_image(ctx, tmp, len, SPNG_FMT_PNG, 0); /* host byte order */
    if (!e)
        for (size_t i = 0; i < count; i++)
            im->data[i] = (uint8_t)(tmp[i] >> 8);
    free(tmp);
    return e ? png_fail(err, e, "decoding") : 0;
}

/* An APNG's frame count, from the acTL chunk that must precede the first IDAT; 1 for a still
 * image. Only the default image is decoded. */
static int png_frames(const uint8_t *p, size_t n)
{
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = be32(p + pos);
        if (len > n - pos - 12 || memcmp(p + pos + 4, "IDAT", 4) == 0) break;
        if (memcmp(p + pos + 4, "acTL", 4) == 0 && len >= 8) {
            uint32_t frames = be32(p + pos + 8);
            return frames >= 1 && frames <= INT_MAX ? (int)frames : 1;
        }
        pos += 12 + (size_t)len;
    }
    return 1;
}

static int decode_png(const uint8_t *p, size_t n, const struct limits *lim, enum img_color color,
                      struct img_info *info, struct decoded *out, struct eng_error *err)
{
    /* The signature is 8 bytes and IHDR must come first: its size is read here, before libspng
     * allocates anything, so a bomb is refused with the sizes in the message. */
    if (n < 33 || memcmp(p + 12, "IHDR", 4) != 0)
        return eng_fail(err, ENG_UNDECODABLE, "PNG: no IHDR chunk at the start (%zu bytes)", n);
    uint32_t w = be32(p + 16), h = be32(p + 20);
    if (check_size(K_PNG, w, h, lim, err)) return -1;

    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return eng_fail(err, ENG_NO_MEMORY, "out of memory creating a PNG decoder");
    int rc = -1, e;
    struct img *im = NULL;
    /* libspng's own limits as a second line; a bad CRC on a critical chunk is corruption, on an
     * ancillary chunk the chunk is dropped, as libpng does. */
    uint32_t side = lim->max_side < SIDE_CAP ? (uint32_t)lim->max_side : SIDE_CAP;
    if ((e = spng_set_image_limits(ctx, side, side)) ||
        (e = spng_set_chunk_limits(ctx, PNG_CHUNK_CACHE_LIMIT, PNG_CHUNK_CACHE_LIMIT)) ||
        (e = spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_DISCARD)) ||
        (e = spng_set_png_buffer(ctx, p, n))) {
        png_fail(err, e, "setting up");
        goto done;
    }
    struct spng_ihdr ihdr;
    if ((e = spng_get_ihdr(ctx, &ihdr))) {
        png_fail(err, e, "reading");
        goto done;
    }
    struct spng_trns trns;
    bool has_trns = spng_get_trns(ctx, &trns) == 0;
    bool grey_type = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ||
                     ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;

    /* An sRGB chunk says sRGB whatever an iCCP chunk says (PNG 1.2, 4.2.2.4). */
    uint8_t srgb_intent;
    struct spng_iccp iccp;
    bool has_icc = spng_get_srgb(ctx, &srgb_intent) != 0 && spng_get_iccp(ctx, &iccp) == 0;
    if (has_icc && color == IMG_COLOR_SRGB &&
        icc_decide((const uint8_t *)iccp.profile, iccp.profile_len, grey_type ? "GRAY" : "RGB ") ==
            ICC_CONVERT) {
        spng_ctx_free(ctx);
        return decode_vips(K_PNG, p, n, lim, color, info, out, err);
    }

    bool alpha = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ||
                 ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA || has_trns;
    int channels = alpha ? 4 : ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ? 1 : 3;
    im = img_new((int)w, (int)h, channels, err);
    if (!im) goto done;
    if (channels == 1 && ihdr.bit_depth == 16) {
        if (png_decode_grey16(ctx, im, err)) goto done;
    } else {
        int fmt = channels == 4 ? SPNG_FMT_RGBA8 : channels == 3 ? SPNG_FMT_RGB8 : SPNG_FMT_G8;
        size_t len;
        if ((e = spng_decoded_image_size(ctx, fmt, &len))) {
            png_fail(err, e, "sizing");
            goto done;
        }
        if (len != im->stride * (size_t)im->height) {
            eng_fail(err, ENG_INTERNAL, "PNG: libspng wants %zu bytes for %ux%u", len, w, h);
            goto done;
        }
        if ((e = spng_decode_image(ctx, im->data, len, fmt, SPNG_DECODE_TRNS))) {
            png_fail(err, e, "decoding");
            goto done;
        }
    }

    /* After the decode, so an eXIf chunk after the image data counts too (Pillow reads it when
     * exif_transpose loads the image). */
    struct spng_exif exif;
    out->orientation = spng_get_exif(ctx, &exif) == 0
                           ? exif_orientation((const uint8_t *)exif.data, exif.length)
                           : 1;
    if (has_icc && icc_copy(&out->icc, iccp.profile, iccp.profile_len, err)) goto done;
    info->orig_width = (int)w;
    info->orig_height = (int)h;
    info->had_alpha = alpha;
    info->frames = png_frames(p, n);
    out->im = im;
    im = NULL;
    rc = 0;
done:
    img_free(im);
    spng_ctx_free(ctx);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* BMP: decoded here, as libvips reads BMP only through ImageMagick. Covers what Pillow reads
 * except RLE: BI_RGB at 1, 4, 8, 16 (5-5-5), 24 and 32 bits (32 as BGRX: the fourth byte is
 * unused, as Pillow and Windows read it), BI_BITFIELDS and BI_ALPHABITFIELDS at 16 and 32. */

struct bitfield {
    uint32_t mask;
    int shift;
    uint32_t max;
};

static struct bitfield bitfield_of(uint32_t mask)
{
    struct bitfield f = {mask, 0, 0};
    if (!mask) return f;
    while (!(mask & 1)) {
        mask >>= 1;
        f.shift++;
    }
    f.max = mask;
    return f;
}

/* Scales to 8 bits as Pillow's unpackers do: v * 255 / max, truncated. */
static inline uint8_t bitfield_get(const struct bitfield *f, uint32_t px)
{
    if (!f->mask) return 0;
    uint32_t v = (px & f->mask) >> f->shift;
    return (uint8_t)((uint64_t)v * 255 / f->max);
}

static bool contiguous(uint32_t mask)
{
    if (!mask) return true;
    while (!(mask & 1))
        mask >>= 1;
    return (mask & (mask + 1)) == 0;
}

static int decode_bmp(const uint8_t *p, size_t n, const struct limits *lim, struct img_info *info,
                      struct decoded *out, struct eng_error *err)
{
    uint32_t pixels_at = le32(p + 10), hsize = le32(p + 14);
    if ((size_t)14 + hsize > n)
        return eng_fail(err, ENG_UNDECODABLE, "BMP header is truncated (%zu bytes)", n);
    const uint8_t *hd = p + 14;
    int64_t w, h;
    unsigned bpp, compression = 0;
    uint32_t colours_used = 0;
    if (hsize == 12) { /* OS/2 1.x core header */
        w = le16(hd + 4);
        h = (int16_t)le16(hd + 6);
        bpp = le16(hd + 10);
    } else {
        w = (int32_t)le32(hd + 4);
        h = (int32_t)le32(hd + 8);
        bpp = le16(hd + 14);
        compression = le32(hd + 16);
        colours_used = le32(hd + 32);
    }
    bool top_down = h < 0;
    if (top_down) h = -h;
    if (w <= 0 || h <= 0)
        return eng_fail(err, ENG_UNDECODABLE, "BMP header declares a %lldx%lld image", (long long)w,
                        (long long)(top_down ? -h : h));
    if (check_size(K_BMP, (uint64_t)w, (uint64_t)h, lim, err)) return -1;

    if (compression == 1 || compression == 2)
        return eng_fail(err, ENG_UNSUPPORTED, "RLE-compressed BMP is not supported");
    bool fields = compression == 3 || compression == 6;
    if (compression != 0 && !fields)
        return eng_fail(err, ENG_UNSUPPORTED, "BMP compression %u is not supported", compression);
    bool palette = bpp == 1 || bpp == 4 || bpp == 8;
    if (!palette && bpp != 16 && bpp != 24 && bpp != 32)
        return eng_fail(err, ENG_UNSUPPORTED, "BMP with %u bits per pixel is not supported", bpp);
    if (fields && bpp != 16 && bpp != 32)
        return eng_fail(err, ENG_UNSUPPORTED, "BMP bitfields at %u bits per pixel", bpp);

    uint32_t masks[4] = {0};
    if (fields) {
        /* Headers of 52 bytes and more hold the masks (alpha from 56); after a shorter header
         * they follow it, the alpha mask only for BI_ALPHABITFIELDS. */
        bool inside = hsize >= 52;
        int count = inside ? (hsize >= 56 ? 4 : 3) : (compression == 6 ? 4 : 3);
        size_t at = 14 + (inside ? 40 : (size_t)hsize);
        if (hsize == 12 || at + 4 * (size_t)count > n)
            return eng_fail(err, ENG_UNDECODABLE, "BMP bitfield masks are missing");
        for (int i = 0; i < count; i++)
            masks[i] = le32(p + at + 4 * (size_t)i);
        if (!masks[0] && !masks[1] && !masks[2] && !masks[3] && bpp == 32) {
            /* All-zero masks: Pillow reads these as BGRA. */
            masks[0] = 0xFF0000, masks[1] = 0xFF00, masks[2] = 0xFF, masks[3] = 0xFF000000;
        }
        for (int i = 0; i < 4; i++)
            if (!contiguous(masks[i]))
                return eng_fail(err, ENG_UNDECODABLE, "BMP bitfield mask %08x is not contiguous",
                                masks[i]);
        if (!masks[0] && !masks[1] && !masks[2])
            return eng_fail(err, ENG_UNDECODABLE, "BMP bitfield masks are all zero");
    } else if (bpp == 16) {
        masks[0] = 0x7C00, masks[1] = 0x03E0, masks[2] = 0x001F; /* 5-5-5, the BI_RGB layout */
    }

    uint8_t pal[256][3] = {{0}};
    int colours = 0;
    bool grey = false;
    if (palette) {
        /* More entries than the depth can index are never used: read only those. */
        colours = 1 << bpp;
        if (colours_used && colours_used < (uint32_t)colours) colours = (int)colours_used;
        size_t entry = hsize == 12 ? 3 : 4;
        size_t at = 14 + (size_t)hsize;
        if (at + entry * (size_t)colours > n)
            return eng_fail(err, ENG_UNDECODABLE, "BMP palette is truncated");
        /* Pillow reads a palette that is exactly the grey ramp (0 and 255 for two colours) as
         * greyscale; so does this, to give the same channel count. */
        grey = true;
        for (int i = 0; i < colours; i++) {
            const uint8_t *e = p + at + entry * (size_t)i;
            pal[i][0] = e[2], pal[i][1] = e[1], pal[i][2] = e[0];
            int ramp = colours == 2 ? (i ? 255 : 0) : i;
            if (e[0] != ramp || e[1] != ramp || e[2] != ramp) grey = false;
        }
    }

    size_t stride = (((size_t)w * bpp + 31) / 32) * 4;
    if (pixels_at > n || stride * (uint64_t)h > n - pixels_at)
        return eng_fail(err, ENG_UNDECODABLE, "BMP pixel data is truncated: %zu bytes, %llu needed",
                        n, (unsigned long long)(pixels_at + stride * (uint64_t)h));

    bool alpha = fields && masks[3] != 0;
    int channels = grey ? 1 : alpha ? 4 : 3;
    struct img *im = img_new((int)w, (int)h, channels, err);
    if (!im) return -1;
    struct bitfield f[4];
    for (int i = 0; i < 4; i++)
        f[i] = bitfield_of(masks[i]);
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *src = p + pixels_at + stride * (size_t)(top_down ? y : h - 1 - y);
        uint8_t *dst = img_row(im, (int)y);
        for (int64_t x = 0; x < w; x++) {
            if (palette) {
                unsigned per = 8 / bpp, shift = 8 - bpp * (1 + (unsigned)(x % per));
                unsigned idx = (src[x / per] >> shift) & ((1u << bpp) - 1);
                if (grey)
                    dst[x] = (uint8_t)(colours == 2 ? (idx ? 255 : 0) : idx);
                else if ((int)idx < colours)
                    copy_px(dst + 3 * x, pal[idx], 3);
                else /* outside the palette: Pillow's unused entries are black */
                    dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = 0;
            } else if (bpp == 24) {
                const uint8_t *s = src + 3 * x;
                dst[3 * x] = s[2], dst[3 * x + 1] = s[1], dst[3 * x + 2] = s[0];
            } else if (bpp == 32 && !fields) {
                const uint8_t *s = src + 4 * x;
                dst[3 * x] = s[2], dst[3 * x + 1] = s[1], dst[3 * x + 2] = s[0];
            } else {
                uint32_t px = bpp == 16 ? le16(src + 2 * x) : le32(src + 4 * x);
                uint8_t *d = dst + channels * x;
                for (int c = 0; c < channels; c++)
                    d[c] = bitfield_get(&f[c], px);
            }
        }
    }
    info->orig_width = (int)w;
    info->orig_height = (int)h;
    info->had_alpha = alpha;
    info->frames = 1;
    out->im = im;
    out->orientation = 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Decode                                                                                     */

void img_info_clear(struct img_info *info)
{
    if (!info) return;
    free(info->icc.data);
    info->icc = (struct img_profile){NULL, 0};
}

struct img *img_decode(const void *data, size_t size, const struct img_decode_options *opt,
                       struct img_info *info, struct eng_error *err)
{
    if (!data && size > 0) {
        eng_fail(err, ENG_INVALID, "no image data given for %zu bytes", size);
        return NULL;
    }
    const uint8_t *p = data;
    enum kind kind = sniff(p, size);
    if (kind == K_UNKNOWN) {
        fail_unknown(p, size, err);
        return NULL;
    }
    struct limits l = effective_limits(opt);
    enum img_color color = opt ? opt->color : IMG_COLOR_KEEP;
    struct img_info got = {0};
    struct decoded out = {NULL, 1, {NULL, 0}};
    int rc;
    switch (kind) {
    case K_JPEG:
        rc = decode_jpeg(p, size, &l, color, &got, &out, err);
        break;
    case K_PNG:
        rc = decode_png(p, size, &l, color, &got, &out, err);
        break;
    case K_BMP:
        rc = decode_bmp(p, size, &l, &got, &out, err);
        break;
    default:
        rc = decode_vips(kind, p, size, &l, color, &got, &out, err);
        break;
    }
    if (rc || apply_orientation(&out.im, out.orientation, err)) {
        if (!rc) img_free(out.im);
        free(out.icc.data);
        return NULL;
    }
    /* The profile goes on only where it describes the pixels as decoded, and never after a
     * conversion to sRGB: sRGB is what a file without one means. */
    if (!info || color != IMG_COLOR_KEEP ||
        !icc_is_for(out.icc.data, out.icc.size, icc_space_of_channels(out.im->channels))) {
        free(out.icc.data);
        out.icc = (struct img_profile){NULL, 0};
    }
    if (info) {
        got.icc = out.icc;
        *info = got;
        snprintf(info->format, sizeof info->format, "%s", kind_names[kind]);
        info->orientation = out.orientation;
        if (info->frames < 1) info->frames = 1;
    }
    return out.im;
}

/* ------------------------------------------------------------------------------------------ */
/* Encode                                                                                     */

/* JPEG holds an ICC profile in APP2 "ICC_PROFILE" markers: a 14-byte header (the name, then the
 * marker's number from 1 and the count) and up to 65519 bytes of the profile each, at most 255
 * of them (ICC.1, annex B.4). */
#define ICC_MARKER_HEADER 14
#define ICC_MARKER_DATA   65519
#define ICC_MARKER_MAX    255

/* Inserts icc's APP2 markers into the JPEG (*buf, *len), where libjpeg's jpeg_write_icc_profile
 * and Pillow put them: after the JFIF APP0 segment TurboJPEG writes first. *buf is replaced by
 * a new malloc'd buffer; on failure it is left as it was. */
static int jpeg_add_icc(unsigned char **buf, unsigned long *len, const struct img_profile *icc,
                        struct eng_error *err)
{
    size_t markers = (icc->size + ICC_MARKER_DATA - 1) / ICC_MARKER_DATA;
    if (markers > ICC_MARKER_MAX)
        return eng_fail(err, ENG_INVALID,
                        "the ICC profile (%zu bytes) is larger than JPEG can hold (%d bytes); ask "
                        "for PNG or WebP, or convert to sRGB",
                        icc->size, ICC_MARKER_MAX * ICC_MARKER_DATA);
    const unsigned char *in = *buf;
    size_t at = 2; /* after SOI */
    if (*len >= 6 && in[2] == 0xFF && in[3] == 0xE0 && 4u + be16(in + 4) <= *len)
        at = 4u + be16(in + 4);
    size_t extra = markers * (4 + ICC_MARKER_HEADER) + icc->size;
    unsigned char *grown = malloc(*len + extra);
    if (!grown)
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for a %lu-byte JPEG", *len + extra);
    memcpy(grown, in, at);
    unsigned char *q = grown + at;
    for (size_t i = 0; i < markers; i++) {
        size_t from = i * ICC_MARKER_DATA, chunk = icc->size - from;
        if (chunk > ICC_MARKER_DATA) chunk = ICC_MARKER_DATA;
        size_t seg = 2 + ICC_MARKER_HEADER + chunk;
        q[0] = 0xFF, q[1] = 0xE2, q[2] = (uint8_t)(seg >> 8), q[3] = (uint8_t)seg;
        memcpy(q + 4, "ICC_PROFILE", 12);
        q[16] = (uint8_t)(i + 1), q[17] = (uint8_t)markers;
        memcpy(q + 18, icc->data + from, chunk);
        q += 2 + seg;
    }
    memcpy(q, in + at, *len - at);
    free(*buf);
    *buf = grown;
    *len += extra;
    return 0;
}

/* Whether the profile goes into a file storing `channels` channels (alpha has no colour). */
static bool icc_goes_with(const struct img_profile *icc, int channels)
{
    return icc && icc_is_for(icc->data, icc->size, icc_space_of_channels(channels));
}

static int encode_jpeg(const struct img *im, int quality, const struct img_profile *icc, void **out,
                       size_t *out_size, struct eng_error *err)
{
    int samp = im->channels == 1 ? TJSAMP_GRAY : TJSAMP_420;
    /* RGBX: TurboJPEG skips the fourth byte, so alpha is dropped without a copy. */
    int pf = im->channels == 1 ? TJPF_GRAY : im->channels == 3 ? TJPF_RGB : TJPF_RGBX;
    unsigned long cap = tjBufSize(im->width, im->height, samp);
    if (cap == (unsigned long)-1)
        return eng_fail(err, ENG_INTERNAL, "JPEG: %s", tjGetErrorStr2(NULL));
    tjhandle tj = tjInitCompress();
    if (!tj)
        return eng_fail(err, ENG_NO_MEMORY, "cannot create a JPEG encoder: %s",
                        tjGetErrorStr2(NULL));
    /* Our own malloc'd worst-case buffer with NOREALLOC, so the caller can free() it. */
    unsigned char *buf = malloc(cap);
    if (!buf) {
        tjDestroy(tj);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for a %lu-byte JPEG", cap);
    }
    unsigned long len = cap;
    /* ACCURATEDCT: TurboJPEG would otherwise use the fast DCT; libjpeg (Pillow) uses the
     * accurate one. */
    if (tjCompress2(tj, im->data, im->width, (int)im->stride, im->height, pf, &buf, &len, samp,
                    quality, TJFLAG_NOREALLOC | TJFLAG_ACCURATEDCT)) {
        eng_fail(err, ENG_INTERNAL, "JPEG encoding: %s", tjGetErrorStr2(tj));
        free(buf);
        tjDestroy(tj);
        return -1;
    }
    tjDestroy(tj);
    if (icc_goes_with(icc, im->channels)) {
        if (jpeg_add_icc(&buf, &len, icc, err)) {
            free(buf);
            return -1;
        }
    } else {
        unsigned char *fitted = realloc(buf, len);
        if (fitted) buf = fitted;
    }
    *out = buf;
    *out_size = len;
    return 0;
}

static int encode_png(const struct img *im, const struct img_profile *icc, void **out,
                      size_t *out_size, struct eng_error *err)
{
    /* Explicit malloc-family allocators: the buffer libspng hands over must be free()-able. */
    struct spng_alloc alloc = {malloc, realloc, calloc, free};
    spng_ctx *ctx = spng_ctx_new2(&alloc, SPNG_CTX_ENCODER);
    if (!ctx) return eng_fail(err, ENG_NO_MEMORY, "out of memory creating a PNG encoder");
    uint8_t type = im->channels == 1   ? SPNG_COLOR_TYPE_GRAYSCALE
                   : im->channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                       : SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
    struct spng_ihdr ihdr = {.width = (uint32_t)im->width,
                             .height = (uint32_t)im->height,
                             .bit_depth = 8,
                             .color_type = type};
    size_t row_bytes = (size_t)im->width * (size_t)im->channels;
    /* Pillow's name for the profile; libspng compresses it. */
    struct spng_iccp iccp = {.profile_name = "ICC Profile"};
    int e = 0;
    if (icc_goes_with(icc, im->channels)) {
        iccp.profile_len = icc->size;
        iccp.profile = (char *)icc->data;
        e = spng_set_iccp(ctx, &iccp);
    }
    /* zlib level 6 as Pillow; libspng picks a filter per row (all five tried, min-sum). */
    if (e || (e = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1)) ||
        (e = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 6)) ||
        (e = spng_set_ihdr(ctx, &ihdr)) ||
        (e = spng_encode_image(ctx, NULL, 0, SPNG_FMT_PNG,
                               SPNG_ENCODE_PROGRESSIVE | SPNG_ENCODE_FINALIZE)))
        goto fail;
    /* Row by row, so a stride wider than the row needs no copy. */
    for (int y = 0; y < im->height; y++) {
        e = spng_encode_row(ctx, img_row(im, y), row_bytes);
        if (e == SPNG_EOI && y == im->height - 1) break;
        if (e) goto fail;
    }
    void *png = spng_get_png_buffer(ctx, out_size, &e);
    if (!png) goto fail;
    spng_ctx_free(ctx);
    *out = png;
    return 0;
fail:
    spng_ctx_free(ctx);
    if (e == SPNG_EMEM) return eng_fail(err, ENG_NO_MEMORY, "out of memory encoding PNG");
    return eng_fail(err, ENG_INTERNAL, "PNG encoding: %s", spng_strerror(e));
}

static int encode_webp(const struct img *im, int quality, const struct img_profile *icc, void **out,
                       size_t *out_size, struct eng_error *err)
{
    if (img_codec_init(err)) return -1;
    size_t row_bytes = (size_t)im->width * (size_t)im->channels;
    /* libvips wraps memory only when rows are packed. */
    struct img *packed = NULL;
    if (im->stride != row_bytes) {
        packed = img_clone(im, err);
        if (!packed) return -1;
    }
    const struct img *src = packed ? packed : im;
    VipsImage *scope = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(scope), 2);
    void *buf = NULL;
    size_t len = 0;
    int rc = -1;
    /* WebP has no greyscale: libwebp stores colour, so only an RGB profile fits, on colour. */
    bool with_icc = src->channels != 1 && icc_goes_with(icc, src->channels);
    t[0] = vips_image_new_from_memory(src->data, row_bytes * (size_t)src->height, src->width,
                                      src->height, src->channels, VIPS_FORMAT_UCHAR);
    if (!t[0] ||
        vips_copy(t[0], &t[1], "interpretation",
                  src->channels == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB, NULL)) {
        vips_fail(err, ENG_INTERNAL, "WebP encoding");
        goto done;
    }
    /* An image made from memory has no metadata but what is set here, so not stripping writes
     * the profile alone. */
    if (with_icc) vips_image_set_blob_copy(t[1], VIPS_META_ICC_NAME, icc->data, icc->size);
    if (vips_webpsave_buffer(t[1], &buf, &len, "Q", quality, "strip", !with_icc, NULL)) {
        vips_fail(err, ENG_INTERNAL, "WebP encoding");
        goto done;
    }
    *out = malloc(len);
    if (!*out) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory for a %zu-byte WebP", len);
        goto done;
    }
    memcpy(*out, buf, len);
    *out_size = len;
    rc = 0;
    vips_discard_errors();
done:
    g_free(buf);
    g_object_unref(scope);
    img_free(packed);
    return rc;
}

int img_encode(const struct img *im, enum img_format fmt, int quality,
               const struct img_profile *icc, void **out, size_t *out_size, struct eng_error *err)
{
    if (!out || !out_size) return eng_fail(err, ENG_INVALID, "no output buffer given");
    *out = NULL;
    *out_size = 0;
    if (!im || !im->data || im->width < 1 || im->height < 1 || im->width > SIDE_CAP ||
        im->height > SIDE_CAP || (im->channels != 1 && im->channels != 3 && im->channels != 4) ||
        im->stride < (size_t)im->width * (size_t)im->channels || im->stride > INT_MAX)
        return eng_fail(err, ENG_INVALID, "not an image that can be encoded");
    if ((fmt == IMG_JPEG || fmt == IMG_WEBP) && (quality < 1 || quality > 100))
        return eng_fail(err, ENG_INVALID, "quality %d is out of range; use 1 to 100", quality);
    switch (fmt) {
    case IMG_JPEG:
        return encode_jpeg(im, quality, icc, out, out_size, err);
    case IMG_PNG:
        return encode_png(im, icc, out, out_size, err);
    case IMG_WEBP:
        return encode_webp(im, quality, icc, out, out_size, err);
    }
    return eng_fail(err, ENG_INVALID, "unknown output format %d", (int)fmt);
}

const char *img_format_mime(enum img_format fmt)
{
    switch (fmt) {
    case IMG_JPEG:
        return "image/jpeg";
    case IMG_PNG:
        return "image/png";
    case IMG_WEBP:
        return "image/webp";
    }
    return NULL;
}

int img_format_from_name(const char *name, enum img_format *fmt)
{
    static const struct {
        const char *name;
        enum img_format fmt;
    } names[] = {{"jpeg", IMG_JPEG}, {"jpg", IMG_JPEG}, {"png", IMG_PNG}, {"webp", IMG_WEBP}};
    if (!name) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) {
            if (fmt) *fmt = names[i].fmt;
            return 0;
        }
    return -1;
}

const char *img_color_name(enum img_color color)
{
    return color == IMG_COLOR_SRGB ? "srgb" : "keep";
}

int img_color_from_name(const char *name, enum img_color *color)
{
    if (!name) return -1;
    if (strcmp(name, "keep") == 0)
        *color = IMG_COLOR_KEEP;
    else if (strcmp(name, "srgb") == 0)
        *color = IMG_COLOR_SRGB;
    else
        return -1;
    return 0;
}
