/* Colour through the API and the CLI, against the real binary: images keep the pixel values their
 * files store (Pillow's, so torchvision's) and the outputs carry the inputs' ICC profiles, unless
 * color=srgb. The expected pixels come from tests/parity/gen_tagged.py (torchvision on Pillow's
 * decode of gen_codec.py's tagged files); the profiles are gen_codec.py's, byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "image/codec.h"

#define CODEC  "tests/parity/fixtures/codec/"
#define TAGGED "tests/parity/fixtures/tagged"

struct file {
    char *data;
    size_t size;
};

/* A file of the codec fixtures. */
static struct file codec_file(const char *name)
{
    char relative[256];
    snprintf(relative, sizeof relative, CODEC "%s", name);
    struct file f;
    f.data = harness_read_source_file(relative, &f.size);
    return f;
}

/* An image the server sent back, decoded with its colours as stored; *info gets its profile. */
static struct img *decode_response(const void *data, size_t size, struct img_info *info)
{
    struct eng_error err = {0};
    struct img *im = img_decode(data, size, NULL, info, &err);
    if (!im) fail_msg("the response image does not decode: %s", err.message);
    return im;
}

/* The fixture profile name (under codec/), or none when name is NULL, must be what an image
 * carried. */
static void assert_profile(const struct img_info *info, const char *name, const char *what)
{
    if (!name) {
        if (info->icc.data) fail_msg("%s: carries a %zu-byte profile", what, info->icc.size);
        return;
    }
    struct file want = codec_file(name);
    if (info->icc.size != want.size || memcmp(info->icc.data, want.data, want.size) != 0)
        fail_msg("%s: carries a %zu-byte profile, not %s (%zu bytes)", what, info->icc.size, name,
                 want.size);
    free(want.data);
}

/* One image and multipart fields (name, value pairs, NULL-terminated) to POST /v1/augment,
 * asking for the image itself back (Accept: image/...). */
static void augment(const struct server *srv, const struct file *image, const char *const *fields,
                    struct http_response *r)
{
    struct http_part parts[8] = {{"image", "image", NULL, image->data, image->size}};
    size_t n = 1;
    for (; fields && fields[0]; fields += 2)
        parts[n++] = (struct http_part){fields[0], NULL, NULL, fields[1], strlen(fields[1])};
    const char *headers[] = {"Accept: image/*", NULL};
    struct http_request req = {
        .path = "/v1/augment", .headers = headers, .parts = parts, .part_count = n};
    http_send(srv, &req, r);
}

/* Every op with a torchvision reference, on an Adobe RGB JPEG and a Display P3 PNG, through the
 * endpoint with its defaults: the PNG that comes back holds torchvision's pixels from Pillow's
 * decode exactly, and the input's profile. */
static void test_ops_keep_stored_values(void **state)
{
    struct server *srv = harness_start(state, NULL);
    json_t *manifest = harness_load_source_json(TAGGED "/manifest.json");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" TAGGED, harness_source_dir());
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(manifest, "cases"), i, c)
    {
        struct file input = codec_file(json_str(c, "input"));
        char *policy = json_dumps(json_object_get(c, "policy"), JSON_COMPACT);
        struct http_response r;
        augment(srv, &input, (const char *const[]){"policy", policy, "format", "png", NULL}, &r);
        assert_status(&r, 200);
        struct img_info info;
        struct img *got = decode_response(r.body, r.body_size, &info);
        struct img *want = fixture_load(dir, json_str(c, "expected"));
        assert_non_null(want);
        int max_diff = 0;
        long bad = fixture_diff(got, want, 0, &max_diff);
        if (bad != 0)
            fail_msg("%s on %s: %ld pixels differ from torchvision's (by up to %d)", policy,
                     json_str(c, "input"), bad, max_diff);
        assert_profile(&info, json_str(c, "icc"), policy);
        img_info_clear(&info);
        img_free(want);
        img_free(got);
        free(policy);
        http_response_free(&r);
        free(input.data);
    }
    assert_int_equal(i, 44);
    json_decref(manifest);
    harness_pass(state);
}

/* The profile goes into every format that holds one, as the raw answer and in JSON; greyscale
 * keeps its greyscale profile. */
