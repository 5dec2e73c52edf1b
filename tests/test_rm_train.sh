#!/bin/sh
# rm_train end to end on a planted preference: answers that contain the word "honey" are preferred,
# and their length says nothing. A tiny model pretrained on toyworld text learns it to > 95% on held-out
# pairs; the accuracy table's bookkeeping equals one computed here from the pipe's scores on a hand-made
# set; scoring through the store and through a pipe agree; a run stopped at a step and resumed ends
# with the same bytes as an uninterrupted one; usage and input errors exit 2 with a prefixed line.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
R="$BIN/rm_train"
P="$BIN/prefs_db"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
. tests/interrupt.sh

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error line at the end of stderr.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$R" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "rm_train $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^rm_train: .*$needle" || fail "rm_train $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}

# ---- a base model and planted comparisons --------------------------------------------------------
"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
"$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt" >/dev/null
"$BIN/sft" --pretrain --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" --threads 1 --out "$W/base" \
    "$W/corpus.txt" >/dev/null 2>"$W/err" || fail "pretraining: $(cat "$W/err")"

# planted N SPLIT SEED: N comparisons; both answers are 4-7 words from the same list, the chosen one
# has "honey" in place of one of them; ratings and the order of the words are random.
planted() {
    awk -v n="$1" -v sp="$2" -v seed="$3" 'BEGIN {
        srand(seed)
        nw = split("cat dog bird frog horse cow duck ball cup hat box kite bread cake soup rice egg milk red blue green park farm", w, " ")
        for (i = 0; i < n; i++) {
            a = w[1 + int(rand() * nw)]
            k = 4 + int(rand() * 4); c = ""; r = ""; h = int(rand() * k)
            for (j = 0; j < k; j++) c = c (j ? " " : "") (j == h ? "honey" : w[1 + int(rand() * nw)])
            k = 4 + int(rand() * 4)
            for (j = 0; j < k; j++) r = r (j ? " " : "") w[1 + int(rand() * nw)]
            printf "{\"type\":\"comparison\",\"prompt\":{\"dialogue\":[{\"role\":\"user\",\"content\":\"Tell me about the %s %d.\"}],\"split\":\"%s\"},", a, i, sp
            printf "\"chosen\":\"%s.\",\"rejected\":\"%s.\",\"dimension\":\"helpfulness\",\"rating\":%d,\"annotator\":\"planted\",\"split\":\"%s\"}\n", c, r, int(rand() * 4), sp
        }
    }'
}
db="$W/p.db"
"$P" --db "$db" init >/dev/null
{ planted 400 train 1; planted 100 test 2; } | "$P" --db "$db" import - 2>"$W/err" || fail "import: $(cat "$W/err")"
grep -q '500 comparisons' "$W/err" || fail "import: $(cat "$W/err")"

# ---- training learns the planted preference -------------------------------------------------------
set -- --kind helpfulness --config configs/rm_train_tiny.yaml --init "$W/base/ckpt" --db "$db" --threads 1
"$R" "$@" --out "$W/rm" >"$W/out" 2>"$W/err" || fail "training: $(cat "$W/err")"
grep -q "^rm_train: helpfulness model, step 100 loss .* 800 pairs" "$W/out" || fail "summary: $(cat "$W/out")"
grep -q "400 helpfulness pairs + 0 from the other dimension; 100 steps of 8 pairs, warm-up 5" "$W/err" ||
    fail "plan line: $(cat "$W/err")"
for f in config.json model.safetensors tokenizer.bin optimizer.safetensors trainer_state.json; do
    [ -s "$W/rm/ckpt/$f" ] || fail "checkpoint lacks $f"
done
grep -q LlamaForSequenceClassification "$W/rm/ckpt/config.json" || fail "not saved as a reward model"
[ "$(grep -c '	loss	' "$W/rm/metrics.tsv")" -eq 100 ] || fail "100 loss lines expected"
"$R" eval --model "$W/rm/ckpt" --db "$db" --threads 1 >"$W/eval" 2>"$W/err" || fail "eval: $(cat "$W/err")"
acc=$(awk '$1 == "helpfulness" { print $(NF - 1) }' "$W/eval")
awk -v a="$acc" 'BEGIN { exit !(a > 95) }' || fail "held-out accuracy $acc% <= 95%: $(cat "$W/eval")"
grep -q "rm_train eval: $W/rm/ckpt on split 'test', 100 comparisons" "$W/eval" || fail "eval header: $(cat "$W/eval")"

