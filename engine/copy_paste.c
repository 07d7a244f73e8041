/* Simple Copy-Paste; see copy_paste.h for the steps and where they differ from the reference. */
#include "copy_paste.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ops_geometry.h"
#include "ops_noise.h"

/* Larger sigmas blur the alpha past anything useful and cost kernel_size^2 per pixel. */
#define MAX_BLEND_SIGMA 50.0

static int check_params(const struct copy_paste_params *p, struct eng_error *err)
{
    if (!isfinite(p->scale_lo) || !isfinite(p->scale_hi) || !(p->scale_lo > 0) ||
        p->scale_lo > p->scale_hi || p->scale_hi > 100)
        return eng_fail(err, ENG_INVALID,
                        "jitter: [%g, %g] is not a scale range with 0 < lo <= hi <= 100",
                        p->scale_lo, p->scale_hi);
    if (!(p->hflip_prob >= 0 && p->hflip_prob <= 1))
        return eng_fail(err, ENG_INVALID, "flip_p: %g is not a probability in [0, 1]",
                        p->hflip_prob);
    if (!(p->blend_sigma >= 0 && p->blend_sigma <= MAX_BLEND_SIGMA))
        return eng_fail(err, ENG_INVALID, "blend_sigma: %g is not in [0, %g]", p->blend_sigma,
                        MAX_BLEND_SIGMA);
    if (p->min_area < 0)
        return eng_fail(err, ENG_INVALID, "min_area: %ld is negative", p->min_area);
    if (p->out_width < 0 || p->out_height < 0)
        return eng_fail(err, ENG_INVALID, "output size %dx%d is negative", p->out_width,
                        p->out_height);
    return 0;
}

/* Both images' targets belong to them and carry a mask per object. */
static int check_input(const char *which, const struct img *im, const struct targets *t,
                       struct eng_error *err)
{
    if (t->width != im->width || t->height != im->height)
        return eng_fail(err, ENG_INVALID, "%s: targets for %dx%d, the image is %dx%d", which,
                        t->width, t->height, im->width, im->height);
    if (t->count > 0 && !t->masks)
        return eng_fail(err, ENG_INVALID, "%s: copy-paste needs a mask per object", which);
    return 0;
}

/* A copy of in with `channels` channels (>= in's): grey is repeated, alpha added opaque. */
static struct img *with_channels(const struct img *in, int channels, struct eng_error *err)
{
    if (in->channels == channels) return img_clone(in, err);
    struct img *out = img_new(in->width, in->height, channels, err);
    if (!out) return NULL;
    for (int y = 0; y < in->height; y++) {
        const uint8_t *s = img_row(in, y);
        uint8_t *d = img_row(out, y);
        for (int x = 0; x < in->width; x++, s += in->channels, d += channels) {
            const bool grey = in->channels == 1;
            d[0] = s[0];
            d[1] = grey ? s[0] : s[1];
            d[2] = grey ? s[0] : s[2];
            if (channels == 4) d[3] = 255;
        }
    }
    return out;
}

/* The draws of one image's jittering, in the reference's order: scale, crop offset, flip. */
static void draw_jitter(const struct copy_paste_params *p, int width, int height, int out_w,
                        int out_h, struct rng *rng, struct copy_paste_jitter *j)
{
    j->scale = p->scale_lo + (p->scale_hi - p->scale_lo) * rng_uniform(rng);
    const double r = fmin((double)out_h / height, (double)out_w / width) * j->scale;
    j->width = (int)(width * r);
    j->height = (int)(height * r);
    if (j->width < 1) j->width = 1;
    if (j->height < 1) j->height = 1;
    const double u = rng_uniform(rng);
    j->top = (int)((j->height > out_h ? j->height - out_h : 0) * u);
    j->left = (int)((j->width > out_w ? j->width - out_w : 0) * u);
    j->flipped = rng_uniform(rng) < p->hflip_prob;
}

/* The pixels: resize, crop or pad (one img_pad: negative amounts crop), flip. */
static struct img *jitter_image(const struct img *in, const struct copy_paste_jitter *j,
                                const uint8_t fill[4], int out_w, int out_h, struct eng_error *err)
{
    struct img *resized = img_resize(in, j->height, j->width, IMG_BILINEAR, err);
    if (!resized) return NULL;
    struct img *placed = img_pad(resized, -j->left, -j->top, out_w - j->width + j->left,
                                 out_h - j->height + j->top, IMG_PAD_CONSTANT, fill, true, err);
    img_free(resized);
    if (!placed || !j->flipped) return placed;
    struct img *flipped = img_flip_lr(placed, err);
    img_free(placed);
    return flipped;
}

