/* train: training models on the CPU, on the same graph IR the executor runs (nn/nn.h). This area
 * owns what turns a graph into a trained model: the training plan (forward in training mode,
 * backward in reverse), the optimisers, learning-rate schedules, gradient clipping, the EMA of the
 * weights, the losses, and the model zoo. It links nn and data; nothing below it includes it. It
 * never prints and returns errors as values (core/error.h). Symbols are prefixed train_.
 *
 * A model, whether it comes from the zoo, a repository ONNX file or a checkpoint, is a struct
 * nn_graph: its float initializers are the parameters (and BatchNormalization's running
 * statistics, its inputs 3 and 4, the buffers), named as the PyTorch module's state_dict keys for
 * zoo models, so weights move both ways by name. A trained model is written by making a graph
 * with the new values (nn_graph_with_initializers) and nn_graph_write.
 *
 * Arithmetic follows PyTorch 1.13 wherever PyTorch defines it (torch.optim.SGD and AdamW,
 * clip_grad_norm_, F.cross_entropy, the reference codes of FixMatch and AugMix), and
 * tests/parity/gen_optim.py checks it against PyTorch itself. The optimisers, schedules, clipping,
 * EMA and losses are deterministic: they run on the caller's thread, so the same inputs give the
 * same bits on any thread count (and the optimisers' updates, float32 operations and correctly
 * rounded fmaf, the same bits on any CPU); their state saves and loads exactly, so a job resumed
 * from a checkpoint ends with the weights of an uninterrupted run.
 *
 * Errors are ENG_INVALID for arguments out of range (naming the argument), ENG_NO_MEMORY, and for
 * state bytes that do not fit, ENG_UNDECODABLE (corrupt) or ENG_CONFLICT (another model or
 * optimiser). engine/train/internal.h (AUGENGINE_TRAIN_INTERNAL) is private to this area. */
#ifndef AUGSERVE_ENGINE_TRAIN_H
#define AUGSERVE_ENGINE_TRAIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/nn.h"

/* ---- Training plan ------------------------------------------------------------------------- */

/* A training plan is a graph compiled for one input shape (the batch included), built on nn's
 * plan helpers: nn folds the shape arithmetic and holds the values; the training plan adds, per
 * node, a forward step in training or eval mode and a backward step.
 *
 * Parameters and buffers. The float initializers a node reads where a gradient flows (Conv's
 * weights and bias, BatchNormalization's scale and B, Gemm's and MatMul's operands, a constant
 * operand of Add, Mul or Concat) are parameters; BatchNormalization's mean and var are buffers,
 * which a training forward updates. The plan copies both out of the graph (which stays
 * unchanged) into plain row-major float arrays that it owns: an optimiser updates the values in
 * place between steps, and the next forward reads them. Nothing of them is kept in another
 * layout (each Conv reorders its weights into its primitives' layouts at each use), so there is
 * no sync to ask for. Activations are another matter, private to the plan: a Conv's output whose
 * channels fill blocks of 16 is kept in oneDNN's blocked nChw16c layout, as are the outputs of
 * the BatchNormalization, activation, pool and same-shape Add or Mul after it, so values stay
 * blocked from Conv to Conv; other ops read a plain copy (engine/train/layout.c). The input, the
 * output and the input's gradient are plain.
 *
 * Where the ops run, measured family by family (engine/train/README.md, "oneDNN or ours"; one
 * thread, A against B in one process, medians): Conv, BatchNormalization and the pools on oneDNN
 * (pooling with MaxPool's workspace: 7-28x faster than our loops and the reorder pair they
 * needed, e.g. ResNet-20's GlobalAveragePool 2.32 -> 0.083 ms a step), and the activations'
 * forwards (oneDNN's eltwise: as fast for Relu, 1.3-18x faster for the others). The
 * activations' backward passes stay on our loops: oneDNN's eltwise backward took 1.6-1.7x ours
 * for Relu, LeakyRelu and Sigmoid on 128x64x8x8 (Relu 0.114 against 0.066 ms; Clip 1.3x,
 * HardSwish 0.75x), and at the kinks it is not PyTorch's (its clip zeroes the gradient at a
 * bound that clamp passes).
 * Gemm and MatMul stay on sgemm: oneDNN's inner product backward took 1.3-1.6x its time on the
 * zoo's CIFAR heads (128x64 -> 10: 0.004 against 0.003 ms) and was within noise on ResNet-50's
 * (128x2048 -> 1000: 14.2 against 15.2 ms), and covers only some of the Gemms and MatMuls.
 * A Relu that alone reads a BatchNormalization's or a residual Add's output is applied by that
 * op (oneDNN's fuse_norm_relu; the Add's loop), its output a view: ResNet-20 +3.6% and WRN-10-1
 * +5.8% images a second on 2 threads (engine/train/README.md).
 *
 * A step: train_plan_forward (training = true), the loss's gradient with respect to the output
 * (the loss is not the plan's), train_plan_backward, which overwrites every parameter's gradient
 * (it does not accumulate across calls), then the optimiser. A backward pass follows the mode of
 * the forward before it: after an eval forward it gives the gradients of the eval function
 * (BatchNormalization with its running statistics, Dropout off), which is what input gradients
 * of a trained model (adversarial examples) want.
 *
 * BatchNormalization in training mode normalises with the batch's mean and biased variance and
 * updates its buffers as ONNX and PyTorch do: running = momentum * running + (1 - momentum) *
 * batch, with ONNX's momentum (PyTorch's is 1 - it) and the unbiased batch variance (n / (n - 1)
 * times the biased one, n = N x spatial). Dropout in training mode zeroes each element with
 * probability ratio and scales the others by 1 / (1 - ratio); its mask is drawn from a Philox
 * stream keyed by the seed and addressed by (step, node), so it depends on neither threads nor
 * timing. The step counts training forwards from train_plan_options.step; a resumed job sets it
 * to the number of steps already done and draws the same masks.
 *
 * Determinism: the same graph, seed, step and thread count give bit-identical outputs, gradients
 * and buffers (every reduction has a fixed order for a given thread count).
 *
 * Threads: as nn's plans, a training plan keeps no per-thread state but its runs must not
 * overlap. */
