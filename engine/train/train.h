/* train: training models on the CPU, over the same graph IR as inference (nn/nn.h): no second
 * IR. This area owns the training plan (forward in training mode, the backward pass), the
 * optimisers, schedules and losses, and the model zoo. Each part has its own section below.
 *
 * See ../../ARCHITECTURE.md for the layers (train may use nn, data and what they use) and
 * ../core/engine.h for the conventions: errors are values, nothing prints. */
#ifndef AUGSERVE_ENGINE_TRAIN_H
#define AUGSERVE_ENGINE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "nn/nn.h"

/* ---- Training plan ---- */

/* A training plan is a graph compiled for one input shape (the batch included), built on nn's
 * plan helpers: nn folds the shape arithmetic and holds the values; the training plan adds, per
 * node, a forward step in training or eval mode and a backward step.
 *
 * Parameters and buffers. The float initializers a node reads where a gradient flows (Conv's
 * weights and bias, BatchNormalization's scale and B, Gemm's and MatMul's operands, a constant
 * operand of Add, Mul or Concat) are parameters; BatchNormalization's mean and var are buffers,
 * which a training forward updates. The plan copies both out of the graph (which stays
 * unchanged) into plain row-major float arrays that it owns: an optimiser updates the values in
 * place between steps, and the next forward reads them. Nothing is kept in another layout, so
 * there is no sync to ask for.
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
    /* Initializers to keep fixed, by name (fine-tuning's frozen layers): they stay constants,
     * with no gradient and no entry among the parameters. A BatchNormalization whose scale and
     * shift are frozen still updates its running statistics in training mode, as PyTorch's. */
    const char *const *frozen;
    size_t n_frozen;
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
/* The backward pass of the last forward: grad_output is dL/doutput (the output's shape); every
 * parameter's grad is overwritten. grad_input (the input's shape) receives dL/dinput when not
 * NULL, which needs options.input_grad (else ENG_INVALID). ENG_INVALID before any forward. */
int train_plan_backward(struct train_plan *t, const float *grad_output, float *grad_input,
                        struct eng_error *err);

#endif
