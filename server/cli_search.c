/* `augserve search`: a policy search run on a server from the command line. It is a client, the
 * one command that talks to a running augserve rather than calling the engine itself (a search
 * needs the server's datasets, models, store and runners): it submits the search as POST
 * /v1/jobs does, follows the job's events (GET /v1/jobs/{id}/events, Server-Sent Events) and, as
 * they come, prints each finished trial as one JSON line, then the result. The trials are read
 * from the job's artifact trials.jsonl, which holds a row per finished trial in trial order (the
 * events only wake the reader up), so a line is the row the leaderboard has. Ctrl-C cancels the
 * job (DELETE /v1/jobs/{id}) and waits for it to stop, unless --detach leaves it running. */
#include "cli.h"
#include "cli_internal.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/parse.h"

/* Reads of trials.jsonl while the job runs: at most this often (events come per batch). */
#define TRIALS_EVERY_S 0.5
/* Waits between reconnections to a stream that ended before the job did (a server restart). */
#define RECONNECT_S 1
#define RECONNECTS  60

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct client {
    const char *server; /* "http://host:port", without a trailing slash */
    const char *key;    /* NULL: none */
    char id[64];        /* the job's */
    long next_trial;    /* the first trial not printed yet */
    double last_read;   /* cli_now() of the last read of trials.jsonl */
    long long last_event;
    int ended; /* a state event said the job ended */
};

struct buffer {
    char *data;
    size_t size;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    struct buffer *b = arg;
    char *grown = realloc(b->data, b->size + size * n + 1);
    if (!grown) return 0;
    memcpy(grown + b->size, data, size * n);
    b->data = grown;
    b->size += size * n;
    b->data[b->size] = '\0';
    return size * n;
}

/* An easy handle for method path (body: JSON, or NULL), with the key; NULL when out of memory. */
static CURL *handle(const struct client *c, const char *method, const char *path, const char *body,
                    struct curl_slist **headers)
{
    CURL *h = curl_easy_init();
    char url[2048], auth[1024];
    snprintf(url, sizeof url, "%s%s", c->server, path);
    *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->key);
        *headers = curl_slist_append(*headers, auth);
    }
    if (!h || !*headers) {
        curl_easy_cleanup(h);
        curl_slist_free_all(*headers);
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* A stream's keep-alive comes every 15 s at most: a minute of silence is a dead link, after
     * which the job is asked for and the stream opened again. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    return h;
}

/* Sends method path and reads the answer: its status (0 when the server could not be reached,
 * with why in err) and body (malloc'd, NUL-terminated). */
