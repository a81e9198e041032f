"""Split a BERT-family tower at a layer: frozen lower layers cached, upper layers trained.

On a CPU the frozen lower layers cost most of a forward pass; caching their
output once turns every later epoch into a pass over the top layers only.
The split forward is the same computation as :class:`TextTower`'s forward,
so a model trained this way serves through the unchanged full tower.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from tqdm import tqdm

from encoders.model import TextTower


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


def lower_states(
    tower: TextTower,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    split: int,
    *,
    batch_size: int = 256,
    dtype: torch.dtype = torch.float16,
    progress: bool = True,
) -> torch.Tensor:
    """Hidden states after the first ``split`` layers, stored in ``dtype`` (eval mode, no grad)."""
    device = next(tower.parameters()).device
    was_training = tower.training
    tower.eval()
    # Filled in place: concatenating chunks would hold the cache twice at peak.
    rows, width = input_ids.shape
    states = torch.zeros(rows, width, tower.dim, dtype=dtype)
    # Chunks of similar length, each cut to its longest row: padding past it
    # is masked everywhere downstream, so its cached states stay zero.
    lengths = attention_mask.sum(1)
    order = lengths.argsort()
    chunks = [order[start : start + batch_size] for start in range(0, rows, batch_size)]
    with torch.no_grad():
        for index in tqdm(chunks, desc="cache lower layers", disable=not progress):
            used = int(lengths[index].max())
            ids = input_ids[index, :used].to(device)
            mask = attention_mask[index, :used].to(device)
            hidden = _embeddings(tower)(input_ids=ids)
            extended = _extended_mask(tower, mask, hidden.dtype)
            for layer in list(_layers(tower))[:split]:
                hidden = layer(hidden, attention_mask=extended)[0]
            states[index, :used] = hidden.to(dtype).cpu()
    tower.train(was_training)
    return states


def upper_forward(
    tower: TextTower, hidden: torch.Tensor, attention_mask: torch.Tensor, split: int
) -> torch.Tensor:
    """Finish the forward pass from cached states: top layers, mean pooling, L2 norm."""
    hidden = hidden.to(next(tower.parameters()).dtype)
    extended = _extended_mask(tower, attention_mask, hidden.dtype)
    for layer in list(_layers(tower))[split:]:
        hidden = layer(hidden, attention_mask=extended)[0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return F.normalize(pooled.float(), dim=-1)
