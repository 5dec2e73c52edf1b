#!/bin/sh
# rejection_sample end to end on a tiny policy and two tiny reward models trained here on toyworld
# ratings: every sample and score stored, one rs SFT example per prompt that is the arg-max of the
# reward, the same samples for any batch size and thread count, pooling across iterations, the
# best-of-N table and metrics, the pipe into a rater and prefs_db, every candidate with its rewards
# in a file (--candidates) that toyworld score reads, the sft round on the kept answers, and every
# usage and input error with its exit status.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
R="$BIN/rejection_sample"
W=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
q() { sqlite3 "$1" "$2"; }
. tests/interrupt.sh

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error as the last stderr line.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$R" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "rejection_sample $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^rejection_sample: .*$needle" || fail "rejection_sample $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}

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
        --set train.max_steps=10 --set train.lr=1e-3 >/dev/null 2>&1 || fail "training the $kind reward model"
done
RH="$W/rm_helpfulness/ckpt"
RS="$W/rm_safety/ckpt"

# The prompts to sample: ones that fit the tiny context (128 positions), in the train split.
"$BIN/toyworld" prompts --n 40 --split train | grep -v '"role":"assistant"' | head -n 12 >"$W/prompts.jsonl"
P=$(wc -l <"$W/prompts.jsonl")
[ "$P" -ge 8 ] || fail "too few single-turn prompts: $P"
"$BIN/prefs_db" --db "$W/a.db" import "$W/prompts.jsonl" >/dev/null 2>&1

# ---- one iteration from the store, both reward models -----------------------------------------------
set -- --model "$M" --rm-helpfulness "$RH" --rm-safety "$RS" -K 4 --set sample.max_new=20 --set data.split=train
"$R" "$@" --db "$W/a.db" --threads 1 --set sample.batch=1 --set reward.batch=1 --out "$W/run_a" \
    >"$W/table" 2>"$W/err" || fail "rejection_sample: $(cat "$W/err")"
[ "$(q "$W/a.db" 'select count(*) from responses where iteration = 1')" -eq $((P * 4)) ] || fail "want $P x 4 responses"
[ "$(q "$W/a.db" 'select count(*) from scores')" -eq $((P * 8)) ] || fail "want a score per response and reward model"
[ "$(q "$W/a.db" "select count(*) from scores where model = '$W/rm_safety'")" -eq $((P * 4)) ] || fail "scores not named after the reward model"
[ "$(q "$W/a.db" "select count(*) from sft_examples where source = 'rs' and iteration = 1 and loss_turns = 'last' and split = 'train'")" -eq "$P" ] ||
    fail "want one rs example per prompt: $(q "$W/a.db" 'select source, iteration, loss_turns, split from sft_examples')"
q "$W/a.db" "select status from runs where program = 'rejection_sample'" | grep -qx ok || fail "run not recorded as ok"
# the table: a header, then N = 1..4 with max >= median and max never falling
[ "$(grep -c '^ *[0-9]' "$W/table")" -eq 4 ] || fail "want 4 rows in the table: $(cat "$W/table")"
awk '/^ *[0-9]/ { if ($2 < $3 - 1e-9 || (NR > 3 && $2 < prev - 1e-9)) exit 1; prev = $2 }' "$W/table" ||
    fail "best-of-N max below the median or falling: $(cat "$W/table")"
