/* A multipart/form-data parser of our own: a state machine over the body's bytes, so a body split
 * anywhere parses the same, and a delimiter cut in two by a chunk is still found.
 *
 * What it accepts, strict where RFC 2046 and RFC 7578 are:
 * - Content-Type: multipart/form-data with exactly one boundary parameter of 1 to 70 of RFC 2046's
 *   bchars, not ending in a space; a token, or a quoted string where the boundary holds characters
 *   a token may not (RFC 2045 §5.1). Other parameters are ignored.
 * - The body (RFC 2046 §5.1.1): a preamble, which is skipped; "--boundary" at the very start or
 *   after a CRLF; parts, each ended by CRLF "--boundary"; the close delimiter "--boundary--". After
 *   a delimiter only spaces and tabs (transport padding) may come before its CRLF; after the close
 *   delimiter, padding and, past a CRLF, an epilogue, which is skipped.
 * - Part headers: "Name: value" lines ended by CRLF, folded lines unfolded, then an empty line;
 *   at most HEADERS_MAX bytes. Content-Disposition is required and may come once: form-data with a
 *   name parameter and an optional filename (RFC 7578 §4.2), each a token or a quoted string; in a
 *   quoted string \" and \\ stand for " and \, and any other backslash is kept, since browsers send
 *   Windows paths as they are. Content-Type may come once and is kept as sent; Content-Transfer-
 *   Encoding may only say 7bit, 8bit or binary; other headers are ignored (RFC 7578 §4.8).
 * - Whitespace is taken around ';' and '=' in parameters, as RFC 822's structured fields allow.
 * And what it refuses, as MULTIPART_MALFORMED unless said otherwise:
 * - a body with no part, or one that ends before its close delimiter (a truncated upload);
 * - a line that starts with "--boundary" but is no delimiter: RFC 2046 has a delimiter recognised
 *   by that prefix alone, so the boundary occurring inside a part is the sender's error;
 * - a bare CR or LF, or a control character other than tab, in part headers;
 * - filename* (RFC 7578 §4.2 forbids it), repeated parameters, and a disposition other than
 *   form-data;
 * - a part whose own Content-Type is a multipart type (multipart/mixed inside form-data, which
 *   RFC 7578 §4.3 deprecates): MULTIPART_NESTED, so no later field is read under its headers;
 * - a part past max_parts: MULTIPART_TOO_MANY_PARTS.
 * Memory is the parts' values (the caller caps the body's size) but a streamed one's, their names,
 * and one fixed buffer for a part's headers. */
#include "multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 70 /* RFC 2046 §5.1.1 */
#define HEADERS_MAX  (16 * 1024)

enum state {
    PREAMBLE,        /* before the first delimiter */
    DATA,            /* a part's value */
    AFTER_DELIMITER, /* "--boundary" just matched */
    PADDING,         /* spaces and tabs after a delimiter */
    DELIMITER_LF,    /* the CR that ends a delimiter line */
    HEADERS,         /* a part's headers, up to the empty line */
    CLOSE_DASH,      /* "--boundary-" */
    CLOSE_PADDING,   /* after "--boundary--": the body may end here */
    CLOSE_LF,        /* the CR after the close delimiter */
    EPILOGUE,
};

struct multipart {
    enum state state;
    enum multipart_status status;
    char delimiter[4 + BOUNDARY_MAX]; /* CRLF "--" boundary, not terminated */
    size_t delimiter_len;
    size_t matched; /* how much of the delimiter the last bytes matched */
    char headers[HEADERS_MAX + 1];
    size_t headers_len;
    struct request_part *parts;
    size_t count, capacity, max_parts;
    size_t current_capacity; /* bytes allocated for parts[count - 1].data */
    /* The part multipart_stream_part named: its value goes to sink while streaming is set. */
    const char *stream_name;
    int (*sink)(void *ctx, const char *data, size_t size);
    void *sink_ctx;
    int streaming, streamed;
    char error[256];
};

/* A piece of a header value. */
struct span {
    const char *s;
    size_t n;
};

static void fail(struct multipart *mp, enum multipart_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct multipart *mp, enum multipart_status status, const char *fmt, ...)
{
    if (mp->status != MULTIPART_OK) return;
    mp->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mp->error, sizeof mp->error, fmt, ap);
    va_end(ap);
}

#define MALFORMED "malformed multipart/form-data body: "

