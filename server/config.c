/* Settings are described once, in the table below; defaults, the file, the environment, flags,
 * help and JSON output all walk that table so a new setting is one row, never five edits. */
#include "config.h"
#include "core/parse.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "auth.h"
#include "storage.h"

#define ENV_PREFIX "AUGSERVE_"
/* The caller reads the file path from this variable, so it is no setting of ours. */
#define ENV_RESERVED "AUGSERVE_CONFIG"

enum setting_type {
    TYPE_INT,
    TYPE_INT64,
    TYPE_BOOL,
    TYPE_STRING,
    TYPE_API_KEYS,
};

struct setting {
    const char *key;
    enum setting_type type;
    size_t offset;
    int64_t def;         /* numbers and bools */
    const char *def_str; /* strings, and api_keys as JSON text */
    int64_t min, max;
    enum { NOT_SECRET, SECRET, URL_PASSWORD_SECRET } secret; /* what --print-config hides */
    int may_be_empty;                                        /* a string whose "" means "none" */
    /* Extra rule for a string beyond non-empty: NULL when fine, else why not. */
    const char *(*check)(const char *value);
    const char *help;
};

static const char *check_listen(const char *value);
static const char *check_store(const char *value);

#define OFF(field) offsetof(struct config, field)
#define INT_SETTING(k, d, lo, hi, h)                                                               \
    {                                                                                              \
        .key = #k, .type = TYPE_INT, .offset = OFF(k), .def = (d), .min = (lo), .max = (hi),       \
        .help = (h)                                                                                \
    }
#define INT64_SETTING(k, d, lo, hi, h)                                                             \
    {                                                                                              \
        .key = #k, .type = TYPE_INT64, .offset = OFF(k), .def = (d), .min = (lo), .max = (hi),     \
        .help = (h)                                                                                \
    }
#define BOOL_SETTING(k, d, h)                                                                      \
    {                                                                                              \
        .key = #k, .type = TYPE_BOOL, .offset = OFF(k), .def = (d), .help = (h)                    \
    }
#define STRING_SETTING(k, d, chk, h)                                                               \
    {                                                                                              \
        .key = #k, .type = TYPE_STRING, .offset = OFF(k), .def_str = (d), .check = (chk),          \
        .help = (h)                                                                                \
    }

