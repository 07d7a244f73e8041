/* Command-line tools on the engine, for scripts: `augserve augment`, `augserve augment-audio`,
 * `augserve bench augment|infer|audio|similarity` and `augserve eval-2afc`. They call the same
 * engine functions as the handlers (the audio ones through engine/audio_pipeline.h), so the
 * benchmarks measure what the server runs. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audio/audio.h"
#include "policy/audio_pipeline.h"
#include "image/codec.h"
#include "json_text.h"
#include "perceptual.h"
#include "metrics/metric.h"
#include "models.h"
#include "nn/nn.h"
#include "image/geometry.h"
#include "policy/policy.h"
#include "image/targets.h"

/* The bytes of the file at path (malloc'd): 0, or -1 with err naming the path and the reason. */
static int read_file(const char *path, void **data, size_t *size, struct eng_error *err)
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

/* The file at path decoded as an image within limits (NULL: the defaults); info may be NULL.
 * NULL with err naming the path. */
static struct img *load_image(const char *path, const struct img_limits *limits,
                              struct img_info *info, struct eng_error *err)
{
    void *data;
    size_t size;
    if (read_file(path, &data, &size, err) != 0) return NULL;
    struct img *im = img_decode(data, size, limits, info, err);
    free(data);
    if (!im) name_error(err, path);
    return im;
}

static int write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Replaces {name} (the input's file name without extension), {input}, {sample}, {view} and
 * {ext}. */
static void expand_pattern(const char *pattern, const char *input_path, int input, int sample,
                           int view, const char *ext, char *out, size_t out_size)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", input_path);
    char *name = basename(copy);
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = '\0';
    size_t used = 0;
    for (const char *p = pattern; *p && used + 1 < out_size;) {
        const char *value = NULL;
        char number[16];
        size_t skip = 0;
        if (strncmp(p, "{name}", 6) == 0)
            value = name, skip = 6;
        else if (strncmp(p, "{ext}", 5) == 0)
            value = ext, skip = 5;
        else if (strncmp(p, "{input}", 7) == 0)
            snprintf(number, sizeof number, "%d", input), value = number, skip = 7;
        else if (strncmp(p, "{sample}", 8) == 0)
            snprintf(number, sizeof number, "%d", sample), value = number, skip = 8;
        else if (strncmp(p, "{view}", 6) == 0)
            snprintf(number, sizeof number, "%d", view), value = number, skip = 6;
        if (value) {
            used += (size_t)snprintf(out + used, out_size - used, "%s", value);
            if (used >= out_size) used = out_size - 1;
            p += skip;
        } else {
            out[used++] = *p++;
        }
    }
    out[used] = '\0';
}

static const char *format_ext(enum img_format fmt)
{
    return fmt == IMG_JPEG ? "jpg" : fmt == IMG_WEBP ? "webp" : "png";
}

/* -s SEED: 0, or 2 after saying why. */
static int parse_seed(const char *value, unsigned long long *seed)
{
    char *end;
    *seed = strtoull(value, &end, 10);
    if (*value >= '0' && *value <= '9' && !*end && *seed <= POLICY_MAX_SEED) return 0;
    fprintf(stderr, "-s: a whole number in [0, 2^53)\n");
    return 2;
}

/* -n SAMPLES: 0, or 2 after saying why. */
static int parse_samples(const char *value, unsigned long long *samples)
{
    char *end;
    *samples = strtoull(value, &end, 10);
    if (*value >= '0' && *value <= '9' && !*end && *samples >= 1 && *samples <= 100000) return 0;
    fprintf(stderr, "-n: 1 to 100000\n");
    return 2;
}

/* A random seed below 2^53 when none was given, announced first as the image CLI does. */
static unsigned long long announce_seed(int have_seed, unsigned long long seed)
{
    if (!have_seed && RAND_bytes((unsigned char *)&seed, sizeof seed) == 1) seed &= POLICY_MAX_SEED;
    printf("{\"seed\":%llu}\n", seed);
    return seed;
}

/* Prints one output's JSON line: its path, coordinates and trace. */
static void print_output(const char *path, int input, int sample, int view, const struct trace *t)
{
    json_t *line = json_pack("{s:s, s:i, s:i, s:i, s:o}", "output", path, "input", input, "sample",
                             sample, "view", view, "trace", trace_to_json(t));
    char *text = line ? json_text(line, JSON_COMPACT) : NULL;
    if (text) printf("%s\n", text);
    free(text);
    json_decref(line);
}

/* What augment and augment-audio share: -p POLICY, -o PATTERN, -f FORMAT, -s SEED and
 * -n SAMPLES, then the inputs, argv[first_input..]. */
struct run_args {
    const char *policy, *pattern, *format;
    unsigned long long seed, samples;
    int have_seed, first_input;
};

/* A command's own flags: 0, 1 when flag is none of them, 2 after saying why the value is bad. */
typedef int (*extra_flag_fn)(void *ctx, const char *flag, const char *value);

/* One of the shared flags: as extra_flag_fn. */
static int parse_run_flag(struct run_args *a, const char *flag, const char *value)
{
    if (strcmp(flag, "-p") == 0)
        a->policy = value;
    else if (strcmp(flag, "-o") == 0)
        a->pattern = value;
    else if (strcmp(flag, "-f") == 0)
        a->format = value;
    else if (strcmp(flag, "-s") == 0)
        return a->have_seed = 1, parse_seed(value, &a->seed);
    else if (strcmp(flag, "-n") == 0)
        return parse_samples(value, &a->samples);
    else
        return 1;
    return 0;
}

/* Reads flag-value pairs up to the first argument that is no flag, the first input, through
 * parse_run_flag and then extra (with ctx). A policy and an input are required. 0, or 2 after
 * printing usage or saying why. */
static int parse_run_args(int argc, char **argv, struct run_args *a, extra_flag_fn extra, void *ctx,
                          void (*usage)(FILE *))
{
    a->first_input = argc;
    for (int i = 0; i < argc; i += 2) {
        if (argv[i][0] != '-') {
            a->first_input = i;
            break;
        }
        if (i + 1 == argc) return usage(stderr), 2;
        int rc = parse_run_flag(a, argv[i], argv[i + 1]);
        if (rc == 1) rc = extra(ctx, argv[i], argv[i + 1]);
        if (rc == 1) return usage(stderr), 2;
        if (rc != 0) return rc;
    }
    if (!a->policy || a->first_input == argc) return usage(stderr), 2;
    return 0;
}

