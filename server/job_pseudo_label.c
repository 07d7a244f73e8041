/* The job kind "pseudo-label": POST /v1/pseudo-label's vote for every image of a split (labeled
 * or not), one model and one view (the image itself): each image's class and confidence, accepted
 * when the confidence reaches the threshold (classify_pseudo_label, the endpoint's own rule).
 *
 * Every image gets a line of the JSON Lines artifact pseudo_labels.jsonl: {"file", "index",
 * "label", "class", "confidence", "accepted"}. The checkpoint, after every batch, holds the next
 * batch, the file's length and the accepted counts per class: a resumed job cuts what a lost
 * batch wrote (job_ctx_artifact_resume), so no line is lost or doubled. With "as_split", the
 * accepted images become a labeled split of the dataset at the end, read back from the file: a
 * resumed job that finds the split already there with the same images and labels goes on (it was
 * killed after adding it); another split of that name fails the job with a conflict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "data/dataset.h"
#include "job_classify.h"
#include "job_kind.h"

#define ARTIFACT          "pseudo_labels.jsonl"
#define DEFAULT_THRESHOLD 0.95 /* /v1/pseudo-label's */

static const char *const names[] = {"model",    "dataset",    "split", "threshold",
                                    "as_split", "batch_size", NULL};

struct pseudo {
    struct job_ctx *ctx;
    struct job_classify jc;
    double threshold;
    const char *as_split; /* NULL: none */
    FILE *out;
    uint64_t count, *accepted; /* per model class */
    size_t batches;
};

/* The dataset class of model class m, or -1. */
static int32_t dataset_class(const struct job_classify *jc, size_t m)
{
    for (size_t c = 0; c < dataset_class_count(jc->dataset); c++)
        if (jc->class_map[c] == (int32_t)m) return (int32_t)c;
    return -1;
}

/* With as_split, every model class must be a class of the dataset. */
static int check_as_split_classes(const struct pseudo *p, struct eng_error *err)
{
    char buf[32];
    for (size_t m = 0; p->as_split && m < p->jc.model_classes; m++)
        if (dataset_class(&p->jc, m) < 0)
            return eng_fail(err, ENG_INVALID,
                            "params.as_split: class %s of model %s is not a class of dataset %s, "
                            "so its images cannot be labeled in it",
                            job_classify_class_name(&p->jc, m, buf, sizeof buf), p->jc.model_name,
                            p->jc.dataset_id);
    return 0;
}

static int read_params(struct pseudo *p, const struct app *app, const json_t *params,
                       struct eng_error *err)
{
    const json_t *as_split = json_object_get(params, "as_split");
    if (job_params_known(params, names, err) ||
        job_param_real(params, "threshold", 0, DEFAULT_THRESHOLD, 0, 1, &p->threshold, err))
        return -1;
    if (as_split) {
        struct eng_error name_err = {0};
        if (!json_is_string(as_split) ||
            data_split_name_check(json_string_value(as_split), &name_err) != 0)
            return eng_fail(err, ENG_INVALID, "params.as_split: %s",
                            name_err.message[0] ? name_err.message : "must be a split name");
        p->as_split = json_string_value(as_split);
    }
    return job_classify_open(&p->jc, app, params, 0, err) || check_as_split_classes(p, err) ? -1
                                                                                            : 0;
}

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct pseudo p = {0};
    int rc = read_params(&p, app, params, err);
    if (rc == 0 && p.as_split && dataset_split(p.jc.dataset, p.as_split))
        rc = eng_fail(err, ENG_CONFLICT, "params.as_split: dataset %s has a split %s already",
                      p.jc.dataset_id, p.as_split);
    job_classify_close(&p.jc);
    return rc;
}

static int checkpoint(struct pseudo *p, size_t next, struct eng_error *err)
{
    if (fflush(p->out) != 0) return eng_fail(err, ENG_INTERNAL, "cannot write " ARTIFACT);
    json_t *accepted = json_array();
    for (size_t m = 0; accepted && m < p->jc.model_classes; m++)
        json_array_append_new(accepted, json_integer((json_int_t)p->accepted[m]));
    json_t *state =
        json_pack("{s:I, s:I, s:I, s:o}", "batch", (json_int_t)next, "bytes",
                  (json_int_t)ftell(p->out), "count", (json_int_t)p->count, "accepted", accepted);
    int rc = state ? job_ctx_checkpoint(p->ctx, state, (double)next / p->batches, "labeling", err)
                   : eng_no_memory(err);
    json_decref(state);
    return rc;
}

