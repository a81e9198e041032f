"""Experiment flow: offers and purchases -> attribution -> arm stats -> bandit shares.

* The outcome agent reads ``price-updates`` and ``purchases`` (valid purchase
  events forwarded by the ingest agent, an array per user per batch; both
  keyed by user, so co-partitioned with its ``last_offers`` table) and
  attributes each purchase to the latest offer of that (user, item) within
  the attribution window, publishing the outcome to ``price-outcomes``.
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
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer

from encoders.records import event_from_dict
from pricing.config import CONTROL_ARM, PricingConfig
from pricing.experiments import ArmStats, Offer, attribute, thompson_shares

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
    price_updates_name: str,
    outcomes: faust.TopicT,
    experiment_events: faust.TopicT,
    experiment_shares: faust.TopicT,
    pricing: PricingConfig,
    bandit_interval_s: float,
    partitions: int,
) -> None:
    """Attach the outcome and experiment agents to ``app``."""
    last_offers = app.Table(
        "last_offers",
        default=None,
        partitions=partitions,
        key_type=str,
        value_type=bytes,
        options={"driver": "rocksdict"},
    )
    arm_stats = app.Table(
        "arm_stats",
        default=None,
        partitions=1,
        key_type=str,
        value_type=bytes,
        options={"driver": "rocksdict"},
    )
    window_s = pricing.attribution_window_s

    async def outcome(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            if message.topic == price_updates_name:
                update = orjson.loads(event.value)
                user = str(update["user_id"])
                raw = last_offers.get(user)
                offers = orjson.loads(raw) if raw else {}
                last_offers[user] = orjson.dumps(remember_offer(offers, update))
                continue
            # One message per user per ingest batch: a JSON array of the
            # purchase events, validated by the ingest agent.
            for obj in orjson.loads(event.value):
                purchase = event_from_dict(obj)
                raw = last_offers.get(purchase.user_id)
                shown = (orjson.loads(raw) if raw else {}).get(purchase.item_id)
                offer = (
                    Offer(
                        purchase.user_id, purchase.item_id, shown[2], shown[0], shown[1], shown[3]
                    )
                    if shown
                    else None
                )
                credited = attribute(offer, purchase.ts, window_s)
                if credited is None or shown is None:
                    continue
                record = outcome_record(credited, shown[4], purchase.ts)
                await outcomes.send(key=purchase.user_id.encode(), value=orjson.dumps(record))
                delta = {"arm": credited.arm, "conversions": 1, "revenue": credited.price}
                await experiment_events.send(key=credited.arm.encode(), value=orjson.dumps(delta))

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
