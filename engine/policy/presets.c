/* Presets: published policies as documents of the policy graph, one table entry each (its name,
 * help, parameters and expansion), which GET /v1/policies lists and preset_expand reads. */
#include "policy/presets.h"

#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"
#include "policy/ops.h"

/* A table and its length, for the presets whose entries share one expansion. */
#define COUNTED(table)                                                                             \
    {                                                                                              \
        table, sizeof table / sizeof table[0]                                                      \
    }

/* ---- Tables (torchvision 0.14, transforms/autoaugment.py) ----------------------------------- */

struct sub_op {
    const char *op;
    double p;
    int bin; /* of 10; -1 for ops without magnitude */
};

struct sub_policy {
    struct sub_op first, second;
};

/* Cubuk et al. 2019, as torchvision lists them. */
static const struct sub_policy autoaugment_imagenet[] = {
    {{"Posterize", 0.4, 8}, {"Rotate", 0.6, 9}},
    {{"Solarize", 0.6, 5}, {"AutoContrast", 0.6, -1}},
    {{"Equalize", 0.8, -1}, {"Equalize", 0.6, -1}},
    {{"Posterize", 0.6, 7}, {"Posterize", 0.6, 6}},
    {{"Equalize", 0.4, -1}, {"Solarize", 0.2, 4}},
    {{"Equalize", 0.4, -1}, {"Rotate", 0.8, 8}},
    {{"Solarize", 0.6, 3}, {"Equalize", 0.6, -1}},
    {{"Posterize", 0.8, 5}, {"Equalize", 1.0, -1}},
    {{"Rotate", 0.2, 3}, {"Solarize", 0.6, 8}},
    {{"Equalize", 0.6, -1}, {"Posterize", 0.4, 6}},
    {{"Rotate", 0.8, 8}, {"Color", 0.4, 0}},
    {{"Rotate", 0.4, 9}, {"Equalize", 0.6, -1}},
    {{"Equalize", 0.0, -1}, {"Equalize", 0.8, -1}},
    {{"Invert", 0.6, -1}, {"Equalize", 1.0, -1}},
    {{"Color", 0.6, 4}, {"Contrast", 1.0, 8}},
    {{"Rotate", 0.8, 8}, {"Color", 1.0, 2}},
    {{"Color", 0.8, 8}, {"Solarize", 0.8, 7}},
    {{"Sharpness", 0.4, 7}, {"Invert", 0.6, -1}},
    {{"ShearX", 0.6, 5}, {"Equalize", 1.0, -1}},
    {{"Color", 0.4, 0}, {"Equalize", 0.6, -1}},
    {{"Equalize", 0.4, -1}, {"Solarize", 0.2, 4}},
    {{"Solarize", 0.6, 5}, {"AutoContrast", 0.6, -1}},
    {{"Invert", 0.6, -1}, {"Equalize", 1.0, -1}},
    {{"Color", 0.6, 4}, {"Contrast", 1.0, 8}},
    {{"Equalize", 0.8, -1}, {"Equalize", 0.6, -1}},
};

static const struct sub_policy autoaugment_cifar10[] = {
    {{"Invert", 0.1, -1}, {"Contrast", 0.2, 6}},
    {{"Rotate", 0.7, 2}, {"TranslateX", 0.3, 9}},
    {{"Sharpness", 0.8, 1}, {"Sharpness", 0.9, 3}},
    {{"ShearY", 0.5, 8}, {"TranslateY", 0.7, 9}},
    {{"AutoContrast", 0.5, -1}, {"Equalize", 0.9, -1}},
    {{"ShearY", 0.2, 7}, {"Posterize", 0.3, 7}},
    {{"Color", 0.4, 3}, {"Brightness", 0.6, 7}},
    {{"Sharpness", 0.3, 9}, {"Brightness", 0.7, 9}},
    {{"Equalize", 0.6, -1}, {"Equalize", 0.5, -1}},
    {{"Contrast", 0.6, 7}, {"Sharpness", 0.6, 5}},
    {{"Color", 0.7, 7}, {"TranslateX", 0.5, 8}},
    {{"Equalize", 0.3, -1}, {"AutoContrast", 0.4, -1}},
    {{"TranslateY", 0.4, 3}, {"Sharpness", 0.2, 6}},
    {{"Brightness", 0.9, 6}, {"Color", 0.2, 8}},
    {{"Solarize", 0.5, 2}, {"Invert", 0.0, -1}},
    {{"Equalize", 0.2, -1}, {"AutoContrast", 0.6, -1}},
    {{"Equalize", 0.2, -1}, {"Equalize", 0.6, -1}},
    {{"Color", 0.9, 9}, {"Equalize", 0.6, -1}},
    {{"AutoContrast", 0.8, -1}, {"Solarize", 0.2, 8}},
    {{"Brightness", 0.1, 3}, {"Color", 0.7, 0}},
    {{"Solarize", 0.4, 5}, {"AutoContrast", 0.9, -1}},
    {{"TranslateY", 0.9, 9}, {"TranslateY", 0.7, 9}},
    {{"AutoContrast", 0.9, -1}, {"Solarize", 0.8, 3}},
    {{"Equalize", 0.8, -1}, {"Invert", 0.1, -1}},
    {{"TranslateY", 0.7, 9}, {"AutoContrast", 0.9, -1}},
};

static const struct sub_policy autoaugment_svhn[] = {
    {{"ShearX", 0.9, 4}, {"Invert", 0.2, -1}},
    {{"ShearY", 0.9, 8}, {"Invert", 0.7, -1}},
    {{"Equalize", 0.6, -1}, {"Solarize", 0.6, 6}},
    {{"Invert", 0.9, -1}, {"Equalize", 0.6, -1}},
    {{"Equalize", 0.6, -1}, {"Rotate", 0.9, 3}},
    {{"ShearX", 0.9, 4}, {"AutoContrast", 0.8, -1}},
    {{"ShearY", 0.9, 8}, {"Invert", 0.4, -1}},
    {{"ShearY", 0.9, 5}, {"Solarize", 0.2, 6}},
    {{"Invert", 0.9, -1}, {"AutoContrast", 0.8, -1}},
    {{"Equalize", 0.6, -1}, {"Rotate", 0.9, 3}},
    {{"ShearX", 0.9, 4}, {"Solarize", 0.3, 3}},
    {{"ShearY", 0.8, 8}, {"Invert", 0.7, -1}},
    {{"Equalize", 0.9, -1}, {"TranslateY", 0.6, 6}},
    {{"Invert", 0.9, -1}, {"Equalize", 0.6, -1}},
    {{"Contrast", 0.3, 3}, {"Rotate", 0.8, 4}},
    {{"Invert", 0.8, -1}, {"TranslateY", 0.0, 2}},
    {{"ShearY", 0.7, 6}, {"Solarize", 0.4, 8}},
    {{"Invert", 0.6, -1}, {"Rotate", 0.8, 4}},
    {{"ShearY", 0.3, 7}, {"TranslateX", 0.9, 3}},
    {{"ShearX", 0.1, 6}, {"Invert", 0.6, -1}},
    {{"Solarize", 0.7, 2}, {"TranslateY", 0.6, 7}},
    {{"ShearY", 0.8, 4}, {"Invert", 0.8, -1}},
    {{"ShearX", 0.7, 9}, {"TranslateY", 0.8, 3}},
    {{"ShearY", 0.8, 5}, {"AutoContrast", 0.7, -1}},
    {{"ShearX", 0.7, 2}, {"Invert", 0.1, -1}},
};

