#!/bin/sh
# prefs_db import/export/stats/split end to end: the hh-rlhf file, round trips, the bad-input
# fixtures (each must leave the database byte-for-byte as it was), --skip-bad, a newer schema,
# two importers at once. Needs BIN, DATA (see tests/run.sh) and the sqlite3 shell.
set -u
P="$BIN/prefs_db"
FX=tests/fixtures/prefs
HH="$DATA/hh-rlhf/harmless-base/test.jsonl.gz"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# The dump without schema_version, whose rows carry the time the file was created.
dump() { sqlite3 "$1" .dump | grep -v '^INSERT INTO schema_version'; }
q() { sqlite3 "$1" "$2"; }

# --- usage -----------------------------------------------------------------------------------------
"$P" --help >"$T/help" || fail "--help exit status"
for o in db format dimension split rating annotator model source iteration skip-bad table limit \
         test-fraction seed force rater help version; do
    grep -q -- "--$o" "$T/help" || fail "--help does not list --$o"
done
"$P" --version | grep -q 'schema version' || fail "--version"
"$P" --db "$T/u.db" frobnicate 2>"$T/err"; [ $? -eq 2 ] || fail "unknown command: exit status"
"$P" --db "$T/u.db" import --bogus x 2>"$T/err"; [ $? -eq 2 ] || fail "unknown option: exit status"
"$P" --db "$T/u.db" import --format hh-rlhf x 2>"$T/err"; [ $? -eq 2 ] || fail "hh-rlhf without --dimension"
grep -q -- '--dimension' "$T/err" || fail "hh-rlhf without --dimension: message"
"$P" --db "$T/u.db" export --format pku 2>"$T/err"; [ $? -eq 2 ] || fail "--format with export"
"$P" --db "$T/u.db" import "$T/missing.jsonl" 2>"$T/err"; [ $? -eq 2 ] || fail "missing input file"
grep -q "missing.jsonl" "$T/err" || fail "missing input file: message names it"

# --- hh-rlhf -----------------------------------------------------------------------------------------
lines=$(zcat "$HH" | wc -l)
start=$(date +%s.%N)
zcat "$HH" | "$P" --db "$T/hh.db" import --format hh-rlhf --dimension safety - 2>"$T/hh.err" \
    || { cat "$T/hh.err"; fail "hh-rlhf import"; }
end=$(date +%s.%N)
n=$(q "$T/hh.db" 'select count(*) from comparisons')
skipped=$(sed -n 's/.*; \([0-9]*\) skipped, 0 bad$/\1/p' "$T/hh.err")
[ -n "$skipped" ] || fail "hh-rlhf summary line: $(cat "$T/hh.err")"
[ "$((n + ${skipped:-0}))" -eq "$lines" ] || fail "hh-rlhf: $n comparisons + $skipped skipped != $lines lines"
[ "$n" -ge 2300 ] || fail "hh-rlhf: only $n comparisons"
rows=$(q "$T/hh.db" 'select (select count(*) from prompts) + (select count(*) from responses) + (select count(*) from comparisons)')
awk -v l="$lines" -v n="$n" -v k="$skipped" -v r="$rows" -v s="$start" -v e="$end" \
    'BEGIN { printf "hh-rlhf: %d lines, %d comparisons, %d skipped, %d rows in %.3f s (%.0f rows/s)\n", l, n, k, r, e - s, r / (e - s) }' 
grep 'skipped\|joined' "$T/hh.err" | sed 's/^/  /'
# Every stored pair has a prompt ending with the user and two different answers.
[ "$(q "$T/hh.db" "select count(*) from v_comparisons where chosen = rejected or json_extract((select dialogue from prompts where id = prompt_id), '\$[#-1].role') <> 'user'")" -eq 0 ] \
    || fail "hh-rlhf: a stored pair is malformed"
q "$T/hh.db" 'select * from v_comparisons limit 5' >/dev/null || fail "v_comparisons"
[ "$(q "$T/hh.db" "select rating_label from v_comparisons limit 1")" = "negligibly better / unsure" ] \
    || fail "v_comparisons rating_label"

# Rows that give no comparison are reported with their line and reason, and skipped.
"$P" --db "$T/skip.db" import --format hh-rlhf --dimension helpfulness "$FX/hh_skips.jsonl" 2>"$T/err" \
    || fail "hh_skips import: $(cat "$T/err")"
