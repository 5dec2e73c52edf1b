#!/bin/sh
# gatt_augment end to end on a tiny toyworld model: the synthesised examples' shape (instruction only as
# the first turn's system prompt, loss on the last answer, source gatt, terse forms about half the time),
# determinism (same seed: same bytes, whatever the batch size; another seed: other examples), examples
# into the store and sft training on them, the eval table against toyworld's own oracle, its metrics in
# the store and its TSV/plot, and every usage and input error with its exit status.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
G="$BIN/gatt_augment"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
. tests/interrupt.sh

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error line at the end of stderr.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$G" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "gatt_augment $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^gatt_augment: .*$needle" || fail "gatt_augment $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}

# ---- a tiny chat model: BPE, a little pretraining, a little SFT on demonstrations ------------------
"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
"$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt" >/dev/null
"$BIN/sft" --pretrain --out "$W/base" --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" \
    --set model.max_seq_len=256 --set train.steps=40 --threads 1 "$W/corpus.txt" >/dev/null 2>&1 || fail "pretraining"
"$BIN/toyworld" demos --n 200 --set prompts.max_turns=5 >"$W/demos.jsonl"
"$BIN/sft" --out "$W/sft" --init "$W/base/ckpt" --config configs/sft_tiny.yaml --set train.seq_len=192 \
    --set train.steps=40 --threads 1 "$W/demos.jsonl" >/dev/null 2>&1 || fail "sft"
M="$W/sft/ckpt"

# multi-turn dialogues (train) and held-out system-instruction dialogues (test)
"$BIN/toyworld" prompts --n 400 --set prompts.max_turns=5 | grep '"category":"system"' | head -n 40 >"$W/train.jsonl"
"$BIN/toyworld" prompts --n 800 --split test --set prompts.max_turns=5 | grep '"category":"system"' | head -n 30 >"$W/test.jsonl"
[ "$(wc -l <"$W/train.jsonl")" -eq 40 ] && [ "$(wc -l <"$W/test.jsonl")" -eq 30 ] || fail "toyworld gave too few dialogues"

# ---- synth -----------------------------------------------------------------------------------------
set -- --config configs/gatt_augment.yaml --model "$M" --threads 1 --set sample.max_new=24
"$G" synth "$@" "$W/train.jsonl" >"$W/g1.jsonl" 2>"$W/err" || fail "synth: $(cat "$W/err")"
grep -q "^gatt_augment: [0-9]* examples ([0-9]* terse) from 40 dialogues" "$W/err" || fail "synth summary: $(cat "$W/err")"
n=$(wc -l <"$W/g1.jsonl")
[ "$n" -ge 5 ] || fail "only $n examples from 40 dialogues: $(cat "$W/err")"
# determinism: same seed -> same bytes, also with another batch size and thread count; another seed differs
"$G" synth "$@" --set sample.batch=3 "$W/train.jsonl" >"$W/g2.jsonl" 2>/dev/null || fail "synth batch 3"
cmp -s "$W/g1.jsonl" "$W/g2.jsonl" || fail "sample.batch changed the examples"
"$G" synth "$@" --threads 2 - <"$W/train.jsonl" >"$W/g3.jsonl" 2>/dev/null || fail "synth from stdin"
cmp -s "$W/g1.jsonl" "$W/g3.jsonl" || fail "stdin or 2 threads changed the examples"
"$G" synth "$@" --seed 2 "$W/train.jsonl" >"$W/g4.jsonl" 2>/dev/null || fail "synth seed 2"
cmp -s "$W/g1.jsonl" "$W/g4.jsonl" && fail "--seed changed nothing"

# into the store, recorded; every example's shape checked there with SQLite's JSON functions
"$BIN/prefs_db" --db "$W/p.db" import "$W/train.jsonl" >/dev/null 2>&1 || fail "import prompts"
"$G" synth "$@" --db "$W/p.db" --emit store --iteration 3 >"$W/out" 2>"$W/err" || fail "synth to store: $(cat "$W/err")"
q() { sqlite3 "$W/p.db" "$1"; }
ns=$(sed -n 's/^gatt_augment: \([0-9]*\) examples .*/\1/p' "$W/err")
[ -n "$ns" ] && [ "$ns" -ge 5 ] && [ "$(q "select count(*) from sft_examples where source = 'gatt' and iteration = 3")" -eq "$ns" ] ||
    fail "the store holds other examples than synth wrote: $(cat "$W/err")"
n=$ns
q "select program, status from runs" | grep -q "^gatt_augment|ok$" || fail "synth run not recorded"
# loss on the last answer only: loss_turns = [turns - 1]
[ "$(q "select count(*) from sft_examples where source = 'gatt' and
        loss_turns != '[' || (json_array_length(dialogue) / 2 - 1) || ']'")" -eq 0 ] || fail "loss_turns is not the last turn"
