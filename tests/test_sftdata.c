/*
 * sftdata: packing text into overlapping windows, dialogue rows with answer-only loss, truncation
 * and dropping, the held-out split, the epoch order and its cursor (resuming mid-epoch gives the
 * same batches), and every malformed sft_example record.
 */
#include <check.h>
#include <jansson.h>
#include <string.h>

#include "sftdata.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

static Tokenizer tok;

static const char CORPUS[] = "The cat is red. The dog eats cake.\n\nTom had a hat. The hat is blue.\n"
                             "What is two plus three? Two plus three is five.\n";

static void setup(void) {
    ck_assert_msg(tokenizer_train(&tok, CORPUS, sizeof CORPUS - 1, 300, NULL) == ERR_OK, "%s", err_msg());
}

static void teardown(void) { tokenizer_free(&tok); }

static json_t *parse(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", s, e.text);
    return j;
}

static size_t encoded_len(const char *s) {
    TokenList l = {0};
    tokenizer_encode(&tok, s, strlen(s), true, true, &l);
    size_t n = l.n;
    token_list_free(&l);
    return n;
}

START_TEST(test_pack_documents_and_windows) {
    const char *text = "\n\nThe cat is red.\nThe dog is blue.\n\n \n\n\nTom had a hat.\n\n   \n";
    SftData d;
    sftdata_init(&d, 8);
    sftdata_add_text(&d, &tok, text, strlen(text));
    /* two documents, each BOS .. EOS; blank-line runs and whitespace-only documents vanish */
    size_t want = encoded_len("The cat is red.\nThe dog is blue.") + encoded_len("Tom had a hat.");
    ck_assert_uint_eq(d.n, want);
    ck_assert_int_eq(d.ids[0], TOKENIZER_BOS);
    sftdata_pack(&d);
    /* windows of T+1 = 9 overlapping by one: every stream token is the target of exactly one row */
    int64_t targets = 0;
    for (size_t i = 0; i < d.n_items; i++) {
        ck_assert(d.len[i] >= 2 && d.len[i] <= 9);
        if (i + 1 < d.n_items) {
            ck_assert_int_eq(d.len[i], 9);
            ck_assert_int_eq(d.off[i + 1], d.off[i] + 8);
        }
        targets += d.len[i] - 1;
    }
    ck_assert_int_eq(targets, (int64_t)d.n - 1);
    sftdata_split(&d, 0.0, 1, false);
    ck_assert_int_eq(sftdata_train_targets(&d), (int64_t)d.n - 1);
    /* one batch of all rows in order: targets are the next token, the mask is 1 except padding */
    int B = (int)d.n_items, T = 8;
    int32_t *tk = xmalloc((size_t)B * T * sizeof *tk), *tg = xmalloc((size_t)B * T * sizeof *tg);
    float *mk = xmalloc((size_t)B * T * sizeof *mk);
    SftCursor cur = {0, 0};
    ck_assert_int_eq(sftdata_next_batch(&d, &cur, B, tk, tg, mk), (int64_t)d.n - 1);
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++) {
            size_t at = (size_t)d.off[r] + (size_t)t;
            if (t < d.len[r] - 1) {
                ck_assert_int_eq(tk[r * T + t], d.ids[at]);
                ck_assert_int_eq(tg[r * T + t], d.ids[at + 1]);
                ck_assert(mk[r * T + t] == 1.0f);
            } else {
                ck_assert(mk[r * T + t] == 0.0f);
            }
        }
    free(tk);
    free(tg);
    free(mk);
    sftdata_free(&d);
}
END_TEST

