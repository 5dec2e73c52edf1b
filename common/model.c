/*
 * model — Llama-2 forward, backward and decoding over the kernels in ops.c. See model.h.
 *
 * One layer, forward (pre-norm residual blocks):
 *   xn1 = rmsnorm(x) ; qkv = xn1 Wqkv^T ; rope(q), rope(k) ; ao = attention(q, k, v)
 *   xmid = x + ao Wo^T ; xn2 = rmsnorm(xmid) ; gu = xn2 W13^T ; sw = silu(gate) * up
 *   x' = xmid + sw W2^T
 * Backward runs the same steps in reverse with dres holding d(loss)/d(residual stream); each branch's
 * gradient is accumulated into dres by the RMSNorm backward that starts it.
 */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fastmath.h"
#include "ops.h"
#include "rng.h"
#include "util.h"

/* ------------------------------------------------------------------------------------------------ */
/* configuration and parameter layout */

Err model_config_check(const ModelConfig *c) {
#define NEED(cond, key, what)                                                                  \
    if (!(cond)) return err_set(ERR_INPUT, "model config: %s %s", key, what)
    NEED(c->dim > 0, "dim", "must be positive");
    NEED(c->hidden_dim > 0, "hidden_dim", "must be positive");
    NEED(c->n_layers > 0, "n_layers", "must be positive");
    NEED(c->n_heads > 0, "n_heads", "must be positive");
    NEED(c->n_kv_heads > 0, "n_kv_heads", "must be positive");
    NEED(c->vocab_size > 0, "vocab_size", "must be positive");
    NEED(c->max_seq_len > 0, "max_seq_len", "must be positive");
    NEED(c->dim % c->n_heads == 0, "dim", "must be a multiple of n_heads");
    NEED((c->dim / c->n_heads) % 2 == 0, "dim", "/ n_heads (the head dimension) must be even for RoPE");
    NEED(c->n_heads % c->n_kv_heads == 0, "n_heads", "must be a multiple of n_kv_heads");
    NEED(c->norm_eps > 0 && isfinite(c->norm_eps), "norm_eps", "must be positive");
    NEED(c->rope_theta > 0 && isfinite(c->rope_theta), "rope_theta", "must be positive");
    NEED(c->head == HEAD_LM || c->head == HEAD_SCALAR, "head", "must be lm or scalar");
    NEED(c->score_len == 0 || (c->head == HEAD_SCALAR && c->score_len >= 2 && c->score_len <= c->max_seq_len),
         "score_len", "must be 0, or 2..max_seq_len with the scalar head");
#undef NEED
    return ERR_OK;
}

typedef struct {
    size_t embed, attn_norm, wqkv, wo, ffn_norm, w13, w2, final_norm, lm_head, score, total;
} Layout;

static Layout layout_of(const ModelConfig *c) {
    size_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size, hd = D / c->n_heads;
    size_t QKV = (c->n_heads + 2 * (size_t)c->n_kv_heads) * hd, HD = c->n_heads * hd;
    Layout l;
    size_t o = 0;
    l.embed = o, o += V * D;
    l.attn_norm = o, o += L * D;
    l.wqkv = o, o += L * QKV * D;
    l.wo = o, o += L * D * HD;
    l.ffn_norm = o, o += L * D;
    l.w13 = o, o += L * 2 * F * D;
    l.w2 = o, o += L * D * F;
    l.final_norm = o, o += D;
    l.lm_head = (c->head == HEAD_LM && !c->tie_embeddings) ? (o += V * D, o - V * D) : (size_t)-1;
    l.score = c->head == HEAD_SCALAR ? (o += D, o - D) : (size_t)-1;
    l.total = o;
    return l;
}

size_t model_param_count(const ModelConfig *cfg) { return layout_of(cfg).total; }

static void weights_point(ModelWeights *w, float *base, const ModelConfig *c, const Layout *l) {
    w->embed = base + l->embed;
    w->attn_norm = base + l->attn_norm;
    w->wqkv = base + l->wqkv;
    w->wo = base + l->wo;
    w->ffn_norm = base + l->ffn_norm;
    w->w13 = base + l->w13;
    w->w2 = base + l->w2;
    w->final_norm = base + l->final_norm;
    w->lm_head = c->head != HEAD_LM ? NULL : c->tie_embeddings ? w->embed : base + l->lm_head;
    w->score = c->head == HEAD_SCALAR ? base + l->score : NULL;
}

