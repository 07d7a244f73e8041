/* Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11). A stream is keyed by the
 * request's seed and addressed by (input index, sample index, stream), so a sample's draws never
 * depend on thread count, batch order or process: the same coordinates give the same numbers. */
#ifndef AUGSERVE_ENGINE_CORE_RNG_H
#define AUGSERVE_ENGINE_CORE_RNG_H

#include <stdint.h>

/* A value type: copy it to fork a stream's current state. */
struct rng {
    uint32_t key[2];
    uint32_t counter[4]; /* [0] counts blocks; [1..3] address the stream */
    uint32_t block[4];
    unsigned next; /* index into block; 4 = spent */
};

/* Stream numbers: the policy's own draws, then one per op application for pixel noise. */
#define RNG_STREAM_POLICY 0u
#define RNG_STREAM_OP(i)  (1u + (uint32_t)(i))

void rng_init(struct rng *r, uint64_t seed, uint32_t input, uint32_t sample, uint32_t stream);

/* The raw block function: out = Philox4x32-10(counter, key). */
void rng_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

uint32_t rng_u32(struct rng *r);
/* Uniform in [0, 1), 53 random bits. */
double rng_uniform(struct rng *r);
/* Uniform integer in [0, n), unbiased; n >= 1. */
uint32_t rng_below(struct rng *r, uint32_t n);
/* Standard normal. */
double rng_normal(struct rng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang, 2000). */
double rng_gamma(struct rng *r, double shape);
/* Beta(a, b), a, b > 0. */
double rng_beta(struct rng *r, double a, double b);
/* Dirichlet(alpha, ..., alpha) over n weights, alpha > 0. */
void rng_dirichlet(struct rng *r, double alpha, int n, double *weights);

#endif
