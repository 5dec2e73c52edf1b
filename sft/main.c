/*
 * sft — pretraining on plain text and supervised fine-tuning on dialogues (Llama 2 §2.2, §3.1).
 *
 *   sft --pretrain --out DIR [--init DIR | --tokenizer FILE] [options] FILE|-...   text, every token a target
 *   sft --out DIR [--init DIR] [options] [FILE|-]...   sft_example JSONL; none named: the store's sft_examples
 *
 * The loop, per optimizer step: grad_accum micro-batches of batch_size rows of seq_len tokens
 * (sftdata.h: packed windows for --pretrain, one padded dialogue per row otherwise, loss only on the
 * answer tokens), forward, masked mean cross-entropy, backward; then optim_finish_grads (clip to
 * train.grad_clip), the cosine (or constant) learning rate with linear warm-up, one AdamW step.
 * Every eval_every steps and at the end: the mean loss over the held-out items (token-weighted).
 *
 * The run directory DIR holds
 *     DIR/metrics.tsv   step, name, value: loss, lr, grad_norm per log_every steps; eval_loss
 *     DIR/ckpt/         the checkpoint (ckpt.h): model, tokenizer, AdamW state, trainer_state.json
 * DIR/ckpt is rewritten (atomically) every save_every steps, when SIGINT/SIGTERM arrives, at
 * --stop-at, and at the end; it is what the next stage reads with --init DIR/ckpt or --model DIR/ckpt.
 * `sft --resume --out DIR ...` (with the same config and inputs) continues from DIR/ckpt and ends
 * with bit-identical weights and metrics to a run that was never interrupted: everything the step
 * depends on is in the checkpoint (weights, AdamW m, v, t; step; the data position (epoch, pos));
 * the data order is a function of (seed, epoch) and the learning rate of the step. The trainer state
 * also keeps the resolved config and a fingerprint of the tokenized data, and a resume with either
 * changed is refused.
 *
 * Exit status: 0 finished (or stopped at --stop-at), 1 runtime failure or interrupted by a signal
 * (after saving), 2 usage or input error.
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

#include "chat.h"
#include "cli.h"
#include "ckpt.h"
#include "config.h"
#include "jsonl.h"
#include "model.h"
#include "optim.h"
#include "sftdata.h"
#include "store.h"
#include "threads.h"
#include "tokenizer.h"
#include "trainlog.h"
#include "util.h"

#define PROG "sft"

typedef struct {
    int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len;
    double norm_eps, rope_theta, init_std;
    bool tie_embeddings;
    char *tokenizer;
    int64_t seq_len, batch_size, grad_accum, steps, warmup, eval_every, eval_batches, save_every, log_every, seed;
    double lr, lr_floor, weight_decay, beta1, beta2, eps, grad_clip, progress_interval;
    char *schedule;
    double eval_fraction;
    bool shuffle, pack;
    ConfigStrList sources;
    int64_t iteration;
} SftCfg;

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(SftCfg, f), .def = d, .min = lo, .max = hi, .help = h}
static const ConfigKey SFT_SCHEMA[] = {
    K("model.dim", CONFIG_INT, dim, "64", 8, 8192, "embedding width (random init only; --init reads the checkpoint's)"),
    K("model.hidden_dim", CONFIG_INT, hidden_dim, "172", 8, 32768, "feed-forward width"),
    K("model.n_layers", CONFIG_INT, n_layers, "2", 1, 256, "transformer blocks"),
    K("model.n_heads", CONFIG_INT, n_heads, "4", 1, 256, "attention heads"),
    K("model.n_kv_heads", CONFIG_INT, n_kv_heads, "0", 0, 256, "key/value heads (0 = n_heads; fewer = grouped-query attention)"),
    K("model.vocab_size", CONFIG_INT, vocab_size, "512", 259, 1 << 24, "vocabulary size; the tokenizer must have exactly this many tokens"),
    K("model.max_seq_len", CONFIG_INT, max_seq_len, "256", 2, 1 << 20, "longest sequence (RoPE table)"),
    K("model.norm_eps", CONFIG_FLOAT, norm_eps, "1e-5", 0, 1, "RMSNorm epsilon"),
    K("model.rope_theta", CONFIG_FLOAT, rope_theta, "10000", 1, 1e9, "RoPE base"),
    K("model.tie_embeddings", CONFIG_BOOL, tie_embeddings, "false", 0, 0, "LM head shares the token embedding"),
    K("model.init_std", CONFIG_FLOAT, init_std, "0.02", 0, 1, "std-dev of the random initial weights"),
    K("model.tokenizer", CONFIG_STRING, tokenizer, "", 0, 0, "tokenizer.bin for a random init (--tokenizer sets it)"),
    K("train.seq_len", CONFIG_INT, seq_len, "128", 2, 1 << 20, "T: positions per row (<= the model's max_seq_len)"),
    K("train.batch_size", CONFIG_INT, batch_size, "8", 1, 1 << 16, "B: rows per micro-batch"),
    K("train.grad_accum", CONFIG_INT, grad_accum, "1", 1, 1 << 16, "micro-batches per optimizer step"),
    K("train.steps", CONFIG_INT, steps, "100", 1, (double)(1LL << 40), "optimizer steps in the run"),
    K("train.lr", CONFIG_FLOAT, lr, "3e-4", 0, 10, "peak learning rate"),
    {.key = "train.schedule", .type = CONFIG_ENUM, .offset = offsetof(SftCfg, schedule), .def = "cosine",
     .choices = "cosine|constant", .help = "learning-rate schedule after warm-up"},
    K("train.warmup", CONFIG_INT, warmup, "10", 0, (double)(1LL << 40), "steps of linear warm-up"),
    K("train.lr_floor", CONFIG_FLOAT, lr_floor, "0.1", 0, 1, "cosine decays to lr_floor * lr (Llama 2: 0.1)"),
    K("train.weight_decay", CONFIG_FLOAT, weight_decay, "0.1", 0, 10, "AdamW decoupled weight decay (matrices only)"),
    K("train.beta1", CONFIG_FLOAT, beta1, "0.9", 0, 1, "AdamW beta1"),
    K("train.beta2", CONFIG_FLOAT, beta2, "0.95", 0, 1, "AdamW beta2"),
    K("train.eps", CONFIG_FLOAT, eps, "1e-5", 0, 1, "AdamW epsilon"),
    K("train.grad_clip", CONFIG_FLOAT, grad_clip, "1.0", 0, 1e9, "clip the global gradient norm to this (0 = off)"),
    K("train.eval_every", CONFIG_INT, eval_every, "50", 0, (double)(1LL << 40), "evaluate every N steps (0 = only at the end)"),
    K("train.eval_batches", CONFIG_INT, eval_batches, "16", 0, 1 << 20, "most batches per evaluation (0 = every held-out item)"),
    K("train.save_every", CONFIG_INT, save_every, "0", 0, (double)(1LL << 40), "write DIR/ckpt every N steps (0 = only at the end)"),
    K("train.log_every", CONFIG_INT, log_every, "1", 1, (double)(1LL << 40), "log loss, lr, grad_norm every N steps"),
    K("train.seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "seed of the initial weights, the split and the data order (--seed)"),
    K("train.progress_interval", CONFIG_FLOAT, progress_interval, "10", 0, 1e6, "seconds between progress lines when stderr is not a terminal"),
    K("data.eval_fraction", CONFIG_FLOAT, eval_fraction, "0.05", 0, 1, "held-out share when no item is marked split test"),
    K("data.shuffle", CONFIG_BOOL, shuffle, "true", 0, 0, "visit training items in a new random order each epoch"),
    K("data.pack", CONFIG_BOOL, pack, "false", 0, 0, "dialogues: concatenate examples into full rows (Llama 2) instead of one padded example per row"),
    K("data.sources", CONFIG_STRLIST, sources, "[human, rs, gatt]", 0, 0, "sft_examples sources read from the store"),
    K("data.iteration", CONFIG_INT, iteration, "-1", -1, (double)INT64_MAX, "only store examples of this iteration (-1 = all)"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: sft [--pretrain] --out DIR [options] [FILE|-]...\n\n"
            "Trains a Llama-2 model: --pretrain on plain text (every token a target, packed sequences), otherwise\n"
            "supervised fine-tuning on sft_example JSONL (loss on answer tokens only), or, with no input named,\n"
            "on the store's sft_examples. Writes DIR/metrics.tsv and the checkpoint DIR/ckpt (docs/sft.md).\n\n"
            "options:\n"
            "  --pretrain         inputs are text files; documents are separated by blank lines\n"
            "  --out DIR          run directory (required)\n"
            "  --init DIR         start from this checkpoint (otherwise random init from model.*)\n"
            "  --tokenizer FILE   tokenizer.bin for a random init (same as --set model.tokenizer=FILE)\n"
            "  --resume           continue the interrupted run in DIR from DIR/ckpt (same command line plus\n"
            "                     --resume; --init is then ignored)\n"
            "  --stop-at N        save a resumable checkpoint after step N and exit 0\n"
            "  --config FILE      YAML configuration (keys below)\n"
            "  --set key=value    override one configuration key (repeatable)\n"
            "  --db PATH          the store: examples come from it when no input is named, and the run is\n"
            "                     recorded in it (default ./prefs.db when reading examples from it)\n"
            "  --iteration N      the pipeline iteration recorded with the run\n"
            "  --seed N           --set train.seed=N, applied after every --set\n"
            "  --threads N        threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok, 1 runtime failure or interrupted (checkpoint saved), 2 usage or input error.\n\n"
            "configuration keys:\n");
    config_print_help(SFT_SCHEMA, f);
}

typedef struct {
    CliCommon cli; /* --db, --iteration, --config, --set, --seed, --threads, the inputs */
    bool pretrain, resume;
    const char *out, *init;
    int64_t stop_at;
} Opts;

