/* Search spaces (engine/search): placeholders and their errors, conditional dimensions, the
 * named spaces' dimensions and documents, gaugment's mutations, and the dimensions' priors
 * against their laws. Every draw is seeded, so the statistical checks are deterministic; each
 * would fail for a prior other than the one search.h states. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "search/search.h"

#define SOLARIZE_SPACE "{\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"int\": [0, 256]}}}"

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!doc) fail_msg("bad JSON in the test: %s: %s", text, jerr.text);
    return doc;
}

static struct search_space *compile(const char *text)
{
    json_t *doc = load(text);
    struct eng_error err = {0};
    struct search_space *s = search_space_compile(doc, &err);
    json_decref(doc);
    if (!s) fail_msg("%s: %s", text, err.message);
    return s;
}

/* The space is refused as ENG_INVALID with a message starting with start. */
static void expect_refused(const char *text, const char *start)
{
    json_t *doc = load(text);
    struct eng_error err = {0};
    struct search_space *s = search_space_compile(doc, &err);
    json_decref(doc);
    if (s) fail_msg("%s: compiled, expected \"%s\"", text, start);
    assert_int_equal(err.code, ENG_INVALID);
    if (strncmp(err.message, start, strlen(start)) != 0)
        fail_msg("%s:\n  got      \"%s\"\n  expected \"%s...\"", text, err.message, start);
}

/* The point's document must equal expected (JSON text). */
static void expect_document(const struct search_space *s, const double *point, const char *expected)
{
    struct eng_error err = {0};
    json_t *doc = search_space_concretize(s, point, &err);
    if (!doc) fail_msg("concretize: %s", err.message);
    json_t *want = load(expected);
    if (!json_equal(doc, want)) {
        char *got = json_dumps(doc, JSON_COMPACT);
        fail_msg("got %s\nexpected %s", got, expected);
    }
    json_decref(want);
    json_decref(doc);
}

/* ---- Placeholders --------------------------------------------------------------------------- */

static void test_placeholder_shapes(void **state)
{
    /* The issue's own examples compile. */
    struct search_space *s =
        compile("{\"op\": \"Rotate\", \"degrees\": {\"$search\": {\"uniform\": [0, 30]}}}");
    struct search_view v = search_space_view(s);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.dims[0].kind, SEARCH_DIM_UNIFORM);
    assert_string_equal(v.dims[0].pointer, "/degrees");
    assert_true(v.dims[0].low == 0 && v.dims[0].high == 30 && v.dims[0].parent == -1);
    search_space_free(s);
    s = compile("{\"preset\": \"randaugment\", \"n\": {\"$search\": {\"choice\": [1, 2, 3]}}, "
                "\"m\": {\"$search\": {\"int\": [0, 30]}}}");
    v = search_space_view(s);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.dims[0].kind, SEARCH_DIM_CHOICE);
    assert_int_equal(v.dims[0].choices, 3);
    assert_int_equal(v.dims[1].kind, SEARCH_DIM_INT);
    search_space_free(s);

    /* Each distribution's own shape, named by the placeholder's pointer. */
    const char *rotate = "{\"seq\": [{\"op\": \"Identity\"}, {\"op\": \"Rotate\", \"degrees\": "
                         "{\"$search\": %s}}]}";
    static const struct {
        const char *spec, *message;
    } bad[] = {
        {"{\"uniform\": [5, 5]}", "uniform needs [low, high] with low < high"},
        {"{\"uniform\": [30, 0]}", "uniform needs [low, high] with low < high"},
        {"{\"uniform\": [0]}", "uniform needs [low, high] with low < high"},
        {"{\"uniform\": [0, \"30\"]}", "uniform needs [low, high] with low < high"},
        {"{\"int\": [0, 2.5]}", "int needs [low, high], whole numbers with low <= high"},
        {"{\"int\": [3, 1]}", "int needs [low, high], whole numbers with low <= high"},
        {"{\"loguniform\": [0, 1]}", "loguniform needs [low, high] with 0 < low < high"},
        {"{\"quantized\": [0, 30]}", "quantized needs [low, high, step] with low < high, step > 0"},
        {"{\"quantized\": [0, 30, 0]}",
         "quantized needs [low, high, step] with low < high, step > 0"},
        {"{\"choice\": []}", "choice needs an array of 1 to 256 options"},
        {"{\"choice\": 3}", "choice needs an array of 1 to 256 options"},
        {"{\"normal\": [0, 1]}", "must be one of {\"choice\": [...]}"},
        {"{\"uniform\": [0, 1], \"int\": [0, 1]}", "must be one of {\"choice\": [...]}"},
        {"[0, 30]", "must be one of {\"choice\": [...]}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256], message[256];
        snprintf(text, sizeof text, rotate, bad[i].spec);
        snprintf(message, sizeof message, "/seq/1/degrees/$search: %s", bad[i].message);
        expect_refused(text, message);
    }
    expect_refused("{\"op\": \"Rotate\", \"degrees\": {\"$search\": {\"uniform\": [0, 1]}, "
                   "\"x\": 1}}",
                   "/degrees/$search: a placeholder is {\"$search\": {...}} alone");
    /* Keys are escaped in pointers as RFC 6901 says. */
    expect_refused("{\"op\": \"Rotate\", \"a/b~\": {\"$search\": {\"int\": [1, 0]}}}",
                   "/a~1b~0/$search: int needs");
}

