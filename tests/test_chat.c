/*
 * chat: the Llama 2 template's ids against Meta's chat_completion run with SentencePiece
 * (tests/fixtures/tokenizer/llama2_chat.jsonl, made by tests/ref/gen_token_table.py ... chat),
 * loss masks for every policy, and every malformed dialogue and loss policy.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

static Tokenizer tok;

static void setup(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/llama2c/tokenizer.bin", testutil_data_dir());
    ck_assert_msg(tokenizer_load(&tok, path, 32000) == ERR_OK, "%s", err_msg());
}

static void teardown(void) { tokenizer_free(&tok); }

static json_t *parse(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "%s: %s", s, e.text);
    return j;
}

/* The mask the fixture's answer spans imply for a loss policy given as "selected[k]". */
static void expect_mask(const ChatTokens *c, const json_t *spans, const bool *selected) {
    uint8_t *want = xcalloc(c->n + 1, 1);
    for (size_t k = 0; k < json_array_size(spans); k++) {
        if (!selected[k]) continue;
        json_t *sp = json_array_get(spans, k);
        for (json_int_t i = json_integer_value(json_array_get(sp, 0)); i < json_integer_value(json_array_get(sp, 1)); i++)
            want[i] = 1;
    }
    for (size_t i = 0; i < c->n; i++) ck_assert_msg(c->mask[i] == want[i], "mask[%zu] = %d, want %d", i, c->mask[i], want[i]);
    free(want);
}

static void expect_ids(const int32_t *ids, size_t n, const json_t *want) {
    ck_assert_uint_eq(n, json_array_size(want));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == json_integer_value(json_array_get(want, i)), "id %zu: %d, want %lld", i, ids[i],
                      (long long)json_integer_value(json_array_get(want, i)));
}

START_TEST(test_matches_meta_reference) {
    FILE *f = fopen("tests/fixtures/tokenizer/llama2_chat.jsonl", "r");
    ck_assert_msg(f != NULL, "run from the repository root");
    char line[16384];
    int training = 0, prompts = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *rec = parse(line);
        json_t *dialogue = json_object_get(rec, "dialogue"), *ids = json_object_get(rec, "ids");
        json_t *spans = json_object_get(rec, "answer_spans");
        const char *system = json_string_value(json_object_get(rec, "system")); /* NULL for null */
        size_t nans = json_array_size(spans);
        /* The system prompt given as a leading "system" turn must give the same ids. */
        json_t *with_system = json_deep_copy(dialogue);
        if (system) json_array_insert_new(with_system, 0, json_pack("{s:s, s:s}", "role", "system", "content", system));
        json_t *last_turn = json_array_get(dialogue, json_array_size(dialogue) - 1);
        if (strcmp(json_string_value(json_object_get(last_turn, "role")), "assistant") == 0) {
            bool all[16], last[16], first[16];
            for (size_t k = 0; k < nans; k++) all[k] = true, last[k] = k + 1 == nans, first[k] = k == 0;
            ChatTokens c = {0};
            ck_assert_msg(chat_encode(&tok, dialogue, system, (ChatLoss){CHAT_LOSS_ALL, NULL, 0}, &c) == ERR_OK, "%s", err_msg());
            expect_ids(c.ids, c.n, ids);
            expect_mask(&c, spans, all);
            c.n = 0;
            ck_assert(chat_encode(&tok, with_system, NULL, (ChatLoss){CHAT_LOSS_LAST, NULL, 0}, &c) == ERR_OK);
            expect_ids(c.ids, c.n, ids);
            expect_mask(&c, spans, last);
            c.n = 0;
            int32_t zero = 0;
            ck_assert(chat_encode(&tok, dialogue, system, (ChatLoss){CHAT_LOSS_TURNS, &zero, 1}, &c) == ERR_OK);
            expect_mask(&c, spans, first);
            /* Appending: a second example goes after the first. */
            size_t n1 = c.n;
            ck_assert(chat_encode(&tok, dialogue, system, (ChatLoss){CHAT_LOSS_ALL, NULL, 0}, &c) == ERR_OK);
            ck_assert_uint_eq(c.n, 2 * n1);
            ck_assert_int_eq(c.ids[n1], TOKENIZER_BOS);
            /* A training example is not a prompt. */
            TokenList p = {0};
            ck_assert_int_eq(chat_encode_prompt(&tok, dialogue, system, &p), ERR_INPUT);
            ck_assert_msg(strstr(err_msg(), "ends with an assistant turn") != NULL, "%s", err_msg());
            token_list_free(&p);
            chat_tokens_free(&c);
            training++;
        } else {
            TokenList p = {0};
            ck_assert_msg(chat_encode_prompt(&tok, dialogue, system, &p) == ERR_OK, "%s", err_msg());
            expect_ids(p.ids, p.n, ids);
            p.n = 0;
            ck_assert(chat_encode_prompt(&tok, with_system, NULL, &p) == ERR_OK);
            expect_ids(p.ids, p.n, ids);
            ChatTokens c = {0};
            ck_assert_int_eq(chat_encode(&tok, dialogue, system, (ChatLoss){CHAT_LOSS_ALL, NULL, 0}, &c), ERR_INPUT);
            ck_assert_msg(strstr(err_msg(), "ends with a user turn") != NULL, "%s", err_msg());
            ck_assert_uint_eq(c.n, 0);
            token_list_free(&p);
            prompts++;
        }
        json_decref(with_system);
        json_decref(rec);
    }
    fclose(f);
    ck_assert_int_ge(training, 5);
    ck_assert_int_ge(prompts, 2);
}
END_TEST

