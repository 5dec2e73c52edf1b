/*
 * generate — K answers per prompt from any checkpoint, or a chat with it.
 *
 *   generate --model DIR [options] FILE|-        prompts as JSONL -> responses as JSONL (stdout)
 *   generate --model DIR --db PATH [options]     the store's prompts (filters: data.*) -> JSONL
 *   ... --emit store                             the responses go into the store instead (--db)
 *   generate --model DIR --interactive           a chat REPL with the Llama 2 template
 *
 * Prompts are Prompt objects ({"dialogue": [... ending with a user turn], "system"?, "tags"?, "split"?,
 * "source"?, "id"?}, with "type": "prompt" or without a type). Each becomes the Llama 2 chat prompt
 * (chat.h: "<s>[INST] <<SYS>>...<</SYS>> {user} [/INST]"), and gen.h decodes every (prompt, sample)
 * pair in batches through the KV cache. A response line is the interchange record
 *     {"type":"response","prompt":{...the prompt object...},"text":..,"model":..,"iteration":..,
 *      "temperature":..,"top_p":..}
 * which `prefs_db import -` reads. Output is in (prompt, sample) order, and sample j of a prompt is a
 * function of (seed, the prompt's line number or store id, j) only — not of the batch size or threads.
 * A prompt that does not fit the model's context is skipped with a warning on stderr.
 *
 * --emit store writes all or nothing: the answers wait in a spool (an unlinked temporary file, gone
 * with the process however it ends) while the model samples, and go into the store in one transaction
 * at the end, with the prompts of a JSONL input. An interrupted run leaves none of its responses (only
 * its row in the runs table, status "running"), so running it again gives exactly one set; and the
 * store's write lock is held for the inserts only, never while the model samples.
 *
 * Exit status: 0 ok, 1 runtime failure, 2 usage or input error (bad option, config, prompt line).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "ckpt.h"
#include "generate.h"
#include "jsonl.h"
#include "store.h"
#include "threads.h"
#include "trainlog.h"
#include "util.h"

#define PROG "generate"

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(GenerateCfg, f), .def = d, .min = lo, .max = hi, .help = h}
static const ConfigKey GEN_SCHEMA[] = {
    K("sample.temperature", CONFIG_FLOAT, temperature, "0.7", 0, 100, "softmax temperature (0 = greedy)"),
    K("sample.top_k", CONFIG_INT, top_k, "0", 0, 1 << 24, "keep the k most likely tokens (0 = all)"),
    K("sample.top_p", CONFIG_FLOAT, top_p, "0.9", 1e-9, 1, "nucleus: the smallest set with this much mass"),
    K("sample.max_new", CONFIG_INT, max_new, "128", 1, 1 << 20, "most new tokens per answer"),
    K("sample.k", CONFIG_INT, k, "1", 1, 1 << 16, "answers per prompt (-K)"),
    K("sample.batch", CONFIG_INT, batch, "16", 1, 1 << 16, "sequences decoded together"),
    K("seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "sampling seed (--seed)"),
    K("system", CONFIG_STRING, system, "", 0, 0, "system prompt of --interactive (--system)"),
    K("name", CONFIG_STRING, name, "", 0, 0, "model name written with responses (default: the --model path, without /ckpt)"),
    K("data.split", CONFIG_STRING, split, "", 0, 0, "store prompts of this split only (train|test; empty = all)"),
    K("data.source", CONFIG_STRING, source, "", 0, 0, "store prompts of this source only"),
    K("data.risk", CONFIG_STRING, risk, "", 0, 0, "store prompts with this tags.risk only"),
    K("data.limit", CONFIG_INT, limit, "0", 0, (double)INT64_MAX, "at most this many store prompts (0 = all)"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: generate --model DIR [options] [FILE|-]\n"
            "       generate --model DIR --interactive [--system TEXT]\n\n"
            "Answers each prompt (JSONL Prompt objects from FILE or - ; with none named, the store's prompts)\n"
            "K times with the Llama 2 chat template, decoding many sequences at once with the KV cache, and\n"
            "writes response records as JSONL on stdout (or into the store with --emit store). --interactive\n"
            "is a chat on the terminal: type a message, read the answer; /reset, /system TEXT, /quit.\n\n"
            "options:\n"
            "  --model DIR        checkpoint to sample from (required)\n"
            "  -K N               answers per prompt (same as --set sample.k=N)\n"
            "  --emit jsonl|store where responses go (default jsonl on stdout); store: into --db, all in one\n"
            "                     transaction at the end, so an interrupted run stores none of them\n"
            "  --db PATH          the store: prompts come from it when no input is named, responses go to it\n"
            "                     with --emit store, and the run is recorded in it (default ./prefs.db)\n"
            "  --iteration N      pipeline iteration written with the responses (default 0)\n"
            "  --interactive      chat REPL on stdin/stdout\n"
            "  --system TEXT      system prompt of the chat (same as --set system=TEXT)\n"
            "  --config FILE      YAML configuration (keys below)\n"
            "  --set key=value    override one configuration key (repeatable); -K and --system are --sets in\n"
            "                     their place, so of -K 3 --set sample.k=2 the later, k = 2, wins\n"
            "  --seed N           --set seed=N, applied after every --set\n"
            "  --threads N        threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n\n"
            "configuration keys:\n");
    config_print_help(GEN_SCHEMA, f);
}

typedef struct {
    CliCommon cli; /* --model, --db, --iteration, --config, --set (and -K, --system), --seed, --threads, inputs */
    bool interactive, to_store;
} Opts;

