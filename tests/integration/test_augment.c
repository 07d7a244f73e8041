/* POST /v1/augment, GET /v1/ops and the policy routes, against the real binary. Input images are
 * made here with the engine's own encoder; what comes back is decoded with it too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "image/codec.h"

#define AUGMENT_CONFIG "{\"max_samples\": 4, \"max_inputs\": 2, \"max_pixels\": 100000}"

/* A 48x40 RGB image with a gradient and a square, as PNG (malloc'd). */
static void *make_png(int width, int height, size_t *size)
{
    struct img *im = img_new(width, height, 3, NULL);
    assert_non_null(im);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            uint8_t *p = img_row(im, y) + 3 * x;
            int inside = x > width / 4 && x < width / 2 && y > height / 4 && y < height / 2;
            p[0] = (uint8_t)(x * 255 / width);
            p[1] = (uint8_t)(y * 255 / height);
            p[2] = inside ? 250 : 30;
        }
    void *png = NULL;
    struct eng_error err = {0};
    if (img_encode(im, IMG_PNG, 90, NULL, &png, size, &err) != 0)
        fail_msg("encode: %s", err.message);
    img_free(im);
    return png;
}

static struct img *decode(const void *data, size_t size)
{
    const struct img_decode_options opt = {100000000, 65535, IMG_COLOR_KEEP};
    struct eng_error err = {0};
    struct img *im = img_decode(data, size, &opt, NULL, &err);
    if (!im) fail_msg("the response image does not decode: %s", err.message);
    return im;
}

static void post_image(const struct server *srv, const char *path, const void *png, size_t size,
                       const char *accept, struct http_response *r)
{
    const char *headers[] = {"Content-Type: image/png", accept, NULL};
    struct http_request req = {.path = path, .headers = headers, .body = png, .body_size = size};
    http_send(srv, &req, r);
}

static void test_single_image_bytes(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t size;
    void *png = make_png(48, 40, &size);
    struct http_response a, b;
    post_image(srv, "/v1/augment?policy=randaugment&seed=42", png, size, "Accept: image/png", &a);
    assert_status(&a, 200);
    assert_string_equal(http_header(&a, "Content-Type"), "image/png");
    assert_string_equal(http_header(&a, "X-Augment-Seed"), "42");
    json_t *trace = json_loads(http_header(&a, "X-Augment-Trace"), 0, NULL);
    assert_non_null(trace);
    assert_int_equal(json_array_size(trace), 2); /* RandAugment's n = 2 */
    json_decref(trace);
    struct img *out = decode(a.body, a.body_size);
    assert_int_equal(out->width, 48);
    assert_int_equal(out->height, 40);
    img_free(out);
    /* The same seed gives the same bytes. */
    post_image(srv, "/v1/augment?policy=randaugment&seed=42", png, size, "Accept: image/png", &b);
    assert_status(&b, 200);
    assert_int_equal(a.body_size, b.body_size);
    assert_memory_equal(a.body, b.body, a.body_size);
    http_response_free(&a);
    http_response_free(&b);
    free(png);
    harness_pass(state);
}

static void test_json_samples_and_inputs(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t size0, size1;
    void *png0 = make_png(48, 40, &size0), *png1 = make_png(30, 20, &size1);
    struct http_part parts[] = {
        {.name = "image",
         .filename = "a.png",
         .content_type = "image/png",
         .data = png0,
         .size = size0},
        {.name = "image",
         .filename = "b.png",
         .content_type = "image/png",
         .data = png1,
         .size = size1},
        {.name = "policy",
         .data = "{\"seq\": [{\"op\": \"FlipLR\"}, {\"op\": \"Invert\"}]}",
         .size = strlen("{\"seq\": [{\"op\": \"FlipLR\"}, {\"op\": \"Invert\"}]}")},
        {.name = "samples", .data = "3", .size = 1},
        {.name = "seed", .data = "7", .size = 1},
        {.name = "seed", .data = "9", .size = 1},
    };
    /* The form field wins over the query parameter (3 samples, not 1), and the first of two
     * fields wins (seed 7), as the README says. */
    struct http_request req = {
        .path = "/v1/augment?samples=1&seed=8", .parts = parts, .part_count = 6};
    struct http_response r;
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_int_equal(json_int(doc, "seed"), 7);
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 6);
    struct img *in0 = decode(png0, size0);
    for (size_t i = 0; i < 6; i++) {
        json_t *res = json_array_get(results, i);
        assert_int_equal(json_int(res, "input"), (json_int_t)(i / 3));
        assert_int_equal(json_int(res, "sample"), (json_int_t)(i % 3));
        assert_string_equal(json_str(res, "content_type"), "image/png");
        size_t size;
        unsigned char *bytes = harness_unbase64(json_str(res, "data"), &size);
        struct img *out = decode(bytes, size);
        free(bytes);
        assert_int_equal(out->width, json_int(res, "width"));
        assert_int_equal(json_array_size(json_object_get(res, "trace")), 2);
        if (i == 0) {
            /* FlipLR then Invert, checked against the input pixel by pixel. */
            for (int y = 0; y < in0->height; y++)
                for (int x = 0; x < in0->width; x++)
                    for (int c = 0; c < 3; c++)
                        assert_int_equal(img_row(out, y)[3 * x + c],
                                         255 - img_row(in0, y)[3 * (in0->width - 1 - x) + c]);
        }
        img_free(out);
    }
    img_free(in0);
    json_decref(doc);
    http_response_free(&r);
    free(png0);
    free(png1);
    harness_pass(state);
}

