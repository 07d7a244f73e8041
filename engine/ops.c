/* The image op registry. Argument ranges bound what a policy may ask for; level ranges are the
 * ones torchvision's RandAugment and AutoAugment use, so {"level": {"bin": m, "bins": 31}} is
 * exactly RandAugment's magnitude m. */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "ops_color.h"
#include "ops_geometry.h"
#include "ops_noise.h"

static const char *const pad_modes[] = {"constant", "edge", "reflect", "symmetric", NULL};

#define NO_ARGS NULL, 0
#define ARGS(a) a, (int)(sizeof a / sizeof a[0])
#define NO_LEVEL                                                                                   \
    {                                                                                              \
        0, LEVEL_NONE, SCALE_ABSOLUTE, 0, 0, 0                                                     \
    }

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
     apply_rotate},
    {"ShearX",
     "horizontal shear about the top-left corner",
     OP_GEOMETRIC,
     ARGS(shear_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_shear_x},
    {"ShearY",
     "vertical shear about the top-left corner",
     OP_GEOMETRIC,
     ARGS(shear_args),
     {0, LEVEL_VALUE, SCALE_ABSOLUTE, 0, 0.3, 1},
     apply_shear_y},
    {"TranslateX",
     "horizontal shift; level range 0 to 150/331 of the width",
     OP_GEOMETRIC,
     ARGS(translate_args),
     {0, LEVEL_TRUNCATE, SCALE_WIDTH, 0, 150.0 / 331.0, 1},
     apply_translate_x},
    {"TranslateY",
     "vertical shift; level range 0 to 150/331 of the height",
     OP_GEOMETRIC,
     ARGS(translate_args),
     {0, LEVEL_TRUNCATE, SCALE_HEIGHT, 0, 150.0 / 331.0, 1},
     apply_translate_y},
    {"TranslateXRel",
     "fractional horizontal shift (timm's); level range 0 to 0.45 of the width",
     OP_GEOMETRIC,
     ARGS(shift_args),
     {0, LEVEL_VALUE, SCALE_WIDTH, 0, 0.45, 1},
     apply_translate_x_rel},
    {"TranslateYRel",
     "fractional vertical shift (timm's); level range 0 to 0.45 of the height",
     OP_GEOMETRIC,
     ARGS(shift_args),
     {0, LEVEL_VALUE, SCALE_HEIGHT, 0, 0.45, 1},
     apply_translate_y_rel},
    {"FlipLR", "mirror left-right", 0, NO_ARGS, NO_LEVEL, apply_flip_lr},
    {"FlipUD", "mirror top-bottom", 0, NO_ARGS, NO_LEVEL, apply_flip_ud},
    {"CenterCrop", "the centre height x width, zero-padded when larger", 0, ARGS(size_args),
     NO_LEVEL, apply_center_crop, NULL, size_from_args},
    {"Resize", "resize to height x width (PIL's antialiased filters)", OP_TAKES_INTERPOLATION,
     ARGS(size_args), NO_LEVEL, apply_resize, NULL, size_from_args},
    {"Pad", "pad each side", OP_TAKES_FILL, ARGS(pad_args), NO_LEVEL, apply_pad, NULL, padded_size},
    {"RandomResizedCrop", "torchvision's: a random box by area share and aspect ratio, resized",
     OP_TAKES_INTERPOLATION, ARGS(resized_crop_args), NO_LEVEL, apply_resized_crop,
     draw_resized_crop, size_from_args},
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
     ARGS(random_crop_args), NO_LEVEL, apply_random_crop, draw_random_crop, size_from_args},
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

struct img *op_apply(const struct op_call *call, const struct img *in, struct rng *noise,
                     struct eng_error *err)
{
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