grep -q "hh_skips.jsonl:2: skipped: chosen and rejected differ before the last answer" "$T/err" || fail "prefix skip"
grep -q "hh_skips.jsonl:3: skipped: both answers are the same text" "$T/err" || fail "identical skip"
grep -q "hh_skips.jsonl:4: skipped: not a user/assistant dialogue ending with an answer" "$T/err" || fail "no-answer skip"
grep -q "1 rows had two turns of one role in a row" "$T/err" || fail "merge report"
[ "$(sqlite3 "$T/skip.db" "select chosen from v_comparisons where prompt = 'What is 2+2?'")" = "Let me think.

It is 4." ] || fail "merged answer"
[ "$(sqlite3 "$T/skip.db" 'select count(*) from comparisons')" -eq 2 ] || fail "hh_skips: 2 comparisons expected"

# --- stats -------------------------------------------------------------------------------------------
"$P" --db "$T/hh.db" stats >"$T/stats" || fail "stats"
grep -q "^comparisons	$n\$" "$T/stats" || fail "stats: comparisons row"
grep -q "^dimension	safety	$n	" "$T/stats" || fail "stats: dimension row"
grep -q "^safety	unlabelled	$n	" "$T/stats" || fail "stats: safety bin row"

# --- export, then import into a fresh store: the same rows ----------------------------------------------
"$P" --db "$T/hh.db" export >"$T/hh.jsonl" || fail "export"
"$P" --db "$T/hh2.db" import "$T/hh.jsonl" 2>/dev/null || fail "re-import of the export"
dump "$T/hh.db" >"$T/d1"
dump "$T/hh2.db" >"$T/d2"
cmp -s "$T/d1" "$T/d2" || fail "export/import round trip of hh-rlhf differs"
# Our own records (every kind, systems, tags, sampling settings) and PKU rows, the same way.
"$P" --db "$T/r.db" import "$FX/records.jsonl" 2>/dev/null || fail "records.jsonl import"
"$P" --db "$T/r.db" import --format pku "$FX/pku.jsonl" 2>"$T/pku.err" || fail "pku import"
grep -q "1 skipped" "$T/pku.err" || fail "pku: identical answers not skipped"
[ "$(q "$T/r.db" "select count(*) from comparisons where annotator = 'pku-saferlhf'")" -eq 4 ] || fail "pku: 2 rows x 2 dimensions"
[ "$(q "$T/r.db" "select chosen_safe || rejected_safe from v_comparisons where prompt like 'How do I pick%' and dimension = 'helpfulness'")" = "01" ] \
    || fail "pku: safety labels follow the chosen response"
"$P" --db "$T/r.db" export >"$T/r.jsonl" || fail "export records"
"$P" --db "$T/r2.db" import "$T/r.jsonl" 2>/dev/null || fail "re-import records"
dump "$T/r.db" >"$T/d1"
dump "$T/r2.db" >"$T/d2"
cmp -s "$T/d1" "$T/d2" || fail "export/import round trip of records differs"
[ "$("$P" --db "$T/r.db" export --table comparisons --dimension safety | wc -l)" -eq 3 ] || fail "export --dimension"
[ "$("$P" --db "$T/r.db" export --table responses --model sft-v0 | wc -l)" -eq 4 ] || fail "export --model"
[ "$("$P" --db "$T/r.db" export --table sft_examples --split test | wc -l)" -eq 1 ] || fail "export --split"
[ "$("$P" --db "$T/r.db" export --table sft_examples --iteration 3 | wc -l)" -eq 1 ] || fail "export --iteration"
"$P" --db "$T/r.db" export --table votes 2>/dev/null; [ $? -eq 2 ] || fail "export of an unknown table"

# --- split -------------------------------------------------------------------------------------------
"$P" --db "$T/hh.db" split --test-fraction 0.2 --seed 7 >"$T/split" || fail "split"
test_n=$(q "$T/hh.db" "select count(*) from prompts where split = 'test'")
total=$(q "$T/hh.db" "select count(*) from prompts")
[ "$test_n" -gt $((total * 15 / 100)) ] && [ "$test_n" -lt $((total * 25 / 100)) ] || fail "split: $test_n of $total in test"
[ "$(q "$T/hh.db" "select count(*) from (select dialogue from prompts group by dialogue having count(distinct split) > 1)")" -eq 0 ] \
    || fail "split: a dialogue is in both splits"
[ "$(q "$T/hh.db" "select count(*) from comparisons c join prompts p on p.id = c.prompt_id where c.split is not p.split")" -eq 0 ] \
    || fail "split: comparisons do not follow their prompt"
dump "$T/hh.db" >"$T/s1"
"$P" --db "$T/hh.db" split --test-fraction 0.2 --seed 7 | grep -q '^assigned	0$' || fail "split: a second run reassigned prompts"
"$P" --db "$T/hh.db" split --test-fraction 0.5 --seed 1 --force >/dev/null
"$P" --db "$T/hh.db" split --test-fraction 0.2 --seed 7 --force >/dev/null
dump "$T/hh.db" >"$T/s2"
cmp -s "$T/s1" "$T/s2" || fail "split: not deterministic"

# --- bad input: exit 2, file:line, the database exactly as before -----------------------------------
cp "$T/r.db" "$T/bad.db"
dump "$T/bad.db" >"$T/before"
nbad=0
for f in "$FX"/bad_*.jsonl; do
    case "$f" in
    *bad_hh_*) args="--format hh-rlhf --dimension safety" ;;
    *bad_pku_*) args="--format pku" ;;
    *) args="" ;;
    esac
    # shellcheck disable=SC2086
    "$P" --db "$T/bad.db" import $args "$f" 2>"$T/err"
    rc=$?
    [ $rc -eq 2 ] || fail "$f: exit status $rc, not 2"
    grep -q "^prefs_db: $f:2: " "$T/err" || fail "$f: message does not name line 2: $(cat "$T/err")"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$f: more than one line on stderr"
    dump "$T/bad.db" >"$T/after"
    cmp -s "$T/before" "$T/after" || fail "$f: the database changed"
    nbad=$((nbad + 1))
