/* libFuzzer target: multipart/form-data bodies through server/multipart.c, the parser
 * server/http.c feeds a request's body to. The input's first line is the Content-Type header's
 * value (so the boundary parameter, quoting and all, is fuzzed too), the rest is the body. The
 * body is parsed twice, whole and in pieces of 1 to 7 bytes as a client's writes may split it, and
 * the two must agree on the status, the message and every part: a delimiter or a header cut by a
 * piece must not change what is read. A third parse, in pieces, streams the first part's value
 * (multipart_stream_part, as an upload route does): it must give the bytes the whole parse held,
 * and the same parts otherwise. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

#define MAX_PARTS 8

struct outcome {
    enum multipart_status status;
    struct request_part *parts;
    size_t count;
    char *error;
};

/* What a streamed part's sink was given. */
struct sink {
    char *data;
    size_t size;
};

static int sink_take(void *ctx, const char *data, size_t size)
{
    struct sink *k = ctx;
    char *grown = realloc(k->data, k->size + size);
    if (!grown) abort();
    memcpy(grown + k->size, data, size);
    k->data = grown;
    k->size += size;
    return 0;
}

/* Parses body in pieces of 1 to 7 bytes, or whole when pieces is 0; then ends it, the way
 * server/http.c does: no end after a failed feed. With stream, the first part of that name goes
 * to sink. */
static void parse(const char *content_type, const uint8_t *body, size_t size, int pieces,
                  const char *stream, struct sink *sink, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    struct multipart *mp;
    o->status = multipart_begin(content_type, MAX_PARTS, &mp);
    if (o->status != MULTIPART_OK) return;
    if (stream) multipart_stream_part(mp, stream, sink_take, sink);
    size_t at = 0, piece = 1;
    while (at < size && o->status == MULTIPART_OK) {
        const size_t n = !pieces ? size : piece < size - at ? piece : size - at;
        o->status = multipart_feed(mp, (const char *)body + at, n);
        at += n;
        piece = piece % 7 + 1;
    }
    if (o->status == MULTIPART_OK) o->status = multipart_end(mp, &o->parts, &o->count);
    o->error = strdup(multipart_error(mp));
    multipart_free(mp);
    if (!o->error) abort();
}

static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Each part is whole: a name, a value terminated as form fields are read, no bigger than the
 * body. */
static void check_parts(const struct outcome *o, size_t body_size)
{
    if (o->status == MULTIPART_OK && (o->count == 0 || o->count > MAX_PARTS)) abort();
    if (o->status != MULTIPART_OK && (o->count != 0 || o->parts)) abort();
    for (size_t i = 0; i < o->count; i++) {
        const struct request_part *p = &o->parts[i];
        if (!p->name || !p->data || p->size > body_size || p->data[p->size] != '\0') abort();
    }
}

static void check_same(const struct outcome *a, const struct outcome *b)
{
    if (a->status != b->status || a->count != b->count || !same_text(a->error, b->error)) abort();
    for (size_t i = 0; i < a->count; i++) {
        const struct request_part *p = &a->parts[i], *q = &b->parts[i];
        if (!same_text(p->name, q->name) || !same_text(p->filename, q->filename) ||
            !same_text(p->content_type, q->content_type) || p->size != q->size ||
            memcmp(p->data, q->data, p->size) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *newline = memchr(data, '\n', size);
    const size_t type_len = newline ? (size_t)(newline - data) : size;
    char *content_type = strndup((const char *)data, type_len); /* a header has no NUL */
    if (!content_type) return 0;
    const uint8_t *body = newline ? newline + 1 : data + size;
    const size_t body_size = (size_t)(data + size - body);
    struct outcome whole, split, streamed;
    parse(content_type, body, body_size, 0, NULL, NULL, &whole);
    parse(content_type, body, body_size, 1, NULL, NULL, &split);
    check_parts(&whole, body_size);
    check_same(&whole, &split);
    if (whole.status == MULTIPART_OK) {
        struct sink sink = {0};
        parse(content_type, body, body_size, 1, whole.parts[0].name, &sink, &streamed);
        /* The first part's value went to the sink; that part is listed empty. */
        if (streamed.status != MULTIPART_OK || streamed.count != whole.count ||
            sink.size != whole.parts[0].size ||
            (sink.size && memcmp(sink.data, whole.parts[0].data, sink.size) != 0) ||
            streamed.parts[0].size != 0 || streamed.parts[0].data[0] != '\0')
            abort();
        streamed.parts[0].size = whole.parts[0].size;
        unsigned char *held = streamed.parts[0].data;
        streamed.parts[0].data = whole.parts[0].data;
        check_same(&whole, &streamed);
        streamed.parts[0].data = held;
        multipart_free_parts(streamed.parts, streamed.count);
        free(streamed.error);
        free(sink.data);
    }
    multipart_free_parts(whole.parts, whole.count);
    multipart_free_parts(split.parts, split.count);
    free(whole.error);
    free(split.error);
    free(content_type);
    return 0;
}
