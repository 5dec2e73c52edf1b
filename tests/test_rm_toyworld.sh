#!/bin/sh
# The reward-model stage of the pipeline on toyworld: toyworld demos -> sft (tiny) -> generate 2
# samples per prompt -> toyworld rate (through prefs_db annotate) -> rm_train helpfulness and safety
# -> rm_train eval. Samples of one tiny policy are mostly alike (about 3/4 of the pairs are rated
# "negligibly better / unsure", a coin flip for any model), so the checks are on the pairs the
# annotator found a difference in (ratings 1-3), where both models must be clearly above chance,
# and on the whole test split, where they must not be below it. Needs BIN.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
db="$W/p.db"
run() { "$@" >"$W/out" 2>"$W/err" || fail "$*: $(cat "$W/err")"; }

"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
run "$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt"
run "$BIN/sft" --pretrain --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" --threads 1 --out "$W/base" "$W/corpus.txt"
run "$BIN/prefs_db" --db "$db" init
"$BIN/toyworld" demos --n 400 | "$BIN/prefs_db" --db "$db" import - 2>/dev/null
run "$BIN/sft" --config configs/sft_tiny.yaml --init "$W/base/ckpt" --db "$db" --threads 1 --out "$W/sft" --set train.steps=200
{ "$BIN/toyworld" prompts --n 1000 --split train; "$BIN/toyworld" prompts --n 500 --split test --seed 2; } |
    "$BIN/prefs_db" --db "$db" import - 2>/dev/null
run "$BIN/generate" --model "$W/sft/ckpt" -K 2 --emit store --db "$db" --threads 1 --set sample.max_new=40 \
    --set sample.temperature=1.3
run "$BIN/prefs_db" --db "$db" annotate --rater "$BIN/toyworld rate"

for k in helpfulness safety; do
    run "$BIN/rm_train" --kind $k --config configs/rm_train_tiny.yaml --set train.epochs=1 --init "$W/sft/ckpt" \
        --db "$db" --threads 1 --out "$W/rm_$k"
    run "$BIN/rm_train" eval --model "$W/rm_$k/ckpt" --db "$db" --kind $k --threads 1
    cp "$W/out" "$W/eval_$k"
done
"$BIN/prefs_db" --db "$db" export --table metrics >"$W/metrics.jsonl"

# acc DIM FIRST LAST: pooled accuracy (%) and count over the rating columns of the last eval of DIM
acc() {
    grep "\"name\":\"[an][c]*\.$1\.[a-z_]*\"" "$W/metrics.jsonl" | awk -v first="$2" -v last="$3" '
        { match($0, /"name":"[^"]*"/); name = substr($0, RSTART + 8, RLENGTH - 9)
          match($0, /"value":[-0-9.e+]*/); v = substr($0, RSTART + 8, RLENGTH - 8) + 0
          split(name, p, "."); val[p[1], p[3]] = v }
        END { split("significantly_better better slightly_better negligibly_better", col, " ")
              for (i = first; i <= last; i++) { r += val["acc", col[i]] * val["n", col[i]]; n += val["n", col[i]] }
              printf "%.1f %d\n", n ? 100 * r / n : 0, n }'
}
for k in helpfulness safety; do
    set -- $(acc $k 1 3)
    [ "$2" -ge 30 ] || fail "$k: only $2 test pairs rated 1-3"
    awk -v a="$1" 'BEGIN { exit !(a >= 60) }' || fail "$k: accuracy $1% on $2 pairs rated 1-3 is not clearly above 50%: $(cat "$W/eval_$k")"
    d="$1% of $2"
    set -- $(acc $k 1 4)
    awk -v a="$1" 'BEGIN { exit !(a >= 50) }' || fail "$k: accuracy $1% on all $2 test pairs is below chance: $(cat "$W/eval_$k")"
    echo "rm_train on toyworld: $k model: $d pairs rated 1-3 right, $1% of all $2"
done
