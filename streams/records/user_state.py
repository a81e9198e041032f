"""A user's rolling behaviour state: the `user_state` table's value, carried by scoring requests."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from streams.records.json_record import TableRecord


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """The part of an event the rolling window keeps."""

    type: str
    item_id: str
    ts: int
    rating: float | None = None


@dataclass(frozen=True)
class UserState(TableRecord):
    """Rolling state of one user; immutable, updated by :func:`apply_event`.

    The ``user_state`` table's value: short keys keep users small, floats round-trip exactly.
    """

    version: int = 0
    recent: tuple[RecentEvent, ...] = ()
    seen: tuple[int, ...] = ()
    purchased: tuple[str, ...] = ()
    categories: Mapping[str, float] = field(default_factory=dict)
    price_weight: float = 0.0
    price_mean: float = 0.0
    price_sq: float = 0.0
    last_ts: int = 0
    last_event_id: str = ""

    def recent_items(self) -> tuple[str, ...]:
        """Item ids of the window's events, most recent first (what a history model pools)."""
        return tuple(e.item_id for e in reversed(self.recent))

    def interacted(self) -> frozenset[str]:
        """Items the user bought or has in the window (excluded from top-K)."""
        return frozenset(self.purchased) | {e.item_id for e in self.recent}

    def to_dict(self) -> dict[str, Any]:
        """Return the state's JSON object."""
        return {
            "v": self.version,
            "r": [[e.type, e.item_id, e.ts, e.rating] for e in self.recent],
            "s": pack_keys(self.seen),
            "p": self.purchased,
            "c": self.categories,
            "pw": self.price_weight,
            "pm": self.price_mean,
            "ps": self.price_sq,
            "t": self.last_ts,
            "e": self.last_event_id,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            version=obj["v"],
            recent=tuple(RecentEvent(t, i, ts, r) for t, i, ts, r in obj["r"]),
            seen=unpack_keys(obj["s"]),
            purchased=tuple(obj["p"]),
            categories=dict(obj["c"]),
            price_weight=obj["pw"],
            price_mean=obj["pm"],
            price_sq=obj["ps"],
            last_ts=obj["t"],
            last_event_id=obj["e"],
        )


KEY_BYTES = 6
"""Width of an :func:`event_key` digest."""


def event_key(event_id: str) -> int:
    """Return a 48-bit digest of an event id: small to store, collisions negligible."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=KEY_BYTES).digest()
    return int.from_bytes(digest, "big")


def pack_keys(keys: tuple[int, ...]) -> str:
    """Event-id digests as one base64 string: 8 characters each instead of ~16 as JSON ints."""
    return base64.b64encode(b"".join(k.to_bytes(KEY_BYTES, "big") for k in keys)).decode()


def unpack_keys(packed: str) -> tuple[int, ...]:
    """Inverse of :func:`pack_keys`."""
    raw = base64.b64decode(packed)
    return tuple(
        int.from_bytes(raw[i : i + KEY_BYTES], "big") for i in range(0, len(raw), KEY_BYTES)
    )
