/* `augserve bench augment|infer|audio|similarity|loader` (`train` is cli_bench_train.c): each runs
 * one of the server's paths in a loop for a number of seconds and prints one JSON line of its
 * throughput. The paths are the server's own engine calls, so the figures are the server's; the
 * inputs are synthetic unless a file is given. */
#include "cli.h"
#include "cli_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/geometry.h"
#include "image/targets.h"
#include "nn/nn.h"
#include "perceptual.h"
#include "policy/audio_pipeline.h"

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
            "\"clip_seconds\", \"runs\", \"seconds\", \"audio_seconds_per_second\"}.\n"
            "usage: augserve bench loader --dataset DIR --policy P [--split S] [--batch B]\n"
            "                             [--threads T] [--seconds S] [--crop N]\n"
            "The data loader on an imported dataset (augserve dataset import): epochs of the\n"
            "split (default train, else the first) shuffled, the policy on each image, then\n"
            "ToTensor and ImageNet's Normalize (a center crop of N first, needed when images\n"
            "differ in size) into NCHW float batches of B (default 128), on T loader threads\n"
            "(default 2). Prints {\"dataset\", \"split\", \"policy\", \"batch\", \"threads\",\n"
            "\"images\", \"seconds\", \"images_per_second\"}.\n");
    cli_bench_train_usage(out);
}

/* One run of a benchmark, number run: 0, or nonzero after saying why it failed. */
typedef int (*bench_run_fn)(void *ctx, uint32_t run);

/* Runs once(ctx, run) for run = 0, 1, ... until seconds have passed: 0 with the runs and the
 * time they took, or 1 when a run fails (it said why). */
static int bench_repeat(double seconds, bench_run_fn once, void *ctx, long *runs, double *elapsed)
{
    double start = cli_now();
    for (*runs = 0, *elapsed = 0; *elapsed < seconds; *elapsed = cli_now() - start)
        if (once(ctx, (uint32_t)(*runs)++) != 0) return 1;
    return 0;
}

/* Runs once(ctx, run) to warm up (a network's first run sets up its primitives), then again
 * until seconds have passed and it has run at least 3 times: 0 with the runs, the time they took
 * and each run's in (*latency)[0..runs) (malloc'd, freed by the caller), or 1 when a run fails
 * (it said why) or there is no memory for the latencies. */
static int bench_warm(double seconds, bench_run_fn once, void *ctx, long *runs, double *elapsed,
                      double **latency)
{
    size_t cap = 1024;
    *runs = 0;
    *elapsed = 0;
    *latency = malloc(cap * sizeof **latency);
    if (!*latency || once(ctx, 0) != 0) return 1;
    const double start = cli_now();
    while (*elapsed < seconds || *runs < 3) {
        if ((size_t)*runs == cap) {
            double *grown = realloc(*latency, 2 * cap * sizeof *grown);
            if (!grown) break; /* over a thousand runs: enough to report */
            *latency = grown;
            cap *= 2;
        }
        const double t0 = cli_now();
        if (once(ctx, (uint32_t)*runs) != 0) return 1;
        const double t1 = cli_now();
        (*latency)[(*runs)++] = t1 - t0;
        *elapsed = t1 - start;
    }
    return 0;
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

/* ---- bench augment --------------------------------------------------------------------------- */

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
    struct eng_error err = {0};
    struct img *source = NULL;
    if (path) {
        struct img *decoded = cli_load_image(path, &cli_image_options, NULL, &err);
        source = decoded ? img_resize(decoded, size, size, IMG_BILINEAR, &err) : NULL;
        img_free(decoded);
    } else {
        source = synthetic_image(size, &err);
    }
    int rc = source ? img_encode(source, IMG_JPEG, 90, NULL, jpeg, jpeg_size, &err) : -1;
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
    struct eng_error err = {0};
    struct img *in = img_decode(b->jpeg, b->jpeg_size, &cli_image_options, NULL, &err);
    struct trace *t = in ? policy_sample(b->policy, 1, 0, run, in->width, in->height, &err) : NULL;
    struct img *out = t ? bench_apply(t, in, b->boxes, run, &err) : NULL;
    void *encoded = NULL;
    size_t encoded_size;
    int rc = out ? img_encode(out, IMG_JPEG, 90, NULL, &encoded, &encoded_size, &err) : -1;
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
    const struct cli_flag flags[] = {{"-p", FLAG_TEXT, &policy_text},
                                     {"--size", FLAG_INT, &size},
                                     {"--seconds", FLAG_REAL, &seconds},
                                     {"--image", FLAG_TEXT, &image_path},
                                     {"--boxes", FLAG_INT, &boxes}};
    if (cli_parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !policy_text ||
        size < 8 || size > 8192 || !(seconds > 0 && seconds <= 3600) || boxes < 0 || boxes > 1000)
        return bench_usage(stderr), 2;
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    struct policy *policy = cli_parse_policy(policy_text);
    if (!policy) return 2;
    void *jpeg = NULL;
    struct augment_run b = {policy, NULL, 0, boxes};
    long images = 0;
    double elapsed = 0;
    int status = bench_source_jpeg(image_path, size, &jpeg, &b.jpeg_size);
    b.jpeg = jpeg;
    if (status == 0) status = bench_repeat(seconds, bench_augment_once, &b, &images, &elapsed);
    if (status == 0)
        cli_print_line(json_pack("{s:s, s:i, s:i, s:I, s:f, s:f}", "policy", policy_text, "size",
                                 size, "boxes", boxes, "images", (json_int_t)images, "seconds",
                                 elapsed, "images_per_second", images / elapsed));
    free(jpeg);
    policy_free(policy);
    return status;
}