static int parse_opts(int argc, char **argv, Opts *o) {
    static const struct option longopts[] = {
        {"pretrain", no_argument, 0, 'p'}, {"out", required_argument, 0, 'o'}, {"init", required_argument, 0, 'i'},
        {"tokenizer", required_argument, 0, 'k'}, {"resume", no_argument, 0, 'r'}, {"stop-at", required_argument, 0, 'S'},
        CLI_OPTIONS_STORE, CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    o->stop_at = -1;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': o->pretrain = true; break;
        case 'o': o->out = optarg; break;
        case 'i': o->init = optarg; break;
        case 'k': cli_common_set(&o->cli, "model.tokenizer", optarg); break;
        case 'r': o->resume = true; break;
        case 'S': if ((rc = cli_int(PROG, "--stop-at", optarg, 1, &o->stop_at))) return rc; break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    cli_common_inputs(&o->cli, argc, argv);
    if (!o->out) return cli_fail(PROG, ERR_INPUT, "--out DIR is required (see --help)");
    if (o->pretrain && o->cli.ninputs == 0) return cli_fail(PROG, ERR_INPUT, "--pretrain needs text inputs (FILE or -)");
    return 0;
}

/* ---- data ---------------------------------------------------------------------------------------- */

static Err read_text(const char *path, TextBuf *text) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return err_set(errno == ENOENT || errno == EACCES || errno == EISDIR ? ERR_INPUT : ERR_RUNTIME,
                           "%s: %s", path, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) text_buf_append(text, buf, n);
    Err rc = ferror(f) ? err_set(ERR_RUNTIME, "%s: read error", path) : ERR_OK;
    if (f != stdin) fclose(f);
    return rc;
}

