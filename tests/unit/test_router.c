/* Unit tests of server/router.c: router_match against small hand-written tables, and the request
 * target's checks and query parsing against hand-written targets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "router.h"

#define ALLOW_SIZE 128
#define COUNT(a)   (sizeof(a) / sizeof((a)[0]))

static void h_a(struct request *req, struct response *resp) {}

static void h_b(struct request *req, struct response *resp) {}

/* No wildcard here, so unknown paths give 404. */
static const struct route table[] = {
    {"GET", "/", h_a, 0, 0},
    {"GET", "/healthz", h_a, 0, 0},
    {"GET", "/v1/models/{name}", h_a, 0, 0},
    {"DELETE", "/v1/models/{name}", h_b, 0, 0},
    {"GET", "/v1/models/{name}/versions/{version}", h_a, 0, 0},
    {"GET", "/v1/models/{name}/files", h_b, 0, 0},
    {"GET", "/items", h_a, 0, 0},
    {"POST", "/items", h_b, 0, 0},
    {"GET", "/items/{id}", h_a, 0, 0},
    {"PUT", "/items/{id}", h_b, 0, 0},
    {"GET", "/items/special", h_a, 0, 0},
    {"PUT", "/items/special", h_b, 0, 0},
    {"POST", "/upload", h_b, 0, 0},
    {"GET", "/a/{x}/b", h_a, 0, 0},
};

/* The wildcard comes first on purpose: it must still be tried after every other route. */
static const struct route wild_table[] = {
    {"GET", "/*", h_b, 0, 0},
    {"GET", "/healthz", h_a, 0, 0},
    {"POST", "/v1/echo", h_a, 0, 0},
    {"GET", "/static/*", h_a, 0, 0},
};

static enum router_status match(const struct route *routes, size_t n, const char *method,
                                const char *path, const struct route **found,
                                struct route_params *params, char *allow)
{
    *found = NULL;
    memset(params, 0xab, sizeof *params); /* garbage, so stale values cannot pass */
    memset(allow, 'x', ALLOW_SIZE - 1);
    allow[ALLOW_SIZE - 1] = '\0';
    return router_match(routes, n, method, path, found, params, allow, ALLOW_SIZE);
}

static void assert_param(const struct route_params *params, size_t i, const char *name,
                         const char *value)
{
    assert_true(i < params->count);
    assert_int_equal(params->items[i].name_len, strlen(name));
    assert_memory_equal(params->items[i].name, name, strlen(name));
    assert_int_equal(params->items[i].value_len, strlen(value));
    assert_memory_equal(params->items[i].value, value, strlen(value));
}

