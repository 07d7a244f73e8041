/* The job kind "self-training" (Noisy Student, Xie et al. 2020; Naive-Student; MuST): teachers
 * label an unlabeled split, a student learns from the labeled and the pseudo-labeled images under
 * a strong policy, and becomes the next round's teacher. Its params and rounds are
 * job_self_training.c's, a round's labelling job_self_training_label.c's and its labels file
 * job_self_training_probs.c's; private to those three. */
#ifndef AUGSERVE_JOB_SELF_TRAINING_H
#define AUGSERVE_JOB_SELF_TRAINING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "data/dataset.h"

struct app;
struct job_ctx;

#define SELF_TRAINING_MAX_ROUNDS   10
#define SELF_TRAINING_MAX_TEACHERS 16

/* The kind's own params, read and checked. */
struct self_training_params {
    const char *dataset_id, *unlabeled, *output;
    int soft;           /* soft targets (the probabilities); else the argmax */
    double temperature; /* soft targets' */
    double threshold;   /* the confidence an image's pseudo-label needs to be kept */
    size_t per_class;   /* K, balancing; 0: none */
    long rounds;
    uint64_t seed;
};

/* One round's pseudo-labels and the student's data. */
struct self_training_labels {
    size_t n, classes;              /* the unlabeled split's images, the dataset's classes */
    const struct data_split *split; /* the unlabeled split (ascending indices) */
    float *probs;                   /* n x classes: the teachers' mean, sharpened (soft) */
    uint32_t *label;                /* the argmax of the mean, a dataset class */
    double *confidence;             /* the mean's probability of label, before sharpening */
    uint32_t *copies;               /* in the student's data; 0: dropped */
    size_t *per_class;              /* classes: the student's pseudo-labeled images per class */
    size_t kept;                    /* images whose confidence reaches the threshold */
    size_t used, images;            /* of them in the student's data, alone and with copies */
    size_t judged, correct;         /* kept images with a hidden label, and right */
    /* The student's training split: the labeled split's images, then every kept image as many
     * times as its copies, labeled with its pseudo-label. Of no dataset file. */
    struct data_split student;
};

/* A round's labelling, in three steps. Open: l sized for the unlabeled split of dataset ds
 * (self_training_labels_free it, after a failure too). Teach: the teachers (repository model
 * names: a JSON array of strings) label it, the mean of their probabilities, each in the
 * dataset's class order, into l->probs (or self_training_probs_load reads them). Finish: the
 * images are selected (self_training_select.h), the soft targets sharpened and the student's
 * split made after labeled; the pseudo-labels go to artifact `artifact` as JSON Lines, one image
 * a line: {"file", "index", "label", "confidence", "copies"}. Each 0, or -1 with err. */
int self_training_labels_open(struct self_training_labels *l, const struct self_training_params *sp,
                              struct dataset *ds, struct eng_error *err);
int self_training_teach(struct job_ctx *ctx, const struct self_training_params *sp,
                        const json_t *teachers, struct self_training_labels *l,
                        struct eng_error *err);
int self_training_labels_finish(struct job_ctx *ctx, const struct self_training_params *sp,
                                struct dataset *ds, const struct data_split *labeled,
                                const char *artifact, struct self_training_labels *l,
                                struct eng_error *err);
void self_training_labels_free(struct self_training_labels *l);
/* A round's summary: {"unlabeled", "kept" (at the threshold), "dropped", "used" (kept images the
 * balancing left in), "images" (with their copies), "per_class": [{"class", "images"}],
 * "accuracy" (of the kept pseudo-labels against the dataset's hidden labels; null without)}. */
json_t *self_training_labels_json(const struct self_training_labels *l, const struct dataset *ds);
/* The train run's soft targets (job_train_run's targets, r->user the labels): a pseudo-labeled
 * image's sharpened mean, a labeled one's one-hot label. */
struct job_train_run;
struct data_batch;
int self_training_targets(struct job_train_run *r, const struct data_batch *b, float *probs,
                          struct eng_error *err);

/* ---- A round's labels in the job's folder (job_self_training_probs.c) ------------------------
 * The teachers' mean probabilities (l->probs before the selection), from which the rest of the
 * labelling follows exactly: a resumed round reads them rather than running its teachers again.
 * Each attempt writes its own file, round-<k>-labels-a<attempt>.bin, whole or not at all, before
 * the checkpoint that names it: a process that lost the job's lease never replaces the file of the
 * attempt that replaced it, and a file no checkpoint names is never read. */
#define SELF_TRAINING_PROBS_FILE 64
/* This attempt's file name for round k, into out. */
const char *self_training_probs_file(struct job_ctx *ctx, long k,
                                     char out[SELF_TRAINING_PROBS_FILE]);
int self_training_probs_save(struct job_ctx *ctx, const char *file,
                             const struct self_training_labels *l, struct eng_error *err);
/* Reads file into l->probs when it holds the labels of l's split in l's classes; -1 with err
 * otherwise, l unchanged. */
int self_training_probs_load(struct job_ctx *ctx, const char *file, struct self_training_labels *l,
                             struct eng_error *err);
/* Removes the files of rounds 1 to rounds of this attempt and those before it (once nothing will
 * resume from them). */
void self_training_probs_remove(struct job_ctx *ctx, long rounds);

/* Opens teacher `name` (number index in the params, -1 for a lone string) on the unlabeled split
 * of dataset_id, as job_classify_open does, with the errors naming params.teacher: for validate
 * and for the labelling. */
struct job_classify;
int self_training_teacher_open(struct job_classify *jc, const struct app *app,
                               const struct self_training_params *sp, const char *name, long index,
                               struct eng_error *err);

#endif
