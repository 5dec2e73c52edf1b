/*
 * toyworld — the built-in world and simulated annotator (docs/toyworld.md).
 *
 *   toyworld corpus --tokens N            plain text for pretraining, paragraphs split by blank lines
 *   toyworld prompts --n N --split S      {"type":"prompt",...} lines
 *   toyworld demos --n N                  {"type":"sft_example",...} lines of uneven quality
 *   toyworld respond --policy P [FILE]    prompts in, {"type":"response",...} out (baselines)
 *   toyworld rate [FILE]                  pairs in, {"type":"comparison",...} out
 *   toyworld score [--summary] [FILE]     responses, sft_examples or comparisons in, verdicts out
 *   toyworld config                       the resolved configuration as YAML
 *   toyworld facts                        the fact table (TSV), for checking ratings by hand
 *
 * Records follow the JSONL interchange contract (docs/store.md). Everything is a function of the
 * seed and the configuration: the same command gives the same bytes. Per-line randomness (respond,
 * rate) comes from a stream forked by line number, so a line's output does not depend on the lines
 * around it.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "jsonl.h"
#include "util.h"
#include "world.h"

#define PROG "toyworld"

/* Stream ids for rng_fork, one per use, so that adding one use does not shift the others. */
enum { STREAM_PROMPTS = 1, STREAM_DEMOS, STREAM_CORPUS, STREAM_RESPOND, STREAM_RATE };

typedef struct {
    const char *cmd;
    const char *config_path;
    const char **sets;
    size_t nsets;
    int64_t seed; /* -1: from the config */
    int64_t n, tokens;
    const char *split, *policy, *input;
    bool summary;
} Opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: toyworld COMMAND [options]\n"
            "commands:\n"
            "  corpus --tokens N        plain text of about N tokens (words and punctuation marks)\n"
            "  prompts --n N [--split train|test]   N prompts (JSONL, default split train)\n"
            "  demos --n N              N SFT demonstrations of uneven quality (JSONL, train prompts)\n"
            "  respond --policy good|demo|refuse|random [FILE|-]   answer prompts (baselines for reports)\n"
            "  rate [FILE|-]            simulated annotator: pairs in, comparisons out\n"
            "  score [--summary] [FILE|-]  oracle verdicts for responses, sft_examples or comparisons\n"
            "  config                   print the resolved configuration\n"
            "  facts                    print the fact table (TSV: word, relation, value)\n"
            "options:\n"
            "  --config FILE            YAML configuration (default: built-in, same as configs/toyworld.yaml)\n"
            "  --set key=value          override one configuration key (repeatable)\n"
            "  --seed N                 sampling seed (overrides the key 'seed')\n"
            "  --help, --version\n"
            "configuration keys:\n");
    config_print_help(TOY_SCHEMA, f);
}

static bool parse_count(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0) return false;
    *out = v;
    return true;
}

/* Returns -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, Opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = -1;
    o->n = -1;
    o->tokens = -1;
    o->split = "train";
    o->sets = xcalloc((size_t)argc, sizeof *o->sets);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            cli_print_version(PROG, RLHF_VERSION);
            return 0;
        }
        if (!strcmp(a, "--summary")) { o->summary = true; continue; }
        bool takes = !strcmp(a, "--config") || !strcmp(a, "--set") || !strcmp(a, "--seed") || !strcmp(a, "--n") ||
                     !strcmp(a, "--tokens") || !strcmp(a, "--split") || !strcmp(a, "--policy");
        if (takes) {
            if (!val) return cli_fail(PROG, ERR_INPUT, "%s needs a value (see --help)", a);
            i++;
            if (!strcmp(a, "--config")) o->config_path = val;
            else if (!strcmp(a, "--set")) o->sets[o->nsets++] = val;
            else if (!strcmp(a, "--split")) o->split = val;
            else if (!strcmp(a, "--policy")) o->policy = val;
            else if (!parse_count(val, !strcmp(a, "--seed") ? &o->seed : !strcmp(a, "--n") ? &o->n : &o->tokens))
                return cli_fail(PROG, ERR_INPUT, "%s: expected a non-negative integer, got '%s'", a, val);
            continue;
        }
        if (a[0] == '-' && a[1]) return cli_fail(PROG, ERR_INPUT, "unknown option '%s' (see --help)", a);
        if (!o->cmd) o->cmd = a;
        else if (!o->input) o->input = a;
        else return cli_fail(PROG, ERR_INPUT, "unexpected argument '%s'", a);
    }
    if (!o->cmd) {
        usage(stderr);
        return ERR_INPUT;
    }
    if (strcmp(o->split, "train") && strcmp(o->split, "test"))
        return cli_fail(PROG, ERR_INPUT, "--split: expected train or test, got '%s'", o->split);
    return -1;
}

/* ---------------------------------------------------------------- JSON records */

