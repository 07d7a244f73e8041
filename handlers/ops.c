/* GET /v1/ops: every op with its domain, arguments, ranges, defaults and level mapping, straight
 * from the registry, so the UI's sliders and the validation never disagree. ?domain=image lists
 * the image ops, audio the waveform and spectrogram ops, all (the default) every op. */
#include <jansson.h>
#include <string.h>

#include "handlers.h"
#include "policy/ops.h"
#include "request.h"
#include "response.h"

static const char *kind_name(enum op_arg_kind kind)
{
    return kind == OP_ARG_INTEGER ? "integer" : kind == OP_ARG_ENUM ? "enum" : "number";
}

static const char *map_name(enum op_level_map map)
{
    switch (map) {
    case LEVEL_VALUE:
        return "m";
    case LEVEL_ONE_PLUS:
        return "1 + m";
    case LEVEL_TRUNCATE:
        return "trunc(m)";
    case LEVEL_BITS_REMOVED:
        return "8 - round(m)";
    case LEVEL_NONE:
        break;
    }
    return NULL;
}

static const char *scale_name(enum op_level_scale scale)
{
    return scale == SCALE_WIDTH ? "width" : scale == SCALE_HEIGHT ? "height" : "absolute";
}

static json_t *arg_json(const struct op_arg_desc *a)
{
    json_t *o =
        json_pack("{s:s, s:s, s:f, s:f, s:s, s:s}", "name", a->name, "type", kind_name(a->kind),
                  "min", a->min, "max", a->max, "unit", a->unit, "help", a->help);
    if (!o) return NULL;
    if (a->drawn) json_object_set_new(o, "drawn", json_true());
    if (a->kind == OP_ARG_ENUM) {
        json_t *choices = json_array();
        for (int c = 0; a->choices[c]; c++)
            json_array_append_new(choices, json_string(a->choices[c]));
        json_object_set_new(o, "choices", choices);
        json_object_set_new(o, "default", json_string(a->choices[(int)a->def]));
    } else {
        json_object_set_new(o, "default",
                            a->kind == OP_ARG_INTEGER ? json_integer((json_int_t)a->def)
                                                      : json_real(a->def));
    }
    return o;
}

static json_t *op_json(const struct op_desc *op)
{
    json_t *args = json_array();
    for (int i = 0; i < op->arg_count; i++)
        json_array_append_new(args, arg_json(&op->args[i]));
    json_t *level = json_null();
    if (op->level.map != LEVEL_NONE)
        level = json_pack("{s:s, s:[f, f], s:s, s:s, s:b}", "arg", op->args[op->level.arg].name,
                          "range", op->level.lo, op->level.hi, "scale", scale_name(op->level.scale),
                          "maps_to", map_name(op->level.map), "random_sign",
                          op->level.signed_by_default);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:b, s:b}", "name", op->name, "domain",
                     op_domain_name(op->domain), "help", op->help, "args", args, "level", level,
                     "fill", (op->takes & OP_TAKES_FILL) != 0, "interpolation",
                     (op->takes & OP_TAKES_INTERPOLATION) != 0);
}

/* Whether op belongs to the ?domain= filter: "image", "audio" or "all". */
static int in_domain(const struct op_desc *op, const char *domain)
{
    if (strcmp(domain, "all") == 0) return 1;
    return (op->domain == OP_DOMAIN_IMAGE) == (strcmp(domain, "image") == 0);
}

void handle_ops(struct request *req, struct response *resp)
{
    const char *domain = request_query(req, "domain");
    if (!domain) domain = "all";
    if (strcmp(domain, "image") != 0 && strcmp(domain, "audio") != 0 &&
        strcmp(domain, "all") != 0) {
        response_error(resp, 422, "domain: must be image, audio or all");
        return;
    }
    size_t count;
    const struct op_desc *ops = op_table(&count);
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++)
        if (in_domain(&ops[i], domain)) json_array_append_new(list, op_json(&ops[i]));
    response_json(resp, 200, json_pack("{s:o}", "ops", list));
}
