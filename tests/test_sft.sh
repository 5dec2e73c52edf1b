#!/bin/sh
# sft end to end: train a tokenizer and a tiny model on toyworld text, fine-tune it on toyworld
# demonstrations (JSONL and the store), and check that the loss falls, that a run stopped at a step
# (--stop-at) or by SIGINT and then resumed ends with the same bytes as an uninterrupted run
# (weights, AdamW state, metrics.tsv), that the run is recorded in the store, and every usage and
# input error with its exit status.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
S="$BIN/sft"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error line at the end of stderr.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$S" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "sft $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^sft: .*$needle" || fail "sft $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}

# same_run A B: two run directories hold byte-identical results.
same_run() {
    for f in ckpt/model.safetensors ckpt/optimizer.safetensors metrics.tsv; do
        cmp -s "$1/$f" "$2/$f" || fail "$1/$f and $2/$f differ"
    done
}

# first and last value of metric NAME in a metrics.tsv
first() { awk -F '\t' -v n="$2" '$2 == n { print $3; exit }' "$1"; }
last() { awk -F '\t' -v n="$2" '$2 == n { v = $3 } END { print v }' "$1"; }
# mean of the first / last K values of the training loss
head_loss() { awk -F '\t' '$2 == "loss" && c < 5 { s += $3; c++ } END { print s / c }' "$1"; }
tail_loss() { awk -F '\t' '$2 == "loss" { v[n++] = $3 } END { for (i = n - 5; i < n; i++) s += v[i]; print s / 5 }' "$1"; }
falls() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(b < a * f) }' || fail "$4: $1 -> $2 is not a fall to below $3x"; }

# ---- pretraining ---------------------------------------------------------------------------------
"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
"$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt" >/dev/null
set -- --pretrain --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" --threads 1 "$W/corpus.txt"
"$S" --out "$W/base" "$@" >"$W/out" 2>"$W/err" || fail "pretraining: $(cat "$W/err")"
grep -q "^sft: step 60 loss .* checkpoint $W/base/ckpt" "$W/out" || fail "summary line: $(cat "$W/out")"
for f in config.json model.safetensors tokenizer.bin optimizer.safetensors trainer_state.json; do
    [ -s "$W/base/ckpt/$f" ] || fail "checkpoint lacks $f"
done
grep -q '"finished": true' "$W/base/ckpt/trainer_state.json" || fail "final trainer state not finished"
[ "$(grep -c '	loss	' "$W/base/metrics.tsv")" -eq 60 ] || fail "60 loss lines expected"
[ "$(grep -c '	eval_loss	' "$W/base/metrics.tsv")" -eq 3 ] || fail "3 eval_loss lines expected (steps 20, 40, 60)"
falls "$(head_loss "$W/base/metrics.tsv")" "$(tail_loss "$W/base/metrics.tsv")" 0.7 "pretraining loss"
falls "$(first "$W/base/metrics.tsv" eval_loss)" "$(last "$W/base/metrics.tsv" eval_loss)" 0.9 "pretraining eval loss"

# stopped after step 23, resumed: the same bytes as the uninterrupted run
"$S" --out "$W/base2" --stop-at 23 "$@" >"$W/out" 2>"$W/err" || fail "--stop-at: $(cat "$W/err")"
grep -q '"step": 23' "$W/base2/ckpt/trainer_state.json" || fail "stop-at checkpoint is not at step 23"
grep -q '"finished": false' "$W/base2/ckpt/trainer_state.json" || fail "stop-at checkpoint claims to be finished"
"$S" --out "$W/base2" --resume "$@" >"$W/out" 2>"$W/err" || fail "--resume: $(cat "$W/err")"
same_run "$W/base" "$W/base2"
grep -q "^sft: resuming $W/base2/ckpt at step 23" "$W/err" || fail "no resume line: $(cat "$W/err")"
"$S" --out "$W/base2" --resume "$@" >"$W/out" 2>"$W/err" || fail "resuming a finished run: $(cat "$W/err")"
grep -q "already finished at step 60" "$W/out" || fail "a finished run resumed: $(cat "$W/out")"
same_run "$W/base" "$W/base2"
# the same seed and config twice: the same bytes; another seed: other weights
"$S" --out "$W/base3" "$@" >/dev/null 2>&1 || fail "rerun"
same_run "$W/base" "$W/base3"
"$S" --out "$W/base4" --seed 2 "$@" >/dev/null 2>&1 || fail "seed 2"
cmp -s "$W/base/ckpt/model.safetensors" "$W/base4/ckpt/model.safetensors" && fail "--seed changed nothing"

