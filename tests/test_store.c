/* store: round trips of every table, migrations, refusals, foreign keys, transactions, bad rows. */
#include <check.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "util.h"

static char dir[64];
static char path[128];

static void setup(void) {
    strcpy(dir, "/tmp/test_store_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/prefs.db", dir);
}

static void teardown(void) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static Store *open_ok(void) {
    Store *s;
    Err e = store_open(&s, path);
    ck_assert_msg(e == ERR_OK, "%s", err_msg());
    return s;
}

#define OK(call) ck_assert_msg((call) == ERR_OK, "%s", err_msg())
#define BAD(call, needle)                                                                          \
    do {                                                                                           \
        ck_assert_int_eq((call), ERR_INPUT);                                                       \
        ck_assert_msg(strstr(err_msg(), needle), "'%s' not in '%s'", needle, err_msg());           \
    } while (0)

static const char *D1 = "[{\"role\":\"user\",\"content\":\"Hi?\"}]";
/* The same dialogue with keys in another order and spaces: must dedupe to D1. */
static const char *D1_ALT = "[ {\"content\": \"Hi?\", \"role\": \"user\"} ]";
static const char *D2 = "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                        "{\"role\":\"user\",\"content\":\"c\"}]";

static int64_t add_prompt(Store *s, const char *dialogue, const char *split) {
    StorePrompt p = {.dialogue = dialogue, .split = split, .tags = "{\"risk\":\"borderline\"}"};
    int64_t id;
    OK(store_prompt_put(s, &p, &id, NULL));
    return id;
}

static int64_t add_response(Store *s, int64_t prompt_id, const char *text, int64_t iteration) {
    StoreResponse r = {.prompt_id = prompt_id, .text = text, .model = "m", .iteration = iteration,
                       .temperature = 0.7, .top_p = NAN};
    int64_t id;
    OK(store_response_add(s, &r, &id));
    return id;
}

static StoreComparison comparison(int64_t chosen, int64_t rejected, const char *dimension) {
    return (StoreComparison){.chosen_id = chosen, .rejected_id = rejected, .dimension = dimension,
                             .rating = 2, .chosen_safe = 1, .rejected_safe = 0, .annotator = "t",
                             .iteration = 1};
}

static int64_t count(Store *s, const char *table) {
    int64_t n;
    OK(store_count(s, table, &n));
    return n;
}

/* Collectors: copy what the walks yield. */
typedef struct {
    int n;
    char text[8][256];
    int64_t ids[8];
} Seen;

static Err see_prompt(void *ctx, const StorePrompt *p) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%s|%s|%s|%s", p->dialogue, p->system, p->tags,
             p->split ? p->split : "-");
    seen->ids[seen->n++] = p->id;
    return ERR_OK;
}

static Err see_response(void *ctx, const StoreResponseRow *r) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%s|%s|%lld|%.2f|%s|%lld", r->r.text, r->r.model,
             (long long)r->r.iteration, r->r.temperature, isnan(r->r.top_p) ? "nan" : "set",
             (long long)r->prompt.id);
    seen->ids[seen->n++] = r->r.id;
    return ERR_OK;
}

static Err see_comparison(void *ctx, const StoreComparisonRow *c) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%s>%s|%s|%d|%d%d|%s|%lld|%s", c->chosen, c->rejected,
             c->c.dimension, c->c.rating, c->c.chosen_safe, c->c.rejected_safe, c->c.annotator,
             (long long)c->c.iteration, c->c.split ? c->c.split : "-");
    seen->ids[seen->n++] = c->c.id;
    return ERR_OK;
}

static Err see_sft(void *ctx, const StoreSftExample *x) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%s|%s|%s|%lld", x->dialogue, x->loss_turns, x->source,
             (long long)x->iteration);
    seen->ids[seen->n++] = x->id;
    return ERR_OK;
}

