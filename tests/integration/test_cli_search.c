/* `augserve search`, the command-line client, run as a subprocess against the real server on the
 * colour model (colour_model.h) and colour_dataset.h's val split of solid colours, where FlipLR
 * leaves every image right (value 1) and Invert every one wrong (0): it prints one line per
 * finished trial, then the result, and exits 0; a refused params or a failed job give the
 * server's message and exit 1; --params - reads stdin; Ctrl-C cancels the job. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colour_dataset.h"
#include "colour_model.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define CONFIG "{\"preprocess\": {}, \"labels\": \"labels.txt\"}"
#define LABELS "red\ngreen\nblue\n"

#define CHOICE "{\"$search\": {\"choice\": [{\"op\": \"FlipLR\"}, {\"op\": \"Invert\"}]}}"

struct cli {
    struct server *srv;
    char ds[64], url[64], space[PATH_MAX];
};

/* A server on the colour model and dataset with more settings (members of a JSON object, or
 * ""), and a space file holding CHOICE. */
static void start_with(void **state, struct cli *c, const char *more)
{
    char settings[2048];
    snprintf(settings, sizeof settings, "\"job_threads\": 2%s", more);
    colour_model_write("colour", CONFIG, LABELS);
    c->srv = harness_start_with_models(state, settings);
    colour_dataset_make(c->srv, CLASSES, 1, c->ds);
    snprintf(c->url, sizeof c->url, "http://127.0.0.1:%d/", c->srv->port);
    snprintf(c->space, sizeof c->space, "%s/space.json", c->srv->dir);
    write_file(c->space, CHOICE, strlen(CHOICE));
}

static void start(void **state, struct cli *c)
{
    start_with(state, c, "");
}

/* The lines of text (modified), at most max, into lines: their count. */
static size_t split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n"))
        lines[n++] = line;
    return n;
}

/* A grid over FlipLR and Invert by the shorthand flags: two trial lines, FlipLR's value 1 and
 * Invert's 0, then the result, whose trials are those lines and whose best is FlipLR. */
static void test_search_prints_trials_and_result(void **state)
{
    struct cli c;
    start(state, &c);
    char *out, *err;
    const char *args[] = {"search",      "--server",  c.url,         "--space",  c.space,
                          "--algorithm", "grid",      "--objective", "affinity", "--trials",
                          "10",          "--dataset", c.ds,          "--model",  "colour",
                          "--split",     "val",       "--seed",      "3",        NULL};
    int status = harness_run_binary(args, &out, &err);
    if (status != 0) fail_msg("exit %d: %s", status, err);
    char *lines[8];
    assert_int_equal(split_lines(out, lines, 8), 3);
    static const double values[] = {1, 0};
    json_t *result = json_loads(lines[2], 0, NULL);
    assert_non_null(result);
    for (size_t i = 0; i < 2; i++) {
        json_t *row = json_loads(lines[i], 0, NULL);
        assert_non_null(row);
        assert_int_equal(json_int(row, "trial"), (json_int_t)i);
        assert_true(json_number_value(json_object_get(row, "value")) == values[i]);
        assert_null(json_object_get(row, "point"));
        assert_true(json_equal(row, json_array_get(json_object_get(result, "trials"), i)));
        json_decref(row);
    }
    json_t *best = json_object_get(result, "best");
    assert_int_equal(json_int(best, "trial"), 0);
    assert_true(json_number_value(json_object_get(best, "value")) == 1);
    assert_non_null(strstr(err, "augserve search: job "));
    json_decref(result);
    free(out);
    free(err);
    harness_pass(state);
}

/* --params from a file. A space the server refuses: its message and exit 1, nothing on stdout; a
 * job that fails (every trial's crop larger than the images): its error and exit 1; no server:
 * exit 1. */
static void test_refusals_and_failures(void **state)
{
    struct cli c;
    start(state, &c);
    char params_path[PATH_MAX], *params = NULL, *out, *err;
    snprintf(params_path, sizeof params_path, "%s/params.json", c.srv->dir);
    assert_true(asprintf(&params,
                         "{\"space\": {\"space\": \"randaugment\"}, \"algorithm\": \"random\", "
                         "\"objective\": \"affinity\", \"budget\": {\"trials\": 2}, \"dataset\": "
                         "\"%s\", \"splits\": {\"val\": \"val\"}, \"model\": \"colour\"}",
                         c.ds) > 0);
    write_file(params_path, params, strlen(params));
    free(params);

    const char *refused[] = {"search",    "--server", c.url,         "--params",
                             params_path, "--space",  "specaugment", NULL};
    assert_int_equal(harness_run_binary(refused, &out, &err), 1);
    assert_string_equal(out, "");
    if (!strstr(err, "augserve search: params.space: the space at each dimension's low gives a "
                     "spectrogram policy") ||
        !strstr(err, "(HTTP 422)"))
        fail_msg("stderr: %s", err);
    free(out);
    free(err);

    /* A crop larger than every image parses, but no image can be drawn through it. */
    char crop[PATH_MAX];
    snprintf(crop, sizeof crop, "%s/crop.json", c.srv->dir);
#define CROP "{\"op\": \"RandomCrop\", \"height\": 4096, \"width\": 4096}"
    write_file(crop, CROP, strlen(CROP));
#undef CROP
    const char *failing[] = {"search",    "--server", c.url, "--params",
                             params_path, "--space",  crop,  NULL};
    assert_int_equal(harness_run_binary(failing, &out, &err), 1);
    if (!strstr(err, "failed: every trial failed (2)")) fail_msg("stderr: %s", err);
    free(out);
    free(err);

    const char *nowhere[] = {"search",   "--server",  "http://127.0.0.1:1",
                             "--params", params_path, NULL};
    assert_int_equal(harness_run_binary(nowhere, &out, &err), 1);
    assert_non_null(strstr(err, "augserve search: http://127.0.0.1:1: "));
    free(out);
    free(err);

    const char *usage[] = {"search", "--params", params_path, NULL};
    assert_int_equal(harness_run_binary(usage, &out, &err), 2);
    free(out);
    free(err);
    harness_pass(state);
}

