/* /v1/datasets against the real binary, on datasets the test writes itself (libarchive's writer,
 * tests/unit/data_build.c): uploads as tar.gz, zip and a multipart part, the same content again
 * (one dataset under three ids: one cache and two links on disk, splits shared, removal in order),
 * a server-side path and paths that leave datasets_dir, the counts the documents give against the
 * archive's own, splits drawn twice from one seed, thumbnails decoded back to the pixels written,
 * removal (and 409 while a job names the dataset), hostile archives (each failing with its
 * reason, nothing written outside the dataset's folder), a body past max_dataset_bytes, and
 * kill -9 during an import (a first one, and one of content imported before). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "data_build.h"
#include "harness.h"
#include "job_client.h"
#include "image/codec.h"

/* The absolute name a hostile archive holds: it must never be written. */
#define ABSOLUTE "/tmp/augserve-test-datasets-absolute.png"
#define SIDE     8

/* ---- The datasets -------------------------------------------------------------------------- */

/* The test's dataset: per split and class, images named s<seed>.png whose pixels are
 * db_png(SIDE, SIDE, 3, seed), so a thumbnail's source names the pixels it must have. */
static const struct {
    const char *folder;
    int count;
} layout[] = {{"train/cat", 4}, {"train/dog", 3}, {"test/cat", 2}, {"test/dog", 1}};
#define LAYOUT_FILES 10

struct files {
    struct db_entry entries[LAYOUT_FILES];
    char names[LAYOUT_FILES][64];
    void *png[LAYOUT_FILES];
};

/* The layout under prefix ("" or "top/"), seeds from first_seed on. */
static void files_make(struct files *f, const char *prefix, int first_seed)
{
    int k = 0;
    for (size_t c = 0; c < sizeof layout / sizeof *layout; c++)
        for (int i = 0; i < layout[c].count; i++, k++) {
            size_t size;
            f->png[k] = db_png(SIDE, SIDE, 3, first_seed + k, &size);
            snprintf(f->names[k], sizeof f->names[k], "%s%s/s%03d.png", prefix, layout[c].folder,
                     first_seed + k);
            f->entries[k] = (struct db_entry){f->names[k], f->png[k], size, DB_FILE, NULL};
        }
}

static void files_free(struct files *f)
{
    for (int k = 0; k < LAYOUT_FILES; k++)
        free(f->png[k]);
}

/* entries as an archive of this kind, its bytes. */
static char *archive_bytes(enum db_archive kind, const struct db_entry *entries, size_t n,
                           size_t *size)
{
    char *dir = db_temp_dir(), path[1024];
    snprintf(path, sizeof path, "%s/a", dir);
    db_write_archive(path, kind, entries, n);
    char *bytes = harness_read_file(path, size);
    db_remove(dir);
    free(dir);
    return bytes;
}

/* ---- Requests ------------------------------------------------------------------------------ */

/* POSTs body to /v1/datasets?<query> (raw, or as the multipart part "archive" named file). */
static void post_dataset(const struct server *srv, const char *query, const void *body, size_t size,
                         const char *file, struct http_response *r)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/datasets?%s", query);
    const struct http_part part = {"archive", file, "application/octet-stream", body, size};
    const char *const headers[] = {"Content-Type: application/octet-stream", NULL};
    struct http_request req = {.method = "POST", .path = path, .timeout_ms = 30000};
    if (file) {
        req.parts = &part;
        req.part_count = 1;
    } else {
        req.headers = headers;
        req.body = body ? body : "";
        req.body_size = size;
    }
    http_send(srv, &req, r);
}

/* An upload that must be accepted: its id into id (202 and its Location asserted). */
static void upload(const struct server *srv, const char *query, const void *body, size_t size,
                   const char *file, char id[72])
{
    struct http_response r;
    post_dataset(srv, query, body, size, file, &r);
    assert_status(&r, 202);
    json_t *doc = http_json(&r);
    snprintf(id, 72, "%s", json_str(doc, "id"));
    assert_string_equal(json_str(doc, "state"), "importing");
    assert_non_null(json_string_value(json_object_get(doc, "job")));
    char location[128];
    snprintf(location, sizeof location, "/v1/datasets/%s", id);
    assert_string_equal(http_header(&r, "Location"), location);
    json_decref(doc);
    http_response_free(&r);
}

/* The headers get_json sends (an API key's), or NULL. */
static const char *const *get_headers;

static json_t *get_json(const struct server *srv, const char *path, long status)
{
    struct http_response r;
    const struct http_request req = {.path = path, .headers = get_headers};
    http_send(srv, &req, &r);
    assert_status(&r, status);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    return doc;
}

/* Waits for the import job's record to end too: the job ends the dataset's record, then removes
 * its upload, and only then does the runner record the job's end. */
static void wait_import_job(const struct server *srv, const char *job, double deadline)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    for (;;) {
        json_t *doc = get_json(srv, path, 200);
        const char *now = json_str(doc, "state");
        const int ended = strcmp(now, "queued") != 0 && strcmp(now, "running") != 0 &&
                          strcmp(now, "interrupted") != 0;
        json_decref(doc);
        if (ended) return;
        if (harness_now() > deadline) fail_msg("import job %s has not ended", job);
        job_sleep_ms(20);
    }
}

/* The dataset once its import (the record and the job) has ended, which must be in state. */
static json_t *wait_dataset(const struct server *srv, const char *id, const char *state)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    for (double deadline = harness_now() + WAIT_S;;) {
        json_t *doc = get_json(srv, path, 200);
        const char *now = json_str(doc, "state");
        if (strcmp(now, "importing") != 0) {
            if (strcmp(now, state) != 0)
                fail_msg("dataset %s is %s, not %s: %s", id, now, state,
                         json_string_value(json_object_get(doc, "error")));
            wait_import_job(srv, json_str(doc, "job"), deadline);
            return doc;
        }
        json_decref(doc);
        if (harness_now() > deadline) fail_msg("dataset %s is still importing", id);
        job_sleep_ms(50);
    }
}