grep -q "max_reward@1	" "$W/run_a/metrics.tsv" || fail "metrics.tsv lacks the curve"
[ "$(q "$W/a.db" "select count(*) from metrics where name like '%_reward@1'")" -eq 8 ] || fail "metrics not in the store"
# The kept answer of each rs example of iteration $2 has the highest combined reward among the answers
# of iterations <= $2 to its prompt; the gating recomputed in SQL (the safety score when the prompt is
# adversarial or sigmoid(safety) < 0.15, else the helpfulness score). Prints the examples that fail.
not_argmax() {
    q "$1" "
    with c as (select r.id, r.prompt_id, r.text,
                      case when coalesce(json_extract(p.tags, '\$.risk'), '') = 'adversarial'
                             or 1.0 / (1.0 + exp(-f.score)) < 0.15 then f.score else h.score end as rank
               from responses r join prompts p on p.id = r.prompt_id
               join scores h on h.response_id = r.id and h.model = '$W/rm_helpfulness'
               join scores f on f.response_id = r.id and f.model = '$W/rm_safety'
               where r.iteration <= $2),
         e as (select x.id, p.id as prompt_id, json_extract(x.dialogue, '\$[#-1].content') as kept
               from sft_examples x join prompts p on p.dialogue = json_remove(x.dialogue, '\$[#-1]') and p.system = x.system
               where x.source = 'rs' and x.iteration = $2)
    select count(*) from e where e.kept not in
        (select text from c where c.prompt_id = e.prompt_id and c.rank >= (select max(rank) from c d where d.prompt_id = e.prompt_id) - 1e-6)
    union all select count(*) from e"
}
not_argmax "$W/a.db" 1 >"$W/n"
[ "$(sed -n 1p "$W/n")" -eq 0 ] && [ "$(sed -n 2p "$W/n")" -eq "$P" ] ||
    fail "of $(sed -n 2p "$W/n") kept answers (want $P), $(sed -n 1p "$W/n") are not the arg-max of the combined reward"

# ---- the same samples whatever the batch size, the thread count or where the prompts come from --------
"$R" "$@" --db "$W/b.db" --threads 2 --set sample.batch=7 --set reward.batch=3 - <"$W/prompts.jsonl" >/dev/null 2>"$W/err" ||
    fail "from stdin: $(cat "$W/err")"
for db in a b; do q "$W/$db.db" 'select prompt_id, text from responses order by id' >"$W/resp_$db"; done
cmp -s "$W/resp_a" "$W/resp_b" || fail "batch 7, two threads, stdin: other samples than batch 1, one thread, the store"
for db in a b; do q "$W/$db.db" 'select dialogue from sft_examples order by id' >"$W/kept_$db"; done
cmp -s "$W/kept_a" "$W/kept_b" || fail "other kept answers with another batch size"
"$R" "$@" --db "$W/c.db" --seed 5 "$W/prompts.jsonl" >/dev/null 2>&1
q "$W/c.db" 'select prompt_id, text from responses order by id' >"$W/resp_c"
cmp -s "$W/resp_a" "$W/resp_c" && fail "--seed changed nothing"

# ---- all or nothing: stopped after its first chunk of 64 prompts, a run leaves no response, score or
# kept example (each chunk's answers and scores were committed before, and the stage's rerun added a
# second set of samples and of kept examples); a rerun stores exactly one set ---------------------------
"$BIN/toyworld" prompts --n 1500 --split train | grep -v '"role":"assistant"' | "$BIN/prefs_db" --db "$W/k.db" import - >/dev/null 2>&1
PK=$(q "$W/k.db" 'select count(*) from prompts')
[ "$PK" -gt 384 ] || fail "want more than 6 chunks of prompts, got $PK"
set -- "$R" --model "$M" --rm-helpfulness "$RH" --rm-safety "$RS" -K 3 --set sample.max_new=32 --db "$W/k.db" \
    --candidates "$W/k_cand.jsonl" --threads 1
kill_at TERM "^rejection_sample: T=1: 64/" "$W/err" "$@"
[ "$(q "$W/k.db" 'select (select count(*) from responses) + (select count(*) from scores) + (select count(*) from sft_examples)')" -eq 0 ] ||
    fail "an interrupted run left rows: $(q "$W/k.db" 'select * from v_iterations')"
[ ! -e "$W/k_cand.jsonl" ] || fail "an interrupted run left a candidates file"
ls "$W"/k_cand.jsonl.tmp.* >/dev/null 2>&1 && fail "an interrupted run left the candidates' temporary file"
"$@" >/dev/null 2>"$W/err" || fail "rerun after the interruption: $(cat "$W/err")"
skipped=$(grep -c "skipped:" "$W/err" || true)
[ "$(q "$W/k.db" 'select count(*), min(n), max(n) from (select count(*) as n from responses group by prompt_id)')" = "$((PK - skipped))|3|3" ] ||
    fail "after the rerun, want 3 responses for each of $((PK - skipped)) prompts"
