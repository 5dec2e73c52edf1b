/*
 * gen: batched KV-cache generation against the full forward pass (every recorded log-probability
 * is log_softmax of the forward's logits at that position; greedy tokens are its argmax), samples
 * independent of batch size, thread count and the other prompts of a call, stop reasons (EOS,
 * max_new, a full context), and every bad input.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "gen.h"
#include "model.h"
#include "testutil.h"
#include "threads.h"
#include "tokenizer.h"
#include "util.h"

enum { V = 16, CTX = 32, NP = 5, K = 3 };

static Model m;
static int32_t prompt_ids[NP][12];
static GenPrompt prompts[NP];

static void setup(void) {
    ModelConfig c = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = V,
                     .max_seq_len = CTX, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .head = HEAD_LM};
    ck_assert(model_create(&m, &c, NULL) == ERR_OK);
    model_init_random(&m, 11, 0.3f);
    model_alloc_train(&m, 1, CTX);
    for (int i = 0; i < NP; i++) {
        int n = 2 + 2 * i; /* prompts of different lengths: 2, 4, ..., 10 */
        prompt_ids[i][0] = TOKENIZER_BOS;
        for (int t = 1; t < n; t++) prompt_ids[i][t] = 3 + (7 * i + 5 * t) % (V - 3);
        prompts[i] = (GenPrompt){prompt_ids[i], n, (uint64_t)(100 + i)};
    }
}

static void teardown(void) { model_free(&m); }

static GenConfig config(float temperature, int max_new, int batch) {
    GenConfig g = {.sampler = {.temperature = temperature, .top_k = 0, .top_p = 1.0f}, .max_new = max_new,
                   .batch = batch, .seed = 42};
    return g;
}

/* Every sample: stop reason consistent, and each token's raw log-probability (and, for greedy, the
 * token itself) is what the full forward over prompt + sample says. */
static void check_against_forward(const GenPrompt *p, const GenSample *s, int max_new, bool greedy) {
    int32_t seq[CTX + 16];
    int n = p->n;
    memcpy(seq, p->ids, (size_t)n * sizeof *seq);
    for (int t = 0; t < s->n; t++) seq[n + t] = s->ids[t];
    int len = n + s->n - 1; /* the last new token is never an input */
    ck_assert(len <= CTX);
    model_forward(&m, seq, 1, len);
    for (int t = 0; t < s->n; t++) {
        const float *lg = m.acts.logits + (size_t)(n - 1 + t) * V;
        double mx = lg[0], z = 0;
        int arg = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > mx) mx = lg[v], arg = v;
        for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
        double want = lg[s->ids[t]] - mx - log(z);
        ck_assert_msg(fabs(s->logp_raw[t] - want) < 2e-4, "token %d: logp_raw %g, forward %g", t, s->logp_raw[t], want);
        if (greedy) ck_assert_int_eq(s->ids[t], arg);
        if (t < s->n - 1) ck_assert_int_ne(s->ids[t], TOKENIZER_EOS);
    }
    if (s->stop == GEN_STOP_EOS) ck_assert_int_eq(s->ids[s->n - 1], TOKENIZER_EOS);
    else ck_assert(s->n == max_new || n + s->n - 1 == CTX);
}

static void expect_same(const GenSample *a, const GenSample *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        ck_assert_int_eq(a[i].n, b[i].n);
        ck_assert_int_eq(a[i].stop, b[i].stop);
        ck_assert_msg(memcmp(a[i].ids, b[i].ids, (size_t)a[i].n * sizeof *a[i].ids) == 0, "sample %lld differs", (long long)i);
        for (int t = 0; t < a[i].n; t++) {
            ck_assert(fabsf(a[i].logp[t] - b[i].logp[t]) < 1e-5f);
            ck_assert(fabsf(a[i].logp_raw[t] - b[i].logp_raw[t]) < 1e-5f);
        }
    }
}

