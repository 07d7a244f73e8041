/* The policy area: what augments a sample, as data.
 *
 *   ops.c             the op registry (policy/ops.h): one descriptor per image or audio op
 *   parse.c           documents (JSON, or a preset's name) into one graph model: op, seq, choice,
 *                     p, repeat, mix, dag, views, CopyPaste; domain.c checks what each part is for
 *   presets.c         published policies as documents of that model (policy/presets.h)
 *   saved.c           named documents the server saved, usable as presets are (policy/saved.h)
 *   sample.c          sampling: a walk of the graph deciding every coin flip, branch and argument
 *   execute.c         execution: a trace applied to pixels and targets, or to audio
 *   trace.c, cache.c  a trace's memory and JSON; parsed policies by their text
 *   audio_pipeline.c  one clip through an audio policy (policy/audio_pipeline.h)
 *
 * Invariants. Running a policy is two steps, sample (which gives a trace) then execute, and the
 * draws never depend on pixel or sample values: sampling sees sizes only. Every random draw is
 * keyed by (seed, input, sample, view): the walk reads stream RNG_STREAM_POLICY, op application i
 * its noise from RNG_STREAM_OP(i), each view its own streams, so outputs depend neither on
 * threads nor on order. A parsed policy is immutable and reference-counted, a sampled trace
 * immutable: any number of threads may share either, and the cache locks itself. The caller owns
 * what a function returns (policy_free, trace_free, img_free, ...); inputs are never modified,
 * but for the targets that trace_apply_targets and trace_apply_inputs move in place.
 *
 * A policy is for images or for audio. An audio policy runs its waveform ops, then (outside the
 * policy) the features turn the waveform into a frames x mels spectrogram, then its spectrogram
 * ops: parsing refuses a waveform op that could run after a spectrogram op. */
#ifndef AUGSERVE_ENGINE_POLICY_POLICY_H
#define AUGSERVE_ENGINE_POLICY_POLICY_H

#include <jansson.h>
#include <stdint.h>

#include "audio/audio.h"
#include "core/error.h"
#include "core/img.h"
#include "policy/ops.h"

/* Seeds stay below 2^53 so that JavaScript clients read them back exactly. */
#define POLICY_MAX_SEED 9007199254740991ull

/* A validated graph; immutable once parsed, so threads may share it. */
struct policy;
/* The concrete op applications of one sample. */
struct trace;

/* Parses a policy document: a JSON node, or a string naming a preset ("randaugment") or a saved
 * policy (policy/saved.h).
 * Errors name the JSON pointer of the bad node: "/seq/1/degrees: must be in [-180, 180]". */
struct policy *policy_parse(const json_t *doc, struct eng_error *err);
/* The same from text: JSON, or a bare preset name. */
struct policy *policy_parse_text(const char *text, struct eng_error *err);
/* What goes before a parse error's message when it is shown: "policy" when the message starts
 * with the bad node's pointer ("/seq/1: ..." reads "policy/seq/1: ..."), "" when it says what it
 * is about already ("policy: not JSON ...", "out of memory while parsing the policy"). */
const char *policy_error_prefix(const struct eng_error *err);
/* Releases a reference: parsed and cached policies are reference-counted. */
void policy_free(struct policy *p);

/* Parsed policies by their exact text, for a server that sees the same few policies again and
 * again; the least recently used entry makes room. Safe from any thread. */
struct policy_cache;
struct policy_cache *policy_cache_new(size_t capacity);
/* policy_parse_text through the cache; the result is a reference, released with policy_free. */
struct policy *policy_cache_parse(struct policy_cache *c, const char *text, struct eng_error *err);
void policy_cache_free(struct policy_cache *c);

/* The compiled graph as a document (presets and saved policies expanded); the caller owns the
 * reference. */
json_t *policy_to_json(const struct policy *p);
/* Whether the document named a saved policy: then only policy_to_json says for good what it
 * runs, since the name may later mean another document or none. */
int policy_uses_saved(const struct policy *p);

