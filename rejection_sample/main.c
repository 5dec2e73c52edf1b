/*
 * rejection_sample — best-of-K sampling scored by the reward models (Llama 2 §3.2.3).
 *
 *   rejection_sample --model POLICY --rm-helpfulness DIR [--rm-safety DIR] --db PATH --iteration N
 *                    [-K N] [--temperatures 0.8,1.0,...] [--pool latest|best|all] [--emit jsonl] [--out DIR]
 *                    [--candidates FILE] [FILE|-]
 *
 * The algorithm, as the paper runs it at each iteration:
 *   1. prompts: the store's (filters data.*), or Prompt objects as JSONL from FILE or - (stored first,
 *      so that answers and examples can refer to them);
 *   2. for each temperature, K samples per prompt from the policy, decoded together through the KV
 *      cache (gen.h: a sample depends on (seed, prompt id, sample number) only, not on the batch or
 *      the thread count; every temperature uses the same seed, so their curves share random numbers);
 *   3. every sample scored by the reward models (reward.h) and ranked by the combined reward
 *      (rsstats_rank_score: the safety score on a safety prompt — tags.risk in reward.safety_risks —
 *      or when the safety model finds the answer likely unsafe, the helpfulness score otherwise);
 *   4. every sample stored as a response (model = the policy's name, this iteration, its temperature)
 *      with one score row per reward model; with --pool best, the answers earlier iterations kept (the
 *      top sample per prompt of each earlier iteration, as Llama 2 pooled from RLHF V3 on: its fix for
 *      regressions when only the latest batch is used) are scored by the current reward models too
 *      and compete with the new ones; --pool all lets every earlier answer to the prompt compete (any
 *      model, iteration < N) — with an imperfect reward model, the more candidates, the likelier the
 *      arg-max is one it over-rates;
 *   5. per prompt, the arg-max of the combined reward becomes an sft_example (source "rs", this
 *      iteration, loss on the last assistant turn, tags.response_id = the kept response) for
 *      `sft --set data.sources=[rs]`;
 *   6. the best-of-N curves (rsstats.h: mean over prompts of the expected max and median reward of N
 *      of the K samples, N = 1..K, per temperature) are printed as a table and stored as metrics
 *      (step = N, names max_reward@T and median_reward@T), in the store and in <out>/metrics.tsv.
 *
 * All or nothing: steps 2-3 write nothing; the new samples (as responses), every candidate's scores,
 * the kept examples and the run's metrics go into the store in one transaction at the end, so an
 * interrupted run (a signal, a crash, a failing reward model) leaves none of them — only its row in
 * the runs table, status "running" or "failed" — and running it again gives exactly one set. The
 * store's write lock is held for those inserts only, never while the models run. Prompts read from
 * JSONL are the exception: they are put first (found or created by their content, so a rerun finds
 * the same rows), since their store ids seed the samples.
 *
 * --emit jsonl writes one pair per prompt on stdout — the kept answer against the lowest-ranked
 * answer with another text, with both response ids — for a rater:
 *     rejection_sample ... --emit jsonl | toyworld rate | prefs_db import -
 * The table then goes to stderr; otherwise to stdout.
 *
 * --candidates FILE writes every candidate (the new samples and the pooled answers) as a response record
 * with its rewards, its temperature, its sample number and whether it was kept — what an outside judge
 * (toyworld score) needs to see whether the reward models' best of N is really better. Written
 * atomically (fileio.h): the file appears whole when the run succeeds, and not at all otherwise.
 *
 * Exit status: 0 ok, 1 runtime failure, 2 usage or input error (bad option, config, prompt line).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "ckpt.h"
#include "cli.h"
#include "fileio.h"
#include "gen.h"
#include "jsonl.h"
#include "reward.h"
#include "rsstats.h"
#include "store.h"
#include "threads.h"
#include "trainlog.h"
#include "util.h"

#define PROG "rejection_sample"

typedef struct {
    int64_t k, top_k, max_new, batch, seed, rm_batch, limit;
    ConfigNumList temperatures;
    double top_p, threshold;
    char *rm_help, *rm_safe, *pool, *name, *split, *source, *risk;
    ConfigStrList safety_risks;
} RsCfg;

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(RsCfg, f), .def = d, .min = lo, .max = hi, .help = h}
static const ConfigKey RS_SCHEMA[] = {
    K("sample.k", CONFIG_INT, k, "4", 1, 4096, "samples per prompt and temperature (-K)"),
    K("sample.temperatures", CONFIG_NUMLIST, temperatures, "[1.0]", 0, 100, "one run of K samples per temperature (--temperatures)"),
    K("sample.top_k", CONFIG_INT, top_k, "0", 0, 1 << 24, "keep the k most likely tokens (0 = all)"),
    K("sample.top_p", CONFIG_FLOAT, top_p, "1.0", 1e-9, 1, "nucleus mass (1 = plain temperature sampling, as the paper)"),
    K("sample.max_new", CONFIG_INT, max_new, "128", 1, 1 << 20, "most new tokens per sample"),
    K("sample.batch", CONFIG_INT, batch, "16", 1, 1 << 16, "sequences decoded together"),
    K("seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "sampling seed (--seed)"),
    K("reward.helpfulness", CONFIG_STRING, rm_help, "", 0, 0, "helpfulness reward model checkpoint (--rm-helpfulness)"),
    K("reward.safety", CONFIG_STRING, rm_safe, "", 0, 0, "safety reward model checkpoint (--rm-safety)"),
    K("reward.safety_threshold", CONFIG_FLOAT, threshold, "0.15", 0, 1, "rank by the safety score when sigmoid(safety) is below this"),
    K("reward.safety_risks", CONFIG_STRLIST, safety_risks, "[adversarial]", 0, 0, "tags.risk values that make a safety prompt"),
    K("reward.batch", CONFIG_INT, rm_batch, "16", 1, 1 << 16, "sequences per reward-model forward"),
    {.key = "select.pool", .type = CONFIG_ENUM, .offset = offsetof(RsCfg, pool), .def = "latest", .choices = "latest|best|all",
     .help = "candidates: this run's samples; also the answers earlier iterations kept; or also every earlier answer (--pool)"},
    K("name", CONFIG_STRING, name, "", 0, 0, "policy name written with responses (default: the --model path, without /ckpt)"),
    K("data.split", CONFIG_STRING, split, "train", 0, 0, "store prompts of this split only (empty = all)"),
    K("data.source", CONFIG_STRING, source, "", 0, 0, "store prompts of this source only"),
    K("data.risk", CONFIG_STRING, risk, "", 0, 0, "store prompts with this tags.risk only"),
    K("data.limit", CONFIG_INT, limit, "0", 0, (double)INT64_MAX, "at most this many store prompts (0 = all)"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: rejection_sample --model DIR --rm-helpfulness DIR [--rm-safety DIR] [options] [FILE|-]\n\n"
            "Draws K samples per prompt from the policy (per temperature), scores them with the reward models,\n"
            "keeps the best by the Llama 2 combined reward as an SFT example (source rs) and stores every\n"
            "sample and score, then prints the best-of-N table (mean max and median reward of N samples).\n"
            "The store gets the samples, scores and kept examples all in one transaction at the end: an\n"
            "interrupted run leaves none of them.\n"
            "Prompts come from the store (data.* filters) unless FILE or - names JSONL Prompt objects.\n\n"
            "options:\n"
            "  --model DIR            the policy to sample (required)\n"
            "  --rm-helpfulness DIR   helpfulness reward model (reward.helpfulness)\n"
            "  --rm-safety DIR        safety reward model (reward.safety); with both, the gating ranks\n"
            "  --db PATH              the store (default ./prefs.db)\n"
            "  --iteration N          the pipeline iteration of the responses and examples (default 1)\n"
            "  -K N                   samples per prompt and temperature (sample.k)\n"
            "  --temperatures LIST    comma-separated, e.g. 0.8,1.0,1.2,1.4 (sample.temperatures)\n"
            "  --pool latest|best|all best: the answers earlier iterations kept compete too; all: every\n"
            "                         earlier answer to the prompt (select.pool)\n"
            "  --emit jsonl           write pairs (kept vs. worst answer) on stdout for a rater\n"
            "  --out DIR              also write DIR/metrics.tsv\n"
            "  --candidates FILE      write every candidate (new samples and pooled answers) to FILE as JSONL\n"
            "                         response records with its rewards, temperature, sample number and\n"
            "                         whether it was kept (what toyworld score reads)\n"
            "  --config FILE          YAML configuration (keys below)\n"
            "  --set key=value        override one configuration key (repeatable)\n"
            "  --seed N               --set seed=N, applied after every --set\n"
            "  --threads N            threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n\n"
            "configuration keys:\n");
    config_print_help(RS_SCHEMA, f);
}

/* ---- options ------------------------------------------------------------------------------------ */

