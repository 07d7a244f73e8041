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

/* An op's arguments in its table entry: the array and its length. */
#define ARGS(a) .args = a, .arg_count = (int)(sizeof a / sizeof a[0])

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

/* ---- Audio ops: waveforms, then spectrograms (audio/wave.h, audio/spec.h) ------------------- */

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

/* ---- Detection ops (Zoph et al. 2019; image/detection.h) ------------------------------------ */

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
    return detection_bbox_cutout(in, boxes, count, c->args[0], replace_fill(c), noise, err);
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
    return detection_only_boxes(in, boxes, count, c->args[0] / 3, run_inner, &call, noise, err);
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
    return detection_only_boxes(in, boxes, count, c->args[0] / 3, cutout_in_box, c, noise, err);
}

/* ---- The table ------------------------------------------------------------------------------ */

/* Every entry in designated initializers, so that a field's value never depends on its place. */

/* A box's corner or side in pixels that sampling draws: traces show it, policies cannot set it. */
#define DRAWN_PIXELS(arg, text)                                                                    \
    {                                                                                              \
        .name = arg, .kind = OP_ARG_INTEGER, .min = 0, .max = 65535, .def = 0, .unit = "pixels",   \
        .help = text, .drawn = 1                                                                   \
    }

#define FACTOR_ARG(text)                                                                           \
    {                                                                                              \
        .name = "factor", .kind = OP_ARG_NUMBER, .min = 0, .max = 10, .def = 1, .unit = "",        \
        .help = text                                                                               \
    }
