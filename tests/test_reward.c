/*
 * reward: scores read at the last token — batched scoring equals one-at-a-time scoring and a direct
 * model_forward, long sequences keep BOS and their end; reward_encode is the chat encoding of the
 * prompt plus the response as an assistant turn; the ranking loss and its derivatives with each
 * margin table against values worked out independently (Python's math module, shown beside them);
 * the whole pair step against finite differences; the Llama 2 gating rule on a hand-built table;
 * and every bad input (checkpoint without a scalar head, bad batch, empty sequence, id outside the
 * vocabulary, malformed dialogue, unknown margin table).
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "ckpt.h"
#include "gradcheck.h"
#include "reward.h"
#include "testutil.h"
#include "util.h"

static char tmpdir[64];
static char path_buf[256];

static ModelConfig small_cfg(HeadKind head) {
    return (ModelConfig){.dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                         .vocab_size = 272, .max_seq_len = 24, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                         .tie_embeddings = 0, .head = head};
}

static void train_tokenizer(Tokenizer *t, int32_t vocab) {
    static const char corpus[] = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat "
                                 "and the cat ran to the log, then the dog ran to the mat.";
    ck_assert_msg(tokenizer_train(t, corpus, sizeof corpus - 1, vocab, NULL) == ERR_OK, "%s", err_msg());
}

/* A random model of the given head saved with a tokenizer to tmpdir/name; returns the path. */
static const char *save_model(const char *name, HeadKind head, float std) {
    static char path[4][256];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    Model m;
    ModelConfig cfg = small_cfg(head);
    ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
    model_init_random(&m, 11, std);
    Tokenizer tok;
    train_tokenizer(&tok, cfg.vocab_size);
    CkptExtras x = {.tokenizer = &tok};
    ck_assert_msg(ckpt_save(p, &m, &x) == ERR_OK, "%s", err_msg());
    tokenizer_free(&tok);
    model_free(&m);
    return p;
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_reward.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* n random sequences with lengths lens[] (BOS first, EOS last, ids in [3, V)). */
static int32_t **random_seqs(const int *lens, int n, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    int32_t **ids = xmalloc(sizeof *ids * (size_t)n);
    for (int i = 0; i < n; i++) {
        ids[i] = xmalloc(sizeof(int32_t) * (size_t)lens[i]);
        for (int t = 0; t < lens[i]; t++) ids[i][t] = 3 + (int32_t)rng_below(&r, (uint32_t)(V - 3));
        ids[i][0] = TOKENIZER_BOS;
        if (lens[i] > 1) ids[i][lens[i] - 1] = TOKENIZER_EOS;
    }
    return ids;
}

/* The value at the last position of one sequence through a plain model_forward with B = 1. */
static float direct_score(Model *m, const int32_t *ids, int len) {
    model_alloc_train(m, 1, len);
    model_forward(m, ids, 1, len);
    return m->acts.values[len - 1];
}

/* ---- scoring -------------------------------------------------------------------------------------- */

START_TEST(test_batched_equals_single_and_direct) {
    const char *dir = save_model("rm", HEAD_SCALAR, 0.3f);
    enum { N = 9 };
    const int lens[N] = {5, 24, 1, 13, 40, 7, 24, 2, 19}; /* 40 > max_seq_len 24: cut */
    int32_t **ids = random_seqs(lens, N, 272, 3);
    RewardModel big, one;
    ck_assert_msg(reward_load(&big, dir, 4) == ERR_OK, "%s", err_msg());
    ck_assert_msg(reward_load(&one, dir, 1) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(big.max_len, 24);
    ck_assert_int_eq(big.map.mapped, 1); /* frozen: the parameters are the file's mapping */
    float sb[N], s1[N];
    ck_assert_int_eq(reward_score_tokens(&big, (const int32_t *const *)ids, lens, N, sb), ERR_OK);
    for (int i = 0; i < N; i++) /* one call per sequence, too */
        ck_assert_int_eq(reward_score_tokens(&one, (const int32_t *const *)&ids[i], &lens[i], 1, &s1[i]), ERR_OK);

    /* the direct reading, on a private writable copy of the same checkpoint */
    Model m;
    ck_assert_int_eq(ckpt_load_model(&m, dir, NULL), ERR_OK);
    for (int i = 0; i < N; i++) {
        int32_t fitted[24];
        int len = lens[i];
        const int32_t *seq = ids[i];
        if (len > 24) { /* BOS, then the last 23 tokens */
            fitted[0] = ids[i][0];
            memcpy(fitted + 1, ids[i] + len - 23, sizeof(int32_t) * 23);
            seq = fitted;
            len = 24;
        }
        float d = direct_score(&m, seq, len);
        ck_assert_msg(fabsf(sb[i] - d) <= 1e-5f * (1 + fabsf(d)), "seq %d: batched %.8g vs direct %.8g", i, sb[i], d);
        ck_assert_msg(fabsf(s1[i] - d) <= 1e-5f * (1 + fabsf(d)), "seq %d: single %.8g vs direct %.8g", i, s1[i], d);
        ck_assert(fabsf(d) > 1e-4f); /* a random head gives non-trivial scores */
    }
    /* the scores differ between sequences: the right position was read */
    ck_assert(fabsf(sb[0] - sb[3]) > 1e-4f && fabsf(sb[1] - sb[6]) > 1e-4f);
    model_free(&m);
    reward_free(&big);
    reward_free(&one);
    for (int i = 0; i < N; i++) free(ids[i]);
    free(ids);
}
END_TEST

/* A reward model trained on shorter sequences than its context (rm_train's train.seq_len) records
 * that length (config.json's rlhf_score_len) and is read that way: BOS and the last score_len - 1. */
START_TEST(test_score_len) {
    snprintf(path_buf, sizeof path_buf, "%s/short", tmpdir);
    Model m;
    ModelConfig cfg = small_cfg(HEAD_SCALAR);
    cfg.score_len = 16;
    ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
    model_init_random(&m, 12, 0.3f);
    Tokenizer tok;
    train_tokenizer(&tok, cfg.vocab_size);
    CkptExtras x = {.tokenizer = &tok};
    ck_assert_msg(ckpt_save(path_buf, &m, &x) == ERR_OK, "%s", err_msg());
    tokenizer_free(&tok);
    char cj[300];
    snprintf(cj, sizeof cj, "%s/config.json", path_buf);
    json_t *j = json_load_file(cj, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "rlhf_score_len")), 16);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "max_position_embeddings")), 24);

    RewardModel rm;
    ck_assert_msg(reward_load(&rm, path_buf, 3) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(rm.max_len, 16);
    ck_assert_int_eq(rm.model.cfg.max_seq_len, 24); /* the context stays: PPO's value model reads it all */
    enum { N = 3 };
    const int lens[N] = {20, 10, 16};
    int32_t **ids = random_seqs(lens, N, 272, 5);
    float s[N];
    ck_assert_int_eq(reward_score_tokens(&rm, (const int32_t *const *)ids, lens, N, s), ERR_OK);
    int32_t fitted[16] = {ids[0][0]}; /* BOS, then the last 15 of 20 */
    memcpy(fitted + 1, ids[0] + 5, sizeof(int32_t) * 15);
    float d0 = direct_score(&m, fitted, 16), d1 = direct_score(&m, ids[1], 10), d2 = direct_score(&m, ids[2], 16),
          uncut = direct_score(&m, ids[0], 20);
    ck_assert_msg(fabsf(s[0] - d0) <= 1e-5f * (1 + fabsf(d0)), "cut: %.8g vs %.8g", s[0], d0);
    ck_assert_msg(fabsf(s[1] - d1) <= 1e-5f * (1 + fabsf(d1)), "short: %.8g vs %.8g", s[1], d1);
    ck_assert_msg(fabsf(s[2] - d2) <= 1e-5f * (1 + fabsf(d2)), "exact fit: %.8g vs %.8g", s[2], d2);
    ck_assert(fabsf(s[0] - uncut) > 1e-5f); /* the whole 20 would have read differently */
    reward_free(&rm);
    model_free(&m);
    for (int i = 0; i < N; i++) free(ids[i]);
    free(ids);

    /* bad values: 1 (no room for BOS and EOS), above the context, on a language model */
    json_object_set_new(j, "rlhf_score_len", json_integer(1));
    ck_assert_int_eq(json_dump_file(j, cj, 0), 0);
    ck_assert_int_eq(reward_load(&rm, path_buf, 3), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "rlhf_score_len") != NULL, "%s", err_msg());
    json_object_set_new(j, "rlhf_score_len", json_integer(25));
    ck_assert_int_eq(json_dump_file(j, cj, 0), 0);
    ck_assert_int_eq(reward_load(&rm, path_buf, 3), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "rlhf_score_len") != NULL, "%s", err_msg());
    json_decref(j);
    ModelConfig lm = small_cfg(HEAD_LM);
    lm.score_len = 16;
    ck_assert_int_eq(model_config_check(&lm), ERR_INPUT);
}
END_TEST