struct train_plan;

struct train_plan_options {
    int threads;     /* OpenMP threads each pass uses; 0 = the OpenMP default */
    uint64_t seed;   /* Dropout's masks */
    uint64_t step;   /* the number of training forwards already run (a resumed job's position) */
    bool input_grad; /* whether train_plan_backward can give the input's gradient */
    /* Conv runs in the layouts oneDNN picks for its fast kernels and activations stay blocked
     * (nChw16c) between Convs (above). With plain_conv every value is plain and Conv runs on
     * plain layouts (im2col and matrix products: 3-5x slower Conv steps), which the tests use to
     * check both paths against the same references. The two differ by rounding only (other
     * summation orders), which can move an activation lying within float32 noise of a ReLU kink
     * to its other side (engine/train/README.md, "State of the training plan"). */
    bool plain_conv;
    /* false (default): a 3x3 stride-1 Conv's passes run Winograd's algorithm where it was
     * measured faster and oneDNN has it (the forward and backward data with at least 32
     * channels on each side, the backward weights with at least 64; engine/train/conv.c);
     * results differ from the direct algorithm's by rounding. true: oneDNN's direct algorithm
     * for every Conv (as with plain_conv, which implies it). */
    bool direct_convolution;
    /* Initializers to keep fixed, by name (fine-tuning's frozen layers): they stay constants,
     * with no gradient and no entry among the parameters. A BatchNormalization whose scale and
     * shift are frozen still updates its running statistics in training mode, as PyTorch's. */
    const char *const *frozen;
    size_t n_frozen;
    /* Activations to keep to the end of each forward, by name (a node's output), so that
     * train_plan_value can read them: those the backward pass does not read otherwise share
     * memory with later ones. Each costs its own floats, and a kept BatchNormalization's or
     * Add's output then holds its value before the Relu after it, which runs apart instead of
     * being applied by that op (engine/train/eltwise.c). */
    const char *const *keep;
    size_t n_keep;
};

/* A parameter or buffer: plain row-major floats owned by the plan. */
struct train_param {
    const char *name; /* the initializer's name (owned by the graph) */
    int rank;
    int64_t dims[NN_MAX_RANK];
    size_t count;
    float *value;
    float *grad; /* NULL for a buffer */
    /* A BatchNormalization scale or shift, or a bias (Conv's and Gemm's C, a 1-D operand of Add):
     * what FixMatch's weight decay excludes. */
    bool no_decay;
};

/* The graph must have one input and one output and outlive the plan. input_shape is the input's
 * full shape. An op without a backward pass is ENG_UNSUPPORTED naming every such op type; shapes
 * that do not fit are ENG_INVALID; a oneDNN failure is ENG_INTERNAL. options may be NULL. */
struct train_plan *train_plan_compile(const struct nn_graph *g,
                                      const struct nn_tensor_info *input_shape,
                                      const struct train_plan_options *options,
                                      struct eng_error *err);
