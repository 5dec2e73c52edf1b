/*
 * chat — the Llama 2 chat template: a dialogue to token ids and a loss mask.
 *
 * A dialogue is a JSON array of {"role": "user"|"assistant", "content": str}, alternating and
 * starting with a user turn; an optional first {"role": "system"} element is the system prompt
 * (or it is passed separately, not both). Each user turn and the answer to it become
 *
 *     <s>[INST] {user} [/INST] {answer} </s>
 *
 * and the first user turn carries the system prompt, if any:
 *
 *     <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>
 *
 * where <s> and </s> are the BOS and EOS ids, never text. Exactly as Meta's reference
 * (llama/generation.py, chat_completion): the system block is glued in front of the first user
 * content and that whole string is stripped of surrounding whitespace, every other user content
 * and every answer is stripped on its own (ASCII whitespace; Python's strip() also strips Unicode
 * spaces). The text between the ids is tokenized in two calls per turn, each with the dummy-prefix
 * space: "[INST] {user} [/INST]" (after BOS), then "{answer} " (before EOS) — the dummy prefix is
 * the space after [/INST], and the answer's tokens end with the "▁" of the trailing space. Meta
 * encodes "[INST] {user} [/INST] {answer} " in one call; for Llama 2's vocabulary the ids are the
 * same (no piece spans "]" and " "), which tests/test_chat.c checks against SentencePiece.
 *
 * A generation prompt (chat_encode_prompt) is a dialogue ending with a user turn: the finished
 * turns as above, then "<s>[INST] {user} [/INST]", ready for the model to write the answer.
 *
 * Loss mask: mask[i] = 1 when token i is a target the model is trained to predict (from the
 * tokens before it): the answer tokens and the closing EOS of the assistant turns the loss policy
 * selects — all of them (SFT on a whole conversation), only the last (rejection-sampling examples),
 * or an explicit set (GAtt: the turns whose answers follow the instruction). Prompts, BOS and the
 * system block are never targets. An empty system prompt is the same as none.
 */
#ifndef RLHF_CHAT_H
#define RLHF_CHAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tokenizer.h"

typedef enum {
    CHAT_LOSS_ALL,   /* every assistant turn */
    CHAT_LOSS_LAST,  /* the last assistant turn only */
    CHAT_LOSS_TURNS, /* the assistant turns listed in `turns` (0-based among assistant turns) */
} ChatLossKind;

typedef struct {
    ChatLossKind kind;
    int32_t *turns; /* CHAT_LOSS_TURNS only; owned by whoever filled it (chat_loss_parse: free it) */
    size_t nturns;
} ChatLoss;

/* Token ids with a parallel loss mask (0 or 1). Zero-initialise; free with chat_tokens_free. */
typedef struct {
    int32_t *ids;
    uint8_t *mask;
    size_t n, cap;
} ChatTokens;

/* Append the training example `dialogue` (ending with an assistant turn) to out. system may be
 * NULL. ERR_INPUT, with out unchanged, for a malformed dialogue or loss policy: the message names
 * the element ("dialogue[3]: ..."). */
Err chat_encode(const Tokenizer *t, const json_t *dialogue, const char *system, ChatLoss loss,
                ChatTokens *out);
/* Append the generation prompt for `dialogue` (ending with a user turn) to out. */
Err chat_encode_prompt(const Tokenizer *t, const json_t *dialogue, const char *system, TokenList *out);
/* The loss policy of a JSONL sft_example's "loss_turns": "all", "last" or an array of assistant-turn
 * indices. NULL means "all". ERR_INPUT otherwise; free with chat_loss_free. */
Err chat_loss_parse(const json_t *value, ChatLoss *out);
void chat_loss_free(ChatLoss *l);
void chat_tokens_free(ChatTokens *c);

#endif
