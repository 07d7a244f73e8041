/* The colour dataset of the training job tests (colour_dataset.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colour_dataset.h"
#include "core/img.h"
#include "image/codec.h"
#include "job_client.h"

const char *const class_names[CLASSES] = {"blue", "green", "red"};
/* Their base colours. */
static const unsigned char base[CLASSES][3] = {{20, 20, 230}, {20, 230, 20}, {230, 20, 20}};

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) fail_msg("cannot make %s", path);
}

void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) fail_msg("cannot write %s", path);
}

void *solid_png(const unsigned char rgb[3], size_t *size)
{
    struct eng_error err = {0};
    struct img *im = img_new(SIDE, SIDE, 3, &err);
    assert_non_null(im);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            memcpy(img_row(im, y) + 3 * x, rgb, 3);
    void *png;
    assert_int_equal(img_encode(im, IMG_PNG, 0, NULL, &png, size, &err), 0);
    img_free(im);
    return png;
}

void colour(int c, int i, unsigned char rgb[3])
{
    for (int k = 0; k < 3; k++)
        rgb[k] =
            (unsigned char)(base[c][k] + (base[c][k] > 128 ? -1 : 1) * ((i * (7 + 5 * k)) % 31));
}

void colour_dataset_make(const struct server *srv, int classes, int n, char id[64])
{
    char src[PATH_MAX], path[PATH_MAX + 64];
    snprintf(src, sizeof src, "%s/colours%d", srv->dir, classes);
    make_dir(src);
    const char *splits[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/%s", src, splits[s]);
        make_dir(path);
        for (int c = 0; c < classes; c++) {
            snprintf(path, sizeof path, "%s/%s/%s", src, splits[s], class_names[c]);
            make_dir(path);
            for (int i = 0; i < (s ? 4 : n); i++) {
                unsigned char rgb[3];
                size_t size;
                colour(c, s ? 1000 + i : i, rgb);
                void *png = solid_png(rgb, &size);
                snprintf(path, sizeof path, "%s/%s/%s/%03d.png", src, splits[s], class_names[c], i);
                write_file(path, png, size);
                free(png);
            }
        }
    }
    job_import_dataset(srv, src, id);
}

struct img *chart_artifact(const struct server *srv, const char *id, const char *name)
{
    char path[160];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id, name);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    struct eng_error err = {0};
    struct img *im = img_decode(r.body, r.body_size, NULL, NULL, &err);
    assert_non_null(im);
    assert_int_equal(im->width, 480);
    http_response_free(&r);
    return im;
}

void expect_chart_artifact(const struct server *srv, const char *id, const char *name)
{
    img_free(chart_artifact(srv, id, name));
}

char *read_model_file(const char *model, const char *file, size_t *size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s", harness_models_dir(), model, file);
    char *data = harness_read_file(path, size);
    if (!data) fail_msg("cannot read %s", path);
    return data;
}

void expect_same_model(const char *a, const char *b)
{
    size_t a_size, b_size;
    char *a_onnx = read_model_file(a, "model.onnx", &a_size);
    char *b_onnx = read_model_file(b, "model.onnx", &b_size);
    assert_int_equal(a_size, b_size);
    assert_memory_equal(a_onnx, b_onnx, a_size);
    free(a_onnx);
    free(b_onnx);
}

void copy_model_as_registered(const char *from, const char *to, const char *id)
{
    static const char *const files[] = {"model.onnx", "config.json", "labels.txt"};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", harness_models_dir(), to);
    assert_int_equal(mkdir(path, 0755), 0); /* the job has not registered it itself */
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t size;
        char *data = read_model_file(from, files[f], &size);
        snprintf(path, sizeof path, "%s/%s/%s", harness_models_dir(), to, files[f]);
        write_file(path, data, size);
        free(data);
    }
    snprintf(path, sizeof path, "%s/%s/training.json", harness_models_dir(), from);
    json_t *card = json_load_file(path, 0, NULL);
    assert_non_null(card);
    json_object_set_new(card, "job", json_string(id));
    snprintf(path, sizeof path, "%s/%s/training.json", harness_models_dir(), to);
    assert_int_equal(json_dump_file(card, path, 0), 0);
    json_decref(card);
}
