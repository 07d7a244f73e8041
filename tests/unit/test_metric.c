/* Unit tests of engine/metrics/metric.c: SSIM against skimage and LPIPS against its PyTorch
 * definition (fixtures that tests/parity/gen_lpips.py writes into the build folder; skipped when it
 * could not), MS-SSIM, PSNR and the 2AFC score against hand-computed cases, and a synthetic 2AFC
 * set every sane metric must score well on, written in the BAPPS layout and read back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/codec.h"
#include "metrics/metric.h"
#include "nn/nn.h"

#define SSIM_TOLERANCE  1e-4
#define LPIPS_TOLERANCE 1e-5

static const char *fixtures; /* gen_lpips.py's output folder */

/* ---- Helpers --------------------------------------------------------------------------------- */

static struct img *constant_image(int w, int h, int channels, uint8_t value)
{
    struct img *im = img_new(w, h, channels, NULL);
    assert_non_null(im);
    memset(im->data, value, im->stride * (size_t)h);
    return im;
}

/* A smooth random image: sums of sines with random phases, so every metric sees structure. */
static struct img *smooth_image(int w, int h, unsigned seed)
{
    struct img *im = img_new(w, h, 3, NULL);
    assert_non_null(im);
    srand(seed);
    double phase[6];
    for (int i = 0; i < 6; i++)
        phase[i] = rand() / (double)RAND_MAX * 6.28;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img_row(im, y)[3 * x + c] =
                    (uint8_t)(128 + 60 * sin(x * 0.21 + phase[c]) * cos(y * 0.17 + phase[c + 3]) +
                              40 * sin((x + y) * 0.05 + c));
    return im;
}