# the instruction is nowhere in the turns (only the system prompt), and no <<SYS>> block leaked in
[ "$(q "select count(*) from sft_examples e, json_each(e.dialogue) t where e.source = 'gatt' and
        (instr(t.value ->> 'content', e.system) > 0 or instr(t.value ->> 'content', '<<SYS>>') > 0)")" -eq 0 ] ||
    fail "the instruction is attached to a turn of a training example"
# the user turns are exactly those of an input dialogue (the assistant turns are the model's)
[ "$(q "with ex as (select (select group_concat(t.value ->> 'content', '|') from json_each(e.dialogue) t
                            where t.value ->> 'role' = 'user') u from sft_examples e where e.source = 'gatt'),
             pr as (select (select group_concat(t.value ->> 'content', '|') from json_each(p.dialogue) t
                            where t.value ->> 'role' = 'user') u from prompts p)
        select count(*) from ex where not exists (select 1 from pr where pr.u = ex.u)")" -eq 0 ] ||
    fail "an example's user turns are not an input's"
# the system prompt is the full or terse form the tags name, and about half are terse
[ "$(q "select count(*) from sft_examples where source = 'gatt' and system != case tags ->> 'terse'
        when 0 then case tags ->> 'instruction' when 'pirate' then 'Always answer as a pirate.'
                     when 'question' then 'Always end your answer with a question.'
                     when 'hobby' then 'Only speak about ' || (tags ->> 'value') || '.'
                     else 'Always call me ' || (tags ->> 'value') || '.' end
        else case tags ->> 'instruction' when 'pirate' then 'Style: pirate.' when 'question' then 'End: question.'
                     when 'hobby' then 'Topic: ' || (tags ->> 'value') || '.'
                     else 'Name: ' || (tags ->> 'value') || '.' end end")" -eq 0 ] || fail "system prompt and tags disagree"
terse=$(q "select count(*) from sft_examples where source = 'gatt' and tags ->> 'terse'")
[ $((terse * 5)) -gt "$n" ] && [ $((terse * 5)) -lt $((4 * n)) ] || fail "$terse of $n examples terse"
# sft trains on the store's gatt examples with the masks they carry
"$BIN/sft" --out "$W/ft" --db "$W/p.db" --init "$M" --config configs/sft_tiny.yaml --set train.seq_len=192 \
    --set 'data.sources=[gatt]' --set train.steps=10 --threads 1 >"$W/out" 2>"$W/err" || fail "sft on gatt examples: $(cat "$W/err")"
# all or nothing: killed after the first turn of its rollout, synth leaves no example (they go into the
# store in one transaction after the last turn); a rerun stores exactly one set
"$BIN/toyworld" prompts --n 8000 --set prompts.max_turns=5 | grep '"category":"system"' | head -n 1000 >"$W/many.jsonl"
set -- "$G" synth --config configs/gatt_augment.yaml --model "$M" --threads 1 --set sample.max_new=32 --db "$W/k.db" \
    --emit store --iteration 3 "$W/many.jsonl"
kill_at KILL "^gatt_augment: turn 1: " "$W/err" "$@"
[ "$(sqlite3 "$W/k.db" 'select count(*) from sft_examples')" -eq 0 ] || fail "a killed synth left examples in the store"
"$@" 2>"$W/err" || fail "synth after the kill: $(cat "$W/err")"
nk=$(sed -n 's/^gatt_augment: \([0-9]*\) examples .*/\1/p' "$W/err")
[ -n "$nk" ] && [ "$nk" -ge 1 ] && [ "$(sqlite3 "$W/k.db" "select count(*) from sft_examples where source = 'gatt'")" -eq "$nk" ] ||
    fail "after the rerun, the store holds other examples than synth wrote: $(tail -n 1 "$W/err")"

# ---- eval ------------------------------------------------------------------------------------------
"$G" eval --config configs/gatt_augment.yaml --model "$M" --model "$W/ft/ckpt" --label before --label after \
    --db "$W/p.db" --out "$W/ev" --threads 1 --set sample.max_new=24 "$W/test.jsonl" >"$W/table" 2>"$W/err" ||
    fail "eval: $(cat "$W/err")"
head -n 1 "$W/table" | grep -q "^turn  *dialogues  *before  *after$" || fail "table header: $(cat "$W/table")"
grep -q "^1  *30 " "$W/table" || fail "turn 1 of 30 dialogues: $(cat "$W/table")"
grep -q "^4+ " "$W/table" || fail "no pooled row: $(cat "$W/table")"
[ -s "$W/ev/adherence.tsv" ] && [ -s "$W/ev/adherence.gp" ] && [ -s "$W/ev/dialogues-1.jsonl" ] || fail "eval files"
if command -v gnuplot >/dev/null; then [ -s "$W/ev/adherence.png" ] || fail "no plot"; fi
# our adherence check agrees with toyworld's oracle, turn by turn
"$BIN/toyworld" score --summary "$W/ev/dialogues-1.jsonl" >"$W/oracle"
awk -F '\t' 'NR > 1 && $3 != "nan" { printf "%d %.3f\n", $1, $3 }' "$W/ev/adherence.tsv" >"$W/ours"
awk -F '|' '/^\| [0-9]+ \| [0-9]+ \| [0-9.]+ \|$/ && seen { printf "%d %.3f\n", $2, $4 } /instruction adherence/ { seen = 1 }' \
    "$W/oracle" >"$W/theirs"