[ "$(q "$W/k.db" 'select count(*) from scores')" -eq $(((PK - skipped) * 6)) ] || fail "after the rerun, want 2 scores per response"
[ "$(q "$W/k.db" "select count(*) from sft_examples where source = 'rs' and iteration = 1")" -eq $((PK - skipped)) ] ||
    fail "after the rerun, want one kept example per prompt"
[ "$(q "$W/k.db" "select group_concat(status) from runs where program = 'rejection_sample'")" = "running,ok" ] || fail "the runs"

# ---- iteration 2: pooling, several temperatures, pairs through a rater into the store ------------------
"$R" --model "$M" --rm-helpfulness "$RH" --rm-safety "$RS" -K 2 --temperatures 0.8,1.4 --set sample.max_new=20 \
    --db "$W/a.db" --iteration 2 --pool all --emit jsonl --candidates "$W/cand.jsonl" --threads 1 >"$W/pairs.jsonl" 2>"$W/err" ||
    fail "--pool all: $(cat "$W/err")"
grep -q "pooled $((P * 4)) answers of earlier iterations" "$W/err" || fail "pooling: $(cat "$W/err")"
grep -q "max@T=0.8 .*max@T=1.4" "$W/err" || fail "no table per temperature on stderr: $(cat "$W/err")"
[ "$(q "$W/a.db" 'select count(*) from responses where iteration = 2')" -eq $((P * 4)) ] || fail "want 2 x 2 samples per prompt"
[ "$(q "$W/a.db" 'select count(distinct temperature) from responses where iteration = 2')" -eq 2 ] || fail "temperatures not stored"
from_pool=$(q "$W/a.db" "select json_extract(outputs, '$.from_pool') from runs where program = 'rejection_sample' and iteration = 2")
[ "$from_pool" -gt 0 ] || fail "no prompt kept an answer of iteration 1 (6 candidates against 2 new each)"
# pooling: the kept answer is the best over both iterations' answers; each pair is it against a worse one
not_argmax "$W/a.db" 2 >"$W/n"
[ "$(sed -n 1p "$W/n")" -eq 0 ] && [ "$(sed -n 2p "$W/n")" -eq "$P" ] ||
    fail "pooled: of $(sed -n 2p "$W/n") kept answers (want $P), $(sed -n 1p "$W/n") are not the best of both iterations"
[ "$(wc -l <"$W/pairs.jsonl")" -ge 1 ] || fail "no pairs emitted"
grep -v -q '^{"prompt":{"dialogue":.*"response_a":.*"response_b":.*"response_a_id":[0-9]*,"response_b_id":[0-9]*}$' "$W/pairs.jsonl" &&
    fail "not a pair record: $(head -n 1 "$W/pairs.jsonl")"
sed -n 's/.*"response_a_id":\([0-9]*\),"response_b_id":\([0-9]*\)}$/\1 \2/p' "$W/pairs.jsonl" >"$W/ids"
while read -r a b; do
    [ "$(q "$W/a.db" "select (select prompt_id from responses where id = $a) = (select prompt_id from responses where id = $b)
        and (select text from responses where id = $a) != (select text from responses where id = $b)")" -eq 1 ] ||
        fail "pair $a $b: not two different answers to one prompt"
done <"$W/ids"
[ "$(q "$W/a.db" "select count(*) from sft_examples where iteration = 2")" -eq "$P" ] || fail "iteration 2 kept answers"
"$BIN/toyworld" rate "$W/pairs.jsonl" 2>/dev/null | "$BIN/prefs_db" --db "$W/a.db" import - >/dev/null 2>"$W/err" ||
    fail "rate | prefs_db import: $(cat "$W/err")"
[ "$(q "$W/a.db" 'select count(*) from comparisons')" -eq $((2 * $(wc -l <"$W/pairs.jsonl"))) ] ||
    fail "want a comparison per pair and dimension"

