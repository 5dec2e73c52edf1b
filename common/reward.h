/*
 * reward — a frozen reward model: load it, turn (prompt, response) into the ids it reads, score them.
 *
 * Legend: n sequences to score, B = batch (sequences per forward), T = the longest sequence of a
 * batch, V vocabulary.
 *
 * A reward model is a checkpoint with the scalar head (LlamaForSequenceClassification, one label,
 * HEAD_SCALAR in model.h) and a tokenizer.bin. It reads the Llama 2 chat encoding of the prompt
 * dialogue followed by the response as an assistant turn, closed by EOS (chat.h):
 *
 *     <s>[INST] {user} [/INST] {response} </s>
 *
 * and its score is the head's value at the last token, that EOS. rm_train trains exactly this
 * reading (the same reward_encode and reward_fill_row), so a score here is the logit the margin
 * ranking loss was applied to: sigmoid(r(a) - r(b)) is the model's probability that a beats b.
 *
 * Long sequences: a reward model reads max_len positions: the length it was trained on (score_len,
 * config.json's rlhf_score_len, when rm_train's train.seq_len was below the context), else its
 * context max_seq_len. A longer sequence keeps its first token (BOS) and its last max_len - 1
 * tokens, so that the score is still read on the response's closing EOS with the response in view;
 * the start of a long prompt is what is lost. Training (rm_train) cuts the same way.
 *
 * Batching: reward_score_tokens sorts the sequences by length and scores them B at a time as one
 * right-padded (B, T) model_forward, so every projection is one GEMM over B*T rows. Padding follows
 * a sequence's last token and causal attention never lets it reach a valid position, so a score does
 * not depend on what it was batched with (to float rounding of the GEMM).
 *
 * The model is frozen: its parameters are the read-only mmap of model.safetensors (ckpt.h), shared
 * between processes. A RewardModel is not thread-safe (one activation buffer); the forward itself
 * runs on the thread pool.
 */
#ifndef RLHF_REWARD_H
#define RLHF_REWARD_H

#include <jansson.h>
#include <stdint.h>

#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    Model model;      /* HEAD_SCALAR, params mapped read-only */
    CkptMap map;
    Tokenizer tok;    /* the checkpoint's tokenizer.bin */
    int batch;        /* B: sequences per forward */
    int max_len;      /* positions read: score_len, else max_seq_len */
    int32_t *tokens;  /* (B, max_len) scratch for one batch */
    int *last;        /* (B) scratch: where each row's score is read */
    int64_t *order;   /* scratch: sequence indices sorted by length */
    int order_cap;
} RewardModel;

/* Load checkpoint dir (config.json, model.safetensors, tokenizer.bin) frozen. ERR_INPUT when dir is
 * not a reward model (LM head), has no tokenizer, or batch < 1; the message names dir. On failure
 * *rm needs no freeing. */
Err reward_load(RewardModel *rm, const char *dir, int batch);
void reward_free(RewardModel *rm);

/* Scores of n token sequences: scores[i] = the head's value at the last token of ids[i][0..lens[i])
 * (after the long-sequence rule above). ids are what reward_encode gives (BOS first, EOS last), but
 * any ids are accepted. ERR_INPUT for an empty sequence or an id outside [0, V), naming its index. */
Err reward_score_tokens(RewardModel *rm, const int32_t *const *ids, const int *lens, int n, float *scores);

/* Scores of n (prompt dialogue, response) pairs: dialogues[i] is a JSON array of turns ending with a
 * user turn (chat.h), systems[i] its system prompt (systems NULL, or an entry NULL or "", for none),
 * responses[i] the assistant's answer. ERR_INPUT for a malformed dialogue, naming its index. */
Err reward_score_text(RewardModel *rm, const json_t *const *dialogues, const char *const *systems,
                      const char *const *responses, int n, float *scores);

/* Append the ids the reward model reads for (dialogue, system, response) to out: the chat encoding
 * of the dialogue with the response as a last assistant turn, BOS first, EOS last. system may be
 * NULL. ERR_INPUT, out unchanged, for a malformed dialogue (one not ending with a user turn). */
Err reward_encode(const Tokenizer *t, const json_t *dialogue, const char *system, const char *response,
                  TokenList *out);

/* Positions a sequence of len tokens takes in a context of max_len: min(len, max_len). */
int reward_fit(int len, int max_len);
/* Write the sequence as the model reads it (the long-sequence rule above) into row[0..fit) and pad
 * row up to T (>= fit) with EOS. Returns fit; the score is read at row position fit - 1. */
int reward_fill_row(int32_t *row, int T, const int32_t *ids, int len, int max_len);

/* ---- training (rm_train) -------------------------------------------------------------------- */

/* The margin m(rating) of the ranking loss, for rating 0 (negligibly better/unsure) .. 3
 * (significantly better). Llama 2 Table 27: "small" {0, 1/3, 2/3, 1}, "large" {0, 1, 2, 3};
 * "none" all 0; "custom" takes the 4 values of custom[] (ncustom must be 4). ERR_INPUT otherwise. */
Err reward_margin_table(const char *kind, const double *custom, int ncustom, float table[4]);

/* Llama 2's binary ranking loss with margin (eq. 2) for one pair:
 * loss = -log sigmoid(r_chosen - r_rejected - margin). *d_chosen and *d_rejected get its derivatives
 * (-sigmoid(-d) and +sigmoid(-d) with d the argument). Stable for any |d|. */
double reward_rank_loss(float r_chosen, float r_rejected, float margin, float *d_chosen, float *d_rejected);

/* Forward and backward of the ranking loss for B pairs on a trainable scalar-head model.
 * tokens is (2B, T): rows 0..B-1 the chosen sequences, rows B..2B-1 the rejected ones (right-padded,
 * reward_fill_row), last[r] where row r's score is read, margins[b] the margin of pair b. Gradients of
 * (scale * sum of the B losses) accumulate into m->grads (zero them first; scale = 1 / pairs per
 * step). Returns the sum of the B losses; *correct (may be NULL) counts pairs with r_chosen > r_rejected.
 * chosen/rejected (may be NULL) receive the B scores of each side. */
double reward_pairs_step(Model *m, const int32_t *tokens, const int *last, const float *margins, int B, int T,
                         float scale, int *correct, float *chosen, float *rejected);

/* Llama 2's combined reward (Touvron et al. 2023, §3.2.3 eq. 2 area): the safety model's score when
 * the prompt is tagged as a safety prompt or the safety model thinks the response is likely unsafe
 * (sigmoid(r_safe) < threshold; the paper uses 0.15), the helpfulness model's otherwise. Returns the
 * chosen raw (logit-scale) score; *used_safety (may be NULL) is set to 1 when it is the safety one. */
float reward_combine(float r_help, float r_safe, int is_safety_prompt, float threshold, int *used_safety);

#endif
