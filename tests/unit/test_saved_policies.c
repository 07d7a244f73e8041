/* Unit tests of saved policies: their records in the store (server/policy_store.c), the rules for
 * a name and the store and engine table kept in step (server/saved_policies.c), a saved name in
 * the parser and the policy cache (engine/policy/saved.c, parse.c, cache.c), and the snapshot a
 * job keeps. Each expectation is policy_store.h's, saved_policies.h's or policy/saved.h's
 * contract; documents are compared with ones written out by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/saved.h"
#include "policy_store.h"
#include "saved_policies.h"
#include "storage.h"
#include "store_fixture.h"

static json_t *parse_json(const char *text)
{
    json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!doc) fail_msg("bad test JSON: %s", text);
    return doc;
}

/* Fails unless a and b are equal JSON values. */
static void assert_json_equal(const json_t *a, const char *b_text)
{
    json_t *b = parse_json(b_text);
    if (!json_equal(a, b)) {
        char *a_text = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("%s != %s", a_text ? a_text : "(null)", b_text);
    }
    json_decref(b);
}

/* saved_policies_put of a document's text, which must succeed; *created returned. */
static int put(struct storage *st, const char *name, const char *policy, const char *owner,
               int replace)
{
    json_t *doc = parse_json(policy);
    struct policy_record r;
    struct eng_error err;
    int created = -1;
    if (saved_policies_put(st, name, doc, owner, replace, &r, &created, &err) != 0)
        fail_msg("put %s: %s", name, err.message);
    json_decref(doc);
    policy_record_clear(&r);
    return created;
}

/* saved_policies_put that must fail with code, its message holding needle. */
static void put_fails(struct storage *st, const char *name, const char *policy, enum eng_code code,
                      const char *needle)
{
    json_t *doc = parse_json(policy);
    struct policy_record r;
    struct eng_error err;
    if (saved_policies_put(st, name, doc, NULL, 0, &r, NULL, &err) == 0)
        fail_msg("put %s: saved, but should have failed", name);
    json_decref(doc);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle)) fail_msg("\"%s\" lacks \"%s\"", err.message, needle);
}

static int store_and_table_setup(void **state)
{
    policy_saved_clear();
    return store_setup(state);
}

static int collect_names(const struct policy_record *r, void *ctx, struct eng_error *err)
{
    (void)err;
    strcat(ctx, r->name);
    strcat(ctx, " ");
    return 0;
}

