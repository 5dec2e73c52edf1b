/*
 * ppo — see ppo.h for the formulas. Sums run in double in a fixed order, so results do not depend on
 * the thread count (there are no threads here: these loops are over tokens, cheap next to the model).
 */
#include "ppo.h"

#include <math.h>
#include <string.h>

#include "ops.h"
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

/* ---- on models ------------------------------------------------------------------------------------ */

void ppo_seq_init(PpoSeq *q, const int32_t *prompt, int np, const int32_t *answer, int nr) {
    ASSERT(np >= 1 && nr >= 1);
    memset(q, 0, sizeof *q);
    q->np = np;
    q->nr = nr;
    q->tokens = xmalloc((size_t)(np + nr) * sizeof *q->tokens);
    memcpy(q->tokens, prompt, (size_t)np * sizeof *q->tokens);
    memcpy(q->tokens + np, answer, (size_t)nr * sizeof *q->tokens);
    q->logp_old = xcalloc(5 * (size_t)nr, sizeof(float));
    q->logp_ref = q->logp_old + nr;
    q->values = q->logp_ref + nr;
    q->adv = q->values + nr;
    q->ret = q->adv + nr;
}

void ppo_seq_free(PpoSeq *q) {
    free(q->tokens);
    free(q->logp_old);
    memset(q, 0, sizeof *q);
}

void ppo_scratch_init(PpoScratch *sc, int B, int T) {
    ASSERT(B >= 1 && T >= 1);
    size_t n = (size_t)B * (size_t)T;
    sc->B = B;
    sc->T = T;
    sc->tokens = xmalloc(n * sizeof *sc->tokens);
    sc->targets = xmalloc(n * sizeof *sc->targets);
    sc->lp = xmalloc(n * sizeof *sc->lp);
    sc->ent = xmalloc(n * sizeof *sc->ent);
    sc->weights = xmalloc(n * sizeof *sc->weights);
    sc->losses = xmalloc(n * sizeof *sc->losses);
}

void ppo_scratch_free(PpoScratch *sc) {
    free(sc->tokens);
    free(sc->targets);
    free(sc->lp);
    free(sc->ent);
    free(sc->weights);
    free(sc->losses);
    memset(sc, 0, sizeof *sc);
}

/* Rows of a minibatch: tokens are each sequence without its last token, right-padded with EOS;
 * targets the next token at answer rows and -1 elsewhere. Returns T, the longest row. */
static int fill_rows(PpoScratch *sc, PpoSeq *const *s, int B) {
    ASSERT(B >= 1 && B <= sc->B);
    int T = 1;
    for (int b = 0; b < B; b++) T = s[b]->np + s[b]->nr - 1 > T ? s[b]->np + s[b]->nr - 1 : T;
    ASSERT(T <= sc->T);
    for (int b = 0; b < B; b++) {
        int32_t *row = sc->tokens + (size_t)b * T, *tgt = sc->targets + (size_t)b * T;
        int len = s[b]->np + s[b]->nr - 1;
        for (int t = 0; t < T; t++) {
            row[t] = t < len ? s[b]->tokens[t] : 2; /* EOS; never read by a valid row (causal) */
            tgt[t] = t < len && t >= s[b]->np - 1 ? s[b]->tokens[t + 1] : -1;
        }
    }
    return T;
}

static size_t answer_row(const PpoSeq *q, int b, int T, int j) { return (size_t)b * T + (size_t)(q->np - 1 + j); }

void ppo_gather(Model *m, PpoScratch *sc, PpoSeq *const *s, int B, PpoField field, double *ent_sum) {
    int T = fill_rows(sc, s, B);
    int lm = m->cfg.head == HEAD_LM;
    ASSERT(lm == (field != PPO_VALUES));
    model_forward(m, sc->tokens, B, T);
    if (lm) model_token_logprobs(m, sc->targets, sc->lp, B, T);
    if (lm && ent_sum) softmax_entropy(sc->ent, m->acts.logits, B * T, m->cfg.vocab_size);
    const float *src = lm ? sc->lp : m->acts.values;
    for (int b = 0; b < B; b++) {
        PpoSeq *q = s[b];
        float *dst = field == PPO_LOGP_OLD ? q->logp_old : field == PPO_LOGP_REF ? q->logp_ref : q->values;
        for (int j = 0; j < q->nr; j++) {
            size_t r = answer_row(q, b, T, j);
            dst[j] = src[r];
            if (lm && ent_sum) *ent_sum += sc->ent[r];
        }
    }
}

