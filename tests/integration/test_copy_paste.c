/* POST /v1/augment/copy-paste against the real binary: a crafted scene whose outcome is computed
 * by hand (as instance masks and as label maps), determinism by seed, and every kind of bad
 * input. Images and masks are made with the engine's own encoder; what comes back is decoded
 * with it too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/codec.h"

#define PATH "/v1/augment/copy-paste"

/* A request's parts and the encoded bytes they point to. */
struct form {
    struct http_part parts[24];
    void *owned[24];
    size_t count;
};

static void form_free(struct form *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->owned[i]);
}

/* Sets a form field, replacing one of the same name (the server reads the first). */
static void add_field(struct form *f, const char *name, const char *value)
{
    size_t i = 0;
    while (i < f->count && (f->parts[i].filename || strcmp(f->parts[i].name, name) != 0))
        i++;
    assert_true(i < 24);
    f->parts[i] = (struct http_part){.name = name, .data = value, .size = strlen(value)};
    if (i == f->count) f->count++;
}

/* Adds im as a PNG file part (im is freed). */
static void add_png(struct form *f, const char *name, struct img *im)
{
    assert_true(f->count < 24);
    void *png = NULL;
    size_t size = 0;
    struct eng_error err = {0};
    if (img_encode(im, IMG_PNG, 90, NULL, &png, &size, &err) != 0)
        fail_msg("encode: %s", err.message);
    img_free(im);
    f->owned[f->count] = png;
    f->parts[f->count++] = (struct http_part){
        .name = name, .filename = "x.png", .content_type = "image/png", .data = png, .size = size};
}

static void add_bytes(struct form *f, const char *name, const char *bytes, size_t size)
{
    assert_true(f->count < 24);
    f->parts[f->count++] = (struct http_part){.name = name,
                                              .filename = "x.png",
                                              .content_type = "image/png",
                                              .data = bytes,
                                              .size = size};
}

static struct img *solid(int width, int height, int channels, uint8_t value)
{
    struct img *im = img_new(width, height, channels, NULL);
    assert_non_null(im);
    memset(im->data, value, im->stride * (size_t)height);
    return im;
}

/* value on [x1, x2) x [y1, y2) of im. */
static struct img *paint(struct img *im, int x1, int y1, int x2, int y2, uint8_t value)
{
    for (int y = y1; y < y2; y++)
        memset(img_row(im, y) + x1, value, (size_t)(x2 - x1));
    return im;
}

/* The scene of tests/unit/test_copy_paste.c: a grey-10 40 x 40 image a with a0 = [0, 10, 20, 30)
 * (right half under the paste), a1 = [30, 30, 34, 34) (clear) and a2 = [12, 12, 18, 18) (wholly
 * under it); a grey-200 image b with b0 = [10, 10, 30, 30). No jittering, no flip. */
static const int scene_a[][4] = {{0, 10, 20, 30}, {30, 30, 34, 34}, {12, 12, 18, 18}};

static void add_scene(struct form *f, size_t masks_a)
{
    add_png(f, "image_a", solid(40, 40, 3, 10));
    add_png(f, "image_b", solid(40, 40, 3, 200));
    for (size_t i = 0; i < masks_a; i++) {
        const int *r = scene_a[i];
        add_png(f, "mask_a", paint(solid(40, 40, 1, 0), r[0], r[1], r[2], r[3], 1));
    }
    add_png(f, "mask_b", paint(solid(40, 40, 1, 0), 10, 10, 30, 30, 255));
    add_field(f, "jitter", "[1, 1]");
    add_field(f, "flip_p", "0");
    add_field(f, "seed", "5");
}

static void post(const struct server *srv, const struct form *f, struct http_response *r)
{
    struct http_request req = {.path = PATH, .parts = f->parts, .part_count = f->count};
    http_send(srv, &req, r);
}

