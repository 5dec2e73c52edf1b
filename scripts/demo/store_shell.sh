# store_shell.sh — the shell of demo.mk's stages that write into prefs.db (their .SHELLFLAGS):
#     sh scripts/demo/store_shell.sh -c 'COMMAND && touch STAMP'
# A store-writing COMMAND must either finish and have its stamp touched, or stop before it commits;
# otherwise the demo's rerun stores its rows a second time. The plain recipe shell gets neither right
# when make is stopped: make passes a TERM (`kill <make>`, a CI timeout) to that shell alone, which dies
# while COMMAND goes on and commits with no stamp. So the line runs in a process group of its own, and
# a TERM, HUP or INT that reaches this shell (from make, or Ctrl-C at the terminal) is passed to the
# whole group: COMMAND stops before it has stored anything, nothing runs on after make. If make itself
# is killed outright (kill -9), this shell is not: it waits for the line, which finishes and stamps.
[ "$1" = -c ] && [ $# -eq 2 ] || { echo "store_shell.sh: usage: store_shell.sh -c LINE" >&2; exit 2; }
setsid /bin/sh -c "$2" &
line=$!
stopped=0
trap 'stopped=1; kill -s TERM -- "-$line" 2>/dev/null' TERM HUP INT
wait "$line"
st=$?
# a trap ends the first wait early; the second collects the line's own status
if [ "$stopped" = 1 ]; then wait "$line"; st=$?; fi
exit "$st"
