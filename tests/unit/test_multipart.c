/* Unit tests of server/multipart.c: hand-built bodies fed to the parser as a client's writes may
 * split them. Every body is parsed whole and in pieces of every size from 1 to MAX_PIECE bytes,
 * and each way must give the same status and the same parts; the expectations come from RFC 2046
 * §5.1.1 (the body's syntax) and RFC 7578 (form-data's parts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"
#include "request.h"

#define BOUNDARY    "augserveTestBoundary7MA4YWxkTrZu0gW"
#define DASH        "--" BOUNDARY
#define CRLF        "\r\n"
#define TYPE        "multipart/form-data; boundary=" BOUNDARY
#define DEFAULT_MAX 16
#define MAX_PIECE   17

/* What one parse gave. */
struct outcome {
    enum multipart_status status;
    struct request_part *parts; /* handed over by multipart_end */
    size_t count;
    char error[256]; /* multipart_error's sentence */
};

static void outcome_clear(struct outcome *o)
{
    multipart_free_parts(o->parts, o->count);
    memset(o, 0, sizeof *o);
}

/* Parses body under content_type in pieces of piece bytes (0: whole), the way server/http.c does:
 * feeds until the first failure, then ends the body unless a feed failed. */
static void parse_in_pieces(const char *content_type, const void *body, size_t size,
                            size_t max_parts, size_t piece, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    struct multipart *mp = NULL;
    o->status = multipart_begin(content_type, max_parts, &mp);
    if (o->status != MULTIPART_OK) {
        assert_null(mp);
        return;
    }
    assert_non_null(mp);
    assert_string_equal(multipart_error(mp), "");
    const char *bytes = body;
    if (piece == 0) piece = size ? size : 1;
    for (size_t at = 0; at < size && o->status == MULTIPART_OK; at += piece)
        o->status = multipart_feed(mp, bytes + at, size - at < piece ? size - at : piece);
    if (o->status == MULTIPART_OK) o->status = multipart_end(mp, &o->parts, &o->count);
    snprintf(o->error, sizeof o->error, "%s", multipart_error(mp));
    if (o->status == MULTIPART_OK)
        assert_string_equal(o->error, "");
    else
        assert_true(strlen(o->error) > 0);
    multipart_free(mp);
}

static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int same_parts(const struct outcome *a, const struct outcome *b)
{
    if (a->status != b->status || a->count != b->count || strcmp(a->error, b->error) != 0) return 0;
    for (size_t i = 0; i < a->count; i++) {
        const struct request_part *p = &a->parts[i], *q = &b->parts[i];
        if (!same_text(p->name, q->name) || !same_text(p->filename, q->filename) ||
            !same_text(p->content_type, q->content_type) || p->size != q->size ||
            memcmp(p->data, q->data, p->size) != 0)
            return 0;
    }
    return 1;
}

/* Parses body whole into o, and checks that every split of it gives the same. */
static void parse(const char *content_type, const void *body, size_t size, size_t max_parts,
                  struct outcome *o)
{
    parse_in_pieces(content_type, body, size, max_parts, 0, o);
    for (size_t piece = 1; piece <= MAX_PIECE && piece < size; piece++) {
        struct outcome split;
        parse_in_pieces(content_type, body, size, max_parts, piece, &split);
        if (!same_parts(o, &split))
            fail_msg("pieces of %zu bytes: status %d, %zu parts (\"%s\"); whole: status %d, %zu "
                     "parts (\"%s\")",
                     piece, split.status, split.count, split.error, o->status, o->count, o->error);
        outcome_clear(&split);
    }
}

/* A growing body built from pieces. */
struct body {
    unsigned char *data;
    size_t size, capacity;
};

static void add(struct body *b, const void *data, size_t size)
{
    if (b->size + size > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 1024;
        while (capacity < b->size + size)
            capacity *= 2;
        unsigned char *grown = realloc(b->data, capacity);
        assert_non_null(grown);
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, data, size);
    b->size += size;
}

static void add_str(struct body *b, const char *s)
{
    add(b, s, strlen(s));
}