static const struct op_arg_desc brightness_args[] = {
    FACTOR_ARG("0 black, 1 unchanged"),
};
static const struct op_arg_desc color_args[] = {
    FACTOR_ARG("saturation: 0 gray, 1 unchanged"),
};
static const struct op_arg_desc contrast_args[] = {
    FACTOR_ARG("0 mean gray, 1 unchanged"),
};
static const struct op_arg_desc sharpness_args[] = {
    FACTOR_ARG("0 smoothed, 1 unchanged"),
};
static const struct op_arg_desc posterize_args[] = {
    {.name = "bits",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 8,
     .def = 8,
     .unit = "bits",
     .help = "bits kept per channel"},
};
static const struct op_arg_desc solarize_args[] = {
    {.name = "threshold",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 256,
     .def = 128,
     .unit = "level",
     .help = "values >= threshold are inverted"},
};
static const struct op_arg_desc solarize_add_args[] = {
    {.name = "addition",
     .kind = OP_ARG_INTEGER,
     .min = -255,
     .max = 255,
     .def = 0,
     .unit = "level",
     .help = "added to values below threshold"},
    {.name = "threshold",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 256,
     .def = 128,
     .unit = "level",
     .help = "values >= threshold are unchanged"},
};
static const struct op_arg_desc rotate_args[] = {
    {.name = "degrees",
     .kind = OP_ARG_NUMBER,
     .min = -360,
     .max = 360,
     .def = 0,
     .unit = "degrees",
     .help = "counter-clockwise, about the centre"},
};
static const struct op_arg_desc shear_args[] = {
    {.name = "factor",
     .kind = OP_ARG_NUMBER,
     .min = -1,
     .max = 1,
     .def = 0,
     .unit = "",
     .help = "shear factor m: x' = x + m y (ShearX)"},
};
static const struct op_arg_desc translate_args[] = {
    {.name = "pixels",
     .kind = OP_ARG_NUMBER,
     .min = -65535,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "truncated toward zero"},
};
static const struct op_arg_desc shift_args[] = {
    {.name = "pixels",
     .kind = OP_ARG_NUMBER,
     .min = -65535,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "positive: right (or down)"},
};
static const struct op_arg_desc size_args[] = {
    {.name = "height",
     .kind = OP_ARG_INTEGER,
     .min = 1,
     .max = 65535,
     .def = 224,
     .unit = "pixels",
     .help = "output height"},
    {.name = "width",
     .kind = OP_ARG_INTEGER,
     .min = 1,
     .max = 65535,
     .def = 224,
     .unit = "pixels",
     .help = "output width"},
};
static const struct op_arg_desc resized_crop_args[] = {
    {.name = "height",
     .kind = OP_ARG_INTEGER,
     .min = 1,
     .max = 65535,
     .def = 224,
     .unit = "pixels",
     .help = "output height"},
    {.name = "width",
     .kind = OP_ARG_INTEGER,
     .min = 1,
     .max = 65535,
     .def = 224,
     .unit = "pixels",
     .help = "output width"},
    {.name = "scale_min",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.08,
     .unit = "",
     .help = "crop area range, as a share of the image"},
    {.name = "scale_max",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 1,
     .unit = "",
     .help = ""},
    {.name = "ratio_min",
     .kind = OP_ARG_NUMBER,
     .min = 0.01,
     .max = 100,
     .def = 3.0 / 4.0,
     .unit = "",
     .help = "crop aspect ratio range, w / h"},
    {.name = "ratio_max",
     .kind = OP_ARG_NUMBER,
     .min = 0.01,
     .max = 100,
     .def = 4.0 / 3.0,
     .unit = "",
     .help = ""},
    DRAWN_PIXELS("top", "drawn"),
    DRAWN_PIXELS("left", "drawn"),
    DRAWN_PIXELS("crop_height", "drawn"),
    DRAWN_PIXELS("crop_width", "drawn"),
};
static const struct op_arg_desc random_crop_args[] = {
    {.name = "height",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "0: the input's"},
    {.name = "width",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "0: the input's"},
    {.name = "padding",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 4096,
     .def = 0,
     .unit = "pixels",
     .help = "added to every side first"},
    {.name = "padding_fraction",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0,
     .unit = "",
     .help = "more padding: int(f * shorter side)"},
    {.name = "mode",
     .kind = OP_ARG_ENUM,
     .min = 0,
     .max = 3,
     .def = 0,
     .choices = pad_modes,
     .unit = "",
     .help = "constant (fill), edge, reflect, symmetric"},
    DRAWN_PIXELS("pad", "drawn: the padding applied"),
    DRAWN_PIXELS("top", "drawn"),
    DRAWN_PIXELS("left", "drawn"),
};
static const char *const erase_modes[] = {"constant", "random", NULL};
static const struct op_arg_desc cutout_args[] = {
    {.name = "size",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "side of the square; 0: size_fraction"},
    {.name = "size_fraction",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.5,
     .unit = "",
     .help = "side as a share of the shorter side"},
    DRAWN_PIXELS("cx", "drawn: the centre"),
    DRAWN_PIXELS("cy", "drawn"),
    DRAWN_PIXELS("side", "drawn: the side used"),
};
static const struct op_arg_desc patch_args[] = {
    {.name = "size",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "side of the patch; 0: size_fraction"},
    {.name = "size_fraction",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.5,
     .unit = "",
     .help = "side as a share of the shorter side"},
    {.name = "sigma",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 10,
     .def = 0.5,
     .unit = "",
     .help = "noise deviation on the [0, 1] scale"},
    DRAWN_PIXELS("cx", "drawn: the centre"),
    DRAWN_PIXELS("cy", "drawn"),
    DRAWN_PIXELS("side", "drawn: the side used"),
};
static const struct op_arg_desc noise_args[] = {
    {.name = "sigma",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 10,
     .def = 0.1,
     .unit = "",
     .help = "noise deviation on the [0, 1] scale"},
};
static const struct op_arg_desc erasing_args[] = {
    {.name = "scale_min",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.02,
     .unit = "",
     .help = "erased area range, share of the image"},
    {.name = "scale_max",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.33,
     .unit = "",
     .help = ""},
    {.name = "ratio_min",
     .kind = OP_ARG_NUMBER,
     .min = 0.01,
     .max = 100,
     .def = 0.3,
     .unit = "",
     .help = "aspect ratio range, h / w"},
    {.name = "ratio_max",
     .kind = OP_ARG_NUMBER,
     .min = 0.01,
     .max = 100,
     .def = 3.3,
     .unit = "",
     .help = ""},
    {.name = "value",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 255,
     .def = 0,
     .unit = "level",
     .help = "the constant"},
    {.name = "mode",
     .kind = OP_ARG_ENUM,
     .min = 0,
     .max = 1,
     .def = 0,
     .choices = erase_modes,
     .unit = "",
     .help = "constant value, or random bytes"},
    DRAWN_PIXELS("top", "drawn"),
    DRAWN_PIXELS("left", "drawn"),
    DRAWN_PIXELS("height", "drawn (0: no box fitted)"),
    DRAWN_PIXELS("width", "drawn"),
};
static const struct op_arg_desc fourier_args[] = {
    {.name = "i",
     .kind = OP_ARG_INTEGER,
     .min = -1,
     .max = 65535,
     .def = -1,
     .unit = "",
     .help = "vertical frequency; -1: drawn by 1 / |k|"},
    {.name = "j",
     .kind = OP_ARG_INTEGER,
     .min = -1,
     .max = 65535,
     .def = -1,
     .unit = "",
     .help = "horizontal frequency; -1: drawn"},
    {.name = "eps",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1000,
     .def = 4,
     .unit = "",
     .help = "L2 norm of the added basis image, [0, 1] scale"},
    {.name = "sign_0",
     .kind = OP_ARG_INTEGER,
     .min = -1,
     .max = 1,
     .def = 1,
     .unit = "",
     .help = "drawn: sign for channel 0",
     .drawn = 1},
    {.name = "sign_1",
     .kind = OP_ARG_INTEGER,
     .min = -1,
     .max = 1,
     .def = 1,
     .unit = "",
     .help = "drawn",
     .drawn = 1},
    {.name = "sign_2",
     .kind = OP_ARG_INTEGER,
     .min = -1,
     .max = 1,
     .def = 1,
     .unit = "",
     .help = "drawn",
     .drawn = 1},
};
static const struct op_arg_desc blur_args[] = {
    {.name = "sigma",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 10,
     .def = 1,
     .unit = "pixels",
     .help = "0: unchanged"},
    {.name = "kernel_size",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 63,
     .def = 0,
     .unit = "pixels",
     .help = "odd; 0: 2 ceil(3 sigma) + 1"},
};
static const struct op_arg_desc pad_args[] = {
    {.name = "left",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 4096,
     .def = 0,
     .unit = "pixels",
     .help = ""},
    {.name = "top",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 4096,
     .def = 0,
     .unit = "pixels",
     .help = ""},
    {.name = "right",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 4096,
     .def = 0,
     .unit = "pixels",
     .help = ""},
    {.name = "bottom",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 4096,
     .def = 0,
     .unit = "pixels",
     .help = ""},
    {.name = "mode",
     .kind = OP_ARG_ENUM,
     .min = 0,
     .max = 3,
     .def = 0,
     .choices = pad_modes,
     .unit = "",
     .help = "constant (fill), edge, reflect, symmetric"},
};