/* An AutoAugment preset's data: its sub-policies. */
struct sub_policies {
    const struct sub_policy *items;
    size_t count;
};

static const struct sub_policies autoaugment_imagenet_policy = COUNTED(autoaugment_imagenet);
static const struct sub_policies autoaugment_cifar10_policy = COUNTED(autoaugment_cifar10);
static const struct sub_policies autoaugment_svhn_policy = COUNTED(autoaugment_svhn);

/* RandAugment's 14 ops in torchvision's order, magnitudes in the ops' documented ranges. */
static const char *const randaugment_ops[] = {
    "Identity", "ShearX",   "ShearY",    "TranslateX", "TranslateY", "Rotate",       "Brightness",
    "Color",    "Contrast", "Sharpness", "Posterize",  "Solarize",   "AutoContrast", "Equalize",
};

/* TrivialAugmentWide (Mueller and Hutter 2021): the same ops with wider magnitude ranges. */
static const struct {
    const char *op;
    double lo, hi; /* -1, -1: no magnitude */
} trivialaugment_wide_ops[] = {
    {"Identity", -1, -1},     {"ShearX", 0, 0.99},   {"ShearY", 0, 0.99},
    {"TranslateX", 0, 32},    {"TranslateY", 0, 32}, {"Rotate", 0, 135},
    {"Brightness", 0, 0.99},  {"Color", 0, 0.99},    {"Contrast", 0, 0.99},
    {"Sharpness", 0, 0.99},   {"Posterize", 0, 6},   {"Solarize", 255, 0},
    {"AutoContrast", -1, -1}, {"Equalize", -1, -1},
};

/* AugMix (Hendrycks et al. 2020) as torchvision's AugMix: magnitude ranges over 10 bins. */
static const struct {
    const char *op;
    double lo, hi;    /* -1, -1: no magnitude */
    const char *of;   /* the range is a share of this side, or NULL */
    int all_ops_only; /* only with all_ops */
} augmix_ops[] = {
    {"ShearX", 0, 0.3, NULL, 0},
    {"ShearY", 0, 0.3, NULL, 0},
    {"TranslateX", 0, 1.0 / 3.0, "width", 0},
    {"TranslateY", 0, 1.0 / 3.0, "height", 0},
    {"Rotate", 0, 30, NULL, 0},
    {"Posterize", 4, 8, NULL, 0},
    {"Solarize", 255, 0, NULL, 0},
    {"AutoContrast", -1, -1, NULL, 0},
    {"Equalize", -1, -1, NULL, 0},
    {"Brightness", 0, 0.9, NULL, 1},
    {"Color", 0, 0.9, NULL, 1},
    {"Contrast", 0, 0.9, NULL, 1},
    {"Sharpness", 0, 0.9, NULL, 1},
};

/* timm's RandAugment ("rand-m9-n2-mstd0.5-inc1"; Wightman, pytorch-image-models,
 * timm/data/auto_augment.py): the ops, and how a level L = magnitude / 10 becomes each argument. */
struct timm_op {
    const char *name; /* the timm name */
    const char *op;   /* ours */
    double lo, hi;    /* m = lo + L (hi - lo); -1, -1: no level */
    double offset, scale;
    const char *round; /* arg = offset + scale round(m) */
    int signed_level;
};

static const struct timm_op timm_ops[] = {
    {"AutoContrast", "AutoContrast", -1, -1, 0, 1, "none", 0},
    {"Equalize", "Equalize", -1, -1, 0, 1, "none", 0},
    {"Invert", "Invert", -1, -1, 0, 1, "none", 0},
    {"Rotate", "Rotate", 0, 30, 0, 1, "none", 1},
    {"Posterize", "Posterize", 0, 4, 0, 1, "trunc", 0},
    {"PosterizeIncreasing", "Posterize", 0, 4, 4, -1, "trunc", 0},
    {"Solarize", "Solarize", 0, 256, 0, 1, "trunc", 0},
    {"SolarizeIncreasing", "Solarize", 0, 256, 256, -1, "trunc", 0},
    {"SolarizeAdd", "SolarizeAdd", 0, 110, 0, 1, "trunc", 0},
    {"Color", "Color", 0.1, 1.9, 0, 1, "none", 0},
    {"Contrast", "Contrast", 0.1, 1.9, 0, 1, "none", 0},
    {"Brightness", "Brightness", 0.1, 1.9, 0, 1, "none", 0},
    {"Sharpness", "Sharpness", 0.1, 1.9, 0, 1, "none", 0},
    {"ColorIncreasing", "Color", 0, 0.9, 1, 1, "none", 1},
    {"ContrastIncreasing", "Contrast", 0, 0.9, 1, 1, "none", 1},
    {"BrightnessIncreasing", "Brightness", 0, 0.9, 1, 1, "none", 1},
    {"SharpnessIncreasing", "Sharpness", 0, 0.9, 1, 1, "none", 1},
    {"ShearX", "ShearX", 0, 0.3, 0, 1, "none", 1},
    {"ShearY", "ShearY", 0, 0.3, 0, 1, "none", 1},
    {"TranslateXRel", "TranslateXRel", -1, -1, 0, 1, "none", 1},
    {"TranslateYRel", "TranslateYRel", -1, -1, 0, 1, "none", 1},
};

/* timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, in their order. */
static const char *const timm_rand_ops[] = {
    "AutoContrast", "Equalize",    "Invert", "Rotate",        "Posterize",
    "Solarize",     "SolarizeAdd", "Color",  "Contrast",      "Brightness",
    "Sharpness",    "ShearX",      "ShearY", "TranslateXRel", "TranslateYRel"};
static const char *const timm_rand_increasing_ops[] = {"AutoContrast",
                                                       "Equalize",
                                                       "Invert",
                                                       "Rotate",
                                                       "PosterizeIncreasing",
                                                       "SolarizeIncreasing",
                                                       "SolarizeAdd",
                                                       "ColorIncreasing",
                                                       "ContrastIncreasing",
                                                       "BrightnessIncreasing",
                                                       "SharpnessIncreasing",
                                                       "ShearX",
                                                       "ShearY",
                                                       "TranslateXRel",
                                                       "TranslateYRel"};

/* ---- Detection (Zoph et al. 2019; the TPU repository's detection/utils/autoaugment_utils.py) ---
 */

/* One entry of a sub-policy: the reference's (operation, probability, level of 10). */
struct det_entry {
    const char *op;
    double p;
    int level;
};

/* Sub-policies of two or three entries, applied in order. */
struct det_sub_policy {
    struct det_entry entries[3];
};

