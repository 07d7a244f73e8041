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

#endif
