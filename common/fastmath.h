/*
 * fastmath — an exp that vectorises.
 *
 * glibc's expf is a function call per element, so loops over 32,000 logits run scalar. exp_fast
 * is branch-free and inlinable, so `#pragma omp simd` loops become AVX-512/AVX2 code:
 *   exp(x) = 2^k * e^r,  k = round(x / ln 2),  r = x - k ln 2 in [-ln2/2, ln2/2],
 *   e^r by its degree-7 Taylor polynomial (truncation error < 1.2e-9 relative on that interval),
 *   ln 2 split into a high part exact in float and a low correction, 2^k built in the exponent bits.
 * Measured relative error against expf: below 3e-7 over [-87, 88] (tests/test_ops.c). Inputs are
 * clamped to that range, so very negative inputs give ~1e-38 instead of 0 (harmless in softmax);
 * NaN stays NaN.
 */
#ifndef RLHF_FASTMATH_H
#define RLHF_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float exp_fast(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest through the 1.5 * 2^23 trick: vectorises, unlike rintf */
    const float shift = 12582912.0f;
    float kf = (x * 1.44269504088896341f + shift) - shift;
    float r = x - kf * 0.693145751953125f;   /* ln 2 high part: 0x3f317200, exact times any k used */
    r = r - kf * 1.42860682e-06f;            /* ln 2 low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* unsigned shift: a NaN input (kf NaN, converted to some integer) must stay defined behaviour
     * and come out NaN through p, so NaN checks downstream still see it */
    uint32_t bits = ((uint32_t)(int32_t)kf + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
