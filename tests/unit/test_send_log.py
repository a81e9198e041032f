"""Sending a log: one record that Kafka or the producer refuses never stops the rest."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka.errors import (
    InvalidRecordError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)
from kafka.future import Future
from typer.testing import CliRunner

import streams.offline.kafka_io
from streams.cli.main import app
from streams.offline.kafka_io import (
    Refusal,
    SendSummary,
    describe,
    refuses_record,
    send_log,
    unsendable,
)
from streams.offline.replay import LogRecord, log_records

MAX_SIZE = 100  # what the fake producer takes on send(), like max_request_size


class FakeFuture(Future):
    """kafka-python's record future, resolved by the fake producer when it delivers a batch."""

    def get(self, timeout: float | None = None) -> object:
        assert self.is_done, "a settled record's future is done"
        if self.exception is not None:
            raise self.exception
        return self.value


class Broker:
    """The topic as every fake producer sees it: what it took and which values it refuses."""

    def __init__(self, refuse: set[bytes] = frozenset()) -> None:
        self.refuse = refuse
        self.taken: list[bytes] = []
        self.producers: list[FakeProducer] = []

    def connect(self, batch: int = 1000) -> FakeProducer:
        producer = FakeProducer(self, batch)
        self.producers.append(producer)
        return producer


class FakeProducer:
    """kafka-python 3.0.12's idempotent producer as `send_log` meets it.

    send() raises MessageSizeTooLargeError for a large record; a batch holding
    a record the broker refuses fails whole, and the producer then fails every
    later record too.
    """

    def __init__(self, broker: Broker, batch: int) -> None:
        self.broker = broker
        self.batch = batch
        self.buffer: list[tuple[bytes, FakeFuture]] = []
        self.fatal: KafkaError | None = None
        self.closed = False

    def send(
        self, topic: str, value: bytes, key: bytes | None, timestamp_ms: int | None
    ) -> FakeFuture:
        assert not self.closed
        if len(value) > MAX_SIZE:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes")
        future = FakeFuture()
        self.buffer.append((value, future))
        if len(self.buffer) >= self.batch:
            self.flush()
        return future

    def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        if self.fatal is None and any(value in self.broker.refuse for value, _ in batch):
            self.fatal = InvalidRecordError("One or more records have been rejected")
            for value, future in batch:
                if value in self.broker.refuse:
                    future.failure(InvalidRecordError("refused on its own"))
                else:
                    future.failure(KafkaError("part of a batch which had an invalid record"))
            return
        for value, future in batch:
            if self.fatal is not None:
                future.failure(self.fatal)
            else:
                self.broker.taken.append(value)
                future.success(None)

    def close(self) -> None:
        self.flush()
        self.closed = True


def log(n: int, big: set[int] = frozenset()) -> list[LogRecord]:
    """``n`` records numbered from 1; those in ``big`` are too large to send."""
    return [
        LogRecord(i, b"x" * (MAX_SIZE + 1) if i in big else b"r%d" % i, b"u%d" % (i % 3), i)
        for i in range(1, n + 1)
    ]


@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_an_oversized_record_is_skipped_and_every_other_one_sent_in_order(batch: int):
    broker = Broker()
    refusals: list[Refusal] = []
    summary = send_log(lambda: broker.connect(batch), "t", log(10, big={3}), refusals.append)

    assert broker.taken == [b"r%d" % i for i in range(1, 11) if i != 3]
    assert (summary.sent, summary.failed, summary.skipped) == (9, 0, 1)
    assert [(r.line_no, r.outcome) for r in refusals] == [(3, "skipped")]
    assert "MessageSizeTooLargeError" in refusals[0].reason
    # A refusal on send() leaves the producer working: it is not replaced.
    assert len(broker.producers) == 1 and broker.producers[0].closed


@pytest.mark.parametrize("batch", [1, 2, 4, 1000])
def test_records_kafka_refuses_fail_alone_and_the_rest_arrive_in_order(batch: int):
    refused = {5, 6, 20}
    broker = Broker(refuse={b"r%d" % i for i in refused})
    refusals: list[Refusal] = []
    summary = send_log(lambda: broker.connect(batch), "t", log(30, big={12}), refusals.append)

    assert broker.taken == [b"r%d" % i for i in range(1, 31) if i not in refused | {12}]
    assert (summary.sent, summary.failed, summary.skipped) == (26, 3, 1)
    # The skip is reported on send(), a failure once the producer has settled.
    assert sorted((r.line_no, r.outcome) for r in refusals) == [
        (5, "failed"),
        (6, "failed"),
        (12, "skipped"),
        (20, "failed"),
    ]
    assert all("refused on its own" in r.reason for r in refusals if r.outcome == "failed")
    assert all(p.closed for p in broker.producers)
    assert not summary.complete


