#include "perceptual.h"

#include <stdlib.h>
#include <string.h>

#include "metric.h"

/* Tap k of n images, grown to hold the rows of another chunk. The first chunk's rows are adopted
 * as they are (*rows becomes NULL): with no max_batch there is only one chunk, and its taps are
 * not copied again. */
static int append_rows(struct metric_tensor *t, float **owned, float **rows,
                       const struct nn_tensor_info *info, int count, struct eng_error *err)
{
    size_t row = (size_t)info->dims[1] * (size_t)info->dims[2] * (size_t)info->dims[3];
    float *grown = *rows;
    if (*owned) {
        grown = realloc(*owned, ((size_t)t->n + (size_t)count) * row * sizeof *grown);
        if (!grown) return eng_fail(err, ENG_NO_MEMORY, "out of memory for the taps");
        memcpy(grown + (size_t)t->n * row, *rows, (size_t)count * row * sizeof *grown);
    } else {
        *rows = NULL;
    }
    *owned = grown;
    *t = (struct metric_tensor){grown, t->n + count, (int)info->dims[1], (int)info->dims[2],
                                (int)info->dims[3]};
    return 0;
}

/* Runs images[start, start + count) through the backbone and appends their taps to layers. */
static int run_chunk(struct model *m, struct img *const *images, int start, int count,
                     struct metric_tensor *layers, float **owned, struct eng_error *err)
{
    const struct model_perceptual *p = model_perceptual(m);
    int h = images[0]->height, w = images[0]->width;
    size_t per_image = (size_t)3 * (size_t)h * (size_t)w;
    float *input = malloc((size_t)count * per_image * sizeof *input);
    float **taps = calloc(p->n_taps, sizeof *taps);
    struct nn_tensor_info *info = calloc(p->n_taps, sizeof *info);
    int rc = input && taps && info
                 ? 0
                 : eng_fail(err, ENG_NO_MEMORY, "out of memory for %d images", count);
    if (rc == 0)
        metric_lpips_inputs(images + start, count, p->shift, p->scale, input, model_threads(m));
    struct nn_tensor_info shape = {.dtype = NN_FLOAT, .rank = 4, .dims = {count, 3, h, w}};
    if (rc == 0) rc = model_features(m, input, &shape, taps, info, err);
    for (size_t k = 0; rc == 0 && k < p->n_taps; k++)
        rc = append_rows(&layers[k], &owned[k], &taps[k], &info[k], count, err);
    for (size_t k = 0; taps && k < p->n_taps; k++)
        free(taps[k]);
    free(taps);
    free(info);
    free(input);
    return rc;
}

int perceptual_lpips(struct model *m, struct img *const *images, int n_images, const int *pairs,
                     int n_pairs, double *distances, float **maps, struct eng_error *err)
{
    const struct model_perceptual *p = model_perceptual(m);
    if (!p) return eng_fail(err, ENG_INVALID, "model %s has no perceptual config", model_name(m));
    struct metric_tensor *layers = calloc(p->n_taps, sizeof *layers);
    float **owned = calloc(p->n_taps, sizeof *owned);
    long max_batch = model_max_batch(m);
    int chunk = max_batch > 0 && max_batch < n_images ? (int)max_batch : n_images;
    int rc = layers && owned ? 0 : eng_fail(err, ENG_NO_MEMORY, "out of memory for the taps");
    for (int start = 0; rc == 0 && start < n_images; start += chunk)
        rc = run_chunk(m, images, start, n_images - start < chunk ? n_images - start : chunk,
                       layers, owned, err);
    int h = images[0]->height, w = images[0]->width;
    if (rc == 0)
        rc = metric_lpips_pairs(layers, p->weights, p->n_taps, pairs, n_pairs, distances, h, w,
                                maps, model_threads(m), err);
    for (size_t k = 0; owned && k < p->n_taps; k++)
        free(owned[k]);
    free(owned);
    free(layers);
    return rc;
}