/* An upload of bytes that must end ready: its document, id into id. */
static json_t *upload_ready(const struct server *srv, const char *query, const void *body,
                            size_t size, const char *file, char id[72])
{
    upload(srv, query, body, size, file, id);
    return wait_dataset(srv, id, "ready");
}

/* ---- What is on disk --------------------------------------------------------------------- */

static char *snapshot_text;
static size_t snapshot_used;
static const char *snapshot_root;

static int snapshot_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    const char *rel = path + strlen(snapshot_root);
    /* The store's files and the logs change with every request: not what an import writes. */
    if (strstr(rel, "augserve.db") || strstr(rel, ".log") || strstr(rel, "stderr")) return 0;
    size_t n = strlen(rel) + 2;
    snapshot_text = realloc(snapshot_text, snapshot_used + n + 1);
    snapshot_used += (size_t)sprintf(snapshot_text + snapshot_used, "%s\n", rel);
    return 0;
}

/* Every path under root but the store's and the logs', one a line (malloc'd). */
static char *snapshot(const char *root)
{
    snapshot_text = calloc(1, 1);
    snapshot_used = 0;
    snapshot_root = root;
    assert_int_equal(nftw(root, snapshot_entry, 16, FTW_PHYS), 0);
    return snapshot_text;
}

/* ---- Tests --------------------------------------------------------------------------------- */

/* Checks a ready dataset's document against the layout. */
static void check_layout(json_t *doc)
{
    assert_int_equal(json_int(doc, "images"), LAYOUT_FILES);
    json_t *classes = json_object_get(doc, "classes");
    assert_int_equal(json_array_size(classes), 2);
    assert_string_equal(json_string_value(json_array_get(classes, 0)), "cat");
    assert_string_equal(json_string_value(json_array_get(classes, 1)), "dog");
    /* Splits in name order: test (cat 2, dog 1), train (cat 4, dog 3). */
    json_t *splits = json_object_get(doc, "splits");
    assert_int_equal(json_array_size(splits), 2);
    const struct {
        const char *name;
        int cat, dog;
    } want[] = {{"test", 2, 1}, {"train", 4, 3}};
    for (size_t s = 0; s < 2; s++) {
        json_t *split = json_array_get(splits, s);
        assert_string_equal(json_str(split, "name"), want[s].name);
        assert_int_equal(json_int(split, "count"), want[s].cat + want[s].dog);
        json_t *per_class = json_object_get(split, "per_class");
        assert_int_equal(json_integer_value(json_array_get(per_class, 0)), want[s].cat);
        assert_int_equal(json_integer_value(json_array_get(per_class, 1)), want[s].dog);
    }
    json_t *size = json_object_get(doc, "size");
    assert_int_equal(json_integer_value(json_array_get(size, 0)), SIDE);
    assert_int_equal(json_integer_value(json_array_get(size, 1)), SIDE);
}

/* The images of split name through dataset id, offset 0, limit 200: the document's images
 * array as text (thumbnails included). */
static char *split_images(const struct server *srv, const char *id, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/datasets/%s/images?split=%s&limit=200", id, name);
    json_t *doc = get_json(srv, path, 200);
    char *text = json_dumps(json_object_get(doc, "images"), JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* first was uploaded, then second and third with the same content: one cache on disk and two
 * links to it, one dataset under three ids (its images, its splits), and removal in order. */
static void check_aliases(const struct server *srv, const char *first, const char *second,
                          const char *third)
{
    /* data_dir/datasets: first's folder, and the others links to it by its bare id. */
    char datasets[PATH_MAX + 16], path[PATH_MAX + 128], target[128];
    snprintf(datasets, sizeof datasets, "%s/datasets", srv->data_dir);
    assert_int_equal(db_count_entries(datasets), 3);
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", datasets, first);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    const char *aliases[] = {second, third};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", datasets, aliases[i]);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        ssize_t n = readlink(path, target, sizeof target - 1);
        assert_true(n > 0);
        target[n] = '\0';
        assert_string_equal(target, first);
    }
    /* The images through either id are the same images. */
    char *through_first = split_images(srv, first, "train");
    char *through_second = split_images(srv, second, "train");
    assert_string_equal(through_first, through_second);
    assert_non_null(strstr(through_first, "\"index\""));
    free(through_first);
    free(through_second);
    /* A split made through an alias is the original's: listed on it, and on the other alias. */
    char url[256];
    struct http_response r;
    snprintf(url, sizeof url, "/v1/datasets/%s/splits", second);
    job_send(srv, "POST", url, "{\"name\": \"shared\", \"from\": \"train\", \"count\": 3}", NULL,
             &r);
    assert_status(&r, 201);
    json_t *doc = http_json(&r);
    assert_string_equal(json_str(doc, "id"), second);
    assert_string_equal(json_str(doc, "same_as"), first);
    json_decref(doc);
    http_response_free(&r);
    doc = get_json(srv, "/v1/datasets", 200);
    json_t *item;
    size_t i;
    json_array_foreach(json_object_get(doc, "datasets"), i, item)
    {
        json_t *splits = json_object_get(item, "splits");
        assert_int_equal(json_integer_value(json_object_get(splits, "shared")), 3);
        assert_int_equal(json_integer_value(json_object_get(splits, "shared-rest")), 4);
    }
    json_decref(doc);
    char *via_first = split_images(srv, first, "shared");
    char *via_third = split_images(srv, third, "shared");
    assert_string_equal(via_first, via_third);
    free(via_first);
    free(via_third);
    /* The original goes last: 409 naming its aliases while they are there. */
    char del_first[128];
    snprintf(del_first, sizeof del_first, "/v1/datasets/%s", first);
    job_send(srv, "DELETE", del_first, NULL, NULL, &r);
    assert_error_envelope(&r, 409, "conflict");
    assert_contains(r.body, second);
    assert_contains(r.body, third);
    assert_contains(r.body, "first");
    http_response_free(&r);
    /* Deleting an alias takes its link and its record, nothing of the dataset. */
    for (size_t k = 0; k < 2; k++) {
        snprintf(url, sizeof url, "/v1/datasets/%s", aliases[k]);
        job_send(srv, "DELETE", url, NULL, NULL, &r);
        assert_status(&r, 204);
        http_response_free(&r);
        http_get_expect(srv, url, 404);
        snprintf(path, sizeof path, "%s/%s", datasets, aliases[k]);
        assert_int_not_equal(lstat(path, &st), 0);
        assert_int_equal(db_count_entries(datasets), 2 - k);
    }
    doc = get_json(srv, del_first, 200);
    assert_int_equal(json_int(doc, "images"), LAYOUT_FILES);
    json_decref(doc);
    job_send(srv, "DELETE", del_first, NULL, NULL, &r);
    assert_status(&r, 204);
    http_response_free(&r);
    assert_int_equal(db_count_entries(datasets), 0);
    doc = get_json(srv, "/v1/datasets", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "datasets")), 0);
    json_decref(doc);
}