static void test_out_of_range_values_refused(void **state)
{
    /* The brief's example, with the registry's range: Rotate takes degrees in [-360, 360], so
     * 300 is valid here and 400 is not; the message names /degrees. */
    expect_refused("{\"op\": \"Rotate\", \"degrees\": {\"$search\": {\"uniform\": [0, 400]}}}",
                   "/degrees: at its high, 400, the space gives no valid policy: /degrees: must "
                   "be in [-360, 360]");
    expect_refused("{\"op\": \"Posterize\", \"bits\": {\"$search\": {\"int\": [1, 9]}}}",
                   "/bits: at its high, 9, the space gives no valid policy: /bits: must be in");
    /* A real range over a whole-number argument: its ends are whole, a value between is not. */
    expect_refused("{\"op\": \"Posterize\", \"bits\": {\"$search\": {\"uniform\": [1, 8]}}}",
                   "/bits: at 3.67376 the space gives no valid policy: /bits: must be a whole "
                   "number");
    expect_refused("{\"op\": \"Posterize\", \"bits\": {\"$search\": {\"quantized\": [1, 8, "
                   "0.5]}}}",
                   "/bits: at 1.5 the space gives no valid policy: /bits: must be a whole number");
    /* The low end: every dimension at its low is the first point checked, and the error's
     * pointer tells which placeholder made it fail; an error elsewhere names none. */
    expect_refused("{\"op\": \"Rotate\", \"degrees\": {\"$search\": {\"uniform\": [-400, 0]}}}",
                   "/degrees: at its low, -400, the space gives no valid policy: /degrees: must be "
                   "in [-360, 360]");
    expect_refused("{\"seq\": [{\"op\": \"Identity\"}, {\"$search\": {\"choice\": [{\"op\": "
                   "\"Rotate\", \"degrees\": {\"$search\": {\"int\": [-400, 0]}}}]}}]}",
                   "/seq/1/$search/choice/0/degrees: at its low, -400, the space gives no valid "
                   "policy: /seq/1/degrees: must be in [-360, 360]");
    expect_refused("{\"$search\": {\"choice\": [{\"op\": \"Nope\"}, {\"op\": \"Identity\"}]}}",
                   "/: at its option 0 the space gives no valid policy: /op: unknown op");
    expect_refused("{\"seq\": [{\"op\": \"Nope\"}, {\"op\": \"Rotate\", \"degrees\": "
                   "{\"$search\": {\"int\": [0, 10]}}}]}",
                   "the space at each dimension's low gives no valid policy: /seq/0/op: unknown "
                   "op");
    /* A choice option that is no valid node names the choice and the option. */
    expect_refused("{\"seq\": [{\"$search\": {\"choice\": [{\"op\": \"Rotate\"}, {\"op\": "
                   "\"Nope\"}]}}]}",
                   "/seq/0: at its option 1 the space gives no valid policy: /seq/0/op: unknown "
                   "op \"Nope\"");
    /* A nested placeholder is checked with its parent choice taking its option. */
    expect_refused("{\"$search\": {\"choice\": [{\"op\": \"Identity\"}, {\"op\": \"Rotate\", "
                   "\"degrees\": {\"$search\": {\"int\": [0, 400]}}}]}}",
                   "/$search/choice/1/degrees: at its high, 400, the space gives no valid policy");
    /* A value a preset refuses: m past the bins, named by the argument. */
    expect_refused("{\"space\": \"randaugment\", \"m\": {\"int\": [0, 40]}}",
                   "/m: at its high, 40, the space gives no valid policy: /: preset parameter "
                   "\"m\" must be a whole number in [0, 30]");
}

/* {"op": "Rotate", "degrees": {"$search": ...}}: a choice of `options` angles when options > 0,
 * else the distribution {kind: [0, 10]}. */
static json_t *rotate(int options, const char *kind)
{
    json_t *values = json_array();
    for (int k = 0; k < options; k++)
        json_array_append_new(values, json_integer(k % 30));
    if (options == 0) {
        json_array_append_new(values, json_integer(0));
        json_array_append_new(values, json_integer(10));
    }
    return json_pack("{s:s, s:{s:{s:o}}}", "op", "Rotate", "degrees", "$search",
                     options ? "choice" : kind, values);
}

/* seq's first count items are Rotate nodes of rotate(options, kind). */
static void add_rotates(json_t *seq, int count, int options, const char *kind)
{
    for (int i = 0; i < count; i++)
        json_array_append_new(seq, rotate(options, kind));
}

/* The document is refused with exactly message. */
static void expect_message(json_t *doc, const char *message)
{
    struct eng_error err = {0};
    assert_null(search_space_compile(doc, &err));
    assert_string_equal(err.message, message);
    json_decref(doc);
}

