/* CTAugment's state and policies as JSON, for the store and the API (policy.h's CTAugment
 * section has the shapes). Rates are float32; jansson writes a double with 17 significant digits,
 * which reads back as the same double and so the same float: the round trip is exact. */
#include <math.h>
#include <string.h>

#include "policy/internal.h"

/* {"op": [[v, ...] per argument], ...} for every op, v = value(c, op, arg, bin). */
static json_t *per_bin(const struct ctaug *c,
                       void (*values)(const struct ctaug *, int, int, float *))
{
    json_t *doc = json_object();
    for (int op = 0; doc && op < CTAUG_OPS; op++) {
        json_t *args = json_array();
        if (json_object_set_new(doc, CTAUG_TABLE[op].name, args)) goto fail;
        for (int a = 0; a < CTAUG_TABLE[op].args; a++) {
            float v[CTAUG_MAX_BINS];
            values(c, op, a, v);
            json_t *bins = json_array();
            if (json_array_append_new(args, bins)) goto fail;
            for (int b = 0; b < CTAUG_TABLE[op].bins[a]; b++)
                if (json_array_append_new(bins, json_real(v[b]))) goto fail;
        }
    }
    return doc;
fail:
    json_decref(doc);
    return NULL;
}

static void rates(const struct ctaug *c, int op, int arg, float *out)
{
    memcpy(out, c->rate[op][arg], (size_t)CTAUG_TABLE[op].bins[arg] * sizeof *out);
}

json_t *ctaug_to_json(const struct ctaug *c)
{
    json_t *r = per_bin(c, rates);
    if (!r) return NULL;
    return json_pack("{s:i, s:f, s:f, s:o}", "depth", c->settings.depth, "decay", c->settings.decay,
                     "threshold", c->settings.threshold, "rates", r);
}

json_t *ctaug_probabilities_to_json(const struct ctaug *c)
{
    return per_bin(c, ctaug_probabilities);
}

/* Sets *v from doc's number member key; -1 with err when it is missing or not a number. */
static int number_member(const json_t *doc, const char *key, double *v, struct eng_error *err)
{
    const json_t *n = json_object_get(doc, key);
    if (!json_is_number(n))
        return eng_fail(err, ENG_INVALID, "ctaugment state/%s: a number is required", key);
    *v = json_number_value(n);
    return 0;
}

static int read_rates(struct ctaug *c, const json_t *doc, struct eng_error *err)
{
    if (!json_is_object(doc))
        return eng_fail(err, ENG_INVALID, "ctaugment state/rates: an object of ops is required");
    const char *name;
    const json_t *args;
    json_object_foreach((json_t *)doc, name, args)
    {
        if (ctaug_op_find(name) < 0)
            return eng_fail(err, ENG_INVALID, "ctaugment state/rates/%s: no such op", name);
    }
    for (int op = 0; op < CTAUG_OPS; op++) {
        const struct ctaug_desc *d = &CTAUG_TABLE[op];
        args = json_object_get(doc, d->name);
        if (!json_is_array(args) || (int)json_array_size(args) != d->args)
            return eng_fail(err, ENG_INVALID,
                            "ctaugment state/rates/%s: an array of %d argument(s) is required",
                            d->name, d->args);
        for (int a = 0; a < d->args; a++) {
            const json_t *bins = json_array_get(args, (size_t)a);
            if (!json_is_array(bins) || (int)json_array_size(bins) != d->bins[a])
                return eng_fail(err, ENG_INVALID,
                                "ctaugment state/rates/%s/%d: an array of %d rates is required",
                                d->name, a, d->bins[a]);
            for (int b = 0; b < d->bins[a]; b++) {
                const json_t *v = json_array_get(bins, (size_t)b);
                double x = json_number_value(v);
                if (!json_is_number(v) || !(x >= 0 && x <= 1))
                    return eng_fail(err, ENG_INVALID,
                                    "ctaugment state/rates/%s/%d/%d: a rate is a number in [0, 1]",
                                    d->name, a, b);
                c->rate[op][a][b] = (float)x;
            }
        }
    }
    return 0;
}

