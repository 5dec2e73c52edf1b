# interrupt.sh — sourced by the shell tests (not a test itself): stop a program at a known point of
# its run, as a Ctrl-C, a `kill` or a crash would, to check what it leaves behind. Needs fail().
#
# kill_at SIGNAL PATTERN ERRFILE COMMAND [ARGS...]
#   runs COMMAND in the background (stdin /dev/null, stdout discarded, stderr to ERRFILE), waits until
#   a line of ERRFILE matches PATTERN (grep -E; e.g. the progress line after its first chunk), sends
#   SIGNAL (KILL, TERM, ...), and fails unless the command was ended by a signal: a command that
#   finished first proves nothing, so give it enough work after PATTERN. (SIGINT would not do here:
#   a shell script's background jobs ignore it.)
kill_at() {
    _sig=$1 _pat=$2 _err=$3
    shift 3
    "$@" </dev/null >/dev/null 2>"$_err" &
    _pid=$!
    _i=0
    until grep -q -E "$_pat" "$_err"; do
        _i=$((_i + 1))
        if [ "$_i" -gt 1200 ]; then
            kill -KILL "$_pid" 2>/dev/null || true
            fail "$1: no stderr line like '$_pat' within 2 minutes: $(tail -n 3 "$_err")"
        fi
        sleep 0.1
    done
    kill -s "$_sig" "$_pid" 2>/dev/null || true
    set +e
    wait "$_pid" 2>/dev/null # not the shell's "Killed"
    _st=$?
    set -e
    [ "$_st" -gt 128 ] || fail "$1 finished (exit $_st) before SIG$_sig reached it: give it more work after '$_pat'"
}
