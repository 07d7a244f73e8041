/* Unit tests of engine/audio/audio.c and engine/audio/features.c. argv[1]: the parity fixtures
 * folder; the audio files are under its audio/ (written by tests/parity/gen_audio.py). Mel energies
 * are held to torchaudio's MelSpectrogram, decoding to sox's decoders through torchaudio.load;
 * resampling, the filterbank and the limits to properties and hand-built files. No leak is
 * suppressed: under ASan, LeakSanitizer checks every malformed and truncated decode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sndfile.h>

#include "audio/audio.h"
#include "audio/output.h"
#include "testutil.h"

static char audio_dir[4096];

/* Mel energies: |got - want| <= MEL_RTOL * max(|want|, floor), the floor being MEL_FLOOR times
 * the clip's largest energy (its square root for power 1). FFT rounding is absolute, about float
 * epsilon times the frame's energy, so bins 60 dB below the loudest carry a large relative error
 * in any float32 implementation (torchaudio's own float32 result is measured the same way by
 * gen_audio.py and lands near 5e-5). */
#define MEL_RTOL  1e-4
#define MEL_FLOOR 1e-6

static struct blob load(const char *name)
{
    return tu_read_file(audio_dir, name);
}

static float *load_f32(const char *name, size_t count)
{
    struct blob b = load(name);
    assert_int_equal(b.size, count * sizeof(float));
    return (float *)b.data; /* the fixtures are little-endian, as is every machine we run on */
}

static json_t *manifest(void)
{
    return tu_load_json(audio_dir, "manifest.json");
}

static struct audio *decode_ok(const struct blob *b, int rate, struct audio_info *info)
{
    struct eng_error err = {0};
    struct audio_decode_options opt = {.rate = rate};
    struct audio *a = audio_decode(b->data, b->size, &opt, info, &err);
    if (!a) fail_msg("decode failed (%d): %s", err.code, err.message);
    return a;
}

static enum eng_code decode_code(const void *data, size_t size, double max_seconds,
                                 struct eng_error *err)
{
    *err = (struct eng_error){0};
    struct audio_decode_options opt = {.max_seconds = max_seconds};
    struct audio *a = audio_decode(data, size, &opt, NULL, err);
    audio_free(a);
    return a ? ENG_OK : err->code;
}

static struct audio *sine(int rate, double seconds, double hz, double amplitude)
{
    size_t n = (size_t)llround(rate * seconds);
    struct audio *a = audio_new(n, rate, NULL);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a->samples[i] = (float)(amplitude * sin(2 * M_PI * hz * (double)i / rate));
    return a;
}

/* Upward zero crossings per second over the middle half of a (edges hold filter transients);
 * over half a second, within 1 % of a tone's frequency. */
static double crossing_rate(const struct audio *a)
{
    size_t from = a->length / 4, to = 3 * a->length / 4, count = 0;
    for (size_t i = from + 1; i < to; i++)
        count += a->samples[i - 1] < 0 && a->samples[i] >= 0;
    return (double)count * a->rate / (double)(to - from);
}

static double rms(const struct audio *a, size_t from, size_t to)
{
    double sum = 0;
    for (size_t i = from; i < to; i++)
        sum += (double)a->samples[i] * a->samples[i];
    return sqrt(sum / (double)(to - from));
}

/* A canonical 44-byte WAV header over data: format 1 (PCM) or 3 (float). The header is
 * written by hand so hostile values (rate, channels) reach the decoder as they are. */
static struct blob make_wav(int format, int channels, int rate, int bits, const void *data,
                            size_t bytes)
{
    struct blob b = {malloc(44 + bytes), 44 + bytes};
    assert_non_null(b.data);
    unsigned char *p = b.data;
    uint32_t block = (uint32_t)(channels * bits / 8);
    uint32_t fields[] = {36 + (uint32_t)bytes, 16, (uint32_t)rate, (uint32_t)rate * block};
    memcpy(p, "RIFF", 4);
    memcpy(p + 4, &fields[0], 4);
    memcpy(p + 8, "WAVEfmt ", 8);
    memcpy(p + 16, &fields[1], 4);
    uint16_t fmt = (uint16_t)format, ch = (uint16_t)channels, ba = (uint16_t)block,
             bps = (uint16_t)bits;
    memcpy(p + 20, &fmt, 2);
    memcpy(p + 22, &ch, 2);
    memcpy(p + 24, &fields[2], 4);
    memcpy(p + 28, &fields[3], 4);
    memcpy(p + 32, &ba, 2);
    memcpy(p + 34, &bps, 2);
    memcpy(p + 36, "data", 4);
    uint32_t size = (uint32_t)bytes;
    memcpy(p + 40, &size, 4);
    if (bytes) memcpy(p + 44, data, bytes);
    return b;
}

/* channels x frames of a 440 Hz sine at rate, encoded by libsndfile as format (Ogg Vorbis and
 * Opus, which audio_encode does not write). */
static struct blob make_sndfile(int format, int channels, int rate, size_t frames)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *snd = sf_open_fd(fileno(f), SFM_WRITE, &info, 0);
    if (!snd) fail_msg("libsndfile: %s", sf_strerror(NULL));
    float *x = malloc(frames * (size_t)channels * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < frames * (size_t)channels; i++)
        x[i] = (float)(0.5 * sin(2 * M_PI * 440 * (double)(i / (size_t)channels) / rate));
    assert_int_equal(sf_writef_float(snd, x, (sf_count_t)frames), frames);
    sf_close(snd);
    free(x);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 0);
    struct blob b = {malloc((size_t)size), (size_t)size};
    assert_non_null(b.data);
    rewind(f);
    assert_int_equal(fread(b.data, 1, b.size, f), b.size);
    fclose(f);
    return b;
}

static struct blob concat(struct blob a, struct blob b)
{
    struct blob c = {realloc(a.data, a.size + b.size), a.size + b.size};
    assert_non_null(c.data);
    memcpy(c.data + a.size, b.data, b.size);
    free(b.data);
    return c;
}

