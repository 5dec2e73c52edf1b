#!/bin/sh
# evaluate: kl of a model against itself is ~0 and against another model positive and finite; the
# same seed gives the same numbers; record stores every line as a metric of an 'evaluate' run, all or
# nothing; and every usage and input error exits 2 with a prefixed one-line message. Needs BIN.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
E="$BIN/evaluate"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error as the last stderr line.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$E" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "evaluate $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^evaluate: .*$needle" || fail "evaluate $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}

# ---- two tiny models: a few pretraining steps, and a few more --------------------------------------
"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
"$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt" >/dev/null
"$BIN/sft" --pretrain --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" --threads 1 --set train.steps=20 \
    --out "$W/a" "$W/corpus.txt" >/dev/null 2>&1 || fail "pretraining a"
"$BIN/sft" --pretrain --config configs/sft_tiny.yaml --init "$W/a/ckpt" --threads 1 --set train.steps=20 \
    --set train.seed=2 --out "$W/b" "$W/corpus.txt" >/dev/null 2>&1 || fail "pretraining b"
"$BIN/toyworld" prompts --n 30 --split test | grep -v '"role":"assistant"' | head -n 12 >"$W/prompts.jsonl"

# ---- kl -------------------------------------------------------------------------------------------
set -- kl --set sample.max_new=16 --threads 1
"$E" "$@" --model "$W/a/ckpt" --ref "$W/a/ckpt" "$W/prompts.jsonl" >"$W/self.tsv" 2>"$W/err" || fail "kl self: $(cat "$W/err")"
awk -F'\t' '$1 == "kl_per_token" { exit !($2 < 1e-4 && $2 > -1e-4) }' "$W/self.tsv" || fail "KL of a model to itself: $(cat "$W/self.tsv")"
awk -F'\t' '$1 == "kl_tokens" { exit !($2 > 12) }' "$W/self.tsv" || fail "too few tokens: $(cat "$W/self.tsv")"
"$E" "$@" --model "$W/b/ckpt" --ref "$W/a/ckpt" "$W/prompts.jsonl" >"$W/ab.tsv" 2>"$W/err" || fail "kl b||a: $(cat "$W/err")"
awk -F'\t' '$1 == "kl_per_token" { exit !($2 > 1e-3 && $2 < 100) } $1 == "kl_per_answer" { exit !($2 > 0) }' "$W/ab.tsv" ||
    fail "KL of a trained-on model to its start is not positive and finite: $(cat "$W/ab.tsv")"
"$E" "$@" --model "$W/b/ckpt" --ref "$W/a/ckpt" --set sample.batch=5 - <"$W/prompts.jsonl" >"$W/ab2.tsv" 2>/dev/null || fail "kl from stdin"
# the samples do not depend on the batch; the reference's forward rows do not either, up to float noise
paste "$W/ab.tsv" "$W/ab2.tsv" | awk -F'\t' '{ d = $2 - $4; if (d > 1e-4 || d < -1e-4) exit 1 }' || fail "batch 5 changed the KL: $(paste "$W/ab.tsv" "$W/ab2.tsv")"
"$E" "$@" --model "$W/b/ckpt" --ref "$W/a/ckpt" --seed 7 "$W/prompts.jsonl" >"$W/ab7.tsv" 2>/dev/null || fail "kl seed 7"
cmp -s "$W/ab.tsv" "$W/ab7.tsv" && fail "--seed changed nothing"

