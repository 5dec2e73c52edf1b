#!/bin/sh
# report.sh RUN_DIR > RUN_DIR/report.md — the demo's report: markdown tables and gnuplot PNGs.
#
# Every number comes from RUN_DIR/prefs.db (the runs and metrics tables: `evaluate` runs for the
# held-out evaluation, rm_train eval runs for Table 8, rejection_sample runs for best-of-N, gatt_augment
# eval for adherence) except the PPO curves, which are also read from RUN_DIR/v*/ppo/metrics.tsv (the
# same numbers ppo put in the store), and best of N judged by the oracle, from RUN_DIR/vN/rs_candidates.jsonl
# (every candidate of rejection sampling with its reward) and RUN_DIR/vN/rs_oracle.jsonl (toyworld score
# of it; jq reads both). The PNGs go to RUN_DIR/plots/; the TSVs they are drawn from stay next to them,
# so `gnuplot` can redraw them. docs/demo.md explains how to read each part.
set -eu
[ $# -eq 1 ] || { echo "usage: report.sh RUN_DIR" >&2; exit 2; }
R=$1
DB=$R/prefs.db
P=$R/plots
[ -f "$DB" ] || { echo "report.sh: $DB: no such store" >&2; exit 2; }
mkdir -p "$P"
q() { sqlite3 -separator '	' "$DB" "$1"; }
have_gnuplot=1
command -v gnuplot >/dev/null 2>&1 || { have_gnuplot=0; echo "report.sh: gnuplot not found, no plots" >&2; }
plot() { [ $have_gnuplot -eq 0 ] || gnuplot -e "set terminal pngcairo size 800,480 noenhanced" "$@" 2>/dev/null ||
    gnuplot -e "set terminal png size 800,480 noenhanced" "$@"; }

# ---- the held-out evaluation per version ------------------------------------------------------------
# pivot PREFIX NAME[=DEFAULT]...: one row per iteration from its latest evaluate run with metrics PREFIX.*
# (eval.* for the version, eval_rs.* for PPO's starting point): the iteration, then PREFIX.NAME for each
# NAME (empty when the run has none, or DEFAULT)
pivot() {
    pv_pre=$1 pv_cols=
    shift
    for pv_c; do
        pv_e="max(case when name = '$pv_pre.${pv_c%%=*}' then value end)"
        case $pv_c in *=*) pv_e="coalesce($pv_e, ${pv_c#*=})" ;; esac
        pv_cols="$pv_cols, $pv_e"
    done
    q "with r as (select max(id) as id, iteration from runs where program = 'evaluate' and status = 'ok'
                 and exists (select 1 from metrics x where x.run_id = runs.id and x.name = '$pv_pre.helpfulness') group by iteration)
       select r.iteration$pv_cols from r join metrics m on m.run_id = r.id group by r.iteration order by r.iteration"
}
# eval.tsv columns: 1 iteration, 2-4 the rates, 5-8 win rates (V0's RM ones are 1/2), 9-10 KL, 11-13
# counts, 14-16 the rates' standard errors, 17-22 each rate's paired difference from V0 and its error
pivot eval helpfulness violation_rate false_refusal_rate win_oracle_helpfulness win_oracle_safety \
    win_rm_helpfulness=0.5 win_rm_safety=0.5 kl_per_token kl_per_answer n_answers n_adversarial n_borderline \
    helpfulness_se violation_rate_se false_refusal_rate_se helpfulness_vs_v0 helpfulness_vs_v0_se \
    violation_rate_vs_v0 violation_rate_vs_v0_se false_refusal_rate_vs_v0 false_refusal_rate_vs_v0_se >"$P/eval.tsv"
[ -s "$P/eval.tsv" ] || { echo "report.sh: $DB holds no evaluate runs" >&2; exit 1; }

