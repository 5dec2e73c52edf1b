/*
 * ppo — see ppo.h for the formulas. Sums run in double in a fixed order, so results do not depend on
 * the thread count (there are no threads here: these loops are over tokens, cheap next to the model).
 */
#include "ppo.h"

#include <math.h>
#include <string.h>

#include "util.h"

#define WHITEN_EPS 1e-8

Err ppo_kl_parse(const char *s, PpoKl *out) {
    if (!strcmp(s, "k1")) *out = PPO_KL_K1;
    else if (!strcmp(s, "k2")) *out = PPO_KL_K2;
    else if (!strcmp(s, "k3")) *out = PPO_KL_K3;
    else return err_set(ERR_INPUT, "unknown KL estimator '%s' (k1, k2 or k3)", s);
    return ERR_OK;
}

const char *ppo_kl_name(PpoKl k) {
    switch (k) {
    case PPO_KL_K1: return "k1";
    case PPO_KL_K2: return "k2";
    case PPO_KL_K3: return "k3";
    }
    ASSERT(!"unknown PpoKl");
    return "";
}

float ppo_kl(PpoKl k, float logp, float logp_ref) {
    double lr = (double)logp_ref - (double)logp;
    switch (k) {
    case PPO_KL_K1: return (float)-lr;
    case PPO_KL_K2: return (float)(0.5 * lr * lr);
    case PPO_KL_K3: return (float)(expm1(lr) - lr); /* expm1: no cancellation when lr is tiny */
    }
    ASSERT(!"unknown PpoKl");
    return 0;
}

void ppo_token_rewards(float *rewards, const float *logp, const float *logp_ref, int64_t n, PpoKl k, float beta,
                       float score) {
    ASSERT(n >= 1);
    for (int64_t t = 0; t < n; t++) rewards[t] = -beta * ppo_kl(k, logp[t], logp_ref[t]);
    rewards[n - 1] += score;
}

void ppo_gae(float *adv, float *ret, const float *rewards, const float *values, int64_t n, float gamma,
             float lambda) {
    double next_v = 0, next_a = 0; /* the episode ends after the last token */
    for (int64_t t = n - 1; t >= 0; t--) {
        double delta = rewards[t] + gamma * next_v - values[t];
        next_a = delta + (double)gamma * lambda * next_a;
        next_v = values[t];
        adv[t] = (float)next_a;
        ret[t] = (float)(next_a + values[t]);
    }
}

void ppo_moments(const float *x, int64_t n, double *mean, double *std) {
    ASSERT(n >= 1);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n, ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = sqrt(ss / (double)n);
}

void ppo_whiten(float *x, int64_t n, int shift_mean) {
    double m, sd;
    ppo_moments(x, n, &m, &sd);
    for (int64_t i = 0; i < n; i++) {
        double z = (x[i] - m) / (sd + WHITEN_EPS);
        x[i] = (float)(shift_mean ? z : m + z);
    }
}

void ppo_running_update(PpoRunning *r, const float *x, int64_t n) {
    if (n <= 0) return;
    double bm, bsd;
    ppo_moments(x, n, &bm, &bsd);
    double nb = (double)n, na = r->count, tot = na + nb, d = bm - r->mean;
    r->mean += d * nb / tot;
    r->m2 += bsd * bsd * nb + d * d * na * nb / tot;
    r->count = tot;
}

double ppo_running_std(const PpoRunning *r) { return r->count >= 2 ? sqrt(r->m2 / r->count) : 0; }

void ppo_running_whiten(const PpoRunning *r, float *x, int64_t n) {
    double sd = ppo_running_std(r);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((x[i] - r->mean) / (sd + WHITEN_EPS));
}

void ppo_policy_loss(PpoPolicyStats *st, float *dlogp, const float *logp, const float *logp_old,
                     const float *adv, int64_t n, float clip) {
    ASSERT(n >= 1 && clip > 0);
    double loss = 0, clipped = 0, akl = 0;
    for (int64_t t = 0; t < n; t++) {
        double d = (double)logp[t] - logp_old[t], ratio = exp(d);
        double rc = ratio < 1 - clip ? 1 - clip : ratio > 1 + clip ? 1 + clip : ratio;
        double l1 = -adv[t] * ratio, l2 = -adv[t] * rc;
        if (l1 >= l2) {
            loss += l1;
            dlogp[t] = (float)(-adv[t] * ratio / (double)n); /* d ratio / d logp = ratio */
        } else {
            loss += l2; /* the clipped ratio is a constant there: no gradient */
            clipped += 1;
            dlogp[t] = 0;
        }
        akl += 0.5 * d * d;
    }
    st->loss = loss / (double)n;
    st->clipfrac = clipped / (double)n;
    st->approx_kl = akl / (double)n;
}

void ppo_value_loss(PpoValueStats *st, float *dv, const float *v, const float *v_old, const float *ret,
                    int64_t n, float clip) {
    ASSERT(n >= 1);
    double loss = 0, clipped = 0;
    for (int64_t t = 0; t < n; t++) {
        double e1 = (double)v[t] - ret[t], l1 = e1 * e1;
        double vc = v[t];
        if (clip > 0) {
            double lo = (double)v_old[t] - clip, hi = (double)v_old[t] + clip;
            vc = vc < lo ? lo : vc > hi ? hi : vc;
        }
        double e2 = vc - ret[t], l2 = e2 * e2;
        if (l1 >= l2) {
            loss += 0.5 * l1;
            dv[t] = (float)(e1 / (double)n);
        } else {
            /* l2 > l1 only when v was clipped, and then vc does not move with v */
            loss += 0.5 * l2;
            clipped += 1;
            dv[t] = 0;
        }
    }
    st->loss = loss / (double)n;
    st->clipfrac = clipped / (double)n;
}

double ppo_explained_variance(const float *pred, const float *target, int64_t n) {
    ASSERT(n >= 1);
    double mt, sdt, s = 0, ss = 0;
    ppo_moments(target, n, &mt, &sdt);
    if (sdt == 0) return 0;
    for (int64_t i = 0; i < n; i++) s += (double)target[i] - pred[i];
    double md = s / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)target[i] - pred[i] - md;
        ss += d * d;
    }
    return 1 - (ss / (double)n) / (sdt * sdt);
}

void ppo_klctl_update(PpoKlCtl *c, double kl, int64_t n_steps) {
    if (c->target <= 0 || c->horizon <= 0) return;
    double e = kl / c->target - 1;
    e = e < -0.2 ? -0.2 : e > 0.2 ? 0.2 : e;
    c->beta *= 1 + e * (double)n_steps / c->horizon;
}