/* The bytes of the Ogg page at p: its header, segment table and body. */
static size_t ogg_page_size(const unsigned char *p)
{
    size_t size = 27 + (size_t)p[26];
    for (size_t i = 0; i < p[26]; i++)
        size += p[27 + i];
    return size;
}

/* b cut to its first n bytes. */
static struct blob head(struct blob b, size_t n)
{
    assert_true(n <= b.size);
    b.size = n;
    return b;
}

/* Ogg's CRC-32 as RFC 3533 defines it (polynomial 0x04c11db7, most significant bit first,
 * initial value 0, no final xor), a bit at a time: the engine's reads a table. */
static uint32_t ogg_crc(const unsigned char *p, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 24;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 0x80000000u ? crc << 1 ^ 0x04c11db7u : crc << 1;
    }
    return crc;
}

#define OGG_BOS 0x02 /* the header type of a stream's first page */

/* An Ogg page, written by hand from RFC 3533: version 0, header type type, granule position 0,
 * stream serial, one packet of size bytes (under 255), and a right CRC. */
static struct blob ogg_page(int type, uint32_t serial, const void *packet, size_t size)
{
    assert_true(size < 255);
    struct blob b = {calloc(1, 28 + size), 28 + size};
    assert_non_null(b.data);
    memcpy(b.data, "OggS", 4);
    b.data[5] = (unsigned char)type;
    for (int i = 0; i < 4; i++)
        b.data[14 + i] = (unsigned char)(serial >> 8 * i);
    b.data[26] = 1; /* one segment */
    b.data[27] = (unsigned char)size;
    memcpy(b.data + 28, packet, size);
    uint32_t crc = ogg_crc(b.data, b.size);
    for (int i = 0; i < 4; i++)
        b.data[22 + i] = (unsigned char)(crc >> 8 * i);
    return b;
}

/* ------------------------------------------------------------------------------------------ */
/* Mel features                                                                               */

static struct audio_mel_config config_from(const json_t *args)
{
    struct audio_mel_config c = audio_mel_defaults();
    c.log = false;
    c.n_fft = (int)json_integer_value(json_object_get(args, "n_fft"));
    const json_t *v;
    c.win_length = (v = json_object_get(args, "win_length")) ? (int)json_integer_value(v) : c.n_fft;
    c.hop_length = (int)json_integer_value(json_object_get(args, "hop_length"));
    c.n_mels = (int)json_integer_value(json_object_get(args, "n_mels"));
    if ((v = json_object_get(args, "power"))) c.power = (int)json_number_value(v);
    if ((v = json_object_get(args, "f_min"))) c.f_min = json_number_value(v);
    if ((v = json_object_get(args, "f_max"))) c.f_max = json_number_value(v);
    if ((v = json_object_get(args, "center"))) c.center = json_is_true(v);
    if ((v = json_object_get(args, "mel_scale")))
        c.mel_scale = strcmp(json_string_value(v), "slaney") ? AUDIO_MEL_HTK : AUDIO_MEL_SLANEY;
    if ((v = json_object_get(args, "norm")))
        c.norm =
            strcmp(json_string_value(v), "slaney") ? AUDIO_MEL_NORM_NONE : AUDIO_MEL_NORM_SLANEY;
    return c;
}

static struct audio_spec *mel_ok(const struct audio_mel_config *c, const struct audio *a)
{
    struct eng_error err = {0};
    struct audio_mel *m = audio_mel_new(c, &err);
    if (!m) fail_msg("audio_mel_new: %s", err.message);
    struct audio_spec *s = audio_mel_compute(m, a, &err);
    if (!s) fail_msg("audio_mel_compute: %s", err.message);
    audio_mel_free(m);
    return s;
}

/* The largest relative error of got against want, by the measure above. */
static double mel_error(const float *got, const float *want, size_t n, int power)
{
    double peak = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        peak = fmax(peak, fabs(want[i]));
    double floor_ = pow(MEL_FLOOR, power / 2.0) * peak;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor_));
    return worst;
}

static void test_mel_parity(void **state)
{
    json_t *m = manifest();
    struct blob b = load("speech.wav");
    struct audio *a = decode_ok(&b, 16000, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(m, "mel"), i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        struct audio_mel_config cfg = config_from(json_object_get(c, "args"));
        struct audio_spec *s = mel_ok(&cfg, a);
        assert_int_equal(s->frames, json_integer_value(json_object_get(c, "frames")));
        assert_int_equal(s->bins, json_integer_value(json_object_get(c, "n_mels")));
        size_t n = (size_t)s->frames * (size_t)s->bins;
        float *want = load_f32(json_string_value(json_object_get(c, "expected")), n);
        double e = mel_error(s->data, want, n, cfg.power);
        printf("mel %s: %d x %d, max relative error %.2e\n", name, s->frames, s->bins, e);
        if (e > MEL_RTOL) fail_msg("mel %s: relative error %.3g > %g", name, e, MEL_RTOL);
        free(want);
        audio_spec_free(s);
    }
    audio_free(a);
    free(b.data);
    json_decref(m);
}

/* With the log on, the output is log(energy + offset): against the reference energies, a
 * relative error r becomes an absolute error of about r. */
static void test_mel_log(void **state)
{
    struct blob b = load("speech.wav");
    struct audio *a = decode_ok(&b, 16000, NULL);
    struct audio_mel_config cfg = audio_mel_defaults();
    struct audio_spec *s = mel_ok(&cfg, a);
    size_t n = (size_t)s->frames * (size_t)s->bins;
    float *want = load_f32("defaults.f32", n);
    double peak = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        peak = fmax(peak, want[i]);
    for (size_t i = 0; i < n; i++) {
        double ref = log((double)want[i] + 1e-6);
        double bound = MEL_RTOL * fmax(want[i], MEL_FLOOR * peak) / (want[i] + 1e-6);
        double e = fabs(s->data[i] - ref);
        worst = fmax(worst, e / fmax(bound, 1e-6)); /* 1e-6: float's rounding of the log */
    }
    assert_true(worst <= 1.0);
    free(want);
    audio_spec_free(s);
    audio_free(a);
    free(b.data);
}

