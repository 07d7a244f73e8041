/* The image op registry. Argument ranges bound what a policy may ask for; level ranges are the
 * ones torchvision's RandAugment and AutoAugment use, so {"level": {"bin": m, "bins": 31}} is
 * exactly RandAugment's magnitude m. */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "ops_color.h"
#include "ops_geometry.h"

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
static const struct op_arg_desc size_args[] = {
    {"height", OP_ARG_INTEGER, 1, 65535, 224, NULL, "pixels", "output height"},
    {"width", OP_ARG_INTEGER, 1, 65535, 224, NULL, "pixels", "output width"}};
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
    {"FlipLR", "mirror left-right", 0, NO_ARGS, NO_LEVEL, apply_flip_lr},
    {"FlipUD", "mirror top-bottom", 0, NO_ARGS, NO_LEVEL, apply_flip_ud},
    {"CenterCrop", "the centre height x width, zero-padded when larger", 0, ARGS(size_args),
     NO_LEVEL, apply_center_crop},
    {"Resize", "resize to height x width (PIL's antialiased filters)", OP_TAKES_INTERPOLATION,
     ARGS(size_args), NO_LEVEL, apply_resize},
    {"Pad", "pad each side", OP_TAKES_FILL, ARGS(pad_args), NO_LEVEL, apply_pad},
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
