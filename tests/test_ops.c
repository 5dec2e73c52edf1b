/*
 * Kernel tests: every backward pass against central finite differences (bounds in gradcheck.h and at
 * each call), and the forward passes that have a closed form against values computed here by hand or
 * by a direct double-precision loop.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "fastmath.h"
#include "gradcheck.h"
#include "ops.h"
#include "testutil.h"
#include "threads.h"
#include "util.h"

#define RTOL 2e-3
#define ATOL 2e-4

/* ---- embedding ---- */
typedef struct {
    float *out, *wte, *R;
    int32_t *tok;
    int N, C;
} EmbCtx;
static double emb_loss(void *p) {
    EmbCtx *c = p;
    embedding_forward(c->out, c->tok, c->wte, c->N, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}
START_TEST(test_embedding_grad) {
    Rng r;
    rng_seed(&r, 1);
    int V = 7, C = 5, N = 6;
    int32_t tok[6] = {3, 1, 3, 0, 6, 3}; /* repeats must accumulate */
    float wte[35], dwte[35] = {0}, out[30], R[30];
    fill_normal(wte, 35, 1, &r);
    fill_normal(R, 30, 1, &r);
    EmbCtx c = {out, wte, R, tok, N, C};
    embedding_backward(dwte, R, tok, N, C);
    gradcheck("dwte", emb_loss, &c, wte, dwte, (size_t)V * C, 100, 1e-2f, RTOL, ATOL);
}
END_TEST

/* ---- rmsnorm ---- */
typedef struct {
    float *out, *rstd, *inp, *w, *R;
    int N, C;
} NormCtx;
static double norm_loss(void *p) {
    NormCtx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}
START_TEST(test_rmsnorm_grad_and_value) {
    Rng r;
    rng_seed(&r, 2);
    enum { N = 4, C = 8 };
    float inp[N * C], w[C], R[N * C], out[N * C], rstd[N], dinp[N * C] = {0}, dw[C] = {0};
    fill_normal(inp, N * C, 1, &r);
    fill_normal(w, C, 0.3f, &r);
    for (int i = 0; i < C; i++) w[i] += 1.0f;
    fill_normal(R, N * C, 1, &r);
    NormCtx c = {out, rstd, inp, w, R, N, C};
    norm_loss(&c);
    /* value: row 0 by a direct double loop */
    double ss = 0;
    for (int i = 0; i < C; i++) ss += (double)inp[i] * inp[i];
    for (int i = 0; i < C; i++) ck_assert_double_eq_tol(out[i], inp[i] / sqrt(ss / C + 1e-5) * w[i], 1e-5);
    rmsnorm_backward(dinp, dw, R, inp, w, rstd, N, C);
    gradcheck("rmsnorm dinp", norm_loss, &c, inp, dinp, N * C, 100, 1e-3f, RTOL, ATOL);
    gradcheck("rmsnorm dw", norm_loss, &c, w, dw, C, 100, 1e-3f, RTOL, ATOL);
}
END_TEST

/* ---- linear ---- */
typedef struct {
    float *out, *inp, *w, *R;
    int N, C, OC;
} LinCtx;
static double lin_loss(void *p) {
    LinCtx *c = p;
    linear_forward(c->out, c->inp, c->w, c->N, c->C, c->OC);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->OC);
}
static void check_linear(int N) {
    Rng r;
    rng_seed(&r, 3 + N);
    enum { C = 6, OC = 5, NMAX = 4 };
    float inp[NMAX * C], w[OC * C], R[NMAX * OC], out[NMAX * OC], dinp[NMAX * C] = {0}, dw[OC * C] = {0};
    fill_normal(inp, NMAX * C, 1, &r);
    fill_normal(w, OC * C, 1, &r);
    fill_normal(R, NMAX * OC, 1, &r);
    LinCtx c = {out, inp, w, R, N, C, OC};
    lin_loss(&c);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int i = 0; i < C; i++) s += (double)inp[n * C + i] * w[o * C + i];
            ck_assert_double_eq_tol(out[n * OC + o], s, 1e-5);
        }
    linear_backward(dinp, dw, R, inp, w, N, C, OC);
    gradcheck("linear dinp", lin_loss, &c, inp, dinp, (size_t)N * C, 100, 1e-2f, RTOL, ATOL);
    gradcheck("linear dw", lin_loss, &c, w, dw, OC * C, 100, 1e-2f, RTOL, ATOL);
}
START_TEST(test_linear_grad_gemm) { check_linear(4); }
END_TEST
START_TEST(test_linear_grad_gemv) { check_linear(1); }
END_TEST

