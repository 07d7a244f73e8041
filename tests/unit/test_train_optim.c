/* engine/train's optimisers, saved state, clipping, EMA and schedules against hand-computed cases
 * (PyTorch parity is test_train_parity.c's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "assert_near.h"
#include "train/train.h"

static const struct train_optim_config sgd = {.kind = TRAIN_SGD, .momentum = 0.9};
static const struct train_optim_config adamw = {
    .kind = TRAIN_ADAMW, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};

static struct train_param param(const char *name, float *value, float *grad, size_t count)
{
    return (struct train_param){.name = name, .count = count, .value = value, .grad = grad};
}

static void test_sgd_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    /* p = 1, g = 0.5, lr 0.1, weight decay 0.1. Step 1: d = 0.5 + 0.1 = 0.6, b = d,
     * p = 1 - 0.06 = 0.94. Step 2: d = 0.5 + 0.094 = 0.594, b = 0.54 + 0.594 = 1.134,
     * p = 0.94 - 0.1134 = 0.8266. Nesterov, step 1: d = 0.6 + 0.9 * 0.6 = 1.14, p = 0.886. */
    struct train_optim_config c = sgd;
    c.weight_decay = 0.1;
    float p[2] = {1, 1}, g[2] = {0.5f, 0.5f};
    struct train_param plain = param("w", p, g, 1), nesterov = param("v", p + 1, g + 1, 1);
    struct train_optim *o = train_optim_create(&c, &plain, 1, &err);
    c.nesterov = true;
    struct train_optim *n = train_optim_create(&c, &nesterov, 1, &err);
    assert_non_null(o);
    assert_non_null(n);
    assert_int_equal(train_optim_step(o, &plain, 1, 0.1, &err), 0);
    assert_int_equal(train_optim_step(n, &nesterov, 1, 0.1, &err), 0);
    assert_near(p[0], 0.94, 1e-6);
    assert_near(p[1], 0.886, 1e-6);
    assert_int_equal(train_optim_step(o, &plain, 1, 0.1, &err), 0);
    assert_near(p[0], 0.8266, 1e-6);
    train_optim_free(o);
    train_optim_free(n);
    /* A step at rate 0 (a warm-up's first) moves no weight but starts the momentum: b = 1, then
     * b = 0.9 + 1 = 1.9 and p = 1 - 0.19 = 0.81. */
    float w = 1, gw = 1;
    struct train_param t = param("w", &w, &gw, 1);
    o = train_optim_create(&sgd, &t, 1, &err);
    assert_int_equal(train_optim_step(o, &t, 1, 0, &err), 0);
    assert_true(w == 1.0f);
    assert_int_equal(train_optim_step(o, &t, 1, 0.1, &err), 0);
    assert_near(w, 0.81, 1e-7);
    train_optim_free(o);
}

static void test_no_decay_excluded(void **state)
{
    (void)state;
    struct eng_error err;
    /* Plain SGD, weight decay 0.5, lr 1, g = 0: a decayed tensor moves by -0.5 p, a no_decay
     * tensor not at all once exclusion is on; without it both decay. */
    for (int exclude = 0; exclude < 2; exclude++) {
        struct train_optim_config c = {
            .kind = TRAIN_SGD, .weight_decay = 0.5, .exclude_no_decay = exclude};
        float w = 2, b = 2, g[2] = {0, 0};
        struct train_param ps[2] = {param("w", &w, g, 1), param("b", &b, g + 1, 1)};
        ps[1].no_decay = true;
        struct train_optim *o = train_optim_create(&c, ps, 2, &err);
        assert_non_null(o);
        assert_int_equal(train_optim_step(o, ps, 2, 1.0, &err), 0);
        assert_true(w == 1.0f);
        assert_true(b == (exclude ? 2.0f : 1.0f));
        train_optim_free(o);
    }
}

static void test_adamw_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    /* First step: m = 0.1 g, v = 0.001 g^2, so with the bias corrections m / (1 - 0.9) = g and
     * sqrt(v / (1 - 0.999)) = |g|: p = p (1 - lr wd) - lr g / (|g| + eps). p = 2, g = -3,
     * lr 0.01, wd 0.1: 2 * 0.999 + 0.01 = 2.008. A zero gradient leaves only the decay. */
    struct train_optim_config c = adamw;
    c.weight_decay = 0.1;
    float p[2] = {2, 2}, g[2] = {-3, 0};
    struct train_param t = param("w", p, g, 2);
    struct train_optim *o = train_optim_create(&c, &t, 1, &err);
    assert_non_null(o);
    assert_int_equal(train_optim_step(o, &t, 1, 0.01, &err), 0);
    assert_near(p[0], 2.008, 1e-6);
    assert_near(p[1], 1.998, 1e-6);
    train_optim_free(o);
}

