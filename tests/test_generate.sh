#!/bin/sh
# generate end to end on a tiny model pretrained here: JSONL prompts -> K response records that
# prefs_db imports; the same bytes for any batch size and thread count; prompts from the store and
# responses into it, with the run recorded; the --interactive chat and its commands; every usage and
# input error with its exit status.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
G="$BIN/generate"
W=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
. tests/interrupt.sh

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a prefixed error as the last stderr line.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$G" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "generate $*: exit $got, want $want: $(cat "$W/err")"
    tail -n 1 "$W/err" | grep -q "^generate: .*$needle" || fail "generate $*: '$(tail -n 1 "$W/err")' lacks '$needle'"
}

"$BIN/toyworld" corpus --tokens 20000 >"$W/corpus.txt"
"$BIN/tokenizer_train" --vocab 512 --out "$W/tok.bin" "$W/corpus.txt" >/dev/null
"$BIN/sft" --pretrain --config configs/sft_tiny.yaml --tokenizer "$W/tok.bin" --threads 1 --out "$W/base" \
    "$W/corpus.txt" >/dev/null 2>&1 || fail "pretraining the test model"
M="$W/base/ckpt"
"$BIN/toyworld" prompts --n 12 --split test >"$W/prompts.jsonl"

# ---- JSONL in, JSONL out -------------------------------------------------------------------------
set -- --model "$M" -K 3 --set sample.max_new=24 --threads 1
"$G" "$@" --set sample.batch=1 "$W/prompts.jsonl" >"$W/b1.jsonl" 2>"$W/err" || fail "generate: $(cat "$W/err")"
skipped=$(grep -c "skipped" "$W/err" || true)
[ "$(wc -l <"$W/b1.jsonl")" -eq $(((12 - skipped) * 3)) ] || fail "want 3 responses per prompt: $(wc -l <"$W/b1.jsonl")"
grep -q "responses (.* ended by EOS), .* tokens/s" "$W/err" || fail "no summary line: $(cat "$W/err")"
grep -v -q '^{"type":"response","prompt":{"dialogue":\[.*"text":".*","model":"'"$W"'/base","iteration":0,"temperature":' "$W/b1.jsonl" &&
    fail "not a response record: $(head -n 1 "$W/b1.jsonl")"
