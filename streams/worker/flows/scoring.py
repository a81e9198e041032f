"""Scoring flow: scoring requests -> micro-batches -> top-K -> bounded prices.

``gather(stream, max_batch, max_wait)`` gathers users while the previous
batch is scored, and yields a batch once it is full or its oldest user has
waited ``max_wait``; each user is scored once per batch on their newest
state; the forward pass runs in the scorer thread so the event loop keeps
consuming. A batch's events are acked only after this loop body returns, and
it returns once the broker has acknowledged every output record
(at-least-once).

The prices each user was last shown, which the max-step and cool-down bounds
start from, live in the ``shown_prices`` table (key user_id, a bounded map
per user, `pricing.shown_prices`). The scoring requests are keyed by user and
partitioned like the table, so a user's map is recovered from its changelog
by whichever worker owns the user after a restart or a rebalance. A batch's
maps reach the changelog before its prices are published: a crash in between
leaves prices remembered that nobody saw, and the next ones are then within
``max_step`` of those.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT

from encoders.behaviour import StateConfig, scoring_inputs
from pricing.config import PricingConfig
from pricing.offers import price_items
from pricing.shown_prices import remember_shown
from streams.records.experiment import ArmDelta
from streams.records.inputs import item_titles
from streams.records.json_record import array_to_json
from streams.records.outputs import Audit, PriceUpdate, Recommendation
from streams.records.scoring import ScoringRequest, latest_per_user
from streams.records.shown_prices import ShownPrice, ShownPrices
from streams.settings import ScorerSettings
from streams.worker.catalog import Catalog
from streams.worker.faust_ext.current_event import acting_for
from streams.worker.faust_ext.delivery import deliver
from streams.worker.faust_ext.gather import gather
from streams.worker.flows.experiment import SharesHolder
from streams.worker.model_thread import ModelThread
from streams.worker.tables import bytes_table


def audit_record(
    update: PriceUpdate,
    score: float,
    request: ScoringRequest,
    model_version: str,
    config: PricingConfig,
    category: str | None,
) -> Audit:
    """Everything that went into one offer, so it can be re-derived and audited alone."""
    return Audit(
        update=update,
        score=score,
        guardrails=config.guardrails_for(category).model_dump(),
        experiment_id=config.experiment_id,
        model_version=model_version,
        state_version=request.state.version,
        trigger_event_id=request.trigger_event_id,
    )


@dataclass(frozen=True)
class ScorerTopics:
    """Where the scorer writes."""

    recommendations: faust.TopicT
    price_updates: faust.TopicT
    offers: faust.TopicT
    audit: faust.TopicT
    experiment_events: faust.TopicT

    def names(self) -> ScorerTopicNames:
        """Return the Kafka names of the per-user output topics."""
        return ScorerTopicNames(
            self.recommendations.get_topic_name(),
            self.price_updates.get_topic_name(),
            self.offers.get_topic_name(),
            self.audit.get_topic_name(),
        )


@dataclass(frozen=True)
class ScorerTopicNames:
    """Kafka names of the topics the scorer writes per user."""

    recommendations: str
    price_updates: str
    offers: str
    audit: str


def read_shown(table: Any, users: Mapping[str, EventT]) -> dict[str, bytes | None]:
    """Return each user's stored map, read in the partition of the event given for the user."""
    stored = {}
    for user_id, event in users.items():
        with acting_for(event):
            stored[user_id] = table.get(user_id)
    return stored


def write_shown(
    table: Any,
    users: Mapping[str, EventT],
    stored: Mapping[str, bytes | None],
    shown: Mapping[str, Mapping[str, ShownPrice]],
) -> None:
    """Write each user's map that differs from the ``stored`` bytes, in the user's partition."""
    for user_id, user_shown in shown.items():
        raw = ShownPrices(user_shown).to_json()
        if raw != stored.get(user_id):
            with acting_for(users[user_id]):
                table[user_id] = raw


