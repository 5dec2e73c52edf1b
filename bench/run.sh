#!/bin/sh
# make bench: rlhf.c (bench_model) and the PyTorch reference (torch_bench.py) on the same shapes,
# same thread count, in one run; prints both and the ratio, side by side.
#   THREADS (default 2)  BUILD (default build)  CONFIGS (default "c1 c2")  QUICK=1 (short timings)
#   TORCH_VENV: the virtual environment with PyTorch (default .venv-bench, created on first use with
#   the current torch from PyPI; a GPU build is what PyPI serves, it runs on the CPU here).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
BUILD=${BUILD:-build}
CONFIGS=${CONFIGS:-c1 c2}
VENV=${TORCH_VENV:-.venv-bench}
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "bench: creating $VENV with torch from PyPI (several GB, once)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch numpy
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
secs=10; [ "${QUICK:-0}" = 1 ] && secs=1
qflag=""; [ "${QUICK:-0}" = 1 ] && qflag=--quick
for c in $CONFIGS; do
    echo "bench: $c rlhf.c ..." >&2
    OMP_NUM_THREADS=$THREADS "$BUILD/bench/bench_model" --config "$c" --threads "$THREADS" --seconds "$secs" >> "$out"
    echo "bench: $c torch ..." >&2
    OMP_NUM_THREADS=$THREADS "$VENV/bin/python" bench/torch_bench.py --config "$c" --threads "$THREADS" $qflag >> "$out"
done
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, threads $THREADS"
echo "torch: $(awk '$1 == "torch" && $2 == "version" {print $3}' "$out" | head -n 1)"
awk '
    $1 == "rlhf"  { r[$2 " " $3] = $4; seen[$2 " " $3] = 1 }
    $1 == "torch" && $2 != "version" { t[$2 " " $3] = $4; seen[$2 " " $3] = 1 }
    END {
        printf "%-4s %-20s %12s %12s %8s\n", "cfg", "metric", "rlhf.c", "torch", "ratio"
        n = split("params sgemm_gflops train_tok_s train_mfu decode_b1_tok_s decode_b8_tok_s", ms, " ")
        m = split("c1 c2", cs, " ")
        for (i = 1; i <= m; i++) for (j = 1; j <= n; j++) {
            k = cs[i] " " ms[j]
            if (!(k in seen)) continue
            rv = (k in r) ? r[k] : "-"; tv = (k in t) ? t[k] : "-"
            ratio = ((k in r) && (k in t) && t[k] > 0) ? sprintf("%.2fx", r[k] / t[k]) : ""
            printf "%-4s %-20s %12s %12s %8s\n", cs[i], ms[j], rv, tv, ratio
        }
        for (i = 1; i <= m; i++) if ((cs[i] " decode_b1_tok_s") in r && r[cs[i] " decode_b1_tok_s"] > 0)
            printf "%-4s rlhf.c decode batch 8 / batch 1: %.2fx\n", cs[i], r[cs[i] " decode_b8_tok_s"] / r[cs[i] " decode_b1_tok_s"]
    }' "$out"