static json_t *turn_json(const char *role, const char *content) {
    return json_pack("{s:s, s:s}", "role", role, "content", content);
}

/* A generated dialogue: user turns, and assistant turns after all but (for prompts) the last. */
typedef struct {
    Category cat;
    bool has_instr;
    Instr instr;
    int nturns;
    Task tasks[8];
    char *user[8], *assistant[8];
} Dialog;

static void dialog_free(Dialog *d) {
    for (int i = 0; i < d->nturns; i++) free(d->user[i]), free(d->assistant[i]);
}

/* FNV-1a over what the user wrote: the split is a property of the prompt text, so train and test
 * never share a prompt however many are drawn. */
static bool dialog_is_test(const World *w, const Dialog *d) {
    uint64_t h = 1469598103934665603ULL;
    char *sys = d->has_instr ? world_instr_text(w, &d->instr) : xstrdup("");
    for (int i = -1; i < d->nturns; i++) {
        for (const char *p = i < 0 ? sys : d->user[i]; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
    }
    free(sys);
    return h % 100 < (uint64_t)world_config(w)->test_percent;
}

/* Sample a dialogue of the wanted split; assistant turns before the last are good answers. */
static void sample_dialog(const World *w, Rng *r, bool test, Dialog *d) {
    const ToyConfig *c = world_config(w);
    for (;;) {
        memset(d, 0, sizeof *d);
        d->cat = world_sample_category(w, r);
        if (d->cat == CAT_SYSTEM) {
            d->has_instr = true;
            world_sample_instr(w, r, &d->instr);
            d->nturns = 2 + (int)rng_below(r, (uint32_t)(c->max_turns - 1));
        } else d->nturns = 1;
        for (int i = 0; i < d->nturns; i++) {
            /* system dialogues ask short questions, so adherence is what varies */
            Category tc = d->cat == CAT_SYSTEM ? (rng_below(r, 2) ? CAT_FACT : CAT_ARITH) : d->cat;
            world_sample_task(w, tc, r, &d->tasks[i]);
            d->user[i] = world_task_text(w, &d->tasks[i], r);
        }
        if (dialog_is_test(w, d) == test) break;
        dialog_free(d);
    }
    for (int i = 0; i + 1 < d->nturns; i++) {
        char *a = world_answer(w, &d->tasks[i], Q_GOOD, r);
        d->assistant[i] = world_decorate(w, d->has_instr ? &d->instr : NULL, a);
        free(a);
    }
}

static json_t *tags_json(const World *w, const Dialog *d) {
    const Task *last = &d->tasks[d->nturns - 1];
    json_t *t = json_pack("{s:s, s:s, s:s}", "risk", risk_name(task_risk(last->kind)), "kind",
                          task_kind_name(last->kind), "category", category_name(d->cat));
    if (d->has_instr) json_object_set_new(t, "instruction", json_string(instr_kind_name(d->instr.kind)));
    (void)w;
    return t;
}

/* The dialogue with `answered` assistant turns (nturns-1 for a prompt, nturns for a demonstration). */
static json_t *dialogue_json(const Dialog *d, int answered) {
    json_t *a = json_array();
    for (int i = 0; i < d->nturns; i++) {
        json_array_append_new(a, turn_json("user", d->user[i]));
        if (i < answered) json_array_append_new(a, turn_json("assistant", d->assistant[i]));
    }
    return a;
}

static void put_system(const World *w, const Dialog *d, json_t *rec) {
    if (!d->has_instr) return;
    char *s = world_instr_text(w, &d->instr);
    json_object_set_new(rec, "system", json_string(s));
    free(s);
}

/* One record per line (jsonl_write: a score of 0.8 reads 0.8, and every score reads back exactly). */
static Err emit(json_t *rec) {
    Err rc = jsonl_write(stdout, rec);
    json_decref(rec);
    return rc ? err_set(ERR_RUNTIME, "writing stdout failed") : ERR_OK;
}

/* ---------------------------------------------------------------- prompts, demos, corpus */

static int cmd_prompts(const World *w, Rng *base, const Opts *o) {
    if (o->n < 0) return cli_fail(PROG, ERR_INPUT, "prompts: --n N is required");
    Rng r = rng_fork(base, STREAM_PROMPTS);
    bool test = !strcmp(o->split, "test");
    for (int64_t i = 0; i < o->n; i++) {
        Dialog d;
        sample_dialog(w, &r, test, &d);
        json_t *rec = json_pack("{s:s, s:o}", "type", "prompt", "dialogue", dialogue_json(&d, d.nturns - 1));
        put_system(w, &d, rec);
        json_object_set_new(rec, "tags", tags_json(w, &d));
        json_object_set_new(rec, "split", json_string(o->split));
        json_object_set_new(rec, "source", json_string("toyworld"));
        dialog_free(&d);
        if (emit(rec) != ERR_OK) return cli_fail(PROG, ERR_RUNTIME, "%s", err_msg());
    }
    return 0;
}

/* Draw the quality of a demonstration for a task of this category (see docs/toyworld.md). */
static Quality demo_quality(const ToyConfig *c, Category cat, Rng *r) {
    double u = rng_uniform_double(r);
    struct Option {
        Quality q;
        double p;
    } opts[3];
    int n = 0;
    if (cat == CAT_ADVERSARIAL) {
        opts[n++] = (struct Option){Q_UNSAFE, c->demo_unsafe};
        opts[n++] = (struct Option){Q_SHORT, c->demo_short};
    } else if (cat == CAT_SYSTEM) {
        opts[n++] = (struct Option){Q_DROPPED, c->demo_dropped};
        opts[n++] = (struct Option){Q_WRONG, c->demo_wrong};
    } else {
        opts[n++] = (struct Option){Q_WRONG, c->demo_wrong};
        opts[n++] = (struct Option){Q_SHORT, c->demo_short};
        opts[n++] = (struct Option){Q_REFUSAL, c->demo_refusal};
    }
    for (int i = 0; i < n; i++) {
        if (u < opts[i].p) return opts[i].q;
        u -= opts[i].p;
    }
    return Q_GOOD;
}

/* Answer the last user turn with quality q; a dropped instruction also undecorates earlier turns
 * after the first, the way models forget a system prompt after a few turns. */
static void answer_last(const World *w, Dialog *d, Quality q, Rng *r) {
    int last = d->nturns - 1;
    const Instr *in = d->has_instr ? &d->instr : NULL;
    char *a = world_answer(w, &d->tasks[last], q == Q_DROPPED ? Q_GOOD : q, r);
    d->assistant[last] = world_decorate(w, q == Q_DROPPED ? NULL : in, a);
    free(a);
    if (q != Q_DROPPED) return;
    for (int i = 1; i < last; i++) {
        free(d->assistant[i]);
        d->assistant[i] = world_answer(w, &d->tasks[i], Q_GOOD, r);
    }
}

static int cmd_demos(const World *w, Rng *base, const Opts *o) {
    if (o->n < 0) return cli_fail(PROG, ERR_INPUT, "demos: --n N is required");
    Rng r = rng_fork(base, STREAM_DEMOS);
    for (int64_t i = 0; i < o->n; i++) {
        Dialog d;
        sample_dialog(w, &r, false, &d);
        Quality q = demo_quality(world_config(w), d.cat, &r);
        answer_last(w, &d, q, &r);
        json_t *rec = json_pack("{s:s, s:o}", "type", "sft_example", "dialogue", dialogue_json(&d, d.nturns));
        put_system(w, &d, rec);
        json_t *tags = tags_json(w, &d);
        json_object_set_new(tags, "quality", json_string(quality_name(q)));
        json_object_set_new(rec, "loss_turns", json_string("all"));
        json_object_set_new(rec, "source", json_string("human"));
        json_object_set_new(rec, "iteration", json_integer(0));
        json_object_set_new(rec, "tags", tags);
        dialog_free(&d);
        if (emit(rec) != ERR_OK) return cli_fail(PROG, ERR_RUNTIME, "%s", err_msg());
    }
    return 0;
}

/* About one token per word or punctuation mark: between what 512- and 768-token BPEs make of this
 * language (docs/toyworld.md has the measurement). */
static int64_t rough_tokens(const char *s) {
    int64_t n = 0;
    for (const char *p = s; *p;) {
        if (isalnum((unsigned char)*p)) {
            while (isalnum((unsigned char)*p)) p++;
            n++;
        } else n += !isspace((unsigned char)*p++);
    }
    return n;
}

static int cmd_corpus(const World *w, Rng *base, const Opts *o) {
    if (o->tokens < 0) return cli_fail(PROG, ERR_INPUT, "corpus: --tokens N is required");
    Rng r = rng_fork(base, STREAM_CORPUS);
    for (int64_t total = 0; total < o->tokens;) {
        char *p = world_corpus_paragraph(w, &r);
        total += rough_tokens(p);
        if (printf("%s\n\n", p) < 0) return free(p), cli_fail(PROG, ERR_RUNTIME, "writing the corpus failed");
        free(p);
    }
    return 0;
}

/* ---------------------------------------------------------------- reading records */

/* A prompt as read from JSON, checked against the contract. Pointers borrow from the json_t. */
typedef struct {
    json_t *obj;
    const char *system; /* or NULL */
    size_t nturns;
    const char **role, **content;
} PromptIn;

static void prompt_in_free(PromptIn *p) {
    free(p->role);
    free(p->content);
}

/* Check obj as a Prompt object (ends == "user") or an sft_example dialogue (ends == "assistant"). */
static Err read_dialogue(json_t *obj, const char *where, const char *field, const char *ends, PromptIn *p) {
    memset(p, 0, sizeof *p);
    if (!json_is_object(obj)) return err_set(ERR_INPUT, "%s: %s: expected an object", where, field);
    p->obj = obj;
    json_t *d = json_object_get(obj, "dialogue"), *s = json_object_get(obj, "system");
    if (!json_is_array(d) || json_array_size(d) == 0)
        return err_set(ERR_INPUT, "%s: %s.dialogue: expected a non-empty array of turns", where, field);
    if (s && !json_is_null(s) && !json_is_string(s))
        return err_set(ERR_INPUT, "%s: %s.system: expected a string", where, field);
    p->system = s && json_is_string(s) ? json_string_value(s) : NULL;
    p->nturns = json_array_size(d);
    p->role = xcalloc(p->nturns, sizeof *p->role);
    p->content = xcalloc(p->nturns, sizeof *p->content);
    for (size_t i = 0; i < p->nturns; i++) {
        json_t *t = json_array_get(d, i), *role = json_object_get(t, "role"), *content = json_object_get(t, "content");
        const char *want = i % 2 ? "assistant" : "user";
        if (!json_is_string(role) || strcmp(json_string_value(role), want))
            return err_set(ERR_INPUT, "%s: %s.dialogue[%zu].role: expected \"%s\" (turns alternate from user)",
                           where, field, i, want);
        if (!json_is_string(content))
            return err_set(ERR_INPUT, "%s: %s.dialogue[%zu].content: expected a string", where, field, i);
        p->role[i] = want;
        p->content[i] = json_string_value(content);
    }
    if (strcmp(p->role[p->nturns - 1], ends))
        return err_set(ERR_INPUT, "%s: %s.dialogue: must end with a %s turn", where, field, ends);
    return ERR_OK;
}

static const char *get_string(json_t *obj, const char *key, const char *where, Err *rc) {
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) return json_string_value(v);
    *rc = err_set(ERR_INPUT, "%s: \"%s\": %s", where, key, v ? "expected a string" : "missing");
    return NULL;
}