/* A sine at an FFT bin's frequency, windowed by a periodic Hann window of N samples, has an
 * exact spectrum: |X[k]| = A N / 4 at its bin, A N / 8 at the two neighbours, 0 elsewhere. The
 * triangular filters (HTK, no norm) sum to 1 at every frequency between the first and last
 * centre, so a frame's mel energies sum to the spectrum's: (A N / 4)^2 (1 + 2 / 4) for power 2
 * and A N / 4 (1 + 2 / 2) for power 1. The largest goes to the filter whose centre is nearest. */
static void test_mel_hand_computed(void **state)
{
    struct audio *a = sine(16000, 1.0, 1000.0, 0.5); /* bin 25 of 400 at 16 kHz */
    for (int power = 1; power <= 2; power++) {
        struct audio_mel_config cfg = audio_mel_defaults();
        cfg.log = false;
        cfg.power = power;
        struct audio_spec *s = mel_ok(&cfg, a);
        double peak = 0.5 * 400 / 4;
        double want = power == 2 ? peak * peak * 1.5 : peak * 2;
        const float *row = s->data + (size_t)(s->frames / 2) * (size_t)s->bins;
        double sum = 0;
        int best = 0;
        for (int j = 0; j < s->bins; j++) {
            sum += row[j];
            if (row[j] > row[best]) best = j;
        }
        assert_true(fabs(sum - want) <= 1e-4 * want);
        /* HTK centres: mel points evenly spaced from 0 to mel(8000); 1000 Hz is 1000 mel. */
        double top = 2595.0 * log10(1.0 + 8000.0 / 700.0), nearest = 1e9;
        int expect = -1;
        for (int j = 0; j < s->bins; j++) {
            double d = fabs(top * (j + 1) / (s->bins + 1) - 1000.0);
            if (d < nearest) nearest = d, expect = j;
        }
        assert_int_equal(best, expect);
        audio_spec_free(s);
    }
    audio_free(a);
}

static void test_mel_frame_counts(void **state)
{
    struct audio_mel_config cfg = audio_mel_defaults();
    struct eng_error err = {0};
    struct audio_mel *centred = audio_mel_new(&cfg, &err);
    cfg.center = false;
    struct audio_mel *plain = audio_mel_new(&cfg, &err);
    assert_non_null(centred);
    assert_non_null(plain);
    static const struct {
        size_t length;
        int centred, plain; /* frames; 0: refused */
    } cases[] = {{1, 1, 0},   {7, 1, 0},   {159, 1, 0}, {160, 2, 0},     {399, 3, 0},
                 {400, 3, 1}, {559, 4, 1}, {560, 4, 2}, {16000, 101, 98}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct audio *a = audio_new(cases[i].length, 16000, NULL);
        for (size_t k = 0; k < a->length; k++)
            a->samples[k] = (float)sin((double)k);
        struct audio_spec *s = audio_mel_compute(centred, a, &err);
        assert_non_null(s);
        assert_int_equal(s->frames, cases[i].centred);
        for (size_t k = 0; k < (size_t)s->frames * (size_t)s->bins; k++)
            assert_true(isfinite(s->data[k]));
        audio_spec_free(s);
        s = audio_mel_compute(plain, a, &err);
        if (cases[i].plain == 0) {
            assert_null(s);
            assert_int_equal(err.code, ENG_INVALID);
            assert_non_null(strstr(err.message, "n_fft"));
        } else {
            assert_non_null(s);
            assert_int_equal(s->frames, cases[i].plain);
            audio_spec_free(s);
        }
        audio_free(a);
    }
    /* A clip at another rate, and an empty one, are refused. */
    struct audio *a = sine(22050, 0.1, 440, 0.5);
    assert_null(audio_mel_compute(centred, a, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "22050"));
    a->length = 0;
    a->rate = 16000;
    assert_null(audio_mel_compute(centred, a, &err));
    assert_int_equal(err.code, ENG_INVALID);
    audio_free(a);
    audio_mel_free(centred);
    audio_mel_free(plain);
}

static void test_mel_bad_config(void **state)
{
    struct {
        const char *field;
        struct audio_mel_config c;
    } bad[12];
    size_t n = 0;
    for (size_t i = 0; i < 12; i++)
        bad[i].c = audio_mel_defaults();
    bad[n].field = "sample_rate", bad[n++].c.sample_rate = 999;
    bad[n].field = "n_fft", bad[n++].c.n_fft = 8;
    bad[n].field = "win_length", bad[n++].c.win_length = 401;
    bad[n].field = "hop_length", bad[n++].c.hop_length = 0;
    bad[n].field = "n_mels", bad[n++].c.n_mels = 0;
    bad[n].field = "power", bad[n++].c.power = 3;
    bad[n].field = "f_max", bad[n++].c.f_max = 8001;
    bad[n].field = "f_min", bad[n++].c.f_min = 8000;
    bad[n].field = "f_min", bad[n++].c.f_min = -1;
    bad[n].field = "log_offset", bad[n++].c.log_offset = 0;
    bad[n].field = "mel_scale", bad[n++].c.mel_scale = (enum audio_mel_scale)7;
    bad[n].field = "norm", bad[n++].c.norm = (enum audio_mel_norm)7;
    for (size_t i = 0; i < n; i++) {
        struct eng_error err = {0};
        assert_null(audio_mel_new(&bad[i].c, &err));
        assert_int_equal(err.code, ENG_INVALID);
        if (!strstr(err.message, bad[i].field))
            fail_msg("case %zu: '%s' does not name %s", i, err.message, bad[i].field);
    }
    /* f_max 0 resolves to the Nyquist frequency. */
    struct audio_mel_config c = audio_mel_defaults();
    struct audio_mel *m = audio_mel_new(&c, NULL);
    assert_non_null(m);
    assert_true(audio_mel_config(m)->f_max == 8000.0);
    audio_mel_free(m);
}

