/*
 * prefs_db export, stats, split — reading the store back out.
 *
 * export writes interchange records (docs/store.md) on stdout, table by table in id order:
 * prompts, responses, comparisons, sft_examples (--table all, the default), so that importing the
 * output into an empty store rebuilds the same rows with the same ids. Scores, runs and metrics
 * are exported on request (--table scores|runs|metrics) but not imported back: their ids only
 * mean something in the store they came from.
 *
 * stats prints tab-separated counts: rows per table, then comparisons grouped by dimension,
 * rating, split, iteration and safety bin with the averages of the Llama 2 paper's Table 6
 * (turns per dialogue, tokens per example, in the prompt, in the response). Tokens here are
 * whitespace-separated words: the store has no tokenizer, and words are stable across models.
 *
 * split assigns each prompt to train or test by a hash of its dialogue and --seed, so the answer
 * never depends on import order, and a dialogue (with any system prompt) lands in one split only.
 * Comparisons follow their prompt.
 */
#include <math.h>
#include <string.h>

#include "prefs_db.h"
#include "util.h"

/* ---- export --------------------------------------------------------------------------------------- */

static void set_str(json_t *o, const char *key, const char *v) {
    if (v) json_object_set_new(o, key, json_string(v));
}

/* Parse JSON text the store wrote (so it is valid) into a value. */
static json_t *parsed(const char *text) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    ASSERT(v);
    return v;
}

json_t *prompt_to_json(const StorePrompt *p) {
    json_t *o = json_object();
    json_object_set_new(o, "dialogue", parsed(p->dialogue));
    if (p->system && *p->system) set_str(o, "system", p->system);
    if (p->tags && strcmp(p->tags, "{}") != 0) json_object_set_new(o, "tags", parsed(p->tags));
    set_str(o, "split", p->split);
    set_str(o, "source", p->source);
    json_object_set_new(o, "id", json_integer(p->id));
    return o;
}

static json_t *record(const char *type, int64_t id) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(type));
    if (id > 0) json_object_set_new(o, "id", json_integer(id));
    return o;
}

static void set_real(json_t *o, const char *key, double v) {
    if (!isnan(v)) json_object_set_new(o, key, json_real(v));
}

static void set_safe(json_t *o, const char *key, int v) {
    if (v != STORE_SAFE_UNKNOWN) json_object_set_new(o, key, json_boolean(v));
}

/* Write o and drop it. */
static Err emit(json_t *o) {
    Err e = jsonl_write(stdout, o);
    json_decref(o);
    return e;
}

static Err out_prompt(void *ctx, const StorePrompt *p) {
    (void)ctx;
    json_t *o = record("prompt", 0), *po = prompt_to_json(p);
    json_object_update(o, po);
    json_decref(po);
    return emit(o);
}

static Err out_response(void *ctx, const StoreResponseRow *r) {
    (void)ctx;
    json_t *o = record("response", r->r.id);
    json_object_set_new(o, "prompt", prompt_to_json(&r->prompt));
    set_str(o, "text", r->r.text);
    set_str(o, "model", r->r.model);
    json_object_set_new(o, "iteration", json_integer(r->r.iteration));
    set_real(o, "temperature", r->r.temperature);
    set_real(o, "top_p", r->r.top_p);
    set_str(o, "created_at", r->r.created_at);
    return emit(o);
}

static Err out_comparison(void *ctx, const StoreComparisonRow *c) {
    (void)ctx;
    json_t *o = record("comparison", c->c.id);
    json_object_set_new(o, "prompt", prompt_to_json(&c->prompt));
    set_str(o, "chosen", c->chosen);
    set_str(o, "rejected", c->rejected);
    set_str(o, "dimension", c->c.dimension);
    json_object_set_new(o, "rating", json_integer(c->c.rating));
    set_safe(o, "chosen_safe", c->c.chosen_safe);
    set_safe(o, "rejected_safe", c->c.rejected_safe);
    set_str(o, "annotator", c->c.annotator);
    json_object_set_new(o, "iteration", json_integer(c->c.iteration));
    set_str(o, "split", c->c.split);
    set_str(o, "chosen_model", c->chosen_model);
    set_str(o, "rejected_model", c->rejected_model);
    set_str(o, "created_at", c->c.created_at);
    return emit(o);
}

static Err out_sft(void *ctx, const StoreSftExample *x) {
    (void)ctx;
    json_t *o = record("sft_example", x->id);
    json_object_set_new(o, "dialogue", parsed(x->dialogue));
    if (x->system && *x->system) set_str(o, "system", x->system);
    json_object_set_new(o, "loss_turns", x->loss_turns[0] == '[' ? parsed(x->loss_turns)
                                                                 : json_string(x->loss_turns));
    set_str(o, "source", x->source);
    json_object_set_new(o, "iteration", json_integer(x->iteration));
    if (x->tags && strcmp(x->tags, "{}") != 0) json_object_set_new(o, "tags", parsed(x->tags));
    set_str(o, "split", x->split);
    set_str(o, "created_at", x->created_at);
    return emit(o);
}

