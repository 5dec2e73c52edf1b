#!/bin/sh
# Runs the named Check suites from BUILD/tests under valgrind's memcheck in one process each
# (CK_FORK=no, so leaks in the tests themselves are seen); any error or definite/indirect leak fails.
# Usage: tests/valgrind.sh BUILD test_name...
BUILD=$1; shift
export CK_FORK=no OMP_NUM_THREADS=2 OPENBLAS_CORETYPE=Haswell DATA=${DATA:-$(pwd)/../shared/data}
failed=0
for t in "$@"; do
    log=$BUILD/tests/$t.valgrind.log
    if valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
            "$BUILD/tests/$t" > "$log" 2>&1; then
        echo "ok   valgrind $t: $(grep -E 'definitely lost|ERROR SUMMARY' "$log" | sed 's/==[0-9]*== *//' | tr '\n' ' ')"
    else
        cat "$log"; echo "FAIL valgrind $t"; failed=1
    fi
done
exit $failed
