#include "classify/classify.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/color.h"
#include "image/geometry.h"
#include "policy/policy.h"

/* The largest side an image op makes (ops_geometry's bound); a resize past it is refused before
 * any pixel work rather than failing inside img_resize. */
#define MAX_SIDE 65535

static int check_preprocess(const struct classify_preprocess *pp, struct eng_error *err)
{
    if (pp->channels != 1 && pp->channels != 3)
        return eng_fail(err, ENG_INVALID, "preprocess: channels %d is not 1 or 3", pp->channels);
    if (pp->resize < 0 || pp->resize > MAX_SIDE)
        return eng_fail(err, ENG_INVALID, "preprocess: resize %d is not in 0..%d", pp->resize,
                        MAX_SIDE);
    if ((pp->crop_height == 0) != (pp->crop_width == 0) || pp->crop_height < 0 ||
        pp->crop_width < 0 || pp->crop_height > MAX_SIDE || pp->crop_width > MAX_SIDE)
        return eng_fail(err, ENG_INVALID, "preprocess: crop %dx%d is not 0x0 or in 1..%d",
                        pp->crop_height, pp->crop_width, MAX_SIDE);
    for (int c = 0; c < pp->channels; c++)
        if (!isfinite(pp->mean[c]) || !isfinite(pp->std[c]) || pp->std[c] == 0.0f)
            return eng_fail(err, ENG_INVALID, "preprocess: channel %d: mean %g, std %g", c,
                            (double)pp->mean[c], (double)pp->std[c]);
    return 0;
}

/* torchvision's _compute_resized_output_size for Resize(int): the shorter side becomes resize and
 * the longer int(resize * long / short); the product is exact and the division rounds once, as
 * Python's does. */
static int resized_size(const struct classify_preprocess *pp, int width, int height,
                        int *out_height, int *out_width, struct eng_error *err)
{
    *out_width = width;
    *out_height = height;
    if (pp->resize == 0) return 0;
    int portrait = width <= height;
    long long shorter = portrait ? width : height, longer = portrait ? height : width;
    long long new_long = (long long)((double)(pp->resize * longer) / (double)shorter);
    if (new_long > MAX_SIDE)
        return eng_fail(err, ENG_TOO_LARGE,
                        "a %dx%d image resized to %d on its shorter side would be %lld on the "
                        "longer; sides are limited to %d",
                        width, height, pp->resize, new_long, MAX_SIDE);
    *out_width = portrait ? pp->resize : (int)new_long;
    *out_height = portrait ? (int)new_long : pp->resize;
    return 0;
}

int classify_preprocess_size(const struct classify_preprocess *pp, int width, int height,
                             int *out_height, int *out_width, struct eng_error *err)
{
    if (check_preprocess(pp, err)) return -1;
    if (width < 1 || height < 1)
        return eng_fail(err, ENG_INVALID, "image size %dx%d is empty", width, height);
    if (resized_size(pp, width, height, out_height, out_width, err)) return -1;
    if (pp->crop_height > 0) {
        *out_height = pp->crop_height;
        *out_width = pp->crop_width;
    }
    return 0;
}

/* PIL's convert("RGB") of an L or RGBA image: L replicated, alpha dropped (not composited). */
static struct img *to_rgb(const struct img *in, struct eng_error *err)
{
    struct img *out = img_new(in->width, in->height, 3, err);
    if (!out) return NULL;
    for (int y = 0; y < in->height; y++) {
        const uint8_t *src = img_row(in, y);
        uint8_t *dst = img_row(out, y);
        for (int x = 0; x < in->width; x++, src += in->channels, dst += 3) {
            dst[0] = src[0];
            dst[1] = src[in->channels == 1 ? 0 : 1];
            dst[2] = src[in->channels == 1 ? 0 : 2];
        }
    }
    return out;
}

struct img *classify_convert(const struct img *in, int channels, struct eng_error *err)
{
    if (in->channels == channels) return img_clone(in, err);
    if (channels == 1) return img_grayscale(in, 0, err);
    return to_rgb(in, err);
}

/* Frees the previous stage's image and returns the next one's: stages chain as
 * im = next_stage(im, stage(im, ...)), the argument evaluated before im is freed. */
static struct img *next_stage(struct img *previous, struct img *next)
{
    img_free(previous);
    return next;
}

/* Convert, Resize, CenterCrop: the transform's pixel part, before the weak views. */
static struct img *transform(const struct img *in, const struct classify_preprocess *pp,
                             struct eng_error *err)
{
    int height, width;
    if (resized_size(pp, in->width, in->height, &height, &width, err)) return NULL;
    struct img *im = classify_convert(in, pp->channels, err);
    if (im && pp->resize > 0)
        im = next_stage(
            im, img_resize(im, height, width, pp->bilinear ? IMG_BILINEAR : IMG_NEAREST, err));
    if (im && pp->crop_height > 0)
        im = next_stage(im, img_center_crop(im, pp->crop_height, pp->crop_width, err));
    return im;
}

/* ToTensor then Normalize, in float as torch computes them, into the transform's layout. */
static void to_tensor(const struct img *im, const struct classify_preprocess *pp, float *out)
{
    int c = im->channels;
    size_t plane = (size_t)im->width * (size_t)im->height;
    for (int y = 0; y < im->height; y++) {
        const uint8_t *row = img_row(im, y);
        for (int x = 0; x < im->width; x++) {
            size_t pixel = (size_t)y * (size_t)im->width + (size_t)x;
            for (int ch = 0; ch < c; ch++) {
                int src = pp->bgr ? c - 1 - ch : ch;
                float v = ((float)row[x * c + src] * pp->scale - pp->mean[ch]) / pp->std[ch];
                out[pp->nhwc ? pixel * (size_t)c + (size_t)ch : (size_t)ch * plane + pixel] = v;
            }
        }
    }
}