static struct img *decode_base64(const char *text)
{
    size_t len = strlen(text);
    unsigned char *bytes = malloc(len / 4 * 3 + 1);
    assert_non_null(bytes);
    int n = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
    assert_true(n >= 0);
    size_t size =
        (size_t)n - (len >= 1 && text[len - 1] == '=') - (len >= 2 && text[len - 2] == '=');
    const struct img_decode_options opt = {100000000, 65535, IMG_COLOR_KEEP};
    struct eng_error err = {0};
    struct img *im = img_decode(bytes, size, &opt, NULL, &err);
    free(bytes);
    if (!im) fail_msg("a returned image does not decode: %s", err.message);
    return im;
}

/* Checks one object: provenance, label (as JSON text), box, area, and that the returned mask has
 * the box as its extent and the area as its pixel count. */
static void check_object(json_t *o, const char *source, int index, const char *label,
                         const double box[4], int area)
{
    assert_string_equal(json_str(o, "source"), source);
    assert_int_equal(json_int(o, "index"), index);
    char *text = json_dumps(json_object_get(o, "label"), JSON_ENCODE_ANY | JSON_COMPACT);
    assert_string_equal(text ? text : "(absent)", label);
    free(text);
    json_t *b = json_object_get(o, "box");
    for (size_t i = 0; i < 4; i++)
        if (json_number_value(json_array_get(b, i)) != box[i])
            fail_msg("%s %d: box[%zu] is %g, expected %g", source, index, i,
                     json_number_value(json_array_get(b, i)), box[i]);
    assert_int_equal(json_int(o, "area"), area);
    struct img *mask = decode_base64(json_str(o, "mask"));
    int x1 = 99, y1 = 99, x2 = -1, y2 = -1, count = 0;
    for (int y = 0; y < mask->height; y++)
        for (int x = 0; x < mask->width; x++) {
            const uint8_t v = img_row(mask, y)[x];
            assert_true(v == 0 || v == 255);
            if (!v) continue;
            count++;
            x1 = x < x1 ? x : x1, y1 = y < y1 ? y : y1;
            x2 = x > x2 ? x : x2, y2 = y > y2 ? y : y2;
        }
    img_free(mask);
    assert_int_equal(count, area);
    /* The boxes below are coco: x, y, width, height of the pixels. */
    assert_true(x1 == box[0] && y1 == box[1] && x2 + 1 - x1 == box[2] && y2 + 1 - y1 == box[3]);
}

/* The hand-computed outcome: a0's left half, a1, b0; a2 occluded. */
static void check_scene_result(const struct http_response *r)
{
    assert_status(r, 200);
    json_t *doc = http_json(r);
    assert_int_equal(json_int(doc, "seed"), 5);
    assert_string_equal(json_str(doc, "box_format"), "coco");
    assert_int_equal(json_int(doc, "width"), 40);
    json_t *objects = json_object_get(doc, "objects");
    assert_int_equal(json_array_size(objects), 3);
    const double b0[4] = {0, 10, 10, 20}, b1[4] = {30, 30, 4, 4}, b2[4] = {10, 10, 20, 20};
    check_object(json_array_get(objects, 0), "a", 0, "\"cat\"", b0, 200);
    check_object(json_array_get(objects, 1), "a", 1, "{\"id\":3}", b1, 16);
    check_object(json_array_get(objects, 2), "b", 0, "\"dog\"", b2, 400);
    json_t *dropped = json_object_get(doc, "dropped");
    assert_int_equal(json_array_size(dropped), 1);
    assert_string_equal(json_str(json_array_get(dropped, 0), "source"), "a");
    assert_int_equal(json_int(json_array_get(dropped, 0), "index"), 2);
    assert_string_equal(json_str(json_array_get(dropped, 0), "reason"), "occluded");
    struct img *out = decode_base64(json_str(doc, "data"));
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            const int inside = x >= 10 && x < 30 && y >= 10 && y < 30;
            assert_int_equal(img_row(out, y)[3 * x], inside ? 200 : 10);
        }
    img_free(out);
    json_decref(doc);
}