/* The targets: the same three steps as one forward map; boxes then follow the masks. */
static struct targets *jitter_targets(const struct targets *t, const struct copy_paste_jitter *j,
                                      int out_w, int out_h, struct eng_error *err)
{
    double scale[6], crop[6], flip[6] = {1, 0, 0, 0, 1, 0}, m[6];
    targets_matrix_resize(scale, t->width, t->height, j->width, j->height);
    targets_matrix_pad(crop, -j->left, -j->top);
    if (j->flipped) targets_matrix_flip_lr(flip, out_w);
    targets_matrix_compose(crop, scale, m);
    targets_matrix_compose(flip, m, m);
    struct targets *c = targets_clone(t, err);
    if (!c) return NULL;
    if (targets_apply_affine(c, m, out_w, out_h, NULL, err) != 0 ||
        targets_boxes_from_masks(c, err) != 0) {
        targets_free(c);
        return NULL;
    }
    return c;
}

/* One jittered image and its targets. */
struct side {
    struct img *image;
    struct targets *targets;
};

static void side_free(struct side *s)
{
    img_free(s->image);
    targets_free(s->targets);
}

static int jitter(const char *which, const struct img *in, const struct targets *t,
                  const struct copy_paste_params *p, int channels, int out_w, int out_h,
                  struct rng *rng, struct copy_paste_jitter *j, struct side *s,
                  struct eng_error *err)
{
    draw_jitter(p, in->width, in->height, out_w, out_h, rng, j);
    if (p->max_pixels && (uint64_t)j->width * (uint64_t)j->height > p->max_pixels)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s: the jittering's scale %g makes it %dx%d, past %llu pixels", which,
                        j->scale, j->width, j->height, (unsigned long long)p->max_pixels);
    struct img *converted = with_channels(in, channels, err);
    if (!converted) return -1;
    s->image = jitter_image(converted, j, p->fill, out_w, out_h, err);
    img_free(converted);
    if (s->image) s->targets = jitter_targets(t, j, out_w, out_h, err);
    return s->image && s->targets ? 0 : -1;
}

/* torchvision's choice: n draws from [0, n), duplicates removed. */
static bool *choose(size_t n, struct rng *rng, struct eng_error *err)
{
    bool *chosen = calloc(n + 1, sizeof *chosen);
    if (!chosen) return eng_fail(err, ENG_NO_MEMORY, "out of memory for the choice"), NULL;
    for (size_t i = 0; i < n; i++)
        chosen[rng_below(rng, (uint32_t)n)] = true;
    return chosen;
}

/* The union of the chosen masks, 0 or 255. */
static struct img *paste_union(const struct targets *t, const bool *chosen, struct eng_error *err)
{
    struct img *u = img_new(t->width, t->height, 1, err);
    if (!u) return NULL;
    memset(u->data, 0, u->stride * (size_t)u->height);
    for (size_t i = 0; i < t->count; i++) {
        if (!chosen[i]) continue;
        for (int y = 0; y < u->height; y++) {
            const uint8_t *m = img_row(t->masks[i], y);
            uint8_t *d = img_row(u, y);
            for (int x = 0; x < u->width; x++)
                d[x] |= m[x] ? 255 : 0;
        }
    }
    return u;
}

/* The blending weights: the union, blurred with F.gaussian_blur when sigma > 0 (the kernel
 * 2 ceil(3 sigma) + 1 wide, narrowed to what torchvision accepts on a small image). */
static struct img *blend_alpha(const struct img *u, double sigma, struct eng_error *err)
{
    if (sigma <= 0) return img_clone(u, err);
    int size = 2 * (int)ceil(3 * sigma) + 1;
    const int shorter = u->width < u->height ? u->width : u->height;
    if (size / 2 >= shorter) size = 2 * (shorter - 1) + 1;
    return img_gaussian_blur(u, size, sigma, sigma, err);
}

/* dst = dst (255 - a) / 255 + src a / 255, rounded. */
static void blend(struct img *dst, const struct img *src, const struct img *alpha)
{
    const int ch = dst->channels;
    for (int y = 0; y < dst->height; y++) {
        uint8_t *d = img_row(dst, y);
        const uint8_t *s = img_row(src, y), *a = img_row(alpha, y);
        for (int x = 0; x < dst->width; x++)
            for (int c = 0; c < ch; c++) {
                const unsigned i = (unsigned)(x * ch + c);
                d[i] = (uint8_t)((d[i] * (255u - a[x]) + s[i] * a[x] + 127u) / 255u);
            }
    }
}

/* Clears the union's pixels from mask. */
static void cut(struct img *mask, const struct img *u)
{
    for (int y = 0; y < mask->height; y++) {
        uint8_t *m = img_row(mask, y);
        const uint8_t *c = img_row(u, y);
        for (int x = 0; x < mask->width; x++)
            if (c[x]) m[x] = 0;
    }
}