/* One part: delimiter, headers, blank line, value and the CRLF that ends it. */
static void add_part(struct body *b, const char *name, const char *filename,
                     const char *content_type, const void *value, size_t size)
{
    char headers[512];
    int n = snprintf(
        headers, sizeof headers, DASH CRLF "Content-Disposition: form-data; name=\"%s\"%s%s%s" CRLF,
        name, filename ? "; filename=\"" : "", filename ? filename : "", filename ? "\"" : "");
    assert_true(n > 0 && (size_t)n < sizeof headers);
    add_str(b, headers);
    if (content_type) {
        add_str(b, "Content-Type: ");
        add_str(b, content_type);
        add_str(b, CRLF);
    }
    add_str(b, CRLF);
    add(b, value, size);
    add_str(b, CRLF);
}

static void add_close(struct body *b)
{
    add_str(b, DASH "--" CRLF);
}

static void assert_part(const struct request_part *p, const char *name, const char *filename,
                        const char *content_type, const void *value, size_t size)
{
    assert_non_null(p->name);
    assert_string_equal(p->name, name);
    if (filename) {
        assert_non_null(p->filename);
        assert_string_equal(p->filename, filename);
    } else {
        assert_null(p->filename);
    }
    if (content_type) {
        assert_non_null(p->content_type);
        assert_string_equal(p->content_type, content_type);
    } else {
        assert_null(p->content_type);
    }
    assert_int_equal(p->size, size);
    if (size) assert_memory_equal(p->data, value, size);
    /* Values are terminated so form fields read as strings. */
    assert_non_null(p->data);
    assert_int_equal(p->data[size], '\0');
}

/* Parses a text body under TYPE and expects a failure whose sentence holds needle. */
static void expect_refused(const char *body, enum multipart_status status, const char *needle)
{
    struct outcome o;
    parse(TYPE, body, strlen(body), DEFAULT_MAX, &o);
    if (o.status != status)
        fail_msg("status %d (\"%s\"), expected %d for: %s", o.status, o.error, status, body);
    if (!strstr(o.error, needle)) fail_msg("\"%s\" does not say \"%s\"", o.error, needle);
    assert_int_equal(o.count, 0);
    assert_null(o.parts);
}

/* Closes b, parses it under TYPE and expects count parts; frees b's bytes. */
static void parse_closed(struct body *b, size_t count, struct outcome *o)
{
    add_close(b);
    parse(TYPE, b->data, b->size, DEFAULT_MAX, o);
    if (o->status != MULTIPART_OK) fail_msg("status %d: %s", o->status, o->error);
    assert_int_equal(o->count, count);
    free(b->data);
}

static void test_fields_and_file(void **state)
{
    struct body b = {0};
    add_part(&b, "alpha", NULL, NULL, "first value", 11);
    add_part(&b, "beta", NULL, NULL, "2", 1);
    const char file[] = "col1,col2\n1,2\n3,4\n";
    add_part(&b, "upload", "data.csv", "text/csv", file, sizeof file - 1);
    struct outcome o;
    parse_closed(&b, 3, &o);
    assert_part(&o.parts[0], "alpha", NULL, NULL, "first value", 11);
    assert_part(&o.parts[1], "beta", NULL, NULL, "2", 1);
    assert_part(&o.parts[2], "upload", "data.csv", "text/csv", file, sizeof file - 1);
    outcome_clear(&o);
}

/* A body cut in pieces of up to 80 bytes, so every delimiter, header and CRLF is split at every
 * offset, reads as the whole body does. */
static void test_split_anywhere(void **state)
{
    struct body b = {0};
    add_part(&b, "alpha", NULL, NULL, "first value", 11);
    add_part(&b, "seed", NULL, NULL, "1", 1);
    const char file[] = "col1,col2\n1,2\n";
    add_part(&b, "upload", "data.csv", "text/csv", file, sizeof file - 1);
    add_part(&b, "upload", "more.csv", "text/csv", file, sizeof file - 1);
    add_close(&b);
    for (size_t piece = 1; piece <= 80; piece++) {
        struct outcome o;
        parse_in_pieces(TYPE, b.data, b.size, DEFAULT_MAX, piece, &o);
        if (o.count != 4) fail_msg("pieces of %zu bytes: %zu parts", piece, o.count);
        assert_part(&o.parts[0], "alpha", NULL, NULL, "first value", 11);
        assert_part(&o.parts[1], "seed", NULL, NULL, "1", 1);
        assert_part(&o.parts[2], "upload", "data.csv", "text/csv", file, sizeof file - 1);
        assert_part(&o.parts[3], "upload", "more.csv", "text/csv", file, sizeof file - 1);
        outcome_clear(&o);
    }
    free(b.data);
}