/* Which ops the policy holds: a set of these bits; 0 for a policy without ops. Image policies run
 * through policy_sample and trace_apply, audio ones through policy_sample_audio, trace_apply_wave
 * and trace_apply_spec; each refuses the other kind. */
#define POLICY_IMAGE       (1u << OP_DOMAIN_IMAGE)
#define POLICY_WAVEFORM    (1u << OP_DOMAIN_WAVEFORM)
#define POLICY_SPECTROGRAM (1u << OP_DOMAIN_SPECTROGRAM)
unsigned policy_domain(const struct policy *p);

/* Walks the graph (its first view) for one sample of an input image of the given size. */
struct trace *policy_sample(const struct policy *p, uint64_t seed, uint32_t input, uint32_t sample,
                            int width, int height, struct eng_error *err);

/* A policy whose root is {"views": [node, ...]} gives several outputs per sample (AugMix's JSD
 * mode: the clean image and two augmented views); every other policy has one view. */
int policy_view_count(const struct policy *p);
/* policy_sample for view `view` (< policy_view_count): each view draws from its own streams. */
struct trace *policy_sample_view(const struct policy *p, uint64_t seed, uint32_t input,
                                 uint32_t sample, uint32_t view, int width, int height,
                                 struct eng_error *err);

/* Applies the trace; returns a new image (the input is not modified). The seed coordinates feed
 * the per-op noise streams. */
struct img *trace_apply(const struct trace *t, const struct img *in, uint64_t seed, uint32_t input,
                        uint32_t sample, struct eng_error *err);

struct targets;
struct targets_filter;

/* trace_apply for an image and its targets together (targets.h): each op's pixels, then its
 * map_targets moves the targets (boxes by their corners, clipped; masks warped; keypoints
 * exactly, flagged invisible outside), with the boxes of that moment handed to the detection
 * ops that read them. Objects left with no area are dropped on the way; filter (NULL: none)
 * applies at the end. targets, for an image of in's size, is updated in place, and may be partly
 * moved on failure. A trace with a mix is refused (see policy_maps_targets). */
struct img *trace_apply_targets(const struct trace *t, const struct img *in,
                                struct targets *targets, const struct targets_filter *filter,
                                uint64_t seed, uint32_t input, uint32_t sample,
                                struct eng_error *err);

/* 0 when the policy can carry targets; -1 with err for a policy holding a mix, which blends the
 * image with differently transformed copies of itself, so no one transform maps the targets. */
int policy_maps_targets(const struct policy *p, struct eng_error *err);

/* ---- Batches: CopyPaste ---------------------------------------------------------------------
 * {"op": "CopyPaste", "jitter": "lsj" | "ssj" | [lo, hi], "flip_p": 0.5, "blend_sigma": 0,
 * "min_area": 0, "fill": ...} pastes objects from another input of the same request onto the
 * image (image/copy_paste.h, with the image at that point of the policy as dst): the source is
 * drawn uniformly among the other inputs, and both jitterings and the chosen objects are drawn
 * with it when the policy is sampled, so the trace shows them. The source is the other input as
 * posted, not augmented, and sampling sees its size and object count. Every input needs targets
 * with a mask per object (or no objects). The node is no registry op: it reads the request's
 * other inputs, which one image's op cannot. */

/* The inputs of one request: each one's image as posted and its targets (targets NULL: none has
 * any; targets[i] NULL: input i has none). */
struct policy_inputs {
    uint32_t count;
    const struct img *const *images;
    const struct targets *const *targets;
};

/* Where a pasted object came from: its input and its id there. */
struct policy_origin {
    uint32_t input;
    int id;
};

/* Pasted objects get negative ids in the moved targets: id -1 - k is items[k]. */
struct policy_origins {
    struct policy_origin *items;
    size_t count;
};
void policy_origins_free(struct policy_origins *o);

/* policy_sample_view for input `input` of inputs (its image's size). Without CopyPaste, the same
 * trace as policy_sample_view; with it, an error when the request has one input or an input
 * lacks masks, whether or not this sample reaches the node. */
struct trace *policy_sample_inputs(const struct policy *p, uint64_t seed,
                                   const struct policy_inputs *inputs, uint32_t input,
                                   uint32_t sample, uint32_t view, struct eng_error *err);

