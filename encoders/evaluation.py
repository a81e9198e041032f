"""Offline evaluation (``recprice evaluate``): full ranking, baselines, parity, report.

Every model ranks all catalogue items for each validation and test case, with
the items the user interacted with before excluded, and is scored by HR@10,
NDCG@10 and MRR. Popularity, the zero-shot encoder and baselines such as the
ID-only SASRec (:mod:`encoders.sasrec`) run in the same call on the same
split. The train/serve parity check feeds the stream's own path
(:func:`render_summary` of the stream state, :class:`Ranker`, the
state's ``interacted()`` exclusions) and the evaluator the same users and
compares their top-10 lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch

from encoders.behaviour import StateConfig, scoring_inputs
from encoders.config import EncoderConfig, Precision
from encoders.dataset import Dataset, Example
from encoders.metrics import bootstrap_interval, mask_rows, summarize, target_ranks
from encoders.model import Recommender, history_rows
from encoders.precision import autocast_for
from encoders.ranker import Ranker, resolve_device
from encoders.training import HISTORY_FILE, encode_items
from streams.records.inputs import item_titles

K = 10


class CaseScorer(Protocol):
    """Whatever scores every catalogue item for a batch of examples (a table row's model)."""

    @property
    def batch_size(self) -> int:
        """Examples per call of :meth:`scores`."""
        ...

    def scores(self, examples: Sequence[Example]) -> torch.Tensor:
        """(examples, items) scores in catalogue row order, before exclusions."""
        ...


@dataclass(frozen=True)
class Evaluator:
    """Scores every catalogue item for a batch of examples: the evaluator's own path."""

    model: Recommender | None
    """None scores by popularity."""
    popularity: torch.Tensor
    item_vectors: torch.Tensor | None
    item_rows: torch.Tensor | None
    user_max_length: int
    rows: dict[str, int] = field(default_factory=dict)
    """Row of each item id in ``item_vectors`` (for the recent-items history)."""
    precision: Precision = "auto"
    batch_size: int = 256
    use_item_features: bool = True

    users_seen: dict[str, torch.Tensor] = field(default_factory=dict)
    """User vectors by summary, shared with copies made by ``replace`` (ablations)."""

    def users(self, examples: Sequence[Example]) -> torch.Tensor:
        """User-tower vectors of the examples' summaries, each summary encoded once."""
        assert self.model is not None and self.item_vectors is not None
        device = self.item_vectors.device
        missing = list(
            dict.fromkeys(e.summary for e in examples if e.summary not in self.users_seen)
        )
        if missing:
            batch = self.model.tokenizer(
                missing,
                padding=True,
                truncation=True,
                max_length=self.user_max_length,
                return_tensors="pt",
            )
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            # The tower's number format is the serving scorer's (same config).
            with torch.no_grad(), autocast_for(device, self.precision):
                vectors = self.model.user_tower(ids, mask).embedding.float()
            self.users_seen.update(zip(missing, vectors, strict=True))
        return torch.stack([self.users_seen[e.summary] for e in examples])

    def scores(self, examples: Sequence[Example]) -> torch.Tensor:
        """(examples, items) scores, before exclusions."""
        if self.model is None or self.item_vectors is None:
            return self.popularity.float().expand(len(examples), -1).clone()
        head = self.model.head
        features = self.use_item_features
        history = history_rows([e.recent for e in examples], self.rows, head.history)
        with torch.no_grad():
            users = head.with_history(
                self.users(examples),
                self.item_vectors,
                self.item_rows,
                history.to(self.item_vectors.device),
                features=features,
            )
            return head(users, self.item_vectors, self.item_rows, features=features).float()


def make_ranker(
    model: Recommender | None, dataset: Dataset, config: EncoderConfig, device: torch.device
) -> Evaluator:
    """Prepare a model (or popularity when ``model`` is None) for full ranking."""
    counts = torch.bincount(
        torch.tensor([dataset.rows[e.target] for e in dataset.train], dtype=torch.long),
        minlength=len(dataset.items),
    )
    if model is None:
        return Evaluator(
            None, counts, None, None, config.user_max_length, precision=config.precision
        )
    model = model.to(device).eval()
    item_ids = tuple(item.item_id for item in dataset.items)
    vectors = encode_items(
        model.item_tower,
        model.tokenizer,
        [item.text() for item in dataset.items],
        model.spec.item_max_length or config.item_max_length,
        config.precision,
    )
    return Evaluator(
        model,
        counts,
        vectors,
        model.head.rows_for(item_ids),
        model.spec.user_max_length or config.user_max_length,
        dataset.rows,
        config.precision,
    )


def rank_targets(evaluator: CaseScorer, dataset: Dataset, examples: Sequence[Example]) -> list[int]:
    """1-based full-ranking rank of each example's target, its history excluded."""
    ranks: list[int] = []
    rows = dataset.rows
    for start in range(0, len(examples), evaluator.batch_size):
        part = examples[start : start + evaluator.batch_size]
        scores = evaluator.scores(part).cpu()
        mask_rows(scores, [[rows[i] for i in e.history if i in rows] for e in part])
        targets = torch.tensor([rows[e.target] for e in part])
        ranks.extend(target_ranks(scores, targets).tolist())
    return ranks


def case_ranks(
    evaluator: CaseScorer, dataset: Dataset, held_out: frozenset[str] = frozenset()
) -> dict[str, list[int]]:
    """Each case's rank on validation and test, and on the test's ``held_out`` targets.

    ``test_held_out`` is there only with a held-out split: its cases are
    ranked as every test case is, over the whole catalogue.
    """
    ranks = {
        "valid": rank_targets(evaluator, dataset, dataset.valid),
        "test": rank_targets(evaluator, dataset, dataset.test),
    }
    if held_out:
        ranks["test_held_out"] = [
            r for r, e in zip(ranks["test"], dataset.test, strict=True) if e.target in held_out
        ]
    return ranks


def _flat(interval: dict[str, tuple[float, float]]) -> dict[str, float]:
    return {
        f"{name}_{end}": v
        for name, (lo, hi) in interval.items()
        for end, v in (("lo", lo), ("hi", hi))
    }


def with_intervals(
    ranks: dict[str, dict[str, list[int]]], reference: str | None
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of each scorer's case ranks, with 95% bootstrap intervals on the test splits.

    ``test_ci95`` holds each metric's interval (``ndcg@10_lo``, ``ndcg@10_hi``...),
    and ``test_held_out_ci95`` that of the held-out items' cases where ranked;
    with a ``reference`` scorer, ``test_diff`` holds every other scorer's
    difference from it on the same users and its paired interval.
    """
    results = {
        name: {split: summarize(r, K) for split, r in splits.items()}
        | {
            f"{split}_ci95": _flat(bootstrap_interval(splits[split], K))
            for split in ("test", "test_held_out")
            if split in splits
        }
        for name, splits in ranks.items()
    }
    if reference is None:
        return results
    base = results[reference]["test"]
    for name, splits in ranks.items():
        if name != reference:
            diff = {m: v - base[m] for m, v in results[name]["test"].items() if m != "cases"}
            paired = bootstrap_interval(splits["test"], K, baseline=ranks[reference]["test"])
            results[name]["test_diff"] = diff | _flat(paired)
    return results


@dataclass(frozen=True)
class Parity:
    """Outcome of the train/serve parity check."""

    users: int
    same_summary: int
    same_top10: int
    max_score_diff: float

    @property
    def ok(self) -> bool:
        """Whether both paths agreed on every checked user."""
        return self.same_summary == self.users and self.same_top10 == self.users


def parity_check(
    model: Recommender,
    dataset: Dataset,
    config: EncoderConfig,
    users: int = 128,
    state_config: StateConfig | None = None,
) -> Parity:
    """Compare the stream's scorer and the evaluator on the first ``users`` test states."""
    state_config = state_config or StateConfig()
    cases = [e for e in dataset.test if e.state is not None][:users]
    serving = Ranker(model, config)
    index = serving.build_index(dataset.item_texts())
    titles = item_titles({item.item_id: item for item in dataset.items})
    inputs = scoring_inputs([e.state for e in cases if e.state], titles, state_config)
    served = serving.recommend(*inputs, index)
    offline = make_ranker(model, dataset, config, serving.device)
    scores = offline.scores(cases).cpu()
    rows = dataset.rows
    mask_rows(scores, [[rows[i] for i in ex if i in rows] for ex in inputs.exclude])
    top_scores, top_rows = torch.topk(scores, min(config.top_k, scores.shape[1]), dim=1)
    same_top, diff = 0, 0.0
    for served_row, score_row, row_ids in zip(
        served, top_scores.tolist(), top_rows.tolist(), strict=True
    ):
        offline_ids = [
            dataset.items[r].item_id
            for r, s in zip(row_ids, score_row, strict=True)
            if s != float("-inf")
        ]
        same_top += [i for i, _ in served_row] == offline_ids
        diff = max([diff] + [abs(s - t) for (_, s), t in zip(served_row, score_row, strict=False)])
    same_summary = sum(s == e.summary for s, e in zip(inputs.summaries, cases, strict=True))
    return Parity(len(cases), same_summary, same_top, diff)


def run_evaluation(
    dataset: Dataset,
    models: dict[str, Recommender],
    zero_shot: Recommender | None,
    config: EncoderConfig,
    held_out: frozenset[str] = frozenset(),
    baselines: Mapping[str, CaseScorer] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of popularity, zero-shot and each named model (plus its text-only ablation).

    Test metrics come with 95% bootstrap intervals, and every row with its
    paired difference from the first of ``models`` (see :func:`with_intervals`).
    With ``held_out`` items (``dataset`` from :func:`encoders.dataset.evaluation_view`),
    every row is measured on the test cases whose target is one of them too.
    ``baselines`` are rows ranked the same way, after zero-shot (the SASRec baseline).
    """
    device = resolve_device(config)
    popularity = make_ranker(None, dataset, config, device)
    ranks = {"popularity": case_ranks(popularity, dataset, held_out)}
    if zero_shot is not None:
        zero_shot_ranker = make_ranker(zero_shot, dataset, config, device)
        ranks["zero-shot"] = case_ranks(zero_shot_ranker, dataset, held_out)
    for name, baseline in (baselines or {}).items():
        ranks[name] = case_ranks(baseline, dataset, held_out)
    for name, model in models.items():
        evaluator = make_ranker(model, dataset, config, device)
        ranks[name] = case_ranks(evaluator, dataset, held_out)
        head = model.head
        if head.item_embedding is not None or head.item_bias is not None:
            # Same weights with the ID and popularity features switched off:
            # what the text path carries on its own.
            text_only = replace(evaluator, use_item_features=False)
            ranks[f"{name} (ids off)"] = case_ranks(text_only, dataset, held_out)
    return with_intervals(ranks, next(iter(models), None))


def load_history(model_dir: Path) -> dict[str, object] | None:
    """``training.json`` of a model directory, when it has one."""
    path = model_dir / HISTORY_FILE
    return json.loads(path.read_text()) if path.is_file() else None
