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
 * EXIF orientation is applied as ImageOps.exif_transpose does. Unlike Pillow, an embedded ICC
 * profile that is not sRGB is converted to sRGB.
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

/* An image passes when width * height <= max_pixels and both sides <= max_dimension; a field of
 * 0 takes the default above. Whatever the limits, a side above 65535 is refused. */
struct img_limits {
    uint64_t max_pixels;
    int max_dimension;
};

/* What the upload was. orig_width/orig_height are the stored size, before orientation is applied
 * (the decoded image has them swapped for orientations 5-8). */
struct img_info {
    char format[8]; /* "jpeg", "png", "webp", "gif", "tiff", "bmp", "heif", "avif" */
    int orig_width, orig_height;
    int had_alpha;   /* the source had an alpha channel or transparency (output is RGBA) */
    int orientation; /* the EXIF orientation applied, 1-8 (1 when absent or invalid) */
    int frames;      /* frames or pages in the file; only the first is decoded */
};

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

/* Decodes data (size bytes). lim may be NULL (defaults); info may be NULL, and is filled only on
 * success. Returns a new image, or NULL with err set:
 *   ENG_UNSUPPORTED  empty input, unknown magic, or a format or variant this build cannot read;
 *   ENG_TOO_LARGE    the header declares a size past the limits (no pixel was decoded);
 *   ENG_UNDECODABLE  truncated or corrupt data, with the decoder's reason;
 *   ENG_NO_MEMORY, ENG_INVALID (data NULL), ENG_INTERNAL (libvips did not start). */
struct img *img_decode(const void *data, size_t size, const struct img_limits *lim,
                       struct img_info *info, struct eng_error *err);

/* Encodes im as fmt. quality (1-100) applies to JPEG and WebP and is ignored for PNG (zlib level
 * 6, adaptive filters). JPEG uses 4:2:0 chroma subsampling and the accurate DCT, as Pillow's
 * defaults do, and drops alpha; greyscale images are written as greyscale where the format has
 * it. On success *out is a malloc'd buffer the caller frees with free(), *out_size its length,
 * and 0 is returned; otherwise -1 with err set and *out NULL. */
int img_encode(const struct img *im, enum img_format fmt, int quality, void **out, size_t *out_size,
               struct eng_error *err);

/* "image/jpeg", "image/png", "image/webp"; NULL for a value outside the enum. */
const char *img_format_mime(enum img_format fmt);

/* "jpeg" or "jpg", "png", "webp", in any case. 0, or -1 when the name is none of these. */
int img_format_from_name(const char *name, enum img_format *fmt);

#endif
