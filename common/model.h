/*
 * model — the Llama-2 transformer: parameters, forward, backward, and batched KV-cache decoding.
 *
 * Legend: B batch, T time, N = B*T rows, D dim, F hidden_dim, L layers, H heads, KV kv heads,
 * hd = D/H head dim, QKV = (H + 2 KV) hd, V vocabulary.
 *
 * Parameters live in ONE flat float buffer; ModelWeights points into it. Gradients (and AdamW's m
 * and v, see optim.h) are buffers of the same size and layout, so `grads + (w.wo - params)` is the
 * gradient of wo and the optimizer and checkpoint writer are single loops over the tensor table.
 * Per layer, q/k/v projections are stored as one (QKV, D) block and gate/up as one (2F, D) block,
 * so each is one GEMM; the tensor table still names them the Hugging Face way
 * (model.layers.3.self_attn.k_proj.weight is the middle slice of layer 3's qkv block).
 *
 * Batches are right-padded: positions past a sequence's length hold any token; with causal attention
 * they never influence valid positions, so the forward needs no lengths. Losses ignore them through
 * their mask, and a reward model reads its score at the last valid position.
 *
 * Activations are allocated once for the largest (B, T) a trainer will use (model_alloc_train);
 * nothing is allocated inside a step.
 */
#ifndef RLHF_MODEL_H
#define RLHF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum { HEAD_LM = 0, HEAD_SCALAR = 1 } HeadKind;

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len;
    float norm_eps, rope_theta;
    int tie_embeddings; /* LM head shares the token embedding */
    HeadKind head;      /* HEAD_LM: logits over V; HEAD_SCALAR: one value per position (reward, value) */
    int score_len;      /* HEAD_SCALAR: positions a reward model reads when scoring (BOS and the tail of a
                           longer sequence, reward.h): the length it was trained on; 0 = max_seq_len */
} ModelConfig;

typedef struct {
    float *embed;      /* (V, D) */
    float *attn_norm;  /* (L, D) */
    float *wqkv;       /* (L, QKV, D): rows of q_proj (H hd), then k_proj (KV hd), then v_proj (KV hd) */
    float *wo;         /* (L, D, H hd) */
    float *ffn_norm;   /* (L, D) */
    float *w13;        /* (L, 2F, D): rows of gate_proj (F), then up_proj (F) */
    float *w2;         /* (L, D, F) down_proj */
    float *final_norm; /* (D) */
    float *lm_head;    /* (V, D); the embedding when tied; NULL with the scalar head */
    float *score;      /* (D) the scalar head (HF score.weight (1, D)); NULL with the LM head */
} ModelWeights;

/* One named tensor of the Hugging Face layout, at `offset` floats into the flat buffer. */
typedef struct {
    char name[80];
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
    int decay; /* weight decay applies (matrices yes, norm gains no) */
} ModelTensor;

typedef struct {
    /* forward caches, per layer unless noted */
    float *x;         /* (L+1, N, D) residual stream entering each layer; x[L] leaves the last one */
    float *rstd1;     /* (L, N) */
    float *xn1;       /* (L, N, D) attention input after RMSNorm */
    float *qkv;       /* (L, N, QKV) after RoPE on q and k */
    float *att;       /* (L, B, H, T, T) attention probabilities */
    float *ao;        /* (L, N, H hd) attention output before o_proj */
    float *xmid;      /* (L, N, D) residual after attention */
    float *rstd2;     /* (L, N) */
    float *xn2;       /* (L, N, D) */
    float *gu;        /* (L, N, 2F) gate and up projections */
    float *sw;        /* (L, N, F) silu(gate) * up */
    float *rstdf;     /* (N) */
    float *xnf;       /* (N, D) final normed hidden state */
    float *logits;    /* (N, V)   HEAD_LM */
    float *values;    /* (N)      HEAD_SCALAR */
    int32_t *pos;     /* (N) position of each row */
    /* backward buffers */
    float *dlogits;   /* (N, V) set by a loss, read by model_backward */
    float *dvalues;   /* (N) */
    float *dres, *dxn, *dqkv, *dao, *dgu, *dsw; /* (N,D) (N,D) (N,QKV) (N,H hd) (N,2F) (N,F) */
    float *att_scratch;
    float *losses;    /* (N) per-token loss of the last model_lm_loss */
    float *dlosses;   /* (N) its weights: scale * mask / sum(mask) */
    int B, T;         /* the capacity they were allocated for */
} ModelActs;

