/* Integration tests of /v1/ctaugment, on the real binary. The expectations are independent of the
 * handler: the rates a feedback leaves are worked out by hand from the reference's update
 * (rate = 0.99 rate + 0.01 proximity, proximity = 1 - 0.5 sum |p - onehot(y)|, the bin
 * int(value * bins * 0.999)); the views are checked against the engine called directly (the
 * policy a fresh state draws for the seed, input and sample: ctaug_draw; the pixels that policy
 * makes: ctaug_apply), so the server's plumbing of seeds, indices and documents is what is tested.
 * Then every refusal, unknown ids, a restart, the limits and the scopes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/codec.h"
#include "job_client.h"
#include "policy/policy.h"

#define PHOTO "tests/parity/fixtures/predict/photo.png" /* 61 x 47 RGB */
#define RGB   "tests/parity/fixtures/codec/png_rgb.png" /* 40 x 30 RGB */

/* method path with a JSON body (or none) and key: the response's JSON, which must have status. */
static json_t *send_expect(const struct server *srv, const char *method, const char *path,
                           const char *body, const char *key, long status)
{
    struct http_response r;
    job_send(srv, method, path, body, key, &r);
    if (r.status != status)
        fail_msg("%s %s: %ld, not %ld: %s", method, path, r.status, status, r.body);
    json_t *doc = status == 204 ? NULL : http_json(&r);
    http_response_free(&r);
    return doc;
}

/* A request that must be refused with status, the error's message holding needle. */
static void refused(const struct server *srv, const char *method, const char *path,
                    const char *body, long status, const char *needle)
{
    struct http_response r;
    job_send(srv, method, path, body, NULL, &r);
    if (r.status != status)
        fail_msg("%s %s %s: %ld, not %ld: %s", method, path, body ? body : "", r.status, status,
                 r.body);
    assert_contains(r.body, needle);
    http_response_free(&r);
}

/* A request with key that must be refused with status, in the error envelope with code. */
static void refused_as(const struct server *srv, const char *method, const char *path,
                       const char *key, long status, const char *code)
{
    struct http_response r;
    job_send(srv, method, path, method[0] == 'P' ? "{\"feedback\": []}" : NULL, key, &r);
    assert_error_envelope(&r, status, code);
    http_response_free(&r);
}

/* POST /v1/ctaugment with body (NULL: none): 201 with Location naming the state, whose id goes
 * into id; its document. */
static json_t *create(const struct server *srv, const char *body, char id[64])
{
    struct http_response r;
    job_send(srv, "POST", "/v1/ctaugment", body, NULL, &r);
    if (r.status != 201) fail_msg("POST /v1/ctaugment: %ld: %s", r.status, r.body);
    json_t *doc = http_json(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(doc, "id")));
    assert_int_equal(strlen(id), 24);
    char location[128];
    snprintf(location, sizeof location, "/v1/ctaugment/%s", id);
    assert_string_equal(http_header(&r, "Location"), location);
    http_response_free(&r);
    return doc;
}

/* The path /v1/ctaugment/{id}[/tail]. */
static const char *path_of(const char *id, const char *tail)
{
    static char path[160];
    snprintf(path, sizeof path, "/v1/ctaugment/%s%s%s", id, tail ? "/" : "", tail ? tail : "");
    return path;
}

/* A rate (or probability) of a state's document: member (rates or probabilities) [op][arg][bin]. */
static double bin_of(const json_t *doc, const char *member, const char *op, int arg, int bin)
{
    const json_t *per_op = json_object_get(doc, member);
    if (!strcmp(member, "rates")) per_op = json_object_get(json_object_get(doc, "state"), "rates");
    const json_t *v = json_array_get(json_array_get(json_object_get(per_op, op), arg), bin);
    if (!json_is_number(v)) fail_msg("%s/%s/%d/%d: not a number", member, op, arg, bin);
    return json_number_value(v);
}

