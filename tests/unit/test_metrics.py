"""The worker's metrics and its /metrics, /livez and /readyz endpoint, without a broker."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest

from streams.records.inputs import Event, InvalidRecord
from streams.records.scoring import ScoringRequest
from streams.records.user_state import UserState
from streams.worker.flows.ingest import check_key
from streams.worker.health import Endpoint, endpoint_app, loop_probe, readiness
from streams.worker.metrics import OTHER_REASON, WorkerMetrics, partition_lag, reject_reason
from tests.integration.data import BAD, BAD_REASONS


def rejection(key: bytes | None, raw: bytes) -> str:
    """The error the ingest flow dead-letters ``raw`` with."""
    try:
        check_key(key, Event.from_json(raw))
    except InvalidRecord as exc:
        return str(exc)
    raise AssertionError(f"{raw[:60]!r} was accepted")


def test_each_rejection_gets_its_reason_class_from_the_real_validation_message():
    assert [reject_reason(rejection(key, raw)) for key, raw, _ in BAD] == BAD_REASONS
    assert reject_reason("internal error: KeyError('x')") == "apply_failed"
    assert reject_reason(rejection(None, b"[1, 2]")) == "not_object"
    assert reject_reason("anything else") == OTHER_REASON


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_dead_letters_count_by_source_and_only_events_count_as_rejections():
    metrics = WorkerMetrics()
    metrics.dead_lettered("events", "invalid JSON: unexpected end")
    metrics.dead_lettered("events", "invalid JSON: unexpected end")
    metrics.dead_lettered("items", "negative floor -1")
    assert sample(metrics, "recprice_dead_letters_total", source="events") == 2
    assert sample(metrics, "recprice_dead_letters_total", source="items") == 1
    assert sample(metrics, "recprice_events_rejected_total", reason="invalid_json") == 2
    assert sample(metrics, "recprice_events_rejected_total", reason="invalid_value") == 0


def request(user: str, received_ms: int) -> ScoringRequest:
    return ScoringRequest(user, UserState(), f"e-{user}", received_ms, received_ms)


def test_a_scored_batch_records_size_latency_offers_and_bounds():
    metrics = WorkerMetrics()
    requests = [request("a", 1_000), request("b", 1_500)]
    offers = Counter({"bold": 10, "control": 10})
    bounds = Counter({"none": 12, "step": 5, "ceiling": 3})
    metrics.scored(requests, offers, bounds, emitted_ms=2_000)
    assert sample(metrics, "recprice_scoring_batch_size_count") == 1
    assert sample(metrics, "recprice_scoring_batch_size_sum") == 2
    assert sample(metrics, "recprice_event_to_recommendation_seconds_count") == 2
    assert sample(metrics, "recprice_event_to_recommendation_seconds_sum") == pytest.approx(1.5)
    assert sample(metrics, "recprice_offers_total", arm="bold") == 10
    assert sample(metrics, "recprice_price_decisions_total", bound="step") == 5
    assert sample(metrics, "recprice_price_decisions_total", bound="ceiling") == 3
    metrics.converted(["bold", "bold", "control"])
    assert sample(metrics, "recprice_conversions_total", arm="bold") == 2


def test_apps_in_one_process_keep_their_own_counts():
    first, second = WorkerMetrics(), WorkerMetrics()
    first.events_ingested.inc(3)
    first.table_writer("user_state")()
    assert sample(first, "recprice_events_ingested_total") == 3
    assert sample(second, "recprice_events_ingested_total") == 0
    assert sample(first, "recprice_table_writes_total", table="user_state") == 1
    assert sample(second, "recprice_table_writes_total", table="user_state") == 0


@pytest.mark.parametrize(
    ("highwater", "committed", "lag"),
    [(None, 5, None), (10, None, 10), (10, 4, 6), (10, 10, 0), (3, 7, 0)],
)
def test_partition_lag(highwater: int | None, committed: int | None, lag: int | None):
    assert partition_lag(highwater, committed) == lag


def test_lag_series_follow_the_assignment():
    metrics = WorkerMetrics()
    metrics.set_lag({("ev", 0): (10, 4), ("ev", 1): (7, None), ("ev", 2): (None, 3)})
    assert sample(metrics, "recprice_consumer_lag", topic="ev", partition="0") == 6
    assert sample(metrics, "recprice_consumer_lag", topic="ev", partition="1") == 7
    assert (
        metrics.registry.get_sample_value(
            "recprice_consumer_lag", {"topic": "ev", "partition": "2"}
        )
        is None
    )
    metrics.set_lag({("ev", 1): (9, 9)})  # partition 0 revoked
    assert (
        metrics.registry.get_sample_value(
            "recprice_consumer_lag", {"topic": "ev", "partition": "0"}
        )
        is None
    )
    assert sample(metrics, "recprice_consumer_lag", topic="ev", partition="1") == 0


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ({"recovered": False, "in_recovery": False}, "table recovery not done yet"),
        ({"recovered": False, "in_recovery": True}, "table recovery in progress"),
        ({"recovered": True, "in_recovery": True}, "table recovery in progress"),
        ({"catalog_loaded": False, "index_built": False}, "catalogue not loaded yet"),
        ({"index_built": False}, "item index not built yet"),
        ({"index_built": None}, None),
        ({}, None),
    ],
)
def test_readiness_names_what_is_missing(state: dict[str, bool | None], why: str | None):
    ready = {"recovered": True, "in_recovery": False, "catalog_loaded": True, "index_built": True}
    assert readiness(**{**ready, **state}) == why  # type: ignore[arg-type]


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_endpoint_serves_metrics_and_probes_that_fail_when_the_loop_is_blocked(
    running_loop: asyncio.AbstractEventLoop,
):
    metrics = WorkerMetrics()
    metrics.events_ingested.inc(7)
    missing: list[str | None] = ["catalogue not loaded yet"]
    app = endpoint_app(
        metrics.registry,
        loop_probe(running_loop, lambda: None, timeout_s=0.3),
        loop_probe(running_loop, lambda: missing[0], timeout_s=0.3),
    )
    endpoint = Endpoint("127.0.0.1", 0, app)
    try:
        status, text = get(endpoint.port, "/metrics")
        assert status == 200 and "recprice_events_ingested_total 7.0" in text
        assert get(endpoint.port, "/livez") == (200, "ok\n")
        assert get(endpoint.port, "/readyz") == (503, "catalogue not loaded yet\n")
        missing[0] = None
        assert get(endpoint.port, "/readyz") == (200, "ok\n")
        assert get(endpoint.port, "/other")[0] == 404

        running_loop.call_soon_threadsafe(time.sleep, 1.5)  # the loop stops answering
        time.sleep(0.1)
        started = time.monotonic()
        status, text = get(endpoint.port, "/livez")
        assert (status, text) == (503, "event loop did not answer within 0.3 s\n")
        assert time.monotonic() - started < 1.0
        assert get(endpoint.port, "/readyz")[0] == 503
        assert get(endpoint.port, "/metrics")[0] == 200  # served while the loop is stuck
        time.sleep(1.5)
        assert get(endpoint.port, "/livez") == (200, "ok\n")
    finally:
        endpoint.close()
    with pytest.raises(OSError):
        get(endpoint.port, "/livez")
