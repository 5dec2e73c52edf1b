/*
 * ops — the transformer's kernels, each a _forward / _backward pair.
 *
 * Shape legend (all row-major float32):
 *   N  = rows = B * T (batch times time) or B (one decode step per sequence)
 *   C  = channels of the input, OC = channels of the output
 *   B  = batch, T = time, H = query heads, KV = key/value heads, hd = head dimension
 *   V  = vocabulary, F = SwiGLU hidden size
 * Argument order follows the data flow of llm.c: outputs first, then caches, then inputs, then
 * weights, then sizes. Backward functions ACCUMULATE (+=) into every gradient they write, so the
 * caller zeroes gradients once per step and residual branches and tied weights add up by themselves.
 * A gradient pointer may be NULL when the caller does not need it (e.g. the embedding's input).
 *
 * Every matrix product goes through cblas_sgemm (cblas_sgemv when there is one row). Loops run under
 * OpenMP over rows or heads, split so that no two threads write the same memory.
 */
#ifndef RLHF_OPS_H
#define RLHF_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- token embedding ---- */
/* out (N,C) = wte[tokens[n]] ; wte is (V,C) */
void embedding_forward(float *out, const int32_t *tokens, const float *wte, int N, int C);
/* dwte[tokens[n]] += dout[n] */
void embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C);

/* ---- RMSNorm: out = inp / sqrt(mean(inp^2) + eps) * weight ---- */
/* out (N,C), rstd (N) cache, inp (N,C), weight (C) */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);

/* ---- linear: out (N,OC) = inp (N,C) · weight (OC,C)^T, weights stored (out, in) ---- */
void linear_forward(float *out, const float *inp, const float *weight, int N, int C, int OC);
/* The same product when the weight comes from main memory rather than cache (a decoding step of a
 * model larger than the caches): each block of the weight is read through once, in order, before
 * BLAS reads it. With few rows this is much faster from memory and slower from cache (ops.c). */
void linear_forward_cold(float *out, const float *inp, const float *weight, int N, int C, int OC);
/* dinp (N,C) += dout · weight ; dweight (OC,C) += dout^T · inp */
void linear_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                     int N, int C, int OC);

/* One load per 64-byte cache line of p[0, n), in order: brings a block that is about to be read
 * from main memory into cache at full bandwidth (BLAS kernels reading a few rows at a time wait on
 * memory latency instead). */
void cache_in(const float *p, size_t n);

/* ---- rotary position embedding, Hugging Face convention ----
 * Each head's vector is split into halves x1 = x[0:hd/2], x2 = x[hd/2:hd]; with angle a_i = pos * theta^(-2i/hd):
 *   out[i] = x1[i] cos a_i - x2[i] sin a_i ,  out[i + hd/2] = x2[i] cos a_i + x1[i] sin a_i.
 * (llama2.c rotates adjacent pairs instead; ckpt permutes q/k rows when converting.)
 * The tables come from rope_tables: cos and sin (max_pos, hd/2), computed in double. */
void rope_tables(float *cos_t, float *sin_t, int max_pos, int hd, float theta);
/* x (N, stride) holds nh heads of hd starting at column 0; rotated in place; pos (N) the positions. */
void rope_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int stride, int nh,
                  int hd);
/* The rotation is orthogonal: the gradient is dx rotated by -a, computed in place. */
void rope_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int stride, int nh,
                   int hd);

/* ---- causal grouped-query attention over (B,T) ----
 * q (B,T,·) with H heads at row stride ldq, k and v (B,T,·) with KV heads at stride ldkv (H % KV == 0;
 * query head h reads kv head h / (H/KV)); out (B,T,H*hd) at stride ldo; att (B,H,T,T) caches the
 * softmax probabilities (row i is zero beyond column i). Scores are scaled by 1/sqrt(hd).
 * Rows past a sequence's length (right padding) are computed but never seen by valid rows. */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T, int H,
                       int KV, int hd, int ldq, int ldkv, int ldo);
/* dq, dk, dv accumulate; scratch is (threads, T, T) floats, see attention_scratch_floats. */
void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *att,
                        const float *q, const float *k, const float *v, int B, int T, int H, int KV, int hd,
                        int ldq, int ldkv, int ldo);
size_t attention_scratch_floats(int T);

/* ---- SwiGLU: out (N,F) = silu(gate) * up; gate and up at row stride ld (they may share one buffer) ---- */
void swiglu_forward(float *out, const float *gate, const float *up, int N, int F, int ld);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int N, int F,
                     int ld);

/* ---- residual: out = a + b; backward adds dout to both gradients ---- */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* ---- softmax cross-entropy over V classes, one target per row ----
 * losses[n] = -log softmax(logits[n])[targets[n]]  (so -losses[n] is the token's log-probability).
 * Rows whose target is negative are skipped (loss 0). */
void xent_forward(float *losses, const float *logits, const int32_t *targets, int N, int V);
/* dlogits[n] += dlosses[n] * (softmax(logits[n]) - onehot(targets[n])); dlosses carries the loss mask
 * and the normalisation (e.g. mask[n] / sum(mask) for a masked mean). */
void xent_backward(float *dlogits, const float *logits, const int32_t *targets, const float *dlosses, int N, int V);
/* The loss and its gradient in one pass (one exp per logit), for trainers: rows with weights[n] != 0
 * get losses[n] as above and dlogits[n] = weights[n] * (softmax - onehot); other rows get loss 0 and a
 * zero gradient row. dlogits is OVERWRITTEN (a loss starts the backward chain; nothing to add to). */
void xent_forward_backward(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                           const float *weights, int N, int V);
/* entropy[n] of softmax(logits[n]) — for PPO's logging */
void softmax_entropy(float *entropy, const float *logits, int N, int V);

/* ---- scalar head: out (N) = inp (N,C) · w (C); the value or reward at every row ---- */
void scalar_head_forward(float *out, const float *inp, const float *w, int N, int C);
void scalar_head_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, int N, int C);

#endif
