"""Full-ranking metrics: the rank of each target among all items, then HR, NDCG, MRR.

Pure functions on score matrices, shared by training (early stopping) and
evaluation, so both measure the same thing, plus bootstrap intervals over the
cases: with one held-out case per user, a metric's noise is set by how many
users there are, and it is as large as the gaps between good models.
"""

from __future__ import annotations

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


def case_values(ranks: Sequence[int], k: int = 10) -> dict[str, torch.Tensor]:
    """Each case's contribution to HR@k, NDCG@k and MRR.

    The one definition of those metrics: :func:`summarize` reports their means
    and :func:`bootstrap_interval` their resampled means.
    """
    r = torch.tensor(list(ranks), dtype=torch.float64)
    inside = r <= k
    return {
        f"hr@{k}": inside.double(),
        f"ndcg@{k}": torch.where(inside, 1.0 / torch.log2(r + 1), 0.0),
        "mrr": 1.0 / r,
    }


def _mean(ranks: Sequence[int], k: int, metric: str) -> float:
    return float(case_values(ranks, k)[metric].mean()) if ranks else 0.0


def hit_rate(ranks: Sequence[int], k: int = 10) -> float:
    """Share of targets ranked in the top ``k``."""
    return _mean(ranks, k, f"hr@{k}")


def ndcg(ranks: Sequence[int], k: int = 10) -> float:
    """Mean NDCG@k with one relevant item per case: 1/log2(rank + 1) inside the top ``k``."""
    return _mean(ranks, k, f"ndcg@{k}")


def mrr(ranks: Sequence[int]) -> float:
    """Mean reciprocal rank over the full ranking (not truncated)."""
    return _mean(ranks, 1, "mrr")


def summarize(ranks: Sequence[int], k: int = 10) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of a list of ranks, plus how many cases they cover."""
    means = {m: float(v.mean()) if ranks else 0.0 for m, v in case_values(ranks, k).items()}
    return means | {"cases": float(len(ranks))}


def bootstrap_interval(
    ranks: Sequence[int],
    k: int = 10,
    *,
    baseline: Sequence[int] | None = None,
    draws: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of HR@k, NDCG@k and MRR, resampling cases.

    With ``baseline`` (another scorer's ranks of the same cases, in the same
    order) the interval is of the difference ``ranks - baseline``, paired:
    each draw resamples the same cases for both, so how hard a case is
    cancels out and the interval is narrower than the two separate ones.
    """
    if baseline is not None and len(baseline) != len(ranks):
        raise ValueError(f"{len(baseline)} baseline ranks for {len(ranks)} cases")
    if not ranks:
        return {name: (0.0, 0.0) for name in summarize([], k) if name != "cases"}
    values = case_values(ranks, k)
    if baseline is not None:
        values = {
            name: v - b
            for (name, v), b in zip(values.items(), case_values(baseline, k).values(), strict=True)
        }
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(ranks), (draws, len(ranks)), generator=generator)
    tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    out: dict[str, tuple[float, float]] = {}
    for name, v in values.items():
        lo, hi = torch.quantile(v[picks].mean(1), tails).tolist()
        out[name] = (lo, hi)
    return out