static Err out_score(void *ctx, const StoreScore *sc) {
    (void)ctx;
    json_t *o = record("score", 0);
    json_object_set_new(o, "response_id", json_integer(sc->response_id));
    set_str(o, "model", sc->model);
    json_object_set_new(o, "score", json_real(sc->score));
    return emit(o);
}

static Err out_run(void *ctx, const StoreRun *r) {
    (void)ctx;
    json_t *o = record("run", r->id);
    set_str(o, "program", r->program);
    if (r->iteration >= 0) json_object_set_new(o, "iteration", json_integer(r->iteration));
    set_str(o, "config", r->config);
    set_str(o, "inputs", r->inputs);
    set_str(o, "outputs", r->outputs);
    set_str(o, "started_at", r->started_at);
    set_str(o, "ended_at", r->ended_at);
    set_str(o, "status", r->status);
    return emit(o);
}

static Err out_metric(void *ctx, const StoreMetric *m) {
    (void)ctx;
    json_t *o = record("metric", 0);
    json_object_set_new(o, "run_id", json_integer(m->run_id));
    json_object_set_new(o, "step", json_integer(m->step));
    set_str(o, "name", m->name);
    json_object_set_new(o, "value", json_real(m->value));
    return emit(o);
}

static StoreFilter filter_of(const Options *opt) {
    StoreFilter f = store_filter_any();
    f.split = opt->split;
    f.iteration = opt->iteration;
    f.dimension = opt->dimension;
    f.model = opt->model;
    f.source = opt->source;
    f.limit = opt->limit;
    return f;
}

Err cmd_export(const Options *opt) {
    const char *t = opt->table ? opt->table : "all";
    int all = strcmp(t, "all") == 0;
    static const char *const TABLES[] = {"all", "prompts", "responses", "comparisons", "sft_examples",
                                         "scores", "runs", "metrics", NULL};
    int known = 0;
    for (const char *const *k = TABLES; *k; k++) known |= strcmp(*k, t) == 0;
    if (!known)
        return err_set(ERR_INPUT, "--table: unknown table \"%s\" (all, prompts, responses, comparisons, "
                                  "sft_examples, scores, runs, metrics)", t);
    Store *db;
    Err e = store_open(&db, opt->db_path);
    if (e != ERR_OK) return e;
    StoreFilter f = filter_of(opt);
    /* One read transaction, so the tables agree with each other even while someone imports. */
    if ((e = store_begin_read(db)) != ERR_OK) goto out;
    if (e == ERR_OK && (all || !strcmp(t, "prompts"))) e = store_prompts_each(db, &f, out_prompt, NULL);
    if (e == ERR_OK && (all || !strcmp(t, "responses"))) e = store_responses_each(db, &f, out_response, NULL);
    if (e == ERR_OK && (all || !strcmp(t, "comparisons")))
        e = store_comparisons_each(db, &f, out_comparison, NULL);
    if (e == ERR_OK && (all || !strcmp(t, "sft_examples"))) e = store_sft_each(db, &f, out_sft, NULL);
    if (e == ERR_OK && !strcmp(t, "scores")) e = store_scores_each(db, &f, out_score, NULL);
    if (e == ERR_OK && !strcmp(t, "runs")) e = store_runs_each(db, &f, out_run, NULL);
    if (e == ERR_OK && !strcmp(t, "metrics")) e = store_metrics_each(db, 0, out_metric, NULL);
    store_rollback(db); /* nothing was written */
    if (e == ERR_OK && fflush(stdout) != 0) e = err_set(ERR_RUNTIME, "writing stdout failed");
out:
    store_close(db);
    return e;
}

/* ---- stats ---------------------------------------------------------------------------------------- */

typedef struct {
    char key[32], value[64];
    int64_t n;
    double turns, prompt_words, response_words;
} Group;

typedef struct {
    Group *g;
    size_t n, cap;
} Groups;

static Group *group_get(Groups *gs, const char *key, const char *value) {
    for (size_t i = 0; i < gs->n; i++)
        if (!strcmp(gs->g[i].key, key) && !strcmp(gs->g[i].value, value)) return &gs->g[i];
    if (gs->n == gs->cap) {
        gs->cap = gs->cap ? 2 * gs->cap : 32;
        gs->g = xrealloc(gs->g, gs->cap * sizeof *gs->g);
    }
    Group *g = &gs->g[gs->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->key, sizeof g->key, "%s", key);
    snprintf(g->value, sizeof g->value, "%s", value);
    return g;
}

static int64_t words(const char *s) {
    int64_t n = 0;
    for (int in = 0; *s; s++) {
        int space = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        n += !space && !in;
        in = !space;
    }
    return n;
}

static const char *safety_bin(int chosen, int rejected) {
    if (chosen == STORE_SAFE_UNKNOWN || rejected == STORE_SAFE_UNKNOWN) return "unlabelled";
    if (chosen && rejected) return "both safe";
    if (chosen) return "chosen safe, rejected unsafe";
    if (rejected) return "chosen unsafe, rejected safe";
    return "both unsafe";
}

