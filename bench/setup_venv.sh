#!/bin/sh
# Creates .venv (git-ignored) at the repository root with a CPU-usable PyTorch from PyPI, for
# tests/ref/*.py (fixture generators) and bench/torch_bench.py. Never needed by `make test` or CI:
# the fixtures are committed. Safe to rerun: it does nothing when the venv already works.
#
#   sh bench/setup_venv.sh                      torch + numpy
#   sh bench/setup_venv.sh --with-transformers  also transformers, for tests/ref/check_hf.py
#
# Why torch 1.12.1 on Python 3.10: since 1.13, PyPI's Linux x86_64 torch wheel links against CUDA
# libraries shipped as separate nvidia-* packages (several GB), and `import torch` fails without
# them (checked with 2.15.0 --no-deps: "libcufile.so.0: cannot open shared object file"). CPU-only
# wheels live on PyTorch's own index, which is not reachable here. 1.12.1 is the newest PyPI wheel
# that carries its CUDA 10.2 runtime inside (~750 MB) and imports and runs fine without a GPU;
# it has wheels for CPython 3.7-3.10 only, hence python3.10 (PYTHON=... overrides the search).
set -eu
cd "$(dirname "$0")/.."
TORCH_SPEC="torch==1.12.1"
NUMPY_SPEC="numpy<2"                # torch 1.12 was built against the numpy 1.x ABI
TRANSFORMERS_SPEC="transformers==4.38.2"  # the last line that still supports torch 1.12 with GQA and rope_theta
VENV=${VENV:-.venv}                  # VENV=... builds elsewhere (for testing this script)
want_tf=0
for a in "$@"; do
    case "$a" in
        --with-transformers) want_tf=1 ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup_venv.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
    esac
done

works() {
    "$VENV/bin/python" -c 'import torch, numpy; assert torch.__version__.startswith("1.12.1"); torch.ones(2) @ torch.ones(2)' 2>/dev/null || return 1
    [ "$want_tf" -eq 0 ] || "$VENV/bin/python" -c 'import transformers' 2>/dev/null
}
if [ -x "$VENV/bin/python" ] && works; then
    echo "setup_venv.sh: $VENV ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
    exit 0
fi

find_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    for p in python3.10 "$(pyenv root 2>/dev/null)"/versions/3.10*/bin/python \
             "$HOME"/.pyenv/versions/3.10*/bin/python /usr/bin/python3.10; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
            echo "$p"; return
        fi
    done
}
PY=$(find_python)
if [ -z "$PY" ]; then
    echo "setup_venv.sh: no Python 3.10 found (torch 1.12.1 has no wheel for newer ones); install one (e.g. pyenv install 3.10) or set PYTHON=/path/to/python3.10" >&2
    exit 1
fi

if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    echo "setup_venv.sh: $VENV exists with another Python version; remove it and rerun" >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" "$NUMPY_SPEC"
[ "$want_tf" -eq 0 ] || "$VENV/bin/python" -m pip install --quiet "$TRANSFORMERS_SPEC"
if ! works; then
    echo "setup_venv.sh: $VENV was built but 'import torch' still fails" >&2
    exit 1
fi
echo "setup_venv.sh: $VENV ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
