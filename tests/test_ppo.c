/*
 * ppo: every formula of common/ppo.h against values worked out independently.
 *
 * The reference numbers come from PyTorch (float64, autograd for the gradients), with this script
 * (run with /work/main/.venv2/bin/python; the inputs are the arrays in the tests below):
 *
 *   r = [0.1, -0.2, 0.05, 1.0]; v = [0.5, 0.3, -0.1, 0.2]; gamma, lam = 0.9, 0.8
 *   GAE by the backward recursion, V after the last token 0
 *   x = [1, 2, 4, 7]: (x - x.mean()) / (x.std(unbiased=False) + 1e-8)
 *   logp (requires_grad), old, adv as in test_policy_loss; ratio = exp(logp - old)
 *   L = max(-adv ratio, -adv clamp(ratio, 0.8, 1.2)).mean(); L.backward()
 *   v (requires_grad), v_old, R as in test_value_loss; vc = v_old + clamp(v - v_old, -0.2, 0.2)
 *   VL = 0.5 max((v - R)^2, (vc - R)^2).mean(); VL.backward()
 *   lg = logp_ref - logp: k1 = -lg, k2 = lg^2 / 2, k3 = exp(lg) - 1 - lg
 *
 * Others are by hand (in the comments next to them) or by a property (a sampled KL estimate against
 * the exact KL of two categorical distributions; finite differences for the gradients).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gen.h"
#include "model.h"
#include "optim.h"
#include "ppo.h"
#include "reward.h"
#include "rng.h"
#include "testutil.h"
#include "threads.h"

#define EPS 1e-5

static void assert_close(const float *got, const double *want, int n, double tol) {
    for (int i = 0; i < n; i++) ck_assert_msg(fabs(got[i] - want[i]) <= tol, "[%d] got %.8f want %.8f", i, got[i], want[i]);
}

START_TEST(test_kl_estimators) {
    const float lp[3] = {-1.0f, -0.3f, -2.0f}, lr[3] = {-1.2f, -0.3f, -1.0f};
    const double k1[3] = {0.2, 0, -1}, k2[3] = {0.02, 0, 0.5}, k3[3] = {0.018730753077981888, 0, 0.7182818284590451};
    for (int i = 0; i < 3; i++) {
        ck_assert(fabs(ppo_kl(PPO_KL_K1, lp[i], lr[i]) - k1[i]) < EPS);
        ck_assert(fabs(ppo_kl(PPO_KL_K2, lp[i], lr[i]) - k2[i]) < EPS);
        ck_assert(fabs(ppo_kl(PPO_KL_K3, lp[i], lr[i]) - k3[i]) < EPS);
    }
    /* k3 keeps its precision for a tiny difference: lr = 1e-4 -> ~ lr^2/2 = 5e-9 */
    float tiny = ppo_kl(PPO_KL_K3, -1.0f, -1.0f + 1e-4f);
    ck_assert(tiny > 0 && fabs(tiny - 5e-9) < 5e-10);
}
END_TEST

/* Sampling from p, the means of k1 and k3 approach KL(p||q); k2 and k3 are never negative. */
START_TEST(test_kl_estimators_unbiased) {
    const double p[4] = {0.5, 0.25, 0.15, 0.1}, q[4] = {0.25, 0.25, 0.25, 0.25};
    double kl = 0;
    for (int i = 0; i < 4; i++) kl += p[i] * log(p[i] / q[i]);
    Rng r;
    rng_seed(&r, 11);
    double s1 = 0, s3 = 0;
    const int n = 200000;
    for (int s = 0; s < n; s++) {
        float u = rng_uniform(&r);
        int i = 0;
        for (double c = p[0]; u >= c && i < 3;) c += p[++i];
        float a = (float)log(p[i]), b = (float)log(q[i]);
        s1 += ppo_kl(PPO_KL_K1, a, b);
        s3 += ppo_kl(PPO_KL_K3, a, b);
        ck_assert(ppo_kl(PPO_KL_K2, a, b) >= 0 && ppo_kl(PPO_KL_K3, a, b) >= 0);
    }
    ck_assert_msg(fabs(s1 / n - kl) < 0.005, "k1 mean %f vs KL %f", s1 / n, kl);
    ck_assert_msg(fabs(s3 / n - kl) < 0.005, "k3 mean %f vs KL %f", s3 / n, kl);
}
END_TEST