START_TEST(test_sampling_matches_forward) {
    GenSample out[NP * K];
    GenConfig g = config(1.0f, 12, 4);
    GenStats st;
    ck_assert_msg(gen_run(&m, prompts, NP, K, &g, out, &st) == ERR_OK, "%s", err_msg());
    int eos = 0, generated = 0, distinct = 0;
    for (int i = 0; i < NP; i++)
        for (int j = 0; j < K; j++) {
            GenSample *s = &out[i * K + j];
            ck_assert(s->n >= 1 && s->n <= 12);
            check_against_forward(&prompts[i], s, 12, false);
            /* with T = 1 and no truncation the two log-probabilities are the same */
            for (int t = 0; t < s->n; t++) ck_assert(fabsf(s->logp[t] - s->logp_raw[t]) < 1e-4f);
            eos += s->stop == GEN_STOP_EOS;
            generated += s->n;
            if (j > 0) distinct += s->n != s[-1].n || memcmp(s->ids, s[-1].ids, (size_t)s->n * sizeof *s->ids) != 0;
        }
    ck_assert_int_eq(st.generated, generated);
    ck_assert(eos > 0 && eos < NP * K); /* both stop reasons occur with 16 tokens and 12 steps */
    ck_assert(distinct > 0);             /* samples of one prompt differ */
    gen_samples_free(out, NP * K);
}
END_TEST

START_TEST(test_greedy_is_argmax) {
    GenSample out[NP];
    GenConfig g = config(0.0f, 10, 2);
    ck_assert(gen_run(&m, prompts, NP, 1, &g, out, NULL) == ERR_OK);
    for (int i = 0; i < NP; i++) check_against_forward(&prompts[i], &out[i], 10, true);
    gen_samples_free(out, NP);
}
END_TEST

START_TEST(test_independent_of_batch_threads_and_company) {
    GenSample ref[NP * K], other[NP * K];
    GenConfig g = config(0.9f, 10, 1);
    threads_set(1);
    ck_assert(gen_run(&m, prompts, NP, K, &g, ref, NULL) == ERR_OK);
    int batches[] = {3, 8, 15, 64};
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        g.batch = batches[b];
        ck_assert(gen_run(&m, prompts, NP, K, &g, other, NULL) == ERR_OK);
        expect_same(ref, other, NP * K);
        gen_samples_free(other, NP * K);
    }
    threads_set(2);
    g.batch = 4;
    ck_assert(gen_run(&m, prompts, NP, K, &g, other, NULL) == ERR_OK);
    expect_same(ref, other, NP * K);
    gen_samples_free(other, NP * K);
    /* prompt 3 alone gives its samples from the full call */
    ck_assert(gen_run(&m, &prompts[3], 1, K, &g, other, NULL) == ERR_OK);
    expect_same(ref + 3 * K, other, K);
    gen_samples_free(other, K);
    /* another seed, other samples */
    g.seed = 43;
    ck_assert(gen_run(&m, prompts, NP, K, &g, other, NULL) == ERR_OK);
    int differ = 0;
    for (int i = 0; i < NP * K; i++)
        differ += ref[i].n != other[i].n || memcmp(ref[i].ids, other[i].ids, (size_t)ref[i].n * sizeof *ref[i].ids) != 0;
    ck_assert(differ > 0);
    gen_samples_free(other, NP * K);
    gen_samples_free(ref, NP * K);
}
END_TEST

START_TEST(test_full_context_stops) {
    int32_t ids[CTX];
    ids[0] = TOKENIZER_BOS;
    for (int t = 1; t < CTX; t++) ids[t] = 3 + t % (V - 3);
    /* a prompt of CTX-2 tokens has room to feed two new tokens, so at most three are sampled */
    GenPrompt p = {ids, CTX - 2, 0};
    GenSample out[8];
    GenConfig g = config(1.0f, 20, 8);
    ck_assert(gen_run(&m, &p, 1, 8, &g, out, NULL) == ERR_OK);
    int full = 0;
    for (int j = 0; j < 8; j++) {
        ck_assert(out[j].n <= 3);
        check_against_forward(&p, &out[j], 20, false);
        full += out[j].n == 3 && out[j].stop == GEN_STOP_LENGTH;
    }
    ck_assert(full > 0);
    gen_samples_free(out, 8);
    /* a prompt that fills the context still gets its one token */
    p.n = CTX;
    ck_assert(gen_run(&m, &p, 1, 1, &g, out, NULL) == ERR_OK);
    ck_assert_int_eq(out[0].n, 1);
    gen_samples_free(out, 1);
}
END_TEST