static Err load_jsonl(SftData *d, const Tokenizer *t, const char *path) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, path);
    if (rc) return rc;
    json_t *v;
    int64_t line;
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        rc = sftdata_add_record(d, t, v);
        json_decref(v);
        if (rc) {
            rc = err_prefix(rc, "%s:%" PRId64 ": ", jsonl_name(r), line);
            break;
        }
    }
    jsonl_close(r);
    return rc;
}

typedef struct {
    SftData *d;
    const Tokenizer *t;
} StoreCtx;

static Err add_store_row(void *ctx, const StoreSftExample *e) {
    StoreCtx *c = ctx;
    json_error_t je;
    json_t *dialogue = json_loads(e->dialogue, 0, &je);
    if (!dialogue) return err_set(ERR_INPUT, "sft_examples %" PRId64 ": dialogue: %s", e->id, je.text);
    json_t *lt = e->loss_turns && (strcmp(e->loss_turns, "all") == 0 || strcmp(e->loss_turns, "last") == 0)
                     ? json_string(e->loss_turns)
                     : json_loads(e->loss_turns ? e->loss_turns : "\"all\"", 0, &je);
    ChatLoss loss;
    Err rc = lt ? chat_loss_parse(lt, &loss) : err_set(ERR_INPUT, "loss_turns: %s", je.text);
    if (!rc) {
        rc = sftdata_add_dialogue(c->d, c->t, dialogue, e->system, loss, e->split && strcmp(e->split, "test") == 0);
        chat_loss_free(&loss);
    }
    json_decref(lt);
    json_decref(dialogue);
    return rc ? err_prefix(rc, "sft_examples %" PRId64 ": ", e->id) : ERR_OK;
}