START_TEST(test_kl_parse) {
    PpoKl k;
    ck_assert_int_eq(ppo_kl_parse("k1", &k), ERR_OK);
    ck_assert_int_eq(k, PPO_KL_K1);
    ck_assert_int_eq(ppo_kl_parse("k3", &k), ERR_OK);
    ck_assert_int_eq(k, PPO_KL_K3);
    ck_assert_str_eq(ppo_kl_name(PPO_KL_K2), "k2");
    ck_assert_int_eq(ppo_kl_parse("K1", &k), ERR_INPUT);
    ck_assert_int_eq(ppo_kl_parse("", &k), ERR_INPUT);
    ck_assert_int_eq(ppo_kl_parse("k4", &k), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "k4"));
}
END_TEST

START_TEST(test_token_rewards) {
    /* beta 0.1, k1: r = -0.1 (logp - ref); score 2 added at the last token */
    const float lp[3] = {-1.0f, -2.0f, -0.5f}, ref[3] = {-1.5f, -1.0f, -0.5f};
    float r[3];
    ppo_token_rewards(r, lp, ref, 3, PPO_KL_K1, 0.1f, 2.0f);
    const double want[3] = {-0.05, 0.1, 2.0};
    assert_close(r, want, 3, EPS);
    ppo_token_rewards(r, lp, ref, 1, PPO_KL_K2, 1.0f, -1.0f); /* one token: -0.5*0.25 - 1 */
    ck_assert(fabs(r[0] - -1.125) < EPS);
}
END_TEST

START_TEST(test_gae) {
    const float r[4] = {0.1f, -0.2f, 0.05f, 1.0f}, v[4] = {0.5f, 0.3f, -0.1f, 0.2f};
    float a[4], ret[4];
    ppo_gae(a, ret, r, v, 4, 0.9f, 0.8f);
    const double wa[4] = {-0.0851296, 0.06232, 0.906, 0.8}, wr[4] = {0.4148704, 0.36232, 0.806, 1.0};
    assert_close(a, wa, 4, EPS);
    assert_close(ret, wr, 4, EPS);
    /* by hand: gamma = lambda = 1 gives reward-to-go minus V: [0.95-0.5, 0.85-0.3, 1.05+0.1, 1-0.2] */
    ppo_gae(a, ret, r, v, 4, 1.0f, 1.0f);
    const double wa1[4] = {0.45, 0.55, 1.15, 0.8}, wr1[4] = {0.95, 0.85, 1.05, 1.0};
    assert_close(a, wa1, 4, EPS);
    assert_close(ret, wr1, 4, EPS);
    /* lambda = 0 gives the one-step TD error: r + V[t+1] - V[t] */
    ppo_gae(a, ret, r, v, 4, 1.0f, 0.0f);
    const double wa0[4] = {-0.1, -0.6, 0.35, 0.8};
    assert_close(a, wa0, 4, EPS);
}
END_TEST

START_TEST(test_whiten) {
    float x[4] = {1, 2, 4, 7};
    ppo_whiten(x, 4, 1);
    const double w[4] = {-1.0910894464180572, -0.6546536678508343, 0.21821788928361144, 1.5275252249852802};
    assert_close(x, w, 4, EPS);
    float y[4] = {1, 2, 4, 7};
    ppo_whiten(y, 4, 0); /* mean 3.5 kept */
    for (int i = 0; i < 4; i++) ck_assert(fabs(y[i] - (3.5 + w[i])) < EPS);
    float one[1] = {5};
    ppo_whiten(one, 1, 1);
    ck_assert(one[0] == 0);
    double m, sd;
    ppo_moments(x, 4, &m, &sd);
    ck_assert(fabs(m) < EPS && fabs(sd - 1) < EPS);
}
END_TEST

