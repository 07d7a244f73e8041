/* Classification metrics (metrics/classification.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/classification.h"

int metric_eval_init(struct metric_eval *e, size_t classes, struct eng_error *err)
{
    memset(e, 0, sizeof *e);
    if (classes == 0) return eng_fail(err, ENG_INVALID, "a classifier needs at least one class");
    if (classes > SIZE_MAX / sizeof *e->confusion / classes)
        return eng_fail(err, ENG_NO_MEMORY, "%zu classes are too many", classes);
    e->confusion = calloc(classes * classes, sizeof *e->confusion);
    if (!e->confusion)
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu classes", classes);
    e->classes = classes;
    return 0;
}

void metric_eval_free(struct metric_eval *e)
{
    free(e->confusion);
    memset(e, 0, sizeof *e);
}

size_t metric_rank(const float *probs, size_t classes, size_t c)
{
    size_t rank = 0;
    for (size_t i = 0; i < classes; i++)
        if (probs[i] > probs[c] || (probs[i] == probs[c] && i < c)) rank++;
    return rank;
}

size_t metric_ece_bin(double confidence)
{
    /* (m/M, (m+1)/M] is bin m: ceil(confidence x M) - 1, and 0 for a confidence of 0. */
    double b = ceil(confidence * METRIC_ECE_BINS) - 1;
    return b < 0 ? 0 : b >= METRIC_ECE_BINS ? METRIC_ECE_BINS - 1 : (size_t)b;
}

void metric_eval_add(struct metric_eval *e, const float *probs, size_t label)
{
    size_t top = 0;
    for (size_t i = 1; i < e->classes; i++)
        if (probs[i] > probs[top]) top = i;
    size_t rank = metric_rank(probs, e->classes, label);
    double p = probs[label] > METRIC_MIN_PROB ? probs[label] : METRIC_MIN_PROB;
    size_t bin = metric_ece_bin(probs[top]);
    e->count++;
    e->top1 += rank == 0;
    e->top5 += rank < 5;
    e->nll -= log(p);
    e->bin_count[bin]++;
    e->bin_correct[bin] += top == label;
    e->bin_confidence[bin] += probs[top];
    e->confusion[label * e->classes + top]++;
}

double metric_eval_ece(const struct metric_eval *e)
{
    double ece = 0;
    for (size_t b = 0; e->count && b < METRIC_ECE_BINS; b++)
        if (e->bin_count[b])
            ece += fabs((double)e->bin_correct[b] - e->bin_confidence[b]) / (double)e->count;
    return ece;
}

void metric_mean_std(const double *x, size_t n, double *mean, double *std)
{
    double sum = 0, squares = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    *mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++)
        squares += (x[i] - *mean) * (x[i] - *mean);
    *std = n > 1 ? sqrt(squares / (double)(n - 1)) : 0;
}

void metric_affinity(double clean, double augmented, double *difference, double *ratio)
{
    *difference = augmented - clean;
    *ratio = clean != 0 ? augmented / clean : NAN;
}
