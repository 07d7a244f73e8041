/* Unit tests of server/config.c. Optional argv[1]: the source tree's config/augserve.json, which
 * must equal config_to_json of the defaults byte for byte (its schema is checked next to it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "config.h"

#define ERR_SIZE 512
#define H1       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H1_UPPER "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
#define H2       "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static const char *defaults_path;

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!strstr(h_, n_)) fail_msg("\"%s\" does not contain \"%s\"", h_, n_);                   \
    } while (0)

static void write_temp(char path[64], const char *text)
{
    strcpy(path, "/tmp/augserve-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), len);
    assert_int_equal(close(fd), 0);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) free(buf);
            assert_non_null(bigger);
            buf = bigger;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Loads with a temporary file holding file_text (NULL: no file). */
static int load(struct config *cfg, const char *file_text, char *const envp[], int argc,
                char *const argv[], struct eng_error *err)
{
    char path[64];
    if (file_text) write_temp(path, file_text);
    int rc = config_load(cfg, file_text ? path : NULL, envp, argc, argv, err);
    if (file_text) unlink(path);
    return rc;
}

static void expect_ok(struct config *cfg, const char *file_text, char *const envp[], int argc,
                      char *const argv[])
{
    struct eng_error err;
    if (load(cfg, file_text, envp, argc, argv, &err)) fail_msg("unexpected error: %s", err.message);
}

/* Asserts the load fails, leaves cfg empty and says each of needle1 and needle2 (if not NULL). */
static void expect_error(const char *file_text, char *const envp[], int argc, char *const argv[],
                         const char *needle1, const char *needle2)
{
    struct config cfg, zero;
    struct eng_error err;
    memset(&cfg, 0xab, sizeof cfg);
    memset(&zero, 0, sizeof zero);
    assert_int_equal(load(&cfg, file_text, envp, argc, argv, &err), -1);
    assert_memory_equal(&cfg, &zero, sizeof cfg);
    assert_contains(err.message, needle1);
    if (needle2) assert_contains(err.message, needle2);
}

static void expect_file_error(const char *file_text, const char *needle1, const char *needle2)
{
    expect_error(file_text, NULL, 0, NULL, needle1, needle2);
}

static void expect_flag_error(const char *flag, const char *value, const char *needle1,
                              const char *needle2)
{
    char *argv[] = {(char *)flag, (char *)value};
    expect_error(NULL, NULL, value ? 2 : 1, argv, needle1, needle2);
}

static void assert_defaults(const struct config *c)
{
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_int_equal(c->io_threads, 2);
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->queue, 64);
    assert_int_equal(c->connection_limit, 1000);
    assert_int_equal(c->connection_timeout_s, 30);
    assert_int_equal(c->header_timeout_s, 10);
    assert_int_equal(c->body_timeout_s, 120);
    assert_int_equal(c->max_connections_per_client, 64);
    assert_int_equal(c->connection_memory_limit, 131072);
    assert_int_equal(c->max_uri_bytes, 8192);
    assert_true(c->max_body_bytes == 67108864);
    assert_int_equal(c->max_parts, 64);
    assert_int_equal(c->shutdown_grace_s, 10);
    assert_string_equal(c->static_dir, "static");
    assert_string_equal(c->data_dir, "var");
    assert_string_equal(c->access_log, "stderr");
    assert_int_equal(c->debug_routes, 0);
    assert_null(c->api_keys);
    assert_int_equal(c->api_key_count, 0);
}

static void assert_same_config(const struct config *a, const struct config *b)
{
    assert_string_equal(a->listen, b->listen);
    assert_int_equal(a->io_threads, b->io_threads);
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->queue, b->queue);
    assert_int_equal(a->connection_limit, b->connection_limit);
    assert_int_equal(a->connection_timeout_s, b->connection_timeout_s);
    assert_int_equal(a->header_timeout_s, b->header_timeout_s);
    assert_int_equal(a->body_timeout_s, b->body_timeout_s);
    assert_int_equal(a->max_connections_per_client, b->max_connections_per_client);
    assert_int_equal(a->connection_memory_limit, b->connection_memory_limit);
    assert_int_equal(a->max_uri_bytes, b->max_uri_bytes);
    assert_true(a->max_body_bytes == b->max_body_bytes);
    assert_int_equal(a->max_parts, b->max_parts);
    assert_int_equal(a->shutdown_grace_s, b->shutdown_grace_s);
    assert_string_equal(a->static_dir, b->static_dir);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_string_equal(a->access_log, b->access_log);
    assert_int_equal(a->debug_routes, b->debug_routes);
    assert_int_equal(a->api_key_count, b->api_key_count);
    for (size_t i = 0; i < a->api_key_count; i++) {
        assert_string_equal(a->api_keys[i].name, b->api_keys[i].name);
        assert_memory_equal(a->api_keys[i].sha256, b->api_keys[i].sha256, 32);
        assert_int_equal(a->api_keys[i].scopes, b->api_keys[i].scopes);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    assert_defaults(&cfg);
    config_free(&cfg);

    /* An empty object and an empty environment change nothing. */
    char *env[] = {NULL};
    expect_ok(&cfg, "{}", env, 0, NULL);
    assert_defaults(&cfg);
    config_free(&cfg);
}