/* A detection preset's data: its sub-policies. */
struct det_policy {
    const struct det_sub_policy *subs;
    size_t count;
};

/* policy_v0: the paper's five sub-policies. */
static const struct det_sub_policy detection_v0[] = {
    {{{"TranslateX_BBox", 0.6, 4}, {"Equalize", 0.8, 10}}},
    {{{"TranslateY_Only_BBoxes", 0.2, 2}, {"Cutout", 0.8, 8}}},
    {{{"Sharpness", 0.0, 8}, {"ShearX_BBox", 0.4, 0}}},
    {{{"ShearY_BBox", 1.0, 2}, {"TranslateY_Only_BBoxes", 0.6, 6}}},
    {{{"Rotate_BBox", 0.6, 10}, {"Color", 1.0, 6}}},
};

static const struct det_sub_policy detection_v1[] = {
    {{{"TranslateX_BBox", 0.6, 4}, {"Equalize", 0.8, 10}}},
    {{{"TranslateY_Only_BBoxes", 0.2, 2}, {"Cutout", 0.8, 8}}},
    {{{"Sharpness", 0.0, 8}, {"ShearX_BBox", 0.4, 0}}},
    {{{"ShearY_BBox", 1.0, 2}, {"TranslateY_Only_BBoxes", 0.6, 6}}},
    {{{"Rotate_BBox", 0.6, 10}, {"Color", 1.0, 6}}},
    {{{"Color", 0.0, 0}, {"ShearX_Only_BBoxes", 0.8, 4}}},
    {{{"ShearY_Only_BBoxes", 0.8, 2}, {"Flip_Only_BBoxes", 0.0, 10}}},
    {{{"Equalize", 0.6, 10}, {"TranslateX_BBox", 0.2, 2}}},
    {{{"Color", 1.0, 10}, {"TranslateY_Only_BBoxes", 0.4, 6}}},
    {{{"Rotate_BBox", 0.8, 10}, {"Contrast", 0.0, 10}}},
    {{{"Cutout", 0.2, 2}, {"Brightness", 0.8, 10}}},
    {{{"Color", 1.0, 6}, {"Equalize", 1.0, 2}}},
    {{{"Cutout_Only_BBoxes", 0.4, 6}, {"TranslateY_Only_BBoxes", 0.8, 2}}},
    {{{"Color", 0.2, 8}, {"Rotate_BBox", 0.8, 10}}},
    {{{"Sharpness", 0.4, 4}, {"TranslateY_Only_BBoxes", 0.0, 4}}},
    {{{"Sharpness", 1.0, 4}, {"SolarizeAdd", 0.4, 4}}},
    {{{"Rotate_BBox", 1.0, 8}, {"Sharpness", 0.2, 8}}},
    {{{"ShearY_BBox", 0.6, 10}, {"Equalize_Only_BBoxes", 0.6, 8}}},
    {{{"ShearX_BBox", 0.2, 6}, {"TranslateY_Only_BBoxes", 0.2, 10}}},
    {{{"SolarizeAdd", 0.6, 8}, {"Brightness", 0.8, 10}}},
};

static const struct det_sub_policy detection_v2[] = {
    {{{"Color", 0.0, 6}, {"Cutout", 0.6, 8}, {"Sharpness", 0.4, 8}}},
    {{{"Rotate_BBox", 0.4, 8}, {"Sharpness", 0.4, 2}, {"Rotate_BBox", 0.8, 10}}},
    {{{"TranslateY_BBox", 1.0, 8}, {"AutoContrast", 0.8, 2}}},
    {{{"AutoContrast", 0.4, 6}, {"ShearX_BBox", 0.8, 8}, {"Brightness", 0.0, 10}}},
    {{{"SolarizeAdd", 0.2, 6}, {"Contrast", 0.0, 10}, {"AutoContrast", 0.6, 0}}},
    {{{"Cutout", 0.2, 0}, {"Solarize", 0.8, 8}, {"Color", 1.0, 4}}},
    {{{"TranslateY_BBox", 0.0, 4}, {"Equalize", 0.6, 8}, {"Solarize", 0.0, 10}}},
    {{{"TranslateY_BBox", 0.2, 2}, {"ShearY_BBox", 0.8, 8}, {"Rotate_BBox", 0.8, 8}}},
    {{{"Cutout", 0.8, 8}, {"Brightness", 0.8, 8}, {"Cutout", 0.2, 2}}},
    {{{"Color", 0.8, 4}, {"TranslateY_BBox", 1.0, 6}, {"Rotate_BBox", 0.6, 6}}},
    {{{"Rotate_BBox", 0.6, 10}, {"BBox_Cutout", 1.0, 4}, {"Cutout", 0.2, 8}}},
    {{{"Rotate_BBox", 0.0, 0}, {"Equalize", 0.6, 6}, {"ShearY_BBox", 0.6, 8}}},
    {{{"Brightness", 0.8, 8}, {"AutoContrast", 0.4, 2}, {"Brightness", 0.2, 2}}},
    {{{"TranslateY_BBox", 0.4, 8}, {"Solarize", 0.4, 6}, {"SolarizeAdd", 0.2, 10}}},
    {{{"Contrast", 1.0, 10}, {"SolarizeAdd", 0.2, 8}, {"Equalize", 0.2, 4}}},
};

static const struct det_sub_policy detection_v3[] = {
    {{{"Posterize", 0.8, 2}, {"TranslateX_BBox", 1.0, 8}}},
    {{{"BBox_Cutout", 0.2, 10}, {"Sharpness", 1.0, 8}}},
    {{{"Rotate_BBox", 0.6, 8}, {"Rotate_BBox", 0.8, 10}}},
    {{{"Equalize", 0.8, 10}, {"AutoContrast", 0.2, 10}}},
    {{{"SolarizeAdd", 0.2, 2}, {"TranslateY_BBox", 0.2, 8}}},
    {{{"Sharpness", 0.0, 2}, {"Color", 0.4, 8}}},
    {{{"Equalize", 1.0, 8}, {"TranslateY_BBox", 1.0, 8}}},
    {{{"Posterize", 0.6, 2}, {"Rotate_BBox", 0.0, 10}}},
    {{{"AutoContrast", 0.6, 0}, {"Rotate_BBox", 1.0, 6}}},
    {{{"Equalize", 0.0, 4}, {"Cutout", 0.8, 10}}},
    {{{"Brightness", 1.0, 2}, {"TranslateY_BBox", 1.0, 6}}},
    {{{"Contrast", 0.0, 2}, {"ShearY_BBox", 0.8, 0}}},
    {{{"AutoContrast", 0.8, 10}, {"Contrast", 0.2, 10}}},
    {{{"Rotate_BBox", 1.0, 10}, {"Cutout", 1.0, 10}}},
    {{{"SolarizeAdd", 0.8, 6}, {"Equalize", 0.8, 8}}},
};

static const struct det_policy detection_v0_policy = COUNTED(detection_v0);
static const struct det_policy detection_v1_policy = COUNTED(detection_v1);
static const struct det_policy detection_v2_policy = COUNTED(detection_v2);
static const struct det_policy detection_v3_policy = COUNTED(detection_v3);