static Err see_score(void *ctx, const StoreScore *sc) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%lld|%s|%.3f", (long long)sc->response_id, sc->model, sc->score);
    seen->n++;
    return ERR_OK;
}

static Err see_run(void *ctx, const StoreRun *r) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%s|%lld|%s|%s|%s|%s|%d", r->program, (long long)r->iteration,
             r->config, r->inputs, r->outputs, r->status, r->ended_at != NULL);
    seen->ids[seen->n++] = r->id;
    return ERR_OK;
}

static Err see_metric(void *ctx, const StoreMetric *m) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%lld|%lld|%s|%g", (long long)m->run_id, (long long)m->step,
             m->name, m->value);
    seen->n++;
    return ERR_OK;
}

static Err see_pair(void *ctx, const StorePair *p) {
    Seen *seen = ctx;
    snprintf(seen->text[seen->n], 256, "%s~%s", p->a, p->b);
    seen->n++;
    return ERR_OK;
}

START_TEST(test_round_trip_every_table) {
    Store *s = open_ok();
    ck_assert_int_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
    int created;
    int64_t p1, p1b, p2;
    StorePrompt p = {.dialogue = D1, .tags = "{\"risk\":\"adversarial\",\"kind\":\"pet\"}", .split = "train"};
    OK(store_prompt_put(s, &p, &p1, &created));
    ck_assert_int_eq(created, 1);
    p.dialogue = D1_ALT;
    OK(store_prompt_put(s, &p, &p1b, &created));
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(p1, p1b);
    StorePrompt q = {.dialogue = D1, .system = "Always answer as a pirate"};
    OK(store_prompt_put(s, &q, &p2, &created)); /* same turns, other system prompt: a new prompt */
    ck_assert_int_eq(created, 1);
    Seen seen = {0};
    OK(store_prompts_each(s, NULL, see_prompt, &seen));
    ck_assert_int_eq(seen.n, 2);
    ck_assert_str_eq(seen.text[0], "[{\"role\":\"user\",\"content\":\"Hi?\"}]||"
                                   "{\"risk\":\"adversarial\",\"kind\":\"pet\"}|train");
    ck_assert_str_eq(seen.text[1], "[{\"role\":\"user\",\"content\":\"Hi?\"}]|Always answer as a pirate|{}|-");
    StoreFilter f = store_filter_any();
    f.risk = "adversarial";
    memset(&seen, 0, sizeof seen);
    OK(store_prompts_each(s, &f, see_prompt, &seen));
    ck_assert_int_eq(seen.n, 1);

    int64_t r1 = add_response(s, p1, "Hello!", 1), r2 = add_response(s, p1, "Go away.", 1);
    StoreResponse r = {.prompt_id = p2, .text = "Arr", .model = "pirate", .iteration = 2,
                       .temperature = NAN, .top_p = 0.9};
    int64_t r3;
    OK(store_response_add(s, &r, &r3));
    memset(&seen, 0, sizeof seen);
    OK(store_responses_each(s, NULL, see_response, &seen));
    ck_assert_int_eq(seen.n, 3);
    ck_assert_str_eq(seen.text[0], "Hello!|m|1|0.70|nan|1");
    ck_assert_str_eq(seen.text[2], "Arr|pirate|2|nan|set|2");
    int64_t found;
    OK(store_response_find(s, p1, "Go away.", NULL, &found));
    ck_assert_int_eq(found, r2);
    OK(store_response_find(s, p1, "Go away.", "other", &found));
    ck_assert_int_eq(found, 0);

    StoreComparison c = comparison(r1, r2, "helpfulness");
    int64_t c1, c2;
    OK(store_comparison_add(s, &c, &c1));
    c = comparison(r2, r1, "safety");
    c.chosen_safe = STORE_SAFE_UNKNOWN;
    c.rating = 0;
    c.split = "test";
    OK(store_comparison_add(s, &c, &c2));
    memset(&seen, 0, sizeof seen);
    OK(store_comparisons_each(s, NULL, see_comparison, &seen));
    ck_assert_int_eq(seen.n, 2);
    ck_assert_str_eq(seen.text[0], "Hello!>Go away.|helpfulness|2|10|t|1|train"); /* prompt's split */
    ck_assert_str_eq(seen.text[1], "Go away.>Hello!|safety|0|-10|t|1|test");
    f = store_filter_any();
    f.dimension = "safety";
    memset(&seen, 0, sizeof seen);
    OK(store_comparisons_each(s, &f, see_comparison, &seen));
    ck_assert_int_eq(seen.n, 1);
    ck_assert_int_eq(seen.ids[0], c2);

    StoreSftExample x = {.dialogue = "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
                                     "\"content\":\"a\"}]",
                         .loss_turns = "[0]", .source = "gatt", .iteration = 3};
    int64_t x1;
    OK(store_sft_add(s, &x, &x1));
    x.loss_turns = NULL;
    x.source = "human";
    OK(store_sft_add(s, &x, &x1));
    memset(&seen, 0, sizeof seen);
    f = store_filter_any();
    f.source = "gatt";
    OK(store_sft_each(s, &f, see_sft, &seen));
    ck_assert_int_eq(seen.n, 1);
    ck_assert_str_eq(seen.text[0], "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\","
                                   "\"content\":\"a\"}]|[0]|gatt|3");

    StoreScore sc = {r1, "rm-help-v1", 1.25};
    OK(store_score_put(s, &sc));
    sc.score = -0.5; /* a second score from the same model replaces the first */
    OK(store_score_put(s, &sc));
    memset(&seen, 0, sizeof seen);
    OK(store_scores_each(s, NULL, see_score, &seen));
    ck_assert_int_eq(seen.n, 1);
    ck_assert_str_eq(seen.text[0], "1|rm-help-v1|-0.500");

    int64_t run;
    OK(store_run_begin(s, "rm_train", 2, "lr: 1e-5\n", "prefs.db", &run));
    OK(store_metric_put(s, run, 0, "loss", 0.69));
    OK(store_metric_put(s, run, 1, "loss", 0.5));
    OK(store_run_end(s, run, "runs/v2/rm", "ok"));
    memset(&seen, 0, sizeof seen);
    OK(store_runs_each(s, NULL, see_run, &seen));
    ck_assert_int_eq(seen.n, 1);
    ck_assert_str_eq(seen.text[0], "rm_train|2|lr: 1e-5\n|prefs.db|runs/v2/rm|ok|1");
    memset(&seen, 0, sizeof seen);
    OK(store_metrics_each(s, run, see_metric, &seen));
    ck_assert_int_eq(seen.n, 2);
    ck_assert_str_eq(seen.text[1], "1|1|loss|0.5");

    ck_assert_int_eq(count(s, "v_comparisons"), 2);
    ck_assert_int_eq(count(s, "v_iterations"), 3); /* iterations 1, 2, 3 */
    int64_t n;
    BAD(store_count(s, "sqlite_master", &n), "unknown table");
    store_close(s);

    /* Everything is still there after reopening. */
    s = open_ok();
    ck_assert_int_eq(count(s, "prompts"), 2);
    ck_assert_int_eq(count(s, "responses"), 3);
    ck_assert_int_eq(count(s, "comparisons"), 2);
    ck_assert_int_eq(count(s, "sft_examples"), 2);
    ck_assert_int_eq(count(s, "metrics"), 2);
    store_close(s);
}
END_TEST

