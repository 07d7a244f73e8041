#include "harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A loaded machine under ASan may take tens of seconds to start a server that loads models; a
 * server that exits is noticed at once, so a long wait costs nothing when it fails. The message in
 * launch says 60 s. */
#define START_TIMEOUT_S    60.0
#define RUN_TIMEOUT_S      60.0
#define STOP_TIMEOUT_MS    15000
#define DEFAULT_TIMEOUT_MS 10000L
#define MAX_SERVERS        8

static const char *binary_path;
static const char *source_path;

void harness_init(const char *binary, const char *source_dir)
{
    binary_path = binary;
    source_path = source_dir;
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        exit(1);
    }
}

const char *harness_binary(void)
{
    return binary_path;
}

const char *harness_source_dir(void)
{
    return source_path;
}

double harness_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- Files ------------------------------------------------------------------------------------
 */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot create %s: %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0) fail_msg("cannot write %s: %s", path, strerror(errno));
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t size = 0;
    if (f) {
        FILE *out = open_memstream(&text, &size);
        if (out) {
            char buf[4096];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, out);
            fclose(out);
        }
        fclose(f);
    }
    return text ? text : strdup("");
}

static void join_path(char *out, const char *dir, const char *name)
{
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) fail_msg("path too long");
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0) fail_msg("mkdir %s: %s", path, strerror(errno));
}

static void make_link(const char *target, const char *path)
{
    if (symlink(target, path) != 0) fail_msg("symlink %s: %s", path, strerror(errno));
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    if (dir[0]) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *harness_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    data[n] = '\0';
    *size = (size_t)n;
    return data;
}

char *harness_read_source_file(const char *relative, size_t *size)
{
    char path[PATH_MAX];
    join_path(path, source_path, relative);
    return harness_read_file(path, size);
}

json_t *harness_load_source_json(const char *relative)
{
    char path[PATH_MAX];
    join_path(path, source_path, relative);
    json_error_t error;
    json_t *doc = json_load_file(path, 0, &error);
    if (!doc) fail_msg("%s: %s", path, error.text);
    return doc;
}

/* ---- Servers ----------------------------------------------------------------------------------
 */

static void make_static_tree(struct server *srv)
{
    char path[PATH_MAX];
    make_dir(srv->static_dir);
    join_path(path, srv->static_dir, "index.html");
    write_file(path, "<!doctype html><title>augserve test</title><p>index page</p>\n");
    join_path(path, srv->static_dir, "app.js");
    write_file(path, "console.log('augserve test app');\n");
    join_path(path, srv->static_dir, "alias.js");
    make_link("app.js", path);
    join_path(path, srv->static_dir, "sub");
    make_dir(path);
    join_path(path, srv->static_dir, "sub/page.txt");
    write_file(path, "a page in a subfolder\n");
    join_path(path, srv->static_dir, "empty");
    make_dir(path);
    /* Links leading out of the folder: to a file, to the parent folder, and to a sibling folder
     * whose name shares the prefix "static" (a naive prefix check would let it through). */
    join_path(path, srv->static_dir, "leak.txt");
    make_link("../outside.txt", path);
    join_path(path, srv->static_dir, "up");
    make_link("..", path);
    join_path(path, srv->dir, "static-evil");
    make_dir(path);
    join_path(path, srv->dir, "static-evil/secret.txt");
    write_file(path, srv->outside_content);
    join_path(path, srv->static_dir, "evil");
    make_link("../static-evil/secret.txt", path);
}

static void write_config(struct server *srv, const char *extra_json)
{
    json_t *cfg =
        json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "listen", "127.0.0.1:0", "data_dir",
                  srv->data_dir, "access_log", srv->access_log_path, "static_dir", srv->static_dir,
                  "workers", 2, "queue", 8, "shutdown_grace_s", 5);
    assert_non_null(cfg);
    if (extra_json) {
        json_error_t jerr;
        json_t *extra = json_loads(extra_json, 0, &jerr);
        if (!json_is_object(extra))
            fail_msg("extra settings are not a JSON object: %s (%s)", extra_json, jerr.text);
        json_object_update(cfg, extra);
        json_decref(extra);
    }
    if (json_dump_file(cfg, srv->config_path, JSON_INDENT(2)) != 0)
        fail_msg("cannot write %s", srv->config_path);
    json_decref(cfg);
}

