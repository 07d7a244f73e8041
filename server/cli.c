/* Command-line tools on the engine, for scripts: `augserve augment` and `augment-audio`
 * (cli_augment.c), `augserve bench augment|infer|audio|similarity|loader` (cli_bench.c), `bench
 * train` (cli_bench_train.c), `augserve eval-2afc` (cli_eval.c) and `augserve dataset`
 * (cli_data.c); cli_feed.c runs the loader for the benchmarks. They call the same engine
 * functions as the handlers (the audio ones through policy/audio_pipeline.h), so the benchmarks
 * measure what the server runs. This file holds what they share (cli_internal.h): reading inputs,
 * the policy, the "--name value" flags, the clock, JSON lines and perceptual models. */
#include "cli_internal.h"

#include <errno.h>
#include <float.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/parse.h"

const struct img_decode_options cli_image_options = {UINT64_MAX, 65535, IMG_COLOR_KEEP};

int cli_read_file(const char *path, void **data, size_t *size, struct eng_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return eng_fail(err, ENG_UNDECODABLE, "%s: %s", path, strerror(errno));
    size_t capacity = 1 << 16, used = 0;
    unsigned char *buf = malloc(capacity);
    while (buf) {
        size_t got = fread(buf + used, 1, capacity - used, f);
        used += got;
        if (used < capacity) break;
        unsigned char *grown = realloc(buf, capacity * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        capacity *= 2;
    }
    int failed = ferror(f) || !buf, why = errno; /* before fclose can change it */
    fclose(f);
    if (failed) {
        free(buf);
        return eng_fail(err, ENG_UNDECODABLE, "%s: %s", path, strerror(why));
    }
    *data = buf;
    *size = used;
    return 0;
}

/* Puts "what: " in front of err's message. */
static void name_error(struct eng_error *err, const char *what)
{
    char why[sizeof err->message];
    snprintf(why, sizeof why, "%s", err->message);
    eng_fail(err, err->code, "%s: %s", what, why);
}

struct img *cli_load_image(const char *path, const struct img_decode_options *opt,
                           struct img_info *info, struct eng_error *err)
{
    void *data;
    size_t size;
    if (cli_read_file(path, &data, &size, err) != 0) return NULL;
    struct img *im = img_decode(data, size, opt, info, err);
    free(data);
    if (!im) name_error(err, path);
    return im;
}

struct audio *cli_load_clip(const char *path, int rate, struct eng_error *err)
{
    void *data;
    size_t size;
    if (cli_read_file(path, &data, &size, err) != 0) return NULL;
    const struct audio_decode_options opt = {rate, CLI_MAX_AUDIO_SECONDS};
    struct audio *clip = audio_decode(data, size, &opt, NULL, err);
    free(data);
    if (!clip) name_error(err, path);
    return clip;
}

struct policy *cli_parse_policy(const char *text)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (!p) fprintf(stderr, "augserve: %s%s\n", policy_error_prefix(&err), err.message);
    return p;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_print_line(json_t *line)
{
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (text) printf("%s\n", text);
    free(text);
    json_decref(line);
}

/* One flag's value text into where the flag says: 0, or -1 when it is no number of the kind. */
static int set_flag(const struct cli_flag *flag, const char *text)
{
    long long whole;
    switch (flag->kind) {
    case FLAG_TEXT:
        *(const char **)flag->value = text;
        return 0;
    case FLAG_INT:
        if (parse_signed(text, INT_MIN, INT_MAX, &whole) != PARSE_OK) return -1;
        *(int *)flag->value = (int)whole;
        return 0;
    case FLAG_REAL:
        return parse_real(text, -DBL_MAX, DBL_MAX, flag->value) == PARSE_OK ? 0 : -1;
    }
    return -1;
}

int cli_parse_flags(int argc, char **argv, const struct cli_flag *flags, size_t n)
{
    for (int i = 0; i < argc; i += 2) {
        size_t k = 0;
        while (k < n && strcmp(argv[i], flags[k].name) != 0)
            k++;
        if (k == n || i + 1 == argc || set_flag(&flags[k], argv[i + 1]) != 0) return -1;
    }
    return 0;
}

struct model *cli_open_perceptual(const char *path, int threads, struct models **repo)
{
    char *copy = strdup(path), *copy2 = strdup(path);
    struct models_settings settings = {.threads = threads};
    *repo = copy && copy2 ? models_open(dirname(copy), &settings, NULL) : NULL;
    struct model *m = *repo ? models_acquire(*repo, basename(copy2)) : NULL;
    if (!m)
        fprintf(stderr, "augserve: %s: no model folder (model.onnx and config.json) there\n", path);
    else if (!model_perceptual(m))
        fprintf(stderr, "augserve: %s: no perceptual config: %s\n", path,
                model_reason(m)              ? model_reason(m)
                : model_perceptual_reason(m) ? model_perceptual_reason(m)
                                             : "config.json has no \"perceptual\" section");
    free(copy);
    free(copy2);
    if (m && model_perceptual(m)) return m;
    model_release(m);
    models_close(*repo);
    *repo = NULL;
    return NULL;
}
