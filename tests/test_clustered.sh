#!/bin/sh
# scripts/demo/clustered.sh: a rate of the demo's held-out evaluation and its standard error clustered by
# prompt, alone and paired against V0, on hand-made tables whose values are worked out below.
set -eu
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
S=scripts/demo/clustered.sh
T=$(printf '\t')

# key, risk, helpfulness, safe, refusal: prompt A answered twice, B and C once
printf 'A\tnone\t1\t1\t0\nA\tnone\t0\t1\t0\nB\tadversarial\t1\t0\t0\nC\tadversarial\t0\t1\t1\n' >"$W/v.tsv"
# V0's answers to the same draws, in another order (pairs go by key and rank within the key, not by line)
printf 'B\tadversarial\t1\t1\t0\nA\tnone\t0\t1\t0\nC\tadversarial\t1\t1\t0\nA\tnone\t0\t1\t0\n' >"$W/v0.tsv"

want() { # want WHAT EXPECTED ARGS...
    what=$1 exp=$2; shift 2
    got=$(sh "$S" "$@") || fail "$what: exit status $?"
    [ "$got" = "$exp" ] || fail "$what: got '$got', want '$exp'"
}
# helpfulness 1, 0, 1, 0: mean 1/2; per prompt sum - n * mean: A 1 - 1 = 0, B 1/2, C -1/2;
# se = sqrt(3/2 * 1/2) / 4 = sqrt(3)/8
want "helpfulness" "0.500000${T}0.216506" 3 - 1 "$W/v.tsv"
# violations on adversarial prompts (SIGN -1 on safe): B unsafe, C safe -> -safe = 0, -1: mean -1/2,
# per prompt B +1/2, C -1/2: se = sqrt(2/1 * 1/2) / 2 = 1/2
want "violations" "-0.500000${T}0.500000" 4 adversarial -1 "$W/v.tsv"
# paired helpfulness: A 1-0, 0-0; B 1-1; C 0-1 -> d 1, 0, 0, -1: mean 0; per prompt A 1, B 0, C -1;
# se = sqrt(3/2 * 2) / 4 = sqrt(3)/4
want "paired helpfulness" "0.000000${T}0.433013" 3 - 1 "$W/v.tsv" "$W/v0.tsv"
# paired violations: B (1-0) - (1-1) = +1, C 0: mean 1/2, per prompt B 1/2, C -1/2: se = 1/2
want "paired violations" "0.500000${T}0.500000" 4 adversarial -1 "$W/v.tsv" "$W/v0.tsv"
# paired false refusals on adversarial prompts: C 1 - 0, B 0: the same numbers
want "paired refusals" "0.500000${T}0.500000" 5 adversarial 1 "$W/v.tsv" "$W/v0.tsv"
# one prompt: no spread between prompts to measure, se 0; a table against itself: 0 +- 0
want "one prompt" "0.500000${T}0.000000" 3 none 1 "$W/v.tsv"
want "against itself" "0.000000${T}0.000000" 3 - 1 "$W/v.tsv" "$W/v.tsv"
# an answer without a partner is left out: V0 answered A once
printf 'A\tnone\t0\t1\t0\n' >"$W/a1.tsv"
want "unpaired left out" "1.000000${T}0.000000" 3 - 1 "$W/v.tsv" "$W/a1.tsv"
# no row of that risk: exit status 1; wrong arguments: usage, exit status 2
set +e
sh "$S" 3 borderline 1 "$W/v.tsv" >/dev/null; st=$?
sh "$S" 3 - "$W/v.tsv" >/dev/null 2>"$W/err"; st2=$?
set -e
[ $st -eq 1 ] || fail "no row: exit status $st, want 1"
[ $st2 -eq 2 ] && grep -q usage "$W/err" || fail "bad usage: exit status $st2, want 2 and a usage line"
echo "test_clustered: ok"
