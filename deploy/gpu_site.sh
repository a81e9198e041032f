# Sourced by deploy/gpu_bench.sh and deploy/gpu_train.sh on the lent GPU
# machine: install the kit's wheels beside its torch into a temporary site
# folder, set the environment and print what the machine has.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$ROOT/.gpukit"
[ -d "$KIT/wheels" ] || { echo "no $KIT: run deploy/gpu_kit.sh first" >&2; exit 1; }
SITE="$(mktemp -d)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --target "$SITE" "$KIT"/wheels/*.whl
export PYTHONPATH="$SITE:$ROOT" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$ROOT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
