#!/bin/sh
# ckpt_tool end to end: stories260K from llama2.c into a checkpoint directory and back out (v0 and
# v1), its logits after BOS (argmax 461, as tests/fixtures/stories260K_greedy.json says), and
# usage/input errors with exit status 2 and a one-line message.
set -u
T=$(mktemp -d /tmp/test_ckpt_tool.XXXXXX)
trap 'rm -rf "$T"' EXIT
B="$BIN/ckpt_tool"
SRC="$DATA/llama2c/stories260K.bin"
fails=0
check() { # check NAME CONDITION...
    name=$1; shift
    if "$@"; then :; else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
expect_rc() { # expect_rc RC NEEDLE CMD...: exit status RC and NEEDLE in its one-line stderr
    want=$1 needle=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -q -- "$needle" "$T/err" || [ "$(wc -l <"$T/err")" -ne 1 ] ||
        ! grep -q '^ckpt_tool: ' "$T/err"; then
        echo "FAIL: '$*' exited $rc (want $want), stderr: $(cat "$T/err") (want '$needle')"; fails=$((fails + 1))
    fi
}

check "--help lists every option" sh -c "'$B' --help | grep -q -- --tokenizer && '$B' --help | grep -q -- '--version 0|1'"
check "--version" sh -c "'$B' --version | grep -q '^ckpt_tool (rlhf.c) '"

check "import" "$B" import-llama2c "$SRC" "$T/s" >/dev/null
check "info" sh -c "'$B' info '$T/s' | grep -q 'dim 64, hidden_dim 172, layers 5, heads 8, kv_heads 4, vocab 512'"
check "info says mapped" sh -c "'$B' info '$T/s' | grep -q 'memory-mapped'"

# the logits after BOS: the largest is token 461 (index counted from 0)
"$B" logits "$T/s" 1 >"$T/logits.json"
best=$(sed -n 2p "$T/logits.json" | tr -d '[] ' | tr ',' '\n' |
       awk 'NR == 1 || $1 > m { m = $1; i = NR - 1 } END { print i }')
check "argmax after BOS is 461 (got $best)" [ "$best" = 461 ]
check "one row per id" [ "$("$B" logits "$T/s" 1 461 401 | grep -c '^\[')" -eq 3 ]

# v1 out and back in: same bytes again, same logits
check "export v1" "$B" export-llama2c "$T/s" "$T/s1.bin" --version 1 >/dev/null
check "v1 size" [ "$(wc -c <"$T/s1.bin")" -eq $((256 + 4 * 260032)) ]
check "import v1" "$B" import-llama2c "$T/s1.bin" "$T/s1" >/dev/null
check "export v1 again" "$B" export-llama2c --version=1 "$T/s1" "$T/s1b.bin" >/dev/null
check "v1 round trip identical" cmp -s "$T/s1.bin" "$T/s1b.bin"
"$B" logits "$T/s1" 1 461 >"$T/logits1.json"
"$B" logits "$T/s" 1 461 >"$T/logits0.json"
check "same logits through v1" cmp -s "$T/logits0.json" "$T/logits1.json"
# v0: same size as the original and the same bytes outside its RoPE tables, which a checkpoint
# directory does not keep (ours are recomputed; the file's came from PyTorch's float32 cos/sin)
check "export v0" "$B" export-llama2c "$T/s" "$T/s0.bin" >/dev/null
check "v0 size" [ "$(wc -c <"$T/s0.bin")" -eq "$(wc -c <"$SRC")" ]
rope_at=$((28 + 4 * 260032))  # the header, then every weight (tied: no classifier after the tables)
check "v0 bytes before the RoPE tables" cmp -s -n "$rope_at" "$T/s0.bin" "$SRC"

# copy: the same checkpoint again, identical files
check "copy" "$B" copy "$T/s" "$T/c" >/dev/null
check "copy identical" cmp -s "$T/s/model.safetensors" "$T/c/model.safetensors"
check "copy config" cmp -s "$T/s/config.json" "$T/c/config.json"
expect_rc 2 "copy takes SRC and DST" "$B" copy "$T/s"

# replacing a checkpoint in place works; a tokenizer of the wrong size is refused
check "re-import over" "$B" import-llama2c "$SRC" "$T/s" >/dev/null
expect_rc 2 "expected vocab_size 512" "$B" import-llama2c "$SRC" "$T/t" --tokenizer "$DATA/llama2c/tokenizer.bin"
check "no half checkpoint left" [ ! -e "$T/t" ] && [ ! -e "$T/t.tmp" ]

expect_rc 2 "a command is needed" "$B"
expect_rc 2 "unknown command 'frob'" "$B" frob
expect_rc 2 "unknown option '--frob'" "$B" info "$T/s" --frob
expect_rc 2 "info takes one directory" "$B" info
expect_rc 2 "config.json: missing" "$B" info "$T/nothing"
expect_rc 2 "token id '512'" "$B" logits "$T/s" 1 512
expect_rc 2 "token id 'x'" "$B" logits "$T/s" x
expect_rc 2 "at least one token id" "$B" logits "$T/s"
expect_rc 2 "--version must be 0 or 1" "$B" export-llama2c "$T/s" "$T/x.bin" --version 3
expect_rc 2 "--tokenizer goes with import-llama2c" "$B" info "$T/s" --tokenizer x
expect_rc 2 "not a llama2.c model.bin header" "$B" import-llama2c "$T/s/config.json" "$T/bad"
expect_rc 2 "needs a value" "$B" import-llama2c "$SRC" "$T/u" --tokenizer
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
