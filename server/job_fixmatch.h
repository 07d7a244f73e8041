/* FixMatch (Sohn et al. 2020) and its supervised baseline: the job kinds "fixmatch" and
 * "supervised" (server/job_fixmatch.c, over the train kind's run: job_train.h) and the step they
 * share (server/job_fixmatch_step.c), which tests/unit/test_fixmatch_parity.c checks against a
 * PyTorch transcription of the reference step (tests/parity/gen_fixmatch.py).
 *
 * The step, as google-research/fixmatch's fixmatch.py and kekmodel/FixMatch-pytorch's train.py:
 * B labeled weak views, mu B unlabeled weak views and the same mu B images' strong views,
 * concatenated in that order into ONE training-mode forward (so BatchNorm's batch statistics,
 * and the running statistics it updates, are over all of them, as the reference's); then
 *   pseudo-label  argmax softmax(weak logits), the lower class on a tie (torch.max's), with no
 *                 gradient through the weak logits (their rows of dL/dlogits stay 0: .detach())
 *   mask          max softmax(weak logits) >= tau
 *   loss          CE(labeled logits, labels) + lambda_u mean_i(CE(strong_i, pseudo_i) mask_i),
 *                 each mean over its own rows (B, and mu B whatever the mask)
 * then the backward pass and the optimiser's step (SGD with Nesterov momentum and weight decay
 * on the tensors not marked no_decay, at the schedule's rate) and the EMA's update. mu = 0 is
 * the supervised step: the labeled loss alone. */
#ifndef AUGSERVE_JOB_FIXMATCH_H
#define AUGSERVE_JOB_FIXMATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "train/train.h"

struct fixmatch_config {
    size_t batch;   /* B, labeled images a step */
    size_t mu;      /* unlabeled images a step per labeled one; 0: supervised */
    size_t classes; /* the logits' width */
    double tau;     /* the mask's threshold, in [0, 1] */
    double lambda_u;
};

/* What one step measured. */
struct fixmatch_stats {
    double loss;            /* labeled_loss + lambda_u unlabeled_loss */
    double labeled_loss;    /* CE over the B labeled rows */
    double unlabeled_loss;  /* mean of CE(strong, pseudo) x mask over the mu B rows; 0 for mu 0 */
    size_t labeled_correct; /* labeled rows whose argmax is their label */
    size_t masked;          /* unlabeled rows at or above tau */
};

/* The rows of the forward's batch: B (1 + 2 mu). */
size_t fixmatch_rows(const struct fixmatch_config *c);

/* The loss of logits (fixmatch_rows x classes: labeled, weak, strong) for the B labels: *stats,
 * dlogits (same shape, overwritten) its gradient, and for each of the mu B unlabeled images its
 * pseudo-label and mask (1 or 0; either array may be NULL). ENG_INVALID for logits that are not
 * finite or a label out of range; ENG_NO_MEMORY. */
int fixmatch_loss(const struct fixmatch_config *c, const float *logits, const int32_t *labels,
                  float *dlogits, int32_t *pseudo, float *mask, struct fixmatch_stats *stats,
                  struct eng_error *err);

/* One step on plan (compiled for fixmatch_rows images) from input (those images, in order) and
 * labels: the training forward, fixmatch_loss, the backward pass, optim's step at lr and, when
 * ema is not NULL, its update. dlogits (fixmatch_rows x classes) is the caller's scratch; the
 * logits stay readable through *logits until the plan's next forward. */
int fixmatch_step(const struct fixmatch_config *c, struct train_plan *plan,
                  struct train_optim *optim, struct train_ema *ema, const float *input,
                  const int32_t *labels, double lr, float *dlogits, int32_t *pseudo, float *mask,
                  const float **logits, struct fixmatch_stats *stats, struct eng_error *err);

#endif