/* Folding batches of any sizes into the running moments gives the moments of everything at once. */
START_TEST(test_running_whiten) {
    float all[10] = {0.3f, -1.2f, 2.5f, 0.0f, 4.0f, -0.7f, 1.1f, 3.3f, -2.0f, 0.9f};
    PpoRunning r = {0};
    ck_assert(ppo_running_std(&r) == 0);
    ppo_running_update(&r, all, 3);
    ppo_running_update(&r, all + 3, 1);
    ppo_running_update(&r, all + 4, 0);
    ppo_running_update(&r, all + 4, 6);
    double m, sd;
    ppo_moments(all, 10, &m, &sd);
    ck_assert(r.count == 10);
    ck_assert(fabs(r.mean - m) < 1e-9 && fabs(ppo_running_std(&r) - sd) < 1e-9);
    float x[2] = {(float)m, (float)(m + sd)};
    ppo_running_whiten(&r, x, 2);
    ck_assert(fabs(x[0]) < EPS && fabs(x[1] - 1) < EPS);
}
END_TEST

START_TEST(test_policy_loss) {
    /* tokens 0 and 2 take the clipped branch (adv > 0 with ratio 1.35 > 1.2; adv < 0 with ratio
     * 0.74 < 0.8): no gradient there. Tokens 1 and 3 sit outside the range on the pessimistic side,
     * so the unclipped term wins and the gradient flows; token 4 is inside the range. */
    const float logp[5] = {-1.0f, -2.0f, -0.5f, -3.0f, -1.5f}, old[5] = {-1.3f, -1.5f, -0.2f, -3.5f, -1.2f};
    const float adv[5] = {1.0f, 2.0f, -1.0f, -0.5f, 0.7f};
    float g[5];
    PpoPolicyStats st;
    ppo_policy_loss(&st, g, logp, old, adv, 5, 0.2f);
    ck_assert_msg(fabs(st.loss - -0.26145468771048097) < EPS, "loss %f", st.loss);
    const double wg[5] = {0.0, -0.2426122638850534, 0.0, 0.16487212707001284, -0.10371455089544049};
    assert_close(g, wg, 5, EPS);
    ck_assert(fabs(st.clipfrac - 0.4) < 1e-12);
    /* approx_kl = mean 0.5 d^2 with d = [0.3, -0.5, -0.3, 0.5, -0.3] */
    ck_assert(fabs(st.approx_kl - 0.5 * (0.09 + 0.25 + 0.09 + 0.25 + 0.09) / 5) < EPS);
    /* at ratio 1 (first PPO epoch) the loss is -mean(adv) and the gradient -adv/n */
    ppo_policy_loss(&st, g, old, old, adv, 5, 0.2f);
    ck_assert(fabs(st.loss - -(1.0 + 2.0 - 1.0 - 0.5 + 0.7) / 5) < EPS && st.clipfrac == 0);
    for (int i = 0; i < 5; i++) ck_assert(fabs(g[i] - -adv[i] / 5) < EPS);
}
END_TEST

/* Central differences agree with the analytic gradient away from the kinks at 1 +- clip. */
START_TEST(test_policy_loss_fd) {
    float logp[6] = {-1.0f, -2.0f, -0.5f, -3.0f, -1.5f, -0.9f};
    const float old[6] = {-1.05f, -1.5f, -0.2f, -3.5f, -1.2f, -1.0f}, adv[6] = {1.0f, 2.0f, -1.0f, -0.5f, 0.7f, 1.5f};
    float g[6], gd[6];
    PpoPolicyStats st, a, b;
    ppo_policy_loss(&st, g, logp, old, adv, 6, 0.2f);
    for (int i = 0; i < 6; i++) {
        const float h = 1e-3f, x = logp[i];
        logp[i] = x + h;
        ppo_policy_loss(&a, gd, logp, old, adv, 6, 0.2f);
        logp[i] = x - h;
        ppo_policy_loss(&b, gd, logp, old, adv, 6, 0.2f);
        logp[i] = x;
        double fd = (a.loss - b.loss) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-4, "[%d] fd %f analytic %f", i, fd, g[i]);
    }
}
END_TEST