# ---- the table's bookkeeping on a hand-made set ---------------------------------------------------
# 24 pairs of iteration 1: the planted answers, some swapped so that the model is wrong on them,
# ratings and safety labels in a fixed pattern. The expected table is computed here from the scores
# the pipe gives, then compared with eval's cells and with the metrics it stores.
planted 24 test 3 | awk '{
    i = NR - 1
    if (i % 3 == 2) { # swap chosen and rejected
        match($0, /"chosen":"[^"]*"/); c = substr($0, RSTART + 10, RLENGTH - 11)
        match($0, /"rejected":"[^"]*"/); r = substr($0, RSTART + 12, RLENGTH - 13)
        sub(/"chosen":"[^"]*"/, "\"chosen\":\"" r "\""); sub(/"rejected":"[^"]*"/, "\"rejected\":\"" c "\"")
    }
    sub(/"rating":[0-3]/, "\"rating\":" (i % 4))
    cs = (i % 5 < 3) ? "true" : "false"; rs = (i % 7 < 4) ? "true" : "false"
    sub(/"annotator"/, "\"chosen_safe\":" cs ",\"rejected_safe\":" rs ",\"iteration\":1,\"annotator\"")
    # prompts of their own (none shared with the sets above), tagged: topic x, y or 7 (a number), or no tag
    sub(/\."\}\]/, ", by hand.\"}]")
    tg = i % 5 == 0 ? "{\"topic\":\"x\"}" : i % 5 == 1 ? "{\"topic\":\"y\"}" : i % 5 == 2 ? "{\"topic\":7}" : "{}"
    sub(/\],"split"/, "],\"tags\":" tg ",\"split\"")
    print
}' >"$W/hand.jsonl"
"$P" --db "$db" import "$W/hand.jsonl" 2>"$W/err" || fail "hand-made import: $(cat "$W/err")"
"$R" score --model "$W/rm/ckpt" --threads 1 - <"$W/hand.jsonl" >"$W/hand_scored.jsonl" 2>"$W/err" || fail "pipe: $(cat "$W/err")"
[ "$(wc -l <"$W/hand_scored.jsonl")" -eq 24 ] || fail "the pipe lost records"
# expected cells: "row col right n" for the helpfulness rows, from chosen_score > rejected_score
awk '{
    match($0, /"rating":[0-3]/); rt = substr($0, RSTART + 9, 1)
    cs = ($0 ~ /"chosen_safe":true/); rs = ($0 ~ /"rejected_safe":true/)
    match($0, /"chosen_score":[-0-9.e+]*/); c = substr($0, RSTART + 15, RLENGTH - 15) + 0
    match($0, /"rejected_score":[-0-9.e+]*/); r = substr($0, RSTART + 17, RLENGTH - 17) + 0
    ok = c > r ? 1 : (c == r ? 0.5 : 0)
    bin = cs + rs == 2 ? "both safe" : (cs + rs == 1 ? "one safe" : "both unsafe")
    col = 4 - rt
    R["helpfulness", col] += ok; N["helpfulness", col]++; R["helpfulness", 5] += ok; N["helpfulness", 5]++
    b = "helpfulness: " bin
    R[b, col] += ok; N[b, col]++; R[b, 5] += ok; N[b, 5]++; rows[b] = 1
} END {
    rows["helpfulness"] = 1
    for (b in rows) for (col = 1; col <= 5; col++)
        printf "%s|%d|%s\n", b, col, N[b, col] ? sprintf("%.1f", 100 * R[b, col] / N[b, col]) : "-"
}' "$W/hand_scored.jsonl" | sort >"$W/want"
"$R" eval --model "$W/rm/ckpt" --db "$db" --set data.iteration=1 --threads 1 >"$W/eval" 2>"$W/err" ||
    fail "eval of the hand-made set: $(cat "$W/err")"