/* Makes output (sample, view) of one input: its bytes (malloc'd) and its trace, which the
 * caller frees even on failure. 0, or -1 with err. */
typedef int (*produce_fn)(void *ctx, uint32_t sample, uint32_t view, void **data, size_t *size,
                          struct trace **t, struct eng_error *err);

/* Every sample and view of input number `input`, read from path_in: each made by produce (with
 * ctx), written where a->pattern says and announced by its JSON line. 0, or 1 after saying
 * why. */
static int write_samples(const struct run_args *a, int views, int input, const char *path_in,
                         const char *ext, produce_fn produce, void *ctx)
{
    int status = 0;
    for (uint32_t k = 0; k < a->samples * (uint32_t)views && status == 0; k++) {
        uint32_t s = k / (uint32_t)views, view = k % (uint32_t)views;
        struct eng_error err = {0};
        struct trace *t = NULL;
        void *data = NULL;
        size_t size = 0;
        char path[4096];
        expand_pattern(a->pattern, path_in, input, (int)s, (int)view, ext, path, sizeof path);
        if (produce(ctx, s, view, &data, &size, &t, &err) != 0) {
            fprintf(stderr, "augserve: %s: %s\n", path_in, err.message);
            status = 1;
        } else if (write_file(path, data, size) != 0) {
            fprintf(stderr, "augserve: %s: %s\n", path, strerror(errno));
            status = 1;
        } else {
            print_output(path, input, (int)s, (int)view, t);
        }
        free(data);
        trace_free(t);
    }
    return status;
}

static void augment_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve augment -p POLICY [-s SEED] [-n SAMPLES] [-f jpeg|png|webp|same]\n"
            "                        [-q QUALITY] [-o PATTERN] IN...\n"
            "PATTERN may hold {name}, {input}, {sample} and {ext}; default "
            "\"{name}-{sample}.{ext}\".\n"
            "Prints one JSON line per output: its path and the trace.\n");
}

/* augment's own flag, -q QUALITY (1 to 100): as extra_flag_fn. */
static int parse_quality_flag(void *ctx, const char *flag, const char *value)
{
    unsigned long long *quality = ctx;
    char *end;
    if (strcmp(flag, "-q") != 0) return 1;
    *quality = strtoull(value, &end, 10);
    if (*end || *quality < 1 || *quality > 100) return fprintf(stderr, "-q: 1 to 100\n"), 2;
    return 0;
}

/* One input image of augment, for write_samples. */
struct image_job {
    const struct policy *policy;
    const struct img *image;
    enum img_format fmt;
    int quality;
    uint64_t seed;
    uint32_t input;
};

static int produce_image(void *ctx, uint32_t sample, uint32_t view, void **data, size_t *size,
                         struct trace **t, struct eng_error *err)
{
    const struct image_job *j = ctx;
    *t = policy_sample_view(j->policy, j->seed, j->input, sample, view, j->image->width,
                            j->image->height, err);
    struct img *out = *t ? trace_apply(*t, j->image, j->seed, j->input, sample, err) : NULL;
    int rc = out ? img_encode(out, j->fmt, j->quality, data, size, err) : -1;
    img_free(out);
    return rc;
}

/* The policy's outputs for each input of argv[a->first_input..argc). */
static int augment_images(const struct run_args *a, int argc, char **argv,
                          const struct policy *policy, int views, const enum img_format *fixed,
                          int quality)
{
    const struct img_limits limits = {UINT64_MAX, 65535};
    int status = 0;
    for (int in = a->first_input; in < argc && status == 0; in++) {
        struct eng_error err = {0};
        struct img_info info;
        struct img *image = load_image(argv[in], &limits, &info, &err);
        if (!image) return fprintf(stderr, "augserve: %s\n", err.message), 1;
        struct image_job job = {.policy = policy,
                                .image = image,
                                .fmt = IMG_PNG,
                                .quality = quality,
                                .seed = a->seed,
                                .input = (uint32_t)(in - a->first_input)};
        /* Without -f, each output keeps its input's format where it can be written. */
        if (fixed)
            job.fmt = *fixed;
        else if (img_format_from_name(info.format, &job.fmt) != 0)
            job.fmt = IMG_PNG;
        status = write_samples(a, views, (int)job.input, argv[in], format_ext(job.fmt),
                               produce_image, &job);
        img_free(image);
    }
    return status;
}

int cli_augment(int argc, char **argv)
{
    struct run_args a = {.format = "same", .samples = 1};
    unsigned long long quality = 90;
    int status = parse_run_args(argc, argv, &a, parse_quality_flag, &quality, augment_usage);
    if (status != 0) return status;
    enum img_format fixed;
    const int same = strcmp(a.format, "same") == 0;
    if (!same && img_format_from_name(a.format, &fixed) != 0) {
        fprintf(stderr, "-f: jpeg, png, webp or same\n");
        return 2;
    }
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    struct policy *policy = policy_parse_text(a.policy, &err);
    if (!policy) return fprintf(stderr, "augserve: policy%s\n", err.message), 2;
    int views = policy_view_count(policy);
    if (!a.pattern)
        a.pattern = views > 1 ? "{name}-{sample}-{view}.{ext}" : "{name}-{sample}.{ext}";
    if (views > 1 && !strstr(a.pattern, "{view}")) {
        fprintf(stderr, "augserve: the policy gives %d views per sample: put {view} in -o\n",
                views);
        policy_free(policy);
        return 2;
    }
    a.seed = announce_seed(a.have_seed, a.seed);
    status = augment_images(&a, argc, argv, policy, views, same ? NULL : &fixed, (int)quality);
    policy_free(policy);
    return status;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A photograph-like test image when none is given: smooth gradients, edges and texture, so that
 * JPEG and the ops do representative work. */
static struct img *synthetic_image(int size, struct eng_error *err)
{
    struct img *im = img_new(size, size, 3, err);
    if (!im) return NULL;
    uint32_t noise = 12345;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            noise = noise * 1103515245u + 12345u;
            int grain = (int)((noise >> 16) & 15) - 8;
            int disc = (x - size / 2) * (x - size / 2) + (y - size / 3) * (y - size / 3) <
                       size * size / 16;
            int v[3] = {x * 255 / size + grain, y * 255 / size + grain, (disc ? 220 : 60) + grain};
            for (int c = 0; c < 3; c++)
                img_row(im, y)[3 * x + c] = (uint8_t)(v[c] < 0 ? 0 : v[c] > 255 ? 255 : v[c]);
        }
    return im;
}