/* Fails unless every rate of doc is 1 but the bins listed in changed ("op/arg/bin" each), whose
 * rates are rates[]. */
static void expect_rates(const json_t *doc, const char *const changed[], const float rates[],
                         int count)
{
    const json_t *all = json_object_get(json_object_get(doc, "state"), "rates");
    const char *op;
    const json_t *args;
    json_object_foreach((json_t *)all, op, args)
    {
        for (size_t a = 0; a < json_array_size(args); a++)
            for (size_t b = 0; b < json_array_size(json_array_get(args, a)); b++) {
                char name[64];
                snprintf(name, sizeof name, "%s/%zu/%zu", op, a, b);
                double expected = 1.0;
                for (int i = 0; i < count; i++)
                    if (!strcmp(changed[i], name)) expected = rates[i];
                const double got = bin_of(doc, "rates", op, (int)a, (int)b);
                if (got != expected) fail_msg("rate %s: %.9g, not %.9g", name, got, expected);
            }
    }
}

static void test_create_show_list_delete(void **state)
{
    struct server *srv = harness_start(state, NULL);
    char id[64], other[64];
    json_t *doc = create(srv, NULL, id);
    /* The reference's settings: 19 ops, 17 bins an argument but posterize's 8 and rescale's 17
     * and 6, identity none; every rate 1, so every bin equally likely. */
    const json_t *st = json_object_get(doc, "state");
    assert_int_equal(json_integer_value(json_object_get(st, "depth")), 2);
    assert_true(json_real_value(json_object_get(st, "decay")) == 0.99);
    assert_true(json_real_value(json_object_get(st, "threshold")) == 0.8);
    assert_int_equal(json_integer_value(json_object_get(doc, "revision")), 0);
    assert_int_equal(json_object_size(json_object_get(st, "rates")), 19);
    const json_t *rates = json_object_get(st, "rates");
    assert_int_equal(json_array_size(json_object_get(rates, "identity")), 0);
    assert_int_equal(json_array_size(json_array_get(json_object_get(rates, "posterize"), 0)), 8);
    assert_int_equal(json_array_size(json_array_get(json_object_get(rates, "rescale"), 0)), 17);
    assert_int_equal(json_array_size(json_array_get(json_object_get(rates, "rescale"), 1)), 6);
    expect_rates(doc, NULL, NULL, 0);
    assert_true(bin_of(doc, "probabilities", "rotate", 0, 3) == (double)(1.0f / 17.0f));
    assert_true(bin_of(doc, "probabilities", "posterize", 0, 7) == (double)(1.0f / 8.0f));
    json_t *shown = send_expect(srv, "GET", path_of(id, NULL), NULL, NULL, 200);
    assert_true(json_equal(shown, doc));
    json_decref(shown);
    json_decref(doc);

    /* Overrides, each checked. */
    doc = create(srv, "{\"depth\": 3, \"decay\": 0.9, \"threshold\": 0.5}", other);
    st = json_object_get(doc, "state");
    assert_int_equal(json_integer_value(json_object_get(st, "depth")), 3);
    assert_true(json_real_value(json_object_get(st, "decay")) == 0.9);
    assert_true(json_real_value(json_object_get(st, "threshold")) == 0.5);
    json_decref(doc);
    static const struct {
        const char *body;
        long status;
        const char *needle;
    } bad[] = {
        {"{\"depth\": 0}", 422, "depth: 0 is not in 1..8"},
        {"{\"depth\": 9}", 422, "depth: 9 is not in 1..8"},
        {"{\"depth\": 2.5}", 422, "depth: an integer"},
        {"{\"decay\": 1}", 422, "decay: 1 is not in (0, 1)"},
        {"{\"decay\": \"x\"}", 422, "decay: a number"},
        {"{\"threshold\": 1.5}", 422, "threshold: 1.5 is not in [0, 1]"},
        {"{\"depht\": 2}", 422, "depht: unknown member"},
        {"[2]", 422, "the body must be an object"},
        {"{\"depth\": ", 400, "the body is not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(srv, "POST", "/v1/ctaugment", bad[i].body, bad[i].status, bad[i].needle);

    /* The list, oldest first, without the states. */
    json_t *list = send_expect(srv, "GET", "/v1/ctaugment", NULL, NULL, 200);
    const json_t *states = json_object_get(list, "states");
    assert_int_equal(json_array_size(states), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(states, 0), "id")), id);
    assert_string_equal(json_string_value(json_object_get(json_array_get(states, 1), "id")), other);
    assert_null(json_object_get(json_array_get(states, 0), "state"));
    json_decref(list);

    assert_null(send_expect(srv, "DELETE", path_of(id, NULL), NULL, NULL, 204));
    refused(srv, "GET", path_of(id, NULL), NULL, 404, "no CTAugment state");
    refused(srv, "DELETE", path_of(id, NULL), NULL, 404, "no CTAugment state");
    harness_pass(state);
}