static void test_preamble_and_epilogue(void **state)
{
    /* RFC 2046: text before the first delimiter and after the close delimiter's line is
     * ignored, and so are spaces and tabs after a delimiter (transport padding). */
    struct body b = {0};
    add_str(&b, "This is the preamble." CRLF "--not the boundary" CRLF);
    add_str(&b, DASH " \t" CRLF "Content-Disposition: form-data; name=\"only\"" CRLF CRLF "v");
    add_str(&b, CRLF DASH "-- \t" CRLF "This is the epilogue, " DASH CRLF "even that.");
    struct outcome o;
    parse(TYPE, b.data, b.size, DEFAULT_MAX, &o);
    assert_int_equal(o.status, MULTIPART_OK);
    assert_int_equal(o.count, 1);
    assert_part(&o.parts[0], "only", NULL, NULL, "v", 1);
    outcome_clear(&o);
    free(b.data);

    /* The close delimiter may end the body without a CRLF. */
    const char bare[] =
        DASH CRLF "Content-Disposition: form-data; name=a" CRLF CRLF "1" CRLF DASH "--";
    parse(TYPE, bare, sizeof bare - 1, DEFAULT_MAX, &o);
    assert_int_equal(o.status, MULTIPART_OK);
    assert_int_equal(o.count, 1);
    assert_part(&o.parts[0], "a", NULL, NULL, "1", 1);
    outcome_clear(&o);
}

static void test_no_parts(void **state)
{
    /* RFC 2046 requires at least one body part: a lone close delimiter, text without any
     * delimiter, or no body at all is not a multipart body. */
    expect_refused(DASH "--" CRLF, MULTIPART_MALFORMED, "before any part");
    expect_refused("no delimiter in here" CRLF, MULTIPART_MALFORMED, "no part");
    expect_refused("", MULTIPART_MALFORMED, "no part");
    /* A delimiter must start a line. */
    expect_refused("x" DASH CRLF "Content-Disposition: form-data; name=\"a\"" CRLF CRLF
                   "1" CRLF DASH "--" CRLF,
                   MULTIPART_MALFORMED, "before any part");
}

static void test_binary_value(void **state)
{
    /* NUL, CR and LF, the boundary without its leading dashes, and the delimiter less its last
     * byte, in a file and a field. */
    const unsigned char value[] =
        "\x00\x01\r\n\r\n\x00" BOUNDARY "\r\n" BOUNDARY "--\r\n"
        "-" BOUNDARY "\xff\xfe\r\x00\n\r\r\n--augserveTestBoundary7MA4YWxk"
        "TrZu0g\r\r\n-\r\n--\r";
    size_t size = sizeof value - 1;
    struct body b = {0};
    add_part(&b, "blob", "blob.bin", "application/octet-stream", value, size);
    add_part(&b, "field", NULL, NULL, value, size);
    struct outcome o;
    parse_closed(&b, 2, &o);
    assert_part(&o.parts[0], "blob", "blob.bin", "application/octet-stream", value, size);
    assert_part(&o.parts[1], "field", NULL, NULL, value, size);
    outcome_clear(&o);
}

/* RFC 2046 §5.1.1: a line that starts with "--" and the boundary is a delimiter, whatever
 * follows; so the boundary inside a part is an error, not a value. */
static void test_boundary_inside_part(void **state)
{
    const char *prefix = DASH CRLF "Content-Disposition: form-data; name=\"a\"" CRLF CRLF;
    const char *tails[] = {"before" CRLF DASH "x" CRLF "after" CRLF DASH "--" CRLF,
                           "v" CRLF DASH "-x" CRLF, "v" CRLF DASH "--x" CRLF,
                           "v" CRLF DASH " x" CRLF, "v" CRLF DASH "\r" DASH "--" CRLF};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "%s%s", prefix, tails[i]);
        expect_refused(body, MULTIPART_MALFORMED, i == 4 ? "bare CR" : "delimiter");
    }
}