/* The message of an error envelope (malloc'd). */
static char *error_message(const struct http_response *r)
{
    json_t *doc = http_json(r);
    char *message = strdup(json_str(json_object_get(doc, "error"), "message"));
    assert_non_null(message);
    json_decref(doc);
    return message;
}

static void test_bad_requests(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t size;
    void *png = make_png(48, 40, &size);
    struct http_response r;
    post_image(srv,
               "/v1/"
               "augment?policy=%7B%22seq%22%3A%5B%7B%22op%22%3A%22Rotate%22%2C%22degrees%22%3A999%"
               "7D%5D%7D",
               png, size, NULL, &r);
    assert_error_envelope(&r, 422, "invalid_policy");
    char *message = error_message(&r);
    assert_string_equal(message, "policy/seq/0/degrees: must be in [-360, 360]");
    free(message);
    http_response_free(&r);
    /* Text that is neither JSON nor a preset name: the message says "policy" once. */
    post_image(srv, "/v1/augment?policy=%7B%22seq%22%3A%5B", png, size, NULL, &r);
    assert_error_envelope(&r, 422, "invalid_policy");
    message = error_message(&r);
    if (strncmp(message, "policy: not JSON (line 1, column ", 33) != 0 ||
        !strstr(message, ") nor a preset name"))
        fail_msg("the message for a policy that is not JSON: \"%s\"", message);
    free(message);
    http_response_free(&r);
    post_image(srv, "/v1/augment", png, size, NULL, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "policy: missing");
    http_response_free(&r);
    post_image(srv, "/v1/augment?policy=randaugment&samples=5", png, size, NULL, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    http_response_free(&r);
    post_image(srv, "/v1/augment?policy=randaugment&seed=-1", png, size, NULL, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    http_response_free(&r);
    post_image(srv, "/v1/augment?policy=randaugment&format=gif", png, size, NULL, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    http_response_free(&r);
    /* Half a PNG, garbage, the wrong media type, an image past max_pixels. */
    post_image(srv, "/v1/augment?policy=randaugment", png, size / 2, NULL, &r);
    assert_error_envelope(&r, 422, "undecodable");
    http_response_free(&r);
    post_image(srv, "/v1/augment?policy=randaugment", "not an image at all", 19, NULL, &r);
    assert_error_envelope(&r, 415, "unsupported_media_type");
    http_response_free(&r);
    const char *text_headers[] = {"Content-Type: text/plain", NULL};
    struct http_request text_req = {.path = "/v1/augment?policy=randaugment",
                                    .headers = text_headers,
                                    .body = "hello",
                                    .body_size = 5};
    http_send(srv, &text_req, &r);
    assert_error_envelope(&r, 415, "unsupported_media_type");
    http_response_free(&r);
    size_t big_size;
    void *big = make_png(400, 300, &big_size); /* 120000 pixels > 100000 */
    post_image(srv, "/v1/augment?policy=randaugment", big, big_size, NULL, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    http_response_free(&r);
    free(big);
    /* Three images when max_inputs is 2. */
    struct http_part parts[] = {
        {.name = "image", .filename = "a.png", .data = png, .size = size},
        {.name = "image", .filename = "b.png", .data = png, .size = size},
        {.name = "image", .filename = "c.png", .data = png, .size = size},
        {.name = "policy", .data = "randaugment", .size = 11},
    };
    struct http_request req = {.path = "/v1/augment", .parts = parts, .part_count = 4};
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "max_inputs");
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

static void test_ops_and_policies(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct http_response r;
    http_get(srv, "/v1/ops", &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *op;
    size_t i;
    int found_rotate = 0;
    json_array_foreach(json_object_get(doc, "ops"), i, op)
    {
        if (strcmp(json_str(op, "name"), "Rotate") != 0) continue;
        found_rotate = 1;
        json_t *level = json_object_get(op, "level");
        assert_string_equal(json_str(level, "arg"), "degrees");
        assert_true(json_number_value(json_array_get(json_object_get(level, "range"), 1)) == 30);
        assert_true(json_is_true(json_object_get(op, "fill")));
    }
    assert_true(found_rotate);
    json_decref(doc);
    http_response_free(&r);

    http_get(srv, "/v1/policies", &r);
    assert_status(&r, 200);
    assert_contains(r.body, "\"randaugment\"");
    assert_contains(r.body, "\"autoaugment-imagenet\"");
    http_response_free(&r);
    http_get(srv, "/v1/policies/randaugment", &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    assert_int_equal(json_int(json_object_get(doc, "policy"), "repeat"), 2);
    json_decref(doc);
    http_response_free(&r);
    http_get(srv, "/v1/policies/nope", &r);
    assert_error_envelope(&r, 404, "not_found");
    http_response_free(&r);

    const char *bad = "{\"choice\": [{\"op\": \"Invert\"}, {\"op\": \"Nope\"}]}";
    struct http_request req = {
        .path = "/v1/policies/validate", .body = bad, .body_size = strlen(bad)};
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 422, "invalid_policy");
    assert_contains(r.body, "/choice/1/op: unknown op");
    http_response_free(&r);
    const char *good = "{\"preset\": \"randaugment\", \"n\": 1, \"m\": 5}";
    req.body = good;
    req.body_size = strlen(good);
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    assert_true(json_is_true(json_object_get(doc, "valid")));
    json_decref(doc);
    http_response_free(&r);
    harness_pass(state);
}

/* Inputs and samples run in parallel; the results cannot depend on how many threads ran them. */
static void test_same_results_any_worker_count(void **state)
{
    size_t size0, size1;
    void *png0 = make_png(48, 40, &size0), *png1 = make_png(33, 21, &size1);
    struct http_part parts[] = {
        {.name = "image", .filename = "a.png", .data = png0, .size = size0},
        {.name = "image", .filename = "b.png", .data = png1, .size = size1},
        {.name = "policy", .data = "augmix", .size = 6},
        {.name = "samples", .data = "4", .size = 1},
        {.name = "seed", .data = "1234", .size = 4},
    };
    struct http_request req = {.path = "/v1/augment", .parts = parts, .part_count = 5};
    json_t *first = NULL;
    static const char *const configs[] = {"{\"workers\": 1, \"max_samples\": 4}",
                                          "{\"workers\": 4, \"max_samples\": 4}"};
    for (int c = 0; c < 2; c++) {
        struct server *srv = harness_start(state, configs[c]);
        struct http_response r;
        http_send(srv, &req, &r);
        assert_status(&r, 200);
        json_t *doc = http_json(&r);
        assert_int_equal(json_array_size(json_object_get(doc, "results")), 8);
        if (!first)
            first = doc;
        else {
            assert_true(json_equal(first, doc));
            json_decref(doc);
        }
        http_response_free(&r);
    }
    json_decref(first);
    free(png0);
    free(png1);
    harness_pass(state);
}

/* AugMix's JSD mode returns three views per sample: the clean image first. */
static void test_jsd_views(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t size;
    void *png = make_png(48, 40, &size);
    struct http_response r;
    post_image(
        srv,
        "/v1/augment?samples=2&seed=3&policy=%7B%22preset%22%3A%22augmix%22%2C%22jsd%22%3Atrue%7D",
        png, size, "Accept: image/png", &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 6);
    struct img *in = decode(png, size);
    for (size_t i = 0; i < 6; i++) {
        json_t *res = json_array_get(results, i);
        assert_int_equal(json_int(res, "sample"), (json_int_t)(i / 3));
        assert_int_equal(json_int(res, "view"), (json_int_t)(i % 3));
        if (i % 3 == 0) {
            size_t bytes_size;
            unsigned char *bytes = harness_unbase64(json_str(res, "data"), &bytes_size);
            struct img *out = decode(bytes, bytes_size);
            free(bytes);
            assert_memory_equal(out->data, in->data, (size_t)in->height * in->stride);
            img_free(out);
        }
    }
    img_free(in);
    json_decref(doc);
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

/* The CLI runs the same engine: for the same seed its file equals the server's response. */
static void test_cli_matches_server(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t size;
    void *png = make_png(48, 40, &size);
    char in_path[PATH_MAX], pattern[PATH_MAX], out_path[PATH_MAX];
    snprintf(in_path, sizeof in_path, "%s/input.png", srv->dir);
    snprintf(pattern, sizeof pattern, "%s/{name}-{sample}.{ext}", srv->dir);
    snprintf(out_path, sizeof out_path, "%s/input-1.png", srv->dir);
    FILE *f = fopen(in_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(png, 1, size, f), size);
    fclose(f);
    char *out, *err;
    const char *args[] = {
        "augment", "-p", "trivialaugment-wide", "-s", "99", "-n", "2", "-o", pattern,
        in_path,   NULL};
    int status = harness_run_binary(args, &out, &err);
    if (status != 0) fail_msg("augserve augment exited %d: %s", status, err);
    assert_contains(out, "{\"seed\":99}");
    assert_contains(out, "input-1.png");
    free(out);
    free(err);

    struct http_part parts[] = {
        {.name = "image", .filename = "input.png", .data = png, .size = size},
        {.name = "policy", .data = "trivialaugment-wide", .size = 19},
        {.name = "seed", .data = "99", .size = 2},
        {.name = "samples", .data = "2", .size = 1},
    };
    struct http_request req = {.path = "/v1/augment", .parts = parts, .part_count = 4};
    struct http_response r;
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    size_t got_size;
    unsigned char *got = harness_unbase64(
        json_str(json_array_get(json_object_get(doc, "results"), 1), "data"), &got_size);
    f = fopen(out_path, "rb");
    assert_non_null(f);
    unsigned char *file = malloc(got_size + 1);
    size_t file_size = fread(file, 1, got_size + 1, f);
    fclose(f);
    assert_int_equal(file_size, got_size);
    assert_memory_equal(file, got, got_size);
    free(file);
    free(got);
    json_decref(doc);
    http_response_free(&r);
    free(png);
    harness_pass(state);
}

/* ---- Targets ------------------------------------------------------------------------------- */

/* A width x height greyscale PNG mask, 255 on [x1, x2) x [y1, y2) (malloc'd). */
static void *make_mask(int width, int height, int x1, int y1, int x2, int y2, size_t *size)
{
    struct img *m = img_new(width, height, 1, NULL);
    assert_non_null(m);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            img_row(m, y)[x] = x >= x1 && x < x2 && y >= y1 && y < y2 ? 255 : 0;
    void *png = NULL;
    struct eng_error err = {0};
    if (img_encode(m, IMG_PNG, 90, NULL, &png, size, &err) != 0)
        fail_msg("encode: %s", err.message);
    img_free(m);
    return png;
}

/* POSTs one 48x40 image with policy, targets (may be NULL), extra fields "name=value" (may be
 * NULL) and up to two masks. */
static void post_targets(const struct server *srv, const char *policy, const char *targets,
                         const char *field, const void *const *masks, const size_t *mask_sizes,
                         int mask_count, struct http_response *r)
{
    size_t size;
    void *png = make_png(48, 40, &size);
    struct http_part parts[8] = {
        {.name = "image",
         .filename = "a.png",
         .content_type = "image/png",
         .data = png,
         .size = size},
        {.name = "policy", .data = policy, .size = strlen(policy)},
        {.name = "seed", .data = "5", .size = 1},
    };
    size_t n = 3;
    char name[64] = "";
    if (targets)
        parts[n++] =
            (struct http_part){.name = "targets", .data = targets, .size = strlen(targets)};
    if (field) {
        const char *eq = strchr(field, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - field), field);
        parts[n++] = (struct http_part){.name = name, .data = eq + 1, .size = strlen(eq + 1)};
    }
    for (int i = 0; i < mask_count; i++)
        parts[n++] = (struct http_part){.name = "mask_0",
                                        .filename = "m.png",
                                        .content_type = "image/png",
                                        .data = masks[i],
                                        .size = mask_sizes[i]};
    struct http_request req = {.path = "/v1/augment", .parts = parts, .part_count = n};
    http_send(srv, &req, r);
    free(png);
}

/* Boxes (coco), labels, keypoints and masks through FlipLR: each comes back mirrored, in the
 * request's format, next to its sample; the masks' extents are the boxes. */
static void test_targets_follow_the_image(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t sizes[2];
    const void *masks[2] = {make_mask(48, 40, 10, 5, 20, 15, &sizes[0]),
                            make_mask(48, 40, 30, 20, 46, 38, &sizes[1])};
    struct http_response r;
    post_targets(srv, "{\"op\": \"FlipLR\"}",
                 "{\"boxes\": [[10, 5, 10, 10], [30, 20, 16, 18]], \"box_format\": \"coco\", "
                 "\"labels\": [\"car\", {\"id\": 2}], \"keypoints\": [[12, 8], [47.5, 0]]}",
                 NULL, masks, sizes, 2, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *t = json_object_get(json_array_get(json_object_get(doc, "results"), 0), "targets");
    assert_string_equal(json_str(t, "box_format"), "coco");
    json_t *objects = json_object_get(t, "objects");
    assert_int_equal(json_array_size(objects), 2);
    /* x -> 48 - x: [10, 20) becomes [28, 38), [30, 46) becomes [2, 18). */
    const double want[2][4] = {{28, 5, 10, 10}, {2, 20, 16, 18}};
    for (size_t i = 0; i < 2; i++) {
        json_t *o = json_array_get(objects, i);
        assert_int_equal(json_int(o, "index"), (json_int_t)i);
        for (size_t k = 0; k < 4; k++)
            assert_true(json_number_value(json_array_get(json_object_get(o, "box"), k)) ==
                        want[i][k]);
        size_t size;
        unsigned char *bytes = harness_unbase64(json_str(o, "mask"), &size);
        struct img *m = decode(bytes, size);
        int x1 = m->width, x2 = -1;
        for (int y = 0; y < m->height; y++)
            for (int x = 0; x < m->width; x++)
                if (img_row(m, y)[x]) x1 = x < x1 ? x : x1, x2 = x > x2 ? x : x2;
        assert_int_equal(x1, (int)want[i][0]);
        assert_int_equal(x2 + 1, (int)(want[i][0] + want[i][2]));
        img_free(m);
        free(bytes);
    }
    assert_string_equal(json_str(json_array_get(objects, 0), "label"), "car");
    assert_int_equal(json_int(json_object_get(json_array_get(objects, 1), "label"), "id"), 2);
    json_t *k = json_object_get(t, "keypoints");
    assert_true(json_number_value(json_object_get(json_array_get(k, 0), "x")) == 36);
    assert_true(json_number_value(json_object_get(json_array_get(k, 1), "x")) == 0.5);
    assert_true(json_is_true(json_object_get(json_array_get(k, 1), "visible")));
    json_decref(doc);
    http_response_free(&r);

    /* A shift right by 30 leaves box 0 whole and 3.6 of box 1's 19.2 columns: min_visibility drops
     * it, reported by its index. */
    post_targets(srv, "{\"op\": \"TranslateX\", \"pixels\": 30}",
                 "{\"boxes\": [[0.1, 0.1, 0.3, 0.3], [0.3, 0.5, 0.7, 0.9]], \"box_format\": "
                 "\"albumentations\"}",
                 "min_visibility=0.5", NULL, NULL, 0, &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    t = json_object_get(json_array_get(json_object_get(doc, "results"), 0), "targets");
    assert_int_equal(json_array_size(json_object_get(t, "objects")), 1);
    json_t *box = json_object_get(json_array_get(json_object_get(t, "objects"), 0), "box");
    /* [4.8, 4, 14.4, 12] + 30 = [34.8, 4, 44.4, 12], normalised. */
    assert_true(fabs(json_number_value(json_array_get(box, 0)) - 34.8 / 48) < 1e-12);
    assert_true(fabs(json_number_value(json_array_get(box, 2)) - 44.4 / 48) < 1e-12);
    json_t *dropped = json_array_get(json_object_get(t, "dropped"), 0);
    assert_int_equal(json_int(dropped, "index"), 1);
    assert_string_equal(json_str(dropped, "reason"), "min_visibility");
    json_decref(doc);
    http_response_free(&r);

    /* Detection presets run with targets; normalised boxes stay inside [0, 1]. */
    post_targets(srv, "detection-v2",
                 "{\"boxes\": [[0.5, 0.5, 1, 1], [0.4, 0.6, 0.4, 0.6]], \"box_format\": \"yolo\"}",
                 "samples=4", NULL, NULL, 0, &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    for (size_t i = 0; i < 4; i++) {
        t = json_object_get(json_array_get(json_object_get(doc, "results"), i), "targets");
        objects = json_object_get(t, "objects");
        for (size_t o = 0; o < json_array_size(objects); o++)
            for (size_t v = 0; v < 4; v++) {
                const double x = json_number_value(
                    json_array_get(json_object_get(json_array_get(objects, o), "box"), v));
                assert_true(x >= 0 && x <= 1);
            }
    }
    json_decref(doc);
    http_response_free(&r);
    free((void *)masks[0]);
    free((void *)masks[1]);
    harness_pass(state);
}

/* Every bad input is a 422 naming what is wrong, and where. */
static void test_targets_bad_inputs(void **state)
{
    struct server *srv = harness_start(state, "{\"max_targets\": 3}");
    static const struct {
        const char *targets, *field, *message;
    } cases[] = {
        {"{\"boxes\": [[1, 1, 5, 5], [40, 30, 50, 39]]}", NULL, "boxes[1]"},
        {"{\"boxes\": [[1, 1, 5, 5], [40, 30, 50, 39]]}", NULL, "reaches outside the 48x40"},
        {"{\"boxes\": [[10, 10, 5, 20]]}", NULL, "boxes[0]: [10, 10, 5, 20] is inverted"},
        {"{\"boxes\": [[1, 1, null, 5]]}", NULL, "boxes[0]: value 2 is not a finite number"},
        {"{\"boxes\": [[1, 1, 5]]}", NULL, "boxes[0]: has 3 values"},
        {"{\"boxes\": [[0.5, 0.5, 0.9, 1.2]], \"box_format\": \"yolo\"}", NULL, "boxes[0]"},
        {"{\"boxes\": [[1, 1, 5, 5]], \"box_format\": \"xywh\"}", NULL, "box_format"},
        {"{\"boxes\": [[1, 1, 5, 5], [1, 1, 5, 5], [1, 1, 5, 5], [1, 1, 5, 5]]}", NULL,
         "max_targets"},
        {"{\"keypoints\": [[1, 1], [2, 2], [3, 3], [4, 4]]}", NULL, "max_targets"},
        {"{\"keypoints\": [[1, 100]]}", NULL, "keypoints[0]"},
        {"{\"boxes\": [[1, 1, 5, 5]], \"labels\": [\"a\", \"b\"]}", NULL, "disagree"},
        {"{\"boxes\": [[1, 1, 5, 5]], \"colour\": 1}", NULL, "unknown key colour"},
        {"{\"boxes\": [[1, 1, 5, 5]]}", "min_visibility=2", "min_visibility"},
        {"[{\"boxes\": []}, {\"boxes\": []}]", NULL, "2 documents for 1 images"},
        {"{\"boxes\": [[1, 1, 5, 5]", NULL, "targets: not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_response r;
        post_targets(srv, "randaugment", cases[i].targets, cases[i].field, NULL, NULL, 0, &r);
        assert_error_envelope(&r, 422, "unprocessable");
        assert_contains(r.body, cases[i].message);
        http_response_free(&r);
    }
    /* A mask of another size, a colour mask, and a mix policy with targets. */
    size_t sizes[1], rgb_size;
    const void *small[1] = {make_mask(20, 10, 0, 0, 5, 5, &sizes[0])};
    const void *rgb[1] = {make_png(48, 40, &rgb_size)};
    struct http_response r;
    post_targets(srv, "randaugment", "{\"boxes\": [[1, 1, 5, 5]]}", NULL, small, sizes, 1, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "masks[0]: 20x10 differs from the image's 48x40");
    http_response_free(&r);
    post_targets(srv, "randaugment", NULL, NULL, rgb, &rgb_size, 1, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "mask_0[0]: has 3 channels");
    http_response_free(&r);
    post_targets(srv, "augmix", "{\"boxes\": [[1, 1, 5, 5]]}", NULL, NULL, NULL, 0, &r);
    assert_error_envelope(&r, 422, "invalid_policy");
    assert_contains(r.body, "mix");
    http_response_free(&r);
    free((void *)small[0]);
    free((void *)rgb[0]);
    harness_pass(state);
}

/* A 48x40 grey PNG (malloc'd). */
static void *grey_png(uint8_t value, size_t *size)
{
    struct img *im = img_new(48, 40, 3, NULL);
    assert_non_null(im);
    memset(im->data, value, im->stride * (size_t)im->height);
    void *png = NULL;
    struct eng_error err = {0};
    if (img_encode(im, IMG_PNG, 90, NULL, &png, size, &err) != 0)
        fail_msg("encode: %s", err.message);
    img_free(im);
    return png;
}

/* Two inputs with one mask each and {"op": "CopyPaste"} without jittering: each result holds its
 * own object and the other input's, named by input, index and label, and image 0 shows image 1's
 * grey exactly on the pasted mask. masks_1 0 gives input 1 a box without a mask. */
static void post_copy_paste(const struct server *srv, int inputs, int masks_1,
                            struct http_response *r)
{
    static const char policy[] = "{\"op\": \"CopyPaste\", \"jitter\": [1, 1], \"flip_p\": 0}";
    const char *targets = masks_1 ? "[{\"labels\": [\"car\"]}, {\"labels\": [\"dog\"]}]"
                                  : "[{\"labels\": [\"car\"]}, {\"boxes\": [[20, 10, 40, 30]], "
                                    "\"labels\": [\"dog\"]}]";
    size_t sizes[4];
    void *bytes[4] = {grey_png(10, &sizes[0]), grey_png(200, &sizes[1]),
                      make_mask(48, 40, 5, 5, 15, 15, &sizes[2]),
                      make_mask(48, 40, 20, 10, 40, 30, &sizes[3])};
    struct http_part parts[8] = {
        {.name = "policy", .data = policy, .size = sizeof policy - 1},
        {.name = "seed", .data = "5", .size = 1},
        {.name = "format", .data = "png", .size = 3},
    };
    size_t n = 3;
    static const char *const names[] = {"image", "image", "mask_0", "mask_1"};
    for (int i = 0; i < 4; i++)
        if ((i != 1 || inputs > 1) && (i != 3 || masks_1))
            parts[n++] = (struct http_part){.name = names[i],
                                            .filename = "x.png",
                                            .content_type = "image/png",
                                            .data = bytes[i],
                                            .size = sizes[i]};
    if (inputs > 1)
        parts[n++] =
            (struct http_part){.name = "targets", .data = targets, .size = strlen(targets)};
    struct http_request req = {.path = "/v1/augment", .parts = parts, .part_count = n};
    http_send(srv, &req, r);
    for (int i = 0; i < 4; i++)
        free(bytes[i]);
}

/* One object of a result: its index, origin input (-1: its own), label and pascal_voc box. */
static void check_pasted(json_t *o, int index, int input, const char *label, const double box[4])
{
    assert_int_equal(json_int(o, "index"), index);
    json_t *from = json_object_get(o, "input");
    assert_int_equal(from ? json_integer_value(from) : -1, input);
    assert_string_equal(json_str(o, "label"), label);
    for (size_t k = 0; k < 4; k++)
        assert_true(json_number_value(json_array_get(json_object_get(o, "box"), k)) == box[k]);
}

static void test_copy_paste_node(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    struct http_response r;
    post_copy_paste(srv, 2, 1, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r), *results = json_object_get(doc, "results");
    const double car[4] = {5, 5, 15, 15}, dog[4] = {20, 10, 40, 30};
    json_t *objects =
        json_object_get(json_object_get(json_array_get(results, 0), "targets"), "objects");
    assert_int_equal(json_array_size(objects), 2);
    check_pasted(json_array_get(objects, 0), 0, -1, "car", car);
    check_pasted(json_array_get(objects, 1), 0, 1, "dog", dog);
    objects = json_object_get(json_object_get(json_array_get(results, 1), "targets"), "objects");
    check_pasted(json_array_get(objects, 0), 0, -1, "dog", dog);
    check_pasted(json_array_get(objects, 1), 0, 0, "car", car);
    json_t *paste = json_array_get(json_object_get(json_array_get(results, 0), "trace"), 0);
    assert_string_equal(json_str(paste, "op"), "CopyPaste");
    assert_int_equal(json_int(paste, "source"), 1);
    size_t size;
    unsigned char *png = harness_unbase64(json_str(json_array_get(results, 0), "data"), &size);
    struct img *out = decode(png, size);
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 48; x++) {
            const int inside = x >= 20 && x < 40 && y >= 10 && y < 30;
            assert_int_equal(img_row(out, y)[3 * x], inside ? 200 : 10);
        }
    img_free(out);
    free(png);
    json_decref(doc);
    http_response_free(&r);
    /* Without masks on every input, or without another input: 422, saying why. */
    post_copy_paste(srv, 2, 0, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "input 1 has boxes without masks");
    http_response_free(&r);
    post_copy_paste(srv, 1, 1, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "from another input of the request, and there is only one");
    http_response_free(&r);
    harness_pass(state);
}

/* The input: 1024 RandomResizedCrop ops with Accept: image/jpeg gave an empty reply (the
 * trace did not fit libmicrohttpd's buffer for the response head), though the access log said 200.
 * The image is answered, the trace left to JSON. */
static void test_big_trace(void **state)
{
    struct server *srv = harness_start(state, AUGMENT_CONFIG);
    size_t size;
    void *png = make_png(48, 40, &size);
    static const char step[] = "{\"op\":\"RandomResizedCrop\",\"height\":32,\"width\":32}";
    static char policy[sizeof step * 1024 + 32];
    size_t used = (size_t)snprintf(policy, sizeof policy, "{\"seq\":[");
    for (int i = 0; i < 1024; i++)
        used += (size_t)snprintf(policy + used, sizeof policy - used, "%s%s", i ? "," : "", step);
    snprintf(policy + used, sizeof policy - used, "]}");
    struct http_part parts[] = {
        {.name = "image", .filename = "in.png", .data = png, .size = size},
        {.name = "policy", .data = policy, .size = strlen(policy)},
    };
    const char *as_image[] = {"Accept: image/jpeg", "X-Request-Id: big-trace", NULL};
    struct http_request req = {.path = "/v1/augment?seed=5&format=jpeg",
                               .headers = as_image,
                               .parts = parts,
                               .part_count = 2};
    struct http_response image;
    http_send(srv, &req, &image);
    assert_status(&image, 200);
    assert_string_equal(http_header(&image, "Content-Type"), "image/jpeg");
    assert_string_equal(http_header(&image, "X-Augment-Seed"), "5");
    assert_null(http_header(&image, "X-Augment-Trace"));
    assert_string_equal(http_header(&image, "X-Augment-Trace-Truncated"), "true");
    struct img *out = decode(image.body, image.body_size);
    assert_int_equal(out->width, 32);
    assert_int_equal(out->height, 32);
    img_free(out);

    /* JSON has the whole trace, and the same image. */
    const char *as_json[] = {"Accept: application/json", NULL};
    req.headers = as_json;
    struct http_response r;
    http_send(srv, &req, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    json_t *result = json_array_get(json_object_get(doc, "results"), 0);
    assert_int_equal(json_array_size(json_object_get(result, "trace")), 1024);
    size_t bytes_size;
    unsigned char *bytes = harness_unbase64(json_str(result, "data"), &bytes_size);
    assert_int_equal(bytes_size, image.body_size);
    assert_memory_equal(bytes, image.body, bytes_size);
    free(bytes);
    json_decref(doc);
    http_response_free(&r);

    /* The access log holds what was sent. */
    char expected[128];
    snprintf(expected, sizeof expected, "\"status\":200,\"bytes\":%zu,", image.body_size);
    double deadline = harness_now() + 5;
    char *log = NULL;
    for (;;) {
        size_t log_size;
        log = harness_read_file(srv->access_log_path, &log_size);
        if (strstr(log, "\"request_id\":\"big-trace\"") || harness_now() > deadline) break;
        free(log);
        usleep(10000);
    }
    const char *line = strstr(log, "\"request_id\":\"big-trace\"");
    if (!line) fail_msg("no access log line for big-trace: %s", log);
    const char *end = strchr(line, '\n');
    if (!end || !memmem(line, (size_t)(end - line), expected, strlen(expected)))
        fail_msg("access log line %.300s lacks %s", line, expected);
    free(log);
    http_response_free(&image);
    free(png);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) {
        fprintf(stderr, "codec init: %s\n", err.message);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_single_image_bytes), HARNESS_TEST(test_json_samples_and_inputs),
        HARNESS_TEST(test_bad_requests),       HARNESS_TEST(test_ops_and_policies),
        HARNESS_TEST(test_cli_matches_server), HARNESS_TEST(test_same_results_any_worker_count),
        HARNESS_TEST(test_jsd_views),          HARNESS_TEST(test_targets_follow_the_image),
        HARNESS_TEST(test_targets_bad_inputs), HARNESS_TEST(test_copy_paste_node),
        HARNESS_TEST(test_big_trace),
    };
    return harness_main(argc, argv, "augment", tests, sizeof tests / sizeof tests[0]);
}
