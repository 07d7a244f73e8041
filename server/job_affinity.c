/* The job kind "affinity" (Gontijo-Lopes et al. 2020): how far a policy moves a model trained on
 * clean data, as affinity = A(m, D'val) - A(m, Dval) and the ratio A(m, D'val) / A(m, Dval), where
 * D'val is the split with the policy applied once per image at a fixed seed. Each policy is drawn
 * `draws` times, draw d at seed + d, and reported as the mean and sample standard deviation over
 * its draws; the clean pass runs once.
 *
 * The job is a sequence of passes over the split (job_classify_pass): pass 0 clean, then pass
 * 1 + p x draws + d for policy p's draw d. The checkpoint, after every batch, holds the pass, its
 * next batch, its correct count so far and the correct counts of the passes done: integers, so a
 * resumed job gives exactly the numbers of an uninterrupted one. Images without a label are left
 * out. The clean pass and a policy's run through the same code (the loader, then the model), so
 * the policy Identity gives exactly the clean pass's answers: an affinity of exactly 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_affinity.h"
#include "job_chart.h"
#include "job_classify.h"
#include "job_kind.h"
#include "metrics/classification.h"
#include "policy/ops.h"
#include "policy/policy.h"

#define MAX_POLICIES 64
#define MAX_DRAWS    100

static const char *const names[] = {"model", "dataset", "split",      "policies", "level",
                                    "draws", "seed",    "batch_size", NULL};

struct affinity {
    struct job_ctx *ctx;
    struct job_classify jc;
    json_t *docs; /* the policies as given, or as "ops" expands them */
    struct policy *policies[MAX_POLICIES];
    size_t n_policies, draws, passes, batches;
    size_t pass;        /* the pass under way */
    uint64_t correct;   /* its correct answers so far */
    uint64_t count;     /* its labeled images so far */
    uint64_t *corrects; /* per pass done */
};

/* "ops" at level: Identity, then every image op with a magnitude that keeps the image's size and
 * needs no boxes, as {"op": name, "level": level}. */
static json_t *ops_at_level(double level)
{
    size_t n;
    const struct op_desc *ops = op_table(&n);
    json_t *docs = json_array();
    for (size_t i = 0; docs && i < n; i++) {
        const struct op_desc *op = &ops[i];
        if (op->domain != OP_DOMAIN_IMAGE || op->output_size || op->apply_boxes) continue;
        if (op->level.map != LEVEL_NONE)
            json_array_append_new(docs, json_pack("{s:s, s:f}", "op", op->name, "level", level));
        else if (strcmp(op->name, "Identity") == 0)
            json_array_append_new(docs, json_pack("{s:s}", "op", op->name));
    }
    return docs;
}

int job_affinity_policies(const json_t *params, size_t max, json_t **docs, struct policy **policies,
                          size_t *n, struct eng_error *err)
{
    const json_t *given = json_object_get(params, "policies");
    double level;
    int ops = json_is_string(given) && strcmp(json_string_value(given), "ops") == 0;
    *docs = NULL;
    *n = 0;
    if (json_object_get(params, "level") && !ops)
        return eng_fail(err, ENG_INVALID, "params.level: only with \"policies\": \"ops\"");
    if (ops) {
        if (job_param_real(params, "level", 1, 0, 0, 1, &level, err) != 0) return -1;
        *docs = ops_at_level(level);
    } else if (json_is_array(given) && json_array_size(given) >= 1 &&
               json_array_size(given) <= max) {
        *docs = json_incref((json_t *)given);
    } else {
        return eng_fail(err, ENG_INVALID,
                        "params.policies: required: a list of 1 to %zu policies (preset names, "
                        "op objects or lists), or \"ops\" with a \"level\"",
                        max);
    }
    if (!*docs) return eng_no_memory(err);
    if (json_array_size(*docs) > max)
        return eng_fail(err, ENG_INVALID,
                        "params.policies: \"ops\" are %zu policies, more than the %zu this kind "
                        "takes",
                        json_array_size(*docs), max);
    for (size_t i = 0; i < json_array_size(*docs); i++) {
        char name[32];
        snprintf(name, sizeof name, "policies/%zu", i);
        if (job_classify_policy(json_array_get(*docs, i), name, &policies[i], err) != 0) return -1;
        *n = i + 1;
    }
    return 0;
}

static void affinity_free(struct affinity *a)
{
    for (size_t i = 0; i < a->n_policies; i++)
        policy_free(a->policies[i]);
    json_decref(a->docs);
    free(a->corrects);
    job_classify_close(&a->jc);
}

