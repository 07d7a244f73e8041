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

#include <jansson.h>

#include "core/error.h"
#include "data/loader.h"
#include "policy/policy.h"
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

/* ---- CTAugment as the strong view (server/job_fixmatch_cta.c) -------------------------------
 * "strong": "ctaugment", as google-research/fixmatch's fixmatch.py (AugmentPoolCTACutOut) and
 * cta/lib/train.py (CTAClassifySemi.train_step): a CTAugment state (policy.h's CTAugment section)
 * lives for the run. At step k, before the training step:
 *   strong views  each unlabeled image's weak view (the weak policy at the strong loader's seed,
 *                 as the RandAugment strong view starts) under a policy drawn from the state,
 *                 then Cutout at level 1 (side 1 + int(0.499 min(w, h)): 16 px on 32 x 32), the
 *                 reference's cta.policy(probe=False) + [OP('cutout', (1,))]
 *   probes        each labeled image's weak view (the very image it trains on) under a probe
 *                 policy (every argument uniform), without Cutout, classified by the EMA model
 *                 (the trained one when ema is 0) in eval mode, the reference's classify_op, as it
 *                 stands before the step: the reference fetches it in the session.run of the
 *                 train op, whose EMA update waits for the backward pass
 *   feedback      each probe, in batch order, updates the bins its policy used with proximity
 *                 1 - 0.5 sum |softmax - onehot(label)| (ctaug_proximity, ctaug_feedback)
 * The draws of image i at step k come from (seed ^ view x 0x9E3779B97F4A7C15, i, k), views
 * FIXMATCH_VIEW_STRONG and FIXMATCH_VIEW_PROBE, so they are a function of the seed, the step and
 * the state, which is a function of every step before: made in the job, in step order (each
 * step's images in parallel), never ahead by a loader thread, and the state goes into the
 * checkpoint, so a resumed run draws what an uninterrupted one would have. The reference draws
 * ahead in a pool of processes (four batches queued), from a state a few steps older; it is not
 * reproducible, this is. */
#define FIXMATCH_VIEW_STRONG 2u
#define FIXMATCH_VIEW_PROBE  3u

struct fixmatch_cta {
    struct ctaug *state;
    /* How many feedbacks each bin has had, in the shape of the rates: what its rate rests on. */
    long updates[CTAUG_OPS][CTAUG_MAX_ARGS][CTAUG_MAX_BINS];
    /* This epoch's probes and the sum of their proximities (reset by the caller). */
    long probes;
    double proximity;
};

/* A step's views of n images (dataset indices) under o (the loader options of their weak view:
 * dataset, weak policy, seed, view, epoch, preprocessing): strong views (probe 0, with Cutout) or
 * probes (probe 1), drawn from state for `step`, into out (n x floats, the loader's tensor) and
 * their policies into policies (n). threads run the images. ENG_UNSUPPORTED names an image that
 * is not RGB (CTAugment's ops are the reference's, on RGB). */
int fixmatch_cta_views(const struct ctaug *state, const struct data_loader_options *o,
                       const uint32_t *indices, size_t n, int probe, long step, int threads,
                       struct ctaug_policy *policies, float *out, size_t floats,
                       struct eng_error *err);

/* The feedback of n probes: row i of logits (n x classes) as class probabilities (softmax) and
 * labels[i] give policies[i]'s proximity, which updates c's state, counted in c. */
int fixmatch_cta_feedback(struct fixmatch_cta *c, const struct ctaug_policy *policies,
                          const float *logits, const int32_t *labels, size_t n, size_t classes,
                          struct eng_error *err);

/* {"state": ctaug_to_json's, "probabilities": ctaug_probabilities_to_json's, "updates": the
 * counts, in the shape of the rates}: GET /v1/ctaugment/{id}'s members and the counts; NULL
 * without memory. fixmatch_cta_from_json reads "state" and "updates" back (a checkpoint's). */
json_t *fixmatch_cta_to_json(const struct fixmatch_cta *c);
int fixmatch_cta_from_json(struct fixmatch_cta *c, const json_t *doc, struct eng_error *err);

#endif
