/* Numbers from text: query parameters, form fields, config values, command-line flags. One set
 * of parsers, so that "12", "1e3" or "-0" read the same wherever a client writes them.
 *
 * Each takes the whole of text, written plainly: no leading or trailing space, no hex, no "inf"
 * or "nan" (strtol and strtod alone would take all of those). Each returns PARSE_OK with *out
 * set, or an error and *out unchanged: PARSE_NOT_A_NUMBER for text that is not one, PARSE_RANGE
 * for a number outside [min, max] (or past 64 bits), so the caller can say which. */
#ifndef AUGSERVE_ENGINE_CORE_PARSE_H
#define AUGSERVE_ENGINE_CORE_PARSE_H

enum parse_result {
    PARSE_OK = 0,
    PARSE_NOT_A_NUMBER = -1,
    PARSE_RANGE = -2,
};

/* Decimal digits only (no sign). */
enum parse_result parse_whole(const char *text, unsigned long long min, unsigned long long max,
                              unsigned long long *out);

/* Decimal digits with an optional leading '-'. */
enum parse_result parse_signed(const char *text, long long min, long long max, long long *out);

/* A finite decimal number as strtod reads it (a sign, digits, a point, an exponent), in
 * [min, max]. */
enum parse_result parse_real(const char *text, double min, double max, double *out);

#endif