static void test_limits(void **state)
{
    /* SEARCH_MAX_DIMS + 1 placeholders. */
    json_t *seq = json_array();
    add_rotates(seq, SEARCH_MAX_DIMS + 1, 0, "int");
    expect_message(json_pack("{s:o}", "seq", seq),
                   "/seq/256/degrees: the space has more than 256 dimensions or 1024 choice "
                   "options in all");
    /* A choice of SEARCH_MAX_CHOICES + 1 options. */
    expect_message(rotate(SEARCH_MAX_CHOICES + 1, NULL),
                   "/degrees/$search: choice needs an array of 1 to 256 options");
    /* Five choices of 250: past SEARCH_MAX_OPTIONS in all at the fifth. */
    seq = json_array();
    add_rotates(seq, 5, 250, NULL);
    expect_message(json_pack("{s:o}", "seq", seq),
                   "/seq/4/degrees: the space has more than 256 dimensions or 1024 choice options "
                   "in all");
    /* Within those, the check's work: 4 choices of 200 and 200 reals, 4 x 199 + 200 x 2 = 1196
     * checks, of a policy of 1 + 1 + 204 x 3 + 600 x 2 = 1814 JSON values (the root, the seq, the
     * Rotate nodes, 600 Identity ones): 2.2 million in all. */
    seq = json_array();
    add_rotates(seq, 4, 200, NULL);
    add_rotates(seq, 200, 0, "uniform");
    for (int i = 0; i < 600; i++)
        json_array_append_new(seq, json_pack("{s:s}", "op", "Identity"));
    expect_message(json_pack("{s:o}", "seq", seq),
                   "the space is too large to check: 1196 checks of a policy of 1814 JSON values, "
                   "past 1000000 in all; use fewer placeholders, options or nodes");

    /* Nesting past the walk's bound. */
    char text[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(text, "[");
    for (int i = 0; i < 100; i++)
        strcat(text, "]");
    expect_refused(text, "/0/0/0");
}

static void test_conditional_dims(void **state)
{
    struct search_space *s =
        compile("{\"$search\": {\"choice\": [{\"op\": \"Rotate\", \"degrees\": {\"$search\": "
                "{\"uniform\": [0, 30]}}}, {\"op\": \"Solarize\", \"threshold\": {\"$search\": "
                "{\"int\": [0, 256]}}}, {\"op\": \"Equalize\"}]}}");
    struct search_view v = search_space_view(s);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.dims[0].pointer, "");
    assert_string_equal(v.dims[1].pointer, "/$search/choice/0/degrees");
    assert_string_equal(v.dims[2].pointer, "/$search/choice/1/threshold");
    assert_int_equal(v.dims[1].parent, 0);
    assert_int_equal(v.dims[1].parent_choice, 0);
    assert_int_equal(v.dims[2].parent, 0);
    assert_int_equal(v.dims[2].parent_choice, 1);

    bool active[3];
    const double solarize[] = {1, 12.5, 100};
    search_dims_active(v.dims, v.n, solarize, active);
    assert_true(active[0] && !active[1] && active[2]);
    expect_document(s, solarize, "{\"op\": \"Solarize\", \"threshold\": 100}");
    const double rotate[] = {0, 12.5, 100};
    search_dims_active(v.dims, v.n, rotate, active);
    assert_true(active[0] && active[1] && !active[2]);
    expect_document(s, rotate, "{\"op\": \"Rotate\", \"degrees\": 12.5}");
    const double equalize[] = {2, 1e9, -1e9}; /* inactive values are never read */
    search_dims_active(v.dims, v.n, equalize, active);
    assert_true(active[0] && !active[1] && !active[2]);
    expect_document(s, equalize, "{\"op\": \"Equalize\"}");

    /* params: active dimensions only; a choice among nodes shows its index. */
    json_t *params = search_space_params(s, solarize);
    json_t *want = load("{\"\": 1, \"/$search/choice/1/threshold\": 100}");
    assert_true(json_equal(params, want));
    json_decref(params);
    json_decref(want);
    search_space_free(s);
}

static void test_points_checked(void **state)
{
    struct search_space *s =
        compile("{\"op\": \"Rotate\", \"degrees\": {\"$search\": {\"uniform\": [0, 30]}}}");
    struct eng_error err = {0};
    const double outside[] = {31}, nan_point[] = {NAN};
    assert_null(search_space_concretize(s, outside, &err));
    assert_string_equal(err.message, "point: /degrees: 31 is not in [0, 30]");
    assert_null(search_space_concretize(s, nan_point, &err));
    assert_int_equal(err.code, ENG_INVALID);
    search_space_free(s);

    /* A document without placeholders is a space of no dimensions: its one point is itself. */
    s = compile("\"autoaugment-cifar10\"");
    assert_int_equal(search_space_view(s).n, 0);
    expect_document(s, NULL, "\"autoaugment-cifar10\"");
    search_space_free(s);
}

/* ---- Named spaces --------------------------------------------------------------------------- */

static void test_randaugment_grid(void **state)
{
    /* The benchmark grid: exactly N {1, 2, 3} x M {3, 7, 11, 15}, 12 points. */
    struct search_space *s = compile("{\"space\": \"randaugment\", \"n\": [1, 2, 3], \"m\": [3, 7, "
                                     "11, 15]}");
    struct search_view v = search_space_view(s);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.dims[0].pointer, "/n");
    assert_string_equal(v.dims[1].pointer, "/m");
    assert_int_equal(v.dims[0].kind, SEARCH_DIM_CHOICE);
    assert_int_equal(v.dims[0].choices, 3);
    assert_int_equal(v.dims[1].kind, SEARCH_DIM_CHOICE);
    assert_int_equal(v.dims[1].choices, 4);
    const int n[] = {1, 2, 3}, m[] = {3, 7, 11, 15};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) {
            const double point[] = {i, k};
            char text[128];
            snprintf(text, sizeof text, "{\"preset\": \"randaugment\", \"n\": %d, \"m\": %d}", n[i],
                     m[k]);
            expect_document(s, point, text);
            snprintf(text, sizeof text, "{\"/n\": %d, \"/m\": %d}", n[i], m[k]);
            json_t *params = search_space_params(s, point), *want = load(text);
            assert_true(json_equal(params, want));
            json_decref(params);
            json_decref(want);
        }
    search_space_free(s);

    /* The defaults: N in {1, 2, 3}, M any of the 31 bins. */
    s = compile("{\"space\": \"randaugment\"}");
    v = search_space_view(s);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.dims[0].choices, 3);
    assert_int_equal(v.dims[1].kind, SEARCH_DIM_INT);
    assert_true(v.dims[1].low == 0 && v.dims[1].high == 30);
    search_space_free(s);

    expect_refused("{\"space\": \"randaugment\", \"k\": 3}",
                   "/k: unknown argument for the randaugment space");
    expect_refused("{\"space\": \"nope\"}", "/space: must name a space");
}

