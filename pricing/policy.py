"""The versioned, pure price policy: interest in, bounded and explained price out.

A non-control arm aims at ``base * (1 + strength * max_deviation * (2 * interest - 1))``:
interest 0.5 keeps the base price, 1.0 raises it, 0.0 discounts it. Control aims at
the base price. The aim then meets the guardrails in this fixed order:

1. item floor / ceiling;
2. ``base * (1 ± max_deviation)``, intersected with (1). (1) and (2) form the
   *hard band*; it always contains the base price and it always wins;
3. ``previous * (1 ± max_step)``, intersected with the hard band. If the two do
   not meet (the previous price lies far outside the band, e.g. after a base
   price change), the step bound yields: the price is the hard-band edge nearest
   the step window and ``bound`` is ``"step"`` with a reason saying it was relaxed;
4. cool-down: while fewer than ``cooldown_s`` seconds have passed since the last
   change of this (user, item) price, the previous price is kept, clamped into
   the interval from (3). An unknown elapsed time (NaN) holds the price too;
5. rounding to ``minor_unit`` that never leaves the interval from (3) (see
   `pricing.rounding.round_within`); a kept previous price is not re-rounded.

Inputs are sanitised, never trusted: a NaN interest is neutral (0.5), other
interests are clamped into [0, 1] (so +inf is 1.0, -inf is 0.0); a previous price
that is None, NaN, infinite or <= 0 is ignored (no step bound, no cool-down).
The result is finite, > 0, inside the decision's ``floor``/``ceiling`` (the final
interval after every guardrail), monotone in interest within an arm, and a pure
function of its arguments. Protected attributes are not parameters here.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pricing.config import CONTROL_ARM, ArmConfig, PricingConfig
from pricing.rounding import round_to_unit, round_within
from streams.records.outputs import PriceUpdate

Bound = Literal["none", "floor", "ceiling", "deviation", "step", "cooldown", "control"]

NEUTRAL_INTEREST = 0.5

# Keep the band strictly positive and finite even for absurd (but finite) base prices.
_MIN_PRICE = math.ulp(0.0)
_MAX_PRICE = sys.float_info.max

_CLAMP_NOTES: dict[str, str] = {
    "floor": "capped by item floor",
    "ceiling": "capped by item ceiling",
    "deviation": "capped by max deviation",
    "step": "capped by max step",
}


@dataclass(frozen=True, slots=True)
class PricedItem:
    """An item's list price and optional hard bounds, as the catalogue gives them."""

    item_id: str
    base_price: float
    floor: float | None = None
    ceiling: float | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        """Reject catalogue rows whose bounds do not contain a positive base price."""
        if not (math.isfinite(self.base_price) and self.base_price > 0):
            raise ValueError(f"{self.item_id}: base_price must be finite and > 0")
        if self.floor is not None and not (
            math.isfinite(self.floor) and 0 <= self.floor <= self.base_price
        ):
            raise ValueError(f"{self.item_id}: need 0 <= floor <= base_price")
        if self.ceiling is not None and not (
            math.isfinite(self.ceiling) and self.ceiling >= self.base_price
        ):
            raise ValueError(f"{self.item_id}: need base_price <= ceiling < inf")


@dataclass(frozen=True, slots=True)
class Decision:
    """A price with everything needed to audit it on its own."""

    item_id: str
    price: float
    base_price: float
    floor: float
    ceiling: float
    previous_price: float | None
    arm: str
    policy_version: str
    interest: float
    bound: Bound
    reason: str
    minor_unit: float

    @property
    def personalized(self) -> bool:
        """Whether the price depends on this user's interest: every arm but control."""
        return self.arm != CONTROL_ARM

    def to_record(self, user_id: str, ts: int) -> PriceUpdate:
        """Return the price-update record (``ts`` in epoch ms), money in the minor unit.

        Every amount is rounded half up to the minor unit by one monotone map,
        so the published floor <= price <= ceiling still holds, also for a
        price that `round_within` left off the grid (no multiple within its
        bounds): it is published at its nearest multiple, as its bounds are.
        """
        unit = self.minor_unit
        previous = self.previous_price
        return PriceUpdate(
            user_id=user_id,
            item_id=self.item_id,
            price=round_to_unit(self.price, unit),
            base_price=round_to_unit(self.base_price, unit),
            floor=round_to_unit(self.floor, unit),
            ceiling=round_to_unit(self.ceiling, unit),
            previous_price=None if previous is None else round_to_unit(previous, unit),
            arm=self.arm,
            policy_version=self.policy_version,
            reason=self.reason,
            personalized=self.personalized,
            ts=ts,
            interest=self.interest,
            bound=self.bound,
        )