# two micro-batches of 4 rows are one step of 8 rows (full pretraining rows: the mean of the two
# means is the mean), up to float rounding
"$S" --out "$W/acc1" "$@" --set train.steps=10 >/dev/null 2>&1 || fail "batch 8"
"$S" --out "$W/acc2" "$@" --set train.steps=10 --set train.batch_size=4 --set train.grad_accum=2 >/dev/null 2>&1 ||
    fail "batch 4 x 2"
paste "$W/acc1/metrics.tsv" "$W/acc2/metrics.tsv" | awk -F '\t' 'NR > 1 && $2 == "loss" {
    d = $3 - $6; if (d < 0) d = -d; if (d > 1e-5 * $3) { print "step " $1 ": " $3 " vs " $6; bad = 1 } }
    END { exit bad }' || fail "grad_accum 2 x batch 4 differs from batch 8"

# ---- SFT on dialogues ----------------------------------------------------------------------------
"$BIN/toyworld" demos --n 150 >"$W/demos.jsonl"
set -- --init "$W/base/ckpt" --config configs/sft_tiny.yaml --set train.steps=120 --set train.eval_every=40 \
    --set train.lr=1e-3 --threads 1 "$W/demos.jsonl"
"$S" --out "$W/sft" "$@" >"$W/out" 2>"$W/err" || fail "sft: $(cat "$W/err")"
falls "$(head_loss "$W/sft/metrics.tsv")" "$(tail_loss "$W/sft/metrics.tsv")" 0.8 "SFT loss"
falls "$(first "$W/sft/metrics.tsv" eval_loss)" "$(last "$W/sft/metrics.tsv" eval_loss)" 0.95 "SFT eval loss"

# packed dialogues (Llama 2 §3.1): nothing cut, and it learns as well
"$S" --out "$W/pack" "$@" --set data.pack=true >"$W/out" 2>"$W/err" || fail "data.pack: $(cat "$W/err")"
grep -q "held out; 0 cut to 65 tokens, 0 dropped" "$W/err" || fail "packing cut or dropped examples: $(cat "$W/err")"
falls "$(head_loss "$W/pack/metrics.tsv")" "$(tail_loss "$W/pack/metrics.tsv")" 0.8 "packed SFT loss"
falls "$(first "$W/pack/metrics.tsv" eval_loss)" "$(last "$W/pack/metrics.tsv" eval_loss)" 0.95 "packed SFT eval loss"

# SIGINT in the middle: a resumable checkpoint at the step it reached, exit 1, then the same end
"$S" --out "$W/sft2" "$@" >"$W/out2" 2>"$W/err2" &
pid=$!
i=0
while [ "$(awk -F '\t' '$2 == "loss"' "$W/sft2/metrics.tsv" 2>/dev/null | wc -l)" -lt 3 ]; do
    i=$((i + 1)); [ $i -lt 600 ] || { kill "$pid"; fail "the run logged nothing in 60 s"; }
    sleep 0.1
done
kill -INT "$pid"
set +e; wait "$pid"; got=$?; set -e
[ "$got" -eq 1 ] || fail "interrupted run: exit $got, want 1: $(cat "$W/err2")"
grep -q "^sft: interrupted after step [0-9]*; resumable checkpoint" "$W/err2" || fail "no interrupt message: $(cat "$W/err2")"
grep -q '"finished": false' "$W/sft2/ckpt/trainer_state.json" || fail "interrupt checkpoint claims to be finished"
"$S" --out "$W/sft2" --resume "$@" >"$W/out" 2>"$W/err" || fail "resume after SIGINT: $(cat "$W/err")"
same_run "$W/sft" "$W/sft2"