# --candidates: one response record per candidate (P prompts x 2 samples x 2 temperatures, and the P x 4
# pooled answers of iteration 1), read back with SQLite's JSON functions next to the store.
# cands SQL: runs SQL in a.db with c(...) = the candidates file's records.
cands() {
    q "$W/a.db" "
    with f as (select value as r from json_each('[' || rtrim(replace(cast(readfile('$W/cand.jsonl') as text), char(10), ','), ',') || ']')),
         c as (select json_extract(r, '\$.type') as type, json_extract(r, '\$.id') as id, json_extract(r, '\$.prompt.id') as prompt_id,
                      json_extract(r, '\$.text') as text, json_extract(r, '\$.iteration') as iteration,
                      json_extract(r, '\$.temperature') as temperature, json_extract(r, '\$.sample') as sample,
                      json_extract(r, '\$.pooled') as pooled, json_extract(r, '\$.kept') as kept, json_extract(r, '\$.reward') as reward,
                      json_extract(r, '\$.reward_helpfulness') as rh, json_extract(r, '\$.reward_safety') as rs from f)
    $1"
}
[ "$(wc -l <"$W/cand.jsonl")" -eq $((P * 2 * 2 + P * 4)) ] || fail "--candidates: $(wc -l <"$W/cand.jsonl") lines, want $((P * 8))"
[ "$(cands "select count(*) from c where type = 'response' and pooled = 0 and iteration = 2 and sample in (0, 1)
    and temperature in (0.8, 1.4)")" -eq $((P * 4)) ] || fail "--candidates: want $P x 2 x 2 new samples numbered 0..1 per temperature"
[ "$(cands "select count(distinct prompt_id || ' ' || temperature || ' ' || sample) from c where pooled = 0")" -eq $((P * 4)) ] ||
    fail "--candidates: a (prompt, temperature, sample) twice"
[ "$(cands "select count(*) from c where pooled = 1 and sample is null and iteration = 1")" -eq $((P * 4)) ] ||
    fail "--candidates: want the $P x 4 answers of iteration 1 marked pooled, without a sample number"
[ "$(cands "select count(*) from (select prompt_id from c group by prompt_id having sum(kept) = 1)")" -eq "$P" ] ||
    fail "--candidates: want exactly one kept candidate for each of the $P prompts"
[ "$(cands "select count(*) from c k where k.kept and k.reward < (select max(d.reward) from c d where d.prompt_id = k.prompt_id)")" -eq 0 ] ||
    fail "--candidates: a kept candidate without its prompt's highest reward"
[ "$(cands "select count(*) from c where kept and id in
    (select json_extract(tags, '\$.response_id') from sft_examples where source = 'rs' and iteration = 2)")" -eq "$P" ] ||
    fail "--candidates: the kept candidates are not the rs examples of iteration 2"
# the text and prompt of its response row, the scores stored for it, the gated reward from them
cands "select count(*) from c left join responses r on r.id = c.id left join prompts p on p.id = r.prompt_id
    left join scores h on h.response_id = c.id and h.model = '$W/rm_helpfulness'
    left join scores f on f.response_id = c.id and f.model = '$W/rm_safety'
    where r.text is not c.text or r.prompt_id is not c.prompt_id or h.score is not c.rh or f.score is not c.rs
       or c.reward is not case when coalesce(json_extract(p.tags, '\$.risk'), '') = 'adversarial'
                                or 1.0 / (1.0 + exp(-f.score)) < 0.15 then f.score else h.score end" >"$W/n"
[ "$(cat "$W/n")" -eq 0 ] || fail "--candidates: $(cat "$W/n") records disagree with the store's responses and scores"
"$BIN/toyworld" score "$W/cand.jsonl" >"$W/cand_oracle.jsonl" 2>"$W/err" || fail "toyworld score cannot read the candidates: $(cat "$W/err")"
[ "$(grep -c '"helpfulness":[0-9]' "$W/cand_oracle.jsonl")" -eq $((P * 8)) ] ||
    fail "toyworld score: want a helpfulness for each of the $((P * 8)) candidates: $(head -n 2 "$W/cand_oracle.jsonl")"
ls "$W"/cand.jsonl.tmp.* >/dev/null 2>&1 && fail "--candidates left its temporary file"