/* A "--name value" flag of the bench and eval commands, and where its value goes. */
struct flag {
    const char *name;
    enum { FLAG_TEXT, FLAG_INT, FLAG_REAL } kind;
    void *value; /* const char **, int * or double * */
};
#define FLAG_COUNT(flags) (sizeof(flags) / sizeof(flags)[0])

/* Reads flag-value pairs, each flag one of flags[0..n): 0, or -1 for another flag or a flag
 * without a value (the caller prints its usage). Numbers convert as atoi and atof do: the caller
 * checks the ranges. */
static int parse_flags(int argc, char **argv, const struct flag *flags, size_t n)
{
    for (int i = 0; i < argc; i += 2) {
        size_t k = 0;
        while (k < n && strcmp(argv[i], flags[k].name) != 0)
            k++;
        if (k == n || i + 1 == argc) return -1;
        if (flags[k].kind == FLAG_TEXT)
            *(const char **)flags[k].value = argv[i + 1];
        else if (flags[k].kind == FLAG_INT)
            *(int *)flags[k].value = atoi(argv[i + 1]);
        else
            *(double *)flags[k].value = atof(argv[i + 1]);
    }
    return 0;
}

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve bench augment -p POLICY [--size PIXELS] [--seconds S] "
            "[--image FILE] [--boxes N]\n"
            "One thread: JPEG decode -> policy -> JPEG q90 encode, on a SIZE x SIZE image; with\n"
            "N boxes (a grid of them) the policy also moves them (trace_apply_targets).\n"
            "Prints {\"policy\", \"size\", \"boxes\", \"images\", \"seconds\", "
            "\"images_per_second\"}.\n"
            "usage: augserve bench infer --model DIR|FILE [--batch B] [--seconds S] "
            "[--threads T]\n"
            "Runs the ONNX model (DIR/model.onnx) on random inputs of batch B (default 1) with T\n"
            "threads (default: one per core). Symbolic dims other than the batch must be fixed\n"
            "in the model. Prints {\"model\", \"batch\", \"threads\", \"runs\", \"seconds\",\n"
            "\"latency_ms\" (median), \"images_per_second\"}.\n"
            "usage: augserve bench similarity --model DIR [--size PIXELS] [--batch B] "
            "[--seconds S]\n"
            "                                 [--threads T]\n"
            "LPIPS through the model folder's perceptual config on B pairs (default 32) of\n"
            "SIZE x SIZE synthetic images (default 64), all 2B images in one batch. Prints\n"
            "{\"model\", \"size\", \"batch\", \"threads\", \"runs\", \"seconds\", "
            "\"pairs_per_second\"}.\n"
            "usage: augserve bench audio -p POLICY [--seconds S] [--audio FILE]\n"
            "One thread: decode the clip (default: a synthetic 7 s speech-like 16 kHz WAV) to\n"
            "16 kHz -> 80-mel log features -> policy -> float32 .npy. Prints {\"policy\",\n"
            "\"clip_seconds\", \"runs\", \"seconds\", \"audio_seconds_per_second\"}.\n");
}

/* Prints a benchmark's result as one compact JSON line and frees it. */
static void print_line(json_t *line)
{
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (text) printf("%s\n", text);
    free(text);
    json_decref(line);
}

/* Runs once(ctx, run) for run = 0, 1, ... until seconds have passed: 0 with the runs and the
 * time they took, or 1 when a run fails (it said why). */