START_TEST(test_value_loss) {
    /* token 0 moved towards R by more than the clip: the clipped error is larger and wins (no
     * gradient); token 1 moved away from R: the unclipped error wins; 2 and 3 stay within the clip. */
    const float v[4] = {0.9f, 1.0f, -0.3f, 2.0f}, vo[4] = {0.4f, 0.5f, -0.2f, 2.1f}, R[4] = {1.0f, 0.0f, -1.0f, 2.05f};
    float g[4];
    PpoValueStats st;
    ppo_value_loss(&st, g, v, vo, R, 4, 0.2f);
    ck_assert_msg(fabs(st.loss - 0.20656249999999998) < EPS, "loss %f", st.loss);
    const double wg[4] = {0.0, 0.25, 0.175, -0.0125};
    assert_close(g, wg, 4, EPS);
    ck_assert(fabs(st.clipfrac - 0.25) < 1e-12);
    /* no clipping: plain 0.5 MSE = 0.5 (0.01 + 1 + 0.49 + 0.0025) / 4 */
    ppo_value_loss(&st, g, v, vo, R, 4, 0.0f);
    ck_assert(fabs(st.loss - 0.5 * 1.5025 / 4) < EPS && st.clipfrac == 0);
    ck_assert(fabs(g[0] - -0.1 / 4) < EPS);
}
END_TEST

START_TEST(test_explained_variance) {
    const float t[4] = {1, 2, 3, 4}, mean[4] = {2.5f, 2.5f, 2.5f, 2.5f}, half[4] = {1.5f, 2, 2.5f, 3};
    ck_assert(fabs(ppo_explained_variance(t, t, 4) - 1) < 1e-12);
    ck_assert(fabs(ppo_explained_variance(mean, t, 4)) < 1e-12);
    /* residual t - half = [-0.5, 0, 0.5, 1]: variance 0.3125 against 1.25 -> 0.75 */
    ck_assert(fabs(ppo_explained_variance(half, t, 4) - 0.75) < 1e-9);
    ck_assert(ppo_explained_variance(t, mean, 4) == 0); /* constant target */
}
END_TEST

START_TEST(test_kl_controller) {
    PpoKlCtl c = {0.1, 6.0, 10000};
    ppo_klctl_update(&c, 12.0, 256); /* e clipped to 0.2: 0.1 (1 + 0.2 * 0.0256) */
    ck_assert(fabs(c.beta - 0.1 * 1.00512) < 1e-12);
    c.beta = 0.1;
    ppo_klctl_update(&c, 5.4, 1000); /* e = -0.1: 0.1 (1 - 0.01) */
    ck_assert(fabs(c.beta - 0.099) < 1e-12);
    PpoKlCtl fixed = {0.05, 0, 10000};
    ppo_klctl_update(&fixed, 100, 1000);
    ck_assert(fixed.beta == 0.05);
}
END_TEST

/* The gating rule PPO's reward goes through (Llama 2 §3.2.3): the safety score on safety prompts or
 * when sigmoid(safety) < 0.15, the helpfulness score otherwise. logit(0.15) = -1.7346: just above it
 * the helpfulness score is used, just below it the safety score. */
START_TEST(test_reward_gating) {
    int used;
    ck_assert(reward_combine(1.5f, 0.5f, 0, 0.15f, &used) == 1.5f && used == 0);
    ck_assert(reward_combine(1.5f, 0.5f, 1, 0.15f, &used) == 0.5f && used == 1);
    ck_assert(reward_combine(1.5f, -1.73f, 0, 0.15f, &used) == 1.5f && used == 0);
    ck_assert(reward_combine(1.5f, -1.74f, 0, 0.15f, &used) == -1.74f && used == 1);
    ck_assert(reward_combine(-3.0f, -2.0f, 0, 0.15f, NULL) == -2.0f);
    ck_assert(reward_combine(-3.0f, -2.0f, 0, 0.0f, &used) == -3.0f && used == 0); /* threshold 0: never */
}
END_TEST

/* ---- on models: a planted task -------------------------------------------------------------------
 * A tiny random policy over 16 tokens answers 8 one-token prompts; the reward of an answer is the
 * share of its tokens that are the marker (token 9; EOS is 2). PPO with ppo.h's model-level calls, as
 * ppo/main.c runs them: gather old/ref log-probabilities and values, whitened scores, advantages, one
 * policy and one value step per minibatch. The marker's share must rise well above its 1/16 start
 * while the KL stays bounded; with a large beta the policy must stay at the reference. */