struct ctaug *ctaug_from_json(const json_t *doc, struct eng_error *err)
{
    if (!json_is_object(doc))
        return eng_fail(err, ENG_INVALID, "ctaugment state: an object is required"), NULL;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        if (strcmp(key, "depth") && strcmp(key, "decay") && strcmp(key, "threshold") &&
            strcmp(key, "rates"))
            return eng_fail(err, ENG_INVALID, "ctaugment state/%s: unknown key", key), NULL;
    }
    const json_t *depth = json_object_get(doc, "depth");
    if (!json_is_integer(depth) || json_integer_value(depth) < 1 ||
        json_integer_value(depth) > CTAUG_MAX_DEPTH)
        return eng_fail(err, ENG_INVALID, "ctaugment state/depth: an integer in 1..%d is required",
                        CTAUG_MAX_DEPTH),
               NULL;
    struct ctaug_settings s = {.depth = (int)json_integer_value(depth)};
    if (number_member(doc, "decay", &s.decay, err) ||
        number_member(doc, "threshold", &s.threshold, err) ||
        ctaug_check_settings(&s, "ctaugment state/", err))
        return NULL;
    struct ctaug *c = ctaug_new(&s, err);
    if (c && read_rates(c, json_object_get(doc, "rates"), err)) {
        ctaug_free(c);
        return NULL;
    }
    return c;
}

json_t *ctaug_policy_to_json(const struct ctaug_policy *policy)
{
    json_t *doc = json_array();
    for (int i = 0; doc && i < policy->count; i++) {
        const struct ctaug_op *o = &policy->ops[i];
        json_t *values = json_array();
        if (json_array_append_new(doc, json_pack("[s, o]", CTAUG_TABLE[o->op].name, values)))
            goto fail;
        for (int a = 0; a < CTAUG_TABLE[o->op].args; a++)
            if (json_array_append_new(values, json_real(o->value[a]))) goto fail;
    }
    return doc;
fail:
    json_decref(doc);
    return NULL;
}

int ctaug_policy_from_json(const json_t *doc, struct ctaug_policy *policy, struct eng_error *err)
{
    if (!json_is_array(doc) || json_array_size(doc) > CTAUG_MAX_DEPTH)
        return eng_fail(err, ENG_INVALID,
                        "policy: an array of at most %d [op, [values]] pairs is required",
                        CTAUG_MAX_DEPTH);
    policy->count = (int)json_array_size(doc);
    for (int i = 0; i < policy->count; i++) {
        const json_t *pair = json_array_get(doc, (size_t)i);
        const json_t *values = json_array_get(pair, 1);
        struct ctaug_op *o = &policy->ops[i];
        o->op = ctaug_op_find(json_string_value(json_array_get(pair, 0)));
        if (!json_is_array(pair) || json_array_size(pair) != 2 || o->op < 0)
            return eng_fail(err, ENG_INVALID,
                            "policy/%d: [op, [values]] with a CTAugment op is "
                            "required",
                            i);
        const int args = CTAUG_TABLE[o->op].args;
        if (!json_is_array(values) || (int)json_array_size(values) != args)
            return eng_fail(err, ENG_INVALID, "policy/%d/1: %s takes %d value(s)", i,
                            CTAUG_TABLE[o->op].name, args);
        for (int a = 0; a < CTAUG_MAX_ARGS; a++) {
            const json_t *v = json_array_get(values, (size_t)a);
            if (a < args && !json_is_number(v))
                return eng_fail(err, ENG_INVALID, "policy/%d/1/%d: a number is required", i, a);
            o->value[a] = a < args ? json_number_value(v) : 0.0;
        }
    }
    return ctaug_check_policy(policy, err);
}