static void test_file_overrides(void **state)
{
    (void)state;
    struct config cfg;
    expect_ok(&cfg,
              "{\"listen\": \"0.0.0.0:9000\", \"workers\": 3, \"max_body_bytes\": 1099511627776,"
              " \"static_dir\": \"/srv/ui\", \"debug_routes\": true, \"access_log\": \"off\"}",
              NULL, 0, NULL);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_int_equal(cfg.workers, 3);
    assert_true(cfg.max_body_bytes == INT64_C(1099511627776));
    assert_string_equal(cfg.static_dir, "/srv/ui");
    assert_int_equal(cfg.debug_routes, 1);
    assert_string_equal(cfg.access_log, "off");
    /* Untouched keys keep their defaults. */
    assert_int_equal(cfg.queue, 64);
    assert_string_equal(cfg.data_dir, "var");
    config_free(&cfg);
}

static void test_env_overrides_file(void **state)
{
    (void)state;
    struct config cfg;
    char *env[] = {"PATH=/usr/bin",
                   "AUGSERVE_QUEUE=7",
                   "AUGSERVE_DATA_DIR=/data",
                   "AUGSERVE_DEBUG_ROUTES=yes",
                   "AUGSERVE_MAX_BODY_BYTES=5000000000",
                   NULL};
    expect_ok(&cfg, "{\"queue\": 5, \"data_dir\": \"d\", \"workers\": 4}", env, 0, NULL);
    assert_int_equal(cfg.queue, 7);
    assert_string_equal(cfg.data_dir, "/data");
    assert_int_equal(cfg.debug_routes, 1);
    assert_true(cfg.max_body_bytes == INT64_C(5000000000));
    assert_int_equal(cfg.workers, 4);
    config_free(&cfg);
}

static void test_flags_override_env(void **state)
{
    (void)state;
    struct config cfg;
    char *env[] = {"AUGSERVE_QUEUE=7", "AUGSERVE_WORKERS=8", "AUGSERVE_LISTEN=[::1]:1", NULL};
    char *separate[] = {"--queue", "9", "--listen", "localhost:0"};
    expect_ok(&cfg, "{\"queue\": 5}", env, 4, separate);
    assert_int_equal(cfg.queue, 9);
    assert_string_equal(cfg.listen, "localhost:0");
    assert_int_equal(cfg.workers, 8);
    config_free(&cfg);

    char *joined[] = {"--queue=11", "--max-body-bytes=5", "--access-log=/var/log/a=b.log"};
    expect_ok(&cfg, NULL, env, 3, joined);
    assert_int_equal(cfg.queue, 11);
    assert_true(cfg.max_body_bytes == 5);
    /* Only the first '=' separates the flag from its value. */
    assert_string_equal(cfg.access_log, "/var/log/a=b.log");
    config_free(&cfg);

    /* The last of repeated flags wins. */
    char *repeated[] = {"--queue", "3", "--queue=4"};
    expect_ok(&cfg, NULL, NULL, 3, repeated);
    assert_int_equal(cfg.queue, 4);
    config_free(&cfg);
}

static void test_unknown_file_key(void **state)
{
    (void)state;
    char path[64], want[ERR_SIZE];
    struct eng_error err;
    struct config cfg;
    write_temp(path, "{\"queue\": 1, \"max_bodybytes\": 5}");
    assert_int_equal(config_load(&cfg, path, NULL, 0, NULL, &err), -1);
    unlink(path);
    snprintf(want, sizeof want, "config file %s: unknown key \"max_bodybytes\"", path);
    assert_string_equal(err.message, want);
}

static void test_unknown_flag(void **state)
{
    (void)state;
    expect_flag_error("--max-bodybytes", "5", "--max-bodybytes", NULL);
    expect_flag_error("--max-bodybytes=5", NULL, "unknown flag --max-bodybytes", NULL);
    expect_flag_error("--max_body_bytes", "5", "--max_body_bytes", NULL);
    expect_flag_error("--", NULL, "unknown flag", NULL);
    expect_flag_error("queue", "5", "unexpected argument \"queue\"", NULL);
    expect_flag_error("-q", "5", "unexpected argument \"-q\"", NULL);
}

static void test_flag_missing_value(void **state)
{
    (void)state;
    expect_flag_error("--queue", NULL, "flag --queue", "missing its value");
    char *argv[] = {"--listen", "--queue", "5"};
    expect_error(NULL, NULL, 3, argv, "flag --listen", "missing its value");
    /* An empty value is a value, and a bad one. */
    expect_flag_error("--queue=", NULL, "flag --queue", "not a whole decimal number");
    expect_flag_error("--static-dir=", NULL, "\"static_dir\"", "must not be empty");
}

