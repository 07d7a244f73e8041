/* Execution: a trace applied to pixels (with the targets and the request's other inputs when
 * given) or to a waveform and its features. Every random choice is in the trace already, but
 * for the per-pixel and per-sample noise, which op application i draws from its own stream
 * RNG_STREAM_OP(i) of the seed coordinates, so a replay gives the same bytes. */
#include "policy/internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "audio/spec.h"
#include "audio/wave.h"
#include "core/cancel.h"
#include "core/rng.h"
#include "image/targets.h"

struct executor {
    uint64_t seed;
    uint32_t input, sample, view;
    uint32_t op_index;       /* numbers op applications in trace order, for their noise streams */
    struct targets *targets; /* carried along with the pixels, or NULL */
    const struct policy_inputs *inputs; /* what CopyPaste pastes from, or NULL */
    struct policy_origins *origins;     /* where pasted objects came from (with inputs) */
    struct eng_error *err;
};

/* Moves the targets as call moved the pixels from in to out; point ops leave them. */
static int map_targets(struct executor *ex, const struct op_call *call, const struct img *in,
                       const struct img *out)
{
    double m[6];
    if (!ex->targets || !call->op->map_targets) return 0;
    call->op->map_targets(call, in->width, in->height, m);
    return targets_apply_affine(ex->targets, m, out->width, out->height, NULL, ex->err);
}

static struct img *execute(struct executor *ex, const struct trace *t, const struct img *in);

/* AugMix's blend, computed in float and truncated to uint8 as torchvision's tensor path does. All
 * branches keep the input's size, since mix branches hold only size-preserving ops. */
static struct img *execute_mix(struct executor *ex, const struct trace_item *it,
                               const struct img *in)
{
    size_t samples = (size_t)in->width * (size_t)in->channels * (size_t)in->height;
    float *acc = malloc(samples * sizeof *acc);
    struct img *out = img_new(in->width, in->height, in->channels, ex->err);
    if (!acc || !out) {
        free(acc);
        img_free(out);
        eng_fail(ex->err, ENG_NO_MEMORY, "out of memory for a mix");
        return NULL;
    }
    float keep = (float)(1.0 - it->m);
    for (int y = 0; y < in->height; y++) {
        const uint8_t *row = img_row(in, y);
        float *a = acc + (size_t)y * in->width * in->channels;
        for (int x = 0; x < in->width * in->channels; x++)
            a[x] = keep * row[x];
    }
    for (int b = 0; b < it->branch_count; b++) {
        struct img *branch = execute(ex, &it->branches[b], in);
        if (!branch) goto fail;
        if (branch->width != in->width || branch->height != in->height ||
            branch->channels != in->channels) {
            img_free(branch);
            eng_fail(ex->err, ENG_INVALID,
                     "a mix branch changed the image size; mix branches may "
                     "only hold ops that keep it");
            goto fail;
        }
        float w = (float)(it->m * it->weights[b]);
        for (int y = 0; y < in->height; y++) {
            const uint8_t *row = img_row(branch, y);
            float *a = acc + (size_t)y * in->width * in->channels;
            for (int x = 0; x < in->width * in->channels; x++)
                a[x] += w * row[x];
        }
        img_free(branch);
    }
    for (int y = 0; y < in->height; y++) {
        uint8_t *row = img_row(out, y);
        const float *a = acc + (size_t)y * in->width * in->channels;
        for (int x = 0; x < in->width * in->channels; x++)
            row[x] = a[x] <= 0 ? 0 : a[x] >= 255 ? 255 : (uint8_t)a[x];
    }
    free(acc);
    return out;
fail:
    free(acc);
    img_free(out);
    return NULL;
}