START_TEST(test_dialogue_mask_answers_only) {
    json_t *dlg = parse("[{\"role\":\"user\",\"content\":\"What colour is the cat?\"},"
                        "{\"role\":\"assistant\",\"content\":\"The cat is red.\"},"
                        "{\"role\":\"user\",\"content\":\"And the dog?\"},"
                        "{\"role\":\"assistant\",\"content\":\"The dog is blue.\"}]");
    ChatTokens ct = {0};
    ChatLoss all = {CHAT_LOSS_ALL, NULL, 0}, last = {CHAT_LOSS_LAST, NULL, 0};
    ck_assert(chat_encode(&tok, dlg, "Be brief.", all, &ct) == ERR_OK);
    SftData d;
    sftdata_init(&d, 256);
    ck_assert(sftdata_add_dialogue(&d, &tok, dlg, "Be brief.", all, 0) == ERR_OK);
    ck_assert(sftdata_add_dialogue(&d, &tok, dlg, "Be brief.", last, 1) == ERR_OK);
    ck_assert_uint_eq(d.n_items, 2);
    ck_assert_int_eq(d.len[0], (int32_t)ct.n);
    /* the row's mask is the template's mask shifted by one (targets are the next token) */
    int T = 256;
    int32_t tk[256], tg[256];
    float mk[256];
    sftdata_split(&d, 0.0, 3, true);
    ck_assert_uint_eq(d.n_train, 1);
    ck_assert_uint_eq(d.n_eval, 1); /* added as held out */
    SftCursor cur = {0, 0};
    int64_t n_all = sftdata_next_batch(&d, &cur, 1, tk, tg, mk);
    int64_t want = 0;
    for (size_t i = 1; i < ct.n; i++) want += ct.mask[i];
    ck_assert_int_eq(n_all, want);
    for (size_t t = 0; t + 1 < ct.n; t++) {
        ck_assert_int_eq(tk[t], ct.ids[t]);
        ck_assert_int_eq(tg[t], ct.ids[t + 1]);
        ck_assert(mk[t] == (float)ct.mask[t + 1]);
    }
    for (int t = (int)ct.n - 1; t < T; t++) ck_assert(mk[t] == 0.0f);
    /* "last" carries fewer targets, the prompt none; the last target is the closing EOS */
    int64_t n_last = sftdata_eval_batch(&d, 0, 1, tk, tg, mk);
    ck_assert(n_last > 0 && n_last < n_all);
    ck_assert_int_eq(tg[ct.n - 2], TOKENIZER_EOS);
    ck_assert(mk[ct.n - 2] == 1.0f);
    ck_assert(mk[0] == 0.0f);
    chat_tokens_free(&ct);
    json_decref(dlg);
    sftdata_free(&d);
}
END_TEST

START_TEST(test_truncate_and_drop) {
    json_t *dlg = parse("[{\"role\":\"user\",\"content\":\"What is two plus three? The cat is red. The dog eats cake.\"},"
                        "{\"role\":\"assistant\",\"content\":\"Two plus three is five.\"}]");
    ChatLoss all = {CHAT_LOSS_ALL, NULL, 0};
    ChatTokens ct = {0};
    ck_assert(chat_encode(&tok, dlg, NULL, all, &ct) == ERR_OK);
    size_t first_target = 0;
    while (!ct.mask[first_target]) first_target++;
    SftData d;
    /* a row that ends before the answer starts has nothing to learn: dropped */
    sftdata_init(&d, (int)first_target - 1);
    ck_assert(sftdata_add_dialogue(&d, &tok, dlg, NULL, all, 0) == ERR_OK);
    ck_assert_uint_eq(d.n_items, 0);
    ck_assert_int_eq(d.dropped, 1);
    sftdata_free(&d);
    /* a row that reaches two answer tokens is kept, cut to T+1 */
    sftdata_init(&d, (int)first_target + 1);
    ck_assert(sftdata_add_dialogue(&d, &tok, dlg, NULL, all, 0) == ERR_OK);
    ck_assert_uint_eq(d.n_items, 1);
    ck_assert_int_eq(d.truncated, 1);
    ck_assert_int_eq(d.len[0], (int32_t)first_target + 2);
    sftdata_free(&d);
    chat_tokens_free(&ct);
    json_decref(dlg);
}
END_TEST

/* n single-turn examples "What is i plus 1?" */
static void add_examples(SftData *d, int n) {
    for (int i = 0; i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "{\"type\":\"sft_example\",\"dialogue\":[{\"role\":\"user\",\"content\":\"What is %d plus one?\"},"
                 "{\"role\":\"assistant\",\"content\":\"It is %d.\"}],\"loss_turns\":\"all\",\"source\":\"human\"}",
                 i, i + 1);
        json_t *r = parse(buf);
        ck_assert_msg(sftdata_add_record(d, &tok, r) == ERR_OK, "%s", err_msg());
        json_decref(r);
    }
}

