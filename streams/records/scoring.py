"""Scoring requests and their micro-batch de-duplication (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from streams.records.json_record import JsonRecord
from streams.records.user_state import UserState


@dataclass(frozen=True)
class ScoringRequest(JsonRecord):
    """A user whose state changed: the state travels with the request.

    Carrying the state spares the scorer a table read, which a batch agent
    cannot do safely: inside a batch Faust's store resolves keys against the
    partition of the batch's last event. A state's size: bench/RESULTS.md,
    "Summary".
    """

    user_id: str
    state: UserState
    trigger_event_id: str
    event_ts: int
    received_ms: int
    """Wall-clock time the ingest agent took the event: latency counts from here,
    since a replayed event's own ``ts`` lies in the past."""

    def to_dict(self) -> dict[str, Any]:
        """Return the scoring topic's JSON object."""
        return {
            "user_id": self.user_id,
            "trigger_event_id": self.trigger_event_id,
            "event_ts": self.event_ts,
            "received_ms": self.received_ms,
            "state": self.state.to_dict(),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            user_id=obj["user_id"],
            state=UserState.from_dict(obj["state"]),
            trigger_event_id=obj["trigger_event_id"],
            event_ts=obj["event_ts"],
            received_ms=obj["received_ms"],
        )


def latest_per_user(requests: Iterable[ScoringRequest]) -> list[ScoringRequest]:
    """Keep each user's newest state (highest version), in first-seen user order.

    A user who clicked five times within one batch is scored once, on the
    state after the fifth click.
    """
    best: dict[str, ScoringRequest] = {}
    for request in requests:
        current = best.get(request.user_id)
        if current is None or request.state.version >= current.state.version:
            best[request.user_id] = request
    return list(best.values())
