/* Unit tests of server/auth.c. Key hashes come from the published SHA-256 test vectors (FIPS
 * 180-2 examples), so the expectations do not depend on the code under test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth.h"
#include "config.h"

/* SHA-256("abc") and SHA-256("") (FIPS 180-2, appendix B.1; and the empty message). */
#define SHA256_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* SHA-256 of the 448-bit message of FIPS 180-2, appendix B.2. */
#define MSG_448    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define SHA256_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

#define BASE64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* Two keys: "abc" (name "ci", augment + infer) and MSG_448 (name "ops", admin). */
struct fixture {
    struct config cfg;
    struct config_api_key keys[2];
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    f.keys[0].name = "ci";
    f.keys[0].scopes = AUTH_SCOPE_AUGMENT | AUTH_SCOPE_INFER;
    if (config_parse_sha256_hex(SHA256_ABC, f.keys[0].sha256) != 0) return -1;
    f.keys[1].name = "ops";
    f.keys[1].scopes = AUTH_SCOPE_ADMIN;
    if (config_parse_sha256_hex(SHA256_448, f.keys[1].sha256) != 0) return -1;
    f.cfg.api_keys = f.keys;
    f.cfg.api_key_count = 2;
    *state = &f;
    return 0;
}

static const struct config *keyed(void **state)
{
    return &((struct fixture *)*state)->cfg;
}

static void test_no_keys(void **state)
{
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *headers[] = {NULL, "", "Bearer abc", "Basic abc", "Bearer ", "nonsense"};
    unsigned scopes[] = {0, AUTH_SCOPE_AUGMENT, AUTH_SCOPE_ADMIN};
    for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++)
        for (size_t s = 0; s < sizeof scopes / sizeof scopes[0]; s++) {
            const char *name = "stale";
            assert_int_equal(auth_check(&cfg, headers[h], scopes[s], &name), AUTH_OK);
            assert_null(name);
        }
}

static void test_missing(void **state)
{
    const char *name = "stale";
    assert_int_equal(auth_check(keyed(state), NULL, 0, &name), AUTH_MISSING);
    assert_null(name);
    assert_int_equal(auth_check(keyed(state), NULL, AUTH_SCOPE_ADMIN, NULL), AUTH_MISSING);
}

static void test_wrong_scheme(void **state)
{
    const char *headers[] = {
        "Basic YWJj", "Token abc",   "abc",      "Bearerabc",   "Bearer",
        "",           " Bearer abc", "Bear abc", "Bearer\tabc",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        const char *name = "stale";
        enum auth_result r = auth_check(keyed(state), headers[i], 0, &name);
        if (r != AUTH_INVALID) fail_msg("\"%s\": %d, not AUTH_INVALID", headers[i], r);
        assert_null(name);
    }
}

static void test_empty_token(void **state)
{
    assert_int_equal(auth_check(keyed(state), "Bearer ", 0, NULL), AUTH_INVALID);
    assert_int_equal(auth_check(keyed(state), "Bearer     ", 0, NULL), AUTH_INVALID);
    assert_int_equal(auth_check(keyed(state), "bearer ", AUTH_SCOPE_AUGMENT, NULL), AUTH_INVALID);
}

static void test_unknown_key(void **state)
{
    const char *tokens[] = {"Bearer abd", "Bearer ab",   "Bearer abcd",
                            "Bearer ABC", "Bearer abc ", ("Bearer " SHA256_ABC)};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        const char *name = "stale";
        enum auth_result r = auth_check(keyed(state), tokens[i], 0, &name);
        if (r != AUTH_INVALID) fail_msg("\"%s\": %d, not AUTH_INVALID", tokens[i], r);
        assert_null(name);
    }
}

static void test_right_key(void **state)
{
    const char *name = NULL;
    assert_int_equal(auth_check(keyed(state), "Bearer abc", AUTH_SCOPE_AUGMENT, &name), AUTH_OK);
    assert_non_null(name);
    assert_string_equal(name, "ci");
    name = NULL;
    assert_int_equal(auth_check(keyed(state), "Bearer abc", AUTH_SCOPE_INFER, &name), AUTH_OK);
    assert_string_equal(name, "ci");
    name = NULL;
    assert_int_equal(auth_check(keyed(state), "Bearer " MSG_448, AUTH_SCOPE_ADMIN, &name), AUTH_OK);
    assert_string_equal(name, "ops");
    /* key_name may be NULL. */
    assert_int_equal(auth_check(keyed(state), "Bearer abc", AUTH_SCOPE_AUGMENT, NULL), AUTH_OK);
    /* Several spaces after the scheme (RFC 6750: 1*SP). */
    assert_int_equal(auth_check(keyed(state), "Bearer    abc", AUTH_SCOPE_AUGMENT, NULL), AUTH_OK);
}

static void test_missing_scope(void **state)
{
    assert_int_equal(auth_check(keyed(state), "Bearer abc", AUTH_SCOPE_ADMIN, NULL),
                     AUTH_FORBIDDEN);
    assert_int_equal(auth_check(keyed(state), "Bearer abc", AUTH_SCOPE_JOBS, NULL), AUTH_FORBIDDEN);
    assert_int_equal(auth_check(keyed(state), "Bearer " MSG_448, AUTH_SCOPE_AUGMENT, NULL),
                     AUTH_FORBIDDEN);
    assert_int_equal(auth_check(keyed(state), "Bearer " MSG_448, AUTH_SCOPE_INFER, NULL),
                     AUTH_FORBIDDEN);
}