static void test_frozen_tensor(void **state)
{
    (void)state;
    struct eng_error err;
    /* A tensor without a gradient is passed over and keeps no step: when it gets one, its first
     * step is a first step (the momentum buffer starts as d), as a fresh optimiser's. */
    float a = 1, b = 1, ga = 1, gb = 1, fresh = 1;
    struct train_param ps[2] = {param("a", &a, &ga, 1), param("b", &b, NULL, 1)};
    struct train_optim *o = train_optim_create(&sgd, ps, 2, &err);
    assert_non_null(o);
    assert_int_equal(train_optim_step(o, ps, 2, 0.1, &err), 0);
    assert_true(b == 1.0f);
    ps[1].grad = &gb;
    assert_int_equal(train_optim_step(o, ps, 2, 0.1, &err), 0);
    struct train_param f = param("b", &fresh, &gb, 1);
    struct train_optim *o2 = train_optim_create(&sgd, &f, 1, &err);
    assert_int_equal(train_optim_step(o2, &f, 1, 0.1, &err), 0);
    assert_true(b == fresh);
    assert_near(b, 0.9, 1e-7);
    train_optim_free(o);
    train_optim_free(o2);
}

static void test_refusals(void **state)
{
    (void)state;
    struct eng_error err;
    struct train_optim_config c = sgd;
    c.momentum = 0;
    c.nesterov = true;
    assert_int_equal(train_optim_check(&c, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "nesterov"));
    c = sgd;
    c.momentum = 1;
    assert_int_equal(train_optim_check(&c, &err), -1);
    assert_non_null(strstr(err.message, "momentum"));
    c.momentum = 0.9;
    c.weight_decay = -1;
    assert_int_equal(train_optim_check(&c, &err), -1);
    assert_non_null(strstr(err.message, "weight_decay"));
    c = adamw;
    c.eps = 0;
    assert_null(train_optim_create(&c, NULL, 0, &err));
    assert_non_null(strstr(err.message, "eps"));
    c = adamw;
    c.beta2 = 1;
    assert_int_equal(train_optim_check(&c, &err), -1);
    assert_non_null(strstr(err.message, "betas"));

    /* A step over other tensors, or at a rate that is no rate, changes nothing. */
    float v[3] = {1, 2, 3}, g[3] = {1, 1, 1};
    struct train_param t = param("w", v, g, 3), shorter = param("w", v, g, 2);
    struct train_optim *o = train_optim_create(&sgd, &t, 1, &err);
    assert_non_null(o);
    assert_int_equal(train_optim_step(o, &shorter, 1, 0.1, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(train_optim_step(o, &t, 0, 0.1, &err), -1);
    assert_int_equal(train_optim_step(o, &t, 1, -0.1, &err), -1);
    assert_non_null(strstr(err.message, "learning rate"));
    assert_int_equal(train_optim_step(o, &t, 1, NAN, &err), -1);
    assert_true(v[0] == 1 && v[1] == 2 && v[2] == 3);
    train_optim_free(o);
}

/* Three tensors, one of them no_decay, and their gradient at step k. */
struct model {
    float value[3][4];
    float grad[3][4];
    struct train_param params[3];
};

static void model_init(struct model *m)
{
    static const char *const names[3] = {"conv.weight", "conv.bias", "fc.weight"};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++)
            m->value[i][j] = (float)(i + 1) * 0.25f - (float)j * 0.125f;
        m->params[i] = param(names[i], m->value[i], m->grad[i], 4);
    }
    m->params[1].no_decay = true;
}

static void model_grads(struct model *m, int k)
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            m->grad[i][j] = (float)((k * 7 + i * 3 + j) % 11) / 8 - 0.6f;
}

/* Runs steps [from, to) of a fixed run over m with o. */
static void run(struct train_optim *o, struct model *m, int from, int to)
{
    struct eng_error err;
    for (int k = from; k < to; k++) {
        model_grads(m, k);
        assert_int_equal(train_optim_step(o, m->params, 3, 0.05 + 0.01 * k, &err), 0);
    }
}