static void test_empty_value(void **state)
{
    struct body b = {0};
    add_part(&b, "before", NULL, NULL, "x", 1);
    add_part(&b, "empty", NULL, NULL, "", 0);
    add_part(&b, "after", NULL, NULL, "y", 1);
    struct outcome o;
    parse_closed(&b, 3, &o);
    assert_part(&o.parts[0], "before", NULL, NULL, "x", 1);
    assert_part(&o.parts[1], "empty", NULL, NULL, "", 0);
    assert_part(&o.parts[2], "after", NULL, NULL, "y", 1);
    outcome_clear(&o);
}

static void test_empty_file(void **state)
{
    struct body b = {0};
    add_part(&b, "file", "empty.txt", "text/plain", "", 0);
    add_part(&b, "after", NULL, NULL, "y", 1);
    struct outcome o;
    parse_closed(&b, 2, &o);
    assert_part(&o.parts[0], "file", "empty.txt", "text/plain", "", 0);
    assert_part(&o.parts[1], "after", NULL, NULL, "y", 1);
    outcome_clear(&o);
}

static void test_max_parts(void **state)
{
    struct body b = {0};
    add_part(&b, "a", NULL, NULL, "1", 1);
    add_part(&b, "b", NULL, NULL, "2", 1);
    add_part(&b, "c", NULL, NULL, "3", 1);
    add_close(&b);
    /* Exactly at the cap: fine. */
    struct outcome o;
    parse(TYPE, b.data, b.size, 3, &o);
    assert_int_equal(o.status, MULTIPART_OK);
    assert_int_equal(o.count, 3);
    assert_part(&o.parts[2], "c", NULL, NULL, "3", 1);
    outcome_clear(&o);
    /* One more than the cap. */
    parse(TYPE, b.data, b.size, 2, &o);
    assert_int_equal(o.status, MULTIPART_TOO_MANY_PARTS);
    assert_string_equal(o.error, "more than max_parts (2) multipart parts");
    assert_int_equal(o.count, 0);
    assert_null(o.parts);
    free(b.data);
}

static void test_truncated(void **state)
{
    struct body b = {0};
    add_part(&b, "a", NULL, NULL, "complete", 8);
    add_part(&b, "file", "f.bin", "application/octet-stream", "0123456789", 10);
    add_close(&b);
    size_t closing = strlen(DASH "--" CRLF);
    size_t file_end = b.size - closing - strlen(CRLF); /* just past the file's value */
    size_t file_start = file_end - 10;
    /* Cut inside the file's headers, inside its value, right after it, inside the close
     * delimiter, and after "--boundary-" or "--boundary--\r". */
    size_t cuts[] = {file_start - 20,
                     file_end - 5,
                     file_end,
                     file_end + strlen(CRLF) + 4,
                     b.size - closing + strlen(DASH) + 1,
                     b.size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct outcome o;
        parse(TYPE, b.data, cuts[i], DEFAULT_MAX, &o);
        if (o.status != MULTIPART_MALFORMED)
            fail_msg("cut at %zu of %zu: status %d", cuts[i], b.size, o.status);
        if (!strstr(o.error, "ends before its close delimiter")) fail_msg("%s", o.error);
        assert_int_equal(o.count, 0);
        assert_null(o.parts);
    }
    /* The whole body is fine. */
    struct outcome o;
    parse(TYPE, b.data, b.size, DEFAULT_MAX, &o);
    assert_int_equal(o.status, MULTIPART_OK);
    assert_int_equal(o.count, 2);
    outcome_clear(&o);
    free(b.data);
}

