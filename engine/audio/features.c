/* Log-mel features as torchaudio.transforms.MelSpectrogram computes them: a periodic Hann window
 * centred in n_fft, torch.stft's framing (reflect padding when centred), |X|^power, a triangular
 * mel filterbank (torchaudio.functional.melscale_fbanks), then log(x + offset).
 *
 * Everything that depends only on the configuration (window, filterbank, FFTW plan) is built once
 * in audio_mel_new. The filterbank is stored sparse: each mel filter is a run of consecutive FFT
 * bins with its weights, so applying it costs the triangles' widths, not n_freqs x n_mels. */
#include "audio/audio.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#define MAX_N_FFT  65536
#define MAX_HOP    65536
#define MAX_N_MELS 1024

struct mel_filter {
    int first;  /* first FFT bin with a non-zero weight */
    int count;  /* bins from first */
    size_t off; /* into weights */
};

struct audio_mel {
    struct audio_mel_config cfg;
    int n_freqs;    /* n_fft / 2 + 1 */
    int win_offset; /* the window's first sample within the n_fft frame */
    float *window;  /* win_length samples */
    struct mel_filter *filters;
    float *weights;
    fftwf_plan plan;
};

/* FFTW's planner (and plan destruction) is not thread-safe; executing a plan is, on arrays of
 * the same alignment as the planned ones, which fftwf_malloc guarantees. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

struct audio_mel_config audio_mel_defaults(void)
{
    return (struct audio_mel_config){
        .sample_rate = AUDIO_DEFAULT_RATE,
        .n_fft = 400,
        .win_length = 400,
        .hop_length = 160,
        .center = true,
        .n_mels = 80,
        .f_min = 0,
        .f_max = 0,
        .power = 2,
        .mel_scale = AUDIO_MEL_HTK,
        .norm = AUDIO_MEL_NORM_NONE,
        .log = true,
        .log_offset = 1e-6,
    };
}

static int check_int(const char *name, int value, int lo, int hi, struct eng_error *err)
{
    if (value >= lo && value <= hi) return 0;
    return eng_fail(err, ENG_INVALID, "%s is %d; it must be in [%d, %d]", name, value, lo, hi);
}

/* Checks cfg and resolves f_max = 0 to the Nyquist frequency. */
static int check_config(struct audio_mel_config *cfg, struct eng_error *err)
{
    if (check_int("sample_rate", cfg->sample_rate, AUDIO_MIN_RATE, AUDIO_MAX_RATE, err) != 0 ||
        check_int("n_fft", cfg->n_fft, 16, MAX_N_FFT, err) != 0 ||
        check_int("win_length", cfg->win_length, 1, cfg->n_fft, err) != 0 ||
        check_int("hop_length", cfg->hop_length, 1, MAX_HOP, err) != 0 ||
        check_int("n_mels", cfg->n_mels, 1, MAX_N_MELS, err) != 0 ||
        check_int("power", cfg->power, 1, 2, err) != 0)
        return -1;
    double nyquist = cfg->sample_rate / 2.0;
    if (cfg->f_max == 0) cfg->f_max = nyquist;
    if (!(cfg->f_max > 0 && cfg->f_max <= nyquist))
        return eng_fail(err, ENG_INVALID, "f_max is %g Hz; it must be in (0, %g] (sample_rate / 2)",
                        cfg->f_max, nyquist);
    if (!(cfg->f_min >= 0 && cfg->f_min < cfg->f_max))
        return eng_fail(err, ENG_INVALID, "f_min is %g Hz; it must be in [0, f_max = %g)",
                        cfg->f_min, cfg->f_max);
    if (cfg->mel_scale != AUDIO_MEL_HTK && cfg->mel_scale != AUDIO_MEL_SLANEY)
        return eng_fail(err, ENG_INVALID, "mel_scale %d is neither htk nor slaney",
                        (int)cfg->mel_scale);
    if (cfg->norm != AUDIO_MEL_NORM_NONE && cfg->norm != AUDIO_MEL_NORM_SLANEY)
        return eng_fail(err, ENG_INVALID, "norm %d is neither none nor slaney", (int)cfg->norm);
    if (cfg->log && !(cfg->log_offset > 0 && isfinite(cfg->log_offset)))
        return eng_fail(err, ENG_INVALID, "log_offset is %g; it must be positive", cfg->log_offset);
    return 0;
}

