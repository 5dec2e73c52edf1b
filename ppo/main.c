/*
 * ppo — policy optimisation against the two reward models with a KL penalty to the SFT reference
 * (Llama 2 §3.2.3).
 *
 *   ppo --init POLICY --rm-helpfulness DIR --rm-safety DIR --out DIR [options] [FILE|-]...
 *   ppo --init POLICY --reward-cmd CMD --set value.init=policy --out DIR [options] [FILE|-]...
 *
 * Five models: the policy (trainable, from --init), the value model (trainable; from the helpfulness
 * reward model, or from the policy with a fresh scalar head: value.init), the reference (--ref,
 * default the --init checkpoint) and the two reward models, the last three frozen and memory-mapped
 * read-only. Prompts are JSONL Prompt objects (FILE|-) or, with none named, the store's prompts;
 * those of split "test" are the held-out set (early stopping), the others are trained on.
 *
 * One iteration, reading like the paper:
 *   1. the next rollout.batch prompts (a fresh random order each pass over them: seed, epoch);
 *   2. one answer each from the policy (gen.h, batched KV-cache decoding);
 *   3. the log-probability of every answer token under the policy (old), the reference, and the
 *      value model's estimate before it, recomputed by full forwards in minibatches;
 *   4. both reward models score (prompt, answer); R_c = the safety score when the prompt is tagged
 *      unsafe (tags.risk in reward.safety_risks) or sigmoid(safety) < reward.safety_threshold, else
 *      the helpfulness score (reward_combine); the logit of R_c (our scores are logits already) is
 *      whitened (reward.whiten: running statistics by default);
 *   5. per-token rewards -beta KL (kl.estimator) with the whitened score added at the last token,
 *      GAE (ppo.gamma, ppo.lambda), advantages whitened over the batch;
 *   6. rollout.epochs passes over the batch in random minibatches of rollout.minibatch answers: one
 *      AdamW step of the policy on the clipped surrogate and one of the value model on the clipped
 *      value loss per minibatch (both through optim_finish_grads: NaN check and clipping);
 *   7. the adaptive KL controller updates beta (when kl.target > 0); metrics; every eval_every
 *      iterations the mean R_c of sampled answers (the rollout sampler, a fixed seed) on the
 *      held-out prompts, with early stopping after early_stop.patience evaluations without a new best.
 *
 * With --reward-cmd CMD an outside program gives R_c instead of the two reward models (rewardcmd.h:
 * JSONL response records in, one reward per line out; a rule-based reward, or toyworld's oracle to
 * see what PPO does with a perfect reward model); the value model then starts from the policy.
 *
 * The run directory DIR holds
 *     DIR/metrics.tsv  step (= iteration), name, value (the names are listed in docs/ppo.md)
 *     DIR/ckpt/        the policy: model, tokenizer, AdamW state, trainer_state.json
 *     DIR/value/       the value model and its AdamW state
 *     DIR/best/        the policy of the best held-out reward (when there is a held-out set)
 * With --rollouts FILE, every rollout answer goes to FILE as a response record (prompt, text, iteration,
 * reward, reward_helpfulness, reward_safety, safety_used): an outside judge (toyworld score, a person) can
 * then check that what the reward models reward is what it should be.
 * Checkpoints are written every save_every iterations, at a stop request, at --stop-at and at the end.
 * `--resume` continues from them to the same result as an uninterrupted run: the trainer state keeps
 * the iteration, the data position, the reward-whitening statistics, beta and the early-stopping
 * state, and every random draw is a function of (seed, iteration).
 * A NaN or Inf in a gradient, a reward or a log-probability stops the run without saving: the last
 * checkpoint written is the last good one. (--fault-nan N poisons the gradient at iteration N, to test
 * exactly that.)
 *
 * Exit status: 0 finished (or early-stopped, or stopped at --stop-at), 1 runtime failure, NaN, or
 * interrupted by a signal (after saving), 2 usage or input error.
 */
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
#include "gen.h"
#include "jsonl.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "ppo.h"
#include "reward.h"
#include "rewardcmd.h"
#include "rng.h"
#include "store.h"
#include "threads.h"
#include "tokenizer.h"
#include "trainlog.h"
#include "util.h"

#define PROG "ppo"

typedef struct {
    int64_t iterations, batch, minibatch, epochs, seed, save_every, eval_every, eval_prompts, patience;
    double temperature, top_p;
    int64_t top_k, max_new, gen_batch;
    double gamma, lambda, clip, value_clip;
    bool whiten_adv;
    double beta, kl_target, kl_horizon;
    char *kl_estimator;
    char *reward_whiten;
    double safety_threshold;
    ConfigStrList safety_risks;
    char *value_init;
    double lr, value_lr, beta1, beta2, eps, weight_decay, grad_clip, progress_interval;
    char *split, *source;
    int64_t limit;
} PpoCfg;

