/*
 * evaluate — the two evaluation steps of the demo that need model code or the store (scripts/demo/eval.sh
 * does the rest with generate, toyworld score and rm_train score).
 *
 *   evaluate kl --model POLICY --ref REF [options] [FILE|-]
 *       One answer per prompt (JSONL Prompt objects) sampled from POLICY at temperature 1 without
 *       truncation, i.e. from the policy's own distribution, and for every answer token
 *       log p_policy(token) - log p_ref(token), the reference's log-probability taken by a full
 *       forward over prompt + answer. Prints on stdout, as "name<TAB>value" lines:
 *           kl_per_token   the mean over all answer tokens (a Monte Carlo estimate of KL(policy||ref)
 *                          per token; it can come out slightly negative from sampling noise)
 *           kl_per_answer  the mean over answers of the summed difference (the sequence KL PPO penalises)
 *           kl_tokens      answer tokens in the estimate
 *       A prompt that leaves no room for an answer in the policy's context is skipped.
 *
 *   evaluate record --db PATH --iteration N [--name TEXT] [FILE|-]
 *       Stores "name<TAB>value" lines (the format kl prints and eval.sh writes) as the metrics of one
 *       run of program "evaluate" of iteration N, each at step N, so `sqlite3 prefs.db` sees every
 *       number of the demo's report. All or nothing: a bad line (not two tab-separated fields, an
 *       empty or blank-containing name, a value that is not a whole finite number) is an input error
 *       naming FILE:LINE, and nothing is written.
 *
 * Exit status: 0 ok, 1 runtime failure, 2 usage or input error.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "ckpt.h"
#include "config.h"
#include "gen.h"
#include "jsonl.h"
#include "model.h"
#include "ppo.h"
#include "store.h"
#include "threads.h"
#include "tokenizer.h"
#include "util.h"

#define PROG "evaluate"

typedef struct {
    int64_t max_new, batch, seed;
} KlCfg;

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(KlCfg, f), .def = d, .min = lo, .max = hi, .help = h}
static const ConfigKey KL_SCHEMA[] = {
    K("sample.max_new", CONFIG_INT, max_new, "64", 1, 1 << 20, "most answer tokens"),
    K("sample.batch", CONFIG_INT, batch, "32", 1, 1 << 16, "sequences decoded together, and per forward of the reference"),
    K("seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "sampling seed (--seed)"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: evaluate kl --model DIR --ref DIR [options] [FILE|-]\n"
            "       evaluate record --db PATH --iteration N [--name TEXT] [FILE|-]\n\n"
            "kl: samples one answer per prompt (JSONL Prompt objects) from the policy at temperature 1 and\n"
            "prints the mean over its tokens of log p_policy - log p_ref (kl_per_token), the mean summed\n"
            "over each answer (kl_per_answer) and the token count, as name<TAB>value lines.\n"
            "record: stores name<TAB>value lines as the metrics of an 'evaluate' run of iteration N.\n\n"
            "options:\n"
            "  --model DIR        kl: the policy\n"
            "  --ref DIR          kl: the reference (the SFT model)\n"
            "  --db PATH          record: the store (default ./prefs.db)\n"
            "  --iteration N      record: the pipeline iteration (run and metric step)\n"
            "  --name TEXT        record: what was evaluated, kept as the run's inputs\n"
            "  --config FILE      kl: YAML configuration (keys below)\n"
            "  --set key=value    kl: override one configuration key (repeatable)\n"
            "  --seed N           kl: --set seed=N, applied after every --set\n"
            "  --threads N        threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n\n"
            "configuration keys (kl):\n");
    config_print_help(KL_SCHEMA, f);
}

typedef struct {
    CliCommon cli; /* --model, --db, --iteration, --config, --set, --seed, --threads */
    const char *cmd, *ref, *name, *input;
} Opts;