/* torchaudio.functional._hz_to_mel and _mel_to_hz. Slaney's scale is linear below 1 kHz and
 * logarithmic above. */
#define SLANEY_F_SP     (200.0 / 3)
#define SLANEY_MIN_MEL  (1000.0 / SLANEY_F_SP)
#define SLANEY_LOG_STEP (log(6.4) / 27.0)

static double hz_to_mel(double hz, enum audio_mel_scale scale)
{
    if (scale == AUDIO_MEL_HTK) return 2595.0 * log10(1.0 + hz / 700.0);
    if (hz < 1000.0) return hz / SLANEY_F_SP;
    return SLANEY_MIN_MEL + log(hz / 1000.0) / SLANEY_LOG_STEP;
}

static double mel_to_hz(double mel, enum audio_mel_scale scale)
{
    if (scale == AUDIO_MEL_HTK) return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
    if (mel < SLANEY_MIN_MEL) return mel * SLANEY_F_SP;
    return 1000.0 * exp(SLANEY_LOG_STEP * (mel - SLANEY_MIN_MEL));
}

/* torch.hann_window(win_length) (periodic): 0.5 - 0.5 cos(2 pi i / win_length). */
static void hann_periodic(float *w, int n)
{
    for (int i = 0; i < n; i++)
        w[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
}

/* The weight of FFT bin frequency f in the triangle (lo, mid, hi), as
 * torchaudio.functional._create_triangular_filterbank: max(0, min(rising, falling)). */
static double triangle(double f, double lo, double mid, double hi)
{
    double up = (f - lo) / (mid - lo), down = (hi - f) / (hi - mid);
    double w = up < down ? up : down;
    return w > 0 ? w : 0;
}

/* Builds the sparse filterbank: n_mels + 2 points evenly spaced in mel between f_min and f_max,
 * FFT bins at linspace(0, sample_rate // 2, n_freqs) as torchaudio has them. */
static int build_filterbank(struct audio_mel *m, struct eng_error *err)
{
    const struct audio_mel_config *c = &m->cfg;
    int n_mels = c->n_mels, n_freqs = m->n_freqs;
    double *f_pts = malloc((size_t)(n_mels + 2) * sizeof *f_pts);
    m->filters = calloc((size_t)n_mels, sizeof *m->filters);
    /* A bin strictly between two consecutive points lies in at most two triangles, the one
     * rising and the one falling there, so the runs hold at most 2 * n_freqs weights. */
    m->weights = malloc(2 * (size_t)n_freqs * sizeof *m->weights);
    if (!f_pts || !m->filters || !m->weights) {
        free(f_pts);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for a %d-mel filterbank", n_mels);
    }
    double m_min = hz_to_mel(c->f_min, c->mel_scale), m_max = hz_to_mel(c->f_max, c->mel_scale);
    for (int i = 0; i < n_mels + 2; i++)
        f_pts[i] = mel_to_hz(m_min + (m_max - m_min) * i / (n_mels + 1), c->mel_scale);
    double bin_hz = (double)(c->sample_rate / 2) / (n_freqs - 1);
    size_t off = 0;
    for (int j = 0; j < n_mels; j++) {
        double lo = f_pts[j], mid = f_pts[j + 1], hi = f_pts[j + 2];
        double scale = c->norm == AUDIO_MEL_NORM_SLANEY ? 2.0 / (hi - lo) : 1.0;
        struct mel_filter *f = &m->filters[j];
        f->off = off;
        for (int k = 0; k < n_freqs; k++) {
            double w = triangle(k * bin_hz, lo, mid, hi);
            if (w == 0) continue;
            if (f->count == 0) f->first = k;
            /* Bins inside a triangle are consecutive, so the run only grows at its end. */
            m->weights[off + (size_t)(k - f->first)] = (float)(w * scale);
            f->count = k - f->first + 1;
        }
        off += (size_t)f->count;
    }
    free(f_pts);
    return 0;
}

static int build_plan(struct audio_mel *m, struct eng_error *err)
{
    float *in = fftwf_malloc((size_t)m->cfg.n_fft * sizeof(float));
    fftwf_complex *out = fftwf_malloc((size_t)m->n_freqs * sizeof(fftwf_complex));
    if (in && out) {
        /* FFTW_ESTIMATE: deterministic plans, so features do not vary between processes. */
        pthread_mutex_lock(&plan_lock);
        m->plan = fftwf_plan_dft_r2c_1d(m->cfg.n_fft, in, out, FFTW_ESTIMATE);
        pthread_mutex_unlock(&plan_lock);
    }
    fftwf_free(in);
    fftwf_free(out);
    if (!m->plan) return eng_fail(err, ENG_NO_MEMORY, "FFTW could not plan n_fft %d", m->cfg.n_fft);
    return 0;
}

struct audio_mel *audio_mel_new(const struct audio_mel_config *cfg, struct eng_error *err)
{
    struct audio_mel *m = calloc(1, sizeof *m);
    if (!m) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory for a mel front end");
        return NULL;
    }
    m->cfg = *cfg;
    if (check_config(&m->cfg, err) != 0) goto fail;
    m->n_freqs = m->cfg.n_fft / 2 + 1;
    m->win_offset = (m->cfg.n_fft - m->cfg.win_length) / 2; /* torch.stft's centring */
    m->window = malloc((size_t)m->cfg.win_length * sizeof *m->window);
    if (!m->window) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory for a window of %d", m->cfg.win_length);
        goto fail;
    }
    hann_periodic(m->window, m->cfg.win_length);
    if (build_filterbank(m, err) != 0 || build_plan(m, err) != 0) goto fail;
    return m;