static void test_scope_zero(void **state)
{
    const char *name = NULL;
    assert_int_equal(auth_check(keyed(state), "Bearer abc", 0, &name), AUTH_OK);
    assert_string_equal(name, "ci");
    name = NULL;
    assert_int_equal(auth_check(keyed(state), "Bearer " MSG_448, 0, &name), AUTH_OK);
    assert_string_equal(name, "ops");

    /* A key holding no scope at all is still a valid key. */
    struct config_api_key bare = {.name = "bare", .scopes = 0};
    assert_int_equal(config_parse_sha256_hex(SHA256_ABC, bare.sha256), 0);
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.api_keys = &bare;
    cfg.api_key_count = 1;
    name = NULL;
    assert_int_equal(auth_check(&cfg, "Bearer abc", 0, &name), AUTH_OK);
    assert_string_equal(name, "bare");
    assert_int_equal(auth_check(&cfg, "Bearer abc", AUTH_SCOPE_AUGMENT, NULL), AUTH_FORBIDDEN);
}

static void test_scheme_case_insensitive(void **state)
{
    const char *headers[] = {"bearer abc", "BEARER abc", "BeArEr abc", "bEARER abc"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        const char *name = NULL;
        assert_int_equal(auth_check(keyed(state), headers[i], AUTH_SCOPE_INFER, &name), AUTH_OK);
        assert_string_equal(name, "ci");
    }
}

static void test_hash_vectors(void **state)
{
    char hex[65];
    memset(hex, 'z', sizeof hex);
    auth_hash_hex("abc", hex);
    assert_string_equal(hex, SHA256_ABC);
    memset(hex, 'z', sizeof hex);
    auth_hash_hex("", hex);
    assert_string_equal(hex, SHA256_EMPTY);
    memset(hex, 'z', sizeof hex);
    auth_hash_hex(MSG_448, hex);
    assert_string_equal(hex, SHA256_448);
}

static int base64url_value(char c)
{
    const char *hit = strchr(BASE64URL, c);
    return c && hit ? (int)(hit - BASE64URL) : -1;
}

static void test_generate_key(void **state)
{
    char key1[64], hash1[65], key2[64], hash2[65];
    memset(key1, 'z', sizeof key1);
    memset(key2, 'z', sizeof key2);
    assert_int_equal(auth_generate_key(key1, hash1), 0);
    assert_int_equal(auth_generate_key(key2, hash2), 0);
    assert_int_equal(strlen(key1), 43);
    assert_int_equal(strlen(key2), 43);
    for (size_t i = 0; i < 43; i++) {
        assert_true(base64url_value(key1[i]) >= 0);
        assert_true(base64url_value(key2[i]) >= 0);
    }
    /* 32 bytes are 256 bits = 42 characters of 6 bits plus 4 bits: the last character's two
     * low bits are padding and must be zero. */
    assert_int_equal(base64url_value(key1[42]) & 3, 0);
    assert_int_equal(base64url_value(key2[42]) & 3, 0);
    assert_string_not_equal(key1, key2);
    assert_string_not_equal(hash1, hash2);

    assert_int_equal(strlen(hash1), 64);
    assert_int_equal(strspn(hash1, "0123456789abcdef"), 64);
    char expected[65];
    auth_hash_hex(key1, expected);
    assert_string_equal(hash1, expected);
    auth_hash_hex(key2, expected);
    assert_string_equal(hash2, expected);

    /* The generated key authenticates against its own hash. */
    struct config_api_key k = {.name = "gen", .scopes = AUTH_SCOPE_JOBS};
    assert_int_equal(config_parse_sha256_hex(hash1, k.sha256), 0);
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.api_keys = &k;
    cfg.api_key_count = 1;
    char header[80];
    strcpy(header, "Bearer ");
    strcat(header, key1);
    assert_int_equal(auth_check(&cfg, header, AUTH_SCOPE_JOBS, NULL), AUTH_OK);
    strcpy(header + 7, key2);
    assert_int_equal(auth_check(&cfg, header, AUTH_SCOPE_JOBS, NULL), AUTH_INVALID);
}

static void test_scope_names(void **state)
{
    struct {
        const char *name;
        unsigned bit;
    } scopes[] = {
        {"augment", AUTH_SCOPE_AUGMENT},
        {"infer", AUTH_SCOPE_INFER},
        {"jobs", AUTH_SCOPE_JOBS},
        {"admin", AUTH_SCOPE_ADMIN},
    };
    for (size_t i = 0; i < sizeof scopes / sizeof scopes[0]; i++) {
        assert_int_equal(auth_scope_from_name(scopes[i].name), scopes[i].bit);
        const char *name = auth_scope_name(scopes[i].bit);
        assert_non_null(name);
        assert_string_equal(name, scopes[i].name);
        assert_int_equal(auth_scope_from_name(auth_scope_name(scopes[i].bit)), scopes[i].bit);
    }
    const char *unknown[] = {"",       "Admin", "ADMIN",         "admin ",
                             " admin", "adm",   "administrator", "read"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal(auth_scope_from_name(unknown[i]), 0);
    assert_null(auth_scope_name(0));
    assert_null(auth_scope_name(AUTH_SCOPE_AUGMENT | AUTH_SCOPE_INFER));
    assert_null(auth_scope_name(AUTH_SCOPE_ADMIN << 1));
    assert_null(auth_scope_name(~0u));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_keys),
        cmocka_unit_test_setup(test_missing, setup),
        cmocka_unit_test_setup(test_wrong_scheme, setup),
        cmocka_unit_test_setup(test_empty_token, setup),
        cmocka_unit_test_setup(test_unknown_key, setup),
        cmocka_unit_test_setup(test_right_key, setup),
        cmocka_unit_test_setup(test_missing_scope, setup),
        cmocka_unit_test_setup(test_scope_zero, setup),
        cmocka_unit_test_setup(test_scheme_case_insensitive, setup),
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_generate_key),
        cmocka_unit_test(test_scope_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
