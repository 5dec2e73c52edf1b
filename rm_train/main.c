/*
 * rm_train — reward models (Llama 2 §3.2.2): train one on the store's comparisons with the margin
 * ranking loss, evaluate it per rating (Table 8), and score responses with it.
 *
 *   rm_train [train] --kind helpfulness|safety --init DIR --out DIR [options]
 *   rm_train eval --model DIR [--kind K] [options]
 *   rm_train score --model DIR [--name NAME] [options] [-]
 *
 * train (train.c): the model starts from a chat checkpoint (its LM head replaced by a scalar head) or
 * from a reward model, and reads the train split of the store's comparisons of its dimension mixed
 * with a share of the other dimension's; one epoch of AdamW by default; writes DIR/ckpt and
 * DIR/metrics.tsv, resumable like sft. eval (eval.c): accuracy per rating, dimension and safety bin
 * on the test split, and score statistics. score (score.c): scores into the store's scores table,
 * or JSONL from stdin back to stdout with score fields. docs/rm_train.md is the user guide.
 *
 * Exit status: 0 ok, 1 runtime failure (or training interrupted, after saving), 2 usage or input error.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonl.h"
#include "reward.h"
#include "rm_train.h"
#include "threads.h"
#include "util.h"

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(RmCfg, f), .def = d, .min = lo, .max = hi, .help = h}
const ConfigKey RM_SCHEMA[] = {
    K("train.batch_size", CONFIG_INT, batch_size, "8", 1, 1 << 16, "pairs per micro-batch (each pair is two sequences)"),
    K("train.group_by_length", CONFIG_INT, group_by_length, "32", 0, 1 << 20, "sort each window of this many shuffled batches by length: less padding (0 = plain shuffle)"),
    K("train.grad_accum", CONFIG_INT, grad_accum, "1", 1, 1 << 16, "micro-batches per optimizer step"),
    K("train.epochs", CONFIG_INT, epochs, "1", 1, 1 << 20, "passes over the training pairs (Llama 2: 1; more overfits)"),
    K("train.max_steps", CONFIG_INT, max_steps, "0", 0, (double)(1LL << 40), "optimizer steps (0 = from epochs)"),
    K("train.lr", CONFIG_FLOAT, lr, "1e-4", 0, 10, "peak learning rate (Llama 2: 1e-5, 5e-6 for 70B; tiny models want more)"),
    K("train.warmup_frac", CONFIG_FLOAT, warmup_frac, "0.03", 0, 1, "linear warm-up over this share of the steps"),
    K("train.warmup_min", CONFIG_INT, warmup_min, "5", 0, 1 << 20, "... but at least this many steps"),
    K("train.lr_floor", CONFIG_FLOAT, lr_floor, "0.1", 0, 1, "cosine decay to lr_floor * lr"),
    K("train.weight_decay", CONFIG_FLOAT, weight_decay, "0.1", 0, 10, "AdamW decoupled weight decay (matrices only)"),
    K("train.beta1", CONFIG_FLOAT, beta1, "0.9", 0, 1, "AdamW beta1"),
    K("train.beta2", CONFIG_FLOAT, beta2, "0.95", 0, 1, "AdamW beta2"),
    K("train.eps", CONFIG_FLOAT, eps, "1e-5", 0, 1, "AdamW epsilon"),
    K("train.grad_clip", CONFIG_FLOAT, grad_clip, "1.0", 0, 1e9, "clip the global gradient norm to this (0 = off)"),
    K("train.seq_len", CONFIG_INT, seq_len, "0", 0, 1 << 20, "longest sequence read (0 = the model's max_seq_len); longer ones keep BOS and their end; a shorter one is recorded in the checkpoint and scoring reads it too"),
    K("train.score_init_std", CONFIG_FLOAT, score_init_std, "0", 0, 1, "std-dev of the new scalar head when starting from a chat model (0 = zeros)"),
    K("train.save_every", CONFIG_INT, save_every, "0", 0, (double)(1LL << 40), "write DIR/ckpt every N steps (0 = only at the end)"),
    K("train.log_every", CONFIG_INT, log_every, "1", 1, (double)(1LL << 40), "log loss, acc, lr, grad_norm every N steps"),
    K("train.seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "seed of the head init, the mix and the data order (--seed)"),
    K("train.progress_interval", CONFIG_FLOAT, progress_interval, "10", 0, 1e6, "seconds between progress lines when stderr is not a terminal"),
    {.key = "loss.margin", .type = CONFIG_ENUM, .offset = offsetof(RmCfg, margin), .def = "small",
     .choices = "none|small|large|custom", .help = "margin m(rating): small {0,1/3,2/3,1}, large {0,1,2,3} for ratings 0..3 (Llama 2 Table 27)"},
    K("loss.margin_custom", CONFIG_NUMLIST, margin_custom, "[0, 0.5, 1, 2]", -100, 100, "the 4 margins of ratings 0..3 when loss.margin is custom"),
    K("data.other_share", CONFIG_FLOAT, other_share, "-1", -1, 0.95, "share of the training pairs taken from the other dimension (-1 = Llama 2: 0.5 for helpfulness, 0.1 for safety)"),
    K("data.min_rating", CONFIG_INT, min_rating, "0", 0, 3, "train only on comparisons rated this or more (0 = all, as Llama 2; 1 drops negligibly better/unsure)"),
    K("data.split", CONFIG_STRING, split, "train", 0, 0, "comparisons of this split train the model"),
    K("data.eval_split", CONFIG_STRING, eval_split, "test", 0, 0, "comparisons of this split are evaluated by eval"),
    K("data.iteration", CONFIG_INT, iteration, "-1", -1, (double)INT64_MAX, "only comparisons of this iteration (-1 = all)"),
    K("score.batch", CONFIG_INT, score_batch, "32", 1, 1 << 16, "sequences per forward pass in eval and score"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: rm_train [train] --kind helpfulness|safety --init DIR --out DIR [options]\n"
            "       rm_train eval --model DIR [--kind K] [options]\n"
            "       rm_train score --model DIR [--name NAME] [options] [-]\n\n"
            "Reward models (Llama 2 3.2.2): train one on the store's comparisons with the ranking loss\n"
            "-log sigmoid(r_chosen - r_rejected - m(rating)); eval prints accuracy per rating (Table 8) for each\n"
            "dimension and safety bin; score writes scores to the store's scores table, or with '-' reads JSONL\n"
            "records on stdin and writes them back with score fields (docs/rm_train.md).\n\n"
            "options:\n"
            "  --kind K           helpfulness | safety: what train learns; eval: only that dimension\n"
            "  --init DIR         train: start from this checkpoint (a chat model or a reward model)\n"
            "  --out DIR          train: run directory (DIR/ckpt, DIR/metrics.tsv)\n"
            "  --model DIR        eval, score: the reward model\n"
            "  --name NAME        score: the model name in the scores table (default: DIR)\n"
            "  --by TAG           eval: also a row per value of the prompts' tag TAG (e.g. category)\n"
            "  --resume           train: continue the interrupted run in DIR from DIR/ckpt\n"
            "  --stop-at N        train: save a resumable checkpoint after step N and exit 0\n"
            "  --config FILE      YAML configuration (keys below)\n"
            "  --set key=value    override one configuration key (repeatable)\n"
            "  --db PATH          the store (default ./prefs.db)\n"
            "  --iteration N      the pipeline iteration recorded with the run; score: only responses of it\n"
            "  --seed N           --set train.seed=N, applied after every --set\n"
            "  --threads N        threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok, 1 runtime failure or interrupted (checkpoint saved), 2 usage or input error.\n\n"
            "configuration keys:\n");
    config_print_help(RM_SCHEMA, f);
}

static int parse_opts(int argc, char **argv, RmOpts *o) {
    static const struct option longopts[] = {
        {"kind", required_argument, 0, 'k'}, {"out", required_argument, 0, 'o'}, {"init", required_argument, 0, 'i'},
        CLI_OPTION_MODEL, {"name", required_argument, 0, 'n'}, {"resume", no_argument, 0, 'r'},
        {"stop-at", required_argument, 0, 'S'}, {"by", required_argument, 0, 'b'}, CLI_OPTIONS_STORE, CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    o->stop_at = -1;
    int first = 1;
    o->cmd = CMD_TRAIN;
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "train") == 0) o->cmd = CMD_TRAIN;
        else if (strcmp(argv[1], "eval") == 0) o->cmd = CMD_EVAL;
        else if (strcmp(argv[1], "score") == 0) o->cmd = CMD_SCORE;
        else return cli_fail(PROG, ERR_INPUT, "unknown command '%s' (train, eval, score; see --help)", argv[1]);
        first = 2;
    }
    int c, rc;
    opterr = 0;
    optind = first;
    /* getopt_long starts at argv[optind], past the subcommand. */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (strcmp(optarg, "helpfulness") != 0 && strcmp(optarg, "safety") != 0)
                return cli_fail(PROG, ERR_INPUT, "--kind: expected helpfulness or safety, got '%s'", optarg);
            o->kind = optarg;
            break;
        case 'o': o->out = optarg; break;
        case 'i': o->init = optarg; break;
        case 'n': o->name = optarg; break;
        case 'r': o->resume = true; break;
        case 'b':
            if (!*optarg) return cli_fail(PROG, ERR_INPUT, "--by: expected a prompt tag name");
            o->by = optarg;
            break;
        case 'S': if ((rc = cli_int(PROG, "--stop-at", optarg, 1, &o->stop_at))) return rc; break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    cli_common_inputs(&o->cli, argc, argv);
    if (!o->cli.db) o->cli.db = "prefs.db";
    if (o->by && o->cmd != CMD_EVAL) return cli_fail(PROG, ERR_INPUT, "--by: only eval tabulates by a prompt tag");
    switch (o->cmd) {
    case CMD_TRAIN:
        if (!o->kind) return cli_fail(PROG, ERR_INPUT, "train: --kind helpfulness|safety is required (see --help)");
        if (!o->out) return cli_fail(PROG, ERR_INPUT, "train: --out DIR is required (see --help)");
        if (!o->init && !o->resume) return cli_fail(PROG, ERR_INPUT, "train: --init DIR is required (or --resume)");
        if (o->cli.ninputs) return cli_fail(PROG, ERR_INPUT, "train: unexpected argument '%s' (comparisons come from --db)", o->cli.inputs[0]);
        break;
    case CMD_EVAL:
        if (!o->cli.model) return cli_fail(PROG, ERR_INPUT, "eval: --model DIR is required (see --help)");
        if (o->cli.ninputs) return cli_fail(PROG, ERR_INPUT, "eval: unexpected argument '%s'", o->cli.inputs[0]);
        break;
    case CMD_SCORE:
        if (!o->cli.model) return cli_fail(PROG, ERR_INPUT, "score: --model DIR is required (see --help)");
        if (o->cli.ninputs > 1 || (o->cli.ninputs == 1 && strcmp(o->cli.inputs[0], "-") != 0))
            return cli_fail(PROG, ERR_INPUT, "score: the only argument is '-' (JSONL on stdin), got '%s'", o->cli.inputs[0]);
        break;
    }
    return 0;
}

