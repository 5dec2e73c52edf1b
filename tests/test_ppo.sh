#!/bin/sh
# ppo end to end on a tiny policy and two tiny reward models trained here on toyworld ratings: a few
# iterations with finite metrics and a KL that is never negative, the frozen models mapped read-only,
# --stop-at + --resume equal to an uninterrupted run (weights, optimizer, metrics), a NaN that stops
# the run with the last good checkpoint kept (and a resume from it that ends where the clean run
# ends), the adaptive KL controller, the value model from the policy, prompts from the store with the
# run recorded, early stopping on the held-out reward, and every usage and input error with its exit
# status.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
P="$BIN/ppo"
W=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error as the last stderr line.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$P" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "ppo $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^ppo: .*$needle" || fail "ppo $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}
# the metrics of a run without the wall-clock one, for comparing runs
metrics() { grep -v tokens_per_s "$1/metrics.tsv"; }

# ---- a policy and two reward models ------------------------------------------------------------------
"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
"$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt" >/dev/null
"$BIN/sft" --pretrain --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" --threads 1 --out "$W/base" \
    "$W/corpus.txt" >/dev/null 2>&1 || fail "pretraining the test policy"
M="$W/base/ckpt"
"$BIN/toyworld" prompts --n 60 --split train >"$W/rm_prompts.jsonl"
for pol in good demo random; do "$BIN/toyworld" respond --policy $pol "$W/rm_prompts.jsonl"; done |
    "$BIN/prefs_db" --db "$W/rm.db" import - >/dev/null 2>&1
"$BIN/prefs_db" --db "$W/rm.db" annotate --rater "$BIN/toyworld rate" >/dev/null 2>&1
for kind in helpfulness safety; do
    "$BIN/rm_train" train --kind $kind --init "$M" --out "$W/rm_$kind" --db "$W/rm.db" --threads 1 \
        --set train.max_steps=10 --set train.lr=1e-3 >/dev/null 2>"$W/err" || fail "training the $kind reward model: $(cat "$W/err")"
done
RH="$W/rm_helpfulness/ckpt"
RS="$W/rm_safety/ckpt"
# single-turn prompts fit the tiny context (128 positions); the test split is the held-out set
"$BIN/toyworld" prompts --n 60 --split train | grep -v '"role":"assistant"' | head -n 24 >"$W/train.jsonl"
"$BIN/toyworld" prompts --n 20 --split test --seed 5 | grep -v '"role":"assistant"' | head -n 8 >"$W/test.jsonl"
[ "$(wc -l <"$W/train.jsonl")" -ge 16 ] || fail "too few single-turn prompts"

set -- --config configs/ppo_tiny.yaml --init "$M" --rm-helpfulness "$RH" --rm-safety "$RS" --threads 1

# ---- a run: metrics, checkpoints, frozen models ----------------------------------------------------
"$P" "$@" --out "$W/a" "$W/train.jsonl" "$W/test.jsonl" >"$W/a.out" 2>"$W/a.err" || fail "ppo: $(cat "$W/a.err")"
grep -q "24 training prompts, 8 held out" "$W/a.err" || fail "prompt split: $(head -n 3 "$W/a.err")"
grep -q "reference [0-9]* (mapped read-only), reward models [0-9]* (mapped read-only) and [0-9]* (mapped read-only)" "$W/a.err" ||
    fail "the frozen models are not mapped: $(grep parameters "$W/a.err")"
grep -q "^ppo: iteration 4 reward .* kl .* eval_reward .*; checkpoint $W/a/ckpt" "$W/a.out" || fail "summary: $(cat "$W/a.out")"
for name in reward reward_helpfulness reward_safety safety_used score_whitened kl kl_penalty beta entropy policy_loss \
    clipfrac approx_kl value_loss value_clipfrac explained_variance response_length grad_norm_policy \
    grad_norm_value tokens_per_s; do
    [ "$(grep -c "^[1-4]	$name	" "$W/a/metrics.tsv")" -eq 4 ] || fail "metric $name not logged at every iteration"