echo "# RLHF demo report: $R"
echo
echo "Generated $(date -u +%Y-%m-%dT%H:%M:%SZ) from \`$DB\` (every number below is in its \`metrics\` table;"
echo "\`sqlite3 -header -column $DB 'select * from v_runs'\` lists the runs). docs/demo.md explains each part."
echo
echo "## Stages"
echo
echo "Wall-clock seconds per program and iteration, from the runs table (the time between a program's"
echo "start and end; tokenizer_train and toyworld do not record runs)."
echo
q "select iteration, program, sum((julianday(ended_at) - julianday(started_at)) * 86400)
   from runs where status = 'ok' group by iteration, program" >"$P/stages.tsv"
awk -F'\t' '{ it[$1] = 1; pr[$2] = 1; t[$1, $2] = $3; tot[$1] += $3; all += $3 }
    END { n = split("sft generate rm_train rm_train_eval gatt_augment rejection_sample ppo evaluate", cols, " ")
          printf "| iteration |"; for (c = 1; c <= n; c++) printf " %s |", cols[c]; printf " total |\n|---|"
          for (c = 1; c <= n; c++) printf "---|"; printf "---|\n"
          for (i = 0; i <= 99; i++) if (i in it) {
              printf "| V%d |", i
              for (c = 1; c <= n; c++) { k = cols[c]; sub(/_eval$/, " eval", k); printf " %s |", ((i, k) in t) ? sprintf("%.0f", t[i, k]) : "" }
              printf " %.0f |\n", tot[i] }
          printf "| all | | | | | | | | | %.0f |\n", all }' "$P/stages.tsv"
echo
echo "## Held-out evaluation per version (V0 = SFT)"
echo
n=$(awk -F'\t' 'NR == 1 { printf "%d answers (%d to adversarial, %d to borderline prompts)", $11, $12, $13 }' "$P/eval.tsv")
echo "On $n, several per prompt of the test split (oracle = \`toyworld score\`; win rates against V0: the"
echo "i-th answer to a prompt against V0's i-th answer to it, ties count one half; RM = judged by that version's own helpfulness and safety reward"
echo "models; KL = mean over the policy's own samples of log p_V - log p_V0)."
echo
echo "| version | helpfulness (oracle) | violation rate (adversarial) | false refusals (borderline) | win vs SFT, oracle helpfulness | win vs SFT, oracle safety | win vs SFT, RM helpfulness | win vs SFT, RM safety | KL/token | KL/answer |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '{ printf "| V%d | %.3f | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.4f | %.3f |\n",
    $1, $2, 100 * $3, 100 * $4, 100 * $5, 100 * $6, 100 * $7, 100 * $8, $9, $10 }' "$P/eval.tsv"
echo
# with the paired differences (eval.sh; runs before them have none): "; +0.048 ± 0.021" after each verdict
awk -F'\t' 'NR == 1 { h0 = $2; v0 = $3; f0 = $4 } { last = $1; h = $2; v = $3; f = $4; row = $0 }
    END {
        split(row, c, "\t"); se = (c[17] != "")
        printf "V%d against SFT: helpfulness %.3f -> %.3f (%s%s), violation rate %.1f%% -> %.1f%% (%s%s), false refusals %.1f%% -> %.1f%% (%s%s).\n",
            last, h0, h, (h > h0) ? "higher" : "NOT higher", se ? sprintf("; %+.3f ± %.3f", c[17], c[18]) : "",
            100 * v0, 100 * v, (v < v0) ? "lower" : "NOT lower", se ? sprintf("; %+.1f ± %.1f points", 100 * c[19], 100 * c[20]) : "",
            100 * f0, 100 * f, (f <= f0 + 0.05) ? "within 5 points" : "MORE than 5 points higher",
            se ? sprintf("; %+.1f ± %.1f points", 100 * c[21], 100 * c[22]) : ""
        if (se) {
            printf "\nThe differences are paired (each answer against SFT'"'"'s answer to the same prompt draw), ± one standard\n"
            printf "error clustered by prompt: the evaluation draws repeat prompts, and answers to one prompt go together.\n"
            printf "The rates alone are less certain than their answer counts suggest: V%d'"'"'s helpfulness ± %.3f, violations\n", last, c[14]
            printf "± %.1f points, false refusals ± %.1f points (clustered by prompt).\n", 100 * c[15], 100 * c[16]
        }
    }' "$P/eval.tsv"