/* Run one SQL statement on the file directly, as another tool would. */
static void raw_sql(const char *sql) {
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s", msg ? msg : "");
    sqlite3_close(db);
}

START_TEST(test_migration_from_version_1) {
    Store *s;
    OK(store_open_at(&s, path, 1));
    ck_assert_int_eq(store_schema_version(s), 1);
    int64_t p1 = add_prompt(s, D1, "train");
    int64_t n;
    ck_assert_int_eq(store_count(s, "v_comparisons", &n), ERR_RUNTIME); /* views came with version 2 */
    ck_assert_ptr_nonnull(strstr(err_msg(), "no such table"));
    store_close(s);
    /* Rows written by version 1 (no top_p column yet), as an old build would have left them. */
    raw_sql("INSERT INTO responses(prompt_id, text, model, iteration, created_at) "
            "VALUES (1, 'old one', 'm', 0, '2024-01-01T00:00:00Z'), (1, 'old two', 'm', 0, '2024-01-01')");
    raw_sql("INSERT INTO comparisons(prompt_id, chosen_id, rejected_id, dimension, rating, annotator, "
            "created_at) VALUES (1, 1, 2, 'safety', 3, 'old', '2024-01-01')");
    s = open_ok();
    ck_assert_int_eq(store_schema_version(s), 2);
    ck_assert_int_eq(count(s, "v_comparisons"), 1);
    Seen seen = {0};
    OK(store_comparisons_each(s, NULL, see_comparison, &seen));
    ck_assert_str_eq(seen.text[0], "old one>old two|safety|3|-1-1|old|0|-");
    StoreResponse r = {.prompt_id = p1, .text = "new", .model = "m", .temperature = NAN, .top_p = 0.95};
    int64_t id;
    OK(store_response_add(s, &r, &id));
    store_close(s);
}
END_TEST