# the configuration's doubles as written in it: 0.7, not 0.69999999999999996
grep -v -q '"temperature":0.7,"top_p":0.9}$' "$W/b1.jsonl" && fail "temperature and top_p: $(head -n 1 "$W/b1.jsonl")"
# any batch size, any thread count, stdin: the same bytes
"$G" "$@" --set sample.batch=7 "$W/prompts.jsonl" >"$W/b7.jsonl" 2>/dev/null
cmp -s "$W/b1.jsonl" "$W/b7.jsonl" || fail "batch 1 and batch 7 differ"
"$G" --model "$M" -K 3 --set sample.max_new=24 --threads 2 --set sample.batch=5 - <"$W/prompts.jsonl" >"$W/t2.jsonl" 2>/dev/null
cmp -s "$W/b1.jsonl" "$W/t2.jsonl" || fail "two threads and batch 5 differ from one thread and batch 1"
# another seed, other answers; three samples of a prompt are not all the same
"$G" "$@" --seed 9 "$W/prompts.jsonl" >"$W/s9.jsonl" 2>/dev/null
cmp -s "$W/b1.jsonl" "$W/s9.jsonl" && fail "--seed changed nothing"
[ "$(sed -n 's/.*"text":"\([^"]*\)".*/\1/p' "$W/b1.jsonl" | sort -u | wc -l)" -gt 3 ] || fail "samples hardly differ"
# greedy: K answers of one prompt are identical
"$G" --model "$M" -K 2 --set sample.temperature=0 --set sample.max_new=16 --threads 1 "$W/prompts.jsonl" >"$W/g.jsonl" 2>/dev/null
[ "$(sed -n 1p "$W/g.jsonl")" = "$(sed -n 2p "$W/g.jsonl")" ] || fail "greedy samples differ"
# the records are what prefs_db imports
"$BIN/prefs_db" --db "$W/p.db" import - <"$W/b1.jsonl" >/dev/null 2>&1 || fail "prefs_db cannot import the responses"
# -K N and --system TEXT are --set sample.k=N and --set system=TEXT in their place: the later one wins
head -n 1 "$W/prompts.jsonl" >"$W/one.jsonl"
set -- --model "$M" --set sample.max_new=2 --threads 1 "$W/one.jsonl"
[ "$("$G" "$@" -K 3 --set sample.k=2 2>/dev/null | wc -l)" -eq 2 ] || fail "-K 3 --set sample.k=2: want 2 answers"
[ "$("$G" "$@" --set sample.k=2 -K 3 2>/dev/null | wc -l)" -eq 3 ] || fail "--set sample.k=2 -K 3: want 3 answers"
[ "$("$G" "$@" -K 3 -K 1 2>/dev/null | wc -l)" -eq 1 ] || fail "-K 3 -K 1: want 1 answer"
set -- --model "$M" --interactive --threads 1
"$G" "$@" --system A --set system=B </dev/null 2>&1 | grep -q "; system: B$" || fail "--system A --set system=B: want B"
"$G" "$@" --set system=B --system A </dev/null 2>&1 | grep -q "; system: A$" || fail "--set system=B --system A: want A"

# ---- the store -----------------------------------------------------------------------------------
"$BIN/prefs_db" --db "$W/q.db" import "$W/prompts.jsonl" >/dev/null 2>&1
"$G" --model "$M" --db "$W/q.db" -K 2 --emit store --iteration 1 --set sample.max_new=16 --threads 1 \
    >"$W/out" 2>"$W/err" || fail "--emit store: $(cat "$W/err")"
[ ! -s "$W/out" ] || fail "--emit store wrote to stdout"
"$BIN/prefs_db" --db "$W/q.db" export --table responses >"$W/resp.jsonl"
n_prompts=$("$BIN/prefs_db" --db "$W/q.db" export --table prompts | wc -l)
skipped=$(grep -c "skipped" "$W/err" || true)
[ "$(wc -l <"$W/resp.jsonl")" -eq $(((n_prompts - skipped) * 2)) ] || fail "want 2 stored responses per prompt"
grep -q '"model":"'"$W"'/base","iteration":1' "$W/resp.jsonl" || fail "model/iteration not stored: $(head -n 1 "$W/resp.jsonl")"
"$BIN/prefs_db" --db "$W/q.db" export --table runs | grep -q '"program":"generate".*"status":"ok"' || fail "run not recorded"
# JSONL prompts into a new store: each prompt stored once, K responses to it
"$G" --model "$M" --db "$W/r.db" -K 2 --emit store --set sample.max_new=8 --threads 1 "$W/prompts.jsonl" 2>"$W/err" ||
    fail "JSONL prompts --emit store: $(cat "$W/err")"
skipped=$(grep -c "skipped" "$W/err" || true)
n_distinct=$(sort -u "$W/prompts.jsonl" | wc -l)
"$BIN/prefs_db" --db "$W/r.db" export --table responses >"$W/resp2.jsonl"
[ "$(wc -l <"$W/resp2.jsonl")" -eq $(((12 - skipped) * 2)) ] || fail "want 2 stored responses per JSONL prompt"
[ "$("$BIN/prefs_db" --db "$W/r.db" export --table prompts | wc -l)" -le "$n_distinct" ] || fail "prompts stored twice"
# all or nothing: killed after its first chunk of 256 prompts (which each committed on its own before,
# so that the stage's rerun added a whole set on top), a run leaves no response; a rerun stores one set
"$BIN/toyworld" prompts --n 3000 --split train | "$BIN/prefs_db" --db "$W/k.db" import - >/dev/null 2>&1
n_prompts=$(sqlite3 "$W/k.db" 'select count(*) from prompts')
[ "$n_prompts" -gt 1024 ] || fail "want more than 4 chunks of prompts, got $n_prompts"
set -- "$G" --model "$M" --db "$W/k.db" --emit store -K 3 --iteration 2 --set sample.max_new=24 --threads 1
kill_at KILL "^generate: 256/" "$W/err" "$@"
[ "$(sqlite3 "$W/k.db" 'select count(*) from responses')" -eq 0 ] || fail "a killed run left responses in the store"
[ "$(sqlite3 "$W/k.db" "select status from runs where program = 'generate'")" = running ] || fail "the killed run's row"
"$@" 2>"$W/err" || fail "rerun after the kill: $(cat "$W/err")"
skipped=$(grep -c "skipped" "$W/err" || true)
grep -q "^generate: $(((n_prompts - skipped) * 3)) responses stored in one transaction" "$W/err" ||
    fail "the store line: $(tail -n 2 "$W/err")"
[ "$(sqlite3 "$W/k.db" 'select count(*), min(n), max(n) from (select count(*) as n from responses group by prompt_id)')" = \
    "$((n_prompts - skipped))|3|3" ] || fail "after the rerun, want 3 responses for each of $((n_prompts - skipped)) prompts"
# store prompts to JSONL, filtered, carrying their store ids
"$G" --model "$M" --db "$W/q.db" --set data.limit=2 --set name=tiny --set sample.max_new=8 --threads 1 >"$W/out" 2>/dev/null
[ "$(wc -l <"$W/out")" -eq 2 ] || fail "data.limit=2: $(wc -l <"$W/out") lines"
grep -q '"id":1}' "$W/out" && grep -q '"model":"tiny"' "$W/out" || fail "store prompt ids or name missing: $(head -n 1 "$W/out")"

# ---- the chat -------------------------------------------------------------------------------------
cat >"$W/chat.txt" <<'EOF'
What colour is the egg?

What is two plus three?
/bogus
/system Always answer as a pirate.
What does the cat eat?
/reset
/quit
What is never asked?
EOF
"$G" --model "$M" --interactive --set sample.max_new=12 --threads 1 <"$W/chat.txt" >"$W/chat.out" 2>"$W/chat.err" ||
    fail "--interactive: $(cat "$W/chat.err")"
[ "$(wc -l <"$W/chat.out")" -eq 3 ] || fail "want 3 answers: $(cat "$W/chat.out")"
grep -q "unknown command /bogus" "$W/chat.err" || fail "unknown command not reported"
grep -q "system prompt: Always answer as a pirate." "$W/chat.err" || fail "/system not acknowledged"
[ "$(grep -c "new dialogue" "$W/chat.err")" -eq 2 ] || fail "/system and /reset each start a new dialogue"
"$G" --model "$M" --interactive --set sample.max_new=12 --threads 1 <"$W/chat.txt" >"$W/chat2.out" 2>/dev/null
cmp -s "$W/chat.out" "$W/chat2.out" || fail "the same session gave other answers"
# a long chat outgrows the context: old exchanges are dropped, the chat goes on
i=0; : >"$W/long.txt"
while [ $i -lt 12 ]; do echo "Tell me a story about Tom and a cat in five sentences please." >>"$W/long.txt"; i=$((i + 1)); done
"$G" --model "$M" --interactive --set sample.max_new=12 --threads 1 <"$W/long.txt" >"$W/long.out" 2>"$W/long.err" ||
    fail "long chat: $(cat "$W/long.err")"
[ "$(wc -l <"$W/long.out")" -eq 12 ] || fail "long chat: want 12 answers"
grep -q "dropped the oldest exchange" "$W/long.err" || fail "long chat never dropped an exchange"

# ---- errors --------------------------------------------------------------------------------------
expect 2 "--model DIR is required" "$W/prompts.jsonl"
expect 2 "unknown option '--bogus'" --bogus --model "$M"
expect 2 "nothing" --model "$W/nothing" "$W/prompts.jsonl"
expect 2 "--emit: expected jsonl or store" --model "$M" --emit csv "$W/prompts.jsonl"
expect 2 "--interactive reads the chat from stdin" --model "$M" --interactive "$W/prompts.jsonl"
expect 2 "unknown key 'sample.temp'" --model "$M" --set sample.temp=1 "$W/prompts.jsonl"
expect 2 "sample.top_p" --model "$M" --set sample.top_p=0 "$W/prompts.jsonl"
expect 2 "sample.k" --model "$M" -K 0 "$W/prompts.jsonl"
printf '%s\n' "$(head -n 1 "$W/prompts.jsonl")" '{"dialogue":[{"role":"user","content":"hi"}],"colour":"red"}' >"$W/bad1.jsonl"
expect 2 'bad1.jsonl:2: "colour": unknown field' --model "$M" "$W/bad1.jsonl"
printf '{"type":"response","dialogue":[]}\n' >"$W/bad2.jsonl"
expect 2 'bad2.jsonl:1: "type": expected "prompt"' --model "$M" "$W/bad2.jsonl"
printf '{"dialogue":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n' >"$W/bad3.jsonl"
expect 2 "bad3.jsonl:1: .*dialogue" --model "$M" "$W/bad3.jsonl"
printf '{"dialogue": [\n' >"$W/bad4.jsonl"
expect 2 "bad4.jsonl:1: " --model "$M" "$W/bad4.jsonl"
(mkdir "$W/empty" && cd "$W/empty" && set +e && "$G" --model "$M" >/dev/null 2>"$W/err"; echo $? >"$W/rc")
[ "$(cat "$W/rc")" -eq 2 ] && grep -q "no store at ./prefs.db" "$W/err" || fail "no input and no store: $(cat "$W/err")"
"$G" --help | grep -q "sample.top_p" || fail "--help lacks the config keys"
"$G" --version | grep -q "^generate (rlhf.c)" || fail "--version"
echo "test_generate: ok"