static const struct setting settings[] = {
    STRING_SETTING(listen, "127.0.0.1:8080", check_listen,
                   "address to listen on, host:port or [ipv6]:port; port 0 picks a free one"),
    INT_SETTING(io_threads, 2, 1, 256, "threads serving connections"),
    INT_SETTING(workers, 0, 0, 1024, "concurrent heavy requests; 0 = one per CPU core"),
    INT_SETTING(queue, 64, 0, 100000, "heavy requests waiting for a worker before 429"),
    INT_SETTING(connection_limit, 1000, 1, 100000, "open connections at once"),
    INT_SETTING(connection_timeout_s, 30, 1, 3600, "idle connection timeout in seconds"),
    INT_SETTING(header_timeout_s, 10, 0, 3600,
                "seconds a request's line and headers may take from its first byte (408); 0 = no "
                "limit"),
    INT_SETTING(body_timeout_s, 120, 0, 86400,
                "seconds a request's body may take once its headers are in (408); 0 = no limit"),
    INT_SETTING(max_connections_per_client, 64, 0, 100000,
                "open connections from one client address at once; 0 = no limit"),
    INT_SETTING(connection_memory_limit, 131072, 16384, 16777216,
                "bytes per connection for headers and buffers"),
    INT_SETTING(max_uri_bytes, 8192, 256, 1048576,
                "request target (path and query) cap in bytes (414 past it)"),
    INT64_SETTING(max_body_bytes, 67108864, 1, INT64_C(1099511627776), "request body cap in bytes"),
    INT_SETTING(max_parts, 64, 1, 10000, "multipart parts cap"),
    INT_SETTING(shutdown_grace_s, 10, 0, 3600, "seconds in-flight requests get after SIGTERM"),
    INT64_SETTING(max_pixels, 40000000, 1, INT64_C(1000000000),
                  "decoded image area cap in pixels, checked before decoding"),
    INT_SETTING(max_dimension, 16384, 1, 65535, "decoded image width and height cap in pixels"),
    INT_SETTING(max_inputs, 16, 1, 1024, "images in one augment, predict or pseudo-label request"),
    INT_SETTING(max_samples, 32, 1, 1024, "samples per image in one augment request"),
    INT_SETTING(max_targets, 1000, 1, 100000, "objects (boxes, masks) per image in one request"),
    INT_SETTING(max_audio_seconds, 600, 1, 86400,
                "longest audio clip (input, noise or impulse response), and most augmented audio "
                "per request, in seconds"),
    INT64_SETTING(max_work, INT64_C(20000000000), 1, INT64_C(1000000000000000),
                  "estimated work one request may ask for, in op-pixels (one op on one pixel or "
                  "audio value; inference: 100 FLOPs), checked before any op runs"),
    INT_SETTING(request_timeout_s, 60, 1, 86400,
                "seconds a heavy request may run before its work stops (503)"),
    INT64_SETTING(max_response_bytes, 134217728, 1, INT64_C(1099511627776),
                  "response body cap in bytes"),
    INT64_SETTING(max_request_memory, INT64_C(2147483648), 1048576, INT64_C(1099511627776),
                  "working memory one request may plan for, in bytes (SSIM's maps, say)"),
    STRING_SETTING(static_dir, "static", NULL, "web UI files served at /"),
    STRING_SETTING(data_dir, "var", NULL, "embedded store and files"),
    {
        .key = "store",
        .type = TYPE_STRING,
        .offset = OFF(store),
        .def_str = "sqlite",
        .check = check_store,
        .secret = URL_PASSWORD_SECRET,
        .help = "where jobs, datasets' records and saved policies are kept: sqlite (in data_dir) "
                "or a postgresql:// URL",
    },
    STRING_SETTING(models_dir, "models", NULL,
                   "model repository: <name>/model.onnx (+ config.json) per model"),
    INT64_SETTING(max_model_bytes, 536870912, 1, INT64_C(2147483648),
                  "ONNX model file cap in bytes, for start-up and uploads"),
    INT64_SETTING(max_tensor_elements, 67108864, 1, INT64_C(4294967296),
                  "elements in one inference input tensor"),
    INT_SETTING(nn_threads, 0, 0, 1024,
                "threads one inference uses; 0 = CPU cores / workers (at least 1)"),
    BOOL_SETTING(nn_direct_convolution, 0,
                 "every convolution in oneDNN's direct algorithm (slower; no shape-chosen ones)"),
    INT64_SETTING(max_dataset_bytes, INT64_C(4294967296), 1, INT64_C(1099511627776),
                  "a dataset upload's body cap in bytes (413 past it); it is streamed to disk"),
    INT64_SETTING(max_dataset_files, 1000000, 1, INT64_C(100000000),
                  "files in a dataset's source, and images (a CIFAR or idx file holds many)"),
    INT_SETTING(max_classes, 10000, 1, 1000000, "classes in one dataset"),
    INT_SETTING(dataset_image_size, 256, 8, 4096,
                "images of mixed sizes in a dataset get their shorter side resized to this"),
    {
        .key = "datasets_dir",
        .type = TYPE_STRING,
        .offset = OFF(datasets_dir),
        .def_str = "",
        .may_be_empty = 1,
        .help = "folder whose datasets POST /v1/datasets?path= may import (admin scope); empty = "
                "none",
    },
    INT_SETTING(job_workers, 1, 0, 256,
                "jobs running at once, each on a runner thread apart from the request workers; 0 "
                "= jobs are queued and not run"),
    INT_SETTING(job_poll_s, 5, 1, 3600,
                "seconds between an idle job runner's looks at the store when nothing wakes it "
                "(on PostgreSQL, notifications wake it at once, and an event stream's too)"),
    INT_SETTING(job_threads, 0, 0, 1024,
                "threads one job's engine work uses; 0 = CPU cores / job_workers (at least 1)"),
    INT_SETTING(job_max_attempts, 3, 1, 1000,
                "starts after which a job whose lease expired (its process died or froze under "
                "it) is left interrupted instead of queued again"),
    INT_SETTING(heartbeat_s, 10, 1, 3600,
                "seconds between the renewals of a running job's lease by its process"),
    INT_SETTING(lease_s, 60, 2, 86400,
                "seconds without a heartbeat after which a running job's lease expires and any "
                "process queues it again; must be more than heartbeat_s"),
    STRING_SETTING(access_log, "stderr", NULL, "access log: stderr, off or a file path"),
    BOOL_SETTING(debug_routes, 0, "mount /v1/debug/* (tests only)"),
    {
        .key = "api_keys",
        .type = TYPE_API_KEYS,
        .offset = OFF(api_keys),
        .def_str = "[]",
        .secret = SECRET,
        .help = "JSON array of {\"name\", \"sha256\", \"scopes\"}; empty = no auth",
    },
};

