/* The job kind "search": a policy search (engine/search) scored by the affinity objective, the
 * accuracy on the val split, with the trial's policy applied once per image at the job's seed, of
 * a model trained on clean data (Lim et al. 2019's density matching; the affinity kind's
 * accuracy, counted by the same code: job_affinity_count over job_classify_pass).
 *
 * One trial at a time: ask the algorithm for trial k's point, concretize it into a policy,
 * score it, tell the algorithm. Each finished trial (point, params, policy, value, state, seconds)
 * is a line of the artifact trials.jsonl; the checkpoint after it holds the file's length, the
 * trial count and their seconds, so it stays small however many trials there are (job_kind.h's
 * file kept in step), and, between the ask and the tell, the running trial's point. A resumed job
 * reads the finished trials back and tells them again (the algorithm's state is its seed and what
 * it was told, search.h), and reruns the running trial with the point it stored, never asking
 * again, so it ends with an uninterrupted job's trials. A trial whose policy does not parse or
 * whose pass fails is recorded as failed and told as such; the job fails only when every trial
 * failed, as a search with no result has nothing to report. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "job_affinity.h"
#include "job_chart.h"
#include "job_kind.h"
#include "job_search.h"
#include "job_search_report.h"
#include "json_text.h"
#include "policy/policy.h"
#include "saved_policies.h"
#include "search/search.h"

struct search_run {
    struct job_ctx *ctx;
    struct job_search_params p;
    struct search_algo *algo;
    size_t dims;
    json_t *trials;   /* the finished trials' rows, each with its "point" */
    double seconds;   /* theirs, summed: what the time budget counts */
    FILE *file;       /* trials.jsonl, their rows */
    size_t trial;     /* the trial under way */
    uint64_t correct; /* its pass's counts so far */
    uint64_t count;
    size_t batches;
};

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct job_search_params p;
    int rc = job_search_params_open(&p, app, params, 1, err);
    job_search_params_close(&p);
    return rc;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The share of the budget spent with `within` of the running trial done. */
static double fraction(const struct search_run *s, double within)
{
    double by_trials = ((double)s->trial + within) / (double)s->p.trials;
    double by_time = s->p.seconds > 0 ? s->seconds / s->p.seconds : 0;
    return fmin(1, fmax(by_trials, by_time));
}

