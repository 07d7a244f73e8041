/* POST /v1/augment/audio: decode each clip (and the noise clips and impulse responses the policy
 * may use), sample the policy per (clip, sample), run its waveform ops, the log-mel front end and
 * its spectrogram ops, and encode what the client asked for. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "handlers.h"
#include "input.h"
#include "json_text.h"
#include "policy/audio_pipeline.h"
#include "policy/policy.h"
#include "request.h"
#include "response.h"

/* What output=json carries per result: the waveform (when no spectrogram op could change what
 * it means), the features and their picture. */
static const enum audio_output json_formats[] = {AUDIO_OUTPUT_WAV, AUDIO_OUTPUT_FEATURES,
                                                 AUDIO_OUTPUT_PNG};
#define JSON_FORMATS (sizeof json_formats / sizeof json_formats[0])

/* Audio held at once is counted in samples at the output rate, up to max_audio_seconds of it at
 * 48 kHz: a higher sample_rate (up to 384 kHz) takes fewer seconds. */
#define MAX_SAMPLES_PER_SECOND 48000

struct options {
    struct policy *policy;
    unsigned long long seed, samples;
    int json; /* output=json; else format */
    enum audio_output format;
    struct audio_mel *mel;
};

/* The mel front end from the request's fields, each optional. */
static int read_mel(struct request *req, struct response *resp, struct options *o)
{
    struct audio_mel_config cfg = audio_mel_settings_start();
    struct eng_error err = {0};
    for (const char *const *name = audio_mel_settings; *name; name++) {
        const char *text = input_param(req, *name);
        if (text && audio_mel_setting_parse(&cfg, *name, text, &err) != 0) {
            response_error(resp, 422, "%s", err.message);
            return -1;
        }
    }
    audio_mel_settings_resolve(&cfg);
    o->mel = audio_mel_new(&cfg, &err);
    if (!o->mel) {
        response_engine_error(resp, &err);
        return -1;
    }
    return 0;
}

static int read_output(struct request *req, struct response *resp, struct options *o)
{
    const char *output = input_param(req, "output");
    o->json = !output || strcmp(output, "json") == 0;
    if (!o->json && audio_output_from_name(output, &o->format) != 0) {
        response_error(resp, 422, "output: must be wav, flac, features, png or json");
        return -1;
    }
    unsigned domain = policy_domain(o->policy);
    if (domain & POLICY_IMAGE) {
        response_error_code(resp, 422, "invalid_policy",
                            "policy: it holds image ops; /v1/augment/audio runs audio ops "
                            "(GET /v1/ops?domain=audio)");
        return -1;
    }
    if (!o->json && audio_output_is_wave(o->format) && (domain & POLICY_SPECTROGRAM)) {
        response_error(resp, 422,
                       "output %s: the policy has spectrogram ops, which change the log-mel "
                       "features and not the waveform; ask for output=features, png or json",
                       output);
        return -1;
    }
    return 0;
}

static int read_options(struct request *req, struct response *resp, struct options *o)
{
    if (input_policy(req, resp, &o->policy) != 0 || input_seed(req, resp, &o->seed) != 0 ||
        input_samples(req, resp, &o->samples) != 0 || read_output(req, resp, o) != 0)
        return -1;
    return read_mel(req, resp, o);
}

/* The clips of a request: the inputs, the noise clips and the impulse responses. */
struct clips {
    struct input_clip *inputs, *noises, *rirs;
    int input_count, noise_count, rir_count;
    const struct audio **bank_clips; /* noises then rirs, as the bank points into them */
    struct audio_bank bank;
};

static int collect_part_clips(struct request *req, struct response *resp, const char *name,
                              struct input_clip *clips, int max, int *count)
{
    struct input_bytes *bytes = calloc((size_t)max, sizeof *bytes);
    if (!bytes) {
        response_no_memory(resp, NULL);
        return -1;
    }
    int rc = strcmp(name, "audio") == 0 ? input_collect(req, resp, name, bytes, max, count)
                                        : input_parts(req, resp, name, bytes, max, count);
    for (int i = 0; rc == 0 && i < *count; i++)
        clips[i].bytes = bytes[i];
    free(bytes);
    return rc;
}

