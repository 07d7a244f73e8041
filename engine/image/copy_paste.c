/* Simple Copy-Paste; see copy_paste.h for the steps and where they differ from the reference. */
#include "image/copy_paste.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/geometry.h"
#include "image/noise.h"

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
    if (!(p->blend_sigma >= 0 && p->blend_sigma <= COPY_PASTE_MAX_BLEND_SIGMA))
        return eng_fail(err, ENG_INVALID, "blend_sigma: %g is not in [0, %g]", p->blend_sigma,
                        COPY_PASTE_MAX_BLEND_SIGMA);
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

/* One image's draws, in the reference's order, and the bound on its resized size. */
static int draw_side(const char *which, const struct copy_paste_params *p, int width, int height,
                     int out_w, int out_h, struct rng *rng, struct copy_paste_jitter *j,
                     struct eng_error *err)
{
    draw_jitter(p, width, height, out_w, out_h, rng, j);
    if (p->max_pixels && (uint64_t)j->width * (uint64_t)j->height > p->max_pixels)
        return eng_fail(err, ENG_TOO_LARGE,
                        "%s: the jittering's scale %g makes it %dx%d, past %llu pixels", which,
                        j->scale, j->width, j->height, (unsigned long long)p->max_pixels);
    return 0;
}

/* One image and its targets jittered as drawn. */
static int jitter(const struct img *in, const struct targets *t, const struct copy_paste_params *p,
                  int channels, int out_w, int out_h, const struct copy_paste_jitter *j,
                  struct side *s, struct eng_error *err)
{
    struct img *converted = with_channels(in, channels, err);
    if (!converted) return -1;
    s->image = jitter_image(converted, j, p->fill, out_w, out_h, err);
    img_free(converted);
    if (s->image) s->targets = jitter_targets(t, j, out_w, out_h, err);
    return s->image && s->targets ? 0 : -1;
}

/* torchvision's choice: n draws from [0, n), duplicates removed; without rng, all n (the drawn
 * path, whose src holds the chosen objects alone). */
