/* The op registry: image ops, then audio ops (waveform, spectrogram). Argument ranges bound what a
 * policy may ask for; image level ranges are the ones torchvision's RandAugment and AutoAugment
 * use, so {"level": {"bin": m, "bins": 31}} is exactly RandAugment's magnitude m. */
#include "policy/ops.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/spec.h"
#include "audio/wave.h"
#include "image/color.h"
#include "image/detection.h"
#include "image/geometry.h"
#include "image/noise.h"
#include "image/targets.h"

static const char *const pad_modes[] = {"constant", "edge", "reflect", "symmetric", NULL};

#define NO_ARGS NULL, 0
#define ARGS(a) a, (int)(sizeof a / sizeof a[0])
#define NO_LEVEL                                                                                   \
    {                                                                                              \
        0, LEVEL_NONE, SCALE_ABSOLUTE, 0, 0, 0                                                     \
    }
#define AUDIO_ARGS(a) .args = a, .arg_count = (int)(sizeof a / sizeof a[0])

static enum img_interp interp_of(const struct op_call *c)
{
    return c->interpolation ? IMG_BILINEAR : IMG_NEAREST;
}

/* ---- Point ops ------------------------------------------------------------------------------ */

static struct img *apply_identity(const struct img *in, const struct op_call *c, struct rng *noise,
                                  struct eng_error *err)
{
    return img_clone(in, err);
}

static struct img *apply_autocontrast(const struct img *in, const struct op_call *c,
                                      struct rng *noise, struct eng_error *err)
{
    return img_autocontrast(in, err);
}

static struct img *apply_equalize(const struct img *in, const struct op_call *c, struct rng *noise,
                                  struct eng_error *err)
{
    return img_equalize(in, err);
}

static struct img *apply_invert(const struct img *in, const struct op_call *c, struct rng *noise,
                                struct eng_error *err)
{
    return img_invert(in, err);
}

static struct img *apply_grayscale(const struct img *in, const struct op_call *c, struct rng *noise,
                                   struct eng_error *err)
{
    return img_grayscale(in, 1, err);
}

static struct img *apply_posterize(const struct img *in, const struct op_call *c, struct rng *noise,
                                   struct eng_error *err)
{
    return img_posterize(in, (int)c->args[0], err);
}

static struct img *apply_solarize(const struct img *in, const struct op_call *c, struct rng *noise,
                                  struct eng_error *err)
{
    return img_solarize(in, c->args[0], err);
}

static struct img *apply_solarize_add(const struct img *in, const struct op_call *c,
                                      struct rng *noise, struct eng_error *err)
{
    return img_solarize_add(in, (int)c->args[0], (int)c->args[1], err);
}

static struct img *apply_brightness(const struct img *in, const struct op_call *c,
                                    struct rng *noise, struct eng_error *err)
{
    return img_brightness(in, c->args[0], err);
}

static struct img *apply_color(const struct img *in, const struct op_call *c, struct rng *noise,
                               struct eng_error *err)
{
    return img_color(in, c->args[0], err);
}

static struct img *apply_contrast(const struct img *in, const struct op_call *c, struct rng *noise,
                                  struct eng_error *err)
{
    return img_contrast(in, c->args[0], err);
}

static struct img *apply_sharpness(const struct img *in, const struct op_call *c, struct rng *noise,
                                   struct eng_error *err)
{
    return img_sharpness(in, c->args[0], err);
}

/* ---- Geometric ops -------------------------------------------------------------------------- */

static struct img *apply_rotate(const struct img *in, const struct op_call *c, struct rng *noise,
                                struct eng_error *err)
{
    return img_rotate(in, c->args[0], interp_of(c), c->fill, c->fill_given, err);
}

static struct img *apply_shear_x(const struct img *in, const struct op_call *c, struct rng *noise,
                                 struct eng_error *err)
{
    return img_shear_x(in, c->args[0], interp_of(c), c->fill, c->fill_given, err);
}

static struct img *apply_shear_y(const struct img *in, const struct op_call *c, struct rng *noise,
                                 struct eng_error *err)
{
    return img_shear_y(in, c->args[0], interp_of(c), c->fill, c->fill_given, err);
}

static struct img *apply_translate_x(const struct img *in, const struct op_call *c,
                                     struct rng *noise, struct eng_error *err)
{
    return img_translate_x(in, c->args[0], interp_of(c), c->fill, c->fill_given, err);
}

static struct img *apply_translate_y(const struct img *in, const struct op_call *c,
                                     struct rng *noise, struct eng_error *err)
{
    return img_translate_y(in, c->args[0], interp_of(c), c->fill, c->fill_given, err);
}

/* A fractional shift, as timm's TranslateXRel / TranslateYRel make with PIL's affine transform. */
static struct img *apply_shift(const struct img *in, const struct op_call *c, double dx, double dy,
                               struct eng_error *err)
{
    return img_affine(in, 0, dx, dy, 1, 0, 0, false, 0, 0, interp_of(c), c->fill, c->fill_given,
                      err);
}

static struct img *apply_translate_x_rel(const struct img *in, const struct op_call *c,
                                         struct rng *noise, struct eng_error *err)
{
    return apply_shift(in, c, c->args[0], 0, err);
}

static struct img *apply_translate_y_rel(const struct img *in, const struct op_call *c,
                                         struct rng *noise, struct eng_error *err)
{
    return apply_shift(in, c, 0, c->args[0], err);
}

static struct img *apply_flip_lr(const struct img *in, const struct op_call *c, struct rng *noise,
                                 struct eng_error *err)
{
    return img_flip_lr(in, err);
}

static struct img *apply_flip_ud(const struct img *in, const struct op_call *c, struct rng *noise,
                                 struct eng_error *err)
{
    return img_flip_ud(in, err);
}

static struct img *apply_center_crop(const struct img *in, const struct op_call *c,
                                     struct rng *noise, struct eng_error *err)
{
    return img_center_crop(in, (int)c->args[0], (int)c->args[1], err);
}

static struct img *apply_resize(const struct img *in, const struct op_call *c, struct rng *noise,
                                struct eng_error *err)
{
    return img_resize(in, (int)c->args[0], (int)c->args[1], interp_of(c), err);
}

static struct img *apply_pad(const struct img *in, const struct op_call *c, struct rng *noise,
                             struct eng_error *err)
{
    return img_pad(in, (int)c->args[0], (int)c->args[1], (int)c->args[2], (int)c->args[3],
                   (enum img_pad_mode)(int)c->args[4], c->fill, c->fill_given, err);
}

/* ---- Random crops: the box is drawn at sampling time, as torchvision's get_params ---------- */

/* Python's round(): half to even (the default rounding mode). */
static int round_half_even(double v)
{
    return (int)nearbyint(v);
}

/* RandomResizedCrop args: 0 height, 1 width (output), 2-3 scale, 4-5 ratio; drawn: 6 top, 7 left,
 * 8 crop height, 9 crop width. */
static int draw_resized_crop(struct op_call *c, struct rng *rng, int width, int height,
                             struct eng_error *err)
{
    double *a = c->args;
    if (a[2] > a[3] || a[4] > a[5])
        return eng_fail(err, ENG_INVALID, "RandomResizedCrop: scale and ratio must be [min, max]");
    double area = (double)width * height, log_lo = log(a[4]), log_hi = log(a[5]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (a[2] + (a[3] - a[2]) * rng_uniform(rng));
        double aspect = exp(log_lo + (log_hi - log_lo) * rng_uniform(rng));
        int w = round_half_even(sqrt(target * aspect)), h = round_half_even(sqrt(target / aspect));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            a[6] = rng_below(rng, (uint32_t)(height - h + 1));
            a[7] = rng_below(rng, (uint32_t)(width - w + 1));
            a[8] = h;
            a[9] = w;
            return 0;
        }
    }
    /* Ten misses: the centre crop with the nearest allowed ratio. */
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < a[4])
        h = round_half_even(w / a[4]);
    else if (in_ratio > a[5])
        w = round_half_even(h * a[5]);
    a[6] = (height - h) / 2;
    a[7] = (width - w) / 2;
    a[8] = h;
    a[9] = w;
    return 0;
}

