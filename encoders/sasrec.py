"""An ID-only sequential baseline for ``recprice evaluate``: SASRec (Kang & McAuley, 2018).

Item-ID and learned position embeddings feed causal self-attention blocks
(pre-LN); the output at each position scores the next item by a dot product
with the same item embeddings. It trains on each user's training sequence
(the targets of ``dataset.train`` in time order, a start token first, cut into
overlapping windows) with softmax cross-entropy at every position, over the whole catalogue or, for
large catalogues, over negatives sampled for the batch, and stops early on
validation NDCG@10 ranked with the evaluation's own :func:`rank_targets`
(full ranking, history excluded). See docs/model.md, "SASRec baseline".
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from encoders.config import EncoderConfig
from encoders.dataset import Dataset, Example
from encoders.evaluation import rank_targets
from encoders.metrics import ndcg
from encoders.ranker import resolve_device

PAD = 0
"""Token of an empty position; item row ``r`` is token ``r + 1``, the start token follows."""


class SASRecConfig(BaseModel):
    """Shape and training of the baseline (defaults: docs/model.md, "SASRec baseline")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, description="Seed of the weights, batches, dropout and negatives.")
    hidden: int = Field(64, ge=2, le=4096, description="Embedding and attention width.")
    blocks: int = Field(2, ge=1, le=32, description="Self-attention blocks.")
    heads: int = Field(2, ge=1, le=64, description="Attention heads per block.")
    max_length: int = Field(
        50, ge=2, le=4096, description="Positions a sequence is cut to (most recent kept)."
    )
    stride: int | None = Field(
        None,
        ge=1,
        description="Training windows end every this many items (None = half of max_length); "
        "below max_length each target sees more context, at max_length / stride the cost.",
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout of embeddings and blocks.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    batch_size: int = Field(128, ge=1, le=65_536, description="Sequences per step.")
    max_epochs: int = Field(200, ge=1, description="Upper bound on epochs.")
    patience: int = Field(
        10, ge=1, description="Epochs without a better valid NDCG@10 before stopping."
    )
    full_softmax_max_items: int = Field(
        20_000,
        ge=0,
        description="Catalogues up to this size train with a softmax over every item; "
        "larger ones over the target and `negatives` items sampled for each step.",
    )
    negatives: int = Field(
        1024, ge=1, description="Uniformly sampled negatives per step (sampled softmax)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where it trains and scores; auto picks CUDA when present."
    )
    eval_batch_size: int = Field(256, ge=1, description="Cases scored per forward pass.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        return self


class SASRec(nn.Module):
    """Causal self-attention over item-ID embeddings; scores with the same embeddings."""

    def __init__(self, items: int, config: SASRecConfig) -> None:
        super().__init__()
        self.items = items
        self.start = items + 1
        self.max_length = config.max_length
        self.heads = config.heads
        self.scale = math.sqrt(config.hidden)
        self.embedding = nn.Embedding(items + 2, config.hidden, padding_idx=PAD)
        self.position = nn.Embedding(config.max_length, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        block = nn.TransformerEncoderLayer(
            config.hidden,
            config.heads,
            dim_feedforward=config.hidden,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            block, config.blocks, norm=nn.LayerNorm(config.hidden), enable_nested_tensor=False
        )
        # Scaled by sqrt(hidden) on input, item rows start at unit entries there
        # and at unit-variance scores against the final layer's normalised states.
        nn.init.normal_(self.embedding.weight, std=config.hidden**-0.5)
        nn.init.normal_(self.position.weight, std=config.hidden**-0.5)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, width, hidden) states of left-padded ``tokens`` (batch, width)."""
        width = tokens.shape[1]
        # Positions count back from the window's end, so the newest item always has the last one.
        positions = torch.arange(self.max_length - width, self.max_length, device=tokens.device)
        real = tokens != PAD
        x = self.embedding(tokens) * self.scale + self.position(positions)
        x = self.dropout(x) * real.unsqueeze(-1)
        causal = torch.ones(width, width, dtype=torch.bool, device=tokens.device).tril()
        # A position sees itself and the real positions before it; a padding
        # position sees only itself, so no row of the attention is empty.
        allowed = causal & (real.unsqueeze(1) | torch.eye(width, dtype=torch.bool, device=x.device))
        blocked = (~allowed).repeat_interleave(self.heads, dim=0)
        return self.blocks(x, mask=blocked)

    def item_table(self) -> torch.Tensor:
        """(items, hidden) output embeddings: the input embeddings of the item tokens."""
        return self.embedding.weight[1 : self.items + 1]

    def loss(
        self, tokens: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        """Mean next-item cross-entropy over the real positions (``targets`` < 0 are padding).

        With ``negatives`` (item rows) the softmax runs over the target and
        those items, a negative equal to the target left out.
        """
        keep = targets >= 0
        states = self(tokens)[keep]
        wanted = targets[keep]
        table = self.item_table()
        if negatives is None:
            return F.cross_entropy(states @ table.T, wanted)
        positive = (states * table[wanted]).sum(-1, keepdim=True)
        negative = (states @ table[negatives].T).masked_fill(
            negatives.unsqueeze(0) == wanted.unsqueeze(1), float("-inf")
        )
        logits = torch.cat([positive, negative], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(wanted))


def user_sequences(dataset: Dataset) -> dict[str, list[int]]:
    """Each user's training item rows in time order (``dataset.train`` keeps it per user)."""
    sequences: dict[str, list[int]] = {}
    for example in dataset.train:
        sequences.setdefault(example.user_id, []).append(dataset.rows[example.target])
    return sequences


def training_windows(
    sequences: Iterable[Sequence[int]], start: int, max_length: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, targets) of windows of ``max_length`` ending every ``stride`` items from the end.

    Position ``i`` of a sequence reads the start token and the items before
    item ``i`` and predicts item ``i``; windows are left-padded (targets -1).
    Each item is a target once: in the window ending at or just after it, so
    with a ``stride`` below ``max_length`` it sees more of what came before.
    """
    tokens: list[list[int]] = []
    targets: list[list[int]] = []
    for rows in sequences:
        inputs = [start, *(r + 1 for r in rows)]
        for end in range(len(rows), 0, -stride):
            begin = max(0, end - max_length)
            own = max(begin, end - stride)  # earlier items are targets of the next window
            pad = max_length - (end - begin)
            tokens.append([PAD] * pad + inputs[begin:end])
            targets.append([-1] * (pad + own - begin) + list(rows[own:end]))
    return (
        torch.tensor(tokens, dtype=torch.long).reshape(-1, max_length),
        torch.tensor(targets, dtype=torch.long).reshape(-1, max_length),
    )


def trim(tokens: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the leading columns that are padding in every row of the batch."""
    filled = (tokens != PAD).any(0).nonzero()
    first = int(filled[0]) if len(filled) else tokens.shape[1] - 1
    return tokens[:, first:], targets[:, first:]


@dataclass(frozen=True)
class HeldOutInputs:
    """What each validation or test case's input sequence is: the user's items before it."""

    rows: Mapping[str, int]
    train: Mapping[str, Sequence[int]]
    """Each user's training item rows in time order."""
    held_out: Mapping[str, Sequence[str]]
    """Each user's held-out targets in time order (validation, then test)."""

    @classmethod
    def of(cls, dataset: Dataset) -> HeldOutInputs:
        """Read the inputs of ``dataset``'s validation and test cases."""
        held_out: dict[str, list[str]] = {}
        for example in (*dataset.valid, *dataset.test):
            held_out.setdefault(example.user_id, []).append(example.target)
        return cls(dataset.rows, user_sequences(dataset), held_out)

    def prefix(self, example: Example) -> list[int]:
        """Item rows of the user's interactions before ``example``, in time order.

        A held-out case is found as the user's latest held-out target equal to
        its own whose earlier held-out targets it has seen (its history); any
        other example reads the state's recent items it carries.
        """
        held = self.held_out.get(example.user_id, ())
        for p in range(len(held) - 1, -1, -1):
            if held[p] == example.target and all(i in example.history for i in held[:p]):
                earlier = [self.rows[i] for i in held[:p]]
                return [*self.train.get(example.user_id, ()), *earlier]
        return [self.rows[i] for i in reversed(example.recent) if i in self.rows]


@dataclass(frozen=True)
class SASRecScorer:
    """Scores every item for a batch of cases, as :func:`rank_targets` asks."""

    model: SASRec
    inputs: HeldOutInputs
    device: torch.device
    batch_size: int = 256

    def tokens(self, examples: Sequence[Example]) -> torch.Tensor:
        """Left-padded token rows: the start token and each case's item history, newest last."""
        model = self.model
        rows = [
            [model.start, *(r + 1 for r in self.inputs.prefix(e))][-model.max_length :]
            for e in examples
        ]
        width = max(len(r) for r in rows)
        return torch.tensor([[PAD] * (width - len(r)) + r for r in rows], dtype=torch.long)

    def scores(self, examples: Sequence[Example]) -> torch.Tensor:
        """(examples, items) scores, before exclusions."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            states = self.model(self.tokens(examples).to(self.device))[:, -1]
            scores = (states @ self.model.item_table().T).float().cpu()
        self.model.train(was_training)
        return scores


@dataclass(frozen=True)
class SASRecResult:
    """The trained baseline (best validation epoch's weights) and how it got there."""

    scorer: SASRecScorer
    best_epoch: int
    best_valid_ndcg: float
    seconds: float
    epochs: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: ``epoch``, mean training ``loss``, ``valid_ndcg``."""


def train_sasrec(dataset: Dataset, config: SASRecConfig | None = None) -> SASRecResult:
    """Train on ``dataset.train``, stop on validation NDCG@10, keep the best epoch's weights."""
    config = config or SASRecConfig()
    started = time.perf_counter()
    device = resolve_device(EncoderConfig(device=config.device))
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    items = len(dataset.items)
    model = SASRec(items, config).to(device)
    tokens, targets = training_windows(
        user_sequences(dataset).values(),
        model.start,
        config.max_length,
        config.stride or max(1, config.max_length // 2),
    )
    sampled = items > config.full_softmax_max_items
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98))
    scorer = SASRecScorer(model, HeldOutInputs.of(dataset), device, config.eval_batch_size)
    epochs: list[dict[str, float]] = []
    best_ndcg, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(tokens), generator=generator)
        total, steps = 0.0, 0
        for begin in range(0, len(order), config.batch_size):
            pick = order[begin : begin + config.batch_size]
            batch, wanted = trim(tokens[pick], targets[pick])
            negatives = (
                torch.randint(items, (config.negatives,), generator=generator).to(device)
                if sampled
                else None
            )
            loss = model.loss(batch.to(device), wanted.to(device), negatives)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        valid = ndcg(rank_targets(scorer, dataset, dataset.valid))
        epochs.append({"epoch": epoch, "loss": total / max(steps, 1), "valid_ndcg": valid})
        if valid > best_ndcg:
            best_ndcg, best_epoch, best_state = valid, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - started
    return SASRecResult(scorer, best_epoch, best_ndcg, seconds, epochs)