/* Starts the binary with args (argv[1] on, NULL-ended) and input on its stdin (closed after it);
 * its stdout to read into *out, its stderr to /dev/null. Its pid. */
static pid_t spawn(const char *const *args, const char *input, FILE **out)
{
    int in[2], from[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(from), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[32] = {harness_binary()};
        for (size_t i = 0; args[i] && i + 2 < 32; i++)
            argv[i + 1] = args[i];
        dup2(in[0], STDIN_FILENO);
        dup2(from[1], STDOUT_FILENO);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        close(in[1]);
        close(from[0]);
        execv(harness_binary(), (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(from[1]);
    size_t size = strlen(input);
    assert_int_equal(write(in[1], input, size), (ssize_t)size);
    close(in[1]);
    *out = fdopen(from[0], "r");
    return pid;
}

/* The exit status of pid, which must exit. */
static int exit_status(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* --params - reads the params from stdin: the FlipLR-or-Invert grid runs its 2 trials. */
static void test_params_from_stdin(void **state)
{
    struct cli c;
    start(state, &c);
    char *params = NULL, line[65536];
    assert_true(asprintf(&params,
                         "{\"space\": " CHOICE ", \"algorithm\": \"grid\", \"objective\": "
                         "\"affinity\", \"budget\": {\"trials\": 5}, \"dataset\": \"%s\", "
                         "\"splits\": {\"val\": \"val\"}, \"model\": \"colour\"}",
                         c.ds) > 0);
    const char *args[] = {"search", "--server", c.url, "--params", "-", NULL};
    FILE *out;
    pid_t pid = spawn(args, params, &out);
    free(params);
    size_t lines = 0;
    while (fgets(line, sizeof line, out))
        lines++;
    fclose(out);
    assert_int_equal(exit_status(pid), 0);
    assert_int_equal(lines, 3); /* two trials and the result */
    harness_pass(state);
}

/* Ctrl-C once a trial has been printed: the job is cancelled (its state), the command exits 1. A
 * budget of a minute keeps the search running meanwhile. */
static void test_interrupt_cancels(void **state)
{
    struct cli c;
    start(state, &c);
    const char *args[] = {"search",      "--server",  c.url,         "--space",  "randaugment",
                          "--algorithm", "random",    "--objective", "affinity", "--seconds",
                          "60",          "--dataset", c.ds,          "--model",  "colour",
                          "--split",     "val",       NULL};
    FILE *out;
    pid_t pid = spawn(args, "", &out);
    char line[65536];
    assert_non_null(fgets(line, sizeof line, out)); /* the first trial */
    assert_non_null(strstr(line, "\"trial\":0"));
    kill(pid, SIGINT);
    while (fgets(line, sizeof line, out))
        ;
    fclose(out);
    assert_int_equal(exit_status(pid), 1);
    struct http_response r;
    http_get(c.srv, "/v1/jobs", &r);
    json_t *list = http_json(&r);
    json_t *job = json_array_get(json_object_get(list, "jobs"), 0);
    assert_string_equal(json_str(job, "kind"), "search");
    assert_string_equal(json_str(job, "state"), "cancelled");
    json_decref(list);
    http_response_free(&r);
    harness_pass(state);
}

/* With API keys configured, --key is sent as the bearer token: without it the server's 401, with
 * a key of the jobs scope the search runs. */
static void test_key(void **state)
{
    struct cli c;
    char key[128], *more = NULL, *out, *err;
    json_t *entry = harness_keygen("cli", "jobs", key);
    char *text = json_dumps(entry, JSON_COMPACT);
    assert_true(asprintf(&more, ", \"api_keys\": [%s]", text) > 0);
    start_with(state, &c, more);
    free(more);
    free(text);
    json_decref(entry);
    const char *args[] = {"search",      "--server",  c.url,         "--space",  c.space,
                          "--algorithm", "grid",      "--objective", "affinity", "--trials",
                          "1",           "--dataset", c.ds,          "--model",  "colour",
                          "--split",     "val",       "--key",       key,        NULL};
    assert_int_equal(harness_run_binary(args, &out, &err), 0);
    free(out);
    free(err);
    args[17] = NULL; /* without --key */
    assert_int_equal(harness_run_binary(args, &out, &err), 1);
    if (!strstr(err, "(HTTP 401)")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_search_prints_trials_and_result),
        HARNESS_MODELS_TEST(test_refusals_and_failures),
        HARNESS_MODELS_TEST(test_params_from_stdin),
        HARNESS_MODELS_TEST(test_interrupt_cancels),
        HARNESS_MODELS_TEST(test_key),
    };
    return harness_main(argc, argv, "cli_search", tests, sizeof tests / sizeof tests[0]);
}
