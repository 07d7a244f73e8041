/* Dynamic batching (config.json's dynamic_batching): concurrent model_infer calls whose shapes
 * agree but for the first dimension run as one execution of at most max_batch rows. The first
 * call leads: it opens a batch, waits up to max_delay_us for others to join, runs the batch and
 * hands each call its own rows of the outputs. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cancel.h"
#include "log.h"
#include "model_internal.h"

/* One model_infer call waiting in a batch; it lives on the caller's stack. */
struct call {
    const float *const *inputs;
    const struct nn_tensor_info *shapes;
    float **outputs;
    struct nn_tensor_info *output_info;
    struct eng_error *err;
    int64_t rows; /* its batch: the first dimension of its inputs */
    int rc;
    int done; /* under the batcher's lock: the leader has filled rc and the outputs */
};

/* The batch being gathered; it lives on its leader's stack (the call that opened it). */
struct batch {
    struct call **calls; /* max_batch entries */
    size_t count;
    int64_t rows; /* summed over calls */
};

/* Calls batch only when inputs and outputs all have the batch as their first dimension (declared
 * dynamic, so each call's rows can be concatenated and the results split again). */
int model_batchable(const struct nn_graph *g)
{
    for (size_t i = 0; i < nn_graph_input_count(g); i++)
        if (nn_graph_input(g, i)->rank < 1 || nn_graph_input(g, i)->dims[0] >= 0) return 0;
    for (size_t k = 0; k < nn_graph_output_count(g); k++)
        if (nn_graph_output(g, k)->rank < 1 || nn_graph_output(g, k)->dims[0] >= 0) return 0;
    return 1;
}

static int execute_call(struct model *m, struct call *c)
{
    return model_execute(m, c->inputs, c->shapes, c->outputs, c->output_info, c->err);
}

/* Elements of a shape past its first dimension: one batch row. */
static size_t row_elements(const struct nn_tensor_info *info)
{
    size_t n = 1;
    for (int d = 1; d < info->rank; d++)
        n *= (size_t)info->dims[d];
    return n;
}

/* The batch's inputs concatenated along the first dimension, into inputs and shapes (model input
 * order). */
static int concatenate(const struct model *m, const struct batch *b, float **inputs,
                       struct nn_tensor_info *shapes, struct eng_error *err)
{
    for (size_t i = 0; i < nn_graph_input_count(m->graph); i++) {
        shapes[i] = b->calls[0]->shapes[i];
        shapes[i].dims[0] = b->rows;
        size_t row = row_elements(&shapes[i]);
        size_t count = (size_t)b->rows * row;
        inputs[i] = malloc((count ? count : 1) * sizeof(float));
        if (!inputs[i]) return eng_fail(err, ENG_NO_MEMORY, "out of memory batching %s", m->name);
        float *at = inputs[i];
        for (size_t k = 0; k < b->count; k++) {
            size_t n = (size_t)b->calls[k]->rows * row;
            memcpy(at, b->calls[k]->inputs[i], n * sizeof(float));
            at += n;
        }
    }
    return 0;
}

/* Gives each call its own rows of the batch's outputs (first dimension b->rows). */
static void split(size_t n_outputs, const struct batch *b, float *const *outputs,
                  const struct nn_tensor_info *info)
{
    int64_t first = 0;
    for (size_t k = 0; k < b->count; k++) {
        struct call *c = b->calls[k];
        c->rc = 0;
        for (size_t o = 0; o < n_outputs; o++) {
            size_t n = (size_t)c->rows * row_elements(&info[o]);
            c->output_info[o] = info[o];
            c->output_info[o].dims[0] = c->rows;
            c->outputs[o] = malloc((n ? n : 1) * sizeof(float));
            if (c->outputs[o])
                memcpy(c->outputs[o], outputs[o] + (size_t)first * row_elements(&info[o]),
                       n * sizeof(float));
            else
                c->rc = eng_fail(c->err, ENG_NO_MEMORY, "out of memory splitting a batch");
        }
        if (c->rc != 0)
            for (size_t o = 0; o < n_outputs; o++) {
                free(c->outputs[o]);
                c->outputs[o] = NULL;
            }
        first += c->rows;
    }
}

/* Whether every output has the batch as its first dimension. */
static int splittable(size_t n_outputs, const struct nn_tensor_info *info, int64_t rows)
{
    for (size_t o = 0; o < n_outputs; o++)
        if (info[o].rank < 1 || info[o].dims[0] != rows) return 0;
    return 1;
}

/* Runs the batch as one and fills every call. Outputs that do not split by rows turn batching off
 * for the model, and each call then runs on its own. */