/* Few rows go through blocks of output channels (ops.c), from cache or read through first: against a
 * double-precision loop for row counts on both sides of the block sizes' limits, with a last partial
 * block, and the same bits for 1 and 2 threads. */
START_TEST(test_linear_forward_blocks) {
    enum { C = 40, OC = 2000, NMAX = 80 }; /* N = 1: blocks of 1632 rows; N = 2: 592 */
    const int Ns[] = {1, 2, 3, 8, 16, 33, 75, 76};
    Rng r;
    rng_seed(&r, 17);
    float *inp = xmalloc(sizeof(float) * NMAX * C), *w = xmalloc(sizeof(float) * OC * C);
    float *out = xmalloc(sizeof(float) * NMAX * OC), *out1 = xmalloc(sizeof(float) * NMAX * OC);
    fill_normal(inp, NMAX * C, 1, &r);
    fill_normal(w, OC * C, 1, &r);
    for (size_t k = 0; k < sizeof Ns / sizeof Ns[0]; k++)
        for (int cold = 0; cold < 2; cold++) {
            int N = Ns[k];
            void (*f)(float *, const float *, const float *, int, int, int) = cold ? linear_forward_cold : linear_forward;
            threads_set(1);
            f(out1, inp, w, N, C, OC);
            threads_set(2);
            f(out, inp, w, N, C, OC);
            for (int n = 0; n < N; n++)
                for (int o = 0; o < OC; o++) {
                    double s = 0;
                    for (int i = 0; i < C; i++) s += (double)inp[n * C + i] * w[o * C + i];
                    ck_assert_msg(fabs(out[n * OC + o] - s) <= 1e-4 * (1 + fabs(s)), "N %d cold %d: %g vs %g", N, cold,
                                  out[n * OC + o], s);
                }
            ck_assert_msg(memcmp(out, out1, sizeof(float) * N * OC) == 0, "N %d cold %d: threads change bits", N, cold);
        }
    threads_set(0);
    free(inp);
    free(w);
    free(out);
    free(out1);
}
END_TEST

/* ---- rope ---- */
START_TEST(test_rope_values_hf_convention) {
    /* hd 4, theta 10000: inv_freq = [1, 0.01]; halves x1 = (1,2), x2 = (3,4) at position 1 */
    float cs[2 * 2], sn[2 * 2];
    rope_tables(cs, sn, 2, 4, 10000.0f);
    float x[4] = {1, 2, 3, 4};
    int32_t pos[1] = {1};
    rope_forward(x, pos, cs, sn, 1, 4, 1, 4);
    ck_assert_double_eq_tol(x[0], 1 * cos(1.0) - 3 * sin(1.0), 1e-6);
    ck_assert_double_eq_tol(x[1], 2 * cos(0.01) - 4 * sin(0.01), 1e-6);
    ck_assert_double_eq_tol(x[2], 3 * cos(1.0) + 1 * sin(1.0), 1e-6);
    ck_assert_double_eq_tol(x[3], 4 * cos(0.01) + 2 * sin(0.01), 1e-6);
    /* theta matters: 500000 changes the second frequency */
    float cs2[4], sn2[4];
    rope_tables(cs2, sn2, 2, 4, 500000.0f);
    ck_assert_double_eq_tol(cs2[3], cos(pow(500000.0, -0.5)), 1e-7);
}
END_TEST

