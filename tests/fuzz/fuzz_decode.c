/* libFuzzer target: image decoding of any bytes under tight limits, then encoding the result. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct eng_error err = {0};
    if (!ready) ready = img_codec_init(&err) == 0;
    struct img_limits limits = {1 << 20, 2048};
    struct img_info info;
    struct img *im = img_decode(data, size, &limits, &info, &err);
    if (!im) return 0;
    void *out = NULL;
    size_t out_size = 0;
    if (img_encode(im, IMG_PNG, 90, &out, &out_size, &err) == 0) free(out);
    img_free(im);
    return 0;
}