static void test_upload_formats(void **state)
{
    struct server *srv = harness_start(state, "{}");
    struct files f;
    files_make(&f, "set/", 1);
    size_t tgz_size, zip_size, tar_size;
    char *tgz = archive_bytes(DB_TGZ, f.entries, LAYOUT_FILES, &tgz_size);
    char *zip = archive_bytes(DB_ZIP, f.entries, LAYOUT_FILES, &zip_size);
    char *tar = archive_bytes(DB_TAR, f.entries, LAYOUT_FILES, &tar_size);

    char first[72], second[72], third[72];
    json_t *doc = upload_ready(srv, "name=pets", tgz, tgz_size, NULL, first);
    check_layout(doc);
    assert_string_equal(json_str(doc, "name"), "pets");
    assert_string_equal(json_str(doc, "origin"), "upload");
    assert_string_equal(json_str(doc, "format"), "folders");
    assert_string_equal(json_str(doc, "source"), "tar.gz");
    assert_null(json_object_get(doc, "same_as"));
    const char *hash = json_str(doc, "hash");
    assert_int_equal(strlen(hash), 64);
    char kept_hash[65];
    snprintf(kept_hash, sizeof kept_hash, "%s", hash);
    json_decref(doc);

    /* The same content as a zip, then as a multipart part: the same hash (so the zip was read
     * to the same images), and the same dataset as the first (aliases of it, check_aliases
     * below): the document is the first's cache's (its source a tar.gz) under the new id. */
    doc = upload_ready(srv, "name=pets-zip", zip, zip_size, NULL, second);
    check_layout(doc);
    assert_string_equal(json_str(doc, "id"), second);
    assert_string_equal(json_str(doc, "name"), "pets-zip");
    assert_string_equal(json_str(doc, "source"), "tar.gz");
    assert_string_equal(json_str(doc, "hash"), kept_hash);
    assert_string_equal(json_str(doc, "same_as"), first);
    json_decref(doc);
    doc = upload_ready(srv, "name=pets-form", tar, tar_size, "my pets (1).tar", third);
    check_layout(doc);
    assert_string_equal(json_str(doc, "same_as"), first);
    json_decref(doc);

    /* The list: every one, with the counts of the archive. */
    doc = get_json(srv, "/v1/datasets", 200);
    json_t *list = json_object_get(doc, "datasets");
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *item = json_array_get(list, i);
        assert_string_equal(json_str(item, "id"), i == 0 ? first : i == 1 ? second : third);
        assert_string_equal(json_str(item, "state"), "ready");
        assert_int_equal(json_int(item, "images"), LAYOUT_FILES);
        assert_int_equal(json_int(item, "classes"), 2);
        json_t *splits = json_object_get(item, "splits");
        assert_int_equal(json_integer_value(json_object_get(splits, "train")), 7);
        assert_int_equal(json_integer_value(json_object_get(splits, "test")), 3);
        if (i == 0)
            assert_null(json_object_get(item, "same_as"));
        else
            assert_string_equal(json_str(item, "same_as"), first);
    }
    json_decref(doc);
    check_aliases(srv, first, second, third);

    /* Uploads are gone once imported: data_dir/uploads is empty. */
    char uploads[PATH_MAX + 16];
    snprintf(uploads, sizeof uploads, "%s/uploads", srv->data_dir);
    assert_int_equal(db_count_entries(uploads), 0);
    /* A multipart body without the part, and an empty body. */
    struct http_response r;
    const struct http_part other = {"file", "x.tar", NULL, tar, tar_size};
    struct http_request req = {
        .method = "POST", .path = "/v1/datasets?name=x", .parts = &other, .part_count = 1};
    http_send(srv, &req, &r);
    assert_error_envelope(&r, 400, "bad_request");
    assert_contains(r.body, "no part \\\"archive\\\"");
    http_response_free(&r);
    post_dataset(srv, "name=x", NULL, 0, NULL, &r);
    assert_error_envelope(&r, 400, "bad_request");
    http_response_free(&r);
    post_dataset(srv, "nom=x", tgz, tgz_size, NULL, &r);
    assert_status(&r, 422);
    assert_contains(r.body, "name: required");
    http_response_free(&r);
    assert_int_equal(db_count_entries(uploads), 0);
    free(tgz);
    free(zip);
    free(tar);
    files_free(&f);
    harness_pass(state);
}