typedef struct {
    CliCommon cli; /* --model, --db, --iteration, --config, --set (and shorthands), --seed, --threads, inputs */
    const char *out, *candidates;
    bool emit_pairs;
} Opts;

/* "0.8,1.0" -> "[0.8,1.0]": the config parser checks each number and its range. */
static void set_temperatures(CliCommon *cc, const char *list) {
    size_t n = strlen(list) + 3;
    char *s = xmalloc(n);
    snprintf(s, n, "[%s]", list);
    cli_common_set(cc, "sample.temperatures", s);
    free(s);
}

static int parse_opts(int argc, char **argv, Opts *o) {
    static const struct option longopts[] = {
        CLI_OPTION_MODEL, {"rm-helpfulness", required_argument, 0, 'H'}, {"rm-safety", required_argument, 0, 'S'},
        CLI_OPTIONS_STORE, {"temperatures", required_argument, 0, 'T'}, {"pool", required_argument, 0, 'P'},
        {"emit", required_argument, 0, 'E'}, {"out", required_argument, 0, 'o'}, {"candidates", required_argument, 0, 'C'},
        CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    o->cli.iteration = 1;
    int c, rc;
    opterr = 0;
    /* Shorthand flags become --set assignments among the user's own --set, in the order given. */
    while ((c = getopt_long(argc, argv, ":hK:", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': cli_common_set(&o->cli, "reward.helpfulness", optarg); break;
        case 'S': cli_common_set(&o->cli, "reward.safety", optarg); break;
        case 'T': set_temperatures(&o->cli, optarg); break;
        case 'P': cli_common_set(&o->cli, "select.pool", optarg); break;
        case 'K': cli_common_set(&o->cli, "sample.k", optarg); break;
        case 'E':
            if (strcmp(optarg, "jsonl") != 0) return cli_fail(PROG, ERR_INPUT, "--emit: expected jsonl, got '%s'", optarg);
            o->emit_pairs = true;
            break;
        case 'o': o->out = optarg; break;
        case 'C':
            if (!*optarg || strcmp(optarg, "-") == 0)
                return cli_fail(PROG, ERR_INPUT, "--candidates: give a file name (stdout carries the table or the pairs)");
            o->candidates = optarg;
            break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    cli_common_inputs(&o->cli, argc, argv);
    if (!o->cli.model) return cli_fail(PROG, ERR_INPUT, "--model DIR is required (see --help)");
    return 0;
}

/* "runs/x/ckpt" -> "runs/x": the run directory names a model better than its checkpoint folder. */
static char *model_name(const char *dir) {
    char *s = xstrdup(dir);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = '\0';
    if (n > 5 && strcmp(s + n - 5, "/ckpt") == 0) s[n - 5] = '\0';
    return s;
}

/* ---- prompts ------------------------------------------------------------------------------------- */

typedef struct {
    json_t *obj;   /* Prompt object: dialogue, system?, tags?, split?, source?, id (owned) */
    int64_t id;    /* its row in the store: the identity of its random streams */
    TokenList ids; /* the policy's generation prompt */
    int safety;    /* IS_SAFETY(p): tags.risk is one of reward.safety_risks */
} Prompt;

typedef struct {
    Prompt *v;
    int64_t n, cap, skipped;
    const Tokenizer *tok;
    const Model *policy;
    const RsCfg *cfg;
    Store *db;
} Prompts;

static void prompts_free(Prompts *l) {
    for (int64_t i = 0; i < l->n; i++) {
        json_decref(l->v[i].obj);
        token_list_free(&l->v[i].ids);
    }
    free(l->v);
}

static const char *obj_str(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Keep the Prompt object obj (stored as row id), or skip it when it does not fit the policy. */
static Err prompts_add(Prompts *l, json_t *obj, int64_t id, const char *where) {
    TokenList ids = {0};
    const char *sys = obj_str(obj, "system");
    Err rc = chat_encode_prompt(l->tok, json_object_get(obj, "dialogue"), sys && *sys ? sys : NULL, &ids);
    if (rc) {
        token_list_free(&ids);
        return err_prefix(rc, "%s: ", where);
    }
    if (ids.n > (size_t)l->policy->cfg.max_seq_len - 1) {
        fprintf(stderr, PROG ": %s: skipped: the prompt has %zu tokens and the policy's context is %d\n", where, ids.n,
                l->policy->cfg.max_seq_len);
        token_list_free(&ids);
        l->skipped++;
        return ERR_OK;
    }
    const char *risk = obj_str(json_object_get(obj, "tags"), "risk");
    int safety = 0;
    for (size_t i = 0; risk && i < l->cfg->safety_risks.n; i++) safety |= strcmp(risk, l->cfg->safety_risks.items[i]) == 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    json_object_set_new(obj, "id", json_integer(id));
    json_incref(obj);
    l->v[l->n++] = (Prompt){obj, id, ids, safety};
    return ERR_OK;
}

/* A JSONL line: a Prompt object (with "type": "prompt" or none), put into the store. */
static Err jsonl_prompt(Prompts *l, json_t *rec, const char *where) {
    static const char *const known[] = {"type", "dialogue", "system", "tags", "split", "source", "id", NULL};
    if (!json_is_object(rec)) return err_set(ERR_INPUT, "%s: expected a JSON object (a prompt)", where);
    const char *key;
    json_t *val;
    json_object_foreach(rec, key, val) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(key, known[i]) == 0;
        if (!ok) return err_set(ERR_INPUT, "%s: \"%s\": unknown field of a prompt", where, key);
    }
    const json_t *type = json_object_get(rec, "type");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "prompt") != 0))
        return err_set(ERR_INPUT, "%s: \"type\": expected \"prompt\"", where);
    static const char *const strings[] = {"system", "split", "source", NULL};
    for (int i = 0; strings[i]; i++) {
        const json_t *v = json_object_get(rec, strings[i]);
        if (v && !json_is_string(v)) return err_set(ERR_INPUT, "%s: \"%s\": expected a string", where, strings[i]);
    }
    const json_t *tags = json_object_get(rec, "tags");
    if (tags && !json_is_object(tags)) return err_set(ERR_INPUT, "%s: \"tags\": expected an object", where);
    const json_t *dialogue = json_object_get(rec, "dialogue");
    if (!dialogue) return err_set(ERR_INPUT, "%s: \"dialogue\": missing", where);
    json_object_del(rec, "type");
    json_object_del(rec, "id"); /* ids belong to the store they came from */
    char *dtext = json_dumps(dialogue, JSON_COMPACT), *ttext = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
    StorePrompt sp = {.dialogue = dtext, .system = obj_str(rec, "system"), .tags = ttext,
                      .split = obj_str(rec, "split"), .source = obj_str(rec, "source")};
    int64_t id;
    Err rc = store_prompt_put(l->db, &sp, &id, NULL);
    free(dtext);
    free(ttext);
    if (rc) return err_prefix(rc, "%s: ", where);
    return prompts_add(l, rec, id, where);
}

static Err read_jsonl_prompts(Prompts *l, const char *path) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, path);
    if (rc) return rc;
    json_t *v;
    int64_t line;
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        char where[600];
        snprintf(where, sizeof where, "%s:%" PRId64, jsonl_name(r), line);
        rc = jsonl_prompt(l, v, where);
        json_decref(v);
        if (rc) break;
    }
    jsonl_close(r);
    return rc;
}