struct shared {
    const struct audio_mel *mel;
    const struct audio *clip;
    struct audio_spec *out;
};

static void *compute_thread(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 20; i++) {
        audio_spec_free(s->out);
        s->out = audio_mel_compute(s->mel, s->clip, NULL);
    }
    return NULL;
}

static void *new_thread(void *arg)
{
    struct audio_mel_config c = audio_mel_defaults();
    c.n_fft = 256 + 2 * (int)(intptr_t)arg;
    c.win_length = c.n_fft;
    for (int i = 0; i < 20; i++)
        audio_mel_free(audio_mel_new(&c, NULL));
    return NULL;
}

/* Threads share one front end (identical results) and make their own at the same time (FFTW's
 * planner is not thread-safe; ASan/TSan would see it go wrong). */
static void test_mel_threads(void **state)
{
    struct audio *a = sine(16000, 0.5, 440, 0.5);
    struct audio_mel_config c = audio_mel_defaults();
    struct audio_mel *m = audio_mel_new(&c, NULL);
    struct audio_spec *want = audio_mel_compute(m, a, NULL);
    assert_non_null(want);
    pthread_t t[8];
    struct shared s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct shared){m, a, NULL};
        assert_int_equal(pthread_create(&t[i], NULL, compute_thread, &s[i]), 0);
        assert_int_equal(pthread_create(&t[4 + i], NULL, new_thread, (void *)(intptr_t)i), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_non_null(s[i].out);
        assert_memory_equal(s[i].out->data, want->data,
                            (size_t)want->frames * (size_t)want->bins * sizeof(float));
        audio_spec_free(s[i].out);
    }
    audio_spec_free(want);
    audio_mel_free(m);
    audio_free(a);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding                                                                                   */

static void test_decode_parity(void **state)
{
    json_t *m = manifest();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(m, "decode"), i, c)
    {
        const char *name = json_string_value(json_object_get(c, "input"));
        int rate = (int)json_integer_value(json_object_get(c, "rate"));
        size_t frames = (size_t)json_integer_value(json_object_get(c, "frames"));
        struct blob b = load(name);
        struct audio_info info;
        struct audio *a = decode_ok(&b, rate, &info); /* at its own rate: no resampling */
        assert_int_equal(a->rate, rate);
        assert_int_equal(a->length, frames);
        assert_int_equal(info.rate, rate);
        assert_int_equal(info.frames, frames);
        assert_int_equal(info.channels, json_integer_value(json_object_get(c, "channels")));
        assert_string_equal(info.format, strrchr(name, '.') + 1);
        float *want = load_f32(json_string_value(json_object_get(c, "expected")), frames);
        double worst = 0;
        for (size_t k = 0; k < frames; k++)
            worst = fmax(worst, fabs((double)a->samples[k] - want[k]));
        /* The mean of 2 or 3 floats, rounded in another order: a few units of float epsilon.
         * sox reads Vorbis through ov_read as 16-bit integers, libvorbisfile gives floats.
         * FFmpeg's Opus decoder agrees with libopus to float rounding. */
        double tolerance = strcmp(info.encoding, "vorbis") ? 1e-6 : 1.0 / 32768;
        if (worst > tolerance) fail_msg("%s: largest difference %.3g", name, worst);
        free(want);
        audio_free(a);
        free(b.data);
    }
    json_decref(m);
}

static void test_decode_mp3(void **state)
{
    struct blob b = load("mono.mp3");
    struct audio_info info;
    struct audio *a = decode_ok(&b, 16000, &info);
    assert_string_equal(info.format, "mp3");
    assert_string_equal(info.encoding, "mp3");
    assert_int_equal(info.rate, 16000);
    /* An MP3 carries its encoder's padding: a frame (1152 samples) either way at most. */
    assert_true(labs((long)a->length - 16000) <= 1152);
    assert_true(fabs(crossing_rate(a) - 440) <= 0.01 * 440);
    assert_true(fabs(rms(a, 4000, 12000) - 0.5 / sqrt(2)) <= 0.02);
    audio_free(a);
    free(b.data);
}

/* Decoding resamples to the requested rate: 2205 samples at 22.05 kHz are 1600 at 16 kHz. */
static void test_decode_resamples(void **state)
{
    struct blob b = load("stereo_pcm16.wav");
    struct audio *a = decode_ok(&b, 0, NULL);
    assert_int_equal(a->rate, 16000);
    assert_int_equal(a->length, 1600);
    audio_free(a);
    free(b.data);
}

static void test_decode_limits(void **state)
{
    struct eng_error err;
    struct blob speech = load("speech.wav"); /* 1 s */
    assert_int_equal(decode_code(speech.data, speech.size, 0.5, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "0.5 s"));
    assert_int_equal(decode_code(speech.data, speech.size, 1.0, &err), ENG_OK);
    free(speech.data);

    short pcm[64] = {0};
    static const int rates[] = {999, 384001, 0};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        struct blob b = make_wav(1, 1, rates[i], 16, pcm, sizeof pcm);
        enum eng_code code = decode_code(b.data, b.size, 0, &err);
        /* libsndfile refuses a rate of 0 itself, as a malformed header. */
        assert_int_equal(code, rates[i] ? ENG_INVALID : ENG_UNDECODABLE);
        free(b.data);
    }
    struct blob b = make_wav(1, 1, 16000, 16, pcm, 0);
    assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_INVALID);
    assert_non_null(strstr(err.message, "no samples"));
    free(b.data);
    /* libsndfile refuses a header with 0 channels itself. */
    b = make_wav(1, 0, 16000, 16, pcm, sizeof pcm);
    assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_UNDECODABLE);
    assert_non_null(strstr(err.message, "Channel count is zero"));
    free(b.data);
}

