/*
 * bench_model — rlhf.c's training and decoding throughput for one model shape, plus the sgemm
 * ceiling of this machine, printed as `rlhf <config> <metric> <value>` lines that bench/run.sh sets
 * beside PyTorch's.
 *
 *   bench_model --config c1|c2 [--threads N] [--seconds S]
 *
 * c1: dim 288, 6 layers, 6 heads (6 kv), hidden 768, vocab 32000, seq 256, train batch 4
 * c2: dim 64, 5 layers, 8 heads, 4 kv heads, hidden 172, vocab 512, seq 512, train batch 2
 * Training = forward + masked cross-entropy over all tokens + backward + clip + AdamW.
 * Decoding = batch 1 and batch 8 sequences from BOS, 128 new tokens each, greedy, KV cache.
 * MFU = achieved model flops / the best sgemm rate measured at the model's own shapes, with
 * model flops per trained token = 6 * (matmul parameters) + 12 * L * D * T (attention, causal
 * half not discounted, as PaLM counts it).
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "optim.h"
#include "rng.h"
#include "threads.h"
#include "util.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s of C (M,N) = A (M,K) B^T with B (N,K) — the shape of linear_forward. */
static double sgemm_rate(int M, int N, int K, int transa) {
    float *a = xaligned_calloc(sizeof(float) * (size_t)M * K), *b = xaligned_calloc(sizeof(float) * (size_t)N * K);
    float *c = xaligned_calloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        int iters = 0;
        do {
            if (transa) /* the weight-gradient shape: (N,K)^T-style reduction over the rows */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, a, M, b, N, 0.0f, c, N);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
            iters++;
        } while (now() - t0 < 0.2);
        double rate = 2.0 * M * N * K * iters / (now() - t0) / 1e9;
        best = rate > best ? rate : best;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* The first index of the largest value. Two passes, so that each vectorises: the one-pass loop
 * (compare with x[best], a dependent load) took 0.11 ms per 32000 logits, 7% of a batch-8 step. */
static int argmax(const float *x, int n) {
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    int i = 0;
    while (i < n - 1 && x[i] != mx) i++; /* bounded: a NaN never compares equal */
    return i;
}

static double bench_decode(Model *m, int B, int new_tokens) {
    Decoder d;
    decoder_create(&d, m, B, new_tokens + 1);
    int32_t tok[8], pos[8];
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        for (int b = 0; b < B; b++) tok[b] = 1; /* BOS */
        double t0 = now();
        for (int t = 0; t < new_tokens; t++) {
            for (int b = 0; b < B; b++) pos[b] = t;
            const float *logits = model_decode_step(m, &d, tok, pos, B);
            for (int b = 0; b < B; b++) tok[b] = argmax(logits + (size_t)b * m->cfg.vocab_size, m->cfg.vocab_size);
        }
        double rate = (double)B * new_tokens / (now() - t0);
        best = rate > best ? rate : best;
    }
    decoder_free(&d);
    return best;
}