struct server *server_prepare(const char *extra_json)
{
    struct server *srv = calloc(1, sizeof *srv);
    assert_non_null(srv);
    strcpy(srv->dir, "/tmp/augserve-it-XXXXXX");
    if (!mkdtemp(srv->dir)) fail_msg("mkdtemp: %s", strerror(errno));
    join_path(srv->config_path, srv->dir, "augserve.json");
    join_path(srv->stderr_path, srv->dir, "stderr.log");
    join_path(srv->access_log_path, srv->dir, "access.log");
    join_path(srv->data_dir, srv->dir, "data");
    join_path(srv->static_dir, srv->dir, "static");
    join_path(srv->outside_path, srv->dir, "outside.txt");
    unsigned char random[8];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, random, sizeof random) != (ssize_t)sizeof random)
        fail_msg("cannot read /dev/urandom");
    close(fd);
    snprintf(srv->outside_content, sizeof srv->outside_content,
             "OUTSIDE-SECRET-%02x%02x%02x%02x%02x%02x%02x%02x", random[0], random[1], random[2],
             random[3], random[4], random[5], random[6], random[7]);
    write_file(srv->outside_path, srv->outside_content);
    make_static_tree(srv);
    write_config(srv, extra_json);
    return srv;
}

/* The environment minus AUGSERVE_* variables, which would override the test's config file. */
static char **child_environment(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    assert_non_null(env);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "AUGSERVE_", 9) != 0) env[kept++] = environ[i];
    return env;
}

/* fork + exec of the binary with args, stdout and stderr to out_path (or separate files). Only
 * async-signal-safe calls between fork and exec. The child dies with us (PR_SET_PDEATHSIG), so a
 * crashed test program leaves no server behind. */
static pid_t spawn(const char *const args[], const char *out_path, const char *err_path)
{
    size_t argc = 0;
    while (args[argc])
        argc++;
    char **argv = calloc(argc + 2, sizeof *argv);
    assert_non_null(argv);
    argv[0] = (char *)binary_path;
    for (size_t i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    char **env = child_environment();
    long max_fd = sysconf(_SC_OPEN_MAX);
    if (max_fd < 0 || max_fd > 65536) max_fd = 65536;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        /* Children get default signal handling back: the server blocks what it needs. */
        signal(SIGPIPE, SIG_DFL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = strcmp(out_path, err_path) == 0
                      ? out
                      : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (long fd = 3; fd < max_fd; fd++)
            close((int)fd);
        execve(binary_path, argv, env);
        _exit(127);
    }
    free(argv);
    free(env);
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    return pid;
}

/* Collects the exit status if the process has exited. Returns 1 when it has. */
static int reap(struct server *srv)
{
    if (srv->exited) return 1;
    if (srv->pid <= 0) return 0;
    int status;
    pid_t r = waitpid(srv->pid, &status, WNOHANG);
    if (r == srv->pid) {
        srv->exited = 1;
        srv->wait_status = status;
        return 1;
    }
    return 0;
}

/* The port in the "listening" event, or 0 when it is not there yet. */
static int listening_port(const char *log)
{
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        assert_non_null(copy);
        int port = 0;
        json_t *doc = json_loads(copy, 0, NULL);
        const char *event = json_string_value(json_object_get(doc, "event"));
        const char *message = json_string_value(json_object_get(doc, "message"));
        if (event && message && strcmp(event, "listening") == 0) {
            const char *on = strstr(message, "on port ");
            if (on) port = atoi(on + strlen("on port "));
        }
        json_decref(doc);
        free(copy);
        if (port > 0) return port;
        if (!end) break;
        line = end + 1;
    }
    return 0;
}

/* Spawns the prepared server and waits for its port. On failure the child is killed (and its
 * stderr printed when dump is set) before the test fails. */
static void launch(struct server *srv, int dump)
{
    const char *args[] = {"--config", srv->config_path, NULL};
    const char *worker_args[] = {"worker", "--config", srv->config_path, NULL};
    srv->pid = spawn(srv->worker ? worker_args : args, srv->stderr_path, srv->stderr_path);
    double deadline = harness_now() + START_TIMEOUT_S;
    for (;;) {
        char *log = server_stderr(srv);
        srv->port = listening_port(log);
        free(log);
        if (srv->port > 0) return;
        const char *problem = NULL;
        if (reap(srv))
            problem = "augserve exited before listening";
        else if (harness_now() > deadline)
            problem = "augserve did not report listening within 60 s";
        if (problem) {
            server_stop(srv, SIGKILL, STOP_TIMEOUT_MS);
            if (dump) server_dump_stderr(srv, problem);
            fail_msg("%s (wait status 0x%x)", problem, srv->wait_status);
        }
        pause_ms(10);
    }
}