# eval's cells for the same rows (the label is everything before the 6 numeric columns)
awk '/^helpfulness(:| )/ && !/chosen/ {
    n = NF; label = $1; for (i = 2; i <= n - 6; i++) label = label " " $i
    for (col = 1; col <= 5; col++) printf "%s|%d|%s\n", label, col, $(n - 6 + col)
}' "$W/eval" | sort >"$W/got"
cmp -s "$W/want" "$W/got" || fail "eval table differs from the pipe's scores:
$(diff "$W/want" "$W/got")
$(cat "$W/eval")"
grep -q "pairs" "$W/eval" && [ "$(awk '$1 == "helpfulness" { print $NF }' "$W/eval")" -eq 24 ] || fail "24 pairs expected"
# the pattern has every rating and every safety bin, and the model is wrong on the swapped third
awk -F'|' '$1 == "helpfulness" && $2 == 5 { exit !($3 > 55 && $3 < 80) }' "$W/want" || fail "hand-made avg: $(cat "$W/want")"
grep -q '^helpfulness: both unsafe|5|' "$W/want" && grep -q '^helpfulness: one safe|5|' "$W/want" || fail "bins missing"
# the same numbers went to the store as metrics of the eval run
"$P" --db "$db" export --table metrics >"$W/metrics.jsonl"
avg=$(awk -F'|' '$1 == "helpfulness" && $2 == 5 { print $3 }' "$W/want")
stored=$(grep '"name":"acc.helpfulness.avg"' "$W/metrics.jsonl" | tail -n 1 | sed 's/.*"value":\([-0-9.e]*\).*/\1/')
awk -v a="$avg" -v s="$stored" 'BEGIN { d = a - 100 * s; exit !(d < 0.051 && d > -0.051) }' ||
    fail "stored acc.helpfulness.avg $stored vs table $avg"
grep -q '"name":"n.helpfulness.avg","value":24' "$W/metrics.jsonl" || fail "stored count"
# --by topic: a row per value of the prompts' tag (a number as its JSON text, no tag as "-"), the
# same cells as computed from the pipe's scores
awk '{
    match($0, /"rating":[0-3]/); rt = substr($0, RSTART + 9, 1)
    match($0, /"chosen_score":[-0-9.e+]*/); c = substr($0, RSTART + 15, RLENGTH - 15) + 0
    match($0, /"rejected_score":[-0-9.e+]*/); r = substr($0, RSTART + 17, RLENGTH - 17) + 0
    ok = c > r ? 1 : (c == r ? 0.5 : 0)
    g = "-"; if (match($0, /"topic":("[a-z]*"|[0-9]+)/)) { g = substr($0, RSTART + 8, RLENGTH - 8); gsub(/"/, "", g) }
    b = "helpfulness: topic " g; rows[b] = 1; col = 4 - rt
    R[b, col] += ok; N[b, col]++; R[b, 5] += ok; N[b, 5]++
} END {
    for (b in rows) for (col = 1; col <= 5; col++)
        printf "%s|%d|%s\n", b, col, N[b, col] ? sprintf("%.1f", 100 * R[b, col] / N[b, col]) : "-"
}' "$W/hand_scored.jsonl" | sort >"$W/want_by"
[ "$(cut -d'|' -f1 "$W/want_by" | sort -u | tr '\n' ,)" = "helpfulness: topic -,helpfulness: topic 7,helpfulness: topic x,helpfulness: topic y," ] ||
    fail "hand-made topics: $(cat "$W/want_by")"
"$R" eval --model "$W/rm/ckpt" --db "$db" --set data.iteration=1 --by topic --threads 1 >"$W/eval_by" 2>"$W/err" ||
    fail "eval --by: $(cat "$W/err")"
awk '/^helpfulness: topic / {
    n = NF; label = $1; for (i = 2; i <= n - 6; i++) label = label " " $i
    for (col = 1; col <= 5; col++) printf "%s|%d|%s\n", label, col, $(n - 6 + col)
}' "$W/eval_by" | sort >"$W/got_by"
cmp -s "$W/want_by" "$W/got_by" || fail "eval --by table differs from the pipe's scores:
$(diff "$W/want_by" "$W/got_by")
$(cat "$W/eval_by")"
# the rows without --by are unchanged by it, and the groups' metrics are stored
grep -v '^helpfulness: topic ' "$W/eval_by" | tr -s ' ' >"$W/a"
tr -s ' ' <"$W/eval" >"$W/b"
cmp -s "$W/a" "$W/b" || fail "eval --by changed the other rows: $(diff "$W/b" "$W/a")"
"$P" --db "$db" export --table metrics >"$W/metrics.jsonl"
grep -q '"name":"n.helpfulness.topic.x.avg","value":5' "$W/metrics.jsonl" || fail "stored group count: $(grep topic "$W/metrics.jsonl")"
grep -q '"name":"acc.helpfulness.topic.-.avg"' "$W/metrics.jsonl" || fail "stored '-' group"

