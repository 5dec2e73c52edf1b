#!/bin/sh
# Checkpoint interop with Hugging Face transformers, both ways (tests/ref/check_interop.py says what
# is compared). Not part of `make test`: it needs the PyTorch venv with transformers, which CI does
# not install. Builds ckpt_tool first; creates the venv on first use.
#
#   sh scripts/check-interop.sh [--keep DIR]     (what `make check-interop` runs)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s "$BUILD/bin/ckpt_tool"
sh bench/setup_venv.sh --with-transformers >&2
.venv/bin/python -c 'import safetensors' 2>/dev/null || .venv/bin/pip install -q safetensors
exec .venv/bin/python tests/ref/check_interop.py --bin "$BUILD/bin" --data "${DATA:-../shared/data}" "$@"