START_TEST(test_decoded_template_text) {
    json_t *d = parse("[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\" Hello \"},"
                      "{\"role\":\"user\",\"content\":\"Bye\"},{\"role\":\"assistant\",\"content\":\"Ciao\"}]");
    ChatTokens c = {0};
    ck_assert(chat_encode(&tok, d, "Be brief.", (ChatLoss){CHAT_LOSS_ALL, NULL, 0}, &c) == ERR_OK);
    TextBuf text = {0};
    tokenizer_decode(&tok, c.ids, c.n, &text);
    /* BOS/EOS are ids, not text; each encode call's dummy prefix shows as a space. */
    ck_assert_str_eq(text.data, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello  [INST] Bye [/INST] Ciao ");
    /* What carries loss, decoded, is exactly the answers with their trailing space. */
    TokenList masked = {0};
    for (size_t i = 0; i < c.n; i++)
        if (c.mask[i]) token_list_push(&masked, c.ids[i]);
    text.len = 0;
    tokenizer_decode(&tok, masked.ids, masked.n, &text);
    ck_assert_str_eq(text.data, "Hello  Ciao ");
    ck_assert_int_eq(masked.ids[masked.n - 1], TOKENIZER_EOS);
    token_list_free(&masked);
    text_buf_free(&text);
    chat_tokens_free(&c);
    json_decref(d);
}
END_TEST

static void expect_error(const char *dialogue, const char *system, ChatLoss loss, const char *needle) {
    json_t *d = parse(dialogue);
    ChatTokens c = {0};
    ck_assert_msg(chat_encode(&tok, d, system, loss, &c) == ERR_INPUT, "accepted %s", dialogue);
    ck_assert_msg(strstr(err_msg(), needle) != NULL, "for %s: '%s' lacks '%s'", dialogue, err_msg(), needle);
    ck_assert_uint_eq(c.n, 0);
    json_decref(d);
}

START_TEST(test_rejects_malformed_dialogues) {
    ChatLoss all = {CHAT_LOSS_ALL, NULL, 0};
    expect_error("{\"role\":\"user\"}", NULL, all, "dialogue: expected a JSON array");
    expect_error("[]", NULL, all, "dialogue: no user or assistant turn");
    expect_error("[{\"role\":\"system\",\"content\":\"x\"}]", NULL, all, "no user or assistant turn");
    expect_error("[42]", NULL, all, "dialogue[0]: expected {\"role\": string, \"content\": string}");
    expect_error("[{\"role\":\"user\"}]", NULL, all, "dialogue[0]: expected");
    expect_error("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":7}]", NULL, all,
                 "dialogue[1]: expected");
    expect_error("[{\"role\":\"bot\",\"content\":\"a\"}]", NULL, all, "dialogue[0]: unknown role \"bot\"");
    expect_error("[{\"role\":\"assistant\",\"content\":\"a\"}]", NULL, all,
                 "dialogue[0]: role \"assistant\" where \"user\" was expected");
    expect_error("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]", NULL, all,
                 "dialogue[1]: role \"user\" where \"assistant\" was expected");
    expect_error("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"system\",\"content\":\"b\"}]", NULL, all,
                 "dialogue[1]: a system turn can only come first");
    expect_error("[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"a\"},"
                 "{\"role\":\"assistant\",\"content\":\"b\"}]", "other", all, "a system turn and a separate system prompt");
    expect_error("[{\"role\":\"user\",\"content\":\"a\"}]", NULL, all, "dialogue[0]: ends with a user turn");
    const char *two = "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                      "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]";
    int32_t turns[] = {0, 2};
    expect_error(two, NULL, (ChatLoss){CHAT_LOSS_TURNS, turns, 2}, "loss_turns: turn 2, but the dialogue has 2 assistant turns");
    expect_error(two, NULL, (ChatLoss){CHAT_LOSS_TURNS, turns, 0}, "loss_turns: empty");
    int32_t neg = -1;
    expect_error(two, NULL, (ChatLoss){CHAT_LOSS_TURNS, &neg, 1}, "loss_turns: turn -1");
    /* And the prompt side. */
    json_t *d = parse("[]");
    TokenList p = {0};
    ck_assert_int_eq(chat_encode_prompt(&tok, d, NULL, &p), ERR_INPUT);
    ck_assert_uint_eq(p.n, 0);
    json_decref(d);
}
END_TEST