# ---- scoring through the store and through a pipe agree --------------------------------------------
"$R" score --model "$W/rm/ckpt" --db "$db" --name planted --threads 1 >"$W/out" 2>"$W/err" || fail "score: $(cat "$W/err")"
nresp=$("$P" --db "$db" export --table responses | wc -l)
grep -q "^rm_train score: $nresp responses scored as 'planted'" "$W/out" || fail "score summary: $(cat "$W/out")"
"$P" --db "$db" export --table responses | "$R" score --model "$W/rm/ckpt" --threads 1 - >"$W/piped.jsonl" 2>"$W/err" ||
    fail "pipe: $(cat "$W/err")"
"$P" --db "$db" export --table scores >"$W/stored.jsonl"
sed 's/.*"response_id":\([0-9]*\).*"score":\([-0-9.e+]*\).*/\1 \2/' "$W/stored.jsonl" | sort -n >"$W/a"
sed 's/^{"type":"response","id":\([0-9]*\),.*"score":\([-0-9.e+]*\)}$/\1 \2/' "$W/piped.jsonl" | sort -n >"$W/b"
[ "$(wc -l <"$W/a")" -eq "$nresp" ] || fail "store holds $(wc -l <"$W/a") scores, want $nresp"
paste "$W/a" "$W/b" | awk '{ d = $2 - $4; if ($1 != $3 || d > 1e-6 || d < -1e-6) { print; bad = 1 } } END { exit bad }' ||
    fail "store and pipe scores differ"
# scoring again replaces, never duplicates
"$R" score --model "$W/rm/ckpt" --db "$db" --name planted --threads 1 >/dev/null 2>&1
[ "$("$P" --db "$db" export --table scores | wc -l)" -eq "$nresp" ] || fail "a second score run added rows"
# all or nothing: killed after its first chunk of 1024 responses, a run has stored no score (all go in
# at the end, in one transaction); a rerun scores every response once
"$BIN/toyworld" prompts --n 3000 >"$W/many.jsonl"
for pol in good demo random; do "$BIN/toyworld" respond --policy $pol "$W/many.jsonl"; done |
    "$P" --db "$W/k.db" import - >/dev/null 2>&1
nk=$(sqlite3 "$W/k.db" 'select count(*) from responses')
[ "$nk" -gt 4096 ] || fail "want more than 4 chunks of responses, got $nk"
kill_at KILL "^rm_train score: 1024/$nk responses" "$W/err" "$R" score --model "$W/rm/ckpt" --db "$W/k.db" --name planted --threads 1
[ "$(sqlite3 "$W/k.db" 'select count(*) from scores')" -eq 0 ] || fail "a killed score run left scores in the store"
"$R" score --model "$W/rm/ckpt" --db "$W/k.db" --name planted --threads 1 >/dev/null 2>"$W/err" || fail "score after the kill: $(cat "$W/err")"
[ "$(sqlite3 "$W/k.db" "select count(*), count(distinct response_id) from scores where model = 'planted'")" = "$nk|$nk" ] ||
    fail "after the rerun, want one score for each of $nk responses"

# ---- resume equals an uninterrupted run -------------------------------------------------------------
"$R" "$@" --out "$W/rm2" --stop-at 37 >"$W/out" 2>"$W/err" || fail "--stop-at: $(cat "$W/err")"
grep -q '"step": 37' "$W/rm2/ckpt/trainer_state.json" || fail "stop-at checkpoint is not at step 37"
"$R" "$@" --out "$W/rm2" --resume >"$W/out" 2>"$W/err" || fail "--resume: $(cat "$W/err")"
grep -q "^rm_train: resuming $W/rm2/ckpt at step 37" "$W/err" || fail "no resume line: $(cat "$W/err")"
for f in ckpt/model.safetensors ckpt/optimizer.safetensors metrics.tsv; do
    cmp -s "$W/rm/$f" "$W/rm2/$f" || fail "$f of the resumed run differs"
done
"$R" "$@" --out "$W/rm2" --resume >"$W/out" 2>"$W/err" || fail "resuming a finished run: $(cat "$W/err")"
grep -q "already finished at step 100" "$W/out" || fail "a finished run resumed: $(cat "$W/out")"
expect 2 "configuration differs" "$@" --out "$W/rm2" --resume --set train.lr=0.002

