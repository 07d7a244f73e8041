/* CTAugment's state: drawing policies from the rates and updating them from feedback, as
 * libml/ctaugment.py's CTAugment (policy.h's CTAugment section says what and why). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

const struct ctaug_settings CTAUG_DEFAULTS = {.depth = 2, .decay = 0.99, .threshold = 0.8};

const char *ctaug_op_name(int op)
{
    return op >= 0 && op < CTAUG_OPS ? CTAUG_TABLE[op].name : NULL;
}

int ctaug_op_args(int op)
{
    return op >= 0 && op < CTAUG_OPS ? CTAUG_TABLE[op].args : 0;
}

int ctaug_op_bins(int op, int arg)
{
    return arg >= 0 && arg < ctaug_op_args(op) ? CTAUG_TABLE[op].bins[arg] : 0;
}

int ctaug_op_find(const char *name)
{
    for (int op = 0; name && op < CTAUG_OPS; op++)
        if (!strcmp(CTAUG_TABLE[op].name, name)) return op;
    return -1;
}

int ctaug_check_settings(const struct ctaug_settings *s, const char *where, struct eng_error *err)
{
    if (s->depth < 1 || s->depth > CTAUG_MAX_DEPTH)
        return eng_fail(err, ENG_INVALID, "%sdepth: %d is not in 1..%d", where, s->depth,
                        CTAUG_MAX_DEPTH);
    if (!(s->decay > 0 && s->decay < 1))
        return eng_fail(err, ENG_INVALID, "%sdecay: %g is not in (0, 1)", where, s->decay);
    if (!(s->threshold >= 0 && s->threshold <= 1))
        return eng_fail(err, ENG_INVALID, "%sthreshold: %g is not in [0, 1]", where, s->threshold);
    return 0;
}

struct ctaug *ctaug_new(const struct ctaug_settings *settings, struct eng_error *err)
{
    if (!settings) settings = &CTAUG_DEFAULTS;
    if (ctaug_check_settings(settings, "ctaugment ", err)) return NULL;
    struct ctaug *c = calloc(1, sizeof *c);
    if (!c) return eng_no_memory(err), NULL;
    c->settings = *settings;
    for (int op = 0; op < CTAUG_OPS; op++)
        for (int a = 0; a < CTAUG_TABLE[op].args; a++)
            for (int b = 0; b < CTAUG_TABLE[op].bins[a]; b++)
                c->rate[op][a][b] = 1.0f;
    return c;
}

void ctaug_free(struct ctaug *c)
{
    free(c);
}

struct ctaug_settings ctaug_get_settings(const struct ctaug *c)
{
    return c->settings;
}

float ctaug_rate(const struct ctaug *c, int op, int arg, int bin)
{
    return c->rate[op][arg][bin];
}

/* numpy's sum of a float32 array (pairwise_sum below its 128-element block): eight running sums
 * once there are 8 or more, combined as a tree, then the rest in order. */
static float numpy_sum(const float *v, int n)
{
    if (n < 8) {
        float s = 0.0f;
        for (int i = 0; i < n; i++)
            s += v[i];
        return s;
    }
    float r[8];
    for (int j = 0; j < 8; j++)
        r[j] = v[j];
    int i = 8;
    for (; i < n - n % 8; i += 8)
        for (int j = 0; j < 8; j++)
            r[j] += v[i + j];
    float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++)
        s += v[i];
    return s;
}

/* rate_to_p then p / p.sum(), in float32 as the reference's arrays: 1 - decay is a Python
 * float, which numpy rounds to float32 before adding, and so is the threshold it compares with. */
void ctaug_probabilities(const struct ctaug *c, int op, int arg, float *q)
{
    const int n = ctaug_op_bins(op, arg);
    const float floor_rate = (float)(1.0 - c->settings.decay);
    const float threshold = (float)c->settings.threshold;
    float max = 0.0f;
    for (int b = 0; b < n; b++) {
        q[b] = c->rate[op][arg][b] + floor_rate;
        if (q[b] > max) max = q[b];
    }
    for (int b = 0; b < n; b++) {
        q[b] = q[b] / max;
        if (q[b] < threshold) q[b] = 0.0f;
    }
    const float sum = numpy_sum(q, n);
    for (int b = 0; b < n; b++)
        q[b] = q[b] / sum;
}

/* numpy.random.choice(n, p=q): the first bin whose cumulative probability passes u * total. Bins
 * of probability 0 are never drawn. */
