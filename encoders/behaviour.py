"""Per-user rolling behaviour state and its natural-language summary.

The stream keeps one :class:`UserState` per user in its RocksDB table, and
offline training replays events through the very same :func:`apply_event` and
:func:`render_summary`, so training and serving see identical text.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from encoders.records import Event, Item

# How much each interaction says about taste; purchases count most.
TYPE_WEIGHTS: Mapping[str, float] = {
    "view": 0.5,
    "click": 1.0,
    "add_to_cart": 2.0,
    "rating": 1.5,
    "purchase": 3.0,
}
# Bounds the state's size: the weakest category statistics are dropped first.
MAX_CATEGORIES = 8
TYPE_VERBS: Mapping[str, str] = {
    "purchase": "purchased",
    "add_to_cart": "added to cart",
    "rating": "rated",
    "click": "clicked",
    "view": "viewed",
}


class StateConfig(BaseModel):
    """Shape of the rolling state and its summary."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(20, ge=1, le=200, description="Recent events kept per user.")
    dedupe_window: int = Field(
        64, ge=1, le=1024, description="Recent event ids remembered to drop duplicates."
    )
    max_purchased: int = Field(
        256, ge=0, le=10_000, description="Purchased item ids kept to exclude from top-K."
    )
    half_life_hours: float = Field(
        24.0 * 14, gt=0, description="Half-life of category and price statistics."
    )
    summary_items: int = Field(
        8, ge=1, le=50, description="Recent items named in the summary text."
    )
    summary_categories: int = Field(3, ge=1, le=10, description="Categories named in the summary.")


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


def _decay_factor(dt_ms: int, half_life_hours: float) -> float:
    """Return the share of a weight left after ``dt_ms`` (one power per event)."""
    if dt_ms <= 0:
        return 1.0
    return 0.5 ** (dt_ms / (half_life_hours * 3_600_000.0))


def apply_event(
    state: UserState,
    event: Event,
    category: str | None,
    item_price: float | None,
    config: StateConfig,
) -> UserState:
    """Return the state after ``event``; a duplicate ``event_id`` returns ``state`` unchanged.

    ``category`` and ``item_price`` come from the catalogue (None when the item
    is unknown); the event's own price wins over the catalogue's.
    """
    key = event_key(event.event_id)
    if key in state.seen:
        return state
    weight = TYPE_WEIGHTS[event.type]
    if event.type == "rating" and event.rating is not None:
        # A 1-star rating is evidence against the item's category.
        weight *= (event.rating - 2.5) / 2.5
    dt = event.ts - state.last_ts if state.last_ts else 0
    decay = _decay_factor(dt, config.half_life_hours)
    categories = {
        name: w for name, value in state.categories.items() if abs(w := value * decay) > 1e-3
    }
    if category:
        categories[category] = categories.get(category, 0.0) + weight
    if len(categories) > MAX_CATEGORIES:
        ranked = sorted(categories.items(), key=lambda kv: -abs(kv[1]))
        categories = dict(ranked[:MAX_CATEGORIES])

    price_weight = state.price_weight * decay
    price_mean, price_sq = state.price_mean, state.price_sq
    price = event.price if event.price is not None else item_price
    if price is not None and math.isfinite(price) and weight > 0:
        total = price_weight + weight
        price_mean = (price_mean * price_weight + price * weight) / total
        price_sq = (price_sq * price_weight + price * price * weight) / total
        price_weight = total

    purchased = state.purchased
    if event.type == "purchase" and config.max_purchased:
        purchased = tuple(p for p in purchased if p != event.item_id) + (event.item_id,)
        purchased = purchased[-config.max_purchased :]

    recent = (state.recent + (RecentEvent(event.type, event.item_id, event.ts, event.rating),))[
        -config.window :
    ]
    # Every field is new, so build the state directly: dataclasses.replace
    # costs as much again on a path run once per event.
    return UserState(
        version=state.version + 1,
        recent=recent,
        seen=(state.seen + (key,))[-config.dedupe_window :],
        purchased=purchased,
        categories=categories,
        price_weight=price_weight,
        price_mean=price_mean,
        price_sq=price_sq,
        last_ts=max(state.last_ts, event.ts),
        last_event_id=event.event_id,
    )


def apply_with_catalog(
    state: UserState, event: Event, items: Mapping[str, Item], config: StateConfig
) -> UserState:
    """Apply one event with the catalogue's category and price of its item (None if unknown)."""
    item = items.get(event.item_id)
    return apply_event(
        state, event, item.category if item else None, item.base_price if item else None, config
    )


def render_summary(
    state: UserState, title_of: Callable[[str], str | None], config: StateConfig
) -> str:
    """Render the user's state as short text for the user tower.

    Most recent first, grouped by what the user did; unknown items are named
    by id so that nothing the user did is invisible to the model.
    """
    if not state.recent:
        return "New user with no recent activity."
    groups: dict[str, list[str]] = {}
    for ev in reversed(state.recent[-config.summary_items :]):
        name = title_of(ev.item_id) or f"item {ev.item_id}"
        if ev.type == "rating" and ev.rating is not None:
            name = f"{name} ({ev.rating:g}/5)"
        groups.setdefault(ev.type, []).append(name)
    order = ("purchase", "add_to_cart", "rating", "click", "view")
    parts = [f"{TYPE_VERBS[t]}: {', '.join(groups[t])}" for t in order if t in groups]
    parts[0] = "Recently " + parts[0]
    liked = [c for c, w in sorted(state.categories.items(), key=lambda kv: -kv[1]) if w > 0]
    if liked:
        parts.append("favourite categories: " + ", ".join(liked[: config.summary_categories]))
    if state.price_weight > 0:
        std = math.sqrt(max(state.price_sq - state.price_mean**2, 0.0))
        low, high = max(state.price_mean - std, 0.0), state.price_mean + std
        parts.append(f"usual price range {low:.2f}-{high:.2f}")
    return "; ".join(parts) + "."


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