# SIGINT: a checkpoint is saved, exit 1, and the run resumes to the same bytes
"$R" "$@" --out "$W/rm3" --set train.max_steps=100000 --set train.log_every=1000 >"$W/out" 2>"$W/err" &
pid=$!
i=0; while [ ! -s "$W/rm3/metrics.tsv" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.3
kill -INT $pid
set +e; wait $pid; st=$?; set -e
[ "$st" -eq 1 ] || fail "SIGINT: exit $st, want 1: $(cat "$W/err")"
grep -q "interrupted after step" "$W/err" || fail "SIGINT: $(cat "$W/err")"
grep -q '"finished": false' "$W/rm3/ckpt/trainer_state.json" || fail "SIGINT checkpoint"

# ---- the mix, the margins, a reward model as --init -------------------------------------------------
planted 50 train 4 | sed 's/"helpfulness"/"safety"/' | "$P" --db "$db" import - 2>/dev/null
"$R" "$@" --out "$W/mix" --set train.max_steps=2 >/dev/null 2>"$W/err" || fail "mix: $(cat "$W/err")"
grep -q "400 helpfulness pairs + 50 from the other dimension" "$W/err" || fail "helpfulness mix: $(cat "$W/err")"
"$R" --kind safety --config configs/rm_train_tiny.yaml --init "$W/rm/ckpt" --db "$db" --threads 1 --out "$W/mix" \
    --set train.max_steps=2 >/dev/null 2>"$W/err" || fail "safety from a reward model: $(cat "$W/err")"
grep -q "50 safety pairs + 6 from the other dimension" "$W/err" || fail "safety mix (10%): $(cat "$W/err")"
expect 2 "trains a helpfulness model, not safety" --kind safety --config configs/rm_train_tiny.yaml --db "$db" \
    --out "$W/rm2" --resume
"$R" "$@" --out "$W/mix" --set train.max_steps=2 --set data.other_share=0 >/dev/null 2>"$W/err" || fail "no mix"
grep -q "400 helpfulness pairs + 0 from" "$W/err" || fail "other_share=0: $(cat "$W/err")"
# data.min_rating: only the comparisons rated that or more train (eval still reads them all)
n1=$(sqlite3 "$db" "select count(*) from comparisons where split = 'train' and dimension = 'helpfulness' and rating >= 1")
[ "$n1" -gt 0 ] && [ "$n1" -lt 400 ] || fail "planted ratings: $n1 of 400 rated 1 or more"
"$R" "$@" --out "$W/mr" --set train.max_steps=2 --set data.other_share=0 --set data.min_rating=1 >/dev/null 2>"$W/err" ||
    fail "min_rating: $(cat "$W/err")"
grep -q "$n1 helpfulness pairs + 0 from" "$W/err" || fail "min_rating=1 should keep $n1 pairs: $(cat "$W/err")"
expect 2 "data.min_rating" "$@" --out "$W/x" --set data.min_rating=4
# train.seq_len below the context: the checkpoint keeps its context and records the length it read,
# which eval and score then read too (test_reward.c checks the reading)
grep -q rlhf_score_len "$W/rm/ckpt/config.json" && fail "full-length training recorded rlhf_score_len"
"$R" "$@" --out "$W/sl" --set train.max_steps=2 --set train.seq_len=20 >/dev/null 2>"$W/err" || fail "seq_len: $(cat "$W/err")"
grep -q '"rlhf_score_len": 20' "$W/sl/ckpt/config.json" || fail "seq_len 20 not recorded: $(cat "$W/sl/ckpt/config.json")"
grep -q '"max_position_embeddings": 128' "$W/sl/ckpt/config.json" || fail "the context changed: $(cat "$W/sl/ckpt/config.json")"
"$R" "$@" --init "$W/sl/ckpt" --out "$W/sl2" --set train.max_steps=2 >/dev/null 2>"$W/err" || fail "seq_len from RM: $(cat "$W/err")"
grep -q rlhf_score_len "$W/sl2/ckpt/config.json" && fail "retrained at full length, still records rlhf_score_len"
# group_by_length: the logged padding share is lower than with plain shuffled batches
for g in 0 32; do
    "$R" "$@" --out "$W/g$g" --set train.max_steps=20 --set train.group_by_length=$g >/dev/null 2>&1 || fail "group $g"
done
pad() { awk -F'\t' '$2 == "padding" { s += $3; n++ } END { if (n != 20) exit 1; printf "%.4f\n", s / n }' "$1"; }
p0=$(pad "$W/g0/metrics.tsv") && p32=$(pad "$W/g32/metrics.tsv") || fail "20 padding lines expected"
awk -v a="$p0" -v b="$p32" 'BEGIN { exit !(b < a / 2) }' || fail "grouped padding $p32 not below half of $p0"
for m in none large custom; do
    "$R" "$@" --out "$W/m_$m" --set train.max_steps=1 --set loss.margin=$m >/dev/null 2>&1 || fail "margin $m"
done
# with all-zero scores the first loss is the mean of log(1 + e^m): larger margins, larger loss
l0=$(awk -F'\t' '$2 == "loss" { print $3; exit }' "$W/m_none/metrics.tsv")
l3=$(awk -F'\t' '$2 == "loss" { print $3; exit }' "$W/m_large/metrics.tsv")
awk -v a="$l0" 'BEGIN { d = a - log(2); exit !(d < 1e-5 && d > -1e-5) }' || fail "first loss without margin $l0 != log 2"
awk -v a="$l0" -v b="$l3" 'BEGIN { exit !(b > a + 0.3) }' || fail "large margin loss $l3 not above $l0"

# ---- usage and input errors ---------------------------------------------------------------------------
expect 2 "--kind helpfulness|safety is required" --init "$W/base/ckpt" --out "$W/x" --db "$db"
expect 2 "--kind: expected helpfulness or safety, got 'honesty'" --kind honesty --init "$W/base/ckpt" --out "$W/x"
expect 2 "--out DIR is required" --kind safety --init "$W/base/ckpt"
expect 2 "--init DIR is required" --kind safety --out "$W/x"
expect 2 "unknown command 'fit'" fit --model "$W/rm/ckpt"
expect 2 "unknown option '--bogus'" eval --bogus
expect 2 "eval: --model DIR is required" eval --db "$db"
expect 2 "--by: only eval tabulates by a prompt tag" score --model "$W/rm/ckpt" --by topic --db "$db"
expect 2 "--by: expected a prompt tag name" eval --model "$W/rm/ckpt" --by "" --db "$db"
expect 2 "the only argument is '-'" score --model "$W/rm/ckpt" file.jsonl
expect 2 "unknown key 'train.lrr'" --kind safety --init "$W/base/ckpt" --out "$W/x" --set train.lrr=1
expect 2 "loss.margin" --kind safety --init "$W/base/ckpt" --out "$W/x" --set loss.margin=huge
expect 2 "loss.margin_custom: expected 4 values" "$@" --out "$W/x" --set loss.margin=custom --set "loss.margin_custom=[0, 1]"
expect 2 "no safety comparisons in split 'dev'" --kind safety --init "$W/base/ckpt" --out "$W/x" --db "$db" --set data.split=dev
expect 2 "no comparisons in split 'dev'" eval --model "$W/rm/ckpt" --db "$db" --set data.eval_split=dev
expect 2 "not a reward model" eval --model "$W/base/ckpt" --db "$db"
printf '{"text":"hi"}\n' >"$W/bad1.jsonl"
set +e; "$R" score --model "$W/rm/ckpt" - <"$W/bad1.jsonl" >/dev/null 2>"$W/err"; st=$?; set -e
[ "$st" -eq 2 ] && grep -q '^rm_train: <stdin>:1: no prompt' "$W/err" || fail "no prompt: $st $(cat "$W/err")"
printf '{"dialogue":[{"role":"user","content":"a"}],"text":"b"}\n{"dialogue":[{"role":"user","content":"a"}]}\n' >"$W/bad2.jsonl"
set +e; "$R" score --model "$W/rm/ckpt" - <"$W/bad2.jsonl" >/dev/null 2>"$W/err"; st=$?; set -e
[ "$st" -eq 2 ] && grep -q '^rm_train: <stdin>:2: nothing to score' "$W/err" || fail "nothing to score: $st $(cat "$W/err")"
printf '{"dialogue":[{"role":"assistant","content":"a"}],"text":"b"}\n' >"$W/bad3.jsonl"
set +e; "$R" score --model "$W/rm/ckpt" - <"$W/bad3.jsonl" >/dev/null 2>"$W/err"; st=$?; set -e
[ "$st" -eq 2 ] && grep -q '^rm_train: <stdin>:1' "$W/err" || fail "bad dialogue: $st $(cat "$W/err")"
printf 'not json\n' | { set +e; "$R" score --model "$W/rm/ckpt" - >/dev/null 2>"$W/err"; echo $? >"$W/st"; }
[ "$(cat "$W/st")" -eq 2 ] || fail "malformed JSONL: $(cat "$W/err")"
"$R" --help | grep -q "loss.margin" || fail "--help lacks the config keys"
"$R" --version | grep -q "^rm_train (rlhf.c)" || fail "--version"
echo "rm_train: all checks passed (held-out accuracy on the planted preference: $acc%)"