static long call(const struct client *c, const char *method, const char *path, const char *body,
                 char **answer, struct eng_error *err)
{
    struct buffer b = {calloc(1, 1), 0};
    struct curl_slist *headers = NULL;
    CURL *h = b.data ? handle(c, method, path, body, &headers) : NULL;
    long status = 0;
    if (!h) {
        eng_no_memory(err);
    } else {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        CURLcode rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        else
            eng_fail(err, ENG_INTERNAL, "%s: %s", c->server, curl_easy_strerror(rc));
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    *answer = b.data;
    return status;
}

/* The error message of an error envelope ({"error": {"message"}}), else the body itself. */
static void say_refusal(long status, const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    const char *message =
        json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    fprintf(stderr, "augserve search: %s (HTTP %ld)\n", message ? message : body, status);
    json_decref(doc);
}

/* The job's document (GET /v1/jobs/{id}), or NULL after saying why. */
static json_t *get_job(const struct client *c)
{
    char path[128], *body;
    struct eng_error err = {0};
    snprintf(path, sizeof path, "/v1/jobs/%s", c->id);
    long status = call(c, "GET", path, NULL, &body, &err);
    json_t *job = status == 200 ? json_loads(body, 0, NULL) : NULL;
    if (status == 0)
        fprintf(stderr, "augserve search: %s\n", err.message);
    else if (status != 200)
        say_refusal(status, body);
    free(body);
    return job;
}

/* Prints the rows of trials.jsonl from trial next_trial on, each without its point (as the
 * result's trials). A row not yet whole (the server is writing it) waits for the next read. */
static void print_trials(struct client *c)
{
    char path[160], *body;
    struct eng_error err = {0};
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/trials.jsonl", c->id);
    c->last_read = cli_now();
    if (call(c, "GET", path, NULL, &body, &err) == 200)
        for (char *line = body, *end; (end = strchr(line, '\n')); line = end + 1) {
            json_t *row = json_loadb(line, (size_t)(end - line), 0, NULL);
            json_int_t trial = json_integer_value(json_object_get(row, "trial"));
            if (row && trial == c->next_trial) {
                json_object_del(row, "point");
                cli_print_line(json_incref(row));
                fflush(stdout);
                c->next_trial++;
            }
            json_decref(row);
        }
    free(body);
}

/* One Server-Sent Event's field line ("id: 5", "event: state", "data: {...}"), and the blank
 * line that ends an event. */
struct stream {
    struct client *c;
    char line[65536];
    size_t used;
    char event[32];
    int state; /* the event under way is a state event whose data said the job ended */
};

static void on_field(struct stream *s)
{
    s->line[s->used] = '\0';
    if (s->used == 0) { /* the event is whole */
        if (s->state) s->c->ended = 1;
        if (s->event[0] && (s->state || cli_now() - s->c->last_read >= TRIALS_EVERY_S))
            print_trials(s->c);
        s->event[0] = '\0';
        s->state = 0;
    } else if (strncmp(s->line, "event: ", 7) == 0) {
        snprintf(s->event, sizeof s->event, "%s", s->line + 7);
    } else if (strncmp(s->line, "id: ", 4) == 0) {
        long long id;
        if (parse_signed(s->line + 4, 0, INT64_MAX, &id) == PARSE_OK) s->c->last_event = id;
    } else if (strncmp(s->line, "data: ", 6) == 0 && strcmp(s->event, "state") == 0) {
        json_t *data = json_loads(s->line + 6, 0, NULL);
        const char *state = json_string_value(json_object_get(data, "state"));
        s->state = state && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                             strcmp(state, "cancelled") == 0);
        json_decref(data);
    }
    s->used = 0;
}

static size_t on_stream(char *data, size_t size, size_t n, void *arg)
{
    struct stream *s = arg;
    for (size_t i = 0; i < size * n; i++) {
        if (data[i] == '\r') continue;
        if (data[i] == '\n')
            on_field(s);
        else if (s->used + 1 < sizeof s->line) /* a longer line is cut: only ids and states count */
            s->line[s->used++] = data[i];
    }
    return size * n;
}

/* Stops a transfer when Ctrl-C was pressed. */
static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)arg, (void)a, (void)b, (void)c, (void)d;
    return interrupted != 0;
}

/* Follows the job's events from the last one seen until the stream ends (the job ended, the
 * server stopped or Ctrl-C). */
static void follow(struct client *c)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/events?last_event_id=%lld", c->id, c->last_event);
    struct stream *s = calloc(1, sizeof *s);
    struct curl_slist *headers = NULL;
    CURL *h = s ? handle(c, "GET", path, NULL, &headers) : NULL;
    if (h) {
        s->c = c;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_perform(h);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(s);
}

/* Follows the job to its end, cancelling it at Ctrl-C unless detach: its final document, or
 * NULL after saying why (*left: the job was left running). */
static json_t *watch(struct client *c, int detach, int *left)
{
    int cancelled = 0;
    *left = 0;
    for (int tries = 0; tries <= RECONNECTS; tries++) {
        follow(c);
        if (interrupted && detach) {
            fprintf(stderr, "augserve search: job %s left running\n", c->id);
            *left = 1;
            return NULL;
        }
        if (interrupted && !cancelled) {
            char path[128], *body;
            struct eng_error err = {0};
            snprintf(path, sizeof path, "/v1/jobs/%s", c->id);
            long status = call(c, "DELETE", path, NULL, &body, &err);
            fprintf(stderr, "augserve search: cancelling job %s%s%s\n", c->id,
                    status == 0 ? ": " : "", status == 0 ? err.message : "");
            free(body);
            cancelled = 1;
            interrupted = 0;
            signal(SIGINT, SIG_DFL); /* a second Ctrl-C stops waiting */
            tries = 0;
            continue;
        }
        json_t *job = get_job(c);
        const char *state = json_string_value(json_object_get(job, "state"));
        if (!job || c->ended ||
            (state && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                       strcmp(state, "cancelled") == 0))) {
            if (job) print_trials(c);
            return job;
        }
        json_decref(job);
        sleep(RECONNECT_S);
    }
    fprintf(stderr, "augserve search: job %s: its events stopped coming\n", c->id);
    return NULL;
}

