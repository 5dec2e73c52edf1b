/*
 * sftdata — training text and dialogues as (B, T) token batches with loss masks.
 *
 * Legend: B rows per batch, T positions per row. A row of the batch is one *item*: up to T+1
 * tokens, of which the first T are the inputs and the last T the targets (targets[t] = ids[t+1]),
 * with mask[t] = 1 when targets[t] carries loss. Rows shorter than T+1 are right-padded with mask 0
 * (model.h: padding never influences valid positions under causal attention).
 *
 * Two kinds of items, both over one token array:
 *   - pretraining (sftdata_add_text + sftdata_pack): the text is cut into documents at blank lines,
 *     each document becomes BOS doc EOS, the documents are concatenated into one stream, and the
 *     stream is cut into windows of T+1 tokens that overlap by one token (stride T). Every token is a
 *     target: packed sequences, no padding except the last window. Documents may straddle windows,
 *     as in Llama 2's pretraining.
 *   - dialogues (sftdata_add_dialogue): tokenized by the Llama 2 chat template (chat.h) with loss
 *     only on the answer tokens the example's loss policy selects (Llama 2 §3.1: "we zero-out the
 *     loss on tokens from the user prompt"). By default one example per item: an example longer
 *     than T+1 tokens is cut (counted in `truncated`), and one left with no target is dropped
 *     (counted in `dropped`). With `pack` set before adding, the examples are concatenated into a
 *     stream and cut into windows like text (§3.1: "we concatenate all the prompts and answers from
 *     the training set"), masks travelling with their tokens: no padding, no truncation; held-out
 *     examples are packed into windows of their own. sftdata_pack then makes the items.
 *
 * Splitting: sftdata_split puts an item in the held-out evaluation set when it was added as such
 * (a store row with split "test") or, if the data has no such item, when a hash of (seed, item index)
 * falls below eval_fraction — the same items every run, whatever the batch size.
 *
 * Order: the training items are visited epoch by epoch, each epoch in a permutation drawn from
 * rng(seed, epoch) (or in order, without shuffling). The position in that order is an SftCursor
 * (epoch, pos): two integers that a trainer stores in its checkpoint to resume exactly where it was.
 * Drawing a batch allocates nothing; the permutation is redrawn in place when an epoch begins.
 */
#ifndef RLHF_SFTDATA_H
#define RLHF_SFTDATA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "err.h"
#include "tokenizer.h"

typedef struct {
    int64_t epoch, pos; /* next item: the pos-th of epoch's order */
} SftCursor;

typedef struct {
    int T;            /* positions per row; items hold up to T+1 tokens */
    int32_t *ids;     /* every token of every item (pretraining: the whole stream) */
    uint8_t *mask;    /* parallel to ids: 1 = a target that carries loss */
    size_t n, cap;
    size_t packed;    /* stream tokens already cut into windows */
    bool pack;        /* dialogues go into the stream (see the top); set before adding */
    int32_t *hold_ids; /* pack mode: held-out dialogues wait here until sftdata_pack */
    uint8_t *hold_mask;
    size_t hold_n, hold_cap;
    int64_t *off;     /* (n_items) first token of each item in ids */
    int32_t *len;     /* (n_items) tokens in each item, 2..T+1 */
    uint8_t *held;    /* (n_items) 1 = added as held-out (split "test") */
    size_t n_items, cap_items;
    int64_t truncated, dropped; /* dialogues cut to T+1 tokens; dialogues with no target left */
    /* after sftdata_split */
    int64_t *train, *eval; /* item indices */
    size_t n_train, n_eval;
    int64_t *perm;         /* (n_train) the current epoch's order of train */
    int64_t perm_epoch;    /* the epoch perm holds, -1 none */
    uint64_t seed;
    bool shuffle;
} SftData;

void sftdata_init(SftData *d, int T);
void sftdata_free(SftData *d);

/* Pretraining: append text[0..len) to the stream, one BOS .. EOS document per blank-line-separated
 * paragraph (runs of blank lines are one separator; whitespace-only documents are skipped). */
void sftdata_add_text(SftData *d, const Tokenizer *t, const char *text, size_t len);
/* Cut the stream added since the last pack into windows of T+1 tokens with stride T; then, in pack
 * mode, the held-out dialogues into windows of their own (marked held). */
void sftdata_pack(SftData *d);

/* One dialogue example (ending with an assistant turn; see chat.h). held = 1 puts it in the
 * evaluation set. ERR_INPUT (from chat_encode) for a malformed dialogue or loss policy, data unchanged. */
Err sftdata_add_dialogue(SftData *d, const Tokenizer *t, const json_t *dialogue, const char *system,
                         ChatLoss loss, int held);
/* A JSONL sft_example record ({"dialogue", "system"?, "loss_turns"?, "split"?, ...}; other fields are
 * ignored). A split of "test" makes it held out. ERR_INPUT names the field. */
Err sftdata_add_record(SftData *d, const Tokenizer *t, const json_t *record);

/* Divide the items into training and evaluation sets and fix the order's seed (see the top). */
void sftdata_split(SftData *d, double eval_fraction, uint64_t seed, bool shuffle);

/* Fill B rows from the training set at *cur and advance it (wrapping into the next epoch).
 * tokens, targets (B, T) and mask (B, T). Returns the number of target tokens (sum of mask). */
int64_t sftdata_next_batch(SftData *d, SftCursor *cur, int B, int32_t *tokens, int32_t *targets,
                           float *mask);
/* Fill B rows with evaluation items first..first+B-1 (rows past n_eval are all padding). Returns the
 * number of target tokens. */
int64_t sftdata_eval_batch(const SftData *d, size_t first, int B, int32_t *tokens, int32_t *targets,
                           float *mask);

/* A 64-bit hash of the items (tokens, masks, split): a resumed run checks that it sees the same data. */
uint64_t sftdata_fingerprint(const SftData *d);
/* Tokens that carry loss in the training set. */
int64_t sftdata_train_targets(const SftData *d);

#endif
