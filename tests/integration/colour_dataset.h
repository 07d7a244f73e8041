/* What the training job tests share. The dataset they make: solid-colour SIDE x SIDE images in
 * class folders blue, green and red, each colour varied a little, in splits "train" and "val". The
 * classes are separable by the mean of one channel, so a small CNN learns them in a few epochs. */
#ifndef AUGSERVE_TEST_COLOUR_DATASET_H
#define AUGSERVE_TEST_COLOUR_DATASET_H

#include <stddef.h>

#include "core/img.h"
#include "harness.h"

#define CLASSES 3
#define SIDE    8

/* The dataset's classes, in byte order (its class indices). */
extern const char *const class_names[CLASSES];

/* Writes size bytes of data to path, or fails the test. */
void write_file(const char *path, const void *data, size_t size);

/* A solid SIDE x SIDE image as PNG (malloc'd). */
void *solid_png(const unsigned char rgb[3], size_t *size);

/* Image i of class c: its base colour shifted by up to 30 in each channel, towards the middle
 * (the class's channel stays in [200, 230], the others in [20, 50]). */
void colour(int c, int i, unsigned char rgb[3]);

/* `augserve dataset import`: the first `classes` (at most CLASSES) of the classes, in splits train
 * (per class n images) and val (4 per class); its id. */
void colour_dataset_make(const struct server *srv, int classes, int n, char id[64]);

/* File `file` of repository model `model` in the harness's models_dir (malloc'd), or fails the
 * test. */
char *read_model_file(const char *model, const char *file, size_t *size);
/* Repository models a and b have the same model.onnx bytes (a resumed training job's against an
 * uninterrupted one's). */
void expect_same_model(const char *a, const char *b);
/* Repository model `to` made a copy of model `from` (a training job's), its training.json naming
 * job id as the one that registered it: what a kill after job id's registration of `to` and
 * before the record of what followed leaves. */
void copy_model_as_registered(const char *from, const char *to, const char *id);

/* The job's artifact `name` is a chart: a PNG JOB_CHART_WIDTH (480) pixels wide. */
void expect_chart_artifact(const struct server *srv, const char *id, const char *name);
/* The same, decoded (img_free it). */
struct img *chart_artifact(const struct server *srv, const char *id, const char *name);

#endif