static const struct op_arg_desc gain_args[] = {
    {.name = "db",
     .kind = OP_ARG_NUMBER,
     .min = -60,
     .max = 60,
     .def = 0,
     .unit = "dB",
     .help = "amplitude times 10^(db / 20)"},
};
#define SNR_ARG                                                                                    \
    {                                                                                              \
        .name = "snr_db", .kind = OP_ARG_NUMBER, .min = -20, .max = 100, .def = 20, .unit = "dB",  \
        .help = "signal power over noise power"                                                    \
    }
static const struct op_arg_desc noise_wave_args[] = {
    SNR_ARG,
    {.name = "colour",
     .kind = OP_ARG_ENUM,
     .min = 0,
     .max = 2,
     .def = 0,
     .choices = colours,
     .unit = "",
     .help = "white, pink (1/f) or brown (1/f^2)"},
};
static const struct op_arg_desc noise_clip_args[] = {
    {.name = "clip",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 1023,
     .def = 0,
     .unit = "",
     .help = "index of the request's noise clip"},
    SNR_ARG,
    {.name = "offset",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0,
     .unit = "",
     .help = "drawn: where in the clip it starts (share)",
     .drawn = 1},
};
static const struct op_arg_desc speed_args[] = {
    {.name = "factor",
     .kind = OP_ARG_NUMBER,
     .min = 0.5,
     .max = 2,
     .def = 1,
     .unit = "",
     .help = "above 1: faster and shorter"},
};
static const struct op_arg_desc time_shift_args[] = {
    {.name = "fraction",
     .kind = OP_ARG_NUMBER,
     .min = -1,
     .max = 1,
     .def = 0,
     .unit = "",
     .help = "share of the length; positive: later"},
    {.name = "mode",
     .kind = OP_ARG_ENUM,
     .min = 0,
     .max = 1,
     .def = 0,
     .choices = shift_modes,
     .unit = "",
     .help = "roll around, or fill the gap with zeros"},
};
static const struct op_arg_desc reverb_args[] = {
    {.name = "rt60",
     .kind = OP_ARG_NUMBER,
     .min = 0.05,
     .max = 3,
     .def = 0.3,
     .unit = "s",
     .help = "decay to -60 dB of the synthetic room"},
    {.name = "rir",
     .kind = OP_ARG_INTEGER,
     .min = -1,
     .max = 1023,
     .def = -1,
     .unit = "",
     .help = "index of the request's impulse response; -1: synthetic"},
};
static const struct op_arg_desc clip_args[] = {
    {.name = "fraction",
     .kind = OP_ARG_NUMBER,
     .min = 0.01,
     .max = 1,
     .def = 0.5,
     .unit = "",
     .help = "clip at this share of the peak"},
};
static const struct op_arg_desc lowpass_args[] = {
    {.name = "cutoff_hz",
     .kind = OP_ARG_NUMBER,
     .min = 1,
     .max = 96000,
     .def = 4000,
     .unit = "Hz",
     .help = "below half the sample rate"},
    {.name = "q",
     .kind = OP_ARG_NUMBER,
     .min = 0.1,
     .max = 10,
     .def = 0.707,
     .unit = "",
     .help = "quality factor"},
};
static const struct op_arg_desc highpass_args[] = {
    {.name = "cutoff_hz",
     .kind = OP_ARG_NUMBER,
     .min = 1,
     .max = 96000,
     .def = 300,
     .unit = "Hz",
     .help = "below half the sample rate"},
    {.name = "q",
     .kind = OP_ARG_NUMBER,
     .min = 0.1,
     .max = 10,
     .def = 0.707,
     .unit = "",
     .help = "quality factor"},
};
static const struct op_arg_desc volume_args[] = {
    {.name = "mode",
     .kind = OP_ARG_ENUM,
     .min = 0,
     .max = 1,
     .def = 0,
     .choices = volume_modes,
     .unit = "",
     .help = "normalise the peak or the RMS"},
    {.name = "target_db",
     .kind = OP_ARG_NUMBER,
     .min = -80,
     .max = 0,
     .def = -1,
     .unit = "dBFS",
     .help = "the level it gets"},
};

