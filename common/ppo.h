/*
 * ppo — the arithmetic of PPO as pure functions on float arrays: KL estimators, per-token rewards,
 * GAE, whitening (per batch and with running statistics), the clipped surrogate and the clipped
 * value loss with their gradients, explained variance, and the adaptive KL controller.
 * The first part is pure arithmetic on arrays: tests/test_ppo.c checks each function against values
 * worked out independently. The second part ("on models") applies it to sequences and models:
 * gathering log-probabilities and values, advantages for a batch, and the gradients of the policy
 * and value losses on a minibatch, so that ppo/main.c is the loop and tests/test_ppo.c can run PPO on a
 * planted task without reward-model checkpoints.
 *
 * Legend: n = response tokens of one sequence (GAE, rewards) or of a whole minibatch, flattened
 * (losses, whitening). Token t is the t-th generated token; logp[t] is its log-probability under the
 * policy being trained, logp_old[t] under the policy that sampled it, logp_ref[t] under the frozen
 * reference (the SFT model).
 *
 * KL estimators (Schulman, "Approximating KL divergence", 2020), per token with
 * lr = logp_ref - logp (the log of ref/policy, sampled from the policy):
 *   k1 = -lr                      unbiased, can be negative on a token and on a small batch
 *   k2 = lr^2 / 2                 biased, never negative
 *   k3 = (exp(lr) - 1) - lr       unbiased, never negative: what we log as "the KL"
 * The penalty in the reward is -beta * k (k1 by default, like Llama 2 and TRL).
 *
 * Per-token reward (Llama 2 §3.2.3, eq. 2 with the penalty spread over tokens as in Ziegler et al.):
 *   r[t] = -beta * k[t]  for t < n-1,   r[n-1] = -beta * k[n-1] + score
 * where score is the whitened logit of the gated reward R_c.
 *
 * GAE (Schulman et al. 2016), with the episode ending after the last token (V[n] = 0):
 *   delta[t] = r[t] + gamma V[t+1] - V[t];  A[t] = delta[t] + gamma lambda A[t+1];  R[t] = A[t] + V[t]
 *
 * Clipped surrogate (to minimise), ratio[t] = exp(logp[t] - logp_old[t]):
 *   L = mean_t max(-A[t] ratio[t], -A[t] clip(ratio[t], 1-eps, 1+eps))
 *   dL/dlogp[t] = -A[t] ratio[t] / n where the unclipped term is the max (ties included), else 0.
 * Clipped value loss (to minimise), vc = v_old + clip(v - v_old, -eps_v, eps_v):
 *   L = mean_t 0.5 max((v - R)^2, (vc - R)^2);  dL/dv[t] = (v - R) / n where the first is the max, else 0.
 */
#ifndef RLHF_PPO_H
#define RLHF_PPO_H

#include <stdint.h>

#include "err.h"
#include "model.h"

typedef enum { PPO_KL_K1 = 1, PPO_KL_K2 = 2, PPO_KL_K3 = 3 } PpoKl;

/* "k1" | "k2" | "k3" -> *out; ERR_INPUT naming the value otherwise. */
Err ppo_kl_parse(const char *s, PpoKl *out);
const char *ppo_kl_name(PpoKl k);
/* One token's estimate of KL(policy || ref), from its log-probability under each. */
float ppo_kl(PpoKl k, float logp, float logp_ref);

/* rewards (n) as above; n >= 1. */
void ppo_token_rewards(float *rewards, const float *logp, const float *logp_ref, int64_t n, PpoKl k, float beta,
                       float score);

/* adv, ret (n) from rewards, values (n); the episode ends after token n-1. */
void ppo_gae(float *adv, float *ret, const float *rewards, const float *values, int64_t n, float gamma,
             float lambda);

/* Mean and population standard deviation of x (n), in double. n >= 1. */
void ppo_moments(const float *x, int64_t n, double *mean, double *std);
/* x <- (x - mean) / (std + 1e-8), with the batch's own moments (n >= 2; with n == 1 x becomes 0).
 * shift_mean 0 keeps the mean: x <- mean + (x - mean) / (std + 1e-8). */
void ppo_whiten(float *x, int64_t n, int shift_mean);

/* Running mean and variance over everything seen so far (Chan et al.'s parallel merge: a batch's
 * moments fold in exactly, whatever the batch sizes). Saved in the trainer state for resume. */
typedef struct {
    double count, mean, m2; /* m2 = sum of squared deviations from mean */
} PpoRunning;

void ppo_running_update(PpoRunning *r, const float *x, int64_t n);
double ppo_running_std(const PpoRunning *r); /* population; 0 before two values */
/* x <- (x - mean) / (std + 1e-8) with the running statistics (after update, so the batch counts). */
void ppo_running_whiten(const PpoRunning *r, float *x, int64_t n);