struct server *server_start(const char *extra_json)
{
    struct server *srv = server_prepare(extra_json);
    launch(srv, 1);
    return srv;
}

int server_stop(struct server *srv, int sig, int timeout_ms)
{
    if (srv->pid <= 0) return 0;
    if (!srv->exited && sig) kill(srv->pid, sig);
    double deadline = harness_now() + timeout_ms / 1000.0;
    while (!reap(srv)) {
        if (harness_now() > deadline) return -1;
        pause_ms(5);
    }
    return 0;
}

char *server_stderr(const struct server *srv)
{
    return read_file(srv->stderr_path);
}

int server_has_sanitizer_report(const struct server *srv)
{
    static const char *const markers[] = {
        "ERROR: AddressSanitizer",           "ERROR: LeakSanitizer",     "runtime error",
        "ERROR: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer",
    };
    char *log = server_stderr(srv);
    int found = 0;
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
        found |= strstr(log, markers[i]) != NULL;
    free(log);
    return found;
}

void server_dump_stderr(const struct server *srv, const char *why)
{
    char *log = server_stderr(srv);
    fprintf(stderr, "---- augserve stderr (%s; %s) ----\n%s%s---- end of augserve stderr ----\n",
            srv->dir, why, log, log[0] && log[strlen(log) - 1] != '\n' ? "\n" : "");
    free(log);
}

void server_cleanup(struct server *srv)
{
    if (!srv) return;
    if (srv->pid > 0 && !srv->exited) {
        kill(srv->pid, SIGKILL);
        int status;
        if (waitpid(srv->pid, &status, 0) == srv->pid) {
            srv->exited = 1;
            srv->wait_status = status;
        }
    }
    remove_tree(srv->dir);
    free(srv);
}

/* ---- cmocka test context ----------------------------------------------------------------------
 */

struct harness_ctx {
    struct server *servers[MAX_SERVERS];
    size_t count;
    int passed;
};

/* The running test's model repository (harness_setup_models), or "". */
static char models_dir[64];

int harness_setup(void **state)
{
    struct harness_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return -1;
    *state = ctx;
    return 0;
}

static void ctx_add(void **state, struct server *srv)
{
    struct harness_ctx *ctx = *state;
    if (ctx->count == MAX_SERVERS) {
        server_cleanup(srv);
        fail_msg("more than %d servers in one test", MAX_SERVERS);
    }
    ctx->servers[ctx->count++] = srv;
}

struct server *harness_start(void **state, const char *extra_json)
{
    /* Registered before it starts, so the teardown cleans up (and prints its stderr) after a
     * failed start too. */
    struct server *srv = server_prepare(extra_json);
    ctx_add(state, srv);
    launch(srv, 0);
    return srv;
}

struct server *harness_start_worker(void **state, const char *extra_json)
{
    struct server *srv = server_prepare(extra_json);
    srv->worker = 1;
    ctx_add(state, srv);
    launch(srv, 0);
    return srv;
}

int harness_setup_models(void **state)
{
    snprintf(models_dir, sizeof models_dir, "/tmp/augserve-models-XXXXXX");
    if (!mkdtemp(models_dir)) {
        models_dir[0] = '\0';
        return -1;
    }
    return harness_setup(state);
}

const char *harness_models_dir(void)
{
    return models_dir;
}

struct server *harness_start_with_models(void **state, const char *extra)
{
    char config[4096];
    snprintf(config, sizeof config, "{\"models_dir\": \"%s\"%s%s}", models_dir,
             extra[0] ? ", " : "", extra);
    return harness_start(state, config);
}

struct server *harness_prepare(void **state, const char *extra_json)
{
    struct server *srv = server_prepare(extra_json);
    ctx_add(state, srv);
    return srv;
}

void harness_pass(void **state)
{
    struct harness_ctx *ctx = *state;
    ctx->passed = 1;
}

