"""Split a BERT-family tower at a layer: frozen lower layers kept out of RAM, upper layers trained.

On a CPU the frozen lower layers cost most of a forward pass. Their output
for each example is either written once to a file in 16-bit and read back by
batch (:class:`DiskStates`), recomputed by batch (:class:`RecomputedStates`),
or, when no layer above them trains, reduced to one pooled vector per example
(:class:`PooledStates`). None of them holds a per-token state per example in
RAM, so memory does not grow with the data by more than a few numbers per
example. The split forward is the same computation as :class:`TextTower`'s
forward, so a model trained this way serves through the unchanged full tower.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from tqdm import tqdm

from encoders.model import TextTower

CacheMode = Literal["pooled", "disk", "recompute"]
Tokenize = Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]]
"""Texts to (input ids, attention mask), right-padded to the longest text."""
Autocast = Callable[[], contextlib.AbstractContextManager[None]]
"""The number format the frozen layers compute in."""

# Texts tokenised at a time while the states are computed or their lengths counted.
_CHUNK = 4096


def _layers(tower: TextTower) -> nn.ModuleList:
    stack = cast(nn.Module, tower.encoder.encoder)
    return cast(nn.ModuleList, stack.layer)


def _embeddings(tower: TextTower) -> nn.Module:
    return cast(nn.Module, tower.encoder.embeddings)


def depth(tower: TextTower) -> int:
    """Return the number of transformer layers of the tower."""
    return len(_layers(tower))


def freeze_below(tower: TextTower, train_layers: int) -> int:
    """Freeze embeddings and all but the top ``train_layers`` layers; return the split layer."""
    split = max(depth(tower) - train_layers, 0)
    for param in tower.parameters():
        param.requires_grad_(False)
    for layer in list(_layers(tower))[split:]:
        for param in layer.parameters():
            param.requires_grad_(True)
    return split


def _extended_mask(tower: TextTower, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Additive (batch, 1, 1, seq) mask: what the encoder builds for its layers.
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def lower_forward(
    tower: TextTower, input_ids: torch.Tensor, attention_mask: torch.Tensor, split: int
) -> torch.Tensor:
    """Hidden states after the embeddings and the first ``split`` layers (call under no_grad)."""
    hidden = _embeddings(tower)(input_ids=input_ids)
    extended = _extended_mask(tower, attention_mask, hidden.dtype)
    for layer in list(_layers(tower))[:split]:
        hidden = layer(hidden, attention_mask=extended)[0]
    return cast(torch.Tensor, hidden)


def upper_forward(
    tower: TextTower, hidden: torch.Tensor, attention_mask: torch.Tensor, split: int
) -> torch.Tensor:
    """Finish the forward pass from lower states: top layers, mean pooling, L2 norm."""
    hidden = hidden.to(next(tower.parameters()).dtype)
    extended = _extended_mask(tower, attention_mask, hidden.dtype)
    for layer in list(_layers(tower))[split:]:
        hidden = layer(hidden, attention_mask=extended)[0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return F.normalize(pooled.float(), dim=-1)


def choose_cache(
    asked: Literal["auto", "disk", "recompute"],
    *,
    trained_layers: int,
    passes: float,
    disk_bytes: int,
    disk_budget: int,
) -> CacheMode:
    """Where a tower's frozen lower states live during training.

    No trained layer above them: one pooled vector per example. Otherwise,
    asked for ``auto``: on disk when each example is read at least twice (a
    pass saved) and the file fits ``disk_budget``, else recomputed by batch.
    """
    if not trained_layers:
        return "pooled"
    if asked != "auto":
        return asked
    return "disk" if passes >= 2 and disk_bytes <= disk_budget else "recompute"


def state_bytes(rows: int, width: int, dim: int, dtype: torch.dtype) -> int:
    """Size of the file of ``rows`` cached states of ``width`` tokens."""
    return rows * width * dim * torch.empty((), dtype=dtype).element_size()


class LowerStates(ABC):
    """Lower-layer states of a list of texts, read by batch of row indices."""

    def __init__(self, texts: Sequence[str], tokenize: Tokenize) -> None:
        self.texts = texts
        self.tokenize = tokenize
        self._lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def lengths(self) -> torch.Tensor:
        """Token count of each text (what length buckets sort by)."""
        if self._lengths is None:
            self._lengths = _token_counts(self.texts, self.tokenize)
        return self._lengths

    @abstractmethod
    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden, mask) of rows ``index``, cut to the longest of them."""


def _token_counts(texts: Sequence[str], tokenize: Tokenize) -> torch.Tensor:
    counts = [
        tokenize(texts[start : start + _CHUNK])[1].sum(1) for start in range(0, len(texts), _CHUNK)
    ]
    return torch.cat(counts) if counts else torch.zeros(0, dtype=torch.long)