/* Replaces *id, an object's id in input `input`, by a new origin id (policy.h). */
static int origin_id(struct policy_origins *o, uint32_t input, int *id, struct eng_error *err)
{
    if (o->count >= (size_t)INT_MAX)
        return eng_fail(err, ENG_TOO_LARGE, "more than %d pasted objects", INT_MAX);
    struct policy_origin *grown = realloc(o->items, (o->count + 1) * sizeof *grown);
    if (!grown) return eng_fail(err, ENG_NO_MEMORY, "out of memory for the pasted objects");
    o->items = grown;
    grown[o->count] = (struct policy_origin){input, *id};
    *id = -1 - (int)o->count++;
    return 0;
}

/* Gives the result's objects from the source, kept and dropped, their origin ids. */
static int name_origins(struct executor *ex, uint32_t source, struct copy_paste_result *r)
{
    struct targets *t = r->targets;
    for (size_t i = 0; i < t->count; i++)
        if (r->from_src[i] && origin_id(ex->origins, source, &t->ids[i], ex->err) != 0) return -1;
    for (size_t i = 0; i < t->dropped_count; i++)
        if (r->dropped_from_src[i] &&
            origin_id(ex->origins, source, &t->dropped[i].id, ex->err) != 0)
            return -1;
    return 0;
}

/* Pastes from the item's source onto in and ex's targets, which become the result's. */
static struct img *execute_paste(struct executor *ex, const struct paste_item *pi,
                                 const struct img *in)
{
    const struct policy_inputs *inputs = ex->inputs;
    ex->op_index++;
    if (!ex->targets || !ex->origins || !inputs || pi->source >= inputs->count ||
        !inputs->targets || !inputs->targets[pi->source])
        return eng_fail(ex->err, ENG_INVALID,
                        "CopyPaste needs the request's inputs and their targets "
                        "(trace_apply_inputs)"),
               NULL;
    struct copy_paste_result r;
    if (copy_paste_drawn(in, ex->targets, inputs->images[pi->source], inputs->targets[pi->source],
                         &pi->params, &pi->draws, &r, ex->err) != 0)
        return NULL;
    struct img *out = NULL;
    if (name_origins(ex, pi->source, &r) == 0) {
        const struct targets held = *ex->targets;
        *ex->targets = *r.targets;
        *r.targets = held; /* freed with the result */
        out = r.image;
        r.image = NULL;
    }
    copy_paste_result_free(&r);
    return out;
}

static struct img *execute(struct executor *ex, const struct trace *t, const struct img *in)
{
    /* Ops never modify their input, so the first one reads the caller's image directly. */
    const struct img *current = in;
    for (size_t i = 0; current && i < t->count; i++) {
        const struct trace_item *it = &t->items[i];
        struct img *next;
        if (eng_cancel_poll(ex->err) != 0) {
            next = NULL;
        } else if (it->is_mix) {
            next = execute_mix(ex, it, current);
        } else if (it->paste) {
            next = execute_paste(ex, it->paste, current);
        } else {
            struct rng noise;
            rng_init(&noise, ex->seed, ex->input, ex->sample,
                     ex->view * VIEW_STREAMS + RNG_STREAM_OP(ex->op_index));
            ex->op_index++;
            const struct targets *held = ex->targets;
            next = op_apply(&it->call, current, held ? held->boxes : NULL, held ? held->count : 0,
                            &noise, ex->err);
            if (next && map_targets(ex, &it->call, current, next) != 0) {
                img_free(next);
                next = NULL;
            }
        }
        if (current != in) img_free((struct img *)current);
        current = next;
    }
    return current == in ? img_clone(in, ex->err) : (struct img *)current;
}

struct img *trace_apply(const struct trace *t, const struct img *in, uint64_t seed, uint32_t input,
                        uint32_t sample, struct eng_error *err)
{
    struct executor ex = {
        .seed = seed, .input = input, .sample = sample, .view = t->view, .err = err};
    return execute(&ex, t, in);
}

static const char mix_refusal[] =
    "AugMix's mix blends the image with differently transformed copies of itself, so no one "
    "transform carries boxes, masks and keypoints; use a policy without mix for targets";

