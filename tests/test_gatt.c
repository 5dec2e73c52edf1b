/*
 * gatt: instruction lists and their bad inputs, terse forms, matching, adherence checks, attaching,
 * the synthesised training example (its text and loss mask through the Llama 2 template), and the
 * determinism of the instruction draw.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "gatt.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

/* The toy world's instructions, as configs/gatt_augment.yaml writes them. */
static const char *const KINDS[] = {
    "pirate | Always answer as a pirate. | Style: pirate. | word arr",
    "question | Always end your answer with a question. | End: question. | ends ?",
    "hobby | Only speak about {hobby}. | Topic: {hobby}. | names",
    "name | Always call me {name}. | Name: {name}. | names",
};
static const char *const SLOTS[] = {"hobby: music painting football", "name: Tom Mia"};

static GattList list;

static void setup(void) {
    ck_assert_msg(gatt_list_parse(&list, KINDS, 4, SLOTS, 2) == ERR_OK, "%s", err_msg());
}

static void teardown(void) { gatt_list_free(&list); }

static json_t *parse(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", s, e.text);
    return j;
}

START_TEST(test_list_parsed) {
    ck_assert_uint_eq(list.nkinds, 4);
    ck_assert_uint_eq(list.nslots, 2);
    ck_assert_int_eq(gatt_kind_find(&list, "hobby"), 2);
    ck_assert_int_eq(gatt_kind_find(&list, "nope"), -1);
    ck_assert_int_eq(list.kinds[0].check, GATT_CHECK_WORD);
    ck_assert_str_eq(list.kinds[0].arg, "arr");
    ck_assert_int_eq(list.kinds[1].check, GATT_CHECK_ENDS);
    ck_assert_str_eq(list.kinds[1].arg, "?");
    ck_assert_int_eq(list.kinds[2].slot, 0);
    ck_assert_int_eq(list.kinds[3].slot, 1);
    ck_assert_int_eq(list.kinds[0].slot, -1);
    ck_assert_uint_eq(list.slots[0].n, 3);
    ck_assert_str_eq(list.slots[0].values[2], "football");
}
END_TEST

START_TEST(test_full_and_terse_forms) {
    char *s;
    s = gatt_render(&list, 0, NULL, false);
    ck_assert_str_eq(s, "Always answer as a pirate.");
    free(s);
    s = gatt_render(&list, 0, NULL, true);
    ck_assert_str_eq(s, "Style: pirate.");
    free(s);
    s = gatt_render(&list, 2, "music", false);
    ck_assert_str_eq(s, "Only speak about music.");
    free(s);
    s = gatt_render(&list, 2, "music", true);
    ck_assert_str_eq(s, "Topic: music.");
    free(s);
    s = gatt_render(&list, 3, "Mia", true);
    ck_assert_str_eq(s, "Name: Mia.");
    free(s);
    /* every form is recognised again, with its kind, value and form */
    for (int k = 0; k < 4; k++)
        for (int terse = 0; terse < 2; terse++) {
            const char *value = list.kinds[k].slot >= 0 ? list.slots[list.kinds[k].slot].values[0] : NULL;
            char *text = gatt_render(&list, k, value, terse);
            GattInstr in;
            ck_assert_msg(gatt_match(&list, text, &in), "'%s' not recognised", text);
            ck_assert_int_eq(in.kind, k);
            ck_assert_int_eq(in.terse, terse);
            ck_assert_str_eq(in.text, text);
            if (value) ck_assert_str_eq(in.value, value);
            else ck_assert_ptr_null(in.value);
            gatt_instr_free(&in);
            free(text);
        }
    GattInstr in;
    ck_assert(gatt_match(&list, "  Only speak about chess.\n", &in)); /* any one-word value; whitespace trimmed */
    ck_assert_str_eq(in.value, "chess");
    ck_assert_str_eq(in.text, "Only speak about chess.");
    gatt_instr_free(&in);
    ck_assert(!gatt_match(&list, "Only speak about .", &in));
    ck_assert(!gatt_match(&list, "Only speak about ice hockey.", &in));
    ck_assert(!gatt_match(&list, "Always answer as a pirate", &in));
    ck_assert(!gatt_match(&list, "Be nice.", &in));
    ck_assert(!gatt_match(&list, "", &in));
}
END_TEST

static void bad_list(const char *kind, const char *slot, const char *needle) {
    GattList l;
    const char *const kinds[] = {kind};
    const char *const slots[] = {slot};
    Err rc = gatt_list_parse(&l, kinds, 1, slots, slot ? 1 : 0);
    ck_assert_msg(rc == ERR_INPUT, "'%s' / '%s' accepted", kind, slot ? slot : "");
    ck_assert_msg(strstr(err_msg(), needle) != NULL, "'%s' lacks '%s'", err_msg(), needle);
    ck_assert_ptr_null(l.kinds);
}

