#include "metrics/metric.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSIM_SIGMA    1.5
#define SSIM_RADIUS   5 /* int(3.5 * 1.5 + 0.5), as scipy.ndimage truncates the Gaussian */
#define SSIM_TAPS     (2 * SSIM_RADIUS + 1)
#define DATA_RANGE    255.0
#define SSIM_C1       ((0.01 * DATA_RANGE) * (0.01 * DATA_RANGE))
#define SSIM_C2       ((0.03 * DATA_RANGE) * (0.03 * DATA_RANGE))
#define LPIPS_EPS     1e-10
#define NPY_MAX_BYTES ((size_t)64 << 20)

static const double ms_ssim_weights[METRIC_MS_SSIM_SCALES] = {0.0448, 0.2856, 0.3001, 0.2363,
                                                              0.1333};

/* ---- Planes ---------------------------------------------------------------------------------- */

/* n planes of width x height doubles, back to back. */
struct planes {
    int n, width, height;
    double *data;
};

static int same_size(const struct img *a, const struct img *b, int min_side, const char *metric,
                     struct eng_error *err)
{
    if (a->width != b->width || a->height != b->height)
        return eng_fail(err, ENG_INVALID, "the images differ in size: %dx%d and %dx%d", a->width,
                        a->height, b->width, b->height);
    if (a->width < min_side || a->height < min_side)
        return eng_fail(err, ENG_INVALID, "%s needs images of at least %dx%d; these are %dx%d",
                        metric, min_side, min_side, a->width, a->height);
    return 0;
}

/* Pillow's convert("L") of one pixel. */
static double luma(const uint8_t *px, int channels)
{
    if (channels < 3) return px[0];
    return (double)((px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16);
}

/* The planes both images are compared on; n is 1 for luma or two greyscale images, else 3. */
static int make_planes(const struct img *im, enum metric_planes mode, int n, struct planes *out,
                       struct eng_error *err)
{
    size_t area = (size_t)im->width * (size_t)im->height;
    *out = (struct planes){n, im->width, im->height, malloc((size_t)n * area * sizeof(double))};
    if (!out->data) return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu pixels", area);
    for (int y = 0; y < im->height; y++) {
        const uint8_t *row = img_row(im, y);
        for (int x = 0; x < im->width; x++) {
            const uint8_t *px = row + (size_t)x * (size_t)im->channels;
            size_t at = (size_t)y * (size_t)im->width + (size_t)x;
            if (mode == METRIC_LUMA) {
                out->data[at] = luma(px, im->channels);
                continue;
            }
            for (int c = 0; c < n; c++)
                out->data[(size_t)c * area + at] = px[im->channels < 3 ? 0 : c];
        }
    }
    return 0;
}

static int plane_count(const struct img *a, const struct img *b, enum metric_planes mode)
{
    return mode == METRIC_LUMA || (a->channels < 3 && b->channels < 3) ? 1 : 3;
}

/* The doubles ssim_plane holds per pixel: the two filtered means, the three filtered products, a
 * product and the filter's intermediate. */
#define SSIM_MAPS 7

double metric_working_bytes(const struct img *a, const struct img *b, enum metric_planes planes,
                            int ssim)
{
    double area = (double)a->width * (double)a->height;
    double doubles = 2.0 * plane_count(a, b, planes) + (ssim ? SSIM_MAPS : 0);
    return area * doubles * sizeof(double);
}

/* Both images' planes, after checking their sizes. */
static int both_planes(const struct img *a, const struct img *b, enum metric_planes mode,
                       int min_side, const char *metric, struct planes *pa, struct planes *pb,
                       struct eng_error *err)
{
    pa->data = pb->data = NULL;
    if (same_size(a, b, min_side, metric, err)) return -1;
    int n = plane_count(a, b, mode);
    if (make_planes(a, mode, n, pa, err) == 0 && make_planes(b, mode, n, pb, err) == 0) return 0;
    free(pa->data);
    free(pb->data);
    pa->data = pb->data = NULL;
    return -1;
}

/* ---- SSIM ------------------------------------------------------------------------------------ */

/* scipy.ndimage's Gaussian kernel: exp(-x^2 / (2 sigma^2)) for x in [-radius, radius],
 * normalised to sum 1. */
static void gaussian_kernel(double k[SSIM_TAPS])
{
    double sum = 0;
    for (int i = 0; i < SSIM_TAPS; i++) {
        double x = i - SSIM_RADIUS;
        k[i] = exp(-0.5 / (SSIM_SIGMA * SSIM_SIGMA) * x * x);
        sum += k[i];
    }
    for (int i = 0; i < SSIM_TAPS; i++)
        k[i] /= sum;
}

/* scipy.ndimage's "reflect" border (d c b a | a b c d); n >= SSIM_RADIUS, so one bounce does. */
static int reflect(int i, int n)
{
    return i < 0 ? -i - 1 : i >= n ? 2 * n - i - 1 : i;
}

/* out = in filtered by the Gaussian along rows, then along columns; tmp holds w * h doubles. */
static void gaussian_filter(const double *in, double *out, double *tmp, int w, int h,
                            const double k[SSIM_TAPS])
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int t = 0; t < SSIM_TAPS; t++)
                s += k[t] * in[(size_t)y * w + reflect(x + t - SSIM_RADIUS, w)];
            tmp[(size_t)y * w + x] = s;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int t = 0; t < SSIM_TAPS; t++)
                s += k[t] * tmp[(size_t)reflect(y + t - SSIM_RADIUS, h) * w + x];
            out[(size_t)y * w + x] = s;
        }
}

