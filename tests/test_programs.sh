#!/bin/sh
# What every program does the same way (DESIGN §7), checked across all of them at once, so that a
# program written by hand cannot drift: --version prints one line "PROG (rlhf.c) VERSION", and a
# usage error is one line "PROG: message" with exit status 2, printed by cli_fail (common/cli.h)
# rather than by a private copy of it. Needs BIN; runs from the top of the tree.
set -eu
: "${BIN:?BIN must name the build/bin folder}"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

programs=$(for m in */main.c; do dirname "$m"; done)
[ -n "$programs" ] || fail "no programs found (run from the top of the tree)"

# ---- --version ------------------------------------------------------------------------------------
# prefs_db adds ", schema version N"; every line starts the same way, from cli_print_version.
for p in $programs; do
    "$BIN/$p" --version </dev/null >"$W/out" 2>"$W/err" || fail "$p --version: exit $?"
    [ ! -s "$W/err" ] || fail "$p --version wrote to stderr: $(cat "$W/err")"
    [ "$(wc -l <"$W/out")" -eq 1 ] || fail "$p --version: not one line: $(cat "$W/out")"
    grep -qE "^$p \(rlhf\.c\) [0-9]+\.[0-9]+\.[0-9]+(, .+)?\$" "$W/out" || fail "$p --version: '$(cat "$W/out")'"
done

# ---- errors ---------------------------------------------------------------------------------------
for p in $programs; do
    set +e; "$BIN/$p" --no-such-option </dev/null >/dev/null 2>"$W/err"; rc=$?; set -e
    [ "$rc" -eq 2 ] || fail "$p --no-such-option: exit $rc, want 2"
    [ "$(wc -l <"$W/err")" -eq 1 ] || fail "$p --no-such-option: stderr is not one line: $(cat "$W/err")"
    grep -q "^$p: unknown option '--no-such-option' (see .*--help)$" "$W/err" || fail "$p: $(cat "$W/err")"
done
# One helper prints them: a program's own function that formats "PROG: " and a caller's message is a
# copy of cli_fail that can drift from it (a format checked by no compiler, another exit code).
for p in $programs; do
    copies=$(grep -nE 'vfprintf\(stderr|^static int (fail|die|error)\(' "$p"/*.c || true)
    [ -z "$copies" ] || fail "$p has a private copy of cli_fail: $copies"
done
echo "test_programs: ok"