typedef struct {
    ModelConfig cfg;
    size_t n_params;
    float *params;         /* the flat buffer */
    ModelWeights w;
    float *grads;          /* NULL until model_alloc_train */
    ModelWeights g;
    ModelTensor *tensors;
    int n_tensors;
    float *rope_cos, *rope_sin; /* (max_seq_len, hd/2) */
    ModelActs acts;
    int owns_params;
} Model;

/* Checks the config (positive sizes, D % H == 0, even head dim, H % KV == 0, ...); ERR_INPUT names the key. */
Err model_config_check(const ModelConfig *cfg);
size_t model_param_count(const ModelConfig *cfg);
/* Sets up the tensor table and RoPE tables. With params NULL the model allocates (zeroed) parameters;
 * otherwise it uses the caller's buffer of model_param_count floats (e.g. a read-only mmap). */
Err model_create(Model *m, const ModelConfig *cfg, float *params);
void model_free(Model *m);
/* Normal(0, std) matrices, norm gains 1; deterministic in seed. */
void model_init_random(Model *m, uint64_t seed, float std);
const ModelTensor *model_find_tensor(const Model *m, const char *name);

/* Gradients and activations for batches up to (B, T); may be called again to grow. */
void model_alloc_train(Model *m, int B, int T);
/* Forward-only activations for batches up to (B, T): what frozen models (reference, reward) need;
 * no gradient buffers. model_forward and model_token_logprobs work; losses and backward need
 * model_alloc_train. */
void model_alloc_infer(Model *m, int B, int T);
void model_zero_grads(Model *m);

/* tokens (B, T) -> acts.logits (B, T, V) or acts.values (B, T). T <= max_seq_len, B and T within capacity. */
void model_forward(Model *m, const int32_t *tokens, int B, int T);
/* Masked mean cross-entropy of acts.logits against targets (B, T): sum(mask * ce) / sum(mask).
 * Writes acts.losses and sets acts.dlogits to the gradient of (loss * scale). Returns the loss. */
float model_lm_loss(Model *m, const int32_t *targets, const float *mask, int B, int T, float scale);
/* Per-token log-probabilities of targets (B, T) under acts.logits -> out (B, T). */
void model_token_logprobs(Model *m, const int32_t *targets, float *out, int B, int T);
/* Accumulates parameter gradients from acts.dlogits (LM) or acts.dvalues (scalar head). */
void model_backward(Model *m, const int32_t *tokens, int B, int T);

/* ---- incremental decoding ---- */
typedef struct {
    int B, T;              /* sequences and positions the cache holds */
    int cold;              /* the weights are too large to stay cached between steps (model.c) */
    float *k, *v;          /* (L, B, KV, T, hd) after RoPE */
    float *x, *xn, *qkv, *ao, *gu, *sw, *scores; /* per-step scratch for B rows */
    float *logits;         /* (B, V) or values (B) with the scalar head */
    float *rstd;           /* (B) */
} Decoder;

void decoder_create(Decoder *d, const Model *m, int B, int T);
void decoder_free(Decoder *d);
/* One step for B sequences: sequence b (cache slot b) takes tokens[b] at position pos[b] (<= its
 * previous position + 1; positions may differ across b). Returns the (B, V) logits (or (B) values).
 * The B rows go through every projection together: GEMMs over all B rows (one per block of output
 * channels, see linear_forward), never B GEMVs. */
const float *model_decode_step(Model *m, Decoder *d, const int32_t *tokens, const int32_t *pos, int B);

#endif