typedef struct {
    double loss;      /* the mean clipped objective (to minimise) */
    double clipfrac;  /* fraction of tokens where the clipped term won */
    double approx_kl; /* mean 0.5 (logp - logp_old)^2: how far this minibatch moved since sampling */
} PpoPolicyStats;

/* Clipped surrogate over n tokens; dlogp (n) gets dL/dlogp (overwritten). */
void ppo_policy_loss(PpoPolicyStats *st, float *dlogp, const float *logp, const float *logp_old,
                     const float *adv, int64_t n, float clip);

typedef struct {
    double loss;     /* the mean clipped value loss */
    double clipfrac; /* fraction of tokens where the clipped term won */
} PpoValueStats;

/* Clipped value loss over n tokens; dv (n) gets dL/dv (overwritten). clip <= 0: no clipping. */
void ppo_value_loss(PpoValueStats *st, float *dv, const float *v, const float *v_old, const float *ret,
                    int64_t n, float clip);

/* 1 - Var(target - pred) / Var(target): 1 is a perfect value function, 0 no better than the mean,
 * negative worse. 0 when Var(target) is 0. */
double ppo_explained_variance(const float *pred, const float *target, int64_t n);

/* Adaptive KL controller (Ziegler et al. 2019): after a batch of n_steps sequences with mean KL kl,
 *   e = clip(kl / target - 1, -0.2, 0.2);  beta <- beta (1 + e n_steps / horizon).
 * target <= 0 keeps beta fixed. */
typedef struct {
    double beta, target, horizon;
} PpoKlCtl;

void ppo_klctl_update(PpoKlCtl *c, double kl, int64_t n_steps);

/* ---- the same on models ------------------------------------------------------------------------
 * One sampled answer is a PpoSeq: the prompt and answer tokens, and per answer token its
 * log-probability under the sampling policy (logp_old), under the reference (logp_ref), the value
 * estimate of the state before it (values), and after ppo_advantages its advantage and return.
 * Answer token j sits at sequence position np + j and is predicted from row np - 1 + j of a forward
 * over the sequence without its last token; that row gives its log-probability and its value.
 * A minibatch of B sequences is one right-padded (B, T) forward, T the longest of them. */
typedef struct {
    int32_t *tokens; /* (np + nr) */
    int np, nr;      /* np >= 1 prompt tokens, nr >= 1 answer tokens */
    float *logp_old, *logp_ref, *values, *adv, *ret; /* (nr) each, one allocation */
    float score;     /* the sequence's reward (whitened), added at its last token */
} PpoSeq;

void ppo_seq_init(PpoSeq *q, const int32_t *prompt, int np, const int32_t *answer, int nr);
void ppo_seq_free(PpoSeq *q);

/* Scratch for minibatches of up to B sequences of up to T positions (T <= the models' context). */
typedef struct {
    int B, T;
    int32_t *tokens, *targets; /* (B, T) */
    float *lp, *ent, *weights, *losses; /* (B, T) */
} PpoScratch;

void ppo_scratch_init(PpoScratch *sc, int B, int T);
void ppo_scratch_free(PpoScratch *sc);

typedef enum { PPO_LOGP_OLD, PPO_LOGP_REF, PPO_VALUES } PpoField;

/* Forward s[0..B) through m (capacity B, T allocated with model_alloc_train) and fill that field of
 * each sequence: log-probabilities with the LM head, values with the scalar head. ent_sum (may be
 * NULL; LM head only) gets the summed entropy of the policy at the answer positions added. */
void ppo_gather(Model *m, PpoScratch *sc, PpoSeq *const *s, int B, PpoField field, double *ent_sum);

typedef struct {
    double kl;          /* mean over sequences of the summed k3 (what we report as "the KL") */
    double kl_penalty;  /* the same with the penalty's estimator */
    double explained_variance; /* of the values against the returns, before whitening */
    int64_t tokens;     /* answer tokens */
    int nonfinite;      /* a log-probability, value or score was NaN or Inf */
} PpoAdvStats;

/* Per-token rewards (-beta k + score at the end), GAE, and advantages whitened over all the tokens of
 * the n sequences (whiten 0: left as they are). */
void ppo_advantages(PpoSeq *const *s, int n, PpoKl k, float beta, float gamma, float lambda, int whiten,
                    PpoAdvStats *st);

/* Forward and backward of the policy (LM head) on the clipped surrogate over the answer tokens of
 * s[0..B), or of the value model (scalar head) on the clipped value loss: m->grads is zeroed, then
 * holds the loss's gradient. The trainer then calls optim_finish_grads (NaN check, clipping) and
 * adamw_step, as every trainer does. */
void ppo_policy_backward(Model *m, PpoScratch *sc, PpoSeq *const *s, int B, float clip, PpoPolicyStats *st);
void ppo_value_backward(Model *m, PpoScratch *sc, PpoSeq *const *s, int B, float clip, PpoValueStats *st);

#endif
