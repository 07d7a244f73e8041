/* The job kind "diversity" (Gontijo-Lopes et al. 2020, "Affinity and Diversity"): the same model
 * (a zoo model, or a repository model fine-tuned) trained twice on a dataset split, with the policy
 * and without it, with the same seed, budget and hyperparameters (job_train_run.c's run, both
 * times). Diversity is the final training loss with the policy divided by the final training loss
 * without it: a policy that makes the training images harder to fit scores above 1.
 *
 * "Final training loss" is the mean cross-entropy over the batches of the last epoch, each taken
 * as the batch was trained on (the model changing through the epoch), on the augmented images for
 * the run with the policy: the figure PyTorch's usual training loop logs for the epoch, and the
 * paper's "final training loss". The loader's batch order is a function of (seed, epoch) alone
 * (data/loader.h), so both runs see the same images in the same order, and the policy is all
 * that differs: with Identity the two runs are the same computation and diversity is exactly 1.
 *
 * The runs are two phases of one job, each checkpointed after every epoch (the run's files
 * alternating with the job's checkpoints, across the two runs); the checkpoint's JSON names the
 * phase, and the second phase's carries the first run's metrics, so a
 * resumed job continues inside the right run and ends with an uninterrupted job's numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_chart.h"
#include "job_kind.h"
#include "job_train.h"

enum { WITH, WITHOUT, RUNS };

/* Per run: the phase's name (checkpoint JSON, metric events' prefix), metrics artifact and
 * progress message. */
static const struct {
    const char *name, *csv, *phase, *prefix;
} runs[RUNS] = {
    {"with_policy", "metrics-with-policy.csv", "training with the policy", "with_policy."},
    {"without_policy", "metrics-without-policy.csv", "training without the policy",
     "without_policy."},
};

struct diversity {
    struct job_train_params p;
    json_t *metrics[RUNS]; /* each run's per-epoch metrics so far (references) */
    double seconds[RUNS];
};

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct job_train_params p;
    int rc = job_train_params_open(&p, app, params, JOB_TRAIN_FOR_DIVERSITY, err);
    job_train_params_close(&p);
    return rc;
}

/* The run's index: the one without a policy is the second. */
static int which(const struct job_train_run *r)
{
    return r->policy ? WITH : WITHOUT;
}

/* The run's metrics CSV and loss.png: both runs' training loss per epoch (blue with the policy,
 * red without), an epoch not trained yet left out. */
static int write_artifacts(struct job_train_run *r, struct eng_error *err)
{
    struct diversity *d = r->user;
    int w = which(r);
    long n = d->p.epochs;
    json_decref(d->metrics[w]);
    d->metrics[w] = json_incref(r->metrics);
    double *curves = malloc(RUNS * (size_t)n * sizeof *curves);
    if (!curves) return eng_no_memory(err);
    for (int s = 0; s < RUNS; s++)
        for (long i = 0; i < n; i++)
            curves[s * n + i] =
                job_train_metric(json_array_get(d->metrics[s], (size_t)i), "train_loss");
    void *png = NULL;
    size_t png_size;
    const double *series[RUNS] = {curves, curves + n};
    int rc = job_train_run_csv(r, runs[w].csv, err);
    if (rc == 0) rc = job_chart_curves(series, RUNS, (size_t)n, &png, &png_size, err);
    if (rc == 0) rc = job_classify_write_artifact(r->ctx, "loss.png", png, png_size, err);
    free(png);
    free(curves);
    return rc;
}

