"""Micro-batching: the scorer fed one user at a time vs in micro-batches, same run.

Single and batched alternate (one batch of users scored one by one, then the
same users as one micro-batch), so both see the same background load.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import Meter, ratio
from bench.encoder import synchronizer
from bench.ranker import ScoringPath
from streams.records.user_state import UserState


@dataclass(frozen=True)
class BatchingResult:
    """Users/s one at a time and in micro-batches of ``batch``."""

    batch: int
    single_users_per_s: float
    batched_users_per_s: float

    @property
    def batched_vs_single(self) -> float:
        """How many times faster micro-batches are."""
        return ratio(self.batched_users_per_s, self.single_users_per_s)


def compare(
    path: ScoringPath,
    users: Sequence[tuple[str, UserState]],
    batch: int,
    budget_s: float,
    singles_per_round: int = 8,
) -> BatchingResult:
    """Alternate one micro-batch of ``batch`` users with some of the same users one at a time."""
    sync = synchronizer(path.ranker.device)
    path.score(users[:1])()
    path.score(users[:batch])()
    single, batched = Meter(), Meter()
    deadline = time.monotonic() + budget_s
    start = 0
    while single.calls == 0 or time.monotonic() < deadline:
        group = users[start : start + batch]
        if len(group) < batch:
            start, group = 0, users[:batch]
        batched.time(path.score(group), batch, sync)
        for user in group[:singles_per_round]:
            single.time(path.score([user]), 1, sync)
        start += batch
    return BatchingResult(batch, single.rate, batched.rate)
