"""``python -m bench.gpu_train``: the default recipe's training run for the lent GPU machine."""

import subprocess
import sys
from pathlib import Path

import orjson

from bench.gpu_train import gpu_config, main
from tests.unit.test_gpu_bench import ABSENT_THERE


def test_the_gpu_training_script_imports_nothing_the_gpu_machine_lacks():
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT_THERE)
    code = f"import sys; {block}; import bench.gpu_train"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_gpu_recipe_is_the_default_one_in_bf16_with_whole_batches():
    config = gpu_config("cuda", {})
    assert config.precision == "bf16" and config.micro_batch_size == 0
    defaults = gpu_config("cuda", {}).model_dump()
    for field in ("epochs", "batch_size", "train_layers", "max_train_per_user", "history"):
        assert defaults[field] == type(config).model_fields[field].default


def test_a_short_cpu_run_trains_evaluates_and_writes_its_metrics(
    tiny_model_dir: Path, tmp_path: Path
):
    out = tmp_path / "gpu_train.json"
    assert (
        main(
            ["--model", str(tiny_model_dir), "--epochs", "1", "--max-steps", "2"]
            + ["--out", str(out)]
        )
        == 0
    )
    results = orjson.loads(out.read_bytes())
    assert results["device"] == "cpu" and results["config"]["precision"] == "fp32"
    assert results["training"]["steps"] == 2
    assert results["examples"]["valid"] == 943  # MovieLens-100K: one validation case per user
    assert results["test"]["cases"] == 943 and 0 < results["popularity_test"]["ndcg@10"] < 1
    assert 0 <= results["test"]["ndcg@10"] <= 1
