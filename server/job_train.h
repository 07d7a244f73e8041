/* The job kind "train" (server/job_train.c) and the parts it is made of: its params
 * (job_train_params.c), its checkpoint file (job_train_state.c) and the model it registers
 * (job_train_model.c). Private to those files. */
#ifndef AUGSERVE_JOB_TRAIN_H
#define AUGSERVE_JOB_TRAIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "classify/classify.h"
#include "core/error.h"
#include "job_classify.h"
#include "train/train.h"

struct job_ctx;
struct policy;

#define JOB_TRAIN_MAX_EPOCHS 100000
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
    long epochs;
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
};

/* Reads params (validate and run share it): 0, or -1 with err (ENG_INVALID naming the field,
 * ENG_NOT_FOUND for an unknown dataset, ENG_CONFLICT when the output model exists). Release with
 * job_train_params_close, after a failure too. */
int job_train_params_open(struct job_train_params *p, const struct app *app, const json_t *params,
                          struct eng_error *err);
void job_train_params_close(struct job_train_params *p);

/* ---- The checkpoint file (job_train_state.c) --------------------------------------------------
 * Every parameter and buffer value of the plan, the optimiser's and the EMA's saved bytes and the
 * plan's step, as one binary file written to a temporary name and renamed over the last one. */
int job_train_state_save(const char *path, struct train_plan *plan, const struct train_optim *optim,
                         const struct train_ema *ema, struct eng_error *err);
/* Loads a file job_train_state_save wrote back into plan, optim and ema (NULL when off). */
int job_train_state_load(const char *path, struct train_plan *plan, struct train_optim *optim,
                         struct train_ema *ema, struct eng_error *err);

/* ---- The model it registers (job_train_model.c) ---------------------------------------------- */

/* The trained values (the EMA's when ema is not NULL) as an ONNX graph, written: *onnx
 * malloc'd. */
int job_train_model_onnx(const struct nn_graph *g, struct train_plan *plan,
                         const struct train_ema *ema, void **onnx, size_t *size,
                         struct eng_error *err);
/* A fine-tuned repository model's fingerprint: the SHA-256 of its graph as written (its
 * weights and structure), as 64 hex digits. A resumed job compares it with its checkpoint's. */
int job_train_base_sha256(const struct job_train_params *p, char hex[65], struct eng_error *err);
/* Registers model.onnx, config.json (p's preprocess, labels.txt: the dataset's classes) and
 * training.json (card) as the repository model p->output. */
int job_train_model_register(struct job_ctx *ctx, const struct job_train_params *p,
                             const void *onnx, size_t onnx_size, const json_t *card,
                             struct eng_error *err);

#endif