#define K(k, t, f, d, lo, hi, h) {.key = k, .type = t, .offset = offsetof(PpoCfg, f), .def = d, .min = lo, .max = hi, .help = h}
#define BIG ((double)(1LL << 40))
static const ConfigKey PPO_SCHEMA[] = {
    K("train.iterations", CONFIG_INT, iterations, "20", 1, BIG, "PPO iterations (rollout, then updates)"),
    K("rollout.batch", CONFIG_INT, batch, "64", 1, 1 << 20, "prompts (answers) per iteration (Llama 2: 512)"),
    K("rollout.minibatch", CONFIG_INT, minibatch, "16", 1, 1 << 16, "answers per optimizer step (Llama 2: 64)"),
    K("rollout.epochs", CONFIG_INT, epochs, "1", 1, 1 << 10, "passes over each batch (Llama 2: 1, one step per minibatch)"),
    K("sample.temperature", CONFIG_FLOAT, temperature, "1.0", 0, 100, "rollout temperature (PPO's ratio assumes 1)"),
    K("sample.top_k", CONFIG_INT, top_k, "0", 0, 1 << 24, "rollout top-k (0 = all)"),
    K("sample.top_p", CONFIG_FLOAT, top_p, "1.0", 1e-9, 1, "rollout nucleus (1 = all)"),
    K("sample.max_new", CONFIG_INT, max_new, "64", 1, 1 << 20, "most answer tokens"),
    K("sample.batch", CONFIG_INT, gen_batch, "16", 1, 1 << 16, "sequences decoded together"),
    K("ppo.gamma", CONFIG_FLOAT, gamma, "1.0", 0, 1, "discount of GAE"),
    K("ppo.lambda", CONFIG_FLOAT, lambda, "0.95", 0, 1, "lambda of GAE"),
    K("ppo.clip", CONFIG_FLOAT, clip, "0.2", 1e-6, 10, "clip range of the probability ratio"),
    K("ppo.value_clip", CONFIG_FLOAT, value_clip, "0.2", 0, 1e9, "clip range of the value update (0 = off)"),
    K("ppo.whiten_advantages", CONFIG_BOOL, whiten_adv, "true", 0, 0, "whiten advantages over the batch's tokens"),
    K("kl.beta", CONFIG_FLOAT, beta, "0.01", 0, 1e6, "weight of the KL penalty (Llama 2: 0.01 for 7B/13B, 0.005 for 34B/70B)"),
    {.key = "kl.estimator", .type = CONFIG_ENUM, .offset = offsetof(PpoCfg, kl_estimator), .def = "k1",
     .choices = "k1|k2|k3", .help = "per-token KL estimate in the penalty (k3 is always logged as kl)"},
    K("kl.target", CONFIG_FLOAT, kl_target, "0", 0, 1e6, "adaptive controller's target sequence KL (0 = fixed beta)"),
    K("kl.horizon", CONFIG_FLOAT, kl_horizon, "10000", 1, 1e12, "adaptive controller's horizon in answers"),
    {.key = "reward.whiten", .type = CONFIG_ENUM, .offset = offsetof(PpoCfg, reward_whiten), .def = "running",
     .choices = "running|batch|none", .help = "whitening of the combined reward's logit"},
    K("reward.safety_threshold", CONFIG_FLOAT, safety_threshold, "0.15", 0, 1, "use the safety score when sigmoid(safety) is below this"),
    K("reward.safety_risks", CONFIG_STRLIST, safety_risks, "[adversarial]", 0, 0, "tags.risk values that make a prompt a safety prompt"),
    {.key = "value.init", .type = CONFIG_ENUM, .offset = offsetof(PpoCfg, value_init), .def = "reward",
     .choices = "reward|policy", .help = "value model from the helpfulness reward model, or from the policy with a zero head"},
    K("optim.lr", CONFIG_FLOAT, lr, "1e-6", 0, 10, "policy learning rate, constant (Llama 2: 1e-6)"),
    K("optim.value_lr", CONFIG_FLOAT, value_lr, "1e-5", 0, 10, "value model learning rate, constant"),
    K("optim.beta1", CONFIG_FLOAT, beta1, "0.9", 0, 1, "AdamW beta1"),
    K("optim.beta2", CONFIG_FLOAT, beta2, "0.95", 0, 1, "AdamW beta2"),
    K("optim.eps", CONFIG_FLOAT, eps, "1e-5", 0, 1, "AdamW epsilon"),
    K("optim.weight_decay", CONFIG_FLOAT, weight_decay, "0.1", 0, 10, "AdamW decoupled weight decay (matrices only)"),
    K("optim.grad_clip", CONFIG_FLOAT, grad_clip, "1.0", 0, 1e9, "clip each model's global gradient norm (0 = off)"),
    K("train.seed", CONFIG_INT, seed, "1", 0, (double)INT64_MAX, "seed of the data order, rollouts and minibatches (--seed)"),
    K("train.save_every", CONFIG_INT, save_every, "0", 0, BIG, "write the checkpoints every N iterations (0 = only at the end)"),
    K("train.eval_every", CONFIG_INT, eval_every, "5", 0, BIG, "held-out reward every N iterations and at the end (0 = never)"),
    K("train.eval_prompts", CONFIG_INT, eval_prompts, "64", 0, 1 << 20, "held-out prompts per evaluation (0 = all)"),
    K("early_stop.patience", CONFIG_INT, patience, "0", 0, BIG, "stop after N evaluations without a new best (0 = never)"),
    K("train.progress_interval", CONFIG_FLOAT, progress_interval, "10", 0, 1e6, "seconds between progress lines when stderr is not a terminal"),
    K("data.split", CONFIG_STRING, split, "", 0, 0, "store prompts: only this split is read (empty = train and test)"),
    K("data.source", CONFIG_STRING, source, "", 0, 0, "store prompts of this source only"),
    K("data.limit", CONFIG_INT, limit, "0", 0, BIG, "at most this many store prompts (0 = all)"),
    {0},
};
#undef K

static void usage(FILE *f) {
    fprintf(f,
            "usage: ppo --init DIR --rm-helpfulness DIR --rm-safety DIR --out DIR [options] [FILE|-]...\n"
            "       ppo --init DIR --reward-cmd CMD --set value.init=policy --out DIR [options] [FILE|-]...\n\n"
            "PPO on the policy --init against the Llama 2 combined reward of two reward models, with a KL\n"
            "penalty to the reference. Prompts: JSONL Prompt objects (FILE|-), or the store's prompts when none\n"
            "is named; split \"test\" ones are held out. Writes DIR/metrics.tsv, DIR/ckpt (the policy),\n"
            "DIR/value and DIR/best (docs/ppo.md).\n\n"
            "options:\n"
            "  --init DIR         the policy to start from (required; the rejection-sampling checkpoint)\n"
            "  --ref DIR          the frozen reference of the KL penalty (default: the --init checkpoint)\n"
            "  --rm-helpfulness DIR  the helpfulness reward model (required; --rm-helpful is the same)\n"
            "  --rm-safety DIR    the safety reward model (required)\n"
            "  --reward-cmd CMD   instead of the reward models: R_c from a program (sh -c CMD) that reads JSONL\n"
            "                     response records on stdin and writes one reward per line (a number, or\n"
            "                     {\"reward\": x}); docs/ppo.md\n"
            "  --value-init DIR   start the value model from this scalar-head checkpoint instead\n"
            "  --out DIR          run directory (required)\n"
            "  --resume           continue the run in DIR from DIR/ckpt and DIR/value (same command line)\n"
            "  --stop-at N        save resumable checkpoints after iteration N and exit 0\n"
            "  --rollouts FILE    write every rollout answer with its rewards to FILE (JSONL response records,\n"
            "                     the input of toyworld score; appended on --resume): to audit the reward\n"
            "  --fault-nan N      testing: poison the policy gradient at iteration N (the run must stop\n"
            "                     with exit 1 and keep its last good checkpoint)\n"
            "  --config FILE      YAML configuration (keys below)\n"
            "  --set key=value    override one configuration key (repeatable)\n"
            "  --db PATH          the store: prompts come from it when no input is named, and the run is\n"
            "                     recorded in it (default ./prefs.db when reading prompts from it)\n"
            "  --iteration N      the pipeline iteration recorded with the run\n"
            "  --seed N           --set train.seed=N, applied after every --set\n"
            "  --threads N        threads (default: OMP_NUM_THREADS, else every core)\n"
            "  --help, --version\n\n"
            "Exit status: 0 ok (also early-stopped), 1 runtime failure, NaN, or interrupted (checkpoint saved),\n"
            "2 usage or input error.\n\n"
            "configuration keys:\n");
    config_print_help(PPO_SCHEMA, f);
}

typedef struct {
    CliCommon cli; /* --db, --iteration, --config, --set, --seed, --threads, the inputs */
    const char *init, *ref, *rm_help, *rm_safe, *value_init, *out, *rollouts, *reward_cmd;
    bool resume;
    int64_t stop_at, fault_nan;
} Opts;

