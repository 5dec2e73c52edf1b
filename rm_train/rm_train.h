/*
 * rm_train — what the three subcommands (train.c, eval.c, score.c) share: options, the
 * configuration, and comparisons read from the store as token pairs.
 */
#ifndef RLHF_RM_TRAIN_H
#define RLHF_RM_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "store.h"
#include "tokenizer.h"

#define PROG "rm_train"

typedef struct {
    int64_t batch_size, group_by_length, min_rating, grad_accum, epochs, max_steps, warmup_min, seq_len, save_every, log_every, seed;
    double lr, warmup_frac, lr_floor, weight_decay, beta1, beta2, eps, grad_clip, score_init_std, progress_interval;
    char *margin;
    ConfigNumList margin_custom;
    double other_share;
    char *split, *eval_split;
    int64_t iteration, score_batch;
} RmCfg;

extern const ConfigKey RM_SCHEMA[];

typedef enum { CMD_TRAIN, CMD_EVAL, CMD_SCORE } RmCommand;

typedef struct {
    RmCommand cmd;
    CliCommon cli; /* --model, --db (default prefs.db), --iteration, --config, --set, --seed, --threads, the inputs */
    const char *kind; /* "helpfulness", "safety" or NULL */
    const char *out, *init, *name;
    const char *by;   /* eval: also tabulate by the value of this prompt tag (--by) */
    bool resume;
    int64_t stop_at;
} RmOpts;

/* One comparison as the reward model reads it: side 0 the chosen response, side 1 the rejected. */
typedef struct {
    TokenList ids[2];
    int64_t id;          /* comparison id */
    int rating;          /* 0..3 */
    int safety;          /* dimension: 1 safety, 0 helpfulness */
    int chosen_safe, rejected_safe; /* 1, 0, or STORE_SAFE_UNKNOWN */
    int chosen_longer;   /* the chosen response has more bytes than the rejected one */
    char *group;         /* the prompt's tag RmPairs.by as text (NULL: no such tag, or by unset) */
} RmPair;

typedef struct {
    RmPair *v;
    int64_t n, cap;
    const char *by;      /* set before loading: the prompt tag each pair's group is read from */
} RmPairs;

/* Append the comparisons of the store matching (split, dimension, iteration < 0 = any) to out,
 * encoded with t (reward_encode). */
Err rm_pairs_load(RmPairs *out, Store *db, const Tokenizer *t, const char *split, const char *dimension,
                  int64_t iteration);
void rm_pairs_free(RmPairs *p);

/* A JSON text naming the inputs of a run, for the runs table (caller frees). */
char *rm_inputs_json(const RmOpts *o, const char *model);

int rm_train_run(const RmOpts *o, RmCfg *c);
int rm_eval_run(const RmOpts *o, RmCfg *c);
int rm_score_run(const RmOpts *o, RmCfg *c);

#endif