/* The images of split name, offset 0, limit 200: the dataset indices in order, as text. */
static char *split_indices(const struct server *srv, const char *id, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/datasets/%s/images?split=%s&limit=200", id, name);
    json_t *doc = get_json(srv, path, 200);
    char *text = calloc(1, 2048);
    size_t i, used = 0;
    json_t *image;
    json_array_foreach(json_object_get(doc, "images"), i, image) used +=
        (size_t)snprintf(text + used, 2048 - used, "%lld,", (long long)json_int(image, "index"));
    json_decref(doc);
    return text;
}

static void test_splits_and_thumbnails(void **state)
{
    struct server *srv = harness_start(state, "{}");
    struct files f;
    files_make(&f, "", 40);
    size_t size;
    char *tgz = archive_bytes(DB_TGZ, f.entries, LAYOUT_FILES, &size);
    char id[72], path[256];
    json_decref(upload_ready(srv, "name=pets", tgz, size, NULL, id));

    /* The same spec with the same seed twice gives the same images. */
    snprintf(path, sizeof path, "/v1/datasets/%s/splits", id);
    struct http_response r;
    job_send(srv, "POST", path,
             "{\"name\": \"a\", \"from\": \"train\", \"count\": 4, \"seed\": 7, "
             "\"stratified\": true}",
             NULL, &r);
    assert_status(&r, 201);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    /* The answer is the dataset's document, with a, a-rest, test and train. */
    assert_int_equal(json_array_size(json_object_get(doc, "splits")), 4);
    json_decref(doc);
    job_send(srv, "POST", path,
             "{\"name\": \"b\", \"from\": \"train\", \"count\": 4, \"seed\": 7, "
             "\"stratified\": true, \"rest\": \"b-others\"}",
             NULL, &r);
    assert_status(&r, 201);
    http_response_free(&r);
    char *a = split_indices(srv, id, "a"), *b = split_indices(srv, id, "b");
    assert_string_equal(a, b);
    /* Stratified 4 of train's 4 cats and 3 dogs: 2 of each (4 x 4/7 = 2.3, 4 x 3/7 = 1.7). */
    snprintf(path, sizeof path, "/v1/datasets/%s/images?split=a", id);
    doc = get_json(srv, path, 200);
    int cats = 0, dogs = 0;
    size_t i;
    json_t *image;
    json_array_foreach(json_object_get(doc, "images"), i, image)
    {
        cats += strcmp(json_str(image, "class"), "cat") == 0;
        dogs += strcmp(json_str(image, "class"), "dog") == 0;
    }
    assert_int_equal(cats, 2);
    assert_int_equal(dogs, 2);
    assert_int_equal(json_int(doc, "total"), 4);
    json_decref(doc);
    char *rest = split_indices(srv, id, "b-others");
    assert_int_equal(strlen(rest) > 0, 1);
    free(a);
    free(b);
    free(rest);

    /* Refusals, each naming what is wrong. */
    snprintf(path, sizeof path, "/v1/datasets/%s/splits", id);
    const struct {
        const char *body;
        long status;
        const char *message;
    } bad[] = {
        {"{\"name\": \"a\", \"from\": \"train\", \"count\": 1}", 409, "exists"},
        {"{\"name\": \"c\", \"from\": \"nope\", \"count\": 1}", 404, "nope"},
        {"{\"name\": \"c\", \"from\": \"train\", \"count\": 1, \"fraction\": 0.5}", 422,
         "exactly one"},
        {"{\"name\": \"c\", \"from\": \"train\", \"fraction\": 2}", 422, "fraction:"},
        {"{\"name\": \"c\", \"from\": \"train\", \"count\": 1, \"seed\": -1}", 422, "seed:"},
        {"{\"name\": \"c\", \"from\": \"train\", \"count\": 1, \"size\": 1}", 422, "size:"},
        {"{\"from\": \"train\", \"count\": 1}", 422, "name:"},
        {"{\"name\": \"../c\", \"from\": \"train\", \"count\": 1}", 422, "../c"},
        {"{\"name\": \"c\", \"from\": \"train\", \"per_class\": 4}", 422, "dog"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        job_send(srv, "POST", path, bad[k].body, NULL, &r);
        assert_status(&r, bad[k].status);
        assert_contains(r.body, bad[k].message);
        http_response_free(&r);
    }

    /* Thumbnails: PNGs with the pixels of their source file, labelled by its class folder. */
    snprintf(path, sizeof path, "/v1/datasets/%s/images?split=train&offset=1&limit=5", id);
    doc = get_json(srv, path, 200);
    assert_int_equal(json_int(doc, "offset"), 1);
    assert_int_equal(json_int(doc, "limit"), 5);
    assert_int_equal(json_int(doc, "total"), 7);
    assert_int_equal(json_array_size(json_object_get(doc, "images")), 5);
    json_array_foreach(json_object_get(doc, "images"), i, image)
    {
        const char *source = json_str(image, "source");
        int seed;
        char folder[16];
        assert_int_equal(sscanf(source, "train/%15[a-z]/s%d.png", folder, &seed), 2);
        assert_string_equal(json_str(image, "class"), folder);
        assert_int_equal(json_int(image, "label"), strcmp(folder, "cat") == 0 ? 0 : 1);
        const char *url = json_str(image, "thumbnail");
        const char *prefix = "data:image/png;base64,";
        assert_int_equal(strncmp(url, prefix, strlen(prefix)), 0);
        size_t png_size;
        unsigned char *png = harness_unbase64(url + strlen(prefix), &png_size);
        struct eng_error err;
        struct img *got = img_decode(png, png_size, NULL, NULL, &err);
        if (!got) fail_msg("thumbnail of %s: %s", source, err.message);
        struct img *want = db_image(SIDE, SIDE, 3, seed);
        assert_int_equal(got->width, SIDE);
        assert_int_equal(got->height, SIDE);
        assert_int_equal(got->channels, 3);
        for (int y = 0; y < SIDE; y++)
            assert_memory_equal(got->data + y * got->stride, want->data + y * want->stride,
                                SIDE * 3);
        img_free(got);
        img_free(want);
        free(png);
    }
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/datasets/%s/images?split=nope", id);
    http_get_expect(srv, path, 404);
    snprintf(path, sizeof path, "/v1/datasets/%s/images?limit=201", id);
    http_get_expect(srv, path, 422);
    free(tgz);
    files_free(&f);
    harness_pass(state);
}

static void test_delete(void **state)
{
    struct server *srv = harness_start(state, "{\"debug_routes\": true, \"job_workers\": 1}");
    struct files f;
    files_make(&f, "", 1);
    size_t size;
    char *zip = archive_bytes(DB_ZIP, f.entries, LAYOUT_FILES, &size);
    char id[72], path[128], folder[PATH_MAX + 100];
    json_decref(upload_ready(srv, "name=pets", zip, size, NULL, id));
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    snprintf(folder, sizeof folder, "%s/datasets/%s", srv->data_dir, id);
    struct stat st;
    assert_int_equal(stat(folder, &st), 0);
    struct http_response r;
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 204);
    http_response_free(&r);
    http_get_expect(srv, path, 404);
    assert_int_not_equal(stat(folder, &st), 0);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 404);
    http_response_free(&r);

    /* A long job holds the one runner: the next import stays queued, and its job names the
     * dataset, so it cannot be removed until the job has run. */
    job_send(srv, "POST", "/v1/jobs",
             "{\"kind\": \"count\", \"params\": {\"units\": 1000, \"unit_ms\": 30}}", NULL, &r);
    assert_status(&r, 202);
    json_t *job = http_json(&r);
    char cancel[128];
    snprintf(cancel, sizeof cancel, "/v1/jobs/%s", json_str(job, "id"));
    json_decref(job);
    http_response_free(&r);
    upload(srv, "name=queued", zip, size, NULL, id);
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_error_envelope(&r, 409, "conflict");
    assert_contains(r.body, "in use by job");
    http_response_free(&r);
    json_t *doc = get_json(srv, path, 200);
    assert_string_equal(json_str(doc, "state"), "importing");
    json_decref(doc);
    job_send(srv, "DELETE", cancel, NULL, NULL, &r);
    assert_true(r.status == 200 || r.status == 202);
    http_response_free(&r);
    json_decref(wait_dataset(srv, id, "ready"));
    job_send(srv, "DELETE", path, NULL, NULL, &r);
    assert_status(&r, 204);
    http_response_free(&r);
    /* Both caches are gone, and nothing else is left. */
    char datasets[PATH_MAX + 16];
    snprintf(datasets, sizeof datasets, "%s/datasets", srv->data_dir);
    assert_int_equal(db_count_entries(datasets), 0);
    /* POST /v1/jobs does not take the import kind. */
    job_send(srv, "POST", "/v1/jobs",
             "{\"kind\": \"dataset-import\", \"params\": {\"dataset\": \"x\", \"name\": \"x\"}}",
             NULL, &r);
    assert_status(&r, 422);
    assert_contains(r.body, "queued by the server itself");
    http_response_free(&r);
    free(zip);
    files_free(&f);
    harness_pass(state);
}

