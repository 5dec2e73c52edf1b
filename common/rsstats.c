/* rsstats — best-of-N expectations and arg-max selection; see rsstats.h for the formulas. */
#include "rsstats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reward.h"
#include "util.h"

float rsstats_rank_score(float r_help, float r_safe, int is_safety_prompt, float threshold) {
    if (isnan(r_safe)) return r_help;
    if (isnan(r_help)) return r_safe;
    return reward_combine(r_help, r_safe, is_safety_prompt, threshold, NULL);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* log C(a, b), 0 <= b <= a. lgamma keeps it finite for any K a run could draw. */
static double log_choose(int a, int b) {
    return lgamma(a + 1.0) - lgamma(b + 1.0) - lgamma(a - b + 1.0);
}

/* E[m-th smallest of a random n-subset] of the ascending s[0..k-1]. */
static double expected_order_stat(const float *s, int k, int n, int m) {
    double lc = log_choose(k, n), e = 0;
    /* s[i] (the (i+1)-th smallest) needs m-1 of the i below it and n-m of the k-1-i above it. */
    for (int i = m - 1; i <= k - 1 - (n - m); i++)
        e += exp(log_choose(i, m - 1) + log_choose(k - 1 - i, n - m) - lc) * s[i];
    return e;
}

void rsstats_expected(const float *scores, int k, int n, double *max, double *median) {
    ASSERT(k >= 1 && n >= 1 && n <= k);
    float *s = xmalloc((size_t)k * sizeof *s);
    memcpy(s, scores, (size_t)k * sizeof *s);
    for (int i = 0; i < k; i++) ASSERT(isfinite(s[i]));
    qsort(s, (size_t)k, sizeof *s, cmp_float);
    if (max) *max = expected_order_stat(s, k, n, n);
    if (median) {
        if (n % 2) *median = expected_order_stat(s, k, n, (n + 1) / 2);
        else *median = 0.5 * (expected_order_stat(s, k, n, n / 2) + expected_order_stat(s, k, n, n / 2 + 1));
    }
    free(s);
}

void rsstats_curve(const float *scores, int64_t n_prompts, int k, double *mean_max, double *mean_median) {
    ASSERT(n_prompts >= 1 && k >= 1);
    for (int n = 1; n <= k; n++) {
        double smax = 0, smed = 0;
        for (int64_t p = 0; p < n_prompts; p++) {
            double mx, md;
            rsstats_expected(scores + p * k, k, n, &mx, &md);
            smax += mx;
            smed += md;
        }
        mean_max[n - 1] = smax / (double)n_prompts;
        mean_median[n - 1] = smed / (double)n_prompts;
    }
}

int rsstats_argmax(const float *scores, int k) {
    ASSERT(k >= 1);
    int best = 0;
    for (int j = 1; j < k; j++)
        if (scores[j] > scores[best] || isnan(scores[best])) best = j;
    return best;
}

void rsstats_best_per_group(const int64_t *group, const float *score, int64_t n, int64_t n_groups, int64_t *best) {
    for (int64_t g = 0; g < n_groups; g++) best[g] = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t g = group[i];
        ASSERT(g >= 0 && g < n_groups);
        if (isnan(score[i])) continue;
        if (best[g] < 0 || score[i] > score[best[g]]) best[g] = i;
    }
}