static void test_unknown_env(void **state)
{
    (void)state;
    char *env[] = {"HOME=/root", "AUGSERVE_MAX_BODYBYTES=5", NULL};
    expect_error(NULL, env, 0, NULL, "AUGSERVE_MAX_BODYBYTES", NULL);
    char *lower[] = {"AUGSERVE_queue=5", NULL};
    expect_error(NULL, lower, 0, NULL, "AUGSERVE_queue", NULL);

    /* Variables without the full prefix are someone else's. */
    struct config cfg;
    char *others[] = {"AUGSERVEX=1", "AUGSERVE=2", "MY_AUGSERVE_QUEUE=3", NULL};
    expect_ok(&cfg, NULL, others, 0, NULL);
    assert_defaults(&cfg);
    config_free(&cfg);
}

static void test_env_config_ignored(void **state)
{
    (void)state;
    struct config cfg;
    char *env[] = {"AUGSERVE_CONFIG=/nonexistent/augserve.json", "AUGSERVE_QUEUE=3", NULL};
    expect_ok(&cfg, NULL, env, 0, NULL);
    assert_int_equal(cfg.queue, 3);
    config_free(&cfg);
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_file_error("{\"workers\": \"2\"}", "\"workers\": expected an integer", NULL);
    expect_file_error("{\"max_body_bytes\": 1.5}", "\"max_body_bytes\": expected an integer", NULL);
    expect_file_error("{\"queue\": null}", "\"queue\": expected an integer", NULL);
    expect_file_error("{\"debug_routes\": 1}", "\"debug_routes\": expected true or false", NULL);
    expect_file_error("{\"listen\": 8080}", "\"listen\": expected a string", NULL);
    expect_file_error("{\"static_dir\": [\"a\"]}", "\"static_dir\": expected a string", NULL);
    expect_file_error("{\"api_keys\": {}}", "\"api_keys\": expected an array", NULL);
}

struct range_case {
    const char *key;
    long long min, max;
};

static void test_range(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {"io_threads", 1, 256},
        {"workers", 0, 1024},
        {"queue", 0, 100000},
        {"connection_limit", 1, 100000},
        {"connection_timeout_s", 1, 3600},
        {"header_timeout_s", 0, 3600},
        {"body_timeout_s", 0, 86400},
        {"max_connections_per_client", 0, 100000},
        {"connection_memory_limit", 16384, 16777216},
        {"max_uri_bytes", 256, 1048576},
        {"max_body_bytes", 1, 1099511627776LL},
        {"max_parts", 1, 10000},
        {"shutdown_grace_s", 0, 3600},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct range_case *c = &cases[i];
        char text[128], want[128];
        struct config cfg;
        long long ok_values[] = {c->min, c->max};
        for (size_t v = 0; v < 2; v++) {
            snprintf(text, sizeof text, "{\"%s\": %lld}", c->key, ok_values[v]);
            expect_ok(&cfg, text, NULL, 0, NULL);
            char *json = config_to_json(&cfg, 0);
            assert_non_null(json);
            snprintf(want, sizeof want, "\"%s\": %lld,", c->key, ok_values[v]);
            assert_contains(json, want);
            free(json);
            config_free(&cfg);
        }
        long long bad_values[] = {c->min - 1, c->max + 1};
        for (size_t v = 0; v < 2; v++) {
            snprintf(text, sizeof text, "{\"%s\": %lld}", c->key, bad_values[v]);
            snprintf(want, sizeof want, "\"%s\": %lld is out of range [%lld, %lld]", c->key,
                     bad_values[v], c->min, c->max);
            expect_file_error(text, want, NULL);
        }
    }
    /* Values past the int range must not wrap into it. */
    expect_file_error("{\"queue\": 4294967360}", "out of range", NULL);
    expect_file_error("{\"queue\": 99999999999999999999}", "invalid JSON", NULL);
}

static void test_env_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {"12x", "",  " 5",  "5 ",  "+5",      "0x10",
                                      "1.0", "-", "--1", "1e3", "\xd9\xa3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char var[64];
        snprintf(var, sizeof var, "AUGSERVE_QUEUE=%s", bad[i]);
        char *env[] = {var, NULL};
        expect_error(NULL, env, 0, NULL, "environment variable AUGSERVE_QUEUE",
                     "not a whole decimal number");
    }
    char *overflow[] = {"AUGSERVE_MAX_BODY_BYTES=99999999999999999999", NULL};
    expect_error(NULL, overflow, 0, NULL, "AUGSERVE_MAX_BODY_BYTES", "too large");
    char *negative[] = {"AUGSERVE_QUEUE=-1", NULL};
    expect_error(NULL, negative, 0, NULL, "AUGSERVE_QUEUE", "-1 is out of range [0, 100000]");

    struct config cfg;
    char *zeros[] = {"AUGSERVE_QUEUE=0012", "AUGSERVE_WORKERS=-0", NULL};
    expect_ok(&cfg, NULL, zeros, 0, NULL);
    assert_int_equal(cfg.queue, 12);
    assert_int_equal(cfg.workers, 0);
    config_free(&cfg);
}