static int parse_opts(int argc, char **argv, Opts *o) {
    static const struct option longopts[] = {
        CLI_OPTION_MODEL, {"ref", required_argument, 0, 'r'}, CLI_OPTIONS_STORE, {"name", required_argument, 0, 'n'},
        CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) { /* no -h: "-h" is an unknown option */
        switch (c) {
        case 'r': o->ref = optarg; break;
        case 'n': o->name = optarg; break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    if (optind >= argc) return cli_fail(PROG, ERR_INPUT, "a command is required: kl or record (see --help)");
    o->cmd = argv[optind++];
    if (strcmp(o->cmd, "kl") != 0 && strcmp(o->cmd, "record") != 0)
        return cli_fail(PROG, ERR_INPUT, "unknown command '%s': expected kl or record (see --help)", o->cmd);
    if (argc - optind > 1) return cli_fail(PROG, ERR_INPUT, "at most one input, got '%s' and '%s'", argv[optind], argv[optind + 1]);
    o->input = optind < argc ? argv[optind] : "-";
    if (strcmp(o->cmd, "kl") == 0) {
        if (!o->cli.model || !o->ref) return cli_fail(PROG, ERR_INPUT, "kl: --model DIR and --ref DIR are required (see --help)");
        if (o->cli.db || o->name || o->cli.iteration >= 0) return cli_fail(PROG, ERR_INPUT, "kl: --db, --name and --iteration belong to record");
    } else {
        if (o->cli.iteration < 0) return cli_fail(PROG, ERR_INPUT, "record: --iteration N is required (see --help)");
        if (o->cli.model || o->ref || o->cli.config || o->cli.nsets || o->cli.seed >= 0)
            return cli_fail(PROG, ERR_INPUT, "record: --model, --ref, --config, --set and --seed belong to kl");
    }
    return ERR_OK;
}

/* ---- kl ------------------------------------------------------------------------------------------ */

typedef struct {
    TokenList *ids; /* encoded prompts that leave room for an answer */
    uint64_t *index;
    size_t n, cap, skipped;
} PromptSet;

static void prompt_set_free(PromptSet *p) {
    for (size_t i = 0; i < p->n; i++) token_list_free(&p->ids[i]);
    free(p->ids);
    free(p->index);
}

static Err read_prompts(PromptSet *ps, const char *path, const Tokenizer *tok, int max_prompt) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, path);
    if (rc) return rc;
    json_t *v;
    int64_t line;
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        const json_t *type = json_object_get(v, "type"), *sys = json_object_get(v, "system");
        json_t *dialogue = json_object_get(v, "dialogue");
        TokenList ids = {0};
        if (!json_is_object(v)) rc = err_set(ERR_INPUT, "%s:%" PRId64 ": expected a JSON object (a prompt)", jsonl_name(r), line);
        else if (type && (!json_is_string(type) || strcmp(json_string_value(type), "prompt") != 0))
            rc = err_set(ERR_INPUT, "%s:%" PRId64 ": \"type\": expected \"prompt\"", jsonl_name(r), line);
        else if (!dialogue) rc = err_set(ERR_INPUT, "%s:%" PRId64 ": \"dialogue\": missing", jsonl_name(r), line);
        else if (sys && !json_is_string(sys)) rc = err_set(ERR_INPUT, "%s:%" PRId64 ": \"system\": expected a string", jsonl_name(r), line);
        else {
            const char *s = sys ? json_string_value(sys) : NULL;
            rc = chat_encode_prompt(tok, dialogue, s && *s ? s : NULL, &ids);
            if (rc) rc = err_prefix(rc, "%s:%" PRId64 ": ", jsonl_name(r), line);
        }
        json_decref(v);
        if (rc) {
            token_list_free(&ids);
            break;
        }
        if (ids.n > (size_t)max_prompt) { /* the context is full before the answer starts */
            token_list_free(&ids);
            ps->skipped++;
            continue;
        }
        if (ps->n == ps->cap) {
            ps->cap = ps->cap ? 2 * ps->cap : 64;
            ps->ids = xrealloc(ps->ids, ps->cap * sizeof *ps->ids);
            ps->index = xrealloc(ps->index, ps->cap * sizeof *ps->index);
        }
        ps->ids[ps->n] = ids;
        ps->index[ps->n++] = (uint64_t)line;
    }
    jsonl_close(r);
    return rc;
}

static Err check_pair(const Model *a, const Model *b, const char *bdir) {
    if (a->cfg.vocab_size != b->cfg.vocab_size || a->cfg.max_seq_len < b->cfg.max_seq_len)
        return err_set(ERR_INPUT, "%s: vocabulary %d and context %d do not match the policy's %d and %d", bdir,
                       b->cfg.vocab_size, b->cfg.max_seq_len, a->cfg.vocab_size, a->cfg.max_seq_len);
    if (b->cfg.head != HEAD_LM) return err_set(ERR_INPUT, "%s: the reference needs the LM head", bdir);
    return ERR_OK;
}