/* What train_plan_compile refuses of g before it compiles anything, without compiling: a graph of
 * other than one input and one output, and op types without a backward pass (ENG_UNSUPPORTED,
 * naming every such op type and listing the supported ones). A train job checks a repository
 * model so when it is submitted; an op refused only on its inputs (Dropout's mask output, say)
 * is found by the compile. */
int train_plan_check(const struct nn_graph *g, struct eng_error *err);
void train_plan_free(struct train_plan *t);

size_t train_plan_param_count(const struct train_plan *t);
/* Parameters in the order the graph's nodes first read them. */
struct train_param *train_plan_param(struct train_plan *t, size_t i);
size_t train_plan_buffer_count(const struct train_plan *t);
struct train_param *train_plan_buffer(struct train_plan *t, size_t i);
/* Copies src's parameter and buffer values into t's: both plans compiled from one graph (and
 * frozen list), e.g. for the training batch and for evaluation's. ENG_INVALID when their
 * parameters or buffers differ in number, name or size. */
int train_plan_copy_values(struct train_plan *t, const struct train_plan *src,
                           struct eng_error *err);
/* The bytes the plan holds: activations, parameters and buffers with their gradients, what the
 * forward keeps for the backward, oneDNN's scratchpad, and the pool of activations' gradients,
 * which a backward pass holds a few layers of at a time (it reaches its size during the first
 * backward pass). */
size_t train_plan_bytes(const struct train_plan *t);
/* The output's shape (name, rank, dims). */
const struct nn_tensor_info *train_plan_output_info(const struct train_plan *t);
/* The training forwards run so far, counting from options.step (Dropout's stream position), and
 * moving it (a resumed job's checkpoint; a gradient check repeating one step's masks). */
uint64_t train_plan_step(const struct train_plan *t);
void train_plan_set_step(struct train_plan *t, uint64_t step);

/* Runs the forward pass on input (row-major floats of the compiled shape) in training or eval
 * mode; *output points into the plan (valid until its next forward or its free). A training
 * forward updates the BatchNormalization buffers and advances the step. */
int train_plan_forward(struct train_plan *t, const float *input, bool training,
                       const float **output, struct eng_error *err);
/* The last forward's value of the activation name (a node's output, or the input): its floats,
 * plain row-major (malloc'd, the caller frees them), with its shape in *info. For debugging a
 * model, or finding which side of a kink an activation's input fell on
 * (tests/unit/test_train_plan_parity.c). Activations live to the end of the forward when the
 * backward pass reads them (a Conv's input, a Relu's output), when they are the output, or when
 * options.keep names them; any other was overwritten: ENG_UNSUPPORTED. ENG_NOT_FOUND for a name
 * no activation has; ENG_INVALID before any forward; NULL on error. */
float *train_plan_value(const struct train_plan *t, const char *name, struct nn_tensor_info *info,
                        struct eng_error *err);
/* The backward pass of the last forward: grad_output is dL/doutput (the output's shape); every
 * parameter's grad is overwritten. grad_input (the input's shape) receives dL/dinput when not
 * NULL, which needs options.input_grad (else ENG_INVALID). ENG_INVALID before any forward. */
int train_plan_backward(struct train_plan *t, const float *grad_output, float *grad_input,
                        struct eng_error *err);

/* ---- Optimisers ------------------------------------------------------------------------------ */
/* optim.c, clip.c, ema.c, state.c, names.c. A model's trainable tensors as the optimiser sees them:
 * the training plan lists them (in a fixed order: the order is part of a checkpoint), and the
 * optimiser updates value in place from grad. A tensor whose grad is NULL is frozen this step:
 * the optimiser and clipping pass it over, as PyTorch passes over a parameter whose .grad is None.
 *
 * A train job drives them once per batch:
 *   zero the logits' gradient; train_loss_* (they add into it); the plan's backward;
 *   train_clip_grad_norm (when clipping); lr = train_schedule_lr(&schedule, step, total);
 *   train_optim_step(optim, params, n, lr); train_ema_update (when EMA is on); step++.
 * and at each checkpoint saves train_optim_save's and train_ema_save's bytes beside the weights
 * and the step; a resumed job creates both afresh and loads the bytes back. The tensors are
 * struct train_param (the training plan's section above): an optimiser reads name, count, value,
 * grad and no_decay. */
enum train_optim_kind {
    TRAIN_SGD,   /* torch.optim.SGD, dampening 0 */
    TRAIN_ADAMW, /* torch.optim.AdamW, amsgrad off */
};