def register(
    app: faust.App,
    scoring: faust.TopicT,
    out: ScorerTopics,
    catalog: Catalog,
    model: ModelThread,
    shares: SharesHolder,
    state_config: StateConfig,
    pricing: PricingConfig,
    settings: ScorerSettings,
    partitions: int,
) -> faust.types.AgentT:
    """Attach the scorer agent and its ``shown_prices`` table to ``app``."""
    shown_prices = bytes_table(app, "shown_prices", partitions)
    names = out.names()

    def score_batch(requests: list[ScoringRequest]) -> list[list[tuple[str, float]]]:
        index = catalog.index
        assert index is not None
        titles = item_titles(catalog.items)
        inputs = scoring_inputs([r.state for r in requests], titles, state_config)
        return model.scorer.recommend(*inputs, index)

    def outputs(
        requests: Sequence[ScoringRequest],
        ranked: Sequence[Sequence[tuple[str, float]]],
        shown: Mapping[str, Mapping[str, ShownPrice]],
        version: str,
        now_ms: int,
    ) -> tuple[list[tuple[str, bytes, bytes]], Counter[str], dict[str, dict[str, ShownPrice]]]:
        """Return the batch's records (topic, key, value), offers per arm and shown prices.

        The shown prices are each user's map after this batch's prices.
        """
        records: list[tuple[str, bytes, bytes]] = []
        offers: Counter[str] = Counter()
        after: dict[str, dict[str, ShownPrice]] = {}
        for request, user_ranked in zip(requests, ranked, strict=True):
            key = request.user_id.encode()
            recommendation = Recommendation.of(request, user_ranked, version, now_ms)
            records.append((names.recommendations, key, recommendation.to_json()))
            before = shown[request.user_id]
            arm, decisions = price_items(
                request.user_id,
                user_ranked,
                catalog.items,
                before,
                shares.shares,
                pricing,
                now_ms / 1000,
            )
            offers[arm] += len(decisions)
            after[request.user_id] = remember_shown(
                before,
                [(d.item_id, d.price) for d in decisions],
                now_ms / 1000,
                settings.shown_prices_per_user,
            )
            scores = dict(user_ranked)
            updates = []
            for decision in decisions:
                update = decision.to_record(request.user_id, now_ms)
                updates.append(update)
                records.append((names.price_updates, key, update.to_json()))
                category = catalog.items[decision.item_id].category
                audit = audit_record(
                    update, scores[decision.item_id], request, version, pricing, category
                )
                records.append((names.audit, key, audit.to_json()))
            # The outcome agent reads one record per user per batch, not ten.
            records.append((names.offers, key, array_to_json(updates)))
        return records, offers, after

    async def score(stream: faust.StreamT) -> None:
        await catalog.index_ready.wait()
        loop = asyncio.get_running_loop()
        version = model.scorer.model_version
        async for batch in gather(stream, settings.max_batch, settings.max_wait_s):
            parsed = [(ScoringRequest.from_json(raw), event) for raw, event in batch]
            requests = latest_per_user(request for request, _ in parsed)
            # A user's events all share one partition: the table is read and written in it.
            users = {request.user_id: event for request, event in parsed}
            stored = read_shown(shown_prices, users)
            shown = {user: ShownPrices.from_stored(raw).by_item for user, raw in stored.items()}
            ranked = await loop.run_in_executor(model.executor, score_batch, requests)
            records, offers, after = outputs(
                requests, ranked, shown, version, int(time.time() * 1000)
            )
            write_shown(shown_prices, users, stored, after)
            # The changelog first: a published price is never missing from a recovered map.
            await app.producer.flush()
            for arm, count in offers.items():
                delta = ArmDelta(arm, offers=count).to_json()
                await out.experiment_events.send(key=arm.encode(), value=delta)
            await deliver(app, records)

    return app.agent(scoring, name="scorer")(score)
