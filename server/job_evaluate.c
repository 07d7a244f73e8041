/* The job kind "evaluate": a repository model on a dataset split, optionally with a policy
 * applied to each image (keyed by the seed and the image's index): top-1 and top-5 accuracy, the
 * mean NLL, the expected calibration error with its reliability diagram, per-class accuracy and
 * the confusion matrix (metrics/classification.h). Images without a label are left out.
 *
 * The checkpoint, after every batch, is the next batch and every total of struct metric_eval, the
 * confusion matrix included (as its non-zero cells), so a resumed job ends with the numbers of
 * an uninterrupted one: the sums are taken in the same order and JSON keeps doubles exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "job_chart.h"
#include "job_classify.h"
#include "job_kind.h"
#include "metrics/classification.h"
#include "policy/policy.h"

static const char *const names[] = {"model", "dataset",    "split", "policy",
                                    "seed",  "batch_size", NULL};

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct job_classify jc = {0};
    struct policy *policy = NULL;
    int rc = job_params_known(params, names, err) || job_classify_open(&jc, app, params, 1, err) ||
                     job_classify_policy(json_object_get(params, "policy"), "policy", &policy, err)
                 ? -1
                 : 0;
    policy_free(policy);
    job_classify_close(&jc);
    return rc;
}

struct evaluate {
    struct job_ctx *ctx;
    struct job_classify jc;
    struct metric_eval e; /* classes 0 until the first batch */
    size_t batches;
};

static json_t *state_json(const struct metric_eval *e, size_t next)
{
    json_t *bins = json_array(), *confusion = json_array();
    for (size_t b = 0; bins && b < METRIC_ECE_BINS; b++)
        json_array_append_new(bins, json_pack("[I, I, f]", (json_int_t)e->bin_count[b],
                                              (json_int_t)e->bin_correct[b], e->bin_confidence[b]));
    for (size_t i = 0; confusion && i < e->classes * e->classes; i++)
        if (e->confusion[i])
            json_array_append_new(confusion, json_pack("[I, I, I]", (json_int_t)(i / e->classes),
                                                       (json_int_t)(i % e->classes),
                                                       (json_int_t)e->confusion[i]));
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:o}", "batch", (json_int_t)next,
                     "classes", (json_int_t)e->classes, "count", (json_int_t)e->count, "top1",
                     (json_int_t)e->top1, "top5", (json_int_t)e->top5, "nll", e->nll, "bins", bins,
                     "confusion", confusion);
}

/* The totals of a checkpoint into ev->e; *next the batch to go on from. */
static int restore(struct evaluate *ev, const json_t *saved, size_t *next, struct eng_error *err)
{
    json_int_t batch, classes, count, top1, top5;
    double nll;
    json_t *bins, *confusion;
    if (json_unpack((json_t *)saved, "{s:I, s:I, s:I, s:I, s:I, s:F, s:o, s:o}", "batch", &batch,
                    "classes", &classes, "count", &count, "top1", &top1, "top5", &top5, "nll", &nll,
                    "bins", &bins, "confusion", &confusion) != 0 ||
        classes < 1 || json_array_size(bins) != METRIC_ECE_BINS)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not evaluate's");
    if (job_classify_classes(&ev->jc, (size_t)classes, err) ||
        metric_eval_init(&ev->e, (size_t)classes, err))
        return -1;
    ev->e.count = (uint64_t)count;
    ev->e.top1 = (uint64_t)top1;
    ev->e.top5 = (uint64_t)top5;
    ev->e.nll = nll;
    for (size_t b = 0; b < METRIC_ECE_BINS; b++) {
        json_int_t n, correct;
        double confidence;
        if (json_unpack(json_array_get(bins, b), "[I, I, F]", &n, &correct, &confidence) != 0)
            return eng_fail(err, ENG_INTERNAL, "the checkpoint's bins are not evaluate's");
        ev->e.bin_count[b] = (uint64_t)n;
        ev->e.bin_correct[b] = (uint64_t)correct;
        ev->e.bin_confidence[b] = confidence;
    }
    size_t i;
    json_t *cell;
    json_array_foreach(confusion, i, cell)
    {
        json_int_t t, p, n;
        if (json_unpack(cell, "[I, I, I]", &t, &p, &n) != 0 || t < 0 || p < 0 || t >= classes ||
            p >= classes)
            return eng_fail(err, ENG_INTERNAL, "the checkpoint's confusion is not evaluate's");
        ev->e.confusion[t * classes + p] = (uint64_t)n;
    }
    *next = (size_t)batch;
    return 0;
}

static int on_batch(void *arg, const struct data_batch *b, const float *probs, size_t classes,
                    struct eng_error *err)
{
    struct evaluate *ev = arg;
    if (!ev->e.classes && metric_eval_init(&ev->e, classes, err) != 0) return -1;
    for (size_t i = 0; i < b->size; i++)
        if (b->labels[i] >= 0)
            metric_eval_add(&ev->e, probs + i * classes, (size_t)ev->jc.class_map[b->labels[i]]);
    json_t *state = state_json(&ev->e, b->number + 1);
    int rc = state ? job_ctx_checkpoint(ev->ctx, state, (double)(b->number + 1) / ev->batches,
                                        "evaluating", err)
                   : eng_no_memory(err);
    json_decref(state);
    return rc;
}

/* Model class m's row of the confusion matrix: its count and its correct ones. */
static void class_counts(const struct metric_eval *e, size_t m, uint64_t *count, uint64_t *correct)
{
    *count = 0;
    for (size_t p = 0; p < e->classes; p++)
        *count += e->confusion[m * e->classes + p];
    *correct = e->confusion[m * e->classes + m];
}

/* confusion.csv (rows: the dataset's classes, true; columns: the model's, predicted) and
 * per_class.csv, built in memory and written whole. */