static void test_literal(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    assert_int_equal(match(table, COUNT(table), "GET", "/healthz", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[1]);
    assert_int_equal(params.count, 0);

    assert_int_equal(match(table, COUNT(table), "GET", "/", &found, &params, allow), ROUTER_FOUND);
    assert_ptr_equal(found, &table[0]);
    assert_int_equal(params.count, 0);

    assert_int_equal(match(table, COUNT(table), "GET", "/items", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[6]);
    assert_int_equal(match(table, COUNT(table), "POST", "/items", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[7]);
}

static void test_literal_is_exact(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    const char *misses[] = {"/health", "/healthzz", "/HEALTHZ", "/healthz/x",
                            "healthz", "",          "/itemsx",  "/v1"};
    for (size_t i = 0; i < COUNT(misses); i++) {
        assert_int_equal(match(table, COUNT(table), "GET", misses[i], &found, &params, allow),
                         ROUTER_NOT_FOUND);
        assert_null(found);
        assert_string_equal(allow, "");
    }
}

static void test_param(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    const char *path = "/v1/models/resnet-50";
    assert_int_equal(match(table, COUNT(table), "GET", path, &found, &params, allow), ROUTER_FOUND);
    assert_ptr_equal(found, &table[2]);
    assert_int_equal(params.count, 1);
    assert_param(&params, 0, "name", "resnet-50");
    /* Values point into the path, names into the pattern. */
    assert_ptr_equal(params.items[0].value, path + strlen("/v1/models/"));
    assert_ptr_equal(params.items[0].name, table[2].pattern + strlen("/v1/models/{"));

    /* A single-character value. */
    assert_int_equal(match(table, COUNT(table), "DELETE", "/v1/models/x", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[3]);
    assert_int_equal(params.count, 1);
    assert_param(&params, 0, "name", "x");
}

static void test_several_params(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    assert_int_equal(match(table, COUNT(table), "GET", "/v1/models/bert/versions/2024.1", &found,
                           &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[4]);
    assert_int_equal(params.count, 2);
    assert_param(&params, 0, "name", "bert");
    assert_param(&params, 1, "version", "2024.1");

    /* An earlier route matched part of the way: its params must not leak into this match. */
    assert_int_equal(
        match(table, COUNT(table), "GET", "/v1/models/bert/files", &found, &params, allow),
        ROUTER_FOUND);
    assert_ptr_equal(found, &table[5]);
    assert_int_equal(params.count, 1);
    assert_param(&params, 0, "name", "bert");

    /* A param between literals. */
    assert_int_equal(match(table, COUNT(table), "GET", "/a/middle/b", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[13]);
    assert_int_equal(params.count, 1);
    assert_param(&params, 0, "x", "middle");
    assert_int_equal(match(table, COUNT(table), "GET", "/a/middle/c", &found, &params, allow),
                     ROUTER_NOT_FOUND);
}

static void test_literal_and_param_same_shape(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    /* Both "/items/{id}" and "/items/special" match; the table order decides. */
    assert_int_equal(match(table, COUNT(table), "GET", "/items/special", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[8]);
    assert_param(&params, 0, "id", "special");
    assert_int_equal(match(table, COUNT(table), "GET", "/items/42", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[8]);
    assert_param(&params, 0, "id", "42");
}

static void test_head_matches_get(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    assert_int_equal(match(table, COUNT(table), "HEAD", "/healthz", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[1]);
    assert_int_equal(match(table, COUNT(table), "HEAD", "/v1/models/abc", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[2]);
    assert_int_equal(params.count, 1);
    assert_param(&params, 0, "name", "abc");
    /* HEAD does not match routes of other methods. */
    assert_int_equal(match(table, COUNT(table), "HEAD", "/upload", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_null(found);
    assert_string_equal(allow, "POST");
}

static void test_method_is_case_sensitive(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    /* RFC 9110: method names are case-sensitive. */
    assert_int_equal(match(table, COUNT(table), "get", "/healthz", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD");
}

static void test_method_not_allowed(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    assert_int_equal(match(table, COUNT(table), "POST", "/healthz", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_null(found);
    assert_string_equal(allow, "GET, HEAD");

    assert_int_equal(match(table, COUNT(table), "DELETE", "/items", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD, POST");

    assert_int_equal(match(table, COUNT(table), "POST", "/v1/models/m", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD, DELETE");

    assert_int_equal(match(table, COUNT(table), "GET", "/upload", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "POST");
}

static void test_allow_deduplicated(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    /* "/items/special" matches both "/items/{id}" and the literal, each with GET and PUT. */
    assert_int_equal(match(table, COUNT(table), "PATCH", "/items/special", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD, PUT");

    static const struct route dup[] = {
        {"POST", "/x", h_a, 0, 0},     {"GET", "/x", h_a, 0, 0},     {"HEAD", "/x", h_a, 0, 0},
        {"POST", "/{any}", h_b, 0, 0}, {"GET", "/{any}", h_b, 0, 0},
    };
    assert_int_equal(match(dup, COUNT(dup), "DELETE", "/x", &found, &params, allow),
                     ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "POST, GET, HEAD");
}

static void test_allow_buffer_bounded(void **state)
{
    const struct route *found;
    struct route_params params;
    /* Only 8 bytes are offered; what follows must stay untouched. */
    char buffer[32];
    memset(buffer, '#', sizeof buffer);
    assert_int_equal(
        router_match(table, COUNT(table), "DELETE", "/items", &found, &params, buffer, 8),
        ROUTER_METHOD_NOT_ALLOWED);
    assert_true(memchr(buffer, '\0', 8) != NULL);
    assert_int_equal(strncmp(buffer, "GET, HEAD, POST", strlen(buffer)), 0);
    for (size_t i = 8; i < sizeof buffer; i++)
        assert_int_equal(buffer[i], '#');
}

static void test_allow_size_zero(void **state)
{
    const struct route *found;
    struct route_params params;
    /* No room for the list: the status still says 405 and the buffer is not touched. */
    char buffer[8];
    memset(buffer, '#', sizeof buffer);
    assert_int_equal(
        router_match(table, COUNT(table), "DELETE", "/items", &found, &params, buffer, 0),
        ROUTER_METHOD_NOT_ALLOWED);
    for (size_t i = 0; i < sizeof buffer; i++)
        assert_int_equal(buffer[i], '#');
    assert_int_equal(router_match(table, COUNT(table), "GET", "/items", &found, &params, NULL, 0),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &table[6]);
}

static void test_not_found(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    assert_int_equal(match(table, COUNT(table), "GET", "/nope", &found, &params, allow),
                     ROUTER_NOT_FOUND);
    assert_null(found);
    assert_string_equal(allow, "");
    assert_int_equal(match(table, COUNT(table), "POST", "/nope", &found, &params, allow),
                     ROUTER_NOT_FOUND);
    assert_int_equal(
        match(table, COUNT(table), "GET", "/v1/models/a/versions", &found, &params, allow),
        ROUTER_NOT_FOUND);
    assert_int_equal(
        match(table, COUNT(table), "GET", "/v1/models/a/versions/1/x", &found, &params, allow),
        ROUTER_NOT_FOUND);
    /* An empty table knows nothing. */
    assert_int_equal(match(table, 0, "GET", "/healthz", &found, &params, allow), ROUTER_NOT_FOUND);
}

static void test_trailing_and_double_slash(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    const char *misses[] = {
        "/healthz/",     "//healthz",     "/items//", "/items//42", "/v1/models/a/",
        "/v1//models/a", "/v1/models//a", "/a//b",    "//",         "/items/42/",
    };
    for (size_t i = 0; i < COUNT(misses); i++) {
        enum router_status status =
            match(table, COUNT(table), "GET", misses[i], &found, &params, allow);
        if (status != ROUTER_NOT_FOUND) fail_msg("\"%s\" matched (status %d)", misses[i], status);
        assert_null(found);
    }
}

static void test_empty_segment_not_param(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    /* "/v1/models/" has an empty last segment: {name} needs at least one byte. */
    assert_int_equal(match(table, COUNT(table), "GET", "/v1/models/", &found, &params, allow),
                     ROUTER_NOT_FOUND);
    assert_int_equal(
        match(table, COUNT(table), "GET", "/v1/models//versions/1", &found, &params, allow),
        ROUTER_NOT_FOUND);
    static const struct route root_param[] = {{"GET", "/{name}", h_a, 0, 0}};
    assert_int_equal(match(root_param, 1, "GET", "/", &found, &params, allow), ROUTER_NOT_FOUND);
    assert_int_equal(match(root_param, 1, "GET", "/z", &found, &params, allow), ROUTER_FOUND);
    assert_param(&params, 0, "name", "z");
}

static void test_wildcard_after_others(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    /* The literal wins although the wildcard is listed first. */
    assert_int_equal(
        match(wild_table, COUNT(wild_table), "GET", "/healthz", &found, &params, allow),
        ROUTER_FOUND);
    assert_ptr_equal(found, &wild_table[1]);
    assert_int_equal(
        match(wild_table, COUNT(wild_table), "HEAD", "/healthz", &found, &params, allow),
        ROUTER_FOUND);
    assert_ptr_equal(found, &wild_table[1]);

    const char *rest[] = {"/", "/index.html", "/a/b/c", "/healthz/", "/x//y", "/v1/echo/more"};
    for (size_t i = 0; i < COUNT(rest); i++) {
        assert_int_equal(
            match(wild_table, COUNT(wild_table), "GET", rest[i], &found, &params, allow),
            ROUTER_FOUND);
        assert_ptr_equal(found, &wild_table[0]);
        assert_int_equal(params.count, 0);
    }
    /* A narrower wildcard is still a wildcard; among wildcards the table order holds. */
    assert_int_equal(
        match(wild_table, COUNT(wild_table), "GET", "/static/app.js", &found, &params, allow),
        ROUTER_FOUND);
    assert_ptr_equal(found, &wild_table[0]);
    static const struct route narrow[] = {
        {"GET", "/static/*", h_a, 0, 0},
        {"GET", "/*", h_b, 0, 0},
    };
    assert_int_equal(match(narrow, 2, "GET", "/static/css/app.css", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &narrow[0]);
    assert_int_equal(match(narrow, 2, "GET", "/staticx/app.css", &found, &params, allow),
                     ROUTER_FOUND);
    assert_ptr_equal(found, &narrow[1]);
}

static void test_wildcard_never_405(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    /* Only the GET wildcard matches these paths: a POST is simply not found. */
    assert_int_equal(
        match(wild_table, COUNT(wild_table), "POST", "/index.html", &found, &params, allow),
        ROUTER_NOT_FOUND);
    assert_null(found);
    assert_string_equal(allow, "");
    assert_int_equal(match(wild_table, COUNT(wild_table), "DELETE", "/", &found, &params, allow),
                     ROUTER_NOT_FOUND);
    assert_string_equal(allow, "");
    /* A literal route that matches the path still answers 405 for the wrong method. */
    assert_int_equal(
        match(wild_table, COUNT(wild_table), "POST", "/healthz", &found, &params, allow),
        ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(
        match(wild_table, COUNT(wild_table), "GET", "/v1/echo", &found, &params, allow),
        ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "POST");
}

/* "/{p0}/{p1}/.../{p(n-1)}" and "/v0/v1/.../v(n-1)". */
static void build_params(size_t n, char *pattern, char *path, size_t size)
{
    size_t pl = 0, sl = 0;
    pattern[0] = path[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        pl += (size_t)snprintf(pattern + pl, size - pl, "/{p%zu}", i);
        sl += (size_t)snprintf(path + sl, size - sl, "/v%zu", i);
    }
}

static void test_max_params(void **state)
{
    const struct route *found;
    struct route_params params;
    char allow[ALLOW_SIZE];
    char pattern[256], path[256];

    build_params(ROUTE_MAX_PARAMS, pattern, path, sizeof pattern);
    struct route at_max[] = {{"GET", pattern, h_a, 0, 0}};
    assert_int_equal(match(at_max, 1, "GET", path, &found, &params, allow), ROUTER_FOUND);
    assert_int_equal(params.count, ROUTE_MAX_PARAMS);
    for (size_t i = 0; i < ROUTE_MAX_PARAMS; i++) {
        char name[16], value[16];
        snprintf(name, sizeof name, "p%zu", i);
        snprintf(value, sizeof value, "v%zu", i);
        assert_param(&params, i, name, value);
    }

    char pattern_over[256], path_over[256];
    build_params(ROUTE_MAX_PARAMS + 1, pattern_over, path_over, sizeof pattern_over);
    struct route over[] = {{"GET", pattern_over, h_a, 0, 0}};
    assert_int_equal(match(over, 1, "GET", path_over, &found, &params, allow), ROUTER_NOT_FOUND);
    assert_null(found);
    /* Refused as a non-match: not a 405 either. */
    assert_int_equal(match(over, 1, "POST", path_over, &found, &params, allow), ROUTER_NOT_FOUND);
    assert_string_equal(allow, "");
}

/* ---- The request target ---------------------------------------------------------------------- */

static void test_target_length(void **state)
{
    (void)state;
    char target[301];
    memset(target, 'a', 300);
    target[0] = '/';
    target[300] = '\0';
    /* The cap counts the bytes as sent, escapes undecoded. */
    assert_int_equal(router_check_target(target, 300), ROUTER_TARGET_OK);
    assert_int_equal(router_check_target(target, 299), ROUTER_TARGET_TOO_LONG);
    /* The input: 2,000 query parameters, 16 KB. */
    static char many[20000];
    size_t used = (size_t)snprintf(many, sizeof many, "/v1/ops?");
    for (int i = 0; i < 2000; i++)
        used += (size_t)snprintf(many + used, sizeof many - used, "%sp%04d=v", i ? "&" : "", i);
    assert_true(used >= 16000);
    assert_int_equal(router_check_target(many, 8192), ROUTER_TARGET_TOO_LONG);
    assert_int_equal(router_check_target(many, used), ROUTER_TARGET_OK);
}

static void test_target_nul(void **state)
{
    (void)state;
    /* The inputs, and %00 in a query parameter, which would be cut short just as well. */
    const char *nul[] = {"/index.html%00.js",
                         "/v1/ops%00x",
                         "/v1/models/tiny%00x",
                         "/v1/ops?domain=image%00x",
                         "/%00",
                         "/a%%00",
                         "/a%2%00"};
    for (size_t i = 0; i < COUNT(nul); i++)
        if (router_check_target(nul[i], 8192) != ROUTER_TARGET_NUL)
            fail_msg("%s: not refused", nul[i]);
    /* No NUL: "%2500" decodes to the text "%00", "%0" and "%0g" are no escapes, "%01" is 1. */
    const char *fine[] = {"/a%2500", "/a%0", "/a%0g", "/a%01", "/a?b=%20%0a"};
    for (size_t i = 0; i < COUNT(fine); i++)
        if (router_check_target(fine[i], 8192) != ROUTER_TARGET_OK)
            fail_msg("%s: refused", fine[i]);
}

struct collected {
    char names[8][32], values[8][32];
    size_t count;
    size_t stop_at; /* 1-based: add returns 7 for this parameter; 0: never */
};

static int collect(void *arg, const char *name, const char *value)
{
    struct collected *c = arg;
    assert_true(c->count < 8);
    snprintf(c->names[c->count], sizeof c->names[0], "%s", name);
    snprintf(c->values[c->count], sizeof c->values[0], "%s", value);
    c->count++;
    return c->count == c->stop_at ? 7 : 0;
}

static void parse_query(const char *query, struct collected *c)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", query);
    size_t stop_at = c->stop_at;
    memset(c, 0, sizeof *c);
    c->stop_at = stop_at;
    router_parse_query(copy, collect, c);
}

/* Parses query and checks its parameters against want: (name, value) pairs, in order. */
static void expect_query(const char *query, const char *const (*want)[2], size_t n)
{
    struct collected c = {0};
    parse_query(query, &c);
    if (c.count != n) fail_msg("%s: %zu parameters, expected %zu", query, c.count, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c.names[i], want[i][0]);
        assert_string_equal(c.values[i], want[i][1]);
    }
}

static void test_query(void **state)
{
    (void)state;
    /* '+' is a space and %HH a byte, in names and values; '=' splits at the first one. */
    static const char *const decoded[][2] = {{"a", "1"}, {"b", "x y!"}, {"c=", "d=e"}, {"Ab", "~"}};
    expect_query("a=1&b=x+y%21&c%3D=d=e&%41%62=%7e", decoded, COUNT(decoded));
    /* No '=': an empty value. Empty parameters are skipped; repeats are kept, in order. */
    static const char *const repeated[][2] = {{"flag", ""}, {"x", ""}, {"x", "2"}};
    expect_query("flag&&x=&x=2&", repeated, COUNT(repeated));
    /* A '%' without two hex digits stays as it is; "%2B" is a '+', not a space. */
    static const char *const kept[][2] = {{"p", "100%"}, {"q", "%zz%4"}, {"r", "+"}};
    expect_query("p=100%&q=%zz%4&r=%2B", kept, COUNT(kept));
    expect_query("", NULL, 0);
}

static void test_query_stops(void **state)
{
    (void)state;
    struct collected c = {.stop_at = 2};
    char query[] = "a=1&b=2&c=3";
    assert_int_equal(router_parse_query(query, collect, &c), 7);
    assert_int_equal(c.count, 2);
    assert_string_equal(c.names[1], "b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_literal_is_exact),
        cmocka_unit_test(test_param),
        cmocka_unit_test(test_several_params),
        cmocka_unit_test(test_literal_and_param_same_shape),
        cmocka_unit_test(test_head_matches_get),
        cmocka_unit_test(test_method_is_case_sensitive),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_allow_deduplicated),
        cmocka_unit_test(test_allow_buffer_bounded),
        cmocka_unit_test(test_allow_size_zero),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_trailing_and_double_slash),
        cmocka_unit_test(test_empty_segment_not_param),
        cmocka_unit_test(test_wildcard_after_others),
        cmocka_unit_test(test_wildcard_never_405),
        cmocka_unit_test(test_max_params),
        cmocka_unit_test(test_target_length),
        cmocka_unit_test(test_target_nul),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_query_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