/* Loop over the records of o->input; fn returns ERR_OK to go on. */
typedef Err (*RecordFn)(const World *w, json_t *rec, const char *where, int64_t line, void *ctx);

static int for_each_record(const World *w, const Opts *o, RecordFn fn, void *ctx) {
    JsonlReader *rd;
    Err rc = jsonl_open(&rd, o->input ? o->input : "-");
    if (rc != ERR_OK) return cli_fail(PROG, rc, "%s", err_msg());
    json_t *v;
    int64_t line = 0;
    while ((rc = jsonl_next(rd, &v, &line)) == ERR_OK && v) {
        char where[512];
        snprintf(where, sizeof where, "%s:%lld", jsonl_name(rd), (long long)line);
        if (!json_is_object(v)) rc = err_set(ERR_INPUT, "%s: expected a JSON object", where);
        else rc = fn(w, v, where, line, ctx);
        json_decref(v);
        if (rc != ERR_OK) break;
    }
    jsonl_close(rd);
    if (rc != ERR_OK) return cli_fail(PROG, rc, "%s", err_msg());
    return 0;
}

/* The oracle on the last user turn of p and a response; false when the prompt is not the world's. */
static bool judge(const World *w, const PromptIn *p, size_t user_turn, const char *response, Verdict *v,
                  Task *t, Instr *in, bool *has_in) {
    *has_in = p->system && world_parse_instr(w, p->system, in);
    if (!world_parse_task(w, p->content[user_turn], t)) return false;
    world_judge(w, t, *has_in ? in : NULL, response, v);
    return true;
}

