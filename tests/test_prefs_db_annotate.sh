#!/bin/sh
# prefs_db annotate, driven from a script: the interactive loop through a pipe (answers, a bad
# answer, undo, quit, resume), then --rater CMD with a sed one-liner as the rater, a failing rater
# and a rater printing a bad line. Needs BIN and the sqlite3 shell.
set -u
P="$BIN/prefs_db"
FX=tests/fixtures/prefs
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
q() { sqlite3 "$T/a.db" "$1"; }
dump() { sqlite3 "$T/a.db" .dump; }

# records.jsonl: a banana prompt with responses 1 "Yellow.", 2 "Bananas are yellow when ripe.",
# 3 "Blue."; a cat prompt with responses 4, 5 compared on safety only.
"$P" --db "$T/a.db" import "$FX/records.jsonl" 2>/dev/null || fail "import"

# Session 1: a bad answer, then A better (2, A safe, B not), then B better (1), then quit.
printf 'x\na2yn\nb1\nq\n' | "$P" --db "$T/a.db" annotate --annotator tester >"$T/out1" 2>"$T/err1" \
    || fail "session 1 exit status"
grep -q 'unrecognised answer "x"' "$T/out1" || fail "bad answer not reported"
grep -q '^----- B (response 2) -----$' "$T/out1" || fail "pair display"
[ "$(q "select chosen_id, rejected_id, rating, chosen_safe, rejected_safe from comparisons where annotator = 'tester' order by id")" = \
"1|2|2|1|0
3|1|1||" ] || fail "session 1 rows: $(q "select * from comparisons where annotator = 'tester'")"
grep -q '2 comparisons stored, 2 of 4 pairs not answered' "$T/err1" || fail "session 1 summary: $(cat "$T/err1")"

# Session 2 resumes at the first unanswered pair (2 vs 3): answer, undo, answer again, quit.
printf 'a3\nu\nb0\nq\n' | "$P" --db "$T/a.db" annotate --annotator tester >"$T/out2" 2>"$T/err2" \
    || fail "session 2 exit status"
grep -q 'pair 1 of 2 ' "$T/out2" || fail "session 2 did not resume with 2 pending pairs"
grep -q '^undone: comparison' "$T/out2" || fail "undo not confirmed"
[ "$(q "select chosen_id || '>' || rejected_id || ':' || rating from comparisons where annotator = 'tester' order by id")" = \
"1>2:2
3>1:1
3>2:0" ] || fail "session 2 rows: $(q "select * from comparisons where annotator = 'tester'")"

# Session 3: end of input is a quit; undo with nothing to undo says so; safety is its own queue.
printf 'u\n' | "$P" --db "$T/a.db" annotate >"$T/out3" 2>"$T/err3" || fail "session 3 exit status"
grep -q 'nothing to undo' "$T/out3" || fail "empty undo"
grep -q '0 comparisons stored, 1 of 1 pairs' "$T/err3" || fail "session 3 summary: $(cat "$T/err3")"
printf 'q\n' | "$P" --db "$T/a.db" annotate --dimension safety >/dev/null 2>"$T/err4"
grep -q '3 pairs not answered' "$T/err4" || fail "safety pending: $(cat "$T/err4")"

# --rater: a sed one-liner prefers response b; its comparisons carry the ids of the pair.
rater='sed -E "s/.*\"response_a_id\":([0-9]+),\"response_b_id\":([0-9]+).*/{\"chosen_id\":\2,\"rejected_id\":\1,\"rating\":3,\"dimension\":\"safety\"}/"'
# A failing rater and a rater printing a bad line keep nothing.
dump >"$T/before"
"$P" --db "$T/a.db" annotate --dimension safety --rater "$rater; exit 4" 2>"$T/err"
[ $? -eq 1 ] || fail "failing rater: exit status"
grep -q 'exited with status 4' "$T/err" || fail "failing rater: message"
"$P" --db "$T/a.db" annotate --dimension safety --rater "$rater; echo '{\"chosen_id\":1,\"rejected_id\":2,\"rating\":9}'" 2>"$T/err"
[ $? -eq 2 ] || fail "bad rater line: exit status"
grep -q '^prefs_db: rater:4: field "rating" must be 0, 1, 2 or 3' "$T/err" || fail "bad rater line: $(cat "$T/err")"
dump >"$T/after"
cmp -s "$T/before" "$T/after" || fail "a failed rater changed the database"
"$P" --db "$T/a.db" annotate --dimension safety --rater "cat >$T/pairs.jsonl; $rater $T/pairs.jsonl" 2>"$T/err" \
    || fail "rater: $(cat "$T/err")"
[ "$(wc -l <"$T/pairs.jsonl")" -eq 3 ] || fail "rater got $(wc -l <"$T/pairs.jsonl") pairs, not 3"
grep -q '"dimension":"safety"' "$T/pairs.jsonl" || fail "pairs do not name the dimension"
[ "$(q "select chosen_id || '>' || rejected_id from comparisons where annotator = 'rater' and dimension = 'safety' order by id")" = \
"2>1
3>1
3>2" ] || fail "rater rows: $(q "select * from comparisons where annotator = 'rater'")"
# Nothing is pending any more on safety, so the rater is not even given a pair.
"$P" --db "$T/a.db" annotate --dimension safety --rater "cat >$T/none.jsonl" 2>/dev/null || fail "empty rater run"
[ ! -s "$T/none.jsonl" ] || fail "compared pairs were sent again"

[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