/* The Content-Type header: RFC 2045 §5.1's parameters, RFC 2046 §5.1.1's boundary. */
static void test_content_type(void **state)
{
    const char *bad[] = {
        NULL,
        "multipart/form-data",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/mixed; boundary=abc",
        "multipart/form-data; boundary=abc; boundary=abd",
        "multipart/form-data; boundary=\"ends in a space \"",
        "multipart/form-data; boundary=\"no<angle>\"",
        "multipart/form-data; boundary=a:b", /* ':' is no token character: quote it */
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data boundary=abc",
        "multipart/form-data; boundary=abc;",
        "multipart/form-data; boundary=\"q\\\"\"", /* '"' is no bchar */
        /* 71 characters */
        "multipart/form-data; boundary="
        "12345678901234567890123456789012345678901234567890123456789012345678901",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct multipart *mp = (struct multipart *)&mp;
        if (multipart_begin(bad[i], DEFAULT_MAX, &mp) != MULTIPART_MALFORMED)
            fail_msg("multipart_begin accepted \"%s\"", bad[i] ? bad[i] : "(none)");
        assert_null(mp);
    }
    /* Quoted, with every bchar; case-insensitive names; other parameters; 70 characters. */
    struct {
        const char *type, *boundary;
    } good[] = {
        {"multipart/form-data; boundary=\"a'()+_,-./:=? z\"", "a'()+_,-./:=? z"},
        {"Multipart/Form-Data;charset=utf-8;  BOUNDARY = xyz ;x=\"y;z\"", "xyz"},
        {"multipart/form-data; boundary="
         "1234567890123456789012345678901234567890123456789012345678901234567890",
         "1234567890123456789012345678901234567890123456789012345678901234567890"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "--%s" CRLF "Content-Disposition: form-data; name=\"k\"" CRLF CRLF "v" CRLF
                 "--%s--",
                 good[i].boundary, good[i].boundary);
        struct outcome o;
        parse(good[i].type, body, strlen(body), DEFAULT_MAX, &o);
        if (o.status != MULTIPART_OK) fail_msg("\"%s\": %s", good[i].type, o.error);
        assert_int_equal(o.count, 1);
        assert_part(&o.parts[0], "k", NULL, NULL, "v", 1);
        outcome_clear(&o);
    }
}

/* Part headers: RFC 7578 §4.2's Content-Disposition, Content-Type kept as sent, other headers
 * ignored, names case-insensitive, folded lines unfolded, quoted strings unescaped. */
static void test_part_headers(void **state)
{
    const char body[] = DASH CRLF
        "content-disposition:form-data;name=plain" CRLF "X-Ignored: whatever" CRLF CRLF
        "1" CRLF DASH CRLF "Content-Disposition: FORM-DATA; NAME = \"quoted \\\"name\\\"\" ;" CRLF
        "\tfilename=\"C:\\dir\\a\\\\b.png\"" CRLF "CONTENT-TYPE:   image/png; q=1  " CRLF
        "Content-Transfer-Encoding: binary" CRLF CRLF "2" CRLF DASH CRLF
        "Content-Disposition: form-data; name=\"\"; filename=\"\"; size=3" CRLF CRLF "3" CRLF DASH
        "--";
    struct outcome o;
    parse(TYPE, body, sizeof body - 1, DEFAULT_MAX, &o);
    if (o.status != MULTIPART_OK) fail_msg("%s", o.error);
    assert_int_equal(o.count, 3);
    assert_part(&o.parts[0], "plain", NULL, NULL, "1", 1);
    /* \" and \\ unescaped; other backslashes kept, as browsers send Windows paths. */
    assert_part(&o.parts[1], "quoted \"name\"", "C:\\dir\\a\\b.png", "image/png; q=1", "2", 1);
    assert_part(&o.parts[2], "", "", NULL, "3", 1);
    outcome_clear(&o);

    /* A name of 8000 bytes fits the 16 KiB of headers; headers of more than that do not. */
    size_t long_size = 20000;
    char *long_body = malloc(long_size + 200);
    assert_non_null(long_body);
    for (size_t name_len = 8000; name_len <= 17000; name_len += 9000) {
        int n = snprintf(long_body, 200, DASH CRLF "Content-Disposition: form-data; name=\"");
        memset(long_body + n, 'n', name_len);
        snprintf(long_body + n + name_len, 200, "\"" CRLF CRLF "v" CRLF DASH "--");
        parse_in_pieces(TYPE, long_body, strlen(long_body), DEFAULT_MAX, 1000, &o);
        if (name_len == 8000) {
            assert_int_equal(o.status, MULTIPART_OK);
            assert_int_equal(strlen(o.parts[0].name), name_len);
        } else {
            assert_int_equal(o.status, MULTIPART_MALFORMED);
            assert_non_null(strstr(o.error, "headers are over 16384 bytes"));
        }
        outcome_clear(&o);
    }
    free(long_body);
}

