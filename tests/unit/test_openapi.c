/* Checks config/openapi.json (argv[1]) against the routing table in server/app.c, both ways, so
 * the description and the server cannot drift apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "app.h"
#include "auth.h"
#include "router.h"

static const char *document_path;

/* The operation keys of an OpenAPI path item; the others (summary, parameters, ...) are not
 * operations. */
static const char *const operation_keys[] = {"get",     "put",  "post",  "delete",
                                             "options", "head", "patch", "trace"};
#define OPERATION_KEYS (sizeof operation_keys / sizeof operation_keys[0])

static int load(void **state)
{
    if (!document_path) {
        fprintf(stderr, "usage: test_openapi path/to/openapi.json\n");
        return -1;
    }
    json_error_t error;
    json_t *doc = json_load_file(document_path, JSON_REJECT_DUPLICATES, &error);
    if (!doc) {
        fprintf(stderr, "%s:%d: %s\n", document_path, error.line, error.text);
        return -1;
    }
    *state = doc;
    return 0;
}

static int unload(void **state)
{
    json_decref(*state);
    return 0;
}

/* The document's form of a route pattern: a final "*" segment is the parameter {path}. */
static void document_path_of(const char *pattern, char *out, size_t size)
{
    size_t len = strlen(pattern);
    if (len >= 2 && strcmp(pattern + len - 2, "/*") == 0)
        snprintf(out, size, "%.*s/{path}", (int)(len - 2), pattern);
    else
        snprintf(out, size, "%s", pattern);
}

static void lower(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
    out[i] = '\0';
}

static json_t *operation_of(json_t *doc, const struct route *r)
{
    char path[256], method[16];
    document_path_of(r->pattern, path, sizeof path);
    lower(r->method, method, sizeof method);
    json_t *item = json_object_get(json_object_get(doc, "paths"), path);
    if (!json_is_object(item)) fail_msg("route %s %s: no path \"%s\"", r->method, r->pattern, path);
    json_t *op = json_object_get(item, method);
    if (!json_is_object(op))
        fail_msg("route %s %s: \"%s\" has no \"%s\"", r->method, r->pattern, path, method);
    return op;
}

static void test_version(void **state)
{
    json_t *doc = *state;
    const char *version = json_string_value(json_object_get(doc, "openapi"));
    assert_non_null(version);
    assert_int_equal(strncmp(version, "3.1", 3), 0);
    assert_true(version[3] == '\0' || version[3] == '.');
    assert_true(json_is_object(json_object_get(doc, "info")));
    assert_true(json_is_object(json_object_get(doc, "paths")));
}

static void test_routes_documented(void **state)
{
    json_t *doc = *state;
    size_t n;
    const struct route *routes = app_all_routes(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++)
        operation_of(doc, &routes[i]);
}

static void test_documented_routes_exist(void **state)
{
    json_t *doc = *state;
    size_t n;
    const struct route *routes = app_all_routes(&n);
    const char *path;
    json_t *item;
    size_t operations = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        assert_true(json_is_object(item));
        for (size_t k = 0; k < OPERATION_KEYS; k++) {
            if (!json_object_get(item, operation_keys[k])) continue;
            operations++;
            int routed = 0;
            for (size_t i = 0; i < n && !routed; i++) {
                char route_path[256];
                document_path_of(routes[i].pattern, route_path, sizeof route_path);
                routed = strcmp(route_path, path) == 0 &&
                         strcasecmp(routes[i].method, operation_keys[k]) == 0;
            }
            if (!routed) fail_msg("%s %s is documented but not routed", operation_keys[k], path);
        }
    }
    /* Both directions hold and neither side has duplicates: the counts agree. */
    assert_int_equal(operations, n);
}

static void test_path_parameters(void **state)
{
    json_t *doc = *state;
    size_t n;
    const struct route *routes = app_all_routes(&n);
    for (size_t i = 0; i < n; i++) {
        char path[256];
        document_path_of(routes[i].pattern, path, sizeof path);
        json_t *op = operation_of(doc, &routes[i]);
        json_t *item = json_object_get(json_object_get(doc, "paths"), path);
        /* Every {name} in the path is declared as a required path parameter. */
        for (const char *open = strchr(path, '{'); open; open = strchr(open + 1, '{')) {
            const char *close = strchr(open, '}');
            assert_non_null(close);
            size_t len = (size_t)(close - open - 1);
            int declared = 0;
            json_t *lists[] = {json_object_get(op, "parameters"),
                               json_object_get(item, "parameters")};
            for (size_t l = 0; l < 2; l++) {
                size_t idx;
                json_t *p;
                json_array_foreach(lists[l], idx, p)
                {
                    const char *name = json_string_value(json_object_get(p, "name"));
                    const char *in = json_string_value(json_object_get(p, "in"));
                    if (name && in && strcmp(in, "path") == 0 && strlen(name) == len &&
                        strncmp(name, open + 1, len) == 0) {
                        assert_true(json_is_true(json_object_get(p, "required")));
                        declared = 1;
                    }
                }
            }
            if (!declared)
                fail_msg("%s: path parameter {%.*s} not declared", path, (int)len, open + 1);
        }
    }
}

