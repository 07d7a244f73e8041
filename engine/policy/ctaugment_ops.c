/* CTAugment's 19 ops on pixels, each libml/ctaugment.py's function of its levels with Pillow
 * 9.4's arithmetic (policy.h's CTAugment section has the table), over the engine's Pillow-exact
 * image ops; and ctaug_apply, which runs a policy. */
#include <math.h>
#include <string.h>

#include "image/color.h"
#include "image/filter.h"
#include "image/geometry.h"
#include "policy/internal.h"

/* The reference names x.size's (width, height) (img_height, img_width), but uses both
 * consistently: the centre's x is uniform over the width, its y over the height, and the square
 * spans [centre - size // 2, centre + size // 2) on each axis, clipped. */
static struct img *cutout(const struct img *in, const double *v, struct rng *r,
                          struct eng_error *err)
{
    const int short_side = in->width < in->height ? in->width : in->height;
    const int half = (1 + (int)(v[0] * short_side * 0.499)) / 2;
    const int cx = (int)rng_below(r, (uint32_t)in->width);
    const int cy = (int)rng_below(r, (uint32_t)in->height);
    const int x0 = cx - half < 0 ? 0 : cx - half, y0 = cy - half < 0 ? 0 : cy - half;
    const int x1 = cx + half > in->width ? in->width : cx + half;
    const int y1 = cy + half > in->height ? in->height : cy + half;
    struct img *out = img_clone(in, err);
    for (int y = y0; out && y < y1; y++)
        memset(img_row(out, y) + (size_t)x0 * 3, 127, (size_t)(x1 - x0) * 3);
    return out;
}

static struct img *identity(const struct img *in, const double *v, struct rng *r,
                            struct eng_error *err)
{
    (void)v, (void)r;
    return img_clone(in, err);
}

static struct img *posterize(const struct img *in, const double *v, struct rng *r,
                             struct eng_error *err)
{
    (void)r;
    return img_posterize(in, 1 + (int)(v[0] * 7.999), err);
}

/* x.crop(box).resize(x.size, method): crop rounds the box's corners half to even (Python's
 * round; rint in the default rounding mode), and scale < 0.25 keeps them inside the image. */
static struct img *rescale(const struct img *in, const double *v, struct rng *r,
                           struct eng_error *err)
{
    (void)r;
    static const enum img_filter methods[6] = {IMG_FILTER_LANCZOS,  IMG_FILTER_BICUBIC,
                                               IMG_FILTER_BILINEAR, IMG_FILTER_BOX,
                                               IMG_FILTER_HAMMING,  IMG_FILTER_NEAREST};
    const double scale = v[0] * 0.25, w = in->width, h = in->height;
    const int x0 = (int)rint(scale * w), y0 = (int)rint(scale * h);
    const int x1 = (int)rint(w * (1 - scale)), y1 = (int)rint(h * (1 - scale));
    struct img *crop = img_crop(in, y0, x0, y1 - y0, x1 - x0, err);
    if (!crop) return NULL;
    struct img *out =
        img_resize_filter(crop, in->height, in->width, methods[(int)(v[1] * 5.99)], err);
    img_free(crop);
    return out;
}

/* np.round rounds half to even, as rint. */
static struct img *rotate(const struct img *in, const double *v, struct rng *r,
                          struct eng_error *err)
{
    (void)r;
    return img_rotate(in, (int)rint((2 * v[0] - 1) * 45), IMG_NEAREST, NULL, false, err);
}

static struct img *solarize(const struct img *in, const double *v, struct rng *r,
                            struct eng_error *err)
{
    (void)r;
    return img_solarize(in, (int)(v[0] * 255.999), err);
}

#define BLEND(n, f)                                                                                \
    {                                                                                              \
        .name = n, .args = 1, .bins = {17}, .kind = CTAUG_BLEND, .whole = f                        \
    }
