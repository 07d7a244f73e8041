/* libFuzzer target: audio uploads (any bytes) through audio_decode, as the audio handlers call it,
 * with a short max_seconds so that a header declaring a long clip is refused before decoding. */
#include <stddef.h>
#include <stdint.h>

#include "audio/audio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct eng_error err = {0};
    const struct audio_decode_options opt = {AUDIO_DEFAULT_RATE, 5.0};
    struct audio_info info;
    audio_free(audio_decode(data, size, &opt, &info, &err));
    return 0;
}