static int parse_opts(int argc, char **argv, Opts *o) {
    static const struct option longopts[] = {
        {"init", required_argument, 0, 'i'}, {"ref", required_argument, 0, 'r'},
        {"rm-helpfulness", required_argument, 0, 'H'}, {"rm-helpful", required_argument, 0, 'H'},
        {"rm-safety", required_argument, 0, 'S'},
        {"value-init", required_argument, 0, 'v'}, {"out", required_argument, 0, 'o'},
        {"resume", no_argument, 0, 'R'}, {"stop-at", required_argument, 0, 'A'}, {"fault-nan", required_argument, 0, 'N'},
        {"rollouts", required_argument, 0, 'D'}, {"reward-cmd", required_argument, 0, 'C'},
        CLI_OPTIONS_STORE, CLI_OPTIONS_COMMON, {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    cli_common_init(&o->cli, PROG, RLHF_VERSION, usage, argc);
    o->stop_at = o->fault_nan = -1;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': o->init = optarg; break;
        case 'r': o->ref = optarg; break;
        case 'H': o->rm_help = optarg; break;
        case 'S': o->rm_safe = optarg; break;
        case 'v': o->value_init = optarg; break;
        case 'o': o->out = optarg; break;
        case 'R': o->resume = true; break;
        case 'A': if ((rc = cli_int(PROG, "--stop-at", optarg, 1, &o->stop_at))) return rc; break;
        case 'N': if ((rc = cli_int(PROG, "--fault-nan", optarg, 1, &o->fault_nan))) return rc; break;
        case 'D': o->rollouts = optarg; break;
        case 'C':
            if (!*optarg) return cli_fail(PROG, ERR_INPUT, "--reward-cmd: expected a command");
            o->reward_cmd = optarg;
            break;
        default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
        }
    }
    cli_common_inputs(&o->cli, argc, argv);
    if (!o->init) return cli_fail(PROG, ERR_INPUT, "--init DIR (the policy) is required (see --help)");
    if (o->reward_cmd && (o->rm_help || o->rm_safe))
        return cli_fail(PROG, ERR_INPUT, "--reward-cmd replaces --rm-helpfulness and --rm-safety: give one or the other");
    if (!o->reward_cmd && (!o->rm_help || !o->rm_safe))
        return cli_fail(PROG, ERR_INPUT, "--rm-helpfulness DIR and --rm-safety DIR are required, or --reward-cmd CMD (see --help)");
    if (!o->out) return cli_fail(PROG, ERR_INPUT, "--out DIR is required (see --help)");
    return 0;
}

/* ---- prompts ------------------------------------------------------------------------------------- */

typedef struct {
    json_t *dialogue; /* owned */
    char *system;     /* NULL = none */
    int safety;       /* tagged as a safety prompt */
    TokenList ids;    /* the chat generation prompt */
    uint64_t index;   /* line number or store id: its random streams */
} Prompt;

typedef struct {
    Prompt *v;
    size_t n, cap;
    int64_t skipped;
} PromptList;

typedef struct {
    PromptList train, test;
    const Tokenizer *tok;
    int max_prompt;            /* longest prompt that leaves room for one answer token */
    const ConfigStrList *risks;
} Prompts;

static void prompt_list_free(PromptList *l) {
    for (size_t i = 0; i < l->n; i++) {
        json_decref(l->v[i].dialogue);
        free(l->v[i].system);
        token_list_free(&l->v[i].ids);
    }
    free(l->v);
}

/* Encode one prompt and file it under train or test (or skip it when it leaves no room to answer). */
static Err add_prompt(Prompts *ps, json_t *dialogue, const char *system, const char *risk, const char *split,
                      uint64_t index, const char *where) {
    TokenList ids = {0};
    Err rc = chat_encode_prompt(ps->tok, dialogue, system && *system ? system : NULL, &ids);
    if (rc) {
        token_list_free(&ids);
        return err_prefix(rc, "%s: ", where);
    }
    PromptList *l = split && strcmp(split, "test") == 0 ? &ps->test : &ps->train;
    if (ids.n > (size_t)ps->max_prompt) {
        token_list_free(&ids);
        l->skipped++;
        return ERR_OK;
    }
    int safety = 0;
    for (size_t i = 0; risk && i < ps->risks->n; i++) safety |= strcmp(risk, ps->risks->items[i]) == 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    json_incref(dialogue);
    l->v[l->n++] = (Prompt){dialogue, system && *system ? xstrdup(system) : NULL, safety, ids, index};
    return ERR_OK;
}

static const char *json_str_or_null(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static Err read_jsonl_prompts(Prompts *ps, const char *path) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, path);
    if (rc) return rc;
    json_t *v;
    int64_t line;
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        char where[600];
        snprintf(where, sizeof where, "%s:%" PRId64, jsonl_name(r), line);
        const json_t *type = json_object_get(v, "type"), *tags = json_object_get(v, "tags");
        json_t *dialogue = json_object_get(v, "dialogue");
        if (!json_is_object(v)) rc = err_set(ERR_INPUT, "%s: expected a JSON object (a prompt)", where);
        else if (type && (!json_is_string(type) || strcmp(json_string_value(type), "prompt") != 0))
            rc = err_set(ERR_INPUT, "%s: \"type\": expected \"prompt\"", where);
        else if (!dialogue) rc = err_set(ERR_INPUT, "%s: \"dialogue\": missing", where);
        else if (json_object_get(v, "system") && !json_str_or_null(v, "system"))
            rc = err_set(ERR_INPUT, "%s: \"system\": expected a string", where);
        else if (tags && !json_is_object(tags)) rc = err_set(ERR_INPUT, "%s: \"tags\": expected an object", where);
        else
            rc = add_prompt(ps, dialogue, json_str_or_null(v, "system"), tags ? json_str_or_null(tags, "risk") : NULL,
                            json_str_or_null(v, "split"), (uint64_t)line, where);
        json_decref(v);
        if (rc) break;
    }
    jsonl_close(r);
    return rc;
}

static Err add_store_prompt(void *ctx, const StorePrompt *p) {
    json_error_t je;
    json_t *dialogue = json_loads(p->dialogue, 0, &je);
    if (!dialogue) return err_set(ERR_INPUT, "prompt %" PRId64 ": dialogue: %s", p->id, je.text);
    json_t *tags = p->tags ? json_loads(p->tags, 0, &je) : NULL;
    char where[64];
    snprintf(where, sizeof where, "prompt %" PRId64, p->id);
    Err rc = add_prompt(ctx, dialogue, p->system, tags ? json_str_or_null(tags, "risk") : NULL, p->split,
                        (uint64_t)p->id, where);
    json_decref(tags);
    json_decref(dialogue);
    return rc;
}

/* ---- rollouts -------------------------------------------------------------------------------------- */

/* One answer of the batch: the PPO arrays (ppo.h) and what the reward models made of it. */
typedef struct {
    PpoSeq q;
    const Prompt *p;
    char *text; /* the answer decoded (what the reward models read) */
    float r_help, r_safe, r_c;
    int used_safety;
} Seq;

static void seqs_free(Seq *s, int n) {
    for (int i = 0; i < n; i++) {
        ppo_seq_free(&s[i].q);
        free(s[i].text);
    }
    free(s);
}