/* The masks' arguments after their own: how many, their value, then the drawn start and width
 * along the axis, in unit_text. */
#define MASK_COUNT_ARG                                                                             \
    {                                                                                              \
        .name = "count", .kind = OP_ARG_INTEGER, .min = 0, .max = 64, .def = 1, .unit = "",        \
        .help = "masks drawn, each listed in the trace"                                            \
    }
#define MASK_VALUE_ARG                                                                             \
    {                                                                                              \
        .name = "value", .kind = OP_ARG_ENUM, .min = 0, .max = 1, .def = 0,                        \
        .choices = mask_values, .unit = "", .help = "zero, or the spectrogram's mean"              \
    }
#define MASK_START_ARG(unit_text)                                                                  \
    {                                                                                              \
        .name = "start", .kind = OP_ARG_INTEGER, .min = -65535, .max = 65535, .def = 0,            \
        .unit = unit_text, .help = "drawn", .drawn = 1                                             \
    }
#define MASK_WIDTH_ARG(unit_text)                                                                  \
    {                                                                                              \
        .name = "width", .kind = OP_ARG_INTEGER, .min = 0, .max = 65535, .def = 0,                 \
        .unit = unit_text, .help = "drawn", .drawn = 1                                             \
    }
static const struct op_arg_desc frequency_mask_args[] = {
    {.name = "F",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 1000,
     .def = 27,
     .unit = "bins",
     .help = "widest mask"},
    MASK_COUNT_ARG,
    MASK_VALUE_ARG,
    MASK_START_ARG("bins"),
    MASK_WIDTH_ARG("bins"),
};
static const struct op_arg_desc time_mask_args[] = {
    {.name = "T",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 100000,
     .def = 100,
     .unit = "frames",
     .help = "widest mask"},
    {.name = "p",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 1,
     .unit = "",
     .help = "the mask is at most p * frames wide"},
    MASK_COUNT_ARG,
    MASK_VALUE_ARG,
    MASK_START_ARG("frames"),
    MASK_WIDTH_ARG("frames"),
};
static const struct op_arg_desc adaptive_mask_args[] = {
    {.name = "ratio_m",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.04,
     .unit = "",
     .help = "masks per frame (multiplicity ratio)"},
    {.name = "ratio_s",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.04,
     .unit = "",
     .help = "widest mask, share of the frames"},
    {.name = "max_count",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 64,
     .def = 20,
     .unit = "",
     .help = "at most this many masks"},
    MASK_VALUE_ARG,
    MASK_START_ARG("frames"),
    MASK_WIDTH_ARG("frames"),
};
static const struct op_arg_desc time_warp_args[] = {
    {.name = "W",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 1000,
     .def = 80,
     .unit = "frames",
     .help = "the warp point moves at most W frames"},
    {.name = "centre",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 1000000,
     .def = 0,
     .unit = "frames",
     .help = "drawn: the point (0: no warp)",
     .drawn = 1},
    {.name = "warped",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 1000000,
     .def = 0,
     .unit = "frames",
     .help = "drawn: where it goes",
     .drawn = 1},
};

/* The detection ops' arguments; *_Only_BBoxes ops take the table's prob first. */
#define PROB_ARG                                                                                   \
    {                                                                                              \
        .name = "prob", .kind = OP_ARG_NUMBER, .min = 0, .max = 1, .def = 1, .unit = "",           \
        .help = "each box is augmented with probability prob / 3"                                  \
    }