static void size_from_args(const struct op_call *c, int *width, int *height)
{
    *height = (int)c->args[0];
    *width = (int)c->args[1];
}

static void padded_size(const struct op_call *c, int *width, int *height)
{
    *width += (int)c->args[0] + (int)c->args[2];
    *height += (int)c->args[1] + (int)c->args[3];
}

static struct img *apply_resized_crop(const struct img *in, const struct op_call *c,
                                      struct rng *noise, struct eng_error *err)
{
    const double *a = c->args;
    return img_resized_crop(in, (int)a[6], (int)a[7], (int)a[8], (int)a[9], (int)a[0], (int)a[1],
                            interp_of(c), err);
}

/* RandomCrop args: 0 height, 1 width (0: the input's), 2 padding, 3 padding_fraction, 4 mode;
 * drawn: 5 pad (the padding applied), 6 top, 7 left, in the padded image. */
static int draw_random_crop(struct op_call *c, struct rng *rng, int width, int height,
                            struct eng_error *err)
{
    double *a = c->args;
    int pad = (int)a[2] + (int)(a[3] * (width < height ? width : height));
    int h = a[0] > 0 ? (int)a[0] : height, w = a[1] > 0 ? (int)a[1] : width;
    if (h > height + 2 * pad || w > width + 2 * pad)
        return eng_fail(err, ENG_INVALID, "RandomCrop: %dx%d is larger than the padded %dx%d image",
                        w, h, width + 2 * pad, height + 2 * pad);
    a[0] = h;
    a[1] = w;
    a[5] = pad;
    a[6] = rng_below(rng, (uint32_t)(height + 2 * pad - h + 1));
    a[7] = rng_below(rng, (uint32_t)(width + 2 * pad - w + 1));
    return 0;
}

static struct img *apply_random_crop(const struct img *in, const struct op_call *c,
                                     struct rng *noise, struct eng_error *err)
{
    const double *a = c->args;
    int pad = (int)a[5];
    struct img *padded = pad > 0 ? img_pad(in, pad, pad, pad, pad, (enum img_pad_mode)(int)a[4],
                                           c->fill, c->fill_given, err)
                                 : NULL;
    if (pad > 0 && !padded) return NULL;
    struct img *out =
        img_crop(padded ? padded : in, (int)a[6], (int)a[7], (int)a[0], (int)a[1], err);
    img_free(padded);
    return out;
}

/* ---- Erasing and noise: boxes, centres, frequencies and signs are drawn at sampling -------- */

static const uint8_t no_fill[4] = {0, 0, 0, 0};

/* The side of a square: size pixels, or a share of the shorter image side when size is 0. */
static int square_side(double size, double fraction, int width, int height)
{
    return size > 0 ? (int)size : (int)(fraction * (width < height ? width : height));
}

/* Cutout and PatchGaussian: a uniformly random centre, as the references' randint(h), randint(w).
 * args[first] and args[first + 1] receive cx, cy; args[first + 2] the side. */
static void draw_centre(double *a, int first, struct rng *rng, int width, int height)
{
    a[first] = rng_below(rng, (uint32_t)width);
    a[first + 1] = rng_below(rng, (uint32_t)height);
    a[first + 2] = square_side(a[0], a[1], width, height);
}

/* Cutout args: 0 size, 1 size_fraction; drawn 2 cx, 3 cy, 4 side. */
static int draw_cutout(struct op_call *c, struct rng *rng, int width, int height,
                       struct eng_error *err)
{
    draw_centre(c->args, 2, rng, width, height);
    return 0;
}

static struct img *apply_cutout(const struct img *in, const struct op_call *c, struct rng *noise,
                                struct eng_error *err)
{
    return img_cutout(in, (int)c->args[2], (int)c->args[3], (int)c->args[4],
                      c->fill_given ? c->fill : no_fill, err);
}

/* PatchGaussian args: 0 size, 1 size_fraction, 2 sigma; drawn 3 cx, 4 cy, 5 side. */
static int draw_patch(struct op_call *c, struct rng *rng, int width, int height,
                      struct eng_error *err)
{
    draw_centre(c->args, 3, rng, width, height);
    return 0;
}

static struct img *apply_patch_gaussian(const struct img *in, const struct op_call *c,
                                        struct rng *noise, struct eng_error *err)
{
    return img_patch_gaussian(in, (int)c->args[3], (int)c->args[4], (int)c->args[5], c->args[2],
                              noise, err);
}

static struct img *apply_gaussian_noise(const struct img *in, const struct op_call *c,
                                        struct rng *noise, struct eng_error *err)
{
    return img_gaussian_noise(in, c->args[0], noise, err);
}

/* RandomErasing args: 0-1 scale, 2-3 ratio, 4 value, 5 mode; drawn 6 top, 7 left, 8 height,
 * 9 width (0 when ten attempts missed: the image stays as it is, as in torchvision). */
static int draw_erasing(struct op_call *c, struct rng *rng, int width, int height,
                        struct eng_error *err)
{
    double *a = c->args;
    if (a[0] > a[1] || a[2] > a[3])
        return eng_fail(err, ENG_INVALID, "RandomErasing: scale and ratio must be [min, max]");
    double area = (double)width * height, log_lo = log(a[2]), log_hi = log(a[3]);
    a[6] = a[7] = a[8] = a[9] = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (a[0] + (a[1] - a[0]) * rng_uniform(rng));
        double aspect = exp(log_lo + (log_hi - log_lo) * rng_uniform(rng));
        int h = round_half_even(sqrt(target * aspect)), w = round_half_even(sqrt(target / aspect));
        if (!(h < height && w < width)) continue;
        a[6] = rng_below(rng, (uint32_t)(height - h + 1));
        a[7] = rng_below(rng, (uint32_t)(width - w + 1));
        a[8] = h;
        a[9] = w;
        break;
    }
    return 0;
}

static struct img *apply_erasing(const struct img *in, const struct op_call *c, struct rng *noise,
                                 struct eng_error *err)
{
    const double *a = c->args;
    uint8_t value[4];
    memset(value, (int)a[4], sizeof value);
    return img_erase(in, (int)a[6], (int)a[7], (int)a[8], (int)a[9], value, (int)a[5] == 1, noise,
                     err);
}

/* FourierNoise args: 0 i, 1 j (-1: drawn with probability proportional to 1 / |k|), 2 eps;
 * drawn 3-5 a sign per channel. */
static int draw_fourier(struct op_call *c, struct rng *rng, int width, int height,
                        struct eng_error *err)
{
    double *a = c->args;
    if ((a[0] < 0) != (a[1] < 0))
        return eng_fail(err, ENG_INVALID, "FourierNoise: give both i and j, or neither");
    if (a[0] < 0) {
        if (width * height < 2)
            return eng_fail(err, ENG_INVALID, "FourierNoise: a 1x1 image has no frequency but 0");
        /* |k| over the centred spectrum, DC left out. */
        double total = 0;
        for (int i = 0; i < height; i++)
            for (int j = 0; j < width; j++) {
                int ki = i <= height / 2 ? i : height - i, kj = j <= width / 2 ? j : width - j;
                if (i || j) total += 1.0 / sqrt((double)ki * ki + (double)kj * kj);
            }
        double u = rng_uniform(rng) * total, cumulative = 0;
        a[0] = height - 1;
        a[1] = width - 1;
        for (int i = 0; i < height && cumulative <= u; i++)
            for (int j = 0; j < width; j++) {
                int ki = i <= height / 2 ? i : height - i, kj = j <= width / 2 ? j : width - j;
                if (!(i || j)) continue;
                cumulative += 1.0 / sqrt((double)ki * ki + (double)kj * kj);
                if (cumulative > u) {
                    a[0] = i;
                    a[1] = j;
                    break;
                }
            }
    }
    for (int ch = 0; ch < 3; ch++)
        a[3 + ch] = rng_below(rng, 2) ? 1 : -1;
    return 0;
}

static struct img *apply_fourier(const struct img *in, const struct op_call *c, struct rng *noise,
                                 struct eng_error *err)
{
    const int sign[3] = {(int)c->args[3], (int)c->args[4], (int)c->args[5]};
    return img_fourier_noise(in, (int)c->args[0], (int)c->args[1], c->args[2], sign, err);
}

