/* Sampling: a walk of the tree with one sample's random stream, deciding every coin flip, branch,
 * magnitude and drawn argument, into a trace. It sees only sizes (an image's width and height, a
 * waveform's length, the frames and bins the features will give), never pixels or samples, so a
 * trace can be sampled, shown and replayed apart from the data. */
#include "policy/internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"
#include "image/targets.h"

/* Bounds that keep a hostile document from costing more than a small one. */
#define MAX_TRACE_OPS 1024

/* torch.linspace(start, end, steps)[i] in float32, the magnitudes torchvision's presets use, as
 * PyTorch 1.13's CPU kernel computes it (AVX2 build): the first half counts up from start and
 * the second half down from end, each point a fused multiply-add, except inside 8-wide vectors
 * (taken two at a time while 16 points remain), where points follow their vector's first point
 * by a plain product and sum. Verified against torch.linspace for many ranges and step counts. */
static double linspace_f32(double start_d, double end_d, int steps, int i)
{
    enum { LANES = 8 };
    const float start = (float)start_d, end = (float)end_d;
    const float step = (end - start) / (float)(steps - 1);
    const int half = steps / 2;
    int vector_end = steps / (2 * LANES) * (2 * LANES);
    int base_index = i < vector_end ? i / LANES * LANES : i;
    float base = base_index < half ? fmaf(step, (float)base_index, start)
                                   : fmaf(-step, (float)(steps - base_index - 1), end);
    if (base_index == i) return base;
    float offset = (float)(i - base_index) * step; /* rounded on its own: no contraction */
    return (double)(base + offset);
}

struct sampler {
    struct rng rng;
    int width, height;   /* audio: samples x 1, then frames x bins from the first spectrogram op */
    enum op_domain axis; /* what width and height measure */
    const struct audio_framing *framing; /* audio: how samples become frames */
    int max_width;                       /* audio: the longest a waveform may become */
    size_t ops;                          /* op applications so far, across mix branches */
    const struct policy_inputs *inputs;  /* images: the request's, for CopyPaste (may be NULL) */
    uint32_t input;                      /* the one sampled for */
    struct eng_error *err;
};

static int sample_node(struct sampler *s, const struct node *n, struct trace *out);

/* The first spectrogram op of an audio sample: from here on the sizes are the features'. */
static int enter_features(struct sampler *s)
{
    if (!s->framing)
        return eng_fail(s->err, ENG_INVALID,
                        "the policy has spectrogram ops: sampling it needs the features' framing");
    s->width = audio_framing_frames(s->framing, (size_t)s->width);
    s->height = s->framing->bins;
    s->axis = OP_DOMAIN_SPECTROGRAM;
    return 0;
}

/* Counts one more op application of the sample against the bound. */
static int count_application(struct sampler *s)
{
    if (++s->ops > MAX_TRACE_OPS)
        return eng_fail(s->err, ENG_TOO_LARGE, "the policy applies more than %d ops to one sample",
                        MAX_TRACE_OPS);
    return 0;
}

/* Pushes the op's applications (one, or its count's), each with its own draws. */
static int sample_applications(struct sampler *s, const struct trace_item *it, struct trace *out)
{
    const struct op_desc *op = it->call.op;
    int times = op->count ? op->count(&it->call, s->width, s->height) : 1;
    for (int i = 0; i < times; i++) {
        if (count_application(s) != 0) return -1;
        struct trace_item each = *it;
        if (op->draw && op->draw(&each.call, &s->rng, s->width, s->height, s->err) != 0) return -1;
        if (op->output_size) op->output_size(&each.call, &s->width, &s->height);
        each.width = s->width;
        each.height = s->height;
        if (trace_push(out, &each, s->err) != 0) return -1;
    }
    if (s->axis == OP_DOMAIN_WAVEFORM && s->width > s->max_width)
        return eng_fail(s->err, ENG_TOO_LARGE,
                        "%s makes the waveform %d samples long; a policy may at most quadruple "
                        "its length",
                        op->name, s->width);
    return 0;
}

