"""bf16 against float32 on the scorer path: speed, alternating batch by batch, and top-10 agreement.

Run it on its own (``python -m bench.studies.precision``): serving stays float32 on
CPU by default, and this says what switching to bf16 buys and what it changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from bench.common import Meter, markdown_table, ratio
from bench.encoder import synchronizer
from bench.ranker import ScoringPath
from bench.workload import load_workload
from encoders.ranker import Ranker
from streams.records.user_state import UserState
from streams.settings import Settings
from streams.worker.runtime import load_model

Ranked = list[list[tuple[str, float]]]


@dataclass(frozen=True)
class PrecisionResult:
    """Scorer-path users/s in float32 and bf16 at one batch size, same batches."""

    batch: int
    fp32_users_per_s: float
    bf16_users_per_s: float

    @property
    def speedup(self) -> float:
        """bf16 over float32."""
        return ratio(self.bf16_users_per_s, self.fp32_users_per_s)


def top10_agreement(
    fp32: ScoringPath, bf16: ScoringPath, users: Sequence[tuple[str, UserState]], size: int
) -> tuple[float, float]:
    """Share of users with the identical top-K list, and mean overlap of the two top-K sets."""
    same = overlap = 0.0
    for start in range(0, len(users), size):
        part = users[start : start + size]
        exact = cast(Ranked, fp32.score(part)())
        rounded = cast(Ranked, bf16.score(part)())
        for a, b in zip(exact, rounded, strict=True):
            same += [i for i, _ in a] == [i for i, _ in b]
            overlap += len({i for i, _ in a} & {i for i, _ in b}) / max(len(a), 1)
    return same / len(users), overlap / len(users)


def compare(
    fp32: ScoringPath,
    bf16: ScoringPath,
    users: Sequence[tuple[str, UserState]],
    size: int,
    rounds: int,
) -> PrecisionResult:
    """Time both paths on the same micro-batches, alternating, after one warm-up each."""
    sync = synchronizer(fp32.ranker.device)
    batches = [users[s : s + size] for s in range(0, len(users) - size + 1, size)][:rounds]
    meters = {"fp32": Meter(), "bf16": Meter()}
    for path in (fp32, bf16):
        path.score(batches[0])()
    for batch in batches:
        for name, path in (("fp32", fp32), ("bf16", bf16)):
            meters[name].time(path.score(batch), len(batch), sync)
    return PrecisionResult(size, meters["fp32"].rate, meters["bf16"].rate)


def main() -> None:
    """Print the comparison table for the configured model on this machine."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,8,32,64", help="Batch sizes, comma separated.")
    parser.add_argument("--rounds", type=int, default=8, help="Batches timed per size.")
    parser.add_argument("--users", type=int, default=512, help="Users in the agreement check.")
    args = parser.parse_args()
    workload = load_workload(max(args.users, 2048))
    paths = {}
    for precision in ("fp32", "bf16"):
        # The configured model (RECPRICE__ENCODER__MODEL_DIR), in each format.
        config = Settings().encoder.model_copy(update={"precision": precision})
        ranker = Ranker(load_model(config), config)
        index = ranker.build_index([(i.item_id, i.text()) for i in workload.items.values()])
        paths[precision] = ScoringPath(ranker, index, workload, workload.items)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        result = compare(paths["fp32"], paths["bf16"], workload.states, size, args.rounds)
        rows.append(
            [
                str(size),
                f"{result.fp32_users_per_s:.1f}",
                f"{result.bf16_users_per_s:.1f}",
                f"{result.speedup:.2f}x",
            ]
        )
    same, overlap = top10_agreement(paths["fp32"], paths["bf16"], workload.states[: args.users], 64)
    print(f"torch threads {torch.get_num_threads()}")
    print(markdown_table(["batch", "fp32 users/s", "bf16 users/s", "bf16/fp32"], rows))
    print(
        f"top-10 identical for {same:.1%} of {args.users} users; mean top-10 overlap {overlap:.1%}"
    )


if __name__ == "__main__":
    main()