/* Multipart parts "image" of the files, and fields seed=7 and samples=2. */
struct upload {
    char *data[2];
    size_t size[2];
    struct http_part parts[4];
};

static void upload_read(struct upload *u, const char *first, const char *second)
{
    const char *files[2] = {first, second};
    for (int i = 0; i < 2; i++) {
        u->data[i] = harness_read_source_file(files[i], &u->size[i]);
        u->parts[i] = (struct http_part){"image", "x.png", "image/png", u->data[i], u->size[i]};
    }
    u->parts[2] = (struct http_part){"seed", NULL, NULL, "7", 1};
    u->parts[3] = (struct http_part){"samples", NULL, NULL, "2", 1};
}

static void upload_free(struct upload *u)
{
    free(u->data[0]);
    free(u->data[1]);
}

static struct img *decode(const void *data, size_t size)
{
    struct eng_error err;
    struct img *im = img_decode(data, size, NULL, NULL, &err);
    if (!im) fail_msg("decode: %s", err.message);
    return im;
}

static struct img *decode_base64(const char *text)
{
    size_t len = strlen(text);
    unsigned char *bytes = malloc(len);
    int size = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
    assert_true(size > 0);
    while (len > 0 && text[len - 1] == '=') { /* EVP_DecodeBlock counts the padding's zeros */
        size--;
        len--;
    }
    struct img *im = decode(bytes, (size_t)size);
    free(bytes);
    return im;
}

static int same_pixels(const struct img *a, const struct img *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return 0;
    for (int y = 0; y < a->height; y++)
        if (memcmp(img_row(a, y), img_row(b, y), (size_t)a->width * a->channels)) return 0;
    return 1;
}

/* POSTs the two images to route (augment or probe) of a fresh state and checks each of the 4
 * views: its policy is the one ctaug_draw gives a fresh state for (7, input, sample), and its
 * pixels are ctaug_apply's of that policy on the input (with the strong view's Cutout unless
 * probing). */