class RecomputedStates(LowerStates):
    """Tokenise and run the frozen lower layers for every batch: nothing stored."""

    def __init__(
        self,
        texts: Sequence[str],
        tokenize: Tokenize,
        tower: TextTower,
        split: int,
        autocast: Autocast,
    ) -> None:
        super().__init__(texts, tokenize)
        self.tower = tower
        self.split = split
        self.autocast = autocast

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the rows' lower states now (no grad), on the tower's device."""
        device = next(self.tower.parameters()).device
        ids, mask = self.tokenize([self.texts[i] for i in index.tolist()])
        ids, mask = ids.to(device), mask.to(device)
        was_training = self.tower.training
        self.tower.eval()  # frozen layers: no dropout, as in a cache
        with torch.no_grad(), self.autocast():
            hidden = lower_forward(self.tower, ids, mask, self.split)
        self.tower.train(was_training)
        return hidden, mask


def _chunks_by_length(
    rows: torch.Tensor, texts: Sequence[str], tokenize: Tokenize, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Tokenise ``rows`` a chunk at a time; yield batches of similar length, cut to the longest."""
    out = []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        ids, mask = tokenize([texts[i] for i in chunk.tolist()])
        order = mask.sum(1).argsort()
        for part in order.split(batch_size):
            used = int(mask[part].sum(1).max())
            out.append((chunk[part], ids[part, :used], mask[part, :used]))
    return out


class DiskStates(LowerStates):
    """States computed once and written to a file in ``dtype``; each batch is read back.

    Rows are fixed-size records (``width`` tokens); a batch reads only the
    first tokens up to its longest row with ``pread``, so what is cached
    lives in the file and the page cache, not in the process's memory.
    """

    def __init__(
        self,
        texts: Sequence[str],
        tokenize: Tokenize,
        path: Path,
        width: int,
        dim: int,
        dtype: torch.dtype,
    ) -> None:
        super().__init__(texts, tokenize)
        self.path = path
        self.width = width
        self.dim = dim
        self.dtype = dtype
        self.token_bytes = dim * torch.empty((), dtype=dtype).element_size()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, len(texts) * width * self.token_bytes)

    def fill(
        self,
        tower: TextTower,
        split: int,
        rows: torch.Tensor,
        autocast: Autocast,
        *,
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        """Compute and write the states of ``rows`` (this process's share of the file)."""
        device = next(tower.parameters()).device
        was_training = tower.training
        tower.eval()
        chunks = _chunks_by_length(rows, self.texts, self.tokenize, batch_size)
        with torch.no_grad():
            for index, ids, mask in tqdm(chunks, desc="cache lower layers", disable=not progress):
                with autocast():
                    hidden = lower_forward(tower, ids.to(device), mask.to(device), split)
                raw = hidden.to(self.dtype).cpu().contiguous().view(torch.uint8).numpy()
                for row, states in zip(index.tolist(), raw, strict=True):
                    os.pwrite(self.fd, states.tobytes(), row * self.width * self.token_bytes)
        tower.train(was_training)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the rows' states from the file, cut to the longest row of the batch."""
        lengths = self.lengths[index]
        used = max(int(lengths.max()), 1) if len(index) else 1
        out = torch.empty(len(index), used, self.dim, dtype=self.dtype)
        raw = out.view(torch.uint8).numpy()
        for position, row in enumerate(index.tolist()):
            os.preadv(self.fd, [raw[position]], row * self.width * self.token_bytes)
        mask = (torch.arange(used).unsqueeze(0) < lengths.unsqueeze(1)).long()
        return out, mask

    def close(self) -> None:
        """Close the file (the caller removes its folder)."""
        os.close(self.fd)


class PooledStates(LowerStates):
    """One pooled vector per text: the whole tower is frozen, so nothing above needs tokens."""

    def __init__(
        self,
        texts: Sequence[str],
        tokenize: Tokenize,
        tower: TextTower,
        autocast: Autocast,
        *,
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        super().__init__(texts, tokenize)
        was_training = tower.training
        tower.eval()
        device = next(tower.parameters()).device
        rows = torch.arange(len(texts))
        chunks = _chunks_by_length(rows, texts, tokenize, batch_size)
        # Mean-pooled, not yet normalised: upper_forward over one token normalises.
        self.vectors = torch.zeros(len(texts), tower.dim)
        with torch.no_grad():
            for index, ids, mask in tqdm(chunks, desc="encode summaries", disable=not progress):
                with autocast():
                    pooled = tower(ids.to(device), mask.to(device)).pooled
                self.vectors[index] = pooled.float().cpu()
        tower.train(was_training)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row as a single token whose state is its pooled vector."""
        return self.vectors[index].unsqueeze(1), torch.ones(len(index), 1, dtype=torch.long)