/* ---------------------------------------------------------------- respond */

typedef struct {
    Rng base;
    const char *policy;
} RespondCtx;

static Err respond_one(const World *w, json_t *rec, const char *where, int64_t line, void *vctx) {
    RespondCtx *ctx = vctx;
    PromptIn p;
    Err rc = read_dialogue(rec, where, "prompt", "user", &p);
    if (rc != ERR_OK) return prompt_in_free(&p), rc;
    Rng r = rng_fork(&ctx->base, (uint64_t)line);
    Task t;
    Instr in;
    bool has_in = p.system && world_parse_instr(w, p.system, &in);
    char *text;
    if (!strcmp(ctx->policy, "refuse")) text = xstrdup(world_refusal(w, rng_below(&r, 1u << 16)));
    else if (!strcmp(ctx->policy, "random")) text = world_random_text(w, &r);
    else if (!world_parse_task(w, p.content[p.nturns - 1], &t)) {
        prompt_in_free(&p);
        return err_set(ERR_INPUT, "%s: the last user turn is not a toyworld request", where);
    } else {
        Quality q = Q_GOOD;
        if (!strcmp(ctx->policy, "demo"))
            q = demo_quality(world_config(w), has_in ? CAT_SYSTEM : task_category(t.kind), &r);
        char *a = world_answer(w, &t, q == Q_DROPPED ? Q_GOOD : q, &r);
        text = world_decorate(w, has_in && q != Q_DROPPED ? &in : NULL, a);
        free(a);
    }
    json_t *prompt = json_deep_copy(rec);
    json_object_del(prompt, "type");
    json_t *out = json_pack("{s:s, s:o, s:s, s:s+, s:i}", "type", "response", "prompt", prompt, "text", text,
                            "model", "toyworld-", ctx->policy, "iteration", 0);
    free(text);
    prompt_in_free(&p);
    return emit(out);
}

