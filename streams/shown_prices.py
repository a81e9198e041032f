"""The prices a user was last shown: what the max-step and cool-down bounds start from.

A user's map holds, per item, the last price shown and when it last changed,
least recently shown first, and at most a fixed number of items. The stream
keeps each user's map in the ``shown_prices`` table (:class:`UserPrices`,
with the state version of the last pricing and what it changed, so a
re-delivered request is priced from where its first attempt started),
co-partitioned with the scoring requests, so it survives restarts and moves
with the user; :class:`PriceMemory` keeps every user's map in RAM for the
back-test and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import orjson

DEFAULT_PER_USER = 50
"""Items per user: five scorings of ten items, as many as the outcome agent keeps offers."""


class ShownPrice(NamedTuple):
    """The last price one user was shown for one item."""

    price: float
    changed_s: float
    """When (epoch s) the shown price last changed, for the cool-down."""


def remember_shown(
    shown: Mapping[str, ShownPrice],
    prices: Iterable[tuple[str, float]],
    now_s: float,
    per_user: int,
) -> dict[str, ShownPrice]:
    """Return a user's map after showing ``(item_id, price)`` pairs at ``now_s`` (pure).

    An item's change time moves only when its price does; shown items become
    the most recent. The least recently shown beyond ``per_user`` are dropped
    after all of ``prices`` are in, so the items of one showing never push
    each other out.
    """
    out = dict(shown)
    for item_id, price in prices:
        before = out.pop(item_id, None)
        changed = now_s if before is None or before.price != price else before.changed_s
        out[item_id] = ShownPrice(price, changed)
    if len(out) > per_user:
        out = dict(list(out.items())[len(out) - per_user :])
    return out


class UserPrices(NamedTuple):
    """What the ``shown_prices`` table keeps per user: the map and its last pricing."""

    shown: dict[str, ShownPrice]
    """The map after the user's last pricing."""
    version: int
    """The user-state version of that pricing (0: never priced)."""
    undo: dict[str, ShownPrice | None]
    """The entries that pricing changed, as they were before it (None: absent)."""


NEVER_PRICED = UserPrices({}, 0, {})


def start_of_pricing(user: UserPrices, version: int) -> dict[str, ShownPrice] | None:
    """Return the map a pricing of the user's state ``version`` starts from (pure).

    A newer state starts from the last map. The same state again is a
    re-delivery after a crash that may have come between storing its prices
    and publishing them, so it starts where its first pricing did: its prices
    are then bounded by what the user was really shown. An older state was
    priced in a batch that finished, outputs published, before the last one
    started: None, it is not priced again.
    """
    if version > user.version:
        return dict(user.shown)
    if version < user.version:
        return None
    # Evicted entries were the least recently shown: they go back to the front.
    evicted = {k: v for k, v in user.undo.items() if v is not None and k not in user.shown}
    before = {**evicted, **user.shown}
    for item_id, entry in user.undo.items():
        if entry is None:
            before.pop(item_id, None)
        else:
            before[item_id] = entry
    return before


def after_pricing(
    start: Mapping[str, ShownPrice],
    prices: Iterable[tuple[str, float]],
    now_s: float,
    per_user: int,
    version: int,
) -> UserPrices:
    """Return what to store after pricing state ``version`` from ``start`` (pure)."""
    shown = remember_shown(start, prices, now_s, per_user)
    keys = [*start, *(k for k in shown if k not in start)]
    undo = {k: start.get(k) for k in keys if start.get(k) != shown.get(k)}
    return UserPrices(shown, version, undo)


def _entry(entry: ShownPrice | None) -> list[float] | None:
    return None if entry is None else [entry.price, entry.changed_s]


def user_prices_to_bytes(user: UserPrices) -> bytes:
    """Serialize for the table, keeping the map's recency order."""
    return orjson.dumps(
        {
            "version": user.version,
            "shown": {item_id: _entry(entry) for item_id, entry in user.shown.items()},
            "undo": {item_id: _entry(entry) for item_id, entry in user.undo.items()},
        }
    )


def user_prices_from_bytes(raw: bytes | None) -> UserPrices:
    """Inverse of :func:`user_prices_to_bytes`; None is a user never priced."""
    if raw is None:
        return NEVER_PRICED
    obj = orjson.loads(raw)
    return UserPrices(
        {item_id: ShownPrice(*entry) for item_id, entry in obj["shown"].items()},
        int(obj["version"]),
        {
            item_id: None if entry is None else ShownPrice(*entry)
            for item_id, entry in obj["undo"].items()
        },
    )


class PriceMemory:
    """Every user's map in RAM, bounded per user as the stream's table is."""

    def __init__(self, per_user: int = DEFAULT_PER_USER) -> None:
        if per_user < 1:
            raise ValueError(f"per_user must be >= 1, got {per_user}")
        self.per_user = per_user
        self._users: dict[str, dict[str, ShownPrice]] = {}

    def of(self, user_id: str) -> Mapping[str, ShownPrice]:
        """Return the user's map (empty for a user never priced)."""
        return self._users.get(user_id, {})

    def remember(self, user_id: str, prices: Iterable[tuple[str, float]], now_s: float) -> None:
        """Record prices just shown to the user (see :func:`remember_shown`)."""
        self._users[user_id] = remember_shown(self.of(user_id), prices, now_s, self.per_user)
