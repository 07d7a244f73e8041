/* FixMatch's CTAugment strong view and its probes (job_fixmatch.h says what and why): the views
 * of a step made in parallel over the engine's ctaug_draw and ctaug_apply, the probes' feedback,
 * and the state with its counts as JSON for the checkpoint and the result. */
#include <stdio.h>
#include <stdlib.h>

#include "classify/classify.h"
#include "core/parallel.h"
#include "job_fixmatch.h"

/* ---- Views ------------------------------------------------------------------------------------
 */

struct views {
    const struct ctaug *state;
    const struct data_loader_options *o;
    const uint32_t *indices;
    int probe;
    uint64_t seed;
    uint32_t step;
    size_t floats; /* per image */
    struct ctaug_policy *policies;
    float *out;
    struct view_error {
        int failed;
        struct eng_error err;
    } * errors;
};

/* Image i of the step: its policy, its weak view, the policy on it, the tensor. */
static void make_view(void *ctx, size_t i)
{
    struct views *v = ctx;
    uint32_t index = v->indices[i];
    struct eng_error *err = &v->errors[i].err;
    ctaug_draw(v->state, v->probe, v->seed, index, v->step, &v->policies[i]);
    struct img *weak = data_loader_image(v->o, index, err), *view = NULL;
    /* CTAugment's ops are the reference's on RGB arrays: a grey or RGBA image becomes RGB first,
     * as the model's transform would make it afterwards anyway (PIL's convert("RGB")). */
    if (weak && weak->channels != 3) {
        struct img *rgb = classify_convert(weak, 3, err);
        img_free(weak);
        weak = rgb;
    }
    if (weak &&
        !(view = ctaug_apply(&v->policies[i], weak, !v->probe, v->seed, index, v->step, err))) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        eng_fail(err, err->code, "image %u (%s): %s", index, dataset_source(v->o->dataset, index),
                 why);
    }
    v->errors[i].failed =
        !view || data_loader_tensor(v->o, view, index, v->out + i * v->floats, err) != 0;
    img_free(weak);
    img_free(view);
}

int fixmatch_cta_views(const struct ctaug *state, const struct data_loader_options *o,
                       const uint32_t *indices, size_t n, int probe, long step, int threads,
                       struct ctaug_policy *policies, float *out, size_t floats,
                       struct eng_error *err)
{
    uint64_t view = probe ? FIXMATCH_VIEW_PROBE : FIXMATCH_VIEW_STRONG;
    struct views v = {.state = state,
                      .o = o,
                      .indices = indices,
                      .probe = probe,
                      .seed = o->seed ^ (view * UINT64_C(0x9E3779B97F4A7C15)),
                      .step = (uint32_t)step,
                      .floats = floats,
                      .policies = policies,
                      .out = out,
                      .errors = calloc(n, sizeof *v.errors)};
    if (!v.errors) return eng_no_memory(err);
    parallel_for(n, threads, make_view, &v);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (v.errors[i].failed) {
            *err = v.errors[i].err;
            rc = -1;
        }
    free(v.errors);
    return rc;
}

/* ---- Feedback ---------------------------------------------------------------------------------
 */

int fixmatch_cta_feedback(struct fixmatch_cta *c, const struct ctaug_policy *policies,
                          const float *logits, const int32_t *labels, size_t n, size_t classes,
                          struct eng_error *err)
{
    float *probs = malloc(classes * sizeof *probs);
    double *p = malloc(classes * sizeof *p);
    int rc = probs && p ? 0 : eng_no_memory(err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        double proximity;
        classify_softmax(logits + i * classes, classes, probs);
        for (size_t k = 0; k < classes; k++)
            p[k] = probs[k];
        rc = ctaug_proximity(p, (int)classes, labels[i], &proximity, err) ||
                     ctaug_feedback(c->state, &policies[i], proximity, err)
                 ? -1
                 : 0;
        if (rc) break;
        c->probes++;
        c->proximity += proximity;
        for (int j = 0; j < policies[i].count; j++) {
            const struct ctaug_op *o = &policies[i].ops[j];
            for (int a = 0; a < ctaug_op_args(o->op); a++)
                c->updates[o->op][a][ctaug_feedback_bin(o->op, a, o->value[a])]++;
        }
    }
    free(probs);
    free(p);
    return rc;
}

/* ---- JSON -------------------------------------------------------------------------------------
 */

static json_t *updates_to_json(const struct fixmatch_cta *c)
{
    json_t *doc = json_object();
    for (int op = 0; doc && op < CTAUG_OPS; op++) {
        json_t *args = json_array();
        for (int a = 0; args && a < ctaug_op_args(op); a++) {
            json_t *bins = json_array();
            for (int b = 0; bins && b < ctaug_op_bins(op, a); b++)
                if (json_array_append_new(bins, json_integer(c->updates[op][a][b]))) {
                    json_decref(bins);
                    bins = NULL;
                }
            if (!bins || json_array_append_new(args, bins)) {
                json_decref(args);
                args = NULL;
            }
        }
        if (!args || json_object_set_new(doc, ctaug_op_name(op), args)) {
            json_decref(doc);
            doc = NULL;
        }
    }
    return doc;
}

json_t *fixmatch_cta_to_json(const struct fixmatch_cta *c)
{
    return json_pack("{s:o, s:o, s:o}", "state", ctaug_to_json(c->state), "probabilities",
                     ctaug_probabilities_to_json(c->state), "updates", updates_to_json(c));
}

/* The counts of a checkpoint's "updates", which updates_to_json wrote for the same ops. */
static int updates_from_json(struct fixmatch_cta *c, const json_t *doc, struct eng_error *err)
{
    for (int op = 0; op < CTAUG_OPS; op++) {
        const json_t *args = json_object_get(doc, ctaug_op_name(op));
        if (json_array_size(args) != (size_t)ctaug_op_args(op)) goto bad;
        for (int a = 0; a < ctaug_op_args(op); a++) {
            const json_t *bins = json_array_get(args, (size_t)a);
            if (json_array_size(bins) != (size_t)ctaug_op_bins(op, a)) goto bad;
            for (int b = 0; b < ctaug_op_bins(op, a); b++) {
                const json_t *count = json_array_get(bins, (size_t)b);
                if (!json_is_integer(count) || json_integer_value(count) < 0) goto bad;
                c->updates[op][a][b] = (long)json_integer_value(count);
            }
        }
    }
    return 0;
bad:
    return eng_fail(err, ENG_INTERNAL, "the checkpoint's CTAugment counts are not this job's");
}

int fixmatch_cta_from_json(struct fixmatch_cta *c, const json_t *doc, struct eng_error *err)
{
    struct ctaug *state = ctaug_from_json(json_object_get(doc, "state"), err);
    if (!state) return -1;
    ctaug_free(c->state);
    c->state = state;
    return updates_from_json(c, json_object_get(doc, "updates"), err);
}