struct train_optim_config {
    enum train_optim_kind kind;
    double weight_decay;   /* >= 0; SGD adds wd * p to the gradient, AdamW scales p by 1 - lr wd */
    bool exclude_no_decay; /* no weight decay on the tensors marked no_decay */
    /* SGD */
    double momentum; /* [0, 1); 0: plain SGD, no buffer */
    bool nesterov;   /* needs momentum > 0 */
    /* AdamW (PyTorch's defaults: 0.9, 0.999, 1e-8) */
    double beta1, beta2; /* [0, 1) */
    double eps;          /* > 0 */
};

/* The kinds by the names a job's params give them: "sgd", "adamw". ENG_INVALID listing those. */
int train_optim_kind_named(const char *name, enum train_optim_kind *kind, struct eng_error *err);

/* PyTorch's defaults for kind, which a job's params override field by field: SGD without momentum
 * or weight decay; AdamW with betas (0.9, 0.999), eps 1e-8 and weight decay 0.01. */
struct train_optim_config train_optim_defaults(enum train_optim_kind kind);

/* ENG_INVALID naming the first field out of range ("momentum must be in [0, 1)"). */
int train_optim_check(const struct train_optim_config *config, struct eng_error *err);

/* An optimiser for the tensors params[0..n) (their names and counts are kept; values and
 * gradients are read at each step). Its state starts empty, as a new PyTorch optimiser's. NULL on
 * error (train_optim_check's, ENG_NO_MEMORY). */
struct train_optim *train_optim_create(const struct train_optim_config *config,
                                       const struct train_param *params, size_t n,
                                       struct eng_error *err);
void train_optim_free(struct train_optim *optim);

/* One step at learning rate lr (>= 0, finite: a warm-up starts at 0) over params, which must be the
 * tensors the optimiser was made for (same n and counts, else ENG_INVALID and nothing changes).
 * Each tensor with a gradient counts its own steps, as PyTorch's per-parameter state does: SGD:   d
 * = g + wd p;  b = d on a tensor's first step, else momentum b + d; d = d + momentum b (Nesterov)
 * or b;  p -= lr d AdamW: t += 1;  p *= 1 - lr wd;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1
 * - beta2) g^2; p -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps) in float32, each
 * operation rounded as PyTorch rounds it. */
int train_optim_step(struct train_optim *optim, const struct train_param *params, size_t n,
                     double lr, struct eng_error *err);

/* The optimiser's state (each tensor's name, step count, momentum buffer or Adam moments) as
 * versioned little-endian bytes: *data (malloc'd, the caller frees it) and *size. */
int train_optim_save(const struct train_optim *optim, unsigned char **data, size_t *size,
                     struct eng_error *err);
/* Replaces the state with saved bytes, which must come from an optimiser of the same kind over
 * tensors of the same names and counts in the same order (ENG_CONFLICT otherwise; ENG_UNDECODABLE
 * for bytes that are not a state, truncated or of another version). On error the state is left
 * as it was. */
int train_optim_load(struct train_optim *optim, const void *data, size_t size,
                     struct eng_error *err);

/* torch.nn.utils.clip_grad_norm_ with norm_type 2: the Euclidean norm of every gradient together
 * (tensors without one left out), and when it exceeds max_norm, every gradient scaled by
 * max_norm / (norm + 1e-6). *total_norm gets the norm before clipping. max_norm must be > 0; a
 * norm that is not finite (a diverged loss) is ENG_INVALID and leaves the gradients as they are,
 * where PyTorch would fill them with NaN. */
int train_clip_grad_norm(const struct train_param *params, size_t n, double max_norm,
                         double *total_norm, struct eng_error *err);

/* The exponential moving average of a model's weights, as FixMatch's reference keeps it
 * (kekmodel/FixMatch-pytorch, models/ema.py): after each optimiser step every parameter's average
 * becomes decay * ema + (1 - decay) * value, and every buffer (BatchNorm's running mean and
 * variance) is copied, not averaged. It starts as a copy of the model. When enabled, evaluation
 * and the exported model use the averages (train_ema_value) instead of the weights.
 * params are the optimiser's tensors; buffers are the model's other float state (their grad is
 * ignored). */
struct train_ema *train_ema_create(const struct train_param *params, size_t n,
                                   const struct train_param *buffers, size_t n_buffers,
                                   double decay, struct eng_error *err);
void train_ema_free(struct train_ema *ema);
/* params and buffers must match those the EMA was made with (ENG_INVALID otherwise). */
int train_ema_update(struct train_ema *ema, const struct train_param *params, size_t n,
                     const struct train_param *buffers, size_t n_buffers, struct eng_error *err);
/* The averaged values of params[i] (i < n) or buffers[i - n]: count floats owned by the EMA;
 * NULL past the last buffer. */