static void test_crafted_scene(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct form f = {0};
    add_scene(&f, 3);
    add_field(&f, "targets_a", "{\"box_format\": \"coco\", \"labels\": [\"cat\", {\"id\": 3}, 7]}");
    add_field(&f, "targets_b", "{\"labels\": [\"dog\"]}");
    struct http_response r;
    post(srv, &f, &r);
    check_scene_result(&r);
    http_response_free(&r);
    form_free(&f);
    harness_pass(state);
}

/* The same scene as label maps (a2 left out: it would overlap a0), and with boxes given: they
 * are checked, then replaced by the masks' extents. */
static void test_label_maps_and_boxes(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct form f = {0};
    add_png(&f, "image_a", solid(40, 40, 3, 10));
    add_png(&f, "image_b", solid(40, 40, 3, 200));
    add_png(&f, "mask_a", paint(paint(solid(40, 40, 1, 0), 0, 10, 20, 30, 1), 30, 30, 34, 34, 2));
    add_png(&f, "mask_b", paint(solid(40, 40, 1, 0), 10, 10, 30, 30, 1));
    add_field(&f, "mask_type", "labels");
    add_field(&f, "jitter", "[1, 1]");
    add_field(&f, "flip_p", "0");
    add_field(&f, "targets_a",
              "{\"box_format\": \"albumentations\", \"boxes\": [[0, 0.25, 0.5, 0.75], [0.75, "
              "0.75, 0.85, 0.85]], \"labels\": [\"cat\", \"cup\"]}");
    struct http_response r;
    post(srv, &f, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "box_format"), "albumentations");
    json_t *objects = json_object_get(doc, "objects");
    assert_int_equal(json_array_size(objects), 3);
    /* a0's left half [0, 10, 10, 30) over 40 pixels; b0 has no label. */
    json_t *box = json_object_get(json_array_get(objects, 0), "box");
    assert_true(json_number_value(json_array_get(box, 2)) == 0.25);
    assert_true(json_number_value(json_array_get(box, 3)) == 0.75);
    assert_string_equal(json_str(json_array_get(objects, 1), "label"), "cup");
    assert_null(json_object_get(json_array_get(objects, 2), "label"));
    assert_string_equal(json_str(json_array_get(objects, 2), "source"), "b");
    json_decref(doc);
    http_response_free(&r);
    form_free(&f);
    harness_pass(state);
}

static void test_same_seed_same_result(void **state)
{
    struct server *srv = harness_start(state, NULL);
    struct http_response r[3];
    for (int i = 0; i < 3; i++) {
        struct form f = {0};
        add_png(&f, "image_a", paint(solid(48, 40, 3, 10), 5, 5, 20, 30, 90));
        add_png(&f, "image_b", paint(solid(30, 50, 3, 200), 2, 2, 25, 20, 40));
        add_png(&f, "mask_a", paint(solid(48, 40, 1, 0), 5, 5, 20, 30, 255));
        add_png(&f, "mask_b", paint(solid(30, 50, 1, 0), 2, 2, 25, 20, 255));
        add_png(&f, "mask_b", paint(solid(30, 50, 1, 0), 10, 25, 28, 45, 255));
        add_field(&f, "blend_sigma", "2");
        add_field(&f, "seed", i < 2 ? "11" : "12");
        post(srv, &f, &r[i]);
        assert_status(&r[i], 200);
        form_free(&f);
    }
    /* Large-scale jittering by default: the output has a's size. */
    json_t *doc = http_json(&r[0]);
    assert_int_equal(json_int(doc, "width"), 48);
    assert_int_equal(json_int(doc, "height"), 40);
    json_t *jitter = json_object_get(json_object_get(doc, "jitter"), "b");
    const double scale = json_number_value(json_object_get(jitter, "scale"));
    assert_true(scale >= 0.1 && scale <= 2.0);
    json_decref(doc);
    assert_int_equal(r[0].body_size, r[1].body_size);
    assert_memory_equal(r[0].body, r[1].body, r[0].body_size);
    assert_true(r[0].body_size != r[2].body_size || memcmp(r[0].body, r[2].body, r[0].body_size));
    for (int i = 0; i < 3; i++)
        http_response_free(&r[i]);
    harness_pass(state);
}

