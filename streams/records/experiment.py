"""The experiment's records: offers remembered, outcomes, arm counters and traffic shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Self

from streams.records.json_record import JsonRecord, PerItem, TableRecord


class LastOffer(NamedTuple):
    """The latest price a user was offered for one item, as the outcome agent keeps it."""

    price: float
    ts: int
    """When it was offered (epoch ms)."""
    arm: str
    policy_version: str
    base_price: float


@dataclass(frozen=True)
class LastOffers(PerItem[LastOffer]):
    """One user's latest offer per item (``last_offers`` table): item id -> the offer's values."""

    ROW = LastOffer


@dataclass(frozen=True, slots=True)
class Outcome(JsonRecord):
    """A purchase credited to the offer it followed (topic ``price-outcomes``)."""

    user_id: str
    item_id: str
    arm: str
    price: float
    base_price: float
    offer_ts: int
    ts: int
    """When the purchase was made (epoch ms)."""
    revenue: float
    policy_version: str


@dataclass(frozen=True, slots=True)
class ArmDelta(JsonRecord):
    """Counters to add to one arm (topic ``experiment-events``): offers made, or one sale."""

    arm: str
    offers: int = 0
    conversions: int = 0
    revenue: float = 0.0

    @classmethod
    def sale(cls, outcome: Outcome) -> Self:
        """Return the delta of one attributed purchase."""
        return cls(outcome.arm, conversions=1, revenue=outcome.revenue)

    def to_dict(self) -> dict[str, Any]:
        """Return the arm and its non-zero counters (a sale's revenue goes with it)."""
        out: dict[str, Any] = {"arm": self.arm}
        if self.offers:
            out["offers"] = self.offers
        if self.conversions:
            out |= {"conversions": self.conversions, "revenue": self.revenue}
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; an absent counter is zero."""
        return cls(
            arm=str(obj["arm"]),
            offers=int(obj.get("offers", 0)),
            conversions=int(obj.get("conversions", 0)),
            revenue=float(obj.get("revenue", 0.0)),
        )


@dataclass
class ArmStats(TableRecord):
    """Outcome counters of one arm (the ``arm_stats`` table's value); revenue sums the sales."""

    offers: int = 0
    conversions: int = 0
    revenue: float = 0.0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Read the counters back; missing counters are zero."""
        return cls(
            offers=int(obj.get("offers", 0)),
            conversions=int(obj.get("conversions", 0)),
            revenue=float(obj.get("revenue", 0.0)),
        )


@dataclass(frozen=True)
class SharesSnapshot(JsonRecord):
    """The bandit's traffic shares after one update, with the counters they came from.

    Topic ``experiment-shares`` (key ``shares``) and the back-test's ``shares.jsonl``.
    """

    update: int
    """Updates so far; 0 is the configured initial shares."""
    offers: int
    """Offers counted over every arm."""
    ts: int | None
    """When the update ran (epoch ms); None for the back-test's initial shares."""
    shares: Mapping[str, float]
    stats: Mapping[str, ArmStats]

    @classmethod
    def of(
        cls,
        update: int,
        ts: int | None,
        shares: Mapping[str, float],
        stats: Mapping[str, ArmStats],
    ) -> Self:
        """Snapshot ``shares`` and a copy of the (mutable) ``stats`` they were drawn from."""
        return cls(
            update=update,
            offers=sum(s.offers for s in stats.values()),
            ts=ts,
            shares=dict(shares),
            stats={arm: replace(s) for arm, s in stats.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the record's JSON object."""
        return {
            "update": self.update,
            "offers": self.offers,
            "ts": self.ts,
            "shares": dict(self.shares),
            "stats": {arm: s.to_dict() for arm, s in self.stats.items()},
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            update=int(obj["update"]),
            offers=int(obj["offers"]),
            ts=obj["ts"],
            shares=dict(obj["shares"]),
            stats={arm: ArmStats.from_dict(s) for arm, s in obj["stats"].items()},
        )