static void record_drop(struct copy_paste_result *r, int id, bool from_src,
                        enum target_drop_reason reason)
{
    struct targets *t = r->targets;
    r->dropped_from_src[t->dropped_count] = from_src;
    t->dropped[t->dropped_count++] = (struct target_drop){id, reason};
}

/* Moves object i of side's targets into the result, unless its mask is empty (dropped as
 * `empty`) or below min_area. */
static int keep_or_drop(struct copy_paste_result *r, struct targets *t, size_t i, bool from_src,
                        long min_area, enum target_drop_reason empty, struct eng_error *err)
{
    const long area = targets_mask_area(t->masks[i]);
    if (area == 0 || area < min_area) {
        record_drop(r, t->ids[i], from_src, area == 0 ? empty : TARGET_DROP_AREA);
        return 0;
    }
    r->from_src[r->targets->count] = from_src;
    struct img *mask = t->masks[i];
    t->masks[i] = NULL;
    return targets_add_mask(r->targets, mask, t->ids[i], (int)i, err);
}

/* The output objects: dst's (cut by the union), then the chosen ones of src. */
static int merge(struct copy_paste_result *r, struct side *d, struct side *s, const bool *chosen,
                 const struct img *u, long min_area, struct eng_error *err)
{
    for (size_t i = 0; i < d->targets->dropped_count; i++)
        record_drop(r, d->targets->dropped[i].id, false, d->targets->dropped[i].reason);
    for (size_t i = 0; i < d->targets->count; i++) {
        cut(d->targets->masks[i], u);
        if (keep_or_drop(r, d->targets, i, false, min_area, TARGET_DROP_OCCLUDED, err)) return -1;
    }
    for (size_t i = 0; i < s->targets->count; i++)
        if (chosen[i] &&
            keep_or_drop(r, s->targets, i, true, min_area, TARGET_DROP_OUTSIDE, err) != 0)
            return -1;
    return 0;
}

static int alloc_result(struct copy_paste_result *r, size_t capacity, int out_w, int out_h,
                        struct eng_error *err)
{
    r->targets = targets_new(out_w, out_h, capacity, 0, err);
    r->from_src = calloc(capacity + 1, 1);
    r->dropped_from_src = calloc(capacity + 1, 1);
    if (!r->targets) return -1;
    if (!r->from_src || !r->dropped_from_src)
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for the result");
    return 0;
}

/* Steps 2-4 on the jittered sides. */
static int paste(struct side *d, struct side *s, const struct copy_paste_params *p, struct rng *rng,
                 struct copy_paste_result *r, struct eng_error *err)
{
    bool *chosen = choose(s->targets->count, rng, err);
    struct img *u = chosen ? paste_union(s->targets, chosen, err) : NULL;
    struct img *alpha = u ? blend_alpha(u, p->blend_sigma, err) : NULL;
    int rc = -1;
    if (alpha &&
        alloc_result(r, d->targets->capacity + s->targets->capacity, d->image->width,
                     d->image->height, err) == 0 &&
        merge(r, d, s, chosen, u, p->min_area, err) == 0) {
        blend(d->image, s->image, alpha);
        r->image = d->image;
        d->image = NULL;
        rc = 0;
    }
    img_free(alpha);
    img_free(u);
    free(chosen);
    return rc;
}

int copy_paste(const struct img *dst, const struct targets *dst_targets, const struct img *src,
               const struct targets *src_targets, const struct copy_paste_params *params,
               struct rng *rng, struct copy_paste_result *out, struct eng_error *err)
{
    memset(out, 0, sizeof *out);
    if (check_params(params, err) || check_input("image a", dst, dst_targets, err) ||
        check_input("image b", src, src_targets, err))
        return -1;
    const int out_w = params->out_width ? params->out_width : dst->width;
    const int out_h = params->out_height ? params->out_height : dst->height;
    const int channels = dst->channels > src->channels ? dst->channels : src->channels;
    struct side d = {0}, s = {0};
    int rc = -1;
    if (jitter("image a", dst, dst_targets, params, channels, out_w, out_h, rng, &out->jitter[0],
               &d, err) == 0 &&
        jitter("image b", src, src_targets, params, channels, out_w, out_h, rng, &out->jitter[1],
               &s, err) == 0)
        rc = paste(&d, &s, params, rng, out, err);
    side_free(&d);
    side_free(&s);
    if (rc != 0) copy_paste_result_free(out);
    return rc;
}

void copy_paste_result_free(struct copy_paste_result *r)
{
    img_free(r->image);
    targets_free(r->targets);
    free(r->from_src);
    free(r->dropped_from_src);
    memset(r, 0, sizeof *r);
}