#define SETTING_COUNT (sizeof settings / sizeof settings[0])

/* Where a value came from, for messages: "config file x.json", "flag --queue", ... */
struct source {
    const char *kind;
    const char *name;
};

/* Fails with code and a message that starts with where the value came from (src may be NULL). */
static void set_err(struct eng_error *err, enum eng_code code, const struct source *src,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_err(struct eng_error *err, enum eng_code code, const struct source *src,
                    const char *fmt, ...)
{
    char what[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (src)
        eng_fail(err, code, "%s %s: %s", src->kind, src->name, what);
    else
        eng_fail(err, code, "%s", what);
}

static void *field(struct config *cfg, const struct setting *s)
{
    return (char *)cfg + s->offset;
}

static const void *cfield(const struct config *cfg, const struct setting *s)
{
    return (const char *)cfg + s->offset;
}

static const char *check_port(const char *port)
{
    size_t len = strlen(port);
    if (len == 0) return "missing port after ':'";
    if (len > 5 || strspn(port, "0123456789") != len) return "port must be a number 0..65535";
    if (atol(port) > 65535) return "port must be a number 0..65535";
    return NULL;
}

static const char *check_store(const char *value)
{
    return strcmp(value, "sqlite") == 0 || storage_is_postgresql_url(value)
               ? NULL
               : "must be sqlite or a postgresql:// URL";
}

static const char *check_listen(const char *value)
{
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (!close) return "missing ']' after IPv6 address";
        size_t host_len = (size_t)(close - value - 1);
        if (host_len == 0) return "empty IPv6 address";
        /* Only the characters of an IPv6 literal, so a typo fails here and not at bind time. */
        for (const char *p = value + 1; p < close; p++)
            if (!strchr("0123456789abcdefABCDEF:.", *p)) return "invalid character in IPv6 address";
        if (close[1] != ':') return "expected :port after ']'";
        return check_port(close + 2);
    }
    const char *colon = strrchr(value, ':');
    if (!colon) return "expected host:port or [ipv6]:port";
    if (colon == value) return "empty host";
    for (const char *p = value; p < colon; p++) {
        if (*p == ':') return "IPv6 addresses need brackets: [ipv6]:port";
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", *p))
            return "invalid character in host";
    }
    return check_port(colon + 1);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int config_parse_sha256_hex(const char *hex, unsigned char out[32])
{
    unsigned char tmp[32];
    if (!hex) return -1;
    for (size_t i = 0; i < 32; i++) {
        /* Checking each digit before the next read also stops at a short string's NUL. */
        int hi = hex_value(hex[2 * i]);
        if (hi < 0) return -1;
        int lo = hex_value(hex[2 * i + 1]);
        if (lo < 0) return -1;
        tmp[i] = (unsigned char)(hi << 4 | lo);
    }
    if (hex[64] != '\0') return -1;
    memcpy(out, tmp, sizeof tmp);
    return 0;
}

static void free_api_keys(struct config_api_key *keys, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(keys[i].name);
    free(keys);
}

static int parse_api_key(json_t *obj, size_t index, struct config_api_key *keys,
                         const struct setting *s, const struct source *src, struct eng_error *err)
{
    if (!json_is_object(obj)) {
        set_err(err, ENG_INVALID, src, "\"%s\"[%zu]: expected an object", s->key, index);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (strcmp(k, "name") && strcmp(k, "sha256") && strcmp(k, "scopes")) {
            set_err(err, ENG_INVALID, src, "\"%s\"[%zu]: unknown key \"%s\"", s->key, index, k);
            return -1;
        }
    }

    json_t *name = json_object_get(obj, "name");
    if (!json_is_string(name) || json_string_length(name) == 0) {
        set_err(err, ENG_INVALID, src, "\"%s\"[%zu]: \"name\" must be a non-empty string", s->key,
                index);
        return -1;
    }
    /* Names identify keys in logs and metrics, so two keys with one name would be ambiguous. */
    for (size_t i = 0; i < index; i++) {
        if (strcmp(keys[i].name, json_string_value(name)) == 0) {
            set_err(err, ENG_INVALID, src, "\"%s\"[%zu]: duplicate name \"%s\"", s->key, index,
                    json_string_value(name));
            return -1;
        }
    }

    struct config_api_key key = {0};
    json_t *hash = json_object_get(obj, "sha256");
    if (!json_is_string(hash) || config_parse_sha256_hex(json_string_value(hash), key.sha256)) {
        set_err(err, ENG_INVALID, src, "\"%s\"[%zu] (\"%s\"): \"sha256\" must be 64 hex digits",
                s->key, index, json_string_value(name));
        return -1;
    }

    json_t *scopes = json_object_get(obj, "scopes");
    if (!json_is_array(scopes) || json_array_size(scopes) == 0) {
        set_err(err, ENG_INVALID, src,
                "\"%s\"[%zu] (\"%s\"): \"scopes\" must be a non-empty array of scope names", s->key,
                index, json_string_value(name));
        return -1;
    }
    size_t i;
    json_t *scope;
    json_array_foreach(scopes, i, scope)
    {
        unsigned bit = json_is_string(scope) ? auth_scope_from_name(json_string_value(scope)) : 0;
        if (!bit) {
            if (json_is_string(scope))
                set_err(err, ENG_INVALID, src, "\"%s\"[%zu] (\"%s\"): unknown scope \"%s\"", s->key,
                        index, json_string_value(name), json_string_value(scope));
            else
                set_err(err, ENG_INVALID, src, "\"%s\"[%zu] (\"%s\"): scopes must be strings",
                        s->key, index, json_string_value(name));
            return -1;
        }
        key.scopes |= bit;
    }

    key.name = strdup(json_string_value(name));
    if (!key.name) {
        set_err(err, ENG_NO_MEMORY, src, "\"%s\": out of memory", s->key);
        return -1;
    }
    keys[index] = key;
    return 0;
}

static int set_api_keys(struct config *cfg, const struct setting *s, json_t *value,
                        const struct source *src, struct eng_error *err)
{
    if (!json_is_array(value)) {
        set_err(err, ENG_INVALID, src, "\"%s\": expected an array", s->key);
        return -1;
    }
    size_t count = json_array_size(value);
    struct config_api_key *keys = NULL;
    if (count > 0) {
        keys = calloc(count, sizeof *keys);
        if (!keys) {
            set_err(err, ENG_NO_MEMORY, src, "\"%s\": out of memory", s->key);
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (parse_api_key(json_array_get(value, i), i, keys, s, src, err)) {
            free_api_keys(keys, i);
            return -1;
        }
    }
    /* The key list is the one setting spread over two fields, so its type owns both. */
    struct config_api_key **slot = field(cfg, s);
    free_api_keys(*slot, cfg->api_key_count);
    *slot = keys;
    cfg->api_key_count = count;
    return 0;
}

/* Stores a JSON value into the setting's field, checking type, range and rules. */
static int set_from_json(struct config *cfg, const struct setting *s, json_t *value,
                         const struct source *src, struct eng_error *err)
{
    switch (s->type) {
    case TYPE_INT:
    case TYPE_INT64: {
        if (!json_is_integer(value)) {
            set_err(err, ENG_INVALID, src, "\"%s\": expected an integer", s->key);
            return -1;
        }
        json_int_t n = json_integer_value(value);
        if (n < s->min || n > s->max) {
            set_err(err, ENG_INVALID, src, "\"%s\": %lld is out of range [%lld, %lld]", s->key,
                    (long long)n, (long long)s->min, (long long)s->max);
            return -1;
        }
        if (s->type == TYPE_INT)
            *(int *)field(cfg, s) = (int)n;
        else
            *(int64_t *)field(cfg, s) = (int64_t)n;
        return 0;
    }
    case TYPE_BOOL:
        if (!json_is_boolean(value)) {
            set_err(err, ENG_INVALID, src, "\"%s\": expected true or false", s->key);
            return -1;
        }
        *(int *)field(cfg, s) = json_is_true(value);
        return 0;
    case TYPE_STRING: {
        if (!json_is_string(value)) {
            set_err(err, ENG_INVALID, src, "\"%s\": expected a string", s->key);
            return -1;
        }
        const char *str = json_string_value(value);
        if (str[0] == '\0' && !s->may_be_empty) {
            set_err(err, ENG_INVALID, src, "\"%s\": must not be empty", s->key);
            return -1;
        }
        const char *why = s->check ? s->check(str) : NULL;
        if (why) {
            set_err(err, ENG_INVALID, src, "\"%s\": \"%s\": %s", s->key, str, why);
            return -1;
        }
        char *copy = strdup(str);
        if (!copy) {
            set_err(err, ENG_NO_MEMORY, src, "\"%s\": out of memory", s->key);
            return -1;
        }
        char **slot = field(cfg, s);
        free(*slot);
        *slot = copy;
        return 0;
    }
    case TYPE_API_KEYS:
        return set_api_keys(cfg, s, value, src, err);
    }
    set_err(err, ENG_INVALID, src, "\"%s\": unsupported setting type", s->key);
    return -1;
}

static int parse_bool(const char *text, int *out)
{
    static const char *const truths[] = {"true", "1", "yes"};
    static const char *const falsehoods[] = {"false", "0", "no"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(text, truths[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, falsehoods[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Environment and flag values are text; turning them into JSON lets one setter check them all. */
static int set_from_text(struct config *cfg, const struct setting *s, const char *text,
                         const struct source *src, struct eng_error *err)
{
    json_t *value = NULL;
    switch (s->type) {
    case TYPE_INT:
    case TYPE_INT64: {
        long long n;
        enum parse_result rc = parse_signed(text, LLONG_MIN, LLONG_MAX, &n);
        if (rc != PARSE_OK) {
            set_err(err, ENG_INVALID, src, "\"%s\": \"%s\" is %s", s->key, text,
                    rc == PARSE_RANGE ? "too large" : "not a whole decimal number");
            return -1;
        }
        value = json_integer(n);
        break;
    }
    case TYPE_BOOL: {
        int b;
        if (parse_bool(text, &b)) {
            set_err(err, ENG_INVALID, src,
                    "\"%s\": \"%s\" is not a boolean (true/false, 1/0, yes/no)", s->key, text);
            return -1;
        }
        value = json_boolean(b);
        break;
    }
    case TYPE_STRING:
        /* json_string refuses invalid UTF-8, which config_to_json could not print later. */
        value = json_string(text);
        if (!value) {
            set_err(err, ENG_INVALID, src, "\"%s\": value is not valid UTF-8", s->key);
            return -1;
        }
        break;
    case TYPE_API_KEYS: {
        json_error_t jerr;
        value = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!value) {
            set_err(err, ENG_INVALID, src, "\"%s\": invalid JSON at line %d, column %d: %s", s->key,
                    jerr.line, jerr.column, jerr.text);
            return -1;
        }
        break;
    }
    }
    if (!value) {
        set_err(err, ENG_NO_MEMORY, src, "\"%s\": out of memory", s->key);
        return -1;
    }
    int rc = set_from_json(cfg, s, value, src, err);
    json_decref(value);
    return rc;
}

static int apply_defaults(struct config *cfg, struct eng_error *err)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        /* Text defaults go through the checks too, so a bad table row fails every run loudly. */
        struct source src = {"built-in default", s->key};
        switch (s->type) {
        case TYPE_INT:
            *(int *)field(cfg, s) = (int)s->def;
            break;
        case TYPE_INT64:
            *(int64_t *)field(cfg, s) = s->def;
            break;
        case TYPE_BOOL:
            *(int *)field(cfg, s) = s->def != 0;
            break;
        case TYPE_STRING:
        case TYPE_API_KEYS:
            if (set_from_text(cfg, s, s->def_str, &src, err)) return -1;
            break;
        }
    }
    return 0;
}

static const struct setting *find_key(const char *key)
{
    for (size_t i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings[i].key, key) == 0) return &settings[i];
    return NULL;
}

static int load_file(struct config *cfg, const char *path, struct eng_error *err)
{
    struct source src = {"config file", path};
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, ENG_INVALID, &src, "cannot open: %s", strerror(errno));
        return -1;
    }
    /* A directory opens fine on Linux and would then read as an empty, "invalid" document. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        set_err(err, ENG_INVALID, &src, "is a directory");
        fclose(f);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (!root) {
        set_err(err, ENG_INVALID, &src, "invalid JSON at line %d, column %d: %s", jerr.line,
                jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        set_err(err, ENG_INVALID, &src, "top level must be a JSON object");
        json_decref(root);
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        const struct setting *s = find_key(key);
        if (!s) {
            /* A misspelt key would otherwise leave its setting at the default unnoticed. */
            set_err(err, ENG_INVALID, &src, "unknown key \"%s\"", key);
            rc = -1;
        } else {
            rc = set_from_json(cfg, s, value, &src, err);
        }
        if (rc) break;
    }
    json_decref(root);
    return rc;
}

