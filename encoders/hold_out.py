"""Which items a model was trained without: the held-out split, kept in its model directory.

``recprice train --hold-out-items`` records the split in ``held_out_items.json``;
``recprice evaluate`` reads it back to know which items are cold for each model
and refuses a model trained on another split than the one it is asked to
measure (docs/model.md, "Cold items: the held-out split").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from encoders.dataset import Dataset, held_out_items

HOLD_OUT_FILE = "held_out_items.json"


@dataclass(frozen=True)
class HoldOut:
    """A held-out split: the share and seed asked for and the items they picked."""

    share: float
    seed: int
    items: frozenset[str]

    def flags(self) -> str:
        """Spell the command-line flags that ask for this split."""
        return f"--hold-out-items {self.share} --hold-out-seed {self.seed}"


class HoldOutMismatch(ValueError):
    """A model was trained on another held-out split than the one asked for."""


def pick_hold_out(dataset: Dataset, share: float, seed: int) -> HoldOut | None:
    """Return the split ``share`` and ``seed`` pick on ``dataset``; None when ``share`` is 0."""
    if share == 0:
        return None
    return HoldOut(share, seed, held_out_items(dataset, share, seed))


def write_hold_out(model_dir: Path, hold_out: HoldOut | None) -> None:
    """Record ``hold_out`` in a model directory; None removes an older run's record."""
    path = model_dir / HOLD_OUT_FILE
    if hold_out is None:
        path.unlink(missing_ok=True)
        return
    record = {"share": hold_out.share, "seed": hold_out.seed, "item_ids": sorted(hold_out.items)}
    path.write_text(json.dumps(record, indent=2))


def read_hold_out(model_dir: Path) -> HoldOut | None:
    """Return the split a model directory was trained without; None if it saw every item."""
    path = model_dir / HOLD_OUT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return HoldOut(float(record["share"]), int(record["seed"]), frozenset(record["item_ids"]))


def check_hold_out(name: str, trained: HoldOut | None, asked: HoldOut | None) -> None:
    """Refuse a model whose held-out split is not the one asked for.

    A model trained on every item (no record) may be measured on any split,
    as a reference that saw the held-out items; a model trained without some
    items only on exactly those items, picked by the same share and seed.
    """
    if trained is None:
        return
    if asked is None:
        raise HoldOutMismatch(
            f"model {name} was trained without {len(trained.items)} held-out items: "
            f"evaluate it with {trained.flags()}"
        )
    if (trained.share, trained.seed) != (asked.share, asked.seed):
        raise HoldOutMismatch(
            f"model {name} was trained with {trained.flags()}, not {asked.flags()}"
        )
    if trained.items != asked.items:
        raise HoldOutMismatch(
            f"model {name} was trained without other items than {asked.flags()} picks "
            f"here ({len(trained.items ^ asked.items)} differ): another events or items file"
        )


def training_notes(rows: Iterable[str], trained: Mapping[str, HoldOut | None]) -> dict[str, str]:
    """Say for each result row whether what scored it saw the held-out items in training.

    ``trained`` maps each model's name to its recorded split; a model's rows
    are its name and its name followed by a parenthesised variant, such as
    ``"name (ids off)"``. Rows of nothing named there get no note.
    """
    notes = {"popularity": "no (counts from the training view)", "zero-shot": "no (not trained)"}
    out: dict[str, str] = {}
    for row in rows:
        model = next((m for m in trained if row == m or row.startswith(f"{m} (")), None)
        if model is not None:
            out[row] = "yes (trained on every item)" if trained[model] is None else "no"
        elif row in notes:
            out[row] = notes[row]
    return out