static void test_versioned_routes_need_keys(void **state)
{
    size_t n;
    const struct route *routes = app_all_routes(&n);
    size_t versioned = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = routes[i].pattern;
        if (strncmp(p, "/v1", 3) != 0 && strncmp(p, "/v2", 3) != 0) continue;
        if (p[3] != '\0' && p[3] != '/') continue; /* "/v10x" is not under /v1 */
        versioned++;
        if (routes[i].flags & ROUTE_PUBLIC)
            fail_msg("%s %s is public", routes[i].method, routes[i].pattern);
    }
    assert_true(versioned > 0);
}

/* The document says the same about keys as the table: public routes have "security": [], the
 * others the apiKey scheme with the scope they need. */
static void test_security_matches_flags(void **state)
{
    json_t *doc = *state;
    size_t n;
    const struct route *routes = app_all_routes(&n);
    for (size_t i = 0; i < n; i++) {
        const struct route *r = &routes[i];
        json_t *security = json_object_get(operation_of(doc, r), "security");
        if (!json_is_array(security))
            fail_msg("%s %s: no \"security\" array", r->method, r->pattern);
        if (r->flags & ROUTE_PUBLIC) {
            if (json_array_size(security) != 0)
                fail_msg("%s %s is public but documented with a key", r->method, r->pattern);
            continue;
        }
        /* A route that any of several scopes opens lists one requirement per scope (OpenAPI's
         * alternatives): the scopes are gathered from every apiKey requirement. */
        unsigned documented = 0;
        int keyed = 0;
        size_t idx, k;
        json_t *requirement, *s;
        json_array_foreach(security, idx, requirement)
        {
            json_t *scopes = json_object_get(requirement, "apiKey");
            keyed |= json_is_array(scopes);
            json_array_foreach(scopes, k, s)
            {
                unsigned bit =
                    auth_scope_from_name(json_string_value(s) ? json_string_value(s) : "");
                if (!bit) fail_msg("%s %s: unknown scope documented", r->method, r->pattern);
                documented |= bit;
            }
        }
        if (!keyed) fail_msg("%s %s needs a key but documents no apiKey", r->method, r->pattern);
        if (documented != r->scope)
            fail_msg("%s %s: the scopes documented (bits %#x) are not the route's (%#x)", r->method,
                     r->pattern, documented, r->scope);
    }
    json_t *scheme = json_object_get(
        json_object_get(json_object_get(doc, "components"), "securitySchemes"), "apiKey");
    assert_true(json_is_object(scheme));
}

/* Resolves a local JSON pointer ("#/a/b~1c") in doc (RFC 6901). */
static json_t *resolve(json_t *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2) != 0) return NULL;
    json_t *node = doc;
    const char *p = ref + 2;
    for (;;) {
        size_t len = strcspn(p, "/");
        char token[256];
        size_t t = 0;
        for (size_t i = 0; i < len && t + 1 < sizeof token; i++) {
            if (p[i] == '~' && i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
                token[t++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                token[t++] = p[i];
            }
        }
        token[t] = '\0';
        if (json_is_object(node))
            node = json_object_get(node, token);
        else
            return NULL;
        if (!node) return NULL;
        if (p[len] == '\0') return node;
        p += len + 1;
    }
}

static void check_refs(json_t *doc, json_t *node, size_t *count)
{
    const char *key;
    json_t *value;
    size_t idx;
    if (json_is_object(node)) {
        json_object_foreach(node, key, value)
        {
            if (strcmp(key, "$ref") == 0) {
                const char *ref = json_string_value(value);
                if (!ref) fail_msg("a $ref that is not a string");
                if (strncmp(ref, "#/components/", 13) != 0)
                    fail_msg("$ref \"%s\" is not under #/components/", ref);
                if (!resolve(doc, ref)) fail_msg("$ref \"%s\" does not resolve", ref);
                (*count)++;
            } else {
                check_refs(doc, value, count);
            }
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, idx, value)
        {
            check_refs(doc, value, count);
        }
    }
}

static void test_refs_resolve(void **state)
{
    json_t *doc = *state;
    size_t count = 0;
    check_refs(doc, doc, &count);
    assert_true(count > 0);
    /* The resolver itself: a hit, a miss, an escaped name. */
    assert_non_null(resolve(doc, "#/components/schemas"));
    assert_null(resolve(doc, "#/components/no-such-thing"));
    assert_null(resolve(doc, "components/schemas"));
    json_t *paths = json_object_get(doc, "paths");
    assert_ptr_equal(resolve(doc, "#/paths/~1healthz"), json_object_get(paths, "/healthz"));
}

int main(int argc, char **argv)
{
    if (argc > 1) document_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_routes_documented),
        cmocka_unit_test(test_documented_routes_exist),
        cmocka_unit_test(test_path_parameters),
        cmocka_unit_test(test_versioned_routes_need_keys),
        cmocka_unit_test(test_security_matches_flags),
        cmocka_unit_test(test_refs_resolve),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