START_TEST(test_bad_lists) {
    bad_list("pirate | Arr. | A.", NULL, "kinds[0]: expected 4 fields");
    bad_list("pirate | Arr. | A. | word arr | x", NULL, "got more");
    bad_list("pirate |  | A. | word arr", NULL, "field 2 is empty");
    bad_list("pirate | Arr. | A. | shout", NULL, "unknown check 'shout'");
    bad_list("pirate | Arr. | A. | word a r", NULL, "a word is letters and digits");
    bad_list("pirate | Arr. | A. | names", NULL, "needs a {slot}");
    bad_list("h | About {hobby}. | T: {hobby}. | names", NULL, "unknown slot {hobby}");
    bad_list("h | About {hobby}. | T: {x}. | names", "hobby: a", "use {hobby} and {x}");
    bad_list("h | About {hobby}. | T. | names", "hobby: a", "same placeholder");
    bad_list("h | About {hobby} {hobby}. | T: {hobby}. | names", "hobby: a", "more than one placeholder");
    bad_list("h | About {hobby. | T: {hobby}. | names", "hobby: a", "malformed placeholder");
    bad_list("h | About {}. | T: {hobby}. | names", "hobby: a", "malformed placeholder");
    bad_list("h | About }. | T. | word a", NULL, "'}' without '{'");
    bad_list("h | About {hobby}. | T: {hobby}. | names", "hobby music", "slots[0]: expected 'slot: value");
    bad_list("h | About {hobby}. | T: {hobby}. | names", "hobby:", "has no values");
    bad_list("h | About {hobby}. | T: {hobby}. | names", "ho bby: a", "slot name must be");
    GattList l;
    ck_assert_int_eq(gatt_list_parse(&l, NULL, 0, NULL, 0), ERR_INPUT);
    ck_assert(strstr(err_msg(), "no instruction kinds"));
    const char *const twice[] = {"a | A. | a. | word a", "a | B. | b. | word b"};
    ck_assert_int_eq(gatt_list_parse(&l, twice, 2, NULL, 0), ERR_INPUT);
    ck_assert(strstr(err_msg(), "kinds[1]: kind 'a' declared twice"));
    const char *const slots2[] = {"s: a", "s: b"};
    ck_assert_int_eq(gatt_list_parse(&l, twice, 1, slots2, 2), ERR_INPUT);
    ck_assert(strstr(err_msg(), "slots[1]: slot 's' declared twice"));
}
END_TEST

START_TEST(test_adherence) {
    GattInstr in;
    ck_assert(gatt_match(&list, "Always answer as a pirate.", &in));
    ck_assert(gatt_adheres(&list, &in, "Arr! The cup is red."));
    ck_assert(gatt_adheres(&list, &in, "The cup is red, ARR"));
    ck_assert(!gatt_adheres(&list, &in, "The arrow is red."));
    ck_assert(!gatt_adheres(&list, &in, ""));
    gatt_instr_free(&in);
    ck_assert(gatt_match(&list, "End: question.", &in));
    ck_assert(gatt_adheres(&list, &in, "3 plus 4 is 7. Do you want to know more?  \n"));
    ck_assert(!gatt_adheres(&list, &in, "Is it? 3 plus 4 is 7."));
    ck_assert(!gatt_adheres(&list, &in, "   "));
    gatt_instr_free(&in);
    ck_assert(gatt_match(&list, "Only speak about music.", &in));
    ck_assert(gatt_adheres(&list, &in, "The cat eats milk. I love to talk about Music."));
    ck_assert(!gatt_adheres(&list, &in, "The cat eats milk. I love musical things."));
    gatt_instr_free(&in);
    ck_assert(gatt_match(&list, "Name: Mia.", &in));
    ck_assert(gatt_adheres(&list, &in, "I hope this helps, Mia."));
    ck_assert(!gatt_adheres(&list, &in, "I hope this helps, Tom."));
    gatt_instr_free(&in);
}
END_TEST