/* A CIFAR-10 batch of n records (3073 bytes: a label, then the pixels), record i of label i % 10.
 */
static unsigned char *cifar_batch(int n, size_t *size)
{
    *size = (size_t)n * 3073;
    unsigned char *d = calloc(1, *size);
    for (int i = 0; i < n; i++)
        d[(size_t)i * 3073] = (unsigned char)(i % 10);
    return d;
}

/* A body of zeros without end, counting what it gave. */
static size_t read_zeros(char *buffer, size_t size, size_t nitems, void *arg)
{
    size_t *delivered = arg;
    memset(buffer, 0, size * nitems);
    *delivered += size * nitems;
    return *delivered > (64u << 20) ? 0 : size * nitems;
}

static void test_hostile(void **state)
{
    struct server *srv = harness_start(
        state, "{\"max_dataset_files\": 12, \"max_classes\": 3, \"max_dataset_bytes\": 2000000, "
               "\"max_body_bytes\": 1000}");
    char *before = snapshot(srv->dir);
    size_t sa;
    void *a = db_png(2, 2, 3, 1, &sa);
    size_t cifar_size;
    unsigned char *cifar = cifar_batch(2, &cifar_size);
    /* An idx pair whose images file is shorter than its dimensions say: 2 images of 2x2. */
    static const unsigned char idx_images[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0,
                                               2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6};
    static const unsigned char idx_labels[] = {0, 0, 8, 1, 0, 0, 0, 2, 0, 1};
    struct db_entry many[13], classes[4];
    char many_names[13][32], class_names[4][32];
    for (int i = 0; i < 13; i++) {
        snprintf(many_names[i], sizeof many_names[i], "c/%02d.png", i);
        many[i] = (struct db_entry){many_names[i], a, sa, DB_FILE, NULL};
    }
    for (int i = 0; i < 4; i++) {
        snprintf(class_names[i], sizeof class_names[i], "k%d/a.png", i);
        classes[i] = (struct db_entry){class_names[i], a, sa, DB_FILE, NULL};
    }
    const char *manifest = "{\"file\": \"a.png\", \"label\": \"x\"}\n{\"file\": \"gone.png\"}\n";
    const struct {
        enum db_archive kind;
        struct db_entry entries[3];
        size_t n;
        const struct db_entry *list; /* instead of entries */
        size_t list_n;
        const char *message;
    } cases[] = {
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"../x.png", a, sa, DB_FILE}},
         2,
         NULL,
         0,
         "../x.png: a name that climbs out"},
        {DB_ZIP,
         {{"c/a.png", a, sa, DB_FILE}, {"c/../../x.png", a, sa, DB_FILE}},
         2,
         NULL,
         0,
         "a name that climbs out"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {ABSOLUTE, a, sa, DB_FILE}},
         2,
         NULL,
         0,
         ABSOLUTE ": an absolute name"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"c/l.png", NULL, 0, DB_SYMLINK, "/etc/passwd"}},
         2,
         NULL,
         0,
         "c/l.png: a symbolic link"},
        {DB_TAR,
         {{"c/a.png", a, sa, DB_FILE}, {"c/h.png", NULL, 0, DB_HARDLINK, "c/a.png"}},
         2,
         NULL,
         0,
         "c/h.png: a hard link"},
        {DB_TGZ,
         {{"c/a.png", a, sa, DB_FILE}, {"c/zeros.bin", NULL, 24u << 20, DB_FILE}},
         2,
         NULL,
         0,
         "(max_ratio)"},
        {DB_TAR, {{0}}, 0, many, 13, "(max_files)"},
        {DB_TAR, {{0}}, 0, classes, 4, "4 classes, more than 3 (max_classes)"},
        {DB_TAR,
         {{"data_batch_1.bin", cifar, cifar_size - 5, DB_FILE}},
         1,
         NULL,
         0,
         "is not a whole number"},
        {DB_TGZ,
         {{"train-images-idx3-ubyte", idx_images, sizeof idx_images, DB_FILE},
          {"train-labels-idx1-ubyte", idx_labels, sizeof idx_labels, DB_FILE}},
         2,
         NULL,
         0,
         "ends inside image 1 of 2"},
        {DB_ZIP,
         {{"m.jsonl", manifest, strlen(manifest), DB_FILE}, {"a.png", a, sa, DB_FILE}},
         2,
         NULL,
         0,
         "manifest line 2: gone.png is not in the source"},
        {DB_TAR,
         {{"c/bad.png", "\x89PNG\r\n\x1a\n....", 12, DB_FILE},
          {"c/worse.jpg", "\xff\xd8\xff garbage", 12, DB_FILE}},
         2,
         NULL,
         0,
         "no usable image: 2 files skipped"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t size;
        char *bytes = archive_bytes(cases[i].kind, cases[i].list ? cases[i].list : cases[i].entries,
                                    cases[i].list ? cases[i].list_n : cases[i].n, &size);
        char id[72];
        upload(srv, "name=evil", bytes, size, NULL, id);
        json_t *doc = wait_dataset(srv, id, "failed");
        assert_contains(json_str(doc, "error"), cases[i].message);
        json_decref(doc);
        free(bytes);
    }
    /* A loose CIFAR batch of non-whole records, sent with its file name. */
    char id[72];
    upload(srv, "name=loose&filename=data_batch_1.bin", cifar, cifar_size - 1, NULL, id);
    json_t *doc = wait_dataset(srv, id, "failed");
    assert_contains(json_str(doc, "error"), "is not a whole number");
    json_decref(doc);
    /* Past max_dataset_bytes: 413 before the body is read. */
    struct http_response r;
    char *big = calloc(1, 2000001);
    post_dataset(srv, "name=big", big, 2000001, NULL, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "max_dataset_bytes");
    http_response_free(&r);
    /* Past it without a Content-Length (chunked): the connection is dropped once the cap is
     * passed, and the partial file goes with it (the snapshot below finds none). */
    size_t delivered = 0;
    const char *const chunked[] = {"Content-Type: application/octet-stream", NULL};
    struct http_request endless = {.method = "POST",
                                   .path = "/v1/datasets?name=endless",
                                   .headers = chunked,
                                   .read_fn = read_zeros,
                                   .read_arg = &delivered,
                                   .read_size = -1};
    http_send(srv, &endless, &r);
    assert_int_not_equal(r.curl_code, CURLE_OK);
    assert_true(delivered > 2000000 && delivered < 64u << 20);
    http_response_free(&r);
    /* Fields beside the archive part keep max_body_bytes (here 1000). */
    const struct http_part parts[] = {{"archive", "a.tar", NULL, "x", 1},
                                      {"note", NULL, NULL, big, 2000}};
    struct http_request fields = {
        .method = "POST", .path = "/v1/datasets?name=fields", .parts = parts, .part_count = 2};
    http_send(srv, &fields, &r);
    assert_error_envelope(&r, 413, "payload_too_large");
    assert_contains(r.body, "max_body_bytes");
    http_response_free(&r);
    /* Not an archive: refused by the import. */
    upload(srv, "name=text", "just text", 9, NULL, id);
    doc = wait_dataset(srv, id, "failed");
    assert_contains(json_str(doc, "error"), "not a tar, tar.gz or zip archive");
    json_decref(doc);
    free(big);

    /* Every import failed and left nothing: not in data_dir, not beside it, not at the absolute
     * name. (A dropped connection's file goes when its connection has closed: waited for.) */
    char uploads[PATH_MAX + 16];
    snprintf(uploads, sizeof uploads, "%s/uploads", srv->data_dir);
    for (double deadline = harness_now() + WAIT_S; db_count_entries(uploads) > 0; job_sleep_ms(10))
        if (harness_now() > deadline) fail_msg("an upload was left in %s", uploads);
    struct stat st;
    assert_int_not_equal(stat(ABSOLUTE, &st), 0);
    char *after = snapshot(srv->dir);
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(cifar);
    free(a);
    harness_pass(state);
}

