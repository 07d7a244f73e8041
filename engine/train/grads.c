/* The activations' gradients during a backward pass. A value's gradient is written first by the
 * backward step of its last reader (the pass runs in reverse) and read last by its producer's,
 * so it takes a buffer of the pool at the first and gives it back after the second; a view
 * shares its source's gradient (its root's). The pool grows during the first pass only: later
 * passes repeat the same sequence. Parameters' gradients are the plan's own, kept between passes
 * for the optimiser. */
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

/* Whether value id's gradient is wanted: an activation's, but the input's only when asked. */
static int needs_grad(const struct train_plan *t, int id)
{
    return !t->np->values[id].is_const && (t->root[id] != t->input || t->input_grad);
}

/* Points the gradient of root and of every view of it at g. */
static void set_grad(struct train_plan *t, int root, float *g)
{
    for (size_t i = 0; i < t->np->n_values; i++)
        if (t->root[i] == root && !t->np->values[i].is_const) t->grad[i] = g;
}

/* A buffer for root's gradient, fresh (train_grad_share): the smallest free one that is large
 * enough, or a new one. */
static int acquire(struct train_plan *t, int root, struct eng_error *err)
{
    size_t count = t->np->values[root].count, best = t->n_pool;
    for (size_t i = 0; i < t->n_pool; i++)
        if (!t->pool[i].busy && t->pool[i].count >= count &&
            (best == t->n_pool || t->pool[i].count < t->pool[best].count))
            best = i;
    if (best == t->n_pool) {
        struct train_buffer *grown = realloc(t->pool, (t->n_pool + 1) * sizeof *grown);
        if (!grown) return eng_no_memory(err);
        t->pool = grown;
        float *data = malloc((count ? count : 1) * sizeof *data);
        if (!data) return eng_no_memory(err);
        t->pool[t->n_pool++] = (struct train_buffer){data, count, false};
    }
    t->pool[best].busy = true;
    t->fresh[root] = 1;
    set_grad(t, root, t->pool[best].data);
    return 0;
}

static void release(struct train_plan *t, int root)
{
    t->fresh[root] = 0;
    for (size_t i = 0; i < t->n_pool; i++)
        if (t->pool[i].data == t->grad[root]) t->pool[i].busy = false;
    set_grad(t, root, NULL);
}

int train_grads_begin(struct train_plan *t, struct eng_error *err)
{
    for (size_t k = 0; k < t->n_params; k++)
        memset(t->params[k].grad, 0, t->params[k].count * sizeof(float));
    return needs_grad(t, t->output) ? acquire(t, t->root[t->output], err) : 0;
}

void train_grad_zero(struct train_plan *t, int id)
{
    int root = id < 0 ? -1 : t->root[id];
    if (root < 0 || !t->fresh[root]) return;
    float *g = t->grad[root];
    TRAIN_FOR(i, t->np->values[root].count) g[i] = 0;
    t->fresh[root] = 0;
}

int train_grads_before(struct train_plan *t, const struct train_step *s, struct eng_error *err)
{
    if (!t->grad[s->out]) return 0;
    for (int k = 0; k < TRAIN_MAX_INPUTS; k++) {
        int id = s->in[k];
        if (id < 0 || !needs_grad(t, id)) continue;
        if (!t->grad[id] && acquire(t, t->root[id], err)) return -1;
        if (!s->op->overwrites) train_grad_zero(t, id);
    }
    return 1;
}

float *train_grad_share(struct train_plan *t, int id, float *scratch, bool *add)
{
    *add = false;
    if (id < 0 || !t->grad[id]) return scratch;
    int root = t->root[id];
    *add = !t->fresh[root];
    t->fresh[root] = 0;
    return *add ? scratch : t->grad[id];
}

void train_grads_after(struct train_plan *t, const struct train_step *s)
{
    if (t->root[s->out] == s->out) release(t, s->out);
}

void train_grads_end(struct train_plan *t)
{
    for (size_t i = 0; i < t->np->n_values; i++)
        if (!t->np->values[i].is_const) t->grad[i] = NULL;
    memset(t->fresh, 0, t->np->n_values);
    for (size_t i = 0; i < t->n_pool; i++)
        t->pool[i].busy = false;
}

void train_grads_free(struct train_plan *t)
{
    for (size_t i = 0; i < t->n_pool; i++)
        free(t->pool[i].data);
    free(t->pool);
}