START_TEST(test_attach_and_turns) {
    char *s = gatt_attach("<<SYS>>\n{instruction}\n<</SYS>>\n\n{user}", "Style: pirate.", "Hi {there}?");
    ck_assert_str_eq(s, "<<SYS>>\nStyle: pirate.\n<</SYS>>\n\nHi {there}?");
    free(s);
    s = gatt_attach("{user} ({instruction}) {instruction}", "I", "U");
    ck_assert_str_eq(s, "U (I) I");
    free(s);

    json_t *d = parse("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"x\"},"
                      "{\"role\":\"user\",\"content\":\"b\"}]");
    const char **users;
    size_t n;
    ck_assert_int_eq(gatt_user_turns(d, &users, &n), ERR_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(users[0], "a");
    ck_assert_str_eq(users[1], "b");
    const char *answers[] = {"A1"};
    json_t *t1 = gatt_turn_dialogue(users, answers, 1, "[{instruction}] {user}", "I");
    char *txt = json_dumps(t1, JSON_COMPACT);
    ck_assert_str_eq(txt, "[{\"role\":\"user\",\"content\":\"[I] a\"},{\"role\":\"assistant\",\"content\":\"A1\"},"
                          "{\"role\":\"user\",\"content\":\"[I] b\"}]");
    free(txt);
    json_decref(t1);
    json_t *t0 = gatt_turn_dialogue(users, answers, 0, NULL, NULL);
    txt = json_dumps(t0, JSON_COMPACT);
    ck_assert_str_eq(txt, "[{\"role\":\"user\",\"content\":\"a\"}]");
    free(txt);
    json_decref(t0);
    free(users);
    json_decref(d);

    static const char *const bad[][2] = {
        {"[]", "non-empty array"},
        {"{}", "non-empty array"},
        {"[{\"role\":\"assistant\",\"content\":\"x\"}]", "dialogue[0]: expected role \"user\""},
        {"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]", "dialogue[1]: expected role \"assistant\""},
        {"[{\"role\":\"user\",\"content\":3}]", "dialogue[0]: \"content\": expected a string"},
        {"[{\"role\":\"user\",\"content\":\"\"}]", "dialogue[0]: empty user turn"},
        {"[\"hi\"]", "dialogue[0]: expected an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = parse(bad[i][0]);
        ck_assert_int_eq(gatt_user_turns(b, &users, &n), ERR_INPUT);
        ck_assert_msg(strstr(err_msg(), bad[i][1]), "%s: '%s' lacks '%s'", bad[i][0], err_msg(), bad[i][1]);
        ck_assert_ptr_null(users);
        json_decref(b);
    }
}
END_TEST

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

START_TEST(test_example_text_and_mask) {
    /* A hand-made dialogue of three turns under a terse hobby instruction. */
    const char *users[] = {"What colour is the cup?", "What is 2 plus 3?", "What does the cat eat?"};
    const char *answers[] = {"The cup is red. I love to talk about music.", "2 plus 3 is 5. I love to talk about music.",
                             "The cat eats milk. I love to talk about music."};
    GattInstr in = {.kind = 2, .value = xstrdup("music"), .text = gatt_render(&list, 2, "music", true), .terse = true};
    json_t *rec = gatt_example(&list, users, answers, 3, &in, 4);
    char *txt = json_dumps(rec, JSON_COMPACT);
    ck_assert_str_eq(
        txt, "{\"type\":\"sft_example\",\"dialogue\":[{\"role\":\"user\",\"content\":\"What colour is the cup?\"},"
             "{\"role\":\"assistant\",\"content\":\"The cup is red. I love to talk about music.\"},"
             "{\"role\":\"user\",\"content\":\"What is 2 plus 3?\"},"
             "{\"role\":\"assistant\",\"content\":\"2 plus 3 is 5. I love to talk about music.\"},"
             "{\"role\":\"user\",\"content\":\"What does the cat eat?\"},"
             "{\"role\":\"assistant\",\"content\":\"The cat eats milk. I love to talk about music.\"}],"
             "\"system\":\"Topic: music.\",\"loss_turns\":[2],\"source\":\"gatt\",\"iteration\":4,\"split\":\"train\","
             "\"tags\":{\"risk\":\"none\",\"category\":\"system\",\"instruction\":\"hobby\",\"value\":\"music\",\"terse\":true}}");
    free(txt);

    /* Through the Llama 2 template: the instruction once (the first turn's system block), and loss
     * on exactly the last answer and its EOS. */
    char path[512];
    snprintf(path, sizeof path, "%s/llama2c/tokenizer.bin", testutil_data_dir());
    Tokenizer tok;
    ck_assert_msg(tokenizer_load(&tok, path, 32000) == ERR_OK, "%s", err_msg());
    ChatLoss loss;
    ck_assert_int_eq(chat_loss_parse(json_object_get(rec, "loss_turns"), &loss), ERR_OK);
    ChatTokens ct = {0};
    ck_assert_int_eq(chat_encode(&tok, json_object_get(rec, "dialogue"), json_string_value(json_object_get(rec, "system")),
                                 loss, &ct),
                     ERR_OK);
    TextBuf all = {0}, learnt = {0};
    tokenizer_decode(&tok, ct.ids, ct.n, &all);
    ck_assert_int_eq(count(all.data, "Topic: music."), 1);
    ck_assert_int_eq(count(all.data, "<<SYS>>"), 1);
    ck_assert_ptr_nonnull(strstr(all.data, "<<SYS>>\nTopic: music.\n<</SYS>>\n\nWhat colour is the cup? [/INST]"));
    /* the targets form one contiguous run at the end: the last answer and the EOS after it */
    size_t first = ct.n, nmask = 0;
    for (size_t i = 0; i < ct.n; i++)
        if (ct.mask[i]) {
            if (first == ct.n) first = i;
            nmask++;
        }
    ck_assert_uint_eq(first + nmask, ct.n);
    ck_assert_int_eq(ct.ids[ct.n - 1], TOKENIZER_EOS);
    tokenizer_decode(&tok, ct.ids + first, nmask - 1, &learnt);
    ck_assert_str_eq(learnt.data, "The cat eats milk. I love to talk about music. "); /* the decoder drops the leading "▁" */
    /* the same mask as the "last" policy, and a strict subset of "all" */
    ChatTokens last = {0}, everything = {0};
    ck_assert_int_eq(chat_encode(&tok, json_object_get(rec, "dialogue"), in.text, (ChatLoss){.kind = CHAT_LOSS_LAST}, &last), ERR_OK);
    ck_assert_int_eq(chat_encode(&tok, json_object_get(rec, "dialogue"), in.text, (ChatLoss){.kind = CHAT_LOSS_ALL}, &everything), ERR_OK);
    ck_assert_uint_eq(last.n, ct.n);
    ck_assert_int_eq(memcmp(last.mask, ct.mask, ct.n), 0);
    size_t nall = 0;
    for (size_t i = 0; i < everything.n; i++) nall += everything.mask[i];
    ck_assert_uint_gt(nall, nmask);
    chat_tokens_free(&ct);
    chat_tokens_free(&last);
    chat_tokens_free(&everything);
    chat_loss_free(&loss);
    text_buf_free(&all);
    text_buf_free(&learnt);
    tokenizer_free(&tok);
    json_decref(rec);
    gatt_instr_free(&in);
}
END_TEST

START_TEST(test_draw_deterministic) {
    enum { N = 4000 };
    Rng a, b, c;
    rng_seed(&a, 11);
    rng_seed(&b, 11);
    rng_seed(&c, 12);
    int kinds[4] = {0}, terse = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        GattInstr x, y, z;
        gatt_draw(&list, &a, 0.5, &x);
        gatt_draw(&list, &b, 0.5, &y);
        gatt_draw(&list, &c, 0.5, &z);
        ck_assert_int_eq(x.kind, y.kind);
        ck_assert_str_eq(x.text, y.text);
        ck_assert_int_eq(x.terse, y.terse);
        differ += strcmp(x.text, z.text) != 0;
        kinds[x.kind]++;
        terse += x.terse;
        /* the drawn text is the rendering of what was drawn, and is recognised as such */
        GattInstr m;
        ck_assert(gatt_match(&list, x.text, &m));
        ck_assert_int_eq(m.kind, x.kind);
        ck_assert_int_eq(m.terse, x.terse);
        if (x.value) ck_assert_str_eq(m.value, x.value);
        gatt_instr_free(&m);
        gatt_instr_free(&x);
        gatt_instr_free(&y);
        gatt_instr_free(&z);
    }
    ck_assert_int_gt(differ, N / 2);
    for (int k = 0; k < 4; k++) ck_assert_msg(kinds[k] > N / 4 - 150 && kinds[k] < N / 4 + 150, "kind %d: %d", k, kinds[k]);
    ck_assert_msg(terse > N / 2 - 150 && terse < N / 2 + 150, "terse %d of %d", terse, N);
    /* terse_prob 0 and 1 draw the same kinds and values, in one form only */
    rng_seed(&a, 3);
    rng_seed(&b, 3);
    for (int i = 0; i < 200; i++) {
        GattInstr x, y;
        gatt_draw(&list, &a, 0.0, &x);
        gatt_draw(&list, &b, 1.0, &y);
        ck_assert(!x.terse && y.terse);
        ck_assert_int_eq(x.kind, y.kind);
        if (x.value) ck_assert_str_eq(x.value, y.value);
        gatt_instr_free(&x);
        gatt_instr_free(&y);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("gatt");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_list_parsed);
    tcase_add_test(tc, test_full_and_terse_forms);
    tcase_add_test(tc, test_bad_lists);
    tcase_add_test(tc, test_adherence);
    tcase_add_test(tc, test_attach_and_turns);
    tcase_add_test(tc, test_example_text_and_mask);
    tcase_add_test(tc, test_draw_deterministic);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