done
[ "$(grep -c "	eval_reward	" "$W/a/metrics.tsv")" -eq 2 ] || fail "want eval_reward at iterations 2 and 4"
awk -F'\t' 'NR > 1 && ($3 == "nan" || $3 == "-nan" || $3 ~ /inf/) { exit 1 }' "$W/a/metrics.tsv" || fail "a metric is not finite"
awk -F'\t' '$2 == "kl" && $3 < 0 { exit 1 }' "$W/a/metrics.tsv" || fail "a negative logged KL"
awk -F'\t' '$2 == "kl" && $1 == 1 && $3 != 0 { exit 1 }' "$W/a/metrics.tsv" || fail "the first rollout's KL must be 0 (policy = reference)"
awk -F'\t' '$2 == "kl" && $1 == 4 && $3 <= 0 { exit 1 }' "$W/a/metrics.tsv" || fail "the policy never moved from the reference"
for d in ckpt value best; do [ -f "$W/a/$d/model.safetensors" ] || fail "no $d checkpoint"; done
[ -f "$W/a/ckpt/optimizer.safetensors" ] && [ -f "$W/a/value/optimizer.safetensors" ] || fail "no optimizer state"
"$BIN/ckpt_tool" info "$W/a/value" | grep -q -i "scalar\|SequenceClassification" || fail "the value checkpoint lacks its scalar head"
"$BIN/generate" --model "$W/a/ckpt" --set sample.max_new=8 --threads 1 "$W/test.jsonl" >/dev/null 2>&1 ||
    fail "generate cannot read the PPO policy"

# ---- resume: stop after 2, continue, the same run ---------------------------------------------------
"$P" "$@" --out "$W/b" --stop-at 2 "$W/train.jsonl" "$W/test.jsonl" >/dev/null 2>"$W/err" || fail "--stop-at: $(cat "$W/err")"
grep -q '"iteration": *2' "$W/b/ckpt/trainer_state.json" || fail "--stop-at 2 saved another iteration"
"$P" "$@" --out "$W/b" --resume "$W/train.jsonl" "$W/test.jsonl" >/dev/null 2>"$W/err" || fail "--resume: $(cat "$W/err")"
grep -q "resuming $W/b at iteration 2" "$W/err" || fail "no resume line: $(cat "$W/err")"
metrics "$W/a" >"$W/ma"; metrics "$W/b" >"$W/mb"
cmp -s "$W/ma" "$W/mb" || fail "resumed metrics differ: $(diff "$W/ma" "$W/mb" | head -n 4)"
for f in ckpt/model.safetensors ckpt/optimizer.safetensors value/model.safetensors value/optimizer.safetensors best/model.safetensors; do
    cmp -s "$W/a/$f" "$W/b/$f" || fail "resumed $f differs from the uninterrupted run's"
done
"$P" "$@" --out "$W/b" --resume "$W/train.jsonl" "$W/test.jsonl" >"$W/out" 2>/dev/null || fail "resuming a finished run"
grep -q "already finished at iteration 4" "$W/out" || fail "a finished run ran again: $(cat "$W/out")"

# ---- a NaN stops the run; the last good checkpoint stays ----------------------------------------------
expect 1 "iteration 3, policy: .*nan.*nothing saved" "$@" --out "$W/n" --set train.save_every=1 --fault-nan 3 \
    "$W/train.jsonl" "$W/test.jsonl"
grep -q '"iteration": *2' "$W/n/ckpt/trainer_state.json" || fail "the NaN run's checkpoint is not iteration 2"
grep -q "^3	" "$W/n/metrics.tsv" && fail "the NaN iteration was logged"
"$P" "$@" --out "$W/n" --set train.save_every=1 --resume "$W/train.jsonl" "$W/test.jsonl" >/dev/null 2>"$W/err" ||
    fail "resuming after the NaN: $(cat "$W/err")"
cmp -s "$W/a/ckpt/model.safetensors" "$W/n/ckpt/model.safetensors" || fail "the run resumed after the NaN ends elsewhere"

# ---- options: the KL controller, the value model from the policy, k3 in the penalty -------------------
"$P" "$@" --out "$W/k" --set kl.target=0.001 --set kl.horizon=8 --set train.iterations=2 --set kl.estimator=k3 \
    --set value.init=policy "$W/train.jsonl" >/dev/null 2>"$W/err" || fail "kl.target: $(cat "$W/err")"
