#!/usr/bin/env bash
# On the lent GPU machine: install the kit's wheels beside its torch and run
# steps 1 to 3 of the bench (python -m bench.gpu). Build the kit here first
# with deploy/gpu_kit.sh; see bench/RESULTS.md for what the figures mean.
#
#   bash deploy/gpu_bench.sh [bench.gpu options]
#
# Results go to $OUT/gpu.json (the device tool brings $OUT back), else to
# bench/results/gpu.json.
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
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
python3 -m bench.gpu --model "$KIT/minilm" --movielens "$KIT/ml-100k" \
  --out "${OUT:-$ROOT/bench/results}/gpu.json" "$@"
