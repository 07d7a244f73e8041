/* POST /v1/similarity, /v1/similarity/batch, /v1/similarity/2afc and `augserve eval-2afc` against
 * the real binary. The models and the expected LPIPS and SSIM come from tests/parity/gen_lpips.py
 * (PyTorch and skimage), whose output folder is the third argument; without it (no torch) the
 * LPIPS cases skip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "image/codec.h"

#define LPIPS_TOLERANCE 1e-5
#define SSIM_TOLERANCE  1e-4

static const char *fixtures;
static json_t *expected; /* gen_lpips.py's expected.json; NULL when it was skipped */

static char *fixture_file(const char *name, size_t *size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    return harness_read_file(path, size);
}

static json_t *pair_case(size_t i)
{
    return json_array_get(json_object_get(expected, "pairs"), i);
}

static double lpips_of(size_t i, const char *model)
{
    json_t *m = json_object_get(json_object_get(pair_case(i), "lpips"), model);
    return json_real_value(json_object_get(m, "distance"));
}

static void skip_without_fixtures(void)
{
    if (!expected) skip();
}

/* Copies the fixture model name into the repository as as, then rewrites its config.json's
 * perceptual member key to value (when key is not NULL; value is stolen). */
static void add_model(const char *name, const char *as, const char *key, json_t *value)
{
    char command[3 * PATH_MAX], path[PATH_MAX];
    snprintf(command, sizeof command, "cp -r '%s/models/%s' '%s/%s'", fixtures, name,
             harness_models_dir(), as);
    if (system(command) != 0) fail_msg("cannot copy the model: %s", command);
    if (!key) return;
    snprintf(path, sizeof path, "%s/%s/config.json", harness_models_dir(), as);
    json_t *config = json_load_file(path, 0, NULL);
    assert_non_null(config);
    json_object_set_new(json_object_get(config, "perceptual"), key, value);
    assert_int_equal(json_dump_file(config, path, 0), 0);
    json_decref(config);
}

/* The repository: alex and squeeze as generated; baseline (lin false); badtaps (two names the
 * graph lacks); negative (a negative weight in its first layer); chunked (alex run two images at
 * a time: max_batch 2). */
static struct server *start_with_models(void **state)
{
    add_model("alex", "alex", NULL, NULL);
    add_model("alex", "chunked", NULL, NULL);
    char chunked[PATH_MAX];
    snprintf(chunked, sizeof chunked, "%s/chunked/config.json", harness_models_dir());
    json_t *chunked_config = json_load_file(chunked, 0, NULL);
    assert_non_null(chunked_config);
    json_object_set_new(chunked_config, "max_batch", json_integer(2));
    assert_int_equal(json_dump_file(chunked_config, chunked, 0), 0);
    json_decref(chunked_config);
    add_model("squeeze", "squeeze", NULL, NULL);
    add_model("alex", "baseline", "lin", json_false());
    add_model("alex", "badtaps", "taps",
              json_pack("[s, s, s, s, s]", "out0", "nope1", "out2", "out3", "nope4"));
    add_model("alex", "negative", NULL, NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/negative/lin0.json", harness_models_dir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[0.5, -0.25", f);
    for (int c = 2; c < 64; c++)
        fputs(", 0.1", f);
    fputs("]", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/negative/config.json", harness_models_dir());
    json_t *config = json_load_file(path, 0, NULL);
    json_array_set_new(json_object_get(json_object_get(config, "perceptual"), "lin"), 0,
                       json_string("lin0.json"));
    assert_int_equal(json_dump_file(config, path, 0), 0);
    json_decref(config);
    return harness_start_with_models(state, "");
}

/* Posts files (fixture names) as parts named by roles, plus form fields (name, value pairs,
 * NULL-terminated). */
static json_t *post_parts(const struct server *srv, const char *path, const char *const *roles,
                          const char *const *files, int n, const char *const *fields, long status,
                          struct http_response *r)
{
    struct http_part parts[16];
    char *data[8];
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        size_t size;
        data[i] = fixture_file(files[i], &size);
        parts[count++] = (struct http_part){roles[i], files[i], "image/png", data[i], size};
    }
    for (; fields && fields[0]; fields += 2)
        parts[count++] = (struct http_part){fields[0], NULL, NULL, fields[1], strlen(fields[1])};
    struct http_request req = {.path = path, .parts = parts, .part_count = count};
    http_send(srv, &req, r);
    for (int i = 0; i < n; i++)
        free(data[i]);
    assert_status(r, status);
    return status == 200 ? http_json(r) : NULL;
}

