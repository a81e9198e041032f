"""Ingest flow: ``events`` -> validate -> ``user_state`` table -> scoring requests.

Events are taken in batches (``take_events(max_batch, within=max_wait)``)
and grouped by user: each user's state is read once, every event of the
batch is applied in order, and the state is written and sent for scoring
once. That makes the table, its changelog and the scoring topic cost one
write per user per batch instead of one per event.

Invalid input goes to the DLQ with its original bytes and the reason; a
duplicate ``event_id`` leaves the state unchanged (Faust may re-deliver up
to one commit interval after a rebalance or crash). Faust acks a batch's
events only after `ingest_batch` has returned, which is after the broker
has acknowledged the batch's scoring requests and purchases (at-least-once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import faust

from encoders.behaviour import StateConfig, apply_with_catalog
from streams.records.inputs import Event, InvalidRecord, Item
from streams.records.scoring import ScoringRequest
from streams.records.user_state import UserState
from streams.settings import Settings
from streams.topics import AppTopics
from streams.worker.log_format import partition_extra
from streams.worker.runtime import Runtime
from streams.worker.sink import Received, Record, Sink, Table
from streams.worker.wiring import EventTable, Wiring

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Received)


def check_key(key: bytes | None, event: Event) -> None:
    """Reject events whose Kafka key is not their user: their state would live elsewhere."""
    if key is not None and key != event.user_id.encode("utf-8"):
        raise InvalidRecord(f"message key {key!r} does not match user_id {event.user_id!r}")


@dataclass(frozen=True)
class GroupResult:
    """What one user's events of a batch did to their state."""

    state: UserState
    changed: bool
    trigger: Event | None
    """The event the scoring request names: the last one applied, or a re-delivered
    latest event (the crash may have come between the table write and the send);
    None when every event was an old duplicate or failed."""
    purchases: tuple[int, ...]
    """Positions (in the group) of purchases that changed the state."""
    failures: tuple[tuple[int, str], ...]
    """(position, reason) of events that could not be applied."""


def apply_group(
    state: UserState, events: Sequence[Event], items: Mapping[str, Item], config: StateConfig
) -> GroupResult:
    """Apply one user's events in order; pure, so it is the same offline and in the stream."""
    start = state
    trigger: Event | None = None
    purchases: list[int] = []
    failures: list[tuple[int, str]] = []
    for position, event in enumerate(events):
        try:
            new = apply_with_catalog(state, event, items, config)
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the others
            failures.append((position, f"internal error: {exc!r}"))
            continue
        if new is not state:
            state, trigger = new, event
            if event.type == "purchase":
                purchases.append(position)
        elif state.last_event_id == event.event_id:
            trigger = event
    return GroupResult(state, state is not start, trigger, tuple(purchases), tuple(failures))


async def ingest_batch(
    batch: Sequence[R],
    user_state: Table[R],
    sink: Sink,
    *,
    items: Mapping[str, Item],
    config: StateConfig,
    topics: AppTopics,
    received_ms: int,
) -> int:
    """Take one batch of raw events: the ingest agent's loop body; return the events applied.

    Invalid records and events that fail to apply are dead-lettered with
    their original bytes; every user whose state changed (or whose latest
    event came again) gets one scoring request, and the purchases that
    changed a user's state go to ``purchases`` as one JSON array of their
    original bytes per user. Returns once the broker has them all, with the
    number of valid events applied (duplicates included).
    """
    by_user: dict[str, list[tuple[R, Event]]] = {}
    for event in batch:
        try:
            parsed = Event.from_json(event.value)
            check_key(event.message.key, parsed)
        except InvalidRecord as exc:
            await sink.dead_letter(event, str(exc))
            continue
        by_user.setdefault(parsed.user_id, []).append((event, parsed))
    records: list[Record] = []
    applied = 0
    for user_id, group in by_user.items():
        last = group[-1][0]
        before = UserState.from_stored(user_state.get(user_id, last))
        result = apply_group(before, [p for _, p in group], items, config)
        applied += len(group) - len(result.failures)
        if result.changed:
            user_state.set(user_id, result.state.to_json(), last)
        for position, reason in result.failures:
            received, failed = group[position]
            where = partition_extra(received.message.topic, received.message.partition)
            log.error("could not apply event %s: %s", failed.event_id, reason, extra=where)
            await sink.dead_letter(received, reason)
        key = user_id.encode()
        if result.purchases:  # for attribution to the offers shown
            bought = b",".join(bytes(group[i][0].value) for i in result.purchases)
            records.append((topics.purchases.name, key, b"[" + bought + b"]"))
        if result.trigger is not None:
            request = ScoringRequest(
                user_id,
                result.state,
                result.trigger.event_id,
                result.trigger.ts,
                received_ms,
            )
            records.append((topics.scoring.name, key, request.to_json()))
    await sink.send(records)
    return applied


def register(
    app: faust.App, wiring: Wiring, runtime: Runtime, settings: Settings
) -> faust.types.AgentT:
    """Attach the ingest agent to ``app``."""
    metrics = wiring.metrics
    user_state = EventTable(app, wiring.tables.user_state, metrics.table_writer("user_state"))
    catalog, batching = runtime.catalog, settings.ingest

    async def ingest(stream: faust.StreamT) -> None:
        await catalog.ready.wait()
        # ``take_events`` exists on Faust's Stream but not on its StreamT interface.
        batches = cast(faust.Stream, stream).take_events(
            batching.max_batch, within=batching.max_wait_s
        )
        async for batch in batches:
            applied = await ingest_batch(
                batch,
                user_state,
                wiring.sink,
                items=catalog.items,
                config=settings.state,
                topics=wiring.topics,
                received_ms=int(time.time() * 1000),
            )
            metrics.events_ingested.inc(applied)

    return app.agent(wiring.sources.events, name="ingest")(ingest)
