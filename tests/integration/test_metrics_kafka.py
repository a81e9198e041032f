"""The worker's /metrics, /livez and /readyz, scraped during a real run on the broker."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.offline.local import stop_worker
from streams.offline.ports import free_port
from streams.topics import AppTables, Topic
from tests.integration.data import BAD, BAD_REASONS, catalog, events
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

NOT_READY = {
    "table recovery not done yet",
    "table recovery in progress",
    "catalogue not loaded yet",
    "item index not built yet",
}


def get(port: int, path: str) -> tuple[int, str] | None:
    """Status and body, or None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError:
        return None


def scrape(port: int) -> Samples:
    answer = get(port, "/metrics")
    assert answer is not None and answer[0] == 200, answer
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer[1])
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name and v}


def until(check: Callable[[], bool], timeout_s: float, pipe: Pipeline) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s; log:\n{pipe.log()}"
        time.sleep(0.2)


def test_counters_and_probes_move_with_a_real_run(pipeline: Pipeline):
    port = free_port()
    items = catalog()
    pipeline.send(pipeline.topics.items, items, key_field="item_id")
    pipeline.start_worker(env={"RECPRICE__METRICS__PORT": str(port)})

    # /readyz answers 503 with its reason from before recovery, then 200.
    answers: list[tuple[int, str]] = []

    def ready() -> bool:
        answer = get(port, "/readyz")
        if answer is not None:
            answers.append(answer)
        return answer is not None and answer[0] == 200

    until(ready, 180, pipeline)
    first_status, first_reason = answers[0]
    assert first_status == 503 and first_reason.strip() in NOT_READY, answers[0]
    assert get(port, "/livez") == (200, "ok\n")
    start = scrape(port)
    assert value(start, "recprice_recovery_in_progress") == 0
    assert value(start, "recprice_events_ingested_total") == 0

    good = events()
    pipeline.send(pipeline.topics.events, good[:40])
    pipeline.send_raw(pipeline.topics.events, [(k, v) for k, v, _ in BAD])
    pipeline.send(pipeline.topics.events, good[40:])
    topics = pipeline.topics
    assert pipeline.wait_consumed(topics.events, 180), pipeline.log()
    assert pipeline.wait_consumed(topics.scoring, 180), pipeline.log()
    samples = scrape(port)

    # N valid events -> ingested +N; N bad records -> rejected{reason} and dead letters +N.
    assert value(samples, "recprice_events_ingested_total") == len(good)
    rejected = by_label(samples, "recprice_events_rejected_total", "reason")
    assert rejected == Counter(BAD_REASONS)
    assert value(samples, "recprice_dead_letters_total", source="events") == len(BAD)
    assert pipeline.count(topics.dlq) == len(BAD)

    # Every recommendation emitted is one latency sample and one user of a scoring batch.
    recommendations = pipeline.count(topics.recommendations)
    assert recommendations >= 12
    assert value(samples, "recprice_event_to_recommendation_seconds_count") == recommendations
    assert value(samples, "recprice_scoring_batch_size_sum") == recommendations
    batches = value(samples, "recprice_scoring_batch_size_count")
    assert 1 <= batches <= recommendations
    assert value(samples, "recprice_forward_pass_seconds_count") == batches

    # Every price update is one offer of its arm and one decision of its bound.
    updates = [record for _, record in pipeline.read(topics.price_updates)]
    assert by_label(samples, "recprice_offers_total", "arm") == Counter(
        str(u["arm"]) for u in updates
    )
    assert by_label(samples, "recprice_price_decisions_total", "bound") == Counter(
        str(u["bound"]) for u in updates
    )

    # Each table write is one changelog record.
    tables = AppTables.of(pipeline.settings)
    for table in (tables.user_state, tables.shown_prices):
        written = value(samples, "recprice_table_writes_total", table=table.name)
        assert written == pipeline.count(Topic(table.name, table.changelog)) > 0, table.name

    # Once everything is committed, every events partition shows lag 0.
    def events_lag() -> list[float]:
        return [
            v
            for (n, labels), v in scrape(port).items()
            if n == "recprice_consumer_lag" and ("topic", topics.events.name) in labels
        ]

    until(lambda: events_lag() == [0.0] * pipeline.settings.kafka.partitions, 30, pipeline)

    # A purchase of an offered item -> one conversion for the offer's arm.
    now = int(time.time() * 1000)
    offered = {str(u["user_id"]): u for u in updates}
    buyers = sorted(offered)[:3]
    pipeline.send(
        topics.events,
        [
            {
                "event_id": f"p-{user}",
                "type": "purchase",
                "user_id": user,
                "item_id": offered[user]["item_id"],
                "ts": now,
                "price": offered[user]["price"],
            }
            for user in buyers
        ],
    )

    def converted() -> bool:
        arms = by_label(scrape(port), "recprice_conversions_total", "arm")
        return sum(arms.values()) >= len(buyers)

    until(converted, 90, pipeline)
    after = scrape(port)
    outcomes = [record for _, record in pipeline.read(topics.outcomes)]
    assert by_label(after, "recprice_conversions_total", "arm") == Counter(
        str(o["arm"]) for o in outcomes
    )
    assert len(outcomes) == len(buyers)
    assert value(after, "recprice_events_ingested_total") == len(good) + len(buyers)
    assert get(port, "/livez") == (200, "ok\n")
    assert get(port, "/readyz") == (200, "ok\n")

    # SIGTERM: the worker leaves cleanly and its endpoint is gone.
    [worker] = pipeline.workers
    assert stop_worker(worker) == 0, pipeline.log()
    pipeline.workers.remove(worker)
    assert get(port, "/livez") is None