echo
plot -e "set output '$P/fig11_rm.png'; set title 'Win rate against SFT judged by the reward models (Figure 11)';
    set xlabel 'harmlessness win rate (safety RM)'; set ylabel 'helpfulness win rate (helpfulness RM)';
    set xrange [0:1]; set yrange [0:1]; set grid; set key off;
    plot '$P/eval.tsv' using 8:7 with linespoints pt 7, '' using 8:7:(sprintf('V%d', \$1)) with labels offset 1.5,0.8"
plot -e "set output '$P/fig11_oracle.png'; set title 'Helpfulness and violations per version (oracle)';
    set xlabel 'violation rate on adversarial prompts'; set ylabel 'oracle helpfulness';
    set grid; set key off;
    plot '$P/eval.tsv' using 3:2 with linespoints pt 7, '' using 3:2:(sprintf('V%d', \$1)) with labels offset 1.5,0.8"
echo "![Figure 11, judged by the reward models](plots/fig11_rm.png)"
echo "![helpfulness against violations, judged by the oracle](plots/fig11_oracle.png)"
echo

# ---- reward-model accuracy per rating (Table 8) ------------------------------------------------------
# the latest eval run of each (iteration, dimension): row, ratings 3..0, avg
q "with r as (select max(r.id) as id, r.iteration, substr(m.name, 5, length(m.name) - 8) as dim
              from runs r join metrics m on m.run_id = r.id
              where r.program like 'rm_train%' and r.status = 'ok' and m.name in ('acc.helpfulness.avg', 'acc.safety.avg')
              group by r.iteration, dim)
   select r.iteration, r.dim,
          max(case when name = 'acc.' || r.dim || '.significantly_better' then value end),
          max(case when name = 'acc.' || r.dim || '.better' then value end),
          max(case when name = 'acc.' || r.dim || '.slightly_better' then value end),
          max(case when name = 'acc.' || r.dim || '.negligibly_better' then value end),
          max(case when name = 'acc.' || r.dim || '.avg' then value end),
          max(case when name = 'n.' || r.dim || '.significantly_better' then value end),
          max(case when name = 'n.' || r.dim || '.better' then value end),
          max(case when name = 'n.' || r.dim || '.slightly_better' then value end),
          max(case when name = 'n.' || r.dim || '.negligibly_better' then value end)
   from r join metrics m on m.run_id = r.id group by r.iteration, r.dim order by r.iteration, r.dim" >"$P/rm_acc.tsv"
echo "## Reward-model accuracy per rating (Table 8)"
echo
echo "On the test split's comparisons of all iterations so far (pairs: significantly better / better /"
echo "slightly better / negligibly better or unsure). A tie counts one half."
echo
echo "| iteration | reward model | significantly better | better | slightly better | negligibly better / unsure | avg |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' '{ printf "| V%d | %s | %.1f%% (%d) | %.1f%% (%d) | %.1f%% (%d) | %.1f%% (%d) | %.1f%% |\n",
    $1, $2, 100 * $3, $8, 100 * $4, $9, 100 * $5, $10, 100 * $6, $11, 100 * $7 }' "$P/rm_acc.tsv"
echo
last=$(tail -n 1 "$P/rm_acc.tsv" | cut -f1)
# one row per rating: label, helpfulness RM, safety RM (a rating without test pairs: 0, shown as no bar)
awk -F'\t' -v OFS='\t' -v it="$last" '$1 == it { for (i = 3; i <= 6; i++) v[$2, i] = $i + 0 }
    END { split("significantly-better better slightly-better negligibly-better/unsure", lab, " ")
          for (i = 3; i <= 6; i++) print lab[i - 2], v["helpfulness", i], v["safety", i] }' "$P/rm_acc.tsv" >"$P/table8.tsv"