/* GaussianBlur args: 0 sigma, 1 kernel_size (0: 2 ceil(3 sigma) + 1, cut to fit the image). */
static struct img *apply_blur(const struct img *in, const struct op_call *c, struct rng *noise,
                              struct eng_error *err)
{
    double sigma = c->args[0];
    int size = (int)c->args[1];
    if (size == 0) {
        size = 2 * (int)ceil(3 * sigma) + 1;
        int shorter = in->width < in->height ? in->width : in->height;
        /* torchvision needs size / 2 below both sides. */
        if (size / 2 >= shorter) size = 2 * (shorter - 1) + 1;
    }
    if (sigma <= 0) return img_clone(in, err);
    return img_gaussian_blur(in, size, sigma, sigma, err);
}

/* ---- Audio ops: waveforms, then spectrograms (ops_audio.h) ---------------------------------- */

static const char *const colours[] = {"white", "pink", "brown", NULL};
static const char *const shift_modes[] = {"roll", "zero", NULL};
static const char *const volume_modes[] = {"peak", "rms", NULL};
static const char *const mask_values[] = {"zero", "mean", NULL};

static struct audio *apply_gain(const struct audio *in, const struct op_call *c,
                                const struct audio_bank *bank, struct rng *noise,
                                struct eng_error *err)
{
    return wave_gain(in, c->args[0], err);
}

/* Noise args: 0 snr_db, 1 colour. */
static struct audio *apply_noise(const struct audio *in, const struct op_call *c,
                                 const struct audio_bank *bank, struct rng *noise,
                                 struct eng_error *err)
{
    return wave_add_noise(in, c->args[0], (enum wave_colour)(int)c->args[1], noise, err);
}

/* One of the bank's clips by index, or NULL with err naming the op and how many there are. */
static const struct audio *bank_clip(const char *op, const char *what,
                                     const struct audio *const *clips, size_t count, int index,
                                     struct eng_error *err)
{
    if (index >= 0 && (size_t)index < count) return clips[index];
    eng_fail(err, ENG_INVALID, "%s: %s %d does not exist; the request gave %zu", op, what, index,
             count);
    return NULL;
}

/* Puts the op and the clip's index in front of a kernel's error about one of the bank's clips. */
static void name_clip(struct eng_error *err, const char *op, const char *what, int index)
{
    if (!err) return;
    char message[sizeof err->message];
    memcpy(message, err->message, sizeof message);
    eng_fail(err, err->code, "%s: %s %d: %s", op, what, index, message);
}

/* NoiseClip args: 0 clip (index into the bank's noises), 1 snr_db; drawn 2 offset, the share of
 * the clip it starts at. */
static int draw_clip_offset(struct op_call *c, struct rng *rng, int width, int height,
                            struct eng_error *err)
{
    c->args[2] = rng_uniform(rng);
    return 0;
}

static struct audio *apply_noise_clip(const struct audio *in, const struct op_call *c,
                                      const struct audio_bank *bank, struct rng *noise,
                                      struct eng_error *err)
{
    int index = (int)c->args[0];
    const struct audio *clip =
        bank_clip("NoiseClip", "noise clip", bank->noises, bank->noise_count, index, err);
    struct audio *out = clip ? wave_add_clip(in, clip, c->args[2], c->args[1], err) : NULL;
    if (clip && !out) name_clip(err, "NoiseClip", "noise clip", index);
    return out;
}

static struct audio *apply_speed(const struct audio *in, const struct op_call *c,
                                 const struct audio_bank *bank, struct rng *noise,
                                 struct eng_error *err)
{
    return wave_speed(in, c->args[0], err);
}

static void speed_size(const struct op_call *c, int *width, int *height)
{
    size_t length = wave_speed_length((size_t)*width, c->args[0]);
    *width = length > INT_MAX ? INT_MAX : (int)length;
}

/* TimeShift args: 0 fraction of the length (positive: later), 1 mode. */
static struct audio *apply_time_shift(const struct audio *in, const struct op_call *c,
                                      const struct audio_bank *bank, struct rng *noise,
                                      struct eng_error *err)
{
    long shift = (long)(c->args[0] * (double)in->length);
    return wave_shift(in, shift, (int)c->args[1] == 0, err);
}

/* Reverb args: 0 rt60 (the synthetic response's), 1 rir (index into the bank's responses; -1:
 * synthetic, its noise from the op's own stream). */
static struct audio *apply_reverb(const struct audio *in, const struct op_call *c,
                                  const struct audio_bank *bank, struct rng *noise,
                                  struct eng_error *err)
{
    int index = (int)c->args[1];
    if (index >= 0) {
        const struct audio *rir =
            bank_clip("Reverb", "impulse response", bank->rirs, bank->rir_count, index, err);
        if (!rir) return NULL;
        struct audio *out = NULL;
        if (rir->rate != in->rate)
            eng_fail(err, ENG_INVALID, "it is at %d Hz; the audio is at %d Hz", rir->rate,
                     in->rate);
        else
            out = wave_reverb(in, rir->samples, rir->length, err);
        if (!out) name_clip(err, "Reverb", "impulse response", index);
        return out;
    }
    size_t taps;
    float *rir = wave_synthetic_rir(c->args[0], in->rate, noise, &taps, err);
    struct audio *out = rir ? wave_reverb(in, rir, taps, err) : NULL;
    free(rir);
    return out;
}

static struct audio *apply_clip(const struct audio *in, const struct op_call *c,
                                const struct audio_bank *bank, struct rng *noise,
                                struct eng_error *err)
{
    return wave_clip(in, c->args[0], err);
}

/* LowPass and HighPass args: 0 cutoff_hz, 1 q. */
static struct audio *apply_lowpass(const struct audio *in, const struct op_call *c,
                                   const struct audio_bank *bank, struct rng *noise,
                                   struct eng_error *err)
{
    return wave_biquad(in, WAVE_LOWPASS, c->args[0], c->args[1], err);
}

static struct audio *apply_highpass(const struct audio *in, const struct op_call *c,
                                    const struct audio_bank *bank, struct rng *noise,
                                    struct eng_error *err)
{
    return wave_biquad(in, WAVE_HIGHPASS, c->args[0], c->args[1], err);
}

/* Volume args: 0 mode, 1 target_db. */
static struct audio *apply_volume(const struct audio *in, const struct op_call *c,
                                  const struct audio_bank *bank, struct rng *noise,
                                  struct eng_error *err)
{
    return wave_normalize(in, (int)c->args[0] == 1, c->args[1], err);
}

/* A float32 uniform in [0, 1) as torch.rand makes one: 24 random bits. */
static float uniform_f32(struct rng *rng)
{
    return (float)(rng_u32(rng) >> 8) * 0x1p-24f;
}

/* One mask of at most mask_param entries of an axis of size: args[at] the start, args[at + 1]
 * the width, drawn in torchaudio's order (the width first). */
static void draw_mask(double *a, int at, struct rng *rng, int mask_param, int size)
{
    float u_width = uniform_f32(rng), u_start = uniform_f32(rng);
    int start, width;
    spec_mask_draw(u_width, u_start, mask_param, size, &start, &width);
    a[at] = start;
    a[at + 1] = width;
}

/* The masks' args end with value, then the drawn start and width. */
static struct audio_spec *apply_mask(const struct audio_spec *in, const struct op_call *c,
                                     enum spec_axis axis, int value_arg, struct eng_error *err)
{
    const double *a = c->args;
    return spec_mask(in, axis, (int)a[value_arg + 1], (int)a[value_arg + 2], (int)a[value_arg] == 1,
                     err);
}

/* FrequencyMask args: 0 F, 1 count, 2 value; drawn 3 start, 4 width. */
static int count_frequency_masks(const struct op_call *c, int width, int height)
{
    return (int)c->args[1];
}

static int draw_frequency_mask(struct op_call *c, struct rng *rng, int width, int height,
                               struct eng_error *err)
{
    draw_mask(c->args, 3, rng, spec_mask_param((int)c->args[0], 1.0, height), height);
    return 0;
}

static struct audio_spec *apply_frequency_mask(const struct audio_spec *in, const struct op_call *c,
                                               struct eng_error *err)
{
    return apply_mask(in, c, SPEC_FREQUENCY, 2, err);
}

