/*
 * gatt_augment — Ghost Attention (Llama 2 §3.3): multi-turn SFT data in which an instruction given once
 * holds for the whole dialogue, and the adherence per turn that measures it (the paper's Figure 9).
 *
 *   gatt_augment synth --model DIR [options] [FILE|-]...   dialogues -> GAtt sft_examples (JSONL or store)
 *   gatt_augment eval --model DIR [--model DIR]... [options] [FILE|-]...   adherence per turn, per model
 *   gatt_augment forms                                      the instruction list, full and terse
 *
 * synth, per dialogue (its user turns u1..un; any earlier answers are dropped): draw an instruction
 * from instructions.* (common/gatt.h), attach its full form to every user turn (synth.attach), and
 * sample the answers turn by turn with the model — turn t's prompt holds the answers sampled for
 * turns < t — every dialogue of a turn decoded together (gen.h). Then write the training example:
 * the plain user turns and the sampled answers, the instruction as the system prompt of the first turn
 * only (its terse form with probability instructions.terse_prob), and loss_turns [n-1]: only the last
 * answer is learnt. A dialogue whose prompt outgrows the model's context, or an answer that does not
 * end with EOS within sample.max_new tokens, is dropped (and counted): half an answer is no example.
 * With --emit store the examples go into the store in one transaction after the last turn: an
 * interrupted synth leaves none of them, and a rerun stores one set.
 *
 * eval, per model: the held-out dialogues whose system prompt is one of the instructions (either
 * form); the model answers turn by turn with the instruction only in the system prompt and its own
 * answers fed back; adherence at turn t = the share of dialogues of >= t turns whose t-th answer
 * follows the instruction (gatt_adheres). A table on stdout; with --db, a run in the store with the
 * metrics adherence/<label> and dialogues at step t; with --out DIR, DIR/adherence.tsv, DIR/adherence.gp,
 * DIR/adherence.png (when gnuplot is on PATH) and DIR/dialogues-<label>.jsonl (the generated dialogues
 * as sft_example records, for `toyworld score --summary`).
 *
 * Inputs: JSONL records with a "dialogue" (prompts, sft_examples; "system" is read by eval), or, with
 * no FILE named, the store's prompts (data.split / eval.split, data.source, data.limit). The random
 * stream of a dialogue is forked from the seed by its identity (the record's number across the inputs,
 * or its store id), so its instruction and answers do not depend on the other dialogues or on
 * sample.batch.
 *
 * Exit status: 0 ok, 1 runtime failure, 2 usage or input error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat.h"
#include "ckpt.h"
#include "cli.h"
#include "gatt.h"
#include "gen.h"
#include "jsonl.h"
#include "store.h"
#include "threads.h"
#include "util.h"

#define PROG "gatt_augment"
#define MAX_MODELS 8

typedef struct {
    int64_t seed;
    ConfigStrList kinds, slots;
    double terse_prob;
    char *attach;
    int64_t min_turns, max_turns;
    double temperature, top_p, eval_temperature, eval_top_p;
    int64_t top_k, max_new, batch;
    char *split, *source, *eval_split;
    int64_t limit, eval_from;
} GattCfg;

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(GattCfg, f), .def = d, .min = lo, .max = hi, .help = h}
static const ConfigKey GATT_SCHEMA[] = {
    K("seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "seed of the instruction draws and the sampling (--seed)"),
    K("instructions.kinds", CONFIG_STRLIST, kinds,
      "[\"pirate | Always answer as a pirate. | Style: pirate. | word arr\", "
      "\"question | Always end your answer with a question. | End: question. | ends ?\", "
      "\"hobby | Only speak about {hobby}. | Topic: {hobby}. | names\", "
      "\"name | Always call me {name}. | Name: {name}. | names\"]",
      0, 0, "'name | full form | terse form | check' per kind; check: word W | ends S | names"),
    K("instructions.slots", CONFIG_STRLIST, slots,
      "[\"hobby: music painting football cooking reading dancing singing swimming\", "
      "\"name: Tom Mia Sam Ana Ben Lily Max Zoe Leo Eva Jack Nina\"]",
      0, 0, "'slot: value value ...': what a {slot} of a form is filled with"),
    K("instructions.terse_prob", CONFIG_FLOAT, terse_prob, "0.5", 0, 1, "share of examples whose system prompt is the terse form"),
    {.key = "synth.attach", .type = CONFIG_ENUM, .offset = offsetof(GattCfg, attach), .def = "system_block",
     .choices = "system_block|prefix|suffix",
     .help = "how the instruction joins each user turn while sampling: the <<SYS>> block, or before/after the text"},
    K("synth.min_turns", CONFIG_INT, min_turns, "2", 1, 1 << 20, "dialogues with fewer user turns are skipped"),
    K("synth.max_turns", CONFIG_INT, max_turns, "0", 0, 1 << 20, "keep at most this many user turns (0 = all)"),
    K("sample.temperature", CONFIG_FLOAT, temperature, "0.7", 0, 100, "synth: softmax temperature (0 = greedy)"),
    K("sample.top_p", CONFIG_FLOAT, top_p, "0.9", 1e-9, 1, "synth: nucleus mass"),
    K("sample.top_k", CONFIG_INT, top_k, "0", 0, 1 << 24, "keep the k most likely tokens (0 = all)"),
    K("sample.max_new", CONFIG_INT, max_new, "64", 1, 1 << 20, "most new tokens per answer"),
    K("sample.batch", CONFIG_INT, batch, "32", 1, 1 << 16, "sequences decoded together"),
    K("data.split", CONFIG_STRING, split, "train", 0, 0, "synth: store prompts of this split (empty = all)"),
    K("data.source", CONFIG_STRING, source, "", 0, 0, "store prompts of this source only (empty = all)"),
    K("data.limit", CONFIG_INT, limit, "0", 0, (double)INT64_MAX, "at most this many store prompts (0 = all)"),
    K("eval.split", CONFIG_STRING, eval_split, "test", 0, 0, "eval: store prompts of this split (empty = all)"),
    K("eval.temperature", CONFIG_FLOAT, eval_temperature, "0", 0, 100, "eval: softmax temperature (0 = greedy)"),
    K("eval.top_p", CONFIG_FLOAT, eval_top_p, "1", 1e-9, 1, "eval: nucleus mass"),
    K("eval.from_turn", CONFIG_INT, eval_from, "4", 1, 1 << 20, "eval: the summary row pools the answers of this turn and later"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: gatt_augment synth --model DIR [options] [FILE|-]...\n"
            "       gatt_augment eval --model DIR [--model DIR]... [options] [FILE|-]...\n"
            "       gatt_augment forms [--config FILE] [--set key=value]...\n\n"
            "Ghost Attention (Llama 2 3.3). synth: draws an instruction per multi-turn dialogue, attaches it to\n"
            "every user turn, samples the answers with the model, and writes SFT examples (source gatt) with the\n"
            "instruction only as the first turn's system prompt and loss on the last answer only. eval: adherence\n"
            "to the system instruction per turn on held-out dialogues, one column per model. forms: the\n"
            "instruction kinds with their full and terse forms. Inputs are JSONL records with a dialogue; with\n"
            "no FILE named, the store's prompts (docs/gatt_augment.md).\n\n"
            "options:\n"
            "  --model DIR        checkpoint to sample from (synth: one; eval: up to %d, in table order)\n"
            "  --label NAME       eval: column name of the model given in the same position (repeatable;\n"
            "                     default: the --model path without a trailing /ckpt)\n"
            "  --emit jsonl|store synth: examples as JSONL on stdout (default) or into the store (needs --db),\n"
            "                     all in one transaction at the end\n"
            "  --db PATH          the store: prompts come from it when no input is named, examples go to it\n"
            "                     with --emit store, the run and eval metrics are recorded in it (default ./prefs.db)\n"
            "  --out DIR          eval: write adherence.tsv, adherence.gp, adherence.png and the dialogues there\n"
            "  --iteration N      pipeline iteration written with the examples and the run (default 0)\n"
            "  --config FILE      YAML configuration (keys below)\n"
            "  --set key=value    override one configuration key (repeatable)\n"
            "  --seed N           --set seed=N, applied after every --set\n"
            "  --threads N        threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n\n"
            "configuration keys:\n",
            MAX_MODELS);
    config_print_help(GATT_SCHEMA, f);
}

typedef enum { CMD_SYNTH, CMD_EVAL, CMD_FORMS } Cmd;

typedef struct {
    Cmd cmd;
    bool have_cmd;
    const char *models[MAX_MODELS], *labels[MAX_MODELS];
    int nmodels, nlabels;
    const char *out;
    bool to_store;
    CliCommon cli; /* --db, --iteration, --config, --set, --seed, --threads, the inputs */
} Opts;