static struct img *weak_view(const struct img *base, const struct policy *weak, uint64_t seed,
                             uint32_t input, uint32_t view, struct eng_error *err)
{
    struct trace *t = policy_sample(weak, seed, input, view, base->width, base->height, err);
    struct img *out = t ? trace_apply(t, base, seed, input, view, err) : NULL;
    trace_free(t);
    if (out && (out->width != base->width || out->height != base->height)) {
        eng_fail(err, ENG_INVALID,
                 "the weak policy turned a %dx%d image into %dx%d; it must keep "
                 "the size",
                 base->width, base->height, out->width, out->height);
        img_free(out);
        out = NULL;
    }
    return out;
}

int classify_image_tensor(const struct img *in, const struct classify_preprocess *pp,
                          const struct policy *weak, uint64_t seed, uint32_t input, int views,
                          float *out, struct eng_error *err)
{
    int height, width;
    if (classify_preprocess_size(pp, in->width, in->height, &height, &width, err)) return -1;
    if (views < 1 || (views > 1 && !weak))
        return eng_fail(err, ENG_INVALID, "views %d needs a weak policy past the first", views);
    struct img *base = transform(in, pp, err);
    if (!base) return -1;
    size_t per_view = (size_t)pp->channels * (size_t)height * (size_t)width;
    int rc = 0;
    to_tensor(base, pp, out);
    for (int v = 1; v < views && rc == 0; v++) {
        struct img *view = weak_view(base, weak, seed, input, (uint32_t)v, err);
        if (view) to_tensor(view, pp, out + (size_t)v * per_view);
        rc = view ? 0 : -1;
        img_free(view);
    }
    img_free(base);
    return rc;
}

void classify_softmax(const float *x, size_t n, float *out)
{
    float max = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)x[i] - (double)max);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(exp((double)x[i] - (double)max) / sum);
}

int classify_probabilities(const float *scores, size_t n, int are_probabilities, float *out,
                           struct eng_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return eng_fail(err, ENG_INVALID, "the model's score for class %zu is %g", i,
                            (double)scores[i]);
    if (are_probabilities)
        memmove(out, scores, n * sizeof *out);
    else
        classify_softmax(scores, n, out);
    return 0;
}

/* Whether class a ranks above class b: the higher score, else the lower index. */
static int ranks_above(const float *scores, size_t a, size_t b)
{
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
}

/* Restores the heap below position i of heap[0..n), which keeps its lowest-ranked class on top. */
static void sift_down(const float *scores, size_t *heap, size_t n, size_t i)
{
    for (;;) {
        size_t lowest = i, left = 2 * i + 1, right = left + 1;
        if (left < n && ranks_above(scores, heap[lowest], heap[left])) lowest = left;
        if (right < n && ranks_above(scores, heap[lowest], heap[right])) lowest = right;
        if (lowest == i) return;
        size_t t = heap[i];
        heap[i] = heap[lowest];
        heap[lowest] = t;
        i = lowest;
    }
}

/* A heap of the k best seen so far, its worst on top, in out itself: O(n log k) and no memory.
 * Popping the worst to the end then leaves out sorted best first. */
void classify_topk(const float *scores, size_t n, size_t k, size_t *out)
{
    for (size_t i = 0; i < k; i++)
        out[i] = i;
    for (size_t i = k / 2; i-- > 0;)
        sift_down(scores, out, k, i);
    for (size_t i = k; i < n; i++)
        if (ranks_above(scores, i, out[0])) {
            out[0] = i;
            sift_down(scores, out, k, 0);
        }
    for (size_t end = k; end-- > 1;) {
        size_t t = out[0];
        out[0] = out[end];
        out[end] = t;
        sift_down(scores, out, end, 0);
    }
}

/* The vote of the mean of rows[0..n) of `classes` probabilities; mean gets that mean. */
static void vote(const float *rows, size_t n, size_t classes, float *mean,
                 struct classify_vote *out)
{
    for (size_t c = 0; c < classes; c++) {
        double sum = 0;
        for (size_t r = 0; r < n; r++)
            sum += rows[r * classes + c];
        mean[c] = (float)(sum / (double)n);
    }
    classify_topk(mean, classes, 1, &out->label);
    out->confidence = mean[out->label];
    size_t agreeing = 0;
    for (size_t r = 0; r < n; r++) {
        size_t top;
        classify_topk(rows + r * classes, classes, 1, &top);
        agreeing += top == out->label;
    }
    out->agreement = (double)agreeing / (double)n;
}

static double entropy(const float *p, size_t n)
{
    double h = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] > 0) h -= (double)p[i] * log((double)p[i]);
    return h;
}

int classify_pseudo_label(const float *probs, size_t models, size_t views, size_t classes,
                          double threshold, struct classify_pseudo_label *out,
                          struct classify_vote *per_model, struct eng_error *err)
{
    if (models == 0 || views == 0 || classes == 0)
        return eng_fail(err, ENG_INVALID, "pseudo-label of %zu models x %zu views x %zu classes",
                        models, views, classes);
    float *mean = malloc(classes * sizeof *mean);
    if (!mean) return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu classes", classes);
    size_t per_model_size = views * classes;
    for (size_t m = 0; m < models; m++)
        vote(probs + m * per_model_size, views, classes, mean, &per_model[m]);
    /* Every model has as many views, so the mean of all rows is the mean of the models' means. */
    vote(probs, models * views, classes, mean, &out->vote);
    out->entropy = entropy(mean, classes);
    out->accepted = out->vote.confidence >= threshold;
    free(mean);
    return 0;
}
