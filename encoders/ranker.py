"""Batch scoring: summaries -> user tower -> item index -> top-K.

Used unchanged by the stream's scorer and by offline evaluation, so both give
the same top-K for the same user state.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from encoders.config import EncoderConfig
from encoders.model import Recommender, history_rows
from encoders.precision import autocast_for, uses_bf16


def resolve_device(config: EncoderConfig) -> torch.device:
    """Pick the device the towers run on."""
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def catalog_version(item_texts: Sequence[tuple[str, str]]) -> str:
    """Stable digest of (item_id, text) pairs: names the catalogue an index was built from."""
    digest = hashlib.blake2b(digest_size=8)
    for item_id, text in sorted(item_texts):
        digest.update(item_id.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\1")
    return digest.hexdigest()


TEXT_KEY_BYTES = 16


def text_key(text: str) -> bytes:
    """Digest of an item text: what a stored item vector is looked up by."""
    return hashlib.blake2b(text.encode(), digest_size=TEXT_KEY_BYTES).digest()


@dataclass(frozen=True)
class ItemIndex:
    """Item embeddings resident on the scoring device; replaced whole, never mutated."""

    item_ids: tuple[str, ...]
    embeddings: torch.Tensor
    """(items, dim) float32, L2-normalised, on the scoring device."""
    version: str
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.item_ids)

    @cached_property
    def rows(self) -> dict[str, int]:
        """Map item id to its row."""
        return {item_id: row for row, item_id in enumerate(self.item_ids)}

    @cached_property
    def text_keys(self) -> tuple[bytes, ...]:
        """:func:`text_key` of every row's text."""
        return tuple(map(text_key, self.texts))


