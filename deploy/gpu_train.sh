#!/usr/bin/env bash
# On the lent GPU machine: install the kit's wheels beside its torch, train
# `recprice train`'s default recipe on MovieLens-100K in bf16 and rank the
# test split (python -m bench.gpu_train). Build the kit here first with
# deploy/gpu_kit.sh; then, with the device tool:
#
#   run(command="bash deploy/gpu_train.sh", carry=[".gpukit"], timeout_s=480)
#
# Results go to $OUT/gpu_train.json (the device tool brings $OUT back), else
# to bench/results/gpu_train.json. Extra options go to bench.gpu_train
# (--epochs N, --nproc N for several GPUs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$ROOT/.gpukit"
[ -d "$KIT/wheels" ] || { echo "no $KIT: run deploy/gpu_kit.sh first" >&2; exit 1; }
SITE="$(mktemp -d)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --target "$SITE" "$KIT"/wheels/*.whl
export PYTHONPATH="$SITE:$ROOT" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$ROOT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m bench.gpu_train --model "$KIT/minilm" --movielens "$KIT/ml-100k" \
  --out "${OUT:-$ROOT/bench/results}/gpu_train.json" "$@"
