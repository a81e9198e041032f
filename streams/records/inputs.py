"""Input records (docs/architecture.md, "Records"): events and items, validated on the way in.

Pure over bytes. The stream and every offline tool read input records through
``Event.from_json`` and ``Item.from_json``, so a record the stream rejects is
also rejected offline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import orjson

from streams.records.json_record import JsonRecord

EVENT_TYPES = frozenset({"view", "click", "add_to_cart", "purchase", "rating"})
MAX_RECORD_BYTES = 64 * 1024
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 4096


class InvalidRecord(ValueError):
    """A record that breaks its contract; the message is the DLQ reason."""


@dataclass(frozen=True, slots=True)
class Event(JsonRecord):
    """One user interaction (topic ``events``)."""

    OPTIONAL = frozenset({"price", "quantity", "rating"})

    event_id: str
    type: str
    user_id: str
    item_id: str
    ts: int
    price: float | None = None
    quantity: int | None = None
    rating: float | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Validate a decoded event object; raise :class:`InvalidRecord` with the reason."""
        event_type = _text(obj, "type")
        if event_type not in EVENT_TYPES:
            raise InvalidRecord(f"unknown event type {event_type!r}")
        ts = obj.get("ts")
        if ts is None:
            raise InvalidRecord("missing field 'ts'")
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise InvalidRecord(
                f"field 'ts' must be an integer (epoch ms), got {type(ts).__name__}"
            )
        if ts < 0:
            raise InvalidRecord("field 'ts' is negative")
        price = _number(obj, "price", required=False)
        if price is not None and price < 0:
            raise InvalidRecord(f"negative price {price}")
        quantity = obj.get("quantity")
        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1
        ):
            raise InvalidRecord("field 'quantity' must be a positive integer")
        rating = _number(obj, "rating", required=event_type == "rating")
        if rating is not None and not 0 <= rating <= 10:
            raise InvalidRecord(f"rating {rating} outside [0, 10]")
        return cls(
            event_id=_text(obj, "event_id"),
            type=event_type,
            user_id=_text(obj, "user_id"),
            item_id=_text(obj, "item_id"),
            ts=ts,
            price=price,
            quantity=quantity,
            rating=rating,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse and validate one event (size, UTF-8, JSON, then every field)."""
        return cls.from_dict(_load_object(raw))


@dataclass(frozen=True, slots=True)
class Item(JsonRecord):
    """One catalogue entry (topic ``items``, compacted, key ``item_id``)."""

    item_id: str
    title: str
    category: str
    base_price: float
    description: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    floor: float | None = None
    ceiling: float | None = None

    def text(self) -> str:
        """Render the text the item tower encodes (same offline and online)."""
        parts = [self.title, f"category: {self.category}"]
        if self.attributes:
            parts.append("; ".join(f"{k}: {v}" for k, v in self.attributes))
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Return the contract's JSON object."""
        out: dict[str, Any] = {
            "item_id": self.item_id,
            "title": self.title,
            "category": self.category,
            "base_price": self.base_price,
        }
        if self.description:
            out["description"] = self.description
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.floor is not None:
            out["floor"] = self.floor
        if self.ceiling is not None:
            out["ceiling"] = self.ceiling
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Validate a decoded item object; raise :class:`InvalidRecord` with the reason."""
        base = _number(obj, "base_price", required=True)
        assert base is not None
        if base <= 0:
            raise InvalidRecord(f"base_price must be positive, got {base}")
        floor = _number(obj, "floor", required=False)
        ceiling = _number(obj, "ceiling", required=False)
        if floor is not None and floor < 0:
            raise InvalidRecord(f"negative floor {floor}")
        if floor is not None and floor > base:
            raise InvalidRecord(f"floor {floor} above base_price {base}")
        if ceiling is not None and ceiling < base:
            raise InvalidRecord(f"ceiling {ceiling} below base_price {base}")
        attributes = obj.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise InvalidRecord("field 'attributes' must be an object")
        description = obj.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRecord("field 'description' must be a string")
        return cls(
            item_id=_text(obj, "item_id"),
            title=_text(obj, "title", limit=MAX_TEXT_CHARS),
            category=_text(obj, "category", limit=MAX_TEXT_CHARS),
            base_price=base,
            description=description[:MAX_TEXT_CHARS],
            attributes=tuple(sorted((str(k), str(v)) for k, v in attributes.items())),
            floor=floor,
            ceiling=ceiling,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse and validate one catalogue item (size, UTF-8, JSON, then every field)."""
        return cls.from_dict(_load_object(raw))


def item_titles(items: Mapping[str, Item]) -> Callable[[str], str | None]:
    """Return item_id -> title, None for an unknown item (how summaries name items).

    The lookup reads ``items`` when called, so it follows a catalogue that changes.
    """

    def title_of(item_id: str) -> str | None:
        item = items.get(item_id)
        return item.title if item else None

    return title_of


def _load_object(raw: bytes | str) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidRecord(f"payload of {len(raw)} bytes exceeds {MAX_RECORD_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _text(obj: Mapping[str, Any], key: str, *, limit: int = MAX_ID_CHARS) -> str:
    if key not in obj or obj[key] is None:
        raise InvalidRecord(f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidRecord(f"field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidRecord(f"field {key!r} is empty")
    if len(value) > limit:
        raise InvalidRecord(f"field {key!r} longer than {limit} characters")
    return value


def _number(obj: Mapping[str, Any], key: str, *, required: bool) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidRecord(f"missing field {key!r}")
        return None
    # bool is an int subclass; a true/false price is a producer bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"field {key!r} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRecord(f"field {key!r} must be finite")
    return number