class Ranker:
    """Runs the towers in micro-batches; thread-safe for one caller at a time."""

    def __init__(self, model: Recommender, config: EncoderConfig) -> None:
        self.config = config
        self.device = resolve_device(config)
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)
        self.model = model.to(self.device).eval()
        self.tokenizer = model.tokenizer
        self._rows: tuple[str, torch.Tensor | None] | None = None

    @property
    def model_version(self) -> str:
        """Version of the model behind the scores."""
        return self.model.model_version

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        with torch.inference_mode(), autocast_for(self.device, self.config.precision):
            yield

    def _encode(self, texts: Sequence[str], max_length: int, *, user: bool) -> torch.Tensor:
        # One batch padded to its longest: sorting into length buckets measured
        # slower on CPU (summary lengths vary little; smaller matmuls cost more;
        # bench/RESULTS.md, "Length bucketing in the scorer (not adopted)").
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.device.type == "cuda":
            # Pinned host memory makes the non-blocking copies truly asynchronous.
            ids, mask = ids.pin_memory(), mask.pin_memory()
        ids = ids.to(self.device, non_blocking=True)
        mask = mask.to(self.device, non_blocking=True)
        tower = self.model.user_tower if user else self.model.item_tower
        with self._mode():
            return tower(ids, mask).embedding.float()

    def encode_users(self, summaries: Sequence[str]) -> torch.Tensor:
        """One forward pass of the user tower for a batch of summaries.

        A fine-tuned model's own token budget (``recprice.json``) wins over the
        config's: serving must cut summaries where training did.
        """
        length = self.model.spec.user_max_length or self.config.user_max_length
        return self._encode(summaries, length, user=True)

    @property
    def item_length(self) -> int:
        """Token budget of an item text (a fine-tuned model's own wins, as for users)."""
        return self.model.spec.item_max_length or self.config.item_max_length

    @cached_property
    def item_tower_key(self) -> str:
        """Digest of everything an item vector depends on besides its text.

        The item tower's weights, the token budget, the number format and the
        device type: a stored vector is reused only under the same key.
        """
        digest = hashlib.blake2b(digest_size=16)
        bf16 = uses_bf16(self.device, self.config.precision)
        digest.update(f"{self.item_length}|{bf16}|{self.device.type}".encode())
        for name, tensor in sorted(self.model.item_tower.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def build_index(
        self,
        items: Sequence[tuple[str, str]],
        known: Mapping[bytes, torch.Tensor] | None = None,
    ) -> ItemIndex:
        """Embed (item_id, text) pairs with the item tower, in batches.

        ``known`` maps :func:`text_key` to vectors this item tower computed
        before (:attr:`item_tower_key`); those texts are not embedded again.
        """
        ordered = sorted(items)
        ids = tuple(item_id for item_id, _ in ordered)
        texts = tuple(text for _, text in ordered)
        version = catalog_version(ordered)
        if not texts:
            empty = torch.zeros(0, self.model.item_tower.dim, device=self.device)
            return ItemIndex(ids, empty, version, texts)
        known = known or {}
        keys = [text_key(text) for text in texts]
        # Each distinct text is embedded once; stored vectors move to the device in one copy.
        distinct = dict(zip(keys, texts, strict=True))
        missing = [k for k in distinct if k not in known]
        reused = [k for k in distinct if k in known]
        size = self.config.item_batch_size
        parts = [
            self._encode([distinct[k] for k in missing[i : i + size]], self.item_length, user=False)
            for i in range(0, len(missing), size)
        ]
        if reused:
            parts.append(torch.stack([known[k] for k in reused]).to(self.device))
        row = {k: r for r, k in enumerate(missing + reused)}
        order = torch.tensor([row[k] for k in keys], device=self.device)
        return ItemIndex(ids, torch.cat(parts).index_select(0, order), version, texts)

    def update_index(self, index: ItemIndex, changed: Sequence[tuple[str, str]]) -> ItemIndex:
        """Return a new index with ``changed`` items re-embedded and new ones added."""
        current = dict(zip(index.item_ids, index.texts, strict=True))
        fresh = [(i, t) for i, t in changed if current.get(i) != t]
        if not fresh:
            return index
        rows = index.rows
        new_vectors = self.build_index(fresh)
        merged = dict(current)
        merged.update(fresh)
        ordered = sorted(merged.items())
        fresh_rows = new_vectors.rows
        vectors = [
            new_vectors.embeddings[fresh_rows[i]] if i in fresh_rows else index.embeddings[rows[i]]
            for i, _ in ordered
        ]
        return ItemIndex(
            tuple(i for i, _ in ordered),
            torch.stack(vectors),
            catalog_version(ordered),
            tuple(t for _, t in ordered),
        )

    def head_rows(self, index: ItemIndex) -> torch.Tensor | None:
        """Rows of the head's item table for the index's items (cached per index version)."""
        if self._rows is None or self._rows[0] != index.version:
            self._rows = (index.version, self.model.head.rows_for(index.item_ids))
        return self._rows[1]

    def top_k(
        self,
        users: torch.Tensor,
        index: ItemIndex,
        exclude: Sequence[frozenset[str]],
        k: int,
    ) -> list[list[tuple[str, float]]]:
        """Score users against the index; best ``k`` per user, excluded items removed."""
        if len(index) == 0:
            return [[] for _ in range(users.shape[0])]
        with torch.inference_mode():
            logits = self.model.head(users, index.embeddings, self.head_rows(index)).float()
            rows = index.rows
            users_masked: list[int] = []
            items_masked: list[int] = []
            for u, items in enumerate(exclude):
                for item in items:
                    row = rows.get(item)
                    if row is not None:
                        users_masked.append(u)
                        items_masked.append(row)
            if users_masked:
                # One indexed write for the whole batch instead of one per user.
                logits[users_masked, items_masked] = float("-inf")
            take = min(k, len(index))
            scores, positions = torch.topk(logits, take, dim=1)
        out: list[list[tuple[str, float]]] = []
        for score_row, pos_row in zip(scores.cpu().tolist(), positions.cpu().tolist(), strict=True):
            out.append(
                [
                    (index.item_ids[p], s)
                    for s, p in zip(score_row, pos_row, strict=True)
                    if s != float("-inf")
                ]
            )
        return out

    def user_vectors(
        self, summaries: Sequence[str], recent: Sequence[Sequence[str]], index: ItemIndex
    ) -> torch.Tensor:
        """User vectors: the summary tower's, plus the model's pool of the recent items."""
        if len(recent) != len(summaries):
            raise ValueError(f"{len(recent)} recent-item lists for {len(summaries)} summaries")
        users = self.encode_users(summaries)
        head = self.model.head
        if not head.history or len(index) == 0:
            return users
        history = history_rows(recent, index.rows, head.history).to(self.device)
        with torch.inference_mode():
            return head.with_history(users, index.embeddings, self.head_rows(index), history)

    def recommend(
        self,
        summaries: Sequence[str],
        recent: Sequence[Sequence[str]],
        exclude: Sequence[frozenset[str]],
        index: ItemIndex,
    ) -> list[list[tuple[str, float]]]:
        """Summaries and recent item ids in, ranked (item_id, score) lists out.

        The whole scoring path; ``recent`` is each user's
        :meth:`~encoders.behaviour.UserState.recent_items`.
        """
        if not summaries:
            return []
        users = self.user_vectors(summaries, recent, index)
        return self.top_k(users, index, exclude, self.config.top_k)