static int read_clips(struct request *req, struct response *resp, const struct options *o,
                      struct clips *c)
{
    const struct config *cfg = req->app->cfg;
    size_t max = (size_t)cfg->max_inputs;
    c->inputs = calloc(max, sizeof *c->inputs);
    c->noises = calloc(max, sizeof *c->noises);
    c->rirs = calloc(max, sizeof *c->rirs);
    c->bank_clips = calloc(2 * max, sizeof *c->bank_clips);
    if (!c->inputs || !c->noises || !c->rirs || !c->bank_clips) {
        response_no_memory(resp, NULL);
        return -1;
    }
    struct audio_decode_options opt = {audio_mel_config(o->mel)->sample_rate,
                                       cfg->max_audio_seconds,
                                       (int64_t)cfg->max_audio_seconds * MAX_SAMPLES_PER_SECOND};
    if (collect_part_clips(req, resp, "audio", c->inputs, cfg->max_inputs, &c->input_count) ||
        collect_part_clips(req, resp, "noise", c->noises, cfg->max_inputs, &c->noise_count) ||
        collect_part_clips(req, resp, "rir", c->rirs, cfg->max_inputs, &c->rir_count) ||
        input_decode_clips(req, resp, "audio", c->inputs, c->input_count, &opt) ||
        input_decode_clips(req, resp, "noise", c->noises, c->noise_count, &opt) ||
        input_decode_clips(req, resp, "rir", c->rirs, c->rir_count, &opt))
        return -1;
    for (int i = 0; i < c->noise_count; i++)
        c->bank_clips[i] = c->noises[i].clip;
    for (int i = 0; i < c->rir_count; i++)
        c->bank_clips[c->noise_count + i] = c->rirs[i].clip;
    c->bank = (struct audio_bank){c->bank_clips, (size_t)c->noise_count,
                                  c->bank_clips + c->noise_count, (size_t)c->rir_count};
    return 0;
}

static void free_clips(struct clips *c)
{
    if (c->inputs) input_free_clips(c->inputs, c->input_count);
    if (c->noises) input_free_clips(c->noises, c->noise_count);
    if (c->rirs) input_free_clips(c->rirs, c->rir_count);
    free(c->inputs);
    free(c->noises);
    free(c->rirs);
    free(c->bank_clips);
}

/* One (clip, sample, view), produced on any thread. encoded[k] is json_formats[k] for JSON
 * output, else encoded[0] is the asked format. */
struct sample_result {
    struct trace *sampled; /* before it runs */
    void *encoded[JSON_FORMATS];
    size_t encoded_size[JSON_FORMATS];
    json_t *trace;
    size_t length;
    int frames, mels;
    int failed;
    struct eng_error err;
};

struct batch {
    const struct options *o;
    const struct clips *clips;
    int views;
    struct sample_result *results; /* [(input * samples + sample) * views + view] */
};

/* Encodes s into r as the options ask. */
static int encode_result(const struct options *o, const struct audio_pipeline_sample *s,
                         struct sample_result *r)
{
    if (!o->json)
        return audio_pipeline_encode(s, o->format, &r->encoded[0], &r->encoded_size[0], &r->err);
    int wave_ok = !(policy_domain(o->policy) & POLICY_SPECTROGRAM);
    for (size_t k = 0; k < JSON_FORMATS; k++) {
        if (audio_output_is_wave(json_formats[k]) && !wave_ok) continue;
        if (audio_pipeline_encode(s, json_formats[k], &r->encoded[k], &r->encoded_size[k], &r->err))
            return -1;
    }
    return 0;
}

static bool wants_features(const struct options *o)
{
    return o->json || !audio_output_is_wave(o->format);
}

static const char response_reduce[] = "ask for fewer clips or samples, one output instead of "
                                      "json, fewer mels or a longer hop_length";

/* The fewest bytes a sample's outputs can take in the response, known before it runs: its .npy
 * features (4 bytes a value) and its WAV (2 bytes a sample), base64 in JSON; PNG and FLAC
 * compress, so they count nothing here. */
static double least_output_bytes(const struct options *o, const struct audio_pipeline_cost *c)
{
    double bytes = 0;
    if (o->json || o->format == AUDIO_OUTPUT_FEATURES) bytes += 4 * c->values;
    if ((o->json && !(policy_domain(o->policy) & POLICY_SPECTROGRAM)) ||
        (!o->json && o->format == AUDIO_OUTPUT_WAV))
        bytes += 2 * (double)c->length;
    return o->json ? bytes * 4 / 3 : bytes;
}

/* Samples every job's trace before any sample is touched, and refuses the request when one of
 * them would make features past max_pixels values or all of them together ask for more than
 * max_work. */