#define ENHANCE(n, f)                                                                              \
    {                                                                                              \
        .name = n, .args = 1, .bins = {17}, .kind = CTAUG_ENHANCE, .factor = f                     \
    }
#define AFFINE(n, k)                                                                               \
    {                                                                                              \
        .name = n, .args = 1, .bins = {17}, .kind = CTAUG_AFFINE, .coefficient = k                 \
    }
#define OWN(n, a, b0, b1, f)                                                                       \
    {                                                                                              \
        .name = n, .args = a, .bins = {b0, b1}, .kind = CTAUG_OWN, .own = f                        \
    }

/* The reference registers its ops in this order, which its OPS dict keeps. The affine
 * coefficients: 1 shears x, 3 shears y, 2 and 5 translate, which for the reference's at most
 * 0.3 px is no move at all (its quirk). FixMatch's strong view appends ("cutout", [1]). */
#define CUTOUT 5
const struct ctaug_desc CTAUG_TABLE[CTAUG_OPS] = {
    BLEND("autocontrast", img_autocontrast),
    BLEND("blur", img_filter_blur),
    ENHANCE("brightness", img_brightness),
    ENHANCE("color", img_color),
    ENHANCE("contrast", img_contrast),
    OWN("cutout", 1, 17, 0, cutout),
    BLEND("equalize", img_equalize),
    BLEND("invert", img_invert),
    OWN("identity", 0, 0, 0, identity),
    OWN("posterize", 1, 8, 0, posterize),
    OWN("rescale", 2, 17, 6, rescale),
    OWN("rotate", 1, 17, 0, rotate),
    ENHANCE("sharpness", img_sharpness),
    AFFINE("shear_x", 1),
    AFFINE("shear_y", 3),
    BLEND("smooth", img_filter_smooth),
    OWN("solarize", 1, 17, 0, solarize),
    AFFINE("translate_x", 2),
    AFFINE("translate_y", 5),
};

static struct img *apply_op(const struct ctaug_op *o, const struct img *in, struct rng *r,
                            struct eng_error *err)
{
    const struct ctaug_desc *d = &CTAUG_TABLE[o->op];
    const double l = o->value[0];
    switch (d->kind) {
    case CTAUG_BLEND: {
        struct img *whole = d->whole(in, err);
        if (!whole) return NULL;
        struct img *out = img_blend(in, whole, l, err);
        img_free(whole);
        return out;
    }
    case CTAUG_ENHANCE:
        return d->factor(in, 0.1 + 1.9 * l, err);
    case CTAUG_AFFINE: {
        double a[6] = {1, 0, 0, 0, 1, 0};
        a[d->coefficient] = (2 * l - 1) * 0.3;
        return img_transform(in, a, IMG_NEAREST, NULL, false, err);
    }
    default:
        return d->own(in, o->value, r, err);
    }
}

struct img *ctaug_apply(const struct ctaug_policy *policy, const struct img *in, int cutout_after,
                        uint64_t seed, uint32_t input, uint32_t sample, struct eng_error *err)
{
    if (ctaug_check_policy(policy, err)) return NULL;
    if (!in || !in->data || in->width < 1 || in->height < 1 ||
        in->stride < (size_t)in->width * (size_t)in->channels)
        return eng_fail(err, ENG_INVALID, "ctaugment: malformed image"), NULL;
    if (in->channels != 3)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "ctaugment: a %d-channel image; CTAugment works on RGB, as the reference",
                        in->channels),
               NULL;
    static const struct ctaug_op strong_cutout = {.op = CUTOUT, .value = {1.0}};
    struct img *cur = img_clone(in, err);
    for (int i = 0; cur && i < policy->count + (cutout_after != 0); i++) {
        struct rng r;
        rng_init(&r, seed, input, sample, RNG_STREAM_OP(i));
        struct img *next =
            apply_op(i < policy->count ? &policy->ops[i] : &strong_cutout, cur, &r, err);
        img_free(cur);
        cur = next;
    }
    return cur;
}