/* Posts f; expects status and code, with needle (may be NULL) in the message. */
static void expect_post(const struct server *srv, const struct form *f, long status,
                        const char *code, const char *needle)
{
    struct http_response r;
    post(srv, f, &r);
    assert_error_envelope(&r, status, code);
    if (needle) assert_contains(r.body, needle);
    http_response_free(&r);
}

/* The scene with one part or field replaced; expects status and code with needle in the
 * message. */
static void expect_error(const struct server *srv, size_t masks_a, const char *targets_a,
                         const char *extra_name, const char *extra, long status, const char *code,
                         const char *needle)
{
    struct form f = {0};
    add_scene(&f, masks_a);
    if (targets_a) add_field(&f, "targets_a", targets_a);
    if (extra_name) add_field(&f, extra_name, extra);
    expect_post(srv, &f, status, code, needle);
    form_free(&f);
}

static void test_bad_boxes(void **state)
{
    struct server *srv = harness_start(state, NULL);
    expect_error(srv, 3, "{\"boxes\": [[0, 10, 20, 30], [30, 30, 41, 34], [12, 12, 18, 18]]}", NULL,
                 NULL, 422, "unprocessable", "targets_a: boxes[1]: [30, 30, 41, 34]");
    expect_error(srv, 3, "{\"boxes\": [[0, 10, 20, 30], [30, 30, 34, 34], [18, 12, 12, 18]]}", NULL,
                 NULL, 422, "unprocessable", "boxes[2]: [18, 12, 12, 18] is inverted");
    expect_error(srv, 3, "{\"boxes\": [[0, 10, \"x\", 30], [30, 30, 34, 34], [12, 12, 18, 18]]}",
                 NULL, NULL, 422, "unprocessable", "boxes[0]: value 2 is not a finite number");
    expect_error(srv, 3, "{\"boxes\": [[0, 10, 20, 30], [30, 30, 34], [12, 12, 18, 18]]}", NULL,
                 NULL, 422, "unprocessable", "boxes[1]: has 3 values");
    expect_error(srv, 3,
                 "{\"box_format\": \"yolo\", \"boxes\": [[0.25, 0.5, 0.5, 0.5], [0.8, 0.8, 0.1, "
                 "0.1], [0.375, 0.375, 0.15, -0.15]]}",
                 NULL, NULL, 422, "unprocessable", "boxes[2]: width 0.15 and height -0.15");
    expect_error(srv, 3, "{\"box_format\": \"xywh\"}", NULL, NULL, 422, "unprocessable",
                 "box_format");
    expect_error(srv, 3, "{\"boxes\": [[0, 10, 20, 30]]}", NULL, NULL, 422, "unprocessable",
                 "targets_a: 1 boxes, 3 masks and 1 labels disagree");
    expect_error(srv, 3, "{\"boxes\": [[0, 10, 20, 30]], \"extra\": 1}", NULL, NULL, 422,
                 "unprocessable", "unknown key");
    expect_error(srv, 3, "not json", NULL, NULL, 422, "unprocessable", "targets_a: not a JSON");
    harness_pass(state);
}