static Err load_data(SftData *d, const Tokenizer *t, const Opts *o, const SftCfg *c, Store *db) {
    Err rc = ERR_OK;
    if (o->pretrain) {
        for (int i = 0; !rc && i < o->cli.ninputs; i++) {
            TextBuf text = {0};
            rc = read_text(o->cli.inputs[i], &text);
            if (!rc) sftdata_add_text(d, t, text.data ? text.data : "", text.len);
            text_buf_free(&text);
        }
        sftdata_pack(d);
        return rc;
    }
    d->pack = c->pack;
    for (int i = 0; !rc && i < o->cli.ninputs; i++) rc = load_jsonl(d, t, o->cli.inputs[i]);
    StoreCtx ctx = {d, t};
    for (size_t i = 0; !rc && o->cli.ninputs == 0 && i < c->sources.n; i++) {
        StoreFilter f = store_filter_any();
        f.source = c->sources.items[i];
        f.iteration = c->iteration;
        rc = store_sft_each(db, &f, add_store_row, &ctx);
    }
    if (d->pack) sftdata_pack(d);
    return rc;
}

/* ---- model --------------------------------------------------------------------------------------- */

static Err random_model(Model *m, Tokenizer *tok, const SftCfg *c) {
    ModelConfig mc = {
        .dim = (int)c->dim, .hidden_dim = (int)c->hidden_dim, .n_layers = (int)c->n_layers,
        .n_heads = (int)c->n_heads, .n_kv_heads = (int)(c->n_kv_heads ? c->n_kv_heads : c->n_heads),
        .vocab_size = (int)c->vocab_size, .max_seq_len = (int)c->max_seq_len, .norm_eps = (float)c->norm_eps,
        .rope_theta = (float)c->rope_theta, .tie_embeddings = c->tie_embeddings, .head = HEAD_LM,
    };
    if (!*c->tokenizer) return err_set(ERR_INPUT, "a random init needs a tokenizer: --tokenizer FILE or model.tokenizer (or --init DIR)");
    Err rc = model_create(m, &mc, NULL);
    if (rc) return rc;
    model_init_random(m, (uint64_t)c->seed, (float)c->init_std);
    rc = tokenizer_load(tok, c->tokenizer, mc.vocab_size);
    if (rc) model_free(m);
    return rc;
}

/* ---- the trainer --------------------------------------------------------------------------------- */

typedef struct {
    Model m;
    Tokenizer tok;
    AdamW opt;
    SftData data;
    SftCursor cur;
    int64_t step, tokens;
    int32_t *tokens_buf, *targets;
    float *mask;
    int B, T;
    char *config_text;
    uint64_t fingerprint;
    double last_loss, last_eval;
} Trainer;

/* Token-weighted mean loss over the held-out items (at most max_batches batches; 0 = all). */
static double evaluate(Trainer *tr, int64_t max_batches) {
    double sum = 0;
    int64_t count = 0, batches = 0;
    for (size_t first = 0; first < tr->data.n_eval; first += (size_t)tr->B) {
        if (max_batches > 0 && batches++ >= max_batches) break;
        int64_t n = sftdata_eval_batch(&tr->data, first, tr->B, tr->tokens_buf, tr->targets, tr->mask);
        if (n == 0) continue;
        model_forward(&tr->m, tr->tokens_buf, tr->B, tr->T);
        sum += (double)model_lm_loss(&tr->m, tr->targets, tr->mask, tr->B, tr->T, 1.0f) * (double)n;
        count += n;
    }
    return count ? sum / (double)count : NAN;
}

