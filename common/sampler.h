/*
 * sampler — the next token from one row of logits: greedy, temperature, top-k, top-p.
 *
 * Legend: V vocabulary size; logits is one (V) row of model_decode_step's output.
 *
 * The distribution sampled from, in this order (as Hugging Face's TemperatureLogitsWarper,
 * TopKLogitsWarper, TopPLogitsWarper apply them):
 *   1. temperature T: p_i ∝ exp(logit_i / T). T = 0 means greedy: the argmax (lowest id on ties).
 *   2. top-k (k > 0): keep the k largest logits (ties broken towards the lower id), renormalise.
 *   3. top-p (p < 1): sort what is left by probability (ties: lower id first) and keep the shortest
 *      prefix whose mass reaches p (the "nucleus"), renormalise.
 * The token is drawn with one rng_uniform_double from the caller's Rng. Give every sequence its own
 * stream — rng_fork(&run_rng, prompt_id * K + sample_index) — and a sequence's tokens depend only on
 * its seed and logits, not on which batch or thread it was decoded in.
 *
 * Besides the id, a call can report two log-probabilities of the chosen token:
 *   logp      under the distribution actually sampled (after 1-3; 0 for greedy)
 *   logp_raw  under softmax(logits) itself (T = 1, no truncation): what PPO's ratio and KL need.
 *
 * Cost: O(V) for greedy and temperature; O(V log k) for top-k; top-p sorts only the tokens that can
 * be in the nucleus (probability >= (1 - p) / (V - 1); the rest together weigh less than 1 - p).
 * Exponentials go through exp_fast (fastmath.h, relative error < 3e-7), sums in double.
 * A Sampler holds scratch space: use one per thread.
 */
#ifndef RLHF_SAMPLER_H
#define RLHF_SAMPLER_H

#include <stdint.h>

#include "err.h"
#include "rng.h"

typedef struct {
    float temperature; /* >= 0; 0 is greedy */
    int top_k;         /* >= 0; 0 keeps every token */
    float top_p;       /* in (0, 1]; 1 keeps every token */
} SamplerConfig;

typedef struct {
    float logit;
    int32_t id;
} SamplerCand;

typedef struct {
    SamplerConfig cfg;
    int vocab_size;
    SamplerCand *cand; /* (V) scratch */
    float *w;          /* (V) scratch: exp((logit - max) / T) */
} Sampler;

/* ERR_INPUT naming the parameter when temperature < 0 or not finite, top_k < 0, top_p outside (0, 1],
 * or vocab_size <= 0. */
Err sampler_create(Sampler *s, const SamplerConfig *cfg, int vocab_size);
void sampler_free(Sampler *s);

/* Draws a token from logits (V). logp and logp_raw may be NULL. Returns -1 (and touches nothing)
 * when a logit is NaN or +inf, or all are -inf: the model diverged, which the caller reports. */
int32_t sampler_sample(Sampler *s, const float *logits, Rng *rng, float *logp, float *logp_raw);

#endif