START_TEST(test_fill_row) {
    int32_t ids[6] = {1, 10, 11, 12, 13, 2}, row[8];
    ck_assert_int_eq(reward_fit(6, 8), 6);
    ck_assert_int_eq(reward_fit(9, 8), 8);
    ck_assert_int_eq(reward_fill_row(row, 8, ids, 6, 8), 6);
    const int32_t want1[8] = {1, 10, 11, 12, 13, 2, TOKENIZER_EOS, TOKENIZER_EOS};
    ck_assert(memcmp(row, want1, sizeof want1) == 0);
    ck_assert_int_eq(reward_fill_row(row, 4, ids, 6, 4), 4); /* BOS then the last three */
    const int32_t want2[4] = {1, 12, 13, 2};
    ck_assert(memcmp(row, want2, sizeof want2) == 0);
}
END_TEST

START_TEST(test_encode_and_text) {
    const char *dir = save_model("rm", HEAD_SCALAR, 0.3f);
    RewardModel rm;
    ck_assert_int_eq(reward_load(&rm, dir, 2), ERR_OK);
    json_t *d1 = json_loads("[{\"role\":\"user\",\"content\":\"the cat\"}]", 0, NULL);
    json_t *d2 = json_loads("[{\"role\":\"user\",\"content\":\"a dog\"},{\"role\":\"assistant\",\"content\":\"sat\"},"
                            "{\"role\":\"user\",\"content\":\"ran\"}]", 0, NULL);
    /* reward_encode == chat_encode of the dialogue with the answer appended */
    TokenList got = {0};
    ck_assert_int_eq(reward_encode(&rm.tok, d1, "on the mat", "the dog sat", &got), ERR_OK);
    json_t *full = json_loads("[{\"role\":\"user\",\"content\":\"the cat\"},{\"role\":\"assistant\",\"content\":\"the dog sat\"}]",
                              0, NULL);
    ChatTokens ct = {0};
    ck_assert_int_eq(chat_encode(&rm.tok, full, "on the mat", (ChatLoss){.kind = CHAT_LOSS_ALL}, &ct), ERR_OK);
    ck_assert_uint_eq(got.n, ct.n);
    ck_assert(memcmp(got.ids, ct.ids, sizeof(int32_t) * ct.n) == 0);
    ck_assert_int_eq(got.ids[0], TOKENIZER_BOS);
    ck_assert_int_eq(got.ids[got.n - 1], TOKENIZER_EOS);
    /* the caller's dialogue is left as it was */
    ck_assert_uint_eq(json_array_size(d1), 1);

    /* reward_score_text == reward_score_tokens of the encodings */
    const json_t *ds[3] = {d1, d2, d1};
    const char *sys[3] = {"on the mat", NULL, ""};
    const char *resp[3] = {"the dog sat", "a cat ran to the log", "then"};
    float st[3], sk[3];
    ck_assert_int_eq(reward_score_text(&rm, ds, sys, resp, 3, st), ERR_OK);
    TokenList l[3] = {{0}};
    const int32_t *ids[3];
    int lens[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(reward_encode(&rm.tok, ds[i], sys[i], resp[i], &l[i]), ERR_OK);
        ids[i] = l[i].ids;
        lens[i] = (int)l[i].n;
    }
    ck_assert_int_eq(reward_score_tokens(&rm, ids, lens, 3, sk), ERR_OK);
    for (int i = 0; i < 3; i++) ck_assert_float_eq(st[i], sk[i]);

    /* malformed dialogues */
    TokenList bad = {0};
    ck_assert_int_eq(reward_encode(&rm.tok, full, NULL, "x", &bad), ERR_INPUT); /* ends with the assistant */
    ck_assert_msg(strstr(err_msg(), "user turn"), "%s", err_msg());
    json_t *notarr = json_string("hi");
    ck_assert_int_eq(reward_encode(&rm.tok, notarr, NULL, "x", &bad), ERR_INPUT);
    json_t *badrole = json_loads("[{\"role\":\"robot\",\"content\":\"x\"},{\"role\":\"user\",\"content\":\"y\"}]", 0, NULL);
    ck_assert_int_eq(reward_encode(&rm.tok, badrole, NULL, "x", &bad), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "dialogue[0]"), "%s", err_msg());
    ck_assert_uint_eq(bad.n, 0);
    const json_t *dbad[2] = {d1, notarr};
    ck_assert_int_eq(reward_score_text(&rm, dbad, NULL, resp, 2, st), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "item 1"), "%s", err_msg());

    for (int i = 0; i < 3; i++) token_list_free(&l[i]);
    token_list_free(&got);
    chat_tokens_free(&ct);
    json_decref(d1);
    json_decref(d2);
    json_decref(full);
    json_decref(notarr);
    json_decref(badrole);
    reward_free(&rm);
}
END_TEST