/* The means over the valid region of the SSIM map and of its contrast-structure factor. */
struct ssim_means {
    double ssim, cs;
};

/* SSIM of one plane of x and y (w x h), as skimage computes it with population covariances. */
static int ssim_plane(const double *x, const double *y, int w, int h, struct ssim_means *out,
                      struct eng_error *err)
{
    size_t area = (size_t)w * (size_t)h;
    double *buf = malloc(SSIM_MAPS * area * sizeof *buf);
    if (!buf) return eng_fail(err, ENG_NO_MEMORY, "out of memory for SSIM of %dx%d", w, h);
    double *ux = buf, *uy = ux + area, *uxx = uy + area, *uyy = uxx + area, *uxy = uyy + area;
    double *prod = uxy + area, *tmp = prod + area, k[SSIM_TAPS];
    gaussian_kernel(k);
    gaussian_filter(x, ux, tmp, w, h, k);
    gaussian_filter(y, uy, tmp, w, h, k);
    double *products[3] = {uxx, uyy, uxy};
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; i < area; i++)
            prod[i] = (p == 1 ? y[i] : x[i]) * (p == 0 ? x[i] : y[i]);
        gaussian_filter(prod, products[p], tmp, w, h, k);
    }
    double ssim = 0, cs = 0;
    for (int r = SSIM_RADIUS; r < h - SSIM_RADIUS; r++)
        for (int c = SSIM_RADIUS; c < w - SSIM_RADIUS; c++) {
            size_t i = (size_t)r * w + c;
            double vx = uxx[i] - ux[i] * ux[i], vy = uyy[i] - uy[i] * uy[i];
            double vxy = uxy[i] - ux[i] * uy[i];
            double a1 = 2 * ux[i] * uy[i] + SSIM_C1, a2 = 2 * vxy + SSIM_C2;
            double b1 = ux[i] * ux[i] + uy[i] * uy[i] + SSIM_C1, b2 = vx + vy + SSIM_C2;
            ssim += a1 * a2 / (b1 * b2);
            cs += a2 / b2;
        }
    double valid = (double)(w - 2 * SSIM_RADIUS) * (double)(h - 2 * SSIM_RADIUS);
    *out = (struct ssim_means){ssim / valid, cs / valid};
    free(buf);
    return 0;
}

int metric_ssim(const struct img *a, const struct img *b, enum metric_planes planes, double *ssim,
                struct eng_error *err)
{
    struct planes pa, pb;
    if (both_planes(a, b, planes, METRIC_SSIM_MIN_SIDE, "SSIM", &pa, &pb, err)) return -1;
    size_t area = (size_t)pa.width * (size_t)pa.height;
    double sum = 0;
    int rc = 0;
    for (int c = 0; c < pa.n && rc == 0; c++) {
        struct ssim_means m;
        rc = ssim_plane(pa.data + c * area, pb.data + c * area, pa.width, pa.height, &m, err);
        sum += m.ssim;
    }
    *ssim = sum / pa.n;
    free(pa.data);
    free(pb.data);
    return rc;
}

/* Halves a plane in place: each output pixel the mean of a 2x2 block; an odd last row or column
 * is dropped. */