static Err save(Trainer *tr, const char *ckpt_dir, bool finished) {
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, tr->fingerprint);
    json_t *st = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:b}", "program", PROG, "step", (json_int_t)tr->step,
                           "epoch", (json_int_t)tr->cur.epoch, "pos", (json_int_t)tr->cur.pos, "tokens",
                           (json_int_t)tr->tokens, "data_fingerprint", fp, "config", tr->config_text, "finished",
                           finished);
    ASSERT(st);
    CkptExtras ex = {.tokenizer = &tr->tok, .opt = &tr->opt, .trainer_state = st};
    Err rc = ckpt_save(ckpt_dir, &tr->m, &ex);
    json_decref(st);
    return rc;
}

static Err restore(Trainer *tr, const char *ckpt_dir) {
    json_t *st;
    Err rc = ckpt_load_trainer_state(ckpt_dir, &st);
    if (rc) return rc;
    json_int_t step, epoch, pos, tokens;
    const char *fp, *cfg;
    json_error_t je;
    if (json_unpack_ex(st, &je, 0, "{s:I, s:I, s:I, s:I, s:s, s:s}", "step", &step, "epoch", &epoch, "pos", &pos,
                       "tokens", &tokens, "data_fingerprint", &fp, "config", &cfg) != 0) {
        rc = err_set(ERR_INPUT, "%s/trainer_state.json: %s (not written by sft?)", ckpt_dir, je.text);
    } else if (strcmp(cfg, tr->config_text) != 0) {
        rc = err_set(ERR_INPUT, "%s: the configuration differs from the one the run started with; resume with "
                     "the same --config and --set (the saved one is in trainer_state.json)", ckpt_dir);
    } else {
        char now[32];
        snprintf(now, sizeof now, "%016" PRIx64, tr->fingerprint);
        if (strcmp(fp, now) != 0)
            rc = err_set(ERR_INPUT, "%s: the training data differs from the run's (fingerprint %s, now %s)", ckpt_dir, fp, now);
    }
    if (!rc) {
        tr->step = step;
        tr->cur.epoch = epoch;
        tr->cur.pos = pos;
        tr->tokens = tokens;
    }
    json_decref(st);
    return rc;
}