static void add_tensor(Model *m, const char *name, int64_t rows, int64_t cols, size_t offset) {
    ModelTensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 0;
    t->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    t->offset = offset;
    t->decay = t->ndim >= 2;
}

static void build_tensor_table(Model *m, const Layout *l) {
    const ModelConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->hidden_dim, V = c->vocab_size, hd = D / c->n_heads;
    int64_t Hd = c->n_heads * hd, KVd = c->n_kv_heads * hd, QKV = Hd + 2 * KVd;
    m->tensors = xcalloc((size_t)9 * c->n_layers + 4, sizeof(ModelTensor));
    char name[80];
    add_tensor(m, "model.embed_tokens.weight", V, D, l->embed);
    for (int i = 0; i < c->n_layers; i++) {
        size_t qkv = l->wqkv + (size_t)i * QKV * D, w13 = l->w13 + (size_t)i * 2 * F * D;
#define LAYER(suffix, rows, cols, off)                                         \
    snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);              \
    add_tensor(m, name, rows, cols, off)
        LAYER("input_layernorm.weight", D, 0, l->attn_norm + (size_t)i * D);
        LAYER("self_attn.q_proj.weight", Hd, D, qkv);
        LAYER("self_attn.k_proj.weight", KVd, D, qkv + (size_t)Hd * D);
        LAYER("self_attn.v_proj.weight", KVd, D, qkv + (size_t)(Hd + KVd) * D);
        LAYER("self_attn.o_proj.weight", D, Hd, l->wo + (size_t)i * D * Hd);
        LAYER("post_attention_layernorm.weight", D, 0, l->ffn_norm + (size_t)i * D);
        LAYER("mlp.gate_proj.weight", F, D, w13);
        LAYER("mlp.up_proj.weight", F, D, w13 + (size_t)F * D);
        LAYER("mlp.down_proj.weight", D, F, l->w2 + (size_t)i * D * F);
#undef LAYER
    }
    add_tensor(m, "model.norm.weight", D, 0, l->final_norm);
    if (c->head == HEAD_LM && !c->tie_embeddings) add_tensor(m, "lm_head.weight", V, D, l->lm_head);
    if (c->head == HEAD_SCALAR) add_tensor(m, "score.weight", 1, D, l->score);
}

Err model_create(Model *m, const ModelConfig *cfg, float *params) {
    Err rc = model_config_check(cfg);
    if (rc) return rc;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    Layout l = layout_of(cfg);
    m->n_params = l.total;
    m->owns_params = params == NULL;
    m->params = params ? params : xaligned_calloc(l.total * sizeof(float));
    weights_point(&m->w, m->params, cfg, &l);
    build_tensor_table(m, &l);
    int hd = cfg->dim / cfg->n_heads;
    m->rope_cos = xmalloc(sizeof(float) * cfg->max_seq_len * (hd / 2));
    m->rope_sin = xmalloc(sizeof(float) * cfg->max_seq_len * (hd / 2));
    rope_tables(m->rope_cos, m->rope_sin, cfg->max_seq_len, hd, cfg->rope_theta);
    return ERR_OK;
}

static void acts_free(ModelActs *a) {
    float *bufs[] = {a->x,    a->rstd1,  a->xn1,   a->qkv,     a->att,         a->ao,     a->xmid,
                     a->rstd2, a->xn2,   a->gu,    a->sw,      a->rstdf,       a->xnf,    a->logits,
                     a->values, a->dlogits, a->dvalues, a->dres, a->dxn, a->dqkv, a->dao, a->dgu,
                     a->dsw,  a->att_scratch, a->losses, a->dlosses};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

void model_free(Model *m) {
    if (m->owns_params) free(m->params);
    free(m->grads);
    free(m->tensors);
    free(m->rope_cos);
    free(m->rope_sin);
    acts_free(&m->acts);
    memset(m, 0, sizeof *m);
}

void model_init_random(Model *m, uint64_t seed, float std) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++) p[j] = t->ndim >= 2 ? std * rng_normal(&r) : 1.0f;
    }
}

