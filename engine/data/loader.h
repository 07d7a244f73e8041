/* The loader: batches for training and evaluation from a split of an imported dataset
 * (data/dataset.h), each sample augmented by a policy and turned into a model's input.
 *
 * What a batch holds depends only on (dataset, split, policy, preprocessing, seed, epoch, batch
 * size, shuffle), never on the thread count or on timing:
 *   order    the epoch's order of the split's positions 0..n-1 (data_loader_order): Fisher-Yates
 *            from the last position down (for i = n - 1 .. 1: j = rng_below(r, i + 1), swap i
 *            and j) on the Philox stream rng_init(seed, DATA_ORDER_INPUT, epoch, 0); in split
 *            order when shuffle is off. Batch b holds positions b x batch .. (b + 1) x batch - 1
 *            of that order (the last one shorter, or dropped with drop_last).
 *   policy   the image with dataset index i is augmented in epoch e by the policy sampled and
 *            applied for (seed, input i, sample e): policy_sample(policy, seed, i, e, ...) and
 *            trace_apply(..., seed, i, e), which draw from the streams rng_init(seed, i, e,
 *            RNG_STREAM_POLICY) and RNG_STREAM_OP(k) (core/rng.h). So a sample's augmentation is
 *            keyed by (seed, epoch, index) alone: the same wherever it lands in a batch. (A
 *            loader of another view, options.view, draws at a seed of its own.)
 *   tensor   the model's preprocessing, classify_image_tensor (classify/classify.h), one view,
 *            into channels x height x width floats in the preprocessing's layout.
 *   labels   the split's label of each sample (its own, the dataset's, or -1 in an unlabeled
 *            split; data_split_label).
 * Loader threads make whole batches ahead of the consumer, into a ring of `prefetch` batch
 * buffers; each thread has the creating thread's cancellation check installed (core/cancel.h).
 * A resumed job asks for first_batch and gets exactly the batches it would have had. */
#ifndef AUGSERVE_ENGINE_DATA_LOADER_H
#define AUGSERVE_ENGINE_DATA_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "classify/classify.h"
#include "core/error.h"
#include "data/dataset.h"

struct policy;

/* The input coordinate of the epoch order's stream: no image index reaches it (max_files is
 * below 2^32 - 1). */
#define DATA_ORDER_INPUT 0xffffffffu

struct data_loader_options {
    const struct dataset *dataset;
    const struct data_split *split;
    const struct policy *policy;                  /* an image policy with one view; NULL: none */
    const struct classify_preprocess *preprocess; /* the tensor's size is fixed: its crop, or
                                                     the dataset's one image size */
    uint64_t seed;
    uint32_t epoch;
    size_t batch;       /* samples per batch, >= 1 */
    int shuffle;        /* 0: split order (evaluation) */
    int drop_last;      /* drop a last batch shorter than `batch` */
    size_t first_batch; /* start here (resuming) */
    /* Another view of the same samples in the same order (FixMatch's strong view beside its weak
     * one): view 0 draws the policy at `seed`, view v at seed ^ (v x 0x9E3779B97F4A7C15), so
     * the views' draws are independent streams while the order stays the seed's. */
    uint32_t view;
    int threads;  /* loader threads; 0: each batch is made by data_loader_next itself */
    int prefetch; /* batches ready ahead, at least threads + 1 (0: that) */
};

/* One batch; its buffers belong to the loader and stay valid until the next data_loader_next. */
struct data_batch {
    uint32_t epoch;
    size_t number; /* in the epoch */
    size_t size;   /* samples */
    int channels, height, width;
    const float *inputs;     /* size x channels x height x width */
    const int32_t *labels;   /* size */
    const uint32_t *indices; /* size: the samples' dataset indices */
};

/* ENG_INVALID for a bad option, a policy for audio or one that cannot run on images, or a
 * dataset whose images differ in size under a preprocessing without a crop; ENG_UNSUPPORTED for a
 * policy with several views. */
struct data_loader *data_loader_new(const struct data_loader_options *o, struct eng_error *err);

/* Batches in the epoch (from batch 0, whatever first_batch is). */
size_t data_loader_batches(const struct data_loader *l);

/* The next batch: 1 with *b set, 0 after the last, -1 with err (the sample's error, naming its
 * image; ENG_CANCELLED when the check says so). */
int data_loader_next(struct data_loader *l, struct data_batch *b, struct eng_error *err);

/* A sample as the loader makes it, in its two halves, for a caller that changes the image between
 * them and so cannot have loader threads make it ahead (FixMatch's CTAugment views, drawn from a
 * state the job updates every step): sample `index`'s image with o's policy applied as in o's
 * epoch (a copy of the image when o has none), a new image; and an image, of the size the policy
 * leaves, as the model's input under o's preprocessing into out (channels x height x width
 * floats, the batch's tensor). Errors name the sample, as the loader's. */
struct img *data_loader_image(const struct data_loader_options *o, uint32_t index,
                              struct eng_error *err);
int data_loader_tensor(const struct data_loader_options *o, const struct img *image, uint32_t index,
                       float *out, struct eng_error *err);

/* Stops the threads (each finishes the batch it is making) and frees everything. */
void data_loader_free(struct data_loader *l);

/* The epoch's shuffled order of n positions into order (n entries). */
void data_loader_order(uint64_t seed, uint32_t epoch, uint32_t *order, size_t n);

#endif