static int run(const Opts *o, SftCfg *c) {
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    size_t len = strlen(o->out) + sizeof "/ckpt";
    char *ckpt_dir = xmalloc(len);
    snprintf(ckpt_dir, len, "%s/ckpt", o->out);
    Store *db = NULL;
    int64_t run_id = 0;
    TrainLog log = {0};
    int rc = ERR_OK;
    bool have_model = false, have_tok = false, have_opt = false;
    tr.config_text = config_dump_string(SFT_SCHEMA, c);

    /* the model: resumed, from a checkpoint, or random */
    const char *from = o->resume ? ckpt_dir : o->init;
    if (from) {
        rc = ckpt_load_model(&tr.m, from, NULL);
        if (!rc) {
            have_model = true;
            rc = ckpt_load_tokenizer(&tr.tok, from, tr.m.cfg.vocab_size);
            have_tok = rc == ERR_OK;
        }
    } else {
        rc = random_model(&tr.m, &tr.tok, c);
        have_model = have_tok = rc == ERR_OK;
    }
    if (rc) goto done;
    if (tr.m.cfg.head != HEAD_LM) {
        rc = err_set(ERR_INPUT, "%s: a reward/value model (scalar head) cannot be trained by sft", from);
        goto done;
    }
    tr.T = (int)c->seq_len;
    tr.B = (int)c->batch_size;
    if (tr.T > tr.m.cfg.max_seq_len) {
        rc = err_set(ERR_INPUT, "train.seq_len %d exceeds the model's max_seq_len %d", tr.T, tr.m.cfg.max_seq_len);
        goto done;
    }

    /* the data */
    bool from_store = !o->pretrain && o->cli.ninputs == 0;
    const char *db_path = o->cli.db ? o->cli.db : from_store ? "prefs.db" : NULL;
    if (db_path) {
        struct stat sb;
        if (!o->cli.db && stat(db_path, &sb) != 0) {
            rc = err_set(ERR_INPUT, "no input named and no store at ./prefs.db (give FILE|- or --db PATH)");
            goto done;
        }
        if ((rc = store_open(&db, db_path))) goto done;
    }
    sftdata_init(&tr.data, tr.T);
    if ((rc = load_data(&tr.data, &tr.tok, o, c, db))) goto done;
    sftdata_split(&tr.data, c->eval_fraction, (uint64_t)c->seed, c->shuffle);
    if (tr.data.n_train == 0) {
        rc = err_set(ERR_INPUT, "no training items (%zu held out, %" PRId64 " dropped without answer tokens)",
                     tr.data.n_eval, tr.data.dropped);
        goto done;
    }
    tr.fingerprint = sftdata_fingerprint(&tr.data);
    fprintf(stderr, PROG ": %zu training items (%" PRId64 " target tokens), %zu held out; %" PRId64 " cut to %d tokens, %" PRId64 " dropped\n",
            tr.data.n_train, sftdata_train_targets(&tr.data), tr.data.n_eval, tr.data.truncated, tr.T + 1,
            tr.data.dropped);

    /* optimizer and position */
    if (o->resume) {
        if ((rc = ckpt_load_optimizer(&tr.opt, ckpt_dir, &tr.m))) goto done;
        have_opt = true;
        if ((rc = restore(&tr, ckpt_dir))) goto done;
        if (tr.step >= c->steps) {
            printf("%s: %s already finished at step %" PRId64 "\n", PROG, ckpt_dir, tr.step);
            goto cleanup;
        }
        fprintf(stderr, PROG ": resuming %s at step %" PRId64 " (epoch %" PRId64 ", item %" PRId64 ")\n", ckpt_dir,
                tr.step, tr.cur.epoch, tr.cur.pos);
    } else {
        adamw_create(&tr.opt, tr.m.n_params);
        have_opt = true;
    }

    /* the record of the run */
    if (db) {
        json_t *in = json_pack("{s:b, s:s?, s:o}", "pretrain", o->pretrain, "init", o->resume ? ckpt_dir : o->init,
                               "data", json_array());
        for (int i = 0; i < o->cli.ninputs; i++) json_array_append_new(json_object_get(in, "data"), json_string(o->cli.inputs[i]));
        if (from_store) {
            json_t *src = json_array();
            for (size_t i = 0; i < c->sources.n; i++) json_array_append_new(src, json_string(c->sources.items[i]));
            json_object_set_new(in, "store_sources", src);
        }
        char *ins = jsonl_dumps(in, JSON_COMPACT);
        json_decref(in);
        rc = store_run_begin(db, PROG, o->cli.iteration, tr.config_text, ins, &run_id);
        free(ins);
        if (rc) goto done;
    }
    if ((rc = trainlog_open(&log, o->out, o->resume ? tr.step : -1, db, run_id))) goto done;

    model_alloc_train(&tr.m, tr.B, tr.T);
    size_t bt = (size_t)tr.B * (size_t)tr.T;
    tr.tokens_buf = xmalloc(bt * sizeof *tr.tokens_buf);
    tr.targets = xmalloc(bt * sizeof *tr.targets);
    tr.mask = xmalloc(bt * sizeof *tr.mask);
    LrSchedule sched = {.kind = strcmp(c->schedule, "cosine") == 0 ? LR_COSINE : LR_CONSTANT, .peak = (float)c->lr,
                        .warmup = c->warmup, .total = c->steps, .floor_frac = (float)c->lr_floor};
    AdamWConfig acfg = {(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay};
    int64_t accum = c->grad_accum;
    float scale = 1.0f / (float)accum;
    trainlog_catch_signals();
    Progress prog;
    trainlog_progress_start(&prog, PROG, tr.step, c->steps, c->progress_interval);
    const char *stopped = NULL;
    tr.last_eval = NAN;

    while (tr.step < c->steps) {
        /* one optimizer step: accumulate, finish (clip), schedule, AdamW */
        model_zero_grads(&tr.m);
        double loss = 0;
        for (int64_t a = 0; a < accum; a++) {
            sftdata_next_batch(&tr.data, &tr.cur, tr.B, tr.tokens_buf, tr.targets, tr.mask);
            model_forward(&tr.m, tr.tokens_buf, tr.B, tr.T);
            loss += model_lm_loss(&tr.m, tr.targets, tr.mask, tr.B, tr.T, scale);
            model_backward(&tr.m, tr.tokens_buf, tr.B, tr.T);
        }
        loss /= (double)accum;
        double norm;
        if ((rc = optim_finish_grads(tr.m.grads, tr.m.n_params, (float)c->grad_clip, &norm))) {
            rc = err_prefix(rc, "step %" PRId64 ": ", tr.step + 1);
            break;
        }
        float lr = lr_at(&sched, tr.step);
        adamw_step(&tr.opt, tr.m.params, tr.m.grads, tr.m.tensors, tr.m.n_tensors, &acfg, lr);
        tr.step++;
        tr.tokens += accum * (int64_t)bt;
        tr.last_loss = loss;

        if (tr.step % c->log_every == 0 || tr.step == c->steps) {
            if ((rc = trainlog_metric(&log, tr.step, "loss", loss)) || (rc = trainlog_metric(&log, tr.step, "lr", lr)) ||
                (rc = trainlog_metric(&log, tr.step, "grad_norm", norm)))
                break;
        }
        if (tr.data.n_eval > 0 && ((c->eval_every > 0 && tr.step % c->eval_every == 0) || tr.step == c->steps)) {
            tr.last_eval = evaluate(&tr, c->eval_batches);
            if ((rc = trainlog_metric(&log, tr.step, "eval_loss", tr.last_eval))) break;
        }
        trainlog_progress(&prog, tr.step, accum * (int64_t)bt, loss, lr);
        if (trainlog_stop_requested()) stopped = "interrupted";
        else if (o->stop_at > 0 && tr.step >= o->stop_at && tr.step < c->steps) stopped = "stop-at";
        bool periodic = c->save_every > 0 && tr.step % c->save_every == 0 && tr.step < c->steps;
        if (stopped || periodic) {
            if ((rc = save(&tr, ckpt_dir, false))) break;
        }
        if (stopped) break;
    }
    trainlog_progress_end(&prog, tr.step);
    bool interrupted = stopped && strcmp(stopped, "interrupted") == 0;
    if (!rc && !stopped && (rc = save(&tr, ckpt_dir, true)) == ERR_OK)
        printf("%s: step %" PRId64 " loss %.4f eval_loss %.4f, %" PRId64 " tokens; checkpoint %s\n", PROG, tr.step,
               tr.last_loss, tr.last_eval, tr.tokens, ckpt_dir);
    if (!rc && stopped)
        fprintf(stderr, PROG ": %s after step %" PRId64 "; resumable checkpoint %s (continue with --resume)\n", stopped,
                tr.step, ckpt_dir);
    if (db && run_id) {
        json_t *out = json_pack("{s:s, s:I, s:f, s:s?}", "checkpoint", ckpt_dir, "step", (json_int_t)tr.step, "loss",
                                tr.last_loss, "stopped", stopped);
        if (!isnan(tr.last_eval)) json_object_set_new(out, "eval_loss", json_real(tr.last_eval));
        char *outs = jsonl_dumps(out, JSON_COMPACT);
        json_decref(out);
        Err e2 = store_run_end(db, run_id, outs, rc || interrupted ? "failed" : "ok");
        free(outs);
        if (!rc) rc = e2;
    }
    if (!rc && interrupted) {
        rc = ERR_RUNTIME; /* reported above */
        goto cleanup;
    }

done:
    if (rc) fprintf(stderr, PROG ": %s\n", err_msg());
cleanup:
    trainlog_close(&log);
    free(tr.tokens_buf);
    free(tr.targets);
    free(tr.mask);
    sftdata_free(&tr.data);
    if (have_opt) adamw_free(&tr.opt);
    if (have_tok) tokenizer_free(&tr.tok);
    if (have_model) model_free(&tr.m);
    if (db) store_close(db);
    free(tr.config_text);
    free(ckpt_dir);
    return rc;
}

int main(int argc, char **argv) {
    Opts o;
    SftCfg c;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) rc = cli_common_config(&o.cli, SFT_SCHEMA, &c, &c.seed);
    cli_common_free(&o.cli);
    if (rc) return rc == CLI_DONE ? 0 : rc;
    threads_set(o.cli.threads);
    rc = run(&o, &c);
    config_free(SFT_SCHEMA, &c);
    return rc;
}