static int parse_opts(int argc, char **argv, Opts *o) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"label", required_argument, 0, 'L'}, {"emit", required_argument, 0, 'E'},
        {"out", required_argument, 0, 'o'}, CLI_OPTIONS_STORE, CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    o->cli.iteration = 0;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1 || (optind < argc && argv[optind][0] != '-')) {
        if (c == -1) { /* the subcommand, wherever it stands among the options */
            const char *w = argv[optind++];
            if (o->have_cmd || (strcmp(w, "synth") && strcmp(w, "eval") && strcmp(w, "forms"))) {
                optind--;
                break;
            }
            o->cmd = strcmp(w, "synth") == 0 ? CMD_SYNTH : strcmp(w, "eval") == 0 ? CMD_EVAL : CMD_FORMS;
            o->have_cmd = true;
            continue;
        }
        switch (c) {
        case 'm':
            if (o->nmodels == MAX_MODELS) return cli_fail(PROG, ERR_INPUT, "--model: at most %d models", MAX_MODELS);
            o->models[o->nmodels++] = optarg;
            break;
        case 'L':
            if (o->nlabels == MAX_MODELS) return cli_fail(PROG, ERR_INPUT, "--label: at most %d labels", MAX_MODELS);
            o->labels[o->nlabels++] = optarg;
            break;
        case 'E':
            if (strcmp(optarg, "jsonl") != 0 && strcmp(optarg, "store") != 0)
                return cli_fail(PROG, ERR_INPUT, "--emit: expected jsonl or store, got '%s'", optarg);
            o->to_store = strcmp(optarg, "store") == 0;
            break;
        case 'o': o->out = optarg; break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    if (!o->have_cmd) {
        if (optind < argc) return cli_fail(PROG, ERR_INPUT, "unknown command '%s' (synth, eval or forms)", argv[optind]);
        return cli_fail(PROG, ERR_INPUT, "a command is required: synth, eval or forms (see --help)");
    }
    cli_common_inputs(&o->cli, argc, argv);
    if (o->cmd == CMD_FORMS) {
        if (o->cli.ninputs || o->nmodels) return cli_fail(PROG, ERR_INPUT, "forms takes no model or inputs");
        return 0;
    }
    if (!o->nmodels) return cli_fail(PROG, ERR_INPUT, "--model DIR is required (see --help)");
    if (o->cmd == CMD_SYNTH && o->nmodels > 1) return cli_fail(PROG, ERR_INPUT, "synth samples from one --model");
    if (o->nlabels > o->nmodels) return cli_fail(PROG, ERR_INPUT, "more --label than --model");
    if (o->cmd == CMD_EVAL && o->to_store) return cli_fail(PROG, ERR_INPUT, "--emit is for synth; eval writes its metrics to --db");
    if (o->cmd == CMD_SYNTH && (o->out || o->nlabels)) return cli_fail(PROG, ERR_INPUT, "--out and --label are for eval");
    return 0;
}

/* ---- dialogues ----------------------------------------------------------------------------------- */

typedef struct {
    json_t *rec;        /* the input record (owned); users point into it */
    const char **users; /* (n) user turns */
    size_t n;
    uint64_t index;     /* identity: record number or store id */
    GattInstr instr;    /* synth: drawn; eval: recognised from the system prompt */
    char *shown;        /* synth: the full form attached while sampling; eval: NULL */
    char **answers;     /* (n) filled turn by turn */
    bool dead;          /* dropped: too long or an unfinished answer */
} Dlg;

typedef struct {
    Dlg *v;
    size_t n, cap;
    int64_t skipped; /* too few turns (synth) or no recognised instruction (eval) */
} DlgList;

static void dlgs_free(DlgList *l) {
    for (size_t i = 0; i < l->n; i++) {
        Dlg *d = &l->v[i];
        for (size_t t = 0; t < d->n; t++) free(d->answers[t]);
        free(d->answers);
        free(d->users);
        free(d->shown);
        gatt_instr_free(&d->instr);
        json_decref(d->rec);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

typedef struct {
    Cmd cmd;
    const GattCfg *c;
    const GattList *list;
    Rng rng;
} DlgCtx;

/* Take rec (a new reference, consumed) as a dialogue, or count it as skipped. */
static Err add_dialogue(DlgList *l, const DlgCtx *x, json_t *rec, uint64_t index) {
    if (!json_is_object(rec)) {
        json_decref(rec);
        return err_set(ERR_INPUT, "expected a JSON object with a \"dialogue\"");
    }
    const json_t *sys = json_object_get(rec, "system");
    if (sys && !json_is_string(sys)) {
        json_decref(rec);
        return err_set(ERR_INPUT, "\"system\": expected a string");
    }
    Dlg d = {.rec = rec, .index = index};
    Err rc = gatt_user_turns(json_object_get(rec, "dialogue"), &d.users, &d.n);
    if (rc) {
        json_decref(rec);
        return rc;
    }
    bool keep;
    if (x->cmd == CMD_SYNTH) {
        if (x->c->max_turns > 0 && d.n > (size_t)x->c->max_turns) d.n = (size_t)x->c->max_turns;
        keep = d.n >= (size_t)x->c->min_turns;
        if (keep) {
            Rng r = rng_fork(&x->rng, index);
            gatt_draw(x->list, &r, x->c->terse_prob, &d.instr);
            d.shown = gatt_render(x->list, d.instr.kind, d.instr.value, false);
        }
    } else {
        keep = sys && gatt_match(x->list, json_string_value(sys), &d.instr);
    }
    if (!keep) {
        l->skipped++;
        free(d.users);
        json_decref(rec);
        return ERR_OK;
    }
    d.answers = xcalloc(d.n, sizeof *d.answers);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = d;
    return ERR_OK;
}

static Err read_jsonl(DlgList *l, const DlgCtx *x, const char *path, uint64_t *count) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, path);
    if (rc) return rc;
    json_t *v;
    int64_t line;
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        if ((rc = add_dialogue(l, x, v, ++*count))) {
            rc = err_prefix(rc, "%s:%" PRId64 ": ", jsonl_name(r), line);
            break;
        }
    }
    jsonl_close(r);
    return rc;
}