/* One sub-policy of two ops, both applied (p = 1): the trace's arguments. */
static json_t *autoaugment_trace(const struct search_space *s, const double *point)
{
    struct eng_error err = {0};
    json_t *doc = search_space_concretize(s, point, &err);
    struct policy *p = doc ? policy_parse(doc, &err) : NULL;
    struct trace *t = p ? policy_sample(p, 7, 0, 0, 32, 32, &err) : NULL;
    if (!t) fail_msg("%s", err.message);
    json_t *items = trace_to_json(t);
    trace_free(t);
    policy_free(p);
    json_decref(doc);
    return items;
}

static double arg_of(const json_t *items, size_t i, const char *name)
{
    return json_number_value(json_object_get(json_array_get(items, i), name));
}

static void test_autoaugment_magnitudes(void **state)
{
    struct search_space *s = compile("{\"space\": \"autoaugment\", \"k\": 1}");
    struct search_view v = search_space_view(s);
    /* Two ops of 15 (AutoAugment's 16 but SamplePairing), p in 11 steps, bins 0-9. */
    assert_int_equal(v.n, 6);
    assert_string_equal(v.dims[0].pointer, "/sub_policies/0/0/op");
    assert_int_equal(v.dims[0].choices, 15);
    assert_int_equal(v.dims[1].kind, SEARCH_DIM_QUANTIZED);
    assert_true(v.dims[1].low == 0 && v.dims[1].high == 1 && v.dims[1].step == 0.1);
    assert_int_equal(v.dims[2].kind, SEARCH_DIM_INT);
    assert_true(v.dims[2].low == 0 && v.dims[2].high == 9);

    /* The document: as the autoaugment presets write a sub-policy; 3 steps of 0.1 is 0.3. */
    const double doc_point[] = {4, 0.30000000000000004, 9, 14, 1, 4};
    expect_document(s, doc_point,
                    "{\"choice\": [{\"seq\": [{\"p\": 0.3, \"do\": {\"op\": \"Rotate\", \"level\": "
                    "{\"bin\": 9, \"bins\": 10}}}, {\"p\": 1.0, \"do\": {\"op\": \"Cutout\", "
                    "\"size\": 8, \"size_fraction\": 0}}]}]}");
    json_t *params = search_space_params(s, doc_point);
    json_t *want = load("{\"/sub_policies/0/0/op\": \"Rotate\", \"/sub_policies/0/0/p\": 0.3, "
                        "\"/sub_policies/0/0/bin\": 9, \"/sub_policies/0/1/op\": \"Cutout\", "
                        "\"/sub_policies/0/1/p\": 1.0, \"/sub_policies/0/1/bin\": 4}");
    assert_true(json_equal(params, want));
    json_decref(params);
    json_decref(want);

    /* The magnitudes, by hand from torchvision's AutoAugment (linspace(lo, hi, 10)[bin]) and the
     * reference's cutout int(bin * 20 / 10). Rotate 9: 30 degrees; ShearX 3: 0.1; Solarize 5:
     * 255 - 5 * 255 / 9 = 113.33; Posterize 7: 8 - round(7 * 4 / 9) = 5 bits; Brightness 6:
     * 1 +- 6 * 0.9 / 9 = 1 +- 0.6; Cutout 4: 8 pixels. */
    const double rotate_shear[] = {4, 1, 9, 0, 1, 3};
    json_t *items = autoaugment_trace(s, rotate_shear);
    assert_int_equal(json_array_size(items), 2);
    assert_float_equal(fabs(arg_of(items, 0, "degrees")), 30, 1e-5);
    assert_float_equal(fabs(arg_of(items, 1, "factor")), 0.1, 1e-6);
    json_decref(items);
    const double solarize_posterize[] = {8, 1, 5, 9, 1, 7};
    items = autoaugment_trace(s, solarize_posterize);
    assert_float_equal(arg_of(items, 0, "threshold"), 255 - 5 * 255.0 / 9, 1e-4);
    assert_float_equal(arg_of(items, 1, "bits"), 5, 0);
    json_decref(items);
    const double brightness_cutout[] = {12, 1, 6, 14, 1, 4};
    items = autoaugment_trace(s, brightness_cutout);
    assert_float_equal(fabs(arg_of(items, 0, "factor") - 1), 0.6, 1e-6);
    assert_float_equal(arg_of(items, 1, "side"), 8, 0);
    json_decref(items);
    /* p = 0: neither op applies. */
    const double never[] = {4, 0, 9, 0, 0, 3};
    items = autoaugment_trace(s, never);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
    search_space_free(s);

    s = compile("{\"space\": \"autoaugment\"}");
    assert_int_equal(search_space_view(s).n, 5 * 2 * 3); /* K = 5, as AutoAugment's */
    search_space_free(s);
    expect_refused("{\"space\": \"autoaugment\", \"ops\": [\"Gain\"]}",
                   "/ops/0: must name an op of this space's domain");
    expect_refused("{\"space\": \"autoaugment\", \"k\": 26}",
                   "/k: must be a whole number in [1, 25]");
}

static void test_specaugment(void **state)
{
    struct search_space *s = compile("{\"space\": \"specaugment\"}");
    struct search_view v = search_space_view(s);
    static const char *const pointers[] = {"/F", "/mF", "/T", "/p", "/mT"};
    assert_int_equal(v.n, 5);
    for (size_t i = 0; i < v.n; i++)
        assert_string_equal(v.dims[i].pointer, pointers[i]);
    const double lowest[] = {0, 0, 0, 0.05, 0};
    expect_document(s, lowest,
                    "{\"seq\": [{\"op\": \"TimeWarp\", \"W\": 80}, {\"op\": \"FrequencyMask\", "
                    "\"F\": 0, \"count\": 1, \"value\": \"zero\"}, {\"op\": \"TimeMask\", \"T\": "
                    "0, \"p\": 0.05, \"count\": 1, \"value\": \"zero\"}]}");
    search_space_free(s);
    /* The LD policy is a point of a space whose ranges hold it. */
    s = compile("{\"space\": \"specaugment\", \"F\": [15, 27], \"T\": {\"int\": [70, 100]}, \"p\": "
                "[0.2, 1.0], \"W\": 40, \"value\": \"mean\"}");
    const double ld[] = {1, 1, 100, 1, 1};
    expect_document(s, ld,
                    "{\"seq\": [{\"op\": \"TimeWarp\", \"W\": 40}, {\"op\": \"FrequencyMask\", "
                    "\"F\": 27, \"count\": 2, \"value\": \"mean\"}, {\"op\": \"TimeMask\", \"T\": "
                    "100, \"p\": 1.0, \"count\": 2, \"value\": \"mean\"}]}");
    search_space_free(s);
    expect_refused("{\"space\": \"specaugment\", \"value\": [\"zero\", \"mean\"]}",
                   "/value: must be \"zero\" or \"mean\"");
}