enum { MARKER = 9, PROMPTS = 8, SAMPLES = 4, MB = 8, CTX = 16 };

static void tiny_model(Model *m, HeadKind head, uint64_t seed) {
    ModelConfig c = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .vocab_size = 16,
                     .max_seq_len = CTX, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .head = head};
    ck_assert_int_eq(model_create(m, &c, NULL), ERR_OK);
    model_init_random(m, seed, 0.05f);
    model_alloc_train(m, MB, CTX);
}

typedef struct {
    double marker_first, marker_last, kl_last, kl_min;
} Planted;

static Planted run_planted(float beta, int iters) {
    Model pol, ref, val;
    tiny_model(&pol, HEAD_LM, 1);
    tiny_model(&ref, HEAD_LM, 1); /* the same seed: the reference is the starting policy */
    tiny_model(&val, HEAD_SCALAR, 2);
    AdamW po, vo;
    adamw_create(&po, pol.n_params);
    adamw_create(&vo, val.n_params);
    AdamWConfig acfg = {0.9f, 0.95f, 1e-5f, 0.0f};
    PpoScratch sc;
    ppo_scratch_init(&sc, MB, CTX);
    int32_t pids[PROMPTS][2];
    GenPrompt gp[PROMPTS];
    for (int i = 0; i < PROMPTS; i++) {
        pids[i][0] = 1;
        pids[i][1] = 3 + i;
        gp[i] = (GenPrompt){pids[i], 2, (uint64_t)i};
    }
    Planted out = {0, 0, 0, 1e9};
    PpoSeq seqs[PROMPTS * SAMPLES], *q[PROMPTS * SAMPLES];
    GenSample smp[PROMPTS * SAMPLES];
    for (int it = 0; it < iters; it++) {
        GenConfig g = {.sampler = {1.0f, 0, 1.0f}, .max_new = 6, .batch = 16, .seed = (uint64_t)it};
        ck_assert_int_eq(gen_run(&pol, gp, PROMPTS, SAMPLES, &g, smp, NULL), ERR_OK);
        int n = 0;
        double marker = 0, tokens = 0;
        float scores[PROMPTS * SAMPLES];
        for (int i = 0; i < PROMPTS * SAMPLES; i++) {
            if (smp[i].n == 0) continue;
            ppo_seq_init(&seqs[n], pids[i / SAMPLES], 2, smp[i].ids, smp[i].n);
            int hits = 0;
            for (int j = 0; j < smp[i].n; j++) hits += smp[i].ids[j] == MARKER;
            marker += hits;
            tokens += smp[i].n;
            scores[n] = (float)hits / (float)smp[i].n;
            q[n] = &seqs[n];
            n++;
        }
        gen_samples_free(smp, PROMPTS * SAMPLES);
        if (it < 3) out.marker_first += marker / tokens / 3;
        if (it >= iters - 3) out.marker_last += marker / tokens / 3;
        ppo_whiten(scores, n, 1);
        for (int i = 0; i < n; i += MB) {
            int B = n - i < MB ? n - i : MB;
            ppo_gather(&pol, &sc, q + i, B, PPO_LOGP_OLD, NULL);
            ppo_gather(&ref, &sc, q + i, B, PPO_LOGP_REF, NULL);
            ppo_gather(&val, &sc, q + i, B, PPO_VALUES, NULL);
        }
        for (int i = 0; i < n; i++) seqs[i].score = scores[i];
        PpoAdvStats as;
        ppo_advantages(q, n, PPO_KL_K1, beta, 1.0f, 0.95f, 1, &as);
        ck_assert(!as.nonfinite && as.kl >= 0);
        if (it >= iters - 3) out.kl_last += as.kl / 3;
        for (int i = 0; i < n; i += MB) {
            int B = n - i < MB ? n - i : MB;
            PpoPolicyStats ps;
            PpoValueStats vs;
            double norm;
            ppo_policy_backward(&pol, &sc, q + i, B, 0.2f, &ps);
            ck_assert_int_eq(optim_finish_grads(pol.grads, pol.n_params, 1.0f, &norm), ERR_OK);
            adamw_step(&po, pol.params, pol.grads, pol.tensors, pol.n_tensors, &acfg, 3e-3f);
            ppo_value_backward(&val, &sc, q + i, B, 0.2f, &vs);
            ck_assert_int_eq(optim_finish_grads(val.grads, val.n_params, 1.0f, &norm), ERR_OK);
            adamw_step(&vo, val.params, val.grads, val.tensors, val.n_tensors, &acfg, 3e-3f);
            ck_assert(isfinite(ps.loss) && isfinite(vs.loss));
        }
        for (int i = 0; i < n; i++) ppo_seq_free(&seqs[i]);
    }
    ppo_scratch_free(&sc);
    adamw_free(&po);
    adamw_free(&vo);
    model_free(&pol);
    model_free(&ref);
    model_free(&val);
    return out;
}

