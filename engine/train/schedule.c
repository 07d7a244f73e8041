/* Learning-rate schedules: PyTorch's StepLR, MultiStepLR and CosineAnnealingLR in their closed
 * forms, FixMatch's cosine (kekmodel/FixMatch-pytorch, train.py's LambdaLR), and a linear
 * warm-up before any of them (train.h). */
#include <math.h>

#include "train/internal.h"

int train_schedule_check(const struct train_schedule *s, long total, struct eng_error *err)
{
    if (total < 1) return eng_fail(err, ENG_INVALID, "a schedule needs at least 1 step");
    if (!(s->lr > 0 && isfinite(s->lr)))
        return eng_fail(err, ENG_INVALID, "lr must be a finite number > 0, not %g", s->lr);
    if (s->warmup < 0 || s->warmup > total)
        return eng_fail(err, ENG_INVALID, "warmup must be in [0, %ld] (the total), not %ld", total,
                        s->warmup);
    switch (s->kind) {
    case TRAIN_LR_CONSTANT:
    case TRAIN_LR_FIXMATCH:
        return 0;
    case TRAIN_LR_COSINE:
        if (!(s->min_lr >= 0 && s->min_lr <= s->lr))
            return eng_fail(err, ENG_INVALID, "min_lr must be in [0, lr], not %g", s->min_lr);
        return 0;
    case TRAIN_LR_STEP:
    case TRAIN_LR_MULTISTEP:
        if (!(s->gamma > 0 && s->gamma <= 1))
            return eng_fail(err, ENG_INVALID, "gamma must be in (0, 1], not %g", s->gamma);
        if (s->kind == TRAIN_LR_STEP) {
            if (s->step_size < 1)
                return eng_fail(err, ENG_INVALID, "step_size must be >= 1, not %ld", s->step_size);
            return 0;
        }
        if (s->n_milestones < 1 || s->n_milestones > TRAIN_MAX_MILESTONES)
            return eng_fail(err, ENG_INVALID, "milestones must list 1 to %d steps, not %zu",
                            TRAIN_MAX_MILESTONES, s->n_milestones);
        for (size_t i = 0; i < s->n_milestones; i++)
            if (s->milestones[i] < 1 || (i > 0 && s->milestones[i] <= s->milestones[i - 1]))
                return eng_fail(err, ENG_INVALID,
                                "milestones must be increasing steps >= 1; milestone %zu is %ld", i,
                                s->milestones[i]);
        return 0;
    }
    return eng_fail(err, ENG_INVALID, "unknown schedule kind %d", (int)s->kind);
}

double train_schedule_lr(const struct train_schedule *s, long step, long total)
{
    if (step < 0) step = 0;
    if (step >= total) step = total; /* past the end: the final value */
    if (step < s->warmup) return s->lr * ((double)step / (double)s->warmup);
    long k = step - s->warmup, K = total - s->warmup > 1 ? total - s->warmup : 1;
    if (k > K) k = K;
    switch (s->kind) {
    case TRAIN_LR_CONSTANT:
        return s->lr;
    case TRAIN_LR_STEP:
        return s->lr * pow(s->gamma, (double)(k / s->step_size));
    case TRAIN_LR_MULTISTEP: {
        size_t passed = 0;
        while (passed < s->n_milestones && s->milestones[passed] <= k)
            passed++;
        return s->lr * pow(s->gamma, (double)passed);
    }
    case TRAIN_LR_COSINE:
        return s->min_lr + (s->lr - s->min_lr) * (1 + cos(M_PI * (double)k / (double)K)) / 2;
    case TRAIN_LR_FIXMATCH:
        return s->lr * fmax(0.0, cos(M_PI * (7.0 / 16.0) * ((double)k / (double)K)));
    }
    return s->lr;
}
