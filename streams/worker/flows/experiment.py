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
from collections.abc import Mapping, Sequence
from typing import Any, cast

import faust
import orjson
from aiokafka import AIOKafkaConsumer

from pricing.config import CONTROL_ARM, PricingConfig
from pricing.experiments import ArmStats, Offer, attribute, thompson_shares
from streams.records.inputs import Event, event_from_dict
from streams.settings import IngestSettings
from streams.worker.faust_ext.current_event import acting_for
from streams.worker.tables import bytes_table

log = logging.getLogger(__name__)

MAX_OFFERS_PER_USER = 50
SHARES_KEY = b"shares"


class SharesHolder:
    """Current traffic shares of this worker's scorer."""

    def __init__(self, initial: Mapping[str, float]) -> None:
        self.shares: dict[str, float] = dict(initial)
        self.update = 0


def remember_offer(offers: dict[str, list[Any]], update: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Record the newest offer of an item, keeping the user's latest few items (pure)."""
    out = {k: v for k, v in offers.items() if k != update["item_id"]}
    out[str(update["item_id"])] = [
        update["price"],
        update["ts"],
        update["arm"],
        update["policy_version"],
        update["base_price"],
    ]
    if len(out) > MAX_OFFERS_PER_USER:
        out = dict(sorted(out.items(), key=lambda kv: kv[1][1])[-MAX_OFFERS_PER_USER:])
    return out


def outcome_record(offer: Offer, base_price: float, purchase_ts: int) -> dict[str, Any]:
    """Build the ``price-outcomes`` record of an attributed purchase (as the back-test writes)."""
    return {
        "user_id": offer.user_id,
        "item_id": offer.item_id,
        "arm": offer.arm,
        "price": offer.price,
        "base_price": base_price,
        "offer_ts": offer.ts,
        "ts": purchase_ts,
        "revenue": offer.price,
        "policy_version": offer.policy_version,
    }


OfferOrPurchase = Mapping[str, Any] | Event
"""A price-update record (decoded) or a purchase event."""


def settle_user(
    offers: dict[str, list[Any]], inputs: Sequence[OfferOrPurchase], window_s: float
) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """Apply one user's offers and purchases in order (pure).

    Return the offers to keep and the outcome record of every purchase
    attributed to the latest offer of its item within ``window_s``.
    """
    credited: list[dict[str, Any]] = []
    for item in inputs:
        if not isinstance(item, Event):
            offers = remember_offer(offers, item)
            continue
        shown = offers.get(item.item_id)
        if shown is None:
            continue
        offer = Offer(item.user_id, item.item_id, shown[2], shown[0], shown[1], shown[3])
        attributed = attribute(offer, item.ts, window_s)
        if attributed is not None:
            credited.append(outcome_record(attributed, shown[4], item.ts))
    return offers, credited


def add_stats(stats: ArmStats, delta: Mapping[str, Any]) -> ArmStats:
    """Counters after one ``experiment-events`` record (pure)."""
    return ArmStats(
        offers=stats.offers + int(delta.get("offers", 0)),
        conversions=stats.conversions + int(delta.get("conversions", 0)),
        revenue=stats.revenue + float(delta.get("revenue", 0.0)),
    )


def register(
    app: faust.App,
    offer_sources: faust.TopicT,
    offers_name: str,
    outcomes: faust.TopicT,
    experiment_events: faust.TopicT,
    experiment_shares: faust.TopicT,
    pricing: PricingConfig,
    bandit_interval_s: float,
    partitions: int,
    batching: IngestSettings,
) -> None:
    """Attach the outcome and experiment agents to ``app``."""
    last_offers = bytes_table(app, "last_offers", partitions)
    arm_stats = bytes_table(app, "arm_stats", 1)
    window_s = pricing.attribution_window_s

    async def outcome(stream: faust.StreamT) -> None:
        # Batched like ingest: one table write per user per batch instead of one
        # per offer keeps this agent off the cores the scorer's forward pass needs.
        batches = cast(faust.Stream, stream).take_events(
            batching.max_batch, within=batching.max_wait_s
        )
        async for batch in batches:
            by_user: dict[str, list[tuple[faust.types.EventT, OfferOrPurchase]]] = {}
            for event in batch:
                if event.message.topic == offers_name:
                    # One message per user per scoring batch: that batch's price updates.
                    for update in orjson.loads(event.value):
                        by_user.setdefault(str(update["user_id"]), []).append((event, update))
                    continue
                # One message per user per ingest batch: a JSON array of the
                # purchase events, validated by the ingest agent.
                for obj in orjson.loads(event.value):
                    purchase = event_from_dict(obj)
                    by_user.setdefault(purchase.user_id, []).append((event, purchase))
            for user, group in by_user.items():
                with acting_for(group[-1][0]):
                    raw = last_offers.get(user)
                    before = orjson.loads(raw) if raw else {}
                    after, credited = settle_user(before, [i for _, i in group], window_s)
                    if after != before:
                        last_offers[user] = orjson.dumps(after)
                for record in credited:
                    await outcomes.send(key=user.encode(), value=orjson.dumps(record))
                    delta = {"arm": record["arm"], "conversions": 1, "revenue": record["revenue"]}
                    await experiment_events.send(
                        key=str(record["arm"]).encode(), value=orjson.dumps(delta)
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
                        known[arm] = ArmStats.from_dict(orjson.loads(saved))
            delta = orjson.loads(raw)
            name = str(delta["arm"])
            current = arm_stats.get(name)
            stats = ArmStats.from_dict(orjson.loads(current)) if current else ArmStats()
            known[name] = add_stats(stats, delta)
            arm_stats[name] = orjson.dumps(known[name].to_dict())
            dirty.set()

    @app.timer(interval=bandit_interval_s)
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
        snapshot = {
            "update": updates,
            "offers": sum(s.offers for s in known.values()),
            "ts": int(time.time() * 1000),
            "shares": shares,
            "stats": {arm: s.to_dict() for arm, s in known.items()},
        }
        await experiment_shares.send(key=SHARES_KEY, value=orjson.dumps(snapshot))

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
            snapshot = orjson.loads(message.value)
            holder.shares = dict(snapshot["shares"])
            holder.update = int(snapshot["update"])
    except asyncio.CancelledError:
        raise
    finally:
        await consumer.stop()
