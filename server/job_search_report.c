/* A search's reports (job_search_report.h), each from the rows of its told trials alone (those a
 * resumed search reads back): the leaderboard, the best-so-far curve and the RandAugment heatmap.
 * The heatmap is read from the trials' concrete policies rather than from the space, so it covers
 * a placeholder document over the preset as well as the named space. */
#include "job_search_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_chart.h"
#include "job_classify.h"
#include "json_text.h"

/* The row's (n, m), when its policy is the randaugment preset's at numbers: 1, else 0. */
static int cell_of(const json_t *row, double *n, double *m)
{
    const json_t *policy = json_object_get(row, "policy");
    const json_t *jn = json_object_get(policy, "n"), *jm = json_object_get(policy, "m");
    const char *preset = json_string_value(json_object_get(policy, "preset"));
    if (!preset || strcmp(preset, "randaugment") != 0 || !json_is_number(jn) || !json_is_number(jm))
        return 0;
    *n = json_number_value(jn);
    *m = json_number_value(jm);
    return 1;
}

static int ascending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..*n) and drops repeats. */
static void distinct(double *v, size_t *n)
{
    size_t kept = 0;
    qsort(v, *n, sizeof *v, ascending);
    for (size_t i = 0; i < *n; i++)
        if (kept == 0 || v[i] != v[kept - 1]) v[kept++] = v[i];
    *n = kept;
}

static size_t index_of(const double *v, size_t n, double x)
{
    size_t i = 0;
    while (i < n && v[i] != x)
        i++;
    return i;
}

/* A number as JSON: whole ones as integers (n and m are whole in the preset's grammar). */
static json_t *number(double x)
{
    return x == floor(x) && fabs(x) < 1e15 ? json_integer((json_int_t)x) : json_real(x);
}