/* trace_apply_targets on input `input` of inputs, whose other inputs the trace's CopyPaste items
 * paste from; targets is the moved copy of the input's own, and origins (empty at first) says
 * where the pasted ones came from. */
struct img *trace_apply_inputs(const struct trace *t, const struct policy_inputs *inputs,
                               uint32_t input, struct targets *targets,
                               const struct targets_filter *filter, struct policy_origins *origins,
                               uint64_t seed, uint32_t sample, struct eng_error *err);

/* Walks view `view` for one sample of a waveform of length samples. The sizes follow the ops:
 * waveform ops see the length (Speed changes it), spectrogram ops the frames the features will
 * give for the length at that point (framing, audio/audio.h's), and bins. framing may be NULL for
 * policies without spectrogram ops. A waveform may grow to at most 4 x length. */
struct trace *policy_sample_audio(const struct policy *p, uint64_t seed, uint32_t input,
                                  uint32_t sample, uint32_t view, size_t length,
                                  const struct audio_framing *framing, struct eng_error *err);

/* The trace's waveform ops on in (not modified), a new waveform; bank holds the request's noise
 * clips and impulse responses (NULL: none). Op application i draws its noise from stream
 * RNG_STREAM_OP(i) of the seed coordinates, as trace_apply. */
struct audio *trace_apply_wave(const struct trace *t, const struct audio *in,
                               const struct audio_bank *bank, uint64_t seed, uint32_t input,
                               uint32_t sample, struct eng_error *err);
/* The trace's spectrogram ops on in (not modified), the features of trace_apply_wave's output:
 * a new spectrogram. Their random choices are all in the trace. */
struct audio_spec *trace_apply_spec(const struct trace *t, const struct audio_spec *in,
                                    struct eng_error *err);

/* [{"op": "Rotate", "degrees": 9.0, ...}, {"mix": {"m": ..., "weights": [...], "branches":
 * [[...], ...]}}]; the caller owns the reference. */
json_t *trace_to_json(const struct trace *t);
/* Number of op applications, mix branches included. */
size_t trace_op_count(const struct trace *t);

/* What executing a trace will cost, known from the sizes its sampling saw, so that a request can
 * be refused before any pixel or sample is touched. */
struct trace_cost {
    /* Every op application's output size summed (pixels; for audio, samples, and then values of
     * the spectrogram), plus per mix a blend of the image with each branch. */
    double work;
    /* The largest output of any op, its size, and the op (NULL for a trace without ops). */
    double peak;
    int peak_width, peak_height;
    const char *peak_op;
};
struct trace_cost trace_cost(const struct trace *t);
void trace_free(struct trace *t);

