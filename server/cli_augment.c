/* `augserve augment` and `augserve augment-audio`: a policy's samples of each input image or
 * clip, written where -o says, one JSON line (path and trace) per output. Both take the flags
 * of struct run_args and write through write_samples; each adds its own flags and its way to
 * make one output. */
#include "cli.h"
#include "cli_internal.h"

#include <errno.h>
#include <libgen.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"
#include "json_text.h"
#include "policy/audio_pipeline.h"

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

/* The value of a whole-number flag (-s, -n, -q) in [min, max]: 0, or 2 after printing
 * complaint, which names the flag and what it takes. */
static int parse_whole_flag(const char *value, unsigned long long min, unsigned long long max,
                            const char *complaint, unsigned long long *out)
{
    if (parse_whole(value, min, max, out) == PARSE_OK) return 0;
    fprintf(stderr, "%s\n", complaint);
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
        return a->have_seed = 1, parse_whole_flag(value, 0, POLICY_MAX_SEED,
                                                  "-s: a whole number in [0, 2^53)", &a->seed);
    else if (strcmp(flag, "-n") == 0)
        return parse_whole_flag(value, 1, 100000, "-n: 1 to 100000", &a->samples);
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

/* ---- augment --------------------------------------------------------------------------------- */

static void augment_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve augment -p POLICY [-s SEED] [-n SAMPLES] [-f jpeg|png|webp|same]\n"
            "                        [-q QUALITY] [--color keep|srgb] [-o PATTERN] IN...\n"
            "PATTERN may hold {name}, {input}, {sample} and {ext}; default "
            "\"{name}-{sample}.{ext}\".\n"
            "--color keep (the default) keeps the stored pixel values and writes the input's ICC\n"
            "profile into the outputs; srgb converts to sRGB and writes none.\n"
            "Prints one JSON line per output: its path and the trace.\n");
}

/* augment's own flags. */
struct image_flags {
    unsigned long long quality;
    enum img_color color;
};

/* -q QUALITY (1 to 100) and --color keep|srgb: as extra_flag_fn. */
static int parse_image_flag(void *ctx, const char *flag, const char *value)
{
    struct image_flags *f = ctx;
    if (strcmp(flag, "-q") == 0)
        return parse_whole_flag(value, 1, 100, "-q: 1 to 100", &f->quality);
    if (strcmp(flag, "--color") != 0) return 1;
    if (img_color_from_name(value, &f->color) == 0) return 0;
    fprintf(stderr, "--color: keep or srgb\n");
    return 2;
}

/* One input image of augment, for write_samples. */
struct image_job {
    const struct policy *policy;
    const struct img *image;
    const struct img_profile *icc; /* the input's, written into every output */
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
    int rc = out ? img_encode(out, j->fmt, j->quality, j->icc, data, size, err) : -1;
    img_free(out);
    return rc;
}

/* The policy's outputs for each input of argv[a->first_input..argc). */
static int augment_images(const struct run_args *a, int argc, char **argv,
                          const struct policy *policy, int views, const enum img_format *fixed,
                          const struct image_flags *flags)
{
    struct img_decode_options opt = cli_image_options;
    opt.color = flags->color;
    int status = 0;
    for (int in = a->first_input; in < argc && status == 0; in++) {
        struct eng_error err = {0};
        struct img_info info;
        struct img *image = cli_load_image(argv[in], &opt, &info, &err);
        if (!image) return fprintf(stderr, "augserve: %s\n", err.message), 1;
        struct image_job job = {.policy = policy,
                                .image = image,
                                .icc = &info.icc,
                                .fmt = IMG_PNG,
                                .quality = (int)flags->quality,
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
        img_info_clear(&info);
    }
    return status;
}

int cli_augment(int argc, char **argv)
{
    struct run_args a = {.format = "same", .samples = 1};
    struct image_flags flags = {90, IMG_COLOR_KEEP};
    int status = parse_run_args(argc, argv, &a, parse_image_flag, &flags, augment_usage);
    if (status != 0) return status;
    enum img_format fixed;
    const int same = strcmp(a.format, "same") == 0;
    if (!same && img_format_from_name(a.format, &fixed) != 0) {
        fprintf(stderr, "-f: jpeg, png, webp or same\n");
        return 2;
    }
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    struct policy *policy = cli_parse_policy(a.policy);
    if (!policy) return 2;
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
    status = augment_images(&a, argc, argv, policy, views, same ? NULL : &fixed, &flags);
    policy_free(policy);
    return status;
}

/* ---- augment-audio --------------------------------------------------------------------------- */

#define CLI_MAX_CLIPS 64 /* files of --noise, and of --rir */

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

/* Loads count files into clips; -1 after saying why (the loaded ones stay to be freed). */
static int load_clips(const char *const *paths, int count, int rate, struct audio **clips)
{
    struct eng_error err = {0};
    for (int i = 0; i < count; i++)
        if (!(clips[i] = cli_load_clip(paths[i], rate, &err)))
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
    struct audio_pipeline_sample s;
    if (audio_pipeline_run(j->pipeline, j->clip, j->input, sample, view,
                           !audio_output_is_wave(j->output), &s, err) != 0)
        return -1;
    int rc = audio_pipeline_encode(&s, j->output, data, size, err);
    *t = s.trace; /* the caller's now */
    s.trace = NULL;
    audio_pipeline_sample_free(&s);
    return rc;
}

/* The policy, checked against the output; NULL after saying why. */
static struct policy *audio_policy(const char *text, enum audio_output output)
{
    struct policy *p = cli_parse_policy(text);
    if (p && audio_output_is_wave(output) && (policy_domain(p) & POLICY_SPECTROGRAM)) {
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