static Err store_prompt_cb(void *ctx, const StorePrompt *p) {
    Prompts *l = ctx;
    json_error_t je;
    json_t *dialogue = json_loads(p->dialogue, 0, &je);
    if (!dialogue) return err_set(ERR_INPUT, "prompt %" PRId64 ": dialogue: %s", p->id, je.text);
    json_t *o = json_object();
    json_object_set_new(o, "dialogue", dialogue);
    if (p->system && *p->system) json_object_set_new(o, "system", json_string(p->system));
    json_t *tags = p->tags ? json_loads(p->tags, 0, &je) : NULL;
    if (tags) json_object_set_new(o, "tags", tags);
    if (p->split) json_object_set_new(o, "split", json_string(p->split));
    if (p->source) json_object_set_new(o, "source", json_string(p->source));
    char where[64];
    snprintf(where, sizeof where, "prompt %" PRId64, p->id);
    Err rc = prompts_add(l, o, p->id, where);
    json_decref(o);
    return rc;
}

/* ---- candidates ---------------------------------------------------------------------------------- */

/* One answer that may be kept: a new sample, or (--pool best|all) an earlier iteration's response. */
typedef struct {
    int64_t prompt;      /* index into Prompts */
    int64_t response_id; /* its store row */
    char *text;
    char *model;         /* the policy that wrote it, and in which iteration */
    int64_t iteration;
    double temperature, top_p; /* as sampled (NAN: the store does not know) */
    int sample;          /* its number among the prompt's K samples at this temperature; -1: pooled */
    bool kept;           /* the arg-max of its prompt (select_and_keep) */
    float help, safe, rank; /* reward-model scores (NAN: no such model) and the combined reward */
} Cand;