static void test_ops_subset(void **state)
{
    struct search_space *s = compile("{\"space\": \"ops-subset\"}");
    struct search_view v = search_space_view(s);
    assert_int_equal(v.n, 14); /* trivialaugment-wide's ops */
    assert_string_equal(v.dims[0].pointer, "/ops/Identity");
    search_space_free(s);
    /* The preset's nodes at the space's bins: Identity alone, then ShearX at a bin of 11 over
     * TrivialAugmentWide's range. */
    s = compile("{\"space\": \"ops-subset\", \"bins\": 11}");
    double shear_x[14];
    for (size_t i = 0; i < 14; i++)
        shear_x[i] = i == 1 ? 0 : 1;
    expect_document(s, shear_x,
                    "{\"choice\": [{\"op\": \"ShearX\", \"level\": {\"bins\": 11}, \"range\": "
                    "[0.0, 0.99]}]}");
    search_space_free(s);

    s = compile("{\"space\": \"ops-subset\", \"ops\": [\"Rotate\", \"Equalize\"], \"bins\": 11}");
    v = search_space_view(s);
    assert_int_equal(v.n, 2);
    const double rotate_only[] = {0, 1};
    expect_document(s, rotate_only,
                    "{\"choice\": [{\"op\": \"Rotate\", \"level\": {\"bins\": 11}}]}");
    json_t *params = search_space_params(s, rotate_only);
    json_t *want = load("{\"/ops/Rotate\": true, \"/ops/Equalize\": false}");
    assert_true(json_equal(params, want));
    json_decref(params);
    json_decref(want);
    const double none[] = {1, 1};
    struct eng_error err = {0};
    assert_null(search_space_concretize(s, none, &err));
    assert_string_equal(err.message, "point: an ops-subset point must include at least one op");

    /* Neither the sampler nor the mutation proposes the empty subset; with two ops a plain draw
     * would in a quarter of the points. Each op is in 5/8 of them: in half of the draws, and in
     * half of the empty quarter made a one-op subset (1875 of 3000, sd 27). */
    int included[2] = {0, 0};
    for (uint32_t i = 0; i < 3000; i++) {
        struct rng r;
        double point[2], child[2];
        rng_init(&r, 11, i, 0, 0);
        v.sample(v.ctx, &r, point);
        assert_true(point[0] == 0 || point[1] == 0);
        included[0] += point[0] == 0;
        included[1] += point[1] == 0;
        v.mutate(v.ctx, &r, point, child);
        assert_true(child[0] == 0 || child[1] == 0);
        assert_false(child[0] == point[0] && child[1] == point[1]);
    }
    assert_in_range(included[0], 1775, 1975);
    assert_in_range(included[1], 1775, 1975);
    search_space_free(s);
    expect_refused("{\"space\": \"ops-subset\", \"ops\": [\"Rotate\", \"Rotate\"]}",
                   "/ops/1: Rotate is listed twice");
}

/* Edges per vertex and the longest path, of a gaugment document (vertices v0 .. v8). */
static void graph_shape(const json_t *doc, int *widest, int *longest)
{
    int out[16] = {0}, length[16] = {0};
    const json_t *edges = json_object_get(json_object_get(doc, "dag"), "edges");
    *widest = *longest = 0;
    /* Edges are listed by their source, in stage order, so one pass finds the longest path. */
    for (size_t i = 0; i < json_array_size(edges); i++) {
        const json_t *e = json_array_get(edges, i);
        int from = atoi(json_string_value(json_object_get(e, "from")) + 1);
        int to = atoi(json_string_value(json_object_get(e, "to")) + 1);
        assert_true(from >= 0 && to > from && to < 16);
        out[from]++;
        if (length[from] + 1 > length[to]) length[to] = length[from] + 1;
    }
    for (int i = 0; i < 16; i++) {
        if (out[i] > *widest) *widest = out[i];
        if (length[i] > *longest) *longest = length[i];
    }
}

/* Every point a chain of mutations reaches is a valid graph within the depth and width, and the
 * mutations do add and remove edges and change the graph in most steps. */
