#include "router.h"

#include <stdio.h>
#include <string.h>

enum router_target router_check_target(const char *target, size_t max_bytes)
{
    if (strlen(target) > max_bytes) return ROUTER_TARGET_TOO_LONG;
    /* A '%' is no hex digit, so no earlier escape can swallow this one: each "%00" is a NUL. */
    if (strstr(target, "%00")) return ROUTER_TARGET_NUL;
    return ROUTER_TARGET_OK;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s in place, as libmicrohttpd decodes query parameters: '+' is a space, %HH a byte. */
static void decode_component(char *s)
{
    char *out = s;
    for (const char *in = s; *in; out++) {
        int hi = in[0] == '%' ? hex_digit(in[1]) : -1;
        int lo = hi >= 0 ? hex_digit(in[2]) : -1;
        if (lo >= 0) {
            *out = (char)(hi << 4 | lo);
            in += 3;
        } else {
            *out = *in == '+' ? ' ' : *in;
            in++;
        }
    }
    *out = '\0';
}

int router_parse_query(char *query, int (*add)(void *arg, const char *name, const char *value),
                       void *arg)
{
    for (char *item = query; item;) {
        char *next = strchr(item, '&');
        if (next) *next++ = '\0';
        if (*item) {
            char *equals = strchr(item, '=');
            if (equals) {
                *equals = '\0';
                decode_component(equals + 1);
            }
            decode_component(item);
            int rc = add(arg, item, equals ? equals + 1 : "");
            if (rc != 0) return rc;
        }
        item = next;
    }
    return 0;
}

/* Length of the segment starting at s (up to '/' or the end). */
static size_t segment_len(const char *s)
{
    return strcspn(s, "/");
}

/* Whether path matches pattern; fills params. Both start with '/'. */
static int pattern_matches(const char *pattern, const char *path, struct route_params *params)
{
    params->count = 0;
    if (pattern[0] != '/' || path[0] != '/') return 0;
    const char *p = pattern + 1, *s = path + 1;
    for (;;) {
        size_t plen = segment_len(p), slen = segment_len(s);
        if (plen == 1 && p[0] == '*' && p[1] == '\0') return 1;
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || params->count == ROUTE_MAX_PARAMS) return 0;
            params->items[params->count].name = p + 1;
            params->items[params->count].name_len = plen - 2;
            params->items[params->count].value = s;
            params->items[params->count].value_len = slen;
            params->count++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
        if (*p == '\0' || *s == '\0') return *p == '\0' && *s == '\0';
        p++; /* both are at '/' */
        s++;
    }
}

static int is_wildcard(const struct route *r)
{
    size_t len = strlen(r->pattern);
    return len >= 2 && strcmp(r->pattern + len - 2, "/*") == 0;
}

static int method_matches(const struct route *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

static void allow_add(char *allow, size_t allow_size, const char *method)
{
    if (allow_size == 0) return; /* the caller wants no list: allow is not even terminated */
    size_t len = strlen(allow), mlen = strlen(method);
    /* Already listed? Methods are whole words separated by ", ". */
    for (const char *hit = strstr(allow, method); hit; hit = strstr(hit + 1, method)) {
        int starts = hit == allow || hit[-1] == ' ';
        int ends = hit[mlen] == '\0' || hit[mlen] == ',';
        if (starts && ends) return;
    }
    snprintf(allow + len, allow_size - len, "%s%s", len ? ", " : "", method);
}

enum router_status router_match(const struct route *routes, size_t n, const char *method,
                                const char *path, const struct route **found,
                                struct route_params *params, char *allow, size_t allow_size)
{
    struct route_params scratch;
    if (allow_size) allow[0] = '\0';
    int path_known = 0;
    for (int wildcard_pass = 0; wildcard_pass < 2; wildcard_pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct route *r = &routes[i];
            if (is_wildcard(r) != wildcard_pass) continue;
            if (!pattern_matches(r->pattern, path, &scratch)) continue;
            if (method_matches(r, method)) {
                *found = r;
                *params = scratch;
                return ROUTER_FOUND;
            }
            if (wildcard_pass) continue;
            path_known = 1;
            allow_add(allow, allow_size, r->method);
            if (strcmp(r->method, "GET") == 0) allow_add(allow, allow_size, "HEAD");
        }
        if (path_known) return ROUTER_METHOD_NOT_ALLOWED;
    }
    return ROUTER_NOT_FOUND;
}