/* The reference's level_to_arg for the ops the registry shares with classification policies:
 * arg = max(offset + round((level / 10) * hi), min), unsigned. The box ops' own level ranges are
 * the reference's already (ops.c). */
static const struct {
    const char *op;
    double hi, offset;
    const char *round;
    double min; /* -1: none */
} det_shared_levels[] = {
    {"Posterize", 4, 0, "trunc", 1}, /* int(level/10 * 4) bits; TF clamps the 8 - 0 shift to 7 */
    {"Solarize", 256, 0, "trunc", -1},    {"SolarizeAdd", 110, 0, "trunc", -1},
    {"Color", 1.8, 0.1, "none", -1},      {"Contrast", 1.8, 0.1, "none", -1},
    {"Brightness", 1.8, 0.1, "none", -1}, {"Sharpness", 1.8, 0.1, "none", -1},
};

/* ---- Audio ---------------------------------------------------------------------------------- */

/* SpecAugment's hand-made policies (Park et al. 2019, Table 1): a time warp of W, mF frequency
 * masks of at most F bins, mT time masks of at most T frames and at most p of the frames. */
struct specaugment_policy {
    int W, F, mF, T;
    double p;
    int mT;
};

static const struct specaugment_policy specaugment_lb = {80, 27, 1, 100, 1.0, 1};
static const struct specaugment_policy specaugment_ld = {80, 27, 2, 100, 1.0, 2};
static const struct specaugment_policy specaugment_sm = {40, 15, 2, 70, 0.2, 2};
static const struct specaugment_policy specaugment_ss = {40, 27, 2, 70, 0.2, 2};

/* An example graph in the style of G-Augment (Wang et al. 2022, "G-Augment: Searching for the
 * meta-structure of data augmentation policies for ASR"): a DAG whose paths run waveform ops,
 * then spectrogram ops. Its values are illustrative, not a searched policy. */
static const char gaugment_example[] =
    "{\"dag\": {\"start\": \"wave\", \"edges\": ["
    "{\"from\": \"wave\", \"to\": \"speed\", \"p\": 0.5, \"do\": {\"op\": \"Noise\", \"level\": "
    "{\"bins\": 21}, \"range\": [30, 10]}},"
    "{\"from\": \"wave\", \"to\": \"speed\", \"p\": 0.3, \"do\": {\"op\": \"Gain\", \"level\": "
    "0.5}},"
    "{\"from\": \"wave\", \"to\": \"speed\", \"p\": 0.2},"
    "{\"from\": \"speed\", \"to\": \"features\", \"p\": 0.6, \"do\": {\"op\": \"Speed\", "
    "\"level\": {\"bins\": 3}}},"
    "{\"from\": \"speed\", \"to\": \"features\", \"p\": 0.4},"
    "{\"from\": \"features\", \"to\": \"masked\", \"p\": 0.5, \"do\": {\"seq\": [{\"op\": "
    "\"TimeWarp\", \"W\": 40}, {\"op\": \"FrequencyMask\", \"F\": 27, \"count\": 2}]}},"
    "{\"from\": \"features\", \"to\": \"masked\", \"p\": 0.5, \"do\": {\"op\": "
    "\"FrequencyMask\", \"F\": 15, \"count\": 2}},"
    "{\"from\": \"masked\", \"to\": \"end\", \"p\": 0.7, \"do\": {\"op\": \"TimeMask\", \"T\": "
    "40, \"p\": 0.2, \"count\": 2}},"
    "{\"from\": \"masked\", \"to\": \"end\", \"p\": 0.3, \"do\": {\"op\": "
    "\"AdaptiveTimeMask\"}}]}}";

/* Parameters every preset takes, passed on to its geometric ops. */
struct common {
    json_t *interpolation, *fill;
};

static json_t *op_node(const char *name, const struct common *c)
{
    json_t *node = json_pack("{s:s}", "op", name);
    const struct op_desc *op = op_find(name);
    if (node && op && c->interpolation && (op->takes & OP_TAKES_INTERPOLATION))
        json_object_set(node, "interpolation", c->interpolation);
    if (node && op && c->fill && (op->takes & OP_TAKES_FILL))
        json_object_set(node, "fill", c->fill);
    return node;
}

/* Sets a bin-of-bins level on node (random bin when bin < 0). */
static void set_level(json_t *node, int bin, int bins)
{
    json_t *level = bin >= 0 ? json_pack("{s:i, s:i}", "bin", bin, "bins", bins)
                             : json_pack("{s:i}", "bins", bins);
    json_object_set_new(node, "level", level);
}

static json_t *build_randaugment(int n, int m, int bins, const struct common *c)
{
    json_t *choice = json_array();
    for (size_t i = 0; i < sizeof randaugment_ops / sizeof randaugment_ops[0]; i++) {
        json_t *node = op_node(randaugment_ops[i], c);
        const struct op_desc *op = op_find(randaugment_ops[i]);
        if (op && op->level.map != LEVEL_NONE) set_level(node, m, bins);
        json_array_append_new(choice, node);
    }
    return json_pack("{s:i, s:{s:o}}", "repeat", n, "do", "choice", choice);
}

static json_t *build_trivialaugment(int bins, const struct common *c)
{
    json_t *choice = json_array();
    for (size_t i = 0; i < sizeof trivialaugment_wide_ops / sizeof trivialaugment_wide_ops[0];
         i++) {
        json_t *node = op_node(trivialaugment_wide_ops[i].op, c);
        if (trivialaugment_wide_ops[i].lo >= 0) {
            set_level(node, -1, bins);
            json_object_set_new(
                node, "range",
                json_pack("[f, f]", trivialaugment_wide_ops[i].lo, trivialaugment_wide_ops[i].hi));
        }
        json_array_append_new(choice, node);
    }
    return json_pack("{s:o}", "choice", choice);
}

static json_t *sub_op_node(const struct sub_op *s, const struct common *c)
{
    json_t *node = op_node(s->op, c);
    if (s->bin >= 0) set_level(node, s->bin, 10);
    return json_pack("{s:f, s:o}", "p", s->p, "do", node);
}

static json_t *build_autoaugment(const struct sub_policies *table, const struct common *c)
{
    json_t *choice = json_array();
    for (size_t i = 0; i < table->count; i++)
        json_array_append_new(choice,
                              json_pack("{s:[o, o]}", "seq", sub_op_node(&table->items[i].first, c),
                                        sub_op_node(&table->items[i].second, c)));
    return json_pack("{s:o}", "choice", choice);
}

