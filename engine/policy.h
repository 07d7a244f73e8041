/* Policies: JSON documents that parse into one graph model (op, seq, choice, p, repeat, mix, dag;
 * presets are documents too). Running one has two steps: sample (walk the graph with the sample's
 * random stream, deciding every coin flip, branch and argument, which gives a trace), then
 * execute (apply the trace to the pixels). The draws never depend on pixel values. */
#ifndef AUGSERVE_ENGINE_POLICY_H
#define AUGSERVE_ENGINE_POLICY_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "image.h"

/* Seeds stay below 2^53 so that JavaScript clients read them back exactly. */
#define POLICY_MAX_SEED 9007199254740991ull

/* A validated graph; immutable once parsed, so threads may share it. */
struct policy;
/* The concrete op applications of one sample. */
struct trace;

/* Parses a policy document: a JSON node, or a string naming a preset ("randaugment").
 * Errors name the JSON pointer of the bad node: "/seq/1/degrees: must be in [-180, 180]". */
struct policy *policy_parse(const json_t *doc, struct eng_error *err);
/* The same from text: JSON, or a bare preset name. */
struct policy *policy_parse_text(const char *text, struct eng_error *err);
/* Releases a reference: parsed and cached policies are reference-counted. */
void policy_free(struct policy *p);

/* Parsed policies by their exact text, for a server that sees the same few policies again and
 * again; the least recently used entry makes room. Safe from any thread. */
struct policy_cache;
struct policy_cache *policy_cache_new(size_t capacity);
/* policy_parse_text through the cache; the result is a reference, released with policy_free. */
struct policy *policy_cache_parse(struct policy_cache *c, const char *text, struct eng_error *err);
void policy_cache_free(struct policy_cache *c);

/* The compiled graph as a document (presets expanded); the caller owns the reference. */
json_t *policy_to_json(const struct policy *p);

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

/* [{"op": "Rotate", "degrees": 9.0, ...}, {"mix": {"m": ..., "weights": [...], "branches":
 * [[...], ...]}}]; the caller owns the reference. */
json_t *trace_to_json(const struct trace *t);
/* Number of op applications, mix branches included. */
size_t trace_op_count(const struct trace *t);
void trace_free(struct trace *t);

#endif