static bool *choose(size_t n, struct rng *rng, struct eng_error *err)
{
    bool *chosen = calloc(n + 1, sizeof *chosen);
    if (!chosen) return eng_fail(err, ENG_NO_MEMORY, "out of memory for the choice"), NULL;
    for (size_t i = 0; i < n; i++)
        chosen[rng ? rng_below(rng, (uint32_t)n) : i] = true;
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

/* The output objects: what dst_targets had dropped already, then dst's (cut by the union), then
 * the chosen ones of src. */
static int merge(struct copy_paste_result *r, const struct targets *earlier, struct side *d,
                 struct side *s, const bool *chosen, const struct img *u, long min_area,
                 struct eng_error *err)
{
    for (size_t i = 0; i < earlier->dropped_count; i++)
        record_drop(r, earlier->dropped[i].id, false, earlier->dropped[i].reason);
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

/* The result's arrays: every object of both sides, and whatever dst had dropped before (its
 * objects are each kept or dropped once, so its capacity covers both), and dst's keypoints as
 * the jittering left them. */
static int alloc_result(struct copy_paste_result *r, const struct side *d, const struct side *s,
                        struct eng_error *err)
{
    const struct targets *dt = d->targets;
    const size_t capacity = dt->capacity + s->targets->capacity;
    r->targets = targets_new(dt->width, dt->height, capacity, dt->keypoint_capacity, err);
    r->from_src = calloc(capacity + 1, 1);
    r->dropped_from_src = calloc(capacity + 1, 1);
    if (!r->targets) return -1;
    if (!r->from_src || !r->dropped_from_src)
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for the result");
    memcpy(r->targets->keypoints, dt->keypoints, dt->keypoint_count * sizeof *dt->keypoints);
    memcpy(r->targets->keypoint_ids, dt->keypoint_ids,
           dt->keypoint_count * sizeof *dt->keypoint_ids);
    r->targets->keypoint_count = dt->keypoint_count;
    return 0;
}

/* Steps 3-4 on the jittered sides, with src's chosen objects. */
static int paste(const struct targets *earlier, struct side *d, struct side *s, const bool *chosen,
                 const struct copy_paste_params *p, struct copy_paste_result *r,
                 struct eng_error *err)
{
    struct img *u = paste_union(s->targets, chosen, err);
    struct img *alpha = u ? blend_alpha(u, p->blend_sigma, err) : NULL;
    int rc = -1;
    if (alpha && alloc_result(r, d, s, err) == 0 &&
        merge(r, earlier, d, s, chosen, u, p->min_area, err) == 0) {
        blend(d->image, s->image, alpha);
        r->image = d->image;
        d->image = NULL;
        rc = 0;
    }
    img_free(alpha);
    img_free(u);
    return rc;
}

/* The output's size and channel count. */
struct frame {
    int width, height, channels;
};

static int check_all(const struct img *dst, const struct targets *dst_targets,
                     const struct img *src, const struct targets *src_targets,
                     const struct copy_paste_params *params, struct frame *f, struct eng_error *err)
{
    if (check_params(params, err) || check_input("image a", dst, dst_targets, err) ||
        check_input("image b", src, src_targets, err))
        return -1;
    f->width = params->out_width ? params->out_width : dst->width;
    f->height = params->out_height ? params->out_height : dst->height;
    f->channels = dst->channels > src->channels ? dst->channels : src->channels;
    return 0;
}

/* Jitters both sides as drawn, then pastes src's objects that chosen (NULL: torchvision's choice
 * from rng among those the jittering left) marks. */
static int run(const struct img *dst, const struct targets *dst_targets, const struct img *src,
               const struct targets *src_targets, const struct copy_paste_params *params,
               const struct frame *f, struct rng *rng, struct copy_paste_result *out,
               struct eng_error *err)
{
    struct side d = {0}, s = {0};
    bool *chosen = NULL;
    int rc = -1;
    if (jitter(dst, dst_targets, params, f->channels, f->width, f->height, &out->jitter[0], &d,
               err) == 0 &&
        jitter(src, src_targets, params, f->channels, f->width, f->height, &out->jitter[1], &s,
               err) == 0 &&
        (chosen = choose(s.targets->count, rng, err)))
        rc = paste(dst_targets, &d, &s, chosen, params, out, err);
    free(chosen);
    side_free(&d);
    side_free(&s);
    if (rc != 0) copy_paste_result_free(out);
    return rc;
}

int copy_paste(const struct img *dst, const struct targets *dst_targets, const struct img *src,
               const struct targets *src_targets, const struct copy_paste_params *params,
               struct rng *rng, struct copy_paste_result *out, struct eng_error *err)
{
    struct frame f;
    memset(out, 0, sizeof *out);
    if (check_all(dst, dst_targets, src, src_targets, params, &f, err) != 0 ||
        draw_side("image a", params, dst->width, dst->height, f.width, f.height, rng,
                  &out->jitter[0], err) != 0 ||
        draw_side("image b", params, src->width, src->height, f.width, f.height, rng,
                  &out->jitter[1], err) != 0)
        return -1;
    return run(dst, dst_targets, src, src_targets, params, &f, rng, out, err);
}

int copy_paste_draw(const struct copy_paste_params *params, int dst_w, int dst_h, int src_w,
                    int src_h, size_t src_count, struct rng *rng, struct copy_paste_draws *out,
                    struct eng_error *err)
{
    const int out_w = params->out_width ? params->out_width : dst_w;
    const int out_h = params->out_height ? params->out_height : dst_h;
    memset(out, 0, sizeof *out);
    if (check_params(params, err) != 0 ||
        draw_side("image a", params, dst_w, dst_h, out_w, out_h, rng, &out->jitter[0], err) ||
        draw_side("image b", params, src_w, src_h, out_w, out_h, rng, &out->jitter[1], err))
        return -1;
    bool *chosen = choose(src_count, rng, err);
    out->chosen = chosen ? calloc(src_count + 1, sizeof *out->chosen) : NULL;
    if (chosen && !out->chosen) eng_fail(err, ENG_NO_MEMORY, "out of memory for the choice");
    for (size_t i = 0; out->chosen && i < src_count; i++)
        if (chosen[i]) out->chosen[out->chosen_count++] = (int)i;
    free(chosen);
    return out->chosen ? 0 : -1;
}

void copy_paste_draws_free(struct copy_paste_draws *d)
{
    free(d->chosen);
    memset(d, 0, sizeof *d);
}

/* src's objects at the chosen positions, ids kept: all that copy_paste_drawn pastes. */
static struct targets *chosen_objects(const struct targets *t, const struct copy_paste_draws *d,
                                      struct eng_error *err)
{
    struct targets *s = targets_new(t->width, t->height, d->chosen_count, 0, err);
    for (size_t k = 0; s && k < d->chosen_count; k++) {
        const int i = d->chosen[k];
        if (i < 0 || (size_t)i >= t->count) {
            eng_fail(err, ENG_INVALID, "image b: object %d was chosen; it has %zu", i, t->count);
            targets_free(s);
            return NULL;
        }
        struct img *mask = img_clone(t->masks[i], err);
        if (!mask || targets_add_mask(s, mask, t->ids[i], i, err) != 0) {
            targets_free(s);
            return NULL;
        }
    }
    return s;
}

int copy_paste_drawn(const struct img *dst, const struct targets *dst_targets,
                     const struct img *src, const struct targets *src_targets,
                     const struct copy_paste_params *params, const struct copy_paste_draws *draws,
                     struct copy_paste_result *out, struct eng_error *err)
{
    struct frame f;
    memset(out, 0, sizeof *out);
    if (check_all(dst, dst_targets, src, src_targets, params, &f, err) != 0) return -1;
    struct targets *chosen = chosen_objects(src_targets, draws, err);
    if (!chosen) return -1;
    out->jitter[0] = draws->jitter[0];
    out->jitter[1] = draws->jitter[1];
    const int rc = run(dst, dst_targets, src, chosen, params, &f, NULL, out, err);
    targets_free(chosen);
    return rc;
}

json_t *copy_paste_jitter_json(const struct copy_paste_jitter *j)
{
    return json_pack("{s:f, s:i, s:i, s:i, s:i, s:b}", "scale", j->scale, "width", j->width,
                     "height", j->height, "top", j->top, "left", j->left, "flipped", j->flipped);
}

void copy_paste_result_free(struct copy_paste_result *r)
{
    img_free(r->image);
    targets_free(r->targets);
    free(r->from_src);
    free(r->dropped_from_src);
    memset(r, 0, sizeof *r);
}