/* TimeMask args: 0 T, 1 p, 2 count, 3 value; drawn 4 start, 5 width. */
static int count_time_masks(const struct op_call *c, int width, int height)
{
    return (int)c->args[2];
}

static int draw_time_mask(struct op_call *c, struct rng *rng, int width, int height,
                          struct eng_error *err)
{
    draw_mask(c->args, 4, rng, spec_mask_param((int)c->args[0], c->args[1], width), width);
    return 0;
}

static struct audio_spec *apply_time_mask(const struct audio_spec *in, const struct op_call *c,
                                          struct eng_error *err)
{
    return apply_mask(in, c, SPEC_TIME, 3, err);
}

/* AdaptiveTimeMask args (Park et al. 2020): 0 ratio_m, 1 ratio_s, 2 max_count, 3 value; drawn
 * 4 start, 5 width. min(max_count, floor(ratio_m * frames)) masks of at most
 * floor(ratio_s * frames) frames each. */
static int count_adaptive_masks(const struct op_call *c, int width, int height)
{
    int count = (int)(c->args[0] * width);
    return count < (int)c->args[2] ? count : (int)c->args[2];
}

static int draw_adaptive_mask(struct op_call *c, struct rng *rng, int width, int height,
                              struct eng_error *err)
{
    draw_mask(c->args, 4, rng, (int)(c->args[1] * width), width);
    return 0;
}

/* TimeWarp args: 0 W; drawn 1 centre, 2 warped, as ESPnet's time_warp draws them:
 * centre = randint(W, frames - W), warped = randint(centre - W, centre + W) + 1; both 0 (no warp)
 * when frames - W <= W. */
static int draw_time_warp(struct op_call *c, struct rng *rng, int width, int height,
                          struct eng_error *err)
{
    int w = (int)c->args[0];
    c->args[1] = c->args[2] = 0;
    if (w < 1 || width - w <= w) return 0;
    int centre = w + (int)rng_below(rng, (uint32_t)(width - 2 * w));
    c->args[1] = centre;
    c->args[2] = centre - w + (int)rng_below(rng, (uint32_t)(2 * w)) + 1;
    return 0;
}

static struct audio_spec *apply_time_warp(const struct audio_spec *in, const struct op_call *c,
                                          struct eng_error *err)
{
    return spec_time_warp(in, (int)c->args[1], (int)c->args[2], err);
}

/* ---- How geometric ops carry targets: their forward maps (targets.h) ------------------------ */

static void map_rotate(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_rotate(m, c->args[0], width, height);
}

static void map_shear_x(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_shear_x(m, c->args[0]);
}

static void map_shear_y(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_shear_y(m, c->args[0]);
}

static void map_translate_x(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_translate_x(m, c->args[0]);
}

static void map_translate_y(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_translate_y(m, c->args[0]);
}

static void map_shift_x(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_shift(m, c->args[0], 0);
}

static void map_shift_y(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_shift(m, 0, c->args[0]);
}

static void map_flip_lr(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_flip_lr(m, width);
}

static void map_flip_ud(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_flip_ud(m, height);
}

static void map_center_crop(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_center_crop(m, width, height, (int)c->args[1], (int)c->args[0]);
}

static void map_resize(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_resize(m, width, height, (int)c->args[1], (int)c->args[0]);
}

static void map_pad(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_pad(m, (int)c->args[0], (int)c->args[1]);
}

static void map_resized_crop(const struct op_call *c, int width, int height, double m[6])
{
    const double *a = c->args;
    targets_matrix_resized_crop(m, (int)a[6], (int)a[7], (int)a[8], (int)a[9], (int)a[0],
                                (int)a[1]);
}

static void map_random_crop(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_random_crop(m, (int)c->args[5], (int)c->args[6], (int)c->args[7]);
}

/* ---- Detection ops (Zoph et al. 2019; ops_detection.h) -------------------------------------- */

/* The reference's replace value: gray 128 (opaque) unless the policy gives fill. */
static const uint8_t *replace_fill(const struct op_call *c)
{
    static const uint8_t gray[4] = {128, 128, 128, 255};
    return c->fill_given ? c->fill : gray;
}

/* Rotate_BBox: Rotate with the reference's fill. */
static struct img *apply_rotate_bbox(const struct img *in, const struct op_call *c,
                                     struct rng *noise, struct eng_error *err)
{
    return img_rotate(in, c->args[0], interp_of(c), replace_fill(c), true, err);
}

static struct img *apply_shear_x_bbox(const struct img *in, const struct op_call *c,
                                      struct rng *noise, struct eng_error *err)
{
    return img_shear_x(in, c->args[0], interp_of(c), replace_fill(c), true, err);
}

static struct img *apply_shear_y_bbox(const struct img *in, const struct op_call *c,
                                      struct rng *noise, struct eng_error *err)
{
    return img_shear_y(in, c->args[0], interp_of(c), replace_fill(c), true, err);
}

/* The reference's translate_x(image, pixels) moves the content by -pixels. */
static struct img *apply_translate_x_bbox(const struct img *in, const struct op_call *c,
                                          struct rng *noise, struct eng_error *err)
{
    return img_translate_x(in, -c->args[0], interp_of(c), replace_fill(c), true, err);
}

static struct img *apply_translate_y_bbox(const struct img *in, const struct op_call *c,
                                          struct rng *noise, struct eng_error *err)
{
    return img_translate_y(in, -c->args[0], interp_of(c), replace_fill(c), true, err);
}

static void map_translate_x_bbox(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_translate_x(m, -c->args[0]);
}

static void map_translate_y_bbox(const struct op_call *c, int width, int height, double m[6])
{
    targets_matrix_translate_y(m, -c->args[0]);
}

/* Box ops without boxes (a request without targets) leave the image as it is, as the reference
 * does for an image without boxes. */
static struct img *apply_without_boxes(const struct img *in, const struct op_call *c,
                                       struct rng *noise, struct eng_error *err)
{
    return img_clone(in, err);
}

/* BBox_Cutout args: 0 pad_fraction. */
static struct img *apply_bbox_cutout(const struct img *in, const struct op_call *c,
                                     const struct target_box *boxes, size_t count,
                                     struct rng *noise, struct eng_error *err)
{
    return det_bbox_cutout(in, boxes, count, c->args[0], replace_fill(c), noise, err);
}

/* An *_Only_BBoxes op's inner call: a whole-image op of the registry on one box's pixels. */
static struct img *run_inner(const struct img *crop, const void *ctx, struct rng *noise,
                             struct eng_error *err)
{
    return op_apply(ctx, crop, NULL, 0, noise, err);
}

/* Runs the registry op `inner` inside each box with probability prob / 3 (the reference's
 * _scale_bbox_only_op_probability). The outer args are 0 prob, then the inner op's. */
static struct img *only_boxes(const struct img *in, const struct op_call *c, const char *inner,
                              const struct target_box *boxes, size_t count, struct rng *noise,
                              struct eng_error *err)
{
    struct op_call call = *c;
    if (!(call.op = op_find(inner)))
        return eng_fail(err, ENG_INTERNAL, "%s: no op %s", c->op->name, inner), NULL;
    memmove(call.args, c->args + 1, sizeof call.args - sizeof call.args[0]);
    return det_only_boxes(in, boxes, count, c->args[0] / 3, run_inner, &call, noise, err);
}

#define ONLY_BOXES(fn, inner)                                                                      \
    static struct img *fn(const struct img *in, const struct op_call *c,                           \
                          const struct target_box *boxes, size_t count, struct rng *noise,         \
                          struct eng_error *err)                                                   \
    {                                                                                              \
        return only_boxes(in, c, inner, boxes, count, noise, err);                                 \
    }
ONLY_BOXES(apply_rotate_only, "Rotate_BBox")
ONLY_BOXES(apply_shear_x_only, "ShearX_BBox")
ONLY_BOXES(apply_shear_y_only, "ShearY_BBox")
ONLY_BOXES(apply_translate_x_only, "TranslateX_BBox")
ONLY_BOXES(apply_translate_y_only, "TranslateY_BBox")
ONLY_BOXES(apply_flip_only, "FlipLR")
ONLY_BOXES(apply_solarize_only, "Solarize")
ONLY_BOXES(apply_equalize_only, "Equalize")