typedef struct {
    DlgList *l;
    const DlgCtx *x;
} StoreCtx;

static Err add_store_prompt(void *ctx, const StorePrompt *p) {
    StoreCtx *s = ctx;
    json_error_t je;
    json_t *dialogue = json_loads(p->dialogue, 0, &je);
    if (!dialogue) return err_set(ERR_INPUT, "prompt %" PRId64 ": dialogue: %s", p->id, je.text);
    json_t *o = json_object();
    json_object_set_new(o, "dialogue", dialogue);
    if (p->system && *p->system) json_object_set_new(o, "system", json_string(p->system));
    json_object_set_new(o, "id", json_integer(p->id));
    Err rc = add_dialogue(s->l, s->x, o, (uint64_t)p->id);
    return rc ? err_prefix(rc, "prompt %" PRId64 ": ", p->id) : ERR_OK;
}

/* ---- turn-by-turn sampling ------------------------------------------------------------------------ */

/* The answer's text: the tokens before EOS, decoded, without surrounding whitespace (as chat.h strips
 * an answer before encoding it, so the text goes back into the next prompt as the model saw it). */
typedef struct {
    int64_t too_long, unfinished, answers, tokens;
} RollStats;

/* Answer every turn of every live dialogue, turn by turn, each turn's dialogues in one gen_run.
 * attach (synth) joins d->shown to every user turn and uses no system prompt; attach NULL (eval) shows
 * the instruction only as the system prompt. */