static int sample_op(struct sampler *s, const struct node *n, struct trace *out)
{
    if (n->call.op->domain == OP_DOMAIN_SPECTROGRAM && s->axis == OP_DOMAIN_WAVEFORM &&
        enter_features(s) != 0)
        return -1;
    struct trace_item it = {.call = n->call};
    const struct op_level_desc *lv = &n->call.op->level;
    if (n->level_kind != LEVEL_UNSET) {
        double lo = n->lo, hi = n->hi;
        if (n->scale == SCALE_WIDTH) lo *= s->width, hi *= s->width;
        if (n->scale == SCALE_HEIGHT) lo *= s->height, hi *= s->height;
        double m;
        if (n->level_kind == LEVEL_FIXED) {
            m = lo + n->level * (hi - lo);
        } else if (n->level_kind == LEVEL_MAGNITUDE) {
            double mag = n->magnitude;
            if (n->magnitude_uniform)
                mag = n->magnitude * rng_uniform(&s->rng);
            else if (n->magnitude_std > 0)
                mag = n->magnitude + n->magnitude_std * rng_normal(&s->rng);
            mag = mag < 0 ? 0 : mag > n->magnitude_max ? n->magnitude_max : mag;
            m = lo + mag / n->magnitude_of * (hi - lo);
        } else {
            int bin =
                n->level_kind == LEVEL_BIN ? n->bin : (int)rng_below(&s->rng, (uint32_t)n->below);
            m = linspace_f32(lo, hi, n->bins, bin);
        }
        /* A sign is drawn for signed ops even when m is 0, as torchvision does. */
        if (n->random_sign && rng_below(&s->rng, 2)) m = -m;
        double rounded = n->map_round == ROUND_TRUNC  ? trunc(m)
                         : n->map_round == ROUND_EVEN ? nearbyint(m) /* half to even */
                                                      : m;
        double arg = fmax(n->map_offset + n->map_scale * rounded, n->map_min);
        const struct op_arg_desc *a = &n->call.op->args[lv->arg];
        it.call.args[lv->arg] = arg < a->min ? a->min : arg > a->max ? a->max : arg;
    }
    return sample_applications(s, &it, out);
}

/* Draws the source among the other inputs, then the paste's own draws against its size and
 * object count (check_inputs made sure there are other inputs, each with targets). The output
 * keeps the image's size. */
static int sample_paste(struct sampler *s, const struct node *n, struct trace *out)
{
    if (count_application(s) != 0) return -1;
    struct trace_item it = {.call = n->call,
                            .width = s->width,
                            .height = s->height,
                            .paste = calloc(1, sizeof *it.paste)};
    if (!it.paste) return eng_fail(s->err, ENG_NO_MEMORY, "out of memory while sampling");
    struct paste_item *pi = it.paste;
    const uint32_t other = rng_below(&s->rng, s->inputs->count - 1);
    pi->source = other + (other >= s->input);
    pi->params = n->paste;
    const struct img *src = s->inputs->images[pi->source];
    if (copy_paste_draw(&n->paste, s->width, s->height, src->width, src->height,
                        s->inputs->targets[pi->source]->count, &s->rng, &pi->draws, s->err) != 0) {
        trace_item_free(&it);
        return -1;
    }
    return trace_push(out, &it, s->err);
}

static int sample_dag(struct sampler *s, const struct node *n, struct trace *out)
{
    int v = n->start;
    /* Acyclic, so every walk ends within vertex_count steps. */
    for (int steps = 0; steps < n->vertex_count && n->vertices[v].edge_count > 0; steps++) {
        const struct dag_vertex *vx = &n->vertices[v];
        double u = rng_uniform(&s->rng), cumulative = 0;
        int pick = vx->edge_count - 1;
        for (int e = 0; e < vx->edge_count; e++) {
            cumulative += vx->edges[e].p;
            if (u < cumulative) {
                pick = e;
                break;
            }
        }
        if (vx->edges[pick].node && sample_node(s, vx->edges[pick].node, out) != 0) return -1;
        v = vx->edges[pick].to;
    }
    return 0;
}

