#include "policy/audio_pipeline.h"

#include <string.h>

#include "core/img.h"
#include "image/codec.h"
#include "policy/internal.h"

/* ---- Running a sample ----------------------------------------------------------------------- */

/* How the front end frames a clip, which the spectrogram ops' draws depend on. */
static struct audio_framing mel_framing(const struct audio_mel *mel)
{
    const struct audio_mel_config *c = audio_mel_config(mel);
    return (struct audio_framing){c->n_fft, c->hop_length, c->center, c->n_mels};
}

void audio_pipeline_sample_free(struct audio_pipeline_sample *s)
{
    trace_free(s->trace);
    audio_free(s->wave);
    audio_spec_free(s->features);
    memset(s, 0, sizeof *s);
}

struct trace *audio_pipeline_sample_trace(const struct audio_pipeline *pl, size_t length,
                                          uint32_t input, uint32_t sample, uint32_t view,
                                          struct eng_error *err)
{
    struct audio_framing framing = mel_framing(pl->mel);
    return policy_sample_audio(pl->policy, pl->seed, input, sample, view, length, &framing, err);
}

struct audio_pipeline_cost audio_pipeline_cost(const struct audio_pipeline *pl,
                                               const struct trace *t, size_t length, bool features)
{
    /* The waveform's length after the last waveform op; spectrogram ops come after them all. */
    for (size_t i = 0; i < t->count; i++)
        if (!t->items[i].is_mix && t->items[i].call.op->domain == OP_DOMAIN_WAVEFORM)
            length = (size_t)t->items[i].width;
    struct audio_pipeline_cost c = {.work = trace_cost(t).work + (double)length, .length = length};
    if (!features) return c;
    struct audio_framing framing = mel_framing(pl->mel);
    c.frames = audio_framing_frames(&framing, length);
    c.values = (double)c.frames * framing.bins;
    /* A frame costs an FFT of n_fft samples and a pass over the filterbank. */
    c.work += (double)c.frames * framing.n_fft + c.values;
    return c;
}

int audio_pipeline_run_trace(const struct audio_pipeline *pl, const struct audio *clip,
                             struct trace *trace, uint32_t input, uint32_t sample, bool features,
                             struct audio_pipeline_sample *out, struct eng_error *err)
{
    memset(out, 0, sizeof *out);
    out->trace = trace;
    if (out->trace)
        out->wave = trace_apply_wave(out->trace, clip, pl->bank, pl->seed, input, sample, err);
    if (out->wave && features) {
        struct audio_spec *plain = audio_mel_compute(pl->mel, out->wave, err);
        if (plain) out->features = trace_apply_spec(out->trace, plain, err);
        audio_spec_free(plain);
    }
    if (out->wave && (!features || out->features)) return 0;
    audio_pipeline_sample_free(out);
    return -1;
}

int audio_pipeline_run(const struct audio_pipeline *pl, const struct audio *clip, uint32_t input,
                       uint32_t sample, uint32_t view, bool features,
                       struct audio_pipeline_sample *out, struct eng_error *err)
{
    struct trace *t = audio_pipeline_sample_trace(pl, clip->length, input, sample, view, err);
    return audio_pipeline_run_trace(pl, clip, t, input, sample, features, out, err);
}

/* ---- Outputs -------------------------------------------------------------------------------- */

int audio_pipeline_encode(const struct audio_pipeline_sample *s, enum audio_output out, void **data,
                          size_t *size, struct eng_error *err)
{
    *data = NULL;
    if (audio_output_is_wave(out))
        return audio_encode(s->wave, out == AUDIO_OUTPUT_WAV ? AUDIO_WAV_PCM16 : AUDIO_FLAC, data,
                            size, err);
    if (!s->features) return eng_fail(err, ENG_INTERNAL, "the features were not computed");
    if (out == AUDIO_OUTPUT_FEATURES)
        return audio_npy_f32(s->features->data, s->features->frames, s->features->bins, data, size,
                             err);
    struct img *im = audio_output_viridis(s->features, err);
    int rc = im ? img_encode(im, IMG_PNG, 90, NULL, data, size, err) : -1;
    img_free(im);
    return rc;
}