int main(int argc, char **argv) {
    const char *name = "c1";
    int threads = 2;
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_model [--config c1|c2] [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    ModelConfig c;
    int B;
    if (!strcmp(name, "c1")) {
        c = (ModelConfig){288, 768, 6, 6, 6, 32000, 256, 1e-5f, 10000.0f, 0, HEAD_LM};
        B = 4;
    } else if (!strcmp(name, "c2")) {
        c = (ModelConfig){64, 172, 5, 8, 4, 512, 512, 1e-5f, 10000.0f, 0, HEAD_LM};
        B = 2;
    } else {
        fprintf(stderr, "bench_model: unknown config '%s' (c1 or c2)\n", name);
        return 2;
    }
    threads = threads_set(threads);
    const int T = c.max_seq_len, N = B * T, D = c.dim, F = c.hidden_dim, V = c.vocab_size;
    const int hd = D / c.n_heads, QKV = (c.n_heads + 2 * c.n_kv_heads) * hd;

    /* the sgemm ceiling at this model's shapes: forward (N rows) and weight-gradient products */
    double ceiling = 0;
    int shapes[][4] = {{N, QKV, D, 0}, {N, 2 * F, D, 0}, {N, D, F, 0}, {N, V, D, 0}, {QKV, D, N, 1}, {2 * F, D, N, 1}};
    for (size_t i = 0; i < (getenv("BENCH_NO_CEILING") ? 1 : sizeof shapes / sizeof shapes[0]); i++) {
        double r = sgemm_rate(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
        ceiling = r > ceiling ? r : ceiling;
    }

    Model m;
    if (model_create(&m, &c, NULL) != ERR_OK) {
        fprintf(stderr, "bench_model: %s\n", err_msg());
        return 2;
    }
    model_init_random(&m, 1, 0.02f);
    model_alloc_train(&m, B, T);
    AdamW opt;
    adamw_create(&opt, m.n_params);
    AdamWConfig ac = {0.9f, 0.95f, 1e-5f, 0.1f};
    int32_t *tokens = xmalloc(sizeof(int32_t) * N), *targets = xmalloc(sizeof(int32_t) * N);
    float *mask = xmalloc(sizeof(float) * N);
    Rng r;
    rng_seed(&r, 2);
    for (int i = 0; i < N; i++) {
        tokens[i] = (int32_t)rng_below(&r, V);
        mask[i] = 1.0f;
    }
    for (int i = 0; i < N; i++) targets[i] = i + 1 < N ? tokens[i + 1] : 0;
    int steps = 0;
    double t0 = 0, loss = 0, norm, phase[4] = {0}; /* forward, loss, backward, clip + AdamW */
    for (int it = 0;; it++) {
        if (it == 2) t0 = now(); /* two warm-up steps */
        double ta = now();
        model_zero_grads(&m);
        model_forward(&m, tokens, B, T);
        double tb = now();
        loss = model_lm_loss(&m, targets, mask, B, T, 1.0f);
        double tc = now();
        model_backward(&m, tokens, B, T);
        double td = now();
        if (optim_finish_grads(m.grads, m.n_params, 1.0f, &norm) != ERR_OK) {
            fprintf(stderr, "bench_model: %s\n", err_msg());
            return 1;
        }
        adamw_step(&opt, m.params, m.grads, m.tensors, m.n_tensors, &ac, 1e-4f);
        if (it >= 2) {
            phase[0] += tb - ta, phase[1] += tc - tb, phase[2] += td - tc, phase[3] += now() - td;
            steps++;
        }
        if (it >= 2 && steps >= 3 && now() - t0 > seconds) break;
    }
    double train_tok_s = (double)steps * N / (now() - t0);
    size_t matmul_params = (size_t)c.n_layers * ((size_t)QKV * D + (size_t)D * c.n_heads * hd + 3 * (size_t)F * D) +
                           (size_t)V * D;
    double flops_per_token = 6.0 * matmul_params + 12.0 * c.n_layers * D * T;
    double d1 = bench_decode(&m, 1, 128), d8 = bench_decode(&m, 8, 128);

    printf("rlhf %s threads %d\n", name, threads);
    printf("rlhf %s params %zu\n", name, m.n_params);
    printf("rlhf %s sgemm_gflops %.1f\n", name, ceiling);
    printf("rlhf %s train_tok_s %.1f\n", name, train_tok_s);
    printf("rlhf %s train_mfu %.3f\n", name, train_tok_s * flops_per_token / (ceiling * 1e9));
    printf("rlhf %s train_loss_last %.4f\n", name, loss);
    printf("rlhf %s train_ms_forward %.1f\n", name, 1e3 * phase[0] / steps);
    printf("rlhf %s train_ms_loss %.1f\n", name, 1e3 * phase[1] / steps);
    printf("rlhf %s train_ms_backward %.1f\n", name, 1e3 * phase[2] / steps);
    printf("rlhf %s train_ms_optimizer %.1f\n", name, 1e3 * phase[3] / steps);
    printf("rlhf %s decode_b1_tok_s %.1f\n", name, d1);
    printf("rlhf %s decode_b8_tok_s %.1f\n", name, d8);
    free(tokens);
    free(targets);
    free(mask);
    adamw_free(&opt);
    model_free(&m);
    return 0;
}