/* The checkpoint's totals into p; *next and *bytes where to go on. */
static int restore(struct pseudo *p, const json_t *saved, size_t *next, long *bytes,
                   struct eng_error *err)
{
    json_int_t batch, length, count;
    json_t *accepted;
    if (json_unpack((json_t *)saved, "{s:I, s:I, s:I, s:o}", "batch", &batch, "bytes", &length,
                    "count", &count, "accepted", &accepted) != 0 ||
        json_array_size(accepted) < 1)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not pseudo-label's");
    if (job_classify_classes(&p->jc, json_array_size(accepted), err) != 0) return -1;
    p->accepted = calloc(p->jc.model_classes, sizeof *p->accepted);
    if (!p->accepted) return eng_no_memory(err);
    for (size_t m = 0; m < p->jc.model_classes; m++)
        p->accepted[m] = (uint64_t)json_integer_value(json_array_get(accepted, m));
    p->count = (uint64_t)count;
    *next = (size_t)batch;
    *bytes = (long)length;
    return 0;
}

static int on_batch(void *arg, const struct data_batch *b, const float *probs, size_t classes,
                    struct eng_error *err)
{
    struct pseudo *p = arg;
    if (!p->accepted && !(p->accepted = calloc(classes, sizeof *p->accepted)))
        return eng_no_memory(err);
    if (check_as_split_classes(p, err) != 0) return -1;
    char buf[32];
    for (size_t i = 0; i < b->size; i++) {
        struct classify_pseudo_label pl;
        struct classify_vote vote;
        if (classify_pseudo_label(probs + i * classes, 1, 1, classes, p->threshold, &pl, &vote,
                                  err) != 0)
            return -1;
        json_t *line = json_pack(
            "{s:s, s:I, s:s, s:I, s:f, s:b}", "file", dataset_source(p->jc.dataset, b->indices[i]),
            "index", (json_int_t)b->indices[i], "label",
            job_classify_class_name(&p->jc, pl.vote.label, buf, sizeof buf), "class",
            (json_int_t)pl.vote.label, "confidence", pl.vote.confidence, "accepted", pl.accepted);
        int ok = line && json_dumpf(line, p->out, JSON_COMPACT) == 0 && fputc('\n', p->out) != EOF;
        json_decref(line);
        if (!ok) return eng_fail(err, ENG_INTERNAL, "cannot write " ARTIFACT);
        p->count++;
        p->accepted[pl.vote.label] += pl.accepted != 0;
    }
    return checkpoint(p, b->number + 1, err);
}

/* The accepted images of the artifact, in split order, with their dataset classes. */
static int read_accepted(struct pseudo *p, uint32_t **indices, int32_t **labels, size_t *n,
                         struct eng_error *err)
{
    const char *dir = job_ctx_artifacts(p->ctx, err);
    char path[4096];
    if (!dir) return -1;
    snprintf(path, sizeof path, "%s/" ARTIFACT, dir);
    FILE *f = fopen(path, "r");
    uint64_t total = 0;
    for (size_t m = 0; m < p->jc.model_classes; m++)
        total += p->accepted[m];
    *indices = malloc((total ? total : 1) * sizeof **indices);
    *labels = malloc((total ? total : 1) * sizeof **labels);
    *n = 0;
    int rc = f ? 0 : eng_fail(err, ENG_INTERNAL, "cannot read " ARTIFACT);
    if (rc == 0 && (!*indices || !*labels)) rc = eng_no_memory(err);
    char *text = NULL;
    size_t cap = 0;
    while (rc == 0 && getline(&text, &cap, f) > 0) {
        json_t *line = json_loads(text, 0, NULL);
        json_int_t index, cls;
        int accepted;
        if (json_unpack(line, "{s:I, s:I, s:b}", "index", &index, "class", &cls, "accepted",
                        &accepted) != 0 ||
            (accepted && *n == total))
            rc = eng_fail(err, ENG_INTERNAL, ARTIFACT " does not agree with the checkpoint");
        else if (accepted) {
            (*indices)[*n] = (uint32_t)index;
            (*labels)[(*n)++] = dataset_class(&p->jc, (size_t)cls);
        }
        json_decref(line);
    }
    free(text);
    if (f) fclose(f);
    if (rc == 0 && *n != total)
        rc = eng_fail(err, ENG_INTERNAL, ARTIFACT " does not agree with the checkpoint");
    return rc;
}