static int cmd_kl(const Opts *o) {
    KlCfg c;
    int rc = cli_common_config(&o->cli, KL_SCHEMA, &c, &c.seed);
    if (rc) return rc;
    Model pol = {0}, ref = {0};
    CkptMap ref_map = {0};
    Tokenizer tok = {0};
    PromptSet ps = {0};
    int have_pol = 0, have_ref = 0, have_tok = 0;
    if (!rc) have_pol = !(rc = ckpt_load_model(&pol, o->cli.model, NULL));
    if (!rc && pol.cfg.head != HEAD_LM) rc = err_set(ERR_INPUT, "%s: the policy needs the LM head", o->cli.model);
    if (!rc) have_tok = !(rc = ckpt_load_tokenizer(&tok, o->cli.model, pol.cfg.vocab_size));
    if (!rc) have_ref = !(rc = ckpt_load_model(&ref, o->ref, &ref_map));
    if (!rc) rc = check_pair(&pol, &ref, o->ref);
    if (!rc) rc = read_prompts(&ps, o->input, &tok, pol.cfg.max_seq_len - 1);
    if (!rc && ps.n == 0) rc = err_set(ERR_INPUT, "%s: no prompt leaves room for an answer", o->input);
    GenSample *smp = NULL;
    double sum = 0, sum_answers = 0;
    int64_t tokens = 0, answers = 0;
    if (!rc) {
        GenPrompt *gp = xmalloc(ps.n * sizeof *gp);
        for (size_t i = 0; i < ps.n; i++) gp[i] = (GenPrompt){ps.ids[i].ids, (int)ps.ids[i].n, ps.index[i]};
        /* temperature 1, no top-k/top-p: the samples come from the policy itself, so the mean of the
         * log-ratio estimates its KL to the reference */
        GenConfig g = {.sampler = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f}, .max_new = (int)c.max_new,
                       .batch = (int)c.batch, .seed = (uint64_t)c.seed};
        smp = xcalloc(ps.n, sizeof *smp);
        rc = gen_run(&pol, gp, (int)ps.n, 1, &g, smp, NULL);
        free(gp);
    }
    if (!rc) {
        /* The reference's log-probabilities by full forwards over prompt + answer, in minibatches. */
        int MB = (int)c.batch, T = ref.cfg.max_seq_len;
        PpoSeq *q = xcalloc(ps.n, sizeof *q);
        PpoSeq **qp = xmalloc(ps.n * sizeof *qp);
        size_t nq = 0;
        for (size_t i = 0; i < ps.n; i++) {
            if (smp[i].n == 0) continue;
            ppo_seq_init(&q[nq], ps.ids[i].ids, (int)ps.ids[i].n, smp[i].ids, smp[i].n);
            qp[nq] = &q[nq];
            nq++;
        }
        model_alloc_infer(&ref, MB, T);
        PpoScratch sc;
        ppo_scratch_init(&sc, MB, T);
        for (size_t i = 0; i < nq; i += (size_t)MB) {
            int B = nq - i < (size_t)MB ? (int)(nq - i) : MB;
            ppo_gather(&ref, &sc, qp + i, B, PPO_LOGP_REF, NULL);
        }
        size_t j = 0;
        for (size_t i = 0; i < ps.n; i++) {
            if (smp[i].n == 0) continue;
            double s = 0;
            for (int t = 0; t < smp[i].n; t++) s += (double)smp[i].logp_raw[t] - (double)q[j].logp_ref[t];
            sum += s;
            sum_answers += s;
            tokens += smp[i].n;
            answers++;
            j++;
        }
        for (size_t i = 0; i < nq; i++) ppo_seq_free(&q[i]);
        free(q);
        free(qp);
        ppo_scratch_free(&sc);
        if (!isfinite(sum)) rc = err_set(ERR_RUNTIME, "the log-probability ratio is not finite");
        else if (tokens == 0) rc = err_set(ERR_INPUT, "%s: no answer has a token", o->input);
    }
    if (!rc) {
        printf("kl_per_token\t%.6f\nkl_per_answer\t%.6f\nkl_tokens\t%" PRId64 "\n", sum / (double)tokens,
               sum_answers / (double)answers, tokens);
        fprintf(stderr, "%s: %" PRId64 " answers to %zu prompts (%zu skipped: no room), %" PRId64 " tokens\n", PROG,
                answers, ps.n, ps.skipped, tokens);
    }
    if (smp) {
        gen_samples_free(smp, (int64_t)ps.n);
        free(smp);
    }
    prompt_set_free(&ps);
    if (have_tok) tokenizer_free(&tok);
    if (have_ref) {
        model_free(&ref);
        ckpt_map_free(&ref_map);
    }
    if (have_pol) model_free(&pol);
    config_free(KL_SCHEMA, &c);
    if (rc) fprintf(stderr, "%s: %s\n", PROG, err_msg());
    return rc;
}

