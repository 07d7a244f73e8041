/* A training run (job_train.h): the loop the job kinds "train" and "diversity" share.
 *
 * Each epoch is one pass of the loader over the training split, shuffled by (seed, epoch) and
 * with the last short batch dropped, as PyTorch's usual training DataLoader(shuffle=True,
 * drop_last=True): the plan is compiled for one batch shape. Per batch: the forward pass in
 * training mode, cross-entropy with label smoothing, the backward pass, clipping, the schedule's
 * rate for the step, the optimiser's step and the EMA's update (engine/train/README.md). The run
 * is p->steps steps long (the schedule's length): whole epochs, or a step count whose last epoch
 * stops where the count ends (its batches the first ones of that epoch's order).
 *
 * The checkpoint, after every epoch, is a binary file in the job's folder (every parameter and
 * buffer, the optimiser's and the EMA's state, the plan's step: job_train_state.c) and the JSON
 * that names it with the epoch, the step and the metrics so far, committed after the file. The
 * file alternates between two names with the job's checkpoints, so the one the last JSON names is
 * never overwritten, and a resume checks the file's step against the JSON's. The loader's batches
 * are a function of (seed, epoch) and the engine's arithmetic of the values and the thread count,
 * so a run resumed at an epoch boundary ends with the weights of an uninterrupted run on as many
 * threads, bit for bit. Work done after the last checkpoint (part of an epoch) is done again.
 *
 * A repository model is fine-tuned the same way (train.h's "Fine-tuning"): its graph copied,
 * or given a new head drawn from the seed, with the parameters "freeze" names kept fixed, fed
 * with its own preprocess; the loss takes its output as logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/dataset.h"
#include "job_kind.h"
#include "job_train.h"
#include "models.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The argmax of a row, the lower index on ties. */
static size_t argmax(const float *row, size_t n)
{
    size_t top = 0;
    for (size_t k = 1; k < n; k++)
        if (row[k] > row[top]) top = k;
    return top;
}

static size_t correct_count(const float *logits, const int32_t *labels, size_t n, size_t classes)
{
    size_t correct = 0;
    for (size_t i = 0; i < n; i++)
        correct += argmax(logits + i * classes, classes) == (size_t)labels[i];
    return correct;
}

/* The graph to train: the zoo model built from the seed, or the repository model's copied,
 * with a new head drawn from the seed when asked, so every attempt of the job rebuilds the same
 * graph. *frozen lists the parameters kept fixed (the "freeze" form on that graph). */
static int train_graph(struct job_train_run *r, const char ***frozen, size_t *n_frozen,
                       struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    if (!p->data.model) return (r->graph = train_zoo_build(&p->model, p->data.seed, err)) ? 0 : -1;
    const struct nn_graph *g = model_graph(p->data.model);
    r->graph = p->new_head ? train_model_new_head(g, p->new_head, p->data.seed, err)
                           : train_model_copy(g, err);
    return r->graph ? train_model_frozen(r->graph, p->freeze, frozen, n_frozen, err) : -1;
}