awk -F'\t' '$2 == "beta" && $1 == 2 && $3 == 0.01 { exit 1 }' "$W/k/metrics.tsv" || fail "the KL controller left beta alone"
awk -F'\t' '$2 == "kl_penalty" { p[$1] = $3 } $2 == "kl" { k[$1] = $3 } END { for (i in k) if (k[i] != p[i]) exit 1 }' \
    "$W/k/metrics.tsv" || fail "with kl.estimator=k3 the penalty's KL must be the logged KL"
grep -q "eval_reward" "$W/k/metrics.tsv" && fail "an evaluation without held-out prompts"

# ---- --rollouts: every rollout answer with its rewards, readable by toyworld score ----------------------
"$P" "$@" --out "$W/r" --set train.iterations=2 --rollouts "$W/r.jsonl" "$W/train.jsonl" >/dev/null 2>"$W/err" ||
    fail "--rollouts: $(cat "$W/err")"
[ "$(grep -c '^{"type":"response","prompt":{"dialogue":.*"text":.*"reward_helpfulness":.*"reward_safety":' "$W/r.jsonl")" -eq 16 ] ||
    fail "--rollouts: want 16 response records with their rewards: $(head -c 300 "$W/r.jsonl")"
# the mean of the recorded rewards is the metrics' reward (the mean R_c of each iteration's answers)
sed -n 's/.*"iteration":\([0-9]*\),"reward":\([-0-9.eE+]*\),.*/\1 \2/p' "$W/r.jsonl" |
    awk '{ s[$1] += $2; n[$1]++ } END { for (i = 1; i <= 2; i++) printf "%d %.4f\n", i, s[i] / n[i] }' >"$W/r.got"
awk -F'\t' '$2 == "reward" { printf "%d %.4f\n", $1, $3 }' "$W/r/metrics.tsv" >"$W/r.want"
cmp -s "$W/r.want" "$W/r.got" || fail "--rollouts: rewards $(cat "$W/r.got"), metrics say $(cat "$W/r.want")"
"$BIN/toyworld" score "$W/r.jsonl" >/dev/null 2>"$W/err" || fail "toyworld score cannot read the rollouts: $(cat "$W/err")"

# ---- --reward-cmd: a program's reward instead of the reward models ----------------------------------------
# the reward: the length of the answer's record line / 100 (deterministic, so the run is too)
RC="awk '{ print length(\$0) / 100 }'"
set -- --config configs/ppo_tiny.yaml --init "$M" --reward-cmd "$RC" --set value.init=policy --threads 1
"$P" "$@" --out "$W/c" --rollouts "$W/c.jsonl" "$W/train.jsonl" "$W/test.jsonl" >"$W/c.out" 2>"$W/c.err" ||
    fail "--reward-cmd: $(cat "$W/c.err")"
grep -q "reward from the command awk" "$W/c.err" || fail "--reward-cmd: parameters line: $(grep parameters "$W/c.err")"
grep -q "^ppo: iteration 4 reward .* kl .* eval_reward .*; checkpoint $W/c/ckpt" "$W/c.out" || fail "--reward-cmd summary: $(cat "$W/c.out")"
for name in reward score_whitened kl policy_loss value_loss; do
    [ "$(grep -c "^[1-4]	$name	" "$W/c/metrics.tsv")" -eq 4 ] || fail "--reward-cmd: metric $name not logged at every iteration"
done
grep -q "	reward_helpfulness	\|	reward_safety	\|	safety_used	" "$W/c/metrics.tsv" && fail "--reward-cmd: reward-model metrics logged"
# each rollout's reward is the command's value for that answer's record
[ "$(grep -c '"reward":' "$W/c.jsonl")" -eq 32 ] && ! grep -q reward_helpfulness "$W/c.jsonl" ||
    fail "--reward-cmd: want 32 rollout records with one reward each: $(head -c 300 "$W/c.jsonl")"
