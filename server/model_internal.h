/* The model repository's internals, shared by its files and by nothing else:
 *
 *   models.c           the repository on disk: open, close, acquire, list, add, remove, rescan
 *   model_load.c       a model folder into a struct model; freeing it; references
 *   model_config.c     config.json: preprocess, labels, batching, inputs and outputs
 *   model_perceptual.c config.json's "perceptual": taps, lin weights, the smallest side
 *   model_plans.c      the plan cache per input shape, and the runs of the network
 *   model_batcher.c    dynamic batching: concurrent calls gathered into one run
 *
 * A struct model is written only while it loads, by the thread loading it; once listed it is
 * read-only but for its atomics and what its locks guard, so any thread may use it. */
#ifndef AUGSERVE_MODEL_INTERNAL_H
#define AUGSERVE_MODEL_INTERNAL_H

#ifndef AUGSERVE_MODELS_INTERNAL
#error "model_internal.h is private to server/model*.c: use models.h"
#endif

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "models.h"

struct cached_plan; /* model_plans.c */
struct batch;       /* model_batcher.c */

struct model {
    char *name;
    struct models_settings settings; /* the repository's, copied: a model may outlive it */
    uint64_t files;                  /* model_folder_signature when it was loaded */
    struct nn_graph *graph;          /* NULL: unavailable */
    char *reason;
    long max_batch;
    size_t image_input, scores_output;
    int probabilities;
    int has_preprocess;
    struct classify_preprocess preprocess;
    json_t *config;            /* config.json as read; NULL without one */
    json_t *perceptual_config; /* config.json's "perceptual", until applied at the end of loading */
    int has_perceptual;        /* it loaded: perceptual is served */
    struct model_perceptual perceptual; /* points into the three arrays below */
    char **tap_names;
    float **lin; /* per tap: the weights, or NULL for "lin": false */
    int *channels;
    char *perceptual_reason; /* why the section did not load */
    char *label_text;        /* the labels file, its newlines replaced by NULs */
    char **labels;
    size_t label_count;
    long delay_us;       /* dynamic_batching.max_delay_us; -1: none */
    atomic_int batching; /* dynamic batching applies; cleared if a batch's outputs cannot split */
    atomic_int refs;     /* the repository's reference plus one per models_acquire */
    atomic_ullong requests, executions;
    pthread_mutex_t plans_lock; /* guards plans and n_plans */
    struct cached_plan *plans;
    size_t n_plans;
    pthread_mutex_t batch_lock; /* guards open and every call's done */
    pthread_cond_t batch_cond;  /* a batch filled, closed or finished */
    struct batch *open;         /* the batch gathering calls, or NULL */
};

/* ---- model_load.c ---- */

/* The model in folder, named name; one that cannot serve holds its reason and no graph. NULL only
 * when memory runs out. */
struct model *model_load(const char *folder, const char *name,
                         const struct models_settings *settings);
/* What the files directly in folder are, to tell whether a model's files changed since it loaded.
 * 0 when the folder cannot be read. */
uint64_t model_folder_signature(const char *folder);

/* ---- model_config.c ---- */

/* dir/file into out; -1 (errno ENAMETOOLONG) when it does not fit. */
int model_path_join(char out[PATH_MAX], const char *dir, const char *file);
/* Whether a file name config.json gives (labels, weights) stays in the model's folder and clear
 * of the model's own files. */
int model_valid_file_name(const char *name);
/* Applies config.json (doc) to m, whose graph is loaded. ENG_INVALID naming the field when the
 * config is not acceptable. */
int model_apply_config(struct model *m, json_t *doc, const char *folder, struct eng_error *err);
/* Refuses members of obj that are not in allowed (NULL-terminated); prefix names obj. */
int model_config_check_fields(json_t *obj, const char *prefix, const char *const *allowed,
                              struct eng_error *err);
/* A member holding 3 numbers (> 0 when positive) into out, which keeps its defaults when absent. */
int model_config_get_triple(json_t *obj, const char *key, const char *field, int positive,
                            float out[3], struct eng_error *err);

/* ---- model_perceptual.c ---- */

/* Applies the "perceptual" section kept from config.json, once the model has loaded. */
void model_load_perceptual(struct model *m, const char *folder);
void model_free_perceptual(struct model *m);

/* ---- model_plans.c ---- */

/* A plan for these shapes; tapped adds the perceptual taps after the outputs. */
struct nn_plan *model_compile(const struct model *m, const struct nn_tensor_info *shapes,
                              int tapped, struct eng_error *err);
/* Compiles (and caches) the plan for batch 1 when the inputs are static apart from the batch. */
int model_compile_batch_of_one(struct model *m, struct eng_error *err);
/* One execution of the network on the plan for these shapes. */
int model_execute(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                  float **outputs, struct nn_tensor_info *output_info, struct eng_error *err);
/* Whether n shapes agree in rank and in every dimension from from_dim on. */
int model_same_shapes(const struct nn_tensor_info *a, const struct nn_tensor_info *b, size_t n,
                      int from_dim);
void model_free_plans(struct model *m);

/* ---- model_batcher.c ---- */

/* Whether calls to g may batch: every input and output has the batch as its first dimension. */
int model_batchable(const struct nn_graph *g);

#endif