static int choose_bin(const float *q, int n, struct rng *r)
{
    double cdf[CTAUG_MAX_BINS], total = 0.0;
    for (int b = 0; b < n; b++)
        cdf[b] = total += q[b];
    const double u = rng_uniform(r) * total;
    for (int b = 0; b < n; b++)
        if (u < cdf[b]) return b;
    return n - 1; /* u * total rounded up to total */
}

/* Per op: the op, then every argument's r, then (unless probing) every argument's bin, in the
 * reference's order of draws. */
void ctaug_draw(const struct ctaug *c, int probe, uint64_t seed, uint32_t input, uint32_t sample,
                struct ctaug_policy *out)
{
    struct rng r;
    rng_init(&r, seed, input, sample, RNG_STREAM_POLICY);
    out->count = c->settings.depth;
    for (int i = 0; i < out->count; i++) {
        struct ctaug_op *o = &out->ops[i];
        o->op = (int)rng_below(&r, CTAUG_OPS);
        const int args = CTAUG_TABLE[o->op].args;
        double u[CTAUG_MAX_ARGS];
        for (int a = 0; a < args; a++)
            u[a] = rng_uniform(&r);
        for (int a = 0; a < CTAUG_MAX_ARGS; a++)
            o->value[a] = a < args && probe ? u[a] : 0.0;
        if (probe) continue;
        for (int a = 0; a < args; a++) {
            const int n = CTAUG_TABLE[o->op].bins[a];
            float q[CTAUG_MAX_BINS];
            ctaug_probabilities(c, o->op, a, q);
            o->value[a] = (choose_bin(q, n, &r) + u[a]) / n;
        }
    }
}

int ctaug_feedback_bin(int op, int arg, double value)
{
    return (int)(value * ctaug_op_bins(op, arg) * 0.999);
}

int ctaug_check_policy(const struct ctaug_policy *policy, struct eng_error *err)
{
    if (policy->count < 0 || policy->count > CTAUG_MAX_DEPTH)
        return eng_fail(err, ENG_INVALID, "a policy has 0 to %d ops, not %d", CTAUG_MAX_DEPTH,
                        policy->count);
    for (int i = 0; i < policy->count; i++) {
        const struct ctaug_op *o = &policy->ops[i];
        if (o->op < 0 || o->op >= CTAUG_OPS)
            return eng_fail(err, ENG_INVALID, "policy/%d: no CTAugment op %d", i, o->op);
        for (int a = 0; a < CTAUG_TABLE[o->op].args; a++)
            if (!(o->value[a] >= 0 && o->value[a] <= 1))
                return eng_fail(err, ENG_INVALID, "policy/%d/1/%d: %s's value %g is not in [0, 1]",
                                i, a, CTAUG_TABLE[o->op].name, o->value[a]);
    }
    return 0;
}

int ctaug_proximity(const double *p, int classes, int label, double *proximity,
                    struct eng_error *err)
{
    if (classes < 1) return eng_fail(err, ENG_INVALID, "probabilities: none given");
    if (label < 0 || label >= classes)
        return eng_fail(err, ENG_INVALID, "label: %d is not a class in 0..%d", label, classes - 1);
    double sum = 0.0, error = 0.0;
    for (int k = 0; k < classes; k++) {
        if (!(p[k] >= 0 && p[k] <= 1))
            return eng_fail(err, ENG_INVALID, "probabilities/%d: %g is not in [0, 1]", k, p[k]);
        sum += p[k];
        error += fabs(k == label ? p[k] - 1.0 : p[k]);
    }
    if (fabs(sum - 1.0) > 1e-3)
        return eng_fail(err, ENG_INVALID, "probabilities: they sum to %g, not 1", sum);
    const double v = 1.0 - 0.5 * error;
    *proximity = v < 0 ? 0 : v > 1 ? 1 : v;
    return 0;
}

/* The reference multiplies a float32 rate by Python floats, which numpy does in double, and
 * stores the result in its float32 array. */
int ctaug_feedback(struct ctaug *c, const struct ctaug_policy *policy, double proximity,
                   struct eng_error *err)
{
    if (!(proximity >= 0 && proximity <= 1))
        return eng_fail(err, ENG_INVALID, "proximity: %g is not in [0, 1]", proximity);
    if (ctaug_check_policy(policy, err)) return -1;
    const double decay = c->settings.decay;
    for (int i = 0; i < policy->count; i++) {
        const struct ctaug_op *o = &policy->ops[i];
        for (int a = 0; a < CTAUG_TABLE[o->op].args; a++) {
            float *rate = &c->rate[o->op][a][ctaug_feedback_bin(o->op, a, o->value[a])];
            *rate = (float)((double)*rate * decay + proximity * (1 - decay));
        }
    }
    return 0;
}
