/* augengine: the augmentation and inference library. It knows nothing about HTTP; the server, the
 * CLI and the tests call the same functions, so the benchmarks measure what the server runs.
 *
 * The engine is one folder per area, each a static library (engine/CMakeLists.txt) that links
 * only the areas below it; style.layers holds every #include to those links:
 *
 *   core <- image, audio <- policy <- classify <- data      core <- nn      core <- metrics
 *   nn, data <- train      policy <- search
 *
 * core (this folder) is what every area shares, and nothing else:
 *   error.h     the error value every fallible function returns (a code and a message naming
 *               the input); nothing in the engine prints
 *   img.h       the image buffer: 8-bit, interleaved, 1, 3 or 4 channels
 *   rng.h       Philox4x32-10 streams keyed by (seed, input, sample): no global generator
 *   parallel.h  a parallel for over independent items
 *   cancel.h    stopping long work early (a deadline, a client gone)
 *   cpu.h       which vector code this CPU may run
 *   parse.h     numbers from text, for every parameter, config value and flag
 *   engine.h    the library's version and the areas it was built with
 * Invariants: core keeps no state but the CPU check (read once); every function is thread-safe;
 * ownership is said where a function returns memory, and a failed call leaves nothing to free. */
#ifndef AUGSERVE_ENGINE_CORE_ENGINE_H
#define AUGSERVE_ENGINE_CORE_ENGINE_H

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *engine_version(void);

/* The engine modules built into this library ("image", "audio", "nn", ...), NULL-terminated.
 * The server reports them in GET /v1 so clients can tell what a deployment offers. */
const char *const *engine_features(void);

#endif
