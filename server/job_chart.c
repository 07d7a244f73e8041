/* The job kinds' charts (job_chart.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/codec.h"
#include "job_chart.h"

#define W      JOB_CHART_WIDTH
#define H      JOB_CHART_HEIGHT
#define M      JOB_CHART_MARGIN
#define PLOT_W (W - 2 * M)
#define PLOT_H (H - 2 * M)

static const unsigned char BLACK[3] = {0, 0, 0}, GREY[3] = {170, 170, 170},
                           BLUE[3] = {66, 110, 200}, RED[3] = {215, 70, 60},
                           GREEN[3] = {60, 160, 80};

/* Fills the pixels x0 <= x <= x1, y0 <= y <= y1 (in any order), clipped to the image. */
static void fill(struct img *im, int x0, int y0, int x1, int y1, const unsigned char rgb[3])
{
    int t;
    if (x0 > x1) t = x0, x0 = x1, x1 = t;
    if (y0 > y1) t = y0, y0 = y1, y1 = t;
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < im->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < im->width; x++)
            memcpy(img_row(im, y) + 3 * x, rgb, 3);
}

/* A white canvas with the plot's frame. */
static struct img *canvas(struct eng_error *err)
{
    struct img *im = img_new(W, H, 3, err);
    if (!im) return NULL;
    memset(im->data, 255, im->stride * (size_t)H);
    fill(im, M, M, M, H - M, BLACK);
    fill(im, M, H - M, W - M, H - M, BLACK);
    return im;
}

static int encode(struct img *im, void **png, size_t *size, struct eng_error *err)
{
    int rc = img_encode(im, IMG_PNG, 0, NULL, png, size, err);
    img_free(im);
    return rc;
}

/* The plot's y pixel of v in [0, 1]. */
static int plot_y(double v)
{
    return H - M - (int)lround(v * PLOT_H);
}

int job_chart_reliability(const struct metric_eval *e, void **png, size_t *size,
                          struct eng_error *err)
{
    struct img *im = canvas(err);
    if (!im) return -1;
    for (int x = 0; x <= PLOT_W; x++) /* the diagonal, two pixels thick */
        fill(im, M + x, plot_y((double)x / PLOT_W), M + x, plot_y((double)x / PLOT_W) + 1, GREY);
    for (size_t b = 0; b < METRIC_ECE_BINS; b++) {
        if (!e->bin_count[b]) continue;
        int x0 = M + 1 + (int)(b * PLOT_W / METRIC_ECE_BINS) + 1;
        int x1 = M + (int)((b + 1) * PLOT_W / METRIC_ECE_BINS) - 1;
        double accuracy = (double)e->bin_correct[b] / (double)e->bin_count[b];
        double confidence = e->bin_confidence[b] / (double)e->bin_count[b];
        fill(im, x0, plot_y(accuracy), x1, H - M - 1, BLUE);
        /* The gap, narrower than the bar so that the bar's top stays in sight under it. */
        int quarter = (x1 - x0) / 4;
        if (plot_y(confidence) != plot_y(accuracy))
            fill(im, x0 + quarter, plot_y(confidence), x1 - quarter, plot_y(accuracy), RED);
    }
    return encode(im, png, size, err);
}

int job_chart_bars(const double *mean, const double *std, size_t n, void **png, size_t *size,
                   struct eng_error *err)
{
    struct img *im = canvas(err);
    if (!im) return -1;
    double top = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(mean[i]) && fabs(mean[i]) + std[i] > top) top = fabs(mean[i]) + std[i];
    if (top == 0) top = 1;
    int zero = M + PLOT_H / 2;
    /* The pixel row of value v, +-top at the plot's top and bottom. */