static void test_profile_in_every_format(void **state)
{
    struct server *srv = harness_start(state, NULL);
    static const struct {
        const char *file, *format, *content_type, *icc;
    } cases[] = {
        {"jpeg_icc_p3.jpg", "same", "image/jpeg", "p3.icc"},
        {"jpeg_icc_p3.jpg", "png", "image/png", "p3.icc"},
        {"png_icc_adobe.png", "webp", "image/webp", "adobe.icc"},
        {"png_icc_adobe.png", "jpeg", "image/jpeg", "adobe.icc"},
        {"jpeg_icc_srgb.jpg", "png", "image/png", "srgb.icc"},
        {"png_icc_gray.png", "same", "image/png", "gray.icc"},
        {"png_icc_gray.png", "jpeg", "image/jpeg", "gray.icc"},
        /* A CMYK file's pixels become RGB: its CMYK profile no longer describes them. */
        {"jpeg_cmyk_icc.jpg", "png", "image/png", NULL},
        {"png_rgb.png", "same", "image/png", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct file input = codec_file(cases[i].file);
        struct http_response r;
        augment(srv, &input,
                (const char *const[]){"policy", "{\"op\": \"FlipLR\"}", "format", cases[i].format,
                                      NULL},
                &r);
        assert_status(&r, 200);
        assert_string_equal(http_header(&r, "Content-Type"), cases[i].content_type);
        struct img_info info;
        img_free(decode_response(r.body, r.body_size, &info));
        assert_profile(&info, cases[i].icc, cases[i].file);
        img_info_clear(&info);
        http_response_free(&r);
        free(input.data);
    }
    /* Every sample of the JSON answer carries it too. */
    struct file input = codec_file("png_icc_p3.png");
    struct http_part parts[] = {{"image", "a.png", NULL, input.data, input.size},
                                {"policy", NULL, NULL, "randaugment", 11},
                                {"samples", NULL, NULL, "2", 1}};
    struct http_request req = {.path = "/v1/augment", .parts = parts, .part_count = 3};
    struct http_response r;
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 2);
    for (size_t k = 0; k < 2; k++) {
        size_t size;
        unsigned char *png = harness_unbase64(json_str(json_array_get(results, k), "data"), &size);
        struct img_info info;
        img_free(decode_response(png, size, &info));
        assert_profile(&info, "p3.icc", "a JSON sample");
        img_info_clear(&info);
        free(png);
    }
    json_decref(doc);
    http_response_free(&r);
    free(input.data);
    harness_pass(state);
}

/* color=srgb gives libvips' conversion (what the codec's own decode with IMG_COLOR_SRGB gives,
 * which test_codec holds to libvips' icc_transform) and no profile; on a file without one it
 * changes nothing. */
static void test_srgb(void **state)
{
    struct server *srv = harness_start(state, NULL);
    static const char *const files[] = {"jpeg_icc_adobe.jpg", "png_icc_p3.png", "png_rgb.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct file input = codec_file(files[i]);
        struct http_response r;
        augment(srv, &input,
                (const char *const[]){"policy", "{\"op\": \"Identity\"}", "format", "png", "color",
                                      "srgb", NULL},
                &r);
        assert_status(&r, 200);
        struct img_info info;
        struct img *got = decode_response(r.body, r.body_size, &info);
        assert_profile(&info, NULL, files[i]);
        const struct img_decode_options srgb = {0, 0, IMG_COLOR_SRGB};
        struct eng_error err = {0};
        struct img *want = img_decode(input.data, input.size, &srgb, NULL, &err);
        assert_non_null(want);
        assert_int_equal(fixture_diff(got, want, 0, NULL), 0);
        struct img *kept = img_decode(input.data, input.size, NULL, NULL, &err);
        /* Only the file without a profile comes out as stored. */
        assert_int_equal(fixture_diff(got, kept, 0, NULL) == 0, i == 2);
        img_free(kept);
        img_free(want);
        img_free(got);
        http_response_free(&r);
        free(input.data);
    }
    harness_pass(state);
}

/* The error of a bad color names the parameter and its two values, on every route that takes
 * it, as a form field and as a query parameter. */
static void test_bad_color(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct file input = codec_file("png_icc_p3.png");
    struct http_response r;
    augment(srv, &input, (const char *const[]){"policy", "randaugment", "color", "SRGB", NULL}, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "color: must be keep");
    assert_contains(r.body, "or srgb");
    http_response_free(&r);
    http_post(srv, "/v1/augment?policy=randaugment&color=p3", "image/png", input.data, input.size,
              &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "color: must be keep");
    http_response_free(&r);
    struct http_part parts[] = {{"image_a", "a.png", NULL, input.data, input.size},
                                {"image_b", "b.png", NULL, input.data, input.size},
                                {"color", NULL, NULL, "rgb", 3}};
    struct http_request req = {.path = "/v1/augment/copy-paste", .parts = parts, .part_count = 3};
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "color: must be keep");
    http_response_free(&r);
    struct http_part pair[] = {{"a", "a.png", NULL, input.data, input.size},
                               {"b", "b.png", NULL, input.data, input.size},
                               {"color", NULL, NULL, "", 0}};
    req = (struct http_request){.path = "/v1/similarity", .parts = pair, .part_count = 3};
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "color: must be keep");
    http_response_free(&r);
    free(input.data);
    harness_pass(state);
}

/* Copy-paste's result is image a's pixels with b's pasted in as stored: it carries a's profile,
 * and none with color=srgb. */