/* The variable name of a setting: AUGSERVE_ + upper-case key. */
static void env_name(const struct setting *s, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s", ENV_PREFIX);
    for (const char *k = s->key; *k && n + 1 < size; k++)
        out[n++] = (char)(*k >= 'a' && *k <= 'z' ? *k - 'a' + 'A' : *k);
    out[n < size ? n : size - 1] = '\0';
}

/* The flag of a setting: -- + key with '_' as '-'. */
static void flag_name(const struct setting *s, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "--");
    for (const char *k = s->key; *k && n + 1 < size; k++)
        out[n++] = *k == '_' ? '-' : *k;
    out[n < size ? n : size - 1] = '\0';
}

#define NAME_MAX_LEN 64

static int load_env(struct config *cfg, char *const envp[], struct eng_error *err)
{
    for (size_t e = 0; envp[e]; e++) {
        const char *entry = envp[e];
        const char *eq = strchr(entry, '=');
        size_t name_len = eq ? (size_t)(eq - entry) : strlen(entry);
        if (strncmp(entry, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 || !eq) continue;
        if (name_len == strlen(ENV_RESERVED) && strncmp(entry, ENV_RESERVED, name_len) == 0)
            continue;
        const struct setting *s = NULL;
        char name[NAME_MAX_LEN];
        for (size_t i = 0; i < SETTING_COUNT && !s; i++) {
            env_name(&settings[i], name, sizeof name);
            if (strlen(name) == name_len && strncmp(entry, name, name_len) == 0) s = &settings[i];
        }
        if (!s) {
            /* A misspelt variable would otherwise be silently dropped. */
            set_err(err, ENG_INVALID, NULL, "environment variable %.*s: no such setting",
                    (int)name_len, entry);
            return -1;
        }
        struct source src = {"environment variable", name};
        if (set_from_text(cfg, s, eq + 1, &src, err)) return -1;
    }
    return 0;
}

static int load_flags(struct config *cfg, int argc, char *const argv[], struct eng_error *err)
{
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0) {
            set_err(err, ENG_INVALID, NULL, "unexpected argument \"%s\" (settings are --flags)",
                    arg);
            return -1;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct setting *s = NULL;
        char name[NAME_MAX_LEN];
        for (size_t i = 0; i < SETTING_COUNT && !s; i++) {
            flag_name(&settings[i], name, sizeof name);
            if (strlen(name) == name_len && strncmp(arg, name, name_len) == 0) s = &settings[i];
        }
        if (!s) {
            set_err(err, ENG_INVALID, NULL, "unknown flag %.*s", (int)name_len, arg);
            return -1;
        }
        struct source src = {"flag", name};
        const char *value;
        if (eq) {
            value = eq + 1;
        } else {
            /* "--listen --workers 3" is a forgotten value, not a listen address of "--workers". */
            if (a + 1 >= argc || strncmp(argv[a + 1], "--", 2) == 0) {
                set_err(err, ENG_INVALID, &src, "missing its value");
                return -1;
            }
            value = argv[++a];
        }
        if (set_from_text(cfg, s, value, &src, err)) return -1;
    }
    return 0;
}