const ModelTensor *model_find_tensor(const Model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* training buffers */

#define FALLOC(n) ((float *)xaligned_calloc(sizeof(float) * (size_t)(n)))

/* Forward caches for (B, T); with `backward`, also the gradient buffers of the activations. */
static void acts_alloc(Model *m, int B, int T, int backward) {
    const ModelConfig *c = &m->cfg;
    ASSERT(T <= c->max_seq_len);
    ModelActs *a = &m->acts;
    if (a->B >= B && a->T >= T && (size_t)a->B * a->T >= (size_t)B * T && (a->dres || !backward)) return;
    acts_free(a);
    size_t N = (size_t)B * T, D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    size_t hd = D / c->n_heads, HD = c->n_heads * hd, QKV = HD + 2 * c->n_kv_heads * hd;
    a->x = FALLOC((L + 1) * N * D);
    a->rstd1 = FALLOC(L * N);
    a->xn1 = FALLOC(L * N * D);
    a->qkv = FALLOC(L * N * QKV);
    a->att = FALLOC(L * B * c->n_heads * (size_t)T * T);
    a->ao = FALLOC(L * N * HD);
    a->xmid = FALLOC(L * N * D);
    a->rstd2 = FALLOC(L * N);
    a->xn2 = FALLOC(L * N * D);
    a->gu = FALLOC(L * N * 2 * F);
    a->sw = FALLOC(L * N * F);
    a->rstdf = FALLOC(N);
    a->xnf = FALLOC(N * D);
    if (c->head == HEAD_LM)
        a->logits = FALLOC(N * V);
    else
        a->values = FALLOC(N);
    a->pos = xcalloc(N, sizeof(int32_t));
    a->losses = FALLOC(N);
    a->dlosses = FALLOC(N);
    if (backward) {
        if (c->head == HEAD_LM)
            a->dlogits = FALLOC(N * V);
        else
            a->dvalues = FALLOC(N);
        a->dres = FALLOC(N * D);
        a->dxn = FALLOC(N * D);
        a->dqkv = FALLOC(N * QKV);
        a->dao = FALLOC(N * HD);
        a->dgu = FALLOC(N * 2 * F);
        a->dsw = FALLOC(N * F);
        a->att_scratch = FALLOC(attention_scratch_floats(T));
    }
    a->B = B;
    a->T = T;
}

void model_alloc_infer(Model *m, int B, int T) { acts_alloc(m, B, T, 0); }

void model_alloc_train(Model *m, int B, int T) {
    if (!m->grads) {
        m->grads = FALLOC(m->n_params);
        Layout l = layout_of(&m->cfg);
        weights_point(&m->g, m->grads, &m->cfg, &l);
    }
    acts_alloc(m, B, T, 1);
}

void model_zero_grads(Model *m) { memset(m->grads, 0, sizeof(float) * m->n_params); }

/* ------------------------------------------------------------------------------------------------ */
/* forward and backward */

/* Layer l's slices of the activation caches for a (B, T) batch. */
typedef struct {
    float *x, *rstd1, *xn1, *qkv, *att, *ao, *xmid, *rstd2, *xn2, *gu, *sw, *xnext;
} LayerView;

static LayerView layer_view(const ModelActs *a, const ModelConfig *c, int l, int B, int T) {
    size_t N = (size_t)B * T, D = c->dim, F = c->hidden_dim, hd = D / c->n_heads, HD = c->n_heads * hd;
    size_t QKV = HD + 2 * c->n_kv_heads * hd;
    LayerView v = {.x = a->x + l * N * D,
                   .rstd1 = a->rstd1 + l * N,
                   .xn1 = a->xn1 + l * N * D,
                   .qkv = a->qkv + l * N * QKV,
                   .att = a->att + l * (size_t)B * c->n_heads * T * T,
                   .ao = a->ao + l * N * HD,
                   .xmid = a->xmid + l * N * D,
                   .rstd2 = a->rstd2 + l * N,
                   .xn2 = a->xn2 + l * N * D,
                   .gu = a->gu + l * N * 2 * F,
                   .sw = a->sw + l * N * F,
                   .xnext = a->x + (l + 1) * N * D};
    return v;
}

void model_forward(Model *m, const int32_t *tokens, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelActs *a = &m->acts;
    ASSERT(a->x && B * T <= a->B * a->T && T <= a->T && T <= c->max_seq_len);
    const int N = B * T, D = c->dim, F = c->hidden_dim, H = c->n_heads, KV = c->n_kv_heads;
    const int hd = D / H, HD = H * hd, QKV = HD + 2 * KV * hd;
    const ModelWeights *w = &m->w;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) a->pos[b * T + t] = t;

    embedding_forward(a->x, tokens, w->embed, N, D);
    for (int l = 0; l < c->n_layers; l++) {
        LayerView v = layer_view(a, c, l, B, T);
        float *x = v.x, *xn1 = v.xn1, *qkv = v.qkv, *ao = v.ao, *xmid = v.xmid, *xn2 = v.xn2, *gu = v.gu;
        float *sw = v.sw, *att = v.att, *xnext = v.xnext;
        rmsnorm_forward(xn1, v.rstd1, x, w->attn_norm + (size_t)l * D, N, D, c->norm_eps);
        linear_forward(qkv, xn1, w->wqkv + (size_t)l * QKV * D, N, D, QKV);
        rope_forward(qkv, a->pos, m->rope_cos, m->rope_sin, N, QKV, H, hd);
        rope_forward(qkv + HD, a->pos, m->rope_cos, m->rope_sin, N, QKV, KV, hd);
        attention_forward(ao, att, qkv, qkv + HD, qkv + HD + KV * hd, B, T, H, KV, hd, QKV, QKV, HD);
        linear_forward(xmid, ao, w->wo + (size_t)l * D * HD, N, HD, D);
        residual_forward(xmid, xmid, x, (size_t)N * D);
        rmsnorm_forward(xn2, v.rstd2, xmid, w->ffn_norm + (size_t)l * D, N, D, c->norm_eps);
        linear_forward(gu, xn2, w->w13 + (size_t)l * 2 * F * D, N, D, 2 * F);
        swiglu_forward(sw, gu, gu + F, N, F, 2 * F);
        linear_forward(xnext, sw, w->w2 + (size_t)l * D * F, N, F, D);
        residual_forward(xnext, xnext, xmid, (size_t)N * D);
    }
    rmsnorm_forward(a->xnf, a->rstdf, a->x + (size_t)c->n_layers * N * D, w->final_norm, N, D, c->norm_eps);
    if (c->head == HEAD_LM)
        linear_forward(a->logits, a->xnf, w->lm_head, N, D, c->vocab_size);
    else
        scalar_head_forward(a->values, a->xnf, w->score, N, D);
}

