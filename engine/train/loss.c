/* Classification losses and their gradients with respect to the logits (train.h). Every sample's
 * log-softmax is computed in double through log-sum-exp, so no logit overflows and no probability
 * that underflows turns into log(0). */
#include <math.h>
#include <stdlib.h>

#include "train/internal.h"

/* Row i's log-softmax into logp (classes doubles); ENG_INVALID when a logit is not finite. */
static int log_softmax(const float *z, size_t classes, size_t row, const char *what, double *logp,
                       struct eng_error *err)
{
    double max = -INFINITY;
    for (size_t j = 0; j < classes; j++) {
        if (!isfinite(z[j]))
            return eng_fail(err, ENG_INVALID,
                            "%s: logit %zu of sample %zu is %g (the model "
                            "diverged)",
                            what, j, row, z[j]);
        if (z[j] > max) max = z[j];
    }
    double sum = 0;
    for (size_t j = 0; j < classes; j++)
        sum += exp(z[j] - max);
    double lse = max + log(sum);
    for (size_t j = 0; j < classes; j++)
        logp[j] = z[j] - lse;
    return 0;
}

static int check_shape(const char *what, size_t batch, size_t classes, struct eng_error *err)
{
    if (batch < 1 || classes < 1)
        return eng_fail(err, ENG_INVALID, "%s: %zu samples of %zu classes; needs at least 1 of 1",
                        what, batch, classes);
    return 0;
}

/* The target distribution of sample i into t (classes doubles). */
static int target_row(const struct train_targets *targets, size_t i, size_t classes,
                      double smoothing, double *t, struct eng_error *err)
{
    double spread = smoothing / (double)classes;
    if (targets->labels) {
        int32_t y = targets->labels[i];
        if (y < 0 || (size_t)y >= classes)
            return eng_fail(err, ENG_INVALID,
                            "cross-entropy: sample %zu's label is %d, not a "
                            "class in [0, %zu)",
                            i, (int)y, classes);
        for (size_t j = 0; j < classes; j++)
            t[j] = spread;
        t[y] += 1 - smoothing;
        return 0;
    }
    const float *q = targets->probs + i * classes;
    for (size_t j = 0; j < classes; j++) {
        if (!(q[j] >= 0 && isfinite(q[j])))
            return eng_fail(err, ENG_INVALID,
                            "cross-entropy: sample %zu's target probability %zu "
                            "is %g, not a finite number >= 0",
                            i, j, q[j]);
        t[j] = (1 - smoothing) * q[j] + spread;
    }
    return 0;
}

int train_loss_cross_entropy(const float *logits, size_t batch, size_t classes,
                             const struct train_targets *targets, double smoothing,
                             const float *weights, double *loss, float *grad, struct eng_error *err)
{
    if (check_shape("cross-entropy", batch, classes, err)) return -1;
    if (!targets->labels == !targets->probs)
        return eng_fail(err, ENG_INVALID, "cross-entropy: give either labels or probabilities");
    if (!(smoothing >= 0 && smoothing <= 1))
        return eng_fail(err, ENG_INVALID, "label_smoothing must be in [0, 1], not %g", smoothing);
    double *logp = malloc(2 * classes * sizeof *logp);
    if (!logp) return eng_no_memory(err);
    double *t = logp + classes;
    /* Every row is checked before any gradient is added, so a refusal leaves grad as it was. */
    for (size_t i = 0; i < batch; i++)
        if (log_softmax(logits + i * classes, classes, i, "cross-entropy", logp, err) ||
            target_row(targets, i, classes, smoothing, t, err)) {
            free(logp);
            return -1;
        }
    double total = 0;
    for (size_t i = 0; i < batch; i++) {
        log_softmax(logits + i * classes, classes, i, "cross-entropy", logp, err);
        target_row(targets, i, classes, smoothing, t, err);
        double w = weights ? weights[i] : 1, sample = 0, mass = 0;
        for (size_t j = 0; j < classes; j++) {
            sample -= t[j] * logp[j];
            mass += t[j];
        }
        total += w * sample;
        /* d/dz_j of -sum_k t_k log p_k is p_j sum_k t_k - t_j. */
        for (size_t j = 0; grad && j < classes; j++)
            grad[i * classes + j] += (float)(w / (double)batch * (exp(logp[j]) * mass - t[j]));
    }
    free(logp);
    *loss = total / (double)batch;
    return 0;
}

int train_loss_jsd(const float *const logits[3], size_t batch, size_t classes, double weight,
                   double *loss, float *const grad[3], struct eng_error *err)
{
    if (check_shape("JSD", batch, classes, err)) return -1;
    if (!(weight >= 0 && isfinite(weight)))
        return eng_fail(err, ENG_INVALID, "the JSD's weight must be a finite number >= 0, not %g",
                        weight);
    double *logp = malloc(5 * classes * sizeof *logp);
    if (!logp) return eng_no_memory(err);
    double *logm = logp + 3 * classes, *g = logm + classes;
    for (size_t i = 0; i < batch; i++)
        for (int v = 0; v < 3; v++)
            if (log_softmax(logits[v] + i * classes, classes, i, "JSD", logp, err)) {
                free(logp);
                return -1;
            }
    /* The reference clamps the float32 mixture to [1e-7, 1]; PyTorch's clamp passes the gradient
     * where the mixture is within the bounds, bounds included, and stops it elsewhere. */
    const double floor_ = (double)1e-7f, scale = weight / (3.0 * (double)batch);
    double total = 0;
    for (size_t i = 0; i < batch; i++) {
        for (int v = 0; v < 3; v++)
            log_softmax(logits[v] + i * classes, classes, i, "JSD", logp + v * classes, err);
        for (size_t j = 0; j < classes; j++) {
            double sum = exp(logp[j]) + exp(logp[classes + j]) + exp(logp[2 * classes + j]);
            double mix = sum / 3, m = fmin(fmax(mix, floor_), 1.0);
            logm[j] = log(m);
            /* d/dp_vj of sum_u sum_k p_uk (log p_uk - log M_k): log p_vj + 1 - log M_j, and
             * through M_j (when not clamped) - sum_u p_uj / (3 M_j). Stored without log p_vj. */
            g[j] = 1 - logm[j] - (mix >= floor_ && mix <= 1 ? sum / (3 * m) : 0);
        }
        for (int v = 0; v < 3; v++) {
            const double *lp = logp + v * classes;
            double kl = 0, dot = 0;
            for (size_t j = 0; j < classes; j++) {
                double p = exp(lp[j]);
                kl += p * (lp[j] - logm[j]);
                dot += p * (lp[j] + g[j]);
            }
            total += kl;
            /* Through the softmax: dz_j = p_j (dp_j - sum_k p_k dp_k). */
            for (size_t j = 0; grad && j < classes; j++)
                grad[v][i * classes + j] += (float)(scale * exp(lp[j]) * (lp[j] + g[j] - dot));
        }
    }
    free(logp);
    *loss = scale * total;
    return 0;
}