static void test_resume_is_bit_identical(void **state)
{
    (void)state;
    const struct train_optim_config *configs[2] = {&sgd, &adamw};
    for (int c = 0; c < 2; c++) {
        struct train_optim_config config = *configs[c];
        config.weight_decay = 0.01;
        config.exclude_no_decay = true;
        config.nesterov = config.kind == TRAIN_SGD;
        struct eng_error err;
        /* An uninterrupted run of 6 steps ... */
        struct model whole;
        model_init(&whole);
        struct train_optim *o = train_optim_create(&config, whole.params, 3, &err);
        assert_non_null(o);
        run(o, &whole, 0, 6);
        train_optim_free(o);
        /* ... and a run checkpointed after 3 steps, resumed by a new optimiser. */
        struct model first, resumed;
        model_init(&first);
        o = train_optim_create(&config, first.params, 3, &err);
        run(o, &first, 0, 3);
        unsigned char *bytes;
        size_t size;
        assert_int_equal(train_optim_save(o, &bytes, &size, &err), 0);
        train_optim_free(o);
        model_init(&resumed);
        memcpy(resumed.value, first.value, sizeof first.value);
        o = train_optim_create(&config, resumed.params, 3, &err);
        assert_int_equal(train_optim_load(o, bytes, size, &err), 0);
        run(o, &resumed, 3, 6);
        assert_memory_equal(resumed.value, whole.value, sizeof whole.value);
        /* Without the state, the momentum or moments restart, and the weights differ. */
        struct train_optim *cold = train_optim_create(&config, first.params, 3, &err);
        run(cold, &first, 3, 6);
        assert_memory_not_equal(first.value, whole.value, sizeof whole.value);
        train_optim_free(cold);
        train_optim_free(o);
        free(bytes);
    }
}

