/* The policy area's internals, shared by its files and by nothing else: parse.c builds the node
 * tree, domain.c checks which domain each subtree holds, sample.c walks the tree into a trace,
 * execute.c applies a trace, trace.c owns a trace's memory and its JSON, cache.c shares parsed
 * policies; ctaugment.c, ctaugment_json.c and ctaugment_ops.c share CTAugment's op table and
 * state.
 *
 * The tree is immutable once policy_parse returns: sampling reads it from any number of threads
 * at once, and a trace holds copies (op_call values), never pointers into the nodes' arguments,
 * except for the op descriptors, which are static. */
#ifndef AUGSERVE_ENGINE_POLICY_INTERNAL_H
#define AUGSERVE_ENGINE_POLICY_INTERNAL_H

#ifndef AUGENGINE_POLICY_INTERNAL
#error "policy/internal.h is private to augengine_policy; include policy/policy.h"
#endif

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "image/copy_paste.h"
#include "policy/ops.h"
#include "policy/policy.h"

enum node_kind {
    NODE_OP,
    NODE_SEQ,
    NODE_CHOICE,
    NODE_PROB,
    NODE_REPEAT,
    NODE_MIX,
    NODE_DAG,
    NODE_VIEWS,      /* only at the root: several outputs per sample */
    NODE_COPY_PASTE, /* {"op": "CopyPaste", ...}: pastes from another input (policy.h) */
};

/* Each view samples and applies from its own streams: view v uses stream numbers from
 * v * VIEW_STREAMS on, so view 0 of any policy draws exactly what a one-view policy does. */
#define VIEW_STREAMS (1u << 20)

/* How an op node's magnitude is chosen. */
enum level_kind {
    LEVEL_UNSET,      /* raw arguments only */
    LEVEL_FIXED,      /* level in [0, 1] */
    LEVEL_BIN,        /* bin of bins, as torch.linspace(lo, hi, bins)[bin] */
    LEVEL_RANDOM_BIN, /* a uniformly drawn bin of bins (TrivialAugment) */
    LEVEL_MAGNITUDE,  /* timm's: magnitude / of, with optional noise, clipped to [0, max] */
};

struct dag_edge {
    int to;
    double p;
    struct node *node;
};

struct dag_vertex {
    char *name;
    struct dag_edge *edges;
    int edge_count;
};

struct node {
    enum node_kind kind;
    /* NODE_OP */
    struct op_call call; /* raw arguments, with defaults filled in */
    enum level_kind level_kind;
    double level;
    int bin, bins;
    int below; /* LEVEL_RANDOM_BIN: bins drawn from [0, below) */
    /* LEVEL_MAGNITUDE */
    double magnitude, magnitude_std, magnitude_max, magnitude_of;
    int magnitude_uniform;
    /* How m becomes the argument: offset + scale * rounding(m); the op's own unless the node
     * gives "map". */
    double map_offset, map_scale;
    enum { ROUND_NONE, ROUND_TRUNC, ROUND_EVEN } map_round;
    double map_min; /* the argument is at least this (-inf unless the node's map gives "min") */
    double lo, hi;  /* the magnitude range, the op's own unless the node gives one */
    enum op_level_scale scale; /* a range given by the node is in the argument's own unit */
    int random_sign;
    /* NODE_SEQ, NODE_CHOICE, NODE_MIX */
    struct node **kids;
    int kid_count;
    double *weights; /* NODE_CHOICE: normalised cumulative weights */
    /* NODE_PROB, NODE_REPEAT: kids[0] is the node */
    double p;
    int repeat;
    double alpha; /* NODE_MIX */
    /* NODE_DAG */
    struct dag_vertex *vertices;
    int vertex_count, start;
    /* NODE_COPY_PASTE: the paste's parameters; its call names the pseudo-op for messages */
    struct copy_paste_params paste;
    /* NODE_OP, NODE_COPY_PASTE: its JSON pointer, for messages about where it sits */
    char *pointer;
    /* One op of each domain in the subtree (NULL: none), so a refusal can name both ops */
    const struct node *image, *wave, *spec;
};

struct policy {
    struct node *root;
    struct node **views; /* the root's views, or the root alone */
    int view_count;
    unsigned domain;          /* POLICY_* bits */
    const struct node *paste; /* a CopyPaste node, or NULL: the inputs must suit it */
    json_t *doc;              /* the compiled document, presets and saved policies expanded */
    int uses_saved;           /* the document names a saved policy (policy/saved.h) */
    atomic_int refs;          /* policy_free drops one; a cache holds one per entry */
};

