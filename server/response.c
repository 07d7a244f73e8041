#include "response.h"

#include "core/error.h"
#include "json_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void response_init(struct response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->fd = -1;
}

static void drop_stream(struct response *resp)
{
    if (resp->stream.free) resp->stream.free(resp->stream.ctx);
    memset(&resp->stream, 0, sizeof resp->stream);
}

void response_clear(struct response *resp)
{
    drop_stream(resp);
    free(resp->body);
    if (resp->fd >= 0) close(resp->fd);
    for (size_t i = 0; i < resp->header_count; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    response_init(resp);
}

void response_bytes(struct response *resp, int status, const char *content_type,
                    unsigned char *data, size_t size)
{
    if (resp->max_body && size > resp->max_body) {
        free(data);
        response_error(resp, 413,
                       "the response would be %zu bytes; max_response_bytes is %llu: ask for "
                       "fewer inputs or samples, or smaller outputs",
                       size, resp->max_body);
        return;
    }
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = data;
    resp->body_size = size;
    resp->error_code = NULL;
}

void response_stream(struct response *resp, int status, const char *content_type,
                     const struct response_stream *stream)
{
    response_bytes(resp, status, content_type, NULL, 0);
    drop_stream(resp);
    resp->stream = *stream;
}

void response_text(struct response *resp, int status, const char *content_type, const char *text,
                   size_t size)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) {
        response_no_memory(resp, NULL);
        return;
    }
    memcpy(copy, text, size);
    response_bytes(resp, status, content_type, copy, size);
}

void response_json(struct response *resp, int status, json_t *doc)
{
    char *text = doc ? json_text(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text) {
        response_no_memory(resp, "while writing the response");
        return;
    }
    response_bytes(resp, status, "application/json", (unsigned char *)text, strlen(text));
}

static void set_error(struct response *resp, int status, const char *code, const char *fmt,
                      va_list ap)
{
    drop_stream(resp);
    free(resp->body);
    resp->body = NULL;
    resp->body_size = 0;
    resp->status = status;
    resp->content_type = "application/json";
    resp->error_code = code;
    vsnprintf(resp->error_message, sizeof resp->error_message, fmt, ap);
}

void response_error(struct response *resp, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(resp, status, error_code_for_status(status), fmt, ap);
    va_end(ap);
}

void response_error_code(struct response *resp, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(resp, status, code, fmt, ap);
    va_end(ap);
}

void response_header(struct response *resp, const char *name, const char *fmt, ...)
{
    if (resp->header_count == RESPONSE_MAX_HEADERS) return;
    char *value = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    char *name_copy = strdup(name);
    if (n < 0 || !name_copy) {
        if (n >= 0) free(value);
        free(name_copy);
        return;
    }
    resp->headers[resp->header_count].name = name_copy;
    resp->headers[resp->header_count].value = value;
    resp->header_count++;
}

const char *error_code_for_status(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 409:
        return "conflict";
    case 413:
        return "payload_too_large";
    case 414:
        return "uri_too_long";
    case 415:
        return "unsupported_media_type";
    case 422:
        return "unprocessable";
    case 429:
        return "too_many_requests";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "internal" : "bad_request";
    }
}

json_t *json_string_lossy(const char *text)
{
    if (!text) return NULL;
    json_t *s = json_string(text);
    if (s) return s;
    char *copy = strdup(text);
    if (!copy) return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80) *c = '?';
    s = json_string(copy);
    free(copy);
    return s;
}

char *response_error_body(const struct response *resp, const char *request_id)
{
    json_t *message = json_string_lossy(resp->error_message);
    json_t *doc =
        resp->errors == RESPONSE_ERRORS_KSERVE
            ? json_pack("{s:o*}", "error", message)
            : json_pack("{s:{s:s, s:o*, s:o*}}", "error", "code", resp->error_code, "message",
                        message, "request_id", json_string_lossy(request_id ? request_id : ""));
    if (!doc) return NULL;
    char *text = json_text(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}

int response_status_for(enum eng_code code)
{
    switch (code) {
    case ENG_INVALID:
    case ENG_UNDECODABLE:
        return 422;
    case ENG_UNSUPPORTED:
        return 415;
    case ENG_TOO_LARGE:
        return 413;
    case ENG_NOT_FOUND:
        return 404;
    case ENG_CONFLICT:
        return 409;
    case ENG_CANCELLED:
    case ENG_NO_MEMORY:
        return 503;
    case ENG_OK:
    case ENG_INTERNAL:
        break;
    }
    return 500;
}

void response_engine_error(struct response *resp, const struct eng_error *err)
{
    int status = response_status_for(err->code);
    if (resp->errors == RESPONSE_ERRORS_KSERVE && (status == 415 || status == 422)) status = 400;
    if (err->code == ENG_UNDECODABLE)
        response_error_code(resp, status, "undecodable", "%s", err->message);
    else
        response_error(resp, status, "%s", err->message[0] ? err->message : "internal error");
    /* Work stopped at its deadline may well fit when the server is less busy. */
    if (err->code == ENG_CANCELLED) response_header(resp, "Retry-After", "1");
}

void response_no_memory(struct response *resp, const char *doing)
{
    if (doing)
        response_error(resp, response_status_for(ENG_NO_MEMORY), "out of memory %s", doing);
    else
        response_error(resp, response_status_for(ENG_NO_MEMORY), "out of memory");
}