fail:
    audio_mel_free(m);
    return NULL;
}

void audio_mel_free(struct audio_mel *m)
{
    if (!m) return;
    if (m->plan) {
        pthread_mutex_lock(&plan_lock);
        fftwf_destroy_plan(m->plan);
        pthread_mutex_unlock(&plan_lock);
    }
    free(m->window);
    free(m->filters);
    free(m->weights);
    free(m);
}

const struct audio_mel_config *audio_mel_config(const struct audio_mel *m)
{
    return &m->cfg;
}

/* ------------------------------------------------------------------------------------------ */
/* Computing                                                                                  */

/* Per-call buffers, allocated once per clip. */
struct scratch {
    float *frame;        /* n_fft, zero outside the window */
    fftwf_complex *bins; /* n_freqs */
    float *spectrum;     /* n_freqs */
};

/* Index of padded position i (may be outside [0, n)) under reflect padding, which mirrors about
 * the end samples without repeating them; positions further out than n - 1 reflect again, where
 * torch would refuse. */
static size_t reflect(long long i, size_t n)
{
    if (n == 1) return 0;
    long long period = 2 * ((long long)n - 1);
    i %= period;
    if (i < 0) i += period;
    return (size_t)(i < (long long)n ? i : period - i);
}

/* Windows the samples of the frame starting at padded position start into s->frame. */
static void load_frame(const struct audio_mel *m, const struct audio *a, long long start,
                       float *frame)
{
    const float *w = m->window;
    float *out = frame + m->win_offset;
    long long first = start + m->win_offset;
    int n = m->cfg.win_length;
    if (first >= 0 && first + n <= (long long)a->length) {
        const float *x = a->samples + first;
        for (int i = 0; i < n; i++)
            out[i] = x[i] * w[i];
        return;
    }
    for (int i = 0; i < n; i++)
        out[i] = a->samples[reflect(first + i, a->length)] * w[i];
}

static void power_spectrum(const fftwf_complex *bins, int n, int power, float *out)
{
    for (int k = 0; k < n; k++) {
        float re = bins[k][0], im = bins[k][1];
        out[k] = re * re + im * im;
    }
    if (power == 1)
        for (int k = 0; k < n; k++)
            out[k] = sqrtf(out[k]);
}

