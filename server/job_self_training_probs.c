/* A self-training round's labels kept in the job's folder (job_self_training.h), so a resumed
 * round does not run its teachers again: the teachers' mean probabilities, from which the
 * selection, the sharpening and the student's split follow exactly. Layout, little-endian as the
 * CPUs the server runs on store them:
 *   "AUGPROBS" u32 version  u32 classes  u64 images
 *   the unlabeled split's dataset indices (u32 each), then images x classes floats
 * A file of another split or another dataset's classes is refused, never half read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_kind.h"
#include "job_self_training.h"
#include "job_train.h"

#define MAGIC   "AUGPROBS"
#define VERSION 1u
#define HEAD    (8 + 2 * sizeof(uint32_t) + sizeof(uint64_t))

static int write_probs(FILE *f, const void *arg, struct eng_error *err)
{
    (void)err;
    const struct self_training_labels *l = arg;
    uint32_t head[2] = {VERSION, (uint32_t)l->classes};
    uint64_t n = l->n;
    return fwrite(MAGIC, 1, 8, f) == 8 && fwrite(head, sizeof head, 1, f) == 1 &&
                   fwrite(&n, sizeof n, 1, f) == 1 &&
                   fwrite(l->split->indices, sizeof *l->split->indices, l->n, f) == l->n &&
                   fwrite(l->probs, sizeof *l->probs, l->n * l->classes, f) == l->n * l->classes
               ? 0
               : -1;
}

int self_training_probs_save(struct job_ctx *ctx, const char *file,
                             const struct self_training_labels *l, struct eng_error *err)
{
    char path[4096];
    return job_train_folder_path(ctx, file, path, sizeof path, err) ||
                   job_train_file_save(path, write_probs, l, err)
               ? -1
               : 0;
}

int self_training_probs_load(struct job_ctx *ctx, const char *file, struct self_training_labels *l,
                             struct eng_error *err)
{
    char path[4096];
    unsigned char *data = NULL;
    size_t size = 0;
    if (job_train_folder_path(ctx, file, path, sizeof path, err) ||
        job_train_file_read(path, &data, &size, err))
        return -1;
    size_t indices = l->n * sizeof *l->split->indices, probs = l->n * l->classes * sizeof *l->probs;
    uint32_t head[2] = {0};
    uint64_t n = 0;
    if (size == HEAD + indices + probs) {
        memcpy(head, data + 8, sizeof head);
        memcpy(&n, data + 8 + sizeof head, sizeof n);
    }
    int fits = size == HEAD + indices + probs && memcmp(data, MAGIC, 8) == 0 &&
               head[0] == VERSION && head[1] == l->classes && n == l->n &&
               memcmp(data + HEAD, l->split->indices, indices) == 0;
    if (fits) memcpy(l->probs, data + HEAD + indices, probs);
    free(data);
    return fits ? 0
                : eng_fail(err, ENG_INTERNAL,
                           "%s does not hold the labels of the %zu images of split %s in %zu "
                           "classes",
                           file, l->n, l->split->name, l->classes);
}

/* The name of round k's file of attempt `attempt`, into out. */
static const char *probs_file(long k, int attempt, char out[SELF_TRAINING_PROBS_FILE])
{
    snprintf(out, SELF_TRAINING_PROBS_FILE, "round-%ld-labels-a%d.bin", k, attempt);
    return out;
}

const char *self_training_probs_file(struct job_ctx *ctx, long k,
                                     char out[SELF_TRAINING_PROBS_FILE])
{
    return probs_file(k, job_ctx_attempt(ctx), out);
}

void self_training_probs_remove(struct job_ctx *ctx, long rounds)
{
    struct eng_error ignored = {0};
    char file[SELF_TRAINING_PROBS_FILE], path[4096];
    for (long k = 1; k <= rounds; k++)
        for (int attempt = 1; attempt <= job_ctx_attempt(ctx); attempt++) {
            if (job_train_folder_path(ctx, probs_file(k, attempt, file), path, sizeof path,
                                      &ignored) != 0)
                return;
            remove(path);
            /* What a kill during the write left. */
            if (strlen(path) + 4 < sizeof path) remove(strcat(path, ".tmp"));
        }
}