typedef struct {
    Cand *v;
    int64_t n, cap;
} Cands;

static Cand *cands_push(Cands *c) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->v = xrealloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    Cand *x = &c->v[c->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void cands_free(Cands *c) {
    for (int64_t i = 0; i < c->n; i++) {
        free(c->v[i].text);
        free(c->v[i].model);
    }
    free(c->v);
}

/* The answer a sample's tokens spell: EOS dropped, the template's surrounding spaces stripped. */
typedef struct {
    RewardModel help, safe;
    bool has_help, has_safe;
    char *help_name, *safe_name;
    float threshold;
} Rewards;

/* Score candidates [from, to) with every reward model and rank them (store_cands stores the scores). */
static Err score_cands(Rewards *rw, const Prompts *pl, Cands *c, int64_t from, int64_t to) {
    int n = (int)(to - from);
    if (n <= 0) return ERR_OK;
    const json_t **dialogues = xmalloc((size_t)n * sizeof *dialogues);
    const char **systems = xmalloc((size_t)n * sizeof *systems), **texts = xmalloc((size_t)n * sizeof *texts);
    float *h = xmalloc((size_t)n * sizeof *h), *s = xmalloc((size_t)n * sizeof *s);
    for (int i = 0; i < n; i++) {
        const Prompt *p = &pl->v[c->v[from + i].prompt];
        dialogues[i] = json_object_get(p->obj, "dialogue");
        systems[i] = obj_str(p->obj, "system");
        texts[i] = c->v[from + i].text;
        h[i] = s[i] = NAN;
    }
    Err rc = ERR_OK;
    if (rw->has_help) rc = reward_score_text(&rw->help, dialogues, systems, texts, n, h);
    if (!rc && rw->has_safe) rc = reward_score_text(&rw->safe, dialogues, systems, texts, n, s);
    for (int i = 0; !rc && i < n; i++) {
        Cand *x = &c->v[from + i];
        if (!isfinite(rw->has_help ? h[i] : 0) || !isfinite(rw->has_safe ? s[i] : 0))
            rc = x->sample < 0 ? err_set(ERR_RUNTIME, "response %" PRId64 ": a reward model's score is not finite", x->response_id)
                               : err_set(ERR_RUNTIME, "prompt %" PRId64 ", sample %d at T=%g: a reward model's score is not finite",
                                         pl->v[x->prompt].id, x->sample, x->temperature);
        x->help = h[i];
        x->safe = s[i];
        x->rank = rsstats_rank_score(h[i], s[i], pl->v[x->prompt].safety, rw->threshold);
    }
    free(dialogues);
    free(systems);
    free(texts);
    free(h);
    free(s);
    return rc;
}

/* ---- --pool all: earlier iterations' answers ------------------------------------------------------ */

typedef struct {
    int64_t *prompt_of; /* store prompt id -> index + 1 into Prompts (0 = not ours); ids are dense */
    int64_t max_id, iteration;
    int64_t *kept;      /* --pool best: the response ids earlier iterations kept, sorted; else NULL */
    int64_t nkept, capkept;
    Cands *c;
} PoolCtx;

static int cmp_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The response ids in the tags of earlier iterations' rs examples. */
static Err kept_cb(void *ctx, const StoreSftExample *e) {
    PoolCtx *pc = ctx;
    if (e->iteration >= pc->iteration || !e->tags) return ERR_OK;
    json_t *tags = json_loads(e->tags, 0, NULL);
    json_t *id = json_object_get(tags, "response_id");
    if (json_is_integer(id)) {
        if (pc->nkept == pc->capkept) {
            pc->capkept = pc->capkept ? 2 * pc->capkept : 256;
            pc->kept = xrealloc(pc->kept, (size_t)pc->capkept * sizeof *pc->kept);
        }
        pc->kept[pc->nkept++] = json_integer_value(id);
    }
    json_decref(tags);
    return ERR_OK;
}

static Err pool_cb(void *ctx, const StoreResponseRow *r) {
    PoolCtx *pc = ctx;
    if (r->r.iteration >= pc->iteration || r->r.prompt_id > pc->max_id || !pc->prompt_of[r->r.prompt_id]) return ERR_OK;
    if (pc->kept && !bsearch(&r->r.id, pc->kept, (size_t)pc->nkept, sizeof *pc->kept, cmp_id)) return ERR_OK;
    Cand *x = cands_push(pc->c);
    x->prompt = pc->prompt_of[r->r.prompt_id] - 1;
    x->response_id = r->r.id;
    x->text = xstrdup(r->r.text);
    x->model = xstrdup(r->r.model);
    x->iteration = r->r.iteration;
    x->temperature = r->r.temperature;
    x->top_p = r->r.top_p;
    x->sample = -1;
    return ERR_OK;
}

/* best_only: only the answers earlier iterations kept (--pool best); else every earlier answer. */
static Err load_pool(Store *db, const Prompts *pl, int64_t iteration, bool best_only, Cands *c) {
    PoolCtx pc = {.iteration = iteration, .c = c};
    Err rc = ERR_OK;
    if (best_only) {
        StoreFilter f = store_filter_any();
        f.source = "rs";
        pc.kept = xmalloc(sizeof *pc.kept);
        rc = store_sft_each(db, &f, kept_cb, &pc);
        qsort(pc.kept, (size_t)pc.nkept, sizeof *pc.kept, cmp_id);
    }
    for (int64_t i = 0; i < pl->n; i++)
        if (pl->v[i].id > pc.max_id) pc.max_id = pl->v[i].id;
    pc.prompt_of = xcalloc((size_t)pc.max_id + 1, sizeof *pc.prompt_of);
    for (int64_t i = 0; i < pl->n; i++) pc.prompt_of[pl->v[i].id] = i + 1;
    StoreFilter f = store_filter_any();
    if (!rc) rc = store_responses_each(db, &f, pool_cb, &pc);
    free(pc.prompt_of);
    free(pc.kept);
    return rc;
}

/* ---- sampling ----------------------------------------------------------------------------------- */

typedef struct {
    int64_t new_tokens, fed, samples;
    double seconds;
} SampleStats;

/* K samples per prompt at temperature temp, appended to c in (prompt, sample) order and scored; not
 * stored yet (store_cands). Chunks of prompts keep the generation buffers small. */
static Err sample_all(Model *policy, const Tokenizer *tok, const Prompts *pl, const RsCfg *cfg, double temp,
                      const char *name, int64_t iteration, Rewards *rw, Cands *c, SampleStats *ss) {
    enum { CHUNK = 64 };
    int k = (int)cfg->k;
    GenConfig g = {.sampler = {.temperature = (float)temp, .top_k = (int)cfg->top_k, .top_p = (float)cfg->top_p},
                   .max_new = (int)cfg->max_new, .batch = (int)cfg->batch, .seed = (uint64_t)cfg->seed};
    GenPrompt *gp = xmalloc(CHUNK * sizeof *gp);
    GenSample *out = xmalloc((size_t)CHUNK * (size_t)k * sizeof *out);
    Err rc = ERR_OK;
    for (int64_t first = 0; !rc && first < pl->n; first += CHUNK) {
        int n = pl->n - first < CHUNK ? (int)(pl->n - first) : CHUNK;
        for (int i = 0; i < n; i++) {
            const Prompt *p = &pl->v[first + i];
            gp[i] = (GenPrompt){p->ids.ids, (int)p->ids.n, (uint64_t)p->id};
        }
        GenStats st;
        double t0 = trainlog_now();
        if ((rc = gen_run(policy, gp, n, k, &g, out, &st))) break;
        ss->seconds += trainlog_now() - t0;
        ss->new_tokens += st.generated;
        ss->fed += st.fed;
        ss->samples += (int64_t)n * k;
        int64_t from = c->n;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) {
                Cand *x = cands_push(c);
                x->prompt = first + i;
                x->text = gen_answer_text(tok, &out[i * k + j]);
                x->model = xstrdup(name);
                x->iteration = iteration;
                x->temperature = temp;
                x->top_p = cfg->top_p;
                x->sample = j;
            }
        gen_samples_free(out, (int64_t)n * k);
        rc = score_cands(rw, pl, c, from, c->n);
        fprintf(stderr, PROG ": T=%g: %" PRId64 "/%" PRId64 " prompts\n", temp, first + n, pl->n);
    }
    free(gp);
    free(out);
    return rc;
}