static int parse_opts(int argc, char **argv, Opts *o) {
    static const struct option longopts[] = {
        CLI_OPTION_MODEL, {"emit", required_argument, 0, 'E'}, CLI_OPTIONS_STORE, {"interactive", no_argument, 0, 'i'},
        {"system", required_argument, 0, 'y'}, CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    o->cli.iteration = 0;
    int c, rc;
    opterr = 0;
    /* -K and --system are the --set they stand for, in their place: the last assignment of a key wins. */
    while ((c = getopt_long(argc, argv, ":hK:", longopts, NULL)) != -1) {
        switch (c) {
        case 'E':
            if (strcmp(optarg, "jsonl") != 0 && strcmp(optarg, "store") != 0)
                return cli_fail(PROG, ERR_INPUT, "--emit: expected jsonl or store, got '%s'", optarg);
            o->to_store = strcmp(optarg, "store") == 0;
            break;
        case 'i': o->interactive = true; break;
        case 'y': cli_common_set(&o->cli, "system", optarg); break;
        case 'K': cli_common_set(&o->cli, "sample.k", optarg); break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    cli_common_inputs(&o->cli, argc, argv);
    if (!o->cli.model) return cli_fail(PROG, ERR_INPUT, "--model DIR is required (see --help)");
    if (o->interactive && (o->cli.ninputs || o->to_store)) return cli_fail(PROG, ERR_INPUT, "--interactive reads the chat from stdin; it takes no inputs or --emit");
    return 0;
}

/* ---- shared with repl.c ------------------------------------------------------------------------- */

GenConfig generate_gen_config(const GenerateCfg *c) {
    GenConfig g = {.sampler = {.temperature = (float)c->temperature, .top_k = (int)c->top_k, .top_p = (float)c->top_p},
                   .max_new = (int)c->max_new, .batch = (int)c->batch, .seed = (uint64_t)c->seed};
    return g;
}

/* ---- prompts ------------------------------------------------------------------------------------- */

typedef struct {
    json_t *obj;     /* the Prompt object written back with each response (owned) */
    int64_t store_id; /* its row in the store, 0 until known */
    TokenList ids;
    uint64_t index;  /* line number or store id: the seed stream */
} Prompt;

typedef struct {
    Prompt *v;
    size_t n, cap;
    int64_t skipped;
} PromptList;

static void prompts_free(PromptList *l) {
    for (size_t i = 0; i < l->n; i++) {
        json_decref(l->v[i].obj);
        token_list_free(&l->v[i].ids);
    }
    free(l->v);
}

/* Encode obj (a Prompt object) and keep it, or skip it when it does not fit the context. */
static Err add_prompt(PromptList *l, const Tokenizer *tok, const Model *m, json_t *obj, uint64_t index,
                      int64_t store_id, const char *where) {
    const json_t *sys = json_object_get(obj, "system");
    TokenList ids = {0};
    Err rc = chat_encode_prompt(tok, json_object_get(obj, "dialogue"),
                                json_is_string(sys) && *json_string_value(sys) ? json_string_value(sys) : NULL, &ids);
    if (rc) {
        token_list_free(&ids);
        return err_prefix(rc, "%s: ", where);
    }
    if (ids.n > (size_t)m->cfg.max_seq_len - 1) {
        fprintf(stderr, PROG ": %s: skipped: the prompt has %zu tokens and the model's context is %d\n", where, ids.n,
                m->cfg.max_seq_len);
        token_list_free(&ids);
        l->skipped++;
        return ERR_OK;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    json_incref(obj);
    l->v[l->n++] = (Prompt){obj, store_id, ids, index};
    return ERR_OK;
}

static Err check_prompt_record(json_t *rec) {
    static const char *const known[] = {"type", "dialogue", "system", "tags", "split", "source", "id", NULL};
    if (!json_is_object(rec)) return err_set(ERR_INPUT, "expected a JSON object (a prompt)");
    const char *key;
    json_t *val;
    json_object_foreach(rec, key, val) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(key, known[i]) == 0;
        if (!ok) return err_set(ERR_INPUT, "\"%s\": unknown field of a prompt", key);
    }
    const json_t *type = json_object_get(rec, "type");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "prompt") != 0))
        return err_set(ERR_INPUT, "\"type\": expected \"prompt\"");
    const json_t *sys = json_object_get(rec, "system");
    if (sys && !json_is_string(sys)) return err_set(ERR_INPUT, "\"system\": expected a string");
    if (!json_object_get(rec, "dialogue")) return err_set(ERR_INPUT, "\"dialogue\": missing");
    json_object_del(rec, "type");
    return ERR_OK;
}