/* The model, its plans, optimiser and EMA, from the params. */
int job_train_run_open(struct job_train_run *r, struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    const char **frozen = NULL;
    size_t n_frozen = 0;
    if ((p->data.model && job_train_base_sha256(p, r->base_sha256, err)) ||
        train_graph(r, &frozen, &n_frozen, err))
        return -1;
    struct train_plan_options o = {.threads = job_ctx_threads(r->ctx),
                                   .seed = p->data.seed,
                                   .frozen = frozen,
                                   .n_frozen = n_frozen};
    struct nn_tensor_info forward = p->input;
    forward.dims[0] = (int64_t)p->forward_batch;
    int rc = (r->plan = train_plan_compile(r->graph, &forward, &o, err)) &&
                     (!p->val || (r->eval = train_plan_compile(r->graph, &p->input, &o, err)))
                 ? 0
                 : -1;
    free(frozen);
    if (rc) return -1;
    r->n_params = train_plan_param_count(r->plan);
    r->n_buffers = train_plan_buffer_count(r->plan);
    r->classes = p->classes;
    struct train_param *params = train_plan_param(r->plan, 0);
    struct train_param *buffers = train_plan_buffer(r->plan, 0);
    if (!(r->optim = train_optim_create(&p->optim, params, r->n_params, err)) ||
        (p->ema > 0 &&
         !(r->ema = train_ema_create(params, r->n_params, buffers, r->n_buffers, p->ema, err))))
        return -1;
    size_t input = (size_t)(p->input.dims[1] * p->input.dims[2] * p->input.dims[3]);
    r->dlogits = malloc(p->forward_batch * r->classes * sizeof *r->dlogits);
    r->inputs = calloc(p->batch * input, sizeof *r->inputs);
    r->labels = malloc(p->batch * sizeof *r->labels);
    r->metrics = json_array();
    if (r->targets) r->probs = malloc(p->batch * r->classes * sizeof *r->probs);
    return r->dlogits && r->inputs && r->labels && r->metrics && (!r->targets || r->probs)
               ? 0
               : eng_no_memory(err);
}

/* b's labels as the model's classes: the dataset's, through the class map when the dataset's
 * classes were matched to a fine-tuned model's labels. */
static const int32_t *model_labels(struct job_train_run *r, const struct data_batch *b)
{
    const int32_t *map = r->p->data.class_map;
    if (!map) return b->labels;
    for (size_t i = 0; i < b->size; i++)
        r->labels[i] = map[b->labels[i]];
    return r->labels;
}

/* One training step on batch b. */
static int step(struct job_train_run *r, const struct data_batch *b, long k, double *loss,
                size_t *correct, struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    struct train_param *params = train_plan_param(r->plan, 0);
    const float *logits;
    const int32_t *labels = model_labels(r, b);
    struct train_targets targets = {.labels = r->targets ? NULL : labels, .probs = r->probs};
    double total_norm;
    memset(r->dlogits, 0, p->batch * r->classes * sizeof *r->dlogits);
    if ((r->targets && r->targets(r, b, r->probs, err)) ||
        train_plan_forward(r->plan, b->inputs, true, &logits, err) ||
        train_loss_cross_entropy(logits, b->size, r->classes, &targets, p->label_smoothing, NULL,
                                 loss, r->dlogits, err))
        return -1;
    *correct += correct_count(logits, labels, b->size, r->classes);
    return train_plan_backward(r->plan, r->dlogits, NULL, err) ||
                   (p->clip > 0 &&
                    train_clip_grad_norm(params, r->n_params, p->clip, &total_norm, err)) ||
                   train_optim_step(r->optim, params, r->n_params,
                                    train_schedule_lr(&p->schedule, k, p->steps), err) ||
                   (r->ema && train_ema_update(r->ema, params, r->n_params,
                                               train_plan_buffer(r->plan, 0), r->n_buffers, err))
               ? -1
               : 0;
}

/* A pass of the loader over split (for training: shuffled by the epoch, the last short batch
 * dropped) with policy (NULL: none); fn per batch, for at most limit batches. */
typedef int (*batch_fn)(struct job_train_run *r, const struct data_batch *b, double *loss,
                        size_t *correct, struct eng_error *err);