/* ---- bench infer ----------------------------------------------------------------------------- */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One run of bench infer: the plan on its inputs, its outputs freed. */
struct plan_run {
    struct nn_plan *plan;
    const float *const *inputs;
    float **outputs;
    struct nn_tensor_info *info;
    size_t output_count;
    struct eng_error err; /* kept: clearing its 512 bytes would weigh on a 1 us model's runs */
};

static int plan_once(void *ctx, uint32_t run)
{
    struct plan_run *r = ctx;
    int rc = nn_plan_run(r->plan, r->inputs, r->outputs, r->info, &r->err);
    if (rc != 0) fprintf(stderr, "augserve: %s\n", r->err.message);
    for (size_t k = 0; k < r->output_count; k++) {
        free(r->outputs[k]);
        r->outputs[k] = NULL;
    }
    return rc;
}

/* Runs plan on inputs through bench_warm and prints the median latency and the throughput. */
static int bench_plan(struct nn_plan *plan, const float *const *inputs, const char *model,
                      int batch, int threads, double seconds)
{
    size_t n_out = nn_plan_output_count(plan);
    struct plan_run r = {plan,
                         inputs,
                         calloc(n_out ? n_out : 1, sizeof *r.outputs),
                         calloc(n_out ? n_out : 1, sizeof *r.info),
                         n_out,
                         {0}};
    double *latency = NULL, elapsed;
    long runs;
    int status =
        r.outputs && r.info ? bench_warm(seconds, plan_once, &r, &runs, &elapsed, &latency) : 1;
    if (status == 0) {
        qsort(latency, (size_t)runs, sizeof *latency, compare_doubles);
        cli_print_line(json_pack("{s:s, s:i, s:i, s:I, s:f, s:f, s:f}", "model", model, "batch",
                                 batch, "threads", threads, "runs", (json_int_t)runs, "seconds",
                                 elapsed, "latency_ms", latency[runs / 2] * 1000,
                                 "images_per_second", (double)runs * batch / elapsed));
    }
    free(latency);
    free(r.info);
    free(r.outputs);
    return status;
}