static Err read_jsonl_prompts(PromptList *l, const Tokenizer *tok, const Model *m, const char *path) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, path);
    if (rc) return rc;
    json_t *v;
    int64_t line;
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        char where[600];
        snprintf(where, sizeof where, "%s:%" PRId64, jsonl_name(r), line);
        rc = check_prompt_record(v);
        if (rc) rc = err_prefix(rc, "%s: ", where);
        else rc = add_prompt(l, tok, m, v, (uint64_t)line, 0, where);
        json_decref(v);
        if (rc) break;
    }
    jsonl_close(r);
    return rc;
}

typedef struct {
    PromptList *l;
    const Tokenizer *tok;
    const Model *m;
} StoreCtx;

static Err add_store_prompt(void *ctx, const StorePrompt *p) {
    StoreCtx *c = ctx;
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
    json_object_set_new(o, "id", json_integer(p->id));
    char where[64];
    snprintf(where, sizeof where, "prompt %" PRId64, p->id);
    Err rc = add_prompt(c->l, c->tok, c->m, o, (uint64_t)p->id, p->id, where);
    json_decref(o);
    return rc;
}

/* ---- output -------------------------------------------------------------------------------------- */

typedef struct {
    const Opts *o;
    const GenerateCfg *c;
    const Tokenizer *tok;
    Store *db;
    PromptList *l;
    const char *model_name;
    FILE *spool; /* --emit store: (prompt index, text) records until store_spool writes them */
    int64_t responses, eos, tokens;
} Emit;

static Err spool_fail(void) { return err_set(ERR_RUNTIME, "the temporary file of the answers: %s", strerror(errno)); }

/* A spool record: the prompt's index in the PromptList and the answer's length, then its bytes. */
static Err spool_put(FILE *f, uint64_t prompt, const char *text) {
    uint64_t head[2] = {prompt, strlen(text)};
    if (fwrite(head, sizeof head, 1, f) != 1 || (head[1] && fwrite(text, head[1], 1, f) != 1)) return spool_fail();
    return ERR_OK;
}

static Err emit_sample(Emit *e, size_t prompt, const GenSample *s) {
    char *text = gen_answer_text(e->tok, s);
    e->responses++;
    e->eos += s->stop == GEN_STOP_EOS;
    e->tokens += s->n;
    Err rc;
    if (e->spool) {
        rc = spool_put(e->spool, prompt, text);
    } else {
        const Prompt *p = &e->l->v[prompt];
        json_t *rec = json_pack("{s:s, s:O, s:s, s:s, s:I, s:f, s:f}", "type", "response", "prompt", p->obj, "text",
                                text, "model", e->model_name, "iteration", (json_int_t)e->o->cli.iteration, "temperature",
                                e->c->temperature, "top_p", e->c->top_p);
        ASSERT(rec);
        rc = jsonl_write(stdout, rec);
        json_decref(rec);
    }
    free(text);
    return rc;
}

/* The spooled answers into the store, in one transaction: prompts of a JSONL input first put (found
 * or created by their content), then each response, in (prompt, sample) order. */