static int read_params(struct affinity *a, const struct app *app, const json_t *params,
                       struct eng_error *err)
{
    long long draws;
    if (job_params_known(params, names, err) ||
        job_param_int(params, "draws", 0, 1, 1, MAX_DRAWS, &draws, err) ||
        job_classify_open(&a->jc, app, params, 1, err) ||
        job_affinity_policies(params, MAX_POLICIES, &a->docs, a->policies, &a->n_policies, err))
        return -1;
    a->draws = (size_t)draws;
    a->passes = 1 + a->n_policies * a->draws;
    a->batches = job_classify_batches(&a->jc);
    a->corrects = calloc(a->passes, sizeof *a->corrects);
    return a->corrects ? 0 : eng_no_memory(err);
}

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct affinity a = {0};
    int rc = read_params(&a, app, params, err);
    affinity_free(&a);
    return rc;
}

static int checkpoint(struct affinity *a, size_t next, struct eng_error *err)
{
    json_t *done = json_array();
    for (size_t p = 0; done && p < a->pass; p++)
        json_array_append_new(done, json_integer((json_int_t)a->corrects[p]));
    json_t *state = json_pack("{s:I, s:I, s:I, s:I, s:o}", "pass", (json_int_t)a->pass, "batch",
                              (json_int_t)next, "correct", (json_int_t)a->correct, "count",
                              (json_int_t)a->count, "done", done);
    double fraction = ((double)a->pass + (a->batches ? (double)next / a->batches : 1)) / a->passes;
    int rc = state ? job_ctx_checkpoint(a->ctx, state, fraction,
                                        a->pass ? "augmented passes" : "clean pass", err)
                   : eng_no_memory(err);
    json_decref(state);
    return rc;
}

static int restore(struct affinity *a, const json_t *saved, size_t *next, struct eng_error *err)
{
    json_int_t pass, batch, correct, count;
    json_t *done;
    if (json_unpack((json_t *)saved, "{s:I, s:I, s:I, s:I, s:o}", "pass", &pass, "batch", &batch,
                    "correct", &correct, "count", &count, "done", &done) != 0 ||
        pass < 0 || (size_t)pass > a->passes || json_array_size(done) != (size_t)pass)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not affinity's");
    for (size_t p = 0; p < (size_t)pass; p++)
        a->corrects[p] = (uint64_t)json_integer_value(json_array_get(done, p));
    a->pass = (size_t)pass;
    a->correct = (uint64_t)correct;
    a->count = (uint64_t)count;
    *next = (size_t)batch;
    return 0;
}

void job_affinity_count(const struct job_classify *jc, const struct data_batch *b,
                        const float *probs, size_t classes, uint64_t *correct, uint64_t *count)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->labels[i] >= 0) {
            size_t label = (size_t)jc->class_map[b->labels[i]];
            *correct += metric_rank(probs + i * classes, classes, label) == 0;
            (*count)++;
        }
}

static int on_batch(void *arg, const struct data_batch *b, const float *probs, size_t classes,
                    struct eng_error *err)
{
    struct affinity *a = arg;
    job_affinity_count(&a->jc, b, probs, classes, &a->correct, &a->count);
    return checkpoint(a, b->number + 1, err);
}

/* Mean and standard deviation of values as {"mean", "std"}; null members for NaN (a ratio over
 * a clean accuracy of 0). */
static json_t *mean_std_json(const double *values, size_t n)
{
    double mean, std;
    metric_mean_std(values, n, &mean, &std);
    return json_pack("{s:o, s:o}", "mean", isfinite(mean) ? json_real(mean) : json_null(), "std",
                     isfinite(std) ? json_real(std) : json_null());
}

char *job_affinity_policy_name(const json_t *doc)
{
    const char *op = json_string_value(json_object_get(doc, "op"));
    if (json_is_string(doc)) return strdup(json_string_value(doc));
    if (op && json_object_size(doc) <= 2 && json_object_get(doc, "level")) {
        char *name = NULL;
        return asprintf(&name, "%s@%g", op, json_number_value(json_object_get(doc, "level"))) < 0
                   ? NULL
                   : name;
    }
    if (op && json_object_size(doc) == 1) return strdup(op);
    return json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
}

