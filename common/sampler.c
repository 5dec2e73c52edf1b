/*
 * sampler — see sampler.h. Weights are exp((logit - max) / T) <= 1, computed once per call into
 * s->w, so nothing overflows; sums are in double so that 32,000 tiny weights add up exactly enough.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "fastmath.h"
#include "util.h"

Err sampler_create(Sampler *s, const SamplerConfig *cfg, int vocab_size) {
    if (!(cfg->temperature >= 0 && isfinite(cfg->temperature)))
        return err_set(ERR_INPUT, "sampler: temperature must be >= 0 (0 is greedy), got %g", cfg->temperature);
    if (cfg->top_k < 0) return err_set(ERR_INPUT, "sampler: top_k must be >= 0 (0 keeps every token), got %d", cfg->top_k);
    if (!(cfg->top_p > 0 && cfg->top_p <= 1))
        return err_set(ERR_INPUT, "sampler: top_p must be in (0, 1] (1 keeps every token), got %g", cfg->top_p);
    if (vocab_size <= 0) return err_set(ERR_INPUT, "sampler: vocab_size must be positive, got %d", vocab_size);
    s->cfg = *cfg;
    s->vocab_size = vocab_size;
    s->cand = xmalloc(sizeof(SamplerCand) * (size_t)vocab_size);
    s->w = xmalloc(sizeof(float) * (size_t)vocab_size);
    return ERR_OK;
}

void sampler_free(Sampler *s) {
    free(s->cand);
    free(s->w);
    s->cand = NULL;
    s->w = NULL;
}

/* a ranks before b: larger logit, then lower id */
static int ahead(const SamplerCand *a, const SamplerCand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_ahead(const void *a, const void *b) { return ahead(a, b) ? -1 : ahead(b, a) ? 1 : 0; }

/* Min-heap on rank (the candidate most easily displaced at the root). */
static void sift_down(SamplerCand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ahead(&h[w], &h[l])) w = l;
        if (r < n && ahead(&h[w], &h[r])) w = r;
        if (w == i) return;
        SamplerCand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k best of logits (V) into c[0..k), best first. */
static void top_k(SamplerCand *c, const float *logits, int V, int k) {
    for (int i = 0; i < k; i++) c[i] = (SamplerCand){logits[i], i};
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int v = k; v < V; v++) {
        SamplerCand x = {logits[v], v};
        if (ahead(&x, &c[0])) {
            c[0] = x;
            sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_ahead);
}

/* w[v] = exp((logits[v] - mx) * scale); returns their sum. -inf logits (masks) weigh exactly 0,
 * which exp_fast alone would not give (it clamps its input at -87). */
static double weights(float *w, const float *logits, int V, float mx, float scale) {
#pragma omp simd
    for (int v = 0; v < V; v++) {
        float x = (logits[v] - mx) * scale, e = exp_fast(x);
        w[v] = x < -87.0f ? 0.0f : e;
    }
    double sum = 0; /* a separate loop: mixing the double sum into the one above stops it vectorising */
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++) sum += w[v];
    return sum;
}

/* Samples from the candidates c[0..n) (c NULL: every id 0..n-1) by weight w[id], of total `mass`;
 * *p gets the chosen one's probability. */
static int32_t draw(const SamplerCand *c, int n, const float *w, double mass, Rng *rng, double *p) {
    double u = rng_uniform_double(rng) * mass, cum = 0;
    int i = 0;
    for (; i < n - 1; i++) { /* the last one takes what rounding leaves */
        cum += w[c ? c[i].id : i];
        if (u < cum) break;
    }
    int32_t id = c ? c[i].id : i;
    *p = w[id] / mass;
    return id;
}

/* Top-k, then top-p (at least one of them is on): the kept candidates into s->cand[0..n), best
 * first. Returns n; *mass gets their total weight (all: the weight of the whole vocabulary). */
static int truncate_candidates(Sampler *s, const float *logits, double all, double *mass) {
    const int V = s->vocab_size;
    SamplerCand *c = s->cand;
    const float *w = s->w;
    int n = 0;
    *mass = all;
    if (s->cfg.top_k > 0 && s->cfg.top_k < V) {
        n = s->cfg.top_k;
        top_k(c, logits, V, n);
        *mass = 0;
        for (int i = 0; i < n; i++) *mass += w[c[i].id];
    } else { /* top-p alone: only tokens with probability >= (1-p)/(V-1) can be in the nucleus */
        float cut = (float)((1.0 - s->cfg.top_p) / (V > 1 ? V - 1 : 1) * all);
        for (int v = 0; v < V; v++)
            if (w[v] >= cut) c[n++] = (SamplerCand){logits[v], v};
        qsort(c, (size_t)n, sizeof *c, cmp_ahead);
    }
    if (s->cfg.top_p < 1) { /* the shortest prefix (by probability) reaching top_p */
        double want = s->cfg.top_p * *mass, cum = 0;
        int keep = 0;
        while (keep < n && cum < want) cum += w[c[keep++].id];
        n = keep;
        *mass = cum;
    }
    return n;
}

int32_t sampler_sample(Sampler *s, const float *logits, Rng *rng, float *logp, float *logp_raw) {
    const int V = s->vocab_size;
    float mx = -INFINITY;
    int nan = 0;
#pragma omp simd reduction(max : mx) reduction(| : nan)
    for (int v = 0; v < V; v++) {
        nan |= logits[v] != logits[v];
        mx = logits[v] > mx ? logits[v] : mx;
    }
    if (nan || isinf(mx)) return -1;
    int32_t tok = 0;
    while (logits[tok] != mx) tok++; /* the argmax, lowest id on ties */
    double p = 1, z_raw = -1;
    const float T = s->cfg.temperature;
    if (T > 0) {
        double all = weights(s->w, logits, V, mx, 1.0f / T);
        if (T == 1.0f) z_raw = all;
        if ((s->cfg.top_k == 0 || s->cfg.top_k >= V) && s->cfg.top_p >= 1) {
            tok = draw(NULL, V, s->w, all, rng, &p); /* plain temperature sampling */
        } else {
            double mass;
            int n = truncate_candidates(s, logits, all, &mass);
            tok = draw(s->cand, n, s->w, mass, rng, &p);
        }
    }
    if (logp) *logp = (float)log(p);
    if (logp_raw) {
        if (z_raw < 0) z_raw = weights(s->w, logits, V, mx, 1.0f);
        *logp_raw = (float)((double)(logits[tok] - mx) - log(z_raw));
    }
    return tok;
}