START_TEST(test_bad_inputs) {
    RewardModel rm;
    const char *lm = save_model("lm", HEAD_LM, 0.02f);
    ck_assert_int_eq(reward_load(&rm, lm, 4), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "not a reward model") && strstr(err_msg(), lm), "%s", err_msg());
    ck_assert_int_ne(reward_load(&rm, "/nonexistent/rm", 4), ERR_OK);
    const char *dir = save_model("rm", HEAD_SCALAR, 0.3f);
    ck_assert_int_eq(reward_load(&rm, dir, 0), ERR_INPUT);
    char tokpath[300];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.bin", dir);
    ck_assert_int_eq(reward_load(&rm, dir, 2), ERR_OK);
    int32_t ok[3] = {1, 5, 2}, oob[3] = {1, 272, 2}, neg[2] = {1, -1};
    const int32_t *seqs[2] = {ok, oob};
    int lens[2] = {3, 3};
    float s[2];
    ck_assert_int_eq(reward_score_tokens(&rm, seqs, lens, 2, s), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "sequence 1, token 1: id 272"), "%s", err_msg());
    seqs[1] = neg;
    lens[1] = 2;
    ck_assert_int_eq(reward_score_tokens(&rm, seqs, lens, 2, s), ERR_INPUT);
    lens[1] = 0;
    ck_assert_int_eq(reward_score_tokens(&rm, seqs, lens, 2, s), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "sequence 1 is empty"), "%s", err_msg());
    ck_assert_int_eq(reward_score_tokens(&rm, seqs, lens, 0, s), ERR_OK);
    reward_free(&rm);
    /* a checkpoint without its tokenizer */
    ck_assert_int_eq(unlink(tokpath), 0);
    ck_assert_int_ne(reward_load(&rm, dir, 2), ERR_OK);
    ck_assert_msg(strstr(err_msg(), "tokenizer"), "%s", err_msg());
}
END_TEST

