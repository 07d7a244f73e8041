/* Targets of one image and their geometry. See targets.h for the coordinate conventions. */
#include "image/targets.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double DEG_TO_RAD = M_PI / 180.0;

/* A value this close outside the image (as a share of its side) is taken as on the edge: clients
 * converting between formats in floating point land there (1.0000000000000002). */
#define EDGE_TOLERANCE 1e-6

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                      */

static const char *const format_names[] = {"coco", "pascal_voc", "yolo", "albumentations"};

int targets_box_format_from_name(const char *name, enum box_format *fmt)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, format_names[i]) == 0) {
            *fmt = (enum box_format)i;
            return 0;
        }
    return -1;
}

const char *targets_box_format_name(enum box_format fmt)
{
    return format_names[fmt];
}

const char *targets_drop_reason_name(enum target_drop_reason reason)
{
    static const char *const names[] = {"outside", "min_area", "min_visibility", "min_size",
                                        "occluded"};
    return names[reason];
}

/* ------------------------------------------------------------------------------------------ */
/* The set                                                                                    */

struct targets *targets_new(int width, int height, size_t capacity, size_t keypoint_capacity,
                            struct eng_error *err)
{
    if (width < 1 || height < 1)
        return eng_fail(err, ENG_INVALID, "targets for a %dx%d image", width, height), NULL;
    struct targets *t = calloc(1, sizeof *t);
    if (!t) return eng_fail(err, ENG_NO_MEMORY, "out of memory for targets"), NULL;
    t->width = width;
    t->height = height;
    t->capacity = capacity;
    t->keypoint_capacity = keypoint_capacity;
    /* One spare element each, so a capacity of 0 still allocates. */
    t->boxes = calloc(capacity + 1, sizeof *t->boxes);
    t->unclipped = calloc(capacity + 1, sizeof *t->unclipped);
    t->ids = calloc(capacity + 1, sizeof *t->ids);
    t->dropped = calloc(capacity + 1, sizeof *t->dropped);
    t->keypoints = calloc(keypoint_capacity + 1, sizeof *t->keypoints);
    t->keypoint_ids = calloc(keypoint_capacity + 1, sizeof *t->keypoint_ids);
    if (!t->boxes || !t->unclipped || !t->ids || !t->dropped || !t->keypoints || !t->keypoint_ids) {
        targets_free(t);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu targets", capacity), NULL;
    }
    return t;
}

static void free_masks(struct img **masks, size_t count)
{
    for (size_t i = 0; masks && i < count; i++)
        img_free(masks[i]);
    free(masks);
}

void targets_free(struct targets *t)
{
    if (!t) return;
    free_masks(t->masks, t->count);
    free(t->boxes);
    free(t->unclipped);
    free(t->ids);
    free(t->dropped);
    free(t->keypoints);
    free(t->keypoint_ids);
    free(t);
}

struct targets *targets_clone(const struct targets *t, struct eng_error *err)
{
    struct targets *c = targets_new(t->width, t->height, t->capacity, t->keypoint_capacity, err);
    if (!c) return NULL;
    memcpy(c->boxes, t->boxes, t->count * sizeof *t->boxes);
    memcpy(c->unclipped, t->unclipped, t->count * sizeof *t->unclipped);
    memcpy(c->ids, t->ids, t->count * sizeof *t->ids);
    memcpy(c->keypoints, t->keypoints, t->keypoint_count * sizeof *t->keypoints);
    memcpy(c->keypoint_ids, t->keypoint_ids, t->keypoint_count * sizeof *t->keypoint_ids);
    c->keypoint_count = t->keypoint_count;
    if (t->masks && !(c->masks = calloc(t->capacity, sizeof *c->masks))) {
        targets_free(c);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for masks"), NULL;
    }
    /* count follows the masks copied, so a failure frees just those. */
    for (; c->count < t->count; c->count++)
        if (t->masks && !(c->masks[c->count] = img_clone(t->masks[c->count], err))) {
            targets_free(c);
            return NULL;
        }
    return c;
}