typedef struct {
    float *x, *work, *R, *cs, *sn;
    int32_t *pos;
    int N, stride, nh, hd;
} RopeCtx;
static double rope_loss(void *p) {
    RopeCtx *c = p;
    memcpy(c->work, c->x, sizeof(float) * c->N * c->stride);
    rope_forward(c->work, c->pos, c->cs, c->sn, c->N, c->stride, c->nh, c->hd);
    return weighted_sum(c->work, c->R, (size_t)c->N * c->stride);
}
START_TEST(test_rope_grad) {
    Rng r;
    rng_seed(&r, 4);
    enum { N = 3, NH = 2, HD = 6, STRIDE = 14 }; /* two heads of 6 in a row of 14: columns 12,13 untouched */
    float cs[8 * 3], sn[8 * 3], x[N * STRIDE], work[N * STRIDE], R[N * STRIDE], dx[N * STRIDE];
    int32_t pos[N] = {0, 5, 7};
    rope_tables(cs, sn, 8, HD, 10000.0f);
    fill_normal(x, N * STRIDE, 1, &r);
    fill_normal(R, N * STRIDE, 1, &r);
    for (int n = 0; n < N; n++) /* only the rotated columns carry gradient in this layout */
        for (int i = NH * HD; i < STRIDE; i++) R[n * STRIDE + i] = 0;
    memcpy(dx, R, sizeof dx);
    rope_backward(dx, pos, cs, sn, N, STRIDE, NH, HD);
    RopeCtx c = {x, work, R, cs, sn, pos, N, STRIDE, NH, HD};
    gradcheck("rope dx", rope_loss, &c, x, dx, N * STRIDE, 100, 1e-2f, RTOL, ATOL);
}
END_TEST

/* ---- attention (GQA, strided q/k/v in one packed buffer as the model stores them) ---- */
typedef struct {
    float *qkv, *out, *att, *R;
    int B, T, H, KV, hd;
} AttCtx;
static int att_ld(const AttCtx *c) { return (c->H + 2 * c->KV) * c->hd; }
static double att_loss(void *p) {
    AttCtx *c = p;
    int ld = att_ld(c), Hd = c->H * c->hd;
    attention_forward(c->out, c->att, c->qkv, c->qkv + Hd, c->qkv + Hd + c->KV * c->hd, c->B, c->T, c->H, c->KV, c->hd,
                      ld, ld, Hd);
    return weighted_sum(c->out, c->R, (size_t)c->B * c->T * Hd);
}
/* Values against a direct double loop for every (b, t, h), gradients against finite differences.
 * T > 64 crosses the blocks of rows the kernels work in (ops.c, ATT_ROWS). */
static void check_attention(int B, int T, int H, int KV, int hd, size_t samples) {
    Rng r;
    rng_seed(&r, 5 + T);
    AttCtx c = {NULL, NULL, NULL, NULL, B, T, H, KV, hd};
    const int ld = att_ld(&c), Hd = H * hd;
    c.qkv = xcalloc((size_t)B * T * ld, sizeof(float));
    c.out = xcalloc((size_t)B * T * Hd, sizeof(float));
    c.att = xcalloc((size_t)B * H * T * T, sizeof(float));
    c.R = xcalloc((size_t)B * T * Hd, sizeof(float));
    float *dqkv = xcalloc((size_t)B * T * ld, sizeof(float));
    double *s = xcalloc((size_t)T, sizeof(double));
    fill_normal(c.qkv, (size_t)B * T * ld, 1, &r);
    fill_normal(c.R, (size_t)B * T * Hd, 1, &r);
    att_loss(&c);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                int g = h / (H / KV);
                const float *q = c.qkv + (size_t)(b * T + t) * ld + h * hd;
                double mx = -1e30, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const float *k = c.qkv + (size_t)(b * T + j) * ld + Hd + g * hd;
                    s[j] = 0;
                    for (int i = 0; i < hd; i++) s[j] += (double)q[i] * k[i];
                    s[j] /= sqrt((double)hd);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - mx));
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int j = 0; j <= t; j++) o += s[j] / sum * c.qkv[(size_t)(b * T + j) * ld + Hd + KV * hd + g * hd + i];
                    ck_assert_double_eq_tol(c.out[(size_t)(b * T + t) * Hd + h * hd + i], o, 1e-5);
                }
                /* the cached probabilities are zero beyond the diagonal */
                for (int j = t + 1; j < T; j++) ck_assert(c.att[(((size_t)b * H + h) * T + t) * T + j] == 0.0f);
            }
    float *scratch = xcalloc(attention_scratch_floats(T), sizeof(float));
    attention_backward(dqkv, dqkv + Hd, dqkv + Hd + KV * hd, scratch, c.R, c.att, c.qkv, c.qkv + Hd,
                       c.qkv + Hd + KV * hd, B, T, H, KV, hd, ld, ld, Hd);
    free(scratch);
    gradcheck("attention dq,dk,dv", att_loss, &c, c.qkv, dqkv, (size_t)B * T * ld, samples, 1e-2f, RTOL, ATOL);
    free(c.qkv);
    free(c.out);
    free(c.att);
    free(c.R);
    free(dqkv);
    free(s);
}
START_TEST(test_attention_value_and_grad) { check_attention(2, 5, 4, 2, 4, 400); }
END_TEST
START_TEST(test_attention_blocks_of_rows) { check_attention(1, 150, 2, 1, 4, 400); }
END_TEST

