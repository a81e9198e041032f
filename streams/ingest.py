"""Ingest flow: ``events`` -> validate -> ``user_state`` table -> scoring requests.

Invalid input goes to the DLQ with its original bytes and the reason; a
duplicate ``event_id`` leaves the state unchanged (Faust may re-deliver up
to one commit interval after a rebalance or crash).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from encoders.behaviour import (
    StateConfig,
    UserState,
    apply_with_catalog,
    state_from_bytes,
    state_to_bytes,
)
from encoders.records import Event, InvalidRecord, parse_event
from streams.batching import ScoringRequest
from streams.catalog import Catalog

log = logging.getLogger(__name__)


def check_key(key: bytes | None, event: Event) -> None:
    """Reject events whose Kafka key is not their user: their state would live elsewhere."""
    if key is not None and key != event.user_id.encode("utf-8"):
        raise InvalidRecord(f"message key {key!r} does not match user_id {event.user_id!r}")


def advance(state: UserState, event: Event, catalog: Catalog, config: StateConfig) -> UserState:
    """Apply one event with the catalogue's view of its item."""
    return apply_with_catalog(state, event, catalog.items, config)


def register(
    app: faust.App,
    events: faust.TopicT,
    scoring: faust.TopicT,
    purchases: faust.TopicT,
    user_state: Any,
    catalog: Catalog,
    config: StateConfig,
    dead_letter: Any,
) -> faust.types.AgentT:
    """Attach the ingest agent to ``app``."""

    async def ingest(stream: faust.StreamT) -> None:
        await catalog.ready.wait()
        async for event in stream.events():
            message = event.message
            raw = event.value
            try:
                parsed = parse_event(raw)
                check_key(message.key, parsed)
            except InvalidRecord as exc:
                await dead_letter(message.topic, message.partition, message.offset, raw, str(exc))
                continue
            try:
                state = state_from_bytes(user_state.get(parsed.user_id))
                new = advance(state, parsed, catalog, config)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the worker
                log.exception("could not apply event %s", parsed.event_id)
                reason = f"internal error: {exc!r}"
                await dead_letter(message.topic, message.partition, message.offset, raw, reason)
                continue
            if new is state and state.last_event_id != parsed.event_id:
                continue
            if new is not state:
                user_state[parsed.user_id] = state_to_bytes(new)
                if parsed.type == "purchase":  # for attribution to the offer shown
                    await purchases.send(key=message.key, value=raw)
            # A re-delivered latest event re-sends its request: the crash may
            # have come between the table write and this send.
            request = ScoringRequest(
                parsed.user_id, new, parsed.event_id, parsed.ts, int(time.time() * 1000)
            )
            await scoring.send(key=parsed.user_id.encode(), value=request.to_bytes())

    return app.agent(events, name="ingest")(ingest)
