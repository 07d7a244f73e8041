#include "testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "train/train.h"

struct blob tu_read_file(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(size >= 0);
    struct blob b = {malloc((size_t)size + 1), 0};
    assert_non_null(b.data);
    b.size = fread(b.data, 1, (size_t)size, f);
    fclose(f);
    assert_int_equal(b.size, (size_t)size);
    return b;
}

json_t *tu_load_json(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) fail_msg("%s: %s", path, jerr.text);
    return doc;
}

struct policy *tu_parse_policy(const char *text)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (!p) fail_msg("%s: %s", text, err.message);
    return p;
}

void tu_expect_policy_invalid(const char *text, const char *message)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (p) fail_msg("accepted: %s", text);
    assert_int_equal(err.code, ENG_INVALID);
    if (!strstr(err.message, message))
        fail_msg("%s\n  gave: %s\n  expected to contain: %s", text, err.message, message);
}

struct nn_graph *tu_zoo_model(const char *model_json, uint64_t seed)
{
    json_t *model = json_loads(model_json, 0, NULL);
    assert_non_null(model);
    struct train_zoo_spec spec;
    struct eng_error err = {0};
    if (train_zoo_parse(model, &spec, &err)) fail_msg("%s: %s", model_json, err.message);
    json_decref(model);
    struct nn_graph *g = train_zoo_build(&spec, seed, &err);
    if (!g) fail_msg("%s: %s", model_json, err.message);
    return g;
}

void tu_zoo_refused(const char *model_json, const char *needle)
{
    json_t *model = json_loads(model_json, 0, NULL);
    assert_non_null(model);
    struct train_zoo_spec spec;
    struct eng_error err = {0};
    assert_int_equal(train_zoo_parse(model, &spec, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    if (!strstr(err.message, needle)) fail_msg("'%s' lacks '%s'", err.message, needle);
    json_decref(model);
}

void tu_write_file(const char *dir, const char *name, const void *data, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("%s: cannot create", path);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

void tu_write_json(const char *dir, const char *name, json_t *doc)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(json_dump_file(doc, path, JSON_INDENT(1)), 0);
    json_decref(doc);
}
