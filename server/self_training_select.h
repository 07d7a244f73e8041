/* Which pseudo-labeled images a self-training student learns from, and how its soft targets are
 * sharpened: the arithmetic of the job kind "self-training" (server/job_self_training.c), apart
 * from any model or file so a test can check it on hand-made numbers.
 *
 * The rule is Noisy Student's (Xie et al. 2020, section 3 "data filtering and balancing"): an
 * image is kept when the teacher's confidence (its top probability) reaches the threshold; then,
 * with balancing, each class holds exactly K images: a class with more kept images keeps its K
 * most confident, and a class with fewer has them duplicated. The paper duplicates "at random";
 * here the copies are deterministic, so a test can predict them: every kept image of the class
 * gets floor(K / n) copies and its K mod n most confident one more. A class with no kept image
 * stays empty (there is nothing to duplicate). Ties in confidence go to the lower image. */
#ifndef AUGSERVE_SELF_TRAINING_SELECT_H
#define AUGSERVE_SELF_TRAINING_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The copies of each of n images in the student's data (0: dropped): label[i] in [0, classes) is
 * image i's pseudo-label and confidence[i] the teacher's probability of it; per_class is K (0: no
 * balancing, every kept image once). ENG_INVALID for a label out of range, ENG_NO_MEMORY. */
int self_training_select(const uint32_t *label, const double *confidence, size_t n, size_t classes,
                         double threshold, size_t per_class, uint32_t *copies,
                         struct eng_error *err);

/* A distribution raised to 1 / temperature and normalised again, in place: p_j^(1/T) / sum_k
 * p_k^(1/T), which for a softmax of logits z is softmax(z / T) (Hinton et al.'s temperature); T
 * below 1 sharpens, above 1 flattens, 1 leaves it. Zeros stay zeros. */
void self_training_sharpen(float *probs, size_t classes, double temperature);

#endif