/* ---- CTAugment ------------------------------------------------------------------------------
 * ReMixMatch's Control Theory Augment, as google-research/fixmatch's libml/ctaugment.py (with the
 * settings its cta/lib/train.py passes): a state of rates that learns, from a model's feedback
 * on probe views, how hard each op may be, and draws strong augmentations from it.
 *
 * The state. 19 ops, each with 0 to 2 arguments, each argument cut into bins (17, but posterize
 * 8, rescale 17 and 6, identity none); one rate per bin, 1 at first. Settings: depth 2 (ops per
 * policy), decay 0.99, threshold 0.8. Rates are float32, as the reference's numpy arrays.
 *
 * Drawing (ctaug_draw). Each of the depth ops is chosen uniformly among the 19 (identity and
 * cutout included). Then, per argument, r ~ U[0, 1) and a bin b with probability q_b:
 *     p = rate + (1 - decay);  p = p / max(p);  p[p < threshold] = 0;  q = p / sum(p)
 * in that order, in float32 (the sum in numpy's pairwise order, so q is the reference's to the
 * bit); the argument's value is (b + r) / bins. A probe (probe = true) draws every value
 * U[0, 1) instead. A policy is the list of (op, values), and values in [0, 1] are all that the
 * application and the feedback read.
 *
 * Feedback (ctaug_feedback). For each op of a probe's policy and each of its arguments, the bin
 * b = int(value * bins * 0.999) gets rate = decay * rate + (1 - decay) * proximity (in double,
 * stored as float32), where proximity = 1 - 0.5 * sum_c |p_c - onehot(y)_c| for the model's class
 * probabilities p on the probe view and the true label y (ctaug_proximity), or is given.
 *
 * Applying (ctaug_apply), per op with level l = its value (Pillow 9.4 semantics, bit-exact):
 *   autocontrast, equalize, invert  Image.blend(x, op(x), l)
 *   blur, smooth                    Image.blend(x, x.filter(BLUR or SMOOTH), l)
 *   brightness, color, contrast,    ImageEnhance's, factor 0.1 + 1.9 l
 *     sharpness
 *   cutout                          a grey (127) square of side s = 1 + int(l * min(w, h) *
 *                                   0.499) around a uniform pixel c: [c - s // 2, c + s // 2)
 *                                   on each axis, clipped to the image
 *   identity                        x
 *   posterize                       keep 1 + int(l * 7.999) bits
 *   rescale(s, m)                   crop (t w, t h, w (1 - t), h (1 - t)), t = s / 4, corners
 *                                   rounded half to even; resize back to w x h with (lanczos,
 *                                   bicubic, bilinear, box, hamming, nearest)[int(m * 5.99)]
 *   rotate                          round((2 l - 1) * 45) degrees (half to even), nearest,
 *                                   black corners
 *   shear_x, shear_y                Image.transform AFFINE (1, k, 0, 0, 1, 0), resp.
 *                                   (1, 0, 0, k, 1, 0), k = (2 l - 1) * 0.3, nearest, black
 *   solarize                        threshold int(l * 255.999)
 *   translate_x, translate_y        Image.transform AFFINE (1, 0, d, 0, 1, 0), resp.
 *                                   (1, 0, 0, 0, 1, d), d = (2 l - 1) * 0.3
 * then, with cutout set, FixMatch's strong view: a cutout at level 1 (16 x 16 on 32 x 32).
 *
 * Quirks of the reference, followed on purpose:
 * - translate's d is a fraction but Pillow's affine matrix is in pixels: the shift is at most
 *   0.3 px, which nearest neighbour rounds away, so translate_x and translate_y leave the image
 *   as it is (the parity fixtures show it at every level).
 * - The feedback's bin is int(value * bins * 0.999), not the bin the value was drawn from: a
 *   value (b + r) / bins with r < b / 999 updates bin b - 1 (16 + r, r < 0.016, updates 15).
 * - The rescale method's value maps through int(m * 5.99), so the bin b of a drawn value
 *   gives method b - 1 when r < b / 599 (under 1% of its draws).
 * - The threshold cuts p / max(p) after 1 - decay is added: a bin stays while rate + 0.01 >=
 *   0.8 (max rate + 0.01), so with all rates equal every bin stays.
 * - Rates are float32 and the update is rounded to float32 each time.
 * - ctaugment.py's own default threshold is 0.85; the FixMatch and ReMixMatch runs pass 0.80
 *   (flag ath), which is what ctaug_new uses.
 * - Cutout's centre is drawn when the image is processed, not when the policy is drawn: the
 *   policy records only the level.
 * Images are RGB (the reference works on RGB arrays; its cutout writes an RGB triple).
 *
 * Randomness: ctaug_draw reads stream RNG_STREAM_POLICY of (seed, input, sample), ctaug_apply
 * draws op i's cutout centre from RNG_STREAM_OP(i) (the strong view's cutout is op `count`), so
 * a (seed, state) pair gives the same policies and pixels anywhere. The state is not locked:
 * draws may share it, but feedback needs the caller's exclusive hold. */
#define CTAUG_OPS       19
#define CTAUG_MAX_ARGS  2
#define CTAUG_MAX_BINS  17
#define CTAUG_MAX_DEPTH 8

/* The op's name ("autocontrast" ... "translate_y", the reference's order), its argument count and
 * each argument's bins; op in [0, CTAUG_OPS). ctaug_op_find gives the index of a name, or -1. */