static void test_server_paths(void **state)
{
    char *outside = db_temp_dir();
    char config[PATH_MAX * 2], inside[PATH_MAX], link[PATH_MAX + 32];
    snprintf(inside, sizeof inside, "%s/inside", outside);
    mkdir(inside, 0755);
    struct files f;
    files_make(&f, "", 1);
    char tree[PATH_MAX + 16];
    snprintf(tree, sizeof tree, "%s/pets", inside);
    db_write_tree(tree, f.entries, LAYOUT_FILES);
    db_write_tree(outside, f.entries, LAYOUT_FILES); /* beside datasets_dir: train/, test/ */
    snprintf(link, sizeof link, "%s/out", inside);
    assert_int_equal(symlink(outside, link), 0);
    char key[128];
    json_t *admin = harness_keygen("admin", "jobs,admin", key);
    char admin_key[128];
    snprintf(admin_key, sizeof admin_key, "%s", key);
    json_t *jobs = harness_keygen("jobs", "jobs", key);
    json_t *key_list = json_pack("[o, o]", admin, jobs);
    char *keys = json_dumps(key_list, JSON_COMPACT);
    json_decref(key_list);
    snprintf(config, sizeof config, "{\"datasets_dir\": \"%s\", \"api_keys\": %s}", inside, keys);
    free(keys);
    struct server *srv = harness_start(state, config);

    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin_key);
    const char *const headers[] = {auth, NULL};
    struct http_request req = {.method = "POST", .headers = headers, .body = "", .body_size = 0};
    struct http_response r;
    const struct {
        const char *query;
        long status;
        const char *message;
    } cases[] = {
        {"name=x&path=../", 403, "\\\"..\\\" is not allowed"},
        {"name=x&path=pets/../../", 403, "\\\"..\\\" is not allowed"},
        {"name=x&path=%2Fetc", 403, "relative path"},
        {"name=x&path=out", 403, "outside datasets_dir"},
        {"name=x&path=out/train", 403, "outside datasets_dir"},
        {"name=x&path=nothing", 404, "nothing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256];
        snprintf(path, sizeof path, "/v1/datasets?%s", cases[i].query);
        req.path = path;
        http_send(srv, &req, &r);
        assert_status(&r, cases[i].status);
        assert_contains(r.body, cases[i].message);
        http_response_free(&r);
    }
    /* The jobs scope may upload but not name a server-side path. */
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    req.path = "/v1/datasets?name=x&path=pets";
    http_send(srv, &req, &r);
    assert_status(&r, 403);
    assert_contains(r.body, "admin scope");
    http_response_free(&r);
    /* The admin scope imports a folder under datasets_dir. */
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin_key);
    http_send(srv, &req, &r);
    assert_status(&r, 202);
    json_t *doc = http_json(&r);
    char id[72];
    snprintf(id, sizeof id, "%s", json_str(doc, "id"));
    json_decref(doc);
    http_response_free(&r);
    get_headers = headers;
    doc = wait_dataset(srv, id, "ready");
    get_headers = NULL;
    assert_string_equal(json_str(doc, "state"), "ready");
    assert_string_equal(json_str(doc, "origin"), "path");
    assert_string_equal(json_str(doc, "source"), "folder");
    check_layout(doc);
    json_decref(doc);
    files_free(&f);
    db_remove(outside);
    free(outside);
    harness_pass(state);
}