/* ---- selection and output ------------------------------------------------------------------------ */

/* Every new sample as a response (its id into x->response_id), in c's order, and every candidate's
 * scores, one row per reward model (replacing a pooled answer's earlier score by the same model). */
static Err store_cands(Store *db, const Prompts *pl, Cands *c, const Rewards *rw) {
    Err rc = ERR_OK;
    for (int64_t i = 0; !rc && i < c->n; i++) {
        Cand *x = &c->v[i];
        if (x->sample >= 0) {
            StoreResponse r = {.prompt_id = pl->v[x->prompt].id, .text = x->text, .model = x->model,
                               .iteration = x->iteration, .temperature = x->temperature, .top_p = x->top_p};
            rc = store_response_add(db, &r, &x->response_id);
        }
        if (!rc && rw->has_help) rc = store_score_put(db, &(StoreScore){x->response_id, rw->help_name, x->help});
        if (!rc && rw->has_safe) rc = store_score_put(db, &(StoreScore){x->response_id, rw->safe_name, x->safe});
    }
    return rc;
}

/* The kept answer of a prompt as an SFT example: its dialogue plus the answer, loss on that turn. */
static Err keep_answer(Store *db, const Prompt *p, const Cand *x, int64_t iteration) {
    json_t *d = json_deep_copy(json_object_get(p->obj, "dialogue"));
    json_array_append_new(d, json_pack("{s:s, s:s}", "role", "assistant", "content", x->text));
    char *dtext = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    /* the prompt's tags, and which response was kept (what --pool best reads back) */
    const json_t *ptags = json_object_get(p->obj, "tags");
    json_t *tags = json_is_object(ptags) ? json_deep_copy(ptags) : json_object();
    json_object_set_new(tags, "response_id", json_integer(x->response_id));
    char *ttext = json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(tags);
    StoreSftExample e = {.dialogue = dtext, .system = obj_str(p->obj, "system"), .loss_turns = "last",
                         .source = "rs", .iteration = iteration, .tags = ttext, .split = obj_str(p->obj, "split")};
    int64_t id;
    Err rc = store_sft_add(db, &e, &id);
    free(dtext);
    free(ttext);
    return rc;
}

/* The pair for a rater: the kept answer against the lowest-ranked answer with another text. */
static Err emit_pair(const Prompt *p, const Cands *c, const int64_t *members, int64_t nm, int64_t best, int64_t *pairs) {
    int64_t worst = -1;
    for (int64_t i = 0; i < nm; i++) {
        const Cand *x = &c->v[members[i]];
        if (strcmp(x->text, c->v[best].text) == 0) continue;
        if (worst < 0 || x->rank < c->v[worst].rank) worst = members[i];
    }
    if (worst < 0) return ERR_OK; /* every answer is the same text: nothing to compare */
    json_t *rec = json_pack("{s:O, s:s, s:s, s:I, s:I}", "prompt", p->obj, "response_a", c->v[best].text, "response_b",
                            c->v[worst].text, "response_a_id", (json_int_t)c->v[best].response_id, "response_b_id",
                            (json_int_t)c->v[worst].response_id);
    ASSERT(rec);
    Err rc = jsonl_write(stdout, rec);
    json_decref(rec);
    *pairs += rc == ERR_OK;
    return rc;
}