const float *train_ema_value(const struct train_ema *ema, size_t i);
/* As train_optim_save and train_optim_load. */
int train_ema_save(const struct train_ema *ema, unsigned char **data, size_t *size,
                   struct eng_error *err);
int train_ema_load(struct train_ema *ema, const void *data, size_t size, struct eng_error *err);

/* ---- Learning-rate schedules ---------------------------------------------------------------- */
/* schedule.c, names.c. A schedule is a pure function of (step, total steps): a resumed job needs no
 * state for it. A step is whatever unit the caller steps in (a batch for FixMatch, an epoch for the
 * classic step schedules). With warmup > 0, the rate rises linearly from 0 at step 0 (lr * step /
 * warmup, FixMatch's warm-up), and the schedule proper then runs over the remaining steps, counted
 * from the end of the warm-up (k = step - warmup of K = max(1, total - warmup)), as PyTorch's
 * SequentialLR hands over to its second scheduler. Past the total, the rate stays at its final
 * value. */
enum train_lr_kind {
    TRAIN_LR_CONSTANT,  /* lr */
    TRAIN_LR_STEP,      /* StepLR: lr gamma^floor(k / step_size) */
    TRAIN_LR_MULTISTEP, /* MultiStepLR: lr gamma^(milestones <= k) */
    TRAIN_LR_COSINE, /* CosineAnnealingLR (T_max = K): min_lr + (lr - min_lr)(1 + cos(pi k/K))/2 */
    TRAIN_LR_FIXMATCH, /* FixMatch's: lr max(0, cos(7 pi k / (16 K))) */
};

#define TRAIN_MAX_MILESTONES 16

struct train_schedule {
    enum train_lr_kind kind;
    double lr;   /* the base rate, > 0 */
    long warmup; /* steps of linear warm-up, >= 0 */
    long step_size;
    long milestones[TRAIN_MAX_MILESTONES]; /* increasing, > 0 */
    size_t n_milestones;
    double gamma;  /* step and multistep: the factor, in (0, 1] */
    double min_lr; /* cosine: the floor, in [0, lr] */
};

/* The kinds by the names a job's params give them: "constant", "step", "multistep", "cosine",
 * "fixmatch". ENG_INVALID listing those. */
int train_lr_kind_named(const char *name, enum train_lr_kind *kind, struct eng_error *err);

/* ENG_INVALID naming the first field out of range, including a warm-up longer than total. */
int train_schedule_check(const struct train_schedule *schedule, long total, struct eng_error *err);

/* The learning rate at step (0-based; a negative step is step 0) of total; the schedule must pass
 * train_schedule_check. */
double train_schedule_lr(const struct train_schedule *schedule, long step, long total);

/* ---- Losses --------------------------------------------------------------------------------- */
/* loss.c. Losses over a batch of logits (batch rows of classes floats, row-major), reduced by the
 * batch mean as PyTorch's reduction='mean' and 'batchmean'. Each gives the loss and, when grad is
 * not NULL, ADDS its gradient with respect to the logits into grad (batch x classes), so losses on
 * the same logits sum (AugMix: cross-entropy on the clean view plus the consistency term). The
 * arithmetic is in double, through log-sum-exp. Logits that are not finite are ENG_INVALID (a
 * diverged model), as are targets out of range. */

/* The targets of a cross-entropy: one of the two. */
struct train_targets {
    const int32_t *labels; /* batch class indices in [0, classes) */
    const float *probs;    /* batch x classes probabilities (soft targets), each >= 0 */
};

/* F.cross_entropy(logits, target, label_smoothing=smoothing): the target distribution t is
 * (1 - smoothing) onehot(label) + smoothing / classes, or (1 - smoothing) probs + smoothing /
 * classes, and a sample's loss is -sum_j t_j log softmax(z)_j. With weights (batch floats, may be
 * NULL) sample i counts weights[i] times; the mean still divides by batch, as FixMatch's
 * (F.cross_entropy(..., reduction='none') * mask).mean(). smoothing in [0, 1]. */
int train_loss_cross_entropy(const float *logits, size_t batch, size_t classes,
                             const struct train_targets *targets, double smoothing,
                             const float *weights, double *loss, float *grad,
                             struct eng_error *err);

/* AugMix's Jensen-Shannon consistency (google-research/augmix, cifar.py) over three views of the
 * same samples, logits[0] the clean one: with p_v = softmax(logits[v]) and the mixture
 * M = clamp((p_0 + p_1 + p_2) / 3, 1e-7, 1),
 *   loss = weight * (KL(p_0 || M) + KL(p_1 || M) + KL(p_2 || M)) / 3
 * each KL being F.kl_div(log M, p_v, reduction='batchmean'); AugMix's weight is 12. grad (NULL,
 * or three arrays) gets each view's gradient added. */