/* NaN and infinite samples are refused, naming where. */
static void test_decode_nonfinite(void **state)
{
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        float samples[2 * 100] = {0};
        samples[2 * 37 + 1] = bad[i]; /* frame 37, right channel */
        struct blob b = make_wav(3, 2, 16000, 32, samples, sizeof samples);
        struct eng_error err;
        assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_INVALID);
        assert_non_null(strstr(err.message, "sample 37"));
        free(b.data);
    }
}

static void test_decode_bad_data(void **state)
{
    struct eng_error err;
    assert_int_equal(decode_code(NULL, 0, 0, &err), ENG_UNSUPPORTED);
    assert_int_equal(decode_code("hello, world", 12, 0, &err), ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "68 65 6c"));
    const char mp4[] = "\0\0\0\x20"
                       "ftypM4A \0\0\0\0";
    assert_int_equal(decode_code(mp4, sizeof mp4, 0, &err), ENG_UNSUPPORTED);
    assert_non_null(strstr(err.message, "MP4"));
    const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    assert_int_equal(decode_code(png, sizeof png, 0, &err), ENG_UNSUPPORTED);
    /* A WAV header cut short, and one with an unknown format tag. */
    struct blob wav = load("stereo_pcm16.wav");
    assert_int_equal(decode_code(wav.data, 30, 0, &err), ENG_UNDECODABLE);
    wav.data[20] = 0x77;
    assert_int_equal(decode_code(wav.data, wav.size, 0, &err), ENG_UNDECODABLE);
    assert_non_null(strstr(err.message, "fmt"));
    free(wav.data);
}

/* Decodes every prefix of b, then b damaged from a third of the way on (b is changed). Asserts
 * nothing, so it can run with stderr redirected. */
static void decode_prefixes_and_damage(struct blob *b)
{
    struct eng_error err;
    for (size_t cut = 0; cut < b->size; cut += 1 + cut / 8)
        decode_code(b->data, cut, 0, &err);
    for (size_t k = b->size / 3; k < b->size; k += 97)
        b->data[k] ^= 0x5a;
    decode_code(b->data, b->size, 0, &err);
}

/* Truncated and damaged compressed files are refused or decoded short, never a crash nor a leak:
 * each prefix and a damaged copy of every fixture goes through the decoder (under ASan in CI). */
static void test_decode_truncated(void **state)
{
    static const char *const names[] = {"stereo.flac", "stereo.ogg", "stereo_opus.ogg", "mono.mp3",
                                        "speech.wav"};
    struct eng_error err;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct blob b = load(names[i]);
        decode_prefixes_and_damage(&b);
        free(b.data);
    }
    /* Cut in the middle: FLAC and Ogg are refused (FLAC loses sync; the small Ogg fixtures are
     * cut inside their Vorbis headers or their one Opus audio page), a WAV gives the whole frames
     * that are there, as libsndfile trims the data chunk to the file. */
    static const char *const refused[] = {"stereo.flac", "stereo.ogg", "stereo_opus.ogg"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        struct blob b = load(refused[i]);
        assert_int_equal(decode_code(b.data, b.size / 2, 0, &err), ENG_UNDECODABLE);
        free(b.data);
    }
    struct blob wav = load("stereo_pcm16.wav"); /* 44-byte header, 4 bytes a frame */
    struct audio_decode_options opt = {.rate = 22050};
    struct audio_info info;
    struct audio *a = audio_decode(wav.data, 5002, &opt, &info, &err);
    assert_non_null(a);
    assert_int_equal(a->length, (5002 - 44) / 4);
    audio_free(a);
    free(wav.data);
}

/* libmpg123 prints notes about damaged MP3s ("Illegal Audio-MPEG-Header") unless told not to: the
 * engine never prints. stderr goes to a file around the decodes, which must stay empty. */
static void test_decode_quiet(void **state)
{
    static const char *const names[] = {"mono.mp3", "stereo.ogg", "stereo_opus.ogg", "stereo.flac"};
    enum { N = sizeof names / sizeof names[0] };
    struct blob b[N];
    for (size_t i = 0; i < N; i++)
        b[i] = load(names[i]);
    FILE *capture = tmpfile();
    assert_non_null(capture);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
    for (size_t i = 0; i < N; i++)
        decode_prefixes_and_damage(&b[i]);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    char text[256] = "";
    rewind(capture);
    size_t n = fread(text, 1, sizeof text - 1, capture);
    fclose(capture);
    if (n > 0) fail_msg("decoding wrote to stderr: %s", text);
    for (size_t i = 0; i < N; i++)
        free(b[i].data);
}

/* Ogg Opus goes to libopusfile and decodes at 48 kHz, the one rate Opus decodes at. A file
 * libsndfile encoded (another encoder than the fixture's opusenc) gives back the sine it was
 * made from: its pitch, its energy and its length (the encoder's delay dropped by the header's
 * pre-skip, the padding by the last page's granule position). */
static void test_decode_opus(void **state)
{
    struct blob b = make_sndfile(SF_FORMAT_OGG | SF_FORMAT_OPUS, 2, 48000, 48000);
    struct audio_info info;
    struct audio *a = decode_ok(&b, 16000, &info);
    assert_string_equal(info.format, "ogg");
    assert_string_equal(info.encoding, "opus");
    assert_int_equal(info.channels, 2);
    assert_int_equal(info.rate, 48000);
    assert_int_equal(info.frames, 48000);
    assert_int_equal(a->length, 16000);
    assert_true(fabs(crossing_rate(a) - 440) <= 0.01 * 440);
    assert_true(fabs(rms(a, 4000, 12000) - 0.5 / sqrt(2)) <= 0.02);
    audio_free(a);
    /* The length comes from the header, before any sample is decoded. */
    struct eng_error err;
    assert_int_equal(decode_code(b.data, b.size, 0.5, &err), ENG_TOO_LARGE);
    assert_non_null(strstr(err.message, "1.0 s long"));
    /* Cut in the middle, it gives the pages before the cut. */
    struct blob cut = {b.data, 2 * b.size / 3};
    a = decode_ok(&cut, 48000, &info);
    assert_true(a->length > 16000 && a->length < 48000);
    assert_int_equal(info.frames, a->length);
    assert_true(fabs(crossing_rate(a) - 440) <= 0.01 * 440);
    audio_free(a);
    decode_prefixes_and_damage(&b);
    free(b.data);
}

