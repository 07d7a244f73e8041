/* The runs of a model's network: plans compiled per input shape and cached with the model, the
 * execution model_infer asks for, and the backbone runs that hand LPIPS its taps. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Plans cached per model, one per input shape seen, at most MAX_PLANS; past that a request
 * compiles a plan for itself. */
#define MAX_PLANS 16

struct cached_plan {
    struct nn_tensor_info *shapes; /* nn_graph_input_count entries; names unused */
    struct nn_plan *plan;
    pthread_mutex_t run_lock; /* a plan runs one call at a time (nn.h) */
    int tapped;               /* returns the perceptual taps after the outputs */
    struct cached_plan *next;
};

int model_same_shapes(const struct nn_tensor_info *a, const struct nn_tensor_info *b, size_t n,
                      int from_dim)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].rank != b[i].rank) return 0;
        for (int d = from_dim; d < a[i].rank; d++)
            if (a[i].dims[d] != b[i].dims[d]) return 0;
    }
    return 1;
}

struct nn_plan *model_compile(const struct model *m, const struct nn_tensor_info *shapes,
                              int tapped, struct eng_error *err)
{
    struct nn_plan_options options = {.threads = m->settings.threads,
                                      .direct_convolution = m->settings.direct_convolution,
                                      .max_bytes = m->settings.max_plan_bytes};
    if (tapped) {
        options.taps = m->perceptual.taps;
        options.n_taps = m->perceptual.n_taps;
    }
    return nn_plan_compile_with(m->graph, shapes, nn_graph_input_count(m->graph), &options, err);
}

/* The cached plan for these shapes, compiling and caching it on first use. NULL with *failed set
 * (and err) when compiling fails; NULL with *failed 0 when the cache is full or memory for an
 * entry runs out, so the caller compiles an uncached plan. Compiling happens under plans_lock, so
 * concurrent first requests for one shape compile it once. */
static struct cached_plan *cached_plan(struct model *m, const struct nn_tensor_info *shapes,
                                       int tapped, int *failed, struct eng_error *err)
{
    *failed = 0;
    size_t n = nn_graph_input_count(m->graph);
    pthread_mutex_lock(&m->plans_lock);
    struct cached_plan *c = m->plans;
    while (c && (c->tapped != tapped || !model_same_shapes(c->shapes, shapes, n, 0)))
        c = c->next;
    if (!c && m->n_plans < MAX_PLANS && (c = calloc(1, sizeof *c))) {
        c->shapes = malloc((n ? n : 1) * sizeof *c->shapes);
        if (c->shapes) {
            memcpy(c->shapes, shapes, n * sizeof *shapes);
            c->plan = model_compile(m, shapes, tapped, err);
            c->tapped = tapped;
            *failed = !c->plan;
        }
        if (c->plan) {
            pthread_mutex_init(&c->run_lock, NULL);
            c->next = m->plans;
            m->plans = c;
            m->n_plans++;
        } else {
            free(c->shapes);
            free(c);
            c = NULL;
        }
    }
    pthread_mutex_unlock(&m->plans_lock);
    return c;
}

/* One execution of the network. Plans are cached per (model, input shapes) and freed with the
 * model; a cached plan may run on any worker thread because the executor owns its scratchpad
 * (dnnl_scratchpad_mode_user; oneDNN's default per-thread library scratchpad crashed when a plan
 * ran on a thread other than the one that compiled it). Runs of one plan are serialised by its
 * run_lock, as nn.h asks; requests for different shapes or models run in parallel. */
typedef int (*plan_fn)(struct nn_plan *plan, void *arg, struct eng_error *err);

/* Runs fn on the plan for these shapes (with the perceptual taps when tapped): the cached one,
 * under its run lock, so whatever fn reads of the plan's memory stays put; or, when the cache is
 * full, one compiled for this call. */
static int with_plan(struct model *m, const struct nn_tensor_info *shapes, int tapped, plan_fn fn,
                     void *arg, struct eng_error *err)
{
    atomic_fetch_add(&m->executions, 1);
    int failed;
    struct cached_plan *c = cached_plan(m, shapes, tapped, &failed, err);
    if (c) {
        pthread_mutex_lock(&c->run_lock);
        int rc = fn(c->plan, arg, err);
        pthread_mutex_unlock(&c->run_lock);
        return rc;
    }
    if (failed) return -1;
    struct nn_plan *plan = model_compile(m, shapes, tapped, err);
    if (!plan) return -1;
    int rc = fn(plan, arg, err);
    nn_plan_free(plan);
    return rc;
}