int train_loss_jsd(const float *const logits[3], size_t batch, size_t classes, double weight,
                   double *loss, float *const grad[3], struct eng_error *err);

/* ---- Model zoo ------------------------------------------------------------------------------ */
/* Architectures built as graphs (opset 13: Conv, BatchNormalization, Relu or LeakyRelu, Add,
 * MaxPool, GlobalAveragePool, Flatten, Gemm) and initialised from a seed, each as its reference
 * PyTorch code initialises it, with that code's parameter names:
 *
 *   arch               reference                          initialisation
 *   small-cnn          this zoo (below)                   PyTorch's defaults: Conv2d and Linear
 *                                                         weights kaiming_uniform_(a=sqrt 5),
 *                                                         i.e. U(+-1/sqrt fan_in), Linear bias
 *                                                         U(+-1/sqrt fan_in)
 *   resnet-20/32/44/   He et al. 2016 (CIFAR), as          Conv2d and Linear weights
 *   56/110             akamaster/pytorch_resnet_cifar10   kaiming_normal_ (fan_in, gain sqrt 2),
 *                      with option B shortcuts            Linear bias PyTorch's default
 *   wrn-D-K            Zagoruyko and Komodakis 2016, as   Conv2d N(0, 2/fan_out); Linear weight
 *                      xternalz/WideResNet-pytorch        PyTorch's default, bias 0
 *   wrn-D-K, variant   FixMatch's, as kekmodel/FixMatch-  Conv2d kaiming_normal_ fan_out (gain
 *   "fixmatch"         pytorch: LeakyReLU 0.1, BN         sqrt 2); Linear xavier_normal_, bias 0
 *                      momentum 0.001, the first block
 *                      activated before its shortcut
 *                      (its stages 2 and 3 compute a bn1
 *                      they never use: left out here)
 *   resnet-18/34/50/   torchvision.models.resnet*         Conv2d kaiming_normal_ fan_out (gain
 *   101/152                                               sqrt 2); Linear PyTorch's default
 *
 * BatchNorm everywhere: weight 1, bias 0, running mean 0, variance 1, epsilon 1e-5, and ONNX's
 * momentum 1 - PyTorch's (0.9, or 0.999 for FixMatch's). No convolution has a bias (a BatchNorm
 * follows each).
 *
 * ResNet-20 and kin use option B (a 1x1 strided convolution and BatchNorm where the shape
 * changes; parameters shortcut.0.weight, shortcut.1.*), not the paper's option A (subsampling
 * and zero channels): option A needs strided Slice and channel Pad, which have no backward pass
 * in this engine, and B is the reference code's other option. It adds 2,752 parameters to
 * ResNet-20 (272,474 against 269,722; both "0.27M").
 *
 * small-cnn: conv1 (3x3, 32) bn1 relu1 pool1 (max 2x2) conv2 (64) bn2 relu2 pool2 conv3 (128) bn3
 * relu3, global average pool, fc.
 *
 * Noise (Noisy Student's, for a student), off unless asked for; neither adds a parameter, so the
 * state_dict names stay those above:
 *   "dropout": p   nn.Dropout(p) between the flattened pool and the classifier (ONNX Dropout,
 *                  its ratio a Constant; the training plan's masks are eltwise.c's, inverted:
 *                  kept elements scaled by 1 / (1 - p)).
 *   "stochastic_depth": p   torchvision.ops.stochastic_depth(branch, p_l, "row", training) on
 *                  each residual block's branch just before its Add (the ResNets' last BN
 *                  output, WRN's conv2 output): per sample, the branch is zeroed with
 *                  probability p_l, else scaled by 1 / (1 - p_l). p_l = p * l / L for block
 *                  l = 1..L (Huang et al. 2016's linear decay; Noisy Student's "survival
 *                  probability 0.8 for the final layer" is p = 0.2). EfficientNet's code, which
 *                  Noisy Student trained, uses p * (l - 1) / L instead (its first block is never
 *                  dropped, its last at p (L - 1) / L): ours reaches the stated final value.
 *                  The node is StochasticDepth in the domain ai.augserve (opset 1), attribute
 *                  "ratio" = p_l; the training plan draws one uniform per sample from the Philox
 *                  stream (seed, step, node) as Dropout does; a model written for inference has
 *                  an Identity there (train_model_for_inference), so ONNX readers load it.
 * Both are the identity in eval mode, so a model evaluates (and is registered) as the same
 * architecture without them. WRN's own dropout between its convolutions (dropRate) is not built.
 *
 * Every model has one input "input" [N, channels, size, size] (N symbolic) and one output
 * "logits" [N, classes]. Each initializer draws from its own Philox stream (seed, its index), so
 * the same seed gives the same model on any machine.
 *
 * A train job reads its "model" object with train_zoo_parse when it is submitted (a refusal is
 * the job's 422), builds the graph with train_zoo_build from the job's seed when it starts,
 * compiles its training plan from that graph, and at each checkpoint and at the end makes a
 * graph of the current values (nn_graph_with_initializers) and writes it (nn_graph_write): the
 * model.onnx it registers, which PyTorch loads by the same names. */