static json_t *point_json(const double *point, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real(point[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* A stored point back into point: 0, or -1 when it is not one of n numbers. */
static int point_read(const json_t *a, double *point, size_t n)
{
    if (json_array_size(a) != n) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!json_is_number(json_array_get(a, i))) return -1;
        point[i] = json_number_value(json_array_get(a, i));
    }
    return 0;
}

/* The checkpoint: the finished trials (trials.jsonl's length) and the running one's point
 * (NULL: none). */
static int checkpoint(struct search_run *s, const double *running, struct eng_error *err)
{
    json_t *state = json_pack("{s:I, s:I, s:f, s:o}", "trials", (json_int_t)s->trial, "bytes",
                              (json_int_t)ftell(s->file), "seconds", s->seconds, "running",
                              running ? json_pack("{s:I, s:o}", "trial", (json_int_t)s->trial,
                                                  "point", point_json(running, s->dims))
                                      : json_null());
    int rc = state ? job_ctx_checkpoint(s->ctx, state, fraction(s, 0), "trials", err)
                   : eng_no_memory(err);
    json_decref(state);
    return rc;
}

/* Tells the algorithm a finished trial's row. */
static int tell(struct search_run *s, const json_t *row, double *point, struct eng_error *err)
{
    if (point_read(json_object_get(row, "point"), point, s->dims) != 0 ||
        !json_is_integer(json_object_get(row, "trial")))
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not search's");
    const json_t *value = json_object_get(row, "value");
    return search_algo_tell(s->algo, (uint64_t)json_integer_value(json_object_get(row, "trial")),
                            point, json_number_value(value), json_is_number(value), err);
}

/* The first `bytes` of trials.jsonl (malloc'd, NUL-terminated), or NULL with err. */
static char *read_trials(struct search_run *s, long bytes, struct eng_error *err)
{
    const char *dir = job_ctx_artifacts(s->ctx, err);
    char path[PATH_MAX];
    if (!dir) return NULL;
    snprintf(path, sizeof path, "%s/trials.jsonl", dir);
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc((size_t)bytes + 1) : NULL;
    if (!text || fread(text, 1, (size_t)bytes, f) != (size_t)bytes) {
        if (f) fclose(f);
        free(text);
        eng_fail(err, ENG_INTERNAL,
                 "cannot read the %ld bytes of trials.jsonl the checkpoint names", bytes);
        return NULL;
    }
    fclose(f);
    text[bytes] = '\0';
    return text;
}

/* Takes the finished trials back (the checkpoint's count of trials.jsonl's lines, its first
 * *length bytes), telling each again; *resumed says whether the running trial's point was stored
 * (then in point). */
static int restore(struct search_run *s, const json_t *saved, double *point, int *resumed,
                   long *length, struct eng_error *err)
{
    json_int_t trials, bytes;
    double seconds;
    const json_t *running = json_object_get(saved, "running");
    if (json_unpack((json_t *)saved, "{s:I, s:I, s:F}", "trials", &trials, "bytes", &bytes,
                    "seconds", &seconds) != 0 ||
        trials < 0 || bytes < 0)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not search's");
    char *text = read_trials(s, (long)bytes, err), *line = text;
    int rc = text ? 0 : -1;
    for (json_int_t i = 0; rc == 0 && i < trials; i++) {
        char *end = strchr(line, '\n');
        json_t *row = end ? json_loadb(line, (size_t)(end - line), 0, NULL) : NULL;
        if (!row || json_integer_value(json_object_get(row, "trial")) != i)
            rc = eng_fail(err, ENG_INTERNAL, "trials.jsonl does not hold trial %lld", (long long)i);
        else if (tell(s, row, point, err) == 0)
            rc = json_array_append(s->trials, row) == 0 ? 0 : eng_no_memory(err);
        else
            rc = -1;
        json_decref(row);
        line = end ? end + 1 : line;
    }
    free(text);
    if (rc != 0) return -1;
    s->trial = (size_t)trials;
    s->seconds = seconds;
    *length = (long)bytes;
    *resumed = json_is_object(running) &&
               json_integer_value(json_object_get(running, "trial")) == trials &&
               point_read(json_object_get(running, "point"), point, s->dims) == 0;
    return 0;
}

/* Adds a finished trial's row to trials.jsonl. */
static int append_row(struct search_run *s, const json_t *row, struct eng_error *err)
{
    char *line = json_dumps(row, JSON_COMPACT);
    int ok = line && fprintf(s->file, "%s\n", line) >= 0 && fflush(s->file) == 0;
    free(line);
    return ok ? 0 : eng_fail(err, ENG_INTERNAL, "cannot write trials.jsonl");
}

static int on_batch(void *arg, const struct data_batch *b, const float *probs, size_t classes,
                    struct eng_error *err)
{
    (void)err;
    struct search_run *s = arg;
    job_affinity_count(&s->p.jc, b, probs, classes, &s->correct, &s->count);
    job_ctx_progress(s->ctx, fraction(s, (double)(b->number + 1) / (double)s->batches), "trials");
    return 0;
}

/* Scores point: 0 with *value, 1 when the trial failed (why says how), -1 with err when the job
 * cannot go on (cancelled, out of memory). *doc: the policy document, when there is one. */
static int score(struct search_run *s, const double *point, json_t **doc, double *value,
                 struct eng_error *why, struct eng_error *err)
{
    struct policy *policy = NULL;
    *doc = search_space_concretize(s->p.space, point, why);
    if (*doc) job_classify_policy(*doc, "space", &policy, why);
    if (!policy) return why->code == ENG_NO_MEMORY ? eng_no_memory(err) : 1;
    s->correct = s->count = 0;
    int rc = job_classify_pass(s->ctx, &s->p.jc, policy, s->p.jc.seed, 0, on_batch, s, why);
    policy_free(policy);
    if (rc != 0 && (why->code == ENG_CANCELLED || why->code == ENG_NO_MEMORY)) {
        *err = *why;
        return -1;
    }
    if (rc != 0) return 1;
    if (s->count == 0)
        return eng_fail(err, ENG_INVALID, "params.splits.val: split %s has no labeled image",
                        s->p.jc.split->name);
    *value = (double)s->correct / (double)s->count;
    return 0;
}

/* Runs trial s->trial at point and adds its row. */
static int run_trial(struct search_run *s, const double *point, struct eng_error *err)
{
    struct eng_error why = {0};
    json_t *doc = NULL;
    double value = NAN, start = now_seconds();
    int rc = score(s, point, &doc, &value, &why, err);
    double seconds = now_seconds() - start;
    json_t *row = rc < 0
                      ? NULL
                      : json_pack("{s:I, s:o, s:O*, s:o, s:o, s:s, s:f}", "trial",
                                  (json_int_t)s->trial, "point", point_json(point, s->dims),
                                  "policy", doc, "params", search_space_params(s->p.space, point),
                                  "value", rc == 0 ? json_real(value) : json_null(), "state",
                                  rc == 0 ? "succeeded" : "failed", "seconds", seconds);
    json_decref(doc);
    if (rc < 0) return -1;
    if (row && rc == 1) json_object_set_new(row, "error", json_string(why.message));
    if (!row || json_array_append_new(s->trials, row) != 0) return eng_no_memory(err);
    if (append_row(s, row, err) != 0) return -1;
    if (rc == 0)
        job_ctx_log(s->ctx, "trial %zu: %.6g", s->trial, value);
    else
        job_ctx_log(s->ctx, "trial %zu failed: %s", s->trial, why.message);
    s->seconds += seconds;
    return search_algo_tell(s->algo, s->trial, point, value, rc == 0, err);
}

/* The trials, from where the checkpoint left them, until the budget is spent or the grid is
 * done. */
static int run_trials(struct search_run *s, struct eng_error *err)
{
    double *point = malloc((s->dims ? s->dims : 1) * sizeof *point);
    int resumed = 0, rc = point ? 0 : eng_no_memory(err);
    long length = 0;
    const json_t *saved = job_ctx_restored(s->ctx);
    if (rc == 0 && saved) rc = restore(s, saved, point, &resumed, &length, err);
    /* What a trial after the checkpoint wrote is cut: it runs again. */
    if (rc == 0 && !(s->file = job_ctx_artifact_resume(s->ctx, "trials.jsonl", length, err)))
        rc = -1;
    if (rc == 0 && saved)
        job_ctx_log(s->ctx, "resuming at trial %zu, %s", s->trial,
                    resumed ? "with the point it was asked" : "asking for it");
    while (rc == 0 && s->trial < s->p.trials && !(s->p.seconds > 0 && s->seconds >= s->p.seconds)) {
        if (job_ctx_cancelled(s->ctx, err)) {
            rc = -1;
            break;
        }
        if (!resumed) {
            int asked = search_algo_ask(s->algo, s->trial, point, err);
            if (asked == 1) break; /* the grid is done */
            /* Stored before it runs: a restart reruns this point, not a new ask's. */
            rc = asked < 0 ? -1 : checkpoint(s, point, err);
        }
        resumed = 0;
        if (rc == 0) rc = run_trial(s, point, err);
        if (rc == 0) s->trial++;
        if (rc == 0) rc = checkpoint(s, NULL, err);
    }
    free(point);
    if (s->file && fclose(s->file) != 0 && rc == 0)
        rc = eng_fail(err, ENG_INTERNAL, "cannot write trials.jsonl");
    s->file = NULL;
    return rc;
}

/* The index of the best trial (the first of equals), or -1 when none succeeded. */
static long best_trial(const json_t *trials)
{
    long best = -1;
    size_t i;
    const json_t *row;
    json_array_foreach(trials, i, row)
    {
        const json_t *v = json_object_get(row, "value");
        if (json_is_number(v) &&
            (best < 0 ||
             json_number_value(v) >
                 json_number_value(json_object_get(json_array_get(trials, (size_t)best), "value"))))
            best = (long)i;
    }
    return best;
}

/* Ranks for the leaderboard: by value, best first, failed trials last, ties by trial. */
static int by_rank(const void *x, const void *y)
{
    const json_t *a = *(const json_t *const *)x, *b = *(const json_t *const *)y;
    const json_t *va = json_object_get(a, "value"), *vb = json_object_get(b, "value");
    if (json_is_number(va) != json_is_number(vb)) return json_is_number(va) ? -1 : 1;
    if (json_is_number(va) && json_number_value(va) != json_number_value(vb))
        return json_number_value(va) > json_number_value(vb) ? -1 : 1;
    json_int_t ta = json_integer_value(json_object_get(a, "trial")),
               tb = json_integer_value(json_object_get(b, "trial"));
    return (ta > tb) - (ta < tb);
}

/* leaderboard.csv: rank, trial, state, value, seconds, params and policy (compact JSON). */
static int write_leaderboard(struct search_run *s, struct eng_error *err)
{
    size_t n = json_array_size(s->trials), size = 0;
    const json_t **rows = malloc((n ? n : 1) * sizeof *rows);
    char *csv = NULL;
    FILE *f = rows ? open_memstream(&csv, &size) : NULL;
    if (!f) {
        free(rows);
        return eng_no_memory(err);
    }
    for (size_t i = 0; i < n; i++)
        rows[i] = json_array_get(s->trials, i);
    qsort(rows, n, sizeof *rows, by_rank);
    fputs("rank,trial,state,value,seconds,params,policy\n", f);
    for (size_t i = 0; i < n; i++) {
        const json_t *value = json_object_get(rows[i], "value");
        char *params = json_text(json_object_get(rows[i], "params"), JSON_COMPACT | JSON_SORT_KEYS);
        char *policy = json_text(json_object_get(rows[i], "policy"), JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(f, "%zu,%lld,%s,", i + 1,
                (long long)json_integer_value(json_object_get(rows[i], "trial")),
                json_string_value(json_object_get(rows[i], "state")));
        if (json_is_number(value)) fprintf(f, "%.17g", json_number_value(value));
        fprintf(f, ",%.3f,", json_number_value(json_object_get(rows[i], "seconds")));
        job_classify_csv_field(f, params ? params : "");
        fputc(',', f);
        job_classify_csv_field(f, policy ? policy : "");
        fputc('\n', f);
        free(params);
        free(policy);
    }
    int rc = fclose(f) == 0 ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_artifact(s->ctx, "leaderboard.csv", csv, size, err);
    free(csv);
    free(rows);
    return rc;
}

/* best.png: the best value so far after each trial (not drawn before the first success). */
static int write_curve(struct search_run *s, struct eng_error *err)
{
    size_t n = json_array_size(s->trials);
    double *best = malloc(n * sizeof *best);
    void *png = NULL;
    size_t size;
    if (!best) return eng_no_memory(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(json_array_get(s->trials, i), "value");
        double prev = i ? best[i - 1] : NAN;
        best[i] =
            json_is_number(v) && !(json_number_value(v) <= prev) ? json_number_value(v) : prev;
    }
    const double *series[1] = {best};
    int rc = job_chart_curves(series, 1, n, &png, &size, err);
    if (rc == 0) rc = job_classify_write_artifact(s->ctx, "best.png", png, size, err);
    free(png);
    free(best);
    return rc;
}

/* The trials as the result shows them: the rows without their points. */
static json_t *result_trials(const json_t *trials)
{
    json_t *out = json_array();
    size_t i;
    const json_t *row;
    json_array_foreach(trials, i, row)
    {
        json_t *copy = json_copy((json_t *)row);
        if (copy) json_object_del(copy, "point");
        if (!out || !copy || json_array_append_new(out, copy) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* The result, the artifacts and, with save_as, the best policy saved by that name (replacing
 * one saved since the job was queued, or by its own attempt before a restart). */
static int report(struct search_run *s, json_t **result, struct eng_error *err)
{
    long best = best_trial(s->trials);
    if (best < 0) {
        const json_t *last = json_array_get(s->trials, json_array_size(s->trials) - 1);
        return eng_fail(err, ENG_INVALID, "every trial failed (%zu); the last: %s",
                        json_array_size(s->trials),
                        last ? json_string_value(json_object_get(last, "error")) : "none ran");
    }
    const json_t *row = json_array_get(s->trials, (size_t)best);
    const json_t *policy = json_object_get(row, "policy");
    if (s->p.save_as) {
        struct policy_record r;
        int created;
        if (saved_policies_put(job_ctx_app(s->ctx)->storage, s->p.save_as, policy, NULL, 1, &r,
                               &created, err) != 0)
            return -1;
        policy_record_clear(&r);
        job_ctx_log(s->ctx, "saved the best policy as %s", s->p.save_as);
    }
    if (write_leaderboard(s, err) || write_curve(s, err)) return -1;
    *result = json_pack("{s:{s:O, s:O, s:O, s:O}, s:o, s:s*, s:s, s:s, s:s, s:s}", "best", "trial",
                        json_object_get(row, "trial"), "policy", policy, "params",
                        json_object_get(row, "params"), "value", json_object_get(row, "value"),
                        "trials", result_trials(s->trials), "saved_as", s->p.save_as, "objective",
                        "affinity", "model", s->p.jc.model_name, "dataset", s->p.jc.dataset_id,
                        "split", s->p.jc.split->name);
    if (!*result) return eng_no_memory(err);
    return job_search_report_heatmap(s->ctx, s->trials, *result, err) ||
                   job_classify_write_result(s->ctx, *result, err)
               ? -1
               : 0;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct search_run s = {.ctx = ctx, .trials = json_array()};
    int rc = s.trials ? job_search_params_open(&s.p, job_ctx_app(ctx), params, 0, err)
                      : eng_no_memory(err);
    if (rc == 0) {
        struct search_view view = search_space_view(s.p.space);
        s.dims = view.n;
        s.batches = job_classify_batches(&s.p.jc);
        s.algo = search_algo_new(s.p.algorithm, s.p.settings, &view, s.p.jc.seed, err);
        rc = s.algo ? run_trials(&s, err) : -1;
    }
    if (rc == 0) rc = report(&s, result, err);
    search_algo_free(s.algo);
    json_decref(s.trials);
    job_search_params_close(&s.p);
    return rc;
}

const struct job_kind job_kind_search = {
    .name = "search",
    .help = "a policy search over a space with $search placeholders (or a named space) by grid, "
            "random, evolution or TPE, each trial scored by the affinity objective: a clean "
            "model's accuracy on the val split with the trial's policy applied",
    .validate = validate,
    .run = run,
};
