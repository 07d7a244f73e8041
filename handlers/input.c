#include "input.h"

#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "parallel.h"
#include "policy.h"
#include "request.h"
#include "response.h"

const char *input_param(const struct request *req, const char *name)
{
    const struct request_part *part = request_part(req, name);
    if (part && !part->filename) return (const char *)part->data;
    return request_query(req, name);
}

int input_parse_whole(const char *text, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    if (!text || *text < '0' || *text > '9') return -1;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int input_seed(const struct request *req, struct response *resp, unsigned long long *seed)
{
    const char *text = input_param(req, "seed");
    if (text && input_parse_whole(text, 0, POLICY_MAX_SEED, seed) != 0) {
        response_error(resp, 422, "seed: must be a whole number in [0, %llu]", POLICY_MAX_SEED);
        return -1;
    }
    if (!text) {
        if (RAND_bytes((unsigned char *)seed, sizeof *seed) != 1) {
            response_error(resp, 500, "the random generator failed");
            return -1;
        }
        *seed &= POLICY_MAX_SEED;
    }
    return 0;
}

int input_policy(struct request *req, struct response *resp, struct policy **policy)
{
    const char *text = input_param(req, "policy");
    if (!text || !*text) {
        response_error(resp, 422,
                       "policy: missing; give a preset name (GET /v1/policies) or a "
                       "policy document");
        return -1;
    }
    struct eng_error err = {0};
    *policy = policy_cache_parse(req->app->policies, text, &err);
    if (!*policy) {
        response_error_code(resp, 422, "invalid_policy", "policy%s", err.message);
        return -1;
    }
    return 0;
}

int input_samples(const struct request *req, struct response *resp, unsigned long long *samples)
{
    const struct config *cfg = req->app->cfg;
    const char *text = input_param(req, "samples");
    *samples = 1;
    if (text && input_parse_whole(text, 1, (unsigned long long)cfg->max_samples, samples) != 0) {
        response_error(resp, 422, "samples: must be a whole number in [1, %d] (max_samples)",
                       cfg->max_samples);
        return -1;
    }
    return 0;
}

char *input_base64(const void *data, size_t size)
{
    char *out = malloc(4 * ((size + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)size);
    return out;
}

int input_parts(const struct request *req, struct response *resp, const char *name,
                struct input_bytes *out, int max, int *count)
{
    *count = 0;
    for (size_t i = 0; i < req->part_count; i++) {
        if (strcmp(req->parts[i].name, name) != 0) continue;
        if (*count == max) {
            response_error(resp, 422, "more than max_inputs (%d) parts named %s", max, name);
            return -1;
        }
        out[*count].data = req->parts[i].data;
        out[*count].size = req->parts[i].size;
        (*count)++;
    }
    return 0;
}

int input_collect(const struct request *req, struct response *resp, const char *kind,
                  struct input_bytes *out, int max, int *count)
{
    *count = 0;
    size_t kind_len = strlen(kind);
    if (req->part_count > 0) {
        if (input_parts(req, resp, kind, out, max, count) != 0) return -1;
    } else if (req->body_size > 0) {
        const char *type = request_header(req, "Content-Type");
        if (type && !(strncasecmp(type, kind, kind_len) == 0 && type[kind_len] == '/') &&
            strncasecmp(type, "application/octet-stream", 24) != 0) {
            response_error(resp, 415, "Content-Type %s: send %s (%s/*) or multipart parts named %s",
                           type, kind, kind, kind);
            return -1;
        }
        out[0].data = req->body;
        out[0].size = req->body_size;
        *count = 1;
    }
    if (*count == 0) {
        response_error(resp, 422,
                       "no %s: send it as the body (Content-Type: %s/*) or as multipart parts "
                       "named %s",
                       kind, kind, kind);
        return -1;
    }
    return 0;
}

int input_collect_images(struct request *req, struct response *resp, struct input_image *images,
                         int max, int *count)
{
    struct input_bytes *bytes = calloc((size_t)max, sizeof *bytes);
    if (!bytes) {
        response_error(resp, 503, "out of memory");
        return -1;
    }
    int rc = input_collect(req, resp, "image", bytes, max, count);
    for (int i = 0; rc == 0 && i < *count; i++) {
        images[i].data = bytes[i].data;
        images[i].size = bytes[i].size;
    }
    free(bytes);
    return rc;
}

/* The error of input `what` number i, named so, keeping the engine's status. Returns -1. */
static int fail_named(struct response *resp, const char *what, int i, struct eng_error *err)
{
    char message[sizeof err->message + 32];
    snprintf(message, sizeof message, "%s %d: %s", what, i, err->message);
    memcpy(err->message, message, sizeof err->message - 1);
    err->message[sizeof err->message - 1] = '\0';
    response_engine_error(resp, err);
    return -1;
}

struct decoding {
    struct input_image *images;
    const struct img_limits *limits;
    struct eng_error *errors;
};

static void decode_one(void *ctx, size_t i)
{
    struct decoding *d = ctx;
    struct input_image *in = &d->images[i];
    in->image = img_decode(in->data, in->size, d->limits, &in->info, &d->errors[i]);
}

int input_decode_images(struct request *req, struct response *resp, struct input_image *images,
                        int count)
{
    const struct config *cfg = req->app->cfg;
    struct img_limits limits = {(uint64_t)cfg->max_pixels, cfg->max_dimension};
    struct decoding d = {images, &limits, calloc((size_t)count, sizeof *d.errors)};
    if (!d.errors) {
        response_error(resp, 503, "out of memory");
        return -1;
    }
    parallel_for((size_t)count, req->app->workers, decode_one, &d);
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++)
        if (!images[i].image) rc = fail_named(resp, "image", i, &d.errors[i]);
    free(d.errors);
    return rc;
}

void input_free_images(struct input_image *images, int count)
{
    for (int i = 0; i < count; i++)
        img_free(images[i].image);
}

/* ---- Audio ---------------------------------------------------------------------------------- */

struct clip_decoding {
    struct input_clip *clips;
    const struct audio_decode_options *opt;
    struct eng_error *errors;
};

static void decode_clip(void *ctx, size_t i)
{
    struct clip_decoding *d = ctx;
    struct input_clip *c = &d->clips[i];
    c->clip = audio_decode(c->bytes.data, c->bytes.size, d->opt, &c->info, &d->errors[i]);
}

int input_decode_clips(struct request *req, struct response *resp, const char *what,
                       struct input_clip *clips, int count, const struct audio_decode_options *opt)
{
    struct clip_decoding d = {clips, opt, calloc((size_t)count + 1, sizeof *d.errors)};
    if (!d.errors) {
        response_error(resp, 503, "out of memory");
        return -1;
    }
    parallel_for((size_t)count, req->app->workers, decode_clip, &d);
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++)
        if (!clips[i].clip) rc = fail_named(resp, what, i, &d.errors[i]);
    free(d.errors);
    return rc;
}