/* ---- comparisons as token pairs ------------------------------------------------------------------ */

/* The value of tags[key] as text (a string as it is, any other JSON value as compact JSON), or NULL
 * when tags is not an object or has no such key. Caller frees. */
static char *tag_text(const char *tags, const char *key) {
    json_t *t = tags ? json_loads(tags, 0, NULL) : NULL, *v = json_object_get(t, key);
    char *s = !v ? NULL : json_is_string(v) ? xstrdup(json_string_value(v)) : jsonl_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(t);
    return s;
}

typedef struct {
    RmPairs *out;
    const Tokenizer *t;
} LoadCtx;

static Err add_comparison(void *ctx, const StoreComparisonRow *row) {
    LoadCtx *lc = ctx;
    json_error_t je;
    json_t *dialogue = json_loads(row->prompt.dialogue, 0, &je);
    if (!dialogue) return err_set(ERR_INPUT, "comparison %" PRId64 ": prompt dialogue: %s", row->c.id, je.text);
    RmPairs *p = lc->out;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->v = xrealloc(p->v, sizeof *p->v * (size_t)p->cap);
    }
    RmPair *e = &p->v[p->n];
    memset(e, 0, sizeof *e);
    Err rc = reward_encode(lc->t, dialogue, row->prompt.system, row->chosen, &e->ids[0]);
    if (!rc) rc = reward_encode(lc->t, dialogue, row->prompt.system, row->rejected, &e->ids[1]);
    json_decref(dialogue);
    if (rc) {
        token_list_free(&e->ids[0]);
        token_list_free(&e->ids[1]);
        return err_prefix(rc, "comparison %" PRId64 ": ", row->c.id);
    }
    e->id = row->c.id;
    e->rating = row->c.rating < 0 ? 0 : row->c.rating > 3 ? 3 : row->c.rating;
    e->safety = strcmp(row->c.dimension, "safety") == 0;
    e->chosen_safe = row->c.chosen_safe;
    e->rejected_safe = row->c.rejected_safe;
    e->chosen_longer = strlen(row->chosen) > strlen(row->rejected);
    if (p->by) e->group = tag_text(row->prompt.tags, p->by);
    p->n++;
    return ERR_OK;
}

