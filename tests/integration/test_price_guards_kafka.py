"""Max step and cool-down across a worker restart or a move, on the real broker.

Users are priced by a first worker, which then stops (SIGTERM or SIGKILL);
a second worker on the same data dir, or on an empty one (everything from
the changelogs), prices them again. In the last variant the first worker
keeps running and the second, on an empty data dir, joins the group and
takes over some of the users. Every price of a (user, item) must stay within
``max_step`` of the one shown before it, name it as ``previous_price``, and
keep the cool-down, whichever worker showed which.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient
from kafka.partitioner.default import murmur2

from streams.offline.collect import TopicCollector, latest_recommendations
from streams.offline.local import stop_worker
from streams.records.user_state import UserState
from tests.integration.data import GENRES, catalog, events, expected_states
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

MAX_STEP = 0.01
HELD = GENRES[0]
"""Items of this category get a cool-down longer than the test: their first price stays."""
COOLDOWN_S = 3600.0
GUARDS = {
    "RECPRICE__PRICING__GUARDRAILS__MAX_STEP": str(MAX_STEP),
    "RECPRICE__PRICING__CATEGORY_GUARDRAILS": orjson.dumps(
        {HELD: {"max_step": MAX_STEP, "cooldown_s": COOLDOWN_S}}
    ).decode(),
}
USERS = 6
WAVES = 2
"""Event waves per worker, each priced before the next is sent."""


def wave(n: int) -> list[dict[str, object]]:
    """The n-th wave of events: three per user, ids unique across waves."""
    return [
        {**event, "event_id": f"w{n}-{event['event_id']}"}
        for event in events(users=USERS, per_user=3, seed=40 + n)
    ]


def wait_priced(
    pipe: Pipeline, collector: TopicCollector, expected: Mapping[str, UserState]
) -> None:
    """Until every user's newest state has its recommendation and all its price updates."""
    recs, prices = (
        collector.records[t.name] for t in (pipe.topics.recommendations, pipe.topics.price_updates)
    )

    def done() -> bool:
        latest = latest_recommendations(recs)
        priced = Counter((p["user_id"], p["ts"]) for p in prices)
        return all(
            u in latest
            and int(latest[u]["state_version"]) >= s.version  # type: ignore[call-overload]
            and priced[(u, latest[u]["ts"])] >= len(latest[u]["items"])  # type: ignore[arg-type]
            for u, s in expected.items()
        )

    assert collector.until(done, 180), f"users not priced in time; workers:\n{pipe.log()}"


def scoring_owners(pipe: Pipeline) -> list[set[int]]:
    """The ``scoring-requests`` partitions of each worker in the group, once it is stable."""
    admin = KafkaAdminClient(bootstrap_servers=pipe.bootstrap)
    try:
        group = admin.describe_groups([pipe.settings.app_id])[pipe.settings.app_id]
    finally:
        admin.close()
    if group["group_state"] != "Stable":
        return []
    topic = pipe.topics.scoring.name
    return [
        {
            p
            for a in m["member_assignment"]["assigned_partitions"]
            if a["topic"] == topic
            for p in a["partitions"]
        }
        for m in group["members"]
    ]


def wait_for_two_owners(pipe: Pipeline, timeout_s: float = 120) -> list[set[int]]:
    """Until two workers own ``scoring-requests`` partitions; return each one's."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owners = scoring_owners(pipe)
        if len(owners) == 2 and all(owners):
            return owners
        time.sleep(1)
    raise AssertionError(f"the second worker got no partitions; workers:\n{pipe.log()}")


def partition_of(user_id: str, partitions: int = 4) -> int:
    """The partition Kafka's default partitioner gives a user's records."""
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def guard_breaches(
    updates: Sequence[Mapping[str, Any]],
    cooldown_of: Mapping[str, float],
    max_step: float = MAX_STEP,
) -> list[tuple[str, str]]:
    """(rule, detail) of every price that breaks a guard against the one shown before it.

    ``updates`` in topic order: a user's price updates share a partition, so
    they appear in the order they were shown.
    """
    shown: dict[tuple[str, str], Mapping[str, Any]] = {}
    changed_ms: dict[tuple[str, str], int] = {}
    breaches = []
    for update in updates:
        key = (str(update["user_id"]), str(update["item_id"]))
        before = shown.get(key)
        if before is not None:
            price, last = update["price"], before["price"]
            if update.get("previous_price") != last:
                breaches.append(
                    ("previous_price", f"{key}: {update.get('previous_price')} != {last}")
                )
            if abs(price / last - 1) > max_step + 1e-9:
                breaches.append(("max_step", f"{key}: {last} -> {price}"))
            since_s = (update["ts"] - changed_ms[key]) / 1000
            if price != last and since_s < cooldown_of[key[1]]:
                breaches.append(("cooldown", f"{key}: {last} -> {price} after {since_s:.1f} s"))
        if before is None or update["price"] != before["price"]:
            changed_ms[key] = update["ts"]
        shown[key] = update
    return breaches


@pytest.mark.parametrize(
    ("stop", "second_dir"),
    [
        ("sigterm", "data-a"),
        ("sigterm", "data-b"),
        ("sigkill", "data-a"),
        ("sigkill", "data-b"),
        ("none", "data-b"),
    ],
    ids=[
        "sigterm-same-dir",
        "sigterm-empty-dir",
        "sigkill-same-dir",
        "sigkill-empty-dir",
        "second-worker-joins",
    ],
)
def test_prices_keep_their_guards_across_a_restart_or_a_move(
    pipeline: Pipeline, stop: str, second_dir: str
) -> None:
    items = catalog()
    cooldown_of = {str(i["item_id"]): COOLDOWN_S if i["category"] == HELD else 0.0 for i in items}
    pipeline.send(pipeline.topics.items, items, key_field="item_id")
    names = [t.name for t in (pipeline.topics.recommendations, pipeline.topics.price_updates)]
    collector = TopicCollector(pipeline.settings.kafka, names)
    sent: list[dict[str, object]] = []
    try:
        first = pipeline.start_worker("data-a", env=GUARDS)
        for n in range(WAVES):
            sent += wave(n)
            pipeline.send(pipeline.topics.events, wave(n))
            wait_priced(pipeline, collector, expected_states(sent, items))
        if stop == "sigterm":
            stop_worker(first)
        elif stop == "sigkill":
            first.kill()
            first.wait()
        restarted_ms = int(time.time() * 1000)
        pipeline.start_worker(second_dir, env=GUARDS)
        if stop == "none":
            owners = wait_for_two_owners(pipeline)
            users = {f"user{n}" for n in range(USERS)}
            # Some users stay with the first worker and some move to the second.
            assert all({u for u in users if partition_of(u) in parts} for parts in owners)
        for n in range(WAVES, 2 * WAVES):
            sent += wave(n)
            pipeline.send(pipeline.topics.events, wave(n))
            wait_priced(pipeline, collector, expected_states(sent, items))
        updates = collector.records[names[1]]
    finally:
        collector.close()

    breaches = guard_breaches(updates, cooldown_of)
    assert not breaches, f"{Counter(rule for rule, _ in breaches)}, e.g. {breaches[:6]}"
    # The restart must have mattered: prices shown again that the guards held back.
    shown_before = {(u["user_id"], u["item_id"]) for u in updates if u["ts"] < restarted_ms}
    again = [
        u
        for u in updates
        if u["ts"] >= restarted_ms and (u["user_id"], u["item_id"]) in shown_before
    ]
    bounds = Counter(str(u["bound"]) for u in again)
    assert bounds["step"] > 0 and bounds["cooldown"] > 0, bounds