START_TEST(test_refuses_newer_schema_and_foreign_files) {
    Store *s = open_ok();
    store_close(s);
    raw_sql("INSERT INTO schema_version VALUES (99, 'future')");
    BAD(store_open(&s, path), "newer");
    ck_assert_ptr_null(s);

    snprintf(path, sizeof path, "%s/other.db", dir);
    raw_sql("CREATE TABLE t(x)");
    BAD(store_open(&s, path), "not a preference store");

    snprintf(path, sizeof path, "%s/text.db", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not a database, just some text long enough to be read as a header...\n", f);
    fclose(f);
    BAD(store_open(&s, path), "text.db");
}
END_TEST

START_TEST(test_foreign_keys_and_dangling_ids) {
    Store *s = open_ok();
    int64_t p1 = add_prompt(s, D1, NULL), p2 = add_prompt(s, D2, NULL);
    int64_t r1 = add_response(s, p1, "x", 0), r2 = add_response(s, p1, "y", 0),
            r3 = add_response(s, p2, "z", 0);
    StoreResponse r = {.prompt_id = 999, .text = "t", .model = "m", .temperature = NAN, .top_p = NAN};
    int64_t id;
    BAD(store_response_add(s, &r, &id), "prompt 999 does not exist");
    StoreComparison c = comparison(r1, 777, "helpfulness");
    BAD(store_comparison_add(s, &c, &id), "response 777 does not exist");
    c = comparison(r1, r3, "helpfulness");
    BAD(store_comparison_add(s, &c, &id), "do not answer the same prompt");
    c = comparison(r1, r1, "helpfulness");
    BAD(store_comparison_add(s, &c, &id), "same response");
    StoreScore sc = {555, "rm", 1.0};
    BAD(store_score_put(s, &sc), "response 555 does not exist");
    BAD(store_metric_put(s, 42, 0, "loss", 1.0), "run 42 does not exist");
    BAD(store_run_end(s, 42, NULL, "ok"), "run 42 does not exist");
    BAD(store_prompt_set_split(s, 31, "test"), "prompt 31 does not exist");
    c = comparison(r1, r2, "helpfulness");
    OK(store_comparison_add(s, &c, &id));
    OK(store_comparison_delete(s, id));
    BAD(store_comparison_delete(s, id), "does not exist");
    ck_assert_int_eq(count(s, "comparisons"), 0);
    ck_assert_int_eq(count(s, "responses"), 3);
    store_close(s);
}
END_TEST

START_TEST(test_bad_rows_are_refused) {
    Store *s = open_ok();
    int64_t id;
    struct {
        const char *dialogue, *tags, *split, *needle;
    } prompts[] = {
        {"[]", NULL, NULL, "non-empty"},
        {"{\"role\":\"user\"}", NULL, NULL, "non-empty array"},
        {"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]", NULL, NULL,
         "end with a user"},
        {"[{\"role\":\"assistant\",\"content\":\"a\"}]", NULL, NULL, "alternate"},
        {"[{\"role\":\"robot\",\"content\":\"a\"}]", NULL, NULL, "role must be"},
        {"[{\"role\":\"user\",\"content\":3}]", NULL, NULL, "turn 0 must be"},
        {"[{\"role\":\"user\",\"content\":\"a\",\"x\":1}]", NULL, NULL, "turn 0 must be"},
        {"[{\"role\":\"user\",\"content\":\"a\"}", NULL, NULL, "not JSON"},
        {D1, "[1]", NULL, "tags must be a JSON object"},
        {D1, "{\"risk\":\"high\"}", NULL, "tags.risk"},
        {D1, NULL, "dev", "split must be"},
    };
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        StorePrompt p = {.dialogue = prompts[i].dialogue, .tags = prompts[i].tags, .split = prompts[i].split};
        BAD(store_prompt_put(s, &p, &id, NULL), prompts[i].needle);
    }
    int64_t p1 = add_prompt(s, D1, NULL);
    int64_t r1 = add_response(s, p1, "x", 0), r2 = add_response(s, p1, "y", 0);
    StoreComparison c = comparison(r1, r2, "honesty");
    BAD(store_comparison_add(s, &c, &id), "dimension");
    c = comparison(r1, r2, "safety");
    c.rating = 4;
    BAD(store_comparison_add(s, &c, &id), "rating");
    c = comparison(r1, r2, "safety");
    c.chosen_safe = 2;
    BAD(store_comparison_add(s, &c, &id), "chosen_safe");
    c = comparison(r1, r2, "safety");
    c.annotator = "";
    BAD(store_comparison_add(s, &c, &id), "annotator");
    StoreResponse r = {.prompt_id = p1, .text = "t", .model = NULL, .temperature = NAN, .top_p = NAN};
    BAD(store_response_add(s, &r, &id), "model");
    const char *sft_d = "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]";
    StoreSftExample x = {.dialogue = sft_d, .source = "web"};
    BAD(store_sft_add(s, &x, &id), "source");
    x = (StoreSftExample){.dialogue = sft_d, .source = "rs", .loss_turns = "[1]"};
    BAD(store_sft_add(s, &x, &id), "loss_turns[0]");
    x = (StoreSftExample){.dialogue = sft_d, .source = "rs", .loss_turns = "first"};
    BAD(store_sft_add(s, &x, &id), "loss_turns");
    x = (StoreSftExample){.dialogue = D1, .source = "rs"};
    BAD(store_sft_add(s, &x, &id), "end with an assistant");
    BAD(store_run_end(s, 1, NULL, "done"), "status");
    ck_assert_int_eq(count(s, "prompts"), 1);
    ck_assert_int_eq(count(s, "comparisons"), 0);
    ck_assert_int_eq(count(s, "sft_examples"), 0);
    store_close(s);
}
END_TEST