int harness_teardown(void **state)
{
    struct harness_ctx *ctx = *state;
    int rc = 0;
    for (size_t i = 0; i < ctx->count; i++) {
        struct server *srv = ctx->servers[i];
        const char *problem = NULL;
        if (srv->pid > 0 && !srv->exited) {
            /* A graceful stop, so sanitizers get to run their exit checks (leaks). */
            if (server_stop(srv, SIGTERM, STOP_TIMEOUT_MS) != 0)
                problem = "it did not exit within 15 s of SIGTERM";
            else if (!WIFEXITED(srv->wait_status) || WEXITSTATUS(srv->wait_status) != 0)
                problem = "it did not exit with status 0 after SIGTERM";
        }
        if (srv->pid > 0 && server_has_sanitizer_report(srv)) problem = "sanitizer report";
        if (problem) {
            fprintf(stderr, "augserve in %s: %s (wait status 0x%x)\n", srv->dir, problem,
                    srv->wait_status);
            rc = -1;
        }
        if (problem || !ctx->passed) server_dump_stderr(srv, problem ? problem : "test failed");
        server_cleanup(srv);
    }
    free(ctx);
    *state = NULL;
    remove_tree(models_dir);
    models_dir[0] = '\0';
    return rc;
}

int harness_run_binary(const char *const args[], char **out, char **err)
{
    char dir[] = "/tmp/augserve-run-XXXXXX";
    if (!mkdtemp(dir)) fail_msg("mkdtemp: %s", strerror(errno));
    char out_path[PATH_MAX], err_path[PATH_MAX];
    join_path(out_path, dir, "stdout");
    join_path(err_path, dir, "stderr");
    struct server proc = {.pid = spawn(args, out_path, err_path)};
    double deadline = harness_now() + RUN_TIMEOUT_S;
    while (!reap(&proc) && harness_now() < deadline)
        pause_ms(5);
    if (!proc.exited) {
        kill(proc.pid, SIGKILL);
        waitpid(proc.pid, NULL, 0);
    }
    *out = read_file(out_path);
    *err = read_file(err_path);
    remove_tree(dir);
    if (!proc.exited || !WIFEXITED(proc.wait_status)) return -1;
    return WEXITSTATUS(proc.wait_status);
}

void harness_expect_refused(const char *const args[], const char *message)
{
    char *out = NULL, *err = NULL;
    int status = harness_run_binary(args, &out, &err);
    assert_true(status > 0);
    if (!strstr(err, message)) fail_msg("stderr lacks \"%s\":\n%s", message, err);
    assert_null(strstr(err, "listening"));
    free(out);
    free(err);
}

json_t *harness_keygen(const char *name, const char *scopes, char key[128])
{
    char *out, *err;
    const char *args[] = {"keygen", "--name", name, "--scopes", scopes, NULL};
    int status = harness_run_binary(args, &out, &err);
    if (status != 0) fail_msg("keygen exited %d: %s", status, err);
    json_t *entry = NULL;
    key[0] = '\0';
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "key: ", 5) == 0) snprintf(key, 128, "%s", line + 5);
        if (line[0] == '{') entry = json_loads(line, 0, NULL);
    }
    assert_non_null(entry);
    assert_true(key[0] != '\0');
    free(out);
    free(err);
    return entry;
}

int harness_main(int argc, char **argv, const char *name, const struct CMUnitTest *tests,
                 size_t count)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s AUGSERVE_BINARY SOURCE_DIR\n", argv[0]);
        return 2;
    }
    harness_init(argv[1], argv[2]);
    int failed = _cmocka_run_group_tests(name, tests, count, NULL, NULL);
    curl_global_cleanup();
    return failed;
}

/* ---- HTTP -------------------------------------------------------------------------------------
 */

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_response *resp = arg;
    size_t len = size * nmemb;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new status line: whatever came before was an interim (1xx) response. */
        for (size_t i = 0; i < resp->header_count; i++) {
            free(resp->headers[i].name);
            free(resp->headers[i].value);
        }
        resp->header_count = 0;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon) return len; /* the blank line */
    size_t name_len = (size_t)(colon - data);
    const char *value = colon + 1, *end = data + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    struct http_header *grown =
        realloc(resp->headers, (resp->header_count + 1) * sizeof *resp->headers);
    if (!grown) return 0;
    resp->headers = grown;
    grown[resp->header_count].name = strndup(data, name_len);
    grown[resp->header_count].value = strndup(value, (size_t)(end - value));
    resp->header_count++;
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_response *resp = arg;
    size_t len = size * nmemb;
    char *grown = realloc(resp->body, resp->body_size + len + 1);
    if (!grown) return 0;
    memcpy(grown + resp->body_size, data, len);
    resp->body = grown;
    resp->body_size += len;
    resp->body[resp->body_size] = '\0';
    return len;
}

