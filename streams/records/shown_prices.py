"""The prices a user was last shown: the ``shown_prices`` table's value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from streams.records.json_record import PerItem


class ShownPrice(NamedTuple):
    """The last price one user was shown for one item."""

    price: float
    changed_s: float
    """When (epoch s) the shown price last changed, for the cool-down."""


@dataclass(frozen=True)
class ShownPrices(PerItem[ShownPrice]):
    """One user's map item -> ``[price, changed_s]``, least recently shown first."""

    ROW = ShownPrice