static int sample_mix(struct sampler *s, const struct node *n, struct trace *out)
{
    struct trace_item it = {
        .is_mix = 1, .width = s->width, .height = s->height, .branch_count = n->kid_count};
    it.weights = calloc((size_t)n->kid_count, sizeof *it.weights);
    it.branches = calloc((size_t)n->kid_count, sizeof *it.branches);
    if (!it.weights || !it.branches) {
        trace_item_free(&it);
        return eng_fail(s->err, ENG_NO_MEMORY, "out of memory while sampling");
    }
    rng_dirichlet(&s->rng, n->alpha, n->kid_count, it.weights);
    it.m = rng_beta(&s->rng, n->alpha, n->alpha);
    int width = s->width, height = s->height;
    for (int i = 0; i < n->kid_count; i++) {
        if (sample_node(s, n->kids[i], &it.branches[i]) != 0) {
            trace_item_free(&it);
            return -1;
        }
        if (s->width != width || s->height != height) {
            trace_item_free(&it);
            return eng_fail(s->err, ENG_INVALID,
                            "a mix branch changes the image size; mix branches may only hold "
                            "ops that keep it");
        }
    }
    return trace_push(out, &it, s->err);
}

static int sample_node(struct sampler *s, const struct node *n, struct trace *out)
{
    switch (n->kind) {
    case NODE_OP:
        return sample_op(s, n, out);
    case NODE_SEQ:
        for (int i = 0; i < n->kid_count; i++)
            if (sample_node(s, n->kids[i], out) != 0) return -1;
        return 0;
    case NODE_CHOICE: {
        double u = rng_uniform(&s->rng);
        int pick = n->kid_count - 1;
        for (int i = 0; i < n->kid_count; i++)
            if (u < n->weights[i]) {
                pick = i;
                break;
            }
        return sample_node(s, n->kids[pick], out);
    }
    case NODE_PROB:
        /* Applied when u < p: p = 1 always, p = 0 never. */
        return rng_uniform(&s->rng) < n->p ? sample_node(s, n->kids[0], out) : 0;
    case NODE_REPEAT:
        for (int i = 0; i < n->repeat; i++)
            if (sample_node(s, n->kids[0], out) != 0) return -1;
        return 0;
    case NODE_MIX:
        return sample_mix(s, n, out);
    case NODE_DAG:
        return sample_dag(s, n, out);
    case NODE_COPY_PASTE:
        return sample_paste(s, n, out);
    case NODE_VIEWS:
        break; /* only at the root, where policy_sample_view picks one */
    }
    return eng_fail(s->err, ENG_INTERNAL, "unknown node kind %d", (int)n->kind);
}

struct trace *policy_sample(const struct policy *p, uint64_t seed, uint32_t input, uint32_t sample,
                            int width, int height, struct eng_error *err)
{
    return policy_sample_view(p, seed, input, sample, 0, width, height, err);
}

/* Walks view `view` with the sampler s (sizes set, stream not yet). */
static struct trace *sample_view(const struct policy *p, uint64_t seed, uint32_t input,
                                 uint32_t sample, uint32_t view, struct sampler *s)
{
    if (view >= (uint32_t)p->view_count) {
        eng_fail(s->err, ENG_INVALID, "the policy has %d views, not %u", p->view_count, view + 1);
        return NULL;
    }
    struct trace *t = calloc(1, sizeof *t);
    if (!t) {
        eng_fail(s->err, ENG_NO_MEMORY, "out of memory while sampling");
        return NULL;
    }
    t->view = view;
    rng_init(&s->rng, seed, input, sample, view * VIEW_STREAMS + RNG_STREAM_POLICY);
    if (sample_node(s, p->views[view], t) != 0) {
        trace_free(t);
        return NULL;
    }
    return t;
}

/* The request suits the policy's CopyPaste node, if it has one, whether or not a sample reaches
 * it: other inputs to paste from, each with a mask per object. */
