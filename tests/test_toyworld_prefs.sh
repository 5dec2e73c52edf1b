#!/bin/sh
# toyworld with prefs_db, the loop of the demo: demonstrations and responses go into a store,
# `prefs_db annotate --rater "toyworld rate"` fills in the comparisons, and the exported comparisons
# agree with the oracle when the annotator's noise is off. Needs BIN.
set -eu
T="$BIN/toyworld"
P="$BIN/prefs_db"
[ -x "$P" ] || { echo "FAIL: $P not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
db="$tmp/prefs.db"

$P --db "$db" init > /dev/null
$T demos --n 100 | $P --db "$db" import - 2> "$tmp/log"
grep -q '100 sft examples; 0 skipped, 0 bad' "$tmp/log" || fail "demos import: $(cat "$tmp/log")"
$T prompts --n 30 --split test > "$tmp/p.jsonl"
for pol in good demo random; do $T respond --policy $pol "$tmp/p.jsonl"; done | $P --db "$db" import - 2> "$tmp/log"
grep -q '90 responses' "$tmp/log" || fail "responses import: $(cat "$tmp/log")"

QUIET="--set rate.flip_prob=0 --set rate.rating_jitter=0 --set rate.score_noise=0"
$P --db "$db" annotate --rater "$T rate $QUIET" 2> "$tmp/log"
pairs=$(sed -n 's/.*annotate: \([0-9]*\) pairs sent, \([0-9]*\) comparisons stored.*/\1 \2/p' "$tmp/log")
set -- $pairs
[ "${1:-0}" -gt 50 ] || fail "too few pending pairs: $(cat "$tmp/log")"
[ "$2" -eq $((2 * $1)) ] || fail "want one comparison per pair and dimension: $(cat "$tmp/log")"

# nothing is pending any more: annotate resumes from the store
$P --db "$db" annotate --rater "$T rate $QUIET" 2> "$tmp/log"
grep -q 'annotate: 0 pairs sent' "$tmp/log" || fail "second annotate found work: $(cat "$tmp/log")"

$P --db "$db" export --table comparisons > "$tmp/cmp.jsonl"
[ "$(grep -c '"annotator":"toyworld"' "$tmp/cmp.jsonl")" -eq "$2" ] || fail "exported comparisons"
$T score "$tmp/cmp.jsonl" > "$tmp/verdicts.jsonl"
[ "$(wc -l < "$tmp/verdicts.jsonl")" -eq "$2" ] || fail "score did not read every exported comparison"
grep -q '"agrees":false' "$tmp/verdicts.jsonl" && fail "stored comparisons disagree with the oracle"
grep -q '"kind":"unknown"' "$tmp/verdicts.jsonl" && fail "a stored prompt is no longer recognised"
echo "toyworld + prefs_db: all checks passed"
