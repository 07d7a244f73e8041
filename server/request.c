#include "request.h"

#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void request_new_id(char out[REQUEST_ID_MAX + 1])
{
    unsigned char random[12];
    if (RAND_bytes(random, sizeof random) != 1) {
        /* Uniqueness matters more than unpredictability here. */
        static atomic_ulong fallback;
        snprintf(out, REQUEST_ID_MAX + 1, "r%lx-%lu", (unsigned long)time(NULL),
                 atomic_fetch_add(&fallback, 1));
        return;
    }
    for (size_t i = 0; i < sizeof random; i++)
        snprintf(out + 2 * i, 3, "%02x", random[i]);
}

static const char *kv_find(const struct request_kv *kv, size_t n, const char *name, int ignore_case)
{
    for (size_t i = 0; i < n; i++) {
        int same = ignore_case ? strcasecmp(kv[i].name, name) == 0 : strcmp(kv[i].name, name) == 0;
        if (same) return kv[i].value;
    }
    return NULL;
}

const char *request_query(const struct request *req, const char *name)
{
    return kv_find(req->query, req->query_count, name, 0);
}

const char *request_header(const struct request *req, const char *name)
{
    return kv_find(req->headers, req->header_count, name, 1);
}

const char *request_param(const struct request *req, const char *name)
{
    /* Parameter values point into the path; the HTTP layer stores each one NUL-terminated in
     * param_values so handlers get plain strings. */
    size_t len = strlen(name);
    for (size_t i = 0; i < req->params.count; i++)
        if (req->params.items[i].name_len == len &&
            memcmp(req->params.items[i].name, name, len) == 0)
            return req->param_values[i];
    return NULL;
}

const struct request_part *request_part(const struct request *req, const char *name)
{
    for (size_t i = 0; i < req->part_count; i++)
        if (strcmp(req->parts[i].name, name) == 0) return &req->parts[i];
    return NULL;
}