static void test_bool(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int value;
    } good[] = {{"true", 1},  {"TRUE", 1},  {"1", 1}, {"yes", 1}, {"Yes", 1},
                {"false", 0}, {"False", 0}, {"0", 0}, {"no", 0},  {"NO", 0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char var[64], flag[64];
        struct config cfg;
        snprintf(var, sizeof var, "AUGSERVE_DEBUG_ROUTES=%s", good[i].text);
        char *env[] = {var, NULL};
        /* The file says the opposite, so the value must come from the environment. */
        expect_ok(&cfg, good[i].value ? "{\"debug_routes\": false}" : "{\"debug_routes\": true}",
                  env, 0, NULL);
        assert_int_equal(cfg.debug_routes, good[i].value);
        config_free(&cfg);

        snprintf(flag, sizeof flag, "--debug-routes=%s", good[i].text);
        char *argv[] = {flag};
        expect_ok(&cfg, good[i].value ? "{\"debug_routes\": false}" : "{\"debug_routes\": true}",
                  NULL, 1, argv);
        assert_int_equal(cfg.debug_routes, good[i].value);
        config_free(&cfg);
    }
    static const char bad[][8] = {"maybe", "", "2", "on", "truee", " true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_flag_error("--debug-routes", bad[i], "flag --debug-routes", "not a boolean");
        char var[128];
        snprintf(var, sizeof var, "AUGSERVE_DEBUG_ROUTES=%s", bad[i]);
        char *env[] = {var, NULL};
        expect_error(NULL, env, 0, NULL, "AUGSERVE_DEBUG_ROUTES", "not a boolean");
    }
}

static void test_invalid_json(void **state)
{
    (void)state;
    expect_file_error("{\n  \"queue\": 1,\n  oops\n}\n", "invalid JSON at line 3", NULL);
    expect_file_error("{\"queue\": 1,}", "invalid JSON at line 1", NULL);
    expect_file_error("", "invalid JSON", NULL);
    expect_file_error("{\"queue\": 1} {}", "invalid JSON", NULL);
    expect_file_error("{\"queue\": 1, \"queue\": 2}", "duplicate", NULL);
    expect_file_error("[]", "top level must be a JSON object", NULL);

    struct eng_error err;
    struct config cfg;
    assert_int_equal(config_load(&cfg, "/nonexistent/augserve.json", NULL, 0, NULL, &err), -1);
    assert_contains(err.message, "config file /nonexistent/augserve.json: cannot open");
    assert_int_equal(config_load(&cfg, "/tmp", NULL, 0, NULL, &err), -1);
    assert_contains(err.message, "config file /tmp: is a directory");
}

static void test_listen(void **state)
{
    (void)state;
    static const char *const good[] = {"0.0.0.0:80",        "[::1]:8080",  "localhost:0",
                                       "example.com:65535", "[fe80::1]:1", "my-host_1:00080"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct config cfg;
        char *argv[] = {"--listen", (char *)good[i]};
        expect_ok(&cfg, NULL, NULL, 2, argv);
        assert_string_equal(cfg.listen, good[i]);
        config_free(&cfg);
    }
    static const char *const bad[] = {"8080",   "host:",   "host:65536", "host:12x", ":80",
                                      "::1:80", "[::1]",   "[::1]8080",  "[]:80",    "[::1:80",
                                      "[x]:80", "h st:80", "host:-1",    "host:+80", "host:123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"listen\": \"%s\"", bad[i]);
        expect_flag_error("--listen", bad[i], "flag --listen", want);
    }
    expect_file_error("{\"listen\": \"host:65536\"}", "\"listen\": \"host:65536\"", "65535");
}

/* store: sqlite, or a URL of either PostgreSQL scheme; whether it answers is start-up's question.
 */
static void test_store(void **state)
{
    (void)state;
    static const char *const good[] = {"sqlite", "postgresql://u@db/augserve", "postgres://db"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct config cfg;
        char *argv[] = {"--store", (char *)good[i]};
        expect_ok(&cfg, NULL, NULL, 2, argv);
        assert_string_equal(cfg.store, good[i]);
        config_free(&cfg);
    }
    static const char *const bad[] = {"SQLite", "mysql://db/augserve", "postgresql:/db", "db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_flag_error("--store", bad[i], "flag --store",
                          "must be sqlite or a postgresql:// URL");
}

/* A lease must outlast the time between its renewals (heartbeat_s), from whichever sources the two
 * come; the defaults are 10 and 60. */