static int sample_traces(struct request *req, struct response *resp, struct batch *b, size_t jobs)
{
    const struct options *o = b->o;
    const struct audio_pipeline pipeline = {o->policy, o->mel, &b->clips->bank, o->seed};
    const long long max_values = (long long)req->app->cfg->max_pixels;
    double work = 0, bytes = 0;
    for (size_t j = 0; j < jobs; j++) {
        const struct input_job job = input_job_at(j, o->samples, b->views);
        const struct audio *clip = b->clips->inputs[job.input].clip;
        struct sample_result *r = &b->results[j];
        r->sampled = audio_pipeline_sample_trace(&pipeline, clip->length, job.input, job.sample,
                                                 job.view, &r->err);
        if (!r->sampled) return response_engine_error(resp, &r->err), -1;
        struct audio_pipeline_cost c =
            audio_pipeline_cost(&pipeline, r->sampled, clip->length, wants_features(o));
        if (c.values > (double)max_values) {
            response_error(resp, 413,
                           "audio %u: its features would be %d frames x %d mels (%.0f values); "
                           "max_pixels is %lld: raise hop_length, lower n_mels or send a "
                           "shorter clip",
                           (unsigned)job.input, c.frames, audio_mel_config(o->mel)->n_mels,
                           c.values, max_values);
            return -1;
        }
        work += c.work;
        bytes += least_output_bytes(o, &c);
    }
    if (input_check_work(req, resp, work,
                         "send fewer or shorter clips, ask for fewer samples, or use a policy "
                         "with fewer ops") != 0)
        return -1;
    return input_check_response(req, resp, bytes, response_reduce);
}

static void run_sample(void *ctx, size_t index)
{
    struct batch *b = ctx;
    const struct options *o = b->o;
    const struct input_job job = input_job_at(index, o->samples, b->views);
    const struct audio_pipeline pipeline = {o->policy, o->mel, &b->clips->bank, o->seed};
    struct sample_result *r = &b->results[index];
    struct audio_pipeline_sample s;
    struct trace *sampled = r->sampled;
    r->sampled = NULL; /* the run takes it over */
    if (audio_pipeline_run_trace(&pipeline, b->clips->inputs[job.input].clip, sampled, job.input,
                                 job.sample, wants_features(o), &s, &r->err) != 0) {
        r->failed = 1;
        return;
    }
    r->trace = trace_to_json(s.trace);
    r->length = s.wave->length;
    if (s.features) {
        r->frames = s.features->frames;
        r->mels = s.features->bins;
    }
    r->failed = encode_result(o, &s, r) != 0;
    audio_pipeline_sample_free(&s);
}

static const struct eng_error *sample_failure(void *ctx, size_t index)
{
    const struct sample_result *r = &((const struct batch *)ctx)->results[index];
    return r->failed ? &r->err : NULL;
}

/* The result's base64 fields: "content_type" and "data", or for JSON output one per format
 * ("wav" null when the policy has spectrogram ops). */
static int add_data(json_t *item, const struct options *o, const struct sample_result *r)
{
    size_t count = o->json ? JSON_FORMATS : 1;
    for (size_t k = 0; k < count; k++) {
        char *data = r->encoded[k] ? input_base64(r->encoded[k], r->encoded_size[k]) : NULL;
        if (r->encoded[k] && !data) return -1;
        const char *key = o->json ? audio_output_name(json_formats[k]) : "data";
        json_object_set_new(item, key, data ? json_string(data) : json_null());
        free(data);
    }
    if (!o->json)
        json_object_set_new(item, "content_type", json_string(audio_output_mime(o->format)));
    return 0;
}

static json_t *result_json(const struct batch *b, size_t j)
{
    const struct options *o = b->o;
    const struct sample_result *r = &b->results[j];
    const struct input_job job = input_job_at(j, o->samples, b->views);
    json_t *item = json_pack("{s:i, s:i, s:i, s:I}", "input", (int)job.input, "sample",
                             (int)job.sample, "sample_rate", audio_mel_config(o->mel)->sample_rate,
                             "length", (json_int_t)r->length);
    if (!item) return NULL;
    if (b->views > 1) json_object_set_new(item, "view", json_integer((json_int_t)job.view));
    if (r->frames) {
        json_object_set_new(item, "frames", json_integer(r->frames));
        json_object_set_new(item, "mels", json_integer(r->mels));
    }
    if (add_data(item, o, r) != 0) {
        json_decref(item);
        return NULL;
    }
    json_object_set(item, "trace", r->trace);
    return item;
}