static void check_views(void **state, const char *route, int probe)
{
    struct server *srv = harness_start(state, NULL);
    char id[64];
    json_decref(create(srv, NULL, id));
    struct upload u;
    upload_read(&u, PHOTO, RGB);
    struct http_request rq = {.path = path_of(id, route), .parts = u.parts, .part_count = 4};
    struct http_response r;
    http_send(srv, &rq, &r);
    if (r.status != 200) fail_msg("%s: %ld: %s", route, r.status, r.body);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    assert_int_equal(json_integer_value(json_object_get(doc, "seed")), 7);
    assert_int_equal(json_integer_value(json_object_get(doc, "revision")), 0);
    const json_t *results = json_object_get(doc, "results");
    assert_int_equal(json_array_size(results), 4);
    struct eng_error err;
    struct ctaug *fresh = ctaug_new(NULL, &err);
    struct img *inputs[2] = {decode(u.data[0], u.size[0]), decode(u.data[1], u.size[1])};
    for (size_t j = 0; j < 4; j++) {
        const json_t *item = json_array_get(results, j);
        const uint32_t input = (uint32_t)json_integer_value(json_object_get(item, "input"));
        const uint32_t sample = (uint32_t)json_integer_value(json_object_get(item, "sample"));
        assert_int_equal(input, j / 2);
        assert_int_equal(sample, j % 2);
        assert_true(json_is_true(json_object_get(item, "cutout")) == !probe);
        struct ctaug_policy drawn, got;
        ctaug_draw(fresh, probe, 7, input, sample, &drawn);
        json_t *expected = ctaug_policy_to_json(&drawn);
        if (!json_equal(expected, json_object_get(item, "policy"))) {
            char *a = json_dumps(expected, JSON_COMPACT);
            char *b = json_dumps(json_object_get(item, "policy"), JSON_COMPACT);
            fail_msg("view %zu: policy %s, not %s", j, b, a);
        }
        json_decref(expected);
        assert_int_equal(ctaug_policy_from_json(json_object_get(item, "policy"), &got, &err), 0);
        struct img *want = ctaug_apply(&got, inputs[input], !probe, 7, input, sample, &err);
        struct img *out = decode_base64(json_string_value(json_object_get(item, "data")));
        assert_string_equal(json_string_value(json_object_get(item, "content_type")), "image/png");
        assert_int_equal(json_integer_value(json_object_get(item, "width")), out->width);
        if (!same_pixels(want, out)) fail_msg("view %zu: not the pixels of its policy", j);
        img_free(want);
        img_free(out);
    }
    img_free(inputs[0]);
    img_free(inputs[1]);
    ctaug_free(fresh);
    json_decref(doc);
    upload_free(&u);
    harness_pass(state);
}

static void test_augment(void **state)
{
    check_views(state, "augment", 0);
}

