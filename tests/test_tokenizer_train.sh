#!/bin/sh
# tokenizer_train: the file it writes (walked record by record here, independently of the C
# loader), determinism, stdin, and every usage and input error with its exit status.
set -eu
: "${BIN:?BIN must name the build/bin folder}" "${DATA:?DATA must name ../shared/data}"
T="$BIN/tokenizer_train"
STORY="$DATA/tinystories/tinystories_sample.txt"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS STDERR-SUBSTRING ARGS...: exit status and a one-line, prefixed error.
expect() {
    want=$1; needle=$2; shift 2
    set +e; "$T" "$@" >"$W/out" 2>"$W/err" </dev/null; got=$?; set -e
    [ "$got" -eq "$want" ] || fail "tokenizer_train $*: exit $got, want $want"
    [ "$(wc -l <"$W/err")" -eq 1 ] || fail "tokenizer_train $*: stderr is not one line: $(cat "$W/err")"
    grep -q "^tokenizer_train: .*$needle" "$W/err" || fail "tokenizer_train $*: '$(cat "$W/err")' lacks '$needle'"
}

# Count the records of a tokenizer.bin and check the Llama 2 layout; prints "COUNT MAXLEN".
walk() {
    od -An -tu1 -v "$1" | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        function u32(o) { return b[o] + 256 * (b[o + 1] + 256 * (b[o + 2] + 256 * b[o + 3])) }
        END {
            maxlen = u32(0); off = 4; k = 0; longest = 0
            while (off < n) {
                if (off + 8 > n) { print "truncated header"; exit 1 }
                len = u32(off + 4); off += 8
                if (off + len > n) { print "truncated piece"; exit 1 }
                s = ""; for (i = 0; i < len; i++) s = s sprintf("%c", b[off + i])
                if (k >= 3 && k < 259 && s != sprintf("<0x%02X>", k - 3)) { print "token " k " is " s; exit 1 }
                if (k == 0 && s != "<unk>") { print "token 0 is " s; exit 1 }
                if (len > longest) longest = len
                off += len; k++
            }
            if (longest != maxlen) { print "max_token_length " maxlen " but longest " longest; exit 1 }
            print k, maxlen
        }'
}

"$T" --help >"$W/help" || fail "--help exit status"
for opt in --vocab --out --help --version; do grep -q -- "$opt" "$W/help" || fail "--help does not list $opt"; done
"$T" --version | grep -q "tokenizer_train" || fail "--version"

"$T" --vocab 300 --out "$W/a.bin" "$STORY" >"$W/summary" || fail "training on the sample"
grep -q "300 tokens from 3794 bytes" "$W/summary" || fail "summary: $(cat "$W/summary")"
set -- $(walk "$W/a.bin")
[ "$1" -eq 300 ] || fail "a.bin holds $1 tokens, want 300"

# stdin (explicit and implicit) gives the same bytes: training is deterministic.
"$T" --vocab 300 --out "$W/b.bin" - <"$STORY" >/dev/null
"$T" --vocab 300 --out "$W/c.bin" <"$STORY" >/dev/null
cmp -s "$W/a.bin" "$W/b.bin" || fail "stdin result differs from file result"
cmp -s "$W/a.bin" "$W/c.bin" || fail "implicit stdin result differs"

# Several inputs are one text (the same chunks three times: no more merges, but three times the counts).
"$T" --vocab 946 --out "$W/d.bin" "$STORY" "$STORY" - <"$STORY" >"$W/summary"
grep -q "946 tokens from 11382 bytes (2261 chunks, 321 distinct)" "$W/summary" || fail "summary: $(cat "$W/summary")"
set -- $(walk "$W/d.bin")
[ "$1" -eq 946 ] || fail "d.bin holds $1 tokens, want 946"

expect 2 "--vocab must be an integer" --vocab 100 --out "$W/x.bin" "$STORY"
expect 2 "--vocab must be an integer" --vocab 12x --out "$W/x.bin" "$STORY"
expect 2 "--vocab N is required" --out "$W/x.bin" "$STORY"
expect 2 "--out FILE is required" --vocab 300 "$STORY"
expect 2 "needs a value" --vocab
expect 2 "unknown option '--frobnicate'" --frobnicate
expect 2 "$W/missing.txt: No such file" --vocab 300 --out "$W/x.bin" "$W/missing.txt"
expect 2 "corpus too small: only 946 of the 5000 tokens" --vocab 5000 --out "$W/x.bin" "$STORY"
expect 1 "cannot create" --vocab 300 --out "$W/no/such/dir/x.bin" "$STORY"
[ ! -e "$W/x.bin" ] || fail "a failed run left $W/x.bin behind"
echo "tokenizer_train: all checks passed"
