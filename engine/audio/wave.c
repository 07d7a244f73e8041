#include "audio/wave.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct audio *wave_clone(const struct audio *in, struct eng_error *err)
{
    struct audio *out = audio_new(in->length, in->rate, err);
    if (out && in->length) memcpy(out->samples, in->samples, in->length * sizeof *out->samples);
    return out;
}

/* A copy with every sample multiplied by gain. */
static struct audio *wave_scaled(const struct audio *in, double gain, struct eng_error *err)
{
    struct audio *out = audio_new(in->length, in->rate, err);
    for (size_t i = 0; out && i < in->length; i++)
        out->samples[i] = (float)(in->samples[i] * gain);
    return out;
}

struct audio *wave_gain(const struct audio *in, double db, struct eng_error *err)
{
    return wave_scaled(in, pow(10.0, db / 20.0), err);
}

/* Mean square, in double so that long clips keep their precision. */
static double power_of(const float *x, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return n ? sum / (double)n : 0;
}

static double peak_of(const float *x, size_t n)
{
    double peak = 0;
    for (size_t i = 0; i < n; i++)
        peak = fmax(peak, fabs(x[i]));
    return peak;
}

/* in + scale * noise, the scale making the power ratio exactly 10^(snr_db / 10). */
static struct audio *mix_at_snr(const struct audio *in, const float *noise, double snr_db,
                                struct eng_error *err)
{
    double signal = power_of(in->samples, in->length), floor = power_of(noise, in->length);
    double scale = signal > 0 && floor > 0 ? sqrt(signal / (floor * pow(10.0, snr_db / 10.0))) : 0;
    struct audio *out = audio_new(in->length, in->rate, err);
    for (size_t i = 0; out && i < in->length; i++)
        out->samples[i] = (float)(in->samples[i] + scale * noise[i]);
    return out;
}

static float *new_buffer(size_t n, struct eng_error *err)
{
    float *buffer = malloc((n ? n : 1) * sizeof *buffer);
    if (!buffer) eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu audio samples", n);
    return buffer;
}

/* Paul Kellet's refined pink filter on white noise, one sample at a time. */
static float pink_next(double b[7], double white)
{
    b[0] = 0.99886 * b[0] + white * 0.0555179;
    b[1] = 0.99332 * b[1] + white * 0.0750759;
    b[2] = 0.96900 * b[2] + white * 0.1538520;
    b[3] = 0.86650 * b[3] + white * 0.3104856;
    b[4] = 0.55000 * b[4] + white * 0.5329522;
    b[5] = -0.7616 * b[5] - white * 0.0168980;
    double pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
    b[6] = white * 0.115926;
    return (float)pink;
}

static void coloured_noise(float *out, size_t n, enum wave_colour colour, struct rng *noise)
{
    double state[7] = {0};
    for (size_t i = 0; i < n; i++) {
        double white = rng_normal(noise);
        if (colour == WAVE_PINK)
            out[i] = pink_next(state, white);
        else if (colour == WAVE_BROWN)
            out[i] = (float)(state[0] = 0.998 * state[0] + white);
        else
            out[i] = (float)white;
    }
}

struct audio *wave_add_noise(const struct audio *in, double snr_db, enum wave_colour colour,
                             struct rng *noise, struct eng_error *err)
{
    float *n = new_buffer(in->length, err);
    if (!n) return NULL;
    coloured_noise(n, in->length, colour, noise);
    struct audio *out = mix_at_snr(in, n, snr_db, err);
    free(n);
    return out;
}

struct audio *wave_add_clip(const struct audio *in, const struct audio *clip, double offset,
                            double snr_db, struct eng_error *err)
{
    if (clip->rate != in->rate) {
        eng_fail(err, ENG_INVALID, "the noise clip is at %d Hz; the audio is at %d Hz", clip->rate,
                 in->rate);
        return NULL;
    }
    if (!(power_of(clip->samples, clip->length) > 0)) {
        eng_fail(err, ENG_INVALID, "the noise clip is silent: no level gives an SNR");
        return NULL;
    }
    float *n = new_buffer(in->length, err);
    if (!n) return NULL;
    size_t at = (size_t)(offset * (double)clip->length) % clip->length;
    for (size_t i = 0; i < in->length; i++, at = at + 1 == clip->length ? 0 : at + 1)
        n[i] = clip->samples[at];
    struct audio *out = mix_at_snr(in, n, snr_db, err);
    free(n);
    return out;
}

