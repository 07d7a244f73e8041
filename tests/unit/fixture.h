/* Parity fixtures: images written by the scripts in tests/parity from the reference
 * implementations. Format (little-endian): "AUGF", u32 width, u32 height, u32 channels, then
 * height * width * channels bytes, rows top to bottom, channels interleaved. */
#ifndef AUGSERVE_TEST_FIXTURE_H
#define AUGSERVE_TEST_FIXTURE_H

#include <jansson.h>
#include <stddef.h>

#include "core/img.h"

/* Loads dir/name; NULL (with a message on stderr) when missing or malformed. */
struct img *fixture_load(const char *dir, const char *name);

/* Counts pixels (not samples) where a and b differ by more than tolerance in any channel; -1 when
 * their sizes or channel counts differ. max_diff (may be NULL) gets the largest difference. */
long fixture_diff(const struct img *a, const struct img *b, int tolerance, int *max_diff);

/* A deterministic test image with every row different; with pad > 0 its rows are pad bytes
 * further apart than their content, the gap filled with 0xa5, to catch ops that ignore the
 * stride. NULL when memory runs out. */
struct img *fixture_pattern(int width, int height, int channels, size_t pad);

/* Runs an op on an input image per the test's own argument conventions. */
typedef struct img *(*fixture_op_fn)(const char *op, const json_t *args, const struct img *in,
                                     struct eng_error *err);

/* Checks every case of dir/manifest.json: {"cases": [{"op", "args", "input", "expected", and
 * optionally "name", "budget_pixels" (pixels allowed to differ, default 0) and "raises"}]}.
 * "expected": null means the reference refuses the case, and the op must fail with refused.
 * Every case must also leave its input untouched. Mismatches are printed to stderr. Returns the
 * number of failed cases and sets *total; a manifest that cannot be read counts as one failure
 * of zero cases. */
size_t fixture_check_manifest(const char *dir, fixture_op_fn run, enum eng_code refused,
                              size_t *total);

#endif