static void mutate_chain(const char *text, int depth, int width, uint64_t seed)
{
    struct search_space *s = compile(text);
    struct search_view v = search_space_view(s);
    double *point = calloc(v.n, sizeof *point), *child = calloc(v.n, sizeof *child);
    json_t *previous = NULL;
    int changed = 0, grew = 0, shrank = 0, widest_seen = 0, longest_seen = 0, steps = 400;
    for (size_t i = 0; i < v.n; i++)
        point[i] = v.dims[i].low;
    for (int step = 0; step < steps; step++) {
        struct rng r;
        rng_init(&r, seed, (uint32_t)step, 0, 0);
        v.mutate(v.ctx, &r, point, child);
        memcpy(point, child, v.n * sizeof *point);
        struct eng_error err = {0};
        json_t *doc = search_space_concretize(s, point, &err);
        struct policy *p = doc ? policy_parse(doc, &err) : NULL;
        if (!p) fail_msg("step %d: %s", step, err.message);
        policy_free(p);
        int widest, longest;
        graph_shape(doc, &widest, &longest);
        assert_true(widest >= 1 && widest <= width);
        assert_true(longest >= 1 && longest <= depth);
        widest_seen = widest > widest_seen ? widest : widest_seen;
        longest_seen = longest > longest_seen ? longest : longest_seen;
        if (previous) {
            size_t before =
                json_array_size(json_object_get(json_object_get(previous, "dag"), "edges"));
            size_t after = json_array_size(json_object_get(json_object_get(doc, "dag"), "edges"));
            changed += !json_equal(previous, doc);
            grew += after > before;
            shrank += after < before;
        }
        json_decref(previous);
        previous = doc;
    }
    json_decref(previous);
    /* Weight and level changes that a lone edge or an op without a level ignores leave the
     * document as it was; the other mutations change it. */
    assert_true(changed > steps / 2);
    assert_true(grew > 10 && shrank > 10);
    assert_int_equal(widest_seen, width);
    assert_int_equal(longest_seen, depth);
    free(point);
    free(child);
    search_space_free(s);
}

static void test_gaugment_mutations(void **state)
{
    mutate_chain("{\"space\": \"gaugment\"}", 3, 3, 1);
    mutate_chain("{\"space\": \"gaugment\", \"depth\": 5, \"width\": 2}", 5, 2, 2);
    mutate_chain("{\"space\": \"gaugment\", \"domain\": \"audio\", \"depth\": 4, \"width\": 4}", 4,
                 4, 3);
    /* The encoding: depth 2, width 2: stage 0's slots (op, weight, level, to; then on, op,
     * weight, level, to), stage 1's (op, weight, level; on, op, weight, level). */
    struct search_space *s =
        compile("{\"space\": \"gaugment\", \"depth\": 2, \"width\": 2, \"ops\": [\"Rotate\", "
                "\"Equalize\"]}");
    struct search_view v = search_space_view(s);
    assert_int_equal(v.n, 16);
    assert_string_equal(v.dims[4].pointer, "/stages/0/edges/1/on");
    assert_int_equal(v.dims[5].parent, 4);
    assert_int_equal(v.dims[5].parent_choice, 1);
    /* Stage 0: Rotate at level 0.5, weight 1, to v1; and a skip of weight 3 jumping to v2.
     * Stage 1: Equalize, weight 2 (its only edge: p 1); its second slot off. */
    const double point[] = {0, 1, 0.5, 1, 1, 2, 3, 0, 2, 1, 2, 0, 0, 0, 5, 0.5};
    expect_document(s, point,
                    "{\"dag\": {\"start\": \"v0\", \"edges\": [{\"from\": \"v0\", \"to\": \"v1\", "
                    "\"p\": 0.25, \"do\": {\"op\": \"Rotate\", \"level\": 0.5}}, {\"from\": "
                    "\"v0\", \"to\": \"v2\", \"p\": 0.75}, {\"from\": \"v1\", \"to\": \"v2\", "
                    "\"p\": 1.0, \"do\": {\"op\": \"Equalize\"}}]}}");
    search_space_free(s);
    expect_refused("{\"space\": \"gaugment\", \"depth\": 9}", "/depth: must be a whole number in "
                                                              "[1, 8]");
    expect_refused("{\"space\": \"gaugment\", \"domain\": \"audio\", \"depth\": 1}",
                   "/depth: a graph of waveform and spectrogram ops needs a depth of 2");
    expect_refused("{\"space\": \"gaugment\", \"domain\": \"audio\", \"ops\": [\"Rotate\"]}",
                   "/ops/0: must name an op of this space's domain");
}

/* Random points of every named space, drawn as an algorithm draws them (the space's sampler,
 * or each active dimension from its prior), give documents that parse, and image ones sample. */
static void test_random_points_parse(void **state)
{
    static const char *const spaces[] = {
        "{\"space\": \"randaugment\"}",
        "{\"space\": \"randaugment\", \"n\": [1, 2, 3], \"m\": [3, 7, 11, 15]}",
        "{\"space\": \"autoaugment\"}",
        "{\"space\": \"autoaugment\", \"k\": 25}",
        "{\"space\": \"ops-subset\"}",
        "{\"space\": \"gaugment\"}",
        "{\"space\": \"gaugment\", \"depth\": 8, \"width\": 4}",
        "{\"space\": \"gaugment\", \"domain\": \"audio\"}",
        "{\"space\": \"specaugment\"}",
        /* The README's example. */
        "{\"seq\": [{\"op\": \"Rotate\", \"degrees\": {\"$search\": {\"uniform\": [0, 30]}}}, "
        "{\"$search\": {\"choice\": [{\"op\": \"Solarize\", \"threshold\": {\"$search\": "
        "{\"int\": [0, 256]}}}, \"trivialaugment-wide\"]}}]}",
        "{\"seq\": [{\"$search\": {\"choice\": [{\"op\": \"Rotate\", \"degrees\": {\"$search\": "
        "{\"loguniform\": [0.1, 30]}}}, \"randaugment\"]}}, {\"op\": \"Solarize\", \"threshold\": "
        "{\"$search\": {\"quantized\": [0, 256, 32]}}}]}",
    };
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
        struct search_space *s = compile(spaces[i]);
        struct search_view v = search_space_view(s);
        double *point = calloc(v.n, sizeof *point);
        bool *active = calloc(v.n, sizeof *active);
        for (uint32_t seed = 0; seed < 200; seed++) {
            struct rng r;
            rng_init(&r, 5, seed, (uint32_t)i, 0);
            if (v.sample)
                v.sample(v.ctx, &r, point);
            else
                for (size_t d = 0; d < v.n; d++)
                    point[d] = search_dim_sample(&v.dims[d], &r);
            search_dims_active(v.dims, v.n, point, active);
            struct eng_error err = {0};
            json_t *doc = search_space_concretize(s, point, &err);
            struct policy *p = doc ? policy_parse(doc, &err) : NULL;
            if (!p) fail_msg("%s, seed %u: %s", spaces[i], seed, err.message);
            /* The domains the check noted hold every point's. */
            if (policy_domain(p) & ~search_space_domains(s))
                fail_msg("%s, seed %u: domains %u, the space's %u", spaces[i], seed,
                         policy_domain(p), search_space_domains(s));
            if (policy_domain(p) & POLICY_IMAGE) {
                struct trace *t = policy_sample(p, seed, 0, 0, 32, 32, &err);
                if (!t) fail_msg("%s, seed %u: %s", spaces[i], seed, err.message);
                trace_free(t);
            }
            json_t *params = search_space_params(s, point);
            size_t expected = 0;
            for (size_t d = 0; d < v.n; d++)
                expected += active[d];
            assert_int_equal(json_object_size(params), expected);
            json_decref(params);
            policy_free(p);
            json_decref(doc);
        }
        free(point);
        free(active);
        search_space_free(s);
    }
}

