/* The charts the evaluation job kinds write as PNG artifacts, drawn by a few lines of raster code
 * into an RGB image and encoded with the engine's PNG encoder: no plotting library. Most carry no
 * text; the numbers are in the artifacts next to them (CSV, result.json), and the API's README
 * section says what each axis is. The heatmap, whose cells are read one by one, writes numbers
 * in a 3 x 5 pixel font of its own (digits, '.', '-', 'e', '+', 'n', 'm'). */
#ifndef AUGSERVE_JOB_CHART_H
#define AUGSERVE_JOB_CHART_H

#include <stddef.h>

#include "core/error.h"
#include "metrics/classification.h"

#define JOB_CHART_WIDTH  480
#define JOB_CHART_HEIGHT 320
/* The plot's frame inside the image. */
#define JOB_CHART_MARGIN 20

/* The reliability diagram of Guo et al. 2017: per ECE bin (x, confidence 0 to 1) a blue bar up
 * to the bin's accuracy, and the gap to the bin's mean confidence as a narrower red bar over it
 * (above or below its top); the diagonal (perfect calibration) in grey. *png malloc'd. */
int job_chart_reliability(const struct metric_eval *e, void **png, size_t *size,
                          struct eng_error *err);

/* A bar per value around a zero line (green above, red below), with a black whisker of +-std;
 * the scale fits the largest |mean| + std. *png malloc'd. */
int job_chart_bars(const double *mean, const double *std, size_t n, void **png, size_t *size,
                   struct eng_error *err);

/* Curves over the same x (n points each, n >= 1): series s in the s-th colour of blue, red,
 * green, black, joined by straight lines; the y scale runs from 0 to the largest finite value.
 * A value that is not finite (an epoch not evaluated) is skipped and its neighbours joined.
 * *png malloc'd. */
int job_chart_curves(const double *const *series, size_t n_series, size_t n, void **png,
                     size_t *size, struct eng_error *err);

/* A scatter (Gontijo-Lopes et al. 2020's Figure 1): a point per finite (x[i], y[i]), a disc in
 * a black ring coloured by c[i] on a diverging scale, red at -s through white at 0 to blue at +s
 * (s the largest finite |c|), drawn as a colour bar in the right margin (+s at the top, a black
 * tick at 0). Grey lines through the reference (x_ref, y_ref); each axis fits the points and the
 * reference with a tenth of the range to spare. *png malloc'd. */
int job_chart_scatter(const double *x, const double *y, const double *c, size_t n, double x_ref,
                      double y_ref, void **png, size_t *size, struct eng_error *err);

/* A heatmap of rows x cols cells, row 0 at the bottom: cell (r, c) is value[r * cols + c] on a
 * sequential scale, a pale blue (a tenth of the way from white) at the lowest finite value to
 * blue at the highest (all blue when they
 * are one value); a value that is not finite (an empty cell) is light grey. Each cell shows its
 * value with 3 decimals when the text fits in it; row_labels are written left of the rows with an
 * "n" above them, col_labels below the columns (as many as fit) after an "m"; the colour bar in
 * the right margin has the highest value at its top and the lowest at its bottom. rows and cols
 * >= 1. *png malloc'd. */
int job_chart_heatmap(const double *value, size_t rows, size_t cols, const double *row_labels,
                      const double *col_labels, void **png, size_t *size, struct eng_error *err);

#endif
