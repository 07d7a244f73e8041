/* A small parallel for: runs fn(ctx, i) for i in [0, n) on up to `threads` threads (the caller's
 * included), each taking the next index as it frees up. For independent work items, such as the
 * samples of one augment request. */
#ifndef AUGSERVE_ENGINE_CORE_PARALLEL_H
#define AUGSERVE_ENGINE_CORE_PARALLEL_H

#include <stddef.h>

/* Returns once every index ran. If threads cannot be started, the caller runs the rest itself.
 * The threads it starts have the caller's cancellation check installed (core/cancel.h). */
void parallel_for(size_t n, int threads, void (*fn)(void *ctx, size_t i), void *ctx);

#endif