static void test_lease_longer_than_heartbeat(void **state)
{
    (void)state;
    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    assert_int_equal(cfg.heartbeat_s, 10);
    assert_int_equal(cfg.lease_s, 60);
    config_free(&cfg);
    char *argv[] = {"--lease-s", "3", "--heartbeat-s", "2"};
    expect_ok(&cfg, NULL, NULL, 4, argv);
    assert_int_equal(cfg.lease_s, 3);
    assert_int_equal(cfg.heartbeat_s, 2);
    config_free(&cfg);
    expect_file_error("{\"lease_s\": 10}",
                      "\"lease_s\" (10) must be more than \"heartbeat_s\" (10)", NULL);
    expect_flag_error("--heartbeat-s", "61", "\"lease_s\" (60) must be more than",
                      "\"heartbeat_s\" (61)");
    char *env[] = {"AUGSERVE_LEASE_S=5", NULL};
    expect_error("{\"heartbeat_s\": 9}", env, 0, NULL, "\"lease_s\" (5)", "\"heartbeat_s\" (9)");
}

static void test_strings_not_empty(void **state)
{
    (void)state;
    expect_file_error("{\"static_dir\": \"\"}", "\"static_dir\": must not be empty", NULL);
    expect_file_error("{\"data_dir\": \"\"}", "\"data_dir\": must not be empty", NULL);
    expect_file_error("{\"access_log\": \"\"}", "\"access_log\": must not be empty", NULL);
    expect_file_error("{\"listen\": \"\"}", "\"listen\": must not be empty", NULL);
    char *env[] = {"AUGSERVE_DATA_DIR=\xff\xfe", NULL};
    expect_error(NULL, env, 0, NULL, "AUGSERVE_DATA_DIR", "UTF-8");
}

static void test_api_keys(void **state)
{
    (void)state;
    struct config cfg;
    expect_ok(&cfg,
              "{\"api_keys\": [{\"name\": \"ci\", \"sha256\": \"" H1 "\", \"scopes\": [\"infer\","
              " \"jobs\"]}, {\"scopes\": [\"admin\", \"augment\", \"admin\"], \"name\": \"ops\","
              " \"sha256\": \"" H1_UPPER "\"}]}",
              NULL, 0, NULL);
    assert_int_equal(cfg.api_key_count, 2);
    assert_string_equal(cfg.api_keys[0].name, "ci");
    assert_int_equal(cfg.api_keys[0].scopes, AUTH_SCOPE_INFER | AUTH_SCOPE_JOBS);
    static const unsigned char h1[32] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                         0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                         0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                         0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_memory_equal(cfg.api_keys[0].sha256, h1, 32);
    assert_string_equal(cfg.api_keys[1].name, "ops");
    assert_int_equal(cfg.api_keys[1].scopes, AUTH_SCOPE_ADMIN | AUTH_SCOPE_AUGMENT);
    assert_memory_equal(cfg.api_keys[1].sha256, h1, 32);
    config_free(&cfg);

    /* The environment replaces the file's list as a whole, and a flag the environment's. */
    char *env[] = {
        "AUGSERVE_API_KEYS=[{\"name\":\"e\",\"sha256\":\"" H2 "\",\"scopes\":[\"jobs\"]}]", NULL};
    expect_ok(&cfg,
              "{\"api_keys\": [{\"name\": \"a\", \"sha256\": \"" H1 "\", \"scopes\": [\"admin\"]},"
              " {\"name\": \"b\", \"sha256\": \"" H1 "\", \"scopes\": [\"admin\"]}]}",
              env, 0, NULL);
    assert_int_equal(cfg.api_key_count, 1);
    assert_string_equal(cfg.api_keys[0].name, "e");
    assert_int_equal(cfg.api_keys[0].scopes, AUTH_SCOPE_JOBS);
    assert_int_equal(cfg.api_keys[0].sha256[0], 0xff);
    config_free(&cfg);
    char *argv[] = {"--api-keys=[]"};
    expect_ok(&cfg, NULL, env, 1, argv);
    assert_int_equal(cfg.api_key_count, 0);
    assert_null(cfg.api_keys);
    config_free(&cfg);
}