/* One clip, one sample, one view and a single output format: the bytes themselves. */
static void respond_bytes(struct response *resp, const struct options *o, struct sample_result *r)
{
    char *trace_text = json_text(r->trace, JSON_COMPACT | JSON_ENSURE_ASCII);
    response_bytes(resp, 200, audio_output_mime(o->format), r->encoded[0], r->encoded_size[0]);
    r->encoded[0] = NULL;
    response_header(resp, "X-Augment-Seed", "%llu", o->seed);
    if (trace_text) response_header(resp, "X-Augment-Trace", "%s", trace_text);
    free(trace_text);
}

static void respond_json(struct response *resp, const struct batch *b, size_t jobs)
{
    json_t *results = json_array();
    for (size_t j = 0; j < jobs && results; j++) {
        json_t *item = result_json(b, j);
        if (!item || json_array_append_new(results, item) != 0) {
            json_decref(results);
            results = NULL;
        }
    }
    if (!results) {
        response_no_memory(resp, "while writing the response");
        return;
    }
    response_json(resp, 200,
                  json_pack("{s:I, s:s, s:o}", "seed", (json_int_t)b->o->seed, "output",
                            b->o->json ? "json" : audio_output_name(b->o->format), "results",
                            results));
}

/* The response's size from the encoded outputs (base64 in JSON), before it is built. */
static int check_response(const struct request *req, struct response *resp, const struct batch *b,
                          size_t jobs)
{
    double bytes = 0;
    for (size_t j = 0; j < jobs; j++)
        for (size_t k = 0; k < JSON_FORMATS; k++)
            bytes += 4.0 * ((double)b->results[j].encoded_size[k] + 2) / 3 + 64;
    return input_check_response(req, resp, bytes, response_reduce);
}

/* The augmented audio a request asks for (every clip's seconds, times samples and views) is
 * capped at max_audio_seconds like one clip, so a request of many long clips and many samples
 * cannot make the server hold hours of output; and, as the decoder caps one clip, at
 * max_audio_seconds x 48 kHz samples at the output rate, so a high sample_rate cannot either.
 * 413 past it. */
static int check_total_seconds(const struct request *req, struct response *resp,
                               const struct clips *c, const struct options *o, int views)
{
    double seconds = 0;
    for (int i = 0; i < c->input_count; i++)
        seconds += (double)c->inputs[i].clip->length / c->inputs[i].clip->rate;
    double total = seconds * (double)o->samples * views;
    double max = req->app->cfg->max_audio_seconds;
    const int rate = audio_mel_config(o->mel)->sample_rate;
    if (total > max) {
        response_error(resp, 413,
                       "the request asks for %.1f s of augmented audio (%.1f s of clips x %llu "
                       "samples x %d views); max_audio_seconds is %g",
                       total, seconds, o->samples, views, max);
        return -1;
    }
    if (total * rate > max * MAX_SAMPLES_PER_SECOND) {
        response_error(resp, 413,
                       "the request asks for %.0f samples of augmented audio at sample_rate %d; "
                       "at most max_audio_seconds x %d (%.0f): lower sample_rate, or ask for "
                       "fewer clips or samples",
                       total * rate, rate, MAX_SAMPLES_PER_SECOND, max * MAX_SAMPLES_PER_SECOND);
        return -1;
    }
    return 0;
}

void handle_augment_audio(struct request *req, struct response *resp)
{
    struct options o = {0};
    struct clips c = {0};
    struct batch b = {.o = &o, .clips = &c};
    size_t jobs = 0;
    if (read_options(req, resp, &o) != 0 || read_clips(req, resp, &o, &c) != 0) goto done;
    b.views = policy_view_count(o.policy);
    if (check_total_seconds(req, resp, &c, &o, b.views) != 0) goto done;
    jobs = (size_t)c.input_count * o.samples * (size_t)b.views;
    b.results = calloc(jobs, sizeof *b.results);
    if (!b.results) {
        response_no_memory(resp, NULL);
        goto done;
    }
    if (sample_traces(req, resp, &b, jobs) != 0 ||
        input_run_jobs(req, resp, jobs, run_sample, sample_failure, &b) != 0 ||
        check_response(req, resp, &b, jobs) != 0)
        goto done;
    if (jobs == 1 && !o.json)
        respond_bytes(resp, &o, &b.results[0]);
    else
        respond_json(resp, &b, jobs);
done:
    for (size_t j = 0; b.results && j < jobs; j++) {
        trace_free(b.results[j].sampled);
        for (size_t k = 0; k < JSON_FORMATS; k++)
            free(b.results[j].encoded[k]);
        json_decref(b.results[j].trace);
    }
    free(b.results);
    free_clips(&c);
    audio_mel_free(o.mel);
    policy_free(o.policy);
}