/* The base64 of a file of the source tree, as a JSON string's text (malloc'd). */
static char *base64_file(const char *file)
{
    size_t size;
    char *data = harness_read_source_file(file, &size);
    char *text = malloc(4 * ((size + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)text, (const unsigned char *)data, (int)size);
    free(data);
    return text;
}

/* The same images as base64 in a JSON body give the same views as multipart parts; a bad one is
 * named by its index. */
static void test_json_images(void **state)
{
    struct server *srv = harness_start(state, NULL);
    char id[64], path[200];
    json_decref(create(srv, NULL, id));
    struct upload u;
    upload_read(&u, PHOTO, RGB);
    struct http_request rq = {.path = path_of(id, "augment"), .parts = u.parts, .part_count = 4};
    struct http_response r;
    http_send(srv, &rq, &r);
    assert_status(&r, 200);
    json_t *multipart = http_json(&r);
    http_response_free(&r);
    upload_free(&u);
    char *a = base64_file(PHOTO), *b = base64_file(RGB);
    json_t *body = json_pack("{s:[s, s]}", "images", a, b);
    char *text = json_dumps(body, JSON_COMPACT);
    snprintf(path, sizeof path, "%s?seed=7&samples=2", path_of(id, "augment"));
    json_t *doc = send_expect(srv, "POST", path, text, NULL, 200);
    assert_true(json_equal(doc, multipart));
    json_decref(doc);
    free(text);
    json_decref(body);

    /* A data: URL's prefix is allowed; a string that is not base64 is named by its index. */
    body = json_pack("{s:[s++, s]}", "images", "data:image/png;base64,", b, "", "not base64!");
    text = json_dumps(body, JSON_COMPACT);
    refused(srv, "POST", path, text, 422, "images/1: is not valid base64");
    free(text);
    json_decref(body);
    refused(srv, "POST", path, "{\"images\": [1]}", 422, "images/0: must be a base64 string");
    refused(srv, "POST", path, "{\"images\": []}", 422, "images: an array of 1 to max_inputs");
    refused(srv, "POST", path, "{\"image\": []}", 422, "image: unknown member");
    free(a);
    free(b);
    json_decref(multipart);
    harness_pass(state);
}

static void test_probe(void **state)
{
    check_views(state, "probe", 1);
}

/* One image (a file of the source tree) to route of id as the raw body, with query (NULL: none),
 * which must be answered status, the body holding needle. */
static void post_image_expect(const struct server *srv, const char *id, const char *route,
                              const char *file, const char *query, long status, const char *needle)
{
    size_t size;
    char *data = harness_read_source_file(file, &size);
    char path[200];
    snprintf(path, sizeof path, "%s%s", path_of(id, route), query ? query : "");
    struct http_response r;
    http_post(srv, path, "image/png", data, size, &r);
    free(data);
    if (r.status != status) fail_msg("%s: %ld, not %ld: %s", path, r.status, status, r.body);
    assert_contains(r.body, needle);
    http_response_free(&r);
}

static void test_image_refusals(void **state)
{
    struct server *srv = harness_start(state, "{\"max_work\": 20000, \"max_inputs\": 1}");
    char id[64];
    json_decref(create(srv, NULL, id));
    /* RGB only, as the reference. */
    post_image_expect(srv, id, "augment", "tests/parity/fixtures/predict/gray.png", NULL, 422,
                      "image 0: greyscale; CTAugment takes RGB images");
    post_image_expect(srv, id, "probe", "tests/parity/fixtures/codec/png_rgba.png", NULL, 422,
                      "image 0: RGB with alpha");
    /* The server's limits: 40 x 30 x (2 ops + cutout + encoding) = 4800 op-pixels a view. */
    post_image_expect(srv, id, "augment", RGB, "?samples=5", 413, "max_work");
    post_image_expect(srv, id, "augment", RGB, "?samples=4&seed=3", 200, "\"seed\":3");
    struct upload u;
    upload_read(&u, RGB, RGB);
    struct http_request rq = {.path = path_of(id, "augment"), .parts = u.parts, .part_count = 2};
    struct http_response r;
    http_send(srv, &rq, &r);
    assert_error_envelope(&r, 422, "unprocessable");
    assert_contains(r.body, "max_inputs");
    http_response_free(&r);
    upload_free(&u);
    post_image_expect(srv, id, "augment", RGB, "?seed=-1", 422, "seed: must be a whole number");
    post_image_expect(srv, "0123456789abcdef01234567", "augment", RGB, NULL, 404,
                      "no CTAugment state");
    post_image_expect(srv, "0123456789abcdef01234567", "probe", RGB, NULL, 404,
                      "no CTAugment state");
    harness_pass(state);
}

/* Rates after feedback, by hand: proximity = 1 - 0.5 (|0.7 - 1| + 0.2 + 0.1) = 0.7, each used bin
 * 0.99 * 1 + 0.01 * 0.7 = 0.997; rotate at 0.5: bin int(0.5 * 17 * 0.999) = 8; rescale at (0.2,
 * 0.9): bins int(3.3966) = 3 and int(0.9 * 6 * 0.999) = int(5.3946) = 5; solarize at 0.9418, drawn
 * from bin 16 (16.01 / 17): the reference's quirk updates int(15.994) = 15. */
#define FIRST_FEEDBACK                                                                             \
    "{\"feedback\": [{\"policy\": [[\"rotate\", [0.5]], [\"rescale\", [0.2, 0.9]]], "              \
    "\"probabilities\": [0.7, 0.2, 0.1], \"label\": 0}, "                                          \
    "{\"policy\": [[\"solarize\", [0.9418]], [\"identity\", []]], \"proximity\": 0.7}]}"

static void test_feedback(void **state)
{
    struct server *srv = harness_start(state, NULL);
    char id[64];
    json_decref(create(srv, NULL, id));
    const char *feedback = path_of(id, "feedback");
    char path[160];
    snprintf(path, sizeof path, "%s", feedback);
    json_t *doc = send_expect(srv, "POST", path, FIRST_FEEDBACK, NULL, 200);
    const char *bins[] = {"rotate/0/8", "rescale/0/3", "rescale/1/5", "solarize/0/15"};
    const float once = (float)(0.99 * 1.0 + 0.01 * 0.7);
    float rates[] = {once, once, once, once};
    expect_rates(doc, bins, rates, 4);
    assert_int_equal(json_integer_value(json_object_get(doc, "revision")), 1);
    /* rotate's probabilities: p = rate + 0.01, over its max (1.01), none under 0.8; bin 8 has
     * 1.007 / 1.01 of another's share. */
    const double q0 = bin_of(doc, "probabilities", "rotate", 0, 0);
    const double q8 = bin_of(doc, "probabilities", "rotate", 0, 8);
    assert_true(q8 < q0);
    assert_true(q8 / q0 > 1.007 / 1.01 - 1e-6 && q8 / q0 < 1.007 / 1.01 + 1e-6);
    json_decref(doc);

    /* A second feedback on bin 8 with proximity 0: 0.99 * 0.997 (as float32). */
    doc = send_expect(srv, "POST", path,
                      "{\"feedback\": [{\"policy\": [[\"rotate\", [0.49]]], \"proximity\": 0}]}",
                      NULL, 200);
    rates[0] = (float)(0.99 * (double)once);
    expect_rates(doc, bins, rates, 4);
    assert_int_equal(json_integer_value(json_object_get(doc, "revision")), 2);
    json_decref(doc);

    /* Refusals name the item's member by its JSON pointer; a bad item anywhere applies none. */
    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"{\"feedback\": [{\"policy\": [[\"spin\", [0.5]]], \"proximity\": 1}]}",
         "feedback/0/policy/0: [op, [values]] with a CTAugment op"},
        {"{\"feedback\": [{\"policy\": [[\"rotate\", [0.5, 0.1]]], \"proximity\": 1}]}",
         "feedback/0/policy/0/1: rotate takes 1 value(s)"},
        {"{\"feedback\": [{\"policy\": [[\"rotate\", [1.5]]], \"proximity\": 1}]}",
         "feedback/0/policy/0/1/0: rotate's value 1.5 is not in [0, 1]"},
        {"{\"feedback\": [{\"policy\": [[\"rotate\", [\"a\"]]], \"proximity\": 1}]}",
         "feedback/0/policy/0/1/0: a number is required"},
        {"{\"feedback\": [{\"policy\": [[\"rotate\", [0.5]]], \"proximity\": 1}, "
         "{\"policy\": [], \"probabilities\": [0.5, 0.4], \"label\": 0}]}",
         "feedback/1/probabilities: they sum to 0.9, not 1"},
        {"{\"feedback\": [{\"policy\": [], \"probabilities\": [1.1, -0.1], \"label\": 0}]}",
         "feedback/0/probabilities/0: 1.1 is not in [0, 1]"},
        {"{\"feedback\": [{\"policy\": [], \"probabilities\": [0.5, \"x\"], \"label\": 0}]}",
         "feedback/0/probabilities/1: a number is required"},
        {"{\"feedback\": [{\"policy\": [], \"probabilities\": [0.5, 0.5], \"label\": 2}]}",
         "feedback/0/label: 2 is not a class in 0..1"},
        {"{\"feedback\": [{\"policy\": [], \"probabilities\": [0.5, 0.5]}]}",
         "feedback/0/label: an integer"},
        {"{\"feedback\": [{\"policy\": [], \"proximity\": 1.5}]}",
         "feedback/0/proximity: a number in [0, 1]"},
        {"{\"feedback\": [{\"policy\": [], \"proximity\": 1, \"label\": 0}]}",
         "feedback/0/proximity: give either proximity or probabilities and label"},
        {"{\"feedback\": [{\"proximity\": 1}]}", "feedback/0/policy: required"},
        {"{\"feedback\": [{\"policy\": [], \"proximity\": 1, \"weight\": 2}]}",
         "feedback/0/weight: unknown member"},
        {"{\"feedback\": [3]}", "feedback/0: an object is required"},
        {"{\"feedback\": []}", "feedback: required, a non-empty array"},
        {"{\"items\": []}", "feedback: required"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(srv, "POST", path, bad[i].body, 422, bad[i].needle);
    refused(srv, "POST", path, "{", 400, "the body is not JSON");
    doc = send_expect(srv, "GET", path_of(id, NULL), NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "revision")), 2);
    expect_rates(doc, bins, rates, 4);
    json_decref(doc);
    refused(srv, "POST", "/v1/ctaugment/0123456789abcdef01234567/feedback",
            "{\"feedback\": [{\"policy\": [], \"proximity\": 1}]}", 404, "no CTAugment state");

    /* The state outlives the server. */
    assert_int_equal(server_stop(srv, SIGTERM, 15000), 0);
    struct server *second = job_restart_on(state, srv, "{}");
    doc = send_expect(second, "GET", path_of(id, NULL), NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "revision")), 2);
    expect_rates(doc, bins, rates, 4);
    json_decref(doc);
    harness_pass(state);
}