/* A cache `augserve dataset import --out <data_dir>/datasets` writes while the server runs is
 * listed as ready, under the id the CLI gave it. */
static void test_cli_import_listed(void **state)
{
    struct server *srv = harness_start(state, "{}");
    struct files f;
    files_make(&f, "", 1);
    char *src = db_temp_dir(), out[PATH_MAX + 16];
    db_write_tree(src, f.entries, LAYOUT_FILES);
    snprintf(out, sizeof out, "%s/datasets", srv->data_dir);
    const char *const args[] = {"dataset", "import", src, "--out", out, "--name", "cli", NULL};
    char *stdout_text = NULL, *stderr_text = NULL;
    assert_int_equal(harness_run_binary(args, &stdout_text, &stderr_text), 0);
    json_t *report = json_loads(stdout_text, 0, NULL);
    assert_non_null(report);
    char id[72];
    snprintf(id, sizeof id, "%s", json_str(report, "id"));
    json_decref(report);
    free(stdout_text);
    free(stderr_text);
    json_t *doc = get_json(srv, "/v1/datasets", 200);
    json_t *list = json_object_get(doc, "datasets");
    assert_int_equal(json_array_size(list), 1);
    json_t *item = json_array_get(list, 0);
    assert_string_equal(json_str(item, "id"), id);
    assert_string_equal(json_str(item, "name"), "cli");
    assert_string_equal(json_str(item, "state"), "ready");
    assert_string_equal(json_str(item, "origin"), "disk");
    assert_true(json_is_null(json_object_get(item, "job")));
    assert_int_equal(json_int(item, "images"), LAYOUT_FILES);
    json_decref(doc);
    char path[128];
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    doc = get_json(srv, path, 200);
    check_layout(doc);
    json_decref(doc);
    db_remove(src);
    free(src);
    files_free(&f);
    harness_pass(state);
}

/* An archive of n 8x8 PNGs in two class folders, slow enough to import to be killed in (with one
 * thread): its bytes. */
static char *big_archive(int n, size_t *size)
{
    struct db_entry *entries = calloc((size_t)n, sizeof *entries);
    char(*names)[32] = calloc((size_t)n, sizeof *names);
    void **pngs = calloc((size_t)n, sizeof *pngs);
    for (int i = 0; i < n; i++) {
        size_t png_size;
        pngs[i] = db_png(8, 8, 3, i, &png_size);
        snprintf(names[i], sizeof names[i], "%s/%04d.png", i % 2 ? "odd" : "even", i);
        entries[i] = (struct db_entry){names[i], pngs[i], png_size, DB_FILE, NULL};
    }
    char *tgz = archive_bytes(DB_TGZ, entries, (size_t)n, size);
    for (int i = 0; i < n; i++)
        free(pngs[i]);
    free(pngs);
    free(names);
    free(entries);
    return tgz;
}

/* Uploads bytes as dataset id and kills the server with SIGKILL once the import has begun
 * decoding. */
