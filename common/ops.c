/*
 * ops — kernels of the Llama-2 transformer. See ops.h for the shape legend and conventions.
 *
 * Reductions over a row (RMSNorm's mean square, softmax's sum) are accumulated in double within
 * the row (omp simd: vector lanes, then lanes added, a fixed order for a given build), so results
 * do not depend on how OpenMP splits the rows. `omp simd` also marks loops whose arrays may look
 * aliased to the compiler (in-place updates), which -O2 would otherwise leave scalar. Small
 * problems skip the parallel region (the `if` clauses): starting threads costs more than a few
 * thousand flops.
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "fastmath.h"
#include "util.h"

#define PAR_MIN_WORK 16384 /* elements below which a loop runs on one thread */

/* ------------------------------------------------------------------------------------------------ */
/* token embedding */

void embedding_forward(float *out, const int32_t *tokens, const float *wte, int N, int C) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C) {
    /* Tokens repeat, so rows of dwte are shared: one thread, rows in order (deterministic). */
    for (int n = 0; n < N; n++) {
        float *dw = dwte + (size_t)tokens[n] * C;
        const float *d = dout + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) dw[c] += d[c];
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* RMSNorm */

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    /* With xhat = x*r and g = dout*w:  dx = r * (g - xhat * mean(g * xhat)),  dw = sum_n dout * xhat. */
    if (dinp) {
#pragma omp parallel for if ((size_t)N * C > PAR_MIN_WORK)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float r = rstd[n];
            double dot = 0.0;
#pragma omp simd reduction(+ : dot)
            for (int c = 0; c < C; c++) dot += (double)dy[c] * weight[c] * x[c] * r;
            float m = (float)(dot / C);
#pragma omp simd
            for (int c = 0; c < C; c++) dx[c] += r * (dy[c] * weight[c] - x[c] * r * m);
        }
    }
    if (dweight) {
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float r = rstd[n];
#pragma omp simd
            for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * r;
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* linear */

/*
 * Few rows (a decoding step over B sequences) read every weight once and do little arithmetic with
 * it, so what matters is how fast the weight streams in. Two measured facts about OpenBLAS 0.3.21
 * on this machine (docs/benchmarks.md):
 *   - sgemm with M rows against a whole (OC, C) weight packs the weight and is 2-3x slower at
 *     M = 8 than its own GEMV at M = 1. Cut into blocks of `rows` output channels with
 *     M * rows <= 1200 and M * rows * C <= 100^3, each block goes to OpenBLAS's small-matrix kernel
 *     (the SkylakeX-family "TN" kernel, which packs nothing). Other BLAS builds compute the same
 *     blocks their own way; the result does not depend on it beyond rounding.
 *   - its kernels read a block a few rows at a time, in streams too short for the hardware
 *     prefetcher, and wait on memory latency. One sequential pass over the block first (one load per
 *     cache line) brings it into cache at full bandwidth; the kernel then runs from cache. This made
 *     the GEMV of batch 1 1.7x faster and the blocks of batch 8 2.5x faster.
 * Blocks are split over threads; their boundaries depend only on (N, C), never on the thread count,
 * so every output is the same for any thread count.
 */
enum { FEW_ROWS_MN = 1200, FEW_ROWS_BYTES = 256 * 1024, FEW_ROWS_PAR_MACS = 1 << 18 };

/* Output channels per block for N rows of C inputs, or 0: N is too large for the blocked path. */
static int few_rows_block(int N, int C) {
    int rows;
    if (N == 1)
        rows = FEW_ROWS_BYTES / (int)sizeof(float) / C; /* a block well inside L2 */
    else {
        rows = FEW_ROWS_MN / N;
        if ((double)rows * N * C > 1e6) rows = (int)(1e6 / ((double)N * C));
    }
    rows = rows / 16 * 16;
    return rows >= 16 ? rows : 0;
}

void cache_in(const float *p, size_t n) {
    uint32_t acc = 0, word;
    for (size_t i = 0; i < n; i += 64 / sizeof(float)) {
        memcpy(&word, p + i, sizeof word);
        acc ^= word;
    }
    volatile uint32_t sink = acc; /* keeps the loads */
    (void)sink;
}

static void linear_forward_blocks(float *out, const float *inp, const float *weight, int N, int C, int OC, int cold) {
    int rows = few_rows_block(N, C);
    if (N == 1 && !cold) { /* from cache, one GEMV (OpenBLAS threads it) is as fast as blocks */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, weight, C, inp, 1, 0.0f, out, 1);
        return;
    }
    if (rows == 0 || rows >= OC) { /* many rows: one GEMM, bound by flops; or a single block */
        if (rows && cold) cache_in(weight, (size_t)OC * C);
        if (N == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, weight, C, inp, 1, 0.0f, out, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
        return;
    }
    int nblocks = (OC + rows - 1) / rows;
    /* Threads pay off when the blocks come from memory, or hold more than a few microseconds of
     * arithmetic; a tiny model's step would otherwise wait on thread wake-ups. */
#pragma omp parallel for schedule(static) if (cold || (double)N * OC * C > FEW_ROWS_PAR_MACS)
    for (int i = 0; i < nblocks; i++) {
        int o0 = i * rows, n = OC - o0 < rows ? OC - o0 : rows;
        const float *w = weight + (size_t)o0 * C;
        if (cold) cache_in(w, (size_t)n * C);
        if (N == 1) /* one row: a GEMV */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, C, 1.0f, w, C, inp, 1, 0.0f, out + o0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, n, C, 1.0f, inp, C, w, C, 0.0f, out + o0, OC);
    }
}