#define ROW(v) (zero - (int)lround((v) / top * (PLOT_H / 2)))
    fill(im, M, zero, W - M, zero, GREY);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(mean[i])) continue;
        int x0 = M + 2 + (int)(i * PLOT_W / n), x1 = M + (int)((i + 1) * PLOT_W / n) - 2;
        int mid = (x0 + x1) / 2;
        if (ROW(mean[i]) != zero) fill(im, x0, ROW(mean[i]), x1, zero, mean[i] > 0 ? GREEN : RED);
        if (std[i] > 0) fill(im, mid, ROW(mean[i] - std[i]), mid, ROW(mean[i] + std[i]), BLACK);
    }
#undef ROW
    return encode(im, png, size, err);
}

/* A straight line from (x0, y0) to (x1, y1), two pixels thick, by as many steps as its longer
 * side has pixels. */
static void line(struct img *im, int x0, int y0, int x1, int y1, const unsigned char rgb[3])
{
    int steps = abs(x1 - x0) > abs(y1 - y0) ? abs(x1 - x0) : abs(y1 - y0);
    for (int k = 0; k <= steps; k++) {
        int x = x0 + (steps ? (x1 - x0) * k / steps : 0);
        int y = y0 + (steps ? (y1 - y0) * k / steps : 0);
        fill(im, x, y, x + 1, y + 1, rgb);
    }
}

int job_chart_curves(const double *const *series, size_t n_series, size_t n, void **png,
                     size_t *size, struct eng_error *err)
{
    static const unsigned char *const colours[] = {BLUE, RED, GREEN, BLACK};
    struct img *im = canvas(err);
    if (!im) return -1;
    double top = 0;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < n; i++)
            if (isfinite(series[s][i]) && series[s][i] > top) top = series[s][i];
    if (top == 0) top = 1;
    for (size_t s = 0; s < n_series; s++) {
        int px = -1, py = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(series[s][i])) continue;
            int x = M + (n > 1 ? (int)(i * PLOT_W / (n - 1)) : PLOT_W / 2);
            int y = plot_y(series[s][i] < 0 ? 0 : series[s][i] / top);
            if (px < 0) px = x, py = y;
            line(im, px, py, x, y, colours[s % 4]);
            px = x, py = y;
        }
    }
    return encode(im, png, size, err);
}

/* The range [*lo, *hi] of v's finite values and ref, widened by a tenth on each side (by 0.1 when
 * they are all one value). */
static void fit(const double *v, size_t n, double ref, double *lo, double *hi)
{
    *lo = *hi = ref;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
    double pad = *hi > *lo ? (*hi - *lo) / 10 : 0.1;
    *lo -= pad;
    *hi += pad;
}

/* The diverging scale's colour of t in [-1, 1]: red at -1, white at 0, blue at 1. */
static void diverging(double t, unsigned char rgb[3])
{
    const unsigned char *end = t < 0 ? RED : BLUE;
    double a = fmin(fabs(t), 1);
    for (int k = 0; k < 3; k++)
        rgb[k] = (unsigned char)lround(255 + a * (end[k] - 255));
}

/* A disc of radius r around (cx, cy). */
static void disc(struct img *im, int cx, int cy, int r, const unsigned char rgb[3])
{
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= r * r) fill(im, cx + dx, cy + dy, cx + dx, cy + dy, rgb);
}

