"""Item vectors kept on disk across worker restarts, looked up by the text they embed.

An item's vector depends only on its text and on the item tower (see
:attr:`Ranker.item_tower_key`). Without this file a restarted worker
embeds its whole catalogue again before it can score anyone, in time that
grows with the number of items (bench/RESULTS.md, "Item vectors kept across
restarts"). A file written under another item
tower, or one that cannot be read, is ignored (and then replaced): it can
cost time, never wrong vectors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from encoders.ranker import TEXT_KEY_BYTES, ItemIndex, Ranker

log = logging.getLogger(__name__)


def load_vectors(path: Path, tower: str) -> dict[bytes, torch.Tensor]:
    """Vectors stored at ``path`` by item tower ``tower``, by text key; empty if none."""
    if not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="pt") as stored:
            if (stored.metadata() or {}).get("tower") != tower:
                log.info("item vectors in %s are another item tower's: not used", path)
                return {}
            keys, vectors = stored.get_tensor("keys"), stored.get_tensor("vectors")
        if keys.shape != (vectors.shape[0], TEXT_KEY_BYTES):
            raise ValueError(f"{keys.shape[0]} keys for {vectors.shape[0]} vectors")
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        log.warning("item vectors in %s could not be read (%s): embedding again", path, exc)
        return {}
    return {bytes(k): v for k, v in zip(keys.tolist(), vectors, strict=True)}


def save_vectors(path: Path, tower: str, index: ItemIndex) -> None:
    """Store the index's vectors by text key; atomic, so a crash leaves the old file or the new."""
    keys = torch.tensor([list(k) for k in index.text_keys], dtype=torch.uint8)
    keys = keys.reshape(len(index.texts), TEXT_KEY_BYTES)
    vectors = index.embeddings.detach().float().cpu().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file({"keys": keys, "vectors": vectors}, str(partial), metadata={"tower": tower})
    os.replace(partial, path)


def build_index_cached(
    ranker: Ranker, items: Sequence[tuple[str, str]], path: Path | None
) -> ItemIndex:
    """:meth:`Ranker.build_index` reusing the vectors at ``path``, then storing the new set."""
    if path is None:
        return ranker.build_index(items)
    tower = ranker.item_tower_key
    known = load_vectors(path, tower)
    index = ranker.build_index(items, known)
    reused = sum(k in known for k in index.text_keys)
    log.info("item index: %d of %d vectors reused from %s", reused, len(index), path)
    if reused < len(index):
        _store(path, tower, index)
    return index


def update_index_cached(
    ranker: Ranker, index: ItemIndex, changed: Sequence[tuple[str, str]], path: Path | None
) -> ItemIndex:
    """:meth:`Ranker.update_index`, storing the result when anything was embedded."""
    updated = ranker.update_index(index, changed)
    if path is not None and updated is not index:
        _store(path, ranker.item_tower_key, updated)
    return updated


def _store(path: Path, tower: str, index: ItemIndex) -> None:
    # The file only saves time at the next start: a full disk must not stop the scorer.
    try:
        save_vectors(path, tower, index)
    except (OSError, SafetensorError) as exc:
        log.warning("item vectors could not be stored in %s: %s", path, exc)