/* What no one setting can check alone. */
static int check_together(const struct config *cfg, struct eng_error *err)
{
    /* A lease no longer than the time between heartbeats would expire under a live process. */
    if (cfg->lease_s <= cfg->heartbeat_s) {
        set_err(err, ENG_INVALID, NULL,
                "\"lease_s\" (%d) must be more than \"heartbeat_s\" (%d): a lease renewed every "
                "heartbeat_s seconds would expire under a live process",
                cfg->lease_s, cfg->heartbeat_s);
        return -1;
    }
    return 0;
}

int config_load(struct config *cfg, const char *path, char *const envp[], int argc,
                char *const argv[], struct eng_error *err)
{
    struct config tmp;
    memset(&tmp, 0, sizeof tmp);
    /* Built aside and copied at the end, so a failure never leaves a half-loaded cfg. */
    if (apply_defaults(&tmp, err) || (path && load_file(&tmp, path, err)) ||
        (envp && load_env(&tmp, envp, err)) || load_flags(&tmp, argc, argv, err) ||
        check_together(&tmp, err)) {
        config_free(&tmp);
        memset(cfg, 0, sizeof *cfg);
        return -1;
    }
    *cfg = tmp;
    return 0;
}

void config_free(struct config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        if (s->type == TYPE_STRING) {
            char **slot = field(cfg, s);
            free(*slot);
            *slot = NULL;
        }
    }
    free_api_keys(cfg->api_keys, cfg->api_key_count);
    cfg->api_keys = NULL;
    cfg->api_key_count = 0;
}

