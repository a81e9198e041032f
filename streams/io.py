"""Producing to and reading from Kafka for the CLI (kafka-python, synchronous)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.replay import LogRecord


@dataclass
class SendSummary:
    """What a produce run did."""

    sent: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def producer(bootstrap: str) -> KafkaProducer:
    """Idempotent, acks=all producer (kafka-python 3 defaults) with batching for replays."""
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)


def send_records(
    prod: KafkaProducer,
    topic: str,
    records: Iterable[LogRecord],
    summary: SendSummary,
    on_sent: object = None,
) -> None:
    """Send each record with its key and original timestamp; count failures, never drop silently."""

    def ok(_: object) -> None:
        summary.sent += 1

    def fail(_: object) -> None:
        summary.failed += 1

    for record in records:
        future = prod.send(topic, value=record.raw, key=record.key, timestamp_ms=record.ts)
        future.add_callback(ok)
        future.add_errback(fail)
        if callable(on_sent):
            on_sent()
    prod.flush()


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout_s: float | None,
) -> Iterator[dict[str, object]]:
    """Yield JSON records of ``topic`` (no consumer group: reading never moves anyone's offsets)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
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
