"""What the scorer publishes per user: the recommendation record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.records.scoring import ScoringRequest


def recommendation_record(
    request: ScoringRequest,
    ranked: Sequence[tuple[str, float]],
    model_version: str,
    now_ms: int,
) -> dict[str, Any]:
    """Return the recommendation record (docs/architecture.md, "Records")."""
    return {
        "user_id": request.user_id,
        "items": [
            {"item_id": item_id, "score": round(score, 6), "rank": rank}
            for rank, (item_id, score) in enumerate(ranked, start=1)
        ],
        "model_version": model_version,
        "state_version": request.state.version,
        "trigger_event_id": request.trigger_event_id,
        "ts": now_ms,
        "latency_ms": max(now_ms - request.received_ms, 0),
    }