/* A sampled CopyPaste: from which input, and every draw. */
struct paste_item {
    struct copy_paste_params params;
    uint32_t source;
    struct copy_paste_draws draws;
};

struct trace_item {
    int is_mix;
    struct op_call call;
    /* The size the item leaves (pixels; audio: samples x 1, or frames x bins), as sampling saw it,
     * so trace_cost knows what executing it makes before any pixel is touched. */
    int width, height;
    struct paste_item *paste; /* a CopyPaste (call names it), or NULL */
    /* mix: out = (1 - m) x + m sum(weights[i] branches[i](x)) */
    double m;
    double *weights;
    struct trace *branches;
    int branch_count;
};

struct trace {
    struct trace_item *items;
    size_t count, capacity;
    uint32_t view;
};

/* ---- Shared by the files (each defined in the file its comment names) ------------------------ */

/* parse.c: the first node of kind under n (n included), or NULL. */
const struct node *policy_find_node(const struct node *n, enum node_kind kind);
/* parse.c: an op or CopyPaste node's JSON pointer, "/" for the root, for messages. */
const char *policy_node_pointer(const struct node *op);
/* parse.c: a zeroed array of one element of size bytes per vertex of a DAG node, or NULL. */
void *policy_dag_array(const struct node *n, size_t size);

/* parse.c: where the parser is, for messages. */
struct parser {
    char path[512]; /* JSON pointer of the node being parsed */
    int at_root;    /* the next node parsed is the root (views are allowed there only) */
    int nodes;
    json_t *saved; /* the saved policies met so far, by name, or NULL (parse.c) */
    struct eng_error *err;
};
/* parse.c: fails with ps->err, ENG_INVALID, the message prefixed by the node's pointer. */
int policy_fail_at(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* domain.c: fills n's domains from its ops (its kids' are filled already) and refuses what cannot
 * run: an audio op next to an image op, audio ops in a mix (it blends images), and a waveform op
 * that can run after a spectrogram op, since the features sit between the two. 0, or -1 with
 * ps->err. */
int policy_check_domains(struct parser *ps, struct node *n);

/* sample.c: input `input` of inputs, or NULL with err. */
const struct img *policy_input_image(const struct policy_inputs *inputs, uint32_t input,
                                     struct eng_error *err);

/* trace.c: appends *it to t, which then owns what it points to; on failure frees it and fails
 * with err. */
int trace_push(struct trace *t, struct trace_item *it, struct eng_error *err);
void trace_item_free(struct trace_item *it);

/* ---- CTAugment (ctaugment.c, ctaugment_json.c, ctaugment_ops.c) ---------------------------- */

/* How an op of the reference turns its levels into pixels. */
enum ctaug_kind {
    CTAUG_BLEND,   /* Image.blend(x, whole(x), l) */
    CTAUG_ENHANCE, /* factor(x, 0.1 + 1.9 l): ImageEnhance */
    CTAUG_AFFINE,  /* Image.transform of the identity with a[coefficient] = (2 l - 1) * 0.3 */
    CTAUG_OWN,     /* own(x, levels, the op's stream) */
};

/* One op of the reference: its name, argument bins, and what it does to pixels. The table, in
 * the reference's order, is ctaugment_ops.c's. */
struct ctaug_desc {
    const char *name;
    int args;
    int bins[CTAUG_MAX_ARGS];
    enum ctaug_kind kind;
    struct img *(*whole)(const struct img *in, struct eng_error *err);
    struct img *(*factor)(const struct img *in, double factor, struct eng_error *err);
    int coefficient;
    struct img *(*own)(const struct img *in, const double *value, struct rng *r,
                       struct eng_error *err);
};
extern const struct ctaug_desc CTAUG_TABLE[CTAUG_OPS];

struct ctaug {
    struct ctaug_settings settings;
    float rate[CTAUG_OPS][CTAUG_MAX_ARGS][CTAUG_MAX_BINS];
};

/* 0 when s is in range, else -1 with err naming the setting; where prefixes the message. */
int ctaug_check_settings(const struct ctaug_settings *s, const char *where, struct eng_error *err);
/* 0 when every op of the policy exists and its values are in [0, 1]. */
int ctaug_check_policy(const struct ctaug_policy *policy, struct eng_error *err);

#endif