static Err stat_comparison(void *ctx, const StoreComparisonRow *c) {
    Groups *gs = ctx;
    json_t *d = parsed(c->prompt.dialogue);
    size_t turns = json_array_size(d);
    int64_t pw = words(c->prompt.system ? c->prompt.system : "");
    for (size_t i = 0; i < turns; i++)
        pw += words(json_string_value(json_object_get(json_array_get(d, i), "content")));
    json_decref(d);
    char rating[8], iteration[24];
    snprintf(rating, sizeof rating, "%d", c->c.rating);
    snprintf(iteration, sizeof iteration, "%lld", (long long)c->c.iteration);
    const char *keys[][2] = {{"all", "all"},
                             {"dimension", c->c.dimension},
                             {"rating", rating},
                             {"split", c->c.split ? c->c.split : "none"},
                             {"iteration", iteration},
                             {"safety", safety_bin(c->c.chosen_safe, c->c.rejected_safe)}};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        Group *g = group_get(gs, keys[k][0], keys[k][1]);
        g->n++;
        g->turns += (double)(turns + 1) / 2; /* user turns = exchanges, counting the answer's */
        g->prompt_words += (double)pw;
        g->response_words += (double)(words(c->chosen) + words(c->rejected)) / 2;
    }
    return ERR_OK;
}

Err cmd_stats(const Options *opt) {
    Store *db;
    Err e = store_open(&db, opt->db_path);
    if (e != ERR_OK) return e;
    static const char *const TABLES[] = {"prompts", "responses", "comparisons", "scores",
                                         "sft_examples", "runs", "metrics"};
    Groups gs = {0};
    StoreFilter f = filter_of(opt);
    if ((e = store_begin_read(db)) != ERR_OK) goto out;
    printf("table\trows\n");
    for (size_t i = 0; i < sizeof TABLES / sizeof TABLES[0] && e == ERR_OK; i++) {
        int64_t n;
        if ((e = store_count(db, TABLES[i], &n)) == ERR_OK) printf("%s\t%lld\n", TABLES[i], (long long)n);
    }
    if (e == ERR_OK) e = store_comparisons_each(db, &f, stat_comparison, &gs);
    store_rollback(db);
    if (e != ERR_OK) goto out;
    printf("\ngroup\tvalue\tcomparisons\tavg_turns\tavg_words_example\tavg_words_prompt\tavg_words_response\n");
    for (size_t i = 0; i < gs.n; i++) {
        Group *g = &gs.g[i];
        double n = (double)g->n;
        printf("%s\t%s\t%lld\t%.1f\t%.1f\t%.1f\t%.1f\n", g->key, g->value, (long long)g->n, g->turns / n,
               (g->prompt_words + g->response_words) / n, g->prompt_words / n, g->response_words / n);
    }
out:
    free(gs.g);
    store_close(db);
    return e;
}

/* ---- split ---------------------------------------------------------------------------------------- */

/* FNV-1a over the text then a SplitMix64 finaliser, so nearby seeds give unrelated splits. */
static uint64_t hash_text(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

typedef struct {
    const Options *opt;
    int64_t *ids;
    const char **splits;
    size_t n, cap;
    int64_t kept;
} SplitPlan;

static Err plan_prompt(void *ctx, const StorePrompt *p) {
    SplitPlan *sp = ctx;
    if (p->split && !sp->opt->force) {
        sp->kept++;
        return ERR_OK;
    }
    double u = (double)(hash_text(p->dialogue, sp->opt->seed) >> 11) * 0x1.0p-53;
    if (sp->n == sp->cap) {
        sp->cap = sp->cap ? 2 * sp->cap : 256;
        sp->ids = xrealloc(sp->ids, sp->cap * sizeof *sp->ids);
        sp->splits = xrealloc(sp->splits, sp->cap * sizeof *sp->splits);
    }
    sp->ids[sp->n] = p->id;
    sp->splits[sp->n++] = u < sp->opt->test_fraction ? "test" : "train";
    return ERR_OK;
}

Err cmd_split(const Options *opt) {
    if (!(opt->test_fraction >= 0 && opt->test_fraction <= 1))
        return err_set(ERR_INPUT, "--test-fraction must be in [0, 1]");
    Store *db;
    Err e = store_open(&db, opt->db_path);
    if (e != ERR_OK) return e;
    SplitPlan sp = {.opt = opt};
    int64_t test = 0;
    /* Plan first, then write: updating the table a walk is reading is asking for trouble. */
    if ((e = store_begin(db)) != ERR_OK) goto out;
    if ((e = store_prompts_each(db, NULL, plan_prompt, &sp)) != ERR_OK) goto fail;
    for (size_t i = 0; i < sp.n; i++) {
        if ((e = store_prompt_set_split(db, sp.ids[i], sp.splits[i])) != ERR_OK) goto fail;
        test += sp.splits[i][1] == 'e';
    }
    if ((e = store_commit(db)) != ERR_OK) goto out;
    printf("assigned\t%zu\ntrain\t%lld\ntest\t%lld\nkept\t%lld\n", sp.n, (long long)(sp.n - (size_t)test),
           (long long)test, (long long)sp.kept);
    goto out;
fail:
    store_rollback(db);
out:
    free(sp.ids);
    free(sp.splits);
    store_close(db);
    return e;
}