static json_t *build_augmix(int severity, int width, int depth, double alpha, int all_ops,
                            const struct common *c)
{
    json_t *ops = json_array();
    for (size_t i = 0; i < sizeof augmix_ops / sizeof augmix_ops[0]; i++) {
        if (augmix_ops[i].all_ops_only && !all_ops) continue;
        json_t *node = op_node(augmix_ops[i].op, c);
        if (augmix_ops[i].lo >= 0) {
            json_object_set_new(node, "level",
                                json_pack("{s:i, s:i}", "bins", 10, "below", severity));
            json_object_set_new(node, "range",
                                json_pack("[f, f]", augmix_ops[i].lo, augmix_ops[i].hi));
            if (augmix_ops[i].of)
                json_object_set_new(node, "range_of", json_string(augmix_ops[i].of));
        }
        json_array_append_new(ops, node);
    }
    json_t *chain_op = json_pack("{s:o}", "choice", ops);
    json_t *chain;
    if (depth > 0) {
        chain = json_pack("{s:i, s:o}", "repeat", depth, "do", chain_op);
    } else {
        /* Stochastic depth: 1, 2 or 3 ops, equally likely. */
        chain = json_pack("{s:[{s:i, s:O}, {s:i, s:O}, {s:i, s:O}]}", "choice", "repeat", 1, "do",
                          chain_op, "repeat", 2, "do", chain_op, "repeat", 3, "do", chain_op);
        json_decref(chain_op);
    }
    json_t *branches = json_array();
    for (int i = 0; i < width; i++)
        json_array_append(branches, chain);
    json_decref(chain);
    return json_pack("{s:o, s:f}", "mix", branches, "alpha", alpha);
}

static json_t *build_fixmatch_weak(const struct common *c)
{
    json_t *crop = op_node("RandomCrop", c);
    json_object_set_new(crop, "padding_fraction", json_real(0.125));
    json_object_set_new(crop, "mode", json_string("reflect"));
    return json_pack("{s:[{s:f, s:{s:s}}, o]}", "seq", "p", 0.5, "do", "op", "FlipLR", crop);
}

/* Copies the named number parameters (if given) into node. */
static void copy_params(json_t *node, const json_t *params, const char *const *names)
{
    for (const char *const *n = names; *n; n++) {
        json_t *v = params ? json_object_get(params, *n) : NULL;
        if (v) json_object_set(node, *n, v);
    }
}

static json_t *build_fixmatch_strong(const struct common *c)
{
    json_t *choice = json_array();
    for (size_t i = 0; i < sizeof randaugment_ops / sizeof randaugment_ops[0]; i++) {
        json_t *node = op_node(randaugment_ops[i], c);
        const struct op_desc *op = op_find(randaugment_ops[i]);
        if (op && op->level.map != LEVEL_NONE) set_level(node, -1, 31);
        json_array_append_new(choice, node);
    }
    return json_pack("{s:[{s:i, s:{s:o}}, {s:s, s:f, s:i}]}", "seq", "repeat", 2, "do", "choice",
                     choice, "op", "Cutout", "size_fraction", 0.5, "fill", 127);
}

static json_t *build_specaugment(const struct specaugment_policy *s, const char *value)
{
    return json_pack("{s:[{s:s, s:i}, {s:s, s:i, s:i, s:s}, {s:s, s:i, s:f, s:i, s:s}]}", "seq",
                     "op", "TimeWarp", "W", s->W, "op", "FrequencyMask", "F", s->F, "count", s->mF,
                     "value", value, "op", "TimeMask", "T", s->T, "p", s->p, "count", s->mT,
                     "value", value);
}

/* A uniformly drawn step of [lo, hi] in bins steps, as the level of op node. */
static json_t *stepped(json_t *node, int bins, double lo, double hi)
{
    json_object_set_new(node, "level", json_pack("{s:i}", "bins", bins));
    json_object_set_new(node, "range", json_pack("[f, f]", lo, hi));
    return node;
}

static json_t *build_multistyle(int noise_clips)
{
    static const char *const colours[] = {"white", "pink", "brown"};
    json_t *noises = json_array();
    for (int i = 0; i < (noise_clips ? noise_clips : 3); i++) {
        json_t *node = noise_clips ? json_pack("{s:s, s:i}", "op", "NoiseClip", "clip", i)
                                   : json_pack("{s:s, s:s}", "op", "Noise", "colour", colours[i]);
        json_array_append_new(noises, stepped(node, 31, 30, 0));
    }
    return json_pack("{s:[{s:[{s:s, s:f}, {s:s, s:f}, {s:s, s:f}]}, o, {s:o}]}", "seq", "choice",
                     "op", "Speed", "factor", 0.9, "op", "Speed", "factor", 1.0, "op", "Speed",
                     "factor", 1.1, stepped(json_pack("{s:s}", "op", "Reverb"), 9, 0.1, 0.9),
                     "choice", noises);
}

static const struct timm_op *timm_find(const char *name)
{
    for (size_t i = 0; i < sizeof timm_ops / sizeof timm_ops[0]; i++)
        if (strcmp(timm_ops[i].name, name) == 0) return &timm_ops[i];
    return NULL;
}

/* Parses the digits-led value of a section into out; -1 when it is not a whole number (up to
 * LONG_MAX, the bound timm's strings were read to) or, when integer is 0, a finite number. */
static int timm_value(const char *text, int integer, double *out)
{
    unsigned long long whole;
    if (!integer) return parse_real(text, -DBL_MAX, DBL_MAX, out) == PARSE_OK ? 0 : -1;
    if (parse_whole(text, 0, LONG_MAX, &whole) != PARSE_OK) return -1;
    *out = (double)whole;
    return 0;
}

/* doc, or NULL with err when building it ran out of memory. */
static json_t *or_no_memory(json_t *doc, struct eng_error *err)
{
    if (!doc) eng_no_memory(err);
    return doc;
}