static int check_mask(const struct targets *t, const struct img *mask, int index,
                      struct eng_error *err)
{
    if (mask->channels != 1)
        return eng_fail(err, ENG_INVALID, "masks[%d]: has %d channels; a mask has 1", index,
                        mask->channels);
    if (mask->width != t->width || mask->height != t->height)
        return eng_fail(err, ENG_INVALID, "masks[%d]: %dx%d differs from the image's %dx%d", index,
                        mask->width, mask->height, t->width, t->height);
    return 0;
}

/* Whether one more object with (or without) a mask fits the set. */
static int check_append(struct targets *t, const struct img *mask, int index, struct eng_error *err)
{
    if (t->count == t->capacity)
        return eng_fail(err, ENG_TOO_LARGE, "boxes[%d]: more than %zu targets", index, t->capacity);
    if (t->count > 0 && !mask != !t->masks)
        return eng_fail(err, ENG_INVALID, "masks[%d]: objects need masks all or none", index);
    if (mask && check_mask(t, mask, index, err)) return -1;
    if (mask && !t->masks && !(t->masks = calloc(t->capacity, sizeof *t->masks)))
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for masks");
    return 0;
}

/* Appends box, id and mask (taken over, also on failure). */
static int append(struct targets *t, const struct target_box *box, int id, struct img *mask,
                  int index, struct eng_error *err)
{
    if (check_append(t, mask, index, err) != 0) {
        img_free(mask);
        return -1;
    }
    t->boxes[t->count] = *box;
    t->unclipped[t->count] = *box;
    t->ids[t->count] = id;
    if (mask) t->masks[t->count] = mask;
    t->count++;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Box formats                                                                                */

/* Checks a box's values in its own format's terms, before any conversion, so the message quotes
 * what the client sent. */
static int check_values(const double *v, size_t len, enum box_format fmt, int index,
                        struct eng_error *err)
{
    if (len != 4)
        return eng_fail(err, ENG_INVALID, "boxes[%d]: has %zu values; a %s box has 4", index, len,
                        format_names[fmt]);
    for (int i = 0; i < 4; i++)
        if (!isfinite(v[i]))
            return eng_fail(err, ENG_INVALID, "boxes[%d]: value %d is not a finite number", index,
                            i);
    if (fmt == BOX_COCO || fmt == BOX_YOLO) {
        if (!(v[2] > 0) || !(v[3] > 0))
            return eng_fail(err, ENG_INVALID,
                            "boxes[%d]: width %g and height %g must both be positive (%s)", index,
                            v[2], v[3], format_names[fmt]);
    } else if (!(v[2] > v[0]) || !(v[3] > v[1])) {
        return eng_fail(err, ENG_INVALID,
                        "boxes[%d]: [%g, %g, %g, %g] is inverted or empty: x_max must exceed "
                        "x_min and y_max y_min (%s)",
                        index, v[0], v[1], v[2], v[3], format_names[fmt]);
    }
    return 0;
}

/* Clamps v into [0, side] when it strays by at most the tolerance; false when it strays more. */
static bool snap_to_image(double *v, int side)
{
    const double tol = EDGE_TOLERANCE * side;
    if (*v < -tol || *v > side + tol) return false;
    *v = *v < 0 ? 0 : *v > side ? side : *v;
    return true;
}

int targets_box_from(const double *v, size_t len, enum box_format fmt, int width, int height,
                     int index, struct target_box *out, struct eng_error *err)
{
    if (check_values(v, len, fmt, index, err) != 0) return -1;
    struct target_box b;
    switch (fmt) {
    case BOX_COCO:
        b = (struct target_box){v[0], v[1], v[0] + v[2], v[1] + v[3]};
        break;
    case BOX_PASCAL_VOC:
        b = (struct target_box){v[0], v[1], v[2], v[3]};
        break;
    case BOX_YOLO:
        b = (struct target_box){(v[0] - v[2] / 2) * width, (v[1] - v[3] / 2) * height,
                                (v[0] + v[2] / 2) * width, (v[1] + v[3] / 2) * height};
        break;
    default:
        b = (struct target_box){v[0] * width, v[1] * height, v[2] * width, v[3] * height};
        break;
    }
    if (!snap_to_image(&b.x1, width) || !snap_to_image(&b.x2, width) ||
        !snap_to_image(&b.y1, height) || !snap_to_image(&b.y2, height))
        return eng_fail(err, ENG_INVALID,
                        "boxes[%d]: [%g, %g, %g, %g] (%s) reaches outside the %dx%d image", index,
                        v[0], v[1], v[2], v[3], format_names[fmt], width, height);
    *out = b;
    return 0;
}

static double unit_clamp(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

void targets_box_to(const struct target_box *b, enum box_format fmt, int width, int height,
                    double out[4])
{
    /* Normalised corners are clamped after the division: x2 / width may round above 1. */
    const double x1 = unit_clamp(b->x1 / width), x2 = unit_clamp(b->x2 / width);
    const double y1 = unit_clamp(b->y1 / height), y2 = unit_clamp(b->y2 / height);
    switch (fmt) {
    case BOX_COCO:
        out[0] = b->x1, out[1] = b->y1, out[2] = b->x2 - b->x1, out[3] = b->y2 - b->y1;
        break;
    case BOX_PASCAL_VOC:
        out[0] = b->x1, out[1] = b->y1, out[2] = b->x2, out[3] = b->y2;
        break;
    case BOX_YOLO:
        out[0] = unit_clamp((x1 + x2) / 2), out[1] = unit_clamp((y1 + y2) / 2);
        out[2] = x2 - x1, out[3] = y2 - y1;
        break;
    default:
        out[0] = x1, out[1] = y1, out[2] = x2, out[3] = y2;
        break;
    }
}

int targets_add(struct targets *t, const double *v, size_t len, enum box_format fmt, int id,
                struct img *mask, int index, struct eng_error *err)
{
    struct target_box b;
    if (targets_box_from(v, len, fmt, t->width, t->height, index, &b, err) != 0) {
        img_free(mask);
        return -1;
    }
    return append(t, &b, id, mask, index, err);
}

int targets_add_mask(struct targets *t, struct img *mask, int id, int index, struct eng_error *err)
{
    struct target_box b = {0, 0, 0, 0};
    if (!mask) return eng_fail(err, ENG_INVALID, "masks[%d]: no mask", index);
    if (mask->channels == 1) targets_mask_extent(mask, &b);
    return append(t, &b, id, mask, index, err);
}

int targets_add_keypoint(struct targets *t, double x, double y, int id, int index,
                         struct eng_error *err)
{
    if (t->keypoint_count == t->keypoint_capacity)
        return eng_fail(err, ENG_TOO_LARGE, "keypoints[%d]: more than %zu keypoints", index,
                        t->keypoint_capacity);
    if (!isfinite(x) || !isfinite(y) || x < 0 || y < 0 || x >= t->width || y >= t->height)
        return eng_fail(err, ENG_INVALID, "keypoints[%d]: (%g, %g) is outside the %dx%d image",
                        index, x, y, t->width, t->height);
    t->keypoints[t->keypoint_count] = (struct target_keypoint){x, y, true};
    t->keypoint_ids[t->keypoint_count++] = id;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Masks                                                                                      */

bool targets_mask_extent(const struct img *mask, struct target_box *out)
{
    int x1 = mask->width, y1 = mask->height, x2 = -1, y2 = -1;
    for (int y = 0; y < mask->height; y++) {
        const uint8_t *row = img_row(mask, y);
        int first = -1, last = -1;
        for (int x = 0; x < mask->width; x++)
            if (row[x]) {
                if (first < 0) first = x;
                last = x;
            }
        if (first < 0) continue;
        if (y1 > y) y1 = y;
        y2 = y;
        if (x1 > first) x1 = first;
        if (x2 < last) x2 = last;
    }
    if (y2 < 0) return false;
    /* The pixels' own extent: pixel x2 ends at x2 + 1. */
    *out = (struct target_box){x1, y1, x2 + 1, y2 + 1};
    return true;
}

long targets_mask_area(const struct img *mask)
{
    long area = 0;
    for (int y = 0; y < mask->height; y++) {
        const uint8_t *row = img_row(mask, y);
        for (int x = 0; x < mask->width; x++)
            area += row[x] != 0;
    }
    return area;
}

/* Removes object i (its mask freed), recording why; later objects move down. */
static void drop(struct targets *t, size_t i, enum target_drop_reason reason)
{
    t->dropped[t->dropped_count++] = (struct target_drop){t->ids[i], reason};
    if (t->masks) img_free(t->masks[i]);
    const size_t after = t->count - i - 1;
    memmove(&t->boxes[i], &t->boxes[i + 1], after * sizeof *t->boxes);
    memmove(&t->unclipped[i], &t->unclipped[i + 1], after * sizeof *t->unclipped);
    memmove(&t->ids[i], &t->ids[i + 1], after * sizeof *t->ids);
    if (t->masks) memmove(&t->masks[i], &t->masks[i + 1], after * sizeof *t->masks);
    t->count--;
}

int targets_boxes_from_masks(struct targets *t, struct eng_error *err)
{
    if (t->count > 0 && !t->masks)
        return eng_fail(err, ENG_INVALID, "boxes from masks: the targets have no masks");
    for (size_t i = 0; i < t->count;)
        if (targets_mask_extent(t->masks[i], &t->boxes[i]))
            t->unclipped[i] = t->boxes[i], i++;
        else
            drop(t, i, TARGET_DROP_OUTSIDE);
    return 0;
}

int targets_masks_from_label_map(const struct img *labels, int count, struct img **masks,
                                 struct eng_error *err)
{
    if (labels->channels != 1)
        return eng_fail(err, ENG_INVALID, "label map: has %d channels; a label map has 1",
                        labels->channels);
    for (int i = 0; i < count; i++)
        masks[i] = NULL;
    for (int i = 0; i < count; i++) {
        masks[i] = img_new(labels->width, labels->height, 1, err);
        if (!masks[i]) goto fail;
        memset(masks[i]->data, 0, masks[i]->stride * (size_t)labels->height);
    }
    for (int y = 0; y < labels->height; y++) {
        const uint8_t *row = img_row(labels, y);
        for (int x = 0; x < labels->width; x++) {
            if (row[x] > count) {
                eng_fail(err, ENG_INVALID,
                         "label map: pixel (%d, %d) has label %d; labels go up to %d", x, y, row[x],
                         count);
                goto fail;
            }
            if (row[x]) img_row(masks[row[x] - 1], y)[x] = 255;
        }
    }
    return 0;
fail:
    for (int i = 0; i < count; i++) {
        img_free(masks[i]);
        masks[i] = NULL;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Affine maps                                                                                */

static void apply(const double m[6], double x, double y, double *ox, double *oy)
{
    *ox = m[0] * x + m[1] * y + m[2];
    *oy = m[3] * x + m[4] * y + m[5];
}

void targets_matrix_compose(const double a[6], const double b[6], double m[6])
{
    const double r[6] = {a[0] * b[0] + a[1] * b[3],        a[0] * b[1] + a[1] * b[4],
                         a[0] * b[2] + a[1] * b[5] + a[2], a[3] * b[0] + a[4] * b[3],
                         a[3] * b[1] + a[4] * b[4],        a[3] * b[2] + a[4] * b[5] + a[5]};
    memcpy(m, r, sizeof r);
}

int targets_matrix_invert(const double m[6], double inv[6])
{
    const double det = m[0] * m[4] - m[1] * m[3];
    if (!isfinite(det) || det == 0) return -1;
    const double r[6] = {m[4] / det,  -m[1] / det, (m[1] * m[5] - m[4] * m[2]) / det,
                         -m[3] / det, m[0] / det,  (m[3] * m[2] - m[0] * m[5]) / det};
    memcpy(inv, r, sizeof r);
    return 0;
}

struct img *targets_warp_mask(const struct img *mask, const double m[6], int out_w, int out_h,
                              struct eng_error *err)
{
    double inv[6];
    if (targets_matrix_invert(m, inv) != 0)
        return eng_fail(err, ENG_INVALID, "the transform is singular"), NULL;
    struct img *out = img_new(out_w, out_h, 1, err);
    if (!out) return NULL;
    for (int y = 0; y < out_h; y++) {
        uint8_t *d = img_row(out, y);
        for (int x = 0; x < out_w; x++) {
            /* The source pixel under this pixel's centre; fill 0 outside. */
            double u, v;
            apply(inv, x + 0.5, y + 0.5, &u, &v);
            const bool inside = u >= 0 && u < mask->width && v >= 0 && v < mask->height;
            d[x] = inside ? img_row(mask, (int)v)[(int)u] : 0;
        }
    }
    return out;
}

/* The enclosing box of b's four mapped corners. */
static struct target_box map_box(const double m[6], const struct target_box *b)
{
    const double cx[4] = {b->x1, b->x2, b->x1, b->x2}, cy[4] = {b->y1, b->y1, b->y2, b->y2};
    struct target_box r = {INFINITY, INFINITY, -INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        double x, y;
        apply(m, cx[i], cy[i], &x, &y);
        r.x1 = fmin(r.x1, x), r.x2 = fmax(r.x2, x);
        r.y1 = fmin(r.y1, y), r.y2 = fmax(r.y2, y);
    }
    return r;
}

static double box_area(const struct target_box *b)
{
    return fmax(b->x2 - b->x1, 0) * fmax(b->y2 - b->y1, 0);
}

/* Why filter rejects a box that covered `before` pixels before clipping, or -1 to keep it. */
static int filter_verdict(const struct target_box *b, double before, const struct targets_filter *f)
{
    const double area = box_area(b);
    if (area <= 0) return TARGET_DROP_OUTSIDE;
    if (!f) return -1;
    if (area < f->min_area) return TARGET_DROP_AREA;
    if (area < f->min_visibility * before) return TARGET_DROP_VISIBILITY;
    if (b->x2 - b->x1 < f->min_width || b->y2 - b->y1 < f->min_height) return TARGET_DROP_SIZE;
    return -1;
}

/* Warps every mask into a new array (NULL when there are none); -1 with err. */
static int warp_masks(const struct targets *t, const double m[6], int out_w, int out_h,
                      struct img ***out, struct eng_error *err)
{
    *out = NULL;
    if (!t->masks) return 0;
    struct img **warped = calloc(t->capacity, sizeof *warped);
    if (!warped) return eng_fail(err, ENG_NO_MEMORY, "out of memory for masks");
    for (size_t i = 0; i < t->count; i++)
        if (!(warped[i] = targets_warp_mask(t->masks[i], m, out_w, out_h, err))) {
            free_masks(warped, i);
            return -1;
        }
    *out = warped;
    return 0;
}

int targets_apply_affine(struct targets *t, const double m[6], int out_w, int out_h,
                         const struct targets_filter *filter, struct eng_error *err)
{
    double inv[6];
    if (targets_matrix_invert(m, inv) != 0)
        return eng_fail(err, ENG_INVALID, "the transform is singular");
    if (out_w < 1 || out_h < 1)
        return eng_fail(err, ENG_INVALID, "targets for a %dx%d image", out_w, out_h);
    struct img **masks;
    if (warp_masks(t, m, out_w, out_h, &masks, err) != 0) return -1;
    free_masks(t->masks, t->count);
    t->masks = masks;
    t->width = out_w;
    t->height = out_h;
    for (size_t i = 0; i < t->keypoint_count; i++) {
        struct target_keypoint *k = &t->keypoints[i];
        apply(m, k->x, k->y, &k->x, &k->y);
        k->visible = k->visible && k->x >= 0 && k->y >= 0 && k->x < out_w && k->y < out_h;
    }
    for (size_t i = 0; i < t->count;) {
        struct target_box b = map_box(m, &t->boxes[i]);
        const double before = box_area(&b);
        b.x1 = fmax(b.x1, 0), b.y1 = fmax(b.y1, 0);
        b.x2 = fmin(b.x2, out_w), b.y2 = fmin(b.y2, out_h);
        const int verdict = filter_verdict(&b, before, filter);
        if (verdict >= 0) {
            drop(t, i, (enum target_drop_reason)verdict);
            continue;
        }
        t->unclipped[i] = map_box(m, &t->unclipped[i]);
        t->boxes[i++] = b;
    }
    return 0;
}

void targets_filter(struct targets *t, const struct targets_filter *filter)
{
    for (size_t i = 0; i < t->count;) {
        const int verdict = filter_verdict(&t->boxes[i], box_area(&t->unclipped[i]), filter);
        if (verdict >= 0)
            drop(t, i, (enum target_drop_reason)verdict);
        else
            i++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The geometric ops' forward maps                                                            */

static void set(double m[6], double a, double b, double c, double d, double e, double f)
{
    m[0] = a, m[1] = b, m[2] = c, m[3] = d, m[4] = e, m[5] = f;
}

/* Python's float % 360 (the sign of the divisor), as Image.rotate reduces its angle. */
static double angle_mod_360(double degrees)
{
    const double r = fmod(degrees, 360.0);
    return r < 0 ? r + 360.0 : r;
}

void targets_matrix_rotate(double m[6], double degrees, int width, int height)
{
    const double a = angle_mod_360(degrees);
    double c = cos(a * DEG_TO_RAD), s = sin(a * DEG_TO_RAD);
    /* Quarter turns are exact transposes in the kernel: no cos(90) = 6e-17 here either. */
    if (a == 0 || a == 90 || a == 180 || a == 270) {
        static const double cosines[] = {1, 0, -1, 0}, sines[] = {0, 1, 0, -1};
        c = cosines[(int)a / 90];
        s = sines[(int)a / 90];
    }
    /* Counter-clockwise on screen (y down) about the centre (width / 2, height / 2). */
    const double cx = width / 2.0, cy = height / 2.0;
    set(m, c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy);
}

/* F.affine with shear (atan(factor) in degrees, 0) about (0, 0): PIL maps output to input by
 * x = x' + factor y', so forward x' = x - factor y. */
void targets_matrix_shear_x(double m[6], double factor)
{
    set(m, 1, -factor, 0, 0, 1, 0);
}

/* Likewise y = y' + factor x', so y' = y - factor x. */
void targets_matrix_shear_y(double m[6], double factor)
{
    set(m, 1, 0, 0, -factor, 1, 0);
}

void targets_matrix_translate_x(double m[6], double pixels)
{
    set(m, 1, 0, trunc(pixels), 0, 1, 0);
}

void targets_matrix_translate_y(double m[6], double pixels)
{
    set(m, 1, 0, 0, 0, 1, trunc(pixels));
}

void targets_matrix_flip_lr(double m[6], int width)
{
    set(m, -1, 0, width, 0, 1, 0);
}

void targets_matrix_flip_ud(double m[6], int height)
{
    set(m, 1, 0, 0, 0, -1, height);
}

void targets_matrix_resize(double m[6], int width, int height, int out_width, int out_height)
{
    set(m, (double)out_width / width, 0, 0, 0, (double)out_height / height, 0);
}

/* Python's int(round(d / 2.0)) for d >= 0, halves to even, as F.center_crop rounds. */
static int half_round_even(int d)
{
    const int k = d / 2;
    return (d % 2 != 0 && k % 2 != 0) ? k + 1 : k;
}

/* img_center_crop's origin: zero padding (left and top get the smaller half) up to the crop size,
 * then a crop at round((size - crop) / 2) of the padded image. */
static int center_crop_origin(int side, int crop)
{
    const int pad = crop > side ? (crop - side) / 2 : 0;
    const int padded = crop > side ? crop : side;
    return half_round_even(padded - crop) - pad;
}

void targets_matrix_center_crop(double m[6], int width, int height, int crop_width, int crop_height)
{
    set(m, 1, 0, -center_crop_origin(width, crop_width), 0, 1,
        -center_crop_origin(height, crop_height));
}

void targets_matrix_random_crop(double m[6], int pad, int top, int left)
{
    set(m, 1, 0, pad - left, 0, 1, pad - top);
}

void targets_matrix_resized_crop(double m[6], int top, int left, int crop_height, int crop_width,
                                 int out_height, int out_width)
{
    const double sx = (double)out_width / crop_width, sy = (double)out_height / crop_height;
    set(m, sx, 0, -left * sx, 0, sy, -top * sy);
}

void targets_matrix_pad(double m[6], int left, int top)
{
    set(m, 1, 0, left, 0, 1, top);
}

void targets_matrix_shift(double m[6], double dx, double dy)
{
    set(m, 1, 0, dx, 0, 1, dy);
}
