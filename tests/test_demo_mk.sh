#!/bin/sh
# demo.mk's stages, without running one: in a run directory where `make -t` has marked the pipeline done
# up to a stage (what an interrupted demo leaves), `make -n demo-run` must list the commands from the next
# stage on, and never again a command that wrote rows into the store (it would store them twice: two sets
# of answers to annotate, two sets of kept examples to fine-tune on). A finished run has nothing to do,
# also one finished by the demo.mk from before the store-writing stages had stamps of their own.
set -eu
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
R=$W/run

# The make of `make test` must not leak its jobserver or flags into these.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory DEMO=demo-quick D="$R" "$@"; }

# fresh: an empty run directory with the directories make -t cannot create
fresh() {
    rm -rf "$R"
    for v in 0 1 2 3 4 5; do mkdir -p "$R/v$v/rm_helpfulness" "$R/v$v/rm_safety"; done
    mkdir -p "$R/base"
}

# after TARGET: mark the pipeline done up to TARGET, then print what `make demo-run` would run next
after() {
    fresh
    mk -s -t "$R/$1" >/dev/null
    mk -n demo-run >"$W/next" 2>&1 || fail "make -n after $1: $(cat "$W/next")"
}
# has / lacks REGEX: the pending commands do / do not include one like it
has() { grep -q -E -e "$1" "$W/next" || fail "after $stage, want a command like '$1'; make -n lists:
$(grep -v '^touch' "$W/next" | cut -c 1-160)"; }
lacks() { ! grep -q -E -e "$1" "$W/next" || fail "after $stage, '$1' would run again: $(grep -E -e "$1" "$W/next" | cut -c 1-200)"; }

# check STAGE LACKS [HAS...]: after STAGE, no pending command matches LACKS, and one matches each HAS
check() {
    stage=$1 no=$2
    shift 2
    after "$stage"
    lacks "$no"
    for yes; do has "$yes"; done
}
gen2() { echo "generate .*--iteration 2 .*$1"; }
first3() { grep -v '^touch' "$W/next" | grep -E -e "$R/v3/|--iteration 3 " | head -n 1; } # V3's next command

check v2/answers_train.done "$(gen2 'data.split=train --set data.limit')|generate .*--iteration 1 |(rejection_sample|sft) .*--iteration 1 " \
    "$(gen2 "data.split=test.* && touch $R/v2/answers_test.done")$" "prefs_db .*annotate --iteration 2 "
# rate_prompts: fresh (configs/demo-quick): V2 rates a new draw of train prompts (seed 102, its first
# rate_train_prompts distinct ones), piped into generate, not the store's first prompts again
check v1/done "generate .*--iteration 2 .*data.split=train --set data.limit=[0-9]+ --threads [0-9]+ && touch" \
    "toyworld prompts .*--split train --seed 102 --n 240 \| awk .*\| head -n 120 \| .*generate .*--iteration 2 .*data.split=train.* - && touch $R/v2/answers_train.done"
# ... and its held-out comparisons on a new draw of test prompts (seed 202)
check v2/answers_train.done "generate .*--iteration 2 .*data.split=test --set data.limit=[0-9]+ --threads [0-9]+ && touch" \
    "toyworld prompts .*--split test --seed 202 --n 120 \| awk .*\| head -n 60 \| .*generate .*--iteration 2 .*data.split=test.* - && touch $R/v2/answers_test.done"
check v2/answers_test.done "generate .*--iteration 2 .*data.split=(train --set data.limit|test)" \
    "prefs_db .*annotate --iteration 2 .*> $R/v2/annotate.txt"
check v2/red_team_adversarial.done "$(gen2 'data.risk=adversarial')|> $R/v2/annotate.txt" \
    "$(gen2 'data.risk=borderline')" "> $R/v2/red_team.txt"
check v2/red_team_borderline.done "generate .*--iteration 2 " "prefs_db .*annotate --iteration 2 .*> $R/v2/red_team.txt"
check v3/rs_sample.done "rejection_sample .*--iteration 3 --seed 3 " "toyworld score .*$R/v3/rs_candidates.jsonl" "sft .*--iteration 3 "
first3 | grep -q "toyworld score" || fail "after $stage V3's next command is not the oracle's score: $(first3)"
check v3/rs_oracle.jsonl "rejection_sample .*--iteration 3 --seed 3 |toyworld score .*$R/v3/"
first3 | grep -qE "rejection_sample .*--iteration 3 .*--set data.risk=adversarial --set data.limit=[0-9]+ .* && touch $R/v3/rs_red_team.done" ||
    fail "after $stage V3's next command is not rejection sampling on adversarial prompts: $(first3)"
check v3/rs_red_team.done "rejection_sample .*--iteration 3 |toyworld score .*$R/v3/"
first3 | grep -q "sft .*--iteration 3 " || fail "after $stage V3's next command is not the fine-tune: $(first3)"

# make stopped during a store-writing stage. make passes a TERM to the recipe's shell alone; the stage's
# shell (scripts/demo/store_shell.sh) passes it on to the command, which stops before it commits, with
# no stamp. A make killed outright leaves the stage's shell to let the command finish and stamp. A
# stand-in generate in a build folder of its own records that it started and that it "committed".
mkdir -p "$W/fake/bin"
printf '#!/bin/sh\necho started >>"%s"\nsleep 2\necho committed >>"%s"\n' "$W/log" "$W/log" >"$W/fake/bin/generate"
chmod +x "$W/fake/bin/generate"
# stop_make SIGNAL: make the V2 test answers with the stand-in, send SIGNAL to make once it started
stop_make() {
    fresh
    rm -f "$W/log"
    mk -s -t "$R/v2/answers_train.done" >/dev/null
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory DEMO=demo-quick D="$R" BUILD="$W/fake" \
        "$R/v2/answers_test.done" >"$W/make.out" 2>&1 & # make itself, not a subshell running mk
    pid=$!
    i=0
    until grep -q started "$W/log" 2>/dev/null; do i=$((i + 1)); [ $i -lt 300 ] || fail "the stand-in never started"; sleep 0.1; done
    kill -s "$1" "$pid"
    set +e; wait "$pid" 2>/dev/null; st=$?; set -e
    [ "$st" -ne 0 ] || fail "make was not stopped by SIG$1: $(cat "$W/make.out")"
}
stop_make TERM
sleep 3
[ "$(cat "$W/log")" = started ] && [ ! -e "$R/v2/answers_test.done" ] ||
    fail "TERM to make: want the command stopped before it commits, and no stamp: $(cat "$W/log"), $(ls "$R/v2")"
stop_make KILL
i=0
until [ -e "$R/v2/answers_test.done" ]; do i=$((i + 1)); [ $i -lt 100 ] || fail "KILL to make: the stage was never stamped"; sleep 0.1; done
[ "$(cat "$W/log")" = "started
committed" ] || fail "KILL to make: want the command finished once: $(cat "$W/log")"

# a finished run: nothing to do
fresh
mk -s -t demo-run >/dev/null
mk -q demo-run || fail "make -q on a finished run: $(mk -n demo-run 2>&1 | head -n 5)"
# finished by the demo.mk before the split: no stamps of the store-writing stages, still nothing to do
rm -f "$R"/v*/answers_*.done "$R"/v*/red_team_*.done "$R"/v*/rs_sample.done "$R"/v*/rs_red_team.done
mk -q demo-run || fail "make -q on a run finished before the split: $(mk -n demo-run 2>&1 | grep -v '^touch' | head -n 5)"
# ... and stopped in V3's red teaming by it: the rating goes on, no answers of V1-V3 are generated again
rm -f "$R/v3/red_team.done"
mk -n demo-run >"$W/next" 2>&1
stage="V3's red teaming, before the split"
lacks "generate .*--iteration [12] |generate .*--iteration 3 .*data.split=(train --set data.limit|test)"
has "generate .*--iteration 3 .*data.risk=adversarial"
echo "test_demo_mk: ok"