/* The answer text: EOS dropped, surrounding whitespace stripped (as `generate` writes it). */
/* ---- the trainer ----------------------------------------------------------------------------------- */

typedef struct {
    Model pol, val, ref;
    CkptMap ref_map;
    RewardModel rm_help, rm_safe;
    Tokenizer tok;
    AdamW pol_opt, val_opt;
    bool have_pol, have_val, have_ref, have_rmh, have_rms, have_tok, have_pol_opt, have_val_opt;
    Prompts prompts;
    int64_t *order;  /* permutation of the train prompts for the current epoch */
    /* progress, all in the trainer state */
    int64_t iter, epoch, pos, evals_since_best;
    PpoRunning run;
    PpoKlCtl kl;
    double best_eval;
    char *config_text;
    int MB;         /* answers per minibatch */
    bool log_open;  /* the loop has started */
    FILE *rollouts; /* --rollouts, or NULL */
    const char *reward_cmd; /* --reward-cmd, or NULL: the reward models */
    bool finished;  /* restored from a run that ended (all iterations, or early-stopped) */
    PpoScratch sc;
} Trainer;

static void make_order(Trainer *tr, uint64_t seed) {
    size_t n = tr->prompts.train.n;
    for (size_t i = 0; i < n; i++) tr->order[i] = (int64_t)i;
    Rng base, r;
    rng_seed(&base, seed);
    r = rng_fork(&base, 0x0de7ULL << 32 | (uint64_t)tr->epoch);
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = rng_below(&r, (uint32_t)i);
        int64_t t = tr->order[i - 1];
        tr->order[i - 1] = tr->order[j];
        tr->order[j] = t;
    }
}

/* Generate one answer per prompt and set up each sequence (tokens, text). *n_out gets the sequences
 * kept (answers with at least one token). */
static Err rollout(Trainer *tr, const PpoCfg *c, const Prompt *const *ps, int n, uint64_t seed, Seq **out,
                   int *n_out, int64_t *generated) {
    GenPrompt *gp = xmalloc((size_t)n * sizeof *gp);
    for (int i = 0; i < n; i++) gp[i] = (GenPrompt){ps[i]->ids.ids, (int)ps[i]->ids.n, ps[i]->index};
    GenConfig g = {.sampler = {.temperature = (float)c->temperature, .top_k = (int)c->top_k, .top_p = (float)c->top_p},
                   .max_new = (int)c->max_new, .batch = (int)c->gen_batch, .seed = seed};
    GenSample *smp = xmalloc((size_t)n * sizeof *smp);
    GenStats st;
    Err rc = gen_run(&tr->pol, gp, n, 1, &g, smp, &st);
    free(gp);
    if (rc) {
        free(smp);
        return rc;
    }
    Seq *s = xcalloc((size_t)n, sizeof *s);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (smp[i].n == 0) continue; /* the context was full: nothing to learn from */
        Seq *q = &s[k++];
        q->p = ps[i];
        ppo_seq_init(&q->q, ps[i]->ids.ids, (int)ps[i]->ids.n, smp[i].ids, smp[i].n);
        q->text = gen_answer_text(&tr->tok, &smp[i]);
    }
    *generated = st.generated;
    gen_samples_free(smp, n);
    free(smp);
    *out = s;
    *n_out = k;
    return ERR_OK;
}

/* Both reward models on every answer, and the gated combination; or the reward command's reward. */
static Err score(Trainer *tr, const PpoCfg *c, Seq *s, int n) {
    const json_t **dia = xmalloc((size_t)n * sizeof *dia);
    const char **sys = xmalloc((size_t)n * sizeof *sys), **txt = xmalloc((size_t)n * sizeof *txt);
    float *h = xmalloc((size_t)n * sizeof *h), *sf = xmalloc((size_t)n * sizeof *sf);
    for (int i = 0; i < n; i++) {
        dia[i] = s[i].p->dialogue;
        sys[i] = s[i].p->system;
        txt[i] = s[i].text;
    }
    Err rc;
    if (tr->reward_cmd) {
        rc = reward_cmd_score(tr->reward_cmd, dia, sys, txt, n, h);
        for (int i = 0; !rc && i < n; i++) {
            s[i].r_c = s[i].r_help = h[i];
            s[i].r_safe = 0;
            s[i].used_safety = 0;
        }
        goto out;
    }
    rc = reward_score_text(&tr->rm_help, dia, sys, txt, n, h);
    if (!rc) rc = reward_score_text(&tr->rm_safe, dia, sys, txt, n, sf);
    for (int i = 0; !rc && i < n; i++) {
        s[i].r_help = h[i];
        s[i].r_safe = sf[i];
        s[i].r_c = reward_combine(h[i], sf[i], s[i].p->safety, (float)c->safety_threshold, &s[i].used_safety);
        if (!isfinite(s[i].r_c)) rc = err_set(ERR_RUNTIME, "a reward model gave a non-finite score");
    }
out:
    free(dia);
    free(sys);
    free(txt);
    free(h);
    free(sf);
    return rc;
}

/* --rollouts: one response record per answer (what toyworld score and the other JSONL readers take),
 * with the iteration and what the reward models made of it. */
static Err write_rollouts(FILE *f, const Seq *s, int n, int64_t iteration, bool per_rm) {
    Err rc = ERR_OK;
    for (int i = 0; !rc && i < n; i++) {
        json_t *rec = reward_cmd_record(s[i].p->dialogue, s[i].p->system, s[i].text);
        json_object_set_new(rec, "iteration", json_integer(iteration));
        json_object_set_new(rec, "reward", json_real(s[i].r_c));
        if (per_rm) { /* the reward models' scores (a --reward-cmd reward has only the one) */
            json_object_set_new(rec, "reward_helpfulness", json_real(s[i].r_help));
            json_object_set_new(rec, "reward_safety", json_real(s[i].r_safe));
            json_object_set_new(rec, "safety_used", json_boolean(s[i].used_safety));
        }
        rc = jsonl_write(f, rec);
        json_decref(rec);
    }
    if (!rc && fflush(f) != 0) rc = err_set(ERR_RUNTIME, "--rollouts: write failed");
    return rc;
}

typedef struct {
    double reward, r_help, r_safe, safety_used, kl, kl_penalty, entropy, length, score;
    double pg_loss, clipfrac, approx_kl, v_loss, v_clipfrac, expl_var, pol_norm, val_norm;
    int64_t tokens;
} IterStats;