START_TEST(test_split_and_epoch_order) {
    SftData d;
    sftdata_init(&d, 64);
    add_examples(&d, 200);
    sftdata_split(&d, 0.25, 9, true);
    ck_assert_uint_eq(d.n_train + d.n_eval, 200);
    ck_assert(d.n_eval > 25 && d.n_eval < 75);
    size_t n_eval = d.n_eval;
    int64_t first_eval = d.eval[0];
    sftdata_split(&d, 0.25, 9, true); /* the same split again */
    ck_assert_uint_eq(d.n_eval, n_eval);
    ck_assert_int_eq(d.eval[0], first_eval);

    /* each epoch visits every training item once, in an order that changes between epochs */
    enum { T = 64 };
    int32_t tk[T], tg[T];
    float mk[T];
    size_t nt = d.n_train;
    int *seen = xcalloc(200, sizeof *seen);
    int64_t *order0 = xmalloc(nt * sizeof *order0);
    SftCursor cur = {0, 0};
    for (size_t k = 0; k < nt; k++) {
        sftdata_next_batch(&d, &cur, 1, tk, tg, mk);
        order0[k] = d.perm[k];
        seen[d.perm[k]]++;
    }
    for (size_t k = 0; k < d.n_train; k++) ck_assert_int_eq(seen[d.train[k]], 1);
    sftdata_next_batch(&d, &cur, 1, tk, tg, mk);
    ck_assert_int_eq(cur.epoch, 1);
    ck_assert_int_eq(cur.pos, 1);
    int same = 1;
    for (size_t k = 0; k < nt; k++) same &= d.perm[k] == order0[k];
    ck_assert(!same);

    /* a cursor saved mid-epoch resumes into the same batches, even in a fresh SftData */
    SftCursor saved = {3, 17}, c1 = saved, c2 = saved;
    SftData e;
    sftdata_init(&e, 64);
    add_examples(&e, 200);
    sftdata_split(&e, 0.25, 9, true);
    ck_assert_uint_eq(sftdata_fingerprint(&d), sftdata_fingerprint(&e));
    enum { B = 4 };
    int32_t a1[B * T], a2[B * T], b1[B * T], b2[B * T];
    float m1[B * T], m2[B * T];
    for (int i = 0; i < 60; i++) {
        ck_assert_int_eq(sftdata_next_batch(&d, &c1, B, a1, b1, m1), sftdata_next_batch(&e, &c2, B, a2, b2, m2));
        ck_assert(memcmp(a1, a2, sizeof a1) == 0 && memcmp(b1, b2, sizeof b1) == 0 && memcmp(m1, m2, sizeof m1) == 0);
    }
    ck_assert(c1.epoch == c2.epoch && c1.pos == c2.pos);

    /* different data, a different fingerprint */
    add_examples(&e, 1);
    ck_assert_uint_ne(sftdata_fingerprint(&d), sftdata_fingerprint(&e));
    free(seen);
    free(order0);
    sftdata_free(&d);
    sftdata_free(&e);
}
END_TEST

START_TEST(test_unshuffled_order_and_eval_padding) {
    SftData d;
    sftdata_init(&d, 32);
    add_examples(&d, 5);
    sftdata_split(&d, 0.0, 1, false);
    enum { T = 32 };
    int32_t tk[3 * T], tg[3 * T];
    float mk[3 * T];
    SftCursor cur = {0, 0};
    sftdata_next_batch(&d, &cur, 3, tk, tg, mk);
    sftdata_next_batch(&d, &cur, 3, tk, tg, mk); /* items 3, 4, then 0 of epoch 1 */
    ck_assert_int_eq(cur.epoch, 1);
    ck_assert_int_eq(tk[2 * T], d.ids[d.off[0]]);
    ck_assert_int_eq(tg[2 * T + 3], d.ids[d.off[0] + 4]);
    /* evaluation rows past the held-out set are padding */
    sftdata_split(&d, 1.0, 1, false);
    ck_assert_uint_eq(d.n_eval, 5);
    ck_assert(sftdata_eval_batch(&d, 3, 3, tk, tg, mk) > 0);
    for (int t = 0; t < T; t++) ck_assert(mk[2 * T + t] == 0.0f);
    sftdata_free(&d);
}
END_TEST