/* The space (JSON text) gives policies of domains, of which domain was first met as source
 * says; no other domain has a source. */
static void expect_domain(const char *text, unsigned domains, unsigned domain, const char *source)
{
    struct search_space *s = compile(text);
    assert_int_equal(search_space_domains(s), domains);
    assert_string_equal(search_space_domain_source(s, domain), source);
    for (unsigned d = POLICY_IMAGE; d <= POLICY_SPECTROGRAM; d <<= 1)
        if (!(domains & d)) assert_null(search_space_domain_source(s, d));
    search_space_free(s);
}

/* The domains of the policies a space gives, and where each was first met: at the lowest point,
 * or at the option that holds an audio op, however deep (a choice inside another's option). */
static void test_domains(void **state)
{
    expect_domain("{\"space\": \"specaugment\"}", POLICY_SPECTROGRAM, POLICY_SPECTROGRAM,
                  "the space at each dimension's low gives a spectrogram policy (TimeWarp at "
                  "/seq/0 of it)");
    struct search_space *s = compile("{\"space\": \"gaugment\", \"domain\": \"audio\"}");
    assert_int_equal(search_space_domains(s), POLICY_WAVEFORM | POLICY_SPECTROGRAM);
    search_space_free(s);

    expect_domain(
        "{\"p\": 0.5, \"do\": {\"$search\": {\"choice\": [{\"op\": \"Rotate\", \"degrees\": "
        "10}, {\"op\": \"Posterize\", \"bits\": 4}, {\"op\": \"FrequencyMask\", \"F\": 10}]}}}",
        POLICY_IMAGE | POLICY_SPECTROGRAM, POLICY_SPECTROGRAM,
        "/do at its option 2 gives a spectrogram policy (FrequencyMask at /do of it)");
    expect_domain(
        "{\"p\": 0.5, \"do\": {\"$search\": {\"choice\": [{\"op\": \"Rotate\", \"degrees\": "
        "10}, {\"op\": \"FrequencyMask\", \"F\": 10}]}}}",
        POLICY_IMAGE | POLICY_SPECTROGRAM, POLICY_IMAGE,
        "the space at each dimension's low gives an image policy (Rotate at /do of it)");
    expect_domain("{\"op\": \"TimeMask\", \"T\": 5}", POLICY_SPECTROGRAM, POLICY_SPECTROGRAM,
                  "the space (no placeholder) gives a spectrogram policy (TimeMask at / of it)");
    /* The audio op only where an inner choice, itself in an outer one's option 1, takes its
     * option 1; a preset name as an option is expanded to find its ops. */
    expect_domain(
        "{\"$search\": {\"choice\": [\"randaugment\", {\"p\": {\"$search\": {\"uniform\": [0.1, "
        "1]}}, \"do\": {\"$search\": {\"choice\": [{\"op\": \"Invert\"}, {\"op\": "
        "\"TimeMask\", \"T\": 5}]}}}]}}",
        POLICY_IMAGE | POLICY_SPECTROGRAM, POLICY_SPECTROGRAM,
        "/$search/choice/1/do at its option 1 gives a spectrogram policy (TimeMask at /do of it)");

    /* Image spaces, named and not: no other domain. */
    static const char *const image[] = {
        "{\"space\": \"randaugment\"}", "{\"space\": \"autoaugment\"}",
        "{\"space\": \"ops-subset\"}", "{\"space\": \"gaugment\"}", SOLARIZE_SPACE};
    for (size_t i = 0; i < sizeof image / sizeof image[0]; i++) {
        s = compile(image[i]);
        if (search_space_domains(s) != POLICY_IMAGE)
            fail_msg("%s: domains %u", image[i], search_space_domains(s));
        search_space_free(s);
    }
}

/* A space that may give a policy of several views (a "views" root: AugMix's jsd mode) says where,
 * the way the check first met one; one whose policies all have one view says nothing. */
static void test_views(void **state)
{
    (void)state;
    static const struct {
        const char *space, *source;
    } cases[] = {
        {"{\"$search\": {\"choice\": [{\"op\": \"Invert\"}, {\"preset\": \"augmix\", \"jsd\": "
         "true}]}}",
         "/ at its option 1 gives a policy of 3 views"},
        {"{\"preset\": \"augmix\", \"jsd\": {\"$search\": {\"choice\": [false, true]}}}",
         "/jsd at its option 1 gives a policy of 3 views"},
        {"{\"views\": [{\"op\": \"Identity\"}, {\"op\": \"Rotate\", \"degrees\": {\"$search\": "
         "{\"uniform\": [0, 30]}}}]}",
         "the space at each dimension's low gives a policy of 2 views"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct search_space *s = compile(cases[i].space);
        assert_string_equal(search_space_views_source(s), cases[i].source);
        search_space_free(s);
    }
    static const char *const one[] = {"{\"space\": \"randaugment\"}",
                                      "{\"preset\": \"augmix\", \"jsd\": false}", SOLARIZE_SPACE};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        struct search_space *s = compile(one[i]);
        assert_null(search_space_views_source(s));
        search_space_free(s);
    }
}