static json_t *numbers(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, number(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* {"n", "m", "value"} from the axes and the cells' sums and counts. */
static json_t *heatmap_json(const double *ns, size_t nn, const double *ms, size_t nm,
                            const double *sum, const size_t *count)
{
    json_t *rows = json_array(), *doc = NULL;
    for (size_t i = 0; rows && i < nn; i++) {
        json_t *row = json_array();
        for (size_t j = 0; row && j < nm; j++) {
            size_t k = i * nm + j;
            if (json_array_append_new(row, count[k] ? json_real(sum[k] / (double)count[k])
                                                    : json_null()) != 0) {
                json_decref(row);
                row = NULL;
            }
        }
        if (!row || json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    if (rows)
        doc =
            json_pack("{s:o, s:o, s:o}", "n", numbers(ns, nn), "m", numbers(ms, nm), "value", rows);
    return doc;
}

int job_search_heatmap(const json_t *trials, json_t **heatmap, struct eng_error *err)
{
    size_t rows = json_array_size(trials), nn = 0, nm, i;
    const json_t *row;
    int randaugment = 1;
    *heatmap = NULL;
    double *ns = malloc((rows ? rows : 1) * sizeof *ns),
           *ms = malloc((rows ? rows : 1) * sizeof *ms);
    if (!ns || !ms) {
        free(ns);
        free(ms);
        return eng_no_memory(err);
    }
    json_array_foreach(trials, i, row)
    {
        if (!json_object_get(row, "policy")) continue; /* a point that gave no policy */
        randaugment = randaugment && cell_of(row, &ns[nn], &ms[nn]);
        nn++;
    }
    if (!randaugment || nn == 0) {
        free(ns);
        free(ms);
        return 0;
    }
    nm = nn;
    distinct(ns, &nn);
    distinct(ms, &nm);
    double *sum = calloc(nn * nm, sizeof *sum);
    size_t *count = calloc(nn * nm, sizeof *count);
    if (sum && count) {
        json_array_foreach(trials, i, row)
        {
            const json_t *value = json_object_get(row, "value");
            double n, m;
            if (!json_is_number(value) || !cell_of(row, &n, &m)) continue;
            size_t k = index_of(ns, nn, n) * nm + index_of(ms, nm, m);
            sum[k] += json_number_value(value);
            count[k]++;
        }
        *heatmap = heatmap_json(ns, nn, ms, nm, sum, count);
    }
    free(sum);
    free(count);
    free(ns);
    free(ms);
    return *heatmap ? 0 : eng_no_memory(err);
}

/* A JSON array of numbers (null: NaN) into v. */
static void read_numbers(const json_t *a, double *v)
{
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *x = json_array_get(a, i);
        v[i] = json_is_number(x) ? json_number_value(x) : NAN;
    }
}

int job_search_heatmap_png(const json_t *heatmap, void **png, size_t *size, struct eng_error *err)
{
    const json_t *n = json_object_get(heatmap, "n"), *m = json_object_get(heatmap, "m"),
                 *value = json_object_get(heatmap, "value");
    size_t rows = json_array_size(n), cols = json_array_size(m);
    double *ns = malloc(rows * sizeof *ns), *ms = malloc(cols * sizeof *ms),
           *cells = malloc(rows * cols * sizeof *cells);
    int rc = ns && ms && cells ? 0 : eng_no_memory(err);
    if (rc == 0) {
        read_numbers(n, ns);
        read_numbers(m, ms);
        for (size_t r = 0; r < rows; r++)
            read_numbers(json_array_get(value, r), cells + r * cols);
        rc = job_chart_heatmap(cells, rows, cols, ns, ms, png, size, err);
    }
    free(ns);
    free(ms);
    free(cells);
    return rc;
}

int job_search_report_heatmap(struct job_ctx *ctx, const json_t *trials, json_t *result,
                              struct eng_error *err)
{
    json_t *heatmap;
    void *png = NULL;
    size_t size;
    if (job_search_heatmap(trials, &heatmap, err) != 0) return -1;
    if (!heatmap) return 0;
    int rc = job_search_heatmap_png(heatmap, &png, &size, err);
    if (rc == 0) rc = job_classify_write_artifact(ctx, "heatmap.png", png, size, err);
    if (rc == 0 && json_object_set(result, "heatmap", heatmap) != 0) rc = eng_no_memory(err);
    json_decref(heatmap);
    free(png);
    return rc;
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

int job_search_report_leaderboard(struct job_ctx *ctx, const json_t *trials, struct eng_error *err)
{
    size_t n = json_array_size(trials), size = 0;
    const json_t **rows = malloc((n ? n : 1) * sizeof *rows);
    char *csv = NULL;
    FILE *f = rows ? open_memstream(&csv, &size) : NULL;
    if (!f) {
        free(rows);
        return eng_no_memory(err);
    }
    for (size_t i = 0; i < n; i++)
        rows[i] = json_array_get(trials, i);
    qsort(rows, n, sizeof *rows, by_rank);
    fputs("rank,trial,state,value,seconds,params,policy,job,epochs\n", f);
    for (size_t i = 0; i < n; i++) {
        const json_t *value = json_object_get(rows[i], "value");
        char *params = json_text(json_object_get(rows[i], "params"), JSON_COMPACT | JSON_SORT_KEYS);
        char *policy = json_text(json_object_get(rows[i], "policy"), JSON_COMPACT | JSON_SORT_KEYS);
        /* The metric after each epoch, for an objective that trains. */
        char *epochs = json_text(json_object_get(rows[i], "epochs"), JSON_COMPACT);
        fprintf(f, "%zu,%lld,%s,", i + 1,
                (long long)json_integer_value(json_object_get(rows[i], "trial")),
                json_string_value(json_object_get(rows[i], "state")));
        if (json_is_number(value)) fprintf(f, "%.17g", json_number_value(value));
        fprintf(f, ",%.3f,", json_number_value(json_object_get(rows[i], "seconds")));
        job_classify_csv_field(f, params ? params : "");
        fputc(',', f);
        job_classify_csv_field(f, policy ? policy : "");
        fprintf(f, ",%s,",
                json_is_string(json_object_get(rows[i], "job"))
                    ? json_string_value(json_object_get(rows[i], "job"))
                    : "");
        job_classify_csv_field(f, epochs ? epochs : "");
        fputc('\n', f);
        free(params);
        free(policy);
        free(epochs);
    }
    int rc = fclose(f) == 0 ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_artifact(ctx, "leaderboard.csv", csv, size, err);
    free(csv);
    free(rows);
    return rc;
}

int job_search_report_curve(struct job_ctx *ctx, const json_t *trials, struct eng_error *err)
{
    size_t n = json_array_size(trials);
    double *best = malloc(n * sizeof *best);
    void *png = NULL;
    size_t size;
    if (!best) return eng_no_memory(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(json_array_get(trials, i), "value");
        double prev = i ? best[i - 1] : NAN;
        best[i] =
            json_is_number(v) && !(json_number_value(v) <= prev) ? json_number_value(v) : prev;
    }
    const double *series[1] = {best};
    int rc = job_chart_curves(series, 1, n, &png, &size, err);
    if (rc == 0) rc = job_classify_write_artifact(ctx, "best.png", png, size, err);
    free(png);
    free(best);
    return rc;
}