int job_chart_scatter(const double *x, const double *y, const double *c, size_t n, double x_ref,
                      double y_ref, void **png, size_t *size, struct eng_error *err)
{
    struct img *im = canvas(err);
    if (!im) return -1;
    double x0, x1, y0, y1, scale = 0;
    fit(x, n, x_ref, &x0, &x1);
    fit(y, n, y_ref, &y0, &y1);
    for (size_t i = 0; i < n; i++)
        if (isfinite(c[i]) && fabs(c[i]) > scale) scale = fabs(c[i]);
    if (scale == 0) scale = 1;
        /* The pixel column and row of a value. */
#define COL(v) (M + (int)lround(((v)-x0) / (x1 - x0) * PLOT_W))
#define ROW(v) plot_y(((v)-y0) / (y1 - y0))
    fill(im, COL(x_ref), M, COL(x_ref), H - M - 1, GREY);
    fill(im, M + 1, ROW(y_ref), W - M, ROW(y_ref), GREY);
    for (size_t i = 0; i < n; i++) {
        unsigned char rgb[3];
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        diverging(isfinite(c[i]) ? c[i] / scale : 0, rgb);
        disc(im, COL(x[i]), ROW(y[i]), 6, BLACK);
        disc(im, COL(x[i]), ROW(y[i]), 4, rgb);
    }
#undef COL
#undef ROW
    /* The colour bar in the right margin: +scale at the top, -scale at the bottom, a tick at 0. */
    for (int row = M; row <= H - M; row++) {
        unsigned char rgb[3];
        diverging(1 - 2 * (double)(row - M) / PLOT_H, rgb);
        fill(im, W - M + 6, row, W - M + 13, row, rgb);
    }
    fill(im, W - M + 3, M + PLOT_H / 2, W - M + 16, M + PLOT_H / 2, BLACK);
    return encode(im, png, size, err);
}

/* ---- The heatmap ---------------------------------------------------------------------------- */

/* The font: 3 x 5 pixels a glyph, each row 3 bits (the high bit leftmost), drawn at FONT_SCALE
 * with a column between glyphs. */
#define FONT_SCALE    2
#define GLYPH_W       (3 * FONT_SCALE)
#define GLYPH_H       (5 * FONT_SCALE)
#define GLYPH_ADVANCE (4 * FONT_SCALE)

static const struct {
    char c;
    unsigned char rows[5];
} glyphs[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'-', {0, 0, 7, 0, 0}},
    {'+', {0, 2, 7, 2, 0}}, {'e', {0, 7, 7, 4, 7}}, {'n', {0, 0, 6, 5, 5}}, {'m', {0, 0, 7, 7, 5}},
};

static int text_width(const char *text)
{
    int n = (int)strlen(text);
    return n ? n * GLYPH_ADVANCE - FONT_SCALE : 0;
}

/* text with its top left corner at (x, y); a character without a glyph is a space. */
static void text(struct img *im, int x, int y, const char *t, const unsigned char rgb[3])
{
    for (; *t; t++, x += GLYPH_ADVANCE)
        for (size_t g = 0; g < sizeof glyphs / sizeof glyphs[0]; g++) {
            if (glyphs[g].c != *t) continue;
            for (int row = 0; row < 5; row++)
                for (int col = 0; col < 3; col++)
                    if (glyphs[g].rows[row] & (4 >> col))
                        fill(im, x + col * FONT_SCALE, y + row * FONT_SCALE,
                             x + (col + 1) * FONT_SCALE - 1, y + (row + 1) * FONT_SCALE - 1, rgb);
        }
}

/* The heatmap's layout: the plot's left, top, right and bottom pixels, and the colour bar's
 * left, with room for the labels around them. */
#define HM_LEFT   (M + 3 * GLYPH_ADVANCE)
#define HM_TOP    (M + GLYPH_H)
#define HM_RIGHT  (W - 12 * GLYPH_ADVANCE)
#define HM_BOTTOM (H - M - GLYPH_H)
#define HM_BAR    (HM_RIGHT + 2 * GLYPH_ADVANCE)

/* The sequential scale's colour of t in [0, 1]: a tenth of the way from white to blue at 0 (a
 * cell stands out from the white ground), blue at 1. */
static void sequential(double t, unsigned char rgb[3])
{
    diverging(0.1 + 0.9 * fmax(0, fmin(t, 1)), rgb);
}

