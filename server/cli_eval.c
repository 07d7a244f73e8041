/* `augserve eval-2afc`: a similarity metric scored against the human judgements of BAPPS's 2AFC
 * triplets (metrics/metric.h reads the folders), per folder and over all of them. */
#include "cli.h"
#include "cli_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "metrics/metric.h"
#include "perceptual.h"

#define EVAL_CHUNK 32 /* triplets through the network at once */

struct eval {
    enum { EVAL_LPIPS, EVAL_SSIM, EVAL_MS_SSIM, EVAL_PSNR, EVAL_L2 } metric;
    struct model *model; /* for EVAL_LPIPS */
    double sum;          /* of every folder's triplet scores */
    size_t count;
};

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: augserve eval-2afc --dataset DIR --metric lpips:MODEL|ssim|ms_ssim|psnr|l2 "
            "[--threads T]\n"
            "Scores the metric on BAPPS 2AFC triplets: DIR holds ref/, p0/, p1/, judge/, or\n"
            "subfolders that do (as 2afc/val/*). MODEL is a model folder with a perceptual\n"
            "config. Prints {\"folder\", \"triplets\", \"score\"} per folder, then\n"
            "{\"metric\", \"triplets\", \"score\"} over all triplets.\n");
}

/* A pixel metric as a distance: smaller is closer. */
static int pixel_distance(const struct eval *e, const struct img *a, const struct img *b, double *d,
                          struct eng_error *err)
{
    double v = 0;
    int rc = e->metric == EVAL_SSIM      ? metric_ssim(a, b, METRIC_RGB, &v, err)
             : e->metric == EVAL_MS_SSIM ? metric_ms_ssim(a, b, METRIC_RGB, &v, err)
                                         : metric_mse(a, b, METRIC_RGB, &v, err);
    *d = e->metric == EVAL_PSNR ? -metric_psnr(v) : e->metric == EVAL_L2 ? v : 1 - v;
    return rc;
}

/* d0 and d1 of triplets [start, start + n): images[3k..3k+2] are ref, p0, p1. */
static int chunk_distances(const struct eval *e, struct img **images, int n, double *d0, double *d1,
                           struct eng_error *err)
{
    if (e->metric != EVAL_LPIPS) {
        for (int k = 0; k < n; k++)
            if (pixel_distance(e, images[3 * k], images[3 * k + 1], &d0[k], err) ||
                pixel_distance(e, images[3 * k], images[3 * k + 2], &d1[k], err))
                return -1;
        return 0;
    }
    int pairs[4 * EVAL_CHUNK];
    double d[2 * EVAL_CHUNK];
    for (int k = 0; k < n; k++) {
        int pair[4] = {3 * k, 3 * k + 1, 3 * k, 3 * k + 2};
        memcpy(pairs + 4 * k, pair, sizeof pair);
    }
    if (perceptual_lpips(e->model, images, 3 * n, pairs, 2 * n, d, NULL, err)) return -1;
    for (int k = 0; k < n; k++) {
        d0[k] = d[2 * k];
        d1[k] = d[2 * k + 1];
    }
    return 0;
}

/* Loads the triplets [start, start + n) of b, all of one size: -1 (err) otherwise. */
static int load_chunk(const struct metric_bapps *b, size_t start, int n, struct img **images,
                      struct eng_error *err)
{
    for (int k = 0; k < n; k++) {
        const char *paths[3] = {b->ref[start + k], b->p0[start + k], b->p1[start + k]};
        for (int r = 0; r < 3; r++) {
            struct img *im = images[3 * k + r] = cli_load_image(paths[r], NULL, NULL, err);
            if (!im) return -1;
            if (im->width != images[0]->width || im->height != images[0]->height)
                return eng_fail(err, ENG_INVALID, "%s is %dx%d, %s is %dx%d: the sizes differ",
                                paths[r], im->width, im->height, b->ref[start], images[0]->width,
                                images[0]->height);
        }
    }
    return 0;
}