/* im plus Gaussian-like noise of the given strength (a sum of uniforms), clamped. */
static struct img *noisy(const struct img *im, double strength, unsigned seed)
{
    struct img *out = img_clone(im, NULL);
    assert_non_null(out);
    srand(seed);
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width * im->channels; x++) {
            double n = 0;
            for (int k = 0; k < 4; k++)
                n += rand() / (double)RAND_MAX - 0.5;
            double v = img_row(im, y)[x] + strength * n;
            img_row(out, y)[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
    return out;
}

static char *path_in(const char *dir, const char *name)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static struct img *load_png(const char *dir, const char *name)
{
    char *path = path_in(dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    free(path);
    struct eng_error err = {0};
    struct img *im = img_decode(buf, n, NULL, NULL, &err);
    if (!im) fail_msg("%s: %s", name, err.message);
    return im;
}

/* gen_lpips.py's manifest; NULL (the test skipped) when it recorded why it could not run. */
static json_t *manifest(void)
{
    char *path = path_in(fixtures, "expected.json");
    json_t *doc = json_load_file(path, 0, NULL);
    free(path);
    if (!doc) fail_msg("%s/expected.json is missing: run tests/parity/gen_lpips.py", fixtures);
    if (json_object_get(doc, "skipped")) {
        fprintf(stderr, "skipped: %s\n", json_string_value(json_object_get(doc, "skipped")));
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* ---- SSIM, MS-SSIM, PSNR --------------------------------------------------------------------- */

static void test_ssim_matches_skimage(void **state)
{
    json_t *doc = manifest();
    if (!doc) skip();
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(doc, "pairs"), i, pair)
    {
        struct img *a = load_png(fixtures, json_string_value(json_object_get(pair, "a")));
        struct img *b = load_png(fixtures, json_string_value(json_object_get(pair, "b")));
        double rgb, luma;
        struct eng_error err = {0};
        assert_int_equal(metric_ssim(a, b, METRIC_RGB, &rgb, &err), 0);
        assert_int_equal(metric_ssim(a, b, METRIC_LUMA, &luma, &err), 0);
        assert_true(fabs(rgb - json_real_value(json_object_get(pair, "ssim_rgb"))) <
                    SSIM_TOLERANCE);
        assert_true(fabs(luma - json_real_value(json_object_get(pair, "ssim_luma"))) <
                    SSIM_TOLERANCE);
        img_free(a);
        img_free(b);
    }
    json_decref(doc);
}

/* Constant images: the variances and covariance are 0, so SSIM is its luminance term
 * (2 x y + C1) / (x^2 + y^2 + C1) and every contrast-structure term is C2 / C2 = 1: MS-SSIM is
 * that luminance term to the fifth weight. */
static void test_constant_images(void **state)
{
    struct img *a = constant_image(176, 180, 3, 100), *b = constant_image(176, 180, 3, 120);
    const double c1 = (0.01 * 255) * (0.01 * 255);
    double l = (2.0 * 100 * 120 + c1) / (100.0 * 100 + 120.0 * 120 + c1), v;
    struct eng_error err = {0};
    assert_int_equal(metric_ssim(a, b, METRIC_RGB, &v, &err), 0);
    assert_true(fabs(v - l) < 1e-12);
    assert_int_equal(metric_ms_ssim(a, b, METRIC_LUMA, &v, &err), 0);
    assert_true(fabs(v - pow(l, 0.1333)) < 1e-12);
    assert_int_equal(metric_mse(a, b, METRIC_RGB, &v, &err), 0);
    assert_true(fabs(v - 400) < 1e-12);
    assert_true(fabs(metric_psnr(v) - 10 * log10(65025.0 / 400)) < 1e-12);
    assert_true(fabs(metric_psnr(v) - 22.1102) < 1e-4); /* by hand: 10 log10(162.5625) */
    assert_int_equal(metric_mse(a, a, METRIC_RGB, &v, &err), 0);
    assert_true(isinf(metric_psnr(v)) && metric_psnr(v) > 0);
    assert_int_equal(metric_ms_ssim(a, a, METRIC_RGB, &v, &err), 0);
    assert_true(fabs(v - 1) < 1e-12);
    img_free(a);
    img_free(b);
}

/* A checkerboard against its negation: the structure is anti-correlated at full scale, so the
 * first contrast-structure term is negative and taken as 0 (MS-SSIM 0), where SSIM is negative. */
static void test_anticorrelated(void **state)
{
    struct img *a = img_new(192, 192, 1, NULL), *b = img_new(192, 192, 1, NULL);
    for (int y = 0; y < 192; y++)
        for (int x = 0; x < 192; x++) {
            img_row(a, y)[x] = (uint8_t)((x + y) % 2 ? 200 : 50);
            img_row(b, y)[x] = (uint8_t)(250 - img_row(a, y)[x]);
        }
    double ssim, ms;
    struct eng_error err = {0};
    assert_int_equal(metric_ssim(a, b, METRIC_RGB, &ssim, &err), 0);
    assert_true(ssim < 0);
    assert_int_equal(metric_ms_ssim(a, b, METRIC_RGB, &ms, &err), 0);
    assert_true(ms == 0);
    img_free(a);
    img_free(b);
}

static void test_bad_sizes(void **state)
{
    struct img *a = constant_image(175, 200, 3, 9), *b = constant_image(175, 200, 3, 9);
    struct img *c = constant_image(10, 40, 3, 9), *d = constant_image(10, 40, 3, 9);
    double v;
    struct eng_error err = {0};
    assert_int_equal(metric_ms_ssim(a, b, METRIC_RGB, &v, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "176x176"));
    assert_int_equal(metric_ssim(c, d, METRIC_RGB, &v, &err), -1);
    assert_non_null(strstr(err.message, "11x11"));
    assert_int_equal(metric_mse(a, c, METRIC_RGB, &v, &err), -1);
    assert_non_null(strstr(err.message, "175x200 and 10x40"));
    img_free(a);
    img_free(b);
    img_free(c);
    img_free(d);
}

/* ---- LPIPS ----------------------------------------------------------------------------------- */

struct backbone {
    struct nn_graph *graph;
    size_t n_taps;
    const char *taps[16];
    float *weights[16];
    json_t *config;
};

static void load_backbone(const char *name, struct backbone *b)
{
    memset(b, 0, sizeof *b);
    char *dir, *path;
    assert_true(asprintf(&dir, "%s/models/%s", fixtures, name) > 0);
    struct eng_error err = {0};
    path = path_in(dir, "model.onnx");
    b->graph = nn_graph_read_file(path, &err);
    free(path);
    if (!b->graph) fail_msg("%s: %s", name, err.message);
    path = path_in(dir, "config.json");
    b->config = json_load_file(path, 0, NULL);
    free(path);
    json_t *p = json_object_get(b->config, "perceptual");
    b->n_taps = json_array_size(json_object_get(p, "taps"));
    for (size_t k = 0; k < b->n_taps; k++) {
        b->taps[k] = json_string_value(json_array_get(json_object_get(p, "taps"), k));
        double *values;
        size_t count;
        path = path_in(dir, json_string_value(json_array_get(json_object_get(p, "lin"), k)));
        assert_int_equal(metric_npy_read_file(path, &values, &count, &err), 0);
        free(path);
        b->weights[k] = malloc(count * sizeof(float));
        for (size_t c = 0; c < count; c++)
            b->weights[k][c] = (float)values[c];
        free(values);
    }
    free(dir);
}

static void free_backbone(struct backbone *b)
{
    for (size_t k = 0; k < b->n_taps; k++)
        free(b->weights[k]);
    nn_graph_free(b->graph);
    json_decref(b->config);
}

/* The taps of a batch of n images through the backbone; tensors[k] owns its data. */
static void run_taps(const struct backbone *b, struct img *const *images, int n,
                     struct metric_tensor *tensors)
{
    static const float shift[3] = {-0.030f, -0.088f, -0.188f}, scale[3] = {0.458f, 0.448f, 0.450f};
    int w = images[0]->width, h = images[0]->height;
    size_t per = (size_t)3 * w * h;
    float *input = malloc((size_t)n * per * sizeof *input);
    metric_lpips_inputs(images, n, shift, scale, input, 2);
    struct nn_tensor_info shape = {.dtype = NN_FLOAT, .rank = 4, .dims = {n, 3, h, w}};
    struct nn_plan_options options = {.taps = b->taps, .n_taps = b->n_taps};
    struct eng_error err = {0};
    struct nn_plan *plan = nn_plan_compile_with(b->graph, &shape, 1, &options, &err);
    if (!plan) fail_msg("compile: %s", err.message);
    size_t n_out = nn_plan_output_count(plan);
    float *outputs[32];
    struct nn_tensor_info info[32];
    assert_int_equal(nn_plan_run(plan, (const float *const *)&input, outputs, info, &err), 0);
    size_t first = n_out - b->n_taps;
    for (size_t k = 0; k < first; k++)
        free(outputs[k]);
    for (size_t k = 0; k < b->n_taps; k++) {
        const struct nn_tensor_info *t = &info[first + k];
        tensors[k] = (struct metric_tensor){outputs[first + k], (int)t->dims[0], (int)t->dims[1],
                                            (int)t->dims[2], (int)t->dims[3]};
    }
    nn_plan_free(plan);
    free(input);
}

static void check_pair(const struct backbone *b, json_t *pair, json_t *expected)
{
    struct img *images[2] = {load_png(fixtures, json_string_value(json_object_get(pair, "a"))),
                             load_png(fixtures, json_string_value(json_object_get(pair, "b")))};
    int w = images[0]->width, h = images[0]->height;
    /* The pair twice: with four images, AlexNet's 3x3 layers at 64 px run as the executor's
     * small-map products, as a server batch of pairs does. */
    struct img *batch[4] = {images[0], images[1], images[0], images[1]};
    struct metric_tensor tensors[16];
    run_taps(b, batch, 4, tensors);
    float *map = malloc((size_t)w * h * sizeof *map);
    double d;
    struct eng_error err = {0};
    const float *const *weights = (const float *const *)b->weights;
    assert_int_equal(
        metric_lpips_pairs(tensors, weights, b->n_taps, (int[]){0, 1}, 1, &d, h, w, &map, 1, &err),
        0);
    double want = json_real_value(json_object_get(expected, "distance"));
    if (fabs(d - want) > LPIPS_TOLERANCE) fail_msg("LPIPS %.9f, PyTorch %.9f", d, want);
    double *ref;
    size_t count;
    char *path = path_in(fixtures, json_string_value(json_object_get(expected, "map")));
    assert_int_equal(metric_npy_read_file(path, &ref, &count, &err), 0);
    free(path);
    assert_int_equal(count, (size_t)w * h);
    double worst = 0;
    for (size_t i = 0; i < count; i++)
        worst = fmax(worst, fabs(map[i] - ref[i]));
    if (worst > LPIPS_TOLERANCE) fail_msg("spatial LPIPS is %.3g from PyTorch's", worst);
    /* On two threads: the same pair again (the same bits), the other way round, and an image
     * against itself. */
    double again[3];
    assert_int_equal(metric_lpips_pairs(tensors, weights, b->n_taps, (int[]){0, 1, 1, 0, 1, 1}, 3,
                                        again, h, w, NULL, 2, &err),
                     0);
    assert_true(again[0] == d);
    assert_true(fabs(again[1] - d) < 1e-12);
    assert_true(again[2] == 0);
    for (size_t k = 0; k < b->n_taps; k++)
        free((float *)tensors[k].data);
    free(ref);
    free(map);
    img_free(images[0]);
    img_free(images[1]);
}

/* The working set a pair of 100x100 images needs, counted from what the metrics allocate: both
 * images' planes in double (3 planes for colour, 1 for luma or two greyscale images) and, for
 * SSIM, seven maps of one plane. */
static void test_working_bytes(void **state)
{
    struct eng_error err = {0};
    struct img *rgb = img_new(100, 100, 3, &err), *grey = img_new(100, 100, 1, &err);
    const double area = 100 * 100;
    assert_true(metric_working_bytes(rgb, rgb, METRIC_RGB, 1) == area * (2 * 3 + 7) * 8);
    assert_true(metric_working_bytes(rgb, rgb, METRIC_LUMA, 1) == area * (2 * 1 + 7) * 8);
    assert_true(metric_working_bytes(rgb, rgb, METRIC_RGB, 0) == area * 2 * 3 * 8);
    assert_true(metric_working_bytes(grey, grey, METRIC_RGB, 1) == area * (2 * 1 + 7) * 8);
    assert_true(metric_working_bytes(grey, rgb, METRIC_RGB, 0) == area * 2 * 3 * 8);
    img_free(rgb);
    img_free(grey);
}

static void test_lpips_matches_pytorch(void **state)
{
    json_t *doc = manifest();
    if (!doc) skip();
    size_t m, i;
    json_t *name, *pair;
    json_array_foreach(json_object_get(doc, "models"), m, name)
    {
        struct backbone b;
        load_backbone(json_string_value(name), &b);
        json_array_foreach(json_object_get(doc, "pairs"), i, pair) check_pair(
            &b, pair, json_object_get(json_object_get(pair, "lpips"), json_string_value(name)));
        free_backbone(&b);
    }
    json_decref(doc);
}

static void test_lpips_refuses_bad_indices(void **state)
{
    float data[2 * 3 * 2 * 2] = {0};
    struct metric_tensor t = {data, 2, 3, 2, 2};
    const float *weights[1] = {NULL};
    double d;
    struct eng_error err = {0};
    assert_int_equal(metric_lpips_pairs(&t, weights, 1, (int[]){0, 2}, 1, &d, 4, 4, NULL, 1, &err),
                     -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(metric_lpips_pairs(&t, weights, 1, (int[]){-1, 0}, 1, &d, 4, 4, NULL, 1, &err),
                     -1);
    assert_int_equal(err.code, ENG_INVALID);
    /* All-zero features normalise to 0 (the eps keeps the division finite). */
    assert_int_equal(metric_lpips_pairs(&t, weights, 1, (int[]){0, 1}, 1, &d, 4, 4, NULL, 1, &err),
                     0);
    assert_true(d == 0);
}

/* ---- 2AFC ------------------------------------------------------------------------------------ */

static void test_2afc_formula(void **state)
{
    /* Agreement weighted by 1 - h, disagreement by h, and ties by a half whatever h is. */
    const double d0[] = {1, 2, 3, 3, 5}, d1[] = {2, 1, 3, 3, 4}, h[] = {0.25, 0.5, 1, 0, 0.9};
    /* 0.75 + 0.5 + 0.5 + 0.5 + 0.9 */
    assert_true(fabs(metric_2afc(d0, d1, h, 5) - 3.15 / 5) < 1e-12);
    assert_true(metric_2afc(d0, d1, h, 0) == 0);
}

/* A .npy of one value of type descr ('<f8' or another) and shape (1,), as BAPPS's judge files:
 * its bytes into out; returns their count. */
static size_t npy_one(const char *descr, double v, unsigned char out[192])
{
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (1,), }", descr);
    while ((10 + len + 1) % 64)
        header[len++] = ' ';
    header[len++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)len, 0};
    memcpy(out, pre, 10);
    memcpy(out + 10, header, (size_t)len);
    memcpy(out + 10 + len, &v, 8);
    return 10 + (size_t)len + 8;
}

static void write_judge(const char *path, double v)
{
    unsigned char bytes[192];
    size_t n = npy_one("<f8", v, bytes);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void write_png(const char *dir, const char *sub, int k, const struct img *im)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%03d.png", dir, sub, k);
    void *png;
    size_t size;
    struct eng_error err = {0};
    assert_int_equal(img_encode(im, IMG_PNG, 0, NULL, &png, &size, &err), 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(png, 1, size, f);
    fclose(f);
    free(png);
}

#define TRIPLETS 24

/* Triplets whose p0 and p1 carry the same noise at two strengths; h says which is weaker (0: p0,
 * everyone judged it closer). Written in the BAPPS layout, so the reader is tested too. */
static void make_bapps(const char *dir)
{
    static const char *const subs[] = {"ref", "p0", "p1", "judge"};
    char path[512];
    for (int s = 0; s < 4; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, subs[s]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    for (int k = 0; k < TRIPLETS; k++) {
        struct img *ref = smooth_image(176, 176, 100u + (unsigned)k);
        struct img *weak = noisy(ref, 20, 7u * (unsigned)k), *strong = noisy(ref, 80, 7u * k + 1);
        int h = k % 3 == 0;
        write_png(dir, "ref", k, ref);
        write_png(dir, "p0", k, h ? strong : weak);
        write_png(dir, "p1", k, h ? weak : strong);
        snprintf(path, sizeof path, "%s/judge/%03d.npy", dir, k);
        write_judge(path, h);
        img_free(ref);
        img_free(weak);
        img_free(strong);
    }
}

/* Distances of every triplet by a pixel metric, made a distance: 1 - SSIM, 1 - MS-SSIM, MSE. */
static double pixel_distance(int metric, const struct img *a, const struct img *b)
{
    double v;
    struct eng_error err = {0};
    int rc = metric == 0   ? metric_ssim(a, b, METRIC_RGB, &v, &err)
             : metric == 1 ? metric_ms_ssim(a, b, METRIC_RGB, &v, &err)
                           : metric_mse(a, b, METRIC_RGB, &v, &err);
    assert_int_equal(rc, 0);
    return metric < 2 ? 1 - v : v;
}

static void test_2afc_synthetic(void **state)
{
    char dir[] = "/tmp/test-metric-XXXXXX";
    assert_non_null(mkdtemp(dir));
    make_bapps(dir);
    struct metric_bapps b;
    struct eng_error err = {0};
    assert_int_equal(metric_bapps_read(dir, &b, &err), 0);
    assert_int_equal(b.count, TRIPLETS);
    double d0[TRIPLETS], d1[TRIPLETS];
    for (int metric = 0; metric < 3; metric++) {
        for (size_t k = 0; k < b.count; k++) {
            struct img *ref = load_png("/", b.ref[k]), *p0 = load_png("/", b.p0[k]),
                       *p1 = load_png("/", b.p1[k]);
            d0[k] = pixel_distance(metric, ref, p0);
            d1[k] = pixel_distance(metric, ref, p1);
            img_free(ref);
            img_free(p0);
            img_free(p1);
        }
        double score = metric_2afc(d0, d1, b.h, b.count);
        if (score <= 0.9) fail_msg("metric %d scores %.3f", metric, score);
    }
    json_t *doc = manifest();
    if (doc) {
        struct backbone alex;
        load_backbone("alex", &alex);
        for (size_t k = 0; k < b.count; k++) {
            struct img *im[3] = {load_png("/", b.ref[k]), load_png("/", b.p0[k]),
                                 load_png("/", b.p1[k])};
            struct metric_tensor t[16];
            run_taps(&alex, im, 3, t);
            const float *const *w = (const float *const *)alex.weights;
            double d[2];
            assert_int_equal(metric_lpips_pairs(t, w, alex.n_taps, (int[]){0, 1, 0, 2}, 2, d, 0, 0,
                                                NULL, 1, &err),
                             0);
            d0[k] = d[0];
            d1[k] = d[1];
            for (int i = 0; i < 3; i++)
                img_free(im[i]);
            for (size_t l = 0; l < alex.n_taps; l++)
                free((float *)t[l].data);
        }
        double score = metric_2afc(d0, d1, b.h, b.count);
        if (score <= 0.9) fail_msg("LPIPS (alex) scores %.3f", score);
        free_backbone(&alex);
        json_decref(doc);
    }
    metric_bapps_free(&b);
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    assert_int_equal(system(command), 0);
}

static void test_bapps_refuses_incomplete(void **state)
{
    char dir[] = "/tmp/test-metric-XXXXXX", path[512];
    assert_non_null(mkdtemp(dir));
    make_bapps(dir);
    snprintf(path, sizeof path, "%s/p1/005.png", dir);
    assert_int_equal(unlink(path), 0);
    struct metric_bapps b;
    struct eng_error err = {0};
    assert_int_equal(metric_bapps_read(dir, &b, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "005.png"));
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

static void test_npy(void **state)
{
    double *v;
    size_t n;
    unsigned char bytes[192];
    struct eng_error err = {0};
    assert_int_equal(metric_npy_read("garbage!!!!", 11, &v, &n, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    assert_int_equal(metric_npy_read(bytes, npy_one(">f8", 1, bytes), &v, &n, &err), -1);
    assert_int_equal(err.code, ENG_UNSUPPORTED);
    assert_int_equal(metric_npy_read(bytes, npy_one("<f8", 0.25, bytes) - 1, &v, &n, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    assert_int_equal(metric_npy_read(bytes, npy_one("<f8", 0.25, bytes), &v, &n, &err), 0);
    assert_true(n == 1 && v[0] == 0.25);
    free(v);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_metric LPIPS_FIXTURES_DIR\n");
        return 2;
    }
    fixtures = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssim_matches_skimage),
        cmocka_unit_test(test_constant_images),
        cmocka_unit_test(test_anticorrelated),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_working_bytes),
        cmocka_unit_test(test_lpips_matches_pytorch),
        cmocka_unit_test(test_lpips_refuses_bad_indices),
        cmocka_unit_test(test_2afc_formula),
        cmocka_unit_test(test_2afc_synthetic),
        cmocka_unit_test(test_bapps_refuses_incomplete),
        cmocka_unit_test(test_npy),
    };
    return cmocka_run_group_tests_name("metric", tests, NULL, NULL);
}