/* The seam of every trainer: NaN/Inf check and clipping, then AdamW with a constant rate. */
static Err finish_and_step(Model *m, AdamW *opt, const PpoCfg *c, float lr, double *norm) {
    AdamWConfig acfg = {(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay};
    Err rc = optim_finish_grads(m->grads, m->n_params, (float)c->grad_clip, norm);
    if (!rc) adamw_step(opt, m->params, m->grads, m->tensors, m->n_tensors, &acfg, lr);
    return rc;
}

/* One optimizer step of each model on the minibatch s (B answers); token-weighted sums into st. */
static Err update(Trainer *tr, const PpoCfg *c, PpoSeq *const *s, int B, bool poison, IterStats *st) {
    PpoPolicyStats ps;
    PpoValueStats vs;
    double pnorm, vnorm;
    ppo_policy_backward(&tr->pol, &tr->sc, s, B, (float)c->clip, &ps);
    if (poison) tr->pol.grads[tr->pol.n_params / 2] = NAN; /* --fault-nan */
    Err rc = finish_and_step(&tr->pol, &tr->pol_opt, c, (float)c->lr, &pnorm);
    if (rc) return err_prefix(rc, "iteration %" PRId64 ", policy: ", tr->iter + 1);
    ppo_value_backward(&tr->val, &tr->sc, s, B, (float)c->value_clip, &vs);
    rc = finish_and_step(&tr->val, &tr->val_opt, c, (float)c->value_lr, &vnorm);
    if (rc) return err_prefix(rc, "iteration %" PRId64 ", value model: ", tr->iter + 1);
    int64_t n = 0;
    for (int b = 0; b < B; b++) n += s[b]->nr;
    st->pg_loss += ps.loss * (double)n;
    st->clipfrac += ps.clipfrac * (double)n;
    st->approx_kl += ps.approx_kl * (double)n;
    st->v_loss += vs.loss * (double)n;
    st->v_clipfrac += vs.clipfrac * (double)n;
    st->pol_norm += pnorm * (double)n;
    st->val_norm += vnorm * (double)n;
    st->tokens += n;
    return ERR_OK;
}

/* Mean R_c of the policy's answers to the held-out prompts (the rollout sampler with a fixed seed,
 * so that evaluations differ only by the policy). */
static Err evaluate(Trainer *tr, const PpoCfg *c, double *mean) {
    size_t n = tr->prompts.test.n;
    if (c->eval_prompts > 0 && (size_t)c->eval_prompts < n) n = (size_t)c->eval_prompts;
    const Prompt **ps = xmalloc(n * sizeof *ps);
    for (size_t i = 0; i < n; i++) ps[i] = &tr->prompts.test.v[i];
    Seq *s = NULL;
    int k = 0;
    int64_t gen;
    Err rc = rollout(tr, c, ps, (int)n, (uint64_t)c->seed ^ 0xe7a1ULL, &s, &k, &gen);
    if (!rc && k > 0) rc = score(tr, c, s, k);
    double sum = 0;
    for (int i = 0; !rc && i < k; i++) sum += s[i].r_c;
    *mean = k ? sum / k : NAN;
    if (s) seqs_free(s, k);
    free(ps);
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(len);
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static json_t *trainer_state(const Trainer *tr, bool finished) {
    /* JSON has no infinities: a run without an evaluation yet has best_eval null */
    json_t *st = json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:o, s:I, s:s, s:b}", "program", PROG,
                           "iteration", (json_int_t)tr->iter, "epoch", (json_int_t)tr->epoch, "pos",
                           (json_int_t)tr->pos, "whiten_count", tr->run.count, "whiten_mean", tr->run.mean,
                           "whiten_m2", tr->run.m2, "beta", tr->kl.beta, "best_eval",
                           isfinite(tr->best_eval) ? json_real(tr->best_eval) : json_null(), "evals_since_best",
                           (json_int_t)tr->evals_since_best, "config", tr->config_text, "finished", finished);
    ASSERT(st);
    return st;
}

/* The value model first, then the policy with the trainer state: a crash between the two leaves an
 * older policy state, which resume notices by the iteration each one records. */
static Err save(Trainer *tr, const char *out, bool finished) {
    char *vdir = path_join(out, "value"), *pdir = path_join(out, "ckpt");
    json_t *st = trainer_state(tr, finished);
    CkptExtras vex = {.opt = &tr->val_opt, .trainer_state = st};
    Err rc = ckpt_save(vdir, &tr->val, &vex);
    if (!rc) {
        CkptExtras pex = {.tokenizer = &tr->tok, .opt = &tr->pol_opt, .trainer_state = st};
        rc = ckpt_save(pdir, &tr->pol, &pex);
    }
    json_decref(st);
    free(vdir);
    free(pdir);
    return rc;
}

static Err restore(Trainer *tr, const char *out) {
    char *vdir = path_join(out, "value"), *pdir = path_join(out, "ckpt");
    json_t *st = NULL, *vst = NULL;
    Err rc = ckpt_load_trainer_state(pdir, &st);
    if (!rc) rc = ckpt_load_trainer_state(vdir, &vst);
    json_int_t it, ep, pos, esb, vit;
    int finished = 0;
    double cnt, mean, m2, beta;
    json_t *best;
    const char *cfg;
    json_error_t je;
    if (!rc && json_unpack_ex(st, &je, 0, "{s:I, s:I, s:I, s:F, s:F, s:F, s:F, s:o, s:I, s:s, s:b}", "iteration", &it,
                              "epoch", &ep, "pos", &pos, "whiten_count", &cnt, "whiten_mean", &mean, "whiten_m2", &m2,
                              "beta", &beta, "best_eval", &best, "evals_since_best", &esb, "config", &cfg, "finished",
                              &finished) != 0)
        rc = err_set(ERR_INPUT, "%s/trainer_state.json: %s (not written by ppo?)", pdir, je.text);
    else if (!rc && json_unpack_ex(vst, &je, 0, "{s:I}", "iteration", &vit) != 0)
        rc = err_set(ERR_INPUT, "%s/trainer_state.json: %s", vdir, je.text);
    else if (!rc && vit != it)
        rc = err_set(ERR_INPUT, "%s is at iteration %lld and %s at %lld: the run stopped while saving; start again",
                     pdir, (long long)it, vdir, (long long)vit);
    else if (!rc && strcmp(cfg, tr->config_text) != 0)
        rc = err_set(ERR_INPUT, "%s: the configuration differs from the one the run started with; resume with the "
                     "same --config and --set (the saved one is in trainer_state.json)", pdir);
    if (!rc) {
        tr->iter = it;
        tr->epoch = ep;
        tr->pos = pos;
        tr->run = (PpoRunning){cnt, mean, m2};
        tr->kl.beta = beta;
        tr->best_eval = json_is_number(best) ? json_number_value(best) : NAN;
        tr->evals_since_best = esb;
        tr->finished = finished;
    }
    json_decref(st);
    json_decref(vst);
    free(vdir);
    free(pdir);
    return rc;
}

/* A value model from the policy: the same transformer, the scalar head zeroed (the first values are
 * 0, so the first advantages are the returns themselves). */
static Err value_from_policy(Model *val, const Model *pol) {
    ModelConfig vc = pol->cfg;
    vc.head = HEAD_SCALAR;
    vc.tie_embeddings = 0;
    Err rc = model_create(val, &vc, NULL);
    if (rc) return rc;
    for (int i = 0; i < val->n_tensors; i++) {
        const ModelTensor *t = &val->tensors[i];
        const ModelTensor *src = model_find_tensor(pol, t->name);
        if (src) {
            ASSERT(src->numel == t->numel);
            memcpy(val->params + t->offset, pol->params + src->offset, t->numel * sizeof(float));
        } else {
            memset(val->params + t->offset, 0, t->numel * sizeof(float));
        }
    }
    return ERR_OK;
}

