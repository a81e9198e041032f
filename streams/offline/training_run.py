"""Run ``recprice train`` in one process, or data-parallel in several with ``torch.distributed``.

``--nproc N`` spawns N processes on this machine that join one process group
over loopback (gloo on CPU, NCCL on CUDA, one GPU each) and train with DDP
(:class:`encoders.training.Parallel`). Under ``torchrun`` (several machines,
or a launcher of your own) each process joins the group ``torchrun``
describes in its environment instead. Rank 0 writes the model directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from encoders.dataset import Dataset
from encoders.model import MODEL_FILE, Recommender, load_model_dir, load_pretrained
from encoders.train_config import TrainConfig
from encoders.training import HISTORY_FILE, Parallel, save_trained, train
from streams.offline.ports import free_port


@dataclass(frozen=True)
class TrainJob:
    """Everything one training run needs, shipped as is to each process."""

    dataset: Dataset
    config: TrainConfig
    out: Path
    base: Path | None = None
    """A recprice model directory or a Hugging Face encoder directory to start
    from; None: the bundled MiniLM."""
    cache_dir: Path | None = None
    """Folder of the lower-layer states files; None: a temporary one."""


def load_base(base: Path | None) -> Recommender:
    """Return the model a run starts from: a recprice model, an encoder directory, or MiniLM."""
    if base is not None and (base / MODEL_FILE).is_file():
        return load_model_dir(base)
    return load_pretrained(path=base)


def backend_for(device: torch.device) -> str:
    """Return the process group's backend: NCCL between GPUs, gloo between CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def _device(config: TrainConfig, local_rank: int) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def threads_per_process(config: TrainConfig, processes: int, cores: int | None) -> int:
    """Return the torch threads of each process: the config's, else the cores shared out."""
    return config.threads or max(1, (cores or 1) // processes)


def run_job(job: TrainJob, parallel: Parallel) -> dict[str, Any]:
    """Train as one process of a run (a group already joined when world > 1); rank 0 saves."""
    result = train(
        load_base(job.base), job.dataset, job.config, parallel=parallel, cache_dir=job.cache_dir
    )
    if parallel.rank == 0:
        save_trained(result, job.dataset, job.config, job.out)
    return summary(job.out) if parallel.rank == 0 else {}


def summary(out: Path) -> dict[str, Any]:
    """Return what ``training.json`` in ``out`` says of the run."""
    return dict(json.loads((out / HISTORY_FILE).read_text()))


def train_model(job: TrainJob, processes: int = 1) -> dict[str, Any]:
    """Train ``job`` in ``processes`` local processes; return the run's ``training.json``."""
    if processes == 1:
        return run_job(job, Parallel())
    with tempfile.TemporaryDirectory(prefix="recprice-ddp-") as tmp:
        # Every process writes its share of the same states files.
        shared = job if job.cache_dir else replace(job, cache_dir=Path(tmp))
        mp.start_processes(
            _spawned,
            args=(processes, free_port(), shared),
            nprocs=processes,
            start_method="spawn",
            join=True,
        )
    return summary(job.out)


def _spawned(rank: int, world: int, port: int, job: TrainJob) -> None:
    device = _device(job.config, rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(threads_per_process(job.config, world, os.cpu_count()))
    dist.init_process_group(
        backend_for(device),
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
    )
    try:
        run_job(job, Parallel(rank, world, device))
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class TorchrunPlace:
    """What ``torchrun`` tells a process in its environment."""

    rank: int
    world: int
    local_rank: int
    local_world: int

    @classmethod
    def of(cls, env: Mapping[str, str]) -> TorchrunPlace | None:
        """Return the place ``env`` describes; None outside ``torchrun`` (or alone)."""
        if int(env.get("WORLD_SIZE", "1")) <= 1:
            return None
        world = int(env["WORLD_SIZE"])
        return cls(
            int(env["RANK"]),
            world,
            int(env.get("LOCAL_RANK", "0")),
            int(env.get("LOCAL_WORLD_SIZE", str(world))),
        )


def join_torchrun(place: TorchrunPlace, config: TrainConfig) -> Parallel:
    """Join the process group ``torchrun`` set up; return this process's place in it."""
    device = _device(config, place.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(threads_per_process(config, place.local_world, os.cpu_count()))
    dist.init_process_group(backend_for(device), init_method="env://")
    return Parallel(place.rank, place.world, device)


def run_torchrun(job: TrainJob, place: TorchrunPlace) -> dict[str, Any]:
    """Train as the ``torchrun`` process at ``place``; rank 0 returns ``training.json``.

    The processes of one machine share one states folder, named after the
    model directory unless the job names one, which rank 0 removes at the end.
    """
    config = torchrun_config(place, job.config)
    parallel = join_torchrun(place, config)
    cache = job.cache_dir or job.out.parent / f".{job.out.name}.states"
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return run_job(replace(job, config=config, cache_dir=cache), parallel)
    finally:
        dist.barrier()
        if parallel.rank == 0 and job.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
        dist.destroy_process_group()


def torchrun_config(place: TorchrunPlace, config: TrainConfig) -> TrainConfig:
    """Return ``config`` for a ``torchrun`` process.

    Processes on other machines cannot read this machine's states files,
    so a run across machines recomputes the lower layers by batch.
    """
    if place.local_world < place.world:
        return config.model_copy(update={"lower_cache": "recompute"})
    return config
