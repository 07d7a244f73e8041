/* Command-line tools on the engine, for scripts: `augserve augment` and `augserve bench augment`.
 * They call the same engine functions as POST /v1/augment, so the benchmark measures what the
 * server runs. */
#include "cli.h"

#include <errno.h>
#include <sys/stat.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "nn.h"
#include "ops_geometry.h"
#include "policy.h"

static int read_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
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
    int failed = ferror(f) || !buf;
    fclose(f);
    if (failed) {
        free(buf);
        return -1;
    }
    *data = buf;
    *size = used;
    return 0;
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

static void augment_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve augment -p POLICY [-s SEED] [-n SAMPLES] [-f jpeg|png|webp|same]\n"
            "                        [-q QUALITY] [-o PATTERN] IN...\n"
            "PATTERN may hold {name}, {input}, {sample} and {ext}; default "
            "\"{name}-{sample}.{ext}\".\n"
            "Prints one JSON line per output: its path and the trace.\n");
}

int cli_augment(int argc, char **argv)
{
    const char *policy_text = NULL, *pattern = NULL, *format = "same";
    unsigned long long seed = 0, samples = 1, quality = 90;
    int have_seed = 0, first_input = argc;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (a[0] != '-') {
            first_input = i;
            break;
        }
        if (!value) {
            augment_usage(stderr);
            return 2;
        }
        if (strcmp(a, "-p") == 0)
            policy_text = value;
        else if (strcmp(a, "-o") == 0)
            pattern = value;
        else if (strcmp(a, "-f") == 0)
            format = value;
        else if (strcmp(a, "-s") == 0) {
            seed = strtoull(value, &end, 10);
            have_seed = 1;
            if (*end || seed > POLICY_MAX_SEED)
                return fprintf(stderr, "-s: a whole number in [0, 2^53)\n"), 2;
        } else if (strcmp(a, "-n") == 0) {
            samples = strtoull(value, &end, 10);
            if (*end || samples < 1 || samples > 100000)
                return fprintf(stderr, "-n: 1 to 100000\n"), 2;
        } else if (strcmp(a, "-q") == 0) {
            quality = strtoull(value, &end, 10);
            if (*end || quality < 1 || quality > 100) return fprintf(stderr, "-q: 1 to 100\n"), 2;
        } else {
            augment_usage(stderr);
            return 2;
        }
        i++;
    }
    if (!policy_text || first_input == argc) {
        augment_usage(stderr);
        return 2;
    }
    enum img_format fixed;
    if (strcmp(format, "same") != 0 && img_format_from_name(format, &fixed) != 0) {
        fprintf(stderr, "-f: jpeg, png, webp or same\n");
        return 2;
    }
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    struct policy *policy = policy_parse_text(policy_text, &err);
    if (!policy) return fprintf(stderr, "augserve: policy%s\n", err.message), 2;
    int views = policy_view_count(policy);
    if (!pattern) pattern = views > 1 ? "{name}-{sample}-{view}.{ext}" : "{name}-{sample}.{ext}";
    if (views > 1 && !strstr(pattern, "{view}")) {
        fprintf(stderr, "augserve: the policy gives %d views per sample: put {view} in -o\n",
                views);
        policy_free(policy);
        return 2;
    }
    if (!have_seed && RAND_bytes((unsigned char *)&seed, sizeof seed) == 1) seed &= POLICY_MAX_SEED;
    printf("{\"seed\":%llu}\n", seed);
    int status = 0;
    struct img_limits limits = {UINT64_MAX, 65535};
    for (int in = first_input; in < argc && status == 0; in++) {
        unsigned char *data;
        size_t size;
        struct img_info info;
        struct img *image = NULL;
        if (read_file(argv[in], &data, &size) != 0) {
            fprintf(stderr, "augserve: %s: %s\n", argv[in], strerror(errno));
            status = 1;
            break;
        }
        image = img_decode(data, size, &limits, &info, &err);
        free(data);
        if (!image) {
            fprintf(stderr, "augserve: %s: %s\n", argv[in], err.message);
            status = 1;
            break;
        }
        enum img_format fmt = IMG_PNG;
        if (strcmp(format, "same") != 0)
            fmt = fixed;
        else if (img_format_from_name(info.format, &fmt) != 0)
            fmt = IMG_PNG;
        uint32_t input = (uint32_t)(in - first_input);
        for (uint32_t k = 0; k < samples * (uint32_t)views && status == 0; k++) {
            uint32_t s = k / (uint32_t)views, view = k % (uint32_t)views;
            struct trace *t =
                policy_sample_view(policy, seed, input, s, view, image->width, image->height, &err);
            struct img *out = t ? trace_apply(t, image, seed, input, s, &err) : NULL;
            void *encoded = NULL;
            size_t encoded_size = 0;
            char path[4096];
            expand_pattern(pattern, argv[in], (int)input, (int)s, (int)view, format_ext(fmt), path,
                           sizeof path);
            if (!out || img_encode(out, fmt, (int)quality, &encoded, &encoded_size, &err) != 0) {
                fprintf(stderr, "augserve: %s: %s\n", argv[in], err.message);
                status = 1;
            } else if (write_file(path, encoded, encoded_size) != 0) {
                fprintf(stderr, "augserve: %s: %s\n", path, strerror(errno));
                status = 1;
            } else {
                json_t *line =
                    json_pack("{s:s, s:i, s:i, s:i, s:o}", "output", path, "input", (int)input,
                              "sample", (int)s, "view", (int)view, "trace", trace_to_json(t));
                char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
                if (text) printf("%s\n", text);
                free(text);
                json_decref(line);
            }
            free(encoded);
            img_free(out);
            trace_free(t);
        }
        img_free(image);
    }
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

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve bench augment -p POLICY [--size PIXELS] [--seconds S] "
            "[--image FILE]\n"
            "One thread: JPEG decode -> policy -> JPEG q90 encode, on a SIZE x SIZE image.\n"
            "Prints {\"policy\", \"size\", \"images\", \"seconds\", \"images_per_second\"}.\n"
            "usage: augserve bench infer --model DIR|FILE [--batch B] [--seconds S] "
            "[--threads T]\n"
            "Runs the ONNX model (DIR/model.onnx) on random inputs of batch B (default 1) with T\n"
            "threads (default: one per core). Symbolic dims other than the batch must be fixed\n"
            "in the model. Prints {\"model\", \"batch\", \"threads\", \"runs\", \"seconds\",\n"
            "\"latency_ms\" (median), \"images_per_second\"}.\n");
}

