/* What a handler returns: a status, headers and a body in memory or in a file, or an error that
 * the HTTP layer turns into the one JSON error envelope. */
#ifndef AUGSERVE_RESPONSE_H
#define AUGSERVE_RESPONSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define RESPONSE_MAX_HEADERS 8

struct response_header {
    char *name;
    char *value;
};

/* Whose error bodies a response writes: the server's envelope {"error": {"code", "message",
 * "request_id"}}, or KServe's Open Inference Protocol's {"error": "<message>"}. */
enum response_errors {
    RESPONSE_ERRORS_AUGSERVE,
    RESPONSE_ERRORS_KSERVE,
};

/* A body made as it goes (Server-Sent Events), for a light route: between pieces the connection
 * sleeps and holds no thread (server/streams.c). */
struct response_stream {
    /* On a connection thread: copies up to max bytes of what is ready into buf and returns how
     * many; 0 when nothing is ready (the connection then sleeps), -1 at the end of the body. */
    long (*read)(void *ctx, char *buf, size_t max);
    /* On the streams thread, a few times a second while the connection sleeps: gathers what is
     * new; nonzero once read has something to give, or the end. */
    int (*poll)(void *ctx);
    void (*free)(void *ctx);
    void *ctx;
};

struct response {
    int status;
    const char *content_type; /* a string literal */
    unsigned char *body;      /* owned, malloc'd */
    size_t body_size;
    int fd; /* a file body when >= 0: owned, closed after sending */
    uint64_t fd_size;
    struct response_stream stream; /* a streamed body when stream.read is set: owned */
    struct response_header headers[RESPONSE_MAX_HEADERS];
    size_t header_count;
    const char *error_code; /* set: an error body is sent with error_message */
    char error_message[512];
    enum response_errors errors; /* how that body is written (a handler sets it first) */
    /* The largest body the response may carry (max_response_bytes; 0: no cap): a larger one is
     * replaced by a 413 naming the setting. File bodies are not capped. */
    unsigned long long max_body;
};

void response_init(struct response *resp);
void response_clear(struct response *resp);

/* Serialises doc (the reference is stolen) as application/json. */
void response_json(struct response *resp, int status, json_t *doc);
/* Takes ownership of data (malloc'd). A body past resp->max_body becomes a 413. */
void response_bytes(struct response *resp, int status, const char *content_type,
                    unsigned char *data, size_t size);
/* Takes over stream (its free runs when the response is done with it, or at once when the
 * response is replaced). */
void response_stream(struct response *resp, int status, const char *content_type,
                     const struct response_stream *stream);
/* A copy of text. */
void response_text(struct response *resp, int status, const char *content_type, const char *text,
                   size_t size);
/* An error envelope with the code that belongs to the status (error_code_for_status). */
void response_error(struct response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error envelope with a more specific code, such as "invalid_policy". */
void response_error_code(struct response *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds a header (copied); silently ignored past RESPONSE_MAX_HEADERS, which is a programming
 * error caught by tests. */
void response_header(struct response *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The one mapping from engine error codes to statuses: invalid input and undecodable data 422,
 * unsupported formats 415, limits 413, not found 404, conflicts 409, memory and work stopped at
 * its deadline 503, anything else 500. */
int response_status_for(enum eng_code code);
/* An error for err, with the status response_status_for gives (and the code "undecodable" for
 * undecodable data, Retry-After for cancelled work). Under KServe's protocol a request the server
 * cannot serve is 400, not 415 or 422; limits, memory and the server's own failures keep their
 * status. */
void response_engine_error(struct response *resp, const struct eng_error *err);
/* "out of memory", or "out of memory <doing>" ("while writing the response"), with the status of
 * ENG_NO_MEMORY: what every handler answers when an allocation fails. */
void response_no_memory(struct response *resp, const char *doing);

/* The machine-readable code for an HTTP error status, e.g. 413 -> "payload_too_large". */
const char *error_code_for_status(int status);

/* Client text (paths, ids, messages that quote input) as a JSON string: JSON needs valid UTF-8,
 * so other bytes become '?'. NULL for NULL text or when memory runs out. */
json_t *json_string_lossy(const char *text);

/* The body of resp's error as a JSON string (malloc'd): the envelope {"error": {"code", "message",
 * "request_id"}}, or {"error": "<message>"} under KServe's protocol. NULL when memory runs out. */
char *response_error_body(const struct response *resp, const char *request_id);

#endif
