"""Producing to and reading from Kafka for the CLI (kafka-python, synchronous)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import IllegalStateError, KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from streams.connection import kafka_python_options
from streams.offline.replay import LogRecord
from streams.settings import KafkaSettings

# Kafka timestamps are signed 64-bit; kafka-python accepts a wider one on send()
# and its sender thread then stops, so nothing more would ever be delivered.
_TIMESTAMPS = range(-(2**63), 2**63)


@dataclass
class SendSummary:
    """What a produce run did: records Kafka took, refused (failed) or never got (skipped)."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Records sent per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Whether every record was sent."""
        return not (self.failed or self.skipped)

    def line(self) -> str:
        """Say what the run did, in one line."""
        return (
            f"sent {self.sent}, failed {self.failed}, skipped {self.skipped}, "
            f"{self.rate:,.0f} events/s over {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class Refusal:
    """One log line that did not reach Kafka, and why."""

    line_no: int
    outcome: Literal["failed", "skipped"]
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no} {self.outcome}: {self.reason}"


def producer(kafka: KafkaSettings) -> KafkaProducer:
    """Idempotent, acks=all producer (kafka-python 3 defaults) with batching for replays."""
    return KafkaProducer(**kafka_python_options(kafka), linger_ms=5, batch_size=256 * 1024)


def unsendable(record: LogRecord) -> str | None:
    """Why the producer must not be given ``record``, or None when it may."""
    if record.ts is not None and record.ts not in _TIMESTAMPS:
        return f"timestamp {record.ts} is outside Kafka's range"
    return None


def refuses_record(exc: Exception) -> bool:
    """Whether ``send()`` raised ``exc`` about its record rather than about the producer.

    A metadata or buffer timeout and a closed producer would refuse every
    record alike, so they end the run instead of skipping the whole log.
    """
    if isinstance(exc, KafkaTimeoutError | IllegalStateError):
        return False
    return isinstance(exc, KafkaError | ValueError | TypeError)


def describe(exc: BaseException) -> str:
    """Give the reason ``exc`` says, in one line (kafka-python's errors already name their type)."""
    text = str(exc) if isinstance(exc, KafkaError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def send_log(
    connect: Callable[[], KafkaProducer],
    topic: str,
    records: Iterable[LogRecord],
    report: Callable[[Refusal], None],
) -> SendSummary:
    """Send each record with its key and original timestamp; one bad record never stops the rest.

    A record the producer refuses on ``send()`` (too large, unusable key or
    timestamp) is skipped; one that Kafka refuses afterwards has failed. Each is
    reported with its line number and counted, and the rest of the log is sent.
    ``connect`` makes a producer; the function closes every producer it makes.
    """
    start = time.monotonic()
    sender = _LogSender(connect, topic, report)
    try:
        sender.run(records)
    finally:
        sender.close()
    sender.summary.seconds = time.monotonic() - start
    return sender.summary


class _LogSender:
    """The state of one `send_log` run.

    kafka-python 3.0.12 makes an idempotent producer fatal on any record the
    broker refuses: every record still pending or sent later then fails with
    it. So after a failure the producer is replaced and the records that failed
    with it are sent again, one at a time until one is refused on its own (that
    one is reported), and the rest go back to the ordinary stream.
    """

    def __init__(
        self,
        connect: Callable[[], KafkaProducer],
        topic: str,
        report: Callable[[Refusal], None],
    ) -> None:
        self.summary = SendSummary()
        self._connect = connect
        self._topic = topic
        self._report = report
        self._producer = connect()
        self._pending: deque[tuple[LogRecord, FutureRecordMetadata]] = deque()
        # Records that failed alongside another one, to be sent again first.
        self._again: deque[LogRecord] = deque()
        self._alone = False  # send them one at a time until one is refused on its own
        self._trouble = False  # set from the producer's thread when a record fails

    def run(self, records: Iterable[LogRecord]) -> None:
        """Send ``records`` and every record that has to be sent again."""
        source = iter(records)
        while True:
            if self._again:
                record = self._again.popleft()
                if self._alone:
                    self._send_alone(record)
                    continue
            else:
                next_record = next(source, None)
                if next_record is None:
                    self._recover(self._settle())
                    if self._again:
                        continue
                    return
                record = next_record
            self._hand_over(record)
            if self._trouble:
                self._recover(self._settle())
            while self._pending and self._pending[0][1].succeeded():
                self._pending.popleft()
                self.summary.sent += 1

    def close(self) -> None:
        """Close the current producer."""
        self._producer.close()

    def _hand_over(self, record: LogRecord) -> bool:
        """Give ``record`` to the producer; False when it is skipped instead."""
        reason = unsendable(record)
        if reason is None:
            try:
                future = self._producer.send(
                    self._topic, value=record.raw, key=record.key, timestamp_ms=record.ts
                )
            except Exception as exc:
                if not refuses_record(exc):
                    raise
                reason = describe(exc)
            else:
                future.add_errback(self._on_failure)
                self._pending.append((record, future))
                return True
        self.summary.skipped += 1
        self._report(Refusal(record.line_no, "skipped", reason))
        return False

    def _on_failure(self, _: Exception) -> None:
        self._trouble = True

    def _settle(self) -> list[tuple[LogRecord, Exception]]:
        """Wait for every record handed over; count those sent, return those that failed."""
        try:
            self._producer.flush()
        except KafkaError:
            pass  # flush() raises once it has split a batch; each record's future still ends
        failed: list[tuple[LogRecord, Exception]] = []
        while self._pending:
            record, future = self._pending.popleft()
            try:
                future.get()
            except KafkaError as exc:
                failed.append((record, exc))
            else:
                self.summary.sent += 1
        self._trouble = False
        return failed

    def _recover(self, failed: list[tuple[LogRecord, Exception]]) -> None:
        """Replace the producer and queue ``failed`` to be sent again, the first ones alone."""
        if not failed:
            return
        self._replace_producer()
        self._again.extendleft(record for record, _ in reversed(failed))
        self._alone = True

    def _send_alone(self, record: LogRecord) -> None:
        """Send ``record`` and wait for it: if it fails now, Kafka refuses it on its own."""
        if not self._hand_over(record):
            return
        for refused, exc in self._settle():
            self.summary.failed += 1
            self._report(Refusal(refused.line_no, "failed", describe(exc)))
            self._replace_producer()
            self._alone = False

    def _replace_producer(self) -> None:
        self._producer.close()
        self._producer = self._connect()


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout_s: float | None,
) -> Iterator[dict[str, object]]:
    """Yield JSON records of ``topic`` (no consumer group: reading never moves anyone's offsets)."""
    consumer = KafkaConsumer(
        **kafka_python_options(kafka),
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(idle_timeout_s * 1000) if idle_timeout_s else float("inf"),
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
        count = 0
        for message in consumer:
            try:
                record = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                record = {"raw": message.value.decode("utf-8", "replace")}
            yield record
            count += 1
            if max_records is not None and count >= max_records:
                return
    finally:
        consumer.close()