static void test_api_keys_invalid(void **state)
{
    (void)state;
#define KEYS(body)              "{\"api_keys\": [" body "]}"
#define KEY(name, hash, scopes) "{\"name\": " name ", \"sha256\": " hash ", \"scopes\": " scopes "}"
    const char *good = KEY("\"a\"", "\"" H1 "\"", "[\"jobs\"]");
    char text[1024];

    expect_file_error(KEYS(KEY("\"a\"", "\"" H1 "0\"", "[\"jobs\"]")), "\"api_keys\"[0]",
                      "\"sha256\" must be 64 hex digits");
    expect_file_error(KEYS(KEY("\"a\"", "\"0123\"", "[\"jobs\"]")), "\"sha256\"", NULL);
    expect_file_error(
        KEYS(KEY("\"a\"", "\"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
                 "[\"jobs\"]")),
        "\"sha256\" must be 64 hex digits", NULL);
    expect_file_error(KEYS(KEY("\"a\"", "42", "[\"jobs\"]")), "\"sha256\"", NULL);
    expect_file_error(KEYS("{\"name\": \"a\", \"scopes\": [\"jobs\"]}"), "\"sha256\"", NULL);

    expect_file_error(KEYS(KEY("\"a\"", "\"" H1 "\"", "[\"jobs\", \"root\"]")),
                      "unknown scope \"root\"", NULL);
    expect_file_error(KEYS(KEY("\"a\"", "\"" H1 "\"", "[\"Jobs\"]")), "unknown scope \"Jobs\"",
                      NULL);
    expect_file_error(KEYS(KEY("\"a\"", "\"" H1 "\"", "[1]")), "scopes must be strings", NULL);
    expect_file_error(KEYS(KEY("\"a\"", "\"" H1 "\"", "[]")), "\"scopes\" must be a non-empty",
                      NULL);
    expect_file_error(KEYS(KEY("\"a\"", "\"" H1 "\"", "\"jobs\"")), "\"scopes\"", NULL);

    snprintf(text, sizeof text, KEYS("%s, %s, %s"), good, KEY("\"b\"", "\"" H2 "\"", "[\"admin\"]"),
             good);
    expect_file_error(text, "\"api_keys\"[2]", "duplicate name \"a\"");

    expect_file_error(KEYS(KEY("\"\"", "\"" H1 "\"", "[\"jobs\"]")),
                      "\"name\" must be a non-empty string", NULL);
    expect_file_error(KEYS(KEY("7", "\"" H1 "\"", "[\"jobs\"]")), "\"name\"", NULL);
    expect_file_error(KEYS("{\"sha256\": \"" H1 "\", \"scopes\": [\"jobs\"]}"), "\"name\"", NULL);
    snprintf(text, sizeof text, KEYS("%s, \"k\""), good);
    expect_file_error(text, "\"api_keys\"[1]: expected an object", NULL);
    expect_file_error(KEYS("{\"name\": \"a\", \"hash\": \"" H1 "\", \"scopes\": [\"jobs\"]}"),
                      "unknown key \"hash\"", NULL);

    char *env[] = {"AUGSERVE_API_KEYS=[{\"name\": \"a\"", NULL};
    expect_error(NULL, env, 0, NULL, "environment variable AUGSERVE_API_KEYS", "invalid JSON");
    expect_flag_error("--api-keys", "{}", "flag --api-keys", "expected an array");
#undef KEY
#undef KEYS
}

static void test_redaction(void **state)
{
    (void)state;
    struct config cfg;
    expect_ok(&cfg,
              "{\"api_keys\": [{\"name\": \"ci\", \"sha256\": \"" H1_UPPER "\", \"scopes\":"
              " [\"admin\", \"jobs\", \"infer\", \"augment\"]}]}",
              NULL, 0, NULL);

    char *redacted = config_to_json(&cfg, 1);
    assert_non_null(redacted);
    assert_contains(redacted, "\"sha256\": \"<redacted>\"");
    assert_contains(redacted, "\"name\": \"ci\"");
    assert_null(strstr(redacted, "0123456789"));
    assert_null(strstr(redacted, "0123456789ABCDEF"));

    char *plain = config_to_json(&cfg, 0);
    assert_non_null(plain);
    assert_contains(plain, "\"sha256\": \"" H1 "\"");
    json_error_t jerr;
    json_t *doc = json_loads(plain, 0, &jerr);
    assert_non_null(doc);
    json_t *scopes = json_object_get(json_array_get(json_object_get(doc, "api_keys"), 0), "scopes");
    json_t *want = json_pack("[s, s, s, s]", "augment", "infer", "jobs", "admin");
    assert_true(json_equal(scopes, want));
    json_decref(want);
    json_decref(doc);
    free(plain);
    free(redacted);
    config_free(&cfg);
}

/* The store URL's password, in its user info or a password parameter, is all --print-config
 * hides of it; a URL without one, and "sqlite", are shown as they are. */
static void test_store_password_redaction(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"postgresql://alice:s3cret@db.example:5432/augserve",
         "postgresql://alice:<redacted>@db.example:5432/augserve"},
        {"postgres://alice:@db/augserve", "postgres://alice:<redacted>@db/augserve"},
        {"postgresql://alice:p%40ss@[::1]:5432/augserve?sslmode=require&password=again&x=1",
         "postgresql://alice:<redacted>@[::1]:5432/augserve?sslmode=require&password=<redacted>"
         "&x=1"},
        {"postgresql://db/augserve?password=only", "postgresql://db/augserve?password=<redacted>"},
        {"postgresql://alice@%2Fvar%2Frun%2Fpostgresql/augserve",
         "postgresql://alice@%2Fvar%2Frun%2Fpostgresql/augserve"},
        {"postgresql://db:5432/augserve?application_name=password=x",
         "postgresql://db:5432/augserve?application_name=password=x"},
        {"sqlite", "sqlite"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config cfg;
        char file[256];
        snprintf(file, sizeof file, "{\"store\": \"%s\"}", cases[i][0]);
        expect_ok(&cfg, file, NULL, 0, NULL);
        for (int redact = 0; redact <= 1; redact++) {
            char *text = config_to_json(&cfg, redact);
            json_t *doc = json_loads(text, 0, NULL);
            assert_non_null(doc);
            assert_string_equal(json_string_value(json_object_get(doc, "store")), cases[i][redact]);
            json_decref(doc);
            free(text);
        }
        config_free(&cfg);
    }
}

