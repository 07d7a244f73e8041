/* SGD and AdamW as torch.optim (1.13) computes them: its single-tensor code paths, each operation
 * rounded to float32 in the order PyTorch performs it (a Python float argument becomes a float32
 * scalar of the operation). PyTorch's vector kernels fuse a multiply-add where its tensor
 * arithmetic allows (add_ with alpha, addcmul_), so those are fmaf here: correctly rounded on any
 * CPU, and with them ten steps of tests/parity/gen_optim.py's cases give PyTorch's bits. */
#include <math.h>
#include <stdlib.h>

#include "train/internal.h"

struct train_optim {
    struct train_optim_config config;
    struct state_tensor *tensors; /* per tensor: steps; SGD's momentum buffer or Adam's m, v */
    size_t n;
};

static const char *tag_of(enum train_optim_kind kind)
{
    return kind == TRAIN_SGD ? "sgd " : "admw";
}

struct train_optim_config train_optim_defaults(enum train_optim_kind kind)
{
    if (kind == TRAIN_SGD) return (struct train_optim_config){.kind = TRAIN_SGD};
    return (struct train_optim_config){
        .kind = TRAIN_ADAMW, .weight_decay = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

static int in_unit(double x)
{
    return x >= 0 && x < 1;
}

int train_optim_check(const struct train_optim_config *c, struct eng_error *err)
{
    if (c->kind != TRAIN_SGD && c->kind != TRAIN_ADAMW)
        return eng_fail(err, ENG_INVALID, "unknown optimiser kind %d", (int)c->kind);
    if (!(c->weight_decay >= 0 && isfinite(c->weight_decay)))
        return eng_fail(err, ENG_INVALID, "weight_decay must be a finite number >= 0, not %g",
                        c->weight_decay);
    if (c->kind == TRAIN_SGD) {
        if (!in_unit(c->momentum))
            return eng_fail(err, ENG_INVALID, "momentum must be in [0, 1), not %g", c->momentum);
        if (c->nesterov && c->momentum == 0)
            return eng_fail(err, ENG_INVALID, "nesterov needs a momentum above 0");
        return 0;
    }
    if (!in_unit(c->beta1) || !in_unit(c->beta2))
        return eng_fail(err, ENG_INVALID, "betas must be in [0, 1), not %g and %g", c->beta1,
                        c->beta2);
    if (!(c->eps > 0 && isfinite(c->eps)))
        return eng_fail(err, ENG_INVALID, "eps must be a finite number > 0, not %g", c->eps);
    return 0;
}

static unsigned buffers_of(const struct train_optim_config *c)
{
    if (c->kind == TRAIN_ADAMW) return 2;
    return c->momentum != 0 ? 1 : 0;
}

struct train_optim *train_optim_create(const struct train_optim_config *config,
                                       const struct train_param *params, size_t n,
                                       struct eng_error *err)
{
    if (train_optim_check(config, err)) return NULL;
    struct train_optim *o = malloc(sizeof *o);
    if (!o) {
        eng_no_memory(err);
        return NULL;
    }
    o->config = *config;
    o->n = n;
    o->tensors = state_new_tensors(params, n, NULL, 0, buffers_of(config), err);
    if (!o->tensors) {
        free(o);
        return NULL;
    }
    return o;
}

void train_optim_free(struct train_optim *o)
{
    if (!o) return;
    state_free_tensors(o->tensors, o->n);
    free(o);
}

/* fmaf is correctly rounded everywhere, a library call on baseline x86-64; on CPUs with FMA the
 * clone picked at load time makes it an instruction, and the loops vector code, with the same
 * bits (every operation is elementwise). As engine/image/noise.c's convolve_row. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif
#endif
#ifndef FMA_CLONES
#define FMA_CLONES
#endif

FMA_CLONES
static void sgd_step(const struct train_optim_config *c, struct state_tensor *t,
                     const struct train_param *p, double lr, double wd)
{
    const float wd_f = (float)wd, m = (float)c->momentum, neg_lr = (float)-lr;
    float *buf = t->buf[0];
    for (size_t j = 0; j < p->count; j++) {
        float d = p->grad[j];
        if (wd != 0) d = fmaf(wd_f, p->value[j], d);
        if (m != 0) {
            buf[j] = t->steps == 0 ? d : buf[j] * m + d;
            d = c->nesterov ? fmaf(m, buf[j], d) : buf[j];
        }
        p->value[j] = fmaf(neg_lr, d, p->value[j]);
    }
}

FMA_CLONES
static void adamw_step(const struct train_optim_config *c, struct state_tensor *t,
                       const struct train_param *p, double lr, double wd)
{
    double step = (double)t->steps; /* already counted */
    double step_size = lr / (1 - pow(c->beta1, step));
    const float decay = (float)(1 - lr * wd), b1 = (float)c->beta1, b2 = (float)c->beta2,
                one_b1 = (float)(1 - c->beta1), one_b2 = (float)(1 - c->beta2),
                bc2_sqrt = (float)sqrt(1 - pow(c->beta2, step)), eps = (float)c->eps,
                neg_step = (float)-step_size;
    float *m = t->buf[0], *v = t->buf[1];
    for (size_t j = 0; j < p->count; j++) {
        float g = p->grad[j];
        p->value[j] = p->value[j] * decay;
        m[j] = fmaf(one_b1, g, m[j] * b1);
        v[j] = fmaf(one_b2 * g, g, v[j] * b2);
        float denom = sqrtf(v[j]) / bc2_sqrt + eps;
        p->value[j] = p->value[j] + neg_step * m[j] / denom;
    }
}

int train_optim_step(struct train_optim *o, const struct train_param *params, size_t n, double lr,
                     struct eng_error *err)
{
    /* 0 is a rate: a warm-up starts there, and the step still moves the momentum and moments. */
    if (!(lr >= 0 && isfinite(lr)))
        return eng_fail(err, ENG_INVALID, "the learning rate must be a finite number >= 0, not %g",
                        lr);
    if (state_check_params("optimiser step", o->tensors, o->n, params, n, NULL, 0, err)) return -1;
    for (size_t i = 0; i < n; i++) {
        const struct train_param *p = &params[i];
        if (!p->grad) continue;
        struct state_tensor *t = &o->tensors[i];
        double wd = o->config.exclude_no_decay && p->no_decay ? 0 : o->config.weight_decay;
        if (o->config.kind == TRAIN_SGD) {
            sgd_step(&o->config, t, p, lr, wd);
            t->steps++;
        } else {
            t->steps++;
            adamw_step(&o->config, t, p, lr, wd);
        }
    }
    return 0;
}

int train_optim_save(const struct train_optim *o, unsigned char **data, size_t *size,
                     struct eng_error *err)
{
    return state_save(tag_of(o->config.kind), o->tensors, o->n, data, size, err);
}

int train_optim_load(struct train_optim *o, const void *data, size_t size, struct eng_error *err)
{
    return state_load(tag_of(o->config.kind), o->tensors, o->n, data, size, err);
}