static void search_usage(FILE *out)
{
    fprintf(
        out,
        "usage: augserve search --server URL [--key KEY] [--params FILE|-] [--space FILE|NAME]\n"
        "                       [--algorithm A] [--objective O] [--trials N] [--seconds S]\n"
        "                       [--parallel P] [--dataset ID] [--model M] [--split VAL]\n"
        "                       [--seed S] [--save-as NAME] [--detach]\n"
        "Submits a search job to the server at URL (POST /v1/jobs, kind search) and follows\n"
        "it: one JSON line per finished trial, then the result. --params gives the params\n"
        "(a JSON file, or - for stdin); the other flags set theirs over it: --space a JSON\n"
        "file or a named space (randaugment, autoaugment, ops-subset, gaugment,\n"
        "specaugment), --trials and --seconds the budget, --split the val split.\n"
        "Exits 0 when the search succeeds, 1 with the server's message when it refuses the\n"
        "params or the job fails. Ctrl-C cancels the job, unless --detach: then it is left\n"
        "running.\n");
}

/* The JSON text of path ("-": stdin), or NULL after saying why. */
static json_t *load_json(const char *path)
{
    json_error_t jerr;
    json_t *doc =
        strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(path, 0, &jerr);
    if (!doc)
        fprintf(stderr, "augserve search: %s: line %d: %s\n", strcmp(path, "-") ? path : "stdin",
                jerr.line, jerr.text);
    return doc;
}

/* Sets params[key] (a "a.b" key sets member b of object a) to value, which it takes; 0, or -1. */
static int set(json_t *params, const char *key, json_t *value)
{
    const char *dot = strchr(key, '.');
    if (!value) return -1;
    if (!dot) return json_object_set_new(params, key, value);
    char outer[32];
    snprintf(outer, sizeof outer, "%.*s", (int)(dot - key), key);
    json_t *inner = json_object_get(params, outer);
    if (!json_is_object(inner)) {
        inner = json_object();
        if (!inner || json_object_set_new(params, outer, inner) != 0) {
            json_decref(value);
            return -1;
        }
    }
    return json_object_set_new(inner, dot + 1, value);
}

/* The shorthand flags' values, NULL when not given. */
struct shorthand {
    const char *params, *space, *algorithm, *objective, *dataset, *model, *split, *save_as;
    const char *trials, *seconds, *parallel, *seed;
};

/* A number flag's value as JSON, or NULL after saying why. */
static json_t *number(const char *flag, const char *text, int whole)
{
    long long n;
    double x;
    if (whole && parse_signed(text, 0, INT64_MAX, &n) == PARSE_OK) return json_integer(n);
    if (!whole && parse_real(text, 0, 1e300, &x) == PARSE_OK) return json_real(x);
    fprintf(stderr, "augserve search: %s %s: must be a %s number\n", flag, text,
            whole ? "whole, non-negative" : "non-negative");
    return NULL;
}

