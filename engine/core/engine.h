/* augengine: the augmentation and inference library. It knows nothing about HTTP; the server, the
 * CLI and the tests call the same functions. */
#ifndef AUGSERVE_ENGINE_H
#define AUGSERVE_ENGINE_H

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *engine_version(void);

/* The engine modules built into this library ("image", "audio", "nn", ...), NULL-terminated.
 * The server reports them in GET /v1 so clients can tell what a deployment offers. */
const char *const *engine_features(void);

#endif
