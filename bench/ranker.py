"""Scorer: the production path without Kafka, paired with the raw encoder in one loop.

Per batch: user state -> summary -> tokenize -> user tower -> item scores ->
exclusions -> top-K -> bounded prices, exactly the calls the stream's scorer
makes. Encoder and scorer alternate batch by batch on the same summaries, so
background load on a shared machine hits both alike and their ratio holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.common import Meter, ratio
from bench.encoder import forward, synchronizer, token_batches
from bench.workload import Workload
from encoders.behaviour import scoring_inputs
from encoders.ranker import ItemIndex, Ranker
from pricing.config import PricingConfig
from pricing.offers import price_items
from pricing.shown_prices import PriceMemory
from streams.records.inputs import Item, item_titles
from streams.records.user_state import UserState


@dataclass
class ScoringPath:
    """Everything the stream's scorer holds: model, index, catalogue, pricing, price memory."""

    ranker: Ranker
    index: ItemIndex
    workload: Workload
    items: dict[str, Item]
    pricing: PricingConfig = field(default_factory=PricingConfig)
    memory: PriceMemory = field(default_factory=PriceMemory)

    def score(self, users: Sequence[tuple[str, UserState]]) -> Callable[[], object]:
        """The whole scoring path for one micro-batch of users, as a timed call."""
        shares = self.pricing.initial_shares()
        config = self.workload.config
        titles = item_titles(self.workload.items)

        def run() -> object:
            inputs = scoring_inputs([state for _, state in users], titles, config)
            ranked = self.ranker.recommend(*inputs, self.index)
            for (user_id, _), user_ranked in zip(users, ranked, strict=True):
                _, decisions = price_items(
                    user_id, user_ranked, self.items, self.memory.of(user_id), shares, self.pricing
                )
                self.memory.remember(user_id, [(d.item_id, d.price) for d in decisions], 0.0)
            return ranked

        return run


@dataclass(frozen=True)
class SizeResult:
    """Encoder and scorer throughput at one batch size, from the same batches."""

    batch: int
    encoder_seq_per_s: float
    scorer_users_per_s: float
    forward_ms: float
    """Mean raw forward time of one batch of this size."""
    batches: int

    @property
    def scorer_vs_encoder(self) -> float:
        """Scorer throughput over raw encoder throughput."""
        return ratio(self.scorer_users_per_s, self.encoder_seq_per_s)


def paired(
    path: ScoringPath,
    users: Sequence[tuple[str, UserState]],
    size: int,
    budget_s: float,
    min_batches: int = 2,
) -> SizeResult:
    """Alternate encoder and scorer batch by batch for about ``budget_s`` seconds."""
    ranker = path.ranker
    config = path.workload.config
    titles = item_titles(path.workload.items)
    summaries = scoring_inputs([s for _, s in users], titles, config).summaries
    batches = token_batches(ranker, summaries, size)
    if not batches:
        raise ValueError(f"need at least {size} users for batch size {size}")
    sync = synchronizer(ranker.device)
    # Warm-up (allocator, kernels, thread pool) outside the clock.
    forward(ranker, *batches[0])()
    path.score(users[:size])()
    enc, sco = Meter(), Meter()
    deadline = time.monotonic() + budget_s
    n = 0
    while n < min_batches or time.monotonic() < deadline:
        b = n % len(batches)
        enc.time(forward(ranker, *batches[b]), size, sync)
        sco.time(path.score(users[b * size : (b + 1) * size]), size, sync)
        n += 1
    return SizeResult(size, enc.rate, sco.rate, enc.ms_per_call, n)


def run_sizes(
    path: ScoringPath,
    users: Sequence[tuple[str, UserState]],
    sizes: Sequence[int],
    budget_s: float,
    log: Callable[[str], None] = print,
) -> list[SizeResult]:
    """:func:`paired` at every batch size, smallest first."""
    results = []
    for size in sizes:
        result = paired(path, users, size, budget_s)
        log(
            f"  batch {size:>4}: encoder {result.encoder_seq_per_s:8.1f} seq/s, "
            f"scorer {result.scorer_users_per_s:8.1f} users/s "
            f"({result.scorer_vs_encoder:.2f}x), {result.batches} batches"
        )
        results.append(result)
    return results
