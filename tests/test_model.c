/*
 * Model tests: the whole model's gradient against finite differences for a sample of every parameter
 * tensor (GQA, tied and untied embeddings, a loss mask, right padding, the scalar head), KV-cache
 * decoding against the full forward, and the parameter table.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "model.h"
#include "testutil.h"
#include "util.h"

enum { TB = 3, TT = 6 };

static ModelConfig tiny_config(int kv, int tied, HeadKind head) {
    ModelConfig c = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = kv,
                     .vocab_size = 11, .max_seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .tie_embeddings = tied, .head = head};
    return c;
}

typedef struct {
    Model *m;
    int32_t tokens[TB * TT], targets[TB * TT], lengths[TB];
    float mask[TB * TT], coef[TB], vtarget[TB * TT];
} Batch;

static void make_batch(Batch *bt, Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    bt->m = m;
    int lengths[TB] = {TT, 4, 5}; /* right padding on rows 1 and 2 */
    for (int b = 0; b < TB; b++) {
        bt->lengths[b] = lengths[b];
        bt->coef[b] = rng_normal(&r);
        for (int t = 0; t < TT; t++) {
            int n = b * TT + t, valid = t < lengths[b];
            bt->tokens[n] = (int32_t)rng_below(&r, m->cfg.vocab_size);
            bt->targets[n] = (int32_t)rng_below(&r, m->cfg.vocab_size);
            /* like SFT: the first two tokens of each row are prompt tokens and carry no loss */
            bt->mask[n] = valid && t >= 2 ? 1.0f : 0.0f;
            bt->vtarget[n] = rng_normal(&r);
        }
    }
}

/* Scalar-head loss: sum_b coef_b v[b, len_b - 1] + 0.5 mean over valid (v - target)^2, and its dvalues. */
static double scalar_loss(Batch *bt, float *dvalues) {
    const float *v = bt->m->acts.values;
    double loss = 0.0;
    int nvalid = 0;
    for (int b = 0; b < TB; b++) nvalid += bt->lengths[b];
    if (dvalues) memset(dvalues, 0, sizeof(float) * TB * TT);
    for (int b = 0; b < TB; b++) {
        int last = b * TT + bt->lengths[b] - 1;
        loss += (double)bt->coef[b] * v[last];
        if (dvalues) dvalues[last] += bt->coef[b];
        for (int t = 0; t < bt->lengths[b]; t++) {
            int n = b * TT + t;
            double e = v[n] - bt->vtarget[n];
            loss += 0.5 * e * e / nvalid;
            if (dvalues) dvalues[n] += (float)(e / nvalid);
        }
    }
    return loss;
}

static double batch_loss(void *p) {
    Batch *bt = p;
    model_forward(bt->m, bt->tokens, TB, TT);
    if (bt->m->cfg.head == HEAD_LM) return model_lm_loss(bt->m, bt->targets, bt->mask, TB, TT, 1.0f);
    return scalar_loss(bt, NULL);
}