void linear_forward(float *out, const float *inp, const float *weight, int N, int C, int OC) {
    linear_forward_blocks(out, inp, weight, N, C, OC, 0);
}

void linear_forward_cold(float *out, const float *inp, const float *weight, int N, int C, int OC) {
    linear_forward_blocks(out, inp, weight, N, C, OC, 1);
}

void linear_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                     int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
}

/* ------------------------------------------------------------------------------------------------ */
/* rotary position embedding */

void rope_tables(float *cos_t, float *sin_t, int max_pos, int hd, float theta) {
    int half = hd / 2;
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            double inv_freq = pow((double)theta, -2.0 * i / hd);
            double a = p * inv_freq;
            cos_t[(size_t)p * half + i] = (float)cos(a);
            sin_t[(size_t)p * half + i] = (float)sin(a);
        }
}

static void rope_rotate(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int stride,
                        int nh, int hd, float sign) {
    int half = hd / 2;
#pragma omp parallel for if ((size_t)N * nh * hd > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *cs = cos_t + (size_t)pos[n] * half, *sn = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (size_t)n * stride + (size_t)h * hd;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float c = cs[i], s = sign * sn[i];
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

void rope_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int stride, int nh,
                  int hd) {
    rope_rotate(x, pos, cos_t, sin_t, N, stride, nh, hd, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int stride, int nh,
                   int hd) {
    rope_rotate(dx, pos, cos_t, sin_t, N, stride, nh, hd, -1.0f);
}

/* ------------------------------------------------------------------------------------------------ */
/* causal grouped-query attention */

/* Rows per block of the causal attention products (see attention_forward). With T = 256, blocks of
 * 64 rows do 10/16 of the full products' flops. */
enum { ATT_ROWS = 64 };

/* Softmax of row i over columns 0..i in place; columns beyond i set to zero. */
static void causal_softmax_row(float *s, int i, int T) {
    const int n = i + 1;
    float mx = s[0];
#pragma omp simd reduction(max : mx)
    for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    /* separate loops, so that each vectorises (a float exp feeding a double sum in one does not) */
#pragma omp simd
    for (int j = 0; j < n; j++) s[j] = exp_fast(s[j] - mx);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) sum += s[j];
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (int j = 0; j < n; j++) s[j] *= inv;
    if (n < T) memset(s + n, 0, sizeof(float) * (size_t)(T - n));
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T, int H,
                       int KV, int hd, int ldq, int ldkv, int ldo) {
    ASSERT(H % KV == 0);
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    /* One (sequence, head) per iteration; the BLAS calls inside run single-threaded (OpenBLAS's OpenMP
     * build detects the enclosing parallel region), the heads run in parallel. */
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / group;
        const float *qh = q + (size_t)b * T * ldq + (size_t)h * hd;
        const float *kh = k + (size_t)b * T * ldkv + (size_t)g * hd;
        const float *vh = v + (size_t)b * T * ldkv + (size_t)g * hd;
        float *s = att + (size_t)bh * T * T;
        float *oh = out + (size_t)b * T * ldo + (size_t)h * hd;
        /* Rows i0..i1 attend to columns 0..i1 only, so each block of rows computes just those:
         * the GEMMs skip most of the masked upper triangle. */
        for (int i0 = 0; i0 < T; i0 += ATT_ROWS) {
            int i1 = i0 + ATT_ROWS < T ? i0 + ATT_ROWS : T, m = i1 - i0;
            /* s[i0:i1, 0:i1] = scale * qh[i0:i1] (m,hd) · kh[0:i1] (i1,hd)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, i1, hd, scale, qh + (size_t)i0 * ldq, ldq, kh, ldkv,
                        0.0f, s + (size_t)i0 * T, T);
            for (int i = i0; i < i1; i++) causal_softmax_row(s + (size_t)i * T, i, T);
            /* oh[i0:i1] (m,hd) = s[i0:i1, 0:i1] · vh[0:i1] (i1,hd) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, i1, 1.0f, s + (size_t)i0 * T, T, vh, ldkv, 0.0f,
                        oh + (size_t)i0 * ldo, ldo);
        }
    }
}

size_t attention_scratch_floats(int T) { return (size_t)omp_get_max_threads() * T * T; }

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *att,
                        const float *q, const float *k, const float *v, int B, int T, int H, int KV, int hd,
                        int ldq, int ldkv, int ldo) {
    ASSERT(H % KV == 0);
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    /* Parallel over (sequence, kv head): the query heads of one group all write that group's dk, dv,
     * so a group belongs to one thread. */
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * KV; bg++) {
        int b = bg / KV, g = bg % KV;
        float *ds = scratch + (size_t)omp_get_thread_num() * T * T;
        const float *kh = k + (size_t)b * T * ldkv + (size_t)g * hd;
        const float *vh = v + (size_t)b * T * ldkv + (size_t)g * hd;
        float *dkh = dk + (size_t)b * T * ldkv + (size_t)g * hd;
        float *dvh = dv + (size_t)b * T * ldkv + (size_t)g * hd;
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *p = att + ((size_t)b * H + h) * T * T;
            const float *qh = q + (size_t)b * T * ldq + (size_t)h * hd;
            const float *doh = dout + (size_t)b * T * ldo + (size_t)h * hd;
            float *dqh = dq + (size_t)b * T * ldq + (size_t)h * hd;
            /* the forward's blocks of rows: rows i0..i1 involve columns 0..i1 only */
            for (int i0 = 0; i0 < T; i0 += ATT_ROWS) {
                int i1 = i0 + ATT_ROWS < T ? i0 + ATT_ROWS : T, m = i1 - i0;
                const float *pb = p + (size_t)i0 * T, *dob = doh + (size_t)i0 * ldo;
                float *db = ds + (size_t)i0 * T;
                /* dp[i0:i1, 0:i1] = doh[i0:i1] · vh[0:i1]^T ;  dvh[0:i1] += p[i0:i1, 0:i1]^T · doh[i0:i1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, i1, hd, 1.0f, dob, ldo, vh, ldkv, 0.0f, db, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, m, 1.0f, pb, T, dob, ldo, 1.0f, dvh, ldkv);
                /* softmax backward, causal: ds_ij = scale * p_ij (dp_ij - sum_j' p_ij' dp_ij') for j <= i */
                for (int i = i0; i < i1; i++) {
                    const float *pi = p + (size_t)i * T;
                    float *di = ds + (size_t)i * T;
                    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
                    for (int j = 0; j <= i; j++) dot += (double)pi[j] * di[j];
                    float fd = (float)dot;
#pragma omp simd
                    for (int j = 0; j <= i; j++) di[j] = scale * pi[j] * (di[j] - fd);
                    if (i + 1 < T) memset(di + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
                }
                /* dqh[i0:i1] += ds[i0:i1, 0:i1] · kh[0:i1] ;  dkh[0:i1] += ds[i0:i1, 0:i1]^T · qh[i0:i1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, i1, 1.0f, db, T, kh, ldkv, 1.0f,
                            dqh + (size_t)i0 * ldq, ldq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, m, 1.0f, db, T, qh + (size_t)i0 * ldq, ldq,
                            1.0f, dkh, ldkv);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* SwiGLU */

void swiglu_forward(float *out, const float *gate, const float *up, int N, int F, int ld) {
#pragma omp parallel for if ((size_t)N * F > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *g = gate + (size_t)n * ld, *u = up + (size_t)n * ld;
        float *o = out + (size_t)n * F;
#pragma omp simd
        for (int i = 0; i < F; i++) o[i] = g[i] / (1.0f + exp_fast(-g[i])) * u[i];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int N, int F,
                     int ld) {
    /* silu(g) = g s(g);  silu'(g) = s(g) (1 + g (1 - s(g))) */
#pragma omp parallel for if ((size_t)N * F > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *g = gate + (size_t)n * ld, *u = up + (size_t)n * ld, *d = dout + (size_t)n * F;
        float *dg = dgate + (size_t)n * ld, *du = dup + (size_t)n * ld;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            float s = 1.0f / (1.0f + exp_fast(-g[i]));
            dg[i] += d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
            du[i] += d[i] * g[i] * s;
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* residual */

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for if (n > PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* softmax cross-entropy */

static float row_max(const float *x, int V) {
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

static double row_logsumexp(const float *x, int V) {
    float mx = row_max(x, V);
    /* float partial sums over blocks of 512 vectorise; the blocks add up in double */
    double sum = 0.0;
    for (int i0 = 0; i0 < V; i0 += 512) {
        int i1 = i0 + 512 < V ? i0 + 512 : V;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int i = i0; i < i1; i++) part += exp_fast(x[i] - mx);
        sum += part;
    }
    return mx + log(sum);
}

void xent_forward(float *losses, const float *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for if ((size_t)N * V > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) {
            losses[n] = 0.0f;
            continue;
        }
        ASSERT(targets[n] < V);
        const float *x = logits + (size_t)n * V;
        losses[n] = (float)(row_logsumexp(x, V) - x[targets[n]]);
    }
}

void xent_backward(float *dlogits, const float *logits, const int32_t *targets, const float *dlosses, int N, int V) {
#pragma omp parallel for if ((size_t)N * V > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0 || dlosses[n] == 0.0f) continue;
        const float *x = logits + (size_t)n * V;
        float *dx = dlogits + (size_t)n * V;
        float lse = (float)row_logsumexp(x, V), dl = dlosses[n];
#pragma omp simd
        for (int i = 0; i < V; i++) dx[i] += dl * exp_fast(x[i] - lse);
        dx[targets[n]] -= dl;
    }
}

void xent_forward_backward(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                           const float *weights, int N, int V) {
#pragma omp parallel for if ((size_t)N * V > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        float *dx = dlogits + (size_t)n * V;
        if (targets[n] < 0 || weights[n] == 0.0f) {
            losses[n] = 0.0f;
            memset(dx, 0, sizeof(float) * V);
            continue;
        }
        ASSERT(targets[n] < V);
        const float *x = logits + (size_t)n * V;
        /* one exp per logit: e^(x - max) goes to dx, then is scaled into the gradient */
        float mx = row_max(x, V);
        /* two loops, so each vectorises (a float exp feeding a double sum in one loop does not) */
#pragma omp simd
        for (int i = 0; i < V; i++) dx[i] = exp_fast(x[i] - mx);
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++) sum += dx[i];
        losses[n] = (float)(mx + log(sum) - x[targets[n]]);
        float scale = (float)(weights[n] / sum);
#pragma omp simd
        for (int i = 0; i < V; i++) dx[i] *= scale;
        dx[targets[n]] -= weights[n];
    }
}

void softmax_entropy(float *entropy, const float *logits, int N, int V) {
#pragma omp parallel for if ((size_t)N * V > PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float lse = (float)row_logsumexp(x, V);
        double e = 0.0;
#pragma omp simd reduction(- : e)
        for (int i = 0; i < V; i++) {
            float p = exp_fast(x[i] - lse);
            e -= p * (x[i] - lse);
        }
        entropy[n] = (float)e;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* scalar head */

void scalar_head_forward(float *out, const float *inp, const float *w, int N, int C) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, C, 1.0f, inp, C, w, 1, 0.0f, out, 1);
}

void scalar_head_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, int N, int C) {
    if (dw) cblas_sgemv(CblasRowMajor, CblasTrans, N, C, 1.0f, inp, C, dout, 1, 1.0f, dw, 1);
    if (dinp) cblas_sger(CblasRowMajor, N, C, 1.0f, dout, 1, w, 1, dinp, C);
}