/* The accepted images as split as_split, once: a split of that name holding exactly them is the
 * one an earlier attempt added. */
static int add_split(struct pseudo *p, size_t *added, struct eng_error *err)
{
    uint32_t *indices = NULL;
    int32_t *labels = NULL;
    struct dataset *ds = p->jc.dataset;
    int rc = read_accepted(p, &indices, &labels, added, err);
    if (rc == 0) rc = dataset_split_add(ds, p->as_split, indices, labels, *added, 1, err);
    if (rc != 0 && err->code == ENG_CONFLICT) {
        const struct data_split *s = dataset_split(ds, p->as_split);
        int same = s && s->labeled && s->count == *added;
        for (size_t k = 0; same && k < *added; k++)
            same = s->indices[k] == indices[k] && data_split_label(ds, s, k) == labels[k];
        if (same) {
            job_ctx_log(p->ctx, "split %s holds these images and labels already", p->as_split);
            rc = 0;
        } else {
            rc = eng_fail(err, ENG_CONFLICT, "as_split: dataset %s has another split %s",
                          p->jc.dataset_id, p->as_split);
        }
    }
    free(indices);
    free(labels);
    return rc;
}

static json_t *result_json(const struct pseudo *p, size_t added)
{
    json_t *per_class = json_array();
    uint64_t accepted = 0;
    char buf[32];
    for (size_t m = 0; per_class && m < p->jc.model_classes; m++) {
        accepted += p->accepted[m];
        json_array_append_new(per_class,
                              json_pack("{s:s, s:I}", "class",
                                        job_classify_class_name(&p->jc, m, buf, sizeof buf),
                                        "accepted", (json_int_t)p->accepted[m]));
    }
    json_t *result =
        json_pack("{s:s, s:s, s:s, s:f, s:I, s:I, s:o}", "model", p->jc.model_name, "dataset",
                  p->jc.dataset_id, "split", p->jc.split->name, "threshold", p->threshold, "count",
                  (json_int_t)p->count, "accepted", (json_int_t)accepted, "per_class", per_class);
    if (result && p->as_split) {
        json_object_set_new(result, "as_split", json_string(p->as_split));
        json_object_set_new(result, "split_images", json_integer((json_int_t)added));
    }
    return result;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct pseudo p = {.ctx = ctx};
    size_t next = 0, added = 0;
    long bytes = 0;
    int rc = read_params(&p, job_ctx_app(ctx), params, err);
    const json_t *saved = job_ctx_restored(ctx);
    if (rc == 0 && saved) rc = restore(&p, saved, &next, &bytes, err);
    if (rc == 0 && !(p.out = job_ctx_artifact_resume(ctx, ARTIFACT, bytes, err))) rc = -1;
    if (rc == 0) {
        p.batches = job_classify_batches(&p.jc);
        if (next > 0) job_ctx_log(ctx, "resuming at batch %zu of %zu", next + 1, p.batches);
        rc = job_classify_pass(ctx, &p.jc, NULL, 0, next, on_batch, &p, err);
    }
    if (p.out && fclose(p.out) != 0 && rc == 0)
        rc = eng_fail(err, ENG_INTERNAL, "cannot write " ARTIFACT);
    if (rc == 0 && !p.accepted && !(p.accepted = calloc(1, sizeof *p.accepted)))
        rc = eng_no_memory(err);
    if (rc == 0 && p.as_split) rc = add_split(&p, &added, err);
    if (rc == 0 && !(*result = result_json(&p, added))) rc = eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_result(ctx, *result, err);
    free(p.accepted);
    job_classify_close(&p.jc);
    return rc;
}

const struct job_kind job_kind_pseudo_label = {
    .name = "pseudo-label",
    .help = "a model's pseudo-label for every image of a split, accepted above a threshold, as "
            "JSON Lines; optionally the accepted images become a labeled split",
    .validate = validate,
    .run = run,
};
