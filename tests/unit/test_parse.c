/* The number parsers every parameter, config value and flag goes through: what they take, what
 * they refuse, and how they tell junk from a number out of range. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>

#include "core/parse.h"

static void test_whole(void **state)
{
    unsigned long long v = 7;
    assert_int_equal(parse_whole("0", 0, 10, &v), PARSE_OK);
    assert_true(v == 0);
    assert_int_equal(parse_whole("0042", 0, 100, &v), PARSE_OK);
    assert_true(v == 42);
    assert_int_equal(parse_whole("18446744073709551615", 0, ULLONG_MAX, &v), PARSE_OK);
    assert_true(v == ULLONG_MAX);
    /* One past 2^64 - 1 is a number, but out of range. */
    v = 7;
    assert_int_equal(parse_whole("18446744073709551616", 0, ULLONG_MAX, &v), PARSE_RANGE);
    assert_int_equal(parse_whole("11", 0, 10, &v), PARSE_RANGE);
    assert_int_equal(parse_whole("0", 1, 10, &v), PARSE_RANGE);
    assert_true(v == 7);
    /* What strtoull alone would take. */
    static const char *const junk[] = {"",    " 1",  "1 ", "+1", "-1",  "0x10",
                                       "1.0", "1e3", "1a", "١",  "1\n", NULL};
    for (int i = 0; junk[i]; i++)
        assert_int_equal(parse_whole(junk[i], 0, ULLONG_MAX, &v), PARSE_NOT_A_NUMBER);
    assert_int_equal(parse_whole(NULL, 0, 1, &v), PARSE_NOT_A_NUMBER);
    assert_true(v == 7);
}

static void test_signed(void **state)
{
    long long v = 7;
    assert_int_equal(parse_signed("-12", -100, 100, &v), PARSE_OK);
    assert_true(v == -12);
    assert_int_equal(parse_signed("-0", -1, 1, &v), PARSE_OK);
    assert_true(v == 0);
    assert_int_equal(parse_signed("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v), PARSE_OK);
    assert_true(v == LLONG_MIN);
    assert_int_equal(parse_signed("9223372036854775808", LLONG_MIN, LLONG_MAX, &v), PARSE_RANGE);
    assert_int_equal(parse_signed("-101", -100, 100, &v), PARSE_RANGE);
    static const char *const junk[] = {"", "-", "--1", "+1", " -1", "1-", "- 1", NULL};
    for (int i = 0; junk[i]; i++)
        assert_int_equal(parse_signed(junk[i], LLONG_MIN, LLONG_MAX, &v), PARSE_NOT_A_NUMBER);
    assert_true(v == LLONG_MIN);
}

static void test_real(void **state)
{
    double v = 7;
    assert_int_equal(parse_real("0.25", 0, 1, &v), PARSE_OK);
    assert_true(v == 0.25);
    assert_int_equal(parse_real("-1e-3", -1, 1, &v), PARSE_OK);
    assert_true(v == -0.001);
    assert_int_equal(parse_real(".5", 0, 1, &v), PARSE_OK);
    assert_true(v == 0.5);
    assert_int_equal(parse_real("+2.", -DBL_MAX, DBL_MAX, &v), PARSE_OK);
    assert_true(v == 2);
    v = 7;
    assert_int_equal(parse_real("1.0000001", 0, 1, &v), PARSE_RANGE);
    assert_int_equal(parse_real("1e999", -DBL_MAX, DBL_MAX, &v), PARSE_RANGE);
    static const char *const junk[] = {"",    " 1",       "1 ", "inf", "nan",  "0x1p3",
                                       "1e",  "e1",       ".",  "-",   "1..",  "1,5",
                                       "1e+", "infinity", "1f", "--1", "1e3e", NULL};
    for (int i = 0; junk[i]; i++)
        assert_int_equal(parse_real(junk[i], -DBL_MAX, DBL_MAX, &v), PARSE_NOT_A_NUMBER);
    assert_int_equal(parse_real(NULL, 0, 1, &v), PARSE_NOT_A_NUMBER);
    assert_true(v == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_signed),
        cmocka_unit_test(test_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