START_TEST(test_transactions_nest_and_roll_back) {
    Store *s = open_ok();
    OK(store_begin(s));
    add_prompt(s, D1, NULL);
    OK(store_begin(s));
    add_prompt(s, D2, NULL);
    store_rollback(s); /* undoes D2 only */
    OK(store_commit(s));
    ck_assert_int_eq(count(s, "prompts"), 1);

    OK(store_begin(s));
    int64_t p2 = add_prompt(s, D2, NULL);
    add_response(s, p2, "a", 0);
    store_rollback(s); /* a whole import undone */
    ck_assert_int_eq(count(s, "prompts"), 1);
    ck_assert_int_eq(count(s, "responses"), 0);

    /* A second connection sees nothing of an open transaction, then all of it. */
    OK(store_begin(s));
    add_prompt(s, D2, NULL);
    Store *other = open_ok();
    ck_assert_int_eq(count(other, "prompts"), 1);
    OK(store_commit(s));
    ck_assert_int_eq(count(other, "prompts"), 2);
    /* While one connection writes, another's write waits and then fails after its timeout. */
    OK(store_begin(s));
    store_set_busy_timeout(other, 50);
    int64_t id;
    StorePrompt p = {.dialogue = "[{\"role\":\"user\",\"content\":\"blocked\"}]"};
    ck_assert_int_eq(store_prompt_put(other, &p, &id, NULL), ERR_RUNTIME);
    ck_assert_ptr_nonnull(strstr(err_msg(), "busy"));
    store_rollback(s);
    OK(store_prompt_put(other, &p, &id, NULL));
    store_close(other);
    store_close(s);
}
END_TEST