/* The reference's cutout inside one box: the centre drawn among the box's pixels (row, then
 * column), a square of side 2 pad_size. ctx is the Cutout_Only_BBoxes call (1 pad_size). */
static struct img *cutout_in_box(const struct img *crop, const void *ctx, struct rng *noise,
                                 struct eng_error *err)
{
    const struct op_call *c = ctx;
    const int cy = (int)rng_below(noise, (uint32_t)crop->height);
    const int cx = (int)rng_below(noise, (uint32_t)crop->width);
    return img_cutout(crop, cx, cy, 2 * (int)c->args[1], replace_fill(c), err);
}

static struct img *apply_cutout_only(const struct img *in, const struct op_call *c,
                                     const struct target_box *boxes, size_t count,
                                     struct rng *noise, struct eng_error *err)
{
    return det_only_boxes(in, boxes, count, c->args[0] / 3, cutout_in_box, c, noise, err);
}

/* ---- The table ------------------------------------------------------------------------------ */

#define FACTOR_ARG(help)                                                                           \
    {                                                                                              \
        "factor", OP_ARG_NUMBER, 0, 10, 1, NULL, "", help                                          \
    }
static const struct op_arg_desc brightness_args[] = {FACTOR_ARG("0 black, 1 unchanged")};
static const struct op_arg_desc color_args[] = {FACTOR_ARG("saturation: 0 gray, 1 unchanged")};
static const struct op_arg_desc contrast_args[] = {FACTOR_ARG("0 mean gray, 1 unchanged")};
static const struct op_arg_desc sharpness_args[] = {FACTOR_ARG("0 smoothed, 1 unchanged")};
static const struct op_arg_desc posterize_args[] = {
    {"bits", OP_ARG_INTEGER, 0, 8, 8, NULL, "bits", "bits kept per channel"}};
static const struct op_arg_desc solarize_args[] = {
    {"threshold", OP_ARG_NUMBER, 0, 256, 128, NULL, "level", "values >= threshold are inverted"}};
static const struct op_arg_desc solarize_add_args[] = {
    {"addition", OP_ARG_INTEGER, -255, 255, 0, NULL, "level", "added to values below threshold"},
    {"threshold", OP_ARG_INTEGER, 0, 256, 128, NULL, "level", "values >= threshold are unchanged"}};
static const struct op_arg_desc rotate_args[] = {{"degrees", OP_ARG_NUMBER, -360, 360, 0, NULL,
                                                  "degrees",
                                                  "counter-clockwise, about the centre"}};
static const struct op_arg_desc shear_args[] = {
    {"factor", OP_ARG_NUMBER, -1, 1, 0, NULL, "", "shear factor m: x' = x + m y (ShearX)"}};
static const struct op_arg_desc translate_args[] = {
    {"pixels", OP_ARG_NUMBER, -65535, 65535, 0, NULL, "pixels", "truncated toward zero"}};
static const struct op_arg_desc shift_args[] = {
    {"pixels", OP_ARG_NUMBER, -65535, 65535, 0, NULL, "pixels", "positive: right (or down)"}};
static const struct op_arg_desc size_args[] = {
    {"height", OP_ARG_INTEGER, 1, 65535, 224, NULL, "pixels", "output height"},
    {"width", OP_ARG_INTEGER, 1, 65535, 224, NULL, "pixels", "output width"}};
static const struct op_arg_desc resized_crop_args[] = {
    {"height", OP_ARG_INTEGER, 1, 65535, 224, NULL, "pixels", "output height"},
    {"width", OP_ARG_INTEGER, 1, 65535, 224, NULL, "pixels", "output width"},
    {"scale_min", OP_ARG_NUMBER, 0, 1, 0.08, NULL, "", "crop area range, as a share of the image"},
    {"scale_max", OP_ARG_NUMBER, 0, 1, 1, NULL, "", ""},
    {"ratio_min", OP_ARG_NUMBER, 0.01, 100, 3.0 / 4.0, NULL, "", "crop aspect ratio range, w / h"},
    {"ratio_max", OP_ARG_NUMBER, 0.01, 100, 4.0 / 3.0, NULL, "", ""},
    {"top", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"left", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"crop_height", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"crop_width", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1}};
