/* Routes mounted only with debug_routes=true. They exercise the server's own machinery (the
 * worker pool, body and multipart reading) without depending on any engine module, so the
 * integration tests can drive admission control and uploads deterministically. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/cancel.h"
#include "core/parse.h"
#include "handlers.h"
#include "request.h"
#include "response.h"

#define MAX_SLEEP_MS 60000

void handle_debug_sleep(struct request *req, struct response *resp)
{
    unsigned long long ms;
    if (parse_whole(request_query(req, "ms"), 0, MAX_SLEEP_MS, &ms) != PARSE_OK) {
        response_error(resp, 422, "ms: must be a whole number of milliseconds in [0, %d]",
                       MAX_SLEEP_MS);
        return;
    }
    /* A millisecond at a time, as heavy work stops between its ops: the request's deadline and
     * its client are watched the same way. */
    struct eng_error err;
    for (unsigned long long slept = 0; slept < ms; slept++) {
        if (eng_cancel_poll(&err) != 0) {
            response_engine_error(resp, &err);
            return;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000L};
        while (nanosleep(&pause, &pause) != 0) {
        }
    }
    response_json(resp, 200, json_pack("{s:i}", "slept_ms", (int)ms));
}

static json_t *sha256_hex(const unsigned char *data, size_t size)
{
    unsigned char digest[32];
    unsigned int len = sizeof digest;
    char hex[65];
    EVP_Digest(data ? data : (const unsigned char *)"", size, digest, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return json_string(hex);
}

static json_t *string_or_null(const char *s)
{
    json_t *value = s ? json_string(s) : NULL;
    return value ? value : json_null();
}

void handle_debug_echo(struct request *req, struct response *resp)
{
    json_t *parts = json_array();
    for (size_t i = 0; i < req->part_count; i++) {
        const struct request_part *p = &req->parts[i];
        json_array_append_new(
            parts,
            json_pack("{s:o, s:o, s:o, s:I, s:o}", "name", string_or_null(p->name), "filename",
                      string_or_null(p->filename), "content_type", string_or_null(p->content_type),
                      "size", (json_int_t)p->size, "sha256", sha256_hex(p->data, p->size)));
    }
    response_json(resp, 200,
                  json_pack("{s:o, s:I, s:o, s:o}", "content_type",
                            string_or_null(request_header(req, "Content-Type")), "body_size",
                            (json_int_t)req->body_size, "body_sha256",
                            sha256_hex(req->body, req->body_size), "parts", parts));
}
