/*
 * rewardcmd — a reward computed by an outside program instead of a reward model.
 *
 * A rule-based or programmatic reward (a verifier, a unit test, toyworld's oracle) is a command
 * that reads the answers to score as JSONL on stdin, one response record per line,
 *
 *     {"type":"response","prompt":{"dialogue":[...],"system":"..."?},"text":"..."}
 *
 * and writes one line per record, in the same order, to stdout: a JSON number, or an object with a
 * numeric "reward" (other fields are ignored), e.g. for the toy world's oracle
 *
 *     toyworld score | jq -c '{reward: (if .safe then .helpfulness else -1 end)}'
 *
 * The command runs under /bin/sh -c, once per batch, with the batch in a temporary file as stdin and
 * its stdout in another (both in $TMPDIR, else /tmp, removed afterwards); its stderr is ppo's. It
 * must exit 0, answer every record, and be deterministic if the run is to be (ppo's runs are a
 * function of the seed only when the reward is).
 */
#ifndef RLHF_REWARDCMD_H
#define RLHF_REWARDCMD_H

#include <jansson.h>

#include "err.h"

/* The response record above for one answer (system NULL or "" for none): what the command reads, and
 * what ppo --rollouts writes (with more fields) for other judges. A new reference. */
json_t *reward_cmd_record(const json_t *dialogue, const char *system, const char *text);

/* Rewards of n answers: texts[i] answers the prompt (dialogues[i], systems[i]; systems NULL, or an
 * entry NULL or "", for none). scores[i] gets line i of cmd's output. ERR_RUNTIME when the command
 * cannot run or exits non-zero (with its status), ERR_INPUT when its output is not n rewards (naming
 * the line and what is wrong: not JSON, no numeric "reward", not finite, too few or too many lines). */
Err reward_cmd_score(const char *cmd, const json_t *const *dialogues, const char *const *systems,
                     const char *const *texts, int n, float *scores);

#endif
