/* A model as an image classifier: inputs made by its evaluation transform in, class
 * probabilities out. What /v1/predict, /v1/pseudo-label and the evaluation job kinds share. */
#include <stdlib.h>
#include <string.h>

#include "models.h"

struct nn_tensor_info model_image_shape(const struct classify_preprocess *pp, size_t n, int height,
                                        int width)
{
    struct nn_tensor_info shape = {.dtype = NN_FLOAT, .rank = 4};
    int64_t dims[2][4] = {{(int64_t)n, pp->channels, height, width},
                          {(int64_t)n, height, width, pp->channels}};
    memcpy(shape.dims, dims[pp->nhwc ? 1 : 0], sizeof dims[0]);
    return shape;
}

/* One model_infer on `batch` inputs at data: *scores gets the scores output (malloc'd) as batch
 * rows of *classes. */
static int infer_batch(struct model *m, const float *data, size_t batch, int height, int width,
                       float **scores, size_t *classes, struct eng_error *err)
{
    struct nn_tensor_info shape = model_image_shape(model_preprocess(m), batch, height, width);
    size_t n_out = nn_graph_output_count(model_graph(m)), k = model_scores_output(m);
    float **outputs = calloc(n_out, sizeof *outputs);
    struct nn_tensor_info *info = calloc(n_out, sizeof *info);
    int rc = -1;
    if (!outputs || !info)
        eng_fail(err, ENG_NO_MEMORY, "out of memory for the outputs of model %s", model_name(m));
    else if (model_infer(m, &data, &shape, outputs, info, err) == 0)
        rc = 0;
    if (rc == 0) {
        /* Scores are [batch, classes], or of that size such as [batch, classes, 1, 1]. */
        *classes = 1;
        for (int d = 1; d < info[k].rank; d++)
            *classes *= (size_t)info[k].dims[d];
        if (info[k].rank < 2 || info[k].dims[0] != (int64_t)batch || *classes == 0)
            rc = eng_fail(err, ENG_INVALID,
                          "model %s: output %s (rank %d) does not hold %zu rows of class scores",
                          model_name(m), info[k].name, info[k].rank, batch);
    }
    *scores = rc == 0 ? outputs[k] : NULL;
    for (size_t i = 0; outputs && i < n_out; i++)
        if (outputs[i] != *scores) free(outputs[i]);
    free(outputs);
    free(info);
    return rc;
}

int model_classify(struct model *m, const float *data, size_t n, int height, int width,
                   float **probs, size_t *classes, struct eng_error *err)
{
    const struct classify_preprocess *pp = model_preprocess(m);
    size_t per_input = (size_t)pp->channels * (size_t)height * (size_t)width;
    long max_batch = model_max_batch(m);
    size_t batch = max_batch > 0 && (size_t)max_batch < n ? (size_t)max_batch : n;
    int are_probabilities = model_scores_are_probabilities(m);
    *probs = NULL;
    for (size_t start = 0; start < n; start += batch) {
        size_t count = n - start < batch ? n - start : batch, row;
        float *scores;
        if (infer_batch(m, data + start * per_input, count, height, width, &scores, &row, err))
            goto fail;
        if (!*probs) {
            *classes = row;
            *probs = malloc(n * row * sizeof **probs);
        }
        int rc = *probs ? 0 : eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu classes", row);
        if (rc == 0 && row != *classes)
            rc = eng_fail(err, ENG_INVALID, "model %s gave %zu classes, then %zu", model_name(m),
                          *classes, row);
        for (size_t r = 0; rc == 0 && r < count; r++)
            rc = classify_probabilities(scores + r * row, row, are_probabilities,
                                        *probs + (start + r) * row, err);
        free(scores);
        if (rc != 0) goto fail;
    }
    return 0;
fail:
    free(*probs);
    *probs = NULL;
    return -1;
}
