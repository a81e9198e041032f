"""Limit: the user tower's raw forward pass on pre-tokenized summaries.

Inputs are the real summaries, tokenized outside the clock and padded to the
longest in each batch (what a plain forward of that batch costs); the forward
runs in the scorer's own mode (inference mode, bf16 autocast where the
config's precision picks it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from encoders.ranker import Ranker


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Wait for queued device work (CUDA is asynchronous; CPU is not)."""
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def token_batches(
    ranker: Ranker, summaries: Sequence[str], size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Tokenize ``summaries`` in batches of ``size`` and move them to the device, untimed."""
    length = ranker.model.spec.user_max_length or ranker.config.user_max_length
    out = []
    for start in range(0, len(summaries) - size + 1, size):
        batch = ranker.tokenizer(
            list(summaries[start : start + size]),
            padding=True,
            truncation=True,
            max_length=length,
            return_tensors="pt",
        )
        out.append(
            (batch["input_ids"].to(ranker.device), batch["attention_mask"].to(ranker.device))
        )
    return out


def forward(ranker: Ranker, ids: torch.Tensor, mask: torch.Tensor) -> Callable[[], object]:
    """One raw user-tower forward of a pre-tokenized batch, as a timed call."""

    def run() -> object:
        with ranker._mode():
            return ranker.model.user_tower(ids, mask).embedding

    return run