static void test_state_refusals(void **state)
{
    (void)state;
    struct eng_error err;
    struct model m;
    model_init(&m);
    struct train_optim *o = train_optim_create(&sgd, m.params, 3, &err);
    run(o, &m, 0, 2);
    unsigned char *bytes;
    size_t size;
    assert_int_equal(train_optim_save(o, &bytes, &size, &err), 0);
    /* Truncated, past the end, another version: undecodable. Each refusal leaves the state: the
     * last load, of the good bytes, then gives the same next step as before. */
    assert_int_equal(train_optim_load(o, bytes, size - 1, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    unsigned char *longer = calloc(size + 1, 1);
    assert_non_null(longer);
    memcpy(longer, bytes, size);
    assert_int_equal(train_optim_load(o, longer, size + 1, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    longer[4] = 99;
    assert_int_equal(train_optim_load(o, longer, size, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    assert_non_null(strstr(err.message, "version 99"));
    assert_int_equal(train_optim_load(o, "nonsense", 8, &err), -1);
    assert_int_equal(err.code, ENG_UNDECODABLE);
    free(longer);
    /* Another optimiser's state, another model's: a conflict. */
    struct train_optim *adam = train_optim_create(&adamw, m.params, 3, &err);
    assert_int_equal(train_optim_load(adam, bytes, size, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    struct model other;
    model_init(&other);
    other.params[2].name = "head.weight";
    struct train_optim *o2 = train_optim_create(&sgd, other.params, 3, &err);
    assert_int_equal(train_optim_load(o2, bytes, size, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_non_null(strstr(err.message, "head.weight"));
    assert_int_equal(train_optim_load(o2, bytes, size, &err), -1);
    train_optim_free(o2);
    train_optim_free(adam);
    /* The refused loads left o's state: its next step equals a reload's. */
    struct model a = m, b = m;
    for (int i = 0; i < 3; i++) {
        a.params[i].value = a.value[i], a.params[i].grad = a.grad[i];
        b.params[i].value = b.value[i], b.params[i].grad = b.grad[i];
    }
    run(o, &a, 2, 3);
    assert_int_equal(train_optim_load(o, bytes, size, &err), 0);
    run(o, &b, 2, 3);
    assert_memory_equal(a.value, b.value, sizeof a.value);
    train_optim_free(o);
    free(bytes);
}

static void test_clip_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    /* Gradients (3, 4) and (12): norm 13. max_norm 6.5 scales by 6.5 / (13 + 1e-6), about a
     * half; max_norm 20 leaves them; a frozen tensor counts for nothing. */
    float g1[2] = {3, 4}, g2[1] = {12}, v[2] = {0, 0}, frozen_value = 100;
    struct train_param ps[3] = {param("a", v, g1, 2), param("b", v, g2, 1),
                                param("c", &frozen_value, NULL, 1)};
    double norm;
    assert_int_equal(train_clip_grad_norm(ps, 3, 20, &norm, &err), 0);
    assert_near(norm, 13, 1e-12);
    assert_true(g1[0] == 3 && g1[1] == 4 && g2[0] == 12);
    assert_int_equal(train_clip_grad_norm(ps, 3, 6.5, &norm, &err), 0);
    assert_near(norm, 13, 1e-12);
    double coef = 6.5 / (13 + 1e-6);
    assert_near(g1[0], 3 * coef, 1e-6);
    assert_near(g1[1], 4 * coef, 1e-6);
    assert_near(g2[0], 12 * coef, 1e-6);
    assert_true(g1[0] < 1.5f); /* the 1e-6 makes it a hair under the exact half */
    /* Refusals leave the gradients. */
    assert_int_equal(train_clip_grad_norm(ps, 3, 0, &norm, &err), -1);
    assert_non_null(strstr(err.message, "max_norm"));
    g2[0] = INFINITY;
    assert_int_equal(train_clip_grad_norm(ps, 3, 1, &norm, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "not finite"));
    assert_near(g1[0], 3 * coef, 1e-6);
}

static void test_ema_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    /* decay 0.9: the average starts at the weight (1), then 0.9 * 1 + 0.1 * 2 = 1.1, then
     * 0.99 + 0.3 = 1.29; the buffer is copied (5, then 7). */
    float w = 1, running = 3;
    struct train_param p = param("w", &w, NULL, 1), b = param("bn.running_mean", &running, NULL, 1);
    assert_null(train_ema_create(&p, 1, &b, 1, 1.0, &err));
    assert_non_null(strstr(err.message, "decay"));
    struct train_ema *ema = train_ema_create(&p, 1, &b, 1, 0.9, &err);
    assert_non_null(ema);
    assert_true(train_ema_value(ema, 0)[0] == 1.0f && train_ema_value(ema, 1)[0] == 3.0f);
    w = 2, running = 5;
    assert_int_equal(train_ema_update(ema, &p, 1, &b, 1, &err), 0);
    assert_near(train_ema_value(ema, 0)[0], 1.1, 1e-6);
    assert_true(train_ema_value(ema, 1)[0] == 5.0f);
    unsigned char *bytes;
    size_t size;
    assert_int_equal(train_ema_save(ema, &bytes, &size, &err), 0);
    w = 3, running = 7;
    assert_int_equal(train_ema_update(ema, &p, 1, &b, 1, &err), 0);
    assert_near(train_ema_value(ema, 0)[0], 1.29, 1e-6);
    assert_true(train_ema_value(ema, 1)[0] == 7.0f);
    assert_null(train_ema_value(ema, 2));
    /* Back to the saved averages; a parameter passed as a buffer is refused. */
    assert_int_equal(train_ema_load(ema, bytes, size, &err), 0);
    assert_near(train_ema_value(ema, 0)[0], 1.1, 1e-6);
    assert_int_equal(train_ema_update(ema, NULL, 0, (struct train_param[]){p, b}, 2, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    free(bytes);
    train_ema_free(ema);
}

static void test_names_and_defaults(void **state)
{
    (void)state;
    struct eng_error err;
    enum train_optim_kind kind;
    enum train_lr_kind lr;
    assert_int_equal(train_optim_kind_named("adamw", &kind, &err), 0);
    assert_int_equal(kind, TRAIN_ADAMW);
    assert_int_equal(train_optim_kind_named("sgd", &kind, &err), 0);
    assert_int_equal(kind, TRAIN_SGD);
    assert_int_equal(train_optim_kind_named("adam", &kind, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "'adam'"));
    assert_int_equal(train_lr_kind_named("fixmatch", &lr, &err), 0);
    assert_int_equal(lr, TRAIN_LR_FIXMATCH);
    assert_int_equal(train_lr_kind_named("multistep", &lr, &err), 0);
    assert_int_equal(lr, TRAIN_LR_MULTISTEP);
    assert_int_equal(train_lr_kind_named("Cosine", &lr, &err), -1);
    assert_non_null(strstr(err.message, "cosine"));
    /* torch.optim's documented defaults: SGD(momentum=0, weight_decay=0), AdamW(betas=(0.9,
     * 0.999), eps=1e-8, weight_decay=1e-2); both pass the check. */
    struct train_optim_config c = train_optim_defaults(TRAIN_SGD);
    assert_true(c.kind == TRAIN_SGD && c.momentum == 0 && c.weight_decay == 0 && !c.nesterov);
    assert_int_equal(train_optim_check(&c, &err), 0);
    c = train_optim_defaults(TRAIN_ADAMW);
    assert_true(c.kind == TRAIN_ADAMW && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 &&
                c.weight_decay == 0.01);
    assert_int_equal(train_optim_check(&c, &err), 0);
}

static void test_schedules_by_hand(void **state)
{
    (void)state;
    struct eng_error err;
    struct train_schedule s = {.kind = TRAIN_LR_COSINE, .lr = 0.2, .min_lr = 0.02, .warmup = 4};
    /* Warm-up: 0, then lr / 4 at step 1; the cosine over the remaining 10 steps reaches its
     * midpoint (lr + min_lr) / 2 five steps in, and holds min_lr from the total on. */
    assert_int_equal(train_schedule_check(&s, 14, &err), 0);
    assert_near(train_schedule_lr(&s, 0, 14), 0, 0);
    assert_near(train_schedule_lr(&s, 1, 14), 0.05, 1e-15);
    assert_near(train_schedule_lr(&s, 4, 14), 0.2, 1e-15);
    assert_near(train_schedule_lr(&s, 9, 14), 0.11, 1e-15);
    assert_near(train_schedule_lr(&s, 14, 14), 0.02, 1e-15);
    assert_near(train_schedule_lr(&s, 100, 14), 0.02, 1e-15);
    /* FixMatch's at the end: lr cos(7 pi / 16) = lr * 0.19509032201612825. */
    s = (struct train_schedule){.kind = TRAIN_LR_FIXMATCH, .lr = 0.03};
    assert_near(train_schedule_lr(&s, 8, 16), 0.03 * cos(7 * M_PI / 32), 1e-15);
    assert_near(train_schedule_lr(&s, 16, 16), 0.03 * 0.19509032201612825, 1e-15);
    /* Step: gamma per step_size steps. */
    s = (struct train_schedule){.kind = TRAIN_LR_STEP, .lr = 1, .step_size = 3, .gamma = 0.1};
    assert_near(train_schedule_lr(&s, 2, 10), 1, 0);
    assert_near(train_schedule_lr(&s, 3, 10), 0.1, 1e-16);
    assert_near(train_schedule_lr(&s, 9, 10), 0.001, 1e-18);
    /* Refusals name the field. */
    s.gamma = 0;
    assert_int_equal(train_schedule_check(&s, 10, &err), -1);
    assert_non_null(strstr(err.message, "gamma"));
    s = (struct train_schedule){
        .kind = TRAIN_LR_MULTISTEP, .lr = 1, .gamma = 0.5, .milestones = {4, 4}, .n_milestones = 2};
    assert_int_equal(train_schedule_check(&s, 10, &err), -1);
    assert_non_null(strstr(err.message, "milestones"));
    s = (struct train_schedule){.kind = TRAIN_LR_CONSTANT, .lr = 1, .warmup = 11};
    assert_int_equal(train_schedule_check(&s, 10, &err), -1);
    assert_non_null(strstr(err.message, "warmup"));
    s.warmup = 0;
    s.lr = -1;
    assert_int_equal(train_schedule_check(&s, 10, &err), -1);
    assert_non_null(strstr(err.message, "lr"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_by_hand),        cmocka_unit_test(test_no_decay_excluded),
        cmocka_unit_test(test_adamw_by_hand),      cmocka_unit_test(test_frozen_tensor),
        cmocka_unit_test(test_refusals),           cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_state_refusals),     cmocka_unit_test(test_clip_by_hand),
        cmocka_unit_test(test_ema_by_hand),        cmocka_unit_test(test_schedules_by_hand),
        cmocka_unit_test(test_names_and_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
