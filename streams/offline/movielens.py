"""MovieLens-100K (as bundled in the ``recbole`` package) -> our record contracts.

Mapping, documented and deterministic:

* every rating becomes one event, ``purchase`` when the rating is >= 4 and
  ``click`` otherwise, carrying the rating and (for purchases) the item's base
  price; ``event_id`` is ``ml-<line>``; ``ts`` is the rating time in epoch ms;
* events are ordered by time, ties kept in file order (MovieLens timestamps
  tie often, and the order decides the train/validation/test split);
* item text = title with year, category = first genre, attributes = year and
  all genres;
* MovieLens has no prices: ``base_price`` = 3.99 + (blake2b(item_id) mod 1100)
  cents, so 3.99 to 14.98, with floor 70% and ceiling 130% of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streams.records.inputs import Event, Item

PURCHASE_MIN_RATING = 4.0


def bundled_dir() -> Path:
    """Return recbole's bundled ml-100k folder (``pip install --no-deps recbole``)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("recbole")
    except ImportError:  # pragma: no cover - find_spec only raises for broken parents
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("recbole is not installed: pip install --no-deps recbole==1.2.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        raise FileNotFoundError(f"MovieLens-100K files not found under {path}")
    return path


def base_price(item_id: str) -> float:
    """Deterministic list price of a MovieLens item (see the module docstring)."""
    digest = hashlib.blake2b(item_id.encode(), digest_size=8).digest()
    return round(3.99 + (int.from_bytes(digest, "big") % 1100) / 100, 2)


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        next(handle)  # recbole header with typed column names
        for line in handle:
            if line.strip():
                yield line.rstrip("\n").split("\t")


def read_items(folder: Path) -> list[Item]:
    """Catalogue of ml-100k in our contract."""
    items = []
    for row in _rows(folder / "ml-100k.item"):
        item_id, title, year = row[0], row[1].strip(), row[2].strip()
        genres = row[3].split() if len(row) > 3 and row[3].strip() else ["unknown"]
        price = base_price(item_id)
        items.append(
            Item(
                item_id=item_id,
                title=f"{title} ({year})" if year else title,
                category=genres[0],
                base_price=price,
                attributes=(("genres", ", ".join(genres)), ("year", year or "unknown")),
                floor=round(price * 0.7, 2),
                ceiling=round(price * 1.3, 2),
            )
        )
    return items


def read_events(folder: Path, prices: dict[str, float]) -> list[Event]:
    """All ratings as events, ordered by time with ties in file order."""
    events = []
    for line_no, row in enumerate(_rows(folder / "ml-100k.inter"), start=1):
        user_id, item_id, rating, ts = row[0], row[1], float(row[2]), int(float(row[3]))
        purchase = rating >= PURCHASE_MIN_RATING
        events.append(
            Event(
                event_id=f"ml-{line_no}",
                type="purchase" if purchase else "click",
                user_id=user_id,
                item_id=item_id,
                ts=ts * 1000,
                price=prices.get(item_id) if purchase else None,
                rating=rating,
            )
        )
    events.sort(key=lambda e: e.ts)  # stable: equal timestamps keep file order
    return events


@dataclass(frozen=True)
class Converted:
    """Where the converted files went and how many records each holds."""

    events_path: Path
    items_path: Path
    events: int
    items: int


def convert(out: Path, folder: Path | None = None) -> Converted:
    """Write ``events.jsonl`` and ``items.jsonl`` under ``out``."""
    folder = folder or bundled_dir()
    out.mkdir(parents=True, exist_ok=True)
    items = read_items(folder)
    events = read_events(folder, {i.item_id: i.base_price for i in items})
    items_path, events_path = out / "items.jsonl", out / "events.jsonl"
    items_path.write_bytes(b"".join(i.to_json() + b"\n" for i in items))
    events_path.write_bytes(b"".join(e.to_json() + b"\n" for e in events))
    return Converted(events_path, items_path, len(events), len(items))