static void test_bad_part_headers(void **state)
{
    struct {
        const char *headers, *says;
    } cases[] = {
        {"", "no Content-Disposition"},
        {"Content-Type: text/plain" CRLF, "no Content-Disposition"},
        {"Content-Disposition: attachment; name=\"a\"" CRLF, "Content-Disposition"},
        {"Content-Disposition: form-data" CRLF, "Content-Disposition"},
        {"Content-Disposition: form-data; filename=\"f\"" CRLF, "Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"; name=\"b\"" CRLF, "Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''f" CRLF,
         "Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a" CRLF, "Content-Disposition"},
        {"Content-Disposition: form-data; name=a b" CRLF, "Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"" CRLF "Content-Disposition: form-data; "
         "name=\"b\"" CRLF,
         "Content-Disposition"},
        {"Content-Disposition: form-data; name=\"a\"" CRLF "Content-Type: a/b" CRLF
         "Content-Type: a/b" CRLF,
         "two Content-Type"},
        {"Content-Disposition: form-data; name=\"a\"" CRLF "Content-Transfer-Encoding: base64" CRLF,
         "Content-Transfer-Encoding"},
        {"Content-Disposition: form-data; name=\"a\"\n", "CRLF"},
        {"Content-Disposition: form-data; name=\"a\"\r" CRLF, "CRLF"},
        {"Content-Disposition: form-data; name=\"a\x01\"" CRLF, "control character"},
        {"Content-Disposition: form-data; name=\"a\"" CRLF "No colon" CRLF, "Name: value"},
        {"Content-Disposition: form-data; name=\"a\"" CRLF ": empty name" CRLF, "Name: value"},
        {" Content-Disposition: form-data; name=\"a\"" CRLF, "folded"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, DASH CRLF "%s" CRLF "v" CRLF DASH "--" CRLF, cases[i].headers);
        expect_refused(body, MULTIPART_MALFORMED, cases[i].says);
    }
}

/* Issue 14: a multipart/mixed part inside form-data (RFC 7578 §4.3 deprecates it) used to make
 * later fields arrive mislabelled, a policy read as an image. It is refused, whole. */
static void test_nested_multipart(void **state)
{
    struct body b = {0};
    add_part(&b, "seed", NULL, NULL, "7", 1);
    const char nested[] = "--inner" CRLF "Content-Disposition: file; filename=\"a.png\"" CRLF
                          "Content-Type: image/png" CRLF CRLF "PNG" CRLF "--inner--";
    add_part(&b, "image", NULL, "multipart/mixed; boundary=inner", nested, sizeof nested - 1);
    add_part(&b, "policy", NULL, NULL, "{\"ops\":[]}", 10);
    add_close(&b);
    struct outcome o;
    parse(TYPE, b.data, b.size, DEFAULT_MAX, &o);
    assert_int_equal(o.status, MULTIPART_NESTED);
    assert_non_null(strstr(o.error, "nested multipart: part 2 "));
    assert_int_equal(o.count, 0);
    assert_null(o.parts);
    free(b.data);

    /* Any multipart subtype, in any case, with a filename or not. */
    expect_refused(DASH CRLF "Content-Disposition: form-data; name=\"files\"; filename=\"x\"" CRLF
                             "Content-Type:  MultiPart/Alternative" CRLF CRLF "v" CRLF DASH "--",
                   MULTIPART_NESTED, "nested multipart: part 1 ");
}

/* A failure is final: later feeds do nothing and say it again, and the end says it too. */
static void test_failure_is_final(void **state)
{
    struct multipart *mp = NULL;
    assert_int_equal(multipart_begin(TYPE, DEFAULT_MAX, &mp), MULTIPART_OK);
    const char bad[] = DASH CRLF "Content-Disposition: form-data; name=\"a\"\n";
    assert_int_equal(multipart_feed(mp, bad, sizeof bad - 1), MULTIPART_MALFORMED);
    char error[256];
    snprintf(error, sizeof error, "%s", multipart_error(mp));
    const char good[] = CRLF CRLF "v" CRLF DASH "--";
    assert_int_equal(multipart_feed(mp, good, sizeof good - 1), MULTIPART_MALFORMED);
    struct request_part *parts = (struct request_part *)&parts;
    size_t count = 99;
    assert_int_equal(multipart_end(mp, &parts, &count), MULTIPART_MALFORMED);
    assert_null(parts);
    assert_int_equal(count, 0);
    assert_string_equal(multipart_error(mp), error);
    multipart_free(mp);
    multipart_free(NULL);
}

