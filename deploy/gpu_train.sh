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

source "$(dirname "${BASH_SOURCE[0]}")/gpu_site.sh"
python3 -m bench.gpu_train --model "$KIT/minilm" --movielens "$KIT/ml-100k" \
  --out "${OUT:-$ROOT/bench/results}/gpu_train.json" "$@"