static Err check_pair(const Model *a, const char *an, const Model *b, const char *bn) {
    if (a->cfg.vocab_size != b->cfg.vocab_size)
        return err_set(ERR_INPUT, "%s has vocabulary %d and %s %d: they must read the same tokens", bn,
                       b->cfg.vocab_size, an, a->cfg.vocab_size);
    if (b->cfg.max_seq_len < a->cfg.max_seq_len)
        return err_set(ERR_INPUT, "%s has context %d, shorter than %s's %d", bn, b->cfg.max_seq_len, an,
                       a->cfg.max_seq_len);
    return ERR_OK;
}

static Err load_models(Trainer *tr, const Opts *o, const PpoCfg *c) {
    char *pdir = path_join(o->out, "ckpt"), *vdir = path_join(o->out, "value");
    const char *pol_from = o->resume ? pdir : o->init;
    Err rc = ckpt_load_model(&tr->pol, pol_from, NULL);
    tr->have_pol = !rc;
    if (!rc && tr->pol.cfg.head != HEAD_LM) rc = err_set(ERR_INPUT, "%s: the policy needs the LM head (this is a reward/value model)", pol_from);
    if (!rc) tr->have_tok = !(rc = ckpt_load_tokenizer(&tr->tok, pol_from, tr->pol.cfg.vocab_size));
    const char *ref_from = o->ref ? o->ref : o->init;
    if (!rc) tr->have_ref = !(rc = ckpt_load_model(&tr->ref, ref_from, &tr->ref_map));
    if (!rc && tr->ref.cfg.head != HEAD_LM) rc = err_set(ERR_INPUT, "%s: the reference needs the LM head", ref_from);
    if (!rc) rc = check_pair(&tr->pol, "the policy", &tr->ref, ref_from);
    if (!rc && !o->reward_cmd) tr->have_rmh = !(rc = reward_load(&tr->rm_help, o->rm_help, (int)c->minibatch));
    if (!rc && !o->reward_cmd) tr->have_rms = !(rc = reward_load(&tr->rm_safe, o->rm_safe, (int)c->minibatch));
    if (!rc && !o->resume && !o->value_init && o->reward_cmd && strcmp(c->value_init, "reward") == 0)
        rc = err_set(ERR_INPUT, "value.init: reward starts the value model from the helpfulness reward model, and "
                     "--reward-cmd has none: --set value.init=policy (or --value-init DIR)");
    if (!rc) {
        const char *vfrom = o->resume ? vdir : o->value_init ? o->value_init
                                          : strcmp(c->value_init, "reward") == 0 ? o->rm_help : NULL;
        if (vfrom) {
            rc = ckpt_load_model(&tr->val, vfrom, NULL);
            tr->have_val = !rc;
            tr->val.cfg.score_len = 0; /* a value model reads every position, whatever its reward model read */
            if (!rc && tr->val.cfg.head != HEAD_SCALAR) rc = err_set(ERR_INPUT, "%s: the value model needs the scalar head", vfrom);
            if (!rc) rc = check_pair(&tr->pol, "the policy", &tr->val, vfrom);
        } else {
            tr->have_val = !(rc = value_from_policy(&tr->val, &tr->pol));
        }
    }
    if (!rc && o->resume) {
        tr->have_pol_opt = !(rc = ckpt_load_optimizer(&tr->pol_opt, pdir, &tr->pol));
        if (!rc) tr->have_val_opt = !(rc = ckpt_load_optimizer(&tr->val_opt, vdir, &tr->val));
    } else if (!rc) {
        adamw_create(&tr->pol_opt, tr->pol.n_params);
        adamw_create(&tr->val_opt, tr->val.n_params);
        tr->have_pol_opt = tr->have_val_opt = true;
    }
    free(pdir);
    free(vdir);
    return rc;
}

static void trainer_free(Trainer *tr) {
    if (tr->have_pol_opt) adamw_free(&tr->pol_opt);
    if (tr->have_val_opt) adamw_free(&tr->val_opt);
    if (tr->have_val) model_free(&tr->val);
    if (tr->have_rms) reward_free(&tr->rm_safe);
    if (tr->have_rmh) reward_free(&tr->rm_help);
    if (tr->have_ref) {
        model_free(&tr->ref);
        ckpt_map_free(&tr->ref_map);
    }
    if (tr->have_tok) tokenizer_free(&tr->tok);
    if (tr->have_pol) model_free(&tr->pol);
    prompt_list_free(&tr->prompts.train);
    prompt_list_free(&tr->prompts.test);
    free(tr->order);
    ppo_scratch_free(&tr->sc);
    free(tr->config_text);
}

/* ---- one iteration ---------------------------------------------------------------------------------- */