static void test_large_file(void **state)
{
    size_t size = 1u << 20;
    unsigned char *file = malloc(size);
    assert_non_null(file);
    assert_int_equal(RAND_bytes(file, (int)size), 1);
    struct body b = {0};
    add_part(&b, "meta", NULL, NULL, "{\"k\":1}", 7);
    add_part(&b, "big", "random.bin", "application/octet-stream", file, size);
    add_part(&b, "tail", NULL, NULL, "end", 3);
    struct outcome o;
    parse_closed(&b, 3, &o);
    assert_part(&o.parts[0], "meta", NULL, NULL, "{\"k\":1}", 7);
    assert_part(&o.parts[1], "big", "random.bin", "application/octet-stream", file, size);
    assert_part(&o.parts[2], "tail", NULL, NULL, "end", 3);
    outcome_clear(&o);
    free(file);
}

/* A sink that keeps what it is given, and refuses once it holds more than limit bytes. */
struct sink {
    struct body got;
    size_t limit;
    int calls;
};

static int sink_take(void *ctx, const char *data, size_t size)
{
    struct sink *k = ctx;
    k->calls++;
    if (k->got.size + size > k->limit) return -1;
    add(&k->got, data, size);
    return 0;
}

/* A streamed part goes to the sink, byte for byte however the body is cut, and is listed with an
 * empty value; the first part of its name alone is streamed, the other parts are held. */
static void test_streamed_part(void **state)
{
    const unsigned char value[] = "\x00\r\n" BOUNDARY "\r\n--\r-" DASH "x\xff";
    const size_t size = sizeof value - 1;
    struct body b = {0};
    add_part(&b, "name", NULL, NULL, "pets", 4);
    add_part(&b, "archive", "a.tar", "application/x-tar", value, size);
    add_part(&b, "archive", NULL, NULL, "kept", 4);
    add_close(&b);
    for (size_t piece = 1; piece <= b.size; piece++) {
        struct multipart *mp;
        assert_int_equal(multipart_begin(TYPE, DEFAULT_MAX, &mp), MULTIPART_OK);
        struct sink k = {.limit = SIZE_MAX};
        multipart_stream_part(mp, "archive", sink_take, &k);
        enum multipart_status status = MULTIPART_OK;
        for (size_t at = 0; at < b.size && status == MULTIPART_OK; at += piece)
            status = multipart_feed(mp, (const char *)b.data + at,
                                    b.size - at < piece ? b.size - at : piece);
        struct request_part *parts;
        size_t count;
        assert_int_equal(status, MULTIPART_OK);
        assert_int_equal(multipart_end(mp, &parts, &count), MULTIPART_OK);
        assert_int_equal(count, 3);
        assert_int_equal(k.got.size, size);
        assert_memory_equal(k.got.data, value, size);
        assert_part(&parts[0], "name", NULL, NULL, "pets", 4);
        assert_part(&parts[1], "archive", "a.tar", "application/x-tar", "", 0);
        assert_part(&parts[2], "archive", NULL, NULL, "kept", 4);
        multipart_free_parts(parts, count);
        multipart_free(mp);
        free(k.got.data);
    }
    /* A sink that refuses stops the parse, for good. */
    struct multipart *mp;
    assert_int_equal(multipart_begin(TYPE, DEFAULT_MAX, &mp), MULTIPART_OK);
    struct sink k = {.limit = 3};
    multipart_stream_part(mp, "archive", sink_take, &k);
    assert_int_equal(multipart_feed(mp, (const char *)b.data, b.size), MULTIPART_SINK_FAILED);
    assert_int_equal(multipart_feed(mp, "x", 1), MULTIPART_SINK_FAILED);
    assert_non_null(strstr(multipart_error(mp), "part 2"));
    multipart_free(mp);
    free(k.got.data);
    free(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_file),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_preamble_and_epilogue),
        cmocka_unit_test(test_no_parts),
        cmocka_unit_test(test_binary_value),
        cmocka_unit_test(test_boundary_inside_part),
        cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_max_parts),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_part_headers),
        cmocka_unit_test(test_bad_part_headers),
        cmocka_unit_test(test_nested_multipart),
        cmocka_unit_test(test_failure_is_final),
        cmocka_unit_test(test_large_file),
        cmocka_unit_test(test_streamed_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