static int pass(struct job_train_run *r, const struct data_split *split, int training,
                const struct policy *policy, batch_fn fn, size_t limit, double *loss,
                size_t *correct, size_t *count, struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    struct data_loader_options o = {.dataset = p->data.dataset,
                                    .split = split,
                                    .policy = policy,
                                    .preprocess = &p->preprocess,
                                    .seed = p->data.seed,
                                    .epoch = training ? (uint32_t)r->epoch : 0,
                                    .batch = p->batch,
                                    .shuffle = training,
                                    .drop_last = training,
                                    .threads = job_ctx_threads(r->ctx)};
    struct data_loader *l = data_loader_new(&o, err);
    if (!l) return -1;
    struct data_batch b;
    int rc = 0, got = 0;
    *loss = 0;
    *correct = *count = 0;
    for (size_t n = 0; n < limit && (rc = job_ctx_cancelled(r->ctx, err)) == 0 &&
                       (got = data_loader_next(l, &b, err)) == 1;
         n++) {
        double batch_loss;
        if ((rc = fn(r, &b, &batch_loss, correct, err)) != 0) break;
        *loss += batch_loss * (double)b.size;
        *count += b.size;
    }
    if (rc == 0 && got < 0) rc = -1;
    data_loader_free(l);
    return rc;
}

/* The optimiser steps done once r->epoch epochs are: the last epoch ends where the steps do. */
static long steps_done(const struct job_train_run *r)
{
    long k = r->epoch * (long)r->p->batches;
    return k < r->p->steps ? k : r->p->steps;
}

/* The job's progress for a fraction done of this run. */
static double progress(const struct job_train_run *r, double done)
{
    return r->progress_base + r->progress_span * done;
}

static int train_batch(struct job_train_run *r, const struct data_batch *b, double *loss,
                       size_t *correct, struct eng_error *err)
{
    long k = r->epoch * (long)r->p->batches + (long)b->number;
    if (r->step ? r->step(r, b, model_labels(r, b), k, loss, correct, err)
                : step(r, b, k, loss, correct, err))
        return -1;
    job_ctx_progress(r->ctx, progress(r, (double)(k + 1) / (double)r->p->steps), r->phase);
    return 0;
}

/* An evaluation batch: a short last batch is padded with zeros, whose rows are not read (in eval
 * mode a sample's logits depend on it alone). */
static int eval_batch(struct job_train_run *r, const struct data_batch *b, double *loss,
                      size_t *correct, struct eng_error *err)
{
    size_t input = (size_t)b->channels * (size_t)b->height * (size_t)b->width;
    memcpy(r->inputs, b->inputs, b->size * input * sizeof *r->inputs);
    memset(r->inputs + b->size * input, 0, (r->p->batch - b->size) * input * sizeof *r->inputs);
    const float *logits;
    const int32_t *labels = model_labels(r, b);
    struct train_targets targets = {.labels = labels};
    if (train_plan_forward(r->eval, r->inputs, false, &logits, err) ||
        train_loss_cross_entropy(logits, b->size, r->classes, &targets, 0, NULL, loss, NULL, err))
        return -1;
    *correct += correct_count(logits, labels, b->size, r->classes);
    return 0;
}

/* The evaluation plan's values: the EMA's when it is on, else the trained ones. */
static int eval_values(struct job_train_run *r, struct eng_error *err)
{
    if (!r->ema) return train_plan_copy_values(r->eval, r->plan, err);
    for (size_t i = 0; i < r->n_params + r->n_buffers; i++) {
        struct train_param *t = i < r->n_params ? train_plan_param(r->eval, i)
                                                : train_plan_buffer(r->eval, i - r->n_params);
        memcpy(t->value, train_ema_value(r->ema, i), t->count * sizeof *t->value);
    }
    return 0;
}

int job_train_run_classify(struct job_train_run *r, const float *inputs, const float **logits,
                           struct eng_error *err)
{
    return eval_values(r, err) || train_plan_forward(r->eval, inputs, false, logits, err) ? -1 : 0;
}

int job_train_run_evaluate(struct job_train_run *r, const struct policy *policy, double *loss,
                           double *accuracy, size_t *count, struct eng_error *err)
{
    size_t correct;
    if (eval_values(r, err) ||
        pass(r, r->p->val, 0, policy, eval_batch, SIZE_MAX, loss, &correct, count, err))
        return -1;
    *loss = *count ? *loss / (double)*count : NAN;
    *accuracy = *count ? (double)correct / (double)*count : NAN;
    return 0;
}