static Err iteration(Trainer *tr, const PpoCfg *c, const Opts *o, IterStats *st) {
    Rng base;
    rng_seed(&base, (uint64_t)c->seed);
    Rng it_rng = rng_fork(&base, 1 + (uint64_t)tr->iter);
    memset(st, 0, sizeof *st);

    /* 1-2: the next prompts, one answer each */
    int P = (int)c->batch;
    const Prompt **ps = xmalloc((size_t)P * sizeof *ps);
    for (int i = 0; i < P; i++) {
        if (tr->pos == (int64_t)tr->prompts.train.n) {
            tr->epoch++;
            tr->pos = 0;
            make_order(tr, (uint64_t)c->seed);
        }
        ps[i] = &tr->prompts.train.v[tr->order[tr->pos++]];
    }
    Seq *s = NULL;
    int n = 0;
    int64_t generated = 0;
    Err rc = rollout(tr, c, ps, P, rng_u64(&it_rng), &s, &n, &generated);
    free(ps);
    if (rc) return rc;
    if (n == 0) {
        free(s);
        return err_set(ERR_INPUT, "iteration %" PRId64 ": no prompt left room for an answer", tr->iter + 1);
    }

    /* 3: old log-probabilities (and entropy), reference log-probabilities, values, in minibatches */
    PpoSeq **q = xmalloc((size_t)n * sizeof *q);
    for (int i = 0; i < n; i++) q[i] = &s[i].q;
    double ent = 0;
    for (int i = 0; i < n; i += tr->MB) {
        int B = n - i < tr->MB ? n - i : tr->MB;
        ppo_gather(&tr->pol, &tr->sc, q + i, B, PPO_LOGP_OLD, &ent);
        ppo_gather(&tr->ref, &tr->sc, q + i, B, PPO_LOGP_REF, NULL);
        ppo_gather(&tr->val, &tr->sc, q + i, B, PPO_VALUES, NULL);
    }

    /* 4: the rewards; the logit of R_c (a logit already) whitened */
    rc = score(tr, c, s, n);
    if (!rc && tr->rollouts) rc = write_rollouts(tr->rollouts, s, n, tr->iter + 1, !tr->reward_cmd);
    float *sc = xmalloc((size_t)n * sizeof *sc);
    for (int i = 0; i < n; i++) sc[i] = s[i].r_c;
    if (!rc && strcmp(c->reward_whiten, "running") == 0) {
        ppo_running_update(&tr->run, sc, n);
        ppo_running_whiten(&tr->run, sc, n);
    } else if (!rc && strcmp(c->reward_whiten, "batch") == 0) {
        ppo_whiten(sc, n, 1);
    }
    for (int i = 0; i < n; i++) {
        s[i].q.score = sc[i];
        st->reward += s[i].r_c;
        st->r_help += s[i].r_help;
        st->r_safe += s[i].r_safe;
        st->safety_used += s[i].used_safety;
        st->score += sc[i];
        st->length += s[i].q.nr;
    }
    free(sc);

    /* 5: per-token rewards with the KL penalty, GAE, whitened advantages */
    PpoAdvStats as = {0};
    if (!rc) {
        PpoKl est;
        ASSERT(ppo_kl_parse(c->kl_estimator, &est) == ERR_OK); /* the schema's enum admits only these */
        ppo_advantages(q, n, est, (float)tr->kl.beta, (float)c->gamma, (float)c->lambda, c->whiten_adv, &as);
        if (as.nonfinite) rc = err_set(ERR_RUNTIME, "iteration %" PRId64 ": a log-probability, value or reward is not finite", tr->iter + 1);
    }

    /* 6: epochs of random minibatches, one step of each model per minibatch */
    bool poison = o->fault_nan == tr->iter + 1;
    Rng mb_rng = rng_fork(&it_rng, 1);
    for (int64_t e = 0; !rc && e < c->epochs; e++) {
        for (int i = n; i > 1; i--) {
            int j = (int)rng_below(&mb_rng, (uint32_t)i);
            PpoSeq *t = q[i - 1];
            q[i - 1] = q[j];
            q[j] = t;
        }
        for (int i = 0; !rc && i < n; i += tr->MB) rc = update(tr, c, q + i, n - i < tr->MB ? n - i : tr->MB, poison, st);
    }

    /* 7: the means, and the KL controller */
    if (!rc) {
        double tt = st->tokens > 0 ? (double)st->tokens : 1;
        st->pg_loss /= tt;
        st->clipfrac /= tt;
        st->approx_kl /= tt;
        st->v_loss /= tt;
        st->v_clipfrac /= tt;
        st->pol_norm /= tt;
        st->val_norm /= tt;
        st->reward /= n;
        st->r_help /= n;
        st->r_safe /= n;
        st->safety_used /= n;
        st->score /= n;
        st->length /= n;
        st->kl = as.kl;
        st->kl_penalty = as.kl_penalty;
        st->expl_var = as.explained_variance;
        st->entropy = ent / (double)as.tokens;
        st->tokens = generated;
        double vals[] = {st->pg_loss, st->v_loss, st->kl, st->entropy, st->reward};
        for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
            if (!rc && !isfinite(vals[i])) rc = err_set(ERR_RUNTIME, "iteration %" PRId64 ": a loss or metric is not finite", tr->iter + 1);
        if (!rc) ppo_klctl_update(&tr->kl, st->kl, n);
    }
    free(q);
    seqs_free(s, n);
    return rc;
}

static Err log_iteration(TrainLog *log, int64_t step, const IterStats *st, double beta, double secs, bool per_rm) {
    const struct {
        const char *name;
        double v;
    } m[] = {
        {"reward", st->reward}, {"reward_helpfulness", st->r_help}, {"reward_safety", st->r_safe},
        {"safety_used", st->safety_used}, {"score_whitened", st->score}, {"kl", st->kl},
        {"kl_penalty", st->kl_penalty}, {"beta", beta}, {"entropy", st->entropy}, {"policy_loss", st->pg_loss},
        {"clipfrac", st->clipfrac}, {"approx_kl", st->approx_kl}, {"value_loss", st->v_loss},
        {"value_clipfrac", st->v_clipfrac}, {"explained_variance", st->expl_var}, {"response_length", st->length},
        {"grad_norm_policy", st->pol_norm}, {"grad_norm_value", st->val_norm},
        {"tokens_per_s", secs > 0 ? (double)st->tokens / secs : 0},
    };
    Err rc = ERR_OK;
    for (size_t i = 0; !rc && i < sizeof m / sizeof *m; i++) {
        bool rm_only = i >= 1 && i <= 3; /* reward_helpfulness, reward_safety, safety_used */
        if (per_rm || !rm_only) rc = trainlog_metric(log, step, m[i].name, m[i].v);
    }
    return rc;
}

