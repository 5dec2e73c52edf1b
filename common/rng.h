/*
 * rng — a small seeded random number generator, the same numbers on every machine.
 *
 * SplitMix64: a 64-bit counter advanced by a fixed odd constant and passed through a bijective
 * mixer. Good enough statistically for sampling, initialisation and data shuffling, and trivially
 * splittable: rng_fork derives an independent stream (per thread, per prompt) from a parent, so
 * results do not depend on the thread count or on how work is batched.
 */
#ifndef RLHF_RNG_H
#define RLHF_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* An independent stream identified by (parent seed state, stream id); the parent is not advanced. */
Rng rng_fork(const Rng *parent, uint64_t stream);
uint64_t rng_u64(Rng *r);
/* Uniform integer in [0, n); n > 0. */
uint32_t rng_below(Rng *r, uint32_t n);
/* Uniform float in [0, 1), 24 random bits. */
float rng_uniform(Rng *r);
/* Uniform double in [0, 1), 53 random bits. */
double rng_uniform_double(Rng *r);
/* Standard normal (Box–Muller, one value per call). */
float rng_normal(Rng *r);

#endif