void ppo_advantages(PpoSeq *const *s, int n, PpoKl k, float beta, float gamma, float lambda, int whiten,
                    PpoAdvStats *st) {
    memset(st, 0, sizeof *st);
    int64_t ntok = 0;
    for (int i = 0; i < n; i++) ntok += s[i]->nr;
    ASSERT(n >= 1 && ntok >= 1);
    float *a = xmalloc((size_t)ntok * 2 * sizeof *a), *b = a + ntok;
    int64_t t = 0;
    for (int i = 0; i < n; i++) {
        PpoSeq *q = s[i];
        ppo_token_rewards(b, q->logp_old, q->logp_ref, q->nr, k, beta, q->score);
        ppo_gae(q->adv, q->ret, b, q->values, q->nr, gamma, lambda);
        st->nonfinite |= !isfinite(q->score);
        for (int j = 0; j < q->nr; j++) {
            st->kl += ppo_kl(PPO_KL_K3, q->logp_old[j], q->logp_ref[j]);
            st->kl_penalty += ppo_kl(k, q->logp_old[j], q->logp_ref[j]);
            st->nonfinite |= !isfinite(q->logp_old[j]) || !isfinite(q->logp_ref[j]) || !isfinite(q->values[j]);
        }
    }
    st->kl /= n;
    st->kl_penalty /= n;
    st->tokens = ntok;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < s[i]->nr; j++, t++) {
            a[t] = s[i]->values[j];
            b[t] = s[i]->ret[j];
        }
    st->explained_variance = ppo_explained_variance(a, b, ntok);
    if (whiten) {
        t = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < s[i]->nr; j++) a[t++] = s[i]->adv[j];
        ppo_whiten(a, ntok, 1);
        t = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < s[i]->nr; j++) s[i]->adv[j] = a[t++];
    }
    free(a);
}

/* The per-token arrays of a sequence, by name, so minibatches can be flattened by one loop. */
typedef enum { ARR_OLD, ARR_VALUES, ARR_ADV, ARR_RET } SeqArray;

static const float *seq_array(const PpoSeq *q, SeqArray a) {
    switch (a) {
    case ARR_OLD: return q->logp_old;
    case ARR_VALUES: return q->values;
    case ARR_ADV: return q->adv;
    case ARR_RET: return q->ret;
    }
    ASSERT(!"unknown SeqArray");
    return NULL;
}

/* The minibatch's answer tokens in order: out[k] gets array a of the k-th one. */
static void flatten(PpoSeq *const *s, int B, SeqArray a, float *out) {
    int64_t k = 0;
    for (int b = 0; b < B; b++) {
        const float *src = seq_array(s[b], a);
        for (int j = 0; j < s[b]->nr; j++) out[k++] = src[j];
    }
}

void ppo_policy_backward(Model *m, PpoScratch *sc, PpoSeq *const *s, int B, float clip, PpoPolicyStats *st) {
    ASSERT(m->cfg.head == HEAD_LM);
    int T = fill_rows(sc, s, B);
    int64_t n = 0;
    for (int b = 0; b < B; b++) n += s[b]->nr;
    float *logp = xmalloc((size_t)n * 4 * sizeof *logp), *old = logp + n, *adv = old + n, *dl = adv + n;
    model_forward(m, sc->tokens, B, T);
    model_token_logprobs(m, sc->targets, sc->lp, B, T);
    int64_t k = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < s[b]->nr; j++) logp[k++] = sc->lp[answer_row(s[b], b, T, j)];
    flatten(s, B, ARR_OLD, old);
    flatten(s, B, ARR_ADV, adv);
    ppo_policy_loss(st, dl, logp, old, adv, n, clip);
    /* logp = -cross-entropy, so the cross-entropy's weight is -dL/dlogp */
    memset(sc->weights, 0, (size_t)B * T * sizeof *sc->weights);
    k = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < s[b]->nr; j++) sc->weights[answer_row(s[b], b, T, j)] = -dl[k++];
    xent_forward_backward(sc->losses, m->acts.dlogits, m->acts.logits, sc->targets, sc->weights, B * T,
                          m->cfg.vocab_size);
    model_zero_grads(m);
    model_backward(m, sc->tokens, B, T);
    free(logp);
}

void ppo_value_backward(Model *m, PpoScratch *sc, PpoSeq *const *s, int B, float clip, PpoValueStats *st) {
    ASSERT(m->cfg.head == HEAD_SCALAR);
    int T = fill_rows(sc, s, B);
    int64_t n = 0;
    for (int b = 0; b < B; b++) n += s[b]->nr;
    float *v = xmalloc((size_t)n * 4 * sizeof *v), *vold = v + n, *ret = vold + n, *dv = ret + n;
    model_forward(m, sc->tokens, B, T);
    int64_t k = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < s[b]->nr; j++) v[k++] = m->acts.values[answer_row(s[b], b, T, j)];
    flatten(s, B, ARR_VALUES, vold);
    flatten(s, B, ARR_RET, ret);
    ppo_value_loss(st, dv, v, vold, ret, n, clip);
    memset(m->acts.dvalues, 0, (size_t)B * T * sizeof(float));
    k = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < s[b]->nr; j++) m->acts.dvalues[answer_row(s[b], b, T, j)] = dv[k++];
    model_zero_grads(m);
    model_backward(m, sc->tokens, B, T);
    free(v);
}
