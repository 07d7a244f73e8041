/* What the job kinds that run a classifier over a dataset split share (evaluate, affinity,
 * pseudo-label): reading their common params, holding the model and the dataset, matching the
 * dataset's classes to the model's, and one pass of the loader into the model in batches.
 *
 * Common params: "model" (a repository model with a "preprocess"), "dataset" (an id), "split",
 * "batch_size" (default 64), "seed" (default 0) and, for kinds that take one, "policy" (what
 * /v1/augment takes). Classes are matched by name when the model has labels, else by index; a
 * dataset class the model lacks is an error naming it (a model that cannot answer a class would
 * only make every such image wrong, silently). */
#ifndef AUGSERVE_JOB_CLASSIFY_H
#define AUGSERVE_JOB_CLASSIFY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "data/loader.h"

struct app;
struct job_ctx;
struct model;
struct policy;

#define JOB_CLASSIFY_DEFAULT_BATCH 64
#define JOB_CLASSIFY_MAX_BATCH     4096

struct job_classify {
    struct app *app;
    struct model *model;     /* a reference */
    struct dataset *dataset; /* a reference from the registry */
    const struct data_split *split;
    const char *model_name, *dataset_id; /* params' strings */
    size_t batch;
    uint64_t seed;
    /* Dataset class -> model class: by name, or the same index for a model without labels
     * (then checked against the model's class count once the first batch gives it:
     * job_classify_classes). */
    int32_t *class_map;
    size_t model_classes; /* 0 until known */
};

/* Reads the common params (model, dataset, split, batch_size, seed) and takes the model and the
 * dataset: 0, or -1 with err (ENG_INVALID "params.<field>: ...", ENG_NOT_FOUND for an unknown
 * model or dataset). labeled: the split must be labeled. job_classify_close releases what it
 * took, after a failure too. */
int job_classify_open(struct job_classify *jc, const struct app *app, const json_t *params,
                      int labeled, struct eng_error *err);
void job_classify_close(struct job_classify *jc);
/* The dataset part alone (dataset, split, seed), for a kind without a repository model (train):
 * model, class_map and batch stay unset. Released by job_classify_close. */
int job_classify_open_dataset(struct job_classify *jc, const struct app *app, const json_t *params,
                              int labeled, struct eng_error *err);

/* After job_classify_open_dataset: takes the repository model name (which must outlive jc) as
 * job_classify_open does (ENG_NOT_FOUND, ENG_INVALID for a model that cannot take images) and,
 * when map is set, matches the dataset's classes to its labels (class_map). For train's
 * fine-tuning. */
int job_classify_open_model(struct job_classify *jc, const char *name, int map,
                            struct eng_error *err);

/* The policy a param's value gives (what /v1/augment takes: a preset's name, an op object, a
 * list), which must be for images with one view; *policy NULL when value is NULL. -1 with err
 * (ENG_INVALID naming params.<name>, ENG_NO_MEMORY). */
int job_classify_policy(const json_t *value, const char *name, struct policy **policy,
                        struct eng_error *err);

/* Records the model's class count, once the first batch gives it, and checks the dataset's
 * classes fit it: -1 with err (ENG_INVALID) when the model gives another count than before or has
 * too few classes for the dataset's. */
int job_classify_classes(struct job_classify *jc, size_t classes, struct eng_error *err);

/* The name of model class c: its label, the dataset's class of that index when the model has no
 * labels, else its number (into buf). */
const char *job_classify_class_name(const struct job_classify *jc, size_t c, char *buf,
                                    size_t size);

/* Gets one batch's probabilities: b's samples, probs b->size rows of classes. */
typedef int (*job_classify_fn)(void *arg, const struct data_batch *b, const float *probs,
                               size_t classes, struct eng_error *err);

/* One pass over the split in order (no shuffle) with policy (NULL: none) sampled at seed (epoch
 * 0), from batch `first`: every batch through the model, then fn, which checkpoints and reports
 * progress. The clean pass and a policy's pass run this same code, so the Identity policy gives
 * the clean pass's probabilities exactly. 0, or -1 with err (fn's, the loader's, the model's,
 * ENG_CANCELLED). */
int job_classify_pass(struct job_ctx *ctx, struct job_classify *jc, const struct policy *policy,
                      uint64_t seed, size_t first, job_classify_fn fn, void *arg,
                      struct eng_error *err);
/* The split's batch count. */
size_t job_classify_batches(const struct job_classify *jc);

/* Writes data as artifact `name`, whole (a new file each time, so a resumed job rewrites it). */
int job_classify_write_artifact(struct job_ctx *ctx, const char *name, const void *data,
                                size_t size, struct eng_error *err);
/* A CSV field: the text, quoted when it holds a comma, a quote or a line break. */
void job_classify_csv_field(FILE *f, const char *text);

/* The result's JSON as artifact result.json. */
int job_classify_write_result(struct job_ctx *ctx, const json_t *result, struct eng_error *err);

#endif