/* trace_apply_targets with ex set up but for its targets. */
static struct img *execute_targets(struct executor *ex, const struct trace *t, const struct img *in,
                                   struct targets *targets, const struct targets_filter *filter)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->items[i].is_mix) return eng_fail(ex->err, ENG_INVALID, "%s", mix_refusal), NULL;
    if (targets->width != in->width || targets->height != in->height)
        return eng_fail(ex->err, ENG_INVALID, "the targets are for a %dx%d image, not %dx%d",
                        targets->width, targets->height, in->width, in->height),
               NULL;
    ex->targets = targets;
    struct img *out = execute(ex, t, in);
    if (out && filter) targets_filter(targets, filter);
    return out;
}

struct img *trace_apply_targets(const struct trace *t, const struct img *in,
                                struct targets *targets, const struct targets_filter *filter,
                                uint64_t seed, uint32_t input, uint32_t sample,
                                struct eng_error *err)
{
    struct executor ex = {
        .seed = seed, .input = input, .sample = sample, .view = t->view, .err = err};
    return execute_targets(&ex, t, in, targets, filter);
}

struct img *trace_apply_inputs(const struct trace *t, const struct policy_inputs *inputs,
                               uint32_t input, struct targets *targets,
                               const struct targets_filter *filter, struct policy_origins *origins,
                               uint64_t seed, uint32_t sample, struct eng_error *err)
{
    const struct img *in = policy_input_image(inputs, input, err);
    struct executor ex = {.seed = seed,
                          .input = input,
                          .sample = sample,
                          .view = t->view,
                          .inputs = inputs,
                          .origins = origins,
                          .err = err};
    return in ? execute_targets(&ex, t, in, targets, filter) : NULL;
}

void policy_origins_free(struct policy_origins *o)
{
    free(o->items);
    memset(o, 0, sizeof *o);
}

int policy_maps_targets(const struct policy *p, struct eng_error *err)
{
    return policy_find_node(p->root, NODE_MIX) ? eng_fail(err, ENG_INVALID, "%s", mix_refusal) : 0;
}

static const struct audio_bank no_clips;

struct audio *trace_apply_wave(const struct trace *t, const struct audio *in,
                               const struct audio_bank *bank, uint64_t seed, uint32_t input,
                               uint32_t sample, struct eng_error *err)
{
    const struct audio *current = in;
    for (size_t i = 0; current && i < t->count; i++) {
        const struct op_call *call = &t->items[i].call;
        if (t->items[i].is_mix || call->op->domain != OP_DOMAIN_WAVEFORM) continue;
        /* Audio traces hold no mixes, so item i is op application i, as execute numbers them. */
        struct rng noise;
        rng_init(&noise, seed, input, sample, t->view * VIEW_STREAMS + RNG_STREAM_OP(i));
        struct audio *next =
            eng_cancel_poll(err) != 0
                ? NULL
                : call->op->apply_wave(current, call, bank ? bank : &no_clips, &noise, err);
        if (current != in) audio_free((struct audio *)current);
        current = next;
    }
    return current == in ? wave_clone(in, err) : (struct audio *)current;
}

struct audio_spec *trace_apply_spec(const struct trace *t, const struct audio_spec *in,
                                    struct eng_error *err)
{
    const struct audio_spec *current = in;
    for (size_t i = 0; current && i < t->count; i++) {
        const struct op_call *call = &t->items[i].call;
        if (t->items[i].is_mix || call->op->domain != OP_DOMAIN_SPECTROGRAM) continue;
        struct audio_spec *next =
            eng_cancel_poll(err) != 0 ? NULL : call->op->apply_spec(current, call, err);
        if (current != in) audio_spec_free((struct audio_spec *)current);
        current = next;
    }
    return current == in ? spec_clone(in, err) : (struct audio_spec *)current;
}