static void downsample(double *p, int *w, int *h)
{
    int ow = *w / 2, oh = *h / 2;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            const double *r0 = p + (size_t)(2 * y) * *w + 2 * x, *r1 = r0 + *w;
            p[(size_t)y * ow + x] = (r0[0] + r0[1] + r1[0] + r1[1]) / 4;
        }
    *w = ow;
    *h = oh;
}

/* MS-SSIM of one plane; x and y are overwritten by the downsampling. */
static int ms_ssim_plane(double *x, double *y, int w, int h, double *out, struct eng_error *err)
{
    double product = 1;
    for (int s = 0; s < METRIC_MS_SSIM_SCALES; s++) {
        struct ssim_means m;
        if (ssim_plane(x, y, w, h, &m, err)) return -1;
        double term = s + 1 < METRIC_MS_SSIM_SCALES ? m.cs : m.ssim;
        product *= pow(term > 0 ? term : 0, ms_ssim_weights[s]);
        int ow = w, oh = h;
        downsample(x, &ow, &oh);
        downsample(y, &w, &h);
    }
    *out = product;
    return 0;
}

int metric_ms_ssim(const struct img *a, const struct img *b, enum metric_planes planes,
                   double *ms_ssim, struct eng_error *err)
{
    struct planes pa, pb;
    if (both_planes(a, b, planes, METRIC_MS_SSIM_MIN_SIDE, "MS-SSIM", &pa, &pb, err)) return -1;
    size_t area = (size_t)pa.width * (size_t)pa.height;
    double sum = 0;
    int rc = 0;
    for (int c = 0; c < pa.n && rc == 0; c++) {
        double v = 0;
        rc = ms_ssim_plane(pa.data + c * area, pb.data + c * area, pa.width, pa.height, &v, err);
        sum += v;
    }
    *ms_ssim = sum / pa.n;
    free(pa.data);
    free(pb.data);
    return rc;
}

int metric_mse(const struct img *a, const struct img *b, enum metric_planes planes, double *mse,
               struct eng_error *err)
{
    struct planes pa, pb;
    if (both_planes(a, b, planes, 1, "MSE", &pa, &pb, err)) return -1;
    size_t n = (size_t)pa.n * (size_t)pa.width * (size_t)pa.height;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (pa.data[i] - pb.data[i]) * (pa.data[i] - pb.data[i]);
    *mse = sum / (double)n;
    free(pa.data);
    free(pb.data);
    return 0;
}

double metric_psnr(double mse)
{
    return mse > 0 ? 10 * log10(DATA_RANGE * DATA_RANGE / mse) : INFINITY;
}

/* ---- LPIPS ----------------------------------------------------------------------------------- */

/* The threads of a parallel loop: `threads`, or OpenMP's default for 0. */
static int team(int threads)
{
    return threads > 0 ? threads : omp_get_max_threads();
}

