/* Detection and segmentation targets of one image: boxes, instance masks and keypoints, and how
 * geometric transforms carry them along with the pixels.
 *
 * Coordinates are continuous pixel coordinates: pixel (i, j) covers [i, i + 1) x [j, j + 1), so a
 * box [0, 0, width, height] is the whole image and a pixel's centre is at (i + 0.5, j + 0.5).
 * Boxes are held as absolute xyxy; the four exchange formats convert on the way in and out.
 *
 * Every object (box and/or mask) and every keypoint carries an id: the caller's index for it (in
 * the request), which survives transforms and filters, so the server can attach any JSON label
 * and report what was dropped by its original position. */
#ifndef AUGSERVE_ENGINE_IMAGE_TARGETS_H
#define AUGSERVE_ENGINE_IMAGE_TARGETS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/img.h"

enum box_format {
    BOX_COCO,           /* [x, y, w, h], pixels */
    BOX_PASCAL_VOC,     /* [x1, y1, x2, y2], pixels */
    BOX_YOLO,           /* [cx, cy, w, h], shares of the image side */
    BOX_ALBUMENTATIONS, /* [x1, y1, x2, y2], shares of the image side */
};

/* "coco", "pascal_voc", "yolo", "albumentations": 0, or -1 for another name. */
int targets_box_format_from_name(const char *name, enum box_format *fmt);
const char *targets_box_format_name(enum box_format fmt);

struct target_box {
    double x1, y1, x2, y2;
};

struct target_keypoint {
    double x, y;
    bool visible; /* false once a transform moved it outside the image */
};

/* Why a filter removed an object. */
enum target_drop_reason {
    TARGET_DROP_OUTSIDE,    /* nothing of it is left inside the image */
    TARGET_DROP_AREA,       /* below min_area */
    TARGET_DROP_VISIBILITY, /* below min_visibility */
    TARGET_DROP_SIZE,       /* narrower than min_width or lower than min_height */
    TARGET_DROP_OCCLUDED,   /* covered by pasted objects (copy-paste) */
};

/* "outside", "min_area", "min_visibility", "min_size", "occluded". */
const char *targets_drop_reason_name(enum target_drop_reason reason);

struct target_drop {
    int id;
    enum target_drop_reason reason;
};

struct targets {
    int width, height;                  /* the image's size */
    size_t capacity, keypoint_capacity; /* fixed when the set is made */
    size_t count;                       /* objects */
    struct target_box *boxes;
    /* Where each box would be had no transform clipped it (the enclosing boxes of the same maps,
     * never cut to the image): the reference min_visibility compares the final area with. */
    struct target_box *unclipped;
    int *ids;
    struct img **masks; /* count 1-channel masks (nonzero = object), or NULL: boxes only */
    size_t keypoint_count;
    struct target_keypoint *keypoints;
    int *keypoint_ids;
    size_t dropped_count; /* objects the filters removed, in the order they were removed */
    struct target_drop *dropped;
};

/* Albumentations' filters, applied after every transform; 0 disables each. */
struct targets_filter {
    double min_area;       /* box area in pixels */
    double min_visibility; /* clipped box area / the transformed box's area before clipping */
    double min_width, min_height;
};

/* An empty set for a width x height image, with room for capacity objects and keypoint_capacity
 * keypoints (adding more is ENG_TOO_LARGE); NULL with err when memory runs out or the size is not
 * positive. */
struct targets *targets_new(int width, int height, size_t capacity, size_t keypoint_capacity,
                            struct eng_error *err);
void targets_free(struct targets *t);
/* A deep copy (masks included, the dropped list not). */
struct targets *targets_clone(const struct targets *t, struct eng_error *err);

/* Appends an object: v holds len values in fmt, checked against the image (index names it in the
 * message: "boxes[3]: x2 40 is left of x1 50"). mask (may be NULL; taken over even on failure)
 * must be 1-channel and the image's size; boxes and masks are all given or all absent. Values
 * are clamped to the image only when they stray by less than 1e-6 of a side (rounding in the
 * client's own conversion). 0, or -1 with err. */
int targets_add(struct targets *t, const double *v, size_t len, enum box_format fmt, int id,
                struct img *mask, int index, struct eng_error *err);
