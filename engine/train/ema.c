/* The EMA of a model's weights, as FixMatch's reference (kekmodel/FixMatch-pytorch,
 * models/ema.py) updates it after each optimiser step:
 *   for every parameter:  ema.copy_(ema * decay + (1 - decay) * value)
 *   for every buffer:     ema.copy_(value)
 * in float32, decay and 1 - decay each rounded to float as PyTorch rounds a scalar argument. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

struct train_ema {
    double decay;
    size_t n, n_buffers;
    struct state_tensor *tensors; /* the parameters' averages, then the buffers' copies */
};

static void copy_values(struct train_ema *e, const struct train_param *params,
                        const struct train_param *buffers)
{
    for (size_t i = 0; i < e->n + e->n_buffers; i++) {
        const struct train_param *p = i < e->n ? &params[i] : &buffers[i - e->n];
        memcpy(e->tensors[i].buf[0], p->value, p->count * sizeof(float));
    }
}

struct train_ema *train_ema_create(const struct train_param *params, size_t n,
                                   const struct train_param *buffers, size_t n_buffers,
                                   double decay, struct eng_error *err)
{
    if (!(decay > 0 && decay < 1)) {
        eng_fail(err, ENG_INVALID, "the EMA's decay must be in (0, 1), not %g", decay);
        return NULL;
    }
    struct train_ema *e = malloc(sizeof *e);
    if (!e) {
        eng_no_memory(err);
        return NULL;
    }
    e->decay = decay;
    e->n = n;
    e->n_buffers = n_buffers;
    e->tensors = state_new_tensors(params, n, buffers, n_buffers, 1, err);
    if (!e->tensors) {
        free(e);
        return NULL;
    }
    if (state_check_params("EMA", e->tensors, n + n_buffers, params, n, buffers, n_buffers, err)) {
        train_ema_free(e);
        return NULL;
    }
    copy_values(e, params, buffers);
    return e;
}

void train_ema_free(struct train_ema *e)
{
    if (!e) return;
    state_free_tensors(e->tensors, e->n + e->n_buffers);
    free(e);
}

int train_ema_update(struct train_ema *e, const struct train_param *params, size_t n,
                     const struct train_param *buffers, size_t n_buffers, struct eng_error *err)
{
    if (n != e->n)
        return eng_fail(err, ENG_INVALID, "EMA update: %zu parameters given, it averages %zu", n,
                        e->n);
    if (state_check_params("EMA update", e->tensors, e->n + e->n_buffers, params, n, buffers,
                           n_buffers, err))
        return -1;
    const float d = (float)e->decay, rest = (float)(1.0 - e->decay);
    for (size_t i = 0; i < n; i++) {
        float *avg = e->tensors[i].buf[0];
        for (size_t j = 0; j < params[i].count; j++)
            avg[j] = avg[j] * d + rest * params[i].value[j];
        e->tensors[i].steps++;
    }
    for (size_t i = 0; i < n_buffers; i++) {
        memcpy(e->tensors[n + i].buf[0], buffers[i].value, buffers[i].count * sizeof(float));
        e->tensors[n + i].steps++;
    }
    return 0;
}

const float *train_ema_value(const struct train_ema *e, size_t i)
{
    return i < e->n + e->n_buffers ? e->tensors[i].buf[0] : NULL;
}

int train_ema_save(const struct train_ema *e, unsigned char **data, size_t *size,
                   struct eng_error *err)
{
    return state_save("ema ", e->tensors, e->n + e->n_buffers, data, size, err);
}

int train_ema_load(struct train_ema *e, const void *data, size_t size, struct eng_error *err)
{
    return state_load("ema ", e->tensors, e->n + e->n_buffers, data, size, err);
}
