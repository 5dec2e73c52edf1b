/*
 * rsstats — the arithmetic of rejection sampling, apart from any model: which sample to keep, and
 * how the reward of the best (and the median) of N samples grows with N.
 *
 * Legend: P prompts, K samples per prompt, N = 1..K the number of samples one would have drawn.
 * A score table is (P, K) row-major: scores[p * K + j] is the reward of sample j of prompt p.
 *
 * Best-of-N curves (Llama 2, Figure 7). With K samples drawn per prompt, the reward one would have
 * kept with only N of them is the maximum of N samples; we report its expectation over every
 * N-subset of the K (the K samples are i.i.d., so this is the unbiased estimate and far less noisy
 * than "the first N"). With the scores sorted s_1 <= ... <= s_K, the i-th smallest is the m-th
 * smallest of a random N-subset with probability C(i-1, m-1) C(K-i, N-m) / C(K, N); the maximum is
 * m = N, the median m = (N+1)/2 for odd N and the mean of m = N/2 and N/2+1 for even N. Ties need no
 * care: equal values are interchangeable in the sum. The curve is then averaged over prompts.
 *
 * Ranking: the Llama 2 recipe keeps the best sample by the *combined* reward (reward.h's gating of the
 * helpfulness and safety models), not by either model alone.
 *
 * Selection: the kept sample is the arg-max of the score (the first one on ties, so that the
 * earliest candidate — an older iteration's answer when pooling — wins a tie and the choice is
 * stable). Pooling is the same arg-max over candidates grouped by prompt.
 */
#ifndef RLHF_RSSTATS_H
#define RLHF_RSSTATS_H

#include <stdint.h>

/* The reward that ranks one sample (Llama 2 §3.2.3): with both reward models, reward_combine's gating
 * (the safety score on a safety prompt or when sigmoid(r_safe) < threshold, else the helpfulness
 * score); with one model (the other's score NAN), that model's score. */
float rsstats_rank_score(float r_help, float r_safe, int is_safety_prompt, float threshold);

/* Expected maximum and median of n scores drawn without replacement from scores[0..k-1];
 * 1 <= n <= k, every score finite. Either output may be NULL. */
void rsstats_expected(const float *scores, int k, int n, double *max, double *median);

/* The curves of a (P, K) table: mean_max[n-1] and mean_median[n-1] for n = 1..K, the mean over
 * prompts of rsstats_expected. P >= 1, K >= 1. */
void rsstats_curve(const float *scores, int64_t n_prompts, int k, double *mean_max, double *mean_median);

/* Index of the largest of scores[0..k-1] (the first on ties); k >= 1, NaN never wins. */
int rsstats_argmax(const float *scores, int k);

/* Pooling: n candidates, candidate i belongs to group[i] in [0, n_groups) and has score[i].
 * best[g] = the index of group g's highest-scoring candidate (the lowest index on ties), -1 when the
 * group has none. */
void rsstats_best_per_group(const int64_t *group, const float *score, int64_t n, int64_t n_groups, int64_t *best);

#endif