/* ---- swiglu ---- */
typedef struct {
    float *gu, *out, *R;
    int N, F;
} SwiCtx;
static double swi_loss(void *p) {
    SwiCtx *c = p;
    swiglu_forward(c->out, c->gu, c->gu + c->F, c->N, c->F, 2 * c->F);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->F);
}
START_TEST(test_swiglu_grad_and_value) {
    Rng r;
    rng_seed(&r, 6);
    enum { N = 3, F = 7 };
    float gu[N * 2 * F], dgu[N * 2 * F] = {0}, out[N * F], R[N * F];
    fill_normal(gu, N * 2 * F, 1.5f, &r);
    fill_normal(R, N * F, 1, &r);
    SwiCtx c = {gu, out, R, N, F};
    swi_loss(&c);
    double g = gu[0], u = gu[F];
    ck_assert_double_eq_tol(out[0], g / (1 + exp(-g)) * u, 1e-6);
    swiglu_backward(dgu, dgu + F, R, gu, gu + F, N, F, 2 * F);
    gradcheck("swiglu", swi_loss, &c, gu, dgu, N * 2 * F, 100, 1e-3f, RTOL, ATOL);
}
END_TEST

/* ---- residual ---- */
START_TEST(test_residual) {
    float a[3] = {1, 2, 3}, b[3] = {10, 20, 30}, out[3], da[3] = {1, 1, 1}, db[3] = {0};
    float dout[3] = {0.5f, -1, 2};
    residual_forward(out, a, b, 3);
    ck_assert_float_eq(out[2], 33.0f);
    residual_backward(da, db, dout, 3);
    ck_assert_float_eq(da[1], 0.0f); /* accumulated onto 1 */
    ck_assert_float_eq(db[2], 2.0f);
}
END_TEST

/* ---- cross-entropy ---- */
typedef struct {
    float *logits, *losses, *w;
    int32_t *tgt;
    int N, V;
} XentCtx;
static double xent_loss(void *p) {
    XentCtx *c = p;
    xent_forward(c->losses, c->logits, c->tgt, c->N, c->V);
    return weighted_sum(c->losses, c->w, c->N);
}
START_TEST(test_xent_value_and_grad) {
    Rng r;
    rng_seed(&r, 7);
    enum { N = 4, V = 9 };
    float logits[N * V], losses[N], dlogits[N * V] = {0};
    float w[N] = {0.5f, 0.0f, 0.25f, 0.25f}; /* row 1 masked out: a prompt token */
    int32_t tgt[N] = {3, 8, 0, -1};          /* row 3 has no target */
    fill_normal(logits, N * V, 2, &r);
    XentCtx c = {logits, losses, w, tgt, N, V};
    xent_loss(&c);
    /* row 0 by hand: log(sum exp) - logit[target] */
    double s = 0;
    for (int i = 0; i < V; i++) s += exp(logits[i]);
    ck_assert_double_eq_tol(losses[0], log(s) - logits[3], 1e-5);
    ck_assert_float_eq(losses[3], 0.0f);
    xent_backward(dlogits, logits, tgt, w, N, V);
    for (int i = 0; i < V; i++) ck_assert_float_eq(dlogits[1 * V + i], 0.0f);
    gradcheck("xent dlogits", xent_loss, &c, logits, dlogits, N * V, 100, 1e-2f, RTOL, ATOL);
    /* entropy of a uniform row is log V */
    float flat[V] = {0}, ent;
    softmax_entropy(&ent, flat, 1, V);
    ck_assert_double_eq_tol(ent, log((double)V), 1e-6);
}
END_TEST

