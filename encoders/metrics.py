"""Full-ranking metrics: the rank of each target among all items, then HR, NDCG, MRR.

Pure functions on score matrices, shared by training (early stopping) and
evaluation, so both measure the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def mask_rows(scores: torch.Tensor, exclude: Sequence[Sequence[int]]) -> torch.Tensor:
    """Set excluded items' scores to -inf, in place; returns ``scores``."""
    for user, rows in enumerate(exclude):
        if rows:
            scores[user, list(rows)] = float("-inf")
    return scores


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's target among its items (excluded items at -inf rank last).

    Ties are broken by item row, lower row first, the way a stable sort
    would order them, so a constant scorer cannot rank its targets first.
    """
    target_scores = scores.gather(1, targets.unsqueeze(1))
    rows = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0)
    ahead = (scores > target_scores) | ((scores == target_scores) & (rows < targets.unsqueeze(1)))
    return ahead.sum(1) + 1


def hit_rate(ranks: Sequence[int], k: int = 10) -> float:
    """Share of targets ranked in the top ``k``."""
    return sum(r <= k for r in ranks) / len(ranks) if ranks else 0.0


def ndcg(ranks: Sequence[int], k: int = 10) -> float:
    """Mean NDCG@k with one relevant item per case: 1/log2(rank + 1) inside the top ``k``."""
    if not ranks:
        return 0.0
    return sum(1.0 / math.log2(r + 1) for r in ranks if r <= k) / len(ranks)


def mrr(ranks: Sequence[int]) -> float:
    """Mean reciprocal rank over the full ranking (not truncated)."""
    return sum(1.0 / r for r in ranks) / len(ranks) if ranks else 0.0


def summarize(ranks: Sequence[int], k: int = 10) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of a list of ranks, plus how many cases they cover."""
    return {
        f"hr@{k}": hit_rate(ranks, k),
        f"ndcg@{k}": ndcg(ranks, k),
        "mrr": mrr(ranks),
        "cases": float(len(ranks)),
    }
