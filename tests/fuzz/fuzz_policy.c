/* libFuzzer target: policy documents (any bytes as text), then sampling and applying the parsed
 * policy to a small image. Build with -DAUGSERVE_FUZZ=ON (clang); run: build-fuzz/fuzz_policy. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    free(text);
    if (!p) return 0;
    struct img *in = img_new(9, 7, 3, NULL);
    if (in) {
        for (size_t i = 0; i < (size_t)in->height * in->stride; i++)
            in->data[i] = (uint8_t)(i * 7);
        for (uint32_t view = 0; view < (uint32_t)policy_view_count(p); view++) {
            struct trace *t = policy_sample_view(p, 1, 0, 0, view, in->width, in->height, &err);
            struct img *out = t ? trace_apply(t, in, 1, 0, 0, &err) : NULL;
            json_t *j = t ? trace_to_json(t) : NULL;
            json_decref(j);
            img_free(out);
            trace_free(t);
        }
        img_free(in);
    }
    policy_free(p);
    return 0;
}
