"""A user's rolling behaviour state: the `user_state` table's value, carried by scoring requests."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """The part of an event the rolling window keeps."""

    type: str
    item_id: str
    ts: int
    rating: float | None = None


@dataclass(frozen=True)
class UserState:
    """Rolling state of one user; immutable, updated by :func:`apply_event`."""

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


def state_to_obj(state: UserState) -> dict[str, Any]:
    """JSON object of a state; short keys keep users small, floats round-trip exactly."""
    return {
        "v": state.version,
        "r": [[e.type, e.item_id, e.ts, e.rating] for e in state.recent],
        "s": pack_keys(state.seen),
        "p": state.purchased,
        "c": state.categories,
        "pw": state.price_weight,
        "pm": state.price_mean,
        "ps": state.price_sq,
        "t": state.last_ts,
        "e": state.last_event_id,
    }


def state_to_bytes(state: UserState) -> bytes:
    """Serialize for the RocksDB table."""
    return orjson.dumps(state_to_obj(state))


def state_from_bytes(raw: bytes | None) -> UserState:
    """Inverse of :func:`state_to_bytes`; ``None`` is a new user."""
    if raw is None:
        return UserState()
    return state_from_obj(orjson.loads(raw))


def state_from_obj(obj: dict[str, Any]) -> UserState:
    """Inverse of :func:`state_to_obj`."""
    return UserState(
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