/* The search's params: --params' document, with the shorthand flags set over it. */
static json_t *build_params(const struct shorthand *f)
{
    json_t *params = f->params ? load_json(f->params) : json_object();
    if (!json_is_object(params)) {
        if (params) fprintf(stderr, "augserve search: --params: must be a JSON object\n");
        json_decref(params);
        return NULL;
    }
    json_t *space = NULL;
    if (f->space)
        space = access(f->space, F_OK) == 0 ? load_json(f->space)
                                            : json_pack("{s:s}", "space", f->space);
    const struct {
        const char *key;
        json_t *value;
        const char *given;
    } members[] = {
        {"space", space, f->space},
        {"algorithm", f->algorithm ? json_string(f->algorithm) : NULL, f->algorithm},
        {"objective", f->objective ? json_string(f->objective) : NULL, f->objective},
        {"dataset", f->dataset ? json_string(f->dataset) : NULL, f->dataset},
        {"model", f->model ? json_string(f->model) : NULL, f->model},
        {"splits.val", f->split ? json_string(f->split) : NULL, f->split},
        {"save_as", f->save_as ? json_string(f->save_as) : NULL, f->save_as},
        {"budget.trials", f->trials ? number("--trials", f->trials, 1) : NULL, f->trials},
        {"budget.seconds", f->seconds ? number("--seconds", f->seconds, 0) : NULL, f->seconds},
        {"parallel", f->parallel ? number("--parallel", f->parallel, 1) : NULL, f->parallel},
        {"seed", f->seed ? number("--seed", f->seed, 1) : NULL, f->seed},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (members[i].given && set(params, members[i].key, members[i].value) != 0)
            ok = 0;
        else if (!members[i].given)
            json_decref(members[i].value);
    if (ok) return params;
    json_decref(params);
    return NULL;
}

/* Submits params: 0 with the job's id in c->id, or 1 after saying why. */
static int submit(struct client *c, json_t *params)
{
    json_t *doc = json_pack("{s:s, s:O}", "kind", "search", "params", params);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL, *body = NULL;
    json_decref(doc);
    if (!text) return fprintf(stderr, "augserve search: out of memory\n"), 1;
    struct eng_error err = {0};
    long status = call(c, "POST", "/v1/jobs", text, &body, &err);
    free(text);
    json_t *job = status == 202 ? json_loads(body, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(job, "id"));
    if (id) snprintf(c->id, sizeof c->id, "%s", id);
    if (status == 0)
        fprintf(stderr, "augserve search: %s\n", err.message);
    else if (!id)
        say_refusal(status, body);
    else
        fprintf(stderr, "augserve search: job %s queued\n", c->id);
    json_decref(job);
    free(body);
    return id ? 0 : 1;
}

/* The end: the result line and 0, or the job's error and 1. */
static int finish(const struct client *c, json_t *job)
{
    const char *state = json_string_value(json_object_get(job, "state"));
    int ok = state && strcmp(state, "succeeded") == 0;
    if (ok)
        cli_print_line(json_incref(json_object_get(job, "result")));
    else
        fprintf(stderr, "augserve search: job %s %s%s%s\n", c->id, state ? state : "ended",
                json_is_string(json_object_get(job, "error")) ? ": " : "",
                json_is_string(json_object_get(job, "error"))
                    ? json_string_value(json_object_get(job, "error"))
                    : "");
    json_decref(job);
    return ok ? 0 : 1;
}

int cli_search(int argc, char **argv)
{
    struct client c = {.last_event = 0};
    struct shorthand f = {0};
    /* --detach takes no value: the flags are the rest, in pairs. */
    char **pairs = calloc((size_t)argc + 1, sizeof *pairs);
    int detach = 0, n = 0;
    if (!pairs) return fprintf(stderr, "augserve search: out of memory\n"), 1;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--detach") == 0 && n % 2 == 0) /* where a flag's name goes */
            detach = 1;
        else
            pairs[n++] = argv[i];
    const struct cli_flag flags[] = {
        {"--server", FLAG_TEXT, &c.server},       {"--key", FLAG_TEXT, &c.key},
        {"--params", FLAG_TEXT, &f.params},       {"--space", FLAG_TEXT, &f.space},
        {"--algorithm", FLAG_TEXT, &f.algorithm}, {"--objective", FLAG_TEXT, &f.objective},
        {"--trials", FLAG_TEXT, &f.trials},       {"--seconds", FLAG_TEXT, &f.seconds},
        {"--parallel", FLAG_TEXT, &f.parallel},   {"--dataset", FLAG_TEXT, &f.dataset},
        {"--model", FLAG_TEXT, &f.model},         {"--split", FLAG_TEXT, &f.split},
        {"--seed", FLAG_TEXT, &f.seed},           {"--save-as", FLAG_TEXT, &f.save_as}};
    int parsed = cli_parse_flags(n, pairs, flags, FLAG_COUNT(flags));
    free(pairs);
    if (parsed != 0 || !c.server) return search_usage(stderr), 2;
    char server[1024];
    snprintf(server, sizeof server, "%s", c.server);
    for (size_t end = strlen(server); end > 0 && server[end - 1] == '/'; end--)
        server[end - 1] = '\0';
    c.server = server;
    json_t *params = build_params(&f);
    if (!params) return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        json_decref(params);
        return fprintf(stderr, "augserve search: libcurl did not start\n"), 1;
    }
    int rc = submit(&c, params), left = 0;
    json_decref(params);
    if (rc == 0) {
        struct sigaction sa = {.sa_handler = on_interrupt};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        json_t *job = watch(&c, detach, &left);
        rc = left ? 130 : job ? finish(&c, job) : 1;
    }
    curl_global_cleanup();
    return rc;
}
