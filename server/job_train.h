/* The job kinds "train" (server/job_train.c), "diversity" (server/job_diversity.c) and
 * "affinity-diversity" (server/job_affinity_diversity.c) and the parts they are made of: their
 * params (job_train_params.c), a training run (job_train_run.c), its checkpoint file
 * (job_train_state.c) and the model train registers (job_train_model.c). Private to those
 * files. */
#ifndef AUGSERVE_JOB_TRAIN_H
#define AUGSERVE_JOB_TRAIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "classify/classify.h"
#include "core/error.h"
#include "job_classify.h"
#include "policy/policy.h"
#include "train/train.h"

struct job_ctx;
struct policy;

#define JOB_TRAIN_MAX_EPOCHS 100000
#define JOB_TRAIN_MAX_STEPS  100000000
#define JOB_TRAIN_MAX_BATCH  4096

/* A train job's params, read and checked (job_train_params_open), with the dataset and the
 * policy taken. */
struct job_train_params {
    struct job_classify data;     /* dataset, split, seed: the classifier kinds' own code */
    const struct data_split *val; /* val_split, or NULL */
    struct policy *policy;        /* NULL: no augmentation */
    struct train_zoo_spec model;  /* a zoo model's; unset when fine-tuning */
    /* Fine-tuning (params.model names a repository model, held in data.model): the new head's
     * class count (0: the model's own head), the freeze form (NULL: none), the model's input
     * shape for a batch, and data.class_map set when the dataset's classes are matched to the
     * model's labels. */
    int new_head;
    const json_t *freeze;
    struct nn_tensor_info input;
    size_t classes; /* the model's outputs: the dataset's class count */
    long epochs;    /* the epochs begun: the last one partial when steps end inside it */
    long steps;     /* the optimiser steps of the whole run */
    size_t batch;
    struct train_optim_config optim;
    struct train_schedule schedule; /* warmup and milestones in steps (epochs x batches) */
    double label_smoothing;
    double ema;  /* decay; 0: off */
    double clip; /* max gradient norm; 0: off */
    long eval_every;
    const char *output;
    size_t batches; /* training batches per epoch (drop_last) */
    /* The training transform: a zoo model's resize and crop to its size with CIFAR-10's mean
     * and std, or a fine-tuned model's own preprocess. */
    struct classify_preprocess preprocess;
    /* The images of a training forward: batch, or FixMatch's batch (1 + 2 mu). */
    size_t forward_batch;
    /* FixMatch's (job_fixmatch.c reads them; mu 0 for every other kind and for supervised):
     * the unlabeled split, mu, tau, lambda_u, and the strong view's policy (the weak policy
     * then the strong one, drawn apart from the weak view). */
    struct {
        const struct data_split *unlabeled;
        size_t mu;
        double tau, lambda_u;
        struct policy *strong;
        /* "strong": "ctaugment" (strong NULL): the strong view is drawn from a CTAugment state
         * with these settings, or the /v1/ctaugment state cta_from (params' string), which
         * probes on the labeled images teach (job_fixmatch_cta.c); saved at the end with
         * cta_save. */
        int ctaugment, cta_save;
        struct ctaug_settings cta;
        const char *cta_from;
    } semi;
};

/* Which kind's params: diversity's are train's without val_split, ema, eval_every and output,
 * and with the policy required; affinity-diversity's are diversity's with val_split required and
 * "policies" and "level" (the kind reads them: job_affinity_policies) in place of "policy", and
 * eval_every set to the epochs; a search trial's (val_accuracy, search_objective.c) are train's
 * without output and eval_every, with val_split required and eval_every set to 1; a self-training
 * student's (job_self_training.c) are train's without output, with val_split required. */
enum job_train_for {
    JOB_TRAIN_FOR_TRAIN,
    JOB_TRAIN_FOR_DIVERSITY,
    JOB_TRAIN_FOR_AFFINITY_DIVERSITY,
    JOB_TRAIN_FOR_TRIAL,
    JOB_TRAIN_FOR_SELF_TRAINING,
    /* FixMatch's (job_fixmatch.c): train's with unlabeled_split, mu, tau, lambda_u and strong,
     * val_split required; supervised takes the same, and trains without the unlabeled ones.
     * Kept last: job_train_params.c tests kind >= JOB_TRAIN_FOR_FIXMATCH. */
    JOB_TRAIN_FOR_FIXMATCH,
    JOB_TRAIN_FOR_SUPERVISED
};

/* Reads params (validate and run share it): 0, or -1 with err (ENG_INVALID naming the field,
 * ENG_NOT_FOUND for an unknown dataset, ENG_CONFLICT when the output model exists). Release with
 * job_train_params_close, after a failure too. */
int job_train_params_open(struct job_train_params *p, const struct app *app, const json_t *params,
                          enum job_train_for kind, struct eng_error *err);
