/* Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_ (1.13) with norm_type 2. */
#include <math.h>

#include "train/internal.h"

int train_clip_grad_norm(const struct train_param *params, size_t n, double max_norm,
                         double *total_norm, struct eng_error *err)
{
    if (!(max_norm > 0 && isfinite(max_norm)))
        return eng_fail(err, ENG_INVALID, "max_norm must be a finite number > 0, not %g", max_norm);
    /* PyTorch sums squares per tensor in float32 with its own reduction order; the sum in double
     * is closer to the exact norm than either, and differs from PyTorch's in the last bits of a
     * float only. */
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; params[i].grad && j < params[i].count; j++)
            sum += (double)params[i].grad[j] * params[i].grad[j];
    double norm = sqrt(sum);
    *total_norm = norm;
    if (!isfinite(norm))
        return eng_fail(err, ENG_INVALID, "the gradients' norm is not finite: the loss diverged");
    /* The coefficient as PyTorch computes it, on the float32 norm: max_norm / (norm + 1e-6),
     * clamped to 1 (and a multiplication by 1 changes nothing, so it is skipped). */
    float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (!(coef < 1)) return 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; params[i].grad && j < params[i].count; j++)
            params[i].grad[j] *= coef;
    return 0;
}