static void test_store_records(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(put(f->st, "zeta", "{\"op\": \"Invert\"}", "alice", 0), 1);
    assert_int_equal(put(f->st, "alpha", "{\"op\": \"Equalize\"}", NULL, 0), 1);
    char names[64] = "";
    struct eng_error err;
    assert_int_equal(policy_store_each(f->st, collect_names, names, &err), 0);
    assert_string_equal(names, "alpha zeta "); /* name order, not creation order */

    struct policy_record before, after;
    assert_int_equal(policy_store_get(f->st, "zeta", &before, &err), 0);
    assert_string_equal(before.owner, "alice");
    assert_json_equal(before.document, "{\"op\": \"Invert\"}");
    assert_true(before.created_ms > 0 && before.updated_ms == before.created_ms);

    /* Taken without replace; replaced with it, keeping who saved it first and when. */
    put_fails(f->st, "zeta", "{\"op\": \"Equalize\"}", ENG_CONFLICT, "saved already");
    assert_int_equal(put(f->st, "zeta", "{\"op\": \"Equalize\"}", "bob", 1), 0);
    assert_int_equal(policy_store_get(f->st, "zeta", &after, &err), 0);
    assert_string_equal(after.owner, "alice");
    assert_true(after.created_ms == before.created_ms && after.updated_ms >= before.updated_ms);
    assert_json_equal(after.document, "{\"op\": \"Equalize\"}");
    policy_record_clear(&before);
    policy_record_clear(&after);

    assert_int_equal(saved_policies_delete(f->st, "zeta", &err), 0);
    assert_int_equal(policy_store_get(f->st, "zeta", &after, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(saved_policies_delete(f->st, "zeta", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_null(policy_saved_get("zeta"));
    assert_int_equal(saved_policies_delete(f->st, "randaugment", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
}

static void test_names(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"", "a b", "-lead", ".hidden", "_x", "caf\xc3\xa9", "a/b", "a%2Fb", "x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        put_fails(f->st, bad[i], "\"randaugment\"", ENG_INVALID, "name: 1 to 64");
    char longest[66];
    memset(longest, 'n', 65);
    longest[65] = '\0';
    put_fails(f->st, longest, "\"randaugment\"", ENG_INVALID, "name: 1 to 64");
    longest[64] = '\0';
    assert_int_equal(put(f->st, longest, "\"randaugment\"", NULL, 0), 1);
    assert_int_equal(put(f->st, "My_policy-2.1", "\"randaugment\"", NULL, 0), 1);
    /* A preset's name, a name its prefix grammar reads, and the validate route's. */
    put_fails(f->st, "randaugment", "{\"op\": \"Invert\"}", ENG_CONFLICT, "preset");
    put_fails(f->st, "rand-m9-n2", "{\"op\": \"Invert\"}", ENG_CONFLICT, "preset");
    put_fails(f->st, "validate", "{\"op\": \"Invert\"}", ENG_CONFLICT, "reserved");
    /* The document must parse; the parser's message, with the bad node's pointer. */
    put_fails(f->st, "bad", "{\"seq\": [{\"op\": \"Rotate\", \"degrees\": 999}]}", ENG_INVALID,
              "/seq/0/degrees: must be in");
    put_fails(f->st, "bad", "\"nosuch\"", ENG_INVALID, "unknown preset \"nosuch\"");
}

/* The cache's parse of text: its compiled document must be expected (NULL: the parse fails). */
static void expect_cached(struct policy_cache *c, const char *text, const char *expected)
{
    struct eng_error err;
    struct policy *p = policy_cache_parse(c, text, &err);
    if (!expected) {
        if (p) fail_msg("%s parsed, but should not", text);
        assert_non_null(strstr(err.message, "unknown preset"));
        return;
    }
    if (!p) fail_msg("%s: %s", text, err.message);
    json_t *doc = policy_to_json(p);
    assert_json_equal(doc, expected);
    assert_true(policy_uses_saved(p));
    json_decref(doc);
    policy_free(p);
}

static void test_names_in_policies_and_the_cache(void **state)
{
    struct fixture *f = *state;
    struct policy_cache *c = policy_cache_new(8);
    put(f->st, "tilt", "{\"op\": \"Rotate\", \"degrees\": 10}", NULL, 0);
    const char *nested = "{\"seq\": [\"tilt\", {\"preset\": \"tilt\"}]}";
    const char *tilt10 = "{\"op\": \"Rotate\", \"degrees\": 10}";
    const char *tilt20 = "{\"op\": \"Rotate\", \"degrees\": 20}";
    expect_cached(c, "tilt", tilt10);
    expect_cached(c, nested,
                  "{\"seq\": [{\"op\": \"Rotate\", \"degrees\": 10}, {\"op\": "
                  "\"Rotate\", \"degrees\": 10}]}");
    /* Saved with another saved policy inside: stored expanded, so it outlives that one. */
    put(f->st, "both", nested, NULL, 0);

    /* Replaced: the cache must not answer the parse it holds for the same text. */
    put(f->st, "tilt", tilt20, NULL, 1);
    expect_cached(c, "tilt", tilt20);
    expect_cached(c, nested,
                  "{\"seq\": [{\"op\": \"Rotate\", \"degrees\": 20}, {\"op\": "
                  "\"Rotate\", \"degrees\": 20}]}");

    struct eng_error err;
    assert_int_equal(saved_policies_delete(f->st, "tilt", &err), 0);
    expect_cached(c, "tilt", NULL);
    expect_cached(c, "both",
                  "{\"seq\": [{\"op\": \"Rotate\", \"degrees\": 10}, {\"op\": "
                  "\"Rotate\", \"degrees\": 10}]}");

    /* A saved policy takes no parameters, as a preset reference may. */
    struct policy *p = policy_parse_text("{\"preset\": \"both\", \"n\": 2}", &err);
    assert_null(p);
    assert_non_null(strstr(err.message, "/: saved policy \"both\" takes no parameters"));
    /* A document without saved names says so. */
    p = policy_parse_text("randaugment", &err);
    assert_non_null(p);
    assert_false(policy_uses_saved(p));
    policy_free(p);
    policy_cache_free(c);
}

static void test_job_snapshot(void **state)
{
    struct fixture *f = *state;
    put(f->st, "tilt", "{\"op\": \"Rotate\", \"degrees\": 10}", NULL, 0);
    json_t *params =
        parse_json("{\"policy\": \"tilt\", \"policies\": [\"randaugment\", \"tilt\","
                   " {\"seq\": [\"tilt\"]}, {\"op\": \"Nope\"}], \"model\": \"tilt\"}");
    struct eng_error err;
    assert_int_equal(saved_policies_snapshot(params, &err), 0);
    /* Saved names resolved; presets, bad documents (the kind reports them) and other params not. */
    assert_json_equal(params, "{\"policy\": {\"op\": \"Rotate\", \"degrees\": 10}, \"policies\": "
                              "[\"randaugment\", {\"op\": \"Rotate\", \"degrees\": 10}, {\"seq\": "
                              "[{\"op\": \"Rotate\", \"degrees\": 10}]}, {\"op\": \"Nope\"}], "
                              "\"model\": \"tilt\"}");
    json_decref(params);
    /* Params that are no object, or hold no policy, stay as they are. */
    assert_int_equal(saved_policies_snapshot(NULL, &err), 0);
}

/* A search space's saved names where a node may be, options of a $search choice there included,
 * are resolved; an op's name that is also a saved policy's, placeholders and named spaces are
 * not. */
static void test_space_snapshot(void **state)
{
    struct fixture *f = *state;
    put(f->st, "tilt", "{\"op\": \"Rotate\", \"degrees\": 10}", NULL, 0);
    put(f->st, "Invert", "{\"op\": \"FlipLR\"}", NULL, 0);
    json_t *params = parse_json(
        "{\"space\": {\"seq\": [{\"$search\": {\"choice\": [\"tilt\", \"randaugment\", {\"p\": "
        "{\"$search\": {\"uniform\": [0, 1]}}, \"do\": \"tilt\"}]}}, {\"op\": {\"$search\": "
        "{\"choice\": [\"Invert\", \"Equalize\"]}}}, {\"p\": 0.5, \"do\": {\"preset\": \"tilt\"}}, "
        "{\"choice\": [{\"$search\": {\"choice\": [\"Invert\", {\"op\": \"Invert\"}]}}]}]}}");
    struct eng_error err;
    assert_int_equal(saved_policies_snapshot(params, &err), 0);
    assert_json_equal(
        params,
        "{\"space\": {\"seq\": [{\"$search\": {\"choice\": [{\"op\": \"Rotate\", \"degrees\": "
        "10}, \"randaugment\", {\"p\": {\"$search\": {\"uniform\": [0, 1]}}, \"do\": {\"op\": "
        "\"Rotate\", \"degrees\": 10}}]}}, {\"op\": {\"$search\": {\"choice\": [\"Invert\", "
        "\"Equalize\"]}}}, {\"p\": 0.5, \"do\": {\"op\": \"Rotate\", \"degrees\": 10}}, "
        "{\"choice\": [{\"$search\": {\"choice\": [{\"op\": \"FlipLR\"}, {\"op\": "
        "\"Invert\"}]}}]}]}}");
    json_decref(params);
    /* The whole space a name; a named space as it is. */
    params = parse_json("{\"space\": \"tilt\"}");
    assert_int_equal(saved_policies_snapshot(params, &err), 0);
    assert_json_equal(params, "{\"space\": {\"op\": \"Rotate\", \"degrees\": 10}}");
    json_decref(params);
    params =
        parse_json("{\"space\": {\"space\": \"ops-subset\", \"ops\": [\"Invert\", \"tilt\"]}}");
    assert_int_equal(saved_policies_snapshot(params, &err), 0);
    assert_json_equal(params, "{\"space\": {\"space\": \"ops-subset\", \"ops\": [\"Invert\", "
                              "\"tilt\"]}}");
    json_decref(params);
}

/* A new process loads the store's policies; a load again takes every change another process made
 * since, additions, replacements and deletions. */
static void test_load_at_start(void **state)
{
    struct fixture *f = *state;
    put(f->st, "tilt", "{\"op\": \"Rotate\", \"degrees\": 10}", NULL, 0);
    policy_saved_clear(); /* what a new process starts with */
    assert_null(policy_saved_get("tilt"));
    struct eng_error err;
    assert_int_equal(saved_policies_load(f->st, &err), 0);
    json_t *doc = policy_saved_get("tilt");
    assert_non_null(doc);
    assert_json_equal(doc, "{\"op\": \"Rotate\", \"degrees\": 10}");
    json_decref(doc);

    /* Another process of the store replaces tilt and saves flip, straight in the store: a load
     * (its notification heard) takes both, and the cache's generation moves. */
    const struct policy_record tilt = {
        .name = "tilt", .document = json_pack("{s:s, s:i}", "op", "Rotate", "degrees", 20)};
    const struct policy_record flip = {.name = "flip",
                                       .document = json_pack("{s:s}", "op", "Flip")};
    int created;
    assert_int_equal(policy_store_put(f->st, &tilt, 1, &created, &err), 0);
    assert_int_equal(policy_store_put(f->st, &flip, 0, &created, &err), 0);
    json_decref(tilt.document);
    json_decref(flip.document);
    unsigned long generation = policy_saved_generation();
    assert_int_equal(saved_policies_load(f->st, &err), 0);
    assert_true(policy_saved_generation() != generation);
    doc = policy_saved_get("tilt");
    assert_json_equal(doc, "{\"op\": \"Rotate\", \"degrees\": 20}");
    json_decref(doc);
    doc = policy_saved_get("flip");
    assert_json_equal(doc, "{\"op\": \"Flip\"}");
    json_decref(doc);
    /* It deletes tilt: the next load drops it and keeps flip. */
    assert_int_equal(policy_store_delete(f->st, "tilt", &err), 0);
    assert_int_equal(saved_policies_load(f->st, &err), 0);
    assert_null(policy_saved_get("tilt"));
    doc = policy_saved_get("flip");
    assert_non_null(doc);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_records, store_and_table_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_names, store_and_table_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_names_in_policies_and_the_cache, store_and_table_setup,
                                        store_teardown),
        cmocka_unit_test_setup_teardown(test_job_snapshot, store_and_table_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_space_snapshot, store_and_table_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_load_at_start, store_and_table_setup, store_teardown),
    };
    int failures = cmocka_run_group_tests_name(store_group("saved_policies"), tests, NULL, NULL);
    policy_saved_clear();
    return failures;
}