static int names_header(const char *const *headers, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, len) == 0 && headers[i][len] == ':') return 1;
    return 0;
}

CURLcode http_send(const struct server *srv, const struct http_request *req,
                   struct http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    CURL *h = curl_easy_init();
    if (!h) {
        /* No fail_msg here: this may run on a thread of http_async. */
        resp->curl_code = CURLE_FAILED_INIT;
        snprintf(resp->curl_error, sizeof resp->curl_error, "curl_easy_init failed");
        resp->body = calloc(1, 1);
        return resp->curl_code;
    }
    /* Room for targets past the server's max_uri_bytes default (8192), which tests send. */
    char url[32768];
    if ((size_t)snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv->port, req->path) >=
        sizeof url) {
        curl_easy_cleanup(h);
        resp->curl_code = CURLE_URL_MALFORMAT;
        snprintf(resp->curl_error, sizeof resp->curl_error, "the path is too long for the harness");
        resp->body = calloc(1, 1);
        return resp->curl_code;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, resp->curl_error);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);

    struct curl_slist *headers = NULL;
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        headers = curl_slist_append(headers, req->headers[i]);
    if (!req->allow_expect && !names_header(req->headers, "Expect"))
        headers = curl_slist_append(headers, "Expect:");
    /* When expecting "100 Continue", give a slow server time to answer before the body goes. */
    if (req->allow_expect) curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    curl_mime *mime = NULL;
    const char *method = req->method;
    int has_body = req->body || req->parts || req->read_fn;
    if (method && strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req->parts) {
        mime = curl_mime_init(h);
        for (size_t i = 0; i < req->part_count; i++) {
            const struct http_part *p = &req->parts[i];
            curl_mimepart *part = curl_mime_addpart(mime);
            curl_mime_name(part, p->name);
            curl_mime_data(part, p->data, p->size);
            if (p->filename) curl_mime_filename(part, p->filename);
            if (p->content_type) curl_mime_type(part, p->content_type);
        }
        curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    } else if (req->read_fn) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, req->read_fn);
        curl_easy_setopt(h, CURLOPT_READDATA, req->read_arg);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, req->read_size);
    } else if (req->body || (method && strcmp(method, "POST") == 0)) {
        /* POST without a body: an empty one with Content-Length: 0. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_size);
    }
    /* Other methods, and a GET with a body, go by name over what the body options imply. */
    int plain = method && (strcmp(method, "HEAD") == 0 || strcmp(method, "POST") == 0 ||
                           (strcmp(method, "GET") == 0 && !has_body));
    if (method && !plain) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);

    double start = harness_now();
    resp->curl_code = curl_easy_perform(h);
    resp->elapsed_s = harness_now() - start;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (!resp->body) resp->body = calloc(1, 1);
    curl_easy_cleanup(h);
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    return resp->curl_code;
}

CURLcode http_get(const struct server *srv, const char *path, struct http_response *resp)
{
    struct http_request req = {.path = path};
    return http_send(srv, &req, resp);
}

CURLcode http_post(const struct server *srv, const char *path, const char *content_type,
                   const void *body, size_t size, struct http_response *resp)
{
    char header[256];
    snprintf(header, sizeof header, "Content-Type: %s", content_type);
    const char *headers[] = {header, NULL};
    struct http_request req = {.path = path, .headers = headers, .body = body, .body_size = size};
    return http_send(srv, &req, resp);
}

void http_get_expect(const struct server *srv, const char *path, long status)
{
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, status);
    http_response_free(&r);
}

