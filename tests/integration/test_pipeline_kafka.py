"""End to end on the real broker: DLQ, recommendations, prices, replay, attribution, JSON logs.

Restarts after SIGKILL are in test_restart_kafka.py.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from encoders.model import load_model_dir
from streams.offline.collect import TopicCollector, latest_recommendations
from streams.records.dead_letter import DeadLetter
from tests.integration.data import BAD, catalog, events, expected_states, offline_top10
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


def wait_for_users(pipe: Pipeline, expected: dict, extra_dlq: int = 0, timeout_s: float = 240):
    names = [
        t.name for t in (pipe.topics.recommendations, pipe.topics.price_updates, pipe.topics.dlq)
    ]
    collector = TopicCollector(pipe.settings.kafka, names)

    def done() -> bool:
        latest = latest_recommendations(collector.records[names[0]])
        # A batch's records reach their topics in any order: wait for the
        # final recommendation's price updates too (same user, same ts).
        priced = Counter((p["user_id"], p["ts"]) for p in collector.records[names[1]])
        return len(collector.records[names[2]]) >= extra_dlq and all(
            u in latest
            and latest[u]["state_version"] >= s.version
            and priced[(u, latest[u]["ts"])] >= len(latest[u]["items"])
            for u, s in expected.items()
        )

    ok = collector.until(done, timeout_s)
    collector.close()
    assert ok, f"pipeline did not finish in {timeout_s} s; worker log:\n{pipe.log()}"
    return [collector.records[n] for n in names]


def test_mixed_stream_dead_letters_exactly_the_bad_records(pipeline: Pipeline):
    items = catalog()
    good = events()
    pipeline.send(pipeline.topics.items, items, key_field="item_id")
    # JSON logs at INFO, so Faust's, mode's and aiokafka's own lines are checked too.
    worker = pipeline.start_worker(env=JSON_LOGS)
    pipeline.send(pipeline.topics.events, good[:40])
    pipeline.send_raw(pipeline.topics.events, [(k, v) for k, v, _ in BAD])
    pipeline.send(pipeline.topics.events, good[40:])
    expected = expected_states(good, items)
    recs, prices, dlq = wait_for_users(pipeline, expected, extra_dlq=len(BAD))

    letters = [DeadLetter.from_dict(r) for r in dlq]
    assert sorted(letter.payload() for letter in letters) == sorted(v for _, v, _ in BAD)
    by_raw = {letter.payload(): letter for letter in letters}
    for _, value, reason in BAD:
        assert reason in by_raw[value].error
        assert by_raw[value].topic == pipeline.topics.events.name
        assert isinstance(by_raw[value].offset, int)

    latest = latest_recommendations(recs)
    assert set(latest) == set(expected)  # userX only ever sent bad records
    for user, record in latest.items():
        assert record["state_version"] == expected[user].version
        ranked = [entry["item_id"] for entry in record["items"]]
        assert len(ranked) == 10 and not set(ranked) & expected[user].interacted()
        assert [e["rank"] for e in record["items"]] == list(range(1, 11))

    # The stream's top-10 are the offline scorer's for the same states.
    offline = offline_top10(load_model_dir(pipeline.model_dir), items, expected)
    same = sum([e["item_id"] for e in latest[u]["items"]] == offline[u] for u in expected)
    assert same >= 0.9 * len(expected), f"{same}/{len(expected)} users with the offline top-10"

    by_id = {i["item_id"]: i for i in items}
    assert len(prices) >= 10 * len(expected)
    for update in prices:
        item = by_id[update["item_id"]]
        assert update["floor"] <= update["price"] <= update["ceiling"]
        assert item["floor"] <= update["price"] <= item["ceiling"]
        assert abs(update["price"] / item["base_price"] - 1) <= 0.2 + 1e-9
        assert update["arm"] in {"control", "gentle", "bold"}
        assert update["personalized"] is (update["arm"] != "control")

    pipeline.stop_workers()  # its shutdown lines too
    worker_id = f"{pipeline.settings.app_id}@{socket.gethostname()}:{worker.pid}"
    lines = json_log_lines(pipeline.logs[0], worker_id)
    assert {r["logger"].split(".")[0] for r in lines} >= {"faust", "mode", "aiokafka", "streams"}
    dead = [r for r in lines if r["message"].startswith("dead letter ")]
    assert len(dead) == len(BAD)
    for r in dead:  # "dead letter <topic>[<partition>]@<offset>: <reason>"
        topic, partition = re.match(r"dead letter (\S+)\[(\d+)\]@", r["message"]).groups()
        assert topic == pipeline.topics.events.name and r["partition"] == f"{topic}-{partition}"


JSON_LOGS = {"RECPRICE__WORKER__LOG_FORMAT": "json", "RECPRICE__WORKER__LOG_LEVEL": "info"}


def json_log_lines(path: Path, worker_id: str) -> list[dict[str, str]]:
    """Every line of a worker's stdout and stderr, each one JSON log record of that worker."""
    text = path.read_text(encoding="utf-8")
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {n} of {path} is not JSON: {line!r}") from None
        assert set(record) - {"partition", "exception", "stack"} == JSON_FIELDS, record
        assert record["worker"] == worker_id, record
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, record
        assert record["time"].endswith("Z") and datetime.fromisoformat(record["time"]), record
        records.append(record)
    assert records, f"{path} is empty"
    return records


