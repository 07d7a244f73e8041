/* The RandAugment heatmap of a search (server/job_search_report.c): its data, each cell the mean
 * of the succeeded trials there worked out by hand, only for searches whose every policy is the
 * randaugment preset's; and its chart, a PNG of the charts' size whose cells have the colours
 * job_chart.h states (white at the lowest mean, blue at the highest, grey for an empty cell). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "image/codec.h"
#include "job_chart.h"
#include "job_search_report.h"

static json_t *load(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc) fail_msg("bad JSON in the test: %s", text);
    return doc;
}

#define RA(n, m) "{\"preset\": \"randaugment\", \"n\": " #n ", \"m\": " #m "}"

/* Trials at (n, m) = (1, 3) twice, (2, 9), (2, 3) failed, (1, 9), and one whose point gave no
 * policy (ignored). */
static const char TRIALS[] = "[{\"trial\": 0, \"policy\": " RA(
    1, 3) ", \"value\": 0.5, \"state\": \"succeeded\"},"
          " {\"trial\": 1, \"policy\": " RA(
              1, 3) ", \"value\": 0.75, \"state\": \"succeeded\"},"
                    " {\"trial\": 2, \"policy\": " RA(
                        2, 9) ", \"value\": 0.9, \"state\": \"succeeded\"},"
                              " {\"trial\": 3, \"policy\": " RA(
                                  2, 3) ", \"value\": null, \"state\": \"failed\"},"
                                        " {\"trial\": 4, \"policy\": {\"preset\": \"randaugment\", "
                                        "\"n\": 1, \"m\": 9, \"bins\": 31},"
                                        " \"value\": 0.25, \"state\": \"succeeded\"},"
                                        " {\"trial\": 5, \"value\": null, \"state\": \"failed\"}]";

static void test_heatmap_data(void **state)
{
    (void)state;
    json_t *trials = load(TRIALS), *heatmap = NULL;
    struct eng_error err = {0};
    assert_int_equal(job_search_heatmap(trials, &heatmap, &err), 0);
    /* (1, 3): (0.5 + 0.75) / 2; (2, 3): no success, null. */
    json_t *want = load("{\"n\": [1, 2], \"m\": [3, 9], \"value\": [[0.625, 0.25], [null, 0.9]]}");
    if (!json_equal(heatmap, want)) fail_msg("got %s", json_dumps(heatmap, JSON_COMPACT));
    json_decref(want);
    json_decref(heatmap);

    /* A trial of another policy: no heatmap; nor for no trials. */
    json_array_append_new(trials, load("{\"trial\": 6, \"policy\": {\"op\": \"Invert\"}, "
                                       "\"value\": 1, \"state\": \"succeeded\"}"));
    assert_int_equal(job_search_heatmap(trials, &heatmap, &err), 0);
    assert_null(heatmap);
    json_array_clear(trials);
    assert_int_equal(job_search_heatmap(trials, &heatmap, &err), 0);
    assert_null(heatmap);
    json_decref(trials);
}

static void expect_pixel(const struct img *im, int x, int y, int r, int g, int b)
{
    const unsigned char *p = img_row((struct img *)im, y) + 3 * x;
    if (abs(p[0] - r) > 1 || abs(p[1] - g) > 1 || abs(p[2] - b) > 1)
        fail_msg("pixel (%d, %d) is (%d, %d, %d), expected (%d, %d, %d)", x, y, p[0], p[1], p[2], r,
                 g, b);
}

static void test_heatmap_png(void **state)
{
    (void)state;
    json_t *trials = load(TRIALS), *heatmap = NULL;
    struct eng_error err = {0};
    void *png = NULL;
    size_t size;
    assert_int_equal(job_search_heatmap(trials, &heatmap, &err), 0);
    assert_int_equal(job_search_heatmap_png(heatmap, &png, &size, &err), 0);
    struct img *im = img_decode(png, size, NULL, NULL, &err);
    if (!im) fail_msg("%s", err.message);
    assert_int_equal(im->width, JOB_CHART_WIDTH);
    assert_int_equal(im->height, JOB_CHART_HEIGHT);
    assert_int_equal(im->channels, 3);
    /* The plot spans x 44..384 and y 30..290 (job_chart.c's HM_*): 2 x 2 cells, n = 2 on top.
     * Near each cell's outer corner, away from its text: (2, 3) empty, grey; (2, 9) the highest,
     * 0.9, blue (66, 110, 200); (1, 9) the lowest, 0.25, a tenth of the way from white to blue;
     * (1, 3), 0.625, at (0.625 - 0.25) / (0.9 - 0.25) of the scale, 0.1 + 0.9 * 0.577 of that
     * way. */
    expect_pixel(im, 48, 34, 228, 228, 228);
    expect_pixel(im, 380, 34, 66, 110, 200);
    expect_pixel(im, 380, 286, 236, 241, 250);
    double t = 0.1 + 0.9 * 0.375 / 0.65;
    expect_pixel(im, 48, 286, (int)(255 + t * (66 - 255) + 0.5), (int)(255 + t * (110 - 255) + 0.5),
                 (int)(255 + t * (200 - 255) + 0.5));
    img_free(im);
    free(png);
    json_decref(heatmap);
    json_decref(trials);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heatmap_data),
        cmocka_unit_test(test_heatmap_png),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
