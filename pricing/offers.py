"""Pricing a user's ranked items: the step the scorer and the back-test share.

Pure and free of Kafka, so the benchmarks can run the production scoring
path on a machine without a broker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pricing.config import PricingConfig
from pricing.experiments import assign_arm
from pricing.policy import Decision, PricedItem, decide, interest_from_scores
from streams.records.inputs import Item
from streams.records.shown_prices import ShownPrice


def price_items(
    user_id: str,
    ranked: Sequence[tuple[str, float]],
    items: Mapping[str, Item],
    previous: Mapping[str, ShownPrice],
    shares: Mapping[str, float],
    config: PricingConfig,
    now_s: float = 0.0,
) -> tuple[str, tuple[Decision, ...]]:
    """Assign the user's arm and price every ranked item within its bounds (and cool-down).

    ``previous`` is the user's last shown price per item (see `pricing.shown_prices`).
    """
    arm_name = assign_arm(config.experiment_id, user_id, config.control_share, shares)
    arm = config.arm_by_name(arm_name)
    interests = interest_from_scores([score for _, score in ranked])
    decisions = []
    for (item_id, _), interest in zip(ranked, interests, strict=True):
        item = items.get(item_id)
        if item is None:
            continue
        priced = PricedItem(item_id, item.base_price, item.floor, item.ceiling, item.category)
        shown = previous.get(item_id)
        decisions.append(
            decide(
                priced,
                interest,
                shown.price if shown is not None else None,
                arm,
                config,
                now_s=now_s,
                last_change_s=shown.changed_s if shown is not None else None,
            )
        )
    return arm_name, tuple(decisions)
