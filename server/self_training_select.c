/* Pseudo-label selection and sharpening (self_training_select.h). */
#include <math.h>
#include <stdlib.h>

#include "self_training_select.h"

/* The order of a class's images: the most confident first, the lower index on ties. */
struct ranked {
    double confidence;
    size_t index;
};

static int by_confidence(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence > y->confidence ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Class c's kept images into ranked, most confident first: their count. */
static size_t rank_class(const uint32_t *label, const double *confidence, const uint32_t *copies,
                         size_t n, uint32_t c, struct ranked *ranked)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (label[i] == c && copies[i])
            ranked[count++] = (struct ranked){.confidence = confidence[i], .index = i};
    qsort(ranked, count, sizeof *ranked, by_confidence);
    return count;
}

int self_training_select(const uint32_t *label, const double *confidence, size_t n, size_t classes,
                         double threshold, size_t per_class, uint32_t *copies,
                         struct eng_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (label[i] >= classes)
            return eng_fail(err, ENG_INVALID,
                            "pseudo-label %u of image %zu is not one of %zu classes", label[i], i,
                            classes);
        copies[i] = confidence[i] >= threshold;
    }
    if (per_class == 0) return 0;
    struct ranked *ranked = malloc((n ? n : 1) * sizeof *ranked);
    if (!ranked) return eng_no_memory(err);
    for (uint32_t c = 0; c < classes; c++) {
        size_t count = rank_class(label, confidence, copies, n, c, ranked);
        for (size_t k = 0; k < count; k++) {
            size_t each =
                count >= per_class ? k < per_class : per_class / count + (k < per_class % count);
            copies[ranked[k].index] = (uint32_t)each;
        }
    }
    free(ranked);
    return 0;
}

void self_training_sharpen(float *probs, size_t classes, double temperature)
{
    double top = 0, sum = 0;
    for (size_t j = 0; j < classes; j++)
        if (probs[j] > top) top = probs[j];
    if (top <= 0) return;
    /* In logs, relative to the top: p^(1/T) underflows for a small T where this does not. */
    for (size_t j = 0; j < classes; j++)
        sum += probs[j] > 0 ? exp((log(probs[j]) - log(top)) / temperature) : 0;
    for (size_t j = 0; j < classes; j++)
        probs[j] = probs[j] > 0 ? (float)(exp((log(probs[j]) - log(top)) / temperature) / sum) : 0;
}
