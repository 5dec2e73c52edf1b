/*
 * Finite-difference gradient checking for the Check suites.
 *
 * The loss under test is a double computed from float32 kernels. A central difference with step eps
 * has truncation error O(eps^2) and rounding error about (float epsilon * |terms|) / eps; with inputs
 * of order 1, eps = 1e-2 .. 1e-3 and losses that are weighted sums of a few hundred outputs, both stay
 * well under 1e-3 absolute. Each sampled coordinate must satisfy
 *     |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)
 * with the bounds stated at each call (kernels: rtol 2e-3, atol 2e-4, tight enough that scaling
 * one term of a backward pass by 1.01 fails the check).
 */
#ifndef RLHF_GRADCHECK_H
#define RLHF_GRADCHECK_H

#include <check.h>
#include <math.h>
#include <stdio.h>

#include "rng.h"

typedef double (*GradcheckLoss)(void *ctx);

/* Checks grad against central differences of loss() for up to `samples` coordinates of x (all of them
 * when n <= samples, else a seeded random subset). Returns the worst error ratio (error / bound). */
static inline double gradcheck(const char *name, GradcheckLoss loss, void *ctx, float *x, const float *grad,
                               size_t n, size_t samples, float eps, double rtol, double atol) {
    Rng r;
    rng_seed(&r, 1234 + n);
    double worst = 0.0;
    size_t count = n <= samples ? n : samples;
    for (size_t s = 0; s < count; s++) {
        size_t i = n <= samples ? s : rng_below(&r, (uint32_t)n);
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double numeric = (lp - lm) / (2.0 * eps), analytic = grad[i];
        double bound = atol + rtol * fmax(fabs(analytic), fabs(numeric));
        double err = fabs(analytic - numeric);
        if (err / bound > worst) worst = err / bound;
        ck_assert_msg(err <= bound, "%s[%zu]: analytic %.6g vs numeric %.6g (error %.3g > bound %.3g)", name, i,
                      analytic, numeric, err, bound);
    }
    return worst;
}

static inline void fill_normal(float *x, size_t n, float scale, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(r);
}

static inline double weighted_sum(const float *out, const float *w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
    return s;
}

#endif