static void test_bad_masks_and_images(void **state)
{
    struct server *srv = harness_start(state, "{\"max_targets\": 2}");
    /* Three masks for a, max_targets 2. */
    expect_error(srv, 3, NULL, NULL, NULL, 422, "unprocessable", "max_targets is 2");
    /* A mask of another size. */
    struct form f = {0};
    add_scene(&f, 1);
    add_png(&f, "mask_a", solid(20, 40, 1, 255));
    expect_post(srv, &f, 422, "unprocessable", "masks[1]: 20x40 differs from the image's 40x40");
    form_free(&f);
    /* Masks that are no image, or half of one; a colour mask. */
    f = (struct form){0};
    add_scene(&f, 1);
    add_bytes(&f, "mask_a", "garbage!", 8);
    expect_post(srv, &f, 415, "unsupported_media_type", "mask_a[1]");
    f.parts[f.count - 1] = f.parts[2]; /* the first mask_a PNG, cut short */
    f.parts[f.count - 1].size /= 2;
    expect_post(srv, &f, 422, "undecodable", "mask_a[1]");
    form_free(&f);
    f = (struct form){0};
    add_scene(&f, 1);
    add_png(&f, "mask_a", solid(40, 40, 3, 255));
    expect_post(srv, &f, 422, "unprocessable", "mask_a[1]: has 3 channels");
    form_free(&f);
    /* Images: garbage, half a PNG, none. */
    f = (struct form){0};
    add_scene(&f, 1);
    f.parts[0].data = "not an image at all";
    f.parts[0].size = 19;
    expect_post(srv, &f, 415, "unsupported_media_type", NULL);
    f.parts[0] = f.parts[1];
    f.parts[0].name = "image_a";
    f.parts[0].size /= 2;
    expect_post(srv, &f, 422, "undecodable", NULL);
    f.parts[1].name = "image_c";
    expect_post(srv, &f, 422, "unprocessable", "image_b: send exactly one image part");
    form_free(&f);
    /* Parameters. */
    expect_error(srv, 1, NULL, "jitter", "huge", 422, "unprocessable", "jitter");
    expect_error(srv, 1, NULL, "blend_sigma", "-1", 422, "unprocessable", "blend_sigma");
    expect_error(srv, 1, NULL, "mask_type", "polygons", 422, "unprocessable", "mask_type");
    expect_error(srv, 1, NULL, "format", "gif", 422, "unprocessable", "format");
    expect_error(srv, 1, NULL, "jitter", "[2, 1]", 422, "unprocessable", "jitter: [2, 1]");
    harness_pass(state);
}

/* Dense masks and jittered images are bounded by max_pixels: all masks of an image hold at most
 * 16 times it, a resized image at most 4 times it (LSJ's doubled sides). */
static void test_memory_bounds(void **state)
{
    struct server *srv = harness_start(state, "{\"max_pixels\": 1600}");
    struct form f = {0};
    add_scene(&f, 0);
    struct img *labels = solid(40, 40, 1, 0);
    for (int i = 0; i < 17; i++)
        img_row(labels, i)[i] = (uint8_t)(i + 1);
    add_png(&f, "mask_a", labels);
    add_field(&f, "mask_type", "labels");
    expect_post(srv, &f, 413, "payload_too_large",
                "mask_a: 17 masks of 40x40 are past 16 x max_pixels");
    form_free(&f);
    expect_error(srv, 1, NULL, "jitter", "[3, 3]", 413, "payload_too_large",
                 "image a: the jittering's scale 3 makes it 120x120, past 6400 pixels");
    harness_pass(state);
}

/* config/copy-paste.schema.json is the schema /openapi.json describes, but for "$schema" and
 * "$id". */
static void test_schema_matches_openapi(void **state)
{
    json_t *openapi = harness_load_source_json("config/openapi.json");
    json_t *schemas = json_object_get(json_object_get(openapi, "components"), "schemas");
    json_t *file = harness_load_source_json("config/copy-paste.schema.json");
    json_object_del(file, "$schema");
    json_object_del(file, "$id");
    if (!json_equal(file, json_object_get(schemas, "CopyPasteResponse")))
        fail_msg("config/copy-paste.schema.json differs from openapi.json's CopyPasteResponse");
    json_decref(file);
    json_decref(openapi);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_crafted_scene),
        HARNESS_TEST(test_label_maps_and_boxes),
        HARNESS_TEST(test_same_seed_same_result),
        HARNESS_TEST(test_bad_boxes),
        HARNESS_TEST(test_bad_masks_and_images),
        HARNESS_TEST(test_memory_bounds),
        cmocka_unit_test(test_schema_matches_openapi),
    };
    return harness_main(argc, argv, "copy-paste", tests, sizeof tests / sizeof tests[0]);
}
