/* What the classifier job kinds share (job_classify.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "datasets.h"
#include "job_classify.h"
#include "job_kind.h"
#include "models.h"
#include "nn/nn.h"
#include "policy/policy.h"

/* A required string member of params: -1 with err naming params.<name>. */
static int string_param(const json_t *params, const char *name, const char **out,
                        struct eng_error *err)
{
    *out = json_string_value(json_object_get(params, name));
    if (*out && **out) return 0;
    return eng_fail(err, ENG_INVALID, "params.%s: required: a non-empty string", name);
}

/* Takes the model of that name when it can classify images. */
static int open_model(struct job_classify *jc, struct eng_error *err)
{
    jc->model = models_acquire(jc->app->models, jc->model_name);
    if (!jc->model)
        return eng_fail(err, ENG_NOT_FOUND, "params.model: no such model: %.64s", jc->model_name);
    if (model_reason(jc->model))
        return eng_fail(err, ENG_INVALID, "params.model: model %s is unavailable: %s",
                        jc->model_name, model_reason(jc->model));
    if (!model_preprocess(jc->model))
        return eng_fail(err, ENG_INVALID,
                        "params.model: model %s has no \"preprocess\" in its config.json, so it "
                        "cannot take images",
                        jc->model_name);
    if (nn_graph_input_count(model_graph(jc->model)) != 1)
        return eng_fail(err, ENG_INVALID,
                        "params.model: model %s has %zu inputs; only a model whose one input is "
                        "the image can classify images",
                        jc->model_name, nn_graph_input_count(model_graph(jc->model)));
    return 0;
}

/* The split of that name, listing the dataset's splits when there is none. */
static int find_split(struct job_classify *jc, const char *name, int labeled, struct eng_error *err)
{
    jc->split = dataset_split(jc->dataset, name);
    if (!jc->split) {
        char list[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < dataset_split_count(jc->dataset) && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     dataset_split_at(jc->dataset, i)->name);
        return eng_fail(err, ENG_INVALID, "params.split: dataset %s has no split %.64s; it has %s",
                        jc->dataset_id, name, used ? list : "none");
    }
    if (labeled && !jc->split->labeled)
        return eng_fail(err, ENG_INVALID,
                        "params.split: split %s of dataset %s is unlabeled; this kind needs labels",
                        name, jc->dataset_id);
    return 0;
}

/* Dataset class -> model class, by name when the model has labels. */
static int map_classes(struct job_classify *jc, struct eng_error *err)
{
    size_t n = dataset_class_count(jc->dataset), labels = model_label_count(jc->model);
    jc->class_map = malloc((n ? n : 1) * sizeof *jc->class_map);
    if (!jc->class_map) return eng_no_memory(err);
    for (size_t c = 0; c < n; c++) {
        jc->class_map[c] = labels ? -1 : (int32_t)c;
        for (size_t k = 0; k < labels && jc->class_map[c] < 0; k++)
            if (strcmp(model_label(jc->model, k), dataset_class_name(jc->dataset, c)) == 0)
                jc->class_map[c] = (int32_t)k;
        if (jc->class_map[c] < 0)
            return eng_fail(err, ENG_INVALID,
                            "params.dataset: class \"%.64s\" of dataset %s is not one of the "
                            "labels of model %s",
                            dataset_class_name(jc->dataset, c), jc->dataset_id, jc->model_name);
    }
    if (labels) jc->model_classes = labels;
    return 0;
}

/* The dataset part of the params: dataset, split, seed. */
static int open_dataset(struct job_classify *jc, const json_t *params, int labeled,
                        struct eng_error *err)
{
    const char *split;
    long long seed;
    if (string_param(params, "dataset", &jc->dataset_id, err) ||
        string_param(params, "split", &split, err) ||
        job_param_int(params, "seed", 0, 0, 0, (long long)POLICY_MAX_SEED, &seed, err))
        return -1;
    jc->seed = (uint64_t)seed;
    jc->dataset = datasets_acquire(jc->app->datasets, jc->dataset_id, err);
    if (!jc->dataset) {
        if (err->code == ENG_NOT_FOUND)
            eng_fail(err, ENG_NOT_FOUND, "params.dataset: no such dataset: %.64s", jc->dataset_id);
        return -1;
    }
    return find_split(jc, split, labeled, err);
}

int job_classify_open_dataset(struct job_classify *jc, const struct app *app, const json_t *params,
                              int labeled, struct eng_error *err)
{
    memset(jc, 0, sizeof *jc);
    jc->app = (struct app *)app;
    return open_dataset(jc, params, labeled, err);
}

int job_classify_open(struct job_classify *jc, const struct app *app, const json_t *params,
                      int labeled, struct eng_error *err)
{
    memset(jc, 0, sizeof *jc);
    jc->app = (struct app *)app;
    long long batch;
    if (string_param(params, "model", &jc->model_name, err) ||
        job_param_int(params, "batch_size", 0, JOB_CLASSIFY_DEFAULT_BATCH, 1,
                      JOB_CLASSIFY_MAX_BATCH, &batch, err) ||
        open_model(jc, err))
        return -1;
    jc->batch = (size_t)batch;
    return open_dataset(jc, params, labeled, err) || map_classes(jc, err) ? -1 : 0;
}