/* The resampling ratio of a speed factor; wave_speed_length and audio_resample_ratio both work
 * from this one double, so the lengths they give are the same. */
static double speed_ratio(double factor)
{
    return 1.0 / factor;
}

size_t wave_speed_length(size_t length, double factor)
{
    return (size_t)llround((double)length * speed_ratio(factor));
}

struct audio *wave_speed(const struct audio *in, double factor, struct eng_error *err)
{
    if (!(factor > 0)) {
        eng_fail(err, ENG_INVALID, "Speed: factor %g must be above 0", factor);
        return NULL;
    }
    return audio_resample_ratio(in, speed_ratio(factor), err);
}

struct audio *wave_shift(const struct audio *in, long shift, int roll, struct eng_error *err)
{
    struct audio *out = audio_new(in->length, in->rate, err);
    if (!out || in->length == 0) return out;
    long n = (long)in->length;
    for (long i = 0; i < n; i++) {
        long from = i - shift;
        if (roll)
            out->samples[i] = in->samples[((from % n) + n) % n];
        else
            out->samples[i] = from >= 0 && from < n ? in->samples[from] : 0.0f;
    }
    return out;
}

float *wave_synthetic_rir(double rt60, int rate, struct rng *noise, size_t *taps,
                          struct eng_error *err)
{
    if (!(rt60 > 0) || rate <= 0) {
        eng_fail(err, ENG_INVALID, "Reverb: rt60 %g s at %d Hz gives no impulse response", rt60,
                 rate);
        return NULL;
    }
    size_t n = (size_t)ceil(rt60 * rate);
    float *rir = new_buffer(n, err);
    if (!rir) return NULL;
    double decay = 3.0 * log(10.0) / (rt60 * rate); /* per sample: -60 dB at rt60 */
    rir[0] = 1.0f;
    for (size_t i = 1; i < n; i++)
        rir[i] = (float)(rng_normal(noise) * exp(-decay * (double)i));
    *taps = n;
    return rir;
}

/* The n / 2 twiddle factors exp(-2 pi i k / n) of an n-point FFT, n a power of two. */
struct twiddles {
    double *cos, *sin;
    size_t n;
};

/* In-place iterative radix-2 FFT of w->n complex values; inverse is unscaled. */
static void fft(double *re, double *im, const struct twiddles *w, int inverse)
{
    size_t n = w->n;
    for (size_t i = 1, j = 0; i < n; i++) {
        size_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j], re[j] = t;
            t = im[i];
            im[i] = im[j], im[j] = t;
        }
    }
    for (size_t len = 2; len <= n; len <<= 1)
        for (size_t i = 0; i < n; i += len)
            for (size_t k = 0; k < len / 2; k++) {
                size_t a = i + k, b = a + len / 2, step = k * (n / len);
                double wr = w->cos[step], wi = inverse ? -w->sin[step] : w->sin[step];
                double xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr, im[b] = im[a] - xi;
                re[a] += xr, im[a] += xi;
            }
}

/* Overlap-add: blocks of (n - taps + 1) input samples, each convolved through one forward and
 * one inverse transform against the response's spectrum (hr, hi). */
static void overlap_add(const float *x, size_t length, const double *hr, const double *hi,
                        size_t taps, const struct twiddles *w, double *re, double *im, double *acc)
{
    size_t n = w->n, block = n - taps + 1;
    for (size_t at = 0; at < length; at += block) {
        size_t count = length - at < block ? length - at : block;
        memset(re, 0, n * sizeof *re);
        memset(im, 0, n * sizeof *im);
        for (size_t i = 0; i < count; i++)
            re[i] = x[at + i];
        fft(re, im, w, 0);
        for (size_t i = 0; i < n; i++) {
            double r = re[i] * hr[i] - im[i] * hi[i];
            im[i] = re[i] * hi[i] + im[i] * hr[i];
            re[i] = r;
        }
        fft(re, im, w, 1);
        for (size_t i = 0; i < n && at + i < length; i++)
            acc[at + i] += re[i] / (double)n;
    }
}

