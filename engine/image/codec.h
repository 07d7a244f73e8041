/* The image area: codecs (this file), the pixel ops that run between a decode and an encode
 * (color.h, geometry.h, noise.h, and detection.h's box-aware kernels), the detection targets that
 * follow geometric ops (targets.h), and Simple Copy-Paste (copy_paste.h). The op registry that
 * names these ops for policies is policy/ops.h, one area up.
 *
 * Invariants of every image function: images are core/img.h buffers; an op reads its input and
 * returns a new image (the input is never modified), or NULL with the error set and nothing to
 * free; where a reference defines an op (torchvision on PIL images, the papers' code) the result
 * is bit-exact with it, and a fixture script under tests/parity proves it; any random choice is
 * made by the caller and passed in as arguments or as an rng stream; every function is
 * thread-safe and allocates only what it returns. Symbols are img_* (as the buffer's), except
 * targets_*, copy_paste_* and detection_*, which name their files.
 *
 * Image decoding and encoding for untrusted uploads.
 *
 * The format is sniffed from the data's magic bytes; a client's Content-Type is never consulted.
 * JPEG (TurboJPEG) and PNG (libspng) take a fast path that decodes straight into the img buffer;
 * BMP has a small decoder of its own (libvips reads BMP only through ImageMagick, which is not
 * safe on untrusted input); WebP, GIF, TIFF and HEIF/AVIF go through libvips with its untrusted
 * loaders blocked. Every path compares the header's dimensions with the limits before a single
 * pixel is decoded, so a small file that declares a huge image costs nothing.
 *
 * Decoded images follow Pillow's conventions so results match the Python reference: 1 channel
 * for greyscale, 3 for colour, 4 when the source has alpha (greyscale + alpha becomes RGBA);
 * EXIF orientation is applied as ImageOps.exif_transpose does; CMYK becomes RGB by Pillow's
 * convert("RGB") formula. An embedded ICC profile is, by default, left alone as Pillow (and so
 * torchvision, timm and the training pipelines built on it) leaves it: the pixel values are the
 * stored ones, and the profile comes back beside them for the encoder to write into the output,
 * so a viewer still shows the right colours. IMG_COLOR_SRGB converts to sRGB instead.
 *
 * All functions are thread-safe. */
#ifndef AUGSERVE_ENGINE_IMAGE_CODEC_H
#define AUGSERVE_ENGINE_IMAGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/img.h"

#define IMG_DEFAULT_MAX_PIXELS    40000000u
#define IMG_DEFAULT_MAX_DIMENSION 16384

/* What a decode does with an embedded ICC profile. */
enum img_color {
    /* The pixel values as stored, as Pillow reads them; the profile comes back in img_info when
     * it describes the decoded pixels (an RGB profile on colour, a greyscale one on greyscale;
     * never a CMYK file's, whose pixels became RGB). */
    IMG_COLOR_KEEP,
    /* Converted to sRGB from the profile by libvips' colour management (relative colorimetric);
     * no profile comes back. Greyscale stays greyscale, unconverted, as does a profile that is
     * sRGB already; without a profile the pixels are the same as IMG_COLOR_KEEP's. */
    IMG_COLOR_SRGB,
};

/* How to decode. An image passes when width * height <= max_pixels and both sides <=
 * max_dimension; a field of 0 takes the default above. Whatever the limits, a side above 65535 is
 * refused. Zeroed, the options are the defaults and IMG_COLOR_KEEP. */
struct img_decode_options {
    uint64_t max_pixels;
    int max_dimension;
    enum img_color color;
};

/* An ICC profile's bytes. */
struct img_profile {
    uint8_t *data; /* malloc'd; NULL: no profile */
    size_t size;
};

/* What the upload was. orig_width/orig_height are the stored size, before orientation is applied
 * (the decoded image has them swapped for orientations 5-8). */
struct img_info {
    char format[8]; /* "jpeg", "png", "webp", "gif", "tiff", "bmp", "heif", "avif" */
    int orig_width, orig_height;
    int had_alpha;   /* the source had an alpha channel or transparency (output is RGBA) */
    int orientation; /* the EXIF orientation applied, 1-8 (1 when absent or invalid) */
    int frames;      /* frames or pages in the file; only the first is decoded */
    /* The embedded ICC profile the pixels are in (IMG_COLOR_KEEP), byte for byte, or none. The
     * caller owns it: img_info_clear frees it. */
    struct img_profile icc;
};

/* Frees info's profile and empties it; info may be NULL. */
void img_info_clear(struct img_info *info);

enum img_format {
    IMG_JPEG,
    IMG_PNG,
    IMG_WEBP,
};

/* Starts libvips once per process (later calls return at once) with its untrusted loaders
 * blocked, the operation cache off, one worker per pipeline (the server's own threads provide the
 * parallelism) and its GLib warnings (log domain "VIPS") dropped, since they concern uploads and
 * reach the client through err. img_decode and img_encode call it themselves when they need
 * libvips; call it at startup to report a broken installation early. 0, or -1 with err set. */
int img_codec_init(struct eng_error *err);

/* Stops libvips at process exit, after every decoding thread has finished. libvips cannot be
 * started again afterwards. */
void img_codec_shutdown(void);

/* Decodes data (size bytes). opt may be NULL (defaults); info may be NULL, and is filled only on
 * success (the caller then frees its profile with img_info_clear). Returns a new image, or NULL
 * with err set:
 *   ENG_UNSUPPORTED  empty input, unknown magic, or a format or variant this build cannot read;
 *   ENG_TOO_LARGE    the header declares a size past the limits (no pixel was decoded);
 *   ENG_UNDECODABLE  truncated or corrupt data, with the decoder's reason;
 *   ENG_NO_MEMORY, ENG_INVALID (data NULL), ENG_INTERNAL (libvips did not start). */
struct img *img_decode(const void *data, size_t size, const struct img_decode_options *opt,
                       struct img_info *info, struct eng_error *err);

/* Encodes im as fmt. quality (1-100) applies to JPEG and WebP and is ignored for PNG (zlib level
 * 6, adaptive filters). JPEG uses 4:2:0 chroma subsampling and the accurate DCT, as Pillow's
 * defaults do, and drops alpha; greyscale images are written as greyscale where the format has
 * it. icc (may be NULL or empty) is written as the file's ICC profile, as Pillow writes one (JPEG:
 * APP2 markers after the JFIF header; PNG: an iCCP chunk; WebP: an ICCP chunk), when it fits what
 * the file stores: a greyscale profile on a greyscale JPEG or PNG, an RGB one on colour; another
 * is left out. ENG_INVALID for a profile past what JPEG's markers hold (16707345 bytes). On
 * success *out is a malloc'd buffer the caller frees with free(), *out_size its length, and 0 is
 * returned; otherwise -1 with err set and *out NULL. */
int img_encode(const struct img *im, enum img_format fmt, int quality,
               const struct img_profile *icc, void **out, size_t *out_size, struct eng_error *err);

/* "image/jpeg", "image/png", "image/webp"; NULL for a value outside the enum. */
const char *img_format_mime(enum img_format fmt);

/* "jpeg" or "jpg", "png", "webp", in any case. 0, or -1 when the name is none of these. */
int img_format_from_name(const char *name, enum img_format *fmt);

/* "keep" or "srgb": what the API, config.json and the CLI call the settings. */
const char *img_color_name(enum img_color color);

/* "keep" or "srgb", exactly. 0, or -1 when the name is neither. */
int img_color_from_name(const char *name, enum img_color *color);

#endif