static int bench_infer(int argc, char **argv)
{
    const char *model = NULL;
    int batch = 1, threads = 0;
    double seconds = 5;
    const struct cli_flag flags[] = {{"--model", FLAG_TEXT, &model},
                                     {"--batch", FLAG_INT, &batch},
                                     {"--seconds", FLAG_REAL, &seconds},
                                     {"--threads", FLAG_INT, &threads}};
    if (cli_parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !model || batch < 1 ||
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

/* ---- bench audio ----------------------------------------------------------------------------- */

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
        rc = cli_read_file(path, data, size, &err);
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
    struct audio_pipeline_sample out = {0};
    void *npy = NULL;
    size_t npy_size;
    int rc = -1;
    if (clip && audio_pipeline_run(b->pipeline, clip, 0, run, 0, true, &out, &err) == 0 &&
        audio_pipeline_encode(&out, AUDIO_OUTPUT_FEATURES, &npy, &npy_size, &err) == 0) {
        b->clip_seconds = (double)clip->length / clip->rate;
        b->audio_seconds += b->clip_seconds;
        rc = 0;
    } else {
        fprintf(stderr, "augserve: %s\n", err.message);
    }
    free(npy);
    audio_pipeline_sample_free(&out);
    audio_free(clip);
    return rc;
}

static int bench_audio(int argc, char **argv)
{
    const char *policy_text = NULL, *audio_path = NULL;
    double seconds = 5;
    const struct cli_flag flags[] = {{"-p", FLAG_TEXT, &policy_text},
                                     {"--seconds", FLAG_REAL, &seconds},
                                     {"--audio", FLAG_TEXT, &audio_path}};
    if (cli_parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !policy_text ||
        !(seconds > 0 && seconds <= 3600))
        return bench_usage(stderr), 2;
    struct policy *p = cli_parse_policy(policy_text);
    if (!p) return 2;
    struct eng_error err = {0};
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
        cli_print_line(json_pack("{s:s, s:f, s:I, s:f, s:f}", "policy", policy_text, "clip_seconds",
                                 b.clip_seconds, "runs", (json_int_t)runs, "seconds", elapsed,
                                 "audio_seconds_per_second", b.audio_seconds / elapsed));
    free(wav);
    audio_mel_free(mel);
    policy_free(p);
    return status;
}

/* ---- bench similarity ------------------------------------------------------------------------ */

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

/* One run of bench similarity: LPIPS on all the pairs at once. */
struct lpips_run {
    struct model *model;
    struct img *const *images;
    const int *pairs;
    double *distances;
    int batch;
};

static int lpips_once(void *ctx, uint32_t run)
{
    const struct lpips_run *r = ctx;
    struct eng_error err = {0};
    if (perceptual_lpips(r->model, r->images, 2 * r->batch, r->pairs, r->batch, r->distances, NULL,
                         &err) == 0)
        return 0;
    fprintf(stderr, "augserve: %s\n", err.message);
    return -1;
}

/* Runs LPIPS on the pairs through bench_warm and prints the throughput. */
static int bench_lpips(struct model *m, struct img *const *images, int batch, double seconds,
                       json_t *line)
{
    int *pairs = malloc(2 * (size_t)batch * sizeof *pairs);
    struct lpips_run r = {m, images, pairs, malloc((size_t)batch * sizeof *r.distances), batch};
    double *latency = NULL, elapsed;
    long runs;
    int status = pairs && r.distances ? 0 : 1;
    for (int i = 0; status == 0 && i < 2 * batch; i++)
        pairs[i] = i;
    if (status == 0) status = bench_warm(seconds, lpips_once, &r, &runs, &elapsed, &latency);
    if (status == 0) {
        json_object_set_new(line, "runs", json_integer(runs));
        json_object_set_new(line, "seconds", json_real(elapsed));
        json_object_set_new(line, "pairs_per_second", json_real((double)runs * batch / elapsed));
        cli_print_line(json_incref(line));
    }
    free(latency);
    free(pairs);
    free(r.distances);
    return status;
}

static int bench_similarity(int argc, char **argv)
{
    const char *model = NULL;
    int size = 64, batch = 32, threads = 0;
    double seconds = 5;
    const struct cli_flag flags[] = {{"--model", FLAG_TEXT, &model},
                                     {"--size", FLAG_INT, &size},
                                     {"--batch", FLAG_INT, &batch},
                                     {"--seconds", FLAG_REAL, &seconds},
                                     {"--threads", FLAG_INT, &threads}};
    if (cli_parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !model || size < 8 ||
        size > 4096 || batch < 1 || batch > 1024 || threads < 0 ||
        !(seconds > 0 && seconds <= 3600))
        return bench_usage(stderr), 2;
    struct models *repo;
    struct model *m = cli_open_perceptual(model, threads, &repo);
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

/* ---- bench loader ---------------------------------------------------------------------------- */

/* One bench loader run: one batch. */
struct loader_run {
    struct cli_feed feed;
    long images;
};

static int loader_once(void *ctx, uint32_t run)
{
    (void)run;
    struct loader_run *r = ctx;
    struct data_batch b;
    if (cli_feed_next(&r->feed, &b) != 0) return -1;
    r->images += (long)b.size;
    return 0;
}

static int bench_loader(int argc, char **argv)
{
    const char *dir = NULL, *policy_text = NULL, *split_name = NULL;
    int batch = 128, threads = 2, crop = 0;
    double seconds = 5;
    const struct cli_flag flags[] = {
        {"--dataset", FLAG_TEXT, &dir},     {"--policy", FLAG_TEXT, &policy_text},
        {"-p", FLAG_TEXT, &policy_text},    {"--split", FLAG_TEXT, &split_name},
        {"--batch", FLAG_INT, &batch},      {"--threads", FLAG_INT, &threads},
        {"--seconds", FLAG_REAL, &seconds}, {"--crop", FLAG_INT, &crop}};
    if (cli_parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || !dir ||
        !policy_text || batch < 1 || batch > 65536 || threads < 0 || threads > 256 || crop < 0 ||
        crop > 65535 || !(seconds > 0 && seconds <= 3600))
        return bench_usage(stderr), 2;
    const struct classify_preprocess pp = {.crop_height = crop,
                                           .crop_width = crop,
                                           .scale = 1.0f / 255,
                                           .mean = {0.485f, 0.456f, 0.406f},
                                           .std = {0.229f, 0.224f, 0.225f},
                                           .channels = 3};
    struct loader_run r = {0};
    long runs = 0;
    double elapsed = 0;
    int status = cli_feed_open(&r.feed, dir, split_name, policy_text);
    r.feed.options.preprocess = &pp;
    r.feed.options.batch = (size_t)batch;
    r.feed.options.threads = threads;
    if (status == 0) status = bench_repeat(seconds, loader_once, &r, &runs, &elapsed);
    if (status == 0)
        cli_print_line(json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:f, s:f}", "dataset", dir,
                                 "split", r.feed.options.split->name, "policy", policy_text,
                                 "batch", batch, "threads", threads, "images", (json_int_t)r.images,
                                 "seconds", elapsed, "images_per_second", r.images / elapsed));
    cli_feed_close(&r.feed);
    return status;
}

int cli_bench(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "train") == 0) return cli_bench_train(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "loader") == 0) return bench_loader(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "similarity") == 0) return bench_similarity(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "infer") == 0) return bench_infer(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "audio") == 0) return bench_audio(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "augment") == 0) return bench_augment(argc, argv);
    bench_usage(stderr);
    return 2;
}