/* ---- the ranking loss ------------------------------------------------------------------------------ */

START_TEST(test_margin_tables) {
    float t[4];
    ck_assert_int_eq(reward_margin_table("none", NULL, 0, t), ERR_OK);
    for (int r = 0; r < 4; r++) ck_assert_float_eq(t[r], 0.0f);
    ck_assert_int_eq(reward_margin_table("small", NULL, 0, t), ERR_OK);
    ck_assert_float_eq(t[0], 0.0f);
    ck_assert_float_eq_tol(t[1], 1.0f / 3, 1e-7f);
    ck_assert_float_eq_tol(t[2], 2.0f / 3, 1e-7f);
    ck_assert_float_eq(t[3], 1.0f);
    ck_assert_int_eq(reward_margin_table("large", NULL, 0, t), ERR_OK);
    for (int r = 0; r < 4; r++) ck_assert_float_eq(t[r], (float)r);
    const double c[4] = {0, 0.25, 0.5, 4};
    ck_assert_int_eq(reward_margin_table("custom", c, 4, t), ERR_OK);
    ck_assert_float_eq(t[1], 0.25f);
    ck_assert_float_eq(t[3], 4.0f);
    ck_assert_int_eq(reward_margin_table("custom", c, 3, t), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "loss.margin_custom"), "%s", err_msg());
    const double nan4[4] = {0, NAN, 1, 2};
    ck_assert_int_eq(reward_margin_table("custom", nan4, 4, t), ERR_INPUT);
    ck_assert_int_eq(reward_margin_table("huge", NULL, 0, t), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "'huge'"), "%s", err_msg());
}
END_TEST