static int bench_repeat(double seconds, int (*once)(void *ctx, uint32_t run), void *ctx, long *runs,
                        double *elapsed)
{
    double start = now_seconds();
    for (*runs = 0, *elapsed = 0; *elapsed < seconds; *elapsed = now_seconds() - start)
        if (once(ctx, (uint32_t)(*runs)++) != 0) return 1;
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs plan on inputs until seconds pass (at least 3 runs after one warm-up run) and prints the
 * median latency and the throughput. */
static int bench_plan(struct nn_plan *plan, const float *const *inputs, const char *model,
                      int batch, int threads, double seconds)
{
    size_t n_out = nn_plan_output_count(plan);
    float **outputs = calloc(n_out ? n_out : 1, sizeof *outputs);
    struct nn_tensor_info *info = calloc(n_out ? n_out : 1, sizeof *info);
    size_t cap = 1024, runs = 0;
    double *latency = malloc(cap * sizeof *latency);
    struct eng_error err = {0};
    int status = outputs && info && latency ? 0 : 1;
    double start = 0, elapsed = 0;
    for (long warm = -1; status == 0 && (warm < 0 || elapsed < seconds || runs < 3); warm++) {
        double t0 = now_seconds();
        if (nn_plan_run(plan, inputs, outputs, info, &err) != 0) {
            fprintf(stderr, "augserve: %s\n", err.message);
            status = 1;
        }
        for (size_t k = 0; k < n_out && outputs; k++) {
            free(outputs[k]);
            outputs[k] = NULL;
        }
        double t1 = now_seconds();
        if (warm < 0) {
            start = t1;
            continue;
        }
        if (runs == cap) {
            double *grown = realloc(latency, 2 * cap * sizeof *latency);
            if (!grown) break;
            latency = grown;
            cap *= 2;
        }
        latency[runs++] = t1 - t0;
        elapsed = t1 - start;
    }
    if (status == 0 && runs) {
        qsort(latency, runs, sizeof *latency, compare_doubles);
        json_t *line = json_pack("{s:s, s:i, s:i, s:I, s:f, s:f, s:f}", "model", model, "batch",
                                 batch, "threads", threads, "runs", (json_int_t)runs, "seconds",
                                 elapsed, "latency_ms", latency[runs / 2] * 1000,
                                 "images_per_second", (double)runs * batch / elapsed);
        print_line(line);
    }
    free(latency);
    free(info);
    free(outputs);
    return status;
}

static int bench_infer(int argc, char **argv)
{
    const char *model = NULL;
    int batch = 1, threads = 0;
    double seconds = 5;
    const struct flag flags[] = {{"--model", FLAG_TEXT, &model},
                                 {"--batch", FLAG_INT, &batch},
                                 {"--seconds", FLAG_REAL, &seconds},
                                 {"--threads", FLAG_INT, &threads}};
    if (parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !model || batch < 1 ||
        batch > 4096 || threads < 0 || !(seconds > 0 && seconds <= 3600))
        return bench_usage(stderr), 2;
    struct stat st;
    char *path = NULL;
    if (stat(model, &st) == 0 && S_ISDIR(st.st_mode) ? asprintf(&path, "%s/model.onnx", model) < 0
                                                     : !(path = strdup(model)))
        return fprintf(stderr, "augserve: out of memory\n"), 1;
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    free(path);
    if (!g) return fprintf(stderr, "augserve: %s: %s\n", model, err.message), 1;
    size_t n_in = nn_graph_input_count(g);
    struct nn_tensor_info *shapes = calloc(n_in ? n_in : 1, sizeof *shapes);
    float **inputs = calloc(n_in ? n_in : 1, sizeof *inputs);
    int status = shapes && inputs ? 0 : 1;
    uint32_t noise = 12345;
    for (size_t i = 0; status == 0 && i < n_in; i++) {
        shapes[i] = *nn_graph_input(g, i);
        for (int d = 0; d < shapes[i].rank; d++)
            if (shapes[i].dims[d] < 0 || d == 0) shapes[i].dims[d] = d == 0 ? batch : -1;
        size_t count = 1;
        for (int d = 0; d < shapes[i].rank && status == 0; d++)
            if (shapes[i].dims[d] < 0) {
                fprintf(stderr, "augserve: input '%s' has a symbolic dim %d\n", shapes[i].name, d);
                status = 2;
            } else {
                count *= (size_t)shapes[i].dims[d];
            }
        if (status == 0 && !(inputs[i] = malloc((count ? count : 1) * sizeof(float)))) status = 1;
        for (size_t k = 0; status == 0 && k < count; k++) {
            noise = noise * 1103515245u + 12345u;
            inputs[i][k] = (float)((noise >> 8) & 0xffff) / 32768.0f - 1.0f;
        }
    }
    struct nn_plan_options options = {.threads = threads};
    struct nn_plan *plan =
        status == 0 ? nn_plan_compile_with(g, shapes, n_in, &options, &err) : NULL;
    if (status == 0 && !plan) {
        fprintf(stderr, "augserve: %s: %s\n", model, err.message);
        status = 1;
    }
    if (plan)
        status = bench_plan(plan, (const float *const *)inputs, model, batch, threads, seconds);
    nn_plan_free(plan);
    for (size_t i = 0; inputs && i < n_in; i++)
        free(inputs[i]);
    free(inputs);
    free(shapes);
    nn_graph_free(g);
    return status;
}

/* ---- Audio ---------------------------------------------------------------------------------- */

/* The CLI takes no limit from a server config: a day of audio. */
#define CLI_MAX_AUDIO_SECONDS 86400.0
#define CLI_MAX_CLIPS         64

/* augment-audio's arguments: the shared ones, and its own. */
struct audio_args {
    struct run_args run;
    const char *noises[CLI_MAX_CLIPS], *rirs[CLI_MAX_CLIPS];
    int noise_count, rir_count;
    struct audio_mel_config mel;
};

static void augment_audio_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve augment-audio -p POLICY [-s SEED] [-n SAMPLES]\n"
            "                              [-f wav|flac|features|png] [-o PATTERN]\n"
            "                              [--noise FILE]... [--rir FILE]... [--MEL-FIELD V]... "
            "IN...\n"
            "Mel fields as /v1/augment/audio takes them, with dashes: --sample-rate, --n-fft,\n"
            "--win-length, --hop-length, --n-mels, --f-min, --f-max, --power, --mel-scale,\n"
            "--norm, --center, --log-offset. -f defaults to features (float32 .npy).\n"
            "PATTERN may hold {name}, {input}, {sample}, {view} and {ext}; default "
            "\"{name}-{sample}.{ext}\".\n"
            "Prints one JSON line per output: its path and the trace.\n");
}

/* Adds path to a list of at most CLI_MAX_CLIPS: 0, or 2 after saying why. */
static int add_clip_path(const char *flag, const char *path, const char **list, int *count)
{
    if (*count == CLI_MAX_CLIPS)
        return fprintf(stderr, "%s: at most %d files\n", flag, CLI_MAX_CLIPS), 2;
    list[(*count)++] = path;
    return 0;
}

/* --n-mels 64 and the other front-end flags: 0, 1 when flag is none of them, 2 after saying
 * why the value is bad. */
static int parse_mel_flag(struct audio_mel_config *mel, const char *flag, const char *value)
{
    char name[32];
    if (strncmp(flag, "--", 2) != 0 || strlen(flag + 2) >= sizeof name) return 1;
    snprintf(name, sizeof name, "%s", flag + 2);
    for (char *c = name; *c; c++)
        if (*c == '-') *c = '_';
    int known = 0;
    for (const char *const *f = audio_mel_settings; *f && !known; f++)
        known = strcmp(*f, name) == 0;
    if (!known) return 1;
    struct eng_error err = {0};
    if (audio_mel_setting_parse(mel, name, value, &err) == 0) return 0;
    fprintf(stderr, "augserve: %s\n", err.message);
    return 2;
}

/* augment-audio's own flags, the front end's, --noise and --rir: as extra_flag_fn. */
static int parse_audio_flag(void *ctx, const char *flag, const char *value)
{
    struct audio_args *a = ctx;
    int mel = parse_mel_flag(&a->mel, flag, value);
    if (mel != 1) return mel;
    if (strcmp(flag, "--noise") == 0) return add_clip_path(flag, value, a->noises, &a->noise_count);
    if (strcmp(flag, "--rir") == 0) return add_clip_path(flag, value, a->rirs, &a->rir_count);
    return 1;
}

/* The file at path decoded to rate Hz; NULL with err naming the path. */
static struct audio *load_clip(const char *path, int rate, struct eng_error *err)
{
    void *data;
    size_t size;
    if (read_file(path, &data, &size, err) != 0) return NULL;
    const struct audio_decode_options opt = {rate, CLI_MAX_AUDIO_SECONDS};
    struct audio *clip = audio_decode(data, size, &opt, NULL, err);
    free(data);
    if (!clip) name_error(err, path);
    return clip;
}

/* Loads count files into clips; -1 after saying why (the loaded ones stay to be freed). */
static int load_clips(const char *const *paths, int count, int rate, struct audio **clips)
{
    struct eng_error err = {0};
    for (int i = 0; i < count; i++)
        if (!(clips[i] = load_clip(paths[i], rate, &err)))
            return fprintf(stderr, "augserve: %s\n", err.message), -1;
    return 0;
}

/* One input clip of augment-audio, for write_samples. */
struct clip_job {
    const struct audio_pipeline *pipeline;
    const struct audio *clip;
    enum audio_output output;
    uint32_t input;
};