static void apply_filterbank(const struct audio_mel *m, const float *spectrum, float *out)
{
    for (int j = 0; j < m->cfg.n_mels; j++) {
        const struct mel_filter *f = &m->filters[j];
        const float *w = m->weights + f->off, *p = spectrum + f->first;
        float sum = 0;
        for (int k = 0; k < f->count; k++)
            sum += w[k] * p[k];
        out[j] = sum;
    }
}

static void apply_log(float *x, size_t n, float offset)
{
    for (size_t i = 0; i < n; i++)
        x[i] = logf(x[i] + offset);
}

static int frame_count(const struct audio_mel *m, size_t length, struct eng_error *err)
{
    const struct audio_mel_config *c = &m->cfg;
    size_t frames;
    if (c->center) {
        frames = 1 + length / (size_t)c->hop_length;
    } else {
        if (length < (size_t)c->n_fft)
            return eng_fail(err, ENG_INVALID,
                            "the clip has %zu samples; without center it needs at least n_fft = %d",
                            length, c->n_fft);
        frames = 1 + (length - (size_t)c->n_fft) / (size_t)c->hop_length;
    }
    if (frames > INT_MAX / (size_t)c->n_mels)
        return eng_fail(err, ENG_TOO_LARGE, "the clip gives %zu frames, too many", frames);
    return (int)frames;
}

int audio_framing_frames(const struct audio_framing *f, size_t length)
{
    size_t frames = f->center ? 1 + length / (size_t)f->hop_length
                    : length < (size_t)f->n_fft
                        ? 0
                        : 1 + (length - (size_t)f->n_fft) / (size_t)f->hop_length;
    return frames > INT_MAX ? INT_MAX : (int)frames;
}

static int scratch_init(struct scratch *s, const struct audio_mel *m, struct eng_error *err)
{
    s->frame = fftwf_malloc((size_t)m->cfg.n_fft * sizeof(float));
    s->bins = fftwf_malloc((size_t)m->n_freqs * sizeof(fftwf_complex));
    s->spectrum = malloc((size_t)m->n_freqs * sizeof(float));
    if (!s->frame || !s->bins || !s->spectrum)
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for an STFT of %d", m->cfg.n_fft);
    memset(s->frame, 0, (size_t)m->cfg.n_fft * sizeof(float));
    return 0;
}

static void scratch_free(struct scratch *s)
{
    fftwf_free(s->frame);
    fftwf_free(s->bins);
    free(s->spectrum);
}

struct audio_spec *audio_mel_compute(const struct audio_mel *m, const struct audio *a,
                                     struct eng_error *err)
{
    const struct audio_mel_config *c = &m->cfg;
    if (a->rate != c->sample_rate) {
        eng_fail(err, ENG_INVALID, "the clip is at %d Hz; the front end expects %d Hz", a->rate,
                 c->sample_rate);
        return NULL;
    }
    if (a->length == 0) {
        eng_fail(err, ENG_INVALID, "the clip has no samples");
        return NULL;
    }
    int frames = frame_count(m, a->length, err);
    if (frames < 0) return NULL;
    struct scratch s = {0};
    struct audio_spec *spec = NULL;
    if (scratch_init(&s, m, err) == 0) spec = audio_spec_new(frames, c->n_mels, err);
    if (spec) {
        long long pad = c->center ? c->n_fft / 2 : 0;
        for (int t = 0; t < frames; t++) {
            load_frame(m, a, (long long)t * c->hop_length - pad, s.frame);
            fftwf_execute_dft_r2c(m->plan, s.frame, s.bins);
            power_spectrum(s.bins, m->n_freqs, c->power, s.spectrum);
            apply_filterbank(m, s.spectrum, spec->data + (size_t)t * (size_t)c->n_mels);
        }
        if (c->log) apply_log(spec->data, (size_t)frames * (size_t)c->n_mels, (float)c->log_offset);
    }
    scratch_free(&s);
    return spec;
}