float model_lm_loss(Model *m, const int32_t *targets, const float *mask, int B, int T, float scale) {
    ModelActs *a = &m->acts;
    const int N = B * T, V = m->cfg.vocab_size;
    ASSERT(m->cfg.head == HEAD_LM && a->dlogits);
    double msum = 0.0, lsum = 0.0;
    for (int n = 0; n < N; n++) msum += mask[n];
    if (msum <= 0.0) {
        memset(a->dlogits, 0, sizeof(float) * (size_t)N * V);
        return 0.0f;
    }
    for (int n = 0; n < N; n++) a->dlosses[n] = (float)(scale * mask[n] / msum);
    xent_forward_backward(a->losses, a->dlogits, a->logits, targets, a->dlosses, N, V);
    for (int n = 0; n < N; n++) lsum += (double)mask[n] * a->losses[n];
    return (float)(lsum / msum);
}

void model_token_logprobs(Model *m, const int32_t *targets, float *out, int B, int T) {
    const int N = B * T;
    xent_forward(out, m->acts.logits, targets, N, m->cfg.vocab_size);
    for (int n = 0; n < N; n++) out[n] = -out[n];
}

void model_backward(Model *m, const int32_t *tokens, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelActs *a = &m->acts;
    const int N = B * T, D = c->dim, F = c->hidden_dim, H = c->n_heads, KV = c->n_kv_heads;
    const int hd = D / H, HD = H * hd, QKV = HD + 2 * KV * hd;
    const ModelWeights *w = &m->w, *g = &m->g;
    const size_t ND = (size_t)N * D;
    ASSERT(m->grads && a->dres); /* model_alloc_train, not model_alloc_infer */

    /* head -> dxn (gradient wrt the final normed state) */
    memset(a->dxn, 0, sizeof(float) * ND);
    if (c->head == HEAD_LM)
        linear_backward(a->dxn, g->lm_head, a->dlogits, a->xnf, w->lm_head, N, D, c->vocab_size);
    else
        scalar_head_backward(a->dxn, g->score, a->dvalues, a->xnf, w->score, N, D);
    memset(a->dres, 0, sizeof(float) * ND);
    rmsnorm_backward(a->dres, g->final_norm, a->dxn, a->x + (size_t)c->n_layers * ND, w->final_norm, a->rstdf, N, D);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        LayerView v = layer_view(a, c, l, B, T);
        float *x = v.x, *xn1 = v.xn1, *qkv = v.qkv, *ao = v.ao, *xmid = v.xmid, *xn2 = v.xn2, *gu = v.gu;
        float *sw = v.sw, *att = v.att;
        /* feed-forward branch: dres is d/d x_{l+1}, which is also d/d xmid through the residual */
        memset(a->dsw, 0, sizeof(float) * N * F);
        linear_backward(a->dsw, g->w2 + (size_t)l * D * F, a->dres, sw, w->w2 + (size_t)l * D * F, N, F, D);
        memset(a->dgu, 0, sizeof(float) * N * 2 * F);
        swiglu_backward(a->dgu, a->dgu + F, a->dsw, gu, gu + F, N, F, 2 * F);
        memset(a->dxn, 0, sizeof(float) * ND);
        linear_backward(a->dxn, g->w13 + (size_t)l * 2 * F * D, a->dgu, xn2, w->w13 + (size_t)l * 2 * F * D, N, D,
                        2 * F);
        rmsnorm_backward(a->dres, g->ffn_norm + (size_t)l * D, a->dxn, xmid, w->ffn_norm + (size_t)l * D,
                         v.rstd2, N, D);
        /* attention branch: dres is now d/d xmid, which is also d/d x through the residual */
        memset(a->dao, 0, sizeof(float) * N * HD);
        linear_backward(a->dao, g->wo + (size_t)l * D * HD, a->dres, ao, w->wo + (size_t)l * D * HD, N, HD, D);
        memset(a->dqkv, 0, sizeof(float) * N * QKV);
        attention_backward(a->dqkv, a->dqkv + HD, a->dqkv + HD + KV * hd, a->att_scratch, a->dao, att, qkv,
                           qkv + HD, qkv + HD + KV * hd, B, T, H, KV, hd, QKV, QKV, HD);
        rope_backward(a->dqkv, a->pos, m->rope_cos, m->rope_sin, N, QKV, H, hd);
        rope_backward(a->dqkv + HD, a->pos, m->rope_cos, m->rope_sin, N, QKV, KV, hd);
        memset(a->dxn, 0, sizeof(float) * ND);
        linear_backward(a->dxn, g->wqkv + (size_t)l * QKV * D, a->dqkv, xn1, w->wqkv + (size_t)l * QKV * D, N, D,
                        QKV);
        rmsnorm_backward(a->dres, g->attn_norm + (size_t)l * D, a->dxn, x, w->attn_norm + (size_t)l * D,
                         v.rstd1, N, D);
    }
    embedding_backward(g->embed, a->dres, tokens, N, D);
}

