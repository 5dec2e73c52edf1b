#!/bin/sh
# check_report.sh RUN_DIR — what `make demo-quick` (and CI) checks after the pipeline: the report and its
# plots exist, and every number it shows is finite and in range. It does not check that RLHF helped
# (a tiny run need not); docs/demo.md says where to read that in the full demo's report.
#   - report.md has its five sections, the best-of-N one with its oracle subsection, and no nan/inf;
#   - plots: fig11_rm, fig11_oracle, table8, fig7, ppo, fig9 PNGs, non-empty (and fig7_oracle, below);
#   - one evaluation row per version V0..V5: helpfulness, violation, false refusals and win rates in
#     [0, 1], KL finite; V0 against itself: win rates exactly 1/2 and KL ~ 0 (the same model);
#   - reward-model accuracies in [0, 1] with at least one test pair (per prompt category too, when the
#     run has that table); best of N: max >= median, and the
#     max never falls as N grows; best of N judged by the oracle (bon_oracle.tsv), for every iteration
#     that has its candidates judged (vN/rs_candidates.jsonl, vN/rs_oracle.jsonl; older runs have none,
#     and the report says so): helpfulness and unsafe shares in [0, 1], the pick never above the oracle's
#     own best, the two equal at N = 1, the oracle's best never falling as N grows, and its plot;
#     PPO's logged metrics finite, its KL (k3) never negative; for each
#     iteration with PPO, one finite, in-range evaluation of its starting point (eval_rs.tsv).
# Exit 0 when all hold, 1 with one line per failure otherwise.
set -eu
[ $# -eq 1 ] || { echo "usage: check_report.sh RUN_DIR" >&2; exit 2; }
R=$1 P=$1/plots
bad=0
fail() { echo "check_report: $*" >&2; bad=1; }

[ -s "$R/report.md" ] || { echo "check_report: $R/report.md missing or empty" >&2; exit 1; }
for s in "Held-out evaluation" "Table 8" "Figure 7" "PPO" "Figure 9"; do
    grep -q "^## .*$s" "$R/report.md" || fail "report.md lacks the section '$s'"
done
grep -q "^### Best of N judged by the oracle" "$R/report.md" || fail "report.md lacks the subsection 'Best of N judged by the oracle'"
grep -qiw -e nan -e inf -e '-nan' "$R/report.md" && fail "report.md shows a non-finite number"
for f in fig11_rm fig11_oracle table8 fig7 ppo fig9; do
    [ -s "$P/$f.png" ] || fail "plot $P/$f.png missing"
done

# eval.tsv: version, helpfulness, violation, false refusals, 4 win rates, KL/token, KL/answer, counts,
# the three rates' standard errors, then each rate's paired difference against V0 and its standard error
awk -F'\t' '
    function finite(x) { return x == x + 0 && x !~ /nan|inf/ }
    { seen[$1] = 1
      for (i = 2; i <= 8; i++) if (!finite($i) || $i < 0 || $i > 1) { printf "V%d: column %d = %s not in [0, 1]\n", $1, i, $i; bad = 1 }
      for (i = 9; i <= 10; i++) if (!finite($i)) { printf "V%d: KL column %d = %s not finite\n", $1, i, $i; bad = 1 }
      if ($1 == 0) {
          for (i = 5; i <= 8; i++) if ($i != 0.5) { printf "V0 against itself: win rate column %d = %s, not 0.5\n", i, $i; bad = 1 }
          if ($9 > 1e-3 || $9 < -1e-3) { printf "V0 against itself: KL %s, not ~0\n", $9; bad = 1 }
      }
      if ($12 < 1 || $13 < 1) { printf "V%d: no adversarial or borderline prompt\n", $1; bad = 1 }
      # standard errors and paired differences against V0 (columns 14-22; runs before them have none):
      # finite, SEs at least 0, differences in [-1, 1], and V0 against itself exactly 0 +- 0
      if ($14 != "") {
          for (i = 14; i <= 22; i++) {
              if (!finite($i) || (i <= 16 || i % 2 == 0) && $i < 0 || $i < -1 || $i > 1) { printf "V%d: column %d = %s out of range\n", $1, i, $i; bad = 1 }
              if ($1 == 0 && i >= 17 && $i != 0) { printf "V0 against itself: paired column %d = %s, not 0\n", i, $i; bad = 1 } }
          # every answer has its V0 partner, so a paired difference is the difference of the two rates
          if ($1 == 0) { r0[2] = $2; r0[3] = $3; r0[4] = $4 }
          else for (i = 2; i <= 4; i++) if ((0 in seen) && ((d = $(15 + 2 * (i - 1)) - ($i - r0[i])) > 1e-4 || d < -1e-4)) {
              printf "V%d: paired difference %s is not rate %s minus V0'"'"'s %s\n", $1, $(15 + 2 * (i - 1)), $i, r0[i]; bad = 1 } } }
    END { for (v = 0; v <= 5; v++) if (!(v in seen)) { printf "no evaluation of V%d\n", v; bad = 1 }
          exit bad }' "$P/eval.tsv" >&2 || bad=1

# rm_acc.tsv: iteration, dimension, 4 ratings + avg, 4 counts
awk -F'\t' '
    { n = $8 + $9 + $10 + $11; if (n < 1) { printf "V%d %s RM: no test pairs\n", $1, $2; bad = 1 }
      for (i = 3; i <= 7; i++) if ($i != "" && ($i < 0 || $i > 1 || $i ~ /nan|inf/)) { printf "V%d %s RM: accuracy %s\n", $1, $2, $i; bad = 1 }
      rows++ }
    END { if (rows < 2) { print "fewer than two reward-model evaluations"; bad = 1 } exit bad }' "$P/rm_acc.tsv" >&2 || bad=1

# rm_acc_category.tsv (rm_train eval --by category; runs before it have none): dimension, category,
# significantly better (acc, n), all ratings (acc, n) — accuracies in [0, 1], at least one pair per row
if [ -s "$P/rm_acc_category.tsv" ]; then
    awk -F'\t' '
        { if ($6 < 1) { printf "%s RM, category %s: no test pairs\n", $1, $2; bad = 1 }
          for (i = 3; i <= 5; i += 2) if ($i != "" && ($i < 0 || $i > 1 || $i ~ /nan|inf/)) { printf "%s RM, category %s: accuracy %s\n", $1, $2, $i; bad = 1 } }
        END { exit bad }' "$P/rm_acc_category.tsv" >&2 || bad=1
    grep -q "^Per prompt category at V" "$R/report.md" || fail "report.md lacks the per-category table"
fi

# best_of_n.tsv: iteration, N, name@temperature, value
awk -F'\t' '
    { split($3, a, "@"); v[$1, a[2], $2, a[1]] = $4; if ($4 ~ /nan|inf/) { print "best of N: " $0; bad = 1 }
      k[$1 SUBSEP a[2] SUBSEP $2] = 1 }
    END { for (x in k) { split(x, p, SUBSEP)
              if (v[p[1], p[2], p[3], "max_reward"] < v[p[1], p[2], p[3], "median_reward"] - 1e-6) { printf "best of N: V%d T=%s N=%d max < median\n", p[1], p[2], p[3]; bad = 1 }
              if (p[3] > 1 && v[p[1], p[2], p[3], "max_reward"] < v[p[1], p[2], p[3] - 1, "max_reward"] - 1e-6) { printf "best of N: V%d T=%s max falls at N=%d\n", p[1], p[2], p[3]; bad = 1 } }
          if (length(k) == 0) { print "no best-of-N rows"; bad = 1 }
          exit bad }' "$P/best_of_n.tsv" >&2 || bad=1

# bon_oracle.tsv: iteration, temperature, N, prompts, oracle helpfulness of the RM's pick, oracle's best, unsafe share of the pick
judged=""
for c in "$R"/v*/rs_candidates.jsonl; do
    [ -f "$c" ] && judged="$judged $(basename "$(dirname "$c")" | tr -d v)"
done
if [ -n "$judged" ]; then
    [ -s "$P/fig7_oracle.png" ] || fail "plot $P/fig7_oracle.png missing"
    awk -F'\t' -v judged="$judged" '
        function finite(x) { return x == x + 0 && x !~ /nan|inf/ }
        { seen[$1] = 1; k = $1 SUBSEP $2
          if ($4 < 1) { printf "oracle best of N: V%d T=%s N=%d: no prompts\n", $1, $2, $3; bad = 1 }
          for (i = 5; i <= 7; i++) if (!finite($i) || $i < 0 || $i > 1) { printf "oracle best of N: V%d T=%s N=%d: column %d = %s not in [0, 1]\n", $1, $2, $3, i, $i; bad = 1 }
          if ($5 > $6 + 1e-9) { printf "oracle best of N: V%d T=%s N=%d: the pick %s above the best %s\n", $1, $2, $3, $5, $6; bad = 1 }
          if ($3 == 1 && ($5 - $6 > 1e-9 || $6 - $5 > 1e-9)) { printf "oracle best of N: V%d T=%s: at N = 1 pick %s != best %s\n", $1, $2, $5, $6; bad = 1 }
          if ($3 > 1 && $6 < best[k] - 1e-9) { printf "oracle best of N: V%d T=%s: the oracle best falls at N=%d\n", $1, $2, $3; bad = 1 }
          best[k] = $6 }
        END { n = split(judged, v, " "); for (i = 1; i <= n; i++) if (!(v[i] in seen)) { printf "V%d has rs_candidates.jsonl but no oracle best-of-N rows\n", v[i]; bad = 1 }
              exit bad }' "$P/bon_oracle.tsv" >&2 || bad=1
else
    grep -q "^No iteration has its candidates judged by the oracle" "$R/report.md" ||
        fail "no vN/rs_candidates.jsonl, and the report does not say so"
fi

for m in "$R"/v*/ppo/metrics.tsv; do
    [ -f "$m" ] || continue
    awk -F'\t' 'NR > 1 && ($3 ~ /nan|inf/ || $3 != $3 + 0) { print FILENAME ": " $0; bad = 1 }
        $2 == "kl" && $3 < 0 { print FILENAME ": negative KL " $0; bad = 1 } END { exit bad }' "$m" >&2 || bad=1
done

# eval_rs.tsv: PPO's starting point, evaluated like every version (iteration, helpfulness, violations,
# false refusals, KL/answer): one finite, in-range row per iteration that ran PPO
for d in "$R"/v*/ppo; do
    [ -d "$d" ] || continue
    v=$(basename "$(dirname "$d")" | tr -d v)
    awk -F'\t' -v v="$v" '$1 == v { n++; for (i = 2; i <= 5; i++) if ($i ~ /nan|inf/ || $i == "" || (i < 5 && ($i < 0 || $i > 1))) bad = 1 }
        END { if (n != 1 || bad) { printf "V%s ran PPO: no valid evaluation of its starting point\n", v; exit 1 } }' "$P/eval_rs.tsv" >&2 || bad=1
    # and the paired comparison of the two on the same draws
    grep -q "^V$v, PPO against the rejection-sampling model on the same draws" "$R/report.md" ||
        { echo "V$v ran PPO: the report lacks its paired comparison with the rejection-sampling model" >&2; bad=1; }
done

[ $bad -eq 0 ] && echo "check_report: $R/report.md: all numbers finite and in range"
exit $bad