static int write_tables(struct evaluate *ev, struct eng_error *err)
{
    const struct dataset *ds = ev->jc.dataset;
    char *text[2] = {NULL, NULL}, buf[32];
    size_t size[2];
    FILE *confusion = open_memstream(&text[0], &size[0]);
    FILE *per_class = confusion ? open_memstream(&text[1], &size[1]) : NULL;
    if (confusion) {
        fputs("true\\predicted", confusion);
        for (size_t p = 0; p < ev->e.classes; p++) {
            fputc(',', confusion);
            job_classify_csv_field(confusion, job_classify_class_name(&ev->jc, p, buf, sizeof buf));
        }
        fputc('\n', confusion);
    }
    if (per_class) fputs("class,count,correct,accuracy\n", per_class);
    for (size_t c = 0; per_class && c < dataset_class_count(ds); c++) {
        size_t m = (size_t)ev->jc.class_map[c];
        uint64_t count, correct;
        class_counts(&ev->e, m, &count, &correct);
        job_classify_csv_field(confusion, dataset_class_name(ds, c));
        for (size_t p = 0; p < ev->e.classes; p++)
            fprintf(confusion, ",%llu", (unsigned long long)ev->e.confusion[m * ev->e.classes + p]);
        fputc('\n', confusion);
        job_classify_csv_field(per_class, dataset_class_name(ds, c));
        fprintf(per_class, ",%llu,%llu,", (unsigned long long)count, (unsigned long long)correct);
        if (count) fprintf(per_class, "%.17g", (double)correct / (double)count);
        fputc('\n', per_class);
    }
    int ok = confusion && per_class;
    if (confusion && fclose(confusion) != 0) ok = 0;
    if (per_class && fclose(per_class) != 0) ok = 0;
    int rc = ok ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_artifact(ev->ctx, "confusion.csv", text[0], size[0], err);
    if (rc == 0) rc = job_classify_write_artifact(ev->ctx, "per_class.csv", text[1], size[1], err);
    free(text[0]);
    free(text[1]);
    return rc;
}

static json_t *per_class_json(const struct evaluate *ev)
{
    json_t *list = json_array();
    for (size_t c = 0; list && c < dataset_class_count(ev->jc.dataset); c++) {
        uint64_t count, correct;
        class_counts(&ev->e, (size_t)ev->jc.class_map[c], &count, &correct);
        json_array_append_new(
            list, json_pack("{s:s, s:I, s:I, s:o}", "class", dataset_class_name(ev->jc.dataset, c),
                            "count", (json_int_t)count, "correct", (json_int_t)correct, "accuracy",
                            count ? json_real((double)correct / (double)count) : json_null()));
    }
    return list;
}

/* A ratio of the totals, or null without samples. */
static json_t *share(double part, uint64_t count)
{
    return count ? json_real(part / (double)count) : json_null();
}

static json_t *result_json(const struct evaluate *ev, const json_t *params)
{
    const struct metric_eval *e = &ev->e;
    json_t *result = json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:i, s:o}", "model", ev->jc.model_name, "dataset",
        ev->jc.dataset_id, "split", ev->jc.split->name, "count", (json_int_t)e->count, "top1",
        share((double)e->top1, e->count), "top5", share((double)e->top5, e->count), "nll",
        share(e->nll, e->count), "ece", e->count ? json_real(metric_eval_ece(e)) : json_null(),
        "ece_bins", METRIC_ECE_BINS, "per_class", per_class_json(ev));
    json_t *policy = json_object_get(params, "policy");
    if (result && policy) json_object_set(result, "policy", policy);
    return result;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct evaluate ev = {.ctx = ctx};
    struct policy *policy = NULL;
    size_t next = 0;
    void *png = NULL;
    size_t png_size;
    int rc = job_classify_open(&ev.jc, job_ctx_app(ctx), params, 1, err) ||
                     job_classify_policy(json_object_get(params, "policy"), "policy", &policy, err)
                 ? -1
                 : 0;
    const json_t *saved = job_ctx_restored(ctx);
    if (rc == 0 && saved) rc = restore(&ev, saved, &next, err);
    if (rc == 0) {
        ev.batches = job_classify_batches(&ev.jc);
        if (next > 0) job_ctx_log(ctx, "resuming at batch %zu of %zu", next + 1, ev.batches);
        rc = job_classify_pass(ctx, &ev.jc, policy, ev.jc.seed, next, on_batch, &ev, err);
    }
    /* An empty split never met the model: a table of its labels' classes still makes sense. */
    if (rc == 0 && !ev.e.classes) {
        size_t classes = dataset_class_count(ev.jc.dataset);
        rc = metric_eval_init(&ev.e,
                              ev.jc.model_classes ? ev.jc.model_classes
                              : classes           ? classes
                                                  : 1,
                              err);
    }
    if (rc == 0) rc = write_tables(&ev, err);
    if (rc == 0) rc = job_chart_reliability(&ev.e, &png, &png_size, err);
    if (rc == 0) rc = job_classify_write_artifact(ctx, "reliability.png", png, png_size, err);
    if (rc == 0 && !(*result = result_json(&ev, params))) rc = eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_result(ctx, *result, err);
    if (rc != 0 && *result) {
        json_decref(*result);
        *result = NULL;
    }
    free(png);
    policy_free(policy);
    metric_eval_free(&ev.e);
    job_classify_close(&ev.jc);
    return rc;
}

const struct job_kind job_kind_evaluate = {
    .name = "evaluate",
    .help = "a model on a dataset split, optionally under a policy: top-1, top-5, NLL, ECE, "
            "per-class accuracy, the confusion matrix and a reliability diagram",
    .validate = validate,
    .run = run,
};