# ---- iteration 3: --pool best: only the answers earlier iterations kept compete with the new ones ----------
kept_before=$(q "$W/a.db" "select count(distinct json_extract(tags, '\$.response_id')) from sft_examples where source = 'rs' and iteration < 3")
[ "$kept_before" -ge "$P" ] || fail "rs examples of iterations 1-2 lack tags.response_id"
"$R" --model "$M" --rm-helpfulness "$RH" --rm-safety "$RS" -K 2 --set sample.max_new=20 \
    --db "$W/a.db" --iteration 3 --pool best --threads 1 >/dev/null 2>"$W/err" || fail "--pool best: $(cat "$W/err")"
grep -q "pooled $kept_before answers of earlier iterations" "$W/err" || fail "--pool best pooled other than the $kept_before kept answers: $(cat "$W/err")"
# each kept answer is the arg-max of the combined reward over the new samples and the earlier kept answers
q "$W/a.db" "
    with k as (select json_extract(tags, '\$.response_id') as id from sft_examples where source = 'rs' and iteration < 3),
         c as (select r.id, r.prompt_id,
                      case when coalesce(json_extract(p.tags, '\$.risk'), '') = 'adversarial'
                             or 1.0 / (1.0 + exp(-f.score)) < 0.15 then f.score else h.score end as rank
               from responses r join prompts p on p.id = r.prompt_id
               join scores h on h.response_id = r.id and h.model = '$W/rm_helpfulness'
               join scores f on f.response_id = r.id and f.model = '$W/rm_safety'
               where r.iteration = 3 or r.id in (select id from k)),
         e as (select json_extract(tags, '\$.response_id') as id from sft_examples where source = 'rs' and iteration = 3)
    select count(*) from e where e.id not in (select id from c)
        or (select rank from c where c.id = e.id) < (select max(d.rank) from c d where d.prompt_id = (select prompt_id from c where c.id = e.id)) - 1e-6
    union all select count(*) from e" >"$W/n"
[ "$(sed -n 1p "$W/n")" -eq 0 ] && [ "$(sed -n 2p "$W/n")" -eq "$P" ] ||
    fail "--pool best: of $(sed -n 2p "$W/n") kept answers (want $P), $(sed -n 1p "$W/n") are not the best of the new and the earlier kept ones"

# ---- one reward model; the sft round on the kept answers ----------------------------------------------
"$R" --model "$M" --rm-helpfulness "$RH" -K 3 --set sample.max_new=20 --db "$W/d.db" --config configs/rejection_sample.yaml \
    --threads 1 "$W/prompts.jsonl" >/dev/null 2>"$W/err" || fail "helpfulness model only: $(cat "$W/err")"
q "$W/d.db" "select count(*) from sft_examples e where json_extract(e.dialogue, '\$[#-1].content') is not (
    select r.text from responses r join scores s on s.response_id = r.id join prompts p on p.id = r.prompt_id
    where p.dialogue = json_remove(e.dialogue, '\$[#-1]') and p.system = e.system order by s.score desc, r.id limit 1)" >"$W/n"
[ "$(cat "$W/n")" -eq 0 ] || fail "$(cat "$W/n") kept answers are not the helpfulness arg-max"
"$BIN/sft" --config configs/rejection_sample_sft.yaml --init "$M" --db "$W/d.db" --set data.iteration=1 \
    --set train.steps=2 --set train.seq_len=64 --set train.batch_size=4 --set train.save_every=0 --set train.eval_every=0 \
    --threads 1 --out "$W/rs_sft" >/dev/null 2>"$W/err" || fail "sft on the rs examples: $(cat "$W/err")"
[ -f "$W/rs_sft/ckpt/model.safetensors" ] || fail "sft on rs wrote no checkpoint"

