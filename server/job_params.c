/* Reading a job's params (job_kind.h): the same words for the same mistakes in every kind. */
#include <stdio.h>
#include <string.h>

#include "job_kind.h"
#include "json_text.h"

int job_params_known(const json_t *params, const char *const names[], struct eng_error *err)
{
    return json_check_members(params, names, "params.", "parameter", err);
}

/* params' member name, a dotted path ("optimizer.lr") reaching into nested objects. */
static const json_t *member(const json_t *params, const char *name)
{
    const char *dot;
    while (params && (dot = strchr(name, '.'))) {
        char head[64];
        snprintf(head, sizeof head, "%.*s", (int)(dot - name), name);
        params = json_object_get(params, head);
        name = dot + 1;
    }
    return json_object_get(params, name);
}

int job_param_int(const json_t *params, const char *name, int required, long long def,
                  long long min, long long max, long long *out, struct eng_error *err)
{
    const json_t *value = member(params, name);
    if (!value && !required) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(value) || json_integer_value(value) < min ||
        json_integer_value(value) > max)
        return eng_fail(err, ENG_INVALID, "params.%s: %s a whole number in [%lld, %lld]", name,
                        value ? "must be" : "required:", min, max);
    *out = json_integer_value(value);
    return 0;
}

int job_param_real(const json_t *params, const char *name, int required, double def, double min,
                   double max, double *out, struct eng_error *err)
{
    const json_t *value = member(params, name);
    if (!value && !required) {
        *out = def;
        return 0;
    }
    double v = json_number_value(value);
    if (!json_is_number(value) || !(v >= min && v <= max))
        return eng_fail(err, ENG_INVALID, "params.%s: %s a number in [%g, %g]", name,
                        value ? "must be" : "required:", min, max);
    *out = v;
    return 0;
}
