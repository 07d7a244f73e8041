/* Parity fixtures: images written by the scripts in tests/parity from the reference
 * implementations. Format (little-endian): "AUGF", u32 width, u32 height, u32 channels, then
 * height * width * channels bytes, rows top to bottom, channels interleaved. */
#ifndef AUGSERVE_TEST_FIXTURE_H
#define AUGSERVE_TEST_FIXTURE_H

#include "image.h"

/* Loads dir/name; NULL (with a message on stderr) when missing or malformed. */
struct img *fixture_load(const char *dir, const char *name);

/* Counts pixels (not samples) where a and b differ by more than tolerance in any channel; -1 when
 * their sizes or channel counts differ. max_diff (may be NULL) gets the largest difference. */
long fixture_diff(const struct img *a, const struct img *b, int tolerance, int *max_diff);

#endif