void metric_lpips_inputs(struct img *const *images, int count, const float shift[3],
                         const float scale[3], float *out, int threads)
{
    /* Each channel's 256 possible inputs, computed once: the per-sample divisions took more time
     * than AlexNet's 3x3 convolutions at 64 px. */
    float table[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            table[c][v] = (float)((v / 127.5 - 1 - shift[c]) / scale[c]);
#pragma omp parallel for num_threads(team(threads))
    for (int i = 0; i < count; i++) {
        const struct img *im = images[i];
        size_t area = (size_t)im->width * (size_t)im->height;
        float *planes = out + (size_t)i * 3 * area;
        int grey = im->channels < 3;
        for (int y = 0; y < im->height; y++) {
            const uint8_t *px = img_row(im, y);
            float *at = planes + (size_t)y * (size_t)im->width;
            for (int x = 0; x < im->width; x++, px += im->channels)
                for (int c = 0; c < 3; c++)
                    at[(size_t)c * area + (size_t)x] = table[c][px[grey ? 0 : c]];
        }
    }
}

/* The weighted squared distance of the unit-normalised feature vectors of images i and j at each
 * position of one layer, into d (h * w). The tensors are channel-major, so every pass runs along
 * contiguous positions (one channel at a time) rather than striding across channels per
 * position: the loops vectorise, and the norms are turned into reciprocals once. scratch holds
 * 2 * h * w doubles. */
static void layer_distances(const struct metric_tensor *t, const float *weights, int i, int j,
                            double *d, double *scratch)
{
    size_t area = (size_t)t->h * (size_t)t->w, image = (size_t)t->c * area;
    const float *fi = t->data + (size_t)i * image, *fj = t->data + (size_t)j * image;
    double *ri = scratch, *rj = scratch + area;
    for (size_t p = 0; p < area; p++)
        ri[p] = rj[p] = d[p] = 0;
    for (int c = 0; c < t->c; c++) {
        const float *a = fi + (size_t)c * area, *b = fj + (size_t)c * area;
        for (size_t p = 0; p < area; p++) {
            ri[p] += (double)a[p] * a[p];
            rj[p] += (double)b[p] * b[p];
        }
    }
    for (size_t p = 0; p < area; p++) {
        ri[p] = 1 / (sqrt(ri[p]) + LPIPS_EPS);
        rj[p] = 1 / (sqrt(rj[p]) + LPIPS_EPS);
    }
    for (int c = 0; c < t->c; c++) {
        const float *a = fi + (size_t)c * area, *b = fj + (size_t)c * area;
        double w = weights ? weights[c] : 1.0;
        for (size_t p = 0; p < area; p++) {
            double diff = a[p] * ri[p] - b[p] * rj[p];
            d[p] += w * diff * diff;
        }
    }
}

/* One source coordinate of torch's bilinear upsampling (align_corners=False): the lower index,
 * the upper one and the weight of the upper. */
static void source_index(int dst, int in, int out, int *lo, int *hi, double *frac)
{
    double src = ((double)in / out) * (dst + 0.5) - 0.5;
    if (src < 0) src = 0;
    *lo = (int)src;
    *hi = *lo + (*lo < in - 1);
    *frac = src - *lo;
}

/* Adds the layer map d (h x w) upsampled to height x width into map. */
static void add_upsampled(const double *d, int h, int w, int height, int width, float *map)
{
    for (int y = 0; y < height; y++) {
        int y0, y1, x0, x1;
        double fy, fx;
        source_index(y, h, height, &y0, &y1, &fy);
        for (int x = 0; x < width; x++) {
            source_index(x, w, width, &x0, &x1, &fx);
            double top = d[(size_t)y0 * w + x0] * (1 - fx) + d[(size_t)y0 * w + x1] * fx;
            double bottom = d[(size_t)y1 * w + x0] * (1 - fx) + d[(size_t)y1 * w + x1] * fx;
            map[(size_t)y * width + x] += (float)(top * (1 - fy) + bottom * fy);
        }
    }
}

/* LPIPS of one pair whose indices were checked; -1 when memory runs out. */
static int lpips_pair(const struct metric_tensor *layers, const float *const *weights,
                      size_t n_layers, int i, int j, double *distance, int height, int width,
                      float *map)
{
    if (map) memset(map, 0, (size_t)height * (size_t)width * sizeof *map);
    *distance = 0;
    for (size_t k = 0; k < n_layers; k++) {
        const struct metric_tensor *t = &layers[k];
        size_t area = (size_t)t->h * (size_t)t->w;
        double *d = malloc(3 * area * sizeof *d), sum = 0;
        if (!d) return -1;
        layer_distances(t, weights[k], i, j, d, d + area);
        for (size_t p = 0; p < area; p++)
            sum += d[p];
        *distance += sum / (double)area;
        if (map) add_upsampled(d, t->h, t->w, height, width, map);
        free(d);
    }
    return 0;
}

int metric_lpips_pairs(const struct metric_tensor *layers, const float *const *weights,
                       size_t n_layers, const int *pairs, int n_pairs, double *distances,
                       int height, int width, float *const *maps, int threads,
                       struct eng_error *err)
{
    for (size_t k = 0; k < n_layers; k++) {
        const struct metric_tensor *t = &layers[k];
        if (t->c < 1 || t->h < 1 || t->w < 1)
            return eng_fail(err, ENG_INVALID, "LPIPS: layer %zu is empty (%d x %d x %d)", k, t->c,
                            t->h, t->w);
        for (int q = 0; q < 2 * n_pairs; q++)
            if (pairs[q] < 0 || pairs[q] >= t->n)
                return eng_fail(err, ENG_INVALID, "LPIPS: image %d is past layer %zu's %d",
                                pairs[q], k, t->n);
    }
    int failed = 0;
    /* Pairs are independent, and each is computed whole by one thread, so the results do not
     * depend on the thread count. */
#pragma omp parallel for schedule(dynamic) reduction(+ : failed) num_threads(team(threads))
    for (int k = 0; k < n_pairs; k++)
        failed += lpips_pair(layers, weights, n_layers, pairs[2 * k], pairs[2 * k + 1],
                             &distances[k], height, width, maps ? maps[k] : NULL) != 0;
    return failed ? eng_fail(err, ENG_NO_MEMORY, "out of memory for LPIPS") : 0;
}

/* ---- 2AFC ------------------------------------------------------------------------------------ */

double metric_2afc(const double *d0, const double *d1, const double *h, size_t n)
{
    double sum = 0;
    for (size_t k = 0; k < n; k++)
        sum += (d0[k] < d1[k]) * (1 - h[k]) + (d1[k] < d0[k]) * h[k] + 0.5 * (d0[k] == d1[k]);
    return n ? sum / (double)n : 0;
}

/* ---- .npy ------------------------------------------------------------------------------------ */

/* The element count of the header's 'shape': (a, b, ...); () is a scalar. -1 when malformed. */
static long long npy_shape_count(const char *header)
{
    const char *p = strstr(header, "'shape'");
    p = p ? strchr(p, '(') : NULL;
    if (!p) return -1;
    long long count = 1;
    for (p++; *p && *p != ')';) {
        char *end;
        long long dim = strtoll(p, &end, 10);
        if (end == p || dim < 0 || (dim > 0 && count > LLONG_MAX / dim)) return -1;
        count *= dim;
        p = end + strspn(end, ", ");
    }
    return *p == ')' ? count : -1;
}

int metric_npy_read(const void *data, size_t size, double **values, size_t *count,
                    struct eng_error *err)
{
    const unsigned char *b = data;
    *values = NULL;
    *count = 0;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0 || b[6] < 1 || b[6] > 3)
        return eng_fail(err, ENG_UNDECODABLE, "not a .npy file (format 1.0 to 3.0)");
    size_t len = b[6] == 1 ? b[8] | (size_t)b[9] << 8
                           : b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    size_t start = (b[6] == 1 ? 10 : 12) + len;
    char header[1024];
    if (start > size || len >= sizeof header)
        return eng_fail(err, ENG_UNDECODABLE, ".npy: the header is truncated or too long");
    memcpy(header, b + start - len, len);
    header[len] = '\0';
    int f4 = strstr(header, "'<f4'") != NULL, f8 = strstr(header, "'<f8'") != NULL;
    long long n = npy_shape_count(header);
    if ((!f4 && !f8) || !strstr(header, "'fortran_order': False") || n < 0)
        return eng_fail(err, ENG_UNSUPPORTED,
                        ".npy: needs little-endian float32 or float64 in C order: %s", header);
    size_t item = f4 ? 4 : 8;
    if ((size_t)n > (size - start) / item)
        return eng_fail(err, ENG_UNDECODABLE, ".npy: %lld values declared, fewer stored", n);
    *values = malloc(((size_t)n ? (size_t)n : 1) * sizeof **values);
    if (!*values) return eng_fail(err, ENG_NO_MEMORY, "out of memory for %lld values", n);
    for (size_t k = 0; k < (size_t)n; k++) {
        const unsigned char *at = b + start + k * item;
        if (f4) {
            float f;
            memcpy(&f, at, 4); /* little-endian hosts only, as the rest of the engine */
            (*values)[k] = f;
        } else {
            memcpy(&(*values)[k], at, 8);
        }
    }
    *count = (size_t)n;
    return 0;
}