static int run(const Opts *o, PpoCfg *c) {
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.config_text = config_dump_string(PPO_SCHEMA, c);
    tr.best_eval = NAN;
    tr.kl = (PpoKlCtl){c->beta, c->kl_target, c->kl_horizon};
    Store *db = NULL;
    int64_t run_id = 0;
    TrainLog log = {0};
    const char *stopped = NULL;
    IterStats st = {0};
    double last_eval = NAN;
    Err rc = load_models(&tr, o, c);
    if (rc) goto done;
    tr.reward_cmd = o->reward_cmd;
    fprintf(stderr, PROG ": parameters: policy %zu, value %zu (trainable); reference %zu (%s), ", tr.pol.n_params,
            tr.val.n_params, tr.ref.n_params, tr.ref_map.mapped ? "mapped read-only" : "copied");
    if (tr.reward_cmd)
        fprintf(stderr, "reward from the command %s\n", tr.reward_cmd);
    else
        fprintf(stderr, "reward models %zu (%s) and %zu (%s)\n", tr.rm_help.model.n_params,
                tr.rm_help.map.mapped ? "mapped read-only" : "copied", tr.rm_safe.model.n_params,
                tr.rm_safe.map.mapped ? "mapped read-only" : "copied");

    /* prompts */
    tr.prompts.tok = &tr.tok;
    tr.prompts.risks = &c->safety_risks;
    tr.prompts.max_prompt = tr.pol.cfg.max_seq_len - 1;
    bool from_store = o->cli.ninputs == 0;
    const char *db_path = o->cli.db ? o->cli.db : from_store ? "prefs.db" : NULL;
    if (db_path) {
        struct stat sb;
        if (!o->cli.db && stat(db_path, &sb) != 0) {
            rc = err_set(ERR_INPUT, "no input named and no store at ./prefs.db (give FILE|- or --db PATH)");
            goto done;
        }
        if ((rc = store_open(&db, db_path))) goto done;
    }
    for (int i = 0; !rc && i < o->cli.ninputs; i++) rc = read_jsonl_prompts(&tr.prompts, o->cli.inputs[i]);
    if (!rc && from_store) {
        StoreFilter f = store_filter_any();
        f.split = *c->split ? c->split : NULL;
        f.source = *c->source ? c->source : NULL;
        f.limit = c->limit;
        rc = store_prompts_each(db, &f, add_store_prompt, &tr.prompts);
    }
    if (rc) goto done;
    if (tr.prompts.train.n == 0) {
        rc = err_set(ERR_INPUT, "no training prompts (%zu held out, %" PRId64 " too long for the context)",
                     tr.prompts.test.n, tr.prompts.train.skipped + tr.prompts.test.skipped);
        goto done;
    }
    fprintf(stderr, PROG ": %zu training prompts, %zu held out, %" PRId64 " skipped (too long)\n", tr.prompts.train.n,
            tr.prompts.test.n, tr.prompts.train.skipped + tr.prompts.test.skipped);

    if (o->resume) {
        if ((rc = restore(&tr, o->out))) goto done;
        if (tr.iter >= c->iterations || tr.finished) {
            printf("%s: %s/ckpt already finished at iteration %" PRId64 "%s\n", PROG, o->out, tr.iter,
                   tr.iter < c->iterations ? " (early-stopped)" : "");
            goto cleanup;
        }
        fprintf(stderr, PROG ": resuming %s at iteration %" PRId64 "\n", o->out, tr.iter);
    }
    tr.order = xmalloc(tr.prompts.train.n * sizeof *tr.order);
    make_order(&tr, (uint64_t)c->seed);

    if (db) {
        json_t *in = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:o}", "init", o->resume ? o->out : o->init, "ref",
                               o->ref ? o->ref : o->init, "rm_helpful", o->rm_help, "rm_safety", o->rm_safe,
                               "reward_cmd", o->reward_cmd, "data",
                               json_array());
        for (int i = 0; i < o->cli.ninputs; i++) json_array_append_new(json_object_get(in, "data"), json_string(o->cli.inputs[i]));
        char *ins = jsonl_dumps(in, JSON_COMPACT);
        json_decref(in);
        rc = store_run_begin(db, PROG, o->cli.iteration, tr.config_text, ins, &run_id);
        free(ins);
        if (rc) goto done;
    }
    if ((rc = trainlog_open(&log, o->out, o->resume ? tr.iter : -1, db, run_id))) goto done;
    if (o->rollouts && !(tr.rollouts = fopen(o->rollouts, o->resume ? "a" : "w"))) {
        rc = err_set(ERR_INPUT, "--rollouts %s: cannot open for writing", o->rollouts);
        goto done;
    }
    tr.log_open = true;

    /* scratch for one minibatch at the longest sequence the context allows */
    tr.MB = (int)c->minibatch;
    int T = tr.pol.cfg.max_seq_len;
    model_alloc_train(&tr.pol, tr.MB, T);
    model_alloc_train(&tr.val, tr.MB, T);
    model_alloc_infer(&tr.ref, tr.MB, T);
    ppo_scratch_init(&tr.sc, tr.MB, T);

    trainlog_catch_signals();
    Progress prog;
    trainlog_progress_start(&prog, PROG, tr.iter, c->iterations, c->progress_interval);
    while (tr.iter < c->iterations) {
        double t0 = trainlog_now();
        if ((rc = iteration(&tr, c, o, &st))) break;
        tr.iter++;
        double secs = trainlog_now() - t0;
        if ((rc = log_iteration(&log, tr.iter, &st, tr.kl.beta, secs, !tr.reward_cmd))) break;
        bool early = false;
        if (tr.prompts.test.n > 0 && c->eval_every > 0 && (tr.iter % c->eval_every == 0 || tr.iter == c->iterations)) {
            if ((rc = evaluate(&tr, c, &last_eval))) break;
            if ((rc = trainlog_metric(&log, tr.iter, "eval_reward", last_eval))) break;
            if (isnan(tr.best_eval) || last_eval > tr.best_eval) {
                tr.best_eval = last_eval;
                tr.evals_since_best = 0;
                char *bdir = path_join(o->out, "best");
                CkptExtras bex = {.tokenizer = &tr.tok};
                rc = ckpt_save(bdir, &tr.pol, &bex);
                free(bdir);
                if (rc) break;
            } else if (c->patience > 0 && ++tr.evals_since_best >= c->patience) {
                early = true;
            }
        }
        trainlog_progress(&prog, tr.iter, st.tokens, st.pg_loss, c->lr);
        if (early) stopped = "early-stopped";
        else if (trainlog_stop_requested()) stopped = "interrupted";
        else if (o->stop_at > 0 && tr.iter >= o->stop_at && tr.iter < c->iterations) stopped = "stop-at";
        bool periodic = c->save_every > 0 && tr.iter % c->save_every == 0 && tr.iter < c->iterations;
        if ((stopped || periodic) && (rc = save(&tr, o->out, early))) break;
        if (stopped) break;
    }
    trainlog_progress_end(&prog, tr.iter);
    bool interrupted = stopped && strcmp(stopped, "interrupted") == 0;
    if (!rc && !stopped && (rc = save(&tr, o->out, true)) == ERR_OK)
        printf("%s: iteration %" PRId64 " reward %.4f kl %.4f eval_reward %.4f; checkpoint %s/ckpt\n", PROG, tr.iter,
               st.reward, st.kl, last_eval, o->out);
    if (!rc && stopped)
        fprintf(stderr, PROG ": %s after iteration %" PRId64 "; checkpoint %s/ckpt%s\n", stopped, tr.iter, o->out,
                strcmp(stopped, "early-stopped") == 0 ? " (the best policy is in best/)" : " (continue with --resume)");
    if (rc && tr.log_open) {
        char *m = xstrdup(err_msg()); /* err_set would read its own buffer */
        err_set(rc, "%s; nothing saved: %s/ckpt keeps the last checkpoint written before it", m, o->out);
        free(m);
    }
    if (db && run_id) {
        json_t *out = json_pack("{s:s, s:I, s:f, s:f, s:s?}", "checkpoint", o->out, "iteration", (json_int_t)tr.iter,
                                "reward", st.reward, "kl", st.kl, "stopped", stopped);
        if (isfinite(tr.best_eval)) json_object_set_new(out, "best_eval_reward", json_real(tr.best_eval));
        char *outs = jsonl_dumps(out, JSON_COMPACT);
        json_decref(out);
        Err e2 = store_run_end(db, run_id, outs, rc || interrupted ? "failed" : "ok");
        free(outs);
        if (!rc) rc = e2;
    }
    if (!rc && interrupted) {
        rc = ERR_RUNTIME;
        goto cleanup;
    }

done:
    if (rc) fprintf(stderr, PROG ": %s\n", err_msg());
cleanup:
    if (tr.rollouts) fclose(tr.rollouts);
    trainlog_close(&log);
    trainer_free(&tr);
    if (db) store_close(db);
    return rc;
}

int main(int argc, char **argv) {
    Opts o;
    PpoCfg c;
    int rc = parse_opts(argc, argv, &o);
    if (!rc) rc = cli_common_config(&o.cli, PPO_SCHEMA, &c, &c.seed);
    cli_common_free(&o.cli);
    if (rc) return rc == CLI_DONE ? 0 : rc;
    threads_set(o.cli.threads);
    rc = run(&o, &c);
    config_free(PPO_SCHEMA, &c);
    return rc;
}