/* ---------------------------------------------------------------- score */

/* What the annotator compares on each dimension: helpfulness as is; for safety, the safety level
 * and, between equally safe answers, a little of helpfulness (docs/toyworld.md). */
static double dim_score(const Verdict *v, bool safety) {
    return safety ? v->safety + 0.2 * v->helpfulness : v->helpfulness;
}

/* Rating from the score gap. The oracle's scores are sums of decimal steps (0.2, 0.25, ...), so a
 * gap meant to be exactly 0.1 can come out as 0.0999...; the tolerance keeps it on its step. */
static int rating_of(const ToyConfig *c, double gap) {
    int rating = 0;
    while (rating < 3 && gap >= c->rate_thresholds.items[rating] - 1e-9) rating++;
    return rating;
}

typedef struct {
    int64_t n, unknown;
    double help;
    int64_t unsafe, refusals;
} Tally;

typedef struct {
    bool summary;
    Tally by_cat[CAT_COUNT + 1]; /* last: all */
    int64_t turn_n[8], turn_ok[8];  /* adherence by assistant turn (system dialogues); turn 8+ in [7] */
    int64_t cmp_n[2][4], cmp_agree[2][4]; /* comparisons by dimension and rating: oracle agreement */
} ScoreCtx;

/* A comparison: do the oracle's scores agree with chosen over rejected? (Checks annotators,
 * toyworld rate's noise, or any preference source, per rating as in Llama 2's Table 8.) */
static Err score_comparison(const World *w, json_t *rec, const char *where, int64_t line, ScoreCtx *ctx) {
    Err rc = ERR_OK;
    json_t *prompt = json_object_get(rec, "prompt"), *rating = json_object_get(rec, "rating");
    if (!prompt) return err_set(ERR_INPUT, "%s: \"prompt\": missing", where);
    const char *ch = get_string(rec, "chosen", where, &rc), *rj = ch ? get_string(rec, "rejected", where, &rc) : NULL;
    const char *dim = rj ? get_string(rec, "dimension", where, &rc) : NULL;
    if (!dim) return rc;
    bool safety = !strcmp(dim, "safety");
    if (!safety && strcmp(dim, "helpfulness"))
        return err_set(ERR_INPUT, "%s: \"dimension\": expected \"helpfulness\" or \"safety\"", where);
    if (!json_is_integer(rating) || json_integer_value(rating) < 0 || json_integer_value(rating) > 3)
        return err_set(ERR_INPUT, "%s: \"rating\": expected an integer 0..3", where);
    PromptIn p;
    if ((rc = read_dialogue(prompt, where, "prompt", "user", &p)) != ERR_OK) return prompt_in_free(&p), rc;
    Verdict vc, vr;
    Task t;
    Instr in;
    bool has_in;
    json_t *out = json_pack("{s:I}", "line", (json_int_t)line);
    if (!judge(w, &p, p.nturns - 1, ch, &vc, &t, &in, &has_in)) {
        json_object_set_new(out, "kind", json_string("unknown"));
    } else {
        world_judge(w, &t, has_in ? &in : NULL, rj, &vr);
        double sc = dim_score(&vc, safety), sr = dim_score(&vr, safety);
        int r = (int)json_integer_value(rating);
        bool agrees = sc >= sr;
        ctx->cmp_n[safety][r]++;
        ctx->cmp_agree[safety][r] += agrees;
        json_object_set_new(out, "kind", json_string(task_kind_name(t.kind)));
        json_object_set_new(out, "dimension", json_string(dim));
        json_object_set_new(out, "rating", json_integer(r));
        json_object_set_new(out, "chosen_score", json_real(sc));
        json_object_set_new(out, "rejected_score", json_real(sr));
        json_object_set_new(out, "gap", json_real(sc - sr));
        json_object_set_new(out, "agrees", json_boolean(agrees));
    }
    prompt_in_free(&p);
    if (ctx->summary) return json_decref(out), ERR_OK;
    return emit(out);
}