json_t *job_train_number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

double job_train_real(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

double job_train_metric(const json_t *row, const char *name)
{
    return job_train_real(json_object_get(row, name));
}

/* metrics.csv's columns: members of an epoch's metrics. */
static const char *const columns[] = {"epoch",    "train_loss",   "train_accuracy",
                                      "val_loss", "val_accuracy", "images_per_second",
                                      "lr",       "steps"};
#define COLUMNS (sizeof columns / sizeof columns[0])

/* Column c of metrics.csv: train's, then the kind's extra ones; NULL past the last. */
static const char *column(const struct job_train_run *r, size_t c)
{
    if (c < COLUMNS) return columns[c];
    return r->extra_columns ? r->extra_columns[c - COLUMNS] : NULL;
}

int job_train_run_csv(const struct job_train_run *r, const char *name, struct eng_error *err)
{
    size_t n = json_array_size(r->metrics), size = 0;
    char *csv = NULL;
    FILE *f = open_memstream(&csv, &size);
    if (!f) return eng_no_memory(err);
    for (size_t c = 0; column(r, c); c++)
        fprintf(f, "%s%s", c ? "," : "", column(r, c));
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(r->metrics, i);
        for (size_t c = 0; column(r, c); c++) {
            double v = job_train_metric(row, column(r, c));
            if (c) fputc(',', f);
            if (isfinite(v)) fprintf(f, "%.17g", v);
        }
        fputc('\n', f);
    }
    int rc = fclose(f) == 0 ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_artifact(r->ctx, name, csv, size, err);
    free(csv);
    return rc;
}

/* The checkpoint files, in the job's folder: state-even-a<attempt>.ckpt and
 * state-odd-a<attempt>.ckpt alternate with the job's checkpoints, so a save never replaces the file
 * the last committed checkpoint names; and each attempt has its own two, so a process that lost the
 * job's lease (job_store.h) and saves on never replaces a file of the attempt that replaced it. The
 * names below are the files older versions wrote (the first two without an attempt; the others one
 * per run, overwritten each epoch), which a job checkpointed by one still names when it resumes
 * after an upgrade. */
static const char *const state_files[] = {
    "state-even.ckpt",     "state-odd.ckpt", "train.ckpt",  "with-policy.ckpt",
    "without-policy.ckpt", "even-run.ckpt",  "odd-run.ckpt"};
#define STATE_FILES (sizeof state_files / sizeof state_files[0])

int job_train_folder_path(struct job_ctx *ctx, const char *file, char *path, size_t size,
                          struct eng_error *err)
{
    const char *artifacts = job_ctx_artifacts(ctx, err);
    if (!artifacts) return -1;
    const char *slash = strrchr(artifacts, '/');
    int n = snprintf(path, size, "%.*s/%s", (int)(slash ? slash - artifacts : 0), artifacts, file);
    return n > 0 && (size_t)n < size
               ? 0
               : eng_fail(err, ENG_INTERNAL, "the job's folder path is too long");
}

static void remove_state(struct job_ctx *ctx, const char *file)
{
    struct eng_error ignored = {0};
    char path[4096];
    if (job_train_folder_path(ctx, file, path, sizeof path, &ignored) == 0) remove(path);
}

/* The name of the checkpoint file of parity n % 2 of attempt `attempt`, into out. */
static const char *attempt_state(long n, int attempt, char out[48])
{
    snprintf(out, 48, "state-%s-a%d.ckpt", n % 2 ? "odd" : "even", attempt);
    return out;
}

/* This attempt's files and those of the attempts before it (a later one's are not this one's to
 * remove: it may be running now, the lease of this one lost), with the temporary file a kill
 * during a checkpoint's write leaves (job_train_state_save's ".tmp"). */
