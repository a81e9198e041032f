"""Event logs and catalogues as JSONL files, read through the same validation as the stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from streams.records.inputs import Event, InvalidRecord, Item


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield line


def read_events(path: Path) -> tuple[list[Event], int]:
    """Return the valid events of a JSONL log in time order (ties in file order) and the rejects."""
    events: list[Event] = []
    rejected = 0
    for line in _lines(path):
        try:
            events.append(Event.from_json(line))
        except InvalidRecord:
            rejected += 1
    events.sort(key=lambda e: e.ts)  # stable: equal timestamps keep file order
    return events, rejected


def read_items(path: Path) -> tuple[list[Item], int]:
    """Return the valid items of a JSONL catalogue (a later row of an id wins) and the rejects."""
    items: dict[str, Item] = {}
    rejected = 0
    for line in _lines(path):
        try:
            item = Item.from_json(line)
        except InvalidRecord:
            rejected += 1
            continue
        items[item.item_id] = item
    return list(items.values()), rejected