/* "rand-m9-n2-mstd0.5-inc1" -> its graph: n times one of 15 ops, each applied with p. */
static json_t *build_timm_rand(const char *config, const struct common *c, struct eng_error *err)
{
    double magnitude = 10, layers = 2, std = 0, max = 10, p = 0.5;
    int increasing = 0;
    char *copy = strdup(config);
    if (!copy) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory");
        return NULL;
    }
    /* strsep, unlike strtok, yields the empty sections of "rand--m9" or "rand-m9-". timm skips
     * them, with any section that holds no digit; both are refused here as the typos they are. */
    char *rest = copy;
    strsep(&rest, "-"); /* "rand" */
    for (char *section; (section = strsep(&rest, "-"));) {
        if (!*section) {
            eng_fail(err, ENG_INVALID,
                     "timm RandAugment \"%s\": an empty section; sections are separated by one "
                     "\"-\"",
                     config);
            free(copy);
            return NULL;
        }
        size_t key_len = strcspn(section, "0123456789");
        const char *value = section + key_len;
        double v;
        int ok = 0;
        if (key_len == 1 && section[0] == 'm')
            ok = timm_value(value, 1, &magnitude) == 0;
        else if (key_len == 1 && section[0] == 'n')
            ok = timm_value(value, 1, &layers) == 0;
        else if (key_len == 4 && strncmp(section, "mstd", 4) == 0)
            ok = timm_value(value, 0, &std) == 0;
        else if (key_len == 4 && strncmp(section, "mmax", 4) == 0)
            ok = timm_value(value, 1, &max) == 0;
        else if (key_len == 1 && section[0] == 'p')
            ok = timm_value(value, 0, &p) == 0;
        else if (key_len == 3 && strncmp(section, "inc", 3) == 0) {
            /* timm takes bool() of the text: any value, "inc0" too, turns it on. */
            ok = *value != '\0' && timm_value(value, 0, &v) == 0;
            increasing = 1;
        }
        if (!ok) {
            eng_fail(err, ENG_INVALID,
                     "timm RandAugment \"%s\": section \"%s\" is not one of m<int>, n<int>, "
                     "mstd<number>, mmax<int>, p<number>, inc<number>",
                     config, section);
            free(copy);
            return NULL;
        }
    }
    free(copy);
    if (magnitude < 0 || magnitude > 1000 || layers < 0 || layers > 16 || std < 0 || max < 0 ||
        max > 1000 || p < 0 || p > 1) {
        eng_fail(err, ENG_INVALID,
                 "timm RandAugment \"%s\": needs m in [0, 1000], n in [0, 16], mstd >= 0, mmax in "
                 "[0, 1000], p in [0, 1]",
                 config);
        return NULL;
    }
    const char *const *names = increasing ? timm_rand_increasing_ops : timm_rand_ops;
    json_t *choice = json_array();
    /* mmax0 means no limit in timm (its "or" falls back to 10). */
    double upper = max > 0 ? max : 10;
    for (size_t i = 0; i < 15; i++) {
        const struct timm_op *t = timm_find(names[i]);
        json_t *node = op_node(t->op, c);
        if (t->lo >= 0 || strncmp(t->name, "Translate", 9) == 0) {
            json_t *level = json_pack("{s:f, s:f, s:f}", "magnitude", magnitude, "max", upper,
                                      "std", std > 100 ? 0 : std);
            if (std > 100) json_object_set_new(level, "uniform", json_true());
            json_object_set_new(node, "level", level);
            json_object_set_new(node, "random_sign", json_boolean(t->signed_level));
        }
        if (t->lo >= 0) {
            json_object_set_new(node, "range", json_pack("[f, f]", t->lo, t->hi));
            json_object_set_new(node, "map",
                                json_pack("{s:f, s:f, s:s}", "offset", t->offset, "scale", t->scale,
                                          "round", t->round));
        }
        json_array_append_new(choice, json_pack("{s:f, s:o}", "p", p, "do", node));
    }
    return or_no_memory(json_pack("{s:i, s:{s:o}}", "repeat", (int)layers, "do", "choice", choice),
                        err);
}

/* The reference's Cutout: a square of side 2 int(level/10 * 100), its cutout_const. */
static int det_cutout_side(int level)
{
    return 2 * (int)(level / 10.0 * 100);
}

/* One entry as a node: op nodes at the reference's level {"magnitude": level} (of 10), wrapped in
 * {"p"}; the *_Only_BBoxes ops take the probability themselves, per box. */
static json_t *det_entry_node(const struct det_entry *e, const struct common *c)
{
    json_t *node = op_node(e->op, c);
    const struct op_desc *op = op_find(e->op);
    if (strcmp(e->op, "Cutout") == 0) {
        json_object_set_new(node, "size", json_integer(det_cutout_side(e->level)));
        json_object_set_new(node, "size_fraction", json_integer(0));
    } else if (op && op->level.map != LEVEL_NONE) {
        json_object_set_new(node, "level", json_pack("{s:i}", "magnitude", e->level));
    }
    for (size_t i = 0; i < sizeof det_shared_levels / sizeof det_shared_levels[0]; i++) {
        if (strcmp(det_shared_levels[i].op, e->op) != 0) continue;
        json_t *map = json_pack("{s:f, s:s}", "offset", det_shared_levels[i].offset, "round",
                                det_shared_levels[i].round);
        if (det_shared_levels[i].min >= 0)
            json_object_set_new(map, "min", json_real(det_shared_levels[i].min));
        json_object_set_new(node, "range", json_pack("[i, f]", 0, det_shared_levels[i].hi));
        json_object_set_new(node, "map", map);
        json_object_set_new(node, "random_sign", json_false());
    }
    if (strstr(e->op, "_Only_BBoxes")) {
        json_object_set_new(node, "prob", json_real(e->p));
        return node;
    }
    return json_pack("{s:f, s:o}", "p", e->p, "do", node);
}

static json_t *build_detection(const struct det_policy *d, const struct common *c)
{
    json_t *choice = json_array();
    for (size_t i = 0; i < d->count; i++) {
        json_t *seq = json_array();
        for (int k = 0; k < 3 && d->subs[i].entries[k].op; k++)
            json_array_append_new(seq, det_entry_node(&d->subs[i].entries[k], c));
        json_array_append_new(choice, json_pack("{s:o}", "seq", seq));
    }
    return json_pack("{s:o}", "choice", choice);
}

/* An integer parameter in [min, max], def when absent. */
static int int_param(const json_t *params, const char *name, int def, int min, int max, int *out,
                     struct eng_error *err)
{
    json_t *v = params ? json_object_get(params, name) : NULL;
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return eng_fail(err, ENG_INVALID,
                        "preset parameter \"%s\" must be a whole number in [%d, %d]", name, min,
                        max);
    *out = (int)json_integer_value(v);
    return 0;
}

/* A boolean parameter, def when absent. */
static int bool_param(const json_t *params, const char *name, int def, int *out,
                      struct eng_error *err)
{
    json_t *v = params ? json_object_get(params, name) : NULL;
    if (v && !json_is_boolean(v))
        return eng_fail(err, ENG_INVALID, "preset parameter \"%s\" must be true or false", name);
    *out = v ? json_is_true(v) : def;
    return 0;
}

static struct common common_of(const json_t *params)
{
    struct common c = {NULL, NULL};
    if (params) {
        c.interpolation = json_object_get(params, "interpolation");
        c.fill = json_object_get(params, "fill");
    }
    return c;
}

/* ---- Expansions: a preset's parameters into its document ------------------------------------ */

static json_t *expand_randaugment(const struct preset_info *preset, const char *name,
                                  const json_t *params, struct eng_error *err)
{
    int n = 0, m = 0, bins = 0;
    if (int_param(params, "bins", 31, 2, 1000, &bins, err) ||
        int_param(params, "n", 2, 0, 16, &n, err) ||
        int_param(params, "m", 9, 0, bins - 1, &m, err))
        return NULL;
    struct common c = common_of(params);
    return or_no_memory(build_randaugment(n, m, bins, &c), err);
}

static json_t *expand_trivialaugment(const struct preset_info *preset, const char *name,
                                     const json_t *params, struct eng_error *err)
{
    int bins = 0;
    if (int_param(params, "bins", 31, 2, 1000, &bins, err)) return NULL;
    struct common c = common_of(params);
    return or_no_memory(build_trivialaugment(bins, &c), err);
}

/* data: the struct sub_policies. */
static json_t *expand_autoaugment(const struct preset_info *preset, const char *name,
                                  const json_t *params, struct eng_error *err)
{
    struct common c = common_of(params);
    return or_no_memory(build_autoaugment(preset->data, &c), err);
}

