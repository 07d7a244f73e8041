/* Which vector code this CPU may run. The build targets baseline x86-64, so vector code is
 * compiled for its own target (the AVX512 attribute below) and chosen at run time, with portable
 * C kept for every other CPU. */
#ifndef AUGSERVE_ENGINE_CORE_CPU_H
#define AUGSERVE_ENGINE_CORE_CPU_H

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))
#endif

/* Whether code marked AVX512 may run: the CPU has AVX512BW and VBMI, and AUGENGINE_NO_AVX512 is
 * not set in the environment (set, it keeps the portable code, so tests hold both to the same
 * output on a CPU that has AVX-512). Always 0 off x86-64. */
int cpu_avx512(void);

#endif