enum train_zoo_family {
    TRAIN_ZOO_SMALL_CNN,
    TRAIN_ZOO_RESNET_CIFAR, /* resnet-20, -32, -44, -56, -110 */
    TRAIN_ZOO_WRN,
    TRAIN_ZOO_RESNET, /* torchvision's resnet-18, -34, -50, -101, -152 */
};

/* A zoo entry with its arguments, as a train job's "model" names it:
 * {"arch": "wrn-28-2", "classes": 10, "variant": "fixmatch"}. */
struct train_zoo_spec {
    char arch[32]; /* as given, e.g. "wrn-28-2" */
    enum train_zoo_family family;
    int depth;     /* resnet-D, wrn-D-K */
    int width;     /* wrn's K; 1 otherwise */
    bool fixmatch; /* wrn: FixMatch's variant */
    int classes;   /* 1..100000 */
    int channels;  /* input channels, 1..64 (default 3) */
    int size;      /* input side in pixels, 8..4096 (default 32; 224 for torchvision's) */
    /* Noisy Student's model noise, both off at 0 and identities in eval mode (below). */
    float dropout;          /* [0, 1): a Dropout before the classifier */
    float stochastic_depth; /* [0, 1): the last residual block's drop rate (not small-cnn) */
    /* BatchNormalization's momentum, ONNX's (running = m * running + (1 - m) * batch), in (0, 1);
     * 0 is the arch's: 0.9 (PyTorch's momentum=0.1), 0.999 for FixMatch's WRN. FixMatch's
     * reference evaluates EMA weights with the live running statistics; at 0.999 these average
     * over about as many steps as the weights' EMA, at 0.9 over the last ten batches only. */
    float bn_momentum;
};

/* Reads a model object: "arch" (required), "classes" (required), "variant" ("standard" or
 * "fixmatch"; wrn only), "channels", "size", "dropout", "stochastic_depth" (numbers in [0, 1);
 * stochastic_depth > 0 on small-cnn, which has no residual block, is refused), "bn_momentum"
 * (a number in (0, 1)). Unknown archs,
 * members and values out of range are ENG_INVALID naming them and what is accepted. */
int train_zoo_parse(const json_t *model, struct train_zoo_spec *spec, struct eng_error *err);
/* The model spec describes, initialised from seed. ENG_NO_MEMORY; ENG_INVALID for a spec that
 * train_zoo_parse would refuse. */
struct nn_graph *train_zoo_build(const struct train_zoo_spec *spec, uint64_t seed,
                                 struct eng_error *err);
/* The archs train_zoo_parse accepts, for error messages and listings. */
extern const char train_zoo_archs[];

/* The number of trainable parameters: the elements of g's float initializers, except those read
 * only as BatchNormalization's running mean and variance (PyTorch's buffers), so the count is
 * sum(p.numel() for p in module.parameters()) (less, for FixMatch's WRN, the unused bn1s'
 * 2 x (16K + 32K)). */
size_t train_model_parameter_count(const struct nn_graph *g);

