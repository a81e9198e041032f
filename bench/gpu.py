"""Steps 1 to 3 of the bench on a machine without Kafka: the lent GPU machine.

Run as ``python -m bench.gpu [--model DIR] [--movielens DIR] [--out FILE]``.
It measures the raw user tower, the production scoring path (summary ->
tokenize -> forward -> top-K -> prices) and micro-batching against one user
at a time, on CUDA in bf16 when there is a GPU (float32 on CPU), and checks
the GPU targets (bench/RESULTS.md, "Targets"). ``deploy/gpu_kit.sh`` packs what the GPU machine
lacks (a few wheels, MiniLM's weights, MovieLens-100K's files) into
``.gpukit/``; ``deploy/gpu_bench.sh`` runs this there. Nothing here imports
Faust or a Kafka client: that machine has neither, nor a broker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import orjson
import torch

from bench.ranker import ScoringPath
from bench.scoring_steps import (
    GPU_SIZES,
    at_least,
    describe_device,
    run_scoring_steps,
    scoring_targets,
    sizes_table,
    targets_table,
)
from bench.workload import load_workload
from encoders.config import EncoderConfig
from encoders.model import MODEL_FILE, Recommender, load_model_dir, load_pretrained
from encoders.ranker import Ranker

WORKER_MAX_BATCH = 64
"""The worker's default ``scorer.max_batch``: the micro-batch step 3 compares with one user."""


def load_any(model: Path | None) -> Recommender:
    """A recprice model directory, a Hugging Face encoder directory, or the bundled MiniLM."""
    if model is not None and (model / MODEL_FILE).is_file():
        return load_model_dir(model)
    return load_pretrained(path=model)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Measure steps 1 to 3 and return the results object."""
    started = dt.datetime.now(dt.UTC)
    config = EncoderConfig(device=args.device)
    ranker = Ranker(load_any(args.model), config)
    device = describe_device(ranker)
    print(f"device: {device}", flush=True)
    workload = load_workload(args.states, folder=args.movielens)
    catalog = dict(sorted(workload.items.items()))
    index = ranker.build_index([(i.item_id, i.text()) for i in catalog.values()])
    path = ScoringPath(ranker, index, workload, catalog)
    gpu = ranker.device.type == "cuda"
    sizes = args.sizes or (GPU_SIZES if gpu else (1, 8, 32, 64))
    steps = run_scoring_steps(
        path, workload.states, sizes, args.budget, args.micro_batch, args.batching_budget
    )
    results: dict[str, Any] = {
        "device": device,
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "model_version": ranker.model_version,
        "user_max_length": ranker.model.spec.user_max_length or config.user_max_length,
        "catalogue_items": len(catalog),
        "states": len(workload.states),
        **steps.to_results(),
    }
    results["targets"] = [
        {"target": n, "bound": b, "measured": m, "met": ok}
        for n, b, m, ok in at_least(scoring_targets(results))
    ]
    return results


def report(results: dict[str, Any]) -> str:
    """The per-size table and the targets, as markdown."""
    return f"{results['device']}\n\n{sizes_table(results)}\n\n{targets_table(results)}\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; every default suits one call on the lent GPU machine."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--model", type=Path, help="model directory (default: bundled MiniLM)")
    parser.add_argument(
        "--movielens", type=Path, help="folder of ml-100k.inter/.item (default: recbole's)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--states", type=int, default=4096, help="user states sampled")
    parser.add_argument(
        "--sizes",
        type=lambda text: tuple(int(s) for s in text.split(",")),
        help="batch sizes, comma-separated (default: the device's)",
    )
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per batch size")
    parser.add_argument("--batching-budget", type=float, default=10.0)
    parser.add_argument("--micro-batch", type=int, default=WORKER_MAX_BATCH)
    return parser.parse_args(argv)


def main(argv: list[str]) -> dict[str, Any]:
    """Run, write ``--out`` and print the tables."""
    args = parse_args(argv)
    results = run(args, " ".join(["python -m bench.gpu", *argv]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(report(results), flush=True)
    print(f"wrote {args.out}", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
