/*
 * gen — batched generation with the KV cache: K samples for each of N prompts.
 *
 * Legend: N prompts, K samples per prompt, B cache slots (sequences decoded together), T positions
 * per slot, V vocabulary.
 *
 * Every (prompt, sample) pair is a *sequence*. Sequences wait in a queue in (prompt, sample) order;
 * each of the B slots of one Decoder holds one of them. Each step is one model_decode_step over the
 * slots: a sequence still reading its prompt feeds the next prompt token (its logits are not used),
 * a sequence past its prompt feeds the token it sampled last. So prefill and decoding share the same
 * GEMMs, and sequences sit at different positions. When a sequence ends (EOS, max_new tokens, or the
 * model's context is full), the next queued sequence takes over its slot from position 0; the cache
 * rows it leaves behind are never read, because attention at position p only reads positions <= p,
 * which the new sequence has already written.
 *
 * Randomness: the sequence (prompt index i, sample j) draws from rng_fork(rng_fork(seed, i), j),
 * where i is GenPrompt.index (the prompt's identity: its line, its store id), so a sample depends on
 * the seed, its prompt and its number only — not on B, on the thread count, or on which prompts were
 * generated with it. (The arithmetic of one row does not depend on the other rows of the GEMMs
 * either; tests/test_gen.c checks that batch sizes 1, 3 and 8 give the same tokens.)
 *
 * What a sample records: the new token ids (a final EOS included, when the sequence ended with it),
 * and per token its log-probability under the sampling distribution and under the raw softmax
 * (sampler.h; PPO needs the latter).
 */
#ifndef RLHF_GEN_H
#define RLHF_GEN_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

typedef struct {
    SamplerConfig sampler;
    int max_new;   /* most new tokens per sample, >= 1 */
    int batch;     /* B: sequences decoded together, >= 1 */
    uint64_t seed;
} GenConfig;

typedef struct {
    const int32_t *ids; /* the prompt's tokens (BOS first, usually), n >= 1 */
    int n;
    uint64_t index;     /* identity for the random streams (see the top) */
} GenPrompt;

typedef enum { GEN_STOP_EOS = 0, GEN_STOP_LENGTH = 1 } GenStop;

typedef struct {
    int32_t *ids;     /* (n) new tokens, EOS last when stop == GEN_STOP_EOS */
    float *logp;      /* (n) under the sampling distribution (0 with greedy) */
    float *logp_raw;  /* (n) under softmax(logits) */
    int n;
    GenStop stop;
} GenSample;

typedef struct {
    int64_t steps;      /* model_decode_step calls */
    int64_t fed;        /* tokens fed through the model (prompt and generated) */
    int64_t generated;  /* new tokens sampled */
} GenStats;

/* Generates K samples for each prompt into out[i * K + j] (N * K entries, allocated here; free with
 * gen_samples_free). stats may be NULL. ERR_INPUT for a bad config (naming the parameter), an empty
 * prompt, a token id outside the vocabulary, or a prompt longer than the model's context (naming the
 * prompt's index); ERR_RUNTIME when the model's logits are not finite. m needs the LM head. */
Err gen_run(Model *m, const GenPrompt *prompts, int n_prompts, int k, const GenConfig *cfg, GenSample *out,
            GenStats *stats);
void gen_samples_free(GenSample *s, int64_t n);

/* A chat answer's text: the tokens before a final EOS, decoded as valid UTF-8, without surrounding
 * ASCII whitespace (the template ends an answer with a space before EOS, and chat.h strips answers
 * before encoding them, so the text goes back into a next prompt as the model saw it). Free it. */
char *gen_answer_text(const Tokenizer *tok, const GenSample *s);

#endif
