#include "perceptual.h"

#include <stdlib.h>
#include <string.h>

#include "metrics/metric.h"

/* One perceptual_lpips call. */
struct lpips_job {
    struct model *m;
    const struct model_perceptual *p;
    /* When one chunk holds every image, the metric reads the taps where the plan left them;
     * otherwise each chunk's taps are copied into owned and layers describes them. */
    int whole;
    struct metric_tensor *layers;
    float **owned;
    int chunk_images; /* the images of the chunk running now */
    const int *pairs;
    int n_pairs, height, width;
    double *distances;
    float **maps;
};

static int run_metric(const struct lpips_job *job, const struct metric_tensor *layers,
                      struct eng_error *err)
{
    return metric_lpips_pairs(layers, job->p->weights, job->p->n_taps, job->pairs, job->n_pairs,
                              job->distances, job->height, job->width, job->maps,
                              model_threads(job->m), err);
}

/* n images' tap of shape info (its first dimension aside) at data. */
static struct metric_tensor tensor_of(const float *data, int n, const struct nn_tensor_info *info)
{
    return (struct metric_tensor){data, n, (int)info->dims[1], (int)info->dims[2],
                                  (int)info->dims[3]};
}

/* A chunk's taps k, appended to those of the chunks before. */
static int append_rows(struct metric_tensor *t, float **owned, const float *rows,
                       const struct nn_tensor_info *info, int count, struct eng_error *err)
{
    size_t row = (size_t)info->dims[1] * (size_t)info->dims[2] * (size_t)info->dims[3];
    float *grown = realloc(*owned, ((size_t)t->n + (size_t)count) * row * sizeof *grown);
    if (!grown) return eng_fail(err, ENG_NO_MEMORY, "out of memory for the taps");
    memcpy(grown + (size_t)t->n * row, rows, (size_t)count * row * sizeof *grown);
    *owned = grown;
    *t = tensor_of(grown, t->n + count, info);
    return 0;
}

static int take_taps(void *ctx, const float *const *taps, const struct nn_tensor_info *info,
                     struct eng_error *err)
{
    struct lpips_job *job = ctx;
    for (size_t k = 0; k < job->p->n_taps; k++) {
        if (!job->whole) {
            if (append_rows(&job->layers[k], &job->owned[k], taps[k], &info[k], job->chunk_images,
                            err))
                return -1;
        } else {
            job->layers[k] = tensor_of(taps[k], (int)info[k].dims[0], &info[k]);
        }
    }
    return job->whole ? run_metric(job, job->layers, err) : 0;
}

/* Runs images[start, start + count) through the backbone into take_taps. */
static int run_chunk(struct lpips_job *job, struct img *const *images, int start, int count,
                     struct eng_error *err)
{
    int h = images[0]->height, w = images[0]->width;
    size_t per_image = (size_t)3 * (size_t)h * (size_t)w;
    float *input = malloc((size_t)count * per_image * sizeof *input);
    if (!input) return eng_fail(err, ENG_NO_MEMORY, "out of memory for %d images", count);
    metric_lpips_inputs(images + start, count, job->p->shift, job->p->scale, input,
                        model_threads(job->m));
    struct nn_tensor_info shape = {.dtype = NN_FLOAT, .rank = 4, .dims = {count, 3, h, w}};
    job->chunk_images = count;
    int rc = model_features_visit(job->m, input, &shape, take_taps, job, err);
    free(input);
    return rc;
}

int perceptual_lpips(struct model *m, struct img *const *images, int n_images, const int *pairs,
                     int n_pairs, double *distances, float **maps, struct eng_error *err)
{
    const struct model_perceptual *p = model_perceptual(m);
    if (!p) return eng_fail(err, ENG_INVALID, "model %s has no perceptual config", model_name(m));
    long max_batch = model_max_batch(m);
    int chunk = max_batch > 0 && max_batch < n_images ? (int)max_batch : n_images;
    struct lpips_job job = {.m = m,
                            .p = p,
                            .whole = chunk == n_images,
                            .layers = calloc(p->n_taps, sizeof *job.layers),
                            .owned = calloc(p->n_taps, sizeof *job.owned),
                            .pairs = pairs,
                            .n_pairs = n_pairs,
                            .height = images[0]->height,
                            .width = images[0]->width,
                            .distances = distances,
                            .maps = maps};
    int rc =
        job.layers && job.owned ? 0 : eng_fail(err, ENG_NO_MEMORY, "out of memory for the taps");
    for (int start = 0; rc == 0 && start < n_images; start += chunk)
        rc = run_chunk(&job, images, start, n_images - start < chunk ? n_images - start : chunk,
                       err);
    if (rc == 0 && !job.whole) rc = run_metric(&job, job.layers, err);
    for (size_t k = 0; job.owned && k < p->n_taps; k++)
        free(job.owned[k]);
    free(job.owned);
    free(job.layers);
    return rc;
}