static const char *const ab[] = {"a", "b"};

static char *base64_file(const char *name)
{
    size_t size;
    char *data = fixture_file(name, &size);
    char *out = malloc(4 * ((size + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)size);
    free(data);
    return out;
}

static double metric(json_t *doc, const char *name)
{
    json_t *v = json_object_get(json_object_get(doc, "metrics"), name);
    if (!json_is_number(v)) fail_msg("metrics.%s is missing", name);
    return json_number_value(v);
}

/* ---- Tests ----------------------------------------------------------------------------------- */

/* With no model, the pixel metrics are served and LPIPS is skipped, or refused when asked for. */
static void test_pixel_metrics_without_models(void **state)
{
    skip_without_fixtures();
    struct server *srv = harness_start(state, NULL);
    const char *files[] = {"pair0_a.png", "pair0_b.png"};
    struct http_response r;
    json_t *doc = post_parts(srv, "/v1/similarity", ab, files, 2, NULL, 200, &r);
    double ssim = json_real_value(json_object_get(pair_case(0), "ssim_rgb"));
    assert_true(fabs(metric(doc, "ssim") - ssim) < SSIM_TOLERANCE);
    assert_true(fabs(metric(doc, "psnr") - 10 * log10(65025 / metric(doc, "l2"))) < 1e-9);
    json_t *skipped = json_object_get(doc, "skipped");
    assert_contains(json_string_value(json_object_get(skipped, "lpips")), "perceptual");
    assert_contains(json_string_value(json_object_get(skipped, "ms_ssim")), "176x176");
    json_decref(doc);
    http_response_free(&r);
    const char *luma[] = {"metrics", "ssim", "channels", "luma", NULL};
    doc = post_parts(srv, "/v1/similarity", ab, files, 2, luma, 200, &r);
    ssim = json_real_value(json_object_get(pair_case(0), "ssim_luma"));
    assert_true(fabs(metric(doc, "ssim") - ssim) < SSIM_TOLERANCE);
    json_decref(doc);
    http_response_free(&r);
    const char *lpips[] = {"metrics", "lpips", NULL};
    post_parts(srv, "/v1/similarity", ab, files, 2, lpips, 422, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "perceptual config");
    http_response_free(&r);
    harness_pass(state);
}

static void test_lpips_matches_pytorch(void **state)
{
    skip_without_fixtures();
    struct server *srv = start_with_models(state);
    const char *files[] = {"pair1_a.png", "pair1_b.png"};
    const char *fields[] = {"model", "alex", "metrics", "lpips,ssim", "spatial", "true", NULL};
    struct http_response r;
    json_t *doc = post_parts(srv, "/v1/similarity", ab, files, 2, fields, 200, &r);
    assert_true(fabs(metric(doc, "lpips") - lpips_of(1, "alex")) < LPIPS_TOLERANCE);
    assert_string_equal(json_str(doc, "model"), "alex");
    /* The map: a greyscale PNG of the images' size, white at map_max. */
    const char *b64 = json_str(doc, "map");
    unsigned char *png = malloc(strlen(b64));
    int n = EVP_DecodeBlock(png, (const unsigned char *)b64, (int)strlen(b64));
    struct eng_error err = {0};
    struct img *map = img_decode(png, (size_t)n, NULL, NULL, &err);
    assert_non_null(map);
    assert_int_equal(map->width, 67);
    assert_int_equal(map->height, 45);
    assert_int_equal(map->channels, 1);
    assert_true(json_real_value(json_object_get(doc, "map_max")) > 0);
    img_free(map);
    free(png);
    json_decref(doc);
    http_response_free(&r);
    /* JSON with base64, and the other backbone. */
    char *a = base64_file("pair2_a.png"), *b = base64_file("pair2_b.png");
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:[s]}", "a", a, "b", b, "model", "squeeze", "metrics", "lpips");
    char *text = json_dumps(body, 0);
    http_post(srv, "/v1/similarity", "application/json", text, strlen(text), &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    assert_true(fabs(metric(doc, "lpips") - lpips_of(2, "squeeze")) < LPIPS_TOLERANCE);
    json_decref(doc);
    http_response_free(&r);
    free(text);
    json_decref(body);
    free(a);
    free(b);
    harness_pass(state);
}

/* GET /v1/models/{name}'s "perceptual": the taps when the section loaded, the reason when not. */
static json_t *perceptual_of(const struct server *srv, const char *model)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/models/%s", model);
    struct http_response r;
    http_get(srv, path, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r), *p = json_incref(json_object_get(doc, "perceptual"));
    json_decref(doc);
    http_response_free(&r);
    return p;
}