void job_train_remove_states(struct job_ctx *ctx)
{
    char name[48], temporary[56];
    for (size_t i = 0; i < STATE_FILES; i++)
        remove_state(ctx, state_files[i]);
    for (int attempt = 1; attempt <= job_ctx_attempt(ctx); attempt++)
        for (long n = 0; n < 2; n++) {
            remove_state(ctx, attempt_state(n, attempt, name));
            snprintf(temporary, sizeof temporary, "%s.tmp", name);
            remove_state(ctx, temporary);
        }
}

/* The checkpoint after epoch r->epoch: the file, then the JSON naming it with its step (and
 * r->extra's members), then the file the checkpoint before named is removed. A kill between the
 * two writes leaves the last JSON with the file it names untouched: the resumed run does the epoch
 * again, as it does one killed during its training. */
static int checkpoint(struct job_train_run *r, struct eng_error *err)
{
    long n = r->first_checkpoint + r->epoch;
    char file[48], other[48];
    attempt_state(n, job_ctx_attempt(r->ctx), file);
    char path[4096];
    if (job_train_folder_path(r->ctx, file, path, sizeof path, err) ||
        job_train_state_save(path, r->plan, r->optim, r->ema, err))
        return -1;
    json_t *state = json_pack("{s:I, s:I, s:s, s:O, s:f, s:s}", "epoch", (json_int_t)r->epoch,
                              "step", (json_int_t)train_plan_step(r->plan), "file", file, "metrics",
                              r->metrics, "seconds", r->seconds, "base_sha256", r->base_sha256);
    int rc = state && (!r->extra || json_object_update(state, r->extra) == 0)
                 ? job_ctx_checkpoint(r->ctx, state,
                                      progress(r, (double)steps_done(r) / (double)r->p->steps),
                                      r->phase, err)
                 : eng_no_memory(err);
    json_decref(state);
    if (rc == 0) remove_state(r->ctx, attempt_state(n + 1, job_ctx_attempt(r->ctx), other));
    return rc;
}

/* Whether name is one of the checkpoint files. */
static int state_file_known(const char *name)
{
    for (size_t i = 0; i < STATE_FILES; i++)
        if (strcmp(name, state_files[i]) == 0) return 1;
    int attempt = 0, end = 0;
    return (sscanf(name, "state-even-a%d.ckpt%n", &attempt, &end) == 1 ||
            sscanf(name, "state-odd-a%d.ckpt%n", &attempt, &end) == 1) &&
           attempt > 0 && end > 0 && name[end] == '\0';
}

int job_train_run_restore(struct job_train_run *r, const json_t *saved, struct eng_error *err)
{
    json_int_t epoch, step;
    const char *file;
    json_t *metrics;
    if (json_unpack((json_t *)saved, "{s:I, s:I, s:s, s:o, s:F}", "epoch", &epoch, "step", &step,
                    "file", &file, "metrics", &metrics, "seconds", &r->seconds) != 0 ||
        epoch < 1 || epoch > r->p->epochs || step < 0 || !state_file_known(file) ||
        !json_is_array(metrics))
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not this job's");
    /* The graph is rebuilt from the repository model at each attempt: one changed meanwhile
     * would take weights of another shape, or train on from values the job never made. */
    const char *base = json_string_value(json_object_get(saved, "base_sha256"));
    if (strcmp(base ? base : "", r->base_sha256) != 0)
        return eng_fail(err, ENG_CONFLICT,
                        "model %s changed since the job's checkpoint (SHA-256 %.64s, now %s); "
                        "start a new job",
                        r->p->data.model_name, base ? base : "none", r->base_sha256);
    char path[4096];
    if (job_train_folder_path(r->ctx, file, path, sizeof path, err) ||
        job_train_state_load(path, (uint64_t)step, r->plan, r->optim, r->ema, err))
        return -1;
    json_decref(r->metrics);
    r->metrics = json_deep_copy(metrics);
    r->epoch = (long)epoch;
    job_ctx_log(r->ctx, "resuming after epoch %ld of %ld (%s)", r->epoch, r->p->epochs, r->phase);
    return r->metrics ? 0 : eng_no_memory(err);
}

