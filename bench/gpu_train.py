"""Train the default recipe on the lent GPU in bf16 and write its metrics.

Run as ``python -m bench.gpu_train [--model DIR] [--movielens DIR] [--out FILE]``
(``deploy/gpu_train.sh`` does, on the machine ``deploy/gpu_kit.sh`` packs
for). It converts MovieLens-100K into our contracts, trains ``recprice
train``'s defaults on CUDA in bf16 with whole batches (``--nproc`` GPUs
data-parallel with NCCL when the machine has several), then ranks the test
split like ``recprice evaluate`` and writes the times and metrics as JSON.
Nothing here imports Faust, a Kafka client or the command line's packages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import torch

from encoders.behaviour import StateConfig
from encoders.config import EncoderConfig
from encoders.dataset import load_dataset
from encoders.evaluation import make_ranker, rank_targets
from encoders.metrics import summarize
from encoders.model import load_model_dir
from encoders.train_config import TrainConfig
from streams.offline.movielens import convert
from streams.offline.training_run import TrainJob, train_model


def gpu_config(device: str, overrides: dict[str, Any]) -> TrainConfig:
    """Return the default recipe on ``device``: bf16, whole batches, no progress bars."""
    return TrainConfig(
        **{"device": device, "precision": "bf16", "micro_batch_size": 0, "progress": False}
        | overrides
    )


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Train, evaluate and return the results object."""
    started = dt.datetime.now(dt.UTC)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(tempfile.mkdtemp(prefix="recprice-gpu-train-"))
    data = convert(work / "ml", args.movielens)
    tick = time.perf_counter()
    dataset = load_dataset(data.events_path, data.items_path, StateConfig())
    load_s = time.perf_counter() - tick
    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    config = gpu_config(device, overrides)
    if device == "cpu":  # a dry run off the GPU: float32, bf16 may be emulated
        config = config.model_copy(update={"precision": "fp32"})
    tick = time.perf_counter()
    job = TrainJob(dataset, config, work / "model", args.model)
    trained = train_model(job, args.nproc)
    train_s = time.perf_counter() - tick
    model = load_model_dir(work / "model")
    target = torch.device(device)
    tick = time.perf_counter()
    ranker = make_ranker(model, dataset, EncoderConfig(device=device), target)
    test = summarize(rank_targets(ranker, dataset, dataset.test))
    popularity = summarize(
        rank_targets(make_ranker(None, dataset, EncoderConfig(), target), dataset, dataset.test)
    )
    eval_s = time.perf_counter() - tick
    return {
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "processes": args.nproc,
        "config": config.model_dump(),
        "examples": {"train": len(dataset.train), "valid": len(dataset.valid)},
        "seconds": {"dataset": load_s, "train": train_s, "evaluate": eval_s},
        "training": {
            k: trained[k]
            for k in ("steps", "seconds_per_step", "best_epoch", "best_valid_ndcg@10", "epochs")
        },
        "test": test,
        "popularity_test": popularity,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the options, train and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="MiniLM directory")
    parser.add_argument("--movielens", type=Path, default=None, help="ml-100k folder")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_train.json"))
    parser.add_argument("--nproc", type=int, default=1, help="GPUs training data-parallel")
    parser.add_argument("--epochs", type=int, default=0, help="0 = the default recipe's")
    parser.add_argument("--max-steps", type=int, default=0, help="a dry run's cut; 0 = none")
    args = parser.parse_args(argv)
    results = run(args, " ".join(["python -m bench.gpu_train", *(argv or sys.argv[1:])]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    test = results["test"]
    print(
        f"{results['device']}: trained in {results['seconds']['train']:.0f} s "
        f"({results['training']['seconds_per_step']:.3f} s/step), test NDCG@10 "
        f"{test['ndcg@10']:.4f} HR@10 {test['hr@10']:.4f} (popularity "
        f"{results['popularity_test']['ndcg@10']:.4f}); {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