int metric_npy_read_file(const char *path, double **values, size_t *count, struct eng_error *err)
{
    *values = NULL;
    FILE *f = fopen(path, "rb");
    long size = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || (size_t)size > NPY_MAX_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        if (f) fclose(f);
        return eng_fail(err, ENG_UNDECODABLE, "%s: not a readable file of at most %zu bytes", path,
                        NPY_MAX_BYTES);
    }
    unsigned char *buf = malloc((size_t)size + 1);
    int rc = buf && fread(buf, 1, (size_t)size, f) == (size_t)size ? 0 : -1;
    fclose(f);
    struct eng_error why = {0};
    if (rc == 0)
        rc = metric_npy_read(buf, (size_t)size, values, count, &why);
    else
        why = (struct eng_error){buf ? ENG_UNDECODABLE : ENG_NO_MEMORY, "cannot read it"};
    free(buf);
    return rc ? eng_fail(err, why.code, "%s: %s", path, why.message) : 0;
}

/* ---- BAPPS ----------------------------------------------------------------------------------- */

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The file names in dir (not starting with '.'), sorted; *names malloc'd with each name. */
static int list_names(const char *dir, char ***names, size_t *count, struct eng_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return eng_fail(err, ENG_UNDECODABLE, "%s: %s", dir, strerror(errno));
    size_t cap = 0;
    *names = NULL;
    *count = 0;
    struct dirent *e = NULL;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(*names, cap * sizeof *grown);
            if (!grown) break;
            *names = grown;
        }
        if (!((*names)[*count] = strdup(e->d_name))) break;
        (*count)++;
    }
    if (e) rc = eng_fail(err, ENG_NO_MEMORY, "out of memory listing %s", dir);
    closedir(d);
    if (*count) qsort(*names, *count, sizeof **names, by_string);
    return rc;
}

