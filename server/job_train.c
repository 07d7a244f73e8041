/* The job kind "train": a zoo model, or a repository model fine-tuned, trained on a dataset
 * split, evaluated on another, and registered in the model repository (job_train.h for its
 * params and the model; the training run, its epochs and checkpoints are job_train_run.c's,
 * shared with the kind "diversity"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "job_chart.h"
#include "job_kind.h"
#include "job_train.h"

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct job_train_params p;
    int rc = job_train_params_open(&p, app, params, JOB_TRAIN_FOR_TRAIN, err);
    job_train_params_close(&p);
    return rc;
}

/* metrics.csv and loss.png (train and val loss) from the metrics so far, rewritten whole. */
static int write_artifacts(struct job_train_run *r, struct eng_error *err)
{
    size_t n = json_array_size(r->metrics);
    double *curves = malloc(2 * n * sizeof *curves);
    if (!curves) return eng_no_memory(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(r->metrics, i);
        curves[i] = job_train_metric(row, "train_loss");
        curves[n + i] = job_train_metric(row, "val_loss");
    }
    void *png = NULL;
    size_t png_size;
    const double *series[2] = {curves, curves + n};
    int rc = job_train_run_csv(r, "metrics.csv", err);
    if (rc == 0) rc = job_chart_curves(series, 2, n, &png, &png_size, err);
    if (rc == 0) rc = job_classify_write_artifact(r->ctx, "loss.png", png, png_size, err);
    free(png);
    free(curves);
    return rc;
}

json_t *job_train_card(const struct job_train_run *r, const json_t *params)
{
    const struct job_train_params *p = r->p;
    json_t *policy = json_object_get(params, "policy");
    return json_pack(
        "{s:s?, s:s?, s:s, s:s, s:s, s:s?, s:O, s:I, s:O, s:O, s:I, s:f, s:i, s:s, s:s}",
        "base_model", p->data.model_name, "base_model_sha256",
        p->data.model ? r->base_sha256 : NULL, "dataset", p->data.dataset_id, "dataset_hash",
        dataset_hash(p->data.dataset), "split", p->data.split->name, "val_split",
        p->val ? p->val->name : NULL, "policy", policy ? policy : json_null(), "seed",
        (json_int_t)p->data.seed, "params", params, "metrics", r->metrics, "parameters",
        (json_int_t)train_model_parameter_count(r->graph), "duration_seconds", r->seconds,
        "threads", job_ctx_threads(r->ctx), "augserve_version", AUGSERVE_VERSION, "job",
        job_ctx_id(r->ctx));
}

/* Exports the model, registers it, and makes the job's result. */
static int finish(struct job_train_run *r, const json_t *params, json_t **result,
                  struct eng_error *err)
{
    void *onnx = NULL;
    size_t size;
    json_t *training = job_train_card(r, params);
    int rc = training ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_train_model_onnx(r->graph, r->plan, r->ema, &onnx, &size, err);
    if (rc == 0) rc = job_train_model_register(r->ctx, r->p, onnx, size, training, err);
    if (rc == 0) {
        const json_t *last = json_array_get(r->metrics, json_array_size(r->metrics) - 1);
        *result = json_pack("{s:s, s:I, s:I, s:I, s:O, s:f}", "model", r->p->output, "epochs",
                            (json_int_t)r->p->epochs, "steps", (json_int_t)r->p->steps,
                            "parameters", (json_int_t)train_model_parameter_count(r->graph),
                            "final", last, "duration_seconds", r->seconds);
        if (!*result) rc = eng_no_memory(err);
    }
    if (rc == 0) rc = job_classify_write_result(r->ctx, training, err);
    free(onnx);
    json_decref(training);
    return rc;
}

int job_train_kind_run(struct job_train_run *r, const json_t *params, json_t **result,
                       struct eng_error *err)
{
    const json_t *saved = job_ctx_restored(r->ctx);
    if (!r->artifacts) r->artifacts = write_artifacts;
    int rc = job_train_run_open(r, err) || (saved && job_train_run_restore(r, saved, err)) ||
                     job_train_run_epochs(r, err) || finish(r, params, result, err)
                 ? -1
                 : 0;
    /* The checkpoint file (the size of the model and its optimiser state) is kept only for a
     * job that will run again: one stopped with the server. */
    if (rc == 0 || !job_ctx_resumes(r->ctx)) job_train_remove_states(r->ctx);
    if (rc != 0 && *result) {
        json_decref(*result);
        *result = NULL;
    }
    job_train_run_close(r);
    return rc;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct job_train_params p;
    struct job_train_run r = {.ctx = ctx, .p = &p, .phase = "training", .progress_span = 1};
    int rc = job_train_params_open_job(&p, ctx, params, JOB_TRAIN_FOR_TRAIN, err);
    r.policy = p.policy;
    if (rc == 0)
        rc = job_train_kind_run(&r, params, result, err);
    else
        job_train_run_close(&r);
    job_train_params_close(&p);
    return rc;
}

const struct job_kind job_kind_train = {
    .name = "train",
    .help = "a zoo model trained on a dataset split (optionally under a policy), evaluated on "
            "another each epoch, and registered in the model repository",
    .validate = validate,
    .run = run,
};