plot -e "set output '$P/table8.png'; set title 'Reward-model accuracy per rating, iteration $last (Table 8)';
    set ylabel 'accuracy on test pairs'; set yrange [0:1]; set grid ytics; set style data histogram;
    set style histogram clustered; set style fill solid 0.7; set key top right;
    plot '$P/table8.tsv' using 2:xtic(1) title 'helpfulness RM', '' using 3 title 'safety RM'"
echo "![Table 8](plots/table8.png)"
echo
# the same evaluation of iteration $last per prompt category (rm_train eval --by category): dimension,
# category, significantly better (acc, n), avg (acc, n)
q "with r as (select max(r.id) as id, substr(m.name, 5, length(m.name) - 8) as dim
              from runs r join metrics m on m.run_id = r.id
              where r.program like 'rm_train%' and r.status = 'ok' and r.iteration = $last
                and m.name in ('acc.helpfulness.avg', 'acc.safety.avg')
              group by dim),
        c as (select r.dim, m.name, m.value,
                     substr(m.name, length('acc.' || r.dim || '.category.') + 1) as rest
              from r join metrics m on m.run_id = r.id where m.name like 'acc.' || r.dim || '.category.%'),
        cells as (select dim, substr(rest, 1, instr(rest, '.') - 1) as cat, substr(rest, instr(rest, '.') + 1) as col, value
                  from c)
   select cells.dim, cells.cat,
          max(case when col = 'significantly_better' then value end),
          (select value from r join metrics n on n.run_id = r.id
           where r.dim = cells.dim and n.name = 'n.' || cells.dim || '.category.' || cells.cat || '.significantly_better'),
          max(case when col = 'avg' then value end),
          (select value from r join metrics n on n.run_id = r.id
           where r.dim = cells.dim and n.name = 'n.' || cells.dim || '.category.' || cells.cat || '.avg')
   from cells group by cells.dim, cells.cat order by cells.dim, cells.cat" >"$P/rm_acc_category.tsv"
if [ -s "$P/rm_acc_category.tsv" ]; then
    echo "Per prompt category at V$last (\`rm_train eval --by category\`): where the \"significantly better\""
    echo "column comes from (pairs in brackets)."
    echo
    echo "| reward model | category | significantly better | all ratings |"
    echo "|---|---|---|---|"
    awk -F'\t' '{ printf "| %s | %s | %s | %.1f%% (%d) |\n", $1, $2,
        ($3 == "" ? "-" : sprintf("%.1f%% (%d)", 100 * $3, $4)), 100 * $5, $6 }' "$P/rm_acc_category.tsv"
    echo
fi

# ---- best-of-N (Figure 7) ----------------------------------------------------------------------------
q "with r as (select max(id) as id, iteration from runs where program = 'rejection_sample' and status = 'ok' group by iteration)
   select r.iteration, m.step, m.name, m.value from r join metrics m on m.run_id = r.id
   where m.name like 'max_reward@%' or m.name like 'median_reward@%' order by r.iteration, m.name, m.step" >"$P/best_of_n.tsv"
echo "## Rejection sampling: best of N (Figure 7)"
echo
echo "Mean over prompts of the maximum and median combined reward among N samples (exact expectation over"
echo "the N-subsets of the K drawn), per iteration and temperature. The gap between the curves is what"
echo "rejection sampling gains."
echo
echo "| iteration | temperature | N | max reward | median reward |"
echo "|---|---|---|---|---|"
awk -F'\t' '{ split($3, a, "@"); key = $1 SUBSEP a[2] SUBSEP $2; v[key, a[1]] = $4; if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    END { for (i = 1; i <= n; i++) { split(order[i], k, SUBSEP)
          printf "| V%d | %s | %d | %.3f | %.3f |\n", k[1], k[2], k[3], v[order[i], "max_reward"], v[order[i], "median_reward"] } }' "$P/best_of_n.tsv"