/* Expected values from Python: L(d) = math.log1p(math.exp(-d)), s(x) = 1 / (1 + math.exp(-x)). */
START_TEST(test_rank_loss_values) {
    float t[4];
    float dc, dr;
    /* no margin, r_c - r_r = 1: L(1) = 0.31326168751822286, dL/dr_c = -s(-1) = -0.2689414213699951 */
    ck_assert_int_eq(reward_margin_table("none", NULL, 0, t), ERR_OK);
    ck_assert_double_eq_tol(reward_rank_loss(1.0f, 0.0f, t[3], &dc, &dr), 0.31326168751822286, 1e-12);
    ck_assert_float_eq_tol(dc, -0.2689414213699951f, 1e-7f);
    ck_assert_float_eq_tol(dr, 0.2689414213699951f, 1e-7f);
    /* small margin, rating 2 (m = 2/3), r_c - r_r = 1: L(1/3) = 0.5403055746894084, s(-1/3) = 0.4174297935376853 */
    ck_assert_int_eq(reward_margin_table("small", NULL, 0, t), ERR_OK);
    ck_assert_double_eq_tol(reward_rank_loss(1.0f, 0.0f, t[2], &dc, &dr), 0.5403055746894084, 1e-7);
    ck_assert_float_eq_tol(dc, -0.4174297935376853f, 1e-6f);
    ck_assert_float_eq_tol(dr, 0.4174297935376853f, 1e-6f);
    /* small margin, rating 3 (m = 1), r_c - r_r = 1: log 2 and -+1/2 exactly */
    ck_assert_double_eq_tol(reward_rank_loss(0.75f, -0.25f, t[3], &dc, &dr), 0.6931471805599453, 1e-12);
    ck_assert_float_eq(dc, -0.5f);
    ck_assert_float_eq(dr, 0.5f);
    /* large margin, rating 2 (m = 2), r_c - r_r = 1: L(-1) = 1.3132616875182228, s(1) = 0.7310585786300049 */
    ck_assert_int_eq(reward_margin_table("large", NULL, 0, t), ERR_OK);
    ck_assert_double_eq_tol(reward_rank_loss(1.0f, 0.0f, t[2], &dc, &dr), 1.3132616875182228, 1e-12);
    ck_assert_float_eq_tol(dc, -0.7310585786300049f, 1e-7f);
    /* large margin, rating 3 (m = 3), r_c = 0.5, r_r = -0.25: L(-2.25) = 2.350206558916747, s(2.25) = 0.9046505351008906 */
    ck_assert_double_eq_tol(reward_rank_loss(0.5f, -0.25f, t[3], &dc, &dr), 2.350206558916747, 1e-7);
    ck_assert_float_eq_tol(dr, 0.9046505351008906f, 1e-6f);
    /* large margin, rating 0 (m = 0): the same as no margin */
    ck_assert_double_eq_tol(reward_rank_loss(1.0f, 0.0f, t[0], NULL, NULL), 0.31326168751822286, 1e-12);
    /* far tails stay finite: L(100) ~ 3.7e-44, L(-100) = 100 */
    ck_assert_double_le(reward_rank_loss(60.0f, -40.0f, 0.0f, &dc, &dr), 1e-40);
    ck_assert(dc <= 0.0f && dc > -1e-40f && isfinite(dc));
    ck_assert_double_eq_tol(reward_rank_loss(-60.0f, 40.0f, 0.0f, &dc, &dr), 100.0, 1e-9);
    ck_assert_float_eq(dc, -1.0f);
    ck_assert_float_eq(dr, 1.0f);
    /* the derivative against a central difference of the loss itself, for a margin */
    double h = 1e-3, num = (reward_rank_loss(0.3f + (float)h, 0.1f, 0.7f, NULL, NULL) -
                            reward_rank_loss(0.3f - (float)h, 0.1f, 0.7f, NULL, NULL)) / (2 * h);
    reward_rank_loss(0.3f, 0.1f, 0.7f, &dc, &dr);
    ck_assert_double_eq_tol(dc, num, 1e-4);
}
END_TEST