START_TEST(test_xent_fused_equals_separate) {
    Rng r;
    rng_seed(&r, 9);
    enum { N = 5, V = 37 };
    float logits[N * V], l1[N], l2[N], d1[N * V] = {0}, d2[N * V];
    float w[N] = {0.2f, 0.0f, 0.3f, 0.5f, 1.0f};
    int32_t tgt[N] = {3, 8, 36, -1, 0};
    fill_normal(logits, N * V, 3, &r);
    for (int i = 0; i < N * V; i++) d2[i] = 123.0f; /* overwritten, not accumulated */
    xent_forward(l1, logits, tgt, N, V);
    xent_backward(d1, logits, tgt, w, N, V);
    xent_forward_backward(l2, d2, logits, tgt, w, N, V);
    for (int n = 0; n < N; n++)
        if (w[n] != 0.0f && tgt[n] >= 0) ck_assert_double_eq_tol(l1[n], l2[n], 1e-5);
        else ck_assert_float_eq(l2[n], 0.0f);
    /* the two paths round differently (exp(x - max) / sum against exp(x - lse)): gradients are at most 1 */
    for (int i = 0; i < N * V; i++) ck_assert_double_eq_tol(d1[i], d2[i], 1e-6);
}
END_TEST

START_TEST(test_exp_fast_accuracy) {
    /* relative error against libm's double exp over the clamped range, 200001 points */
    double worst = 0.0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double want = exp((double)x), got = exp_fast(x);
        double rel = fabs(got - want) / want;
        worst = rel > worst ? rel : worst;
    }
    ck_assert_msg(worst < 3e-7, "worst relative error %g", worst);
    ck_assert_float_eq(exp_fast(0.0f), 1.0f);
    ck_assert(isnan(exp_fast(NAN)));
    ck_assert(exp_fast(-1000.0f) < 2e-38f && exp_fast(-1000.0f) > 0.0f); /* clamped: about 1.6e-38 */
}
END_TEST

/* ---- scalar head ---- */
typedef struct {
    float *inp, *w, *out, *R;
    int N, C;
} HeadCtx;
static double head_loss(void *p) {
    HeadCtx *c = p;
    scalar_head_forward(c->out, c->inp, c->w, c->N, c->C);
    return weighted_sum(c->out, c->R, c->N);
}
START_TEST(test_scalar_head_grad) {
    Rng r;
    rng_seed(&r, 8);
    enum { N = 5, C = 6 };
    float inp[N * C], w[C], out[N], R[N] = {0, 0, 1, 0, -0.5f}, dinp[N * C] = {0}, dw[C] = {0};
    fill_normal(inp, N * C, 1, &r);
    fill_normal(w, C, 1, &r);
    HeadCtx c = {inp, w, out, R, N, C};
    head_loss(&c);
    double s = 0;
    for (int i = 0; i < C; i++) s += (double)inp[2 * C + i] * w[i];
    ck_assert_double_eq_tol(out[2], s, 1e-5);
    scalar_head_backward(dinp, dw, R, inp, w, N, C);
    gradcheck("head dinp", head_loss, &c, inp, dinp, N * C, 100, 1e-2f, RTOL, ATOL);
    gradcheck("head dw", head_loss, &c, w, dw, C, 100, 1e-2f, RTOL, ATOL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, test_embedding_grad);
    tcase_add_test(tc, test_rmsnorm_grad_and_value);
    tcase_add_test(tc, test_linear_grad_gemm);
    tcase_add_test(tc, test_linear_grad_gemv);
    tcase_add_test(tc, test_linear_forward_blocks);
    tcase_add_test(tc, test_rope_values_hf_convention);
    tcase_add_test(tc, test_rope_grad);
    tcase_add_test(tc, test_attention_value_and_grad);
    tcase_add_test(tc, test_attention_blocks_of_rows);
    tcase_add_test(tc, test_swiglu_grad_and_value);
    tcase_add_test(tc, test_residual);
    tcase_add_test(tc, test_xent_value_and_grad);
    tcase_add_test(tc, test_scalar_head_grad);
    tcase_add_test(tc, test_xent_fused_equals_separate);
    tcase_add_test(tc, test_exp_fast_accuracy);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
