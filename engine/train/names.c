/* The names a job's params give the optimisers and the schedules (train.h). */
#include <string.h>

#include "train/internal.h"

/* The index of name in names[0..n), or -1. */
static int index_of(const char *const *names, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(name, names[k]) == 0) return (int)k;
    return -1;
}

int train_optim_kind_named(const char *name, enum train_optim_kind *kind, struct eng_error *err)
{
    static const char *const names[] = {[TRAIN_SGD] = "sgd", [TRAIN_ADAMW] = "adamw"};
    int k = index_of(names, sizeof names / sizeof *names, name);
    if (k < 0)
        return eng_fail(err, ENG_INVALID, "unknown optimiser '%.100s': use sgd or adamw", name);
    *kind = (enum train_optim_kind)k;
    return 0;
}

int train_lr_kind_named(const char *name, enum train_lr_kind *kind, struct eng_error *err)
{
    static const char *const names[] = {[TRAIN_LR_CONSTANT] = "constant",
                                        [TRAIN_LR_STEP] = "step",
                                        [TRAIN_LR_MULTISTEP] = "multistep",
                                        [TRAIN_LR_COSINE] = "cosine",
                                        [TRAIN_LR_FIXMATCH] = "fixmatch"};
    int k = index_of(names, sizeof names / sizeof *names, name);
    if (k < 0)
        return eng_fail(err, ENG_INVALID,
                        "unknown schedule '%.100s': use constant, step, multistep, cosine or "
                        "fixmatch",
                        name);
    *kind = (enum train_lr_kind)k;
    return 0;
}