echo
cmd=""
for it in $(cut -f1 "$P/best_of_n.tsv" | sort -un); do
    # the first temperature of the iteration (0.7 in the demo's configs): one curve per iteration
    t=$(awk -F'\t' -v it="$it" '$1 == it && $3 ~ /^max_reward@/ { sub(/^max_reward@/, "", $3); print $3; exit }' "$P/best_of_n.tsv")
    awk -F'\t' -v it="$it" -v m="max_reward@$t" -v d="median_reward@$t" '$1 == it && $3 == m { mx[$2] = $4 } $1 == it && $3 == d { md[$2] = $4 }
        END { for (n in mx) print n, mx[n], md[n] }' "$P/best_of_n.tsv" | sort -n -k1,1 >"$P/bon_v$it.dat"
    cmd="$cmd${cmd:+, }'$P/bon_v$it.dat' using 1:2 with linespoints lc $it title 'V$it max (T=$t)', '' using 1:3 with lines dt 2 lc $it title 'V$it median'"
done
[ -z "$cmd" ] || plot -e "set output '$P/fig7.png'; set title 'Best of N: mean max combined reward (Figure 7)';
    set xlabel 'N samples'; set ylabel 'reward (logit)'; set grid; set key outside right; plot $cmd"
echo "![Figure 7](plots/fig7.png)"
echo

# ---- best-of-N judged by the oracle --------------------------------------------------------------------
# vN/rs_candidates.jsonl (rejection_sample --candidates: every candidate with its combined reward) and
# vN/rs_oracle.jsonl (toyworld score of it, line for line). New samples only, as the reward-model curve:
# per iteration, temperature and N, the mean over prompts of the oracle helpfulness of the reward
# models' pick (the arg-max of the reward) among N of the K samples, of the oracle's own best among
# them, and the unsafe share of the pick — each the exact expectation over the N-subsets, as above.
echo "### Best of N judged by the oracle"
echo
: >"$P/bon_oracle_in.tsv"
missing=""
for d in "$R"/v*; do
    [ -f "$d/rs.done" ] || [ -f "$d/rs_candidates.jsonl" ] || continue
    it=$(basename "$d" | tr -d v)
    c=$d/rs_candidates.jsonl o=$d/rs_oracle.jsonl
    if [ ! -s "$c" ] || [ ! -s "$o" ] || [ "$(wc -l <"$c")" -ne "$(wc -l <"$o")" ]; then
        missing="$missing V$it"
        continue
    fi
    # iteration, temperature, prompt id, sample, reward, oracle helpfulness, unsafe (1/0)
    jq -n -r --arg it "$it" --slurpfile a "$c" --slurpfile o "$o" '
        range(0; $a | length) as $i | select(($a[$i].pooled | not) and $o[$i].helpfulness != null)
        | [$it, $a[$i].temperature, $a[$i].prompt.id, $a[$i].sample, $a[$i].reward, $o[$i].helpfulness,
           (if $o[$i].safe then 0 else 1 end)] | @tsv' >>"$P/bon_oracle_in.tsv"