void http_response_free(struct http_response *resp)
{
    for (size_t i = 0; i < resp->header_count; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

const char *http_header(const struct http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->header_count; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0) return resp->headers[i].value;
    return NULL;
}

json_t *http_json(const struct http_response *resp)
{
    json_error_t jerr;
    json_t *doc = json_loadb(resp->body, resp->body_size, 0, &jerr);
    if (!doc)
        fail_msg("status %ld: the body is not JSON (%s): %.500s", resp->status, jerr.text,
                 resp->body);
    return doc;
}

void harness_assert_error_envelope(const struct http_response *resp, long status, const char *code,
                                   const char *file, int line)
{
    if (resp->curl_code != CURLE_OK)
        fail_msg("%s:%d: no response (curl: %s), expected %ld %s", file, line, resp->curl_error,
                 status, code);
    if (resp->status != status)
        fail_msg("%s:%d: status %ld, expected %ld (%s); body: %.500s", file, line, resp->status,
                 status, code, resp->body);
    const char *type = http_header(resp, "Content-Type");
    if (!type || strncmp(type, "application/json", 16) != 0)
        fail_msg("%s:%d: error Content-Type is %s", file, line, type ? type : "missing");
    json_t *doc = http_json(resp);
    json_t *error = json_object_get(doc, "error");
    if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_object(error))
        fail_msg("%s:%d: not an error envelope: %.500s", file, line, resp->body);
    if (json_object_size(error) != 3)
        fail_msg("%s:%d: the error object must have exactly code, message, request_id: %.500s",
                 file, line, resp->body);
    const char *got_code = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    const char *request_id = json_string_value(json_object_get(error, "request_id"));
    if (!got_code || strcmp(got_code, code) != 0)
        fail_msg("%s:%d: error code %s, expected %s", file, line, got_code ? got_code : "(none)",
                 code);
    if (!message || !message[0])
        fail_msg("%s:%d: empty error message: %.500s", file, line, resp->body);
    const char *header = http_header(resp, "X-Request-Id");
    if (!header || !header[0]) fail_msg("%s:%d: no X-Request-Id header", file, line);
    if (!request_id || strcmp(request_id, header) != 0)
        fail_msg("%s:%d: request_id %s differs from X-Request-Id %s", file, line,
                 request_id ? request_id : "(none)", header);
    json_decref(doc);
}

struct http_async {
    pthread_t thread;
    struct server srv; /* a copy: only the port is used */
    struct http_request req;
    struct http_response resp;
    atomic_int done;
};

static void *async_main(void *arg)
{
    struct http_async *a = arg;
    http_send(&a->srv, &a->req, &a->resp);
    atomic_store(&a->done, 1);
    return NULL;
}

struct http_async *http_async_start(const struct server *srv, const struct http_request *req)
{
    struct http_async *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->srv.port = srv->port;
    a->req = *req;
    if (pthread_create(&a->thread, NULL, async_main, a) != 0) fail_msg("pthread_create failed");
    return a;
}

int http_async_done(struct http_async *a)
{
    return atomic_load(&a->done);
}

void http_async_join(struct http_async *a, struct http_response *resp)
{
    pthread_join(a->thread, NULL);
    *resp = a->resp;
    free(a);
}

/* ---- Other probes -----------------------------------------------------------------------------
 */

int tcp_connect_errno(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

int metrics_sample(const char *text, const char *series, double *value)
{
    size_t len = strlen(series);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, series, len) == 0 && line[len] == ' ') {
            char *end;
            double v = strtod(line + len + 1, &end);
            if (end != line + len + 1) {
                *value = v;
                return 1;
            }
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    return 0;
}

int metrics_wait(const struct server *srv, const char *series, double value, int timeout_ms,
                 double *last)
{
    double deadline = harness_now() + timeout_ms / 1000.0;
    for (;;) {
        struct http_response r;
        http_get(srv, "/metrics", &r);
        double v = -1;
        int found = r.status == 200 && metrics_sample(r.body, series, &v);
        http_response_free(&r);
        if (last) *last = found ? v : -1;
        if (found && v == value) return 1;
        if (found && v > value) return -1;
        if (harness_now() > deadline) return 0;
        pause_ms(10);
    }
}

void sha256_hex(const void *data, size_t size, char out[65])
{
    unsigned char digest[32];
    unsigned int len = sizeof digest;
    EVP_Digest(data, size, digest, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

const char *json_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s) fail_msg("no string \"%s\" in the response", key);
    return s;
}

json_int_t json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) fail_msg("no integer \"%s\" in the response", key);
    return json_integer_value(v);
}

unsigned char *harness_unbase64(const char *text, size_t *size)
{
    size_t len = strlen(text);
    unsigned char *out = malloc(len / 4 * 3 + 1);
    assert_non_null(out);
    int n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
    if (n < 0) fail_msg("not base64: %.60s", text);
    /* EVP_DecodeBlock counts the padding's zero bytes. */
    *size = (size_t)n - (len >= 1 && text[len - 1] == '=') - (len >= 2 && text[len - 2] == '=');
    return out;
}