static void check_model_grads(ModelConfig cfg, uint64_t seed) {
    Model m;
    ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
    model_init_random(&m, seed, 0.3f);
    Rng r;
    rng_seed(&r, seed + 1);
    for (int i = 0; i < m.n_tensors; i++) /* norm gains away from exactly 1 so their gradients matter */
        if (m.tensors[i].ndim == 1)
            for (size_t j = 0; j < m.tensors[i].numel; j++) m.params[m.tensors[i].offset + j] += 0.2f * rng_normal(&r);
    model_alloc_train(&m, TB, TT);
    Batch bt;
    make_batch(&bt, &m, seed + 2);
    model_zero_grads(&m);
    model_forward(&m, bt.tokens, TB, TT);
    if (cfg.head == HEAD_LM)
        model_lm_loss(&m, bt.targets, bt.mask, TB, TT, 1.0f);
    else
        scalar_loss(&bt, m.acts.dvalues);
    model_backward(&m, bt.tokens, TB, TT);
    /* Bounds: rtol 5e-3, atol 2.5e-4 with eps 2e-3 in float32 through two layers (measured worst error
     * about half of the bound; eps 1e-2 is too coarse for the curvature of a std-0.3 model).
     * 12 coordinates of every tensor. GRADCHECK_VERBOSE=1 prints the worst ratio per tensor. */
    for (int i = 0; i < m.n_tensors; i++) {
        const ModelTensor *t = &m.tensors[i];
        double wr = gradcheck(t->name, batch_loss, &bt, m.params + t->offset, m.grads + t->offset, t->numel, 12, 2e-3f, 5e-3,
                  2.5e-4);
        if (getenv("GRADCHECK_VERBOSE")) fprintf(stderr, "%s: worst %.3f of bound\n", t->name, wr);
    }
    /* padded positions must get no gradient through the loss: their tokens do not matter */
    if (cfg.head == HEAD_LM) {
        double before = batch_loss(&bt);
        bt.tokens[1 * TT + 5] = (bt.tokens[1 * TT + 5] + 1) % cfg.vocab_size;
        ck_assert_double_eq_tol(batch_loss(&bt), before, 1e-6);
    }
    model_free(&m);
}

START_TEST(test_grad_lm_gqa_untied) { check_model_grads(tiny_config(2, 0, HEAD_LM), 11); }
END_TEST
START_TEST(test_grad_lm_mha_tied) { check_model_grads(tiny_config(4, 1, HEAD_LM), 12); }
END_TEST
START_TEST(test_grad_scalar_mqa) { check_model_grads(tiny_config(1, 0, HEAD_SCALAR), 13); }
END_TEST

/* KV-cache decoding reproduces the full forward at every position, with sequences at staggered
 * positions; `cold` forces the path of models too large for the caches (weights read through first). */
static void check_decode(HeadKind head, int cold) {
    ModelConfig cfg = tiny_config(2, 0, head);
    Model m;
    ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
    model_init_random(&m, 21, 0.3f);
    model_alloc_train(&m, TB, TT);
    Batch bt;
    make_batch(&bt, &m, 22);
    model_forward(&m, bt.tokens, TB, TT);
    int out_dim = head == HEAD_LM ? cfg.vocab_size : 1;
    const float *full = head == HEAD_LM ? m.acts.logits : m.acts.values;
    Decoder d;
    decoder_create(&d, &m, TB, TT);
    d.cold = cold;
    /* sequence b starts b steps late, so in one step the batch holds different positions */
    for (int step = 0; step < TT + TB; step++) {
        int32_t tok[TB], pos[TB];
        for (int b = 0; b < TB; b++) {
            int p = step - b;
            p = p < 0 ? 0 : p >= TT ? TT - 1 : p; /* before its start / after its end: recompute a valid row */
            tok[b] = bt.tokens[b * TT + p];
            pos[b] = p;
        }
        const float *out = model_decode_step(&m, &d, tok, pos, TB);
        for (int b = 0; b < TB; b++) {
            if (step - b < 0 || step - b >= TT) continue;
            for (int i = 0; i < out_dim; i++) {
                float want = full[(size_t)(b * TT + pos[b]) * out_dim + i], got = out[b * out_dim + i];
                /* tolerance: 1e-5 absolute + 1e-4 relative (different summation order only) */
                ck_assert_msg(fabsf(want - got) <= 1e-5f + 1e-4f * fabsf(want), "b %d pos %d i %d: %g vs %g", b,
                              pos[b], i, got, want);
            }
        }
    }
    decoder_free(&d);
    model_free(&m);
}
START_TEST(test_decode_matches_forward_lm) { check_decode(HEAD_LM, 0); }
END_TEST
START_TEST(test_decode_matches_forward_scalar) { check_decode(HEAD_SCALAR, 0); }
END_TEST
START_TEST(test_decode_matches_forward_cold) {
    check_decode(HEAD_LM, 1);
    check_decode(HEAD_SCALAR, 1);
}
END_TEST