static void execute_batch(struct model *m, const struct batch *b)
{
    size_t n_in = nn_graph_input_count(m->graph), n_out = nn_graph_output_count(m->graph);
    float **inputs = calloc(n_in + 1, sizeof *inputs),
          **outputs = calloc(n_out + 1, sizeof *outputs);
    struct nn_tensor_info *shapes = calloc(n_in + 1, sizeof *shapes);
    struct nn_tensor_info *info = calloc(n_out + 1, sizeof *info);
    struct eng_error err = {0};
    int rc = inputs && outputs && shapes && info
                 ? concatenate(m, b, inputs, shapes, &err)
                 : eng_fail(&err, ENG_NO_MEMORY, "out of memory batching %s", m->name);
    /* The batch answers other requests too, so the leader's deadline or departure must not stop
     * it: it runs to its end, as one call would. */
    const struct eng_cancel *leader = eng_cancel_installed();
    eng_cancel_install(NULL);
    if (rc == 0) rc = model_execute(m, (const float *const *)inputs, shapes, outputs, info, &err);
    eng_cancel_install(leader);
    if (rc == 0 && splittable(n_out, info, b->rows)) {
        split(n_out, b, outputs, info);
    } else if (rc == 0) {
        log_event("warn", "models", "model %s: outputs do not split by batch; not batching",
                  m->name);
        atomic_store(&m->batching, 0);
        for (size_t k = 0; k < b->count; k++)
            b->calls[k]->rc = execute_call(m, b->calls[k]);
    } else {
        for (size_t k = 0; k < b->count; k++) {
            *b->calls[k]->err = err;
            b->calls[k]->rc = -1;
        }
    }
    for (size_t i = 0; inputs && i < n_in; i++)
        free(inputs[i]);
    for (size_t o = 0; outputs && o < n_out; o++)
        free(outputs[o]);
    free(inputs);
    free(outputs);
    free(shapes);
    free(info);
}

/* The rows of a call: its inputs' common first dimension, or -1 when they have none. */
static int64_t call_rows(const struct model *m, const struct nn_tensor_info *shapes)
{
    int64_t rows = -1;
    for (size_t i = 0; i < nn_graph_input_count(m->graph); i++) {
        if (shapes[i].rank < 1 || (i > 0 && shapes[i].dims[0] != rows)) return -1;
        rows = shapes[i].dims[0];
    }
    return rows;
}

/* Whether c may join the open batch: the same shapes but for the batch, and room for its rows. */
static int fits(const struct model *m, const struct batch *b, const struct call *c)
{
    return b->rows + c->rows <= m->max_batch &&
           model_same_shapes(b->calls[0]->shapes, c->shapes, nn_graph_input_count(m->graph), 1);
}

static struct timespec deadline_after(long us)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += us / 1000000;
    t.tv_nsec += (us % 1000000) * 1000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

/* Opens a batch with c, gathers calls until it is full or the delay passed, runs it, and wakes
 * its calls. Entered and left with batch_lock held. */
static void lead_batch(struct model *m, struct call *c)
{
    struct batch b = {.calls = malloc((size_t)m->max_batch * sizeof *b.calls)};
    if (!b.calls) {
        c->rc = eng_fail(c->err, ENG_NO_MEMORY, "out of memory batching %s", m->name);
        return;
    }
    b.calls[b.count++] = c;
    b.rows = c->rows;
    m->open = &b;
    struct timespec deadline = deadline_after(m->delay_us);
    int waited = 0;
    while (b.rows < m->max_batch && waited != ETIMEDOUT)
        waited = pthread_cond_timedwait(&m->batch_cond, &m->batch_lock, &deadline);
    m->open = NULL;
    pthread_cond_broadcast(&m->batch_cond); /* calls that did not fit may open the next batch */
    pthread_mutex_unlock(&m->batch_lock);
    if (b.count == 1)
        c->rc = execute_call(m, c);
    else
        execute_batch(m, &b);
    pthread_mutex_lock(&m->batch_lock);
    for (size_t k = 0; k < b.count; k++)
        b.calls[k]->done = 1;
    pthread_cond_broadcast(&m->batch_cond);
    free(b.calls);
}

/* Joins the open batch when c fits, waits for the next one when it does not, and leads one when
 * none is open. */
static int infer_batched(struct model *m, struct call *c)
{
    pthread_mutex_lock(&m->batch_lock);
    while (m->open && !fits(m, m->open, c))
        pthread_cond_wait(&m->batch_cond, &m->batch_lock);
    if (m->open) {
        struct batch *b = m->open;
        b->calls[b->count++] = c;
        b->rows += c->rows;
        if (b->rows == m->max_batch) pthread_cond_broadcast(&m->batch_cond);
        while (!c->done)
            pthread_cond_wait(&m->batch_cond, &m->batch_lock);
    } else {
        lead_batch(m, c);
    }
    pthread_mutex_unlock(&m->batch_lock);
    return c->rc;
}

int model_infer(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                float **outputs, struct nn_tensor_info *output_info, struct eng_error *err)
{
    if (!m->graph) return eng_fail(err, ENG_INVALID, "model %s is unavailable", m->name);
    atomic_fetch_add(&m->requests, 1);
    struct call c = {inputs, shapes, outputs, output_info, err, call_rows(m, shapes), 0, 0};
    /* A call as large as max_batch has nothing to gather, and an empty one nothing to split. */
    if (!atomic_load(&m->batching) || c.rows < 1 || c.rows >= m->max_batch)
        return execute_call(m, &c);
    return infer_batched(m, &c);
}

long model_batch_delay_us(const struct model *m)
{
    return atomic_load(&m->batching) ? m->delay_us : -1;
}