/* Pure Ogg Vorbis still goes to libvorbisfile: the samples are bit for bit what libsndfile
 * decodes from the same file (which read Vorbis before libvorbisfile took over), averaged as the
 * decoder averages. */
static void test_decode_vorbis_unchanged(void **state)
{
    struct blob b = load("stereo.ogg");
    struct audio_info info;
    struct audio *a = decode_ok(&b, 22050, &info); /* its own rate: no resampling */
    assert_string_equal(info.encoding, "vorbis");
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.size, f), b.size);
    rewind(f);
    SF_INFO sf = {0};
    SNDFILE *snd = sf_open_fd(fileno(f), SFM_READ, &sf, 0);
    if (!snd) fail_msg("libsndfile: %s", sf_strerror(NULL));
    assert_int_equal(sf.channels, 2);
    assert_int_equal(sf.frames, a->length);
    float *x = malloc(a->length * 2 * sizeof(float));
    assert_non_null(x);
    assert_int_equal(sf_readf_float(snd, x, sf.frames), sf.frames);
    sf_close(snd);
    fclose(f);
    audio_mixdown(x, a->length, 2, x);
    assert_memory_equal(a->samples, x, a->length * sizeof(float));
    free(x);
    audio_free(a);
    free(b.data);
}

/* The input fuzz_audio found (minimised by libFuzzer) on which libsndfile leaked 5,784 bytes
 * (vorbis_info_init, from sndfile_open): "OggS" and "OpusHead" where a first page would hold
 * them, though no page is there (its CRC is wrong), then a whole page beginning a Vorbis
 * stream, which ends after it. By its pages it is Vorbis with its headers cut short: 422. */
static const unsigned char opushead_then_vorbis[93] = {
    0x4f, 0x67, 0x67, 0x53, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5f, 0xf3, 0x6e,
    0x3c, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4f, 0x70, 0x75, 0x73, 0x48,
    0x65, 0x61, 0x64, 0x4f, 0x67, 0x67, 0x53, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x5f, 0xf3, 0x6e, 0x3c, 0x00, 0x00, 0x00, 0x00, 0xf1, 0x08, 0x93, 0x07, 0x01, 0x1e, 0x01,
    0x76, 0x6f, 0x72, 0x62, 0x69, 0x73, 0x00, 0x00, 0x00, 0x00, 0x02, 0x22, 0x56, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x30, 0x75, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x01,
};

/* Ogg goes to a library by what every stream in it holds, read from its pages: libopusfile for
 * Opus, libvorbisfile for Vorbis, nothing for a mix or another codec. Under ASan in CI, no case
 * leaks. */
static void test_decode_ogg_streams(void **state)
{
    struct eng_error err;
    assert_int_equal(decode_code(opushead_then_vorbis, sizeof opushead_then_vorbis, 0, &err),
                     ENG_UNDECODABLE);
    /* The shape with every page whole: a page beginning an Opus stream (the fixture's
     * first), then one beginning a Vorbis stream; and a chain of the two files either way. */
    struct blob opus = load("stereo_opus.ogg");
    struct blob mixed[3] = {
        concat(head(opus, ogg_page_size(opus.data)), load("stereo.ogg")),
        concat(load("stereo_opus.ogg"), load("stereo.ogg")),
        concat(load("stereo.ogg"), load("stereo_opus.ogg")),
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(decode_code(mixed[i].data, mixed[i].size, 0, &err), ENG_UNSUPPORTED);
        assert_non_null(strstr(err.message, "mixes Opus and Vorbis"));
        free(mixed[i].data);
    }
    /* A stream of another codec in front of the Vorbis file is named. */
    static const struct {
        const char *packet;
        size_t size;
        const char *name;
    } others[] = {
        {"\x7f"
         "FLAC\x01\x00\x00\x01"
         "fLaC",
         13, "(FLAC)"},
        {"Speex   1.2", 11, "(Speex)"},
        {"\x80theora\x03\x02\x01", 10, "(Theora)"},
        {"\x01video\0\0", 8, "(unknown)"},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        struct blob b =
            concat(ogg_page(OGG_BOS, 7, others[i].packet, others[i].size), load("stereo.ogg"));
        assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_UNSUPPORTED);
        if (!strstr(err.message, others[i].name))
            fail_msg("'%s' does not name %s", err.message, others[i].name);
        /* With one bit of its CRC wrong it is no page, as libogg skips it: the Vorbis file is
         * what is left. */
        b.data[22] ^= 1;
        struct audio_info info;
        struct audio *a = decode_ok(&b, 22050, &info);
        assert_string_equal(info.encoding, "vorbis");
        assert_int_equal(a->length, 2205);
        audio_free(a);
        free(b.data);
    }
    /* Framing that holds no stream: pages that begin none, or no whole page. */
    struct blob b = ogg_page(0, 7, "\x01vorbis", 7);
    assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_UNDECODABLE);
    assert_non_null(strstr(err.message, "no Ogg stream begins"));
    b.data[4] = 1; /* version 1, which no reader takes */
    assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_UNDECODABLE);
    assert_non_null(strstr(err.message, "no whole Ogg page"));
    free(b.data);
}