static const struct op_arg_desc random_crop_args[] = {
    {"height", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "0: the input's"},
    {"width", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "0: the input's"},
    {"padding", OP_ARG_INTEGER, 0, 4096, 0, NULL, "pixels", "added to every side first"},
    {"padding_fraction", OP_ARG_NUMBER, 0, 1, 0, NULL, "", "more padding: int(f * shorter side)"},
    {"mode", OP_ARG_ENUM, 0, 3, 0, pad_modes, "", "constant (fill), edge, reflect, symmetric"},
    {"pad", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn: the padding applied", 1},
    {"top", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"left", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1}};
static const char *const erase_modes[] = {"constant", "random", NULL};
static const struct op_arg_desc cutout_args[] = {
    {"size", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "side of the square; 0: size_fraction"},
    {"size_fraction", OP_ARG_NUMBER, 0, 1, 0.5, NULL, "", "side as a share of the shorter side"},
    {"cx", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn: the centre", 1},
    {"cy", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"side", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn: the side used", 1}};
static const struct op_arg_desc patch_args[] = {
    {"size", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "side of the patch; 0: size_fraction"},
    {"size_fraction", OP_ARG_NUMBER, 0, 1, 0.5, NULL, "", "side as a share of the shorter side"},
    {"sigma", OP_ARG_NUMBER, 0, 10, 0.5, NULL, "", "noise deviation on the [0, 1] scale"},
    {"cx", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn: the centre", 1},
    {"cy", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"side", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn: the side used", 1}};
static const struct op_arg_desc noise_args[] = {
    {"sigma", OP_ARG_NUMBER, 0, 10, 0.1, NULL, "", "noise deviation on the [0, 1] scale"}};
static const struct op_arg_desc erasing_args[] = {
    {"scale_min", OP_ARG_NUMBER, 0, 1, 0.02, NULL, "", "erased area range, share of the image"},
    {"scale_max", OP_ARG_NUMBER, 0, 1, 0.33, NULL, "", ""},
    {"ratio_min", OP_ARG_NUMBER, 0.01, 100, 0.3, NULL, "", "aspect ratio range, h / w"},
    {"ratio_max", OP_ARG_NUMBER, 0.01, 100, 3.3, NULL, "", ""},
    {"value", OP_ARG_INTEGER, 0, 255, 0, NULL, "level", "the constant"},
    {"mode", OP_ARG_ENUM, 0, 1, 0, erase_modes, "", "constant value, or random bytes"},
    {"top", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"left", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1},
    {"height", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn (0: no box fitted)", 1},
    {"width", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "drawn", 1}};
static const struct op_arg_desc fourier_args[] = {
    {"i", OP_ARG_INTEGER, -1, 65535, -1, NULL, "", "vertical frequency; -1: drawn by 1 / |k|"},
    {"j", OP_ARG_INTEGER, -1, 65535, -1, NULL, "", "horizontal frequency; -1: drawn"},
    {"eps", OP_ARG_NUMBER, 0, 1000, 4, NULL, "", "L2 norm of the added basis image, [0, 1] scale"},
    {"sign_0", OP_ARG_INTEGER, -1, 1, 1, NULL, "", "drawn: sign for channel 0", 1},
    {"sign_1", OP_ARG_INTEGER, -1, 1, 1, NULL, "", "drawn", 1},
    {"sign_2", OP_ARG_INTEGER, -1, 1, 1, NULL, "", "drawn", 1}};
static const struct op_arg_desc blur_args[] = {
    {"sigma", OP_ARG_NUMBER, 0, 10, 1, NULL, "pixels", "0: unchanged"},
    {"kernel_size", OP_ARG_INTEGER, 0, 63, 0, NULL, "pixels", "odd; 0: 2 ceil(3 sigma) + 1"}};
static const struct op_arg_desc pad_args[] = {
    {"left", OP_ARG_INTEGER, 0, 4096, 0, NULL, "pixels", ""},
    {"top", OP_ARG_INTEGER, 0, 4096, 0, NULL, "pixels", ""},
    {"right", OP_ARG_INTEGER, 0, 4096, 0, NULL, "pixels", ""},
    {"bottom", OP_ARG_INTEGER, 0, 4096, 0, NULL, "pixels", ""},
    {"mode", OP_ARG_ENUM, 0, 3, 0, pad_modes, "", "constant (fill), edge, reflect, symmetric"}};

static const struct op_arg_desc gain_args[] = {
    {"db", OP_ARG_NUMBER, -60, 60, 0, NULL, "dB", "amplitude times 10^(db / 20)"}};
#define SNR_ARG                                                                                    \
    {                                                                                              \
        "snr_db", OP_ARG_NUMBER, -20, 100, 20, NULL, "dB", "signal power over noise power"         \
    }
static const struct op_arg_desc noise_wave_args[] = {
    SNR_ARG, {"colour", OP_ARG_ENUM, 0, 2, 0, colours, "", "white, pink (1/f) or brown (1/f^2)"}};
static const struct op_arg_desc noise_clip_args[] = {
    {"clip", OP_ARG_INTEGER, 0, 1023, 0, NULL, "", "index of the request's noise clip"},
    SNR_ARG,
    {"offset", OP_ARG_NUMBER, 0, 1, 0, NULL, "", "drawn: where in the clip it starts (share)", 1}};
static const struct op_arg_desc speed_args[] = {
    {"factor", OP_ARG_NUMBER, 0.5, 2, 1, NULL, "", "above 1: faster and shorter"}};
static const struct op_arg_desc time_shift_args[] = {
    {"fraction", OP_ARG_NUMBER, -1, 1, 0, NULL, "", "share of the length; positive: later"},
    {"mode", OP_ARG_ENUM, 0, 1, 0, shift_modes, "", "roll around, or fill the gap with zeros"}};
static const struct op_arg_desc reverb_args[] = {
    {"rt60", OP_ARG_NUMBER, 0.05, 3, 0.3, NULL, "s", "decay to -60 dB of the synthetic room"},
    {"rir", OP_ARG_INTEGER, -1, 1023, -1, NULL, "",
     "index of the request's impulse response; -1: synthetic"}};
static const struct op_arg_desc clip_args[] = {
    {"fraction", OP_ARG_NUMBER, 0.01, 1, 0.5, NULL, "", "clip at this share of the peak"}};
static const struct op_arg_desc lowpass_args[] = {
    {"cutoff_hz", OP_ARG_NUMBER, 1, 96000, 4000, NULL, "Hz", "below half the sample rate"},
    {"q", OP_ARG_NUMBER, 0.1, 10, 0.707, NULL, "", "quality factor"}};
static const struct op_arg_desc highpass_args[] = {
    {"cutoff_hz", OP_ARG_NUMBER, 1, 96000, 300, NULL, "Hz", "below half the sample rate"},
    {"q", OP_ARG_NUMBER, 0.1, 10, 0.707, NULL, "", "quality factor"}};
static const struct op_arg_desc volume_args[] = {
    {"mode", OP_ARG_ENUM, 0, 1, 0, volume_modes, "", "normalise the peak or the RMS"},
    {"target_db", OP_ARG_NUMBER, -80, 0, -1, NULL, "dBFS", "the level it gets"}};
#define MASK_ARGS(first_help)                                                                      \
    {"count", OP_ARG_INTEGER, 0, 64, 1, NULL, "", "masks drawn, each listed in the trace"},        \
        {"value", OP_ARG_ENUM, 0, 1, 0, mask_values, "", "zero, or the spectrogram's mean"},       \
        {"start", OP_ARG_INTEGER, -65535, 65535, 0, NULL, first_help, "drawn", 1},                 \
    {                                                                                              \
        "width", OP_ARG_INTEGER, 0, 65535, 0, NULL, first_help, "drawn", 1                         \
    }
static const struct op_arg_desc frequency_mask_args[] = {
    {"F", OP_ARG_INTEGER, 0, 1000, 27, NULL, "bins", "widest mask"}, MASK_ARGS("bins")};
static const struct op_arg_desc time_mask_args[] = {
    {"T", OP_ARG_INTEGER, 0, 100000, 100, NULL, "frames", "widest mask"},
    {"p", OP_ARG_NUMBER, 0, 1, 1, NULL, "", "the mask is at most p * frames wide"},
    MASK_ARGS("frames")};
static const struct op_arg_desc adaptive_mask_args[] = {
    {"ratio_m", OP_ARG_NUMBER, 0, 1, 0.04, NULL, "", "masks per frame (multiplicity ratio)"},
    {"ratio_s", OP_ARG_NUMBER, 0, 1, 0.04, NULL, "", "widest mask, share of the frames"},
    {"max_count", OP_ARG_INTEGER, 0, 64, 20, NULL, "", "at most this many masks"},
    {"value", OP_ARG_ENUM, 0, 1, 0, mask_values, "", "zero, or the spectrogram's mean"},
    {"start", OP_ARG_INTEGER, -65535, 65535, 0, NULL, "frames", "drawn", 1},
    {"width", OP_ARG_INTEGER, 0, 65535, 0, NULL, "frames", "drawn", 1}};
static const struct op_arg_desc time_warp_args[] = {
    {"W", OP_ARG_INTEGER, 0, 1000, 80, NULL, "frames", "the warp point moves at most W frames"},
    {"centre", OP_ARG_INTEGER, 0, 1000000, 0, NULL, "frames", "drawn: the point (0: no warp)", 1},
    {"warped", OP_ARG_INTEGER, 0, 1000000, 0, NULL, "frames", "drawn: where it goes", 1}};

/* The detection ops' arguments; *_Only_BBoxes ops take the table's prob first. */
#define PROB_ARG                                                                                   \
    {                                                                                              \
        "prob", OP_ARG_NUMBER, 0, 1, 1, NULL, "",                                                  \
            "each box is augmented with probability prob / 3"                                      \
    }
static const struct op_arg_desc det_translate_args[] = {
    {"pixels", OP_ARG_NUMBER, -65535, 65535, 0, NULL, "pixels",
     "truncated; the content moves by -pixels, as in the reference"}};
static const struct op_arg_desc bbox_cutout_args[] = {{"pad_fraction", OP_ARG_NUMBER, 0, 1, 0.5,
                                                       NULL, "",
                                                       "the cutout's sides, as a share of the "
                                                       "box's"}};
static const struct op_arg_desc only_prob_args[] = {PROB_ARG};
static const struct op_arg_desc only_rotate_args[] = {
    PROB_ARG, {"degrees", OP_ARG_NUMBER, -360, 360, 0, NULL, "degrees", "counter-clockwise"}};
static const struct op_arg_desc only_shear_args[] = {
    PROB_ARG, {"factor", OP_ARG_NUMBER, -1, 1, 0, NULL, "", "shear factor"}};
static const struct op_arg_desc only_translate_args[] = {PROB_ARG,
                                                         {"pixels", OP_ARG_NUMBER, -65535, 65535, 0,
                                                          NULL, "pixels",
                                                          "the content moves by "
                                                          "-pixels"}};
static const struct op_arg_desc only_solarize_args[] = {
    PROB_ARG, {"threshold", OP_ARG_NUMBER, 0, 256, 128, NULL, "level", "values >= it invert"}};
static const struct op_arg_desc only_cutout_args[] = {
    PROB_ARG, {"pad_size", OP_ARG_INTEGER, 0, 65535, 0, NULL, "pixels", "half the square's side"}};

#define ENHANCE_LEVEL                                                                              \
    {                                                                                              \
        0, LEVEL_ONE_PLUS, SCALE_ABSOLUTE, 0, 0.9, 1                                               \
    }

static const struct op_desc ops[] = {
    {"Identity", "the image unchanged", 0, NO_ARGS, NO_LEVEL, apply_identity},
    {"AutoContrast", "stretch each channel to the full range", OP_COLOR, NO_ARGS, NO_LEVEL,
     apply_autocontrast},
    {"Equalize", "equalize each channel's histogram", OP_COLOR, NO_ARGS, NO_LEVEL, apply_equalize},
    {"Invert", "255 - value", OP_COLOR, NO_ARGS, NO_LEVEL, apply_invert},
    {"Grayscale", "ITU-R 601-2 luma, kept as 3 channels", OP_COLOR, NO_ARGS, NO_LEVEL,
     apply_grayscale},
    {"Posterize",
     "keep the top bits of each value",
     OP_COLOR,
     ARGS(posterize_args),
     {0, LEVEL_BITS_REMOVED, SCALE_ABSOLUTE, 0, 4, 0},
     apply_posterize},
    {"Solarize",
     "invert values at or above a threshold",
     OP_COLOR,
     ARGS(solarize_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 255, 0, 0},
     apply_solarize},
    {"SolarizeAdd",
     "add to values below a threshold, clipped (AutoAugment's TF reference)",
     OP_COLOR,
     ARGS(solarize_add_args),
     {0, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 110, 0},
     apply_solarize_add},
    {"Brightness", "blend with black", OP_COLOR, ARGS(brightness_args), ENHANCE_LEVEL,
     apply_brightness},
    {"Color", "blend with the grayscale image", OP_COLOR, ARGS(color_args), ENHANCE_LEVEL,
     apply_color},
    {"Contrast", "blend with the mean gray", OP_COLOR, ARGS(contrast_args), ENHANCE_LEVEL,
     apply_contrast},
    {"Sharpness", "blend with PIL's SMOOTH filter", OP_COLOR, ARGS(sharpness_args), ENHANCE_LEVEL,
     apply_sharpness},
    {"Rotate",
     "rotate about the centre, same size",
     OP_GEOMETRIC,
     ARGS(rotate_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 30, 1},
     apply_rotate,
     .map_targets = map_rotate},
    {"ShearX",
     "horizontal shear about the top-left corner",
     OP_GEOMETRIC,
     ARGS(shear_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_shear_x,
     .map_targets = map_shear_x},
    {"ShearY",
     "vertical shear about the top-left corner",
     OP_GEOMETRIC,
     ARGS(shear_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_shear_y,
     .map_targets = map_shear_y},
    {"TranslateX",
     "horizontal shift; level range 0 to 150/331 of the width",
     OP_GEOMETRIC,
     ARGS(translate_args),
     {0, LEVEL_TRUNCATE, SCALE_WIDTH, 0, 150.0 / 331.0, 1},
     apply_translate_x,
     .map_targets = map_translate_x},
    {"TranslateY",
     "vertical shift; level range 0 to 150/331 of the height",
     OP_GEOMETRIC,
     ARGS(translate_args),
     {0, LEVEL_TRUNCATE, SCALE_HEIGHT, 0, 150.0 / 331.0, 1},
     apply_translate_y,
     .map_targets = map_translate_y},
    {"TranslateXRel",
     "fractional horizontal shift (timm's); level range 0 to 0.45 of the width",
     OP_GEOMETRIC,
     ARGS(shift_args),
     {0, LEVEL_VALUE, SCALE_WIDTH, 0, 0.45, 1},
     apply_translate_x_rel,
     .map_targets = map_shift_x},
    {"TranslateYRel",
     "fractional vertical shift (timm's); level range 0 to 0.45 of the height",
     OP_GEOMETRIC,
     ARGS(shift_args),
     {0, LEVEL_VALUE, SCALE_HEIGHT, 0, 0.45, 1},
     apply_translate_y_rel,
     .map_targets = map_shift_y},
    {"FlipLR", "mirror left-right", 0, NO_ARGS, NO_LEVEL, apply_flip_lr,
     .map_targets = map_flip_lr},
    {"FlipUD", "mirror top-bottom", 0, NO_ARGS, NO_LEVEL, apply_flip_ud,
     .map_targets = map_flip_ud},
    {"CenterCrop", "the centre height x width, zero-padded when larger", 0, ARGS(size_args),
     NO_LEVEL, apply_center_crop, NULL, size_from_args, .map_targets = map_center_crop},
    {"Resize", "resize to height x width (PIL's antialiased filters)", OP_TAKES_INTERPOLATION,
     ARGS(size_args), NO_LEVEL, apply_resize, NULL, size_from_args, .map_targets = map_resize},
    {"Pad", "pad each side", OP_TAKES_FILL, ARGS(pad_args), NO_LEVEL, apply_pad, NULL, padded_size,
     .map_targets = map_pad},
    {"RandomResizedCrop", "torchvision's: a random box by area share and aspect ratio, resized",
     OP_TAKES_INTERPOLATION, ARGS(resized_crop_args), NO_LEVEL, apply_resized_crop,
     draw_resized_crop, size_from_args, .map_targets = map_resized_crop},
    {"Cutout", "a square of fill at a random centre (DeVries and Taylor 2017)", OP_TAKES_FILL,
     ARGS(cutout_args), NO_LEVEL, apply_cutout, draw_cutout},
    {"RandomErasing", "torchvision's: a random box by area share and aspect ratio, erased", 0,
     ARGS(erasing_args), NO_LEVEL, apply_erasing, draw_erasing},
    {"GaussianNoise",
     "N(0, sigma^2) on the [0, 1] image, clipped",
     0,
     ARGS(noise_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.1, 0},
     apply_gaussian_noise},
    {"PatchGaussian", "Gaussian noise inside a square at a random centre (Lopes et al. 2019)", 0,
     ARGS(patch_args), NO_LEVEL, apply_patch_gaussian, draw_patch},
    {"FourierNoise",
     "a Fourier basis image of norm eps, random sign per channel (Yin et al. 2019)",
     0,
     ARGS(fourier_args),
     {2, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 8, 0},
     apply_fourier,
     draw_fourier},
    {"GaussianBlur",
     "torchvision's F.gaussian_blur",
     0,
     ARGS(blur_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 2, 0},
     apply_blur},
    {"RandomCrop", "pad, then crop a random box (FixMatch's weak translate)", OP_TAKES_FILL,
     ARGS(random_crop_args), NO_LEVEL, apply_random_crop, draw_random_crop, size_from_args,
     .map_targets = map_random_crop},
    /* Detection (Zoph et al. 2019): levels as the reference's level/10 * max, fill its gray. */
    {"Rotate_BBox",
     "Rotate with boxes, fill 128 (detection AutoAugment)",
     OP_GEOMETRIC,
     ARGS(rotate_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 30, 1},
     apply_rotate_bbox,
     .map_targets = map_rotate},
    {"ShearX_BBox",
     "ShearX with boxes, fill 128",
     OP_GEOMETRIC,
     ARGS(shear_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_shear_x_bbox,
     .map_targets = map_shear_x},
    {"ShearY_BBox",
     "ShearY with boxes, fill 128",
     OP_GEOMETRIC,
     ARGS(shear_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_shear_y_bbox,
     .map_targets = map_shear_y},
    {"TranslateX_BBox",
     "horizontal shift by -pixels with boxes, fill 128; level range 0 to 250 pixels",
     OP_GEOMETRIC,
     ARGS(det_translate_args),
     {0, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 250, 1},
     apply_translate_x_bbox,
     .map_targets = map_translate_x_bbox},
    {"TranslateY_BBox",
     "vertical shift by -pixels with boxes, fill 128; level range 0 to 250 pixels",
     OP_GEOMETRIC,
     ARGS(det_translate_args),
     {0, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 250, 1},
     apply_translate_y_bbox,
     .map_targets = map_translate_y_bbox},
    {"BBox_Cutout",
     "a cutout of pad_fraction of a random box's size, centred in it, fill 128",
     OP_TAKES_FILL,
     ARGS(bbox_cutout_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.75, 0},
     apply_without_boxes,
     .apply_boxes = apply_bbox_cutout},
    {"Rotate_Only_BBoxes",
     "Rotate_BBox inside each box with probability prob / 3; boxes unchanged",
     OP_GEOMETRIC,
     ARGS(only_rotate_args),
     {1, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 30, 1},
     apply_without_boxes,
     .apply_boxes = apply_rotate_only},
    {"ShearX_Only_BBoxes",
     "ShearX_BBox inside each box with probability prob / 3",
     OP_GEOMETRIC,
     ARGS(only_shear_args),
     {1, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_without_boxes,
     .apply_boxes = apply_shear_x_only},
    {"ShearY_Only_BBoxes",
     "ShearY_BBox inside each box with probability prob / 3",
     OP_GEOMETRIC,
     ARGS(only_shear_args),
     {1, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_without_boxes,
     .apply_boxes = apply_shear_y_only},
    {"TranslateX_Only_BBoxes",
     "TranslateX_BBox inside each box with probability prob / 3; level range 0 to 120 pixels",
     OP_GEOMETRIC,
     ARGS(only_translate_args),
     {1, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 120, 1},
     apply_without_boxes,
     .apply_boxes = apply_translate_x_only},
    {"TranslateY_Only_BBoxes",
     "TranslateY_BBox inside each box with probability prob / 3; level range 0 to 120 pixels",
     OP_GEOMETRIC,
     ARGS(only_translate_args),
     {1, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 120, 1},
     apply_without_boxes,
     .apply_boxes = apply_translate_y_only},
    {"Flip_Only_BBoxes", "FlipLR inside each box with probability prob / 3", 0,
     ARGS(only_prob_args), NO_LEVEL, apply_without_boxes, .apply_boxes = apply_flip_only},
    {"Solarize_Only_BBoxes",
     "Solarize inside each box with probability prob / 3",
     0,
     ARGS(only_solarize_args),
     {1, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 256, 0},
     apply_without_boxes,
     .apply_boxes = apply_solarize_only},
    {"Equalize_Only_BBoxes", "Equalize inside each box with probability prob / 3", 0,
     ARGS(only_prob_args), NO_LEVEL, apply_without_boxes, .apply_boxes = apply_equalize_only},
    {"Cutout_Only_BBoxes",
     "a square of side 2 pad_size at a random centre inside each box, with probability prob / 3",
     OP_TAKES_FILL,
     ARGS(only_cutout_args),
     {1, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 50, 0},
     apply_without_boxes,
     .apply_boxes = apply_cutout_only},
    /* Audio: designated initialisers, since they leave the image hooks empty. */
    {.name = "Gain",
     .help = "multiply the waveform by 10^(db / 20)",
     AUDIO_ARGS(gain_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 12, 1},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_gain},
    {.name = "Noise",
     .help = "white, pink or brown noise at an exact SNR",
     AUDIO_ARGS(noise_wave_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 40, 0, 0},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_noise},
    {.name = "NoiseClip",
     .help = "one of the request's noise clips, looped from a random point, at an exact SNR",
     AUDIO_ARGS(noise_clip_args),
     .level = {1, LEVEL_VALUE, SCALE_ABSOLUTE, 40, 0, 0},
     .draw = draw_clip_offset,
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_noise_clip},
    {.name = "Speed",
     .help = "speed perturbation by resampling with libsoxr (band-limited): length / factor, pitch "
             "moves",
     AUDIO_ARGS(speed_args),
     .level = {0, LEVEL_ONE_PLUS, SCALE_ABSOLUTE, 0, 0.1, 1},
     .output_size = speed_size,
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_speed},
    {.name = "TimeShift",
     .help = "shift in time by a share of the length, rolled or zero-filled",
     AUDIO_ARGS(time_shift_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.5, 1},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_time_shift},
    {.name = "Reverb",
     .help = "convolution with a synthetic exponential-decay room response or the request's own",
     AUDIO_ARGS(reverb_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0.1, 1, 0},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_reverb},
    {.name = "Clip",
     .help = "hard clipping distortion at a share of the peak",
     AUDIO_ARGS(clip_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 1, 0.2, 0},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_clip},
    {.name = "LowPass",
     .help = "torchaudio's lowpass_biquad, output clamped to [-1, 1]",
     AUDIO_ARGS(lowpass_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 8000, 1000, 0},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_lowpass},
    {.name = "HighPass",
     .help = "torchaudio's highpass_biquad, output clamped to [-1, 1]",
     AUDIO_ARGS(highpass_args),
     .level = {0, LEVEL_VALUE, SCALE_ABSOLUTE, 50, 1000, 0},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_highpass},
    {.name = "Volume",
     .help = "normalise the peak or the RMS to a level in dBFS",
     AUDIO_ARGS(volume_args),
     .level = NO_LEVEL,
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_volume},
    {.name = "FrequencyMask",
     .help = "SpecAugment's frequency masks, drawn as torchaudio's mask_along_axis",
     AUDIO_ARGS(frequency_mask_args),
     .level = {0, LEVEL_TRUNCATE, SCALE_HEIGHT, 0, 27.0 / 80.0, 0},
     .draw = draw_frequency_mask,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .count = count_frequency_masks,
     .apply_spec = apply_frequency_mask},
    {.name = "TimeMask",
     .help = "SpecAugment's time masks, drawn as torchaudio's mask_along_axis",
     AUDIO_ARGS(time_mask_args),
     .level = {0, LEVEL_TRUNCATE, SCALE_WIDTH, 0, 0.2, 0},
     .draw = draw_time_mask,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .count = count_time_masks,
     .apply_spec = apply_time_mask},
    {.name = "AdaptiveTimeMask",
     .help = "time masks whose count and width scale with the frames (Park et al. 2020)",
     AUDIO_ARGS(adaptive_mask_args),
     .level = {1, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.1, 0},
     .draw = draw_adaptive_mask,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .count = count_adaptive_masks,
     .apply_spec = apply_time_mask},
    {.name = "TimeWarp",
     .help = "SpecAugment's time warp, as ESPnet's time_warp with linear interpolation",
     AUDIO_ARGS(time_warp_args),
     .level = {0, LEVEL_TRUNCATE, SCALE_ABSOLUTE, 0, 80, 0},
     .draw = draw_time_warp,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .apply_spec = apply_time_warp},
};

/* Copies channel c of in into a new single-channel image, or the other channels (all but c). */
static struct img *select_channels(const struct img *in, int first, int count,
                                   struct eng_error *err)
{
    struct img *out = img_new(in->width, in->height, count, err);
    if (!out) return NULL;
    for (int y = 0; y < in->height; y++) {
        const uint8_t *src = img_row(in, y) + first;
        uint8_t *dst = img_row(out, y);
        for (int x = 0; x < in->width; x++)
            for (int c = 0; c < count; c++)
                dst[x * count + c] = src[x * in->channels + c];
    }
    return out;
}

struct img *op_apply(const struct op_call *call, const struct img *in,
                     const struct target_box *boxes, size_t count, struct rng *noise,
                     struct eng_error *err)
{
    if (call->op->domain != OP_DOMAIN_IMAGE) {
        eng_fail(err, ENG_INVALID, "%s is a %s op; it cannot run on an image", call->op->name,
                 op_domain_name(call->op->domain));
        return NULL;
    }
    if (call->op->apply_boxes) return call->op->apply_boxes(in, call, boxes, count, noise, err);
    if (!(call->op->takes & OP_COLOR) || in->channels != 4)
        return call->op->apply(in, call, noise, err);
    struct img *rgb = select_channels(in, 0, 3, err);
    struct img *done = rgb ? call->op->apply(rgb, call, noise, err) : NULL;
    img_free(rgb);
    if (!done) return NULL;
    struct img *out = img_new(in->width, in->height, 4, err);
    if (out)
        for (int y = 0; y < in->height; y++) {
            const uint8_t *color = img_row(done, y), *alpha = img_row(in, y) + 3;
            uint8_t *dst = img_row(out, y);
            for (int x = 0; x < in->width; x++) {
                memcpy(dst + 4 * x, color + 3 * x, 3);
                dst[4 * x + 3] = alpha[4 * x];
            }
        }
    img_free(done);
    return out;
}

const struct op_desc *op_table(size_t *count)
{
    *count = sizeof ops / sizeof ops[0];
    return ops;
}

const struct op_desc *op_find(const char *name)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, name) == 0) return &ops[i];
    return NULL;
}

int op_arg_index(const struct op_desc *op, const char *name)
{
    for (int i = 0; i < op->arg_count; i++)
        if (strcmp(op->args[i].name, name) == 0) return i;
    return -1;
}

const char *op_domain_name(enum op_domain domain)
{
    return domain == OP_DOMAIN_WAVEFORM      ? "waveform"
           : domain == OP_DOMAIN_SPECTROGRAM ? "spectrogram"
                                             : "image";
}