START_TEST(test_loss_parse) {
    ChatLoss l;
    ck_assert(chat_loss_parse(NULL, &l) == ERR_OK && l.kind == CHAT_LOSS_ALL);
    const char *good[] = {"\"all\"", "\"last\"", "[1, 0, 3]", "null"};
    ChatLossKind kinds[] = {CHAT_LOSS_ALL, CHAT_LOSS_LAST, CHAT_LOSS_TURNS, CHAT_LOSS_ALL};
    for (int i = 0; i < 4; i++) {
        json_t *v = parse(good[i]);
        ck_assert_msg(chat_loss_parse(v, &l) == ERR_OK, "%s: %s", good[i], err_msg());
        ck_assert_int_eq(l.kind, kinds[i]);
        if (l.kind == CHAT_LOSS_TURNS) ck_assert(l.nturns == 3 && l.turns[0] == 1 && l.turns[2] == 3);
        chat_loss_free(&l);
        json_decref(v);
    }
    const char *bad[] = {"\"first\"", "3", "[1.5]", "[-1]", "[\"0\"]", "{\"turns\":[0]}", "true"};
    const char *needle[] = {"loss_turns: expected", "loss_turns: expected", "loss_turns[0]", "loss_turns[0]",
                            "loss_turns[0]", "loss_turns: expected", "loss_turns: expected"};
    for (int i = 0; i < 7; i++) {
        json_t *v = parse(bad[i]);
        ck_assert_msg(chat_loss_parse(v, &l) == ERR_INPUT, "accepted %s", bad[i]);
        ck_assert_msg(strstr(err_msg(), needle[i]) != NULL, "%s: %s", bad[i], err_msg());
        ck_assert_ptr_null(l.turns);
        json_decref(v);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_matches_meta_reference);
    tcase_add_test(tc, test_decoded_template_text);
    tcase_add_test(tc, test_rejects_malformed_dialogues);
    tcase_add_test(tc, test_loss_parse);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
