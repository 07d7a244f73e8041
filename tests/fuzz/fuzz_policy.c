/* libFuzzer target: policy documents (any bytes as text), then sampling and applying the parsed
 * policy as the server does: an image policy to a small image (policy_sample_view, trace_apply),
 * an audio policy to a short clip through audio_pipeline_run (policy_sample_audio,
 * trace_apply_wave, the log-mel front end, trace_apply_spec), with a noise clip and an impulse
 * response in the bank. Build with -DAUGSERVE_FUZZ=ON (clang); run: build-fuzz/fuzz_policy. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/codec.h"
#include "policy/audio_pipeline.h"
#include "policy/ops.h"
#include "policy/policy.h"

static void run_image(const struct policy *p)
{
    struct eng_error err = {0};
    struct img *in = img_new(9, 7, 3, NULL);
    if (!in) return;
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

/* A clip of length samples at rate: a chirp, so that every op sees a signal that varies. */
static struct audio *chirp(size_t length, int rate)
{
    struct eng_error err = {0};
    struct audio *a = audio_new(length, rate, &err);
    if (!a) return NULL;
    for (size_t i = 0; i < length; i++)
        a->samples[i] = 0.5f * (float)((i * i / 7) % 97) / 97.0f - 0.25f;
    return a;
}

static void run_audio(const struct policy *p)
{
    /* The front end, the clip and the bank are the same for every input: built once. */
    static struct audio_mel *mel;
    static struct audio *clip, *noise, *rir;
    if (!mel) {
        struct eng_error err = {0};
        const struct audio_mel_config cfg = audio_mel_defaults();
        mel = audio_mel_new(&cfg, &err);
        clip = chirp(3200, cfg.sample_rate);
        noise = chirp(800, cfg.sample_rate);
        rir = chirp(64, cfg.sample_rate);
        if (!mel || !clip || !noise || !rir) abort();
    }
    const struct audio *noises[] = {noise}, *rirs[] = {rir};
    const struct audio_bank bank = {noises, 1, rirs, 1};
    const struct audio_pipeline pl = {p, mel, &bank, 1};
    for (uint32_t view = 0; view < (uint32_t)policy_view_count(p); view++) {
        struct eng_error err = {0};
        struct audio_pipeline_sample s;
        if (audio_pipeline_run(&pl, clip, 0, 0, view, true, &s, &err) != 0) continue;
        json_decref(trace_to_json(s.trace));
        audio_pipeline_sample_free(&s);
    }
}

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
    if (policy_domain(p) & POLICY_IMAGE)
        run_image(p);
    else
        run_audio(p);
    policy_free(p);
    return 0;
}