static json_t *expand_augmix(const struct preset_info *preset, const char *name,
                             const json_t *params, struct eng_error *err)
{
    int severity = 0, width = 0, depth = 0, all_ops = 1, jsd = 0;
    double alpha = 1.0;
    json_t *alpha_v = params ? json_object_get(params, "alpha") : NULL;
    if (int_param(params, "severity", 3, 1, 10, &severity, err) ||
        int_param(params, "width", 3, 1, 16, &width, err) ||
        int_param(params, "depth", -1, -1, 16, &depth, err))
        return NULL;
    if (alpha_v && (!json_is_number(alpha_v) ||
                    !(json_number_value(alpha_v) >= 1e-3 && json_number_value(alpha_v) <= 1e3))) {
        eng_fail(err, ENG_INVALID, "preset parameter \"alpha\" must be in [0.001, 1000]");
        return NULL;
    }
    if (alpha_v) alpha = json_number_value(alpha_v);
    if (bool_param(params, "all_ops", 1, &all_ops, err) || bool_param(params, "jsd", 0, &jsd, err))
        return NULL;
    struct common c = common_of(params);
    json_t *built = build_augmix(severity, width, depth == 0 ? -1 : depth, alpha, all_ops, &c);
    /* The Jensen-Shannon consistency loss wants the clean image and two augmented views. */
    if (built && jsd)
        built = json_pack("{s:[{s:s}, O, o]}", "views", "op", "Identity", built, built);
    return or_no_memory(built, err);
}

/* data: the op's name. The op validates the parameters, and names them, when the document is
 * parsed. */
static json_t *expand_op(const struct preset_info *preset, const char *name, const json_t *params,
                         struct eng_error *err)
{
    json_t *built = json_pack("{s:s}", "op", (const char *)preset->data);
    copy_params(built, params, preset->parameters);
    return or_no_memory(built, err);
}

static json_t *expand_fixmatch_strong(const struct preset_info *preset, const char *name,
                                      const json_t *params, struct eng_error *err)
{
    struct common c = common_of(params);
    return or_no_memory(build_fixmatch_strong(&c), err);
}

static json_t *expand_fixmatch_weak(const struct preset_info *preset, const char *name,
                                    const json_t *params, struct eng_error *err)
{
    struct common c = common_of(params);
    return or_no_memory(build_fixmatch_weak(&c), err);
}

/* name: timm's string, "rand-m9-n2-mstd0.5-inc1" or any other of its grammar. */
static json_t *expand_timm(const struct preset_info *preset, const char *name, const json_t *params,
                           struct eng_error *err)
{
    /* timm's defaults: its hparams' img_mean fill, and bilinear (timm picks bilinear or bicubic
     * at random; there is no bicubic kernel here). */
    struct common timm = common_of(params);
    json_t *gray = json_integer(128), *bilinear = json_string("bilinear");
    if (!timm.fill) timm.fill = gray;
    if (!timm.interpolation) timm.interpolation = bilinear;
    json_t *built = build_timm_rand(name, &timm, err);
    json_decref(gray);
    json_decref(bilinear);
    return built;
}

/* data: the struct specaugment_policy. */
static json_t *expand_specaugment(const struct preset_info *preset, const char *name,
                                  const json_t *params, struct eng_error *err)
{
    json_t *value = params ? json_object_get(params, "value") : NULL;
    if (value && !json_is_string(value)) {
        eng_fail(err, ENG_INVALID, "preset parameter \"value\" must be \"zero\" or \"mean\"");
        return NULL;
    }
    /* The mask ops check the value when the document is parsed. */
    return or_no_memory(build_specaugment(preset->data, value ? json_string_value(value) : "zero"),
                        err);
}

static json_t *expand_multistyle(const struct preset_info *preset, const char *name,
                                 const json_t *params, struct eng_error *err)
{
    int noise_clips = 0;
    if (int_param(params, "noise_clips", 0, 0, 64, &noise_clips, err)) return NULL;
    return or_no_memory(build_multistyle(noise_clips), err);
}

/* data: the document, as JSON text. */
static json_t *expand_text(const struct preset_info *preset, const char *name, const json_t *params,
                           struct eng_error *err)
{
    return or_no_memory(json_loads(preset->data, 0, NULL), err);
}

/* data: the struct det_policy. */
static json_t *expand_detection(const struct preset_info *preset, const char *name,
                                const json_t *params, struct eng_error *err)
{
    /* The reference's replace value, gray 128, unless the document gives its own fill. */
    struct common det = common_of(params);
    json_t *gray = json_integer(128);
    if (!det.fill) det.fill = gray;
    json_t *built = build_detection(preset->data, &det);
    json_decref(gray);
    return or_no_memory(built, err);
}

/* ---- The table ------------------------------------------------------------------------------ */

static const char *const image_parameters[] = {"interpolation", "fill", NULL};
static const char *const randaugment_parameters[] = {"n",    "m", "bins", "interpolation",
                                                     "fill", NULL};
static const char *const trivialaugment_parameters[] = {"bins", "interpolation", "fill", NULL};
static const char *const augmix_parameters[] = {
    "severity", "width", "depth", "alpha", "all_ops", "jsd", "interpolation", "fill", NULL};
static const char *const cutout_parameters[] = {"size", "size_fraction", "fill", NULL};
static const char *const patch_parameters[] = {"size", "size_fraction", "sigma", NULL};
static const char *const fill_parameters[] = {"fill", NULL};
static const char *const specaugment_parameters[] = {"value", NULL};
static const char *const multistyle_parameters[] = {"noise_clips", NULL};
static const char *const no_parameters[] = {NULL};