/* Run w whole, from saved (its own checkpoint's JSON) when not NULL. */
static int train(struct diversity *d, struct job_ctx *ctx, int w, const json_t *saved,
                 struct eng_error *err)
{
    struct job_train_run r = {.ctx = ctx,
                              .p = &d->p,
                              .policy = w == WITH ? d->p.policy : NULL,
                              .first_checkpoint = w * d->p.epochs,
                              .phase = runs[w].phase,
                              .metric_prefix = runs[w].prefix,
                              .progress_base = 0.5 * w,
                              .progress_span = 0.5,
                              .artifacts = write_artifacts,
                              .user = d};
    r.extra = w == WITH ? json_pack("{s:s}", "phase", runs[w].name)
                        : json_pack("{s:s, s:{s:O, s:f}}", "phase", runs[w].name, runs[WITH].name,
                                    "metrics", d->metrics[WITH], "seconds", d->seconds[WITH]);
    int rc = r.extra ? 0 : eng_no_memory(err);
    if (rc == 0)
        rc = job_train_run_open(&r, err) || (saved && job_train_run_restore(&r, saved, err)) ||
                     job_train_run_epochs(&r, err)
                 ? -1
                 : 0;
    if (rc == 0) {
        json_decref(d->metrics[w]);
        d->metrics[w] = json_incref(r.metrics);
        d->seconds[w] = r.seconds;
    }
    json_decref(r.extra);
    job_train_run_close(&r);
    return rc;
}

/* A saved job in its second phase: the first run's metrics and time, from the checkpoint. */
static int restore_first(struct diversity *d, const json_t *saved, struct eng_error *err)
{
    json_t *metrics;
    if (json_unpack((json_t *)saved, "{s:{s:o, s:F}}", runs[WITH].name, "metrics", &metrics,
                    "seconds", &d->seconds[WITH]) != 0 ||
        json_array_size(metrics) != (size_t)d->p.epochs)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not diversity's");
    d->metrics[WITH] = json_incref(metrics);
    return 0;
}

static int finish(struct diversity *d, struct job_ctx *ctx, json_t **result, struct eng_error *err)
{
    double loss[RUNS], accuracy[RUNS];
    for (int w = 0; w < RUNS; w++) {
        const json_t *last = json_array_get(d->metrics[w], json_array_size(d->metrics[w]) - 1);
        loss[w] = job_train_metric(last, "train_loss");
        accuracy[w] = job_train_metric(last, "train_accuracy");
    }
    *result = json_pack("{s:o, s:f, s:f, s:f, s:f, s:I, s:I, s:f}", "diversity",
                        job_train_number(loss[WITH] / loss[WITHOUT]), "loss_with_policy",
                        loss[WITH], "loss_without_policy", loss[WITHOUT], "accuracy_with_policy",
                        accuracy[WITH], "accuracy_without_policy", accuracy[WITHOUT], "epochs",
                        (json_int_t)d->p.epochs, "steps", (json_int_t)d->p.steps,
                        "duration_seconds", d->seconds[WITH] + d->seconds[WITHOUT]);
    if (!*result) return eng_no_memory(err);
    job_ctx_log(ctx, "diversity %.6g: final training loss %.6g with the policy, %.6g without",
                loss[WITH] / loss[WITHOUT], loss[WITH], loss[WITHOUT]);
    return job_classify_write_result(ctx, *result, err);
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct diversity d = {0};
    const json_t *saved = job_ctx_restored(ctx);
    const char *phase = saved ? json_string_value(json_object_get(saved, "phase")) : NULL;
    int second = phase && strcmp(phase, runs[WITHOUT].name) == 0;
    int rc = job_train_params_open(&d.p, job_ctx_app(ctx), params, JOB_TRAIN_FOR_DIVERSITY, err);
    if (rc == 0)
        rc = (second ? restore_first(&d, saved, err) : train(&d, ctx, WITH, saved, err)) ||
                     train(&d, ctx, WITHOUT, second ? saved : NULL, err) ||
                     finish(&d, ctx, result, err)
                 ? -1
                 : 0;
    /* The checkpoint files are kept only for a job that will run again (as train's). */
    if (rc == 0 || !job_ctx_resumes(ctx)) job_train_remove_states(ctx);
    if (rc != 0 && *result) {
        json_decref(*result);
        *result = NULL;
    }
    for (int w = 0; w < RUNS; w++)
        json_decref(d.metrics[w]);
    job_train_params_close(&d.p);
    return rc;
}

const struct job_kind job_kind_diversity = {
    .name = "diversity",
    .help = "a model (of the zoo, or from the repository) trained twice on a dataset split, with "
            "the policy and without it: "
            "diversity is the ratio of the final training losses (Gontijo-Lopes et al. 2020)",
    .validate = validate,
    .run = run,
};