/* ---- the pair step against finite differences ------------------------------------------------------ */

typedef struct {
    Model *m;
    const int32_t *tokens;
    const int *last;
    const float *margins;
    int B, T;
    float scale;
} StepCtx;

/* scale * sum of the pair losses, from a plain forward: independent of reward_pairs_step's backward. */
static double step_loss(void *p) {
    StepCtx *c = p;
    model_forward(c->m, c->tokens, 2 * c->B, c->T);
    double s = 0;
    for (int b = 0; b < c->B; b++)
        s += reward_rank_loss(c->m->acts.values[b * c->T + c->last[b]], c->m->acts.values[(c->B + b) * c->T + c->last[c->B + b]],
                              c->margins[b], NULL, NULL);
    return c->scale * s;
}

START_TEST(test_pairs_step_gradcheck) {
    ModelConfig cfg = small_cfg(HEAD_SCALAR);
    cfg.dim = 16;
    cfg.hidden_dim = 24;
    cfg.n_heads = 2;
    cfg.n_kv_heads = 1;
    cfg.max_seq_len = 8;
    Model m;
    ck_assert_int_eq(model_create(&m, &cfg, NULL), ERR_OK);
    model_init_random(&m, 5, 0.4f);
    enum { B = 3, T = 8 };
    /* pairs of uneven lengths: the padded positions must get no gradient */
    const int lens[2 * B] = {8, 3, 5, 6, 8, 2};
    int32_t **seqs = random_seqs(lens, 2 * B, cfg.vocab_size, 9);
    int32_t tokens[2 * B * T];
    int last[2 * B];
    for (int r = 0; r < 2 * B; r++) last[r] = reward_fill_row(tokens + r * T, T, seqs[r], lens[r], T) - 1;
    const float margins[B] = {0.0f, 1.0f / 3, 3.0f};
    model_alloc_train(&m, 2 * B, T);
    model_zero_grads(&m);
    int correct = -1;
    float ch[B], rj[B];
    double sum = reward_pairs_step(&m, tokens, last, margins, B, T, 0.5f, &correct, ch, rj);
    int want_correct = 0;
    double want_sum = 0;
    for (int b = 0; b < B; b++) {
        want_correct += ch[b] > rj[b];
        want_sum += reward_rank_loss(ch[b], rj[b], margins[b], NULL, NULL);
    }
    ck_assert_int_eq(correct, want_correct);
    ck_assert_double_eq_tol(sum, want_sum, 1e-9);
    StepCtx ctx = {&m, tokens, last, margins, B, T, 0.5f};
    ck_assert_double_eq_tol(step_loss(&ctx), 0.5 * sum, 1e-6);
    float *g = xmalloc(sizeof(float) * m.n_params);
    memcpy(g, m.grads, sizeof(float) * m.n_params);
    /* every coordinate of the scalar head and of the last norm, and a sample of the rest */
    const ModelTensor *score = model_find_tensor(&m, "score.weight"), *fn = model_find_tensor(&m, "model.norm.weight");
    gradcheck("score.weight", step_loss, &ctx, m.params + score->offset, g + score->offset, score->numel, 64, 1e-2f,
              1e-2, 5e-4);
    gradcheck("model.norm.weight", step_loss, &ctx, m.params + fn->offset, g + fn->offset, fn->numel, 64, 1e-2f, 1e-2,
              5e-4);
    gradcheck("params", step_loss, &ctx, m.params, g, m.n_params, 300, 1e-2f, 1e-2, 5e-4);
    free(g);
    for (int r = 0; r < 2 * B; r++) free(seqs[r]);
    free(seqs);
    model_free(&m);
}
END_TEST