static void test_scopes(void **state)
{
    char augment_key[128], infer_key[128], settings[1024];
    json_t *labeller = harness_keygen("labeller", "augment", augment_key);
    json_t *reader = harness_keygen("reader", "infer", infer_key);
    char *a = json_dumps(labeller, JSON_COMPACT), *b = json_dumps(reader, JSON_COMPACT);
    snprintf(settings, sizeof settings, "{\"api_keys\": [%s, %s]}", a, b);
    free(a);
    free(b);
    json_decref(labeller);
    json_decref(reader);
    struct server *srv = harness_start(state, settings);
    refused_as(srv, "POST", "/v1/ctaugment", NULL, 401, "unauthorized");
    refused_as(srv, "POST", "/v1/ctaugment", infer_key, 403, "forbidden");
    json_t *doc = send_expect(srv, "POST", "/v1/ctaugment", NULL, augment_key, 201);
    assert_string_equal(json_string_value(json_object_get(doc, "owner")), "labeller");
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    /* Any key reads; drawing, teaching and deleting need the augment scope. */
    json_decref(send_expect(srv, "GET", path_of(id, NULL), NULL, infer_key, 200));
    json_decref(send_expect(srv, "GET", "/v1/ctaugment", NULL, infer_key, 200));
    refused_as(srv, "POST", path_of(id, "feedback"), infer_key, 403, "forbidden");
    refused_as(srv, "POST", path_of(id, "augment"), infer_key, 403, "forbidden");
    refused_as(srv, "POST", path_of(id, "probe"), infer_key, 403, "forbidden");
    json_decref(send_expect(srv, "POST", path_of(id, "feedback"),
                            "{\"feedback\": [{\"policy\": [], \"proximity\": 1}]}", augment_key,
                            200));
    refused_as(srv, "DELETE", path_of(id, NULL), infer_key, 403, "forbidden");
    assert_null(send_expect(srv, "DELETE", path_of(id, NULL), NULL, augment_key, 204));
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_create_show_list_delete),
        HARNESS_TEST(test_augment),
        HARNESS_TEST(test_probe),
        HARNESS_TEST(test_json_images),
        HARNESS_TEST(test_image_refusals),
        HARNESS_TEST(test_feedback),
        HARNESS_TEST(test_scopes),
    };
    return harness_main(argc, argv, "integration.ctaugment", tests, sizeof tests / sizeof tests[0]);
}
