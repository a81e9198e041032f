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
from collections.abc import Mapping
from typing import cast

import faust
from aiokafka import AIOKafkaConsumer

from pricing.config import CONTROL_ARM, PricingConfig
from pricing.experiments import add_stats, settle_user, thompson_shares
from streams.records.experiment import ArmDelta, ArmStats, LastOffers, SharesSnapshot
from streams.records.inputs import Event
from streams.records.json_record import array_from_json
from streams.records.outputs import PriceUpdate
from streams.settings import ExperimentSettings
from streams.worker.faust_ext.current_event import acting_for
from streams.worker.tables import bytes_table

log = logging.getLogger(__name__)

SHARES_KEY = b"shares"


class SharesHolder:
    """Current traffic shares of this worker's scorer."""

    def __init__(self, initial: Mapping[str, float]) -> None:
        self.shares: dict[str, float] = dict(initial)
        self.update = 0


def register(
    app: faust.App,
    offer_sources: faust.TopicT,
    offers_name: str,
    outcomes: faust.TopicT,
    experiment_events: faust.TopicT,
    experiment_shares: faust.TopicT,
    pricing: PricingConfig,
    settings: ExperimentSettings,
    partitions: int,
) -> None:
    """Attach the outcome and experiment agents to ``app``."""
    last_offers = bytes_table(app, "last_offers", partitions)
    arm_stats = bytes_table(app, "arm_stats", 1)
    window_s = pricing.attribution_window_s

    async def outcome(stream: faust.StreamT) -> None:
        # Batched like ingest: one table write per user per batch instead of one
        # per offer keeps this agent off the cores the scorer's forward pass needs.
        batches = cast(faust.Stream, stream).take_events(
            settings.outcome_max_batch, within=settings.outcome_max_wait_s
        )
        async for batch in batches:
            by_user: dict[str, list[tuple[faust.types.EventT, PriceUpdate | Event]]] = {}
            for event in batch:
                if event.message.topic == offers_name:
                    # One message per user per scoring batch: that batch's price updates.
                    for update in array_from_json(PriceUpdate, event.value):
                        by_user.setdefault(update.user_id, []).append((event, update))
                    continue
                # One message per user per ingest batch: a JSON array of the
                # purchase events, validated by the ingest agent.
                for purchase in array_from_json(Event, event.value):
                    by_user.setdefault(purchase.user_id, []).append((event, purchase))
            for user, group in by_user.items():
                with acting_for(group[-1][0]):
                    before = LastOffers.from_stored(last_offers.get(user))
                    after, credited = settle_user(before.by_item, [i for _, i in group], window_s)
                    if after != before.by_item:
                        last_offers[user] = LastOffers(after).to_json()
                for attributed in credited:
                    await outcomes.send(key=user.encode(), value=attributed.to_json())
                    await experiment_events.send(
                        key=attributed.arm.encode(), value=ArmDelta.sale(attributed).to_json()
                    )

    # Filled by the experiment agent, which runs only on the worker owning the
    # single experiment partition; the timer publishes from it when it changed.
    known: dict[str, ArmStats] = {}
    dirty = asyncio.Event()
    updates = 0

    async def experiment(stream: faust.StreamT) -> None:
        names = [*(arm.name for arm in pricing.arms), CONTROL_ARM]
        async for raw in stream:
            if not known:  # after a restart: every arm's counters from the recovered table
                for arm in names:
                    if (saved := arm_stats.get(arm)) is not None:
                        known[arm] = ArmStats.from_json(saved)
            delta = ArmDelta.from_json(raw)
            stats = ArmStats.from_stored(arm_stats.get(delta.arm))
            known[delta.arm] = add_stats(stats, delta)
            arm_stats[delta.arm] = known[delta.arm].to_json()
            dirty.set()

    @app.timer(interval=settings.bandit_interval_s)
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
        await experiment_shares.send(key=SHARES_KEY, value=snapshot.to_json())

    app.agent(offer_sources, name="outcomes")(outcome)
    app.agent(experiment_events, name="experiment")(experiment)


async def follow_shares(holder: SharesHolder, bootstrap: str, topic: str) -> None:
    """Keep ``holder`` at the newest published shares (every worker, no group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async for message in consumer:
            snapshot = SharesSnapshot.from_json(message.value)
            holder.shares = dict(snapshot.shares)
            holder.update = snapshot.update
    except asyncio.CancelledError:
        raise
    finally:
        await consumer.stop()
