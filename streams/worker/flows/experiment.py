"""Experiment flow: offers and purchases -> attribution -> arm stats -> bandit shares.

* The outcome agent reads ``offers`` (the scorer's price updates, an array
  per user per scoring batch) and ``purchases`` (valid purchase events
  forwarded by the ingest agent, an array per user per ingest batch); both
  are keyed by user, so co-partitioned with its ``last_offers`` table. It
  attributes each purchase to the latest offer of that (user, item) within
  the attribution window and publishes the outcome to ``price-outcomes``.
* Offer counts (from the scorer, per batch) and conversions go to the
  single-partition ``experiment-events`` topic, so one worker owns every arm's
  counters (``arm_stats`` table) and sees the whole experiment.
* That worker re-runs Thompson sampling every ``bandit_interval_s`` and
  publishes shares and stats to ``experiment-shares`` (kept whole, so the
  share history stays visible), which every scorer follows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping, Sequence
from typing import TypeVar, cast

import faust

from pricing.config import CONTROL_ARM
from pricing.experiments import add_stats, settle_user, thompson_shares
from streams.records.experiment import ArmDelta, ArmStats, LastOffers, SharesSnapshot
from streams.records.inputs import Event
from streams.records.json_record import array_from_json
from streams.records.outputs import PriceUpdate
from streams.settings import KafkaSettings, Settings
from streams.topics import AppTopics
from streams.worker.runtime import Runtime
from streams.worker.sink import Received, Record, Sink, Table
from streams.worker.wiring import EventTable, SharesHolder, Wiring, whole_topic_consumer

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Received)

SHARES_KEY = b"shares"


async def settle_batch(
    batch: Sequence[R],
    last_offers: Table[R],
    sink: Sink,
    *,
    topics: AppTopics,
    window_s: float,
) -> list[str]:
    """Attribute one batch of offers and purchases: the outcome agent's loop body.

    Each user's latest offers are read and written once; every purchase of an
    item offered within ``window_s`` gives an outcome and a conversion for its
    arm. Returns once the broker has them all, with the arm of each conversion.
    """
    by_user: dict[str, list[tuple[R, PriceUpdate | Event]]] = {}
    for event in batch:
        if event.message.topic == topics.offers.name:
            # One message per user per scoring batch: that batch's price updates.
            for update in array_from_json(PriceUpdate, event.value):
                by_user.setdefault(update.user_id, []).append((event, update))
            continue
        # One message per user per ingest batch: a JSON array of the
        # purchase events, validated by the ingest agent.
        for purchase in array_from_json(Event, event.value):
            by_user.setdefault(purchase.user_id, []).append((event, purchase))
    records: list[Record] = []
    converted: list[str] = []
    for user, group in by_user.items():
        last = group[-1][0]
        before = LastOffers.from_stored(last_offers.get(user, last))
        after, credited = settle_user(before.by_item, [i for _, i in group], window_s)
        if after != before.by_item:
            last_offers.set(user, LastOffers(after).to_json(), last)
        for attributed in credited:
            converted.append(attributed.arm)
            records.append((topics.outcomes.name, user.encode(), attributed.to_json()))
            records.append(
                (
                    topics.experiment_events.name,
                    attributed.arm.encode(),
                    ArmDelta.sale(attributed).to_json(),
                )
            )
    await sink.send(records)
    return converted


def count_arm_event(
    raw: bytes,
    arm_stats: MutableMapping[str, bytes],
    known: dict[str, ArmStats],
    arms: Sequence[str],
) -> None:
    """Add one ``experiment-events`` record to its arm's counters: the experiment agent's body.

    ``known`` mirrors the table for the bandit; after a restart it starts
    from every arm's counters in the recovered table.
    """
    if not known:
        for arm in arms:
            if (saved := arm_stats.get(arm)) is not None:
                known[arm] = ArmStats.from_json(saved)
    delta = ArmDelta.from_json(raw)
    stats = ArmStats.from_stored(arm_stats.get(delta.arm))
    known[delta.arm] = add_stats(stats, delta)
    arm_stats[delta.arm] = known[delta.arm].to_json()


def register(app: faust.App, wiring: Wiring, runtime: Runtime, settings: Settings) -> None:
    """Attach the outcome and experiment agents and the bandit's timer to ``app``."""
    pricing, topics = settings.pricing, wiring.topics
    metrics = wiring.metrics
    last_offers = EventTable(app, wiring.tables.last_offers, metrics.table_writer("last_offers"))
    arm_stats = wiring.tables.arm_stats
    arm_stats_written = metrics.table_writer("arm_stats")

    async def outcome(stream: faust.StreamT) -> None:
        # Batched like ingest: one table write per user per batch instead of one
        # per offer keeps this agent off the cores the scorer's forward pass needs.
        batches = cast(faust.Stream, stream).take_events(
            settings.experiment.outcome_max_batch, within=settings.experiment.outcome_max_wait_s
        )
        async for batch in batches:
            converted = await settle_batch(
                batch,
                last_offers,
                wiring.sink,
                topics=topics,
                window_s=pricing.attribution_window_s,
            )
            metrics.converted(converted)

    # Filled by the experiment agent, which runs only on the worker owning the
    # single experiment partition; the timer publishes from it when it changed.
    known: dict[str, ArmStats] = {}
    dirty = asyncio.Event()
    updates = 0

    async def experiment(stream: faust.StreamT) -> None:
        arms = [*(arm.name for arm in pricing.arms), CONTROL_ARM]
        async for raw in stream:
            count_arm_event(raw, arm_stats, known, arms)
            arm_stats_written()
            dirty.set()

    @app.timer(interval=settings.experiment.bandit_interval_s)
    async def publish_shares() -> None:
        nonlocal updates
        if not dirty.is_set():
            return
        dirty.clear()
        updates += 1
        arms = [arm.name for arm in pricing.arms]
        shares = thompson_shares(
            known, arms, pricing.control_share, pricing.min_arm_share, seed=updates
        )
        snapshot = SharesSnapshot.of(updates, int(time.time() * 1000), shares, known)
        await wiring.sink.send([(topics.experiment_shares.name, SHARES_KEY, snapshot.to_json())])

    app.agent(wiring.sources.offers_and_purchases, name="outcomes")(outcome)
    app.agent(wiring.sources.experiment_events, name="experiment")(experiment)


async def follow_shares(holder: SharesHolder, kafka: KafkaSettings, topic: str) -> None:
    """Keep ``holder`` at the newest published shares (every worker, no group)."""
    consumer = whole_topic_consumer(kafka, topic)
    await consumer.start()
    try:
        async for message in consumer:
            snapshot = SharesSnapshot.from_json(message.value)
            holder.shares = dict(snapshot.shares)
    finally:
        await consumer.stop()