int model_flops(struct model *m, const struct nn_tensor_info *shapes, double *flops,
                struct eng_error *err)
{
    int failed;
    struct cached_plan *c = cached_plan(m, shapes, 0, &failed, err);
    if (c) {
        /* Set when the plan was compiled and never changed after: no run lock needed. */
        *flops = nn_plan_flops(c->plan);
        return 0;
    }
    if (failed) return -1;
    struct nn_plan *plan = model_compile(m, shapes, 0, err);
    if (!plan) return -1;
    *flops = nn_plan_flops(plan);
    nn_plan_free(plan);
    return 0;
}

/* One execution without taps: what model_infer runs. */
struct execution {
    const float *const *inputs;
    float **outputs;
    struct nn_tensor_info *output_info;
};

static int run_copying(struct nn_plan *plan, void *arg, struct eng_error *err)
{
    struct execution *e = arg;
    return nn_plan_run(plan, e->inputs, e->outputs, e->output_info, err);
}

int model_execute(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                  float **outputs, struct nn_tensor_info *output_info, struct eng_error *err)
{
    struct execution e = {inputs, outputs, output_info};
    return with_plan(m, shapes, 0, run_copying, &e, err);
}

/* Compiles (and caches) the plan for batch 1 when the inputs are static apart from the batch, so
 * an unsupported op or inconsistent shapes make the model unavailable at load, not at its first
 * request. */
int model_compile_batch_of_one(struct model *m, struct eng_error *err)
{
    size_t n = nn_graph_input_count(m->graph);
    struct nn_tensor_info *shapes = calloc(n + 1, sizeof *shapes);
    if (!shapes) return eng_no_memory(err);
    int known = 1;
    for (size_t i = 0; i < n; i++) {
        shapes[i] = *nn_graph_input(m->graph, i);
        if (shapes[i].rank > 0 && shapes[i].dims[0] < 0) shapes[i].dims[0] = 1;
        known &= shapes[i].rank >= 0;
        for (int d = 0; d < shapes[i].rank; d++)
            known &= shapes[i].dims[d] >= 0;
    }
    struct eng_error compiled = {0};
    int failed = 0;
    if (known) cached_plan(m, shapes, 0, &failed, &compiled);
    free(shapes);
    return failed ? eng_fail(err, compiled.code, "model.onnx: %s", compiled.message) : 0;
}

struct tap_visit {
    const struct model *m;
    const float *input;
    model_taps_fn fn;
    void *ctx;
};

/* Runs the plan on the input with the taps left in place, and hands them to the visitor. */
static int visit_taps(struct nn_plan *plan, void *arg, struct eng_error *err)
{
    const struct tap_visit *v = arg;
    size_t n_out = nn_plan_output_count(plan);
    const float **outputs = calloc(n_out, sizeof *outputs);
    struct nn_tensor_info *info = calloc(n_out, sizeof *info);
    size_t first = n_out - v->m->perceptual.n_taps;
    int rc = outputs && info ? nn_plan_run_borrowed(plan, &v->input, outputs, info, err)
                             : eng_fail(err, ENG_NO_MEMORY, "out of memory for the taps");
    if (rc == 0) rc = v->fn(v->ctx, outputs + first, info + first, err);
    free(outputs);
    free(info);
    return rc;
}

int model_features_visit(struct model *m, const float *input, const struct nn_tensor_info *shape,
                         model_taps_fn fn, void *ctx, struct eng_error *err)
{
    if (!m->has_perceptual)
        return eng_fail(err, ENG_INVALID, "model %s has no perceptual config", m->name);
    atomic_fetch_add(&m->requests, 1);
    struct tap_visit v = {m, input, fn, ctx};
    return with_plan(m, shape, 1, visit_taps, &v, err);
}

void model_free_plans(struct model *m)
{
    for (struct cached_plan *c = m->plans, *next; c; c = next) {
        next = c->next;
        nn_plan_free(c->plan);
        pthread_mutex_destroy(&c->run_lock);
        free(c->shapes);
        free(c);
    }
}

struct model_stats model_stats(const struct model *m)
{
    return (struct model_stats){atomic_load(&m->requests), atomic_load(&m->executions)};
}

const char *models_datatype_name(enum nn_dtype dtype)
{
    switch (dtype) {
    case NN_UINT8:
        return "UINT8";
    case NN_INT8:
        return "INT8";
    case NN_INT32:
        return "INT32";
    case NN_INT64:
        return "INT64";
    case NN_BOOL:
        return "BOOL";
    case NN_DOUBLE:
        return "FP64";
    default:
        return "FP32"; /* NN_FLOAT, and undeclared types, which the executor runs as FP32 */
    }
}