/* Appends an object known only by its mask; the box is the mask's extent. */
int targets_add_mask(struct targets *t, struct img *mask, int id, int index, struct eng_error *err);
/* Appends a keypoint (x, y in pixels) inside the image. */
int targets_add_keypoint(struct targets *t, double x, double y, int id, int index,
                         struct eng_error *err);

/* Converts a value array in fmt to an absolute box for a width x height image, validating it:
 * finite, len 4, not inverted, inside the image. index names it in the message. */
int targets_box_from(const double *v, size_t len, enum box_format fmt, int width, int height,
                     int index, struct target_box *out, struct eng_error *err);
/* The box in fmt; normalised values are clamped to [0, 1] after the division, so a box that
 * touches the right edge comes out at exactly 1. */
void targets_box_to(const struct target_box *b, enum box_format fmt, int width, int height,
                    double out[4]);

/* The extent of a mask's nonzero pixels, or false when it has none. */
bool targets_mask_extent(const struct img *mask, struct target_box *out);
/* Nonzero pixels of a mask. */
long targets_mask_area(const struct img *mask);
/* Sets every box to its mask's extent; objects whose mask is empty are dropped (outside). */
int targets_boxes_from_masks(struct targets *t, struct eng_error *err);

/* Splits a label map (1 channel; value k > 0 is object k - 1, 0 background) into count instance
 * masks (0 / 255), which the caller frees. Values above count are refused. */
int targets_masks_from_label_map(const struct img *labels, int count, struct img **masks,
                                 struct eng_error *err);

/* Maps every target through m, the forward affine map from input to output pixel coordinates
 * (x' = m0 x + m1 y + m2, y' = m3 x + m4 y + m5), into an out_w x out_h image: boxes by their four
 * corners' enclosing box, clipped; keypoints exactly, flagged invisible outside; masks by inverse
 * mapping with nearest interpolation and fill 0. Then filter (may be NULL) and objects with no
 * area left are dropped. 0, or -1 with err (a singular matrix, no memory: t is then unchanged). */
int targets_apply_affine(struct targets *t, const double m[6], int out_w, int out_h,
                         const struct targets_filter *filter, struct eng_error *err);

/* Drops the objects filter rejects, as albumentations' filter_bboxes does at the end of a
 * pipeline: min_area, min_width and min_height on the boxes as they are, min_visibility on their
 * area over the unclipped box's. */
void targets_filter(struct targets *t, const struct targets_filter *filter);

/* A nearest-neighbour inverse-map warp of a 1-channel mask through the forward map m. */
struct img *targets_warp_mask(const struct img *mask, const double m[6], int out_w, int out_h,
                              struct eng_error *err);

/* m = a after b (first b, then a). */
void targets_matrix_compose(const double a[6], const double b[6], double m[6]);
/* The inverse of m: 0, or -1 when m is singular. */
int targets_matrix_invert(const double m[6], double inv[6]);

/* The forward maps of the geometric ops (engine/policy/ops.c, engine/image/geometry.c), from their
 * arguments and the input's size, following the kernels' conventions exactly: continuous pixel
 * coordinates, rotation about (width / 2, height / 2), shears about the top-left corner as
 * torchvision's F.affine applies them, integer translations truncated. */
void targets_matrix_rotate(double m[6], double degrees, int width, int height);
void targets_matrix_shear_x(double m[6], double factor);
void targets_matrix_shear_y(double m[6], double factor);
void targets_matrix_translate_x(double m[6], double pixels);
void targets_matrix_translate_y(double m[6], double pixels);
void targets_matrix_flip_lr(double m[6], int width);
void targets_matrix_flip_ud(double m[6], int height);
void targets_matrix_resize(double m[6], int width, int height, int out_width, int out_height);
/* CenterCrop to crop_width x crop_height, zero-padded when larger. */
void targets_matrix_center_crop(double m[6], int width, int height, int crop_width,
                                int crop_height);
/* RandomCrop's drawn pad, top and left (in the padded image). */
void targets_matrix_random_crop(double m[6], int pad, int top, int left);
/* RandomResizedCrop's drawn box, resized to out_width x out_height. */
void targets_matrix_resized_crop(double m[6], int top, int left, int crop_height, int crop_width,
                                 int out_height, int out_width);
void targets_matrix_pad(double m[6], int left, int top);
/* A shift by fractional pixels (timm's TranslateXRel / TranslateYRel, through PIL's affine). */
void targets_matrix_shift(double m[6], double dx, double dy);

#endif
