"""A small, documented demand simulator for offline back-tests of price policies.

A logged event stream tells us what users looked at, never what they would
have paid, so a back-test needs a buyer model. This one is deliberately
simple and fully specified:

* **True interest** ``i`` in [0, 1] of a user in an item is read from the
  *whole* log (see `TrueInterest`), so it includes the user's later events,
  which the user state at offer time never contains. A rating ``r`` on a 1-5
  scale gives ``(r - 1) / 4``; an unrated interaction gives its type's value
  (`TYPE_INTEREST`); a pair the user never touched gets ``unseen_interest``.
  For MovieLens, where every event is a rating, this is the user's actual
  rating of the item (usually given after the offer, since items in the
  user's recent window are not recommended), and unrated items count as
  ``unseen_interest`` = 0.25, the interest of a 2-star rating.
* **Attention**: the buyer considers the offer at all with probability
  ``attention_base + attention_slope * i`` (most recommended items are not
  wanted at any price; this sets the conversion scale, not the best price).
* **Willingness to pay** is log-normal around the item's base price and rises
  with interest::

      WTP = base_price * exp(wtp_log_mean + wtp_interest_slope * (i - 0.5) + wtp_sigma * z)

  with ``z ~ N(0, 1)``. The buyer purchases when attentive and the offered
  price is strictly below WTP.

Both random draws (``z`` and the attention uniform) are fixed per
(seed, user, item): a buyer's valuation of an item does not change between
offers, so showing a lower price later can convert a buyer who declined
before, and identical inputs always give identical outcomes, whatever order
offers arrive in. The draws come from a numpy generator seeded with a stable
blake2b digest of (seed, user, item), never Python's salted ``hash``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# What an unrated interaction says about interest; a purchase is the strongest signal.
TYPE_INTEREST: Mapping[str, float] = {
    "view": 0.4,
    "click": 0.5,
    "add_to_cart": 0.75,
    "purchase": 0.9,
    "rating": 0.5,
}
RATING_MIN, RATING_MAX = 1.0, 5.0


class DemandConfig(BaseModel):
    """Parameters of the buyer model (see the module docstring for the formulas)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=0, description="Seed of every buyer draw; same seed, same outcomes.")
    wtp_log_mean: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="log(median WTP / base price) at neutral interest 0.5.",
    )
    wtp_interest_slope: float = Field(
        default=0.6,
        ge=0.0,
        allow_inf_nan=False,
        description="How much log-WTP rises from interest 0 to 1 (0 = WTP ignores interest).",
    )
    wtp_sigma: float = Field(
        default=0.25, ge=0.0, allow_inf_nan=False, description="Spread of log-WTP between buyers."
    )
    attention_base: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="P(considering) at interest 0.",
    )
    attention_slope: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Extra P(considering) at interest 1; base + slope is capped at 1.",
    )
    unseen_interest: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Interest in an item the user never interacted with anywhere in the log.",
    )


class Interaction(Protocol):
    """What the simulator reads from a logged event (``streams.records.inputs.Event`` fits)."""

    @property
    def user_id(self) -> str: ...  # noqa: D102
    @property
    def item_id(self) -> str: ...  # noqa: D102
    @property
    def type(self) -> str: ...  # noqa: D102
    @property
    def rating(self) -> float | None: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class BuyerDraw:
    """The fixed random part of one (user, item) buyer: a normal and a uniform."""

    z: float
    u: float


def buyer_draw(seed: int, user_id: str, item_id: str) -> BuyerDraw:
    """Return the (user, item) buyer's draws, identical in every process and call order."""
    digest = hashlib.blake2b(f"{seed}\0{user_id}\0{item_id}".encode(), digest_size=16).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "big"))
    return BuyerDraw(z=float(rng.standard_normal()), u=float(rng.random()))


def willingness_to_pay(
    base_price: float, interest: float, draw: BuyerDraw, config: DemandConfig
) -> float:
    """Return the buyer's WTP for an item; interest is clamped into [0, 1]."""
    interest = min(max(interest, 0.0), 1.0)
    log_ratio = (
        config.wtp_log_mean
        + config.wtp_interest_slope * (interest - 0.5)
        + config.wtp_sigma * draw.z
    )
    return base_price * math.exp(log_ratio)


def attention(interest: float, config: DemandConfig) -> float:
    """Return the probability that a buyer with this interest considers the offer."""
    interest = min(max(interest, 0.0), 1.0)
    return min(config.attention_base + config.attention_slope * interest, 1.0)


def buys(
    user_id: str,
    item_id: str,
    price: float,
    base_price: float,
    interest: float,
    config: DemandConfig,
) -> bool:
    """Return whether the user buys the item at ``price``: attentive and price < WTP."""
    draw = buyer_draw(config.seed, user_id, item_id)
    if draw.u >= attention(interest, config):
        return False
    return price < willingness_to_pay(base_price, interest, draw, config)


class TrueInterest:
    """Held-out interest of users in items, read from a whole event log.

    Ratings win over unrated interactions, and a later rating of the same pair
    replaces an earlier one; among unrated interactions the strongest type
    counts. Pairs absent from the log get the config's ``unseen_interest``.
    """

    def __init__(self, events: Iterable[Interaction], unseen_interest: float) -> None:
        self.unseen_interest = unseen_interest
        self._rated: dict[tuple[str, str], float] = {}
        self._touched: dict[tuple[str, str], float] = {}
        for event in events:
            key = (event.user_id, event.item_id)
            if event.rating is not None and math.isfinite(event.rating):
                self._rated[key] = rating_interest(event.rating)
            else:
                value = TYPE_INTEREST.get(event.type, unseen_interest)
                self._touched[key] = max(self._touched.get(key, 0.0), value)

    def __call__(self, user_id: str, item_id: str) -> float:
        """Return the user's true interest in the item."""
        key = (user_id, item_id)
        if key in self._rated:
            return self._rated[key]
        return self._touched.get(key, self.unseen_interest)

    def __len__(self) -> int:
        return len(self._rated.keys() | self._touched.keys())


def rating_interest(rating: float) -> float:
    """Map a 1-5 rating onto [0, 1] linearly; out-of-scale ratings are clamped."""
    return min(max((rating - RATING_MIN) / (RATING_MAX - RATING_MIN), 0.0), 1.0)