static Err store_spool(Emit *e) {
    if (fflush(e->spool) != 0 || fseek(e->spool, 0, SEEK_SET) != 0) return spool_fail();
    Err rc = store_begin(e->db);
    if (rc) return rc;
    char *text = NULL;
    size_t cap = 0;
    uint64_t head[2];
    for (int64_t i = 0; !rc && i < e->responses; i++) {
        if (fread(head, sizeof head, 1, e->spool) != 1 || head[0] >= e->l->n) {
            rc = ferror(e->spool) ? spool_fail() : err_set(ERR_RUNTIME, "the temporary file of the answers ends early");
            break;
        }
        if (head[1] + 1 > cap) {
            cap = head[1] + 1;
            text = xrealloc(text, cap);
        }
        if (head[1] && fread(text, head[1], 1, e->spool) != 1) {
            rc = spool_fail();
            break;
        }
        text[head[1]] = '\0';
        Prompt *p = &e->l->v[head[0]];
        if (!p->store_id) {
            const json_t *o = p->obj;
            char *dialogue = json_dumps(json_object_get(o, "dialogue"), JSON_COMPACT);
            char *tags = json_object_get(o, "tags") ? json_dumps(json_object_get(o, "tags"), JSON_COMPACT) : NULL;
            const json_t *sys = json_object_get(o, "system"), *split = json_object_get(o, "split"),
                         *src = json_object_get(o, "source");
            StorePrompt sp = {.dialogue = dialogue, .system = json_string_value(sys), .tags = tags,
                              .split = json_string_value(split), .source = json_string_value(src)};
            rc = store_prompt_put(e->db, &sp, &p->store_id, NULL);
            free(dialogue);
            free(tags);
        }
        if (!rc) {
            StoreResponse r = {.prompt_id = p->store_id, .text = text, .model = e->model_name,
                               .iteration = e->o->cli.iteration, .temperature = e->c->temperature, .top_p = e->c->top_p};
            int64_t id;
            rc = store_response_add(e->db, &r, &id);
        }
    }
    free(text);
    if (rc) {
        store_rollback(e->db);
        return rc;
    }
    if ((rc = store_commit(e->db))) return rc;
    fprintf(stderr, PROG ": %" PRId64 " responses stored in one transaction\n", e->responses);
    return ERR_OK;
}

/* Generate for every prompt, in chunks so that memory stays bounded; output in (prompt, sample) order.
 * With --emit store the answers go to the spool here, and into the store at the end (store_spool). */
static Err generate_all(Model *m, PromptList *l, const GenerateCfg *c, Emit *e) {
    enum { CHUNK = 256 };
    GenConfig g = generate_gen_config(c);
    int k = (int)c->k;
    GenPrompt *gp = xmalloc(CHUNK * sizeof *gp);
    GenSample *out = xmalloc((size_t)CHUNK * (size_t)k * sizeof *out);
    Err rc = ERR_OK;
    double t0 = trainlog_now();
    int64_t fed = 0;
    for (size_t first = 0; !rc && first < l->n; first += CHUNK) {
        int n = l->n - first < CHUNK ? (int)(l->n - first) : CHUNK;
        for (int i = 0; i < n; i++) {
            Prompt *p = &l->v[first + (size_t)i];
            gp[i] = (GenPrompt){p->ids.ids, (int)p->ids.n, p->index};
        }
        GenStats st;
        if ((rc = gen_run(m, gp, n, k, &g, out, &st))) break;
        fed += st.fed;
        for (int i = 0; !rc && i < n; i++)
            for (int j = 0; !rc && j < k; j++) rc = emit_sample(e, first + (size_t)i, &out[i * k + j]);
        gen_samples_free(out, (int64_t)n * k);
        if (!rc && fflush(stdout) != 0) rc = err_set(ERR_RUNTIME, "stdout: %s", strerror(errno));
        fprintf(stderr, PROG ": %zu/%zu prompts, %" PRId64 " responses\n", first + (size_t)n, l->n, e->responses);
    }
    double el = trainlog_now() - t0;
    if (!rc)
        fprintf(stderr, PROG ": %" PRId64 " responses (%" PRId64 " ended by EOS), %" PRId64 " new tokens, %.0f tokens/s fed through the model, %.1f s\n",
                e->responses, e->eos, e->tokens, el > 0 ? (double)fed / el : 0.0, el);
    free(gp);
    free(out);
    if (!rc && e->spool) rc = store_spool(e);
    return rc;
}

