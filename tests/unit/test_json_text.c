/* json_text: the shortest reals that read back the same, everything else as jansson writes it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"

static void expect_text(json_t *doc, const char *want)
{
    char *text = json_text(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    assert_string_equal(text, want);
    free(text);
    json_decref(doc);
}

/* The forms Python's repr() gives (the shortest round trip), in jansson's exponent style. */
static void test_hand_cases(void **state)
{
    expect_text(json_pack("[f,f,f,f,f,f,f]", 0.95, 0.1, 1.0 / 3, 2.5, -0.0625, 3.0, (double)0.1f),
                "[0.95,0.1,0.3333333333333333,2.5,-0.0625,3.0,0.10000000149011612]");
    expect_text(json_pack("[f,f,f,f]", 1e-7, 1e300, -2.5e-310, 123456789012.5),
                "[1e-7,1e300,-2.5e-310,123456789012.5]");
    /* Integers, strings that look like reals, keys, escapes and nesting stay as they were. */
    expect_text(json_pack("{s:I,s:s,s:[f,{s:f}],s:s}", "n", (json_int_t)-12345678901234, "s",
                          "0.94999999999999996", "0.94999999999999996", 0.95, "k", 0.2, "q",
                          "a\"b\\\"c 1.50"),
                "{\"n\":-12345678901234,\"s\":\"0.94999999999999996\","
                "\"0.94999999999999996\":[0.95,{\"k\":0.2}],\"q\":\"a\\\"b\\\\\\\"c 1.50\"}");
    /* No reals: jansson's text as it is. */
    expect_text(json_pack("{s:[i,b,n]}", "a", 1, 1), "{\"a\":[1,true,null]}");
    assert_null(json_text(NULL, 0));
}

/* The significant digits of the number at s: its mantissa's, without leading or trailing zeros. */
static int significant_digits(const char *s)
{
    char digits[40];
    size_t n = 0;
    for (; *s && *s != 'e' && *s != ']'; s++)
        if (*s >= '0' && *s <= '9') digits[n++] = *s;
    size_t first = 0;
    while (first < n && digits[first] == '0')
        first++;
    while (n > first && digits[n - 1] == '0')
        n--;
    return n > first ? (int)(n - first) : 1;
}

/* Random doubles over the whole range: each reads back bit for bit, never longer than jansson's
 * 17 digits, and in no more digits than it needs unless that is longer. */
static void test_random_round_trips(void **state)
{
    uint64_t seed = 42;
    for (int trial = 0; trial < 20000; trial++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        double v;
        uint64_t bits = seed;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        if (trial % 2) v = (double)(trial % 1000) / 100.0; /* short decimals too */
        json_t *doc = json_pack("[f]", v);
        char *ours = json_text(doc, JSON_COMPACT), *theirs = json_dumps(doc, JSON_COMPACT);
        assert_non_null(ours);
        assert_true(strlen(ours) <= strlen(theirs));
        json_t *back = json_loads(ours, 0, NULL);
        assert_non_null(back);
        double got = json_real_value(json_array_get(back, 0));
        assert_memory_equal(&got, &v, sizeof v);
        /* As many significant digits as the fewest that read back, found by trying each. */
        int fewest = 1;
        char form[32];
        while (snprintf(form, sizeof form, "%.*g", fewest, v), strtod(form, NULL) != v)
            fewest++;
        /* Only where that form is the longer text (69250121237490488.0 against
         * 6.925012123749049e16) does jansson's stay. */
        if (significant_digits(ours + 1) != fewest) assert_string_equal(ours, theirs);
        json_decref(back);
        json_decref(doc);
        free(ours);
        free(theirs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