/* ---- record -------------------------------------------------------------------------------------- */

typedef struct {
    char **name;
    double *value;
    size_t n, cap;
} Metrics;

static void metrics_free(Metrics *m) {
    for (size_t i = 0; i < m->n; i++) free(m->name[i]);
    free(m->name);
    free(m->value);
}

/* One "name<TAB>value" line (without its newline) into m; ERR_INPUT naming where. */
static Err parse_metric(Metrics *m, char *line, const char *where) {
    char *tab = strchr(line, '\t');
    if (!tab) return err_set(ERR_INPUT, "%s: expected name<TAB>value", where);
    *tab = '\0';
    const char *val = tab + 1;
    if (!*line) return err_set(ERR_INPUT, "%s: empty metric name", where);
    for (const char *p = line; *p; p++)
        if (isspace((unsigned char)*p)) return err_set(ERR_INPUT, "%s: metric name '%s' contains a blank", where, line);
    if (strchr(val, '\t')) return err_set(ERR_INPUT, "%s: more than two fields", where);
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (end == val || *end || errno == ERANGE || !isfinite(v))
        return err_set(ERR_INPUT, "%s: %s: expected a finite number, got '%s'", where, line, val);
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 32;
        m->name = xrealloc(m->name, m->cap * sizeof *m->name);
        m->value = xrealloc(m->value, m->cap * sizeof *m->value);
    }
    m->name[m->n] = xstrdup(line);
    m->value[m->n++] = v;
    return ERR_OK;
}

static Err read_metrics(Metrics *m, const char *path) {
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f) return err_set(ERR_INPUT, "%s: %s", path, strerror(errno));
    const char *name = is_stdin ? "<stdin>" : path;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    Err rc = ERR_OK;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        char where[512];
        snprintf(where, sizeof where, "%s:%" PRId64, name, lineno);
        rc = parse_metric(m, line, where);
    }
    if (!rc && ferror(f)) rc = err_set(ERR_RUNTIME, "%s: read error", name);
    if (!rc && m->n == 0) rc = err_set(ERR_INPUT, "%s: no metrics", name);
    free(line);
    if (!is_stdin) fclose(f);
    return rc;
}

static int cmd_record(const Opts *o) {
    Metrics m = {0};
    Store *db = NULL;
    Err rc = read_metrics(&m, o->input);
    if (!rc) rc = store_open(&db, o->cli.db ? o->cli.db : "prefs.db");
    int64_t run_id = 0;
    if (!rc) rc = store_begin(db);
    if (!rc) {
        rc = store_run_begin(db, PROG, o->cli.iteration, NULL, o->name ? o->name : o->input, &run_id);
        for (size_t i = 0; !rc && i < m.n; i++) rc = store_metric_put(db, run_id, o->cli.iteration, m.name[i], m.value[i]);
        if (!rc) rc = store_run_end(db, run_id, NULL, "ok");
        if (!rc) rc = store_commit(db);
        else store_rollback(db);
    }
    if (!rc) fprintf(stderr, "%s: %zu metrics of iteration %" PRId64 " recorded as run %" PRId64 "\n", PROG, m.n,
                     o->cli.iteration, run_id);
    if (db) store_close(db);
    metrics_free(&m);
    if (rc) fprintf(stderr, "%s: %s\n", PROG, err_msg());
    return rc;
}

int main(int argc, char **argv) {
    Opts o;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) {
        threads_set(o.cli.threads);
        rc = strcmp(o.cmd, "kl") == 0 ? cmd_kl(&o) : cmd_record(&o);
    }
    cli_common_free(&o.cli);
    return rc == CLI_DONE ? 0 : rc;
}