START_TEST(test_pack_dialogues) {
    const char *texts[] = {
        "[{\"role\":\"user\",\"content\":\"What colour is the cat?\"},{\"role\":\"assistant\",\"content\":\"The cat is red.\"}]",
        "[{\"role\":\"user\",\"content\":\"What is two plus three?\"},{\"role\":\"assistant\",\"content\":\"Five.\"},"
        "{\"role\":\"user\",\"content\":\"And the dog?\"},{\"role\":\"assistant\",\"content\":\"The dog eats cake.\"}]",
        "[{\"role\":\"user\",\"content\":\"Tom had a hat?\"},{\"role\":\"assistant\",\"content\":\"The hat is blue.\"}]",
    };
    int held[] = {0, 1, 0};
    ChatLoss all = {CHAT_LOSS_ALL, NULL, 0};
    SftData d;
    sftdata_init(&d, 8);
    d.pack = true;
    ChatTokens train = {0}, test = {0};
    for (int i = 0; i < 3; i++) {
        json_t *dlg = parse(texts[i]);
        ck_assert(chat_encode(&tok, dlg, NULL, all, held[i] ? &test : &train) == ERR_OK);
        ck_assert(sftdata_add_dialogue(&d, &tok, dlg, NULL, all, held[i]) == ERR_OK);
        json_decref(dlg);
    }
    ck_assert_uint_eq(d.n_items, 0); /* nothing is cut before the pack */
    sftdata_pack(&d);
    ck_assert_int_eq(d.truncated, 0);
    /* the stream is the training dialogues back to back, then the held-out one, masks alongside */
    ck_assert_uint_eq(d.n, train.n + test.n);
    ck_assert(memcmp(d.ids, train.ids, train.n * sizeof *d.ids) == 0);
    ck_assert(memcmp(d.mask, train.mask, train.n) == 0);
    ck_assert(memcmp(d.ids + train.n, test.ids, test.n * sizeof *d.ids) == 0);
    ck_assert(memcmp(d.mask + train.n, test.mask, test.n) == 0);
    /* windows never mix the two sets, and every window but the last of each set is full */
    for (size_t i = 0; i < d.n_items; i++) {
        size_t end = (size_t)d.off[i] + (size_t)d.len[i];
        if (d.held[i]) ck_assert((size_t)d.off[i] >= train.n);
        else ck_assert(end <= train.n);
    }
    sftdata_split(&d, 0.5, 1, true); /* held items exist: the fraction is not used */
    int64_t want = 0;
    for (size_t i = 0; i < train.n; i++) want += train.mask[i];
    ck_assert_int_eq(sftdata_train_targets(&d), want);
    ck_assert(d.n_eval > 0);
    for (size_t k = 0; k < d.n_eval; k++) ck_assert(d.held[d.eval[k]]);
    chat_tokens_free(&train);
    chat_tokens_free(&test);
    sftdata_free(&d);
}
END_TEST

START_TEST(test_bad_records) {
    static const struct {
        const char *rec, *msg;
    } bad[] = {
        {"[1]", "JSON object"},
        {"{\"type\":\"prompt\",\"dialogue\":[]}", "\"type\""},
        {"{\"loss_turns\":\"all\"}", "\"dialogue\": missing"},
        {"{\"dialogue\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}],\"system\":3}", "\"system\""},
        {"{\"dialogue\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}],\"split\":\"dev\"}", "\"split\""},
        {"{\"dialogue\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}],\"loss_turns\":\"some\"}", "loss_turns"},
        {"{\"dialogue\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "dialogue"},
        {"{\"dialogue\":\"hi\"}", "dialogue"},
        {"{\"dialogue\":[{\"role\":\"assistant\",\"content\":\"yo\"}]}", "dialogue"},
    };
    SftData d;
    sftdata_init(&d, 64);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_error_t e;
        json_t *r = json_loads(bad[i].rec, JSON_DECODE_ANY, &e);
        ck_assert(r);
        ck_assert_msg(sftdata_add_record(&d, &tok, r) == ERR_INPUT, "accepted %s", bad[i].rec);
        ck_assert_msg(strstr(err_msg(), bad[i].msg), "%s: message '%s' lacks '%s'", bad[i].rec, err_msg(), bad[i].msg);
        json_decref(r);
    }
    ck_assert_uint_eq(d.n_items, 0);
    ck_assert_uint_eq(d.n, 0);
    sftdata_free(&d);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sftdata");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pack_documents_and_windows);
    tcase_add_test(tc, test_dialogue_mask_answers_only);
    tcase_add_test(tc, test_truncate_and_drop);
    tcase_add_test(tc, test_split_and_epoch_order);
    tcase_add_test(tc, test_unshuffled_order_and_eval_padding);
    tcase_add_test(tc, test_pack_dialogues);
    tcase_add_test(tc, test_bad_records);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