/* config_to_json's output, written to a file and loaded again, must give the same settings. */
static void round_trip(const struct config *cfg)
{
    char *json = config_to_json(cfg, 0);
    assert_non_null(json);
    assert_true(strlen(json) > 2 && json[strlen(json) - 1] == '\n' &&
                json[strlen(json) - 2] == '}');
    struct config again;
    expect_ok(&again, json, NULL, 0, NULL);
    assert_same_config(cfg, &again);
    char *json_again = config_to_json(&again, 0);
    assert_non_null(json_again);
    assert_string_equal(json, json_again);
    free(json_again);
    free(json);
    config_free(&again);
}

static void test_to_json_round_trip(void **state)
{
    (void)state;
    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    round_trip(&cfg);
    config_free(&cfg);

    char *argv[] = {"--listen=[::]:0", "--workers=9", "--debug-routes=1", "--access-log=a b\"c",
                    "--api-keys=[{\"name\":\"x\",\"sha256\":\"" H2 "\",\"scopes\":[\"infer\"]},"
                    "{\"name\":\"y\",\"sha256\":\"" H1 "\",\"scopes\":[\"admin\",\"jobs\"]}]"};
    expect_ok(&cfg, NULL, NULL, 5, argv);
    round_trip(&cfg);
    config_free(&cfg);
}

static void test_error_leaves_nothing(void **state)
{
    (void)state;
    /* Strings and keys already set by the file and environment must be freed (ASan checks). */
    char *env[] = {"AUGSERVE_STATIC_DIR=/x", NULL};
    char *argv[] = {"--data-dir", "/y", "--queue", "nope"};
    expect_error("{\"access_log\": \"/tmp/log\", \"api_keys\": [{\"name\": \"a\", \"sha256\": \"" H1
                 "\", \"scopes\": [\"jobs\"]}]}",
                 env, 4, argv, "flag --queue", "\"queue\"");

    /* Freeing twice, or freeing an emptied cfg, is harmless. */
    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    config_free(&cfg);
    config_free(&cfg);
    config_free(NULL);

    /* A message longer than the error's buffer is cut rather than overflowing it, and a caller
     * that wants no message may pass NULL. */
    struct eng_error err;
    char flag[2 * sizeof err.message];
    memset(flag, 'x', sizeof flag - 1);
    memcpy(flag, "--", 2);
    flag[sizeof flag - 1] = '\0';
    char *bad[] = {flag};
    assert_int_equal(config_load(&cfg, NULL, NULL, 1, bad, &err), -1);
    assert_int_equal(strlen(err.message), sizeof err.message - 1);
    assert_int_equal(config_load(&cfg, NULL, NULL, 1, bad, NULL), -1);
}

static void test_sha256_hex(void **state)
{
    (void)state;
    unsigned char out[32], upper[32];
    assert_int_equal(config_parse_sha256_hex(H2, out), 0);
    assert_int_equal(out[0], 0xff);
    assert_int_equal(out[31], 0x00);
    assert_int_equal(config_parse_sha256_hex(H1, out), 0);
    assert_int_equal(config_parse_sha256_hex(H1_UPPER, upper), 0);
    assert_memory_equal(out, upper, 32);

    memset(out, 0x5a, sizeof out);
    static const char *const bad[] = {
        "",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        " 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0x23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(config_parse_sha256_hex(bad[i], out), -1);
    assert_int_equal(config_parse_sha256_hex(NULL, out), -1);
    /* A failed parse leaves out alone. */
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0x5a);
}

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    config_print_help(out);
    assert_int_equal(fclose(out), 0);

    assert_contains(text, "  --max-body-bytes N ");
    assert_contains(text, " AUGSERVE_MAX_BODY_BYTES ");
    assert_contains(text, "(default 67108864) request body cap in bytes");
    assert_contains(text, "(default 127.0.0.1:8080)");
    assert_contains(text, "--debug-routes BOOL");
    assert_contains(text, "(default false)");
    assert_contains(text, "--api-keys JSON");

    /* One line per setting: as many as config_to_json has keys. */
    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    char *json = config_to_json(&cfg, 0);
    json_t *doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, json_object_size(doc));
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        char env[64];
        snprintf(env, sizeof env, " AUGSERVE_");
        for (size_t i = 0; key[i]; i++)
            env[10 + i] = (char)(key[i] >= 'a' && key[i] <= 'z' ? key[i] - 'a' + 'A' : key[i]);
        env[10 + strlen(key)] = '\0';
        assert_contains(text, env);
    }
    json_decref(doc);
    free(json);
    config_free(&cfg);
    free(text);
}