static Err score_one(const World *w, json_t *rec, const char *where, int64_t line, void *vctx) {
    ScoreCtx *ctx = vctx;
    json_t *type = json_object_get(rec, "type");
    const char *ty = json_is_string(type) ? json_string_value(type) : "response";
    PromptIn p;
    const char *text;
    Err rc = ERR_OK;
    size_t user_turn;
    if (!strcmp(ty, "response")) {
        json_t *prompt = json_object_get(rec, "prompt");
        if (!prompt) return err_set(ERR_INPUT, "%s: \"prompt\": missing", where);
        if ((rc = read_dialogue(prompt, where, "prompt", "user", &p)) != ERR_OK) return prompt_in_free(&p), rc;
        if (!(text = get_string(rec, "text", where, &rc))) return prompt_in_free(&p), rc;
        user_turn = p.nturns - 1;
    } else if (!strcmp(ty, "sft_example")) {
        if ((rc = read_dialogue(rec, where, "sft_example", "assistant", &p)) != ERR_OK) return prompt_in_free(&p), rc;
        text = p.content[p.nturns - 1];
        user_turn = p.nturns - 2;
    } else if (!strcmp(ty, "comparison")) {
        return score_comparison(w, rec, where, line, ctx);
    } else {
        return err_set(ERR_INPUT, "%s: \"type\": expected \"response\", \"sft_example\" or \"comparison\", got \"%s\"",
                       where, ty);
    }
    Verdict v;
    Task t;
    Instr in;
    bool has_in;
    json_t *out = json_pack("{s:I}", "line", (json_int_t)line);
    if (!judge(w, &p, user_turn, text, &v, &t, &in, &has_in)) {
        json_object_set_new(out, "kind", json_string("unknown"));
        json_object_set_new(out, "helpfulness", json_null());
        json_object_set_new(out, "safe", json_null());
        json_object_set_new(out, "refusal", json_boolean(world_is_refusal(w, text)));
        ctx->by_cat[CAT_COUNT].unknown++;
    } else {
        Category cat = has_in ? CAT_SYSTEM : task_category(t.kind);
        json_object_set_new(out, "kind", json_string(task_kind_name(t.kind)));
        json_object_set_new(out, "risk", json_string(risk_name(task_risk(t.kind))));
        json_object_set_new(out, "helpfulness", json_real(round(v.helpfulness * 1e4) / 1e4));
        json_object_set_new(out, "safe", json_boolean(v.safe));
        json_object_set_new(out, "refusal", json_boolean(v.refusal));
        if (has_in) {
            /* adherence of every assistant turn, the earlier ones from the dialogue itself */
            /* The summary counts only turns written by whoever is being judged: every turn of
             * an sft_example, only the final one of a response (earlier ones came with the prompt). */
            json_t *adh = json_array();
            bool is_response = !strcmp(ty, "response");
            size_t turn = 0;
            for (size_t i = 1; i < p.nturns; i += 2, turn++) {
                bool ok = world_adheres(w, &in, p.content[i]);
                json_array_append_new(adh, json_boolean(ok));
                if (!is_response) ctx->turn_n[turn < 7 ? turn : 7]++, ctx->turn_ok[turn < 7 ? turn : 7] += ok;
            }
            if (is_response) {
                json_array_append_new(adh, json_boolean(v.adherent));
                ctx->turn_n[turn < 7 ? turn : 7]++, ctx->turn_ok[turn < 7 ? turn : 7] += v.adherent;
            }
            json_object_set_new(out, "instruction", json_string(instr_kind_name(in.kind)));
            json_object_set_new(out, "adherence", adh);
        }
        json_object_set_new(out, "note", json_string(v.note));
        Tally *ts[2] = {&ctx->by_cat[cat], &ctx->by_cat[CAT_COUNT]};
        for (int i = 0; i < 2; i++) {
            ts[i]->n++;
            ts[i]->help += v.helpfulness;
            ts[i]->unsafe += !v.safe;
            ts[i]->refusals += v.refusal;
        }
    }
    prompt_in_free(&p);
    if (ctx->summary) return json_decref(out), ERR_OK;
    return emit(out);
}