done
# -> iteration, temperature, N, prompts, oracle helpfulness of the RM pick, oracle's best, unsafe share of the pick
awk -F'\t' -v OFS='\t' '
    function choose(n, k,   c, j) { c = 1; for (j = 1; j <= k; j++) c = c * (n - k + j) / j; return c }
    # idx[1..m] sorted by key ascending; among equal keys a larger tie value comes first
    function isort(idx, m, key, tie,   i, j, t) {
        for (i = 2; i <= m; i++) {
            t = idx[i]
            for (j = i - 1; j >= 1 && (key[idx[j]] > key[t] || (key[idx[j]] == key[t] && tie[idx[j]] < tie[t])); j--) idx[j + 1] = idx[j]
            idx[j + 1] = t } }
    { it_t = $1 SUBSEP sprintf("%g", $2); g = it_t SUBSEP $3; n = ++size[g]
      Rw[g, n] = $5; H[g, n] = $6; U[g, n] = $7; S[g, n] = $4; if (n > K[it_t]) K[it_t] = n }
    END {
        for (g in size) {
            split(g, p, SUBSEP); it_t = p[1] SUBSEP p[2]; k = K[it_t]
            if (size[g] != k) continue  # a prompt the oracle could not judge every answer of
            np[it_t]++
            for (i = 1; i <= k; i++) { a[i] = b[i] = i; r[i] = Rw[g, i]; h[i] = H[g, i]; u[i] = U[g, i]; s[i] = S[g, i]; z[i] = 0 }
            isort(a, k, r, s)  # on equal rewards the lower sample number ranks higher: rejection_sample keeps the first
            isort(b, k, h, z)
            # the i-th smallest of K is the largest of a random N-subset with probability C(i-1, N-1) / C(K, N)
            for (N = 1; N <= k; N++) {
                c = choose(k, N)
                for (i = N; i <= k; i++) {
                    w = choose(i - 1, N - 1) / c
                    pick[it_t, N] += w * h[a[i]]; unsafe[it_t, N] += w * u[a[i]]; best[it_t, N] += w * h[b[i]] } } }
        for (x in K) if (np[x]) { split(x, p, SUBSEP)
            for (N = 1; N <= K[x]; N++) print p[1], p[2], N, np[x], pick[x, N] / np[x], best[x, N] / np[x], unsafe[x, N] / np[x] } }' \
    "$P/bon_oracle_in.tsv" | sort -k1,1n -k2,2g -k3,3n >"$P/bon_oracle.tsv"
if [ ! -s "$P/bon_oracle.tsv" ]; then
    echo "No iteration has its candidates judged by the oracle (vN/rs_candidates.jsonl from"
    echo "\`rejection_sample --candidates\`, vN/rs_oracle.jsonl from \`toyworld score\`): this run directory predates"
    echo "them; a fresh run of the demo writes them."