static json_t *api_keys_to_json(const struct config *cfg, int redact)
{
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (size_t i = 0; i < cfg->api_key_count; i++) {
        const struct config_api_key *key = &cfg->api_keys[i];
        char hex[65];
        for (size_t b = 0; b < 32; b++)
            snprintf(hex + 2 * b, 3, "%02x", key->sha256[b]);
        json_t *scopes = json_array();
        if (!scopes) goto fail;
        /* "o" hands scopes to the object, even when packing fails. */
        json_t *obj = json_pack("{s:s, s:s, s:o}", "name", key->name, "sha256",
                                redact ? "<redacted>" : hex, "scopes", scopes);
        if (!obj || json_array_append_new(arr, obj)) goto fail;
        /* Lowest bit first, which is the documented order augment, infer, jobs, admin. */
        for (unsigned bit = 1; bit != 0; bit <<= 1) {
            const char *name = (key->scopes & bit) ? auth_scope_name(bit) : NULL;
            if (name && json_array_append_new(scopes, json_string(name))) goto fail;
        }
    }
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

/* A copy of a libpq URL with its password as "<redacted>", wherever libpq reads one: the user
 * info's (postgresql://user:PASSWORD@host/db) and a "password" parameter's (?password=PASSWORD,
 * among others after ? and &). The rest (user, host, database, options) is what an operator
 * checks. NULL when out of memory. */
static char *url_without_password(const char *url)
{
    static const char mask[] = "<redacted>";
    size_t len = strlen(url);
    /* At most every byte becomes the mask: a bound that needs no second pass. */
    char *out = malloc(len * (sizeof mask - 1) + 1), *o = out;
    if (!out) return NULL;
    const char *scheme = strstr(url, "://");
    const char *authority = scheme ? scheme + 3 : url;
    const char *authority_end = authority + strcspn(authority, "/?#");
    const char *at = NULL;
    for (const char *p = authority; p < authority_end; p++)
        if (*p == '@')
            at = p; /* the last: an unescaped '@' may not be in a password, but be sure */
    const char *colon = at ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
    const char *query = strchr(authority_end, '?');
    for (const char *p = url; *p;) {
        if (colon && p == colon + 1) {
            o = stpcpy(o, mask);
            p = at;
            colon = NULL; /* once: an empty password leaves p where it was */
            continue;
        }
        if (query && p > query && (p[-1] == '?' || p[-1] == '&') && !strncmp(p, "password=", 9)) {
            o = stpcpy(o, "password=");
            o = stpcpy(o, mask);
            p += 9 + strcspn(p + 9, "&#");
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    return out;
}

static json_t *setting_to_json(const struct config *cfg, const struct setting *s, int redact)
{
    if (redact && s->secret == SECRET && s->type != TYPE_API_KEYS) return json_string("<redacted>");
    if (redact && s->secret == URL_PASSWORD_SECRET) {
        const char *url = *(char *const *)cfield(cfg, s);
        char *shown = url ? url_without_password(url) : NULL;
        json_t *value = shown ? json_string(shown) : NULL;
        free(shown);
        return value;
    }
    switch (s->type) {
    case TYPE_INT:
        return json_integer(*(const int *)cfield(cfg, s));
    case TYPE_INT64:
        return json_integer(*(const int64_t *)cfield(cfg, s));
    case TYPE_BOOL:
        return json_boolean(*(const int *)cfield(cfg, s));
    case TYPE_STRING: {
        const char *str = *(char *const *)cfield(cfg, s);
        return str ? json_string(str) : json_null();
    }
    case TYPE_API_KEYS:
        /* Only the hashes are secret; names and scopes are what an operator needs to see. */
        return api_keys_to_json(cfg, redact && s->secret == SECRET);
    }
    return NULL;
}

char *config_to_json(const struct config *cfg, int redact)
{
    json_t *root = json_object();
    if (!root) return NULL;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (json_object_set_new(root, settings[i].key,
                                setting_to_json(cfg, &settings[i], redact))) {
            json_decref(root);
            return NULL;
        }
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return NULL;
    /* A trailing newline makes the output a proper text file, like config/augserve.json. */
    size_t len = strlen(text);
    char *out = malloc(len + 2);
    if (out) {
        memcpy(out, text, len);
        out[len] = '\n';
        out[len + 1] = '\0';
    }
    free(text);
    return out;
}

static const char *metavar(const struct setting *s)
{
    switch (s->type) {
    case TYPE_INT:
    case TYPE_INT64:
        return "N";
    case TYPE_BOOL:
        return "BOOL";
    case TYPE_STRING:
        return "TEXT";
    case TYPE_API_KEYS:
        return "JSON";
    }
    return "VALUE";
}

void config_print_help(FILE *out)
{
    char flag[NAME_MAX_LEN + 8], env[NAME_MAX_LEN];
    int flag_width = 0, env_width = 0;
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        flag_name(s, flag, sizeof flag);
        env_name(s, env, sizeof env);
        int fw = (int)(strlen(flag) + 1 + strlen(metavar(s)));
        int ew = (int)strlen(env);
        flag_width = fw > flag_width ? fw : flag_width;
        env_width = ew > env_width ? ew : env_width;
    }
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const struct setting *s = &settings[i];
        char name[NAME_MAX_LEN];
        flag_name(s, name, sizeof name);
        snprintf(flag, sizeof flag, "%s %s", name, metavar(s));
        env_name(s, env, sizeof env);
        fprintf(out, "  %-*s   %-*s   (default ", flag_width, flag, env_width, env);
        switch (s->type) {
        case TYPE_INT:
        case TYPE_INT64:
            fprintf(out, "%lld) %s [%lld, %lld]\n", (long long)s->def, s->help, (long long)s->min,
                    (long long)s->max);
            break;
        case TYPE_BOOL:
            fprintf(out, "%s) %s\n", s->def ? "true" : "false", s->help);
            break;
        case TYPE_STRING:
        case TYPE_API_KEYS:
            fprintf(out, "%s) %s\n", s->def_str, s->help);
            break;
        }
    }
}