typedef struct {
    int64_t kept, from_pool, pairs;
    double kept_rank;
} KeepStats;

/* Per prompt: the arg-max of the combined reward over its candidates becomes an SFT example. Pooled
 * candidates come first in c, so an older answer wins a tie. Inside the caller's transaction, after
 * store_cands (the examples and pairs name the kept responses by id). */
static Err select_and_keep(Store *db, const Prompts *pl, Cands *c, int64_t n_pooled, int64_t iteration,
                           bool emit_pairs, KeepStats *ks) {
    int64_t *group = xmalloc((size_t)(c->n ? c->n : 1) * sizeof *group), *best = xmalloc((size_t)pl->n * sizeof *best);
    float *rank = xmalloc((size_t)(c->n ? c->n : 1) * sizeof *rank);
    int64_t *first = xcalloc((size_t)pl->n + 1, sizeof *first), *members = xmalloc((size_t)(c->n ? c->n : 1) * sizeof *members);
    for (int64_t i = 0; i < c->n; i++) {
        group[i] = c->v[i].prompt;
        rank[i] = c->v[i].rank;
        first[group[i] + 1]++;
    }
    rsstats_best_per_group(group, rank, c->n, pl->n, best);
    /* members of each prompt, in candidate order (a counting sort) */
    for (int64_t p = 0; p < pl->n; p++) first[p + 1] += first[p];
    int64_t *fill = xmalloc((size_t)pl->n * sizeof *fill);
    memcpy(fill, first, (size_t)pl->n * sizeof *fill);
    for (int64_t i = 0; i < c->n; i++) members[fill[group[i]]++] = i;
    Err rc = ERR_OK;
    for (int64_t p = 0; !rc && p < pl->n; p++) {
        if (best[p] < 0) continue;
        c->v[best[p]].kept = true;
        rc = keep_answer(db, &pl->v[p], &c->v[best[p]], iteration);
        ks->kept++;
        ks->from_pool += best[p] < n_pooled;
        ks->kept_rank += c->v[best[p]].rank;
        if (!rc && emit_pairs) rc = emit_pair(&pl->v[p], c, members + first[p], first[p + 1] - first[p], best[p], &ks->pairs);
    }
    if (!rc && fflush(stdout) != 0) rc = err_set(ERR_RUNTIME, "stdout: %s", strerror(errno));
    if (ks->kept) ks->kept_rank /= (double)ks->kept;
    free(group);
    free(best);
    free(rank);
    free(first);
    free(members);
    free(fill);
    return rc;
}

/* --candidates: each candidate as a response record (the shape generate writes, so that toyworld score
 * and prefs_db import read it) plus what the selection saw: "id" (its store row), "reward" (the combined
 * reward it was ranked by), "reward_helpfulness" and "reward_safety" (each model given), "sample" (its
 * number among the prompt's K samples at its temperature) or "pooled": true (an earlier iteration's
 * answer, with that answer's model, iteration and temperature), and "kept". In c's order: the pooled
 * answers, then each temperature's samples in (prompt, sample) order. */
static Err write_candidates(FILE *f, const Prompts *pl, const Cands *c, const Rewards *rw) {
    Err rc = ERR_OK;
    for (int64_t i = 0; !rc && i < c->n; i++) {
        const Cand *x = &c->v[i];
        json_t *rec = json_pack("{s:s, s:I, s:O, s:s, s:s, s:I}", "type", "response", "id", (json_int_t)x->response_id,
                                "prompt", pl->v[x->prompt].obj, "text", x->text, "model", x->model, "iteration",
                                (json_int_t)x->iteration);
        ASSERT(rec);
        if (isfinite(x->temperature)) json_object_set_new(rec, "temperature", json_real(x->temperature));
        if (isfinite(x->top_p)) json_object_set_new(rec, "top_p", json_real(x->top_p));
        json_object_set_new(rec, "reward", json_real(x->rank));
        if (rw->has_help) json_object_set_new(rec, "reward_helpfulness", json_real(x->help));
        if (rw->has_safe) json_object_set_new(rec, "reward_safety", json_real(x->safe));
        if (x->sample >= 0) json_object_set_new(rec, "sample", json_integer(x->sample));
        json_object_set_new(rec, "pooled", json_boolean(x->sample < 0));
        json_object_set_new(rec, "kept", json_boolean(x->kept));
        rc = jsonl_write(f, rec);
        json_decref(rec);
    }
    return rc;
}