/* "runs/x/ckpt" -> "runs/x": the run directory names a model better than its checkpoint folder. */
static char *default_name(const char *model) {
    char *s = xstrdup(model);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = '\0';
    if (n > 5 && strcmp(s + n - 5, "/ckpt") == 0) s[n - 5] = '\0';
    return s;
}

static int run(const Opts *o, GenerateCfg *c) {
    Model m;
    CkptMap map;
    Tokenizer tok;
    Err rc = ckpt_load_model(&m, o->cli.model, &map);
    if (rc) return cli_fail(PROG, rc, "%s", err_msg());
    if ((rc = ckpt_load_tokenizer(&tok, o->cli.model, m.cfg.vocab_size))) {
        model_free(&m);
        ckpt_map_free(&map);
        return cli_fail(PROG, rc, "%s", err_msg());
    }
    if (o->interactive) {
        int code = generate_repl(&m, &tok, c);
        tokenizer_free(&tok);
        model_free(&m);
        ckpt_map_free(&map);
        return code;
    }
    Store *db = NULL;
    PromptList prompts = {0};
    int64_t run_id = 0;
    char *name = *c->name ? xstrdup(c->name) : default_name(o->cli.model);
    char *config_text = config_dump_string(GEN_SCHEMA, c);
    bool from_store = o->cli.ninputs == 0;
    if (from_store && !o->cli.db && access("prefs.db", F_OK) != 0)
        rc = err_set(ERR_INPUT, "no input named and no store at ./prefs.db (give FILE|- or --db PATH)");
    else if (from_store || o->to_store || o->cli.db)
        rc = store_open(&db, o->cli.db ? o->cli.db : "prefs.db");
    for (int i = 0; !rc && i < o->cli.ninputs; i++) rc = read_jsonl_prompts(&prompts, &tok, &m, o->cli.inputs[i]);
    if (!rc && from_store) {
        StoreFilter f = store_filter_any();
        f.split = *c->split ? c->split : NULL;
        f.source = *c->source ? c->source : NULL;
        f.risk = *c->risk ? c->risk : NULL;
        f.limit = c->limit;
        StoreCtx ctx = {&prompts, &tok, &m};
        rc = store_prompts_each(db, &f, add_store_prompt, &ctx);
    }
    if (!rc && db) {
        json_t *in = json_pack("{s:s, s:o}", "model", o->cli.model, "prompts", json_array());
        for (int i = 0; i < o->cli.ninputs; i++) json_array_append_new(json_object_get(in, "prompts"), json_string(o->cli.inputs[i]));
        if (from_store) json_array_append_new(json_object_get(in, "prompts"), json_string("store"));
        char *ins = jsonl_dumps(in, JSON_COMPACT);
        json_decref(in);
        rc = store_run_begin(db, PROG, o->cli.iteration, config_text, ins, &run_id);
        free(ins);
    }
    Emit e = {.o = o, .c = c, .tok = &tok, .db = db, .l = &prompts, .model_name = name};
    if (!rc && o->to_store && !(e.spool = tmpfile())) rc = spool_fail();
    if (!rc) rc = generate_all(&m, &prompts, c, &e);
    if (e.spool) fclose(e.spool);
    if (run_id) {
        json_t *out = json_pack("{s:s, s:I, s:I, s:I}", "to", o->to_store ? "store" : "stdout", "responses",
                                (json_int_t)e.responses, "prompts", (json_int_t)prompts.n, "skipped", (json_int_t)prompts.skipped);
        char *outs = jsonl_dumps(out, JSON_COMPACT);
        json_decref(out);
        Err e2 = store_run_end(db, run_id, outs, rc ? "failed" : "ok");
        free(outs);
        if (!rc) rc = e2;
    }
    if (rc) cli_fail(PROG, rc, "%s", err_msg());
    prompts_free(&prompts);
    if (db) store_close(db);
    free(name);
    free(config_text);
    tokenizer_free(&tok);
    model_free(&m);
    ckpt_map_free(&map);
    return rc;
}

int main(int argc, char **argv) {
    Opts o;
    GenerateCfg c;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) rc = cli_common_config(&o.cli, GEN_SCHEMA, &c, &c.seed);
    cli_common_free(&o.cli);
    if (rc) return rc == CLI_DONE ? 0 : rc;
    threads_set(o.cli.threads);
    rc = run(&o, &c);
    config_free(GEN_SCHEMA, &c);
    return rc;
}
