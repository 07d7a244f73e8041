/* libFuzzer target: image decoding of any bytes under tight limits, then encoding the result with
 * the profile it kept; an input with a profile is decoded converted to sRGB too, which feeds the
 * profile to libvips' colour management. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image/codec.h"

static void encode(const struct img *im, enum img_format fmt, const struct img_profile *icc)
{
    struct eng_error err = {0};
    void *out = NULL;
    size_t out_size = 0;
    if (img_encode(im, fmt, 90, icc, &out, &out_size, &err) == 0) free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct eng_error err = {0};
    if (!ready) ready = img_codec_init(&err) == 0;
    struct img_decode_options opt = {1 << 20, 2048, IMG_COLOR_KEEP};
    struct img_info info;
    struct img *im = img_decode(data, size, &opt, &info, &err);
    if (!im) return 0;
    encode(im, IMG_PNG, &info.icc);
    if (info.icc.data) {
        encode(im, IMG_JPEG, &info.icc);
        opt.color = IMG_COLOR_SRGB;
        img_free(img_decode(data, size, &opt, NULL, &err));
    }
    img_free(im);
    img_info_clear(&info);
    return 0;
}