static Err rollout(Model *m, const Tokenizer *tok, DlgList *l, const GenConfig *g0, const char *attach, RollStats *st) {
    size_t maxn = 0;
    for (size_t i = 0; i < l->n; i++) maxn = l->v[i].n > maxn ? l->v[i].n : maxn;
    GenPrompt *gp = xmalloc((l->n ? l->n : 1) * sizeof *gp);
    size_t *who = xmalloc((l->n ? l->n : 1) * sizeof *who);
    TokenList *ids = xcalloc(l->n ? l->n : 1, sizeof *ids);
    Err rc = ERR_OK;
    for (size_t t = 0; !rc && t < maxn; t++) {
        int np = 0;
        for (size_t i = 0; !rc && i < l->n; i++) {
            Dlg *d = &l->v[i];
            if (d->dead || t >= d->n) continue;
            json_t *dj = gatt_turn_dialogue(d->users, (const char *const *)d->answers, t, attach, d->shown);
            TokenList *p = &ids[np];
            p->n = 0;
            rc = chat_encode_prompt(tok, dj, attach ? NULL : d->instr.text, p);
            json_decref(dj);
            if (rc) break;
            /* room for at least a few answer tokens, or the answer is cut by the context */
            if (p->n + 8 > (size_t)m->cfg.max_seq_len) {
                d->dead = true;
                st->too_long++;
                continue;
            }
            gp[np] = (GenPrompt){p->ids, (int)p->n, d->index};
            who[np++] = i;
        }
        if (rc || !np) break;
        GenConfig g = *g0;
        g.seed = g0->seed + (uint64_t)t * 0x9E3779B97F4A7C15ull; /* another stream per turn */
        GenSample *out = xmalloc((size_t)np * sizeof *out);
        if ((rc = gen_run(m, gp, np, 1, &g, out, NULL))) {
            free(out);
            break;
        }
        for (int j = 0; j < np; j++) {
            Dlg *d = &l->v[who[j]];
            d->answers[t] = gen_answer_text(tok, &out[j]);
            st->answers++;
            st->tokens += out[j].n;
            if (out[j].stop != GEN_STOP_EOS || !*d->answers[t]) {
                d->dead = true;
                st->unfinished++;
            }
        }
        gen_samples_free(out, np);
        free(out);
        fprintf(stderr, PROG ": turn %zu: %d dialogues answered\n", t + 1, np);
    }
    for (size_t i = 0; i < l->n; i++) token_list_free(&ids[i]);
    free(ids);
    free(who);
    free(gp);
    return rc;
}