/* The same for job's run: an output model this very job registered (an attempt killed after
 * registering it and before its end was recorded, job_train_model_registered_by) is no conflict. */
int job_train_params_open_job(struct job_train_params *p, const struct job_ctx *job,
                              const json_t *params, enum job_train_for kind, struct eng_error *err);
/* The same with split as the training split in place of the one params names (self-training's
 * labeled and pseudo-labeled images: a split of no dataset file, which must outlive p). */
int job_train_params_open_split(struct job_train_params *p, const struct app *app,
                                const json_t *params, enum job_train_for kind,
                                const struct data_split *split, struct eng_error *err);
void job_train_params_close(struct job_train_params *p);
/* FixMatch's own params into p->semi (job_fixmatch.c), read by job_train_params_open once the
 * batch is known. */
int job_fixmatch_params(struct job_train_params *p, const json_t *params, enum job_train_for kind,
                        struct eng_error *err);

/* ---- A training run (job_train_run.c) ----------------------------------------------------------
 * The model built from p, trained epoch by epoch, with events, artifacts (through the caller's
 * artifacts function) and a checkpoint after every epoch. The caller sets the members before
 * "set by job_train_run_open" and zeroes the rest. */
struct job_train_run {
    struct job_ctx *ctx;
    const struct job_train_params *p;
    const struct policy *policy; /* applied to the training split; NULL: none */
    /* The job's checkpoints before this run's first (the runs before it times their epochs): the
     * checkpoint files alternate with the job's checkpoints, across its runs too. */
    long first_checkpoint;
    const char *phase;                   /* in progress messages and logs */
    const char *metric_prefix;           /* before each metric event's name; NULL: none */
    double progress_base, progress_span; /* this run's part of the job's progress */
    /* After each epoch's metrics, before its checkpoint: the artifacts so far (NULL: none). It
     * may set stop: the run ends after this epoch (a search trial stopped early). */
    int (*artifacts)(struct job_train_run *r, struct eng_error *err);
    int stop;
    /* A kind's own training step in place of the supervised one (FixMatch's): b's labels as
     * the model's classes, k the run's step; it adds its correct labeled rows to *correct. */
    int (*step)(struct job_train_run *r, const struct data_batch *b, const int32_t *labels, long k,
                double *loss, size_t *correct, struct eng_error *err);
    /* Members a kind adds to each epoch's metrics row (its metric events are its own), after the
     * epoch's evaluation and before its artifacts and checkpoint; NULL: none. */
    int (*epoch_end)(struct job_train_run *r, json_t *row, struct eng_error *err);
    const char *const *extra_columns; /* metrics.csv's columns after train's, NULL-ended */
    void *user;                       /* the caller's, for artifacts, step, epoch_end and targets */
    /* Soft targets (NULL: the batch's labels): batch b's target distributions into probs
     * (b->size x classes), for the cross-entropy; the labels still count the train accuracy. */
    int (*targets)(struct job_train_run *r, const struct data_batch *b, float *probs,
                   struct eng_error *err);
    json_t *extra; /* members added to every checkpoint's JSON (borrowed); NULL: none */
    /* Set by job_train_run_open. */
    struct nn_graph *graph;
    struct train_plan *plan, *eval; /* eval: NULL without a val_split */
    struct train_optim *optim;
    struct train_ema *ema; /* NULL without EMA */
    size_t n_params, n_buffers, classes;
    float *dlogits;       /* batch x classes */
    float *probs;         /* batch x classes: targets' (NULL without it) */
    float *inputs;        /* one evaluation batch, zero past a short batch's samples */
    int32_t *labels;      /* a batch's labels as the model's classes (model_labels) */
    json_t *metrics;      /* per epoch, an object each */
    char base_sha256[65]; /* a fine-tuned model's job_train_base_sha256; "" for a zoo model */
    long epoch;           /* epochs done */
    double seconds;       /* spent training and evaluating so far, over every attempt */
};

/* Builds the model, its plans, optimiser and EMA. Release with job_train_run_close, after a
 * failure too. */
int job_train_run_open(struct job_train_run *r, struct eng_error *err);
/* Restores a checkpoint's JSON (one this run's checkpoint wrote) and the file it names, which
 * must hold the JSON's step (a job error otherwise, never a silent resume). */
int job_train_run_restore(struct job_train_run *r, const json_t *saved, struct eng_error *err);
/* The epochs left (none when restored after the last). */
int job_train_run_epochs(struct job_train_run *r, struct eng_error *err);
/* The model as trained so far (the EMA's values when on) on the val split, in eval mode, with
 * policy applied to each image (NULL: none) by the loader at the seed, epoch 0, in order: the
 * mean loss and the accuracy over its *count images (NaN for none). The run needs a val split.
 * The pass without a policy is the one that gives the epochs' val metrics, and Identity gives
 * its numbers exactly. */
int job_train_run_evaluate(struct job_train_run *r, const struct policy *policy, double *loss,
                           double *accuracy, size_t *count, struct eng_error *err);