sed 's/,"iteration":[0-9]*,"reward":.*}$/}/' "$W/c.jsonl" | awk '{ printf "%.4f\n", length($0) / 100 }' >"$W/c.want"
sed -n 's/.*"reward":\([-0-9.eE+]*\)}$/\1/p' "$W/c.jsonl" | awk '{ printf "%.4f\n", $1 }' >"$W/c.got"
cmp -s "$W/c.want" "$W/c.got" || fail "--reward-cmd: rollout rewards are not the command's: $(diff "$W/c.want" "$W/c.got" | head -n 4)"
# deterministic: stopped after 2 and resumed, the same run
"$P" "$@" --out "$W/c2" --stop-at 2 "$W/train.jsonl" "$W/test.jsonl" >/dev/null 2>&1 || fail "--reward-cmd --stop-at"
"$P" "$@" --out "$W/c2" --resume "$W/train.jsonl" "$W/test.jsonl" >/dev/null 2>"$W/err" || fail "--reward-cmd --resume: $(cat "$W/err")"
metrics "$W/c" >"$W/ma"; metrics "$W/c2" >"$W/mb"
cmp -s "$W/ma" "$W/mb" && cmp -s "$W/c/ckpt/model.safetensors" "$W/c2/ckpt/model.safetensors" ||
    fail "--reward-cmd: the resumed run differs: $(diff "$W/ma" "$W/mb" | head -n 4)"
expect 1 "reward command 'exit 3' failed (exit status 3)" --config configs/ppo_tiny.yaml --init "$M" --reward-cmd "exit 3" \
    --set value.init=policy --threads 1 --out "$W/e" "$W/train.jsonl"
expect 2 "reward command: 1 rewards for 8 answers" --config configs/ppo_tiny.yaml --init "$M" --reward-cmd "echo 1" \
    --set value.init=policy --threads 1 --out "$W/e" "$W/train.jsonl"
expect 2 "value.init: reward .* --set value.init=policy" --config configs/ppo_tiny.yaml --init "$M" --reward-cmd "$RC" \
    --threads 1 --out "$W/e" "$W/train.jsonl"
expect 2 "--reward-cmd replaces --rm-helpfulness and --rm-safety" --init "$M" --reward-cmd "$RC" --rm-safety "$RS" \
    --out "$W/e" "$W/train.jsonl"
expect 2 "--reward-cmd: expected a command" --init "$M" --reward-cmd "" --out "$W/e" "$W/train.jsonl"
set -- --config configs/ppo_tiny.yaml --init "$M" --rm-helpfulness "$RH" --rm-safety "$RS" --threads 1

# ---- early stopping: an unchanged policy (lr 0) never beats its first held-out reward --------------------
"$P" "$@" --out "$W/x" --set optim.lr=0 --set optim.value_lr=0 --set train.eval_every=1 --set early_stop.patience=1 \
    "$W/train.jsonl" "$W/test.jsonl" >/dev/null 2>"$W/err" || fail "early stopping: $(cat "$W/err")"
grep -q "early-stopped after iteration 2" "$W/err" || fail "no early stop after the second evaluation: $(tail -n 2 "$W/err")"
[ "$(grep -c "	eval_reward	" "$W/x/metrics.tsv")" -eq 2 ] || fail "want two evaluations before the early stop"
[ "$(awk -F'\t' '$2 == "eval_reward" { print $3 }' "$W/x/metrics.tsv" | sort -u | wc -l)" -eq 1 ] ||
    fail "the same policy and seed gave two held-out rewards"
grep -q '"finished": *true' "$W/x/ckpt/trainer_state.json" && [ -f "$W/x/best/model.safetensors" ] ||
    fail "the early-stopped run did not save its checkpoints"
"$P" "$@" --out "$W/x" --set optim.lr=0 --set optim.value_lr=0 --set train.eval_every=1 --set early_stop.patience=1 \
    --resume "$W/train.jsonl" "$W/test.jsonl" >"$W/out" 2>/dev/null || fail "resuming an early-stopped run"
grep -q "already finished at iteration 2 (early-stopped)" "$W/out" || fail "an early-stopped run went on: $(cat "$W/out")"

# ---- prompts from the store, the run recorded --------------------------------------------------------
cat "$W/train.jsonl" "$W/test.jsonl" | "$BIN/prefs_db" --db "$W/p.db" import - >/dev/null 2>&1
"$P" "$@" --db "$W/p.db" --iteration 4 --out "$W/s" --set train.iterations=2 >/dev/null 2>"$W/err" ||
    fail "store prompts: $(cat "$W/err")"