/* ---- runs ----------------------------------------------------------------------------------------- */

typedef struct {
    const Opts *o;
    GattCfg *c;
    GattList list;
    Store *db;
    int64_t run_id;
    char *config_text;
} Ctx;

static Err load_dialogues(Ctx *x, Cmd cmd, DlgList *l) {
    DlgCtx dc = {.cmd = cmd, .c = x->c, .list = &x->list};
    rng_seed(&dc.rng, (uint64_t)x->c->seed);
    uint64_t count = 0;
    Err rc = ERR_OK;
    for (int i = 0; !rc && i < x->o->cli.ninputs; i++) rc = read_jsonl(l, &dc, x->o->cli.inputs[i], &count);
    if (!rc && x->o->cli.ninputs == 0) {
        StoreFilter f = store_filter_any();
        const char *split = cmd == CMD_EVAL ? x->c->eval_split : x->c->split;
        f.split = *split ? split : NULL;
        f.source = *x->c->source ? x->c->source : NULL;
        f.limit = x->c->limit;
        StoreCtx sc = {l, &dc};
        rc = store_prompts_each(x->db, &f, add_store_prompt, &sc);
    }
    return rc;
}

static GenConfig gen_config(const GattCfg *c, bool eval) {
    GenConfig g = {.sampler = {.temperature = (float)(eval ? c->eval_temperature : c->temperature), .top_k = (int)c->top_k,
                               .top_p = (float)(eval ? c->eval_top_p : c->top_p)},
                   .max_new = (int)c->max_new, .batch = (int)c->batch, .seed = (uint64_t)c->seed};
    return g;
}

static Err load_model(const char *dir, Model *m, CkptMap *map, Tokenizer *tok) {
    Err rc = ckpt_load_model(m, dir, map);
    if (rc) return rc;
    if ((rc = ckpt_load_tokenizer(tok, dir, m->cfg.vocab_size))) {
        model_free(m);
        ckpt_map_free(map);
    }
    return rc;
}

static const char *attach_template(const char *mode) {
    if (strcmp(mode, "prefix") == 0) return "{instruction} {user}";
    if (strcmp(mode, "suffix") == 0) return "{user} {instruction}";
    return "<<SYS>>\n{instruction}\n<</SYS>>\n\n{user}";
}

static Err synth(Ctx *x, json_t *outputs) {
    Model m;
    CkptMap map;
    Tokenizer tok;
    Err rc = load_model(x->o->models[0], &m, &map, &tok);
    if (rc) return rc;
    DlgList l = {0};
    RollStats st = {0};
    rc = load_dialogues(x, CMD_SYNTH, &l);
    GenConfig g = gen_config(x->c, false);
    if (!rc) rc = rollout(&m, &tok, &l, &g, attach_template(x->c->attach), &st);
    int64_t written = 0, terse = 0;
    if (!rc && x->o->to_store) rc = store_begin(x->db);
    for (size_t i = 0; !rc && i < l.n; i++) {
        Dlg *d = &l.v[i];
        if (d->dead) continue;
        json_t *rec = gatt_example(&x->list, d->users, (const char *const *)d->answers, d->n, &d->instr, x->o->cli.iteration);
        if (x->o->to_store) {
            char *dialogue = json_dumps(json_object_get(rec, "dialogue"), JSON_COMPACT);
            char *loss = json_dumps(json_object_get(rec, "loss_turns"), JSON_COMPACT);
            char *tags = json_dumps(json_object_get(rec, "tags"), JSON_COMPACT);
            StoreSftExample e = {.dialogue = dialogue, .system = d->instr.text, .loss_turns = loss, .source = "gatt",
                                 .iteration = x->o->cli.iteration, .tags = tags, .split = "train"};
            int64_t id;
            rc = store_sft_add(x->db, &e, &id);
            free(dialogue);
            free(loss);
            free(tags);
        } else {
            rc = jsonl_write(stdout, rec);
        }
        json_decref(rec);
        written++;
        terse += d->instr.terse;
    }
    if (x->o->to_store) {
        if (rc) store_rollback(x->db);
        else rc = store_commit(x->db);
    }
    if (!rc && fflush(stdout) != 0) rc = err_set(ERR_RUNTIME, "stdout: %s", strerror(errno));
    if (!rc)
        fprintf(stderr,
                PROG ": %" PRId64 " examples (%" PRId64 " terse) from %zu dialogues; dropped %" PRId64 " too long, %" PRId64
                     " with an unfinished answer; skipped %" PRId64 " with fewer than %" PRId64 " turns\n",
                written, terse, l.n, st.too_long, st.unfinished, l.skipped, x->c->min_turns);
    json_object_set_new(outputs, "to", json_string(x->o->to_store ? "store" : "stdout"));
    json_object_set_new(outputs, "examples", json_integer(written));
    json_object_set_new(outputs, "terse", json_integer(terse));
    json_object_set_new(outputs, "dropped", json_integer(st.too_long + st.unfinished));
    dlgs_free(&l);
    tokenizer_free(&tok);
    model_free(&m);
    ckpt_map_free(&map);
    return rc;
}