/* ------------------------------------------------------------------------------------------------ */
/* decoding with a KV cache */

/* Above this many bytes of matmul weights a decoding step reads them from main memory, not from
 * cache (this machine's L3 is 32 MB, shared with the KV cache and everything else), and the
 * decoder reads each weight block through before BLAS does (linear_forward_cold, see ops.c).
 * Below it the weights stay cached between steps and that pass would only cost time. */
#define DECODE_COLD_BYTES ((size_t)16 << 20)

void decoder_create(Decoder *d, const Model *m, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ASSERT(T <= c->max_seq_len);
    size_t D = c->dim, F = c->hidden_dim, hd = D / c->n_heads, KVd = c->n_kv_heads * hd;
    size_t HD = c->n_heads * hd, QKV = HD + 2 * KVd, V = c->vocab_size;
    memset(d, 0, sizeof *d);
    d->B = B;
    d->T = T;
    size_t matmul = (size_t)c->n_layers * (QKV * D + D * HD + 3 * F * D) + (c->head == HEAD_LM ? V * D : D);
    d->cold = matmul * sizeof(float) > DECODE_COLD_BYTES;
    d->k = FALLOC((size_t)c->n_layers * B * T * KVd);
    d->v = FALLOC((size_t)c->n_layers * B * T * KVd);
    d->x = FALLOC(B * D);
    d->xn = FALLOC(B * D);
    d->qkv = FALLOC(B * QKV);
    d->ao = FALLOC(B * HD);
    d->gu = FALLOC(B * 2 * F);
    d->sw = FALLOC(B * F);
    d->scores = FALLOC((size_t)B * c->n_heads * T);
    d->logits = FALLOC(c->head == HEAD_LM ? (size_t)B * c->vocab_size : (size_t)B);
    d->rstd = FALLOC(B);
}