/* Chained Ogg (streams one after the other) decodes as one clip when every link has the same
 * layout, and is refused when the channel count or, for Vorbis, the rate changes (Opus always
 * decodes at 48 kHz, whatever rate its header says the input had). */
static void test_decode_chained_ogg(void **state)
{
    static const struct {
        int format, rate;
        const char *encoding;
        int second[2][2]; /* a second link's channels and rate, which is refused */
    } codecs[] = {
        {SF_FORMAT_OGG | SF_FORMAT_VORBIS, 22050, "vorbis", {{1, 22050}, {2, 16000}}},
        {SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, "opus", {{1, 48000}, {1, 16000}}},
    };
    for (size_t k = 0; k < 2; k++) {
        int format = codecs[k].format, rate = codecs[k].rate;
        struct blob same = concat(make_sndfile(format, 2, rate, (size_t)rate),
                                  make_sndfile(format, 2, rate, (size_t)rate / 2));
        struct audio_info info;
        struct audio *a = decode_ok(&same, rate, &info);
        assert_string_equal(info.format, "ogg");
        assert_string_equal(info.encoding, codecs[k].encoding);
        assert_int_equal(info.channels, 2);
        assert_int_equal(a->length, rate + rate / 2);
        assert_int_equal(info.frames, rate + rate / 2);
        assert_true(fabs(crossing_rate(a) - 440) <= 0.01 * 440);
        audio_free(a);
        free(same.data);
        for (size_t i = 0; i < 2; i++) {
            struct blob b =
                concat(make_sndfile(format, 2, rate, (size_t)rate),
                       make_sndfile(format, codecs[k].second[i][0], codecs[k].second[i][1], 8000));
            struct eng_error err;
            assert_int_equal(decode_code(b.data, b.size, 0, &err), ENG_UNSUPPORTED);
            assert_non_null(strstr(err.message, "chained"));
            decode_prefixes_and_damage(&b);
            free(b.data);
        }
    }
    /* libopusfile 0.12, given a whole chain, leaks the comment header of a link whose audio is
     * missing: a second link cut inside its audio, or with its headers only (its pre-skip then
     * asks for samples that are not there). Both are refused, leaking nothing. */
    const int opus = SF_FORMAT_OGG | SF_FORMAT_OPUS;
    struct blob link = make_sndfile(opus, 2, 48000, 8000);
    size_t headers = ogg_page_size(link.data);
    headers += ogg_page_size(link.data + headers);
    struct blob broken[2] = {
        concat(make_sndfile(opus, 2, 48000, 4800), head(link, headers + 100)),
        concat(concat(make_sndfile(opus, 2, 48000, 4800),
                      head(make_sndfile(opus, 2, 48000, 8000), headers)),
               make_sndfile(opus, 2, 48000, 4800)),
    };
    for (size_t i = 0; i < 2; i++) {
        struct eng_error err;
        assert_int_equal(decode_code(broken[i].data, broken[i].size, 0, &err), ENG_UNDECODABLE);
        free(broken[i].data);
    }
    /* Two Opus links made at different input rates are one 48 kHz clip. */
    struct blob b = concat(make_sndfile(opus, 2, 48000, 4800), make_sndfile(opus, 2, 16000, 1600));
    struct audio_info info;
    struct audio *a = decode_ok(&b, 48000, &info);
    assert_int_equal(info.rate, 48000);
    assert_int_equal(a->length, 4800 + 4800);
    audio_free(a);
    free(b.data);
}

/* An ID3v2 tag in front of FLAC, Ogg or MP3 data is skipped: the samples are the untagged
 * file's. */