START_TEST(test_pending_pairs_and_splits) {
    Store *s = open_ok();
    int64_t p1 = add_prompt(s, D1, NULL), p2 = add_prompt(s, D2, NULL);
    int64_t a = add_response(s, p1, "a", 1), b = add_response(s, p1, "b", 1);
    add_response(s, p1, "c", 1);
    add_response(s, p1, "a", 1); /* same text as a: not worth comparing */
    add_response(s, p2, "only one", 1);
    Seen seen = {0};
    OK(store_pending_pairs_each(s, "helpfulness", NULL, see_pair, &seen));
    ck_assert_int_eq(seen.n, 5); /* ab ac bc (a'b a'c... minus identical a-a') */
    ck_assert_str_eq(seen.text[0], "a~b");
    StoreComparison c = comparison(b, a, "helpfulness"); /* either order counts as compared */
    int64_t id;
    OK(store_comparison_add(s, &c, &id));
    memset(&seen, 0, sizeof seen);
    OK(store_pending_pairs_each(s, "helpfulness", NULL, see_pair, &seen));
    ck_assert_int_eq(seen.n, 4);
    ck_assert_str_eq(seen.text[0], "a~c");
    memset(&seen, 0, sizeof seen);
    OK(store_pending_pairs_each(s, "safety", NULL, see_pair, &seen));
    ck_assert_int_eq(seen.n, 5);
    memset(&seen, 0, sizeof seen);
    StoreFilter f = store_filter_any();
    f.limit = 2;
    OK(store_pending_pairs_each(s, NULL, &f, see_pair, &seen));
    ck_assert_int_eq(seen.n, 2);
    BAD(store_pending_pairs_each(s, "tone", NULL, see_pair, &seen), "dimension");

    OK(store_prompt_set_split(s, p1, "test"));
    f = store_filter_any();
    f.split = "test";
    memset(&seen, 0, sizeof seen);
    OK(store_comparisons_each(s, &f, see_comparison, &seen));
    ck_assert_int_eq(seen.n, 1); /* the comparison followed its prompt */
    memset(&seen, 0, sizeof seen);
    OK(store_prompts_each(s, &f, see_prompt, &seen));
    ck_assert_int_eq(seen.n, 1);
    ck_assert_int_eq(seen.ids[0], p1);
    BAD(store_prompt_set_split(s, p1, "dev"), "split");
    store_close(s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip_every_table);
    tcase_add_test(tc, test_migration_from_version_1);
    tcase_add_test(tc, test_refuses_newer_schema_and_foreign_files);
    tcase_add_test(tc, test_foreign_keys_and_dangling_ids);
    tcase_add_test(tc, test_bad_rows_are_refused);
    tcase_add_test(tc, test_transactions_nest_and_roll_back);
    tcase_add_test(tc, test_pending_pairs_and_splits);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