static int produce_clip(void *ctx, uint32_t sample, uint32_t view, void **data, size_t *size,
                        struct trace **t, struct eng_error *err)
{
    const struct clip_job *j = ctx;
    struct audio_sample s;
    if (audio_pipeline_run(j->pipeline, j->clip, j->input, sample, view,
                           !audio_output_is_wave(j->output), &s, err) != 0)
        return -1;
    int rc = audio_sample_encode(&s, j->output, data, size, err);
    *t = s.trace; /* the caller's now */
    s.trace = NULL;
    audio_sample_free(&s);
    return rc;
}

/* The policy, checked against the output; NULL after saying why. */
static struct policy *audio_policy(const char *text, enum audio_output output)
{
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(text, &err);
    if (!p) {
        fprintf(stderr, "augserve: policy%s\n", err.message);
        return NULL;
    }
    if (audio_output_is_wave(output) && (policy_domain(p) & POLICY_SPECTROGRAM)) {
        fprintf(stderr,
                "augserve: -f %s: the policy has spectrogram ops, which change the "
                "features and not the waveform; use -f features or png\n",
                audio_output_name(output));
        policy_free(p);
        return NULL;
    }
    return p;
}

/* The pipeline's outputs for each input of argv[a->first_input..argc), at the front end's
 * rate. */
static int augment_clips(const struct run_args *a, int argc, char **argv,
                         const struct audio_pipeline *pipeline, enum audio_output output)
{
    const int rate = audio_mel_config(pipeline->mel)->sample_rate;
    const int views = policy_view_count(pipeline->policy);
    int status = 0;
    for (int in = a->first_input; in < argc && status == 0; in++) {
        struct audio *clip = NULL;
        if (load_clips((const char *const *)&argv[in], 1, rate, &clip) != 0) return 1;
        struct clip_job job = {pipeline, clip, output, (uint32_t)(in - a->first_input)};
        status = write_samples(a, views, (int)job.input, argv[in], audio_output_ext(output),
                               produce_clip, &job);
        audio_free(clip);
    }
    return status;
}

int cli_augment_audio(int argc, char **argv)
{
    struct audio_args a = {.run = {.format = "features", .samples = 1}};
    a.mel = audio_mel_settings_start();
    int status = parse_run_args(argc, argv, &a.run, parse_audio_flag, &a, augment_audio_usage);
    enum audio_output output;
    if (status != 0) return status;
    audio_mel_settings_resolve(&a.mel);
    if (audio_output_from_name(a.run.format, &output) != 0)
        return fprintf(stderr, "-f: wav, flac, features or png\n"), 2;
    if (!a.run.pattern) a.run.pattern = "{name}-{sample}.{ext}";
    struct eng_error err = {0};
    struct audio_mel *mel = audio_mel_new(&a.mel, &err);
    if (!mel) return fprintf(stderr, "augserve: %s\n", err.message), 2;
    struct policy *p = audio_policy(a.run.policy, output);
    struct audio *bank_clips[2 * CLI_MAX_CLIPS] = {0};
    int rate = a.mel.sample_rate;
    status = p ? 0 : 2;
    if (status == 0 && (load_clips(a.noises, a.noise_count, rate, bank_clips) != 0 ||
                        load_clips(a.rirs, a.rir_count, rate, bank_clips + a.noise_count) != 0))
        status = 1;
    struct audio_bank bank = {(const struct audio *const *)bank_clips, (size_t)a.noise_count,
                              (const struct audio *const *)bank_clips + a.noise_count,
                              (size_t)a.rir_count};
    if (status == 0) {
        a.run.seed = announce_seed(a.run.have_seed, a.run.seed);
        const struct audio_pipeline pipeline = {p, mel, &bank, a.run.seed};
        status = augment_clips(&a.run, argc, argv, &pipeline, output);
    }
    for (int i = 0; i < a.noise_count + a.rir_count; i++)
        audio_free(bank_clips[i]);
    policy_free(p);
    audio_mel_free(mel);
    return status;
}

/* A speech-like clip of seconds at rate: a voiced source whose pitch glides between 100 and
 * 180 Hz, its harmonics shaped by three moving formants, in syllables of about 250 ms with
 * pauses and noise bursts between them, so the features vary as they do on speech. */
static struct audio *synthetic_speech(double seconds, int rate, struct eng_error *err)
{
    struct audio *a = audio_new((size_t)(seconds * rate), rate, err);
    uint32_t noise = 12345;
    double phase = 0;
    for (size_t i = 0; a && i < a->length; i++) {
        double t = (double)i / rate, syllable = fmod(t, 0.25) / 0.25;
        double f0 = 140 + 40 * sin(2 * M_PI * 0.7 * t);
        phase += 2 * M_PI * f0 / rate;
        double voiced = 0;
        for (int h = 1; h * f0 < rate / 2.0 && h <= 40; h++) {
            double f = h * f0, gain = 0;
            static const double formants[3] = {500, 1500, 2500};
            for (int k = 0; k < 3; k++) {
                double centre = formants[k] * (1 + 0.2 * sin(2 * M_PI * (0.5 + k) * t));
                gain += exp(-(f - centre) * (f - centre) / (2 * 150.0 * 150.0));
            }
            voiced += gain * sin(h * phase) / h;
        }
        noise = noise * 1103515245u + 12345u;
        double hiss = ((double)(noise >> 16 & 0x7fff) / 16384.0 - 1.0) * 0.05;
        double envelope = syllable < 0.7 ? sin(M_PI * syllable / 0.7) : 0;
        a->samples[i] = (float)(0.3 * envelope * voiced + (syllable >= 0.8 ? hiss : 0.002 * hiss));
    }
    return a;
}

/* The benchmark's input: the file's bytes, or the synthetic clip as 16-bit WAV. 0, or 1 after
 * saying why. */
static int bench_audio_input(const char *path, void **data, size_t *size)
{
    struct eng_error err = {0};
    int rc;
    if (path) {
        rc = read_file(path, data, size, &err);
    } else {
        struct audio *clip = synthetic_speech(7.0, AUDIO_DEFAULT_RATE, &err);
        rc = clip ? audio_encode(clip, AUDIO_WAV_PCM16, data, size, &err) : -1;
        audio_free(clip);
    }
    if (rc != 0) fprintf(stderr, "augserve: %s\n", err.message);
    return rc != 0;
}

/* One bench audio run: what the server does for output=features. */
struct audio_run {
    const struct audio_pipeline *pipeline;
    const void *wav;
    size_t size;
    double clip_seconds, audio_seconds; /* the clip's duration; the sum over the runs */
};