static void test_defaults_file(void **state)
{
    (void)state;
    if (!defaults_path) skip();
    char *file = read_all(defaults_path);
    if (!file) fail_msg("cannot read %s", defaults_path);
    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    char *json = config_to_json(&cfg, 0);
    assert_non_null(json);
    assert_string_equal(file, json);
    free(json);
    free(file);
    config_free(&cfg);
}

/* The schema next to the defaults file lists every key in order, with the same defaults and the
 * ranges the loader enforces. */
static void test_schema(void **state)
{
    (void)state;
    if (!defaults_path) skip();
    char schema_path[4096];
    const char *slash = strrchr(defaults_path, '/');
    int dir_len = slash ? (int)(slash - defaults_path + 1) : 0;
    snprintf(schema_path, sizeof schema_path, "%.*saugserve.schema.json", dir_len, defaults_path);
    json_error_t jerr;
    json_t *schema = json_load_file(schema_path, 0, &jerr);
    if (!schema) fail_msg("%s: %s", schema_path, jerr.text);
    assert_string_equal(json_string_value(json_object_get(schema, "$schema")),
                        "https://json-schema.org/draft/2020-12/schema");
    assert_true(json_is_false(json_object_get(schema, "additionalProperties")));

    struct config cfg;
    expect_ok(&cfg, NULL, NULL, 0, NULL);
    char *json = config_to_json(&cfg, 0);
    config_free(&cfg);
    json_t *defaults = json_loads(json, 0, NULL);
    free(json);
    assert_non_null(defaults);

    json_t *props = json_object_get(schema, "properties");
    assert_int_equal(json_object_size(props), json_object_size(defaults));
    void *it_schema = json_object_iter(props);
    void *it_defaults = json_object_iter(defaults);
    for (; it_schema && it_defaults; it_schema = json_object_iter_next(props, it_schema),
                                     it_defaults = json_object_iter_next(defaults, it_defaults)) {
        const char *key = json_object_iter_key(it_schema);
        json_t *prop = json_object_iter_value(it_schema);
        assert_string_equal(key, json_object_iter_key(it_defaults));
        assert_true(
            json_equal(json_object_get(prop, "default"), json_object_iter_value(it_defaults)));
        assert_true(json_is_string(json_object_get(prop, "description")));
        assert_true(json_is_string(json_object_get(prop, "type")));

        json_t *min = json_object_get(prop, "minimum"), *max = json_object_get(prop, "maximum");
        if (!json_is_integer(json_object_iter_value(it_defaults))) {
            assert_null(min);
            continue;
        }
        assert_true(json_is_integer(min) && json_is_integer(max));
        long long bounds[] = {json_integer_value(min), json_integer_value(max)};
        for (int b = 0; b < 2; b++) {
            char flag[128];
            int n = snprintf(flag, sizeof flag, "--%s", key);
            for (int i = 2; i < n; i++)
                flag[i] = flag[i] == '_' ? '-' : flag[i];
            char value[32];
            snprintf(value, sizeof value, "%lld", bounds[b]);
            /* heartbeat_s and lease_s are checked together too: each bound with the other's
             * widest value. */
            char *argv[] = {flag, value, "--lease-s", "86400"};
            if (strcmp(key, "lease_s") == 0) {
                argv[2] = "--heartbeat-s";
                argv[3] = "1";
            }
            int pair = strcmp(key, "lease_s") == 0 || strcmp(key, "heartbeat_s") == 0;
            expect_ok(&cfg, NULL, NULL, pair ? 4 : 2, argv);
            config_free(&cfg);
            snprintf(value, sizeof value, "%lld", b == 0 ? bounds[b] - 1 : bounds[b] + 1);
            expect_error(NULL, NULL, pair ? 4 : 2, argv, key, "out of range");
        }
    }
    assert_null(it_schema);
    assert_null(it_defaults);
    json_decref(defaults);
    json_decref(schema);
}

int main(int argc, char **argv)
{
    if (argc > 1) defaults_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_overrides),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_flags_override_env),
        cmocka_unit_test(test_unknown_file_key),
        cmocka_unit_test(test_unknown_flag),
        cmocka_unit_test(test_flag_missing_value),
        cmocka_unit_test(test_unknown_env),
        cmocka_unit_test(test_env_config_ignored),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_env_numbers),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_lease_longer_than_heartbeat),
        cmocka_unit_test(test_strings_not_empty),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_api_keys_invalid),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_store_password_redaction),
        cmocka_unit_test(test_to_json_round_trip),
        cmocka_unit_test(test_error_leaves_nothing),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_defaults_file),
        cmocka_unit_test(test_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