/* beta 0.1: the marker takes over (measured: share 0.09 -> 1.00, KL 9.8 nats per answer, the same as
 * with no penalty at all: 0.1 is small next to the whitened reward) */
START_TEST(test_planted_marker) {
    Planted p = run_planted(0.1f, 30);
    fprintf(stderr, "planted beta 0.1: marker share %.3f -> %.3f, KL %.3f\n", p.marker_first, p.marker_last, p.kl_last);
    ck_assert_msg(p.marker_first < 0.15 && p.marker_last > 0.5, "marker share %.3f -> %.3f", p.marker_first,
                  p.marker_last);
    ck_assert_msg(p.kl_last > 1, "KL %.3f: the policy moved, the KL must say so", p.kl_last);
}
END_TEST

/* beta 0.5: the reward still rises, but the penalty holds the KL down (measured: 0.095 -> 0.287, KL 1.4) */
START_TEST(test_kl_penalty_bounds_the_policy) {
    Planted p = run_planted(0.5f, 30);
    fprintf(stderr, "planted beta 0.5: marker share %.3f -> %.3f, KL %.3f\n", p.marker_first, p.marker_last, p.kl_last);
    ck_assert_msg(p.marker_last > 2 * p.marker_first, "marker share %.3f -> %.3f", p.marker_first, p.marker_last);
    ck_assert_msg(p.kl_last > 0.2 && p.kl_last < 4, "KL %.3f", p.kl_last);
}
END_TEST

/* beta 50: the policy stays at the reference; what KL remains is the noise of the AdamW steps
 * (measured: 0.09 nats per answer; the marker's share does not move) */
START_TEST(test_large_beta_stays_at_reference) {
    Planted p = run_planted(50.0f, 30);
    fprintf(stderr, "planted beta 50: marker share %.3f -> %.3f, KL %.4f\n", p.marker_first, p.marker_last, p.kl_last);
    ck_assert_msg(p.kl_last < 0.15, "KL %.4f", p.kl_last);
    ck_assert_msg(p.marker_last < 1.5 * p.marker_first + 0.02, "marker share %.3f -> %.3f", p.marker_first,
                  p.marker_last);
}
END_TEST

int main(void) {
    threads_set(1); /* tiny matrices: threads only add waiting on a shared machine */
    Suite *s = suite_create("ppo");
    TCase *tc = tcase_create("math");
    tcase_add_test(tc, test_kl_estimators);
    tcase_add_test(tc, test_kl_estimators_unbiased);
    tcase_add_test(tc, test_kl_parse);
    tcase_add_test(tc, test_token_rewards);
    tcase_add_test(tc, test_gae);
    tcase_add_test(tc, test_whiten);
    tcase_add_test(tc, test_running_whiten);
    tcase_add_test(tc, test_policy_loss);
    tcase_add_test(tc, test_policy_loss_fd);
    tcase_add_test(tc, test_value_loss);
    tcase_add_test(tc, test_explained_variance);
    tcase_add_test(tc, test_kl_controller);
    tcase_add_test(tc, test_reward_gating);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("models");
    tcase_set_timeout(tm, 120);
    tcase_add_test(tm, test_planted_marker);
    tcase_add_test(tm, test_kl_penalty_bounds_the_policy);
    tcase_add_test(tm, test_large_beta_stays_at_reference);
    suite_add_tcase(s, tm);
    return testutil_run(s);
}