static void test_bad_input(void **state)
{
    skip_without_fixtures();
    struct server *srv = start_with_models(state);
    json_t *p = perceptual_of(srv, "alex");
    assert_string_equal(json_str(p, "status"), "ready");
    assert_int_equal(json_array_size(json_object_get(p, "taps")), 5);
    assert_true(json_is_true(json_object_get(p, "lin")));
    json_decref(p);
    p = perceptual_of(srv, "badtaps");
    assert_string_equal(json_str(p, "status"), "unavailable");
    assert_contains(json_str(p, "reason"), "nope1");
    assert_contains(json_str(p, "reason"), "nope4");
    json_decref(p);
    p = perceptual_of(srv, "negative");
    assert_string_equal(json_str(p, "status"), "unavailable");
    json_decref(p);
    struct http_response r;
    const char *mismatched[] = {"pair0_a.png", "pair1_b.png"};
    post_parts(srv, "/v1/similarity", ab, mismatched, 2, NULL, 422, &r);
    assert_contains(r.body, "resize=true");
    http_response_free(&r);
    const char *resize[] = {"resize", "true", "model", "alex", NULL};
    json_decref(post_parts(srv, "/v1/similarity", ab, mismatched, 2, resize, 200, &r));
    http_response_free(&r);
    /* An image smaller than AlexNet's taps allow: the minimum is named. */
    struct img *tiny = img_new(12, 12, 3, NULL);
    memset(tiny->data, 90, tiny->stride * 12);
    void *png;
    size_t size;
    assert_int_equal(img_encode(tiny, IMG_PNG, 0, NULL, &png, &size, NULL), 0);
    img_free(tiny);
    struct http_part parts[] = {{"a", "a.png", "image/png", png, size},
                                {"b", "b.png", "image/png", png, size},
                                {"metrics", NULL, NULL, "lpips", 5}};
    struct http_request req = {.path = "/v1/similarity", .parts = parts, .part_count = 3};
    http_send(srv, &req, &r);
    assert_status(&r, 422);
    assert_contains(r.body, "needs images of at least");
    http_response_free(&r);
    parts[1] = (struct http_part){"b", "b.png", "image/png", "garbage", 7};
    http_send(srv, &req, &r);
    assert_status(&r, 415);
    assert_contains(r.body, "b: ");
    http_response_free(&r);
    free(png);
    /* Perceptual configs refused at load, with the reason. */
    const char *files[] = {"pair0_a.png", "pair0_b.png"};
    const char *badtaps[] = {"model", "badtaps", NULL}, *negative[] = {"model", "negative", NULL};
    post_parts(srv, "/v1/similarity", ab, files, 2, badtaps, 422, &r);
    assert_contains(r.body, "no values named nope1, nope4");
    http_response_free(&r);
    post_parts(srv, "/v1/similarity", ab, files, 2, negative, 422, &r);
    assert_contains(r.body, "weight 1 is -0.25");
    http_response_free(&r);
    const char *baseline[] = {"model", "baseline", "metrics", "lpips", NULL};
    json_t *doc = post_parts(srv, "/v1/similarity", ab, files, 2, baseline, 200, &r);
    assert_true(metric(doc, "lpips") > 0);
    json_decref(doc);
    http_response_free(&r);
    const char *unknown[] = {"metrics", "lpips,vif", NULL};
    post_parts(srv, "/v1/similarity", ab, files, 2, unknown, 422, &r);
    assert_contains(r.body, "unknown metric 'vif'");
    http_response_free(&r);
    harness_pass(state);
}