START_TEST(test_decode_batch1_gemv_path) {
    ModelConfig cfg = tiny_config(2, 1, HEAD_LM);
    Model m;
    ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
    model_init_random(&m, 31, 0.3f);
    model_alloc_train(&m, 1, TT);
    int32_t tokens[TT] = {1, 5, 2, 9, 9, 3};
    model_forward(&m, tokens, 1, TT);
    Decoder d;
    decoder_create(&d, &m, 1, TT);
    for (int t = 0; t < TT; t++) {
        const float *out = model_decode_step(&m, &d, tokens + t, &t, 1);
        for (int i = 0; i < cfg.vocab_size; i++) {
            float want = m.acts.logits[t * cfg.vocab_size + i];
            ck_assert_msg(fabsf(want - out[i]) <= 1e-5f + 1e-4f * fabsf(want), "t %d i %d", t, i);
        }
    }
    decoder_free(&d);
    model_free(&m);
}
END_TEST

START_TEST(test_tensor_table_covers_params_once) {
    const int kvs[] = {1, 2, 4};
    for (int k = 0; k < 3; k++)
        for (int tied = 0; tied < 2; tied++)
            for (int head = 0; head < 2; head++) {
                ModelConfig cfg = tiny_config(kvs[k], tied, head);
                Model m;
                ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
                char *seen = xcalloc(m.n_params, 1);
                for (int i = 0; i < m.n_tensors; i++)
                    for (size_t j = 0; j < m.tensors[i].numel; j++) {
                        ck_assert_uint_lt(m.tensors[i].offset + j, m.n_params);
                        ck_assert_int_eq(seen[m.tensors[i].offset + j]++, 0);
                    }
                for (size_t j = 0; j < m.n_params; j++) ck_assert_int_eq(seen[j], 1);
                free(seen);
                ck_assert_ptr_nonnull(model_find_tensor(&m, "model.layers.1.self_attn.k_proj.weight"));
                ck_assert_int_eq(model_find_tensor(&m, "model.layers.1.self_attn.k_proj.weight")->shape[0], kvs[k] * 4);
                ck_assert_int_eq(model_find_tensor(&m, "lm_head.weight") != NULL, head == HEAD_LM && !tied);
                ck_assert_int_eq(model_find_tensor(&m, "score.weight") != NULL, head == HEAD_SCALAR);
                model_free(&m);
            }
}
END_TEST

START_TEST(test_config_errors_name_the_key) {
    ModelConfig c = tiny_config(3, 0, HEAD_LM); /* 4 heads, 3 kv heads */
    Model m;
    ck_assert_int_eq(model_create(&m, &c, NULL), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "n_kv_heads"));
    c = tiny_config(2, 0, HEAD_LM);
    c.dim = 18; /* not a multiple of 4 heads */
    ck_assert_int_eq(model_config_check(&c), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "dim"));
    c = tiny_config(2, 0, HEAD_LM);
    c.dim = 12; /* head dim 3 is odd */
    ck_assert_int_eq(model_config_check(&c), ERR_INPUT);
    c = tiny_config(2, 0, HEAD_LM);
    c.rope_theta = 0;
    ck_assert_int_eq(model_config_check(&c), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "rope_theta"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_grad_lm_gqa_untied);
    tcase_add_test(tc, test_grad_lm_mha_tied);
    tcase_add_test(tc, test_grad_scalar_mqa);
    tcase_add_test(tc, test_decode_matches_forward_lm);
    tcase_add_test(tc, test_decode_matches_forward_scalar);
    tcase_add_test(tc, test_decode_matches_forward_cold);
    tcase_add_test(tc, test_decode_batch1_gemv_path);
    tcase_add_test(tc, test_tensor_table_covers_params_once);
    tcase_add_test(tc, test_config_errors_name_the_key);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