/* Prints a benchmark's result as one compact JSON line and frees it. */
static void print_line(json_t *line)
{
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (text) printf("%s\n", text);
    free(text);
    json_decref(line);
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
    for (int i = 1; i < argc; i += 2) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (value && strcmp(argv[i], "--model") == 0)
            model = value;
        else if (value && strcmp(argv[i], "--batch") == 0)
            batch = atoi(value);
        else if (value && strcmp(argv[i], "--seconds") == 0)
            seconds = atof(value);
        else if (value && strcmp(argv[i], "--threads") == 0)
            threads = atoi(value);
        else
            return bench_usage(stderr), 2;
    }
    if (!model || batch < 1 || batch > 4096 || threads < 0 || !(seconds > 0 && seconds <= 3600))
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

int cli_bench(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "infer") == 0) return bench_infer(argc, argv);
    if (argc < 1 || strcmp(argv[0], "augment") != 0) {
        bench_usage(stderr);
        return 2;
    }
    const char *policy_text = NULL, *image_path = NULL;
    int size = 224;
    double seconds = 5;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) {
            bench_usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "-p") == 0)
            policy_text = value;
        else if (strcmp(argv[i], "--size") == 0)
            size = atoi(value);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(value);
        else if (strcmp(argv[i], "--image") == 0)
            image_path = value;
        else {
            bench_usage(stderr);
            return 2;
        }
        i++;
    }
    if (!policy_text || size < 8 || size > 8192 || !(seconds > 0 && seconds <= 3600)) {
        bench_usage(stderr);
        return 2;
    }
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    struct policy *policy = policy_parse_text(policy_text, &err);
    if (!policy) return fprintf(stderr, "augserve: policy%s\n", err.message), 2;
    struct img *source = NULL;
    struct img_limits limits = {UINT64_MAX, 65535};
    if (image_path) {
        unsigned char *data;
        size_t data_size;
        struct img_info info;
        if (read_file(image_path, &data, &data_size) != 0) {
            fprintf(stderr, "augserve: %s: %s\n", image_path, strerror(errno));
            policy_free(policy);
            return 1;
        }
        struct img *decoded = img_decode(data, data_size, &limits, &info, &err);
        free(data);
        source = decoded ? img_resize(decoded, size, size, IMG_BILINEAR, &err) : NULL;
        img_free(decoded);
    } else {
        source = synthetic_image(size, &err);
    }
    void *jpeg = NULL;
    size_t jpeg_size = 0;
    if (!source || img_encode(source, IMG_JPEG, 90, &jpeg, &jpeg_size, &err) != 0) {
        fprintf(stderr, "augserve: %s\n", err.message);
        img_free(source);
        policy_free(policy);
        return 1;
    }
    img_free(source);
    long images = 0;
    int status = 0;
    double start = now_seconds(), elapsed = 0;
    while (elapsed < seconds && status == 0) {
        struct img_info info;
        struct img *in = img_decode(jpeg, jpeg_size, &limits, &info, &err);
        struct trace *t =
            in ? policy_sample(policy, 1, 0, (uint32_t)images, in->width, in->height, &err) : NULL;
        struct img *out = t ? trace_apply(t, in, 1, 0, (uint32_t)images, &err) : NULL;
        void *encoded = NULL;
        size_t encoded_size;
        if (!out || img_encode(out, IMG_JPEG, 90, &encoded, &encoded_size, &err) != 0) {
            fprintf(stderr, "augserve: %s\n", err.message);
            status = 1;
        }
        free(encoded);
        img_free(out);
        trace_free(t);
        img_free(in);
        images++;
        elapsed = now_seconds() - start;
    }
    if (status == 0) {
        json_t *line = json_pack("{s:s, s:i, s:I, s:f, s:f}", "policy", policy_text, "size", size,
                                 "images", (json_int_t)images, "seconds", elapsed,
                                 "images_per_second", images / elapsed);
        print_line(line);
    }
    free(jpeg);
    policy_free(policy);
    return status;
}
