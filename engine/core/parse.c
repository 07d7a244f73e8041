#include "core/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether text is one or more decimal digits and nothing else. */
static int all_digits(const char *text)
{
    size_t n = strspn(text, "0123456789");
    return n > 0 && text[n] == '\0';
}

enum parse_result parse_whole(const char *text, unsigned long long min, unsigned long long max,
                              unsigned long long *out)
{
    if (!text || !all_digits(text)) return PARSE_NOT_A_NUMBER;
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v < min || v > max) return PARSE_RANGE;
    *out = v;
    return PARSE_OK;
}

enum parse_result parse_signed(const char *text, long long min, long long max, long long *out)
{
    if (!text || !all_digits(text[0] == '-' ? text + 1 : text)) return PARSE_NOT_A_NUMBER;
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno == ERANGE || v < min || v > max) return PARSE_RANGE;
    *out = v;
    return PARSE_OK;
}

enum parse_result parse_real(const char *text, double min, double max, double *out)
{
    /* Only the characters of a plain decimal: strtod would also skip leading space and read hex,
     * "inf" and "nan". */
    if (!text || !*text || text[strspn(text, "0123456789+-.eE")] != '\0') return PARSE_NOT_A_NUMBER;
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0') return PARSE_NOT_A_NUMBER;
    if (!isfinite(v) || v < min || v > max) return PARSE_RANGE;
    *out = v;
    return PARSE_OK;
}
