#include "core/engine.h"

#include <stddef.h>

const char *engine_version(void)
{
    return AUGSERVE_VERSION;
}

const char *const *engine_features(void)
{
    /* Each engine module adds its name here as it lands. */
    static const char *const features[] = {"image",   "targets", "audio", "nn",
                                           "metrics", "data",    NULL};
    return features;
}