[ -s "$W/theirs" ] && cmp -s "$W/ours" "$W/theirs" || fail "adherence differs from toyworld score: $(paste "$W/ours" "$W/theirs")"
sqlite3 "$W/p.db" "select count(*) from metrics m join runs r on r.id = m.run_id where r.program = 'gatt_augment' and m.name = 'adherence/after' and m.step = 1" |
    grep -q '^1$' || fail "eval metrics not in the store"

# the same model twice, dialogues from stdin: read once, two equal columns (greedy answers are deterministic)
"$G" eval --model "$M" --model "$M" --label a --label b --threads 1 --set sample.max_new=24 - <"$W/test.jsonl" \
    >"$W/table3" 2>"$W/err" || fail "eval from stdin: $(cat "$W/err")"
awk 'NR > 1 && $3 != $4 { bad = 1 } END { exit bad || NR < 3 }' "$W/table3" || fail "two runs of one model differ: $(cat "$W/table3")"
grep -q "^1  *30 " "$W/table3" || fail "eval from stdin: $(cat "$W/table3")"

# eval from the store's held-out prompts (eval.split test), recorded as a run
"$BIN/prefs_db" --db "$W/p.db" import "$W/test.jsonl" >/dev/null 2>&1 || fail "import test prompts"
nt=$(q "select count(*) from prompts where split = 'test' and system != ''")
"$G" eval --config configs/gatt_augment.yaml --model "$M" --db "$W/p.db" --threads 1 --set sample.max_new=24 \
    >"$W/table2" 2>"$W/err" || fail "eval from the store: $(cat "$W/err")"
grep -q "^1  *$nt " "$W/table2" || fail "eval from the store: not the $nt test prompts: $(cat "$W/table2")"
[ "$(q "select count(*) from runs where program = 'gatt_augment' and status = 'ok'")" -eq 3 ] || fail "runs not recorded"

# ---- errors ----------------------------------------------------------------------------------------
expect 2 "a command is required" --model "$M"
expect 2 "unknown command 'mix'" mix --model "$M"
expect 2 "--model DIR is required" synth "$W/train.jsonl"
expect 2 "unknown option '--bogus'" synth --bogus
expect 2 "synth samples from one --model" synth --model "$M" --model "$M" "$W/train.jsonl"
expect 2 "more --label than --model" eval --model "$M" --label a --label b "$W/test.jsonl"
expect 2 "--emit: expected jsonl or store" synth --model "$M" --emit csv "$W/train.jsonl"
expect 2 "--emit store needs --db" synth --model "$M" --emit store "$W/train.jsonl"
expect 2 "unknown key 'synth.turns'" synth --model "$M" --set synth.turns=3 "$W/train.jsonl"
expect 2 "instructions.kinds\[1\]: unknown check 'shout'" forms --set 'instructions.kinds=["a | A. | a. | word a", "b | B. | b. | shout"]'
expect 2 "instructions.slots\[0\]: expected 'slot: value" forms --set 'instructions.slots=[hobby]'
printf '%s\n' "$(head -n 1 "$W/train.jsonl")" '{"dialogue":[{"role":"assistant","content":"x"}]}' >"$W/bad.jsonl"
expect 2 "bad.jsonl:2: dialogue\[0\]: expected role \"user\"" synth --model "$M" "$W/bad.jsonl"
printf '{"dialogue": [\n' >"$W/bad2.jsonl"
expect 2 "bad2.jsonl:1: " synth --model "$M" "$W/bad2.jsonl"
printf '{"dialogue":[{"role":"user","content":"hi"}],"system":7}\n' >"$W/bad3.jsonl"
expect 2 "bad3.jsonl:1: \"system\": expected a string" eval --model "$M" "$W/bad3.jsonl"
head -n 1 "$W/demos.jsonl" | sed 's/"system":"[^"]*",//' >"$W/nosys.jsonl"
expect 2 "no dialogue with a system prompt" eval --model "$M" "$W/nosys.jsonl"
expect 2 "missing/config.json: missing" synth --model "$W/missing" "$W/train.jsonl"
(cd "$W" && mkdir empty && cd empty && set +e && "$G" synth --model "$M" >/dev/null 2>"$W/err"; echo $? >"$W/rc")
[ "$(cat "$W/rc")" -eq 2 ] && grep -q "no store at ./prefs.db" "$W/err" || fail "no input and no store: $(cat "$W/err")"
"$G" --help | grep -q "instructions.terse_prob" || fail "--help lacks the config keys"
"$G" --version | grep -q "^gatt_augment (rlhf.c)" || fail "--version"
echo "test_gatt_augment: ok"
