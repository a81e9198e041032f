"""The prices a user was last shown: the ``shown_prices`` table's value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

from streams.records.json_record import TableRecord


class ShownPrice(NamedTuple):
    """The last price one user was shown for one item."""

    price: float
    changed_s: float
    """When (epoch s) the shown price last changed, for the cool-down."""


@dataclass(frozen=True)
class ShownPrices(TableRecord):
    """One user's map item -> last shown price, least recently shown first."""

    by_item: Mapping[str, ShownPrice] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return item id -> ``[price, changed_s]``, keeping the recency order."""
        return {item_id: [s.price, s.changed_s] for item_id, s in self.by_item.items()}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls({item_id: ShownPrice(p, c) for item_id, (p, c) in obj.items()})