/* A metric event, named with the run's prefix. */
static void metric(struct job_train_run *r, const char *name, double value)
{
    char full[96];
    snprintf(full, sizeof full, "%s%s", r->metric_prefix ? r->metric_prefix : "", name);
    job_ctx_metric(r->ctx, full, value, r->epoch);
}

/* One epoch: training (the batches left of the run's steps, at most the split's), evaluation when
 * it is due, events, artifacts, checkpoint. */
static int epoch(struct job_train_run *r, struct eng_error *err)
{
    const struct job_train_params *p = r->p;
    double start = now(), loss, val_loss = NAN, val_accuracy = NAN;
    size_t correct, count;
    long k = steps_done(r);
    double lr = train_schedule_lr(&p->schedule, k, p->steps);
    if (pass(r, p->data.split, 1, r->policy, train_batch, (size_t)(p->steps - k), &loss, &correct,
             &count, err))
        return -1;
    double train_seconds = now() - start, images_per_second = (double)count / train_seconds;
    double train_loss = loss / (double)count, train_accuracy = (double)correct / (double)count;
    r->epoch++;
    size_t val_count;
    if (r->eval && (r->epoch % p->eval_every == 0 || r->epoch == p->epochs) &&
        job_train_run_evaluate(r, NULL, &val_loss, &val_accuracy, &val_count, err))
        return -1;
    double seconds = now() - start;
    r->seconds += seconds;
    /* This epoch's time per step, for the steps left. */
    double eta = seconds * (double)(p->steps - steps_done(r)) / (double)(steps_done(r) - k);
    json_t *row = json_pack(
        "{s:I, s:I, s:f, s:f, s:o, s:o, s:f, s:f, s:f}", "epoch", (json_int_t)r->epoch, "steps",
        (json_int_t)steps_done(r), "train_loss", train_loss, "train_accuracy", train_accuracy,
        "val_loss", job_train_number(val_loss), "val_accuracy", job_train_number(val_accuracy),
        "images_per_second", images_per_second, "lr", lr, "seconds", seconds);
    if (!row) return eng_no_memory(err);
    if (r->epoch_end && r->epoch_end(r, row, err)) {
        json_decref(row);
        return -1;
    }
    if (json_array_append_new(r->metrics, row)) return eng_no_memory(err);
    metric(r, "train_loss", train_loss);
    metric(r, "train_accuracy", train_accuracy);
    if (isfinite(val_loss)) {
        metric(r, "val_loss", val_loss);
        metric(r, "val_accuracy", val_accuracy);
    }
    metric(r, "images_per_second", images_per_second);
    metric(r, "eta_seconds", eta);
    /* An epoch without evaluation says so, rather than "val loss nan". */
    char val[96] = "not evaluated";
    if (isfinite(val_loss))
        snprintf(val, sizeof val, "loss %.4f accuracy %.4f", val_loss, val_accuracy);
    job_ctx_log(r->ctx,
                "%s, epoch %ld/%ld: train loss %.4f accuracy %.4f, val %s, %.1f images/s, "
                "ETA %.0f s",
                r->phase, r->epoch, p->epochs, train_loss, train_accuracy, val, images_per_second,
                eta);
    return (r->artifacts && r->artifacts(r, err)) || checkpoint(r, err) ? -1 : 0;
}

int job_train_run_epochs(struct job_train_run *r, struct eng_error *err)
{
    while (r->epoch < r->p->epochs && !r->stop)
        if (epoch(r, err)) return -1;
    return 0;
}

void job_train_run_close(struct job_train_run *r)
{
    train_ema_free(r->ema);
    train_optim_free(r->optim);
    train_plan_free(r->eval);
    train_plan_free(r->plan);
    nn_graph_free(r->graph);
    free(r->dlogits);
    free(r->probs);
    free(r->inputs);
    free(r->labels);
    json_decref(r->metrics);
}