def test_a_timestamp_kafka_cannot_carry_is_skipped_before_the_producer_sees_it():
    broker = Broker()
    records = [LogRecord(1, b"a", None, 2**63), LogRecord(2, b"b", None, 2**63 - 1)]
    refusals: list[Refusal] = []
    summary = send_log(broker.connect, "t", records, refusals.append)
    assert broker.taken == [b"b"]
    assert refusals == [Refusal(1, "skipped", f"timestamp {2**63} is outside Kafka's range")]
    assert (summary.sent, summary.skipped) == (1, 1)


def test_an_error_about_the_producer_ends_the_run_and_closes_it():
    broker = Broker()

    def connect() -> FakeProducer:
        producer = broker.connect()
        producer.send = lambda *a, **k: (_ for _ in ()).throw(KafkaTimeoutError("no metadata"))
        return producer

    with pytest.raises(KafkaTimeoutError):
        send_log(connect, "t", log(3), lambda r: None)
    assert broker.producers[0].closed


@pytest.mark.parametrize(
    ("exc", "about_the_record"),
    [
        (MessageSizeTooLargeError("big"), True),
        (ValueError("Need at least one: key or value"), True),
        (TypeError("key"), True),
        (KafkaTimeoutError("metadata"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_only_errors_about_the_record_skip_it(exc: Exception, about_the_record: bool):
    assert refuses_record(exc) is about_the_record


def test_reasons_are_one_line_and_name_the_error():
    assert describe(MessageSizeTooLargeError("The message\nis big")) == (
        "[Error 10] MessageSizeTooLargeError: The message is big"
    )
    assert describe(ValueError("no key")) == "ValueError: no key"
    assert unsendable(LogRecord(1, b"x", None, -(2**63))) is None
    assert unsendable(LogRecord(1, b"x", None, None)) is None


def test_the_summary_is_one_line_with_every_count():
    summary = SendSummary(sent=998, failed=1, skipped=2, seconds=0.5)
    assert summary.line() == "sent 998, failed 1, skipped 2, 1,996 events/s over 0.5 s"
    assert not summary.complete and SendSummary(sent=3).complete


def test_log_lines_are_numbered_as_in_the_input_and_malformed_ones_kept():
    lines = b'{"user_id":"u1","ts":1}\n\n{"broken\n'.splitlines()
    assert [(r.line_no, r.key, r.ts) for r in log_records(lines)] == [
        (1, b"u1", 1),
        (3, None, None),
    ]


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    """A fake broker behind `streams.offline.kafka_io.producer`, as the CLI commands call it."""
    fake = Broker()
    monkeypatch.setattr(streams.offline.kafka_io, "producer", lambda kafka: fake.connect())
    monkeypatch.setattr("streams.connection.check_connection", lambda kafka: None)
    return fake


def _events(n: int, big_at: int) -> bytes:
    lines = []
    for i in range(1, n + 1):
        event = {"event_id": f"e{i}", "user_id": "u1", "ts": i}
        if i == big_at:
            event["pad"] = "x" * MAX_SIZE
        lines.append(orjson.dumps(event))
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("command", ["replay", "produce-file", "produce-stdin"])
def test_the_commands_report_the_line_and_exit_non_zero(
    broker: Broker, tmp_path: Path, command: str
):
    path = tmp_path / "events.jsonl"
    path.write_bytes(_events(5, big_at=2))
    args = {
        "replay": ["replay", str(path)],
        "produce-file": ["produce", "--file", str(path)],
        "produce-stdin": ["produce"],
    }[command]
    result = CliRunner().invoke(app, args, input=path.read_bytes())

    assert result.exit_code == 1, result.output
    assert "line 2 skipped: [Error 10] MessageSizeTooLargeError" in result.stderr
    assert result.stdout.startswith("sent 4, failed 0, skipped 1, ")
    assert [orjson.loads(v)["event_id"] for v in broker.taken] == ["e1", "e3", "e4", "e5"]