const char *ctaug_op_name(int op);
int ctaug_op_args(int op);
int ctaug_op_bins(int op, int arg);
int ctaug_op_find(const char *name);

struct ctaug_settings {
    int depth;        /* ops per policy, 1..CTAUG_MAX_DEPTH */
    double decay;     /* in (0, 1) */
    double threshold; /* in [0, 1] */
};
/* The reference's: depth 2, decay 0.99, threshold 0.8. */
extern const struct ctaug_settings CTAUG_DEFAULTS;

struct ctaug;
/* A state with every rate 1; settings NULL gives CTAUG_DEFAULTS. ENG_INVALID names a setting out
 * of range. */
struct ctaug *ctaug_new(const struct ctaug_settings *settings, struct eng_error *err);
void ctaug_free(struct ctaug *c);
struct ctaug_settings ctaug_get_settings(const struct ctaug *c);
/* A bin's rate; op, arg and bin are in range (ctaug_op_args, ctaug_op_bins). */
float ctaug_rate(const struct ctaug *c, int op, int arg, int bin);
/* q for each of the argument's bins (ctaug_op_bins of them; none for an argument out of range). */
void ctaug_probabilities(const struct ctaug *c, int op, int arg, float *q);

/* One drawn op and its argument values (ctaug_op_args of them), each in [0, 1]. */
struct ctaug_op {
    int op;
    double value[CTAUG_MAX_ARGS];
};
struct ctaug_policy {
    int count;
    struct ctaug_op ops[CTAUG_MAX_DEPTH];
};

void ctaug_draw(const struct ctaug *c, int probe, uint64_t seed, uint32_t input, uint32_t sample,
                struct ctaug_policy *out);
/* The bin the feedback updates for value of the op's argument. */
int ctaug_feedback_bin(int op, int arg, double value);
/* 1 - 0.5 * sum |p - onehot(label)| over classes probabilities, each in [0, 1], summing to 1
 * within 1e-3 (a float32 softmax); the result is clamped to [0, 1], which such p leave only by
 * rounding. ENG_INVALID names a bad probability or label. */
int ctaug_proximity(const double *p, int classes, int label, double *proximity,
                    struct eng_error *err);
/* Updates the bins policy used with proximity in [0, 1]; ENG_INVALID for a bad policy or
 * proximity, and then no rate changes. */
int ctaug_feedback(struct ctaug *c, const struct ctaug_policy *policy, double proximity,
                   struct eng_error *err);

/* The state as {"depth": 2, "decay": 0.99, "threshold": 0.8, "rates": {"autocontrast":
 * [[1, ... 17 rates]], ..., "identity": [], ..., "rescale": [[17 rates], [6 rates]], ...}}; and
 * back, exactly. ctaug_from_json refuses, with the JSON pointer of the bad node, a missing or
 * unknown key, an unknown or missing op, a wrong count of arguments or bins, and a rate that is
 * not a number in [0, 1]. */
json_t *ctaug_to_json(const struct ctaug *c);
struct ctaug *ctaug_from_json(const json_t *doc, struct eng_error *err);
/* {"autocontrast": [[q...]], ...}: ctaug_probabilities of every op, the shape of "rates". */
json_t *ctaug_probabilities_to_json(const struct ctaug *c);
/* A policy as [["rotate", [0.61]], ["rescale", [0.2, 0.9]], ...], the reference's (op, args)
 * pairs, and back (ENG_INVALID with the pointer of a bad op name, value count or value). */
json_t *ctaug_policy_to_json(const struct ctaug_policy *policy);
int ctaug_policy_from_json(const json_t *doc, struct ctaug_policy *policy, struct eng_error *err);

/* The policy's ops on in (RGB, not modified), then with cutout the strong view's cutout: a new
 * image, or NULL with err (ENG_UNSUPPORTED for an image that is not RGB, ENG_INVALID for a bad
 * policy). */
struct img *ctaug_apply(const struct ctaug_policy *policy, const struct img *in, int cutout,
                        uint64_t seed, uint32_t input, uint32_t sample, struct eng_error *err);

#endif
