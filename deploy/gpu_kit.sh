#!/usr/bin/env bash
# Pack what the lent GPU machine lacks into .gpukit/ (git-ignored), for
# deploy/gpu_bench.sh to run there: that machine has Python 3.12 with torch,
# but no network, none of our other dependencies, no MovieLens and no MiniLM.
#
#   deploy/gpu_kit.sh            (here, after `make install`; about a minute)
#
# Then, with the device tool: run(command="bash deploy/gpu_bench.sh",
# carry=[".gpukit"], timeout_s=540). The kit must stay under the tool's 64 MiB
# working-tree limit, so MiniLM travels in float16 (the GPU bench computes in
# bf16 anyway).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$ROOT/.gpukit"
PY="$ROOT/.venv/bin/python"
# The versions installed here (so the kit follows pyproject.toml), as wheels
# for CPython 3.12 on x86-64 Linux. torch, transformers, tokenizers,
# safetensors and numpy are the GPU machine's own: our transformers and its
# hub client would add 16 MiB, more than the limit leaves beside MiniLM, and
# encoders/model.py uses only its stable top-level names.
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
WHEELS=()
for name in pydantic pydantic_core annotated_types typing_inspection typing_extensions orjson tqdm; do
  WHEELS+=("$name==$(version "$name")")
done

rm -rf "$KIT"
mkdir -p "$KIT/wheels" "$KIT/ml-100k"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$KIT/wheels" "${WHEELS[@]}"

HF_HUB_OFFLINE=1 "$PY" - "$KIT" <<'PY'
import shutil, sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from encoders.model import pretrained_dir
from streams.offline.movielens import bundled_dir

kit = Path(sys.argv[1])
source, minilm = pretrained_dir(), kit / "minilm"
minilm.mkdir()
weights = load_file(str(source / "model.safetensors"))
save_file({k: v.half().contiguous() for k, v in weights.items()}, str(minilm / "model.safetensors"))
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy2(source / name, minilm / name)
for name in ("ml-100k.inter", "ml-100k.item"):
    shutil.copy2(bundled_dir() / name, kit / "ml-100k" / name)
PY

size=$(du -sb "$KIT" | cut -f1)
echo "gpu kit: $KIT, $((size / 1048576)) MiB (the device tool carries 64 MiB with the tree)"
if [ "$size" -gt $((56 * 1048576)) ]; then
  echo "gpu kit: over 56 MiB, too close to the device tool's 64 MiB with the tree" >&2
  exit 1
fi