done
[ $nbad -ge 10 ] || fail "only $nbad bad-input fixtures"
# The same bad file through stdin names <stdin>.
"$P" --db "$T/bad.db" import - <"$FX/bad_json.jsonl" 2>"$T/err"
grep -q '^prefs_db: <stdin>:2: invalid JSON' "$T/err" || fail "stdin: $(cat "$T/err")"
# --skip-bad keeps the good line and counts the bad one.
before=$(q "$T/bad.db" 'select count(*) from comparisons')
"$P" --db "$T/bad.db" import --skip-bad "$FX/bad_missing_field.jsonl" 2>"$T/err" || fail "--skip-bad exit status"
grep -q '1 bad$' "$T/err" || fail "--skip-bad count: $(cat "$T/err")"
[ "$(q "$T/bad.db" 'select count(*) from comparisons')" -eq $((before + 1)) ] || fail "--skip-bad: the good line was not kept"

# --- a store from a newer schema is refused, not touched ----------------------------------------------
cp "$T/r.db" "$T/new.db"
q "$T/new.db" "insert into schema_version values (99, 'future')"
dump "$T/new.db" >"$T/before"
"$P" --db "$T/new.db" import "$FX/records.jsonl" 2>"$T/err"
[ $? -eq 2 ] || fail "newer schema: exit status"
grep -q 'newer' "$T/err" || fail "newer schema: message: $(cat "$T/err")"
dump "$T/new.db" >"$T/after"
cmp -s "$T/before" "$T/after" || fail "newer schema: the database changed"

# --- two importers at once, into a file that does not exist yet ----------------------------------------
( zcat "$HH" | "$P" --db "$T/c.db" import --format hh-rlhf --dimension safety - 2>"$T/c1.err"; echo $? >"$T/c1.rc" ) &
( zcat "$HH" | "$P" --db "$T/c.db" import --format hh-rlhf --dimension helpfulness - 2>"$T/c2.err"; echo $? >"$T/c2.rc" ) &
wait
[ "$(cat "$T/c1.rc")" -eq 0 ] && [ "$(cat "$T/c2.rc")" -eq 0 ] || fail "concurrent importers: $(cat "$T/c1.err" "$T/c2.err")"
[ "$(q "$T/c.db" "select count(*) from comparisons where dimension = 'safety'")" -eq "$n" ] || fail "concurrent: safety rows"
[ "$(q "$T/c.db" "select count(*) from comparisons where dimension = 'helpfulness'")" -eq "$n" ] || fail "concurrent: helpfulness rows"
[ "$(q "$T/c.db" "select count(*) from prompts")" -eq "$(q "$T/hh.db" "select count(*) from prompts")" ] || fail "concurrent: prompts duplicated"
[ "$(q "$T/c.db" 'pragma integrity_check')" = ok ] || fail "concurrent: integrity_check"

# --- an import at the end of a pipe whose upstream writes the same store ---------------------------------
# The downstream import must not take the write lock before its input is complete: here the upstream
# imports into the same file first, then passes lines on (as rejection_sample --emit jsonl does).
zcat "$HH" | head -n 20 >"$T/first.jsonl"
zcat "$HH" | sed -n '21,40p' >"$T/second.jsonl"
{ sleep 1; "$P" --db "$T/pipe.db" import --format hh-rlhf --dimension safety "$T/first.jsonl" 2>"$T/p1.err"; echo $? >"$T/p1.rc";
  cat "$T/second.jsonl"; } | "$P" --db "$T/pipe.db" import --format hh-rlhf --dimension safety - 2>"$T/p2.err"
[ $? -eq 0 ] && [ "$(cat "$T/p1.rc")" -eq 0 ] || fail "pipe into the same store: $(cat "$T/p1.err" "$T/p2.err")"
[ "$(q "$T/pipe.db" 'select count(*) from comparisons')" -eq 40 ] || fail "pipe into the same store: rows"

[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