def interest_from_scores(scores: Sequence[float]) -> list[float]:
    """Turn one user's candidate scores into calibrated interests in [0, 1].

    Interest is the score's rank percentile among the candidates: the best is
    1.0, the worst 0.0, tied scores share their mid-rank, and a single candidate
    gets 0.5. +inf and -inf are ordinary (extreme) scores. A NaN score carries no
    information, so it ranks below every other score and gets interest 0.0.
    """
    values = [float(s) for s in scores]
    n = len(values)
    if n == 1:
        return [0.0 if math.isnan(values[0]) else NEUTRAL_INTEREST]
    # NaN sorts first; ties compare equal, so each group of ties is contiguous.
    keys = [(0, 0.0) if math.isnan(v) else (1, v) for v in values]
    order = sorted(range(n), key=keys.__getitem__)
    interests = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and keys[order[end + 1]] == keys[order[start]]:
            end += 1
        is_nan = keys[order[start]][0] == 0
        value = 0.0 if is_nan else (start + end) / 2 / (n - 1)
        for position in range(start, end + 1):
            interests[order[position]] = value
        start = end + 1
    return interests


def _clean_interest(interest: float) -> float:
    """Return a usable interest: NaN becomes neutral, anything else is clamped to [0, 1]."""
    if math.isnan(interest):
        return NEUTRAL_INTEREST
    return min(max(float(interest), 0.0), 1.0)


def _clean_previous(previous_price: float | None) -> float | None:
    """Return the previous price if it is a real price, else None (it is then ignored)."""
    if previous_price is None or not math.isfinite(previous_price) or previous_price <= 0:
        return None
    return float(previous_price)


def _describe(
    arm: ArmConfig | None, interest: float, price: float, base: float, bound: Bound, relaxed: bool
) -> str:
    """Explain a decision in one sentence for the audit log."""
    if bound == "cooldown":
        return "cooldown: kept the previous price"
    if arm is None:
        head = "control arm shows the base price"
    else:
        change = price / base - 1
        if change:
            verb = "raised" if change > 0 else "lowered"
            effect = f"{verb} price {abs(change):.1%} vs base"
        else:
            effect = "kept the base price"
        head = f"interest {interest:.2f} in arm {arm.name} {effect}"
    if relaxed:
        return f"{head} (step relaxed: previous price outside the band, moved to its nearest edge)"
    note = _CLAMP_NOTES.get(bound)
    return f"{head} ({note})" if note else head


def decide(
    item: PricedItem,
    interest: float,
    previous_price: float | None,
    arm: ArmConfig | None,
    config: PricingConfig,
    *,
    now_s: float = 0.0,
    last_change_s: float | None = None,
) -> Decision:
    """Price one item for one user; ``arm=None`` is control. See the module docstring."""
    guard = config.guardrails_for(item.category)
    interest = _clean_interest(interest)
    previous = _clean_previous(previous_price)
    base = item.base_price

    # (1) + (2): the hard band. On a tie the earlier rule in the order names the bound.
    low: float = max(base * (1 - guard.max_deviation), _MIN_PRICE)
    low_src: Bound = "deviation"
    if item.floor is not None and item.floor >= low:
        low, low_src = item.floor, "floor"
    high: float = min(base * (1 + guard.max_deviation), _MAX_PRICE)
    high_src: Bound = "deviation"
    if item.ceiling is not None and item.ceiling <= high:
        high, high_src = item.ceiling, "ceiling"

    # (3) the step window; the hard band wins when the two do not meet.
    relaxed = False
    if previous is not None:
        step_low = previous * (1 - guard.max_step)
        step_high = previous * (1 + guard.max_step)
        if step_low > high:
            low, relaxed = high, True
        elif step_high < low:
            high, relaxed = low, True
        else:
            if step_low > low:
                low, low_src = step_low, "step"
            if step_high < high:
                high, high_src = step_high, "step"

    # (4) cool-down holds the previous price unless enough time is known to have passed.
    held = (
        previous
        if last_change_s is not None
        and guard.cooldown_s > 0
        and not now_s - last_change_s >= guard.cooldown_s
        else None
    )
    unclamped: Bound
    if held is not None:
        aim, unclamped = held, "cooldown"
    elif arm is None:
        aim, unclamped = base, "control"
    else:
        aim = base * (1 + arm.strength * guard.max_deviation * (2 * interest - 1))
        unclamped = "none"

    bound: Bound
    if aim < low:
        price, bound = low, low_src
    elif aim > high:
        price, bound = high, high_src
    else:
        price, bound = aim, unclamped
    if relaxed:  # the interval is a single point, named after the yielding step bound
        bound = "step"

    # (5) rounding; a held price is the one the user already sees, so it stays as it is.
    if bound != "cooldown":
        price = round_within(price, low, high, guard.minor_unit)

    return Decision(
        item_id=item.item_id,
        price=price,
        base_price=base,
        floor=low,
        ceiling=high,
        previous_price=previous,
        arm=CONTROL_ARM if arm is None else arm.name,
        policy_version=config.policy_version,
        interest=interest,
        bound=bound,
        reason=_describe(arm, interest, price, base, bound, relaxed),
        minor_unit=guard.minor_unit,
    )