/* ---- the combined reward -------------------------------------------------------------------------- */

START_TEST(test_combine_table) {
    /* logit(0.15) = -1.7346010553881064: below it the safety model thinks the answer is likely unsafe */
    static const struct {
        float help, safe;
        int tagged;
        float want;
        int want_safety;
    } rows[] = {
        {2.0f, 3.0f, 0, 2.0f, 0},     /* safe enough, not a safety prompt: helpfulness */
        {2.0f, -2.0f, 0, -2.0f, 1},   /* sigmoid(-2) = 0.119 < 0.15: safety */
        {2.0f, -1.70f, 0, 2.0f, 0},   /* sigmoid(-1.70) = 0.1545: just above the threshold */
        {2.0f, -1.76f, 0, -1.76f, 1}, /* sigmoid(-1.76) = 0.1468: just below */
        {-0.5f, 5.0f, 1, 5.0f, 1},    /* a safety prompt always takes the safety score */
        {-0.5f, -5.0f, 1, -5.0f, 1},
        {4.0f, -60.0f, 0, -60.0f, 1}, /* far tails do not overflow */
        {4.0f, 60.0f, 0, 4.0f, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int used = -1;
        float got = reward_combine(rows[i].help, rows[i].safe, rows[i].tagged, 0.15f, &used);
        ck_assert_msg(got == rows[i].want && used == rows[i].want_safety, "row %zu: got %g (safety %d)", i, got, used);
    }
    /* the threshold is a parameter: with 0.5, r_safe < 0 picks safety */
    ck_assert_float_eq(reward_combine(1.0f, -0.1f, 0, 0.5f, NULL), -0.1f);
    ck_assert_float_eq(reward_combine(1.0f, 0.1f, 0, 0.5f, NULL), 1.0f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("reward");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_batched_equals_single_and_direct);
    tcase_add_test(tc, test_score_len);
    tcase_add_test(tc, test_fill_row);
    tcase_add_test(tc, test_encode_and_text);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_margin_tables);
    tcase_add_test(tc, test_rank_loss_values);
    tcase_add_test(tc, test_pairs_step_gradcheck);
    tcase_add_test(tc, test_combine_table);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