/* The best-of-N table (Figure 7, and Figure 8 with several temperatures) and its metrics. */
static Err report_curves(const Cands *c, int64_t n_pooled, const Prompts *pl, const RsCfg *cfg, FILE *f,
                         Store *db, int64_t run_id, TrainLog *log) {
    int k = (int)cfg->k;
    size_t nt = cfg->temperatures.n;
    double *mx = xmalloc(nt * (size_t)k * sizeof *mx), *md = xmalloc(nt * (size_t)k * sizeof *md);
    float *table = xmalloc((size_t)pl->n * (size_t)k * sizeof *table);
    for (size_t t = 0; t < nt; t++) {
        /* the new samples of temperature t are contiguous, in (prompt, sample) order */
        const Cand *base = c->v + n_pooled + (int64_t)t * pl->n * k;
        for (int64_t i = 0; i < pl->n * k; i++) table[i] = base[i].rank;
        rsstats_curve(table, pl->n, k, mx + t * (size_t)k, md + t * (size_t)k);
    }
    fprintf(f, "# best-of-N combined reward: mean over %" PRId64 " prompts of the max and median of N samples\n", pl->n);
    fprintf(f, "%4s", "N");
    for (size_t t = 0; t < nt; t++) fprintf(f, "  max@T=%-5g  median@T=%-5g", cfg->temperatures.items[t], cfg->temperatures.items[t]);
    fprintf(f, "\n");
    Err rc = ERR_OK;
    for (int n = 1; n <= k; n++) {
        fprintf(f, "%4d", n);
        for (size_t t = 0; t < nt; t++) {
            double a = mx[t * (size_t)k + (size_t)n - 1], b = md[t * (size_t)k + (size_t)n - 1];
            fprintf(f, "  %11.4f  %14.4f", a, b);
            char name_max[64], name_med[64];
            snprintf(name_max, sizeof name_max, "max_reward@%g", cfg->temperatures.items[t]);
            snprintf(name_med, sizeof name_med, "median_reward@%g", cfg->temperatures.items[t]);
            if (log) {
                if (!rc) rc = trainlog_metric(log, n, name_max, a);
                if (!rc) rc = trainlog_metric(log, n, name_med, b);
            } else {
                if (!rc) rc = store_metric_put(db, run_id, n, name_max, a);
                if (!rc) rc = store_metric_put(db, run_id, n, name_med, b);
            }
        }
        fprintf(f, "\n");
    }
    fflush(f);
    free(mx);
    free(md);
    free(table);
    return rc;
}

/* ---- the run -------------------------------------------------------------------------------------- */

static Err load_rewards(Rewards *rw, const RsCfg *c) {
    memset(rw, 0, sizeof *rw);
    rw->threshold = (float)c->threshold;
    if (!*c->rm_help && !*c->rm_safe)
        return err_set(ERR_INPUT, "no reward model: give --rm-helpfulness DIR and/or --rm-safety DIR");
    Err rc = ERR_OK;
    if (*c->rm_help) {
        if ((rc = reward_load(&rw->help, c->rm_help, (int)c->rm_batch))) return rc;
        rw->has_help = true;
        rw->help_name = model_name(c->rm_help);
    }
    if (*c->rm_safe) {
        if ((rc = reward_load(&rw->safe, c->rm_safe, (int)c->rm_batch))) return rc;
        rw->has_safe = true;
        rw->safe_name = model_name(c->rm_safe);
    }
    return ERR_OK;
}

static void free_rewards(Rewards *rw) {
    if (rw->has_help) reward_free(&rw->help);
    if (rw->has_safe) reward_free(&rw->safe);
    free(rw->help_name);
    free(rw->safe_name);
}

static Err collect_prompts(Prompts *pl, const Opts *o, const RsCfg *c) {
    Err rc = ERR_OK;
    for (int i = 0; !rc && i < o->cli.ninputs; i++) {
        if ((rc = store_begin(pl->db))) break; /* a bad line leaves no prompt of its file behind */
        rc = read_jsonl_prompts(pl, o->cli.inputs[i]);
        if (rc) store_rollback(pl->db);
        else rc = store_commit(pl->db);
    }
    if (!rc && o->cli.ninputs == 0) {
        StoreFilter f = store_filter_any();
        f.split = *c->split ? c->split : NULL;
        f.source = *c->source ? c->source : NULL;
        f.risk = *c->risk ? c->risk : NULL;
        f.limit = c->limit;
        rc = store_prompts_each(pl->db, &f, store_prompt_cb, pl);
    }
    if (!rc && pl->n == 0) rc = err_set(ERR_INPUT, "no prompts to sample (check the input or the data.* filters)");
    return rc;
}