/* Pairs of two sizes in one batch give what they give one at a time. */
static void test_batch(void **state)
{
    skip_without_fixtures();
    struct server *srv = start_with_models(state);
    const char *roles[] = {"a", "b", "a", "b", "a", "b"};
    const char *files[] = {"pair0_a.png", "pair0_b.png", "pair1_a.png",
                           "pair1_b.png", "pair0_b.png", "pair0_a.png"};
    /* Pairs of mixed sizes go through the network a run of one size at a time. */
    const char *fields[] = {"model", "squeeze", "metrics", "lpips,psnr", NULL};
    struct http_response r;
    json_t *doc = post_parts(srv, "/v1/similarity/batch", roles, files, 6, fields, 200, &r);
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 3);
    const size_t which[] = {0, 1, 0};
    for (size_t k = 0; k < 3; k++) {
        double d = json_real_value(json_object_get(json_array_get(results, k), "lpips"));
        if (fabs(d - lpips_of(which[k], "squeeze")) > LPIPS_TOLERANCE)
            fail_msg("pair %zu: %.8f, PyTorch %.8f", k, d, lpips_of(which[k], "squeeze"));
    }
    json_decref(doc);
    http_response_free(&r);
    /* Three pairs of one size: alex runs the six images in one batch (the metric reading the
     * taps in place), chunked in three batches of two (the taps copied out); both give
     * PyTorch's distance, the same the other way round, and 0 for an image with itself. */
    const char *same[] = {"pair0_a.png", "pair0_b.png", "pair0_b.png",
                          "pair0_a.png", "pair0_a.png", "pair0_a.png"};
    const char *models[] = {"alex", "chunked"};
    for (size_t m = 0; m < 2; m++) {
        const char *alex_fields[] = {"model", models[m], "metrics", "lpips", NULL};
        doc = post_parts(srv, "/v1/similarity/batch", roles, same, 6, alex_fields, 200, &r);
        results = json_object_get(doc, "results");
        assert_int_equal(json_array_size(results), 3);
        for (size_t k = 0; k < 3; k++) {
            double d = json_real_value(json_object_get(json_array_get(results, k), "lpips"));
            double want = k < 2 ? lpips_of(0, "alex") : 0;
            if (fabs(d - want) > LPIPS_TOLERANCE)
                fail_msg("%s, pair %zu: %.8f, expected %.8f", models[m], k, d, want);
        }
        json_decref(doc);
        http_response_free(&r);
    }
    harness_pass(state);
}

static void test_2afc(void **state)
{
    skip_without_fixtures();
    struct server *srv = start_with_models(state);
    const char *roles[] = {"ref", "p0", "p1"};
    const char *files[] = {"pair0_a.png", "pair0_b.png", "pair0_a.png"};
    const char *fields[] = {"model", "alex", NULL};
    struct http_response r;
    json_t *doc = post_parts(srv, "/v1/similarity/2afc", roles, files, 3, fields, 200, &r);
    json_t *closer = json_object_get(doc, "closer");
    assert_string_equal(json_str(closer, "lpips"), "p1");
    assert_string_equal(json_str(closer, "ssim"), "p1");
    assert_string_equal(json_str(closer, "psnr"), "p1"); /* identical: PSNR is null (+inf) */
    assert_true(json_is_null(json_object_get(json_object_get(doc, "p1"), "psnr")));
    double d0 = json_real_value(json_object_get(json_object_get(doc, "p0"), "lpips"));
    assert_true(fabs(d0 - lpips_of(0, "alex")) < LPIPS_TOLERANCE);
    json_decref(doc);
    http_response_free(&r);
    harness_pass(state);
}