/* ---- Fine-tuning ------------------------------------------------------------------------------
 *
 * finetune.c. Any model whose ops the training plan supports trains further: its float
 * initializers are the parameters (BatchNormalization's running statistics the buffers), and
 * nn_graph_with_initializers writes the trained values back under the same names. On top of
 * that, a model may get a new classifier head and keep some parameters frozen.
 *
 * The head train_model_new_head recognises: the graph's one output is made by
 *   Gemm(x, W, B) with transA 0 (W [N, in] with transB 1, as PyTorch exports nn.Linear, or
 *     [in, N] with transB 0; B [N] or [1, N], or absent), or
 *   Add(MatMul(x, W), B), in either order of Add's inputs (W [in, N], B [N] or [1, N]), as
 *     exporters write a Linear over inputs of rank > 2,
 * followed by nothing or by up to four Softmax, LogSoftmax or Identity nodes (Gemm's alpha and
 * beta are kept). W and B are float
 * initializers read by the head's node alone, and each value from the head to the output is read
 * by the next node alone. Anything else is ENG_UNSUPPORTED naming what was found ("output 'y' is
 * made by node 'conv9' (Conv); a new head needs a Gemm, or MatMul then Add, there").
 *
 * A train job's "model" may be a repository model's name (fine-tuned as it is), or an object
 *   {"name": "<repository model>", "classes": 10, "freeze": ["conv1.", "layer1."]}
 * where "classes" asks for a new head (the dataset's class count) and "freeze" says which
 * parameters stay fixed (train_model_frozen). The job reads the model and calls
 * train_plan_check, train_model_head_check (with "classes") and train_model_frozen when it is
 * submitted (a refusal is its 422), then at its start
 * train_model_new_head from its seed, train_model_frozen again on the new graph for the
 * training plan's frozen list (train_plan_options.frozen), and trains. The model it registers
 * is nn_graph_with_initializers of the result beside a copy of the original's config.json
 * (preprocess, output_kind: a Softmax kept after the head still gives probabilities) whose
 * "labels" file is written anew with the dataset's class names, one a line in the dataset's
 * class order, when the head is new (server/model_config.c checks their count against the
 * output's last dim, which the new head set); without a new head the original's labels stay,
 * and the job refuses a dataset whose class count differs from the output's. */

/* g rebuilt through a graph builder (nn_builder_like, then every value, initializer and node
 * copied): the identity edit, which writes the bytes g writes. NULL on ENG_NO_MEMORY, or
 * ENG_INVALID for a graph the builder's checks refuse (a node reading a value made later). */
struct nn_graph *train_model_copy(const struct nn_graph *g, struct eng_error *err);
/* g as an inference model: a copy whose StochasticDepth nodes (the zoo's, domain ai.augserve,
 * which no other ONNX reader knows) are Identity nodes of the same names, inputs and outputs;
 * the rest as train_model_copy (Dropout stays: ONNX's is the identity in inference). NULL on
 * ENG_NO_MEMORY. */
struct nn_graph *train_model_for_inference(const struct nn_graph *g, struct eng_error *err);
/* Whether g has such nodes (else train_model_for_inference's copy is g's bytes, not worth
 * making). */
bool train_model_has_training_ops(const struct nn_graph *g);

/* A copy of g whose head (above) has classes outputs (1..100000): W and B keep their names,
 * layout and element type, with fresh values drawn as torch.nn.Linear's reset_parameters draws
 * them, every element of W and B from U(-1/sqrt(in), 1/sqrt(in)), W from the Philox stream
 * (seed, 1, 0) and B from (seed, 1, 1). The output's last dim, and the last dim of any
 * value_info hint of a value between the head and the output, become classes; every other
 * initializer, node, value and name is g's. ENG_UNSUPPORTED for a head not recognised;
 * ENG_INVALID for classes out of range; ENG_NO_MEMORY. */
struct nn_graph *train_model_new_head(const struct nn_graph *g, int classes, uint64_t seed,
                                      struct eng_error *err);
/* Whether train_model_new_head finds g's head (0), without copying g: ENG_UNSUPPORTED naming what
 * was found instead, as train_model_new_head. A train job checks a model so when it is
 * submitted with "classes". */
int train_model_head_check(const struct nn_graph *g, struct eng_error *err);

/* The names of the parameters a train job's "freeze" param keeps fixed, for the training
 * plan's frozen list (train_plan_options.frozen):
 *   NULL (absent), JSON null or []: none;
 *   ["conv1.", "layer1."]: every parameter whose name starts with one of the prefixes, each of
 *     which must match one at least (a typo is ENG_INVALID naming it);
 *   {"before": "layer3."}: every parameter read first by a node before the first node that
 *     reads a parameter named with that prefix (the model's nodes are in topological order):
 *     "freeze up to layer3", which stays trainable with everything after it;
 *   "all-but-head": every parameter but the head's W and B (as train_model_new_head finds
 *     them; ENG_UNSUPPORTED when it finds none): a linear probe.
 * Parameters are g's float initializers that are not buffers (BatchNormalization's running mean
 * and variance, which the training plan updates in training mode whatever is frozen). Anything
 * else is ENG_INVALID saying what is accepted. On success *names (malloc'd, the caller frees
 * the array; its strings are g's) lists them in g's initializer order and *n counts them. */
int train_model_frozen(const struct nn_graph *g, const json_t *freeze, const char ***names,
                       size_t *n, struct eng_error *err);

#endif