/* "runs/x/ckpt" -> "runs/x": the run directory names a model better than its checkpoint folder. */
static char *default_label(const char *model) {
    char *s = xstrdup(model);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = '\0';
    if (n > 5 && strcmp(s + n - 5, "/ckpt") == 0) s[n - 5] = '\0';
    return s;
}

/* The generated dialogues of one model as sft_example records (what `toyworld score` reads). */
static Err write_dialogues(const char *path, const DlgList *l) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    Err rc = ERR_OK;
    for (size_t i = 0; !rc && i < l->n; i++) {
        const Dlg *d = &l->v[i];
        size_t n = 0;
        while (n < d->n && d->answers[n]) n++;
        if (!n) continue;
        json_t *dj = json_array();
        for (size_t t = 0; t < n; t++) {
            json_array_append_new(dj, json_pack("{s:s, s:s}", "role", "user", "content", d->users[t]));
            json_array_append_new(dj, json_pack("{s:s, s:s}", "role", "assistant", "content", d->answers[t]));
        }
        json_t *rec = json_pack("{s:s, s:o, s:s, s:s}", "type", "sft_example", "dialogue", dj, "system", d->instr.text,
                                "loss_turns", "all");
        rc = jsonl_write(f, rec);
        json_decref(rec);
    }
    if (fclose(f) != 0 && !rc) rc = err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    return rc;
}

/* Run gnuplot on script, if it is installed; its absence is not an error (the TSV is the result). */
static void run_gnuplot(const char *script) {
    pid_t pid = fork();
    if (pid < 0) return;
    if (pid == 0) {
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, PROG ": gnuplot %s did not run (%s); the table is in adherence.tsv\n", script,
                WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "not installed" : "failed");
}

typedef struct {
    int64_t *n, *ok; /* (maxn) answers the model gave at turn t+1, and the adherent ones among them */
} Adherence;