# ---- from the store, recorded in it -------------------------------------------------------------
"$BIN/prefs_db" --db "$W/p.db" import "$W/demos.jsonl" >/dev/null 2>&1
"$S" --out "$W/sft3" --db "$W/p.db" --iteration 0 --init "$W/base/ckpt" --config configs/sft_tiny.yaml \
    --set train.steps=120 --set train.eval_every=40 --set train.lr=1e-3 --threads 1 >"$W/out" 2>"$W/err" ||
    fail "sft from the store: $(cat "$W/err")"
# the store gives the same examples in the same order as the file: the same run
same_run "$W/sft" "$W/sft3"
"$BIN/prefs_db" --db "$W/p.db" export --table runs >"$W/runs.jsonl"
grep -q '"program":"sft".*"status":"ok"' "$W/runs.jsonl" || fail "run not recorded: $(cat "$W/runs.jsonl")"
"$BIN/prefs_db" --db "$W/p.db" export --table metrics >"$W/metrics.jsonl"
[ "$(wc -l <"$W/metrics.jsonl")" -eq "$(($(wc -l <"$W/sft3/metrics.tsv") - 1))" ] || fail "store and TSV hold different metrics"

# ---- errors --------------------------------------------------------------------------------------
expect 2 "--out DIR is required" "$W/demos.jsonl"
expect 2 "unknown option '--bogus'" --bogus --out "$W/e"
expect 2 "unknown key 'train.lrr'" --out "$W/e" --set train.lrr=1 "$W/demos.jsonl"
expect 2 "train.lr: expected a number" --out "$W/e" --set train.lr=fast "$W/demos.jsonl"
expect 2 "--pretrain needs text inputs" --pretrain --out "$W/e"
expect 2 "needs a tokenizer" --pretrain --out "$W/e" "$W/corpus.txt"
# --tokenizer is the --set it stands for, in its place: the later of the two wins
expect 2 "nope.bin" --pretrain --tokenizer "$W/tok.bin" --set model.tokenizer="$W/nope.bin" --out "$W/e" "$W/corpus.txt"
expect 2 "nope.bin" --pretrain --set model.tokenizer="$W/tok.bin" --tokenizer "$W/nope.bin" --out "$W/e" "$W/corpus.txt"
expect 2 "missing.txt" --pretrain --tokenizer "$W/tok.bin" --out "$W/e" "$W/missing.txt"
expect 2 "vocab\|tokens" --pretrain --tokenizer "$W/tok.bin" --set model.vocab_size=600 --out "$W/e" "$W/corpus.txt"
expect 2 "seq_len 200 exceeds" --init "$W/base/ckpt" --set train.seq_len=200 --out "$W/e" "$W/demos.jsonl"
printf '%s\n' "$(head -n 1 "$W/demos.jsonl")" '{"type":"sft_example","dialogue":[{"role":"user","content":"hi"}]}' >"$W/bad.jsonl"
expect 2 "bad.jsonl:2: " --init "$W/base/ckpt" --out "$W/e" "$W/bad.jsonl"
printf '{"dialogue": [\n' >"$W/bad2.jsonl"
expect 2 "bad2.jsonl:1: " --init "$W/base/ckpt" --out "$W/e" "$W/bad2.jsonl"
(cd "$W" && mkdir empty && cd empty && set +e && "$S" --out x --init "$W/base/ckpt" >/dev/null 2>"$W/err"; echo $? >"$W/rc")
[ "$(cat "$W/rc")" -eq 2 ] && grep -q "no store at ./prefs.db" "$W/err" || fail "no input and no store: $(cat "$W/err")"
expect 2 "configuration differs" --resume --out "$W/base" --pretrain --config configs/sft_tiny.yaml \
    --set train.lr=1e-2 --threads 1 "$W/corpus.txt"
expect 2 "training data differs" --resume --out "$W/base2" --pretrain --config configs/sft_tiny.yaml \
    --tokenizer "$W/tok.bin" --threads 1 "$W/tok.bin"
expect 2 "trainer_state.json\|ckpt" --resume --out "$W/nothing" --pretrain "$W/corpus.txt"
"$S" --help | grep -q "train.grad_accum" || fail "--help lacks the config keys"
"$S" --version | grep -q "^sft (rlhf.c)" || fail "--version"
echo "test_sft: ok"