int job_chart_heatmap(const double *value, size_t rows, size_t cols, const double *row_labels,
                      const double *col_labels, void **png, size_t *size, struct eng_error *err)
{
    static const unsigned char EMPTY[3] = {228, 228, 228}, WHITE[3] = {255, 255, 255};
    struct img *im = img_new(W, H, 3, err);
    if (!im) return -1;
    memset(im->data, 255, im->stride * (size_t)H);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < rows * cols; i++)
        if (isfinite(value[i])) lo = fmin(lo, value[i]), hi = fmax(hi, value[i]);
    char label[32];
    /* Cell (r, c) spans x0..x1, y0..y1, with a white pixel between cells. */
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            int x0 = HM_LEFT + (int)(c * (HM_RIGHT - HM_LEFT) / cols) + 1,
                x1 = HM_LEFT + (int)((c + 1) * (HM_RIGHT - HM_LEFT) / cols) - 1,
                y1 = HM_BOTTOM - (int)(r * (HM_BOTTOM - HM_TOP) / rows) - 1,
                y0 = HM_BOTTOM - (int)((r + 1) * (HM_BOTTOM - HM_TOP) / rows) + 1;
            double v = value[r * cols + c], t = hi > lo ? (v - lo) / (hi - lo) : 1;
            unsigned char rgb[3];
            if (!isfinite(v)) {
                fill(im, x0, y0, x1, y1, EMPTY);
                continue;
            }
            sequential(t, rgb);
            fill(im, x0, y0, x1, y1, rgb);
            snprintf(label, sizeof label, "%.3f", v);
            if (text_width(label) + 4 <= x1 - x0 && GLYPH_H + 4 <= y1 - y0)
                text(im, (x0 + x1 - text_width(label)) / 2, (y0 + y1 - GLYPH_H) / 2, label,
                     t > 0.6 ? WHITE : BLACK);
        }
    /* The rows' labels, right-aligned to the plot; the columns', as many as fit side by side. */
    text(im, HM_LEFT - GLYPH_ADVANCE - text_width("n"), M - GLYPH_H / 2, "n", BLACK);
    int limit = H; /* the last pixel a row's label may use, going up */
    for (size_t r = 0; r < rows; r++) {
        int y = HM_BOTTOM - (int)((2 * r + 1) * (HM_BOTTOM - HM_TOP) / (2 * rows)) - GLYPH_H / 2;
        snprintf(label, sizeof label, "%g", row_labels[r]);
        if (y + GLYPH_H > limit) continue;
        text(im, HM_LEFT - GLYPH_ADVANCE / 2 - text_width(label), y, label, BLACK);
        limit = y - FONT_SCALE;
    }
    text(im, M, HM_BOTTOM + GLYPH_H / 2, "m", BLACK);
    int next = 0; /* the first pixel a column's label may use */
    for (size_t c = 0; c < cols; c++) {
        int mid = HM_LEFT + (int)((2 * c + 1) * (HM_RIGHT - HM_LEFT) / (2 * cols));
        snprintf(label, sizeof label, "%g", col_labels[c]);
        int x = mid - text_width(label) / 2;
        if (x < next) continue;
        text(im, x, HM_BOTTOM + GLYPH_H / 2, label, BLACK);
        next = x + text_width(label) + GLYPH_ADVANCE;
    }
    /* The colour bar, the highest value at its top. */
    for (int row = HM_TOP; row <= HM_BOTTOM; row++) {
        unsigned char rgb[3];
        sequential(1 - (double)(row - HM_TOP) / (HM_BOTTOM - HM_TOP), rgb);
        fill(im, HM_BAR, row, HM_BAR + 2 * GLYPH_ADVANCE, row, rgb);
    }
    fill(im, HM_BAR - 1, HM_TOP, HM_BAR - 1, HM_BOTTOM, BLACK);
    if (hi >= lo) {
        snprintf(label, sizeof label, "%.3f", hi);
        text(im, HM_BAR + 3 * GLYPH_ADVANCE, HM_TOP, label, BLACK);
        snprintf(label, sizeof label, "%.3f", lo);
        text(im, HM_BAR + 3 * GLYPH_ADVANCE, HM_BOTTOM - GLYPH_H, label, BLACK);
    }
    return encode(im, png, size, err);
}