static const struct preset_info presets[] = {
    {.name = "randaugment",
     .help = "RandAugment (Cubuk et al. 2020), torchvision's: n ops (default 2) drawn uniformly "
             "from 14, each at magnitude bin m (default 9) of bins (default 31)",
     .parameters = randaugment_parameters,
     .expand = expand_randaugment},
    {.name = "trivialaugment-wide",
     .help = "TrivialAugmentWide (Mueller and Hutter 2021): one op of 14, at a uniformly drawn "
             "bin of bins (default 31), wide ranges",
     .parameters = trivialaugment_parameters,
     .expand = expand_trivialaugment},
    {.name = "autoaugment-imagenet",
     .help = "AutoAugment's ImageNet policy (Cubuk et al. 2019): one of 25 sub-policies of two "
             "ops, each applied with its probability",
     .parameters = image_parameters,
     .expand = expand_autoaugment,
     .data = &autoaugment_imagenet_policy},
    {.name = "autoaugment-cifar10",
     .help = "AutoAugment's CIFAR-10 policy: one of 25 sub-policies",
     .parameters = image_parameters,
     .expand = expand_autoaugment,
     .data = &autoaugment_cifar10_policy},
    {.name = "autoaugment-svhn",
     .help = "AutoAugment's SVHN policy: one of 25 sub-policies",
     .parameters = image_parameters,
     .expand = expand_autoaugment,
     .data = &autoaugment_svhn_policy},
    {.name = "augmix",
     .help = "AugMix (Hendrycks et al. 2020), torchvision's: width (default 3) chains of depth "
             "(1-3 at random by default) ops, each at a random bin below severity (default 3) of "
             "10, blended with Dirichlet(alpha) weights and a Beta(alpha, alpha) skip (alpha "
             "default 1); all_ops (default true) adds the colour ops; jsd (default false) gives "
             "three views per sample: the clean image and two AugMix images",
     .parameters = augmix_parameters,
     .expand = expand_augmix},
    {.name = "cutout",
     .help = "Cutout (DeVries and Taylor 2017): a square of fill (default 0) with side "
             "size_fraction (default 0.5) of the shorter side, or size pixels, at a random centre",
     .parameters = cutout_parameters,
     .expand = expand_op,
     .data = "Cutout"},
    {.name = "patch-gaussian",
     .help = "Patch Gaussian (Lopes et al. 2019): Gaussian noise of sigma (default 0.5) on the "
             "[0, 1] image inside a square of side size_fraction (default 0.5) or size pixels, at "
             "a random centre",
     .parameters = patch_parameters,
     .expand = expand_op,
     .data = "PatchGaussian"},
    {.name = "fixmatch-strong",
     .help = "FixMatch's strong augmentation (Sohn et al. 2020): RandAugment's 14 ops, two drawn "
             "per sample, each at a uniformly random magnitude bin of 31, then Cutout of half the "
             "shorter side filled with gray 127",
     .parameters = image_parameters,
     .expand = expand_fixmatch_strong},
    {.name = "rand-m9-n2-mstd0.5-inc1",
     .help = "timm's RandAugment grammar (Cubuk et al. 2020 as pytorch-image-models implements "
             "it): rand, then sections m (magnitude of 10, default 10), n (ops, 2), mstd "
             "(magnitude noise std; above 100: uniform), mmax (clip, 10), p (per-op probability, "
             "0.5), inc (increasing ops; any value turns it on, as in timm)",
     .parameters = image_parameters,
     .expand = expand_timm,
     .prefix = "rand"},
    {.name = "fixmatch-weak",
     .help = "FixMatch's weak augmentation (Sohn et al. 2020): a random horizontal flip, then a "
             "random crop after 12.5% reflect padding",
     .parameters = fill_parameters,
     .expand = expand_fixmatch_weak},
    {.name = "specaugment-LB",
     .help = "SpecAugment LB (Park et al. 2019): TimeWarp W 80, 1 FrequencyMask F 27, 1 TimeMask "
             "T 100 p 1.0; value (zero, default, or mean) fills the masks",
     .parameters = specaugment_parameters,
     .expand = expand_specaugment,
     .data = &specaugment_lb},
    {.name = "specaugment-LD",
     .help = "SpecAugment LD: TimeWarp W 80, 2 FrequencyMasks F 27, 2 TimeMasks T 100 p 1.0; "
             "value (zero or mean)",
     .parameters = specaugment_parameters,
     .expand = expand_specaugment,
     .data = &specaugment_ld},
    {.name = "specaugment-SM",
     .help = "SpecAugment SM: TimeWarp W 40, 2 FrequencyMasks F 15, 2 TimeMasks T 70 p 0.2; value "
             "(zero or mean)",
     .parameters = specaugment_parameters,
     .expand = expand_specaugment,
     .data = &specaugment_sm},
    {.name = "specaugment-SS",
     .help = "SpecAugment SS: TimeWarp W 40, 2 FrequencyMasks F 27, 2 TimeMasks T 70 p 0.2; value "
             "(zero or mean)",
     .parameters = specaugment_parameters,
     .expand = expand_specaugment,
     .data = &specaugment_ss},
    {.name = "multistyle",
     .help = "Multistyle training: Speed 0.9, 1.0 or 1.1 (Ko et al. 2015), a synthetic room with "
             "rt60 0.1 to 0.9 s, then noise at 0 to 30 dB SNR (the ranges of Kim et al. 2017's "
             "room simulator), each uniform over its steps; white, pink or brown noise, or with "
             "noise_clips n > 0 one of the request's first n clips",
     .parameters = multistyle_parameters,
     .expand = expand_multistyle},
    {.name = "gaugment-example",
     .help = "An example graph in G-Augment's style (Wang et al. 2022): a DAG of noise or gain, "
             "speed, then warps and masks; illustrative values",
     .parameters = no_parameters,
     .expand = expand_text,
     .data = gaugment_example},
    {.name = "detection-v0",
     .help = "The detection AutoAugment policy of Zoph et al. 2019 (policy_v0 of the TPU "
             "reference): one of 5 sub-policies of two box-aware or colour ops, levels of 10, "
             "fill 128; boxes, masks and keypoints follow",
     .parameters = image_parameters,
     .expand = expand_detection,
     .data = &detection_v0_policy},
    {.name = "detection-v1",
     .help = "The TPU reference's policy_v1: 20 sub-policies (v0's first)",
     .parameters = image_parameters,
     .expand = expand_detection,
     .data = &detection_v1_policy},
    {.name = "detection-v2",
     .help = "The TPU reference's policy_v2: 15 sub-policies of three ops",
     .parameters = image_parameters,
     .expand = expand_detection,
     .data = &detection_v2_policy},
    {.name = "detection-v3",
     .help = "The TPU reference's policy_v3: 15 sub-policies of two ops",
     .parameters = image_parameters,
     .expand = expand_detection,
     .data = &detection_v3_policy},
};

const struct preset_info *preset_list(size_t *count)
{
    *count = sizeof presets / sizeof presets[0];
    return presets;
}

const struct preset_info *preset_find(const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const char *prefix = presets[i].prefix;
        size_t length = prefix ? strlen(prefix) : 0;
        if (strcmp(presets[i].name, name) == 0 || (prefix && strncmp(name, prefix, length) == 0 &&
                                                   (name[length] == '\0' || name[length] == '-')))
            return &presets[i];
    }
    return NULL;
}

/* The parameters, when given, hold "preset" and keys of allowed only. */
static int check_params(const json_t *params, const char *const *allowed, struct eng_error *err)
{
    const char *key;
    json_t *value;
    if (!params) return 0;
    json_object_foreach((json_t *)params, key, value)
    {
        int known = strcmp(key, "preset") == 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(key, *a) == 0;
        if (!known) return eng_fail(err, ENG_INVALID, "unknown preset parameter \"%s\"", key);
    }
    return 0;
}

json_t *preset_expand(const json_t *doc, struct eng_error *err)
{
    const json_t *params = json_is_object(doc) ? doc : NULL;
    const char *name = json_is_string(doc) ? json_string_value(doc)
                                           : json_string_value(json_object_get(doc, "preset"));
    if (!name) {
        eng_fail(err, ENG_INVALID, "\"preset\" must name a preset (GET /v1/policies lists them)");
        return NULL;
    }
    const struct preset_info *preset = preset_find(name);
    if (!preset) {
        eng_fail(err, ENG_INVALID,
                 "unknown preset \"%s\" (GET /v1/policies lists presets and saved policies)", name);
        return NULL;
    }
    if (check_params(params, preset->parameters, err) != 0) return NULL;
    return preset->expand(preset, name, params, err);
}
