#!/bin/sh
# Runs every Check suite and every shell test; prints one line per test program and a total.
# BUILD names the build folder (build or build-debug). Exit status 1 if anything failed.
BUILD=${BUILD:-build}
BIN=$(pwd)/$BUILD/bin
export BIN
export DATA=${DATA:-$(pwd)/../shared/data}
# ASan's leak checker cannot follow OpenMP's thread pool; its reports there are not ours.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Check kills a test after 4 s by default: too short for the sanitizer build on a loaded machine.
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-300}
passed=0; failed=0; failures=""
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o|*.d) continue;; esac
    [ -x "$t" ] || continue
    name=$(basename "$t")
    if out=$("$t" 2>&1); then
        passed=$((passed + 1)); echo "ok   $name: $(printf '%s\n' "$out" | grep -E '^[0-9]+%' | tail -n 1)"
    else
        failed=$((failed + 1)); failures="$failures $name"; printf '%s\n' "$out"; echo "FAIL $name"
    fi
done
for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t")
    if out=$(sh "$t" 2>&1); then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); failures="$failures $name"; printf '%s\n' "$out"; echo "FAIL $name"
    fi
done
[ -n "$failures" ] && echo "failed:$failures"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
