#include "audio/spec.h"

#include <string.h>

struct audio_spec *spec_clone(const struct audio_spec *in, struct eng_error *err)
{
    struct audio_spec *out = audio_spec_new(in->frames, in->bins, err);
    size_t n = (size_t)in->frames * (size_t)in->bins;
    if (out && n) memcpy(out->data, in->data, n * sizeof *out->data);
    return out;
}

int spec_mask_param(int max_width, double p, int size)
{
    if (p == 1.0) return max_width;
    int share = (int)(size * p);
    return max_width < share ? max_width : share;
}

void spec_mask_draw(float u_width, float u_start, int mask_param, int size, int *start, int *width)
{
    *start = *width = 0;
    if (mask_param < 1) return;
    float value = u_width * (float)mask_param;
    float min_value = u_start * ((float)size - value);
    *start = (int)min_value;
    *width = (int)value;
}

static double mean_of(const struct audio_spec *s)
{
    size_t n = (size_t)s->frames * (size_t)s->bins;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += s->data[i];
    return n ? sum / (double)n : 0;
}

struct audio_spec *spec_mask(const struct audio_spec *in, enum spec_axis axis, int start, int width,
                             int use_mean, struct eng_error *err)
{
    struct audio_spec *out = spec_clone(in, err);
    if (!out) return NULL;
    int size = axis == SPEC_TIME ? in->frames : in->bins;
    long from = start < 0 ? 0 : start, to = (long)start + width;
    if (to > size) to = size;
    float value = use_mean ? (float)mean_of(in) : 0.0f;
    /* A time mask is whole frames (rows); a frequency mask the same bins of every frame. */
    int first_row = axis == SPEC_TIME ? (int)from : 0,
        end_row = axis == SPEC_TIME ? (int)to : in->frames;
    int first_bin = axis == SPEC_TIME ? 0 : (int)from,
        end_bin = axis == SPEC_TIME ? in->bins : (int)to;
    for (int f = first_row; f < end_row; f++)
        for (int b = first_bin; b < end_bin; b++)
            out->data[(size_t)f * in->bins + b] = value;
    return out;
}

/* Rows [from, from + count) of in resized to rows [to, to + out_count) of out, as
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False) along time (float32
 * source positions, clamped at 0; the bins keep their size, so they are copied). */
static void resize_rows(const struct audio_spec *in, int from, int count, struct audio_spec *out,
                        int to, int out_count)
{
    float scale = (float)count / (float)out_count;
    for (int r = 0; r < out_count; r++) {
        float src = scale * ((float)r + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int r0 = (int)src, r1 = r0 + (r0 < count - 1);
        float l1 = src - (float)r0, l0 = 1.0f - l1;
        const float *a = in->data + (size_t)(from + r0) * in->bins;
        const float *b = in->data + (size_t)(from + r1) * in->bins;
        float *dst = out->data + (size_t)(to + r) * out->bins;
        for (int k = 0; k < in->bins; k++)
            dst[k] = l0 * a[k] + l1 * b[k];
    }
}

struct audio_spec *spec_time_warp(const struct audio_spec *in, int centre, int warped,
                                  struct eng_error *err)
{
    int t = in->frames;
    if (centre <= 0 || centre >= t || warped <= 0 || warped >= t) return spec_clone(in, err);
    struct audio_spec *out = audio_spec_new(t, in->bins, err);
    if (!out) return NULL;
    resize_rows(in, 0, centre, out, 0, warped);
    resize_rows(in, centre, t - centre, out, warped, t - warped);
    return out;
}
