/* Routing: a table of (method, pattern) -> handler. Patterns are literal segments and {name}
 * segments; a final "*" segment matches any rest of the path and is tried only after every
 * other route, and never turns a wrong method into 405. */
#ifndef AUGSERVE_ROUTER_H
#define AUGSERVE_ROUTER_H

#include <stddef.h>

struct request;
struct response;

typedef void (*handler_fn)(struct request *req, struct response *resp);

enum route_flags {
    ROUTE_PUBLIC = 1u << 0, /* needs no API key even when keys are configured */
    ROUTE_HEAVY = 1u << 1,  /* runs in the worker pool under admission control */
    /* The body goes to a file as it arrives (request.h: upload_path), up to max_dataset_bytes
     * instead of max_body_bytes; from a multipart body, its part "archive" alone. */
    ROUTE_UPLOAD = 1u << 2,
};

struct route {
    const char *method;
    const char *pattern;
    handler_fn handler;
    unsigned flags;
    unsigned scope; /* AUTH_SCOPE_* a key needs; 0: any valid key */
};

#define ROUTE_MAX_PARAMS 8

/* Path parameters point into the pattern and the path they were matched on. */
struct route_params {
    size_t count;
    struct {
        const char *name;
        size_t name_len;
        const char *value;
        size_t value_len;
    } items[ROUTE_MAX_PARAMS];
};

enum router_status {
    ROUTER_FOUND,
    ROUTER_NOT_FOUND,
    ROUTER_METHOD_NOT_ALLOWED, /* allow holds e.g. "GET, HEAD" */
};

/* The request target (path and query) as the client sent it, before anything decodes it. */
enum router_target {
    ROUTER_TARGET_OK,
    ROUTER_TARGET_TOO_LONG, /* over the cap: 414 */
    ROUTER_TARGET_NUL,      /* holds "%00", which decodes to a NUL and would cut the text short */
};

enum router_target router_check_target(const char *target, size_t max_bytes);

/* Splits a query string ("a=1&b=x+y%21", without the '?') into its parameters in order, decoding
 * '+' and %HH in place (a '%' without two hex digits stays as it is), and calls add for each. A
 * parameter without '=' has the value ""; empty ones ("a&&b") are skipped. Returns 0, or the first
 * nonzero value add returns, which stops it. */
int router_parse_query(char *query, int (*add)(void *arg, const char *name, const char *value),
                       void *arg);

/* Matches method and path (decoded, no query) against routes[0..n). HEAD matches GET routes.
 * On ROUTER_FOUND, *found is the route and params are filled. */
enum router_status router_match(const struct route *routes, size_t n, const char *method,
                                const char *path, const struct route **found,
                                struct route_params *params, char *allow, size_t allow_size);

#endif