else
    echo "The same samples judged by the oracle (\`toyworld score\` of \`vN/rs_candidates.jsonl\`, new samples only,"
    echo "pooled answers left out): the oracle helpfulness of the answer the reward models pick among N samples,"
    echo "and as an upper bound the oracle's own best among them, each the mean over prompts of the exact"
    echo "expectation over the N-subsets of the K drawn. Where the reward models' best of N keeps rising but"
    echo "the oracle's view of their pick does not, selection is over-optimizing an imperfect reward model."
    [ -z "$missing" ] || { echo; echo "Not judged (no candidates or oracle file, older run):$missing."; }
    echo
    echo "| iteration | temperature | N | RM: max reward | oracle helpfulness of the RM's pick | oracle's best helpfulness (upper bound) | unsafe share of the RM's pick | prompts |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' 'NR == FNR { split($3, a, "@"); if (a[1] == "max_reward") mx[$1, sprintf("%g", a[2]), $2] = $4; next }
        { k = $1 SUBSEP $2 SUBSEP $3
          printf "| V%d | %s | %d | %s | %.3f | %.3f | %.1f%% | %d |\n", $1, $2, $3, (k in mx) ? sprintf("%.3f", mx[k]) : "-", $5, $6, 100 * $7, $4 }' \
        "$P/best_of_n.tsv" "$P/bon_oracle.tsv"
    echo
    # one sentence per iteration and temperature: where the pick peaks, against the reward models' curve
    awk -F'\t' 'NR == FNR { split($3, a, "@"); if (a[1] == "max_reward") mx[$1, sprintf("%g", a[2]), $2] = $4; next }
        { k = $1 SUBSEP $2; if (!(k in first)) { first[k] = $5; order[++n] = k; peak[k] = -1 }
          if ($5 > peak[k] + 1e-12) { peak[k] = $5; at[k] = $3 } K[k] = $3; last[k] = $5; top[k] = $6 }
        END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, SUBSEP)
              rm = ((p[1], p[2], 1) in mx && (p[1], p[2], K[k]) in mx) ? sprintf("the reward models'"'"' best rises %.3f -> %.3f; ", mx[p[1], p[2], 1], mx[p[1], p[2], K[k]]) : ""
              printf "- V%d, T=%s, N = 1 -> %d: %sthe oracle helpfulness of their pick goes %.3f -> %.3f, highest at N = %d (%.3f); the oracle'"'"'s own best of %d: %.3f.\n",
                  p[1], p[2], K[k], rm, first[k], last[k], at[k], peak[k], K[k], top[k] } }' "$P/best_of_n.tsv" "$P/bon_oracle.tsv"
    echo
    cmd=""; cmd2=""
    for it in $(cut -f1 "$P/bon_oracle.tsv" | sort -un); do
        # the first temperature of the iteration, as in Figure 7
        t=$(awk -F'\t' -v it="$it" '$1 == it { print $2; exit }' "$P/bon_oracle.tsv")
        awk -F'\t' -v it="$it" -v t="$t" '$1 == it && $2 == t { print $3, $5, $6 }' "$P/bon_oracle.tsv" >"$P/bon_oracle_v$it.dat"
        cmd="$cmd${cmd:+, }'$P/bon_oracle_v$it.dat' using 1:2 with linespoints lc $it"
        cmd2="$cmd2${cmd2:+, }'$P/bon_oracle_v$it.dat' using 1:2 with lines lc $it title 'V$it (T=$t)', '' using 1:3 with linespoints dt 2 lc $it notitle"
    done
    # left: the picks, scaled to show where they peak; right: the same (solid) under the oracle's own best (dashed)
    plot -e "set output '$P/fig7_oracle.png'; set multiplot layout 1,2 title 'Best of N judged by the oracle (toyworld score)';
        set xlabel 'N samples'; set xtics 1; set grid; unset key;
        set title 'the reward models'' pick'; set ylabel 'oracle helpfulness'; plot $cmd;
        set title 'the oracle''s own best (dashed) and the pick'; unset ylabel; set key top left; plot $cmd2; unset multiplot"
    echo "![Best of N judged by the oracle](plots/fig7_oracle.png)"
fi
echo

# ---- PPO ----------------------------------------------------------------------------------------------
echo "## PPO: reward and KL per step"
echo
ppo_runs=$(ls -d "$R"/v*/ppo 2>/dev/null || true)
if [ -z "$ppo_runs" ]; then
    echo "No iteration ran PPO."
