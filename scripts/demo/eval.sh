#!/bin/sh
# eval.sh DEMO V POLICY [RM_HELPFULNESS RM_SAFETY] — the held-out evaluation of version V of a demo run.
#
# On the first eval_prompts prompts of runs/DEMO/test_prompts.jsonl (split test: never sampled for training):
#   answers     generate, eval_k answers per prompt at eval_temperature (configs/DEMO/demo.yaml), seed 1
#               (the test split has few distinct borderline and fact prompts: several answers each)
#   oracle      toyworld score: helpfulness (0..1), safe, refusal, per prompt
#   metrics     helpfulness = mean oracle helpfulness over all prompts;
#               violation_rate = unsafe share on adversarial prompts;
#               false_refusal_rate = refusal share on borderline prompts;
#               win_oracle_{helpfulness,safety} = share of answers where V beats V0 (the i-th answer to a
#               prompt against V0's i-th answer to it; ties count 1/2);
#               win_rm_{helpfulness,safety} = the same judged by V's reward models (scores of V's and
#               V0's answers to the same prompt), the axes of Llama 2's Figure 11;
#               kl_per_token, kl_per_answer = evaluate kl: the mean over the policy's own samples
#               (temperature 1) of log p_V - log p_V0, per token and summed per answer;
#               {helpfulness,violation_rate,false_refusal_rate}_se = the standard error of each rate,
#               clustered by prompt (the draw repeats prompts, and answers to one prompt go together);
#               {...}_vs_v0 and {...}_vs_v0_se = V's rate minus V0's, paired (the i-th answer to a prompt
#               against V0's i-th answer to it), and its standard error clustered by prompt
#               (scripts/demo/clustered.sh).
# They go to runs/DEMO/vV/eval/metrics.tsv and into prefs.db as the metrics of an `evaluate` run of
# iteration V (names eval.*). V0 needs no reward models: its win rates against itself are 1/2.
# With EVAL_TAG=T set (demo.mk: T=rs, the rejection-sampling model of an iteration that ends with PPO,
# i.e. PPO's starting point), the same evaluation goes to runs/DEMO/vV/eval_T/ with names eval_T.*.
set -eu
[ $# -eq 3 ] || [ $# -eq 5 ] || { echo "usage: eval.sh DEMO V POLICY [RM_HELPFULNESS RM_SAFETY]" >&2; exit 2; }
DEMO=$1 V=$2 POL=$3 RH=${4:-} RS=${5:-}
D=runs/$DEMO C=configs/$DEMO B=${BIN:-build/bin}
TAG=${EVAL_TAG:+_$EVAL_TAG}
DB=$D/prefs.db E=$D/v$V/eval$TAG E0=$D/v0/eval
TH="--threads ${DEMO_THREADS:-2}"
knob() { sed -n "s/^$1:[[:space:]]*\([^[:space:]#]*\).*/\1/p" "$C/demo.yaml"; }
mkdir -p "$E"

# the first eval_prompts prompts as drawn, repeats included, so that the categories keep the world's mix
# (the test split holds few distinct fact or borderline prompts but many system dialogues)
head -n "$(knob eval_prompts)" "$D/test_prompts.jsonl" >"$E/prompts.jsonl"
"$B/generate" --config "$C/generate.yaml" --model "$POL" --seed 1 -K "$(knob eval_k)" --set sample.temperature="$(knob eval_temperature)" \
    $TH "$E/prompts.jsonl" >"$E/answers.jsonl"
"$B/toyworld" score --config "$C/toyworld.yaml" "$E/answers.jsonl" >"$E/oracle.jsonl"
[ "$(wc -l <"$E/answers.jsonl")" -eq "$(wc -l <"$E/oracle.jsonl")" ] || { echo "eval.sh: toyworld score lost lines" >&2; exit 1; }

# table.tsv: prompt key, risk, helpfulness, safe, refusal — one row per answered prompt
jq -n -r --slurpfile a "$E/answers.jsonl" --slurpfile o "$E/oracle.jsonl" '
    range(0; $a | length) as $i
    | [($a[$i].prompt | {dialogue, system} | tojson), $o[$i].risk, $o[$i].helpfulness,
       (if $o[$i].safe then 1 else 0 end), (if $o[$i].refusal then 1 else 0 end)] | @tsv' >"$E/table.tsv"

awk -F'\t' '
    { n++; h += $3 }
    $2 == "adversarial" { na++; va += 1 - $4 }
    $2 == "borderline" { nb++; rb += $5 }
    END {
        if (n == 0 || na == 0 || nb == 0) { print "eval.sh: no answers, or no adversarial or borderline prompt" > "/dev/stderr"; exit 1 }
        printf "eval.helpfulness\t%.6f\neval.violation_rate\t%.6f\neval.false_refusal_rate\t%.6f\n", h / n, va / na, rb / nb
        printf "eval.n_answers\t%d\neval.n_adversarial\t%d\neval.n_borderline\t%d\n", n, na, nb
    }' "$E/table.tsv" >"$E/metrics.tsv"

# win COLUMN TABLE_V TABLE_0: share of answers where V's value beats V0's (the i-th answer to a prompt
# against V0's i-th answer to the same prompt), ties 1/2
win() {
    awk -F'\t' -v c="$1" 'NR == FNR { ref[$1 SUBSEP (++i0[$1])] = $c; next }
        { k = $1 SUBSEP (++i1[$1]) }
        (k in ref) { n++; w += ($c > ref[k]) + 0.5 * ($c == ref[k]) }
        END { if (!n) exit 1; printf "%.6f\n", w / n }' "$3" "$2"
}
printf 'eval.win_oracle_helpfulness\t%s\n' "$(win 3 "$E/table.tsv" "$E0/table.tsv")" >>"$E/metrics.tsv"
printf 'eval.win_oracle_safety\t%s\n' "$(win 4 "$E/table.tsv" "$E0/table.tsv")" >>"$E/metrics.tsv"

for spec in "helpfulness 3 - 1" "violation_rate 4 adversarial -1" "false_refusal_rate 5 borderline 1"; do
    set -- $spec
    printf 'eval.%s_se\t%s\n' "$1" "$(sh scripts/demo/clustered.sh "$2" "$3" "$4" "$E/table.tsv" | cut -f 2)" >>"$E/metrics.tsv"
    sh scripts/demo/clustered.sh "$2" "$3" "$4" "$E/table.tsv" "$E0/table.tsv" |
        awk -F'\t' -v name="$1" '{ printf "eval.%s_vs_v0\t%s\neval.%s_vs_v0_se\t%s\n", name, $1, name, $2 }' >>"$E/metrics.tsv"
done

if [ -n "$RH" ]; then
    # both versions' answers scored by V's reward models: key, helpfulness score, safety score
    for who in v0 v; do
        src=$E/answers.jsonl; [ $who = v0 ] && src=$E0/answers.jsonl
        "$B/rm_train" score --model "$RH" $TH - <"$src" | jq -c '.score' >"$E/rm_h_$who.txt"
        "$B/rm_train" score --model "$RS" $TH - <"$src" | jq -c '.score' >"$E/rm_s_$who.txt"
        jq -r '.prompt | {dialogue, system} | tojson' "$src" | paste - "$E/rm_h_$who.txt" "$E/rm_s_$who.txt" >"$E/rm_$who.tsv"
    done
    printf 'eval.win_rm_helpfulness\t%s\n' "$(win 2 "$E/rm_v.tsv" "$E/rm_v0.tsv")" >>"$E/metrics.tsv"
    printf 'eval.win_rm_safety\t%s\n' "$(win 3 "$E/rm_v.tsv" "$E/rm_v0.tsv")" >>"$E/metrics.tsv"
fi

"$B/evaluate" kl --model "$POL" --ref "$D/v0/ckpt" --set sample.max_new="$(knob eval_max_new)" --seed 1 $TH "$E/prompts.jsonl" \
    | sed 's/^/eval./' >>"$E/metrics.tsv"
[ -z "$TAG" ] || { sed "s/^eval\./eval$TAG./" "$E/metrics.tsv" >"$E/metrics.tsv.tmp" && mv "$E/metrics.tsv.tmp" "$E/metrics.tsv"; }
"$B/evaluate" record --db "$DB" --iteration "$V" --name "$POL" "$E/metrics.tsv"
echo "v$V: $(tr '\t\n' '= ' <"$E/metrics.tsv")"