static char *skip_ows(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* RFC 2045 §5.1: a token is printable ASCII but space and tspecials. */
static size_t token_len(const char *s)
{
    size_t n = 0;
    while (s[n] > ' ' && s[n] < 127 && !strchr("()<>@,;:\\\"/[]?=", s[n]))
        n++;
    return n;
}

static int span_is(struct span a, const char *text)
{
    return a.n == strlen(text) && strncasecmp(a.s, text, a.n) == 0;
}

/* A parameter's value at *s: a token, or a quoted string unescaped in place (the result is never
 * longer, and it starts where the opening quote was). */
static int param_value(char **s, struct span *value)
{
    char *r = *s;
    if (*r != '"') {
        value->s = r;
        value->n = token_len(r);
        *s = r + value->n;
        return value->n ? 0 : -1;
    }
    char *w = r++;
    for (;;) {
        char c = *r++;
        if (c == '\0') return -1; /* unterminated */
        if (c == '"') break;
        if (c == '\\' && (*r == '"' || *r == '\\')) c = *r++;
        *w++ = c;
    }
    value->s = *s;
    value->n = (size_t)(w - *s);
    *s = r;
    return 0;
}

/* The next "; key=value" of a header value at *s: 1 with key and value, 0 at the end, -1 when the
 * text is no parameter list (RFC 2045 §5.1, RFC 2183 §2). */
static int next_param(char **s, struct span *key, struct span *value)
{
    char *p = skip_ows(*s);
    if (*p == '\0') return 0;
    if (*p != ';') return -1;
    p = skip_ows(p + 1);
    key->s = p;
    key->n = token_len(p);
    if (key->n == 0) return -1;
    p = skip_ows(p + key->n);
    if (*p != '=') return -1;
    p = skip_ows(p + 1);
    if (param_value(&p, value) != 0) return -1;
    *s = p;
    return 1;
}

/* The boundary of a multipart/form-data Content-Type, into mp->delimiter after CRLF "--". */
static int read_boundary(struct multipart *mp, char *type)
{
    static const char form_data[] = "multipart/form-data";
    char *s = skip_ows(type);
    if (strncasecmp(s, form_data, sizeof form_data - 1) != 0) return -1;
    s += sizeof form_data - 1;
    struct span boundary = {0}, key, value;
    int rc;
    while ((rc = next_param(&s, &key, &value)) == 1) {
        if (!span_is(key, "boundary")) continue;
        if (boundary.s) return -1; /* which one would the sender mean? */
        boundary = value;
    }
    if (rc != 0 || boundary.n == 0 || boundary.n > BOUNDARY_MAX ||
        boundary.s[boundary.n - 1] == ' ')
        return -1;
    for (size_t i = 0; i < boundary.n; i++) {
        const char c = boundary.s[i];
        const int bchar = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                          (c >= 'a' && c <= 'z') || strchr("'()+_,-./:=? ", c);
        if (!bchar) return -1;
    }
    memcpy(mp->delimiter, "\r\n--", 4);
    memcpy(mp->delimiter + 4, boundary.s, boundary.n);
    mp->delimiter_len = 4 + boundary.n;
    return 0;
}

enum multipart_status multipart_begin(const char *content_type, size_t max_parts,
                                      struct multipart **out)
{
    *out = NULL;
    struct multipart *mp = calloc(1, sizeof *mp);
    char *type = content_type ? strdup(content_type) : NULL; /* parsed in place */
    if (!mp || (content_type && !type)) {
        free(mp);
        free(type);
        return MULTIPART_NO_MEMORY;
    }
    const int usable = type && read_boundary(mp, type) == 0;
    free(type);
    if (!usable) {
        free(mp);
        return MULTIPART_MALFORMED;
    }
    mp->max_parts = max_parts;
    mp->state = PREAMBLE;
    mp->matched = 2; /* the body's start counts as the CRLF before the first "--boundary" */
    *out = mp;
    return MULTIPART_OK;
}

void multipart_stream_part(struct multipart *mp, const char *name,
                           int (*sink)(void *ctx, const char *data, size_t size), void *ctx)
{
    mp->stream_name = name;
    mp->sink = sink;
    mp->sink_ctx = ctx;
}

static int append(struct multipart *mp, const char *data, size_t size)
{
    if (mp->streaming) {
        if (size == 0 || mp->sink(mp->sink_ctx, data, size) == 0) return 0;
        fail(mp, MULTIPART_SINK_FAILED, "part %zu could not be stored", mp->count);
        return -1;
    }
    struct request_part *part = &mp->parts[mp->count - 1];
    if (part->size + size + 1 > mp->current_capacity) {
        size_t capacity = mp->current_capacity ? mp->current_capacity : 256;
        while (capacity < part->size + size + 1)
            capacity *= 2;
        unsigned char *grown = realloc(part->data, capacity);
        if (!grown) {
            fail(mp, MULTIPART_NO_MEMORY, "out of memory");
            return -1;
        }
        part->data = grown;
        mp->current_capacity = capacity;
    }
    if (size) memcpy(part->data + part->size, data, size);
    part->size += size;
    part->data[part->size] = '\0'; /* form fields can be read as strings */
    return 0;
}

static char *copy_span(const struct span *s)
{
    return s->s ? strndup(s->s, s->n) : NULL;
}

static int start_part(struct multipart *mp, struct span name, struct span filename,
                      struct span content_type)
{
    if (mp->count == mp->max_parts) {
        fail(mp, MULTIPART_TOO_MANY_PARTS, "more than max_parts (%zu) multipart parts",
             mp->max_parts);
        return -1;
    }
    if (mp->count == mp->capacity) {
        size_t capacity = mp->capacity ? mp->capacity * 2 : 4;
        struct request_part *grown = realloc(mp->parts, capacity * sizeof *grown);
        if (!grown) goto no_memory;
        mp->parts = grown;
        mp->capacity = capacity;
    }
    struct request_part *part = &mp->parts[mp->count];
    memset(part, 0, sizeof *part);
    part->name = copy_span(&name);
    part->filename = copy_span(&filename);
    part->content_type = copy_span(&content_type);
    mp->count++; /* counted now so that multipart_free_parts frees what was copied */
    mp->current_capacity = 0;
    if (!part->name || (filename.s && !part->filename) || (content_type.s && !part->content_type))
        goto no_memory;
    mp->streaming = 0;
    if (append(mp, "", 0) != 0) return -1; /* even an empty value is a terminated string */
    if (mp->stream_name && !mp->streamed && strcmp(part->name, mp->stream_name) == 0)
        mp->streaming = mp->streamed = 1;
    return 0;
no_memory:
    fail(mp, MULTIPART_NO_MEMORY, "out of memory");
    return -1;
}

/* form-data; name="..."[; filename="..."] (RFC 7578 §4.2). */
static int read_disposition(char *value, struct span *name, struct span *filename)
{
    const size_t type_len = token_len(value);
    if (!span_is((struct span){value, type_len}, "form-data")) return -1;
    char *s = value + type_len;
    struct span key, v;
    int rc;
    while ((rc = next_param(&s, &key, &v)) == 1) {
        struct span *slot = span_is(key, "name")       ? name
                            : span_is(key, "filename") ? filename
                                                       : NULL;
        if (span_is(key, "filename*") || (slot && slot->s)) return -1;
        if (slot) *slot = v;
    }
    return rc == 0 && name->s ? 0 : -1;
}

/* The part's headers are in: check them and open the part. Lines end in CRLF (checked as they
 * arrived) and the block in an empty line; it is taken apart in place. */
static int open_part(struct multipart *mp)
{
    char *h = mp->headers;
    const size_t number = mp->count + 1;
    if (h[0] == ' ' || h[0] == '\t') {
        fail(mp, MULTIPART_MALFORMED, MALFORMED "part %zu's headers start with a folded line",
             number);
        return -1;
    }
    /* Unfold: a CRLF before a space or tab continues the line (RFC 5322 §2.2.3). */
    for (size_t i = 0; i + 2 < mp->headers_len; i++)
        if (h[i] == '\r' && (h[i + 2] == ' ' || h[i + 2] == '\t')) h[i] = h[i + 1] = ' ';
    struct span name = {0}, filename = {0}, content_type = {0};
    int dispositions = 0;
    for (char *line = h, *next; *line != '\r'; line = next) {
        char *eol = strchr(line, '\r'); /* unfolded, so the line's end, followed by LF */
        next = eol + 2;
        *eol = '\0';
        /* A field name is printable ASCII but ':' (RFC 5322 §3.6.8), wider than a token. */
        size_t name_len = 0;
        while (line[name_len] > ' ' && line[name_len] < 127 && line[name_len] != ':')
            name_len++;
        if (name_len == 0 || line[name_len] != ':') {
            fail(mp, MULTIPART_MALFORMED,
                 MALFORMED "part %zu has a header line that is not \"Name: value\"", number);
            return -1;
        }
        char *value = skip_ows(line + name_len + 1);
        char *value_end = eol;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            *--value_end = '\0';
        const struct span field = {line, name_len};
        if (span_is(field, "Content-Disposition")) {
            if (dispositions++ || read_disposition(value, &name, &filename) != 0) {
                fail(mp, MULTIPART_MALFORMED,
                     MALFORMED "part %zu's Content-Disposition is not one form-data; name=\"...\" "
                               "with an optional filename=\"...\" (RFC 7578, section 4.2)",
                     number);
                return -1;
            }
        } else if (span_is(field, "Content-Type")) {
            if (content_type.s) {
                fail(mp, MULTIPART_MALFORMED, MALFORMED "part %zu has two Content-Type headers",
                     number);
                return -1;
            }
            content_type = (struct span){value, (size_t)(value_end - value)};
        } else if (span_is(field, "Content-Transfer-Encoding") && strcasecmp(value, "binary") &&
                   strcasecmp(value, "8bit") && strcasecmp(value, "7bit")) {
            fail(mp, MULTIPART_MALFORMED,
                 MALFORMED "part %zu has a Content-Transfer-Encoding other than 7bit, 8bit or "
                           "binary (RFC 7578, section 4.7): send its bytes as they are",
                 number);
            return -1;
        }
    }
    if (!dispositions) {
        fail(mp, MULTIPART_MALFORMED,
             MALFORMED "part %zu has no Content-Disposition: form-data header (RFC 7578, "
                       "section 4.2)",
             number);
        return -1;
    }
    if (content_type.s && strncasecmp(content_type.s, "multipart/", 10) == 0) {
        fail(mp, MULTIPART_NESTED,
             "nested multipart: part %zu of the multipart/form-data body is itself multipart, "
             "which is not accepted (RFC 7578, section 4.3, deprecates it); send each file as a "
             "part of its own",
             number);
        return -1;
    }
    return start_part(mp, name, filename, content_type);
}

/* Takes header bytes up to the empty line that ends them; returns where it stopped. */
static const char *take_headers(struct multipart *mp, const char *p, const char *end)
{
    while (p < end) {
        const char c = *p++;
        const size_t len = mp->headers_len;
        const char prev = len ? mp->headers[len - 1] : '\0';
        if ((prev == '\r') != (c == '\n')) {
            fail(mp, MULTIPART_MALFORMED,
                 MALFORMED "part %zu's header lines must end in CRLF, without a bare CR or LF",
                 mp->count + 1);
            return end;
        }
        if (((unsigned char)c < ' ' && c != '\t' && c != '\r' && c != '\n') || c == 127) {
            fail(mp, MULTIPART_MALFORMED, MALFORMED "part %zu's headers hold a control character",
                 mp->count + 1);
            return end;
        }
        if (len == HEADERS_MAX) {
            fail(mp, MULTIPART_MALFORMED, MALFORMED "part %zu's headers are over %d bytes",
                 mp->count + 1, HEADERS_MAX);
            return end;
        }
        mp->headers[mp->headers_len++] = c;
        const int empty_line =
            c == '\n' && (mp->headers_len == 2 ||
                          (mp->headers_len >= 4 &&
                           memcmp(mp->headers + mp->headers_len - 4, "\r\n\r\n", 4) == 0));
        if (empty_line) {
            mp->headers[mp->headers_len] = '\0';
            if (open_part(mp) == 0) {
                mp->state = DATA;
                mp->matched = 0;
            }
            return p;
        }
    }
    return p;
}

/* Bytes of the body that are not the delimiter: a part's value, or preamble to skip. */
static int value_bytes(struct multipart *mp, const char *data, size_t size)
{
    return mp->state == DATA && size ? append(mp, data, size) : 0;
}

/* Looks for the delimiter in [p, end), keeping a partial match across calls; returns where it
 * stopped: just past the delimiter, or end. */
static const char *scan(struct multipart *mp, const char *p, const char *end)
{
    while (p < end) {
        if (mp->matched == 0) {
            const char *cr = memchr(p, '\r', (size_t)(end - p));
            const char *stop = cr ? cr : end;
            if (value_bytes(mp, p, (size_t)(stop - p)) != 0) return end;
            if (!cr) return end;
            mp->matched = 1;
            p = cr + 1;
        } else if (*p == mp->delimiter[mp->matched]) {
            p++;
            if (++mp->matched == mp->delimiter_len) {
                mp->matched = 0;
                mp->state = AFTER_DELIMITER;
                return p;
            }
        } else {
            /* Not the delimiter after all: what matched was value, and *p is looked at afresh.
             * The delimiter's one CR is its first byte, so no match starts inside the part that
             * matched. */
            const size_t matched = mp->matched;
            mp->matched = 0;
            if (value_bytes(mp, mp->delimiter, matched) != 0) return end;
        }
    }
    return p;
}

/* One byte of a delimiter line's end, or of what follows the close delimiter. */
static void step(struct multipart *mp, char c)
{
    const int blank = c == ' ' || c == '\t';
    switch (mp->state) {
    case AFTER_DELIMITER:
    case PADDING:
        if (c == '-' && mp->state == AFTER_DELIMITER) {
            mp->state = CLOSE_DASH;
        } else if (blank || c == '\r') {
            mp->state = blank ? PADDING : DELIMITER_LF;
        } else {
            fail(mp, MULTIPART_MALFORMED,
                 MALFORMED "a line starts with \"--\" and the boundary but is no delimiter: the "
                           "boundary may not occur in a part, and only spaces and tabs may follow "
                           "it on its line (RFC 2046, section 5.1.1)");
        }
        return;
    case DELIMITER_LF:
    case CLOSE_LF:
        if (c != '\n') {
            fail(mp, MULTIPART_MALFORMED, MALFORMED "a delimiter line ends in a bare CR");
            return;
        }
        mp->state = mp->state == CLOSE_LF ? EPILOGUE : HEADERS;
        mp->headers_len = 0;
        return;
    case CLOSE_DASH:
        if (c != '-') {
            fail(mp, MULTIPART_MALFORMED,
                 MALFORMED "a line starts with \"--\", the boundary and \"-\" but is no "
                           "delimiter (RFC 2046, section 5.1.1)");
        } else if (mp->count == 0) {
            fail(mp, MULTIPART_MALFORMED,
                 MALFORMED "the close delimiter comes before any part (RFC 2046 requires one)");
        }
        mp->state = CLOSE_PADDING;
        return;
    case CLOSE_PADDING:
        if (blank || c == '\r') {
            mp->state = blank ? CLOSE_PADDING : CLOSE_LF;
            return;
        }
        fail(mp, MULTIPART_MALFORMED,
             MALFORMED "only spaces and tabs may follow the close delimiter on its line");
        return;
    case PREAMBLE:
    case DATA:
    case HEADERS:
    case EPILOGUE:
        return; /* not single bytes: see multipart_feed */
    }
}

enum multipart_status multipart_feed(struct multipart *mp, const char *data, size_t size)
{
    const char *p = data, *end = data + size;
    while (mp->status == MULTIPART_OK && p < end) {
        switch (mp->state) {
        case PREAMBLE:
        case DATA:
            p = scan(mp, p, end);
            break;
        case HEADERS:
            p = take_headers(mp, p, end);
            break;
        case EPILOGUE:
            p = end; /* skipped, as RFC 2046 says */
            break;
        default:
            step(mp, *p++);
        }
    }
    return mp->status;
}

enum multipart_status multipart_end(struct multipart *mp, struct request_part **parts,
                                    size_t *count)
{
    *parts = NULL;
    *count = 0;
    if (mp->state == PREAMBLE)
        fail(mp, MULTIPART_MALFORMED,
             MALFORMED "no part: the body never has \"--\" and the boundary at the start of a "
                       "line");
    else if (mp->state != CLOSE_PADDING && mp->state != EPILOGUE)
        fail(mp, MULTIPART_MALFORMED,
             MALFORMED "the body ends before its close delimiter (\"--\", the boundary and "
                       "\"--\"): was it cut short?");
    if (mp->status != MULTIPART_OK) return mp->status;
    *parts = mp->parts;
    *count = mp->count;
    mp->parts = NULL;
    mp->count = mp->capacity = 0;
    return MULTIPART_OK;
}

const char *multipart_error(const struct multipart *mp)
{
    return mp->error;
}

void multipart_free(struct multipart *mp)
{
    if (!mp) return;
    multipart_free_parts(mp->parts, mp->count);
    free(mp);
}

void multipart_free_parts(struct request_part *parts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(parts[i].name);
        free(parts[i].filename);
        free(parts[i].content_type);
        free(parts[i].data);
    }
    free(parts);
}