int job_classify_open_model(struct job_classify *jc, const char *name, int map,
                            struct eng_error *err)
{
    jc->model_name = name;
    return open_model(jc, err) || (map && map_classes(jc, err)) ? -1 : 0;
}

void job_classify_close(struct job_classify *jc)
{
    if (jc->model) model_release(jc->model);
    if (jc->dataset) datasets_release(jc->app->datasets, jc->dataset);
    free(jc->class_map);
    memset(jc, 0, sizeof *jc);
}

int job_classify_policy(const json_t *value, const char *name, struct policy **policy,
                        struct eng_error *err)
{
    *policy = NULL;
    if (!value) return 0;
    struct eng_error perr = {0};
    *policy = policy_parse(value, &perr);
    if (*policy && !(policy_domain(*policy) & ~POLICY_IMAGE) && policy_view_count(*policy) <= 1)
        return 0;
    if (*policy) eng_fail(&perr, ENG_INVALID, "must be an image policy with one view");
    policy_free(*policy);
    *policy = NULL;
    if (perr.code == ENG_NO_MEMORY) return eng_fail(err, ENG_NO_MEMORY, "%s", perr.message);
    /* A message that starts with the bad node's pointer reads "params.policy/seq/1: ...". */
    int pointer = strcmp(policy_error_prefix(&perr), "policy") == 0;
    return eng_fail(err, ENG_INVALID, "params.%s%s%s", name, pointer ? "" : ": ", perr.message);
}

int job_classify_classes(struct job_classify *jc, size_t classes, struct eng_error *err)
{
    if (jc->model_classes && classes != jc->model_classes)
        return eng_fail(err, ENG_INVALID, "model %s gives %zu class scores but has %zu labels",
                        jc->model_name, classes, jc->model_classes);
    if (classes < dataset_class_count(jc->dataset))
        return eng_fail(err, ENG_INVALID,
                        "params.dataset: dataset %s has %zu classes; model %s (without labels, "
                        "matched by index) gives only %zu",
                        jc->dataset_id, dataset_class_count(jc->dataset), jc->model_name, classes);
    jc->model_classes = classes;
    return 0;
}

const char *job_classify_class_name(const struct job_classify *jc, size_t c, char *buf, size_t size)
{
    const char *label = model_label(jc->model, c);
    if (label) return label;
    if (c < dataset_class_count(jc->dataset)) return dataset_class_name(jc->dataset, c);
    snprintf(buf, size, "%zu", c);
    return buf;
}

size_t job_classify_batches(const struct job_classify *jc)
{
    return (jc->split->count + jc->batch - 1) / jc->batch;
}

int job_classify_pass(struct job_ctx *ctx, struct job_classify *jc, const struct policy *policy,
                      uint64_t seed, size_t first, job_classify_fn fn, void *arg,
                      struct eng_error *err)
{
    if (first >= job_classify_batches(jc)) return 0;
    struct data_loader_options o = {.dataset = jc->dataset,
                                    .split = jc->split,
                                    .policy = policy,
                                    .preprocess = model_preprocess(jc->model),
                                    .seed = seed,
                                    .batch = jc->batch,
                                    .first_batch = first,
                                    .threads = job_ctx_threads(ctx)};
    struct data_loader *l = data_loader_new(&o, err);
    if (!l) return -1;
    struct data_batch b;
    int rc, got = 0;
    while ((rc = job_ctx_cancelled(ctx, err)) == 0 && (got = data_loader_next(l, &b, err)) == 1) {
        float *probs;
        size_t classes;
        rc = model_classify(jc->model, b.inputs, b.size, b.height, b.width, &probs, &classes, err);
        if (rc == 0) rc = job_classify_classes(jc, classes, err);
        if (rc == 0) rc = fn(arg, &b, probs, classes, err);
        free(probs);
        if (rc != 0) break;
    }
    if (rc == 0 && got < 0) rc = -1;
    data_loader_free(l);
    return rc;
}

int job_classify_write_artifact(struct job_ctx *ctx, const char *name, const void *data,
                                size_t size, struct eng_error *err)
{
    FILE *f = job_ctx_artifact_resume(ctx, name, 0, err);
    if (!f) return -1;
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : eng_fail(err, ENG_INTERNAL, "cannot write artifact %s", name);
}

int job_classify_write_result(struct job_ctx *ctx, const json_t *result, struct eng_error *err)
{
    char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) return eng_no_memory(err);
    int rc = job_classify_write_artifact(ctx, "result.json", text, strlen(text), err);
    free(text);
    return rc;
}

void job_classify_csv_field(FILE *f, const char *text)
{
    if (!strpbrk(text, ",\"\r\n")) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *c = text; *c; c++)
        fputs(*c == '"' ? "\"\"" : (char[]){*c, 0}, f);
    fputc('"', f);
}
