"""The prices a user was last shown: what the max-step and cool-down bounds start from.

A user's map holds, per item, the last price shown and when it last changed,
least recently shown first, and at most a fixed number of items. The stream
keeps each user's map in the ``shown_prices`` table (the record
`streams.records.shown_prices.ShownPrices`), co-partitioned with the scoring
requests, so it survives restarts and moves with the user; :class:`PriceMemory`
keeps every user's map in RAM for the back-test and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams.records.shown_prices import ShownPrice

DEFAULT_PER_USER = 50
"""Items per user: five scorings of ten items, as many as the outcome agent keeps offers."""


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
