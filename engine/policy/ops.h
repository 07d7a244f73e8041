/* The op registry: one descriptor per op, image or audio, drives validation, GET /v1/ops, level
 * mapping, traces and execution. Adding an op means one descriptor and one kernel. */
#ifndef AUGSERVE_ENGINE_POLICY_OPS_H
#define AUGSERVE_ENGINE_POLICY_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/img.h"
#include "core/rng.h"

#define OP_MAX_ARGS 12

enum op_arg_kind {
    OP_ARG_NUMBER,  /* a real number in [min, max] */
    OP_ARG_INTEGER, /* a whole number in [min, max] */
    OP_ARG_ENUM,    /* one of choices; the value is its index */
};

struct op_arg_desc {
    const char *name;
    enum op_arg_kind kind;
    double min, max, def;
    const char *const *choices; /* OP_ARG_ENUM: NULL-terminated */
    const char *unit;
    const char *help;
    int drawn; /* chosen at random when the policy is sampled (a crop box): traces show it, policies
                  cannot set it */
};

/* How a magnitude m becomes the op's argument, as torchvision's _apply_op does. */
enum op_level_map {
    LEVEL_NONE,         /* the op takes no magnitude */
    LEVEL_VALUE,        /* arg = m */
    LEVEL_ONE_PLUS,     /* arg = 1 + m (enhance factors) */
    LEVEL_TRUNCATE,     /* arg = (int)m, toward zero (translations) */
    LEVEL_BITS_REMOVED, /* arg = 8 - round_half_even(m) (posterize) */
};

/* What the range of m is measured in. */
enum op_level_scale {
    SCALE_ABSOLUTE,
    SCALE_WIDTH,  /* lo and hi are fractions of the image width (audio: of the time axis) */
    SCALE_HEIGHT, /* ... of the height (spectrograms: of the bins) */
};

/* A level in [0, 1] picks m in [lo, hi] of the op's documented range (the one RandAugment uses);
 * a policy may give its own range. */
struct op_level_desc {
    int arg; /* index of the argument the level sets */
    enum op_level_map map;
    enum op_level_scale scale;
    double lo, hi;
    int signed_by_default; /* a random sign applies unless the node says otherwise */
};

struct op_call;
struct target_box;
struct audio;
struct audio_spec;

/* What an op works on. Audio policies run waveform ops, then the features (log-mel), then
 * spectrogram ops; a policy never mixes image and audio ops. */
enum op_domain {
    OP_DOMAIN_IMAGE,       /* struct img; width x height pixels */
    OP_DOMAIN_WAVEFORM,    /* struct audio; "width" is the length in samples, height 1 */
    OP_DOMAIN_SPECTROGRAM, /* struct audio_spec; width is frames (time), height bins (mels) */
};

/* "image", "waveform" or "spectrogram". */
const char *op_domain_name(enum op_domain domain);

/* Clips the caller hands to the waveform ops at apply time: recorded noises (NoiseClip's "clip"
 * indexes them) and room impulse responses (Reverb's "rir"). */
struct audio_bank {
    const struct audio *const *noises;
    size_t noise_count;
    const struct audio *const *rirs;
    size_t rir_count;
};

enum op_takes {
    OP_TAKES_FILL = 1u << 0,          /* "fill": the value of uncovered pixels */
    OP_TAKES_INTERPOLATION = 1u << 1, /* "interpolation": nearest or bilinear */
};
#define OP_GEOMETRIC (OP_TAKES_FILL | OP_TAKES_INTERPOLATION)
/* A colour op: on RGBA it sees only the RGB channels and alpha is kept, since PIL (the reference)
 * refuses or mistreats alpha in most of them. */
#define OP_COLOR (1u << 2)

struct op_desc {
    const char *name;
    const char *help;
    unsigned takes; /* OP_TAKES_*: the policy keys beyond the op's own arguments */
    const struct op_arg_desc *args;
    int arg_count;
    struct op_level_desc level;
    /* A new image, or NULL with err. noise: the op application's own stream, for ops that draw
     * per-pixel randomness; every other random choice is already in call->args. */
    struct img *(*apply)(const struct img *in, const struct op_call *call, struct rng *noise,
                         struct eng_error *err);
    /* Optional. Draws the drawn arguments for an image of width x height from the policy's
     * stream at sampling time; -1 with err when the arguments cannot fit the image. */
    int (*draw)(struct op_call *call, struct rng *rng, int width, int height,
                struct eng_error *err);
    /* Optional. The output size for an input of *width x *height, for ops that change it. */
    void (*output_size)(const struct op_call *call, int *width, int *height);
    enum op_domain domain;
    /* Optional. How many applications one node of this op samples to, for an input of width x
     * height (SpecAugment's mask counts); each is drawn on its own and listed on its own in the
     * trace. Without it, one. */
    int (*count)(const struct op_call *call, int width, int height);
    /* Waveform ops: a new waveform, or NULL with err. bank: the caller's clips (may hold none). */
    struct audio *(*apply_wave)(const struct audio *in, const struct op_call *call,
                                const struct audio_bank *bank, struct rng *noise,
                                struct eng_error *err);
    /* Spectrogram ops: every random choice is in call->args. */
    struct audio_spec *(*apply_spec)(const struct audio_spec *in, const struct op_call *call,
                                     struct eng_error *err);
    /* Image ops that move pixels: the forward map m from input to output pixel coordinates
     * (targets_apply_affine's) for an input of width x height, which carries boxes, masks and
     * keypoints along; the output's size is output_size's. An image op without it leaves every
     * target where it is (point, noise and erasing ops, and the detection ops that work inside
     * boxes). */
    void (*map_targets)(const struct op_call *call, int width, int height, double m[6]);
    /* Detection ops that read the image's current boxes (absolute xyxy, count of them, none when
     * the request has no targets) instead of apply: a new image, or NULL with err. */
    struct img *(*apply_boxes)(const struct img *in, const struct op_call *call,
                               const struct target_box *boxes, size_t count, struct rng *noise,
                               struct eng_error *err);
};

/* One concrete op application: what a trace lists. */
struct op_call {
    const struct op_desc *op;
    double args[OP_MAX_ARGS];
    int fill_given;    /* fill was set by the policy */
    uint8_t fill[4];   /* per channel */
    int interpolation; /* 0 nearest, 1 bilinear */
};

/* Runs call on in: call->op->apply (apply_boxes with boxes, count), with alpha set aside for
 * colour ops; audio ops are refused. */
struct img *op_apply(const struct op_call *call, const struct img *in,
                     const struct target_box *boxes, size_t count, struct rng *noise,
                     struct eng_error *err);

const struct op_desc *op_table(size_t *count);
const struct op_desc *op_find(const char *name);
/* Index of an argument by name, or -1. */
int op_arg_index(const struct op_desc *op, const char *name);

#endif