/* dir/sub/name, malloc'd; NULL when memory runs out. */
static char *path_of(const char *dir, const char *sub, const char *name)
{
    char *p;
    return asprintf(&p, "%s/%s/%s", dir, sub, name) < 0 ? NULL : p;
}

/* Triplet k's paths and judgement, the image checked to exist in p0/ and p1/. */
static int read_triplet(const char *dir, const char *name, struct metric_bapps *b, size_t k,
                        struct eng_error *err)
{
    const char *dot = strrchr(name, '.');
    int stem = dot ? (int)(dot - name) : (int)strlen(name);
    char *judge;
    if (asprintf(&judge, "%s/judge/%.*s.npy", dir, stem, name) < 0) judge = NULL;
    b->ref[k] = path_of(dir, "ref", name);
    b->p0[k] = path_of(dir, "p0", name);
    b->p1[k] = path_of(dir, "p1", name);
    if (!judge || !b->ref[k] || !b->p0[k] || !b->p1[k]) {
        free(judge);
        return eng_fail(err, ENG_NO_MEMORY, "out of memory reading %s", dir);
    }
    FILE *f0 = fopen(b->p0[k], "rb"), *f1 = fopen(b->p1[k], "rb");
    int missing = !f0 || !f1;
    if (f0) fclose(f0);
    if (f1) fclose(f1);
    double *h = NULL;
    size_t n = 0;
    int rc = missing ? eng_fail(err, ENG_INVALID, "%s: triplet %s lacks p0/%s or p1/%s", dir, name,
                                name, name)
                     : metric_npy_read_file(judge, &h, &n, err);
    if (rc == 0 && (n != 1 || !(h[0] >= 0 && h[0] <= 1)))
        rc = eng_fail(err, ENG_INVALID, "%s: must hold one number in [0, 1]", judge);
    if (rc == 0) b->h[k] = h[0];
    free(h);
    free(judge);
    return rc;
}

int metric_bapps_read(const char *dir, struct metric_bapps *out, struct eng_error *err)
{
    memset(out, 0, sizeof *out);
    char *ref = NULL, **names = NULL;
    size_t n = 0;
    if (asprintf(&ref, "%s/ref", dir) < 0)
        return eng_fail(err, ENG_NO_MEMORY, "out of memory reading %s", dir);
    int rc = list_names(ref, &names, &n, err);
    free(ref);
    if (rc == 0) {
        out->ref = calloc(n + 1, sizeof *out->ref);
        out->p0 = calloc(n + 1, sizeof *out->p0);
        out->p1 = calloc(n + 1, sizeof *out->p1);
        out->h = calloc(n + 1, sizeof *out->h);
        out->count = n;
        if (!out->ref || !out->p0 || !out->p1 || !out->h)
            rc = eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu triplets", n);
    }
    for (size_t k = 0; rc == 0 && k < n; k++)
        rc = read_triplet(dir, names[k], out, k, err);
    for (size_t k = 0; k < n; k++)
        free(names[k]);
    free(names);
    if (rc) metric_bapps_free(out);
    return rc;
}

void metric_bapps_free(struct metric_bapps *b)
{
    for (size_t k = 0; k < b->count; k++) {
        if (b->ref) free(b->ref[k]);
        if (b->p0) free(b->p0[k]);
        if (b->p1) free(b->p1[k]);
    }
    free(b->ref);
    free(b->p0);
    free(b->p1);
    free(b->h);
    memset(b, 0, sizeof *b);
}