/* Decode, features, policy, float32 .npy; 0, or -1 after saying why. */
static int bench_audio_once(void *ctx, uint32_t run)
{
    struct audio_run *b = ctx;
    const struct audio_decode_options opt = {AUDIO_DEFAULT_RATE, CLI_MAX_AUDIO_SECONDS};
    struct eng_error err = {0};
    struct audio *clip = audio_decode(b->wav, b->size, &opt, NULL, &err);
    struct audio_sample out = {0};
    void *npy = NULL;
    size_t npy_size;
    int rc = -1;
    if (clip && audio_pipeline_run(b->pipeline, clip, 0, run, 0, true, &out, &err) == 0 &&
        audio_sample_encode(&out, AUDIO_OUTPUT_FEATURES, &npy, &npy_size, &err) == 0) {
        b->clip_seconds = (double)clip->length / clip->rate;
        b->audio_seconds += b->clip_seconds;
        rc = 0;
    } else {
        fprintf(stderr, "augserve: %s\n", err.message);
    }
    free(npy);
    audio_sample_free(&out);
    audio_free(clip);
    return rc;
}

static int bench_audio(int argc, char **argv)
{
    const char *policy_text = NULL, *audio_path = NULL;
    double seconds = 5;
    const struct flag flags[] = {{"-p", FLAG_TEXT, &policy_text},
                                 {"--seconds", FLAG_REAL, &seconds},
                                 {"--audio", FLAG_TEXT, &audio_path}};
    if (parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !policy_text ||
        !(seconds > 0 && seconds <= 3600))
        return bench_usage(stderr), 2;
    struct eng_error err = {0};
    struct policy *p = policy_parse_text(policy_text, &err);
    if (!p) return fprintf(stderr, "augserve: policy%s\n", err.message), 2;
    struct audio_mel_config cfg = audio_mel_defaults();
    struct audio_mel *mel = audio_mel_new(&cfg, &err);
    const struct audio_pipeline pipeline = {p, mel, NULL, 1};
    struct audio_run b = {&pipeline, NULL, 0, 0, 0};
    void *wav = NULL;
    long runs = 0;
    double elapsed = 0;
    int status = mel ? bench_audio_input(audio_path, &wav, &b.size) : 1;
    b.wav = wav;
    if (status == 0) status = bench_repeat(seconds, bench_audio_once, &b, &runs, &elapsed);
    if (status == 0)
        print_line(json_pack("{s:s, s:f, s:I, s:f, s:f}", "policy", policy_text, "clip_seconds",
                             b.clip_seconds, "runs", (json_int_t)runs, "seconds", elapsed,
                             "audio_seconds_per_second", b.audio_seconds / elapsed));
    free(wav);
    audio_mel_free(mel);
    policy_free(p);
    return status;
}

/* ---- Similarity ------------------------------------------------------------------------------ */

/* The model of folder path (its parent is opened as the repository) with a perceptual config: a
 * reference, or NULL after saying why. *repo must be closed after the release. */