else
    echo "| run | iterations | first reward | last reward | last KL (k3, per answer) | last held-out reward |"
    echo "|---|---|---|---|---|---|"
    cmd=""; cmd2=""
    for d in $ppo_runs; do
        v=$(basename "$(dirname "$d")")
        awk -F'\t' '$2 == "reward" { print $1, $3 }' "$d/metrics.tsv" >"$P/ppo_reward_$v.dat"
        awk -F'\t' '$2 == "kl" { print $1, $3 }' "$d/metrics.tsv" >"$P/ppo_kl_$v.dat"
        awk -F'\t' '$2 == "reward" { if (!n++) f = $3; l = $3; it = $1 } $2 == "kl" { k = $3 } $2 == "eval_reward" { e = $3 }
            END { printf "| %s | %d | %.3f | %.3f | %.4f | %s |\n", run, it, f, l, k, (e == "" || e ~ /nan/) ? "-" : sprintf("%.3f", e) }' run="$v" "$d/metrics.tsv"
        cmd="$cmd${cmd:+, }'$P/ppo_reward_$v.dat' with lines title '$v reward'"
        cmd2="$cmd2${cmd2:+, }'$P/ppo_kl_$v.dat' with lines axes x1y2 title '$v KL'"
    done
    plot -e "set output '$P/ppo.png'; set title 'PPO: mean combined reward R_c (raw, a logit) and KL to the reference';
        set xlabel 'PPO iteration'; set ylabel 'mean reward'; set y2label 'KL (k3, per answer)'; set y2tics; set grid;
        plot $cmd, $cmd2"
    echo
    echo "![PPO](plots/ppo.png)"
    # PPO against its starting point: the same held-out evaluation of the rejection-sampling model
    pivot eval_rs helpfulness violation_rate false_refusal_rate kl_per_answer >"$P/eval_rs.tsv"
    if [ -s "$P/eval_rs.tsv" ]; then
        echo
        echo "Held-out, as in the evaluation table: PPO's policy against the rejection-sampling model it started from."
        echo
        echo "| iteration | policy | helpfulness (oracle) | violation rate | false refusals | KL/answer to SFT |"
        echo "|---|---|---|---|---|---|"
        awk -F'\t' 'NR == FNR { h[$1] = $2; v[$1] = $3; f[$1] = $4; k[$1] = $10; next }
            { printf "| V%d | rejection sampling | %.3f | %.1f%% | %.1f%% | %.3f |\n", $1, $2, 100 * $3, 100 * $4, $5
              if ($1 in h) printf "| V%d | PPO | %.3f | %.1f%% | %.1f%% | %.3f |\n", $1, h[$1], 100 * v[$1], 100 * f[$1], k[$1] }' \
            "$P/eval.tsv" "$P/eval_rs.tsv"
        # the same draws answered by both: PPO's answers against its start's, paired, clustered by prompt
        for it in $(cut -f 1 "$P/eval_rs.tsv"); do
            a=$R/v$it/eval/table.tsv b=$R/v$it/eval_rs/table.tsv
            [ -s "$a" ] && [ -s "$b" ] || continue
            dh=$(sh scripts/demo/clustered.sh 3 - 1 "$a" "$b") dv=$(sh scripts/demo/clustered.sh 4 adversarial -1 "$a" "$b")
            df=$(sh scripts/demo/clustered.sh 5 borderline 1 "$a" "$b")
            echo
            printf '%s\t%s\t%s\n' "$dh" "$dv" "$df" | awk -F'\t' -v it="$it" '{
                printf "V%d, PPO against the rejection-sampling model on the same draws (paired, ± one standard error\n", it
                printf "clustered by prompt): helpfulness %+.3f ± %.3f, violations %+.1f ± %.1f points, false refusals %+.1f ± %.1f points.\n",
                    $1, $2, 100 * $3, 100 * $4, 100 * $5, 100 * $6 }'
        done
    fi
fi
echo

# ---- GAtt (Figure 9) ----------------------------------------------------------------------------------
echo "## GAtt: adherence to the system instruction per turn (Figure 9)"
echo
if [ -f "$R/gatt_eval/adherence.tsv" ]; then
    echo "Share of held-out multi-turn dialogues whose assistant turn t follows the first turn's system"
    echo "instruction (\`gatt_augment eval\`: greedy answers, checked by the instruction's rule). GAtt examples"
    echo "join the fine-tune from V3 on."
    echo
    awk -F'\t' 'NR == 1 { printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n|"; for (i = 1; i <= NF; i++) printf "---|"; printf "\n"; next }
        { printf "|"; for (i = 1; i <= NF; i++) printf " %s |", (i > 2 && $i ~ /nan/) ? "-" : (i > 2) ? sprintf("%.2f", $i) : $i; printf "\n" }' "$R/gatt_eval/adherence.tsv"
    echo
    echo "(- : no dialogue of that length was answered up to that turn by that model.)"
    echo
    if [ -f "$R/gatt_eval/adherence.png" ]; then
        cp "$R/gatt_eval/adherence.png" "$P/fig9.png"
        echo "![Figure 9](plots/fig9.png)"
    fi
else
    echo "No GAtt evaluation found ($R/gatt_eval/adherence.tsv)."
fi