static void kill_mid_import(struct server *srv, const char *query, const void *bytes, size_t size,
                            char id[72])
{
    char path[128];
    upload(srv, query, bytes, size, NULL, id);
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    for (double deadline = harness_now() + WAIT_S;; job_sleep_ms(5)) {
        json_t *doc = get_json(srv, path, 200);
        json_t *progress = json_object_get(doc, "progress");
        int decoding = progress && json_real_value(json_object_get(progress, "fraction")) > 0;
        assert_string_equal(json_str(doc, "state"), "importing");
        json_decref(doc);
        if (decoding) break;
        if (harness_now() > deadline) fail_msg("the import never started");
    }
    assert_int_equal(server_stop(srv, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(srv->wait_status));
}

/* The import job of the newest dataset-import job: succeeded in two attempts (the first one
 * interrupted by the kill). */
static void assert_import_resumed(const struct server *srv)
{
    json_t *doc = get_json(srv, "/v1/jobs?kind=dataset-import", 200);
    json_t *job = json_array_get(json_object_get(doc, "jobs"), 0);
    assert_string_equal(json_str(job, "state"), "succeeded");
    assert_int_equal(json_int(job, "attempts"), 2);
    json_decref(doc);
}

static void test_kill9_during_import(void **state)
{
    /* An import slow enough to be killed in: many images, one thread. */
    const char *settings = "{\"job_threads\": 1}";
    struct server *first = harness_start(state, settings);
    enum { N = 20000 };
    size_t size;
    char *tgz = big_archive(N, &size);
    char id[72];
    kill_mid_import(first, "name=big", tgz, size, id);

    /* What a kill leaves in data_dir/uploads beside the import's own upload: a partial upload
     * and the upload of a dataset that no longer exists. The next start removes both, and keeps
     * the one its queued import reads. */
    char leftover[PATH_MAX + 64];
    snprintf(leftover, sizeof leftover, "%s/uploads/.partial-AbC123", first->data_dir);
    db_write_file(leftover, "half", 4);
    const struct db_entry stale = {"0123456789abcdef01234567/upload", "x", 1, DB_FILE, NULL};
    snprintf(leftover, sizeof leftover, "%s/uploads", first->data_dir);
    db_write_tree(leftover, &stale, 1);
    assert_int_equal(db_count_entries(leftover), 3);
    struct server *second = job_restart_on(state, first, settings);
    json_t *doc = wait_dataset(second, id, "ready");
    assert_int_equal(json_int(doc, "images"), N);
    json_decref(doc);
    assert_import_resumed(second);
    /* No temporary folder and no upload is left. */
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/datasets", first->data_dir);
    assert_int_equal(db_count_entries(dir), 1);
    snprintf(dir, sizeof dir, "%s/uploads", first->data_dir);
    assert_int_equal(db_count_entries(dir), 0);
    assert_int_equal(server_stop(second, SIGTERM, 15000), 0);
    free(tgz);
    harness_pass(state);
}

/* The same content imported again, killed mid-way: the rerun ends with the alias whatever the
 * kill left. Killed while decoding, nothing is at the id (as after a kill inside datasets_alias,
 * between the folder's removal and the link): the rerun imports it all again, then makes the
 * alias. With the link in place already (a kill after the alias was made, before the record
 * ended), and what a kill inside data_link leaves beside it (a temporary folder holding a link),
 * the rerun only ends the record. */
static void test_kill9_alias(void **state)
{
    const char *settings = "{\"job_threads\": 1}";
    struct server *first = harness_start(state, settings), *srv = first;
    enum { N = 20000 };
    size_t size;
    char *tgz = big_archive(N, &size);
    char original[72], again[72], linked[72], path[PATH_MAX + 128];
    json_decref(upload_ready(srv, "name=big", tgz, size, NULL, original));
    char datasets[PATH_MAX + 16];
    snprintf(datasets, sizeof datasets, "%s/datasets", first->data_dir);
    for (int round = 0; round < 2; round++) {
        char *id = round == 0 ? again : linked;
        kill_mid_import(srv, round == 0 ? "name=again" : "name=linked", tgz, size, id);
        if (round == 1) {
            snprintf(path, sizeof path, "%s/%s", datasets, id);
            assert_int_equal(symlink(original, path), 0);
            snprintf(path, sizeof path, "%s/.import-2147483647-AbC123", datasets);
            assert_int_equal(mkdir(path, 0700), 0);
            snprintf(path, sizeof path, "%s/.import-2147483647-AbC123/link", datasets);
            assert_int_equal(symlink(original, path), 0);
        }
        /* On the first server's data_dir (a restarted server's own is not it). */
        struct server *next = job_restart_on(state, first, settings);
        json_t *doc = wait_dataset(next, id, "ready");
        assert_string_equal(json_str(doc, "same_as"), original);
        assert_int_equal(json_int(doc, "images"), N);
        json_decref(doc);
        assert_import_resumed(next);
        /* One cache and the links to it, nothing else: no temporary folder, no upload. */
        assert_int_equal(db_count_entries(datasets), (size_t)round + 2);
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", datasets, id);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        snprintf(path, sizeof path, "%s/uploads", first->data_dir);
        assert_int_equal(db_count_entries(path), 0);
        srv = next;
    }
    assert_int_equal(server_stop(srv, SIGTERM, 15000), 0);
    free(tgz);
    harness_pass(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        HARNESS_TEST(test_upload_formats),
        HARNESS_TEST(test_splits_and_thumbnails),
        HARNESS_TEST(test_delete),
        HARNESS_TEST(test_hostile),
        HARNESS_TEST(test_server_paths),
        HARNESS_TEST(test_cli_import_listed),
        HARNESS_TEST(test_kill9_during_import),
        HARNESS_TEST(test_kill9_alias),
    };
    return harness_main(argc, argv, "datasets", tests, sizeof tests / sizeof tests[0]);
}