static const struct op_arg_desc det_translate_args[] = {
    {.name = "pixels",
     .kind = OP_ARG_NUMBER,
     .min = -65535,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "truncated; the content moves by -pixels, as in the reference"},
};
static const struct op_arg_desc bbox_cutout_args[] = {
    {.name = "pad_fraction",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 1,
     .def = 0.5,
     .unit = "",
     .help = "the cutout's sides, as a share of the "
             "box's"},
};
static const struct op_arg_desc only_prob_args[] = {
    PROB_ARG,
};
static const struct op_arg_desc only_rotate_args[] = {
    PROB_ARG,
    {.name = "degrees",
     .kind = OP_ARG_NUMBER,
     .min = -360,
     .max = 360,
     .def = 0,
     .unit = "degrees",
     .help = "counter-clockwise"},
};
static const struct op_arg_desc only_shear_args[] = {
    PROB_ARG,
    {.name = "factor",
     .kind = OP_ARG_NUMBER,
     .min = -1,
     .max = 1,
     .def = 0,
     .unit = "",
     .help = "shear factor"},
};
static const struct op_arg_desc only_translate_args[] = {
    PROB_ARG,
    {.name = "pixels",
     .kind = OP_ARG_NUMBER,
     .min = -65535,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "the content moves by "
             "-pixels"},
};
static const struct op_arg_desc only_solarize_args[] = {
    PROB_ARG,
    {.name = "threshold",
     .kind = OP_ARG_NUMBER,
     .min = 0,
     .max = 256,
     .def = 128,
     .unit = "level",
     .help = "values >= it invert"},
};
static const struct op_arg_desc only_cutout_args[] = {
    PROB_ARG,
    {.name = "pad_size",
     .kind = OP_ARG_INTEGER,
     .min = 0,
     .max = 65535,
     .def = 0,
     .unit = "pixels",
     .help = "half the square's side"},
};

#define ENHANCE_LEVEL                                                                              \
    {                                                                                              \
        .map = LEVEL_ONE_PLUS, .lo = 0, .hi = 0.9, .signed_by_default = 1                          \
    }

