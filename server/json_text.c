#include "json_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_real(const json_t *v)
{
    if (json_is_real(v)) return 1;
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, item)
        {
            if (has_real(item)) return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (has_real(item)) return 1;
        }
    }
    return 0;
}

/* value as %.*g with jansson's touches: ".0" when it would read as an integer, and no '+' or
 * leading zeros in the exponent (1e-8, 1e20). Returns the length written to out (32 bytes). */
static size_t format_real(double value, int digits, char out[32])
{
    char raw[32];
    snprintf(raw, sizeof raw, "%.*g", digits, value);
    size_t n = 0;
    for (const char *p = raw; *p; p++) {
        out[n++] = *p;
        if (*p == 'e') {
            if (p[1] == '+' || p[1] == '-') {
                if (p[1] == '-') out[n++] = '-';
                p++;
            }
            while (p[1] == '0' && p[2])
                p++;
        }
    }
    out[n] = '\0';
    if (!strpbrk(out, ".e")) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return n;
}

/* The shortest form of the real token at s (len bytes, as jansson wrote it) into out; 0 when
 * there is none shorter. */
static size_t shortest(const char *s, size_t len, char out[32])
{
    char token[32];
    if (len >= sizeof token) return 0;
    memcpy(token, s, len);
    token[len] = '\0';
    double value = strtod(token, NULL);
    for (int digits = 1; digits <= 17; digits++) {
        size_t n = format_real(value, digits, out);
        if (strtod(out, NULL) == value) return n < len ? n : 0;
    }
    return 0;
}

char *json_text(const json_t *doc, size_t flags)
{
    char *text = doc ? json_dumps(doc, flags) : NULL;
    if (!text || !has_real(doc)) return text;
    /* Rewritten in place: a token never grows, so the writer stays behind the reader. */
    char *w = text;
    const char *r = text;
    while (*r) {
        if (*r == '"') {
            /* strcspn runs through long strings (base64 images) far faster than a byte loop. */
            const char *end = r + 1;
            while (*(end += strcspn(end, "\"\\")) != '"')
                end += 2; /* a backslash and the character it escapes */
            size_t n = (size_t)(end + 1 - r);
            if (w != r) memmove(w, r, n);
            w += n;
            r += n;
            continue;
        }
        if (*r != '-' && (*r < '0' || *r > '9')) {
            *w++ = *r++;
            continue;
        }
        size_t len = strspn(r, "0123456789+-.eE");
        char out[32];
        size_t n = memchr(r, '.', len) || memchr(r, 'e', len) || memchr(r, 'E', len)
                       ? shortest(r, len, out)
                       : 0;
        if (n) {
            memcpy(w, out, n);
            w += n;
        } else {
            if (w != r) memmove(w, r, len);
            w += len;
        }
        r += len;
    }
    *w = '\0';
    return text;
}

int json_check_members(const json_t *obj, const char *const names[], const char *prefix,
                       const char *what, struct eng_error *err)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        size_t i = 0;
        while (names[i] && strcmp(names[i], key) != 0)
            i++;
        if (!names[i]) {
            char list[256] = "";
            for (size_t k = 0, used = 0; names[k] && used < sizeof list; k++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "",
                                         names[k]);
            return eng_fail(err, ENG_INVALID, "%s%.100s: unknown %s; known: %s", prefix, key, what,
                            list);
        }
    }
    return 0;
}