/* ---- Dimensions ----------------------------------------------------------------------------- */

/* Pearson's chi-square of counts against equal expectations. */
static double chi_square(const int *counts, int bins, int draws)
{
    double expected = (double)draws / bins, x = 0;
    for (int b = 0; b < bins; b++)
        x += (counts[b] - expected) * (counts[b] - expected) / expected;
    return x;
}

static void test_dim_sample_laws(void **state)
{
    enum { DRAWS = 40000 };
    struct rng r;
    rng_init(&r, 99, 0, 0, 0);

    /* int [3, 7]: integers only, both ends reached, uniform (chi-square, 4 degrees of freedom,
     * 18.47 at p = 0.001). */
    const struct search_dim ints = {.kind = SEARCH_DIM_INT, .low = 3, .high = 7, .parent = -1};
    int counts[10] = {0};
    for (int i = 0; i < DRAWS; i++) {
        double x = search_dim_sample(&ints, &r);
        assert_true(x == floor(x) && x >= 3 && x <= 7);
        counts[(int)x - 3]++;
    }
    assert_true(counts[0] > 0 && counts[4] > 0);
    assert_true(chi_square(counts, 5, DRAWS) < 18.47);

    /* loguniform [0.001, 10]: uniform in log10 over [-3, 1], 8 bins (7 degrees of freedom,
     * 24.32 at p = 0.001); a draw uniform in the value would put 90% in the top bin pair. */
    const struct search_dim logs = {
        .kind = SEARCH_DIM_LOGUNIFORM, .low = 0.001, .high = 10, .parent = -1};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < DRAWS; i++) {
        double x = search_dim_sample(&logs, &r);
        assert_true(x >= 0.001 && x <= 10);
        int bin = (int)((log10(x) + 3) / 4 * 8);
        counts[bin < 8 ? bin : 7]++;
    }
    assert_true(chi_square(counts, 8, DRAWS) < 24.32);

    /* quantized [0, 1, 0.3]: the lattice 0, 0.3, 0.6, 0.9 only (1 is off it), written short,
     * uniform (3 degrees of freedom, 16.27 at p = 0.001). */
    const struct search_dim lattice = {
        .kind = SEARCH_DIM_QUANTIZED, .low = 0, .high = 1, .step = 0.3, .parent = -1};
    const double points[] = {0, 0.3, 0.6, 0.9};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < DRAWS; i++) {
        double x = search_dim_sample(&lattice, &r);
        int k = 0;
        while (k < 4 && x != points[k])
            k++;
        if (k == 4) fail_msg("%.17g is not on the lattice", x);
        counts[k]++;
    }
    assert_true(chi_square(counts, 4, DRAWS) < 16.27);

    /* uniform [-2, 2]: 10 bins (9 degrees of freedom, 27.88 at p = 0.001). */
    const struct search_dim reals = {
        .kind = SEARCH_DIM_UNIFORM, .low = -2, .high = 2, .parent = -1};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < DRAWS; i++) {
        double x = search_dim_sample(&reals, &r);
        assert_true(x >= -2 && x < 2);
        counts[(int)((x + 2) / 4 * 10)]++;
    }
    assert_true(chi_square(counts, 10, DRAWS) < 27.88);

    /* choice of 3 (2 degrees of freedom, 13.82 at p = 0.001). */
    const struct search_dim choice = {
        .kind = SEARCH_DIM_CHOICE, .high = 2, .choices = 3, .parent = -1};
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < DRAWS; i++)
        counts[(int)search_dim_sample(&choice, &r)]++;
    assert_true(chi_square(counts, 3, DRAWS) < 13.82);
}

static void test_dim_snap(void **state)
{
    const struct search_dim tenths = {
        .kind = SEARCH_DIM_QUANTIZED, .low = 0, .high = 1, .step = 0.1, .parent = -1};
    assert_true(search_dim_snap(&tenths, 0.1 * 3) == 0.3);
    assert_true(search_dim_snap(&tenths, 0.74) == 0.7);
    assert_true(search_dim_snap(&tenths, 7) == 1);
    assert_true(search_dim_snap(&tenths, -1) == 0);
    const struct search_dim ints = {.kind = SEARCH_DIM_INT, .low = 1, .high = 5, .parent = -1};
    assert_true(search_dim_snap(&ints, 2.6) == 3);
    assert_true(search_dim_snap(&ints, 0.2) == 1);
    const struct search_dim choice = {
        .kind = SEARCH_DIM_CHOICE, .high = 3, .choices = 4, .parent = -1};
    assert_true(search_dim_snap(&choice, 3.4) == 3);
    assert_true(search_dim_snap(&choice, 9) == 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placeholder_shapes),
        cmocka_unit_test(test_out_of_range_values_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_conditional_dims),
        cmocka_unit_test(test_points_checked),
        cmocka_unit_test(test_randaugment_grid),
        cmocka_unit_test(test_autoaugment_magnitudes),
        cmocka_unit_test(test_specaugment),
        cmocka_unit_test(test_ops_subset),
        cmocka_unit_test(test_gaugment_mutations),
        cmocka_unit_test(test_random_points_parse),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_dim_sample_laws),
        cmocka_unit_test(test_dim_snap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