grep -q "24 training prompts, 8 held out" "$W/err" || fail "store prompt split: $(head -n 2 "$W/err")"
[ "$(sqlite3 "$W/p.db" "select status || ' ' || iteration from runs where program = 'ppo'")" = "ok 4" ] || fail "run not recorded"
[ "$(sqlite3 "$W/p.db" "select count(*) from metrics m join runs r on r.id = m.run_id where r.program = 'ppo' and m.name = 'kl'")" -eq 2 ] ||
    fail "metrics not in the store"

# ---- usage and input errors ----------------------------------------------------------------------------
"$P" --help | grep -q -- "--rm-safety DIR" || fail "--help lacks --rm-safety"
for k in kl.beta kl.estimator kl.target reward.whiten reward.safety_threshold ppo.lambda ppo.clip value.init early_stop.patience; do
    "$P" --help | grep -q "^ *$k " || fail "--help lacks $k"
done
"$P" --version | grep -q "^ppo (rlhf.c) " || fail "--version"
expect 2 "--init DIR" --rm-helpful "$RH" --rm-safety "$RS" --out "$W/e" "$W/train.jsonl"
expect 2 "--rm-helpfulness DIR and --rm-safety DIR are required, or --reward-cmd CMD" --init "$M" --rm-helpful "$RH" --out "$W/e" "$W/train.jsonl"
expect 2 "--out DIR" --init "$M" --rm-helpful "$RH" --rm-safety "$RS" "$W/train.jsonl"
expect 2 "unknown option '--bogus'" "$@" --out "$W/e" --bogus "$W/train.jsonl"
expect 2 "--stop-at: expected an integer" "$@" --out "$W/e" --stop-at 0 "$W/train.jsonl"
expect 2 "kl.estimator" "$@" --out "$W/e" --set kl.estimator=k9 "$W/train.jsonl"
expect 2 "no.such" "$@" --out "$W/e" --set no.such=1 "$W/train.jsonl"
expect 2 "$W/nothing.jsonl" "$@" --out "$W/e" "$W/nothing.jsonl"
expect 2 "$M" --config configs/ppo_tiny.yaml --init "$M" --rm-helpful "$M" --rm-safety "$RS" --out "$W/e" "$W/train.jsonl"
expect 2 "$RH: the policy needs the LM head" --config configs/ppo_tiny.yaml --init "$RH" --rm-helpful "$RH" --rm-safety "$RS" --out "$W/e" "$W/train.jsonl"
printf '{"type":"prompt","dialogue":[{"role":"assistant","content":"hi"}]}\n' >"$W/bad1.jsonl"
expect 2 "bad1.jsonl:1" "$@" --out "$W/e" "$W/bad1.jsonl"
printf '{"type":"response","dialogue":[]}\n' >"$W/bad2.jsonl"
expect 2 "bad2.jsonl:1: \"type\": expected \"prompt\"" "$@" --out "$W/e" "$W/bad2.jsonl"
printf '{"dialogue":[{"role":"user","content":"hi"}],"tags":[1]}\n' >"$W/bad3.jsonl"
expect 2 "bad3.jsonl:1: \"tags\": expected an object" "$@" --out "$W/e" "$W/bad3.jsonl"
printf 'not json\n' >"$W/bad4.jsonl"
expect 2 "bad4.jsonl:1" "$@" --out "$W/e" "$W/bad4.jsonl"
expect 2 "no training prompts" "$@" --out "$W/e" "$W/test.jsonl"
expect 2 "$W/e/ckpt" "$@" --out "$W/e" --resume "$W/train.jsonl"
expect 2 "configuration differs" "$@" --out "$W/b" --resume --set kl.beta=0.5 --set train.iterations=6 "$W/train.jsonl" "$W/test.jsonl"
(cd "$W" && "$P" --config "$OLDPWD/configs/ppo_tiny.yaml" --init "$M" --rm-helpful "$RH" --rm-safety "$RS" --out e2 \
    >/dev/null 2>"$W/err") && fail "no prompts and no store succeeded"
grep -q "no input named and no store at ./prefs.db" "$W/err" || fail "no store: $(cat "$W/err")"
echo "ppo: all checks passed"