static Err write_outputs(const Ctx *x, char **labels, const Adherence *a, const int64_t *reach, int nm, size_t maxn) {
    const char *dir = x->o->out;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return err_set(ERR_RUNTIME, "%s: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/adherence.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    fprintf(f, "turn\tdialogues");
    for (int j = 0; j < nm; j++) fprintf(f, "\t%s", labels[j]);
    fprintf(f, "\n");
    for (size_t t = 0; t < maxn; t++) {
        fprintf(f, "%zu\t%" PRId64, t + 1, reach[t]);
        for (int j = 0; j < nm; j++) fprintf(f, "\t%.6f", a[j].n[t] ? (double)a[j].ok[t] / (double)a[j].n[t] : NAN);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) return err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/adherence.gp", dir);
    if (!(f = fopen(path, "w"))) return err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    /* Paths in the script are relative to the script's folder, so it can be rerun from anywhere. */
    fprintf(f,
            "# Adherence to the system instruction per dialogue turn (Llama 2 Figure 9). gnuplot %s\n"
            "cd ARG0[:strlen(ARG0)-strlen('adherence.gp')]\n"
            "set terminal pngcairo size 720,420\nset output 'adherence.png'\n"
            "set datafile separator tab\nset key autotitle columnhead bottom left\n"
            "set xlabel 'dialogue turn'\nset ylabel 'answers that follow the instruction'\n"
            "set yrange [0:1.05]\nset xtics 1\nset grid\n"
            "plot for [i=3:%d] 'adherence.tsv' using 1:i with linespoints lw 2\n",
            path, nm + 2);
    if (fclose(f) != 0) return err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    run_gnuplot(path);
    return ERR_OK;
}

static Err eval(Ctx *x, json_t *outputs) {
    int nm = x->o->nmodels;
    char *labels[MAX_MODELS];
    Adherence a[MAX_MODELS];
    for (int j = 0; j < nm; j++) {
        labels[j] = j < x->o->nlabels ? xstrdup(x->o->labels[j]) : default_label(x->o->models[j]);
        a[j] = (Adherence){0};
    }
    /* The dialogues are read once (stdin cannot be read twice) and answered by each model in turn. */
    DlgList l = {0};
    Err rc = load_dialogues(x, CMD_EVAL, &l);
    if (!rc && l.n == 0) rc = err_set(ERR_INPUT, "no dialogue with a system prompt that is one of instructions.kinds");
    size_t maxn = 0;
    int64_t ndlg = (int64_t)l.n, skipped = l.skipped, *reach = NULL; /* (maxn) input dialogues of at least t+1 turns */
    for (size_t i = 0; i < l.n; i++) maxn = l.v[i].n > maxn ? l.v[i].n : maxn;
    reach = xcalloc(maxn ? maxn : 1, sizeof *reach);
    for (size_t i = 0; i < l.n; i++)
        for (size_t t = 0; t < l.v[i].n; t++) reach[t]++;
    for (int j = 0; !rc && j < nm; j++) {
        Model m;
        CkptMap map;
        Tokenizer tok;
        if ((rc = load_model(x->o->models[j], &m, &map, &tok))) break;
        for (size_t i = 0; i < l.n; i++) { /* forget the previous model's answers */
            for (size_t t = 0; t < l.v[i].n; t++) {
                free(l.v[i].answers[t]);
                l.v[i].answers[t] = NULL;
            }
            l.v[i].dead = false;
        }
        RollStats st = {0};
        GenConfig g = gen_config(x->c, true);
        rc = rollout(&m, &tok, &l, &g, NULL, &st);
        if (!rc) {
            a[j].n = xcalloc(maxn ? maxn : 1, sizeof *a[j].n);
            a[j].ok = xcalloc(maxn ? maxn : 1, sizeof *a[j].ok);
            /* A dialogue dropped for length still counts for the turns it answered. */
            for (size_t i = 0; i < l.n; i++)
                for (size_t t = 0; t < l.v[i].n && t < maxn && l.v[i].answers[t]; t++) {
                    a[j].n[t]++;
                    a[j].ok[t] += gatt_adheres(&x->list, &l.v[i].instr, l.v[i].answers[t]);
                }
            if (st.too_long)
                fprintf(stderr, PROG ": %s: %" PRId64 " dialogues stopped early: the model's context is full\n", labels[j],
                        st.too_long);
        }
        if (!rc && x->o->out) {
            char path[4096];
            snprintf(path, sizeof path, "%s/dialogues-%d.jsonl", x->o->out, j + 1);
            if (mkdir(x->o->out, 0777) != 0 && errno != EEXIST) rc = err_set(ERR_RUNTIME, "%s: %s", x->o->out, strerror(errno));
            else rc = write_dialogues(path, &l);
        }
        tokenizer_free(&tok);
        model_free(&m);
        ckpt_map_free(&map);
    }
    if (!rc) {
        /* The table: one row per turn, one column per model, and the pooled row from eval.from_turn. */
        printf("%-6s %9s", "turn", "dialogues");
        for (int j = 0; j < nm; j++) printf("  %12s", labels[j]);
        printf("\n");
        int64_t from = x->c->eval_from;
        int64_t pn[MAX_MODELS] = {0}, pok[MAX_MODELS] = {0}, pdlg = 0;
        for (size_t t = 0; t < maxn; t++) {
            printf("%-6zu %9" PRId64, t + 1, reach[t]);
            for (int j = 0; j < nm; j++) {
                double v = a[j].n[t] ? (double)a[j].ok[t] / (double)a[j].n[t] : NAN;
                printf("  %12.3f", v);
                if ((int64_t)t + 1 >= from) pn[j] += a[j].n[t], pok[j] += a[j].ok[t];
                char name[300];
                snprintf(name, sizeof name, "adherence/%s", labels[j]);
                if (!rc && x->run_id && a[j].n[t]) rc = store_metric_put(x->db, x->run_id, (int64_t)t + 1, name, v);
            }
            if ((int64_t)t + 1 >= from) pdlg += reach[t];
            printf("\n");
            if (!rc && x->run_id) rc = store_metric_put(x->db, x->run_id, (int64_t)t + 1, "dialogues", (double)reach[t]);
        }
        char row[32];
        snprintf(row, sizeof row, "%" PRId64 "+", from);
        printf("%-6s %9" PRId64, row, pdlg);
        json_t *pooled = json_object();
        for (int j = 0; j < nm; j++) {
            double v = pn[j] ? (double)pok[j] / (double)pn[j] : NAN;
            printf("  %12.3f", v);
            if (pn[j]) json_object_set_new(pooled, labels[j], json_real(v));
        }
        printf("\n");
        fprintf(stderr, PROG ": %" PRId64 " dialogues (%" PRId64 " inputs without a known instruction skipped)\n", ndlg, skipped);
        json_object_set_new(outputs, "dialogues", json_integer(ndlg));
        json_object_set_new(outputs, "from_turn", json_integer(from));
        json_object_set_new(outputs, "adherence_from_turn", pooled);
        if (!rc && fflush(stdout) != 0) rc = err_set(ERR_RUNTIME, "stdout: %s", strerror(errno));
        if (!rc && x->o->out) rc = write_outputs(x, labels, a, reach, nm, maxn);
    }
    dlgs_free(&l);
    free(reach);
    for (int j = 0; j < nm; j++) {
        free(labels[j]);
        free(a[j].n);
        free(a[j].ok);
    }
    return rc;
}

static void forms(const GattList *l) {
    printf("kind\tfull\tterse\tcheck\n");
    for (size_t i = 0; i < l->nkinds; i++) {
        const GattKind *k = &l->kinds[i];
        const char *value = k->slot >= 0 ? l->slots[k->slot].values[0] : NULL;
        char *full = gatt_render(l, (int)i, value, false), *terse = gatt_render(l, (int)i, value, true);
        printf("%s\t%s\t%s\t%s%s%s\n", k->name, full, terse,
               k->check == GATT_CHECK_WORD ? "word " : k->check == GATT_CHECK_ENDS ? "ends " : "names ",
               k->arg ? k->arg : "", k->check == GATT_CHECK_NAMES ? value : "");
        free(full);
        free(terse);
    }
}

static int run(const Opts *o, GattCfg *c) {
    Ctx x = {.o = o, .c = c};
    Err rc = gatt_list_parse(&x.list, (const char *const *)c->kinds.items, c->kinds.n, (const char *const *)c->slots.items,
                             c->slots.n);
    if (rc) return cli_fail(PROG, rc, "instructions.%s", err_msg());
    if (o->cmd == CMD_FORMS) {
        forms(&x.list);
        gatt_list_free(&x.list);
        return 0;
    }
    x.config_text = config_dump_string(GATT_SCHEMA, c);
    bool from_store = o->cli.ninputs == 0;
    if (from_store && !o->cli.db && access("prefs.db", F_OK) != 0)
        rc = err_set(ERR_INPUT, "no input named and no store at ./prefs.db (give FILE|- or --db PATH)");
    else if (o->to_store && !o->cli.db) rc = err_set(ERR_INPUT, "--emit store needs --db PATH");
    else if (from_store || o->cli.db) rc = store_open(&x.db, o->cli.db ? o->cli.db : "prefs.db");
    if (!rc && x.db) {
        json_t *in = json_pack("{s:s, s:o, s:o}", "command", o->cmd == CMD_SYNTH ? "synth" : "eval", "models", json_array(),
                               "dialogues", json_array());
        for (int i = 0; i < o->nmodels; i++) json_array_append_new(json_object_get(in, "models"), json_string(o->models[i]));
        for (int i = 0; i < o->cli.ninputs; i++) json_array_append_new(json_object_get(in, "dialogues"), json_string(o->cli.inputs[i]));
        if (from_store) json_array_append_new(json_object_get(in, "dialogues"), json_string("store"));
        char *ins = jsonl_dumps(in, JSON_COMPACT);
        json_decref(in);
        rc = store_run_begin(x.db, PROG, o->cli.iteration, x.config_text, ins, &x.run_id);
        free(ins);
    }
    json_t *outputs = json_object();
    if (!rc) rc = o->cmd == CMD_SYNTH ? synth(&x, outputs) : eval(&x, outputs);
    if (x.run_id) {
        char *outs = jsonl_dumps(outputs, JSON_COMPACT);
        Err e2 = store_run_end(x.db, x.run_id, outs, rc ? "failed" : "ok");
        free(outs);
        if (!rc) rc = e2;
    }
    json_decref(outputs);
    if (rc) cli_fail(PROG, rc, "%s", err_msg());
    if (x.db) store_close(x.db);
    free(x.config_text);
    gatt_list_free(&x.list);
    return rc;
}

int main(int argc, char **argv) {
    Opts o;
    GattCfg c;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) rc = cli_common_config(&o.cli, GATT_SCHEMA, &c, &c.seed);
    cli_common_free(&o.cli);
    if (rc) return rc == CLI_DONE ? 0 : rc;
    threads_set(o.cli.threads);
    rc = run(&o, &c);
    config_free(GATT_SCHEMA, &c);
    return rc;
}