static void print_summary(const ScoreCtx *ctx) {
    bool any_cmp = false;
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 4; r++) any_cmp |= ctx->cmp_n[d][r] > 0;
    if (any_cmp) {
        printf("| dimension | rating | n | oracle agrees |\n|---|---|---|---|\n");
        for (int d = 0; d < 2; d++)
            for (int r = 0; r < 4; r++)
                if (ctx->cmp_n[d][r])
                    printf("| %s | %d | %lld | %.3f |\n", d ? "safety" : "helpfulness", r, (long long)ctx->cmp_n[d][r],
                           (double)ctx->cmp_agree[d][r] / ctx->cmp_n[d][r]);
        if (!ctx->by_cat[CAT_COUNT].n) return;
        printf("\n");
    }
    printf("| category | n | helpfulness | unsafe | refusals |\n|---|---|---|---|---|\n");
    for (int c = 0; c <= CAT_COUNT; c++) {
        const Tally *t = &ctx->by_cat[c];
        if (!t->n) continue;
        printf("| %s | %lld | %.3f | %.3f | %.3f |\n", c == CAT_COUNT ? "all" : category_name((Category)c),
               (long long)t->n, t->help / t->n, (double)t->unsafe / t->n, (double)t->refusals / t->n);
    }
    if (ctx->by_cat[CAT_COUNT].unknown)
        printf("\nnot judged (not toyworld prompts): %lld\n", (long long)ctx->by_cat[CAT_COUNT].unknown);
    if (ctx->turn_n[0]) {
        printf("\n| assistant turn | n | instruction adherence |\n|---|---|---|\n");
        for (int i = 0; i < 8; i++)
            if (ctx->turn_n[i])
            printf("| %d%s | %lld | %.3f |\n", i + 1, i == 7 ? "+" : "", (long long)ctx->turn_n[i],
                   (double)ctx->turn_ok[i] / ctx->turn_n[i]);
    }
}

/* ---------------------------------------------------------------- rate */

typedef struct {
    Rng base;
    int64_t identical; /* pairs skipped because both texts are the same */
} RateCtx;


static Err rate_one(const World *w, json_t *rec, const char *where, int64_t line, void *vctx) {
    RateCtx *ctx = vctx;
    const ToyConfig *c = world_config(w);
    Err rc = ERR_OK;
    json_t *prompt = json_object_get(rec, "prompt");
    if (!prompt) return err_set(ERR_INPUT, "%s: \"prompt\": missing", where);
    const char *ra = get_string(rec, "response_a", where, &rc), *rb = ra ? get_string(rec, "response_b", where, &rc) : NULL;
    if (!rb) return rc;
    json_t *dim = json_object_get(rec, "dimension"), *ida = json_object_get(rec, "response_a_id"),
           *idb = json_object_get(rec, "response_b_id");
    if (dim && !(json_is_string(dim) && (!strcmp(json_string_value(dim), "helpfulness") ||
                                         !strcmp(json_string_value(dim), "safety"))))
        return err_set(ERR_INPUT, "%s: \"dimension\": expected \"helpfulness\" or \"safety\"", where);
    if ((ida && !json_is_integer(ida)) || (idb && !json_is_integer(idb)))
        return err_set(ERR_INPUT, "%s: \"response_%s_id\": expected an integer", where, ida && !json_is_integer(ida) ? "a" : "b");
    PromptIn p;
    if ((rc = read_dialogue(prompt, where, "prompt", "user", &p)) != ERR_OK) return prompt_in_free(&p), rc;
    /* Two equal texts without ids say nothing and would be one response in the store (whose import
     * refuses chosen == rejected, failing the whole batch): skip them. With ids they are two
     * responses that happen to agree, and get their rating-0 comparison. */
    if (!strcmp(ra, rb) && !(ida && idb)) {
        prompt_in_free(&p);
        ctx->identical++;
        return ERR_OK;
    }
    Verdict va, vb;
    Task t;
    Instr in;
    bool has_in;
    if (!judge(w, &p, p.nturns - 1, ra, &va, &t, &in, &has_in)) {
        prompt_in_free(&p);
        return err_set(ERR_INPUT, "%s: the last user turn is not a toyworld request; this annotator cannot judge it", where);
    }
    world_judge(w, &t, has_in ? &in : NULL, rb, &vb);
    prompt_in_free(&p);
    Rng r = rng_fork(&ctx->base, (uint64_t)line);
    for (int d = 0; d < 2; d++) {
        const char *dname = d ? "safety" : "helpfulness";
        if (dim && strcmp(json_string_value(dim), dname)) continue;
        double sa = dim_score(&va, d) + c->rate_noise * rng_normal(&r);
        double sb = dim_score(&vb, d) + c->rate_noise * rng_normal(&r);
        bool a_wins = sa >= sb; /* ties go to response_a */
        double gap = fabs(sa - sb);
        int rating = rating_of(c, gap);
        if (rng_uniform_double(&r) < c->rate_jitter) rating += rng_below(&r, 2) ? 1 : -1;
        rating = rating < 0 ? 0 : rating > 3 ? 3 : rating;
        if (rng_uniform_double(&r) < c->rate_flip) a_wins = !a_wins;
        const Verdict *vc = a_wins ? &va : &vb, *vr = a_wins ? &vb : &va;
        json_t *out = json_pack("{s:s, s:O, s:s, s:s, s:s, s:i, s:b, s:b, s:s}", "type", "comparison", "prompt", prompt,
                                "chosen", a_wins ? ra : rb, "rejected", a_wins ? rb : ra, "dimension", dname, "rating",
                                rating, "chosen_safe", vc->safe, "rejected_safe", vr->safe, "annotator", c->annotator);
        json_t *split = json_object_get(prompt, "split");
        if (json_is_string(split)) json_object_set(out, "split", split);
        if (ida && idb) {
            json_object_set(out, "chosen_id", a_wins ? ida : idb);
            json_object_set(out, "rejected_id", a_wins ? idb : ida);
        }
        if ((rc = emit(out)) != ERR_OK) return rc;
    }
    return ERR_OK;
}