/* Writes a BAPPS folder of two triplets: ref = p0 (h 0: everyone judged p0 closer) and ref = p1
 * (h 0.75: most judged p1 closer); a sane metric scores 1 on the first, 0.75 on the second. */
static void write_bapps(const char *dir)
{
    char command[4 * PATH_MAX];
    snprintf(command, sizeof command,
             "cd '%s' && mkdir ref p0 p1 judge && cp '%s/pair2_a.png' ref/0.png && "
             "cp '%s/pair2_a.png' p0/0.png && cp '%s/pair2_b.png' p1/0.png && "
             "cp '%s/pair2_a.png' ref/1.png && cp '%s/pair2_b.png' p0/1.png && "
             "cp '%s/pair2_a.png' p1/1.png",
             dir, fixtures, fixtures, fixtures, fixtures, fixtures, fixtures);
    if (system(command) != 0) fail_msg("%s", command);
    const double h[2] = {0, 0.75};
    for (int k = 0; k < 2; k++) {
        char path[PATH_MAX], header[128];
        snprintf(path, sizeof path, "%s/judge/%d.npy", dir, k);
        int len = snprintf(header, sizeof header,
                           "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }");
        while ((10 + len + 1) % 64)
            header[len++] = ' ';
        header[len++] = '\n';
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)len, 0};
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(pre, 1, 10, f);
        fwrite(header, 1, (size_t)len, f);
        fwrite(&h[k], 8, 1, f);
        fclose(f);
    }
}

static void test_eval_2afc_cli(void **state)
{
    skip_without_fixtures();
    char dir[] = "/tmp/test-similarity-XXXXXX", model[PATH_MAX], metric_arg[PATH_MAX + 8];
    assert_non_null(mkdtemp(dir));
    write_bapps(dir);
    char *out, *err;
    const char *ssim[] = {"eval-2afc", "--dataset", dir, "--metric", "ssim", NULL};
    assert_int_equal(harness_run_binary(ssim, &out, &err), 0);
    assert_contains(out, "\"score\":0.875");
    free(out);
    free(err);
    snprintf(model, sizeof model, "%s/models/alex", fixtures);
    snprintf(metric_arg, sizeof metric_arg, "lpips:%s", model);
    const char *lpips[] = {"eval-2afc", "--dataset", dir, "--metric", metric_arg, NULL};
    assert_int_equal(harness_run_binary(lpips, &out, &err), 0);
    assert_contains(out, "\"score\":0.875");
    free(out);
    free(err);
    const char *bad[] = {"eval-2afc", "--dataset", dir, "--metric", "vif", NULL};
    assert_int_equal(harness_run_binary(bad, &out, &err), 2);
    free(out);
    free(err);
    snprintf(model, sizeof model, "rm -rf '%s'", dir);
    assert_int_equal(system(model), 0);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s AUGSERVE_BINARY SOURCE_DIR LPIPS_FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixtures = argv[3];
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/expected.json", fixtures);
    expected = json_load_file(path, 0, NULL);
    if (expected && json_object_get(expected, "skipped")) {
        json_decref(expected);
        expected = NULL;
    }
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_pixel_metrics_without_models),
        HARNESS_MODELS_TEST(test_lpips_matches_pytorch),
        HARNESS_MODELS_TEST(test_bad_input),
        HARNESS_MODELS_TEST(test_batch),
        HARNESS_MODELS_TEST(test_2afc),
        HARNESS_TEST(test_eval_2afc_cli),
    };
    int failed = harness_main(argc, argv, "similarity", tests, sizeof tests / sizeof tests[0]);
    json_decref(expected);
    return failed;
}