static int check_inputs(const struct policy *p, const struct policy_inputs *in,
                        struct eng_error *err)
{
    if (!p->paste) return 0;
    if (!in || in->count < 2)
        return eng_fail(err, ENG_INVALID,
                        "%s: CopyPaste pastes objects from another input of the request, and "
                        "there is only one",
                        policy_node_pointer(p->paste));
    for (uint32_t i = 0; i < in->count; i++) {
        const struct targets *t = in->targets ? in->targets[i] : NULL;
        if (!in->images[i]) return eng_fail(err, ENG_INVALID, "input %u has no image", i);
        if (!t || (t->count > 0 && !t->masks))
            return eng_fail(err, ENG_INVALID,
                            "%s: CopyPaste pastes objects by their instance masks, and input %u "
                            "has %s; every input needs a mask per object",
                            policy_node_pointer(p->paste), i,
                            t ? "boxes without masks" : "no targets");
    }
    return 0;
}

/* Walks view `view` for input `input` (of inputs, when given) of width x height. */
static struct trace *sample_image(const struct policy *p, uint64_t seed,
                                  const struct policy_inputs *inputs, uint32_t input,
                                  uint32_t sample, uint32_t view, int width, int height,
                                  struct eng_error *err)
{
    const struct node *audio = p->root->wave ? p->root->wave : p->root->spec;
    if (audio) {
        eng_fail(err, ENG_INVALID,
                 "the policy is for audio (%s is a %s op); it cannot run on an image",
                 audio->call.op->name, op_domain_name(audio->call.op->domain));
        return NULL;
    }
    if (check_inputs(p, inputs, err) != 0) return NULL;
    struct sampler s = {.width = width,
                        .height = height,
                        .axis = OP_DOMAIN_IMAGE,
                        .inputs = inputs,
                        .input = input,
                        .err = err};
    return sample_view(p, seed, input, sample, view, &s);
}

struct trace *policy_sample_view(const struct policy *p, uint64_t seed, uint32_t input,
                                 uint32_t sample, uint32_t view, int width, int height,
                                 struct eng_error *err)
{
    return sample_image(p, seed, NULL, input, sample, view, width, height, err);
}

const struct img *policy_input_image(const struct policy_inputs *inputs, uint32_t input,
                                     struct eng_error *err)
{
    if (!inputs || input >= inputs->count || !inputs->images[input])
        return eng_fail(err, ENG_INVALID, "input %u: the request has %u inputs", input,
                        inputs ? inputs->count : 0),
               NULL;
    return inputs->images[input];
}

struct trace *policy_sample_inputs(const struct policy *p, uint64_t seed,
                                   const struct policy_inputs *inputs, uint32_t input,
                                   uint32_t sample, uint32_t view, struct eng_error *err)
{
    const struct img *in = policy_input_image(inputs, input, err);
    return in ? sample_image(p, seed, inputs, input, sample, view, in->width, in->height, err)
              : NULL;
}

struct trace *policy_sample_audio(const struct policy *p, uint64_t seed, uint32_t input,
                                  uint32_t sample, uint32_t view, size_t length,
                                  const struct audio_framing *framing, struct eng_error *err)
{
    if (p->root->image) {
        eng_fail(err, ENG_INVALID,
                 "the policy is for images (%s is an image op); it cannot run on audio",
                 p->root->image->call.op->name);
        return NULL;
    }
    if (framing && (framing->hop_length < 1 || framing->n_fft < 1 || framing->bins < 1)) {
        eng_fail(err, ENG_INVALID,
                 "framing: hop_length (%d), n_fft (%d) and bins (%d) must be at least 1",
                 framing->hop_length, framing->n_fft, framing->bins);
        return NULL;
    }
    if (length > INT_MAX / 4) {
        eng_fail(err, ENG_TOO_LARGE, "the waveform has %zu samples; policies take at most %d",
                 length, INT_MAX / 4);
        return NULL;
    }
    struct sampler s = {.width = (int)length,
                        .height = 1,
                        .axis = OP_DOMAIN_WAVEFORM,
                        .framing = framing,
                        .max_width = 4 * (int)length,
                        .err = err};
    return sample_view(p, seed, input, sample, view, &s);
}