static void test_copy_paste_carries_a_profile(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct file a = codec_file("png_icc_adobe.png"), b = codec_file("png_rgb.png");
    struct file mask = codec_file("png_l.png");
    for (int srgb = 0; srgb < 2; srgb++) {
        struct http_part parts[] = {{"image_a", "a.png", NULL, a.data, a.size},
                                    {"image_b", "b.png", NULL, b.data, b.size},
                                    {"mask_a", "m.png", NULL, mask.data, mask.size},
                                    {"mask_b", "m.png", NULL, mask.data, mask.size},
                                    {"seed", NULL, NULL, "3", 1},
                                    {"color", NULL, NULL, srgb ? "srgb" : "keep", 4}};
        struct http_request req = {
            .path = "/v1/augment/copy-paste", .parts = parts, .part_count = 6};
        struct http_response r;
        http_send(srv, &req, &r);
        assert_status(&r, 200);
        json_t *doc = http_json(&r);
        assert_string_equal(json_str(doc, "content_type"), "image/png");
        size_t size;
        unsigned char *png = harness_unbase64(json_str(doc, "data"), &size);
        struct img_info info;
        img_free(decode_response(png, size, &info));
        assert_profile(&info, srgb ? NULL : "adobe.icc", "copy-paste");
        img_info_clear(&info);
        free(png);
        json_decref(doc);
        http_response_free(&r);
    }
    free(mask.data);
    free(b.data);
    free(a.data);
    harness_pass(state);
}

/* png_icc_adobe.png stores png_rgb.png's very values under an Adobe RGB profile: as stored they
 * are identical; converted to sRGB they are not. */
static void test_similarity(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct file a = codec_file("png_icc_adobe.png"), b = codec_file("png_rgb.png");
    for (int srgb = 0; srgb < 2; srgb++) {
        struct http_part parts[] = {{"a", "a.png", NULL, a.data, a.size},
                                    {"b", "b.png", NULL, b.data, b.size},
                                    {"metrics", NULL, NULL, "ssim,l2", 7},
                                    {"color", NULL, NULL, srgb ? "srgb" : "keep", 4}};
        struct http_request req = {.path = "/v1/similarity", .parts = parts, .part_count = 4};
        struct http_response r;
        http_send(srv, &req, &r);
        assert_status(&r, 200);
        json_t *doc = http_json(&r);
        json_t *metrics = json_object_get(doc, "metrics");
        double l2 = json_number_value(json_object_get(metrics, "l2"));
        double ssim = json_number_value(json_object_get(metrics, "ssim"));
        if (srgb) {
            assert_true(l2 > 10);
            assert_true(ssim < 0.99);
        } else {
            assert_true(l2 == 0);
            assert_true(ssim == 1);
        }
        json_decref(doc);
        http_response_free(&r);
    }
    free(b.data);
    free(a.data);
    harness_pass(state);
}

/* augserve augment keeps the profile too, and --color srgb mirrors the parameter. */
static void test_cli(void **state)
{
    struct server *srv = harness_prepare(state, NULL);
    char input[PATH_MAX], pattern[PATH_MAX], output[PATH_MAX];
    snprintf(input, sizeof input, "%s/" CODEC "jpeg_icc_p3.jpg", harness_source_dir());
    snprintf(pattern, sizeof pattern, "%s/{name}-{sample}.{ext}", srv->dir);
    snprintf(output, sizeof output, "%s/jpeg_icc_p3-0.png", srv->dir);
    for (int srgb = 0; srgb < 2; srgb++) {
        char *out, *err;
        const char *args[] = {"augment",
                              "-p",
                              "{\"op\": \"Identity\"}",
                              "-f",
                              "png",
                              "--color",
                              srgb ? "srgb" : "keep",
                              "-o",
                              pattern,
                              input,
                              NULL};
        int status = harness_run_binary(args, &out, &err);
        if (status != 0) fail_msg("augserve augment exited %d: %s", status, err);
        free(out);
        free(err);
        size_t size;
        char *png = harness_read_file(output, &size);
        struct img_info info;
        img_free(decode_response(png, size, &info));
        assert_profile(&info, srgb ? NULL : "p3.icc", "augserve augment");
        img_info_clear(&info);
        free(png);
    }
    char *out, *err;
    const char *bad[] = {"augment", "-p", "randaugment", "--color", "p3", input, NULL};
    assert_int_equal(harness_run_binary(bad, &out, &err), 2);
    assert_contains(err, "--color: keep or srgb");
    free(out);
    free(err);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_ops_keep_stored_values),
        HARNESS_TEST(test_profile_in_every_format),
        HARNESS_TEST(test_srgb),
        HARNESS_TEST(test_bad_color),
        HARNESS_TEST(test_copy_paste_carries_a_profile),
        HARNESS_TEST(test_similarity),
        HARNESS_TEST(test_cli),
    };
    return harness_main(argc, argv, "colour", tests, sizeof tests / sizeof tests[0]);
}