void input_free_clips(struct input_clip *clips, int count)
{
    for (int i = 0; i < count; i++)
        audio_free(clips[i].clip);
}

const char *const input_mel_fields[] = {
    "sample_rate", "n_fft",     "win_length", "hop_length", "n_mels",     "f_min", "f_max",
    "power",       "mel_scale", "norm",       "center",     "log_offset", NULL,
};

static int parse_int(const char *text, int *out)
{
    unsigned long long v;
    if (input_parse_whole(text, 0, INT_MAX, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

static int parse_real(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Index of text in the NULL-terminated names, or -1. */
static int parse_choice(const char *text, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

int input_mel_field(struct audio_mel_config *cfg, const char *name, const char *text, char *why,
                    size_t why_size)
{
    static const char *const scales[] = {"htk", "slaney", NULL};
    static const char *const norms[] = {"none", "slaney", NULL};
    static const char *const flags[] = {"false", "true", NULL};
    int *whole = strcmp(name, "sample_rate") == 0  ? &cfg->sample_rate
                 : strcmp(name, "n_fft") == 0      ? &cfg->n_fft
                 : strcmp(name, "win_length") == 0 ? &cfg->win_length
                 : strcmp(name, "hop_length") == 0 ? &cfg->hop_length
                 : strcmp(name, "n_mels") == 0     ? &cfg->n_mels
                 : strcmp(name, "power") == 0      ? &cfg->power
                                                   : NULL;
    double *real = strcmp(name, "f_min") == 0        ? &cfg->f_min
                   : strcmp(name, "f_max") == 0      ? &cfg->f_max
                   : strcmp(name, "log_offset") == 0 ? &cfg->log_offset
                                                     : NULL;
    int choice;
    if (whole) {
        if (parse_int(text, whole) == 0) return 0;
        snprintf(why, why_size, "%s: must be a whole number", name);
    } else if (real) {
        if (parse_real(text, real) == 0) return 0;
        snprintf(why, why_size, "%s: must be a number", name);
    } else if (strcmp(name, "mel_scale") == 0) {
        if ((choice = parse_choice(text, scales)) >= 0) return cfg->mel_scale = choice, 0;
        snprintf(why, why_size, "mel_scale: must be htk or slaney");
    } else if (strcmp(name, "norm") == 0) {
        if ((choice = parse_choice(text, norms)) >= 0) return cfg->norm = choice, 0;
        snprintf(why, why_size, "norm: must be none or slaney");
    } else if (strcmp(name, "center") == 0) {
        if ((choice = parse_choice(text, flags)) >= 0) return cfg->center = choice, 0;
        snprintf(why, why_size, "center: must be true or false");
    } else {
        snprintf(why, why_size, "%s: not a setting of the mel front end", name);
    }
    return -1;
}

struct audio_mel_config input_mel_start(void)
{
    struct audio_mel_config cfg = audio_mel_defaults();
    cfg.win_length = 0; /* unset: follows n_fft */
    return cfg;
}

void input_mel_resolve(struct audio_mel_config *cfg)
{
    if (cfg->win_length == 0) cfg->win_length = cfg->n_fft;
}

struct audio_framing input_mel_framing(const struct audio_mel *mel)
{
    const struct audio_mel_config *c = audio_mel_config(mel);
    return (struct audio_framing){c->n_fft, c->hop_length, c->center, c->n_mels};
}

void input_audio_sample_free(struct input_audio_sample *s)
{
    trace_free(s->trace);
    audio_free(s->wave);
    audio_spec_free(s->features);
    memset(s, 0, sizeof *s);
}

int input_audio_run(const struct policy *p, const struct audio_mel *mel,
                    const struct audio_bank *bank, const struct audio *clip, uint64_t seed,
                    uint32_t input, uint32_t sample, uint32_t view, int features,
                    struct input_audio_sample *out, struct eng_error *err)
{
    struct audio_framing framing = input_mel_framing(mel);
    memset(out, 0, sizeof *out);
    out->trace = policy_sample_audio(p, seed, input, sample, view, clip->length, &framing, err);
    if (out->trace) out->wave = trace_apply_wave(out->trace, clip, bank, seed, input, sample, err);
    if (out->wave && features) {
        struct audio_spec *plain = audio_mel_compute(mel, out->wave, err);
        if (plain) out->features = trace_apply_spec(out->trace, plain, err);
        audio_spec_free(plain);
    }
    if (out->wave && (!features || out->features)) return 0;
    input_audio_sample_free(out);
    return -1;
}

static const char *const audio_format_names[] = {"wav", "flac", "features", "png", NULL};

int input_audio_format_from_name(const char *name, enum input_audio_format *fmt)
{
    int i = parse_choice(name, audio_format_names);
    if (i < 0) return -1;
    *fmt = (enum input_audio_format)i;
    return 0;
}

const char *input_audio_format_name(enum input_audio_format fmt)
{
    return audio_format_names[fmt];
}

const char *input_audio_format_mime(enum input_audio_format fmt)
{
    static const char *const mimes[] = {"audio/wav", "audio/flac", "application/x-npy",
                                        "image/png"};
    return mimes[fmt];
}

const char *input_audio_format_ext(enum input_audio_format fmt)
{
    static const char *const exts[] = {"wav", "flac", "npy", "png"};
    return exts[fmt];
}

int input_audio_format_is_wave(enum input_audio_format fmt)
{
    return fmt == INPUT_AUDIO_WAV || fmt == INPUT_AUDIO_FLAC;
}

int input_npy_f32(const float *data, int rows, int cols, void **out, size_t *size,
                  struct eng_error *err)
{
    /* NumPy reads the data in the byte order descr names, so the host's order goes there. */
    const char *descr = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "<f4" : ">f4";
    char dict[128];
    int len =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }",
                 descr, rows, cols);
    /* magic (6) + version (2) + header length (2) + dict + padding + '\n': a multiple of 64. */
    size_t header = ((size_t)(10 + len + 1) + 63) / 64 * 64;
    size_t body = (size_t)rows * (size_t)cols * sizeof(float);
    unsigned char *npy = malloc(header + body);
    if (!npy) return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu bytes of features", body);
    size_t dict_len = header - 10;
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    npy[8] = (unsigned char)(dict_len & 0xff);
    npy[9] = (unsigned char)(dict_len >> 8);
    memset(npy + 10, ' ', dict_len);
    memcpy(npy + 10, dict, (size_t)len);
    npy[header - 1] = '\n';
    if (body) memcpy(npy + header, data, body);
    *out = npy;
    *size = header + body;
    return 0;
}

/* Matplotlib's viridis (van der Walt and Smith, CC0): its 256 entries of _cm_listed.py, each
 * channel round(255 x). Perceptually uniform, and readable in grey and by colour-blind viewers. */
static const uint8_t viridis[256][3] = {
    {68, 1, 84},    {68, 2, 86},    {69, 4, 87},    {69, 5, 89},    {70, 7, 90},    {70, 8, 92},
    {70, 10, 93},   {70, 11, 94},   {71, 13, 96},   {71, 14, 97},   {71, 16, 99},   {71, 17, 100},
    {71, 19, 101},  {72, 20, 103},  {72, 22, 104},  {72, 23, 105},  {72, 24, 106},  {72, 26, 108},
    {72, 27, 109},  {72, 28, 110},  {72, 29, 111},  {72, 31, 112},  {72, 32, 113},  {72, 33, 115},
    {72, 35, 116},  {72, 36, 117},  {72, 37, 118},  {72, 38, 119},  {72, 40, 120},  {72, 41, 121},
    {71, 42, 122},  {71, 44, 122},  {71, 45, 123},  {71, 46, 124},  {71, 47, 125},  {70, 48, 126},
    {70, 50, 126},  {70, 51, 127},  {70, 52, 128},  {69, 53, 129},  {69, 55, 129},  {69, 56, 130},
    {68, 57, 131},  {68, 58, 131},  {68, 59, 132},  {67, 61, 132},  {67, 62, 133},  {66, 63, 133},
    {66, 64, 134},  {66, 65, 134},  {65, 66, 135},  {65, 68, 135},  {64, 69, 136},  {64, 70, 136},
    {63, 71, 136},  {63, 72, 137},  {62, 73, 137},  {62, 74, 137},  {62, 76, 138},  {61, 77, 138},
    {61, 78, 138},  {60, 79, 138},  {60, 80, 139},  {59, 81, 139},  {59, 82, 139},  {58, 83, 139},
    {58, 84, 140},  {57, 85, 140},  {57, 86, 140},  {56, 88, 140},  {56, 89, 140},  {55, 90, 140},
    {55, 91, 141},  {54, 92, 141},  {54, 93, 141},  {53, 94, 141},  {53, 95, 141},  {52, 96, 141},
    {52, 97, 141},  {51, 98, 141},  {51, 99, 141},  {50, 100, 142}, {50, 101, 142}, {49, 102, 142},
    {49, 103, 142}, {49, 104, 142}, {48, 105, 142}, {48, 106, 142}, {47, 107, 142}, {47, 108, 142},
    {46, 109, 142}, {46, 110, 142}, {46, 111, 142}, {45, 112, 142}, {45, 113, 142}, {44, 113, 142},
    {44, 114, 142}, {44, 115, 142}, {43, 116, 142}, {43, 117, 142}, {42, 118, 142}, {42, 119, 142},
    {42, 120, 142}, {41, 121, 142}, {41, 122, 142}, {41, 123, 142}, {40, 124, 142}, {40, 125, 142},
    {39, 126, 142}, {39, 127, 142}, {39, 128, 142}, {38, 129, 142}, {38, 130, 142}, {38, 130, 142},
    {37, 131, 142}, {37, 132, 142}, {37, 133, 142}, {36, 134, 142}, {36, 135, 142}, {35, 136, 142},
    {35, 137, 142}, {35, 138, 141}, {34, 139, 141}, {34, 140, 141}, {34, 141, 141}, {33, 142, 141},
    {33, 143, 141}, {33, 144, 141}, {33, 145, 140}, {32, 146, 140}, {32, 146, 140}, {32, 147, 140},
    {31, 148, 140}, {31, 149, 139}, {31, 150, 139}, {31, 151, 139}, {31, 152, 139}, {31, 153, 138},
    {31, 154, 138}, {30, 155, 138}, {30, 156, 137}, {30, 157, 137}, {31, 158, 137}, {31, 159, 136},
    {31, 160, 136}, {31, 161, 136}, {31, 161, 135}, {31, 162, 135}, {32, 163, 134}, {32, 164, 134},
    {33, 165, 133}, {33, 166, 133}, {34, 167, 133}, {34, 168, 132}, {35, 169, 131}, {36, 170, 131},
    {37, 171, 130}, {37, 172, 130}, {38, 173, 129}, {39, 173, 129}, {40, 174, 128}, {41, 175, 127},
    {42, 176, 127}, {44, 177, 126}, {45, 178, 125}, {46, 179, 124}, {47, 180, 124}, {49, 181, 123},
    {50, 182, 122}, {52, 182, 121}, {53, 183, 121}, {55, 184, 120}, {56, 185, 119}, {58, 186, 118},
    {59, 187, 117}, {61, 188, 116}, {63, 188, 115}, {64, 189, 114}, {66, 190, 113}, {68, 191, 112},
    {70, 192, 111}, {72, 193, 110}, {74, 193, 109}, {76, 194, 108}, {78, 195, 107}, {80, 196, 106},
    {82, 197, 105}, {84, 197, 104}, {86, 198, 103}, {88, 199, 101}, {90, 200, 100}, {92, 200, 99},
    {94, 201, 98},  {96, 202, 96},  {99, 203, 95},  {101, 203, 94}, {103, 204, 92}, {105, 205, 91},
    {108, 205, 90}, {110, 206, 88}, {112, 207, 87}, {115, 208, 86}, {117, 208, 84}, {119, 209, 83},
    {122, 209, 81}, {124, 210, 80}, {127, 211, 78}, {129, 211, 77}, {132, 212, 75}, {134, 213, 73},
    {137, 213, 72}, {139, 214, 70}, {142, 214, 69}, {144, 215, 67}, {147, 215, 65}, {149, 216, 64},
    {152, 216, 62}, {155, 217, 60}, {157, 217, 59}, {160, 218, 57}, {162, 218, 55}, {165, 219, 54},
    {168, 219, 52}, {170, 220, 50}, {173, 220, 48}, {176, 221, 47}, {178, 221, 45}, {181, 222, 43},
    {184, 222, 41}, {186, 222, 40}, {189, 223, 38}, {192, 223, 37}, {194, 223, 35}, {197, 224, 33},
    {200, 224, 32}, {202, 225, 31}, {205, 225, 29}, {208, 225, 28}, {210, 226, 27}, {213, 226, 26},
    {216, 226, 25}, {218, 227, 25}, {221, 227, 24}, {223, 227, 24}, {226, 228, 24}, {229, 228, 25},
    {231, 228, 25}, {234, 229, 26}, {236, 229, 27}, {239, 229, 28}, {241, 229, 29}, {244, 230, 30},
    {246, 230, 32}, {248, 230, 33}, {251, 231, 35}, {253, 231, 37},
};

/* The features as a frames x mels image: the range [min, max] spread over viridis, mel 0 (the
 * lowest frequency) in the bottom row, as spectrograms are drawn. */
static struct img *render_features(const struct audio_spec *s, struct eng_error *err)
{
    size_t n = (size_t)s->frames * (size_t)s->bins;
    float lo = n ? s->data[0] : 0, hi = lo;
    for (size_t i = 1; i < n; i++) {
        lo = fminf(lo, s->data[i]);
        hi = fmaxf(hi, s->data[i]);
    }
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    struct img *im = img_new(s->frames, s->bins, 3, err);
    for (int y = 0; im && y < s->bins; y++) {
        uint8_t *row = img_row(im, y);
        int bin = s->bins - 1 - y;
        for (int t = 0; t < s->frames; t++) {
            int level = (int)lrintf((s->data[(size_t)t * s->bins + bin] - lo) * scale);
            memcpy(row + 3 * t, viridis[level], 3);
        }
    }
    return im;
}

int input_audio_encode(const struct input_audio_sample *s, enum input_audio_format fmt, void **out,
                       size_t *size, struct eng_error *err)
{
    *out = NULL;
    if (fmt == INPUT_AUDIO_WAV || fmt == INPUT_AUDIO_FLAC)
        return audio_encode(s->wave, fmt == INPUT_AUDIO_WAV ? AUDIO_WAV_PCM16 : AUDIO_FLAC, out,
                            size, err);
    if (!s->features) return eng_fail(err, ENG_INTERNAL, "the features were not computed");
    if (fmt == INPUT_AUDIO_FEATURES)
        return input_npy_f32(s->features->data, s->features->frames, s->features->bins, out, size,
                             err);
    struct img *im = render_features(s->features, err);
    int rc = im ? img_encode(im, IMG_PNG, 90, out, size, err) : -1;
    img_free(im);
    return rc;
}

/* ---- Detection targets ---------------------------------------------------------------------- */

/* The pixels all masks of one image may hold at once, in multiples of max_pixels. */
#define TARGET_MASK_BUDGET 16

/* What one input's targets arrive as, before they are checked against its image. */
struct target_parts {
    const json_t *boxes, *labels, *keypoints; /* borrowed from the document; NULL when absent */
    enum box_format format;
    struct img **masks;
    size_t mask_count;
};

static void target_parts_free(struct target_parts *p)
{
    for (size_t i = 0; p->masks && i < p->mask_count; i++)
        img_free(p->masks[i]);
    free(p->masks);
}

/* Whether part `name` holds a mask of input i: mask_<i>, or mask for input 0. */
static int is_mask_of(const char *name, int i)
{
    char want[24];
    snprintf(want, sizeof want, "mask_%d", i);
    return strcmp(name, want) == 0 || (i == 0 && strcmp(name, "mask") == 0);
}

static int request_has_masks(const struct request *req)
{
    for (size_t i = 0; i < req->part_count; i++)
        if (strncmp(req->parts[i].name, "mask", 4) == 0) return 1;
    return 0;
}

/* The document's keys and types; 422 naming the input. */
static int read_target_doc(struct response *resp, const json_t *doc, int i, struct target_parts *p)
{
    const char *key;
    json_t *value;
    p->format = BOX_PASCAL_VOC;
    if (!doc) return 0;
    if (!json_is_object(doc))
        return response_error(resp, 422, "targets: image %d: must be an object", i), -1;
    json_object_foreach((json_t *)doc, key, value)
    {
        if (strcmp(key, "boxes") && strcmp(key, "box_format") && strcmp(key, "labels") &&
            strcmp(key, "keypoints")) {
            response_error(resp, 422,
                           "targets: image %d: unknown key %s; use boxes, box_format, labels "
                           "and keypoints",
                           i, key);
            return -1;
        }
    }
    p->boxes = json_object_get(doc, "boxes");
    p->labels = json_object_get(doc, "labels");
    p->keypoints = json_object_get(doc, "keypoints");
    const json_t *format = json_object_get(doc, "box_format");
    if ((p->boxes && !json_is_array(p->boxes)) || (p->labels && !json_is_array(p->labels)) ||
        (p->keypoints && !json_is_array(p->keypoints)) ||
        (format && targets_box_format_from_name(json_string_value(format), &p->format) != 0)) {
        response_error(resp, 422,
                       "targets: image %d: boxes, labels and keypoints must be arrays, box_format "
                       "coco, pascal_voc, yolo or albumentations",
                       i);
        return -1;
    }
    return 0;
}

/* Decodes a mask part as an 8-bit greyscale image within the image limits, 0 / 255. */
static struct img *decode_target_mask(const struct request *req, const struct request_part *part,
                                      struct eng_error *err)
{
    const struct config *cfg = req->app->cfg;
    const struct img_limits limits = {(uint64_t)cfg->max_pixels, cfg->max_dimension};
    struct img *mask = img_decode(part->data, part->size, &limits, NULL, err);
    if (mask && mask->channels != 1) {
        eng_fail(err, ENG_INVALID, "has %d channels; send 8-bit greyscale PNG", mask->channels);
        img_free(mask);
        return NULL;
    }
    for (int y = 0; mask && y < mask->height; y++)
        for (int x = 0; x < mask->width; x++)
            img_row(mask, y)[x] = img_row(mask, y)[x] ? 255 : 0;
    return mask;
}

/* Input i's mask parts, decoded in order; 422 past max_targets. */
static int read_target_masks(const struct request *req, struct response *resp, int i, size_t max,
                             struct target_parts *p)
{
    size_t count = 0;
    for (size_t k = 0; k < req->part_count; k++)
        count += is_mask_of(req->parts[k].name, i);
    if (count > max)
        return response_error(resp, 422, "mask_%d: %zu masks; max_targets is %zu", i, count, max),
               -1;
    if (!(p->masks = calloc(count + 1, sizeof *p->masks)))
        return response_error(resp, 503, "out of memory"), -1;
    for (size_t k = 0; k < req->part_count; k++) {
        if (!is_mask_of(req->parts[k].name, i)) continue;
        struct eng_error err = {0};
        if (!(p->masks[p->mask_count] = decode_target_mask(req, &req->parts[k], &err))) {
            char message[sizeof err.message];
            memcpy(message, err.message, sizeof message);
            eng_fail(&err, err.code, "mask_%d[%zu]: %s", i, p->mask_count, message);
            response_engine_error(resp, &err);
            return -1;
        }
        p->mask_count++;
    }
    return 0;
}

/* A label map becomes one mask per label (as many as labels, else its largest value). */
static int split_target_label_map(struct response *resp, int i, size_t max, struct target_parts *p)
{
    if (p->mask_count == 0) return 0;
    if (p->mask_count > 1)
        return response_error(resp, 422, "mask_%d: mask_type=labels takes one label map", i), -1;
    const struct img *map = p->masks[0];
    size_t count = p->labels ? json_array_size(p->labels) : 0;
    for (int y = 0; !p->labels && y < map->height; y++)
        for (int x = 0; x < map->width; x++)
            count = img_row(map, y)[x] > count ? img_row(map, y)[x] : count;
    if (count > max)
        return response_error(resp, 422, "mask_%d: %zu labels; max_targets is %zu", i, count, max),
               -1;
    struct eng_error err = {0};
    struct img **masks = calloc(count + 1, sizeof *masks);
    if (!masks) return response_error(resp, 503, "out of memory"), -1;
    if (targets_masks_from_label_map(map, (int)count, masks, &err) != 0) {
        free(masks);
        return fail_named(resp, "labels of image", i, &err);
    }
    target_parts_free(p);
    p->masks = masks;
    p->mask_count = count;
    return 0;
}

/* The counts agree and fit max_targets and the masks' memory budget. */
static int check_target_counts(const struct request *req, struct response *resp,
                               const struct img *image, int i, const struct target_parts *p,
                               size_t *objects)
{
    const size_t max = (size_t)req->app->cfg->max_targets;
    const size_t boxes = p->boxes ? json_array_size(p->boxes) : p->mask_count;
    const size_t labels = p->labels ? json_array_size(p->labels) : boxes;
    const size_t keypoints = p->keypoints ? json_array_size(p->keypoints) : 0;
    if (boxes > max || keypoints > max)
        return response_error(resp, 422,
                              "targets: image %d: %zu objects and %zu keypoints; max_targets is "
                              "%zu",
                              i, boxes, keypoints, max),
               -1;
    if ((p->mask_count && p->boxes && p->mask_count != boxes) || labels != boxes)
        return response_error(resp, 422,
                              "targets: image %d: %zu boxes, %zu masks and %zu labels disagree", i,
                              boxes, p->mask_count, labels),
               -1;
    const uint64_t area = (uint64_t)image->width * (uint64_t)image->height;
    if (p->mask_count * area > TARGET_MASK_BUDGET * (uint64_t)req->app->cfg->max_pixels)
        return response_error(resp, 413, "mask_%d: %zu masks of %dx%d are past %d x max_pixels", i,
                              p->mask_count, image->width, image->height, TARGET_MASK_BUDGET),
               -1;
    *objects = boxes;
    return 0;
}

/* A JSON array's first n numbers into v (NaN for what is not a number: the engine names it); its
 * length, 0 for what is no array. */
static size_t json_numbers(const json_t *array, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(array, i);
        v[i] = json_is_number(x) ? json_number_value(x) : NAN;
    }
    return json_is_array(array) ? json_array_size(array) : 0;
}

/* Builds the set from the parts (masks taken over); ENG_* errors name the index. */
static struct targets *build_target_set(const struct img *image, struct target_parts *p,
                                        size_t objects, struct eng_error *err)
{
    const size_t keypoints = p->keypoints ? json_array_size(p->keypoints) : 0;
    struct targets *t = targets_new(image->width, image->height, objects, keypoints, err);
    for (size_t k = 0; t && k < objects; k++) {
        struct img *mask = p->mask_count ? p->masks[k] : NULL;
        double v[4];
        if (mask) p->masks[k] = NULL;
        const int rc = p->boxes ? targets_add(t, v, json_numbers(json_array_get(p->boxes, k), v, 4),
                                              p->format, (int)k, mask, (int)k, err)
                                : targets_add_mask(t, mask, (int)k, (int)k, err);
        if (rc != 0) goto fail;
    }
    for (size_t k = 0; t && k < keypoints; k++) {
        double xy[2];
        if (json_numbers(json_array_get(p->keypoints, k), xy, 2) != 2) {
            eng_fail(err, ENG_INVALID, "keypoints[%zu]: must be [x, y] in pixels", k);
            goto fail;
        }
        if (targets_add_keypoint(t, xy[0], xy[1], (int)k, (int)k, err) != 0) goto fail;
    }
    return t;
fail:
    targets_free(t);
    return NULL;
}

static int read_one_target(struct request *req, struct response *resp, const struct img *image,
                           const json_t *doc, int i, int label_maps, struct input_targets *out)
{
    const size_t max = (size_t)req->app->cfg->max_targets;
    struct target_parts p = {0};
    size_t objects = 0;
    int rc = -1;
    if (read_target_doc(resp, doc, i, &p) == 0 && read_target_masks(req, resp, i, max, &p) == 0 &&
        (!label_maps || split_target_label_map(resp, i, max, &p) == 0) &&
        check_target_counts(req, resp, image, i, &p, &objects) == 0) {
        struct eng_error err = {0};
        out->format = p.format;
        out->labels = p.labels ? json_incref((json_t *)p.labels) : NULL;
        out->targets = build_target_set(image, &p, objects, &err);
        rc = out->targets ? 0 : fail_named(resp, "targets: image", i, &err);
    }
    target_parts_free(&p);
    return rc;
}

int input_targets_read(struct request *req, struct response *resp, const struct input_image *images,
                       int count, struct input_targets *out)
{
    const char *text = input_param(req, "targets"), *type = input_param(req, "mask_type");
    if (!text && !request_has_masks(req)) return 0;
    const int label_maps = type && strcmp(type, "labels") == 0;
    if (type && !label_maps && strcmp(type, "instances") != 0)
        return response_error(resp, 422, "mask_type: must be instances or labels"), -1;
    json_error_t jerr;
    json_t *doc = text ? json_loads(text, 0, &jerr) : NULL;
    if (text && !doc) return response_error(resp, 422, "targets: not JSON (%s)", jerr.text), -1;
    int rc = 0;
    if (json_is_array(doc) && json_array_size(doc) != (size_t)count) {
        response_error(resp, 422, "targets: %zu documents for %d images", json_array_size(doc),
                       count);
        rc = -1;
    }
    for (int i = 0; i < count && rc == 0; i++) {
        const json_t *mine = json_is_array(doc) ? json_array_get(doc, (size_t)i) : doc;
        if (!json_is_array(doc) && i > 0) mine = NULL;
        rc = read_one_target(req, resp, images[i].image, mine, i, label_maps, &out[i]);
    }
    json_decref(doc);
    return rc;
}

void input_targets_free(struct input_targets *t, int count)
{
    for (int i = 0; t && i < count; i++) {
        json_decref(t[i].labels);
        targets_free(t[i].targets);
    }
}

int input_targets_filter(const struct request *req, struct response *resp,
                         struct targets_filter *filter)
{
    static const char *const names[] = {"min_area", "min_visibility", "min_width", "min_height"};
    double *const fields[] = {&filter->min_area, &filter->min_visibility, &filter->min_width,
                              &filter->min_height};
    *filter = (struct targets_filter){0};
    for (int i = 0; i < 4; i++) {
        const char *text = input_param(req, names[i]);
        const double max = i == 1 ? 1 : 1e12;
        if (text && (parse_real(text, fields[i]) != 0 || !(*fields[i] >= 0 && *fields[i] <= max)))
            return response_error(resp, 422, "%s: must be a number in [0, %g]", names[i], max), -1;
    }
    return 0;
}

/* A mask as base64 PNG, or NULL with err. */
static json_t *mask_json(const struct img *mask, struct eng_error *err)
{
    void *png = NULL;
    size_t size = 0;
    if (img_encode(mask, IMG_PNG, 90, &png, &size, err) != 0) return NULL;
    char *text = input_base64(png, size);
    free(png);
    json_t *s = text ? json_string(text) : NULL;
    free(text);
    if (!s) eng_fail(err, ENG_NO_MEMORY, "out of memory for a mask");
    return s;
}

static json_t *object_json(const struct input_targets *in, const struct targets *t, size_t i,
                           struct eng_error *err)
{
    double v[4];
    targets_box_to(&t->boxes[i], in->format, t->width, t->height, v);
    json_t *o =
        json_pack("{s:i, s:[f, f, f, f]}", "index", t->ids[i], "box", v[0], v[1], v[2], v[3]);
    if (o && in->labels) json_object_set(o, "label", json_array_get(in->labels, t->ids[i]));
    if (o && t->masks) {
        json_t *mask = mask_json(t->masks[i], err);
        if (!mask) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "mask", mask);
    }
    return o;
}

json_t *input_targets_json(const struct input_targets *in, const struct targets *t,
                           struct eng_error *err)
{
    json_t *objects = json_array(), *dropped = json_array(), *keypoints = json_array();
    json_t *doc =
        json_pack("{s:s, s:o, s:o, s:o}", "box_format", targets_box_format_name(in->format),
                  "objects", objects, "dropped", dropped, "keypoints", keypoints);
    if (!doc) return eng_fail(err, ENG_NO_MEMORY, "out of memory for targets"), NULL;
    for (size_t i = 0; i < t->count; i++) {
        json_t *o = object_json(in, t, i, err);
        if (!o) {
            json_decref(doc);
            return NULL;
        }
        json_array_append_new(objects, o);
    }
    for (size_t i = 0; i < t->dropped_count; i++)
        json_array_append_new(dropped, json_pack("{s:i, s:s}", "index", t->dropped[i].id, "reason",
                                                 targets_drop_reason_name(t->dropped[i].reason)));
    for (size_t i = 0; i < t->keypoint_count; i++) {
        const struct target_keypoint *k = &t->keypoints[i];
        json_array_append_new(keypoints,
                              json_pack("{s:i, s:f, s:f, s:b}", "index", t->keypoint_ids[i], "x",
                                        k->x, "y", k->y, "visible", k->visible));
    }
    return doc;
}
