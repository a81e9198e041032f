"""Steps 1 to 3 of the bench: encoder and scorer by batch size, then micro-batching.

Nothing here touches Kafka, so a machine without a broker (the lent GPU
machine, see :mod:`bench.gpu`) runs these steps alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.batching import BatchingResult, compare
from bench.common import describe_cpu, markdown_table, ratio
from bench.ranker import ScoringPath, SizeResult, run_sizes
from encoders.precision import describe
from encoders.ranker import Ranker
from streams.records.user_state import UserState

GPU_SIZES = (1, 8, 32, 64, 128, 256, 512, 1024)
"""Batch sizes on CUDA, where throughput keeps growing well past the CPU's sizes."""


def describe_device(ranker: Ranker) -> str:
    """What ran the towers: GPU name, or CPU model with torch's thread count."""
    mode = describe(ranker.device, ranker.config.precision)
    if ranker.device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(ranker.device)} ({mode})"
    return f"cpu: {describe_cpu()}, torch threads {torch.get_num_threads()} ({mode})"


@dataclass(frozen=True)
class ScoringSteps:
    """Per-batch-size encoder and scorer rates, and the micro-batching comparison."""

    per_size: list[SizeResult]
    batching: BatchingResult

    @property
    def best_encoder(self) -> SizeResult:
        """The batch size with the highest raw encoder throughput."""
        return max(self.per_size, key=lambda r: r.encoder_seq_per_s)

    @property
    def best_scorer(self) -> SizeResult:
        """The batch size with the highest scorer throughput."""
        return max(self.per_size, key=lambda r: r.scorer_users_per_s)

    def to_results(self) -> dict[str, Any]:
        """These steps' keys of the results file."""
        best_enc, best_sco = self.best_encoder, self.best_scorer
        return {
            "encoder_seq_per_s": best_enc.encoder_seq_per_s,
            "encoder_best_batch": best_enc.batch,
            "scorer_users_per_s": best_sco.scorer_users_per_s,
            "scorer_best_batch": best_sco.batch,
            "scorer_vs_encoder": ratio(best_sco.scorer_users_per_s, best_enc.encoder_seq_per_s),
            "batched_vs_single": self.batching.batched_vs_single,
            "per_batch_size": [
                {
                    "batch": r.batch,
                    "encoder_seq_per_s": r.encoder_seq_per_s,
                    "scorer_users_per_s": r.scorer_users_per_s,
                    "scorer_vs_encoder": r.scorer_vs_encoder,
                    "forward_ms": r.forward_ms,
                    "batches": r.batches,
                }
                for r in self.per_size
            ],
            "batching": {
                "batch": self.batching.batch,
                "single_users_per_s": self.batching.single_users_per_s,
                "batched_users_per_s": self.batching.batched_users_per_s,
            },
        }


def scoring_targets(results: Mapping[str, Any]) -> list[tuple[str, str, float, float]]:
    """(target, bound, measured, floor) of the targets that steps 1 to 3 measure.

    The bounds depend on the device: a GPU has a throughput target and a higher
    micro-batching one (bench/RESULTS.md, "Targets").
    """
    gpu = str(results["device"]).startswith("cuda")
    rows = [
        ("scorer vs raw encoder (best batch)", ">= 0.8x", results["scorer_vs_encoder"], 0.8),
        (
            "micro-batched vs per-user",
            f">= {20 if gpu else 5}x",
            results["batched_vs_single"],
            20.0 if gpu else 5.0,
        ),
    ]
    if gpu:
        rows.append(("scorer users/s on GPU", ">= 50,000", results["scorer_users_per_s"], 50_000.0))
    return rows


def at_least(rows: Sequence[tuple[str, str, float, float]]) -> list[tuple[str, str, str, bool]]:
    """(target, bound, measured as text, met) of rows whose measure must reach its floor."""
    return [
        (name, bound, f"{value:,.2f}", bool(value >= floor)) for name, bound, value, floor in rows
    ]


def sizes_table(results: Mapping[str, Any]) -> str:
    """Markdown table of a results object's per-batch-size rows."""
    return markdown_table(
        ["batch", "encoder seq/s", "scorer users/s", "scorer/encoder", "forward ms"],
        [
            [
                r["batch"],
                r["encoder_seq_per_s"],
                r["scorer_users_per_s"],
                r["scorer_vs_encoder"],
                r["forward_ms"],
            ]
            for r in results["per_batch_size"]
        ],
    )


def targets_table(results: Mapping[str, Any]) -> str:
    """Markdown table of a results object's targets."""
    return markdown_table(
        ["target", "bound", "measured", "met"],
        [
            [t["target"], t["bound"], t["measured"], "yes" if t["met"] else "NO"]
            for t in results["targets"]
        ],
    )


def run_scoring_steps(
    path: ScoringPath,
    users: Sequence[tuple[str, UserState]],
    sizes: Sequence[int],
    size_budget_s: float,
    micro_batch: int,
    batching_budget_s: float,
    log: Callable[[str], None] = print,
) -> ScoringSteps:
    """Run steps 1-2 at every size in ``sizes`` that ``users`` can fill, then step 3."""
    fitting = [s for s in sizes if s <= len(users)]
    log("1-2. raw encoder and scorer path, paired batch by batch:")
    per_size = run_sizes(path, users, fitting, size_budget_s, log)
    log(f"3. micro-batching: batches of {micro_batch} vs one user at a time:")
    batching = compare(path, users, micro_batch, batching_budget_s)
    log(
        f"  single {batching.single_users_per_s:.1f} users/s, batched "
        f"{batching.batched_users_per_s:.1f} users/s ({batching.batched_vs_single:.2f}x)"
    )
    return ScoringSteps(per_size, batching)