JSON_FIELDS = {"time", "level", "logger", "message", "worker"}


def test_replaying_a_log_twice_gives_the_same_recommendations(
    pipeline: Pipeline, bootstrap: str, tiny_model_dir, tmp_path
):
    items = catalog()
    log = events(users=10, per_user=6, seed=11)
    expected = expected_states(log, items)
    finals = []
    second = Pipeline(bootstrap, tiny_model_dir, tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.create()
    try:
        for pipe in (pipeline, second):
            pipe.send(pipe.topics.items, items, key_field="item_id")
            pipe.start_worker()
            pipe.send(pipe.topics.events, log)
            recs, _, dlq = wait_for_users(pipe, expected)
            assert dlq == []
            finals.append(
                {
                    u: [e["item_id"] for e in r["items"]]
                    for u, r in latest_recommendations(recs).items()
                }
            )
    finally:
        for proc in second.workers:
            proc.kill()
    assert finals[0] == finals[1]
    assert len(finals[0]) == len(expected)


def test_purchase_after_an_offer_is_attributed_audited_and_moves_the_bandit(pipeline: Pipeline):
    import time

    items = catalog()
    pipeline.send(pipeline.topics.items, items, key_field="item_id")
    pipeline.start_worker()
    now = int(time.time() * 1000)
    users = [f"buyer{n}" for n in range(6)]
    pipeline.send(
        pipeline.topics.events,
        [
            {"event_id": f"c-{u}", "type": "click", "user_id": u, "item_id": "it3", "ts": now}
            for u in users
        ],
    )
    names = [t.name for t in (pipeline.topics.price_updates, pipeline.topics.audit)]
    collector = TopicCollector(pipeline.settings.kafka, names)

    def offered_and_audited() -> bool:
        updates, audits = collector.records[names[0]], collector.records[names[1]]
        return {r["user_id"] for r in updates} >= set(users) and len(audits) == len(updates)

    assert collector.until(offered_and_audited, 120), pipeline.log()
    offered = {r["user_id"]: r for r in collector.records[names[0]]}
    audits = collector.records[names[1]]
    collector.close()
    assert len(audits) == len(collector.records[names[0]])
    assert all("score" in a and a["guardrails"]["max_step"] == 0.1 for a in audits)

    purchases = [
        {
            "event_id": f"p-{u}",
            "type": "purchase",
            "user_id": u,
            "item_id": offered[u]["item_id"],
            "ts": int(time.time() * 1000),
            "price": offered[u]["price"],
        }
        for u in users
    ]
    pipeline.send(pipeline.topics.events, purchases)
    names = [t.name for t in (pipeline.topics.outcomes, pipeline.topics.experiment_shares)]
    collector = TopicCollector(pipeline.settings.kafka, names)

    def attributed() -> bool:
        shares = collector.records[names[1]]
        conversions = sum(
            s["conversions"] for s in (shares[-1]["stats"].values() if shares else [])
        )
        return len(collector.records[names[0]]) >= len(users) and conversions >= len(users)

    assert collector.until(attributed, 90), pipeline.log()
    collector.close()
    outcomes = {o["user_id"]: o for o in collector.records[names[0]]}
    for u in users:
        latest_offer = [
            r
            for r in offered.values()
            if r["user_id"] == u and r["item_id"] == offered[u]["item_id"]
        ][-1]
        assert outcomes[u]["arm"] == latest_offer["arm"]
        assert outcomes[u]["item_id"] == offered[u]["item_id"]
        assert outcomes[u]["revenue"] > 0
    snapshot = collector.records[names[1]][-1]
    assert abs(sum(snapshot["shares"].values()) - 1.0) < 1e-6
    assert snapshot["shares"]["control"] == pytest.approx(0.2)
    assert sum(s["offers"] for s in snapshot["stats"].values()) >= 10 * len(users)
