#include "core/cpu.h"

#include <stdlib.h>

int cpu_avx512(void)
{
#if defined(__x86_64__)
    return !getenv("AUGENGINE_NO_AVX512") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
}