# ---- record ----------------------------------------------------------------------------------------
"$BIN/prefs_db" --db "$W/p.db" init >/dev/null 2>&1
"$E" record --db "$W/p.db" --iteration 3 --name "$W/b/ckpt" "$W/ab.tsv" 2>"$W/err" || fail "record: $(cat "$W/err")"
q() { sqlite3 "$W/p.db" "$1"; }
[ "$(q "select count(*) from runs where program = 'evaluate' and iteration = 3 and status = 'ok'")" -eq 1 ] || fail "run not recorded"
[ "$(q "select count(*) from metrics where step = 3")" -eq 3 ] || fail "want 3 metrics at step 3"
want=$(awk -F'\t' '$1 == "kl_tokens" { print $2 }' "$W/ab.tsv")
[ "$(q "select cast(value as int) from metrics where name = 'kl_tokens'")" = "$want" ] || fail "kl_tokens not stored as printed"
printf 'x\t1\ny\t2.5e-3\n' | "$E" record --db "$W/p.db" --iteration 0 - 2>/dev/null || fail "record from stdin"
[ "$(q "select count(*) from metrics where step = 0")" -eq 2 ] || fail "stdin metrics not stored"

# bad lines: nothing is written
n0=$(q "select count(*) from metrics")
for bad in 'x' 'x\t' 'x\tabc' 'x\t1\t2' ' x\t1' '\t1' 'x\tnan' 'x\tinf' 'x\t1e999' 'ok\t1\nx\t1z'; do
    printf "$bad\n" >"$W/bad.tsv"
    expect 2 "bad.tsv:[12]" record --db "$W/p.db" --iteration 1 "$W/bad.tsv"
done
: >"$W/empty.tsv"
expect 2 "no metrics" record --db "$W/p.db" --iteration 1 "$W/empty.tsv"
expect 2 "missing.tsv" record --db "$W/p.db" --iteration 1 "$W/missing.tsv"
[ "$(q "select count(*) from metrics")" -eq "$n0" ] || fail "a failed record wrote metrics"
[ "$(q "select count(*) from runs where iteration = 1")" -eq 0 ] || fail "a failed record left a run"

# ---- usage and input errors -----------------------------------------------------------------------
expect 2 "a command is required"
expect 2 "unknown command 'frob'" frob
expect 2 "unknown option '--frob'" kl --frob
expect 2 "--model DIR and --ref DIR are required" kl --model "$W/a/ckpt"
expect 2 "belong to record" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" --iteration 1
expect 2 "--iteration N is required" record --db "$W/p.db" "$W/ab.tsv"
expect 2 "belong to kl" record --iteration 1 --model "$W/a/ckpt" "$W/ab.tsv"
expect 2 "expected an integer >= 0" record --iteration -1 "$W/ab.tsv"
expect 2 "at most one input" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" x y
expect 2 "sample.max_new" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" --set sample.max_new=0 "$W/prompts.jsonl"
expect 2 "sample.frob" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" --set sample.frob=1 "$W/prompts.jsonl"
expect 2 "" kl --model "$W/nope" --ref "$W/a/ckpt" "$W/prompts.jsonl"
printf '{"type":"prompt","dialogue":[{"role":"user","content":"hi"}]}\n[1]\n' >"$W/p2.jsonl"
expect 2 "p2.jsonl:2: expected a JSON object" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" "$W/p2.jsonl"
printf '{"type":"response","dialogue":[]}\n' >"$W/p3.jsonl"
expect 2 "p3.jsonl:1: \"type\": expected \"prompt\"" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" "$W/p3.jsonl"
printf '{"system":3,"dialogue":[{"role":"user","content":"hi"}]}\n' >"$W/p4.jsonl"
expect 2 "p4.jsonl:1: \"system\": expected a string" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" "$W/p4.jsonl"
printf '{"dialogue":[{"role":"assistant","content":"hi"}]}\n' >"$W/p5.jsonl"
expect 2 "p5.jsonl:1" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" "$W/p5.jsonl"
: >"$W/p6.jsonl"
expect 2 "no prompt leaves room" kl --model "$W/a/ckpt" --ref "$W/a/ckpt" "$W/p6.jsonl"
"$E" --help | grep -q "sample.max_new" || fail "--help lacks the config keys"
"$E" --version | grep -q "^evaluate (rlhf.c) " || fail "--version"
echo "evaluate: KL self $(awk -F'\t' '$1 == "kl_per_token" { print $2 }' "$W/self.tsv"), b||a $(awk -F'\t' '$1 == "kl_per_token" { print $2 }' "$W/ab.tsv") per token"
