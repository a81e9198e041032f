"""Pricing a user's ranked items: the step the scorer and the back-test share.

Pure apart from :class:`PriceMemory`, and free of Kafka, so the benchmarks
can run the production scoring path on a machine without a broker.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

from encoders.records import Item
from pricing.config import PricingConfig
from pricing.experiments import assign_arm
from pricing.policy import Decision, PricedItem, decide, interest_from_scores


class PriceMemory:
    """Last price each (user, item) was shown and when it last changed; bounded LRU.

    Users are partitioned, so only this worker prices a user; after a
    rebalance a moved user's first step bound starts from the base price band.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._prices: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def get(self, user_id: str, item_id: str) -> float | None:
        """Return the last price shown, if remembered."""
        entry = self._prices.get((user_id, item_id))
        return entry[0] if entry else None

    def last_change(self, user_id: str, item_id: str) -> float | None:
        """Return when (epoch s) the shown price last changed, if remembered."""
        entry = self._prices.get((user_id, item_id))
        return entry[1] if entry else None

    def put(self, user_id: str, item_id: str, price: float, now_s: float = 0.0) -> None:
        """Remember a shown price, evicting the least recently shown."""
        key = (user_id, item_id)
        entry = self._prices.get(key)
        changed = now_s if entry is None or entry[0] != price else entry[1]
        self._prices[key] = (price, changed)
        self._prices.move_to_end(key)
        while len(self._prices) > self.capacity:
            self._prices.popitem(last=False)


def price_items(
    user_id: str,
    ranked: Sequence[tuple[str, float]],
    items: Mapping[str, Item],
    previous: PriceMemory,
    shares: Mapping[str, float],
    config: PricingConfig,
    now_s: float = 0.0,
) -> tuple[str, tuple[Decision, ...]]:
    """Assign the user's arm and price every ranked item within its bounds (and cool-down)."""
    arm_name = assign_arm(config.experiment_id, user_id, config.control_share, shares)
    arm = config.arm_by_name(arm_name)
    interests = interest_from_scores([score for _, score in ranked])
    decisions = []
    for (item_id, _), interest in zip(ranked, interests, strict=True):
        item = items.get(item_id)
        if item is None:
            continue
        priced = PricedItem(item_id, item.base_price, item.floor, item.ceiling, item.category)
        decisions.append(
            decide(
                priced,
                interest,
                previous.get(user_id, item_id),
                arm,
                config,
                now_s=now_s,
                last_change_s=previous.last_change(user_id, item_id),
            )
        )
    return arm_name, tuple(decisions)