static int run(const Opts *o, RsCfg *c) {
    Model policy;
    CkptMap map;
    Tokenizer tok;
    Rewards rw = {0};
    Store *db = NULL;
    Prompts pl = {.cfg = c};
    Cands cands = {0};
    TrainLog log = {0};
    bool have_log = false;
    int64_t run_id = 0, n_pooled = 0;
    SampleStats ss = {0};
    KeepStats ks = {0};
    char *name = *c->name ? xstrdup(c->name) : model_name(o->cli.model);
    char *config_text = config_dump_string(RS_SCHEMA, c);
    bool policy_loaded = false, tok_loaded = false;
    AtomicFile cands_file = {0};

    /* --candidates: an unwritable path should fail now, not after the sampling; the file is opened for
     * good only to be written at the end, so that a run killed while sampling leaves no temporary file */
    Err rc = o->candidates ? atomic_open(&cands_file, o->candidates) : ERR_OK;
    if (rc) err_prefix(rc, "--candidates: ");
    else if (o->candidates) atomic_abort(&cands_file);
    bool have_cands_file = false;
    if (!rc) rc = ckpt_load_model(&policy, o->cli.model, &map);
    if (!rc) {
        policy_loaded = true;
        if (policy.cfg.head != HEAD_LM) rc = err_set(ERR_INPUT, "%s: not a policy (it has a scalar head)", o->cli.model);
    }
    if (!rc && !(rc = ckpt_load_tokenizer(&tok, o->cli.model, policy.cfg.vocab_size))) tok_loaded = true;
    if (!rc) rc = load_rewards(&rw, c);
    if (!rc && !o->cli.db && o->cli.ninputs == 0 && access("prefs.db", F_OK) != 0)
        rc = err_set(ERR_INPUT, "no input named and no store at ./prefs.db (give FILE|- or --db PATH)");
    if (!rc) rc = store_open(&db, o->cli.db ? o->cli.db : "prefs.db");
    if (!rc) {
        json_t *in = json_pack("{s:s, s:s?, s:s?, s:s, s:o}", "model", o->cli.model, "rm_helpfulness",
                               *c->rm_help ? c->rm_help : NULL, "rm_safety", *c->rm_safe ? c->rm_safe : NULL, "pool",
                               c->pool, "prompts", json_array());
        for (int i = 0; i < o->cli.ninputs; i++) json_array_append_new(json_object_get(in, "prompts"), json_string(o->cli.inputs[i]));
        if (o->cli.ninputs == 0) json_array_append_new(json_object_get(in, "prompts"), json_string("store"));
        char *ins = jsonl_dumps(in, JSON_COMPACT);
        json_decref(in);
        rc = store_run_begin(db, PROG, o->cli.iteration, config_text, ins, &run_id);
        free(ins);
    }
    if (!rc && o->out) {
        if (!(rc = trainlog_open(&log, o->out, -1, db, run_id))) have_log = true;
    }
    pl.tok = &tok;
    pl.policy = &policy;
    pl.db = db;
    if (!rc) rc = collect_prompts(&pl, o, c);
    if (!rc && strcmp(c->pool, "latest") != 0) {
        rc = load_pool(db, &pl, o->cli.iteration, strcmp(c->pool, "best") == 0, &cands);
        n_pooled = cands.n;
        if (!rc) rc = score_cands(&rw, &pl, &cands, 0, n_pooled);
        if (!rc) fprintf(stderr, PROG ": pooled %" PRId64 " answers of earlier iterations\n", n_pooled);
    }
    for (size_t t = 0; !rc && t < c->temperatures.n; t++)
        rc = sample_all(&policy, &tok, &pl, c, c->temperatures.items[t], name, o->cli.iteration, &rw, &cands, &ss);
    /* From here on one transaction: the rows, the scores, the kept examples and the metrics. */
    bool begun = !rc && !(rc = store_begin(db));
    if (!rc) rc = store_cands(db, &pl, &cands, &rw);
    if (!rc) rc = select_and_keep(db, &pl, &cands, n_pooled, o->cli.iteration, o->emit_pairs, &ks);
    if (!rc && o->candidates) {
        if ((rc = atomic_open(&cands_file, o->candidates))) err_prefix(rc, "--candidates: ");
        else have_cands_file = true;
    }
    if (!rc && have_cands_file) rc = write_candidates(cands_file.f, &pl, &cands, &rw);
    if (!rc) rc = report_curves(&cands, n_pooled, &pl, c, o->emit_pairs ? stderr : stdout, db, run_id, have_log ? &log : NULL);
    double tps = ss.seconds > 0 ? (double)ss.new_tokens / ss.seconds : 0;
    if (!rc) {
        const struct { const char *name; double v; } m[] = {
            {"kept_reward", ks.kept_rank}, {"kept_from_pool", (double)ks.from_pool},
            {"sampled_tokens_per_s", tps}, {"fed_tokens_per_s", ss.seconds > 0 ? (double)ss.fed / ss.seconds : 0},
        };
        for (size_t i = 0; !rc && i < sizeof m / sizeof m[0]; i++)
            rc = have_log ? trainlog_metric(&log, 0, m[i].name, m[i].v) : store_metric_put(db, run_id, 0, m[i].name, m[i].v);
        fprintf(stderr,
                PROG ": %" PRId64 " prompts (%" PRId64 " skipped), %" PRId64 " samples, %" PRId64 " kept (%" PRId64
                     " from earlier iterations), mean kept reward %.4f, %" PRId64 " pairs; sampling %.0f new tokens/s, %.1f s\n",
                pl.n, pl.skipped, ss.samples, ks.kept, ks.from_pool, ks.kept_rank, ks.pairs, tps, ss.seconds);
    }
    /* The file before the store: killed between the two, the stage reruns and rewrites the file, where
     * rows committed first would be stored twice. */
    bool cands_written = false;
    if (have_cands_file) { /* whole, or not at all */
        if (rc) atomic_abort(&cands_file);
        else cands_written = !(rc = atomic_commit(&cands_file));
    }
    if (begun && rc) {
        store_rollback(db);
    } else if (begun && (rc = store_commit(db)) != ERR_OK && cands_written) {
        unlink(o->candidates); /* the ids in it name no rows */
        cands_written = false;
    }
    if (cands_written) fprintf(stderr, PROG ": %" PRId64 " candidates written to %s\n", cands.n, o->candidates);
    if (run_id) {
        json_t *out = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s?}", "prompts", (json_int_t)pl.n, "samples",
                                (json_int_t)ss.samples, "sft_examples", (json_int_t)ks.kept, "from_pool",
                                (json_int_t)ks.from_pool, "pairs", (json_int_t)ks.pairs, "candidates", rc ? NULL : o->candidates);
        char *outs = jsonl_dumps(out, JSON_COMPACT);
        json_decref(out);
        Err e2 = store_run_end(db, run_id, outs, rc ? "failed" : "ok");
        free(outs);
        if (!rc) rc = e2;
    }
    if (rc) cli_fail(PROG, rc, "%s", err_msg());
    if (have_log) trainlog_close(&log);
    cands_free(&cands);
    prompts_free(&pl);
    if (db) store_close(db);
    free_rewards(&rw);
    if (tok_loaded) tokenizer_free(&tok);
    if (policy_loaded) {
        model_free(&policy);
        ckpt_map_free(&map);
    }
    free(name);
    free(config_text);
    return rc;
}

int main(int argc, char **argv) {
    Opts o;
    RsCfg c;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) rc = cli_common_config(&o.cli, RS_SCHEMA, &c, &c.seed);
    cli_common_free(&o.cli);
    if (rc) return rc == CLI_DONE ? 0 : rc;
    if (c.temperatures.n == 0) {
        config_free(RS_SCHEMA, &c);
        return cli_fail(PROG, ERR_INPUT, "sample.temperatures: give at least one temperature");
    }
    threads_set(o.cli.threads);
    rc = run(&o, &c);
    config_free(RS_SCHEMA, &c);
    return rc;
}