struct audio *wave_reverb(const struct audio *in, const float *rir, size_t taps,
                          struct eng_error *err)
{
    double norm = sqrt(power_of(rir, taps) * (double)taps);
    if (!(norm > 0)) {
        eng_fail(err, ENG_INVALID, "the impulse response is silent");
        return NULL;
    }
    struct twiddles w = {.n = 1024};
    while (w.n < 2 * taps)
        w.n <<= 1;
    /* hr, hi, re, im and the twiddles' cos and sin: n each (n / 2 for the last two). */
    double *work = calloc(5 * w.n + in->length + 1, sizeof *work);
    if (!work) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory for a %zu-tap reverb", taps);
        return NULL;
    }
    struct audio *out = audio_new(in->length, in->rate, err);
    if (!out) {
        free(work);
        return NULL;
    }
    double *hr = work, *hi = hr + w.n, *re = hi + w.n, *im = re + w.n, *acc = im + w.n + w.n;
    w.cos = im + w.n;
    w.sin = w.cos + w.n / 2;
    for (size_t k = 0; k < w.n / 2; k++) {
        w.cos[k] = cos(-2 * M_PI * (double)k / (double)w.n);
        w.sin[k] = sin(-2 * M_PI * (double)k / (double)w.n);
    }
    for (size_t i = 0; i < taps; i++)
        hr[i] = rir[i] / norm;
    fft(hr, hi, &w, 0);
    overlap_add(in->samples, in->length, hr, hi, taps, &w, re, im, acc);
    for (size_t i = 0; i < in->length; i++)
        out->samples[i] = (float)acc[i];
    free(work);
    return out;
}

struct audio *wave_clip(const struct audio *in, double fraction, struct eng_error *err)
{
    float limit = (float)(fraction * peak_of(in->samples, in->length));
    struct audio *out = audio_new(in->length, in->rate, err);
    for (size_t i = 0; out && i < in->length; i++)
        out->samples[i] = fminf(fmaxf(in->samples[i], -limit), limit);
    return out;
}

struct audio *wave_biquad(const struct audio *in, enum wave_filter kind, double cutoff_hz, double q,
                          struct eng_error *err)
{
    if (!(cutoff_hz > 0 && cutoff_hz < in->rate / 2.0) || !(q > 0)) {
        eng_fail(err, ENG_INVALID,
                 "%s: cutoff %g Hz must be in (0, %g) (half the rate) and Q %g above 0",
                 kind == WAVE_LOWPASS ? "LowPass" : "HighPass", cutoff_hz, in->rate / 2.0, q);
        return NULL;
    }
    double w0 = 2 * M_PI * cutoff_hz / in->rate, alpha = sin(w0) / 2 / q, c = cos(w0);
    double b0 = kind == WAVE_LOWPASS ? (1 - c) / 2 : (1 + c) / 2;
    double b1 = kind == WAVE_LOWPASS ? 1 - c : -1 - c, a0 = 1 + alpha;
    double b[3] = {b0 / a0, b1 / a0, b0 / a0}, a[2] = {-2 * c / a0, (1 - alpha) / a0};
    struct audio *out = audio_new(in->length, in->rate, err);
    double x1 = 0, x2 = 0, y1 = 0, y2 = 0; /* zero initial state, as lfilter */
    for (size_t i = 0; out && i < in->length; i++) {
        double x = in->samples[i], y = b[0] * x + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
        x2 = x1, x1 = x, y2 = y1, y1 = y;
        out->samples[i] = (float)fmin(fmax(y, -1.0), 1.0);
    }
    return out;
}

struct audio *wave_normalize(const struct audio *in, int rms, double target_db,
                             struct eng_error *err)
{
    double level = rms ? sqrt(power_of(in->samples, in->length)) : peak_of(in->samples, in->length);
    return wave_scaled(in, level > 0 ? pow(10.0, target_db / 20.0) / level : 1.0, err);
}