/* Scores one folder and prints its line. */
static int eval_folder(struct eval *e, const char *dir, const char *label)
{
    struct metric_bapps b;
    struct eng_error err = {0};
    if (metric_bapps_read(dir, &b, &err)) return fprintf(stderr, "augserve: %s\n", err.message), 1;
    double *d0 = calloc(b.count + 1, sizeof *d0), *d1 = calloc(b.count + 1, sizeof *d1);
    int rc = d0 && d1 ? 0 : eng_fail(&err, ENG_NO_MEMORY, "out of memory");
    for (size_t start = 0; rc == 0 && start < b.count; start += EVAL_CHUNK) {
        int n = b.count - start < EVAL_CHUNK ? (int)(b.count - start) : EVAL_CHUNK;
        struct img *images[3 * EVAL_CHUNK] = {0};
        rc = load_chunk(&b, start, n, images, &err);
        if (rc == 0) rc = chunk_distances(e, images, n, d0 + start, d1 + start, &err);
        for (int i = 0; i < 3 * n; i++)
            img_free(images[i]);
    }
    if (rc == 0) {
        double score = metric_2afc(d0, d1, b.h, b.count);
        e->sum += score * (double)b.count;
        e->count += b.count;
        cli_print_line(json_pack("{s:s, s:I, s:f}", "folder", label, "triplets",
                                 (json_int_t)b.count, "score", score));
    } else {
        fprintf(stderr, "augserve: %s\n", err.message);
    }
    free(d0);
    free(d1);
    metric_bapps_free(&b);
    return rc ? 1 : 0;
}

/* dir itself when it holds ref/, else each subfolder that does, in name order. */
static int eval_dataset(struct eval *e, const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/ref", dir);
    if (stat(path, &st) == 0) return eval_folder(e, dir, ".");
    struct dirent **entries = NULL; /* scandir leaves it as it is when it fails */
    int n = scandir(dir, &entries, NULL, alphasort), status = n < 0 ? 1 : 0;
    if (n < 0) fprintf(stderr, "augserve: %s: %s\n", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/ref", dir, entries[i]->d_name);
        if (status == 0 && entries[i]->d_name[0] != '.' && stat(path, &st) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, entries[i]->d_name);
            status = eval_folder(e, path, entries[i]->d_name);
        }
        free(entries[i]);
    }
    free(entries);
    if (status == 0 && e->count == 0) {
        fprintf(stderr, "augserve: %s: no ref/, p0/, p1/, judge/ folders\n", dir);
        status = 1;
    }
    return status;
}

int cli_eval_2afc(int argc, char **argv)
{
    static const char *const names[] = {"lpips", "ssim", "ms_ssim", "psnr", "l2"};
    const char *dataset = NULL, *metric = NULL;
    int threads = 0;
    const struct cli_flag flags[] = {{"--dataset", FLAG_TEXT, &dataset},
                                     {"--metric", FLAG_TEXT, &metric},
                                     {"--threads", FLAG_INT, &threads}};
    if (cli_parse_flags(argc, argv, flags, FLAG_COUNT(flags)) != 0) return eval_usage(stderr), 2;
    struct eval e = {0};
    size_t k = 0;
    while (metric && k < 5 && strcmp(metric, names[k]) != 0 &&
           !(k == 0 && strncmp(metric, "lpips:", 6) == 0))
        k++;
    if (!dataset || !metric || k == 5 || (k == 0 && strlen(metric) <= 6) || threads < 0)
        return eval_usage(stderr), 2;
    e.metric = (int)k;
    struct models *repo = NULL;
    if (k == 0 && !(e.model = cli_open_perceptual(metric + 6, threads, &repo))) return 1;
    struct eng_error err = {0};
    int status = img_codec_init(&err) == 0 ? eval_dataset(&e, dataset) : 1;
    if (err.code) fprintf(stderr, "augserve: %s\n", err.message);
    if (status == 0)
        cli_print_line(json_pack("{s:s, s:I, s:f}", "metric", metric, "triplets",
                                 (json_int_t)e.count, "score", e.sum / (double)e.count));
    model_release(e.model);
    models_close(repo);
    return status;
}
