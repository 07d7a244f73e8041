/* Classification metrics over a labelled set, accumulated one sample at a time so that a job can
 * checkpoint them between batches and resume with exactly the totals of an uninterrupted run
 * (every field is a count or a sum in a fixed order): top-1 and top-5 accuracy, the mean negative
 * log-likelihood, the expected calibration error and the confusion matrix. And the arithmetic of
 * augmentation affinity (Gontijo-Lopes et al. 2020) over repeated draws.
 *
 * Conventions, as PyTorch evaluation loops compute them:
 *   rank        class c is in the top k when fewer than k classes beat it: a higher probability,
 *               or an equal one at a lower index (classify_topk's order, so top-1 is its argmax)
 *   NLL         -log p(true class), with p clamped to METRIC_MIN_PROB: a probability that
 *               underflowed to 0 in float costs -log(1e-12) ~ 27.6, not infinity
 *   ECE         Guo et al. 2017, M = 15 equal-width bins of the top-1 confidence, bin m holding
 *               confidences in (m/M, (m+1)/M] (a confidence of 0 goes to bin 0):
 *               ECE = sum over bins of |B| / n x |accuracy(B) - mean confidence(B)|
 *   confusion   counts[true][predicted] over the model's classes */
#ifndef AUGSERVE_ENGINE_METRICS_CLASSIFICATION_H
#define AUGSERVE_ENGINE_METRICS_CLASSIFICATION_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define METRIC_ECE_BINS 15
#define METRIC_MIN_PROB 1e-12

struct metric_eval {
    size_t classes;
    uint64_t count, top1, top5;
    double nll; /* the sum over samples */
    uint64_t bin_count[METRIC_ECE_BINS], bin_correct[METRIC_ECE_BINS];
    double bin_confidence[METRIC_ECE_BINS]; /* the sum of the bin's top-1 confidences */
    uint64_t *confusion;                    /* classes x classes, [true][predicted] */
};

/* Zero totals for `classes` (>= 1) classes. ENG_INVALID for 0, ENG_NO_MEMORY. */
int metric_eval_init(struct metric_eval *e, size_t classes, struct eng_error *err);
void metric_eval_free(struct metric_eval *e);

/* Adds one sample: probs (e->classes probabilities) and its true class (< e->classes). */
void metric_eval_add(struct metric_eval *e, const float *probs, size_t label);

/* How many classes beat class c (its rank from 0: a higher probability, or an equal one at a
 * lower index). */
size_t metric_rank(const float *probs, size_t classes, size_t c);
/* The ECE bin of a top-1 confidence in [0, 1]. */
size_t metric_ece_bin(double confidence);
/* The expected calibration error of the totals (0 for no sample). */
double metric_eval_ece(const struct metric_eval *e);

/* The mean of n values and their sample standard deviation (n - 1 in the denominator; 0 for
 * n < 2). */
void metric_mean_std(const double *x, size_t n, double *mean, double *std);
/* Affinity's two published forms: augmented - clean, and augmented / clean (NaN when clean is
 * 0, which a caller shows as null). */
void metric_affinity(double clean, double augmented, double *difference, double *ratio);

#endif