static void test_decode_id3_tagged(void **state)
{
    static const char *const names[] = {"stereo.flac", "stereo.ogg", "stereo_opus.ogg", "mono.mp3"};
    /* ID3v2.4, no flags, 5 bytes of tag (padding). */
    static const unsigned char tag[15] = {'I', 'D', '3', 4, 0, 0, 0, 0, 0, 5};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct blob b = load(names[i]);
        struct blob tagged = {malloc(sizeof tag), sizeof tag};
        assert_non_null(tagged.data);
        memcpy(tagged.data, tag, sizeof tag);
        tagged = concat(tagged, b);
        b = load(names[i]);
        struct audio_info info, tagged_info;
        struct audio *want = decode_ok(&b, 16000, &info);
        struct audio *got = decode_ok(&tagged, 16000, &tagged_info);
        assert_string_equal(tagged_info.format, info.format);
        assert_int_equal(got->length, want->length);
        assert_memory_equal(got->samples, want->samples, want->length * sizeof(float));
        audio_free(want);
        audio_free(got);
        free(b.data);
        free(tagged.data);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Resampling                                                                                 */

static void test_resample_properties(void **state)
{
    static const int pairs[][2] = {{44100, 16000}, {16000, 48000}, {22050, 16000}, {8000, 16000}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct audio *in = sine(pairs[i][0], 1.0, 440, 0.5);
        struct eng_error err = {0};
        struct audio *out = audio_resample(in, pairs[i][1], &err);
        assert_non_null(out);
        assert_int_equal(out->rate, pairs[i][1]);
        assert_int_equal(out->length, (size_t)pairs[i][1]); /* 1 s */
        assert_true(fabs(crossing_rate(out) - 440) <= 0.01 * 440);
        /* A sine's RMS is A / sqrt 2; soxr's passband is flat to far better than 0.1 %. */
        double r = rms(out, out->length / 4, 3 * out->length / 4);
        assert_true(fabs(r - 0.5 / sqrt(2)) <= 1e-3 * 0.5);
        /* No delay either: the output is the same sine sampled at the new rate. */
        struct audio *ideal = sine(pairs[i][1], 1.0, 440, 0.5);
        double worst = 0;
        for (size_t k = out->length / 4; k < 3 * out->length / 4; k++)
            worst = fmax(worst, fabs(out->samples[k] - ideal->samples[k]));
        if (worst > 1e-3)
            fail_msg("%d -> %d Hz: off the ideal sine by %g", pairs[i][0], pairs[i][1], worst);
        audio_free(ideal);
        audio_free(in);
        audio_free(out);
    }
    /* Above the new Nyquist frequency a tone is removed, not folded back. */
    struct audio *in = sine(48000, 1.0, 12000, 0.5);
    struct audio *out = audio_resample(in, 16000, NULL);
    assert_true(rms(out, out->length / 4, 3 * out->length / 4) < 1e-3);
    audio_free(in);
    audio_free(out);
}

static void test_resample_ratio_and_identity(void **state)
{
    struct audio *in = sine(16000, 1.0, 440, 0.5);
    struct audio *same = audio_resample(in, 16000, NULL);
    assert_int_equal(same->length, in->length);
    assert_memory_equal(same->samples, in->samples, in->length * sizeof(float));
    audio_free(same);
    /* Speed 1.25: 0.8 of the samples at the same rate, the tone 1.25 times higher. */
    struct audio *fast = audio_resample_ratio(in, 0.8, NULL);
    assert_int_equal(fast->rate, 16000);
    assert_int_equal(fast->length, 12800);
    assert_true(fabs(crossing_rate(fast) - 550) <= 0.01 * 550);
    audio_free(fast);
    struct eng_error err = {0};
    assert_null(audio_resample_ratio(in, 0, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(audio_resample_ratio(in, NAN, &err));
    assert_null(audio_resample(in, 999, &err));
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "999"));
    audio_free(in);
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding                                                                                   */

static void test_encode_round_trip(void **state)
{
    struct blob b = load("speech.wav");
    struct audio *a = decode_ok(&b, 16000, NULL);
    static const enum audio_format formats[] = {AUDIO_WAV_PCM16, AUDIO_WAV_FLOAT, AUDIO_FLAC};
    static const char *const magic[] = {"RIFF", "RIFF", "fLaC"};
    for (size_t i = 0; i < 3; i++) {
        void *out;
        size_t size;
        struct eng_error err = {0};
        if (audio_encode(a, formats[i], &out, &size, &err) != 0) fail_msg("%s", err.message);
        assert_memory_equal(out, magic[i], 4);
        struct blob e = {out, size};
        struct audio_info info;
        struct audio *back = decode_ok(&e, 16000, &info);
        /* 16-bit input: every format gives the very same samples back. */
        assert_int_equal(back->length, a->length);
        assert_memory_equal(back->samples, a->samples, a->length * sizeof(float));
        assert_string_equal(info.encoding, formats[i] == AUDIO_WAV_FLOAT ? "float" : "pcm16");
        audio_free(back);
        free(out);
    }
    assert_string_equal(audio_output_mime(AUDIO_OUTPUT_FLAC), "audio/flac");
    audio_free(a);
    free(b.data);
}

static void test_encode_values(void **state)
{
    struct audio *a = audio_new(6, 16000, NULL);
    const float in[6] = {1.5f, -1.5f, 0.25f, 1e-3f, -1.0f, 0.99999f};
    const float pcm16[6] = {32767 / 32768.0f, -1.0f, 0.25f, 33 / 32768.0f, -1.0f, 32767 / 32768.0f};
    memcpy(a->samples, in, sizeof in);
    void *out;
    size_t size;
    assert_int_equal(audio_encode(a, AUDIO_WAV_PCM16, &out, &size, NULL), 0);
    struct blob e = {out, size};
    struct audio *back = decode_ok(&e, 16000, NULL);
    assert_memory_equal(back->samples, pcm16, sizeof pcm16); /* clipped, not wrapped */
    audio_free(back);
    free(out);
    assert_int_equal(audio_encode(a, AUDIO_WAV_FLOAT, &out, &size, NULL), 0);
    e = (struct blob){out, size};
    back = decode_ok(&e, 16000, NULL);
    assert_memory_equal(back->samples, in, sizeof in); /* float: as they were, even past 1 */
    audio_free(back);
    free(out);

    struct eng_error err = {0};
    a->samples[3] = NAN;
    assert_int_equal(audio_encode(a, AUDIO_FLAC, &out, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_null(out);
    a->length = 0;
    assert_int_equal(audio_encode(a, AUDIO_WAV_PCM16, &out, &size, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    audio_free(a);
}

static void test_mixdown(void **state)
{
    const float in[] = {1, 3, 0.5f, -0.5f, 2, 4};
    float out[3];
    audio_mixdown(in, 3, 2, out);
    assert_true(out[0] == 2 && out[1] == 0 && out[2] == 3);
    audio_mixdown(in, 2, 3, out);
    assert_true(fabsf(out[0] - 1.5f) < 1e-7f && fabsf(out[1] - 5.5f / 3) < 1e-6f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(audio_dir, sizeof audio_dir, "%s/audio", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mel_parity),
        cmocka_unit_test(test_mel_log),
        cmocka_unit_test(test_mel_hand_computed),
        cmocka_unit_test(test_mel_frame_counts),
        cmocka_unit_test(test_mel_bad_config),
        cmocka_unit_test(test_mel_threads),
        cmocka_unit_test(test_decode_parity),
        cmocka_unit_test(test_decode_mp3),
        cmocka_unit_test(test_decode_resamples),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_decode_nonfinite),
        cmocka_unit_test(test_decode_bad_data),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_quiet),
        cmocka_unit_test(test_decode_opus),
        cmocka_unit_test(test_decode_vorbis_unchanged),
        cmocka_unit_test(test_decode_ogg_streams),
        cmocka_unit_test(test_decode_chained_ogg),
        cmocka_unit_test(test_decode_id3_tagged),
        cmocka_unit_test(test_resample_properties),
        cmocka_unit_test(test_resample_ratio_and_identity),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_encode_values),
        cmocka_unit_test(test_mixdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