Err rm_pairs_load(RmPairs *out, Store *db, const Tokenizer *t, const char *split, const char *dimension,
                  int64_t iteration) {
    StoreFilter f = store_filter_any();
    f.split = split;
    f.dimension = dimension;
    f.iteration = iteration;
    LoadCtx ctx = {out, t};
    return store_comparisons_each(db, &f, add_comparison, &ctx);
}

void rm_pairs_free(RmPairs *p) {
    for (int64_t i = 0; i < p->n; i++) {
        token_list_free(&p->v[i].ids[0]);
        token_list_free(&p->v[i].ids[1]);
        free(p->v[i].group);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

char *rm_inputs_json(const RmOpts *o, const char *model) {
    json_t *in = json_pack("{s:s, s:s?, s:s?}", "db", o->cli.db, "model", model, "kind", o->kind);
    char *s = jsonl_dumps(in, JSON_COMPACT);
    json_decref(in);
    return s;
}

int main(int argc, char **argv) {
    RmOpts o;
    RmCfg c;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) rc = cli_common_config(&o.cli, RM_SCHEMA, &c, &c.seed);
    cli_common_free(&o.cli);
    if (rc) return rc == CLI_DONE ? 0 : rc;
    threads_set(o.cli.threads);
    rc = o.cmd == CMD_TRAIN ? rm_train_run(&o, &c) : o.cmd == CMD_EVAL ? rm_eval_run(&o, &c) : rm_score_run(&o, &c);
    config_free(RM_SCHEMA, &c);
    return rc;
}