# ---- errors --------------------------------------------------------------------------------------------
expect 2 "--model DIR is required" --rm-helpfulness "$RH" "$W/prompts.jsonl"
expect 2 "unknown option '--bogus'" --bogus --model "$M"
expect 2 "no reward model" --model "$M" --db "$W/e.db" "$W/prompts.jsonl"
expect 2 "--emit: expected jsonl" --model "$M" --rm-helpfulness "$RH" --emit csv "$W/prompts.jsonl"
expect 2 "--candidates: give a file name" --model "$M" --rm-helpfulness "$RH" --candidates - "$W/prompts.jsonl"
expect 1 "--candidates: .*nodir/c.jsonl.tmp.[0-9]*: cannot create" --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" --candidates "$W/nodir/c.jsonl" "$W/prompts.jsonl"
[ -e "$W/e.db" ] && fail "an unwritable --candidates path is found only after the store was opened"
expect 2 "select.pool" --model "$M" --rm-helpfulness "$RH" --pool some "$W/prompts.jsonl"
expect 2 "sample.temperatures" --model "$M" --rm-helpfulness "$RH" --temperatures 0.8,hot "$W/prompts.jsonl"
expect 2 "sample.temperatures" --model "$M" --rm-helpfulness "$RH" --temperatures 0.8,-1 "$W/prompts.jsonl"
expect 2 "sample.temperatures: give at least one" --model "$M" --rm-helpfulness "$RH" --set 'sample.temperatures=[]' "$W/prompts.jsonl"
expect 2 "sample.k" --model "$M" --rm-helpfulness "$RH" -K 0 "$W/prompts.jsonl"
expect 2 "unknown key 'sample.temp'" --model "$M" --rm-helpfulness "$RH" --set sample.temp=1 "$W/prompts.jsonl"
expect 2 "--iteration" --model "$M" --rm-helpfulness "$RH" --iteration x "$W/prompts.jsonl"
expect 2 "$M" --model "$M" --rm-helpfulness "$M" --db "$W/e.db" "$W/prompts.jsonl"
expect 2 "not a policy" --model "$RH" --rm-helpfulness "$RH" --db "$W/e.db" "$W/prompts.jsonl"
expect 2 "nothing" --model "$W/nothing" --rm-helpfulness "$RH" "$W/prompts.jsonl"
expect 2 "no prompts to sample" --model "$M" --rm-helpfulness "$RH" --db "$W/a.db" --set data.split=dev --candidates "$W/none.jsonl"
[ -n "$(ls "$W"/none.jsonl* 2>/dev/null)" ] && fail "a failed run left a candidates file: $(ls "$W"/none.jsonl*)"
printf '%s\n' "$(head -n 1 "$W/prompts.jsonl")" '{"dialogue":[{"role":"user","content":"hi"}],"colour":"red"}' >"$W/bad1.jsonl"
expect 2 'bad1.jsonl:2: "colour": unknown field' --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" "$W/bad1.jsonl"
[ "$(q "$W/e.db" 'select count(*) from prompts')" -eq 0 ] || fail "a bad file left prompts in the store"
printf '{"type":"response","dialogue":[]}\n' >"$W/bad2.jsonl"
expect 2 'bad2.jsonl:1: "type": expected "prompt"' --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" "$W/bad2.jsonl"
printf '{"dialogue":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n' >"$W/bad3.jsonl"
expect 2 "bad3.jsonl:1: .*dialogue" --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" "$W/bad3.jsonl"
printf '{"dialogue": [\n' >"$W/bad4.jsonl"
expect 2 "bad4.jsonl:1: " --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" "$W/bad4.jsonl"
printf '[1, 2]\n' >"$W/bad5.jsonl"
expect 2 "bad5.jsonl:1: expected a JSON object" --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" "$W/bad5.jsonl"
printf '{"dialogue":[{"role":"user","content":"hi"}],"tags":"x"}\n' >"$W/bad6.jsonl"
expect 2 'bad6.jsonl:1: "tags": expected an object' --model "$M" --rm-helpfulness "$RH" --db "$W/e.db" "$W/bad6.jsonl"
(mkdir "$W/empty" && cd "$W/empty" && set +e && "$R" --model "$M" --rm-helpfulness "$RH" >/dev/null 2>"$W/err"; echo $? >"$W/rc")
[ "$(cat "$W/rc")" -eq 2 ] && grep -q "no store at ./prefs.db" "$W/err" || fail "no input and no store: $(cat "$W/err")"
"$R" --help | grep -q "reward.safety_threshold" || fail "--help lacks the config keys"
"$R" --help | grep -q -- "--candidates FILE" || fail "--help lacks --candidates"
"$R" --version | grep -q "^rejection_sample (rlhf.c)" || fail "--version"
echo "test_rejection_sample: ok"
