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

/* Matches method and path (decoded, no query) against routes[0..n). HEAD matches GET routes.
 * On ROUTER_FOUND, *found is the route and params are filled. */
enum router_status router_match(const struct route *routes, size_t n, const char *method,
                                const char *path, const struct route **found,
                                struct route_params *params, char *allow, size_t allow_size);

#endif