static struct model *open_perceptual(const char *path, int threads, struct models **repo)
{
    char *copy = strdup(path), *copy2 = strdup(path), err[256];
    struct models_settings settings = {.threads = threads};
    *repo = copy && copy2 ? models_open(dirname(copy), &settings, err, sizeof err) : NULL;
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

/* batch pairs of size x size images: a synthetic photograph against a copy with its own grain. */
static int bench_pairs(int size, int batch, struct img **images, struct eng_error *err)
{
    for (int i = 0; i < 2 * batch; i++) {
        if (!(images[i] = synthetic_image(size, err))) return -1;
        uint32_t noise = 777u * (uint32_t)(i + 1);
        for (int y = 0; i % 2 && y < size; y++)
            for (int x = 0; x < 3 * size; x++) {
                noise = noise * 1103515245u + 12345u;
                int v = img_row(images[i], y)[x] + (int)((noise >> 16) % 31) - 15;
                img_row(images[i], y)[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    return 0;
}

/* Runs LPIPS on the pairs until seconds pass (at least 3 runs after a warm-up) and prints the
 * throughput. */
static int bench_lpips(struct model *m, struct img *const *images, int batch, double seconds,
                       json_t *line)
{
    int *pairs = malloc(2 * (size_t)batch * sizeof *pairs);
    double *d = malloc((size_t)batch * sizeof *d), start = 0, elapsed = 0;
    struct eng_error err = {0};
    long runs = 0;
    int status = pairs && d ? 0 : 1;
    for (int i = 0; status == 0 && i < 2 * batch; i++)
        pairs[i] = i;
    for (long warm = -1; status == 0 && (warm < 0 || elapsed < seconds || runs < 3); warm++) {
        if (perceptual_lpips(m, images, 2 * batch, pairs, batch, d, NULL, &err) != 0) {
            fprintf(stderr, "augserve: %s\n", err.message);
            status = 1;
        }
        if (warm < 0) start = now_seconds();
        runs += warm >= 0;
        elapsed = now_seconds() - start;
    }
    if (status == 0) {
        json_object_set_new(line, "runs", json_integer(runs));
        json_object_set_new(line, "seconds", json_real(elapsed));
        json_object_set_new(line, "pairs_per_second", json_real((double)runs * batch / elapsed));
        print_line(json_incref(line));
    }
    free(pairs);
    free(d);
    return status;
}

static int bench_similarity(int argc, char **argv)
{
    const char *model = NULL;
    int size = 64, batch = 32, threads = 0;
    double seconds = 5;
    const struct flag flags[] = {{"--model", FLAG_TEXT, &model},
                                 {"--size", FLAG_INT, &size},
                                 {"--batch", FLAG_INT, &batch},
                                 {"--seconds", FLAG_REAL, &seconds},
                                 {"--threads", FLAG_INT, &threads}};
    if (parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !model || size < 8 ||
        size > 4096 || batch < 1 || batch > 1024 || threads < 0 ||
        !(seconds > 0 && seconds <= 3600))
        return bench_usage(stderr), 2;
    struct models *repo;
    struct model *m = open_perceptual(model, threads, &repo);
    if (!m) return 1;
    struct img **images = calloc(2 * (size_t)batch, sizeof *images);
    struct eng_error err = {0};
    int status = images && bench_pairs(size, batch, images, &err) == 0 ? 0 : 1;
    if (status) fprintf(stderr, "augserve: %s\n", images ? err.message : "out of memory");
    json_t *line = json_pack("{s:s, s:i, s:i, s:i}", "model", model, "size", size, "batch", batch,
                             "threads", threads);
    if (status == 0) status = line ? bench_lpips(m, images, batch, seconds, line) : 1;
    json_decref(line);
    for (int i = 0; images && i < 2 * batch; i++)
        img_free(images[i]);
    free(images);
    model_release(m);
    models_close(repo);
    return status;
}

/* ---- eval-2afc ------------------------------------------------------------------------------- */

#define EVAL_CHUNK 32 /* triplets through the network at once */

struct eval {
    enum { EVAL_LPIPS, EVAL_SSIM, EVAL_MS_SSIM, EVAL_PSNR, EVAL_L2 } metric;
    struct model *model; /* for EVAL_LPIPS */
    double sum;          /* of every folder's triplet scores */
    size_t count;
};

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve eval-2afc --dataset DIR --metric lpips:MODEL|ssim|ms_ssim|psnr|l2 "
            "[--threads T]\n"
            "Scores the metric on BAPPS 2AFC triplets: DIR holds ref/, p0/, p1/, judge/, or\n"
            "subfolders that do (as 2afc/val/*). MODEL is a model folder with a perceptual\n"
            "config. Prints {\"folder\", \"triplets\", \"score\"} per folder, then\n"
            "{\"metric\", \"triplets\", \"score\"} over all triplets.\n");
}

/* A pixel metric as a distance: smaller is closer. */
static int pixel_distance(const struct eval *e, const struct img *a, const struct img *b, double *d,
                          struct eng_error *err)
{
    double v = 0;
    int rc = e->metric == EVAL_SSIM      ? metric_ssim(a, b, METRIC_RGB, &v, err)
             : e->metric == EVAL_MS_SSIM ? metric_ms_ssim(a, b, METRIC_RGB, &v, err)
                                         : metric_mse(a, b, METRIC_RGB, &v, err);
    *d = e->metric == EVAL_PSNR ? -metric_psnr(v) : e->metric == EVAL_L2 ? v : 1 - v;
    return rc;
}

/* d0 and d1 of triplets [start, start + n): images[3k..3k+2] are ref, p0, p1. */
static int chunk_distances(const struct eval *e, struct img **images, int n, double *d0, double *d1,
                           struct eng_error *err)
{
    if (e->metric != EVAL_LPIPS) {
        for (int k = 0; k < n; k++)
            if (pixel_distance(e, images[3 * k], images[3 * k + 1], &d0[k], err) ||
                pixel_distance(e, images[3 * k], images[3 * k + 2], &d1[k], err))
                return -1;
        return 0;
    }
    int pairs[4 * EVAL_CHUNK];
    double d[2 * EVAL_CHUNK];
    for (int k = 0; k < n; k++) {
        int pair[4] = {3 * k, 3 * k + 1, 3 * k, 3 * k + 2};
        memcpy(pairs + 4 * k, pair, sizeof pair);
    }
    if (perceptual_lpips(e->model, images, 3 * n, pairs, 2 * n, d, NULL, err)) return -1;
    for (int k = 0; k < n; k++) {
        d0[k] = d[2 * k];
        d1[k] = d[2 * k + 1];
    }
    return 0;
}

/* Loads the triplets [start, start + n) of b, all of one size: -1 (err) otherwise. */
static int load_chunk(const struct metric_bapps *b, size_t start, int n, struct img **images,
                      struct eng_error *err)
{
    for (int k = 0; k < n; k++) {
        const char *paths[3] = {b->ref[start + k], b->p0[start + k], b->p1[start + k]};
        for (int r = 0; r < 3; r++) {
            struct img *im = images[3 * k + r] = load_image(paths[r], NULL, NULL, err);
            if (!im) return -1;
            if (im->width != images[0]->width || im->height != images[0]->height)
                return eng_fail(err, ENG_INVALID, "%s is %dx%d, %s is %dx%d: the sizes differ",
                                paths[r], im->width, im->height, b->ref[start], images[0]->width,
                                images[0]->height);
        }
    }
    return 0;
}

/* Scores one folder and prints its line. */
static int eval_folder(struct eval *e, const char *dir, const char *label)
{
    struct metric_bapps b;
    struct eng_error err = {0};
    if (metric_bapps_read(dir, &b, &err)) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    double *d0 = calloc(b.count + 1, sizeof *d0), *d1 = calloc(b.count + 1, sizeof *d1);
    int rc = d0 && d1 ? 0 : eng_fail(&err, ENG_NO_MEMORY, "out of memory");
    for (size_t start = 0; rc == 0 && start < b.count; start += EVAL_CHUNK) {
        int n = b.count - start < EVAL_CHUNK ? (int)(b.count - start) : EVAL_CHUNK;
        struct img *images[3 * EVAL_CHUNK] = {0};
        rc = load_chunk(&b, start, n, images, &err);
        if (rc == 0) rc = chunk_distances(e, images, n, d0 + start, d1 + start, &err);
        for (int i = 0; i < 3 * n; i++)
            img_free(images[i]);
    }
    if (rc == 0) {
        double score = metric_2afc(d0, d1, b.h, b.count);
        e->sum += score * (double)b.count;
        e->count += b.count;
        print_line(json_pack("{s:s, s:I, s:f}", "folder", label, "triplets", (json_int_t)b.count,
                             "score", score));
    } else {
        fprintf(stderr, "augserve: %s\n", err.message);
    }
    free(d0);
    free(d1);
    metric_bapps_free(&b);
    return rc ? 1 : 0;
}

/* dir itself when it holds ref/, else each subfolder that does, in name order. */
static int eval_dataset(struct eval *e, const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/ref", dir);
    if (stat(path, &st) == 0) return eval_folder(e, dir, ".");
    struct dirent **entries = NULL; /* scandir leaves it as it is when it fails */
    int n = scandir(dir, &entries, NULL, alphasort), status = n < 0 ? 1 : 0;
    if (n < 0) fprintf(stderr, "augserve: %s: %s\n", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/ref", dir, entries[i]->d_name);
        if (status == 0 && entries[i]->d_name[0] != '.' && stat(path, &st) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, entries[i]->d_name);
            status = eval_folder(e, path, entries[i]->d_name);
        }
        free(entries[i]);
    }
    free(entries);
    if (status == 0 && e->count == 0) {
        fprintf(stderr, "augserve: %s: no ref/, p0/, p1/, judge/ folders\n", dir);
        status = 1;
    }
    return status;
}

int cli_eval_2afc(int argc, char **argv)
{
    static const char *const names[] = {"lpips", "ssim", "ms_ssim", "psnr", "l2"};
    const char *dataset = NULL, *metric = NULL;
    int threads = 0;
    const struct flag flags[] = {{"--dataset", FLAG_TEXT, &dataset},
                                 {"--metric", FLAG_TEXT, &metric},
                                 {"--threads", FLAG_INT, &threads}};
    if (parse_flags(argc, argv, flags, FLAG_COUNT(flags)) != 0) return eval_usage(stderr), 2;
    struct eval e = {0};
    size_t k = 0;
    while (metric && k < 5 && strcmp(metric, names[k]) != 0 &&
           !(k == 0 && strncmp(metric, "lpips:", 6) == 0))
        k++;
    if (!dataset || !metric || k == 5 || (k == 0 && strlen(metric) <= 6) || threads < 0)
        return eval_usage(stderr), 2;
    e.metric = (int)k;
    struct models *repo = NULL;
    if (k == 0 && !(e.model = open_perceptual(metric + 6, threads, &repo))) return 1;
    struct eng_error err = {0};
    int status = img_codec_init(&err) == 0 ? eval_dataset(&e, dataset) : 1;
    if (err.code) fprintf(stderr, "augserve: %s\n", err.message);
    if (status == 0)
        print_line(json_pack("{s:s, s:I, s:f}", "metric", metric, "triplets", (json_int_t)e.count,
                             "score", e.sum / (double)e.count));
    model_release(e.model);
    models_close(repo);
    return status;
}

/* n boxes in a grid over a width x height image, for the targets path of bench augment. */
static struct targets *bench_boxes(int n, int width, int height, struct eng_error *err)
{
    struct targets *t = targets_new(width, height, (size_t)n, 0, err);
    const int columns = (int)ceil(sqrt(n));
    const double cw = (double)width / columns, ch = (double)height / columns;
    for (int i = 0; t && i < n; i++) {
        const double x = (i % columns) * cw, y = (double)(i / columns) * ch;
        const double v[4] = {x + cw / 4, y + ch / 4, x + cw * 0.75, y + ch * 0.75};
        if (targets_add(t, v, 4, BOX_PASCAL_VOC, i, NULL, i, err) != 0) {
            targets_free(t);
            t = NULL;
        }
    }
    return t;
}

/* One benchmark sample: the trace on in, and on n fresh grid boxes when n > 0. */
static struct img *bench_apply(const struct trace *t, const struct img *in, int boxes,
                               uint32_t sample, struct eng_error *err)
{
    if (boxes == 0) return trace_apply(t, in, 1, 0, sample, err);
    struct targets *moved = bench_boxes(boxes, in->width, in->height, err);
    struct img *out = moved ? trace_apply_targets(t, in, moved, NULL, 1, 0, sample, err) : NULL;
    targets_free(moved);
    return out;
}

/* bench augment's source: the image file resized to size x size, or the synthetic one, as
 * JPEG q90 (malloc'd). 0, or 1 after saying why. */
static int bench_source_jpeg(const char *path, int size, void **jpeg, size_t *jpeg_size)
{
    const struct img_limits limits = {UINT64_MAX, 65535};
    struct eng_error err = {0};
    struct img *source = NULL;
    if (path) {
        struct img *decoded = load_image(path, &limits, NULL, &err);
        source = decoded ? img_resize(decoded, size, size, IMG_BILINEAR, &err) : NULL;
        img_free(decoded);
    } else {
        source = synthetic_image(size, &err);
    }
    int rc = source ? img_encode(source, IMG_JPEG, 90, jpeg, jpeg_size, &err) : -1;
    if (rc != 0) fprintf(stderr, "augserve: %s\n", err.message);
    img_free(source);
    return rc != 0;
}

/* One bench augment run: decode, policy (moving the boxes), encode. */
struct augment_run {
    const struct policy *policy;
    const void *jpeg;
    size_t jpeg_size;
    int boxes;
};

static int bench_augment_once(void *ctx, uint32_t run)
{
    const struct augment_run *b = ctx;
    const struct img_limits limits = {UINT64_MAX, 65535};
    struct eng_error err = {0};
    struct img *in = img_decode(b->jpeg, b->jpeg_size, &limits, NULL, &err);
    struct trace *t = in ? policy_sample(b->policy, 1, 0, run, in->width, in->height, &err) : NULL;
    struct img *out = t ? bench_apply(t, in, b->boxes, run, &err) : NULL;
    void *encoded = NULL;
    size_t encoded_size;
    int rc = out ? img_encode(out, IMG_JPEG, 90, &encoded, &encoded_size, &err) : -1;
    if (rc != 0) fprintf(stderr, "augserve: %s\n", err.message);
    free(encoded);
    img_free(out);
    trace_free(t);
    img_free(in);
    return rc;
}

static int bench_augment(int argc, char **argv)
{
    const char *policy_text = NULL, *image_path = NULL;
    int size = 224, boxes = 0;
    double seconds = 5;
    const struct flag flags[] = {{"-p", FLAG_TEXT, &policy_text},
                                 {"--size", FLAG_INT, &size},
                                 {"--seconds", FLAG_REAL, &seconds},
                                 {"--image", FLAG_TEXT, &image_path},
                                 {"--boxes", FLAG_INT, &boxes}};
    if (parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !policy_text ||
        size < 8 || size > 8192 || !(seconds > 0 && seconds <= 3600) || boxes < 0 || boxes > 1000)
        return bench_usage(stderr), 2;
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    struct policy *policy = policy_parse_text(policy_text, &err);
    if (!policy) return fprintf(stderr, "augserve: policy%s\n", err.message), 2;
    void *jpeg = NULL;
    struct augment_run b = {policy, NULL, 0, boxes};
    long images = 0;
    double elapsed = 0;
    int status = bench_source_jpeg(image_path, size, &jpeg, &b.jpeg_size);
    b.jpeg = jpeg;
    if (status == 0) status = bench_repeat(seconds, bench_augment_once, &b, &images, &elapsed);
    if (status == 0)
        print_line(json_pack("{s:s, s:i, s:i, s:I, s:f, s:f}", "policy", policy_text, "size", size,
                             "boxes", boxes, "images", (json_int_t)images, "seconds", elapsed,
                             "images_per_second", images / elapsed));
    free(jpeg);
    policy_free(policy);
    return status;
}

int cli_bench(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "similarity") == 0) return bench_similarity(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "infer") == 0) return bench_infer(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "audio") == 0) return bench_audio(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "augment") == 0) return bench_augment(argc, argv);
    bench_usage(stderr);
    return 2;
}
