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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import faust

from encoders.behaviour import scoring_inputs
from pricing.config import PricingConfig
from pricing.offers import price_items
from pricing.shown_prices import remember_shown
from streams.records.experiment import ArmDelta
from streams.records.inputs import item_titles
from streams.records.json_record import array_to_json
from streams.records.outputs import Audit, PriceUpdate, Recommendation
from streams.records.scoring import ScoringRequest, latest_per_user
from streams.records.shown_prices import ShownPrice, ShownPrices
from streams.settings import Settings
from streams.topics import AppTopics
from streams.worker.faust_ext.gather import gather
from streams.worker.runtime import Runtime
from streams.worker.sink import Received, Record, Sink, Table
from streams.worker.wiring import EventTable, Wiring

R = TypeVar("R", bound=Received)


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


Ranked = list[list[tuple[str, float]]]
"""Each request's top-K (item_id, score), in request order."""


@dataclass(frozen=True)
class Priced:
    """A batch's output records, offers per arm and price bound, and shown prices after it."""

    records: list[Record]
    offers: Counter[str]
    """Prices offered per A/B arm."""
    bounds: Counter[str]
    """Prices per bound that set them (`pricing.policy.Bound`)."""
    after: dict[str, dict[str, ShownPrice]]
    """Each user's shown prices after this batch's."""


@dataclass(frozen=True)
class Scored:
    """What one scoring batch published: the requests scored and its prices' counts."""

    requests: list[ScoringRequest]
    offers: Counter[str]
    bounds: Counter[str]


def read_shown(table: Table[R], users: Mapping[str, R]) -> dict[str, bytes | None]:
    """Return each user's stored map, read in the partition of the event given for the user."""
    return {user_id: table.get(user_id, event) for user_id, event in users.items()}


def write_shown(
    table: Table[R],
    users: Mapping[str, R],
    stored: Mapping[str, bytes | None],
    shown: Mapping[str, Mapping[str, ShownPrice]],
) -> None:
    """Write each user's map that differs from the ``stored`` bytes, in the user's partition."""
    for user_id, user_shown in shown.items():
        raw = ShownPrices(user_shown).to_json()
        if raw != stored.get(user_id):
            table.set(user_id, raw, users[user_id])


async def score_batch(
    batch: Sequence[tuple[bytes, R]],
    shown_prices: Table[R],
    sink: Sink,
    *,
    rank: Callable[[list[ScoringRequest]], Awaitable[Ranked]],
    price: Callable[
        [Sequence[ScoringRequest], Ranked, Mapping[str, Mapping[str, ShownPrice]], int], Priced
    ],
    topics: AppTopics,
    now_ms: Callable[[], int],
) -> Scored:
    """Score and price one gathered batch of scoring requests: the scorer agent's loop body.

    Each user is scored once, on their newest request; the batch's shown
    prices reach the changelog before its prices are published, and it
    returns once the broker has every output record.
    """
    parsed = [(ScoringRequest.from_json(raw), event) for raw, event in batch]
    requests = latest_per_user(request for request, _ in parsed)
    # A user's events all share one partition: the table is read and written in it.
    users = {request.user_id: event for request, event in parsed}
    stored = read_shown(shown_prices, users)
    shown = {user: ShownPrices.from_stored(raw).by_item for user, raw in stored.items()}
    ranked = await rank(requests)
    priced = price(requests, ranked, shown, now_ms())
    write_shown(shown_prices, users, stored, priced.after)
    # The changelog first: a published price is never missing from a recovered map.
    await shown_prices.flush()
    counts = [
        (topics.experiment_events.name, arm.encode(), ArmDelta(arm, offers=count).to_json())
        for arm, count in priced.offers.items()
    ]
    await sink.send(counts + priced.records)
    return Scored(requests, priced.offers, priced.bounds)


def register(
    app: faust.App, wiring: Wiring, runtime: Runtime, settings: Settings
) -> faust.types.AgentT:
    """Attach the scorer agent to ``app``; it writes the ``shown_prices`` table."""
    model = runtime.model
    if model is None:
        raise ValueError("the scorer is enabled but the runtime was built without a model")
    catalog, shares, topics = runtime.catalog, wiring.shares, wiring.topics
    pricing, scorer = settings.pricing, settings.scorer
    metrics = wiring.metrics
    shown_prices = EventTable(app, wiring.tables.shown_prices, metrics.table_writer("shown_prices"))

    def forward(requests: list[ScoringRequest]) -> Ranked:
        index = catalog.index
        assert index is not None
        with metrics.forward_pass.time():
            titles = item_titles(catalog.items)
            inputs = scoring_inputs([r.state for r in requests], titles, settings.state)
            return model.ranker.recommend(*inputs, index)

    async def rank(requests: list[ScoringRequest]) -> Ranked:
        # In the model's thread, so the event loop keeps consuming.
        return await asyncio.get_running_loop().run_in_executor(model.executor, forward, requests)

    version = model.ranker.model_version

    def outputs(
        requests: Sequence[ScoringRequest],
        ranked: Ranked,
        shown: Mapping[str, Mapping[str, ShownPrice]],
        now_ms: int,
    ) -> Priced:
        """Return the batch's records (topic, key, value), its counts and shown prices."""
        records: list[Record] = []
        offers: Counter[str] = Counter()
        bounds: Counter[str] = Counter()
        after: dict[str, dict[str, ShownPrice]] = {}
        for request, user_ranked in zip(requests, ranked, strict=True):
            key = request.user_id.encode()
            recommendation = Recommendation.of(request, user_ranked, version, now_ms)
            records.append((topics.recommendations.name, key, recommendation.to_json()))
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
            bounds.update(decision.bound for decision in decisions)
            after[request.user_id] = remember_shown(
                before,
                [(d.item_id, d.price) for d in decisions],
                now_ms / 1000,
                scorer.shown_prices_per_user,
            )
            scores = dict(user_ranked)
            updates = []
            for decision in decisions:
                update = decision.to_record(request.user_id, now_ms)
                updates.append(update)
                records.append((topics.price_updates.name, key, update.to_json()))
                category = catalog.items[decision.item_id].category
                audit = audit_record(
                    update, scores[decision.item_id], request, version, pricing, category
                )
                records.append((topics.audit.name, key, audit.to_json()))
            # The outcome agent reads one record per user per batch, not ten.
            records.append((topics.offers.name, key, array_to_json(updates)))
        return Priced(records, offers, bounds, after)

    async def score(stream: faust.StreamT) -> None:
        await catalog.index_ready.wait()
        async for batch in gather(stream, scorer.max_batch, scorer.max_wait_s):
            scored = await score_batch(
                batch,
                shown_prices,
                wiring.sink,
                rank=rank,
                price=outputs,
                topics=topics,
                now_ms=lambda: int(time.time() * 1000),
            )
            metrics.scored(scored.requests, scored.offers, scored.bounds, int(time.time() * 1000))

    return app.agent(wiring.sources.scoring, name="scorer")(score)