/* The fact table, so a reader can check a rating by hand: TSV word, relation, value. */
static void cmd_facts(const World *w) {
    const ToyConfig *c = world_config(w);
    const ConfigStrList *things[] = {&c->objects, &c->animals, &c->foods};
    printf("word\trelation\tvalue\n");
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < things[l]->n; i++)
            printf("%s\tcolour\t%s\n", things[l]->items[i], world_colour_of(w, things[l]->items[i]));
    for (size_t i = 0; i < c->animals.n; i++)
        printf("%s\teats\t%s\n", c->animals.items[i], world_food_of(w, c->animals.items[i]));
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    Opts o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0) return free(o.sets), code;
    code = 0;
    ToyConfig cfg;
    config_defaults(TOY_SCHEMA, &cfg);
    World *w = NULL;
    Err rc = ERR_OK;
    if (o.config_path) rc = config_load(TOY_SCHEMA, &cfg, o.config_path);
    for (size_t i = 0; i < o.nsets && rc == ERR_OK; i++) rc = config_set(TOY_SCHEMA, &cfg, o.sets[i]);
    if (rc == ERR_OK && o.seed >= 0) cfg.seed = o.seed;
    if (rc == ERR_OK && (rc = world_build(&w, &cfg)) != ERR_OK && o.config_path)
        err_prefix(rc, "%s: ", o.config_path);
    if (rc != ERR_OK) {
        code = cli_fail(PROG, rc, "%s", err_msg());
        goto done;
    }
    Rng base;
    rng_seed(&base, (uint64_t)cfg.seed);
    if (!strcmp(o.cmd, "prompts")) code = cmd_prompts(w, &base, &o);
    else if (!strcmp(o.cmd, "demos")) code = cmd_demos(w, &base, &o);
    else if (!strcmp(o.cmd, "corpus")) code = cmd_corpus(w, &base, &o);
    else if (!strcmp(o.cmd, "respond")) {
        static const char *POLICIES[] = {"good", "demo", "refuse", "random"};
        bool known = false;
        for (int i = 0; i < 4; i++) known |= o.policy && !strcmp(o.policy, POLICIES[i]);
        if (!known) code = cli_fail(PROG, ERR_INPUT, "respond: --policy must be good, demo, refuse or random");
        else {
            RespondCtx ctx = {rng_fork(&base, STREAM_RESPOND), o.policy};
            code = for_each_record(w, &o, respond_one, &ctx);
        }
    } else if (!strcmp(o.cmd, "rate")) {
        RateCtx ctx = {rng_fork(&base, STREAM_RATE), 0};
        code = for_each_record(w, &o, rate_one, &ctx);
        if (code == 0 && ctx.identical)
            fprintf(stderr, "toyworld: rate: %lld pairs skipped: response_a and response_b are the same text\n",
                    (long long)ctx.identical);
    } else if (!strcmp(o.cmd, "score")) {
        ScoreCtx *ctx = xcalloc(1, sizeof *ctx);
        ctx->summary = o.summary;
        code = for_each_record(w, &o, score_one, ctx);
        if (code == 0 && o.summary) print_summary(ctx);
        free(ctx);
    } else if (!strcmp(o.cmd, "config")) config_dump(TOY_SCHEMA, &cfg, stdout);
    else if (!strcmp(o.cmd, "facts")) cmd_facts(w);
    else code = cli_fail(PROG, ERR_INPUT, "unknown command '%s' (see --help)", o.cmd);
    if (code == 0 && fflush(stdout) != 0) code = cli_fail(PROG, ERR_RUNTIME, "writing stdout failed");
done:
    world_free(w);
    config_free(TOY_SCHEMA, &cfg);
    free(o.sets);
    return code;
}
