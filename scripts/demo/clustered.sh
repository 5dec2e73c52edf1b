#!/bin/sh
# clustered.sh COLUMN RISK SIGN TABLE [TABLE_0] — a rate of eval.sh's table.tsv and its standard error,
# clustered by prompt (the evaluation's draws repeat prompts, and the answers to one prompt go together).
#
# TABLE rows: prompt key, risk, helpfulness, safe, refusal (tab-separated). Over the rows whose risk is
# RISK ("-": every row), d = SIGN * the COLUMN value; with TABLE_0, d = SIGN * (value - TABLE_0's value
# for the same answer: the i-th row of a prompt key against TABLE_0's i-th row of that key; rows without
# a partner are left out). Prints "mean<TAB>se" with mean = sum d / n and
#     se = sqrt(G / (G - 1) * sum over prompts g of (sum_g d - n_g * mean)^2) / n      (G prompts; 0 if G = 1)
# the cluster-robust standard error of a mean. Exit status 1 when no row is left.
set -eu
[ $# -eq 4 ] || [ $# -eq 5 ] || { echo "usage: clustered.sh COLUMN RISK SIGN TABLE [TABLE_0]" >&2; exit 2; }
awk -F'\t' -v c="$1" -v risk="$2" -v sign="$3" -v paired="${5:+1}" '
    paired && NR == FNR { ref[$1 SUBSEP (++i0[$1])] = $c; next }
    { k = $1 SUBSEP (++i1[$1]) }
    (risk == "-" || $2 == risk) && (!paired || (k in ref)) {
        d = sign * ($c - (paired ? ref[k] : 0)); n++; sum += d; g[$1] += d; ng[$1]++ }
    END { if (!n) exit 1
          m = sum / n; G = 0; ss = 0
          for (p in g) { G++; ss += (g[p] - ng[p] * m) ^ 2 }
          se = G > 1 ? sqrt(ss * G / (G - 1)) / n : 0; printf "%.6f\t%.6f\n", m, se }' ${5:+"$5"} "$4"
