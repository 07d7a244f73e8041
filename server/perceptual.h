/* LPIPS through a model of the repository: the server's one implementation, which
 * /v1/similarity, `augserve eval-2afc` and `augserve bench similarity` share, so the CLI measures
 * what the server runs. */
#ifndef AUGSERVE_PERCEPTUAL_H
#define AUGSERVE_PERCEPTUAL_H

#include "core/error.h"
#include "core/img.h"
#include "models.h"

/* LPIPS with model m (its perceptual config) for n_pairs pairs of images[pairs[2k]] and
 * images[pairs[2k + 1]]: every image, all of one size, through the network in batches of the
 * model's max_batch (all at once without one). maps, when not NULL, holds n_pairs buffers of
 * height * width floats for the spatial maps. */
int perceptual_lpips(struct model *m, struct img *const *images, int n_images, const int *pairs,
                     int n_pairs, double *distances, float **maps, struct eng_error *err);

#endif
