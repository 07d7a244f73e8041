/* FixMatch's step (job_fixmatch.h): the loss over one forward's logits, and the step around it.
 * The cross-entropies are the engine's (train_loss_cross_entropy, PyTorch's F.cross_entropy),
 * whose per-sample weights carry the mask, so the unlabeled term is the reference's
 * (F.cross_entropy(..., reduction='none') * mask).mean(). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job_fixmatch.h"

size_t fixmatch_rows(const struct fixmatch_config *c)
{
    return c->batch * (1 + 2 * c->mu);
}

/* A weak row's pseudo-label (the lower class on a tie) and its largest probability, in double. */
static int32_t pseudo_label(const float *row, size_t classes, double *top)
{
    size_t best = 0;
    for (size_t k = 1; k < classes; k++)
        if (row[k] > row[best]) best = k;
    double sum = 0;
    for (size_t k = 0; k < classes; k++)
        sum += exp((double)row[k] - (double)row[best]);
    *top = 1 / sum;
    return (int32_t)best;
}

int fixmatch_loss(const struct fixmatch_config *c, const float *logits, const int32_t *labels,
                  float *dlogits, int32_t *pseudo, float *mask, struct fixmatch_stats *stats,
                  struct eng_error *err)
{
    size_t b = c->batch, u = c->mu * c->batch, k = c->classes;
    memset(dlogits, 0, fixmatch_rows(c) * k * sizeof *dlogits);
    memset(stats, 0, sizeof *stats);
    struct train_targets targets = {.labels = labels};
    if (train_loss_cross_entropy(logits, b, k, &targets, 0, NULL, &stats->labeled_loss, dlogits,
                                 err))
        return -1;
    for (size_t i = 0; i < b; i++) {
        double top;
        stats->labeled_correct += pseudo_label(logits + i * k, k, &top) == labels[i];
    }
    stats->loss = stats->labeled_loss;
    if (u == 0) return 0;
    const float *weak = logits + b * k, *strong = weak + u * k;
    float *dstrong = dlogits + (b + u) * k;
    int32_t *targets_u = malloc(u * sizeof *targets_u);
    float *weights = malloc(u * sizeof *weights);
    if (!targets_u || !weights) {
        free(targets_u);
        free(weights);
        return eng_no_memory(err);
    }
    for (size_t i = 0; i < u; i++) {
        double top;
        targets_u[i] = pseudo_label(weak + i * k, k, &top);
        if (!isfinite(top)) {
            free(targets_u);
            free(weights);
            return eng_fail(err, ENG_INVALID, "FixMatch: weak logits of row %zu are not finite", i);
        }
        weights[i] = top >= c->tau ? 1.0f : 0.0f;
        stats->masked += top >= c->tau;
        if (pseudo) pseudo[i] = targets_u[i];
        if (mask) mask[i] = weights[i];
    }
    targets = (struct train_targets){.labels = targets_u};
    int rc = train_loss_cross_entropy(strong, u, k, &targets, 0, weights, &stats->unlabeled_loss,
                                      dstrong, err);
    free(targets_u);
    free(weights);
    if (rc) return -1;
    /* d(lambda_u Lu) = lambda_u dLu; lambda_u = 1, the reference's, leaves the bits. */
    if (c->lambda_u != 1)
        for (size_t i = 0; i < u * k; i++)
            dstrong[i] = (float)(c->lambda_u * dstrong[i]);
    stats->loss += c->lambda_u * stats->unlabeled_loss;
    return 0;
}

int fixmatch_step(const struct fixmatch_config *c, struct train_plan *plan,
                  struct train_optim *optim, struct train_ema *ema, const float *input,
                  const int32_t *labels, double lr, float *dlogits, int32_t *pseudo, float *mask,
                  const float **logits, struct fixmatch_stats *stats, struct eng_error *err)
{
    struct train_param *params = train_plan_param(plan, 0);
    size_t n = train_plan_param_count(plan);
    return train_plan_forward(plan, input, true, logits, err) ||
                   fixmatch_loss(c, *logits, labels, dlogits, pseudo, mask, stats, err) ||
                   train_plan_backward(plan, dlogits, NULL, err) ||
                   train_optim_step(optim, params, n, lr, err) ||
                   (ema && train_ema_update(ema, params, n, train_plan_buffer(plan, 0),
                                            train_plan_buffer_count(plan), err))
               ? -1
               : 0;
}