static const struct op_desc ops[] = {
    {.name = "Identity", .help = "the image unchanged", .apply = apply_identity},
    {.name = "AutoContrast",
     .help = "stretch each channel to the full range",
     .takes = OP_COLOR,
     .apply = apply_autocontrast},
    {.name = "Equalize",
     .help = "equalize each channel's histogram",
     .takes = OP_COLOR,
     .apply = apply_equalize},
    {.name = "Invert", .help = "255 - value", .takes = OP_COLOR, .apply = apply_invert},
    {.name = "Grayscale",
     .help = "ITU-R 601-2 luma, kept as 3 channels",
     .takes = OP_COLOR,
     .apply = apply_grayscale},
    {.name = "Posterize",
     .help = "keep the top bits of each value",
     .takes = OP_COLOR,
     ARGS(posterize_args),
     .level = {.map = LEVEL_BITS_REMOVED, .lo = 0, .hi = 4},
     .apply = apply_posterize},
    {.name = "Solarize",
     .help = "invert values at or above a threshold",
     .takes = OP_COLOR,
     ARGS(solarize_args),
     .level = {.map = LEVEL_VALUE, .lo = 255, .hi = 0},
     .apply = apply_solarize},
    {.name = "SolarizeAdd",
     .help = "add to values below a threshold, clipped (AutoAugment's TF reference)",
     .takes = OP_COLOR,
     ARGS(solarize_add_args),
     .level = {.map = LEVEL_TRUNCATE, .lo = 0, .hi = 110},
     .apply = apply_solarize_add},
    {.name = "Brightness",
     .help = "blend with black",
     .takes = OP_COLOR,
     ARGS(brightness_args),
     .level = ENHANCE_LEVEL,
     .apply = apply_brightness},
    {.name = "Color",
     .help = "blend with the grayscale image",
     .takes = OP_COLOR,
     ARGS(color_args),
     .level = ENHANCE_LEVEL,
     .apply = apply_color},
    {.name = "Contrast",
     .help = "blend with the mean gray",
     .takes = OP_COLOR,
     ARGS(contrast_args),
     .level = ENHANCE_LEVEL,
     .apply = apply_contrast},
    {.name = "Sharpness",
     .help = "blend with PIL's SMOOTH filter",
     .takes = OP_COLOR,
     ARGS(sharpness_args),
     .level = ENHANCE_LEVEL,
     .apply = apply_sharpness},
    {.name = "Rotate",
     .help = "rotate about the centre, same size",
     .takes = OP_GEOMETRIC,
     ARGS(rotate_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 30, .signed_by_default = 1},
     .apply = apply_rotate,
     .map_targets = map_rotate},
    {.name = "ShearX",
     .help = "horizontal shear about the top-left corner",
     .takes = OP_GEOMETRIC,
     ARGS(shear_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.3, .signed_by_default = 1},
     .apply = apply_shear_x,
     .map_targets = map_shear_x},
    {.name = "ShearY",
     .help = "vertical shear about the top-left corner",
     .takes = OP_GEOMETRIC,
     ARGS(shear_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.3, .signed_by_default = 1},
     .apply = apply_shear_y,
     .map_targets = map_shear_y},
    {.name = "TranslateX",
     .help = "horizontal shift; level range 0 to 150/331 of the width",
     .takes = OP_GEOMETRIC,
     ARGS(translate_args),
     .level = {.map = LEVEL_TRUNCATE,
               .scale = SCALE_WIDTH,
               .lo = 0,
               .hi = 150.0 / 331.0,
               .signed_by_default = 1},
     .apply = apply_translate_x,
     .map_targets = map_translate_x},
    {.name = "TranslateY",
     .help = "vertical shift; level range 0 to 150/331 of the height",
     .takes = OP_GEOMETRIC,
     ARGS(translate_args),
     .level = {.map = LEVEL_TRUNCATE,
               .scale = SCALE_HEIGHT,
               .lo = 0,
               .hi = 150.0 / 331.0,
               .signed_by_default = 1},
     .apply = apply_translate_y,
     .map_targets = map_translate_y},
    {.name = "TranslateXRel",
     .help = "fractional horizontal shift (timm's); level range 0 to 0.45 of the width",
     .takes = OP_GEOMETRIC,
     ARGS(shift_args),
     .level =
         {.map = LEVEL_VALUE, .scale = SCALE_WIDTH, .lo = 0, .hi = 0.45, .signed_by_default = 1},
     .apply = apply_translate_x_rel,
     .map_targets = map_shift_x},
    {.name = "TranslateYRel",
     .help = "fractional vertical shift (timm's); level range 0 to 0.45 of the height",
     .takes = OP_GEOMETRIC,
     ARGS(shift_args),
     .level =
         {.map = LEVEL_VALUE, .scale = SCALE_HEIGHT, .lo = 0, .hi = 0.45, .signed_by_default = 1},
     .apply = apply_translate_y_rel,
     .map_targets = map_shift_y},
    {.name = "FlipLR",
     .help = "mirror left-right",
     .apply = apply_flip_lr,
     .map_targets = map_flip_lr},
    {.name = "FlipUD",
     .help = "mirror top-bottom",
     .apply = apply_flip_ud,
     .map_targets = map_flip_ud},
    {.name = "CenterCrop",
     .help = "the centre height x width, zero-padded when larger",
     ARGS(size_args),
     .apply = apply_center_crop,
     .output_size = size_from_args,
     .map_targets = map_center_crop},
    {.name = "Resize",
     .help = "resize to height x width (PIL's antialiased filters)",
     .takes = OP_TAKES_INTERPOLATION,
     ARGS(size_args),
     .apply = apply_resize,
     .output_size = size_from_args,
     .map_targets = map_resize},
    {.name = "Pad",
     .help = "pad each side",
     .takes = OP_TAKES_FILL,
     ARGS(pad_args),
     .apply = apply_pad,
     .output_size = padded_size,
     .map_targets = map_pad},
    {.name = "RandomResizedCrop",
     .help = "torchvision's: a random box by area share and aspect ratio, resized",
     .takes = OP_TAKES_INTERPOLATION,
     ARGS(resized_crop_args),
     .apply = apply_resized_crop,
     .draw = draw_resized_crop,
     .output_size = size_from_args,
     .map_targets = map_resized_crop},
    {.name = "Cutout",
     .help = "a square of fill at a random centre (DeVries and Taylor 2017)",
     .takes = OP_TAKES_FILL,
     ARGS(cutout_args),
     .apply = apply_cutout,
     .draw = draw_cutout},
    {.name = "RandomErasing",
     .help = "torchvision's: a random box by area share and aspect ratio, erased",
     ARGS(erasing_args),
     .apply = apply_erasing,
     .draw = draw_erasing},
    {.name = "GaussianNoise",
     .help = "N(0, sigma^2) on the [0, 1] image, clipped",
     ARGS(noise_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.1},
     .apply = apply_gaussian_noise},
    {.name = "PatchGaussian",
     .help = "Gaussian noise inside a square at a random centre (Lopes et al. 2019)",
     ARGS(patch_args),
     .apply = apply_patch_gaussian,
     .draw = draw_patch},
    {.name = "FourierNoise",
     .help = "a Fourier basis image of norm eps, random sign per channel (Yin et al. 2019)",
     ARGS(fourier_args),
     .level = {.arg = 2, .map = LEVEL_VALUE, .lo = 0, .hi = 8},
     .apply = apply_fourier,
     .draw = draw_fourier},
    {.name = "GaussianBlur",
     .help = "torchvision's F.gaussian_blur",
     ARGS(blur_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 2},
     .apply = apply_blur},
    {.name = "RandomCrop",
     .help = "pad, then crop a random box (FixMatch's weak translate)",
     .takes = OP_TAKES_FILL,
     ARGS(random_crop_args),
     .apply = apply_random_crop,
     .draw = draw_random_crop,
     .output_size = size_from_args,
     .map_targets = map_random_crop},
    /* Detection (Zoph et al. 2019): levels as the reference's level/10 * max, fill its gray. */
    {.name = "Rotate_BBox",
     .help = "Rotate with boxes, fill 128 (detection AutoAugment)",
     .takes = OP_GEOMETRIC,
     ARGS(rotate_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 30, .signed_by_default = 1},
     .apply = apply_rotate_bbox,
     .map_targets = map_rotate},
    {.name = "ShearX_BBox",
     .help = "ShearX with boxes, fill 128",
     .takes = OP_GEOMETRIC,
     ARGS(shear_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.3, .signed_by_default = 1},
     .apply = apply_shear_x_bbox,
     .map_targets = map_shear_x},
    {.name = "ShearY_BBox",
     .help = "ShearY with boxes, fill 128",
     .takes = OP_GEOMETRIC,
     ARGS(shear_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.3, .signed_by_default = 1},
     .apply = apply_shear_y_bbox,
     .map_targets = map_shear_y},
    {.name = "TranslateX_BBox",
     .help = "horizontal shift by -pixels with boxes, fill 128; level range 0 to 250 pixels",
     .takes = OP_GEOMETRIC,
     ARGS(det_translate_args),
     .level = {.map = LEVEL_TRUNCATE, .lo = 0, .hi = 250, .signed_by_default = 1},
     .apply = apply_translate_x_bbox,
     .map_targets = map_translate_x_bbox},
    {.name = "TranslateY_BBox",
     .help = "vertical shift by -pixels with boxes, fill 128; level range 0 to 250 pixels",
     .takes = OP_GEOMETRIC,
     ARGS(det_translate_args),
     .level = {.map = LEVEL_TRUNCATE, .lo = 0, .hi = 250, .signed_by_default = 1},
     .apply = apply_translate_y_bbox,
     .map_targets = map_translate_y_bbox},
    {.name = "BBox_Cutout",
     .help = "a cutout of pad_fraction of a random box's size, centred in it, fill 128",
     .takes = OP_TAKES_FILL,
     ARGS(bbox_cutout_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.75},
     .apply = apply_without_boxes,
     .apply_boxes = apply_bbox_cutout},
    {.name = "Rotate_Only_BBoxes",
     .help = "Rotate_BBox inside each box with probability prob / 3; boxes unchanged",
     .takes = OP_GEOMETRIC,
     ARGS(only_rotate_args),
     .level = {.arg = 1, .map = LEVEL_VALUE, .lo = 0, .hi = 30, .signed_by_default = 1},
     .apply = apply_without_boxes,
     .apply_boxes = apply_rotate_only},
    {.name = "ShearX_Only_BBoxes",
     .help = "ShearX_BBox inside each box with probability prob / 3",
     .takes = OP_GEOMETRIC,
     ARGS(only_shear_args),
     .level = {.arg = 1, .map = LEVEL_VALUE, .lo = 0, .hi = 0.3, .signed_by_default = 1},
     .apply = apply_without_boxes,
     .apply_boxes = apply_shear_x_only},
    {.name = "ShearY_Only_BBoxes",
     .help = "ShearY_BBox inside each box with probability prob / 3",
     .takes = OP_GEOMETRIC,
     ARGS(only_shear_args),
     .level = {.arg = 1, .map = LEVEL_VALUE, .lo = 0, .hi = 0.3, .signed_by_default = 1},
     .apply = apply_without_boxes,
     .apply_boxes = apply_shear_y_only},
    {.name = "TranslateX_Only_BBoxes",
     .help =
         "TranslateX_BBox inside each box with probability prob / 3; level range 0 to 120 pixels",
     .takes = OP_GEOMETRIC,
     ARGS(only_translate_args),
     .level = {.arg = 1, .map = LEVEL_TRUNCATE, .lo = 0, .hi = 120, .signed_by_default = 1},
     .apply = apply_without_boxes,
     .apply_boxes = apply_translate_x_only},
    {.name = "TranslateY_Only_BBoxes",
     .help =
         "TranslateY_BBox inside each box with probability prob / 3; level range 0 to 120 pixels",
     .takes = OP_GEOMETRIC,
     ARGS(only_translate_args),
     .level = {.arg = 1, .map = LEVEL_TRUNCATE, .lo = 0, .hi = 120, .signed_by_default = 1},
     .apply = apply_without_boxes,
     .apply_boxes = apply_translate_y_only},
    {.name = "Flip_Only_BBoxes",
     .help = "FlipLR inside each box with probability prob / 3",
     ARGS(only_prob_args),
     .apply = apply_without_boxes,
     .apply_boxes = apply_flip_only},
    {.name = "Solarize_Only_BBoxes",
     .help = "Solarize inside each box with probability prob / 3",
     ARGS(only_solarize_args),
     .level = {.arg = 1, .map = LEVEL_TRUNCATE, .lo = 0, .hi = 256},
     .apply = apply_without_boxes,
     .apply_boxes = apply_solarize_only},
    {.name = "Equalize_Only_BBoxes",
     .help = "Equalize inside each box with probability prob / 3",
     ARGS(only_prob_args),
     .apply = apply_without_boxes,
     .apply_boxes = apply_equalize_only},
    {.name = "Cutout_Only_BBoxes",
     .help = "a square of side 2 pad_size at a random centre inside each box, with probability "
             "prob / 3",
     .takes = OP_TAKES_FILL,
     ARGS(only_cutout_args),
     .level = {.arg = 1, .map = LEVEL_TRUNCATE, .lo = 0, .hi = 50},
     .apply = apply_without_boxes,
     .apply_boxes = apply_cutout_only},
    /* Audio: waveform ops, then spectrogram ops. */
    {.name = "Gain",
     .help = "multiply the waveform by 10^(db / 20)",
     ARGS(gain_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 12, .signed_by_default = 1},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_gain},
    {.name = "Noise",
     .help = "white, pink or brown noise at an exact SNR",
     ARGS(noise_wave_args),
     .level = {.map = LEVEL_VALUE, .lo = 40, .hi = 0},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_noise},
    {.name = "NoiseClip",
     .help = "one of the request's noise clips, looped from a random point, at an exact SNR",
     ARGS(noise_clip_args),
     .level = {.arg = 1, .map = LEVEL_VALUE, .lo = 40, .hi = 0},
     .draw = draw_clip_offset,
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_noise_clip},
    {.name = "Speed",
     .help = "speed perturbation by resampling with libsoxr (band-limited): length / factor, pitch "
             "moves",
     ARGS(speed_args),
     .level = {.map = LEVEL_ONE_PLUS, .lo = 0, .hi = 0.1, .signed_by_default = 1},
     .output_size = speed_size,
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_speed},
    {.name = "TimeShift",
     .help = "shift in time by a share of the length, rolled or zero-filled",
     ARGS(time_shift_args),
     .level = {.map = LEVEL_VALUE, .lo = 0, .hi = 0.5, .signed_by_default = 1},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_time_shift},
    {.name = "Reverb",
     .help = "convolution with a synthetic exponential-decay room response or the request's own",
     ARGS(reverb_args),
     .level = {.map = LEVEL_VALUE, .lo = 0.1, .hi = 1},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_reverb},
    {.name = "Clip",
     .help = "hard clipping distortion at a share of the peak",
     ARGS(clip_args),
     .level = {.map = LEVEL_VALUE, .lo = 1, .hi = 0.2},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_clip},
    {.name = "LowPass",
     .help = "torchaudio's lowpass_biquad, output clamped to [-1, 1]",
     ARGS(lowpass_args),
     .level = {.map = LEVEL_VALUE, .lo = 8000, .hi = 1000},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_lowpass},
    {.name = "HighPass",
     .help = "torchaudio's highpass_biquad, output clamped to [-1, 1]",
     ARGS(highpass_args),
     .level = {.map = LEVEL_VALUE, .lo = 50, .hi = 1000},
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_highpass},
    {.name = "Volume",
     .help = "normalise the peak or the RMS to a level in dBFS",
     ARGS(volume_args),
     .domain = OP_DOMAIN_WAVEFORM,
     .apply_wave = apply_volume},
    {.name = "FrequencyMask",
     .help = "SpecAugment's frequency masks, drawn as torchaudio's mask_along_axis",
     ARGS(frequency_mask_args),
     .level = {.map = LEVEL_TRUNCATE, .scale = SCALE_HEIGHT, .lo = 0, .hi = 27.0 / 80.0},
     .draw = draw_frequency_mask,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .count = count_frequency_masks,
     .apply_spec = apply_frequency_mask},
    {.name = "TimeMask",
     .help = "SpecAugment's time masks, drawn as torchaudio's mask_along_axis",
     ARGS(time_mask_args),
     .level = {.map = LEVEL_TRUNCATE, .scale = SCALE_WIDTH, .lo = 0, .hi = 0.2},
     .draw = draw_time_mask,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .count = count_time_masks,
     .apply_spec = apply_time_mask},
    {.name = "AdaptiveTimeMask",
     .help = "time masks whose count and width scale with the frames (Park et al. 2020)",
     ARGS(adaptive_mask_args),
     .level = {.arg = 1, .map = LEVEL_VALUE, .lo = 0, .hi = 0.1},
     .draw = draw_adaptive_mask,
     .domain = OP_DOMAIN_SPECTROGRAM,
     .count = count_adaptive_masks,
     .apply_spec = apply_time_mask},
    {.name = "TimeWarp",
     .help = "SpecAugment's time warp, as ESPnet's time_warp with linear interpolation",
     ARGS(time_warp_args),
     .level = {.map = LEVEL_TRUNCATE, .lo = 0, .hi = 80},
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
