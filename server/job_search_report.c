/* The RandAugment heatmap of a search (job_search_report.h). It is read from the trials' concrete
 * policies rather than from the space, so that it needs nothing but the rows a search keeps (and
 * a resumed search reads back), and covers a placeholder document over the preset as well as the
 * named space. */
#include "job_search_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job_chart.h"
#include "job_classify.h"

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
