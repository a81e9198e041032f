"""Per-user rolling behaviour state and its natural-language summary.

The stream keeps one :class:`UserState` per user in its RocksDB table, and
offline training replays events through the very same :func:`apply_event` and
:func:`render_summary`, so training and serving see identical text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from streams.records.inputs import Event, Item
from streams.records.user_state import RecentEvent, UserState, event_key

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
    # costs as much again on a path run once per event (bench/RESULTS.md,
    # "`apply_event` without `dataclasses.replace`").
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


class ScoringInputs(NamedTuple):
    """What the ranker takes per user, in the order `Ranker.recommend` takes it."""

    summaries: list[str]
    recent: list[tuple[str, ...]]
    """Each user's recent item ids, most recent first."""
    exclude: list[frozenset[str]]
    """Items each user bought or has in the window: never recommended."""


def scoring_inputs(
    states: Iterable[UserState], title_of: Callable[[str], str | None], config: StateConfig
) -> ScoringInputs:
    """Prepare users' states for scoring: the stream, the back-test and the checks share it."""
    states = list(states)
    return ScoringInputs(
        [render_summary(state, title_of, config) for state in states],
        [state.recent_items() for state in states],
        [state.interacted() for state in states],
    )
