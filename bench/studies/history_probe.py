"""How much does the history's recency carry? An ID-only probe on the training split.

Not a recommender we serve: a sizing study for the next model change. Each
user is the mean of the learned embeddings of their last ``k`` items,
optionally weighted by learned per-position (recency) weights, scored by a dot
product with output embeddings plus a bias, full softmax. Same split as
``recprice train`` (last interaction = test, second to last = validation),
history excluded from the ranking, NDCG@10/HR@10 from :mod:`encoders.metrics`.

    python -m bench.studies.history_probe --events data/ml/events.jsonl --k 8,20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from encoders.dataset import read_events
from encoders.metrics import hit_rate, mask_rows, ndcg, target_ranks


class HistoryMean(nn.Module):
    """Mean (or recency-weighted mean) of the last ``k`` items' embeddings."""

    def __init__(self, items: int, k: int, dim: int, recency: bool) -> None:
        super().__init__()
        self.pad = items
        self.inputs = nn.Embedding(items + 1, dim, padding_idx=items)
        self.outputs = nn.Parameter(torch.randn(items, dim) * 0.05)
        self.bias = nn.Parameter(torch.zeros(items))
        self.position = nn.Parameter(torch.zeros(k), requires_grad=recency)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """(users, items) logits for (users, k) item rows, most recent first, padded."""
        mask = (history != self.pad).float()
        weights = mask * self.position.softmax(0)
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-9)
        users = (self.inputs(history) * weights.unsqueeze(-1)).sum(1)
        return users @ self.outputs.T + self.bias


def sequences(events_path: Path) -> tuple[list[list[int]], int]:
    """Each user's item rows in time order, and the number of items."""
    events, _ = read_events(events_path)
    rows: dict[str, int] = {}
    per_user: dict[str, list[int]] = {}
    for event in events:
        row = rows.setdefault(event.item_id, len(rows))
        per_user.setdefault(event.user_id, []).append(row)
    return list(per_user.values()), len(rows)


def split(
    users: list[list[int]], k: int, pad: int, part: str
) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
    """(last-k histories, targets, full histories) of the train, valid or test positions."""
    histories, targets, seen = [], [], []
    for items in users:
        if part == "train":
            positions = range(1, len(items) - 2)
        else:
            positions = range(len(items) - (2 if part == "valid" else 1), len(items))[:1]
        for p in positions:
            recent = items[max(0, p - k) : p][::-1]
            histories.append(recent + [pad] * (k - len(recent)))
            targets.append(items[p])
            seen.append(items[:p])
    return torch.tensor(histories), torch.tensor(targets), seen


def run(users: list[list[int]], items: int, k: int, recency: bool, epochs: int) -> dict[str, float]:
    """Train one probe and return its test NDCG@10 and HR@10."""
    torch.manual_seed(0)
    model = HistoryMean(items, k, 64, recency)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    x, y, _ = split(users, k, items, "train")
    for _ in range(epochs):
        for index in torch.randperm(len(x)).split(512):
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    xt, yt, seen = split(users, k, items, "test")
    with torch.no_grad():
        ranks = target_ranks(mask_rows(model(xt), seen), yt).tolist()
    return {"ndcg@10": ndcg(ranks), "hr@10": hit_rate(ranks)}


def main() -> None:
    """Print test NDCG@10 / HR@10 for plain and recency-weighted means at each ``k``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--k", default="8,20", help="History lengths, comma separated.")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    users, items = sequences(args.events)
    for k in (int(v) for v in args.k.split(",")):
        for recency in (False, True):
            m = run(users, items, k, recency, args.epochs)
            name = "recency-weighted" if recency else "plain"
            print(
                f"last {k:>3}, {name:>16} mean: NDCG@10 {m['ndcg@10']:.4f} HR@10 {m['hr@10']:.4f}"
            )


if __name__ == "__main__":
    main()