void decoder_free(Decoder *d) {
    float *bufs[] = {d->k, d->v, d->x, d->xn, d->qkv, d->ao, d->gu, d->sw, d->scores, d->logits, d->rstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(d, 0, sizeof *d);
}

const float *model_decode_step(Model *m, Decoder *d, const int32_t *tokens, const int32_t *pos, int B) {
    const ModelConfig *c = &m->cfg;
    const ModelWeights *w = &m->w;
    const int D = c->dim, F = c->hidden_dim, H = c->n_heads, KV = c->n_kv_heads, T = d->T;
    const int hd = D / H, HD = H * hd, KVd = KV * hd, QKV = HD + 2 * KVd, group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    const int cold = d->cold;
    void (*linear)(float *, const float *, const float *, int, int, int) = cold ? linear_forward_cold : linear_forward;
    ASSERT(B <= d->B);
    size_t att_work = 0; /* cached keys read per layer: below a few thousand, one thread is faster */
    for (int b = 0; b < B; b++) {
        ASSERT(pos[b] >= 0 && pos[b] < T);
        att_work += (size_t)(pos[b] + 1) * H * hd;
    }

    embedding_forward(d->x, tokens, w->embed, B, D);
    for (int l = 0; l < c->n_layers; l++) {
        /* this layer's cache: (B, KV, T, hd), so one head's keys (and values) are one contiguous run */
        float *kc = d->k + (size_t)l * d->B * T * KVd, *vc = d->v + (size_t)l * d->B * T * KVd;
        rmsnorm_forward(d->xn, d->rstd, d->x, w->attn_norm + (size_t)l * D, B, D, c->norm_eps);
        linear(d->qkv, d->xn, w->wqkv + (size_t)l * QKV * D, B, D, QKV);
        rope_forward(d->qkv, pos, m->rope_cos, m->rope_sin, B, QKV, H, hd);
        rope_forward(d->qkv + HD, pos, m->rope_cos, m->rope_sin, B, QKV, KV, hd);
        for (int b = 0; b < B; b++)
            for (int g = 0; g < KV; g++) {
                size_t at = (((size_t)b * KV + g) * T + pos[b]) * hd;
                memcpy(kc + at, d->qkv + (size_t)b * QKV + HD + (size_t)g * hd, sizeof(float) * hd);
                memcpy(vc + at, d->qkv + (size_t)b * QKV + HD + KVd + (size_t)g * hd, sizeof(float) * hd);
            }
#pragma omp parallel for schedule(static) if (att_work > 8192)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H, g = h / group, n = pos[b] + 1;
            const float *q = d->qkv + (size_t)b * QKV + (size_t)h * hd;
            const float *kb = kc + ((size_t)b * KV + g) * T * hd, *vb = vc + ((size_t)b * KV + g) * T * hd;
            float *s = d->scores + (size_t)bh * T;
            if (cold) {
                cache_in(kb, (size_t)n * hd);
                cache_in(vb, (size_t)n * hd);
            }
            /* s (n) = scale * K (n, hd) · q ;  out (hd) = V (n, hd)^T · softmax(s) */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, hd, scale, kb, hd, q, 1, 0.0f, s, 1);
            float mx = s[0];
#pragma omp simd reduction(max : mx)
            for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd
            for (int j = 0; j < n; j++) s[j] = exp_fast(s[j] - mx);
            double sum = 0.0; /* a loop of its own, so that both vectorise */
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < n; j++) sum += s[j];
            float inv = (float)(1.0 / sum);
#pragma omp simd
            for (int j = 0; j < n; j++) s[j] *= inv;
            cblas_sgemv(CblasRowMajor, CblasTrans, n, hd, 1.0f, vb, hd, s, 1, 0.0f, d->ao + (size_t)b * HD + h * hd, 1);
        }
        linear(d->xn, d->ao, w->wo + (size_t)l * D * HD, B, HD, D);
        residual_forward(d->x, d->x, d->xn, (size_t)B * D);
        rmsnorm_forward(d->xn, d->rstd, d->x, w->ffn_norm + (size_t)l * D, B, D, c->norm_eps);
        linear(d->gu, d->xn, w->w13 + (size_t)l * 2 * F * D, B, D, 2 * F);
        swiglu_forward(d->sw, d->gu, d->gu + F, B, F, 2 * F);
        linear(d->xn, d->sw, w->w2 + (size_t)l * D * F, B, F, D);
        residual_forward(d->x, d->x, d->xn, (size_t)B * D);
    }
    rmsnorm_forward(d->xn, d->rstd, d->x, w->final_norm, B, D, c->norm_eps);
    if (c->head == HEAD_LM)
        linear(d->logits, d->xn, w->lm_head, B, D, c->vocab_size);
    else
        scalar_head_forward(d->logits, d->xn, w->score, B, D);
    return d->logits;
}
