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

source "$(dirname "${BASH_SOURCE[0]}")/gpu_site.sh"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
python3 -m bench.gpu --model "$KIT/minilm" --movielens "$KIT/ml-100k" \
  --out "${OUT:-$ROOT/bench/results}/gpu.json" "$@"