/* The result's table, affinity.csv and affinity.png. */
static int report(struct affinity *a, json_t **result, struct eng_error *err)
{
    double clean = (double)a->corrects[0] / (double)a->count;
    double *acc = malloc(a->draws * 3 * sizeof *acc), *diff = acc + a->draws,
           *ratio = diff + a->draws;
    double *bar_mean = calloc(a->n_policies * 2, sizeof *bar_mean),
           *bar_std = bar_mean ? bar_mean + a->n_policies : NULL;
    char *csv = NULL;
    size_t csv_size;
    FILE *f = acc && bar_mean ? open_memstream(&csv, &csv_size) : NULL;
    json_t *table = json_array();
    int rc = f && table ? 0 : eng_no_memory(err);
    if (f)
        fputs("policy,accuracy_mean,accuracy_std,affinity_mean,affinity_std,ratio_mean,"
              "ratio_std\n",
              f);
    for (size_t p = 0; rc == 0 && p < a->n_policies; p++) {
        json_t *draws = json_array();
        for (size_t d = 0; d < a->draws; d++) {
            acc[d] = (double)a->corrects[1 + p * a->draws + d] / (double)a->count;
            metric_affinity(clean, acc[d], &diff[d], &ratio[d]);
            json_array_append_new(draws, json_real(acc[d]));
        }
        char *name = job_affinity_policy_name(json_array_get(a->docs, p));
        json_t *row = json_pack(
            "{s:O, s:s?, s:o, s:o, s:o, s:o}", "policy", json_array_get(a->docs, p), "name", name,
            "accuracy", mean_std_json(acc, a->draws), "affinity", mean_std_json(diff, a->draws),
            "ratio", mean_std_json(ratio, a->draws), "draws", draws);
        if (!name || !row || json_array_append_new(table, row) != 0) rc = eng_no_memory(err);
        double m[3], s[3];
        for (int k = 0; k < 3; k++)
            metric_mean_std((double *[]){acc, diff, ratio}[k], a->draws, &m[k], &s[k]);
        bar_mean[p] = m[1];
        bar_std[p] = s[1];
        fputc('"', f);
        for (const char *c = name ? name : ""; *c; c++)
            fputs(*c == '"' ? "\"\"" : (char[]){*c, 0}, f);
        fprintf(f, "\",%.17g,%.17g,%.17g,%.17g,", m[0], s[0], m[1], s[1]);
        if (isfinite(m[2]))
            fprintf(f, "%.17g,%.17g", m[2], s[2]);
        else
            fputc(',', f);
        fputc('\n', f);
        free(name);
    }
    if (f && fclose(f) != 0 && rc == 0) rc = eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_artifact(a->ctx, "affinity.csv", csv, csv_size, err);
    void *png = NULL;
    size_t png_size;
    if (rc == 0) rc = job_chart_bars(bar_mean, bar_std, a->n_policies, &png, &png_size, err);
    if (rc == 0) rc = job_classify_write_artifact(a->ctx, "affinity.png", png, png_size, err);
    if (rc == 0) {
        *result =
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:O}", "model", a->jc.model_name, "dataset",
                      a->jc.dataset_id, "split", a->jc.split->name, "count", (json_int_t)a->count,
                      "draws", (json_int_t)a->draws, "clean_accuracy", clean, "policies", table);
        rc = *result ? job_classify_write_result(a->ctx, *result, err) : eng_no_memory(err);
    }
    json_decref(table);
    free(png);
    free(csv);
    free(acc);
    free(bar_mean);
    return rc;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct affinity a = {.ctx = ctx};
    size_t next = 0;
    int rc = read_params(&a, job_ctx_app(ctx), params, err);
    const json_t *saved = job_ctx_restored(ctx);
    if (rc == 0 && saved) rc = restore(&a, saved, &next, err);
    if (rc == 0 && (a.pass || next))
        job_ctx_log(ctx, "resuming at pass %zu of %zu, batch %zu", a.pass + 1, a.passes, next + 1);
    for (; rc == 0 && a.pass < a.passes; a.pass++, next = 0) {
        /* Pass 0 is clean; pass 1 + p x draws + d is policy p at seed + d. */
        const struct policy *policy = a.pass ? a.policies[(a.pass - 1) / a.draws] : NULL;
        uint64_t seed = a.jc.seed + (a.pass ? (a.pass - 1) % a.draws : 0);
        rc = job_classify_pass(ctx, &a.jc, policy, seed, next, on_batch, &a, err);
        if (rc != 0) break;
        a.corrects[a.pass] = a.correct;
        if (a.pass + 1 < a.passes) {
            a.correct = 0;
            a.count = 0;
        }
    }
    if (rc == 0 && a.count == 0)
        rc = eng_fail(err, ENG_INVALID, "params.split: split %s has no labeled image",
                      a.jc.split->name);
    if (rc == 0) rc = report(&a, result, err);
    affinity_free(&a);
    return rc;
}

const struct job_kind job_kind_affinity = {
    .name = "affinity",
    .help = "the accuracy a model loses or gains under each of a list of policies, against the "
            "clean split (Gontijo-Lopes et al. 2020): difference and ratio, mean and std over "
            "draws, with a bar chart",
    .validate = validate,
    .run = run,
};
