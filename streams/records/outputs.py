"""What the scorer publishes per user: recommendations, price updates and their audit records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from streams.records.json_record import JsonRecord
from streams.records.scoring import ScoringRequest


@dataclass(frozen=True, slots=True)
class RankedItem:
    """One entry of a recommendation."""

    item_id: str
    score: float
    rank: int


@dataclass(frozen=True, slots=True)
class Recommendation(JsonRecord):
    """A user's top-K (topic ``recommendations``)."""

    user_id: str
    items: tuple[RankedItem, ...]
    model_version: str
    state_version: int
    trigger_event_id: str
    ts: int
    latency_ms: int

    @classmethod
    def of(
        cls,
        request: ScoringRequest,
        ranked: Sequence[tuple[str, float]],
        model_version: str,
        now_ms: int,
    ) -> Self:
        """Recommend ``ranked`` (best first) to the request's user; scores keep six decimals."""
        return cls(
            user_id=request.user_id,
            items=tuple(
                RankedItem(item_id, round(score, 6), rank)
                for rank, (item_id, score) in enumerate(ranked, start=1)
            ),
            model_version=model_version,
            state_version=request.state.version,
            trigger_event_id=request.trigger_event_id,
            ts=now_ms,
            latency_ms=max(now_ms - request.received_ms, 0),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the record's JSON object."""
        return {
            "user_id": self.user_id,
            "items": [
                {"item_id": entry.item_id, "score": entry.score, "rank": entry.rank}
                for entry in self.items
            ],
            "model_version": self.model_version,
            "state_version": self.state_version,
            "trigger_event_id": self.trigger_event_id,
            "ts": self.ts,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            user_id=obj["user_id"],
            items=tuple(RankedItem(e["item_id"], e["score"], e["rank"]) for e in obj["items"]),
            model_version=obj["model_version"],
            state_version=obj["state_version"],
            trigger_event_id=obj["trigger_event_id"],
            ts=obj["ts"],
            latency_ms=obj["latency_ms"],
        )


@dataclass(frozen=True, slots=True)
class PriceUpdate(JsonRecord):
    """One price shown to one user (topic ``price-updates``; money in the minor unit).

    An audit record carries the same keys first, so its JSON reads as a price update too.
    """

    OPTIONAL = frozenset({"previous_price"})

    user_id: str
    item_id: str
    price: float
    base_price: float
    floor: float
    ceiling: float
    previous_price: float | None
    """The price this user was shown before; absent from the JSON when there was none."""
    arm: str
    policy_version: str
    reason: str
    personalized: bool
    ts: int
    """Epoch ms."""
    interest: float
    bound: str


@dataclass(frozen=True)
class Audit(JsonRecord):
    """Everything that went into one offer, so it can be re-derived alone (topic ``audit``)."""

    update: PriceUpdate
    score: float
    guardrails: Mapping[str, float]
    """The guardrails the price was bounded by (the item category's, else the global ones)."""
    experiment_id: str
    model_version: str
    state_version: int
    trigger_event_id: str

    def to_dict(self) -> dict[str, Any]:
        """Return the price update's JSON object followed by the audit's own fields."""
        return {
            **self.update.to_dict(),
            "score": self.score,
            "guardrails": dict(self.guardrails),
            "experiment_id": self.experiment_id,
            "model_version": self.model_version,
            "state_version": self.state_version,
            "trigger_event_id": self.trigger_event_id,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            update=PriceUpdate.from_dict(obj),
            score=obj["score"],
            guardrails=dict(obj["guardrails"]),
            experiment_id=obj["experiment_id"],
            model_version=obj["model_version"],
            state_version=obj["state_version"],
            trigger_event_id=obj["trigger_event_id"],
        )