/* The model as trained so far (the EMA's values when on), in eval mode, on p->batch images
 * (inputs): *logits (batch x classes) stay readable until the next evaluation. The run needs a
 * val split. FixMatch's CTAugment probes are classified so. */
int job_train_run_classify(struct job_train_run *r, const float *inputs, const float **logits,
                           struct eng_error *err);
void job_train_run_close(struct job_train_run *r);
/* The run's metrics so far as a CSV artifact named name: a header and a row per epoch. */
int job_train_run_csv(const struct job_train_run *r, const char *name, struct eng_error *err);
/* A member of an epoch's metrics; NaN when it was not measured. */
double job_train_metric(const json_t *row, const char *name);
/* A JSON number's value; NaN for anything else (null: not measured). */
double job_train_real(const json_t *v);
/* A number as JSON: null when it is not finite (not measured, or a loss ratio over a loss of 0). */
json_t *job_train_number(double v);

/* The train kind's run (server/job_train.c) for a kind built on it (fixmatch, supervised): r's
 * ctx, p (opened), phase, progress_span and hooks set by the caller; the run from the restored
 * checkpoint or the start, metrics.csv and loss.png each epoch, the model registered as
 * p->output at the end, *result; the checkpoint files removed unless the job will run again.
 * Closes r, not p. */
int job_train_kind_run(struct job_train_run *r, const json_t *params, json_t **result,
                       struct eng_error *err);

/* Removes the job's checkpoint files, those an older version named too (once nothing will resume
 * from them). They are in the job's folder (the artifacts folder's parent), so they are not
 * listed among the artifacts but go with the job. */
void job_train_remove_states(struct job_ctx *ctx);

/* The path of file `file` in the job's folder (the artifacts folder's parent): the checkpoint
 * files, self-training's labels. */
int job_train_folder_path(struct job_ctx *ctx, const char *file, char *path, size_t size,
                          struct eng_error *err);

/* ---- The checkpoint file (job_train_state.c) --------------------------------------------------
 * Every parameter and buffer value of the plan, the optimiser's and the EMA's saved bytes and the
 * plan's step, as one binary file written to a temporary name and renamed into place. */
int job_train_state_save(const char *path, struct train_plan *plan, const struct train_optim *optim,
                         const struct train_ema *ema, struct eng_error *err);
/* A file written whole or not at all: write's bytes (it returns 0, -1 with errno set, or -2 with
 * err set) into path.tmp, flushed to the disk, renamed to path, the rename made durable: a record
 * committed after it never names a missing or truncated file. */
int job_train_file_save(const char *path,
                        int (*write)(FILE *f, const void *arg, struct eng_error *err),
                        const void *arg, struct eng_error *err);
/* A file's bytes, *data malloc'd. */
int job_train_file_read(const char *path, unsigned char **data, size_t *size,
                        struct eng_error *err);
/* Loads a file job_train_state_save wrote back into plan, optim and ema (NULL when off), when it
 * holds the plan's step `expected` (the one its checkpoint's JSON recorded): a job error
 * otherwise. */
int job_train_state_load(const char *path, uint64_t expected, struct train_plan *plan,
                         struct train_optim *optim, struct train_ema *ema, struct eng_error *err);

/* ---- The model it registers (job_train_model.c) ---------------------------------------------- */

/* training.json (job_train.c): what the model was trained on and how (params, the job's), and
 * what it reached. */
json_t *job_train_card(const struct job_train_run *r, const json_t *params);

/* The trained values (the EMA's when ema is not NULL) as an ONNX graph, written: *onnx
 * malloc'd. */
int job_train_model_onnx(const struct nn_graph *g, struct train_plan *plan,
                         const struct train_ema *ema, void **onnx, size_t *size,
                         struct eng_error *err);
/* Whether repository model name was registered by job (its training.json's "job" is job's id),
 * in an earlier attempt: a kill after the registration and before the record of what followed. */
int job_train_model_registered_by(const struct job_ctx *job, const char *name);
/* A fine-tuned repository model's fingerprint: the SHA-256 of its graph as written (its
 * weights and structure), as 64 hex digits. A resumed job compares it with its checkpoint's. */
int job_train_base_sha256(const struct job_train_params *p, char hex[65], struct eng_error *err);
/* Registers model.onnx, config.json (a zoo model's preprocess; a fine-tuned model's base
 * config.json but "perceptual"; labels.txt either way: the dataset's classes, or the base's
 * labels when it keeps its head) and training.json (card) as the repository model p->output.
 * A model of that name this very job registered is taken as registered (0, logged): an attempt
 * killed between the registration and the record of what came after it; any other is a
 * conflict. */
int job_train_model_register(struct job_ctx *ctx, const struct job_train_params *p,
                             const void *onnx, size_t onnx_size, const json_t *card,
                             struct eng_error *err);

#endif