START_TEST(test_bad_inputs) {
    GenSample out[4];
    GenConfig g = config(1.0f, 5, 2);
    int32_t bad_ids[] = {TOKENIZER_BOS, V};
    int32_t long_ids[CTX + 1] = {0};
    GenPrompt bad_token = {bad_ids, 2, 7}, empty = {bad_ids, 0, 8}, too_long = {long_ids, CTX + 1, 9};
    ck_assert_int_eq(gen_run(&m, &bad_token, 1, 1, &g, out, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "prompt 7: token 16") != NULL, "%s", err_msg());
    ck_assert_int_eq(gen_run(&m, &empty, 1, 1, &g, out, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "prompt 8: empty") != NULL, "%s", err_msg());
    ck_assert_int_eq(gen_run(&m, &too_long, 1, 1, &g, out, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "prompt 9: 33 tokens") != NULL, "%s", err_msg());
    ck_assert_int_eq(gen_run(&m, prompts, 1, 0, &g, out, NULL), ERR_INPUT);
    GenConfig b = g;
    b.max_new = 0;
    ck_assert_int_eq(gen_run(&m, prompts, 1, 1, &b, out, NULL), ERR_INPUT);
    b = g;
    b.batch = 0;
    ck_assert_int_eq(gen_run(&m, prompts, 1, 1, &b, out, NULL), ERR_INPUT);
    b = g;
    b.sampler.temperature = -1;
    ck_assert_int_eq(gen_run(&m, prompts, 1, 1, &b, out, NULL), ERR_INPUT);
    b = g;
    b.sampler.top_p = 0;
    ck_assert_int_eq(gen_run(&m, prompts, 1, 1, &b, out, NULL), ERR_INPUT);
    /* a reward model cannot generate */
    Model rm;
    ModelConfig c = m.cfg;
    c.head = HEAD_SCALAR;
    ck_assert(model_create(&rm, &c, NULL) == ERR_OK);
    ck_assert_int_eq(gen_run(&rm, prompts, 1, 1, &g, out, NULL), ERR_INPUT);
    model_free(&rm);
    /* nothing to do is not an error */
    ck_assert(gen_run(&m, prompts, 0, 3, &g, out, NULL) == ERR_OK);
}
END_TEST

START_TEST(test_answer_text) {
    static const char corpus[] = "The cat is red. The dog is blue. The cat eats cake.";
    Tokenizer tok;
    ck_assert(tokenizer_train(&tok, corpus, sizeof corpus - 1, 280, NULL) == ERR_OK);
    /* as the template encodes an answer: "{answer} " with the dummy prefix, then EOS */
    TokenList l = {0};
    const char *answer = "The cat is red. \xc3\xa9 ";
    tokenizer_encode(&tok, answer, strlen(answer), false, false, &l);
    token_list_push(&l, TOKENIZER_EOS);
    GenSample s = {.ids = l.ids, .n = (int)l.n, .stop = GEN_STOP_EOS};
    char *text = gen_answer_text(&tok, &s);
    ck_assert_str_eq(text, "The cat is red. \xc3\xa9");
    free(text);
    /* cut in the middle of a character (max_new reached): the stray byte becomes U+FFFD */
    s.n = (int)l.n - 3; /* drops EOS, the space and the last byte of the e-acute */
    text = gen_answer_text(&tok, &s);
    ck_assert_str_eq(text, "The cat is red. \xef\xbf\xbd");
    free(text);
    s.n = 0;
    text = gen_answer_text(&tok, &s);
    ck_assert_str_eq(text, "");
    free(text);
    token_list_free(&l);
    tokenizer_free(&tok);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_sampling_matches_forward);
    tcase_add_test(tc, test_greedy_is_argmax);
    tcase_add_test(tc, test_independent_of_batch_threads_and_company);
    tcase_add_test(tc, test_full_context_stops);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_answer_text);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
